"""Distributed training on PyTorch's engines: a model with Conv1dExt, ConvTranspose1dExt and a causal
convolution (causal_conv1d_fn) trained for a few steps by 2 CPU processes (gloo) under
DistributedDataParallel, and under FSDP2 (torch.distributed.fsdp.fully_shard), ends with the parameters the
same run with nn.Conv1d, nn.ConvTranspose1d and F.conv1d on the left-padded input ends with.

Each test starts one torchrun (2 workers, this file's __main__) that trains both models, in a subprocess
with a timeout, so a hang fails the test instead of the suite."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv1d_ext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
STEPS = 4

pytestmark = pytest.mark.subprocess


class CausalDepthwise(nn.Module):
    """A causal depthwise convolution with SiLU (Mamba's short conv): causal_conv1d_fn, or the reference
    F.conv1d on the left-padded input."""

    def __init__(self, dim, width, ours):
        super().__init__()
        self.ours = ours
        self.weight = nn.Parameter(torch.randn(dim, width) / width**0.5)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        if self.ours:
            return conv1d_ext.causal_conv1d_fn(x, self.weight, self.bias, activation="silu")
        padded = F.pad(x, (self.weight.shape[1] - 1, 0))
        return F.silu(F.conv1d(padded, self.weight[:, None], self.bias, groups=self.weight.shape[0]))


def make_model(ours):
    """conv1d_ext's modules (ours) or PyTorch's: dense, grouped, causal depthwise, a transposed upsampler
    (length 64 -> 128), depthwise, strided (-> 64)."""
    if ours:
        conv, up = conv1d_ext.Conv1dExt, conv1d_ext.ConvTranspose1dExt
    else:
        conv, up = nn.Conv1d, nn.ConvTranspose1d
    torch.manual_seed(0)  # the same initial parameters on every rank and for both
    return nn.Sequential(conv(4, 16, 5, padding=2), nn.GELU(), conv(16, 16, 3, groups=4, padding="same"),
                         nn.GELU(), CausalDepthwise(16, 4, ours), up(16, 16, 4, stride=2, padding=1), nn.GELU(),
                         conv(16, 16, 4, groups=16, padding="same"), nn.GELU(), conv(16, 2, 3, stride=2, padding=1))


def train(ours, engine, rank):
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    model = make_model(ours)
    if engine == "ddp":
        model = DistributedDataParallel(model)
    else:
        for layer in model:
            if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d, CausalDepthwise)):
                fully_shard(layer)
        fully_shard(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    for _ in range(STEPS):
        x, target = torch.randn(4, 4, 64, generator=data), torch.randn(4, 2, 64, generator=data)
        loss = F.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = model.module.state_dict() if engine == "ddp" else model.state_dict()
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in state.items()}


def worker(engine, out_path):
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    try:
        results = {name: train(ours, engine, rank) for name, ours in [("ours", True), ("ref", False)]}
        if rank == 0:
            torch.save(results, out_path)
        # Both ranks leave together: a rank that tears gloo down while its peer still holds the connection
        # can abort in the peer ("terminate called without an active exception", seen once in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_engine(engine, tmp_path):
    out = tmp_path / f"{engine}.pt"
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           __file__, engine, str(out)], env=env, cwd=ROOT, timeout=240, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out)


def assert_same_training(results):
    ours, ref = results["ours"], results["ref"]
    assert ours.keys() == ref.keys()
    initial = make_model(False).state_dict()
    for key in ref:
        assert not torch.equal(ref[key], initial[key]), f"{key} did not train"
        # float32 sums in another order, through 4 steps of SGD with momentum
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)


def test_distributed_data_parallel(tmp_path):
    assert_same_training(run_engine("ddp", tmp_path))


def test_fsdp2_fully_shard(tmp_path):
    assert_same_training(run_engine("fsdp2", tmp_path))


if __name__ == "__main__":
    worker(*sys.argv[1:])
