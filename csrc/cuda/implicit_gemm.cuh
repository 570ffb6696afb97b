// The tiled implicit-GEMM core shared by the dense/grouped families (forward, backward-input phases,
// backward-weight partials). A "Problem" describes how GEMM coordinates map onto the convolution's
// tensors; the core owns tiling, shared memory, register blocking and the K loop.
//
// Per block: a BM x BN tile of C = A (M x K) * B (K x N), K walked in steps of BK through shared
// memory; each of the 256 threads accumulates a TM x TN = 4 x 4 register tile, rows
// m = m0 + 4*tx + i and columns n = n0 + 4*ty + j, so each K step reads its 4 A and 4 B values as
// one 16-byte shared-memory load each (two for double) instead of eight scalar loads.
//
// Problem interface (see dense_forward.cu for the simplest one):
//   using T; using A (accumulator);
//   int64_t m_size, n_size, num_z;          // tile grid: m_size/n_size are upper bounds over z
//   static constexpr bool kAMFast, kBNFast;  // which axis consecutive threads load (the contiguous one)
//   static constexpr int kMinBlocksPerSM;    // __launch_bounds__ occupancy hint (2 caps at 128 registers)
//   Z    z_info(int64_t z);                  // per-z data: fields m_size, k_begin, k_end + problem's own
//   ARow a_row(const Z&, int64_t m);   ACur a_cursor(const Z&, int64_t kk);   void a_advance(const Z&,
//   ACur&); A    a_load(const Z&, const ARow&, const ACur&);     (only called for m < z.m_size, kk < z.k_end)
//   BCol b_col(const Z&, int64_t n);   BCur b_cursor(const Z&, int64_t kk);   void b_advance(const Z&,
//   BCur&); A    b_load(const Z&, const BCol&, const BCur&);     (only called for n < n_size, kk < z.k_end)
//   CRow c_row(const Z&, int64_t m);   void store(const Z&, const CRow&, int64_t n, A value);
// Cursors advance by kGemmBK along K; they carry mixed-radix coordinates so the K loop needs no
// division. tc_implicit_gemm_kernel below runs the same Problem on tensor cores.
#pragma once

#include <type_traits>

#include "kernel_utils.cuh"
#include "tensor_core.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

constexpr int kGemmBM = 64;
constexpr int kGemmBN = 64;
constexpr int kGemmBK = 16;
constexpr int kGemmThreads = 256;
constexpr int kGemmTM = kGemmBM / 16;  // 4
constexpr int kGemmTN = kGemmBN / 16;  // 4
// Row padding of the shared tiles: keeps rows 16-byte aligned (vector reads) while shifting the banks
// of consecutive rows, which K-fast stores hit.
template <typename A>
constexpr int gemm_pad() {
  return 16 / static_cast<int>(sizeof(A));
}

// Four accumulator values read from shared memory in one (float) or two (double) 16-byte loads.
template <typename A>
struct alignas(16) Quad {
  A v[4];
};

template <typename Problem>
__global__ void __launch_bounds__(kGemmThreads, Problem::kMinBlocksPerSM) implicit_gemm_kernel(Problem prob) {
  using A = typename Problem::A;
  constexpr int BM = kGemmBM, BN = kGemmBN, BK = kGemmBK;
  constexpr int kLoadsA = BM * BK / kGemmThreads;  // 4 elements of A per thread per K step
  constexpr int kLoadsB = BN * BK / kGemmThreads;
  constexpr bool kAMFast = Problem::kAMFast;
  constexpr bool kBNFast = Problem::kBNFast;
  // With M fastest a thread keeps one row and kLoadsA K cursors; with K fastest the reverse.
  constexpr int kARows = kAMFast ? 1 : kLoadsA;
  constexpr int kACurs = kAMFast ? kLoadsA : 1;
  constexpr int kBCols = kBNFast ? 1 : kLoadsB;
  constexpr int kBCurs = kBNFast ? kLoadsB : 1;

  constexpr int kPad = gemm_pad<A>();
  static_assert(kGemmTM == 4 && kGemmTN == 4, "fragments are read as Quad<A>");
  __shared__ __align__(16) A a_tile[2][BK][BM + kPad];  // double-buffered
  __shared__ __align__(16) A b_tile[2][BK][BN + kPad];

  const int tid = threadIdx.x;
  const int tx = tid % 16;
  const int ty = tid / 16;

  const int64_t tiles_m = ceil_div(prob.m_size, BM);
  const int64_t tiles_n = ceil_div(prob.n_size, BN);
  const int64_t num_tiles = tiles_m * tiles_n * prob.num_z;

  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int64_t tm = tile % tiles_m;
    const int64_t tn = (tile / tiles_m) % tiles_n;
    const int64_t z = tile / (tiles_m * tiles_n);
    const auto zi = prob.z_info(z);
    const int64_t m0 = tm * BM;
    const int64_t n0 = tn * BN;
    if (m0 >= zi.m_size) continue;  // block-uniform: this z has fewer rows than the tile grid's bound

    // Shared-memory coordinates this thread loads, slot s of kLoads.
    auto a_m_local = [&](int s) { return kAMFast ? tid % BM : tid / BK + s * (kGemmThreads / BK); };
    auto a_k_local = [&](int s) { return kAMFast ? tid / BM + s * (kGemmThreads / BM) : tid % BK; };
    auto b_n_local = [&](int s) { return kBNFast ? tid % BN : tid / BK + s * (kGemmThreads / BK); };
    auto b_k_local = [&](int s) { return kBNFast ? tid / BN + s * (kGemmThreads / BN) : tid % BK; };

    typename Problem::ARow a_rows[kARows];
    typename Problem::ACur a_curs[kACurs];
    typename Problem::BCol b_cols[kBCols];
    typename Problem::BCur b_curs[kBCurs];
#pragma unroll
    for (int r = 0; r < kARows; ++r) a_rows[r] = prob.a_row(zi, m0 + a_m_local(r));
#pragma unroll
    for (int c = 0; c < kACurs; ++c) a_curs[c] = prob.a_cursor(zi, zi.k_begin + a_k_local(c));
#pragma unroll
    for (int r = 0; r < kBCols; ++r) b_cols[r] = prob.b_col(zi, n0 + b_n_local(r));
#pragma unroll
    for (int c = 0; c < kBCurs; ++c) b_curs[c] = prob.b_cursor(zi, zi.k_begin + b_k_local(c));

    A acc[kGemmTM][kGemmTN];
#pragma unroll
    for (int i = 0; i < kGemmTM; ++i)
#pragma unroll
      for (int j = 0; j < kGemmTN; ++j) acc[i][j] = A(0);

    // Software pipeline: the global loads of step k+1 are issued into registers before the FMAs of
    // step k run from shared memory, then stored into the other shared-memory buffer; one barrier
    // per step (a buffer is rewritten only after the barrier that ends the step reading it).
    A a_next[kLoadsA], b_next[kLoadsB];
    auto load_step = [&](int64_t k0) {
#pragma unroll
      for (int s = 0; s < kLoadsA; ++s) {
        const bool ok = m0 + a_m_local(s) < zi.m_size && k0 + a_k_local(s) < zi.k_end;
        a_next[s] = ok ? prob.a_load(zi, a_rows[kAMFast ? 0 : s], a_curs[kAMFast ? s : 0]) : A(0);
      }
#pragma unroll
      for (int s = 0; s < kLoadsB; ++s) {
        const bool ok = n0 + b_n_local(s) < prob.n_size && k0 + b_k_local(s) < zi.k_end;
        b_next[s] = ok ? prob.b_load(zi, b_cols[kBNFast ? 0 : s], b_curs[kBNFast ? s : 0]) : A(0);
      }
#pragma unroll
      for (int c = 0; c < kACurs; ++c) prob.a_advance(zi, a_curs[c]);
#pragma unroll
      for (int c = 0; c < kBCurs; ++c) prob.b_advance(zi, b_curs[c]);
    };
    auto store_step = [&](int buf) {
#pragma unroll
      for (int s = 0; s < kLoadsA; ++s) a_tile[buf][a_k_local(s)][a_m_local(s)] = a_next[s];
#pragma unroll
      for (int s = 0; s < kLoadsB; ++s) b_tile[buf][b_k_local(s)][b_n_local(s)] = b_next[s];
    };

    if (zi.k_begin < zi.k_end) {
      load_step(zi.k_begin);
      store_step(0);  // the previous tile's K loop ended with a barrier: no one reads buffer 0 now
      __syncthreads();
    }
    int buf = 0;
    for (int64_t k0 = zi.k_begin; k0 < zi.k_end; k0 += BK) {
      const bool has_next = k0 + BK < zi.k_end;
      if (has_next) load_step(k0 + BK);
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        const Quad<A> a = load_aligned<Quad<A>>(&a_tile[buf][kk][4 * tx]);
        const Quad<A> b = load_aligned<Quad<A>>(&b_tile[buf][kk][4 * ty]);
#pragma unroll
        for (int i = 0; i < kGemmTM; ++i)
#pragma unroll
          for (int j = 0; j < kGemmTN; ++j) acc[i][j] += a.v[i] * b.v[j];
      }
      if (has_next) store_step(buf ^ 1);
      __syncthreads();
      buf ^= 1;
    }

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
  }
}

// The same core on tensor cores (sm_80+; float32 as TF32, float16, bfloat16): the same Problem, tiles,
// loads, double buffering and barriers, but the tiles are staged in shared memory as T (K-contiguous
// rows, [m][k] and [n][k], padded by 16 bytes so the rows an ldmatrix reads hit distinct banks) and the
// 8 warps (2 x 4 over the 64 x 64 tile, 32 x 16 each) run mma_stage (tensor_core.cuh) instead of the FMA
// loop. Loads stay register-staged (the problems gather single elements, mostly 2-byte ones, for which
// cp.async has no form); the forward has its own cp.async pipeline (tensor_core_forward.cu).
template <typename Problem>
__global__ void __launch_bounds__(kGemmThreads) tc_implicit_gemm_kernel(Problem prob) {
  using T = typename Problem::T;
  using A = typename Problem::A;
  constexpr MmaKind kKind = MmaKindOf<T>::value;
  constexpr int BM = kGemmBM, BN = kGemmBN, BK = kGemmBK;
  constexpr int kLoadsA = BM * BK / kGemmThreads;
  constexpr int kLoadsB = BN * BK / kGemmThreads;
  constexpr bool kAMFast = Problem::kAMFast;
  constexpr bool kBNFast = Problem::kBNFast;
  constexpr int kARows = kAMFast ? 1 : kLoadsA;
  constexpr int kACurs = kAMFast ? kLoadsA : 1;
  constexpr int kBCols = kBNFast ? 1 : kLoadsB;
  constexpr int kBCurs = kBNFast ? kLoadsB : 1;
  constexpr int kKBytes = BK * static_cast<int>(sizeof(T));  // 32 or 64: whole mma K steps
  constexpr int kRowBytes = kKBytes + 16;
  __shared__ __align__(128) unsigned char a_tile[2][BM * kRowBytes];
  __shared__ __align__(128) unsigned char b_tile[2][BN * kRowBytes];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp_m = ((tid >> 5) & 1) * 32;
  const int warp_n = (tid >> 6) * 16;

  const int64_t tiles_m = ceil_div(prob.m_size, BM);
  const int64_t tiles_n = ceil_div(prob.n_size, BN);
  const int64_t num_tiles = tiles_m * tiles_n * prob.num_z;

  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int64_t tm = tile % tiles_m;
    const int64_t tn = (tile / tiles_m) % tiles_n;
    const int64_t z = tile / (tiles_m * tiles_n);
    const auto zi = prob.z_info(z);
    const int64_t m0 = tm * BM;
    const int64_t n0 = tn * BN;
    if (m0 >= zi.m_size) continue;  // block-uniform

    auto a_m_local = [&](int s) { return kAMFast ? tid % BM : tid / BK + s * (kGemmThreads / BK); };
    auto a_k_local = [&](int s) { return kAMFast ? tid / BM + s * (kGemmThreads / BM) : tid % BK; };
    auto b_n_local = [&](int s) { return kBNFast ? tid % BN : tid / BK + s * (kGemmThreads / BK); };
    auto b_k_local = [&](int s) { return kBNFast ? tid / BN + s * (kGemmThreads / BN) : tid % BK; };

    typename Problem::ARow a_rows[kARows];
    typename Problem::ACur a_curs[kACurs];
    typename Problem::BCol b_cols[kBCols];
    typename Problem::BCur b_curs[kBCurs];
#pragma unroll
    for (int r = 0; r < kARows; ++r) a_rows[r] = prob.a_row(zi, m0 + a_m_local(r));
#pragma unroll
    for (int c = 0; c < kACurs; ++c) a_curs[c] = prob.a_cursor(zi, zi.k_begin + a_k_local(c));
#pragma unroll
    for (int r = 0; r < kBCols; ++r) b_cols[r] = prob.b_col(zi, n0 + b_n_local(r));
#pragma unroll
    for (int c = 0; c < kBCurs; ++c) b_curs[c] = prob.b_cursor(zi, zi.k_begin + b_k_local(c));

    float acc[2][2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    T a_next[kLoadsA], b_next[kLoadsB];  // exact: the loads return T values widened to A
    auto load_step = [&](int64_t k0) {
#pragma unroll
      for (int s = 0; s < kLoadsA; ++s) {
        const bool ok = m0 + a_m_local(s) < zi.m_size && k0 + a_k_local(s) < zi.k_end;
        a_next[s] =
            static_cast<T>(ok ? prob.a_load(zi, a_rows[kAMFast ? 0 : s], a_curs[kAMFast ? s : 0]) : A(0));
      }
#pragma unroll
      for (int s = 0; s < kLoadsB; ++s) {
        const bool ok = n0 + b_n_local(s) < prob.n_size && k0 + b_k_local(s) < zi.k_end;
        b_next[s] =
            static_cast<T>(ok ? prob.b_load(zi, b_cols[kBNFast ? 0 : s], b_curs[kBNFast ? s : 0]) : A(0));
      }
#pragma unroll
      for (int c = 0; c < kACurs; ++c) prob.a_advance(zi, a_curs[c]);
#pragma unroll
      for (int c = 0; c < kBCurs; ++c) prob.b_advance(zi, b_curs[c]);
    };
    auto store_step = [&](int buf) {
#pragma unroll
      for (int s = 0; s < kLoadsA; ++s)
        reinterpret_cast<T*>(a_tile[buf] + a_m_local(s) * kRowBytes)[a_k_local(s)] = a_next[s];
#pragma unroll
      for (int s = 0; s < kLoadsB; ++s)
        reinterpret_cast<T*>(b_tile[buf] + b_n_local(s) * kRowBytes)[b_k_local(s)] = b_next[s];
    };

    if (zi.k_begin < zi.k_end) {
      load_step(zi.k_begin);
      store_step(0);  // the previous tile's K loop ended with a barrier: no one reads buffer 0 now
      __syncthreads();
    }
    int buf = 0;
    for (int64_t k0 = zi.k_begin; k0 < zi.k_end; k0 += BK) {
      const bool has_next = k0 + BK < zi.k_end;
      if (has_next) load_step(k0 + BK);
      mma_stage<kKind>(acc, a_tile[buf], b_tile[buf], kRowBytes, kKBytes, warp_m, warp_n, lane);
      if (has_next) store_step(buf ^ 1);
      __syncthreads();
      buf ^= 1;
    }

#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + warp_m + 16 * i + fragment_c_row(lane, r);
        if (m >= zi.m_size) continue;
        const auto row = prob.c_row(zi, m);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t n = n0 + warp_n + 8 * j + fragment_c_col(lane, r);
          if (n < prob.n_size) prob.store(zi, row, n, acc[i][j][r]);
        }
      }
  }
}

// Launches the core over every tile of the problem.
template <typename Problem>
inline void launch_implicit_gemm(const Problem& prob, Stream stream) {
  const int64_t tiles = ceil_div(prob.m_size, kGemmBM) * ceil_div(prob.n_size, kGemmBN) * prob.num_z;
  launch_kernel(implicit_gemm_kernel<Problem>, dim3(grid_for(tiles)), dim3(kGemmThreads), 0, stream, prob);
}

// The same, on tensor cores when `tensor_cores` (dispatch.cu decides; never for double).
template <typename Problem>
inline void launch_implicit_gemm(const Problem& prob, Stream stream, bool tensor_cores) {
  if constexpr (!std::is_same_v<typename Problem::T, double>) {
    if (tensor_cores) {
      const int64_t tiles = ceil_div(prob.m_size, kGemmBM) * ceil_div(prob.n_size, kGemmBN) * prob.num_z;
      launch_kernel(tc_implicit_gemm_kernel<Problem>, dim3(grid_for(tiles)), dim3(kGemmThreads), 0, stream,
                    prob);
      return;
    }
  }
  launch_implicit_gemm(prob, stream);
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
