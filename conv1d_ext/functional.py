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


def _string_padding(padding, kernel_size, stride, dilation):
    """(pad_left, pad_right) of padding='same' / 'valid'. 'same' pads d*(k-1) in total, the odd one on the
    right, exactly like PyTorch (so even kernels need no padded copy: the op takes both sides)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        if stride != 1:
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        total = dilation * (kernel_size - 1)
        return total // 2, total - total // 2
    raise RuntimeError(f"Invalid padding string: '{padding}'")


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

    Unlike F.conv1d, integer and complex dtypes are not supported (RuntimeError).
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'weight' must be Tensor, not {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv1d(): argument 'bias' must be Tensor or None, not "
                        f"{type(bias).__name__}")
    stride = _single("stride", stride)
    dilation = _single("dilation", dilation)
    groups = _index("groups", groups)
    if isinstance(padding, str):
        pad_left = pad_right = None  # needs the kernel size; resolved below once the weight is checked
    else:
        pad_left = pad_right = _single("padding", padding)

    if input.dim() not in (2, 3):
        raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: "
                           f"{list(input.shape)}")
    if weight.dim() != 3:
        raise RuntimeError(f"conv1d_ext.conv1d: expected a 3-D weight (out_channels, in_channels/groups, "
                           f"kernel_size), but got weight of size {list(weight.shape)}")
    if pad_left is None:
        if stride <= 0:  # checked before 'same' so the message names the real problem
            raise RuntimeError("non-positive stride is not supported")
        if dilation <= 0:
            raise RuntimeError("non-positive dilation is not supported")
        pad_left, pad_right = _string_padding(padding, weight.shape[2], stride, dilation)

    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    output = _ops.ops.conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups)
    return output.squeeze(0) if unbatched else output
