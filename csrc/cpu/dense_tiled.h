// Register-blocked direct convolution for dense and grouped problems (CPU).
// PLACEHOLDER until the fast-dense work lands: dense_tiled_supports() is false, so the dispatch in
// conv1d_cpu.cpp always takes the generic kernels.
#pragma once

#include "conv1d_params.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

inline bool dense_tiled_supports(const Conv1dParams&) { return false; }

template <typename scalar_t>
void dense_tiled_forward(const Conv1dParams&, const scalar_t*, const scalar_t*, const scalar_t*,
                         scalar_t*) {}
template <typename scalar_t>
void dense_tiled_backward_input(const Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*) {}
template <typename scalar_t>
void dense_tiled_backward_weight(const Conv1dParams&, const scalar_t*, const scalar_t*, scalar_t*) {}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
