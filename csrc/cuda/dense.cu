// The "dense" family: forward, backward-input and backward-weight of any dense or grouped convolution as
// implicit GEMMs (gemm_problems.cuh) on the FMA core (implicit_gemm_kernel, implicit_gemm.cuh), for the four
// dtypes. Also the backward-weight split policy, which the tensor-core family shares.
#include "families.h"
#include "gemm_problems.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

constexpr int64_t kTargetBlocks = 1024;        // enough tiles to fill a large GPU a few times over
constexpr int64_t kMinSplitLen = 4 * kGemmBK;  // below this a split's tile loads dominate its math
constexpr int64_t kMaxWorkspaceBytes = int64_t(256) << 20;

}  // namespace

int64_t dense_backward_weight_splits(const Conv1dParams& p) {
  const int64_t k_total = p.batch * p.out_len;
  const int64_t n_size = p.in_per_group * p.kernel_size;
  const int64_t tiles = GemmTileGrid(p.out_per_group, n_size, p.groups).num_tiles;
  int64_t splits = imax<int64_t>(1, kTargetBlocks / imax<int64_t>(tiles, 1));
  splits = imin(splits, imax<int64_t>(1, k_total / kMinSplitLen));
  const int64_t bytes_per_split = p.out_channels * n_size * 8;
  splits = imin(splits, imax<int64_t>(1, kMaxWorkspaceBytes / imax<int64_t>(bytes_per_split, 1)));
  return splits;
}

size_t dense_backward_weight_workspace_bytes(const Conv1dParams& p, size_t acc_size) {
  const int64_t splits = dense_backward_weight_splits(p);
  if (splits <= 1) return 0;
  return static_cast<size_t>(splits * p.out_channels * p.in_per_group * p.kernel_size) * acc_size;
}

template <typename T>
void dense_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                   Stream stream) {
  launch_gemm_core(implicit_gemm_kernel<ForwardProblem<T>>, forward_problem(p, input, weight, bias, output),
                   stream);
}

template <typename T>
void dense_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                          Stream stream) {
  launch_gemm_core(implicit_gemm_kernel<BackwardInputProblem<T>>,
                   backward_input_problem(p, grad_output, weight, grad_input), stream);
}

template <typename T>
void dense_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                           void* workspace, Stream stream) {
  backward_weight_gemm(implicit_gemm_kernel<BackwardWeightProblem<T>>, p, grad_output, input, grad_weight,
                       workspace, stream);
}

#define C1D_INSTANTIATE(T)                                                                       \
  template void dense_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream); \
  template void dense_backward_input<T>(const Conv1dParams&, const T*, const T*, T*, Stream);    \
  template void dense_backward_weight<T>(const Conv1dParams&, const T*, const T*, T*, void*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
