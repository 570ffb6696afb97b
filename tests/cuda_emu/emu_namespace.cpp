// The op namespace of an emulated build: conv1d_ext_emu, or CONV1D_EXT_EMU_NS (fault-injection builds
// register their faulty kernels under a namespace of their own). Its own tiny translation unit, so a
// build under another namespace recompiles only this file.
#ifndef CONV1D_EXT_EMU_NS
#define CONV1D_EXT_EMU_NS conv1d_ext_emu
#endif
#define CONV1D_EXT_EMU_STR2(x) #x
#define CONV1D_EXT_EMU_STR(x) CONV1D_EXT_EMU_STR2(x)

namespace conv1d_ext {
namespace emulated {
extern const char kOpsNamespace[];
const char kOpsNamespace[] = CONV1D_EXT_EMU_STR(CONV1D_EXT_EMU_NS);
}  // namespace emulated
}  // namespace conv1d_ext
