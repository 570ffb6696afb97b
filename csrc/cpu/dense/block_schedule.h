// The block schedule of the forward / backward-input engine (conv_engine.h), for most problems: a work
// item is (batch, group, block of block_len destination coordinates). The item packs the source rows
// it reads into a per-thread buffer (the accumulation type, or bfloat16 for the paired micro-kernel),
// zero-padded (no bounds tests in the hot loop) and, for stride > 1, split into stride phases so every
// tap reads contiguous memory; then, per position tile, it walks the reduction chunk by chunk
// (convolve_chunk) over all channel tiles, into a per-thread stage that is copied out, bias added, in
// long runs.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/dense/conv_engine.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

// Per-thread source block budget. The micro-kernel reads the L1 micro-panel, not this block, so the
// block may exceed L2; long blocks keep the per-row copies in and out long (the packing and the
// output stores walk a row in runs of the block length; short runs are latency-bound).
constexpr int64_t kSourceBlockBytes = 256 * 1024;

// Picks the block length (a multiple of the tile width) so the packed source block fits the budget,
// and there are enough items for every thread.
template <typename packed_t>
inline int64_t choose_block_len(int64_t rows, int64_t max_shift, int64_t count, int64_t outer_items,
                                int64_t tile_width) {
  const int64_t min_block_len = tile_width;
  int64_t block_len = kSourceBlockBytes / (rows * (int64_t)sizeof(packed_t)) - max_shift;
  block_len = std::max<int64_t>(block_len, min_block_len);
  block_len = std::min<int64_t>(block_len, 2048);
  block_len = std::min<int64_t>(block_len, round_up(std::max<int64_t>(count, 1), tile_width));
  // At least 4 items per thread when the problem allows it (load balance).
  const int64_t want_items = 4 * (int64_t)at::get_num_threads();
  if (outer_items * ceil_div(count, block_len) < want_items) {
    const int64_t blocks_per_outer = ceil_div(want_items, std::max<int64_t>(outer_items, 1));
    block_len = std::min(block_len, std::max<int64_t>(tile_width, ceil_div(count, blocks_per_outer)));
  }
  return std::max<int64_t>(tile_width, round_up(block_len, tile_width));
}

// conv: pack_conv's weights for source rows of row_len (padded_row_len(block_len + max_shift)).
template <typename scalar_t>
void run_tiled_block(const TiledPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
                     const PackedConv<scalar_t>& conv, int64_t block_len, int64_t row_len) {
  using acc = acc_t<scalar_t>;
  using packed_t = packed_source_t<scalar_t>;
  constexpr bool paired = kPairedBf16<scalar_t>;
  constexpr int64_t tile_width = kRunTileWidth<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const int64_t groups = plan.groups;
  const int64_t src_ch = plan.src_ch_per_group, dst_ch = plan.dst_ch_per_group;
  const int64_t ch_tiles = conv.ch_tiles, padded_ch = ch_tiles * tile_ch;
  const int64_t dst_phases = plan.dst_phases;
  const int64_t rows = src_ch * plan.src_phases;
  const int64_t n_blocks = std::max<int64_t>(ceil_div(plan.m_end - plan.m_begin, block_len), 1);
  const int64_t stage_len = block_len * dst_phases;
  const int64_t items = plan.batch * groups * n_blocks;
  // The micro-kernel writes into a per-thread stage that is copied out (bias added) in long runs:
  // written straight into the destination, its stores miss the cache and stall it (docs/cpu-kernels.md).
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    // Paired: one more row, of zeros, for an odd reduction's last pair.
    std::vector<packed_t> packed_src((rows + (paired ? 1 : 0)) * row_len, packed_t(0));
    // phase_stage: one destination phase of the block for every channel, [channel][j];
    // stage: the phases interleaved back into destination order (only when there are several).
    std::vector<acc> phase_stage(padded_ch * block_len);
    std::vector<acc> stage(dst_phases > 1 ? padded_ch * stage_len : 0);
    PanelBuffer<scalar_t> panel;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item % n_blocks;
      const int64_t g = (item / n_blocks) % groups;
      const int64_t n = item / (n_blocks * groups);
      const int64_t m0 = plan.m_begin + block * block_len;
      const int64_t m_count = std::min(block_len, plan.m_end - m0);

      const scalar_t* src_group = src + (n * groups + g) * src_ch * plan.src_len;
      for (int64_t c = 0; c < src_ch; ++c)
        pack_source_phases(src_group + c * plan.src_len, plan.src_len, m0, plan.src_phases, plan.src_base,
                           row_len, row_len, packed_src.data() + c * plan.src_phases * row_len);

      for (int64_t f = 0; f < dst_phases; ++f) {
        const int64_t reduction = conv.steps_padded[f];
        for (int64_t j0 = 0; j0 < m_count; j0 += tile_width) {
          if (reduction == 0) {  // no tap reaches this phase: its elements are zero
            for (int64_t c = 0; c < padded_ch; ++c)
              std::fill_n(phase_stage.data() + c * block_len + j0, tile_width, acc(0));
            continue;
          }
          for (int64_t r0 = 0; r0 < reduction; r0 += conv.chunk_steps[f])
            convolve_chunk(conv, f, g, packed_src.data(), r0, j0, 0, ch_tiles, panel.data(),
                           phase_stage.data(), block_len);
        }
        if (dst_phases > 1)
          interleave_phase(phase_stage.data(), block_len, padded_ch, m_count, dst_phases, f, stage.data(),
                           stage_len);
      }

      // Copy the staged elements of this block, [dst_lo, dst_hi) of each destination row.
      const int64_t dst_first = m0 * dst_phases + plan.dst_base;  // destination index of stage index 0
      const int64_t dst_lo = std::max<int64_t>(dst_first, 0);
      const int64_t dst_hi = std::min<int64_t>(dst_first + m_count * dst_phases, plan.dst_len);
      if (dst_hi <= dst_lo) continue;
      store_stage_rows(dst_phases > 1 ? stage.data() : phase_stage.data(), stage_len, dst_first, dst_ch,
                       bias ? bias + g * dst_ch : nullptr, dst + (n * groups + g) * dst_ch * plan.dst_len,
                       plan.dst_len, dst_lo, dst_hi);
    }
  });
}

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
