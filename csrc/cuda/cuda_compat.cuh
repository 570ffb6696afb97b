// What every CUDA kernel file includes instead of <cuda_runtime.h>.
//
// Under nvcc it is the real CUDA runtime. Compiled with g++ and CONV1D_EXT_EMULATE defined, the same
// kernel sources run on the CPU through the emulator in tests/cuda_emu/ (tests only): it supplies
// threadIdx/blockIdx/blockDim/gridDim, __shared__, __syncthreads, warp shuffles, vector types, dim3 and
// the tensor-core helpers of tensor_core.cuh. Kernels therefore use only what both sides provide (the full
// list is at the top of dispatch.cu):
//   * launch with launch_kernel(kernel, grid, block, smem_bytes, stream, args...), never <<<>>>;
//   * dynamic shared memory through dynamic_smem<T>(), never `extern __shared__`;
//   * inline PTX only inside tensor_core.cuh's helpers; no cub, no cooperative groups; warp intrinsics
//     only the *_sync forms.
#pragma once

#include <cstddef>
#include <utility>

#if defined(CONV1D_EXT_EMULATE)
#include "cuda_emu.h"  // tests/cuda_emu/, on the emulated build's include path
#define C1D_KERNEL_NS emulated
#else
#include <cuda_runtime.h>
#include <c10/cuda/CUDAException.h>
#define C1D_KERNEL_NS cuda
#endif

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// Stream handle of the backend (cudaStream_t; a dummy under emulation).
using Stream = cudaStream_t;

template <typename... KernelArgs, typename... Args>
inline void launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes,
                          Stream stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // empty problem: nothing to launch
#if defined(CONV1D_EXT_EMULATE)
  (void)stream;
  ::cuda_emu::launch(kernel, grid, block, smem_bytes, std::forward<Args>(args)...);
#else
  // clang-format splits the closing >>> of a launch inside a template:
  // clang-format off
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);
  // clang-format on
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

// Dynamic shared memory of the running block (the launch's smem_bytes), as T*.
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
#if defined(CONV1D_EXT_EMULATE)
  return reinterpret_cast<T*>(::cuda_emu::dynamic_shared_memory());
#else
  extern __shared__ __align__(16) unsigned char c1d_dynamic_smem[];
  return reinterpret_cast<T*>(c1d_dynamic_smem);
#endif
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
