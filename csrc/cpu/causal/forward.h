// The prefill forward of the causal family (cpu/causal.h): out and final_states from x, the weights,
// initial_states and seq_idx, in x's layout (rows, or channels-last). causal_forward is the entry point.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/causal/common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t>
void causal_forward_channels_last(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                                  const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,
                                  scalar_t* out, scalar_t* final_states) {
  using A = acc_t<scalar_t>;
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
  using A = acc_t<scalar_t>;
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
                           convert_from_acc(res.data(), o + t0, n);
                         } else {
                           for (int64_t i = 0; i < n; ++i)
                             o[(t0 + i) * p.out.pos] = static_cast<scalar_t>(res[i]);
                         }
                       }
                     }
                   });
}

template <typename scalar_t>
void causal_forward_cl_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                            const scalar_t* bias, const scalar_t* init, scalar_t* out) {
  using A = acc_t<scalar_t>;
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
        if (!std::is_same<scalar_t, A>::value) convert_from_acc(row.data(), o, nc);
      }
    }
  });
}

template <typename scalar_t>
void causal_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    const int32_t* seq_idx, const scalar_t* init, scalar_t* out, scalar_t* final_states) {
  using A = acc_t<scalar_t>;
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

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
