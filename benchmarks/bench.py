#!/usr/bin/env python3
"""conv1d_ext against F.conv1d, same process, same inputs, over conv1d shapes taken from real models.

For every (dtype, shape, mode) it checks our results (output; with --modes fwdbwd also grad_input,
grad_weight, grad_bias) against F.conv1d, then times both sides interleaved, and reports time, speedup,
GFLOP/s and GB/s beside this machine's measured ceilings. Writes a CSV, a PNG plot and a markdown table.

  python benchmarks/bench.py                      # full sweep on the present device (cuda if available)
  python benchmarks/bench.py --quick              # tiny shapes, smoke test of the whole pipeline
  python benchmarks/bench.py --device cpu --dtypes float32 --shapes dw_,dense
  python benchmarks/bench.py --self-test-against-torch   # "ours" = F.conv1d (harness check: ~1.0x)

Timing. CPU: torch.utils.benchmark (blocked_autorange, all cores); each side is measured in several
rounds that alternate with the other side's, and the median of all blocks is reported. A side whose single
call takes longer than the round budget gets one call per round (and only one round if it is very slow:
F.conv1d in bfloat16 takes seconds per call on an AVX2 CPU). CUDA: cudnn.benchmark=True, CUDA events
around each call after warm-up, median of many calls; each call uses the next of several input sets whose
total size is ≥ 3× the L2 cache, so no call finds its inputs in L2.

Counting. FLOPs = 2·N·C_out·L_out·(C_in/groups)·k per forward; forward+backward = 3× that. Bytes are the
minimum traffic: every input read once, every output written once (fwd: x, w, b → y; fwd+bwd: x, w, b,
grad_y → y, grad_x, grad_w, grad_b).

Large fresh allocations page-fault badly on these machines (~0.8 ms/MB), which would time the kernel's
first touch of its output instead of the convolution; MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_
are set high for the whole process (both sides), re-executing this script if they are not yet set.
"""

import os
import sys

_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 32), "MALLOC_TRIM_THRESHOLD_": str(1 << 32)}


def _reexec_with_malloc_env():
    """glibc reads these only at start-up: set them and re-execute ourselves if they are missing."""
    missing = {k: v for k, v in _MALLOC_ENV.items() if k not in os.environ}
    if missing and os.environ.get("_CONV1D_BENCH_REEXEC") != "1":
        env = dict(os.environ, **missing, _CONV1D_BENCH_REEXEC="1")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


if __name__ == "__main__":
    _reexec_with_malloc_env()

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ceilings  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shape:
    name: str
    family: str  # dense | dilated | grouped | depthwise | frontend | pointwise
    N: int
    C_in: int
    C_out: int
    L: int
    k: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    source: str = ""

    @property
    def out_len(self):
        return (self.L + 2 * self.padding - self.dilation * (self.k - 1) - 1) // self.stride + 1

    def flops_fwd(self):
        return 2 * self.N * self.C_out * self.out_len * (self.C_in // self.groups) * self.k

    def numels(self):
        """(x, w, b, y) element counts."""
        return (
            self.N * self.C_in * self.L,
            self.C_out * (self.C_in // self.groups) * self.k,
            self.C_out,
            self.N * self.C_out * self.out_len,
        )

    def describe(self):
        s = f"B{self.N} C{self.C_in}→{self.C_out} L{self.L} k{self.k}"
        for key, val, default in (
            ("s", self.stride, 1),
            ("d", self.dilation, 1),
            ("p", self.padding, 0),
            ("g", self.groups, 1),
        ):
            if val != default:
                s += f" {key}{val}"
        return s


# Padding is what the models these shapes come from use.
# fmt: off
SWEEP = [
    Shape("dense_c64_k3", "dense", 8, 64, 64, 4096, 3, padding=1,
          source="1D ResNet / U-Net block, 'same'"),
    Shape("dense_c256_k3", "dense", 8, 256, 256, 2048, 3, padding=1,
          source="1D ResNet / U-Net block, 'same'"),
    Shape("strided_c128_k7s2", "dense", 8, 128, 128, 4096, 7, stride=2, padding=3,
          source="downsampling stem (ResNet-style k7 s2 p3)"),
    Shape("tcn_c64_k3d8", "dilated", 8, 64, 64, 8192, 3, dilation=8, padding=16,
          source="TCN (Bai et al.): pad (k-1)·d both sides, chomp the right (k-1)·d after"),
    Shape("tcn_c128_k2d64", "dilated", 4, 128, 128, 8192, 2, dilation=64, padding=64,
          source="WaveNet/TCN k2 dilation 64, causal via pad (k-1)·d + chomp"),
    Shape("grouped_c256_k5d2g8", "grouped", 8, 256, 256, 2048, 5, dilation=2, groups=8, padding=4,
          source="grouped conv (ResNeXt-style), 'same'"),
    Shape("dw_mamba_c512_k4", "depthwise", 8, 512, 512, 4096, 4, groups=512, padding=3,
          source="Mamba short conv: nn.Conv1d(k=4, groups=C, padding=3), output[..., :L]"),
    Shape("dw_conformer_c256_k31", "depthwise", 8, 256, 256, 4096, 31, groups=256, padding=15,
          source="Conformer conv module: depthwise k31, padding 15"),
    Shape("wave_c1to64_k80s4", "frontend", 16, 1, 64, 16000, 80, stride=4,
          source="raw-waveform front end (M5-style k80 s4), 1 s at 16 kHz, no padding"),
    Shape("pointwise_c256to512", "pointwise", 8, 256, 512, 2048, 1,
          source="pointwise 1x1 (channel mixing)"),
]
# fmt: on


def quick_shape(s):
    """The same configuration, tiny: batch ≤ 2, length / 16 (long enough for the kernel span)."""
    span = s.dilation * (s.k - 1) + 1
    return replace(s, N=min(s.N, 2), L=max(s.L // 16, span + 2 * s.stride))


DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "float16": torch.float16,
}
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float64: "fp64", torch.float16: "fp16"}
DTYPES_BY_SHORT = {v: k for k, v in SHORT.items()}


# ------------------------------------------------------------------------------------------- the sides
def load_ours(args):
    """(callable with F.conv1d's signature, description, cpu ISA string or None)."""
    if args.self_test_against_torch:
        return F.conv1d, "F.conv1d (--self-test-against-torch: harness check, expect ~1.0x)", None
    try:
        import conv1d_ext
    except ImportError as e:
        sys.exit(
            f"cannot import conv1d_ext ({e}).\nBuild in place first: CONV1D_EXT_CUDA=0 python setup.py "
            f"build_ext --inplace, run with PYTHONPATH=<repo root>; or pass --self-test-against-torch."
        )
    if not hasattr(conv1d_ext, "conv1d"):
        sys.exit("conv1d_ext has no conv1d() yet (Python API missing); use --self-test-against-torch")
    isa = None
    candidates = [getattr(conv1d_ext, "cpu_isa", None), getattr(conv1d_ext, "cpu_capability", None)]
    if hasattr(torch.ops.conv1d_ext, "cpu_isa"):  # an op in the library: conv1d_ext::cpu_isa() -> str
        candidates.append(torch.ops.conv1d_ext.cpu_isa)
    for fn in candidates:
        if callable(fn):
            try:
                isa = str(fn())
            except Exception as e:  # report, don't die
                isa = f"cpu_isa() failed: {e}"
            break
    desc = f"conv1d_ext.conv1d from {os.path.dirname(os.path.abspath(conv1d_ext.__file__))}"
    return conv1d_ext.conv1d, desc, isa


# -------------------------------------------------------------------------------------------- checking
def tolerance(dtype, device, tf32):
    """Largest accepted max|ours - reference| / max|reference| per result tensor."""
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        return 5e-3 if tf32 else 2e-4
    return 1e-2  # 16-bit: compared with float32 math on the same (rounded) inputs


def normalized_error(a, b):
    a, b = a.double(), b.double()
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    if not torch.isfinite(a).all():
        return float("inf")
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / max(scale, 1e-30)


# -------------------------------------------------------------------------------------------- workload
class Case:
    """Inputs of one (shape, dtype, mode) and the closures that run each side on them."""

    def __init__(self, shape, dtype, device, mode, n_sets, seed=0):
        self.shape, self.dtype, self.device, self.mode = shape, dtype, device, mode
        g = torch.Generator().manual_seed(seed)
        s = shape
        fan_in = (s.C_in // s.groups) * s.k
        self.sets = []
        for _ in range(n_sets):
            x = torch.randn(s.N, s.C_in, s.L, generator=g)
            w = torch.randn(s.C_out, s.C_in // s.groups, s.k, generator=g) / math.sqrt(fan_in)
            b = torch.randn(s.C_out, generator=g) * 0.1
            gy = torch.randn(s.N, s.C_out, s.out_len, generator=g) if mode == "fwdbwd" else None
            t = [v.to(device=device, dtype=dtype) if v is not None else None for v in (x, w, b, gy)]
            if mode == "fwdbwd":
                for v in t[:3]:
                    v.requires_grad_(True)
            self.sets.append(tuple(t))

    def runner(self, conv, index=0):
        s = self.shape
        x, w, b, gy = self.sets[index]
        if self.mode == "fwd":

            def run():
                with torch.no_grad():
                    return (conv(x, w, b, s.stride, s.padding, s.dilation, s.groups),)
        else:

            def run():
                y = conv(x, w, b, s.stride, s.padding, s.dilation, s.groups)
                # The gradients a .backward(grad_y) would produce, without accumulating into .grad.
                return (y,) + torch.autograd.grad(y, (x, w, b), gy)

        return run

    def reference_fp32(self):
        """F.conv1d in float32 on the same (already rounded) inputs: the check for 16-bit dtypes."""
        s = self.shape
        x, w, b, gy = (v.detach().float() if v is not None else None for v in self.sets[0])
        if self.mode == "fwd":
            return (F.conv1d(x, w, b, s.stride, s.padding, s.dilation, s.groups),)
        x, w, b = (v.requires_grad_(True) for v in (x, w, b))
        y = F.conv1d(x, w, b, s.stride, s.padding, s.dilation, s.groups)
        return (y,) + torch.autograd.grad(y, (x, w, b), gy)


RESULT_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")


# ---------------------------------------------------------------------------------------------- timing
class CpuTimer:
    def __init__(self, threads, round_time, rounds, slow_cap, very_slow):
        from torch.utils import benchmark

        self.very_slow = very_slow

        self.benchmark, self.threads = benchmark, threads
        self.round_time, self.rounds, self.slow_cap = round_time, rounds, slow_cap

    def sync(self):
        pass

    def once(self, fn):
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    def measure(self, runs, estimates):
        """runs: {side: [callable]}; estimates: {side: seconds per call}. Returns {side: [seconds]}."""
        times = {side: [] for side in runs}
        sides = list(runs)
        for r in range(self.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                est = estimates[side]
                if est > self.very_slow:
                    # seconds per call (F.conv1d bf16 here): its first, checked call is the only sample
                    times[side] = [est]
                    continue
                if est > self.round_time:
                    # slow: single calls; one round only when very slow (reference bf16 on AVX2)
                    if est > self.slow_cap and times[side]:
                        continue
                    times[side].append(self.once(runs[side][0])[0])
                else:
                    t = self.benchmark.Timer("fn()", globals={"fn": runs[side][0]}, num_threads=self.threads)
                    times[side].extend(t.blocked_autorange(min_run_time=self.round_time).times)
        return times


class CudaTimer:
    def __init__(self, reps, rounds, max_time):
        self.reps, self.rounds, self.max_time = reps, rounds, max_time

    def sync(self):
        torch.cuda.synchronize()

    def once(self, fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    def measure(self, runs, estimates):
        times = {side: [] for side in runs}
        sides = list(runs)
        for side in sides:  # warm-up (cudnn.benchmark autotuning happened in the check call)
            for i in range(3):
                runs[side][i % len(runs[side])]()
        for r in range(self.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                per_round = max(
                    1,
                    min(
                        self.reps // self.rounds,
                        int(self.max_time / self.rounds / max(estimates[side], 1e-6)),
                    ),
                )
                fns = runs[side]
                events = []
                for i in range(per_round):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fns[(r * per_round + i) % len(fns)]()
                    end.record()
                    events.append((start, end))
                torch.cuda.synchronize()
                times[side].extend(s.elapsed_time(e) / 1e3 for s, e in events)
        return times


# ------------------------------------------------------------------------------------------ reporting
class Progress:
    """tqdm if installed, else a one-line bar on stderr; write() prints a line above the bar."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.t0, self.label = total, 0, time.time(), ""
        self.enabled = enabled and sys.stderr.isatty()
        self.tqdm = None
        try:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        except ImportError:
            pass

    def write(self, line):
        if self.tqdm is not None:
            self.tqdm.write(line)
            return
        if self.enabled:
            sys.stderr.write("\r\033[K")
        print(line, flush=True)
        self._draw()

    def step(self, label=""):
        self.done += 1
        self.label = label
        if self.tqdm is not None:
            self.tqdm.set_postfix_str(label)
            self.tqdm.update(1)
        else:
            self._draw()

    def set_label(self, label):
        self.label = label
        if self.tqdm is not None:
            self.tqdm.set_postfix_str(label)
        else:
            self._draw()

    def _draw(self):
        if not self.enabled or self.tqdm is not None:
            return
        frac = self.done / max(self.total, 1)
        el = time.time() - self.t0
        eta = el / frac - el if frac > 0 else float("nan")
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        sys.stderr.write(f"\r\033[K[{bar}] {self.done}/{self.total} {el:5.0f}s eta {eta:5.0f}s {self.label}")
        sys.stderr.flush()

    def close(self):
        if self.tqdm is not None:
            self.tqdm.close()
        elif self.enabled:
            sys.stderr.write("\n")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def fmt_ms(sec):
    if sec is None or not math.isfinite(sec):
        return "—"
    ms = sec * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_num(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if v < 10**digits else f"{v:.0f}"


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto = cuda when available, else cpu",
    )
    p.add_argument(
        "--dtypes",
        default=None,
        help="comma list of float32,bfloat16,float64,float16, or 'all' "
        "(default float32,bfloat16,float64; --quick: float32,bfloat16)",
    )
    p.add_argument("--modes", default="fwd,fwdbwd", help="comma list of fwd,fwdbwd")
    p.add_argument("--shapes", default=None, help="comma list of substrings of shape names or families")
    p.add_argument("--quick", action="store_true", help="tiny shapes and short timing: a smoke test")
    p.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "out"), help="output directory")
    p.add_argument(
        "--results-dir",
        default=os.path.join(REPO_ROOT, "benchmarks", "results"),
        help="where --update-results copies <machine-tag>.md/.csv/.png (committed results)",
    )
    results = p.add_mutually_exclusive_group()
    results.add_argument(
        "--update-results",
        action="store_true",
        help="after a full sweep (no --quick/--shapes/--dtypes/--modes/--self-test-against-torch), also copy "
        "its outputs to --results-dir; without it only --out is written",
    )
    results.add_argument("--no-results", action="store_true", help="the default now: never write to --results-dir")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument(
        "--round-time",
        type=float,
        default=None,
        help="CPU: seconds of timing per side per round (default 0.25; quick 0.02)",
    )
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per side (default 3)")
    p.add_argument(
        "--slow-cap",
        type=float,
        default=1.5,
        help="CPU: a side slower than this many seconds per call is timed in one call only",
    )
    p.add_argument(
        "--very-slow",
        type=float,
        default=6.0,
        help="CPU: a side slower than this many seconds per call is timed by its first (checked) call only",
    )
    p.add_argument("--reps", type=int, default=60, help="CUDA: timed calls per side")
    p.add_argument(
        "--allow-tf32",
        action="store_true",
        help="CUDA: set torch.backends.cudnn.allow_tf32=True for both sides (default False: "
        "plain fp32 both sides, which is what our kernels compute)",
    )
    p.add_argument(
        "--self-test-against-torch",
        action="store_true",
        help="benchmark F.conv1d against itself (harness check without the extension)",
    )
    p.add_argument("--note", default=None, help="a line of context for the markdown (e.g. machine load)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    dtype_names = args.dtypes or ("float32,bfloat16" if args.quick else "float32,bfloat16,float64")
    if dtype_names == "all":
        dtype_names = "float32,bfloat16,float64,float16"
    dtypes = [DTYPES[d.strip()] for d in dtype_names.split(",") if d.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    assert all(m in ("fwd", "fwdbwd") for m in modes), modes
    shapes = SWEEP
    if args.shapes:
        keys = [k.strip() for k in args.shapes.split(",") if k.strip()]
        shapes = [s for s in shapes if any(k in s.name or k == s.family for k in keys)]
        if not shapes:
            sys.exit(f"--shapes {args.shapes!r} matches none of: {', '.join(s.name for s in SWEEP)}")
    if args.quick:
        shapes = [quick_shape(s) for s in shapes]
    round_time = args.round_time if args.round_time is not None else (0.02 if args.quick else 0.25)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 3)
    full_sweep = not (
        args.quick or args.shapes or args.dtypes or args.self_test_against_torch or args.modes != "fwd,fwdbwd"
    )
    if args.update_results and not full_sweep:
        sys.exit("--update-results takes a full sweep: no --quick/--shapes/--dtypes/--modes/--self-test-against-torch")

    ours, ours_desc, isa = load_ours(args)
    torch.manual_seed(args.seed)

    # --------------------------------------------------------------------------- environment + ceilings
    info = {}
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["torch"] = torch.__version__
    info["python"] = platform.python_version()
    info["ours"] = ours_desc
    info["note"] = args.note
    info["malloc"] = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in _MALLOC_ENV)
    print(f"== conv1d_ext benchmark ({'quick' if args.quick else 'sweep'}) on {device}")
    print(
        f"   env: {info['malloc']} (set for the whole process, both sides"
        f"{'; re-executed to apply' if os.environ.get('_CONV1D_BENCH_REEXEC') else ''})"
    )
    print(f"   torch {torch.__version__}, python {info['python']}; ours: {ours_desc}")

    ceil = {}
    if device == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = args.threads or cores
        torch.set_num_threads(threads)
        model = cpu_model()
        info["machine"] = f"{model}, {cores} cores visible; torch threads = {threads}"
        info["isa_ours"] = isa if isa is not None else "not exposed by the package"
        if os.environ.get("CONV1D_EXT_CPU_ISA"):
            info["isa_ours"] += f" (CONV1D_EXT_CPU_ISA={os.environ['CONV1D_EXT_CPU_ISA']})"
        info["isa_torch"] = torch.backends.cpu.get_cpu_capability()
        tag = f"cpu-{slug(model)}-{cores}c"
        print(
            f"   CPU: {model}; {cores} cores; torch threads = {threads} (all cores)"
            f"{'' if threads == cores else ' -- NOT all cores (--threads)'}"
        )
        print(f"   ISA path of our extension: {info['isa_ours']}; torch CPU capability: {info['isa_torch']}")
        measure_cpu_ceilings(ceil, threads)
        info["ceilings"] = cpu_ceilings_text(ceil, threads)
        print(f"   measured ceilings: {info['ceilings']}")
        timer = CpuTimer(threads, round_time, rounds, args.slow_cap, args.very_slow)
        tf32 = False
        info["timing"] = (
            f"torch.utils.benchmark blocked_autorange, {threads} threads, {rounds} interleaved "
            f"rounds x {round_time}s per side, median; a side slower than {args.slow_cap}s/call: "
            f"single calls, one round; slower than {args.very_slow}s/call: its first (checked) call only"
        )
        n_sets = 1
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = bool(args.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = bool(args.allow_tf32)
        tf32 = bool(args.allow_tf32)
        props = torch.cuda.get_device_properties(0)
        name = props.name
        l2 = getattr(props, "L2_cache_size", 50 * 1024 * 1024) or 50 * 1024 * 1024
        label, spec = ceilings.gpu_spec(name)
        info["machine"] = (
            f"{name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, "
            f"L2 {l2 / 2**20:.0f} MB), CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}"
        )
        info["isa_ours"] = isa if isa is not None else "n/a"
        tag = f"cuda-{slug(name)}"
        print(f"   GPU: {info['machine']}")
        print(
            f"   torch.backends.cudnn.benchmark = True; torch.backends.cudnn.allow_tf32 = {tf32} "
            f"(both sides: cuDNN obeys it; our fp32 kernels compute plain fp32 unless they read it too)"
        )
        ceil["gbps"] = ceilings.cuda_copy_gbps(torch)
        ceil["spec"] = spec
        ceil["spec_label"] = label
        spec_txt = (
            f"{label} datasheet: {spec['gbps']} GB/s, {spec['fp32']} TFLOP/s fp32, {spec['tf32_tc']} tf32 "
            f"TC, {spec['bf16_tc']} bf16 TC, {spec['fp64']} fp64"
            if spec
            else "datasheet: unknown card"
        )
        info["ceilings"] = f"device copy 1 GB: {ceil['gbps']:.0f} GB/s read+write; {spec_txt}"
        print(f"   ceilings: {info['ceilings']}")
        timer = CudaTimer(args.reps, rounds, max_time=3.0 if not args.quick else 0.3)
        info["timing"] = (
            f"CUDA events per call, cudnn.benchmark=True, allow_tf32={tf32}, 3 warm-up calls, "
            f"up to {args.reps} calls per side in {rounds} interleaved rounds, median; inputs "
            f"rotated over sets totalling ≥ 3x L2 ({l2 / 2**20:.0f} MB)"
        )
        n_sets = None  # per case
    info["tag"] = tag + ("-selftest" if args.self_test_against_torch else "")
    print(f"   timing: {info['timing']}")

    def peak_flops(dtype):
        """(GFLOP/s ceiling, its name) for a dtype on this device."""
        if device == "cpu":
            f = ceil.get("gflops_fp32")
            if not f:
                return None, "n/a"
            return (f / 2, "FMA loop / 2") if dtype == torch.float64 else (f, "FMA loop")
        spec = ceil.get("spec") or {}
        if not spec:
            return None, "n/a"
        if dtype == torch.float32:
            return (spec["tf32_tc"] if tf32 else spec["fp32"]) * 1e3, ("tf32 TC" if tf32 else "fp32")
        if dtype == torch.float64:
            return spec["fp64"] * 1e3, "fp64"
        return spec["bf16_tc"] * 1e3, "bf16/fp16 TC"

    # ------------------------------------------------------------------------------------------ sweep
    cases = [(dt, s, m) for dt in dtypes for s in shapes for m in modes]
    rows = []
    progress = Progress(len(cases), enabled=not args.no_progress)
    n_fail = 0
    interrupted = False
    for dtype, shape, mode in cases:
        if interrupted:
            break
        label = f"{SHORT[dtype]} {shape.name} {mode}"
        progress.set_label(label)
        row = dict(
            device=device,
            dtype=SHORT[dtype],
            shape=shape.name,
            family=shape.family,
            config=shape.describe(),
            mode=mode,
            N=shape.N,
            C_in=shape.C_in,
            C_out=shape.C_out,
            L=shape.L,
            k=shape.k,
            stride=shape.stride,
            padding=shape.padding,
            dilation=shape.dilation,
            groups=shape.groups,
            L_out=shape.out_len,
        )
        x_n, w_n, b_n, y_n = shape.numels()
        item = torch.empty((), dtype=dtype).element_size()
        flops = shape.flops_fwd() * (3 if mode == "fwdbwd" else 1)
        nbytes = item * ((x_n + w_n + b_n + y_n) * (2 if mode == "fwdbwd" else 1))
        row.update(gflop=flops / 1e9, mbytes=nbytes / 1e6)
        try:
            sets = n_sets if n_sets is not None else max(1, min(32, math.ceil(3 * l2 / max(nbytes, 1))))
            case = Case(shape, dtype, device, mode, sets, seed=args.seed)
            runs = {
                "ref": [case.runner(F.conv1d, i) for i in range(sets)],
                "ours": [case.runner(ours, i) for i in range(sets)],
            }
            # first calls: check (and warm up); the reference first, so its one-time setup is not ours
            est = {}
            est["ref"], ref_out = timer.once(runs["ref"][0])
            try:
                est["ours"], our_out = timer.once(runs["ours"][0])
            except Exception as e:  # our op failed: record, go on with the sweep
                raise RuntimeError(f"ours raised {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
            tol = tolerance(dtype, device, tf32)
            if dtype in (torch.float16, torch.bfloat16):
                # 16-bit: both sides against float32 math on the same inputs; ours may be as far off as
                # F.conv1d's own 16-bit result is (x1.25), or within the fixed tolerance
                truth = case.reference_fp32()
                errs = [normalized_error(o, t) for o, t in zip(our_out, truth, strict=False)]
                ref_errs = [normalized_error(o, t) for o, t in zip(ref_out, truth, strict=False)]
                tols = [max(tol, 1.25 * e) if math.isfinite(e) else tol for e in ref_errs]
                row["ref_err"] = max(ref_errs)
                del truth
            else:
                errs = [normalized_error(o, t) for o, t in zip(our_out, ref_out, strict=False)]
                tols = [tol] * len(errs)
            row["max_err"] = max(errs)
            row["tol"] = max(tols)
            bad = [
                f"{n} {e:.2e} > {t:.1e}"
                for n, e, t in zip(RESULT_NAMES, errs, tols, strict=False)
                if not e <= t
            ]
            row["check"] = "ok" if not bad else "FAIL: " + ", ".join(bad)
            del ref_out, our_out
            # warm second calls for quick ones (caches, allocator, lazy init), then time interleaved
            for side in ("ref", "ours"):
                if est[side] < 0.2 or device == "cuda":  # CUDA: the first call ran cuDNN's autotuning
                    est[side] = timer.once(runs[side][0])[0]
            times = timer.measure(runs, est)
            for side in ("ref", "ours"):
                t = statistics.median(times[side])
                row[f"{side}_min_ms"] = min(times[side]) * 1e3
                row[f"{side}_ms"] = t * 1e3
                row[f"{side}_reps"] = len(times[side])
                row[f"{side}_gflops"] = flops / t / 1e9
                row[f"{side}_gbps"] = nbytes / t / 1e9
            row["speedup"] = row["ref_ms"] / row["ours_ms"]
            peak, _ = peak_flops(dtype)
            row["ours_pct_peak"] = 100 * row["ours_gflops"] / peak if peak else None
            bw = ceil.get("gbps")
            row["ours_pct_bw"] = 100 * row["ours_gbps"] / bw if bw else None
            del case, runs
        except KeyboardInterrupt:  # Ctrl-C: stop the sweep, still write what was measured
            interrupted = True
            row["check"] = "FAIL: interrupted"
        except Exception as e:
            row["check"] = f"FAIL: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        if row["check"] != "ok":
            n_fail += 1
        rows.append(row)
        progress.write(case_line(row))
        progress.step(label)
        if device == "cuda":
            torch.cuda.empty_cache()
    progress.close()
    if device == "cpu":  # measure the ceilings again, keep the best of both (the machine is shared)
        measure_cpu_ceilings(ceil, threads)
        info["ceilings"] = cpu_ceilings_text(ceil, threads) + " (best of start and end of the sweep)"
        print(f"   measured ceilings: {info['ceilings']}")
        for row in rows:
            if "ours_gflops" in row:
                peak, _ = peak_flops(DTYPES_BY_SHORT[row["dtype"]])
                row["ours_pct_peak"] = 100 * row["ours_gflops"] / peak if peak else None
                row["ours_pct_bw"] = 100 * row["ours_gbps"] / ceil["gbps"]
    info["elapsed"] = time.time() - t_start
    info["n_fail"] = n_fail
    if interrupted:
        print(f"== INTERRUPTED after {len(rows)} of {len(cases)} cases: partial results")
        full_sweep = False
    print(
        f"== sweep finished in {info['elapsed']:.0f} s ({info['elapsed'] / 60:.1f} min), "
        f"{len(rows)} cases, {n_fail} failed"
    )

    # ---------------------------------------------------------------------------------------- outputs
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, info["tag"] + ("-quick" if args.quick else ""))
    write_csv(rows, base + ".csv")
    md = markdown(rows, info, ceil, device, dtypes, modes, peak_flops)
    with open(base + ".md", "w") as f:
        f.write(md)
    made_png = plot(rows, info, dtypes, base + ".png")
    print(
        f"== wrote {base}.csv, {base}.md" + (f", {base}.png" if made_png else " (no PNG: matplotlib missing)")
    )
    if args.update_results and not full_sweep:  # interrupted
        print(f"== not copied to {args.results_dir}: the sweep is incomplete")
    elif args.update_results:
        os.makedirs(args.results_dir, exist_ok=True)
        for ext in (".csv", ".md", ".png"):
            if os.path.exists(base + ext):
                shutil.copyfile(base + ext, os.path.join(args.results_dir, info["tag"] + ext))
        print(f"== full sweep: copied to {os.path.join(args.results_dir, info['tag'])}.{{csv,md,png}}")
    print()
    print(md)
    if n_fail:
        print(f"!!!!!!!! {n_fail} CASE(S) FAILED THE CHECK AGAINST F.conv1d (see 'check' column) !!!!!!!!")
    return 1 if n_fail else 0


def measure_cpu_ceilings(ceil, threads):
    """FMA loop on one and on all threads, scale over 256 MB; keeps the best of this and earlier calls."""
    fma, note = ceilings.cpu_fma_gflops(threads)
    fma1, _ = ceilings.cpu_fma_gflops(1) if threads > 1 else (fma, note)
    gbps = ceilings.cpu_scale_gbps(torch)
    ceil["fma_note"] = note
    for key, val in (("gflops_fp32", fma), ("gflops_fp32_1thread", fma1), ("gbps", gbps)):
        if val is not None:
            ceil[key] = max(val, ceil.get(key) or 0.0)


def cpu_ceilings_text(ceil, threads):
    fma = ceil.get("gflops_fp32")
    if not fma:
        return f"FMA loop n/a ({ceil.get('fma_note')}); scale over 256 MB: {ceil['gbps']:.1f} GB/s read+write"
    return (
        f"FMA loop ({ceil['fma_note']}): {fmt_num(fma)} GFLOP/s fp32 on {threads} threads, "
        f"{fmt_num(ceil['gflops_fp32_1thread'])} on one (fp64: half; bf16/fp16 convert in registers and "
        f"use the fp32 number); scale over 256 MB: {ceil['gbps']:.1f} GB/s read+write"
    )


def case_line(r):
    head = f"{r['dtype']:4} {r['shape']:22} {r['mode']:6}"
    if "speedup" not in r:
        return f"{head} !!! {r['check']}"
    check = "ok" if r["check"] == "ok" else f"!!! {r['check']} !!!"
    pct = f" ({r['ours_pct_peak']:.0f}% peak)" if r.get("ours_pct_peak") is not None else ""
    return (
        f"{head} F.conv1d {fmt_ms(r['ref_ms'] / 1e3):>6} ms  ours {fmt_ms(r['ours_ms'] / 1e3):>6} ms  "
        f"{r['speedup']:6.2f}x  ours {fmt_num(r['ours_gflops']):>5} GFLOP/s{pct} "
        f"{fmt_num(r['ours_gbps']):>5} GB/s  check {check} (err {r['max_err']:.1e})"
    )


CSV_FIELDS = [
    "device",
    "dtype",
    "shape",
    "family",
    "config",
    "mode",
    "N",
    "C_in",
    "C_out",
    "L",
    "k",
    "stride",
    "padding",
    "dilation",
    "groups",
    "L_out",
    "gflop",
    "mbytes",
    "ref_ms",
    "ours_ms",
    "speedup",
    "ref_gflops",
    "ours_gflops",
    "ref_gbps",
    "ours_gbps",
    "ours_pct_peak",
    "ours_pct_bw",
    "ref_min_ms",
    "ours_min_ms",
    "ref_reps",
    "ours_reps",
    "max_err",
    "ref_err",
    "tol",
    "check",
]


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def markdown(rows, info, ceil, device, dtypes, modes, peak_flops):
    ref_name = "F.conv1d (oneDNN/native)" if device == "cpu" else "F.conv1d (cuDNN)"
    unit = "GFLOP/s" if device == "cpu" else "TFLOP/s"
    scale = 1.0 if device == "cpu" else 1e-3
    out = [f"# conv1d_ext vs {ref_name}: {info['tag']}", ""]
    out += [
        f"- machine: {info['machine']}",
        f"- torch {info['torch']}, python {info['python']}; ours: {info['ours']}",
        f"- ISA path of our extension: {info.get('isa_ours')}"
        + (f"; torch CPU capability: {info['isa_torch']}" if "isa_torch" in info else ""),
        f"- measured ceilings: {info['ceilings']}",
        f"- timing: {info['timing']}",
        f"- env: {info['malloc']} (both sides)",
        *([f"- note: {info['note']}"] if info.get("note") else []),
        f"- {info['date']}; sweep took {info['elapsed']:.0f} s; "
        f"{'all checks passed' if not info['n_fail'] else str(info['n_fail']) + ' CHECK FAILURES'}",
        "- speedup = F.conv1d time / ours; FLOPs 2·N·C_out·L_out·C_in/g·k (fwd+bwd 3×); bytes: inputs read "
        "once + outputs written once; checks: max|ours−ref|/max|ref| per result (output, grad_input, "
        "grad_weight, grad_bias), 16-bit against float32 F.conv1d on the same inputs",
        "",
    ]
    by = {(r["dtype"], r["shape"], r["mode"]): r for r in rows}
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    configs = {r["shape"]: r["config"] for r in rows}
    mode_name = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}
    out += summary_table(by, shapes, configs, dtypes, modes, mode_name)
    for dtype in dtypes:
        d = SHORT[dtype]
        peak, peak_name = peak_flops(dtype)
        out.append(
            f"## {d}" + (f" (compute ceiling {fmt_num(peak * scale)} {unit}, {peak_name})" if peak else "")
        )
        out.append("")
        head = ["shape", "config"]
        for m in modes:
            mn = mode_name[m]
            head += [
                f"{mn} F.conv1d ms",
                f"{mn} ours ms",
                f"{mn} speedup",
                f"{mn} ours {unit} (% peak)",
                f"{mn} ours GB/s (% bw)",
            ]
        head.append("check")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for s in shapes:
            cells = [s, configs[s]]
            checks = []
            for m in modes:
                r = by.get((d, s, m))
                if r is None or "speedup" not in r:
                    cells += ["—"] * 5
                    if r is not None:
                        checks.append(f"{mode_name[m]}: {r['check']}")
                    continue
                pct = f" ({r['ours_pct_peak']:.0f}%)" if r.get("ours_pct_peak") is not None else ""
                sp = f"{r['speedup']:.2f}×"
                if r["speedup"] < 1.0:
                    sp = f"**{sp}**"
                pct_bw = f" ({r['ours_pct_bw']:.0f}%)" if r.get("ours_pct_bw") is not None else ""
                cells += [
                    fmt_ms(r["ref_ms"] / 1e3),
                    fmt_ms(r["ours_ms"] / 1e3),
                    sp,
                    f"{fmt_num(r['ours_gflops'] * scale)}{pct}",
                    f"{fmt_num(r['ours_gbps'])}{pct_bw}",
                ]
                if r["check"] != "ok":
                    checks.append(f"{mode_name[m]}: {r['check']}")
            cells.append("ok" if not checks else "**" + "; ".join(checks) + "**")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        summary = []
        for m in modes:
            sps = [by[(d, s, m)]["speedup"] for s in shapes if "speedup" in by.get((d, s, m), {})]
            if sps:
                summary.append(f"{mode_name[m]}: geomean {geomean(sps):.2f}×, min {min(sps):.2f}×")
        if summary:
            out.append(f"{d} speedup — " + "; ".join(summary))
            out.append("")
    sources = {s.name: s.source for s in SWEEP}
    out += ["## Shapes", ""]
    out += [f"- `{s}` ({configs[s]}): {sources.get(s, '')}" for s in shapes]
    return "\n".join(out) + "\n"


def summary_table(by, shapes, configs, dtypes, modes, mode_name):
    """One compact table (README-sized): speedup and our time per dtype and mode."""
    cols = [(SHORT[dt], m) for dt in dtypes for m in modes]
    out = ["## Summary: speedup over F.conv1d (our time)", ""]
    out.append("| shape | config | " + " | ".join(f"{d} {mode_name[m]}" for d, m in cols) + " |")
    out.append("|" + "---|" * (2 + len(cols)))
    for s in shapes:
        cells = [s, configs[s]]
        for d, m in cols:
            r = by.get((d, s, m))
            if r is None or "speedup" not in r:
                cells.append("—" if r is None else "**FAIL**")
                continue
            sp = f"{r['speedup']:.2f}×"
            if r["speedup"] < 1.0:
                sp = f"**{sp}**"
            cell = f"{sp} ({fmt_ms(r['ours_ms'] / 1e3)} ms)"
            if r["check"] != "ok":
                cell += " **FAIL**"
            cells.append(cell)
        out.append("| " + " | ".join(cells) + " |")
    row = ["geomean", ""]
    for d, m in cols:
        sps = [by[(d, s, m)]["speedup"] for s in shapes if "speedup" in by.get((d, s, m), {})]
        row.append(f"{geomean(sps):.2f}×" if sps else "—")
    out += ["| " + " | ".join(row) + " |", ""]
    return out


def plot(rows, info, dtypes, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    by = {(r["dtype"], r["shape"], r["mode"]): r for r in rows}
    fig, axes = plt.subplots(
        len(dtypes), 1, figsize=(max(8, 1.1 * len(shapes) + 2), 3.6 * len(dtypes)), squeeze=False
    )
    width = 0.38
    for ax, dtype in zip(axes[:, 0], dtypes, strict=False):
        d = SHORT[dtype]
        for j, (m, color, lbl) in enumerate(
            (("fwd", "tab:blue", "forward"), ("fwdbwd", "tab:orange", "forward+backward"))
        ):
            xs, ys, fails = [], [], []
            for i, s in enumerate(shapes):
                r = by.get((d, s, m))
                if r is None:
                    continue
                if "speedup" in r:
                    xs.append(i + (j - 0.5) * width)
                    ys.append(r["speedup"])
                    if r["check"] != "ok":
                        fails.append((xs[-1], ys[-1]))
                else:
                    fails.append((i + (j - 0.5) * width, 1.0))
            bars = ax.bar(xs, ys, width, color=color, label=lbl)
            for b, y in zip(bars, ys, strict=False):
                ax.annotate(
                    f"{y:.2f}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=7
                )
            for fx, fy in fails:
                ax.annotate("FAIL", (fx, fy), ha="center", va="top", color="red", fontsize=8, weight="bold")
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_ylabel("speedup vs F.conv1d")
        ax.set_title(f"{d}")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=25, ha="right", fontsize=8)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(
        f"conv1d_ext vs F.conv1d — {info['tag']}\n{info['machine']}, torch {info['torch']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


if __name__ == "__main__":
    sys.exit(main())
