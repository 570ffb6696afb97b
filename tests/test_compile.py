"""torch.compile: a model built from Conv1dExt compiles with fullgraph=True (no graph breaks: the ops have
fake kernels and autograd) and matches eager, forward and backward, with static and dynamic shapes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv1d_ext
from conv1d_ext import Conv1dExt

pytestmark = pytest.mark.compile


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv1dExt(3, 8, 5, stride=2, padding=2)
        self.depthwise = Conv1dExt(8, 8, 4, padding="same", groups=8, padding_mode="reflect")
        self.grouped = Conv1dExt(8, 8, 3, dilation=2, padding=2, groups=2, bias=False)
        self.head_weight = nn.Parameter(0.1 * torch.randn(2, 8, 3))  # used transposed: non-contiguous

    def forward(self, x):
        x = F.gelu(self.stem(x))
        x = x + self.depthwise(x)
        head = self.head_weight.transpose(1, 2).reshape(2, 3, 8).transpose(1, 2)  # (2, 8, 3) view
        return conv1d_ext.conv1d(self.grouped(x), head[:, :, :2], padding="same")  # even kernel: pad 0|1


def run_and_grads(model, x):
    x = x.detach().clone().requires_grad_()
    y = model(x)
    grads = torch.autograd.grad(y.square().sum(), [x] + list(model.parameters()))
    return y, grads


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_compiled_model_matches_eager(device, dynamic):
    torch.manual_seed(0)
    model = SmallNet().to(device)
    compiled = torch.compile(model, fullgraph=True, dynamic=dynamic)
    # dynamic: two batch sizes and lengths through the one symbolic-shape graph
    for shape in [(2, 3, 40), (3, 3, 57)][:2 if dynamic else 1]:
        x = torch.randn(shape, device=device)
        y_eager, g_eager = run_and_grads(model, x)
        y_comp, g_comp = run_and_grads(compiled, x)
        torch.testing.assert_close(y_comp, y_eager, rtol=1e-5, atol=1e-5)
        for a, b in zip(g_comp, g_eager, strict=False):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_compiled_functional_with_converted_model(device):
    """convert_conv1d before torch.compile: the converted model compiles in one graph too."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 2, 1)).to(device)
    reference = [m for m in model]
    x = torch.randn(2, 4, 16, device=device)
    y_ref = model(x)
    conv1d_ext.convert_conv1d(model)
    assert all(isinstance(m, Conv1dExt) for m in (reference[0], reference[2]))
    y = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
