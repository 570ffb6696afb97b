"""Conv arithmetic (conv1d_ext.explain, conv1d_ext.receptive_field) checked against PyTorch itself: output
lengths against F.conv1d / F.conv_transpose1d on real tensors, the positions an output reads and receptive
fields against the input gradient of that output (autograd, float64, positive weights so no position
cancels out), errors against PyTorch's, the command line in a subprocess, the pictures as PNG files."""

import math
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conv1d_ext import Conv1dExt, explain, receptive_field
from conv1d_ext.arithmetic import ReceptiveFieldWarning

# PyTorch warns that 'same' padding with an even kernel span may copy the input; that is its business here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

# ---- random convolutions ------------------------------------------------------------------------------------


def _pads(padding, kernel_size, dilation):
    """(left, right) padding of a config, only to find the shortest length (the tests check the padding)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":  # total from F.conv1d's output length; the split is what 'same' is specified as
        total = dilation * (kernel_size - 1)
        return total // 2, total - total // 2
    if isinstance(padding, tuple):
        return padding
    return padding, padding


@st.composite
def conv_configs(draw, transposed=None):
    """Keyword arguments of explain() and a length from the minimum PyTorch accepts up."""
    transposed = draw(st.booleans()) if transposed is None else transposed
    kernel_size = draw(st.integers(1, 7))
    dilation = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    config = dict(kernel_size=kernel_size, dilation=dilation, groups=groups,
                  in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 2)))
    span = dilation * (kernel_size - 1) + 1
    if transposed:
        stride = draw(st.integers(1, 4))
        padding = draw(st.integers(0, 6))
        output_padding = draw(st.integers(0, max(stride, dilation) - 1))
        config.update(transposed=True, stride=stride, padding=padding, output_padding=output_padding)
        # out_len = (L − 1)·stride − 2·padding + span + output_padding must be >= 1
        shortest = 1 + max(0, math.ceil((1 + 2 * padding - span - output_padding) / stride))
    else:
        kind = draw(st.sampled_from(["int", "same", "valid", "pair"]))
        stride = 1 if kind == "same" else draw(st.integers(1, 4))
        padding = {"int": lambda: draw(st.integers(0, 6)), "same": lambda: "same", "valid": lambda: "valid",
                   "pair": lambda: (draw(st.integers(0, 6)), draw(st.integers(0, 6)))}[kind]()
        config.update(stride=stride, padding=padding)
        left, right = _pads(padding, kernel_size, dilation)
        shortest = max(1, span - left - right)
    length = shortest + draw(st.sampled_from([0, 0, 1, 2, draw(st.integers(0, 30))]))
    return config, length, shortest


def _torch_conv(config, x, weight):
    """The conv PyTorch runs for an explain() config (explicit (left, right) padding: F.pad, then no padding)."""
    if config.get("transposed"):
        return F.conv_transpose1d(x, weight, stride=config["stride"], padding=config["padding"],
                                  output_padding=config["output_padding"], groups=config["groups"],
                                  dilation=config["dilation"])
    padding = config["padding"]
    if isinstance(padding, tuple):
        x, padding = F.pad(x, padding), 0
    return F.conv1d(x, weight, stride=config["stride"], padding=padding, dilation=config["dilation"],
                    groups=config["groups"])


def _weight(config, dtype=torch.float64, fill=None):
    groups, k = config["groups"], config["kernel_size"]
    if config.get("transposed"):
        shape = (config["in_channels"], config["out_channels"] // groups, k)
    else:
        shape = (config["out_channels"], config["in_channels"] // groups, k)
    return torch.full(shape, fill, dtype=dtype) if fill is not None else torch.randn(shape, dtype=dtype)


# ---- explain: output lengths ------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(conv_configs())
def test_output_length_is_pytorchs(case):
    config, length, _ = case
    x = torch.randn(2, config["in_channels"], length, dtype=torch.float64)
    expected = _torch_conv(config, x, _weight(config)).shape[-1]
    e = explain(length=length, **config)
    assert e.out_len == expected
    assert str(e)  # the text renders for every configuration


@settings(max_examples=150)
@given(conv_configs())
def test_one_below_the_shortest_length_fails_in_both(case):
    config, _, shortest = case
    if shortest == 1:
        return  # every positive length works
    x = torch.randn(1, config["in_channels"], shortest - 1, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        _torch_conv(config, x, _weight(config))
    with pytest.raises(ValueError):
        explain(length=shortest - 1, **config)


def test_same_padding_puts_the_odd_cell_on_the_right_as_pytorch_does():
    # k = 4: total 3. F.conv1d(padding='same') equals F.pad(x, (1, 2)) and an unpadded conv.
    x, w = torch.randn(1, 1, 9, dtype=torch.float64), torch.randn(1, 1, 4, dtype=torch.float64)
    e = explain(kernel_size=4, padding="same", length=9)
    assert (e.pad_left, e.pad_right) == (1, 2)
    torch.testing.assert_close(F.conv1d(x, w, padding="same"), F.conv1d(F.pad(x, (e.pad_left, e.pad_right)), w))


# ---- explain: which inputs each output reads ---------------------------------------------------------------------


def _jacobian(config, length):
    """d output[t] / d input[p] summed over channels, by autograd, with all-ones weights (no cancellation)."""
    x = torch.rand(1, config["in_channels"], length, dtype=torch.float64, requires_grad=True)

    def one_channel_sum(inp):
        return _torch_conv(config, inp, _weight(config, fill=1.0)).sum(dim=(0, 1))

    jacobian = torch.autograd.functional.jacobian(one_channel_sum, x)  # (out_len, 1, C_in, L)
    return jacobian.sum(dim=(1, 2))


def _read_positions(jacobian_row):
    return set(torch.nonzero(jacobian_row).flatten().tolist())


@settings(max_examples=200)
@given(conv_configs())
def test_inputs_of_are_the_positions_the_gradient_reaches(case):
    config, length, _ = case
    e = explain(length=length, **config)
    jacobian = _jacobian(config, length)
    assert jacobian.shape[0] == e.out_len
    for t in range(e.out_len):
        reads = e.inputs_of(t)
        expected = _read_positions(jacobian[t])
        if reads is None:
            assert config.get("transposed") and not expected
            continue
        first, last, step = reads
        inside = {p for p in range(first, last + 1, step) if 0 <= p < length}
        assert inside == expected, f"output {t}"
        if not config.get("transposed"):  # a direct conv reads k taps, inputs or padding
            assert len(range(first, last + 1, step)) == config["kernel_size"]


@settings(max_examples=100)
@given(conv_configs())
def test_padding_and_unread_counts_match_the_gradient(case):
    config, length, _ = case
    e = explain(length=length, **config)
    jacobian = _jacobian(config, length)
    read_by_some_output = (jacobian != 0).any(dim=0)
    unread = tuple(torch.nonzero(~read_by_some_output).flatten().tolist())
    assert e.unread_inputs() == unread and e.inputs_never_read == len(unread)
    # An output touches padding when its k taps (direct conv) are not all real inputs; a transposed conv's
    # output when a tap lands on a position outside the input.
    touching = []
    for t in range(e.out_len):
        reads = e.inputs_of(t)
        if reads is not None and any(not 0 <= p < length for p in range(reads[0], reads[1] + 1, reads[2])):
            touching.append(t)
    assert e.padded_outputs() == tuple(touching) and e.outputs_reading_padding == len(touching)
    if not config.get("transposed"):
        taps_on_inputs = (jacobian != 0).sum(dim=1)
        assert tuple(torch.nonzero(taps_on_inputs < config["kernel_size"]).flatten().tolist()) == tuple(touching)


def test_explain_a_module_uses_its_numbers():
    conv = Conv1dExt(4, 6, 5, stride=2, padding=3, dilation=2, groups=2, bias=False)
    e = explain(conv, 50)
    x = torch.randn(1, 4, 50)
    assert e.out_len == conv(x).shape[-1] == nn.Conv1d(4, 6, 5, stride=2, padding=3, dilation=2, groups=2)(x).shape[-1]
    assert (e.kernel_size, e.stride, e.dilation, e.groups, e.pad_left, e.pad_right) == (5, 2, 2, 2, 3, 3)
    assert e.macs == e.out_len * 6 * 2 * 5
    assert e.weight_bytes == conv.weight.numel() * 4 and e.bias_bytes == 0
    assert e.input_bytes == x.numel() * 4 and e.output_bytes == conv(x).numel() * 4
    assert "Conv1dExt(" in str(e)


def test_explain_a_transposed_module():
    conv = nn.ConvTranspose1d(3, 4, 4, stride=3, padding=2, output_padding=1, dilation=2)
    e = explain(conv, 20, dtype=torch.bfloat16, batch=8)
    out = conv(torch.randn(8, 3, 20))
    assert e.out_len == out.shape[-1]
    assert e.output_bytes == out.numel() * 2 and e.input_bytes == 8 * 3 * 20 * 2
    assert e.macs == 8 * 20 * 3 * 4 * 4
    assert e.weight_bytes == conv.weight.numel() * 2


def test_padding_modes_keep_the_positions():
    for mode in ("reflect", "replicate", "circular"):
        conv = nn.Conv1d(1, 1, 3, padding=2, padding_mode=mode)
        e = explain(conv, 10)
        assert e.out_len == conv(torch.randn(1, 1, 10)).shape[-1]
        assert e.inputs_of(0) == (-2, 0, 1)
        assert mode in str(e) and "not zeros" in str(e)


def test_text_shows_the_formula_with_numbers():
    text = str(explain(kernel_size=3, stride=2, dilation=4, padding=4, length=100))
    assert "floor((100 + 4 + 4 − 4·2 − 1) / 2) + 1" in text
    assert "= 50" in text
    same = str(explain(kernel_size=4, dilation=3, padding="same", length=10))
    assert "total = dilation·(k − 1) = 3·3 = 9, left = total // 2 = 4, right = total − left = 5" in same
    transposed = str(explain(kernel_size=4, stride=2, padding=1, transposed=True, length=10))
    assert "(10 − 1)·2 − 2·1 + 1·3 + 0 + 1 = 20" in transposed


def test_inputs_of_rejects_outputs_out_of_range():
    e = explain(kernel_size=3, length=10)
    with pytest.raises(IndexError):
        e.inputs_of(8)
    with pytest.raises(IndexError):
        e.inputs_of(-1)


# ---- explain: errors --------------------------------------------------------------------------------------------


def _pytorch_error(build):
    try:
        build()
    except (ValueError, RuntimeError, TypeError) as error:
        return str(error)
    raise AssertionError("PyTorch accepted it")


def test_same_padding_with_stride_is_pytorchs_value_error():
    message = _pytorch_error(lambda: nn.Conv1d(1, 1, 3, stride=2, padding="same"))
    with pytest.raises(ValueError) as error:
        explain(kernel_size=3, stride=2, padding="same", length=10)
    assert str(error.value) == message


@pytest.mark.parametrize("arguments, error, pytorch", [
    (dict(stride=0), ValueError, lambda: F.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), stride=0)),
    (dict(dilation=0), ValueError, lambda: F.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), dilation=0)),
    (dict(padding=-1), ValueError, lambda: F.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), padding=-1)),
    (dict(padding="full"), ValueError, lambda: nn.Conv1d(1, 1, 3, padding="full")),
    (dict(padding=(1, 2, 3)), ValueError,
     lambda: F.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), padding=(1, 2, 3))),
    (dict(in_channels=3, groups=2), ValueError, lambda: nn.Conv1d(3, 2, 3, groups=2)),
    (dict(out_channels=3, in_channels=2, groups=2), ValueError, lambda: nn.Conv1d(2, 3, 3, groups=2)),
    (dict(padding_mode="mirror"), ValueError, lambda: nn.Conv1d(1, 1, 3, padding_mode="mirror")),
    (dict(transposed=True, padding_mode="reflect"), ValueError,
     lambda: nn.ConvTranspose1d(1, 1, 3, padding_mode="reflect")),
    (dict(transposed=True, stride=2, output_padding=2), ValueError,
     lambda: F.conv_transpose1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), stride=2, output_padding=2)),
    (dict(stride=1.5), TypeError, lambda: F.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3), stride=1.5)),
    (dict(stride=True), TypeError, None),
    (dict(kernel_size=0), ValueError, None),
    (dict(output_padding=1), ValueError, None),  # not transposed
    (dict(transposed=True, padding="same"), ValueError, None),
])
def test_bad_arguments_are_errors_like_pytorchs(arguments, error, pytorch):
    if pytorch is not None:
        _pytorch_error(pytorch)  # PyTorch rejects it too
    config = dict(kernel_size=3, length=9)
    config.update(arguments)
    with pytest.raises(error):
        explain(**config)


def test_bad_calls():
    conv = nn.Conv1d(1, 1, 3)
    with pytest.raises(TypeError, match="not both"):
        explain(conv, 10, kernel_size=3)
    with pytest.raises(TypeError):
        explain(nn.Conv2d(1, 1, 3), 10)
    with pytest.raises(TypeError):
        explain(conv)  # no length
    with pytest.raises(ValueError):
        explain(conv, 0)
    with pytest.raises(ValueError, match="forward pass"):
        explain(nn.LazyConv1d(2, 3), 10)
    with pytest.raises(ValueError):
        explain(nn.Conv1d(1, 1, 3, padding=4, padding_mode="reflect"), 4)  # F.pad refuses it too
    with pytest.raises(ValueError):
        explain(conv, 10, dtype="float31")


# ---- receptive_field: random stacks against autograd ----------------------------------------------------------


def _positive_weights(model):
    """All-positive conv weights (1/k, so values stay moderate), zero biases: no input position cancels out."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                module.weight.fill_(1.0 / module.kernel_size[0])
                if module.bias is not None:
                    module.bias.zero_()
    return model.double().eval()


@st.composite
def layers(draw, transposed):
    kinds = ["conv", "causal", "avgpool", "pointwise"] + (["transposed"] * 2 if transposed else [])
    kind = draw(st.sampled_from(kinds))
    k, dilation = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    if kind == "conv":
        padding = "same" if stride == 1 and draw(st.booleans()) else draw(st.integers(0, 3))
        return nn.Conv1d(1, 1, k, stride=stride, padding=padding, dilation=dilation)
    if kind == "causal":  # left padding only: output t reads inputs up to t·stride
        return nn.Sequential(nn.ConstantPad1d((dilation * (k - 1), 0), 0.0),
                             nn.Conv1d(1, 1, k, stride=stride, dilation=dilation))
    if kind == "avgpool":
        return nn.AvgPool1d(k, stride=stride, padding=draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans()))
    if kind == "transposed":
        return nn.ConvTranspose1d(1, 1, k, stride=stride, padding=draw(st.integers(0, 2)), dilation=dilation,
                                  output_padding=draw(st.integers(0, max(stride, dilation) - 1)))
    # Pointwise layers with a positive derivative everywhere, so they hide no position.
    return draw(st.sampled_from([lambda: nn.LeakyReLU(0.1), nn.Identity, lambda: nn.BatchNorm1d(1),
                                 lambda: nn.Dropout(0.5)]))()


def _gradient_support(model, length, outputs, trials=1, seed=0, channels=1):
    """For each output t: the input positions whose gradient is non-zero (union over ``trials`` random inputs)."""
    generator = torch.Generator().manual_seed(seed)
    support = {t: set() for t in outputs}
    for _ in range(trials):
        x = torch.rand(1, channels, length, dtype=torch.float64, generator=generator).requires_grad_()
        y = model(x)
        for t in outputs:
            (grad,) = torch.autograd.grad(y[0, :, t].sum(), x, retain_graph=True)
            support[t] |= set(torch.nonzero(grad[0].abs().sum(0)).flatten().tolist())
    return support


def _some_outputs(out_length, count=24):
    edges = set(range(min(4, out_length))) | set(range(max(0, out_length - 4), out_length))
    return sorted(edges | {round(i * (out_length - 1) / (count - 1)) for i in range(count)})


def _check_against_gradients(model, rf, trials=1):
    assert rf.complete
    outputs = _some_outputs(rf.out_length)
    support = _gradient_support(model, rf.length, outputs, trials, channels=rf.in_channels)
    has_transposed = any(layer.kind == "conv_transpose" for layer in rf.layers)
    for t in outputs:
        read = support[t]
        first, last = rf.window(t)
        assert read <= set(range(math.ceil(first), math.floor(last) + 1)), f"output {t} reads outside its window"
        if trials == 1:
            assert rf.input_span(t) == ((min(read), max(read)) if read else None), f"output {t}"
        # With non-negative padding, an integer stack's window ends are read whenever they are real inputs.
        if not has_transposed and 0 <= first and last < rf.length:
            assert (min(read), max(read)) == (first, last), f"output {t}"


@settings(max_examples=60)
@given(st.lists(layers(transposed=False), min_size=1, max_size=4))
def test_receptive_field_of_random_stacks_is_the_gradient_span(stack):
    model = _positive_weights(nn.Sequential(*stack))
    rf = receptive_field(model)  # the default length suits every stack
    assert rf.out_length == model(torch.zeros(1, 1, rf.length, dtype=torch.float64)).shape[-1]
    _check_against_gradients(model, rf)


@settings(max_examples=40)
@given(st.lists(layers(transposed=True), min_size=1, max_size=4))
def test_receptive_field_with_transposed_convs_bounds_the_gradient_and_input_span_is_exact(stack):
    model = _positive_weights(nn.Sequential(*stack))
    rf = receptive_field(model)
    _check_against_gradients(model, rf)


def test_max_pool_receptive_field_is_the_union_of_gradients_over_inputs():
    # Max pooling sends each output's gradient to one element of its window; over many random inputs every
    # element of the window is the maximum some time.
    model = _positive_weights(nn.Sequential(nn.Conv1d(1, 1, 3, padding=1), nn.MaxPool1d(3, stride=2, dilation=2),
                                            nn.Conv1d(1, 1, 2, dilation=3), nn.MaxPool1d(2)))
    rf = receptive_field(model, 64)
    # size: 3, + (5 − 1)·1 for the pool's dilated window, + (4 − 1)·2, + (2 − 1)·4
    assert (rf.size, rf.hop, rf.offset) == (15, 4, -1)
    _check_against_gradients(model, rf, trials=64)


def test_causal_stack_has_lookahead_zero_and_a_centred_one_half_its_size():
    causal = _positive_weights(nn.Sequential(
        nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(1, 1, 3), nn.ReLU(),
        nn.ConstantPad1d((4, 0), 0.0), nn.Conv1d(1, 1, 3, dilation=2),
        nn.ConstantPad1d((8, 0), 0.0), nn.Conv1d(1, 1, 3, dilation=4)))
    rf = receptive_field(causal, 40)
    assert (rf.size, rf.hop, rf.offset, rf.lookahead) == (15, 1, -14, 0)
    _check_against_gradients(causal, rf)
    centred = receptive_field(nn.Sequential(nn.Conv1d(1, 1, 3, padding="same"), nn.Conv1d(1, 1, 5, padding=2)), 20)
    assert (centred.size, centred.offset, centred.lookahead) == (7, -3, 3)


class _ResidualBlock(nn.Module):
    def __init__(self, dilation):
        super().__init__()
        self.pad = nn.ConstantPad1d((dilation, 0), 0.0)
        self.conv = nn.Conv1d(4, 4, 2, dilation=dilation)

    def forward(self, x):
        return x + torch.tanh(self.conv(self.pad(x)))


def test_residual_causal_stack_composes_as_a_chain_and_is_marked():
    model = _positive_weights(nn.Sequential(nn.Conv1d(2, 4, 1), *[_ResidualBlock(2 ** i) for i in range(4)]))
    rf = receptive_field(model, 40)
    assert (rf.size, rf.hop, rf.offset, rf.lookahead) == (16, 1, -15, 0)
    assert [layer.fed_by_previous for layer in rf.layers if layer.kind == "pad"] == [True, False, False, False]
    assert "read a tensor computed in forward()" in str(rf)
    _check_against_gradients(model, rf)


class _ReversedRegistration(nn.Module):
    """Registers its layers in the opposite order to the one forward() runs them in."""

    def __init__(self):
        super().__init__()
        self.last = nn.Conv1d(1, 1, 2, dilation=5)
        self.middle = nn.AvgPool1d(2)
        self.first = nn.Conv1d(1, 1, 3, stride=2, padding=1)

    def forward(self, x):
        return self.last(self.middle(self.first(x)))


def test_layers_come_in_forward_order():
    model = _positive_weights(_ReversedRegistration())
    rf = receptive_field(model, 50)
    assert [layer.name for layer in rf.layers] == ["first", "middle", "last"]
    assert [(layer.size, layer.hop, layer.offset) for layer in rf.layers] == [(3, 2, -1), (2, 2, 0), (6, 1, 0)]
    assert [layer.in_length for layer in rf.layers] == [50, 25, 12]
    _check_against_gradients(model, rf)


def test_a_layer_called_twice_counts_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 3)

        def forward(self, x):
            return self.conv(self.conv(x))

    rf = receptive_field(Twice(), 20)
    assert [layer.name for layer in rf.layers] == ["conv", "conv (call 2)"]
    assert rf.size == 5


def test_conv1d_ext_modules_and_channels():
    model = nn.Sequential(Conv1dExt(3, 8, 5, stride=2), nn.GELU(), nn.GroupNorm(2, 8), Conv1dExt(8, 4, 3))
    rf = receptive_field(model, 40)
    assert rf.in_channels == 3 and rf.out_length == model(torch.randn(1, 3, 40)).shape[-1]
    assert (rf.size, rf.hop, rf.offset) == (9, 2, 0)
    assert rf.layers[2].kind == "norm"


# ---- receptive_field: what it cannot know ---------------------------------------------------------------------


class _LinearOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3)
        self.fc = nn.Linear(18, 6)
        self.after = nn.Conv1d(1, 1, 3)

    def forward(self, x):
        return self.after(self.fc(self.conv(x)))


def test_a_linear_over_time_is_unknown_and_stops_the_cumulative_numbers():
    with pytest.warns(ReceptiveFieldWarning, match="'fc'"):
        rf = receptive_field(_LinearOverTime(), 20)
    assert not rf.complete and rf.size is None and rf.hop is None and rf.offset is None
    assert [layer.kind for layer in rf.layers] == ["conv", "unknown", "conv"]
    assert rf.layers[0].cumulative.size == 3 and rf.layers[1].cumulative is None and rf.layers[2].cumulative is None
    assert rf.layers[2].size == 3  # its own window is still known
    assert "unknown" in str(rf)
    with pytest.raises(ValueError):
        rf.input_span(0)


class _Interpolates(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2)


def test_length_changed_by_forward_code_is_unknown():
    with pytest.warns(ReceptiveFieldWarning, match="forward code"):
        rf = receptive_field(_Interpolates(), 20)
    assert rf.layers[-1].kind == "unknown" and rf.layers[-1].in_length == 18 and rf.layers[-1].out_length == 36
    assert rf.size is None


class _Chomp(nn.Module):
    """A custom module that keeps the length."""

    def forward(self, x):
        return x * 2


def test_unrecognised_length_keeping_module_is_assumed_pointwise_with_a_warning():
    with pytest.warns(ReceptiveFieldWarning, match="assumed"):
        rf = receptive_field(nn.Sequential(nn.Conv1d(1, 1, 3), _Chomp(), nn.Conv1d(1, 1, 3)), 20)
    assert rf.layers[1].kind == "assumed pointwise" and rf.size == 5


def test_forward_pass_leaves_the_model_alone():
    model = nn.Sequential(nn.Conv1d(2, 2, 3), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model.train()
    stats = model[1].running_mean.clone()
    receptive_field(model, 30)
    assert model.training and all(m.training for m in model.modules())
    torch.testing.assert_close(model[1].running_mean, stats)


def test_receptive_field_errors():
    with pytest.raises(TypeError):
        receptive_field(lambda x: x)
    with pytest.raises(ValueError, match="forward pass"):
        receptive_field(nn.Conv1d(1, 1, 5), 3)  # too short: PyTorch's error, wrapped
    with pytest.raises(ValueError, match="forward pass"):
        receptive_field(nn.Sequential(nn.LazyConv1d(2, 3)), 10)
    with pytest.raises(ValueError):
        receptive_field(nn.Conv1d(1, 1, 3), 0)
    rf = receptive_field(nn.Conv1d(1, 1, 3), 10)
    with pytest.raises(IndexError):
        rf.window(8)


# ---- pictures ----------------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = pathlib.Path(path).read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 2000


@pytest.mark.parametrize("config", [
    dict(kernel_size=3, stride=2, dilation=2, padding=2, length=12),
    dict(kernel_size=3, stride=2, dilation=4, padding=4, length=100),  # long: drawn around the outputs shown
    dict(kernel_size=4, dilation=2, padding="same", padding_mode="reflect", length=10),
    dict(kernel_size=4, stride=2, padding=1, transposed=True, length=8),
    dict(kernel_size=3, stride=3, padding=1, dilation=2, output_padding=1, transposed=True, length=30),
    dict(kernel_size=1, length=1),
])
def test_explain_plot_writes_a_png(tmp_path, config):
    pytest.importorskip("matplotlib")
    path = tmp_path / "conv.png"
    assert explain(**config).plot(path) == path
    assert _is_png(path)


def test_explain_plot_of_chosen_outputs(tmp_path):
    pytest.importorskip("matplotlib")
    e = explain(kernel_size=5, stride=3, padding=2, length=40)
    assert _is_png(e.plot(tmp_path / "a.png", outputs=[1, 7]))
    assert _is_png(e.plot(tmp_path / "b.png", outputs=4))
    with pytest.raises(IndexError):
        e.plot(tmp_path / "c.png", outputs=[e.out_len])


def test_receptive_field_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    causal = nn.Sequential(*[layer for d in (1, 2, 4, 8) for layer in
                             (nn.ConstantPad1d((2 * d, 0), 0.0), nn.Conv1d(1, 1, 3, dilation=d), nn.ReLU())])
    rf = receptive_field(causal, 48)
    assert _is_png(rf.plot(tmp_path / "causal.png", output=5))
    strided = nn.Sequential(*[nn.Conv1d(1, 1, 7, stride=2, padding=3) for _ in range(6)], nn.MaxPool1d(2),
                            nn.ConvTranspose1d(1, 1, 4, stride=2, padding=1))
    assert _is_png(receptive_field(strided).plot(tmp_path / "strided.png"))
    with pytest.warns(ReceptiveFieldWarning):
        unknown = receptive_field(_LinearOverTime(), 20)
    with pytest.raises(ValueError, match="unknown"):
        unknown.plot(tmp_path / "unknown.png")


def test_plot_without_matplotlib_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `import matplotlib.figure` fail
    with pytest.raises(ImportError, match="pip install matplotlib"):
        explain(kernel_size=3, length=10).plot(tmp_path / "x.png")


# ---- the command line ----------------------------------------------------------------------------------------


REPO = pathlib.Path(__file__).resolve().parents[2]


def _cli(*arguments):
    return subprocess.run([sys.executable, "-m", "conv1d_ext.arithmetic", *arguments], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_prints_the_explanation_and_draws_it(tmp_path):
    path = tmp_path / "cli.png"
    result = _cli("--kernel", "3", "--stride", "2", "--dilation", "4", "--padding", "4", "--length", "100",
                  "--plot", str(path), "--outputs", "0", "49")
    assert result.returncode == 0, result.stderr
    out_len = F.conv1d(torch.zeros(1, 1, 100), torch.zeros(1, 1, 3), stride=2, padding=4, dilation=4).shape[-1]
    assert f"= {out_len}" in result.stdout and "floor((100 + 4 + 4" in result.stdout
    assert _is_png(path)


def test_cli_reports_pytorchs_error_for_same_padding_with_stride():
    message = _pytorch_error(lambda: nn.Conv1d(1, 1, 3, stride=2, padding="same"))
    result = _cli("--kernel", "3", "--stride", "2", "--dilation", "4", "--padding", "same", "--length", "100")
    assert result.returncode == 2 and message in result.stderr and not result.stdout


def test_cli_main_in_process(capsys):
    import conv1d_ext
    from conv1d_ext.arithmetic.__main__ import main

    assert main(["--kernel", "2", "--padding", "1,0", "--length", "20"]) == 0
    assert "1 left, 0 right" in capsys.readouterr().out
    assert main(["--kernel", "4", "--stride", "2", "--padding", "1", "--transposed", "--length", "8"]) == 0
    assert "= 16" in capsys.readouterr().out
    assert main(["--kernel", "3", "--length", "2"]) == 2  # too short, as PyTorch says
    assert "Kernel size can't be greater than actual input size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--kernel", "3", "--length", "10", "--padding", "one"])  # argparse's own error
    # Importing the command line module leaves conv1d_ext.explain the function.
    assert conv1d_ext.explain(nn.Conv1d(1, 1, 3), 10).out_len == 8
