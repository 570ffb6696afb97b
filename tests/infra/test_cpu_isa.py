"""The CPU kernels exist twice, built for AVX2+FMA and for the baseline instruction set, and one is chosen
when the library loads (bfloat16 has a third build, for CPUs with AVX512-BF16, whose dense kernels
multiply bfloat16 pairs); behind the specialised families (depthwise, dense_tiled) sit the generic direct
kernels, which CONV1D_EXT_CPU_KERNELS=direct makes every problem take. The suite in the main process runs
the build this machine picks with the specialised families; this file runs the op conformance tests, the
gradient checks and the build-info test again in child processes for the other combinations (baseline
ISA; direct kernels on each ISA), after confirming through conv1d_ext.build_info() that the switches took
effect there."""

import json
import os
import platform
import subprocess
import sys

import pytest
from repo_paths import TESTS

import conv1d_ext

# A child runs ~1 min on a quiet 2-core machine; a hung one must fail the test, not the CI job.
CHILD_TIMEOUT_S = 900


def cpu_has(*features):
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "") + " "
    except OSError:
        return None
    return all(f" {flag} " in flags for flag in features)


def cpu_has_avx2():
    return cpu_has("avx2", "fma", "f16c")


def cpu_has_avx512bf16():
    return cpu_has("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")


def test_cpu_isa_reports_the_build_in_use():
    isa = conv1d_ext.cpu_isa()
    assert isa in ("avx512bf16", "avx2", "default")
    forced = os.environ.get("CONV1D_EXT_CPU_ISA", "").lower()
    if forced in ("default", "avx2", "avx512bf16"):
        assert isa == forced
    elif cpu_has_avx2() is False:
        assert isa == "default"  # never AVX2 code on a CPU without it
    elif cpu_has_avx512bf16() and platform.machine() == "x86_64":
        assert isa == "avx512bf16"
    elif cpu_has_avx2() and platform.machine() == "x86_64":
        assert isa == "avx2"  # never AVX-512 code on a CPU without it


def child_build_info(env):
    code = "import json, conv1d_ext; print(json.dumps(conv1d_ext.build_info()))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.subprocess
@pytest.mark.parametrize("isa,kernels,files", [
    ("default", "auto", ["ops/test_conv1d_ops.py", "ops/test_conv1d_autograd.py", "infra/test_build.py"]),
    ("avx2", "auto", ["ops/test_conv1d_ops.py", "ops/test_conv1d_autograd.py", "infra/test_build.py"]),
    ("avx2", "direct", ["ops/test_conv1d_ops.py", "infra/test_build.py"]),
    ("default", "direct", ["ops/test_conv1d_ops.py", "infra/test_build.py"]),
], ids=["baseline_isa", "avx2_isa", "direct_kernels_avx2", "direct_kernels_baseline_isa"])
def test_other_kernel_builds_match_pytorch(isa, kernels, files):
    """The CPU tests of `files` in a child process with CONV1D_EXT_CPU_ISA=isa and
    CONV1D_EXT_CPU_KERNELS=kernels, at 0.3x the examples: op conformance for every combination, and the
    gradient checks on the baseline ISA and AVX2 too (the direct kernels' gradients are test_ops' backward
    ops). On a CPU with AVX512-BF16 the main process runs bfloat16 on that build, so "avx2_isa" checks the
    AVX2 build's bfloat16 here."""
    if (isa, kernels) == (conv1d_ext.cpu_isa(), conv1d_ext.build_info()["cpu_kernels"]):
        pytest.skip("this process already runs these kernels")
    if isa == "avx2" and not (cpu_has_avx2() and platform.machine() == "x86_64"):
        pytest.skip("this CPU cannot run the AVX2 kernels")
    env = dict(os.environ, CONV1D_EXT_CPU_ISA=isa, CONV1D_EXT_CPU_KERNELS=kernels,
               CONV1D_EXT_TEST_SCALE="0.3")
    info = child_build_info(env)
    assert (info["cpu_isa"], info["cpu_kernels"]) == (isa, kernels), info
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *(str(TESTS / f) for f in files),
         "-k", "cpu or build_info or poisoned", "-m", "not emulated and not cuda"],
        env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1], result.stdout[-2000:]
