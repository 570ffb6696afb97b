// Dense/grouped forward as implicit GEMM, one GEMM per group (z = group):
//   M = batch * out_len   (m = (b, t)),   N = out_per_group   (n = output channel in the group),
//   K = in_per_group * kernel_size        (k = (ic, tap), the weight's own memory order).
// A[m, k] = input[b, g*in_per_group + ic, t*stride - pad_left + tap*dilation] (0 in the padding),
// B[k, n] = weight[g*out_per_group + n, ic, tap],  C[m, n] -> output[b, g*out_per_group + n, t] (+ bias).
#include "families.h"
#include "implicit_gemm.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

template <typename Scalar>
struct ForwardProblem {
  using T = Scalar;
  using A = acc_t<T>;
  static constexpr bool kAMFast = true;   // consecutive m = consecutive t: contiguous input for stride 1
  static constexpr bool kBNFast = false;  // consecutive k: contiguous weight row
  // 2 blocks of 256 threads per SM fit in 128 registers without spills (ptxas -v); double needs more.
  static constexpr int kMinBlocksPerSM = sizeof(acc_t<Scalar>) == 4 ? 2 : 1;

  Conv1dParams p;
  const T* input;
  const T* weight;
  const T* bias;
  T* output;
  int64_t m_size, n_size, num_z;
  MixedStep k_step;  // k = ic * kernel_size + tap

  struct Z {
    int64_t m_size, k_begin, k_end;
    int64_t group;
  };
  struct ARow {
    int64_t base;  // offset of input[b, g*in_per_group, 0]
    int64_t pos0;  // input position of tap 0
  };
  using ACur = MixedCursor;  // (ic, tap)
  struct BCol {
    int64_t base;  // offset of weight[g*out_per_group + n, 0, 0]
  };
  struct BCur {
    int64_t k;
  };
  struct CRow {
    int64_t base;  // offset of output[b, g*out_per_group, t]
  };

  __device__ Z z_info(int64_t z) const { return Z{m_size, 0, p.in_per_group * p.kernel_size, z}; }

  __device__ ARow a_row(const Z& z, int64_t m) const {
    const int64_t b = m / p.out_len, t = m % p.out_len;
    return ARow{(b * p.in_channels + z.group * p.in_per_group) * p.in_len, t * p.stride - p.pad_left};
  }
  __device__ ACur a_cursor(const Z&, int64_t k) const { return make_mixed_cursor(k_step, k); }
  __device__ void a_advance(const Z&, ACur& c) const { advance_mixed(k_step, c); }
  __device__ A a_load(const Z&, const ARow& r, const ACur& c) const {
    const int64_t pos = r.pos0 + c.lo * p.dilation;
    return (pos >= 0 && pos < p.in_len) ? to_acc(input[r.base + c.hi * p.in_len + pos]) : A(0);
  }

  __device__ BCol b_col(const Z& z, int64_t n) const {
    return BCol{(z.group * p.out_per_group + n) * p.in_per_group * p.kernel_size};
  }
  __device__ BCur b_cursor(const Z&, int64_t k) const { return BCur{k}; }
  __device__ void b_advance(const Z&, BCur& c) const { c.k += kGemmBK; }
  __device__ A b_load(const Z&, const BCol& col, const BCur& c) const {
    return to_acc(weight[col.base + c.k]);
  }

  __device__ CRow c_row(const Z& z, int64_t m) const {
    const int64_t b = m / p.out_len, t = m % p.out_len;
    return CRow{(b * p.out_channels + z.group * p.out_per_group) * p.out_len + t};
  }
  __device__ void store(const Z& z, const CRow& r, int64_t n, A v) const {
    if (bias != nullptr) v += to_acc(bias[z.group * p.out_per_group + n]);
    output[r.base + n * p.out_len] = from_acc<T>(v);
  }
};

}  // namespace

template <typename T>
void dense_forward(const Conv1dParams& p, const T* input, const T* weight, const T* bias, T* output,
                   Stream stream) {
  ForwardProblem<T> prob;
  prob.p = p;
  prob.input = input;
  prob.weight = weight;
  prob.bias = bias;
  prob.output = output;
  prob.m_size = p.batch * p.out_len;
  prob.n_size = p.out_per_group;
  prob.num_z = p.groups;
  prob.k_step = make_mixed_step(p.kernel_size, kGemmBK);
  launch_implicit_gemm(prob, stream);
}

#define C1D_INSTANTIATE(T) \
  template void dense_forward<T>(const Conv1dParams&, const T*, const T*, const T*, T*, Stream);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
