"""explain(): the arithmetic of one convolution on an input of a given length, as a ConvExplanation
(``str()`` it for the step-by-step text, ``.plot(path)`` for a picture)."""

from dataclasses import dataclass

import torch

from .._geometry import check_padding_fits, positive, too_short_message
from .plot import plot_explanation
from .spec import ConvSpec, resolve_dtype, spec_from_keywords, spec_from_module
from .text import explanation_lines
from .window import flag_runs, padded_output_flags, read_input_flags, runs_expanded

__all__ = ["ConvExplanation", "explain"]


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
        return tuple(runs_expanded(flag_runs(padded_output_flags(self.geometry, self.length, self.out_len), 1)))

    def unread_inputs(self):
        """The input positions no output reads, in order."""
        return tuple(runs_expanded(flag_runs(read_input_flags(self.geometry, self.length, self.out_len), 0)))

    def __str__(self):
        return "\n".join(explanation_lines(self))

    def plot(self, path, outputs=None):
        """Draw the input row (padding cells hatched), the output row and the taps of ``outputs`` (an index
        or a list; default: the first, middle and last output) to ``path`` as a PNG; returns ``path``.
        Long rows show the neighbourhood of those outputs only. Needs matplotlib."""
        return plot_explanation(self, path, outputs)


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
    length = positive("length", length)
    batch = positive("batch", batch)
    dtype = resolve_dtype(dtype, conv)
    check_padding_fits(spec.padding_mode, spec.pad_left, spec.pad_right, length)
    geometry = spec.geometry
    out_len = geometry.out_len(length)
    if out_len <= 0:
        raise ValueError(too_short_message(spec.transposed, length, out_len, spec.pad_left, spec.pad_right,
                                           geometry.span))

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
        outputs_reading_padding=padded_output_flags(geometry, length, out_len).count(1),
        inputs_never_read=read_input_flags(geometry, length, out_len).count(0))

