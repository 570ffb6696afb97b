"""The tensor-core kernels (csrc/cuda/tensor_core.cu: tensor_core_forward_kernel, tc_implicit_gemm_kernel
for the backward ops; helpers in tensor_core.cuh) under the CPU emulator: the emulator's mma / ldmatrix /
cp.async against the PTX ISA's layouts and semantics; conformance of the four ops against F.conv1d for
float16, bfloat16 and float32 as TF32; PyTorch's TF32 policy (torch.backends.cudnn.allow_tf32, read per
call); TF32's rounding mode; and faults injected into copies of the kernels that the checks must catch: a
wrong fragment lane mapping, a missing cp.async wait, a missing barrier between pipeline stages (forward)
and between K steps (backward GEMMs).

Tolerances are conv_ref's model: float16/bfloat16 as everywhere (float32 accumulation); float32 with
TF32 allowed within the float32 bound of the references computed from the TF32-rounded operands (see
conformance()). Measured on CASES against the unrounded float64 reference, the TF32 results stay within
PyTorch's usual TF32 tolerance (atol = rtol = 5e-3) for 99.5-100% of the elements; the rest are long
reductions (K > 120) of outputs up to ~60, off by at most 1.8e-2.

Run: python -m pytest tests/ops/test_tensor_core.py (the emulated tier, like infra/test_emulator.py)
"""
from __future__ import annotations

import dataclasses
import os

import emulated
import pytest
import torch
from conv_ref import (
    OUTPUT_NAMES,
    ConvCase,
    make_operands,
    reduction_lengths,
    reference,
    reference_mismatch,
    run_conv_ops,
)

os.environ.setdefault("CONV1D_EXT_POISON_OUTPUTS", "1")
pytestmark = pytest.mark.emulated

TC_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

# Forward problems for the tensor-core GEMM: several 64 x 64 tiles in M and N, K across several
# pipeline stages (K = 120, 210, 72: the weight rows 16-byte aligned or not), grouped, strided,
# dilated, padded, k = 1, tiny N (depthwise with a channel multiplier), a zero-sized batch, and
# non-contiguous operands.
CASES = [
    ConvCase(batch=2, groups=1, in_per_group=24, out_per_group=16, kernel_size=5, in_len=300, pad_left=2,
             pad_right=2, seed=4),
    ConvCase(batch=2, groups=1, in_per_group=70, out_per_group=80, kernel_size=3, in_len=90, pad_left=1,
             pad_right=1, seed=5),
    ConvCase(batch=3, groups=3, in_per_group=8, out_per_group=6, kernel_size=9, in_len=150, stride=3,
             dilation=2, pad_right=2, seed=6),
    ConvCase(batch=1, groups=2, in_per_group=5, out_per_group=70, kernel_size=1, in_len=70, seed=7),
    ConvCase(batch=2, groups=4, in_per_group=1, out_per_group=16, kernel_size=7, in_len=300, stride=2,
             pad_left=3, pad_right=3, seed=11),
    ConvCase(batch=0, groups=1, in_per_group=4, out_per_group=4, kernel_size=3, in_len=20, pad_left=1,
             pad_right=1, seed=8),
    ConvCase(batch=2, groups=2, in_per_group=12, out_per_group=9, kernel_size=4, in_len=77, pad_left=3,
             pad_right=1, input_layout="transposed", weight_layout="transposed", grad_layout="transposed",
             seed=9),
]


def tf32_rna(t):
    """float32 -> TF32 as cvt.rna.tf32.f32: round to nearest, ties away from zero, 10 mantissa bits."""
    bits = t.contiguous().view(torch.int32)
    finite = (bits & 0x7F800000) != 0x7F800000
    rounded = ((bits + 0x1000) & ~0x1FFF).view(torch.float32)
    return torch.where(finite, rounded, t)


def conformance(ops, cases, dtypes, tf32=True):
    """The four ops of `ops` against the float64 references within conv_ref's bound; one line per problem
    found. Float32 with TF32 allowed is held to the float32 bound against the references of its
    TF32-rounded (cvt.rna) GEMM operands: rounding the operands is the only thing TF32 may change, and
    conv_ref's looser TF32 bound (eps_acc = 2**-10) would let small errors such as a dropped term of a
    long reduction pass. grad_bias is a plain float32 sum of grad_output (no GEMM)."""
    run = run_conv_ops(ops)
    found = []
    with emulated.torch_threads(1), emulated.tf32_allowed(tf32):
        for c in cases:
            for dtype in dtypes:
                x, w, b, gy = make_operands(c, dtype, "cpu")
                try:
                    ours = run(c, x, w, b, gy)
                except RuntimeError as e:
                    found.append(f"[{dtype} {c}] raised: {str(e).splitlines()[0]}")
                    continue
                refs, mags = reference(c, x, w, b, gy), reference(c, x, w, b, gy, absolute=True)
                if tf32 and dtype == torch.float32:
                    xr, wr, gyr = tf32_rna(x), tf32_rna(w), tf32_rna(gy)
                    refs = reference(c, xr, wr, b, gyr)[:3] + refs[3:]
                    mags = reference(c, xr, wr, b, gyr, absolute=True)[:3] + mags[3:]
                for name, got, ref, mag, red in zip(OUTPUT_NAMES, ours, refs, mags, reduction_lengths(c),
                                                    strict=True):
                    problem = reference_mismatch(name, got, ref, mag, red, dtype)
                    if problem:
                        found.append(f"[{dtype} {c}] {problem}")
    return found


# ---------------------------------------------------------------------------------------------------
# The emulator's tensor-core instructions against the PTX ISA's fragment layouts, written out here as the
# ISA states them per element (a_i, b_i, c_i; groupID = lane >> 2, threadID_in_group = lane % 4), apart
# from the emulator's and tensor_core.cuh's per-register formulation.


def _mma_fragments_16816(lane):
    """(a, b, c): per fragment element i, its (row, col) in A (16x16), B (16x8), C (16x8)."""
    gid, tig = lane >> 2, lane % 4
    a = [(gid + (8 if i in (2, 3, 6, 7) else 0), tig * 2 + (i & 1) + (8 if i >= 4 else 0)) for i in range(8)]
    b = [(tig * 2 + (i & 1) + (8 if i >= 2 else 0), gid) for i in range(4)]
    c = [(gid + (8 if i >= 2 else 0), tig * 2 + (i & 1)) for i in range(4)]
    return a, b, c


def _mma_fragments_1688_tf32(lane):
    gid, tig = lane >> 2, lane % 4
    a = [(gid + (8 if i in (1, 3) else 0), tig + (4 if i >= 2 else 0)) for i in range(4)]
    b = [(tig + (4 if i == 1 else 0), gid) for i in range(2)]
    c = [(gid + (8 if i >= 2 else 0), tig * 2 + (i & 1)) for i in range(4)]
    return a, b, c


def _bits16(t):
    return t.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF


def _pack_halves(values):
    """32-bit registers from consecutive pairs of 16-bit elements, the lower-indexed in the low half."""
    bits = _bits16(values)
    return bits[0::2] | (bits[1::2] << 16)


def _as_int32(u):
    return torch.where(u >= 2**31, u - 2**32, u).to(torch.int32)


def _run_mma(st, kind, A, B, C, layout):
    regs, cs = [], []
    for lane in range(32):
        a, b, c = layout(lane)
        if kind == 2:
            fa = torch.stack([A[r, k] for r, k in a]).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
            fb = torch.stack([B[k, n] for k, n in b]).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        else:
            fa = _pack_halves(torch.stack([A[r, k] for r, k in a]))
            fb = _pack_halves(torch.stack([B[k, n] for k, n in b]))
        regs.append(torch.cat([fa, fb]))
        cs.append(torch.stack([C[r, n] for r, n in c]))
    d = st.mma(_as_int32(torch.stack(regs)), torch.stack(cs), kind)
    D = torch.empty(16, 8)
    for lane in range(32):
        for i, (r, n) in enumerate(layout(lane)[2]):
            D[r, n] = d[lane, i]
    return D


@pytest.fixture(scope="module")
def st():
    return emulated.selftest_ops()


@pytest.mark.parametrize("kind,dtype", [(0, torch.bfloat16), (1, torch.float16)])
def test_emulated_mma_m16n8k16_follows_the_ptx_layout(st, kind, dtype):
    g = torch.Generator().manual_seed(kind)
    A, B = torch.randn(16, 16, generator=g).to(dtype), torch.randn(16, 8, generator=g).to(dtype)
    C = torch.randn(16, 8, generator=g)
    expected = (A.double() @ B.double() + C.double()).float()
    torch.testing.assert_close(_run_mma(st, kind, A, B, C, _mma_fragments_16816), expected, rtol=1e-5, atol=1e-5)

    def swapped(lane):  # a plausible misreading: a1 and a2 (rows +8 vs cols +8) exchanged
        a, b, c = _mma_fragments_16816(lane)
        return a[:2] + a[4:6] + a[2:4] + a[6:], b, c

    assert not torch.allclose(_run_mma(st, kind, A, B, C, swapped), expected, rtol=1e-3, atol=1e-3)


def test_emulated_mma_tf32_follows_the_ptx_layout_and_ignores_the_low_bits(st):
    g = torch.Generator().manual_seed(2)
    A, B, C = torch.randn(16, 8, generator=g), torch.randn(8, 8, generator=g), torch.randn(16, 8, generator=g)
    truncate = lambda t: (t.view(torch.int32) & ~0x1FFF).view(torch.float32)  # noqa: E731
    got = _run_mma(st, 2, A, B, C, _mma_fragments_1688_tf32)
    torch.testing.assert_close(got, (truncate(A).double() @ truncate(B).double() + C.double()).float(),
                               rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, (A.double() @ B.double() + C.double()).float(), rtol=1e-6, atol=1e-6)


def test_emulated_ldmatrix_x4_follows_the_ptx_layout(st):
    g = torch.Generator().manual_seed(3)
    data = torch.randint(-(2**31), 2**31 - 1, (64, 4), generator=g, dtype=torch.int32)
    row_of_lane = torch.randperm(64, generator=g)[:32].to(torch.int32)
    got = st.ldmatrix(data, row_of_lane)
    # Lanes 8i..8i+7 address rows 0..7 of matrix i; lane l gets, for matrix i, row l/4, 32-bit word l%4.
    expected = torch.tensor([[data[row_of_lane[8 * i + lane // 4], lane % 4].item() for i in range(4)]
                             for lane in range(32)], dtype=torch.int32)
    assert torch.equal(got, expected)


def test_emulated_cp_async_lands_only_when_waited_for(st):
    x = torch.arange(1, 129, dtype=torch.float32)
    assert torch.isnan(st.cp_async(x, -1)).all()  # no wait: both copies still in flight (poison)
    first_only = st.cp_async(x, 1)  # all but the newest group
    assert torch.equal(first_only[0::2], x[0::2]) and torch.isnan(first_only[1::2]).all()
    both = st.cp_async(x, 0)
    odd_zero_filled = x[1::2].clone()
    odd_zero_filled[1::2] = 0  # odd threads copy with src-size 0
    assert torch.equal(both[0::2], x[0::2]) and torch.equal(both[1::2], odd_zero_filled)


# ---------------------------------------------------------------------------------------------------
# The project's tensor-core kernels


@pytest.fixture(scope="module")
def ops():
    ops = emulated.emulated_ops()
    assert ops._poison_outputs()
    return ops


TC_KERNELS = ("tensor_core_forward_kernel", "tc_implicit_gemm_kernel")


def tc_launches():
    """{kernel symbol: launches} of the tensor-core kernels since the last reset."""
    return {k: n for k, n in emulated.kernel_launches().items() if any(t in k for t in TC_KERNELS)}


@pytest.mark.parametrize("family", [None, "tensor_core"])
def test_tensor_core_ops_conform(ops, family):
    emulated.kernel_launches(reset=True)
    with emulated.cuda_family(family):
        problems = conformance(ops, CASES, TC_DTYPES)
    assert not problems, "\n".join(problems[:10])
    launched = tc_launches()
    for name in ("float", "c10::Half", "c10::BFloat16"):
        assert any(f"tensor_core_forward_kernel<{name}>" in k for k in launched), launched
        for problem in ("BackwardInputProblem", "BackwardWeightProblem"):
            assert any(f"{problem}<{name}>" in k and "tc_implicit_gemm_kernel" in k for k in launched), launched


def test_allow_tf32_is_read_per_call(ops):
    """allow_tf32 False: float32 is true float32 (the FMA GEMM, bit-equal to the forced dense family);
    True: TF32 tensor cores (a different, TF32-accurate result). float64 never uses tensor cores."""
    case = CASES[1]
    x, w, b, _ = make_operands(case, torch.float32, "cpu")
    with emulated.torch_threads(1):
        emulated.kernel_launches(reset=True)
        with emulated.tf32_allowed(False):
            strict = ops.conv1d(x, w, b, *case.conv_args)
            with emulated.cuda_family("dense"):
                dense = ops.conv1d(x, w, b, *case.conv_args)
            with emulated.cuda_family("tensor_core"):
                forced = ops.conv1d(x, w, b, *case.conv_args)
        assert not tc_launches()
        assert torch.equal(strict, dense) and torch.equal(forced, dense)
        with emulated.tf32_allowed(True):
            tf32 = ops.conv1d(x, w, b, *case.conv_args)
            xd, wd, bd, _ = make_operands(case, torch.float64, "cpu")
            ops.conv1d(xd, wd, bd, *case.conv_args)
        assert list(tc_launches().values()) == [1]  # the float32 call only
    assert not torch.equal(tf32, strict)


def test_tf32_rounds_to_nearest_ties_away(ops):
    """The TF32 result equals the convolution of the cvt.rna-rounded operands up to float32 accumulation
    (conv_ref's float32 bound). Truncating the operands instead (what the mma alone does) is off by
    ~2^-11 per product and fails this bound -- checked on the same data, so the check can fail."""
    case = dataclasses.replace(CASES[1], bias=False)
    x, w, _, gy = make_operands(case, torch.float32, "cpu")
    with emulated.torch_threads(1), emulated.tf32_allowed(True), emulated.cuda_family("tensor_core"):
        y = ops.conv1d(x, w, None, *case.conv_args)
    red = reduction_lengths(case)[0]

    def mismatch(xr, wr):
        ref, mag = reference(case, xr, wr, None, gy)[0], reference(case, xr, wr, None, gy, absolute=True)[0]
        return reference_mismatch("output", y, ref, mag, red, torch.float32)

    assert mismatch(tf32_rna(x), tf32_rna(w)) is None
    truncate = lambda t: (t.view(torch.int32) & ~0x1FFF).view(torch.float32)  # noqa: E731
    assert mismatch(truncate(x), truncate(w)) is not None


# (name, file, text, replacement)
FAULTS = [
    # The accumulator fragment's row read as lane % 8 instead of lane / 4 (PTX: row = groupID).
    ("tc_wrong_fragment_lane", "csrc/cuda/tensor_core.cuh",
     "return (lane >> 2) + 8 * (r >> 1);", "return (lane & 7) + 8 * (r >> 1);"),
    # The stage is read before this thread's cp.async copies of it have landed.
    ("tc_missing_cp_async_wait", "csrc/cuda/tensor_core.cu",
     "      cp_async_wait<kTcStages - 2>();\n      __syncthreads();", "      __syncthreads();"),
    # No barrier between the stages: other warps' copies of stage kt may not have landed (RAW), and the
    # slot refilled next may still be read by a warp behind (WAR).
    ("tc_missing_stage_barrier", "csrc/cuda/tensor_core.cu",
     "      cp_async_wait<kTcStages - 2>();\n      __syncthreads();", "      cp_async_wait<kTcStages - 2>();"),
    # The backward GEMMs' one barrier per K step (register-staged double buffer, the K loop they share with
    # the FMA core): the next stage is stored while other warps may still read the buffer, and read before
    # all of it is stored.
    ("tc_gemm_missing_step_barrier", "csrc/cuda/implicit_gemm.cuh",
     "if (has_next) store_step(buf ^ 1);\n    __syncthreads();\n", "if (has_next) store_step(buf ^ 1);\n"),
]


@pytest.mark.parametrize("name,path,old,new", FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_tensor_core_fault_is_caught(ops, name, path, old, new):
    """Caught in float32 (TF32), bfloat16 and float16 separately, while the clean build passes the same
    check (test_tensor_core_forward_conforms)."""
    faulty = emulated.faulty_ops(name, path, old, new)
    with emulated.cuda_family("tensor_core"):
        for dtype in TC_DTYPES:
            assert conformance(faulty, CASES, (dtype,)), f"fault {name} not caught in {dtype}"
