"""Sliding windows: which input positions each output of one layer reads (SlidingWindow), the window of a
whole stack of layers (Window, composed with Window.then), and per-position flags of one layer (which
outputs read padding, which inputs are read) as byte arrays.

Positions are indices along the time axis. A layer's *virtual* input positions extend past both ends of its
input: negative positions and positions >= the input length are padding cells (zeros for a zero-padded conv).
"""

import math
from dataclasses import dataclass
from fractions import Fraction

from .._geometry import conv_out_len, span, transposed_out_len

__all__ = ["IDENTITY", "SlidingWindow", "Window", "ceil_div", "flag_runs", "padded_output_flags", "read_input_flags",
           "runs_expanded", "simplify"]


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
        return span(self.kernel_size, self.dilation)

    def out_len(self, length):
        """The output length for an input of ``length``; zero or negative where PyTorch raises an error."""
        if self.transposed:
            return transposed_out_len(length, self.kernel_size, self.stride, self.pad_left, self.pad_right,
                                      self.output_padding, self.dilation)
        reach = length + self.pad_left + self.pad_right - self.span  # how far the window slides
        if reach < 0:
            return 0
        if not self.ceil_mode:
            return conv_out_len(length, self.kernel_size, self.stride, self.pad_left, self.pad_right, self.dilation)
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



# ---- which outputs read padding, which inputs are read: flag arrays, one byte per position ----------------


def ceil_div(a, b):
    return -(-a // b)


def _mark(flags, first, last, step=1):
    """Set flags[first … last] (every step-th), clipped to the array."""
    if first < 0:
        first += ceil_div(-first, step) * step
    last = min(last, len(flags) - 1)
    if first <= last:
        flags[first:last + 1:step] = b"\x01" * len(range(first, last + 1, step))


def flag_runs(flags, value):
    """(first, last) of each run of ``value`` (0 or 1) in a bytearray, found with C-speed searches."""
    wanted, other = bytes([value]), bytes([1 - value])
    start = flags.find(wanted)
    while start != -1:
        end = flags.find(other, start)
        end = len(flags) if end == -1 else end
        yield start, end - 1
        start = flags.find(wanted, end)


def runs_expanded(runs):
    for first, last in runs:
        yield from range(first, last + 1)


def padded_output_flags(geometry, length, out_len):
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
            _mark(touching, 0, ceil_div(pad - tap, s) - 1)
            _mark(touching, ceil_div(length + pad - tap, s), out_len - 1)
    return touching


def read_input_flags(geometry, length, out_len):
    """A 1 for each input position some output reads."""
    read = bytearray(length)
    s, pad = geometry.stride, geometry.pad_left
    for tap in range(0, geometry.span, geometry.dilation):
        if geometry.transposed:
            # Input i feeds output i·s − pad + tap, which is kept when 0 <= it < out_len.
            _mark(read, ceil_div(pad - tap, s), (out_len - 1 + pad - tap) // s)
        else:
            # Output t (0 <= t < out_len) reads input t·s − pad + tap.
            _mark(read, tap - pad, (out_len - 1) * s - pad + tap, s)
    return read

