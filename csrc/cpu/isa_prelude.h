// Every header the per-ISA kernel files need that is NOT kernel code: included first by each of
// kernels_default.cpp, kernels_avx2.cpp and kernels_avx512bf16.cpp, before CPU_CAPABILITY and the
// code-generation pragma of the AVX builds, so these inline functions are compiled for the baseline ISA
// only (see kernels.h).
#pragma once

#ifdef CPU_CAPABILITY
#error "cpu/isa_prelude.h must be included before CPU_CAPABILITY is defined (see cpu/kernels.h)"
#endif
// Every kernel header #errors without this marker (and without CPU_CAPABILITY), so none can be
// included ahead of the prelude.
#define C1D_ISA_PRELUDE_INCLUDED 1

#include <algorithm>
#include <array>
#include <cassert>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <tuple>
#include <type_traits>
#include <vector>

#include <ATen/NumericUtils.h>
#include <ATen/cpu/vec/intrinsics.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/native/Math.h>
#include <ATen/native/cpu/zmath.h>
#include <ATen/native/quantized/AffineQuantizerBase.h>
#include <c10/macros/Macros.h>
#include <c10/util/BFloat16-math.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <c10/util/Load.h>
#include <c10/util/MathConstants.h>
#include <c10/util/TypeCast.h>
#include <c10/util/complex.h>
#include <c10/util/copysign.h>
#include <c10/util/irange.h>
#include <c10/util/qint32.h>
#include <c10/util/qint8.h>
#include <c10/util/quint8.h>
#include <c10/util/SmallVector.h>

#include "core/causal_params.h"
#include "core/conv1d_params.h"
#include "core/op_args.h"
#include "core/op_list.h"
#include "cpu/kernels.h"
