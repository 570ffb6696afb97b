"""Conv1dExt and ConvTranspose1dExt, drop-in nn.Conv1d and nn.ConvTranspose1d running conv1d_ext's kernels,
and the model conversion helpers."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from ._geometry import check_transposed_padding_mode
from .functional import conv1d, conv_transpose1d

__all__ = ["Conv1dExt", "ConvTranspose1dExt", "convert_conv1d", "convert_convs"]


class Conv1dExt(nn.Conv1d):
    r"""nn.Conv1d whose forward and backward run conv1d_ext's own kernels.

    Everything else *is* nn.Conv1d: the same constructor and defaults
    ``(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
    padding_mode='zeros', device=None, dtype=None)``, the same ValueErrors, parameters ``weight``
    ``(out_channels, in_channels // groups, kernel_size)`` and ``bias`` ``(out_channels,)`` with the same
    initialisation, the same ``state_dict`` keys (loadable both ways with nn.Conv1d) and ``extra_repr``.
    ``isinstance(m, nn.Conv1d)`` is True, so code that walks a model by type still finds it.

    Padding modes other than ``'zeros'`` pad the input with F.pad first, exactly as nn.Conv1d does;
    zero padding (including ``'same'`` with an even kernel span) is done inside the kernels, no copy.
    """

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv1d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv1d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)

    @classmethod
    def from_conv1d(cls, conv, *, copy=False):
        r"""A Conv1dExt computing the same function as ``conv`` (an nn.Conv1d).

        By default the new module **shares** ``conv``'s Parameter objects: no memory is copied, and an
        optimizer built on ``conv.parameters()`` keeps training the new module. With ``copy=True`` the
        parameters are cloned (independent storage). Either way device, dtype, ``requires_grad`` and the
        training flag are those of ``conv``. Hooks registered on ``conv`` are not carried over; to convert
        modules in place, keeping identity, hooks and parametrizations, use :func:`convert_conv1d`.
        """
        return _from_module(cls, conv, nn.Conv1d, "from_conv1d", copy)


class ConvTranspose1dExt(nn.ConvTranspose1d):
    r"""nn.ConvTranspose1d whose forward and backward run conv1d_ext's own kernels (see
    :func:`conv1d_ext.conv_transpose1d`).

    Everything else *is* nn.ConvTranspose1d: the same constructor and defaults
    ``(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True,
    dilation=1, padding_mode='zeros', device=None, dtype=None)``, the same errors, parameters ``weight``
    ``(in_channels, out_channels // groups, kernel_size)`` and ``bias`` ``(out_channels,)`` with the same
    initialisation, the same ``state_dict`` keys (loadable both ways with nn.ConvTranspose1d) and
    ``extra_repr``, and ``forward(input, output_size=None)`` (``output_size`` picks the output padding
    through nn.ConvTranspose1d's own ``_output_padding``). ``isinstance(m, nn.ConvTranspose1d)`` is True.
    """

    def forward(self, input, output_size=None):
        check_transposed_padding_mode(self.padding_mode)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              1, self.dilation)
        return conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                self.groups, self.dilation)

    @classmethod
    def from_conv_transpose1d(cls, conv, *, copy=False):
        r"""A ConvTranspose1dExt computing the same function as ``conv`` (an nn.ConvTranspose1d); shares
        (default) or copies its Parameters, like :meth:`Conv1dExt.from_conv1d`. To convert modules in
        place, keeping identity, hooks and parametrizations, use :func:`convert_convs`."""
        return _from_module(cls, conv, nn.ConvTranspose1d, "from_conv_transpose1d", copy)


def _from_module(cls, conv, base, method, copy):
    """A new `cls` with `conv`'s configuration and (shared or copied) Parameters: from_conv1d and
    from_conv_transpose1d."""
    where = f"{cls.__name__}.{method}"
    if not isinstance(conv, base):
        raise TypeError(f"{where} expects an nn.{base.__name__}, got {type(conv).__name__}")
    if is_lazy(conv.weight) or (conv.bias is not None and is_lazy(conv.bias)):
        raise ValueError(f"{where}: the lazy module's parameters are not initialised yet; run one forward "
                         "pass first")
    if torch.nn.utils.parametrize.is_parametrized(conv):
        raise ValueError(f"{where}: conv has parametrizations (e.g. weight_norm); use "
                         "conv1d_ext.convert_convs(module), which converts it in place keeping them")
    if not isinstance(conv.weight, nn.Parameter):
        raise ValueError(f"{where}: conv.weight is not a Parameter (computed by a hook, e.g. the old "
                         "torch.nn.utils.weight_norm); use conv1d_ext.convert_convs(module), which converts "
                         "it in place keeping its hooks")
    kwargs = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, padding_mode=conv.padding_mode)
    if conv.transposed:
        kwargs["output_padding"] = conv.output_padding
    # On the meta device: no memory and no initialisation for parameters that are replaced right after.
    new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, **kwargs, device="meta",
              dtype=conv.weight.dtype)
    for name in ("weight", "bias"):
        param = getattr(conv, name)
        if param is not None and copy:
            param = nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
        setattr(new, name, param)
    new.train(conv.training)
    return new


# What each PyTorch class becomes when converted.
_EXT_CLASSES = {nn.Conv1d: Conv1dExt, nn.ConvTranspose1d: ConvTranspose1dExt}

# Parametrized modules (torch.nn.utils.parametrize, e.g. parametrizations.weight_norm) have a generated
# class, e.g. `ParametrizedConv1d(nn.Conv1d)`, that carries the parametrized properties. Converting one
# gives it the same generated class on top of the Ext class; one such class per source class.
_parametrized_classes = {}


def _parametrized_ext_class(param_cls, ext_cls):
    new_cls = _parametrized_classes.get(param_cls)
    if new_cls is None:
        namespace = {k: v for k, v in vars(param_cls).items() if k not in ("__dict__", "__weakref__")}
        new_cls = type(f"Parametrized{ext_cls.__name__}", (ext_cls,), namespace)
        _parametrized_classes[param_cls] = new_cls
    return new_cls


def _target_class(module, sources):
    """The class a module becomes when converted, or None to leave it alone. `sources`: the PyTorch
    classes to convert (nn.Conv1d and/or nn.ConvTranspose1d)."""
    cls = type(module)
    if cls in sources:
        return _EXT_CLASSES[cls]
    if torch.nn.utils.parametrize.is_parametrized(module) and len(cls.__bases__) == 1:
        base = cls.__bases__[0]
        if base in sources and cls.__name__ == f"Parametrized{base.__name__}":
            return _parametrized_ext_class(cls, _EXT_CLASSES[base])
    return None


def _convert(model, sources):
    for module in model.modules():
        target = _target_class(module, sources)
        if target is not None:
            module.__class__ = target
    return model


def convert_convs(model):
    r"""Make every plain ``nn.Conv1d`` inside ``model`` (``model`` itself included) a :class:`Conv1dExt`
    and every plain ``nn.ConvTranspose1d`` a :class:`ConvTranspose1dExt`, in place, and return ``model``.

    The conversion changes only the modules' class: each stays the same object with the same Parameters,
    buffers, hooks, parametrizations (e.g. weight_norm, both torch.nn.utils.parametrizations.weight_norm
    and the older hook-based torch.nn.utils.weight_norm), device, dtype and training flag, so optimizers
    and anything else holding references keep working, and state_dict keys do not change.

    Modules left alone: those converted already, and subclasses of nn.Conv1d / nn.ConvTranspose1d (their
    forward may differ from PyTorch's, e.g. quantization-aware or lazy modules) except the generated class
    of a parametrized one. Nothing is recompiled: call it before ``torch.compile``.
    """
    return _convert(model, (nn.Conv1d, nn.ConvTranspose1d))


def convert_conv1d(model):
    r"""Make every plain ``nn.Conv1d`` inside ``model`` (``model`` itself included) a :class:`Conv1dExt`,
    in place, and return ``model``; nn.ConvTranspose1d modules stay PyTorch's.

    Kept as it always was (Conv1d only, as its name says); :func:`convert_convs` converts transposed
    convolutions too and is otherwise the same (identity, hooks, parametrizations kept; subclasses left
    alone; call it before ``torch.compile``).
    """
    return _convert(model, (nn.Conv1d,))
