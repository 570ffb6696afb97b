"""The sanitizer tier (`make test-sanitize`, docs/testing.md#sanitizers): the extension and the emulated CUDA kernels
built with AddressSanitizer + UBSan (CONV1D_EXT_SANITIZE=address,undefined), the quick conformance tier
run under them. This file holds what only that tier runs; outside it (no CONV1D_EXT_SANITIZE) it skips.

- Every emulated CUDA kernel under the sanitizers: the emulator's edge cases (multi-tile GEMMs, rows
  longer than a depthwise tile, split-K, tap groups, empty batch) in every dtype with dispatch's choice
  and each family forced, against F.conv1d, every kernel of csrc/cuda launched.
- Proof that the tier catches an out-of-bounds access: a read of one element past an input row is
  planted into a copy of a CPU kernel and of a CUDA kernel (emulated); each copy is built with the tier's
  sanitizers, a tiny problem that reaches the planted read runs in a child process with the sanitizer
  runtime, and the child must die with ASan's heap-buffer-overflow report pointing at the planted file,
  while the unmodified copies, built and run the same way, finish cleanly. (ASan sees an access outside
  an allocation: one past a row that is not the tensor's last lands in the next row, unseen. The
  problems have their last row end the tensor; the conformance comparisons catch the rest.)
"""
from __future__ import annotations

import subprocess
import sys

import emulated
import pytest
from causal_ref import check_causal_ops_quick
from cpu_faults import Fault, cpu_library

pytestmark = [pytest.mark.sanitize,
              pytest.mark.skipif("address" not in emulated.sanitizer(),
                                 reason="the sanitizer tier runs this file: make test-sanitize")]

# A child is a Python start plus one tiny op: seconds, but minutes on a loaded machine under ASan.
CHILD_TIMEOUT_S = 300

# The kernels read one element past the input row where the row ends (when pad_right >= 1).
CPU_OOB_READ = Fault(  # the depthwise forward stages its row with a length one too long
    path="csrc/cpu/depthwise.h",
    old="pad_row_phases(input + in_row * p.in_len, p.in_len,",
    new="pad_row_phases(input + in_row * p.in_len, p.in_len + 1,")
CUDA_OOB_READ = Fault(  # the implicit-GEMM forward's bound check lets position in_len through
    path="csrc/cuda/gemm_problems.cuh",
    old="(pos >= 0 && pos < p.in_len) ? to_acc(input[",
    new="(pos >= 0 && pos <= p.in_len) ? to_acc(input[")

# The child: load the library, run one conv1d (x, weight, groups as given) with padding 1 on both sides,
# and compare with F.conv1d (so a clean run is also a correct one).
CHILD = """
import sys, torch, torch.nn.functional as F
lib, ns, channels, out_channels, groups = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
torch.ops.load_library(lib)
x = torch.randn(1, channels, 16, dtype=torch.float64)
w = torch.randn(out_channels, channels // groups, 3, dtype=torch.float64)
y = getattr(torch.ops, ns).conv1d(x, w, None, 1, 1, 1, 1, groups)
torch.testing.assert_close(y, F.conv1d(x, w, padding=1, groups=groups))
print("clean run")
"""
# channels, out_channels, groups: the CPU dispatch takes its depthwise family; a channel multiplier of 2, as
# float/double with one output channel per input channel at stride 1 read the input row directly (no
# staged row for the planted length to overrun)
DEPTHWISE = (2, 4, 2)
DENSE = (2, 3, 1)  # the CUDA dispatch takes the implicit-GEMM forward


def run_child(lib, ns, problem):
    return subprocess.run([sys.executable, "-c", CHILD, str(lib), ns, *map(str, problem)],
                          env=emulated.sanitizer_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)


def assert_clean(result):
    assert result.returncode == 0 and "clean run" in result.stdout, result.stdout + result.stderr[-6000:]


def assert_caught(result, fault, kernel):
    """The child died with ASan's report of a read past an allocation, made in `kernel` (a function of
    the planted file, as the report's stack names it)."""
    report = result.stderr
    assert result.returncode != 0, f"the planted read in {fault.path} ran to the end:\n{result.stdout}{report[-3000:]}"
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in report and "READ of size" in report, report[-6000:]
    assert kernel in report, f"the report's stack does not name {kernel}:\n{report[-6000:]}"


def test_planted_out_of_bounds_read_in_a_cpu_kernel_is_caught():
    # The baseline ISA build: one compile of the kernels per copy, and it runs on every x86-64 CPU.
    assert_clean(run_child(*cpu_library("sanitize_clean", "default"), DEPTHWISE))
    assert_caught(run_child(*cpu_library("sanitize_oob_read", "default", CPU_OOB_READ), DEPTHWISE), CPU_OOB_READ,
                  "depthwise_forward")


def test_planted_out_of_bounds_read_in_an_emulated_cuda_kernel_is_caught():
    assert_clean(run_child(emulated.emulated_library(), emulated.DEFAULT_NS, DENSE))
    fault = CUDA_OOB_READ
    assert_caught(run_child(*emulated.faulty_library("sanitize_oob_read", fault.path, fault.old, fault.new), DENSE),
                  fault, "ForwardProblem")


@pytest.mark.emulated
def test_every_emulated_cuda_kernel_runs_clean_under_the_sanitizers():
    ops = emulated.emulated_ops()
    emulated.kernel_launches(reset=True)
    failures = emulated.conformance_failures(ops, emulated.EDGE_CASES, dtypes=emulated.DTYPES,
                                             families=emulated.FAMILIES)
    assert not failures, "\n".join(failures[:20])
    check_causal_ops_quick(ops)
    assert emulated.unlaunched_kernels(emulated.kernel_launches()) == []
