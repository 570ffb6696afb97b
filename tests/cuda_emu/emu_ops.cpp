// The CUDA kernels of csrc/cuda/, compiled by g++ under CONV1D_EXT_EMULATE and run on the CPU by the
// emulator, registered as CPU ops under a test-only namespace (conv1d_ext_emu by default; see
// emu_namespace.cpp). The schemas (core/registration.h) and the host steps of every op (core/op_layer.h,
// with the CUDA backend of cuda/kernel_backend.h) are the very ones a GPU build runs; only the environment
// differs: no device guard, no stream, and workspaces that look like a caching allocator's uninitialised
// memory.
#if !defined(CONV1D_EXT_EMULATE)
#error "emu_ops.cpp is compiled with CONV1D_EXT_EMULATE (see tests/support/emulated.py)"
#endif

#include <cstring>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

// First: __host__ __device__ for core/conv1d_params.h, as nvcc would predefine them.
#include "cuda_emu.h"

#include "core/registration.h"
#include "cuda/kernel_backend.h"

namespace conv1d_ext {
namespace emulated {

extern const char kOpsNamespace[];  // emu_namespace.cpp

namespace {

struct EmulatorEnv {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static void* stream() { return nullptr; }

  // 256-byte aligned and filled with 0xFF bytes (NaN), like the uninitialised memory a caching allocator
  // hands out: a kernel that reads workspace it did not write gives NaN.
  static Workspace workspace(size_t bytes, const at::Tensor& like) {
    if (bytes == 0) return {};
    at::Tensor holder = at::empty({static_cast<int64_t>(bytes + 256)}, like.options().dtype(at::kByte));
    std::memset(holder.mutable_data_ptr(), 0xff, bytes + 256);
    const auto addr = reinterpret_cast<uintptr_t>(holder.mutable_data_ptr());
    return {std::move(holder), reinterpret_cast<void*>((addr + 255) / 256 * 256)};
  }
};

// (offset in this library, launch count) of every kernel launched since the last reset.
at::Tensor launch_counts(bool reset) {
  const auto counts = ::cuda_emu::launch_counts(reset);
  at::Tensor out = at::empty({static_cast<int64_t>(counts.size()), 2}, at::kLong);
  int64_t* o = out.mutable_data_ptr<int64_t>();
  for (size_t i = 0; i < counts.size(); ++i) {
    o[2 * i] = static_cast<int64_t>(counts[i].first);
    o[2 * i + 1] = static_cast<int64_t>(counts[i].second);
  }
  return out;
}

// The fault-injection builds reuse this object and differ only in emu_namespace.cpp.
struct Registration : TestOpLibrary {
  Registration() : TestOpLibrary(kOpsNamespace, __FILE__, __LINE__) {
    // Test-only: which kernels ran (see tests/support/emulated.py, kernel_launches), and whether this library
    // NaN-poisons its outputs (CONV1D_EXT_POISON_OUTPUTS, read once: core/op_common.h).
    defs.def("_launch_counts(bool reset) -> Tensor", &launch_counts);
    defs.def("_poison_outputs() -> bool", &poison_outputs);
    register_kernels<CudaKernelBackend<EmulatorEnv>>(impls);
    register_causal_kernels<CudaKernelBackend<EmulatorEnv>>(impls);
  }
};

const Registration registration;

}  // namespace
}  // namespace emulated
}  // namespace conv1d_ext
