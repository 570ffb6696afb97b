// The tensor-level op layer: the one implementation of every op's host steps, shared by all backends
// (CPU, CUDA, and the emulated CUDA of the tests):
//
//   argument checks -> params (op_common.h, causal_checks.h) -> device guard -> new output (poisonable) ->
//   contiguous operands -> dtype dispatch -> the op's argument struct (op_args.h), filled once ->
//   workspace -> the backend's kernel entry point, which is the op's one dispatch point choosing a kernel
//   family (cpu/kernels_impl.h, cuda/dispatch.cu).
//
// A Backend is a struct of static members; the backends differ only in these:
//   Backend::guard(tensor)                an object held for the call (CUDA: the device guard)
//   Backend::workspace(bytes, like)       >= bytes of scratch memory, 256-byte aligned (Workspace)
//   Backend::workspace_bytes(args)        how much scratch the op's kernels want for these args (may be 0)
//   Backend::run(args)                    the op's kernel entry point, overloaded on the Args of each op
// Each op of op_list.h has its function here, named like the op; registration.h registers them.
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
#include "core/op_args.h"
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

// An optional operand's data, or null.
template <typename T>
const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

// An optional operand made contiguous, or an undefined tensor when it is absent (None or undefined).
inline at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& t) {
  return causal_defined(t) ? t->contiguous() : at::Tensor();
}

template <class Backend>
struct OpLayer {
  // The workspace the kernels want for `args`, then the kernels. The workspace lives until they are
  // queued (a caching allocator tracks the stream they run on).
  template <class Args>
  static void run(Args args, const at::Tensor& like) {
    const Workspace ws = Backend::workspace(Backend::workspace_bytes(args), like);
    args.workspace = ws.ptr;
    Backend::run(args);
  }

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
    const at::Tensor bias_c = contiguous_or_undefined(bias);
    dispatch_dtype(input.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(Conv1dForwardArgs<T>{.params = p,
                               .input = input_c.const_data_ptr<T>(),
                               .weight = weight_c.const_data_ptr<T>(),
                               .bias = data_or_null<T>(bias_c),
                               .output = output.mutable_data_ptr<T>()},
          input);
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
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(Conv1dBackwardInputArgs<T>{.params = p,
                                     .grad_output = grad_output_c.const_data_ptr<T>(),
                                     .weight = weight_c.const_data_ptr<T>(),
                                     .grad_input = grad_input.mutable_data_ptr<T>()},
          grad_output);
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
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(Conv1dBackwardWeightArgs<T>{.params = p,
                                      .grad_output = grad_output_c.const_data_ptr<T>(),
                                      .input = input_c.const_data_ptr<T>(),
                                      .grad_weight = grad_weight.mutable_data_ptr<T>()},
          grad_output);
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
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(Conv1dBackwardBiasArgs<T>{.batch = batch,
                                    .channels = channels,
                                    .len = len,
                                    .grad_output = grad_output_c.const_data_ptr<T>(),
                                    .grad_bias = grad_bias.mutable_data_ptr<T>()},
          grad_output);
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
    dispatch_dtype(grad_output.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(Conv1dBackwardArgs<T>{.params = p,
                                .grad_output = grad_output_c.const_data_ptr<T>(),
                                .input = input_c.const_data_ptr<T>(),
                                .weight = weight_c.const_data_ptr<T>(),
                                .grad_input = want_input ? grad_input.mutable_data_ptr<T>() : nullptr,
                                .grad_weight = want_weight ? grad_weight.mutable_data_ptr<T>() : nullptr,
                                .grad_bias = want_bias ? grad_bias.mutable_data_ptr<T>() : nullptr},
          grad_output);
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
    const at::Tensor bias_c = contiguous_or_undefined(bias);
    const at::Tensor seq_c = contiguous_or_undefined(seq_idx);
    const at::Tensor init_c = contiguous_or_undefined(initial_states);
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(CausalForwardArgs<T>{.params = p,
                               .x = x.const_data_ptr<T>(),
                               .weight = weight_c.const_data_ptr<T>(),
                               .bias = data_or_null<T>(bias_c),
                               .seq_idx = data_or_null<int32_t>(seq_c),
                               .init = data_or_null<T>(init_c),
                               .out = out.mutable_data_ptr<T>(),
                               .final_states = final_states.mutable_data_ptr<T>()},
          x);
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
    const at::Tensor bias_c = contiguous_or_undefined(bias);
    const at::Tensor seq_c = contiguous_or_undefined(seq_idx);
    const at::Tensor init_c = contiguous_or_undefined(initial_states);
    const at::Tensor gfinal_c = contiguous_or_undefined(grad_final_states);
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(CausalBackwardArgs<T>{.params = p,
                                .x = x.const_data_ptr<T>(),
                                .weight = weight_c.const_data_ptr<T>(),
                                .bias = data_or_null<T>(bias_c),
                                .seq_idx = data_or_null<int32_t>(seq_c),
                                .init = data_or_null<T>(init_c),
                                .grad_out = grad_out.const_data_ptr<T>(),
                                .grad_final = data_or_null<T>(gfinal_c),
                                .dx = dx.mutable_data_ptr<T>(),
                                .dweight = dweight.mutable_data_ptr<T>(),
                                .dbias = dbias.mutable_data_ptr<T>(),
                                .dinit = dinit.mutable_data_ptr<T>()},
          x);
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
    const at::Tensor bias_c = contiguous_or_undefined(bias);
    const at::Tensor seqlens_c = contiguous_or_undefined(cache_seqlens);
    const at::Tensor indices_c = contiguous_or_undefined(conv_state_indices);
    dispatch_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      run(CausalUpdateArgs<T>{.params = p,
                              .x = x.const_data_ptr<T>(),
                              .state = conv_state.mutable_data_ptr<T>(),
                              .weight = weight_c.const_data_ptr<T>(),
                              .bias = data_or_null<T>(bias_c),
                              .cache_seqlens = data_or_null<int32_t>(seqlens_c),
                              .state_indices = data_or_null<int32_t>(indices_c),
                              .out = out.mutable_data_ptr<T>()},
          x);
    });
    return out;
  }
};

// No device to guard (CPU, emulated CUDA).
struct NoGuard {};

}  // namespace conv1d_ext
