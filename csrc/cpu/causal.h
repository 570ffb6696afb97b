// Causal convolution (depthwise, left-padded by (width - 1) * dilation from initial_states or zeros,
// optional seq_idx masking and fused SiLU): forward, backward in one pass, and the decode update.
// The problem description is causal_params.h.
//
// One work item is one (batch, channel) row. Its input — initial state then x, read through x's strides
// (contiguous or channels-last, no tensor copy) — is converted once into a float scratch row `xs` of
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

template <typename scalar_t>
void causal_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    const int32_t* seq_idx, const scalar_t* init, scalar_t* out, scalar_t* final_states) {
  using A = causal_acc_t<scalar_t>;
  const int64_t S = p.state_len, L = p.len, W = p.width, n = S + L;
  const std::vector<int32_t> ids = seq_idx != nullptr ? causal_row_ids(p, seq_idx) : std::vector<int32_t>();
  at::parallel_for(0, p.batch * p.dim, causal_grain(n * W), [&](int64_t begin, int64_t end) {
    std::vector<A> xs(static_cast<size_t>(n)), z(static_cast<size_t>(L)), w(static_cast<size_t>(W));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.dim, c = r % p.dim;
      causal_load_row(p, b, c, x, init, xs.data());
      for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
      const int32_t* row_ids = seq_idx != nullptr ? ids.data() + b * n : nullptr;
      causal_row_preact(p, xs.data(), w.data(), bias != nullptr ? static_cast<A>(bias[c]) : A(0), row_ids,
                        z.data());
      if (p.silu) {
        for (int64_t t = 0; t < L; ++t) z[t] = z[t] * causal_sigmoid(z[t]);
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
  at::parallel_for(0, p.batch * p.dim, causal_grain(n * W), [&](int64_t begin, int64_t end) {
    std::vector<A> xs(static_cast<size_t>(n)), dxs(static_cast<size_t>(n)), z(static_cast<size_t>(L)),
        w(static_cast<size_t>(W));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.dim, c = r % p.dim;
      causal_load_row(p, b, c, x, init, xs.data());
      for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
      const int32_t* row_ids = seq_idx != nullptr ? ids.data() + b * n : nullptr;
      // z becomes dz: grad of the pre-activation.
      if (p.silu) {
        causal_row_preact(p, xs.data(), w.data(), bias != nullptr ? static_cast<A>(bias[c]) : A(0), row_ids,
                          z.data());
      }
      const scalar_t* go = grad_out + b * p.grad_out.batch + c * p.grad_out.channel;
      const int64_t sg = p.grad_out.pos;
      for (int64_t t = 0; t < L; ++t) {
        const A g = static_cast<A>(go[t * sg]);
        if (p.silu) {
          const A s = causal_sigmoid(z[t]);
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
