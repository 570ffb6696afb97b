// The CUDA kernel families (their dispatch points in dispatch.cu) as an op_layer.h backend. `Env` is what
// differs between a GPU and the emulator of the tests: the device guard, the stream, the workspace.
// Env provides: static guard(const at::Tensor&), static void* stream(),
//               static Workspace workspace(size_t bytes, const at::Tensor& like).
#pragma once

#include <algorithm>

#include <ATen/Context.h>

#include "cuda/conv1d_kernels.h"
#include "core/op_layer.h"

namespace conv1d_ext {

template <class Env>
struct CudaKernelBackend : Env {
  static size_t forward_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
    return C1D_KERNEL_NS::forward_workspace_bytes(p, elem_size);
  }
  static size_t backward_input_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
    return C1D_KERNEL_NS::backward_input_workspace_bytes(p, elem_size);
  }
  static size_t backward_weight_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
    return C1D_KERNEL_NS::backward_weight_workspace_bytes(p, elem_size);
  }
  static size_t backward_bias_workspace_bytes(int64_t batch, int64_t channels, int64_t len,
                                              size_t elem_size) {
    return C1D_KERNEL_NS::backward_bias_workspace_bytes(batch, channels, len, elem_size);
  }

  template <typename T>
  static void forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                      void* workspace) {
    // PyTorch's policy for convolutions, read per call like its own (at::globalContext().allowTF32CuDNN()).
    C1D_KERNEL_NS::forward<T>(p, input, weight, bias, output, workspace, Env::stream(),
                              at::globalContext().allowTF32CuDNN());
  }
  template <typename T>
  static void backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                             void* workspace) {
    C1D_KERNEL_NS::backward_input<T>(p, grad_output, weight, grad_input, workspace, Env::stream(),
                                     at::globalContext().allowTF32CuDNN());
  }
  template <typename T>
  static void backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                              void* workspace) {
    C1D_KERNEL_NS::backward_weight<T>(p, grad_output, input, grad_weight, workspace, Env::stream(),
                                      at::globalContext().allowTF32CuDNN());
  }
  template <typename T>
  static void backward_bias(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                            void* workspace) {
    C1D_KERNEL_NS::backward_bias<T>(batch, channels, len, grad_output, grad_bias, workspace, Env::stream());
  }

  // The fused backward (op conv1d_backward): the three separate kernels in turn, on one stream, sharing one
  // workspace (the largest of the three); a null output is not computed.
  static size_t backward_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
    return std::max({backward_input_workspace_bytes(p, elem_size),
                     backward_weight_workspace_bytes(p, elem_size),
                     backward_bias_workspace_bytes(p.batch, p.out_channels, p.out_len, elem_size)});
  }
  template <typename T>
  static void backward(const Conv1dParams& p, const T* grad_output, const T* input, const T* weight,
                       T* grad_input, T* grad_weight, T* grad_bias, void* workspace) {
    if (grad_input) backward_input<T>(p, grad_output, weight, grad_input, workspace);
    if (grad_weight) backward_weight<T>(p, grad_output, input, grad_weight, workspace);
    if (grad_bias) backward_bias<T>(p.batch, p.out_channels, p.out_len, grad_output, grad_bias, workspace);
  }

  // The causal ops (causal.cu).
  static size_t causal_backward_workspace_bytes(const CausalParams& p, size_t elem_size) {
    return C1D_KERNEL_NS::causal_backward_workspace_bytes(p, elem_size);
  }
  template <typename T>
  static void causal_forward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                             const int32_t* seq_idx, const T* init, T* out, T* final_states) {
    C1D_KERNEL_NS::causal_forward<T>(p, x, weight, bias, seq_idx, init, out, final_states, Env::stream());
  }
  template <typename T>
  static void causal_backward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                              const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final,
                              T* dx, T* dweight, T* dbias, T* dinit, void* workspace) {
    C1D_KERNEL_NS::causal_backward<T>(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx, dweight,
                                      dbias, dinit, workspace, Env::stream());
  }
  template <typename T>
  static void causal_update(const CausalUpdateParams& p, const T* x, T* state, const T* weight, const T* bias,
                            const int32_t* cache_seqlens, const int32_t* state_indices, T* out) {
    C1D_KERNEL_NS::causal_update<T>(p, x, state, weight, bias, cache_seqlens, state_indices, out,
                                    Env::stream());
  }
};

}  // namespace conv1d_ext
