// Dense/grouped backward-weight as split-K implicit GEMM, z = (group, split):
//   M = out_per_group (m = oc),   N = in_per_group * kernel_size (n = (ic, tap), the weight's order),
//   K = batch * out_len (k = (b, t)), cut into `splits` contiguous ranges.
// A[m, k] = grad_output[b, g*out_per_group + m, t],
// B[k, n] = input[b, g*in_per_group + ic, t*stride - pad_left + tap*dilation]   (0 in the padding).
// Each split writes its partial C into the workspace; a second kernel adds the partials in split order.
// The split count depends only on the shape, so results are bit-identical run to run (no atomics).
#include "families.h"
#include "implicit_gemm.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

template <typename Scalar>
struct BackwardWeightProblem {
  using T = Scalar;
  using A = acc_t<T>;
  static constexpr bool kAMFast = false;  // consecutive k = consecutive t in both operands
  static constexpr bool kBNFast = false;
  // 2 blocks of 256 threads per SM fit in 128 registers without spills (ptxas -v); double needs more.
  static constexpr int kMinBlocksPerSM = sizeof(acc_t<Scalar>) == 4 ? 2 : 1;

  Conv1dParams p;
  const T* grad_output;
  const T* input;
  T* grad_weight;  // written when splits == 1
  A* partials;     // (splits, out_channels, in_per_group * kernel_size) otherwise
  int64_t m_size, n_size, num_z;
  int64_t splits, split_len;
  MixedStep k_step;  // k = b * out_len + t

  struct Z {
    int64_t m_size, k_begin, k_end;
    int64_t group, split;
  };
  struct ARow {
    int64_t base;  // offset of grad_output[0, g*out_per_group + m, 0]
  };
  using ACur = MixedCursor;  // (b, t)
  struct BCol {
    int64_t base;  // offset of input[0, g*in_per_group + ic, 0]
    int64_t off;   // tap*dilation - pad_left
  };
  using BCur = MixedCursor;  // (b, t)
  struct CRow {
    int64_t base;  // offset of row (g*out_per_group + m) of the result
  };

  __device__ Z z_info(int64_t z) const {
    Z zi;
    zi.group = z / splits;
    zi.split = z % splits;
    zi.m_size = m_size;
    const int64_t k_total = p.batch * p.out_len;
    zi.k_begin = imin(zi.split * split_len, k_total);
    zi.k_end = imin(zi.k_begin + split_len, k_total);
    return zi;
  }

  __device__ ARow a_row(const Z& z, int64_t m) const {
    return ARow{(z.group * p.out_per_group + m) * p.out_len};
  }
  __device__ ACur a_cursor(const Z&, int64_t k) const { return make_mixed_cursor(k_step, k); }
  __device__ void a_advance(const Z&, ACur& c) const { advance_mixed(k_step, c); }
  __device__ A a_load(const Z&, const ARow& r, const ACur& c) const {
    return to_acc(grad_output[r.base + c.hi * p.out_channels * p.out_len + c.lo]);
  }

  __device__ BCol b_col(const Z& z, int64_t n) const {
    const int64_t ic = n / p.kernel_size, tap = n % p.kernel_size;
    return BCol{(z.group * p.in_per_group + ic) * p.in_len, tap * p.dilation - p.pad_left};
  }
  __device__ BCur b_cursor(const Z&, int64_t k) const { return make_mixed_cursor(k_step, k); }
  __device__ void b_advance(const Z&, BCur& c) const { advance_mixed(k_step, c); }
  __device__ A b_load(const Z&, const BCol& col, const BCur& c) const {
    const int64_t pos = c.lo * p.stride + col.off;
    return (pos >= 0 && pos < p.in_len) ? to_acc(input[c.hi * p.in_channels * p.in_len + col.base + pos])
                                        : A(0);
  }

  __device__ CRow c_row(const Z& z, int64_t m) const {
    return CRow{(z.group * p.out_per_group + m) * n_size};
  }
  __device__ void store(const Z& z, const CRow& r, int64_t n, A v) const {
    if (splits == 1) {
      grad_weight[r.base + n] = from_acc<T>(v);
    } else {
      partials[z.split * p.out_channels * n_size + r.base + n] = v;
    }
  }
};

// grad_weight[e] = sum over splits s (in order) of partials[s][e].
template <typename T>
__global__ void __launch_bounds__(256)
    reduce_partials_kernel(const acc_t<T>* partials, int64_t splits, int64_t count, T* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += step) {
    acc_t<T> sum = acc_t<T>(0);
    for (int64_t s = 0; s < splits; ++s) sum += partials[s * count + e];
    out[e] = from_acc<T>(sum);
  }
}

constexpr int64_t kTargetBlocks = 1024;        // enough tiles to fill a large GPU a few times over
constexpr int64_t kMinSplitLen = 4 * kGemmBK;  // below this a split's tile loads dominate its math
constexpr int64_t kMaxWorkspaceBytes = int64_t(256) << 20;

}  // namespace

int64_t dense_backward_weight_splits(const Conv1dParams& p) {
  const int64_t k_total = p.batch * p.out_len;
  const int64_t n_size = p.in_per_group * p.kernel_size;
  const int64_t tiles = ceil_div(p.out_per_group, kGemmBM) * ceil_div(n_size, kGemmBN) * p.groups;
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
void dense_backward_weight(const Conv1dParams& p, const T* grad_output, const T* input, T* grad_weight,
                           void* workspace, Stream stream, bool tensor_cores) {
  BackwardWeightProblem<T> prob;
  prob.p = p;
  prob.grad_output = grad_output;
  prob.input = input;
  prob.grad_weight = grad_weight;
  prob.partials = static_cast<acc_t<T>*>(workspace);
  prob.m_size = p.out_per_group;
  prob.n_size = p.in_per_group * p.kernel_size;
  prob.splits = dense_backward_weight_splits(p);
  const int64_t k_total = p.batch * p.out_len;
  // Split boundaries on multiples of BK keep every split's tiles full except the last.
  prob.split_len = ceil_div(ceil_div(k_total, prob.splits), kGemmBK) * kGemmBK;
  if (prob.split_len == 0) prob.split_len = kGemmBK;
  prob.num_z = p.groups * prob.splits;
  prob.k_step = make_mixed_step(p.out_len, kGemmBK);
  launch_implicit_gemm(prob, stream, tensor_cores);
  if (prob.splits > 1) {
    const int64_t count = p.out_channels * prob.n_size;
    launch_kernel(reduce_partials_kernel<T>, dim3(grid_for(ceil_div(count, 256))), dim3(256), 0, stream,
                  static_cast<const acc_t<T>*>(prob.partials), prob.splits, count, grad_weight);
  }
}

#define C1D_INSTANTIATE(T) \
  template void dense_backward_weight<T>(const Conv1dParams&, const T*, const T*, T*, void*, Stream, bool);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
