// The wide schedule of the forward / backward-input engine (conv_engine.h): few positions per row and
// large weights (the transposed convolutions of vocoders and codec decoders).
//
// The block schedule's items are (batch, group, block of positions), and each position tile of an item
// walks all the packed weights of a destination phase (src_ch × taps × dst_ch values) before the next
// tile. When those exceed L2 (HiFi-GAN's upsampler 512→256 k16 s8: 1 MiB per phase; DAC's 1536→768:
// 9.4 MiB per phase, 75 MiB in all, beyond L3) and a row holds only ~100 positions (4 tiles of 24), each
// weight fetched from L3 / DRAM feeds one tile, and the last tile of every row is mostly padding. The wide
// schedule:
// * lays the rows of several batches end to end (a "batch block"), each batch a segment of count +
//   max_shift coordinates (so a tap's shift never reaches the next batch's data; the outputs of the gap
//   coordinates are computed and dropped): tiles run across batches, and only the block's end is padding;
// * packs the source of every (batch block, group) once, up front;
// * makes an item (group, range of output-channel tiles, batch block) and walks it chunk-major: for each
//   reduction chunk, every position tile of the block, every channel tile of the range. A chunk's
//   weights of the range (≤ kWideChunkWeightBytes) stay in L2 while all the block's tiles use them; the
//   stage (range channels × block, ≤ kWideStageBytes) holds the partial sums between chunks.
// Per output element the reduction is the block schedule's (convolve_chunk, conv_engine.h): the two
// schedules give bit-identical results, whatever the thread count.
//
// Rule (measurements: docs/cpu-kernels.md): wide when one phase's packed weights of a group exceed
// kWideWeightBudget (half of a 1 MiB L2) and a row has at most kWideMaxPositions block coordinates (the
// packed source of all batches is then about the size of the source itself).
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/dense/conv_engine.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

constexpr int64_t kWideWeightBudget = 512 * 1024;
constexpr int64_t kWideMaxPositions = 1024;
constexpr int64_t kWideBlockCoords = 1024;             // most coordinates of a batch block
constexpr int64_t kWideChunkWeightBytes = 256 * 1024;  // one reduction chunk's weights of an item's range
constexpr int64_t kWideStageBytes = 1024 * 1024;       // an item's stage: range channels × block, all phases

template <typename acc>
inline bool use_wide_schedule(const TiledPlan& plan) {
  const int64_t count = plan.m_end - plan.m_begin;
  if (count <= 0 || count > kWideMaxPositions) return false;
  const int64_t padded_ch = ceil_div(plan.dst_ch_per_group, kTileCh) * kTileCh;
  int64_t max_taps = 0;
  for (const auto& taps : plan.taps) max_taps = std::max<int64_t>(max_taps, (int64_t)taps.size());
  return plan.src_ch_per_group * max_taps * padded_ch * (int64_t)sizeof(acc) > kWideWeightBudget;
}

// Batch blocks of the wide schedule: segment length per batch, batches per block, and the block length
// (what the packed rows and source offsets are sized by).
struct WideBlocks {
  int64_t segment, batches_per_block, n_blocks, block_len;
};

template <typename scalar_t>
inline WideBlocks wide_blocks(const TiledPlan& plan) {
  const int64_t count = plan.m_end - plan.m_begin;
  WideBlocks b;
  b.segment = count + plan.max_shift;
  // Batches end to end only when the gap (max_shift) wastes less than rounding each row up to whole tiles
  // (a stride-1 convolution with k128 has a 127-coordinate gap).
  const bool end_to_end = b.segment < round_up(count, kRunTileWidth<scalar_t>);
  b.batches_per_block =
      end_to_end ? std::clamp<int64_t>(kWideBlockCoords / b.segment, 1, std::max<int64_t>(plan.batch, 1)) : 1;
  b.n_blocks = ceil_div(plan.batch, b.batches_per_block);
  b.block_len = round_up((b.batches_per_block - 1) * b.segment + count, kRunTileWidth<scalar_t>);
  return b;
}

// conv: pack_conv's weights for source rows of row_len (padded_row_len(wide_blocks(plan).block_len +
// max_shift)).
template <typename scalar_t>
void run_tiled_wide(const TiledPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
                    const PackedConv<scalar_t>& conv, int64_t row_len) {
  using acc = acc_t<scalar_t>;
  using packed_t = packed_source_t<scalar_t>;
  constexpr bool paired = kPairedBf16<scalar_t>;
  constexpr int64_t tile_width = kRunTileWidth<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const WideBlocks blocks = wide_blocks<scalar_t>(plan);
  const int64_t segment = blocks.segment, block_len = blocks.block_len;
  const int64_t count = plan.m_end - plan.m_begin;
  const int64_t groups = plan.groups, batch = plan.batch;
  const int64_t src_ch = plan.src_ch_per_group, dst_ch = plan.dst_ch_per_group;
  const int64_t src_phases = plan.src_phases, dst_phases = plan.dst_phases;
  const int64_t ch_tiles = conv.ch_tiles;
  // + paired: the zero row an odd reduction's last step reads
  const int64_t source_size =
      (src_ch * src_phases + (paired ? 1 : 0)) * row_len;  // one packed (batch block, group)

  // Channel tiles per item: a reduction chunk's weights of the range within kWideChunkWeightBytes, the
  // item's stage within kWideStageBytes, and enough items.
  int64_t max_chunk = 1;
  for (int64_t f = 0; f < dst_phases; ++f) max_chunk = std::max(max_chunk, conv.chunk_steps[f]);
  const int64_t chunk_tile_bytes = max_chunk * tile_ch * (int64_t)sizeof(acc);
  const int64_t stage_tile_bytes = tile_ch * block_len * dst_phases * (int64_t)sizeof(acc);
  const int64_t max_range =
      std::min(kWideChunkWeightBytes / chunk_tile_bytes, kWideStageBytes / stage_tile_bytes);
  int64_t n_ranges = ceil_div(ch_tiles, std::clamp<int64_t>(max_range, 1, ch_tiles));
  // At least 2 items per thread, and with few items a whole number per thread (with 5 items on 2 threads
  // the slowest thread runs 3). The partition never changes any sum.
  const int64_t threads = at::get_num_threads();
  const int64_t outer = blocks.n_blocks * groups;
  if (outer * n_ranges < 2 * threads) n_ranges = std::min(ch_tiles, ceil_div(2 * threads, outer));
  if (outer * n_ranges < 8 * threads)
    while ((outer * n_ranges) % threads != 0 && n_ranges < ch_tiles) ++n_ranges;
  const int64_t range_tiles = ceil_div(ch_tiles, n_ranges);
  n_ranges = ceil_div(ch_tiles, range_tiles);
  const int64_t range_ch = range_tiles * tile_ch;

  // Every (batch block, group) source, packed once: [block][group][source channel][phase][row_len], batch
  // n_local of the block at coordinates [n_local * segment, (n_local + 1) * segment), zero after the last.
  std::vector<packed_t> packed(blocks.n_blocks * groups * source_size, packed_t(0));
  at::parallel_for(0, batch * groups * src_ch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {  // row = (batch * groups + group) * src_ch + channel
      const int64_t c = row % src_ch, g = (row / src_ch) % groups, n = row / (src_ch * groups);
      const int64_t block = n / blocks.batches_per_block, n_local = n % blocks.batches_per_block;
      packed_t* rows =
          packed.data() + (block * groups + g) * source_size + c * src_phases * row_len + n_local * segment;
      pack_source_phases(src + row * plan.src_len, plan.src_len, plan.m_begin, src_phases, plan.src_base,
                         segment, row_len, rows);
    }
  });

  const int64_t stage_len = block_len * dst_phases;
  const int64_t items = groups * n_ranges * blocks.n_blocks;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> phase_stage(range_ch * block_len);
    std::vector<acc> stage(dst_phases > 1 ? range_ch * stage_len : 0);
    PanelBuffer<scalar_t> panel;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item % blocks.n_blocks;
      const int64_t range = (item / blocks.n_blocks) % n_ranges;
      const int64_t g = item / (blocks.n_blocks * n_ranges);
      const int64_t t_begin = range * range_tiles, t_end = std::min(ch_tiles, t_begin + range_tiles);
      const int64_t n_begin = block * blocks.batches_per_block;
      const int64_t n_count = std::min(blocks.batches_per_block, batch - n_begin);
      const int64_t coords = (n_count - 1) * segment + count;  // coordinates holding outputs (and gaps)
      const packed_t* packed_src = packed.data() + (block * groups + g) * source_size;

      for (int64_t f = 0; f < dst_phases; ++f) {
        const int64_t reduction = conv.steps_padded[f];
        if (reduction == 0)  // no tap reaches this phase: its elements are zero
          std::fill(phase_stage.begin(), phase_stage.end(), acc(0));
        for (int64_t r0 = 0; r0 < reduction; r0 += conv.chunk_steps[f])
          for (int64_t j0 = 0; j0 < coords; j0 += tile_width)
            convolve_chunk(conv, f, g, packed_src, r0, j0, t_begin, t_end, panel.data(), phase_stage.data(),
                           block_len);
        if (dst_phases > 1)
          interleave_phase(phase_stage.data(), block_len, (t_end - t_begin) * tile_ch, coords, dst_phases, f,
                           stage.data(), stage_len);
      }

      // Copy out [dst_lo, dst_hi) of each destination row of the range and batch, bias added.
      const int64_t dst_first =
          plan.m_begin * dst_phases + plan.dst_base;  // destination of a segment's start
      const int64_t dst_lo = std::max<int64_t>(dst_first, 0);
      const int64_t dst_hi = std::min<int64_t>(dst_first + count * dst_phases, plan.dst_len);
      if (dst_hi <= dst_lo) continue;
      const int64_t oc_begin = t_begin * tile_ch, oc_end = std::min(dst_ch, t_end * tile_ch);
      for (int64_t n_local = 0; n_local < n_count; ++n_local)
        store_stage_rows(
            (dst_phases > 1 ? stage.data() : phase_stage.data()) + n_local * segment * dst_phases, stage_len,
            dst_first, oc_end - oc_begin, bias ? bias + g * dst_ch + oc_begin : nullptr,
            dst + (((n_begin + n_local) * groups + g) * dst_ch + oc_begin) * plan.dst_len, plan.dst_len,
            dst_lo, dst_hi);
    }
  });
}

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
