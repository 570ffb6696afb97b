// Launchers of the CUDA kernel families, called only from the per-op dispatch in dispatch.cu.
// Each family lives in its own .cu file and instantiates its launchers for the four dtypes there.
// Shared device code: kernel_utils.cuh (types, index helpers, backward phases), reductions.cuh,
// implicit_gemm.cuh (the GEMM tiles, loads, K loop, FMA core) and gemm_problems.cuh (the three GEMMs).
// Pointers of the conv1d families are to contiguous tensors in the layouts of core/conv1d_params.h; the
// causal family reads and writes x, out / dx, grad_out and the update's state through the strides of
// core/causal_params.h.
#pragma once

// First: under emulation it defines __host__/__device__, which conv1d_params.h uses.
#include "cuda_compat.cuh"

#include <cstddef>
#include <cstdint>

#include "conv1d_kernels.h"
#include "core/causal_params.h"
#include "core/conv1d_params.h"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// --- direct.cu: one thread per output element; any shape, no shared memory. Chosen by dispatch.cu only
// for geometry far beyond the tensors (geometry_is_compact); otherwise a simple reference the tests force.
template <typename T>
void direct_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                    Stream stream);
template <typename T>
void direct_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                           Stream stream);
template <typename T>
void direct_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                            Stream stream);

// --- dense.cu: implicit GEMM on FMA units, any groups.
template <typename T>
void dense_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                   Stream stream);
template <typename T>
void dense_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                          Stream stream);
// Split-K over batch x length (this family and the tensor-core one alike): `splits` partial sums into
// `workspace` (acc type), then a fixed-order reduction; with splits == 1 the GEMM writes grad_weight
// directly.
int64_t dense_backward_weight_splits(const Conv1dParams& p);
size_t dense_backward_weight_workspace_bytes(const Conv1dParams& p, size_t acc_size);
template <typename T>
void dense_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                           void* workspace, Stream stream);

// --- tensor_core.cu: the same three ops on tensor cores (mma.sync, sm_80+), for float32 (as TF32),
// float16 and bfloat16; the float64 instantiations raise (dispatch.cu never picks them).
// tensor_core_available(): the current device can run them.
bool tensor_core_available();
template <typename T>
void tensor_core_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                         Stream stream);
template <typename T>
void tensor_core_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                                Stream stream);
// Workspace: dense_backward_weight_workspace_bytes.
template <typename T>
void tensor_core_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                                 void* workspace, Stream stream);

// --- depthwise.cu: in_per_group == 1 (channel multiplier out_per_group allowed).
// *_supported says whether the tiled kernel can stage this shape in shared memory.
bool depthwise_forward_supported(const Conv1dParams& p, size_t elem_size);
bool depthwise_backward_input_supported(const Conv1dParams& p, size_t elem_size);
bool depthwise_backward_weight_supported(const Conv1dParams& p, size_t elem_size);
template <typename T>
void depthwise_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                       Stream stream);
template <typename T>
void depthwise_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                              Stream stream);
size_t depthwise_backward_weight_workspace_bytes(const Conv1dParams& p, size_t elem_size);
template <typename T>
void depthwise_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                               void* workspace, Stream stream);

// --- backward_bias.cu: deterministic two-pass reduction.
size_t bias_workspace_bytes(int64_t batch, int64_t channels, int64_t len, size_t acc_size);
template <typename T>
void bias_reduce(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                 void* workspace, Stream stream);

// --- causal.cu: the causal ops (causal_params.h; `stream` a cudaStream_t); bias, seq_idx, init, grad_final,
// cache_seqlens and state_indices may be null. dweight, dbias deterministic (no float atomics).
size_t causal_backward_workspace_bytes(const CausalParams& p, size_t elem_size);
template <typename T>
void causal_forward(const CausalParams& p, const T* x, const T* weight, const T* bias, const int32_t* seq_idx,
                    const T* init, T* out, T* final_states, void* stream);
template <typename T>
void causal_backward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                     const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final, T* dx,
                     T* dweight, T* dbias, T* dinit, void* workspace, void* stream);
template <typename T>
void causal_update(const CausalUpdateParams& p, const T* x, T* state, const T* weight, const T* bias,
                   const int32_t* cache_seqlens, const int32_t* state_indices, T* out, void* stream);

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
