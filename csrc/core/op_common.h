// Host-side helpers shared by every backend's op implementation (CPU, CUDA, emulated CUDA):
// argument checks and output allocation.
// Each check raises the same exception type and, where PyTorch has one, a message like F.conv1d's.
// Each returns the Conv1dParams the kernels will use, so the params struct is built once, here.
#pragma once

#include <cstdlib>
#include <limits>
#include <cstring>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include "core/conv1d_params.h"

namespace conv1d_ext {

inline void check_hyperparams(int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                              int64_t groups) {
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
  TORCH_CHECK(pad_left >= 0 && pad_right >= 0, "negative padding is not supported");
  TORCH_CHECK(stride > 0, "non-positive stride is not supported");
  TORCH_CHECK(dilation > 0, "non-positive dilation is not supported");
}

// Checked after every check PyTorch makes, so a call F.conv1d rejects gets PyTorch's message even when
// it is also of a dtype we have no kernels for (F.conv1d computes integer and complex convolutions).
// NotImplementedError, as PyTorch's own missing kernels (e.g. for bool) raise.
inline void check_floating(const at::Tensor& t, const char* name) {
  const auto st = t.scalar_type();
  TORCH_CHECK_NOT_IMPLEMENTED(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                              "conv1d_ext: ", name,
                              " must be float32, float64, float16 or bfloat16, but got ", st);
}

// PyTorch's check_input_same_type_as_parameters: dtype and device type in one comparison, named like
// "torch.FloatTensor" / "torch.cuda.HalfTensor".
inline void check_same_type(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                            const char* b_name) {
  TORCH_CHECK(a.options().type_equal(b.options()), a_name, " type (", a.toString(), ") and ", b_name,
              " type (", b.toString(), ") should be the same");
  TORCH_CHECK(a.device() == b.device(),
              "Expected all tensors to be on the same device, but found at least two devices, ", a.device(),
              " and ", b.device(), "!");
}

// The padded length and the kernel span are checked for int64 overflow first: F.conv1d accepts stride,
// dilation and padding up to 2^63 - 1 (padding up to 2^62 - 1) and wraps silently when in_len + 2 * padding
// or dilation * (kernel_size - 1) + 1 overflow (then it computes an output of a meaningless length, or
// reports a negative size); here that is a RuntimeError saying so.
inline int64_t checked_out_len(int64_t in_len, int64_t kernel_size, int64_t stride, int64_t pad_left,
                               int64_t pad_right, int64_t dilation) {
  int64_t span = 0, padded = 0;
  const bool overflows = __builtin_mul_overflow(dilation, kernel_size - 1, &span) ||
                         __builtin_add_overflow(span, int64_t{1}, &span) ||
                         __builtin_add_overflow(in_len, pad_left, &padded) ||
                         __builtin_add_overflow(padded, pad_right, &padded);
  TORCH_CHECK(!overflows, "conv1d_ext: the padded input length (", in_len, " + ", pad_left, " + ", pad_right,
              ") or the kernel span (", dilation, " * (", kernel_size, " - 1) + 1) overflows int64");
  const int64_t out_len = conv1d_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation);
  TORCH_CHECK(out_len >= 0, "Calculated padded input size per channel: (", in_len + pad_left + pad_right,
              "). Kernel size: (", dilation * (kernel_size - 1) + 1,
              "). Kernel size can't be greater than actual input size");
  return out_len;
}

// The kernels index with stride and dilation; when they cannot matter (one output position, one tap) any
// value is equivalent to 1, and 1 keeps huge values (which F.conv1d accepts) out of the kernels' arithmetic.
inline Conv1dParams make_normalized_params(int64_t batch, int64_t in_channels, int64_t in_len,
                                           int64_t out_channels, int64_t kernel_size, int64_t stride,
                                           int64_t pad_left, int64_t pad_right, int64_t dilation,
                                           int64_t groups, int64_t out_len) {
  return make_conv1d_params(batch, in_channels, in_len, out_channels, kernel_size, out_len <= 1 ? 1 : stride,
                            pad_left, pad_right, kernel_size == 1 ? 1 : dilation, groups, out_len);
}

// input (batch, in_channels, in_len), weight, optional bias (out_channels).
// The checks run in the order of at::_convolution (F.conv1d's checks before it are conv1d_ext.conv1d's),
// with its messages, so a call with several problems reports the one PyTorch reports. Two of PyTorch's
// checks look odd but are measured: a negative dilation is reported early, a zero dilation last (on
// CPU float32; other PyTorch backends word the zero-dilation message differently).
inline Conv1dParams check_forward_args(const at::Tensor& input, const at::Tensor& weight,
                                       const c10::optional<at::Tensor>& bias_opt, int64_t stride,
                                       int64_t pad_left, int64_t pad_right, int64_t dilation,
                                       int64_t groups) {
  const bool has_bias = bias_opt.has_value() && bias_opt->defined();
  TORCH_CHECK(weight.dim() >= 3, "weight should have at least three dimensions");
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
  TORCH_CHECK(pad_left >= 0 && pad_right >= 0, "negative padding is not supported");
  TORCH_CHECK(stride > 0, "non-positive stride is not supported");
  TORCH_CHECK(dilation >= 0, "dilation should be greater than zero");
  TORCH_CHECK(weight.dim() == input.dim(), "Expected ", weight.dim(), "-dimensional input for ", weight.dim(),
              "-dimensional weight ", weight.sizes(), ", but got ", input.dim(),
              "-dimensional input of size ", input.sizes(), " instead");
  TORCH_CHECK(
      input.dim() == 3,
      "conv1d_ext: expected a 3-D input (batch, channels, length), but got input of size: ", input.sizes());
  TORCH_CHECK(weight.size(0) >= groups, "Given groups=", groups, ", expected weight to be at least ", groups,
              " at dimension 0, but got weight of size ", weight.sizes(), " instead");
  TORCH_CHECK(weight.size(0) % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ",
              groups, " at dimension 0, but got weight of size ", weight.sizes(), " instead");
  TORCH_CHECK(input.size(1) == weight.size(1) * groups, "Given groups=", groups, ", weight of size ",
              weight.sizes(), ", expected input", input.sizes(), " to have ", weight.size(1) * groups,
              " channels, but got ", input.size(1), " channels instead");
  TORCH_CHECK(!has_bias || (bias_opt->dim() == 1 && bias_opt->size(0) == weight.size(0)),
              "Given weight of size ", weight.sizes(), ", expected bias to be 1-dimensional with ",
              weight.size(0), " elements, but got bias of size ",
              has_bias ? bias_opt->sizes() : at::IntArrayRef(), " instead");
  // PyTorch's bound on each side's padding (check_shape_forward), with its message.
  constexpr int64_t kMaxPadding = std::numeric_limits<int64_t>::max() / 2;
  for (const int64_t pad : {pad_left, pad_right}) {
    TORCH_CHECK(pad <= kMaxPadding, "Given padding=", pad,
                " at dimension 0 , expected padding to be at most ", kMaxPadding);
  }
  const int64_t out_len =
      checked_out_len(input.size(2), weight.size(2), stride, pad_left, pad_right, dilation);
  check_same_type(input, "Input", weight, "weight");
  if (has_bias) check_same_type(input, "Input", *bias_opt, "bias");
  TORCH_CHECK(dilation > 0, "non-positive dilation is not supported");
  // Beyond PyTorch: what F.conv1d computes but these kernels do not.
  TORCH_CHECK(weight.size(2) > 0, "kernel size should be greater than zero, but got weight of size ",
              weight.sizes());
  check_floating(input, "input");
  return make_normalized_params(input.size(0), input.size(1), input.size(2), weight.size(0), weight.size(2),
                                stride, pad_left, pad_right, dilation, groups, out_len);
}

// grad_output (batch, out_channels, out_len), weight; input_len says which forward problem this is.
inline Conv1dParams check_backward_input_args(const at::Tensor& grad_output, const at::Tensor& weight,
                                              int64_t input_len, int64_t stride, int64_t pad_left,
                                              int64_t pad_right, int64_t dilation, int64_t groups) {
  check_hyperparams(stride, pad_left, pad_right, dilation, groups);
  TORCH_CHECK(grad_output.dim() == 3, "conv1d_ext: expected a 3-D grad_output, but got size ",
              grad_output.sizes());
  TORCH_CHECK(input_len >= 0, "conv1d_ext: input_len must be non-negative, got ", input_len);
  check_floating(grad_output, "grad_output");
  check_same_type(grad_output, "grad_output", weight, "weight");
  TORCH_CHECK(
      weight.dim() == 3 && weight.size(2) > 0 && weight.size(0) % groups == 0 && weight.size(0) >= groups,
      "conv1d_ext: weight of size ", weight.sizes(), " does not fit groups=", groups);
  TORCH_CHECK(grad_output.size(1) == weight.size(0), "conv1d_ext: grad_output has ", grad_output.size(1),
              " channels but weight has ", weight.size(0), " output channels");
  const int64_t out_len = checked_out_len(input_len, weight.size(2), stride, pad_left, pad_right, dilation);
  TORCH_CHECK(grad_output.size(2) == out_len, "conv1d_ext: grad_output length ", grad_output.size(2),
              " does not match the output length ", out_len, " of an input of length ", input_len);
  return make_normalized_params(grad_output.size(0), weight.size(1) * groups, input_len, weight.size(0),
                                weight.size(2), stride, pad_left, pad_right, dilation, groups, out_len);
}

// grad_output (batch, out_channels, out_len), input (batch, in_channels, in_len).
inline Conv1dParams check_backward_weight_args(const at::Tensor& grad_output, const at::Tensor& input,
                                               int64_t kernel_size, int64_t stride, int64_t pad_left,
                                               int64_t pad_right, int64_t dilation, int64_t groups) {
  check_hyperparams(stride, pad_left, pad_right, dilation, groups);
  TORCH_CHECK(kernel_size > 0, "conv1d_ext: kernel_size must be positive, got ", kernel_size);
  TORCH_CHECK(grad_output.dim() == 3 && input.dim() == 3,
              "conv1d_ext: expected 3-D grad_output and input, but got sizes ", grad_output.sizes(), " and ",
              input.sizes());
  check_floating(grad_output, "grad_output");
  check_same_type(grad_output, "grad_output", input, "input");
  TORCH_CHECK(grad_output.size(0) == input.size(0), "conv1d_ext: grad_output batch ", grad_output.size(0),
              " does not match input batch ", input.size(0));
  TORCH_CHECK(
      input.size(1) % groups == 0 && grad_output.size(1) % groups == 0 && grad_output.size(1) >= groups,
      "conv1d_ext: channels (in ", input.size(1), ", out ", grad_output.size(1),
      ") must be divisible by groups=", groups);
  const int64_t out_len = checked_out_len(input.size(2), kernel_size, stride, pad_left, pad_right, dilation);
  TORCH_CHECK(grad_output.size(2) == out_len, "conv1d_ext: grad_output length ", grad_output.size(2),
              " does not match the output length ", out_len, " of the input");
  return make_normalized_params(input.size(0), input.size(1), input.size(2), grad_output.size(1), kernel_size,
                                stride, pad_left, pad_right, dilation, groups, out_len);
}

// conv1d_backward: grad_output, the forward's input and weight. The separate ops' checks in turn (so each
// error is one of theirs), then what ties them together: the input's channels are the weight's.
inline Conv1dParams check_backward_args(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, int64_t stride, int64_t pad_left,
                                        int64_t pad_right, int64_t dilation, int64_t groups) {
  check_hyperparams(stride, pad_left, pad_right, dilation, groups);
  TORCH_CHECK(weight.dim() == 3 && input.dim() == 3,
              "conv1d_ext: expected 3-D input and weight, but got sizes ", input.sizes(), " and ",
              weight.sizes());
  const Conv1dParams p = check_backward_input_args(grad_output, weight, input.size(2), stride, pad_left,
                                                   pad_right, dilation, groups);
  check_backward_weight_args(grad_output, input, weight.size(2), stride, pad_left, pad_right, dilation,
                             groups);
  TORCH_CHECK(input.size(1) == weight.size(1) * groups, "conv1d_ext: input has ", input.size(1),
              " channels but weight of size ", weight.sizes(), " with groups=", groups, " expects ",
              weight.size(1) * groups);
  return p;
}

inline void check_backward_bias_args(const at::Tensor& grad_output) {
  TORCH_CHECK(grad_output.dim() == 3, "conv1d_ext: expected a 3-D grad_output, but got size ",
              grad_output.sizes());
  check_floating(grad_output, "grad_output");
}

// CONV1D_EXT_POISON_OUTPUTS=1 (read once): every output buffer starts filled with NaN, so a kernel that
// leaves an element unwritten fails the tests instead of passing on whatever memory held. Tests set it.
inline bool poison_outputs() {
  static const bool enabled = [] {
    const char* v = std::getenv("CONV1D_EXT_POISON_OUTPUTS");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// A new contiguous output tensor; NaN-filled when poisoning is on.
inline at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (poison_outputs()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

}  // namespace conv1d_ext
