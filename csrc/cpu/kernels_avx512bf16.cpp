// The AVX512-BF16 build of the CPU kernels, for bfloat16 only (see kernels.h for the per-ISA mechanism):
// the AVX2 build's code (at::vec's AVX2 Vectorized<>) compiled with AVX-512F/BW/VL/BF16 enabled, plus
// C1D_AVX512_BF16, which gives the dense kernels a micro-kernel that multiplies bfloat16 PAIRS with
// vdpbf16ps (dense/paired_bf16.h). Only called when the CPU reports those features (conv1d_cpu.cpp).
#include "cpu/isa_prelude.h"

#ifdef C1D_HAVE_AVX512BF16_KERNELS

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
// As in kernels_avx2.cpp: at::vec's unused 16-bit lambda thunks, and sleef's feature macros.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 reports its own avx512fintrin.h (_mm512_cvtepu16_epi32 starts from _mm512_undefined_epi32()).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "cpu/avx2_feature_macros.h"

#define CPU_CAPABILITY AVX512BF16
#define CPU_CAPABILITY_AVX2
#define C1D_AVX512_BF16 1
#include "cpu/kernels_impl.h"

C1D_INSTANTIATE_CPU_KERNELS_FOR(c10::BFloat16)

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // C1D_HAVE_AVX512BF16_KERNELS
