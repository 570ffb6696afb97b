"""Conv1dExt as a drop-in nn.Conv1d: outputs and all gradients for every padding mode, constructor and
defaults, parameters and their initialisation, state_dict both ways, repr. from_conv1d and convert_conv1d:
api/test_conversion.py."""

import copy

import pytest
import torch
from conv_ref import assert_close_to_reference, examples, seeded, torch_threads
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

import conv1d_ext
from conv1d_ext import Conv1dExt


@st.composite
def module_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 6))
    dilation = draw(st.integers(1, 3))
    padding_mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    padding = draw(st.sampled_from(["int", "same", "valid"]))
    stride = 1 if padding == "same" else draw(st.integers(1, 3))
    if padding == "int":
        padding = draw(st.integers(0, 4))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  bias=draw(st.booleans()), padding_mode=padding_mode)
    span = dilation * (k - 1) + 1
    pad_each = (span - 1) if padding == "same" else (0 if padding == "valid" else padding)
    # reflect needs padding < length; circular padding <= length; all need padded length >= span
    length = max(pad_each + 1, span, 1) + draw(st.integers(0, 12))
    batch = draw(st.sampled_from([None, 0, 1, 3]))
    return (in_channels, out_channels, k), kwargs, batch, length, draw(st.integers(0, 2**31))


def twin_modules(args, kwargs, device, dtype):
    """An nn.Conv1d in float64 and a Conv1dExt in `dtype` with identical parameters: the reference's are
    rounded to `dtype` first, so both compute with the same values."""
    ref = nn.Conv1d(*args, **kwargs, device=device, dtype=torch.float64)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(dtype).double())
    ours = Conv1dExt(*args, **kwargs, device=device, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # the reference's
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_module_matches_nn_conv1d(device, dtype, strict_fp32):
    """Output and gradients against nn.Conv1d in float64 on the same (dtype-rounded) parameters, input and
    grad_output, within conv_ref's per-element bound; the magnitudes come from an nn.Conv1d with
    |parameters| run on |input| and |grad_output| (every padding mode maps |x| to |padded x|)."""

    @settings(max_examples=examples(60))
    @given(cfg=module_configs())
    def check(cfg):
        args, kwargs, batch, length, seed = cfg
        torch.manual_seed(seed)
        ref, ours = twin_modules(args, kwargs, device, dtype)
        absolute = copy.deepcopy(ref)
        with torch.no_grad():
            for p in absolute.parameters():
                p.abs_()
        shape = (args[0], length) if batch is None else (batch, args[0], length)
        x = torch.randn(shape, dtype=torch.float64, device=device).to(dtype)
        x_ref = x.detach().double().requires_grad_()
        x_abs = x.detach().double().abs().requires_grad_()
        x_ours = x.clone().requires_grad_()
        y = ours(x_ours)
        with torch_threads(1):
            y_ref, y_abs = ref(x_ref), absolute(x_abs)
        assert y.shape == y_ref.shape and y.dtype == dtype
        in_channels, out_channels, k = args
        groups = kwargs["groups"]
        per_channel = y.numel() // out_channels  # batch * out_len
        # Reduction lengths of output (+ bias), grad_input, grad_weight, grad_bias. With a padding mode
        # other than zeros an input element appears up to 3 times in the padded row (itself, a left and a
        # right reflection or wrap), and PyTorch's pad backward adds those grad_input values up.
        copies = 1 if kwargs["padding_mode"] == "zeros" else 3
        reductions = (in_channels // groups * k + 1, copies * out_channels // groups * k, per_channel,
                      per_channel)
        assert_close_to_reference("output", y, y_ref.detach(), y_abs.detach(), reductions[0], dtype,
                                  context=str(cfg))
        if y.numel():
            gy = torch.randn_like(y_ref).to(dtype)
            grads = torch.autograd.grad(y, [x_ours] + list(ours.parameters()), gy)
            with torch_threads(1):
                grads_ref = torch.autograd.grad(y_ref, [x_ref] + list(ref.parameters()), gy.double())
                grads_abs = torch.autograd.grad(y_abs, [x_abs] + list(absolute.parameters()), gy.double().abs())
            names = ["grad_input", "grad_weight", "grad_bias"]  # no bias: the zip stops at weight
            for name, got, want, mag, red in zip(names, grads, grads_ref, grads_abs, reductions[1:], strict=False):
                assert_close_to_reference(name, got, want, mag, red, dtype, context=str(cfg))
        assert torch.equal(x, x_ours.detach()), "the module modified its input"

    seeded(check, "test_module_matches_nn_conv1d", device, str(dtype))()


# ---------------------------------------------------------------------------------------------------
# Drop-in: constructor, parameters, initialisation, state_dict, repr
# ---------------------------------------------------------------------------------------------------

CTOR_CASES = [
    ((4, 8, 3), {}),
    ((4, 8, 3), dict(stride=2, padding=1, dilation=2, groups=2, bias=False)),
    ((6, 6, (5,)), dict(padding="same", padding_mode="reflect", groups=6)),
    ((3, 5, 4), dict(padding="valid", padding_mode="circular", stride=(3,))),
    ((2, 4, 2), dict(padding=(1,), padding_mode="replicate", dilation=(2,))),
]


@pytest.mark.parametrize("args,kwargs", CTOR_CASES)
def test_is_an_nn_conv1d_with_the_same_parameters_repr_and_init(args, kwargs):
    torch.manual_seed(0)
    ref = nn.Conv1d(*args, **kwargs)
    torch.manual_seed(0)
    ours = Conv1dExt(*args, **kwargs)
    assert_is_a_drop_in(ours, ref, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                                    "groups", "padding_mode", "transposed", "output_padding",
                                    "_reversed_padding_repeated_twice"))


def test_initialisation_statistics():
    """kaiming_uniform_(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias, as nn.Conv1d."""
    torch.manual_seed(1)
    assert_uniform_init(Conv1dExt(64, 128, 5, groups=2), fan_in=32 * 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_device_and_dtype_arguments(device, dtype):
    m = Conv1dExt(4, 6, 3, device=device, dtype=dtype)
    ref = nn.Conv1d(4, 6, 3, device=device, dtype=dtype)
    for p, p_ref in zip(m.parameters(), ref.parameters(), strict=False):
        assert p.device == p_ref.device and p.dtype == p_ref.dtype
    y = m(torch.randn(2, 4, 10, device=device, dtype=dtype))
    assert y.dtype == dtype and y.device.type == device


def test_state_dict_loads_both_ways():
    torch.manual_seed(2)
    ref = nn.Conv1d(4, 6, 3, padding=1, groups=2)
    ours = Conv1dExt(4, 6, 3, padding=1, groups=2)
    ours.load_state_dict(ref.state_dict())  # strict: same keys and shapes
    x = torch.randn(2, 4, 9, dtype=torch.float32)
    torch.testing.assert_close(ours(x), ref(x))
    torch.manual_seed(3)
    ours2 = Conv1dExt(4, 6, 3, padding=1, groups=2)
    ref.load_state_dict(ours2.state_dict())
    torch.testing.assert_close(ref(x), ours2(x))
    fresh = nn.Conv1d(4, 6, 3, padding=1, groups=2)
    fresh.load_state_dict(saved_and_loaded(ours2.state_dict()))  # through a file, as checkpoints travel
    torch.testing.assert_close(fresh(x), ours2(x))


def test_whole_module_save_load_and_deepcopy():
    m = Conv1dExt(3, 4, 3, padding="same")
    x = torch.randn(1, 3, 8)
    assert_whole_module_round_trips(m, x, m(x))


@pytest.mark.parametrize("kwargs", [
    dict(groups=0), dict(groups=-1), dict(groups=3), dict(padding="foo"), dict(padding="same", stride=2),
    dict(padding_mode="bad"), dict(in_channels=4, out_channels=6, groups=4),
])
def test_constructor_errors_match_nn_conv1d(kwargs):
    assert_same_constructor_error(nn.Conv1d, Conv1dExt,
                                  {"in_channels": 4, "out_channels": 8, "kernel_size": 3, **kwargs})


def test_public_api():
    assert conv1d_ext.conv1d.__doc__ and conv1d_ext.Conv1dExt.__doc__ and conv1d_ext.convert_conv1d.__doc__
    for name in ("conv1d", "conv1d_backward_input", "conv1d_backward_weight", "conv1d_backward_bias"):
        assert hasattr(conv1d_ext.ops, name)
