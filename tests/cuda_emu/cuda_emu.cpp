// Runtime of the CUDA emulator (see cuda_emu.h for the model, README.md for its limits): launches, the
// block scheduler, block barriers, launch checks and error reports. Fibers are in cuda_emu_fibers.cpp,
// warp-collective operations and cp.async in cuda_emu_warp.cpp.
//
// Each OS thread that runs blocks owns a Worker: one fiber (stack + saved context) per thread of the
// block, a scheduler loop, and the block's dynamic shared memory.
#include "cuda_emu_internal.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

// Bounds of the static shared memory: `__shared__` variables live in the TLS section cuda_emu_shared.
// The linker gives the section's image bounds; the per-thread copy runs from cuda_emu_shared_begin (this
// file is linked first) to cuda_emu_shared_end (cuda_emu_end.cpp, linked last). Checked at run time.
extern "C" char __start_cuda_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cuda_emu_shared[] __attribute__((weak, visibility("hidden")));
__attribute__((section("cuda_emu_shared"), aligned(128))) thread_local unsigned char cuda_emu_shared_begin[1];
extern thread_local unsigned char cuda_emu_shared_end[1];

namespace cuda_emu {
namespace detail {

thread_local Worker tls_worker;

std::string fmt3(uint3 v) {
  std::ostringstream s;
  s << "(" << v.x << "," << v.y << "," << v.z << ")";
  return s.str();
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync:
      return "__syncwarp";
    case WarpOp::Shfl:
      return "__shfl_sync";
    case WarpOp::ShflUp:
      return "__shfl_up_sync";
    case WarpOp::ShflDown:
      return "__shfl_down_sync";
    case WarpOp::ShflXor:
      return "__shfl_xor_sync";
    case WarpOp::Ballot:
      return "__ballot_sync";
    case WarpOp::Any:
      return "__any_sync";
    case WarpOp::All:
      return "__all_sync";
    case WarpOp::Ldmatrix:
      return "ldmatrix.x4";
    case WarpOp::Mma:
      return "mma.sync";
  }
  return "?";
}

std::string where(const Fiber& f) {
  std::ostringstream s;
  s << "thread " << fmt3(f.tid);
  if (f.state == State::Done) {
    s << " has exited";
  } else if (f.state == State::AtBarrier) {
    s << " waits at __syncthreads at " << f.file << ":" << f.line;
  } else if (f.state == State::AtWarp) {
    s << " waits at " << op_name(f.op) << "(mask=0x" << std::hex << f.mask << std::dec << ") at " << f.file
      << ":" << f.line;
  } else {
    s << " is runnable";
  }
  return s.str();
}

Fiber& current_fiber(const char* what) {
  Fiber* f = tls_worker.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: ", what, " outside a kernel");
  return *f;
}

[[noreturn]] void fail(const std::string& what) {
  std::ostringstream s;
  s << "cuda_emu: block " << fmt3(blockIdx) << " of grid " << fmt3(gridDim) << ", block size "
    << fmt3(blockDim) << ": " << what;
  TORCH_CHECK(false, s.str());
}

}  // namespace detail

using namespace detail;

namespace {

std::mutex g_attr_mutex;
std::unordered_map<const void*, int> g_max_dynamic_smem;
std::unordered_map<const void*, uint64_t> g_launches;  // under g_attr_mutex

enum class Order { Shuffle, Forward, Reverse };

Order schedule_order() {
  static const Order order = [] {
    const char* v = std::getenv("CUDA_EMU_ORDER");
    if (v == nullptr || *v == 0 || std::string(v) == "shuffle") return Order::Shuffle;
    if (std::string(v) == "forward") return Order::Forward;
    if (std::string(v) == "reverse") return Order::Reverse;
    TORCH_CHECK(false, "cuda_emu: CUDA_EMU_ORDER must be shuffle, forward or reverse, got ", v);
  }();
  return order;
}

bool serial_blocks() {
  static const bool serial = [] {
    const char* v = std::getenv("CUDA_EMU_SERIAL");
    return v != nullptr && *v != 0 && std::string(v) != "0";
  }();
  return serial;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool same_site(const Fiber& a, const Fiber& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

// Releases __syncthreads when every thread of the block waits at the same one; reports divergence.
bool resolve_barrier(Worker& w, unsigned nthreads) {
  const Fiber* first = nullptr;
  const Fiber* exited = nullptr;
  for (unsigned i = 0; i < nthreads; ++i) {
    const Fiber& f = w.fibers[i];
    if (f.state == State::AtWarp || f.state == State::Runnable) return false;
    if (f.state == State::Done) {
      if (exited == nullptr) exited = &f;
      continue;
    }
    if (first == nullptr) {
      first = &f;
    } else if (!same_site(*first, f) || first->sync_kind != f.sync_kind) {
      fail("divergent __syncthreads: " + where(*first) + ", " + where(f));
    }
  }
  if (first == nullptr) return false;
  if (exited != nullptr) {
    fail("divergent __syncthreads: " + where(*first) + ", but " + where(*exited) +
         " (every thread of a block must reach each __syncthreads)");
  }
  int count = 0;
  for (unsigned i = 0; i < nthreads; ++i) count += w.fibers[i].predicate != 0;
  int result = 0;
  switch (first->sync_kind) {
    case SyncKind::Barrier:
      result = 0;
      break;
    case SyncKind::BarrierCount:
      result = count;
      break;
    case SyncKind::BarrierAnd:
      result = count == static_cast<int>(nthreads);
      break;
    case SyncKind::BarrierOr:
      result = count != 0;
      break;
  }
  for (unsigned i = 0; i < nthreads; ++i) {
    w.fibers[i].sync_result = result;
    w.fibers[i].state = State::Runnable;
  }
  return true;
}

[[noreturn]] void report_deadlock(Worker& w, unsigned nthreads) {
  std::ostringstream s;
  s << "deadlock: no thread can proceed;";
  unsigned shown = 0;
  for (unsigned i = 0; i < nthreads && shown < 8; ++i) {
    const Fiber& f = w.fibers[i];
    if (f.state == State::Done) continue;
    s << " " << where(f) << ";";
    ++shown;
  }
  fail(s.str());
}

struct Launch {
  dim3 grid, block;
  size_t smem_bytes;
  unsigned nthreads;
  KernelInvoker invoke;
  const void* closure;
  uint64_t seed;  // of the schedule (CUDA_EMU_SEED)
};

// CUDA_EMU_SEED (read at every launch, default 0) picks another, equally valid, thread schedule: results
// of a correct kernel must not depend on it.
uint64_t schedule_seed() {
  const char* v = std::getenv("CUDA_EMU_SEED");
  return v != nullptr && *v != 0 ? std::strtoull(v, nullptr, 10) : 0;
}

// The calling thread's copy of the static shared memory, or {nullptr, 0} if the link order broke the
// assumption above (then it is not poisoned).
std::pair<unsigned char*, size_t> static_shared_region() {
  unsigned char* begin = cuda_emu_shared_begin;
  unsigned char* end = cuda_emu_shared_end + sizeof(cuda_emu_shared_end);
  const ptrdiff_t image = __stop_cuda_emu_shared - __start_cuda_emu_shared;
  if (__start_cuda_emu_shared == nullptr || end - begin != image) return {nullptr, 0};
  return {begin, static_cast<size_t>(image)};
}

void run_block(Worker& w, const Launch& L, uint64_t block_linear) {
  blockIdx = uint3{static_cast<unsigned>(block_linear % L.grid.x),
                   static_cast<unsigned>(block_linear / L.grid.x % L.grid.y),
                   static_cast<unsigned>(block_linear / (uint64_t(L.grid.x) * L.grid.y))};
  blockDim = L.block;
  gridDim = L.grid;
  if (L.smem_bytes > 0) std::memset(w.smem, 0xff, L.smem_bytes);  // NaN / -1: unwritten reads show
  const auto static_smem = static_shared_region();
  if (static_smem.second > 0) std::memset(static_smem.first, 0xff, static_smem.second);
  const unsigned n = L.nthreads;
  const unsigned num_warps = (n + 31) / 32;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = w.fibers[i];
    f.state = State::Runnable;
    f.error = nullptr;
    f.copies.clear();
    f.groups_committed = 0;
    f.tid = uint3{i % L.block.x, i / L.block.x % L.block.y, i / (L.block.x * L.block.y)};
    start_fiber(f);
  }
  const Order order = schedule_order();
  uint64_t rng = block_linear * 0x2545f4914f6cdd1dull + 12345 + L.seed * 0x9e3779b97f4a7c15ull;
  // Orders `count` indices into `out` as the schedule says (a fresh shuffle each call).
  auto arrange = [&](unsigned count, unsigned* out) {
    for (unsigned i = 0; i < count; ++i) out[i] = order == Order::Reverse ? count - 1 - i : i;
    if (order == Order::Shuffle)
      for (unsigned i = count; i > 1; --i) std::swap(out[i - 1], out[splitmix64(rng) % i]);
  };
  w.order.resize(num_warps);
  unsigned lane_order[32];
  unsigned done = 0;
  // Between two block barriers, warps run one after another (a fresh order each time), each as far as
  // it can: its lanes interleave between warp intrinsics, and the warp goes on to the next barrier
  // before another warp starts. So one warp gets as far ahead of the others as CUDA allows, and a
  // missing barrier between warps (or a missing __syncwarp inside one) reorders shared-memory accesses.
  for (;;) {
    arrange(num_warps, w.order.data());
    for (unsigned wi = 0; wi < num_warps; ++wi) {
      const unsigned base = w.order[wi] * 32;
      const unsigned lanes = std::min(32u, n - base);
      do {
        arrange(lanes, lane_order);
        for (unsigned k = 0; k < lanes; ++k) {
          Fiber& f = w.fibers[base + lane_order[k]];
          if (f.state != State::Runnable) continue;
          threadIdx = f.tid;
          w.current = &f;
          switch_to_fiber(w, f);
          w.current = nullptr;
          if (f.error) {
            threadIdx = f.tid;
            try {
              std::rethrow_exception(f.error);
            } catch (const std::exception& e) {
              fail("thread " + fmt3(f.tid) + " raised: " + e.what());
            }
          }
          if (f.state == State::Done) ++done;
        }
      } while (resolve_warp(w, base, n));
    }
    if (done == n) return;
    if (resolve_barrier(w, n)) continue;
    report_deadlock(w, n);
  }
}

void check_launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  TORCH_CHECK(block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 &&
                  block.z <= 64 && nthreads <= 1024,
              "cuda_emu: invalid launch configuration: block (", block.x, ",", block.y, ",", block.z,
              ") (at most 1024 threads; x, y <= 1024, z <= 64)");
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u && grid.y <= 65535 &&
                  grid.z <= 65535,
              "cuda_emu: invalid launch configuration: grid (", grid.x, ",", grid.y, ",", grid.z, ")");
  size_t limit = kSmemDefaultLimit;
  {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    ++g_launches[kernel];
    auto it = g_max_dynamic_smem.find(kernel);
    if (it != g_max_dynamic_smem.end()) limit = static_cast<size_t>(it->second);
  }
  TORCH_CHECK(
      smem_bytes <= limit, "cuda_emu: launch asks for ", smem_bytes,
      " bytes of dynamic shared memory; the kernel's limit is ", limit,
      " (over 48 KiB needs cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize))");
}

}  // namespace

void launch_erased(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, KernelInvoker invoke,
                   const void* closure) {
  check_launch(kernel, grid, block, smem_bytes);
  const Launch L{grid, block, smem_bytes, block.x * block.y * block.z, invoke, closure, schedule_seed()};
  const int64_t nblocks = int64_t(grid.x) * grid.y * grid.z;
  auto run_blocks = [&L](int64_t begin, int64_t end) {
    Worker& w = tls_worker;
    TORCH_CHECK(w.current == nullptr, "cuda_emu: a kernel launched a kernel");
    w.reserve(L.nthreads, L.smem_bytes);
    w.invoke = L.invoke;
    w.closure = L.closure;
    for (int64_t b = begin; b < end; ++b) run_block(w, L, static_cast<uint64_t>(b));
  };
  if (nblocks == 1 || serial_blocks()) {
    run_blocks(0, nblocks);
  } else {
    at::parallel_for(0, nblocks, 1, run_blocks);
  }
}

void* dynamic_shared_memory() {
  Worker& w = tls_worker;
  TORCH_CHECK(w.current != nullptr, "cuda_emu: dynamic shared memory used outside a kernel");
  return w.smem;
}

std::vector<std::pair<uintptr_t, uint64_t>> launch_counts(bool reset) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  std::vector<std::pair<uintptr_t, uint64_t>> out;
  for (const auto& [kernel, count] : g_launches) {
    Dl_info info{};
    const uintptr_t base = dladdr(kernel, &info) ? reinterpret_cast<uintptr_t>(info.dli_fbase) : 0;
    out.emplace_back(reinterpret_cast<uintptr_t>(kernel) - base, count);
  }
  if (reset) g_launches.clear();
  return out;
}

size_t static_shared_poison_bytes() { return static_shared_region().second; }

void set_max_dynamic_smem(const void* kernel, int bytes) {
  TORCH_CHECK(bytes >= 0 && static_cast<size_t>(bytes) <= kSmemOptinLimit,
              "cuda_emu: cudaFuncAttributeMaxDynamicSharedMemorySize ", bytes, " exceeds ", kSmemOptinLimit);
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  g_max_dynamic_smem[kernel] = bytes;
}

int device_attribute(cudaDeviceAttr attr) {
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      return 1024;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      return static_cast<int>(kSmemDefaultLimit);
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      return static_cast<int>(kSmemOptinLimit);
    case cudaDevAttrWarpSize:
      return 32;
    case cudaDevAttrMultiProcessorCount: {
      const char* v = std::getenv("CUDA_EMU_SM_COUNT");
      return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : 8;
    }
  }
  return 0;
}

int block_sync(SyncKind kind, int predicate, const char* file, int line) {
  Worker& w = tls_worker;
  Fiber* f = &current_fiber("__syncthreads");
  f->state = State::AtBarrier;
  f->sync_kind = kind;
  f->predicate = predicate;
  f->file = file;
  f->line = line;
  switch_to_scheduler(w, *f);
  return f->sync_result;
}

void trap(const char* file, int line) { TORCH_CHECK(false, "cuda_emu: __trap() at ", file, ":", line); }

}  // namespace cuda_emu