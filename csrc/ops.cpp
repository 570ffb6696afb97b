// Op schemas of the conv1d_ext namespace and the Python module that loads them.
// Kernels are registered per backend: csrc/cpu/conv1d_cpu.cpp (CPU), csrc/cuda/conv1d_cuda.cpp (CUDA).
// Fake (meta) kernels and autograd are registered in Python (conv1d_ext/_ops.py).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(conv1d_ext, m) {
  // output (N, C_out, L_out) = conv(input (N, C_in, L_in), weight (C_out, C_in/groups, K)) + bias
  m.def("conv1d(Tensor input, Tensor weight, Tensor? bias, int stride, int pad_left, int pad_right, "
        "int dilation, int groups) -> Tensor");
  // grad_input (N, C_in, input_len) from grad_output (N, C_out, L_out) and weight
  m.def("conv1d_backward_input(Tensor grad_output, Tensor weight, SymInt input_len, int stride, "
        "int pad_left, int pad_right, int dilation, int groups) -> Tensor");
  // grad_weight (C_out, C_in/groups, kernel_size) from grad_output and input
  m.def("conv1d_backward_weight(Tensor grad_output, Tensor input, int kernel_size, int stride, "
        "int pad_left, int pad_right, int dilation, int groups) -> Tensor");
  // grad_bias (C_out) = grad_output summed over batch and length
  m.def("conv1d_backward_bias(Tensor grad_output) -> Tensor");
}

// Importing conv1d_ext._C loads this library (and with it the registrations above).
PyMODINIT_FUNC PyInit__C(void) {  // PyMODINIT_FUNC: exported despite -fvisibility=hidden
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
