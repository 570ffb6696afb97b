"""ONNX export of models that use conv1d_ext: its conv1d op becomes ONNX's standard Conv node, so any ONNX
runtime runs the model without this package.

    onnx_program = conv1d_ext.onnx.export(model, (x,))   # torch.onnx.export(model, (x,), dynamo=True, ...)
    onnx_program.save("model.onnx")

or, calling torch.onnx.export directly:

    torch.onnx.export(model, (x,), dynamo=True, custom_translation_table=conv1d_ext.onnx.translation_table())

Needs the onnxscript package (which torch.onnx's exporter needs anyway). Only the dynamo-based exporter is
supported: the TorchScript-based one (dynamo=False) is deprecated in PyTorch.
"""

import torch

__all__ = ["export", "translation_table"]


def _conv1d(input, weight, bias, stride, pad_left, pad_right, dilation, groups):
    from onnxscript import opset18 as op  # imported when a model is exported: onnxscript stays optional

    # ONNX's pads are [begin of each spatial dim..., end of each...]: [pad_left, pad_right] in 1D
    attributes = dict(strides=[stride], pads=[pad_left, pad_right], dilations=[dilation], group=groups)
    return op.Conv(input, weight, **attributes) if bias is None else op.Conv(input, weight, bias, **attributes)


def translation_table():
    """torch.onnx.export's custom_translation_table for conv1d_ext: the conv1d op as one ONNX Conv node.
    (The backward ops appear only in training graphs, which ONNX export does not take.)"""
    return {torch.ops.conv1d_ext.conv1d.default: _conv1d}


def export(model, args=(), *, custom_translation_table=None, **kwargs):
    """torch.onnx.export(model, args, dynamo=True, **kwargs) with conv1d_ext's translation added to the
    caller's custom_translation_table (whose entries win)."""
    table = {**translation_table(), **(custom_translation_table or {})}
    return torch.onnx.export(model, args, dynamo=True, custom_translation_table=table, **kwargs)
