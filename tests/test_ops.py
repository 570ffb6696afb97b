"""Op-level conformance: each of the four conv1d_ext ops, on each backend (CPU kernels, CUDA kernels,
CUDA kernels under the CPU emulator) and each dtype, against PyTorch's conv1d and its autograd in float64
on random problems (stride, dilation, dense/grouped/depthwise/channel-multiplier groups, kernel size,
asymmetric padding, lengths down to the minimum, empty batch, non-contiguous/transposed/expanded
operands)."""

import contextlib

import pytest
import torch
from conv_ref import (
    FLOAT_DTYPES,
    ConvCase,
    assert_close_to_reference,
    conv_cases,
    examples,
    make_operands,
    reduction_lengths,
    reference,
)
from hypothesis import example, given, settings

# Examples per (backend, dtype). The emulator runs every GPU thread of a launch on the CPU: fewer, smaller.
EXAMPLES = {"cpu": 150, "cuda": 150, "emulated": 50}


@contextlib.contextmanager
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def run_ops(backend, case, x, w, b, gy):
    ops = backend.ops
    return (ops.conv1d(x, w, b, *case.conv_args),
            ops.conv1d_backward_input(gy, w, case.in_len, *case.conv_args),
            ops.conv1d_backward_weight(gy, x, case.kernel_size, *case.conv_args),
            ops.conv1d_backward_bias(gy))


def check_case(backend, dtype, case, tf32=False):
    x, w, b, gy = make_operands(case, dtype, backend.device)
    originals = [t.clone() for t in (x, w, b, gy) if t is not None]
    ours = run_ops(backend, case, x, w, b, gy)
    refs = reference(case, x, w, b, gy)
    magnitudes = reference(case, x, w, b, gy, absolute=True)
    context = f"[{backend.name} {dtype}] {case}"
    for name, got, ref, mag, red in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, refs,
                                        magnitudes, reduction_lengths(case), strict=False):
        assert got.device.type == torch.device(backend.device).type, f"{name} on {got.device}. {context}"
        assert_close_to_reference(name, got, ref, mag, red, dtype, tf32=tf32, context=context)
    for before, after in zip(originals, [t for t in (x, w, b, gy) if t is not None], strict=False):
        assert torch.equal(before, after), f"an op modified its input. {context}"


# Hand-picked problems every run sees, besides the random ones: minimum lengths, empty batch, length-0
# input covered by padding, big reductions, 'same' with an even kernel, strided depthwise.
FIXED_CASES = [
    ConvCase(2, 1, 3, 4, 3, 1, 1, 1, 1, 8, True),
    ConvCase(0, 2, 2, 3, 3, 2, 1, 1, 0, 5, True),
    ConvCase(2, 1, 3, 2, 4, 1, 2, 4, 3, 0, True),  # in_len 0, output made of padding only
    ConvCase(1, 4, 1, 1, 5, 2, 3, 0, 0, 13, False),  # depthwise, strided, dilated, minimum-ish length
    ConvCase(3, 3, 1, 2, 4, 1, 1, 1, 2, 17, True, "transposed", "expanded", "strided"),  # 'same', even k
    ConvCase(2, 1, 33, 17, 9, 1, 1, 4, 4, 70, True),  # long reductions, tiles with tails
    ConvCase(2, 16, 1, 1, 4, 1, 1, 3, 0, 67, True),  # causal depthwise k=4
    ConvCase(1, 1, 1, 1, 1, 4, 1, 0, 0, 1, False),  # smallest
    # long rows: several CPU length blocks (512 positions) and GPU tiles along the length, with tails
    ConvCase(2, 1, 8, 16, 3, 1, 1, 1, 1, 1100, True),
    ConvCase(1, 2, 3, 5, 5, 2, 2, 1, 3, 2077, True, "strided", "contiguous", "transposed"),
    ConvCase(2, 24, 1, 1, 3, 1, 2, 1, 0, 1500, True),  # depthwise, causal padding
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_ops_match_pytorch(backend, dtype):
    cases = conv_cases(small=backend.small)

    @settings(max_examples=examples(EXAMPLES[backend.name]))
    @given(case=cases)
    def check(case):
        with no_tf32():
            check_case(backend, dtype, case)

    for case in FIXED_CASES:
        check = example(case=case)(check)
    check()


def test_cuda_float32_with_tf32(backend):
    """CUDA float32 may use TF32 exactly when torch.backends.cudnn.allow_tf32 allows it (PyTorch's
    contract for convolutions): results then stay within TF32 tolerances."""
    if backend.name == "cpu":
        pytest.skip("TF32 is a CUDA notion")
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        @settings(max_examples=examples(40 if backend.name == "cuda" else 8))
        @given(case=conv_cases(small=backend.small))
        def check(case):
            check_case(backend, torch.float32, case, tf32=True)

        check()
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def test_ops_are_deterministic_and_thread_count_independent(backend):
    """The same call twice gives bit-identical results (no float atomics, no uninitialised scratch), and
    on the CPU other work partitions (1 thread, 3 threads on 2 cores) stay correct too."""
    thread_counts = [1, 3] if backend.name == "cpu" else [None]
    saved_threads = torch.get_num_threads()

    @settings(max_examples=examples(25))
    @given(case=conv_cases(small=backend.small))
    def check(case):
        dtype = torch.float32
        x, w, b, gy = make_operands(case, dtype, backend.device)
        with no_tf32():
            first = run_ops(backend, case, x, w, b, gy)
            second = run_ops(backend, case, x, w, b, gy)
        names = ("output", "grad_input", "grad_weight", "grad_bias")
        for name, a, c in zip(names, first, second, strict=True):
            assert torch.equal(a, c), f"{name} differs between two identical calls. {case}"
        for threads in thread_counts:
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                with no_tf32():
                    check_case(backend, dtype, case)
            finally:
                torch.set_num_threads(saved_threads)

    check()
