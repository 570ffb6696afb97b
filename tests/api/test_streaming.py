"""Streaming: chunked outputs equal the whole-signal output, for StreamingConv1d (a Conv1d or Conv1dExt run
causally, chunk by chunk, against F.conv1d on the left-padded signal; a stack of them; reset) and for
StreamingConvTranspose1d (chunks of any size, flush, the overlap it carries, unbatched and bfloat16 signals);
the errors both raise."""

import math

import pytest
import torch
import torch.nn.functional as F
from conv_ref import accumulation_eps, examples
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transposed_ref import abs_max, ceil_div, dtype_id

import conv1d_ext
from conv1d_ext import ConvTranspose1dExt, StreamingConv1d, StreamingConvTranspose1d

# ---------------------------------------------------------------------------------------------------
# StreamingConv1d
# ---------------------------------------------------------------------------------------------------


def causal_whole(module, x, state_len):
    return F.conv1d(F.pad(x, (state_len, 0)), module.weight, module.bias, module.stride, 0, module.dilation,
                    module.groups)


@settings(max_examples=examples(25))
@given(k=st.integers(1, 7), stride=st.integers(1, 3), dilation=st.integers(1, 3), groups=st.sampled_from([1, 2]),
       chunks=st.lists(st.integers(0, 5), min_size=1, max_size=5).filter(any), bias=st.booleans(),
       ext=st.booleans())
def test_streaming_matches_whole(k, stride, dilation, groups, chunks, bias, ext):
    torch.manual_seed(k * 100 + stride * 10 + dilation)
    cls = conv1d_ext.Conv1dExt if ext else nn.Conv1d
    module = cls(4, 6, k, stride=stride, dilation=dilation, groups=groups, bias=bias).double()
    stream = StreamingConv1d(module)
    lengths = [c * stride for c in chunks]
    x = torch.randn(2, 4, sum(lengths), dtype=torch.float64)
    outs, t = [], 0
    for n in lengths:
        outs.append(stream.step(x[..., t:t + n]))
        t += n
    expected = causal_whole(module, x, stream.state_len)
    torch.testing.assert_close(torch.cat(outs, -1), expected)


def test_streaming_stack_and_reset():
    torch.manual_seed(0)
    layers = [nn.Conv1d(3, 8, 5), conv1d_ext.Conv1dExt(8, 8, 3, dilation=2, groups=8),
              nn.Conv1d(8, 4, 4, stride=2), nn.Conv1d(4, 4, 3, dilation=3)]
    layers = [m.double() for m in layers]
    x = torch.randn(2, 3, 48, dtype=torch.float64)
    whole = x
    for m in layers:
        whole = causal_whole(m, whole, StreamingConv1d(m).state_len)
    streams = [StreamingConv1d(m) for m in layers]
    for _ in range(2):  # the second pass after reset() starts from zeros again
        outs = []
        for t in range(0, 48, 6):
            y = x[..., t:t + 6]
            for s in streams:
                y = s(y)
            outs.append(y)
        torch.testing.assert_close(torch.cat(outs, -1), whole)
        for s in streams:
            s.reset()
    single = StreamingConv1d(layers[0])
    torch.testing.assert_close(torch.cat([single.step(x[0, :, :20]), single.step(x[0, :, 20:])], -1),
                               causal_whole(layers[0], x[:1], single.state_len)[0])


def test_streaming_errors():
    with pytest.raises(ValueError, match="padding=0"):
        StreamingConv1d(nn.Conv1d(2, 2, 3, padding=1))
    with pytest.raises(TypeError):
        StreamingConv1d(nn.ConvTranspose1d(2, 2, 3))
    s = StreamingConv1d(nn.Conv1d(2, 2, 3, stride=2))
    with pytest.raises(ValueError, match="multiple of the stride"):
        s.step(torch.randn(1, 2, 3))
    s.step(torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="batch"):
        s.step(torch.randn(3, 2, 4))


# ---------------------------------------------------------------------------------------------------
# StreamingConvTranspose1d: chunked outputs equal the whole-signal output
# ---------------------------------------------------------------------------------------------------


@st.composite
def stream_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    stride = draw(st.integers(1, 6))
    k = draw(st.integers(1, 8) | st.just(2 * stride))
    dilation = draw(st.integers(1, 3))
    span = dilation * (k - 1) + 1
    padding = draw(st.just(0) | st.integers(0, span))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    cfg = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
               bias=draw(st.booleans()), dilation=dilation)
    min_len = max(1, 1 + ceil_div(2 * padding + 1 - span - output_padding, stride))
    length = min_len + draw(st.integers(0, 30))
    chunks = draw(st.lists(st.integers(0, 9), min_size=1, max_size=40).filter(any))  # sizes, cycled; 0: empty
    batch = draw(st.sampled_from([None, 1, 2]))
    return (groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), k), cfg, batch, length, chunks


def stream(streamer, x, chunk_sizes):
    """Feeds x in chunks of the given sizes (cycled until x is used up), then flushes."""
    outputs, i, j = [], 0, 0
    while i < x.shape[-1]:
        size = chunk_sizes[j % len(chunk_sizes)]
        outputs.append(streamer.step(x[..., i:i + size]))
        i, j = i + size, j + 1
    outputs.append(streamer.flush())
    return outputs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_id)
def test_streaming_equals_whole_signal(dtype):
    @settings(max_examples=examples(30))
    @given(problem=stream_problems(), seed=st.integers(0, 2**31))
    def check(problem, seed):
        args, cfg, batch, length, chunks = problem
        torch.manual_seed(seed)
        ref = nn.ConvTranspose1d(*args, **cfg, dtype=torch.float64)
        module = ConvTranspose1dExt(*args, **cfg, dtype=dtype)
        module.load_state_dict(ref.state_dict())
        ref.load_state_dict(module.state_dict())
        shape = (args[0], length) if batch is None else (batch, args[0], length)
        x = torch.randn(shape, dtype=torch.float64).to(dtype)
        want = ref(x.double())
        streamer = StreamingConvTranspose1d(module)
        for _ in range(2):  # flush resets: a second signal streams the same way
            got = torch.cat(stream(streamer, x, chunks), dim=-1)
            assert got.shape == want.shape and got.dtype == dtype, (got.shape, want.shape, problem)
            atol = 4 * accumulation_eps(dtype) * math.sqrt(args[0] * args[2] + 1) * max(1.0, abs_max(want))
            torch.testing.assert_close(got.double(), want, rtol=0, atol=atol, msg=lambda m: f"{m} ({problem})")

    check()


def test_streaming_emits_stride_outputs_per_input_and_carries_the_overlap():
    """With padding 0 (the plain streaming case) each step emits stride outputs per input, and flush the
    last dilation·(k − 1) + 1 − stride (HiFi-GAN-like k16 s8: 8)."""
    m = nn.ConvTranspose1d(4, 2, 16, stride=8)
    streamer = StreamingConvTranspose1d(m)
    assert streamer.overlap == 8
    x = torch.randn(1, 4, 10)
    outs = [streamer.step(x[..., :3]), streamer.step(x[..., 3:3]), streamer.step(x[..., 3:])]
    assert [o.shape[-1] for o in outs] == [24, 0, 56]
    last = streamer.flush()
    assert last.shape[-1] == 8
    torch.testing.assert_close(torch.cat(outs + [last], -1), m(x), rtol=1e-5, atol=1e-5)


def test_streaming_unbatched_bf16_and_errors():
    torch.manual_seed(0)
    ref = nn.ConvTranspose1d(4, 4, 4, stride=2, padding=1, groups=4).to(torch.bfloat16)
    streamer = StreamingConvTranspose1d(ConvTranspose1dExt.from_conv_transpose1d(ref))
    x = torch.randn(4, 25).to(torch.bfloat16)
    got = torch.cat(stream(streamer, x, [3, 5, 1]), -1)
    want = F.conv_transpose1d(x.double(), ref.weight.double(), ref.bias.double(), 2, 1, 0, 4)
    # each output: two bf16-rounded partial sums (the overlap) added, the bias, a final rounding
    torch.testing.assert_close(got.double(), want, rtol=3 * 2**-8, atol=4 * 2**-8 * want.abs().max().item())
    with pytest.raises(RuntimeError):
        streamer.flush()  # nothing since the last flush
    with pytest.raises(TypeError):
        StreamingConvTranspose1d(nn.Conv1d(2, 2, 3))
    streamer.step(torch.randn(4, 3).to(torch.bfloat16))
    with pytest.raises(ValueError):
        streamer.step(torch.randn(1, 4, 3).to(torch.bfloat16))  # batched after unbatched
    streamer.reset()
    streamer.step(torch.randn(2, 4, 3).to(torch.bfloat16))
    with pytest.raises(ValueError):
        streamer.step(torch.randn(3, 4, 3).to(torch.bfloat16))  # another batch size
