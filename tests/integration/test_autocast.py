"""Mixed precision: under torch.autocast, Conv1dExt, conv1d_ext.conv1d and the op itself follow PyTorch's
policy for convolutions, compared with nn.Conv1d under the same context: the output has the autocast
context's dtype (bfloat16 or float16, CPU and CUDA), float64 is not cast, float32 parameters get float32
gradients of the same values; eager and under torch.compile; GradScaler training ends where nn.Conv1d's does.
ConvTranspose1dExt follows nn.ConvTranspose1d the same way; the causal ops, like causal-conv1d's, are not
autocast: they compute in their operands' dtype inside an autocast region too."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv1d_ext
from conv1d_ext import causal_conv1d_fn, causal_conv1d_update

ops = torch.ops.conv1d_ext

CONFIGS = {
    "dense": dict(in_channels=4, out_channels=8, kernel_size=3, padding=1),
    "grouped_strided_dilated": dict(in_channels=8, out_channels=8, kernel_size=5, groups=4, dilation=2, stride=2),
    "depthwise_same": dict(in_channels=16, out_channels=32, kernel_size=7, groups=16, padding="same"),
}
LOW = [torch.bfloat16, torch.float16]


def pair(cfg, device):
    """A Conv1dExt and an nn.Conv1d with the same parameters."""
    torch.manual_seed(0)
    ours = conv1d_ext.Conv1dExt(**CONFIGS[cfg], device=device)
    ref = nn.Conv1d(**CONFIGS[cfg], device=device)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def assert_close_low(ours, ref, dtype):
    """Both are float32-accumulated sums rounded to `dtype` (the gradients then cast to float32);
    accumulation orders differ, so a rounding can flip: PyTorch's CPU float16 backward was measured up to
    2.3 units of `dtype`'s eps (times the largest value) away from ours; 8 are allowed."""
    eps = torch.finfo(dtype).eps
    scale = max(ref.abs().max().item(), 1e-30)
    torch.testing.assert_close(ours.float(), ref.float(), rtol=2 * eps, atol=8 * eps * scale)


def run(module, x, gy, device, dtype, compiled=False):
    """Output under autocast, then backward (outside the region, as recommended) of grad_output gy."""
    x = x.clone().requires_grad_()
    module.zero_grad()
    forward = torch.compile(module, fullgraph=True) if compiled else module
    with torch.autocast(device, dtype=dtype):
        y = forward(x)
    y.backward(gy.to(y.dtype))
    return y, x.grad, module.weight.grad, module.bias.grad


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.compile)], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_module_matches_nn_conv1d(device, cfg, dtype, compiled, fresh_dynamo):
    ours, ref = pair(cfg, device)
    x = torch.randn(4, ours.in_channels, 64, device=device)
    y_ref = ref(x)
    gy = torch.randn(y_ref.shape, device=device)
    got, expected = run(ours, x, gy, device, dtype, compiled), run(ref, x, gy, device, dtype)
    assert got[0].dtype == expected[0].dtype == dtype
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert_close_low(g, e, dtype)
    assert got[2].dtype == torch.float32  # float32 parameters, float32 gradients


@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
def test_functional_and_op_follow_the_context_dtype(device, dtype):
    """conv1d_ext.conv1d and torch.ops.conv1d_ext.conv1d (the dispatcher's autocast kernel) cast like
    F.conv1d; the gradients reach the float32 leaves as float32."""
    torch.manual_seed(0)
    x, w, b = (torch.randn(*s, device=device, requires_grad=True) for s in [(2, 4, 20), (6, 2, 3), (6,)])
    calls = [lambda: conv1d_ext.conv1d(x, w, b, padding=1, groups=2),
             lambda: ops.conv1d(x, w, b, 1, 1, 1, 1, 2),
             lambda: F.conv1d(x, w, b, padding=1, groups=2)]
    results = []
    for call in calls:
        with torch.autocast(device, dtype=dtype):
            y = call()
        results.append((y, *torch.autograd.grad(y.float().square().sum(), (x, w, b))))
    for got in results[:2]:
        for g, e in zip(got, results[2], strict=True):
            assert g.dtype == e.dtype
            assert_close_low(g, e, dtype)


@pytest.mark.compile
@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
def test_op_under_compile_follows_the_context_dtype(device, dtype, fresh_dynamo):
    """The op's autocast kernel also acts in a compiled graph (the dispatcher path, not conv1d_ext.conv1d's)."""
    torch.manual_seed(0)
    x, w, b = (torch.randn(*s, device=device) for s in [(2, 4, 20), (6, 4, 3), (6,)])
    compiled = torch.compile(lambda x, w, b: ops.conv1d(x, w, b, 1, 1, 1, 1, 1), fullgraph=True)
    with torch.autocast(device, dtype=dtype):
        got, expected = compiled(x, w, b), F.conv1d(x, w, b, padding=1)
    assert got.dtype == expected.dtype == dtype
    assert_close_low(got, expected, dtype)


def test_what_autocast_leaves_alone(device):
    """float64 is not cast, nor is anything inside a region that disables autocast; a float64 input with
    float32 parameters fails as it does for nn.Conv1d (the parameters are cast, the input is not)."""
    ours, ref = pair("dense", device)
    x = torch.randn(2, 4, 16, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        with torch.autocast(device, enabled=False):
            assert ours(x).dtype == ref(x).dtype == torch.float32
        assert ours.double()(x.double()).dtype == ref.double()(x.double()).dtype == torch.float64
        with pytest.raises(Exception) as expected:
            ref.float()(x.double())
        with pytest.raises(Exception, match="should be the same") as got:
            ours.float()(x.double())
        assert type(got.value) is type(expected.value)


def test_backward_ops_are_not_autocast(device):
    """Like PyTorch's convolution_backward, the backward ops are on no autocast list: inside an autocast
    region they compute in the dtype they are given (a backward pass run inside the region uses the dtypes
    autograd saved)."""
    gy, w, x = (torch.randn(*s, device=device) for s in [(2, 6, 18), (6, 4, 3), (2, 4, 20)])
    with torch.autocast(device, dtype=torch.bfloat16):
        ref = torch.ops.aten.convolution_backward(gy, x, w, [6], [1], [0], [1], False, [0], 1,
                                                  [True, True, True])
        got = (ops.conv1d_backward_input(gy, w, 20, 1, 0, 0, 1, 1), ops.conv1d_backward_weight(gy, x, 3, 1, 0, 0, 1, 1),
               ops.conv1d_backward_bias(gy))
    for g, e in zip(got, ref, strict=True):
        assert g.dtype == e.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_backward_inside_the_autocast_region(device):
    ours, ref = pair("grouped_strided_dilated", device)
    x = torch.randn(4, 8, 64, device=device)
    grads = []
    for module in (ours, ref):
        with torch.autocast(device, dtype=torch.bfloat16):
            module(x).float().square().sum().backward()
        grads.append((module.weight.grad, module.bias.grad))
    for g, e in zip(*grads, strict=True):
        assert g.dtype == e.dtype == torch.float32
        assert_close_low(g, e, torch.bfloat16)


def train_with_grad_scaler(conv_cls, device, steps=5):
    torch.manual_seed(0)
    model = nn.Sequential(conv_cls(4, 16, 5, padding=2), nn.GELU(), conv_cls(16, 16, 3, groups=16, padding=1),
                          nn.GELU(), conv_cls(16, 2, 3, stride=2)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(device)
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 4, 64, generator=data).to(device)
        target = torch.randn(8, 2, 31, generator=data).to(device)
        with torch.autocast(device, dtype=torch.float16):
            loss = F.mse_loss(model(x).float(), target)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return model.state_dict(), scaler.get_scale()


def test_grad_scaler_training_matches_nn_conv1d(device):
    """float16 training with a GradScaler (its CUDA variant runs only on a GPU)."""
    (ours, scale), (ref, ref_scale) = (train_with_grad_scaler(cls, device) for cls in (conv1d_ext.Conv1dExt,
                                                                                        nn.Conv1d))
    assert scale == ref_scale
    for key in ref:
        # five float16 steps: each gradient within a few float16 ulps of PyTorch's, times lr and momentum
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-2, atol=1e-3, msg=key)


# ---------------------------------------------------------------------------------------------------
# Transposed and causal convolution
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
def test_transposed_module_matches_nn_conv_transpose1d(device, dtype):
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(8, 6, 4, stride=2, padding=1, device=device)
    ours = conv1d_ext.ConvTranspose1dExt.from_conv_transpose1d(ref)
    x = torch.randn(2, 8, 20, device=device)
    with torch.autocast(device, dtype=dtype):
        expected, got = ref(x), ours(x)
    assert got.dtype == expected.dtype == dtype
    # Both round the same dtype-cast operands; they may differ by the accumulation order and one rounding.
    bound = F.conv_transpose1d(x.to(dtype).double().abs(), ref.weight.to(dtype).double().abs(),
                               ref.bias.to(dtype).double().abs(), 2, 1)
    eps = torch.finfo(dtype).eps
    assert ((got.double() - expected.double()).abs() <= 2 * eps * bound + 1e-30).all()


def test_causal_conv1d_is_not_autocast(device):
    """The causal ops have no autocast kernel (causal-conv1d's kernels take the caller's dtype too): inside
    an autocast region causal_conv1d_fn and causal_conv1d_update give the bits they give outside it, in
    their operands' dtype, and operands of two dtypes are the error they are outside it."""
    gen = torch.Generator().manual_seed(0)
    x, w, b, state = (torch.randn(*s, generator=gen).to(device) for s in [(2, 4, 12), (4, 3), (4,), (2, 4, 2)])
    results = []
    for autocast in (False, True):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            step_state = state.clone()
            results.append((causal_conv1d_fn(x, w, b, activation="silu"),
                            causal_conv1d_update(x[..., 0], step_state, w, b), step_state))
            with pytest.raises(RuntimeError, match="should be the same"):
                causal_conv1d_fn(x.bfloat16(), w, b)
    for outside, inside in zip(*results, strict=True):
        assert inside.dtype == torch.float32 and torch.equal(inside, outside)
