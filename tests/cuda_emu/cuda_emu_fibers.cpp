// Fibers of the CUDA emulator: the threads of a block are fibers on one OS thread, each with its own
// mmap'd stack (a PROT_NONE guard page below catches overflow). They switch with a few lines of assembly on
// x86-64 (no system call, unlike swapcontext) and with ucontext elsewhere.
#include "cuda_emu_internal.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include <c10/util/Exception.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
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

namespace cuda_emu {
namespace detail {

Worker::~Worker() {
  for (char* m : mappings) munmap(m, kStackBytes + kGuardBytes);
  std::free(smem);
}

void Worker::reserve(unsigned nthreads, size_t smem_bytes) {
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

namespace {

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

}  // namespace

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

}  // namespace detail
}  // namespace cuda_emu
