// The per-ISA entry points of kernels.h: the ONE place per op that picks the kernel family.
// Included only by kernels_default.cpp / kernels_avx2.cpp, after CPU_CAPABILITY is defined.
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif

#include "cpu/dense_tiled.h"
#include "cpu/depthwise.h"
#include "cpu/direct.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Forward with a large channel multiplier (the C1->64 k80 s4 waveform front end): the register-blocked
// dense kernels reuse each packed input row across a tile of output channels, measured 12.8 ms against
// 13.2 ms for the depthwise kernels (float32, 2-core Zen 3). The backward ops stay depthwise there
// (fwd+bwd 67 ms depthwise against 101 ms dense: dense backward-input wastes most of its 4-channel tile
// on a single input channel).
constexpr int64_t kMaxDepthwiseForwardMultiplier = 8;

inline bool use_depthwise_forward(const Conv1dParams& p) {
  return p.is_depthwise() && (p.out_per_group <= kMaxDepthwiseForwardMultiplier || !dense_tiled_supports(p));
}

template <typename scalar_t>
void conv1d_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                    const scalar_t* bias, scalar_t* output) {
  if (force_direct_kernels()) {
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
  if (force_direct_kernels()) {
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
  if (force_direct_kernels()) {
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

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext

#define C1D_INSTANTIATE_CPU_KERNELS_FOR(scalar_t)                                                      \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_forward<scalar_t>(                             \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*);  \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_input<scalar_t>(                      \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*);                   \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_weight<scalar_t>(                     \
      const conv1d_ext::Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*);                   \
  template void conv1d_ext::cpu::CPU_CAPABILITY::conv1d_backward_bias<scalar_t>(                       \
      int64_t, int64_t, int64_t, const scalar_t*, scalar_t*);

#define C1D_INSTANTIATE_CPU_KERNELS()            \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(float)         \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(double)        \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::BFloat16) \
  C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::Half)
