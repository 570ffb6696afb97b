// Host entry points of the CUDA kernel families: OpKernels<T>::NAME, one per op of core/op_list.h, named
// like the op and taking its argument struct (core/op_args.h); each is the op's one dispatch point, which
// picks the kernel for the problem (csrc/cuda/dispatch.cu). Plain C++ declarations, so both the
// tensor-level CUDA op implementation (conv1d_cuda.cpp, g++) and the emulated build
// (tests/cuda_emu/emu_ops.cpp, g++ with CONV1D_EXT_EMULATE) call the very same dispatch and kernels.
//
// NAME_workspace_bytes(args): how much scratch memory NAME wants for these args; the caller allocates it
// (PyTorch's caching allocator on CUDA), 256-byte aligned, and passes it as args.workspace (null when the
// size is 0). No entry point synchronises with the host.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(CONV1D_EXT_EMULATE)
// conv1d_params.h marks its helpers __host__ __device__, which only the emulator defines for g++.
#include "cuda_compat.cuh"
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "core/op_args.h"
#include "core/op_list.h"

#if defined(CONV1D_EXT_EMULATE)
#define C1D_KERNEL_NS emulated
#else
#define C1D_KERNEL_NS cuda
#endif

// The dtypes every entry point and kernel family is instantiated for, in one place:
// C1D_FOR_EACH_DTYPE(M) expands M(T) once per dtype.
#define C1D_FOR_EACH_DTYPE(M) M(float) M(double) M(c10::Half) M(c10::BFloat16)

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// How an entry point launches.
struct CudaLaunch {
  void* stream;  // the cudaStream_t to launch on (ignored under emulation)
  // Whether float32 may run on TF32 tensor cores: PyTorch's torch.backends.cudnn.allow_tf32, read (by the
  // conv1d ops that may use tensor cores, once per call) through this function, so the other ops never
  // read it.
  bool (*allow_tf32)();
};

#define C1D_DECLARE_CUDA_KERNEL(name, Args, signature)       \
  static size_t name##_workspace_bytes(const Args<T>& args); \
  static void name(const Args<T>& args, const CudaLaunch& launch);

// The entry points for element type T. Guarantees of every op: each output element is written;
// gradients of weights and biases are deterministic (no float atomics).
template <typename T>
struct OpKernels {
  C1D_FOR_EACH_OP(C1D_DECLARE_CUDA_KERNEL)
};

#undef C1D_DECLARE_CUDA_KERNEL

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
