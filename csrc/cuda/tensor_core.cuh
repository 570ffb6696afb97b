// Tensor-core device helpers (sm_80+): the only place in the project that holds inline PTX. Under the
// emulator (CONV1D_EXT_EMULATE) each helper is a call into tests/cuda_emu/, which executes the same
// warp-collective operation on the CPU following the PTX ISA's fragment layouts (and so catches a kernel
// that assumes another layout).
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16" / "mma.m16n8k8", .row.col), per lane:
//   group = lane >> 2 (0..7), quad = lane & 3 (0..3); a "register" is 32 bits.
//   m16n8k16, .bf16/.f16 (two 16-bit elements per register, the lower-indexed one in the low half):
//     A (16x16, row-major) a[0..3]: row = group (+8 for a[1], a[3]), cols = 2*quad + {0,1} (+8 for a[2],
//     a[3]) B (16x8)             b[0..1]: rows(k) = 2*quad + {0,1} (+8 for b[1]), col(n) = group
//   m16n8k8, .tf32 (one element per register):
//     A (16x8)  a[0..3]: row = group (+8 for a[1], a[3]), col = quad (+4 for a[2], a[3])
//     B (8x8)   b[0..1]: row(k) = quad (+4 for b[1]), col(n) = group
//   C/D (16x8, float32, both shapes) c[0..3]: row = group (+8 for c[2], c[3]), col = 2*quad + {0,1}
//     (c[0], c[2] even columns) -- fragment_c_row / fragment_c_col below.
//   ldmatrix.sync.aligned.m8n8.x4.shared.b16: lanes 8i..8i+7 give the addresses of rows 0..7 of matrix i
//     (16 bytes each, 16-byte aligned); lane l receives in register i the 4 bytes at byte 4*(l & 3) of
//     row l >> 2 of matrix i. Read as 16-bit elements that is row l>>2, cols 2*(l&3) + {0,1} of an 8x8
//     b16 matrix; read as 32-bit elements, row l>>2, col l&3 of an 8x4 matrix -- which is exactly the
//     A/B fragment above when the tile is stored with K contiguous (A as [m][k], B as [n][k]), for
//     both the 16-bit and the TF32 shape.
//
// TF32 rounding: the kernels round every float32 operand with cvt.rna.tf32.f32 (to nearest, ties away
// from zero, to 10 mantissa bits) before the mma; the mma itself ignores the low 13 bits of its .tf32
// inputs (truncation), which then are zero. The emulator implements both steps as described.
//
// cp.async (cp_async_4 / cp_async_16, cp_async_commit, cp_async_wait<N>): a copy is issued into shared
// memory and is guaranteed to have landed only after the issuing thread waits for its group
// (cp.async.wait_group N: all but the newest N committed groups complete); other threads see it only after
// a barrier that follows that wait. The emulator poisons the destination at issue and writes it at the
// wait, so a missing wait or barrier reads NaN.
#pragma once

#include "cuda_compat.cuh"

#include <cstdint>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// Where a tensor-core path can run: nvcc compiles the real instructions only for sm_80 and newer (the
// helpers trap on older targets; dispatch.cu never launches them there).
#if !defined(CONV1D_EXT_EMULATE) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define C1D_TC_UNAVAILABLE 1
#else
#define C1D_TC_UNAVAILABLE 0
#endif

enum class MmaKind : int { kBf16 = 0, kF16 = 1, kTf32 = 2 };

// Coordinates of accumulator element r (0..3) of `lane` in the 16x8 C/D tile.
__device__ __forceinline__ int fragment_c_row(int lane, int r) { return (lane >> 2) + 8 * (r >> 1); }
__device__ __forceinline__ int fragment_c_col(int lane, int r) { return 2 * (lane & 3) + (r & 1); }

// d += a * b on one warp: m16n8k16 for kBf16/kF16, m16n8k8 for kTf32 (a, b already rounded to TF32).
template <MmaKind kKind>
__device__ __forceinline__ void mma_sync(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::mma(static_cast<int>(kKind), d, a, b);
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  if constexpr (kKind == MmaKind::kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else if constexpr (kKind == MmaKind::kF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

// Four 8x8 b16 matrices from shared memory (layout above); `row` is this lane's row address.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::ldmatrix_x4(r, row);
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

// float32 bits -> TF32 (round to nearest, ties away; the low 13 bits become 0).
__device__ __forceinline__ uint32_t tf32_round(uint32_t bits) {
#if defined(CONV1D_EXT_EMULATE)
  return ::cuda_emu::tf32_round(bits);
#elif C1D_TC_UNAVAILABLE
  __trap();
  return bits;
#else
  uint32_t out;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(out) : "f"(__uint_as_float(bits)));
  return out;
#endif
}

// Asynchronous copy of 4 (16) bytes global -> shared; when !valid nothing is read and the destination is
// zero-filled (src-size 0). dst and src are aligned to the copy size.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::cp_async(dst, src, 4, valid ? 4 : 0);
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(addr), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
#endif
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::cp_async(dst, src, 16, valid ? 16 : 0);
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
#endif
}
// Closes the group of this thread's copies issued since the last commit (possibly empty).
__device__ __forceinline__ void cp_async_commit() {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::cp_async_commit();
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(CONV1D_EXT_EMULATE)
  ::cuda_emu::cp_async_wait(kPending);
#elif C1D_TC_UNAVAILABLE
  __trap();
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// The MMA kind of a storage type: bfloat16/float16 as themselves, float32 as TF32.
template <typename T>
struct MmaKindOf;
template <>
struct MmaKindOf<c10::BFloat16> {
  static constexpr MmaKind value = MmaKind::kBf16;
};
template <>
struct MmaKindOf<c10::Half> {
  static constexpr MmaKind value = MmaKind::kF16;
};
template <>
struct MmaKindOf<float> {
  static constexpr MmaKind value = MmaKind::kTf32;
};

// One warp's share of a K stage held in shared memory: acc (kMTiles x kNTiles tiles of 16 x 8) +=
// A[warp_m.., k] * B[k, warp_n..] over k_bytes of K. Both tiles are K-contiguous rows of row_bytes
// ([m][k] and [n][k]), 16-byte aligned; one mma consumes 32 bytes of K (16 x 16-bit or 8 x float32).
// ldmatrix row addresses of this lane: matrix i = lane / 8, row lane % 8. For A the four matrices are
// (rows 0-7 | 8-15) x (K bytes 0-15 | 16-31), for B, per pair of n8 tiles, (K bytes 0-15 | 16-31) x
// (n 0-7 | 8-15): in both cases the register order of the fragments documented above.
template <MmaKind kKind, int kMTiles, int kNTiles>
__device__ __forceinline__ void mma_stage(float (&acc)[kMTiles][kNTiles][4], const unsigned char* a_tile,
                                          const unsigned char* b_tile, int row_bytes, int k_bytes, int warp_m,
                                          int warp_n, int lane) {
  static_assert(kNTiles % 2 == 0, "B fragments are loaded for pairs of n8 tiles");
  const int mat = lane >> 3;
  const unsigned char* a_lane = a_tile + (warp_m + (lane & 7) + 8 * (mat & 1)) * row_bytes + 16 * (mat >> 1);
  const unsigned char* b_lane = b_tile + (warp_n + (lane & 7) + 8 * (mat >> 1)) * row_bytes + 16 * (mat & 1);
  for (int kbyte = 0; kbyte < k_bytes; kbyte += 32) {
    uint32_t a[kMTiles][4], b[kNTiles / 2][4];
#pragma unroll
    for (int i = 0; i < kMTiles; ++i) ldmatrix_x4(a[i], a_lane + 16 * i * row_bytes + kbyte);
#pragma unroll
    for (int jp = 0; jp < kNTiles / 2; ++jp) ldmatrix_x4(b[jp], b_lane + 16 * jp * row_bytes + kbyte);
    if constexpr (kKind == MmaKind::kTf32) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int i = 0; i < kMTiles; ++i) a[i][r] = tf32_round(a[i][r]);
#pragma unroll
        for (int jp = 0; jp < kNTiles / 2; ++jp) b[jp][r] = tf32_round(b[jp][r]);
      }
    }
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) {
        const uint32_t bj[2] = {b[j >> 1][2 * (j & 1)], b[j >> 1][2 * (j & 1) + 1]};
        mma_sync<kKind>(acc[i][j], a[i], bj);
      }
  }
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
