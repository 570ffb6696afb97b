"""Hostile arguments (hypothesis): stride, dilation and padding near the limits (2^31, 2^32, 2^62,
2^63 - 1, and past int64), lengths 0 and 1, output lengths 0 and 1, groups = channels, zero-size
dimensions, overlapping / expanded / storage-offset / channels-last views, requires_grad mixes, every
float dtype. Every call must either match PyTorch (F.conv1d, F.conv_transpose1d, F.conv1d on the
left-padded input for the causal op, and their autograd, in float64, within conv_ref's error model) or
raise the exception type PyTorch raises; never crash, hang or allocate far beyond the tensors; never
modify an input (the whole storage under each view is compared); leave no NaN poison in an output
(CONV1D_EXT_POISON_OUTPUTS=1, set by conftest.py, is asserted here).

Where PyTorch itself goes wrong the expected behaviour is stated instead (see _torch_is_undefined):
F.conv1d wraps silently when in_len + 2 * padding or dilation * (kernel_size - 1) + 1 overflows int64
(dilation 2^62 with a 3-tap kernel gives an output of length 5 from a 5-long input); F.conv_transpose1d
truncates stride and dilation to 32 bits (stride 2^32 reads as 0). There conv1d_ext must raise a
RuntimeError (overflow) or compute the exact result.

This file: conv1d_ext.conv1d and the ops themselves (CPU, and the CUDA kernels under the emulator);
conv_transpose1d and the causal ops: test_fuzz_transposed.py, test_fuzz_causal.py; the shared guards:
support/fuzz_guards.py. Examples per test: conv_ref.examples (CONV1D_EXT_TEST_SCALE=10 or
CONV1D_EXT_HYPOTHESIS=explore for more).
"""

import contextlib
import math
import os

import pytest
import torch
import torch.nn.functional as F
from conv_ref import examples, seeded, torch_threads
from fuzz_guards import (
    HUGE,
    IMPOSSIBLE_BYTES,
    INT64_MAX,
    MAX_COMPUTED_NUMEL,
    MID,
    PAST_INT64,
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


def test_poisoning_is_on():
    """The no-poison-left checks below mean something only while outputs start as NaN."""
    assert conv1d_ext.build_info()["poison_outputs"]
    x, w = torch.randn(1, 1, 4), torch.randn(1, 1, 1)
    assert torch.ops.conv1d_ext.conv1d(x, w, None, 1, 0, 0, 1, 1).isfinite().all()


# ---------------------------------------------------------------------------------------------------
# conv1d (the forward op and, through autograd, the three backward ops)
# ---------------------------------------------------------------------------------------------------


# What a drawn call stresses (each draws its own argument values):
#   edge      small arguments at the boundaries: output length exactly 1 or 0 (one short), lengths 0 and 1,
#             zero-size dimensions, groups = channels, 'same' / 'valid', every layout;
#   reach     padding far beyond the tensors with a stride (or a dilation) of the same order, so the output
#             has a few positions (the kernels' geometry is astronomically larger than the tensors);
#   overflow  arguments whose padded length or kernel span overflow int64 (PyTorch wraps silently);
#   any       every argument drawn from small, huge, invalid and past-int64 values independently;
#   invalid   a channel or bias size that does not fit (PyTorch's errors, in its order).
SCENARIOS = ["edge", "edge", "reach", "reach", "overflow", "any", "any", "invalid"]


@st.composite
def conv1d_calls(draw):
    scenario = draw(st.sampled_from(SCENARIOS))
    dtype = draw(st.sampled_from([torch.float64, torch.float64, torch.float32, torch.bfloat16, torch.float16]))
    batch = draw(st.sampled_from([1, 1, 2, 3, 0]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_pg = draw(st.sampled_from([1, 1, 2, 3, 0]))  # 1: groups = channels (depthwise)
    out_pg = draw(st.sampled_from([1, 2, 3]))
    in_channels = groups * in_pg + (1 if scenario == "invalid" and draw(st.booleans()) else 0)
    k = draw(st.sampled_from([1, 2, 3, 4, 5] + ([0] if scenario in ("edge", "any") else [])))
    in_len = draw(st.integers(0, 3) | st.integers(4, 40))
    stride, dilation, padding = 1, 1, 0
    if scenario in ("edge", "invalid"):
        stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        padding = draw(st.integers(0, 3) | st.sampled_from(["same", "valid"]))
        if padding == "same":
            stride = 1
        # the boundary of the output length: exactly 1, or one position short of it (0: an error)
        span, pad_total = dilation * (k - 1) + 1, 2 * padding if isinstance(padding, int) else 0
        if padding != "same" and draw(st.booleans()):
            past = draw(st.sampled_from([0, 1])) * (1 + draw(st.integers(0, stride - 1)))
            in_len = max(0, span - pad_total - 1 + past)
    elif scenario == "reach":
        padding = draw(st.sampled_from(MID + HUGE[:7]))
        if draw(st.booleans()):  # a stride of the padding's order: a few outputs
            stride = max(1, 2 * padding // draw(st.sampled_from([1, 2, 3, 5])) + draw(st.integers(-3, 3)))
        else:  # a dilation of the padding's order: a kernel whose outer taps read only padding
            dilation = max(1, 2 * padding // max(k - 1, 1) - draw(st.integers(0, 3)))
            stride = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)) == 0:
            padding, stride = "same", 1
    elif scenario == "overflow":
        stride = draw(st.integers(1, 3) | st.sampled_from(HUGE))
        dilation = draw(st.sampled_from([2**61, 2**62 - 1, 2**62, INT64_MAX // 2 + 1, INT64_MAX]))
        padding = draw(st.sampled_from([0, 1, "same", 2**62 - 1, 2**61]))
        if draw(st.booleans()):
            dilation = draw(st.integers(1, 3))
            padding = draw(st.sampled_from([2**62 - 1, 2**62 - 2, 2**62 - 20]))
    else:  # any
        stride, dilation = draw(_hostile_int()), draw(_hostile_int())
        padding = draw(st.one_of(st.integers(0, 3), st.sampled_from(HUGE + MID), st.sampled_from(["same", "valid"]),
                                 st.just(-1) | st.sampled_from(PAST_INT64)))
    bias = draw(st.sampled_from(["none", "ok", "ok"] + (["wrong"] if scenario == "invalid" else [])))
    return dict(scenario=scenario, dtype=dtype, x_shape=(batch, in_channels, in_len),
                w_shape=(groups * out_pg, in_pg, k), bias=bias, stride=stride, padding=padding, dilation=dilation,
                groups=groups, x_layout=draw(tensor_layout()), w_layout=draw(tensor_layout()),
                grads=draw(st.sampled_from(["", "x", "w", "b", "xw", "xwb", "wb"])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _torch_is_undefined(x_shape, w_shape, stride, padding, dilation, groups):
    """True when F.conv1d's int64 arithmetic would overflow for these (otherwise valid) arguments: then its
    result means nothing, and conv1d_ext must raise a RuntimeError."""
    if not (isinstance(padding, int) or padding == "same") or min(stride, dilation, groups) <= 0:
        return False
    k = w_shape[2]
    if k <= 0:
        return False
    if padding == "same":
        total = dilation * (k - 1)
        return total > INT64_MAX or x_shape[2] + total > INT64_MAX
    if padding < 0 or padding > INT64_MAX // 2:
        return False  # PyTorch's own checks reject these first
    return x_shape[2] + 2 * padding > INT64_MAX or dilation * (k - 1) + 1 > INT64_MAX


def _expected_numel(x_shape, w_shape, stride, padding, dilation):
    n, _, length = x_shape
    k = w_shape[2]
    if padding == "same":
        pad_total = dilation * (k - 1)
    elif padding == "valid":
        pad_total = 0
    else:
        pad_total = 2 * padding
    out_len = (length + pad_total - dilation * (k - 1) - 1) // stride + 1
    return n * w_shape[0] * max(out_len, 0), out_len


def test_conv1d_hostile_arguments():
    @settings(max_examples=examples(600))
    @given(call=conv1d_calls())
    def check(call):
        _check_conv1d_call(call)

    seeded(check, "test_conv1d_hostile_arguments")()


def _check_conv1d_call(call):
    note(repr(call))
    dtype = call["dtype"]
    gen = torch.Generator().manual_seed(call["seed"])
    x, x_base = _view(call["x_shape"], dtype, call["x_layout"], gen)
    w, w_base = _view(call["w_shape"], dtype, call["w_layout"], gen)
    out_channels = call["w_shape"][0]
    b = {"none": None, "ok": torch.randn(out_channels, generator=gen, dtype=torch.float64).to(dtype),
         "wrong": torch.randn(out_channels + 1, generator=gen, dtype=torch.float64).to(dtype)}[call["bias"]]
    stride, padding, dilation, groups = call["stride"], call["padding"], call["dilation"], call["groups"]
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    context = repr(call)
    valid_shapes = (groups > 0 and call["x_shape"][1] == call["w_shape"][1] * groups and call["bias"] != "wrong"
                    and out_channels % groups == 0 and out_channels >= groups)
    in_int64 = _in_int64(stride, padding, dilation)
    undefined = in_int64 and valid_shapes and _torch_is_undefined(call["x_shape"], call["w_shape"], stride, padding,
                                                                  dilation, groups)
    numel, out_len = (0, 0)
    if in_int64 and valid_shapes and not undefined and min(stride, dilation) > 0 and padding != -1:
        numel, out_len = _expected_numel(call["x_shape"], call["w_shape"], stride, padding, dilation)
    itemsize = torch.empty((), dtype=dtype).element_size()
    _skip_if_real_but_big(numel, itemsize)
    for name, t in (("x", x), ("w", w), ("b", b)):
        if t is not None and name in call["grads"]:
            t.requires_grad_()
    snapshot = _snapshot([x_base, w_base, b])

    ours = Guarded(lambda: conv1d_ext.conv1d(x, w, b, **args))
    ours.check_cheap()
    _assert_unmodified(snapshot)

    if not in_int64:  # PyTorch's argument parser: ValueError
        _same_error(ours.error, _run(lambda: F.conv1d(x, w, b, **args))[1], context)
        return
    if undefined:
        assert isinstance(ours.error, RuntimeError), f"overflow must raise a RuntimeError, got {ours.error!r}"
        return
    if numel * itemsize > IMPOSSIBLE_BYTES and out_len > 0:
        # No machine holds the output: PyTorch's allocator refuses; so must ours, cleanly.
        assert isinstance(ours.error, RuntimeError), f"expected an allocation failure, got {ours.error!r}"
        return

    if valid_shapes and _torch_is_unreliable(call):
        # PyTorch's own checks narrow these values (its errors and lengths are wrong): valid calls are
        # decided in exact arithmetic, and computed values compared with _definition_conv1d.
        expected_error = None if _valid_in_exact_arithmetic(call) else RuntimeError("invalid")
        if expected_error is not None:
            assert isinstance(ours.error, RuntimeError), f"expected a RuntimeError, got {ours.error!r}. {context}"
            return
    else:
        with torch_threads(1):
            _, expected_error = _run(lambda: F.conv1d(x.detach(), w.detach(), b, **args))
    documented = _documented_difference(call, expected_error) if out_len > 0 and call["w_shape"][2] > 0 else None
    if expected_error is not None and documented is None:
        if _stricter_on_empty_input(x, ours.error, expected_error):
            return
        _same_error(ours.error, expected_error, context)
        return
    if _stricter_on_empty_input(x, ours.error):
        return
    assert ours.error is None, f"PyTorch computes this call; conv1d_ext raises {ours.error!r}. {context}"
    _check_conv1d_values(call, x, w, b, ours.value, args, documented, context)
    _assert_unmodified(snapshot)


def _torch_is_unreliable(call):
    """Where F.conv1d's values (or its autograd) cannot be the reference, and _definition_conv1d is: a
    stride, dilation or padding of 2^31 or more (PyTorch's CPU backward narrows them to 32 bits: "Expected a
    tensor of dimension 4 and tensor.size[3] == 1 but got ... 2" for stride 2^31 + 2), and a padded length
    near int64's limit (x of length 1, padding 2^62 - 1, stride 2^61: its forward returns 3 positions, its
    backward expects the formula's 4)."""
    padding = call["padding"]
    pad_total = call["dilation"] * (call["w_shape"][2] - 1) if padding == "same" else \
        0 if padding == "valid" else 2 * padding
    return (max(call["stride"], call["dilation"], pad_total) >= 2**31
            or call["x_shape"][2] + pad_total + call["stride"] > 2**62)


def _valid_in_exact_arithmetic(call):
    """F.conv1d's argument rules (shapes already fit), in Python integers."""
    n, c, length = call["x_shape"]
    k = call["w_shape"][2]
    stride, padding, dilation = call["stride"], call["padding"], call["dilation"]
    if stride <= 0 or dilation <= 0 or k <= 0:
        return False
    if padding == "same":
        if stride != 1:
            return False
        pad_total = dilation * (k - 1)
    else:
        pad_total = 0 if padding == "valid" else 2 * padding
        if padding != "valid" and not 0 <= padding <= INT64_MAX // 2:
            return False
    return length + pad_total >= dilation * (k - 1) + 1


def _definition_conv1d(x, w, b, stride, padding, dilation, groups):
    """conv1d from its definition, y[n, o, t] = b[o] + sum over the group's channels c and taps k of
    w[o, c, k] * x[n, c, t*stride - pad_left + k*dilation] (0 outside the input), with the positions computed
    in Python integers (exact for any argument) and the arithmetic in PyTorch (a gather and an einsum),
    differentiable. For outputs of a few positions only."""
    n, c_in, length = x.shape
    c_out, in_pg, k = w.shape
    if padding == "same":
        total = dilation * (k - 1)
        pad_left, pad_right = total // 2, total - total // 2
    else:
        pad_left = pad_right = 0 if padding == "valid" else padding
    out_len = (length + pad_left + pad_right - dilation * (k - 1) - 1) // stride + 1
    assert out_len <= MAX_COMPUTED_NUMEL, "_definition_conv1d is for a few positions"
    index = [[t * stride - pad_left + j * dilation for j in range(k)] for t in range(out_len)]
    index = torch.tensor([[i + 1 if 0 <= i < length else 0 for i in row] for row in index], dtype=torch.long)
    x_ext = F.pad(x, (1, 0))  # position 0: the zero every padded tap reads
    cols = x_ext[:, :, index]  # (n, c_in, out_len, k)
    cols = cols.reshape(n, groups, in_pg, out_len, k)
    y = torch.einsum("ngctk,gock->ngot", cols, w.reshape(groups, c_out // groups, in_pg, k))
    y = y.reshape(n, c_out, out_len)
    return y if b is None else y + b[None, :, None]


def _documented_difference(call, expected_error):
    """docs/differences.md: zero input channels (an output of out_channels rows:
    the bias), and an empty input row with enough padding (the output is the bias; F.conv1d raises). Asked
    only for calls that are valid otherwise."""
    n, c, length = call["x_shape"]
    if c == 0 and expected_error is None:
        return "zero_channels"
    if length == 0 and expected_error is not None and "Kernel size can't be greater" not in str(expected_error) \
            and n > 0 and c > 0:
        return "empty_row"
    return None


def _reference_conv(x, w, b, args, absolute=False):
    def prep(t):
        if t is None:
            return None
        t = t.detach().double()
        return (t.abs() if absolute else t).requires_grad_()

    return prep(x), prep(w), prep(b)


def _check_conv1d_values(call, x, w, b, y, args, documented, context):
    dtype = call["dtype"]
    n, in_channels, length = call["x_shape"]
    out_channels, in_pg, k = call["w_shape"]
    if documented is not None:
        # Every output element is the bias (nothing but padding, or no input channel, is read).
        bias = b.detach().double() if b is not None else torch.zeros(out_channels, dtype=torch.float64)
        assert y.shape[:2] == (n, out_channels) and y.dtype == dtype, context
        _assert_matches("output", y, bias[None, :, None].expand(y.shape), bias.abs()[None, :, None].expand(y.shape),
                        1, dtype, context)
        return
    wanted = [t for name, t in (("x", x), ("w", w), ("b", b)) if t is not None and name in call["grads"]]
    if y.numel() == 0:  # an empty batch: nothing to compare but the gradients, which are zeros
        for t, g in zip(wanted, torch.autograd.grad(y, wanted, torch.zeros_like(y)) if wanted else (), strict=True):
            assert g.shape == t.shape and torch.equal(g, torch.zeros_like(g)), "gradient of an empty output"
        return
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(call["seed"] + 1),
                     dtype=torch.float64).to(dtype)
    grads = torch.autograd.grad(y, wanted, gy) if wanted else ()
    outputs = {}
    reference = F.conv1d if not _torch_is_unreliable(call) else _definition_conv1d
    for absolute in (False, True):
        xr, wr, br = _reference_conv(x, w, b, args, absolute)
        with torch_threads(1), torch.enable_grad():
            ref = reference(xr, wr, br, **args)
            want = [t for name, t in (("x", xr), ("w", wr), ("b", br)) if t is not None and name in call["grads"]]
            ref_grads = torch.autograd.grad(ref, want, gy.double().abs() if absolute else gy.double()) \
                if want else ()
        outputs[absolute] = (ref.detach(), ref_grads)
    (ref, ref_grads), (mag, mag_grads) = outputs[False], outputs[True]
    out_len = ref.shape[2]
    _assert_matches("output", y, ref, mag, in_pg * k + 1, dtype, context)
    names = [name for name in ("x", "w", "b") if name in call["grads"] and
             {"x": x, "w": w, "b": b}[name] is not None]
    reductions = {"x": (out_channels // max(call["groups"], 1)) * k, "w": n * out_len, "b": n * out_len}
    for name, got, r, m in zip(names, grads, ref_grads, mag_grads, strict=True):
        _assert_matches(f"grad_{name}", got, r.detach(), m.detach(), reductions[name], dtype, context)


# ---------------------------------------------------------------------------------------------------
# The ops themselves: any int arguments, asymmetric padding; never a crash
# ---------------------------------------------------------------------------------------------------


@st.composite
def op_calls(draw):
    """Either any values for every argument (mostly invalid calls), or a valid call (shapes that fit) with
    asymmetric padding far beyond the tensors and a stride or dilation of the same order ("reach")."""
    op = draw(st.sampled_from(["conv1d", "conv1d_backward_input", "conv1d_backward_weight"]))
    if draw(st.booleans()):
        ints = [draw(_hostile_int(small_lo=0)) for _ in range(5)]  # stride, pad_left, pad_right, dilation, groups
        ints[4] = draw(st.sampled_from([1, 1, 2, 0, -1, 2**62]))
        shape = lambda: tuple(draw(st.sampled_from([0, 1, 2, 3])) for _ in range(3))  # noqa: E731
        extra = draw(_hostile_int(small_lo=0) | st.integers(0, 12))  # input_len / kernel_size
        return dict(op=op, ints=ints, a=shape(), b=shape(), extra=extra, seed=draw(st.integers(0, 2**31 - 1)))
    groups, in_pg, out_pg = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3]))
    batch, k, in_len = draw(st.sampled_from([1, 2, 0])), draw(st.integers(1, 4)), draw(st.integers(0, 9))
    pad_left, pad_right = draw(st.sampled_from(MID + HUGE[:6] + [0, 1])), draw(st.sampled_from(MID + [0, 2]))
    padded = in_len + pad_left + pad_right
    stride, dilation = 1, 1
    if draw(st.booleans()):
        stride = max(1, padded // draw(st.sampled_from([1, 2, 3, 4])) - draw(st.integers(0, 2)))
    else:
        dilation = max(1, (padded - 1) // max(k - 1, 1) - draw(st.integers(0, 2)))
    span = dilation * (k - 1) + 1
    if padded >= span and (padded - span) // stride + 1 > 64:  # a 1-tap kernel: a stride makes it a few outputs
        stride = max(1, padded // 3)
    out_len = (padded - span) // stride + 1 if padded >= span else 0
    x_shape, w_shape = (batch, groups * in_pg, in_len), (groups * out_pg, in_pg, k)
    y_shape = (batch, groups * out_pg, max(out_len, 0))
    a, b, extra = {"conv1d": (x_shape, w_shape, 0), "conv1d_backward_input": (y_shape, w_shape, in_len),
                   "conv1d_backward_weight": (y_shape, x_shape, k)}[op]
    return dict(op=op, ints=[stride, pad_left, pad_right, dilation, groups], a=a, b=b, extra=extra,
                seed=draw(st.integers(0, 2**31 - 1)))


@pytest.mark.parametrize("backend", ["cpu", pytest.param("emulated", marks=pytest.mark.emulated)])
def test_ops_never_crash(backend):
    """The public ops (torch.ops.conv1d_ext.*, and the CUDA kernels under the emulator) with any argument
    values: a RuntimeError (the type of PyTorch's argument errors) or a finite result of the shape the
    arguments define, computed by PyTorch when it can be (padding up to 2^20: F.conv1d on the padded
    input)."""
    if backend == "emulated":
        from emulated import emulated_ops

        ops = emulated_ops()
    else:
        ops = torch.ops.conv1d_ext
    with torch_threads(1):  # warm up (first-call allocations are not the calls' own)
        ops.conv1d(torch.randn(1, 1, 4, dtype=torch.float64), torch.randn(1, 1, 1, dtype=torch.float64), None,
                   1, 0, 0, 1, 1)

    @settings(max_examples=examples(500 if backend == "cpu" else 60))
    @given(call=op_calls())
    def check(call):
        note(repr(call))
        gen = torch.Generator().manual_seed(call["seed"])
        a = torch.randn(call["a"], generator=gen, dtype=torch.float64)
        b = torch.randn(call["b"], generator=gen, dtype=torch.float64)
        stride, pad_left, pad_right, dilation, groups = call["ints"]
        if not _in_int64(*call["ints"], call["extra"]):
            with pytest.raises(RuntimeError):  # the dispatcher's "Expected a value of type 'int'"
                getattr(ops, call["op"])(a, b, *([None] if call["op"] == "conv1d" else [call["extra"]]),
                                         *call["ints"])
            return
        _skip_if_real_but_big(_op_output_numel(call))
        if call["op"] == "conv1d":
            fn = lambda: ops.conv1d(a, b, None, *call["ints"])  # noqa: E731
        else:
            fn = lambda: getattr(ops, call["op"])(a, b, call["extra"], *call["ints"])  # noqa: E731
        snapshot = _snapshot([a, b])
        with torch_threads(1) if backend == "emulated" else contextlib.nullcontext():
            got = Guarded(fn)
        got.check_cheap(allowed_bytes=_numel_bytes(got.value))
        _assert_unmodified(snapshot)
        if got.error is not None:
            assert isinstance(got.error, RuntimeError), repr(got.error)
            return
        assert torch.isfinite(got.value).all(), "NaN poison left"
        assert tuple(got.value.shape) == _op_output_shape(call), tuple(got.value.shape)
        if max(pad_left, pad_right) <= 2**20 and got.value.numel() <= MAX_COMPUTED_NUMEL:
            _check_op_against_torch(call, a, b, got.value)

    seeded(check, "test_ops_never_crash", backend)()


def _op_output_shape(call):
    """The output shape the op's arguments ask for (None where they are invalid)."""
    stride, pad_left, pad_right, dilation, groups = call["ints"]
    (an, ac, al), (bn, bc, bl), extra = call["a"], call["b"], call["extra"]
    if min(stride, dilation, groups) <= 0 or min(pad_left, pad_right) < 0:
        return None
    if call["op"] == "conv1d":
        return an, bn, max((al + pad_left + pad_right - dilation * (bl - 1) - 1) // stride + 1, 0)
    if extra < 0:
        return None
    if call["op"] == "conv1d_backward_input":
        return an, bc * groups, extra
    return ac, bc // groups, extra


def _op_output_numel(call):
    shape = _op_output_shape(call)
    return 0 if shape is None else math.prod(shape)


def _numel_bytes(t):
    return 0 if t is None else t.numel() * t.element_size()


def _check_op_against_torch(call, a, b, got):
    stride, pad_left, pad_right, dilation, groups = call["ints"]
    in_channels = {"conv1d": a.shape[1], "conv1d_backward_input": b.shape[1] * groups,
                   "conv1d_backward_weight": b.shape[1]}[call["op"]]
    if in_channels == 0:  # docs/differences.md: zero input channels give out_channels rows of the bias (none here)
        assert torch.equal(got, torch.zeros_like(got))
        return

    def conv(x, w):
        return F.conv1d(F.pad(x, (pad_left, pad_right)), w, None, stride, 0, dilation, groups)

    with torch_threads(1), torch.enable_grad():
        if call["op"] == "conv1d":
            ref = conv(a, b)
        elif call["op"] == "conv1d_backward_input":  # a: grad_output, b: weight, extra: input_len
            x = torch.zeros(a.shape[0], b.shape[1] * groups, call["extra"], dtype=a.dtype, requires_grad=True)
            ref = torch.autograd.grad(conv(x, b), x, a)[0]
        else:  # a: grad_output, b: input, extra: kernel_size
            w = torch.zeros(a.shape[1], b.shape[1] // groups, call["extra"], dtype=a.dtype, requires_grad=True)
            ref = torch.autograd.grad(conv(b, w), w, a)[0]
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_fuzz_examples_can_grow():
    """The example counts scale with CONV1D_EXT_TEST_SCALE (conv_ref.examples), so a long run is one env
    variable away."""
    saved = os.environ.get("CONV1D_EXT_TEST_SCALE")
    os.environ["CONV1D_EXT_TEST_SCALE"] = "10"
    try:
        assert examples(600) == 6000
    finally:
        if saved is None:
            del os.environ["CONV1D_EXT_TEST_SCALE"]
        else:
            os.environ["CONV1D_EXT_TEST_SCALE"] = saved


def test_negative_strides_cannot_reach_the_ops():
    """Views with a negative stride do not exist in PyTorch (as_strided and from_numpy refuse them; flip
    copies), so the fuzz's layouts stop at overlapping, expanded, offset and strided views. This pins that
    premise: if PyTorch ever allows them, this fails and the fuzz must draw them."""
    with pytest.raises(RuntimeError, match="Negative strides"):
        torch.randn(1, 1, 10).as_strided((1, 1, 3), (1, 1, -1), 5)
    flipped = torch.randn(1, 1, 10).flip(-1)
    assert all(s >= 0 for s in flipped.stride())
