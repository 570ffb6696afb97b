"""The command line of benchmarks/bench.py: options, the sweep over (dtype, shape, mode), the outputs."""

import argparse
import datetime
import os
import platform
import shutil
import sys
import time

import torch
import torch.nn.functional as F

from . import malloc_env, report, shapes
from .cases import MODES, describe, run_case
from .machine import ceilings_start_end_text, cpu_machine, cuda_machine, disturbance, larger_ceilings
from .shapes import DTYPES, DTYPES_BY_SHORT, SHORT

try:
    from tqdm import tqdm
except ImportError:  # the GPU machines gpu_check.sh runs on may have torch only
    tqdm = None

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = "conv1d_ext against F.conv1d, same process, same inputs, over conv1d shapes taken from real models."
DEFAULT_DTYPES = "float32,bfloat16,float64"
QUICK_DTYPES = "float32,bfloat16"
DEFAULT_MODES = ",".join(MODES)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = cuda when available, else cpu"
    )
    p.add_argument(
        "--dtypes",
        default=None,
        help=f"comma list of {','.join(DTYPES)}, or 'all' (default {DEFAULT_DTYPES}; --quick: {QUICK_DTYPES})",
    )
    p.add_argument("--modes", default=DEFAULT_MODES, help="comma list of fwd,fwdbwd")
    p.add_argument("--shapes", default=None, help="comma list of substrings of shape names or families")
    p.add_argument("--quick", action="store_true", help="tiny shapes and short timing: a smoke test")
    p.add_argument(
        "--batch-scale",
        type=int,
        default=None,
        help="multiply every shape's batch (decode steps excepted); default 1 on the CPU, 8 on CUDA (an "
        "H100/H200 needs >= 100 us of cuDNN work per call to be measured, not its launch overhead)",
    )
    p.add_argument("--out", default=os.path.join(BENCH_DIR, "out"), help="output directory")
    p.add_argument(
        "--results-dir",
        default=os.path.join(BENCH_DIR, "results"),
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
        "--thread-scaling",
        action="store_true",
        help="CPU: also time ours on one thread (same interleaved rounds): the table's scaling column = "
        "1-thread time / all-thread time",
    )
    p.add_argument(
        "--round-time",
        type=float,
        default=None,
        help="CPU: seconds of timing per side per round (default 0.25; quick 0.02)",
    )
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per side (default 3; quick 2)")
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none off a terminal)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    modes = split_list(args.modes)
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes {args.modes!r}: a comma list of {DEFAULT_MODES}")
    if any(name not in DTYPES for name in dtype_names(args)):
        p.error(f"--dtypes {args.dtypes!r}: a comma list of {','.join(DTYPES)}, or 'all'")
    return args


def split_list(text):
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def dtype_names(args):
    names = args.dtypes or (QUICK_DTYPES if args.quick else DEFAULT_DTYPES)
    return list(DTYPES) if names == "all" else split_list(names)


def is_full_sweep(args):
    """The default sweep, the only one that may replace the committed results."""
    return not (args.quick or args.shapes or args.dtypes or args.self_test_against_torch or args.modes != DEFAULT_MODES)


def load_ours(self_test):
    """(callable with F.conv1d's signature, description, CPU ISA of our kernels or None)."""
    if self_test:
        return F.conv1d, "F.conv1d (--self-test-against-torch: harness check, expect ~1.0x)", None
    try:
        import conv1d_ext
    except ImportError as e:
        sys.exit(
            f"cannot import conv1d_ext ({e}).\nBuild in place first: CONV1D_EXT_CUDA=0 python setup.py "
            f"build_ext --inplace, run with PYTHONPATH=<repo root>; or pass --self-test-against-torch."
        )
    desc = f"conv1d_ext.conv1d from {os.path.dirname(os.path.abspath(conv1d_ext.__file__))}"
    return conv1d_ext.conv1d, desc, conv1d_ext.cpu_isa()


def pick_device(choice):
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    return choice


def make_machine(args, device):
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 3)
    if device == "cpu":
        round_time = args.round_time if args.round_time is not None else (0.02 if args.quick else 0.25)
        return cpu_machine(args.threads, round_time, rounds, args.slow_cap, args.very_slow)
    return cuda_machine(bool(args.allow_tf32), args.reps, rounds, max_time=0.3 if args.quick else 3.0)


def isa_text(device, isa):
    if isa is None:
        return "n/a (F.conv1d against itself)"
    if device == "cpu" and os.environ.get("CONV1D_EXT_CPU_ISA"):
        return f"{isa} (CONV1D_EXT_CPU_ISA={os.environ['CONV1D_EXT_CPU_ISA']})"
    return isa


class _Lines:
    """Stands in for a tqdm bar off a terminal (or without tqdm): the per-case lines only, flushed."""

    def set_postfix_str(self, text):
        pass

    def update(self, n=1):
        pass

    def write(self, line):
        print(line, flush=True)

    def close(self):
        pass


def progress_bar(total, enabled):
    if enabled and tqdm is not None:
        return tqdm(total=total, file=sys.stderr, dynamic_ncols=True)
    return _Lines()


def sweep(cases, machine, ours, ceil, seed, show_progress, thread_scaling=False):
    """run_case over `cases`; (rows, interrupted). Ctrl-C stops the sweep and keeps what was measured."""
    rows = []
    bar = progress_bar(len(cases), show_progress)
    interrupted = False
    for dtype, shape, mode in cases:
        bar.set_postfix_str(f"{SHORT[dtype]} {shape.name} {mode}")
        try:
            row = run_case(shape, dtype, mode, machine, ours, seed=seed, thread_scaling=thread_scaling)
        except KeyboardInterrupt:
            row = dict(describe(shape, dtype, mode, machine.device), check="FAIL: interrupted")
            interrupted = True
        machine.add_percentages(row, ceil, dtype)  # the start ceilings, for the console line
        rows.append(row)
        bar.write(report.case_line(row))
        bar.update()
        if machine.device == "cuda":
            torch.cuda.empty_cache()
        if interrupted:
            break
    bar.close()
    return rows, interrupted


def measure_ceilings(machine, when):
    ceil = machine.measure_ceilings()
    print(f"   measured ceilings at the {when} of the run: {machine.ceilings_text(ceil)}")
    return ceil


def run_info(args, device, ours_desc, isa):
    """What the report says about this run, so far; prints it."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "ours": ours_desc,
        "note": args.note,
        "malloc": malloc_env.describe(),
        "isa_ours": isa_text(device, isa),
    }
    print(f"== conv1d_ext benchmark ({'quick' if args.quick else 'sweep'}) on {device}")
    reexecuted = "; re-executed to apply" if malloc_env.was_reexecuted() else ""
    print(f"   env: {info['malloc']} (set for the whole process, both sides{reexecuted})")
    print(f"   torch {torch.__version__}, python {info['python']}; ours: {ours_desc}")
    return info


def settle_ceilings(rows, info, machine, start, end):
    """The ceilings the report uses (the larger of start and end), the rows' percentages of them and the
    disturbed mark, from the two measurements."""
    ceil = larger_ceilings(start, end)
    info["disturbed"] = disturbance(start, end)
    for row in rows:
        machine.add_percentages(row, ceil, DTYPES_BY_SHORT[row["dtype"]])
        row["disturbed"] = "yes" if info["disturbed"] else "no"
    info["ceilings"] = machine.ceilings_text(ceil)
    info["ceilings_start_end"] = ceilings_start_end_text(start, end)
    return ceil


def write_outputs(rows, info, machine, ceil, dtypes, modes, out_dir, quick):
    """CSV, markdown and PNG under out_dir; (base path without extension, markdown text)."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, info["tag"] + ("-quick" if quick else ""))
    report.write_csv(rows, base + ".csv")
    md = report.markdown(rows, info, machine, ceil, dtypes, modes)
    with open(base + ".md", "w") as f:
        f.write(md)
    made_png = report.plot(rows, info, machine, dtypes, base + ".png")
    print(f"== wrote {base}.csv, {base}.md" + (f", {base}.png" if made_png else " (no PNG: matplotlib missing)"))
    return base, md


def update_results(base, tag, results_dir):
    os.makedirs(results_dir, exist_ok=True)
    for ext in (".csv", ".md", ".png"):
        if os.path.exists(base + ext):
            shutil.copyfile(base + ext, os.path.join(results_dir, tag + ext))
    print(f"== --update-results: copied to {os.path.join(results_dir, tag)}.{{csv,md,png}}")


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    device = pick_device(args.device)
    dtypes = [DTYPES[name] for name in dtype_names(args)]
    modes = split_list(args.modes)
    try:
        batch_scale = args.batch_scale or (8 if device == "cuda" else 1)
        shape_list = shapes.select(split_list(args.shapes), quick=args.quick, batch_scale=batch_scale)
    except ValueError as e:
        sys.exit(f"--shapes {e}")
    if args.update_results and not is_full_sweep(args):
        sys.exit("--update-results takes a full sweep: no --quick/--shapes/--dtypes/--modes/--self-test-against-torch")

    ours, ours_desc, isa = load_ours(args.self_test_against_torch)
    torch.manual_seed(args.seed)
    info = run_info(args, device, ours_desc, isa)
    info["thread_scaling"] = args.thread_scaling and device == "cpu"
    machine = make_machine(args, device)
    if device == "cpu":
        info["isa_torch"] = torch.backends.cpu.get_cpu_capability()
        print(f"   ISA path of our extension: {info['isa_ours']}; torch CPU capability: {info['isa_torch']}")
    info["tag"] = machine.tag + ("-selftest" if args.self_test_against_torch else "")
    start = measure_ceilings(machine, "start")
    print(f"   timing: {machine.timing}")

    # A decode step has no backward.
    cases = [(dt, s, m) for dt in dtypes for s in shape_list for m in modes if not (s.decode and m != "fwd")]
    show_progress = not args.no_progress and sys.stdout.isatty() and sys.stderr.isatty()
    rows, interrupted = sweep(cases, machine, ours, start, args.seed, show_progress, args.thread_scaling)

    end = measure_ceilings(machine, "end")
    ceil = settle_ceilings(rows, info, machine, start, end)
    info["elapsed"] = time.time() - t_start
    info["n_fail"] = sum(row["check"] != "ok" for row in rows)
    if interrupted:
        print(f"== INTERRUPTED after {len(rows)} of {len(cases)} cases: partial results")
    print(
        f"== sweep finished in {info['elapsed']:.0f} s ({info['elapsed'] / 60:.1f} min), "
        f"{len(rows)} cases, {info['n_fail']} failed"
    )

    base, md = write_outputs(rows, info, machine, ceil, dtypes, modes, args.out, args.quick)
    if args.update_results and interrupted:
        print(f"== not copied to {args.results_dir}: the sweep is incomplete")
    elif args.update_results:
        update_results(base, info["tag"], args.results_dir)
    print()
    print(md)
    if info["disturbed"]:
        print(f"!!!!!!!! DISTURBED RUN: {info['disturbed']} !!!!!!!!", file=sys.stderr)
    if info["n_fail"]:
        print(f"!!!!!!!! {info['n_fail']} CASE(S) FAILED THE CHECK AGAINST F.conv1d (see 'check' column) !!!!!!!!")
    return 1 if info["n_fail"] else 0
