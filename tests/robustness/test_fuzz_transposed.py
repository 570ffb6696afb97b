"""Hostile arguments for conv1d_ext.conv_transpose1d (hypothesis; see test_fuzz_conv1d.py for what is drawn
and required): every call matches F.conv_transpose1d and its autograd in float64 within conv_ref's error
model, or raises the exception type PyTorch raises; never a crash, a hang, a runaway allocation, a modified
input or NaN poison left in an output. Where F.conv_transpose1d truncates stride and dilation to 32 bits,
conv1d_ext must raise or compute the exact result."""


import torch
import torch.nn.functional as F
from conv_ref import examples, seeded, torch_threads
from fuzz_guards import (
    HUGE,
    IMPOSSIBLE_BYTES,
    Guarded,
    _assert_matches,
    _assert_unmodified,
    _hostile_int,
    _in_int64,
    _run,
    _same_error,
    _skip_if_real_but_big,
    _snapshot,
    _stricter_on_empty_input,
    _view,
    memory_cap,  # noqa: F401  (the autouse fixture)
    tensor_layout,
)
from hypothesis import given, note, settings
from hypothesis import strategies as st

import conv1d_ext


@st.composite
def transpose_calls(draw):
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.bfloat16]))
    groups = draw(st.sampled_from([1, 1, 2]))
    in_pg, out_pg = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    k = draw(st.sampled_from([1, 2, 3, 4]))
    stride, dilation = draw(_hostile_int()), draw(_hostile_int())
    padding = draw(st.integers(0, 3) | st.sampled_from(HUGE) | st.just(-1))
    output_padding = draw(st.sampled_from([0, 0, 1, 2]) | st.sampled_from(HUGE))
    batch = draw(st.sampled_from([0, 1, 2]))
    in_len = draw(st.sampled_from([0, 1, 1, 2, 3]) | st.integers(4, 20))
    return dict(dtype=dtype, x_shape=(batch, groups * in_pg, in_len), w_shape=(groups * in_pg, out_pg, k),
                stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
                bias=draw(st.booleans()), x_layout=draw(tensor_layout()), grads=draw(st.sampled_from(["", "x", "xw"])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _autograd_reference(fn, tensors, grads_of, gy, absolute):
    """fn(*float64 tensors) and the gradients of <fn, gy> for the tensors named in grads_of, in float64 (on
    |tensors| and |gy| when absolute: the magnitudes of the error model)."""
    prepped = [None if t is None else (t.detach().double().abs() if absolute else t.detach().double())
               .requires_grad_() for t in tensors]
    with torch_threads(1), torch.enable_grad():
        y = fn(*prepped)
        wanted = [t for t, want in zip(prepped, grads_of, strict=True) if want and t is not None]
        g = gy.double().abs() if absolute else gy.double()
        grads = torch.autograd.grad(y, wanted, g) if wanted and y.numel() else ()
    return y.detach(), [r.detach() for r in grads]


def test_conv_transpose1d_hostile_arguments():
    @settings(max_examples=examples(300))
    @given(call=transpose_calls())
    def check(call):
        note(repr(call))
        dtype = call["dtype"]
        gen = torch.Generator().manual_seed(call["seed"])
        x, x_base = _view(call["x_shape"], dtype, call["x_layout"], gen)
        w = torch.randn(call["w_shape"], generator=gen, dtype=torch.float64).to(dtype)
        b = torch.randn(call["w_shape"][1] * call["groups"], generator=gen, dtype=torch.float64).to(dtype) \
            if call["bias"] else None
        args = {key: call[key] for key in ("stride", "padding", "output_padding", "groups", "dilation")}
        stride, dilation = call["stride"], call["dilation"]
        n, in_channels, in_len = call["x_shape"]
        k = call["w_shape"][2]
        out_channels = call["w_shape"][1] * call["groups"]
        out_len = (in_len - 1) * stride - 2 * call["padding"] + dilation * (k - 1) + call["output_padding"] + 1
        numel = n * out_channels * max(out_len, 0) if min(stride, dilation) > 0 and call["padding"] >= 0 else 0
        _skip_if_real_but_big(numel)
        grads_of = ("x" in call["grads"], "w" in call["grads"], False)
        x.requires_grad_(grads_of[0])
        w.requires_grad_(grads_of[1])
        snapshot = _snapshot([x_base, w, b])
        ours = Guarded(lambda: conv1d_ext.conv_transpose1d(x, w, b, **args))
        ours.check_cheap()
        _assert_unmodified(snapshot)
        if not _in_int64(*(call[key] for key in ("stride", "padding", "output_padding", "groups", "dilation"))):
            _same_error(ours.error, _run(lambda: F.conv_transpose1d(x, w, b, **args))[1], repr(call))
            return
        if max(stride, dilation, call["output_padding"], call["padding"]) >= 2**31 and min(stride, dilation) > 0:
            # F.conv_transpose1d narrows stride, dilation and output_padding to 32 bits (stride 2^32 reads as
            # 0; output_padding 2^32 as 0, so it accepts what its own rule forbids): no reference. Ours
            # raises a RuntimeError or returns an output of the exact length, finite.
            if ours.error is None:
                assert ours.value.shape[-1] == out_len and torch.isfinite(ours.value).all()
            else:
                assert isinstance(ours.error, RuntimeError), repr(ours.error)
            return
        if numel * 8 > IMPOSSIBLE_BYTES:
            assert isinstance(ours.error, RuntimeError), repr(ours.error)
            return
        # PyTorch's CPU paths disagree by dtype (a length-0 output: empty for float32, an error for float64;
        # a zero dilation: accepted by bfloat16): its float32 call decides, as for conv1d_ext
        # (test_transpose.test_zero_length_output).
        xd, wd, bd = x.detach().float(), w.detach().float(), None if b is None else b.float()
        with torch_threads(1):
            _, expected_error = _run(lambda: F.conv_transpose1d(xd, wd, bd, **args))
        if expected_error is not None:
            if out_len == 0 and "Output size is too small" in str(expected_error) and ours.error is None:
                # A length-0 output: PyTorch's paths disagree (empty, or this error, by dtype and dilation);
                # conv1d_ext returns it empty (test_transpose.test_zero_length_output).
                assert ours.value.shape[-1] == 0
                return
            _same_error(ours.error, expected_error, repr(call))
            return
        if _stricter_on_empty_input(x, ours.error):
            return
        assert ours.error is None, repr(ours.error)
        y = ours.value
        gy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype)
        if y.numel() == 0:  # nothing to compare (PyTorch's float64 path may even refuse a length-0 output)
            assert tuple(y.shape) == (n, out_channels, max(out_len, 0))
            return
        grads = torch.autograd.grad(y, [t for t, want in zip((x, w), grads_of, strict=False) if want], gy) \
            if any(grads_of) else ()

        def ref_fn(xr, wr, br):
            return F.conv_transpose1d(xr, wr, br, **args)

        ref, ref_grads = _autograd_reference(ref_fn, (x, w, b), grads_of, gy, absolute=False)
        mag, mag_grads = _autograd_reference(ref_fn, (x, w, b), grads_of, gy, absolute=True)
        in_pg = in_channels // call["groups"]
        # The bias is added to the rounded convolution (docs/differences.md): one more 16-bit rounding of
        # |ref| + |bias|.
        _assert_matches("output", y, ref, mag, in_pg * k + 1, dtype, repr(call), extra_rounding=b is not None)
        reductions = {"x": call["w_shape"][1] * k, "w": n * in_len}
        names = [name for name, want in zip(("x", "w"), grads_of, strict=False) if want]
        for name, got, r, m in zip(names, grads, ref_grads, mag_grads, strict=True):
            _assert_matches(f"grad_{name}", got, r, m, reductions[name], dtype, repr(call))

    seeded(check, "test_conv_transpose1d_hostile_arguments")()
