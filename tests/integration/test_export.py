"""Deployment: torch.export of a model built from Conv1dExt round-trips through torch.export.save/load
(also into a fresh process) and computes what the same model with nn.Conv1d computes; ONNX export (the
dynamo exporter) turns every conv1d_ext op into a standard ONNX Conv that onnxruntime runs with
nn.Conv1d's outputs; torch.jit.trace works and saves; torch.fx.symbolic_trace records one node per conv;
torch.jit.script (deprecated) fails with a clear error. A decoder of ConvTranspose1dExt and a causal
convolution (causal_conv1d_fn) round-trips through torch.export too; ONNX has no translation of their ops
(conv1d_backward_input, causal_conv1d_fwd), and exporting them is an error naming the op."""

import io
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv1d_ext
from conv1d_ext import Conv1dExt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


class Net(nn.Module):
    """Every way a Conv1dExt reaches the op: strides, 'same' with an even kernel (asymmetric padding),
    depthwise, grouped and dilated, no bias, a padding_mode other than zeros (F.pad first)."""

    def __init__(self, conv_cls):
        super().__init__()
        self.stem = conv_cls(3, 8, 5, stride=2, padding=2)
        self.depthwise = conv_cls(8, 8, 4, padding="same", groups=8)
        self.grouped = conv_cls(8, 4, 3, dilation=2, groups=2, bias=False, padding=2, padding_mode="reflect")

    def forward(self, x):
        return self.grouped(torch.relu(self.depthwise(self.stem(x))))


def models():
    torch.manual_seed(0)
    ours, ref = Net(Conv1dExt).eval(), Net(nn.Conv1d).eval()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def close(got, expected):
    torch.testing.assert_close(torch.as_tensor(got), expected, rtol=1e-5, atol=1e-5)


DYNAMIC = ({0: torch.export.Dim("batch"), 2: torch.export.Dim("length", min=16, max=4096)},)


def test_export_save_load_round_trip():
    ours, ref = models()
    x = torch.randn(2, 3, 40)
    exported = torch.export.export(ours, (x,), dynamic_shapes=DYNAMIC)
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert "conv1d_ext.conv1d.default" in targets and not any("convolution" in t for t in targets), targets
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    with torch.no_grad():
        for shape in [(2, 3, 40), (5, 3, 77)]:  # the traced shape and another one (dynamic batch and length)
            x = torch.randn(shape)
            close(loaded.module()(x), ref(x))


@pytest.mark.subprocess
def test_exported_program_loads_in_a_fresh_process(tmp_path):
    """What a deployment does: a new process that imports conv1d_ext (which registers the op) loads the
    saved program."""
    ours, ref = models()
    x = torch.randn(2, 3, 40)
    torch.export.save(torch.export.export(ours, (x,)), tmp_path / "net.pt2")
    torch.save(x, tmp_path / "x.pt")
    script = ("import sys, torch, conv1d_ext; ep = torch.export.load(sys.argv[1]); "
              "torch.save(ep.module()(torch.load(sys.argv[2])), sys.argv[3])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "net.pt2"), str(tmp_path / "x.pt"),
                    str(tmp_path / "y.pt")], check=True, timeout=120, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ROOT})
    with torch.no_grad():
        close(torch.load(tmp_path / "y.pt"), ref(x))


def onnx_packages():
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name, reason=f"ONNX export test needs {name} (pip install '.[dev]')")


@pytest.mark.parametrize("entry", ["conv1d_ext.onnx.export", "torch.onnx.export"])
def test_onnx_export_is_standard_conv_and_runs_in_onnxruntime(tmp_path, entry):
    onnx_packages()
    import onnxruntime

    ours, ref = models()
    x = torch.randn(2, 3, 40)
    dynamic = ({0: "batch", 2: "length"},)
    if entry == "conv1d_ext.onnx.export":
        program = conv1d_ext.onnx.export(ours, (x,), dynamic_shapes=dynamic)
    else:
        program = torch.onnx.export(ours, (x,), dynamo=True, dynamic_shapes=dynamic,
                                    custom_translation_table=conv1d_ext.onnx_translation_table())
    nodes = [(node.domain, node.op_type) for node in program.model.graph]
    assert nodes.count(("", "Conv")) == 3 and all(domain in ("", "ai.onnx") for domain, _ in nodes), nodes
    program.save(str(tmp_path / "net.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for shape in [(2, 3, 40), (5, 3, 77)]:
            x = torch.randn(shape)
            (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
            close(got, ref(x))


def test_jit_trace_saves_and_loads(tmp_path):
    ours, ref = models()
    x = torch.randn(2, 3, 40)
    torch.jit.trace(ours, x).save(str(tmp_path / "net.pt"))
    with torch.no_grad():
        close(torch.jit.load(str(tmp_path / "net.pt"))(x), ref(x))


def test_fx_symbolic_trace():
    """FX walks into Conv1dExt (only torch.nn's own modules are leaves): each conv becomes one call of the
    functional op, the graph module computes nn.Conv1d's outputs and gradients, and a plain function
    calling conv1d_ext's functionals traces too."""
    ours, ref = models()
    up = conv1d_ext.ConvTranspose1dExt(4, 3, 4, stride=2, padding=1)
    ref_up = nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1)
    ref_up.load_state_dict(up.state_dict())
    ours, ref = nn.Sequential(ours, up), nn.Sequential(ref, ref_up)
    graph_module = torch.fx.symbolic_trace(ours)
    targets = [node.target for node in graph_module.graph.nodes if node.op == "call_function"]
    assert targets.count(conv1d_ext.conv1d) == 3 and targets.count(conv1d_ext.conv_transpose1d) == 1, targets
    x = torch.randn(2, 3, 40, requires_grad=True)
    got, expected = graph_module(x), ref(x)
    close(got, expected)
    grad = torch.randn_like(expected)
    close(torch.autograd.grad(got, x, grad)[0], torch.autograd.grad(expected, x, grad)[0])

    def f(x, w):
        return conv1d_ext.conv1d(x, w, padding="same").relu()

    w = torch.randn(5, 3, 3)
    close(torch.fx.symbolic_trace(f)(x, w), torch.nn.functional.conv1d(x, w, padding="same").relu())


@pytest.mark.parametrize("what", ["module", "model", "function"])
def test_jit_script_is_a_clear_error(what):
    """TorchScript is deprecated; scripting fails up front, naming the supported ways."""
    target = {"module": lambda: Conv1dExt(3, 4, 3), "model": lambda: models()[0],
              "function": lambda: conv1d_ext.conv1d}[what]()
    with pytest.raises(RuntimeError, match=r"does not support torch\.jit\.script.*torch\.compile.*torch\.export"):
        torch.jit.script(target)


# ---------------------------------------------------------------------------------------------------
# Transposed and causal convolution
# ---------------------------------------------------------------------------------------------------


class Decoder(nn.Module):
    """A ConvTranspose1d upsampler, then a causal depthwise convolution with SiLU (Mamba's short conv):
    on conv1d_ext (ConvTranspose1dExt, causal_conv1d_fn) or on PyTorch (nn.ConvTranspose1d, F.conv1d on
    the left-padded input)."""

    def __init__(self, ours):
        super().__init__()
        self.ours = ours
        self.up = (conv1d_ext.ConvTranspose1dExt if ours else nn.ConvTranspose1d)(3, 6, 4, stride=2, padding=1)
        self.causal_weight = nn.Parameter(torch.randn(6, 4) / 2)
        self.causal_bias = nn.Parameter(torch.randn(6))

    def forward(self, x, kind="both"):
        x = self.up(x) if kind in ("both", "transposed") else x.repeat(1, 2, 1)
        if kind == "transposed":
            return x
        if self.ours:
            return conv1d_ext.causal_conv1d_fn(x, self.causal_weight, self.causal_bias, activation="silu")
        padded = F.pad(x, (self.causal_weight.shape[1] - 1, 0))
        return F.silu(F.conv1d(padded, self.causal_weight[:, None], self.causal_bias, groups=6))


def decoders():
    torch.manual_seed(0)
    ours, ref = Decoder(True).eval(), Decoder(False).eval()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def test_transposed_and_causal_export_save_load_round_trip():
    ours, ref = decoders()
    x = torch.randn(2, 3, 40)
    exported = torch.export.export(ours, (x,), dynamic_shapes=DYNAMIC)
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert {"conv1d_ext.conv1d_backward_input.default", "conv1d_ext.causal_conv1d_fwd.default"} <= targets, targets
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    with torch.no_grad():
        for shape in [(2, 3, 40), (5, 3, 77)]:
            x = torch.randn(shape)
            close(loaded.module()(x), ref(x))


@pytest.mark.parametrize("kind", ["transposed", "causal"])
def test_onnx_export_of_transposed_and_causal_is_a_clear_error(kind):
    """ONNX export translates conv1d only (conv1d_ext.onnx.translation_table): a model with a transposed or
    causal convolution is refused, with an error that names the op without a translation."""
    onnx_packages()
    ours, _ = decoders()
    op = {"transposed": "conv1d_backward_input", "causal": "causal_conv1d_fwd"}[kind]
    with pytest.raises(torch.onnx.OnnxExporterError, match=rf"No ONNX function found for .*conv1d_ext\.{op}"):
        conv1d_ext.onnx.export(ours, (torch.randn(2, 3, 40), kind))
