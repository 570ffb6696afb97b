"""StreamingConv1d: a causal convolution over a signal that arrives in chunks (streaming ASR / codec
encoders, Conformer and Mamba-style convolution blocks), whose concatenated outputs equal the
whole-signal output."""

import torch
from torch import nn

from .functional import conv1d

__all__ = ["StreamingConv1d"]


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
        self.span = self.dilation * (module.kernel_size[0] - 1) + 1
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
