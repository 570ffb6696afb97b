"""Conv arithmetic for 1D convolutions: output lengths, the input positions each output reads, receptive
fields of whole stacks, and pictures of them.

    conv1d_ext.explain(conv, length)          # one conv, step by step: str() it, or read .out_len, .inputs_of(t)
    conv1d_ext.receptive_field(model, length)  # a stack, per layer and cumulative: .size, .hop, .offset, .layers

Positions are indices along the time axis. A layer's *virtual* input positions extend past both ends of its
input: negative positions and positions >= the input length are padding cells (zeros for a zero-padded conv).
``python -m conv1d_ext.arithmetic --help`` is the command line.

Modules: ``window`` (SlidingWindow, one layer's positions; Window, a stack's), ``spec`` (ConvSpec, one conv's
numbers, checked as PyTorch checks them), ``explanation`` (explain), ``receptive`` (receptive_field and the
layer classification), ``text`` and ``plot`` (their text and pictures), ``__main__`` (the command line).
"""

from .explanation import ConvExplanation, explain
from .receptive import (
    ALONG_DIM,
    NOT_A_WINDOW,
    PADDING,
    POINTWISE,
    POOLING,
    TIME_STATISTICS_NORMS,
    LayerKind,
    LayerReceptiveField,
    ReceptiveField,
    ReceptiveFieldWarning,
    classify,
    is_known,
    receptive_field,
)
from .spec import (
    PADDING_MODES,
    ConvSpec,
    is_conv_module,
    resolve_dtype,
    resolve_padding,
    spec_from_keywords,
    spec_from_module,
)
from .window import IDENTITY, SlidingWindow, Window, simplify

# The public names of the module this package replaced (conv1d_ext/arithmetic.py), all importable from here.
__all__ = ["ALONG_DIM", "IDENTITY", "NOT_A_WINDOW", "PADDING", "PADDING_MODES", "POINTWISE", "POOLING",
           "TIME_STATISTICS_NORMS", "ConvExplanation", "ConvSpec", "LayerKind", "LayerReceptiveField", "ReceptiveField",
           "ReceptiveFieldWarning", "SlidingWindow", "Window", "classify", "explain", "is_conv_module", "is_known",
           "receptive_field", "resolve_dtype", "resolve_padding", "simplify", "spec_from_keywords", "spec_from_module"]
