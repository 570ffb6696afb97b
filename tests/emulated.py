"""Build and load the emulated-CUDA extension: the project's csrc/cuda/*.cu kernel sources compiled
unchanged by g++ (CONV1D_EXT_EMULATE) and run on the CPU by the emulator in csrc/cuda/emu/.

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
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".emu_build"
OBJ = BUILD / "obj"
LIB = BUILD / "lib"

DEFAULT_NS = "conv1d_ext_emu"
_loaded: dict[str, object] = {}  # library path -> ops namespace, per process


def _cxx() -> str:
    return os.environ.get("CXX", "g++")


def _compile_flags() -> list[str]:
    flags = [
        "-std=c++20", "-fPIC", os.environ.get("CONV1D_EXT_EMU_OPT", "-O1"), "-g0",
        # Hidden: several emulated builds live in one process (the clean one and fault builds); their
        # kernels, template statics and emulator state must not be merged by the dynamic linker.
        "-fvisibility=hidden", "-fvisibility-inlines-hidden",
        "-DCONV1D_EXT_EMULATE", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        "-Icsrc", "-Icsrc/cuda",
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
    units = [("csrc/cuda/emu/cuda_emu.cpp", ["-O2"])]  # first: begins the static shared memory section
    # nvcc includes cuda_runtime.h before every .cu file; the emulator's header takes its place.
    units += [(k, ["-x", "c++", "-include", "csrc/cuda/emu/cuda_emu.h"]) for k in kernels]
    units += [("csrc/cuda/emu/emu_ops.cpp", []),
              ("csrc/cuda/emu/emu_namespace.cpp", [f"-DCONV1D_EXT_EMU_NS={ns}"]),
              ("csrc/cuda/emu/cuda_emu_end.cpp", [])]  # last: ends the static shared memory section
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
    """torch.ops.cuda_emu_selftest: the emulator's own test kernels (csrc/cuda/emu/selftest_kernels.cu)."""
    units = [("csrc/cuda/emu/cuda_emu.cpp", ["-O2"]), ("csrc/cuda/emu/selftest_kernels.cu",
                                                   ["-x", "c++", "-include", "csrc/cuda/emu/cuda_emu.h"]),
             ("csrc/cuda/emu/cuda_emu_end.cpp", [])]
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


if __name__ == "__main__":  # python tests/emulated.py: build (or check) the emulated extension
    t0 = time.time()
    os.environ.setdefault("CONV1D_EXT_EMU_VERBOSE", "1")
    ops = emulated_ops()
    print(f"emulated ops ready: {ops} ({time.time() - t0:.1f}s)")
