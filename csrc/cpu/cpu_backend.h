// The CPU kernel entry points of one instruction set as a table (CpuKernels), and the CPU kernels as an
// op_layer.h backend (CpuBackend), shared by the library (cpu/conv1d_cpu.cpp, which picks among the
// DEFAULT, AVX2 and AVX512BF16 builds of kernels.h) and the fault-injection builds of the tests
// (tests/cpu_faults/ops.cpp), which pin one ISA.
#pragma once

#include <cstddef>

#include "core/op_layer.h"
#include "core/op_list.h"
#include "cpu/kernels.h"

namespace conv1d_ext {

// The kernel entry points of one instruction set for element type T: a pointer per op of op_list.h,
// named like the op. of<cpu::ISA::OpKernels>() fills it with the entry points of ISA.
template <typename T>
struct CpuKernels {
#define C1D_CPU_KERNEL_POINTER(name, Args, signature) void (*name)(const Args<T>&);
  C1D_FOR_EACH_OP(C1D_CPU_KERNEL_POINTER)
#undef C1D_CPU_KERNEL_POINTER

  template <template <typename> class OpKernels>
  static CpuKernels of() {
#define C1D_CPU_KERNEL_ADDRESS(name, Args, signature) &OpKernels<T>::name,
    return {C1D_FOR_EACH_OP(C1D_CPU_KERNEL_ADDRESS)};
#undef C1D_CPU_KERNEL_ADDRESS
  }
};

// The CPU kernels as an op_layer.h backend: no device, no workspace (the kernels keep per-thread scratch
// of their own). `Select::kernels<T>()` says which entry points run: the library's choice of instruction
// set (conv1d_cpu.cpp), or one fixed ISA (the fault-injection builds of the tests).
template <class Select>
struct CpuBackend {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static Workspace workspace(size_t, const at::Tensor&) { return {}; }
  template <class Args>
  static size_t workspace_bytes(const Args&) {
    return 0;
  }

#define C1D_CPU_FORWARDER(name, Args, signature) \
  template <typename T>                          \
  static void run(const Args<T>& args) {         \
    Select::template kernels<T>().name(args);    \
  }
  C1D_FOR_EACH_OP(C1D_CPU_FORWARDER)
#undef C1D_CPU_FORWARDER
};

}  // namespace conv1d_ext
