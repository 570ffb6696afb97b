"""Concurrent callers and torch.set_num_threads.

* Many Python threads calling the ops at once (different families, shapes and dtypes, forward and
  backward, the causal and transposed ops too) get bit-for-bit the results of the same calls made one
  after the other: no shared scratch, no state between calls.
* torch.set_num_threads(n) made between calls is honoured: the CPU kernels then run on exactly n OS
  threads (counted as the threads whose CPU time grows during a call, from /proc/self/task), in the thread
  that called it, as PyTorch's own parallel ops do (a thread's count is per thread in PyTorch's OpenMP
  build: a new thread starts with the process-wide setting). Results: every op is bit-identical for
  every thread count (the weight gradient's reduction slices are fixed by the problem and summed in
  order: docs/differences.md).
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F
from conv_ref import torch_threads

import conv1d_ext

THREADS = 8  # Python threads calling at once
REPEATS = 3  # calls per thread


def _job(kind, dtype, seed):
    """A function computing one call's forward and backward results (a tuple of tensors)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    if kind == "dense":
        x, w, b, kw = rand(3, 24, 700), rand(40, 24, 5), rand(40), dict(padding=2)
    elif kind == "grouped_strided":
        x, w, b, kw = rand(2, 12, 911), rand(18, 4, 7), rand(18), dict(stride=3, dilation=2, groups=3)
    elif kind == "depthwise":
        x, w, b, kw = rand(4, 32, 1500), rand(32, 1, 4), rand(32), dict(padding=3, groups=32)
    elif kind == "multiplier":
        x, w, b, kw = rand(2, 4, 1200), rand(64, 1, 9), None, dict(stride=2, padding=4, groups=4)
    elif kind == "transposed":
        x, w, b = rand(2, 16, 300), rand(16, 8, 7), rand(8)
    elif kind == "causal":
        x, w, b = rand(2, 48, 900), rand(48, 4), rand(48)
    else:
        raise ValueError(kind)
    gy_gen = torch.Generator().manual_seed(seed + 1)

    def run():
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        bs = None if b is None else b.clone().requires_grad_()
        if kind == "transposed":
            y = conv1d_ext.conv_transpose1d(xs, ws, bs, stride=3, padding=2, output_padding=1)
        elif kind == "causal":
            y = conv1d_ext.causal_conv1d_fn(xs, ws, bs, activation="silu")
        else:
            y = conv1d_ext.conv1d(xs, ws, bs, **kw)
        gy = torch.randn(y.shape, generator=gy_gen.manual_seed(seed + 1), dtype=torch.float64).to(dtype)
        grads = torch.autograd.grad(y, [t for t in (xs, ws, bs) if t is not None], gy)
        return (y.detach(),) + grads

    return run


JOBS = [(kind, dtype) for kind in ("dense", "grouped_strided", "depthwise", "multiplier", "transposed", "causal")
        for dtype in (torch.float32, torch.bfloat16, torch.float64)]


def test_concurrent_callers_match_serial_calls():
    with torch_threads(2):  # every thread (the new ones too) starts with this count
        jobs = [_job(kind, dtype, seed) for seed, (kind, dtype) in enumerate(JOBS)]
        serial = [job() for job in jobs]
        barrier = threading.Barrier(THREADS)

        def worker(i):
            barrier.wait()  # start together
            results = []
            for r in range(REPEATS):
                j = (i + r * THREADS) % len(jobs)  # each thread its own sequence of jobs
                results.append((j, jobs[j]()))
            return results

        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(worker, range(THREADS)))
    checked = 0
    for results in outcomes:
        for j, got in results:
            for name, a, b in zip(("output", "grad 0", "grad 1", "grad 2"), got, serial[j], strict=False):
                assert torch.equal(a, b), f"{JOBS[j]}: {name} differs from the serial call"
                checked += 1
    assert checked >= THREADS * REPEATS * 3


# ---------------------------------------------------------------------------------------------------
# torch.set_num_threads
# ---------------------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu_seconds():
    """{native thread id: user + system CPU seconds} for every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def _busy_threads(fn, cpu_seconds=0.4, max_seconds=60.0):
    """Calls fn() repeatedly until the busiest thread has used `cpu_seconds` of CPU (however loaded the
    machine is; at most `max_seconds`); returns how many OS threads did a real share of the work (CPU time
    at least a quarter of the busiest thread's), and the last result."""
    fn()  # warm up: OpenMP creates its threads
    before = _thread_cpu_seconds()
    start = time.perf_counter()
    while True:
        result = fn()
        after = _thread_cpu_seconds()
        used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
        top = max(used.values())
        if top >= cpu_seconds or time.perf_counter() - start > max_seconds:
            break
    assert top >= 0.1, "too little CPU time to count threads (the machine is too loaded?)"
    return sum(1 for v in used.values() if v >= top / 4), result


def _big_dense():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 4096, generator=gen)
    w = torch.randn(64, 64, 3, generator=gen)
    gy = torch.randn(4, 64, 4094, generator=gen)
    ops = torch.ops.conv1d_ext

    def run():
        return (ops.conv1d(x, w, None, 1, 0, 0, 1, 1), ops.conv1d_backward_input(gy, w, 4096, 1, 0, 0, 1, 1),
                ops.conv1d_backward_weight(gy, x, 3, 1, 0, 0, 1, 1))

    return run, (x, w, gy)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc to count threads")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_set_num_threads_is_honoured():
    run, (x, w, gy) = _big_dense()
    torch_mm = lambda: torch.mm(x[0], x[0].T)  # noqa: E731  (a PyTorch op that parallelises)
    saved = torch.get_num_threads()
    try:
        counts, results = {}, {}
        for n in (1, 2, 1):  # back to 1: a lowered count is honoured too
            torch.set_num_threads(n)
            counts[n], results[n] = _busy_threads(run)
            assert counts[n] == n, f"set_num_threads({n}): the kernels ran on {counts[n]} threads"
            assert _busy_threads(torch_mm)[0] == n, "PyTorch's own op disagrees (the measurement is wrong)"
    finally:
        torch.set_num_threads(saved)
    (y1, gi1, gw1), (y2, gi2, gw2) = results[1], results[2]
    # Every op is bit-identical across thread counts (robustness/test_determinism.py covers the families).
    assert torch.equal(y1, y2) and torch.equal(gi1, gi2) and torch.equal(gw1, gw2), "results depend on the thread count"
    ref = F.conv1d(x.double(), w.double())
    torch.testing.assert_close(y1.double(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc to count threads")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_set_num_threads_in_a_worker_thread():
    """A Python thread's own torch.set_num_threads applies to the calls it makes."""
    run, _ = _big_dense()
    saved = torch.get_num_threads()
    counts = {}

    def worker():
        for n in (1, 2):
            torch.set_num_threads(n)
            counts[n] = _busy_threads(run)[0]

    try:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    finally:
        torch.set_num_threads(saved)
    assert counts == {1: 1, 2: 2}, counts
