"""The causal ops (causal_conv1d_fwd, causal_conv1d_bwd, causal_conv1d_update in torch.ops.conv1d_ext) of
every backend (CPU kernels, CUDA kernels on a GPU or under the CPU emulator) against PyTorch: every output,
final state and gradient compared with F.conv1d on the left-padded input (support/causal_ref.py); the
layouts they read in place; their fake kernels, opcheck and gradcheck. The Python interface
(causal_conv1d_fn / causal_conv1d_update) is tested in api/test_causal_conv1d.py."""

import pytest
import torch
from causal_ref import LAYOUTS, check_problem, decode_loop, make_x, rand, widths
from conv_ref import FLOAT_DTYPES, examples
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conv1d_ext import causal_conv1d_fn

ops = torch.ops.conv1d_ext


@hsettings(max_examples=examples(25))
@given(batch=st.integers(1, 2), dim=st.integers(1, 5), seqlen=st.integers(0, 40), width=widths,
       dilation=st.integers(1, 3), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(FLOAT_DTYPES),
       bias=st.booleans(), use_seq=st.booleans(), use_init=st.booleans(), silu=st.booleans(),
       seed=st.integers(0, 2**16))
def test_ops_match_pytorch(backend, batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init,
                           silu, seed):
    """The forward and backward ops of every backend (CPU, CUDA, the CUDA kernels under the emulator)."""
    check_problem(batch, dim, seqlen, width, dilation, layout, dtype, bias, use_seq, use_init, silu, seed,
                  backend=backend)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("use_seq", [False, True])
def test_ops_layouts(backend, layout, use_seq):
    """Every backend's ops in both layouts (the CUDA kernels have a channels-last path: threads along the
    channels), with initial states, dilation and, or not, seq_idx."""
    if backend.cuda_family is not None:
        pytest.skip("the causal kernels do not depend on the forced conv family: covered by the plain backend")
    check_problem(2, 5, 70, 4, 2, layout, torch.float32, True, use_seq, True, True, seed=3, backend=backend)


@pytest.mark.parametrize("mode", ["shift", "circular", "indices"])
def test_decode_loop_ops(backend, mode):
    """The prefill and update ops of every backend (CPU, CUDA, the CUDA kernels under the emulator)."""
    for dtype in [torch.float32, torch.bfloat16]:
        decode_loop(dtype, mode, 4, "channels_last", backend)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_x_is_read_in_place(layout):
    """No copy of x (or grad_output) in any layout: the op layer passes strides, so the profiler sees no
    copy / clone / contiguous op inside the causal ops."""
    gen = torch.Generator().manual_seed(9)
    x = make_x((2, 8, 64), torch.float32, layout, gen).requires_grad_()
    w = rand((8, 4), torch.float32, gen).requires_grad_()
    gy = make_x((2, 8, 64), torch.float32, layout, gen)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = ops.causal_conv1d_fwd(x, w, None, None, None, 1, True)[0]
        ops.causal_conv1d_bwd(x.detach(), w.detach(), None, None, None, gy, None, 1, True)
    names = {e.name for e in prof.events()}
    assert "conv1d_ext::causal_conv1d_fwd" in names
    assert not names & {"aten::copy_", "aten::clone", "aten::contiguous"}, sorted(names)
    assert out.stride() == (torch.empty(2, 64, 8).transpose(1, 2).stride() if layout == "channels_last"
                            else (8 * 64, 64, 1))


def test_fake_kernels_raise_runtime_error():
    x, w = torch.randn(2, 4, 8, device="meta"), torch.randn(5, 3, device="meta")
    with pytest.raises(RuntimeError):
        ops.causal_conv1d_fwd(x, w, None, None, None, 1, False)
    out, final = ops.causal_conv1d_fwd(torch.randn(2, 8, 4, device="meta").transpose(1, 2),
                                       torch.randn(4, 3, device="meta"), None, None, None, 2, True)
    assert out.shape == (2, 4, 8) and out.transpose(1, 2).is_contiguous() and final.shape == (2, 4, 4)


def test_opcheck():
    gen = torch.Generator().manual_seed(13)
    for layout in ["contiguous", "channels_last"]:
        x = make_x((2, 4, 11), torch.float32, layout, gen).requires_grad_()
        w = rand((4, 3), torch.float32, gen).requires_grad_()
        b = rand((4,), torch.float32, gen).requires_grad_()
        init = rand((2, 4, 4), torch.float32, gen).requires_grad_()
        seq = torch.tensor([[0] * 6 + [1] * 5, [0] * 11], dtype=torch.int32)
        torch.library.opcheck(ops.causal_conv1d_fwd, (x, w, b, seq, init, 2, True))
        torch.library.opcheck(ops.causal_conv1d_fwd, (x, w, None, None, None, 1, False))
        gy, gf = rand((2, 4, 11), torch.float32, gen), rand((2, 4, 4), torch.float32, gen)
        torch.library.opcheck(ops.causal_conv1d_bwd, (x.detach(), w.detach(), b.detach(), seq, init.detach(),
                                                      gy, gf, 2, True))
    state = rand((3, 4, 5), torch.float32, gen)
    torch.library.opcheck(ops.causal_conv1d_update,
                          (rand((2, 4, 2), torch.float32, gen), state, rand((4, 3), torch.float32, gen), None,
                           torch.tensor([3, 9], dtype=torch.int32), torch.tensor([2, -1], dtype=torch.int32),
                           True))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("options", ["plain", "all"])
def test_gradcheck(layout, options):
    gen = torch.Generator().manual_seed(3)
    full = options == "all"
    x = make_x((2, 3, 9), torch.float64, layout, gen).requires_grad_()
    w = rand((3, 3), torch.float64, gen).requires_grad_()
    b = rand((3,), torch.float64, gen).requires_grad_() if full else None
    init = rand((2, 3, 4), torch.float64, gen).requires_grad_() if full else None
    seq_idx = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, -1], [0] * 9], dtype=torch.int32) if full else None
    dilation = 2 if full else 1

    def fn(x, w, b, init):
        out, final = causal_conv1d_fn(x, w, b, seq_idx, init, return_final_states=True,
                                      activation="silu" if full else None, dilation=dilation)
        return out, final

    inputs = [t for t in (x, w, b, init)]
    if not full:
        inputs = [x, w]
        assert torch.autograd.gradcheck(lambda x, w: fn(x, w, None, None), inputs)
    else:
        assert torch.autograd.gradcheck(fn, inputs)
