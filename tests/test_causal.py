"""Causal convolution (conv1d_ext.causal_conv1d_fn / causal_conv1d_update / StreamingConv1d) against
PyTorch only: every output, final state and gradient is compared with F.conv1d on the left-padded input
(per sequence, for seq_idx), evaluated in float64 on the same dtype-rounded inputs, within the error
model of tests/conv_ref.py. CPU kernels through the API; the op-level tests (`backend`) also run the CUDA
kernels, on a GPU or under the CPU emulator."""

import math

import pytest
import torch
import torch.nn.functional as F
from conv_ref import FLOAT_DTYPES, assert_close_to_reference, examples
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from torch import nn

import conv1d_ext
from conv1d_ext import StreamingConv1d, causal_conv1d_fn, causal_conv1d_update

ops = torch.ops.conv1d_ext
LAYOUTS = ["contiguous", "channels_last", "strided"]


# ---------------------------------------------------------------------------------------------------
# Reference: F.conv1d in float64 on the left-padded input, one call per sequence of seq_idx
# ---------------------------------------------------------------------------------------------------


def segments(ids):
    """[(start, end, id)] runs of equal ids."""
    runs, start = [], 0
    while start < len(ids):
        end = start
        while end < len(ids) and ids[end] == ids[start]:
            end += 1
        runs.append((start, end, ids[start]))
        start = end
    return runs


def reference(x, w, b, seq_idx, init, dilation, silu):
    """(out, final_states) of causal-conv1d's semantics, from F.conv1d; differentiable."""
    batch, dim, seqlen = x.shape
    state_len = (w.shape[1] - 1) * dilation
    if init is None:
        init = x.new_zeros((batch, dim, state_len))

    def conv(row):  # row (dim, state_len + n): the causal pad then the inputs
        if row.shape[-1] == state_len:  # n = 0 (F.conv1d rejects an input shorter than the kernel)
            return row[:, :0] * 0
        return F.conv1d(row[None], w[:, None], b, dilation=dilation, groups=dim)[0]

    outs = []
    for i in range(batch):
        if seq_idx is None:
            outs.append(conv(torch.cat([init[i], x[i]], -1)))
            continue
        pieces = []
        for start, end, sid in segments(seq_idx[i].tolist()):
            pad = init[i] if start == 0 else x.new_zeros((dim, state_len))
            y = conv(torch.cat([pad, x[i, :, start:end]], -1))
            pieces.append(y * 0 if sid < 0 else y)
        outs.append(torch.cat(pieces, -1) if pieces else x[i, :, :0] * 0)
    out = torch.stack(outs) if outs else x.new_zeros((0, dim, seqlen))
    if silu:
        out = F.silu(out)
    final = torch.cat([init, x], -1)[..., seqlen:]
    return out, final


def make_x(shape, dtype, layout, gen, scale=1.0):
    batch, dim, seqlen = shape
    if layout == "channels_last":
        t = torch.randn((batch, seqlen, dim), generator=gen, dtype=torch.float64).transpose(1, 2)
    elif layout == "strided":
        t = torch.randn((batch, dim, 2 * seqlen), generator=gen, dtype=torch.float64)[..., ::2]
    else:
        t = torch.randn(shape, generator=gen, dtype=torch.float64)
    return (t * scale).to(dtype)


def rand(shape, dtype, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def random_seq_idx(batch, seqlen, gen, padding):
    """Non-decreasing sequence ids per row (packed sequences), optionally -1 padding at the end."""
    rows = []
    for _ in range(batch):
        cuts = torch.rand(seqlen, generator=gen) < 0.15
        ids = torch.cumsum(cuts.to(torch.int32), 0).to(torch.int32)
        if padding and seqlen > 2:
            n = int(torch.randint(0, seqlen // 2 + 1, (1,), generator=gen))
            if n:
                ids[seqlen - n:] = -1
        rows.append(ids)
    return torch.stack(rows) if rows else torch.zeros((0, seqlen), dtype=torch.int32)


def f64(t):
    return None if t is None else t.detach().to(torch.float64)


def check_problem(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu, seed,
                  grads=True, backend=None):
    """The API (causal_conv1d_fn and autograd) on CPU; with `backend` (conftest's), its ops called directly."""
    gen = torch.Generator().manual_seed(seed)
    state_len = (width - 1) * dilation
    x = make_x((batch, dim, seqlen), dtype, layout, gen)
    w = rand((dim, width), dtype, gen, 1 / math.sqrt(width))
    b = rand((dim,), dtype, gen) if bias else None
    seq_idx = random_seq_idx(batch, seqlen, gen, padding=True) if use_seq else None
    init = rand((batch, dim, state_len), dtype, gen) if use_init else None
    gy = make_x((batch, dim, seqlen), dtype, "contiguous", gen)
    gfinal = rand((batch, dim, state_len), dtype, gen)
    saved = [t.clone() for t in (x, w, b, seq_idx, init) if t is not None]
    ctx = (f"batch={batch} dim={dim} seqlen={seqlen} width={width} dilation={dilation} layout={layout} "
           f"dtype={dtype} bias={bias} seq_idx={use_seq} init={use_init} silu={silu} seed={seed}")

    if backend is not None:
        dev = backend.device
        on = [None if t is None else t.to(dev) for t in (x, w, b, seq_idx, init, gy, gfinal)]
        out, final = backend.ops.causal_conv1d_fwd(*on[:5], dilation, silu)
        if grads:
            got = backend.ops.causal_conv1d_bwd(*on[:5], on[5], on[6], dilation, silu)
            got = [g for g, t in zip(got, (x, w, b, init), strict=True) if t is not None]
        out, final = out.cpu(), final.cpu()
        leaves = []
    else:
        leaves = [t.requires_grad_() for t in (x, w, b, init) if t is not None] if grads else []
        out, final = causal_conv1d_fn(x, w, b, seq_idx, init, return_final_states=True,
                                      activation="silu" if silu else None, dilation=dilation)
    if backend is not None and backend.device != "cpu":
        pass  # .to(device) keeps only dense layouts
    elif layout == "channels_last" and dim > 1 and seqlen > 1:
        assert out.transpose(1, 2).is_contiguous(), f"output does not keep x's channels-last layout. {ctx}"
    else:
        assert out.is_contiguous(), ctx

    # References in float64 (values and magnitudes: the same computation on absolute values).
    rl = [f64(t).requires_grad_() if t is not None else None for t in (x, w, b, init)]
    ref_out, ref_final = reference(rl[0], rl[1], rl[2], seq_idx, rl[3], dilation, silu)
    mag_out, _ = reference(*(None if t is None else t.abs() for t in (f64(x), f64(w), f64(b))), seq_idx,
                           None if init is None else f64(init).abs(), dilation, False)
    act = 2.0 if silu else 1.0  # |silu'| <= 1.1, and the activation's own rounding
    assert_close_to_reference("out", out, ref_out.detach(), act * mag_out + (out.detach().double().abs()
                              if silu else 0), width, dtype, context=ctx)
    torch.testing.assert_close(final.detach().double(), ref_final.detach(), rtol=0, atol=0, msg=ctx)
    for t, s in zip([t for t in (x, w, b, seq_idx, init) if t is not None], saved, strict=True):
        assert torch.equal(t.detach(), s), f"an input was modified. {ctx}"
    if not grads:
        return
    if backend is None:
        got = torch.autograd.grad([out, final], leaves, [gy, gfinal])
    ref_used = [t for t in rl if t is not None]
    ref_grads = torch.autograd.grad([ref_out, ref_final], ref_used, [f64(gy), f64(gfinal)], allow_unused=True)
    ref_grads = [torch.zeros_like(t) if g is None else g for g, t in zip(ref_grads, ref_used, strict=True)]
    # Magnitudes: the gradient of the linear problem on absolute values.
    al = [t.detach().abs().requires_grad_() for t in ref_used]
    it = iter(al)
    ax, aw = next(it), next(it)
    ab = next(it) if b is not None else None
    ai = next(it) if init is not None else None
    mo, mf = reference(ax, aw, ab, seq_idx, ai, dilation, False)
    mags = torch.autograd.grad([mo, mf], al, [act * f64(gy).abs(), f64(gfinal).abs()], allow_unused=True)
    names = ["dx", "dweight"] + (["dbias"] if bias else []) + (["dinitial_states"] if use_init else [])
    for name, g, r, m in zip(names, got, ref_grads, mags, strict=True):
        m = torch.zeros_like(r) if m is None else m
        red = seqlen * batch if name in ("dweight", "dbias") else width + 1
        assert_close_to_reference(name, g, r, m, red, dtype, context=ctx)


# ---------------------------------------------------------------------------------------------------
# causal_conv1d_fn: forward, final states and gradients
# ---------------------------------------------------------------------------------------------------

widths = st.one_of(st.integers(1, 5), st.integers(1, 64))


@hsettings(max_examples=examples(60))
@given(batch=st.integers(1, 3), dim=st.integers(1, 6), seqlen=st.integers(0, 70), width=widths,
       dilation=st.integers(1, 3), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(FLOAT_DTYPES),
       bias=st.booleans(), use_seq=st.booleans(), use_init=st.booleans(), silu=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matches_pytorch(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu,
                         seed):
    check_problem(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu, seed)


@hsettings(max_examples=examples(25))
@given(batch=st.integers(1, 2), dim=st.integers(1, 5), seqlen=st.integers(0, 40), width=widths,
       dilation=st.integers(1, 3), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(FLOAT_DTYPES),
       bias=st.booleans(), use_seq=st.booleans(), use_init=st.booleans(), silu=st.booleans(),
       seed=st.integers(0, 2**16))
def test_ops_match_pytorch(backend, batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init,
                           silu, seed):
    """The forward and backward ops of every backend (CPU, CUDA, the CUDA kernels under the emulator)."""
    check_problem(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu, seed,
                  backend=backend)


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


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("options", ["plain", "all"])
def test_gradcheck(layout, options):
    gen = torch.Generator().manual_seed(3)
    full = options == "all"
    x = make_x((2, 3, 9), torch.float64, layout, gen).requires_grad_()
    w = rand((3, 3), torch.float64, gen).requires_grad_()
    b = rand((3,), torch.float64, gen).requires_grad_() if full else None
    init = rand((2, 3, 4), torch.float64, gen).requires_grad_() if full else None
    seq_idx = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, -1], [0] * 9], dtype=torch.int32) if full else None
    dilation = 2 if full else 1

    def fn(x, w, b, init):
        out, final = causal_conv1d_fn(x, w, b, seq_idx, init, return_final_states=True,
                                      activation="silu" if full else None, dilation=dilation)
        return out, final

    inputs = [t for t in (x, w, b, init)]
    if not full:
        inputs = [x, w]
        assert torch.autograd.gradcheck(lambda x, w: fn(x, w, None, None), inputs)
    else:
        assert torch.autograd.gradcheck(fn, inputs)


def test_deterministic():
    gen = torch.Generator().manual_seed(5)
    x = make_x((4, 33, 500), torch.float32, "channels_last", gen).requires_grad_()
    w = rand((33, 4), torch.float32, gen).requires_grad_()
    b = rand((33,), torch.float32, gen).requires_grad_()
    gy = rand((4, 33, 500), torch.float32, gen)
    runs = []
    for _ in range(2):
        out = causal_conv1d_fn(x, w, b, activation="silu")
        runs.append(torch.autograd.grad(out, [x, w, b], gy))
    for a, c in zip(*runs, strict=True):
        assert torch.equal(a, c)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_x_is_read_in_place(layout):
    """No copy of x (or grad_output) in any layout: the op layer passes strides, so the profiler sees no
    copy / clone / contiguous op inside the causal ops."""
    gen = torch.Generator().manual_seed(9)
    x = make_x((2, 8, 64), torch.float32, layout, gen).requires_grad_()
    w = rand((8, 4), torch.float32, gen).requires_grad_()
    gy = make_x((2, 8, 64), torch.float32, layout, gen)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = ops.causal_conv1d_fwd(x, w, None, None, None, 1, True)[0]
        ops.causal_conv1d_bwd(x.detach(), w.detach(), None, None, None, gy, None, 1, True)
    names = {e.name for e in prof.events()}
    assert "conv1d_ext::causal_conv1d_fwd" in names
    assert not names & {"aten::copy_", "aten::clone", "aten::contiguous"}, sorted(names)
    assert out.stride() == (torch.empty(2, 64, 8).transpose(1, 2).stride() if layout == "channels_last"
                            else (8 * 64, 64, 1))


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


# ---------------------------------------------------------------------------------------------------
# causal_conv1d_update: the decode loop against one causal convolution over the whole sequence
# ---------------------------------------------------------------------------------------------------


def whole_sequence(x, w, b, silu):
    out, _ = reference(f64(x), f64(w), f64(b), None, None, 1, silu)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mode", ["shift", "circular", "indices"])
@pytest.mark.parametrize("width", [1, 4, 7])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_decode_loop(dtype, mode, width, layout):
    decode_loop(dtype, mode, width, layout)


@pytest.mark.parametrize("mode", ["shift", "circular", "indices"])
def test_decode_loop_ops(backend, mode):
    """The prefill and update ops of every backend (CPU, CUDA, the CUDA kernels under the emulator)."""
    for dtype in [torch.float32, torch.bfloat16]:
        decode_loop(dtype, mode, 4, "channels_last", backend)


def decode_loop(dtype, mode, width, layout, backend=None):
    """Prefill (return_final_states), then single-position and multi-position updates, against one causal
    convolution over the whole sequence; through the API, or through `backend`'s ops."""
    gen = torch.Generator().manual_seed(width)
    batch, dim, prefill, steps = 3, 6, 10, 9
    total = prefill + steps + 3  # the last step feeds 3 positions at once
    x = make_x((batch, dim, total), dtype, layout, gen)
    w = rand((dim, width), dtype, gen, 0.5)
    b = rand((dim,), dtype, gen)
    silu = width != 7
    act = "silu" if silu else None
    expected = whole_sequence(x, w, b, silu)
    mag = reference(f64(x).abs(), f64(w).abs(), f64(b).abs(), None, None, 1, False)[0] * 2 + expected.abs()

    dev = backend.device if backend is not None else "cpu"
    if backend is None:
        prefill_fn, update_fn = causal_conv1d_fn, causal_conv1d_update
    else:
        def prefill_fn(x, w, b, return_final_states, activation):
            return backend.ops.causal_conv1d_fwd(x.to(dev), w.to(dev), b.to(dev), None, None, 1, silu)

        def update_fn(xin, state, w, b, act, cache_seqlens, conv_state_indices):
            xd = xin.to(dev)
            y = backend.ops.causal_conv1d_update(xd[..., None] if xd.dim() == 2 else xd, state, w.to(dev), b.to(dev),
                                                 cache_seqlens, conv_state_indices, silu)
            return (y[..., 0] if xd.dim() == 2 else y).cpu()

    out, final = prefill_fn(x[..., :prefill], w, b, return_final_states=True, activation=act)
    outs = [out.cpu()]
    state_len = width - 1 if mode == "shift" else width + 4
    cache_seqlens = indices = None
    if mode == "shift":
        state = final.clone()
    else:
        # a larger circular buffer holding the last prefill inputs at positions (p % state_len)
        rows = 2 * batch + 1
        state = torch.full((rows, dim, state_len), float("nan"), dtype=dtype)
        pos = torch.arange(prefill)
        buf = torch.zeros((batch, dim, state_len), dtype=dtype)
        keep = pos[-state_len:] if state_len else pos[:0]
        buf[..., keep % state_len] = x[..., keep] if state_len else buf[..., :0]
        if mode == "indices":
            indices = torch.tensor([4, 0, 6], dtype=torch.int32)
        else:
            state, rows = state[:batch], batch
            indices = None
        target = indices.long() if indices is not None else torch.arange(batch)
        state[target] = buf
        cache_seqlens = torch.full((batch,), prefill, dtype=torch.int32)
    state = state.to(dev)
    indices = None if indices is None else indices.to(dev)
    cache_seqlens = None if cache_seqlens is None else cache_seqlens.to(dev)
    untouched = state.clone()
    x_saved = x.clone()
    t = prefill
    for n in [1] * steps + [3]:
        chunk = x[..., t:t + n]
        xin = chunk[..., 0].clone() if n == 1 else chunk
        y = update_fn(xin, state, w, b, act, cache_seqlens=cache_seqlens, conv_state_indices=indices)
        assert y.shape == xin.shape
        outs.append(y[..., None] if n == 1 else y)
        t += n
        if cache_seqlens is not None:
            cache_seqlens += n
    got = torch.cat(outs, -1)
    assert torch.equal(x, x_saved), "causal_conv1d_update modified x"
    assert_close_to_reference("decode", got, expected, mag, width, dtype, context=f"{mode} {width} {dtype}")
    if mode == "indices":  # rows no batch element uses are untouched (NaN stays NaN)
        unused = [r for r in range(state.shape[0]) if r not in (4, 0, 6)]
        assert torch.equal(state[unused].isnan().cpu(), untouched[unused].isnan().cpu())


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


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("use_seq", [False, True])
def test_ops_layouts(backend, layout, use_seq):
    """Every backend's ops in both layouts (the CUDA kernels have a channels-last path: threads along the
    channels), with initial states, dilation and, or not, seq_idx."""
    if backend.cuda_family is not None:
        pytest.skip("the causal kernels do not depend on the forced conv family: covered by the plain backend")
    check_problem(2, 5, 70, 4, 2, layout, torch.float32, True, use_seq, True, True, seed=3, backend=backend)


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


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


def test_errors():
    x, w = torch.randn(2, 4, 8), torch.randn(4, 3)
    with pytest.raises(NotImplementedError, match="activation must be None, silu, or swish"):
        causal_conv1d_fn(x, w, activation="relu")
    with pytest.raises(RuntimeError, match="weight of shape"):
        causal_conv1d_fn(x, torch.randn(5, 3))
    with pytest.raises(RuntimeError, match="weight of shape"):
        causal_conv1d_fn(x, torch.randn(4, 0))
    with pytest.raises(RuntimeError, match="x of shape"):
        causal_conv1d_fn(x[0], w)
    with pytest.raises(RuntimeError, match="bias of shape"):
        causal_conv1d_fn(x, w, torch.randn(3))
    with pytest.raises(RuntimeError, match="seq_idx must be int32"):
        causal_conv1d_fn(x, w, seq_idx=torch.zeros(2, 8, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="seq_idx of shape"):
        causal_conv1d_fn(x, w, seq_idx=torch.zeros(2, 7, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="initial_states of shape"):
        causal_conv1d_fn(x, w, initial_states=torch.randn(2, 4, 3), dilation=1)
    with pytest.raises(RuntimeError, match="dilation must be positive"):
        causal_conv1d_fn(x, w, dilation=0)
    with pytest.raises(RuntimeError, match="should be the same"):
        causal_conv1d_fn(x, w.double())
    with pytest.raises(RuntimeError, match="float32, float64"):
        causal_conv1d_fn(x.int(), w.int())
    with pytest.raises(RuntimeError, match="state_len >= width - 1"):
        causal_conv1d_update(x[..., 0], torch.randn(2, 4, 1), w)
    with pytest.raises(RuntimeError, match="conv_state_indices"):
        causal_conv1d_update(x[..., 0], torch.randn(3, 4, 2), w)
    with pytest.raises(RuntimeError, match="cache_seqlens must be int32"):
        causal_conv1d_update(x[..., 0], torch.randn(2, 4, 2), w, cache_seqlens=torch.zeros(2))


def test_fake_kernels_raise_runtime_error():
    x, w = torch.randn(2, 4, 8, device="meta"), torch.randn(5, 3, device="meta")
    with pytest.raises(RuntimeError):
        ops.causal_conv1d_fwd(x, w, None, None, None, 1, False)
    out, final = ops.causal_conv1d_fwd(torch.randn(2, 8, 4, device="meta").transpose(1, 2),
                                       torch.randn(4, 3, device="meta"), None, None, None, 2, True)
    assert out.shape == (2, 4, 8) and out.transpose(1, 2).is_contiguous() and final.shape == (2, 4, 4)


# ---------------------------------------------------------------------------------------------------
# opcheck and torch.compile
# ---------------------------------------------------------------------------------------------------


def test_opcheck():
    gen = torch.Generator().manual_seed(13)
    for layout in ["contiguous", "channels_last"]:
        x = make_x((2, 4, 11), torch.float32, layout, gen).requires_grad_()
        w = rand((4, 3), torch.float32, gen).requires_grad_()
        b = rand((4,), torch.float32, gen).requires_grad_()
        init = rand((2, 4, 4), torch.float32, gen).requires_grad_()
        seq = torch.tensor([[0] * 6 + [1] * 5, [0] * 11], dtype=torch.int32)
        torch.library.opcheck(ops.causal_conv1d_fwd, (x, w, b, seq, init, 2, True))
        torch.library.opcheck(ops.causal_conv1d_fwd, (x, w, None, None, None, 1, False))
        gy, gf = rand((2, 4, 11), torch.float32, gen), rand((2, 4, 4), torch.float32, gen)
        torch.library.opcheck(ops.causal_conv1d_bwd, (x.detach(), w.detach(), b.detach(), seq, init.detach(),
                                                      gy, gf, 2, True))
    state = rand((3, 4, 5), torch.float32, gen)
    torch.library.opcheck(ops.causal_conv1d_update,
                          (rand((2, 4, 2), torch.float32, gen), state, rand((4, 3), torch.float32, gen), None,
                           torch.tensor([3, 9], dtype=torch.int32), torch.tensor([2, -1], dtype=torch.int32),
                           True))


@pytest.mark.compile
def test_compile_prefill_and_decode():
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(17)
    x = make_x((2, 8, 20), torch.float32, "channels_last", gen)
    w, b = rand((8, 4), torch.float32, gen), rand((8,), torch.float32, gen)

    def run(x, w, b):
        out, state = causal_conv1d_fn(x[..., :16], w, b, return_final_states=True, activation="silu")
        state = state.clone()
        outs = [out]
        for t in range(16, 20):
            outs.append(causal_conv1d_update(x[..., t], state, w, b, "silu")[..., None])
        return torch.cat(outs, -1), state

    eager = run(x, w, b)
    compiled = torch.compile(run, fullgraph=True)(x, w, b)
    for a, c in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-6)

    xg = x.detach().requires_grad_()
    def loss(x):
        return causal_conv1d_fn(x, w, b, activation="silu").square().sum()
    g_eager = torch.autograd.grad(loss(xg), xg)[0]
    g_comp = torch.autograd.grad(torch.compile(loss, fullgraph=True)(xg), xg)[0]
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------
# StreamingConv1d
# ---------------------------------------------------------------------------------------------------


def causal_whole(module, x, state_len):
    return F.conv1d(F.pad(x, (state_len, 0)), module.weight, module.bias, module.stride, 0, module.dilation,
                    module.groups)


@hsettings(max_examples=examples(25))
@given(k=st.integers(1, 7), stride=st.integers(1, 3), dilation=st.integers(1, 3), groups=st.sampled_from([1, 2]),
       chunks=st.lists(st.integers(0, 5), min_size=1, max_size=5).filter(any), bias=st.booleans(),
       ext=st.booleans())
def test_streaming_matches_whole(k, stride, dilation, groups, chunks, bias, ext):
    torch.manual_seed(k * 100 + stride * 10 + dilation)
    cls = conv1d_ext.Conv1dExt if ext else nn.Conv1d
    module = cls(4, 6, k, stride=stride, dilation=dilation, groups=groups, bias=bias).double()
    stream = StreamingConv1d(module)
    lengths = [c * stride for c in chunks]
    x = torch.randn(2, 4, sum(lengths), dtype=torch.float64)
    outs, t = [], 0
    for n in lengths:
        outs.append(stream.step(x[..., t:t + n]))
        t += n
    expected = causal_whole(module, x, stream.state_len)
    torch.testing.assert_close(torch.cat(outs, -1), expected)


def test_streaming_stack_and_reset():
    torch.manual_seed(0)
    layers = [nn.Conv1d(3, 8, 5), conv1d_ext.Conv1dExt(8, 8, 3, dilation=2, groups=8),
              nn.Conv1d(8, 4, 4, stride=2), nn.Conv1d(4, 4, 3, dilation=3)]
    layers = [m.double() for m in layers]
    x = torch.randn(2, 3, 48, dtype=torch.float64)
    whole = x
    for m in layers:
        whole = causal_whole(m, whole, StreamingConv1d(m).state_len)
    streams = [StreamingConv1d(m) for m in layers]
    for _ in range(2):  # the second pass after reset() starts from zeros again
        outs = []
        for t in range(0, 48, 6):
            y = x[..., t:t + 6]
            for s in streams:
                y = s(y)
            outs.append(y)
        torch.testing.assert_close(torch.cat(outs, -1), whole)
        for s in streams:
            s.reset()
    single = StreamingConv1d(layers[0])
    torch.testing.assert_close(torch.cat([single.step(x[0, :, :20]), single.step(x[0, :, 20:])], -1),
                               causal_whole(layers[0], x[:1], single.state_len)[0])


def test_streaming_errors():
    with pytest.raises(ValueError, match="padding=0"):
        StreamingConv1d(nn.Conv1d(2, 2, 3, padding=1))
    with pytest.raises(TypeError):
        StreamingConv1d(nn.ConvTranspose1d(2, 2, 3))
    s = StreamingConv1d(nn.Conv1d(2, 2, 3, stride=2))
    with pytest.raises(ValueError, match="multiple of the stride"):
        s.step(torch.randn(1, 2, 3))
    s.step(torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="batch"):
        s.step(torch.randn(3, 2, 4))
