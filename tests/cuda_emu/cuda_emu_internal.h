// Internals of the CUDA emulator's runtime, shared by its three files: cuda_emu.cpp (launches, the block
// scheduler, barriers, error reports), cuda_emu_fibers.cpp (fiber stacks and context switches) and
// cuda_emu_warp.cpp (warp rendezvous: shuffles, votes, tensor-core instructions; cp.async). Not seen by
// device code (that is cuda_emu.h).
#pragma once

#include "cuda_emu.h"

#include <exception>
#include <string>
#include <vector>

#if !defined(__x86_64__) || defined(CUDA_EMU_USE_UCONTEXT)
#define CUDA_EMU_UCONTEXT 1
#include <ucontext.h>
#endif

namespace cuda_emu {
namespace detail {

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

  ~Worker();
  // Fibers, stacks and shared memory for a block of nthreads threads with smem_bytes of dynamic shared
  // memory.
  void reserve(unsigned nthreads, size_t smem_bytes);
};

// The Worker of the calling OS thread (cuda_emu.cpp).
extern thread_local Worker tls_worker;

// cuda_emu_fibers.cpp: the scheduler resumes fiber f until it reaches a synchronisation point or exits;
// a fiber returns to the scheduler; start_fiber prepares f to run the launch's kernel from its start.
void switch_to_fiber(Worker& w, Fiber& f);
void switch_to_scheduler(Worker& w, Fiber& f);
void start_fiber(Fiber& f);

// cuda_emu.cpp: the fiber running on the calling OS thread; raises "cuda_emu: <what> outside a kernel"
// when there is none.
Fiber& current_fiber(const char* what);

// cuda_emu.cpp: error reports. where(f): what thread f is doing; fail: raises naming the current block.
std::string fmt3(uint3 v);
std::string where(const Fiber& f);
[[noreturn]] void fail(const std::string& what);

// cuda_emu_warp.cpp: completes every warp intrinsic of the warp starting at thread `base` whose named lanes
// have all arrived (false: none could); reports misuse.
bool resolve_warp(Worker& w, unsigned base, unsigned nthreads);

}  // namespace detail
}  // namespace cuda_emu
