// Last object of every emulated build: marks the end of the static shared memory section (see
// cuda_emu.cpp, static_shared_region).
__attribute__((section("cuda_emu_shared"))) thread_local unsigned char cuda_emu_shared_end[1];
