"""Causal convolution with state, in the interface of Dao-AILab's causal-conv1d (Mamba, Conformer):
``causal_conv1d_fn`` (the whole sequence: prefill / training) and ``causal_conv1d_update`` (the decode
step), on this project's own kernels (ops ``causal_conv1d_fwd``, ``causal_conv1d_bwd`` and
``causal_conv1d_update`` in ``torch.ops.conv1d_ext``; schemas in csrc/core/op_list.h).

Beyond causal-conv1d: any width >= 1, a dilation, float64, seq_idx and initial_states together in either
layout, gradients for initial_states in both layouts, the update with any seqlen.

The ops' fake kernels and autograd are registered in _causal_ops.py.
"""

import torch
import torch.autograd.forward_ad as fwAD

from . import _causal_ops  # noqa: F401  (registers the ops' fake kernels and autograd)
from ._library import ops

__all__ = ["causal_conv1d_fn", "causal_conv1d_update"]


def _silu(activation):
    if activation not in (None, "silu", "swish"):
        raise NotImplementedError("activation must be None, silu, or swish")
    return activation is not None


def _reject_forward_mode(*tensors):
    """The causal ops have no forward-mode rule, and without one PyTorch drops the tangent silently (a
    zero tangent under torch.func.jvp, none under torch.autograd.forward_ad): refuse instead. A tangent on
    any differentiable input shows in fwAD.unpack_dual, under both torch.func.jvp and forward_ad."""
    if torch.compiler.is_compiling():
        return
    for t in tensors:
        if t is not None and fwAD.unpack_dual(t).tangent is not None:
            raise NotImplementedError(
                "causal_conv1d_fn has no forward-mode AD rule (torch.func.jvp, jacfwd, "
                "torch.autograd.forward_ad); use reverse mode (loss.backward() / torch.autograd.grad), or "
                "torch.nn.functional.conv1d on the padded input for forward mode")


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
    float16, bfloat16 (16-bit types accumulate in float32). Deterministic. Reverse mode only: a
    forward-mode tangent (torch.func.jvp, torch.autograd.forward_ad) raises NotImplementedError.
    """
    silu = _silu(activation)
    _reject_forward_mode(x, weight, bias, initial_states)
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
    # Kept lean: at batch 1 a decode step's kernel is as short as the Python around it.
    silu = activation is not None and _silu(activation)
    if x.dim() == 2:
        return _update_op(x.unsqueeze(-1), conv_state, weight, bias, cache_seqlens, conv_state_indices,
                          silu).squeeze(-1)
    return _update_op(x, conv_state, weight, bias, cache_seqlens, conv_state_indices, silu)


# The op's one overload, resolved once (calling the packet resolves it on every call).
_update_op = ops.causal_conv1d_update.default
