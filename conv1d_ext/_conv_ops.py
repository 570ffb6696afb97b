"""Python side of the conv ops (conv1d, conv1d_backward_input, conv1d_backward_weight,
conv1d_backward_bias, conv1d_backward): what the dispatcher and PyTorch's transforms need from Python.

The C++ library (loaded by _library) defines the schemas and the CPU / CUDA kernels. This module adds, in
this order:

* a fake kernel per op, so torch.compile, torch.export, FakeTensor and meta tensors know output shapes
  without running a kernel (shapes may be symbolic: the formulas use only +, -, *, // on SymInts);
* a vmap batching rule per op (torch.vmap, and torch.func's transforms built on it);
* autograd for every op (backward and forward mode), written with the same four ops, so every order of
  derivative and every torch.func transform works;
* an autocast kernel for conv1d (PyTorch's convolution policy: the autocast context's dtype);
* conv1d / conv1d_backward_input, what conv1d_ext.conv1d and conv_transpose1d call on checked arguments.
"""

import torch
import torch.autograd.forward_ad as fwAD

from ._geometry import conv_out_len, span
from ._library import FLOATING, NAMESPACE, ops, require

_NS = NAMESPACE


# ---------------------------------------------------------------------------------------------------
# Fake kernels: output shape, dtype and device from the arguments, so torch.compile, FakeTensor and meta
# tensors work without running a kernel. They check what the shape computation needs, and reject every
# call the real kernels reject with the same exception type (RuntimeError), so a bad call fails while
# tracing; the detailed messages (PyTorch's wording) live once, in the C++ checks (csrc/core/op_common.h).
# ---------------------------------------------------------------------------------------------------


def _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups):
    require(op, stride > 0 and dilation > 0 and groups > 0 and pad_left >= 0 and pad_right >= 0,
            "stride, dilation and groups must be positive, padding non-negative")


def _check_dims(op, **tensors):
    for name, (t, dim) in tensors.items():
        require(op, t.dim() == dim, f"{name} must be {dim}-D")


def _check_dtypes(op, first, *others):
    require(op, all(t.dtype == first.dtype and t.device == first.device for t in others),
            "tensors must have the same dtype and device")
    # NotImplementedError, like the kernels' refusal of a dtype they have no kernels for
    torch._check_not_implemented(first.dtype in FLOATING,
                                 lambda: f"conv1d_ext::{op}: tensors must be float32, float64, float16 or bfloat16")


def _check_out_len(op, in_len, kernel_size, stride, pad_left, pad_right, dilation):
    require(op, in_len + pad_left + pad_right >= span(kernel_size, dilation),
            "the padded input is shorter than the kernel's span")
    return conv_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation)


def _check_groups(op, in_channels, out_channels, groups):
    require(op, in_channels % groups == 0 and out_channels % groups == 0 and out_channels >= groups,
            "channels must be divisible by groups")


def _check_backward_prologue(op, conv, **tensors):
    """What both backward ops check first: the int arguments, then two 3-D tensors of one dtype and device."""
    _check_hyperparams(op, *conv)
    _check_dims(op, **{name: (t, 3) for name, t in tensors.items()})
    _check_dtypes(op, *tensors.values())


def _check_grad_output_len(op, grad_output, in_len, kernel_size, stride, pad_left, pad_right, dilation, what):
    """grad_output's length must be the forward's output length for an input of in_len."""
    out_len = _check_out_len(op, in_len, kernel_size, stride, pad_left, pad_right, dilation)
    require(op, grad_output.shape[2] == out_len, f"grad_output's length does not fit {what}")


@torch.library.register_fake(f"{_NS}::conv1d")
def _conv1d_fake(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    op = "conv1d"
    _check_hyperparams(op, stride, pad_left, pad_right, dilation, groups)
    _check_dims(op, input=(input, 3), weight=(weight, 3), **({"bias": (bias, 1)} if bias is not None else {}))
    _check_dtypes(op, input, weight, *([bias] if bias is not None else []))
    out_channels, in_per_group, kernel_size = weight.shape
    _check_groups(op, in_per_group * groups, out_channels, groups)
    require(op, input.shape[1] == in_per_group * groups and kernel_size > 0,
            "weight does not fit the input's channels")
    require(op, bias is None or bias.shape[0] == out_channels, "bias size must be out_channels")
    out_len = _check_out_len(op, input.shape[2], kernel_size, stride, pad_left, pad_right, dilation)
    return input.new_empty((input.shape[0], out_channels, out_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_input")
def _conv1d_backward_input_fake(grad_output, weight, input_len, stride, pad_left, pad_right, dilation,
                                groups):
    op = "conv1d_backward_input"
    _check_backward_prologue(op, (stride, pad_left, pad_right, dilation, groups), grad_output=grad_output,
                             weight=weight)
    out_channels, in_per_group, kernel_size = weight.shape
    _check_groups(op, in_per_group * groups, out_channels, groups)
    require(op, grad_output.shape[1] == out_channels and kernel_size > 0 and input_len >= 0,
            "grad_output, weight and input_len do not fit")
    _check_grad_output_len(op, grad_output, input_len, kernel_size, stride, pad_left, pad_right, dilation,
                           "input_len")
    return grad_output.new_empty((grad_output.shape[0], in_per_group * groups, input_len))


@torch.library.register_fake(f"{_NS}::conv1d_backward_weight")
def _conv1d_backward_weight_fake(grad_output, input, kernel_size, stride, pad_left, pad_right, dilation,
                                 groups):
    op = "conv1d_backward_weight"
    _check_backward_prologue(op, (stride, pad_left, pad_right, dilation, groups), grad_output=grad_output,
                             input=input)
    _check_groups(op, input.shape[1], grad_output.shape[1], groups)
    require(op, grad_output.shape[0] == input.shape[0] and kernel_size > 0,
            "grad_output and input do not fit")
    _check_grad_output_len(op, grad_output, input.shape[2], kernel_size, stride, pad_left, pad_right, dilation,
                           "the input")
    return grad_output.new_empty((grad_output.shape[1], input.shape[1] // groups, kernel_size))


@torch.library.register_fake(f"{_NS}::conv1d_backward")
def _conv1d_backward_fake(grad_output, input, weight, stride, pad_left, pad_right, dilation, groups, output_mask):
    op = "conv1d_backward"
    _check_dims(op, input=(input, 3), weight=(weight, 3))
    grad_input = _conv1d_backward_input_fake(grad_output, weight, input.shape[2], stride, pad_left, pad_right,
                                             dilation, groups)
    grad_weight = _conv1d_backward_weight_fake(grad_output, input, weight.shape[2], stride, pad_left, pad_right,
                                               dilation, groups)
    require(op, input.shape[1] == weight.shape[1] * groups, "the input's channels do not fit the weight")
    return tuple(t if wanted else grad_output.new_empty((0,)) for t, wanted in
                 zip((grad_input, grad_weight, grad_output.new_empty((grad_output.shape[1],))), output_mask,
                     strict=True))


@torch.library.register_fake(f"{_NS}::conv1d_backward_bias")
def _conv1d_backward_bias_fake(grad_output):
    op = "conv1d_backward_bias"
    _check_dims(op, grad_output=(grad_output, 3))
    _check_dtypes(op, grad_output)
    return grad_output.new_empty((grad_output.shape[1],))


# ---------------------------------------------------------------------------------------------------
# vmap: batching rules, so torch.vmap (and what torch.func builds on it: jacrev, jacfwd, hessian, per-sample
# gradients) runs each op once on the whole batch instead of once per slice. A vmapped input joins the
# batch dim; vmapped weights make the V convolutions one grouped convolution with V * groups groups, the V
# copies of the channels side by side (PyTorch's own convolution batching rule does the same); a weight
# shared by the V inputs (or an input shared by V weights) needs no copy: the V copies become more output
# channels, interleaved group by group so each stays within its group.
# ---------------------------------------------------------------------------------------------------


def _first(t, bdim, size):
    """t with its vmapped dim first; an unvmapped t expanded (a view, no copy) along a new first dim."""
    return t.expand(size, *t.shape) if bdim is None else t.movedim(bdim, 0)


def _split(t, dim, size):
    """Dim `dim` of size V*C as the two dims (V, C)."""
    return t.unflatten(dim, (size, t.shape[dim] // size))


def _side_by_side(t):
    """(V, N, C, L) -> (N, V*C, L): the channels of the V copies as V groups of channels."""
    return t.transpose(0, 1).flatten(1, 2)


def _interleave_groups(t, groups, dim=0):
    """(..., V, C, ...) at (dim, dim + 1) -> (..., groups * V * C/groups, ...): the V copies of each group's
    channels next to each other, so an op with `groups` groups keeps every copy within its group."""
    return t.unflatten(dim + 1, (groups, -1)).transpose(dim, dim + 1).flatten(dim, dim + 2)


def _deinterleave_groups(t, size, groups, dim):
    """The inverse of _interleave_groups along `dim`: (..., groups * V * Cg, ...) -> (..., V, groups * Cg, ...)."""
    t = t.unflatten(dim, (groups, size, t.shape[dim] // (groups * size)))
    return t.transpose(dim, dim + 1).flatten(dim + 1, dim + 2)


@torch.library.register_vmap(f"{_NS}::conv1d")
def _conv1d_vmap(info, in_dims, input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    size, (x_dim, w_dim, b_dim) = info.batch_size, in_dims[:3]
    if w_dim is None and b_dim is None:  # more samples
        out = ops.conv1d(input.movedim(x_dim, 0).flatten(0, 1), weight, bias, stride, pad_left, pad_right,
                         dilation, groups)
        return _split(out, 0, size), 0
    w = _first(weight, w_dim, size)
    b = None if bias is None else _first(bias, b_dim, size)
    if x_dim is None:  # one input, V weights: more output channels
        b = None if b is None else _interleave_groups(b, groups)
        out = ops.conv1d(input, _interleave_groups(w, groups), b, stride, pad_left, pad_right, dilation, groups)
        return _deinterleave_groups(out, size, groups, 1), 1
    out = ops.conv1d(_side_by_side(input.movedim(x_dim, 0)), w.flatten(0, 1), None if b is None else b.flatten(),
                     stride, pad_left, pad_right, dilation, size * groups)
    return _split(out, 1, size), 1


@torch.library.register_vmap(f"{_NS}::conv1d_backward_input")
def _backward_input_vmap(info, in_dims, grad_output, weight, input_len, stride, pad_left, pad_right, dilation,
                         groups):
    size, (gy_dim, w_dim) = info.batch_size, in_dims[:2]
    if w_dim is None:
        out = ops.conv1d_backward_input(grad_output.movedim(gy_dim, 0).flatten(0, 1), weight, input_len, stride,
                                        pad_left, pad_right, dilation, groups)
        return _split(out, 0, size), 0
    # V weights: a transposed convolution sums over output channels, so they cannot share one grad_output's
    # channels; the grouped form needs the V grad_outputs side by side
    gy = _side_by_side(_first(grad_output, gy_dim, size))
    out = ops.conv1d_backward_input(gy, weight.movedim(w_dim, 0).flatten(0, 1), input_len, stride, pad_left,
                                    pad_right, dilation, size * groups)
    return _split(out, 1, size), 1


@torch.library.register_vmap(f"{_NS}::conv1d_backward_weight")
def _backward_weight_vmap(info, in_dims, grad_output, input, kernel_size, stride, pad_left, pad_right, dilation,
                          groups):
    size, (gy_dim, x_dim) = info.batch_size, in_dims[:2]
    if x_dim is None:  # one input, V grad_outputs (jacrev of a weight): more output channels
        gy = _interleave_groups(grad_output.movedim(gy_dim, 1), groups, dim=1)
        out = ops.conv1d_backward_weight(gy, input, kernel_size, stride, pad_left, pad_right, dilation, groups)
        return _deinterleave_groups(out, size, groups, 0), 0
    # per-sample gradients: each slice's own sum over its batch, so the V slices side by side, V * groups groups
    out = ops.conv1d_backward_weight(_side_by_side(_first(grad_output, gy_dim, size)),
                                     _side_by_side(input.movedim(x_dim, 0)), kernel_size, stride, pad_left,
                                     pad_right, dilation, size * groups)
    return _split(out, 0, size), 0


@torch.library.register_vmap(f"{_NS}::conv1d_backward_bias")
def _backward_bias_vmap(info, in_dims, grad_output):
    out = ops.conv1d_backward_bias(_side_by_side(grad_output.movedim(in_dims[0], 0)))
    return _split(out, 0, info.batch_size), 0


# ---------------------------------------------------------------------------------------------------
# Autograd. Each op is linear in each of its tensor arguments, so each derivative, backward or forward
# (jvp), is again made of the four ops:
#
#   conv1d(x, w, b)         backward: dx = backward_input(gy, w), dw = backward_weight(gy, x), db = backward_bias(gy)
#                           jvp:      conv1d(dx, w) + conv1d(x, dw) + db
#   backward_input(gy, w)   backward: dgy = conv1d(G, w), dw = backward_weight(gy, G)      (G: grad of the result)
#                           jvp:      backward_input(dgy, w) + backward_input(gy, dw)
#   backward_weight(gy, x)  backward: dgy = conv1d(x, H), dx = backward_input(gy, H)       (H: grad of the result)
#                           jvp:      backward_weight(dgy, x) + backward_weight(gy, dx)
#   backward_bias(gy)       backward: dgy = grad of the result broadcast over batch and length
#                           jvp:      backward_bias(dgy)
#
# One torch.autograd.Function per op holds its formulas. Each formula calls the four ops again through
# _call, so derivatives of derivatives are differentiable too (double backward, hessian = jacfwd(jacrev));
# only the gradients autograd asks for are computed. The Functions serve twice:
# * as the ops' autograd kernels (the Autograd dispatch key), so every caller of torch.ops.conv1d_ext.* gets
#   backward, double backward and forward mode (torch.autograd.forward_ad), also under torch.compile;
#   torch.library.register_autograd is not used: the Function it generates has no jvp, so forward mode gave a
#   silent zero tangent;
# * applied directly (by _call, for conv1d_ext.conv1d and inside the formulas) under a torch.func transform:
#   torch.func (grad, jvp, jacrev, jacfwd, hessian, and vmap of them, through the batching rules above:
#   generate_vmap_rule) handles an autograd.Function applied from Python, not one inside an op's kernel.
# ---------------------------------------------------------------------------------------------------

_NONE = (None,) * 6  # the gradients of the int arguments


def _sum(terms):
    """The sum of the terms that are not None (the contributions of the inputs that have tangents)."""
    terms = [t for t in terms if t is not None]
    return sum(terms[1:], terms[0])


def _broadcast_bias(bias, shape):
    return bias[None, :, None].expand(shape)


def _call(function, *args):
    """What the formulas use: under a torch.func transform the Function itself (torch.func must see it),
    else its op, whose autograd kernel applies the Function only when there is something to differentiate
    (a Function's apply is Python work comparable to a small convolution's)."""
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return function.apply(*args)
    return function.op(*args)


def _below_autograd(op, *args):
    """The op's kernel (or batching rule) without passing this autograd kernel again."""
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def _fused_backward_applies(needs):
    """Whether _Conv1d.backward may compute its gradients with the one op conv1d_backward (one pass over
    grad_output on the CPU's depthwise kernels): at least two of them needed, and nothing will differentiate
    the gradients (the op has no derivative of its own): grad mode off (backward without create_graph) and no
    torch.func transform active. Otherwise the separate, differentiable ops."""
    return (sum(needs) >= 2 and not torch.is_grad_enabled()
            and torch._C._functorch.peek_interpreter_stack() is None)


class _Conv1d(torch.autograd.Function):
    generate_vmap_rule = True
    op = ops.conv1d.default

    @staticmethod
    def forward(input, weight, bias, *conv):
        return _below_autograd(_Conv1d.op, input, weight, bias, *conv)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, _bias, *conv = inputs
        ctx.conv, ctx.output_shape = tuple(conv), output.shape
        ctx.save_for_backward(input, weight)
        ctx.save_for_forward(input, weight)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if _fused_backward_applies(needs[:3]):
            grads = _below_autograd(ops.conv1d_backward.default, grad_output, input, weight, *ctx.conv,
                                    list(needs[:3]))
            return (*(g if need else None for g, need in zip(grads, needs[:3], strict=True)), *_NONE[:5])
        return (_call(_BackwardInput, grad_output, weight, input.shape[2], *ctx.conv) if needs[0] else None,
                _call(_BackwardWeight, grad_output, input, weight.shape[2], *ctx.conv) if needs[1] else None,
                _call(_BackwardBias, grad_output) if needs[2] else None, *_NONE[:5])

    @staticmethod
    def jvp(ctx, d_input, d_weight, d_bias, *_):
        input, weight = ctx.saved_tensors
        return _sum([None if d_input is None else _call(_Conv1d, d_input, weight, None, *ctx.conv),
                     None if d_weight is None else _call(_Conv1d, input, d_weight, None, *ctx.conv),
                     None if d_bias is None else _broadcast_bias(d_bias, ctx.output_shape)])


def _backward_op_function(name, op, gradients):
    """The autograd.Function of a backward op ``op(grad_output, other, size, *conv)`` (backward_input:
    other = weight, size = input_len; backward_weight: other = input, size = kernel_size). The op is linear
    in grad_output and in other, so its jvp is the op applied to each tangent in turn; ``gradients(
    grad_output, other, grad, conv, needs)`` gives the gradients of (grad_output, other), each computed only
    when ``needs`` asks for it."""

    class Function(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(grad_output, other, size, *conv):
            return _below_autograd(op, grad_output, other, size, *conv)

        @staticmethod
        def setup_context(ctx, inputs, output):
            grad_output, other, ctx.size, *conv = inputs
            ctx.conv = tuple(conv)
            ctx.save_for_backward(grad_output, other)
            ctx.save_for_forward(grad_output, other)

        @staticmethod
        def backward(ctx, grad):
            grad_output, other = ctx.saved_tensors
            return (*gradients(grad_output, other, grad, ctx.conv, ctx.needs_input_grad[:2]), *_NONE)

        @staticmethod
        def jvp(ctx, d_grad_output, d_other, *_):
            grad_output, other = ctx.saved_tensors
            args = (ctx.size, *ctx.conv)
            return _sum([None if d_grad_output is None else _call(Function, d_grad_output, other, *args),
                         None if d_other is None else _call(Function, grad_output, d_other, *args)])

    Function.op = op
    Function.__name__ = Function.__qualname__ = name
    return Function


def _backward_input_gradients(grad_output, weight, grad, conv, needs):
    """backward_input(gy, w): dgy = conv1d(G, w), dw = backward_weight(gy, G)."""
    return (_call(_Conv1d, grad, weight, None, *conv) if needs[0] else None,
            _call(_BackwardWeight, grad_output, grad, weight.shape[2], *conv) if needs[1] else None)


def _backward_weight_gradients(grad_output, input, grad, conv, needs):
    """backward_weight(gy, x): dgy = conv1d(x, H), dx = backward_input(gy, H)."""
    return (_call(_Conv1d, input, grad, None, *conv) if needs[0] else None,
            _call(_BackwardInput, grad_output, grad, input.shape[2], *conv) if needs[1] else None)


_BackwardInput = _backward_op_function("_BackwardInput", ops.conv1d_backward_input.default,
                                       _backward_input_gradients)
_BackwardWeight = _backward_op_function("_BackwardWeight", ops.conv1d_backward_weight.default,
                                        _backward_weight_gradients)


class _BackwardBias(torch.autograd.Function):
    generate_vmap_rule = True
    op = ops.conv1d_backward_bias.default

    @staticmethod
    def forward(grad_output):
        return _below_autograd(_BackwardBias.op, grad_output)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.grad_output_shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad_grad_bias):
        return _broadcast_bias(grad_grad_bias, ctx.grad_output_shape)

    @staticmethod
    def jvp(ctx, d_grad_output):
        return _call(_BackwardBias, d_grad_output)


def _autograd_kernel(name, function):
    def kernel(*args):
        # torch.func sees an autograd.Function only where Python applies it: from inside the dispatcher it
        # cannot; without this check the failure would be an internal error about custom_function_call
        if torch._C._functorch.peek_interpreter_stack() is not None:
            raise RuntimeError(f"torch.ops.conv1d_ext.{name} supports torch.vmap but not torch.func's autograd "
                               "transforms (grad, jvp, jacrev, jacfwd, hessian); use conv1d_ext.conv1d or "
                               "Conv1dExt, which support them all")
        if (torch.is_grad_enabled() and torch._C._any_requires_grad(*args)) or fwAD._current_level >= 0:
            return function.apply(*args)
        return _below_autograd(function.op, *args)  # nothing to differentiate: skip the Function's cost
    return kernel


_lib = torch.library.Library(_NS, "IMPL")  # kept alive: the registrations below last as long as it does
for _name, _function in [("conv1d", _Conv1d), ("conv1d_backward_input", _BackwardInput),
                         ("conv1d_backward_weight", _BackwardWeight), ("conv1d_backward_bias", _BackwardBias)]:
    _lib.impl(_name, _autograd_kernel(_name, _function), "Autograd")


def _conv1d_backward_autograd(*args):
    """conv1d_backward has no derivative of its own (_Conv1d.backward calls it only where nothing will
    differentiate its results): a clear error instead of silently missing gradients."""
    if torch.is_grad_enabled() and torch._C._any_requires_grad(*args[:3]):
        raise RuntimeError("torch.ops.conv1d_ext.conv1d_backward is not differentiable; differentiate "
                           "conv1d_backward_input / conv1d_backward_weight / conv1d_backward_bias instead")
    return _below_autograd(ops.conv1d_backward.default, *args)


_lib.impl("conv1d_backward", _conv1d_backward_autograd, "Autograd")


# ---------------------------------------------------------------------------------------------------
# Autocast. PyTorch's policy for convolutions (on the lower-precision list of CPU and CUDA): the floating
# tensors on the autocast device, float64 excepted, are cast to the autocast context's dtype
# (torch.get_autocast_dtype), which is then the output's dtype; autograd records the casts, so float32
# parameters get float32 gradients. torch.library.register_autocast casts to one fixed dtype instead, so
# the same kind of kernel is registered here by hand, as register_autocast does: on the op's AutocastCPU /
# AutocastCUDA keys (the dispatcher: eager calls, torch.compile's tracing) and as the op's py_impl for them
# (the Python dispatcher). conv1d_ext.conv1d casts before it calls anything (autocast() below).
# The backward ops get none: like PyTorch's convolution_backward they are on no autocast list, and run on
# the dtypes autograd saved, even when backward() is called inside an autocast region.
# ---------------------------------------------------------------------------------------------------

_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}


def _autocast(tensors, device_type):
    dtype = torch.get_autocast_dtype(device_type)
    return [t.to(dtype) if t is not None and t.is_floating_point() and t.device.type == device_type
            and t.dtype != torch.float64 else t for t in tensors]


def _register_autocast(device_type, key):
    dispatch_key = getattr(torch._C.DispatchKey, key)

    def autocast_conv1d(input, weight, bias, *conv):
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(dispatch_key)):
            return ops.conv1d.default(*_autocast((input, weight, bias), device_type), *conv)

    ops.conv1d.default.py_impl(dispatch_key)(autocast_conv1d)
    _lib.impl("conv1d", autocast_conv1d, key)


for _device_type, _key in _AUTOCAST_KEYS.items():
    _register_autocast(_device_type, _key)


# ---------------------------------------------------------------------------------------------------
# What conv1d_ext.conv1d calls.
# ---------------------------------------------------------------------------------------------------


def autocast(input, weight, bias):
    """(input, weight, bias) as PyTorch's autocast casts a convolution's arguments, on entry, before any
    check (unchanged when autocast is off). conv1d_ext.conv1d calls it so that it checks the cast tensors
    like F.conv1d does (e.g. a float16 input from the previous layer meets a float32 bias) and so that
    autograd records the casts around the Function; under torch.compile the casts are traced."""
    device_type = input.device.type
    if device_type not in _AUTOCAST_KEYS or not torch.is_autocast_enabled(device_type):
        return input, weight, bias
    return _autocast((input, weight, bias), device_type)


def conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    """conv1d on checked arguments: the op (whose autograd kernel is the Function), except under a torch.func
    transform, which needs the Function applied here. (Dynamo, checked first, could not trace the Function:
    it has a jvp; a Function recorded by torch.jit.trace could not be saved.)"""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return ops.conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups)
    return _call(_Conv1d, input, weight, bias, stride, pad_left, pad_right, dilation, groups)


def conv1d_backward_input(grad_output, weight, input_len, stride, pad_left, pad_right, dilation, groups):
    """conv1d_backward_input on checked arguments (the forward of conv1d_ext.conv_transpose1d), dispatched
    like conv1d above, so a transposed convolution works under torch.func too."""
    args = (grad_output, weight, input_len, stride, pad_left, pad_right, dilation, groups)
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return ops.conv1d_backward_input(*args)
    return _call(_BackwardInput, *args)
