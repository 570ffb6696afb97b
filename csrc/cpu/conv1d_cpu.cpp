// The CPU kernels of the conv1d_ext ops, registered through the shared op layer (op_layer.h: checks,
// outputs, the one dtype dispatch), and the choice of instruction set (kernels.h; made once per process,
// when the library loads). The choice of kernel family happens once per op call inside the per-ISA entry
// points (kernels_impl.h).
#include <cctype>
#include <cstdlib>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/kernels.h"
#include "op_layer.h"

namespace conv1d_ext {

namespace {

// The CPU kernel path of this process: chosen once, when the library loads (chosen_at_load below),
// from the CPU's features and the environment, which is read then and never again.
struct CpuPath {
  bool avx2 = false;          // AVX2 kernels, else the portable baseline
  bool force_direct = false;  // CONV1D_EXT_CPU_KERNELS=direct
  std::string error;          // CONV1D_EXT_CPU_ISA asks for what cannot run here; reported by each op
};

// AVX2 kernels when the CPU has AVX2, FMA and F16C; CONV1D_EXT_CPU_ISA=default forces the portable
// baseline (=avx2 insists on AVX2). An invalid setting is stored, not thrown: an exception while the
// library loads would abort the process instead of failing the call.
CpuPath choose_cpu_path() {
  CpuPath path;
  const char* kernels = std::getenv("CONV1D_EXT_CPU_KERNELS");
  path.force_direct = kernels != nullptr && std::string(kernels) == "direct";
#ifdef C1D_HAVE_AVX2_KERNELS
  __builtin_cpu_init();
  const bool cpu_has_avx2 =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  constexpr bool built_with_avx2 = true;
#else
  constexpr bool cpu_has_avx2 = false;
  constexpr bool built_with_avx2 = false;
#endif
  const char* env = std::getenv("CONV1D_EXT_CPU_ISA");
  std::string choice = env ? env : "";
  for (char& c : choice) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (choice.empty() || choice == "auto") {
    path.avx2 = cpu_has_avx2;
  } else if (choice == "default") {
    path.avx2 = false;
  } else if (choice != "avx2") {
    path.error = "CONV1D_EXT_CPU_ISA must be 'auto', 'default' or 'avx2', got '" + std::string(env) + "'";
  } else if (!built_with_avx2) {
    path.error = "CONV1D_EXT_CPU_ISA=avx2, but this build has no AVX2 kernels";
  } else if (!cpu_has_avx2) {
    path.error = "CONV1D_EXT_CPU_ISA=avx2, but this CPU lacks AVX2/FMA/F16C";
  } else {
    path.avx2 = true;
  }
  return path;
}

const CpuPath& cpu_path() {
  static const CpuPath path = choose_cpu_path();
  return path;
}
[[maybe_unused]] const CpuPath& chosen_at_load = cpu_path();

bool use_avx2_kernels() {
  TORCH_CHECK(cpu_path().error.empty(), cpu_path().error);
  return cpu_path().avx2;
}

// The instruction set every CPU op call runs: "avx2" or "default".
std::string cpu_isa() { return use_avx2_kernels() ? "avx2" : "default"; }

}  // namespace

bool cpu::force_direct_kernels() { return cpu_path().force_direct; }

namespace {

// The CPU kernel families every call may run: "direct" (CONV1D_EXT_CPU_KERNELS=direct) or "auto".
std::string cpu_kernels() { return cpu::force_direct_kernels() ? "direct" : "auto"; }

// The kernel entry points of the chosen instruction set, for one dtype.
template <typename scalar_t>
struct CpuKernels {
  decltype(&cpu::DEFAULT::conv1d_forward<scalar_t>) forward;
  decltype(&cpu::DEFAULT::conv1d_backward_input<scalar_t>) backward_input;
  decltype(&cpu::DEFAULT::conv1d_backward_weight<scalar_t>) backward_weight;
  decltype(&cpu::DEFAULT::conv1d_backward_bias<scalar_t>) backward_bias;
  decltype(&cpu::DEFAULT::causal_conv1d_forward<scalar_t>) causal_forward;
  decltype(&cpu::DEFAULT::causal_conv1d_backward<scalar_t>) causal_backward;
  decltype(&cpu::DEFAULT::causal_conv1d_update<scalar_t>) causal_update;
};

template <typename scalar_t>
CpuKernels<scalar_t> kernels_for_this_cpu() {
#ifdef C1D_HAVE_AVX2_KERNELS
  if (use_avx2_kernels()) {
    return {&cpu::AVX2::conv1d_forward<scalar_t>,         &cpu::AVX2::conv1d_backward_input<scalar_t>,
            &cpu::AVX2::conv1d_backward_weight<scalar_t>, &cpu::AVX2::conv1d_backward_bias<scalar_t>,
            &cpu::AVX2::causal_conv1d_forward<scalar_t>,  &cpu::AVX2::causal_conv1d_backward<scalar_t>,
            &cpu::AVX2::causal_conv1d_update<scalar_t>};
  }
#endif
  return {&cpu::DEFAULT::conv1d_forward<scalar_t>,         &cpu::DEFAULT::conv1d_backward_input<scalar_t>,
          &cpu::DEFAULT::conv1d_backward_weight<scalar_t>, &cpu::DEFAULT::conv1d_backward_bias<scalar_t>,
          &cpu::DEFAULT::causal_conv1d_forward<scalar_t>,  &cpu::DEFAULT::causal_conv1d_backward<scalar_t>,
          &cpu::DEFAULT::causal_conv1d_update<scalar_t>};
}

// The CPU kernels as an op_layer.h backend: no device, no workspace (the kernels keep per-thread
// scratch of their own), and the instruction set chosen when the library loaded.
struct CpuBackend {
  static NoGuard guard(const at::Tensor&) { return {}; }
  static Workspace workspace(size_t, const at::Tensor&) { return {}; }
  static size_t forward_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_input_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_weight_workspace_bytes(const Conv1dParams&, size_t) { return 0; }
  static size_t backward_bias_workspace_bytes(int64_t, int64_t, int64_t, size_t) { return 0; }

  template <typename T>
  static void forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                      void*) {
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
  static size_t causal_backward_workspace_bytes(const CausalParams&, size_t) { return 0; }
  template <typename T>
  static void causal_forward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                             const int32_t* seq_idx, const T* init, T* out, T* final_states) {
    kernels_for_this_cpu<T>().causal_forward(p, x, weight, bias, seq_idx, init, out, final_states);
  }
  template <typename T>
  static void causal_backward(const CausalParams& p, const T* x, const T* weight, const T* bias,
                              const int32_t* seq_idx, const T* init, const T* grad_out, const T* grad_final,
                              T* dx, T* dweight, T* dbias, T* dinit, void*) {
    kernels_for_this_cpu<T>().causal_backward(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx,
                                              dweight, dbias, dinit);
  }
  template <typename T>
  static void causal_update(const CausalUpdateParams& p, const T* x, T* state, const T* weight, const T* bias,
                            const int32_t* cache_seqlens, const int32_t* state_indices, T* out) {
    kernels_for_this_cpu<T>().causal_update(p, x, state, weight, bias, cache_seqlens, state_indices, out);
  }
};

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_FRAGMENT(conv1d_ext, m) {
  // Which CPU kernel build this process runs ("avx2" or "default"), for tests, benchmarks and the README.
  m.def("cpu_isa() -> str", &conv1d_ext::cpu_isa);
  // The test switches in effect: the CPU kernel families ("auto" or "direct", CONV1D_EXT_CPU_KERNELS) and
  // whether op outputs start NaN-filled (CONV1D_EXT_POISON_OUTPUTS, read once: op_common.h).
  m.def("cpu_kernels() -> str", &conv1d_ext::cpu_kernels);
  m.def("poison_outputs() -> bool", &conv1d_ext::poison_outputs);
}

TORCH_LIBRARY_IMPL(conv1d_ext, CPU, m) {
  conv1d_ext::register_kernels<conv1d_ext::CpuBackend>(m);
  conv1d_ext::register_causal_kernels<conv1d_ext::CpuBackend>(m);
}
