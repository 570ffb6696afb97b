"""Conv1dExt, a drop-in nn.Conv1d running conv1d_ext's kernels, and the model conversion helper."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from .functional import conv1d

__all__ = ["Conv1dExt", "convert_conv1d"]


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
        if not isinstance(conv, nn.Conv1d):
            raise TypeError(f"Conv1dExt.from_conv1d expects an nn.Conv1d, got {type(conv).__name__}")
        if is_lazy(conv.weight) or (conv.bias is not None and is_lazy(conv.bias)):
            raise ValueError("Conv1dExt.from_conv1d: the LazyConv1d's parameters are not initialised yet; "
                             "run one forward pass first")
        if torch.nn.utils.parametrize.is_parametrized(conv):
            raise ValueError("Conv1dExt.from_conv1d: conv has parametrizations (e.g. weight_norm); use "
                             "conv1d_ext.convert_conv1d(module), which converts it in place keeping them")
        if not isinstance(conv.weight, nn.Parameter):
            raise ValueError("Conv1dExt.from_conv1d: conv.weight is not a Parameter (computed by a hook, "
                             "e.g. the old torch.nn.utils.weight_norm); use conv1d_ext.convert_conv1d("
                             "module), which converts it in place keeping its hooks")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, padding_mode=conv.padding_mode, device="meta",
                  dtype=conv.weight.dtype)
        for name in ("weight", "bias"):
            param = getattr(conv, name)
            if param is not None and copy:
                param = nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
            setattr(new, name, param)
        new.train(conv.training)
        return new


# Parametrized nn.Conv1d modules (torch.nn.utils.parametrize, e.g. parametrizations.weight_norm) have a
# generated class `ParametrizedConv1d(nn.Conv1d)` that carries the parametrized properties. Converting one
# gives it the same generated class on top of Conv1dExt; one such class per source class.
_parametrized_classes = {}


def _parametrized_conv1d_ext_class(param_cls):
    new_cls = _parametrized_classes.get(param_cls)
    if new_cls is None:
        namespace = {k: v for k, v in vars(param_cls).items() if k not in ("__dict__", "__weakref__")}
        new_cls = type(f"Parametrized{Conv1dExt.__name__}", (Conv1dExt,), namespace)
        _parametrized_classes[param_cls] = new_cls
    return new_cls


def _target_class(module):
    """The class a module becomes when converted, or None to leave it alone."""
    cls = type(module)
    if cls is nn.Conv1d:
        return Conv1dExt
    if (torch.nn.utils.parametrize.is_parametrized(module) and cls.__bases__ == (nn.Conv1d,)
            and cls.__name__ == "ParametrizedConv1d"):
        return _parametrized_conv1d_ext_class(cls)
    return None


def convert_conv1d(model):
    r"""Make every plain ``nn.Conv1d`` inside ``model`` (``model`` itself included) a :class:`Conv1dExt`,
    in place, and return ``model``.

    The conversion changes only the modules' class: each stays the same object with the same Parameters,
    buffers, hooks, parametrizations (e.g. weight_norm), device, dtype and training flag, so optimizers
    and anything else holding references keep working, and state_dict keys do not change.

    Modules left alone: Conv1dExt already, and subclasses of nn.Conv1d (their forward may differ from
    nn.Conv1d's, e.g. quantization-aware or lazy modules) except the generated class of a parametrized
    nn.Conv1d. Nothing is recompiled: call it before ``torch.compile``.
    """
    for module in model.modules():
        target = _target_class(module)
        if target is not None:
            module.__class__ = target
    return model
