// The AVX2 + FMA + F16C build of the CPU kernels, every dtype (see kernels.h for the per-ISA mechanism).
// Only called when the CPU reports those features (conv1d_cpu.cpp).
#include "cpu/isa_prelude.h"

#ifdef C1D_HAVE_AVX2_KERNELS

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
// at::vec's 16-bit operators pass __m256 lambdas whose (unused) function-pointer thunks GCC compiles
// without AVX and warns about; those thunks live in at::vec::AVX2 and are never called.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#include "cpu/avx2_feature_macros.h"

#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "cpu/kernels_impl.h"

C1D_INSTANTIATE_CPU_KERNELS()

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // C1D_HAVE_AVX2_KERNELS
