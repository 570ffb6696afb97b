"""The causal-conv1d interface (conv1d_ext.causal_conv1d_fn / causal_conv1d_update, Dao-AILab's
signatures) on the CPU kernels against PyTorch only: every output, final state and gradient compared with
F.conv1d on the left-padded input (per sequence, for seq_idx) in float64 on the same dtype-rounded inputs,
within conv_ref.py's error model (support/causal_ref.py); the decode loop against one causal convolution
over the whole sequence. The ops of every backend: ops/test_causal_ops.py; errors:
robustness/test_errors.py; StreamingConv1d: api/test_streaming.py."""

import pytest
import torch
import torch.nn.functional as F
from causal_ref import LAYOUTS, check_problem, decode_loop, f64, make_x, rand, widths
from conv_ref import FLOAT_DTYPES, assert_close_to_reference, examples
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conv1d_ext import causal_conv1d_fn, causal_conv1d_update


@hsettings(max_examples=examples(60))
@given(batch=st.integers(1, 3), dim=st.integers(1, 6), seqlen=st.integers(0, 70), width=widths,
       dilation=st.integers(1, 3), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(FLOAT_DTYPES),
       bias=st.booleans(), use_seq=st.booleans(), use_init=st.booleans(), silu=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matches_pytorch(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu,
                         seed):
    check_problem(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu, seed)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("width", [1, 2, 4, 31])
def test_all_options(dtype, layout, width):
    """Every option at once, Mamba (k=4) and Conformer (k=31) widths, long enough to use several threads."""
    check_problem(2, 5, 300, width, 2 if width == 4 else 1, layout, dtype, True, True, True, True, seed=width)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_many_channels(layout):
    """More channels than one channels-last block (64) with a partial last block, several threads' work."""
    check_problem(2, 130, 97, 4, 1, layout, torch.float32, True, True, True, True, seed=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(("width", "dilation", "silu"), [(4, 2, True), (33, 1, False)])
def test_long_rows_many_channels(dtype, layout, width, dilation, silu):
    """The vectorised paths (no seq_idx) past their blocking: rows longer than one chunk (512 positions,
    and 256 channels-last), channels past one channels-last block (64) with vector and scalar tails, a
    state longer than a vector; forward, final states and every gradient. (Sizes kept small: the float64
    reference, F.conv1d depthwise, is slow.)"""
    check_problem(1, 75, 520, width, dilation, layout, dtype, True, False, True, silu, seed=width)


@pytest.mark.parametrize("shape", [(0, 4, 7), (2, 0, 7), (2, 4, 0)], ids=["batch0", "dim0", "seqlen0"])
def test_empty(shape):
    batch, dim, seqlen = shape
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(dim, 3, requires_grad=True)
    b = torch.randn(dim, requires_grad=True)
    init = torch.randn(batch, dim, 2, requires_grad=True)
    out, final = causal_conv1d_fn(x, w, b, initial_states=init, return_final_states=True, activation="silu")
    assert out.shape == shape and final.shape == (batch, dim, 2)
    torch.testing.assert_close(final, torch.cat([init, x], -1)[..., seqlen:])
    gx, gw, gb, gi = torch.autograd.grad((out.sum() + final.sum()), [x, w, b, init])
    assert torch.equal(gw, torch.zeros_like(gw)) or seqlen > 0 and batch > 0
    assert torch.equal(gb, torch.zeros_like(gb)) or seqlen > 0 and batch > 0
    if seqlen == 0:  # every initial state goes straight to final_states
        torch.testing.assert_close(gi, torch.ones_like(gi))


def test_final_states_out_and_return():
    gen = torch.Generator().manual_seed(7)
    x, w = rand((2, 4, 3), torch.float32, gen), rand((4, 5), torch.float32, gen)
    init = rand((2, 4, 4), torch.float32, gen)
    buf = torch.full((2, 4, 4), float("nan"))
    out, final = causal_conv1d_fn(x, w, initial_states=init, return_final_states=True, final_states_out=buf)
    assert final is buf
    # seqlen 3 < state_len 4: the last initial state then x
    torch.testing.assert_close(buf, torch.cat([init, x], -1)[..., 3:], rtol=0, atol=0)
    assert isinstance(causal_conv1d_fn(x, w), torch.Tensor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mode", ["shift", "circular", "indices"])
@pytest.mark.parametrize("width", [1, 4, 7])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_decode_loop(dtype, mode, width, layout):
    decode_loop(dtype, mode, width, layout)


def test_update_padding_row_and_bad_index():
    gen = torch.Generator().manual_seed(11)
    x, w = rand((2, 3), torch.float32, gen), rand((3, 4), torch.float32, gen)
    state = rand((4, 3, 3), torch.float32, gen)
    before = state.clone()
    y = causal_conv1d_update(x, state, w, conv_state_indices=torch.tensor([-1, 2], dtype=torch.int32))
    assert torch.equal(y[0], torch.zeros(3))
    assert torch.equal(state[[0, 1, 3]], before[[0, 1, 3]])
    assert not torch.equal(state[2], before[2])
    with pytest.raises(RuntimeError, match="out of range"):
        causal_conv1d_update(x, state, w, conv_state_indices=torch.tensor([0, 4], dtype=torch.int32))


def test_grad_output_layouts():
    """A channels-last x's backward reads grad_output in either layout (row by row, or channel by channel
    for one contiguous along seqlen), with the same result, bit for bit."""
    gen = torch.Generator().manual_seed(9)
    x = make_x((2, 20, 300), torch.float32, "channels_last", gen).requires_grad_()
    w, b = rand((20, 4), torch.float32, gen).requires_grad_(), rand((20,), torch.float32, gen).requires_grad_()
    out = causal_conv1d_fn(x, w, b, activation="silu")
    gy = rand((2, 20, 300), torch.float32, gen)
    gy_cl = gy.transpose(1, 2).contiguous().transpose(1, 2)
    a = torch.autograd.grad(out, (x, w, b), gy, retain_graph=True)
    c = torch.autograd.grad(out, (x, w, b), gy_cl)
    for u, v in zip(a, c, strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_channels_last_channel_blocks(dtype):
    """The channels-last forward over more than one block of channels (512), forward only (cheap)."""
    check_problem(1, 530, 270, 4, 1, "channels_last", dtype, True, False, True, True, seed=5, grads=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(("width", "extra"), [(1, 2), (2, 0), (3, 0), (4, 0), (4, 2), (9, 0)])
def test_update_step_many_channels(dtype, width, extra):
    """The single-position update (its own path: widths 2-4 with state_len = width - 1 as constants) over
    several channel blocks (256), a state `extra` longer than width - 1, a padding row and an x with
    strided channels, against the roll-and-sum."""
    gen = torch.Generator().manual_seed(width)
    batch, dim, state_len, rows = 3, 300, width - 1 + extra, [2, -1, 0]
    x = rand((batch, 2 * dim), dtype, gen)[:, ::2]
    w, b = rand((dim, width), dtype, gen, 0.5), rand((dim,), dtype, gen)
    state = rand((4, dim, state_len), dtype, gen)
    before = state.clone()
    y = causal_conv1d_update(x, state, w, b, activation="silu",
                             conv_state_indices=torch.tensor(rows, dtype=torch.int32))
    for i, r in enumerate(rows):
        if r < 0:
            assert torch.equal(y[i], torch.zeros_like(y[i]))
            continue
        window = torch.cat([f64(before[r])[:, state_len - (width - 1):], f64(x[i])[:, None]], -1)
        z = (window * f64(w)).sum(-1) + f64(b)
        mag = 2 * ((window.abs() * f64(w).abs()).sum(-1) + f64(b).abs()) + F.silu(z).abs()
        assert_close_to_reference("update", y[i], F.silu(z), mag, width, dtype, context=f"{dtype} {width} row {r}")
        assert torch.equal(state[r], torch.cat([before[r][:, 1:], x[i][:, None]], -1))
    assert torch.equal(state[[1, 3]], before[[1, 3]])


def test_update_long_chunk_shift():
    """seqlen > state_len: the state becomes the chunk's last inputs."""
    gen = torch.Generator().manual_seed(12)
    x, w = rand((1, 2, 6), torch.float64, gen), rand((2, 3), torch.float64, gen)
    state = rand((1, 2, 2), torch.float64, gen)
    prev = state.clone()
    y = causal_conv1d_update(x, state, w)
    ref = F.conv1d(torch.cat([prev, x], -1), w[:, None], groups=2)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(state, x[..., -2:], rtol=0, atol=0)
