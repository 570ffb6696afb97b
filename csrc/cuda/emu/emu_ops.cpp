// The CUDA kernels of csrc/cuda/, compiled by g++ under CONV1D_EXT_EMULATE and run on the CPU by the
// emulator, registered as CPU ops under a test-only namespace (conv1d_ext_emu by default; see
// emu_namespace.cpp). Same schemas as csrc/ops.cpp and the same tensor-level steps as the CUDA op:
// argument checks, contiguous operands, a (poisonable) new output, a workspace from the allocator, then
// the very dispatch functions of csrc/cuda/dispatch.cu (conv1d_ext::emulated::*).
//
// Workspaces are 256-byte aligned and filled with 0xFF bytes (NaN), like the uninitialised memory a
// caching allocator hands out: a kernel that reads workspace it did not write gives NaN.
#if !defined(CONV1D_EXT_EMULATE)
#error "emu_ops.cpp is compiled with CONV1D_EXT_EMULATE (see tests/emulated.py)"
#endif

#include <cstring>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "emu/cuda_emu.h"  // __host__ __device__ for conv1d_params.h, as nvcc would predefine them
#include "conv1d_kernels.h"
#include "op_common.h"

namespace conv1d_ext {
namespace emulated {

extern const char kOpsNamespace[];  // emu_namespace.cpp

namespace {

// Scratch memory of at least `bytes`, 256-byte aligned, poisoned. `holder` keeps it alive.
void* workspace(size_t bytes, const at::Tensor& like, at::Tensor& holder) {
  if (bytes == 0) return nullptr;
  holder = at::empty({static_cast<int64_t>(bytes + 256)}, like.options().dtype(at::kByte));
  std::memset(holder.data_ptr(), 0xff, bytes + 256);
  const auto addr = reinterpret_cast<uintptr_t>(holder.data_ptr());
  return reinterpret_cast<void*>((addr + 255) / 256 * 256);
}

at::Tensor conv1d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                  int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p =
      check_forward_args(input, weight, bias, stride, pad_left, pad_right, dilation, groups);
  const at::Tensor in = input.contiguous();
  const at::Tensor w = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  at::Tensor out = new_output({p.batch, p.out_channels, p.out_len}, input.options());
  at::Tensor ws_holder;
  void* ws = workspace(forward_workspace_bytes(p, in.element_size()), in, ws_holder);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "conv1d_ext_emu.conv1d", [&] {
    forward<scalar_t>(p, in.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                      has_bias ? b.const_data_ptr<scalar_t>() : nullptr, out.mutable_data_ptr<scalar_t>(),
                      ws, nullptr);
  });
  return out;
}

at::Tensor conv1d_backward_input(const at::Tensor& grad_output, const at::Tensor& weight, int64_t input_len,
                                 int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                                 int64_t groups) {
  const Conv1dParams p = check_backward_input_args(grad_output, weight, input_len, stride, pad_left,
                                                   pad_right, dilation, groups);
  const at::Tensor go = grad_output.contiguous();
  const at::Tensor w = weight.contiguous();
  at::Tensor grad_input = new_output({p.batch, p.in_channels, p.in_len}, grad_output.options());
  at::Tensor ws_holder;
  void* ws = workspace(backward_input_workspace_bytes(p, go.element_size()), go, ws_holder);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(),
                                  "conv1d_ext_emu.conv1d_backward_input", [&] {
    backward_input<scalar_t>(p, go.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                             grad_input.mutable_data_ptr<scalar_t>(), ws, nullptr);
  });
  return grad_input;
}

at::Tensor conv1d_backward_weight(const at::Tensor& grad_output, const at::Tensor& input, int64_t kernel_size,
                                  int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                                  int64_t groups) {
  const Conv1dParams p = check_backward_weight_args(grad_output, input, kernel_size, stride, pad_left,
                                                    pad_right, dilation, groups);
  const at::Tensor go = grad_output.contiguous();
  const at::Tensor in = input.contiguous();
  at::Tensor grad_weight = new_output({p.out_channels, p.in_per_group, p.kernel_size}, input.options());
  at::Tensor ws_holder;
  void* ws = workspace(backward_weight_workspace_bytes(p, go.element_size()), go, ws_holder);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(),
                                  "conv1d_ext_emu.conv1d_backward_weight", [&] {
    backward_weight<scalar_t>(p, go.const_data_ptr<scalar_t>(), in.const_data_ptr<scalar_t>(),
                              grad_weight.mutable_data_ptr<scalar_t>(), ws, nullptr);
  });
  return grad_weight;
}

at::Tensor conv1d_backward_bias(const at::Tensor& grad_output) {
  check_backward_bias_args(grad_output);
  const at::Tensor go = grad_output.contiguous();
  const int64_t batch = go.size(0), channels = go.size(1), len = go.size(2);
  at::Tensor grad_bias = new_output({channels}, go.options());
  at::Tensor ws_holder;
  void* ws = workspace(backward_bias_workspace_bytes(batch, channels, len, go.element_size()), go, ws_holder);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(),
                                  "conv1d_ext_emu.conv1d_backward_bias", [&] {
    backward_bias<scalar_t>(batch, channels, len, go.const_data_ptr<scalar_t>(),
                            grad_bias.mutable_data_ptr<scalar_t>(), ws, nullptr);
  });
  return grad_bias;
}

// (offset in this library, launch count) of every kernel launched since the last reset.
at::Tensor launch_counts(bool reset) {
  const auto counts = ::cuda_emu::launch_counts(reset);
  at::Tensor out = at::empty({static_cast<int64_t>(counts.size()), 2}, at::kLong);
  int64_t* o = out.mutable_data_ptr<int64_t>();
  for (size_t i = 0; i < counts.size(); ++i) {
    o[2 * i] = static_cast<int64_t>(counts[i].first);
    o[2 * i + 1] = static_cast<int64_t>(counts[i].second);
  }
  return out;
}

// TORCH_LIBRARY / TORCH_LIBRARY_IMPL spelled out, so the namespace can come from another translation
// unit: fault-injection builds then reuse this object and differ only in emu_namespace.cpp.
struct Registration {
  torch::Library defs;
  torch::Library impls;
  Registration()
      : defs(torch::Library::DEF, kOpsNamespace, std::nullopt, __FILE__, __LINE__),
        impls(torch::Library::IMPL, kOpsNamespace, c10::DispatchKey::CPU, __FILE__, __LINE__) {
    // Schemas: the same as csrc/ops.cpp.
    defs.def("conv1d(Tensor input, Tensor weight, Tensor? bias, int stride, int pad_left, int pad_right, "
             "int dilation, int groups) -> Tensor");
    defs.def("conv1d_backward_input(Tensor grad_output, Tensor weight, SymInt input_len, int stride, "
             "int pad_left, int pad_right, int dilation, int groups) -> Tensor");
    defs.def("conv1d_backward_weight(Tensor grad_output, Tensor input, int kernel_size, int stride, "
             "int pad_left, int pad_right, int dilation, int groups) -> Tensor");
    defs.def("conv1d_backward_bias(Tensor grad_output) -> Tensor");
    // Test-only: which kernels ran (see tests/emulated.py, kernel_launches).
    defs.def("_launch_counts(bool reset) -> Tensor", &launch_counts);
    impls.impl("conv1d", &conv1d);
    impls.impl("conv1d_backward_input", &conv1d_backward_input);
    impls.impl("conv1d_backward_weight", &conv1d_backward_weight);
    impls.impl("conv1d_backward_bias", &conv1d_backward_bias);
  }
};

const Registration registration;

}  // namespace
}  // namespace emulated
}  // namespace conv1d_ext
