// Small kernels that test the emulator itself (tests/infra/test_emulator.py), registered as CPU ops under
// cuda_emu_selftest. Written like the project's kernels: cuda_compat.cuh, launch_kernel, dynamic_smem.
// Each "variant" argument switches a deliberate bug on, to show the emulator makes it visible.
#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "cuda_compat.cuh"

namespace selftest {

using conv1d_ext::emulated::dynamic_smem;
using conv1d_ext::emulated::launch_kernel;

// out[t] = x[n - 1 - t] through shared memory; without the barrier a thread reads a slot its
// partner has not written yet.
__global__ void reverse_kernel(const float* __restrict__ x, float* __restrict__ out, int with_barrier) {
  float* smem = dynamic_smem<float>();
  const int t = threadIdx.x;
  const int n = blockDim.x;
  smem[t] = x[blockIdx.x * n + t];
  if (with_barrier) __syncthreads();
  out[blockIdx.x * n + t] = smem[n - 1 - t];
}

// out[t] = sum over tiles i of x[i * n + (t + 1) % n], staged through static shared memory. Without the
// second barrier a fast thread overwrites the tile while a slow one still reads it.
__global__ void tiled_kernel(const float* __restrict__ x, float* __restrict__ out, int tiles,
                             int second_barrier) {
  __shared__ float tile[256];
  const int t = threadIdx.x;
  const int n = blockDim.x;
  float acc = 0.f;
  for (int i = 0; i < tiles; ++i) {
    tile[t] = x[i * n + t];
    __syncthreads();
    acc += tile[(t + 1) % n];
    if (second_barrier) __syncthreads();
  }
  out[t] = acc;
}

// One warp intrinsic per thread. Threads outside `mask` (or beyond `active` within the block) skip it
// and write -1.
__global__ void warp_op_kernel(const int* __restrict__ x, int64_t* __restrict__ out, int op, int param,
                               int width, unsigned mask) {
  const unsigned t = threadIdx.x;
  const unsigned lane = t % 32;
  if (((mask >> lane) & 1u) == 0) {
    out[t] = -1;
    return;
  }
  const int v = x[t];
  int64_t r = 0;
  switch (op) {
    case 0:
      r = __shfl_sync(mask, v, param, width);
      break;
    case 1:
      r = __shfl_up_sync(mask, v, static_cast<unsigned>(param), width);
      break;
    case 2:
      r = __shfl_down_sync(mask, v, static_cast<unsigned>(param), width);
      break;
    case 3:
      r = __shfl_xor_sync(mask, v, param, width);
      break;
    case 4:
      r = static_cast<int64_t>(__ballot_sync(mask, v));
      break;
    case 5:
      r = __any_sync(mask, v);
      break;
    case 6:
      r = __all_sync(mask, v);
      break;
    case 7:
      __syncwarp(mask);
      r = v;
      break;
  }
  out[t] = r;
}

// Block sum: warp shuffle-down reduction, one partial per warp through shared memory, then warp 0
// reduces the partials. `wrong_lane` shifts the shuffle distance by one (a wrong lane).
template <typename T>
__global__ void block_sum_kernel(const T* __restrict__ x, int64_t n, T* __restrict__ out, int wrong_lane) {
  __shared__ float partial[32];
  float acc = 0.f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    acc += static_cast<float>(x[i]);
  for (int offset = 16; offset > 0; offset /= 2)
    acc += __shfl_down_sync(0xffffffffu, acc, offset + (wrong_lane && offset == 1 ? 1 : 0));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = (blockDim.x + 31) / 32;
    acc = lane < nwarps ? partial[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) out[blockIdx.x] = static_cast<T>(acc);
  }
}

// Reads dynamic shared memory before writing it: every block must see the poison, even after an
// earlier block on the same OS thread wrote the whole buffer.
__global__ void smem_poison_kernel(float* __restrict__ out, int nfloats) {
  float* smem = dynamic_smem<float>();
  for (int i = threadIdx.x; i < nfloats; i += blockDim.x) out[blockIdx.x * nfloats + i] = smem[i];
  __syncthreads();
  for (int i = threadIdx.x; i < nfloats; i += blockDim.x) smem[i] = 1.0f;
}

// out[global linear thread] = packed (blockIdx, threadIdx, blockDim, gridDim) to check the built-ins.
__global__ void ids_kernel(int64_t* __restrict__ out) {
  const int64_t block = blockIdx.x + int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
  const int64_t nthreads = int64_t(blockDim.x) * blockDim.y * blockDim.z;
  const int64_t thread =
      threadIdx.x + int64_t(blockDim.x) * (threadIdx.y + int64_t(blockDim.y) * threadIdx.z);
  int64_t* o = out + (block * nthreads + thread) * 12;
  o[0] = blockIdx.x;
  o[1] = blockIdx.y;
  o[2] = blockIdx.z;
  o[3] = threadIdx.x;
  o[4] = threadIdx.y;
  o[5] = threadIdx.z;
  o[6] = blockDim.x;
  o[7] = blockDim.y;
  o[8] = blockDim.z;
  o[9] = gridDim.x;
  o[10] = gridDim.y;
  o[11] = gridDim.z;
}

// Static shared memory belongs to the running block: each block stores its id, all threads read it back
// after a barrier (blocks on other OS threads must not interfere).
__global__ void static_smem_kernel(int* __restrict__ out) {
  __shared__ int block_id;
  __shared__ int values[128];
  if (threadIdx.x == 0) block_id = blockIdx.x;
  values[threadIdx.x] = blockIdx.x * 1000 + threadIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] =
      block_id * 1000 + values[(threadIdx.x + 1) % blockDim.x] - (blockIdx.x * 1000);
}

// Reads static shared memory before writing it: poisoned at every block start (NaN), even though the
// previous block on this OS thread wrote it.
__global__ void static_smem_poison_kernel(float* __restrict__ out) {
  __shared__ float buf[64];
  __shared__ __align__(16) double other[3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[threadIdx.x] + static_cast<float>(other[threadIdx.x % 3]);
  __syncthreads();
  buf[threadIdx.x] = 1.0f;
  other[threadIdx.x % 3] = 2.0;
}

// Misuse the emulator must report instead of computing something.
__global__ void misuse_kernel(int kind, float* out) {
  const int t = threadIdx.x;
  switch (kind) {
    case 0:  // barrier reached by half the block only
      if (t < 32) __syncthreads();
      break;
    case 1:  // early exit before a barrier
      if (t == 5) return;
      __syncthreads();
      break;
    case 2:  // two different barriers
      if (t % 2) {
        __syncthreads();
      } else {
        __syncthreads();
      }
      break;
    case 3:  // shuffle whose mask names an exited lane
      if (t == 3) return;
      out[t] = __shfl_sync(0xffffffffu, 1.0f, 0);
      break;
    case 4:  // shuffle from a lane that is not in its own mask
      out[t] = __shfl_sync(0xfffffffeu, 1.0f, 0);
      break;
    case 5:  // lanes disagree on the mask
      out[t] = __shfl_sync(t < 16 ? 0xffffffffu : 0xffff0000u, 1.0f, 0);
      break;
    case 6:
      if (t == 0) __trap();
      break;
    case 7:  // a warp op while the rest of the warp waits at a barrier
      if (t == 0) {
        out[t] = __shfl_sync(0xffffffffu, 1.0f, 0);
      }
      __syncthreads();
      break;
  }
}

__global__ void empty_kernel(float* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = 1.0f;
}

// Block-wide sum through a scratch array reused by consecutive calls; without the leading barrier a
// warp that finished the previous call overwrites scratch while other warps still read it.
__device__ float reusable_block_sum(float v, float* scratch, int leading_barrier) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (leading_barrier) __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.f;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) total += scratch[w];
  return total;
}

__global__ void sums_kernel(const float* __restrict__ x, float* __restrict__ out, int rounds,
                            int leading_barrier) {
  __shared__ float scratch[32];
  for (int r = 0; r < rounds; ++r) {
    const float total = reusable_block_sum(x[r * blockDim.x + threadIdx.x], scratch, leading_barrier);
    if (threadIdx.x == blockDim.x - 1) out[r] = total;
  }
}

// --- tensor-core instructions (the helpers of csrc/cuda/tensor_core.cuh), checked by the tests against
// the PTX ISA's layouts written out independently in Python (tests/ops/test_tensor_core.py).

// One warp: lane l passes regs[l] = (a0..a3, b0, b1) and c[l][0..3] to mma (kind 0 bf16, 1 f16, 2 tf32).
__global__ void mma_kernel(const uint32_t* regs, const float* c, float* d, int kind) {
  const int l = threadIdx.x;
  const uint32_t a[4] = {regs[6 * l], regs[6 * l + 1], regs[6 * l + 2], regs[6 * l + 3]};
  const uint32_t b[2] = {regs[6 * l + 4], regs[6 * l + 5]};
  float acc[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]};
  cuda_emu::mma(kind, acc, a, b);
  for (int r = 0; r < 4; ++r) d[4 * l + r] = acc[r];
}

// One warp: `rows` 16-byte rows are staged in shared memory; lane l reads with ldmatrix.x4 from row
// row_of_lane[l] and writes its four registers to out[l].
__global__ void ldmatrix_kernel(const uint32_t* data, int rows, const int* row_of_lane, uint32_t* out) {
  __shared__ __align__(16) uint32_t smem[64 * 4];
  for (int i = threadIdx.x; i < rows * 4; i += 32) smem[i] = data[i];
  __syncwarp();
  uint32_t r[4];
  cuda_emu::ldmatrix_x4(r, smem + 4 * row_of_lane[threadIdx.x]);
  for (int i = 0; i < 4; ++i) out[4 * threadIdx.x + i] = r[i];
}

// cp.async groups: each thread copies x[2t] (group 0) and x[2t+1] (group 1) to shared memory, then reads
// both after waiting for `wait` (-1: no wait; 1: all but the newest group; 0: all). Each thread reads only
// its own copies, so no barrier is involved.
__global__ void cp_async_kernel(const float* x, float* out, int wait) {
  __shared__ __align__(16) float smem[2 * 64];
  const int t = threadIdx.x;
  cuda_emu::cp_async(&smem[2 * t], &x[2 * t], 4, 4);
  cuda_emu::cp_async_commit();
  cuda_emu::cp_async(&smem[2 * t + 1], &x[2 * t + 1], 4, t % 2 == 0 ? 4 : 0);  // odd threads: zero fill
  cuda_emu::cp_async_commit();
  if (wait >= 0) cuda_emu::cp_async_wait(wait);
  out[2 * t] = smem[2 * t];
  out[2 * t + 1] = smem[2 * t + 1];
}

// --- ops ---------------------------------------------------------------------------------------------

at::Tensor reverse(const at::Tensor& x, int64_t with_barrier) {
  const int64_t n = x.size(1);
  at::Tensor out = at::empty_like(x);
  launch_kernel(reverse_kernel, dim3(x.size(0)), dim3(n), n * sizeof(float), nullptr,
                x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), static_cast<int>(with_barrier));
  return out;
}

at::Tensor tiled(const at::Tensor& x, int64_t second_barrier) {
  const int64_t tiles = x.size(0), n = x.size(1);
  at::Tensor out = at::empty({n}, x.options());
  launch_kernel(tiled_kernel, dim3(1), dim3(n), 0, nullptr, x.const_data_ptr<float>(),
                out.mutable_data_ptr<float>(), static_cast<int>(tiles), static_cast<int>(second_barrier));
  return out;
}

at::Tensor warp_op(const at::Tensor& x, int64_t op, int64_t param, int64_t width, int64_t mask) {
  at::Tensor out = at::empty({x.numel()}, x.options().dtype(at::kLong));
  launch_kernel(warp_op_kernel, dim3(1), dim3(x.numel()), 0, nullptr, x.const_data_ptr<int>(),
                out.mutable_data_ptr<int64_t>(), static_cast<int>(op), static_cast<int>(param),
                static_cast<int>(width), static_cast<unsigned>(mask));
  return out;
}

at::Tensor sums(const at::Tensor& x, int64_t leading_barrier) {
  at::Tensor out = at::empty({x.size(0)}, x.options());
  launch_kernel(sums_kernel, dim3(1), dim3(x.size(1)), 0, nullptr, x.const_data_ptr<float>(),
                out.mutable_data_ptr<float>(), static_cast<int>(x.size(0)),
                static_cast<int>(leading_barrier));
  return out;
}

at::Tensor block_sum(const at::Tensor& x, int64_t blocks, int64_t threads, int64_t wrong_lane) {
  at::Tensor out = at::empty({blocks}, x.options());
  if (x.scalar_type() == at::kFloat) {
    launch_kernel(block_sum_kernel<float>, dim3(blocks), dim3(threads), 0, nullptr, x.const_data_ptr<float>(),
                  x.numel(), out.mutable_data_ptr<float>(), static_cast<int>(wrong_lane));
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "block_sum: float or bfloat16");
    launch_kernel(block_sum_kernel<c10::BFloat16>, dim3(blocks), dim3(threads), 0, nullptr,
                  x.const_data_ptr<c10::BFloat16>(), x.numel(), out.mutable_data_ptr<c10::BFloat16>(),
                  static_cast<int>(wrong_lane));
  }
  return out;
}

// Every thread of every block: counter += 1, fsum += 1, dsum += 0.5, imax = max(imax, global id), and a
// CAS-loop increment; blocks run concurrently on OS threads.
__global__ void atomics_only_kernel(int* __restrict__ counter, float* __restrict__ fsum,
                                    int* __restrict__ imax, unsigned long long* __restrict__ cas_counter,
                                    double* __restrict__ dsum) {
  const int gid = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(counter, 1);
  atomicAdd(fsum, 1.0f);
  atomicAdd(dsum, 0.5);
  atomicMax(imax, gid);
  unsigned long long old = *cas_counter, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_counter, assumed, assumed + 1);
  } while (old != assumed);
}

at::Tensor atomics(int64_t blocks, int64_t threads) {
  int counter = 0, imax = -1;
  float fsum = 0.f;
  double dsum = 0.0;
  unsigned long long cas = 0;
  launch_kernel(atomics_only_kernel, dim3(blocks), dim3(threads), 0, nullptr, &counter, &fsum, &imax, &cas,
                &dsum);
  at::Tensor out = at::empty({5}, at::kDouble);
  double* o = out.mutable_data_ptr<double>();
  o[0] = counter;
  o[1] = fsum;
  o[2] = imax;
  o[3] = static_cast<double>(cas);
  o[4] = dsum;
  return out;
}

at::Tensor smem_poison(int64_t blocks, int64_t nfloats) {
  at::Tensor out = at::empty({blocks, nfloats}, at::kFloat);
  launch_kernel(smem_poison_kernel, dim3(blocks), dim3(64), nfloats * sizeof(float), nullptr,
                out.mutable_data_ptr<float>(), static_cast<int>(nfloats));
  return out;
}

at::Tensor ids(at::IntArrayRef grid, at::IntArrayRef block) {
  const dim3 g(grid[0], grid[1], grid[2]), b(block[0], block[1], block[2]);
  at::Tensor out = at::full({int64_t(g.x) * g.y * g.z * b.x * b.y * b.z, 12}, -1, at::kLong);
  launch_kernel(ids_kernel, g, b, 0, nullptr, out.mutable_data_ptr<int64_t>());
  return out;
}

at::Tensor static_smem(int64_t blocks, int64_t threads) {
  at::Tensor out = at::empty({blocks, threads}, at::kInt);
  launch_kernel(static_smem_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.mutable_data_ptr<int>());
  return out;
}

at::Tensor static_smem_poison(int64_t blocks) {
  at::Tensor out = at::empty({blocks, 64}, at::kFloat);
  launch_kernel(static_smem_poison_kernel, dim3(blocks), dim3(64), 0, nullptr, out.mutable_data_ptr<float>());
  return out;
}

int64_t static_shared_poison_bytes() { return static_cast<int64_t>(cuda_emu::static_shared_poison_bytes()); }

void misuse(int64_t kind, int64_t threads) {
  at::Tensor out = at::zeros({threads}, at::kFloat);
  launch_kernel(misuse_kernel, dim3(1), dim3(threads), 0, nullptr, static_cast<int>(kind),
                out.mutable_data_ptr<float>());
}

// Launch configurations a GPU rejects: 0 ok, 1 too many threads, 2 block.z too big, 3 64 KiB of dynamic
// shared memory without the opt-in, 4 the same with cudaFuncSetAttribute (ok).
void launch_config(int64_t kind) {
  float out = 0.f;
  switch (kind) {
    case 0:
      launch_kernel(empty_kernel, dim3(2), dim3(1024), 48 * 1024, nullptr, &out);
      break;
    case 1:
      launch_kernel(empty_kernel, dim3(1), dim3(1025), 0, nullptr, &out);
      break;
    case 2:
      launch_kernel(empty_kernel, dim3(1), dim3(1, 1, 65), 0, nullptr, &out);
      break;
    case 3:
      launch_kernel(empty_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, &out);
      break;
    case 4:
      cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
      launch_kernel(empty_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, &out);
      cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024);
      break;
  }
  TORCH_CHECK(out == 1.0f, "launch_config: the kernel did not run");
}

at::Tensor mma(const at::Tensor& regs, const at::Tensor& c, int64_t kind) {
  at::Tensor d = at::empty({32, 4}, at::kFloat);
  launch_kernel(mma_kernel, dim3(1), dim3(32), 0, nullptr,
                reinterpret_cast<const uint32_t*>(regs.const_data_ptr<int>()), c.const_data_ptr<float>(),
                d.mutable_data_ptr<float>(), static_cast<int>(kind));
  return d;
}

at::Tensor ldmatrix(const at::Tensor& data, const at::Tensor& row_of_lane) {
  TORCH_CHECK(data.numel() % 4 == 0 && data.numel() <= 256, "ldmatrix: at most 64 rows of 16 bytes");
  at::Tensor out = at::empty({32, 4}, at::kInt);
  launch_kernel(ldmatrix_kernel, dim3(1), dim3(32), 0, nullptr,
                reinterpret_cast<const uint32_t*>(data.const_data_ptr<int>()),
                static_cast<int>(data.numel() / 4), row_of_lane.const_data_ptr<int>(),
                reinterpret_cast<uint32_t*>(out.mutable_data_ptr<int>()));
  return out;
}

at::Tensor cp_async(const at::Tensor& x, int64_t wait) {
  at::Tensor out = at::empty_like(x);
  launch_kernel(cp_async_kernel, dim3(1), dim3(x.numel() / 2), 0, nullptr, x.const_data_ptr<float>(),
                out.mutable_data_ptr<float>(), static_cast<int>(wait));
  return out;
}

}  // namespace selftest

TORCH_LIBRARY(cuda_emu_selftest, m) {
  m.def("reverse(Tensor x, int with_barrier) -> Tensor", &selftest::reverse);
  m.def("tiled(Tensor x, int second_barrier) -> Tensor", &selftest::tiled);
  m.def("warp_op(Tensor x, int op, int param, int width, int mask) -> Tensor", &selftest::warp_op);
  m.def("block_sum(Tensor x, int blocks, int threads, int wrong_lane) -> Tensor", &selftest::block_sum);
  m.def("sums(Tensor x, int leading_barrier) -> Tensor", &selftest::sums);
  m.def("atomics(int blocks, int threads) -> Tensor", &selftest::atomics);
  m.def("smem_poison(int blocks, int nfloats) -> Tensor", &selftest::smem_poison);
  m.def("ids(int[] grid, int[] block) -> Tensor", &selftest::ids);
  m.def("static_smem(int blocks, int threads) -> Tensor", &selftest::static_smem);
  m.def("static_smem_poison(int blocks) -> Tensor", &selftest::static_smem_poison);
  m.def("static_shared_poison_bytes() -> int", &selftest::static_shared_poison_bytes);
  m.def("misuse(int kind, int threads) -> ()", &selftest::misuse);
  m.def("launch_config(int kind) -> ()", &selftest::launch_config);
  m.def("mma(Tensor regs, Tensor c, int kind) -> Tensor", &selftest::mma);
  m.def("ldmatrix(Tensor data, Tensor row_of_lane) -> Tensor", &selftest::ldmatrix);
  m.def("cp_async(Tensor x, int wait) -> Tensor", &selftest::cp_async);
}
