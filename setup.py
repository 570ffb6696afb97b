"""Build of conv1d_ext._C: the CPU sources always, the CUDA sources when torch has CUDA and nvcc is found.

Environment switches:
  CONV1D_EXT_CUDA=1 / 0   force the CUDA sources in / out (default: auto).
  TORCH_CUDA_ARCH_LIST    architectures to build; default is the visible GPU's, else "8.0;9.0+PTX".
  CUDA_HOME               the CUDA toolkit prefix; if unset it is derived from the nvcc on PATH
                          (following a wrapper script that execs the real nvcc).
  MAX_JOBS                parallel compile jobs (ninja).
  CONV1D_EXT_SANITIZE     e.g. "address,undefined": a sanitizer build of the CPU sources (-fsanitize=...,
                          -fno-sanitize-recover=all, -O1, frame pointers); CUDA sources are left out (their
                          kernels are sanitized through the emulated build, tests/support/emulated.py).
                          docs/testing.md#sanitizers says how to load it (LD_PRELOAD of the sanitizer
                          runtime); every switch: docs/configuration.md.
"""
import glob
import os
import re
import shutil
import sys
import tomllib

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _real_nvcc_prefix():
    """Toolkit prefix of the nvcc on PATH; a wrapper script naming the real nvcc is followed."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    nvcc = os.path.realpath(nvcc)
    try:
        with open(nvcc, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"#!"):  # a script: find the nvcc binary it runs
        m = re.search(rb"(/\S+/bin/nvcc)\b", head)
        if not m:
            return None
        nvcc = os.path.realpath(m.group(1).decode())
    return os.path.dirname(os.path.dirname(nvcc))


# torch.utils.cpp_extension reads CUDA_HOME when imported, so settle it first.
if not os.environ.get("CUDA_HOME") and not os.environ.get("CUDA_PATH"):
    prefix = _real_nvcc_prefix()
    if prefix and os.path.isdir(os.path.join(prefix, "include")):
        os.environ["CUDA_HOME"] = prefix

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def sanitizer_flags(sanitize):
    """Compile and link flags of a sanitizer build (`sanitize`: -fsanitize's list, e.g.
    "address,undefined"); tests/support/emulated.py gives its test builds the same flags. Every finding
    aborts (-fno-sanitize-recover=all: UBSan would otherwise print and continue, and a test passes);
    -O1 keeps the build quick and the reports exact; frame pointers give whole stacks in the reports."""
    if not re.fullmatch(r"[a-z,-]+", sanitize):
        raise ValueError(f"CONV1D_EXT_SANITIZE: expected a list like address,undefined, got {sanitize!r}")
    compile_flags = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g1"]
    return compile_flags, [f"-fsanitize={sanitize}"]


SANITIZE = os.environ.get("CONV1D_EXT_SANITIZE", "")


def _want_cuda():
    switch = os.environ.get("CONV1D_EXT_CUDA", "auto").lower()
    if switch in ("0", "false", "no", "off"):
        return False
    if SANITIZE:  # nvcc's host code is not sanitized here; the emulated build covers the CUDA kernels
        if switch in ("1", "true", "yes", "on"):
            sys.exit("CONV1D_EXT_SANITIZE builds the CPU sources only: set CONV1D_EXT_CUDA=0")
        return False
    have = torch.version.cuda is not None and os.environ.get("CUDA_HOME") is not None \
        and shutil.which("nvcc") is not None
    if switch in ("1", "true", "yes", "on"):
        if not have:
            sys.exit("CONV1D_EXT_CUDA=1 but torch has no CUDA or nvcc/CUDA_HOME is not found")
        return True
    return have


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


cpu_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "core", "*.cpp")) +
                   glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))
cuda_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")) +
                    glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cpp")))

with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    CXX_STANDARD = tomllib.load(f)["tool"]["conv1d_ext"]["cxx-standard"]

# -fopenmp: at::parallel_for is inline (ATen/Parallel-inl.h); without it the kernels run on one thread.
cxx_flags = ["-O3", f"-std={CXX_STANDARD}", "-fvisibility=hidden", "-fopenmp"]
link_flags = ["-fopenmp"]
if SANITIZE:
    san_compile, san_link = sanitizer_flags(SANITIZE)
    cxx_flags = [f for f in cxx_flags if f != "-O3"] + san_compile
    link_flags += san_link
include_dirs = [os.path.join(ROOT, "csrc")]

if _want_cuda():
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
    nvcc_flags = ["-O3", f"-std={CXX_STANDARD}", "-lineinfo"]
    if os.environ.get("CONV1D_EXT_PTXAS_VERBOSE"):  # ptxas resource report: registers, spills
        nvcc_flags.append("-Xptxas=-v")
    ext = CUDAExtension(
        "conv1d_ext._C",
        cpu_sources + cuda_sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
        extra_link_args=link_flags,
        py_limited_api=False,
    )
else:
    ext = CppExtension(
        "conv1d_ext._C",
        cpu_sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=link_flags,
    )

class BuildExt(BuildExtension.with_options(use_ninja=True)):
    """build_ext with one persistent object directory (build/temp), whoever runs it (`pip install -e .`
    builds in a fresh temporary directory otherwise): ninja then recompiles only what changed."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "temp")


setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
