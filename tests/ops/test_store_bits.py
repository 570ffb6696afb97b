"""The 16-bit stores of the CPU kernels, bit for bit: every family rounds a float result to bfloat16 /
float16 the way PyTorch's scalar conversion does (c10::BFloat16 / c10::Half: round to nearest even,
overflow to inf, bfloat16 NaN as 0x7fc0, float16 NaN as 0x7e00 with its sign), the vectorised store
(kernel_common.h's store_acc) as the scalar one. torch's own vectorised tensor conversion writes a
bfloat16 NaN as 0xffff, hence the reference canonicalises NaN itself.

Inputs are chosen so that every output is a sum of two 16-bit values that is exact in float32 (a value
in [1, 2) and one far smaller, or inf / NaN / the largest finite value): the kernels' float sums are then
exact whatever their order, and the only rounding is the final store, at ties, below and above half an
ulp, to overflow. The same problem runs through the causal ops (the fast paths and the seq_idx paths,
contiguous and channels-last, the decode update) and through conv1d / conv1d_backward_input (depthwise
family); all must give the reference's bits. The CPU build this process picks; the ISA builds run this
file again with CONV1D_EXT_CPU_ISA set."""

import pytest
import torch
import torch.nn.functional as F

import conv1d_ext  # noqa: F401  (registers the ops)

ops = torch.ops.conv1d_ext
DTYPES = [torch.bfloat16, torch.float16]
MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10}
# (bits of the canonical NaN, the bits compared): c10's bfloat16 NaN ignores the sign, float16 keeps it.
CANONICAL_NAN = {torch.bfloat16: (0x7FC0, 0xFFFF), torch.float16: (0x7E00, 0x7FFF)}
BATCH, DIM, LEN = 2, 19, 41  # DIM and LEN: vector bodies and scalar tails of every vector width


def pattern(dtype, seed):
    """(BATCH, DIM, LEN) in dtype: even positions hold a value of magnitude in [1, 2), odd positions a
    small one (half an ulp of 1: a tie; a quarter and three quarters of an ulp; zero; minus half an ulp),
    so each sum of neighbours w = [1, 1] is exact in float32; a few specials: NaN, inf followed by -inf
    (their sum is NaN), and the largest finite value followed by a value that rounds their sum up to
    inf (float16) or overflows it (bfloat16)."""
    g = torch.Generator().manual_seed(seed)
    m = MANTISSA_BITS[dtype]
    ulp = 2.0 ** -m
    big = (1 + torch.randint(0, 2**m, (BATCH, DIM, LEN), generator=g) * ulp)
    big = big * (torch.randint(0, 2, big.shape, generator=g) * 2 - 1)
    smalls = torch.tensor([ulp / 2, ulp / 4, 3 * ulp / 4, 0.0, -ulp / 2], dtype=torch.float64)
    small = smalls[torch.randint(0, len(smalls), (BATCH, DIM, LEN), generator=g)]
    x = torch.where(torch.arange(LEN) % 2 == 0, big.double(), small)
    finfo = torch.finfo(dtype)
    x[0, 0, 10] = float("nan")
    x[0, 1, 20], x[0, 1, 21] = float("inf"), float("-inf")
    x[1, 2, 30], x[1, 2, 31] = finfo.max, (finfo.max if dtype == torch.bfloat16 else 16.0)
    x[1, 3, 33] = float("-inf")
    out = x.to(dtype)
    assert torch.equal(out.double().nan_to_num(), x.nan_to_num()), "the pattern must be exact in dtype"
    return out


def reference_bits(ref64, dtype):
    """ref64 (exact float results in float64) rounded to dtype as c10's scalar conversion does."""
    bits = ref64.float().to(dtype).view(torch.int16).clone()
    nan_bits, _ = CANONICAL_NAN[dtype]
    bits[ref64.isnan()] = torch.tensor(nan_bits, dtype=torch.int32).to(torch.int16)
    return bits


def assert_same_bits(result, ref64, what):
    dtype = result.dtype
    got = result.contiguous().view(torch.int16).int() & 0xFFFF
    want = reference_bits(ref64, dtype).int() & 0xFFFF
    nan_bits, compared = CANONICAL_NAN[dtype]
    nan = ref64.isnan()
    got = torch.where(nan, got & compared, got)
    want = torch.where(nan, want & compared, want)
    wrong = (got != want).nonzero()
    assert wrong.numel() == 0, (
        f"{what}: {wrong.shape[0]} of {got.numel()} {dtype} results differ from PyTorch's rounding, first at "
        f"{tuple(wrong[0].tolist())}: got {int(got[tuple(wrong[0])]):#06x}, want {int(want[tuple(wrong[0])]):#06x}")


def as_layout(t, layout):
    return t.transpose(1, 2).contiguous().transpose(1, 2) if layout == "channels_last" else t.contiguous()


def causal_reference(x64, w64):
    return F.conv1d(F.pad(x64, (w64.shape[1] - 1, 0)), w64[:, None, :], groups=w64.shape[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_conv1d_depthwise_store_bits(dtype):
    x = pattern(dtype, 0)
    w = torch.ones(DIM, 1, 2, dtype=dtype)
    ref = causal_reference(x.double(), w[:, 0].double())
    assert_same_bits(ops.conv1d(x, w, None, 1, 1, 0, 1, DIM), ref, "conv1d")
    bias = torch.zeros(DIM, dtype=dtype)
    assert_same_bits(ops.conv1d(x, w, bias, 1, 1, 0, 1, DIM), ref, "conv1d with a zero bias")
    g = pattern(dtype, 1)
    dx_ref = F.conv_transpose1d(g.double(), w.double(), groups=DIM)[..., 1:]
    assert_same_bits(ops.conv1d_backward_input(g, w, LEN, 1, 1, 0, 1, DIM), dx_ref, "conv1d_backward_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("with_seq_idx", [False, True], ids=["fast", "seq_idx"])
def test_causal_store_bits(dtype, layout, with_seq_idx):
    x = as_layout(pattern(dtype, 0), layout)
    w = torch.ones(DIM, 2, dtype=dtype)
    seq_idx = torch.zeros(BATCH, LEN, dtype=torch.int32) if with_seq_idx else None
    out, _ = ops.causal_conv1d_fwd(x, w, None, seq_idx, None, 1, False)
    assert_same_bits(out, causal_reference(x.double(), w.double()), "causal_conv1d_fwd")
    g = as_layout(pattern(dtype, 1), layout)
    dx = ops.causal_conv1d_bwd(x, w, None, seq_idx, None, g, None, 1, False)[0]
    dx_ref = F.conv_transpose1d(g.double(), w[:, None, :].double(), groups=DIM)[..., 1:]
    assert_same_bits(dx, dx_ref, "causal_conv1d_bwd dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("circular", [False, True], ids=["shifted", "cache_seqlens"])
def test_causal_update_store_bits(dtype, circular):
    """One decode step per (batch, position) of the pattern: state x[t - 1] (0 at t = 0), input x[t]."""
    x = pattern(dtype, 0)
    w = torch.ones(DIM, 2, dtype=dtype)
    step = x.permute(0, 2, 1).reshape(BATCH * LEN, DIM, 1).contiguous()
    state = F.pad(x, (1, 0))[..., :LEN].permute(0, 2, 1).reshape(BATCH * LEN, DIM, 1).contiguous()
    seqlens = torch.zeros(BATCH * LEN, dtype=torch.int32) if circular else None
    out = ops.causal_conv1d_update(step, state, w, None, seqlens, None, False)
    ref = causal_reference(x.double(), w.double()).permute(0, 2, 1).reshape(BATCH * LEN, DIM, 1)
    assert_same_bits(out, ref, "causal_conv1d_update")
