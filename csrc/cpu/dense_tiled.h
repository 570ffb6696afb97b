// Register-blocked direct convolution for dense and grouped problems (CPU).
//
// Included by the per-ISA translation units (baseline and AVX2+FMA+F16C); everything lives in
// conv1d_ext::cpu::CPU_CAPABILITY so each build gets its own copy (no ODR clash between ISAs).
//
// Design (expected effects and measurements: benchmarks/NOTES_cpu_dense.md):
// * Forward and backward-input share one engine ("direct conv over packed source blocks"):
//   a work item is (batch, group, block of Lb output positions). The item first packs the source rows
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
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif

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
template <typename acc>
constexpr int64_t tile_width() { return kTileVecs * AccVec<acc>::size(); }

// Micro-tile of the backward-weight kernel: vectors of out channels × (in channel, tap) columns.
constexpr int kWgradVecs = 2;
constexpr int kWgradCols = 6;
constexpr int64_t kWgradBlock = 512;               // positions per backward-weight work item
constexpr int64_t kWgradPanelBytes = 128 * 1024;   // grad_output panels reused per column tile (L2)

// Per-thread source block budget. The micro-kernel reads the L1 micro-panel, not this block, so the
// block may exceed L2; long blocks keep the per-row copies in and out long (the packing and the
// output stores walk a row in runs of the block length; short runs are latency-bound).
constexpr int64_t kSourceBlockBytes = 256 * 1024;

// ---- source packing ----
// Packed block of one work item: for each source channel c and phase r, a row of row_len values
//   row[j] = src[(m0 + j) * phases + r + base]   (0 outside [0, src_len)).
// With phases = stride, tap t of output m reads phase (t*d) % s at j = (m - m0) + (t*d) / s:
// contiguous in m, so the micro-kernel's vector loads need no gather.
template <typename scalar_t>
inline void pack_source_row(const scalar_t* src, int64_t src_len, int64_t m0, int64_t phases, int64_t phase,
                            int64_t base, int64_t row_len, acc_t<scalar_t>* row) {
  using acc = acc_t<scalar_t>;
  const int64_t first = (m0 * phases + phase + base);  // source position of row[0]
  // Valid j: 0 <= first + j*phases < src_len.
  int64_t j_lo = first >= 0 ? 0 : ceil_div(-first, phases);
  int64_t j_hi = first >= src_len ? 0 : ceil_div(src_len - first, phases);  // exclusive
  j_lo = std::min(j_lo, row_len);
  j_hi = std::max(j_lo, std::min(j_hi, row_len));
  std::fill(row, row + j_lo, acc(0));
  if (phases == 1) {
    convert_to_acc(src + first + j_lo, row + j_lo, j_hi - j_lo);
  } else {
    const scalar_t* s = src + first;
    for (int64_t j = j_lo; j < j_hi; ++j) row[j] = static_cast<acc>(s[j * phases]);
  }
  std::fill(row + j_hi, row + row_len, acc(0));
}

// All phases of one source row in a single sequential pass (each source element read once):
// rows[r * row_len + j] = src[(m0 + j) * phases + r + base]. Equivalent to pack_source_row per phase.
template <typename scalar_t>
inline void pack_source_phases(const scalar_t* src, int64_t src_len, int64_t m0, int64_t phases, int64_t base,
                               int64_t row_len, acc_t<scalar_t>* rows) {
  using acc = acc_t<scalar_t>;
  if (phases == 1) {
    pack_source_row(src, src_len, m0, 1, 0, base, row_len, rows);
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
  const scalar_t* sp = src + first;
  for (int64_t j = j_lo; j < j_hi; ++j)
    for (int64_t r = 0; r < phases; ++r) rows[r * row_len + j] = static_cast<acc>(sp[j * phases + r]);
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

// A direct convolution "dst = sum over (red channel, tap) of w * packed src", general enough for the
// forward (phase-split source) and the backward-input (phase-split destination).
// Destination element of block coordinate m and destination phase f: m * dst_phases + f + dst_base.
// Source position packed for block coordinate m0 + j, source phase r: (m0 + j) * src_phases + r + src_base.
struct DirectPlan {
  int64_t batch, groups;
  int64_t red_ch;   // source (reduction) channels per group
  int64_t out_ch;   // destination channels per group
  int64_t src_len, dst_len;
  int64_t src_phases, src_base;
  int64_t dst_phases, dst_base;
  int64_t m_begin, m_end;               // block coordinates covering every destination element
  std::vector<std::vector<Tap>> taps;   // per destination phase
  int64_t max_shift;
};

// sum[c][v] = (accumulate ? out[c][v] : 0) + sum_r w[r][c] * panel[r][v*W + lane];
// the tile is written back to out (row stride ld). The panel is contiguous and aligned (tile width
// per step), so the kTileVecs loads never split a cache line and the stream prefetches well.
template <typename acc>
inline void conv_microtile(const acc* panel, const acc* w, int64_t reduction, bool accumulate,
                           acc* out, int64_t ld) {
  constexpr int W = AccVec<acc>::size();
  constexpr int TW = kTileVecs * W;
  AccVec<acc> sum[kTileCh][kTileVecs];
  for (int c = 0; c < kTileCh; ++c)
    for (int v = 0; v < kTileVecs; ++v)
      sum[c][v] = accumulate ? AccVec<acc>::loadu(out + c * ld + v * W) : AccVec<acc>(acc(0));
  for (int64_t r = 0; r < reduction; ++r) {
    const acc* s = panel + r * TW;
    AccVec<acc> x[kTileVecs];
    for (int v = 0; v < kTileVecs; ++v) x[v] = AccVec<acc>::loadu(s + v * W);
    const acc* wr = w + r * kTileCh;
    for (int c = 0; c < kTileCh; ++c) {
      const AccVec<acc> wc(wr[c]);
      for (int v = 0; v < kTileVecs; ++v) sum[c][v] = at::vec::fmadd(wc, x[v], sum[c][v]);
    }
  }
  for (int c = 0; c < kTileCh; ++c)
    for (int v = 0; v < kTileVecs; ++v) sum[c][v].store(out + c * ld + v * W);
}

// Gathers the micro-panel of one tile of positions: panel[r][0, TW) = packed[offs[r] + j0 + (0, TW)].
// This is im2col of one tile only (reduction chunk × tile width): it is reused by every channel tile,
// so its cost is 1 / (channel tiles) of the micro-kernel's loads.
template <typename acc>
inline void gather_panel(const acc* packed, const int64_t* offs, int64_t j0, int64_t reduction, acc* panel) {
  constexpr int W = AccVec<acc>::size();
  constexpr int TW = kTileVecs * W;
  for (int64_t r = 0; r < reduction; ++r) {
    const acc* s = packed + offs[r] + j0;
    for (int v = 0; v < kTileVecs; ++v) AccVec<acc>::loadu(s + v * W).store(panel + r * TW + v * W);
  }
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

// Most reduction steps per pass over the output-channel tiles: the micro-panel (tile width values per
// step: 96 bytes in float) stays in L1 (32 KiB) beside the weights streaming from L2 while every
// channel tile reuses it.
constexpr int64_t kReductionChunk = 192;

// Picks the block length Lb (a multiple of the tile width) so the packed source block fits the
// budget, and there are enough items for every thread.
template <typename acc>
inline int64_t choose_block(int64_t rows, int64_t max_shift, int64_t count, int64_t outer_items,
                            int64_t min_block) {
  const int64_t tw = tile_width<acc>();
  int64_t lb = kSourceBlockBytes / (rows * (int64_t)sizeof(acc)) - max_shift;
  lb = std::max<int64_t>(lb, min_block);
  lb = std::min<int64_t>(lb, 2048);
  lb = std::min<int64_t>(lb, round_up(std::max<int64_t>(count, 1), tw));
  // At least 4 items per thread when the problem allows it (load balance).
  const int64_t want_items = 4 * (int64_t)at::get_num_threads();
  if (outer_items * ceil_div(count, lb) < want_items) {
    const int64_t per = ceil_div(want_items, std::max<int64_t>(outer_items, 1));
    lb = std::min(lb, std::max<int64_t>(tw, ceil_div(count, per)));
  }
  return std::max<int64_t>(tw, round_up(lb, tw));
}

// weight_at(g, out channel in group, red channel in group, weight tap) -> acc.
template <typename scalar_t, typename WeightAt>
void run_direct(const DirectPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
                WeightAt weight_at) {
  using acc = acc_t<scalar_t>;
  constexpr int64_t tw = tile_width<acc>();
  const int64_t count = plan.m_end - plan.m_begin;
  const int64_t G = plan.groups;
  const int64_t ch_tiles = ceil_div(plan.out_ch, kTileCh);
  const int64_t nphases = plan.dst_phases;
  const int64_t rows = plan.red_ch * plan.src_phases;

  const int64_t lb = choose_block<acc>(rows, plan.max_shift, count, plan.batch * G, tw);
  const int64_t row_len = padded_row_len<acc>(lb + plan.max_shift);
  const int64_t nblocks = std::max<int64_t>(ceil_div(count, lb), 1);

  // Packed weights per destination phase: [g][ch tile][red channel][tap of the phase][kTileCh],
  // zero beyond out_ch so partial tiles need no special case. Offsets: reduction step -> packed src.
  std::vector<std::vector<acc>> wpack(nphases);
  std::vector<std::vector<int64_t>> offs(nphases);
  for (int64_t f = 0; f < nphases; ++f) {
    const auto& taps = plan.taps[f];
    const int64_t nt = (int64_t)taps.size();
    const int64_t red = plan.red_ch * nt;
    offs[f].resize(std::max<int64_t>(red, 1));
    for (int64_t c = 0; c < plan.red_ch; ++c)
      for (int64_t k = 0; k < nt; ++k)
        offs[f][c * nt + k] = (c * plan.src_phases + taps[k].src_phase) * row_len + taps[k].shift;
    wpack[f].assign(std::max<int64_t>(G * ch_tiles * red * kTileCh, 1), acc(0));
    for (int64_t g = 0; g < G; ++g)
      for (int64_t t = 0; t < ch_tiles; ++t)
        for (int64_t c = 0; c < plan.red_ch; ++c)
          for (int64_t k = 0; k < nt; ++k)
            for (int64_t i = 0; i < kTileCh; ++i) {
              const int64_t oc = t * kTileCh + i;
              if (oc >= plan.out_ch) continue;
              wpack[f][(((g * ch_tiles + t) * plan.red_ch + c) * nt + k) * kTileCh + i] =
                  weight_at(g, oc, c, taps[k].weight_tap);
            }
  }

  const int64_t ch_pad = ch_tiles * kTileCh;
  // Reduction chunks of equal size, at most kReductionChunk steps.
  std::vector<int64_t> chunk(nphases);
  for (int64_t f = 0; f < nphases; ++f) {
    const int64_t red = std::max<int64_t>(plan.red_ch * (int64_t)plan.taps[f].size(), 1);
    chunk[f] = ceil_div(red, ceil_div(red, kReductionChunk));
  }
  const int64_t stage_len = lb * nphases;
  const int64_t items = plan.batch * G * nblocks;
  // The micro-kernel writes into a per-thread stage that is copied out (bias added) in long runs.
  // Writing full tiles straight into the destination measured slower (dense B8 C64 L4096 k3 forward
  // 72 vs 92 GF/s): the micro-kernel's stores then miss the cache and stall it.
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> packed(rows * row_len);
    // phase_stage: one destination phase of the block for every channel, [channel][j];
    // stage: the phases interleaved back into destination order (only when there are several).
    std::vector<acc> phase_stage(ch_pad * lb);
    std::vector<acc> stage(nphases > 1 ? ch_pad * stage_len : 0);
    std::vector<acc> panel_buf(kReductionChunk * tw + 64 / sizeof(acc));
    acc* panel = panel_buf.data();
    while (reinterpret_cast<uintptr_t>(panel) % 64 != 0) ++panel;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t blk = item % nblocks;
      const int64_t g = (item / nblocks) % G;
      const int64_t n = item / (nblocks * G);
      const int64_t m0 = plan.m_begin + blk * lb;
      const int64_t mcount = std::min(lb, plan.m_end - m0);

      const scalar_t* src_g = src + (n * G + g) * plan.red_ch * plan.src_len;
      for (int64_t c = 0; c < plan.red_ch; ++c)
        pack_source_phases(src_g + c * plan.src_len, plan.src_len, m0, plan.src_phases, plan.src_base,
                           row_len, packed.data() + c * plan.src_phases * row_len);

      const int64_t d_first = m0 * nphases + plan.dst_base;  // destination index of stage index 0
      const int64_t dst_g = n * G * plan.out_ch + g * plan.out_ch;  // first destination row of the group
      for (int64_t f = 0; f < nphases; ++f) {
        const int64_t red = plan.red_ch * (int64_t)plan.taps[f].size();
        const acc* wg = wpack[f].data() + g * ch_tiles * red * kTileCh;
        for (int64_t j0 = 0; j0 < mcount; j0 += tw) {
          if (red == 0) {  // no tap reaches this phase: its elements are zero
            for (int64_t c = 0; c < ch_pad; ++c) std::fill_n(phase_stage.data() + c * lb + j0, tw, acc(0));
            continue;
          }
          for (int64_t r0 = 0; r0 < red; r0 += chunk[f]) {
            const int64_t rn = std::min(chunk[f], red - r0);
            gather_panel(packed.data(), offs[f].data() + r0, j0, rn, panel);
            for (int64_t t = 0; t < ch_tiles; ++t) {
              const acc* wt = wg + (t * red + r0) * kTileCh;
              acc* out = phase_stage.data() + t * kTileCh * lb + j0;
              conv_microtile<acc>(panel, wt, rn, r0 > 0, out, lb);
            }
          }
        }
        if (nphases > 1) {
          for (int64_t c = 0; c < ch_pad; ++c)
            for (int64_t j = 0; j < mcount; ++j) stage[c * stage_len + j * nphases + f] = phase_stage[c * lb + j];
        }
      }

      // Copy the staged elements of this block, [d_lo, d_hi) of each destination row.
      const acc* out_stage = nphases > 1 ? stage.data() : phase_stage.data();
      const int64_t d_lo = std::max<int64_t>(d_first, 0);
      const int64_t d_hi = std::min<int64_t>(d_first + mcount * nphases, plan.dst_len);
      if (d_hi <= d_lo) continue;
      for (int64_t oc = 0; oc < plan.out_ch; ++oc) {
        const int64_t ch = g * plan.out_ch + oc;
        const acc b = bias ? static_cast<acc>(bias[ch]) : acc(0);
        scalar_t* drow = dst + (dst_g + oc) * plan.dst_len;
        const acc* srow = out_stage + oc * stage_len - d_first;  // indexed by destination index
        convert_from_acc(srow + d_lo, drow + d_lo, d_hi - d_lo, b);
      }
    }
  });
}

// ---- backward-weight ----

// sum[v][k] += sum_j goT[j][v*W + lane] * src[offs[k] + j]  over j in [0, len); sum added into
// part[k][v*W + lane] (row stride ld).
template <typename acc>
inline void wgrad_microtile(const acc* goT, int64_t go_ld, const acc* src, const int64_t* offs,
                            int64_t len, acc* part, int64_t ld) {
  constexpr int W = AccVec<acc>::size();
  AccVec<acc> sum[kWgradVecs][kWgradCols];
  for (int v = 0; v < kWgradVecs; ++v)
    for (int k = 0; k < kWgradCols; ++k) sum[v][k] = AccVec<acc>(acc(0));
  const acc* s[kWgradCols];
  for (int k = 0; k < kWgradCols; ++k) s[k] = src + offs[k];
  for (int64_t j = 0; j < len; ++j) {
    AccVec<acc> gv[kWgradVecs];
    for (int v = 0; v < kWgradVecs; ++v) gv[v] = AccVec<acc>::loadu(goT + j * go_ld + v * W);
    for (int k = 0; k < kWgradCols; ++k) {
      const AccVec<acc> xk(s[k][j]);
      for (int v = 0; v < kWgradVecs; ++v) sum[v][k] = at::vec::fmadd(gv[v], xk, sum[v][k]);
    }
  }
  for (int k = 0; k < kWgradCols; ++k)
    for (int v = 0; v < kWgradVecs; ++v) {
      acc* p = part + k * ld + v * W;
      (AccVec<acc>::loadu(p) + sum[v][k]).store(p);
    }
}

template <typename scalar_t>
void wgrad_direct(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                  scalar_t* grad_weight) {
  using acc = acc_t<scalar_t>;
  constexpr int64_t W = AccVec<acc>::size();
  const int64_t G = p.groups, Cig = p.in_per_group, Cog = p.out_per_group, K = p.kernel_size;
  const int64_t s = p.stride, d = p.dilation;
  const int64_t ncol = Cig * K;
  const int64_t ncol_pad = round_up(ncol, kWgradCols);
  constexpr int64_t kPanel = kWgradVecs * W;
  const int64_t oc_pad = round_up(Cog, kPanel);
  const int64_t wsize = G * ncol_pad * oc_pad;  // one slice: [g][col][oc]

  if (p.batch == 0 || p.out_len == 0) {
    std::fill(grad_weight, grad_weight + p.out_channels * ncol, scalar_t(0));
    return;
  }

  const int64_t max_shift = ((K - 1) * d) / s;
  const int64_t rows = Cig * s;
  // Long blocks: each (panel, column tile) adds its registers into the slice's partial once per block,
  // a read-modify-write of 12 vectors that should stay small beside the block's FMAs.
  int64_t lb = std::min<int64_t>(kWgradBlock, round_up(p.out_len, W));
  if (p.batch * ceil_div(p.out_len, lb) < at::get_num_threads())
    lb = std::max<int64_t>(W, round_up(ceil_div(p.batch * p.out_len, at::get_num_threads()), W));
  const int64_t row_len = padded_row_len<acc>(lb + max_shift);
  const int64_t nblocks = ceil_div(p.out_len, lb);
  const int64_t group_oc = std::max<int64_t>(1, kWgradPanelBytes / (lb * kPanel * (int64_t)sizeof(acc))) * kPanel;
  const int64_t items = p.batch * nblocks;

  // Column k = (in channel c, tap t) reads packed row (c, phase (t*d) % s) at shift (t*d) / s; padding
  // columns read the all-zero row after the block.
  std::vector<int64_t> offs(ncol_pad);
  for (int64_t k = 0; k < ncol_pad; ++k) {
    if (k < ncol) {
      const int64_t c = k / K, t = k % K;
      offs[k] = (c * s + (t * d) % s) * row_len + (t * d) / s;
    } else {
      offs[k] = rows * row_len;
    }
  }

  const int64_t nslices = std::min<int64_t>(at::get_num_threads(), items);
  std::vector<std::vector<acc>> partial(nslices);
  at::parallel_for(0, nslices, 1, [&](int64_t sbegin, int64_t send) {
    std::vector<acc> packed((rows + 1) * row_len);
    std::vector<acc> goT(lb * oc_pad);
    std::vector<acc> gorow(lb);
    for (int64_t slice = sbegin; slice < send; ++slice) {
      std::vector<acc>& part = partial[slice];
      part.assign(wsize, acc(0));
      std::fill(packed.begin() + rows * row_len, packed.end(), acc(0));
      const int64_t i_begin = items * slice / nslices, i_end = items * (slice + 1) / nslices;
      for (int64_t item = i_begin; item < i_end; ++item) {
        const int64_t blk = item % nblocks, n = item / nblocks;
        const int64_t o0 = blk * lb, olen = std::min(lb, p.out_len - o0);
        for (int64_t g = 0; g < G; ++g) {
          const scalar_t* x_g = input + (n * p.in_channels + g * Cig) * p.in_len;
          for (int64_t c = 0; c < Cig; ++c)
            pack_source_phases(x_g + c * p.in_len, p.in_len, o0, s, -p.pad_left, row_len,
                               packed.data() + c * s * row_len);
          // grad_output block as panels of kWgradVecs*W out channels: [panel][pos][channel in panel],
          // zero beyond Cog, so each micro-kernel step loads one contiguous 64-byte line.
          const scalar_t* go_g = grad_output + (n * p.out_channels + g * Cog) * p.out_len + o0;
          for (int64_t oc = 0; oc < oc_pad; ++oc) {
            acc* panel = goT.data() + (oc / kPanel) * lb * kPanel + oc % kPanel;
            if (oc < Cog) {
              convert_to_acc(go_g + oc * p.out_len, gorow.data(), olen);
              for (int64_t j = 0; j < olen; ++j) panel[j * kPanel] = gorow[j];
            } else {
              for (int64_t j = 0; j < olen; ++j) panel[j * kPanel] = acc(0);
            }
          }
          // Panels in groups that fit L2; within a group, the kWgradCols input rows of a column tile
          // stay in L1 while every panel of the group reuses them.
          acc* part_g = part.data() + g * ncol_pad * oc_pad;
          for (int64_t og = 0; og < oc_pad; og += group_oc)
            for (int64_t k0 = 0; k0 < ncol_pad; k0 += kWgradCols)
              for (int64_t oc0 = og; oc0 < std::min(oc_pad, og + group_oc); oc0 += kPanel)
                wgrad_microtile(goT.data() + oc0 * lb, kPanel, packed.data(), offs.data() + k0, olen,
                                part_g + k0 * oc_pad + oc0, oc_pad);
        }
      }
    }
  });

  // Deterministic reduction: slices summed in order, transposed back to (out channel, in channel, tap).
  at::parallel_for(0, G * Cog, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc> row(ncol);
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t g = ch / Cog, oc = ch % Cog;
      for (int64_t k = 0; k < ncol; ++k) {
        acc sum = acc(0);
        for (int64_t sl = 0; sl < nslices; ++sl) sum += partial[sl][(g * ncol_pad + k) * oc_pad + oc];
        row[k] = sum;
      }
      convert_from_acc(row.data(), grad_weight + ch * ncol, ncol);
    }
  });
}

}  // namespace dense_detail

// Every dense or grouped problem (the dispatch never asks for depthwise ones).
inline bool dense_tiled_supports(const Conv1dParams& p) { return p.in_per_group >= 1; }

template <typename scalar_t>
void dense_tiled_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                         const scalar_t* bias, scalar_t* output) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  DirectPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.red_ch = p.in_per_group;
  plan.out_ch = p.out_per_group;
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
  const int64_t K = p.kernel_size, Cig = p.in_per_group, Cog = p.out_per_group;
  run_direct<scalar_t>(plan, input, bias, output, [&](int64_t g, int64_t oc, int64_t c, int64_t t) {
    return static_cast<acc>(weight[((g * Cog + oc) * Cig + c) * K + t]);
  });
}

template <typename scalar_t>
void dense_tiled_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                                scalar_t* grad_input) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  const int64_t s = p.stride, d = p.dilation, K = p.kernel_size;
  // grad_input[i] with i + pad_left = m*s + f collects taps t with (t*d) % s == f from
  // grad_output[m - (t*d - f)/s]; the source block is packed from m0 - cmax so shifts are >= 0.
  const int64_t cmax = ((K - 1) * d) / s;
  DirectPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.red_ch = p.out_per_group;
  plan.out_ch = p.in_per_group;
  plan.src_len = p.out_len;
  plan.dst_len = p.in_len;
  plan.src_phases = 1;
  plan.src_base = -cmax;
  plan.dst_phases = s;
  plan.dst_base = -p.pad_left;
  plan.m_begin = p.pad_left / s;
  plan.m_end = (p.in_len - 1 + p.pad_left) / s + 1;
  plan.taps.resize(s);
  for (int64_t t = 0; t < K; ++t) {
    const int64_t f = (t * d) % s;
    plan.taps[f].push_back({0, cmax - (t * d - f) / s, t});
  }
  plan.max_shift = cmax;
  const int64_t Cig = p.in_per_group, Cog = p.out_per_group;
  run_direct<scalar_t>(plan, grad_output, nullptr, grad_input,
                       [&](int64_t g, int64_t ic, int64_t oc, int64_t t) {
                         return static_cast<acc>(weight[((g * Cog + oc) * Cig + ic) * K + t]);
                       });
}

template <typename scalar_t>
void dense_tiled_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                                 scalar_t* grad_weight) {
  dense_detail::wgrad_direct<scalar_t>(p, grad_output, input, grad_weight);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
