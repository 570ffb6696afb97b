// The conv1d_ext op library and the Python module that loads it. Schemas: op_list.h (defined by
// registration.h's define_ops); kernels are registered per backend by register_kernels and
// register_causal_kernels (cpu/conv1d_cpu.cpp, cuda/conv1d_cuda.cpp); fake kernels and autograd in Python
// (conv1d_ext/).
#include <Python.h>
#include <torch/library.h>

#include "core/registration.h"

TORCH_LIBRARY(conv1d_ext, m) { conv1d_ext::define_ops(m); }

// Importing conv1d_ext._C loads this library (and with it the registrations above).
PyMODINIT_FUNC PyInit__C(void) {  // PyMODINIT_FUNC: exported despite -fvisibility=hidden
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
