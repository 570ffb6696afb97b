"""Test support: random convolution problems, PyTorch float64 references and per-dtype tolerances.

Every expected value comes from PyTorch (F.conv1d and its autograd) evaluated in float64 on the very
inputs our kernels get (already rounded to the tested dtype), so the only error left to explain is our
kernels' arithmetic. The tolerance of each output element is derived from how that element is computed,
and it is the one tolerance model of the whole suite (the CPU kernels, the CUDA kernels on a GPU and
under the emulator, the functional and module APIs):

    |ours - ref| <= u_out * |ref| + (1 + u_out) * 2 * eps_acc * sqrt(R) * M + tiny

  R        the number of products summed into the element (the reduction length of the op),
  M        the same sum over absolute values (computed by PyTorch from |inputs|): the scale of every
           partial sum, whatever the summation order,
  eps_acc  the accumulation precision: the dtype's eps for float32/float64, float32's eps for
           float16/bfloat16 (they must accumulate in float32),
  u_out    the final store's rounding: half the dtype's eps for float16/bfloat16, whose float32
           accumulator is rounded to nearest once (a converter that truncates is off by up to a whole
           ulp and fails); 0 for float32/float64, whose output is the accumulator itself,
  tiny     half the dtype's subnormal spacing (a 16-bit result that underflows).

Round-off in a sum of R terms grows like sqrt(R) for any order (the deterministic worst case is R); a
missing or duplicated term, a wrong tap or an unwritten element are off by ~M/R or more and fail.

TF32: the suite runs with torch.backends.cudnn.allow_tf32 False (conftest.py), so float32 is strict
float32 everywhere (the CUDA tensor-core family then hands float32 to the FMA GEMM). The TF32 path is
judged in ops/test_tensor_core.py: bit-equal to the FMA kernels while allow_tf32 is False, and while it is True
within the float32 bound against a float64 reference of the cvt.rna-rounded operands (tighter than this
model with eps_acc = TF32_EPS, which is ~100x looser than the measured error).
"""

import contextlib
import dataclasses
import hashlib
import math
import os

import hypothesis
import pytest
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

FLOAT_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
TF32_EPS = 2.0 ** -10


def exploring():
    """True under the opt-in "explore" hypothesis profile (conftest.py): fresh random examples each run."""
    return not hypothesis.settings.default.derandomize


def examples(n):
    """n hypothesis examples, scaled by CONV1D_EXT_TEST_SCALE (default 1, or 10 when exploring)."""
    scale = float(os.environ.get("CONV1D_EXT_TEST_SCALE", "10" if exploring() else "1"))
    return max(1, int(n * scale))


def seeded(test, *parameters):
    """`test` (a hypothesis test) with a fixed seed of its own per `parameters` (e.g. test name, backend,
    dtype), so every dtype and backend draws its own examples and CI stays reproducible. When exploring
    the test is left unseeded: a new seed every run (hypothesis prints it with a failure)."""
    if exploring():
        return test
    digest = hashlib.sha256(repr(parameters).encode()).digest()
    return hypothesis.seed(int.from_bytes(digest[:8], "little"))(test)


def drawn_examples(strategy, n, *parameters):
    """The examples a hypothesis test of `strategy` with max_examples=n, seeded by `parameters` (seeded),
    draws, as a list: to run one test's cases on another build (infra/test_cpu_faults.py)."""
    drawn = []

    @hypothesis.settings(max_examples=n)
    @hypothesis.given(strategy)
    def collect(example):
        drawn.append(example)

    seeded(collect, *parameters)()
    return drawn


# ---------------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------------

# How a test tensor is laid out in memory; the ops must give the same answer for every layout.
LAYOUTS = ["contiguous", "strided", "transposed", "expanded", "offset"]


class GroupedChannels:
    """The channel counts of a problem given as groups x channels per group (ConvCase, and the transposed
    problems of transposed_ref.TCase)."""

    @property
    def in_channels(self):
        return self.groups * self.in_per_group

    @property
    def out_channels(self):
        return self.groups * self.out_per_group


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvCase(GroupedChannels):
    batch: int
    groups: int
    in_per_group: int
    out_per_group: int
    kernel_size: int
    in_len: int
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0
    pad_right: int = 0
    bias: bool = True
    input_layout: str = "contiguous"
    weight_layout: str = "contiguous"
    grad_layout: str = "contiguous"
    seed: int = 0

    @property
    def span(self):
        return self.dilation * (self.kernel_size - 1) + 1

    @property
    def out_len(self):
        return (self.in_len + self.pad_left + self.pad_right - self.span) // self.stride + 1

    @property
    def conv_args(self):
        """stride, pad_left, pad_right, dilation, groups: the ops' trailing arguments."""
        return self.stride, self.pad_left, self.pad_right, self.dilation, self.groups

    @property
    def input_shape(self):
        return self.batch, self.in_channels, self.in_len

    @property
    def weight_shape(self):
        return self.out_channels, self.in_per_group, self.kernel_size

    @property
    def output_shape(self):
        return self.batch, self.out_channels, self.out_len

    @property
    def work(self):
        """Multiply-adds of one op (the forward): what a case costs."""
        return self.batch * self.out_channels * self.in_per_group * self.kernel_size * max(self.out_len, 0)


# Multiply-adds per op of one random case (see conv_cases): rows with many channels and taps are cut
# to this length budget so that a run stays a few minutes (the CPU emulator of the CUDA kernels, too).
MAX_WORK = 4_000_000


@st.composite
def conv_cases(draw, max_work=MAX_WORK, layouts=True):
    """Random problems over everything the ops support: dense, grouped, depthwise and channel-multiplier
    groups (multipliers past one 4-channel CPU tile and past the 8 that switch the forward to the dense
    kernels), kernels up to 40 taps (several 8-tap blocks), strides, dilations, asymmetric padding,
    lengths from the minimum to rows of several CPU blocks (512 positions) and GPU tiles (64-512
    outputs), layouts, and now and then an empty batch. Cases over `max_work` multiply-adds get a
    shorter row."""
    width = st.integers(1, 4) | st.sampled_from([5, 7, 8, 9, 15, 16, 17, 24, 33])
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "depthwise_multiplier"]))
    if kind == "dense":
        groups, in_pg, out_pg = 1, draw(width), draw(width)
    elif kind == "grouped":
        groups, in_pg, out_pg = draw(st.integers(2, 4)), draw(st.integers(2, 6)), draw(st.integers(1, 6))
    elif kind == "depthwise":
        groups, in_pg, out_pg = draw(width), 1, 1
    else:
        groups, in_pg = draw(st.integers(1, 6)), 1
        out_pg = draw(st.integers(2, 4) | st.sampled_from([5, 6, 7, 8, 9, 12, 16]))
    kernel_size = draw(st.integers(1, 9) | st.integers(10, 40))
    stride = draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 4))
    span = dilation * (kernel_size - 1) + 1
    pad = st.integers(0, 2) | st.integers(0, span + 1)
    pad_left, pad_right = draw(pad), draw(pad)
    min_len = max(0, span - pad_left - pad_right)  # shortest input PyTorch accepts
    extra = draw(st.integers(0, 3) | st.integers(0, 80) | st.integers(100, 300) | st.integers(1000, 2600))
    # An empty batch in about one case in 20 (hypothesis draws 0 far more often than other integers, so the
    # rare value is a middle one).
    batch = 0 if draw(st.integers(0, 9)) == 5 else draw(st.integers(1, 3))
    case = ConvCase(batch=batch, groups=groups, in_per_group=in_pg, out_per_group=out_pg,
                    kernel_size=kernel_size, stride=stride, dilation=dilation, pad_left=pad_left,
                    pad_right=pad_right, in_len=min_len + extra, bias=draw(st.booleans()))
    if case.work > max_work:  # keep the row, cut its length to the budget (at least the minimum)
        per_output = case.work // max(case.out_len, 1)
        out_len = max(1, max_work // per_output)
        case = dataclasses.replace(case, in_len=max(min_len, min_len + (out_len - 1) * stride))
    layout = st.sampled_from(LAYOUTS) if layouts else st.just("contiguous")
    return dataclasses.replace(case, input_layout=draw(layout), weight_layout=draw(layout),
                               grad_layout=draw(layout), seed=draw(st.integers(0, 2**31 - 1)))


# Hand-picked problems every run sees, besides the random ones (ops/test_conv1d_ops.py runs them on every backend;
# the CPU fault-injection test, infra/test_cpu_faults.py, requires them to catch its planted bugs).
FIXED_CASES = [
    ConvCase(batch=2, groups=1, in_per_group=3, out_per_group=4, kernel_size=3, in_len=8, pad_left=1,
             pad_right=1),
    ConvCase(batch=0, groups=2, in_per_group=2, out_per_group=3, kernel_size=3, in_len=5, stride=2,
             pad_left=1),  # empty batch
    ConvCase(batch=2, groups=1, in_per_group=3, out_per_group=2, kernel_size=4, in_len=0, pad_left=4,
             pad_right=3, dilation=2),  # in_len 0: the output is made of padding only
    ConvCase(batch=1, groups=4, in_per_group=1, out_per_group=1, kernel_size=5, in_len=13, stride=2,
             dilation=3, bias=False),  # depthwise, strided, dilated, minimum-ish length
    ConvCase(batch=3, groups=3, in_per_group=1, out_per_group=2, kernel_size=4, in_len=17, pad_left=1,
             pad_right=2, input_layout="transposed", weight_layout="expanded",
             grad_layout="strided"),  # 'same' with an even kernel
    ConvCase(batch=2, groups=1, in_per_group=33, out_per_group=17, kernel_size=9, in_len=70, pad_left=4,
             pad_right=4),  # long reductions, tiles with tails
    ConvCase(batch=2, groups=16, in_per_group=1, out_per_group=1, kernel_size=4, in_len=67,
             pad_left=3),  # causal depthwise k=4 (Mamba)
    ConvCase(batch=1, groups=1, in_per_group=1, out_per_group=1, kernel_size=1, in_len=1, stride=4,
             bias=False),  # smallest
    # Long rows: several CPU length blocks (512 positions) and GPU tiles along the length, with tails.
    ConvCase(batch=2, groups=1, in_per_group=8, out_per_group=16, kernel_size=3, in_len=1100, pad_left=1,
             pad_right=1),
    ConvCase(batch=1, groups=2, in_per_group=3, out_per_group=5, kernel_size=5, in_len=2077, stride=2,
             dilation=2, pad_left=1, pad_right=3, input_layout="strided",
             grad_layout="transposed"),
    ConvCase(batch=2, groups=24, in_per_group=1, out_per_group=1, kernel_size=3, in_len=1500,
             pad_left=2),  # depthwise, causal padding
    # Large kernels: the CPU depthwise backward-weight works in blocks of 8 taps (two full blocks, three
    # and a partial one, ten), the GPU depthwise kernels in tap groups of 8.
    ConvCase(batch=2, groups=8, in_per_group=1, out_per_group=1, kernel_size=16, in_len=300,
             pad_left=15),  # causal depthwise k=16
    ConvCase(batch=2, groups=16, in_per_group=1, out_per_group=1, kernel_size=31, in_len=400, pad_left=15,
             pad_right=15),  # Conformer depthwise k=31 'same'
    ConvCase(batch=2, groups=2, in_per_group=4, out_per_group=6, kernel_size=31, in_len=500, dilation=2,
             pad_left=30, pad_right=30, weight_layout="transposed"),  # grouped k=31
    # Channel multipliers: x6 runs a second (partial) 4-channel tile of the CPU depthwise forward; x16
    # with 4 groups takes the dense forward (multiplier > 8) and the depthwise backward; C1 -> 64, k=80,
    # stride 4 is the waveform front end (ten 8-tap blocks in the depthwise backward-weight).
    ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=6, kernel_size=5, in_len=200, pad_left=2,
             pad_right=2),
    ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=16, kernel_size=7, in_len=300, stride=2,
             pad_left=3, pad_right=3),
    ConvCase(batch=2, groups=1, in_per_group=1, out_per_group=64, kernel_size=80, in_len=1600, stride=4,
             pad_left=38, pad_right=38),
    # Blocking edges of the CPU dense kernels: 80 output channels per group run the backward-weight loop
    # over output-channel groups (64 per group in float32) twice; 128 input channels make the 256 KiB
    # packed-source budget of the forward split every row of 1100 positions (blocks of ~512 positions in
    # float32, ~256 in float64; 3 samples x 3 blocks are enough work items for 2 threads, so the budget
    # and not load balancing sets the block length).
    ConvCase(batch=3, groups=1, in_per_group=128, out_per_group=80, kernel_size=3, in_len=1100, pad_left=1,
             pad_right=1),
]


def make_tensor(shape, dtype, device, layout, gen):
    """A random tensor of `shape` (3-D) stored in the given layout; values are rounded to `dtype` first,
    so `t.double()` is exactly what a kernel sees."""

    def rand(*s):
        return torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)

    n, c, length = shape
    if layout == "contiguous":
        return rand(n, c, length)
    if layout == "strided":  # every other element along the length
        return rand(n, c, 2 * length)[:, :, ::2]
    if layout == "transposed":  # (n, length, c) memory, channels innermost
        return rand(n, length, c).transpose(1, 2)
    if layout == "expanded":  # one sample (or one filter) broadcast over the leading dimension
        return rand(1, c, length).expand(n, c, length)
    if layout == "offset":  # a channel slice of a bigger tensor: storage offset, padded channel stride
        return rand(n, c + 3, length + 1)[:, 2:2 + c, 1:]
    raise ValueError(layout)


def make_operands(case, dtype, device):
    """input, weight, bias (or None) and grad_output of a case, on `device` in `dtype`."""
    gen = torch.Generator().manual_seed(case.seed)
    x = make_tensor(case.input_shape, dtype, device, case.input_layout, gen)
    w = make_tensor(case.weight_shape, dtype, device, case.weight_layout, gen)
    b = torch.randn(case.out_channels, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device) \
        if case.bias else None
    gy = make_tensor(case.output_shape, dtype, device, case.grad_layout, gen)
    return x, w, b, gy


# ---------------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------------


def torch_conv1d(x, w, b, stride, pad_left, pad_right, dilation, groups):
    """PyTorch's conv1d with asymmetric zero padding."""
    return F.conv1d(F.pad(x, (pad_left, pad_right)), w, b, stride, 0, dilation, groups)


@contextlib.contextmanager
def torch_threads(n):
    """PyTorch's CPU ops on n threads while the block runs. The references use 1: on a loaded 2-core
    machine OpenMP's spinning barriers make small multi-threaded ops ~10-50x slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def reference(case, x, w, b, gy, absolute=False):
    """PyTorch float64 (CPU) output, grad_input, grad_weight, grad_bias of `case` at these operands.
    With absolute=True the same computation on |operands|: per element, the sum of |products| (M)."""

    def prep(t):
        if t is None:
            return None
        t = t.detach().to("cpu", torch.float64)
        return (t.abs() if absolute else t.clone()).requires_grad_()

    x, w, b, gy = prep(x), prep(w), prep(b), prep(gy)
    with torch.enable_grad(), torch_threads(1):
        y = torch_conv1d(x, w, b, *case.conv_args)
        wrt = [x, w] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, wrt, gy.detach())
    gb = grads[2] if b is not None else gy.detach().sum((0, 2))
    return y.detach(), grads[0], grads[1], gb


OUTPUT_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")


def reduction_lengths(case):
    """Products summed into one element of: output (+ bias), grad_input, grad_weight, grad_bias."""
    per_row = case.batch * case.out_len
    return (case.in_per_group * case.kernel_size + 1, case.out_per_group * case.kernel_size, per_row,
            per_row)


def accumulation_eps(dtype, tf32=False):
    if dtype in (torch.float16, torch.bfloat16):
        return torch.finfo(torch.float32).eps
    if dtype == torch.float32 and tf32:
        return TF32_EPS
    return torch.finfo(dtype).eps


def output_rounding(dtype):
    """u_out: the relative error of the final store (see the module docstring)."""
    return torch.finfo(dtype).eps / 2 if dtype in (torch.float16, torch.bfloat16) else 0.0


def tolerance(dtype, ref, magnitude, reduction_len, tf32=False):
    """Elementwise bound on |ours - ref| (the module docstring's model); ref and magnitude in float64."""
    accumulation = 2.0 * accumulation_eps(dtype, tf32) * math.sqrt(max(reduction_len, 1)) * magnitude
    u_out = output_rounding(dtype)
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps / 2
    return u_out * ref.abs() + (1 + u_out) * accumulation + tiny


def reference_mismatch(name, ours, ref, magnitude, reduction_len, dtype, tf32=False):
    """None when ours (any device, `dtype`) is within `tolerance` of the float64 reference everywhere,
    else a description of what is wrong."""
    if ours.dtype != dtype:
        return f"{name}: dtype {ours.dtype}, expected {dtype}"
    if tuple(ours.shape) != tuple(ref.shape):
        return f"{name}: shape {tuple(ours.shape)}, expected {tuple(ref.shape)}"
    got = ours.detach().to("cpu", torch.float64)
    if got.numel() == 0:
        return None
    not_finite = ~torch.isfinite(got)
    if not_finite.any():
        return (f"{name}: {int(not_finite.sum())} of {got.numel()} elements not finite (unwritten output?), "
                f"first at {tuple(not_finite.nonzero()[0].tolist())}")
    tol = tolerance(dtype, ref, magnitude, reduction_len, tf32)
    err = (got - ref).abs()
    bad = err > tol
    if not bad.any():
        return None
    i = tuple(bad.nonzero()[0].tolist())
    worst = tuple(int(v) for v in torch.unravel_index((err / tol).argmax(), err.shape))
    return (f"{name}: {int(bad.sum())} of {got.numel()} elements out of tolerance; first at {i}: got "
            f"{got[i].item():.10g}, expected {ref[i].item():.10g} (tol {tol[i].item():.3g}); worst at "
            f"{worst}: got {got[worst].item():.10g}, expected {ref[worst].item():.10g}, error "
            f"{err[worst].item():.3g} = {(err[worst] / tol[worst]).item():.3g} x tol")


def assert_close_to_reference(name, ours, ref, magnitude, reduction_len, dtype, tf32=False, context=""):
    """ours (any device, `dtype`) against the float64 reference, elementwise within `tolerance`."""
    problem = reference_mismatch(name, ours, ref, magnitude, reduction_len, dtype, tf32)
    assert problem is None, f"{problem}. {context}"


def conformance_problems(run_ops, case, dtype, device="cpu"):
    """Runs an implementation of the four ops on the case's operands (run_ops(case, x, w, b, gy) ->
    output, grad_input, grad_weight, grad_bias) and compares each result with PyTorch's float64 one.
    Returns the problems found: empty when the case conforms. Also checks that no operand is modified
    and that the results are on `device`."""
    x, w, b, gy = make_operands(case, dtype, device)
    operands = [t for t in (x, w, b, gy) if t is not None]
    originals = [t.clone() for t in operands]
    ours = run_ops(case, x, w, b, gy)
    refs = reference(case, x, w, b, gy)
    magnitudes = reference(case, x, w, b, gy, absolute=True)
    problems = []
    for name, got, ref, mag, red in zip(OUTPUT_NAMES, ours, refs, magnitudes, reduction_lengths(case),
                                        strict=True):
        if got.device.type != torch.device(device).type:
            problems.append(f"{name} on {got.device}, expected {device}")
        problem = reference_mismatch(name, got, ref, mag, red, dtype)
        if problem is not None:
            problems.append(problem)
    if not all(torch.equal(before, after) for before, after in zip(originals, operands, strict=True)):
        problems.append("an op modified its input")
    return problems


def run_conv_ops(ops):
    """run_ops for conformance_problems: the four ops of an op namespace (torch.ops.conv1d_ext, or an
    emulated or fault-injected build of them)."""

    def run(case, x, w, b, gy):
        return (ops.conv1d(x, w, b, *case.conv_args),
                ops.conv1d_backward_input(gy, w, case.in_len, *case.conv_args),
                ops.conv1d_backward_weight(gy, x, case.kernel_size, *case.conv_args),
                ops.conv1d_backward_bias(gy))

    return run


def assert_raises_like(reference, ours, args, kwargs=None, message=".*"):
    """`ours(*args, **kwargs)` raises exactly the exception type `reference` (PyTorch's function) raises for
    the same call, with a message matching `message`, and leaves the caller's tensors unchanged."""
    kwargs = kwargs or {}
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = [a.clone() for a in tensors]
    with pytest.raises(Exception) as expected:
        reference(*args, **kwargs)
    with pytest.raises(Exception, match=message) as got:
        ours(*args, **kwargs)
    assert type(got.value) is type(expected.value), \
        f"{reference.__name__} raises {type(expected.value).__name__}: {expected.value}; we raise " \
        f"{type(got.value).__name__}: {got.value}"
    assert all(torch.equal(a, b) for a, b in zip(tensors, before, strict=True))
