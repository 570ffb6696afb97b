// The op contract: every schema of the conv1d_ext ops, in one list. The real library defines them under
// `conv1d_ext` (ops.cpp); the emulated-CUDA library of the tests defines the same list under a namespace
// of its own (tests/cuda_emu/emu_ops.cpp). Kernels: op_layer.h; fake kernels and autograd:
// conv1d_ext/_ops.py.
#pragma once

#include <torch/library.h>

namespace conv1d_ext {

inline constexpr const char* kOpSchemas[] = {
    // output (N, C_out, L_out) = conv(input (N, C_in, L_in), weight (C_out, C_in/groups, K)) + bias
    "conv1d(Tensor input, Tensor weight, Tensor? bias, int stride, int pad_left, int pad_right, "
    "int dilation, int groups) -> Tensor",
    // grad_input (N, C_in, input_len) from grad_output (N, C_out, L_out) and weight
    "conv1d_backward_input(Tensor grad_output, Tensor weight, SymInt input_len, int stride, "
    "int pad_left, int pad_right, int dilation, int groups) -> Tensor",
    // grad_weight (C_out, C_in/groups, kernel_size) from grad_output and input
    "conv1d_backward_weight(Tensor grad_output, Tensor input, int kernel_size, int stride, "
    "int pad_left, int pad_right, int dilation, int groups) -> Tensor",
    // grad_bias (C_out) = grad_output summed over batch and length
    "conv1d_backward_bias(Tensor grad_output) -> Tensor",
    // the three gradients of conv1d in one call, (grad_input, grad_weight, grad_bias), each computed only
    // where output_mask says so and otherwise an empty tensor of size (0,); like aten::convolution_backward,
    // but with the forward's input and weight, and the problem described by them
    "conv1d_backward(Tensor grad_output, Tensor input, Tensor weight, int stride, int pad_left, "
    "int pad_right, int dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)",
    // Causal (depthwise, left-padded) convolution, conv1d_ext/causal.py: out (batch, dim, seqlen) in x's
    // layout (contiguous or channels-last) and final_states (batch, dim, (width - 1) * dilation) from
    // x (batch, dim, seqlen), weight (dim, width); seq_idx int32 (batch, seqlen); silu fused
    "causal_conv1d_fwd(Tensor x, Tensor weight, Tensor? bias, Tensor? seq_idx, Tensor? initial_states, "
    "int dilation, bool silu) -> (Tensor out, Tensor final_states)",
    // its backward in one pass: (dx, dweight, dbias, dinitial_states)
    "causal_conv1d_bwd(Tensor x, Tensor weight, Tensor? bias, Tensor? seq_idx, Tensor? initial_states, "
    "Tensor grad_out, Tensor? grad_final_states, int dilation, bool silu) -> "
    "(Tensor dx, Tensor dweight, Tensor dbias, Tensor dinitial_states)",
    // the decode step: out (batch, dim, seqlen); conv_state (num_states, dim, state_len) updated in place
    "causal_conv1d_update(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias, "
    "Tensor? cache_seqlens, Tensor? conv_state_indices, bool silu) -> Tensor",
};

inline void define_ops(torch::Library& lib) {
  for (const char* schema : kOpSchemas) lib.def(schema);
}

}  // namespace conv1d_ext
