// Backward-weight of the dense family (dense_tiled.h): a GEMM over (out channel) × (in channel, tap)
// columns with a long reduction over batch × out_len. grad_output is packed transposed, as panels
// [panel][pos][out channel in panel], and the input by stride phase as in the forward (packing.h); the
// micro-kernel (wgrad_microtile, or its bfloat16-pair twin) keeps 2 vectors of out channels × 6 columns
// in registers (broadcast one input value, FMA with a vector of grad_output), so the reduction runs along
// registers without horizontal sums. Two schedules share the packing and the block loop (wgrad_block):
// * wgrad_tiled (most problems): work items (batch, block of kWgradBlock positions), grouped into
//   reduction slices, each slice its own weight-sized partial; the slices are summed in slice order.
// * wgrad_wide (short reductions): the output is partitioned instead, see use_wide_wgrad.
// Both fix every element's reduction order by the problem alone, never by the thread count, so
// grad_weight is bit-identical whatever torch.set_num_threads says.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/dense/microkernels.h"
#include "cpu/dense/packing.h"
#include "cpu/dense/paired_bf16.h"
#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

constexpr int64_t kWgradBlock = 512;              // positions per backward-weight work item
constexpr int64_t kWgradPanelBytes = 128 * 1024;  // grad_output panels reused per column tile (L2)
// wgrad_tiled's reduction slices ("slices" of consecutive work items, each summed into its own
// partial): at most kWgradMaxSlices, fewer when their buffers would pass kWgradSliceBudget or when a
// slice would reduce fewer than kWgradMinSlicePositions positions, and blocks short enough for
// kWgradMinItems work items. Each slice costs a weight-sized buffer to zero and to add up: a slice of P
// positions does P multiply-adds per element of that buffer, so short ones spend their time on the buffer
// (docs/cpu-kernels.md).
constexpr int64_t kWgradMaxSlices = 16;
constexpr int64_t kWgradMinItems = 16;
constexpr int64_t kWgradSliceBudget = 64 << 20;
constexpr int64_t kWgradMinSlicePositions = 256;

// Column k = (in channel c, tap t) reads packed row (c, phase (t*d) % s) at shift (t*d) / s of a block
// packed by stride phase with rows of row_len; padding columns (k beyond in_per_group * K) read the
// all-zero row after the block's in_per_group * stride rows.
inline std::vector<int64_t> wgrad_column_offsets(const Conv1dParams& p, int64_t n_cols_padded,
                                                 int64_t row_len) {
  const int64_t K = p.kernel_size, n_cols = p.in_per_group * K, zero_row = p.in_per_group * p.stride;
  std::vector<int64_t> offsets(n_cols_padded);
  for (int64_t k = 0; k < n_cols_padded; ++k) {
    const int64_t c = k / K, reach = (k % K) * p.dilation;
    offsets[k] =
        k < n_cols ? (c * p.stride + reach % p.stride) * row_len + reach / p.stride : zero_row * row_len;
  }
  return offsets;
}

// The input channels of one (batch, group), input_group its first row, packed by stride phase from
// output position pos0: row (c, phase r) at dst + (c * stride + r) * row_len.
template <typename scalar_t, typename packed_t>
inline void wgrad_pack_input(const Conv1dParams& p, const scalar_t* input_group, int64_t pos0,
                             int64_t row_len, packed_t* dst) {
  for (int64_t c = 0; c < p.in_per_group; ++c)
    pack_source_phases(input_group + c * p.in_len, p.in_len, pos0, p.stride, -p.pad_left, row_len, row_len,
                       dst + c * p.stride * row_len);
}

// grad_output rows [0, out_ch_padded) of a group (rows row_stride apart, zero from out_ch on), positions
// [0, len), as the panels wgrad_microtile reads: [panel][pos][channel in panel] of panel_ch channels,
// panel p at dst + p * panel_len * panel_ch, so each micro-kernel step loads one contiguous 64-byte line.
// row_buf: len values of scratch.
template <typename scalar_t>
inline void wgrad_pack_grad_out(const scalar_t* grad_out, int64_t row_stride, int64_t out_ch,
                                int64_t out_ch_padded, int64_t len, int64_t panel_len, int64_t panel_ch,
                                acc_t<scalar_t>* row_buf, acc_t<scalar_t>* dst) {
  using acc = acc_t<scalar_t>;
  for (int64_t oc = 0; oc < out_ch_padded; ++oc) {
    acc* panel = dst + (oc / panel_ch) * panel_len * panel_ch + oc % panel_ch;
    if (oc < out_ch) {
      convert_to_acc(grad_out + oc * row_stride, row_buf, len);
      for (int64_t j = 0; j < len; ++j) panel[j * panel_ch] = row_buf[j];
    } else {
      for (int64_t j = 0; j < len; ++j) panel[j * panel_ch] = acc(0);
    }
  }
}

// Adds the sums over one block of len positions for columns [col_begin, col_end) × out channels
// [oc_begin, oc_end) (multiples of panel_ch) into out[col - col_begin][oc - oc_begin] (column stride
// out_stride). grad_out_t: the block's panels, panel q at grad_out_t + q * panel_stride; src: the
// packed input, its position 0 at the block's first position. Column tiles outermost: the kWgradCols
// input rows of a column tile stay in L1 while every panel reuses them. paired: bfloat16 on
// AVX512-BF16 (pair_wgrad_microtile, panel_ch = kPairWgradPanelCh).
template <bool paired, typename acc, typename packed_t>
inline void wgrad_block(const acc* grad_out_t, int64_t panel_stride, int64_t panel_ch, const packed_t* src,
                        const int64_t* src_offsets, int64_t len, int64_t col_begin, int64_t col_end,
                        int64_t oc_begin, int64_t oc_end, acc* out, int64_t out_stride) {
  for (int64_t col0 = col_begin; col0 < col_end; col0 += kWgradCols)
    for (int64_t oc0 = oc_begin; oc0 < oc_end; oc0 += panel_ch) {
      const acc* panel = grad_out_t + (oc0 / panel_ch) * panel_stride;
      acc* tile = out + (col0 - col_begin) * out_stride + (oc0 - oc_begin);
#if defined(C1D_AVX512_BF16)
      if constexpr (paired) {
        pair_wgrad_microtile(panel, src, src_offsets + col0, len, tile, out_stride);
        continue;
      }
#endif
      if constexpr (!paired) wgrad_microtile(panel, panel_ch, src, src_offsets + col0, len, tile, out_stride);
    }
}

// ---- wide schedule of backward-weight (short reduction, large weight) ----
//
// wgrad_tiled parallelises the reduction (batch × out_len): slices of items, each its own weight-sized
// partial. When batch × blocks of kWgradBlock positions cannot make kWgradMinItems items, it shortens the
// blocks; for the transposed convolutions of vocoders (HiFi-GAN B4: 4 rows of 86 positions, weight
// 512×256×16 = 8 MiB) that meant 24-position blocks: every 24 FMA steps of the micro-kernel were followed
// by a read-modify-write of its 12 accumulators in an 8 MiB partial (L3), and 8 slices × 8 MiB to zero and
// sum at the end. The wide schedule parallelises the output instead: grad_output and the input of every
// batch are packed once, up front, and an item is (group, panel group of out channels, range of column
// tiles); it walks the whole reduction (batch, then blocks of kWgradBlock positions) into its own small
// tile (≤ kWgradWideTileBytes, in L2), so nothing is split, zeroed or summed afterwards. Each element's
// reduction order (per (batch, block) the micro-kernel's sum from zero over the positions, added in batch
// and block order) is fixed by the problem: the result is bit-identical whatever the thread count.
//
// Rule: wide when the whole reduction has at most kWgradBlock × kWgradMinItems positions (batch ×
// out_len), i.e. when the slices of wgrad_tiled would hold at most one 512-position block each: then its
// partials cost as much as they save. The packed copies are about the size of grad_output and the input.
// bfloat16 takes it too, on the float micro-kernel (converted once when packed), not the paired one.
constexpr int64_t kWgradWideTileBytes = 96 * 1024;

inline bool use_wide_wgrad(const Conv1dParams& p) {
  return p.batch * p.out_len <= kWgradBlock * kWgradMinItems;
}

template <typename scalar_t>
void wgrad_wide(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  constexpr int64_t W = AccVec<acc>::size();
  constexpr int64_t kPanelCh = kWgradVecs * W;  // out channels per grad_output panel
  const int64_t batch = p.batch, groups = p.groups, K = p.kernel_size, out_len = p.out_len;
  const int64_t in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  const int64_t n_cols = in_ch_per_group * K;  // columns: (in channel, tap)
  const int64_t n_cols_padded = round_up(n_cols, kWgradCols);
  const int64_t out_ch_padded = round_up(out_ch_per_group, kPanelCh);
  const int64_t n_panels = out_ch_padded / kPanelCh;
  const int64_t max_shift = ((K - 1) * p.dilation) / p.stride;
  const int64_t rows = in_ch_per_group * p.stride;
  const int64_t row_len = padded_row_len<acc>(out_len + max_shift);
  const int64_t source_size = (rows + 1) * row_len;  // + an all-zero row read by the padding columns
  const int64_t grad_out_size = out_ch_padded * out_len;

  // Every (batch, group): the input packed by stride phase from position 0, and grad_output as panels
  // (wgrad_pack_grad_out), as wgrad_tiled packs one block.
  std::vector<acc> packed_src(batch * groups * source_size);
  std::vector<acc> packed_grad_out(batch * groups * grad_out_size);
  at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> grad_out_row(out_len);
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t n = ng / groups, g = ng % groups;
      acc* src = packed_src.data() + ng * source_size;
      wgrad_pack_input(p, input + (n * p.in_channels + g * in_ch_per_group) * p.in_len, 0, row_len, src);
      std::fill_n(src + rows * row_len, row_len, acc(0));
      wgrad_pack_grad_out(grad_output + (n * p.out_channels + g * out_ch_per_group) * out_len, out_len,
                          out_ch_per_group, out_ch_padded, out_len, out_len, kPanelCh, grad_out_row.data(),
                          packed_grad_out.data() + ng * grad_out_size);
    }
  });

  const std::vector<int64_t> src_offsets = wgrad_column_offsets(p, n_cols_padded, row_len);

  // Item tile: a panel group whose block of grad_output fits kWgradPanelBytes (L2, reused by every column
  // tile), and a column range so the tile fits kWgradWideTileBytes; more ranges when items are too few.
  const int64_t block = std::min(out_len, kWgradBlock);
  int64_t n_panel_groups = ceil_div(
      n_panels,
      std::clamp<int64_t>(kWgradPanelBytes / (block * kPanelCh * (int64_t)sizeof(acc)), 1, n_panels));
  const int64_t group_panels = ceil_div(n_panels, n_panel_groups);
  n_panel_groups = ceil_div(n_panels, group_panels);
  const int64_t tile_stride = group_panels * kPanelCh;  // tile layout: [column][out channel]
  const int64_t col_tiles = n_cols_padded / kWgradCols;
  int64_t n_col_ranges = ceil_div(
      col_tiles, std::clamp<int64_t>(kWgradWideTileBytes / (tile_stride * kWgradCols * (int64_t)sizeof(acc)),
                                     1, col_tiles));
  const int64_t want_items = 4 * (int64_t)at::get_num_threads();
  if (groups * n_panel_groups * n_col_ranges < want_items)
    n_col_ranges = std::min(col_tiles, ceil_div(want_items, groups * n_panel_groups));
  const int64_t range_tiles = ceil_div(col_tiles, n_col_ranges);
  n_col_ranges = ceil_div(col_tiles, range_tiles);
  const int64_t range_cols = range_tiles * kWgradCols;

  const int64_t items = groups * n_panel_groups * n_col_ranges;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> tile(range_cols * tile_stride);
    std::vector<acc> row(range_cols);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t col_range = item % n_col_ranges;
      const int64_t panel_group = (item / n_col_ranges) % n_panel_groups;
      const int64_t g = item / (n_col_ranges * n_panel_groups);
      const int64_t col_begin = col_range * range_cols,
                    col_end = std::min(n_cols_padded, col_begin + range_cols);
      const int64_t panel_begin = panel_group * group_panels;
      const int64_t panel_end = std::min(n_panels, panel_begin + group_panels);
      std::fill(tile.begin(), tile.end(), acc(0));
      for (int64_t n = 0; n < batch; ++n) {
        const acc* src = packed_src.data() + (n * groups + g) * source_size;
        const acc* grad_out_t = packed_grad_out.data() + (n * groups + g) * grad_out_size;
        for (int64_t pos0 = 0; pos0 < out_len; pos0 += block)
          wgrad_block<false>(grad_out_t + pos0 * kPanelCh, out_len * kPanelCh, kPanelCh, src + pos0,
                             src_offsets.data(), std::min(block, out_len - pos0), col_begin, col_end,
                             panel_begin * kPanelCh, panel_end * kPanelCh, tile.data(), tile_stride);
      }
      // Transposed back to (out channel, in channel, tap).
      const int64_t cols = std::min(col_end, n_cols) - col_begin;
      if (cols <= 0) continue;
      for (int64_t oc = panel_begin * kPanelCh; oc < std::min(out_ch_per_group, panel_end * kPanelCh); ++oc) {
        for (int64_t k = 0; k < cols; ++k) row[k] = tile[k * tile_stride + oc - panel_begin * kPanelCh];
        convert_from_acc(row.data(), grad_weight + (g * out_ch_per_group + oc) * n_cols + col_begin, cols);
      }
    }
  });
}

// ---- the slice schedule of backward-weight (most problems) ----
template <typename scalar_t>
void wgrad_tiled(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                 scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  // bfloat16 on AVX512-BF16: the paired micro-kernel, the input block kept in bfloat16.
  constexpr bool paired = kPairedBf16<scalar_t>;
  using packed_t = std::conditional_t<paired, scalar_t, acc>;
  constexpr int64_t W = AccVec<acc>::size();
  const int64_t groups = p.groups, K = p.kernel_size;
  const int64_t in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  const int64_t n_cols = in_ch_per_group * K;  // columns: (in channel, tap)
  const int64_t n_cols_padded = round_up(n_cols, kWgradCols);
  // Out channels per grad_output panel (paired: 2 zmm of 16).
  constexpr int64_t kPanelCh = paired ? kPairWgradPanelCh : kWgradVecs * W;
  const int64_t out_ch_padded = round_up(out_ch_per_group, kPanelCh);
  const int64_t slice_size = groups * n_cols_padded * out_ch_padded;  // one slice: [group][col][out ch]

  if (p.batch == 0 || p.out_len == 0) {
    std::fill(grad_weight, grad_weight + p.out_channels * n_cols, scalar_t(0));
    return;
  }
  if (use_wide_wgrad(p)) {
    wgrad_wide(p, grad_output, input, grad_weight);
    return;
  }

  const int64_t max_shift = ((K - 1) * p.dilation) / p.stride;
  const int64_t rows = in_ch_per_group * p.stride;
  // Long blocks: each (panel, column tile) adds its registers into the slice's partial once per block,
  // a read-modify-write of 12 vectors that should stay small beside the block's FMAs.
  int64_t block_len = std::min<int64_t>(kWgradBlock, round_up(p.out_len, W));
  if (p.batch * ceil_div(p.out_len, block_len) < kWgradMinItems)
    block_len = std::max<int64_t>(W, round_up(ceil_div(p.batch * p.out_len, kWgradMinItems), W));
  const int64_t row_len = padded_row_len<acc>(block_len + max_shift);
  const int64_t n_blocks = ceil_div(p.out_len, block_len);
  const int64_t panel_group_ch =
      std::max<int64_t>(1, kWgradPanelBytes / (block_len * kPanelCh * (int64_t)sizeof(acc))) * kPanelCh;
  const int64_t items = p.batch * n_blocks;
  // A block's panel in grad_out_t (paired: pairs of positions, half as many 32-bit words).
  const int64_t panel_stride = (paired ? block_len / 2 : block_len) * kPanelCh;

  const std::vector<int64_t> src_offsets = wgrad_column_offsets(p, n_cols_padded, row_len);

  const int64_t slice_bytes = slice_size * (int64_t)sizeof(acc);
  const int64_t n_slices = std::clamp<int64_t>(
      std::min(kWgradSliceBudget / slice_bytes, p.batch * p.out_len / kWgradMinSlicePositions), 1,
      std::min(kWgradMaxSlices, items));
  std::vector<std::vector<acc>> partial(n_slices);
  at::parallel_for(0, n_slices, 1, [&](int64_t slice_begin, int64_t slice_end) {
    std::vector<packed_t> packed_src((rows + 1) * row_len);
    std::vector<acc> grad_out_t(block_len * out_ch_padded);
    std::vector<acc> grad_out_row(block_len);
    for (int64_t slice = slice_begin; slice < slice_end; ++slice) {
      std::vector<acc>& slice_sum = partial[slice];
      slice_sum.assign(slice_size, acc(0));
      std::fill(packed_src.begin() + rows * row_len, packed_src.end(), packed_t(0));
      const int64_t item_begin = items * slice / n_slices, item_end = items * (slice + 1) / n_slices;
      for (int64_t item = item_begin; item < item_end; ++item) {
        const int64_t block = item % n_blocks, n = item / n_blocks;
        const int64_t pos0 = block * block_len, pos_count = std::min(block_len, p.out_len - pos0);
        for (int64_t g = 0; g < groups; ++g) {
          wgrad_pack_input(p, input + (n * p.in_channels + g * in_ch_per_group) * p.in_len, pos0, row_len,
                           packed_src.data());
          const scalar_t* grad_out_group =
              grad_output + (n * p.out_channels + g * out_ch_per_group) * p.out_len + pos0;
#if defined(C1D_AVX512_BF16)
          if constexpr (paired)
            pack_grad_out_pair_panels(grad_out_group, p.out_len, out_ch_per_group, out_ch_padded, pos_count,
                                      block_len, grad_out_t.data());
#endif
          if constexpr (!paired)
            wgrad_pack_grad_out(grad_out_group, p.out_len, out_ch_per_group, out_ch_padded, pos_count,
                                block_len, kPanelCh, grad_out_row.data(), grad_out_t.data());
          // Panels in groups that fit L2, each group walked by wgrad_block.
          acc* slice_group = slice_sum.data() + g * n_cols_padded * out_ch_padded;
          for (int64_t panel_group = 0; panel_group < out_ch_padded; panel_group += panel_group_ch)
            wgrad_block<paired>(grad_out_t.data(), panel_stride, kPanelCh, packed_src.data(),
                                src_offsets.data(), pos_count, 0, n_cols_padded, panel_group,
                                std::min(out_ch_padded, panel_group + panel_group_ch),
                                slice_group + panel_group, out_ch_padded);
        }
      }
    }
  });

  // Deterministic reduction: slices summed in order, transposed back to (out channel, in channel, tap).
  at::parallel_for(0, groups * out_ch_per_group, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> row(n_cols);
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t g = ch / out_ch_per_group, oc = ch % out_ch_per_group;
      for (int64_t k = 0; k < n_cols; ++k) {
        acc sum = acc(0);
        for (int64_t slice = 0; slice < n_slices; ++slice)
          sum += partial[slice][(g * n_cols_padded + k) * out_ch_padded + oc];
        row[k] = sum;
      }
      convert_from_acc(row.data(), grad_weight + ch * n_cols, n_cols);
    }
  });
}

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
