// Included first by every CPU kernel header (the per-ISA rules of cpu/kernels.h): kernel code may only be
// compiled after cpu/isa_prelude.h and inside the CPU_CAPABILITY namespace of one ISA build.
#pragma once

#if !defined(C1D_ISA_PRELUDE_INCLUDED) || !defined(CPU_CAPABILITY)
#error "CPU kernel header: include cpu/isa_prelude.h, then define CPU_CAPABILITY (see cpu/kernels.h)"
#endif
