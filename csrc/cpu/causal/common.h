// The helpers of the causal family (cpu/causal.h) that its forward, backward and update share, on top of
// kernel_common.h (the accumulation type acc_t, load_acc / convert_to_acc, and the one 16-bit store,
// store_acc / convert_from_acc): the masked row and ring helpers of the seq_idx paths, then the
// vectorised pieces of the fast paths (SiLU and its derivative, input windows, the row kernel, the
// channels-last row).
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include <ATen/cpu/vec/vec.h>

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Rows per parallel chunk: about 64 Ki positions of work.
inline int64_t causal_grain(int64_t row_len) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, row_len));
}

// ---- the seq_idx paths: rows ----
// A work item is one (batch, channel) row; its input (initial state then x) is converted once into a
// scratch row xs of state_len + len elements, so every tap is a fixed offset into it; the position loops
// run tap by tap with the tap's weight in a register, contiguous along L (vectorised by the compiler).

// xs[0, S) = initial state row (or 0), xs[S, S + L) = x row (through its strides).
template <typename T, typename A>
inline void causal_load_row(const CausalParams& p, int64_t b, int64_t c, const T* x, const T* init, A* xs) {
  const int64_t S = p.state_len, L = p.len;
  if (init != nullptr) {
    const T* ir = init + (b * p.dim + c) * S;
    for (int64_t j = 0; j < S; ++j) xs[j] = static_cast<A>(ir[j]);
  } else {
    std::fill(xs, xs + S, A(0));
  }
  const T* xr = x + b * p.x.batch + c * p.x.channel;
  A* dst = xs + S;
  if (p.x.pos == 1) {
    for (int64_t t = 0; t < L; ++t) dst[t] = static_cast<A>(xr[t]);
  } else {
    const int64_t sp = p.x.pos;
    for (int64_t t = 0; t < L; ++t) dst[t] = static_cast<A>(xr[t * sp]);
  }
}

// ids[b * (S + L) + i]: the sequence id of scratch position i (the initial state belongs to position 0's
// sequence).
inline std::vector<int32_t> causal_row_ids(const CausalParams& p, const int32_t* seq_idx) {
  const int64_t S = p.state_len, L = p.len, n = S + L;
  std::vector<int32_t> ids(static_cast<size_t>(p.batch * n));
  for (int64_t b = 0; b < p.batch; ++b) {
    const int32_t* s = seq_idx + b * L;
    int32_t* d = ids.data() + b * n;
    const int32_t first = L > 0 ? s[0] : -1;
    for (int64_t j = 0; j < S; ++j) d[j] = first;
    for (int64_t t = 0; t < L; ++t) d[S + t] = s[t];
  }
  return ids;
}

// z[t] = bias + sum_k w[k] * xs[t + k * dilation] (masked by ids when given): the pre-activation.
template <typename A>
inline void causal_row_preact(const CausalParams& p, const A* xs, const A* w, A bias, const int32_t* ids,
                              A* z) {
  const int64_t L = p.len, S = p.state_len, d = p.dilation;
  for (int64_t t = 0; t < L; ++t) z[t] = bias;
  for (int64_t k = 0; k < p.width; ++k) {
    const A wk = w[k];
    const A* src = xs + k * d;
    if (ids == nullptr) {
      for (int64_t t = 0; t < L; ++t) z[t] += wk * src[t];
    } else {
      const int32_t* src_id = ids + k * d;
      const int32_t* own_id = ids + S;
      for (int64_t t = 0; t < L; ++t) z[t] += src_id[t] == own_id[t] ? wk * src[t] : A(0);
    }
  }
}

template <typename A>
inline A causal_sigmoid(A z) {
  return A(1) / (A(1) + std::exp(-z));
}

// out[i] = sigmoid(z[i]), vectorised (at::vec's exp).
template <typename A>
inline void causal_sigmoid_into(const A* z, A* out, int64_t n) {
  using Vec = at::vec::Vectorized<A>;
  const Vec one(A(1));
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) {
    (one / (one + Vec::loadu(z + i).neg().exp())).store(out + i);
  }
  for (; i < n; ++i) out[i] = causal_sigmoid(z[i]);
}

// ---- the seq_idx paths: channels-last (x / out and dx with unit channel stride) ----
// (Chosen, by both generations, when x and the output both have unit channel stride and there is more
// than one channel: causal_use_channels_last.)
// A work item is (batch, block of kCausalChannelBlock channels); positions run in order, every loop is
// along the contiguous channels (vectorised). The last state_len + 1 inputs of the block live in a ring
// of float rows (position s in row s mod (state_len + 1)), filled from initial_states first.
constexpr int64_t kCausalChannelBlock = 64;

// dst[c] = src[c * stride] for n channels, in the accumulation type.
template <typename T, typename A>
inline void causal_load_channels(const T* src, int64_t stride, int64_t n, A* dst) {
  static_assert(std::is_same_v<A, acc_t<T>>, "the rows of the seq_idx paths hold the accumulation type");
  if (stride == 1) {
    convert_to_acc(src, dst, n);
  } else {
    for (int64_t c = 0; c < n; ++c) dst[c] = static_cast<A>(src[c * stride]);
  }
}

inline bool causal_use_channels_last(const CausalParams& p) {
  return p.dim > 1 && p.x.channel == 1 && p.out.channel == 1;
}

inline int64_t causal_ring_slot(int64_t s, int64_t span) { return ((s % span) + span) % span; }

// The slot of position t - back, given base = the slot of t and 0 <= back < span (no division).
inline int64_t causal_slot_back(int64_t base, int64_t back, int64_t span) {
  const int64_t slot = base - back;
  return slot < 0 ? slot + span : slot;
}

// The sequence id of position s (the initial state, s < 0, belongs to position 0's sequence).
inline int32_t causal_id(const int32_t* ids, int64_t s) { return ids[s >= 0 ? s : 0]; }

template <typename scalar_t, typename A>
inline void causal_block_setup(const CausalParams& p, int64_t b, int64_t c0, int64_t nc,
                               const scalar_t* weight, const scalar_t* init, A* wt, A* ring) {
  const int64_t S = p.state_len, W = p.width, CB = kCausalChannelBlock, span = S + 1;
  for (int64_t k = 0; k < W; ++k) {
    for (int64_t c = 0; c < nc; ++c) wt[k * CB + c] = static_cast<A>(weight[(c0 + c) * W + k]);
  }
  for (int64_t j = 0; j < S; ++j) {
    A* row = ring + causal_ring_slot(j - S, span) * CB;
    if (init != nullptr) {
      causal_load_channels(init + (b * p.dim + c0) * S + j, S, nc, row);
    } else {
      std::fill(row, row + nc, A(0));
    }
  }
}

// acc[c] = bias + sum over the taps of position t (masked), i.e. the pre-activation at t.
template <typename A>
inline void causal_block_preact(const CausalParams& p, int64_t t, int64_t nc, const A* wt, const A* ring,
                                const A* bias_row, const int32_t* ids, A* acc) {
  const int64_t S = p.state_len, CB = kCausalChannelBlock, span = S + 1;
  const int64_t base = t % span;
  for (int64_t c = 0; c < nc; ++c) acc[c] = bias_row != nullptr ? bias_row[c] : A(0);
  for (int64_t k = 0; k < p.width; ++k) {
    const int64_t back = (p.width - 1 - k) * p.dilation;
    if (ids != nullptr && causal_id(ids, t - back) != ids[t]) continue;
    const A* src = ring + causal_slot_back(base, back, span) * CB;
    const A* wk = wt + k * CB;
    for (int64_t c = 0; c < nc; ++c) acc[c] += wk[c] * src[c];
  }
}

// ---- the fast paths (no seq_idx): one pass over x, vectorised, no per-row copy of x ----
// Rows (x contiguous or strided along seqlen): vectorised along seqlen, the row's weights broadcast in
// registers; a row runs in chunks of kCausalChunk positions, each read in place from x when x is of the
// accumulation type with unit position stride, else converted into a float window (16-bit types,
// strided x, and the first chunk, whose first inputs come from initial_states).
// Channels-last: vectorised along the contiguous channels; the taps read the previous rows of x in
// place; weights transposed to (width, dim) once per call. A forward work item is (batch, block of up to
// kCausalClChannels channels, chunk of positions): the block's weights and last rows stay in L1, and the
// row kCausalPrefetchRows ahead is prefetched (a block walks x a row apart, which the hardware
// prefetchers follow poorly). A backward item is (batch, chunk of positions) over all channels.
// The backward is the same two layouts: the pre-activation is recomputed, dz = dout * silu'(z) kept for
// the chunk (plus state_len positions of halo, recomputed), dx gathered from dz (no scatter), and the
// dweight / dbias partials of each (row or block, chunk) summed afterwards in a fixed order:
// deterministic, independent of the thread count.
constexpr int64_t kCausalChunk = 512;
constexpr int64_t kCausalClPositions = 256;
constexpr int64_t kCausalClChannels = 512;
constexpr int64_t kCausalPrefetchRows = 4;
// The backward keeps dz for its chunk (plus state_len rows of halo) of all channels: a shorter chunk.
constexpr int64_t kCausalClBwdPositions = 32;

inline int64_t causal_cl_chunks(int64_t L) {
  return std::max<int64_t>(1, (L + kCausalClBwdPositions - 1) / kCausalClBwdPositions);
}

// z * sigmoid(z) on a vector, with at::vec's 20-ulp exp: several times cheaper than the 1-ulp one, and
// its error (~2e-6 relative) is below the accumulation's for float.
template <typename A>
inline at::vec::Vectorized<A> causal_silu_vec(const at::vec::Vectorized<A>& z) {
  using Vec = at::vec::Vectorized<A>;
  return z / (Vec(A(1)) + z.neg().exp_u20());
}

// silu'(z) * g = g * s * (1 + z * (1 - s)), s = sigmoid(z).
template <typename A>
inline at::vec::Vectorized<A> causal_dsilu_vec(const at::vec::Vectorized<A>& z,
                                               const at::vec::Vectorized<A>& g) {
  using Vec = at::vec::Vectorized<A>;
  const Vec one(A(1));
  const Vec s = one / (one + z.neg().exp_u20());
  return g * s * (one + z * (one - s));
}

template <typename A>
inline A causal_dsilu(A z, A g) {
  const A s = causal_sigmoid(z);
  return g * s * (A(1) + z * (A(1) - s));
}

// xx(s): the input at position s of row (b, c): x for s >= 0, the initial state (or 0) for s < 0.
template <typename scalar_t, typename A>
inline A causal_input_at(const scalar_t* xr, int64_t sp, const scalar_t* ir, int64_t S, int64_t s) {
  if (s >= 0) return static_cast<A>(xr[s * sp]);
  return ir != nullptr ? static_cast<A>(ir[s + S]) : A(0);
}

// win[i] = xx(s0 + i), i in [0, n); x's row through its position stride sp, ir the initial-state row.
template <typename scalar_t, typename A>
inline void causal_fill_window(const scalar_t* xr, int64_t sp, const scalar_t* ir, int64_t S, int64_t s0,
                               int64_t n, A* win) {
  int64_t i = 0;
  for (; i < n && s0 + i < 0; ++i) win[i] = causal_input_at<scalar_t, A>(xr, sp, ir, S, s0 + i);
  if (i == n) return;
  const scalar_t* src = xr + (s0 + i) * sp;
  if (sp == 1) {
    convert_to_acc(src, win + i, n - i);
  } else {
    for (int64_t j = 0; j < n - i; ++j) win[i + j] = static_cast<A>(src[j * sp]);
  }
}

// The inputs of positions [t0 - S, t0 + n) of a row as a pointer to position t0 (valid back to -S): x
// itself when it can be read in place, else `win` filled.
template <typename scalar_t, typename A>
inline const A* causal_row_inputs(const scalar_t* xr, int64_t sp, const scalar_t* ir, int64_t S, int64_t t0,
                                  int64_t n, A* win) {
  if constexpr (std::is_same<scalar_t, A>::value) {
    if (sp == 1 && t0 >= S) return xr + t0;
  }
  causal_fill_window(xr, sp, ir, S, t0 - S, S + n, win);
  return win + S;
}

// dst[i] = bias + sum_k w[k] * src[i - (W - 1 - k) * d], i in [0, n), SiLU'd when silu. KW > 0: the width
// as a constant (weights held in registers); KW = 0: any width W.
template <int KW, typename A>
void causal_row_kernel(const A* src, int64_t n, const A* w, int64_t W, int64_t d, A bias, bool silu, A* dst) {
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const Vec vb(bias);
  int64_t i = 0;
  if constexpr (KW > 0) {
    Vec wv[KW];
    for (int k = 0; k < KW; ++k) wv[k] = Vec(w[k]);
    for (; i + V <= n; i += V) {
      Vec acc = vb;
      for (int k = 0; k < KW; ++k) acc = at::vec::fmadd(wv[k], Vec::loadu(src + i - (KW - 1 - k) * d), acc);
      (silu ? causal_silu_vec(acc) : acc).store(dst + i);
    }
  } else {
    for (; i + V <= n; i += V) {
      Vec acc = vb;
      for (int64_t k = 0; k < W; ++k)
        acc = at::vec::fmadd(Vec(w[k]), Vec::loadu(src + i - (W - 1 - k) * d), acc);
      (silu ? causal_silu_vec(acc) : acc).store(dst + i);
    }
  }
  for (; i < n; ++i) {
    A a = bias;
    for (int64_t k = 0; k < W; ++k) a += w[k] * src[i - (W - 1 - k) * d];
    dst[i] = silu ? a * causal_sigmoid(a) : a;
  }
}

template <typename A>
using CausalRowKernel = void (*)(const A*, int64_t, const A*, int64_t, int64_t, A, bool, A*);

// The row kernel for width W: a compile-time width for the common ones (with_fixed_count).
template <typename A>
CausalRowKernel<A> causal_pick_row_kernel(int64_t W) {
  return with_fixed_count<2, 3, 4>(
      W, [](auto kW) -> CausalRowKernel<A> { return &causal_row_kernel<decltype(kW)::value, A>; });
}

// Channels-last: dst[c] = the pre-activation at position t of channels [c0, c0 + nc) of batch b
// (SiLU'd when silu), c in [0, nc). wt: (W, dim) weights, bt: (dim) bias or null, both of type A.
template <typename scalar_t, typename A>
void causal_cl_row(const CausalParams& p, int64_t b, int64_t c0, int64_t nc, int64_t t, const scalar_t* x,
                   const A* wt, const A* bt, const scalar_t* init, bool silu, A* dst) {
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const int64_t S = p.state_len, W = p.width, D = p.dim, xp = p.x.pos, d = p.dilation;
  const scalar_t* xb = x + b * p.x.batch + c0;
  if (t < S) {  // the taps reach into initial_states: scalar (the first state_len positions only)
    for (int64_t c = 0; c < nc; ++c) {
      const scalar_t* ir = init != nullptr ? init + (b * D + c0 + c) * S : nullptr;
      A a = bt != nullptr ? bt[c0 + c] : A(0);
      for (int64_t k = 0; k < W; ++k) {
        a += wt[k * D + c0 + c] * causal_input_at<scalar_t, A>(xb + c, xp, ir, S, t - (W - 1 - k) * d);
      }
      dst[c] = silu ? a * causal_sigmoid(a) : a;
    }
    return;
  }
  const scalar_t* xt = xb + t * xp;
  // Rows of x a row apart are not followed by the hardware prefetchers well enough: ask for the row
  // kCausalPrefetchRows ahead (within x: the last rows of a batch stop short).
  const bool prefetch = t + kCausalPrefetchRows < p.len;
  int64_t c = 0;
  for (; c + V <= nc; c += V) {
    if (prefetch) __builtin_prefetch(xt + kCausalPrefetchRows * xp + c);
    Vec acc = bt != nullptr ? Vec::loadu(bt + c0 + c) : Vec(A(0));
    for (int64_t k = 0; k < W; ++k) {
      acc = at::vec::fmadd(Vec::loadu(wt + k * D + c0 + c), load_acc(xt - (W - 1 - k) * d * xp + c), acc);
    }
    (silu ? causal_silu_vec(acc) : acc).store(dst + c);
  }
  for (; c < nc; ++c) {
    A a = bt != nullptr ? bt[c0 + c] : A(0);
    for (int64_t k = 0; k < W; ++k) a += wt[k * D + c0 + c] * static_cast<A>(xt[c - (W - 1 - k) * d * xp]);
    dst[c] = silu ? a * causal_sigmoid(a) : a;
  }
}

// (W, dim) weights and the bias, in the accumulation type.
template <typename scalar_t, typename A>
void causal_transpose_weights(const CausalParams& p, const scalar_t* weight, const scalar_t* bias,
                              std::vector<A>& wt, std::vector<A>& bt) {
  const int64_t W = p.width, D = p.dim;
  wt.resize(static_cast<size_t>(W * D));
  for (int64_t c = 0; c < D; ++c) {
    for (int64_t k = 0; k < W; ++k) wt[k * D + c] = static_cast<A>(weight[c * W + k]);
  }
  if (bias != nullptr) {
    bt.resize(static_cast<size_t>(D));
    for (int64_t c = 0; c < D; ++c) bt[c] = static_cast<A>(bias[c]);
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
