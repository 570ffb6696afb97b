// Device helpers shared by the CUDA kernel families (csrc/cuda/*.cu).
// Everything here is __host__ __device__ or __device__ code that compiles both under nvcc and under g++
// with CONV1D_EXT_EMULATE (the CPU emulator of tests/cuda_emu/), so it uses no intrinsics beyond the
// feature list at the top of dispatch.cu.
#pragma once

// First: under emulation it defines __host__/__device__, which conv1d_params.h uses.
#include "cuda_compat.cuh"

#include <cstddef>
#include <cstdint>
#if defined(CONV1D_EXT_EMULATE)
#include <cstring>
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "core/conv1d_params.h"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// Accumulation type: float for the 16-bit types and float, double for double.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccType<T>::type;

template <typename T>
C1D_HOST_DEVICE inline acc_t<T> to_acc(T v) {
  return static_cast<acc_t<T>>(v);
}
template <typename T>
C1D_HOST_DEVICE inline T from_acc(acc_t<T> v) {
  return static_cast<T>(v);
}

// std::min/max are not __device__ without --expt-relaxed-constexpr; these are.
template <typename I>
C1D_HOST_DEVICE inline I imin(I a, I b) {
  return a < b ? a : b;
}
template <typename I>
C1D_HOST_DEVICE inline I imax(I a, I b) {
  return a > b ? a : b;
}
C1D_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Floor division for a possibly negative numerator and a positive divisor.
C1D_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (q * b > a) ? q - 1 : q;
}
C1D_HOST_DEVICE inline int64_t gcd64(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

// 16 bytes of T, loaded and stored as one vector access (ld.global.v4 under nvcc). Only used on
// addresses that are 16-byte aligned.
template <typename T>
struct alignas(16) Vec16 {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

// Vector access to memory that must be aligned to alignof(V) (16 bytes). On a GPU a misaligned vector
// access traps; on the emulator's x86 host it would silently work, so there it reads all-ones bytes
// (NaN) instead, which the conformance tests see as wrong results.
template <typename V, typename P>
__device__ __forceinline__ V load_aligned(const P* ptr) {
#if defined(CONV1D_EXT_EMULATE)
  if (reinterpret_cast<uintptr_t>(ptr) % alignof(V) != 0) {
    V poisoned;
    std::memset(static_cast<void*>(&poisoned), 0xff, sizeof(V));
    return poisoned;
  }
#endif
  return *reinterpret_cast<const V*>(ptr);
}
template <typename V, typename P>
__device__ __forceinline__ void store_aligned(P* ptr, const V& value) {
#if defined(CONV1D_EXT_EMULATE)
  if (reinterpret_cast<uintptr_t>(ptr) % alignof(V) != 0) {
    std::memset(static_cast<void*>(ptr), 0xff, sizeof(V));
    return;
  }
#endif
  *reinterpret_cast<V*>(ptr) = value;
}

// A mixed-radix counter (hi, lo) with lo in [0, radix): the coordinates of a linear K index
// hi*radix + lo, advanced by a fixed amount without dividing.
struct MixedCursor {
  int64_t hi;
  int64_t lo;
};
struct MixedStep {
  int64_t radix;
  int64_t hi;  // step / radix
  int64_t lo;  // step % radix
};
C1D_HOST_DEVICE inline MixedStep make_mixed_step(int64_t radix, int64_t step) {
  MixedStep s;
  s.radix = radix > 0 ? radix : 1;
  s.hi = step / s.radix;
  s.lo = step % s.radix;
  return s;
}
C1D_HOST_DEVICE inline MixedCursor make_mixed_cursor(const MixedStep& s, int64_t linear) {
  return MixedCursor{linear / s.radix, linear % s.radix};
}
C1D_HOST_DEVICE inline void advance_mixed(const MixedStep& s, MixedCursor& c) {
  c.hi += s.hi;
  c.lo += s.lo;
  if (c.lo >= s.radix) {
    c.lo -= s.radix;
    c.hi += 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Phase decomposition of the backward-input problem.
//
// Forward: input position i = t*stride - pad_left + tap*dilation. A tap only ever reaches input
// positions of one residue class modulo the stride, so grad_input splits into `stride` phases
// rho = 0..stride-1: positions i = rho + stride*u. In phase rho the taps that reach it are
//   tap = first_tap + m*tap_step,  m = 0..num_taps-1,
// and output position t = u + out_offset - m*out_step. Each phase is then a stride-1 problem over u
// (no divisibility tests per element, no zero insertion, no atomics).
struct BackwardPhase {
  int64_t first_tap;   // smallest tap in the phase (meaningless when num_taps == 0)
  int64_t tap_step;    // stride / gcd(stride, dilation)
  int64_t num_taps;    // 0 when no tap reaches this residue class (grad_input is 0 there)
  int64_t out_offset;  // t for u = 0 and m = 0
  int64_t out_step;    // dilation / gcd(stride, dilation)
  int64_t len;         // number of input positions in the phase: ceil((in_len - rho) / stride)
};

// Phases that hold at least one grad_input position: rho < min(stride, in_len).
C1D_HOST_DEVICE inline int64_t num_backward_phases(const Conv1dParams& p) {
  return p.stride < p.in_len ? p.stride : p.in_len;
}

C1D_HOST_DEVICE inline BackwardPhase backward_phase(const Conv1dParams& p, int64_t rho) {
  BackwardPhase ph;
  const int64_t g = gcd64(p.stride, p.dilation);
  ph.tap_step = p.stride / g;
  ph.out_step = p.dilation / g;
  ph.len = rho < p.in_len ? (p.in_len - rho + p.stride - 1) / p.stride : 0;
  ph.num_taps = 0;
  ph.first_tap = 0;
  ph.out_offset = 0;
  // tap*dilation mod stride repeats with period tap_step, so the first tap is among the first tap_step.
  const int64_t limit = imin(p.kernel_size, ph.tap_step);
  for (int64_t tap = 0; tap < limit; ++tap) {
    const int64_t r = (tap * p.dilation - p.pad_left - rho) % p.stride;  // C++: sign of numerator
    if (r == 0) {
      ph.first_tap = tap;
      ph.num_taps = (p.kernel_size - 1 - tap) / ph.tap_step + 1;
      ph.out_offset = (rho + p.pad_left - tap * p.dilation) / p.stride;  // exact division
      break;
    }
  }
  return ph;
}

// Grid size for a grid-stride loop over `work` items of one block each; kernels loop
// `for (item = blockIdx.x; item < work; item += gridDim.x)`, so any 64-bit amount of work fits. For items
// of one thread each (for_each_thread_item), work = ceil_div(items, block size).
inline unsigned int grid_for(int64_t work) {
  const int64_t max_grid = 1 << 30;
  return static_cast<unsigned int>(work < max_grid ? work : max_grid);
}

// The grid-stride loop over `count` items of one thread each: f(i) for every i < count, in the thread
// whose global index is i modulo the grid's thread count.
template <typename F>
__device__ __forceinline__ void for_each_thread_item(int64_t count, F f) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) f(i);
}

// Sets every element of a (multi-dimensional) accumulator array to 0.
template <typename V>
__device__ __forceinline__ void fill_zero(V& v) {
  v = V(0);
}
template <typename V, size_t N>
__device__ __forceinline__ void fill_zero(V (&a)[N]) {
#pragma unroll
  for (size_t i = 0; i < N; ++i) fill_zero(a[i]);
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
