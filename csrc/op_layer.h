// The tensor-level op layer: the one implementation of every op's host steps, shared by all backends
// (CPU, CUDA, and the emulated CUDA of the tests):
//
//   argument checks -> Conv1dParams (op_common.h) -> device guard -> new output (poisonable) ->
//   contiguous operands -> workspace -> dtype dispatch -> the backend's kernel entry point, which is the
//   op's one dispatch point choosing a kernel family (cpu/kernels_impl.h, cuda/dispatch.cu).
//
// A Backend is a struct of static members; the backends differ only in these:
//   Backend::guard(tensor)                 an object held for the call (CUDA: the device guard)
//   Backend::workspace(bytes, like)        >= bytes of scratch memory, 256-byte aligned (Workspace)
//   Backend::*_workspace_bytes(...)        how much scratch each op's kernels want (may be 0)
//   Backend::forward<T>(p, ..., ws) etc.   the op's kernel entry point for element type T
// Register a backend's kernels with register_kernels<Backend>(library).
//
// The caller's tensors are never written (operands of any strides are copied by .contiguous()); an
// output with no elements returns before any kernel runs.
#pragma once

#include <cstddef>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include "op_common.h"

namespace conv1d_ext {

// Scratch memory for one call. `holder` owns it (when allocated from PyTorch), `ptr` is what kernels get:
// null when no scratch was asked for.
struct Workspace {
  at::Tensor holder;
  void* ptr = nullptr;
};

// The one dtype dispatch of every backend: fn(T{}) with T the kernels' element type. The dtype was
// checked by op_common.h, so the error below is unreachable from the ops.
template <typename Fn>
void dispatch_dtype(at::ScalarType dtype, Fn&& fn) {
  switch (dtype) {
    case at::kFloat:
      return fn(float{});
    case at::kDouble:
      return fn(double{});
    case at::kHalf:
      return fn(c10::Half{});
    case at::kBFloat16:
      return fn(c10::BFloat16{});
    default:
      TORCH_CHECK(false, "conv1d_ext: no kernels for dtype ", dtype);
  }
}

template <class Backend>
struct OpLayer {
  static at::Tensor conv1d(const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                           int64_t pad_right, int64_t dilation, int64_t groups) {
    const Conv1dParams p =
        check_forward_args(input, weight, bias, stride, pad_left, pad_right, dilation, groups);
    const auto guard = Backend::guard(input);
    at::Tensor output = new_output({p.batch, p.out_channels, p.out_len}, input.options());
    if (output.numel() == 0) return output;
    const at::Tensor input_c = input.contiguous();
    const at::Tensor weight_c = weight.contiguous();
    const at::Tensor bias_c = (bias.has_value() && bias->defined()) ? bias->contiguous() : at::Tensor();
    const Workspace ws = Backend::workspace(Backend::forward_workspace_bytes(p, input.element_size()), input);
    dispatch_dtype(input.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template forward<T>(p, input_c.const_data_ptr<T>(), weight_c.const_data_ptr<T>(),
                                   bias_c.defined() ? bias_c.const_data_ptr<T>() : nullptr,
                                   output.mutable_data_ptr<T>(), ws.ptr);
    });
    return output;
  }

  static at::Tensor conv1d_backward_input(const at::Tensor& grad_output, const at::Tensor& weight,
                                          int64_t input_len, int64_t stride, int64_t pad_left,
                                          int64_t pad_right, int64_t dilation, int64_t groups) {
    const Conv1dParams p = check_backward_input_args(grad_output, weight, input_len, stride, pad_left,
                                                     pad_right, dilation, groups);
    const auto guard = Backend::guard(grad_output);
    at::Tensor grad_input = new_output({p.batch, p.in_channels, p.in_len}, grad_output.options());
    if (grad_input.numel() == 0) return grad_input;
    const at::Tensor grad_output_c = grad_output.contiguous();
    const at::Tensor weight_c = weight.contiguous();
    const Workspace ws = Backend::workspace(
        Backend::backward_input_workspace_bytes(p, grad_output.element_size()), grad_output);
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template backward_input<T>(p, grad_output_c.const_data_ptr<T>(), weight_c.const_data_ptr<T>(),
                                          grad_input.mutable_data_ptr<T>(), ws.ptr);
    });
    return grad_input;
  }

  static at::Tensor conv1d_backward_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                           int64_t kernel_size, int64_t stride, int64_t pad_left,
                                           int64_t pad_right, int64_t dilation, int64_t groups) {
    const Conv1dParams p = check_backward_weight_args(grad_output, input, kernel_size, stride, pad_left,
                                                      pad_right, dilation, groups);
    const auto guard = Backend::guard(grad_output);
    at::Tensor grad_weight =
        new_output({p.out_channels, p.in_per_group, p.kernel_size}, grad_output.options());
    if (grad_weight.numel() == 0) return grad_weight;
    const at::Tensor grad_output_c = grad_output.contiguous();
    const at::Tensor input_c = input.contiguous();
    const Workspace ws = Backend::workspace(
        Backend::backward_weight_workspace_bytes(p, grad_output.element_size()), grad_output);
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template backward_weight<T>(p, grad_output_c.const_data_ptr<T>(), input_c.const_data_ptr<T>(),
                                           grad_weight.mutable_data_ptr<T>(), ws.ptr);
    });
    return grad_weight;
  }

  static at::Tensor conv1d_backward_bias(const at::Tensor& grad_output) {
    check_backward_bias_args(grad_output);
    const auto guard = Backend::guard(grad_output);
    const int64_t batch = grad_output.size(0), channels = grad_output.size(1), len = grad_output.size(2);
    at::Tensor grad_bias = new_output({channels}, grad_output.options());
    if (grad_bias.numel() == 0) return grad_bias;
    const at::Tensor grad_output_c = grad_output.contiguous();
    const Workspace ws = Backend::workspace(
        Backend::backward_bias_workspace_bytes(batch, channels, len, grad_output.element_size()),
        grad_output);
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template backward_bias<T>(batch, channels, len, grad_output_c.const_data_ptr<T>(),
                                         grad_bias.mutable_data_ptr<T>(), ws.ptr);
    });
    return grad_bias;
  }
};

// Registers Backend's kernels for every op of op_schemas.h in `lib` (a TORCH_LIBRARY_IMPL block or an
// equivalent torch::Library of kind IMPL).
template <class Backend>
void register_kernels(torch::Library& lib) {
  lib.impl("conv1d", &OpLayer<Backend>::conv1d);
  lib.impl("conv1d_backward_input", &OpLayer<Backend>::conv1d_backward_input);
  lib.impl("conv1d_backward_weight", &OpLayer<Backend>::conv1d_backward_weight);
  lib.impl("conv1d_backward_bias", &OpLayer<Backend>::conv1d_backward_bias);
}

// No device to guard (CPU, emulated CUDA).
struct NoGuard {};

}  // namespace conv1d_ext
