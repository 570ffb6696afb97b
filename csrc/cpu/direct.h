// Generic direct convolution kernels: correct for every stride, dilation, groups, kernel size and padding.
// The fallback when no specialised family (depthwise.h, dense_tiled.h) applies, for geometries whose
// padding reaches far beyond the tensors, and for every problem under CONV1D_EXT_CPU_KERNELS=direct
// (kernels_impl.h).
// Loop order: for each output row, taps outermost and positions innermost, so the inner loop is a
// contiguous (stride 1) or fixed-stride walk; padding is handled by clipping each tap's position range
// once (tap_out_range), never by per-element tests.
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// y[i * y_stride] += a * x[i * x_stride] for i in [0, n), in the accumulation type.
template <typename scalar_t>
inline void axpy_acc(acc_t<scalar_t>* y, int64_t y_stride, acc_t<scalar_t> a, const scalar_t* x,
                     int64_t x_stride, int64_t n) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  int64_t i = 0;
  if (y_stride == 1 && x_stride == 1) {
    const Vec av(a);
    for (; i + W <= n; i += W) at::vec::fmadd(av, load_acc(x + i), Vec::loadu(y + i)).store(y + i);
  }
  for (; i < n; ++i) y[i * y_stride] += a * static_cast<acc_t<scalar_t>>(x[i * x_stride]);
}

// sum_i a[i] * b[i * b_stride] for i in [0, n), fixed reduction order (deterministic).
template <typename scalar_t>
inline acc_t<scalar_t> dot_strided(const scalar_t* a, const scalar_t* b, int64_t b_stride, int64_t n) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  int64_t i = 0;
  acc_t<scalar_t> s = 0;
  if (b_stride == 1) {
    Vec s0(0), s1(0);
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = at::vec::fmadd(load_acc(a + i), load_acc(b + i), s0);
      s1 = at::vec::fmadd(load_acc(a + i + W), load_acc(b + i + W), s1);
    }
    s = lane_sum(s0 + s1);
  }
  for (; i < n; ++i) s += static_cast<acc_t<scalar_t>>(a[i]) * static_cast<acc_t<scalar_t>>(b[i * b_stride]);
  return s;
}

// output[b, oc, :] = bias[oc] + sum over the group's input channels and taps. One work item per output row.
template <typename scalar_t>
void direct_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                    const scalar_t* bias, scalar_t* output) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = p.batch * p.out_channels;
  const int64_t work = p.in_per_group * p.kernel_size * p.out_len;
  at::parallel_for(0, rows, grain_for(work), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> sum(p.out_len);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t b = row / p.out_channels;
      const int64_t oc = row % p.out_channels;
      const int64_t group = oc / p.out_per_group;
      std::fill(sum.begin(), sum.end(), bias ? static_cast<acc>(bias[oc]) : acc(0));
      for (int64_t icl = 0; icl < p.in_per_group; ++icl) {
        const scalar_t* in_row = input + (b * p.in_channels + group * p.in_per_group + icl) * p.in_len;
        const scalar_t* w = weight + (oc * p.in_per_group + icl) * p.kernel_size;
        for (int64_t k = 0; k < p.kernel_size; ++k) {
          const OutRange r = tap_out_range(p, k);
          if (r.end <= r.begin) continue;
          const int64_t first_in = r.begin * p.stride + k * p.dilation - p.pad_left;
          axpy_acc(sum.data() + r.begin, 1, static_cast<acc>(w[k]), in_row + first_in, p.stride,
                   r.end - r.begin);
        }
      }
      convert_from_acc(sum.data(), output + row * p.out_len, p.out_len);
    }
  });
}

// grad_input[b, ic, :] gathers every (output channel of ic's group, tap) contribution into a row
// accumulator: output position o, tap k lands on input position o*stride + k*dilation - pad_left (a
// stride-`stride` scatter into a private row: no divisibility tests, no atomics), each tap's output range
// clipped to the positions that land inside the row (tap_out_range), so the accumulator is one input row
// whatever the padding, stride and dilation. One work item per input row.
template <typename scalar_t>
void direct_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                           scalar_t* grad_input) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = p.batch * p.in_channels;
  const int64_t work = p.out_per_group * p.kernel_size * p.out_len;
  at::parallel_for(0, rows, grain_for(work), [&](int64_t row_begin, int64_t row_end) {
    std::vector<acc> sum(p.in_len);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t b = row / p.in_channels;
      const int64_t ic = row % p.in_channels;
      const int64_t group = ic / p.in_per_group;
      const int64_t icl = ic % p.in_per_group;
      std::fill(sum.begin(), sum.end(), acc(0));
      for (int64_t ocl = 0; ocl < p.out_per_group; ++ocl) {
        const int64_t oc = group * p.out_per_group + ocl;
        const scalar_t* go_row = grad_output + (b * p.out_channels + oc) * p.out_len;
        const scalar_t* w = weight + (oc * p.in_per_group + icl) * p.kernel_size;
        for (int64_t k = 0; k < p.kernel_size; ++k) {
          const OutRange r = tap_out_range(p, k);
          if (r.end <= r.begin) continue;
          const int64_t first_in = r.begin * p.stride + k * p.dilation - p.pad_left;
          axpy_acc(sum.data() + first_in, p.stride, static_cast<acc>(w[k]), go_row + r.begin, 1,
                   r.end - r.begin);
        }
      }
      convert_from_acc(sum.data(), grad_input + row * p.in_len, p.in_len);
    }
  });
}

// grad_weight[oc, icl, k] = sum over batch and output positions of grad_output * input. One work item per
// (oc, icl) pair, reducing over the batch inside it: deterministic, and each item writes its own K values.
template <typename scalar_t>
void direct_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                            scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  const int64_t items = p.out_channels * p.in_per_group;
  const int64_t work = p.batch * p.kernel_size * p.out_len;
  at::parallel_for(0, items, grain_for(work), [&](int64_t item_begin, int64_t item_end) {
    std::vector<acc> sum(p.kernel_size);
    for (int64_t item = item_begin; item < item_end; ++item) {
      const int64_t oc = item / p.in_per_group;
      const int64_t icl = item % p.in_per_group;
      const int64_t ic = (oc / p.out_per_group) * p.in_per_group + icl;
      std::fill(sum.begin(), sum.end(), acc(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        const scalar_t* go_row = grad_output + (b * p.out_channels + oc) * p.out_len;
        const scalar_t* in_row = input + (b * p.in_channels + ic) * p.in_len;
        for (int64_t k = 0; k < p.kernel_size; ++k) {
          const OutRange r = tap_out_range(p, k);
          if (r.end <= r.begin) continue;
          const int64_t first_in = r.begin * p.stride + k * p.dilation - p.pad_left;
          sum[k] += dot_strided(go_row + r.begin, in_row + first_in, p.stride, r.end - r.begin);
        }
      }
      scalar_t* gw = grad_weight + item * p.kernel_size;
      for (int64_t k = 0; k < p.kernel_size; ++k) gw[k] = static_cast<scalar_t>(sum[k]);
    }
  });
}

// grad_bias[c] = sum of grad_output[:, c, :]. One work item per channel: deterministic.
template <typename scalar_t>
void backward_bias(int64_t batch, int64_t channels, int64_t len, const scalar_t* grad_output,
                   scalar_t* grad_bias) {
  using acc = acc_t<scalar_t>;
  at::parallel_for(0, channels, grain_for(batch * len), [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      acc total = 0;
      for (int64_t b = 0; b < batch; ++b) total += row_sum(grad_output + (b * channels + c) * len, len);
      grad_bias[c] = static_cast<scalar_t>(total);
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
