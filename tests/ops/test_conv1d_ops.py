"""Op-level conformance: each of the four conv1d_ext ops, on each backend (CPU kernels, CUDA kernels,
CUDA kernels under the CPU emulator) and each dtype, against PyTorch's conv1d and its autograd in float64
on random problems (stride, dilation, dense/grouped/depthwise/channel-multiplier groups, kernel size,
asymmetric padding, lengths from the minimum to long rows, empty batch, non-contiguous/transposed/
expanded operands) and on the hand-picked conv_ref.FIXED_CASES.

(No TF32 test: no kernel uses TF32 today, so such a test could only fail where the strict float32 test
fails too. See conv_ref.py's docstring for the test that comes back with a tensor-core path.)"""

import pytest
import torch
from conv_ref import (
    FIXED_CASES,
    FLOAT_DTYPES,
    OUTPUT_NAMES,
    ConvCase,
    conformance_problems,
    conv_cases,
    examples,
    make_operands,
    run_conv_ops,
    seeded,
)
from hypothesis import example, given, settings


def examples_for(backend):
    """Examples per (backend, dtype). The emulator runs every GPU thread of a launch on the CPU: fewer,
    and fewer again with a family forced (infra/test_emulator.py runs its fixed cases in every family too)."""
    if backend.kind == "emulated":
        return examples(50 if backend.cuda_family is None else 20)
    return examples(150)


def check_case(backend, dtype, case):
    problems = conformance_problems(backend.run_ops(), case, dtype, backend.device)
    assert not problems, f"[{backend.name} {dtype}] {case}\n" + "\n".join(problems)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_ops_match_pytorch(backend, dtype, strict_fp32):
    @settings(max_examples=examples_for(backend))
    @given(case=conv_cases())
    def check(case):
        check_case(backend, dtype, case)

    for case in FIXED_CASES:
        check = example(case=case)(check)
    seeded(check, "test_ops_match_pytorch", backend.name, str(dtype))()


def test_ops_are_deterministic_and_thread_count_independent(backend, strict_fp32):
    """The same call twice gives bit-identical results (no float atomics, no uninitialised scratch), and
    on the CPU other work partitions (1 thread, 3 threads on 2 cores) stay correct too."""
    thread_counts = [1, 3] if backend.kind == "cpu" else [None]
    saved_threads = torch.get_num_threads()
    run = backend.run_ops()

    @settings(max_examples=examples(25))
    @given(case=conv_cases())
    def check(case):
        dtype = torch.float32
        x, w, b, gy = make_operands(case, dtype, backend.device)
        first = run(case, x, w, b, gy)
        second = run(case, x, w, b, gy)
        for name, a, c in zip(OUTPUT_NAMES, first, second, strict=True):
            assert torch.equal(a, c), f"{name} differs between two identical calls. {case}"
        for threads in thread_counts:
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                check_case(backend, dtype, case)
            finally:
                torch.set_num_threads(saved_threads)

    seeded(check, "test_ops_are_deterministic", backend.name)()


# Problems that take the CPU's wide schedules (csrc/cpu/dense/wide_schedule.h, dense/wgrad.h): few
# positions per row and a group's packed weights of one destination phase over kWideWeightBudget = 512 KiB
# (in the accumulation type: float for float32/16-bit types, double for float64), and a backward-weight
# whose batch × out_len <= 8192.
WIDE_CASES = [
    # k4 s2: forward 254·4·260 floats = 1.06 MB; backward-input 260·2 taps·256 = 532 KB per phase
    ConvCase(batch=2, groups=1, in_per_group=254, out_per_group=260, kernel_size=4,
             in_len=37, stride=2, dilation=1, pad_left=1, pad_right=2, bias=True),
    # stride 1, no bias, odd lengths, batch 1: forward 130·5·260 = 676 KB, backward-input 257·5·132 = 678 KB
    ConvCase(batch=1, groups=1, in_per_group=130, out_per_group=257, kernel_size=5,
             in_len=53, stride=1, dilation=1, pad_left=2, pad_right=1, bias=False),
    # grouped, dilated, k8 s4: per group forward 260·8·256 = 2.1 MB, backward-input 256·2·260 = 532 KB
    ConvCase(batch=3, groups=2, in_per_group=260, out_per_group=256, kernel_size=8,
             in_len=70, stride=4, dilation=2, pad_left=3, pad_right=0, bias=True),
    # vocoder-like k16 s8 (the transposed convolution's forward is backward-input): 2 taps per phase,
    # 272·2·264 = 574 KB
    ConvCase(batch=2, groups=1, in_per_group=264, out_per_group=272, kernel_size=16,
             in_len=131, stride=8, dilation=1, pad_left=4, pad_right=4, bias=True),
    # k9 stride 1: a gap of 8 coordinates per batch wastes more than padding rows of 40 / 48 positions to
    # whole tiles, so each batch is its own block: forward 64·9·260 = 599 KB, backward-input 260·9·64
    ConvCase(batch=2, groups=1, in_per_group=64, out_per_group=260, kernel_size=9,
             in_len=48, stride=1, dilation=1, pad_left=0, pad_right=0, bias=True),
    # backward-weight over positions beyond one 512-position block (batch 1, out_len 601)
    ConvCase(batch=1, groups=1, in_per_group=8, out_per_group=20, kernel_size=3,
             in_len=1203, stride=2, dilation=1, pad_left=1, pad_right=0, bias=True),
]


def wide_case_id(c):
    return f"{c.batch}x{c.in_channels}to{c.out_channels}k{c.kernel_size}s{c.stride}g{c.groups}"


@pytest.mark.parametrize("case", WIDE_CASES, ids=wide_case_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16],
                         ids=lambda d: str(d).removeprefix("torch."))
def test_wide_schedules_match_pytorch_and_are_thread_count_independent(case, dtype):
    run = torch.ops.conv1d_ext
    problems = conformance_problems(run_conv_ops(run), case, dtype)
    assert not problems, f"[cpu {dtype}] {case}\n" + "\n".join(problems)
    x, w, b, gy = make_operands(case, dtype, "cpu")
    saved = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(run_conv_ops(run)(case, x, w, b, gy))
    finally:
        torch.set_num_threads(saved)
    for name, a, c in zip(OUTPUT_NAMES, *results, strict=True):
        assert torch.equal(a.view(torch.uint8), c.view(torch.uint8)), f"{name}: 1 vs 3 threads differ. {case}"
