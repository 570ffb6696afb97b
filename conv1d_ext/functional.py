"""conv1d_ext.conv1d and conv1d_ext.conv_transpose1d: torch.nn.functional.conv1d's and conv_transpose1d's
interfaces and semantics on this project's kernels."""

import torch
import torch.nn.functional as F

from . import _conv_ops
from ._geometry import (
    CONV_TRANSPOSE1D_SIGNATURE,
    check_conv1d,
    check_conv_transpose1d,
    check_tensors,
    expand,
    index,
    ints,
    resolve_same_padding,
    single,
    transposed_geometry,
)

__all__ = ["conv1d", "conv_transpose1d"]


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
    check_tensors("conv1d", input, weight, bias)
    input, weight, bias = _conv_ops.autocast(input, weight, bias)  # first, like PyTorch's autocast kernel
    stride = ints("stride", stride)
    dilation = ints("dilation", dilation)
    groups = index("groups", groups)
    if not isinstance(padding, str):
        padding = ints("padding", padding)

    # From here on the checks follow F.conv1d's order (at::conv1d, at::_convolution_mode, at::_convolution;
    # the op makes the rest: csrc/core/op_common.h), so a call with several problems reports PyTorch's message.
    check_conv1d(input, weight, bias, padding, groups)
    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        pad_left, pad_right = resolve_same_padding(input, weight, stride, dilation) if padding == "same" else (0, 0)
    spatial_dims = weight.dim() - 2
    stride = expand("stride", stride, spatial_dims)
    if not isinstance(padding, str):
        pad_left = pad_right = expand("padding", padding, spatial_dims)
    dilation = expand("dilation", dilation, spatial_dims)
    output = _conv_ops.conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups)
    return output.squeeze(0) if unbatched else output


# ---------------------------------------------------------------------------------------------------
# conv_transpose1d
# ---------------------------------------------------------------------------------------------------


def _conv_transpose1d_3d(ops, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """conv_transpose1d of checked arguments, batched (N, C_in, L) input, on the op set `ops` (anything with
    a conv1d_backward_input: conv1d_ext._conv_ops, which also serves torch.func, or an op namespace)."""
    out_len, input_len, pad_right, trailing_zeros = transposed_geometry(
        input.shape[2], weight.shape[2], stride, padding, output_padding, dilation)
    output = ops.conv1d_backward_input(input, weight, input_len, stride, padding, pad_right, dilation, groups)
    if trailing_zeros:
        output = F.pad(output, (0, trailing_zeros))
    if bias is not None:
        # In place on the fresh result: no second output-sized tensor. Autograd gives bias its gradient
        # (the sum over batch and length) and the op's registered backward the rest.
        output.add_(bias[:, None])
    return output


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
    check_tensors("conv_transpose1d", input, weight, bias)
    stride, padding, output_padding, dilation = (
        single(arg, value, CONV_TRANSPOSE1D_SIGNATURE) for arg, value in
        (("stride", stride), ("padding", padding), ("output_padding", output_padding), ("dilation", dilation)))
    groups = index("groups", groups, CONV_TRANSPOSE1D_SIGNATURE)
    input, weight, bias = _conv_ops.autocast(input, weight, bias)  # on PyTorch's autocast list like conv1d
    check_conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups, dilation)

    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(0)
    in_len = input.shape[2]
    if in_len == 0:  # only with an empty batch (checked): compute on one (empty) zero position, then crop
        input = F.pad(input, (0, 1))
    output = _conv_transpose1d_3d(_conv_ops, input, weight, bias, stride, padding, output_padding, groups,
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
