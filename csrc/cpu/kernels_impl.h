// The per-ISA entry points of kernels.h, OpKernels<T>: the ONE place per op that picks the kernel family.
// Each takes its op's argument struct (core/op_args.h) and unpacks it into the family's own signature.
// Included only by the kernels_*.cpp files, after isa_prelude.h and CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/causal.h"
#include "cpu/dense_tiled.h"
#include "cpu/depthwise.h"
#include "cpu/direct.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Forward: the shared channel-multiplier policy (core/conv1d_params.h). The backward ops of every
// depthwise problem stay on the depthwise kernels, whatever the multiplier: dense backward-input wastes
// most of its 4-channel tile on the single input channel, which made the C1->64 waveform front end's
// backward slower on the dense kernels (measurement: docs/cpu-kernels.md).
inline bool use_depthwise_forward(const Conv1dParams& p) {
  return depthwise_kernels_preferred(p) || (p.is_depthwise() && !dense_tiled_supports(p));
}

// The direct kernels take every conv1d problem under CONV1D_EXT_CPU_KERNELS=direct, and every problem
// with padding far beyond the tensors (geometry_is_compact, core/conv1d_params.h).
inline bool use_direct(const Conv1dParams& p) { return force_direct_kernels() || !geometry_is_compact(p); }

template <typename T>
void OpKernels<T>::conv1d(const Conv1dForwardArgs<T>& a) {
  const Conv1dParams& p = a.params;
  if (use_direct(p)) {
    direct_forward(p, a.input, a.weight, a.bias, a.output);
  } else if (use_depthwise_forward(p)) {
    depthwise_forward(p, a.input, a.weight, a.bias, a.output);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_forward(p, a.input, a.weight, a.bias, a.output);
  } else {
    direct_forward(p, a.input, a.weight, a.bias, a.output);
  }
}

template <typename T>
void OpKernels<T>::conv1d_backward_input(const Conv1dBackwardInputArgs<T>& a) {
  const Conv1dParams& p = a.params;
  if (use_direct(p)) {
    direct_backward_input(p, a.grad_output, a.weight, a.grad_input);
  } else if (p.is_depthwise()) {
    depthwise_backward_input(p, a.grad_output, a.weight, a.grad_input);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_backward_input(p, a.grad_output, a.weight, a.grad_input);
  } else {
    direct_backward_input(p, a.grad_output, a.weight, a.grad_input);
  }
}

template <typename T>
void OpKernels<T>::conv1d_backward_weight(const Conv1dBackwardWeightArgs<T>& a) {
  const Conv1dParams& p = a.params;
  if (use_direct(p)) {
    direct_backward_weight(p, a.grad_output, a.input, a.grad_weight);
  } else if (p.is_depthwise()) {
    depthwise_backward_weight(p, a.grad_output, a.input, a.grad_weight);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_backward_weight(p, a.grad_output, a.input, a.grad_weight);
  } else {
    direct_backward_weight(p, a.grad_output, a.input, a.grad_weight);
  }
}

template <typename T>
void OpKernels<T>::conv1d_backward_bias(const Conv1dBackwardBiasArgs<T>& a) {
  backward_bias(a.batch, a.channels, a.len, a.grad_output, a.grad_bias);
}

// The backward of conv1d in one call; a null output is not computed. Plain depthwise problems at stride 1
// get the fused kernel (one pass over grad_output and input) when it saves a pass (two or more outputs);
// every other problem runs the separate ops' dispatch points above.
template <typename T>
void OpKernels<T>::conv1d_backward(const Conv1dBackwardArgs<T>& a) {
  const Conv1dParams& p = a.params;
  const int outputs = (a.grad_input != nullptr) + (a.grad_weight != nullptr) + (a.grad_bias != nullptr);
  if (outputs >= 2 && !use_direct(p) && depthwise_fused_backward_supports(p)) {
    return depthwise_backward_fused(p, a.grad_output, a.input, a.weight, a.grad_input, a.grad_weight,
                                    a.grad_bias);
  }
  if (a.grad_input) conv1d_backward_input({p, a.grad_output, a.weight, a.grad_input, a.workspace});
  if (a.grad_weight) conv1d_backward_weight({p, a.grad_output, a.input, a.grad_weight, a.workspace});
  if (a.grad_bias) {
    conv1d_backward_bias({p.batch, p.out_channels, p.out_len, a.grad_output, a.grad_bias, a.workspace});
  }
}

// Causal ops: one family (causal.h) for every problem.
template <typename T>
void OpKernels<T>::causal_conv1d_fwd(const CausalForwardArgs<T>& a) {
  causal_forward(a.params, a.x, a.weight, a.bias, a.seq_idx, a.init, a.out, a.final_states);
}

template <typename T>
void OpKernels<T>::causal_conv1d_bwd(const CausalBackwardArgs<T>& a) {
  causal_backward(a.params, a.x, a.weight, a.bias, a.seq_idx, a.init, a.grad_out, a.grad_final, a.dx,
                  a.dweight, a.dbias, a.dinit);
}

template <typename T>
void OpKernels<T>::causal_conv1d_update(const CausalUpdateArgs<T>& a) {
  causal_update(a.params, a.x, a.state, a.weight, a.bias, a.cache_seqlens, a.state_indices, a.out);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext

// Every entry point of this ISA for element type T (explicit instantiation of the class instantiates them
// all).
#define C1D_INSTANTIATE_CPU_KERNELS_FOR(T) template struct conv1d_ext::cpu::CPU_CAPABILITY::OpKernels<T>;

#define C1D_INSTANTIATE_CPU_KERNELS()            \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(float)         \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(double)        \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::BFloat16) \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::Half)
