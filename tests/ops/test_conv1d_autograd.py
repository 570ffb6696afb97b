"""Autograd and dispatcher registration: gradcheck and gradgradcheck in float64 (finite differences are
PyTorch's, so this checks our backward formulas and kernels against the function itself), with and
without bias, on non-contiguous operands and on long rows (the kernels' blocked paths), one full
(not fast-mode) Jacobian each way, double backward against nn.Conv1d's, and torch.library.opcheck for
every op (schema, autograd registration, fake kernels, AOT dispatch with dynamic shapes).
infra/test_cpu_isa.py runs this file again on the baseline-ISA and the direct CPU kernels."""

import pytest
import torch
import torch.nn.functional as F
from conv_ref import ConvCase, make_operands
from torch.autograd import gradcheck, gradgradcheck
from torch.utils._python_dispatch import TorchDispatchMode

import conv1d_ext

ops = torch.ops.conv1d_ext

CASES = {
    "dense": ConvCase(batch=2, groups=1, in_per_group=3, out_per_group=4, kernel_size=3, in_len=7,
                      pad_left=1, pad_right=1),
    "grouped_strided_dilated": ConvCase(batch=2, groups=2, in_per_group=2, out_per_group=2, kernel_size=3,
                                        in_len=9, stride=2, dilation=2, pad_left=2),
    "depthwise_same_even": ConvCase(batch=1, groups=3, in_per_group=1, out_per_group=1, kernel_size=4,
                                    in_len=8, pad_left=1, pad_right=2),
    "multiplier_stride_over_kernel": ConvCase(batch=1, groups=2, in_per_group=1, out_per_group=2,
                                              kernel_size=2, in_len=8, stride=3, pad_right=1),
    "empty_batch": ConvCase(batch=0, groups=1, in_per_group=2, out_per_group=2, kernel_size=3, in_len=5),
    "len1_output_from_padding": ConvCase(batch=1, groups=1, in_per_group=2, out_per_group=3, kernel_size=5,
                                         in_len=1, pad_left=2, pad_right=2),
    "dense_no_bias": ConvCase(batch=2, groups=1, in_per_group=2, out_per_group=3, kernel_size=3, in_len=6,
                              stride=2, pad_left=1, bias=False),
    "depthwise_no_bias": ConvCase(batch=2, groups=2, in_per_group=1, out_per_group=1, kernel_size=3,
                                  in_len=7, dilation=2, pad_left=2, bias=False),
    "non_contiguous": ConvCase(batch=2, groups=2, in_per_group=2, out_per_group=3, kernel_size=3, in_len=8,
                               pad_left=1, pad_right=1, input_layout="transposed", weight_layout="strided",
                               grad_layout="offset"),
    "non_contiguous_depthwise": ConvCase(batch=2, groups=3, in_per_group=1, out_per_group=2, kernel_size=4,
                                         in_len=9, stride=2, pad_left=3, input_layout="offset",
                                         weight_layout="transposed", grad_layout="strided", bias=False),
    # Long rows: several CPU blocks along the length (dense_tiled, depthwise phases), taps past one
    # 8-tap block of the depthwise backward-weight.
    "long_grouped": ConvCase(batch=1, groups=2, in_per_group=2, out_per_group=3, kernel_size=5, in_len=600,
                             dilation=2, pad_left=4, pad_right=4),
    "long_depthwise_k17": ConvCase(batch=2, groups=2, in_per_group=1, out_per_group=2, kernel_size=17,
                                   in_len=600, stride=2, pad_left=16, input_layout="transposed"),
}


def leaf_operands(case, device):
    """x, w, b (None without bias) as float64 leaves in the case's layouts, and the conv arguments."""
    x, w, b, _ = make_operands(case, torch.float64, device)
    x, w = x.requires_grad_(), w.requires_grad_()
    b = b.requires_grad_() if b is not None else None
    return x, w, b, case.conv_args


def conv_fn(case, with_bias):
    if with_bias:
        return lambda x, w, b: ops.conv1d(x, w, b, *case.conv_args)
    return lambda x, w: ops.conv1d(x, w, None, *case.conv_args)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_and_gradgradcheck(device, name):
    case = CASES[name]
    x, w, b, _ = leaf_operands(case, device)
    inputs = (x, w) if b is None else (x, w, b)
    # fast_mode: PyTorch's randomized projection of the Jacobians (a full Jacobian per case is slow on
    # 2 cores); the full ones run on a small problem below.
    assert gradcheck(conv_fn(case, b is not None), inputs, fast_mode=True)
    assert gradgradcheck(conv_fn(case, b is not None), inputs, fast_mode=True)


@pytest.mark.parametrize("name", ["grouped_strided_dilated", "non_contiguous_depthwise"])
def test_full_jacobian_gradcheck_and_gradgradcheck(device, name):
    """The full Jacobians (every element perturbed): of the op, and of its backward (double backward,
    grad_output included), on small problems."""
    case = CASES[name]
    x, w, b, _ = leaf_operands(case, device)
    inputs = (x, w) if b is None else (x, w, b)
    assert gradcheck(conv_fn(case, b is not None), inputs)
    assert gradgradcheck(conv_fn(case, b is not None), inputs)


@pytest.mark.parametrize("name", ["dense", "grouped_strided_dilated", "depthwise_same_even",
                                  "multiplier_stride_over_kernel", "non_contiguous", "long_depthwise_k17"])
def test_gradcheck_of_each_backward_op(device, name):
    """The backward ops are differentiable in all their tensor inputs (what double backward uses)."""
    case = CASES[name]
    x, w, b, conv = leaf_operands(case, device)
    gy = make_operands(case, torch.float64, device)[3].requires_grad_()
    length, k = x.shape[2], w.shape[2]
    for f, args in [(lambda gy, w: ops.conv1d_backward_input(gy, w, length, *conv), (gy, w)),
                    (lambda gy, x: ops.conv1d_backward_weight(gy, x, k, *conv), (gy, x)),
                    (lambda gy: ops.conv1d_backward_bias(gy), (gy,))]:
        assert gradcheck(f, args, fast_mode=True)
        assert gradgradcheck(f, args, fast_mode=True)


def test_double_backward_matches_pytorch(device):
    """A gradient penalty (the gradient of a function of the input gradient) equals nn.Conv1d's."""
    case = ConvCase(batch=2, groups=2, in_per_group=2, out_per_group=3, kernel_size=3, in_len=13, stride=2,
                    dilation=2, pad_left=1, pad_right=1)
    x, w, b, (s, pl, _, d, g) = leaf_operands(case, device)
    results = []
    for conv in (lambda x: conv1d_ext.conv1d(x, w, b, s, pl, d, g),
                 lambda x: F.conv1d(x, w, b, s, pl, d, g)):
        y = conv(x)
        (gx,) = torch.autograd.grad(y.sin().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), (x, w, b)))
    for ours, ref in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref)


def test_only_requested_gradients_are_computed(device):
    """Backward skips what autograd does not need (no grad for x -> no backward_input call)."""
    x, w, _, conv = leaf_operands(CASES["grouped_strided_dilated"], device)
    y = ops.conv1d(x.detach(), w, None, *conv)
    calls = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            calls.append(str(func))
            return func(*args, **(kwargs or {}))

    with Spy():
        (gw,) = torch.autograd.grad(y.sum(), w)
    assert gw.shape == w.shape
    assert any("conv1d_backward_weight" in c for c in calls)
    assert not any("conv1d_backward_input" in c or "conv1d_backward_bias" in c for c in calls)


@pytest.mark.parametrize("name,dtype", [("dense", torch.float32), ("grouped_strided_dilated", torch.float64),
                                        ("multiplier_stride_over_kernel", torch.float32)],
                         ids=["dense-f32", "grouped-f64", "multiplier-f32"])
def test_opcheck_every_op(device, name, dtype):
    x, w, b, conv = leaf_operands(CASES[name], device)
    x, w, b = (t.detach().to(dtype).requires_grad_() for t in (x, w, b))
    gy = torch.randn(ops.conv1d(x, w, b, *conv).shape, dtype=dtype, device=device)
    calls = [
        (ops.conv1d.default, (x, w, b, *conv)),
        (ops.conv1d.default, (x, w, None, *conv)),
        (ops.conv1d_backward_input.default, (gy, w, x.shape[2], *conv)),
        (ops.conv1d_backward_weight.default, (gy, x, w.shape[2], *conv)),
        (ops.conv1d_backward_bias.default, (gy,)),
    ]
    for op, args in calls:
        torch.library.opcheck(op, args)
