// Registration of the ops of op_list.h: their schemas, and a backend's kernels through the op layer.
// The real library defines the schemas under `conv1d_ext` (ops.cpp) and registers each backend's kernels
// (cpu/conv1d_cpu.cpp, cuda/conv1d_cuda.cpp); the test libraries (the emulated CUDA of
// tests/cuda_emu/emu_ops.cpp, the CPU fault builds of tests/cpu_faults/ops.cpp) define the same ops under
// a namespace of their own (TestOpLibrary). Fake kernels and autograd: conv1d_ext/ (Python).
#pragma once

#include <cstdint>
#include <optional>

#include <c10/core/DispatchKey.h>
#include <torch/library.h>

#include "core/op_layer.h"
#include "core/op_list.h"

namespace conv1d_ext {

// Defines the schema of every op of op_list.h in `lib` (a TORCH_LIBRARY block, or a torch::Library of
// kind DEF).
inline void define_ops(torch::Library& lib) {
#define C1D_DEFINE_OP(name, Args, signature) lib.def(#name signature);
  C1D_FOR_EACH_OP(C1D_DEFINE_OP)
#undef C1D_DEFINE_OP
}

#define C1D_REGISTER_OP(name, Args, signature) lib.impl(#name, &OpLayer<Backend>::name);

// Registers Backend's kernels of the conv1d ops in `lib` (a TORCH_LIBRARY_IMPL block, or a torch::Library
// of kind IMPL).
template <class Backend>
void register_kernels(torch::Library& lib) {
  C1D_CONV1D_OPS(C1D_REGISTER_OP)
}

// Registers Backend's kernels of the causal ops (a backend without causal kernels registers none, so
// calling them there is the dispatcher's clear "no kernel for this backend" error).
template <class Backend>
void register_causal_kernels(torch::Library& lib) {
  C1D_CAUSAL_OPS(C1D_REGISTER_OP)
}

#undef C1D_REGISTER_OP

// TORCH_LIBRARY / TORCH_LIBRARY_IMPL(ns, CPU) spelled out, so that the namespace can come from another
// translation unit: a test library's fault builds then share every object but the one naming the
// namespace. The schemas are defined; the caller registers kernels in `impls` (and may def more in `defs`).
struct TestOpLibrary {
  torch::Library defs;
  torch::Library impls;
  TestOpLibrary(const char* ns, const char* file, uint32_t line)
      : defs(torch::Library::DEF, ns, std::nullopt, file, line),
        impls(torch::Library::IMPL, ns, c10::DispatchKey::CPU, file, line) {
    define_ops(defs);
  }
};

}  // namespace conv1d_ext
