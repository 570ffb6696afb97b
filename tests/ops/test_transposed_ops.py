"""Transposed convolution against PyTorch: conv1d_ext.conv_transpose1d against F.conv_transpose1d (outputs
and all three gradients, every dtype, every argument form, non-contiguous operands, lengths down to 1), the
ops path on every backend (the emulated CUDA kernels included), and autograd (gradcheck, gradgradcheck,
double backward, opcheck). Problems and the float64 reference: support/transposed_ref.py; errors:
robustness/test_errors.py; ConvTranspose1dExt: api/test_transposed_module.py; torch.compile, autocast and
torch.func: integration/."""

import pytest
import torch
import torch.nn.functional as F
from conv_ref import FLOAT_DTYPES, examples, tolerance
from hypothesis import example, given, settings
from torch.autograd import gradcheck, gradgradcheck
from transposed_ref import (
    FIXED_CASES,
    TCase,
    assert_within,
    check_against_pytorch,
    dtype_id,
    operands,
    output_tolerance,
    tcases,
    torch_reference,
)

from conv1d_ext import conv_transpose1d


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_conv_transpose1d_matches_pytorch(device, dtype, strict_fp32):
    n = {torch.float64: 40, torch.float32: 40}.get(dtype, 30)

    @settings(max_examples=examples(n))
    @given(case=tcases())
    def check(case):
        check_against_pytorch(case, dtype, device)

    for case in FIXED_CASES:
        check = example(case=case)(check)
    check()


def test_zero_length_output(device):
    """A length-0 output (e.g. L_in 1, k 2, padding 1) is an empty result, as F.conv_transpose1d gives
    for float32 on the CPU (its float64 path raises instead; we follow the float32 one)."""
    x, w, b = torch.randn(2, 4, 1, device=device), torch.randn(4, 3, 2, device=device), torch.randn(3, device=device)
    ref = F.conv_transpose1d(x, w, b, padding=1)
    assert conv_transpose1d(x, w, b, padding=1).shape == ref.shape == (2, 3, 0)


def test_zero_length_input_with_empty_batch(device):
    """PyTorch accepts a length-0 input when the batch is empty too."""
    for stride in (1, 2, 3):
        x, w = torch.randn(0, 4, 0, device=device), torch.randn(4, 3, 3, device=device)
        assert conv_transpose1d(x, w, stride=stride).shape == F.conv_transpose1d(x, w, stride=stride).shape


def test_stride_given_as_integer_tensor_and_numpy(device):
    np = pytest.importorskip("numpy")
    x = torch.randn(1, 2, 6, dtype=torch.float64, device=device)
    w = torch.randn(2, 3, 4, dtype=torch.float64, device=device)
    kwargs = dict(stride=torch.tensor(2), padding=np.int64(1), output_padding=(np.int64(1),), groups=np.int64(1))
    torch.testing.assert_close(conv_transpose1d(x, w, **kwargs), F.conv_transpose1d(x, w, **kwargs))


# ---------------------------------------------------------------------------------------------------
# The ops path on every backend: conv1d_backward_input with the transposed mapping (forward) and the
# ops autograd uses for its gradients, on CPU kernels, CUDA kernels and CUDA kernels under the emulator
# ---------------------------------------------------------------------------------------------------


def transposed_on_ops(ops, case, x, w, b, gy):
    """Output and grad_input, grad_weight, grad_bias of the transposed conv computed with the op set `ops`:
    the forward by conv1d_ext's own code path, the gradients by the ops its registered autograd calls."""
    from conv1d_ext._geometry import transposed_geometry
    from conv1d_ext.functional import _conv_transpose1d_3d

    s, p, op, d, g = case.stride, case.padding, case.output_padding, case.dilation, case.groups
    y = _conv_transpose1d_3d(ops, x, w, b, s, p, op, g, d)
    _, input_len, pad_right, _ = transposed_geometry(case.in_len, case.kernel_size, s, p, op, d)
    gy_op = gy[:, :, :input_len]  # the appended zeros depend on nothing
    conv = (s, p, pad_right, d, g)
    return (y, ops.conv1d(gy_op, w, None, *conv), ops.conv1d_backward_weight(x, gy_op, case.kernel_size, *conv),
            ops.conv1d_backward_bias(gy))


OPS_CASES = [c for c in FIXED_CASES if c.batch is not None] + [
    TCase(2, 1, 24, 20, 6, 3, 1, 2, 1, 33, True, "int", "transposed", "contiguous", "strided"),  # GEMM tiles
    TCase(2, 12, 1, 1, 4, 2, 1, 1, 1, 300, True),  # depthwise, long rows
    TCase(1, 2, 3, 3, 5, 1, 6, 0, 2, 9, True),  # padding beyond the kernel span
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_ops_path_matches_pytorch(backend, dtype):
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the CUDA kernels' float32 is true float32 then
    try:
        for case in OPS_CASES:
            x, w, b, gy = operands(case, dtype, backend.device)
            originals = [t.clone() for t in (x, w, b, gy) if t is not None]
            ours = transposed_on_ops(backend.ops, case, x, w, b, gy)
            refs = torch_reference(case, x, w, b, gy)
            mags = torch_reference(case, x, w, b, gy, absolute=True)
            context = f"[{backend.name} {dtype}] {case}"
            tols = [output_tolerance(case, dtype, refs[0], mags[0])] + [
                tolerance(dtype, r, m, red) for r, m, red in zip(refs[1:], mags[1:], case.reductions()[1:],
                                                                 strict=True)]
            for name, got, ref, tol in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, refs,
                                           tols, strict=True):
                assert_within(name, got, ref, tol, dtype, context)
            for before, after in zip(originals, [t for t in (x, w, b, gy) if t is not None], strict=True):
                assert torch.equal(before, after), f"an op modified its input. {context}"
    finally:
        torch.backends.cudnn.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------------
# Autograd: gradcheck, gradgradcheck, double backward, opcheck, torch.compile
# ---------------------------------------------------------------------------------------------------

# (batch, C_in, C_out, L_in, k, stride, padding, output_padding, dilation, groups)
GRAD_CONFIGS = [
    (2, 3, 4, 5, 4, 2, 1, 1, 1, 1),  # dense, k = 2·stride, output_padding <= padding
    (1, 4, 4, 4, 3, 1, 0, 2, 3, 2),  # grouped, output_padding - padding >= stride (appended zeros)
    (2, 3, 3, 6, 4, 2, 1, 0, 1, 3),  # depthwise k4 s2
    (1, 2, 4, 3, 2, 3, 0, 1, 1, 2),  # channel multiplier, stride > kernel
    (1, 2, 3, 1, 5, 1, 2, 0, 1, 1),  # length 1
]
GRAD_IDS = ["dense", "grouped_appended_zeros", "depthwise", "multiplier", "len1"]


def grad_leaves(cfg, device):
    n, cin, cout, length, k, s, p, op, d, g = cfg
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    return (leaf(n, cin, length), leaf(cin, cout // g, k), leaf(cout)), dict(stride=s, padding=p,
                                                                             output_padding=op, groups=g,
                                                                             dilation=d)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=GRAD_IDS)
def test_gradcheck_and_gradgradcheck(device, cfg):
    (x, w, b), kw = grad_leaves(cfg, device)

    def f(x, w, b):
        return conv_transpose1d(x, w, b, **kw)

    assert gradcheck(f, (x, w, b), fast_mode=True)
    assert gradgradcheck(f, (x, w, b), fast_mode=True)


def test_full_jacobian_gradcheck(device):
    (x, w, b), kw = grad_leaves((1, 2, 2, 3, 3, 2, 1, 1, 1, 1), device)
    assert gradcheck(lambda x, w, b: conv_transpose1d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("cfg", GRAD_CONFIGS[:2], ids=GRAD_IDS[:2])
def test_double_backward_matches_pytorch(device, cfg):
    """A gradient penalty (the gradient of a function of the input gradient) equals PyTorch's."""
    (x, w, b), kw = grad_leaves(cfg, device)
    results = []
    for conv in (conv_transpose1d, F.conv_transpose1d):
        y = conv(x, w, b, **kw)
        gx, gw = torch.autograd.grad(y.sin().sum(), (x, w), create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum() + gw.square().sum(), (x, w, b)))
    for ours, ref in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS[:4], ids=GRAD_IDS[:4])
def test_opcheck_transposed_calls(device, cfg):
    """torch.library.opcheck on the op calls conv_transpose1d makes (schema, fake kernel, autograd
    registration, AOT dispatch). The arguments are the transposed mapping, and the op's result is
    F.conv_transpose1d's (the appended zeros aside)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    (x, w, _), kw = grad_leaves(cfg, device)
    x, w = (t.detach().float().requires_grad_() for t in (x, w))
    calls = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == "conv1d_ext":
                calls.append((func, args))
            return func(*args, **(kwargs or {}))

    with Record():
        y = conv_transpose1d(x, w, None, **kw)
    assert [func for func, _ in calls] == [torch.ops.conv1d_ext.conv1d_backward_input.default]
    op, args = calls[0]
    torch.testing.assert_close(y, F.conv_transpose1d(x, w, None, **kw))
    torch.library.opcheck(op, args)
