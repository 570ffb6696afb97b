// The CPU kernels of a copy of csrc/cpu/ (in the fault-injection test, with one planted bug), built for
// one instruction set and registered as CPU ops under a test-only namespace (namespace.cpp). The schemas
// and the tensor-level steps of every conv1d op (core/registration.h, core/op_layer.h) are the real
// library's; only the choice of kernels differs from csrc/cpu/conv1d_cpu.cpp: one ISA, fixed when this
// file is compiled (C1D_FAULT_ISA = DEFAULT or AVX2), and always the specialised families (the direct
// fallback is what CONV1D_EXT_CPU_KERNELS=direct would force; it is not read here). The causal ops are
// defined but have no kernels here. Built by tests/support/cpu_faults.py.
#include "core/registration.h"
#include "cpu/cpu_backend.h"

#ifndef C1D_FAULT_ISA
#error "compile with -DC1D_FAULT_ISA=DEFAULT or -DC1D_FAULT_ISA=AVX2 (see tests/support/cpu_faults.py)"
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
    return CpuKernels<T>::template of<cpu::C1D_FAULT_ISA::OpKernels>();
  }
};

// The fault builds of one ISA share this object; only namespace.cpp differs.
struct Registration : TestOpLibrary {
  Registration() : TestOpLibrary(kOpsNamespace, __FILE__, __LINE__) {
    register_kernels<CpuBackend<FixedIsa>>(impls);
  }
};

const Registration registration;

}  // namespace
}  // namespace cpu_faults
}  // namespace conv1d_ext
