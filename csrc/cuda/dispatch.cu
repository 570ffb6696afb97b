// The one dispatch point per op, OpKernels<T>::NAME (conv1d_kernels.h): picks the kernel family for the
// problem's shape and unpacks the op's argument struct (core/op_args.h) into the family's launcher
// (families.h); with each, the workspace it needs (NAME_workspace_bytes). Instantiated here for float,
// double, c10::Half, c10::BFloat16.
//
// Families (each in its own file, launchers in families.h): depthwise.cu (in_per_group == 1, small
// channel multiplier), dense.cu (implicit GEMM on FMA units, any groups), tensor_core.cu (the same three
// GEMM ops on tensor cores, sm_80+, checked per call on the current device), backward_bias.cu, direct.cu
// (one thread per output, any shape: chosen only for padding, stride or dilation far beyond the tensors
// -- otherwise a reference implementation the tests force with CONV1D_EXT_CUDA_FAMILY=direct).
//
// Numerics policy (PyTorch's for convolutions), the same for the three GEMM ops: bfloat16/float16 always on
// tensor cores (float32 accumulation, like the FMA kernels); float32 on TF32 tensor cores while
// allow_tf32 is True (the caller reads torch.backends.cudnn.allow_tf32 per call) and true float32 FMA
// otherwise; float64 FMA. Depthwise problems keep their own kernels (FMA) where dispatch picks them.
//
// CUDA features the kernels use -- everything the emulator (tests/cuda_emu/) must provide:
//   * __global__ / __device__ / __host__ __device__ functions, __forceinline__, __launch_bounds__;
//     device lambdas inside kernels ([&] captures, called in the same thread);
//   * threadIdx.x, blockIdx.x, blockDim.x, gridDim.x (1-D grids and blocks only; dim3 for launches);
//   * static __shared__ arrays declared inside kernels (of the accumulator type, or bytes) and dynamic
//     shared memory through dynamic_smem<T>() (cuda_compat.cuh);
//   * __syncthreads();
//   * __shfl_down_sync(0xffffffff, v, offset) on float and double (full warps; blockDim.x % 32 == 0);
//   * launches only through launch_kernel() (cuda_compat.cuh); kernel arguments are trivially copyable
//     structs passed by value;
//   * 16-byte vector loads/stores as plain loads of an alignas(16) struct (Vec16 in kernel_utils.cuh),
//     only on 16-byte aligned addresses (checked through reinterpret_cast<uintptr_t>);
//   * c10::Half / c10::BFloat16 converted to and from float with static_cast.
//   * tensor-core instructions (mma.sync, ldmatrix, cvt.rna.tf32, cp.async) only through the helpers
//     of tensor_core.cuh, the one place with inline PTX (the emulator implements each helper).
// Not used: atomics, cub, cooperative groups, __ldg, textures, streams beyond the one passed in,
// host-device synchronisation.
//
// Debug override (tests): CONV1D_EXT_CUDA_FAMILY=direct|dense|depthwise|tensor_core forces that family
// for every conv1d op it can run, read on every call: "depthwise" wherever its kernels can stage the
// problem (depthwise problems only); "tensor_core" the GEMM ops of float16/bfloat16, and of float32 while
// TF32 is allowed, any groups -- float64 and strict float32 then run "dense".
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "families.h"
#include "kernel_utils.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

enum class Family { kDirect, kDense, kDepthwise, kTensorCore };
enum class Op { kForward, kBackwardInput, kBackwardWeight };

size_t acc_size_of(size_t elem_size) { return elem_size == 8 ? 8 : 4; }

const char* family_override() {
  const char* v = std::getenv("CONV1D_EXT_CUDA_FAMILY");
  return (v != nullptr && v[0] != '\0') ? v : nullptr;
}

// elem_size 2 is float16 or bfloat16, 4 float32, 8 float64.
Family choose_family(const Conv1dParams& p, Op op, size_t elem_size, bool allow_tf32 = false) {
  // Padding, stride or dilation far beyond the tensors (geometry_is_compact, conv1d_params.h): the direct
  // kernels, whatever is forced.
  if (!geometry_is_compact(p)) return Family::kDirect;
  const bool tensor_core_fits = (elem_size == 2 || (elem_size == 4 && allow_tf32)) && tensor_core_available();
  const bool depthwise_fits =
      p.is_depthwise() && (op == Op::kForward         ? depthwise_forward_supported(p, elem_size)
                           : op == Op::kBackwardInput ? depthwise_backward_input_supported(p, elem_size)
                                                      : depthwise_backward_weight_supported(p, elem_size));
  if (const char* forced = family_override()) {
    if (std::strcmp(forced, "direct") == 0) return Family::kDirect;
    if (std::strcmp(forced, "dense") == 0) return Family::kDense;
    if (std::strcmp(forced, "tensor_core") == 0)
      return tensor_core_fits ? Family::kTensorCore : Family::kDense;
    if (std::strcmp(forced, "depthwise") == 0 && depthwise_fits) return Family::kDepthwise;
  }
  // The shared channel-multiplier policy (conv1d_params.h), applied to all three ops. Unlike the CPU,
  // which keeps the backward ops depthwise (measured there), CUDA has no measurement yet: the backward-
  // input GEMM has N = in_per_group = 1 for these problems, so the CPU's reason may hold here too, and
  // a GPU timing of the C1->64 front end's backward ops should decide before this changes.
  if (depthwise_fits && depthwise_kernels_preferred(p)) return Family::kDepthwise;
  // Every GEMM the tensor cores can compute goes there: same tiles as the FMA GEMM, so no shape wastes
  // more on them (not yet timed on a GPU: tiny-K problems, where most of a K stage is zero padding, should
  // be checked).
  return tensor_core_fits ? Family::kTensorCore : Family::kDense;
}

size_t backward_input_workspace_bytes(const Conv1dParams&, size_t) { return 0; }

size_t backward_weight_workspace_bytes(const Conv1dParams& p, size_t elem_size) {
  // The tensor-core and FMA GEMMs split K alike (allow_tf32, not known here, changes nothing).
  switch (choose_family(p, Op::kBackwardWeight, elem_size)) {
    case Family::kDense:
    case Family::kTensorCore:
      return dense_backward_weight_workspace_bytes(p, acc_size_of(elem_size));
    case Family::kDepthwise:
      return depthwise_backward_weight_workspace_bytes(p, elem_size);
    case Family::kDirect:
      break;
  }
  return 0;
}

size_t backward_bias_workspace_bytes(int64_t batch, int64_t channels, int64_t len, size_t elem_size) {
  return bias_workspace_bytes(batch, channels, len, acc_size_of(elem_size));
}

}  // namespace

// --- conv1d ops

template <typename T>
size_t OpKernels<T>::conv1d_workspace_bytes(const Conv1dForwardArgs<T>&) {
  return 0;
}

template <typename T>
void OpKernels<T>::conv1d(const Conv1dForwardArgs<T>& a, const CudaLaunch& launch) {
  const Conv1dParams& p = a.params;
  const Stream s = static_cast<Stream>(launch.stream);
  switch (choose_family(p, Op::kForward, sizeof(T), launch.allow_tf32())) {
    case Family::kTensorCore:
      return tensor_core_forward(p, a.input, a.weight, a.bias, a.output, s);
    case Family::kDepthwise:
      return depthwise_forward(p, a.input, a.weight, a.bias, a.output, s);
    case Family::kDense:
      return dense_forward(p, a.input, a.weight, a.bias, a.output, s);
    case Family::kDirect:
      return direct_forward(p, a.input, a.weight, a.bias, a.output, s);
  }
}

template <typename T>
size_t OpKernels<T>::conv1d_backward_input_workspace_bytes(const Conv1dBackwardInputArgs<T>& a) {
  return backward_input_workspace_bytes(a.params, sizeof(T));
}

template <typename T>
void OpKernels<T>::conv1d_backward_input(const Conv1dBackwardInputArgs<T>& a, const CudaLaunch& launch) {
  const Conv1dParams& p = a.params;
  const Stream s = static_cast<Stream>(launch.stream);
  switch (choose_family(p, Op::kBackwardInput, sizeof(T), launch.allow_tf32())) {
    case Family::kDepthwise:
      return depthwise_backward_input(p, a.grad_output, a.weight, a.grad_input, s);
    case Family::kDense:
      return dense_backward_input(p, a.grad_output, a.weight, a.grad_input, s);
    case Family::kDirect:
      return direct_backward_input(p, a.grad_output, a.weight, a.grad_input, s);
    case Family::kTensorCore:
      return tensor_core_backward_input(p, a.grad_output, a.weight, a.grad_input, s);
  }
}

template <typename T>
size_t OpKernels<T>::conv1d_backward_weight_workspace_bytes(const Conv1dBackwardWeightArgs<T>& a) {
  return backward_weight_workspace_bytes(a.params, sizeof(T));
}

template <typename T>
void OpKernels<T>::conv1d_backward_weight(const Conv1dBackwardWeightArgs<T>& a, const CudaLaunch& launch) {
  const Conv1dParams& p = a.params;
  const Stream s = static_cast<Stream>(launch.stream);
  switch (choose_family(p, Op::kBackwardWeight, sizeof(T), launch.allow_tf32())) {
    case Family::kDepthwise:
      return depthwise_backward_weight(p, a.grad_output, a.input, a.grad_weight, a.workspace, s);
    case Family::kDense:
      return dense_backward_weight(p, a.grad_output, a.input, a.grad_weight, a.workspace, s);
    case Family::kDirect:
      return direct_backward_weight(p, a.grad_output, a.input, a.grad_weight, s);
    case Family::kTensorCore:
      return tensor_core_backward_weight(p, a.grad_output, a.input, a.grad_weight, a.workspace, s);
  }
}

template <typename T>
size_t OpKernels<T>::conv1d_backward_bias_workspace_bytes(const Conv1dBackwardBiasArgs<T>& a) {
  return backward_bias_workspace_bytes(a.batch, a.channels, a.len, sizeof(T));
}

template <typename T>
void OpKernels<T>::conv1d_backward_bias(const Conv1dBackwardBiasArgs<T>& a, const CudaLaunch& launch) {
  bias_reduce(a.batch, a.channels, a.len, a.grad_output, a.grad_bias, a.workspace,
              static_cast<Stream>(launch.stream));
}

// The fused backward: the three separate ops in turn, on one stream, sharing one workspace (the largest of
// the three); a null output is not computed.
template <typename T>
size_t OpKernels<T>::conv1d_backward_workspace_bytes(const Conv1dBackwardArgs<T>& a) {
  const Conv1dParams& p = a.params;
  return std::max({backward_input_workspace_bytes(p, sizeof(T)),
                   backward_weight_workspace_bytes(p, sizeof(T)),
                   backward_bias_workspace_bytes(p.batch, p.out_channels, p.out_len, sizeof(T))});
}

template <typename T>
void OpKernels<T>::conv1d_backward(const Conv1dBackwardArgs<T>& a, const CudaLaunch& launch) {
  const Conv1dParams& p = a.params;
  if (a.grad_input) conv1d_backward_input({p, a.grad_output, a.weight, a.grad_input, a.workspace}, launch);
  if (a.grad_weight) conv1d_backward_weight({p, a.grad_output, a.input, a.grad_weight, a.workspace}, launch);
  if (a.grad_bias) {
    conv1d_backward_bias({p.batch, p.out_channels, p.out_len, a.grad_output, a.grad_bias, a.workspace},
                         launch);
  }
}

// --- causal ops: one family (causal.cu) for every problem

template <typename T>
size_t OpKernels<T>::causal_conv1d_fwd_workspace_bytes(const CausalForwardArgs<T>&) {
  return 0;
}

template <typename T>
void OpKernels<T>::causal_conv1d_fwd(const CausalForwardArgs<T>& a, const CudaLaunch& launch) {
  causal_forward(a.params, a.x, a.weight, a.bias, a.seq_idx, a.init, a.out, a.final_states, launch.stream);
}

template <typename T>
size_t OpKernels<T>::causal_conv1d_bwd_workspace_bytes(const CausalBackwardArgs<T>& a) {
  return causal_backward_workspace_bytes(a.params, sizeof(T));
}

template <typename T>
void OpKernels<T>::causal_conv1d_bwd(const CausalBackwardArgs<T>& a, const CudaLaunch& launch) {
  causal_backward(a.params, a.x, a.weight, a.bias, a.seq_idx, a.init, a.grad_out, a.grad_final, a.dx,
                  a.dweight, a.dbias, a.dinit, a.workspace, launch.stream);
}

template <typename T>
size_t OpKernels<T>::causal_conv1d_update_workspace_bytes(const CausalUpdateArgs<T>&) {
  return 0;
}

template <typename T>
void OpKernels<T>::causal_conv1d_update(const CausalUpdateArgs<T>& a, const CudaLaunch& launch) {
  causal_update(a.params, a.x, a.state, a.weight, a.bias, a.cache_seqlens, a.state_indices, a.out,
                launch.stream);
}

// Every entry point, for every dtype (explicit instantiation of the class instantiates them all).
#define C1D_INSTANTIATE(T) template struct OpKernels<T>;
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
