// The CPU kernel entry points of one instruction set as a table (CpuKernels), and the CPU kernels as an
// op_layer.h backend (CpuBackend), shared by the library (cpu/conv1d_cpu.cpp) and the fault-injection
// builds of the tests (tests/cpu_faults/ops.cpp), which pin one ISA.
#pragma once

#include "cpu/kernels.h"
#include "core/op_layer.h"

namespace conv1d_ext {

// The kernel entry points of one instruction set, for one dtype.
template <typename scalar_t>
struct CpuKernels {
  decltype(&cpu::DEFAULT::conv1d_forward<scalar_t>) forward;
  decltype(&cpu::DEFAULT::conv1d_backward_input<scalar_t>) backward_input;
  decltype(&cpu::DEFAULT::conv1d_backward_weight<scalar_t>) backward_weight;
  decltype(&cpu::DEFAULT::conv1d_backward_bias<scalar_t>) backward_bias;
  decltype(&cpu::DEFAULT::conv1d_backward<scalar_t>) backward;
  decltype(&cpu::DEFAULT::causal_conv1d_forward<scalar_t>) causal_forward;
  decltype(&cpu::DEFAULT::causal_conv1d_backward<scalar_t>) causal_backward;
  decltype(&cpu::DEFAULT::causal_conv1d_update<scalar_t>) causal_update;
};

// The entry points of instruction set ISA (cpu::DEFAULT or cpu::AVX2) for dtype T, as a CpuKernels<T>.
#define C1D_CPU_KERNELS_OF(ISA, T)                                                                          \
  (::conv1d_ext::CpuKernels<T>{                                                                             \
      &::conv1d_ext::cpu::ISA::conv1d_forward<T>, &::conv1d_ext::cpu::ISA::conv1d_backward_input<T>,        \
      &::conv1d_ext::cpu::ISA::conv1d_backward_weight<T>, &::conv1d_ext::cpu::ISA::conv1d_backward_bias<T>, \
      &::conv1d_ext::cpu::ISA::conv1d_backward<T>, &::conv1d_ext::cpu::ISA::causal_conv1d_forward<T>,       \
      &::conv1d_ext::cpu::ISA::causal_conv1d_backward<T>, &::conv1d_ext::cpu::ISA::causal_conv1d_update<T>})

// The CPU kernels as an op_layer.h backend: no device, no workspace (the kernels keep per-thread
// scratch of their own). `Select::kernels<T>()` says which entry points run: the library's choice of
// instruction set (conv1d_cpu.cpp), or one fixed ISA (the fault-injection builds of the tests).
template <class Select>
struct CpuBackend {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static Workspace workspace(size_t, const at::Tensor&) { return {}; }
  static size_t forward_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_input_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_weight_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_bias_workspace_bytes(int64_t, int64_t, int64_t, size_t) { return 0; }
  static size_t backward_workspace_bytes(const Conv1dParams&, size_t) { return 0; }

  template <typename T>
  static void forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                      void*) {
    Select::template kernels<T>().forward(p, input, weight, bias, output);
  }
  template <typename T>
  static void backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                             void*) {
    Select::template kernels<T>().backward_input(p, grad_output, weight, grad_input);
  }
  template <typename T>
  static void backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                              void*) {
    Select::template kernels<T>().backward_weight(p, grad_output, input, grad_weight);
  }
  template <typename T>
  static void backward_bias(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                            void*) {
    Select::template kernels<T>().backward_bias(batch, channels, len, grad_output, grad_bias);
  }
  template <typename T>
  static void backward(const Conv1dParams& p, const T* grad_output, const T* input, const T* weight,
                       T* grad_input, T* grad_weight, T* grad_bias, void*) {
    Select::template kernels<T>().backward(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
  }
  static size_t causal_backward_workspace_bytes(const CausalParams&, size_t) { return 0; }
  template <typename T>
  static void causal_forward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                             const int32_t* seq_idx, const T* init, T* out, T* final_states) {
    Select::template kernels<T>().causal_forward(p, x, weight, bias, seq_idx, init, out, final_states);
  }
  template <typename T>
  static void causal_backward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                              const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final,
                              T* dx, T* dweight, T* dbias, T* dinit, void*) {
    Select::template kernels<T>().causal_backward(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx,
                                                  dweight, dbias, dinit);
  }
  template <typename T>
  static void causal_update(const CausalUpdateParams& p, const T* x, T* state, const T* weight, const T* bias,
                            const int32_t* cache_seqlens, const int32_t* state_indices, T* out) {
    Select::template kernels<T>().causal_update(p, x, state, weight, bias, cache_seqlens, state_indices, out);
  }
};

}  // namespace conv1d_ext
