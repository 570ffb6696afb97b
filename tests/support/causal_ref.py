"""The causal convolution's reference and checks, shared by the causal tests (ops/test_causal_ops.py,
api/test_causal_conv1d.py, the emulator's and sanitizers' smoke checks): causal-conv1d's semantics from
F.conv1d on the left-padded input (per sequence, for seq_idx), evaluated in float64 on the same
dtype-rounded inputs, within the error model of conv_ref.py; the API (causal_conv1d_fn and autograd) or a
backend's ops (conftest's `backend`) checked against it, and the decode loop against one causal
convolution over the whole sequence."""

import math

import torch
import torch.nn.functional as F
from conv_ref import assert_close_to_reference
from hypothesis import strategies as st

from conv1d_ext import causal_conv1d_fn, causal_conv1d_update

LAYOUTS = ["contiguous", "channels_last", "strided"]
# widths the property tests draw: mostly the common short ones, some up to 64
widths = st.one_of(st.integers(1, 5), st.integers(1, 64))


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


def whole_sequence(x, w, b, silu):
    out, _ = reference(f64(x), f64(w), f64(b), None, None, 1, silu)
    return out


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


def check_causal_ops_quick(ops):
    """The causal ops (forward, backward, decode step) on a few float64 problems, x contiguous along seqlen
    and channels-last, against F.conv1d on the left-padded input and autograd of it; ops/test_causal_ops.py covers
    them in depth on every backend."""
    import torch.nn.functional as F

    def laid_out(shape, channels_last):  # channels-last: a (batch, seqlen, dim) buffer transposed
        t = torch.randn(shape[0], shape[2], shape[1], dtype=torch.float64, generator=g).transpose(1, 2)
        return t if channels_last else t.contiguous()

    g = torch.Generator().manual_seed(0)
    for width, silu, channels_last in ((4, True, False), (7, False, False), (4, True, True), (3, False, True)):
        x = laid_out((2, 5, 40), channels_last).requires_grad_()
        w = torch.randn(5, width, dtype=torch.float64, generator=g).requires_grad_()
        b = torch.randn(5, dtype=torch.float64, generator=g).requires_grad_()
        ref = F.conv1d(F.pad(x, (width - 1, 0)), w[:, None], b, groups=5)
        ref = F.silu(ref) if silu else ref
        grad_out = laid_out(ref.shape, channels_last)
        out, final = ops.causal_conv1d_fwd(x.detach(), w.detach(), b.detach(), None, None, 1, silu)
        torch.testing.assert_close(out, ref.detach())
        torch.testing.assert_close(final, x.detach()[..., -(width - 1):])
        dx, dw, db, _ = ops.causal_conv1d_bwd(x.detach(), w.detach(), b.detach(), None, None, grad_out, None, 1,
                                              silu)
        for got, expected in zip((dx, dw, db), torch.autograd.grad(ref, (x, w, b), grad_out), strict=True):
            torch.testing.assert_close(got, expected)
        state = torch.zeros(2, 5, width - 1, dtype=torch.float64)
        steps = [ops.causal_conv1d_update(x.detach()[..., t:t + 1], state, w.detach(), b.detach(), None, None,
                                          silu) for t in range(x.shape[-1])]
        torch.testing.assert_close(torch.cat(steps, -1), ref.detach())
