// bfloat16 on AVX512-BF16 (the kernels_avx512bf16.cpp build, C1D_AVX512_BF16): the paired micro-kernels
// of the dense family, twins of microkernels.h's. vdpbf16ps multiplies a PAIR of bfloat16 per float
// lane and adds both (exact) products into the lane: 32 multiply-adds per 512-bit instruction, twice
// float FMA's (measurements: docs/cpu-kernels.md). So the reduction steps go in pairs (2q, 2q+1): the
// micro-panel holds per pair and position the two source values as one 32-bit lane (step 2q low, 2q+1
// high), the packed weights per pair and channel the two weights as one 32-bit word, broadcast. The
// source block stays bfloat16 (no conversion at all). An odd reduction gets a last pair whose second
// step reads a zero row with a zero weight.
// In every other build kPairedBf16 is false and only the tile-size stand-ins below exist.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/dense/microkernels.h"
#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

#if defined(C1D_AVX512_BF16)
constexpr int kPairTileVecs = 3;  // 3 zmm of 16 positions × kPairTileCh channels: 24 accumulators
constexpr int kPairTileCh = 8;
constexpr int64_t kPairTileWidth = kPairTileVecs * 16;

// panel[q][v*16 + lane] = (src_a[j0 + v*16 + lane], src_b[...]) as a bfloat16 pair, for the pairs of
// steps (2q, 2q+1) of one tile of positions; `steps` is even.
inline void gather_pair_panel(const c10::BFloat16* packed, const int64_t* src_offsets, int64_t j0,
                              int64_t steps, float* panel) {
  for (int64_t q = 0; q < steps / 2; ++q) {
    const c10::BFloat16* a = packed + src_offsets[2 * q] + j0;
    const c10::BFloat16* b = packed + src_offsets[2 * q + 1] + j0;
    for (int v = 0; v < kPairTileVecs; ++v) {
      const __m512i lo =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + v * 16)));
      const __m512i hi = _mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + v * 16))), 16);
      _mm512_store_si512(panel + (q * kPairTileVecs + v) * 16, _mm512_or_si512(lo, hi));
    }
  }
}

// conv_microtile's paired twin: sum[c][v] = (accumulate ? out : 0) + sum over pairs q of
// w[q][c] (2 bfloat16) . panel[q][v] (2 bfloat16 per lane), in float.
inline void pair_microtile(const float* panel, const float* w, int64_t pairs, bool accumulate, float* out,
                           int64_t row_stride) {
  __m512 sum[kPairTileCh][kPairTileVecs];
  for (int c = 0; c < kPairTileCh; ++c)
    for (int v = 0; v < kPairTileVecs; ++v)
      sum[c][v] = accumulate ? _mm512_loadu_ps(out + c * row_stride + v * 16) : _mm512_setzero_ps();
  for (int64_t q = 0; q < pairs; ++q) {
    __m512bh x[kPairTileVecs];
    for (int v = 0; v < kPairTileVecs; ++v)
      x[v] = (__m512bh)_mm512_load_si512(panel + (q * kPairTileVecs + v) * 16);
    const float* w_step = w + q * kPairTileCh;
    for (int c = 0; c < kPairTileCh; ++c) {
      // The word's bits, broadcast: _mm512_set1_ps moves them untouched (no NaN canonicalisation on x86).
      const __m512bh wc = (__m512bh)_mm512_castps_si512(_mm512_set1_ps(w_step[c]));
      for (int v = 0; v < kPairTileVecs; ++v) sum[c][v] = _mm512_dpbf16_ps(sum[c][v], x[v], wc);
    }
  }
  for (int c = 0; c < kPairTileCh; ++c)
    for (int v = 0; v < kPairTileVecs; ++v) _mm512_storeu_ps(out + c * row_stride + v * 16, sum[c][v]);
}

// Two bfloat16 weights as the bits of one float (first in the low half).
inline float pair_word(float first, float second) {
  const uint32_t bits = uint32_t(c10::BFloat16(first).x) | (uint32_t(c10::BFloat16(second).x) << 16);
  float word;
  std::memcpy(&word, &bits, sizeof(word));
  return word;
}

// wgrad_microtile's paired twin: the positions go in pairs. grad_out_t[q][lane] holds the bfloat16 pair
// (2q, 2q+1) of out channel `lane` of the panel (32 channels: 2 zmm); the source pair of column k is
// simply the 32 bits at src + src_offsets[k] + 2q (adjacent positions of one packed row). An odd len's
// last pair has a zero second grad_output and its second source value masked to zero too (the element
// past the block is real data: 0 * inf would be NaN).
constexpr int kPairWgradVecs = 2;
constexpr int64_t kPairWgradPanelCh = kPairWgradVecs * 16;
inline void pair_wgrad_microtile(const float* grad_out_t, const c10::BFloat16* src,
                                 const int64_t* src_offsets, int64_t len, float* partial,
                                 int64_t row_stride) {
  __m512 sum[kPairWgradVecs][kWgradCols];
  for (int v = 0; v < kPairWgradVecs; ++v)
    for (int k = 0; k < kWgradCols; ++k) sum[v][k] = _mm512_setzero_ps();
  const c10::BFloat16* col[kWgradCols];
  for (int k = 0; k < kWgradCols; ++k) col[k] = src + src_offsets[k];
  auto step = [&](int64_t q, uint32_t mask) {
    __m512bh go[kPairWgradVecs];
    for (int v = 0; v < kPairWgradVecs; ++v)
      go[v] = (__m512bh)_mm512_loadu_si512(grad_out_t + (q * kPairWgradVecs + v) * 16);
    for (int k = 0; k < kWgradCols; ++k) {
      uint32_t bits;
      std::memcpy(&bits, col[k] + 2 * q, sizeof(bits));
      const __m512bh xk = (__m512bh)_mm512_set1_epi32(int(bits & mask));
      for (int v = 0; v < kPairWgradVecs; ++v) sum[v][k] = _mm512_dpbf16_ps(sum[v][k], go[v], xk);
    }
  };
  for (int64_t q = 0; q < len / 2; ++q) step(q, 0xffffffffu);
  if (len % 2) step(len / 2, 0x0000ffffu);
  for (int k = 0; k < kWgradCols; ++k)
    for (int v = 0; v < kPairWgradVecs; ++v) {
      float* dst = partial + k * row_stride + v * 16;
      _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), sum[v][k]));
    }
}

// grad_output rows [0, out_ch_padded) of a group (rows row_stride apart, zero from out_ch on), positions
// [0, len), as the panels pair_wgrad_microtile reads: [panel][position pair][channel in panel] of
// kPairWgradPanelCh channels as 32-bit bfloat16 pairs, panel p at dst + p * (panel_len / 2) *
// kPairWgradPanelCh; an odd len's last pair has a zero second value.
inline void pack_grad_out_pair_panels(const c10::BFloat16* grad_out, int64_t row_stride, int64_t out_ch,
                                      int64_t out_ch_padded, int64_t len, int64_t panel_len, float* dst) {
  constexpr int64_t kPanelCh = kPairWgradPanelCh;
  for (int64_t oc = 0; oc < out_ch_padded; ++oc) {
    float* panel = dst + (oc / kPanelCh) * (panel_len / 2) * kPanelCh + oc % kPanelCh;
    const c10::BFloat16* row = oc < out_ch ? grad_out + oc * row_stride : nullptr;
    for (int64_t q = 0; q < ceil_div(len, 2); ++q) {
      const uint32_t lo = row ? row[2 * q].x : 0;
      const uint32_t hi = row && 2 * q + 1 < len ? row[2 * q + 1].x : 0;
      const uint32_t bits = lo | (hi << 16);
      std::memcpy(panel + q * kPanelCh, &bits, sizeof(bits));
    }
  }
}

template <typename scalar_t>
constexpr bool kPairedBf16 = std::is_same_v<scalar_t, c10::BFloat16>;
#else
template <typename scalar_t>
constexpr bool kPairedBf16 = false;
constexpr int64_t kPairTileWidth = 0;
constexpr int kPairTileCh = 0;
constexpr int64_t kPairWgradPanelCh = 0;
#endif

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
