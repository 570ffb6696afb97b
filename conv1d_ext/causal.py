"""Causal convolution with state, in the interface of Dao-AILab's causal-conv1d (Mamba, Conformer):
``causal_conv1d_fn`` (the whole sequence: prefill / training) and ``causal_conv1d_update`` (the decode
step), on this project's own kernels (ops ``causal_conv1d_fwd``, ``causal_conv1d_bwd`` and
``causal_conv1d_update`` in ``torch.ops.conv1d_ext``; schemas in csrc/op_schemas.h).

Beyond causal-conv1d: any width >= 1, a dilation, float64, seq_idx and initial_states together in either
layout, gradients for initial_states in both layouts, the update with any seqlen.

This module holds the fake kernels (torch.compile, FakeTensor, meta) and the autograd of these ops.
"""

import torch

from . import _C  # noqa: F401  (loads the op library)

__all__ = ["causal_conv1d_fn", "causal_conv1d_update"]

_NS = "conv1d_ext"
ops = torch.ops.conv1d_ext

_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _silu(activation):
    if activation not in (None, "silu", "swish"):
        raise NotImplementedError("activation must be None, silu, or swish")
    return activation is not None


def _require(op, condition, what):
    torch._check(condition, lambda: f"conv1d_ext::{op}: {what}")


def _channels_last(x):
    """A (batch, seqlen, dim) contiguous tensor transposed to (batch, dim, seqlen); the same test as the C++
    op layer (csrc/causal_checks.h), so fake and real outputs have the same strides."""
    return (not x.is_contiguous() and x.shape[1] > 1 and x.stride(1) == 1 and x.stride(2) == x.shape[1]
            and x.stride(0) == x.shape[1] * x.shape[2])


def _new_like_x(x):
    if _channels_last(x):
        return x.new_empty((x.shape[0], x.shape[2], x.shape[1])).transpose(1, 2)
    return x.new_empty((x.shape[0], x.shape[1], x.shape[2]))


def _check_causal(op, x, weight, bias, seq_idx, initial_states, dilation):
    _require(op, dilation > 0, "dilation must be positive")
    _require(op, x.dim() == 3 and weight.dim() == 2, "x must be (batch, dim, seqlen), weight (dim, width)")
    _require(op, x.dtype in _FLOATING, "x must be float32, float64, float16 or bfloat16")
    others = [t for t in (weight, bias, initial_states) if t is not None]
    _require(op, all(t.dtype == x.dtype and t.device == x.device for t in others),
             "weight, bias and initial_states must have x's dtype and device")
    batch, dim, seqlen = x.shape
    width = weight.shape[1]
    _require(op, weight.shape[0] == dim and width >= 1, "weight must be (dim, width)")
    _require(op, bias is None or (bias.dim() == 1 and bias.shape[0] == dim), "bias must be (dim,)")
    if seq_idx is not None:
        _require(op, seq_idx.dtype == torch.int32 and seq_idx.device == x.device, "seq_idx must be int32")
        _require(op, seq_idx.dim() == 2 and seq_idx.shape[0] == batch and seq_idx.shape[1] == seqlen,
                 "seq_idx must be (batch, seqlen)")
    state_len = (width - 1) * dilation
    if initial_states is not None:
        _require(op, initial_states.dim() == 3 and initial_states.shape[0] == batch
                 and initial_states.shape[1] == dim and initial_states.shape[2] == state_len,
                 "initial_states must be (batch, dim, (width - 1) * dilation)")
    return batch, dim, width, state_len


@torch.library.register_fake(f"{_NS}::causal_conv1d_fwd")
def _causal_fwd_fake(x, weight, bias, seq_idx, initial_states, dilation, silu):
    batch, dim, _, state_len = _check_causal("causal_conv1d_fwd", x, weight, bias, seq_idx, initial_states,
                                             dilation)
    return _new_like_x(x), x.new_empty((batch, dim, state_len))


@torch.library.register_fake(f"{_NS}::causal_conv1d_bwd")
def _causal_bwd_fake(x, weight, bias, seq_idx, initial_states, grad_out, grad_final_states, dilation, silu):
    op = "causal_conv1d_bwd"
    batch, dim, width, state_len = _check_causal(op, x, weight, bias, seq_idx, initial_states, dilation)
    _require(op, grad_out.shape == x.shape and grad_out.dtype == x.dtype, "grad_out must be like x")
    if grad_final_states is not None:
        _require(op, grad_final_states.shape == (batch, dim, state_len), "grad_final_states must be like "
                 "final_states")
    return (_new_like_x(x), x.new_empty((dim, width)), x.new_empty((dim,)),
            x.new_empty((batch, dim, state_len)))


@torch.library.register_fake(f"{_NS}::causal_conv1d_update")
def _causal_update_fake(x, conv_state, weight, bias, cache_seqlens, conv_state_indices, silu):
    op = "causal_conv1d_update"
    _require(op, x.dim() == 3 and weight.dim() == 2 and conv_state.dim() == 3,
             "x must be (batch, dim, seqlen), weight (dim, width), conv_state (batch, dim, state_len)")
    _require(op, x.dtype in _FLOATING, "x must be float32, float64, float16 or bfloat16")
    others = [t for t in (conv_state, weight, bias) if t is not None]
    _require(op, all(t.dtype == x.dtype and t.device == x.device for t in others),
             "conv_state, weight and bias must have x's dtype and device")
    batch, dim, seqlen = x.shape
    _require(op, weight.shape[0] == dim and weight.shape[1] >= 1, "weight must be (dim, width)")
    _require(op, conv_state.shape[1] == dim and conv_state.shape[2] >= weight.shape[1] - 1,
             "conv_state must be (batch, dim, state_len >= width - 1)")
    _require(op, bias is None or (bias.dim() == 1 and bias.shape[0] == dim), "bias must be (dim,)")
    for name, t in (("cache_seqlens", cache_seqlens), ("conv_state_indices", conv_state_indices)):
        if t is not None:
            _require(op, t.dtype == torch.int32 and t.dim() == 1 and t.shape[0] == batch,
                     f"{name} must be int32 (batch,)")
    if conv_state_indices is None:
        _require(op, conv_state.shape[0] == batch, "conv_state must have x's batch")
    return x.new_empty((batch, dim, seqlen))


# Autograd of causal_conv1d_fwd: its one-pass backward op gives dx, dweight, dbias, dinitial_states.
def _causal_fwd_setup_context(ctx, inputs, output):
    x, weight, bias, seq_idx, initial_states, dilation, silu = inputs
    ctx.save_for_backward(x, weight, bias, seq_idx, initial_states)
    ctx.args = (dilation, silu)


def _causal_fwd_backward(ctx, grad_out, grad_final_states):
    x, weight, bias, seq_idx, initial_states = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(x)
    dx, dweight, dbias, dinit = ops.causal_conv1d_bwd(x, weight, bias, seq_idx, initial_states, grad_out,
                                                      grad_final_states, *ctx.args)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, dweight if need[1] else None,
            dbias if bias is not None and need[2] else None, None,
            dinit if initial_states is not None and need[4] else None, None, None)


torch.library.register_autograd(f"{_NS}::causal_conv1d_fwd", _causal_fwd_backward,
                                setup_context=_causal_fwd_setup_context)


def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                     final_states_out=None, activation=None, *, dilation=1):
    r"""Causal depthwise convolution,
    ``out[b, c, t] = act(bias[c] + Σ_k weight[c, k]·x[b, c, t − (width − 1 − k)·dilation])``, with the
    inputs before position 0 taken from ``initial_states`` (zeros when None), i.e.
    ``F.conv1d(F.pad(x, ((width - 1) * dilation, 0)), weight[:, None], bias, dilation=dilation, groups=dim)``.

    Args:
        x: (batch, dim, seqlen), contiguous along seqlen or channels-last (a (batch, seqlen, dim)
            contiguous tensor transposed); read in place, and the output has x's layout.
        weight: (dim, width), any width >= 1. bias: (dim,) or None.
        seq_idx: (batch, seqlen) int32 or None: a position sees only earlier positions with the same id
            (initial_states belong to position 0's sequence); a negative id is padding: output 0.
        initial_states: (batch, dim, (width - 1)·dilation) or None (zeros).
        return_final_states: also return final_states (batch, dim, (width - 1)·dilation), the last
            inputs (continuing initial_states when seqlen is short); written into ``final_states_out``
            when given (and that tensor returned).
        activation: None, "silu" or "swish" (fused).
        dilation: keyword-only, >= 1.

    Differentiable in x, weight, bias and initial_states (also through final_states). float32, float64,
    float16, bfloat16 (16-bit types accumulate in float32). Deterministic.
    """
    silu = _silu(activation)
    out, final_states = ops.causal_conv1d_fwd(x, weight, bias, seq_idx, initial_states, dilation, silu)
    if final_states_out is not None:
        final_states_out.copy_(final_states)
        final_states = final_states_out
    return (out, final_states) if return_final_states else out


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None, cache_seqlens=None,
                         conv_state_indices=None):
    r"""One decode step of a causal convolution: ``x`` (batch, dim) or (batch, dim, seqlen) continues the
    sequence whose last inputs are held in ``conv_state`` (num_states, dim, state_len >= width − 1),
    which is updated in place (x shifted in). Returns the output, shaped like x.

    Args:
        cache_seqlens: (batch,) int32 or None: conv_state is then a circular buffer; the window is the
            width − 1 entries before position ``cache_seqlens[b] % state_len`` and x is written from
            there (the caller advances cache_seqlens).
        conv_state_indices: (batch,) int32 or None: row b uses ``conv_state[conv_state_indices[b]]``; −1
            marks a padding row (output 0, no state touched).
        activation: None, "silu" or "swish".
    """
    # Kept lean: at batch 1 a decode step's kernel takes a few µs, comparable to the Python around it.
    silu = activation is not None and _silu(activation)
    if x.dim() == 2:
        return _update_op(x.unsqueeze(-1), conv_state, weight, bias, cache_seqlens, conv_state_indices,
                          silu).squeeze(-1)
    return _update_op(x, conv_state, weight, bias, cache_seqlens, conv_state_indices, silu)


# The op's one overload, resolved once (calling the packet resolves it on every call).
_update_op = ops.causal_conv1d_update.default
