"""One convolution's numbers (ConvSpec), from a module or from nn.Conv1d-style keywords, checked as PyTorch
checks them (the checks themselves live in conv1d_ext._geometry)."""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .._geometry import PADDING_MODES, check_module_numbers, module_int, resolve_padding
from .window import SlidingWindow

__all__ = ["PADDING_MODES", "ConvSpec", "is_conv_module", "resolve_dtype", "resolve_padding", "spec_from_keywords",
           "spec_from_module"]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution as explain() describes it. ``padding`` is what was asked for (an int, 'same', 'valid'
    or an explicit (left, right) pair); ``pad_left`` / ``pad_right`` are what it resolves to."""

    kernel_size: int
    stride: int
    dilation: int
    padding: int | str | tuple
    pad_left: int
    pad_right: int
    groups: int
    in_channels: int
    out_channels: int
    bias: bool
    padding_mode: str
    transposed: bool
    output_padding: int
    type_name: str

    @property
    def geometry(self):
        return SlidingWindow(kernel_size=self.kernel_size, stride=self.stride, dilation=self.dilation,
                             pad_left=self.pad_left, pad_right=self.pad_right, transposed=self.transposed,
                             output_padding=self.output_padding)


def spec_from_keywords(kernel_size, stride=1, padding=0, dilation=1, groups=1, in_channels=1, out_channels=1,
                       bias=True, padding_mode="zeros", transposed=False, output_padding=0):
    """A ConvSpec from nn.Conv1d / nn.ConvTranspose1d style arguments (padding may also be (left, right))."""
    if kernel_size is None:
        raise TypeError("explain() needs a conv module or kernel_size=")
    transposed = bool(transposed)
    numbers = check_module_numbers(kernel_size, stride, dilation, groups, in_channels, out_channels, output_padding,
                                   padding_mode, transposed)
    kernel_size, stride, dilation = numbers["kernel_size"], numbers["stride"], numbers["dilation"]
    if isinstance(padding, list):
        padding = tuple(padding)
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation, transposed)
    if isinstance(padding, tuple) and len(padding) == 1:
        padding = pad_left
    return ConvSpec(**numbers, padding=padding, pad_left=pad_left, pad_right=pad_right, bias=bool(bias),
                    padding_mode=padding_mode, transposed=transposed,
                    type_name="ConvTranspose1d" if transposed else "Conv1d")


def is_conv_module(module):
    return isinstance(module, (nn.Conv1d, nn.ConvTranspose1d))


def spec_from_module(module):
    """A ConvSpec from an nn.Conv1d / nn.ConvTranspose1d (or a subclass: Conv1dExt, lazy modules once run)."""
    if not is_conv_module(module):
        raise TypeError(f"expected an nn.Conv1d or nn.ConvTranspose1d (or a subclass), got {type(module).__name__}")
    if is_lazy(module.weight):
        raise ValueError(f"the {type(module).__name__}'s in_channels are not known yet; run one forward pass first")
    transposed = isinstance(module, nn.ConvTranspose1d)
    padding = module.padding if isinstance(module.padding, str) else module_int("padding", module.padding)
    spec = spec_from_keywords(module.kernel_size, module.stride, padding, module.dilation, module.groups,
                              module.in_channels, module.out_channels, module.bias is not None,
                              module.padding_mode, transposed, module.output_padding if transposed else 0)
    return ConvSpec(**{**spec.__dict__, "type_name": type(module).__name__})


def resolve_dtype(dtype, module=None):
    """The dtype whose size the byte counts use: the given one (a torch.dtype or its name), else the module's
    weight dtype, else float32."""
    if dtype is None:
        return module.weight.dtype if module is not None else torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; expected a torch dtype name such as 'float32' or 'bfloat16'")
        return resolved
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or its name, not {type(dtype).__name__}")
    return dtype

