"""Proof that the op conformance tests catch bugs in the CPU kernels: bugs a kernel author could plausibly
write are planted into copies of csrc/cpu/, each copy is built under an op namespace of its own
(tests/support/cpu_faults.py), and the cases ops/test_conv1d_ops.py runs on the CPU backend
(conv_ref.FIXED_CASES and the seeded random draws, against F.conv1d in float64 within conv_ref's bound)
must fail on every one, while the unmodified copy, built the same way, passes them. As
tests/infra/test_emulator.py does for the CUDA kernels.

If a kernel's text changes so that a fault no longer applies, the build fails with "occurs 0 times":
update the fault's text in PLANTED_BUGS.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from conv_ref import FIXED_CASES, conformance_problems, conv_cases, drawn_examples, examples, run_conv_ops
from cpu_faults import Fault, cpu_has_avx2, cpu_ops

pytestmark = pytest.mark.faults

# The ISA the ISA-independent faults are built for: the one the main test process runs here.
ISA = "avx2" if cpu_has_avx2() else "default"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlantedBug:
    name: str
    fault: Fault
    dtypes: tuple  # each must catch it on its own
    isa: str = ISA


PLANTED_BUGS = [
    # A k > 8 tap-block edge in the depthwise backward-weight: its 8-tap blocks address their taps
    # without the block's first tap k0, so every block after the first (k >= 9) sums the first block's
    # taps again. k <= 8 (one block) is unaffected.
    PlantedBug(name="depthwise_wgrad_tap_block_offset", dtypes=(torch.float32, torch.bfloat16), fault=Fault(
        path="csrc/cpu/depthwise.h",
        old="for (int64_t k = 0; k < nk; ++k) src[k] = buf + offset[k0 + k];",
        new="for (int64_t k = 0; k < nk; ++k) src[k] = buf + offset[k];")),
    # A wrong second channel-multiplier tile in the depthwise forward: the tile's filters are read
    # without the tile offset j0, so output channels 4.. of each input channel use the filters of 0..
    # (multipliers 5-8: those above 8 take the dense forward, those up to 4 fit one tile).
    PlantedBug(name="depthwise_forward_second_tile_filters", dtypes=(torch.float32, torch.bfloat16), fault=Fault(
        path="csrc/cpu/depthwise.h",
        old="w[j * K + k] = static_cast<acc>(weight[oc * K + k]);",
        new="w[j * K + k] = static_cast<acc>(weight[(oc - j0) * K + k]);")),
    # A bfloat16 store that truncates instead of rounding to nearest even (the AVX2 vector conversion of
    # kernel_common.h's store_acc, which convert_from_acc and every vectorised 16-bit store use): off by up
    # to one ulp, where rounding is off by at most half.
    PlantedBug(name="bf16_store_truncates", dtypes=(torch.bfloat16,), isa="avx2", fault=Fault(
        path="csrc/cpu/kernel_common.h",
        old="_mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16)",
        new="_mm256_srli_epi32(bits, 16)")),
    # The dense forward / backward-input engine's reduction chunks overwrite instead of accumulating: the
    # shared chunk step of both schedules (convolve_chunk) starts every chunk from zero, so reductions
    # longer than one chunk (in_per_group * kernel_size > 192: the 33-channel k=9 case) keep only the last.
    PlantedBug(name="dense_chunk_overwrites", dtypes=(torch.float32, torch.bfloat16), fault=Fault(
        path="csrc/cpu/dense/conv_engine.h",
        old="steps, r0 > 0,",
        new="steps, false,")),
    # The dense stage copy-out (store_stage_rows, both schedules) adds the group's first bias to every
    # output channel.
    PlantedBug(name="dense_bias_first_channel", dtypes=(torch.float32,), fault=Fault(
        path="csrc/cpu/dense/conv_engine.h",
        old="const acc b = bias ? static_cast<acc>(bias[c]) : acc(0);",
        new="const acc b = bias ? static_cast<acc>(bias[0]) : acc(0);")),
    # The dense backward-weight block loop (wgrad_block, both schedules) adds every grad_output panel of
    # out channels into the first panel's place: groups of more than one panel (17 out channels) go wrong.
    PlantedBug(name="dense_wgrad_panels_overlap", dtypes=(torch.float32, torch.bfloat16), fault=Fault(
        path="csrc/cpu/dense/wgrad.h",
        old="acc* tile = out + (col0 - col_begin) * out_stride + (oc0 - oc_begin);",
        new="acc* tile = out + (col0 - col_begin) * out_stride;")),
]


def conformance_cases(dtype):
    """What test_ops.test_ops_match_pytorch runs on the CPU backend in `dtype`: the fixed cases, then the
    random draws of its seed."""
    drawn = drawn_examples(conv_cases(), examples(150), "test_ops_match_pytorch", "cpu", str(dtype))
    return FIXED_CASES + drawn


def first_failure(ops, dtype):
    run = run_conv_ops(ops)
    for case in conformance_cases(dtype):
        problems = conformance_problems(run, case, dtype)
        if problems:
            return f"{case}: {problems[0]}"
    return None


def require_isa(isa):
    if isa == "avx2" and not cpu_has_avx2():
        pytest.skip("this CPU cannot run the AVX2 kernels")


@pytest.mark.parametrize("isa", sorted({bug.isa for bug in PLANTED_BUGS}))
def test_unmodified_copy_passes(isa):
    """The control: the same build of the unmodified sources passes the cases the faults must fail."""
    require_isa(isa)
    ops = cpu_ops(f"clean_{isa}", isa)
    for dtype in sorted({d for bug in PLANTED_BUGS if bug.isa == isa for d in bug.dtypes}, key=str):
        failure = first_failure(ops, dtype)
        assert failure is None, f"the unmodified {isa} kernels fail in {dtype}: {failure}"


@pytest.mark.parametrize("bug", PLANTED_BUGS, ids=[bug.name for bug in PLANTED_BUGS])
def test_planted_bug_is_caught(bug):
    require_isa(bug.isa)
    ops = cpu_ops(bug.name, bug.isa, bug.fault)
    for dtype in bug.dtypes:
        assert first_failure(ops, dtype) is not None, \
            f"planted bug {bug.name} ({bug.isa}) passes the conformance cases in {dtype}"
