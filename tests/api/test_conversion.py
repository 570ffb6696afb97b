"""Conversion of existing PyTorch models: Conv1dExt.from_conv1d and ConvTranspose1dExt.from_conv_transpose1d
(parameters shared or copied, what they refuse), convert_conv1d on a model with every kind of nn.Conv1d
(parametrized, hook-based weight_norm, user subclasses), and convert_convs on a small randomly initialised
HiFi-GAN-style generator (weight-normed ConvTranspose1d upsamplers and ResBlocks)."""

import pytest
import torch
import torch.nn.functional as F
from module_checks import assert_converted
from torch import nn

import conv1d_ext
from conv1d_ext import Conv1dExt, ConvTranspose1dExt, convert_conv1d, convert_convs


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------------
# from_conv1d and from_conv_transpose1d
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("copy_params", [False, True])
def test_from_conv1d(device, copy_params):
    ref = nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="reflect",
                    device=device, dtype=torch.float64)
    ref.bias.requires_grad_(False)
    ref.eval()
    ours = Conv1dExt.from_conv1d(ref, copy=copy_params)
    assert_converted(ours, ref, Conv1dExt, copy_params, torch.randn(2, 4, 11, device=device, dtype=torch.float64))


def test_from_conv1d_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError):
        Conv1dExt.from_conv1d(nn.Linear(3, 3))
    with pytest.raises(ValueError):
        Conv1dExt.from_conv1d(nn.LazyConv1d(4, 3))
    with pytest.raises(ValueError):
        Conv1dExt.from_conv1d(nn.utils.parametrizations.weight_norm(nn.Conv1d(2, 2, 3)))


@pytest.mark.parametrize("copy_params", [False, True])
def test_from_conv_transpose1d(device, copy_params):
    ref = nn.ConvTranspose1d(4, 6, 4, stride=2, padding=2, output_padding=1, dilation=2, groups=2,
                             device=device, dtype=torch.float64)
    ref.bias.requires_grad_(False)
    ref.eval()
    ours = ConvTranspose1dExt.from_conv_transpose1d(ref, copy=copy_params)
    assert_converted(ours, ref, ConvTranspose1dExt, copy_params,
                     torch.randn(2, 4, 11, device=device, dtype=torch.float64))


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_from_conv_transpose1d_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.Conv1d(3, 3, 3))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.LazyConvTranspose1d(4, 3))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.utils.parametrizations.weight_norm(nn.ConvTranspose1d(2, 2, 3)))
    with pytest.raises(ValueError):
        ConvTranspose1dExt.from_conv_transpose1d(nn.utils.weight_norm(nn.ConvTranspose1d(2, 2, 3)))


# ---------------------------------------------------------------------------------------------------
# convert_conv1d on a model with every kind of nn.Conv1d
# ---------------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.mix = nn.Conv1d(8, 8, 1)

    def forward(self, x):
        return x + self.mix(F.gelu(self.conv(x)))


class MyConv(nn.Conv1d):
    """A user subclass with its own forward: not converted."""

    def forward(self, x):
        return super().forward(x) * 2


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(3, 8, 5, stride=2, padding=2, padding_mode="replicate")
        self.blocks = nn.ModuleList([Block(), Block()])
        self.wn = nn.utils.parametrizations.weight_norm(nn.Conv1d(8, 8, 3, padding="same", dilation=2))
        self.old_wn = nn.utils.weight_norm(nn.Conv1d(8, 8, 3, padding=1))  # the hook-based weight_norm
        self.custom = MyConv(8, 4, 1)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = self.custom(self.old_wn(self.wn(x)))
        return self.head(x.transpose(1, 2))


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def make_model():
    torch.manual_seed(4)
    return Model()


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_convert_conv1d_swaps_every_conv_in_place():
    model = make_model()
    reference_model = make_model()
    params_before = [id(p) for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, 32)
    y_ref = reference_model(x)

    assert convert_conv1d(model) is model
    assert type(model.stem) is Conv1dExt
    assert type(model.blocks[0].conv) is Conv1dExt and type(model.blocks[1].mix) is Conv1dExt
    assert isinstance(model.wn, Conv1dExt) and nn.utils.parametrize.is_parametrized(model.wn)
    assert type(model.old_wn) is Conv1dExt  # hooks kept: weight recomputed from weight_g, weight_v
    assert type(model.custom) is MyConv
    assert [id(p) for p in model.parameters()] == params_before
    assert list(model.state_dict()) == list(reference_model.state_dict())

    y = model(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    # the gradients flow through the converted modules, parametrizations and hooks as before
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for (name, p), p_ref in zip(model.named_parameters(), reference_model.parameters(), strict=False):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=name)
    optimizer.step()  # the optimizer still holds the model's parameters
    assert not torch.equal(model.stem.weight, reference_model.stem.weight)


def test_convert_conv1d_on_a_bare_conv_and_idempotence():
    conv = nn.Conv1d(2, 3, 3)
    assert convert_conv1d(conv) is conv and type(conv) is Conv1dExt
    assert convert_conv1d(conv) is conv and type(conv) is Conv1dExt
    lazy = nn.LazyConv1d(3, 3)
    assert type(convert_conv1d(lazy)) is nn.LazyConv1d


# ---------------------------------------------------------------------------------------------------
# convert_convs on a real decoder: a small randomly initialised HiFi-GAN-style generator
# ---------------------------------------------------------------------------------------------------

wn = nn.utils.parametrizations.weight_norm


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: pairs of (dilated conv, conv) with leaky ReLU and a residual connection."""

    def __init__(self, channels, kernel_size, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList([wn(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                                  padding=d * (kernel_size - 1) // 2)) for d in dilations])
        self.convs2 = nn.ModuleList([wn(nn.Conv1d(channels, channels, kernel_size,
                                                  padding=(kernel_size - 1) // 2)) for _ in dilations])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class Generator(nn.Module):
    """HiFi-GAN's generator, small: mel (80) -> conv_pre -> [leaky ReLU, weight-normed ConvTranspose1d
    upsampler (k = 2·rate, padding (k - rate)/2), mean of ResBlocks] x 3 -> leaky ReLU -> conv_post -> tanh.
    One upsampler and conv_post use the older hook-based torch.nn.utils.weight_norm."""

    def __init__(self, channels=32, rates=(4, 4, 2), kernels=(3, 5), dilations=(1, 3)):
        super().__init__()
        self.conv_pre = wn(nn.Conv1d(80, channels, 7, padding=3))
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        for i, r in enumerate(rates):
            c_in, c_out = channels // 2**i, channels // 2 ** (i + 1)
            up = nn.ConvTranspose1d(c_in, c_out, 2 * r, stride=r, padding=r // 2)
            self.ups.append(nn.utils.weight_norm(up) if i == 1 else wn(up))
            self.resblocks.extend(ResBlock(c_out, k, dilations) for k in kernels)
        self.conv_post = nn.utils.weight_norm(nn.Conv1d(channels // 2 ** len(rates), 1, 7, padding=3))
        self.kernels = len(kernels)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.kernels:(i + 1) * self.kernels]
            x = sum(block(x) for block in blocks) / self.kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def make_generator(dtype):
    torch.manual_seed(5)
    return Generator().to(dtype)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_id)
def test_convert_convs_on_a_hifigan_generator(dtype):
    model, reference = make_generator(dtype), make_generator(dtype)
    params_before = [id(p) for p in model.parameters()]
    seen = []
    model.ups[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    mel = torch.randn(2, 80, 12, dtype=dtype)

    assert convert_convs(model) is model
    ups = list(model.ups)
    assert all(isinstance(m, ConvTranspose1dExt) for m in ups)
    assert nn.utils.parametrize.is_parametrized(ups[0]) and type(ups[0]).__name__ == "ParametrizedConvTranspose1dExt"
    assert type(ups[1]) is ConvTranspose1dExt and hasattr(ups[1], "weight_g")  # hook-based weight_norm kept
    assert type(model.conv_post) is conv1d_ext.Conv1dExt
    assert all(isinstance(m, conv1d_ext.Conv1dExt) for m in model.modules() if isinstance(m, nn.Conv1d))
    assert [id(p) for p in model.parameters()] == params_before
    assert list(model.state_dict()) == list(reference.state_dict())

    x, x_ref = mel.clone().requires_grad_(), mel.clone().requires_grad_()
    y, y_ref = model(x), reference(x_ref)
    assert y.shape == y_ref.shape == (2, 1, 12 * 32) and seen == [(2, 16, 48)]  # the hook still runs
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *model.parameters()], gy)
    grads_ref = torch.autograd.grad(y_ref, [x_ref, *reference.parameters()], gy)
    # float32: round-off of ~20 layers, differently ordered sums on each side
    rtol, atol = (1e-10, 1e-12) if dtype == torch.float64 else (2e-4, 2e-5)
    torch.testing.assert_close(y, y_ref, rtol=rtol, atol=atol)
    names = ["input"] + [n for n, _ in model.named_parameters()]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        scale = g_ref.abs().max().item()
        torch.testing.assert_close(g, g_ref, rtol=rtol, atol=atol * max(1.0, scale), msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_convert_conv1d_still_converts_conv1d_only():
    model = make_generator(torch.float32)
    conv1d_ext.convert_conv1d(model)
    assert all(type(m) in (nn.ConvTranspose1d,) or type(m).__name__ == "ParametrizedConvTranspose1d"
               for m in model.ups)
    assert type(model.conv_post) is conv1d_ext.Conv1dExt
    # and convert_convs finishes the job, leaving the converted ones as they are
    convert_convs(model)
    assert all(isinstance(m, ConvTranspose1dExt) for m in model.ups)


def test_convert_convs_bare_module_idempotence_and_subclasses():
    up = nn.ConvTranspose1d(2, 3, 4, stride=2)
    assert convert_convs(up) is up and type(up) is ConvTranspose1dExt
    assert convert_convs(up) is up and type(up) is ConvTranspose1dExt

    class MyUp(nn.ConvTranspose1d):  # a subclass with its own forward: left alone
        def forward(self, x, output_size=None):
            return super().forward(x, output_size) * 2

    assert type(convert_convs(MyUp(2, 3, 4))) is MyUp
    assert type(convert_convs(nn.LazyConvTranspose1d(3, 3))) is nn.LazyConvTranspose1d
