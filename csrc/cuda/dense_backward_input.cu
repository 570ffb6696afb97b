// Dense/grouped backward-input as implicit GEMM over the stride's phases (see BackwardPhase in
// kernel_utils.cuh): z = (group, rho), rho < min(stride, in_len). In phase rho, grad_input position i = rho +
// stride*u and
//   M = batch * phase.len   (m = (b, u)),   N = in_per_group   (n = input channel in the group),
//   K = out_per_group * phase.num_taps      (k = (oc, tap index j); tap = first_tap + j*tap_step).
// A[m, k] = grad_output[b, g*out_per_group + oc, u + out_offset - j*out_step]  (0 outside [0, out_len)),
// B[k, n] = weight[g*out_per_group + oc, n, first_tap + j*tap_step],
// C[m, n] -> grad_input[b, g*in_per_group + n, rho + stride*u]. Every grad_input element belongs to
// exactly one phase and is written once (0 where no tap reaches it), so no zero fill is needed.
#include "families.h"
#include "implicit_gemm.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {
namespace {

template <typename Scalar>
struct BackwardInputProblem {
  using T = Scalar;
  using A = acc_t<T>;
  static constexpr bool kAMFast = true;   // consecutive m = consecutive grad_output positions
  static constexpr bool kBNFast = false;  // weight reads are few and cached; one K cursor saves registers
  // Its phase bookkeeping needs ~168 registers; capping at 128 spills (ptxas -v).
  static constexpr int kMinBlocksPerSM = 1;

  Conv1dParams p;
  const T* grad_output;
  const T* weight;
  T* grad_input;
  int64_t m_size, n_size, num_z;
  int64_t phases;  // num_backward_phases(p)

  struct Z {
    int64_t m_size, k_begin, k_end;
    int64_t group, rho;
    BackwardPhase ph;
    MixedStep k_step;  // k = oc * num_taps + j
  };
  struct ARow {
    int64_t base;  // offset of grad_output[b, g*out_per_group, 0]
    int64_t t0;    // grad_output position for j = 0
  };
  using ACur = MixedCursor;  // (oc, j)
  struct BCol {
    int64_t base;  // offset of weight[g*out_per_group, n, first_tap]
  };
  using BCur = MixedCursor;  // (oc, j)
  struct CRow {
    int64_t base;  // offset of grad_input[b, g*in_per_group, rho + stride*u]
  };

  __device__ Z z_info(int64_t z) const {
    Z zi;
    zi.group = z / phases;
    zi.rho = z % phases;
    zi.ph = backward_phase(p, zi.rho);
    zi.m_size = p.batch * zi.ph.len;
    zi.k_begin = 0;
    zi.k_end = p.out_per_group * zi.ph.num_taps;
    zi.k_step = make_mixed_step(zi.ph.num_taps, kGemmBK);
    return zi;
  }

  __device__ ARow a_row(const Z& z, int64_t m) const {
    const int64_t len = z.ph.len > 0 ? z.ph.len : 1;
    const int64_t b = m / len, u = m % len;
    return ARow{(b * p.out_channels + z.group * p.out_per_group) * p.out_len, u + z.ph.out_offset};
  }
  __device__ ACur a_cursor(const Z& z, int64_t k) const { return make_mixed_cursor(z.k_step, k); }
  __device__ void a_advance(const Z& z, ACur& c) const { advance_mixed(z.k_step, c); }
  __device__ A a_load(const Z& z, const ARow& r, const ACur& c) const {
    const int64_t t = r.t0 - c.lo * z.ph.out_step;
    return (t >= 0 && t < p.out_len) ? to_acc(grad_output[r.base + c.hi * p.out_len + t]) : A(0);
  }

  __device__ BCol b_col(const Z& z, int64_t n) const {
    return BCol{(z.group * p.out_per_group * p.in_per_group + n) * p.kernel_size + z.ph.first_tap};
  }
  __device__ BCur b_cursor(const Z& z, int64_t k) const { return make_mixed_cursor(z.k_step, k); }
  __device__ void b_advance(const Z& z, BCur& c) const { advance_mixed(z.k_step, c); }
  __device__ A b_load(const Z& z, const BCol& col, const BCur& c) const {
    return to_acc(weight[col.base + c.hi * p.in_per_group * p.kernel_size + c.lo * z.ph.tap_step]);
  }

  __device__ CRow c_row(const Z& z, int64_t m) const {
    const int64_t b = m / z.ph.len, u = m % z.ph.len;  // m < z.m_size implies len > 0
    return CRow{(b * p.in_channels + z.group * p.in_per_group) * p.in_len + z.rho + p.stride * u};
  }
  __device__ void store(const Z&, const CRow& r, int64_t n, A v) const {
    grad_input[r.base + n * p.in_len] = from_acc<T>(v);
  }
};

}  // namespace

template <typename T>
void dense_backward_input(const Conv1dParams& p, const T* grad_output, const T* weight, T* grad_input,
                          Stream stream, bool tensor_cores) {
  BackwardInputProblem<T> prob;
  prob.p = p;
  prob.grad_output = grad_output;
  prob.weight = weight;
  prob.grad_input = grad_input;
  prob.m_size = p.batch * ceil_div(p.in_len, p.stride);  // phase 0 is the longest
  prob.n_size = p.in_per_group;
  prob.phases = num_backward_phases(p);
  prob.num_z = p.groups * prob.phases;
  launch_implicit_gemm(prob, stream, tensor_cores);
}

#define C1D_INSTANTIATE(T) \
  template void dense_backward_input<T>(const Conv1dParams&, const T*, const T*, T*, Stream, bool);
C1D_FOR_EACH_DTYPE(C1D_INSTANTIATE)
#undef C1D_INSTANTIATE

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
