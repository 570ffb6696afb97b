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
// Register a backend's kernels with register_kernels<Backend>(library). The causal ops (causal_checks.h,
// causal_params.h) need Backend::causal_forward / causal_backward / causal_update and are registered
// separately, by register_causal_kernels<Backend>(library) (CPU, CUDA and the emulated CUDA).
//
// The caller's tensors are never written (operands of any strides are copied by .contiguous()); an
// output with no elements returns before any kernel runs.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <tuple>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include "core/causal_checks.h"
#include "core/op_common.h"

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
    [[maybe_unused]] const auto guard = Backend::guard(input);
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
    [[maybe_unused]] const auto guard = Backend::guard(grad_output);
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
    [[maybe_unused]] const auto guard = Backend::guard(grad_output);
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
    [[maybe_unused]] const auto guard = Backend::guard(grad_output);
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

  // The three gradients in one call: the backend's one dispatch point (CPU: a fused depthwise kernel, else
  // the separate kernels). Same checks, so the same errors, as the separate ops (check_backward_args).
  // An output not in output_mask is an empty tensor of size (0,).
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_backward(
      const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, int64_t stride,
      int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups,
      std::array<bool, 3> output_mask) {
    const Conv1dParams p =
        check_backward_args(grad_output, input, weight, stride, pad_left, pad_right, dilation, groups);
    [[maybe_unused]] const auto guard = Backend::guard(grad_output);
    const auto output_if = [&](bool wanted, at::IntArrayRef sizes) {
      return wanted ? new_output(sizes, grad_output.options()) : at::empty({0}, grad_output.options());
    };
    at::Tensor grad_input = output_if(output_mask[0], {p.batch, p.in_channels, p.in_len});
    at::Tensor grad_weight = output_if(output_mask[1], {p.out_channels, p.in_per_group, p.kernel_size});
    at::Tensor grad_bias = output_if(output_mask[2], {p.out_channels});
    // Like the separate ops: an output with no elements returns before any kernel runs.
    const bool want_input = output_mask[0] && grad_input.numel() > 0;
    const bool want_weight = output_mask[1] && grad_weight.numel() > 0;
    const bool want_bias = output_mask[2] && grad_bias.numel() > 0;
    if (!want_input && !want_weight && !want_bias) return {grad_input, grad_weight, grad_bias};
    // input is read only for grad_weight, weight only for grad_input: the other is not copied
    const at::Tensor grad_output_c = grad_output.contiguous();
    const at::Tensor input_c = want_weight ? input.contiguous() : input;
    const at::Tensor weight_c = want_input ? weight.contiguous() : weight;
    const Workspace ws =
        Backend::workspace(Backend::backward_workspace_bytes(p, grad_output.element_size()), grad_output);
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template backward<T>(p, grad_output_c.const_data_ptr<T>(), input_c.const_data_ptr<T>(),
                                    weight_c.const_data_ptr<T>(),
                                    want_input ? grad_input.mutable_data_ptr<T>() : nullptr,
                                    want_weight ? grad_weight.mutable_data_ptr<T>() : nullptr,
                                    want_bias ? grad_bias.mutable_data_ptr<T>() : nullptr, ws.ptr);
    });
    return {grad_input, grad_weight, grad_bias};
  }

  // The causal ops (causal_checks.h, causal_params.h). x, grad_output and the outputs dx / out are
  // passed with their strides (a channels-last x is read in place, and out / dx keep x's layout); the
  // small operands are made contiguous.
  static std::tuple<at::Tensor, at::Tensor> causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& weight,
                                                              const std::optional<at::Tensor>& bias,
                                                              const std::optional<at::Tensor>& seq_idx,
                                                              const std::optional<at::Tensor>& initial_states,
                                                              int64_t dilation, bool silu) {
    CausalParams p = check_causal_args(x, weight, bias, seq_idx, initial_states, dilation, silu);
    [[maybe_unused]] const auto guard = Backend::guard(x);
    at::Tensor out = causal_new_like(x);
    at::Tensor final_states = new_output({p.batch, p.dim, p.state_len}, x.options());
    p.out = causal_strides(out);
    if (p.batch * p.dim == 0) return {out, final_states};
    const at::Tensor weight_c = weight.contiguous();
    const at::Tensor bias_c = causal_defined(bias) ? bias->contiguous() : at::Tensor();
    const at::Tensor seq_c = causal_defined(seq_idx) ? seq_idx->contiguous() : at::Tensor();
    const at::Tensor init_c = causal_defined(initial_states) ? initial_states->contiguous() : at::Tensor();
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template causal_forward<T>(p, x.const_data_ptr<T>(), weight_c.const_data_ptr<T>(),
                                          bias_c.defined() ? bias_c.const_data_ptr<T>() : nullptr,
                                          seq_c.defined() ? seq_c.const_data_ptr<int32_t>() : nullptr,
                                          init_c.defined() ? init_c.const_data_ptr<T>() : nullptr,
                                          out.mutable_data_ptr<T>(), final_states.mutable_data_ptr<T>());
    });
    return {out, final_states};
  }

  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(
      const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
      const std::optional<at::Tensor>& seq_idx, const std::optional<at::Tensor>& initial_states,
      const at::Tensor& grad_out, const std::optional<at::Tensor>& grad_final_states, int64_t dilation,
      bool silu) {
    CausalParams p = check_causal_backward_args(x, weight, bias, seq_idx, initial_states, grad_out,
                                                grad_final_states, dilation, silu);
    [[maybe_unused]] const auto guard = Backend::guard(x);
    at::Tensor dx = causal_new_like(x);
    at::Tensor dweight = new_output({p.dim, p.width}, x.options());
    at::Tensor dbias = new_output({p.dim}, x.options());
    at::Tensor dinit = new_output({p.batch, p.dim, p.state_len}, x.options());
    p.out = causal_strides(dx);
    if (p.dim == 0) return {dx, dweight, dbias, dinit};
    if (p.batch == 0) {
      dweight.zero_();
      dbias.zero_();
      return {dx, dweight, dbias, dinit};
    }
    const at::Tensor weight_c = weight.contiguous();
    const at::Tensor bias_c = causal_defined(bias) ? bias->contiguous() : at::Tensor();
    const at::Tensor seq_c = causal_defined(seq_idx) ? seq_idx->contiguous() : at::Tensor();
    const at::Tensor init_c = causal_defined(initial_states) ? initial_states->contiguous() : at::Tensor();
    const Workspace ws = Backend::workspace(Backend::causal_backward_workspace_bytes(p, x.element_size()), x);
    const at::Tensor gfinal_c =
        causal_defined(grad_final_states) ? grad_final_states->contiguous() : at::Tensor();
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template causal_backward<T>(
          p, x.const_data_ptr<T>(), weight_c.const_data_ptr<T>(),
          bias_c.defined() ? bias_c.const_data_ptr<T>() : nullptr,
          seq_c.defined() ? seq_c.const_data_ptr<int32_t>() : nullptr,
          init_c.defined() ? init_c.const_data_ptr<T>() : nullptr, grad_out.const_data_ptr<T>(),
          gfinal_c.defined() ? gfinal_c.const_data_ptr<T>() : nullptr, dx.mutable_data_ptr<T>(),
          dweight.mutable_data_ptr<T>(), dbias.mutable_data_ptr<T>(), dinit.mutable_data_ptr<T>(), ws.ptr);
    });
    return {dx, dweight, dbias, dinit};
  }

  // conv_state is written in place, through its strides.
  static at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state,
                                         const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                         const std::optional<at::Tensor>& cache_seqlens,
                                         const std::optional<at::Tensor>& conv_state_indices, bool silu) {
    const CausalUpdateParams p =
        check_causal_update_args(x, conv_state, weight, bias, cache_seqlens, conv_state_indices, silu);
    [[maybe_unused]] const auto guard = Backend::guard(x);
    at::Tensor out = new_output({p.batch, p.dim, p.len}, x.options());
    if (out.numel() == 0) return out;
    const at::Tensor weight_c = weight.contiguous();
    const at::Tensor bias_c = causal_defined(bias) ? bias->contiguous() : at::Tensor();
    const at::Tensor seqlens_c = causal_defined(cache_seqlens) ? cache_seqlens->contiguous() : at::Tensor();
    const at::Tensor indices_c =
        causal_defined(conv_state_indices) ? conv_state_indices->contiguous() : at::Tensor();
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      Backend::template causal_update<T>(
          p, x.const_data_ptr<T>(), conv_state.mutable_data_ptr<T>(), weight_c.const_data_ptr<T>(),
          bias_c.defined() ? bias_c.const_data_ptr<T>() : nullptr,
          seqlens_c.defined() ? seqlens_c.const_data_ptr<int32_t>() : nullptr,
          indices_c.defined() ? indices_c.const_data_ptr<int32_t>() : nullptr, out.mutable_data_ptr<T>());
    });
    return out;
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
  lib.impl("conv1d_backward", &OpLayer<Backend>::conv1d_backward);
}

// Registers Backend's kernels of the causal ops (a backend without causal kernels registers none, so
// calling them there is the dispatcher's clear "no kernel for this backend" error).
template <class Backend>
void register_causal_kernels(torch::Library& lib) {
  lib.impl("causal_conv1d_fwd", &OpLayer<Backend>::causal_conv1d_fwd);
  lib.impl("causal_conv1d_bwd", &OpLayer<Backend>::causal_conv1d_bwd);
  lib.impl("causal_conv1d_update", &OpLayer<Backend>::causal_conv1d_update);
}

// No device to guard (CPU, emulated CUDA).
struct NoGuard {};

}  // namespace conv1d_ext
