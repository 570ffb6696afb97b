"""Test support: random convolution problems, PyTorch float64 references and per-dtype tolerances.

Every expected value comes from PyTorch (F.conv1d and its autograd) evaluated in float64 on the very
inputs our kernels get (already rounded to the tested dtype), so the only error left to explain is our
kernels' arithmetic. The tolerance of each output element is derived from how that element is computed:

    |ours - ref| <= eps_out * |ref| + 2 * eps_acc * sqrt(R) * M + tiny

  R        the number of products summed into the element (the reduction length of the op),
  M        the same sum over absolute values (computed by PyTorch from |inputs|): the scale of every
           partial sum, whatever the summation order,
  eps_acc  the accumulation precision: the dtype's eps for float32/float64, float32's eps for
           float16/bfloat16 (they must accumulate in float32), TF32's 2^-10 where TF32 is allowed,
  eps_out  the dtype's eps: rounding the float32 accumulator to a 16-bit output is worth up to one ulp.

Round-off in a sum of R terms grows like sqrt(R) for any order (the deterministic worst case is R); a
missing or duplicated term, a wrong tap or an unwritten element are off by ~M/R or more and fail.
"""

import dataclasses
import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

FLOAT_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
TF32_EPS = 2.0 ** -10


def examples(n):
    """n hypothesis examples, scaled by CONV1D_EXT_TEST_SCALE (e.g. 10 for a long exploring run)."""
    import os

    return max(1, int(n * float(os.environ.get("CONV1D_EXT_TEST_SCALE", "1"))))


# ---------------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------------

# How a test tensor is laid out in memory; the ops must give the same answer for every layout.
LAYOUTS = ["contiguous", "strided", "transposed", "expanded", "offset"]


@dataclasses.dataclass(frozen=True)
class ConvCase:
    batch: int
    groups: int
    in_per_group: int
    out_per_group: int
    kernel_size: int
    stride: int
    dilation: int
    pad_left: int
    pad_right: int
    in_len: int
    bias: bool
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


@st.composite
def conv_cases(draw, small=False, layouts=True):
    """Random problems over everything the ops support. `small` keeps sizes emulator-friendly."""
    width = (st.integers(1, 4) | st.sampled_from([5, 7, 8, 9])) if small else \
        (st.integers(1, 4) | st.sampled_from([5, 7, 8, 9, 15, 16, 17, 24, 33]))
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "depthwise_multiplier"]))
    if kind == "dense":
        groups, in_pg, out_pg = 1, draw(width), draw(width)
    elif kind == "grouped":
        groups, in_pg, out_pg = draw(st.integers(2, 4)), draw(st.integers(2, 6)), draw(st.integers(1, 6))
    elif kind == "depthwise":
        groups, in_pg, out_pg = draw(width), 1, 1
    else:
        groups, in_pg, out_pg = draw(st.integers(1, 6)), 1, draw(st.integers(2, 4))
    kernel_size = draw(st.integers(1, 9))
    stride = draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 4))
    span = dilation * (kernel_size - 1) + 1
    pad = st.integers(0, 2) | st.integers(0, span + 1)
    pad_left, pad_right = draw(pad), draw(pad)
    min_len = max(0, span - pad_left - pad_right)  # shortest input PyTorch accepts
    extra = st.integers(0, 3) | st.integers(0, 24 if small else 80)
    if not small:
        extra = extra | st.integers(100, 300)
    in_len = min_len + draw(extra)
    batch = draw(st.integers(0, 2) if small else st.integers(0, 3))
    layout = st.sampled_from(LAYOUTS) if layouts else st.just("contiguous")
    return ConvCase(batch, groups, in_pg, out_pg, kernel_size, stride, dilation, pad_left, pad_right,
                    in_len, draw(st.booleans()), draw(layout), draw(layout), draw(layout),
                    draw(st.integers(0, 2**31 - 1)))


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


def reference(case, x, w, b, gy, absolute=False):
    """PyTorch float64 (CPU) output, grad_input, grad_weight, grad_bias of `case` at these operands.
    With absolute=True the same computation on |operands|: per element, the sum of |products| (M)."""

    def prep(t):
        if t is None:
            return None
        t = t.detach().to("cpu", torch.float64)
        return (t.abs() if absolute else t.clone()).requires_grad_()

    x, w, b, gy = prep(x), prep(w), prep(b), prep(gy)
    with torch.enable_grad():
        y = torch_conv1d(x, w, b, *case.conv_args)
        wrt = [x, w] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, wrt, gy.detach())
    gb = grads[2] if b is not None else gy.detach().sum((0, 2))
    return y.detach(), grads[0], grads[1], gb


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


def tolerance(dtype, ref, magnitude, reduction_len, tf32=False):
    eps_out = torch.finfo(dtype).eps
    eps_acc = accumulation_eps(dtype, tf32)
    tiny = torch.finfo(dtype).tiny
    return eps_out * ref.abs() + 2.0 * eps_acc * math.sqrt(max(reduction_len, 1)) * magnitude + tiny


def assert_close_to_reference(name, ours, ref, magnitude, reduction_len, dtype, tf32=False, context=""):
    """ours (any device, `dtype`) against the float64 reference, elementwise within `tolerance`."""
    assert ours.dtype == dtype, f"{name}: dtype {ours.dtype}, expected {dtype}. {context}"
    assert tuple(ours.shape) == tuple(ref.shape), \
        f"{name}: shape {tuple(ours.shape)}, expected {tuple(ref.shape)}. {context}"
    got = ours.detach().to("cpu", torch.float64)
    if got.numel() == 0:
        return
    bad_nan = ~torch.isfinite(got)
    assert not bad_nan.any(), (f"{name}: {int(bad_nan.sum())} of {got.numel()} elements not finite "
                               f"(unwritten output?), first at {tuple(bad_nan.nonzero()[0].tolist())}. "
                               f"{context}")
    tol = tolerance(dtype, ref, magnitude, reduction_len, tf32)
    err = (got - ref).abs()
    bad = err > tol
    if bad.any():
        i = tuple(bad.nonzero()[0].tolist())
        worst = tuple(int(v) for v in torch.unravel_index((err / tol).argmax(), err.shape))
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {got.numel()} elements out of tolerance; first at {i}: got "
            f"{got[i].item():.10g}, expected {ref[i].item():.10g} (tol {tol[i].item():.3g}); worst at "
            f"{worst}: got {got[worst].item():.10g}, expected {ref[worst].item():.10g}, error "
            f"{err[worst].item():.3g} = {(err[worst] / tol[worst]).item():.3g} x tol. {context}")
