// CPU kernel entry points, one set per instruction set (CPU_CAPABILITY = DEFAULT or AVX2).
// The ISA-specific files (kernels_default.cpp, kernels_avx2.cpp) each compile the same templated
// kernels; conv1d_cpu.cpp picks the set at run time from the CPU's features (see cpu_isa.h).
// PLACEHOLDER: the CPU-kernels work fills this in.
#pragma once
