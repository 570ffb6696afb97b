"""Conv arithmetic for 1D convolutions: output lengths, the input positions each output reads, receptive
fields of whole stacks, and pictures of them.

    conv1d_ext.explain(conv, length)          # one conv, step by step: str() it, or read .out_len, .inputs_of(t)
    conv1d_ext.receptive_field(model, length)  # a stack, per layer and cumulative: .size, .hop, .offset, .layers

Positions are indices along the time axis. A layer's *virtual* input positions extend past both ends of its
input: negative positions and positions >= the input length are padding cells (zeros for a zero-padded conv).
``python -m conv1d_ext.explain --help`` is the command line.
"""

import math
import operator
import warnings
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn
from torch.nn.parameter import is_lazy

__all__ = ["ConvExplanation", "LayerReceptiveField", "ReceptiveField", "ReceptiveFieldWarning", "SlidingWindow",
           "Window", "explain", "receptive_field"]


# ---- geometry: one sliding-window layer, and stacks of them --------------------------------------------------------


def simplify(value):
    """A Fraction with denominator 1 as an int, so integer stacks print and compare as plain ints."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


@dataclass(frozen=True)
class Window:
    """Which input positions output t reads: ``offset + t·hop … offset + t·hop + size − 1``.

    For layers made of convolutions, pooling and padding all three are ints and both ends of the span are
    read. A transposed convolution makes ``hop`` (and possibly ``offset``, ``size``) a Fraction: then the
    span is a closed interval of real positions that holds every input the output depends on (input i
    sits at position i), and its ends need not be read themselves.
    """

    size: int | Fraction
    hop: int | Fraction
    offset: int | Fraction

    def span(self, t):
        """(first, last) virtual input positions of output t (ints, or Fractions for transposed stacks)."""
        first = simplify(self.offset + t * self.hop)
        return first, simplify(first + self.size - 1)

    def then(self, layer):
        """The window of this stack followed by ``layer`` (a Window in this stack's output positions).

        Output t of ``layer`` reads stack outputs u in [layer.offset + t·layer.hop, … + layer.size − 1],
        and stack output u reads inputs from offset + u·hop to offset + u·hop + size − 1; the union runs
        from the first u's first input to the last u's last one.
        """
        return Window(size=simplify(self.size + (layer.size - 1) * self.hop),
                      hop=simplify(self.hop * layer.hop),
                      offset=simplify(self.offset + layer.offset * self.hop))

    @property
    def lookahead(self):
        """How far past its aligned input position t·hop output t reads: offset + size − 1.

        0 for a causal stack (output t reads inputs up to t·hop and none later), negative when the newest
        input read is older than t·hop, positive when the output needs that many future inputs, which is
        the latency, in input samples, of running the stack on a stream.
        """
        return simplify(self.offset + self.size - 1)


IDENTITY = Window(size=1, hop=1, offset=0)


@dataclass(frozen=True)
class SlidingWindow:
    """Kernel, stride, dilation and padding of one layer, in PyTorch's conventions.

    Direct layers (conv, pooling, explicit padding) read the input padded with ``pad_left`` / ``pad_right``
    cells. A transposed conv (``transposed=True``) scatters input i to outputs i·stride − padding +
    j·dilation (j = 0 … k−1): there ``pad_left == pad_right`` is PyTorch's ``padding``, the number of
    outputs cut from each end of the full result, and ``output_padding`` adds outputs at the right end.
    ``ceil_mode`` is pooling's: a last, partial window that starts inside the input or left padding counts.
    """

    kernel_size: int
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0
    pad_right: int = 0
    transposed: bool = False
    output_padding: int = 0
    ceil_mode: bool = False

    @property
    def span(self):
        """Input positions one output's taps cover, first to last: dilation·(k−1) + 1."""
        return self.dilation * (self.kernel_size - 1) + 1

    def out_len(self, length):
        """The output length for an input of ``length``; zero or negative where PyTorch raises an error."""
        if self.transposed:
            return ((length - 1) * self.stride - self.pad_left - self.pad_right + self.span - 1
                    + self.output_padding + 1)
        reach = length + self.pad_left + self.pad_right - self.span  # how far the window slides
        if reach < 0:
            return 0
        if not self.ceil_mode:
            return reach // self.stride + 1
        out_len = -(-reach // self.stride) + 1
        if (out_len - 1) * self.stride >= length + self.pad_left:
            out_len -= 1  # PyTorch drops a last window that would start in the right padding
        return out_len

    def inputs_of(self, t):
        """(first, last, step): the virtual input positions output t reads, or None if it reads none (a
        transposed conv's output that no tap lands on, e.g. with stride > dilation·(k−1) + 1)."""
        if not self.transposed:
            first = t * self.stride - self.pad_left
            return first, first + self.span - 1, self.dilation
        # Output t receives input i through tap j when i·stride − padding + j·dilation == t.
        reads = [(t + self.pad_left - j * self.dilation) // self.stride for j in range(self.kernel_size)
                 if (t + self.pad_left - j * self.dilation) % self.stride == 0]
        if not reads:
            return None
        # The taps that fit are every (stride/g)-th one, g = gcd(stride, dilation), so the inputs read are
        # dilation/g apart.
        return min(reads), max(reads), self.dilation // math.gcd(self.stride, self.dilation)

    @property
    def window(self):
        """The Window of this layer: size, hop and offset of the inputs output t reads."""
        if not self.transposed:
            return Window(size=self.span, hop=self.stride, offset=-self.pad_left)
        # Output t reads the inputs i with t + padding − (span − 1) <= i·stride <= t + padding.
        return Window(size=simplify(Fraction(self.span - 1, self.stride) + 1), hop=simplify(Fraction(1, self.stride)),
                      offset=simplify(Fraction(self.pad_left - (self.span - 1), self.stride)))


# ---- arguments: one conv's numbers, from a module or keywords, checked like PyTorch does ---------------------------


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


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


def _int(name, value):
    """An int from an int or a 1-element tuple/list (how modules store them); bools and floats are
    TypeErrors, as in PyTorch."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"expected {name} to be a single integer value or a list of 1 values to match "
                             f"the convolution dimensions, but got {name}={list(value)}")
        value = value[0]
    if isinstance(value, bool):
        raise TypeError(f"argument '{name}' must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"argument '{name}' must be an int, not {type(value).__name__}") from None


def _positive(name, value, message):
    value = _int(name, value)
    if value <= 0:
        raise ValueError(f"{message}, but got {name}={value}")
    return value


def _non_negative(name, value):
    value = _int(name, value)
    if value < 0:
        raise ValueError(f"negative {name} is not supported, but got {name}={value}")
    return value


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
            raise ValueError("padding='same' is not supported for strided convolutions")
        # PyTorch pads dilation·(k−1) in total and puts the odd one on the right.
        total = dilation * (kernel_size - 1)
        return total // 2, total - total // 2
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if transposed:
            raise ValueError("a transposed convolution pads both ends alike: give padding as one int")
        return _non_negative("padding", padding[0]), _non_negative("padding", padding[1])
    pad = _non_negative("padding", padding)
    return pad, pad


def _check_groups(groups, in_channels, out_channels):
    if in_channels % groups != 0:
        raise ValueError(f"in_channels must be divisible by groups, but got in_channels={in_channels}, "
                         f"groups={groups}")
    if out_channels % groups != 0:
        raise ValueError(f"out_channels must be divisible by groups, but got out_channels={out_channels}, "
                         f"groups={groups}")


def _check_output_padding(output_padding, stride, dilation, transposed):
    if output_padding and not transposed:
        raise ValueError("output_padding is only for transposed convolutions (transposed=True)")
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output padding must be smaller than either stride or dilation, but got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")


def spec_from_keywords(kernel_size, stride=1, padding=0, dilation=1, groups=1, in_channels=1, out_channels=1,
                       bias=True, padding_mode="zeros", transposed=False, output_padding=0):
    """A ConvSpec from nn.Conv1d / nn.ConvTranspose1d style arguments (padding may also be (left, right))."""
    if kernel_size is None:
        raise TypeError("explain() needs a conv module or kernel_size=")
    kernel_size = _positive("kernel_size", kernel_size, "kernel size should be greater than zero")
    stride = _positive("stride", stride, "non-positive stride is not supported")
    dilation = _positive("dilation", dilation, "dilation should be greater than zero")
    groups = _positive("groups", groups, "non-positive groups is not supported")
    in_channels = _positive("in_channels", in_channels, "in_channels should be greater than zero")
    out_channels = _positive("out_channels", out_channels, "out_channels should be greater than zero")
    output_padding = _non_negative("output_padding", output_padding)
    transposed = bool(transposed)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {set(PADDING_MODES)}, but got padding_mode={padding_mode!r}")
    if transposed and padding_mode != "zeros":
        raise ValueError('Only "zeros" padding mode is supported for ConvTranspose1d')
    _check_groups(groups, in_channels, out_channels)
    _check_output_padding(output_padding, stride, dilation, transposed)
    if isinstance(padding, list):
        padding = tuple(padding)
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation, transposed)
    if isinstance(padding, tuple) and len(padding) == 1:
        padding = pad_left
    return ConvSpec(kernel_size=kernel_size, stride=stride, dilation=dilation, padding=padding,
                    pad_left=pad_left, pad_right=pad_right, groups=groups, in_channels=in_channels,
                    out_channels=out_channels, bias=bool(bias), padding_mode=padding_mode, transposed=transposed,
                    output_padding=output_padding,
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
    padding = module.padding if isinstance(module.padding, str) else _int("padding", module.padding)
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


# ---- explain(): one conv, step by step -----------------------------------------------------------------------------


_GEOMETRY_KEYWORDS = ("kernel_size", "stride", "padding", "dilation", "groups", "in_channels", "out_channels",
                      "bias", "padding_mode", "transposed", "output_padding")


@dataclass(frozen=True)
class ConvExplanation(ConvSpec):
    """The arithmetic of one conv call on an input of ``length``; ``str()`` explains it step by step.

    Carries the conv's numbers (kernel_size, stride, dilation, padding, pad_left, pad_right, groups, …)
    and what they do to the input. Positions are input indices; those < 0 or >= ``length`` are padding
    cells. For a transposed conv ``pad_left == pad_right == padding``, PyTorch's meaning: the outputs cut
    from each end of the full result.
    """

    length: int
    batch: int
    dtype: torch.dtype
    out_len: int
    macs: int  # multiply-adds of one call
    input_bytes: int
    weight_bytes: int
    bias_bytes: int
    output_bytes: int
    outputs_reading_padding: int  # how many outputs have a tap on a padding cell (transposed: outside the input)
    inputs_never_read: int  # how many input positions no output reads (the stride steps over them, or cropping)

    @property
    def kernel_span(self):
        """Input positions covered by one output's taps, first to last: dilation·(k−1) + 1."""
        return self.geometry.span

    @property
    def total_bytes(self):
        return self.input_bytes + self.weight_bytes + self.bias_bytes + self.output_bytes

    def inputs_of(self, t):
        """(first, last, step): the input positions output t reads (negative or >= length: padding, or for
        a transposed conv, outside the input); None for a transposed conv's output that no tap reaches."""
        if not 0 <= t < self.out_len:
            raise IndexError(f"output {t} out of range: the output has {self.out_len} positions")
        return self.geometry.inputs_of(t)

    def padded_outputs(self):
        """The outputs with a tap on a padding cell (transposed: on a position outside the input), in order."""
        return tuple(_runs_expanded(_flag_runs(_padded_output_flags(self.geometry, self.length, self.out_len), 1)))

    def unread_inputs(self):
        """The input positions no output reads, in order."""
        return tuple(_runs_expanded(_flag_runs(_read_input_flags(self.geometry, self.length, self.out_len), 0)))

    def __str__(self):
        return "\n".join(_explanation_lines(self))

    def plot(self, path, outputs=None):
        """Draw the input row (padding cells hatched), the output row and the taps of ``outputs`` (an index
        or a list; default: the first, middle and last output) to ``path`` as a PNG; returns ``path``.
        Long rows show the neighbourhood of those outputs only. Needs matplotlib."""
        return _plot_explanation(self, path, outputs)


def explain(conv=None, length=None, *, kernel_size=None, stride=None, padding=None, dilation=None, groups=None,
            in_channels=None, out_channels=None, bias=None, padding_mode=None, transposed=None,
            output_padding=None, batch=1, dtype=None):
    """The arithmetic of one 1D convolution on an input of ``length``: a :class:`ConvExplanation`.

    ``conv`` is an nn.Conv1d / nn.ConvTranspose1d or a subclass (Conv1dExt and the other conv1d_ext
    modules); or leave it out and give the numbers as keywords, as for nn.Conv1d (``padding`` may also be
    an explicit ``(left, right)``, ``transposed=True`` with ``output_padding`` for a transposed conv;
    channels default to 1). ``batch`` and ``dtype`` (default: the module's, else float32) size the
    multiply-add and byte counts. Bad arguments raise PyTorch's ValueError / TypeError.
    """
    # The geometry keywords actually given (None: not given, so nn.Conv1d's default applies).
    keywords = {name: value for name, value in locals().items() if name in _GEOMETRY_KEYWORDS and value is not None}
    if conv is not None:
        if keywords:
            raise TypeError(f"explain(): give a conv module or its numbers as keywords, not both "
                            f"(got {conv.__class__.__name__} and {', '.join(keywords)})")
        spec = spec_from_module(conv)
    else:
        spec = spec_from_keywords(**keywords)
    if length is None:
        raise TypeError("explain(): missing the input length (explain(conv, length) or length=...)")
    length = _positive_count("length", length)
    batch = _positive_count("batch", batch)
    dtype = resolve_dtype(dtype, conv)
    _check_padding_fits(spec, length)
    geometry = spec.geometry
    out_len = geometry.out_len(length)
    if out_len <= 0:
        raise ValueError(_too_short_message(spec, length, out_len))

    itemsize = dtype.itemsize
    taps_per_output = spec.in_channels // spec.groups * spec.kernel_size
    if spec.transposed:  # every input goes through every tap into out_channels/groups channels
        macs = batch * length * spec.in_channels * (spec.out_channels // spec.groups) * spec.kernel_size
    else:
        macs = batch * out_len * spec.out_channels * taps_per_output
    return ConvExplanation(
        **vars(spec), length=length, batch=batch, dtype=dtype, out_len=out_len, macs=macs,
        input_bytes=batch * spec.in_channels * length * itemsize,
        weight_bytes=spec.out_channels * taps_per_output * itemsize,
        bias_bytes=spec.out_channels * itemsize if spec.bias else 0,
        output_bytes=batch * spec.out_channels * out_len * itemsize,
        outputs_reading_padding=_padded_output_flags(geometry, length, out_len).count(1),
        inputs_never_read=_read_input_flags(geometry, length, out_len).count(0))


def _positive_count(name, value):
    return _positive(name, value, f"{name} must be positive")


def _check_padding_fits(spec, length):
    """Reflect and circular padding copy inputs, so PyTorch needs enough of them (F.pad's errors)."""
    widest = max(spec.pad_left, spec.pad_right)
    if spec.padding_mode == "reflect" and widest >= length:
        raise ValueError(f"Padding size should be less than the corresponding input dimension, but got: padding "
                         f"({spec.pad_left}, {spec.pad_right}) for an input of length {length}")
    if spec.padding_mode == "circular" and widest > length:
        raise ValueError("Padding value causes wrapping around more than once.")


def _too_short_message(spec, length, out_len):
    if spec.transposed:
        return (f"Given input size per channel: (1 x {length}). Calculated output size per channel: "
                f"(1 x {out_len}). Output size is too small")
    return (f"Calculated padded input size per channel: ({length + spec.pad_left + spec.pad_right}). Kernel size: "
            f"({spec.geometry.span}). Kernel size can't be greater than actual input size")


def _ceil_div(a, b):
    return -(-a // b)


def _mark(flags, first, last, step=1):
    """Set flags[first … last] (every step-th), clipped to the array."""
    if first < 0:
        first += _ceil_div(-first, step) * step
    last = min(last, len(flags) - 1)
    if first <= last:
        flags[first:last + 1:step] = b"\x01" * len(range(first, last + 1, step))


def _flag_runs(flags, value):
    """(first, last) of each run of ``value`` (0 or 1) in a bytearray, found with C-speed searches."""
    wanted, other = bytes([value]), bytes([1 - value])
    start = flags.find(wanted)
    while start != -1:
        end = flags.find(other, start)
        end = len(flags) if end == -1 else end
        yield start, end - 1
        start = flags.find(wanted, end)


def _runs_expanded(runs):
    for first, last in runs:
        yield from range(first, last + 1)


def _padded_output_flags(geometry, length, out_len):
    """A 1 for each output with a tap on a padding cell (transposed: on a position outside the input)."""
    touching = bytearray(out_len)
    s, pad = geometry.stride, geometry.pad_left
    for tap in range(0, geometry.span, geometry.dilation):
        if geometry.transposed:
            # Output t = i·s − pad + tap reads virtual input i: outside the input for i < 0 and i >= length.
            _mark(touching, (tap - pad) % s, tap - pad - s, s)
            _mark(touching, length * s - pad + tap, out_len - 1, s)
        else:
            # Output t reads input t·s − pad + tap: padding for t < (pad − tap)/s and t >= (length + pad − tap)/s.
            _mark(touching, 0, _ceil_div(pad - tap, s) - 1)
            _mark(touching, _ceil_div(length + pad - tap, s), out_len - 1)
    return touching


def _read_input_flags(geometry, length, out_len):
    """A 1 for each input position some output reads."""
    read = bytearray(length)
    s, pad = geometry.stride, geometry.pad_left
    for tap in range(0, geometry.span, geometry.dilation):
        if geometry.transposed:
            # Input i feeds output i·s − pad + tap, which is kept when 0 <= it < out_len.
            _mark(read, _ceil_div(pad - tap, s), (out_len - 1 + pad - tap) // s)
        else:
            # Output t (0 <= t < out_len) reads input t·s − pad + tap.
            _mark(read, tap - pad, (out_len - 1) * s - pad + tap, s)
    return read


# ---- the text -------------------------------------------------------------------------------------------------

_LABEL_WIDTH = 16


def _row(label, text):
    return f"{label:<{_LABEL_WIDTH}}{text}"


def _more(text):
    return " " * _LABEL_WIDTH + text


def _signed(value):
    """' + 3' / ' − 3' / '' for writing t·s + value."""
    if value == 0:
        return ""
    return f" + {value}" if value > 0 else f" − {-value}"


def _times(factor, name):
    """'2t', or 't' for a factor of 1."""
    return name if factor == 1 else f"{factor}{name}"


def _plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _positions(first, last, step, limit=6):
    """'a, b, c' or 'a, b, …, z (n positions)'."""
    values = range(first, last + 1, step)
    if len(values) <= limit:
        return ", ".join(str(v) for v in values)
    return f"{values[0]}, {values[1]}, …, {values[-1]} ({len(values)} positions)"


def _runs_text(runs, limit=4):
    """(first, last) runs as 'a … b, c', shortened after ``limit`` runs."""
    texts = []
    for first, last in runs:
        if len(texts) == limit:
            texts.append("…")
            break
        texts.append(f"{first}" if first == last else f"{first} … {last}")
    return ", ".join(texts)


def _header(e):
    parts = [f"in_channels={e.in_channels}", f"out_channels={e.out_channels}", f"kernel_size={e.kernel_size}",
             f"stride={e.stride}", f"padding={e.padding!r}", f"dilation={e.dilation}"]
    if e.transposed:
        parts.append(f"output_padding={e.output_padding}")
    if e.groups != 1:
        parts.append(f"groups={e.groups}")
    if not e.bias:
        parts.append("bias=False")
    if e.padding_mode != "zeros":
        parts.append(f"padding_mode={e.padding_mode!r}")
    return f"{e.type_name}({', '.join(parts)}) on an input of length L = {e.length}"


def _padding_lines(e):
    if e.padding == "valid":
        return [_row("padding", "'valid': none")]
    if e.padding == "same":
        total = e.pad_left + e.pad_right
        lines = [_row("padding", f"'same' ({e.padding_mode}): total = dilation·(k − 1) = {e.dilation}·"
                      f"{e.kernel_size - 1} = {total}, left = total // 2 = {e.pad_left}, right = total − left = "
                      f"{e.pad_right}")]
    else:
        explicit = "; explicit, as F.pad and then a conv with padding=0" if isinstance(e.padding, tuple) else ""
        lines = [_row("padding", f"{e.pad_left} left, {e.pad_right} right ({e.padding_mode}{explicit})")]
    if e.padding_mode != "zeros":
        lines.append(_more(f"{e.padding_mode}: the padding cells hold copies of inputs, not zeros; the positions "
                           "are the same"))
    if e.pad_left or e.pad_right:
        lines.append(_more(f"the padded input spans positions {-e.pad_left} … {e.length + e.pad_right - 1}; "
                           f"positions < 0 and >= {e.length} are padding"))
    return lines


def _span_line(e):
    return _row("kernel span", f"dilation·(k − 1) + 1 = {e.dilation}·({e.kernel_size} − 1) + 1 = {e.kernel_span} "
                f"positions, one tap every {e.dilation}")


def _conv_length_lines(e):
    numerator = e.length + e.pad_left + e.pad_right - e.dilation * (e.kernel_size - 1) - 1
    return [
        _row("output length", "floor((L + pad_left + pad_right − dilation·(k − 1) − 1) / stride) + 1"),
        _more(f"= floor(({e.length} + {e.pad_left} + {e.pad_right} − {e.dilation}·{e.kernel_size - 1} − 1) "
              f"/ {e.stride}) + 1"),
        _more(f"= floor({numerator} / {e.stride}) + 1 = {numerator // e.stride} + 1 = {e.out_len}"),
    ]


def _transposed_length_lines(e):
    return [
        _row("output length", "(L − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1"),
        _more(f"= ({e.length} − 1)·{e.stride} − 2·{e.pad_left} + {e.dilation}·{e.kernel_size - 1} + "
              f"{e.output_padding} + 1 = {e.out_len}"),
    ]


def _sample_outputs(out_len):
    return sorted(t for t in {0, 1, out_len // 2, out_len - 1} if t < out_len)


def _reads_lines(e):
    g = e.geometry
    lines = []
    if e.transposed:
        target = f"{_times(e.stride, 'i')}{_signed(-e.pad_left)} + {_times(e.dilation, 'j')}"
        lines.append(_row("scatter", f"input i adds w[j]·x[i] to output i·stride − padding + j·dilation = "
                          f"{target}, j = 0 … {e.kernel_size - 1}"))
        lines.append(_row("output t reads", "the inputs i with i·stride = t + padding − j·dilation for some j"))
    else:
        first = f"{_times(e.stride, 't')}{_signed(-e.pad_left)}"
        last = f"{_times(e.stride, 't')}{_signed(e.kernel_span - 1 - e.pad_left)}"
        lines.append(_row("output t reads", f"t·stride − pad_left + j·dilation, j = 0 … {e.kernel_size - 1}: "
                          f"{first} … {last}, step {e.dilation}"))
    width = len(str(e.out_len - 1))
    for t in _sample_outputs(e.out_len):
        reads = g.inputs_of(t)
        if reads is None:
            lines.append(_more(f"output {t:<{width}} reads nothing (no tap lands on an input: bias only)"))
            continue
        first, last, step = reads
        note = _outside_note([p for p in range(first, last + 1, step) if not 0 <= p < e.length], e.transposed)
        lines.append(_more(f"output {t:<{width}} reads {_positions(first, last, step)}{note}"))
    return lines


def _outside_note(outside, transposed):
    if not outside:
        return ""
    where = "outside the input" if transposed else "padding"
    if len(outside) == 1:
        return f"   ({outside[0]} is {where})"
    if len(outside) <= 3:
        return f"   ({', '.join(str(p) for p in outside)} are {where})"
    return f"   ({len(outside)} of them are {where})"


def _direct_equivalent_lines(e):
    left = e.kernel_span - 1 - e.pad_left
    right = left + e.output_padding
    pads = (f"pad dilation·(k − 1) − padding = {left} left and {right} right" if left >= 0 else
            f"crop {-left} left and {-right} right" if right <= 0 else f"crop {-left} left, pad {right} right")
    zeros = _plural(e.stride - 1, "zero")
    return [_row("equivalent", f"a direct conv: insert stride − 1 = {zeros} between inputs, {pads},"),
            _more("flip the kernel and slide it with stride 1")]


def _edge_lines(e):
    lines = []
    if e.outputs_reading_padding:
        where = "padding" if not e.transposed else "positions outside the input"
        runs = _flag_runs(_padded_output_flags(e.geometry, e.length, e.out_len), 1)
        lines.append(_row("edges", f"{e.outputs_reading_padding} of {e.out_len} outputs read {where}: "
                          f"{_runs_text(runs)}"))
    else:
        lines.append(_row("edges", "no output reads padding" if not e.transposed else
                          "no output reads positions outside the input"))
    if e.inputs_never_read:
        runs = _flag_runs(_read_input_flags(e.geometry, e.length, e.out_len), 0)
        lines.append(_row("unread", f"{_plural(e.inputs_never_read, 'input')} never read: {_runs_text(runs)}"))
    return lines


def _cost_lines(e):
    dtype = str(e.dtype).removeprefix("torch.")
    if e.transposed:
        formula = (f"batch·L·in_channels·(out_channels/groups)·k = {e.batch}·{e.length}·{e.in_channels}·"
                   f"{e.out_channels // e.groups}·{e.kernel_size}")
    else:
        formula = (f"batch·out_len·out_channels·(in_channels/groups)·k = {e.batch}·{e.out_len}·{e.out_channels}·"
                   f"{e.in_channels // e.groups}·{e.kernel_size}")
    parts = [f"input {e.input_bytes:,}", f"weight {e.weight_bytes:,}"]
    if e.bias:
        parts.append(f"bias {e.bias_bytes:,}")
    parts.append(f"output {e.output_bytes:,}")
    return [_row("cost", f"one call, batch {e.batch}, {dtype} ({e.dtype.itemsize} bytes each):"),
            _more(f"multiply-adds {formula} = {e.macs:,}"),
            _more(f"bytes {' + '.join(parts)} = {e.total_bytes:,} (each tensor read or written once)")]


def _explanation_lines(e):
    """The explanation as a list of lines."""
    lines = [_header(e), ""]
    if e.transposed:
        lines += _transposed_length_lines(e)
        lines += _reads_lines(e)
        lines += _direct_equivalent_lines(e)
    else:
        lines += _padding_lines(e)
        lines.append(_span_line(e))
        lines += _conv_length_lines(e)
        lines += _reads_lines(e)
    lines += _edge_lines(e)
    lines += _cost_lines(e)
    return lines


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
    return SlidingWindow(kernel_size=_int("kernel_size", module.kernel_size), stride=_int("stride", stride),
                         dilation=_int("dilation", getattr(module, "dilation", 1)),
                         pad_left=_int("padding", getattr(module, "padding", 0)),
                         pad_right=_int("padding", getattr(module, "padding", 0)), ceil_mode=module.ceil_mode)


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

    @property
    def size(self):
        return None if self.window is None else self.window.size

    @property
    def hop(self):
        return None if self.window is None else self.window.hop

    @property
    def offset(self):
        return None if self.window is None else self.window.offset


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

    @property
    def size(self):
        return None if self.cumulative is None else self.cumulative.size

    @property
    def hop(self):
        return None if self.cumulative is None else self.cumulative.hop

    @property
    def offset(self):
        return None if self.cumulative is None else self.cumulative.offset

    @property
    def lookahead(self):
        return None if self.cumulative is None else self.cumulative.lookahead

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
        return "\n".join(_receptive_field_lines(self))

    def plot(self, path, output=None):
        """Draw the cone of ``output`` (default: the middle one) to ``path`` as a PNG and return ``path``: a row
        per conv / pool, input at the bottom, each cell placed over the inputs it reads, the positions the
        output depends on tinted and the padding it reads hatched. Needs matplotlib."""
        return _plot_receptive_field(self, path, output)


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
            reach += dilation * (kernel - 1) + 1
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
    length = _default_length(model) if length is None else _positive("length", length, "length must be positive")
    in_channels = _default_in_channels(model) if in_channels is None else _positive(
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


# ---- receptive_field(): the text -----------------------------------------------------------------------------------

def _text(value):
    return "?" if value is None else str(value)


# Which columns hold numbers (right-aligned): #, then size, hop, offset of the layer and of the stack.
_NUMERIC = (0, 4, 5, 6, 7, 8, 9)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [text.rjust(width) if i in _NUMERIC else text.ljust(width)
                 for i, (text, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _layer_rows(rf):
    rows = [["#", "layer", "type", "length", "size", "hop", "offset", "cum. size", "cum. hop", "cum. offset",
             "note"]]
    for layer in rf.layers:
        if layer.window is None:
            own = ["?", "?", "?"]
        else:
            own = [str(layer.size), str(layer.hop), str(layer.offset)]
        cumulative = layer.cumulative
        total = ["?", "?", "?"] if cumulative is None else [str(cumulative.size), str(cumulative.hop),
                                                             str(cumulative.offset)]
        kind = layer.kind if layer.kind in ("unknown", "assumed pointwise", "norm") else ""
        fed = "" if layer.fed_by_previous else "input computed in forward() (a skip, sum or reshape?)"
        rows.append([str(layer.index), layer.name, layer.type_name,
                     f"{_text(layer.in_length)} → {_text(layer.out_length)}", *own, *total,
                     "; ".join(filter(None, [": ".join(filter(None, [kind, layer.note])), fed]))])
    return rows


def _summary(rf):
    if not rf.complete:
        first = rf.unknown_layers[0]
        return [f"unknown after layer {first.index} ({first.name}): {first.note}.",
                "The model's size, hop and offset are not claimed; the cumulative columns hold up to the layer "
                "before it."]
    size, hop, offset = rf.size, rf.hop, rf.offset
    t_hop = "t" if hop == 1 else f"{hop}·t"
    lines = [f"output t reads inputs offset + t·hop … offset + t·hop + size − 1 = {t_hop}{_signed(offset)} … "
             f"{t_hop}{_signed(offset + size - 1)}   (size {size}, hop {hop}, offset {offset})",
             "positions < 0 or >= the input length are padding"]
    lookahead = rf.lookahead
    if lookahead == 0:
        lines.append("lookahead 0: causal, output t reads no input after its aligned input t·hop")
    elif lookahead < 0:
        lines.append(f"lookahead {lookahead}: causal, output t reads nothing after input t·hop{_signed(lookahead)}")
    else:
        lines.append(f"lookahead {lookahead}: output t reads up to {lookahead} inputs after its aligned input "
                     f"t·hop; streaming it adds a latency of {lookahead} input samples")
    if any(layer.kind == "conv_transpose" for layer in rf.layers):
        lines.append("with transposed convs the span bounds the inputs read; rf.input_span(t) gives the exact "
                     "first and last")
    fed_by_code = sum(not layer.fed_by_previous for layer in rf.layers)
    if fed_by_code:
        lines.append(f"{fed_by_code} layers read a tensor computed in forward(): the layers are composed as a "
                     "chain, which holds for residual sums around windows that contain the aligned position; "
                     "parallel branches are not followed")
    return lines


def _receptive_field_lines(rf):
    out_length = f", output length {rf.out_length}" if rf.out_length is not None else ""
    lines = [f"Receptive field of {rf.model_name}: {len(rf.layers)} layers in forward order on an input of "
             f"(1, {rf.in_channels}, {rf.length}){out_length}", ""]
    lines += _table(_layer_rows(rf))
    lines.append("")
    lines += _summary(rf)
    return lines


# ---- pictures (matplotlib, imported only here) ---------------------------------------------------------------------

_TAP_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _new_figure(width, height):
    """A matplotlib Figure that does not touch pyplot's global state; matplotlib is optional."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot() draws with matplotlib, an optional dependency of conv1d_ext: "
                          "pip install matplotlib") from error
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save(figure, path):
    figure.savefig(path, format="png")
    return path


@dataclass(frozen=True)
class _Rows:
    """A conv picture as two rows. The *wide* row (the input of a conv, the output of a transposed conv) has
    a cell per position; each cell n of the *narrow* row sits over the wide positions n·stride − shift …
    n·stride − shift + span − 1 that it reads (conv) or writes (transposed)."""

    wide_first: int  # virtual wide positions drawn at most: padding (conv) or cut outputs (transposed) included
    wide_last: int
    wide_length: int  # wide positions 0 … wide_length − 1 are real
    narrow_count: int
    stride: int
    shift: int
    span: int

    def narrow_span(self, n):
        first = n * self.stride - self.shift
        return first, first + self.span - 1

    def narrow_within(self, first, last):
        """The narrow cells whose whole span lies within wide positions first … last."""
        low = _ceil_div(first + self.shift, self.stride)
        high = (last + self.shift - self.span + 1) // self.stride
        return range(max(0, low), min(self.narrow_count - 1, high) + 1)


def _conv_rows(e):
    if e.transposed:  # input i writes outputs i·s − padding … + span − 1; the full result is cut by padding
        return _Rows(wide_first=-e.pad_left, wide_last=max(e.out_len - 1, (e.length - 1) * e.stride - e.pad_left
                                                          + e.kernel_span - 1),
                     wide_length=e.out_len, narrow_count=e.length, stride=e.stride, shift=e.pad_left,
                     span=e.kernel_span)
    return _Rows(wide_first=-e.pad_left, wide_last=e.length + e.pad_right - 1, wide_length=e.length,
                 narrow_count=e.out_len, stride=e.stride, shift=e.pad_left, span=e.kernel_span)


def _links(e, t):
    """(narrow cells, wide cells) joined by lines for output t: its taps (conv), or the inputs that write to
    it (transposed)."""
    reads = e.inputs_of(t)
    if e.transposed:
        inputs = [] if reads is None else [i for i in range(reads[0], reads[1] + 1, reads[2]) if 0 <= i < e.length]
        return inputs, [t]
    return [t], list(range(reads[0], reads[1] + 1, reads[2]))


def _visible_blocks(rows, link_sets, limit=48):
    """Runs of wide positions to draw: all of them when few, else the neighbourhood of each output shown."""
    if rows.wide_last - rows.wide_first + 1 <= limit:
        return [(rows.wide_first, rows.wide_last)]
    wanted = []
    for narrow, wide in link_sets:
        ends = list(wide) + [p for n in narrow for p in rows.narrow_span(n)]
        wanted.append((max(rows.wide_first, min(ends) - 3), min(rows.wide_last, max(ends) + 3)))
    blocks = []
    for first, last in sorted(wanted):
        if blocks and first <= blocks[-1][1] + 4:
            blocks[-1] = (blocks[-1][0], max(blocks[-1][1], last))
        else:
            blocks.append((first, last))
    return blocks


class _Axis:
    """x coordinates of wide positions when some runs of them are left out: each gap takes 2 cells' width."""

    GAP = 2.0

    def __init__(self, blocks):
        self.blocks, self.starts = blocks, []
        x = 0.0
        for first, last in blocks:
            self.starts.append(x)
            x += last - first + 1 + self.GAP
        self.width = x - self.GAP

    def x(self, position):
        """x of a (possibly fractional) wide position inside one of the blocks."""
        for (first, last), start in zip(self.blocks, self.starts, strict=True):
            if first - 0.5 <= position <= last + 0.5:
                return start + position - first
        raise ValueError(f"position {position} is not drawn")

    def gaps(self):
        return [start - self.GAP / 2 - 0.5 for start in self.starts[1:]]


def _padding_source(e, p):
    """What padding cell p holds: '0', or '=x[i]' for the input it copies (reflect / replicate / circular)."""
    mode, n = e.padding_mode, e.length
    if mode == "zeros":
        return "0"
    if mode == "replicate":
        return f"=x[{min(max(p, 0), n - 1)}]"
    if mode == "circular":
        return f"=x[{p % n}]"
    return f"=x[{-p if p < 0 else 2 * (n - 1) - p}]"  # reflect


def _draw_cell(ax, x, y, label, colour=None, padding_note=None, fontsize=7):
    """One cell: white, or tinted with ``colour`` (a tap); a padding / cut cell is hatched grey with
    ``padding_note`` (its value, or 'cut') under it, and keeps ``colour`` as its border when it is a tap."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    corner, size = (x - 0.45, y - 0.4), (0.9, 0.8)
    if padding_note is not None:
        ax.add_patch(Rectangle(corner, *size, facecolor="#f0f0f0", edgecolor="#b0b0b0", hatch="///", linewidth=0))
        ax.text(x, y - 0.62, padding_note, ha="center", va="center", fontsize=fontsize - 1, color="#555555")
        face = "none"
    else:
        face = to_rgba(colour, 0.4) if colour else "white"
    ax.add_patch(Rectangle(corner, *size, facecolor=face, edgecolor=colour or "black",
                           linewidth=1.6 if colour else 0.8))
    if label:
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize,
                bbox=dict(boxstyle="square,pad=0.05", facecolor="#f0f0f0", linewidth=0) if padding_note else None)


def _plot_explanation(e, path, outputs=None):
    outputs = _chosen_outputs(outputs, e.out_len)
    rows = _conv_rows(e)
    link_sets = [_links(e, t) for t in outputs]
    axis = _Axis(_visible_blocks(rows, link_sets))
    cells = sum(last - first + 1 for first, last in axis.blocks)
    width = min(22.0, max(7.0, 0.3 * axis.width + 2.5))
    # With equal aspect the rows take width·(3.8 / axis width) inches; the rest is title and margins.
    figure = _new_figure(width, min(3.4, max(2.3, width * 3.8 / (axis.width + 1.0) + 0.8)))
    ax = figure.add_subplot()
    wide_y, narrow_y = (2.4, 0.0) if e.transposed else (0.0, 2.4)
    fontsize = 7 if cells <= 60 else 6
    colour_of_wide, colour_of_narrow = {}, {}
    for (narrow, wide), colour in zip(link_sets, _TAP_COLOURS * 4, strict=False):
        colour_of_wide.update({p: colour for p in wide})
        colour_of_narrow.update({n: colour for n in narrow})

    for first, last in axis.blocks:  # the wide row: real cells, padding (conv) or cut outputs (transposed)
        for p in range(first, last + 1):
            note = None
            if not 0 <= p < rows.wide_length:
                note = "cut" if e.transposed else _padding_source(e, p)
            _draw_cell(ax, axis.x(p), wide_y, str(p), colour_of_wide.get(p), note, fontsize)
    for first, last in axis.blocks:  # the narrow row: each cell over the span it reads or writes
        for n in rows.narrow_within(first, last):
            a, b = rows.narrow_span(n)
            _draw_cell(ax, axis.x((a + b) / 2), narrow_y, str(n), colour_of_narrow.get(n), fontsize=fontsize)
    for narrow, wide in link_sets:  # the taps
        for n in narrow:
            a, b = rows.narrow_span(n)
            for p in wide:
                y_wide, y_narrow = (wide_y - 0.4, narrow_y + 0.4) if e.transposed else (wide_y + 0.4, narrow_y - 0.4)
                ax.plot([axis.x(p), axis.x((a + b) / 2)], [y_wide, y_narrow], color=colour_of_narrow[n],
                        linewidth=1.2, alpha=0.8)
    for x in axis.gaps():
        for y in (wide_y, narrow_y):
            ax.text(x, y, "⋯", ha="center", va="center", fontsize=12)

    _label_rows(ax, e, wide_y, narrow_y)
    ax.set_xlim(-1.0, axis.width)
    ax.set_ylim(-0.9, 2.9)
    ax.set_aspect("equal" if axis.width < 60 else "auto")
    ax.axis("off")
    ax.set_title(_picture_title(e, outputs), fontsize=9)
    return _save(figure, path)


def _chosen_outputs(outputs, out_len):
    if outputs is None:
        return sorted({0, out_len // 2, out_len - 1})
    outputs = [outputs] if isinstance(outputs, int) else list(outputs)
    for t in outputs:
        if not 0 <= _int("outputs", t) < out_len:
            raise IndexError(f"output {t} out of range: the output has {out_len} positions")
    return outputs


def _label_rows(ax, e, wide_y, narrow_y):
    inputs, outputs = f"input\nL = {e.length}", f"output\n{e.out_len}"
    ax.text(-1.2, wide_y, outputs if e.transposed else inputs, ha="right", va="center", fontsize=8)
    ax.text(-1.2, narrow_y, inputs if e.transposed else outputs, ha="right", va="center", fontsize=8)


def _picture_title(e, outputs):
    numbers = f"k={e.kernel_size}, stride={e.stride}, dilation={e.dilation}"
    if e.transposed:
        numbers += f", padding={e.pad_left} (outputs cut), output_padding={e.output_padding}"
        what = "inputs writing to output"
    else:
        fill = "zeros" if e.padding_mode == "zeros" else e.padding_mode
        numbers += f", padding {e.pad_left} left / {e.pad_right} right ({fill}: hatched cells)"
        what = "taps of output"
    shown = ", ".join(str(t) for t in outputs)
    unreached = [t for t in outputs if not _links(e, t)[0]]
    note = f" (none reaches output {', '.join(str(t) for t in unreached)})" if unreached else ""
    return f"{e.type_name}: {numbers}\nL = {e.length} → {e.out_len}; lines: the {what} {shown}{note}"


@dataclass(frozen=True)
class _ConeRow:
    """One tensor of the stack in the cone picture, and which of its positions output t depends on (``cone``)
    or reads as padding (``padding``). Position u is drawn over its aligned inputs u·hop … u·hop + hop − 1,
    so a causal stack's cone leans left of the output and a centred one is symmetric."""

    label: str
    length: int
    hop: int | Fraction  # the cumulative hop of this tensor
    cone: frozenset
    padding: frozenset

    def x(self, position):
        return float(position * self.hop + (self.hop - 1) / 2)

    def position_at(self, x):
        return (x - float(self.hop - 1) / 2) / float(self.hop)

    @property
    def cell_width(self):
        return 0.85 * float(self.hop)


def _cone_rows(rf, output):
    """The rows of the cone of ``output``, input first. Rows are drawn for the convs, transposed convs and
    pools; padding layers and layers that keep positions are passed through."""
    rows, cone, padding = [], {output}, set()
    for layer in reversed(rf.layers):
        if layer.geometry is not None and layer.kind != "pad":
            rows.append(_ConeRow(f"{layer.name} ({layer.type_name})", layer.out_length, layer.cumulative.hop,
                                 frozenset(cone), frozenset(padding)))
        if layer.geometry is None:
            continue
        read = set()
        for t in cone:
            first, last, step = layer.geometry.inputs_of(t) or (0, -1, 1)
            read.update(range(first, last + 1, step))
        # Padding read above a padding layer is padding below it too, shifted by what that layer adds.
        shifted = {p - layer.geometry.pad_left for p in padding} if layer.kind == "pad" else set()
        cone = {p for p in read if 0 <= p < layer.in_length}
        padding = (read - cone) | shifted
    rows.append(_ConeRow("input", rf.length, 1, frozenset(cone), frozenset(padding)))
    return rows[::-1]


def _cone_x_range(rows):
    xs = [row.x(p) for row in rows for p in row.cone | row.padding] or [0.0]
    margin = max(3.0, 0.12 * (max(xs) - min(xs) + 1))
    return min(xs) - margin, max(xs) + margin


def _draw_cone_row(ax, row, y, x_range, colour):
    """Cells of one row across x_range: context cells white, cone cells tinted, padding cells hatched."""
    from matplotlib.colors import to_rgba

    width = row.cell_width
    positions = range(math.ceil(row.position_at(x_range[0])), math.floor(row.position_at(x_range[1])) + 1)
    many = len(positions) > 80  # then runs of cells become one bar: single cells would blur into stripes
    edge = "none" if many else "#444444"

    def bars(chosen):
        chosen = [p for p in chosen if p in positions]
        if not many:
            return [(row.x(p) - width / 2, width) for p in chosen]
        runs = []
        for p in chosen:
            if runs and p == runs[-1][1] + 1:
                runs[-1][1] = p
            else:
                runs.append([p, p])
        return [(row.x(a) - width / 2, row.x(b) - row.x(a) + width) for a, b in runs]

    context = [p for p in positions if 0 <= p < row.length and p not in row.cone]
    ax.broken_barh(bars(context), (y - 0.35, 0.7), facecolors="#ececec" if many else "white", edgecolors=edge,
                   linewidth=0.5)
    # An opaque tint, so the cone's shading behind does not show through.
    tint = tuple(1 - 0.55 * (1 - channel) for channel in to_rgba(colour)[:3])
    ax.broken_barh(bars(sorted(row.cone)), (y - 0.35, 0.7), facecolors=tint, edgecolors=edge, linewidth=0.5)
    ax.broken_barh(bars(sorted(row.padding)), (y - 0.35, 0.7), facecolors="#f0f0f0", edgecolors="#b0b0b0",
                   hatch="///", linewidth=0.5)
    if len(positions) <= 40:
        for p in positions:
            if 0 <= p < row.length or p in row.padding:
                ax.text(row.x(p), y, str(p), ha="center", va="center", fontsize=6, clip_on=True)


def _cone_outline(rows):
    """The polygon around the cone: left and right edges of its cells, row by row."""
    left, right = [], []
    for y, row in enumerate(rows):
        marked = row.cone | row.padding
        if marked:
            left.append((row.x(min(marked)) - row.cell_width / 2, y))
            right.append((row.x(max(marked)) + row.cell_width / 2, y))
    return left + right[::-1]


def _plot_receptive_field(rf, path, output=None):
    if not rf.complete:
        first = rf.unknown_layers[0]
        raise ValueError(f"cannot draw the receptive field of {rf.model_name}: layer {first.index} "
                         f"{first.name!r} is unknown ({first.note})")
    output = rf.out_length // 2 if output is None else _int("output", output)
    first, last = rf.window(output)  # also checks the range
    rows = _cone_rows(rf, output)
    x_range = _cone_x_range(rows)
    figure = _new_figure(11.0, 1.4 + 0.42 * len(rows))
    ax = figure.add_subplot()
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Polygon

    ax.add_patch(Polygon(_cone_outline(rows), closed=True, facecolor=to_rgba(_TAP_COLOURS[0], 0.1), edgecolor="none"))
    for y, row in enumerate(rows):
        _draw_cone_row(ax, row, y, x_range, _TAP_COLOURS[1] if y == len(rows) - 1 else _TAP_COLOURS[0])
    ax.set_yticks(range(len(rows)), [f"{row.label}  L={row.length}" for row in rows], fontsize=7)
    ax.set_xlim(*x_range)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("input position (each cell over its aligned inputs t·hop … t·hop + hop − 1)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    span = rf.input_span(output)
    depends = f"it depends on inputs {span[0]} … {span[1]}" if span else "it reads padding only"
    ax.set_title(f"{rf.model_name}: output {output} reads inputs {first} … {last} (size {rf.size}, hop {rf.hop}, "
                 f"offset {rf.offset}, lookahead {rf.lookahead}); {depends}\n"
                 "tinted: the positions it depends on, layer by layer; hatched: padding it reads", fontsize=9)
    return _save(figure, path)
