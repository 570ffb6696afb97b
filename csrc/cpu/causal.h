// Causal convolution (depthwise, left-padded by (width - 1) * dilation from initial_states or zeros,
// optional seq_idx masking and fused SiLU): forward, backward in one pass, and the decode update.
// The problem description is causal_params.h.
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

template <typename scalar_t>
void causal_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    const int32_t* seq_idx, const scalar_t* init, scalar_t* out, scalar_t* final_states) {
  using A = causal_acc_t<scalar_t>;
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
  // partials[(b * dim + c) * (W + 1) + k]: row (b, c)'s dweight[k]; index W: its dbias.
  std::vector<A> partials(static_cast<size_t>(p.batch * p.dim * (W + 1)));
  if (causal_use_channels_last(p)) {
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
  // Sum the rows' partials over the batch, in batch order.
  at::parallel_for(0, p.dim, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, p.batch * (W + 1))),
                   [&](int64_t begin, int64_t end) {
                     std::vector<A> acc(static_cast<size_t>(W + 1));
                     for (int64_t c = begin; c < end; ++c) {
                       std::fill(acc.begin(), acc.end(), A(0));
                       for (int64_t b = 0; b < p.batch; ++b) {
                         const A* part = partials.data() + (b * p.dim + c) * (W + 1);
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
