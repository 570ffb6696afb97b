// The CUDA kernels of the conv1d_ext ops, registered through the shared op layer (core/op_layer.h,
// core/registration.h). What is
// specific to a real GPU is only this: a device guard, the current stream, and workspaces from PyTorch's
// caching allocator. Nothing synchronises with the host, so the ops are safe under CUDA graph capture;
// the kernels use no atomics, so results are bit-identical run to run.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "core/registration.h"
#include "cuda/kernel_backend.h"

namespace conv1d_ext {
namespace {

struct GpuEnv {
  static c10::cuda::CUDAGuard guard(const at::Tensor& t) { return c10::cuda::CUDAGuard(t.device()); }

  // The current stream (what at::cuda::getCurrentCUDAStream() returns; c10's header avoids pulling the
  // cuBLAS/cuSPARSE headers of ATen/cuda/CUDAContext.h into the build).
  static void* stream() { return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()); }

  // Freed (returned to the cache) when the holder dies, which is safe because the allocator tracks the
  // stream the kernels were queued on. The caching allocator's blocks are 512-byte aligned.
  static Workspace workspace(size_t bytes, const at::Tensor& like) {
    if (bytes == 0) return {};
    at::Tensor holder = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
    void* ptr = holder.mutable_data_ptr();
    return {std::move(holder), ptr};
  }
};

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_IMPL(conv1d_ext, CUDA, m) {
  conv1d_ext::register_kernels<conv1d_ext::CudaKernelBackend<conv1d_ext::GpuEnv>>(m);
  conv1d_ext::register_causal_kernels<conv1d_ext::CudaKernelBackend<conv1d_ext::GpuEnv>>(m);
}
