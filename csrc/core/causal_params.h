// CausalParams / CausalUpdateParams: the one description of a causal-convolution problem (the
// causal_conv1d_fwd / _bwd / _update ops), built once on the host (causal_checks.h) and passed by value
// to the kernels. Plain data: no ATen, so kernel headers of every backend can include it.
//
// Element strides, not layouts: x (and grad_output, grad_input, the update's conv_state) are read and
// written through their strides, so a "channels-last" x — a (batch, seqlen, dim) contiguous tensor
// transposed to (batch, dim, seqlen) — is used as it is, without a copy. The small operands (weight
// (dim, width), bias (dim), seq_idx (batch, seqlen), initial/final states (batch, dim, state_len)) are
// contiguous.
#pragma once

#include <cstdint>

namespace conv1d_ext {

struct CausalStrides {
  int64_t batch = 0, channel = 0, pos = 0;
};

// out[b, c, t] = act(bias[c] + sum_k weight[c, k] * xx[b, c, t - (width - 1 - k) * dilation]), where
// xx[s] = x[s] for s >= 0 and initial_states[s + state_len] for s < 0; with seq_idx, a term counts only
// when its position has the same id as t, and t with a negative id gives 0.
struct CausalParams {
  int64_t batch = 0, dim = 0, len = 0, width = 0, dilation = 1;
  int64_t state_len = 0;  // (width - 1) * dilation
  bool silu = false;
  CausalStrides x, out;    // forward: input and output; backward: x and grad_input (dx)
  CausalStrides grad_out;  // backward only: grad_output
};

// The decode step: x (batch, dim, len) against conv_state (num_states, dim, state_len).
struct CausalUpdateParams {
  int64_t batch = 0, dim = 0, len = 0, width = 0, state_len = 0, num_states = 0;
  bool silu = false;
  CausalStrides x, state;  // the output is contiguous (batch, dim, len)
};

}  // namespace conv1d_ext
