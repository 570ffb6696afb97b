"""The device under test: what it is, how cases are timed on it, and its measured ceilings.

The ceilings are measured at the start and at the end of a run. Another process using the machine
during a measurement lowers it, so the larger of the two is the better estimate of the machine's
ceiling and is what percentages in the report use; when the two differ by more than DISTURBED_ABOVE the
run itself was disturbed too (its timings as well as its percentages are suspect) and is marked so.
"""

import math
import os
import platform
import re
from dataclasses import dataclass, field

import torch

from . import ceilings
from .report import fmt_num
from .timing import CpuTimer, CudaTimer

DISTURBED_ABOVE = 0.10  # |end / start - 1| of any measured ceiling

# The measured ceilings, as keys of a ceilings dict: (how the report names them, unit).
MEASURED = {
    "gflops_fp32": ("FMA loop on all threads", "GFLOP/s"),
    "gflops_fp32_1thread": ("FMA loop on one thread", "GFLOP/s"),
    "gbps": ("copy rate", "GB/s"),
    "gflops_bf16_dot": ("bf16 dot loop on all threads", "GFLOP/s"),
}


def _ours_use_bf16_dot():
    """Whether our bfloat16 kernels run the AVX512-BF16 build (vdpbf16ps) in this process."""
    try:
        import conv1d_ext

        return conv1d_ext.cpu_isa() == "avx512bf16"
    except Exception:  # noqa: BLE001 - no extension, no such build: the float ceiling applies
        return False


@dataclass
class Machine:
    device: str  # "cpu" | "cuda"
    description: str
    tag: str  # file name stem of the outputs: cpu-<model>-<cores>c, cuda-<name>
    timer: object
    timing: str  # how cases are timed, for the report
    tf32: bool = False
    threads: int | None = None  # CPU: torch threads
    l2_bytes: int | None = None  # CUDA: inputs rotate over sets totalling ≥ 3x this, so none stays in L2
    spec: dict = field(default_factory=dict)  # CUDA: datasheet numbers (ceilings.gpu_spec)
    spec_label: str | None = None

    def input_sets(self, nbytes):
        """How many copies of a case's inputs (nbytes each) to rotate over while timing."""
        if self.l2_bytes is None:
            return 1
        return max(1, min(32, math.ceil(3 * self.l2_bytes / max(nbytes, 1))))

    def measure_ceilings(self):
        """{key of MEASURED: value or None, ...}: one measurement, now."""
        if self.device == "cuda":
            return {"gbps": ceilings.cuda_copy_gbps(torch)}
        fma, note = ceilings.cpu_fma_gflops(self.threads)
        fma1 = ceilings.cpu_fma_gflops(1)[0] if self.threads > 1 else fma
        return {
            "gflops_fp32": fma,
            "gflops_fp32_1thread": fma1,
            "gbps": ceilings.cpu_scale_gbps(torch),
            "gflops_bf16_dot": ceilings.cpu_bf16_dot_gflops(self.threads) if _ours_use_bf16_dot() else None,
            "fma_note": note,
        }

    def ceilings_text(self, ceil):
        if self.device == "cuda":
            spec = self.spec
            spec_txt = (
                f"{self.spec_label} datasheet: {spec['gbps']} GB/s, {spec['fp32']} TFLOP/s fp32, "
                f"{spec['tf32_tc']} tf32 TC, {spec['bf16_tc']} bf16 TC, {spec['fp64']} fp64"
                if spec
                else "datasheet: unknown card"
            )
            return f"device copy 1 GB: {ceil['gbps']:.0f} GB/s read+write; {spec_txt}"
        scale = f"scale over 256 MB: {ceil['gbps']:.1f} GB/s read+write"
        fma = ceil.get("gflops_fp32")
        if not fma:
            return f"FMA loop n/a ({ceil.get('fma_note')}); {scale}"
        dot = ceil.get("gflops_bf16_dot")
        bf16 = (f"bf16: the vdpbf16ps loop, {fmt_num(dot)} GFLOP/s on {self.threads} threads; fp16 converts in "
                "registers and uses the fp32 number" if dot else
                "bf16/fp16 convert in registers and use the fp32 number")
        return (
            f"FMA loop ({ceil['fma_note']}): {fmt_num(fma)} GFLOP/s fp32 on {self.threads} threads, "
            f"{fmt_num(ceil['gflops_fp32_1thread'])} on one (fp64: half; {bf16}); {scale}"
        )

    def peak_flops(self, ceil, dtype):
        """(GFLOP/s ceiling, its name) for a dtype on this device; (None, "n/a") when unknown."""
        if self.device == "cpu":
            f = ceil.get("gflops_fp32")
            if not f:
                return None, "n/a"
            if dtype == torch.bfloat16 and ceil.get("gflops_bf16_dot"):
                return ceil["gflops_bf16_dot"], "vdpbf16ps loop"
            return (f / 2, "FMA loop / 2") if dtype == torch.float64 else (f, "FMA loop")
        spec = self.spec
        if not spec:
            return None, "n/a"
        if dtype == torch.float32:
            return (spec["tf32_tc"] if self.tf32 else spec["fp32"]) * 1e3, ("tf32 TC" if self.tf32 else "fp32")
        if dtype == torch.float64:
            return spec["fp64"] * 1e3, "fp64"
        return spec["bf16_tc"] * 1e3, "bf16/fp16 TC"

    def add_percentages(self, row, ceil, dtype):
        """ours_pct_peak and ours_pct_bw of a measured row, against the ceilings `ceil`."""
        if "ours_gflops" not in row:
            return
        peak, _ = self.peak_flops(ceil, dtype)
        row["ours_pct_peak"] = 100 * row["ours_gflops"] / peak if peak else None
        bw = ceil.get("gbps")
        row["ours_pct_bw"] = 100 * row["ours_gbps"] / bw if bw else None


def larger_ceilings(start, end):
    """Each measured ceiling: the larger of its start and end measurement."""
    both = dict(start)
    for key in MEASURED:
        values = [v for v in (start.get(key), end.get(key)) if v]
        both[key] = max(values) if values else None
    return both


def disturbance(start, end):
    """None, or what says the run was disturbed: the measured ceilings that differ by more than
    DISTURBED_ABOVE between the start and the end of the run."""
    changes = []
    for key, (name, unit) in MEASURED.items():
        a, b = start.get(key), end.get(key)
        if a and b and abs(b / a - 1) > DISTURBED_ABOVE:
            changes.append(f"{name} {fmt_num(a)} → {fmt_num(b)} {unit} ({100 * (b / a - 1):+.0f} %)")
    if not changes:
        return None
    return (
        f"measured ceilings moved by more than {DISTURBED_ABOVE:.0%} between the start and the end of the run: "
        f"{', '.join(changes)}; something else was using the machine, the timings are suspect too"
    )


def ceilings_start_end_text(start, end):
    parts = []
    for key, (name, unit) in MEASURED.items():
        if start.get(key) or end.get(key):
            parts.append(f"{name} {fmt_num(start.get(key))} / {fmt_num(end.get(key))} {unit}")
    return "; ".join(parts)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_machine(threads, round_time, rounds, slow_cap, very_slow):
    """Sets torch's CPU threads (default: all cores) and prints what the run uses."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = threads or cores
    torch.set_num_threads(threads)
    model = cpu_model()
    print(
        f"   CPU: {model}; {cores} cores; torch threads = {threads} (all cores)"
        f"{'' if threads == cores else ' -- NOT all cores (--threads)'}"
    )
    return Machine(
        device="cpu",
        description=f"{model}, {cores} cores visible; torch threads = {threads}",
        tag=f"cpu-{slug(model)}-{cores}c",
        timer=CpuTimer(threads, round_time, rounds, slow_cap, very_slow),
        timing=(
            f"torch.utils.benchmark blocked_autorange, {threads} threads, {rounds} interleaved "
            f"rounds x {round_time}s per side, median; a side slower than {slow_cap}s/call: "
            f"single calls, one round; slower than {very_slow}s/call: its first (checked) call only"
        ),
        threads=threads,
    )


def cuda_machine(allow_tf32, reps, rounds, max_time):
    """Sets cudnn.benchmark and the TF32 switches for both sides and prints what the run uses."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 0) or 50 * 1024 * 1024
    label, spec = ceilings.gpu_spec(props.name)
    description = (
        f"{props.name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, "
        f"L2 {l2 / 2**20:.0f} MB), CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    )
    print(f"   GPU: {description}")
    print(
        f"   torch.backends.cudnn.benchmark = True; torch.backends.cudnn.allow_tf32 = {allow_tf32} "
        f"(both sides: cuDNN obeys it; our fp32 kernels compute plain fp32 unless they read it too)"
    )
    return Machine(
        device="cuda",
        description=description,
        tag=f"cuda-{slug(props.name)}",
        timer=CudaTimer(reps, rounds, max_time),
        timing=(
            f"CUDA events per call, cudnn.benchmark=True, allow_tf32={allow_tf32}, 3 warm-up calls, "
            f"up to {reps} calls per side in {rounds} interleaved rounds, median; inputs "
            f"rotated over sets totalling ≥ 3x L2 ({l2 / 2**20:.0f} MB)"
        ),
        tf32=allow_tf32,
        l2_bytes=l2,
        spec=spec,
        spec_label=label,
    )
