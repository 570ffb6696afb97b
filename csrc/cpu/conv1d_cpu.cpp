// The CPU kernels of the conv1d_ext ops, registered through the shared op layer (op_layer.h: checks,
// outputs, the one dtype dispatch), and the choice of instruction set (kernels.h). The choice of kernel
// family happens once per op inside the per-ISA entry points (kernels_impl.h).
#include <cctype>
#include <cstdlib>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/kernels.h"
#include "op_layer.h"

namespace conv1d_ext {

bool cpu::force_direct_kernels() {
  const char* env = std::getenv("CONV1D_EXT_CPU_KERNELS");
  return env != nullptr && std::string(env) == "direct";
}

namespace {

// AVX2 kernels when the CPU has AVX2, FMA and F16C; CONV1D_EXT_CPU_ISA=default forces the portable
// baseline (=avx2 insists on AVX2). Read on every call so a test can switch paths within one process.
bool use_avx2_kernels() {
#ifdef C1D_HAVE_AVX2_KERNELS
  static const bool cpu_has_avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  }();
  constexpr bool built_with_avx2 = true;
#else
  constexpr bool cpu_has_avx2 = false;
  constexpr bool built_with_avx2 = false;
#endif
  const char* env = std::getenv("CONV1D_EXT_CPU_ISA");
  std::string choice = env ? env : "";
  for (char& c : choice) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (choice.empty() || choice == "auto") return cpu_has_avx2;
  if (choice == "default") return false;
  TORCH_CHECK(choice == "avx2", "CONV1D_EXT_CPU_ISA must be 'auto', 'default' or 'avx2', got '", env, "'");
  TORCH_CHECK(built_with_avx2, "CONV1D_EXT_CPU_ISA=avx2, but this build has no AVX2 kernels");
  TORCH_CHECK(cpu_has_avx2, "CONV1D_EXT_CPU_ISA=avx2, but this CPU lacks AVX2/FMA/F16C");
  return true;
}

// The instruction set the next CPU op call will run: "avx2" or "default".
std::string cpu_isa() { return use_avx2_kernels() ? "avx2" : "default"; }

// The CPU kernel families the next call may run: "direct" (CONV1D_EXT_CPU_KERNELS=direct) or "auto".
std::string cpu_kernels() { return cpu::force_direct_kernels() ? "direct" : "auto"; }

// The kernel entry points of the chosen instruction set, for one dtype.
template <typename scalar_t>
struct CpuKernels {
  decltype(&cpu::DEFAULT::conv1d_forward<scalar_t>) forward;
  decltype(&cpu::DEFAULT::conv1d_backward_input<scalar_t>) backward_input;
  decltype(&cpu::DEFAULT::conv1d_backward_weight<scalar_t>) backward_weight;
  decltype(&cpu::DEFAULT::conv1d_backward_bias<scalar_t>) backward_bias;
};

template <typename scalar_t>
CpuKernels<scalar_t> kernels_for_this_cpu() {
#ifdef C1D_HAVE_AVX2_KERNELS
  if (use_avx2_kernels()) {
    return {&cpu::AVX2::conv1d_forward<scalar_t>, &cpu::AVX2::conv1d_backward_input<scalar_t>,
            &cpu::AVX2::conv1d_backward_weight<scalar_t>, &cpu::AVX2::conv1d_backward_bias<scalar_t>};
  }
#endif
  return {&cpu::DEFAULT::conv1d_forward<scalar_t>, &cpu::DEFAULT::conv1d_backward_input<scalar_t>,
          &cpu::DEFAULT::conv1d_backward_weight<scalar_t>, &cpu::DEFAULT::conv1d_backward_bias<scalar_t>};
}

// The CPU kernels as an op_layer.h backend: no device, no workspace (the kernels keep per-thread
// scratch of their own), and the instruction set chosen per call of kernels_for_this_cpu().
struct CpuBackend {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static Workspace workspace(size_t, const at::Tensor&) { return {}; }
  static size_t forward_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_input_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_weight_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_bias_workspace_bytes(int64_t, int64_t, int64_t, size_t) { return 0; }

  template <typename T>
  static void forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output, void*) {
    kernels_for_this_cpu<T>().forward(p, input, weight, bias, output);
  }
  template <typename T>
  static void backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                             void*) {
    kernels_for_this_cpu<T>().backward_input(p, grad_output, weight, grad_input);
  }
  template <typename T>
  static void backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                              void*) {
    kernels_for_this_cpu<T>().backward_weight(p, grad_output, input, grad_weight);
  }
  template <typename T>
  static void backward_bias(int64_t batch, int64_t channels, int64_t len, const T* grad_output, T* grad_bias,
                            void*) {
    kernels_for_this_cpu<T>().backward_bias(batch, channels, len, grad_output, grad_bias);
  }
};

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_FRAGMENT(conv1d_ext, m) {
  // Which CPU kernel build the next call runs ("avx2" or "default"), for tests, benchmarks and the README.
  m.def("cpu_isa() -> str", &conv1d_ext::cpu_isa);
  // The test switches in effect: the CPU kernel families ("auto" or "direct", CONV1D_EXT_CPU_KERNELS) and
  // whether op outputs start NaN-filled (CONV1D_EXT_POISON_OUTPUTS, read once: op_common.h).
  m.def("cpu_kernels() -> str", &conv1d_ext::cpu_kernels);
  m.def("poison_outputs() -> bool", &conv1d_ext::poison_outputs);
}

TORCH_LIBRARY_IMPL(conv1d_ext, CPU, m) { conv1d_ext::register_kernels<conv1d_ext::CpuBackend>(m); }
