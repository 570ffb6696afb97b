// The forward / backward-input engine of the dense family (dense_tiled.h): a tiled convolution
// "dst = sum over (source channel, tap) of w * packed src", general enough for the forward (phase-split
// source) and the backward-input (phase-split destination). This file holds what its two schedules
// share: the plan, the one weight packing (pack_conv), the one reduction-chunk step (convolve_chunk:
// gather a micro-panel, run the micro-kernel of each channel tile on it), and the stage copy-out. The
// block schedule (block_schedule.h) and the wide schedule (wide_schedule.h) differ only in what a work
// item is and in which order it walks position tiles and reduction chunks; every output element gets the
// same reduction (chunks of chunk_steps, steps in order, the same micro-kernel), so the two schedules give
// bit-identical results, whatever the thread count.
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

// One tap of a destination phase: which packed phase row and which shift within it, and which weight
// tap it multiplies.
struct Tap {
  int64_t src_phase;
  int64_t shift;
  int64_t weight_tap;
};

// The source channels of a group are the reduction (input channels forward, output channels
// backward-input). Destination element of block coordinate m and destination phase f:
// m * dst_phases + f + dst_base. Source position packed for block coordinate m0 + j, source phase r:
// (m0 + j) * src_phases + r + src_base.
struct TiledPlan {
  int64_t batch, groups;
  int64_t src_ch_per_group;
  int64_t dst_ch_per_group;
  int64_t src_len, dst_len;
  int64_t src_phases, src_base;
  int64_t dst_phases, dst_base;
  int64_t m_begin, m_end;              // block coordinates covering every destination element
  std::vector<std::vector<Tap>> taps;  // per destination phase
  int64_t max_shift;
};

// The packed source's element type: bfloat16 on AVX512-BF16 (the paired micro-kernel multiplies it
// directly), else the accumulation type.
template <typename scalar_t>
using packed_source_t = std::conditional_t<kPairedBf16<scalar_t>, scalar_t, acc_t<scalar_t>>;
// Positions per micro-tile for scalar_t.
template <typename scalar_t>
constexpr int64_t kRunTileWidth = kPairedBf16<scalar_t> ? kPairTileWidth : kTileWidth<acc_t<scalar_t>>;
// Output channels per micro-tile for scalar_t.
template <typename scalar_t>
constexpr int64_t kRunTileCh = kPairedBf16<scalar_t> ? kPairTileCh : kTileCh;

// Most reduction steps per pass over the output-channel tiles: the micro-panel (tile width values per
// step) stays in L1 beside the weights streaming from L2 while every channel tile reuses it.
constexpr int64_t kReductionChunk = 192;

// A thread's micro-panel: kReductionChunk steps of one position tile, 64-byte aligned.
template <typename scalar_t>
class PanelBuffer {
 public:
  PanelBuffer() : buf_(kReductionChunk * kRunTileWidth<scalar_t> + 64 / sizeof(acc_t<scalar_t>)) {
    data_ = buf_.data();
    while (reinterpret_cast<uintptr_t>(data_) % 64 != 0) ++data_;
  }
  acc_t<scalar_t>* data() { return data_; }

 private:
  std::vector<acc_t<scalar_t>> buf_;
  acc_t<scalar_t>* data_;
};

// What pack_conv makes of a plan's weights, per destination phase f.
template <typename scalar_t>
struct PackedConv {
  // [group][ch tile][weight row][tile_ch], a weight row being one reduction step (source channel, tap of
  // the phase) or, paired, one pair of steps as bfloat16 bits; zero beyond dst_ch so partial tiles need
  // no special case.
  std::vector<std::vector<acc_t<scalar_t>>> weights;
  // Per reduction step: its offset in the packed source block (paired: an odd reduction's last step
  // reads the zero row after the block).
  std::vector<std::vector<int64_t>> src_offsets;
  std::vector<int64_t> steps_padded;  // reduction steps (paired: rounded up to even)
  std::vector<int64_t> weight_rows;   // weight rows per channel tile (paired: steps_padded / 2)
  std::vector<int64_t> chunk_steps;   // steps per reduction chunk: equal chunks of <= kReductionChunk
  int64_t ch_tiles = 0;
};

// weight_at(group, destination channel in group, source channel in group, weight tap) -> acc; row_len:
// the packed source's row stride (src_ch * src_phases rows, then, paired, one zero row).
template <typename scalar_t, typename WeightAt>
PackedConv<scalar_t> pack_conv(const TiledPlan& plan, int64_t row_len, WeightAt weight_at) {
  using acc = acc_t<scalar_t>;
  constexpr bool paired = kPairedBf16<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const int64_t groups = plan.groups, src_ch = plan.src_ch_per_group, dst_ch = plan.dst_ch_per_group;
  const int64_t dst_phases = plan.dst_phases, rows = src_ch * plan.src_phases;
  PackedConv<scalar_t> conv;
  conv.ch_tiles = ceil_div(dst_ch, tile_ch);
  const int64_t ch_tiles = conv.ch_tiles;
  std::vector<std::vector<acc>> step_weights(dst_phases);
  conv.weights.resize(dst_phases);
  conv.src_offsets.resize(dst_phases);
  conv.steps_padded.resize(dst_phases);
  conv.weight_rows.resize(dst_phases);
  conv.chunk_steps.resize(dst_phases);
  for (int64_t f = 0; f < dst_phases; ++f) {
    const auto& taps = plan.taps[f];
    const int64_t n_taps = (int64_t)taps.size();
    const int64_t reduction = src_ch * n_taps;
    conv.steps_padded[f] = paired ? round_up(reduction, 2) : reduction;
    conv.weight_rows[f] = paired ? conv.steps_padded[f] / 2 : reduction;
    conv.src_offsets[f].assign(std::max<int64_t>(conv.steps_padded[f], 1), rows * row_len);
    for (int64_t c = 0; c < src_ch; ++c)
      for (int64_t k = 0; k < n_taps; ++k)
        conv.src_offsets[f][c * n_taps + k] =
            (c * plan.src_phases + taps[k].src_phase) * row_len + taps[k].shift;
    conv.weights[f].assign(std::max<int64_t>(groups * ch_tiles * conv.weight_rows[f] * tile_ch, 1), acc(0));
    if (paired)
      step_weights[f].assign(std::max<int64_t>(groups * ch_tiles * conv.steps_padded[f] * tile_ch, 1),
                             acc(0));
    const int64_t chunked = std::max<int64_t>(conv.steps_padded[f], 1);
    conv.chunk_steps[f] = ceil_div(chunked, ceil_div(chunked, kReductionChunk));
    if (paired) conv.chunk_steps[f] = round_up(conv.chunk_steps[f], 2);
  }
  // The weights in step layout [group][ch tile][step][tile_ch] (zero beyond dst_ch and on a paired odd
  // step): the packed weights themselves, or (paired) the floats their bfloat16 pairs are made of.
  // Filled in parallel over (group, block of kPackChannels source channels), every phase in one pass. In
  // backward-input's layout a source channel's weights are one contiguous row, and a (phase, tile) of the
  // packed weights holds a contiguous run of source channels: reading a few rows (L2) and writing runs
  // of kPackChannels × taps × tile_ch values keeps both sides sequential. Walked phase by phase, tile by
  // tile over all channels, the rows were re-read from L3 / DRAM once per phase and every store went to
  // another page, which for short problems with large weights cost as much as the convolution.
  constexpr int64_t kPackChannels = 8;
  const int64_t channel_blocks = ceil_div(src_ch, kPackChannels);
  at::parallel_for(0, groups * channel_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gb = begin; gb < end; ++gb) {
      const int64_t g = gb / channel_blocks;
      const int64_t c_begin = (gb % channel_blocks) * kPackChannels;
      const int64_t c_end = std::min(src_ch, c_begin + kPackChannels);
      for (int64_t f = 0; f < dst_phases; ++f) {
        const auto& taps = plan.taps[f];
        const int64_t n_taps = (int64_t)taps.size();
        acc* values = paired ? step_weights[f].data() : conv.weights[f].data();
        for (int64_t t = 0; t < ch_tiles; ++t) {
          acc* tile_weights = values + (g * ch_tiles + t) * conv.steps_padded[f] * tile_ch;
          const int64_t valid = std::min<int64_t>(tile_ch, dst_ch - t * tile_ch);
          for (int64_t c = c_begin; c < c_end; ++c)
            for (int64_t k = 0; k < n_taps; ++k)
              for (int64_t i = 0; i < valid; ++i)
                tile_weights[(c * n_taps + k) * tile_ch + i] =
                    weight_at(g, t * tile_ch + i, c, taps[k].weight_tap);
        }
      }
    }
  });
#if defined(C1D_AVX512_BF16)
  if constexpr (paired) {  // pairs of steps as bfloat16 words
    for (int64_t f = 0; f < dst_phases; ++f)
      at::parallel_for(0, groups * ch_tiles, 1, [&](int64_t begin, int64_t end) {
        const acc* values = step_weights[f].data() + begin * conv.steps_padded[f] * tile_ch;
        acc* words = conv.weights[f].data() + begin * conv.weight_rows[f] * tile_ch;
        for (int64_t r = 0; r < (end - begin) * conv.weight_rows[f];
             ++r, values += 2 * tile_ch, words += tile_ch)
          for (int64_t i = 0; i < tile_ch; ++i) words[i] = pair_word(values[i], values[tile_ch + i]);
      });
  }
#endif
  return conv;
}

// The reduction chunk starting at step r0 of destination phase f, for one tile of positions j0 of the
// packed source block of group g: gathers the micro-panel once, then runs the micro-kernel of every
// channel tile t in [t_begin, t_end) on it, into stage + (t - t_begin) * tile_ch * stage_stride + j0
// (row stride stage_stride), accumulating onto the previous chunks unless r0 == 0.
template <typename scalar_t>
inline void convolve_chunk(const PackedConv<scalar_t>& conv, int64_t f, int64_t g,
                           const packed_source_t<scalar_t>* packed_src, int64_t r0, int64_t j0,
                           int64_t t_begin, int64_t t_end, acc_t<scalar_t>* panel, acc_t<scalar_t>* stage,
                           int64_t stage_stride) {
  using acc = acc_t<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const int64_t reduction = conv.steps_padded[f];
  const int64_t steps = std::min(conv.chunk_steps[f], reduction - r0);
  const acc* group_weights = conv.weights[f].data() + g * conv.ch_tiles * conv.weight_rows[f] * tile_ch;
#if defined(C1D_AVX512_BF16)
  if constexpr (kPairedBf16<scalar_t>) {
    gather_pair_panel(packed_src, conv.src_offsets[f].data() + r0, j0, steps, panel);
    for (int64_t t = t_begin; t < t_end; ++t)
      pair_microtile(panel, group_weights + (t * conv.weight_rows[f] + r0 / 2) * tile_ch, steps / 2, r0 > 0,
                     stage + (t - t_begin) * tile_ch * stage_stride + j0, stage_stride);
    return;
  }
#endif
  if constexpr (!kPairedBf16<scalar_t>) {
    gather_panel(packed_src, conv.src_offsets[f].data() + r0, j0, steps, panel);
    for (int64_t t = t_begin; t < t_end; ++t)
      conv_microtile<acc>(panel, group_weights + (t * reduction + r0) * tile_ch, steps, r0 > 0,
                          stage + (t - t_begin) * tile_ch * stage_stride + j0, stage_stride);
  }
}

// stage[c][j * phases + f] = phase_stage[c][j] for channels c < channels and j < count: one destination
// phase interleaved back into destination order (rows phase_stride and stage_len apart).
template <typename acc>
inline void interleave_phase(const acc* phase_stage, int64_t phase_stride, int64_t channels, int64_t count,
                             int64_t phases, int64_t f, acc* stage, int64_t stage_len) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t j = 0; j < count; ++j)
      stage[c * stage_len + j * phases + f] = phase_stage[c * phase_stride + j];
}

// Copies the elements [dst_lo, dst_hi) of n_ch staged rows (stage index i: destination index
// i + dst_first; rows stage_len apart) into destination rows dst + c * dst_len, bias[c] added when
// there is a bias.
template <typename scalar_t>
inline void store_stage_rows(const acc_t<scalar_t>* stage, int64_t stage_len, int64_t dst_first, int64_t n_ch,
                             const scalar_t* bias, scalar_t* dst, int64_t dst_len, int64_t dst_lo,
                             int64_t dst_hi) {
  using acc = acc_t<scalar_t>;
  for (int64_t c = 0; c < n_ch; ++c) {
    const acc b = bias ? static_cast<acc>(bias[c]) : acc(0);
    convert_from_acc(stage + c * stage_len + (dst_lo - dst_first), dst + c * dst_len + dst_lo,
                     dst_hi - dst_lo, b);
  }
}

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
