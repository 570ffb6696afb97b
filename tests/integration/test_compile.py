"""torch.compile: a model built from Conv1dExt compiles with fullgraph=True (no graph breaks: the ops have
fake kernels and autograd) and its compiled forward and backward match the same model built from
nn.Conv1d / F.conv1d (eager PyTorch, float64), with static shapes and with dynamic shapes, where one
compiled graph must serve every batch size and length (the compilations are counted); a decoder of
ConvTranspose1dExt and Conv1dExt against nn.ConvTranspose1d / nn.Conv1d; the causal prefill and decode
loop (causal_conv1d_fn, causal_conv1d_update) and its gradient against eager."""

import pytest
import torch
import torch.nn.functional as F
from causal_ref import make_x, rand
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import conv1d_ext
from conv1d_ext import Conv1dExt, ConvTranspose1dExt, causal_conv1d_fn, causal_conv1d_update

pytestmark = [pytest.mark.compile,
              # the reference's F.conv1d(padding="same") with an even kernel copies its input; so be it
              pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")]


class SmallNet(nn.Module):
    """The same network on PyTorch's convolutions (the reference) or on ours."""

    def __init__(self, conv=nn.Conv1d, conv1d=F.conv1d):
        super().__init__()
        self.conv1d = conv1d
        self.stem = conv(3, 8, 5, stride=2, padding=2)
        self.depthwise = conv(8, 8, 4, padding="same", groups=8, padding_mode="reflect")
        self.grouped = conv(8, 8, 3, dilation=2, padding=2, groups=2, bias=False)
        self.head_weight = nn.Parameter(0.1 * torch.randn(2, 8, 3))  # used transposed: non-contiguous

    def forward(self, x):
        x = F.gelu(self.stem(x))
        x = x + self.depthwise(x)
        head = self.head_weight.transpose(1, 2).reshape(2, 3, 8).transpose(1, 2)  # (2, 8, 3) view
        return self.conv1d(self.grouped(x), head[:, :, :2], padding="same")  # even kernel: pad 0|1


def twin_models(device):
    """Ours and PyTorch's SmallNet with identical float64 parameters."""
    torch.manual_seed(0)
    ours = SmallNet(Conv1dExt, conv1d_ext.conv1d).to(device, torch.float64)
    reference = SmallNet().to(device, torch.float64)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def run_and_grads(model, x):
    x = x.detach().clone().requires_grad_()
    y = model(x)
    grads = torch.autograd.grad(y.square().sum(), [x] + list(model.parameters()))
    return y, grads


def assert_matches_reference(model, reference, x):
    y, grads = run_and_grads(model, x)
    y_ref, grads_ref = run_and_grads(reference, x)
    # float64 throughout: ours and PyTorch's differ by summation order only (~1e-15 relative); a wrong
    # term, tap or padding is off by far more than PyTorch's float64 defaults (rtol 1e-7, atol 1e-7).
    torch.testing.assert_close(y, y_ref)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_model_matches_pytorch_static_shapes(device):
    model, reference = twin_models(device)
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend=counter)
    for _ in range(2):  # the second call reuses the graph
        assert_matches_reference(compiled, reference, torch.randn(2, 3, 40, device=device, dtype=torch.float64))
    assert counter.frame_count == 1


def test_compiled_model_matches_pytorch_dynamic_shapes(device):
    """Three batch sizes and lengths through one symbolic-shape graph (the fake kernels' shape formulas
    work on SymInts): one compilation. (Dynamo specialises sizes 0 and 1, so the batches are >= 2.)"""
    model, reference = twin_models(device)
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=counter)
    for shape in [(2, 3, 40), (3, 3, 57), (4, 3, 129)]:
        assert_matches_reference(compiled, reference, torch.randn(shape, device=device, dtype=torch.float64))
    assert counter.frame_count == 1


def test_compiled_functional_with_converted_model(device):
    """convert_conv1d before torch.compile: the converted model compiles in one graph too, and matches
    the nn.Conv1d model it was converted from."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 2, 1)).to(device, torch.float64)
    x = torch.randn(2, 4, 16, device=device, dtype=torch.float64)
    y_ref = model(x)
    conv1d_ext.convert_conv1d(model)
    assert all(isinstance(model[i], Conv1dExt) for i in (0, 2))
    counter = CompileCounterWithBackend("aot_eager")
    y = torch.compile(model, fullgraph=True, backend=counter)(x)
    torch.testing.assert_close(y, y_ref)
    assert counter.frame_count == 1


# ---------------------------------------------------------------------------------------------------
# Transposed and causal convolution
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_compiled_transposed_decoder_matches_pytorch(device, dynamic):
    """A decoder of ConvTranspose1dExt and Conv1dExt compiles in one graph (fake kernels, autograd) and
    matches nn.ConvTranspose1d / nn.Conv1d eagerly, forward and backward. aot_eager: dynamo and AOT
    autograd are what our ops meet; inductor would only add compile time on this machine."""
    torch.manual_seed(0)

    def make(t_cls, c_cls):
        return nn.Sequential(c_cls(4, 8, 3, padding=1), nn.LeakyReLU(0.1),
                             t_cls(8, 6, 8, stride=4, padding=2), nn.LeakyReLU(0.1),
                             t_cls(6, 6, 4, stride=2, padding=1, groups=6),
                             t_cls(6, 2, 3, stride=1, padding=0, output_padding=2, dilation=3)).to(device)

    ref = make(nn.ConvTranspose1d, nn.Conv1d)
    ours = make(ConvTranspose1dExt, Conv1dExt)
    ours.load_state_dict(ref.state_dict())
    compiled = torch.compile(ours, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    for shape in [(2, 4, 10), (3, 4, 17)][:2 if dynamic else 1]:
        x = torch.randn(shape, device=device)
        results = []
        for model in (compiled, ref):
            xi = x.clone().requires_grad_()
            y = model(xi)
            results.append((y, *torch.autograd.grad(y.square().sum(), [xi, *model.parameters()])))
        for got, want in zip(*results, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_compiled_causal_prefill_and_decode_match_eager():
    """A prefill (causal_conv1d_fn with its final state) and four decode steps (causal_conv1d_update on
    that state, in place) compile in one graph with the eager results, and so does the gradient."""
    gen = torch.Generator().manual_seed(17)
    x = make_x((2, 8, 20), torch.float32, "channels_last", gen)
    w, b = rand((8, 4), torch.float32, gen), rand((8,), torch.float32, gen)

    def run(x, w, b):
        out, state = causal_conv1d_fn(x[..., :16], w, b, return_final_states=True, activation="silu")
        state = state.clone()
        outs = [out]
        for t in range(16, 20):
            outs.append(causal_conv1d_update(x[..., t], state, w, b, "silu")[..., None])
        return torch.cat(outs, -1), state

    eager = run(x, w, b)
    compiled = torch.compile(run, fullgraph=True)(x, w, b)
    for a, c in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-6)

    xg = x.detach().requires_grad_()

    def loss(x):
        return causal_conv1d_fn(x, w, b, activation="silu").square().sum()

    g_eager = torch.autograd.grad(loss(xg), xg)[0]
    g_comp = torch.autograd.grad(torch.compile(loss, fullgraph=True)(xg), xg)[0]
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-5, atol=1e-5)
