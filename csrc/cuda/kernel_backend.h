// The CUDA kernel families (their dispatch points OpKernels<T> in dispatch.cu) as an op_layer.h backend.
// `Env` is what differs between a GPU and the emulator of the tests: the device guard, the stream, the
// workspace. Env provides: static guard(const at::Tensor&), static void* stream(),
//                          static Workspace workspace(size_t bytes, const at::Tensor& like).
#pragma once

#include <cstddef>

#include <ATen/Context.h>

#include "core/op_layer.h"
#include "core/op_list.h"
#include "cuda/conv1d_kernels.h"

namespace conv1d_ext {

template <class Env>
struct CudaKernelBackend : Env {
  // PyTorch's TF32 policy for convolutions, read per call like its own (at::globalContext()), by the ops
  // whose dispatch may choose TF32 tensor cores.
  static bool allow_tf32() { return at::globalContext().allowTF32CuDNN(); }

#define C1D_CUDA_FORWARDER(name, Args, signature)                          \
  template <typename T>                                                    \
  static size_t workspace_bytes(const Args<T>& args) {                     \
    return C1D_KERNEL_NS::OpKernels<T>::name##_workspace_bytes(args);      \
  }                                                                        \
  template <typename T>                                                    \
  static void run(const Args<T>& args) {                                   \
    C1D_KERNEL_NS::OpKernels<T>::name(args, {Env::stream(), &allow_tf32}); \
  }
  C1D_FOR_EACH_OP(C1D_CUDA_FORWARDER)
#undef C1D_CUDA_FORWARDER
};

}  // namespace conv1d_ext
