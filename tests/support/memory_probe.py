"""Memory of the ops, measured from the operating system's side (the CPU kernels' scratch is std::vector,
invisible to PyTorch's allocator statistics): resident set size (/proc/self/statm) and its peak
(VmHWM in /proc/self/status, reset by writing 5 to /proc/self/clear_refs).

Run in a fresh process with glibc's malloc told to serve every block of 4 KiB or more by mmap
(MALLOC_MMAP_THRESHOLD_=4096, which also freezes its adaptive threshold), so a freed scratch row is
returned to the system at once and the next call's peak is its own, not hidden by reused heap pages
(smaller blocks still come from the heap: the resolution is a few KiB per thread). tests/robustness/test_memory.py
runs it; by hand:

    MALLOC_MMAP_THRESHOLD_=4096 python tests/support/memory_probe.py peak [threads]   # the measured table (batch 8)
    MALLOC_MMAP_THRESHOLD_=4096 python tests/support/memory_probe.py steady           # RSS over a training loop
"""

import gc
import json
import os
import sys

import torch
import torch.nn.functional as F

import conv1d_ext

PAGE = os.sysconf("SC_PAGE_SIZE")
ops = torch.ops.conv1d_ext


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def nbytes(result):
    tensors = result if isinstance(result, (tuple, list)) else (result,)
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_extra(fn, repeats=3):
    """Peak resident memory a call adds beyond what it returns (bytes), the least over a few calls (other
    threads of the process, e.g. the allocator's, can only add to a measurement)."""
    fn()  # warm up: OpenMP threads and their stacks, lazy initialisation
    best = None
    for _ in range(repeats):
        gc.collect()
        base = rss_bytes()
        reset_peak()
        result = fn()
        extra = peak_bytes() - base - nbytes(result)
        del result
        best = extra if best is None else min(best, extra)
    return max(best, 0)


def problems(batch=8):
    """(name, shape text, {op name: fn}, input bytes, output bytes) for the benchmark-like shapes, float32."""
    gen = torch.Generator().manual_seed(0)

    def rand(*s):
        return torch.randn(*s, generator=gen)

    out = []

    def conv(name, text, x, w, stride=1, pad=0, dilation=1, groups=1):
        args = (stride, pad, pad, dilation, groups)
        y = ops.conv1d(x, w, None, *args)
        gy = torch.randn_like(y)
        out.append((name, text, {
            "forward": lambda: ops.conv1d(x, w, None, *args),
            "backward_input": lambda: ops.conv1d_backward_input(gy, w, x.shape[2], *args),
            "backward_weight": lambda: ops.conv1d_backward_weight(gy, x, w.shape[2], *args),
            "backward_bias": lambda: ops.conv1d_backward_bias(gy),
            "F.conv1d forward (PyTorch)": lambda: F.conv1d(F.pad(x, (pad, pad)) if pad else x, w, None, stride, 0,
                                                           dilation, groups),
        }, nbytes(x), nbytes(y)))

    B = batch
    conv("dense", f"B{B} C64->64 L4096 k3 p1", rand(B, 64, 4096), rand(64, 64, 3), pad=1)
    conv("depthwise", f"B{B} C256 L4096 k4 p3 (Mamba)", rand(B, 256, 4096), rand(256, 1, 4), pad=3, groups=256)
    conv("front end", f"B{B} C1->64 L16000 k80 s4", rand(B, 1, 16000), rand(64, 1, 80), stride=4, pad=38)
    conv("grouped", f"B{B} C64->64 g4 L4096 k31 p15", rand(B, 64, 4096), rand(64, 16, 31), pad=15, groups=4)
    x, w = rand(B, 64, 1024), rand(64, 32, 8)
    y = conv1d_ext.conv_transpose1d(x, w, stride=4, padding=2)
    out.append(("transposed", f"B{B} C64->32 L1024 k8 s4", {
        "forward": lambda: conv1d_ext.conv_transpose1d(x, w, stride=4, padding=2),
        "F.conv_transpose1d (PyTorch)": lambda: F.conv_transpose1d(x, w, stride=4, padding=2)}, nbytes(x), nbytes(y)))
    xc, wc, bc = rand(B, 256, 4096), rand(256, 4), rand(256)
    yc, fc = ops.causal_conv1d_fwd(xc, wc, bc, None, None, 1, True)
    gyc = torch.randn_like(yc)
    out.append(("causal", f"B{B} C256 L4096 w4 silu", {
        "forward": lambda: ops.causal_conv1d_fwd(xc, wc, bc, None, None, 1, True),
        "backward": lambda: ops.causal_conv1d_bwd(xc, wc, bc, None, None, gyc, None, 1, True)},
        nbytes(xc), nbytes(yc)))
    return out


def peak_table(batch=8):
    rows = []
    for name, text, fns, in_bytes, out_bytes in problems(batch):
        for op, fn in fns.items():
            rows.append(dict(problem=name, shape=text, op=op, input_bytes=in_bytes, output_bytes=out_bytes,
                             extra_bytes=peak_extra(fn)))
    return rows


def steady(iterations=100, warmup=20):
    """RSS (bytes) every 10 iterations of a small model's training loop, after `warmup` iterations."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        conv1d_ext.Conv1dExt(16, 32, 5, padding=2), torch.nn.GELU(),
        conv1d_ext.Conv1dExt(32, 32, 4, padding=3, groups=32), torch.nn.GELU(),
        conv1d_ext.Conv1dExt(32, 16, 3, stride=2, padding=1, dilation=2),
    )
    weight = torch.randn(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(2, 16, 256)
    samples = []
    for i in range(warmup + iterations):
        y = model(x)
        y = conv1d_ext.causal_conv1d_fn(y, weight, activation="silu")
        y = conv1d_ext.conv_transpose1d(y, torch.randn(16, 8, 4), stride=2)
        loss = y.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup and (i - warmup) % 10 == 0:
            gc.collect()
            samples.append(rss_bytes())
    return samples


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "peak"
    if len(sys.argv) > 2:
        torch.set_num_threads(int(sys.argv[2]))
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    print(json.dumps(peak_table(batch) if what == "peak" else steady()))
