// Depthwise convolution (in_per_group == 1, output channel oc reads input channel oc / out_per_group):
// forward, backward-input and backward-weight.
//
// Forward and backward-input are the same row kernel. A block computes a tile of `tile_out` positions
// of one output row: y[y_first + y_step*u] = bias + sum over input rows r and taps m of
//   w[r][m] * x_r[u*x_step + x_off + m*tap_dist].
// Forward: one input row per output row (b, oc); x_step = stride, x_off = -pad_left, tap_dist = dilation.
// Backward-input (per phase rho of the stride, see BackwardPhase): output row (b, g, rho) sums over the
// out_per_group grad_output rows of group g; x_step = 1, x_off = out_offset, tap_dist = -out_step and
// the phase's taps. The input span of a tile goes to shared memory with 16-byte vector loads wherever
// a whole vector lies inside the row (scalar loads with zero padding at the edges); each thread then
// computes kOutPerThread outputs (strided by the block size: conflict-free reads, coalesced stores)
// with the weights of up to kTapGroup taps in registers. Kernels longer than kTapGroup are walked in
// groups of kTapGroup taps, each restaging its own span, so shared memory is bounded by
// (tile_out - 1) * x_step + (kTapGroup - 1) * |tap_dist| + 1 elements for any kernel size.
//
// Backward-weight: block (oc, chunk) walks a fixed range of (b, t) tiles; each thread keeps one
// register sum per tap of the current tap group; a fixed-tree block reduction gives the chunk's
// partial per tap, and a second pass adds the chunks in order (sum_partials_kernel; no atomics:
// bit-identical results).
#include "families.h"
#include "reductions.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int kThreads = 128;
// Outputs per thread = elements per 16-byte vector (4 float, 8 half/bfloat16, 2 double): a full tile's
// span is about one vector load per thread at stride 1.
template <typename T>
constexpr int out_per_thread() {
  return Vec16<T>::kSize;
}
template <typename T>
constexpr int tile_out_max() {
  return kThreads * out_per_thread<T>();
}
inline int64_t tile_out_max(size_t elem_size) { return kThreads * static_cast<int64_t>(16 / elem_size); }
constexpr int kTapGroup = 8;
constexpr size_t kSmemBudget = 48 * 1024;  // no opt-in needed on any architecture
constexpr int kMinTileOut = kThreads;      // smaller tiles: the implicit GEMM does better

// Shared-memory elements for a span of `tile_out` outputs at x_step with taps `tap_dist` apart:
// the span, plus up to one vector of leading misalignment and one of rounding.
template <typename T>
C1D_HOST_DEVICE inline int64_t span_capacity(int64_t tile_out, int64_t x_step, int64_t tap_dist,
                                             int64_t num_taps) {
  const int64_t group = imin<int64_t>(num_taps, kTapGroup);
  const int64_t dist = tap_dist < 0 ? -tap_dist : tap_dist;
  return (tile_out - 1) * x_step + (group - 1) * dist + 1 + 2 * Vec16<T>::kSize;
}

// The largest tile (<= tile_out_max) whose span fits the budget; 0 when even kMinTileOut does not fit.
inline int64_t pick_tile_out(int64_t x_step, int64_t tap_dist, int64_t num_taps, size_t elem_size) {
  const int64_t vec = 16 / static_cast<int64_t>(elem_size);
  const int64_t group = imin<int64_t>(num_taps, kTapGroup);
  const int64_t dist = tap_dist < 0 ? -tap_dist : tap_dist;
  const int64_t budget = static_cast<int64_t>(kSmemBudget / elem_size) - 2 * vec - (group - 1) * dist - 1;
  if (budget < 0) return 0;
  const int64_t tile = imin<int64_t>(tile_out_max(elem_size), budget / x_step + 1);
  return tile >= kMinTileOut ? tile : 0;
}

template <typename T>
size_t smem_bytes_for(int64_t tile_out, int64_t x_step, int64_t tap_dist, int64_t num_taps) {
  return static_cast<size_t>(span_capacity<T>(tile_out, x_step, tap_dist, num_taps)) * sizeof(T);
}

// smem[lead + i] = row[start + i] for i in [0, span) (0 outside [0, row_len)); returns lead, the
// misalignment that makes every vector load 16-byte aligned. No barrier inside.
template <typename T>
__device__ inline int stage_span(const T* row, int64_t row_len, int64_t start, int64_t span, T* smem) {
  constexpr int V = Vec16<T>::kSize;
  const uint64_t elem_addr = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(row) / sizeof(T));
  const int lead = static_cast<int>((elem_addr + static_cast<uint64_t>(start)) & (V - 1));
  const int64_t first = start - lead;
  const int64_t num_vec = (lead + span + V - 1) / V;
  const T zero = from_acc<T>(acc_t<T>(0));
  for (int64_t c = threadIdx.x; c < num_vec; c += blockDim.x) {
    const int64_t pos = first + c * V;
    if (pos >= 0 && pos + V <= row_len) {
      store_aligned(smem + c * V, load_aligned<Vec16<T>>(row + pos));
    } else {
      for (int e = 0; e < V; ++e) {
        const int64_t q = pos + e;
        smem[c * V + e] = (q >= 0 && q < row_len) ? row[q] : zero;
      }
    }
  }
  return lead;
}

// One output row of the forward / backward-input row kernel.
template <typename T>
struct RowJob {
  T* y;
  int64_t y_first, y_step, len;  // y[y_first + y_step*u], u in [0, len)
  const T* x;                    // input row r: x + r*x_row_stride, length x_len
  int64_t x_row_stride, x_len, num_rows;
  const T* w;  // tap m of row r: w[r*w_row_stride + m*w_tap_step]
  int64_t w_row_stride, w_tap_step, num_taps;
  int64_t x_step, x_off, tap_dist;
  acc_t<T> bias;
};

template <typename T, bool kBackward>
struct RowArgs {
  Conv1dParams p;
  const T* x;     // forward: input;  backward: grad_output
  const T* w;     // weight
  const T* bias;  // forward only, may be null
  T* y;           // forward: output; backward: grad_input
  int64_t rows, tiles_per_row, tile_out;
  int64_t phases;  // backward: num_backward_phases(p)

  __device__ RowJob<T> job(int64_t row) const {
    RowJob<T> j;
    if (!kBackward) {  // row = (b, oc)
      const int64_t oc = row % p.out_channels, b = row / p.out_channels;
      const int64_t g = oc / p.out_per_group;
      j.y = y + row * p.out_len;
      j.y_first = 0;
      j.y_step = 1;
      j.len = p.out_len;
      j.x = x + (b * p.in_channels + g) * p.in_len;
      j.x_row_stride = 0;
      j.x_len = p.in_len;
      j.num_rows = 1;
      j.w = w + oc * p.kernel_size;
      j.w_row_stride = 0;
      j.w_tap_step = 1;
      j.num_taps = p.kernel_size;
      j.x_step = p.stride;
      j.x_off = -p.pad_left;
      j.tap_dist = p.dilation;
      j.bias = bias != nullptr ? to_acc(bias[oc]) : acc_t<T>(0);
    } else {  // row = (b, g, rho)
      const int64_t rho = row % phases, bg = row / phases;
      const int64_t g = bg % p.in_channels, b = bg / p.in_channels;
      const BackwardPhase ph = backward_phase(p, rho);
      j.y = y + bg * p.in_len;
      j.y_first = rho;
      j.y_step = p.stride;
      j.len = ph.len;
      j.x = x + (b * p.out_channels + g * p.out_per_group) * p.out_len;
      j.x_row_stride = p.out_len;
      j.x_len = p.out_len;
      j.num_rows = p.out_per_group;
      j.w = w + g * p.out_per_group * p.kernel_size + ph.first_tap;
      j.w_row_stride = p.kernel_size;
      j.w_tap_step = ph.tap_step;
      j.num_taps = ph.num_taps;
      j.x_step = 1;
      j.x_off = ph.out_offset;
      j.tap_dist = -ph.out_step;
      j.bias = acc_t<T>(0);
    }
    return j;
  }
};

// Occupancy: a bandwidth-bound kernel wants many loads in flight. Forward fits 64 registers without
// spills (8 blocks of 128 threads per SM); backward's phase bookkeeping needs more, within the 128 of 4
// blocks (ptxas -v).
template <typename T, bool kBackward>
__global__ void __launch_bounds__(kThreads, kBackward ? 4 : 8)
    depthwise_rows_kernel(RowArgs<T, kBackward> args) {
  using A = acc_t<T>;
  constexpr int kOutPerThread = out_per_thread<T>();
  T* smem = dynamic_smem<T>();
  const int64_t items = args.rows * args.tiles_per_row;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const RowJob<T> job = args.job(item / args.tiles_per_row);
    const int64_t u0 = (item % args.tiles_per_row) * args.tile_out;
    if (u0 >= job.len) continue;  // block-uniform: a short phase
    const int64_t tile_n = imin(args.tile_out, job.len - u0);

    A acc[kOutPerThread];
#pragma unroll
    for (int q = 0; q < kOutPerThread; ++q) acc[q] = job.bias;

    for (int64_t r = 0; r < job.num_rows; ++r) {
      const T* x_row = job.x + r * job.x_row_stride;
      const T* w_row = job.w + r * job.w_row_stride;
      for (int64_t m0 = 0; m0 < job.num_taps; m0 += kTapGroup) {
        const int64_t group = imin<int64_t>(kTapGroup, job.num_taps - m0);
        // Offsets of the group's first and last tap; the span starts at the lower one.
        const int64_t d_first = m0 * job.tap_dist, d_last = (m0 + group - 1) * job.tap_dist;
        const int64_t lo = imin(d_first, d_last), hi = imax(d_first, d_last);
        const int64_t start = u0 * job.x_step + job.x_off + lo;
        const int64_t span = (tile_n - 1) * job.x_step + (hi - lo) + 1;
        A wr[kTapGroup];
#pragma unroll
        for (int m = 0; m < kTapGroup; ++m)
          wr[m] = m < group ? to_acc(w_row[(m0 + m) * job.w_tap_step]) : A(0);
        __syncthreads();  // the previous span is no longer read
        const int lead = stage_span(x_row, job.x_len, start, span, smem);
        __syncthreads();
#pragma unroll
        for (int q = 0; q < kOutPerThread; ++q) {
          const int64_t u = threadIdx.x + q * kThreads;
          if (u < tile_n) {
            const T* s = smem + lead + u * job.x_step + d_first - lo;
#pragma unroll
            for (int m = 0; m < kTapGroup; ++m)
              if (m < group) acc[q] += wr[m] * to_acc(s[m * job.tap_dist]);
          }
        }
      }
    }
#pragma unroll
    for (int q = 0; q < kOutPerThread; ++q) {
      const int64_t u = threadIdx.x + q * kThreads;
      if (u < tile_n) job.y[job.y_first + (u0 + u) * job.y_step] = from_acc<T>(acc[q]);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Backward-weight.

template <typename T>
struct WeightArgs {
  Conv1dParams p;
  const T* grad_output;
  const T* input;
  T* grad_weight;      // chunks == 1
  acc_t<T>* partials;  // (chunks, out_channels * kernel_size) otherwise
  int64_t tiles_per_row, chunks, tiles_per_chunk;
};

template <typename T>
__global__ void __launch_bounds__(kThreads) depthwise_weight_kernel(WeightArgs<T> a) {
  using A = acc_t<T>;
  constexpr int kOutPerThread = out_per_thread<T>();
  constexpr int kTileOut = tile_out_max<T>();
  __shared__ A scratch[kThreads / 32];
  T* smem = dynamic_smem<T>();
  const Conv1dParams& p = a.p;
  const int64_t total_tiles = p.batch * a.tiles_per_row;
  const int64_t items = p.out_channels * a.chunks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t oc = item / a.chunks, chunk = item % a.chunks;
    const int64_t g = oc / p.out_per_group;
    const int64_t tile_begin = chunk * a.tiles_per_chunk;
    const int64_t tile_end = imin(tile_begin + a.tiles_per_chunk, total_tiles);
    for (int64_t m0 = 0; m0 < p.kernel_size; m0 += kTapGroup) {
      const int64_t group = imin<int64_t>(kTapGroup, p.kernel_size - m0);
      A sums[kTapGroup];
#pragma unroll
      for (int m = 0; m < kTapGroup; ++m) sums[m] = A(0);
      for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
        const int64_t b = tile / a.tiles_per_row;
        const int64_t t0 = (tile % a.tiles_per_row) * kTileOut;
        const int64_t tile_n = imin<int64_t>(kTileOut, p.out_len - t0);
        const T* dy = a.grad_output + (b * p.out_channels + oc) * p.out_len + t0;
        const T* x_row = a.input + (b * p.in_channels + g) * p.in_len;
        A gy[kOutPerThread];
#pragma unroll
        for (int q = 0; q < kOutPerThread; ++q) {
          const int64_t u = threadIdx.x + q * kThreads;
          gy[q] = u < tile_n ? to_acc(dy[u]) : A(0);
        }
        const int64_t start = t0 * p.stride - p.pad_left + m0 * p.dilation;
        const int64_t span = (tile_n - 1) * p.stride + (group - 1) * p.dilation + 1;
        __syncthreads();
        const int lead = stage_span(x_row, p.in_len, start, span, smem);
        __syncthreads();
#pragma unroll
        for (int q = 0; q < kOutPerThread; ++q) {
          const int64_t u = threadIdx.x + q * kThreads;
          if (u < tile_n) {
            const T* s = smem + lead + u * p.stride;
#pragma unroll
            for (int m = 0; m < kTapGroup; ++m)
              if (m < group) sums[m] += gy[q] * to_acc(s[m * p.dilation]);
          }
        }
      }
      for (int m = 0; m < group; ++m) {
        const A total = block_sum(sums[m], scratch);
        if (threadIdx.x == 0) {
          const int64_t e = oc * p.kernel_size + m0 + m;
          if (a.chunks == 1) {
            a.grad_weight[e] = from_acc<T>(total);
          } else {
            a.partials[chunk * p.out_channels * p.kernel_size + e] = total;
          }
        }
      }
    }
  }
}

constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinTilesPerChunk = 4;

struct WeightPlan {
  int64_t tiles_per_row, chunks, tiles_per_chunk;
};

WeightPlan weight_plan(const Conv1dParams& p, size_t elem_size) {
  WeightPlan plan;
  plan.tiles_per_row = ceil_div(p.out_len, tile_out_max(elem_size));
  const int64_t total = p.batch * plan.tiles_per_row;
  int64_t chunks = imax<int64_t>(1, kTargetBlocks / p.out_channels);
  chunks = imin(chunks, imax<int64_t>(1, total / kMinTilesPerChunk));
  plan.tiles_per_chunk = imax<int64_t>(1, ceil_div(total, chunks));
  plan.chunks = imax<int64_t>(1, ceil_div(total, plan.tiles_per_chunk));
  return plan;
}

// The weight kernel's tile is fixed (tile_out_max outputs at the forward stride and dilation).
bool weight_kernel_fits(const Conv1dParams& p, size_t elem_size) {
  const int64_t vec = 16 / static_cast<int64_t>(elem_size);
  const int64_t group = imin<int64_t>(p.kernel_size, kTapGroup);
  const int64_t elems = (tile_out_max(elem_size) - 1) * p.stride + (group - 1) * p.dilation + 1 + 2 * vec;
  return elems <= static_cast<int64_t>(kSmemBudget / elem_size);
}

// The row kernel over `rows` output rows of at most `row_len` outputs each, whose input spans are read at
// x_step with taps tap_dist apart (RowArgs::job gives each row's own geometry).
template <typename T, bool kBackward>
void launch_rows(const Conv1dParams& p, const T* x, const T* w, const T* bias, T* y, int64_t phases,
                 int64_t rows, int64_t row_len, int64_t x_step, int64_t tap_dist, Stream stream) {
  RowArgs<T, kBackward> args;
  args.p = p;
  args.x = x;
  args.w = w;
  args.bias = bias;
  args.y = y;
  args.phases = phases;
  args.rows = rows;
  args.tile_out = pick_tile_out(x_step, tap_dist, p.kernel_size, sizeof(T));
  args.tiles_per_row = ceil_div(row_len, args.tile_out);
  const size_t smem = smem_bytes_for<T>(args.tile_out, x_step, tap_dist, p.kernel_size);
  launch_kernel(depthwise_rows_kernel<T, kBackward>, dim3(grid_for(args.rows * args.tiles_per_row)),
                dim3(kThreads), smem, stream, args);
}

}  // namespace

bool depthwise_forward_supported(const Conv1dParams& p, size_t elem_size) {
  return p.is_depthwise() && pick_tile_out(p.stride, p.dilation, p.kernel_size, elem_size) > 0;
}

bool depthwise_backward_input_supported(const Conv1dParams& p, size_t elem_size) {
  const int64_t g = gcd64(p.stride, p.dilation);
  return p.is_depthwise() && pick_tile_out(1, p.dilation / g, p.kernel_size, elem_size) > 0;
}

bool depthwise_backward_weight_supported(const Conv1dParams& p, size_t elem_size) {
  return p.is_depthwise() && weight_kernel_fits(p, elem_size);
}

template <typename T>
void depthwise_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                       Stream stream) {
  launch_rows<T, false>(p, input, weight, bias, output, /*phases=*/1, p.batch * p.out_channels, p.out_len,
                        p.stride, p.dilation, stream);
}

template <typename T>
void depthwise_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                              Stream stream) {
  const int64_t phases = num_backward_phases(p);
  const int64_t out_step = p.dilation / gcd64(p.stride, p.dilation);
  launch_rows<T, true>(p, grad_output, weight, nullptr, grad_input, phases, p.batch * p.in_channels * phases,
                       ceil_div(p.in_len, p.stride) /* phase 0 is the longest */, 1, out_step, stream);
}

size_t depthwise_backward_weight_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
  const WeightPlan plan = weight_plan(p, elem_size);
  const size_t acc_size = elem_size == 8 ? 8 : 4;
  if (plan.chunks <= 1) return 0;
  return static_cast<size_t>(plan.chunks * p.out_channels * p.kernel_size) * acc_size;
}

template <typename T>
void depthwise_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                               void* workspace, Stream stream) {
  const WeightPlan plan = weight_plan(p, sizeof(T));
  WeightArgs<T> args;
  args.p = p;
  args.grad_output = grad_output;
  args.input = input;
  args.grad_weight = grad_weight;
  args.partials = static_cast<acc_t<T>*>(workspace);
  args.tiles_per_row = plan.tiles_per_row;
  args.chunks = plan.chunks;
  args.tiles_per_chunk = plan.tiles_per_chunk;
  const size_t smem = smem_bytes_for<T>(tile_out_max<T>(), p.stride, p.dilation, p.kernel_size);
  launch_kernel(depthwise_weight_kernel<T>, dim3(grid_for(p.out_channels * plan.chunks)), dim3(kThreads),
                smem, stream, args);
  if (plan.chunks > 1) {
    const int64_t count = p.out_channels * p.kernel_size;
    launch_sum_partials(static_cast<const acc_t<T>*>(args.partials), plan.chunks, count,
                        PartialsLayout{count, 1}, StoreSum<T>{grad_weight}, stream);
  }
}

#define C1D_INSTANTIATE(T)                                                                           \
  template void depthwise_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream); \
  template void depthwise_backward_input<T>(const Conv1dParams&, const T*, const T*, T*, Stream);    \
  template void depthwise_backward_weight<T>(const Conv1dParams&, const T*, const T*, T*, void*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
