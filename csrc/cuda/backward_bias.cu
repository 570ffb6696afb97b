// grad_bias[c] = sum of grad_output[b, c, l] over b and l, deterministic in two passes:
//   pass 1: block (c, chunk) sums `chunk_len` consecutive elements of channel c's (b, l) sequence
//           (per-thread sums in a fixed order, then a fixed-tree block reduction) into the workspace,
//           laid out (channels, chunks);
//   pass 2: one thread per channel adds its chunks' sums in chunk order (sum_partials_kernel).
// When a channel fits in one chunk, pass 1 writes grad_bias directly and there is no workspace.
// The chunking depends only on the shape, so results are bit-identical run to run.
#include "families.h"
#include "reductions.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMinChunk = kThreads * 16;  // elements per block at least
constexpr int64_t kMaxChunks = 256;           // per channel

struct BiasPlan {
  int64_t chunk_len;
  int64_t chunks;
};

BiasPlan bias_plan(int64_t batch, int64_t len) {
  const int64_t per_channel = batch * len;
  BiasPlan plan;
  plan.chunk_len = imax(kMinChunk, ceil_div(per_channel, kMaxChunks));
  plan.chunks = imax<int64_t>(1, ceil_div(per_channel, plan.chunk_len));
  return plan;
}

// out[c * chunks + chunk] (grad_bias[c] when chunks == 1) = sum of the chunk.
template <typename T, typename Out>
__global__ void __launch_bounds__(kThreads)
    bias_partial_kernel(int64_t batch, int64_t channels, int64_t len, int64_t chunk_len, int64_t chunks,
                        const T* grad_output, Out* out) {
  using A = acc_t<T>;
  __shared__ A scratch[kThreads / 32];
  const int64_t per_channel = batch * len;
  const MixedStep step = make_mixed_step(len, kThreads);
  for (int64_t item = blockIdx.x; item < channels * chunks; item += gridDim.x) {
    const int64_t c = item / chunks, chunk = item % chunks;
    const int64_t begin = chunk * chunk_len + threadIdx.x;
    const int64_t end = imin(chunk * chunk_len + chunk_len, per_channel);
    MixedCursor bl = make_mixed_cursor(step, begin);  // (b, l)
    A sum = A(0);
    for (int64_t e = begin; e < end; e += kThreads) {
      sum += to_acc(grad_output[(bl.hi * channels + c) * len + bl.lo]);
      advance_mixed(step, bl);
    }
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) out[item] = static_cast<Out>(sum);
  }
}

}  // namespace

size_t bias_workspace_bytes(int64_t batch, int64_t channels, int64_t len, size_t acc_size) {
  const BiasPlan plan = bias_plan(batch, len);
  return plan.chunks > 1 ? static_cast<size_t>(channels * plan.chunks) * acc_size : 0;
}

template <typename T>
void bias_reduce(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                 void* workspace, Stream stream) {
  const BiasPlan plan = bias_plan(batch, len);
  if (plan.chunks == 1) {
    launch_kernel(bias_partial_kernel<T, T>, dim3(grid_for(channels)), dim3(kThreads), 0, stream, batch,
                  channels, len, plan.chunk_len, plan.chunks, grad_output, grad_bias);
    return;
  }
  auto* partials = static_cast<acc_t<T>*>(workspace);
  launch_kernel(bias_partial_kernel<T, acc_t<T>>, dim3(grid_for(channels * plan.chunks)), dim3(kThreads), 0,
                stream, batch, channels, len, plan.chunk_len, plan.chunks, grad_output, partials);
  launch_sum_partials(static_cast<const acc_t<T>*>(partials), plan.chunks, channels,
                      PartialsLayout{1, plan.chunks}, StoreSum<T>{grad_bias}, stream);
}

#define C1D_INSTANTIATE(T) \
  template void bias_reduce<T>(int64_t, int64_t, int64_t, const T*, T*, void*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
