"""conv1d_ext.conv1d and conv1d_ext.conv_transpose1d: torch.nn.functional.conv1d's and conv_transpose1d's
interfaces and semantics on this project's kernels."""

import operator

import torch
import torch.nn.functional as F

from . import _ops

__all__ = ["conv1d", "conv_transpose1d"]

_SIGNATURE = ("conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple = 1, "
              "padding: int | tuple | str = 0, dilation: int | tuple = 1, groups: int = 1)")


def _bad_argument(name, value, signature=_SIGNATURE):
    function = signature.split("(", 1)[0]
    return TypeError(f"conv1d_ext.{function}(): argument '{name}' must be an int or a tuple of 1 int, but "
                     f"got {type(value).__name__} ({value!r}); expected {signature}")


def _index(name, value, signature=_SIGNATURE):
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


def _single(name, value, signature=_SIGNATURE):
    """stride / padding / dilation: an int or a sequence of exactly one int (F.conv1d's rule)."""
    if isinstance(value, (tuple, list)) or (isinstance(value, torch.Tensor) and value.dim() == 1):
        values = [_index(name, v, signature) for v in value]
        if len(values) != 1:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 1 values to match "
                               f"the convolution dimensions, but got {name}={values}")
        return values[0]
    return _index(name, value, signature)


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


def _fx_traced(fn, args):
    """Under torch.fx.symbolic_trace, the node calling ``fn`` (else None). FX walks into any module outside
    torch.nn (nn.Conv1d itself is a leaf), so these functions see Proxies there: record one call."""
    for a in args:
        if isinstance(a, torch.fx.Proxy):
            return a.tracer.create_proxy("call_function", fn, args, {})
    return None


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
    traced = _fx_traced(conv1d, (input, weight, bias, stride, padding, dilation, groups))
    if traced is not None:
        return traced
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


# ---------------------------------------------------------------------------------------------------
# conv_transpose1d
# ---------------------------------------------------------------------------------------------------

_TRANSPOSE_SIGNATURE = ("conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, "
                        "stride: int | tuple = 1, padding: int | tuple = 0, output_padding: int | tuple = 0, "
                        "groups: int = 1, dilation: int | tuple = 1)")
_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_INT64_MAX = 2**63 - 1


def _transposed_geometry(in_len, kernel_size, stride, padding, output_padding, dilation):
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
    full = (in_len - 1) * stride + dilation * (kernel_size - 1) + 1
    out_len = full - 2 * padding + output_padding
    appended = output_padding - padding
    if appended <= 0:
        return out_len, out_len, -appended, 0
    trailing_zeros = max(0, appended - (stride - 1))
    return out_len, out_len - trailing_zeros, 0, trailing_zeros


def _conv_transpose1d_3d(ops, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """conv_transpose1d of checked arguments, batched (N, C_in, L) input, on the op set `ops` (anything with
    a conv1d_backward_input: conv1d_ext._ops, which also serves torch.func, or an op namespace)."""
    out_len, input_len, pad_right, trailing_zeros = _transposed_geometry(
        input.shape[2], weight.shape[2], stride, padding, output_padding, dilation)
    output = ops.conv1d_backward_input(input, weight, input_len, stride, padding, pad_right, dilation, groups)
    if trailing_zeros:
        output = F.pad(output, (0, trailing_zeros))
    if bias is not None:
        # In place on the fresh result: no second output-sized tensor. Autograd gives bias its gradient
        # (the sum over batch and length) and the op's registered backward the rest.
        output.add_(bias[:, None])
    return output


def _check_transposed(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """F.conv_transpose1d's argument checks, with its exception types (RuntimeError) and wording."""
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
        if t.dtype not in _FLOATING:
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
    out_len = _transposed_geometry(in_len, kernel_size, stride, padding, output_padding, dilation)[0]
    if isinstance(out_len, int) and out_len > _INT64_MAX:
        # Python computes it exactly; F.conv_transpose1d's int64 (or, for stride and dilation, int32)
        # arithmetic wraps instead
        raise RuntimeError(f"conv1d_ext.conv_transpose1d: the output length {out_len} overflows int64 (input "
                           f"size per channel {in_len}, stride {stride}, padding {padding}, dilation {dilation}, "
                           f"kernel size {kernel_size})")
    if out_len < 0:
        raise RuntimeError(f"Given input size per channel: ({in_len}). Calculated output size per channel: "
                           f"({out_len}). Output size is too small")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""1D transposed convolution ("deconvolution", the upsampling layer of vocoders and codec decoders)
    over an input of shape (N, C_in, L_in) or unbatched (C_in, L_in).

    Same arguments, result, gradients (including double backward) and errors as
    :func:`torch.nn.functional.conv_transpose1d`; the arithmetic runs in conv1d_ext's own kernels: the
    forward is the op ``conv1d_backward_input`` (a transposed convolution is the input gradient of a
    convolution), so autograd, double backward and torch.compile come from that op's registration.

    Args:
        input: (N, C_in, L_in) or (C_in, L_in), float32 / float64 / float16 / bfloat16.
        weight: (C_in, C_out / groups, K), same dtype and device as ``input``.
        bias: optional (C_out,).
        stride, dilation: int or 1-tuple, > 0.
        padding: int or 1-tuple >= 0: ``dilation * (K - 1) - padding`` zeros of implicit padding on
            both sides of the input; i.e. ``padding`` outputs are cropped at each end.
        output_padding: int or 1-tuple, 0 <= output_padding < max(stride, dilation): extra outputs at the
            end (disambiguates the length when stride > 1).
        groups: int > 0 dividing C_in.

    Output length: (L_in − 1)·stride − 2·padding + dilation·(K − 1) + output_padding + 1.

    Unlike F.conv_transpose1d, integer and complex dtypes are not supported (RuntimeError). With a bias,
    float16/bfloat16 outputs are rounded twice (the convolution, then the sum with the bias), where
    PyTorch's kernels may round once: a difference of at most one more rounding of the convolution.
    """
    traced = _fx_traced(conv_transpose1d, (input, weight, bias, stride, padding, output_padding, groups, dilation))
    if traced is not None:
        return traced
    for arg, value in (("input", input), ("weight", weight)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"conv1d_ext.conv_transpose1d(): argument '{arg}' must be Tensor, not "
                            f"{type(value).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv1d_ext.conv_transpose1d(): argument 'bias' must be Tensor or None, not "
                        f"{type(bias).__name__}")
    stride, padding, output_padding, dilation = (
        _single(arg, value, _TRANSPOSE_SIGNATURE) for arg, value in
        (("stride", stride), ("padding", padding), ("output_padding", output_padding), ("dilation", dilation)))
    groups = _index("groups", groups, _TRANSPOSE_SIGNATURE)
    input, weight, bias = _ops.autocast(input, weight, bias)  # on PyTorch's autocast list like conv1d
    _check_transposed(input, weight, bias, stride, padding, output_padding, groups, dilation)

    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    in_len = input.shape[2]
    if in_len == 0:  # only with an empty batch (checked): compute on one (empty) zero position, then crop
        input = F.pad(input, (0, 1))
    output = _conv_transpose1d_3d(_ops, input, weight, bias, stride, padding, output_padding, groups,
                                  dilation)
    if in_len == 0:
        output = output[:, :, :output.shape[2] - stride]
    return output.squeeze(0) if unbatched else output


def _not_scriptable():
    raise RuntimeError("conv1d_ext does not support torch.jit.script (TorchScript is deprecated in PyTorch): use "
                       "torch.compile, or torch.export / torch.onnx.export(..., dynamo=True) to deploy")


# torch.jit.script calls this on the function, and on every function a scripted module's forward calls,
# before compiling it: a clear error instead of one about Python constructs deep inside.
conv1d.__prepare_scriptable__ = _not_scriptable
conv_transpose1d.__prepare_scriptable__ = _not_scriptable
