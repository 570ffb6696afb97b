// The tiled implicit GEMM of the dense/grouped kernels: the Problem interface, the tile grid, each
// thread's share of the global loads, the double-buffered K loop, and the FMA core (implicit_gemm_kernel,
// the "dense" family of dense.cu). The tensor-core core (tc_implicit_gemm_kernel in tensor_core.cu) runs
// the backward Problems through the same tile grid, loads and K loop; only its shared-memory layout and
// its math differ. The Problems themselves are in gemm_problems.cuh.
//
// Per block: a BM x BN tile of C = A (M x K) * B (K x N), K walked in steps of BK through two shared-memory
// buffers. In the FMA core each of the 256 threads accumulates a TM x TN = 4 x 4 register tile, rows
// m = m0 + 4*tx + i and columns n = n0 + 4*ty + j, so each K step reads its 4 A and 4 B values as one
// 16-byte shared-memory load each (two for double) instead of eight scalar loads.
//
// Problem interface (gemm_problems.cuh; ForwardProblem is the simplest):
//   using T; using A (accumulator);
//   int64_t m_size, n_size, num_z;          // tile grid: m_size/n_size are upper bounds over z
//   static constexpr bool kAMFast, kBNFast;  // which axis consecutive threads load (the contiguous one)
//   static constexpr int kMinBlocksPerSM;    // __launch_bounds__ occupancy hint of the FMA core
//   struct Z; Z z_info(int64_t z);           // per-z data: fields m_size, k_begin, k_end + problem's own
//   ARow a_row(const Z&, int64_t m);   ACur a_cursor(const Z&, int64_t kk);   void a_advance(const Z&,
//   ACur&); A    a_load(const Z&, const ARow&, const ACur&);     (only called for m < z.m_size, kk < z.k_end)
//   BCol b_col(const Z&, int64_t n);   BCur b_cursor(const Z&, int64_t kk);   void b_advance(const Z&,
//   BCur&); A    b_load(const Z&, const BCol&, const BCur&);     (only called for n < n_size, kk < z.k_end)
//   CRow c_row(const Z&, int64_t m);   void store(const Z&, const CRow&, int64_t n, A value);
// Cursors advance by kGemmBK along K; they carry mixed-radix coordinates so the K loop needs no division.
#pragma once

#include "kernel_utils.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

constexpr int kGemmBM = 64;
constexpr int kGemmBN = 64;
constexpr int kGemmBK = 16;
constexpr int kGemmThreads = 256;
constexpr int kGemmTM = kGemmBM / 16;  // 4
constexpr int kGemmTN = kGemmBN / 16;  // 4
// Row padding of the FMA core's shared tiles: keeps rows 16-byte aligned (vector reads) while shifting the
// banks of consecutive rows, which K-fast stores hit.
template <typename A>
constexpr int gemm_pad() {
  return 16 / static_cast<int>(sizeof(A));
}

// Four accumulator values read from shared memory in one (float) or two (double) 16-byte loads.
template <typename A>
struct alignas(16) Quad {
  A v[4];
};

// The BM x BN tiles of a GEMM with num_z independent problems: tile t = (tm, tn, z), tm fastest.
struct GemmTile {
  int64_t m0, n0, z;
};
struct GemmTileGrid {
  int64_t tiles_m, tiles_n, num_tiles;
  C1D_HOST_DEVICE GemmTileGrid(int64_t m_size, int64_t n_size, int64_t num_z)
      : tiles_m(ceil_div(m_size, kGemmBM)),
        tiles_n(ceil_div(n_size, kGemmBN)),
        num_tiles(tiles_m * tiles_n * num_z) {}
  C1D_HOST_DEVICE GemmTile tile(int64_t t) const {
    return GemmTile{(t % tiles_m) * kGemmBM, (t / tiles_m) % tiles_n * kGemmBN, t / (tiles_m * tiles_n)};
  }
};

// Blocks walk the tile grid of `prob` grid-stride: f(zi, m0, n0) for every tile that has rows in its z
// (the grid's m_size is an upper bound over z; the skip is block-uniform).
template <typename Problem, typename F>
__device__ __forceinline__ void for_each_gemm_tile(const Problem& prob, F f) {
  const GemmTileGrid grid(prob.m_size, prob.n_size, prob.num_z);
  for (int64_t tile_index = blockIdx.x; tile_index < grid.num_tiles; tile_index += gridDim.x) {
    const GemmTile tile = grid.tile(tile_index);
    const typename Problem::Z zi = prob.z_info(tile.z);
    if (tile.m0 < zi.m_size) f(zi, tile.m0, tile.n0);
  }
}

// One thread's share of a tile's global loads: per K step kLoadsA elements of A and kLoadsB of B, slot s
// landing at (a_k(s), a_m(s)) and (b_k(s), b_n(s)) of the tile. Consecutive threads load along the
// Problem's contiguous axis (kAMFast / kBNFast): with M fastest a thread keeps one row and kLoadsA K
// cursors, with K fastest the reverse (likewise for B). R is the register type of the loaded values: the
// accumulator for the FMA core, the storage type T for the tensor-core one (exact: the loads return T
// values widened to A).
template <typename Problem, typename R>
struct GemmLoads {
  using A = typename Problem::A;
  using Z = typename Problem::Z;
  static constexpr int kLoadsA = kGemmBM * kGemmBK / kGemmThreads;  // 4 elements of A per thread per step
  static constexpr int kLoadsB = kGemmBN * kGemmBK / kGemmThreads;
  static constexpr bool kAMFast = Problem::kAMFast;
  static constexpr bool kBNFast = Problem::kBNFast;
  static constexpr int kARows = kAMFast ? 1 : kLoadsA;
  static constexpr int kACurs = kAMFast ? kLoadsA : 1;
  static constexpr int kBCols = kBNFast ? 1 : kLoadsB;
  static constexpr int kBCurs = kBNFast ? kLoadsB : 1;

  int tid;
  int64_t m0, n0;
  typename Problem::ARow a_rows[kARows];
  typename Problem::ACur a_curs[kACurs];
  typename Problem::BCol b_cols[kBCols];
  typename Problem::BCur b_curs[kBCurs];
  R a_next[kLoadsA], b_next[kLoadsB];  // the step loaded last, to be stored into shared memory

  __device__ int a_m(int s) const {
    return kAMFast ? tid % kGemmBM : tid / kGemmBK + s * (kGemmThreads / kGemmBK);
  }
  __device__ int a_k(int s) const {
    return kAMFast ? tid / kGemmBM + s * (kGemmThreads / kGemmBM) : tid % kGemmBK;
  }
  __device__ int b_n(int s) const {
    return kBNFast ? tid % kGemmBN : tid / kGemmBK + s * (kGemmThreads / kGemmBK);
  }
  __device__ int b_k(int s) const {
    return kBNFast ? tid / kGemmBN + s * (kGemmThreads / kGemmBN) : tid % kGemmBK;
  }

  __device__ GemmLoads(const Problem& prob, const Z& zi, int tid_, int64_t m0_, int64_t n0_)
      : tid(tid_), m0(m0_), n0(n0_) {
#pragma unroll
    for (int r = 0; r < kARows; ++r) a_rows[r] = prob.a_row(zi, m0 + a_m(r));
#pragma unroll
    for (int c = 0; c < kACurs; ++c) a_curs[c] = prob.a_cursor(zi, zi.k_begin + a_k(c));
#pragma unroll
    for (int r = 0; r < kBCols; ++r) b_cols[r] = prob.b_col(zi, n0 + b_n(r));
#pragma unroll
    for (int c = 0; c < kBCurs; ++c) b_curs[c] = prob.b_cursor(zi, zi.k_begin + b_k(c));
  }

  // The K step starting at k0 into a_next / b_next (0 outside the problem); the cursors move to the next.
  __device__ void load(const Problem& prob, const Z& zi, int64_t k0) {
#pragma unroll
    for (int s = 0; s < kLoadsA; ++s) {
      const bool ok = m0 + a_m(s) < zi.m_size && k0 + a_k(s) < zi.k_end;
      a_next[s] =
          static_cast<R>(ok ? prob.a_load(zi, a_rows[kAMFast ? 0 : s], a_curs[kAMFast ? s : 0]) : A(0));
    }
#pragma unroll
    for (int s = 0; s < kLoadsB; ++s) {
      const bool ok = n0 + b_n(s) < prob.n_size && k0 + b_k(s) < zi.k_end;
      b_next[s] =
          static_cast<R>(ok ? prob.b_load(zi, b_cols[kBNFast ? 0 : s], b_curs[kBNFast ? s : 0]) : A(0));
    }
#pragma unroll
    for (int c = 0; c < kACurs; ++c) prob.a_advance(zi, a_curs[c]);
#pragma unroll
    for (int c = 0; c < kBCurs; ++c) prob.b_advance(zi, b_curs[c]);
  }
};

// The K loop of one tile, for both cores. Software pipeline: the global loads of step k+1 are issued into
// registers (loads.load) before the math of step k runs from shared memory (compute(buf)), then stored
// into the other buffer (store_step(buf ^ 1)). One barrier per step: a buffer is rewritten only after the
// barrier that ends the step reading it (WAR), and read only after the barrier that follows its stores (RAW).
template <typename Problem, typename R, typename Store, typename Compute>
__device__ __forceinline__ void gemm_k_loop(const Problem& prob, const typename Problem::Z& zi,
                                            GemmLoads<Problem, R>& loads, Store store_step, Compute compute) {
  if (zi.k_begin < zi.k_end) {
    loads.load(prob, zi, zi.k_begin);
    store_step(0);  // the previous tile's K loop ended with a barrier: no one reads buffer 0 now
    __syncthreads();
  }
  int buf = 0;
  for (int64_t k0 = zi.k_begin; k0 < zi.k_end; k0 += kGemmBK) {
    const bool has_next = k0 + kGemmBK < zi.k_end;
    if (has_next) loads.load(prob, zi, k0 + kGemmBK);
    compute(buf);
    if (has_next) store_step(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
}

template <typename Problem>
__global__ void __launch_bounds__(kGemmThreads, Problem::kMinBlocksPerSM) implicit_gemm_kernel(Problem prob) {
  using A = typename Problem::A;
  using Loads = GemmLoads<Problem, A>;
  constexpr int kPad = gemm_pad<A>();
  static_assert(kGemmTM == 4 && kGemmTN == 4, "fragments are read as Quad<A>");
  __shared__ __align__(16) A a_tile[2][kGemmBK][kGemmBM + kPad];  // [buffer][k][m]
  __shared__ __align__(16) A b_tile[2][kGemmBK][kGemmBN + kPad];  // [buffer][k][n]

  const int tid = threadIdx.x;
  const int tx = tid % 16;
  const int ty = tid / 16;
  for_each_gemm_tile(prob, [&](const typename Problem::Z& zi, int64_t m0, int64_t n0) {
    Loads loads(prob, zi, tid, m0, n0);
    A acc[kGemmTM][kGemmTN];
    fill_zero(acc);
    auto store_step = [&](int buf) {
#pragma unroll
      for (int s = 0; s < Loads::kLoadsA; ++s) a_tile[buf][loads.a_k(s)][loads.a_m(s)] = loads.a_next[s];
#pragma unroll
      for (int s = 0; s < Loads::kLoadsB; ++s) b_tile[buf][loads.b_k(s)][loads.b_n(s)] = loads.b_next[s];
    };
    gemm_k_loop(prob, zi, loads, store_step, [&](int buf) {
#pragma unroll
      for (int kk = 0; kk < kGemmBK; ++kk) {
        const Quad<A> a = load_aligned<Quad<A>>(&a_tile[buf][kk][4 * tx]);
        const Quad<A> b = load_aligned<Quad<A>>(&b_tile[buf][kk][4 * ty]);
#pragma unroll
        for (int i = 0; i < kGemmTM; ++i)
#pragma unroll
          for (int j = 0; j < kGemmTN; ++j) acc[i][j] += a.v[i] * b.v[j];
      }
    });

#pragma unroll
    for (int i = 0; i < kGemmTM; ++i) {
      const int64_t m = m0 + 4 * tx + i;
      if (m >= zi.m_size) continue;
      const auto row = prob.c_row(zi, m);
#pragma unroll
      for (int j = 0; j < kGemmTN; ++j) {
        const int64_t n = n0 + 4 * ty + j;
        if (n < prob.n_size) prob.store(zi, row, n, acc[i][j]);
      }
    }
  });
}

// Launches `kernel` (a core) over every tile of the problem, one block of kGemmThreads per tile.
template <typename Problem>
inline void launch_gemm_core(void (*kernel)(Problem), const Problem& prob, Stream stream) {
  const GemmTileGrid grid(prob.m_size, prob.n_size, prob.num_z);
  launch_kernel(kernel, dim3(grid_for(grid.num_tiles)), dim3(kGemmThreads), 0, stream, prob);
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
