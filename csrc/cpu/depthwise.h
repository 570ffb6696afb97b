// Depthwise kernels (one input channel per group, in_per_group == 1; out_per_group > 1 is a channel
// multiplier): the Mamba short conv (k=4) and Conformer (k=31) shapes. Memory-bound, so every op makes
// one pass over its big tensors: each row is copied once into a zero-padded float (double) scratch row,
// split by stride phase (pad_row_phases), which converts 16-bit types once and removes every edge case.
// Each tap is then a fixed load offset (dilation and stride included) and the position loop is
// vectorised along L with the tap weights hoisted. The plain float/double forward at stride 1 reads the
// input row itself instead (depthwise_forward_plain), and the plain backward at stride 1 computes its three
// gradients in one pass (depthwise_backward_fused, the op conv1d_backward). Large outputs are written with
// streaming stores (kernel_common.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// out_t is scalar_t, or acc_t<scalar_t> for a partial row that is summed further. kStream: a streaming
// store (kernel_common.h), out aligned to 32 bytes.
template <typename scalar_t, bool kStream = false, typename out_t>
inline void store_row_vec(out_t* out, const AccVec<scalar_t>& v) {
  if constexpr (kStream) {
    store_stream(out, v);
  } else if constexpr (std::is_same_v<out_t, acc_t<scalar_t>>) {
    v.store(out);
  } else {
    store_acc(out, v);
  }
}

// out[o] = bias + sum_k w[k] * buf[offset[k] + o] for o in [0, n), in the accumulation type
// (kAccumulate: out[o] += sum_k ..., out is an accumulation-type row and bias is ignored).
// kFixedTaps > 0 makes the tap count a compile-time constant (weights and offsets stay in registers).
// kStream: streaming stores (kernel_common.h) from the first 32-byte aligned element on.
// Rows of at least one vector are computed by vectors only (the unaligned head of a streamed row and the
// last partial vector as one more vector overlapping its neighbours, which rewrites their values): every
// element is the same fused multiply-add chain, so the bits do not depend on where the vector loop
// starts or ends (streamed or not, any alignment). Shorter rows, and the tail of an accumulated row,
// are computed one by one.
template <int kFixedTaps, bool kAccumulate, bool kStream, typename scalar_t, typename out_t>
inline void depthwise_row(const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w, const int64_t* offset,
                          int64_t taps, acc_t<scalar_t> bias, int64_t n, out_t* out) {
  static_assert(!(kAccumulate && kStream), "a streamed row is not read back");
  using acc = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t K = kFixedTaps > 0 ? kFixedTaps : taps;
  const auto vector_at = [&](int64_t o) {
    Vec a(bias);
    for (int64_t k = 0; k < K; ++k) a = at::vec::fmadd(Vec::loadu(buf + offset[k] + o), Vec(w[k]), a);
    return a;
  };
  int64_t o = 0;
  if constexpr (kStream) {
    const int64_t head = stream_peel(out, n);
    if (head > 0 && n >= W) {
      store_row_vec<scalar_t>(out, vector_at(0));
      o = head;
    }
  }
  if constexpr (kFixedTaps > 0) {
    Vec wv[kFixedTaps];
    const acc* src[kFixedTaps];
    for (int64_t k = 0; k < kFixedTaps; ++k) {
      wv[k] = Vec(w[k]);
      src[k] = buf + offset[k];
    }
    for (; o + 2 * W <= n; o += 2 * W) {
      Vec a0(bias), a1(bias);
      if constexpr (kAccumulate) {
        a0 = Vec::loadu(out + o);
        a1 = Vec::loadu(out + o + W);
      }
      for (int64_t k = 0; k < kFixedTaps; ++k) {
        a0 = at::vec::fmadd(Vec::loadu(src[k] + o), wv[k], a0);
        a1 = at::vec::fmadd(Vec::loadu(src[k] + o + W), wv[k], a1);
      }
      store_row_vec<scalar_t, kStream>(out + o, a0);
      store_row_vec<scalar_t, kStream>(out + o + W, a1);
    }
  } else {
    for (; o + 4 * W <= n; o += 4 * W) {
      Vec a0(bias), a1(bias), a2(bias), a3(bias);
      if constexpr (kAccumulate) {
        a0 = Vec::loadu(out + o);
        a1 = Vec::loadu(out + o + W);
        a2 = Vec::loadu(out + o + 2 * W);
        a3 = Vec::loadu(out + o + 3 * W);
      }
      for (int64_t k = 0; k < K; ++k) {
        const Vec wk(w[k]);
        const acc* src = buf + offset[k] + o;
        a0 = at::vec::fmadd(Vec::loadu(src), wk, a0);
        a1 = at::vec::fmadd(Vec::loadu(src + W), wk, a1);
        a2 = at::vec::fmadd(Vec::loadu(src + 2 * W), wk, a2);
        a3 = at::vec::fmadd(Vec::loadu(src + 3 * W), wk, a3);
      }
      store_row_vec<scalar_t, kStream>(out + o, a0);
      store_row_vec<scalar_t, kStream>(out + o + W, a1);
      store_row_vec<scalar_t, kStream>(out + o + 2 * W, a2);
      store_row_vec<scalar_t, kStream>(out + o + 3 * W, a3);
    }
  }
  if constexpr (!kAccumulate) {
    for (; o + W <= n; o += W) store_row_vec<scalar_t, kStream>(out + o, vector_at(o));
    if (o < n && n >= W) {
      store_row_vec<scalar_t>(out + n - W, vector_at(n - W));
      o = n;
    }
  }
  for (; o < n; ++o) {
    acc s = bias;
    if constexpr (kAccumulate) s = out[o];
    for (int64_t k = 0; k < K; ++k) s += w[k] * buf[offset[k] + o];
    out[o] = static_cast<out_t>(s);
  }
}

// kStream is honoured only where streaming exists (can_stream<out_t>()).
template <typename scalar_t, bool kAccumulate = false, bool kStream = false, typename out_t>
inline void depthwise_row_any(const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w, const int64_t* offset,
                              int64_t taps, acc_t<scalar_t> bias, int64_t n, out_t* out) {
  static_assert(!kAccumulate || std::is_same_v<out_t, acc_t<scalar_t>>, "accumulate into float rows");
  constexpr bool S = kStream && can_stream<out_t>();
  with_fixed_count<2, 3, 4>(taps, [&](auto kTaps) {
    depthwise_row<decltype(kTaps)::value, kAccumulate, S, scalar_t>(buf, w, offset, taps, bias, n, out);
  });
}

// depthwise_row_any with or without streaming stores, chosen at run time.
template <typename scalar_t, typename out_t>
inline void depthwise_row_maybe_stream(bool stream, const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w,
                                       const int64_t* offset, int64_t taps, acc_t<scalar_t> bias, int64_t n,
                                       out_t* out) {
  // streaming needs element-aligned rows (PyTorch's always are)
  if (stream && reinterpret_cast<std::uintptr_t>(out) % sizeof(out_t) == 0)
    return depthwise_row_any<scalar_t, false, true>(buf, w, offset, taps, bias, n, out);
  depthwise_row_any<scalar_t>(buf, w, offset, taps, bias, n, out);
}

// Layout of the phase-split padded input row (pad_row_phases) the forward and backward-weight read.
struct PhaseLayout {
  int64_t phase_len;            // out_len + furthest tap shift
  std::vector<int64_t> offset;  // per tap: where output position 0 reads in the buffer
  explicit PhaseLayout(const Conv1dParams& p)
      : phase_len(p.out_len + (p.kernel_size - 1) * p.dilation / p.stride), offset(p.kernel_size) {
    for (int64_t k = 0; k < p.kernel_size; ++k) {
      const int64_t reach = k * p.dilation;
      offset[k] = (reach % p.stride) * phase_len + reach / p.stride;
    }
  }
  int64_t size(const Conv1dParams& p) const { return p.stride * phase_len; }
};

// Channel multiplier: kRows output rows reading the same padded input row, out[j][o] = bias[j] +
// sum_k w[j * taps + k] * buf[offset[k] + o]. A tile of kRows channels x 2 vectors of positions keeps
// 2 * kRows accumulators in registers and loads each input vector once for all kRows channels.
template <int kRows, typename scalar_t>
inline void depthwise_rows(const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w, const int64_t* offset,
                           int64_t taps, const acc_t<scalar_t>* bias, int64_t n, scalar_t* const* out) {
  using acc = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  int64_t o = 0;
  for (; o + 2 * W <= n; o += 2 * W) {
    Vec a[kRows][2];
    for (int j = 0; j < kRows; ++j) a[j][0] = a[j][1] = Vec(bias[j]);
    for (int64_t k = 0; k < taps; ++k) {
      const acc* src = buf + offset[k] + o;
      const Vec x0 = Vec::loadu(src), x1 = Vec::loadu(src + W);
      for (int j = 0; j < kRows; ++j) {
        const Vec wk(w[j * taps + k]);
        a[j][0] = at::vec::fmadd(x0, wk, a[j][0]);
        a[j][1] = at::vec::fmadd(x1, wk, a[j][1]);
      }
    }
    for (int j = 0; j < kRows; ++j) {
      store_acc(out[j] + o, a[j][0]);
      store_acc(out[j] + o + W, a[j][1]);
    }
  }
  for (; o < n; ++o) {
    for (int j = 0; j < kRows; ++j) {
      acc s = bias[j];
      for (int64_t k = 0; k < taps; ++k) s += w[j * taps + k] * buf[offset[k] + o];
      out[j][o] = static_cast<scalar_t>(s);
    }
  }
}

// The forward of a plain depthwise problem (one output row per input row, stride 1) in float or double
// (16-bit types take the padded rows, which convert them once),
// straight from the input row: no padded copy. Output positions whose taps all fall inside the row,
// [o_lo, o_hi), are the row kernel on the input itself (tap k at offset k*dilation from o - pad_left);
// the few positions whose taps reach into the padding (at most pad_left + pad_right) are summed one by
// one. Large outputs are streamed (kernel_common.h): the op then moves its input and output once each
// (with plain stores the written lines are also read first); the expected and measured effect:
// docs/cpu-kernels.md.
inline bool depthwise_forward_reads_input_directly(const Conv1dParams& p) {
  return p.out_per_group == 1 && p.stride == 1;
}

template <typename scalar_t>
void depthwise_forward_plain(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                             const scalar_t* bias, scalar_t* output) {
  using acc = acc_t<scalar_t>;
  const int64_t K = p.kernel_size, L = p.in_len, rows = p.batch * p.in_channels;
  const int64_t span = (K - 1) * p.dilation + 1;
  // o - pad_left >= 0 and o - pad_left + span <= L
  const int64_t o_lo = std::min(p.pad_left, p.out_len);
  const int64_t o_hi = std::clamp<int64_t>(L + p.pad_left - span + 1, o_lo, p.out_len);
  const bool stream = stream_output<scalar_t>(rows * p.out_len * static_cast<int64_t>(sizeof(scalar_t)));
  std::vector<int64_t> offset(K);
  for (int64_t k = 0; k < K; ++k) offset[k] = k * p.dilation;
  at::parallel_for(0, rows, grain_for(K * p.out_len), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> w(K);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t c = row % p.in_channels;
      const scalar_t* x = input + row * L;
      scalar_t* out = output + row * p.out_len;
      for (int64_t k = 0; k < K; ++k) w[k] = weight[c * K + k];
      const acc b = bias ? bias[c] : acc(0);
      const auto edge = [&](int64_t o) {
        acc sum = b;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t i = o - p.pad_left + k * p.dilation;
          if (i >= 0 && i < L) sum += w[k] * x[i];
        }
        out[o] = sum;
      };
      for (int64_t o = 0; o < o_lo; ++o) edge(o);
      if (o_hi > o_lo)
        depthwise_row_maybe_stream<scalar_t>(stream, x + (o_lo - p.pad_left), w.data(), offset.data(), K, b,
                                             o_hi - o_lo, out + o_lo);
      for (int64_t o = o_hi; o < p.out_len; ++o) edge(o);
    }
    stream_fence();
  });
}

// Work items: (batch, input channel, tile of up to kMultTile of its out_per_group output rows). The padded
// input row is built once per item (and kept while consecutive items share it). Plain float / double
// problems at stride 1 read the input directly instead (depthwise_forward_plain).
template <typename scalar_t>
void depthwise_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                       const scalar_t* bias, scalar_t* output) {
  if constexpr (std::is_same_v<scalar_t, acc_t<scalar_t>>) {  // float, double: no conversion needed
    if (depthwise_forward_reads_input_directly(p))
      return depthwise_forward_plain(p, input, weight, bias, output);
  }
  using acc = acc_t<scalar_t>;
  constexpr int64_t kMultTile = 4;
  const int64_t K = p.kernel_size, m = p.out_per_group;
  const int64_t tiles_per_channel = ceil_div(m, kMultTile);
  const int64_t items = p.batch * p.in_channels * tiles_per_channel;
  const PhaseLayout layout(p);
  const int64_t work = std::min(m, kMultTile) * K * p.out_len;
  at::parallel_for(0, items, grain_for(work), [&](int64_t item_begin, int64_t item_end) {
    std::vector<acc> scratch(layout.size(p) + kAliasSlack<acc>);
    acc* buf = scratch.data();
    std::vector<acc> w(kMultTile * K);
    acc tile_bias[kMultTile];
    scalar_t* tile_out[kMultTile];
    int64_t buffered_row = -1;  // input row held in buf
    for (int64_t item = item_begin; item < item_end; ++item) {
      const int64_t in_row = item / tiles_per_channel;  // b * in_channels + ic
      const int64_t ic = in_row % p.in_channels, b = in_row / p.in_channels;
      const int64_t j0 = (item % tiles_per_channel) * kMultTile;
      if (in_row != buffered_row) {
        buf = alias_safe_start(scratch.data(), output + (b * p.out_channels + ic * m + j0) * p.out_len, 0,
                               input + in_row * p.in_len, p.pad_left);
        pad_row_phases(input + in_row * p.in_len, p.in_len, p.pad_left, p.stride, layout.phase_len, buf);
        buffered_row = in_row;
      }
      const int64_t rows = std::min(kMultTile, m - j0);
      for (int64_t j = 0; j < rows; ++j) {
        const int64_t oc = ic * m + j0 + j;
        for (int64_t k = 0; k < K; ++k) w[j * K + k] = static_cast<acc>(weight[oc * K + k]);
        tile_bias[j] = bias ? static_cast<acc>(bias[oc]) : acc(0);
        tile_out[j] = output + (b * p.out_channels + oc) * p.out_len;
      }
      // rows is 1..kMultTile: one row takes the single-row kernel, more the kRows-row tile.
      with_fixed_count<1, 2, 3, 4>(rows, [&](auto kRows) {
        constexpr int R = decltype(kRows)::value;
        static_assert(R <= kMultTile);
        if constexpr (R == 1) {
          depthwise_row_any<scalar_t>(buf, w.data(), layout.offset.data(), K, tile_bias[0], p.out_len,
                                      tile_out[0]);
        } else if constexpr (R > 1) {
          depthwise_rows<R, scalar_t>(buf, w.data(), layout.offset.data(), K, tile_bias, p.out_len, tile_out);
        }
      });
    }
  });
}

// grad_input[b, ic, i] = sum over the channel's out_per_group rows and taps k with
// i + pad_left = o*stride + k*dilation of w[k] * grad_output[o]. Split by phase r = (i + pad_left) % stride:
// writing i + pad_left = q*stride + r, only the taps with (k*dilation) % stride == r reach phase r, each
// from o = q - (k*dilation) / stride. So every phase is a stride-1 correlation of one zero-padded
// grad_output row (gpad[j] = go[j - max_shift]) with that phase's taps: the forward row kernel again, with
// no divisibility tests and no scatter.
template <typename scalar_t>
void depthwise_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                              scalar_t* grad_input) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = p.batch * p.in_channels;
  const int64_t K = p.kernel_size, s = p.stride;
  const int64_t max_shift = (K - 1) * p.dilation / s;
  const int64_t q_end_max = ceil_div(p.in_len + p.pad_left, s);
  const int64_t gpad_len = q_end_max + max_shift;
  // Straight into grad_input for the plain case; otherwise each phase sums its rows (channel
  // multiplier) in the accumulation type, phase-major, and is interleaved into grad_input at the end.
  const bool direct_store = (s == 1 && p.out_per_group == 1);
  const bool stream =
      direct_store && stream_output<scalar_t>(rows * p.in_len * static_cast<int64_t>(sizeof(scalar_t)));
  const int64_t work = p.out_per_group * K * p.out_len;
  at::parallel_for(0, rows, grain_for(work), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> gpad_scratch(gpad_len + kAliasSlack<acc>);
    std::vector<acc> w(K);
    std::vector<int64_t> offset(K);
    std::vector<acc> phase_sum(direct_store ? 0 : s * q_end_max);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t b = row / p.in_channels;
      const int64_t ic = row % p.in_channels;
      scalar_t* gi_row = grad_input + row * p.in_len;
      if (!direct_store) std::fill(phase_sum.begin(), phase_sum.end(), acc(0));
      for (int64_t j = 0; j < p.out_per_group; ++j) {
        const int64_t oc = ic * p.out_per_group + j;
        const scalar_t* go_row = grad_output + (b * p.out_channels + oc) * p.out_len;
        // Stride 1 reads gpad + pad_left + o while storing gi_row + o.
        acc* gpad = alias_safe_start(gpad_scratch.data(), direct_store ? gi_row : nullptr, p.pad_left, go_row,
                                     max_shift);
        pad_row(go_row, p.out_len, max_shift, gpad_len, gpad);
        for (int64_t r = 0; r < s; ++r) {
          // Phase r covers q in [q0, q1): grad_input positions q*s + r - pad_left in [0, in_len).
          const int64_t q0 = std::max<int64_t>(0, ceil_div(p.pad_left - r, s));
          const int64_t q1 = ceil_div(p.in_len + p.pad_left - r, s);
          if (q1 <= q0) continue;
          int64_t n_taps = 0;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t reach = k * p.dilation;
            if (reach % s != r) continue;
            w[n_taps] = static_cast<acc>(weight[oc * K + k]);
            offset[n_taps] = max_shift - reach / s;
            ++n_taps;
          }
          if (direct_store) {
            depthwise_row_maybe_stream<scalar_t>(stream, gpad + q0, w.data(), offset.data(), n_taps, acc(0),
                                                 q1 - q0, gi_row);
          } else if (n_taps > 0) {
            depthwise_row_any<scalar_t, true>(gpad + q0, w.data(), offset.data(), n_taps, acc(0), q1 - q0,
                                              phase_sum.data() + r * q_end_max);
          }
        }
      }
      if (direct_store) continue;
      for (int64_t r = 0; r < s; ++r) {
        const int64_t q0 = std::max<int64_t>(0, ceil_div(p.pad_left - r, s));
        const int64_t q1 = ceil_div(p.in_len + p.pad_left - r, s);
        const acc* src = phase_sum.data() + r * q_end_max;
        scalar_t* dst = gi_row + q0 * s + r - p.pad_left;
        for (int64_t q = 0; q < q1 - q0; ++q) dst[q * s] = static_cast<scalar_t>(src[q]);
      }
    }
    stream_fence();
  });
}

// a[k] = sum over the vectors o < vec_end of go[o] * src[k][o], k < kTaps (a compile-time count, so the
// accumulators stay in registers). Few taps make short dependency chains, so two positions' vectors are
// summed separately and added at the end (more independent multiply-adds in flight).
template <int kTaps, typename scalar_t, typename go_t>
inline void weight_taps(const go_t* go, const acc_t<scalar_t>* const* src, int64_t vec_end,
                        AccVec<scalar_t>* a) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr int kUnroll = kTaps <= 4 ? 2 : 1;
  Vec acc[kUnroll][kTaps];
  for (int u = 0; u < kUnroll; ++u)
    for (int k = 0; k < kTaps; ++k) acc[u][k] = Vec(0);
  int64_t o = 0;
  for (; o + kUnroll * W <= vec_end; o += kUnroll * W) {
    for (int u = 0; u < kUnroll; ++u) {
      const Vec g = load_acc(go + o + u * W);
      for (int k = 0; k < kTaps; ++k)
        acc[u][k] = at::vec::fmadd(g, Vec::loadu(src[k] + o + u * W), acc[u][k]);
    }
  }
  for (; o < vec_end; o += W) {
    const Vec g = load_acc(go + o);
    for (int k = 0; k < kTaps; ++k) acc[0][k] = at::vec::fmadd(g, Vec::loadu(src[k] + o), acc[0][k]);
  }
  for (int k = 0; k < kTaps; ++k) {
    a[k] = acc[0][k];
    for (int u = 1; u < kUnroll; ++u) a[k] = a[k] + acc[u][k];
  }
}

// sums[k] += sum_o go[o] * buf[offset[k] + o]: vectorised along o, in blocks of at most kTapBlock taps
// whose vector accumulators live in registers, fixed reduction order (deterministic). go is a grad_output
// row, scalar_t, or its copy in the accumulation type (the same values, so the same sums).
template <typename scalar_t, typename go_t>
inline void depthwise_weight_row(const go_t* go, const acc_t<scalar_t>* buf, const int64_t* offset,
                                 int64_t taps, int64_t n, acc_t<scalar_t>* sums) {
  using acc = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr int64_t kTapBlock = 8;
  const int64_t vec_end = n - n % W;
  for (int64_t k0 = 0; k0 < taps; k0 += kTapBlock) {
    const int64_t nk = std::min(kTapBlock, taps - k0);
    Vec a[kTapBlock];
    const acc* src[kTapBlock];
    for (int64_t k = 0; k < nk; ++k) src[k] = buf + offset[k0 + k];
    // nk is 1..kTapBlock, each a compile-time count.
    with_fixed_count<1, 2, 3, 4, 5, 6, 7, 8>(nk, [&](auto kTaps) {
      constexpr int kNk = decltype(kTaps)::value;
      static_assert(kNk <= kTapBlock);
      if constexpr (kNk > 0) weight_taps<kNk, scalar_t>(go, src, vec_end, a);
    });
    for (int64_t k = 0; k < nk; ++k) {
      acc total = lane_sum(a[k]);
      for (int64_t o = vec_end; o < n; ++o) total += static_cast<acc>(go[o]) * src[k][o];
      sums[k0 + k] += total;
    }
  }
}

// grad_weight[oc, 0, :]: one work item per output channel, reducing over the batch inside the item:
// deterministic, each item writes only its own weights. A thread's consecutive output channels that share
// an input channel (channel multiplier) share each padded input row.
template <typename scalar_t>
void depthwise_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                               scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  const int64_t K = p.kernel_size, m = p.out_per_group;
  const PhaseLayout layout(p);
  const int64_t work = p.batch * K * p.out_len;
  at::parallel_for(0, p.out_channels, grain_for(work), [&](int64_t oc_begin, int64_t oc_end) {
    std::vector<acc> scratch(layout.size(p) + kAliasSlack<acc>);
    std::vector<acc> sums((oc_end - oc_begin) * K);
    for (int64_t seg_begin = oc_begin; seg_begin < oc_end;) {
      const int64_t ic = seg_begin / m;
      const int64_t seg_end = std::min(oc_end, (ic + 1) * m);  // output channels of input channel ic
      acc* seg_sums = sums.data() + (seg_begin - oc_begin) * K;
      std::fill(seg_sums, seg_sums + (seg_end - seg_begin) * K, acc(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        const scalar_t* in_row = input + (b * p.in_channels + ic) * p.in_len;
        acc* buf = alias_safe_start(scratch.data(), nullptr, 0, in_row, p.pad_left);
        pad_row_phases(in_row, p.in_len, p.pad_left, p.stride, layout.phase_len, buf);
        for (int64_t oc = seg_begin; oc < seg_end; ++oc)
          depthwise_weight_row<scalar_t>(grad_output + (b * p.out_channels + oc) * p.out_len, buf,
                                         layout.offset.data(), K, p.out_len, seg_sums + (oc - seg_begin) * K);
      }
      seg_begin = seg_end;
    }
    for (int64_t i = 0; i < (oc_end - oc_begin) * K; ++i)
      grad_weight[oc_begin * K + i] = static_cast<scalar_t>(sums[i]);
  });
}

// The fused backward (op conv1d_backward) of a plain depthwise problem: one output row per input row
// (out_per_group == 1), stride 1. Partitioned by channel, each channel reducing over the batch in order, like
// depthwise_backward_weight: deterministic and independent of the thread count. For each (batch, channel)
// row, grad_output and input are read from memory once, into the two padded float rows (a row of a few
// KiB stays in L1/L2), and grad_input, the weight sums and the bias sum are all computed from them:
// one pass over the big tensors (read grad_output + read input + write grad_input) where the separate ops
// read grad_output three times. Each output is computed exactly as its separate op computes it (same row
// kernels, same reduction order), so the results are bit-identical to conv1d_backward_input /
// conv1d_backward_weight / conv1d_backward_bias. Null output pointers are not computed. The expected and
// measured effect: docs/cpu-kernels.md.
inline bool depthwise_fused_backward_supports(const Conv1dParams& p) {
  return p.is_depthwise() && p.out_per_group == 1 && p.stride == 1;
}

template <typename scalar_t>
void depthwise_backward_fused(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                              const scalar_t* weight, scalar_t* grad_input, scalar_t* grad_weight,
                              scalar_t* grad_bias) {
  using acc = acc_t<scalar_t>;
  const int64_t K = p.kernel_size, C = p.in_channels;
  // grad_input as in depthwise_backward_input (stride 1): gi[i] = sum_k w[k] * gpad[pad_left + i + max_shift
  // - k*dilation], gpad the grad_output row with max_shift zeros in front.
  // gpad also keeps the whole grad_output row (positions past in_len + pad_left read only the right
  // padding), as the weight and bias sums read it from there.
  const int64_t max_shift = (K - 1) * p.dilation;
  const int64_t gpad_len = std::max(p.in_len + p.pad_left, p.out_len) + max_shift;
  const PhaseLayout layout(p);  // stride 1: the zero-padded input row, tap k at offset k*dilation
  const int64_t work = p.batch * 2 * K * p.out_len;
  const bool stream =
      grad_input && stream_output<scalar_t>(p.batch * C * p.in_len * static_cast<int64_t>(sizeof(scalar_t)));
  at::parallel_for(0, C, grain_for(work), [&](int64_t c_begin, int64_t c_end) {
    std::vector<acc> gpad_scratch(grad_input ? gpad_len + kAliasSlack<acc> : 0);
    std::vector<acc> xpad_scratch(grad_weight ? layout.size(p) + kAliasSlack<acc> : 0);
    const int64_t channels = c_end - c_begin;
    std::vector<acc> w(K), sums(channels * K, acc(0)), bias_totals(channels, acc(0));
    std::vector<int64_t> gi_offset(K);
    for (int64_t k = 0; k < K; ++k) gi_offset[k] = max_shift - k * p.dilation;
    // Batch outermost: the rows of one sample's channels [c_begin, c_end) are adjacent in memory, so each
    // thread reads two long sequential streams (the prefetchers' best case) instead of a new 16 KiB row
    // 8 MiB away each time. Each channel still sums its samples in batch order: the same bits.
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t c = c_begin; c < c_end; ++c) {
        if (grad_input)  // weight is read only for grad_input (and may be absent otherwise)
          for (int64_t k = 0; k < K; ++k) w[k] = static_cast<acc>(weight[c * K + k]);
        acc* channel_sums = sums.data() + (c - c_begin) * K;
        const int64_t row = b * C + c;
        const scalar_t* go_row = grad_output + row * p.out_len;
        const acc* go_copy = nullptr;  // the row in the accumulation type, in L1, once grad_input made it
        if (grad_input) {
          scalar_t* gi_row = grad_input + row * p.in_len;
          acc* gpad = alias_safe_start(gpad_scratch.data(), gi_row, p.pad_left, go_row, max_shift);
          pad_row(go_row, p.out_len, max_shift, gpad_len, gpad);
          depthwise_row_maybe_stream<scalar_t>(stream, gpad + p.pad_left, w.data(), gi_offset.data(), K,
                                               acc(0), p.in_len, gi_row);
          go_copy = gpad + max_shift;
        }
        if (grad_weight) {
          const scalar_t* x_row = input + row * p.in_len;
          acc* xpad = alias_safe_start(xpad_scratch.data(), nullptr, 0, x_row, p.pad_left);
          pad_row(x_row, p.in_len, p.pad_left, layout.phase_len, xpad);
          if (go_copy) {
            depthwise_weight_row<scalar_t>(go_copy, xpad, layout.offset.data(), K, p.out_len, channel_sums);
          } else {
            depthwise_weight_row<scalar_t>(go_row, xpad, layout.offset.data(), K, p.out_len, channel_sums);
          }
        }
        if (grad_bias)
          bias_totals[c - c_begin] += go_copy ? row_sum(go_copy, p.out_len) : row_sum(go_row, p.out_len);
      }
    }
    for (int64_t c = c_begin; c < c_end; ++c) {
      if (grad_weight)
        for (int64_t k = 0; k < K; ++k)
          grad_weight[c * K + k] = static_cast<scalar_t>(sums[(c - c_begin) * K + k]);
      if (grad_bias) grad_bias[c] = static_cast<scalar_t>(bias_totals[c - c_begin]);
    }
    stream_fence();
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
