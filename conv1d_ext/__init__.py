"""conv1d_ext: 1D convolution for PyTorch on this project's own CPU and CUDA kernels.

    from conv1d_ext import Conv1dExt, ConvTranspose1dExt, conv1d, conv_transpose1d, convert_convs

* ``Conv1dExt``: a drop-in ``nn.Conv1d`` (same constructor, parameters, state_dict, repr, outputs and
  gradients); ``Conv1dExt.from_conv1d(conv)`` builds one from an existing nn.Conv1d.
* ``ConvTranspose1dExt``: the same for ``nn.ConvTranspose1d`` (``from_conv_transpose1d``).
* ``conv1d``, ``conv_transpose1d``: ``torch.nn.functional``'s interfaces and semantics.
* ``convert_convs(model)``: turns every nn.Conv1d and nn.ConvTranspose1d in a model into the Ext module, in
  place; ``convert_conv1d(model)`` does it for nn.Conv1d only (as it always has).
* ``StreamingConvTranspose1d(module)``: a transposed convolution over a signal arriving in chunks.
* ``causal_conv1d_fn``, ``causal_conv1d_update``: causal (Mamba-style) convolution with state, in
  causal-conv1d's interface; ``StreamingConv1d(module)``: any causal Conv1d over a signal in chunks.
* ``cpu_isa()``: which CPU kernel build runs here ("avx512bf16", "avx2" or "default").
* ``onnx.export(model, args)`` / ``onnx_translation_table()``: ONNX export (dynamo exporter), the op as a
  standard ONNX ``Conv``.

* ``explain(conv, length)`` / ``receptive_field(model)``: the arithmetic of one conv / of a stack
  (``conv1d_ext.arithmetic``; command line ``python -m conv1d_ext.arithmetic``).

The ops live in ``torch.ops.conv1d_ext`` (conv1d, conv1d_backward_input, conv1d_backward_weight,
conv1d_backward_bias, conv1d_backward; fake kernels, autograd with double backward and forward mode, vmap
batching rules and autocast in ``_conv_ops.py``), so they work under torch.compile and torch.export.
torch.func's autograd transforms need conv1d_ext.conv1d / Conv1dExt. The causal ops (causal_conv1d_fwd,
causal_conv1d_bwd, causal_conv1d_update; fake kernels and autograd in ``_causal_ops.py``) have CPU and CUDA
kernels. ``_library.py`` loads the library; ``_geometry.py`` holds the shapes and the argument checks made
in Python.
"""

from . import _conv_ops, onnx  # noqa: F401  (_conv_ops registers the conv ops' fake kernels, autograd, vmap, autocast)
from ._library import ops
from .arithmetic import explain, receptive_field
from .causal import causal_conv1d_fn, causal_conv1d_update
from .functional import conv1d, conv_transpose1d
from .module import Conv1dExt, ConvTranspose1dExt, convert_conv1d, convert_convs
from .streaming import StreamingConv1d, StreamingConvTranspose1d


def cpu_isa():
    """Which CPU kernel build runs on this machine: "avx512bf16" (the AVX2 build, and for bfloat16 a build
    whose dense kernels multiply bfloat16 pairs with AVX512-BF16), "avx2" (AVX2+FMA+F16C) or "default"
    (baseline x86-64 / other CPUs). Chosen once when the library loads; CONV1D_EXT_CPU_ISA=default / avx2 /
    avx512bf16 forces one."""
    return ops.cpu_isa()


OP_NAMES = ("conv1d", "conv1d_backward_input", "conv1d_backward_weight", "conv1d_backward_bias")


def build_info():
    """What this build holds: torch version, the CPU kernel path (``cpu_isa``; ``cpu_kernels``: "auto", or
    "direct" under CONV1D_EXT_CPU_KERNELS=direct), whether outputs are NaN-poisoned (``poison_outputs``,
    CONV1D_EXT_POISON_OUTPUTS), and whether every op has CUDA kernels compiled in (``cuda_kernels``) and a
    GPU to run them (``cuda_available``)."""
    import torch

    def has_kernel(op, key):
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"conv1d_ext::{op}", key)

    return {
        "torch": torch.__version__,
        "cpu_isa": cpu_isa(),
        "cpu_kernels": ops.cpu_kernels(),
        "poison_outputs": ops.poison_outputs(),
        "cuda_kernels": all(has_kernel(op, "CUDA") for op in OP_NAMES),
        "cuda_available": torch.cuda.is_available(),
    }


onnx_translation_table = onnx.translation_table

__all__ = ["Conv1dExt", "ConvTranspose1dExt", "StreamingConv1d", "StreamingConvTranspose1d", "build_info",
           "causal_conv1d_fn", "causal_conv1d_update", "conv1d", "conv_transpose1d", "convert_conv1d",
           "convert_convs", "cpu_isa", "explain", "onnx", "onnx_translation_table", "ops", "receptive_field"]
__version__ = "0.1.0"
