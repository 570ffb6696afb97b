"""receptive_field(): which input positions each output of a 1D conv stack reads, per layer and
cumulative. The layers are found by running the model once with forward hooks; each is classified (conv,
pool, padding, pointwise, ...) and its SlidingWindow composed with the ones before it."""

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .._geometry import module_int, positive, span
from .plot import plot_receptive_field
from .spec import is_conv_module, spec_from_module
from .text import receptive_field_lines
from .window import IDENTITY, SlidingWindow, Window

__all__ = ["ALONG_DIM", "NOT_A_WINDOW", "PADDING", "POINTWISE", "POOLING", "TIME_STATISTICS_NORMS", "LayerKind",
           "LayerReceptiveField", "ReceptiveField", "ReceptiveFieldWarning", "classify", "is_known",
           "receptive_field"]

# ---- receptive_field(): which layers keep, slide or lose positions -------------------------------------------------

# Layers that compute each time step from the same time step only.
POINTWISE = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Threshold, nn.ReLU,
             nn.RReLU, nn.Hardtanh, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.SiLU, nn.Mish, nn.Hardswish,
             nn.ELU, nn.CELU, nn.SELU, nn.GLU, nn.GELU, nn.Hardshrink, nn.LeakyReLU, nn.LogSigmoid, nn.Softplus,
             nn.Softshrink, nn.PReLU, nn.Softsign, nn.Tanhshrink, nn.BatchNorm1d, nn.SyncBatchNorm,
             nn.LocalResponseNorm)
# Softmax-like layers: pointwise in time unless their dim is the time axis.
ALONG_DIM = (nn.Softmax, nn.Softmin, nn.LogSoftmax)
# Norms whose statistics run over time: every output depends a little on every input. Receptive fields, by
# convention, leave them out, as they do a BatchNorm's batch statistics; the report says so.
TIME_STATISTICS_NORMS = (nn.InstanceNorm1d, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)
PADDING = (nn.ConstantPad1d, nn.ReflectionPad1d, nn.ReplicationPad1d, nn.CircularPad1d)
POOLING = (nn.MaxPool1d, nn.AvgPool1d, nn.LPPool1d)
# Layers that mix or resample time in ways no fixed window describes.
NOT_A_WINDOW = {
    nn.Linear: "acts on the last axis, which is time in the (N, C, L) layout: every output reads every input",
    nn.Bilinear: "acts on the last axis, which is time in the (N, C, L) layout",
    nn.RNNBase: "recurrent: each output depends on all earlier steps",
    nn.MultiheadAttention: "attention: every output may read every input",
    nn.TransformerEncoderLayer: "attention: every output may read every input",
    nn.TransformerDecoderLayer: "attention: every output may read every input",
    nn.TransformerEncoder: "attention: every output may read every input",
    nn.TransformerDecoder: "attention: every output may read every input",
    nn.Transformer: "attention: every output may read every input",
    nn.AdaptiveAvgPool1d: "adaptive pooling: its windows depend on the input length",
    nn.AdaptiveMaxPool1d: "adaptive pooling: its windows depend on the input length",
    nn.Upsample: "resamples time (interpolation)",
    nn.Flatten: "reshapes: time is no longer the last axis",
    nn.Unflatten: "reshapes the tensor",
    nn.Conv2d: "not a 1D layer", nn.Conv3d: "not a 1D layer", nn.ConvTranspose2d: "not a 1D layer",
    nn.ConvTranspose3d: "not a 1D layer", nn.MaxPool2d: "not a 1D layer", nn.AvgPool2d: "not a 1D layer",
    nn.MaxUnpool1d: "unpooling: where each value goes depends on the pooling indices",
}


def is_known(module):
    """Whether receptive_field() treats ``module`` as one layer, without looking inside it."""
    known = (POINTWISE + ALONG_DIM + TIME_STATISTICS_NORMS + PADDING + POOLING + tuple(NOT_A_WINDOW))
    return is_conv_module(module) or isinstance(module, known)


@dataclass(frozen=True)
class LayerKind:
    """How one layer moves positions: ``kind`` is 'conv', 'conv_transpose', 'pool', 'pad', 'pointwise',
    'norm', 'assumed pointwise' or 'unknown'; ``geometry`` is set for the sliding-window kinds."""

    kind: str
    geometry: SlidingWindow | None = None
    note: str = ""


def _padding_note(mode):
    return "" if mode in ("zeros", "constant") else f"{mode} padding: the padding cells copy inputs"


def _pad_module_mode(module):
    for cls, mode in ((nn.ReflectionPad1d, "reflect"), (nn.ReplicationPad1d, "replicate"),
                      (nn.CircularPad1d, "circular")):
        if isinstance(module, cls):
            return mode
    return "constant"


def _pool_geometry(module):
    stride = module.stride if module.stride is not None else module.kernel_size  # LPPool1d's default
    return SlidingWindow(kernel_size=module_int("kernel_size", module.kernel_size), stride=module_int("stride", stride),
                         dilation=module_int("dilation", getattr(module, "dilation", 1)),
                         pad_left=module_int("padding", getattr(module, "padding", 0)),
                         pad_right=module_int("padding", getattr(module, "padding", 0)), ceil_mode=module.ceil_mode)


def _conv_kind(module, in_length, out_length):
    spec = spec_from_module(module)
    geometry = spec.geometry
    expected = geometry.out_len(in_length)
    if spec.transposed:
        # forward(x, output_size=…) picks another output_padding; the positions stay the same.
        extra = out_length - geometry.out_len(in_length) + geometry.output_padding
        if 0 <= extra < max(spec.stride, spec.dilation):
            return LayerKind("conv_transpose", SlidingWindow(**{**geometry.__dict__, "output_padding": extra}))
    elif out_length == expected:
        return LayerKind("conv", geometry, _padding_note(spec.padding_mode))
    return LayerKind("unknown", note=f"its output length {out_length} is not the conv arithmetic's {expected} "
                                     "(a custom forward?)")


def _checked(kind, geometry, in_length, out_length, note=""):
    """A LayerKind after checking the observed output length against the layer's arithmetic."""
    expected = geometry.out_len(in_length) if geometry is not None else in_length
    if out_length != expected:
        return LayerKind("unknown", note=f"its output length {out_length} is not the expected {expected}")
    return LayerKind(kind, geometry, note)


def classify(module, in_length, out_length, in_ndim):
    """The LayerKind of one call of ``module`` that turned ``in_length`` time steps into ``out_length``."""
    if in_length is None or out_length is None:
        return LayerKind("unknown", note="its input or output is not a tensor")
    if is_conv_module(module):
        return _conv_kind(module, in_length, out_length)
    if isinstance(module, POOLING):
        return _checked("pool", _pool_geometry(module), in_length, out_length)
    if isinstance(module, PADDING):
        left, right = module.padding
        geometry = SlidingWindow(kernel_size=1, pad_left=left, pad_right=right)
        return _checked("pad", geometry, in_length, out_length, _padding_note(_pad_module_mode(module)))
    if isinstance(module, ALONG_DIM):
        if module.dim is None or module.dim % in_ndim == in_ndim - 1:
            return LayerKind("unknown", note="normalises along time (dim is the last axis or implicit)")
        return _checked("pointwise", None, in_length, out_length)
    if isinstance(module, POINTWISE):
        return _checked("pointwise", None, in_length, out_length)
    if isinstance(module, TIME_STATISTICS_NORMS):
        return _checked("norm", None, in_length, out_length, "its statistics over time are left out")
    for cls, reason in NOT_A_WINDOW.items():
        if isinstance(module, cls):
            return LayerKind("unknown", note=reason)
    if out_length == in_length:
        return LayerKind("assumed pointwise", note="unrecognised; keeps the length, assumed not to mix time steps")
    return LayerKind("unknown", note=f"unrecognised; changes the length {in_length} → {out_length}")


# ---- receptive_field(): the stack, per layer and cumulative --------------------------------------------------------

class ReceptiveFieldWarning(UserWarning):
    """receptive_field() met a layer it cannot describe, or assumed one keeps positions."""


def _window_part(window, part):
    """A read-only property: ``part`` (size, hop, offset, lookahead) of the Window in attribute ``window``, or
    None while that is None (unknown)."""
    return property(lambda self: None if getattr(self, window) is None else getattr(getattr(self, window), part))


@dataclass(frozen=True)
class LayerReceptiveField:
    """One layer call in forward order: what it does to positions, alone (``size``, ``hop``, ``offset``,
    None when unknown) and together with everything before it (``cumulative``, None once any layer up to
    here is unknown). ``name`` is the module's path in the model."""

    index: int
    name: str
    type_name: str
    kind: str
    in_length: int | None
    out_length: int | None
    geometry: SlidingWindow | None  # None for layers that keep positions (and unknown ones)
    window: Window | None
    cumulative: Window | None
    note: str = ""
    fed_by_previous: bool = True  # False: its input is not the previous layer's output but computed in forward()

    size = _window_part("window", "size")
    hop = _window_part("window", "hop")
    offset = _window_part("window", "offset")


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of a model's output: output t reads inputs ``offset + t·hop`` … ``offset + t·hop
    + size − 1`` (positions < 0 or >= ``length`` are padding), and ``lookahead`` = offset + size − 1 is how
    far past its aligned input t·hop it reads (0 for a causal stack).

    ``size``, ``hop``, ``offset`` and ``lookahead`` are None when some layer is unknown (``complete`` is
    False); ``layers[i].cumulative`` still holds them up to the layer before it. With transposed convs the
    hop is a Fraction and the span bounds the inputs read (see :class:`Window`); ``input_span(t)`` is exact.
    """

    model_name: str
    length: int
    in_channels: int
    out_length: int | None
    layers: tuple

    @property
    def complete(self):
        """Whether every layer's effect on positions is known, so the cumulative numbers hold for the model."""
        return all(layer.cumulative is not None for layer in self.layers)

    @property
    def cumulative(self):
        if not self.complete:
            return None
        return self.layers[-1].cumulative if self.layers else IDENTITY

    size = _window_part("cumulative", "size")
    hop = _window_part("cumulative", "hop")
    offset = _window_part("cumulative", "offset")
    lookahead = _window_part("cumulative", "lookahead")

    @property
    def unknown_layers(self):
        return [layer for layer in self.layers if layer.kind == "unknown"]

    def window(self, t):
        """(first, last): the virtual input positions output t reads, offset + t·hop … + size − 1."""
        self._check_output(t)
        return self.cumulative.span(t)

    def input_span(self, t):
        """(first, last): the first and last real input positions (0 … length − 1) that output t depends on,
        found by following the exact taps of every layer back from output t; None if it depends on none
        (it reads padding only). Unlike ``window(t)`` this is exact also for transposed convs."""
        self._check_output(t)
        positions = {t}
        for layer in reversed(self.layers):
            if layer.geometry is not None:
                positions = _inputs_read(layer.geometry, positions, layer.in_length)
            if not positions:
                return None
        return min(positions), max(positions)

    def _check_output(self, t):
        if not self.complete:
            raise ValueError(f"the receptive field of {self.model_name} is unknown after layer "
                             f"{self.unknown_layers[0].name!r}; see .layers")
        if self.out_length is None:
            raise ValueError(f"the output of {self.model_name} is not a tensor with a time axis")
        if not 0 <= t < self.out_length:
            raise IndexError(f"output {t} out of range: the output has {self.out_length} positions")

    def __str__(self):
        return "\n".join(receptive_field_lines(self))

    def plot(self, path, output=None):
        """Draw the cone of ``output`` (default: the middle one) to ``path`` as a PNG and return ``path``: a row
        per conv / pool, input at the bottom, each cell placed over the inputs it reads, the positions the
        output depends on tinted and the padding it reads hatched. Needs matplotlib."""
        return plot_receptive_field(self, path, output)


def _inputs_read(geometry, outputs, in_length):
    """The positions of a layer's input (0 … in_length − 1) that the given outputs read."""
    read = set()
    for t in outputs:
        reads = geometry.inputs_of(t)
        if reads is not None:
            first, last, step = reads
            read.update(p for p in range(first, last + 1, step) if 0 <= p < in_length)
    return read


# Running the model once, with forward hooks on the layers, tells their order and the lengths they see.


@dataclass(frozen=True)
class _Call:
    """One call of a layer seen by a forward hook."""

    name: str
    module: nn.Module
    in_length: int | None
    out_length: int | None
    in_ndim: int
    fed_by_previous: bool  # its input is the previous layer's output (not something forward() computed)


def _first_tensor(values):
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (tuple, list)):
            found = _first_tensor(value)
            if found is not None:
                return found
    return None


def _layers_to_watch(model):
    """(name, module) of the modules treated as one layer each: known layers and leaves, not their insides."""
    watched, inside = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue
        if is_known(module) or next(module.children(), None) is None:
            watched.append((name, module))
            inside.append(f"{name}." if name else "")
    return watched


def _default_length(model):
    """An input length every layer accepts in any order: strides multiply, kernel spans add up (a bound, not
    the minimum), plus room for a few outputs."""
    hop, reach = 1, 8
    for module in model.modules():
        if isinstance(module, nn.ConvTranspose1d):
            reach += 2 * module.padding[0]
        elif isinstance(module, nn.Conv1d) or isinstance(module, POOLING):
            kernel, stride, dilation = (_as_int(getattr(module, name, 1)) for name in ("kernel_size", "stride",
                                                                                          "dilation"))
            stride = stride or kernel  # LPPool1d's stride=None
            hop *= stride
            reach += span(kernel, dilation)
        elif isinstance(module, PADDING):
            reach += max(0, -sum(module.padding))  # negative padding crops
    return max(64, hop * reach)


def _as_int(value):
    if value is None:
        return 0
    return value[0] if isinstance(value, (tuple, list)) else int(value)


def _default_in_channels(model):
    for module in model.modules():
        if is_conv_module(module):
            return module.in_channels
    return 1


def _dummy_input(model, in_channels, length):
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else "cpu"
    return torch.zeros(1, in_channels, length, dtype=dtype, device=device)


def _record_calls(model, dummy):
    """Run ``model`` once on ``dummy`` in eval mode without gradients and return its layer calls in order and
    its output. Training flags are restored, so BatchNorm statistics and the like are left alone."""
    calls, handles = [], []
    previous_output = [dummy]  # a list so the hooks can rebind it
    call_counts = {}

    def hook(module, args, kwargs, output, name):
        inputs = _first_tensor(list(args) + list(kwargs.values()))
        result = _first_tensor([output])
        call_counts[name] = call_counts.get(name, 0) + 1
        label = name if call_counts[name] == 1 else f"{name} (call {call_counts[name]})"
        calls.append(_Call(name=label, module=module,
                           in_length=inputs.shape[-1] if inputs is not None and inputs.dim() else None,
                           out_length=result.shape[-1] if result is not None and result.dim() else None,
                           in_ndim=inputs.dim() if inputs is not None else 0,
                           fed_by_previous=inputs is previous_output[0]))
        previous_output[0] = result

    training = {module: module.training for module in model.modules()}
    try:
        for name, module in _layers_to_watch(model):
            handles.append(module.register_forward_hook(
                lambda m, a, k, o, name=name or "(model)": hook(m, a, k, o, name), with_kwargs=True))
        model.eval()
        with torch.no_grad():
            output = model(dummy)
    finally:
        for handle in handles:
            handle.remove()
        for module, was_training in training.items():
            module.training = was_training
    return calls, _first_tensor([output])


def receptive_field(model, length=None, *, in_channels=None):
    """The receptive field of a 1D conv stack, per layer and cumulative: a :class:`ReceptiveField`.

    The layers are found by running ``model`` once, in eval mode and without gradients, on a zero input of
    shape (1, in_channels, length) with forward hooks, so they come in the order forward() calls them (a
    module called twice counts twice). ``in_channels`` defaults to the first conv's; ``length`` to one
    that every layer accepts. Known: Conv1d, ConvTranspose1d and their subclasses (the conv1d_ext
    modules), MaxPool1d / AvgPool1d / LPPool1d, the 1D padding layers, and layers that keep positions
    (activations, dropout, norms, Identity). A layer that changes the length any other way (a Linear over
    time, interpolation, a custom module, or code in forward() between layers) is reported as unknown, with
    a ReceptiveFieldWarning, and no cumulative numbers are claimed after it.

    The layers are composed as a chain, each reading the previous one's output; skip connections and
    parallel branches are not followed (layers whose input forward() computed are marked in the report).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"receptive_field() expects an nn.Module, got {type(model).__name__}")
    if any(is_lazy(p) for p in model.parameters()):
        raise ValueError("receptive_field(): the model has uninitialised lazy modules; run one forward pass first")
    length = _default_length(model) if length is None else positive("length", length, "length must be positive")
    in_channels = _default_in_channels(model) if in_channels is None else positive(
        "in_channels", in_channels, "in_channels must be positive")
    dummy = _dummy_input(model, in_channels, length)
    try:
        calls, output = _record_calls(model, dummy)
    except Exception as error:
        raise ValueError(f"receptive_field(): the forward pass on a zero input of shape {tuple(dummy.shape)} "
                         f"failed ({type(error).__name__}: {error}); pass length= or in_channels=") from error
    layers = _layers(calls, length, output)
    result = ReceptiveField(model_name=type(model).__name__, length=length, in_channels=in_channels,
                            out_length=output.shape[-1] if output is not None and output.dim() else None,
                            layers=tuple(layers))
    _warn_about(result)
    return result


def _gap(index, before, after, in_length, out_length):
    where = f"between {before!r} and {after!r}" if before and after else (
        f"before {after!r}" if after else f"after {before!r}")
    return LayerReceptiveField(index=index, name=f"(forward code {where})", type_name="-", kind="unknown",
                               in_length=in_length, out_length=out_length, geometry=None, window=None,
                               cumulative=None, note=f"forward() changed the length {in_length} → {out_length} "
                                                     "outside any module")


def _layers(calls, length, output):
    """LayerReceptiveFields for the calls, with unknown entries wherever the length changed between them."""
    layers, cumulative = [], IDENTITY
    previous_length, previous_name = length, None

    def add(layer):
        nonlocal cumulative
        cumulative = cumulative.then(layer.window) if cumulative is not None and layer.window is not None else None
        layers.append(LayerReceptiveField(**{**layer.__dict__, "index": len(layers), "cumulative": cumulative}))

    for call in calls:
        if call.in_length != previous_length and call.in_length is not None:
            add(_gap(len(layers), previous_name, call.name, previous_length, call.in_length))
        kind = classify(call.module, call.in_length, call.out_length, call.in_ndim)
        if kind.geometry is not None:
            window = kind.geometry.window
        else:
            window = IDENTITY if kind.kind in ("pointwise", "norm", "assumed pointwise") else None
        add(LayerReceptiveField(index=0, name=call.name, type_name=type(call.module).__name__, kind=kind.kind,
                                in_length=call.in_length, out_length=call.out_length, geometry=kind.geometry,
                                window=window, cumulative=None, note=kind.note,
                                fed_by_previous=call.fed_by_previous))
        previous_length, previous_name = call.out_length, call.name
    if output is not None and output.dim() and output.shape[-1] != previous_length:
        add(_gap(len(layers), previous_name, None, previous_length, output.shape[-1]))
    return layers


def _warn_about(rf):
    unknown = rf.unknown_layers
    if unknown:
        first = unknown[0]
        known = [layer for layer in rf.layers[:first.index] if layer.cumulative is not None]
        until = (f"they hold up to layer {known[-1].index} ({known[-1].name!r}): rf.layers[{known[-1].index}]"
                 ".cumulative" if known else "no layer before it has them")
        warnings.warn(f"receptive_field({rf.model_name}): layer {first.index} {first.name!r} ({first.type_name}) "
                      f"is unknown: {first.note}. The model's size, hop and offset are not known; {until}",
                      ReceptiveFieldWarning, stacklevel=3)
    assumed = [layer.name for layer in rf.layers if layer.kind == "assumed pointwise"]
    if assumed:
        warnings.warn(f"receptive_field({rf.model_name}): assumed that {', '.join(repr(n) for n in assumed)} "
                      "(unrecognised, length kept) do not mix time steps", ReceptiveFieldWarning, stacklevel=3)

