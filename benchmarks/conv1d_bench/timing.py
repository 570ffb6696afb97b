"""Timers for the two sides of a case. Both interleave the sides in rounds, so that a change in the
machine's load during a case hits both sides alike, and return every sample (the caller takes the median).

measure(runs, estimates): runs = {side: [callable]} (several callables = several input sets, CUDA only),
estimates = {side: seconds per call from the warm-up}; returns {side: [seconds]}. On the CPU, a side named in
SINGLE_THREADED_SIDES runs on one thread (the thread-scaling column), every other side on the run's threads.
"""

import contextlib
import time

import torch
from torch.utils import benchmark

SINGLE_THREADED_SIDES = ("ours_1t",)


@contextlib.contextmanager
def torch_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CpuTimer:
    """torch.utils.benchmark blocked_autorange per side and round. A side whose single call takes longer
    than the round budget gets one call per round (only one round if slower than slow_cap: F.conv1d in
    bfloat16 takes seconds per call on an AVX2 CPU); slower than very_slow, its first (checked) call is
    its only sample."""

    def __init__(self, threads, round_time, rounds, slow_cap, very_slow):
        self.threads, self.round_time, self.rounds = threads, round_time, rounds
        self.slow_cap, self.very_slow = slow_cap, very_slow

    def threads_of(self, side):
        return 1 if side in SINGLE_THREADED_SIDES else self.threads

    def once(self, fn, side=None):
        """(seconds, result) of one call."""
        with torch_threads(self.threads_of(side)):
            t0 = time.perf_counter()
            out = fn()
            return time.perf_counter() - t0, out

    def measure(self, runs, estimates):
        times = {side: [] for side in runs}
        sides = list(runs)
        for r in range(self.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                est = estimates[side]
                if est > self.very_slow:
                    times[side] = [est]
                elif est > self.round_time:
                    if est > self.slow_cap and times[side]:
                        continue
                    times[side].append(self.once(runs[side][0], side)[0])
                else:
                    t = benchmark.Timer("fn()", globals={"fn": runs[side][0]}, num_threads=self.threads_of(side))
                    times[side].extend(t.blocked_autorange(min_run_time=self.round_time).times)
        return times


class CudaTimer:
    """CUDA events around every call after 3 warm-up calls; up to `reps` calls per side, fewer when that
    would take longer than max_time; each call takes the next input set."""

    def __init__(self, reps, rounds, max_time):
        self.reps, self.rounds, self.max_time = reps, rounds, max_time

    def once(self, fn, side=None):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    def calls_per_round(self, estimate):
        by_time = int(self.max_time / self.rounds / max(estimate, 1e-6))
        return max(1, min(self.reps // self.rounds, by_time))

    def measure(self, runs, estimates):
        times = {side: [] for side in runs}
        sides = list(runs)
        for side in sides:  # cudnn.benchmark autotuning already happened in the checked first call
            for i in range(3):
                runs[side][i % len(runs[side])]()
        for r in range(self.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                n = self.calls_per_round(estimates[side])
                fns = runs[side]
                events = []
                for i in range(n):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fns[(r * n + i) % len(fns)]()
                    end.record()
                    events.append((start, end))
                torch.cuda.synchronize()
                times[side].extend(s.elapsed_time(e) / 1e3 for s, e in events)
        return times
