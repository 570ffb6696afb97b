"""Python side of the conv1d_ext custom ops: fake (meta) kernels and autograd.

Importing conv1d_ext._C loads the C++ library, which defines the four op schemas (csrc/ops.cpp) and
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


_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _check_floating(t, name):
    torch._check(t.dtype in _FLOATING,
                 lambda: f"conv1d_ext: {name} must be float32, float64, float16 or bfloat16, but got "
                 f"{t.dtype}")


def _check_same_type_and_device(a, a_name, b, b_name):
    torch._check(a.dtype == b.dtype,
                 lambda: f"{a_name} type ({a.dtype}) and {b_name} type ({b.dtype}) should be the same")
    torch._check(a.device == b.device,
                 lambda: f"Expected {a_name} and {b_name} to be on the same device, but found {a_name} on "
                 f"{a.device} and {b_name} on {b.device}")


def _check_3d(t, name):
    torch._check(t.dim() == 3, lambda: f"conv1d_ext: expected a 3-D {name}, but got size {list(t.shape)}")


def _check_weight(weight, in_channels, groups, input_shape):
    _check_3d(weight, "weight (out_channels, in_channels/groups, kernel_size)")
    torch._check(weight.shape[0] >= groups,
                 lambda: f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, "
                 f"but got weight of size {list(weight.shape)} instead")
    torch._check(weight.shape[0] % groups == 0,
                 lambda: f"Given groups={groups}, expected weight to be divisible by {groups} at dimension "
                 f"0, but got weight of size {list(weight.shape)} instead")
    torch._check(weight.shape[1] * groups == in_channels,
                 lambda: f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                 f"{list(input_shape)} to have {weight.shape[1] * groups} channels, but got {in_channels} "
                 "channels instead")
    torch._check(weight.shape[2] > 0,
                 lambda: f"conv1d_ext: kernel_size must be positive, but got weight of size "
                 f"{list(weight.shape)}")


# ---------------------------------------------------------------------------------------------------
# Fake kernels: output shape, dtype and device from the arguments, after the same checks (and messages)
# as the C++ kernels (csrc/op_common.h), so a bad call fails while tracing, not at run time.
# ---------------------------------------------------------------------------------------------------


@torch.library.register_fake(f"{_NS}::conv1d")
def _conv1d_fake(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    _check_3d(input, "input (batch, channels, length)")
    _check_floating(input, "input")
    _check_same_type_and_device(input, "Input", weight, "weight")
    _check_weight(weight, input.shape[1], groups, input.shape)
    if bias is not None:
        _check_same_type_and_device(input, "Input", bias, "bias")
        torch._check(bias.dim() == 1 and bias.shape[0] == weight.shape[0],
                     lambda: f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
                     f"with {weight.shape[0]} elements, but got bias of size {list(bias.shape)} instead")
    out_len = _check_out_len(input.shape[2], weight.shape[2], stride, pad_left, pad_right, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], out_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_input")
def _conv1d_backward_input_fake(grad_output, weight, input_len, stride, pad_left, pad_right, dilation,
                                groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    _check_3d(grad_output, "grad_output")
    torch._check(input_len >= 0, lambda: f"conv1d_ext: input_len must be non-negative, got {input_len}")
    _check_floating(grad_output, "grad_output")
    _check_same_type_and_device(grad_output, "grad_output", weight, "weight")
    torch._check(weight.dim() == 3 and weight.shape[2] > 0 and weight.shape[0] % groups == 0
                 and weight.shape[0] >= groups,
                 lambda: f"conv1d_ext: weight of size {list(weight.shape)} does not fit groups={groups}")
    torch._check(grad_output.shape[1] == weight.shape[0],
                 lambda: f"conv1d_ext: grad_output has {grad_output.shape[1]} channels but weight has "
                 f"{weight.shape[0]} output channels")
    out_len = _check_out_len(input_len, weight.shape[2], stride, pad_left, pad_right, dilation)
    torch._check(grad_output.shape[2] == out_len,
                 lambda: f"conv1d_ext: grad_output length {grad_output.shape[2]} does not match the "
                 f"output length {out_len} of an input of length {input_len}")
    return grad_output.new_empty((grad_output.shape[0], weight.shape[1] * groups, input_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_weight")
def _conv1d_backward_weight_fake(grad_output, input, kernel_size, stride, pad_left, pad_right, dilation,
                                 groups):
    _check_hyperparams(stride, pad_left, pad_right, dilation, groups)
    torch._check(kernel_size > 0, lambda: f"conv1d_ext: kernel_size must be positive, got {kernel_size}")
    _check_3d(grad_output, "grad_output")
    _check_3d(input, "input")
    _check_floating(grad_output, "grad_output")
    _check_same_type_and_device(grad_output, "grad_output", input, "input")
    torch._check(grad_output.shape[0] == input.shape[0],
                 lambda: f"conv1d_ext: grad_output batch {grad_output.shape[0]} does not match input batch "
                 f"{input.shape[0]}")
    torch._check(input.shape[1] % groups == 0 and grad_output.shape[1] % groups == 0
                 and grad_output.shape[1] >= groups,
                 lambda: f"conv1d_ext: channels (in {input.shape[1]}, out {grad_output.shape[1]}) must be "
                 f"divisible by groups={groups}")
    out_len = _check_out_len(input.shape[2], kernel_size, stride, pad_left, pad_right, dilation)
    torch._check(grad_output.shape[2] == out_len,
                 lambda: f"conv1d_ext: grad_output length {grad_output.shape[2]} does not match the "
                 f"output length {out_len} of the input")
    return grad_output.new_empty((grad_output.shape[1], input.shape[1] // groups, kernel_size))


@torch.library.register_fake(f"{_NS}::conv1d_backward_bias")
def _conv1d_backward_bias_fake(grad_output):
    _check_3d(grad_output, "grad_output")
    _check_floating(grad_output, "grad_output")
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
