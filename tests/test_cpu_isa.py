"""The CPU kernels exist twice, built for AVX2+FMA and for the baseline instruction set, and one is chosen
when the library loads. The suite in the main process runs the build this machine picks; this file runs
the op-level conformance tests again in a child process with CONV1D_EXT_CPU_ISA=default, so the baseline
build (what a CPU without AVX2 gets) is checked against PyTorch too."""

import os
import platform
import subprocess
import sys

import pytest
from conftest import TESTS_DIR

import conv1d_ext


def cpu_has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return None
    return all(f" {flag}" in flags for flag in ("avx2", "fma", "f16c"))


def test_cpu_isa_reports_the_build_in_use():
    isa = conv1d_ext.cpu_isa()
    assert isa in ("avx2", "default")
    if os.environ.get("CONV1D_EXT_CPU_ISA", "").lower() == "default":
        assert isa == "default"
    elif cpu_has_avx2() is False:
        assert isa == "default"  # never AVX2 code on a CPU without it
    elif cpu_has_avx2() and platform.machine() == "x86_64":
        assert isa == "avx2"


@pytest.mark.subprocess
def test_baseline_isa_kernels_match_pytorch():
    if conv1d_ext.cpu_isa() == "default":
        pytest.skip("this process already runs the baseline kernels")
    env = dict(os.environ, CONV1D_EXT_CPU_ISA="default", CONV1D_EXT_TEST_SCALE="0.3")
    code = "import torch, conv1d_ext; assert conv1d_ext.cpu_isa() == 'default', conv1d_ext.cpu_isa()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(TESTS_DIR / "test_ops.py"), "-k", "cpu"],
        env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


@pytest.mark.subprocess
def test_generic_direct_kernels_match_pytorch():
    """The generic direct kernels are the fallback behind the specialised families (depthwise,
    dense_tiled), so the main process rarely reaches them; CONV1D_EXT_CPU_KERNELS=direct routes every
    problem there, and the op conformance tests run again in a child process."""
    env = dict(os.environ, CONV1D_EXT_CPU_KERNELS="direct", CONV1D_EXT_TEST_SCALE="0.3")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(TESTS_DIR / "test_ops.py"), "-k", "cpu"],
        env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
