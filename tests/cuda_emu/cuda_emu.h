// cuda_emu: a small emulation of the CUDA execution model, so the project's .cu kernel sources compile
// unchanged with g++ (CONV1D_EXT_EMULATE defined, reached through csrc/cuda/cuda_compat.cuh) and run on
// the CPU in tests. See README.md next to this file for what it emulates and what it cannot see.
//
// Model:
//   * a launch runs every block of the grid; blocks are spread over OS threads (at::parallel_for);
//   * the threads of one block are fibers on one OS thread. A fiber runs until it reaches a
//     synchronisation point (__syncthreads, a warp intrinsic) or exits; then another runs. Between two
//     block barriers the warps run one after another, each as far as it can (its lanes interleaved
//     between warp intrinsics), in an order reshuffled every time (seeded: runs are reproducible;
//     CUDA_EMU_SEED picks another schedule; CUDA_EMU_ORDER=forward|reverse|shuffle). So one warp runs ahead
//     of the others as far as CUDA allows, and a missing or misplaced barrier reorders shared-memory accesses
//     and changes results;
//   * __syncthreads is a barrier of the whole block: all threads must reach the same barrier (same
//     source line); a thread that exits or waits elsewhere is reported as a divergent barrier/deadlock;
//   * warp intrinsics (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp) are rendezvous of
//     the lanes named in the mask (32-lane warps = consecutive linear thread ids); every named lane must
//     arrive at the same intrinsic with the same mask and width; reading a lane outside the mask gives a
//     poisoned (all ones) value;
//   * __shared__ is `static thread_local` in a section of its own: one copy per OS thread, and an OS
//     thread runs one block at a time. Static shared memory (the whole section) and dynamic shared memory
//     (launch smem_bytes) are filled with 0xFF bytes (NaN for floats, -1 for integers) at the start of
//     every block, so reading shared memory the block did not write shows;
//   * atomics are real atomics (blocks run concurrently on OS threads).
// Launch errors a GPU would report are errors here too: block > 1024 threads, grid/block dims out of
// range, dynamic shared memory over 48 KiB without cudaFuncSetAttribute(MaxDynamicSharedMemorySize).
#pragma once

#if defined(__CUDACC__)
#error "cuda_emu.h is for host compilers; nvcc uses the real CUDA runtime"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- qualifiers -------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One copy per OS thread; an OS thread runs one block at a time, so this is per-block shared memory.
// The section collects all of them, so the emulator can poison them at every block start.
#define __shared__ static thread_local __attribute__((section("cuda_emu_shared")))
// __restrict__ is a g++ keyword already.

// ---- built-in vector types (layout and alignment as in CUDA's vector_types.h) -------------------------
#define CUDA_EMU_VEC1(T, name, A)           \
  struct __attribute__((aligned(A))) name { \
    T x;                                    \
  };                                        \
  inline constexpr name make_##name(T x) { return name{x}; }
#define CUDA_EMU_VEC2(T, name, A)           \
  struct __attribute__((aligned(A))) name { \
    T x, y;                                 \
  };                                        \
  inline constexpr name make_##name(T x, T y) { return name{x, y}; }
#define CUDA_EMU_VEC3(T, name) \
  struct name {                \
    T x, y, z;                 \
  };                           \
  inline constexpr name make_##name(T x, T y, T z) { return name{x, y, z}; }
#define CUDA_EMU_VEC4(T, name, A)           \
  struct __attribute__((aligned(A))) name { \
    T x, y, z, w;                           \
  };                                        \
  inline constexpr name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
#define CUDA_EMU_VEC_ALL(T, base, a1, a2, a4) \
  CUDA_EMU_VEC1(T, base##1, a1)               \
  CUDA_EMU_VEC2(T, base##2, a2) CUDA_EMU_VEC3(T, base##3) CUDA_EMU_VEC4(T, base##4, a4)

CUDA_EMU_VEC_ALL(signed char, char, 1, 2, 4)
CUDA_EMU_VEC_ALL(unsigned char, uchar, 1, 2, 4)
CUDA_EMU_VEC_ALL(short, short, 2, 4, 8)
CUDA_EMU_VEC_ALL(unsigned short, ushort, 2, 4, 8)
CUDA_EMU_VEC_ALL(int, int, 4, 8, 16)
CUDA_EMU_VEC_ALL(unsigned int, uint, 4, 8, 16)
CUDA_EMU_VEC_ALL(long, long, sizeof(long), 2 * sizeof(long), 16)
CUDA_EMU_VEC_ALL(unsigned long, ulong, sizeof(long), 2 * sizeof(long), 16)
CUDA_EMU_VEC_ALL(long long, longlong, 8, 16, 16)
CUDA_EMU_VEC_ALL(unsigned long long, ulonglong, 8, 16, 16)
CUDA_EMU_VEC_ALL(float, float, 4, 8, 16)
CUDA_EMU_VEC_ALL(double, double, 8, 16, 16)

#undef CUDA_EMU_VEC1
#undef CUDA_EMU_VEC2
#undef CUDA_EMU_VEC3
#undef CUDA_EMU_VEC4
#undef CUDA_EMU_VEC_ALL

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- runtime API stubs --------------------------------------------------------------------------------
typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

// Per-thread built-in variables, set by the emulator before it resumes a thread (fiber).
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
static constexpr int warpSize = 32;

namespace cuda_emu {

// -- runtime (cuda_emu.cpp) --
using KernelInvoker = void (*)(const void* closure);
void launch_erased(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, KernelInvoker invoke,
                   const void* closure);
void* dynamic_shared_memory();
// Bytes of static __shared__ memory poisoned at each block start (0 if the section could not be found).
size_t static_shared_poison_bytes();
void set_max_dynamic_smem(const void* kernel, int bytes);
// Launches per kernel since the last reset, as (offset of the kernel in its shared object, count): which
// kernels a test ran (tests map offsets to names with the object's symbol table).
std::vector<std::pair<uintptr_t, uint64_t>> launch_counts(bool reset);
int device_attribute(cudaDeviceAttr attr);

enum class SyncKind : int { Barrier, BarrierCount, BarrierAnd, BarrierOr };
int block_sync(SyncKind kind, int predicate, const char* file, int line);

enum class WarpOp : int { Sync, Shfl, ShflUp, ShflDown, ShflXor, Ballot, Any, All, Ldmatrix, Mma };
// Rendezvous of the lanes in `mask`; `value` (size bytes, <= 16) is replaced by the lane's result.
void warp_exchange(WarpOp op, unsigned mask, int width, int param, void* value, size_t size, const char* file,
                   int line);

// Tensor-core instructions (csrc/cuda/tensor_core.cuh), warp-collective like the shuffles: every lane of
// a full warp must arrive. Fragment layouts as in the PTX ISA (documented in tensor_core.cuh).
// ldmatrix.m8n8.x4.b16: `row` is this lane's row address (lanes 8i..8i+7: matrix i).
void ldmatrix_x4(uint32_t (&r)[4], const void* row, const char* file = __builtin_FILE(),
                 int line = __builtin_LINE());
// d += a * b; kind 0: m16n8k16 bf16, 1: m16n8k16 f16, 2: m16n8k8 tf32 (low 13 bits ignored).
void mma(int kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
         const char* file = __builtin_FILE(), int line = __builtin_LINE());
// cvt.rna.tf32.f32: round to nearest, ties away from zero, to a 10-bit mantissa (NaN/Inf unchanged).
uint32_t tf32_round(uint32_t bits);
// cp.async: the destination is poisoned (0xFF) at issue and written when the thread waits for the copy's
// group; src_bytes < bytes zero-fills the rest (src is read at issue: global memory is not written by
// the kernels that copy from it).
void cp_async(void* dst, const void* src, size_t bytes, size_t src_bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);
unsigned active_mask();
[[noreturn]] void trap(const char* file, int line);

// Launch `kernel` over `grid` x `block` with `smem_bytes` of dynamic shared memory. The arguments are
// converted to the kernel's parameter types once, on the host, like a CUDA launch does; every thread
// gets its own copy.
template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes, Args&&... args) {
  static_assert(sizeof...(KernelArgs) == sizeof...(Args), "cuda_emu::launch: wrong number of arguments");
  using ArgTuple = std::tuple<std::decay_t<KernelArgs>...>;
  struct Closure {
    void (*kernel)(KernelArgs...);
    ArgTuple args;
  };
  const Closure closure{kernel, ArgTuple(std::forward<Args>(args)...)};
  launch_erased(
      reinterpret_cast<const void*>(kernel), grid, block, smem_bytes,
      [](const void* p) {
        const Closure& c = *static_cast<const Closure*>(p);
        ArgTuple copy = c.args;  // by-value parameters: each thread its own copy
        std::apply(c.kernel, std::move(copy));
      },
      &closure);
}

template <typename T>
inline T warp_value(WarpOp op, unsigned mask, T var, int param, int width, const char* file, int line) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16,
                "cuda_emu: warp shuffles take trivially copyable values of at most 16 bytes");
  unsigned char buf[16];
  std::memcpy(buf, &var, sizeof(T));
  warp_exchange(op, mask, width, param, buf, sizeof(T), file, line);
  T out;
  std::memcpy(&out, buf, sizeof(T));
  return out;
}

}  // namespace cuda_emu

inline cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) ::cuda_emu::set_max_dynamic_smem(kernel, value);
  return cudaSuccess;
}
template <typename... A>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(A...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "error"; }
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/) {
  *value = ::cuda_emu::device_attribute(attr);
  return cudaSuccess;
}

// ---- block and warp synchronisation -------------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::cuda_emu::block_sync(::cuda_emu::SyncKind::Barrier, 0, file, line);
}
inline int __syncthreads_count(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::block_sync(::cuda_emu::SyncKind::BarrierCount, pred, file, line);
}
inline int __syncthreads_and(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::block_sync(::cuda_emu::SyncKind::BarrierAnd, pred, file, line);
}
inline int __syncthreads_or(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::block_sync(::cuda_emu::SyncKind::BarrierOr, pred, file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  unsigned char none[1] = {0};
  ::cuda_emu::warp_exchange(::cuda_emu::WarpOp::Sync, mask, warpSize, 0, none, 0, file, line);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::warp_value(::cuda_emu::WarpOp::Shfl, mask, var, src_lane, width, file, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize,
                        const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::warp_value(::cuda_emu::WarpOp::ShflUp, mask, var, static_cast<int>(delta), width, file,
                                line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::warp_value(::cuda_emu::WarpOp::ShflDown, mask, var, static_cast<int>(delta), width, file,
                                line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::warp_value(::cuda_emu::WarpOp::ShflXor, mask, var, lane_mask, width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return ::cuda_emu::warp_value(::cuda_emu::WarpOp::Ballot, mask, static_cast<unsigned>(pred != 0), 0,
                                warpSize, file, line);
}
inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return static_cast<int>(::cuda_emu::warp_value(::cuda_emu::WarpOp::Any, mask,
                                                 static_cast<unsigned>(pred != 0), 0, warpSize, file, line));
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return static_cast<int>(::cuda_emu::warp_value(::cuda_emu::WarpOp::All, mask,
                                                 static_cast<unsigned>(pred != 0), 0, warpSize, file, line));
}
inline unsigned __activemask() { return ::cuda_emu::active_mask(); }

// Memory fences: blocks run on OS threads, so these are real fences.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::cuda_emu::trap(file, line);
}

// ---- atomics (real atomics: blocks run concurrently) --------------------------------------------------
namespace cuda_emu {
template <typename T>
inline T atomic_cas_loop_add(T* address, T val) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "cuda_emu: atomicAdd on 4- or 8-byte values");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits* bits = reinterpret_cast<Bits*>(address);
  Bits old_bits = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    T old_val;
    std::memcpy(&old_val, &old_bits, sizeof(T));
    const T new_val = old_val + val;
    Bits new_bits;
    std::memcpy(&new_bits, &new_val, sizeof(T));
    if (__atomic_compare_exchange_n(bits, &old_bits, new_bits, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
      return old_val;
  }
}
}  // namespace cuda_emu

#define CUDA_EMU_INT_ATOMICS(T)                                                                              \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }                       \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }                       \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }                     \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }                       \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                         \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }                       \
  inline T atomicCAS(T* a, T compare, T v) {                                                                 \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                  \
    return compare;                                                                                          \
  }                                                                                                          \
  inline T atomicMax(T* a, T v) {                                                                            \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                            \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                        \
    return old;                                                                                              \
  }                                                                                                          \
  inline T atomicMin(T* a, T v) {                                                                            \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                            \
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                        \
    return old;                                                                                              \
  }
CUDA_EMU_INT_ATOMICS(int)
CUDA_EMU_INT_ATOMICS(unsigned int)
CUDA_EMU_INT_ATOMICS(unsigned long long)
CUDA_EMU_INT_ATOMICS(long long)
#undef CUDA_EMU_INT_ATOMICS

inline float atomicAdd(float* a, float v) { return ::cuda_emu::atomic_cas_loop_add(a, v); }
inline double atomicAdd(double* a, double v) { return ::cuda_emu::atomic_cas_loop_add(a, v); }
inline float atomicExch(float* a, float v) {
  float old;
  __atomic_exchange(a, &v, &old, __ATOMIC_SEQ_CST);
  return old;
}

// ---- device math and intrinsics (host implementations) -----------------------------------------------
// CUDA's min/max are overloaded for every arithmetic pair; the common type says what they return.
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
// fmaf, fminf, fmaxf, sqrtf, expf, ... come from <cmath> (global namespace in glibc).
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(std::ceil(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __float_as_int(float x) {
  int r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline unsigned __float_as_uint(float x) {
  unsigned r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline float __int_as_float(int x) {
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline float __uint_as_float(unsigned x) {
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline long long __double_as_longlong(double x) {
  long long r;
  std::memcpy(&r, &x, 8);
  return r;
}
inline double __longlong_as_double(long long x) {
  double r;
  std::memcpy(&r, &x, 8);
  return r;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
