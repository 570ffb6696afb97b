"""Transposed convolution against PyTorch: conv1d_ext.conv_transpose1d against F.conv_transpose1d (outputs
and all three gradients, every dtype, every argument form, non-contiguous operands, lengths down to 1, the
same exception types), the ops path on every backend (the emulated CUDA kernels included), autograd
(gradcheck, gradgradcheck, opcheck, torch.compile), ConvTranspose1dExt as a drop-in nn.ConvTranspose1d,
convert_convs on a HiFi-GAN-style decoder, and StreamingConvTranspose1d against the whole-signal output.

Every expected value is PyTorch's, computed in float64 on the very (dtype-rounded) inputs ours gets, with
tests/conv_ref.py's error bound per element (see there): u_out·|ref| + (1 + u_out)·2·eps_acc·sqrt(R)·M."""

import copy
import dataclasses
import io
import math

import pytest
import torch
import torch.nn.functional as F
from conv_ref import FLOAT_DTYPES, LAYOUTS, accumulation_eps, assert_raises_like, examples, make_tensor, tolerance
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import conv1d_ext
from conv1d_ext import ConvTranspose1dExt, StreamingConvTranspose1d, conv_transpose1d, convert_convs

HALF = (torch.float16, torch.bfloat16)


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------------
# Problems and the float64 reference
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TCase:
    batch: int | None  # None: unbatched (C_in, L) input
    groups: int
    in_per_group: int
    out_per_group: int
    kernel_size: int
    stride: int
    padding: int
    output_padding: int
    dilation: int
    in_len: int
    bias: bool
    spelling: str = "int"  # how stride/padding/output_padding/dilation are passed: int, tuple, list
    input_layout: str = "contiguous"
    weight_layout: str = "contiguous"
    grad_layout: str = "contiguous"
    seed: int = 0

    @property
    def in_channels(self):
        return self.groups * self.in_per_group

    @property
    def out_channels(self):
        return self.groups * self.out_per_group

    @property
    def out_len(self):  # PyTorch's documented formula
        return ((self.in_len - 1) * self.stride - 2 * self.padding + self.dilation * (self.kernel_size - 1)
                + self.output_padding + 1)

    def kwargs(self):
        spell = {"int": lambda v: v, "tuple": lambda v: (v,), "list": lambda v: [v]}[self.spelling]
        return dict(stride=spell(self.stride), padding=spell(self.padding),
                    output_padding=spell(self.output_padding), groups=self.groups,
                    dilation=spell(self.dilation))

    def reductions(self):
        """Products summed into one element of: output (+ bias), grad_input, grad_weight, grad_bias (upper
        bounds: an output sees at most in_per_group·k products)."""
        n = self.batch or 1
        return (self.in_per_group * self.kernel_size + 1, self.out_per_group * self.kernel_size,
                n * self.in_len, n * self.out_len)


def abs_max(t):
    return t.abs().max().item() if t.numel() else 0.0


def _ceil_div(a, b):
    return -(-a // b)


@st.composite
def tcases(draw, layouts=True, max_extra=40):
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "depthwise_multiplier"]))
    width = st.integers(1, 4) | st.sampled_from([5, 8, 9, 16])
    if kind == "dense":
        groups, in_pg, out_pg = 1, draw(width), draw(width)
    elif kind == "grouped":
        groups, in_pg, out_pg = draw(st.integers(2, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    elif kind == "depthwise":
        groups, in_pg, out_pg = draw(width), 1, 1
    else:
        groups, in_pg, out_pg = draw(st.integers(1, 6)), 1, draw(st.integers(2, 4))
    stride = draw(st.integers(1, 5) | st.just(8))
    # vocoder / codec upsamplers: k = 2·stride
    kernel_size = draw(st.integers(1, 9) | st.just(2 * stride))
    dilation = draw(st.integers(1, 4))
    span = dilation * (kernel_size - 1) + 1
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    padding = draw(st.integers(0, 2) | st.integers(0, span + 2))
    # shortest input with out_len >= 1
    min_len = max(1, 1 + _ceil_div(2 * padding + 1 - span - output_padding, stride))
    in_len = min_len + draw(st.integers(0, 3) | st.integers(0, max_extra))
    batch = draw(st.sampled_from([None, 0, 1, 2, 3]))
    layout = st.sampled_from(LAYOUTS) if layouts else st.just("contiguous")
    return TCase(batch, groups, in_pg, out_pg, kernel_size, stride, padding, output_padding, dilation, in_len,
                 draw(st.booleans()), draw(st.sampled_from(["int", "tuple", "list"])), draw(layout),
                 draw(layout), draw(layout), draw(st.integers(0, 2**31 - 1)))


def operands(case, dtype, device):
    """input, weight, bias (or None), grad_output: random, rounded to dtype, in the case's layouts."""
    gen = torch.Generator().manual_seed(case.seed)
    n = 1 if case.batch is None else case.batch
    x = make_tensor((n, case.in_channels, case.in_len), dtype, device, case.input_layout, gen)
    w = make_tensor((case.in_channels, case.out_per_group, case.kernel_size), dtype, device,
                    case.weight_layout, gen)
    b = torch.randn(case.out_channels, generator=gen, dtype=torch.float64).to(device, dtype) if case.bias \
        else None
    gy = make_tensor((n, case.out_channels, case.out_len), dtype, device, case.grad_layout, gen)
    if case.batch is None:
        x, gy = x[0], gy[0]
    return x, w, b, gy


def torch_reference(case, x, w, b, gy, absolute=False):
    """F.conv_transpose1d in float64 on the CPU: output, grad_input, grad_weight, grad_bias. With
    absolute=True, of |operands|: per element the sum of |products| (M of the error bound)."""

    def prep(t):
        t = t.detach().to("cpu", torch.float64)
        return (t.abs() if absolute else t.clone()).requires_grad_()

    leaves = [prep(t) for t in (x, w, b) if t is not None]
    gy = prep(gy).detach()
    with torch.enable_grad():
        y = F.conv_transpose1d(*leaves[:2], leaves[2] if b is not None else None, **case.kwargs())
        grads = torch.autograd.grad(y, leaves, gy)
    gb = grads[2] if b is not None else gy.sum(tuple(d for d in range(gy.dim()) if d != gy.dim() - 2))
    return y.detach(), grads[0], grads[1], gb


def assert_within(name, got, ref, tol, dtype, context):
    assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}. {context}"
    assert tuple(got.shape) == tuple(ref.shape), f"{name}: shape {tuple(got.shape)}, expected " \
                                                 f"{tuple(ref.shape)}. {context}"
    got = got.detach().to("cpu", torch.float64)
    if got.numel() == 0:
        return
    assert torch.isfinite(got).all(), f"{name}: non-finite elements (unwritten output?). {context}"
    err = (got - ref).abs()
    bad = err > tol
    if bad.any():
        i = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{name}: {int(bad.sum())} of {got.numel()} elements out of tolerance; first at "
                             f"{i}: got {got[i].item():.10g}, expected {ref[i].item():.10g} (tol "
                             f"{tol[i].item():.3g}); worst {(err / tol).max().item():.3g} x tol. {context}")


def output_tolerance(case, dtype, ref, magnitude, tf32=False):
    tol = tolerance(dtype, ref, magnitude, case.reductions()[0], tf32)
    if case.bias and dtype in HALF:
        # The op rounds the convolution to dtype, then the bias is added and the sum rounded again: one
        # more rounding (half an ulp) of a value bounded by M, where PyTorch may round once.
        tol = tol + 0.5 * torch.finfo(dtype).eps * magnitude
    return tol


def check_against_pytorch(case, dtype, device, tf32=False):
    """conv_transpose1d's output and the three gradients through autograd against F.conv_transpose1d."""
    x, w, b, gy = operands(case, dtype, device)
    originals = [t.clone() for t in (x, w, b, gy) if t is not None]
    leaves = [t.detach().requires_grad_() for t in (x, w, b) if t is not None]
    y = conv_transpose1d(*leaves[:2], leaves[2] if b is not None else None, **case.kwargs())
    grads = torch.autograd.grad(y, leaves, gy)
    gb = grads[2] if b is not None else None
    refs = torch_reference(case, x, w, b, gy)
    mags = torch_reference(case, x, w, b, gy, absolute=True)
    context = f"[{device} {dtype}] {case}"
    assert y.device.type == torch.device(device).type, context
    assert_within("output", y, refs[0], output_tolerance(case, dtype, refs[0], mags[0], tf32), dtype, context)
    for name, got, ref, mag, red in zip(("grad_input", "grad_weight", "grad_bias"), (*grads[:2], gb),
                                        refs[1:], mags[1:], case.reductions()[1:], strict=True):
        if got is not None:
            assert_within(name, got, ref, tolerance(dtype, ref, mag, red, tf32), dtype, context)
    for before, after in zip(originals, [t for t in (x, w, b, gy) if t is not None], strict=True):
        assert torch.equal(before, after), f"the caller's tensor was modified. {context}"


# Hand-picked cases every run sees. TCase(batch, groups, in_pg, out_pg, k, stride, padding,
# output_padding, dilation, in_len, bias, ...)
FIXED_CASES = [
    TCase(2, 1, 16, 8, 16, 8, 4, 0, 1, 6, True),  # HiFi-GAN upsampler: k16 s8 p4
    TCase(2, 1, 8, 4, 10, 5, 0, 0, 1, 5, True),  # SEANet/EnCodec: k = 2·stride, no padding
    TCase(2, 8, 1, 1, 4, 2, 1, 0, 1, 9, True, "tuple", "transposed", "strided", "offset"),  # depthwise
    TCase(1, 1, 3, 2, 3, 1, 0, 2, 3, 4, True),  # output_padding - padding >= stride: zeros appended
    TCase(2, 2, 2, 3, 4, 2, 0, 3, 4, 3, True, "list"),  # the same with stride 2, grouped
    TCase(2, 1, 3, 2, 3, 2, 3, 1, 1, 4, True),  # padding > output_padding: crop at both ends
    TCase(None, 3, 1, 2, 5, 3, 1, 2, 1, 1, True),  # unbatched, length 1
    TCase(1, 1, 1, 1, 1, 1, 0, 0, 1, 1, False),  # smallest
    TCase(0, 1, 4, 3, 3, 2, 1, 1, 1, 5, True),  # empty batch
    TCase(3, 1, 5, 7, 4, 4, 0, 0, 1, 40, False, "int", "expanded", "transposed", "strided"),  # k = stride
    TCase(2, 1, 3, 4, 2, 5, 0, 4, 1, 7, True),  # stride > kernel: gaps of zeros (+ bias)
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_conv_transpose1d_matches_pytorch(device, dtype, strict_fp32):
    n = {torch.float64: 40, torch.float32: 40}.get(dtype, 30)

    @settings(max_examples=examples(n))
    @given(case=tcases())
    def check(case):
        check_against_pytorch(case, dtype, device)

    for case in FIXED_CASES:
        check = example(case=case)(check)
    check()


def test_zero_length_output(device):
    """A length-0 output (e.g. L_in 1, k 2, padding 1) is an empty result, as F.conv_transpose1d gives
    for float32 on the CPU (its float64 path raises instead; we follow the float32 one)."""
    x, w, b = torch.randn(2, 4, 1, device=device), torch.randn(4, 3, 2, device=device), torch.randn(3, device=device)
    ref = F.conv_transpose1d(x, w, b, padding=1)
    assert conv_transpose1d(x, w, b, padding=1).shape == ref.shape == (2, 3, 0)


def test_zero_length_input_with_empty_batch(device):
    """PyTorch accepts a length-0 input when the batch is empty too."""
    for stride in (1, 2, 3):
        x, w = torch.randn(0, 4, 0, device=device), torch.randn(4, 3, 3, device=device)
        assert conv_transpose1d(x, w, stride=stride).shape == F.conv_transpose1d(x, w, stride=stride).shape


def test_stride_given_as_integer_tensor_and_numpy(device):
    np = pytest.importorskip("numpy")
    x = torch.randn(1, 2, 6, dtype=torch.float64, device=device)
    w = torch.randn(2, 3, 4, dtype=torch.float64, device=device)
    kwargs = dict(stride=torch.tensor(2), padding=np.int64(1), output_padding=(np.int64(1),), groups=np.int64(1))
    torch.testing.assert_close(conv_transpose1d(x, w, **kwargs), F.conv_transpose1d(x, w, **kwargs))


# ---------------------------------------------------------------------------------------------------
# The ops path on every backend: conv1d_backward_input with the transposed mapping (forward) and the
# ops autograd uses for its gradients, on CPU kernels, CUDA kernels and CUDA kernels under the emulator
# ---------------------------------------------------------------------------------------------------


def transposed_on_ops(ops, case, x, w, b, gy):
    """Output and grad_input, grad_weight, grad_bias of the transposed conv computed with the op set `ops`:
    the forward by conv1d_ext's own code path, the gradients by the ops its registered autograd calls."""
    from conv1d_ext._geometry import transposed_geometry
    from conv1d_ext.functional import _conv_transpose1d_3d

    s, p, op, d, g = case.stride, case.padding, case.output_padding, case.dilation, case.groups
    y = _conv_transpose1d_3d(ops, x, w, b, s, p, op, g, d)
    _, input_len, pad_right, _ = transposed_geometry(case.in_len, case.kernel_size, s, p, op, d)
    gy_op = gy[:, :, :input_len]  # the appended zeros depend on nothing
    conv = (s, p, pad_right, d, g)
    return (y, ops.conv1d(gy_op, w, None, *conv), ops.conv1d_backward_weight(x, gy_op, case.kernel_size, *conv),
            ops.conv1d_backward_bias(gy))


OPS_CASES = [c for c in FIXED_CASES if c.batch is not None] + [
    TCase(2, 1, 24, 20, 6, 3, 1, 2, 1, 33, True, "int", "transposed", "contiguous", "strided"),  # GEMM tiles
    TCase(2, 12, 1, 1, 4, 2, 1, 1, 1, 300, True),  # depthwise, long rows
    TCase(1, 2, 3, 3, 5, 1, 6, 0, 2, 9, True),  # padding beyond the kernel span
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_ops_path_matches_pytorch(backend, dtype):
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the CUDA kernels' float32 is true float32 then
    try:
        for case in OPS_CASES:
            x, w, b, gy = operands(case, dtype, backend.device)
            originals = [t.clone() for t in (x, w, b, gy) if t is not None]
            ours = transposed_on_ops(backend.ops, case, x, w, b, gy)
            refs = torch_reference(case, x, w, b, gy)
            mags = torch_reference(case, x, w, b, gy, absolute=True)
            context = f"[{backend.name} {dtype}] {case}"
            tols = [output_tolerance(case, dtype, refs[0], mags[0])] + [
                tolerance(dtype, r, m, red) for r, m, red in zip(refs[1:], mags[1:], case.reductions()[1:],
                                                                 strict=True)]
            for name, got, ref, tol in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, refs,
                                           tols, strict=True):
                assert_within(name, got, ref, tol, dtype, context)
            for before, after in zip(originals, [t for t in (x, w, b, gy) if t is not None], strict=True):
                assert torch.equal(before, after), f"an op modified its input. {context}"
    finally:
        torch.backends.cudnn.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------------
# Autograd: gradcheck, gradgradcheck, double backward, opcheck, torch.compile
# ---------------------------------------------------------------------------------------------------

# (batch, C_in, C_out, L_in, k, stride, padding, output_padding, dilation, groups)
GRAD_CONFIGS = [
    (2, 3, 4, 5, 4, 2, 1, 1, 1, 1),  # dense, k = 2·stride, output_padding <= padding
    (1, 4, 4, 4, 3, 1, 0, 2, 3, 2),  # grouped, output_padding - padding >= stride (appended zeros)
    (2, 3, 3, 6, 4, 2, 1, 0, 1, 3),  # depthwise k4 s2
    (1, 2, 4, 3, 2, 3, 0, 1, 1, 2),  # channel multiplier, stride > kernel
    (1, 2, 3, 1, 5, 1, 2, 0, 1, 1),  # length 1
]
GRAD_IDS = ["dense", "grouped_appended_zeros", "depthwise", "multiplier", "len1"]


def grad_leaves(cfg, device):
    n, cin, cout, length, k, s, p, op, d, g = cfg
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    return (leaf(n, cin, length), leaf(cin, cout // g, k), leaf(cout)), dict(stride=s, padding=p,
                                                                             output_padding=op, groups=g,
                                                                             dilation=d)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=GRAD_IDS)
def test_gradcheck_and_gradgradcheck(device, cfg):
    (x, w, b), kw = grad_leaves(cfg, device)

    def f(x, w, b):
        return conv_transpose1d(x, w, b, **kw)

    assert gradcheck(f, (x, w, b), fast_mode=True)
    assert gradgradcheck(f, (x, w, b), fast_mode=True)


def test_full_jacobian_gradcheck(device):
    (x, w, b), kw = grad_leaves((1, 2, 2, 3, 3, 2, 1, 1, 1, 1), device)
    assert gradcheck(lambda x, w, b: conv_transpose1d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("cfg", GRAD_CONFIGS[:2], ids=GRAD_IDS[:2])
def test_double_backward_matches_pytorch(device, cfg):
    """A gradient penalty (the gradient of a function of the input gradient) equals PyTorch's."""
    (x, w, b), kw = grad_leaves(cfg, device)
    results = []
    for conv in (conv_transpose1d, F.conv_transpose1d):
        y = conv(x, w, b, **kw)
        gx, gw = torch.autograd.grad(y.sin().sum(), (x, w), create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum() + gw.square().sum(), (x, w, b)))
    for ours, ref in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS[:4], ids=GRAD_IDS[:4])
def test_opcheck_transposed_calls(device, cfg):
    """torch.library.opcheck on the op calls conv_transpose1d makes (schema, fake kernel, autograd
    registration, AOT dispatch). The arguments are the transposed mapping, and the op's result is
    F.conv_transpose1d's (the appended zeros aside)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    (x, w, _), kw = grad_leaves(cfg, device)
    x, w = (t.detach().float().requires_grad_() for t in (x, w))
    calls = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == "conv1d_ext":
                calls.append((func, args))
            return func(*args, **(kwargs or {}))

    with Record():
        y = conv_transpose1d(x, w, None, **kw)
    assert [func for func, _ in calls] == [torch.ops.conv1d_ext.conv1d_backward_input.default]
    op, args = calls[0]
    torch.testing.assert_close(y, F.conv_transpose1d(x, w, None, **kw))
    torch.library.opcheck(op, args)


@pytest.mark.compile
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_torch_compile_fullgraph(device, dynamic):
    """A decoder of ConvTranspose1dExt and Conv1dExt compiles in one graph (fake kernels, autograd) and
    matches nn.ConvTranspose1d / nn.Conv1d eagerly, forward and backward. aot_eager: dynamo and AOT
    autograd are what our ops meet; inductor would only add compile time on this machine."""
    torch._dynamo.reset()
    torch.manual_seed(0)

    def make(t_cls, c_cls):
        return nn.Sequential(c_cls(4, 8, 3, padding=1), nn.LeakyReLU(0.1),
                             t_cls(8, 6, 8, stride=4, padding=2), nn.LeakyReLU(0.1),
                             t_cls(6, 6, 4, stride=2, padding=1, groups=6),
                             t_cls(6, 2, 3, stride=1, padding=0, output_padding=2, dilation=3)).to(device)

    ref = make(nn.ConvTranspose1d, nn.Conv1d)
    ours = make(ConvTranspose1dExt, conv1d_ext.Conv1dExt)
    ours.load_state_dict(ref.state_dict())
    compiled = torch.compile(ours, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    try:
        for shape in [(2, 4, 10), (3, 4, 17)][:2 if dynamic else 1]:
            x = torch.randn(shape, device=device)
            results = []
            for model in (compiled, ref):
                xi = x.clone().requires_grad_()
                y = model(xi)
                results.append((y, *torch.autograd.grad(y.square().sum(), [xi, *model.parameters()])))
            for got, want in zip(*results, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    finally:
        torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------
# Errors: the exception type F.conv_transpose1d raises for the same call
# ---------------------------------------------------------------------------------------------------


def t(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


# name -> (lambda device: (args, kwargs)), a regex our message must match
ERROR_CASES = {
    "input_1d": (lambda d: ((t(10, device=d), t(4, 3, 3, device=d)), {}), r"Expected 2D \(unbatched\) or 3D"),
    "input_4d": (lambda d: ((t(1, 4, 2, 10, device=d), t(4, 3, 3, device=d)), {}), r"\[1, 4, 2, 10\]"),
    "channels": (lambda d: ((t(2, 5, 10, device=d), t(4, 3, 3, device=d)), {}),
                 r"expected input\[2, 5, 10\] to have 4 channels, but got 5 channels"),
    "unbatched_channels": (lambda d: ((t(5, 10, device=d), t(4, 3, 3, device=d)), {}), r"channels"),
    "groups_channels": (lambda d: ((t(2, 4, 10, device=d), t(6, 1, 3, device=d)), {"groups": 2}), r"channels"),
    "weight_not_divisible": (lambda d: ((t(2, 3, 10, device=d), t(3, 1, 3, device=d)), {"groups": 2}),
                             r"divisible by 2"),
    "weight_fewer_than_groups": (lambda d: ((t(2, 2, 10, device=d), t(2, 1, 3, device=d)), {"groups": 4}),
                                 r"at least 4"),
    "zero_input_channels": (lambda d: ((t(2, 0, 10, device=d), t(0, 3, 3, device=d)), {}), r"at least 1"),
    "weight_2d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, device=d)), {}), r"weight"),
    "weight_4d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, 1, device=d)), {}), r"weight"),
    "kernel_size_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 0, device=d)), {}), r"kernel_size"),
    "stride_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": 0}),
                 r"non-positive stride"),
    "stride_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": (-2,)}),
                        r"non-positive stride"),
    "dilation_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": 0}),
                   r"non-positive dilation"),
    "dilation_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": -1}),
                          r"non-positive dilation"),
    "groups_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": 0}),
                 r"non-positive groups"),
    "groups_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": -1}),
                        r"non-positive groups"),
    "padding_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": -1}),
                         r"negative padding"),
    "output_padding_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                           {"stride": 2, "output_padding": -1}), r"negative output_padding"),
    "output_padding_without_stride": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                                 {"output_padding": 1}), r"smaller than either stride or dilation"),
    "output_padding_eq_stride": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                            {"stride": 2, "output_padding": 2}), r"smaller than either"),
    "output_padding_eq_dilation": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                              {"stride": 2, "dilation": 3, "output_padding": 3}),
                                   r"smaller than either"),
    "output_too_small": (lambda d: ((t(2, 4, 1, device=d), t(4, 3, 3, device=d)), {"padding": 2}),
                         r"Output size is too small"),
    "output_too_small_empty_batch": (lambda d: ((t(0, 4, 1, device=d), t(4, 3, 2, device=d)), {"padding": 2}),
                                     r"Output size is too small"),
    "empty_length": (lambda d: ((t(2, 4, 0, device=d), t(4, 3, 3, device=d)), {}), r"Only zero batch"),
    "empty_length_unbatched": (lambda d: ((t(4, 0, device=d), t(4, 3, 3, device=d)), {}), r"Only zero batch"),
    "weight_dtype": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, dtype=torch.float64, device=d)), {}),
                     r"should be the same"),
    "bias_dtype": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(3, dtype=torch.float64, device=d)),
                              {}), r"should be the same"),
    "half_input_float_weight": (lambda d: ((t(2, 4, 10, device=d).half(), t(4, 3, 3, device=d)), {}), r"type"),
    "bias_size": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(4, device=d)), {}),
                  r"expected bias to be 1-dimensional with 3 elements"),
    "bias_2d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(3, 1, device=d)), {}),
                r"expected bias to be 1-dimensional"),
    "stride_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": (1, 1)}),
                       r"expected stride to be a single integer value or a list of 1 values"),
    "padding_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": (1, 1)}),
                        r"expected padding"),
    "output_padding_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                          {"stride": 2, "output_padding": (1, 1)}), r"expected output_padding"),
    "dilation_list_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": [1, 2]}),
                        r"expected dilation"),
    "stride_empty": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": ()}), r"expected stride"),
    "stride_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": 1.0}), r"stride"),
    "padding_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": 1.5}), r"padding"),
    "output_padding_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"output_padding": 0.0}),
                             r"output_padding"),
    "dilation_tuple_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": (2.0,)}),
                             r"dilation"),
    "padding_list_bool": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": [True]}),
                          r"padding"),
    "groups_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 2, 3, device=d)), {"groups": 2.0}), r"groups"),
    "groups_bool": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": True}), r"groups"),
    "padding_none": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": None}), r"padding"),
    "padding_same": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": "same"}), r"padding"),
    "stride_string": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": "1"}), r"stride"),
    "input_not_tensor": (lambda d: ((t(2, 4, 10).tolist(), t(4, 3, 3, device=d)), {}), r"input"),
    "weight_not_tensor": (lambda d: ((t(2, 4, 10, device=d), 3.0), {}), r"weight"),
    "bias_not_tensor": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), 3.0), {}), r"bias"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_same_exception_type_as_pytorch(device, case):
    make, message = ERROR_CASES[case]
    args, kwargs = make(device)
    assert_raises_like(F.conv_transpose1d, conv_transpose1d, args, kwargs, message)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("which", ["weight", "bias", "input"])
def test_device_mismatch(which):
    x, w, b = t(2, 4, 10), t(4, 3, 3), t(3)
    if which == "input":
        x = x.cuda()
    elif which == "weight":
        w = w.cuda()
    else:
        x, w = x.cuda(), w.cuda()
    assert_raises_like(F.conv_transpose1d, conv_transpose1d, (x, w, b), message="device|type")


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_unsupported_dtypes_are_a_clear_runtime_error(dtype):
    """F.conv_transpose1d computes integer (CPU) and complex ones; we do floating point only and say so."""
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        conv_transpose1d(torch.ones(1, 2, 5).to(dtype), torch.ones(2, 3, 3).to(dtype))


# ---------------------------------------------------------------------------------------------------
# ConvTranspose1dExt: drop-in nn.ConvTranspose1d
# ---------------------------------------------------------------------------------------------------


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
    min_len = max(1, 1 + _ceil_div(2 * padding + stride - span, stride))  # every output_size valid
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
    assert isinstance(ours, nn.ConvTranspose1d)
    assert ours.extra_repr() == ref.extra_repr()
    assert repr(ours) == repr(ref).replace("ConvTranspose1d(", "ConvTranspose1dExt(", 1)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation",
                 "groups", "padding_mode", "transposed"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert p.shape == p_ref.shape and p.dtype == p_ref.dtype and p.requires_grad, name
        assert torch.equal(p, p_ref), f"{name}: the same seed must give the same initial values"


def test_initialisation_statistics():
    """nn.ConvTranspose1d's init: kaiming_uniform_(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias, fan_in
    as PyTorch computes it for the transposed weight layout (weight.size(1) · k)."""
    torch.manual_seed(1)
    m = ConvTranspose1dExt(64, 128, 5, stride=2, groups=2)
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(nn.ConvTranspose1d(64, 128, 5, groups=2).weight)
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight, m.bias):
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.95 * bound  # fills the range
    w = m.weight.detach().flatten()
    assert abs(w.mean().item()) < 4 * bound / math.sqrt(3) / math.sqrt(w.numel())
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound


def test_state_dict_loads_both_ways_and_whole_module_save():
    torch.manual_seed(2)
    ref = nn.ConvTranspose1d(4, 6, 4, stride=2, padding=1, groups=2)
    ours = ConvTranspose1dExt(4, 6, 4, stride=2, padding=1, groups=2)
    x = torch.randn(2, 4, 9)
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(x), ref(x))
    torch.manual_seed(3)
    ours2 = ConvTranspose1dExt(4, 6, 4, stride=2, padding=1, groups=2)
    buf = io.BytesIO()
    torch.save(ours2.state_dict(), buf)
    buf.seek(0)
    ref.load_state_dict(torch.load(buf))
    torch.testing.assert_close(ref(x), ours2(x))
    buf = io.BytesIO()
    torch.save(ours2, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded) is ConvTranspose1dExt
    torch.testing.assert_close(loaded(x), ref(x))
    clone = copy.deepcopy(ours2)
    assert type(clone) is ConvTranspose1dExt and clone.weight is not ours2.weight
    torch.testing.assert_close(clone(x), ref(x))


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
    kw = dict(in_channels=4, out_channels=8, kernel_size=3)
    kw.update(kwargs)
    with pytest.raises(Exception) as expected:
        nn.ConvTranspose1d(**kw)
    with pytest.raises(type(expected.value)) as got:
        ConvTranspose1dExt(**kw)
    assert str(got.value) == str(expected.value).replace("ConvTranspose1d", "ConvTranspose1dExt")


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


@pytest.mark.parametrize("copy_params", [False, True])
def test_from_conv_transpose1d(device, copy_params):
    ref = nn.ConvTranspose1d(4, 6, 4, stride=2, padding=2, output_padding=1, dilation=2, groups=2,
                             device=device, dtype=torch.float64)
    ref.bias.requires_grad_(False)
    ref.eval()
    ours = ConvTranspose1dExt.from_conv_transpose1d(ref, copy=copy_params)
    assert type(ours) is ConvTranspose1dExt and not ours.training
    assert ours.extra_repr() == ref.extra_repr()
    for p, p_ref in zip(ours.parameters(), ref.parameters(), strict=True):
        assert (p is p_ref) == (not copy_params)
        assert torch.equal(p, p_ref) and p.device == p_ref.device and p.dtype == p_ref.dtype
        assert p.requires_grad == p_ref.requires_grad
    x = torch.randn(2, 4, 11, device=device, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    with torch.no_grad():
        ref.weight.add_(1.0)
    assert torch.equal(ours.weight, ref.weight) == (not copy_params)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_from_conv_transpose1d_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.Conv1d(3, 3, 3))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.LazyConvTranspose1d(4, 3))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.utils.parametrizations.weight_norm(nn.ConvTranspose1d(2, 2, 3)))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.utils.weight_norm(nn.ConvTranspose1d(2, 2, 3)))


# ---------------------------------------------------------------------------------------------------
# convert_convs on a real decoder: a small randomly initialised HiFi-GAN-style generator
# ---------------------------------------------------------------------------------------------------

wn = nn.utils.parametrizations.weight_norm


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: pairs of (dilated conv, conv) with leaky ReLU and a residual connection."""

    def __init__(self, channels, kernel_size, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList([wn(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                                  padding=d * (kernel_size - 1) // 2)) for d in dilations])
        self.convs2 = nn.ModuleList([wn(nn.Conv1d(channels, channels, kernel_size,
                                                  padding=(kernel_size - 1) // 2)) for _ in dilations])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class Generator(nn.Module):
    """HiFi-GAN's generator, small: mel (80) -> conv_pre -> [leaky ReLU, weight-normed ConvTranspose1d
    upsampler (k = 2·rate, padding (k - rate)/2), mean of ResBlocks] x 3 -> leaky ReLU -> conv_post -> tanh.
    One upsampler and conv_post use the older hook-based torch.nn.utils.weight_norm."""

    def __init__(self, channels=32, rates=(4, 4, 2), kernels=(3, 5), dilations=(1, 3)):
        super().__init__()
        self.conv_pre = wn(nn.Conv1d(80, channels, 7, padding=3))
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        for i, r in enumerate(rates):
            c_in, c_out = channels // 2**i, channels // 2 ** (i + 1)
            up = nn.ConvTranspose1d(c_in, c_out, 2 * r, stride=r, padding=r // 2)
            self.ups.append(nn.utils.weight_norm(up) if i == 1 else wn(up))
            self.resblocks.extend(ResBlock(c_out, k, dilations) for k in kernels)
        self.conv_post = nn.utils.weight_norm(nn.Conv1d(channels // 2 ** len(rates), 1, 7, padding=3))
        self.kernels = len(kernels)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.kernels:(i + 1) * self.kernels]
            x = sum(block(x) for block in blocks) / self.kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def make_generator(dtype):
    torch.manual_seed(5)
    return Generator().to(dtype)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_id)
def test_convert_convs_on_a_hifigan_generator(dtype):
    model, reference = make_generator(dtype), make_generator(dtype)
    params_before = [id(p) for p in model.parameters()]
    seen = []
    model.ups[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    mel = torch.randn(2, 80, 12, dtype=dtype)

    assert convert_convs(model) is model
    ups = list(model.ups)
    assert all(isinstance(m, ConvTranspose1dExt) for m in ups)
    assert nn.utils.parametrize.is_parametrized(ups[0]) and type(ups[0]).__name__ == "ParametrizedConvTranspose1dExt"
    assert type(ups[1]) is ConvTranspose1dExt and hasattr(ups[1], "weight_g")  # hook-based weight_norm kept
    assert type(model.conv_post) is conv1d_ext.Conv1dExt
    assert all(isinstance(m, conv1d_ext.Conv1dExt) for m in model.modules() if isinstance(m, nn.Conv1d))
    assert [id(p) for p in model.parameters()] == params_before
    assert list(model.state_dict()) == list(reference.state_dict())

    x, x_ref = mel.clone().requires_grad_(), mel.clone().requires_grad_()
    y, y_ref = model(x), reference(x_ref)
    assert y.shape == y_ref.shape == (2, 1, 12 * 32) and seen == [(2, 16, 48)]  # the hook still runs
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *model.parameters()], gy)
    grads_ref = torch.autograd.grad(y_ref, [x_ref, *reference.parameters()], gy)
    # float32: round-off of ~20 layers, differently ordered sums on each side
    rtol, atol = (1e-10, 1e-12) if dtype == torch.float64 else (2e-4, 2e-5)
    torch.testing.assert_close(y, y_ref, rtol=rtol, atol=atol)
    names = ["input"] + [n for n, _ in model.named_parameters()]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        scale = g_ref.abs().max().item()
        torch.testing.assert_close(g, g_ref, rtol=rtol, atol=atol * max(1.0, scale), msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_convert_conv1d_still_converts_conv1d_only():
    model = make_generator(torch.float32)
    conv1d_ext.convert_conv1d(model)
    assert all(type(m) in (nn.ConvTranspose1d,) or type(m).__name__ == "ParametrizedConvTranspose1d"
               for m in model.ups)
    assert type(model.conv_post) is conv1d_ext.Conv1dExt
    # and convert_convs finishes the job, leaving the converted ones as they are
    convert_convs(model)
    assert all(isinstance(m, ConvTranspose1dExt) for m in model.ups)


def test_convert_convs_bare_module_idempotence_and_subclasses():
    up = nn.ConvTranspose1d(2, 3, 4, stride=2)
    assert convert_convs(up) is up and type(up) is ConvTranspose1dExt
    assert convert_convs(up) is up and type(up) is ConvTranspose1dExt

    class MyUp(nn.ConvTranspose1d):  # a subclass with its own forward: left alone
        def forward(self, x, output_size=None):
            return super().forward(x, output_size) * 2

    assert type(convert_convs(MyUp(2, 3, 4))) is MyUp
    assert type(convert_convs(nn.LazyConvTranspose1d(3, 3))) is nn.LazyConvTranspose1d


# ---------------------------------------------------------------------------------------------------
# StreamingConvTranspose1d: chunked outputs equal the whole-signal output
# ---------------------------------------------------------------------------------------------------


@st.composite
def stream_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    stride = draw(st.integers(1, 6))
    k = draw(st.integers(1, 8) | st.just(2 * stride))
    dilation = draw(st.integers(1, 3))
    span = dilation * (k - 1) + 1
    padding = draw(st.just(0) | st.integers(0, span))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    cfg = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
               bias=draw(st.booleans()), dilation=dilation)
    min_len = max(1, 1 + _ceil_div(2 * padding + 1 - span - output_padding, stride))
    length = min_len + draw(st.integers(0, 30))
    chunks = draw(st.lists(st.integers(0, 9), min_size=1, max_size=40).filter(any))  # sizes, cycled; 0: empty
    batch = draw(st.sampled_from([None, 1, 2]))
    return (groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), k), cfg, batch, length, chunks


def stream(streamer, x, chunk_sizes):
    """Feeds x in chunks of the given sizes (cycled until x is used up), then flushes."""
    outputs, i, j = [], 0, 0
    while i < x.shape[-1]:
        size = chunk_sizes[j % len(chunk_sizes)]
        outputs.append(streamer.step(x[..., i:i + size]))
        i, j = i + size, j + 1
    outputs.append(streamer.flush())
    return outputs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_id)
def test_streaming_equals_whole_signal(dtype):
    @settings(max_examples=examples(30))
    @given(problem=stream_problems(), seed=st.integers(0, 2**31))
    def check(problem, seed):
        args, cfg, batch, length, chunks = problem
        torch.manual_seed(seed)
        ref = nn.ConvTranspose1d(*args, **cfg, dtype=torch.float64)
        module = ConvTranspose1dExt(*args, **cfg, dtype=dtype)
        module.load_state_dict(ref.state_dict())
        ref.load_state_dict(module.state_dict())
        shape = (args[0], length) if batch is None else (batch, args[0], length)
        x = torch.randn(shape, dtype=torch.float64).to(dtype)
        want = ref(x.double())
        streamer = StreamingConvTranspose1d(module)
        for _ in range(2):  # flush resets: a second signal streams the same way
            got = torch.cat(stream(streamer, x, chunks), dim=-1)
            assert got.shape == want.shape and got.dtype == dtype, (got.shape, want.shape, problem)
            atol = 4 * accumulation_eps(dtype) * math.sqrt(args[0] * args[2] + 1) * max(1.0, abs_max(want))
            torch.testing.assert_close(got.double(), want, rtol=0, atol=atol, msg=lambda m: f"{m} ({problem})")

    check()


def test_streaming_emits_stride_outputs_per_input_and_carries_the_overlap():
    """With padding 0 (the plain streaming case) each step emits stride outputs per input, and flush the
    last dilation·(k − 1) + 1 − stride (HiFi-GAN-like k16 s8: 8)."""
    m = nn.ConvTranspose1d(4, 2, 16, stride=8)
    streamer = StreamingConvTranspose1d(m)
    assert streamer.overlap == 8
    x = torch.randn(1, 4, 10)
    outs = [streamer.step(x[..., :3]), streamer.step(x[..., 3:3]), streamer.step(x[..., 3:])]
    assert [o.shape[-1] for o in outs] == [24, 0, 56]
    last = streamer.flush()
    assert last.shape[-1] == 8
    torch.testing.assert_close(torch.cat(outs + [last], -1), m(x), rtol=1e-5, atol=1e-5)


def test_streaming_unbatched_bf16_and_errors():
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(4, 4, 4, stride=2, padding=1, groups=4).to(torch.bfloat16)
    streamer = StreamingConvTranspose1d(ConvTranspose1dExt.from_conv_transpose1d(ref))
    x = torch.randn(4, 25).to(torch.bfloat16)
    got = torch.cat(stream(streamer, x, [3, 5, 1]), -1)
    want = F.conv_transpose1d(x.double(), ref.weight.double(), ref.bias.double(), 2, 1, 0, 4)
    # each output: two bf16-rounded partial sums (the overlap) added, the bias, a final rounding
    torch.testing.assert_close(got.double(), want, rtol=3 * 2**-8, atol=4 * 2**-8 * want.abs().max().item())
    with pytest.raises(RuntimeError):
        streamer.flush()  # nothing since the last flush
    with pytest.raises(TypeError):
        StreamingConvTranspose1d(nn.Conv1d(2, 2, 3))
    streamer.step(torch.randn(4, 3).to(torch.bfloat16))
    with pytest.raises(ValueError):
        streamer.step(torch.randn(1, 4, 3).to(torch.bfloat16))  # batched after unbatched
    streamer.reset()
    streamer.step(torch.randn(2, 4, 3).to(torch.bfloat16))
    with pytest.raises(ValueError):
        streamer.step(torch.randn(3, 4, 3).to(torch.bfloat16))  # another batch size


def test_public_api():
    for name in ("conv_transpose1d", "ConvTranspose1dExt", "convert_convs", "StreamingConvTranspose1d"):
        assert name in conv1d_ext.__all__ and getattr(conv1d_ext, name).__doc__


# ---------------------------------------------------------------------------------------------------
# Autocast and torch.func: conv_transpose1d goes through the same entry points as conv1d.
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_matches_nn_conv_transpose1d(dtype):
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose1d(8, 6, 4, stride=2, padding=1)
    ours = conv1d_ext.ConvTranspose1dExt.from_conv_transpose1d(ref)
    x = torch.randn(2, 8, 20)
    with torch.autocast("cpu", dtype=dtype):
        expected, got = ref(x), ours(x)
    assert got.dtype == expected.dtype == dtype
    # Both round the same dtype-cast operands; they may differ by the accumulation order and one rounding.
    bound = F.conv_transpose1d(x.to(dtype).double().abs(), ref.weight.to(dtype).double().abs(),
                               ref.bias.to(dtype).double().abs(), 2, 1)
    eps = torch.finfo(dtype).eps
    assert ((got.double() - expected.double()).abs() <= 2 * eps * bound + 1e-30).all()


def test_torch_func_jvp_and_per_sample_grads_match_pytorch():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 9, dtype=torch.float64)
    w = torch.randn(4, 6, 3, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    dx, dw = torch.randn_like(x), torch.randn_like(w)

    def ours(x, w):
        return conv1d_ext.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)

    def ref(x, w):
        return F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)

    got = torch.func.jvp(ours, (x, w), (dx, dw))
    expected = torch.func.jvp(ref, (x, w), (dx, dw))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)

    def loss(fn):
        return lambda w, xi: fn(xi[None], w).square().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss(ours)), in_dims=(None, 0))(w, x)
    expected = torch.func.vmap(torch.func.grad(loss(ref)), in_dims=(None, 0))(w, x)
    torch.testing.assert_close(per_sample, expected)
