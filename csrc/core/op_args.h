// The argument struct of every op's kernels: what the op layer (op_layer.h) hands a backend's kernel entry
// point, filled once per call. One struct per op, named in the op list (op_list.h); T is the element type.
// Plain data (no ATen), so the kernel headers of every backend (CPU per-ISA builds, CUDA, emulated CUDA)
// can include it.
//
// Layouts: Conv1dParams (conv1d_params.h) describes the contiguous tensors of the conv1d ops;
// CausalParams / CausalUpdateParams (causal_params.h) the strided and contiguous operands of the causal
// ops. An optional operand (bias, seq_idx, ...) is null when absent; an output of conv1d_backward is null
// when output_mask leaves it out. `workspace` is >= the backend's workspace_bytes(args) of scratch memory,
// 256-byte aligned, or null when that is 0.
#pragma once

#include <cstdint>

#include "core/causal_params.h"
#include "core/conv1d_params.h"

namespace conv1d_ext {

// op conv1d: output = conv(input, weight) + bias
template <typename T>
struct Conv1dForwardArgs {
  Conv1dParams params;
  const T* input;
  const T* weight;
  const T* bias;  // may be null
  T* output;
  void* workspace = nullptr;
};

// op conv1d_backward_input: grad_input (batch, in_channels, in_len) from grad_output and weight
template <typename T>
struct Conv1dBackwardInputArgs {
  Conv1dParams params;
  const T* grad_output;
  const T* weight;
  T* grad_input;
  void* workspace = nullptr;
};

// op conv1d_backward_weight: grad_weight (out_channels, in_per_group, kernel_size) from grad_output, input
template <typename T>
struct Conv1dBackwardWeightArgs {
  Conv1dParams params;
  const T* grad_output;
  const T* input;
  T* grad_weight;
  void* workspace = nullptr;
};

// op conv1d_backward_bias: grad_bias[c] = sum over batch and len of grad_output (batch, channels, len)
template <typename T>
struct Conv1dBackwardBiasArgs {
  int64_t batch, channels, len;
  const T* grad_output;
  T* grad_bias;
  void* workspace = nullptr;
};

// op conv1d_backward: the three gradients in one call; a null output is not computed
template <typename T>
struct Conv1dBackwardArgs {
  Conv1dParams params;
  const T* grad_output;
  const T* input;   // read only for grad_weight
  const T* weight;  // read only for grad_input
  T* grad_input;
  T* grad_weight;
  T* grad_bias;
  void* workspace = nullptr;
};

// op causal_conv1d_fwd: out and final_states from x, weight; bias, seq_idx, init may be null
template <typename T>
struct CausalForwardArgs {
  CausalParams params;
  const T* x;
  const T* weight;
  const T* bias;
  const int32_t* seq_idx;
  const T* init;
  T* out;
  T* final_states;
  void* workspace = nullptr;
};

// op causal_conv1d_bwd: dx, dweight, dbias, dinit in one pass; bias, seq_idx, init, grad_final may be null
template <typename T>
struct CausalBackwardArgs {
  CausalParams params;
  const T* x;
  const T* weight;
  const T* bias;
  const int32_t* seq_idx;
  const T* init;
  const T* grad_out;
  const T* grad_final;
  T* dx;
  T* dweight;
  T* dbias;
  T* dinit;
  void* workspace = nullptr;
};

// op causal_conv1d_update: out from x and state, state updated in place; bias, cache_seqlens and
// state_indices may be null
template <typename T>
struct CausalUpdateArgs {
  CausalUpdateParams params;
  const T* x;
  T* state;
  const T* weight;
  const T* bias;
  const int32_t* cache_seqlens;
  const int32_t* state_indices;
  T* out;
  void* workspace = nullptr;
};

}  // namespace conv1d_ext
