"""conv1d_ext.conv1d against torch.nn.functional.conv1d: every argument form F.conv1d takes (ints,
1-tuples, lists, 'same', 'valid', unbatched input, bias or not), outputs and all three gradients through
autograd (our registered backward), in every dtype, on each device, within conv_ref's error bound."""

import pytest
import torch
import torch.nn.functional as F
from conv_ref import FLOAT_DTYPES, assert_close_to_reference, examples, seeded, torch_threads
from hypothesis import given, settings
from hypothesis import strategies as st

import conv1d_ext

# The reference's F.conv1d(padding="same") with an even kernel copies its input; so be it.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


@st.composite
def functional_calls(draw):
    """(input shape, weight shape, has bias, kwargs for conv1d) in all the argument spellings."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans())
    in_pg = 1 if depthwise else draw(st.integers(1, 5))
    out_pg = draw(st.integers(1, 4))
    k = draw(st.integers(1, 7))
    dilation = draw(st.integers(1, 3))
    span = dilation * (k - 1) + 1
    padding_kind = draw(st.sampled_from(["int", "tuple", "list", "same", "valid", "default"]))
    stride = 1 if padding_kind == "same" else draw(st.integers(1, 3))
    pad = draw(st.integers(0, span))
    padding = {"int": pad, "tuple": (pad,), "list": [pad], "same": "same", "valid": "valid",
               "default": 0}[padding_kind]
    total_pad = {"same": span - 1, "valid": 0, "default": 0}.get(padding_kind, 2 * pad)
    length = max(1, span - total_pad) + draw(st.integers(0, 20))  # F.conv1d rejects length 0
    spell = draw(st.sampled_from([lambda v: v, lambda v: (v,), lambda v: [v]]))
    kwargs = {"padding": padding}
    if stride != 1 or draw(st.booleans()):
        kwargs["stride"] = spell(stride)
    if dilation != 1 or draw(st.booleans()):
        kwargs["dilation"] = spell(dilation)
    if groups != 1 or draw(st.booleans()):
        kwargs["groups"] = groups
    batch = draw(st.sampled_from([None, 0, 1, 2, 3]))  # None: unbatched (C, L)
    in_shape = (groups * in_pg, length) if batch is None else (batch, groups * in_pg, length)
    return in_shape, (groups * out_pg, in_pg, k), draw(st.booleans()), kwargs, draw(st.integers(0, 2**31))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_conv1d_matches_functional(device, dtype, strict_fp32):
    """Outputs and gradients against F.conv1d in float64 on the same (dtype-rounded) operands and
    grad_output, within conv_ref's per-element bound (magnitudes: the same calls on |operands|)."""

    @settings(max_examples=examples(80))
    @given(call=functional_calls())
    def check(call):
        in_shape, w_shape, has_bias, kwargs, seed = call
        gen = torch.Generator().manual_seed(seed)

        def rand(shape):  # values rounded to dtype first: the reference sees what our kernels see
            return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)

        x, w = rand(in_shape), rand(w_shape)
        b = rand(w_shape[0]) if has_bias else None
        leaves = [t.clone().requires_grad_() for t in (x, w, b) if t is not None]
        refs = [t.detach().cpu().double().requires_grad_() for t in leaves]
        absolute = [t.detach().cpu().double().abs().requires_grad_() for t in leaves]

        def call_with(f, tensors):
            return f(tensors[0], tensors[1], tensors[2] if has_bias else None, **kwargs)

        y = call_with(conv1d_ext.conv1d, leaves)
        with torch_threads(1):
            y_ref, y_abs = call_with(F.conv1d, refs), call_with(F.conv1d, absolute)
        assert y.shape == y_ref.shape and y.dtype == dtype and y.device.type == device
        out_channels, in_pg, k = w_shape
        per_channel = y.numel() // out_channels if out_channels else 0  # batch * out_len
        reductions = (in_pg * k + 1, (out_channels // kwargs.get("groups", 1)) * k, per_channel, per_channel)
        assert_close_to_reference("output", y, y_ref.detach(), y_abs.detach(), reductions[0], dtype,
                                  context=str(call))
        if y.numel():
            gy = rand(y.shape)
            grads = torch.autograd.grad(y, leaves, gy)
            with torch_threads(1):
                grads_ref = torch.autograd.grad(y_ref, refs, gy.cpu().double())
                grads_abs = torch.autograd.grad(y_abs, absolute, gy.cpu().double().abs())
            for name, g, g_ref, g_abs, red in zip(("grad_input", "grad_weight", "grad_bias"), grads, grads_ref,
                                                  grads_abs, reductions[1:], strict=False):
                assert_close_to_reference(name, g, g_ref, g_abs, red, dtype, context=str(call))
        assert torch.equal(x, leaves[0].detach()) and torch.equal(w, leaves[1].detach())

    seeded(check, "test_conv1d_matches_functional", device, str(dtype))()


@pytest.mark.parametrize("k,dilation", [(1, 1), (2, 1), (3, 1), (4, 1), (4, 3), (5, 2), (8, 1)])
def test_same_padding_even_and_odd_kernels(device, k, dilation):
    """'same' with an odd total padding puts the extra zero on the right, like PyTorch."""
    x = torch.randn(2, 3, 11, dtype=torch.float64, device=device)
    w = torch.randn(4, 3, k, dtype=torch.float64, device=device)
    y = conv1d_ext.conv1d(x, w, padding="same", dilation=dilation)
    torch.testing.assert_close(y, F.conv1d(x, w, padding="same", dilation=dilation))
    assert y.shape[-1] == 11


def test_unbatched_input_gives_unbatched_output(device):
    x = torch.randn(3, 9, dtype=torch.float64, device=device)
    w = torch.randn(6, 1, 3, dtype=torch.float64, device=device)
    b = torch.randn(6, dtype=torch.float64, device=device)
    y = conv1d_ext.conv1d(x, w, b, stride=2, padding=1, groups=3)
    assert y.shape == (6, 5)
    torch.testing.assert_close(y, F.conv1d(x, w, b, stride=2, padding=1, groups=3))


def test_empty_batch(device):
    x = torch.randn(0, 4, 9, device=device, requires_grad=True)
    w = torch.randn(2, 4, 3, device=device, requires_grad=True)
    b = torch.randn(2, device=device, requires_grad=True)
    y = conv1d_ext.conv1d(x, w, b)
    assert y.shape == F.conv1d(x, w, b).shape == (0, 2, 7)
    gx, gw, gb = torch.autograd.grad(y.sum(), (x, w, b))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))


def test_zero_input_channels(device):
    """C_in = 0 (weight (C_out, 0, k)): an empty sum, the output is the bias alone. (F.conv1d returns a
    (N, 0, L_out) tensor here, so the reference is F.conv1d over one all-zero channel.)"""
    x = torch.randn(2, 0, 6, device=device)
    w = torch.randn(3, 0, 2, device=device)
    b = torch.randn(3, device=device)
    expected = F.conv1d(torch.zeros(2, 1, 6, device=device), torch.zeros(3, 1, 2, device=device), b)
    torch.testing.assert_close(conv1d_ext.conv1d(x, w, b), expected)


def test_stride_given_as_integer_tensor(device):
    """F.conv1d takes int-like values (0-d integer tensors, numpy ints) for the int arguments."""
    np = pytest.importorskip("numpy")
    x = torch.randn(1, 2, 12, dtype=torch.float64, device=device)
    w = torch.randn(2, 2, 3, dtype=torch.float64, device=device)
    torch.testing.assert_close(conv1d_ext.conv1d(x, w, stride=torch.tensor(2), padding=np.int64(1)),
                               F.conv1d(x, w, stride=torch.tensor(2), padding=np.int64(1)))
