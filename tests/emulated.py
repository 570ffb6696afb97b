"""Build and load the emulated-CUDA extension: the project's csrc/cuda/*.cu kernel sources compiled
unchanged by g++ (CONV1D_EXT_EMULATE) and run on the CPU by the emulator in tests/cuda_emu/.

    emulated_ops()      -> torch.ops.conv1d_ext_emu  (conv1d, conv1d_backward_input/_weight/_bias on CPU
                           tensors, computed by the CUDA kernels)
    selftest_ops()      -> torch.ops.cuda_emu_selftest (the emulator's own test kernels)
    faulty_ops(name, path, old, new)
                        -> the same four ops built from a copy of csrc/ in which `old` is replaced by `new`
                           in `path`, registered under conv1d_ext_emu_fault_<name>

Objects are cached in <repo>/.emu_build/obj, keyed by the preprocessed source and the flags, so a fault
build recompiles only the file it changed (plus a tiny namespace file) and a rebuild after an edit only
what the edit touched. Compilation uses the system g++ and torch's headers; nothing is installed.
Environment: MAX_JOBS (parallel compiles, default: CPU count), CONV1D_EXT_EMU_OPT (default -O1),
CONV1D_EXT_EMU_VERBOSE=1 (print each compile).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emu"  # the emulator: test infrastructure, never copied into a fault tree
BUILD = ROOT / ".emu_build"
OBJ = BUILD / "obj"
LIB = BUILD / "lib"

DEFAULT_NS = "conv1d_ext_emu"
_loaded: dict[str, object] = {}  # library path -> ops namespace, per process


def _cxx() -> str:
    return os.environ.get("CXX", "g++")


def _cxx_standard() -> str:
    """The project's one C++ standard (pyproject.toml, also used by setup.py for g++ and nvcc)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["conv1d_ext"]["cxx-standard"]


def _compile_flags() -> list[str]:
    flags = [
        f"-std={_cxx_standard()}", "-fPIC", os.environ.get("CONV1D_EXT_EMU_OPT", "-O1"), "-g0",
        # Hidden: several emulated builds live in one process (the clean one and fault builds); their
        # kernels, template statics and emulator state must not be merged by the dynamic linker.
        "-fvisibility=hidden", "-fvisibility-inlines-hidden",
        "-DCONV1D_EXT_EMULATE", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        "-Icsrc", "-Icsrc/cuda", f"-I{EMU}",
    ]
    torch_inc = os.path.join(os.path.dirname(torch.__file__), "include")
    for inc in (torch_inc, os.path.join(torch_inc, "torch", "csrc", "api", "include")):
        flags += ["-isystem", inc]
    flags += ["-isystem", sysconfig.get_paths()["include"]]
    return flags


def _link_flags() -> list[str]:
    libdir = os.path.join(os.path.dirname(torch.__file__), "lib")
    return ["-shared", f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lc10", "-ltorch_cpu", "-ltorch"]


def _units(tree: Path, ns: str) -> list[tuple[str, list[str]]]:
    """(source relative to tree, extra flags) of the emulated conv1d_ext build."""
    kernels = sorted(p.relative_to(tree).as_posix() for p in (tree / "csrc" / "cuda").glob("*.cu"))
    units = [(f"{EMU}/cuda_emu.cpp", ["-O2"])]  # first: begins the static shared memory section
    # nvcc includes cuda_runtime.h before every .cu file; the emulator's header takes its place.
    units += [(k, ["-x", "c++", "-include", "cuda_emu.h"]) for k in kernels]
    units += [(f"{EMU}/emu_ops.cpp", []),
              (f"{EMU}/emu_namespace.cpp", [f"-DCONV1D_EXT_EMU_NS={ns}"]),
              (f"{EMU}/cuda_emu_end.cpp", [])]  # last: ends the static shared memory section
    return units


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"emulated build failed in {cwd}:\n{' '.join(cmd)}\n{res.stdout[-20000:]}")


def _compile(tree: Path, src: str, extra: list[str]) -> Path:
    """Object file of `src` (relative to `tree`), from the cache when the preprocessed text is known."""
    flags = _compile_flags() + extra
    pre = subprocess.run([_cxx(), "-E", "-P", *flags, src], cwd=tree, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if pre.returncode != 0:
        raise RuntimeError(f"emulated build: preprocessing {tree / src} failed:\n{pre.stderr.decode()[-20000:]}")
    key = hashlib.sha256()
    key.update(repr((_cxx(), flags, torch.__version__)).encode())
    key.update(pre.stdout)
    obj = OBJ / f"{Path(src).stem}-{key.hexdigest()[:20]}.o"
    if obj.exists():
        return obj
    OBJ.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
    t0 = time.time()
    _run([_cxx(), "-c", *flags, src, "-o", str(tmp)], tree)
    os.replace(tmp, obj)
    if os.environ.get("CONV1D_EXT_EMU_VERBOSE"):
        print(f"[emulated] compiled {src} in {time.time() - t0:.1f}s", file=sys.stderr)
    return obj


def _build(tree: Path, units: list[tuple[str, list[str]]], name: str) -> Path:
    jobs = int(os.environ.get("MAX_JOBS", os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        objs = list(pool.map(lambda u: _compile(tree, *u), units))
    key = hashlib.sha256(repr(([o.name for o in objs], _link_flags())).encode()).hexdigest()[:20]
    lib = LIB / f"{name}-{key}.so"
    if not lib.exists():
        LIB.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp.so")
        _run([_cxx(), *map(str, objs), *_link_flags(), "-o", str(tmp)], tree)
        os.replace(tmp, lib)
    return lib


_libs: dict[str, Path] = {}  # namespace -> loaded library


def _load(lib: Path, ns: str):
    if str(lib) not in _loaded:
        if ns in _libs and _libs[ns] != lib:
            raise RuntimeError(f"namespace {ns} is already loaded from {_libs[ns]}; restart to load {lib}")
        torch.ops.load_library(str(lib))
        _loaded[str(lib)] = getattr(torch.ops, ns)
        _libs[ns] = lib
    return _loaded[str(lib)]


def project_kernels(tree: Path = ROOT) -> list[str]:
    """Names of the __global__ functions in csrc/cuda/*.cu and *.cuh (the kernels the emulator must run)."""
    names = set()
    for f in sorted((tree / "csrc" / "cuda").glob("*.cu*")):
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", f.read_text(), flags=re.S)
        text = re.sub(r"__launch_bounds__\s*\([^)]*\)", "", text)
        names.update(re.findall(r"__global__\s+(?:static\s+)?void\s+(\w+)\s*\(", text))
    return sorted(names)


def kernel_launches(ns: str = DEFAULT_NS, reset: bool = True) -> dict[str, int]:
    """{demangled kernel symbol: launches} of the emulated build `ns` since the last reset."""
    lib = _libs[ns]
    counts = getattr(torch.ops, ns)._launch_counts(reset).tolist()
    nm = subprocess.run(["nm", "-C", "--defined-only", str(lib)], stdout=subprocess.PIPE, text=True, check=True)
    by_addr = {}
    for line in nm.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            by_addr.setdefault(int(parts[0], 16), parts[2])
    return {by_addr.get(off, hex(off)): n for off, n in counts}


def unlaunched_kernels(launched: dict[str, int], tree: Path = ROOT) -> list[str]:
    """Kernels of project_kernels() that appear in no launched symbol."""
    return [k for k in project_kernels(tree)
            if not any(re.search(rf"(^|::|\s){k}(<|\()", sym) for sym in launched)]


def emulated_ops():
    """torch.ops.conv1d_ext_emu: the CUDA kernels of csrc/cuda/ on CPU tensors (built on first use)."""
    return _load(_build(ROOT, _units(ROOT, DEFAULT_NS), DEFAULT_NS), DEFAULT_NS)


def selftest_ops():
    """torch.ops.cuda_emu_selftest: the emulator's own test kernels (tests/cuda_emu/selftest_kernels.cu)."""
    units = [(f"{EMU}/cuda_emu.cpp", ["-O2"]),
             (f"{EMU}/selftest_kernels.cu", ["-x", "c++", "-include", "cuda_emu.h"]),
             (f"{EMU}/cuda_emu_end.cpp", [])]
    return _load(_build(ROOT, units, "cuda_emu_selftest"), "cuda_emu_selftest")


def faulty_ops(name: str, path: str, old: str, new: str, count: int = 1):
    """The emulated ops built from a copy of csrc/ where the first `count` occurrences of `old` in `path`
    (relative to the repo root) are replaced by `new`; namespace conv1d_ext_emu_fault_<name>.
    Raises if `old` occurs fewer than `count` times (the fault no longer fits the kernel)."""
    ns = f"conv1d_ext_emu_fault_{name}"
    tree = BUILD / "faults" / name
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(ROOT / "csrc", tree / "csrc")
    target = tree / path
    text = target.read_text()
    found = text.count(old)
    if found < count:
        raise ValueError(f"fault {name!r}: {old!r} occurs {found} times in {path}, expected >= {count}")
    target.write_text(text.replace(old, new, count))
    return _load(_build(tree, _units(tree, ns), ns), ns)


# ---------------------------------------------------------------------------------------------------
# Conformance of an emulated build against F.conv1d (float64 reference), used by test_emulator.py for the
# clean and the fault-injected builds, and by `python tests/emulated.py --sweep N`.

# Error bound: |got - ref| <= TOLERANCE[dtype] * bound, where bound is the same computation on absolute
# values (sum of |terms|): the accumulation's relative error in the accumulation type plus the final
# rounding to dtype (float accumulation for the 16-bit types).
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Case:
    batch: int
    in_channels: int
    out_channels: int
    length: int
    kernel_size: int
    stride: int = 1
    pad_left: int = 0
    pad_right: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    contiguous: bool = True


def random_cases(count: int, seed: int = 0, max_length: int = 200) -> list[Case]:
    """Small random problems over every family: dense, grouped, depthwise, channel multipliers, strides,
    dilations, asymmetric padding, kernels longer than a depthwise tap group (8)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        kind = rng.choice(["dense", "grouped", "depthwise", "multiplier"])
        groups = 1 if kind == "dense" else rng.randint(2, 4)
        in_pg = 1 if kind in ("depthwise", "multiplier") else rng.choice([1, 2, 3, 5, 8, 20])
        out_pg = {"depthwise": 1, "multiplier": rng.choice([2, 3, 8, 9])}.get(kind, rng.randint(1, 9))
        k = rng.choice([1, 2, 3, 4, 5, 7, 9, 12])
        stride, dilation = rng.choice([1, 1, 2, 3, 4]), rng.choice([1, 1, 2, 3])
        pad_left, pad_right = rng.randint(0, 4), rng.randint(0, 4)
        span = dilation * (k - 1) + 1
        length = rng.randint(max(1, span - pad_left - pad_right), span + max_length)
        cases.append(Case(rng.choice([1, 1, 2, 3]), groups * in_pg, groups * out_pg, length, k, stride,
                          pad_left, pad_right, dilation, groups, rng.random() < 0.8, rng.random() < 0.8))
    return cases


# Shapes that reach the multi-tile / multi-chunk paths: GEMMs of several 64x64 tiles, depthwise rows
# longer than a tile (512 outputs), depthwise and bias reductions in several chunks, split-K dense
# backward-weight, K > one GEMM step, a zero-sized batch.
EDGE_CASES = [
    Case(4, 6, 6, 1100, 4, 1, 3, 0, 1, 6),
    Case(3, 4, 8, 1500, 9, 2, 4, 4, 2, 4),
    Case(2, 3, 3, 2100, 3, 1, 1, 1, 1, 3, contiguous=False),
    Case(2, 24, 16, 300, 5, 1, 2, 2, 1, 1),
    Case(2, 70, 80, 90, 3, 1, 1, 1, 1, 1),  # several GEMM tiles along M, N and K in every op
    Case(3, 12, 18, 150, 3, 3, 0, 2, 2, 3),
    Case(0, 4, 4, 20, 3, 1, 1, 1, 1, 1),
    Case(1, 2, 4, 1, 1, 1, 0, 0, 1, 2),
    Case(2, 3, 6, 5, 5, 1, 2, 2, 1, 3),
]


@contextmanager
def cuda_family(name: str | None):
    """Force a kernel family of csrc/cuda/dispatch.cu (CONV1D_EXT_CUDA_FAMILY, read on every call)."""
    old = os.environ.get("CONV1D_EXT_CUDA_FAMILY")
    if name:
        os.environ["CONV1D_EXT_CUDA_FAMILY"] = name
    else:
        os.environ.pop("CONV1D_EXT_CUDA_FAMILY", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CONV1D_EXT_CUDA_FAMILY", None)
        else:
            os.environ["CONV1D_EXT_CUDA_FAMILY"] = old


def _reference(c: Case, x, w, b, gy):
    """Output and the three gradients in float64, by F.conv1d and autograd."""
    import torch.nn.functional as F

    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    b = b.double().requires_grad_() if b is not None else None
    y = F.conv1d(F.pad(x, (c.pad_left, c.pad_right)), w, b, c.stride, 0, c.dilation, c.groups)
    inputs = (x, w) + ((b,) if b is not None else ())
    grads = torch.autograd.grad(y, inputs, gy.double(), allow_unused=True)
    gb = grads[2] if b is not None else gy.double().sum((0, 2))
    return y.detach(), grads[0], grads[1], gb


def _noncontiguous(t):
    return t.transpose(-1, -2).contiguous().transpose(-1, -2) if t.dim() == 3 else t


def check_case(ops, c: Case, dtype, seed: int = 0) -> list[str]:
    """Runs the four ops of `ops` on case `c` and compares with the float64 reference; returns the
    problems found (empty when the case conforms). Also checks that no input is modified."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c.batch, c.in_channels, c.length, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(c.out_channels, c.in_channels // c.groups, c.kernel_size, generator=g,
                    dtype=torch.float64).to(dtype)
    b = torch.randn(c.out_channels, generator=g, dtype=torch.float64).to(dtype) if c.bias else None
    out_len = (c.length + c.pad_left + c.pad_right - c.dilation * (c.kernel_size - 1) - 1) // c.stride + 1
    gy = torch.randn(c.batch, c.out_channels, out_len, generator=g, dtype=torch.float64).to(dtype)
    if not c.contiguous:
        x, w, gy = _noncontiguous(x), _noncontiguous(w), _noncontiguous(gy)
    originals = [t.clone() for t in (x, w, b, gy) if t is not None]
    hyper = (c.stride, c.pad_left, c.pad_right, c.dilation, c.groups)
    try:
        got = {
            "output": ops.conv1d(x, w, b, *hyper),
            "grad_input": ops.conv1d_backward_input(gy, w, c.length, *hyper),
            "grad_weight": ops.conv1d_backward_weight(gy, x, c.kernel_size, *hyper),
            "grad_bias": ops.conv1d_backward_bias(gy),
        }
    except RuntimeError as e:  # e.g. the emulator reporting a deadlock or a divergent barrier
        return [f"raised: {str(e).splitlines()[0]}"]
    problems = []
    if not all(torch.equal(o, t) for o, t in zip(originals, [t for t in (x, w, b, gy) if t is not None], strict=True)):
        problems.append("an input was modified")
    ref = dict(zip(got, _reference(c, x, w, b, gy), strict=True))
    bound = dict(zip(got, _reference(c, x.abs(), w.abs(), b.abs() if b is not None else None, gy.abs()),
                     strict=True))
    for name, value in got.items():
        if value.shape != ref[name].shape or value.dtype != dtype:
            problems.append(f"{name}: shape/dtype {tuple(value.shape)}/{value.dtype}, "
                            f"expected {tuple(ref[name].shape)}/{dtype}")
            continue
        err = (value.double() - ref[name]).abs()
        allowed = TOLERANCE[dtype] * bound[name] + 1e-30
        bad = ~(err <= allowed)  # NaN counts as bad
        if bad.any():
            idx = tuple(i.item() for i in bad.nonzero()[0])
            problems.append(f"{name}: {int(bad.sum())}/{bad.numel()} elements off, first at {idx}: "
                            f"got {value[idx].item()}, expected {ref[name][idx].item()}")
    return problems


@contextmanager
def torch_threads(n: int):
    """Run with n intra-op threads. The checks use 1: on a loaded 2-core machine OpenMP's spinning
    barriers make every small multi-threaded op (F.conv1d included) ~50x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def conformance_failures(ops, cases, dtypes=DTYPES, families=(None,), seed: int = 0,
                         stop_at_first: bool = False) -> list[str]:
    """check_case over cases x dtypes x forced kernel families; one line per failing combination."""
    failures = []
    for family in families:
        with cuda_family(family), torch_threads(1):
            for i, c in enumerate(cases):
                for dtype in dtypes:
                    for p in check_case(ops, c, dtype, seed + i):
                        failures.append(f"[family={family or 'auto'} {dtype} {c}] {p}")
                    if failures and stop_at_first:
                        return failures
    return failures


if __name__ == "__main__":  # python tests/emulated.py [--sweep N [--seed S]]: build, then optionally sweep
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=int, default=0, help="random cases to check against F.conv1d")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("CONV1D_EXT_POISON_OUTPUTS", "1")
    t0 = time.time()
    os.environ.setdefault("CONV1D_EXT_EMU_VERBOSE", "1")
    ops = emulated_ops()
    print(f"emulated ops ready: {ops} ({time.time() - t0:.1f}s)")
    if args.sweep:
        t0 = time.time()
        kernel_launches(reset=True)
        cases = EDGE_CASES + random_cases(args.sweep, args.seed)
        fails = conformance_failures(ops, cases, families=(None, "direct", "dense"), seed=args.seed)
        for f in fails:
            print(f)
        launched = kernel_launches()
        print(f"{len(cases)} cases x {len(DTYPES)} dtypes x 3 families: {len(fails)} failures "
              f"({time.time() - t0:.1f}s); kernels launched: {len(launched)}; "
              f"never launched: {unlaunched_kernels(launched) or 'none'}")
