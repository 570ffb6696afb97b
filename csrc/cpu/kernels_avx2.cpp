// The AVX2 + FMA + F16C build of the CPU kernels (see kernels.h for the per-ISA mechanism).
// Only called when the CPU reports those features (conv1d_cpu.cpp).
#include "cpu/isa_prelude.h"

#ifdef C1D_HAVE_AVX2_KERNELS

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
// at::vec's 16-bit operators pass __m256 lambdas whose (unused) function-pointer thunks GCC compiles
// without AVX and warns about; those thunks live in at::vec::AVX2 and are never called.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC's target pragma changes code generation but not the feature macros; at::vec's AVX2 code
// includes sleef.h, which declares its AVX2 functions only under them.
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif

#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "cpu/kernels_impl.h"

C1D_INSTANTIATE_CPU_KERNELS()

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // C1D_HAVE_AVX2_KERNELS
