// The three GEMMs of the dense/grouped convolution as Problems of implicit_gemm.cuh: how GEMM coordinates
// map onto the convolution's tensors, and the host functions that set them up. The FMA family (dense.cu)
// runs all three on implicit_gemm_kernel; the tensor-core family (tensor_core.cu) runs the backward two on
// tc_implicit_gemm_kernel and has a forward kernel of its own.
#pragma once

#include "families.h"
#include "implicit_gemm.cuh"
#include "reductions.cuh"

namespace conv1d_ext {
namespace C1D_KERNEL_NS {

// ---------------------------------------------------------------------------------------------------------
// Forward, one GEMM per group (z = group):
//   M = batch * out_len   (m = (b, t)),   N = out_per_group   (n = output channel in the group),
//   K = in_per_group * kernel_size        (k = (ic, tap), the weight's own memory order).
// A[m, k] = input[b, g*in_per_group + ic, t*stride - pad_left + tap*dilation] (0 in the padding),
// B[k, n] = weight[g*out_per_group + n, ic, tap],  C[m, n] -> output[b, g*out_per_group + n, t] (+ bias).
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

template <typename T>
ForwardProblem<T> forward_problem(const Conv1dParams& p, const T* input, const T* weight, const T* bias,
                                  T* output) {
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
  return prob;
}

// ---------------------------------------------------------------------------------------------------------
// Backward-input over the stride's phases (see BackwardPhase in kernel_utils.cuh): z = (group, rho),
// rho < min(stride, in_len). In phase rho, grad_input position i = rho + stride*u and
//   M = batch * phase.len   (m = (b, u)),   N = in_per_group   (n = input channel in the group),
//   K = out_per_group * phase.num_taps      (k = (oc, tap index j); tap = first_tap + j*tap_step).
// A[m, k] = grad_output[b, g*out_per_group + oc, u + out_offset - j*out_step]  (0 outside [0, out_len)),
// B[k, n] = weight[g*out_per_group + oc, n, first_tap + j*tap_step],
// C[m, n] -> grad_input[b, g*in_per_group + n, rho + stride*u]. Every grad_input element belongs to
// exactly one phase and is written once (0 where no tap reaches it), so no zero fill is needed.
template <typename Scalar>
struct BackwardInputProblem {
  using T = Scalar;
  using A = acc_t<T>;
  static constexpr bool kAMFast = true;   // consecutive m = consecutive grad_output positions
  static constexpr bool kBNFast = false;  // weight reads are few and cached; one K cursor saves registers
  // Its phase bookkeeping needs more than 128 registers: capping there spills (ptxas -v).
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

template <typename T>
BackwardInputProblem<T> backward_input_problem(const Conv1dParams& p, const T* grad_output, const T* weight,
                                               T* grad_input) {
  BackwardInputProblem<T> prob;
  prob.p = p;
  prob.grad_output = grad_output;
  prob.weight = weight;
  prob.grad_input = grad_input;
  prob.m_size = p.batch * ceil_div(p.in_len, p.stride);  // phase 0 is the longest
  prob.n_size = p.in_per_group;
  prob.phases = num_backward_phases(p);
  prob.num_z = p.groups * prob.phases;
  return prob;
}

// ---------------------------------------------------------------------------------------------------------
// Backward-weight as split-K GEMM, z = (group, split):
//   M = out_per_group (m = oc),   N = in_per_group * kernel_size (n = (ic, tap), the weight's order),
//   K = batch * out_len (k = (b, t)), cut into `splits` contiguous ranges (dense_backward_weight_splits).
// A[m, k] = grad_output[b, g*out_per_group + m, t],
// B[k, n] = input[b, g*in_per_group + ic, t*stride - pad_left + tap*dilation]   (0 in the padding).
// With one split the GEMM writes grad_weight; otherwise each split writes its partial C into the
// workspace and a second pass adds the partials in split order (reductions.cuh).
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

// Both passes of the backward-weight, the GEMM on `core` (implicit_gemm_kernel or tc_implicit_gemm_kernel).
template <typename T>
void backward_weight_gemm(void (*core)(BackwardWeightProblem<T>), const Conv1dParams& p, const T* grad_output,
                          const T* input, T* grad_weight, void* workspace, Stream stream) {
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
  launch_gemm_core(core, prob, stream);
  if (prob.splits > 1) {
    const int64_t count = p.out_channels * prob.n_size;
    launch_sum_partials(static_cast<const acc_t<T>*>(prob.partials), prob.splits, count,
                        PartialsLayout{count, 1}, StoreSum<T>{grad_weight}, stream);
  }
}

}  // namespace C1D_KERNEL_NS
}  // namespace conv1d_ext
