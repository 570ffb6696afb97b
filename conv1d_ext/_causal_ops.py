"""Python side of the causal ops (causal_conv1d_fwd, causal_conv1d_bwd, causal_conv1d_update; schemas
in csrc/core/op_list.h, kernels on the CPU and CUDA): their fake kernels (torch.compile, FakeTensor, meta) and
the autograd of causal_conv1d_fwd. The public interface is conv1d_ext.causal.

The fake kernels check what the shape computation needs and reject, with the same exception type, the
calls the real kernels reject; the detailed messages live once, in the C++ checks (csrc/core/causal_checks.h).
"""

import torch

from ._library import FLOATING, NAMESPACE, ops, require

_NS = NAMESPACE


def _channels_last(x):
    """A (batch, seqlen, dim) contiguous tensor transposed to (batch, dim, seqlen); the same test as the C++
    op layer (csrc/core/causal_checks.h), so fake and real outputs have the same strides."""
    return (not x.is_contiguous() and x.shape[1] > 1 and x.stride(1) == 1 and x.stride(2) == x.shape[1]
            and x.stride(0) == x.shape[1] * x.shape[2])


def _new_like_x(x):
    if _channels_last(x):
        return x.new_empty((x.shape[0], x.shape[2], x.shape[1])).transpose(1, 2)
    return x.new_empty((x.shape[0], x.shape[1], x.shape[2]))


def _check_causal(op, x, weight, bias, seq_idx, initial_states, dilation):
    require(op, dilation > 0, "dilation must be positive")
    require(op, x.dim() == 3 and weight.dim() == 2, "x must be (batch, dim, seqlen), weight (dim, width)")
    require(op, x.dtype in FLOATING, "x must be float32, float64, float16 or bfloat16")
    others = [t for t in (weight, bias, initial_states) if t is not None]
    require(op, all(t.dtype == x.dtype and t.device == x.device for t in others),
            "weight, bias and initial_states must have x's dtype and device")
    batch, dim, seqlen = x.shape
    width = weight.shape[1]
    require(op, weight.shape[0] == dim and width >= 1, "weight must be (dim, width)")
    require(op, bias is None or (bias.dim() == 1 and bias.shape[0] == dim), "bias must be (dim,)")
    if seq_idx is not None:
        require(op, seq_idx.dtype == torch.int32 and seq_idx.device == x.device, "seq_idx must be int32")
        require(op, seq_idx.dim() == 2 and seq_idx.shape[0] == batch and seq_idx.shape[1] == seqlen,
                "seq_idx must be (batch, seqlen)")
    state_len = (width - 1) * dilation
    if initial_states is not None:
        require(op, initial_states.dim() == 3 and initial_states.shape[0] == batch
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
    require(op, grad_out.shape == x.shape and grad_out.dtype == x.dtype, "grad_out must be like x")
    if grad_final_states is not None:
        require(op, grad_final_states.shape == (batch, dim, state_len), "grad_final_states must be like "
                "final_states")
    return (_new_like_x(x), x.new_empty((dim, width)), x.new_empty((dim,)),
            x.new_empty((batch, dim, state_len)))


@torch.library.register_fake(f"{_NS}::causal_conv1d_update")
def _causal_update_fake(x, conv_state, weight, bias, cache_seqlens, conv_state_indices, silu):
    op = "causal_conv1d_update"
    require(op, x.dim() == 3 and weight.dim() == 2 and conv_state.dim() == 3,
            "x must be (batch, dim, seqlen), weight (dim, width), conv_state (batch, dim, state_len)")
    require(op, x.dtype in FLOATING, "x must be float32, float64, float16 or bfloat16")
    others = [t for t in (conv_state, weight, bias) if t is not None]
    require(op, all(t.dtype == x.dtype and t.device == x.device for t in others),
            "conv_state, weight and bias must have x's dtype and device")
    batch, dim, seqlen = x.shape
    require(op, weight.shape[0] == dim and weight.shape[1] >= 1, "weight must be (dim, width)")
    require(op, conv_state.shape[1] == dim and conv_state.shape[2] >= weight.shape[1] - 1,
            "conv_state must be (batch, dim, state_len >= width - 1)")
    require(op, bias is None or (bias.dim() == 1 and bias.shape[0] == dim), "bias must be (dim,)")
    for name, t in (("cache_seqlens", cache_seqlens), ("conv_state_indices", conv_state_indices)):
        if t is not None:
            require(op, t.dtype == torch.int32 and t.dim() == 1 and t.shape[0] == batch,
                    f"{name} must be int32 (batch,)")
    if conv_state_indices is None:
        require(op, conv_state.shape[0] == batch, "conv_state must have x's batch")
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
