// The op namespace of a CPU fault-injection build (CONV1D_EXT_FAULT_NS, set by tests/support/cpu_faults.py):
// its own tiny translation unit, so a build under another namespace recompiles only this file.
#ifndef CONV1D_EXT_FAULT_NS
#error "compile with -DCONV1D_EXT_FAULT_NS=<namespace> (see tests/support/cpu_faults.py)"
#endif
#define CONV1D_EXT_FAULT_STR2(x) #x
#define CONV1D_EXT_FAULT_STR(x) CONV1D_EXT_FAULT_STR2(x)

namespace conv1d_ext {
namespace cpu_faults {
extern const char kOpsNamespace[];
const char kOpsNamespace[] = CONV1D_EXT_FAULT_STR(CONV1D_EXT_FAULT_NS);
}  // namespace cpu_faults
}  // namespace conv1d_ext
