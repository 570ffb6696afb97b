"""64-bit sizes: every CPU op family on bfloat16 tensors of more than 2^31 elements (4+ GB each), checked
against PyTorch (F.conv1d and its autograd, float64) on windows: the first and last outputs, and those
around the element whose flat index crosses 2^31 (where a 32-bit `int` product or offset would wrap).
The weight and bias gradients reduce over every element, so their grad_output is zero except on those
windows: the kernels still walk all 2^31 elements, and the reference needs only the windows.

The slow tier (marker `slow`, conftest.py): skipped unless `pytest -m slow` or CONV1D_EXT_SLOW=1. Each
test holds at most two 4 GB tensors at once (~9 GB peak with the kernels' scratch). The CUDA kernels are
not run here: under the CPU emulator 2^31 elements would take hours (they use the same int64 Conv1dParams
and grid-stride loops; a GPU run of this file's shapes is left for a machine with one).
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conv_ref import tolerance, torch_threads

import conv1d_ext

pytestmark = pytest.mark.slow
ops = torch.ops.conv1d_ext

DT = torch.bfloat16
TWO31 = 2**31
LEN = 2**25 + 1027  # 64 rows of it: 2^31 + 65728 elements
WIN = 96  # positions per window


def _random_big(shape, seed):
    t = torch.empty(shape, dtype=DT)
    t.view(-1).uniform_(-1, 1, generator=torch.Generator().manual_seed(seed))
    return t


def _window(row2d, lo, hi):
    """row2d[:, lo:hi] in float64, zero outside [0, length) (the padding)."""
    length = row2d.shape[1]
    a, b = max(lo, 0), min(hi, length)
    mid = row2d[:, a:b].double() if b > a else row2d.new_zeros((row2d.shape[0], 0), dtype=torch.float64)
    return F.pad(mid, (a - lo, hi - max(b, lo)) if b > a else (0, hi - lo))


def _crossing(rows_len):
    """(row, position) of the element whose flat index is 2^31, rows of `rows_len` elements."""
    return divmod(TWO31, rows_len)


def _check(name, got, ref, mag, reduction):
    got = got.double()
    assert torch.isfinite(got).all(), f"{name}: not finite"
    err = (got - ref).abs()
    tol = tolerance(DT, ref, mag, reduction)
    assert (err <= tol).all(), f"{name}: max error {err.max().item():.3g} (tolerance {tol.max().item():.3g})"


class Geometry:
    def __init__(self, in_len, k, stride, pad, dilation=1):
        self.in_len, self.k, self.s, self.pad, self.d = in_len, k, stride, pad, dilation
        self.span = dilation * (k - 1) + 1
        self.out_len = (in_len + 2 * pad - self.span) // stride + 1

    def inputs_of(self, o0, o1):
        """Input positions [lo, hi) outputs [o0, o1) read."""
        return o0 * self.s - self.pad, (o1 - 1) * self.s - self.pad + self.span

    def outputs_of(self, i0, i1):
        """Outputs [o_lo, o_hi) that read some input position in [i0, i1)."""
        o_lo = max(0, -((-(i0 + self.pad - self.span + 1)) // self.s))
        o_hi = min(self.out_len, (i1 - 1 + self.pad) // self.s + 1)
        return o_lo, o_hi

    def output_windows(self, crossing_pos):
        c = min(max(crossing_pos // self.s, WIN // 2), self.out_len - WIN // 2)
        return [(0, WIN), (c - WIN // 2, c + WIN // 2), (self.out_len - WIN, self.out_len)]

    def input_windows(self, crossing_pos):
        c = min(max(crossing_pos, WIN // 2), self.in_len - WIN // 2)
        return [(0, WIN), (c - WIN // 2, c + WIN // 2), (self.in_len - WIN, self.in_len)]


def _ref_forward(x2d, w, b, g, o0, o1, absolute=False):
    win = _window(x2d, *g.inputs_of(o0, o1))
    wd, bd = w.double(), None if b is None else b.double()
    if absolute:
        win, wd, bd = win.abs(), wd.abs(), None if bd is None else bd.abs()
    with torch_threads(1):
        return F.conv1d(win[None], wd, bd, stride=g.s, dilation=g.d)[0]


def _ref_backward_input(gy2d, w, g, i0, i1, absolute=False):
    o_lo, o_hi = g.outputs_of(i0, i1)
    lo, hi = g.inputs_of(o_lo, o_hi)
    xw = torch.zeros(w.shape[1], hi - lo, dtype=torch.float64, requires_grad=True)
    wd, gy = w.double(), gy2d[:, o_lo:o_hi].double()
    if absolute:
        wd, gy = wd.abs(), gy.abs()
    with torch_threads(1), torch.enable_grad():
        y = F.conv1d(xw[None], wd, stride=g.s, dilation=g.d)
        grad = torch.autograd.grad(y, xw, gy[None])[0]
    out = torch.zeros(w.shape[1], i1 - i0, dtype=torch.float64)  # positions no output reads: zero
    a, b = max(i0, lo), min(i1, hi)
    out[:, a - i0:b - i0] = grad[:, a - lo:b - lo]
    return out


def _ref_backward_weight(x2d, gy2d, w_shape, g, o0, o1, absolute=False):
    win = _window(x2d, *g.inputs_of(o0, o1))
    gy = gy2d[:, o0:o1].double()
    if absolute:
        win, gy = win.abs(), gy.abs()
    wd = torch.zeros(w_shape, dtype=torch.float64, requires_grad=True)
    with torch_threads(1), torch.enable_grad():
        return torch.autograd.grad(F.conv1d(win[None], wd, stride=g.s, dilation=g.d), wd, gy[None])[0]


def _sparse_grad_output(shape, windows_per_row, seed):
    """Zeros except on the given (row, o0, o1) windows, which are random."""
    gy = torch.zeros(shape, dtype=DT)
    gen = torch.Generator().manual_seed(seed)
    flat = gy.view(-1, shape[-1])
    for row, o0, o1 in windows_per_row:
        flat[row, o0:o1] = torch.rand(o1 - o0, generator=gen).to(DT) * 2 - 1
    return gy


def test_depthwise_large():
    """Depthwise (groups = channels, k=4, stride 4): a 2^31 + 65728-element input read by the forward and
    the weight gradient, and written by the input gradient; the bias gradient over a grad_output of as many
    elements."""
    batch, ch = 2, 32
    g = Geometry(LEN, 4, 4, 1)
    w, b = torch.randn(ch, 1, 4).to(DT), torch.randn(ch).to(DT)
    args = (g.s, g.pad, g.pad, g.d, ch)
    x = _random_big((batch, ch, LEN), 1)
    row_x, pos_x = _crossing(LEN)  # row 63: (batch 1, channel 31)
    rows = list(dict.fromkeys([(0, 0), (row_x // ch, row_x % ch), (batch - 1, ch - 1), (1, 0)]))  # distinct

    y = ops.conv1d(x, w, b, *args)
    assert y.shape == (batch, ch, g.out_len)
    for bi, c in rows:
        for o0, o1 in g.output_windows(pos_x):
            ref = _ref_forward(x[bi, c:c + 1], w[c:c + 1], b[c:c + 1], g, o0, o1)
            mag = _ref_forward(x[bi, c:c + 1], w[c:c + 1], b[c:c + 1], g, o0, o1, absolute=True)
            _check(f"forward {bi, c, o0}", y[bi, c:c + 1, o0:o1], ref, mag, 5)
    del y

    windows = [(bi * ch + c, o0, o1) for bi, c in rows for o0, o1 in g.output_windows(pos_x)]
    gy = _sparse_grad_output((batch, ch, g.out_len), windows, 2)
    gw = ops.conv1d_backward_weight(gy, x, 4, *args)
    ref = torch.zeros(ch, 1, 4, dtype=torch.float64)
    mag = torch.zeros_like(ref)
    for row, o0, o1 in windows:
        bi, c = divmod(row, ch)
        ref[c] += _ref_backward_weight(x[bi, c:c + 1], gy[bi, c:c + 1], (1, 1, 4), g, o0, o1)[0]
        mag[c] += _ref_backward_weight(x[bi, c:c + 1], gy[bi, c:c + 1], (1, 1, 4), g, o0, o1, absolute=True)[0]
    _check("backward_weight", gw, ref, mag, batch * g.out_len)
    del x

    gi = ops.conv1d_backward_input(gy.uniform_(-1, 1), w, LEN, *args)  # a dense grad_output now
    assert gi.shape == (batch, ch, LEN)
    for bi, c in rows:
        for i0, i1 in g.input_windows(pos_x):
            ref = _ref_backward_input(gy[bi, c:c + 1], w[c:c + 1], g, i0, i1)
            mag = _ref_backward_input(gy[bi, c:c + 1], w[c:c + 1], g, i0, i1, absolute=True)
            _check(f"backward_input {bi, c, i0}", gi[bi, c:c + 1, i0:i1], ref, mag, 4)
    del gi, gy

    big_windows = [(bi * ch + c, i0, i1) for bi, c in rows for i0, i1 in g.input_windows(pos_x)]
    gy_big = _sparse_grad_output((batch, ch, LEN), big_windows, 3)
    gb = ops.conv1d_backward_bias(gy_big)
    ref = torch.zeros(ch, dtype=torch.float64)
    mag = torch.zeros_like(ref)
    for row, i0, i1 in big_windows:
        window = gy_big.view(-1, LEN)[row, i0:i1].double()
        ref[row % ch] += window.sum()
        mag[row % ch] += window.abs().sum()
    _check("backward_bias", gb, ref, mag, batch * LEN)


def test_dense_large():
    """Dense (64 input channels, 2 output channels, k=3, stride 4): the forward and the weight gradient
    read, the input gradient writes, 2^31 + 65728 elements."""
    cin, cout = 64, 2
    g = Geometry(LEN, 3, 4, 1)
    w, b = torch.randn(cout, cin, 3).to(DT), torch.randn(cout).to(DT)
    args = (g.s, g.pad, g.pad, g.d, 1)
    x = _random_big((1, cin, LEN), 4)
    _, pos_x = _crossing(LEN)  # channel 63 holds flat index 2^31

    y = ops.conv1d(x, w, b, *args)
    for o0, o1 in g.output_windows(pos_x):
        ref = _ref_forward(x[0], w, b, g, o0, o1)
        mag = _ref_forward(x[0], w, b, g, o0, o1, absolute=True)
        _check(f"forward {o0}", y[0, :, o0:o1], ref, mag, cin * 3 + 1)
    del y

    windows = [(c, o0, o1) for c in range(cout) for o0, o1 in g.output_windows(pos_x)]
    gy = _sparse_grad_output((1, cout, g.out_len), windows, 5)
    gw = ops.conv1d_backward_weight(gy, x, 3, *args)
    ref = sum(_ref_backward_weight(x[0], gy[0], (cout, cin, 3), g, o0, o1) for o0, o1 in g.output_windows(pos_x))
    mag = sum(_ref_backward_weight(x[0], gy[0], (cout, cin, 3), g, o0, o1, absolute=True)
              for o0, o1 in g.output_windows(pos_x))
    _check("backward_weight", gw, ref, mag, g.out_len)
    del x

    gi = ops.conv1d_backward_input(gy.uniform_(-1, 1), w, LEN, *args)
    assert gi.shape == (1, cin, LEN)
    for i0, i1 in g.input_windows(pos_x):
        ref = _ref_backward_input(gy[0], w, g, i0, i1)
        mag = _ref_backward_input(gy[0], w, g, i0, i1, absolute=True)
        _check(f"backward_input {i0}", gi[0, :, i0:i1], ref, mag, cout * 3)


def test_direct_kernels_large():
    """The generic kernels (CONV1D_EXT_CPU_KERNELS=direct, read when the library loads: a child process)
    on the dense test's problem."""
    env = dict(os.environ, CONV1D_EXT_CPU_KERNELS="direct", CONV1D_EXT_SLOW="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          f"{__file__}::test_dense_large", f"{__file__}::test_direct_kernels_are_forced"],
                         env=env, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "2 passed" in out.stdout, out.stdout[-2000:]


def test_direct_kernels_are_forced():
    if os.environ.get("CONV1D_EXT_CPU_KERNELS") != "direct":
        pytest.skip("runs inside test_direct_kernels_large's child process")
    assert conv1d_ext.build_info()["cpu_kernels"] == "direct"


def test_causal_large():
    """causal_conv1d_fn forward and backward on a 2^31 + 65728-element x (width 4), and the decode update
    on a conv_state of as many elements (shifted in place)."""
    batch, dim, width = 2, 32, 4
    w, b = torch.randn(dim, width).to(DT), torch.randn(dim).to(DT)
    x = _random_big((batch, dim, LEN), 6)
    row_x, pos_x = _crossing(LEN)
    rows = list(dict.fromkeys([(0, 0), (row_x // dim, row_x % dim), (batch - 1, dim - 1), (1, 0)]))
    windows = [(max(0, p - WIN // 2), min(LEN, p + WIN // 2)) for p in (0, pos_x, LEN)]

    out = ops.causal_conv1d_fwd(x, w, b, None, None, 1, False)[0]
    for bi, c in rows:
        for o0, o1 in windows:
            win = _window(x[bi, c:c + 1], o0 - (width - 1), o1)
            ref = F.conv1d(win[None], w[c:c + 1, None].double(), b[c:c + 1].double())[0]
            mag = F.conv1d(win.abs()[None], w[c:c + 1, None].double().abs(), b[c:c + 1].double().abs())[0]
            _check(f"causal forward {bi, c, o0}", out[bi, c:c + 1, o0:o1], ref, mag, width + 1)
    del out

    # Backward: grad_output constant along the sequence (an expanded view, read through its strides).
    gy = torch.randn(1, dim, 1).to(DT).expand(batch, dim, LEN)
    dx = ops.causal_conv1d_bwd(x, w, b, None, None, gy, None, 1, False)[0]
    for bi, c in rows:
        for i0, i1 in windows:
            o_hi = min(LEN, i1 + width - 1)  # outputs i0 .. i1 + width - 2 read inputs i0 .. i1 - 1
            xw = torch.zeros(1, o_hi - i0 + width - 1, dtype=torch.float64, requires_grad=True)
            with torch.enable_grad():
                y = F.conv1d(xw[None], w[c:c + 1, None].double())
                ref = torch.autograd.grad(y, xw, gy[bi, c:c + 1, i0:o_hi].double()[None])[0]
                mag = torch.autograd.grad(F.conv1d(xw[None], w[c:c + 1, None].double().abs()), xw,
                                          gy[bi, c:c + 1, i0:o_hi].double().abs()[None])[0]
            sl = slice(width - 1, width - 1 + i1 - i0)
            _check(f"causal backward {bi, c, i0}", dx[bi, c:c + 1, i0:i1], ref[:, sl], mag[:, sl], width)
    del dx, x

    # The decode step on a huge state: the window is its last width - 1 entries, then it shifts left by one.
    state = _random_big((batch, dim, LEN), 7)
    xs = torch.randn(batch, dim, 1).to(DT)
    saved = {(bi, c): (state[bi, c, :WIN].clone(), state[bi, c, pos_x - WIN:pos_x + WIN].clone(),
                       state[bi, c, -WIN:].clone()) for bi, c in rows}
    y = conv1d_ext.causal_conv1d_update(xs, state, w, b)
    for bi, c in rows:
        head, mid, tail = saved[bi, c]
        window = torch.cat([tail[-(width - 1):], xs[bi, c]]).double()
        ref = (window * w[c].double()).sum() + b[c].double()
        _check(f"update {bi, c}", y[bi, c], ref.reshape(1), ((window * w[c].double()).abs().sum()
                                                              + b[c].double().abs()).reshape(1), width + 1)
        assert torch.equal(state[bi, c, :WIN - 1], head[1:])
        assert torch.equal(state[bi, c, pos_x - WIN:pos_x + WIN - 1], mid[1:])
        assert torch.equal(state[bi, c, -WIN:-1], tail[1:]) and torch.equal(state[bi, c, -1:], xs[bi, c])
