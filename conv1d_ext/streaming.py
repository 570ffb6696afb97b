"""Convolutions over a signal that arrives in chunks, whose concatenated outputs equal the whole-signal
output: StreamingConv1d (a causal convolution: streaming ASR / codec encoders, Conformer and Mamba-style
blocks) and StreamingConvTranspose1d (streaming vocoder / codec decoding)."""

import torch
import torch.nn.functional as F
from torch import nn

from ._geometry import check_transposed_padding_mode, span
from .functional import conv1d, conv_transpose1d

__all__ = ["StreamingConv1d", "StreamingConvTranspose1d"]


class StreamingConvTranspose1d:
    r"""Runs an ``nn.ConvTranspose1d`` (or :class:`ConvTranspose1dExt`) chunk by chunk.

        stream = StreamingConvTranspose1d(module)
        outputs = [stream.step(chunk) for chunk in chunks]   # chunks along the last (time) dimension
        outputs.append(stream.flush())                        # the end of the signal
        torch.cat(outputs, -1)  # == module(torch.cat(chunks, -1)), up to round-off

    **Overlap-add.** Input position i contributes to the ``span = dilation·(kernel_size − 1) + 1`` outputs
    starting at ``i·stride``. After n inputs, the outputs before ``n·stride`` are final (later inputs
    start at or after it); the next ``overlap = span − stride`` outputs (when positive) are partial sums
    still waiting for the next chunk's contributions. ``step`` computes the chunk's transposed convolution
    (without bias), adds the carried partial sums to its first outputs, emits what is final and carries
    the last ``overlap`` outputs to the next step. The bias is added once per output, when emitted.
    Each step emits ``stride`` outputs per input position (fewer on the first step when ``span < stride``
    and when padding crops the start), so a decoder's upsampling stays in step with its input.

    **Padding.** The stream is the whole-signal output of ``module``'s own padding and output_padding:
    the first ``padding`` outputs of the signal are cropped; at the end (``flush``) the last
    ``padding − output_padding`` are cropped, or ``output_padding − padding`` outputs that no input reaches
    (the bias alone) are appended. So with ``padding > output_padding`` the last ``padding −
    output_padding`` outputs are held back until ``flush`` (they may be the ones cropped): latency
    ``max(0, overlap) + max(0, padding − output_padding)`` outputs. ``padding = output_padding = 0`` is
    the plain streaming case. ``output_size`` is not available (the signal's length is not known in
    advance); set ``module.output_padding`` instead.

    Chunks are (N, C_in, L) or unbatched (C_in, L), any L >= 0, the same batch shape throughout.
    ``flush()`` ends the signal and resets the stream, which can then take the next signal; ``reset()``
    drops a signal without emitting its end. The module's current ``weight`` and ``bias`` are used at
    every step (weight_norm and other parametrizations are evaluated then). Autograd works through the
    steps. In float16/bfloat16 the overlapping outputs are the sum of two rounded partial sums, i.e.
    within one more rounding of the whole-signal result.
    """

    def __init__(self, module):
        if not isinstance(module, nn.ConvTranspose1d):
            raise TypeError(f"StreamingConvTranspose1d expects an nn.ConvTranspose1d, got {type(module).__name__}")
        check_transposed_padding_mode(module.padding_mode)
        self.module = module
        (self.stride,), (self.padding,) = module.stride, module.padding
        (self.output_padding,), (self.dilation,) = module.output_padding, module.dilation
        self.span = span(module.kernel_size[0], self.dilation)
        self.overlap = self.span - self.stride  # outputs carried to the next step, when positive
        self.reset()

    def reset(self):
        """Forget the current signal (nothing is emitted)."""
        self._inputs = 0  # input positions seen in this signal
        self._done = 0  # uncropped output positions already emitted or cropped
        self._pending = None  # uncropped outputs [_done, end of what the inputs reach), without bias
        self._unbatched = None

    def _emit(self, outputs):
        bias = self.module.bias
        return outputs if bias is None else outputs + bias[:, None]

    def step(self, chunk):
        """Feed the next chunk; returns the outputs that are now final (bias added), batched like `chunk`."""
        unbatched = chunk.dim() == 2
        if self._unbatched is not None and unbatched != self._unbatched:
            raise ValueError("StreamingConvTranspose1d: batched and unbatched chunks mixed in one signal")
        x = chunk.unsqueeze(0) if unbatched else chunk
        if self._pending is not None and x.shape[0] != self._pending.shape[0]:
            raise ValueError(f"StreamingConvTranspose1d: chunk batch {x.shape[0]} differs from the "
                             f"signal's batch {self._pending.shape[0]}")
        m = x.shape[-1]
        module = self.module
        if m == 0:  # nothing new is final; F.conv_transpose1d rejects an empty length
            empty = x.new_empty((x.shape[0], module.out_channels, 0))
            return empty.squeeze(0) if unbatched else empty
        y = conv_transpose1d(x, module.weight, None, self.stride, 0, 0, module.groups, self.dilation)
        start = self._inputs * self.stride  # y's first uncropped output position
        if self._pending is not None:
            # pending covers [_done, start + overlap) with _done <= start; y covers [start, ...)
            y = F.pad(y, (start - self._done, 0))
            carried = self._pending.shape[-1]
            y = torch.cat([y[..., :carried] + self._pending, y[..., carried:]], dim=-1)
        else:
            self._done = 0
        self._inputs += m
        end = (self._inputs - 1) * self.stride + self.span  # outputs reached so far
        # Final: before the next input's first output (inputs * stride) and reached; held back: what the
        # end crop may still remove.
        final = min(self._inputs * self.stride, end - max(0, self.padding - self.output_padding))
        final = max(final, self._done)
        out, self._pending = y[..., :final - self._done], y[..., final - self._done:]
        out = out[..., max(0, self.padding - self._done):]  # the start crop
        self._done = final
        self._unbatched = unbatched
        out = self._emit(out)
        return out.squeeze(0) if unbatched else out

    def flush(self):
        """End the signal: returns its last outputs (the carried ones, cropped or extended as padding and
        output_padding say), and resets the stream."""
        if self._pending is None:
            raise RuntimeError("StreamingConvTranspose1d.flush: no input since the last flush or reset")
        rest = self._pending
        keep = rest.shape[-1] - max(0, self.padding - self.output_padding)  # the end crop
        rest = rest[..., max(0, self.padding - self._done):max(0, keep)]
        rest = F.pad(rest, (0, max(0, self.output_padding - self.padding)))  # positions no input reaches
        unbatched = self._unbatched
        self.reset()
        out = self._emit(rest)
        return out.squeeze(0) if unbatched else out


class StreamingConv1d:
    r"""Runs an ``nn.Conv1d`` (or :class:`Conv1dExt`) as a *causal* convolution, chunk by chunk.

        stream = StreamingConv1d(module)
        outputs = [stream.step(chunk) for chunk in chunks]   # chunks along the last (time) dimension
        torch.cat(outputs, -1)  # == module(F.pad(torch.cat(chunks, -1), (stream.state_len, 0)))

    **Causal padding.** The module must have ``padding=0``: the stream supplies the causal left padding
    itself, ``state_len = max(0, span − stride)`` zeros before the signal, where ``span = dilation·(k −
    1) + 1``. So the output at position ``t`` depends only on inputs up to ``t·stride + stride − 1`` and a
    signal of ``n·stride`` inputs gives ``n`` outputs.

    **State.** ``step`` convolves the carried state (the last ``state_len`` inputs; zeros at the start)
    followed by the chunk, emits its outputs and keeps the last ``state_len`` inputs. Each chunk's length
    must be a multiple of ``stride`` (so the outputs stay aligned), 0 included. Any stride, dilation and
    groups. Chunks are (N, C_in, L) or unbatched (C_in, L), the same batch shape throughout. ``reset()``
    starts a new signal. The module's current ``weight`` and ``bias`` are used at every step. Autograd
    works through the steps. The same interface as :class:`StreamingConvTranspose1d` (``step``,
    ``reset``; a causal convolution has nothing left to ``flush``).
    """

    def __init__(self, module):
        if not isinstance(module, nn.Conv1d):
            raise TypeError(f"StreamingConv1d expects an nn.Conv1d, got {type(module).__name__}")
        if isinstance(module.padding, str) or tuple(module.padding) != (0,):
            raise ValueError("StreamingConv1d streams a causal convolution: the module must have padding=0 "
                             f"(the stream supplies the causal left padding), got padding={module.padding!r}")
        self.module = module
        (self.stride,), (self.dilation,) = module.stride, module.dilation
        self.span = span(module.kernel_size[0], self.dilation)
        self.state_len = max(0, self.span - self.stride)
        self.reset()

    def reset(self):
        """Forget the current signal."""
        self._state = None  # the last state_len inputs, (N, C_in, state_len)
        self._unbatched = None

    def step(self, chunk):
        """Feed the next chunk (length a multiple of stride); returns its outputs, batched like `chunk`."""
        unbatched = chunk.dim() == 2
        if chunk.dim() not in (2, 3):
            raise ValueError(f"StreamingConv1d: expected a (N, C_in, L) or (C_in, L) chunk, got {tuple(chunk.shape)}")
        if self._unbatched is not None and unbatched != self._unbatched:
            raise ValueError("StreamingConv1d: batched and unbatched chunks mixed in one signal")
        x = chunk.unsqueeze(0) if unbatched else chunk
        m = x.shape[-1]
        if m % self.stride != 0:
            raise ValueError(f"StreamingConv1d: chunk length {m} is not a multiple of the stride {self.stride}")
        module = self.module
        if x.shape[-2] != module.in_channels:
            raise ValueError(f"StreamingConv1d: chunk has {x.shape[-2]} channels, the module expects "
                             f"{module.in_channels}")
        if self._state is None:
            state = x.new_zeros((x.shape[0], x.shape[1], self.state_len))
        else:
            state = self._state
            if x.shape[0] != state.shape[0]:
                raise ValueError(f"StreamingConv1d: chunk batch {x.shape[0]} differs from the signal's batch "
                                 f"{state.shape[0]}")
        xin = torch.cat([state, x], dim=-1)
        if m == 0:
            y = x.new_empty((x.shape[0], module.out_channels, 0))
        else:
            y = conv1d(xin, module.weight, module.bias, self.stride, 0, self.dilation, module.groups)
        self._state = xin[..., xin.shape[-1] - self.state_len:]
        self._unbatched = unbatched
        return y.squeeze(0) if unbatched else y

    forward = step
    __call__ = step
