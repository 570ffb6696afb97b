"""torch.compile: a model built from Conv1dExt compiles with fullgraph=True (no graph breaks: the ops have
fake kernels and autograd) and its compiled forward and backward match the same model built from
nn.Conv1d / F.conv1d (eager PyTorch, float64), with static shapes and with dynamic shapes, where one
compiled graph must serve every batch size and length (the compilations are counted)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import conv1d_ext
from conv1d_ext import Conv1dExt

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
