// CPU kernel entry points, compiled once per instruction set and chosen at run time.
//
// THE PER-ISA MECHANISM (every header included by the kernel translation units must follow it):
//   * Three builds of the same kernel headers, one translation unit each:
//       kernels_default.cpp     DEFAULT      the portable baseline, every dtype;
//       kernels_avx2.cpp        AVX2         AVX2 + FMA + F16C code generation, every dtype;
//       kernels_avx512bf16.cpp  AVX512BF16   bfloat16 only: the AVX2 build's code (same at::vec AVX2
//                                            Vectorized<>) with AVX-512 F/BW/VL/DQ/BF16 code generation
//                                            and C1D_AVX512_BF16, under which the dense kernels multiply
//                                            bfloat16 pairs with vdpbf16ps (dense/paired_bf16.h).
//     Only GCC on x86-64 builds AVX2 (C1D_HAVE_AVX2_KERNELS), and GCC 10 or later AVX512BF16
//     (C1D_HAVE_AVX512BF16_KERNELS); elsewhere only DEFAULT exists.
//   * Kernel code lives in headers, inside `namespace conv1d_ext::cpu::CPU_CAPABILITY { ... }` (a plain
//     namespace named by the macro, like at::vec's inline-namespace trick), and is templated on the
//     element type. Headers that hold kernels must not define anything outside that namespace.
//   * Each per-ISA file includes isa_prelude.h FIRST (every non-kernel header: ATen, c10, std, the core
//     params and argument structs), then switches code generation with `#pragma GCC target(...)` (not the
//     baseline), defines CPU_CAPABILITY (and CPU_CAPABILITY_AVX2 for at::vec's AVX2 Vectorized<> in both
//     AVX builds), then includes kernels_impl.h (which includes <ATen/cpu/vec/vec.h> and the family
//     headers). Because the prelude's headers are already included (include guards), no inline function
//     outside the ISA namespaces gets AVX code, so the linker can never pick an AVX copy of a shared
//     inline function for the baseline path (no SIGILL on old CPUs). GCC's pragma does not define
//     __AVX2__ & co., which sleef.h (included by at::vec's AVX2 code) needs for its declarations:
//     avx2_feature_macros.h defines them after the pragma.
//     So: a kernel header may include <ATen/cpu/vec/vec.h> / functional.h and other kernel headers, but
//     any OTHER ATen/c10/std (or project) header it needs must be added to isa_prelude.h. Enforced where
//     the preprocessor can: isa_prelude.h defines C1D_ISA_PRELUDE_INCLUDED and #errors if CPU_CAPABILITY
//     is already defined; every kernel header first includes kernel_header_check.h, which #errors unless
//     both the marker and CPU_CAPABILITY are defined.
//   * Which build runs is chosen once, when the library loads (conv1d_cpu.cpp: __builtin_cpu_supports;
//     CONV1D_EXT_CPU_ISA=default|avx2|avx512bf16, read then, forces one). The op layer dispatches the
//     dtype (one place, core/op_layer.h), then CpuBackend (cpu_backend.h) calls the chosen build's entry
//     point through a table of them (CpuKernels).
//   * The entry points: cpu::ISA::OpKernels<T>::NAME(const Args<T>&), one per op of core/op_list.h, named
//     like the op and taking its argument struct (core/op_args.h). Each is the ONE dispatch point of its
//     op (kernels_impl.h), which picks the kernel family and unpacks the struct for it.
//     CONV1D_EXT_CPU_KERNELS=direct (also read once, when the library loads) sends every conv1d problem to
//     the generic direct kernels (so tests can compare that fallback with PyTorch too).
#pragma once

#include "core/op_args.h"
#include "core/op_list.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define C1D_HAVE_AVX2_KERNELS 1
// The AVX512-BF16 build (bfloat16 only, kernels_avx512bf16.cpp) needs GCC 10's _mm512_dpbf16_ps.
#if __GNUC__ >= 10
#define C1D_HAVE_AVX512BF16_KERNELS 1
#endif
#endif

#define C1D_DECLARE_CPU_KERNEL(name, Args, signature) static void name(const Args<T>& args);

// The entry points of instruction set ISA: OpKernels<T>, defined in kernels_impl.h and instantiated by
// the ISA's kernels_*.cpp.
#define C1D_DECLARE_CPU_KERNELS(ISA)        \
  namespace ISA {                           \
  template <typename T>                     \
  struct OpKernels {                        \
    C1D_FOR_EACH_OP(C1D_DECLARE_CPU_KERNEL) \
  };                                        \
  }

namespace conv1d_ext {
namespace cpu {
// True when CONV1D_EXT_CPU_KERNELS=direct was set when the library loaded (defined in conv1d_cpu.cpp).
bool force_direct_kernels();

C1D_DECLARE_CPU_KERNELS(DEFAULT)
#ifdef C1D_HAVE_AVX2_KERNELS
C1D_DECLARE_CPU_KERNELS(AVX2)
#endif
#ifdef C1D_HAVE_AVX512BF16_KERNELS
C1D_DECLARE_CPU_KERNELS(AVX512BF16)  // instantiated for c10::BFloat16 only
#endif
}  // namespace cpu
}  // namespace conv1d_ext
