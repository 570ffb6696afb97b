"""Build and load the emulated-CUDA extension: the project's csrc/cuda/*.cu kernel sources compiled
unchanged by g++ (CONV1D_EXT_EMULATE) and run on the CPU by the emulator in tests/cuda_emu/.

    emulated_ops()      -> torch.ops.conv1d_ext_emu  (conv1d, conv1d_backward_input/_weight/_bias on CPU
                           tensors, computed by the CUDA kernels)
    selftest_ops()      -> torch.ops.cuda_emu_selftest (the emulator's own test kernels)
    faulty_ops(name, path, old, new)
                        -> the same four ops built from a copy of csrc/ in which `old` is replaced by `new`
                           in `path`, registered under conv1d_ext_emu_fault_<name>
    conformance_failures(ops, cases, dtypes, families)
                        -> the ops against F.conv1d (conv_ref's float64 references and error bound) with
                           each kernel family forced (CONV1D_EXT_CUDA_FAMILY)

Objects are cached in <repo>/.emu_build/obj, keyed by the preprocessed source and the flags, so a fault
build recompiles only the file it changed (plus a tiny namespace file) and a rebuild after an edit only
what the edit touched. Compilation uses the system g++ and torch's headers; nothing is installed.
Environment: MAX_JOBS (parallel compiles, default: CPU count), CONV1D_EXT_EMU_OPT (default -O1),
CONV1D_EXT_EMU_VERBOSE=1 (print each compile), CONV1D_EXT_SANITIZE (e.g. address,undefined: every test
build here and in cpu_faults.py with those sanitizers, as setup.py builds the extension; such a library
loads only into a process with the sanitizer runtime preloaded, see sanitizer_env()).
"""
from __future__ import annotations

import dataclasses
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
from pathlib import Path

import torch
from conv_ref import MAX_WORK, ConvCase, conformance_problems, run_conv_ops, torch_threads
from repo_paths import ROOT

EMU = ROOT / "tests" / "cuda_emu"  # the emulator: test infrastructure, never copied into a fault tree
BUILD = ROOT / ".emu_build"
OBJ = BUILD / "obj"
LIB = BUILD / "lib"

DEFAULT_NS = "conv1d_ext_emu"
# The emulator's runtime; cuda_emu.cpp first: it begins the static shared memory section.
EMU_RUNTIME = ("cuda_emu.cpp", "cuda_emu_fibers.cpp", "cuda_emu_warp.cpp")
_loaded: dict[str, object] = {}  # library path -> ops namespace, per process


def _cxx() -> str:
    return os.environ.get("CXX", "g++")


def _cxx_standard() -> str:
    """The project's one C++ standard (pyproject.toml, also used by setup.py for g++ and nvcc)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["conv1d_ext"]["cxx-standard"]


def sanitizer() -> str:
    """The sanitizers of the test builds (CONV1D_EXT_SANITIZE, read at each build); "" for none."""
    return os.environ.get("CONV1D_EXT_SANITIZE", "")


def sanitizer_flags(sanitize: str) -> tuple[list[str], list[str]]:
    """(compile flags, link flags) of a sanitizer build, the same as setup.py's: every finding aborts
    (-fno-sanitize-recover=all: UBSan would otherwise print and go on, and the test would pass); -O1 is
    quick to build and keeps reports exact; frame pointers and line tables give readable stacks."""
    if not re.fullmatch(r"[a-z,-]+", sanitize):
        raise ValueError(f"CONV1D_EXT_SANITIZE: expected a list like address,undefined, got {sanitize!r}")
    return ([f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g1"],
            [f"-fsanitize={sanitize}"])


def sanitizer_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: os.environ) for a Python process that loads ASan-built libraries
    (docs/testing.md#sanitizers explains each setting):
      LD_PRELOAD=libasan.so  (the compiler's) ASan must be the first library of the process, and python
                             is not built with it; libubsan is an ordinary dependency of the library.
        :libstdc++.so        ASan resolves the real __cxa_throw when it starts; python does not link
                             libstdc++, so without it the first C++ exception (torch's TORCH_CHECK) aborts
                             with "CHECK failed: ... real___cxa_throw".
      detect_leaks=0         CPython and torch never free what their modules allocate at import (6.7 MB
                             in 43k blocks at exit for `import torch`), and suppressions by module
                             cannot tell theirs from the extension's (every stack passes through both);
                             the extension allocates only through tensors and standard containers.
    Nothing else: torch 2.14 loads and runs under ASan without further options."""
    env = dict(os.environ if env is None else env)
    preload = []
    for name in ("libasan.so", "libstdc++.so"):
        path = subprocess.run([_cxx(), f"-print-file-name={name}"], stdout=subprocess.PIPE, text=True, check=True,
                              env=_tool_env()).stdout.strip()
        if not os.path.isabs(path):  # the compiler echoes the bare name when it has no such file
            raise RuntimeError(f"{name} of {_cxx()} is not installed")
        preload.append(path)
    env["LD_PRELOAD"] = ":".join(preload)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def torch_extension_flags(opt: str) -> list[str]:
    """g++ flags of a test build against torch's headers (the emulated CUDA kernels here, copies of the
    CPU kernels in cpu_faults.py), compiled in the repository (or fault tree) root."""
    flags = [
        f"-std={_cxx_standard()}", "-fPIC", opt, "-g0",
        # Hidden: several test builds live in one process (the clean one and fault builds); their
        # kernels, template statics and emulator state must not be merged by the dynamic linker.
        "-fvisibility=hidden", "-fvisibility-inlines-hidden",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", "-Icsrc",
    ]
    torch_inc = os.path.join(os.path.dirname(torch.__file__), "include")
    for inc in (torch_inc, os.path.join(torch_inc, "torch", "csrc", "api", "include")):
        flags += ["-isystem", inc]
    flags += ["-isystem", sysconfig.get_paths()["include"]]
    if sanitizer():  # after `opt` and -g0: their -O1 and line tables win
        flags += sanitizer_flags(sanitizer())[0]
    return flags


def _compile_flags() -> list[str]:
    return torch_extension_flags(os.environ.get("CONV1D_EXT_EMU_OPT", "-O1")) + [
        "-DCONV1D_EXT_EMULATE", "-Icsrc/cuda", f"-I{EMU}"]


def _link_flags() -> list[str]:
    libdir = os.path.join(os.path.dirname(torch.__file__), "lib")
    flags = ["-shared", f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lc10", "-ltorch_cpu", "-ltorch"]
    return flags + (sanitizer_flags(sanitizer())[1] if sanitizer() else [])


def _units(tree: Path, ns: str) -> list[tuple[str, list[str]]]:
    """(source relative to tree, extra flags) of the emulated conv1d_ext build."""
    kernels = sorted(p.relative_to(tree).as_posix() for p in (tree / "csrc" / "cuda").glob("*.cu"))
    units = [(f"{EMU}/{src}", ["-O2"]) for src in EMU_RUNTIME]
    # nvcc includes cuda_runtime.h before every .cu file; the emulator's header takes its place.
    units += [(k, ["-x", "c++", "-include", "cuda_emu.h"]) for k in kernels]
    units += [(f"{EMU}/emu_ops.cpp", []),
              (f"{EMU}/emu_namespace.cpp", [f"-DCONV1D_EXT_EMU_NS={ns}"]),
              (f"{EMU}/cuda_emu_end.cpp", [])]  # last: ends the static shared memory section
    return units


def _tool_env() -> dict[str, str]:
    """The environment of the compiler and binutils: without a preloaded sanitizer runtime (the sanitizer
    tier's test process has one; g++ would run under ASan's allocator, slower, for nothing)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=_tool_env())
    if res.returncode != 0:
        raise RuntimeError(f"emulated build failed in {cwd}:\n{' '.join(cmd)}\n{res.stdout[-20000:]}")


def _compile(tree: Path, src: str, extra: list[str], base_flags: list[str] | None = None) -> Path:
    """Object file of `src` (relative to `tree`), from the cache when the preprocessed text is known."""
    flags = (base_flags if base_flags is not None else _compile_flags()) + extra
    pre = subprocess.run([_cxx(), "-E", "-P", *flags, src], cwd=tree, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_tool_env())
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


def _build(tree: Path, units: list[tuple[str, list[str]]], name: str, base_flags: list[str] | None = None) -> Path:
    """The shared library of `units` ((source, extra flags) relative to `tree`), cached like the objects."""
    jobs = int(os.environ.get("MAX_JOBS", os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        objs = list(pool.map(lambda u: _compile(tree, *u, base_flags=base_flags), units))
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
    nm = subprocess.run(["nm", "-C", "--defined-only", str(lib)], stdout=subprocess.PIPE, text=True, check=True,
                        env=_tool_env())
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


def emulated_library() -> Path:
    """The shared library of emulated_ops() (built if needed, not loaded)."""
    return _build(ROOT, _units(ROOT, DEFAULT_NS), DEFAULT_NS)


def emulated_ops():
    """torch.ops.conv1d_ext_emu: the CUDA kernels of csrc/cuda/ on CPU tensors (built on first use)."""
    return _load(emulated_library(), DEFAULT_NS)


def selftest_ops():
    """torch.ops.cuda_emu_selftest: the emulator's own test kernels (tests/cuda_emu/selftest_kernels.cu)."""
    units = [(f"{EMU}/{src}", ["-O2"]) for src in EMU_RUNTIME]
    units += [(f"{EMU}/selftest_kernels.cu", ["-x", "c++", "-include", "cuda_emu.h"]),
             (f"{EMU}/cuda_emu_end.cpp", [])]
    return _load(_build(ROOT, units, "cuda_emu_selftest"), "cuda_emu_selftest")


def fault_tree(tree: Path, path: str | None = None, old: str = "", new: str = "", count: int = 1) -> Path:
    """`tree`/csrc: a fresh copy of csrc/ where the first `count` occurrences of `old` in `path` (relative
    to the repo root) are replaced by `new` (path None: an unmodified copy). Raises if `old` occurs fewer
    than `count` times (the fault no longer fits the kernel: update its text)."""
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(ROOT / "csrc", tree / "csrc")
    if path is not None:
        target = tree / path
        text = target.read_text()
        found = text.count(old)
        if found < count:
            raise ValueError(f"fault in {tree.name!r}: {old!r} occurs {found} times in {path}, expected >= {count}")
        target.write_text(text.replace(old, new, count))
    return tree


def faulty_library(name: str, path: str, old: str, new: str, count: int = 1) -> tuple[Path, str]:
    """(shared library, op namespace conv1d_ext_emu_fault_<name>) of the emulated ops built from a copy of
    csrc/ with a fault (fault_tree); built, not loaded."""
    ns = f"conv1d_ext_emu_fault_{name}"
    tree = fault_tree(BUILD / "faults" / name, path, old, new, count)
    return _build(tree, _units(tree, ns), ns), ns


def faulty_ops(name: str, path: str, old: str, new: str, count: int = 1):
    """The ops of faulty_library(), loaded."""
    return _load(*faulty_library(name, path, old, new, count))


# ---------------------------------------------------------------------------------------------------
# Conformance of an emulated build against F.conv1d (float64 reference), used by infra/test_emulator.py for the
# clean and the fault-injected builds, and by `python tests/support/emulated.py --sweep N`. The problems, operands,
# references and tolerances are conv_ref's: one tolerance model for the whole suite.

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# None: dispatch's choice; then each family forced (CONV1D_EXT_CUDA_FAMILY): direct and dense run every
# problem, depthwise every depthwise problem its kernels can stage, channel multipliers > 8 included
# (which dispatch would give to the dense kernels), tensor_core the forward of float16/bfloat16 (and of
# float32 while TF32 is allowed; these checks run with it disallowed, see conformance_failures).
FAMILIES = (None, "direct", "dense", "depthwise", "tensor_core")


def random_cases(count: int, seed: int = 0, max_work: int = MAX_WORK) -> list[ConvCase]:
    """Random problems over every family: dense, grouped, depthwise, channel multipliers (up to 16),
    strides, dilations, asymmetric padding, kernels up to 40 taps (several depthwise tap groups of 8),
    rows up to several depthwise tiles (512 outputs) and GEMM tiles (64); non-contiguous operands in one
    case of five. Rows are cut to `max_work` multiply-adds per op."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        kind = rng.choice(["dense", "grouped", "depthwise", "multiplier"])
        groups = 1 if kind == "dense" else rng.randint(2, 4)
        in_pg = 1 if kind in ("depthwise", "multiplier") else rng.choice([1, 2, 3, 5, 8, 20])
        out_pg = {"depthwise": 1, "multiplier": rng.choice([2, 3, 6, 8, 9, 16])}.get(kind, rng.randint(1, 9))
        k = rng.choice([1, 2, 3, 4, 5, 7, 9, 12, 16, 31, 40])
        stride, dilation = rng.choice([1, 1, 2, 3, 4]), rng.choice([1, 1, 2, 3])
        pad_left, pad_right = rng.randint(0, 4), rng.randint(0, 4)
        span = dilation * (k - 1) + 1
        min_len = max(1, span - pad_left - pad_right)
        length = min_len + rng.choice([rng.randint(0, 200), rng.randint(600, 2200)])
        layout = "contiguous" if rng.random() < 0.8 else "transposed"
        case = ConvCase(batch=rng.choice([1, 1, 2, 3]), groups=groups, in_per_group=in_pg, out_per_group=out_pg,
                        kernel_size=k, in_len=length, stride=stride, dilation=dilation, pad_left=pad_left,
                        pad_right=pad_right, bias=rng.random() < 0.8, input_layout=layout,
                        weight_layout=layout, grad_layout=layout, seed=seed * 1000 + i)
        if case.work > max_work:  # the same row, cut to the budget
            out_len = max(1, max_work * case.out_len // case.work)
            case = dataclasses.replace(case, in_len=max(min_len, min_len + (out_len - 1) * stride))
        cases.append(case)
    return cases


# Shapes that reach the multi-tile / multi-chunk paths: GEMMs of several 64x64 tiles, depthwise rows
# longer than a tile (512 outputs), depthwise and bias reductions in several chunks, split-K dense
# backward-weight, K > one GEMM step, depthwise tap groups of 8 (k = 16, 31, 80), channel multipliers
# that the dispatch sends to the dense kernels (x16, C1 -> 64) and that the forced depthwise family runs,
# a zero-sized batch.
EDGE_CASES = [
    ConvCase(batch=4, groups=6, in_per_group=1, out_per_group=1, kernel_size=4, in_len=1100, pad_left=3,
             seed=1),
    ConvCase(batch=3, groups=4, in_per_group=1, out_per_group=2, kernel_size=9, in_len=1500, stride=2,
             dilation=2, pad_left=4, pad_right=4, seed=2),
    ConvCase(batch=2, groups=3, in_per_group=1, out_per_group=1, kernel_size=3, in_len=2100, pad_left=1,
             pad_right=1, input_layout="transposed", weight_layout="transposed", grad_layout="transposed",
             seed=3),
    ConvCase(batch=2, groups=1, in_per_group=24, out_per_group=16, kernel_size=5, in_len=300, pad_left=2,
             pad_right=2, seed=4),
    ConvCase(batch=2, groups=1, in_per_group=70, out_per_group=80, kernel_size=3, in_len=90, pad_left=1,
             pad_right=1, seed=5),  # several GEMM tiles along M, N and K in every op
    ConvCase(batch=3, groups=3, in_per_group=4, out_per_group=6, kernel_size=3, in_len=150, stride=3,
             dilation=2, pad_right=2, seed=6),
    ConvCase(batch=0, groups=1, in_per_group=4, out_per_group=4, kernel_size=3, in_len=20, pad_left=1,
             pad_right=1, seed=7),
    ConvCase(batch=1, groups=2, in_per_group=1, out_per_group=2, kernel_size=1, in_len=1, seed=8),
    ConvCase(batch=2, groups=3, in_per_group=1, out_per_group=2, kernel_size=5, in_len=5, pad_left=2,
             pad_right=2, seed=9),
    ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=1, kernel_size=31, in_len=700, pad_left=15,
             pad_right=15, seed=10),  # Conformer depthwise: four tap groups, the last partial
    ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=16, kernel_size=7, in_len=300, stride=2,
             pad_left=3, pad_right=3, seed=11),  # x16: dense forward unless depthwise is forced
    ConvCase(batch=1, groups=1, in_per_group=1, out_per_group=64, kernel_size=80, in_len=800, stride=4,
             pad_left=38, pad_right=38, seed=12),  # waveform front end: ten tap groups
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


@contextmanager
def tf32_allowed(flag: bool):
    """torch.backends.cudnn.allow_tf32 (which the CUDA ops read per call) set to `flag` inside."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = flag
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def check_case(ops, case: ConvCase, dtype) -> list[str]:
    """Runs the four ops of `ops` on `case` and compares with the float64 reference (conv_ref); returns
    the problems found (empty when the case conforms)."""
    try:
        return conformance_problems(run_conv_ops(ops), case, dtype)
    except RuntimeError as e:  # e.g. the emulator reporting a deadlock or a divergent barrier
        return [f"raised: {str(e).splitlines()[0]}"]


def conformance_failures(ops, cases, dtypes=DTYPES, families=(None,), stop_at_first: bool = False) -> list[str]:
    """check_case over cases x dtypes x forced kernel families; one line per failing combination. The
    emulator and the references run on one PyTorch thread: on a loaded 2-core machine OpenMP's spinning
    barriers make every small multi-threaded op (F.conv1d included) ~50x slower."""
    failures = []
    # float32 is checked as true float32 (conv_ref's bound): TF32 off, as in ops/test_conv1d_ops.py (strict_fp32);
    # the TF32 tensor-core path has its own tests (ops/test_tensor_core.py).
    with tf32_allowed(False):
        for family in families:
            with cuda_family(family), torch_threads(1):
                for c in cases:
                    for dtype in dtypes:
                        for p in check_case(ops, c, dtype):
                            failures.append(f"[family={family or 'auto'} {dtype} {c}] {p}")
                        if failures and stop_at_first:
                            return failures
    return failures


if __name__ == "__main__":  # python tests/support/emulated.py [--sweep N [--seed S]]: build, then optionally sweep
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
        fails = conformance_failures(ops, cases, families=FAMILIES)
        for f in fails:
            print(f)
        launched = kernel_launches()
        print(f"{len(cases)} cases x {len(DTYPES)} dtypes x {len(FAMILIES)} families: {len(fails)} failures "
              f"({time.time() - t0:.1f}s); kernels launched: {len(launched)}; "
              f"never launched: {unlaunched_kernels(launched) or 'none'}")
