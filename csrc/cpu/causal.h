// Causal convolution (depthwise, left-padded by (width - 1) * dilation from initial_states or zeros,
// optional seq_idx masking and fused SiLU): forward, backward in one pass, and the decode update.
// The problem description is causal_params.h.
//
// Without seq_idx (the common case) the forward and backward take the vectorised paths of the "Fast
// paths" section below, and a single-position update without cache_seqlens takes causal_update_step.
// With seq_idx, the paths described here (simpler, mask per tap):
//
// Two layouts, both read through x's strides without a tensor copy:
// * channels-last (x and the output with unit channel stride, e.g. a (batch, seqlen, dim) tensor
//   transposed): a work item is (batch, block of 64 channels); positions run in order with the last
//   state_len + 1 inputs in a ring of float rows, and every loop runs along the contiguous channels
//   (vectorised). The backward scatters dz into a ring of dx accumulators and writes each position once
//   it is complete. See causal_forward_channels_last.
// * any other strides (contiguous x): a work item is one (batch, channel) row.
// Row path: the row's input — initial state then x — is converted once into a float scratch row `xs` of
// state_len + len elements (double for float64), so every tap is a fixed offset into it; the position
// loops then run tap by tap with the tap's weight in a register, contiguous along L (vectorised by the
// compiler). 16-bit types accumulate in float and are rounded once.
// Backward: per row, the pre-activation is recomputed, dz = dout * silu'(z); dx and dinitial_states by
// scattering w[k] * dz tap by tap into a scratch row (plus grad_final_states on the last state_len
// inputs), the row's dweight/dbias partials into a (batch, dim, width + 1) buffer that is summed over the
// batch in order afterwards: deterministic, independent of the thread count.
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif

#include <ATen/cpu/vec/vec.h>

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

template <typename T>
using causal_acc_t = std::conditional_t<std::is_same<T, double>::value, double, float>;

// Rows per parallel chunk: about 64 Ki positions of work.
inline int64_t causal_grain(int64_t row_len) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, row_len));
}

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

// ---- channels-last: x / out (and dx) with unit channel stride. ----
// (Chosen when x and the output both have unit channel stride and there is more than one channel.)
// A work item is (batch, block of kCausalChannelBlock channels); positions run in order, every loop is
// along the contiguous channels (vectorised). The last state_len + 1 inputs of the block live in a ring
// of float rows (position s in row s mod (state_len + 1)), filled from initial_states first.
constexpr int64_t kCausalChannelBlock = 64;

template <typename T, typename A>
inline void causal_load_channels(const T* src, int64_t stride, int64_t n, A* dst) {
  if (stride == 1) {
    for (int64_t c = 0; c < n; ++c) dst[c] = static_cast<A>(src[c]);
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

template <typename scalar_t>
void causal_forward_channels_last(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                                  const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,
                                  scalar_t* out, scalar_t* final_states) {
  using A = causal_acc_t<scalar_t>;
  const int64_t S = p.state_len, L = p.len, W = p.width, CB = kCausalChannelBlock, span = S + 1;
  const int64_t blocks = (p.dim + CB - 1) / CB;
  at::parallel_for(0, p.batch * blocks, causal_grain(L * W * CB), [&](int64_t begin, int64_t end) {
    std::vector<A> wt(static_cast<size_t>(W * CB)), ring(static_cast<size_t>(span * CB)), acc(CB),
        bias_row(CB), act(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / blocks, c0 = (r % blocks) * CB, nc = std::min(CB, p.dim - c0);
      causal_block_setup(p, b, c0, nc, weight, init, wt.data(), ring.data());
      if (bias != nullptr) causal_load_channels(bias + c0, 1, nc, bias_row.data());
      const int32_t* ids = seq_idx != nullptr ? seq_idx + b * L : nullptr;
      const scalar_t* xb = x + b * p.x.batch + c0 * p.x.channel;
      scalar_t* ob = out + b * p.out.batch + c0 * p.out.channel;
      for (int64_t t = 0; t < L; ++t) {
        causal_load_channels(xb + t * p.x.pos, p.x.channel, nc, ring.data() + causal_ring_slot(t, span) * CB);
        causal_block_preact(p, t, nc, wt.data(), ring.data(), bias != nullptr ? bias_row.data() : nullptr,
                            ids, acc.data());
        if (p.silu) {
          causal_sigmoid_into(acc.data(), act.data(), nc);
          for (int64_t c = 0; c < nc; ++c) acc[c] *= act[c];
        }
        const bool padding = ids != nullptr && ids[t] < 0;
        scalar_t* o = ob + t * p.out.pos;  // unit channel stride (causal_use_channels_last)
        for (int64_t c = 0; c < nc; ++c) o[c] = static_cast<scalar_t>(padding ? A(0) : acc[c]);
      }
      for (int64_t j = 0; j < S; ++j) {
        const A* row = ring.data() + causal_ring_slot(L - S + j, span) * CB;
        for (int64_t c = 0; c < nc; ++c)
          final_states[(b * p.dim + c0 + c) * S + j] = static_cast<scalar_t>(row[c]);
      }
    }
  });
}

// Backward, channels-last: positions in order; dz at t scatters into a ring of dx accumulators, and
// position t - state_len, complete then, is written out (dx, or dinitial_states for s < 0); the last
// state_len positions get grad_final_states at the end. partials as in causal_backward.
template <typename scalar_t, typename A>
void causal_backward_channels_last(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                                   const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,
                                   const scalar_t* grad_out, const scalar_t* grad_final, scalar_t* dx,
                                   scalar_t* dinit, A* partials) {
  const int64_t S = p.state_len, L = p.len, W = p.width, CB = kCausalChannelBlock, span = S + 1;
  const int64_t blocks = (p.dim + CB - 1) / CB;
  at::parallel_for(0, p.batch * blocks, causal_grain(L * W * CB), [&](int64_t begin, int64_t end) {
    std::vector<A> wt(static_cast<size_t>(W * CB)), ring(static_cast<size_t>(span * CB)),
        dring(static_cast<size_t>(span * CB)), dw(static_cast<size_t>(W * CB)), acc(CB), dz(CB), db(CB),
        bias_row(CB), act(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / blocks, c0 = (r % blocks) * CB, nc = std::min(CB, p.dim - c0);
      causal_block_setup(p, b, c0, nc, weight, init, wt.data(), ring.data());
      if (bias != nullptr) causal_load_channels(bias + c0, 1, nc, bias_row.data());
      std::fill(dring.begin(), dring.end(), A(0));
      std::fill(dw.begin(), dw.end(), A(0));
      std::fill(db.begin(), db.end(), A(0));
      const int32_t* ids = seq_idx != nullptr ? seq_idx + b * L : nullptr;
      const scalar_t* xb = x + b * p.x.batch + c0 * p.x.channel;
      const scalar_t* gb = grad_out + b * p.grad_out.batch + c0 * p.grad_out.channel;
      // Writes position e's gradient (plus grad_final_states where it applies) and clears its ring row.
      auto emit = [&](int64_t e) {
        A* row = dring.data() + causal_ring_slot(e, span) * CB;
        if (grad_final != nullptr && e >= L - S) {
          for (int64_t c = 0; c < nc; ++c)
            row[c] += static_cast<A>(grad_final[(b * p.dim + c0 + c) * S + e - (L - S)]);
        }
        if (e >= 0) {
          scalar_t* o = dx + b * p.out.batch + c0 * p.out.channel + e * p.out.pos;
          for (int64_t c = 0; c < nc; ++c) o[c] = static_cast<scalar_t>(row[c]);  // unit channel stride
        } else {
          for (int64_t c = 0; c < nc; ++c)
            dinit[(b * p.dim + c0 + c) * S + e + S] = static_cast<scalar_t>(row[c]);
        }
        std::fill(row, row + nc, A(0));
      };
      for (int64_t t = 0; t < L; ++t) {
        causal_load_channels(xb + t * p.x.pos, p.x.channel, nc, ring.data() + causal_ring_slot(t, span) * CB);
        causal_load_channels(gb + t * p.grad_out.pos, p.grad_out.channel, nc, dz.data());
        if (p.silu) {
          causal_block_preact(p, t, nc, wt.data(), ring.data(), bias != nullptr ? bias_row.data() : nullptr,
                              ids, acc.data());
          causal_sigmoid_into(acc.data(), act.data(), nc);
          for (int64_t c = 0; c < nc; ++c) dz[c] = dz[c] * act[c] * (A(1) + acc[c] * (A(1) - act[c]));
        }
        if (ids != nullptr && ids[t] < 0) std::fill(dz.begin(), dz.begin() + nc, A(0));
        for (int64_t c = 0; c < nc; ++c) db[c] += dz[c];
        const int64_t base = t % span;
        for (int64_t k = 0; k < W; ++k) {
          const int64_t back = (W - 1 - k) * p.dilation;
          if (ids != nullptr && causal_id(ids, t - back) != ids[t]) continue;
          const int64_t slot = causal_slot_back(base, back, span);
          const A* src = ring.data() + slot * CB;
          A* dst = dring.data() + slot * CB;
          const A* wk = wt.data() + k * CB;
          A* dwk = dw.data() + k * CB;
          for (int64_t c = 0; c < nc; ++c) {
            dwk[c] += dz[c] * src[c];
            dst[c] += wk[c] * dz[c];
          }
        }
        emit(t - S);
      }
      for (int64_t e = std::max<int64_t>(L - S, -S); e < L; ++e) emit(e);
      for (int64_t c = 0; c < nc; ++c) {
        A* part = partials + (b * p.dim + c0 + c) * (W + 1);
        for (int64_t k = 0; k < W; ++k) part[k] = dw[k * CB + c];
        part[W] = db[c];
      }
    }
  });
}

// ---- Fast paths (no seq_idx): one pass over x, vectorised, no per-row copy of x. ----
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

// dst[i] = src[i] converted, i in [0, n).
template <typename S, typename D>
inline void causal_convert(const S* src, D* dst, int64_t n) {
  if constexpr (std::is_same<S, D>::value) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(S));
  } else {
    at::vec::convert(src, dst, n);
  }
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
    causal_convert(src, win + i, n - i);
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

template <typename A>
CausalRowKernel<A> causal_pick_row_kernel(int64_t W) {
  switch (W) {
    case 2:
      return &causal_row_kernel<2, A>;
    case 3:
      return &causal_row_kernel<3, A>;
    case 4:
      return &causal_row_kernel<4, A>;
    default:
      return &causal_row_kernel<0, A>;
  }
}

// final_states[b, c, j] = xx(L - S + j).
template <typename scalar_t>
void causal_final_states(const CausalParams& p, const scalar_t* x, const scalar_t* init,
                         scalar_t* final_states) {
  const int64_t S = p.state_len, L = p.len;
  if (S == 0) return;
  at::parallel_for(0, p.batch * p.dim, std::max<int64_t>(1, 4096 / S), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.dim, c = r % p.dim;
      const scalar_t* xr = x + b * p.x.batch + c * p.x.channel;
      const scalar_t* ir = init != nullptr ? init + r * S : nullptr;
      for (int64_t j = 0; j < S; ++j) {
        const int64_t s = L - S + j;
        final_states[r * S + j] = s >= 0 ? xr[s * p.x.pos] : (ir != nullptr ? ir[j + L] : scalar_t(0));
      }
    }
  });
}

template <typename scalar_t>
void causal_forward_rows_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                              const scalar_t* bias, const scalar_t* init, scalar_t* out) {
  using A = causal_acc_t<scalar_t>;
  const int64_t S = p.state_len, L = p.len, W = p.width, d = p.dilation;
  const CausalRowKernel<A> kernel = causal_pick_row_kernel<A>(W);
  // Writing the output in place needs it of type A with unit position stride (a new contiguous tensor).
  const bool direct = std::is_same<scalar_t, A>::value && p.out.pos == 1;
  at::parallel_for(0, p.batch * p.dim, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, L * W)),
                   [&](int64_t begin, int64_t end) {
                     std::vector<A> win(static_cast<size_t>(S + kCausalChunk)),
                         res(direct ? 0 : kCausalChunk), w(static_cast<size_t>(W));
                     for (int64_t r = begin; r < end; ++r) {
                       const int64_t b = r / p.dim, c = r % p.dim;
                       const scalar_t* xr = x + b * p.x.batch + c * p.x.channel;
                       const scalar_t* ir = init != nullptr ? init + r * S : nullptr;
                       for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
                       const A bc = bias != nullptr ? static_cast<A>(bias[c]) : A(0);
                       scalar_t* o = out + b * p.out.batch + c * p.out.channel;
                       for (int64_t t0 = 0; t0 < L; t0 += kCausalChunk) {
                         const int64_t n = std::min(kCausalChunk, L - t0);
                         const A* src = causal_row_inputs(xr, p.x.pos, ir, S, t0, n, win.data());
                         A* dst = direct ? reinterpret_cast<A*>(o + t0) : res.data();
                         kernel(src, n, w.data(), W, d, bc, p.silu, dst);
                         if (direct) continue;
                         if (p.out.pos == 1) {
                           causal_convert(res.data(), o + t0, n);
                         } else {
                           for (int64_t i = 0; i < n; ++i)
                             o[(t0 + i) * p.out.pos] = static_cast<scalar_t>(res[i]);
                         }
                       }
                     }
                   });
}

// Vector load / store of A values from / to scalar_t (float, double as they are; 16-bit converted).
template <typename A, typename scalar_t>
inline at::vec::Vectorized<A> causal_vload(const scalar_t* p) {
  using Vec = at::vec::Vectorized<A>;
  if constexpr (std::is_same<scalar_t, A>::value) {
    return Vec::loadu(p);
  } else if constexpr (std::is_same<scalar_t, at::BFloat16>::value) {
    Vec v;
    at::vec::load_fp32_from_bf16(p, v);
    return v;
  } else if constexpr (std::is_same<scalar_t, at::Half>::value) {
    Vec v;
    at::vec::load_fp32_from_fp16(p, v);
    return v;
  } else {
    __at_align__ A tmp[Vec::size()];
    for (int64_t i = 0; i < Vec::size(); ++i) tmp[i] = static_cast<A>(p[i]);
    return Vec::loadu(tmp);
  }
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
      acc = at::vec::fmadd(Vec::loadu(wt + k * D + c0 + c), causal_vload<A>(xt - (W - 1 - k) * d * xp + c),
                           acc);
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

template <typename scalar_t>
void causal_forward_cl_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                            const scalar_t* bias, const scalar_t* init, scalar_t* out) {
  using A = causal_acc_t<scalar_t>;
  const int64_t L = p.len, D = p.dim, CB = std::min(D, kCausalClChannels), TC = kCausalClPositions;
  std::vector<A> wt, bt;
  causal_transpose_weights(p, weight, bias, wt, bt);
  const int64_t cblocks = (D + CB - 1) / CB, tblocks = (L + TC - 1) / TC;
  at::parallel_for(0, p.batch * cblocks * tblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> row(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / (cblocks * tblocks), c0 = (r / tblocks) % cblocks * CB, t0 = r % tblocks * TC;
      const int64_t nc = std::min(CB, D - c0);
      for (int64_t t = t0; t < std::min(L, t0 + TC); ++t) {
        scalar_t* o = out + b * p.out.batch + c0 + t * p.out.pos;  // unit channel stride
        A* dst = std::is_same<scalar_t, A>::value ? reinterpret_cast<A*>(o) : row.data();
        causal_cl_row(p, b, c0, nc, t, x, wt.data(), bias != nullptr ? bt.data() : nullptr, init, p.silu,
                      dst);
        if (!std::is_same<scalar_t, A>::value) causal_convert(row.data(), o, nc);
      }
    }
  });
}

// Backward, rows: per row, dz = dout * silu'(z) for the whole row in dzp (S zeros on both sides), the
// dweight / dbias partials accumulated in vectors along the way, then dx(s) = sum_k w[k] * dz(s +
// (W - 1 - k) * d) for s in [-S, L) (s < 0: dinitial_states), plus grad_final_states on the last S.
template <typename scalar_t>
void causal_backward_rows_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                               const scalar_t* bias, const scalar_t* init, const scalar_t* grad_out,
                               const scalar_t* grad_final, scalar_t* dx, scalar_t* dinit,
                               causal_acc_t<scalar_t>* partials) {
  using A = causal_acc_t<scalar_t>;
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const int64_t S = p.state_len, L = p.len, W = p.width, d = p.dilation;
  const CausalRowKernel<A> kernel = causal_pick_row_kernel<A>(W);
  at::parallel_for(
      0, p.batch * p.dim, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, L * W)),
      [&](int64_t begin, int64_t end) {
        std::vector<A> win(static_cast<size_t>(S + kCausalChunk)), z(kCausalChunk), g(kCausalChunk),
            dzp(static_cast<size_t>(2 * S + L)), res(kCausalChunk), w(static_cast<size_t>(W)),
            wr(static_cast<size_t>(W)), dwv(static_cast<size_t>(W * V)), dws(static_cast<size_t>(W));
        for (int64_t r = begin; r < end; ++r) {
          const int64_t b = r / p.dim, c = r % p.dim;
          const scalar_t* xr = x + b * p.x.batch + c * p.x.channel;
          const scalar_t* ir = init != nullptr ? init + r * S : nullptr;
          const scalar_t* gr = grad_out + b * p.grad_out.batch + c * p.grad_out.channel;
          for (int64_t k = 0; k < W; ++k) w[k] = wr[W - 1 - k] = static_cast<A>(weight[c * W + k]);
          const A bc = bias != nullptr ? static_cast<A>(bias[c]) : A(0);
          A* dz = dzp.data() + S;  // dz(s) = dz[s], zero for s in [-S, 0) and [L, L + S)
          std::fill(dzp.begin(), dzp.begin() + S, A(0));
          std::fill(dzp.end() - S, dzp.end(), A(0));
          std::fill(dwv.begin(), dwv.end(), A(0));
          std::fill(dws.begin(), dws.end(), A(0));
          Vec dbv(A(0));
          A dbs = 0;
          for (int64_t t0 = 0; t0 < L; t0 += kCausalChunk) {
            const int64_t n = std::min(kCausalChunk, L - t0);
            const A* src = causal_row_inputs(xr, p.x.pos, ir, S, t0, n, win.data());
            const A* gt;
            if (std::is_same<scalar_t, A>::value && p.grad_out.pos == 1) {
              gt = reinterpret_cast<const A*>(gr + t0);
            } else {
              causal_fill_window(gr, p.grad_out.pos, static_cast<const scalar_t*>(nullptr), 0, t0, n,
                                 g.data());
              gt = g.data();
            }
            A* dzt = dz + t0;
            if (p.silu) kernel(src, n, w.data(), W, d, bc, false, z.data());
            int64_t i = 0;
            for (; i + V <= n; i += V) {
              const Vec gv = Vec::loadu(gt + i);
              const Vec dzv = p.silu ? causal_dsilu_vec(Vec::loadu(z.data() + i), gv) : gv;
              dzv.store(dzt + i);
              dbv = dbv + dzv;
              for (int64_t k = 0; k < W; ++k) {
                A* acc = dwv.data() + k * V;
                at::vec::fmadd(dzv, Vec::loadu(src + i - (W - 1 - k) * d), Vec::loadu(acc)).store(acc);
              }
            }
            for (; i < n; ++i) {
              const A dzi = p.silu ? causal_dsilu(z[i], gt[i]) : gt[i];
              dzt[i] = dzi;
              dbs += dzi;
              for (int64_t k = 0; k < W; ++k) dws[k] += dzi * src[i - (W - 1 - k) * d];
            }
          }
          // The row's partials: vector lanes in order, then the scalar tail (fixed order).
          A* part = partials + r * (W + 1);
          __at_align__ A lanes[V];
          for (int64_t k = 0; k <= W; ++k) {
            (k < W ? Vec::loadu(dwv.data() + k * V) : dbv).store(lanes);
            A sum = 0;
            for (int64_t l = 0; l < V; ++l) sum += lanes[l];
            part[k] = sum + (k < W ? dws[k] : dbs);
          }
          // dx(s) for s in [-S, L), chunk by chunk.
          scalar_t* gx = dx + b * p.out.batch + c * p.out.channel;
          const scalar_t* gf = grad_final != nullptr ? grad_final + r * S : nullptr;
          for (int64_t s0 = -S; s0 < L; s0 += kCausalChunk) {
            const int64_t n = std::min(kCausalChunk, L - s0);
            kernel(dz + s0 + S, n, wr.data(), W, d, A(0), false, res.data());
            if (gf != nullptr) {
              for (int64_t i = std::max<int64_t>(0, L - S - s0); i < n; ++i)
                res[i] += static_cast<A>(gf[s0 + i - (L - S)]);
            }
            int64_t i = 0;
            for (; i < n && s0 + i < 0; ++i) dinit[r * S + s0 + i + S] = static_cast<scalar_t>(res[i]);
            if (i == n) continue;
            if (p.out.pos == 1) {
              causal_convert(res.data() + i, gx + s0 + i, n - i);
            } else {
              for (; i < n; ++i) gx[(s0 + i) * p.out.pos] = static_cast<scalar_t>(res[i]);
            }
          }
        }
      });
}

// Backward, channels-last: a work item is (batch, chunk [t0, t1) of positions), all channels; dz rows
// for [t0, min(L, t1 + S)) in dzb (the halo recomputed), dx rows [t0, t1) (and [-S, 0) for the first
// chunk: dinitial_states) gathered from them; the item's dweight / dbias partials in
// partials[((b * tblocks + chunk) * dim + c) * (W + 1)].
template <typename scalar_t>
void causal_backward_cl_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                             const scalar_t* bias, const scalar_t* init, const scalar_t* grad_out,
                             const scalar_t* grad_final, scalar_t* dx, scalar_t* dinit,
                             causal_acc_t<scalar_t>* partials) {
  using A = causal_acc_t<scalar_t>;
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const int64_t S = p.state_len, L = p.len, W = p.width, D = p.dim, d = p.dilation, xp = p.x.pos;
  const int64_t CB = D, TC = kCausalClBwdPositions;
  std::vector<A> wt, bt;
  causal_transpose_weights(p, weight, bias, wt, bt);
  const A* btp = bias != nullptr ? bt.data() : nullptr;
  // At least one chunk: with seqlen 0 it still writes dinitial_states.
  const int64_t cblocks = (D + CB - 1) / CB, tblocks = causal_cl_chunks(L);
  at::parallel_for(0, p.batch * cblocks * tblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> dzb(static_cast<size_t>((TC + S) * CB)), z(CB), row(CB), dwb(static_cast<size_t>(W * CB)),
        dbb(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / (cblocks * tblocks), c0 = (r / tblocks) % cblocks * CB, tb = r % tblocks;
      const int64_t t0 = tb * TC, t1 = std::min(L, t0 + TC), te = std::min(L, t1 + S);
      const int64_t nc = std::min(CB, D - c0);
      const scalar_t* xb = x + b * p.x.batch + c0;
      std::fill(dwb.begin(), dwb.end(), A(0));
      std::fill(dbb.begin(), dbb.end(), A(0));
      // grad_output into dzb (then turned into dz in place): row by row when it is channels-last too,
      // else channel by channel (a grad_output contiguous along seqlen is read in runs, not a row apart).
      const scalar_t* gb = grad_out + b * p.grad_out.batch + c0 * p.grad_out.channel;
      if (p.grad_out.channel == 1) {
        for (int64_t t = t0; t < te; ++t)
          causal_convert(gb + t * p.grad_out.pos, dzb.data() + (t - t0) * CB, nc);
      } else {
        for (int64_t c = 0; c < nc; ++c) {
          const scalar_t* gc = gb + c * p.grad_out.channel;
          for (int64_t t = t0; t < te; ++t) dzb[(t - t0) * CB + c] = static_cast<A>(gc[t * p.grad_out.pos]);
        }
      }
      for (int64_t t = t0; t < te; ++t) {
        A* dz = dzb.data() + (t - t0) * CB;
        int64_t c = 0;
        if (p.silu) {
          causal_cl_row(p, b, c0, nc, t, x, wt.data(), btp, init, false, z.data());
          for (; c + V <= nc; c += V)
            causal_dsilu_vec(Vec::loadu(z.data() + c), Vec::loadu(dz + c)).store(dz + c);
          for (; c < nc; ++c) dz[c] = causal_dsilu(z[c], dz[c]);
        }
        if (t >= t1) continue;  // halo: dz only
        c = 0;
        if (t >= S) {
          const scalar_t* xt = xb + t * xp;
          for (; c + V <= nc; c += V) {
            const Vec g = Vec::loadu(dz + c);
            (Vec::loadu(dbb.data() + c) + g).store(dbb.data() + c);
            for (int64_t k = 0; k < W; ++k) {
              A* acc = dwb.data() + k * CB + c;
              at::vec::fmadd(g, causal_vload<A>(xt - (W - 1 - k) * d * xp + c), Vec::loadu(acc)).store(acc);
            }
          }
        }
        for (; c < nc; ++c) {
          const scalar_t* ir = init != nullptr ? init + (b * D + c0 + c) * S : nullptr;
          dbb[c] += dz[c];
          for (int64_t k = 0; k < W; ++k) {
            dwb[k * CB + c] += dz[c] * causal_input_at<scalar_t, A>(xb + c, xp, ir, S, t - (W - 1 - k) * d);
          }
        }
      }
      A* part = partials + ((b * tblocks + tb) * D + c0) * (W + 1);
      for (int64_t c = 0; c < nc; ++c) {
        for (int64_t k = 0; k < W; ++k) part[c * (W + 1) + k] = dwb[k * CB + c];
        part[c * (W + 1) + W] = dbb[c];
      }
      for (int64_t s = t0 == 0 ? -S : t0; s < t1; ++s) {
        scalar_t* o = dx + b * p.out.batch + c0 + s * p.out.pos;  // unit channel stride
        const bool direct = std::is_same<scalar_t, A>::value && s >= 0;
        A* dst = direct ? reinterpret_cast<A*>(o) : row.data();
        int64_t c = 0;
        for (; c + V <= nc; c += V) {
          Vec acc(A(0));
          for (int64_t k = 0; k < W; ++k) {
            const int64_t u = s + (W - 1 - k) * d;
            if (u < 0 || u >= L) continue;
            acc = at::vec::fmadd(Vec::loadu(wt.data() + k * D + c0 + c),
                                 Vec::loadu(dzb.data() + (u - t0) * CB + c), acc);
          }
          acc.store(dst + c);
        }
        for (; c < nc; ++c) {
          A a = 0;
          for (int64_t k = 0; k < W; ++k) {
            const int64_t u = s + (W - 1 - k) * d;
            if (u >= 0 && u < L) a += wt[k * D + c0 + c] * dzb[(u - t0) * CB + c];
          }
          dst[c] = a;
        }
        if (grad_final != nullptr && s >= L - S) {
          for (int64_t c2 = 0; c2 < nc; ++c2)
            dst[c2] += static_cast<A>(grad_final[(b * D + c0 + c2) * S + s - (L - S)]);
        }
        if (s < 0) {
          for (int64_t c2 = 0; c2 < nc; ++c2)
            dinit[(b * D + c0 + c2) * S + s + S] = static_cast<scalar_t>(dst[c2]);
        } else if (!direct) {
          causal_convert(row.data(), o, nc);
        }
      }
    }
  });
}

// acc[c] = bias[c] + the window sum of channel c (state entries then x), c in [0, nc), and the state
// shifted by one with x written last. KW > 0: width KW and state_len KW - 1 as constants, the window held
// in registers (the generic loops cost ~3x more per channel, which is most of a batch-1 step).
template <int KW, typename scalar_t, typename A>
void causal_step_block(int64_t nc, int64_t W, int64_t SL, const scalar_t* __restrict__ x, int64_t xs,
                       scalar_t* __restrict__ st, int64_t ss, const scalar_t* __restrict__ weight,
                       const scalar_t* __restrict__ bias, A* __restrict__ acc) {
  for (int64_t c = 0; c < nc; ++c) {
    scalar_t* sc = st + c * ss;
    const scalar_t xv = x[c * xs];
    A a = bias != nullptr ? static_cast<A>(bias[c]) : A(0);
    if constexpr (KW > 0) {
      const scalar_t* wc = weight + c * KW;
      scalar_t win[KW];
      for (int k = 0; k < KW - 1; ++k) win[k] = sc[k];
      win[KW - 1] = xv;
      for (int k = 0; k < KW; ++k) a += static_cast<A>(wc[k]) * static_cast<A>(win[k]);
      for (int k = 0; k < KW - 1; ++k) sc[k] = win[k + 1];
    } else {
      const scalar_t* wc = weight + c * W;
      for (int64_t k = 0; k < W - 1; ++k) a += static_cast<A>(wc[k]) * static_cast<A>(sc[SL - (W - 1) + k]);
      a += static_cast<A>(wc[W - 1]) * static_cast<A>(xv);
      if (SL > 0) {
        for (int64_t j = 0; j + 1 < SL; ++j) sc[j] = sc[j + 1];
        sc[SL - 1] = xv;
      }
    }
    acc[c] = a;
  }
}

template <typename scalar_t, typename A>
using CausalStepBlock = void (*)(int64_t, int64_t, int64_t, const scalar_t*, int64_t, scalar_t*, int64_t,
                                 const scalar_t*, const scalar_t*, A*);

template <typename scalar_t, typename A>
CausalStepBlock<scalar_t, A> causal_pick_step_block(int64_t W, int64_t SL) {
  if (SL == W - 1) {
    switch (W) {
      case 2:
        return &causal_step_block<2, scalar_t, A>;
      case 3:
        return &causal_step_block<3, scalar_t, A>;
      case 4:
        return &causal_step_block<4, scalar_t, A>;
      default:
        break;
    }
  }
  return &causal_step_block<0, scalar_t, A>;
}

// The common decode step: one new input per row, the state shifted (no cache_seqlens), state contiguous
// along its positions. Per (batch row, block of channels): the window sums and the state shift in one
// pass, then SiLU over the block, vectorised.
template <typename scalar_t>
void causal_update_step(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state,
                        const scalar_t* weight, const scalar_t* bias, const int32_t* state_indices,
                        scalar_t* out) {
  using A = causal_acc_t<scalar_t>;
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size(), CB = 256;
  const int64_t W = p.width, SL = p.state_len, D = p.dim;
  const int64_t blocks = (D + CB - 1) / CB;
  const CausalStepBlock<scalar_t, A> step = causal_pick_step_block<scalar_t, A>(W, SL);
  // About 16 Ki channels per task: batch 1 runs on the calling thread (a wake-up costs more than it).
  at::parallel_for(0, p.batch * blocks, std::max<int64_t>(1, 16384 / CB), [&](int64_t begin, int64_t end) {
    __at_align__ A acc[CB];
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / blocks, c0 = r % blocks * CB, nc = std::min(CB, D - c0);
      scalar_t* o = out + b * D + c0;
      const int64_t sr = state_indices != nullptr ? state_indices[b] : b;
      if (sr < 0) {
        std::fill(o, o + nc, static_cast<scalar_t>(0));
        continue;
      }
      const scalar_t* xr = x + b * p.x.batch + c0 * p.x.channel;
      scalar_t* st = state + sr * p.state.batch + c0 * p.state.channel;
      const scalar_t* bb = bias != nullptr ? bias + c0 : nullptr;
      step(nc, W, SL, xr, p.x.channel, st, p.state.channel, weight + c0 * W, bb, acc);
      if (p.silu) {
        int64_t c = 0;
        for (; c + V <= nc; c += V) causal_silu_vec(Vec::loadu(acc + c)).store(acc + c);
        for (; c < nc; ++c) acc[c] = acc[c] * causal_sigmoid(acc[c]);
      }
      causal_convert(acc, o, nc);
    }
  });
}

template <typename scalar_t>
void causal_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    const int32_t* seq_idx, const scalar_t* init, scalar_t* out, scalar_t* final_states) {
  using A = causal_acc_t<scalar_t>;
  if (seq_idx == nullptr) {
    if (causal_use_channels_last(p)) {
      causal_forward_cl_fast(p, x, weight, bias, init, out);
    } else {
      causal_forward_rows_fast(p, x, weight, bias, init, out);
    }
    return causal_final_states(p, x, init, final_states);
  }
  if (causal_use_channels_last(p)) {
    return causal_forward_channels_last(p, x, weight, bias, seq_idx, init, out, final_states);
  }
  const int64_t S = p.state_len, L = p.len, W = p.width, n = S + L;
  const std::vector<int32_t> ids = seq_idx != nullptr ? causal_row_ids(p, seq_idx) : std::vector<int32_t>();
  at::parallel_for(0, p.batch * p.dim, causal_grain(n * W), [&](int64_t begin, int64_t end) {
    std::vector<A> xs(static_cast<size_t>(n)), z(static_cast<size_t>(L)), w(static_cast<size_t>(W)),
        act(static_cast<size_t>(L));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.dim, c = r % p.dim;
      causal_load_row(p, b, c, x, init, xs.data());
      for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
      const int32_t* row_ids = seq_idx != nullptr ? ids.data() + b * n : nullptr;
      causal_row_preact(p, xs.data(), w.data(), bias != nullptr ? static_cast<A>(bias[c]) : A(0), row_ids,
                        z.data());
      if (p.silu) {
        causal_sigmoid_into(z.data(), act.data(), L);
        for (int64_t t = 0; t < L; ++t) z[t] *= act[t];
      }
      if (row_ids != nullptr) {
        for (int64_t t = 0; t < L; ++t) z[t] = row_ids[S + t] < 0 ? A(0) : z[t];
      }
      scalar_t* o = out + b * p.out.batch + c * p.out.channel;
      const int64_t so = p.out.pos;
      for (int64_t t = 0; t < L; ++t) o[t * so] = static_cast<scalar_t>(z[t]);
      scalar_t* f = final_states + (b * p.dim + c) * S;
      for (int64_t j = 0; j < S; ++j) f[j] = static_cast<scalar_t>(xs[L + j]);
    }
  });
}

// dx has the strides p.out; grad_output p.grad_out.
template <typename scalar_t>
void causal_backward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                     const int32_t* seq_idx, const scalar_t* init, const scalar_t* grad_out,
                     const scalar_t* grad_final, scalar_t* dx, scalar_t* dweight, scalar_t* dbias,
                     scalar_t* dinit) {
  using A = causal_acc_t<scalar_t>;
  const int64_t S = p.state_len, L = p.len, W = p.width, n = S + L, d = p.dilation;
  const std::vector<int32_t> ids = seq_idx != nullptr ? causal_row_ids(p, seq_idx) : std::vector<int32_t>();
  // partials[(j * dim + c) * (W + 1) + k]: part j of channel c's dweight[k] (index W: its dbias); the parts
  // are the batch rows, or (batch, chunk) for the channels-last fast path.
  const bool fast = seq_idx == nullptr;
  const int64_t nparts = fast && causal_use_channels_last(p) ? p.batch * causal_cl_chunks(L) : p.batch;
  std::vector<A> partials(static_cast<size_t>(nparts * p.dim * (W + 1)));
  if (fast && causal_use_channels_last(p)) {
    causal_backward_cl_fast(p, x, weight, bias, init, grad_out, grad_final, dx, dinit, partials.data());
  } else if (fast) {
    causal_backward_rows_fast(p, x, weight, bias, init, grad_out, grad_final, dx, dinit, partials.data());
  } else if (causal_use_channels_last(p)) {
    causal_backward_channels_last(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx, dinit,
                                  partials.data());
  } else {
    at::parallel_for(0, p.batch * p.dim, causal_grain(n * W), [&](int64_t begin, int64_t end) {
      std::vector<A> xs(static_cast<size_t>(n)), dxs(static_cast<size_t>(n)), z(static_cast<size_t>(L)),
          w(static_cast<size_t>(W)), act(static_cast<size_t>(L));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / p.dim, c = r % p.dim;
        causal_load_row(p, b, c, x, init, xs.data());
        for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
        const int32_t* row_ids = seq_idx != nullptr ? ids.data() + b * n : nullptr;
        // z becomes dz: grad of the pre-activation.
        if (p.silu) {
          causal_row_preact(p, xs.data(), w.data(), bias != nullptr ? static_cast<A>(bias[c]) : A(0), row_ids,
                            z.data());
          causal_sigmoid_into(z.data(), act.data(), L);
        }
        const scalar_t* go = grad_out + b * p.grad_out.batch + c * p.grad_out.channel;
        const int64_t sg = p.grad_out.pos;
        for (int64_t t = 0; t < L; ++t) {
          const A g = static_cast<A>(go[t * sg]);
          if (p.silu) {
            const A s = act[t];
            z[t] = g * s * (A(1) + z[t] * (A(1) - s));
          } else {
            z[t] = g;
          }
        }
        if (row_ids != nullptr) {
          for (int64_t t = 0; t < L; ++t) z[t] = row_ids[S + t] < 0 ? A(0) : z[t];
        }
        A* part = partials.data() + r * (W + 1);
        A db = 0;
        for (int64_t t = 0; t < L; ++t) db += z[t];
        part[W] = db;
        std::fill(dxs.begin(), dxs.end(), A(0));
        if (grad_final != nullptr) {
          const scalar_t* gf = grad_final + (b * p.dim + c) * S;
          for (int64_t j = 0; j < S; ++j) dxs[L + j] = static_cast<A>(gf[j]);
        }
        for (int64_t k = 0; k < W; ++k) {
          const A wk = w[k];
          const A* src = xs.data() + k * d;
          A* dsrc = dxs.data() + k * d;
          A dw = 0;
          if (row_ids == nullptr) {
            for (int64_t t = 0; t < L; ++t) dw += z[t] * src[t];
            for (int64_t t = 0; t < L; ++t) dsrc[t] += wk * z[t];
          } else {
            const int32_t* src_id = row_ids + k * d;
            const int32_t* own_id = row_ids + S;
            for (int64_t t = 0; t < L; ++t) dw += src_id[t] == own_id[t] ? z[t] * src[t] : A(0);
            for (int64_t t = 0; t < L; ++t) dsrc[t] += src_id[t] == own_id[t] ? wk * z[t] : A(0);
          }
          part[k] = dw;
        }
        scalar_t* gi = dinit + (b * p.dim + c) * S;
        for (int64_t j = 0; j < S; ++j) gi[j] = static_cast<scalar_t>(dxs[j]);
        scalar_t* gx = dx + b * p.out.batch + c * p.out.channel;
        const int64_t sx = p.out.pos;
        for (int64_t t = 0; t < L; ++t) gx[t * sx] = static_cast<scalar_t>(dxs[S + t]);
      }
    });
  }
  // Sum the partials over the parts, in order.
  at::parallel_for(0, p.dim, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, nparts * (W + 1))),
                   [&](int64_t begin, int64_t end) {
                     std::vector<A> acc(static_cast<size_t>(W + 1));
                     for (int64_t c = begin; c < end; ++c) {
                       std::fill(acc.begin(), acc.end(), A(0));
                       for (int64_t j = 0; j < nparts; ++j) {
                         const A* part = partials.data() + (j * p.dim + c) * (W + 1);
                         for (int64_t k = 0; k <= W; ++k) acc[k] += part[k];
                       }
                       for (int64_t k = 0; k < W; ++k) dweight[c * W + k] = static_cast<scalar_t>(acc[k]);
                       dbias[c] = static_cast<scalar_t>(acc[W]);
                     }
                   });
}

// The decode step: per (batch, channel), the window is the last width - 1 state entries (or, with
// cache_seqlens, the width - 1 entries before cache_seqlens[b] in the circular buffer), then x; out is
// the causal convolution of x over it; the state takes x in (shifted in, or written at cache_seqlens[b]
// + t modulo state_len). A negative conv_state_indices[b] is a padding row: output 0, no state touched.
template <typename scalar_t>
void causal_update(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state, const scalar_t* weight,
                   const scalar_t* bias, const int32_t* cache_seqlens, const int32_t* state_indices,
                   scalar_t* out) {
  using A = causal_acc_t<scalar_t>;
  const int64_t L = p.len, W = p.width, W1 = W - 1, SL = p.state_len;
  if (state_indices != nullptr) {
    for (int64_t b = 0; b < p.batch; ++b) {
      TORCH_CHECK(state_indices[b] < p.num_states, "causal_conv1d_update: conv_state_indices[", b,
                  "] = ", state_indices[b], " is out of range for conv_state with ", p.num_states, " rows");
    }
  }
  if (cache_seqlens == nullptr && L == 1 && p.state.pos == 1) {
    return causal_update_step(p, x, state, weight, bias, state_indices, out);
  }
  at::parallel_for(0, p.batch * p.dim, causal_grain((W1 + L) * W + SL), [&](int64_t begin, int64_t end) {
    std::vector<A> xs(static_cast<size_t>(W1 + L));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.dim, c = r % p.dim;
      scalar_t* o = out + r * L;
      const int64_t sr = state_indices != nullptr ? state_indices[b] : b;
      if (sr < 0) {
        for (int64_t t = 0; t < L; ++t) o[t] = static_cast<scalar_t>(0);
        continue;
      }
      scalar_t* st = state + sr * p.state.batch + c * p.state.channel;
      const int64_t sp = p.state.pos;
      const scalar_t* xr = x + b * p.x.batch + c * p.x.channel;
      const int64_t sx = p.x.pos;
      const int64_t cs = cache_seqlens != nullptr ? cache_seqlens[b] : 0;
      auto ring = [&](int64_t i) { return ((i % SL) + SL) % SL; };
      for (int64_t i = 0; i < W1; ++i) {
        const int64_t j = cache_seqlens != nullptr ? ring(cs - W1 + i) : SL - W1 + i;
        xs[i] = static_cast<A>(st[j * sp]);
      }
      for (int64_t t = 0; t < L; ++t) xs[W1 + t] = static_cast<A>(xr[t * sx]);
      const A bc = bias != nullptr ? static_cast<A>(bias[c]) : A(0);
      for (int64_t t = 0; t < L; ++t) {
        A acc = bc;
        for (int64_t k = 0; k < W; ++k) acc += static_cast<A>(weight[c * W + k]) * xs[t + k];
        if (p.silu) acc = acc * causal_sigmoid(acc);
        o[t] = static_cast<scalar_t>(acc);
      }
      if (SL == 0) continue;
      if (cache_seqlens != nullptr) {
        for (int64_t t = 0; t < L; ++t) st[ring(cs + t) * sp] = xr[t * sx];
      } else if (L >= SL) {
        for (int64_t j = 0; j < SL; ++j) st[j * sp] = xr[(L - SL + j) * sx];
      } else {
        for (int64_t j = 0; j < SL - L; ++j) st[j * sp] = st[(j + L) * sp];
        for (int64_t t = 0; t < L; ++t) st[(SL - L + t) * sp] = xr[t * sx];
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
