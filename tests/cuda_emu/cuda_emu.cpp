// Runtime of the CUDA emulator (see cuda_emu.h for the model, README.md for its limits).
//
// Each OS thread that runs blocks owns a Worker: one fiber (stack + saved context) per thread of the
// block, a scheduler loop, and the block's dynamic shared memory. Fibers switch with a few lines of
// assembly on x86-64 (no system call, unlike swapcontext) and with ucontext elsewhere.
#include "cuda_emu.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__) || defined(CUDA_EMU_USE_UCONTEXT)
#define CUDA_EMU_UCONTEXT 1
#include <ucontext.h>
#endif

#if !CUDA_EMU_UCONTEXT
// cuda_emu_switch(save_sp, load_sp): saves the callee-saved registers and the FP control words on the
// current stack, stores the stack pointer in *save_sp, and resumes the context saved at load_sp.
asm(R"(
  .text
  .p2align 4
  .globl cuda_emu_switch
  .hidden cuda_emu_switch
  .type cuda_emu_switch, @function
cuda_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuda_emu_switch, .-cuda_emu_switch
)");
extern "C" void cuda_emu_switch(void** save_sp, void* load_sp);
#endif

// Bounds of the static shared memory: `__shared__` variables live in the TLS section cuda_emu_shared.
// The linker gives the section's image bounds; the per-thread copy runs from cuda_emu_shared_begin (this
// file is linked first) to cuda_emu_shared_end (cuda_emu_end.cpp, linked last). Checked at run time.
extern "C" char __start_cuda_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cuda_emu_shared[] __attribute__((weak, visibility("hidden")));
__attribute__((section("cuda_emu_shared"), aligned(128))) thread_local unsigned char cuda_emu_shared_begin[1];
extern thread_local unsigned char cuda_emu_shared_end[1];

namespace cuda_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // per fiber; a PROT_NONE guard page below catches overflow
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSmemDefaultLimit = 48 * 1024;  // without cudaFuncSetAttribute
constexpr size_t kSmemOptinLimit = 227 * 1024;   // H100 maximum per block

enum class State : uint8_t { Runnable, AtBarrier, AtWarp, Done };

constexpr size_t kValueBytes = 48;  // per-lane operand of a warp rendezvous (an mma's a, b and c: 40)

// One cp.async in flight: its bytes (read at issue), where they go, and its commit group (-1: none yet).
struct PendingCopy {
  void* dst;
  size_t bytes;
  int64_t group;
  unsigned char data[16];
};

struct Fiber {
#if CUDA_EMU_UCONTEXT
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
  char* stack = nullptr;  // top of the usable stack
  State state = State::Done;
  uint3 tid{0, 0, 0};
  // The synchronisation point the fiber waits at.
  const char* file = "";
  int line = 0;
  SyncKind sync_kind = SyncKind::Barrier;
  int predicate = 0;
  int sync_result = 0;
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  int width = 32;
  int param = 0;
  size_t size = 0;
  unsigned char value[kValueBytes];
  std::exception_ptr error;
  std::vector<PendingCopy> copies;  // cp.async issued and not yet waited for
  int64_t groups_committed = 0;
};

struct Worker {
  std::vector<Fiber> fibers;    // sized once to the largest block seen; never reallocated mid-block
  std::vector<char*> mappings;  // one mmap per fiber stack, reused across blocks and launches
  std::vector<unsigned> order;
  unsigned char* smem = nullptr;
  size_t smem_capacity = 0;
#if CUDA_EMU_UCONTEXT
  ucontext_t scheduler;
#else
  void* scheduler_sp = nullptr;
#endif
  Fiber* current = nullptr;
  const void* scheduler_stack = nullptr;  // bounds of the scheduler's (the OS thread's) stack, for ASan
  size_t scheduler_stack_size = 0;
  KernelInvoker invoke = nullptr;
  const void* closure = nullptr;

  ~Worker() {
    for (char* m : mappings) munmap(m, kStackBytes + kGuardBytes);
    std::free(smem);
  }

  void reserve(unsigned nthreads, size_t smem_bytes) {
    if (fibers.size() < nthreads) fibers.resize(nthreads);
    while (mappings.size() < nthreads) {
      void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      TORCH_CHECK(m != MAP_FAILED, "cuda_emu: cannot map a fiber stack");
      mprotect(m, kGuardBytes, PROT_NONE);
      mappings.push_back(static_cast<char*>(m));
    }
    for (unsigned i = 0; i < nthreads; ++i) fibers[i].stack = mappings[i] + kGuardBytes + kStackBytes;
    if (smem_capacity < smem_bytes) {
      std::free(smem);
      const size_t cap = (smem_bytes + 127) / 128 * 128;
      smem = static_cast<unsigned char*>(std::aligned_alloc(128, cap));
      TORCH_CHECK(smem != nullptr, "cuda_emu: cannot allocate shared memory");
      smem_capacity = cap;
    }
  }
};

thread_local Worker tls_worker;

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

// AddressSanitizer builds (CONV1D_EXT_SANITIZE): ASan knows one stack per OS thread. It is told at every
// switch which stack runs next (so an exception thrown on a fiber unpoisons the frames it unwinds there,
// and reports describe fiber frames), and a fiber stack is unpoisoned before reuse (the redzones of
// frames that never returned: fiber_main's, those of a block abandoned after an error). No fake stacks:
// detect_stack_use_after_return stays off.
#if defined(__SANITIZE_ADDRESS__)
void asan_leave_for(const void* stack_bottom, size_t size) {
  __sanitizer_start_switch_fiber(nullptr, stack_bottom, size);
}
void asan_arrived(Worker* w) {  // w: on a fiber, to learn the scheduler's stack; null on the scheduler
  __sanitizer_finish_switch_fiber(nullptr, w ? &w->scheduler_stack : nullptr,
                                  w ? &w->scheduler_stack_size : nullptr);
}
void asan_unpoison(char* begin, size_t size) { __asan_unpoison_memory_region(begin, size); }
#else
void asan_leave_for(const void*, size_t) {}
void asan_arrived(Worker*) {}
void asan_unpoison(char*, size_t) {}
#endif

void fiber_main();

void switch_to_fiber(Worker& w, Fiber& f) {
  asan_leave_for(f.stack - kStackBytes, kStackBytes);
#if CUDA_EMU_UCONTEXT
  swapcontext(&w.scheduler, &f.uc);
#else
  cuda_emu_switch(&w.scheduler_sp, f.sp);
#endif
  asan_arrived(nullptr);
}

void switch_to_scheduler(Worker& w, Fiber& f) {
  asan_leave_for(w.scheduler_stack, w.scheduler_stack_size);
#if CUDA_EMU_UCONTEXT
  swapcontext(&f.uc, &w.scheduler);
#else
  cuda_emu_switch(&f.sp, w.scheduler_sp);
#endif
  asan_arrived(&w);
}

void start_fiber(Fiber& f) {
  asan_unpoison(f.stack - kStackBytes, kStackBytes);
#if CUDA_EMU_UCONTEXT
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack - kStackBytes;
  f.uc.uc_stack.ss_size = kStackBytes;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, fiber_main, 0);
#else
  // The frame cuda_emu_switch pops: FP control words, r15..r12, rbx, rbp, then the return address.
  uint64_t* sp = reinterpret_cast<uint64_t*>(f.stack - 80);  // 16-byte aligned; entry sees rsp % 16 == 8
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memset(sp, 0, 80);
  std::memcpy(reinterpret_cast<char*>(sp), &fpucw, sizeof(fpucw));
  std::memcpy(reinterpret_cast<char*>(sp) + 8, &mxcsr, sizeof(mxcsr));
  sp[8] = reinterpret_cast<uint64_t>(&fiber_main);  // return address of the first switch
  f.sp = sp;
#endif
}

void fiber_main() {
  Worker& w = tls_worker;
  asan_arrived(&w);
  Fiber* f = w.current;
  try {
    w.invoke(w.closure);
  } catch (...) {
    f->error = std::current_exception();
  }
  f->state = State::Done;
  switch_to_scheduler(w, *f);
  std::abort();  // a finished fiber is never resumed
}

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

[[noreturn]] void fail(const std::string& what) {
  std::ostringstream s;
  s << "cuda_emu: block " << fmt3(blockIdx) << " of grid " << fmt3(gridDim) << ", block size "
    << fmt3(blockDim) << ": " << what;
  TORCH_CHECK(false, s.str());
}

bool same_site(const Fiber& a, const Fiber& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

// ldmatrix.x4 of the warp at `base`: lane 8i+r holds the address of row r of matrix i; lane l receives in
// register i the 4 bytes at byte 4*(l%4) of row l/4 of matrix i (PTX ISA, ldmatrix).
void resolve_ldmatrix(Worker& w, unsigned base) {
  const unsigned char* rows[32];
  for (unsigned p = 0; p < 32; ++p) {
    std::memcpy(&rows[p], w.fibers[base + p].value, sizeof(rows[p]));
    if (reinterpret_cast<uintptr_t>(rows[p]) % 16 != 0) {
      fail(where(w.fibers[base + p]) + ": ldmatrix row address is not 16-byte aligned");
    }
  }
  for (unsigned l = 0; l < 32; ++l) {
    uint32_t r[4];
    for (unsigned i = 0; i < 4; ++i) std::memcpy(&r[i], rows[8 * i + l / 4] + 4 * (l % 4), 4);
    std::memcpy(w.fibers[base + l].value, r, sizeof(r));
  }
}

float mma_element(int kind, uint32_t reg, int half) {
  if (kind == 2) {  // tf32: the hardware ignores the low 13 bits
    const uint32_t bits = reg & 0xffffe000u;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  const uint16_t h = static_cast<uint16_t>(half == 0 ? reg & 0xffffu : reg >> 16);  // lower index: low half
  return kind == 0 ? static_cast<float>(c10::BFloat16(h, c10::BFloat16::from_bits()))
                   : static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}

// mma.sync of the warp at `base`: gathers A, B, C from the lanes' fragments (layouts as documented in
// csrc/cuda/tensor_core.cuh, from the PTX ISA), computes D = A*B + C in float32 (products of 16-bit or
// TF32 values are exact in float32; the sum runs in k order), and scatters D back.
void resolve_mma(Worker& w, unsigned base, int kind) {
  const int K = kind == 2 ? 8 : 16;
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    uint32_t a[4], b[2];
    float c[4];
    const unsigned char* v = w.fibers[base + l].value;
    std::memcpy(a, v, 16);
    std::memcpy(b, v + 16, 8);
    std::memcpy(c, v + 24, 16);
    const int group = l >> 2, quad = l & 3;
    for (int i = 0; i < 4; ++i) {
      const int row = group + 8 * (i & 1);
      if (kind == 2) {
        A[row][quad + 4 * (i >> 1)] = mma_element(kind, a[i], 0);
      } else {
        for (int h = 0; h < 2; ++h) A[row][2 * quad + h + 8 * (i >> 1)] = mma_element(kind, a[i], h);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (kind == 2) {
        B[quad + 4 * i][group] = mma_element(kind, b[i], 0);
      } else {
        for (int h = 0; h < 2; ++h) B[2 * quad + h + 8 * i][group] = mma_element(kind, b[i], h);
      }
    }
    for (int r = 0; r < 4; ++r) C[group + 8 * (r >> 1)][2 * quad + (r & 1)] = c[r];
  }
  for (int l = 0; l < 32; ++l) {
    const int group = l >> 2, quad = l & 3;
    float d[4];
    for (int r = 0; r < 4; ++r) {
      const int row = group + 8 * (r >> 1), col = 2 * quad + (r & 1);
      float acc = C[row][col];
      for (int k = 0; k < K; ++k) acc += A[row][k] * B[k][col];
      d[r] = acc;
    }
    std::memcpy(w.fibers[base + l].value, d, sizeof(d));
  }
}

// Completes every warp intrinsic of the warp starting at thread `base` whose named lanes have all
// arrived; reports misuse.
bool resolve_warp(Worker& w, unsigned base, unsigned nthreads) {
  bool progressed = false;
  {
    const unsigned lanes = std::min(32u, nthreads - base);
    const unsigned existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
    for (unsigned lane = 0; lane < lanes; ++lane) {
      Fiber& f = w.fibers[base + lane];
      if (f.state != State::AtWarp) continue;
      if (((f.mask >> lane) & 1u) == 0) {
        fail(where(f) + ", but its own lane " + std::to_string(lane) + " is not in the mask");
      }
      const bool shuffle = f.op == WarpOp::Shfl || f.op == WarpOp::ShflUp || f.op == WarpOp::ShflDown ||
                           f.op == WarpOp::ShflXor;
      if (shuffle && (f.width < 1 || f.width > 32 || (f.width & (f.width - 1)) != 0)) {
        fail(where(f) + " with width " + std::to_string(f.width) + " (must be a power of 2 <= 32)");
      }
      const unsigned group = f.mask & existing;
      bool ready = true;
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        const Fiber& g = w.fibers[base + p];
        if (g.state == State::Done) {
          fail(where(f) + ", but lane " + std::to_string(p) + " named in the mask " + where(g));
        }
        if (g.state == State::AtWarp) {
          if (g.op != f.op || g.mask != f.mask || g.width != f.width || g.size != f.size) {
            fail("divergent warp intrinsics: " + where(f) + " (width " + std::to_string(f.width) + "), " +
                 where(g) + " (width " + std::to_string(g.width) + ")");
          }
        } else {
          ready = false;  // still at a barrier: may be a deadlock, decided by the caller
        }
      }
      if (!ready) continue;
      if (f.op == WarpOp::Ldmatrix || f.op == WarpOp::Mma) {
        if (group != 0xffffffffu) fail(where(f) + ": tensor-core instructions need all 32 lanes of a warp");
        if (f.op == WarpOp::Ldmatrix) {
          resolve_ldmatrix(w, base);
        } else {
          resolve_mma(w, base, f.param);
        }
        for (unsigned p = 0; p < 32; ++p) w.fibers[base + p].state = State::Runnable;
        progressed = true;
        continue;
      }

      unsigned char results[32][16];
      unsigned votes = 0;
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        unsigned v;
        std::memcpy(&v, w.fibers[base + p].value, sizeof(v));
        if (f.op == WarpOp::Ballot || f.op == WarpOp::Any || f.op == WarpOp::All) votes |= (v != 0u) << p;
      }
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        const Fiber& g = w.fibers[base + p];
        const unsigned width = static_cast<unsigned>(g.width);
        const unsigned segment = p & ~(width - 1u);
        const unsigned in_seg = p & (width - 1u);
        unsigned src = p;
        switch (g.op) {
          case WarpOp::Shfl:
            src = segment + (static_cast<unsigned>(g.param) & (width - 1u));
            break;
          case WarpOp::ShflUp:
            src = static_cast<unsigned>(g.param) <= in_seg ? p - static_cast<unsigned>(g.param) : p;
            break;
          case WarpOp::ShflDown:
            src = in_seg + static_cast<unsigned>(g.param) < width ? p + static_cast<unsigned>(g.param) : p;
            break;
          case WarpOp::ShflXor:
            src = (p ^ static_cast<unsigned>(g.param)) & 31u;
            if (src >= segment + width) src = p;  // later segments are out of reach: own value
            break;
          default:
            break;
        }
        unsigned r = 0;
        switch (g.op) {
          case WarpOp::Shfl:
          case WarpOp::ShflUp:
          case WarpOp::ShflDown:
          case WarpOp::ShflXor:
            if ((group >> src) & 1u) {
              std::memcpy(results[p], w.fibers[base + src].value, 16);
            } else {
              std::memset(results[p], 0xff, 16);  // an inactive lane's value is undefined: poison
            }
            break;
          case WarpOp::Ballot:
            r = votes;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::Any:
            r = votes != 0u;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::All:
            r = votes == group;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::Sync:
            break;
        }
      }
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        Fiber& g = w.fibers[base + p];
        std::memcpy(g.value, results[p], 16);
        g.state = State::Runnable;
      }
      progressed = true;
    }
  }
  return progressed;
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
  Fiber* f = w.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: __syncthreads outside a kernel");
  f->state = State::AtBarrier;
  f->sync_kind = kind;
  f->predicate = predicate;
  f->file = file;
  f->line = line;
  switch_to_scheduler(w, *f);
  return f->sync_result;
}

void warp_exchange(WarpOp op, unsigned mask, int width, int param, void* value, size_t size, const char* file,
                   int line) {
  Worker& w = tls_worker;
  Fiber* f = w.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: warp intrinsic outside a kernel");
  f->state = State::AtWarp;
  f->op = op;
  f->mask = mask;
  f->width = width;
  f->param = param;
  f->size = size;
  f->file = file;
  f->line = line;
  std::memset(f->value, 0, sizeof(f->value));
  std::memcpy(f->value, value, size);
  switch_to_scheduler(w, *f);
  std::memcpy(value, f->value, size);
}

void ldmatrix_x4(uint32_t (&r)[4], const void* row, const char* file, int line) {
  unsigned char buf[16] = {};
  std::memcpy(buf, &row, sizeof(row));
  warp_exchange(WarpOp::Ldmatrix, 0xffffffffu, 32, 0, buf, sizeof(buf), file, line);
  std::memcpy(r, buf, sizeof(r));
}

void mma(int kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const char* file,
         int line) {
  unsigned char buf[40];
  std::memcpy(buf, a, 16);
  std::memcpy(buf + 16, b, 8);
  std::memcpy(buf + 24, d, 16);
  warp_exchange(WarpOp::Mma, 0xffffffffu, 32, kind, buf, sizeof(buf), file, line);
  std::memcpy(d, buf, sizeof(d));
}

uint32_t tf32_round(uint32_t bits) {
  if ((bits & 0x7f800000u) == 0x7f800000u) return bits;  // Inf, NaN
  return (bits + 0x1000u) & 0xffffe000u;                 // ties: the magnitude rounds up, i.e. away from zero
}

void cp_async(void* dst, const void* src, size_t bytes, size_t src_bytes) {
  Worker& w = tls_worker;
  Fiber* f = w.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: cp.async outside a kernel");
  TORCH_CHECK(bytes <= 16 && src_bytes <= bytes, "cuda_emu: cp.async of ", bytes, " bytes");
  if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 ||
      (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % bytes != 0)) {
    fail(where(*f) + ": cp.async of " + std::to_string(bytes) + " bytes on a misaligned address");
  }
  PendingCopy c{dst, bytes, -1, {}};
  if (src_bytes > 0) std::memcpy(c.data, src, src_bytes);
  std::memset(dst, 0xff, bytes);  // in flight: a read before the wait sees poison
  f->copies.push_back(c);
}

void cp_async_commit() {
  Fiber* f = tls_worker.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: cp.async.commit_group outside a kernel");
  for (PendingCopy& c : f->copies)
    if (c.group < 0) c.group = f->groups_committed;
  ++f->groups_committed;
}

void cp_async_wait(int pending_groups) {
  Fiber* f = tls_worker.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: cp.async.wait_group outside a kernel");
  const int64_t complete_below = f->groups_committed - pending_groups;
  size_t kept = 0;
  for (PendingCopy& c : f->copies) {
    if (c.group >= 0 && c.group < complete_below) {
      std::memcpy(c.dst, c.data, c.bytes);
    } else {
      f->copies[kept++] = c;
    }
  }
  f->copies.resize(kept);
}

unsigned active_mask() {
  Worker& w = tls_worker;
  Fiber* f = w.current;
  TORCH_CHECK(f != nullptr, "cuda_emu: __activemask outside a kernel");
  const unsigned linear = static_cast<unsigned>(f - w.fibers.data());
  const unsigned base = linear / 32 * 32;
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  unsigned m = 0;
  for (unsigned p = 0; p < 32 && base + p < n; ++p)
    if (w.fibers[base + p].state != State::Done) m |= 1u << p;
  return m;
}

void trap(const char* file, int line) { TORCH_CHECK(false, "cuda_emu: __trap() at ", file, ":", line); }

}  // namespace cuda_emu
