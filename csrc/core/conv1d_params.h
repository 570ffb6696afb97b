// The one description of a 1D convolution problem, shared by every kernel (CPU, CUDA, emulated CUDA).
// Built once on the host by make_conv1d_params(); kernels read it by value.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(CONV1D_EXT_EMULATE)
#define C1D_HOST_DEVICE __host__ __device__
#else
#define C1D_HOST_DEVICE
#endif

namespace conv1d_ext {

// Layout of every tensor a kernel sees (contiguous):
//   input       (batch, in_channels,  in_len)
//   weight      (out_channels, in_per_group, kernel_size)
//   output      (batch, out_channels, out_len)
// Output position `out_pos` with tap `tap` reads input position
//   out_pos * stride - pad_left + tap * dilation   (outside [0, in_len) means zero padding).
struct Conv1dParams {
  int64_t batch;
  int64_t in_channels;
  int64_t out_channels;
  int64_t in_len;
  int64_t out_len;
  int64_t kernel_size;
  int64_t stride;
  int64_t pad_left;
  int64_t pad_right;
  int64_t dilation;
  int64_t groups;
  int64_t in_per_group;   // in_channels / groups
  int64_t out_per_group;  // out_channels / groups

  C1D_HOST_DEVICE int64_t input_pos(int64_t out_pos, int64_t tap) const {
    return out_pos * stride - pad_left + tap * dilation;
  }
  // One input channel per group: each output channel reads exactly one input channel
  // (out_per_group > 1 is a depthwise conv with a channel multiplier).
  C1D_HOST_DEVICE bool is_depthwise() const { return in_per_group == 1; }
  // Span of input positions one output reads: dilation * (kernel_size - 1) + 1.
  C1D_HOST_DEVICE int64_t receptive_field() const { return dilation * (kernel_size - 1) + 1; }
};

// Channel-multiplier policy: the one rule the CPU and CUDA dispatches (cpu/kernels_impl.h,
// cuda/dispatch.cu) use to pick between the depthwise kernels and the dense ones for a depthwise
// problem whose channel multiplier is out_per_group. The depthwise kernels compute each output channel
// from its own input row (a few channels at a time at most); the dense kernels reuse each packed input
// tile across a whole tile of output channels, which wins once the multiplier is large (the CPU forward
// of the C1->64 k80 s4 waveform front end, multiplier 64, is faster dense: docs/cpu-kernels.md). The
// threshold 8 itself is a choice (small multipliers stay depthwise), not a measured crossover. A dispatch
// that departs from the rule for some op says why there.
constexpr int64_t kMaxDepthwiseMultiplier = 8;

C1D_HOST_DEVICE inline bool depthwise_kernels_preferred(const Conv1dParams& p) {
  return p.is_depthwise() && p.out_per_group <= kMaxDepthwiseMultiplier;
}

// Geometry policy: the specialised kernel families of both backends size scratch rows, stride-phase
// splits and shared-memory tiles by the padded geometry (padding, stride phases, the kernel's span; the
// CPU dense kernels pack about tile width x stride + span values per input channel). F.conv1d accepts
// padding, stride and dilation far beyond the tensors' sizes (padding 2^31 with stride 2^31: three outputs;
// dilation 2^40 with padding='same'), where that geometry, not the tensors, would size the scratch
// (gigabytes, or more than a std::vector holds). Such problems run on each backend's direct kernels, whose
// memory depends only on the tensors' sizes. Compact: the padding on each side, the span and the stride
// are each at most a quarter of the input and output rows together plus a slack that keeps every ordinary
// problem here (kernels, strides and padding up to 4096); then every scratch buffer is within a small
// multiple of the rows plus the slack. (Quarters: no overflow for any lengths.)
constexpr int64_t kCompactSlack = 4096;

C1D_HOST_DEVICE inline bool geometry_is_compact(const Conv1dParams& p) {
  const int64_t bound = p.in_len / 4 + p.out_len / 4 + kCompactSlack;
  return p.pad_left <= bound && p.pad_right <= bound && p.stride <= bound &&
         p.dilation * (p.kernel_size - 1) < bound;
}

// Output length of a convolution; negative "padded input shorter than the kernel span" is reported as -1
// so callers can raise the same error as PyTorch.
inline C1D_HOST_DEVICE int64_t conv1d_out_len(int64_t in_len, int64_t kernel_size, int64_t stride,
                                              int64_t pad_left, int64_t pad_right, int64_t dilation) {
  const int64_t span = dilation * (kernel_size - 1) + 1;
  const int64_t padded = in_len + pad_left + pad_right;
  if (padded < span) return -1;
  return (padded - span) / stride + 1;
}

inline Conv1dParams make_conv1d_params(int64_t batch, int64_t in_channels, int64_t in_len,
                                       int64_t out_channels, int64_t kernel_size, int64_t stride,
                                       int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups,
                                       int64_t out_len) {
  Conv1dParams p;
  p.batch = batch;
  p.in_channels = in_channels;
  p.out_channels = out_channels;
  p.in_len = in_len;
  p.out_len = out_len;
  p.kernel_size = kernel_size;
  p.stride = stride;
  p.pad_left = pad_left;
  p.pad_right = pad_right;
  p.dilation = dilation;
  p.groups = groups;
  p.in_per_group = in_channels / groups;
  p.out_per_group = out_channels / groups;
  return p;
}

}  // namespace conv1d_ext
