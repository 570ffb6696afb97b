// CUDA implementations of the conv1d_ext ops: argument checks, contiguous inputs, output and workspace
// allocation (PyTorch's caching allocator), device guard and current stream, then the kernel dispatch
// of csrc/cuda/dispatch.cu. No host-device synchronisation anywhere, so the ops are safe under CUDA
// graph capture; the kernels are deterministic (no atomics), so results are bit-identical run to run.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/conv1d_kernels.h"
#include "op_common.h"

namespace conv1d_ext {
namespace {

// The one place that maps a tensor dtype to the kernels' element type.
template <typename Fn>
void dispatch_dtype(at::ScalarType st, Fn&& fn) {
  switch (st) {
    case at::kFloat: return fn(float{});
    case at::kDouble: return fn(double{});
    case at::kHalf: return fn(c10::Half{});
    case at::kBFloat16: return fn(c10::BFloat16{});
    default: TORCH_CHECK(false, "conv1d_ext: unsupported dtype ", st);
  }
}

// Scratch memory from the caching allocator; freed (returned to the cache) when the tensor dies, which
// is safe because the allocator tracks the stream the kernels were queued on.
at::Tensor workspace_for(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

// The current stream (what at::cuda::getCurrentCUDAStream() returns; c10's header avoids pulling the
// cuBLAS/cuSPARSE headers of ATen/cuda/CUDAContext.h into the build).
void* stream_ptr() { return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()); }

at::Tensor conv1d_cuda(const at::Tensor& input_arg, const at::Tensor& weight_arg,
                       const c10::optional<at::Tensor>& bias_arg, int64_t stride, int64_t pad_left,
                       int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p =
      check_forward_args(input_arg, weight_arg, bias_arg, stride, pad_left, pad_right, dilation, groups);
  const c10::cuda::CUDAGuard guard(input_arg.device());
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  at::Tensor bias;
  if (bias_arg.has_value() && bias_arg->defined()) bias = bias_arg->contiguous();
  at::Tensor output = new_output({p.batch, p.out_channels, p.out_len}, input.options());
  const at::Tensor workspace = workspace_for(cuda::forward_workspace_bytes(p, input.element_size()), input);
  dispatch_dtype(input.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    cuda::forward<T>(p, input.const_data_ptr<T>(), weight.const_data_ptr<T>(),
                     bias.defined() ? bias.const_data_ptr<T>() : nullptr, output.mutable_data_ptr<T>(),
                     workspace.numel() > 0 ? workspace.mutable_data_ptr() : nullptr, stream_ptr());
  });
  return output;
}

at::Tensor conv1d_backward_input_cuda(const at::Tensor& grad_output_arg, const at::Tensor& weight_arg,
                                      int64_t input_len, int64_t stride, int64_t pad_left,
                                      int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p = check_backward_input_args(grad_output_arg, weight_arg, input_len, stride,
                                                   pad_left, pad_right, dilation, groups);
  const c10::cuda::CUDAGuard guard(grad_output_arg.device());
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  at::Tensor grad_input = new_output({p.batch, p.in_channels, p.in_len}, grad_output.options());
  const at::Tensor workspace =
      workspace_for(cuda::backward_input_workspace_bytes(p, grad_output.element_size()), grad_output);
  dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    cuda::backward_input<T>(p, grad_output.const_data_ptr<T>(), weight.const_data_ptr<T>(),
                            grad_input.mutable_data_ptr<T>(),
                            workspace.numel() > 0 ? workspace.mutable_data_ptr() : nullptr, stream_ptr());
  });
  return grad_input;
}

at::Tensor conv1d_backward_weight_cuda(const at::Tensor& grad_output_arg, const at::Tensor& input_arg,
                                       int64_t kernel_size, int64_t stride, int64_t pad_left,
                                       int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p = check_backward_weight_args(grad_output_arg, input_arg, kernel_size, stride,
                                                    pad_left, pad_right, dilation, groups);
  const c10::cuda::CUDAGuard guard(grad_output_arg.device());
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const at::Tensor input = input_arg.contiguous();
  at::Tensor grad_weight =
      new_output({p.out_channels, p.in_per_group, p.kernel_size}, grad_output.options());
  const at::Tensor workspace =
      workspace_for(cuda::backward_weight_workspace_bytes(p, grad_output.element_size()), grad_output);
  dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    cuda::backward_weight<T>(p, grad_output.const_data_ptr<T>(), input.const_data_ptr<T>(),
                             grad_weight.mutable_data_ptr<T>(),
                             workspace.numel() > 0 ? workspace.mutable_data_ptr() : nullptr,
                             stream_ptr());
  });
  return grad_weight;
}

at::Tensor conv1d_backward_bias_cuda(const at::Tensor& grad_output_arg) {
  check_backward_bias_args(grad_output_arg);
  const c10::cuda::CUDAGuard guard(grad_output_arg.device());
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const int64_t batch = grad_output.size(0), channels = grad_output.size(1), len = grad_output.size(2);
  at::Tensor grad_bias = new_output({channels}, grad_output.options());
  const at::Tensor workspace = workspace_for(
      cuda::backward_bias_workspace_bytes(batch, channels, len, grad_output.element_size()), grad_output);
  dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    cuda::backward_bias<T>(batch, channels, len, grad_output.const_data_ptr<T>(),
                           grad_bias.mutable_data_ptr<T>(),
                           workspace.numel() > 0 ? workspace.mutable_data_ptr() : nullptr, stream_ptr());
  });
  return grad_bias;
}

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_IMPL(conv1d_ext, CUDA, m) {
  m.impl("conv1d", &conv1d_ext::conv1d_cuda);
  m.impl("conv1d_backward_input", &conv1d_ext::conv1d_backward_input_cuda);
  m.impl("conv1d_backward_weight", &conv1d_ext::conv1d_backward_weight_cuda);
  m.impl("conv1d_backward_bias", &conv1d_ext::conv1d_backward_bias_cuda);
}
