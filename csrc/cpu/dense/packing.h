// Source packing of the dense family (dense_tiled.h), shared by every schedule: the forward /
// backward-input engine's block and wide schedules (conv_engine.h) and both backward-weight schedules
// (wgrad.h) pack their source rows with pack_source_phases.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

// Packed source of one work item: for each source channel c and phase r, a row of len values
//   row[j] = src[(m0 + j) * phases + r + base]   (0 outside [0, src_len)),
// rows row_stride apart. With phases = stride, tap t of output m reads phase (t*d) % s at
// j = (m - m0) + (t*d) / s: contiguous in m, so the micro-kernel's vector loads need no gather.
// packed_t: the accumulation type (converted once here), or scalar_t itself for the paired bfloat16
// micro-kernel (paired_bf16.h), which multiplies bfloat16 directly.

// The one-phase case: row[j] = src[first + j] (0 outside [0, src_len)), j < len.
template <typename scalar_t, typename packed_t>
inline void pack_source_row(const scalar_t* src, int64_t src_len, int64_t first, int64_t len, packed_t* row) {
  // Valid j: 0 <= first + j < src_len.
  const int64_t j_lo = std::clamp<int64_t>(-first, 0, len);
  const int64_t j_hi = std::max(j_lo, std::min(src_len - first, len));
  std::fill(row, row + j_lo, packed_t(0));
  // src + first alone may point before the row (or offset a null empty tensor): undefined behaviour.
  if (j_hi > j_lo) {
    if constexpr (std::is_same_v<packed_t, scalar_t>)
      std::copy(src + (first + j_lo), src + (first + j_hi), row + j_lo);
    else
      convert_to_acc(src + (first + j_lo), row + j_lo, j_hi - j_lo);
  }
  std::fill(row + j_hi, row + len, packed_t(0));
}

// All phases of one source row in a single sequential pass (each source element read once):
// rows[r * row_stride + j] = src[(m0 + j) * phases + r + base], j < len.
template <typename scalar_t, typename packed_t>
inline void pack_source_phases(const scalar_t* src, int64_t src_len, int64_t m0, int64_t phases, int64_t base,
                               int64_t len, int64_t row_stride, packed_t* rows) {
  using acc = packed_t;
  if (phases == 1) {
    pack_source_row(src, src_len, m0 + base, len, rows);
    return;
  }
  const int64_t first = m0 * phases + base;  // source position of rows[0][0]
  // j in [j_lo, j_hi): every phase of column j is inside [0, src_len).
  int64_t j_lo = first >= 0 ? 0 : ceil_div(-first, phases);
  int64_t j_hi = src_len - phases - first >= 0 ? (src_len - phases - first) / phases + 1 : 0;
  j_lo = std::min(j_lo, len);
  j_hi = std::max(j_lo, std::min(j_hi, len));
  auto edge = [&](int64_t j) {
    for (int64_t r = 0; r < phases; ++r) {
      const int64_t pos = first + j * phases + r;
      rows[r * row_stride + j] = (pos >= 0 && pos < src_len) ? static_cast<acc>(src[pos]) : acc(0);
    }
  };
  for (int64_t j = 0; j < j_lo; ++j) edge(j);
  // Indexed from src: src + first may point before the row (or offset a null empty tensor), which is
  // undefined behaviour even unread (UBSan's pointer-overflow check reports it).
  for (int64_t j = j_lo; j < j_hi; ++j)
    for (int64_t r = 0; r < phases; ++r)
      rows[r * row_stride + j] = static_cast<acc>(src[first + j * phases + r]);
  for (int64_t j = j_hi; j < len; ++j) edge(j);
}

// Row stride of packed blocks: an odd number of 64-byte lines, so rows walked one after the other
// spread over all L1 sets (a power-of-two stride would map them onto a few sets and thrash).
template <typename acc>
inline int64_t padded_row_len(int64_t len) {
  constexpr int64_t line = 64 / sizeof(acc);
  int64_t lines = ceil_div(len, line);
  if (lines % 2 == 0) ++lines;
  return lines * line;
}

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
