// Register-blocked (tiled) convolution for dense and grouped problems, and for the forward of depthwise
// problems with a large channel multiplier (CPU; the dispatch is in kernels_impl.h). The family's entry
// points; the design, the expected effect of each piece and its measurements: docs/cpu-kernels.md.
//
// * Forward and backward-input share one engine (dense/conv_engine.h: a convolution over packed source
//   blocks, micro-tiles of output channels × vectors of positions held in registers) with two schedules:
//   the block schedule (dense/block_schedule.h) for most problems, the wide schedule
//   (dense/wide_schedule.h) for few positions per row and large weights. run_tiled picks one.
// * Backward-input at stride 1 is that forward with transposed, flipped weights. At stride s > 1 the
//   grad_input positions are split by phase (i + pad_left) mod s; each phase is a stride-1 convolution
//   of grad_output with the taps that hit it, so there are no divisibility tests, no zero insertion
//   and no atomics. Phases are interleaved back in a per-thread stage.
// * Backward-weight is a GEMM with a long reduction over batch × out_len (dense/wgrad.h: the slice
//   schedule and the wide one). Its reduction is split into slices fixed by the problem alone, so
//   grad_weight is bit-identical whatever the thread count.
// * The float micro-kernels are in dense/microkernels.h, their bfloat16-pair twins for the AVX512-BF16
//   build in dense/paired_bf16.h, the source packing every schedule shares in dense/packing.h.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/dense/block_schedule.h"
#include "cpu/dense/conv_engine.h"
#include "cpu/dense/wgrad.h"
#include "cpu/dense/wide_schedule.h"
#include "cpu/kernel_common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {
namespace dense_detail {

// The forward / backward-input engine: packs the plan's weights once, then runs the wide schedule
// (which packs blocks of whole rows of several batches) or the block schedule.
// weight_at(group, destination channel in group, source channel in group, weight tap) -> acc.
template <typename scalar_t, typename WeightAt>
void run_tiled(const TiledPlan& plan, const scalar_t* src, const scalar_t* bias, scalar_t* dst,
               WeightAt weight_at) {
  using acc = acc_t<scalar_t>;
  const bool wide = use_wide_schedule<acc>(plan);
  const int64_t rows = plan.src_ch_per_group * plan.src_phases;
  const int64_t block_len =
      wide ? wide_blocks<scalar_t>(plan).block_len
           : choose_block_len<packed_source_t<scalar_t>>(rows, plan.max_shift, plan.m_end - plan.m_begin,
                                                         plan.batch * plan.groups, kRunTileWidth<scalar_t>);
  const int64_t row_len = padded_row_len<acc>(block_len + plan.max_shift);
  const PackedConv<scalar_t> conv = pack_conv<scalar_t>(plan, row_len, weight_at);
  if (wide) {
    run_tiled_wide(plan, src, bias, dst, conv, row_len);
  } else {
    run_tiled_block(plan, src, bias, dst, conv, block_len, row_len);
  }
}

}  // namespace dense_detail

// Every problem with at least one input channel per group: dense and grouped ones, and the forward of
// depthwise ones with a large channel multiplier (kernels_impl.h), where reusing each packed input row
// across a tile of output channels beats the depthwise kernels.
inline bool dense_tiled_supports(const Conv1dParams& p) { return p.in_per_group >= 1; }

template <typename scalar_t>
void dense_tiled_forward(const Conv1dParams& p, const scalar_t* input, const scalar_t* weight,
                         const scalar_t* bias, scalar_t* output) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  TiledPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.src_ch_per_group = p.in_per_group;
  plan.dst_ch_per_group = p.out_per_group;
  plan.src_len = p.in_len;
  plan.dst_len = p.out_len;
  plan.src_phases = p.stride;
  plan.src_base = -p.pad_left;
  plan.dst_phases = 1;
  plan.dst_base = 0;
  plan.m_begin = 0;
  plan.m_end = p.out_len;
  plan.taps.resize(1);
  for (int64_t t = 0; t < p.kernel_size; ++t)
    plan.taps[0].push_back({(t * p.dilation) % p.stride, (t * p.dilation) / p.stride, t});
  plan.max_shift = ((p.kernel_size - 1) * p.dilation) / p.stride;
  const int64_t K = p.kernel_size, in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  run_tiled<scalar_t>(plan, input, bias, output, [&](int64_t g, int64_t oc, int64_t ic, int64_t t) {
    return static_cast<acc>(weight[((g * out_ch_per_group + oc) * in_ch_per_group + ic) * K + t]);
  });
}

template <typename scalar_t>
void dense_tiled_backward_input(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* weight,
                                scalar_t* grad_input) {
  using namespace dense_detail;
  using acc = acc_t<scalar_t>;
  const int64_t stride = p.stride, dilation = p.dilation, K = p.kernel_size;
  // grad_input[i] with i + pad_left = m*stride + f collects taps t with (t*dilation) % stride == f from
  // grad_output[m - (t*dilation - f)/stride]; the source block is packed from m0 - max_shift so shifts
  // are >= 0.
  const int64_t max_shift = ((K - 1) * dilation) / stride;
  TiledPlan plan;
  plan.batch = p.batch;
  plan.groups = p.groups;
  plan.src_ch_per_group = p.out_per_group;
  plan.dst_ch_per_group = p.in_per_group;
  plan.src_len = p.out_len;
  plan.dst_len = p.in_len;
  plan.src_phases = 1;
  plan.src_base = -max_shift;
  plan.dst_phases = stride;
  plan.dst_base = -p.pad_left;
  plan.m_begin = p.pad_left / stride;
  plan.m_end = (p.in_len - 1 + p.pad_left) / stride + 1;
  plan.taps.resize(stride);
  for (int64_t t = 0; t < K; ++t) {
    const int64_t f = (t * dilation) % stride;
    plan.taps[f].push_back({0, max_shift - (t * dilation - f) / stride, t});
  }
  plan.max_shift = max_shift;
  const int64_t in_ch_per_group = p.in_per_group, out_ch_per_group = p.out_per_group;
  run_tiled<scalar_t>(
      plan, grad_output, nullptr, grad_input, [&](int64_t g, int64_t ic, int64_t oc, int64_t t) {
        return static_cast<acc>(weight[((g * out_ch_per_group + oc) * in_ch_per_group + ic) * K + t]);
      });
}

template <typename scalar_t>
void dense_tiled_backward_weight(const Conv1dParams& p, const scalar_t* grad_output, const scalar_t* input,
                                 scalar_t* grad_weight) {
  dense_detail::wgrad_tiled<scalar_t>(p, grad_output, input, grad_weight);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
