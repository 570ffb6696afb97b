"""Checks shared by the drop-in module tests of both kinds (api/test_module.py: Conv1dExt against
nn.Conv1d; api/test_transposed_module.py: ConvTranspose1dExt against nn.ConvTranspose1d;
api/test_conversion.py: from_conv1d / from_conv_transpose1d)."""

import copy
import io
import math

import pytest
import torch


def assert_is_a_drop_in(ours, ref, attrs):
    """ours, built with the same arguments and seed as the PyTorch module ref: an instance of ref's class
    with the same repr (but for the class name), the same attributes `attrs`, the same parameter names,
    shapes, dtypes and initial values, and the same state_dict keys."""
    ref_name, our_name = type(ref).__name__, type(ours).__name__
    assert isinstance(ours, type(ref))
    assert ours.extra_repr() == ref.extra_repr()
    assert repr(ours) == repr(ref).replace(f"{ref_name}(", f"{our_name}(", 1)
    for attr in attrs:
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert p.shape == p_ref.shape and p.dtype == p_ref.dtype and p.requires_grad, name
        assert torch.equal(p, p_ref), f"{name}: the same seed must give the same initial values"


def assert_same_constructor_error(ref_cls, our_cls, kwargs, message=lambda m: m):
    """our_cls(**kwargs) raises what ref_cls(**kwargs) raises: the same type, and ref's message passed
    through `message` (e.g. to put our class's name in it)."""
    with pytest.raises(Exception) as expected:
        ref_cls(**kwargs)
    with pytest.raises(type(expected.value)) as got:
        our_cls(**kwargs)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == message(str(expected.value))


def assert_converted(ours, ref, our_cls, copy_params, x):
    """ours = our_cls.from_...(ref, copy=copy_params) of an eval-mode ref: our class, ref's mode, repr and
    parameters (the same objects unless copied, the same values, devices, dtypes and requires_grad), ref's
    output on x; a later change to ref's weight shows in ours only when shared."""
    assert type(ours) is our_cls and not ours.training
    assert ours.extra_repr() == ref.extra_repr()
    for p, p_ref in zip(ours.parameters(), ref.parameters(), strict=True):
        assert (p is p_ref) == (not copy_params)
        assert torch.equal(p, p_ref) and p.device == p_ref.device and p.dtype == p_ref.dtype
        assert p.requires_grad == p_ref.requires_grad
    torch.testing.assert_close(ours(x), ref(x))
    with torch.no_grad():
        ref.weight.add_(1.0)
    assert torch.equal(ours.weight, ref.weight) == (not copy_params)


def saved_and_loaded(obj, weights_only=True):
    """obj through torch.save and torch.load, as checkpoints travel."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=weights_only)


def assert_whole_module_round_trips(module, x, expected):
    """module saved whole (torch.save / torch.load) and deep-copied: the same class, parameters of its own,
    the output `expected` on x."""
    for twin in (saved_and_loaded(module, weights_only=False), copy.deepcopy(module)):
        assert type(twin) is type(module) and twin.weight is not module.weight
        torch.testing.assert_close(twin(x), expected)


def assert_uniform_init(module, fan_in):
    """PyTorch's conv initialisation: kaiming_uniform_(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias,
    both uniform in +-b, b = 1/sqrt(fan_in): within the bound and filling it, and the weights a uniform(-b, b)
    sample (mean 0, std b/sqrt(3))."""
    bound = 1 / math.sqrt(fan_in)
    for p in (module.weight, module.bias):
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.95 * bound  # fills the range
    w = module.weight.detach().flatten()
    assert abs(w.mean().item()) < 4 * bound / math.sqrt(3) / math.sqrt(w.numel())
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
