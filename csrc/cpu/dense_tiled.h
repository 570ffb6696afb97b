// Register-blocked (tiled) convolution for dense and grouped problems, and for the forward of depthwise
// problems with a large channel multiplier (CPU; the dispatch is in kernels_impl.h).
//
// Included by the per-ISA translation units (baseline and AVX2+FMA+F16C); everything lives in
// conv1d_ext::cpu::CPU_CAPABILITY so each build gets its own copy (no ODR clash between ISAs).
//
// Design (expected effects and measurements: benchmarks/NOTES_cpu_dense.md):
// * Forward and backward-input share one engine (run_tiled, a convolution over packed source blocks):
//   a work item is (batch, group, block of block_len output positions). The item first packs the source rows
//   it reads into a per-thread buffer of accumulation type (float for 16-bit types, so conversion
//   happens once per source element, not once per FMA), zero-padded (no bounds tests in the hot loop)
//   and, for stride > 1, split into stride phases so every tap reads contiguous memory.
//   Then a micro-kernel keeps a tile of kTileCh output channels × kTileVecs vectors of positions in
//   registers (4 × 3 = 12 ymm accumulators: Zen 3 has 2 FMA pipes of latency 4, so ≥ 8 independent
//   chains are needed) and walks the reduction (source channel, tap): per step it loads kTileVecs
//   source vectors and broadcasts kTileCh packed weights, 12 FMAs per 7 loads.
// * Backward-input at stride 1 is that forward with transposed, flipped weights. At stride s > 1 the
//   grad_input positions are split by phase (i + pad_left) mod s; each phase is a stride-1 convolution
//   of grad_output with the taps that hit it, so there are no divisibility tests, no zero insertion
//   and no atomics. Phases are interleaved back in a per-thread block stage.
// * Backward-weight is a GEMM with a long reduction over batch × out_len. A work item is
//   (batch, block of positions); it packs grad_output transposed ([pos][out channel]) and the input
//   block as in the forward; the micro-kernel keeps 2 vectors of out channels × 6 (in channel, tap)
//   columns in registers (broadcast one input value, FMA with a vector of grad_output), so the
//   reduction runs along registers without horizontal sums. The reduction is split into one slice
//   per thread (contiguous ranges of items, each slice its own buffer: no false sharing), summed in
//   slice order afterwards: deterministic for a given thread count.
// * Few positions per row and large weights (the transposed convolutions of vocoders and codec decoders):
//   a "wide" schedule of each engine (run_tiled_wide, wgrad_wide; the rules where they are defined) that
//   packs every batch's operands once and parallelises over output channels / weight tiles, so each
//   weight is fetched about once and reused over all batches' positions.
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif

#include <algorithm>

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

// Micro-tile of the forward / backward-input kernel: output channels × vectors of positions.
constexpr int kTileCh = 4;
constexpr int kTileVecs = 3;

// Micro-tile of the backward-weight kernel: vectors of out channels × (in channel, tap) columns.
constexpr int kWgradVecs = 2;
constexpr int kWgradCols = 6;
constexpr int64_t kWgradBlock = 512;              // positions per backward-weight work item
constexpr int64_t kWgradPanelBytes = 128 * 1024;  // grad_output panels reused per column tile (L2)
// The backward-weight reduction is split into partial sums ("slices") fixed by the problem alone, never
// by the thread count, so grad_weight is bit-identical whatever torch.set_num_threads says: at most
// kWgradMaxSlices slices (enough for 16 cores), fewer when their buffers would pass kWgradSliceBudget or
// when a slice would reduce fewer than kWgradMinSlicePositions positions, and blocks short enough for
// kWgradMinItems work items. Each slice costs a weight-sized buffer to zero and to add up: a slice of P
// positions does P multiply-adds per element of that buffer, so short ones spend their time on the buffer
// (B2 C256 L128 k3 took 24 ms in 16 slices of 16 positions against ~1 ms of multiply-adds).
constexpr int64_t kWgradMaxSlices = 16;
constexpr int64_t kWgradMinItems = 16;
constexpr int64_t kWgradSliceBudget = 64 << 20;
constexpr int64_t kWgradMinSlicePositions = 256;

// Per-thread source block budget. The micro-kernel reads the L1 micro-panel, not this block, so the
// block may exceed L2; long blocks keep the per-row copies in and out long (the packing and the
// output stores walk a row in runs of the block length; short runs are latency-bound).
constexpr int64_t kSourceBlockBytes = 256 * 1024;

// ---- source packing ----
// Packed block of one work item: for each source channel c and phase r, a row of row_len values
//   row[j] = src[(m0 + j) * phases + r + base]   (0 outside [0, src_len)).
// With phases = stride, tap t of output m reads phase (t*d) % s at j = (m - m0) + (t*d) / s:
// contiguous in m, so the micro-kernel's vector loads need no gather.

// The one-phase case: row[j] = src[first + j] (0 outside [0, src_len)).
// packed_t: the accumulation type (converted once here), or scalar_t itself for the paired bfloat16
// micro-kernel, which multiplies bfloat16 directly.
template <typename scalar_t, typename packed_t>
inline void pack_source_row(const scalar_t* src, int64_t src_len, int64_t first, int64_t row_len,
                            packed_t* row) {
  // Valid j: 0 <= first + j < src_len.
  const int64_t j_lo = std::clamp<int64_t>(-first, 0, row_len);
  const int64_t j_hi = std::max(j_lo, std::min(src_len - first, row_len));
  std::fill(row, row + j_lo, packed_t(0));
  // src + first alone may point before the row (or offset a null empty tensor): undefined behaviour.
  if (j_hi > j_lo) {
    if constexpr (std::is_same_v<packed_t, scalar_t>)
      std::copy(src + (first + j_lo), src + (first + j_hi), row + j_lo);
    else
      convert_to_acc(src + (first + j_lo), row + j_lo, j_hi - j_lo);
  }
  std::fill(row + j_hi, row + row_len, packed_t(0));
}

// All phases of one source row in a single sequential pass (each source element read once):
// rows[r * row_len + j] = src[(m0 + j) * phases + r + base].
template <typename scalar_t, typename packed_t>
inline void pack_source_phases(const scalar_t* src, int64_t src_len, int64_t m0, int64_t phases, int64_t base,
                               int64_t row_len, packed_t* rows) {
  using acc = packed_t;
  if (phases == 1) {
    pack_source_row(src, src_len, m0 + base, row_len, rows);
    return;
  }
  const int64_t first = m0 * phases + base;  // source position of rows[0][0]
  // j in [j_lo, j_hi): every phase of column j is inside [0, src_len).
  int64_t j_lo = first >= 0 ? 0 : ceil_div(-first, phases);
  int64_t j_hi = src_len - phases - first >= 0 ? (src_len - phases - first) / phases + 1 : 0;
  j_lo = std::min(j_lo, row_len);
  j_hi = std::max(j_lo, std::min(j_hi, row_len));
  auto edge = [&](int64_t j) {
    for (int64_t r = 0; r < phases; ++r) {
      const int64_t pos = first + j * phases + r;
      rows[r * row_len + j] = (pos >= 0 && pos < src_len) ? static_cast<acc>(src[pos]) : acc(0);
    }
  };
  for (int64_t j = 0; j < j_lo; ++j) edge(j);
  // Indexed from src: src + first may point before the row (or offset a null empty tensor), which is
  // undefined behaviour even unread (UBSan's pointer-overflow check reports it).
  for (int64_t j = j_lo; j < j_hi; ++j)
    for (int64_t r = 0; r < phases; ++r)
      rows[r * row_len + j] = static_cast<acc>(src[first + j * phases + r]);
  for (int64_t j = j_hi; j < row_len; ++j) edge(j);
}

// ---- forward / backward-input engine ----

// One tap of a destination phase: which packed phase row and which shift within it, and which weight
// tap it multiplies.
struct Tap {
  int64_t src_phase;
  int64_t shift;
  int64_t weight_tap;
};

// A tiled convolution "dst = sum over (source channel, tap) of w * packed src", general enough for the
// forward (phase-split source) and the backward-input (phase-split destination). The source channels
// of a group are the reduction (input channels forward, output channels backward-input).
// Destination element of block coordinate m and destination phase f: m * dst_phases + f + dst_base.
// Source position packed for block coordinate m0 + j, source phase r: (m0 + j) * src_phases + r + src_base.
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

// Positions per micro-tile step: kTileVecs vectors.
template <typename acc>
constexpr int64_t kTileWidth = kTileVecs * AccVec<acc>::size();

// sum[c][v] = (accumulate ? out[c][v] : 0) + sum_r w[r][c] * panel[r][v*W + lane];
// the tile is written back to out (row stride row_stride). The panel is contiguous and aligned (tile
// width per step), so the kTileVecs loads never split a cache line and the stream prefetches well.
template <typename acc>
inline void conv_microtile(const acc* panel, const acc* w, int64_t reduction, bool accumulate, acc* out,
                           int64_t row_stride) {
  using Vec = AccVec<acc>;
  constexpr int W = Vec::size();
  Vec sum[kTileCh][kTileVecs];
  for (int c = 0; c < kTileCh; ++c)
    for (int v = 0; v < kTileVecs; ++v)
      sum[c][v] = accumulate ? Vec::loadu(out + c * row_stride + v * W) : Vec(acc(0));
  for (int64_t r = 0; r < reduction; ++r) {
    const acc* step = panel + r * kTileWidth<acc>;
    Vec x[kTileVecs];
    for (int v = 0; v < kTileVecs; ++v) x[v] = Vec::loadu(step + v * W);
    const acc* w_step = w + r * kTileCh;
    for (int c = 0; c < kTileCh; ++c) {
      const Vec wc(w_step[c]);
      for (int v = 0; v < kTileVecs; ++v) sum[c][v] = at::vec::fmadd(wc, x[v], sum[c][v]);
    }
  }
  for (int c = 0; c < kTileCh; ++c)
    for (int v = 0; v < kTileVecs; ++v) sum[c][v].store(out + c * row_stride + v * W);
}

// Gathers the micro-panel of one tile of positions:
// panel[r][0, tile width) = packed[src_offsets[r] + j0 + (0, tile width)].
// This is im2col of one tile only (reduction chunk × tile width): it is reused by every channel tile,
// so its cost is 1 / (channel tiles) of the micro-kernel's loads.
template <typename acc>
inline void gather_panel(const acc* packed, const int64_t* src_offsets, int64_t j0, int64_t reduction,
                         acc* panel) {
  constexpr int W = AccVec<acc>::size();
  for (int64_t r = 0; r < reduction; ++r) {
    const acc* src = packed + src_offsets[r] + j0;
    for (int v = 0; v < kTileVecs; ++v)
      AccVec<acc>::loadu(src + v * W).store(panel + r * kTileWidth<acc> + v * W);
  }
}

#if defined(C1D_AVX512_BF16)
// ---- bfloat16 on AVX512-BF16: the paired micro-kernel ----
// vdpbf16ps multiplies a PAIR of bfloat16 per float lane and adds both (exact) products into the lane:
// 32 multiply-adds per 512-bit instruction, twice float FMA's (measured on this project's Zen 4 host:
// 109-117 against 50-55 GFLOP/s on one loaded core, zmm dpbf16 against ymm/zmm FMA chains). So the
// reduction steps go in pairs (2q, 2q+1): the micro-panel holds per pair and position the two source
// values as one 32-bit lane (step 2q low, 2q+1 high), the packed weights per pair and channel the two
// weights as one 32-bit word, broadcast. The source block stays bfloat16 (no conversion at all). An odd
// reduction gets a last pair whose second step reads a zero row with a zero weight.
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

template <typename scalar_t>
constexpr bool kPairedBf16 = std::is_same_v<scalar_t, c10::BFloat16>;
#else
template <typename scalar_t>
constexpr bool kPairedBf16 = false;
constexpr int64_t kPairTileWidth = 0;
constexpr int kPairTileCh = 0;
#endif

// Positions per micro-tile of run_tiled for scalar_t.
template <typename scalar_t>
constexpr int64_t kRunTileWidth = kPairedBf16<scalar_t> ? kPairTileWidth : kTileWidth<acc_t<scalar_t>>;
// Output channels per micro-tile of run_tiled for scalar_t.
template <typename scalar_t>
constexpr int64_t kRunTileCh = kPairedBf16<scalar_t> ? kPairTileCh : kTileCh;

// Row stride of packed blocks: an odd number of 64-byte lines, so rows walked one after the other
// spread over all L1 sets (a power-of-two stride would map them onto a few sets and thrash).
template <typename acc>
inline int64_t padded_row_len(int64_t len) {
  constexpr int64_t line = 64 / sizeof(acc);
  int64_t lines = ceil_div(len, line);
  if (lines % 2 == 0) ++lines;
  return lines * line;
}

// Most reduction steps per pass over the output-channel tiles: the micro-panel (tile width values per
// step: 96 bytes in float) stays in L1 (32 KiB) beside the weights streaming from L2 while every
// channel tile reuses it.
constexpr int64_t kReductionChunk = 192;

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

// ---- wide schedule of the forward / backward-input engine (few positions per row, large weights) ----
//
// run_tiled's items are (batch, group, block of positions), and each position tile of an item walks all
// the packed weights of a destination phase (src_ch × taps × dst_ch values) before the next tile. When
// those exceed L2 (HiFi-GAN's upsampler 512→256 k16 s8: 1 MiB per phase; DAC's 1536→768: 9.4 MiB per
// phase, 75 MiB in all, beyond L3) and a row holds only ~100 positions (4 tiles of 24), each weight
// fetched from L3 / DRAM feeds one tile, and the last tile of every row is mostly padding (87 positions
// in 96, 101 in 120). The wide schedule:
// * lays the rows of several batches end to end (a "batch block"), each batch a segment of count +
//   max_shift coordinates (so a tap's shift never reaches the next batch's data; the outputs of the gap
//   coordinates are computed and dropped): tiles run across batches, and only the block's end is padding;
// * packs the source of every (batch block, group) once, up front;
// * makes an item (group, range of output-channel tiles, batch block) and walks it chunk-major: for each
//   reduction chunk, every position tile of the block, every channel tile of the range. A chunk's
//   weights of the range (≤ kWideChunkWeightBytes) stay in L2 while all the block's tiles use them; the
//   stage (range channels × block, ≤ kWideStageBytes) holds the partial sums between chunks.
// Per output element the reduction (chunks of chunk_steps, steps in order, in the same micro-kernel) is the
// one run_tiled does: the two schedules give bit-identical results, whatever the thread count.
//
// Rule (numbers in benchmarks/NOTES_cpu_dense.md): wide when one phase's packed weights of a group
// exceed kWideWeightBudget (half of a 1 MiB L2) and a row has at most kWideMaxPositions block coordinates
// (the packed source of all batches is then about the size of the source itself).
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
// (what run_tiled sizes its packed rows and source offsets by).
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

// packed_weights, src_offsets, chunk_steps: as run_tiled builds them, with wide_blocks(plan).block_len as
// the block length and row_len its packed row length.
template <typename scalar_t>
void run_tiled_wide(const TiledPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
                    const std::vector<std::vector<acc_t<scalar_t>>>& packed_weights,
                    const std::vector<std::vector<int64_t>>& src_offsets,
                    const std::vector<int64_t>& chunk_steps, const std::vector<int64_t>& steps_padded,
                    const std::vector<int64_t>& weight_rows, int64_t row_len) {
  using acc = acc_t<scalar_t>;
  constexpr bool paired = kPairedBf16<scalar_t>;  // as in run_tiled
  using packed_t = std::conditional_t<paired, scalar_t, acc>;
  constexpr int64_t tile_width = kRunTileWidth<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const WideBlocks blocks = wide_blocks<scalar_t>(plan);
  const int64_t segment = blocks.segment, block_len = blocks.block_len;
  const int64_t count = plan.m_end - plan.m_begin;
  const int64_t groups = plan.groups, batch = plan.batch;
  const int64_t src_ch = plan.src_ch_per_group, dst_ch = plan.dst_ch_per_group;
  const int64_t src_phases = plan.src_phases, dst_phases = plan.dst_phases;
  const int64_t ch_tiles = ceil_div(dst_ch, tile_ch);
  // + paired: the zero row an odd reduction's last step reads
  const int64_t source_size =
      (src_ch * src_phases + (paired ? 1 : 0)) * row_len;  // one packed (batch block, group)

  // Channel tiles per item: a reduction chunk's weights of the range within kWideChunkWeightBytes, the
  // item's stage within kWideStageBytes, and enough items.
  int64_t max_chunk = 1;
  for (int64_t f = 0; f < dst_phases; ++f) max_chunk = std::max(max_chunk, chunk_steps[f]);
  const int64_t chunk_tile_bytes = max_chunk * tile_ch * (int64_t)sizeof(acc);
  const int64_t stage_tile_bytes = tile_ch * block_len * dst_phases * (int64_t)sizeof(acc);
  const int64_t max_range =
      std::min(kWideChunkWeightBytes / chunk_tile_bytes, kWideStageBytes / stage_tile_bytes);
  int64_t n_ranges = ceil_div(ch_tiles, std::clamp<int64_t>(max_range, 1, ch_tiles));
  // At least 2 items per thread, and with few items a whole number per thread (HiFi-GAN B4 runs in ~8
  // items: 5 items on 2 threads took 3 item times). The partition never changes any sum.
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
    std::vector<packed_t> phase_rows(src_phases * segment);
    for (int64_t row = begin; row < end; ++row) {  // row = (batch * groups + group) * src_ch + channel
      const int64_t c = row % src_ch, g = (row / src_ch) % groups, n = row / (src_ch * groups);
      const int64_t block = n / blocks.batches_per_block, n_local = n % blocks.batches_per_block;
      packed_t* rows =
          packed.data() + (block * groups + g) * source_size + c * src_phases * row_len + n_local * segment;
      pack_source_phases(src + row * plan.src_len, plan.src_len, plan.m_begin, src_phases, plan.src_base,
                         segment, phase_rows.data());
      for (int64_t r = 0; r < src_phases; ++r)
        std::copy_n(phase_rows.data() + r * segment, segment, rows + r * row_len);
    }
  });

  const int64_t stage_len = block_len * dst_phases;
  const int64_t items = groups * n_ranges * blocks.n_blocks;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> phase_stage(range_ch * block_len);
    std::vector<acc> stage(dst_phases > 1 ? range_ch * stage_len : 0);
    std::vector<acc> panel_buf(kReductionChunk * tile_width + 64 / sizeof(acc));
    acc* panel = panel_buf.data();
    while (reinterpret_cast<uintptr_t>(panel) % 64 != 0) ++panel;
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
        const int64_t reduction = steps_padded[f];
        const acc* group_weights = packed_weights[f].data() + g * ch_tiles * weight_rows[f] * tile_ch;
        if (reduction == 0)  // no tap reaches this phase: its elements are zero
          std::fill(phase_stage.begin(), phase_stage.end(), acc(0));
        for (int64_t r0 = 0; r0 < reduction; r0 += chunk_steps[f]) {
          const int64_t steps = std::min(chunk_steps[f], reduction - r0);
          for (int64_t j0 = 0; j0 < coords; j0 += tile_width) {
#if defined(C1D_AVX512_BF16)
            if constexpr (paired) {
              gather_pair_panel(packed_src, src_offsets[f].data() + r0, j0, steps, panel);
              for (int64_t t = t_begin; t < t_end; ++t)
                pair_microtile(panel, group_weights + (t * weight_rows[f] + r0 / 2) * tile_ch, steps / 2,
                               r0 > 0, phase_stage.data() + (t - t_begin) * tile_ch * block_len + j0,
                               block_len);
            } else
#endif
            {
              gather_panel(packed_src, src_offsets[f].data() + r0, j0, steps, panel);
              for (int64_t t = t_begin; t < t_end; ++t)
                conv_microtile<acc>(panel, group_weights + (t * reduction + r0) * tile_ch, steps, r0 > 0,
                                    phase_stage.data() + (t - t_begin) * tile_ch * block_len + j0, block_len);
            }
          }
        }
        if (dst_phases > 1) {
          for (int64_t c = 0; c < (t_end - t_begin) * tile_ch; ++c)
            for (int64_t j = 0; j < coords; ++j)
              stage[c * stage_len + j * dst_phases + f] = phase_stage[c * block_len + j];
        }
      }

      // Copy out [dst_lo, dst_hi) of each destination row of the range and batch, bias added.
      const acc* out_stage = dst_phases > 1 ? stage.data() : phase_stage.data();
      const int64_t dst_first =
          plan.m_begin * dst_phases + plan.dst_base;  // destination of a segment's start
      const int64_t dst_lo = std::max<int64_t>(dst_first, 0);
      const int64_t dst_hi = std::min<int64_t>(dst_first + count * dst_phases, plan.dst_len);
      if (dst_hi <= dst_lo) continue;
      for (int64_t n_local = 0; n_local < n_count; ++n_local)
        for (int64_t oc = t_begin * tile_ch; oc < std::min(dst_ch, t_end * tile_ch); ++oc) {
          const acc b = bias ? static_cast<acc>(bias[g * dst_ch + oc]) : acc(0);
          scalar_t* dst_row = dst + (((n_begin + n_local) * groups + g) * dst_ch + oc) * plan.dst_len;
          const acc* stage_row =
              out_stage + (oc - t_begin * tile_ch) * stage_len + n_local * segment * dst_phases - dst_first;
          convert_from_acc(stage_row + dst_lo, dst_row + dst_lo, dst_hi - dst_lo, b);
        }
    }
  });
}

// weight_at(group, destination channel in group, source channel in group, weight tap) -> acc.
template <typename scalar_t, typename WeightAt>
void run_tiled(const TiledPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
               WeightAt weight_at) {
  using acc = acc_t<scalar_t>;
  // bfloat16 on AVX512-BF16: the paired micro-kernel, the source block kept in bfloat16.
  constexpr bool paired = kPairedBf16<scalar_t>;
  using packed_t = std::conditional_t<paired, scalar_t, acc>;
  constexpr int64_t tile_width = kRunTileWidth<scalar_t>;
  constexpr int64_t tile_ch = kRunTileCh<scalar_t>;
  const int64_t count = plan.m_end - plan.m_begin;
  const int64_t groups = plan.groups;
  const int64_t src_ch = plan.src_ch_per_group, dst_ch = plan.dst_ch_per_group;
  const int64_t ch_tiles = ceil_div(dst_ch, tile_ch);
  const int64_t dst_phases = plan.dst_phases;
  const int64_t rows = src_ch * plan.src_phases;

  // The wide schedule (above) packs blocks of whole rows of several batches.
  const bool wide = use_wide_schedule<acc>(plan);
  const int64_t block_len =
      wide ? wide_blocks<scalar_t>(plan).block_len
           : choose_block_len<packed_t>(rows, plan.max_shift, count, plan.batch * groups, tile_width);
  const int64_t row_len = padded_row_len<acc>(block_len + plan.max_shift);
  const int64_t n_blocks = std::max<int64_t>(ceil_div(count, block_len), 1);

  // Per destination phase f: packed weights [group][ch tile][weight row][tile_ch], a weight row being one
  // reduction step (source channel, tap of the phase) or, paired, one pair of steps as bfloat16 bits;
  // zero beyond dst_ch so partial tiles need no special case; and per reduction step its offset in the
  // packed source block (paired: an odd reduction's last step reads the zero row after the block).
  std::vector<std::vector<acc>> packed_weights(dst_phases), step_weights(dst_phases);
  std::vector<std::vector<int64_t>> src_offsets(dst_phases);
  std::vector<int64_t> steps_padded(dst_phases), weight_rows(dst_phases);
  for (int64_t f = 0; f < dst_phases; ++f) {
    const auto& taps = plan.taps[f];
    const int64_t n_taps = (int64_t)taps.size();
    const int64_t reduction = src_ch * n_taps;
    steps_padded[f] = paired ? round_up(reduction, 2) : reduction;
    weight_rows[f] = paired ? steps_padded[f] / 2 : reduction;
    src_offsets[f].assign(std::max<int64_t>(steps_padded[f], 1), rows * row_len);
    for (int64_t c = 0; c < src_ch; ++c)
      for (int64_t k = 0; k < n_taps; ++k)
        src_offsets[f][c * n_taps + k] = (c * plan.src_phases + taps[k].src_phase) * row_len + taps[k].shift;
    packed_weights[f].assign(std::max<int64_t>(groups * ch_tiles * weight_rows[f] * tile_ch, 1), acc(0));
    if (paired)
      step_weights[f].assign(std::max<int64_t>(groups * ch_tiles * steps_padded[f] * tile_ch, 1), acc(0));
  }
  // The weights in step layout [group][ch tile][step][tile_ch] (zero beyond dst_ch and on a paired odd
  // step): the packed weights themselves, or (paired) the floats their bfloat16 pairs are made of.
  // Filled in parallel over (group, block of kPackChannels source channels), every phase in one pass. In
  // backward-input's layout a source channel's weights are one contiguous row, and a (phase, tile) of the
  // packed weights holds a contiguous run of source channels: reading a few rows (L2) and writing runs
  // of kPackChannels × taps × tile_ch values keeps both sides sequential. Walked phase by phase, tile by
  // tile over all channels, the rows were re-read from L3 / DRAM once per phase and every store went to
  // another page; for short problems with large weights (DAC's upsampler: 75 MiB packed) the packing
  // took as long as the convolution.
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
        acc* values = paired ? step_weights[f].data() : packed_weights[f].data();
        for (int64_t t = 0; t < ch_tiles; ++t) {
          acc* tile_weights = values + (g * ch_tiles + t) * steps_padded[f] * tile_ch;
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
        const acc* values = step_weights[f].data() + begin * steps_padded[f] * tile_ch;
        acc* words = packed_weights[f].data() + begin * weight_rows[f] * tile_ch;
        for (int64_t r = 0; r < (end - begin) * weight_rows[f]; ++r, values += 2 * tile_ch, words += tile_ch)
          for (int64_t i = 0; i < tile_ch; ++i) words[i] = pair_word(values[i], values[tile_ch + i]);
      });
  }
#endif

  const int64_t padded_ch = ch_tiles * tile_ch;
  // Reduction chunks of equal size, at most kReductionChunk steps (paired: an even number).
  std::vector<int64_t> chunk_steps(dst_phases);
  for (int64_t f = 0; f < dst_phases; ++f) {
    const int64_t reduction = std::max<int64_t>(steps_padded[f], 1);
    chunk_steps[f] = ceil_div(reduction, ceil_div(reduction, kReductionChunk));
    if (paired) chunk_steps[f] = round_up(chunk_steps[f], 2);
  }
  if (wide) {
    run_tiled_wide<scalar_t>(plan, src, bias, dst, packed_weights, src_offsets, chunk_steps, steps_padded,
                             weight_rows, row_len);
    return;
  }
  const int64_t stage_len = block_len * dst_phases;
  const int64_t items = plan.batch * groups * n_blocks;
  // The micro-kernel writes into a per-thread stage that is copied out (bias added) in long runs.
  // Writing full tiles straight into the destination measured slower (dense B8 C64 L4096 k3 forward
  // 72 vs 92 GF/s): the micro-kernel's stores then miss the cache and stall it.
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    // Paired: one more row, of zeros, for an odd reduction's last pair.
    std::vector<packed_t> packed_src((rows + (paired ? 1 : 0)) * row_len, packed_t(0));
    // phase_stage: one destination phase of the block for every channel, [channel][j];
    // stage: the phases interleaved back into destination order (only when there are several).
    std::vector<acc> phase_stage(padded_ch * block_len);
    std::vector<acc> stage(dst_phases > 1 ? padded_ch * stage_len : 0);
    std::vector<acc> panel_buf(kReductionChunk * tile_width + 64 / sizeof(acc));
    acc* panel = panel_buf.data();
    while (reinterpret_cast<uintptr_t>(panel) % 64 != 0) ++panel;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item % n_blocks;
      const int64_t g = (item / n_blocks) % groups;
      const int64_t n = item / (n_blocks * groups);
      const int64_t m0 = plan.m_begin + block * block_len;
      const int64_t m_count = std::min(block_len, plan.m_end - m0);

      const scalar_t* src_group = src + (n * groups + g) * src_ch * plan.src_len;
      for (int64_t c = 0; c < src_ch; ++c)
        pack_source_phases(src_group + c * plan.src_len, plan.src_len, m0, plan.src_phases, plan.src_base,
                           row_len, packed_src.data() + c * plan.src_phases * row_len);

      const int64_t dst_first = m0 * dst_phases + plan.dst_base;  // destination index of stage index 0
      const int64_t dst_group_row = (n * groups + g) * dst_ch;    // first destination row of the group
      for (int64_t f = 0; f < dst_phases; ++f) {
        const int64_t reduction = steps_padded[f];
        const acc* group_weights = packed_weights[f].data() + g * ch_tiles * weight_rows[f] * tile_ch;
        for (int64_t j0 = 0; j0 < m_count; j0 += tile_width) {
          if (reduction == 0) {  // no tap reaches this phase: its elements are zero
            for (int64_t c = 0; c < padded_ch; ++c)
              std::fill_n(phase_stage.data() + c * block_len + j0, tile_width, acc(0));
            continue;
          }
          for (int64_t r0 = 0; r0 < reduction; r0 += chunk_steps[f]) {
            const int64_t steps = std::min(chunk_steps[f], reduction - r0);
#if defined(C1D_AVX512_BF16)
            if constexpr (paired) {
              gather_pair_panel(packed_src.data(), src_offsets[f].data() + r0, j0, steps, panel);
              for (int64_t t = 0; t < ch_tiles; ++t) {
                const acc* tile_weights = group_weights + (t * weight_rows[f] + r0 / 2) * tile_ch;
                acc* out = phase_stage.data() + t * tile_ch * block_len + j0;
                pair_microtile(panel, tile_weights, steps / 2, r0 > 0, out, block_len);
              }
            } else
#endif
            {
              gather_panel(packed_src.data(), src_offsets[f].data() + r0, j0, steps, panel);
              for (int64_t t = 0; t < ch_tiles; ++t) {
                const acc* tile_weights = group_weights + (t * reduction + r0) * tile_ch;
                acc* out = phase_stage.data() + t * tile_ch * block_len + j0;
                conv_microtile<acc>(panel, tile_weights, steps, r0 > 0, out, block_len);
              }
            }
          }
        }
        if (dst_phases > 1) {
          for (int64_t c = 0; c < padded_ch; ++c)
            for (int64_t j = 0; j < m_count; ++j)
              stage[c * stage_len + j * dst_phases + f] = phase_stage[c * block_len + j];
        }
      }

      // Copy the staged elements of this block, [dst_lo, dst_hi) of each destination row.
      const acc* out_stage = dst_phases > 1 ? stage.data() : phase_stage.data();
      const int64_t dst_lo = std::max<int64_t>(dst_first, 0);
      const int64_t dst_hi = std::min<int64_t>(dst_first + m_count * dst_phases, plan.dst_len);
      if (dst_hi <= dst_lo) continue;
      for (int64_t oc = 0; oc < dst_ch; ++oc) {
        const acc b = bias ? static_cast<acc>(bias[g * dst_ch + oc]) : acc(0);
        scalar_t* dst_row = dst + (dst_group_row + oc) * plan.dst_len;
        const acc* stage_row = out_stage + oc * stage_len - dst_first;  // indexed by destination index
        convert_from_acc(stage_row + dst_lo, dst_row + dst_lo, dst_hi - dst_lo, b);
      }
    }
  });
}

// ---- backward-weight ----

// sum[v][k] = sum_j grad_out_t[j][v*W + lane] * src[src_offsets[k] + j] over j in [0, len), added into
// partial[k][v*W + lane] (row stride row_stride).
template <typename acc>
inline void wgrad_microtile(const acc* grad_out_t, int64_t grad_out_stride, const acc* src,
                            const int64_t* src_offsets, int64_t len, acc* partial, int64_t row_stride) {
  using Vec = AccVec<acc>;
  constexpr int W = Vec::size();
  Vec sum[kWgradVecs][kWgradCols];
  for (int v = 0; v < kWgradVecs; ++v)
    for (int k = 0; k < kWgradCols; ++k) sum[v][k] = Vec(acc(0));
  const acc* col[kWgradCols];
  for (int k = 0; k < kWgradCols; ++k) col[k] = src + src_offsets[k];
  for (int64_t j = 0; j < len; ++j) {
    Vec go[kWgradVecs];
    for (int v = 0; v < kWgradVecs; ++v) go[v] = Vec::loadu(grad_out_t + j * grad_out_stride + v * W);
    for (int k = 0; k < kWgradCols; ++k) {
      const Vec xk(col[k][j]);
      for (int v = 0; v < kWgradVecs; ++v) sum[v][k] = at::vec::fmadd(go[v], xk, sum[v][k]);
    }
  }
  for (int k = 0; k < kWgradCols; ++k)
    for (int v = 0; v < kWgradVecs; ++v) {
      acc* dst = partial + k * row_stride + v * W;
      (Vec::loadu(dst) + sum[v][k]).store(dst);
    }
}

#if defined(C1D_AVX512_BF16)
// wgrad_microtile's paired twin (bfloat16 on AVX512-BF16): the positions go in pairs. grad_out_t[q][lane]
// holds the bfloat16 pair (2q, 2q+1) of out channel `lane` of the panel (32 channels: 2 zmm); the source
// pair of column k is simply the 32 bits at src + src_offsets[k] + 2q (adjacent positions of one packed
// row). An odd len's last pair has a zero second grad_output and its second source value masked to zero
// too (the element past the block is real data: 0 * inf would be NaN).
constexpr int kPairWgradVecs = 2;
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
#endif

// Backward-weight's source offsets: column k = (in channel c, tap t) reads packed row (c, phase (t*d) % s)
// at shift (t*d) / s of a block packed by stride phase with rows of row_len; padding columns (k beyond
// in_per_group * K) read the all-zero row after the block's in_per_group * stride rows.
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

// ---- wide schedule of backward-weight (short reduction, large weight) ----
//
// wgrad_tiled parallelises the reduction (batch × out_len): slices of items, each its own weight-sized
// partial. When batch × blocks of kWgradBlock positions cannot make kWgradMinItems items, it shortens the
// blocks; for the transposed convolutions of vocoders (HiFi-GAN B4: 4 rows of 86 positions, weight
// 512×256×16 = 8 MiB) that meant 24-position blocks: every 24 FMA steps of the micro-kernel were followed
// by a read-modify-write of its 12 accumulators in an 8 MiB partial (L3), and 8 slices × 8 MiB to zero and
// sum at the end (measured 0.23× F.conv_transpose1d's weight gradient). The wide schedule parallelises the
// output instead: grad_output and the input of every batch are packed once, up front, and an item is
// (group, panel group of out channels, range of column tiles); it walks the whole reduction (batch, then
// blocks of kWgradBlock positions) into its own small tile (≤ kWgradWideTileBytes, in L2), so nothing is
// split, zeroed or summed afterwards. Each element's reduction order (per (batch, block) the micro-kernel's
// sum from zero over the positions, added in batch and block order) is fixed by the problem: the result is
// bit-identical whatever the thread count.
//
// Rule: wide when the whole reduction has at most kWgradBlock × kWgradMinItems positions (batch ×
// out_len), i.e. when the slices of wgrad_tiled would hold at most one 512-position block each: then its
// partials cost as much as they save. The packed copies are about the size of grad_output and the input.
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
  const int64_t stride = p.stride, dilation = p.dilation;
  const int64_t n_cols = in_ch_per_group * K;  // columns: (in channel, tap)
  const int64_t n_cols_padded = round_up(n_cols, kWgradCols);
  const int64_t out_ch_padded = round_up(out_ch_per_group, kPanelCh);
  const int64_t n_panels = out_ch_padded / kPanelCh;
  const int64_t max_shift = ((K - 1) * dilation) / stride;
  const int64_t rows = in_ch_per_group * stride;
  const int64_t row_len = padded_row_len<acc>(out_len + max_shift);
  const int64_t source_size = (rows + 1) * row_len;  // + an all-zero row read by the padding columns
  const int64_t grad_out_size = out_ch_padded * out_len;

  // Every (batch, group): the input packed by stride phase from position 0, and grad_output as panels
  // [panel][pos][channel in panel] (zero beyond out_ch_per_group), as wgrad_tiled packs one block.
  std::vector<acc> packed_src(batch * groups * source_size);
  std::vector<acc> packed_grad_out(batch * groups * grad_out_size);
  at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> grad_out_row(out_len);
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t n = ng / groups, g = ng % groups;
      acc* src = packed_src.data() + ng * source_size;
      const scalar_t* input_group = input + (n * p.in_channels + g * in_ch_per_group) * p.in_len;
      for (int64_t c = 0; c < in_ch_per_group; ++c)
        pack_source_phases(input_group + c * p.in_len, p.in_len, 0, stride, -p.pad_left, row_len,
                           src + c * stride * row_len);
      std::fill_n(src + rows * row_len, row_len, acc(0));
      acc* grad_out_t = packed_grad_out.data() + ng * grad_out_size;
      const scalar_t* grad_out_group = grad_output + (n * p.out_channels + g * out_ch_per_group) * out_len;
      for (int64_t oc = 0; oc < out_ch_padded; ++oc) {
        acc* panel = grad_out_t + (oc / kPanelCh) * out_len * kPanelCh + oc % kPanelCh;
        if (oc < out_ch_per_group) {
          convert_to_acc(grad_out_group + oc * out_len, grad_out_row.data(), out_len);
          for (int64_t j = 0; j < out_len; ++j) panel[j * kPanelCh] = grad_out_row[j];
        } else {
          for (int64_t j = 0; j < out_len; ++j) panel[j * kPanelCh] = acc(0);
        }
      }
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
        for (int64_t pos0 = 0; pos0 < out_len; pos0 += block) {
          const int64_t len = std::min(block, out_len - pos0);
          for (int64_t col0 = col_begin; col0 < col_end; col0 += kWgradCols)
            for (int64_t panel = panel_begin; panel < panel_end; ++panel)
              wgrad_microtile(
                  grad_out_t + (panel * out_len + pos0) * kPanelCh, kPanelCh, src + pos0,
                  src_offsets.data() + col0, len,
                  tile.data() + (col0 - col_begin) * tile_stride + (panel - panel_begin) * kPanelCh,
                  tile_stride);
        }
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
  const int64_t stride = p.stride, dilation = p.dilation;
  const int64_t n_cols = in_ch_per_group * K;  // columns: (in channel, tap)
  const int64_t n_cols_padded = round_up(n_cols, kWgradCols);
  // Out channels per grad_output panel (paired: 2 zmm of 16).
  constexpr int64_t kPanelCh = paired ? 32 : kWgradVecs * W;
  const int64_t out_ch_padded = round_up(out_ch_per_group, kPanelCh);
  const int64_t slice_size = groups * n_cols_padded * out_ch_padded;  // one slice: [group][col][out ch]

  if (p.batch == 0 || p.out_len == 0) {
    std::fill(grad_weight, grad_weight + p.out_channels * n_cols, scalar_t(0));
    return;
  }
  // bfloat16 included: on the float micro-kernel (converted once when packed), not the paired one
  if (use_wide_wgrad(p)) {
    wgrad_wide(p, grad_output, input, grad_weight);
    return;
  }

  const int64_t max_shift = ((K - 1) * dilation) / stride;
  const int64_t rows = in_ch_per_group * stride;
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
          const scalar_t* input_group = input + (n * p.in_channels + g * in_ch_per_group) * p.in_len;
          for (int64_t c = 0; c < in_ch_per_group; ++c)
            pack_source_phases(input_group + c * p.in_len, p.in_len, pos0, stride, -p.pad_left, row_len,
                               packed_src.data() + c * stride * row_len);
          // grad_output block as panels of kPanelCh out channels: [panel][pos][channel in panel],
          // zero beyond out_ch_per_group, so each micro-kernel step loads one contiguous 64-byte line.
          const scalar_t* grad_out_group =
              grad_output + (n * p.out_channels + g * out_ch_per_group) * p.out_len + pos0;
          if constexpr (paired) {
            // Paired panels: [panel][position pair][channel in panel] as 32-bit bfloat16 pairs.
            for (int64_t oc = 0; oc < out_ch_padded; ++oc) {
              acc* panel = grad_out_t.data() + (oc / kPanelCh) * (block_len / 2) * kPanelCh + oc % kPanelCh;
              const scalar_t* row = oc < out_ch_per_group ? grad_out_group + oc * p.out_len : nullptr;
              for (int64_t q = 0; q < ceil_div(pos_count, 2); ++q) {
                const uint32_t lo = row ? row[2 * q].x : 0;
                const uint32_t hi = row && 2 * q + 1 < pos_count ? row[2 * q + 1].x : 0;
                const uint32_t bits = lo | (hi << 16);
                std::memcpy(panel + q * kPanelCh, &bits, sizeof(bits));
              }
            }
          } else {
            for (int64_t oc = 0; oc < out_ch_padded; ++oc) {
              acc* panel = grad_out_t.data() + (oc / kPanelCh) * block_len * kPanelCh + oc % kPanelCh;
              if (oc < out_ch_per_group) {
                convert_to_acc(grad_out_group + oc * p.out_len, grad_out_row.data(), pos_count);
                for (int64_t j = 0; j < pos_count; ++j) panel[j * kPanelCh] = grad_out_row[j];
              } else {
                for (int64_t j = 0; j < pos_count; ++j) panel[j * kPanelCh] = acc(0);
              }
            }
          }
          // Panels in groups that fit L2; within a group, the kWgradCols input rows of a column tile
          // stay in L1 while every panel of the group reuses them.
          acc* slice_group = slice_sum.data() + g * n_cols_padded * out_ch_padded;
          for (int64_t panel_group = 0; panel_group < out_ch_padded; panel_group += panel_group_ch)
            for (int64_t col0 = 0; col0 < n_cols_padded; col0 += kWgradCols)
              for (int64_t oc0 = panel_group; oc0 < std::min(out_ch_padded, panel_group + panel_group_ch);
                   oc0 += kPanelCh)
#if defined(C1D_AVX512_BF16)
                if constexpr (paired)
                  pair_wgrad_microtile(grad_out_t.data() + oc0 * block_len / 2, packed_src.data(),
                                       src_offsets.data() + col0, pos_count,
                                       slice_group + col0 * out_ch_padded + oc0, out_ch_padded);
                else
#endif
                  wgrad_microtile(grad_out_t.data() + oc0 * block_len, kPanelCh, packed_src.data(),
                                  src_offsets.data() + col0, pos_count,
                                  slice_group + col0 * out_ch_padded + oc0, out_ch_padded);
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

// Every problem with at least one input channel per group: dense and grouped ones, and the forward of
// depthwise ones with a large channel multiplier (kernels_impl.h), where reusing each packed input row
// across a tile of output channels beats the depthwise kernels.
inline bool dense_tiled_supports(const Conv1dParams& p) { return p.in_per_group >= 1; }

template <typename scalar_t>
void dense_tiled_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                         const scalar_t* bias, scalar_t* output) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  TiledPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.src_ch_per_group = p.in_per_group;
  plan.dst_ch_per_group = p.out_per_group;
  plan.src_len = p.in_len;
  plan.dst_len = p.out_len;
  plan.src_phases = p.stride;
  plan.src_base = -p.pad_left;
  plan.dst_phases = 1;
  plan.dst_base = 0;
  plan.m_begin = 0;
  plan.m_end = p.out_len;
  plan.taps.resize(1);
  for (int64_t t = 0; t < p.kernel_size; ++t)
    plan.taps[0].push_back({(t * p.dilation) % p.stride, (t * p.dilation) / p.stride, t});
  plan.max_shift = ((p.kernel_size - 1) * p.dilation) / p.stride;
  const int64_t K = p.kernel_size, in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  run_tiled<scalar_t>(plan, input, bias, output, [&](int64_t g, int64_t oc, int64_t ic, int64_t t) {
    return static_cast<acc>(weight[((g * out_ch_per_group + oc) * in_ch_per_group + ic) * K + t]);
  });
}

template <typename scalar_t>
void dense_tiled_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                                scalar_t* grad_input) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  const int64_t stride = p.stride, dilation = p.dilation, K = p.kernel_size;
  // grad_input[i] with i + pad_left = m*stride + f collects taps t with (t*dilation) % stride == f from
  // grad_output[m - (t*dilation - f)/stride]; the source block is packed from m0 - max_shift so shifts
  // are >= 0.
  const int64_t max_shift = ((K - 1) * dilation) / stride;
  TiledPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.src_ch_per_group = p.out_per_group;
  plan.dst_ch_per_group = p.in_per_group;
  plan.src_len = p.out_len;
  plan.dst_len = p.in_len;
  plan.src_phases = 1;
  plan.src_base = -max_shift;
  plan.dst_phases = stride;
  plan.dst_base = -p.pad_left;
  plan.m_begin = p.pad_left / stride;
  plan.m_end = (p.in_len - 1 + p.pad_left) / stride + 1;
  plan.taps.resize(stride);
  for (int64_t t = 0; t < K; ++t) {
    const int64_t f = (t * dilation) % stride;
    plan.taps[f].push_back({0, max_shift - (t * dilation - f) / stride, t});
  }
  plan.max_shift = max_shift;
  const int64_t in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  run_tiled<scalar_t>(
      plan, grad_output, nullptr, grad_input, [&](int64_t g, int64_t ic, int64_t oc, int64_t t) {
        return static_cast<acc>(weight[((g * out_ch_per_group + oc) * in_ch_per_group + ic) * K + t]);
      });
}

template <typename scalar_t>
void dense_tiled_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                                 scalar_t* grad_weight) {
  dense_detail::wgrad_tiled<scalar_t>(p, grad_output, input, grad_weight);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
