// The list of the conv1d_ext ops, once: X(name, Args, signature) per op, from which follow
//   the schemas                     define_ops (registration.h): name + signature
//   the registration                register_kernels / register_causal_kernels (registration.h):
//                                   OpLayer<Backend>::name (op_layer.h) for every op of its list
//   the CPU entry points            cpu::ISA::OpKernels<T>::name(const Args<T>&) (cpu/kernels.h), their
//                                   table CpuKernels<T> and the CpuBackend forwarders (cpu/cpu_backend.h)
//   the CUDA entry points           cuda::OpKernels<T>::name and name##_workspace_bytes
//                                   (cuda/conv1d_kernels.h) and CudaKernelBackend (cuda/kernel_backend.h)
// `Args` is the op's argument struct (op_args.h). Adding an op: a line here and its Args, its function
// in OpLayer (the host steps), its kernel entry point in each backend (cpu/kernels_impl.h,
// cuda/dispatch.cu) and its fake kernel and autograd in Python (conv1d_ext/).
//
// Two lists, because a backend may register the conv1d ops without the causal ones (the CPU fault builds
// of the tests, tests/cpu_faults/ops.cpp).
#pragma once

// The conv1d ops (op_common.h checks them).
#define C1D_CONV1D_OPS(X)                                                                                \
  /* output (N, C_out, L_out) = conv(input (N, C_in, L_in), weight (C_out, C_in/groups, K)) + bias */    \
  X(conv1d, Conv1dForwardArgs,                                                                           \
    "(Tensor input, Tensor weight, Tensor? bias, int stride, int pad_left, int pad_right, "              \
    "int dilation, int groups) -> Tensor")                                                               \
  /* grad_input (N, C_in, input_len) from grad_output (N, C_out, L_out) and weight */                    \
  X(conv1d_backward_input, Conv1dBackwardInputArgs,                                                      \
    "(Tensor grad_output, Tensor weight, SymInt input_len, int stride, int pad_left, int pad_right, "    \
    "int dilation, int groups) -> Tensor")                                                               \
  /* grad_weight (C_out, C_in/groups, kernel_size) from grad_output and input */                         \
  X(conv1d_backward_weight, Conv1dBackwardWeightArgs,                                                    \
    "(Tensor grad_output, Tensor input, int kernel_size, int stride, int pad_left, int pad_right, "      \
    "int dilation, int groups) -> Tensor")                                                               \
  /* grad_bias (C_out) = grad_output summed over batch and length */                                     \
  X(conv1d_backward_bias, Conv1dBackwardBiasArgs, "(Tensor grad_output) -> Tensor")                      \
  /* the three gradients of conv1d in one call, (grad_input, grad_weight, grad_bias), each computed only \
     where output_mask says so and otherwise an empty tensor of size (0,); like                          \
     aten::convolution_backward, but with the forward's input and weight, and the problem described by   \
     them */                                                                                             \
  X(conv1d_backward, Conv1dBackwardArgs,                                                                 \
    "(Tensor grad_output, Tensor input, Tensor weight, int stride, int pad_left, int pad_right, "        \
    "int dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)")

// The causal ops (causal_checks.h): causal (depthwise, left-padded) convolution, conv1d_ext/causal.py.
#define C1D_CAUSAL_OPS(X)                                                                                \
  /* out (batch, dim, seqlen) in x's layout (contiguous or channels-last) and final_states               \
     (batch, dim, (width - 1) * dilation) from x (batch, dim, seqlen), weight (dim, width); seq_idx      \
     int32 (batch, seqlen); silu fused */                                                                \
  X(causal_conv1d_fwd, CausalForwardArgs,                                                                \
    "(Tensor x, Tensor weight, Tensor? bias, Tensor? seq_idx, Tensor? initial_states, int dilation, "    \
    "bool silu) -> (Tensor out, Tensor final_states)")                                                   \
  /* its backward in one pass: (dx, dweight, dbias, dinitial_states) */                                  \
  X(causal_conv1d_bwd, CausalBackwardArgs,                                                               \
    "(Tensor x, Tensor weight, Tensor? bias, Tensor? seq_idx, Tensor? initial_states, Tensor grad_out, " \
    "Tensor? grad_final_states, int dilation, bool silu) -> "                                            \
    "(Tensor dx, Tensor dweight, Tensor dbias, Tensor dinitial_states)")                                 \
  /* the decode step: out (batch, dim, seqlen); conv_state (num_states, dim, state_len) updated in       \
     place */                                                                                            \
  X(causal_conv1d_update, CausalUpdateArgs,                                                              \
    "(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias, Tensor? cache_seqlens, "             \
    "Tensor? conv_state_indices, bool silu) -> Tensor")

// Every op.
#define C1D_FOR_EACH_OP(X) C1D_CONV1D_OPS(X) C1D_CAUSAL_OPS(X)
