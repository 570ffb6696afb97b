"""ConvTranspose1dExt as a drop-in nn.ConvTranspose1d: outputs and all gradients against
nn.ConvTranspose1d (output_size included), constructor and defaults, parameters and their initialisation,
state_dict both ways, whole-module save, repr, the errors nn.ConvTranspose1d raises. from_conv_transpose1d
and convert_convs: api/test_conversion.py."""

import math

import pytest
import torch
from conv_ref import FLOAT_DTYPES, accumulation_eps, examples
from hypothesis import given, settings
from hypothesis import strategies as st
from module_checks import (
    assert_is_a_drop_in,
    assert_same_constructor_error,
    assert_uniform_init,
    assert_whole_module_round_trips,
    saved_and_loaded,
)
from torch import nn
from transposed_ref import abs_max, ceil_div, dtype_id

import conv1d_ext
from conv1d_ext import ConvTranspose1dExt


def t(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


@st.composite
def module_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    in_channels, out_channels = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k, stride, dilation = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    span = dilation * (k - 1) + 1
    padding = draw(st.integers(0, span))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                  bias=draw(st.booleans()), dilation=dilation)
    min_len = max(1, 1 + ceil_div(2 * padding + stride - span, stride))  # every output_size valid
    length = min_len + draw(st.integers(0, 12))
    batch = draw(st.sampled_from([None, 0, 1, 3]))
    # output_size (overrides output_padding): None, or a length in the valid range, spelled as the
    # spatial size or the whole shape
    base = (length - 1) * stride - 2 * padding + span
    size = draw(st.none() | st.integers(base, base + stride - 1))
    if size is not None and draw(st.booleans()):
        size = ([batch] if batch is not None else []) + [out_channels, size]
    elif size is not None:
        size = [size]
    return (in_channels, out_channels, k), kwargs, batch, length, size, draw(st.integers(0, 2**31))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_id)
def test_module_matches_nn_conv_transpose1d(device, dtype, strict_fp32):
    @settings(max_examples=examples(30))
    @given(cfg=module_configs())
    def check(cfg):
        args, kwargs, batch, length, output_size, seed = cfg
        torch.manual_seed(seed)
        ref = nn.ConvTranspose1d(*args, **kwargs, device=device, dtype=torch.float64)
        ours = ConvTranspose1dExt(*args, **kwargs, device=device, dtype=dtype)
        ours.load_state_dict(ref.state_dict())  # rounds to dtype
        ref.load_state_dict(ours.state_dict())  # the reference sees the same rounded parameters
        shape = (args[0], length) if batch is None else (batch, args[0], length)
        x = torch.randn(shape, dtype=torch.float64, device=device).to(dtype)
        x_ref, x_ours = x.detach().double().requires_grad_(), x.clone().requires_grad_()
        y_ref, y = ref(x_ref, output_size), ours(x_ours, output_size)
        assert y.shape == y_ref.shape and y.dtype == dtype
        gy = torch.randn_like(y_ref).to(dtype)  # rounded: the reference sees what ours gets
        grads_ref = torch.autograd.grad(y_ref, [x_ref, *ref.parameters()], gy.double())
        grads = torch.autograd.grad(y, [x_ours, *ours.parameters()], gy)
        in_channels, out_channels, k = args
        red = max(in_channels * k, out_channels * k, y.numel() // out_channels + 1)
        for name, got, want in zip(["output", "input", "weight", "bias"], [y, *grads], [y_ref, *grads_ref],
                                   strict=False):
            atol = 4 * accumulation_eps(dtype) * math.sqrt(red) * max(1.0, abs_max(want))
            torch.testing.assert_close(got.detach().double(), want.detach(), rtol=0, atol=atol,
                                       msg=lambda m, name=name: f"{name}: {m} ({cfg})")
        assert torch.equal(x, x_ours.detach()), "the module modified its input"

    check()


CTOR_CASES = [
    ((4, 8, 3), {}),
    ((4, 8, 3), dict(stride=2, padding=1, output_padding=1, dilation=2, groups=2, bias=False)),
    ((6, 6, (4,)), dict(stride=(2,), padding=(1,), groups=6)),
    ((512, 256, 16), dict(stride=8, padding=4)),  # HiFi-GAN V1's first upsampler
    ((3, 5, 10), dict(stride=5, output_padding=(3,), dilation=(1,))),
]


@pytest.mark.parametrize("args,kwargs", CTOR_CASES)
def test_is_an_nn_conv_transpose1d_with_the_same_parameters_repr_and_init(args, kwargs):
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(*args, **kwargs)
    torch.manual_seed(0)
    ours = ConvTranspose1dExt(*args, **kwargs)
    assert_is_a_drop_in(ours, ref, ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                                    "output_padding", "dilation", "groups", "padding_mode", "transposed"))


def test_initialisation_statistics():
    """nn.ConvTranspose1d's init: kaiming_uniform_(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias, fan_in
    as PyTorch computes it for the transposed weight layout (weight.size(1) · k)."""
    torch.manual_seed(1)
    m = ConvTranspose1dExt(64, 128, 5, stride=2, groups=2)
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(nn.ConvTranspose1d(64, 128, 5, groups=2).weight)
    assert_uniform_init(m, fan_in)


def test_state_dict_loads_both_ways_and_whole_module_save():
    torch.manual_seed(2)
    ref = nn.ConvTranspose1d(4, 6, 4, stride=2, padding=1, groups=2)
    ours = ConvTranspose1dExt(4, 6, 4, stride=2, padding=1, groups=2)
    x = torch.randn(2, 4, 9)
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(x), ref(x))
    torch.manual_seed(3)
    ours2 = ConvTranspose1dExt(4, 6, 4, stride=2, padding=1, groups=2)
    ref.load_state_dict(saved_and_loaded(ours2.state_dict()))
    torch.testing.assert_close(ref(x), ours2(x))
    assert_whole_module_round_trips(ours2, x, ref(x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_device_and_dtype_arguments(device, dtype):
    m = ConvTranspose1dExt(4, 6, 3, stride=2, device=device, dtype=dtype)
    ref = nn.ConvTranspose1d(4, 6, 3, stride=2, device=device, dtype=dtype)
    for p, p_ref in zip(m.parameters(), ref.parameters(), strict=True):
        assert p.device == p_ref.device and p.dtype == p_ref.dtype
    y = m(torch.randn(2, 4, 10, device=device, dtype=dtype))
    assert y.dtype == dtype and y.device.type == device and y.shape == (2, 6, 21)


@pytest.mark.parametrize("kwargs", [
    dict(groups=0), dict(groups=-1), dict(groups=3), dict(padding_mode="reflect"), dict(padding_mode="bad"),
    dict(in_channels=4, out_channels=6, groups=4),
])
def test_constructor_errors_match_nn_conv_transpose1d(kwargs):
    assert_same_constructor_error(nn.ConvTranspose1d, ConvTranspose1dExt,
                                  {"in_channels": 4, "out_channels": 8, "kernel_size": 3, **kwargs},
                                  lambda message: message.replace("ConvTranspose1d", "ConvTranspose1dExt"))


def test_forward_errors_match_nn_conv_transpose1d():
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1)
    ours = ConvTranspose1dExt(4, 6, 3, stride=2, padding=1)
    bad_calls = [((t(2, 3, 10),), {}), ((t(4),), {}), ((t(2, 4, 10, dtype=torch.float64),), {}),
                 ((t(2, 4, 10),), {"output_size": [30]}),  # valid: 19 or 20
                 ((t(2, 4, 10),), {"output_size": [1, 19]}),  # neither 1 nor 3 elements
                 ((t(2, 4, 1),), {"output_size": [0]})]
    for args, kwargs in bad_calls:
        with pytest.raises(Exception) as expected:
            ref(*args, **kwargs)
        with pytest.raises(Exception) as got:
            ours(*args, **kwargs)
        assert type(got.value) is type(expected.value), (args[0].shape, kwargs, got.value, expected.value)
    ref.padding_mode = ours.padding_mode = "reflect"  # set after construction: forward refuses it
    with pytest.raises(ValueError, match="Only `zeros` padding mode"):
        ref(t(2, 4, 10))
    with pytest.raises(ValueError, match="Only `zeros` padding mode"):
        ours(t(2, 4, 10))


def test_public_api():
    for name in ("conv_transpose1d", "ConvTranspose1dExt", "convert_convs", "StreamingConvTranspose1d"):
        assert name in conv1d_ext.__all__ and getattr(conv1d_ext, name).__doc__
