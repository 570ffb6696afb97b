"""The op conv1d_backward: the three gradients of conv1d in one call (csrc/core/op_list.h), which
_Conv1d.backward uses when it needs two or more of them and nothing differentiates them. On the CPU a plain
depthwise problem at stride 1 runs one fused kernel (cpu/depthwise.h, depthwise_backward_fused), every
other problem the separate ops' kernels; CUDA (and the emulator) run the separate kernels.

Checked here: the gradients against PyTorch's float64 ones (per-dtype tolerances of conv_ref), bit for bit
against the separate ops (the fused kernel computes each gradient the way its separate op does), every
output_mask, thread-count independence, errors like the separate ops', opcheck, and that autograd takes
the fused op exactly when it may."""

import pytest
import torch
from conv_ref import (
    FLOAT_DTYPES,
    LAYOUTS,
    OUTPUT_NAMES,
    ConvCase,
    assert_close_to_reference,
    examples,
    make_operands,
    reduction_lengths,
    reference,
    seeded,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from conv1d_ext._conv_ops import conv1d  # conv1d_ext.conv1d on checked arguments, with asymmetric padding

ALL = [True, True, True]
MASKS = [[gi, gw, gb] for gi in (False, True) for gw in (False, True) for gb in (False, True)]


@st.composite
def depthwise_cases(draw):
    """Depthwise problems the fused kernel takes (stride 1, one output row per input row) and, now and then,
    the ones it leaves to the separate kernels (stride > 1, a channel multiplier): dilation, asymmetric
    padding, batch 0 and 1, rows shorter than the kernel's span (the padding makes up the rest), taps past
    one 8-tap block, rows past several vectors."""
    kernel_size = draw(st.integers(1, 9) | st.sampled_from([17, 31]))
    dilation = draw(st.integers(1, 3))
    span = dilation * (kernel_size - 1) + 1
    pad_left = draw(st.integers(0, span))
    pad_right = draw(st.integers(0, span))
    in_len = draw(st.integers(max(1, span - pad_left - pad_right), span + 80) | st.sampled_from([300, 611]))
    layout = st.sampled_from(LAYOUTS)
    return ConvCase(batch=draw(st.sampled_from([0, 1, 1, 2, 3])), groups=draw(st.integers(1, 6)), in_per_group=1,
                    out_per_group=draw(st.sampled_from([1, 1, 1, 1, 2])), kernel_size=kernel_size,
                    in_len=in_len, stride=draw(st.sampled_from([1, 1, 1, 2, 3])), dilation=dilation,
                    pad_left=pad_left, pad_right=pad_right, input_layout=draw(layout),
                    weight_layout=draw(layout), grad_layout=draw(layout), seed=draw(st.integers(0, 2**16)))


def separate(ops, case, x, w, gy):
    return (ops.conv1d_backward_input(gy, w, case.in_len, *case.conv_args),
            ops.conv1d_backward_weight(gy, x, case.kernel_size, *case.conv_args),
            ops.conv1d_backward_bias(gy))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_matches_pytorch_and_the_separate_ops(backend, dtype, strict_fp32):
    ops = backend.ops

    @settings(max_examples=examples(15 if backend.kind == "emulated" else 60))
    @given(case=depthwise_cases())
    def check(case):
        x, w, _, gy = make_operands(case, dtype, backend.device)
        originals = [t.clone() for t in (x, w, gy)]
        ours = ops.conv1d_backward(gy, x, w, *case.conv_args, ALL)
        refs = reference(case, x, w, None, gy)[1:]
        magnitudes = reference(case, x, w, None, gy, absolute=True)[1:]
        for name, got, ref, mag, red in zip(OUTPUT_NAMES[1:], ours, refs, magnitudes, reduction_lengths(case)[1:],
                                            strict=True):
            assert_close_to_reference(name, got, ref, mag, red, dtype, context=str(case))
        for name, got, expected in zip(OUTPUT_NAMES[1:], ours, separate(ops, case, x, w, gy), strict=True):
            assert torch.equal(got, expected), f"{name} differs from its separate op's. {case}"
        assert all(torch.equal(a, b) for a, b in zip(originals, (x, w, gy), strict=True)), "an operand changed"

    seeded(check, "test_fused_backward", backend.name, str(dtype))()


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: "".join("1" if v else "0" for v in m))
def test_output_mask(backend, mask):
    """Each wanted gradient as with all three; the others empty tensors of size (0,). Non-contiguous
    operands (an operand a mask does not need is not copied)."""
    case = ConvCase(batch=2, groups=5, in_per_group=1, out_per_group=1, kernel_size=4, in_len=70, pad_left=3,
                    pad_right=3, input_layout="transposed", weight_layout="strided", grad_layout="offset")
    x, w, _, gy = make_operands(case, torch.float32, backend.device)
    full = backend.ops.conv1d_backward(gy, x, w, *case.conv_args, ALL)
    got = backend.ops.conv1d_backward(gy, x, w, *case.conv_args, mask)
    for wanted, g, f in zip(mask, got, full, strict=True):
        if wanted:
            assert torch.equal(g, f)
        else:
            assert g.shape == (0,) and g.dtype == f.dtype and g.device == f.device


def test_thread_count_independent():
    """The weight and bias sums are partitioned by channel, not by thread: the same bits on 1, 2 and 3
    threads."""
    case = ConvCase(batch=3, groups=7, in_per_group=1, out_per_group=1, kernel_size=31, in_len=2000,
                    pad_left=15, pad_right=15)
    x, w, _, gy = make_operands(case, torch.float32, "cpu")
    saved = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(torch.ops.conv1d_ext.conv1d_backward(gy, x, w, *case.conv_args, ALL))
    finally:
        torch.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def _bad_calls(x, w, gy):
    """(description, args) of calls the separate ops reject."""
    conv = (1, 3, 3, 1, 4)
    return [
        ("negative padding", (gy, x, w, 1, -1, 3, 1, 4)),
        ("zero stride", (gy, x, w, 0, 3, 3, 1, 4)),
        ("2-D input", (gy, x[0], w, *conv)),
        ("2-D weight", (gy, x, w[:, 0], *conv)),
        ("2-D grad_output", (gy[0], x, w, *conv)),
        ("grad_output length", (gy[..., 1:], x, w, *conv)),
        ("batch mismatch", (gy[:1], x, w, *conv)),
        ("channels of the input", (gy, x[:, :2], w, *conv)),
        ("dtype mismatch", (gy, x.double(), w, *conv)),
        ("integer dtype", (gy.int(), x.int(), w.int(), *conv)),
        ("groups", (gy, x, w, 1, 3, 3, 1, 3)),
    ]


@pytest.mark.parametrize("meta", [False, True], ids=["cpu", "meta"])
def test_errors_like_the_separate_ops(meta):
    """Every call the separate ops reject is rejected, with their exception type, by the kernel and by the
    fake kernel (meta tensors)."""
    x, w, gy = torch.randn(2, 4, 10), torch.randn(4, 1, 4), torch.randn(2, 4, 13)
    if meta:
        x, w, gy = x.to("meta"), w.to("meta"), gy.to("meta")
    for what, args in _bad_calls(x, w, gy):
        with pytest.raises((RuntimeError, NotImplementedError)) as got:
            torch.ops.conv1d_ext.conv1d_backward(*args, ALL)
        expected = NotImplementedError if what == "integer dtype" else RuntimeError
        assert type(got.value) is expected, f"{what}: {type(got.value).__name__}: {got.value}"


@pytest.mark.parametrize("name", ["depthwise", "dense"])
def test_opcheck(name):
    case = ConvCase(batch=2, groups=3, in_per_group=1 if name == "depthwise" else 2, out_per_group=1 if
                    name == "depthwise" else 2, kernel_size=3, in_len=9, dilation=2, pad_left=2, pad_right=1)
    x, w, _, gy = make_operands(case, torch.float32, "cpu")
    for mask in (ALL, [True, False, True], [False, False, False]):
        torch.library.opcheck(torch.ops.conv1d_ext.conv1d_backward.default, (gy, x, w, *case.conv_args, mask))


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append(func.name())
        return func(*args, **(kwargs or {}))

    def backward_ops(self):
        return {c.removeprefix("conv1d_ext::") for c in self.calls if "conv1d_backward" in c}


def _leaves(bias=True):
    case = ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=1, kernel_size=4, in_len=20, pad_left=3,
                    pad_right=3)
    x, w, b, gy = make_operands(case, torch.float64, "cpu")
    return case, x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), gy


@pytest.mark.parametrize("wrt,expected", [
    ("xwb", {"conv1d_backward"}), ("xw", {"conv1d_backward"}), ("wb", {"conv1d_backward"}),
    ("xb", {"conv1d_backward"}), ("x", {"conv1d_backward_input"}), ("w", {"conv1d_backward_weight"}),
])
def test_autograd_takes_the_fused_op_when_two_gradients_are_needed(wrt, expected):
    """What counts is which operands require grad (ctx.needs_input_grad), the others are detached."""
    case, x, w, b, gy = _leaves()
    leaves = {name: t if name in wrt else t.detach() for name, t in (("x", x), ("w", w), ("b", b))}
    x, w, b = leaves["x"], leaves["w"], leaves["b"]
    y = conv1d(x, w, b, *case.conv_args)
    log = OpLog()
    with log:
        grads = torch.autograd.grad(y, [leaves[c] for c in wrt], gy)
    assert log.backward_ops() == expected
    y_ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (case.pad_left, case.pad_right)), w, b,
                                       groups=case.groups)
    for got, ref in zip(grads, torch.autograd.grad(y_ref, [leaves[c] for c in wrt], gy), strict=True):
        torch.testing.assert_close(got, ref)


def test_autograd_keeps_the_differentiable_ops_for_create_graph_and_torch_func():
    case, x, w, b, gy = _leaves()
    conv = case.conv_args
    y = conv1d(x, w, b, *conv)
    log = OpLog()
    with log:
        torch.autograd.grad(y, (x, w, b), gy, create_graph=True)
    assert log.backward_ops() == {"conv1d_backward_input", "conv1d_backward_weight", "conv1d_backward_bias"}
    log = OpLog()
    with log:
        torch.func.grad(lambda x, w: (conv1d(x, w, b, *conv) * gy).sum(), argnums=(0, 1))(x, w)
    assert "conv1d_backward" not in log.backward_ops()


def test_the_op_itself_is_not_differentiable():
    case, x, w, _, gy = _leaves()
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.ops.conv1d_ext.conv1d_backward(gy.requires_grad_(), x, w, *case.conv_args, ALL)
    with torch.no_grad():  # nothing to differentiate: the kernel
        assert len(torch.ops.conv1d_ext.conv1d_backward(gy, x, w, *case.conv_args, ALL)) == 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_streamed_outputs(dtype):
    """Outputs of 16 MiB and more are written with streaming stores (cpu/kernel_common.h) by the depthwise
    forward and the fused backward: against PyTorch, bit for bit against the separate ops (which stream
    too), and the same bits on 1 and 2 threads. Odd output rows (4099 elements) start at every alignment."""
    case = ConvCase(batch=2, groups=512 if dtype == torch.float32 else 256, in_per_group=1, out_per_group=1,
                    kernel_size=4, in_len=4096, pad_left=3, pad_right=3)
    x, w, b, gy = make_operands(case, dtype, "cpu")
    assert x.numel() * x.element_size() >= 16 << 20
    ops = torch.ops.conv1d_ext
    saved = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append((ops.conv1d(x, w, b, *case.conv_args), *ops.conv1d_backward(gy, x, w, *case.conv_args, ALL)))
    finally:
        torch.set_num_threads(saved)
    for a, c in zip(*results, strict=True):
        assert torch.equal(a, c)
    refs = reference(case, x, w, b, gy)
    magnitudes = reference(case, x, w, b, gy, absolute=True)
    for name, got, ref, mag, red in zip(OUTPUT_NAMES, results[0], refs, magnitudes, reduction_lengths(case),
                                        strict=True):
        assert_close_to_reference(name, got, ref, mag, red, dtype)
    for name, got, expected in zip(OUTPUT_NAMES[1:], results[0][1:], separate(ops, case, x, w, gy), strict=True):
        assert torch.equal(got, expected), name
