// CPU implementations of the conv1d_ext ops: argument checks (op_common.h), contiguous operands,
// output allocation, the ONE dtype dispatch, and the choice of instruction set (kernels.h; made once per
// process, when the library loads). The choice of kernel family happens once per op call inside the
// per-ISA entry points (kernels_impl.h).
#include <cctype>
#include <cstdlib>
#include <string>

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/kernels.h"
#include "op_common.h"

namespace conv1d_ext {

namespace {

// The CPU kernel path of this process: chosen once, when the library loads (chosen_at_load below),
// from the CPU's features and the environment, which is read then and never again.
struct CpuPath {
  bool avx2 = false;           // AVX2 kernels, else the portable baseline
  bool force_direct = false;   // CONV1D_EXT_CPU_KERNELS=direct
  std::string error;           // CONV1D_EXT_CPU_ISA asks for what cannot run here; reported by each op
};

// AVX2 kernels when the CPU has AVX2, FMA and F16C; CONV1D_EXT_CPU_ISA=default forces the portable
// baseline (=avx2 insists on AVX2). An invalid setting is stored, not thrown: an exception while the
// library loads would abort the process instead of failing the call.
CpuPath choose_cpu_path() {
  CpuPath path;
  const char* kernels = std::getenv("CONV1D_EXT_CPU_KERNELS");
  path.force_direct = kernels != nullptr && std::string(kernels) == "direct";
#ifdef C1D_HAVE_AVX2_KERNELS
  __builtin_cpu_init();
  const bool cpu_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("f16c");
  constexpr bool built_with_avx2 = true;
#else
  constexpr bool cpu_has_avx2 = false;
  constexpr bool built_with_avx2 = false;
#endif
  const char* env = std::getenv("CONV1D_EXT_CPU_ISA");
  std::string choice = env ? env : "";
  for (char& c : choice) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (choice.empty() || choice == "auto") {
    path.avx2 = cpu_has_avx2;
  } else if (choice == "default") {
    path.avx2 = false;
  } else if (choice != "avx2") {
    path.error = "CONV1D_EXT_CPU_ISA must be 'auto', 'default' or 'avx2', got '" + std::string(env) + "'";
  } else if (!built_with_avx2) {
    path.error = "CONV1D_EXT_CPU_ISA=avx2, but this build has no AVX2 kernels";
  } else if (!cpu_has_avx2) {
    path.error = "CONV1D_EXT_CPU_ISA=avx2, but this CPU lacks AVX2/FMA/F16C";
  } else {
    path.avx2 = true;
  }
  return path;
}

const CpuPath& cpu_path() {
  static const CpuPath path = choose_cpu_path();
  return path;
}
[[maybe_unused]] const CpuPath& chosen_at_load = cpu_path();

bool use_avx2_kernels() {
  TORCH_CHECK(cpu_path().error.empty(), cpu_path().error);
  return cpu_path().avx2;
}

// The instruction set every CPU op call runs: "avx2" or "default".
std::string cpu_isa() { return use_avx2_kernels() ? "avx2" : "default"; }

}  // namespace

bool cpu::force_direct_kernels() { return cpu_path().force_direct; }

namespace {

// The kernel entry points of the chosen instruction set, for one dtype.
template <typename scalar_t>
struct CpuKernels {
  decltype(&cpu::DEFAULT::conv1d_forward<scalar_t>) forward;
  decltype(&cpu::DEFAULT::conv1d_backward_input<scalar_t>) backward_input;
  decltype(&cpu::DEFAULT::conv1d_backward_weight<scalar_t>) backward_weight;
  decltype(&cpu::DEFAULT::conv1d_backward_bias<scalar_t>) backward_bias;
};

template <typename scalar_t>
CpuKernels<scalar_t> kernels_for_this_cpu() {
#ifdef C1D_HAVE_AVX2_KERNELS
  if (use_avx2_kernels()) {
    return {&cpu::AVX2::conv1d_forward<scalar_t>, &cpu::AVX2::conv1d_backward_input<scalar_t>,
            &cpu::AVX2::conv1d_backward_weight<scalar_t>, &cpu::AVX2::conv1d_backward_bias<scalar_t>};
  }
#endif
  return {&cpu::DEFAULT::conv1d_forward<scalar_t>, &cpu::DEFAULT::conv1d_backward_input<scalar_t>,
          &cpu::DEFAULT::conv1d_backward_weight<scalar_t>, &cpu::DEFAULT::conv1d_backward_bias<scalar_t>};
}

// The one dtype dispatch: calls fn(CpuKernels<scalar_t>, scalar_t{}) for float, double, bfloat16, half.
// (The dtype was already checked by op_common.h, so the dispatch's own error message never shows.)
template <typename Fn>
void dispatch_dtype(at::ScalarType dtype, Fn&& fn) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "conv1d_ext",
                                  [&] { fn(kernels_for_this_cpu<scalar_t>(), scalar_t{}); });
}

at::Tensor conv1d_cpu(const at::Tensor& input, const at::Tensor& weight,
                      const c10::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                      int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p =
      check_forward_args(input, weight, bias, stride, pad_left, pad_right, dilation, groups);
  at::Tensor output = new_output({p.batch, p.out_channels, p.out_len}, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor input_c = input.contiguous();
  const at::Tensor weight_c = weight.contiguous();
  const at::Tensor bias_c = (bias.has_value() && bias->defined()) ? bias->contiguous() : at::Tensor();
  dispatch_dtype(input.scalar_type(), [&](auto kernels, auto zero) {
    using scalar_t = decltype(zero);
    kernels.forward(p, input_c.const_data_ptr<scalar_t>(), weight_c.const_data_ptr<scalar_t>(),
                    bias_c.defined() ? bias_c.const_data_ptr<scalar_t>() : nullptr,
                    output.mutable_data_ptr<scalar_t>());
  });
  return output;
}

at::Tensor conv1d_backward_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight,
                                     int64_t input_len, int64_t stride, int64_t pad_left,
                                     int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p = check_backward_input_args(grad_output, weight, input_len, stride, pad_left,
                                                   pad_right, dilation, groups);
  at::Tensor grad_input = new_output({p.batch, p.in_channels, p.in_len}, grad_output.options());
  if (grad_input.numel() == 0) return grad_input;
  const at::Tensor grad_output_c = grad_output.contiguous();
  const at::Tensor weight_c = weight.contiguous();
  dispatch_dtype(grad_output.scalar_type(), [&](auto kernels, auto zero) {
                   using scalar_t = decltype(zero);
                   kernels.backward_input(p, grad_output_c.const_data_ptr<scalar_t>(),
                                          weight_c.const_data_ptr<scalar_t>(),
                                          grad_input.mutable_data_ptr<scalar_t>());
                 });
  return grad_input;
}

at::Tensor conv1d_backward_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                      int64_t kernel_size, int64_t stride, int64_t pad_left,
                                      int64_t pad_right, int64_t dilation, int64_t groups) {
  const Conv1dParams p = check_backward_weight_args(grad_output, input, kernel_size, stride, pad_left,
                                                    pad_right, dilation, groups);
  at::Tensor grad_weight =
      new_output({p.out_channels, p.in_per_group, p.kernel_size}, grad_output.options());
  if (grad_weight.numel() == 0) return grad_weight;
  const at::Tensor grad_output_c = grad_output.contiguous();
  const at::Tensor input_c = input.contiguous();
  dispatch_dtype(grad_output.scalar_type(), [&](auto kernels, auto zero) {
                   using scalar_t = decltype(zero);
                   kernels.backward_weight(p, grad_output_c.const_data_ptr<scalar_t>(),
                                           input_c.const_data_ptr<scalar_t>(),
                                           grad_weight.mutable_data_ptr<scalar_t>());
                 });
  return grad_weight;
}

at::Tensor conv1d_backward_bias_cpu(const at::Tensor& grad_output) {
  check_backward_bias_args(grad_output);
  const int64_t batch = grad_output.size(0), channels = grad_output.size(1), len = grad_output.size(2);
  at::Tensor grad_bias = new_output({channels}, grad_output.options());
  if (grad_bias.numel() == 0) return grad_bias;
  const at::Tensor grad_output_c = grad_output.contiguous();
  dispatch_dtype(grad_output.scalar_type(), [&](auto kernels, auto zero) {
                   using scalar_t = decltype(zero);
                   kernels.backward_bias(batch, channels, len, grad_output_c.const_data_ptr<scalar_t>(),
                                         grad_bias.mutable_data_ptr<scalar_t>());
                 });
  return grad_bias;
}

}  // namespace
}  // namespace conv1d_ext

TORCH_LIBRARY_FRAGMENT(conv1d_ext, m) {
  // Which CPU kernel build this process runs ("avx2" or "default"), for tests, benchmarks and the README.
  m.def("cpu_isa() -> str", &conv1d_ext::cpu_isa);
}

TORCH_LIBRARY_IMPL(conv1d_ext, CPU, m) {
  m.impl("conv1d", &conv1d_ext::conv1d_cpu);
  m.impl("conv1d_backward_input", &conv1d_ext::conv1d_backward_input_cpu);
  m.impl("conv1d_backward_weight", &conv1d_ext::conv1d_backward_weight_cpu);
  m.impl("conv1d_backward_bias", &conv1d_ext::conv1d_backward_bias_cpu);
}
