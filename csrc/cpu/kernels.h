// CPU kernel entry points, compiled once per instruction set and chosen at run time.
//
// THE PER-ISA MECHANISM (every header included by the kernel translation units must follow it):
//   * Kernel code lives in headers, inside `namespace conv1d_ext::cpu::CPU_CAPABILITY { ... }`
//     (a plain namespace named by the macro, like at::vec's inline-namespace trick), and is templated
//     on scalar_t. Headers that hold kernels must not define anything outside that namespace.
//   * kernels_default.cpp and kernels_avx2.cpp each include isa_prelude.h FIRST (every non-kernel
//     header: ATen, c10, std, conv1d_params.h), then define CPU_CAPABILITY (DEFAULT / AVX2; the AVX2
//     file also CPU_CAPABILITY_AVX2 so at::vec picks its AVX2 Vectorized<>), then include
//     kernels_impl.h (which includes <ATen/cpu/vec/vec.h>, direct.h, depthwise.h, dense_*.h).
//   * kernels_avx2.cpp switches code generation to AVX2+FMA+F16C for everything after the prelude
//     with `#pragma GCC target("avx2,fma,f16c")`. Because the prelude's headers are already included
//     (include guards), no inline function outside the AVX2 namespaces gets AVX2 code, so the linker can
//     never pick an AVX2 copy of a shared inline function for the baseline path (no SIGILL on old CPUs).
//     GCC's pragma does not define __AVX2__ & co., which sleef.h (included by at::vec's AVX2 code) needs
//     for its declarations, so that file defines them itself after the pragma.
//     So: a kernel header may include <ATen/cpu/vec/vec.h> / functional.h and other kernel headers,
//     but any OTHER ATen/c10/std (or project) header it needs must be added to isa_prelude.h.
//     Enforced where the preprocessor can: isa_prelude.h defines C1D_ISA_PRELUDE_INCLUDED and
//     #errors if CPU_CAPABILITY is already defined; every kernel header #errors unless both the marker
//     and CPU_CAPABILITY are defined.
//   * Only GCC on x86-64 builds the AVX2 set (C1D_HAVE_AVX2_KERNELS); elsewhere only DEFAULT exists.
//   * kernels_avx512bf16.cpp is a third build, for bfloat16 only: the AVX2 build (same at::vec AVX2
//     Vectorized<>, same code) plus AVX-512F/BW/VL/BF16 code generation and C1D_AVX512_BF16, under which
//     the dense kernels multiply bfloat16 pairs with vdpbf16ps (dense_tiled.h). Chosen for bfloat16
//     when the CPU reports avx512bf16 (and avx512f/bw/vl); float, double and half keep the AVX2 build.
//   * conv1d_cpu.cpp dispatches the dtype (one place), then calls DEFAULT:: or AVX2:: entry points below.
//     Which set runs is chosen once, when the library loads (cpu_isa(): __builtin_cpu_supports
//     avx2+fma+f16c; CONV1D_EXT_CPU_ISA=default, read then, forces the baseline).
//   * Each entry point below is the ONE dispatch point of its op (kernels_impl.h): depthwise kernels
//     (forward: only for the channel multipliers the shared policy in conv1d_params.h keeps there),
//     dense_tiled_* when dense_tiled_supports(p), else the generic direct kernels.
//     CONV1D_EXT_CPU_KERNELS=direct (also read once, when the library loads) sends every problem to the
//     generic direct kernels (so tests can compare that fallback with PyTorch too; otherwise it only
//     runs for in_channels == 0).
// All pointers are to contiguous tensors laid out as described in conv1d_params.h.
#pragma once

#include "core/causal_params.h"
#include "core/conv1d_params.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define C1D_HAVE_AVX2_KERNELS 1
// The AVX512-BF16 build (bfloat16 only, kernels_avx512bf16.cpp) needs GCC 10's _mm512_dpbf16_ps.
#if __GNUC__ >= 10
#define C1D_HAVE_AVX512BF16_KERNELS 1
#endif
#endif

#define C1D_DECLARE_CPU_KERNELS(ISA)                                                                     \
  namespace ISA {                                                                                        \
  template <typename scalar_t>                                                                           \
  void conv1d_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,              \
                      const scalar_t* bias, scalar_t* output);                                           \
  template <typename scalar_t>                                                                           \
  void conv1d_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight, \
                             scalar_t* grad_input);                                                      \
  template <typename scalar_t>                                                                           \
  void conv1d_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input, \
                              scalar_t* grad_weight);                                                    \
  /* grad_bias[c] = sum over batch and positions of grad_output (batch, channels, len) */                \
  template <typename scalar_t>                                                                           \
  void conv1d_backward_bias(int64_t batch, int64_t channels, int64_t len, const scalar_t* grad_output,   \
                            scalar_t* grad_bias);                                                        \
  /* the three gradients in one call; a null output is not computed */                                   \
  template <typename scalar_t>                                                                           \
  void conv1d_backward(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,        \
                       const scalar_t* weight, scalar_t* grad_input, scalar_t* grad_weight,              \
                       scalar_t* grad_bias);                                                             \
  /* causal ops (causal_params.h); seq_idx, init, bias, grad_final may be null */                        \
  template <typename scalar_t>                                                                           \
  void causal_conv1d_forward(const CausalParams& p, const scalar_t* x, const scalar_t* weight,           \
                             const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,         \
                             scalar_t* out, scalar_t* final_states);                                     \
  template <typename scalar_t>                                                                           \
  void causal_conv1d_backward(const CausalParams& p, const scalar_t* x, const scalar_t* weight,          \
                              const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,        \
                              const scalar_t* grad_out, const scalar_t* grad_final, scalar_t* dx,        \
                              scalar_t* dweight, scalar_t* dbias, scalar_t* dinit);                      \
  template <typename scalar_t>                                                                           \
  void causal_conv1d_update(const CausalUpdateParams& p, const scalar_t* x, scalar_t* state,             \
                            const scalar_t* weight, const scalar_t* bias, const int32_t* cache_seqlens,  \
                            const int32_t* state_indices, scalar_t* out);                                \
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
