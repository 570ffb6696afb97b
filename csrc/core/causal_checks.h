// Argument checks of the causal ops (causal_conv1d_fwd / _bwd / _update), in the style of op_common.h:
// each raises a RuntimeError (TORCH_CHECK) with a message naming the argument, and returns the params
// struct the kernels use (causal_params.h), built here once.
#pragma once

#include <optional>

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "core/causal_params.h"
#include "core/op_common.h"

namespace conv1d_ext {

inline CausalStrides causal_strides(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// A (batch, seqlen, dim) contiguous tensor seen as (batch, dim, seqlen): kept in that layout.
inline bool causal_channels_last(const at::Tensor& x) {
  return !x.is_contiguous() && x.size(1) > 1 && x.stride(1) == 1 && x.stride(2) == x.size(1) &&
         x.stride(0) == x.size(1) * x.size(2);
}

// A new (batch, dim, len) tensor laid out like x (channels-last or contiguous); NaN when poisoning.
inline at::Tensor causal_new_like(const at::Tensor& x) {
  if (causal_channels_last(x)) {
    return new_output({x.size(0), x.size(2), x.size(1)}, x.options()).transpose(1, 2);
  }
  return new_output({x.size(0), x.size(1), x.size(2)}, x.options());
}

inline bool causal_defined(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

inline void causal_check_index(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK(t.scalar_type() == at::kInt, "causal_conv1d: ", name, " must be int32, but got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), "causal_conv1d: ", name, " must be on ", x.device(), ", but is on ",
              t.device());
}

// x (batch, dim, seqlen), weight (dim, width), bias (dim), seq_idx (batch, seqlen) int32,
// initial_states (batch, dim, (width - 1) * dilation).
// weight (dim, width >= 1) and bias (dim,), of x's type; `op` names the function in the messages.
inline void check_weight_and_bias(const char* op, const at::Tensor& x, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& bias) {
  check_same_type(x, "x", weight, "weight");
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == x.size(1) && weight.size(1) >= 1, op,
              ": expected weight of shape (dim, width) with dim = ", x.size(1),
              " and width >= 1, but got weight of size ", weight.sizes());
  if (causal_defined(bias)) {
    check_same_type(x, "x", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), op, ": expected bias of shape (", x.size(1),
                ",), but got bias of size ", bias->sizes());
  }
}

inline CausalParams check_causal_args(const at::Tensor& x, const at::Tensor& weight,
                                      const std::optional<at::Tensor>& bias,
                                      const std::optional<at::Tensor>& seq_idx,
                                      const std::optional<at::Tensor>& initial_states, int64_t dilation,
                                      bool silu) {
  TORCH_CHECK(dilation > 0, "causal_conv1d: dilation must be positive, but got ", dilation);
  TORCH_CHECK(x.dim() == 3, "causal_conv1d: expected x of shape (batch, dim, seqlen), but got x of size ",
              x.sizes());
  check_floating(x, "x");
  check_weight_and_bias("causal_conv1d", x, weight, bias);
  CausalParams p;
  p.batch = x.size(0);
  p.dim = x.size(1);
  p.len = x.size(2);
  p.width = weight.size(1);
  p.dilation = dilation;
  TORCH_CHECK(!__builtin_mul_overflow(p.width - 1, dilation, &p.state_len),
              "causal_conv1d: the state length (width - 1) * dilation = ", p.width - 1, " * ", dilation,
              " overflows int64");
  p.silu = silu;
  p.x = causal_strides(x);
  if (causal_defined(seq_idx)) {
    causal_check_index(*seq_idx, "seq_idx", x);
    TORCH_CHECK(seq_idx->dim() == 2 && seq_idx->size(0) == p.batch && seq_idx->size(1) == p.len,
                "causal_conv1d: expected seq_idx of shape (", p.batch, ", ", p.len,
                "), but got seq_idx of size ", seq_idx->sizes());
  }
  if (causal_defined(initial_states)) {
    check_same_type(x, "x", *initial_states, "initial_states");
    TORCH_CHECK(initial_states->dim() == 3 && initial_states->size(0) == p.batch &&
                    initial_states->size(1) == p.dim && initial_states->size(2) == p.state_len,
                "causal_conv1d: expected initial_states of shape (", p.batch, ", ", p.dim, ", ", p.state_len,
                ") = (batch, dim, (width - 1) * dilation), but got initial_states of size ",
                initial_states->sizes());
  }
  return p;
}

// grad_output like the forward's output; grad_final_states like its final_states (or undefined).
inline CausalParams check_causal_backward_args(const at::Tensor& x, const at::Tensor& weight,
                                               const std::optional<at::Tensor>& bias,
                                               const std::optional<at::Tensor>& seq_idx,
                                               const std::optional<at::Tensor>& initial_states,
                                               const at::Tensor& grad_out,
                                               const std::optional<at::Tensor>& grad_final_states,
                                               int64_t dilation, bool silu) {
  CausalParams p = check_causal_args(x, weight, bias, seq_idx, initial_states, dilation, silu);
  check_same_type(x, "x", grad_out, "grad_output");
  TORCH_CHECK(grad_out.sizes() == x.sizes(), "causal_conv1d backward: grad_output of size ", grad_out.sizes(),
              " does not match x of size ", x.sizes());
  p.grad_out = causal_strides(grad_out);
  if (causal_defined(grad_final_states)) {
    check_same_type(x, "x", *grad_final_states, "grad_final_states");
    TORCH_CHECK(grad_final_states->dim() == 3 && grad_final_states->size(0) == p.batch &&
                    grad_final_states->size(1) == p.dim && grad_final_states->size(2) == p.state_len,
                "causal_conv1d backward: grad_final_states of size ", grad_final_states->sizes(),
                " does not match (batch, dim, state_len) = (", p.batch, ", ", p.dim, ", ", p.state_len, ")");
  }
  return p;
}

// x (batch, dim, seqlen), conv_state (num_states, dim, state_len >= width - 1), weight (dim, width),
// bias (dim), cache_seqlens (batch) int32, conv_state_indices (batch) int32.
inline CausalUpdateParams check_causal_update_args(const at::Tensor& x, const at::Tensor& conv_state,
                                                   const at::Tensor& weight,
                                                   const std::optional<at::Tensor>& bias,
                                                   const std::optional<at::Tensor>& cache_seqlens,
                                                   const std::optional<at::Tensor>& conv_state_indices,
                                                   bool silu) {
  TORCH_CHECK(x.dim() == 3,
              "causal_conv1d_update: expected x of shape (batch, dim) or (batch, dim, seqlen), "
              "but got x of size ",
              x.sizes());
  check_floating(x, "x");
  check_same_type(x, "x", conv_state, "conv_state");
  check_weight_and_bias("causal_conv1d_update", x, weight, bias);
  CausalUpdateParams p;
  p.batch = x.size(0);
  p.dim = x.size(1);
  p.len = x.size(2);
  p.width = weight.size(1);
  p.silu = silu;
  TORCH_CHECK(conv_state.dim() == 3 && conv_state.size(1) == p.dim && conv_state.size(2) >= p.width - 1,
              "causal_conv1d_update: expected conv_state of shape (batch, ", p.dim,
              ", state_len) with "
              "state_len >= width - 1 = ",
              p.width - 1, ", but got conv_state of size ", conv_state.sizes());
  // conv_state is written in place: like PyTorch's in-place ops, refuse a state whose elements share memory
  // (an expanded tensor) or that overlaps x (the result would depend on the kernels' write order).
  at::assert_no_internal_overlap(conv_state);
  at::assert_no_overlap(conv_state, x);
  p.num_states = conv_state.size(0);
  p.state_len = conv_state.size(2);
  p.x = causal_strides(x);
  p.state = causal_strides(conv_state);
  if (causal_defined(conv_state_indices)) {
    causal_check_index(*conv_state_indices, "conv_state_indices", x);
    TORCH_CHECK(conv_state_indices->dim() == 1 && conv_state_indices->size(0) == p.batch,
                "causal_conv1d_update: expected conv_state_indices of shape (", p.batch, ",), but got size ",
                conv_state_indices->sizes());
  } else {
    TORCH_CHECK(p.num_states == p.batch, "causal_conv1d_update: conv_state has ", p.num_states,
                " rows but x has batch ", p.batch, " (pass conv_state_indices to select rows)");
  }
  if (causal_defined(cache_seqlens)) {
    causal_check_index(*cache_seqlens, "cache_seqlens", x);
    TORCH_CHECK(cache_seqlens->dim() == 1 && cache_seqlens->size(0) == p.batch,
                "causal_conv1d_update: expected cache_seqlens of shape (", p.batch, ",), but got size ",
                cache_seqlens->sizes());
  }
  return p;
}

}  // namespace conv1d_ext
