// The "direct" family: one thread per output element, reading global memory only. It handles every
// shape with memory that depends only on the tensors' sizes, so dispatch.cu picks it for padding, stride or
// dilation far beyond the tensors (conv1d_params.h, geometry_is_compact); otherwise it is the simple
// reference the tests force (CONV1D_EXT_CUDA_FAMILY=direct). Deterministic: each element is one thread's
// sequential sum.
#include "families.h"
#include "kernel_utils.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    direct_forward_kernel(Conv1dParams p, const T* input, const T* weight, const T* bias, T* output) {
  using A = acc_t<T>;
  for_each_thread_item(p.batch * p.out_channels * p.out_len, [&](int64_t idx) {
    const int64_t t = idx % p.out_len;
    const int64_t oc = (idx / p.out_len) % p.out_channels;
    const int64_t b = idx / (p.out_len * p.out_channels);
    const int64_t g = oc / p.out_per_group;
    A acc = A(0);
    for (int64_t ic = 0; ic < p.in_per_group; ++ic) {
      const T* x = input + (b * p.in_channels + g * p.in_per_group + ic) * p.in_len;
      const T* w = weight + (oc * p.in_per_group + ic) * p.kernel_size;
      for (int64_t tap = 0; tap < p.kernel_size; ++tap) {
        const int64_t pos = p.input_pos(t, tap);
        if (pos >= 0 && pos < p.in_len) acc += to_acc(w[tap]) * to_acc(x[pos]);
      }
    }
    if (bias != nullptr) acc += to_acc(bias[oc]);
    output[idx] = from_acc<T>(acc);
  });
}

// grad_input[b, ic, i] over the taps of i's phase (see BackwardPhase): no divisibility test per tap.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    direct_backward_input_kernel(Conv1dParams p, const T* grad_output, const T* weight, T* grad_input) {
  using A = acc_t<T>;
  for_each_thread_item(p.batch * p.in_channels * p.in_len, [&](int64_t idx) {
    const int64_t i = idx % p.in_len;
    const int64_t icg = (idx / p.in_len) % p.in_channels;
    const int64_t b = idx / (p.in_len * p.in_channels);
    const int64_t g = icg / p.in_per_group, ic = icg % p.in_per_group;
    const BackwardPhase ph = backward_phase(p, i % p.stride);
    const int64_t u = i / p.stride;
    A acc = A(0);
    for (int64_t oc = g * p.out_per_group; oc < (g + 1) * p.out_per_group; ++oc) {
      const T* dy = grad_output + (b * p.out_channels + oc) * p.out_len;
      const T* w = weight + (oc * p.in_per_group + ic) * p.kernel_size + ph.first_tap;
      for (int64_t j = 0; j < ph.num_taps; ++j) {
        const int64_t t = u + ph.out_offset - j * ph.out_step;
        if (t >= 0 && t < p.out_len) acc += to_acc(w[j * ph.tap_step]) * to_acc(dy[t]);
      }
    }
    grad_input[idx] = from_acc<T>(acc);
  });
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    direct_backward_weight_kernel(Conv1dParams p, const T* grad_output, const T* input, T* grad_weight) {
  using A = acc_t<T>;
  for_each_thread_item(p.out_channels * p.in_per_group * p.kernel_size, [&](int64_t idx) {
    const int64_t tap = idx % p.kernel_size;
    const int64_t ic = (idx / p.kernel_size) % p.in_per_group;
    const int64_t oc = idx / (p.kernel_size * p.in_per_group);
    const int64_t g = oc / p.out_per_group;
    A acc = A(0);
    for (int64_t b = 0; b < p.batch; ++b) {
      const T* dy = grad_output + (b * p.out_channels + oc) * p.out_len;
      const T* x = input + (b * p.in_channels + g * p.in_per_group + ic) * p.in_len;
      for (int64_t t = 0; t < p.out_len; ++t) {
        const int64_t pos = p.input_pos(t, tap);
        if (pos >= 0 && pos < p.in_len) acc += to_acc(dy[t]) * to_acc(x[pos]);
      }
    }
    grad_weight[idx] = from_acc<T>(acc);
  });
}

inline dim3 grid_for_elements(int64_t n) { return dim3(grid_for(ceil_div(n, kThreads))); }

}  // namespace

template <typename T>
void direct_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                    Stream stream) {
  launch_kernel(direct_forward_kernel<T>, grid_for_elements(p.batch * p.out_channels * p.out_len),
                dim3(kThreads), 0, stream, p, input, weight, bias, output);
}

template <typename T>
void direct_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                           Stream stream) {
  launch_kernel(direct_backward_input_kernel<T>, grid_for_elements(p.batch * p.in_channels * p.in_len),
                dim3(kThreads), 0, stream, p, grad_output, weight, grad_input);
}

template <typename T>
void direct_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                            Stream stream) {
  launch_kernel(direct_backward_weight_kernel<T>,
                grid_for_elements(p.out_channels * p.in_per_group * p.kernel_size), dim3(kThreads), 0, stream,
                p, grad_output, input, grad_weight);
}

#define C1D_INSTANTIATE(T)                                                                        \
  template void direct_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream); \
  template void direct_backward_input<T>(const Conv1dParams&, const T*, const T*, T*, Stream);    \
  template void direct_backward_weight<T>(const Conv1dParams&, const T*, const T*, T*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
