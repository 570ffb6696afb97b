"""Python side of the conv1d_ext custom ops: fake (meta) kernels and autograd.

Importing conv1d_ext._C loads the C++ library, which defines the four op schemas (csrc/op_schemas.h) and
registers their CPU (and, when built, CUDA) kernels. This module adds what the dispatcher needs from
Python:

* a fake kernel per op, so torch.compile, FakeTensor and meta tensors know output shapes without running
  a kernel (shapes may be symbolic: the formulas use only +, -, *, // on SymInts);
* autograd for every op, written with the same four ops. Each backward is linear in its inputs and is
  itself made of differentiable ops, so double backward (gradgradcheck, gradient penalties) works:

    conv1d(x, w, b)         -> dx = backward_input(gy, w), dw = backward_weight(gy, x), db = backward_bias(gy)
    backward_input(gy, w)   -> dgy = conv1d(G, w),         dw = backward_weight(gy, G)    (G: grad of dx)
    backward_weight(gy, x)  -> dgy = conv1d(x, H),         dx = backward_input(gy, H)     (H: grad of dw)
    backward_bias(gy)       -> dgy = grad of db broadcast over batch and length

  Only the gradients autograd asks for (ctx.needs_input_grad) are computed.
"""

import torch

from . import _C  # noqa: F401  (loads the op library)

_NS = "conv1d_ext"
ops = torch.ops.conv1d_ext


def conv1d_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation):
    """Output length of a 1D convolution (PyTorch's formula); works on ints and SymInts."""
    return (in_len + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------------------------------
# Fake kernels: output shape, dtype and device from the arguments, so torch.compile, FakeTensor and meta
# tensors work without running a kernel. They check what the shape computation needs, and reject every
# call the real kernels reject with the same exception type (RuntimeError), so a bad call fails while
# tracing; the detailed messages (PyTorch's wording) live once, in the C++ checks (csrc/op_common.h).
# ---------------------------------------------------------------------------------------------------

_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _require(op, condition, what):
    torch._check(condition, lambda: f"conv1d_ext::{op}: {what}")


def _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups):
    _require(op, stride > 0 and dilation > 0 and groups > 0 and pad_left >= 0 and pad_right >= 0,
             "stride, dilation and groups must be positive, padding non-negative")


def _check_dims(op, **tensors):
    for name, (t, dim) in tensors.items():
        _require(op, t.dim() == dim, f"{name} must be {dim}-D")


def _check_dtypes(op, first, *others):
    _require(op, all(t.dtype == first.dtype and t.device == first.device for t in others),
             "tensors must have the same dtype and device")
    # NotImplementedError, like the kernels' refusal of a dtype they have no kernels for
    torch._check_not_implemented(first.dtype in _FLOATING,
                                 lambda: f"conv1d_ext::{op}: tensors must be float32, float64, float16 or bfloat16")


def _check_out_len(op, in_len, kernel_size, stride, pad_left, pad_right, dilation):
    _require(op, in_len + pad_left + pad_right >= dilation * (kernel_size - 1) + 1,
             "the padded input is shorter than the kernel's span")
    return conv1d_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation)


def _check_groups(op, in_channels, out_channels, groups):
    _require(op, in_channels % groups == 0 and out_channels % groups == 0 and out_channels >= groups,
             "channels must be divisible by groups")


@torch.library.register_fake(f"{_NS}::conv1d")
def _conv1d_fake(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    op = "conv1d"
    _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups)
    _check_dims(op, input=(input, 3), weight=(weight, 3), **({"bias": (bias, 1)} if bias is not None else {}))
    _check_dtypes(op, input, weight, *([bias] if bias is not None else []))
    out_channels, in_per_group, kernel_size = weight.shape
    _check_groups(op, in_per_group * groups, out_channels, groups)
    _require(op, input.shape[1] == in_per_group * groups and kernel_size > 0,
             "weight does not fit the input's channels")
    _require(op, bias is None or bias.shape[0] == out_channels, "bias size must be out_channels")
    out_len = _check_out_len(op, input.shape[2], kernel_size, stride, pad_left, pad_right, dilation)
    return input.new_empty((input.shape[0], out_channels, out_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_input")
def _conv1d_backward_input_fake(grad_output, weight, input_len, stride, pad_left, pad_right, dilation,
                                groups):
    op = "conv1d_backward_input"
    _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups)
    _check_dims(op, grad_output=(grad_output, 3), weight=(weight, 3))
    _check_dtypes(op, grad_output, weight)
    out_channels, in_per_group, kernel_size = weight.shape
    _check_groups(op, in_per_group * groups, out_channels, groups)
    _require(op, grad_output.shape[1] == out_channels and kernel_size > 0 and input_len >= 0,
             "grad_output, weight and input_len do not fit")
    out_len = _check_out_len(op, input_len, kernel_size, stride, pad_left, pad_right, dilation)
    _require(op, grad_output.shape[2] == out_len, "grad_output's length does not fit input_len")
    return grad_output.new_empty((grad_output.shape[0], in_per_group * groups, input_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_weight")
def _conv1d_backward_weight_fake(grad_output, input, kernel_size, stride, pad_left, pad_right, dilation,
                                 groups):
    op = "conv1d_backward_weight"
    _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups)
    _check_dims(op, grad_output=(grad_output, 3), input=(input, 3))
    _check_dtypes(op, grad_output, input)
    _check_groups(op, input.shape[1], grad_output.shape[1], groups)
    _require(op, grad_output.shape[0] == input.shape[0] and kernel_size > 0,
             "grad_output and input do not fit")
    out_len = _check_out_len(op, input.shape[2], kernel_size, stride, pad_left, pad_right, dilation)
    _require(op, grad_output.shape[2] == out_len, "grad_output's length does not fit the input")
    return grad_output.new_empty((grad_output.shape[1], input.shape[1] // groups, kernel_size))


@torch.library.register_fake(f"{_NS}::conv1d_backward_bias")
def _conv1d_backward_bias_fake(grad_output):
    op = "conv1d_backward_bias"
    _check_dims(op, grad_output=(grad_output, 3))
    _check_dtypes(op, grad_output)
    return grad_output.new_empty((grad_output.shape[1],))


# ---------------------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------------------


def _save_hyperparams(ctx, stride, pad_left, pad_right, dilation, groups):
    ctx.conv = (stride, pad_left, pad_right, dilation, groups)


# conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups)
def _conv1d_setup_context(ctx, inputs, output):
    input, weight, bias, *conv = inputs
    _save_hyperparams(ctx, *conv)
    ctx.save_for_backward(input, weight)


def _conv1d_backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    grad_input = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_input = ops.conv1d_backward_input(grad_output, weight, input.shape[2], *ctx.conv)
    if ctx.needs_input_grad[1]:
        grad_weight = ops.conv1d_backward_weight(grad_output, input, weight.shape[2], *ctx.conv)
    if ctx.needs_input_grad[2]:
        grad_bias = ops.conv1d_backward_bias(grad_output)
    return grad_input, grad_weight, grad_bias, None, None, None, None, None


# conv1d_backward_input(grad_output, weight, input_len, stride, pad_left, pad_right, dilation, groups)
def _backward_input_setup_context(ctx, inputs, output):
    grad_output, weight, _input_len, *conv = inputs
    _save_hyperparams(ctx, *conv)
    ctx.save_for_backward(grad_output, weight)


def _backward_input_backward(ctx, grad_grad_input):
    grad_output, weight = ctx.saved_tensors
    grad_grad_output = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_grad_output = ops.conv1d(grad_grad_input, weight, None, *ctx.conv)
    if ctx.needs_input_grad[1]:
        grad_weight = ops.conv1d_backward_weight(grad_output, grad_grad_input, weight.shape[2], *ctx.conv)
    return grad_grad_output, grad_weight, None, None, None, None, None, None


# conv1d_backward_weight(grad_output, input, kernel_size, stride, pad_left, pad_right, dilation, groups)
def _backward_weight_setup_context(ctx, inputs, output):
    grad_output, input, _kernel_size, *conv = inputs
    _save_hyperparams(ctx, *conv)
    ctx.save_for_backward(grad_output, input)


def _backward_weight_backward(ctx, grad_grad_weight):
    grad_output, input = ctx.saved_tensors
    grad_grad_output = grad_input = None
    if ctx.needs_input_grad[0]:
        grad_grad_output = ops.conv1d(input, grad_grad_weight, None, *ctx.conv)
    if ctx.needs_input_grad[1]:
        grad_input = ops.conv1d_backward_input(grad_output, grad_grad_weight, input.shape[2], *ctx.conv)
    return grad_grad_output, grad_input, None, None, None, None, None, None


# conv1d_backward_bias(grad_output)
def _backward_bias_setup_context(ctx, inputs, output):
    (grad_output,) = inputs
    ctx.grad_output_shape = grad_output.shape


def _backward_bias_backward(ctx, grad_grad_bias):
    return grad_grad_bias[None, :, None].expand(ctx.grad_output_shape)


torch.library.register_autograd(f"{_NS}::conv1d", _conv1d_backward, setup_context=_conv1d_setup_context)
torch.library.register_autograd(f"{_NS}::conv1d_backward_input", _backward_input_backward,
                                setup_context=_backward_input_setup_context)
torch.library.register_autograd(f"{_NS}::conv1d_backward_weight", _backward_weight_backward,
                                setup_context=_backward_weight_setup_context)
torch.library.register_autograd(f"{_NS}::conv1d_backward_bias", _backward_bias_backward,
                                setup_context=_backward_bias_setup_context)
