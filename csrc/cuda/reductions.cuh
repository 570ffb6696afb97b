// The deterministic reductions of the kernel families: a block-wide sum over a fixed tree, and the second
// pass of the two-pass reductions (dense and depthwise backward-weight, bias, causal backward), which adds
// per-split partial sums in split order. Neither uses atomics, and the split counts depend only on the
// shape, so results are bit-identical run to run.
#pragma once

#include "kernel_utils.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// Block-wide sum (fixed reduction tree: the result depends only on the inputs' order). `scratch` holds at
// least blockDim.x / 32 values; blockDim.x is a multiple of 32. Every thread of the block must call it;
// the result is returned to all threads.
template <typename A>
__device__ inline A block_sum(A v, A* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int num_warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A total = A(0);
  for (int w = 0; w < num_warps; ++w) total += scratch[w];  // same order in every thread
  return total;
}

// The plain destination of a second pass: out[e] = the sum, converted to T.
template <typename T>
struct StoreSum {
  T* out;
  __device__ void operator()(int64_t e, acc_t<T> sum) const { out[e] = from_acc<T>(sum); }
};

constexpr int kSumPartialsThreads = 256;

// Where partial s of element e lies: partials[s * split_stride + e * elem_stride] ({count, 1} when each
// split's partials are contiguous, {1, splits} when each element's are).
struct PartialsLayout {
  int64_t split_stride, elem_stride;
};

// Second pass: out(e, sum over s = 0, 1, ..., splits - 1 of partial s of e) for every e < count, one
// thread per element. `Out` is a trivially copyable functor (StoreSum, or a family's own scatter).
template <typename A, typename Out>
__global__ void __launch_bounds__(kSumPartialsThreads)
    sum_partials_kernel(const A* partials, int64_t splits, int64_t count, PartialsLayout layout, Out out) {
  for_each_thread_item(count, [&](int64_t e) {
    A sum = A(0);
    for (int64_t s = 0; s < splits; ++s) sum += partials[s * layout.split_stride + e * layout.elem_stride];
    out(e, sum);
  });
}

template <typename A, typename Out>
inline void launch_sum_partials(const A* partials, int64_t splits, int64_t count, PartialsLayout layout,
                                Out out, Stream stream) {
  launch_kernel(sum_partials_kernel<A, Out>, dim3(grid_for(ceil_div(count, kSumPartialsThreads))),
                dim3(kSumPartialsThreads), 0, stream, partials, splits, count, layout, out);
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
