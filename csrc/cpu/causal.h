// Causal convolution (depthwise, left-padded by (width - 1) * dilation from initial_states or zeros,
// optional seq_idx masking and fused SiLU): the family's entry points causal_forward (causal/forward.h),
// causal_backward in one pass (causal/backward.h) and the decode step causal_update (causal/update.h),
// with the helpers they share in causal/common.h. The problem description is causal_params.h.
//
// Two layouts, both read through x's strides without a tensor copy: channels-last (x and the output
// with unit channel stride, e.g. a (batch, seqlen, dim) tensor transposed; every loop runs along the
// contiguous channels) and rows (any other strides, contiguous x: work along seqlen).
//
// Two generations of prefill kernels, chosen by whether seq_idx is given:
// * without seq_idx (the common case), the fast paths: one pass over x, vectorised with the weights in
//   registers, x read in place where its type and strides allow, the common widths as compile-time
//   constants;
// * with seq_idx, the masked paths: every tap is tested against the sequence ids (an input contributes
//   only within its own sequence, a negative id is padding), with simpler loops (a converted scratch row
//   per (batch, channel), or a ring of the last inputs per channels-last block).
// Both remain because the fast paths' speed rests on every tap contributing: per-tap masks in their inner
// loops would slow the common case, while the masked paths are only as fast as varlen batches need.
// Every output of both goes through the shared helper layer's conversions (kernel_common.h: acc_t,
// convert_from_acc's vectorised 16-bit store, c10's scalar rounding), so 16-bit results are rounded,
// NaN included, exactly as the other families round theirs.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/causal/backward.h"
#include "cpu/causal/forward.h"
#include "cpu/causal/update.h"
