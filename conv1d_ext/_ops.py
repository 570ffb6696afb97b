"""Python side of the conv1d_ext custom ops: fake (meta) kernels and autograd.

Importing conv1d_ext._C loads the C++ library, which defines the four op schemas (csrc/ops.cpp) and
registers their CPU (and, when built, CUDA) kernels. This module adds what the dispatcher needs from
Python:

* a fake kernel per op, so torch.compile, FakeTensor and meta tensors know output shapes without running
  a kernel (shapes may be symbolic: the formulas use only +, -, *, // on SymInts);
* autograd for every op, written with the same four ops. Each backward is linear in its inputs and is
  itself made of differentiable ops, so double backward (gradgradcheck, gradient penalties) works:

    conv1d(x, w, b)            -> dx = backward_input(gy, w),  dw = backward_weight(gy, x),  db = backward_bias(gy)
    backward_input(gy, w)      -> dgy = conv1d(G, w),          dw = backward_weight(gy, G)      (G: grad of dx)
    backward_weight(gy, x)     -> dgy = conv1d(x, H),          dx = backward_input(gy, H)       (H: grad of dw)
    backward_bias(gy)          -> dgy = gb broadcast over batch and length

  Only the gradients autograd asks for (ctx.needs_input_grad) are computed.
"""

import torch

from . import _C  # noqa: F401  (loads the op library)

_NS = "conv1d_ext"
ops = torch.ops.conv1d_ext


def conv1d_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation):
    """Output length of a 1D convolution (PyTorch's formula); works on ints and SymInts."""
    return (in_len + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


def _check_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation):
    padded = in_len + pad_left + pad_right
    span = dilation * (kernel_size - 1) + 1
    torch._check(
        padded >= span,
        lambda: f"Calculated padded input size per channel: ({padded}). Kernel size: ({span}). "
        "Kernel size can't be greater than actual input size",
    )
    return conv1d_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation)


def _check_hyperparams(stride, pad_left, pad_right, dilation, groups):
    torch._check(stride > 0, lambda: "non-positive stride is not supported")
    torch._check(dilation > 0, lambda: "non-positive dilation is not supported")
    torch._check(pad_left >= 0 and pad_right >= 0, lambda: "negative padding is not supported")
    torch._check(groups > 0, lambda: "non-positive groups is not supported")


# ---------------------------------------------------------------------------------------------------
# Fake kernels: output shape, dtype and device from the arguments, with the shape checks that decide
# them (the C++ kernels repeat these checks with the same messages; see csrc/op_common.h).
# ---------------------------------------------------------------------------------------------------


@torch.library.register_fake(f"{_NS}::conv1d")
def _conv1d_fake(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    torch._check(input.dim() == 3, lambda: f"conv1d_ext: expected a 3-D input, got {list(input.shape)}")
    torch._check(weight.dim() == 3, lambda: f"conv1d_ext: expected a 3-D weight, got {list(weight.shape)}")
    torch._check(
        weight.shape[1] * groups == input.shape[1],
        lambda: f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
        f"{list(input.shape)} to have {weight.shape[1] * groups} channels, but got {input.shape[1]} "
        "channels instead",
    )
    out_len = _check_out_len(input.shape[2], weight.shape[2], stride, pad_left, pad_right, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], out_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_input")
def _conv1d_backward_input_fake(grad_output, weight, input_len, stride, pad_left, pad_right, dilation,
                                groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    torch._check(grad_output.dim() == 3 and weight.dim() == 3,
                 lambda: "conv1d_ext: expected 3-D grad_output and weight")
    out_len = _check_out_len(input_len, weight.shape[2], stride, pad_left, pad_right, dilation)
    torch._check(grad_output.shape[2] == out_len,
                 lambda: f"conv1d_ext: grad_output length {grad_output.shape[2]} does not match the "
                 f"output length {out_len} of an input of length {input_len}")
    return grad_output.new_empty((grad_output.shape[0], weight.shape[1] * groups, input_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_weight")
def _conv1d_backward_weight_fake(grad_output, input, kernel_size, stride, pad_left, pad_right, dilation,
                                 groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    torch._check(grad_output.dim() == 3 and input.dim() == 3,
                 lambda: "conv1d_ext: expected 3-D grad_output and input")
    out_len = _check_out_len(input.shape[2], kernel_size, stride, pad_left, pad_right, dilation)
    torch._check(grad_output.shape[2] == out_len,
                 lambda: f"conv1d_ext: grad_output length {grad_output.shape[2]} does not match the "
                 f"output length {out_len} of the input")
    return grad_output.new_empty((grad_output.shape[1], input.shape[1] // groups, kernel_size))


@torch.library.register_fake(f"{_NS}::conv1d_backward_bias")
def _conv1d_backward_bias_fake(grad_output):
    torch._check(grad_output.dim() == 3, lambda: "conv1d_ext: expected a 3-D grad_output")
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
