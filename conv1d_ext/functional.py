"""conv1d_ext.conv1d: torch.nn.functional.conv1d's interface and semantics on this project's kernels."""

import operator

import torch

from . import _ops

__all__ = ["conv1d"]

_SIGNATURE = ("conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple = 1, "
              "padding: int | tuple | str = 0, dilation: int | tuple = 1, groups: int = 1)")


def _bad_argument(name, value):
    return TypeError(f"conv1d_ext.conv1d(): argument '{name}' must be an int or a tuple of 1 int, but got "
                     f"{type(value).__name__} ({value!r}); expected {_SIGNATURE}")


def _index(name, value):
    """An int from an int-like (int, numpy integer, integer 0-d tensor); bools and floats are TypeErrors,
    as in F.conv1d."""
    if isinstance(value, bool):
        raise _bad_argument(name, value)
    try:
        return operator.index(value)
    except TypeError:
        raise _bad_argument(name, value) from None


def _single(name, value):
    """stride / padding / dilation: an int or a sequence of exactly one int (F.conv1d's rule)."""
    if isinstance(value, (tuple, list)) or (isinstance(value, torch.Tensor) and value.dim() == 1):
        values = [_index(name, v) for v in value]
        if len(values) != 1:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 1 values to match "
                               f"the convolution dimensions, but got {name}={values}")
        return values[0]
    return _index(name, value)


def _ints(name, value):
    """stride / padding / dilation as a list of ints; its length is checked later, where F.conv1d does."""
    if isinstance(value, (tuple, list)) or (isinstance(value, torch.Tensor) and value.dim() == 1):
        return [_index(name, v) for v in value]
    return [_index(name, value)]


def _expand(name, values, spatial_dims):
    """PyTorch's convolution_expand_param_if_needed: one value, or one per spatial dim of the weight."""
    if len(values) not in (1, spatial_dims):
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {spatial_dims} values to "
                           f"match the convolution dimensions, but got {name}={values}")
    return values[0]


def _same_padding(input, weight, stride, dilation):
    """(pad_left, pad_right) of padding='same', after PyTorch's checks of it (at::convolution_same, in its
    order). It pads d*(k-1) in total, the odd one on the right, exactly like PyTorch (so even kernels need
    no padded copy: the op takes both sides)."""
    if weight.dim() != input.dim():
        raise RuntimeError(f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional weight"
                           f"{list(weight.shape)}, but got {input.dim()}-dimensional input of size "
                           f"{list(input.shape)} instead")
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) != 1:
            raise RuntimeError(f"{name} cannot broadcast to 1 dimensions")
    if stride[0] != 1:
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    total = dilation[0] * (weight.shape[2] - 1)
    return total // 2, total - total // 2


# How PyTorch's messages name a dtype (C++ type names), for the one check made before the op is called.
_CPP_TYPE_NAMES = {torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half",
                   torch.bfloat16: "c10::BFloat16", torch.int64: "long int", torch.int32: "int",
                   torch.int16: "short int", torch.int8: "signed char", torch.uint8: "unsigned char",
                   torch.bool: "bool", torch.complex64: "c10::complex<float>",
                   torch.complex128: "c10::complex<double>"}


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""1D convolution over an input of shape (N, C_in, L) or unbatched (C_in, L).

    Same arguments, result, gradients (including double backward) and errors as
    :func:`torch.nn.functional.conv1d`; the arithmetic runs in conv1d_ext's own kernels.

    Args:
        input: (N, C_in, L) or (C_in, L), float32 / float64 / float16 / bfloat16.
        weight: (C_out, C_in / groups, K), same dtype and device as ``input``.
        bias: optional (C_out,).
        stride, dilation: int or 1-tuple, > 0.
        padding: int or 1-tuple (>= 0, both sides), or ``'valid'`` (none) or ``'same'`` (output length =
            input length; stride must be 1; an odd total pads one more on the right).
        groups: int > 0 dividing C_in and C_out.

    Unlike F.conv1d, integer and complex dtypes are not supported (NotImplementedError, naming the supported
    dtypes, raised after every check F.conv1d makes).
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'weight' must be Tensor, not {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'bias' must be Tensor or None, not "
                        f"{type(bias).__name__}")
    input, weight, bias = _ops.autocast(input, weight, bias)  # first, like PyTorch's autocast kernel
    stride = _ints("stride", stride)
    dilation = _ints("dilation", dilation)
    groups = _index("groups", groups)
    if not isinstance(padding, str):
        padding = _ints("padding", padding)

    # From here on the checks follow F.conv1d's order (at::conv1d, at::_convolution_mode, at::_convolution;
    # the op makes the rest: csrc/op_common.h), so a call with several problems reports PyTorch's message.
    if not isinstance(padding, str) and bias is not None and bias.dtype != input.dtype:
        names = [_CPP_TYPE_NAMES.get(t.dtype, str(t.dtype)) for t in (input, bias)]
        raise RuntimeError(f"Input type ({names[0]}) and bias type ({names[1]}) should be the same")
    if input.dim() not in (2, 3):
        raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: "
                           f"{list(input.shape)}")
    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str) and padding not in ("same", "valid"):
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    if weight.dim() < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if isinstance(padding, str):
        pad_left, pad_right = _same_padding(input, weight, stride, dilation) if padding == "same" else (0, 0)
    spatial_dims = weight.dim() - 2
    stride = _expand("stride", stride, spatial_dims)
    if not isinstance(padding, str):
        pad_left = pad_right = _expand("padding", padding, spatial_dims)
    dilation = _expand("dilation", dilation, spatial_dims)
    output = _ops.conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups)
    return output.squeeze(0) if unbatched else output


def _not_scriptable():
    raise RuntimeError("conv1d_ext does not support torch.jit.script (TorchScript is deprecated in PyTorch): use "
                       "torch.compile, or torch.export / torch.onnx.export(..., dynamo=True) to deploy")


# torch.jit.script calls this on the function, and on every function a scripted module's forward calls,
# before compiling it: a clear error instead of one about Python constructs deep inside.
conv1d.__prepare_scriptable__ = _not_scriptable
