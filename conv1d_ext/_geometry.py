"""The geometry of a 1D convolution, and the argument checks Python makes before any op runs.

Formulas (``span``, ``conv_out_len``, ``transposed_out_len``, ``same_padding``, ``transposed_geometry``)
are shared by the ops' fake kernels (_conv_ops), conv1d_ext.functional and conv1d_ext.arithmetic; they use
only +, -, *, // so they also work on SymInts.

The checks are the ones that must run in Python, with PyTorch's exception types and wording:

* conv1d_ext.conv1d / conv_transpose1d (RuntimeError / TypeError, as F.conv1d / F.conv_transpose1d):
  the op never sees what they check (unbatched inputs, string padding, stride tuples, output_padding: the
  Python side resolves them into the op's int arguments), or PyTorch checks it before that resolution,
  so the check must come first to report PyTorch's message for a call with several problems. The rest is
  left to the op, whose messages live once, in the C++ checks (csrc/core/op_common.h); check_conv1d says which
  of its checks the op makes again, for its direct callers.
* conv1d_ext.arithmetic (ValueError / TypeError, as nn.Conv1d's and nn.ConvTranspose1d's constructors
  and F.pad raise them): explain() describes a convolution without running one.
"""

import operator

import torch

from ._library import FLOATING

__all__ = ["conv_out_len", "same_padding", "span", "transposed_geometry", "transposed_out_len"]

# ---- formulas -------------------------------------------------------------------------------------------


def span(kernel_size, dilation):
    """Input positions one output's taps cover, first to last: dilation·(k − 1) + 1."""
    return dilation * (kernel_size - 1) + 1


def conv_out_len(in_len, kernel_size, stride, pad_left, pad_right, dilation):
    """Output length of a 1D convolution (PyTorch's formula); zero or negative where PyTorch raises."""
    return (in_len + pad_left + pad_right - span(kernel_size, dilation)) // stride + 1


def transposed_out_len(in_len, kernel_size, stride, pad_left, pad_right, output_padding, dilation):
    """Output length of a 1D transposed convolution: (L − 1)·stride − pad_left − pad_right + dilation·(k − 1)
    + output_padding + 1 (PyTorch's ``padding`` is pad_left = pad_right)."""
    return (in_len - 1) * stride - pad_left - pad_right + span(kernel_size, dilation) + output_padding


def same_padding(kernel_size, dilation):
    """(pad_left, pad_right) of padding='same' (stride 1): dilation·(k − 1) in total, the odd one on the
    right, exactly like PyTorch."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def transposed_geometry(in_len, kernel_size, stride, padding, output_padding, dilation):
    """How a transposed convolution maps onto the op conv1d_backward_input:
    (out_len, input_len, pad_right, trailing_zeros).

    Input position i adds x[i]·w[j] to output o = i·stride − padding + j·dilation. That is exactly the
    input gradient of the conv1d (stride, pad_left = padding, dilation) of a signal of length input_len,
    provided that conv1d has in_len outputs. The uncropped result has full = (in_len − 1)·stride +
    dilation·(k − 1) + 1 positions; the output crops `padding` of them at the start and, at the end, crops
    padding − output_padding (or appends output_padding − padding positions that no input reaches). The
    op's conv1d has (input_len + padding + pad_right − span) // stride + 1 outputs, which is in_len exactly
    when input_len + pad_right − (full − padding) lies in [0, stride − 1]. So:

    * output_padding <= padding: input_len = out_len and pad_right = padding − output_padding;
    * otherwise pad_right = 0 (the op rejects negative padding) and up to stride − 1 of the appended
      positions fit in input_len (the op writes them as zeros: nothing reaches them); the rest, possible
      only when dilation > stride (output_padding < max(stride, dilation)), are zeros appended after.

    (The naive mapping pad_right = padding, input_len = out_len fails whenever output_padding >= stride,
    which dilation > stride allows: the op's conv1d then has more outputs than the input has positions,
    and the op's length check rejects the call.)

    in_len may be a SymInt under torch.compile; the branches depend on the int arguments only.
    """
    out_len = transposed_out_len(in_len, kernel_size, stride, padding, padding, output_padding, dilation)
    appended = output_padding - padding
    if appended <= 0:
        return out_len, out_len, -appended, 0
    trailing_zeros = max(0, appended - (stride - 1))
    return out_len, out_len - trailing_zeros, 0, trailing_zeros


# ---- conv1d_ext.conv1d / conv_transpose1d: PyTorch's argument parsing -----------------------------------

CONV1D_SIGNATURE = ("conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple = 1, "
                    "padding: int | tuple | str = 0, dilation: int | tuple = 1, groups: int = 1)")
CONV_TRANSPOSE1D_SIGNATURE = ("conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, "
                              "stride: int | tuple = 1, padding: int | tuple = 0, output_padding: int | tuple = 0, "
                              "groups: int = 1, dilation: int | tuple = 1)")
_INT64_MAX = 2**63 - 1


def _not_one_value(name, values, count, error=RuntimeError):
    """PyTorch's error for a stride / padding / dilation sequence of the wrong length."""
    return error(f"expected {name} to be a single integer value or a list of {count} values to match the "
                 f"convolution dimensions, but got {name}={values}")


def check_tensors(function, input, weight, bias):
    """TypeError unless input and weight are tensors and bias a tensor or None (PyTorch's argument parser)."""
    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"conv1d_ext.{function}(): argument '{name}' must be Tensor, not {type(value).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv1d_ext.{function}(): argument 'bias' must be Tensor or None, not "
                        f"{type(bias).__name__}")


def _bad_argument(name, value, signature):
    function = signature.split("(", 1)[0]
    return TypeError(f"conv1d_ext.{function}(): argument '{name}' must be an int or a tuple of 1 int, but "
                     f"got {type(value).__name__} ({value!r}); expected {signature}")


def index(name, value, signature=CONV1D_SIGNATURE):
    """An int from an int-like (int, numpy integer, integer 0-d tensor); bools and floats are TypeErrors,
    as in F.conv1d."""
    if isinstance(value, bool):
        raise _bad_argument(name, value, signature)
    try:
        value = operator.index(value)
    except TypeError:
        raise _bad_argument(name, value, signature) from None
    if not -2**63 <= value < 2**63:  # PyTorch's argument parser: ValueError, not the op's RuntimeError
        raise ValueError(f"conv1d_ext: argument '{name}' = {value} does not fit int64 (Overflow when unpacking "
                         f"long long)")
    return value


def _is_sequence(value):
    return isinstance(value, (tuple, list)) or (isinstance(value, torch.Tensor) and value.dim() == 1)


def single(name, value, signature=CONV1D_SIGNATURE):
    """stride / padding / dilation: an int or a sequence of exactly one int (F.conv1d's rule)."""
    if _is_sequence(value):
        values = [index(name, v, signature) for v in value]
        if len(values) != 1:
            raise _not_one_value(name, values, 1)
        return values[0]
    return index(name, value, signature)


def ints(name, value):
    """stride / padding / dilation as a list of ints; its length is checked later, where F.conv1d does."""
    if _is_sequence(value):
        return [index(name, v) for v in value]
    return [index(name, value)]


def expand(name, values, spatial_dims):
    """PyTorch's convolution_expand_param_if_needed: one value, or one per spatial dim of the weight."""
    if len(values) not in (1, spatial_dims):
        raise _not_one_value(name, values, spatial_dims)
    return values[0]


# ---- conv1d_ext.conv1d: F.conv1d's checks before the op ---------------------------------------------------

_SAME_STRIDED = "padding='same' is not supported for strided convolutions"  # also nn.Conv1d's ValueError

# How PyTorch's messages name a dtype (C++ type names), for the bias check at::conv1d makes first.
_CPP_TYPE_NAMES = {torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half",
                   torch.bfloat16: "c10::BFloat16", torch.int64: "long int", torch.int32: "int",
                   torch.int16: "short int", torch.int8: "signed char", torch.uint8: "unsigned char",
                   torch.bool: "bool", torch.complex64: "c10::complex<float>",
                   torch.complex128: "c10::complex<double>"}


def check_conv1d(input, weight, bias, padding, groups):
    """F.conv1d's checks that precede what the op sees, in its order (at::conv1d, at::_convolution_mode,
    the start of at::_convolution): the bias dtype (for int padding), the input's dims (unbatched inputs
    are unsqueezed before the op), the padding string, and the weight's dims and groups (PyTorch checks
    them before it expands stride / padding / dilation to the weight's spatial dims, which Python does
    here). The op checks the weight's dims and groups again for its direct callers."""
    if not isinstance(padding, str) and bias is not None and bias.dtype != input.dtype:
        names = [_CPP_TYPE_NAMES.get(t.dtype, str(t.dtype)) for t in (input, bias)]
        raise RuntimeError(f"Input type ({names[0]}) and bias type ({names[1]}) should be the same")
    if input.dim() not in (2, 3):
        raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: "
                           f"{list(input.shape)}")
    if isinstance(padding, str) and padding not in ("same", "valid"):
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    if weight.dim() < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def resolve_same_padding(input, weight, stride, dilation):
    """(pad_left, pad_right) of padding='same' on a batched input, after PyTorch's checks of it
    (at::_convolution_same, in its order: its dims message differs from the op's). Both sides go to the
    op, so even kernel spans need no padded copy."""
    if weight.dim() != input.dim():
        raise RuntimeError(f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional weight"
                           f"{list(weight.shape)}, but got {input.dim()}-dimensional input of size "
                           f"{list(input.shape)} instead")
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) != 1:
            raise RuntimeError(f"{name} cannot broadcast to 1 dimensions")
    if stride[0] != 1:
        raise RuntimeError(_SAME_STRIDED)
    return same_padding(weight.shape[2], dilation[0])


# ---- conv1d_ext.conv_transpose1d: F.conv_transpose1d's checks ---------------------------------------------


def check_conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """F.conv_transpose1d's argument checks, with its exception types (RuntimeError), wording and order.
    All of them run here: the op conv1d_backward_input sees a different problem (output_padding is
    resolved into its input_len and pad_right, the weight is its forward's) and words its errors as
    conv1d_ext's."""
    if input.dim() not in (2, 3):
        raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv_transpose1d, but got input "
                           f"of size: {list(input.shape)}")
    if weight.dim() != 3:
        raise RuntimeError("conv1d_ext.conv_transpose1d: expected a 3-D weight (in_channels, "
                           f"out_channels/groups, kernel_size), but got weight of size {list(weight.shape)}")
    for name, value in (("stride", stride), ("dilation", dilation), ("groups", groups)):
        if value <= 0:
            raise RuntimeError(f"non-positive {name} is not supported")
    if padding < 0:
        raise RuntimeError("negative padding is not supported")
    if output_padding < 0:
        raise RuntimeError("negative output_padding is not supported")
    if output_padding >= max(stride, dilation):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                           f"output_padding: {output_padding}, stride: {stride}, dilation: {dilation}")
    tensors = [("Input", input), ("weight", weight)] + ([("bias", bias)] if bias is not None else [])
    for name, t in tensors:
        if t.dtype not in FLOATING:
            raise RuntimeError(f"conv1d_ext.conv_transpose1d: {name} must be float32, float64, float16 or "
                               f"bfloat16, but got {t.dtype}")
    for name, t in tensors[1:]:
        if t.dtype != input.dtype:
            raise RuntimeError(f"Input type ({input.dtype}) and {name} type ({t.dtype}) should be the same")
        if t.device != input.device:
            raise RuntimeError(f"Expected input and {name} to be on the same device, but found input on "
                               f"{input.device} and {name} on {t.device}")
    in_channels, out_per_group, kernel_size = weight.shape
    if in_channels < groups or in_channels % groups:
        what = f"at least {groups}" if in_channels < groups else f"divisible by {groups}"
        raise RuntimeError(f"Given groups={groups}, expected weight to be {what} at dimension 0, but got "
                           f"weight of size {list(weight.shape)} instead")
    if input.shape[-2] != in_channels:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input"
                           f"{list(input.shape)} to have {in_channels} channels, but got {input.shape[-2]} "
                           f"channels instead")
    if kernel_size == 0:
        raise RuntimeError(f"conv1d_ext.conv_transpose1d: kernel_size must be positive, but got weight of "
                           f"size {list(weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != out_per_group * groups):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {out_per_group * groups} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    batch = input.shape[0] if input.dim() == 3 else 1
    in_len = input.shape[-1]
    if in_len == 0 and batch != 0:
        raise RuntimeError("Only zero batch or zero channel inputs are supported, but got input shape: "
                           f"{list(input.shape)}")
    out_len = transposed_out_len(in_len, kernel_size, stride, padding, padding, output_padding, dilation)
    if isinstance(out_len, int) and out_len > _INT64_MAX:
        # Python computes it exactly; F.conv_transpose1d's int64 (or, for stride and dilation, int32)
        # arithmetic wraps instead
        raise RuntimeError(f"conv1d_ext.conv_transpose1d: the output length {out_len} overflows int64 (input "
                           f"size per channel {in_len}, stride {stride}, padding {padding}, dilation {dilation}, "
                           f"kernel size {kernel_size})")
    if out_len < 0:
        raise RuntimeError(f"Given input size per channel: ({in_len}). Calculated output size per channel: "
                           f"({out_len}). Output size is too small")


def check_transposed_padding_mode(padding_mode):
    """nn.ConvTranspose1d.forward's check (ConvTranspose1dExt and StreamingConvTranspose1d make it too)."""
    if padding_mode != "zeros":
        raise ValueError("Only `zeros` padding mode is supported for ConvTranspose1d")


# ---- conv1d_ext.arithmetic: the modules' constructor checks (ValueError / TypeError) ------------------------


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def module_int(name, value):
    """An int from an int or a 1-element tuple/list (how modules store them); bools and floats are
    TypeErrors, as in PyTorch."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise _not_one_value(name, list(value), 1, ValueError)
        value = value[0]
    if isinstance(value, bool):
        raise TypeError(f"argument '{name}' must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"argument '{name}' must be an int, not {type(value).__name__}") from None


def positive(name, value, message=None):
    """A module_int that must be > 0; ``message`` is PyTorch's wording (default: '<name> must be positive')."""
    value = module_int(name, value)
    if value <= 0:
        raise ValueError(f"{message or f'{name} must be positive'}, but got {name}={value}")
    return value


def non_negative(name, value):
    value = module_int(name, value)
    if value < 0:
        raise ValueError(f"negative {name} is not supported, but got {name}={value}")
    return value


def check_module_numbers(kernel_size, stride, dilation, groups, in_channels, out_channels, output_padding,
                         padding_mode, transposed):
    """nn.Conv1d's / nn.ConvTranspose1d's constructor checks (and F.conv1d's for the numbers a constructor
    takes as given): the numbers as ints, in PyTorch's wording."""
    numbers = dict(kernel_size=positive("kernel_size", kernel_size, "kernel size should be greater than zero"),
                   stride=positive("stride", stride, "non-positive stride is not supported"),
                   dilation=positive("dilation", dilation, "dilation should be greater than zero"),
                   groups=positive("groups", groups, "non-positive groups is not supported"),
                   in_channels=positive("in_channels", in_channels, "in_channels should be greater than zero"),
                   out_channels=positive("out_channels", out_channels, "out_channels should be greater than zero"),
                   output_padding=non_negative("output_padding", output_padding))
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {set(PADDING_MODES)}, but got padding_mode={padding_mode!r}")
    if transposed and padding_mode != "zeros":
        raise ValueError('Only "zeros" padding mode is supported for ConvTranspose1d')
    for name in ("in_channels", "out_channels"):
        if numbers[name] % numbers["groups"] != 0:
            raise ValueError(f"{name} must be divisible by groups, but got {name}={numbers[name]}, "
                             f"groups={numbers['groups']}")
    output_padding, stride, dilation = numbers["output_padding"], numbers["stride"], numbers["dilation"]
    if output_padding and not transposed:
        raise ValueError("output_padding is only for transposed convolutions (transposed=True)")
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output padding must be smaller than either stride or dilation, but got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    return numbers


def resolve_padding(padding, kernel_size, stride, dilation, transposed):
    """(pad_left, pad_right) of an int, 'same', 'valid' or (left, right) padding, as PyTorch resolves it."""
    if isinstance(padding, str):
        if transposed:
            raise ValueError(f"padding='{padding}' is not supported for transposed convolutions; give an int")
        if padding == "valid":
            return 0, 0
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
        if stride != 1:
            raise ValueError(_SAME_STRIDED)
        return same_padding(kernel_size, dilation)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if transposed:
            raise ValueError("a transposed convolution pads both ends alike: give padding as one int")
        return non_negative("padding", padding[0]), non_negative("padding", padding[1])
    pad = non_negative("padding", padding)
    return pad, pad


def check_padding_fits(padding_mode, pad_left, pad_right, length):
    """Reflect and circular padding copy inputs, so PyTorch needs enough of them (F.pad's errors)."""
    widest = max(pad_left, pad_right)
    if padding_mode == "reflect" and widest >= length:
        raise ValueError(f"Padding size should be less than the corresponding input dimension, but got: padding "
                         f"({pad_left}, {pad_right}) for an input of length {length}")
    if padding_mode == "circular" and widest > length:
        raise ValueError("Padding value causes wrapping around more than once.")


def too_short_message(transposed, length, out_len, pad_left, pad_right, kernel_span):
    """PyTorch's message for an input too short to give any output."""
    if transposed:
        return (f"Given input size per channel: (1 x {length}). Calculated output size per channel: "
                f"(1 x {out_len}). Output size is too small")
    return (f"Calculated padded input size per channel: ({length + pad_left + pad_right}). Kernel size: "
            f"({kernel_span}). Kernel size can't be greater than actual input size")
