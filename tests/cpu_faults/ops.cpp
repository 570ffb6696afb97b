// The CPU kernels of a copy of csrc/cpu/ (in the fault-injection test, with one planted bug), built for
// one instruction set and registered as CPU ops under a test-only namespace (namespace.cpp). The schemas
// (op_schemas.h) and the tensor-level steps of every op (op_layer.h) are the real library's; only the
// choice of kernels differs from csrc/cpu/conv1d_cpu.cpp: one ISA, fixed when this file is compiled
// (C1D_FAULT_ISA = DEFAULT or AVX2), and always the specialised families (the direct fallback is what
// CONV1D_EXT_CPU_KERNELS=direct would force; it is not read here). Built by tests/cpu_faults.py.
#include <optional>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/kernels.h"
#include "op_layer.h"
#include "op_schemas.h"

#ifndef C1D_FAULT_ISA
#error "compile with -DC1D_FAULT_ISA=DEFAULT or -DC1D_FAULT_ISA=AVX2 (see tests/cpu_faults.py)"
#endif

namespace conv1d_ext {

bool cpu::force_direct_kernels() { return false; }

namespace cpu_faults {

extern const char kOpsNamespace[];  // namespace.cpp

namespace {

namespace isa = cpu::C1D_FAULT_ISA;

struct Backend {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static Workspace workspace(size_t, const at::Tensor&) { return {}; }
  static size_t forward_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_input_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_weight_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_bias_workspace_bytes(int64_t, int64_t, int64_t, size_t) { return 0; }

  template <typename T>
  static void forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                      void*) {
    isa::conv1d_forward<T>(p, input, weight, bias, output);
  }
  template <typename T>
  static void backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                             void*) {
    isa::conv1d_backward_input<T>(p, grad_output, weight, grad_input);
  }
  template <typename T>
  static void backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                              void*) {
    isa::conv1d_backward_weight<T>(p, grad_output, input, grad_weight);
  }
  template <typename T>
  static void backward_bias(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                            void*) {
    isa::conv1d_backward_bias<T>(batch, channels, len, grad_output, grad_bias);
  }
};

// TORCH_LIBRARY / TORCH_LIBRARY_IMPL spelled out, so the namespace can come from another translation unit
// (as in tests/cuda_emu/emu_ops.cpp): the fault builds of one ISA share this object.
struct Registration {
  torch::Library defs;
  torch::Library impls;
  Registration()
      : defs(torch::Library::DEF, kOpsNamespace, std::nullopt, __FILE__, __LINE__),
        impls(torch::Library::IMPL, kOpsNamespace, c10::DispatchKey::CPU, __FILE__, __LINE__) {
    define_ops(defs);
    register_kernels<Backend>(impls);
  }
};

const Registration registration;

}  // namespace
}  // namespace cpu_faults
}  // namespace conv1d_ext
