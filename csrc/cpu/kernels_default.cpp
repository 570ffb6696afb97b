// The portable baseline build of the CPU kernels (see kernels.h for the per-ISA mechanism).
#include "cpu/isa_prelude.h"

#define CPU_CAPABILITY DEFAULT
#include "cpu/kernels_impl.h"

C1D_INSTANTIATE_CPU_KERNELS()
