// The CPU kernels of a copy of csrc/cpu/ (in the fault-injection test, with one planted bug), built for
// one instruction set and registered as CPU ops under a test-only namespace (namespace.cpp). The schemas
// (op_schemas.h) and the tensor-level steps of every op (op_layer.h) are the real library's; only the
// choice of kernels differs from csrc/cpu/conv1d_cpu.cpp: one ISA, fixed when this file is compiled
// (C1D_FAULT_ISA = DEFAULT or AVX2), and always the specialised families (the direct fallback is what
// CONV1D_EXT_CPU_KERNELS=direct would force; it is not read here). Built by tests/cpu_faults.py.
#include <optional>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/cpu_backend.h"
#include "core/op_schemas.h"

#ifndef C1D_FAULT_ISA
#error "compile with -DC1D_FAULT_ISA=DEFAULT or -DC1D_FAULT_ISA=AVX2 (see tests/cpu_faults.py)"
#endif

namespace conv1d_ext {

bool cpu::force_direct_kernels() { return false; }

namespace cpu_faults {

extern const char kOpsNamespace[];  // namespace.cpp

namespace {

// One instruction set, fixed when this file is compiled.
struct FixedIsa {
  template <typename T>
  static CpuKernels<T> kernels() {
    return C1D_CPU_KERNELS_OF(C1D_FAULT_ISA, T);
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
    register_kernels<CpuBackend<FixedIsa>>(impls);
  }
};

const Registration registration;

}  // namespace
}  // namespace cpu_faults
}  // namespace conv1d_ext
