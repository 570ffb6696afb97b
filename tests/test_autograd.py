"""Autograd and dispatcher registration: gradcheck and gradgradcheck in float64 (finite differences are
PyTorch's, so this checks our backward formulas and kernels against the function itself), double
backward against nn.Conv1d's, and torch.library.opcheck for every op (schema, autograd registration,
fake kernels, AOT dispatch with dynamic shapes)."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck
from torch.utils._python_dispatch import TorchDispatchMode

import conv1d_ext

ops = torch.ops.conv1d_ext

# (batch, in_channels, out_channels, length, kernel, stride, pad_left, pad_right, dilation, groups)
CONFIGS = [
    (2, 3, 4, 7, 3, 1, 1, 1, 1, 1),  # dense
    (2, 4, 4, 9, 3, 2, 2, 0, 2, 2),  # grouped, strided, dilated, asymmetric
    (1, 3, 3, 8, 4, 1, 1, 2, 1, 3),  # depthwise, 'same' with an even kernel
    (1, 2, 4, 8, 2, 3, 0, 1, 1, 2),  # depthwise with channel multiplier, stride > kernel
    (0, 2, 2, 5, 3, 1, 0, 0, 1, 1),  # empty batch
    (1, 2, 3, 1, 5, 1, 2, 2, 1, 1),  # length 1, output from padding
]
IDS = ["dense", "grouped", "depthwise_same_even", "multiplier", "empty_batch", "len1"]


def operands(cfg, device, bias=True):
    n, cin, cout, length, k, s, pl, pr, d, g = cfg
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    x, w = leaf(n, cin, length), leaf(cout, cin // g, k)
    return x, w, (leaf(cout) if bias else None), (s, pl, pr, d, g)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_gradcheck_and_gradgradcheck(device, cfg):
    x, w, b, conv = operands(cfg, device)

    def f(x, w, b):
        return ops.conv1d(x, w, b, *conv)

    # fast_mode: PyTorch's randomized projection of the Jacobians (a full Jacobian per config is slow on
    # 2 cores); the full one runs on the smallest problem below.
    assert gradcheck(f, (x, w, b), fast_mode=True)
    assert gradgradcheck(f, (x, w, b), fast_mode=True)


def test_full_jacobian_gradcheck(device):
    x, w, b, conv = operands((1, 2, 2, 5, 3, 2, 1, 2, 1, 1), device)
    assert gradcheck(lambda x, w, b: ops.conv1d(x, w, b, *conv), (x, w, b))


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=IDS[:4])
def test_gradcheck_of_each_backward_op(device, cfg):
    """The backward ops are differentiable in all their tensor inputs (what double backward uses)."""
    x, w, b, conv = operands(cfg, device)
    y_shape = ops.conv1d(x, w, b, *conv).shape
    gy = torch.randn(y_shape, dtype=torch.float64, device=device, requires_grad=True)
    length, k = x.shape[2], w.shape[2]
    for f, args in [(lambda gy, w: ops.conv1d_backward_input(gy, w, length, *conv), (gy, w)),
                    (lambda gy, x: ops.conv1d_backward_weight(gy, x, k, *conv), (gy, x)),
                    (lambda gy: ops.conv1d_backward_bias(gy), (gy,))]:
        assert gradcheck(f, args, fast_mode=True)
        assert gradgradcheck(f, args, fast_mode=True)


def test_double_backward_matches_pytorch(device):
    """A gradient penalty (the gradient of a function of the input gradient) equals nn.Conv1d's."""
    x, w, b, (s, pl, pr, d, g) = operands((2, 4, 6, 13, 3, 2, 1, 1, 2, 2), device)
    results = []
    for conv in (lambda x: conv1d_ext.conv1d(x, w, b, s, pl, d, g),
                 lambda x: F.conv1d(x, w, b, s, pl, d, g)):
        y = conv(x)
        (gx,) = torch.autograd.grad(y.sin().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), (x, w, b)))
    for ours, ref in zip(*results, strict=False):
        torch.testing.assert_close(ours, ref)


def test_only_requested_gradients_are_computed(device):
    """Backward skips what autograd does not need (no grad for x -> no backward_input call)."""
    x, w, b, conv = operands(CONFIGS[1], device)
    x = x.detach()
    y = ops.conv1d(x, w, None, *conv)
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


@pytest.mark.parametrize("cfg,dtype", [(CONFIGS[0], torch.float32), (CONFIGS[1], torch.float64),
                                       (CONFIGS[3], torch.float32)], ids=["dense-f32", "grouped-f64",
                                                                          "multiplier-f32"])
def test_opcheck_every_op(device, cfg, dtype):
    x, w, b, conv = operands(cfg, device)
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
