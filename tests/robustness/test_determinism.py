"""Deterministic across thread counts: every op's result is bit-identical whatever torch.set_num_threads
says (the reductions of backward-weight and backward-bias are partitioned by the problem, not by the
threads). Compared bitwise at 1, 2 and 3 threads (3 oversubscribes these 2 cores, which must not matter);
and run to run on the same inputs."""

import pytest
import torch
from causal_ref import make_x, rand

import conv1d_ext

ops = torch.ops.conv1d_ext

# (batch, in_channels, out_channels, groups, kernel, stride, dilation, pad_left, pad_right, length):
# dense, strided + dilated, grouped, pointwise, depthwise, depthwise with a channel multiplier, and a long
# single-batch row (the weight reduction then splits along the length).
CASES = [
    (4, 32, 48, 1, 3, 1, 1, 1, 1, 700),
    (3, 16, 24, 1, 7, 2, 3, 5, 2, 900),
    (2, 32, 32, 4, 5, 1, 2, 4, 4, 640),
    (4, 64, 96, 1, 1, 1, 1, 0, 0, 512),
    (4, 48, 48, 48, 4, 1, 1, 3, 0, 1000),
    (2, 16, 64, 16, 3, 2, 1, 1, 1, 800),
    (1, 24, 40, 1, 9, 1, 1, 4, 4, 6000),
]


def run_all(case, dtype):
    batch, c_in, c_out, groups, k, stride, dilation, pad_left, pad_right, length = case
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, length, generator=g).to(dtype)
    w = torch.randn(c_out, c_in // groups, k, generator=g).to(dtype)
    b = torch.randn(c_out, generator=g).to(dtype)
    y = ops.conv1d(x, w, b, stride, pad_left, pad_right, dilation, groups)
    gy = torch.randn(y.shape, generator=g).to(dtype)
    return {
        "output": y,
        "grad_input": ops.conv1d_backward_input(gy, w, length, stride, pad_left, pad_right, dilation, groups),
        "grad_weight": ops.conv1d_backward_weight(gy, x, k, stride, pad_left, pad_right, dilation, groups),
        "grad_bias": ops.conv1d_backward_bias(gy),
    }


def run_causal(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 64, 900, generator=g).to(dtype).requires_grad_()
    w = torch.randn(64, 4, generator=g).to(dtype).requires_grad_()
    b = torch.randn(64, generator=g).to(dtype).requires_grad_()
    init = torch.randn(3, 64, 3, generator=g).to(dtype).requires_grad_()
    y = conv1d_ext.causal_conv1d_fn(x, w, b, initial_states=init, activation="silu")
    grads = torch.autograd.grad(y, (x, w, b, init), torch.randn(y.shape, generator=g).to(dtype))
    return dict(zip(["output", "grad_x", "grad_weight", "grad_bias", "grad_initial_states"], (y, *grads), strict=True))


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def assert_same_bits_for_thread_counts(compute):
    results = {}
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        assert torch.get_num_threads() == threads
        results[threads] = compute()
    for threads in (2, 3):
        for name, reference in results[1].items():
            got = results[threads][name]
            # Bits, not values: NaN == NaN and -0.0 != 0.0 here.
            assert torch.equal(got.view(torch.uint8), reference.view(torch.uint8)), \
                f"{name} differs at {threads} threads"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_ops_bit_identical_across_thread_counts(case, dtype, restore_threads):
    assert_same_bits_for_thread_counts(lambda: run_all(case, dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_causal_bit_identical_across_thread_counts(dtype, restore_threads):
    assert_same_bits_for_thread_counts(lambda: run_causal(dtype))


def test_causal_run_to_run_identical():
    """causal_conv1d_fn's forward and gradients, twice on the same inputs: the same bits."""
    gen = torch.Generator().manual_seed(5)
    x = make_x((4, 33, 500), torch.float32, "channels_last", gen).requires_grad_()
    w = rand((33, 4), torch.float32, gen).requires_grad_()
    b = rand((33,), torch.float32, gen).requires_grad_()
    gy = rand((4, 33, 500), torch.float32, gen)
    runs = []
    for _ in range(2):
        out = conv1d_ext.causal_conv1d_fn(x, w, b, activation="silu")
        runs.append(torch.autograd.grad(out, [x, w, b], gy))
    for a, c in zip(*runs, strict=True):
        assert torch.equal(a, c)
