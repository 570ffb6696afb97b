"""Hostile arguments for the causal-conv1d interface (hypothesis; see test_fuzz_conv1d.py for what is
drawn and required): causal_conv1d_fn against F.conv1d on the left-padded input, with huge dilations (a
long final state) and hostile layouts; causal_conv1d_update refusing overlapping state and taking
cache_seqlens / conv_state_indices at the int32 limits without writing outside conv_state."""


import pytest
import torch
import torch.nn.functional as F
from conv_ref import examples, seeded, torch_threads
from fuzz_guards import (
    IMPOSSIBLE_BYTES,
    INT64_MAX,
    MAX_COMPUTED_NUMEL,
    Guarded,
    _assert_matches,
    _assert_unmodified,
    _hostile_int,
    _in_int64,
    _snapshot,
    memory_cap,  # noqa: F401  (the autouse fixture)
)
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import conv1d_ext


@st.composite
def causal_calls(draw):
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.bfloat16]))
    return dict(dtype=dtype, batch=draw(st.sampled_from([0, 1, 2])), dim=draw(st.sampled_from([0, 1, 3])),
                seqlen=draw(st.sampled_from([0, 1, 2, 5, 17])), width=draw(st.sampled_from([1, 2, 4])),
                dilation=draw(_hostile_int()), layout=draw(st.sampled_from(["contiguous", "channels_last",
                                                                             "strided", "expanded"])),
                bias=draw(st.booleans()), grads=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def test_causal_conv1d_hostile_arguments():
    """causal_conv1d_fn against F.conv1d on the left-padded input (a huge dilation: a long final state)."""

    @settings(max_examples=examples(300))
    @given(call=causal_calls())
    def check(call):
        note(repr(call))
        dtype, batch, dim, seqlen, width, dilation = (call[key] for key in ("dtype", "batch", "dim", "seqlen",
                                                                           "width", "dilation"))
        gen = torch.Generator().manual_seed(call["seed"])
        if call["layout"] == "channels_last":
            x_base = torch.randn(batch, seqlen, dim, generator=gen, dtype=torch.float64).to(dtype)
            x = x_base.transpose(1, 2)
        elif call["layout"] == "strided":
            x_base = torch.randn(batch, dim, 2 * seqlen, generator=gen, dtype=torch.float64).to(dtype)
            x = x_base[:, :, ::2]
        elif call["layout"] == "expanded":
            x_base = torch.randn(1, dim, seqlen, generator=gen, dtype=torch.float64).to(dtype)
            x = x_base.expand(batch, dim, seqlen)
        else:
            x = x_base = torch.randn(batch, dim, seqlen, generator=gen, dtype=torch.float64).to(dtype)
        w = torch.randn(dim, width, generator=gen, dtype=torch.float64).to(dtype)
        b = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype) if call["bias"] else None
        if call["grads"]:
            x.requires_grad_()
            w.requires_grad_()
        snapshot = _snapshot([x_base, w, b])
        valid = _in_int64(dilation) and dilation > 0
        state_len = (width - 1) * dilation if valid else 0
        state_bytes = batch * dim * state_len * 8
        # A final_states past int64 (its length, or its batch stride dim * state_len: at::empty refuses it even
        # with an empty batch) or past any memory: a RuntimeError.
        if valid and (max(state_len, dim * state_len) > INT64_MAX or state_bytes > IMPOSSIBLE_BYTES):
            expect_error = True
        else:
            expect_error = not valid
            assume(state_bytes <= MAX_COMPUTED_NUMEL * 8 or batch * dim == 0)
        ours = Guarded(lambda: conv1d_ext.causal_conv1d_fn(x, w, b, dilation=dilation, return_final_states=True))
        ours.check_cheap()
        _assert_unmodified(snapshot)
        if expect_error:
            assert isinstance(ours.error, (RuntimeError, ValueError)), repr(ours.error)
            if not _in_int64(dilation):
                assert isinstance(ours.error, RuntimeError), repr(ours.error)
            return
        assert ours.error is None, repr(ours.error)
        out, final = ours.value
        assert final.shape == (batch, dim, state_len)
        if batch * dim * seqlen == 0:
            assert out.shape == x.shape
            if batch * dim and state_len:  # no input: final_states is the zero initial state
                assert torch.equal(final, torch.zeros_like(final)), "final_states: NaN poison left?"
            return
        xd, wd = x.detach().double(), w.detach().double()
        padded = F.pad(xd, (state_len, 0))
        with torch_threads(1):
            ref = F.conv1d(padded, wd[:, None], None if b is None else b.double(), dilation=dilation, groups=dim)
            mag = F.conv1d(padded.abs(), wd.abs()[:, None], None if b is None else b.double().abs(),
                           dilation=dilation, groups=dim)
        _assert_matches("out", out, ref, mag, width + 1, dtype, repr(call))
        _assert_matches("final_states", final, padded[:, :, padded.shape[2] - state_len:],
                        padded[:, :, padded.shape[2] - state_len:].abs(), 1, dtype, repr(call))
        if call["grads"]:
            gy = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype)
            gx, gw = torch.autograd.grad(out, [x, w], gy)
            xr, wr = xd.clone().requires_grad_(), wd.clone().requires_grad_()
            with torch_threads(1), torch.enable_grad():
                r = F.conv1d(F.pad(xr, (state_len, 0)), wr[:, None], None if b is None else b.double(),
                             dilation=dilation, groups=dim)
                rx, rw = torch.autograd.grad(r, [xr, wr], gy.double())
                xa, wa = xd.abs().requires_grad_(), wd.abs().requires_grad_()
                ra = F.conv1d(F.pad(xa, (state_len, 0)), wa[:, None], dilation=dilation, groups=dim)
                mx, mw = torch.autograd.grad(ra, [xa, wa], gy.double().abs())
            _assert_matches("grad_x", gx, rx, mx, width, dtype, repr(call))
            _assert_matches("grad_weight", gw, rw, mw, batch * seqlen, dtype, repr(call))

    seeded(check, "test_causal_conv1d_hostile_arguments")()


def test_causal_update_refuses_overlapping_state():
    """conv_state is written in place: an expanded state, or one that is x, is refused like PyTorch's
    in-place ops refuse it (RuntimeError), instead of racing."""
    x = torch.randn(2, 3, 1)
    w = torch.randn(3, 4)
    expanded = torch.zeros(1, 3, 3).expand(2, 3, 3)
    with pytest.raises(RuntimeError, match="single memory location"):
        expanded.add_(1)  # what PyTorch says for the same thing
    with pytest.raises(RuntimeError, match="single memory location"):
        conv1d_ext.causal_conv1d_update(x, expanded, w)
    state = torch.zeros(2, 3, 3)
    with pytest.raises(RuntimeError, match="single memory location"):
        conv1d_ext.causal_conv1d_update(state, state, w)  # x is the state itself
    # (A partial overlap through a non-dense view is "too hard" to decide for PyTorch's overlap check, which
    # then lets it through, as PyTorch's own in-place ops do.)


@pytest.mark.parametrize("field", ["cache_seqlens", "conv_state_indices"])
def test_causal_update_hostile_indices(field):
    """cache_seqlens and conv_state_indices at the int32 limits: the update computes (a negative index is a
    padding row, a circular position wraps) or raises a RuntimeError; it never writes outside conv_state."""
    for value in [-(2**31), -2, -1, 0, 1, 2, 3, 2**31 - 1]:
        x = torch.randn(2, 3, 2)
        w = torch.randn(3, 4)
        storage = torch.randn(4, 3, 5)
        state = storage[1:3]
        guard_rows = storage[[0, 3]].clone()
        idx = torch.tensor([value, 0], dtype=torch.int32)
        kwargs = {field: idx}
        try:
            out = conv1d_ext.causal_conv1d_update(x, state, w, **kwargs)
        except RuntimeError:
            continue
        finally:
            assert torch.equal(storage[[0, 3]], guard_rows), f"{field}={value} wrote outside conv_state"
        assert torch.isfinite(out).all()
