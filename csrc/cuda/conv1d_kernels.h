// Host entry points of the CUDA kernel families: one dispatch function per op, which picks the kernel
// for the problem (csrc/cuda/dispatch.cu). Plain C++ declarations, so both the tensor-level CUDA op
// implementation (conv1d_cuda.cpp, g++) and the emulated build (tests/cuda_emu/emu_ops.cpp, g++ with
// CONV1D_EXT_EMULATE) call the very same dispatch and kernels.
//
// Pointers are to contiguous tensors in the layouts of conv1d_params.h. `workspace` points to at least
// *_workspace_bytes(p) bytes of scratch memory allocated by the caller (PyTorch's caching allocator on
// CUDA), 256-byte aligned; it may be null when the size is 0. `stream` is the cudaStream_t to launch on
// (ignored under emulation). No function synchronises with the host.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(CONV1D_EXT_EMULATE)
// conv1d_params.h marks its helpers __host__ __device__, which only the emulator defines for g++.
#include "cuda_compat.cuh"
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "core/causal_params.h"
#include "core/conv1d_params.h"

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

size_t forward_workspace_bytes(const Conv1dParams& p, size_t elem_size);
size_t backward_input_workspace_bytes(const Conv1dParams& p, size_t elem_size);
size_t backward_weight_workspace_bytes(const Conv1dParams& p, size_t elem_size);
size_t backward_bias_workspace_bytes(int64_t batch, int64_t channels, int64_t len, size_t elem_size);

// output = conv(input, weight) + bias (bias may be null). allow_tf32: float32 may run on TF32 tensor
// cores (PyTorch's torch.backends.cudnn.allow_tf32, read by the caller on every call).
template <typename scalar_t>
void forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight, const scalar_t* bias,
             scalar_t* output, void* workspace, void* stream, bool allow_tf32);

// grad_input (batch, in_channels, in_len); every element is written (allow_tf32: as for forward)
template <typename scalar_t>
void backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                    scalar_t* grad_input, void* workspace, void* stream, bool allow_tf32);

// grad_weight (out_channels, in_per_group, kernel_size); deterministic (no float atomics)
template <typename scalar_t>
void backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                     scalar_t* grad_weight, void* workspace, void* stream, bool allow_tf32);

// grad_bias (channels) = sum of grad_output (batch, channels, len) over batch and len; deterministic
template <typename scalar_t>
void backward_bias(int64_t batch, int64_t channels, int64_t len, const scalar_t* grad_output,
                   scalar_t* grad_bias, void* workspace, void* stream);

// The causal ops (causal.cu; causal_params.h). x, out / dx, grad_out and the update's conv_state through
// their strides; bias, seq_idx, init, grad_final, cache_seqlens, state_indices may be null.
size_t causal_backward_workspace_bytes(const CausalParams& p, size_t elem_size);

template <typename scalar_t>
void causal_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    const int32_t* seq_idx, const scalar_t* init, scalar_t* out, scalar_t* final_states,
                    void* stream);

// dweight, dbias deterministic (no float atomics)
template <typename scalar_t>
void causal_backward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                     const int32_t* seq_idx, const scalar_t* init, const scalar_t* grad_out,
                     const scalar_t* grad_final, scalar_t* dx, scalar_t* dweight, scalar_t* dbias,
                     scalar_t* dinit, void* workspace, void* stream);

template <typename scalar_t>
void causal_update(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state, const scalar_t* weight,
                   const scalar_t* bias, const int32_t* cache_seqlens, const int32_t* state_indices,
                   scalar_t* out, void* stream);

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
