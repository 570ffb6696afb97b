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
};

inline void define_ops(torch::Library& lib) {
  for (const char* schema : kOpSchemas) lib.def(schema);
}

}  // namespace conv1d_ext
