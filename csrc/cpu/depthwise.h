// Depthwise kernels (one input channel per group, in_per_group == 1; out_per_group > 1 is a channel
// multiplier): the Mamba short conv (k=4) and Conformer (k=31) shapes. Memory-bound, so every op makes
// one pass over its big tensors: each row is copied once into a zero-padded float (double) scratch row
// (this also converts 16-bit types once, and removes all edge cases), then taps become load offsets
// (dilation included) and the position loop is vectorised along L with the tap weights hoisted.
#pragma once

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// out[o] = bias + sum_k w[k] * buf[o * stride + k * dilation] for o in [0, out_len), in the accumulation
// type; kFixedTaps > 0 makes the tap count a compile-time constant (weights stay in registers).
// out_t is scalar_t, or acc_t<scalar_t> for a partial row that is summed further.
template <typename scalar_t, typename out_t>
inline void store_row_vec(out_t* out, const AccVec<scalar_t>& v) {
  if constexpr (std::is_same_v<out_t, acc_t<scalar_t>>) {
    v.store(out);
  } else {
    store_acc(out, v);
  }
}

template <int kFixedTaps, typename scalar_t, typename out_t>
inline void depthwise_row(const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w, int64_t taps,
                          int64_t stride, int64_t dilation, acc_t<scalar_t> bias, int64_t out_len,
                          out_t* out) {
  using acc = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t K = kFixedTaps > 0 ? kFixedTaps : taps;
  int64_t o = 0;
  if (stride == 1) {
    if constexpr (kFixedTaps > 0) {
      Vec wv[kFixedTaps];
      for (int64_t k = 0; k < kFixedTaps; ++k) wv[k] = Vec(w[k]);
      for (; o + 2 * W <= out_len; o += 2 * W) {
        Vec a0(bias), a1(bias);
        for (int64_t k = 0; k < kFixedTaps; ++k) {
          const acc* src = buf + o + k * dilation;
          a0 = at::vec::fmadd(Vec::loadu(src), wv[k], a0);
          a1 = at::vec::fmadd(Vec::loadu(src + W), wv[k], a1);
        }
        store_row_vec<scalar_t>(out + o, a0);
        store_row_vec<scalar_t>(out + o + W, a1);
      }
    } else {
      for (; o + 4 * W <= out_len; o += 4 * W) {
        Vec a0(bias), a1(bias), a2(bias), a3(bias);
        for (int64_t k = 0; k < K; ++k) {
          const Vec wk(w[k]);
          const acc* src = buf + o + k * dilation;
          a0 = at::vec::fmadd(Vec::loadu(src), wk, a0);
          a1 = at::vec::fmadd(Vec::loadu(src + W), wk, a1);
          a2 = at::vec::fmadd(Vec::loadu(src + 2 * W), wk, a2);
          a3 = at::vec::fmadd(Vec::loadu(src + 3 * W), wk, a3);
        }
        store_row_vec<scalar_t>(out + o, a0);
        store_row_vec<scalar_t>(out + o + W, a1);
        store_row_vec<scalar_t>(out + o + 2 * W, a2);
        store_row_vec<scalar_t>(out + o + 3 * W, a3);
      }
    }
  }
  for (; o < out_len; ++o) {
    acc s = bias;
    const acc* src = buf + o * stride;
    for (int64_t k = 0; k < K; ++k) s += w[k] * src[k * dilation];
    out[o] = static_cast<out_t>(s);
  }
}

template <typename scalar_t, typename out_t>
inline void depthwise_row_any(const acc_t<scalar_t>* buf, const acc_t<scalar_t>* w, int64_t taps,
                              int64_t stride, int64_t dilation, acc_t<scalar_t> bias, int64_t out_len,
                              out_t* out) {
  switch (taps) {
    case 2: return depthwise_row<2, scalar_t>(buf, w, taps, stride, dilation, bias, out_len, out);
    case 3: return depthwise_row<3, scalar_t>(buf, w, taps, stride, dilation, bias, out_len, out);
    case 4: return depthwise_row<4, scalar_t>(buf, w, taps, stride, dilation, bias, out_len, out);
    default: return depthwise_row<0, scalar_t>(buf, w, taps, stride, dilation, bias, out_len, out);
  }
}

// Padded length covering every position any output reads.
inline int64_t depthwise_span(const Conv1dParams& p) {
  return (p.out_len - 1) * p.stride + (p.kernel_size - 1) * p.dilation + 1;
}

// One work item per output row; consecutive rows of a channel multiplier reuse the padded input row.
template <typename scalar_t>
void depthwise_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                       const scalar_t* bias, scalar_t* output) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = p.batch * p.out_channels;
  const int64_t span = depthwise_span(p);
  at::parallel_for(0, rows, grain_for(p.kernel_size * p.out_len), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> buf(span);
    std::vector<acc> w(p.kernel_size);
    int64_t buffered_row = -1;  // input row held in buf
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t b = row / p.out_channels;
      const int64_t oc = row % p.out_channels;
      const int64_t in_row = b * p.in_channels + oc / p.out_per_group;
      if (in_row != buffered_row) {
        pad_row(input + in_row * p.in_len, p.in_len, p.pad_left, span, buf.data());
        buffered_row = in_row;
      }
      for (int64_t k = 0; k < p.kernel_size; ++k) w[k] = static_cast<acc>(weight[oc * p.kernel_size + k]);
      depthwise_row_any<scalar_t>(buf.data(), w.data(), p.kernel_size, p.stride, p.dilation,
                        bias ? static_cast<acc>(bias[oc]) : acc(0), p.out_len, output + row * p.out_len);
    }
  });
}

// grad_input[b, ic, :] from the out_per_group output rows of channel ic. Stride 1 is the forward kernel
// again: a zero-padded grad_output row correlated with the flipped taps. Stride > 1 scatters each output
// position into a private padded accumulator row (o*stride + k*dilation), no divisibility tests.
template <typename scalar_t>
void depthwise_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                              scalar_t* grad_input) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = p.batch * p.in_channels;
  const int64_t K = p.kernel_size;
  const int64_t reach = (K - 1) * p.dilation;
  const int64_t work = p.out_per_group * K * p.out_len;
  at::parallel_for(0, rows, grain_for(work), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> w(K);
    if (p.stride == 1) {
      // grad_input[i] = sum_k w[k] * go[i + pad_left - k*dilation] = sum_j wf[j] * gpad[i + j*dilation]
      // with wf[j] = w[K-1-j] and gpad[t] = go[t + pad_left - reach] (zero outside [0, out_len)).
      const int64_t gpad_len = p.in_len + reach;
      std::vector<acc> gpad(gpad_len);
      std::vector<acc> sum(p.out_per_group > 1 ? p.in_len : 0);
      std::vector<acc> partial(p.out_per_group > 1 ? p.in_len : 0);
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t b = row / p.in_channels;
        const int64_t ic = row % p.in_channels;
        scalar_t* gi_row = grad_input + row * p.in_len;
        for (int64_t j = 0; j < p.out_per_group; ++j) {
          const int64_t oc = ic * p.out_per_group + j;
          const scalar_t* go_row = grad_output + (b * p.out_channels + oc) * p.out_len;
          // gpad[t] = go[t - shift], shift = reach - pad_left (may be negative).
          const int64_t shift = reach - p.pad_left;
          const int64_t skip = std::min(p.out_len, std::max<int64_t>(0, -shift));
          pad_row(go_row + skip, p.out_len - skip, std::max<int64_t>(0, shift), gpad_len, gpad.data());
          for (int64_t k = 0; k < K; ++k) w[k] = static_cast<acc>(weight[oc * K + K - 1 - k]);
          if (p.out_per_group == 1) {
            depthwise_row_any<scalar_t>(gpad.data(), w.data(), K, 1, p.dilation, acc(0), p.in_len, gi_row);
          } else {
            // Channel multiplier: add the rows up in the accumulation type.
            depthwise_row_any<scalar_t>(gpad.data(), w.data(), K, 1, p.dilation, acc(0), p.in_len,
                                        partial.data());
            if (j == 0) std::fill(sum.begin(), sum.end(), acc(0));
            for (int64_t i = 0; i < p.in_len; ++i) sum[i] += partial[i];
          }
        }
        if (p.out_per_group > 1) convert_from_acc(sum.data(), gi_row, p.in_len);
      }
    } else {
      const int64_t span = depthwise_span(p);
      std::vector<acc> sum(span);
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t b = row / p.in_channels;
        const int64_t ic = row % p.in_channels;
        std::fill(sum.begin(), sum.end(), acc(0));
        for (int64_t j = 0; j < p.out_per_group; ++j) {
          const int64_t oc = ic * p.out_per_group + j;
          const scalar_t* go_row = grad_output + (b * p.out_channels + oc) * p.out_len;
          for (int64_t k = 0; k < K; ++k) w[k] = static_cast<acc>(weight[oc * K + k]);
          for (int64_t o = 0; o < p.out_len; ++o) {
            const acc g = static_cast<acc>(go_row[o]);
            acc* dst = sum.data() + o * p.stride;
            for (int64_t k = 0; k < K; ++k) dst[k * p.dilation] += w[k] * g;
          }
        }
        scalar_t* gi_row = grad_input + row * p.in_len;
        const int64_t covered = std::clamp<int64_t>(span - p.pad_left, 0, p.in_len);
        convert_from_acc(sum.data() + p.pad_left, gi_row, covered);
        std::fill(gi_row + covered, gi_row + p.in_len, scalar_t(0));
      }
    }
  });
}

// sums[k] += sum_o go[o] * buf[o * stride + k * dilation]: vectorised along o for stride 1, with at most
// kTapBlock taps' vector accumulators live at once (registers), fixed reduction order (deterministic).
template <typename scalar_t>
inline void depthwise_weight_row(const scalar_t* go, const acc_t<scalar_t>* buf, int64_t taps,
                                 int64_t stride, int64_t dilation, int64_t out_len, acc_t<scalar_t>* sums) {
  using acc = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr int64_t kTapBlock = 8;
  if (stride != 1) {
    for (int64_t k = 0; k < taps; ++k) {
      acc s = 0;
      const acc* src = buf + k * dilation;
      for (int64_t o = 0; o < out_len; ++o) s += static_cast<acc>(go[o]) * src[o * stride];
      sums[k] += s;
    }
    return;
  }
  const int64_t vec_end = out_len - out_len % W;
  for (int64_t k0 = 0; k0 < taps; k0 += kTapBlock) {
    const int64_t nk = std::min(kTapBlock, taps - k0);
    Vec a[kTapBlock];
    for (int64_t k = 0; k < kTapBlock; ++k) a[k] = Vec(0);
    const acc* base = buf + k0 * dilation;
    if (nk == kTapBlock) {
      for (int64_t o = 0; o < vec_end; o += W) {
        const Vec g = load_acc(go + o);
        for (int64_t k = 0; k < kTapBlock; ++k) a[k] = at::vec::fmadd(g, Vec::loadu(base + o + k * dilation), a[k]);
      }
    } else {
      for (int64_t o = 0; o < vec_end; o += W) {
        const Vec g = load_acc(go + o);
        for (int64_t k = 0; k < nk; ++k) a[k] = at::vec::fmadd(g, Vec::loadu(base + o + k * dilation), a[k]);
      }
    }
    for (int64_t k = 0; k < nk; ++k) {
      acc s = lane_sum(a[k]);
      const acc* src = base + k * dilation;
      for (int64_t o = vec_end; o < out_len; ++o) s += static_cast<acc>(go[o]) * src[o];
      sums[k0 + k] += s;
    }
  }
}

// grad_weight[oc, 0, :]: one work item per input channel (its out_per_group output channels), reducing
// over the batch inside the item: deterministic, each item writes only its own weights.
template <typename scalar_t>
void depthwise_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                               scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  const int64_t K = p.kernel_size;
  const int64_t span = depthwise_span(p);
  const int64_t work = p.batch * p.out_per_group * K * p.out_len;
  at::parallel_for(0, p.in_channels, grain_for(work), [&](int64_t c_begin, int64_t c_end) {
    std::vector<acc> buf(span);
    std::vector<acc> sums(p.out_per_group * K);
    for (int64_t ic = c_begin; ic < c_end; ++ic) {
      std::fill(sums.begin(), sums.end(), acc(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        pad_row(input + (b * p.in_channels + ic) * p.in_len, p.in_len, p.pad_left, span, buf.data());
        for (int64_t j = 0; j < p.out_per_group; ++j) {
          const int64_t oc = ic * p.out_per_group + j;
          depthwise_weight_row(grad_output + (b * p.out_channels + oc) * p.out_len, buf.data(), K, p.stride,
                               p.dilation, p.out_len, sums.data() + j * K);
        }
      }
      for (int64_t i = 0; i < p.out_per_group * K; ++i)
        grad_weight[ic * p.out_per_group * K + i] = static_cast<scalar_t>(sums[i]);
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
