// The "tensor_core" family (sm_80+; float32 as TF32, float16, bfloat16): forward, backward-input and
// backward-weight of any dense or grouped convolution on warp-level mma.sync (m16n8k16 for bfloat16/float16,
// m16n8k8 on TF32-rounded operands for float32, the latter only while torch.backends.cudnn.allow_tf32 is
// True; dispatch.cu decides). Accumulation in float32 registers, no atomics, a fixed K order: deterministic.
// The device helpers (fragment layouts, ldmatrix, mma, cp.async; the only inline PTX) are in tensor_core.cuh.
//
// Two kernels:
//   * tensor_core_forward_kernel: the forward GEMM of gemm_problems.cuh (M = batch * out_len, N =
//     out_per_group, K = in_per_group * kernel_size, z = group) with a cp.async pipeline of its own;
//   * tc_implicit_gemm_kernel: the backward-input and backward-weight Problems of gemm_problems.cuh on the
//     tile grid, register-staged loads and K loop of implicit_gemm.cuh, in place of the FMA core (so the
//     two backward ops split and order their work exactly like the "dense" family).
//
// Forward block: 128 threads = 4 warps in a 2 x 2 grid over a 64 x 64 (M x N) tile; each warp owns 32 x 32,
// i.e. 2 x 4 mma tiles of 16 x 8. K is walked in stages of kBK elements (64 bytes of a row: 32 16-bit or 16
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
// Forward pipeline per K stage kt (one barrier per stage):
//   cp_async_wait<kStages - 2>   this thread's copies of stage kt have landed;
//   __syncthreads                everyone's have (RAW), and everyone finished reading stage kt - 1,
//                                the slot refilled next (WAR);
//   issue stage kt + kStages - 1 into that slot, commit (an empty group past the end keeps the count);
//   mma over stage kt.
//
// Backward GEMM block: 256 threads = 8 warps in a 2 x 4 grid over the 64 x 64 tile, 32 x 16 each; the
// tiles are staged in shared memory as T, K-contiguous and padded by 16 bytes like the forward's. Its
// loads stay register-staged: the problems gather single elements, mostly 2-byte ones, for which cp.async
// has no form.
#include <c10/util/Exception.h>

#include <type_traits>

#include "families.h"
#include "gemm_problems.cuh"
#include "tensor_core.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

// The forward's tiles are the GEMM core's 64 x 64 (GemmTileGrid).
constexpr int kTcThreads = 128;
constexpr int kTcStages = 3;
constexpr int kTcStageBytes = 64;                    // of one tile row per stage
constexpr int kTcRowBytes = kTcStageBytes + 16;      // padded row in shared memory
constexpr int kTcTileBytes = kGemmBM * kTcRowBytes;  // one operand tile (BM == BN)
static_assert(kGemmBM == kGemmBN, "the forward's A and B tiles have the same size");

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

  const GemmTileGrid grid(args.m_size, args.n_size, p.groups);
  const int64_t num_stages = ceil_div(args.k_size, kBK);
  const MixedStep one = make_mixed_step(p.kernel_size, 1);
  const MixedStep skip = make_mixed_step(p.kernel_size, kAHalf);

  for (int64_t tile_index = blockIdx.x; tile_index < grid.num_tiles; tile_index += gridDim.x) {
    const GemmTile tile = grid.tile(tile_index);
    const int64_t m0 = tile.m0, n0 = tile.n0, g = tile.z;

    // This thread's A row (m) and K half; its cursor (ic, tap) walks kAHalf elements, then skips the
    // other half.
    const int a_m = tid % kGemmBM;
    const int a_k = (tid / kGemmBM) * kAHalf;
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
        for (int s = 0; s < kGemmBN * kChunksPerRow / kTcThreads; ++s) {
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
        for (int s = 0; s < kGemmBN * kBK / kTcThreads; ++s) {
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
    fill_zero(acc);

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

template <typename Problem>
__global__ void __launch_bounds__(kGemmThreads) tc_implicit_gemm_kernel(Problem prob) {
  using T = typename Problem::T;
  using Loads = GemmLoads<Problem, T>;
  constexpr MmaKind kKind = MmaKindOf<T>::value;
  constexpr int kKBytes = kGemmBK * static_cast<int>(sizeof(T));  // 32 or 64: whole mma K steps
  constexpr int kRowBytes = kKBytes + 16;
  __shared__ __align__(128) unsigned char a_tile[2][kGemmBM * kRowBytes];  // [buffer][m][k]
  __shared__ __align__(128) unsigned char b_tile[2][kGemmBN * kRowBytes];  // [buffer][n][k]

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp_m = ((tid >> 5) & 1) * 32;
  const int warp_n = (tid >> 6) * 16;
  for_each_gemm_tile(prob, [&](const typename Problem::Z& zi, int64_t m0, int64_t n0) {
    Loads loads(prob, zi, tid, m0, n0);
    float acc[2][2][4];
    fill_zero(acc);
    auto store_step = [&](int buf) {
#pragma unroll
      for (int s = 0; s < Loads::kLoadsA; ++s)
        reinterpret_cast<T*>(a_tile[buf] + loads.a_m(s) * kRowBytes)[loads.a_k(s)] = loads.a_next[s];
#pragma unroll
      for (int s = 0; s < Loads::kLoadsB; ++s)
        reinterpret_cast<T*>(b_tile[buf] + loads.b_n(s) * kRowBytes)[loads.b_k(s)] = loads.b_next[s];
    };
    gemm_k_loop(prob, zi, loads, store_step, [&](int buf) {
      mma_stage<kKind>(acc, a_tile[buf], b_tile[buf], kRowBytes, kKBytes, warp_m, warp_n, lane);
    });

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
  });
}

// float64 has no tensor-core path: choose_family (dispatch.cu) never picks this family for it, and its
// instantiations below exist only so that the dispatch compiles for every dtype.
template <typename T>
constexpr bool kHasTensorCores = !std::is_same_v<T, double>;

void no_tensor_cores_for_double() {
  TORCH_CHECK(false, "conv1d_ext: internal error: the tensor-core kernels have no float64 form");
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
  if constexpr (!kHasTensorCores<T>) {
    no_tensor_cores_for_double();
  } else {
    TcForwardArgs args;
    args.p = p;
    args.m_size = p.batch * p.out_len;
    args.n_size = p.out_per_group;
    args.k_size = p.in_per_group * p.kernel_size;
    args.b_vector = (args.k_size * static_cast<int64_t>(sizeof(T))) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(weight) % 16 == 0;
    const GemmTileGrid grid(args.m_size, args.n_size, p.groups);
    launch_kernel(tensor_core_forward_kernel<T>, dim3(grid_for(grid.num_tiles)), dim3(kTcThreads), 0, stream,
                  args, input, weight, bias, output);
  }
}

template <typename T>
void tensor_core_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                                Stream stream) {
  if constexpr (!kHasTensorCores<T>) {
    no_tensor_cores_for_double();
  } else {
    launch_gemm_core(tc_implicit_gemm_kernel<BackwardInputProblem<T>>,
                     backward_input_problem(p, grad_output, weight, grad_input), stream);
  }
}

template <typename T>
void tensor_core_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                                 void* workspace, Stream stream) {
  if constexpr (!kHasTensorCores<T>) {
    no_tensor_cores_for_double();
  } else {
    backward_weight_gemm(tc_implicit_gemm_kernel<BackwardWeightProblem<T>>, p, grad_output, input,
                         grad_weight, workspace, stream);
  }
}

#define C1D_INSTANTIATE(T)                                                                             \
  template void tensor_core_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream); \
  template void tensor_core_backward_input<T>(const Conv1dParams&, const T*, const T*, T*, Stream);    \
  template void tensor_core_backward_weight<T>(const Conv1dParams&, const T*, const T*, T*, void*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
