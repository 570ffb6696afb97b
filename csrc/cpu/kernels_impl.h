// The per-ISA entry points of kernels.h: the ONE place per op that picks the kernel family.
// Included only by kernels_default.cpp / kernels_avx2.cpp, after CPU_CAPABILITY is defined.
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif

#include "cpu/causal.h"
#include "cpu/dense_tiled.h"
#include "cpu/depthwise.h"
#include "cpu/direct.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Forward: the shared channel-multiplier policy (conv1d_params.h). The backward ops of every depthwise
// problem stay on the depthwise kernels, whatever the multiplier: for the C1->64 waveform front end
// fwd+bwd took 67 ms that way against 101 ms with dense backward ops (float32, 2-core Zen 3), because
// dense backward-input wastes most of its 4-channel tile on the single input channel.
inline bool use_depthwise_forward(const Conv1dParams& p) {
  return depthwise_kernels_preferred(p) || (p.is_depthwise() && !dense_tiled_supports(p));
}

// Every op: CONV1D_EXT_CPU_KERNELS=direct, or padding far beyond the tensors (geometry_is_compact,
// conv1d_params.h), runs the direct kernels.
template <typename scalar_t>
void conv1d_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                    const scalar_t* bias, scalar_t* output) {
  if (force_direct_kernels() || !geometry_is_compact(p)) {
    direct_forward(p, input, weight, bias, output);
  } else if (use_depthwise_forward(p)) {
    depthwise_forward(p, input, weight, bias, output);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_forward(p, input, weight, bias, output);
  } else {
    direct_forward(p, input, weight, bias, output);
  }
}

template <typename scalar_t>
void conv1d_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                           scalar_t* grad_input) {
  if (force_direct_kernels() || !geometry_is_compact(p)) {
    direct_backward_input(p, grad_output, weight, grad_input);
  } else if (p.is_depthwise()) {
    depthwise_backward_input(p, grad_output, weight, grad_input);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_backward_input(p, grad_output, weight, grad_input);
  } else {
    direct_backward_input(p, grad_output, weight, grad_input);
  }
}

template <typename scalar_t>
void conv1d_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                            scalar_t* grad_weight) {
  if (force_direct_kernels() || !geometry_is_compact(p)) {
    direct_backward_weight(p, grad_output, input, grad_weight);
  } else if (p.is_depthwise()) {
    depthwise_backward_weight(p, grad_output, input, grad_weight);
  } else if (dense_tiled_supports(p)) {
    dense_tiled_backward_weight(p, grad_output, input, grad_weight);
  } else {
    direct_backward_weight(p, grad_output, input, grad_weight);
  }
}

template <typename scalar_t>
void conv1d_backward_bias(int64_t batch, int64_t channels, int64_t len, const scalar_t* grad_output,
                          scalar_t* grad_bias) {
  backward_bias(batch, channels, len, grad_output, grad_bias);
}

// The backward of conv1d in one call (op conv1d_backward); a null output is not computed. Plain depthwise
// problems at stride 1 get the fused kernel (one pass over grad_output and input) when it saves a pass
// (two or more outputs); every other problem runs the separate ops' dispatch points above.
template <typename scalar_t>
void conv1d_backward(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                     const scalar_t* weight, scalar_t* grad_input, scalar_t* grad_weight,
                     scalar_t* grad_bias) {
  const int outputs = (grad_input != nullptr) + (grad_weight != nullptr) + (grad_bias != nullptr);
  if (outputs >= 2 && !force_direct_kernels() && geometry_is_compact(p) &&
      depthwise_fused_backward_supports(p)) {
    return depthwise_backward_fused(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
  }
  if (grad_input) conv1d_backward_input(p, grad_output, weight, grad_input);
  if (grad_weight) conv1d_backward_weight(p, grad_output, input, grad_weight);
  if (grad_bias) conv1d_backward_bias(p.batch, p.out_channels, p.out_len, grad_output, grad_bias);
}

// Causal ops: one family (causal.h) for every problem.
template <typename scalar_t>
void causal_conv1d_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                           const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init, scalar_t* out,
                           scalar_t* final_states) {
  causal_forward(p, x, weight, bias, seq_idx, init, out, final_states);
}

template <typename scalar_t>
void causal_conv1d_backward(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                            const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,
                            const scalar_t* grad_out, const scalar_t* grad_final, scalar_t* dx,
                            scalar_t* dweight, scalar_t* dbias, scalar_t* dinit) {
  causal_backward(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx, dweight, dbias, dinit);
}

template <typename scalar_t>
void causal_conv1d_update(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state,
                          const scalar_t* weight, const scalar_t* bias, const int32_t* cache_seqlens,
                          const int32_t* state_indices, scalar_t* out) {
  causal_update(p, x, state, weight, bias, cache_seqlens, state_indices, out);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext

#define C1D_INSTANTIATE_CPU_KERNELS_FOR(scalar_t)                                                            \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_forward<scalar_t>(                                   \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*);        \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_input<scalar_t>(                            \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*);                         \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_weight<scalar_t>(                           \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*);                         \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_bias<scalar_t>(int64_t, int64_t, int64_t,   \
                                                                                const scalar_t*, scalar_t*); \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward<scalar_t>(                                  \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*,         \
      scalar_t*, scalar_t*);                                                                                 \
  template void conv1d_ext::cpu::CPU_CAPABILITY::causal_conv1d_forward<scalar_t>(                            \
      const conv1d_ext::CausalParams&, const scalar_t*, const scalar_t*, const scalar_t*, const int32_t*,    \
      const scalar_t*, scalar_t*, scalar_t*);                                                                \
  template void conv1d_ext::cpu::CPU_CAPABILITY::causal_conv1d_backward<scalar_t>(                           \
      const conv1d_ext::CausalParams&, const scalar_t*, const scalar_t*, const scalar_t*, const int32_t*,    \
      const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*, scalar_t*, scalar_t*, scalar_t*);        \
  template void conv1d_ext::cpu::CPU_CAPABILITY::causal_conv1d_update<scalar_t>(                             \
      const conv1d_ext::CausalUpdateParams&, const scalar_t*, scalar_t*, const scalar_t*, const scalar_t*,   \
      const int32_t*, const int32_t*, scalar_t*);

#define C1D_INSTANTIATE_CPU_KERNELS()            \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(float)         \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(double)        \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::BFloat16) \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::Half)
