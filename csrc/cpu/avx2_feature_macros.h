// Included by the per-ISA files that compile at::vec's AVX2 code (kernels_avx2.cpp,
// kernels_avx512bf16.cpp) right after their `#pragma GCC target`: GCC's target pragma changes code
// generation but not the feature macros, and at::vec's AVX2 code includes sleef.h, which declares its AVX2
// functions only under them. No include guard: each file includes it once.
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
