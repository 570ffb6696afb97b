"""Build and load copies of the CPU kernels of csrc/cpu/, clean or with one planted bug, as ops under a
namespace of their own, for the fault-injection test (infra/test_cpu_faults.py):

    cpu_ops(name, isa, fault=None) -> torch.ops.conv1d_ext_cpu_fault_<name>: conv1d and its three
        backward ops on the CPU kernels of one instruction set ("default" or "avx2"), compiled from a
        copy of csrc/ with `fault` applied (a Fault; None: the unmodified sources, the control).

Only csrc/cpu/kernels_<isa>.cpp (every CPU kernel of that ISA) is compiled from the copy; the
registration (tests/cpu_faults/ops.cpp: the real schemas and op layer) is shared by every build of an
ISA. g++ and torch's headers, no OpenMP (the kernels' parallel loops run on one thread); objects and
libraries are cached in .emu_build/ like the emulator's (tests/support/emulated.py), keyed by the preprocessed
source, so only a changed kernel recompiles: ~10 s per kernels file on one core.
"""
from __future__ import annotations

import dataclasses
import os
import platform

import emulated

CPU_FAULTS_DIR = emulated.ROOT / "tests" / "cpu_faults"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fault:
    """`old` replaced by `new` (first occurrence) in `path`, relative to the repository root."""

    path: str
    old: str
    new: str


def cpu_has_avx2() -> bool:
    if platform.machine() != "x86_64":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return all(f" {flag}" in flags for flag in ("avx2", "fma", "f16c"))


def cpu_library(name: str, isa: str, fault: Fault | None = None):
    """(shared library, op namespace) of cpu_ops(name, isa, fault); built, not loaded."""
    if isa not in ("default", "avx2"):
        raise ValueError(f"isa must be 'default' or 'avx2', got {isa!r}")
    ns = f"conv1d_ext_cpu_fault_{name}"
    tree = emulated.BUILD / "cpu_faults" / name
    if fault is None:
        emulated.fault_tree(tree)
    else:
        emulated.fault_tree(tree, fault.path, fault.old, fault.new)
    units = [(f"csrc/cpu/kernels_{isa}.cpp", []),
             (str(CPU_FAULTS_DIR / "ops.cpp"), [f"-DC1D_FAULT_ISA={isa.upper()}"]),
             (str(CPU_FAULTS_DIR / "namespace.cpp"), [f"-DCONV1D_EXT_FAULT_NS={ns}"])]
    flags = emulated.torch_extension_flags(os.environ.get("CONV1D_EXT_CPU_FAULT_OPT", "-O2"))
    return emulated._build(tree, units, f"cpu_fault_{name}", base_flags=flags), ns


def cpu_ops(name: str, isa: str, fault: Fault | None = None):
    """The four ops on the `isa` CPU kernels of a copy of csrc/ (with `fault` planted)."""
    return emulated._load(*cpu_library(name, isa, fault))
