// The CPU kernels of the conv1d_ext ops, registered through the shared op layer (core/op_layer.h: checks,
// outputs, the one dtype dispatch; core/registration.h), and the choice of instruction set among the
// builds of kernels.h (DEFAULT, AVX2, and AVX512BF16 for bfloat16; made once per process, when the library
// loads). The choice of kernel family happens once per op call inside the per-ISA entry points
// (kernels_impl.h).
#include <cctype>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "core/registration.h"
#include "cpu/cpu_backend.h"

namespace conv1d_ext {

namespace {

// The CPU kernel path of this process: chosen once, when the library loads (chosen_at_load below),
// from the CPU's features and the environment, which is read then and never again.
struct CpuPath {
  bool avx2 = false;          // AVX2 kernels, else the portable baseline
  bool avx512bf16 = false;    // bfloat16 on the AVX512-BF16 build (implies avx2)
  bool force_direct = false;  // CONV1D_EXT_CPU_KERNELS=direct
  std::string error;          // CONV1D_EXT_CPU_ISA asks for what cannot run here; reported by each op
};

// AVX2 kernels when the CPU has AVX2, FMA and F16C, and for bfloat16 the AVX512-BF16 build when it also
// has AVX-512 F/BW/VL and BF16. CONV1D_EXT_CPU_ISA=default forces the portable baseline, =avx2 insists on
// AVX2 (and keeps bfloat16 there too), =avx512bf16 insists on the AVX512-BF16 build. An invalid setting is
// stored, not thrown: an exception while the library loads would abort the process instead of failing
// the call.
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
#ifdef C1D_HAVE_AVX512BF16_KERNELS
  const bool cpu_has_avx512bf16 = cpu_has_avx2 && __builtin_cpu_supports("avx512f") &&
                                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                  __builtin_cpu_supports("avx512bf16");
  constexpr bool built_with_avx512bf16 = true;
#else
  constexpr bool cpu_has_avx512bf16 = false;
  constexpr bool built_with_avx512bf16 = false;
#endif
  const char* env = std::getenv("CONV1D_EXT_CPU_ISA");
  std::string choice = env ? env : "";
  for (char& c : choice) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (choice.empty() || choice == "auto") {
    path.avx2 = cpu_has_avx2;
    path.avx512bf16 = cpu_has_avx512bf16;
  } else if (choice == "default") {
    path.avx2 = false;
  } else if (choice != "avx2" && choice != "avx512bf16") {
    path.error = "CONV1D_EXT_CPU_ISA must be 'auto', 'default', 'avx2' or 'avx512bf16', got '" +
                 std::string(env) + "'";
  } else if (!built_with_avx2 || (choice == "avx512bf16" && !built_with_avx512bf16)) {
    path.error = "CONV1D_EXT_CPU_ISA=" + choice + ", but this build has no such kernels";
  } else if (!cpu_has_avx2) {
    path.error = "CONV1D_EXT_CPU_ISA=" + choice + ", but this CPU lacks AVX2/FMA/F16C";
  } else if (choice == "avx512bf16" && !cpu_has_avx512bf16) {
    path.error = "CONV1D_EXT_CPU_ISA=avx512bf16, but this CPU lacks AVX-512 F/BW/VL/BF16";
  } else {
    path.avx2 = true;
    path.avx512bf16 = choice == "avx512bf16";
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

bool use_avx512bf16_kernels() { return use_avx2_kernels() && cpu_path().avx512bf16; }

// The instruction set the CPU op calls run: "avx512bf16" (bfloat16 on the AVX512-BF16 build, every other
// dtype on the AVX2 one), "avx2" or "default".
std::string cpu_isa() {
  return use_avx512bf16_kernels() ? "avx512bf16" : use_avx2_kernels() ? "avx2" : "default";
}

}  // namespace

bool cpu::force_direct_kernels() { return cpu_path().force_direct; }

namespace {

// The CPU kernel families every call may run: "direct" (CONV1D_EXT_CPU_KERNELS=direct) or "auto".
std::string cpu_kernels() { return cpu::force_direct_kernels() ? "direct" : "auto"; }

// The entry points of the instruction set chosen when the library loaded, for one dtype.
struct ChosenAtLoad {
  template <typename T>
  static CpuKernels<T> kernels() {
#ifdef C1D_HAVE_AVX512BF16_KERNELS
    if constexpr (std::is_same_v<T, c10::BFloat16>)
      if (use_avx512bf16_kernels()) return CpuKernels<T>::template of<cpu::AVX512BF16::OpKernels>();
#endif
#ifdef C1D_HAVE_AVX2_KERNELS
    if (use_avx2_kernels()) return CpuKernels<T>::template of<cpu::AVX2::OpKernels>();
#endif
    return CpuKernels<T>::template of<cpu::DEFAULT::OpKernels>();
  }
};

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_FRAGMENT(conv1d_ext, m) {
  // Which CPU kernel build this process runs ("avx512bf16", "avx2" or "default"), for tests, benchmarks and
  // build_info() (docs/cpu-kernels.md, ISA builds).
  m.def("cpu_isa() -> str", &conv1d_ext::cpu_isa);
  // The test switches in effect: the CPU kernel families ("auto" or "direct", CONV1D_EXT_CPU_KERNELS) and
  // whether op outputs start NaN-filled (CONV1D_EXT_POISON_OUTPUTS, read once: op_common.h).
  m.def("cpu_kernels() -> str", &conv1d_ext::cpu_kernels);
  m.def("poison_outputs() -> bool", &conv1d_ext::poison_outputs);
}

TORCH_LIBRARY_IMPL(conv1d_ext, CPU, m) {
  conv1d_ext::register_kernels<conv1d_ext::CpuBackend<conv1d_ext::ChosenAtLoad>>(m);
  conv1d_ext::register_causal_kernels<conv1d_ext::CpuBackend<conv1d_ext::ChosenAtLoad>>(m);
}
