// Dense/grouped forward on tensor cores (sm_80+): the implicit GEMM of dense_forward.cu,
//   M = batch * out_len (m = (b, t)), N = out_per_group, K = in_per_group * kernel_size (k = (ic, tap)),
// one GEMM per group (z = group), computed with warp-level mma.sync: m16n8k16 for bfloat16/float16,
// m16n8k8 on TF32-rounded operands for float32 (only when torch.backends.cudnn.allow_tf32 is True;
// dispatch.cu decides). Accumulation in float32 registers; no atomics, a fixed K order: deterministic.
//
// Block: 128 threads = 4 warps in a 2 x 2 grid over a 64 x 64 (M x N) tile; each warp owns 32 x 32, i.e.
// 2 x 4 mma tiles of 16 x 8. K is walked in stages of kBK elements (64 bytes of a row: 32 16-bit or 16
// float32 values) through a kStages-deep ring of shared-memory stages filled ahead of use:
//   * A (input gathered im2col-style, zero in the padding): one element per copy -- cp.async of 4 bytes
//     (zero-filled outside the input) for float32; 2-byte elements have no cp.async, so 16-bit A is
//     loaded and stored synchronously into the stage being filled;
//   * B (weight, K contiguous per output channel): cp.async of 16 bytes where a row's stage slice is
//     16-byte aligned (K * sizeof(T) % 16 == 0), otherwise per element like A.
// Both tiles are stored K-contiguous ([m][k] and [n][k], rows of 80 bytes: 64 + 16 padding, which makes
// the 8 rows an ldmatrix reads fall in distinct bank groups), so ldmatrix.x4 yields the A and B
// fragments directly for both mma shapes (tensor_core.cuh documents the layouts).
//
// Pipeline per K stage kt (one barrier per stage):
//   cp_async_wait<kStages - 2>   this thread's copies of stage kt have landed;
//   __syncthreads                everyone's have (RAW), and everyone finished reading stage kt - 1,
//                                the slot refilled next (WAR);
//   issue stage kt + kStages - 1 into that slot, commit (an empty group past the end keeps the count);
//   mma over stage kt.
#include "families.h"
#include "kernel_utils.cuh"
#include "tensor_core.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int kTcBM = 64;
constexpr int kTcBN = 64;
constexpr int kTcThreads = 128;
constexpr int kTcStages = 3;
constexpr int kTcStageBytes = 64;                  // of one tile row per stage
constexpr int kTcRowBytes = kTcStageBytes + 16;    // padded row in shared memory
constexpr int kTcTileBytes = kTcBM * kTcRowBytes;  // one operand tile (BM == BN)

struct TcForwardArgs {
  Conv1dParams p;
  int64_t m_size, n_size, k_size;
  bool b_vector;  // weight rows' stage slices are 16-byte aligned: B by 16-byte cp.async
};

template <typename T>
__global__ void __launch_bounds__(kTcThreads)
    tensor_core_forward_kernel(TcForwardArgs args, const T* input, const T* weight, const T* bias,
                               T* output) {
  constexpr MmaKind kKind = MmaKindOf<T>::value;
  constexpr int kBK = kTcStageBytes / static_cast<int>(sizeof(T));  // K elements per stage
  constexpr int kAHalf = kBK / 2;                                   // A elements per thread per stage
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));            // elements per 16-byte B copy
  constexpr bool kAsyncElements = sizeof(T) == 4;                   // cp.async has no 2-byte form
  __shared__ __align__(128) unsigned char smem[kTcStages][2][kTcTileBytes];

  const Conv1dParams& p = args.p;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = (warp & 1) * 32;
  const int warp_n = (warp >> 1) * 32;

  const int64_t tiles_m = ceil_div(args.m_size, kTcBM);
  const int64_t tiles_n = ceil_div(args.n_size, kTcBN);
  const int64_t num_tiles = tiles_m * tiles_n * p.groups;
  const int64_t num_stages = ceil_div(args.k_size, kBK);
  const MixedStep one = make_mixed_step(p.kernel_size, 1);
  const MixedStep skip = make_mixed_step(p.kernel_size, kAHalf);

  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int64_t m0 = (tile % tiles_m) * kTcBM;
    const int64_t n0 = (tile / tiles_m % tiles_n) * kTcBN;
    const int64_t g = tile / (tiles_m * tiles_n);

    // This thread's A row (m) and K half; its cursor (ic, tap) walks kAHalf elements, then skips the
    // other half.
    const int a_m = tid % kTcBM;
    const int a_k = (tid / kTcBM) * kAHalf;
    const int64_t m = m0 + a_m;
    const bool m_ok = m < args.m_size;
    const int64_t b = m_ok ? m / p.out_len : 0;
    const int64_t pos0 = m_ok ? (m % p.out_len) * p.stride - p.pad_left : 0;
    const T* a_base = input + (b * p.in_channels + g * p.in_per_group) * p.in_len;
    MixedCursor a_cur = make_mixed_cursor(one, a_k);
    int64_t a_kk = a_k;
    const T* w_base = weight + g * p.out_per_group * args.k_size;

    auto issue_stage = [&](int64_t stage, int slot) {
      const int64_t k0 = stage * kBK;
      unsigned char* a_tile = smem[slot][0];
      unsigned char* b_tile = smem[slot][1];
      T* a_dst = reinterpret_cast<T*>(a_tile + a_m * kTcRowBytes) + a_k;
#pragma unroll
      for (int j = 0; j < kAHalf; ++j) {
        const int64_t pos = pos0 + a_cur.lo * p.dilation;
        const bool ok = m_ok && a_kk < args.k_size && pos >= 0 && pos < p.in_len;
        const T* src = a_base + a_cur.hi * p.in_len + pos;
        if constexpr (kAsyncElements) {
          cp_async_4(a_dst + j, ok ? src : input, ok);
        } else {
          a_dst[j] = ok ? *src : T(0);
        }
        advance_mixed(one, a_cur);
        ++a_kk;
      }
      advance_mixed(skip, a_cur);
      a_kk += kAHalf;
      if (args.b_vector) {
        constexpr int kChunksPerRow = kTcStageBytes / 16;
#pragma unroll
        for (int s = 0; s < kTcBN * kChunksPerRow / kTcThreads; ++s) {
          const int c = tid + s * kTcThreads;
          const int n_local = c / kChunksPerRow;
          const int q = c % kChunksPerRow;
          const int64_t k = k0 + q * kVec;
          const bool ok = n0 + n_local < args.n_size && k < args.k_size;  // K % kVec == 0: all or none
          cp_async_16(b_tile + n_local * kTcRowBytes + q * 16,
                      ok ? w_base + (n0 + n_local) * args.k_size + k : weight, ok);
        }
      } else {
        const int k_local = tid % kBK;
        const int64_t k = k0 + k_local;
#pragma unroll
        for (int s = 0; s < kTcBN * kBK / kTcThreads; ++s) {
          const int n_local = tid / kBK + s * (kTcThreads / kBK);
          const bool ok = n0 + n_local < args.n_size && k < args.k_size;
          const T* src = w_base + (n0 + n_local) * args.k_size + k;
          T* dst = reinterpret_cast<T*>(b_tile + n_local * kTcRowBytes) + k_local;
          if constexpr (kAsyncElements) {
            cp_async_4(dst, ok ? src : weight, ok);
          } else {
            *dst = ok ? *src : T(0);
          }
        }
      }
    };

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    __syncthreads();  // the previous tile's warps may still read the slots refilled below
#pragma unroll
    for (int s = 0; s < kTcStages - 1; ++s) {
      if (s < num_stages) issue_stage(s, s);
      cp_async_commit();
    }

    for (int64_t kt = 0; kt < num_stages; ++kt) {
      cp_async_wait<kTcStages - 2>();
      __syncthreads();
      const int64_t next = kt + kTcStages - 1;
      if (next < num_stages) issue_stage(next, static_cast<int>(next % kTcStages));
      cp_async_commit();

      mma_stage<kKind>(acc, smem[kt % kTcStages][0], smem[kt % kTcStages][1], kTcRowBytes, kTcStageBytes,
                       warp_m, warp_n, lane);
    }
    cp_async_wait<0>();  // only empty groups remain; leaves nothing in flight past the tile

#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t mm = m0 + warp_m + 16 * i + fragment_c_row(lane, r);
        if (mm >= args.m_size) continue;
        const int64_t bb = mm / p.out_len, t = mm % p.out_len;
        T* out_row = output + (bb * p.out_channels + g * p.out_per_group) * p.out_len + t;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t n = n0 + warp_n + 8 * j + fragment_c_col(lane, r);
          if (n >= args.n_size) continue;
          float v = acc[i][j][r];
          if (bias != nullptr) v += static_cast<float>(bias[g * p.out_per_group + n]);
          out_row[n * p.out_len] = static_cast<T>(v);
        }
      }
  }
}

}  // namespace

bool tensor_core_available() {
#if defined(CONV1D_EXT_EMULATE)
  return true;  // the emulator implements the sm_80 instructions
#else
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  return major >= 8;
#endif
}

template <typename T>
void tensor_core_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                         Stream stream) {
  TcForwardArgs args;
  args.p = p;
  args.m_size = p.batch * p.out_len;
  args.n_size = p.out_per_group;
  args.k_size = p.in_per_group * p.kernel_size;
  args.b_vector = (args.k_size * static_cast<int64_t>(sizeof(T))) % 16 == 0 &&
                  reinterpret_cast<uintptr_t>(weight) % 16 == 0;
  const int64_t tiles = ceil_div(args.m_size, kTcBM) * ceil_div(args.n_size, kTcBN) * p.groups;
  launch_kernel(tensor_core_forward_kernel<T>, dim3(grid_for(tiles)), dim3(kTcThreads), 0, stream, args,
                input, weight, bias, output);
}

#define C1D_INSTANTIATE(T) \
  template void tensor_core_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream);
C1D_INSTANTIATE(float)
C1D_INSTANTIATE(c10::Half)
C1D_INSTANTIATE(c10::BFloat16)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
