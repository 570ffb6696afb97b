// The one helper layer of the CPU kernel families (direct.h, depthwise.h, dense_tiled.h and dense/,
// causal.h and causal/): the accumulation type, ceil_div / round_up, the conversions between storage and
// accumulation type (store_acc is the one vectorised float -> 16-bit rounding; single values use c10's
// static_cast, which rounds the same way), streaming stores, tap bounds, per-thread scratch, the
// deterministic lane and row sums, the fixed-count dispatcher, the parallel grain.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// 16-bit types load into float registers and accumulate there; float and double accumulate in themselves.
template <typename scalar_t>
using acc_t = at::opmath_type<scalar_t>;
template <typename scalar_t>
using AccVec = at::vec::Vectorized<acc_t<scalar_t>>;

// ceil(a / b) for b > 0 and any sign of a; no intermediate exceeds a or b (b may be near 2^63).
inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? a / b + (a % b != 0) : -((-a) / b); }
// The smallest multiple of b (> 0) that is >= a.
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

template <typename scalar_t>
inline AccVec<scalar_t> load_acc(const scalar_t* p) {
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    AccVec<scalar_t> v;
    at::vec::load_fp32_from_bf16(p, v);
    return v;
  } else if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    AccVec<scalar_t> v;
    at::vec::load_fp32_from_fp16(p, v);
    return v;
  } else {
    return AccVec<scalar_t>::loadu(p);
  }
}

// Stores one vector of the accumulation type as scalar_t (16-bit types: round to nearest even, NaN as
// 0x7fc0 for bfloat16, as c10's scalar conversions do, so every ISA build gives identical bits).
// at::vec's own AVX2 float -> bfloat16 conversion (at::vec::convert too) writes NaN as 0xffff, hence
// this instead: every family's vectorised 16-bit store goes through here or convert_from_acc
// (tests/ops/test_store_bits.py checks the bits).
template <typename scalar_t>
inline void store_acc(scalar_t* p, const AccVec<scalar_t>& v) {
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    v.store(p);
  } else {
#if defined(CPU_CAPABILITY_AVX2)
    const __m256 x = v;
    if constexpr (std::is_same_v<scalar_t, c10::Half>) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                       _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else {
      const __m256i bits = _mm256_castps_si256(x);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
      __m256i rounded =
          _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16);
      const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
      rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7fc0), _mm256_castps_si256(is_nan));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(_mm256_castsi256_si128(rounded),
                                                                       _mm256_extracti128_si256(rounded, 1)));
    }
#else
    __at_align__ float lanes[AccVec<scalar_t>::size()];
    v.store(lanes);
    for (int64_t i = 0; i < AccVec<scalar_t>::size(); ++i) p[i] = static_cast<scalar_t>(lanes[i]);
#endif
  }
}

// dst[i] = src[i] converted to the accumulation type (vectorised for the 16-bit types).
template <typename scalar_t>
inline void convert_to_acc(const scalar_t* src, acc_t<scalar_t>* dst, int64_t n) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  int64_t i = 0;
  for (; i + W <= n; i += W) load_acc(src + i).store(dst + i);
  for (; i < n; ++i) dst[i] = static_cast<acc_t<scalar_t>>(src[i]);
}

// dst[i] = src[i] + add converted back to the storage type (add: a bias, or 0). A zero add is skipped,
// not added, so a -0.0 result keeps its sign.
template <typename scalar_t>
inline void convert_from_acc(const acc_t<scalar_t>* src, scalar_t* dst, int64_t n,
                             acc_t<scalar_t> add = acc_t<scalar_t>(0)) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  int64_t i = 0;
  if (add == acc_t<scalar_t>(0)) {
    for (; i + W <= n; i += W) store_acc(dst + i, Vec::loadu(src + i));
    for (; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
  } else {
    const Vec add_vec(add);
    for (; i + W <= n; i += W) store_acc(dst + i, Vec::loadu(src + i) + add_vec);
    for (; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i] + add);
  }
}

// Non-temporal (streaming) stores: a store of an output that is not read again soon. A plain store first
// reads the line it writes into the cache (read-for-ownership), so writing an output costs two passes over
// it; a streaming store writes the line without reading it. Only builds on at::vec's AVX2 code stream
// (CPU_CAPABILITY_AVX2: the AVX2 build, and the AVX512-BF16 one, which holds bfloat16 only), only float
// and double (16-bit types are stored through a conversion), and only to 32-byte aligned addresses; callers
// peel the unaligned head of a row. kStreamMinBytes: outputs from this size on are streamed, half a typical
// L3 (the output then leaves the cache anyway before the next op could read it); smaller ones stay cached.
// After streaming, stream_fence() before the results are handed on (each parallel_for body ends with it).
constexpr int64_t kStreamMinBytes = int64_t{16} << 20;

template <typename out_t>
constexpr bool can_stream() {
#if defined(CPU_CAPABILITY_AVX2)
  return std::is_same_v<out_t, float> || std::is_same_v<out_t, double>;
#else
  return false;
#endif
}

// Whether an op writing `bytes` of out_t streams them.
template <typename out_t>
inline bool stream_output(int64_t bytes) {
  return can_stream<out_t>() && bytes >= kStreamMinBytes;
}

// How many of a row's n elements a streaming loop handles one by one before its first 32-byte aligned
// vector store (all n if out cannot be aligned, which PyTorch's element-aligned tensors never are).
template <typename out_t>
inline int64_t stream_peel(const out_t* out, int64_t n) {
  const auto misaligned = reinterpret_cast<std::uintptr_t>(out) % 32;
  if (misaligned == 0) return 0;
  if (misaligned % sizeof(out_t) != 0) return n;
  return std::min<int64_t>(n, static_cast<int64_t>((32 - misaligned) / sizeof(out_t)));
}

template <typename out_t>
inline void store_stream(out_t* p, const at::vec::Vectorized<out_t>& v) {
#if defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<out_t, float>) {
    _mm256_stream_ps(p, v);
  } else if constexpr (std::is_same_v<out_t, double>) {
    _mm256_stream_pd(p, v);
  } else {
    static_assert(!can_stream<out_t>(), "store_stream: float or double");
  }
#else
  static_assert(!can_stream<out_t>(), "store_stream: the AVX2 build only");
  (void)p;
  (void)v;
#endif
}

inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

// Output positions [begin, end) whose tap `tap` reads a real input element (not padding):
// 0 <= out_pos * stride + tap * dilation - pad_left < in_len.
struct OutRange {
  int64_t begin;
  int64_t end;
};
inline OutRange tap_out_range(const Conv1dParams& p, int64_t tap) {
  const int64_t offset = tap * p.dilation - p.pad_left;  // input position of out_pos 0
  int64_t begin = offset >= 0 ? 0 : ceil_div(-offset, p.stride);
  int64_t end = (p.in_len - 1 - offset) < 0 ? 0 : (p.in_len - 1 - offset) / p.stride + 1;
  begin = std::min(begin, p.out_len);
  end = std::max(begin, std::min(end, p.out_len));
  return {begin, end};
}

// Zero-padded copy of one input row in the accumulation type: buf[t] = input[t - pad_left], zero outside,
// for t in [0, padded_len). Output position o, tap k then reads buf[o * stride + k * dilation].
template <typename scalar_t>
inline void pad_row(const scalar_t* row, int64_t in_len, int64_t pad_left, int64_t padded_len,
                    acc_t<scalar_t>* buf) {
  const int64_t copy_end = std::min(padded_len, pad_left + in_len);
  const int64_t left = std::min(pad_left, padded_len);
  std::fill(buf, buf + left, acc_t<scalar_t>(0));
  if (copy_end > left) convert_to_acc(row, buf + left, copy_end - left);
  if (padded_len > std::max(copy_end, left))
    std::fill(buf + std::max(copy_end, left), buf + padded_len, acc_t<scalar_t>(0));
}

// Zero-padded copy of one input row split by phase of the stride (a deinterleave), in the accumulation
// type: buf[r * phase_len + q] = input[q * stride + r - pad_left] (zero outside the row), r < stride.
// Padded position o*stride + k*dilation then sits at buf[tap_offset(k) + o] with
// tap_offset(k) = ((k*dilation) % stride) * phase_len + (k*dilation) / stride: every tap of every
// stride becomes a contiguous, vectorisable walk over o.
template <typename scalar_t>
inline void pad_row_phases(const scalar_t* row, int64_t in_len, int64_t pad_left, int64_t stride,
                           int64_t phase_len, acc_t<scalar_t>* buf) {
  using acc = acc_t<scalar_t>;
  if (stride == 1) return pad_row(row, in_len, pad_left, phase_len, buf);
  for (int64_t r = 0; r < stride; ++r) {
    acc* dst = buf + r * phase_len;
    const int64_t q0 = std::clamp<int64_t>(ceil_div(pad_left - r, stride), 0, phase_len);
    const int64_t q1 = std::clamp<int64_t>(ceil_div(in_len + pad_left - r, stride), q0, phase_len);
    std::fill(dst, dst + q0, acc(0));
    const scalar_t* src = row + q0 * stride + r - pad_left;
    for (int64_t q = q0; q < q1; ++q) dst[q] = static_cast<acc>(src[(q - q0) * stride]);
    std::fill(dst + q1, dst + phase_len, acc(0));
  }
}

// Scratch rows and 4 KiB aliasing: a load whose address matches a recent, still-pending store in the low
// 12 bits waits as if it depended on it. A fill loop (read src[i], store scratch[fill_index + i]) followed
// by a compute loop (read scratch[read_index + o + small], store out[o]) over 4096-long float rows ran
// several times slower when the rows happened to sit at the same offset mod 4 KiB (docs/cpu-kernels.md).
// kAliasSlack extra elements let
// alias_safe_start() place the scratch row so that both loops read 1-3 KiB (mod 4 KiB) away from what
// they store. out may be null (the compute loop stores nothing).
template <typename T>
constexpr int64_t kAliasSlack = 4096 / sizeof(T);

template <typename T>
inline T* alias_safe_start(T* scratch, const void* out, int64_t read_index, const void* src,
                           int64_t fill_index) {
  const auto addr = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr); };
  T* start = scratch;
  for (std::uintptr_t gap : {1024u, 2048u, 3072u}) {
    const std::uintptr_t target = (out ? addr(out) : 0) + gap;  // where scratch[read_index] should sit
    std::uintptr_t delta = (target - addr(scratch + read_index)) & 4095;
    delta -= delta % sizeof(T);
    start = scratch + delta / sizeof(T);
    const std::uintptr_t fill_gap = (addr(start + fill_index) - addr(src)) & 4095;
    if (fill_gap >= 512 && fill_gap <= 3584) break;
  }
  return start;
}

// Sum of the lanes of v in a fixed order (deterministic).
template <typename T>
inline T lane_sum(const at::vec::Vectorized<T>& v) {
  __at_align__ T lanes[at::vec::Vectorized<T>::size()];
  v.store(lanes);
  T s = 0;
  for (int64_t i = 0; i < at::vec::Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

// Sum of one row of len elements in the accumulation type, in a fixed order (deterministic): the one
// bias-gradient reduction, shared by backward_bias and the fused depthwise backward so both give the same
// bits.
template <typename scalar_t>
inline acc_t<scalar_t> row_sum(const scalar_t* row, int64_t len) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t W = Vec::size();
  Vec s0(0), s1(0);
  int64_t i = 0;
  for (; i + 2 * W <= len; i += 2 * W) {
    s0 = s0 + load_acc(row + i);
    s1 = s1 + load_acc(row + i + W);
  }
  acc_t<scalar_t> s = lane_sum(s0 + s1);
  for (; i < len; ++i) s += static_cast<acc_t<scalar_t>>(row[i]);
  return s;
}

// The one fixed-count dispatcher: with_fixed_count<2, 3, 4>(n, f) returns f(std::integral_constant<int, n>{})
// when n is one of the listed counts, else f(std::integral_constant<int, 0>{}). Kernels templated on a
// count (taps, width, rows of a tile) keep the per-count loops of the common counts unrolled, with their
// weights and pointers in registers; their count-0 instance is the runtime loop.
template <int kFirst, int... kRest, typename F>
inline decltype(auto) with_fixed_count(int64_t n, F&& f) {
  if (n == kFirst) return f(std::integral_constant<int, kFirst>{});
  if constexpr (sizeof...(kRest) > 0) {
    return with_fixed_count<kRest...>(n, std::forward<F>(f));
  } else {
    return f(std::integral_constant<int, 0>{});
  }
}

// Grain for at::parallel_for over `items` items of `work_per_item` multiply-adds each: chunks of at
// least ~32k multiply-adds so tiny problems run inline.
inline int64_t grain_for(int64_t work_per_item) {
  constexpr int64_t kMinWork = 1 << 15;
  return std::max<int64_t>(1, kMinWork / std::max<int64_t>(1, work_per_item));
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
