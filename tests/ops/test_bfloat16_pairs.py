"""The bfloat16 dense kernels of the AVX512-BF16 build (csrc/cpu/dense/paired_bf16.h, "paired" micro-kernels:
vdpbf16ps multiplies bfloat16 pairs) at their edges: reductions of odd length (the last pair reads a
zero row), position blocks of odd length in the weight gradient (the last pair's second position is past
the block), and an infinity in input elements no window reads, which a pair must not turn into
0 * inf = NaN. test_ops covers random problems on whichever build this CPU runs; test_cpu_isa runs
bfloat16 on the AVX2 build too. On a CPU without AVX512-BF16 these cases run the AVX2 build: still
valid checks of that build, so they are not skipped."""

import pytest
import torch
import torch.nn.functional as F

import conv1d_ext

# One bfloat16 rounding of each result (2^-8 relative at the top of the range) plus float accumulation.
RTOL = 2 ** -7


def reference(x, w, stride, padding, dilation, groups, grad):
    x64 = x.double().requires_grad_()
    w64 = w.double().requires_grad_()
    out = F.conv1d(x64, w64, None, stride, padding, dilation, groups)
    out.backward(grad.double())
    return out.detach(), x64.grad, w64.grad


def check(actual, expected, name):
    scale = expected.abs().max().clamp_min(1e-30)
    err = ((actual.double() - expected).abs().max() / scale).item()
    assert torch.isfinite(actual).all(), f"{name}: non-finite elements"
    assert err <= RTOL, f"{name}: relative error {err:.3g} > {RTOL:.3g}"


@pytest.mark.parametrize("in_channels,out_channels,kernel_size,stride,dilation,groups", [
    (1, 5, 1, 1, 1, 1),    # reduction 1: a single, half-empty pair
    (3, 7, 3, 1, 1, 1),    # reduction 9 (odd)
    (5, 4, 2, 1, 3, 1),    # reduction 10, dilated
    (6, 9, 5, 2, 1, 3),    # grouped, strided: reduction 10 per group, two phases
    (33, 40, 3, 1, 1, 1),  # 99 steps, a partial channel tile
    (64, 64, 7, 3, 2, 1),  # several reduction chunks
])
@pytest.mark.parametrize("length", [7, 50, 131])
def test_paired_bfloat16_matches_float64(in_channels, out_channels, kernel_size, stride, dilation, groups,
                                         length):
    torch.manual_seed(length * 1000 + in_channels)
    length = max(length, dilation * (kernel_size - 1) + 1)  # the kernel must fit the input
    x = torch.randn(2, in_channels, length).bfloat16()
    w = torch.randn(out_channels, in_channels // groups, kernel_size).bfloat16()
    out = conv1d_ext.conv1d(x, w, None, stride, 1, dilation, groups)
    grad = torch.randn(out.shape).bfloat16()
    ref_out, ref_gx, ref_gw = reference(x, w, stride, 1, dilation, groups, grad)
    check(out, ref_out, "output")
    args = (stride, 1, 1, dilation, groups)
    check(conv1d_ext.ops.conv1d_backward_input(grad, w, length, *args), ref_gx, "grad_input")
    check(conv1d_ext.ops.conv1d_backward_weight(grad, x, kernel_size, *args), ref_gw, "grad_weight")


@pytest.mark.parametrize("out_len", [3, 4, 5, 513, 515])
def test_unread_infinity_stays_out_of_the_weight_gradient(out_len):
    """Input elements after the last window are read by no output position; with an odd number of
    positions in a block, the last pair's second input value is such an element (or the next block's
    first). An infinity there must not reach grad_weight (0 * inf = NaN)."""
    stride, kernel_size = 2, 3
    length = (out_len - 1) * stride + kernel_size + 1  # one trailing element no window reads
    x = torch.randn(2, 16, length).bfloat16()
    x[..., -1] = float("inf")
    w = torch.randn(24, 16, kernel_size).bfloat16()
    grad = torch.randn(2, 24, out_len).bfloat16()
    _, _, ref_gw = reference(x[..., :-1], w, stride, 0, 1, 1, grad)
    gw = conv1d_ext.ops.conv1d_backward_weight(grad, x, kernel_size, stride, 0, 0, 1, 1)
    check(gw, ref_gw, "grad_weight")
