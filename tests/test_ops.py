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
    conformance_problems,
    conv_cases,
    examples,
    make_operands,
    seeded,
)
from hypothesis import example, given, settings


def examples_for(backend):
    """Examples per (backend, dtype). The emulator runs every GPU thread of a launch on the CPU: fewer,
    and fewer again with a family forced (test_emulator.py runs its fixed cases in every family too)."""
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
