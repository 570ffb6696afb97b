// The float micro-kernels of the dense family (dense_tiled.h): the register tiles of the forward /
// backward-input engine (conv_microtile, with its micro-panel gather) and of backward-weight
// (wgrad_microtile). Their bfloat16-pair twins for the AVX512-BF16 build are in paired_bf16.h.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

// Micro-tile of the forward / backward-input kernel: kTileCh output channels × kTileVecs vectors of
// positions, 12 accumulators: enough independent FMA chains to cover the FMA latency on two pipes (the
// reasoning and the measurements: docs/cpu-kernels.md).
constexpr int kTileCh = 4;
constexpr int kTileVecs = 3;

// Micro-tile of the backward-weight kernel: vectors of out channels × (in channel, tap) columns.
constexpr int kWgradVecs = 2;
constexpr int kWgradCols = 6;

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

}  // namespace dense_detail
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
