// The decode update of the causal family (cpu/causal.h): out from x and the conv_state window, the state
// updated in place (shifted, or a circular buffer with cache_seqlens), conv_state_indices mapping batch
// rows to state rows. causal_update is the entry point; the common single-position step without
// cache_seqlens takes causal_update_step.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/causal/common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// acc[c] = bias[c] + the window sum of channel c (state entries then x), c in [0, nc), and the state
// shifted by one with x written last. KW > 0: width KW and state_len KW - 1 as constants, the window held
// in registers (the generic loops are most of a batch-1 step; measurements: docs/cpu-kernels.md).
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

// The step kernel: a compile-time width for the common ones (with_fixed_count) when the state holds
// exactly width - 1 entries.
template <typename scalar_t, typename A>
CausalStepBlock<scalar_t, A> causal_pick_step_block(int64_t W, int64_t SL) {
  return with_fixed_count<2, 3, 4>(SL == W - 1 ? W : 0, [](auto kW) -> CausalStepBlock<scalar_t, A> {
    return &causal_step_block<decltype(kW)::value, scalar_t, A>;
  });
}

// The common decode step: one new input per row, the state shifted (no cache_seqlens), state contiguous
// along its positions. Per (batch row, block of channels): the window sums and the state shift in one
// pass, then SiLU over the block, vectorised.
template <typename scalar_t>
void causal_update_step(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state,
                        const scalar_t* weight, const scalar_t* bias, const int32_t* state_indices,
                        scalar_t* out) {
  using A = acc_t<scalar_t>;
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
      convert_from_acc(acc, o, nc);
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
  using A = acc_t<scalar_t>;
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
