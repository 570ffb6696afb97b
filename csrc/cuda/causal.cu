// Causal convolution (the causal_conv1d_fwd / _bwd / _update ops; problem description in
// causal_params.h): depthwise, left-padded from initial_states (or zeros), optional seq_idx masking and
// fused SiLU. Straightforward kernels, written for correctness first:
//   forward:  block per (batch, channel) row, threads along the positions (coalesced for a contiguous x),
//             weights read per tap; a channels-last x (unit channel stride, causal_cl) instead has
//             threads along the channels, so a warp reads 32 consecutive channels of a position
//             (coalesced), a block walking a chunk of positions;
//   backward: pass 1, block per row: dz = grad_output * silu'(z) into the workspace, then dx /
//             dinitial_states as a gather over the taps (no atomics), and the row's dweight / dbias
//             partials by fixed-tree block reductions; channels-last: threads along the channels,
//             dz in a (batch, len, dim) workspace, then one thread per (batch, channel) gathers dx and
//             sums its dweight / dbias partials serially; pass 2: one thread per (channel, tap) adds
//             the partials over the batch in order (bit-identical run to run);
//   update:   one thread per (batch, channel) row, serial over the step's positions.
// conv_state_indices out of range cannot raise on the device: such a row is treated like padding
// (output 0, state untouched); the CPU kernels raise instead.
#include <algorithm>
#include <cmath>

#include "core/causal_params.h"
#include "families.h"
#include "reductions.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int kThreads = 128;

__device__ inline float causal_exp(float v) { return expf(v); }
__device__ inline double causal_exp(double v) { return exp(v); }

template <typename A>
__device__ inline A causal_sigmoid(A z) {
  return A(1) / (A(1) + causal_exp(-z));
}

// xx[b, c, s]: x for s >= 0, the initial state (or 0) for s < 0.
template <typename T>
__device__ inline acc_t<T> causal_input(const CausalParams& p, const T* x, const T* init, int64_t b,
                                        int64_t c, int64_t s) {
  if (s >= 0) return to_acc(x[b * p.x.batch + c * p.x.channel + s * p.x.pos]);
  return init != nullptr ? to_acc(init[(b * p.dim + c) * p.state_len + s + p.state_len]) : acc_t<T>(0);
}

// The sequence id of position s (the initial state belongs to position 0's sequence).
__device__ inline int32_t causal_seq_id(const int32_t* seq_idx, int64_t len, int64_t b, int64_t s) {
  return seq_idx[b * len + (s >= 0 ? s : 0)];
}

// bias + sum_k w[k] * xx[t - (width - 1 - k) * dilation], masked by seq_idx; the CPU kernels' order.
template <typename T>
__device__ inline acc_t<T> causal_preact(const CausalParams& p, const T* x, const T* weight, const T* bias,
                                         const int32_t* seq_idx, const T* init, int64_t b, int64_t c,
                                         int64_t t) {
  using A = acc_t<T>;
  A acc = bias != nullptr ? to_acc(bias[c]) : A(0);
  const int32_t own = seq_idx != nullptr ? causal_seq_id(seq_idx, p.len, b, t) : 0;
  for (int64_t k = 0; k < p.width; ++k) {
    const int64_t s = t - (p.width - 1 - k) * p.dilation;
    if (seq_idx != nullptr && causal_seq_id(seq_idx, p.len, b, s) != own) continue;
    acc += to_acc(weight[c * p.width + k]) * causal_input(p, x, init, b, c, s);
  }
  return acc;
}

// The output at (b, c, t): the pre-activation, through SiLU when asked, 0 where seq_idx < 0.
template <typename T>
__device__ inline acc_t<T> causal_output(const CausalParams& p, const T* x, const T* weight, const T* bias,
                                         const int32_t* seq_idx, const T* init, int64_t b, int64_t c,
                                         int64_t t) {
  using A = acc_t<T>;
  A z = causal_preact(p, x, weight, bias, seq_idx, init, b, c, t);
  if (p.silu) z = z * causal_sigmoid(z);
  if (seq_idx != nullptr && seq_idx[b * p.len + t] < 0) z = A(0);
  return z;
}

// dz at (b, c, t): grad_output through SiLU's derivative when asked, 0 where seq_idx < 0.
template <typename T>
__device__ inline acc_t<T> causal_dz(const CausalParams& p, const T* x, const T* weight, const T* bias,
                                     const int32_t* seq_idx, const T* init, const T* grad_out, int64_t b,
                                     int64_t c, int64_t t) {
  using A = acc_t<T>;
  A g = to_acc(grad_out[b * p.grad_out.batch + c * p.grad_out.channel + t * p.grad_out.pos]);
  if (p.silu) {
    const A z = causal_preact(p, x, weight, bias, seq_idx, init, b, c, t);
    const A s = causal_sigmoid(z);
    g = g * s * (A(1) + z * (A(1) - s));
  }
  if (seq_idx != nullptr && seq_idx[b * p.len + t] < 0) g = A(0);
  return g;
}

// The gradient of xx[b, c, e] for e in [-state_len, len) (row = b * dim + c): the taps of the later
// positions that read e, plus grad_final for the last state_len positions; into dx (e >= 0) or dinit
// (e < 0). dz of position t is dz[t * dz_stride].
template <typename T>
__device__ inline void causal_input_grad(const CausalParams& p, const T* weight, const int32_t* seq_idx,
                                         const T* grad_final, const acc_t<T>* dz, int64_t dz_stride,
                                         int64_t b, int64_t c, int64_t e, T* dx, T* dinit) {
  using A = acc_t<T>;
  const int64_t L = p.len, S = p.state_len, W = p.width, row = b * p.dim + c;
  A acc = A(0);
  const int32_t id_e = seq_idx != nullptr && L > 0 ? causal_seq_id(seq_idx, L, b, e) : 0;
  for (int64_t k = 0; k < W; ++k) {
    const int64_t t = e + (W - 1 - k) * p.dilation;
    if (t < 0 || t >= L) continue;
    if (seq_idx != nullptr && seq_idx[b * L + t] != id_e) continue;
    acc += to_acc(weight[c * W + k]) * dz[t * dz_stride];
  }
  if (grad_final != nullptr && e >= L - S) acc += to_acc(grad_final[row * S + e - (L - S)]);
  if (e >= 0) {
    dx[b * p.out.batch + c * p.out.channel + e * p.out.pos] = from_acc<T>(acc);
  } else {
    dinit[row * S + e + S] = from_acc<T>(acc);
  }
}

// Adds position t's term (dz at t: dz_t) to the row's dweight[k] partial (k < width) or dbias (k == width).
template <typename T>
__device__ inline void add_weight_term(acc_t<T>& sum, const CausalParams& p, const T* x, const T* init,
                                       const int32_t* seq_idx, acc_t<T> dz_t, int64_t b, int64_t c, int64_t t,
                                       int64_t k) {
  if (k == p.width) {
    sum += dz_t;
    return;
  }
  const int64_t s = t - (p.width - 1 - k) * p.dilation;
  if (seq_idx != nullptr && causal_seq_id(seq_idx, p.len, b, s) != seq_idx[b * p.len + t]) return;
  sum += dz_t * causal_input(p, x, init, b, c, s);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_forward_kernel(CausalParams p, const T* x, const T* weight, const T* bias, const int32_t* seq_idx,
                          const T* init, T* out, T* final_states) {
  using A = acc_t<T>;
  const int64_t L = p.len, S = p.state_len;
  for (int64_t row = blockIdx.x; row < p.batch * p.dim; row += gridDim.x) {
    const int64_t b = row / p.dim, c = row % p.dim;
    for (int64_t t = threadIdx.x; t < L; t += blockDim.x) {
      const A z = causal_output(p, x, weight, bias, seq_idx, init, b, c, t);
      out[b * p.out.batch + c * p.out.channel + t * p.out.pos] = from_acc<T>(z);
    }
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      final_states[row * S + j] = from_acc<T>(causal_input(p, x, init, b, c, L - S + j));
    }
  }
}

// The channels-last layout: x and the output (dx) with unit channel stride, more than one channel (the
// CPU kernels' test, causal_use_channels_last).
inline bool causal_cl(const CausalParams& p) { return p.dim > 1 && p.x.channel == 1 && p.out.channel == 1; }

constexpr int64_t kClPositions = 64;  // positions per channels-last work item (forward and backward dz)

// The channels-last blocks' walk: work item = (batch, kThreads channels, kClPositions positions), thread =
// channel (consecutive threads read consecutive channels: coalesced); f(b, c, t) for each of the thread's
// positions in turn.
template <typename F>
__device__ void for_each_cl_position(const CausalParams& p, F f) {
  const int64_t L = p.len;
  const int64_t cblocks = ceil_div(p.dim, kThreads), chunks = ceil_div(L, kClPositions);
  for (int64_t item = blockIdx.x; item < p.batch * cblocks * chunks; item += gridDim.x) {
    const int64_t b = item / (cblocks * chunks), chunk = item % chunks;
    const int64_t c = (item / chunks) % cblocks * kThreads + threadIdx.x;
    if (c >= p.dim) continue;
    const int64_t t1 = (chunk + 1) * kClPositions < L ? (chunk + 1) * kClPositions : L;
    for (int64_t t = chunk * kClPositions; t < t1; ++t) f(b, c, t);
  }
}

// Channels-last forward: block = (batch, kThreads channels, kClPositions positions), thread = channel.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_forward_cl_kernel(CausalParams p, const T* x, const T* weight, const T* bias,
                             const int32_t* seq_idx, const T* init, T* out, T* final_states) {
  using A = acc_t<T>;
  const int64_t L = p.len, S = p.state_len;
  for_each_cl_position(p, [&](int64_t b, int64_t c, int64_t t) {
    const A z = causal_output(p, x, weight, bias, seq_idx, init, b, c, t);
    out[b * p.out.batch + c + t * p.out.pos] = from_acc<T>(z);
  });
  // final_states: one thread per (batch, channel), channel fastest (reads of x coalesced).
  for_each_thread_item(p.batch * p.dim, [&](int64_t i) {
    const int64_t b = i / p.dim, c = i % p.dim;
    for (int64_t j = 0; j < S; ++j)
      final_states[i * S + j] = from_acc<T>(causal_input(p, x, init, b, c, L - S + j));
  });
}

// Channels-last backward, pass 1a: dz_ws[(b * len + t) * dim + c] = grad_output * silu'(z); block =
// (batch, kThreads channels, kClPositions positions), thread = channel.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_backward_cl_dz_kernel(CausalParams p, const T* x, const T* weight, const T* bias,
                                 const int32_t* seq_idx, const T* init, const T* grad_out, acc_t<T>* dz_ws) {
  for_each_cl_position(p, [&](int64_t b, int64_t c, int64_t t) {
    dz_ws[(b * p.len + t) * p.dim + c] = causal_dz(p, x, weight, bias, seq_idx, init, grad_out, b, c, t);
  });
}

// Channels-last backward, pass 1b: one thread per (batch, channel), channel fastest: dx / dinitial_states
// gathered over the taps, and the (batch, channel)'s dweight / dbias partials, serially over the positions
// (the same order on every run).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_backward_cl_gather_kernel(CausalParams p, const T* x, const T* weight, const int32_t* seq_idx,
                                     const T* init, const T* grad_final, T* dx, T* dinit,
                                     const acc_t<T>* dz_ws, acc_t<T>* partials) {
  using A = acc_t<T>;
  const int64_t L = p.len, S = p.state_len, W = p.width, d = p.dilation, D = p.dim;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < p.batch * D;
       row += step) {
    const int64_t b = row / D, c = row % D;
    const A* dz = dz_ws + b * L * D + c;  // dz at position t: dz[t * D]
    for (int64_t e = -S; e < L; ++e) {
      A acc = A(0);
      const int32_t id_e = seq_idx != nullptr && L > 0 ? causal_seq_id(seq_idx, L, b, e) : 0;
      for (int64_t k = 0; k < W; ++k) {
        const int64_t t = e + (W - 1 - k) * d;
        if (t < 0 || t >= L) continue;
        if (seq_idx != nullptr && seq_idx[b * L + t] != id_e) continue;
        acc += to_acc(weight[c * W + k]) * dz[t * D];
      }
      if (grad_final != nullptr && e >= L - S) acc += to_acc(grad_final[row * S + e - (L - S)]);
      if (e >= 0) {
        dx[b * p.out.batch + c + e * p.out.pos] = from_acc<T>(acc);
      } else {
        dinit[row * S + e + S] = from_acc<T>(acc);
      }
    }
    for (int64_t k = 0; k <= W; ++k) {
      A sum = A(0);
      for (int64_t t = 0; t < L; ++t) {
        if (k == W) {
          sum += dz[t * D];
          continue;
        }
        const int64_t s = t - (W - 1 - k) * d;
        if (seq_idx != nullptr && causal_seq_id(seq_idx, L, b, s) != seq_idx[b * L + t]) continue;
        sum += dz[t * D] * causal_input(p, x, init, b, c, s);
      }
      partials[row * (W + 1) + k] = sum;
    }
  }
}

// Pass 1 of the backward; dz_ws: (batch * dim, len), partials: (batch * dim, width + 1).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_backward_row_kernel(CausalParams p, const T* x, const T* weight, const T* bias,
                               const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final,
                               T* dx, T* dinit, acc_t<T>* dz_ws, acc_t<T>* partials) {
  using A = acc_t<T>;
  __shared__ A scratch[kThreads / 32];
  const int64_t L = p.len, S = p.state_len, W = p.width;
  for (int64_t row = blockIdx.x; row < p.batch * p.dim; row += gridDim.x) {
    const int64_t b = row / p.dim, c = row % p.dim;
    A* dz = dz_ws + row * L;
    for (int64_t t = threadIdx.x; t < L; t += blockDim.x)
      dz[t] = causal_dz(p, x, weight, bias, seq_idx, init, grad_out, b, c, t);
    __syncthreads();
    for (int64_t e = static_cast<int64_t>(threadIdx.x) - S; e < L; e += blockDim.x)
      causal_input_grad(p, weight, seq_idx, grad_final, static_cast<const A*>(dz), 1, b, c, e, dx, dinit);
    // The row's dweight[k] (k < W) and dbias (k == W).
    for (int64_t k = 0; k <= W; ++k) {
      A sum = A(0);
      for (int64_t t = threadIdx.x; t < L; t += blockDim.x)
        add_weight_term(sum, p, x, init, seq_idx, dz[t], b, c, t, k);
      sum = block_sum(sum, scratch);
      if (threadIdx.x == 0) partials[row * (W + 1) + k] = sum;
    }
    __syncthreads();
  }
}

// Pass 2 (sum_partials_kernel: the partials summed over the batch in order): element e = c * (width + 1) + k
// of the sums is dweight[c, k] for k < width, dbias[c] for k == width.
template <typename T>
struct CausalWeightStore {
  T* dweight;
  T* dbias;
  int64_t width;
  __device__ void operator()(int64_t e, acc_t<T> sum) const {
    const int64_t c = e / (width + 1), k = e % (width + 1);
    if (k < width) {
      dweight[c * width + k] = from_acc<T>(sum);
    } else {
      dbias[c] = from_acc<T>(sum);
    }
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    causal_update_kernel(CausalUpdateParams p, const T* x, T* state, const T* weight, const T* bias,
                         const int32_t* cache_seqlens, const int32_t* state_indices, T* out) {
  using A = acc_t<T>;
  const int64_t L = p.len, W = p.width, W1 = W - 1, SL = p.state_len;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < p.batch * p.dim;
       row += step) {
    const int64_t b = row / p.dim, c = row % p.dim;
    T* o = out + row * L;
    const int64_t sr = state_indices != nullptr ? state_indices[b] : b;
    if (sr < 0 || sr >= p.num_states) {
      for (int64_t t = 0; t < L; ++t) o[t] = from_acc<T>(A(0));
      continue;
    }
    T* st = state + sr * p.state.batch + c * p.state.channel;
    const int64_t sp = p.state.pos;
    const T* xr = x + b * p.x.batch + c * p.x.channel;
    const int64_t sx = p.x.pos;
    const int64_t cs = cache_seqlens != nullptr ? cache_seqlens[b] : 0;
    // Window position i in [0, W1 + L): the state's last W1 entries, then x.
    auto window = [&](int64_t i) -> A {
      if (i >= W1) return to_acc(xr[(i - W1) * sx]);
      const int64_t j = cache_seqlens != nullptr ? (((cs - W1 + i) % SL) + SL) % SL : SL - W1 + i;
      return to_acc(st[j * sp]);
    };
    const A bc = bias != nullptr ? to_acc(bias[c]) : A(0);
    for (int64_t t = 0; t < L; ++t) {
      A acc = bc;
      for (int64_t k = 0; k < W; ++k) acc += to_acc(weight[c * W + k]) * window(t + k);
      if (p.silu) acc = acc * causal_sigmoid(acc);
      o[t] = from_acc<T>(acc);
    }
    if (SL == 0) continue;
    if (cache_seqlens != nullptr) {
      for (int64_t t = 0; t < L; ++t) st[((((cs + t) % SL) + SL) % SL) * sp] = xr[t * sx];
    } else if (L >= SL) {
      for (int64_t j = 0; j < SL; ++j) st[j * sp] = xr[(L - SL + j) * sx];
    } else {
      for (int64_t j = 0; j < SL - L; ++j) st[j * sp] = st[(j + L) * sp];
      for (int64_t t = 0; t < L; ++t) st[(SL - L + t) * sp] = xr[t * sx];
    }
  }
}

}  // namespace

size_t causal_backward_workspace_bytes(const CausalParams& p, size_t elem_size) {
  const size_t acc = elem_size == 8 ? 8 : 4;
  return static_cast<size_t>(p.batch * p.dim) * static_cast<size_t>(p.len + p.width + 1) * acc;
}

template <typename T>
void causal_forward(const CausalParams& p, const T* x, const T* weight, const T* bias, const int32_t* seq_idx,
                    const T* init, T* out, T* final_states, void* stream) {
  if (causal_cl(p)) {
    // At least one block per (batch, channel block): the final_states loop runs in every block.
    const int64_t blocks =
        p.batch * ceil_div(p.dim, kThreads) * std::max<int64_t>(1, ceil_div(p.len, kClPositions));
    launch_kernel(causal_forward_cl_kernel<T>, dim3(grid_for(blocks)), dim3(kThreads), 0,
                  static_cast<Stream>(stream), p, x, weight, bias, seq_idx, init, out, final_states);
    return;
  }
  launch_kernel(causal_forward_kernel<T>, dim3(grid_for(p.batch * p.dim)), dim3(kThreads), 0,
                static_cast<Stream>(stream), p, x, weight, bias, seq_idx, init, out, final_states);
}

template <typename T>
void causal_backward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                     const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final, T* dx,
                     T* dweight, T* dbias, T* dinit, void* workspace, void* stream) {
  using A = acc_t<T>;
  A* partials = static_cast<A*>(workspace);
  A* dz = partials + p.batch * p.dim * (p.width + 1);
  const Stream s = static_cast<Stream>(stream);
  if (causal_cl(p)) {
    const int64_t blocks = p.batch * ceil_div(p.dim, kThreads) * ceil_div(p.len, kClPositions);
    if (blocks > 0) {
      launch_kernel(causal_backward_cl_dz_kernel<T>, dim3(grid_for(blocks)), dim3(kThreads), 0, s, p, x,
                    weight, bias, seq_idx, init, grad_out, dz);
    }
    launch_kernel(causal_backward_cl_gather_kernel<T>, dim3(grid_for(ceil_div(p.batch * p.dim, kThreads))),
                  dim3(kThreads), 0, s, p, x, weight, seq_idx, init, grad_final, dx, dinit,
                  static_cast<const A*>(dz), partials);
  } else {
    launch_kernel(causal_backward_row_kernel<T>, dim3(grid_for(p.batch * p.dim)), dim3(kThreads), 0, s, p, x,
                  weight, bias, seq_idx, init, grad_out, grad_final, dx, dinit, dz, partials);
  }
  const int64_t count = p.dim * (p.width + 1);
  launch_sum_partials(static_cast<const A*>(partials), p.batch, count, PartialsLayout{count, 1},
                      CausalWeightStore<T>{dweight, dbias, p.width}, s);
}

template <typename T>
void causal_update(const CausalUpdateParams& p, const T* x, T* state, const T* weight, const T* bias,
                   const int32_t* cache_seqlens, const int32_t* state_indices, T* out, void* stream) {
  launch_kernel(causal_update_kernel<T>, dim3(grid_for(ceil_div(p.batch * p.dim, kThreads))), dim3(kThreads),
                0, static_cast<Stream>(stream), p, x, state, weight, bias, cache_seqlens, state_indices, out);
}

#define C1D_INSTANTIATE(T)                                                                            \
  template void causal_forward<T>(const CausalParams&, const T*, const T*, const T*, const int32_t*,  \
                                  const T*, T*, T*, void*);                                           \
  template void causal_backward<T>(const CausalParams&, const T*, const T*, const T*, const int32_t*, \
                                   const T*, const T*, const T*, T*, T*, T*, T*, void*, void*);       \
  template void causal_update<T>(const CausalUpdateParams&, const T*, T*, const T*, const T*,         \
                                 const int32_t*, const int32_t*, T*, void*);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
