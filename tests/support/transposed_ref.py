"""Transposed convolution problems and their float64 reference, shared by the transposed tests
(ops/test_transposed_ops.py, api/test_transposed_module.py, api/test_streaming.py): conv1d_ext's
conv_transpose1d against F.conv_transpose1d computed in float64 on the very (dtype-rounded) inputs ours
gets, with conv_ref.py's error bound per element (see there): u_out·|ref| + (1 + u_out)·2·eps_acc·sqrt(R)·M."""

import dataclasses

import torch
import torch.nn.functional as F
from conv_ref import LAYOUTS, GroupedChannels, make_tensor, tolerance
from hypothesis import strategies as st

from conv1d_ext import conv_transpose1d

HALF = (torch.float16, torch.bfloat16)


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


@dataclasses.dataclass(frozen=True)
class TCase(GroupedChannels):
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


def ceil_div(a, b):
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
    min_len = max(1, 1 + ceil_div(2 * padding + 1 - span - output_padding, stride))
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
