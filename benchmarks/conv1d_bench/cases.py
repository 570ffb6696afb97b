"""One benchmark case, (shape, dtype, mode): the inputs, the check of ours against F.conv1d (against
F.conv_transpose1d for a transposed shape), the timing."""

import importlib
import math
import statistics

import torch
import torch.nn.functional as F

from . import checking
from .shapes import SHORT

MODES = ("fwd", "fwdbwd")


class CaseInputs:
    """Inputs of one (shape, dtype, mode), in `n_sets` copies, and the closures that run a side on them."""

    def __init__(self, shape, dtype, device, mode, n_sets, seed=0):
        self.shape, self.mode = shape, mode
        g = torch.Generator().manual_seed(seed)
        s = shape
        fan_in = (s.C_in // s.groups) * s.k
        self.sets = []
        for _ in range(n_sets):
            if s.layout == "channels_last":
                x = torch.randn(s.N, s.L, s.C_in, generator=g).transpose(1, 2)
            else:
                x = torch.randn(s.N, s.C_in, s.L, generator=g)
            w = torch.randn(s.weight_shape, generator=g) / math.sqrt(fan_in)
            b = torch.randn(s.C_out, generator=g) * 0.1
            gy = torch.randn(s.N, s.C_out, s.out_len, generator=g) if mode == "fwdbwd" else None
            t = [v.to(device=device, dtype=dtype) if v is not None else None for v in (x, w, b, gy)]
            if mode == "fwdbwd":
                for v in t[:3]:
                    v.requires_grad_(True)
            self.sets.append(tuple(t))

    def runner(self, conv, index=0):
        """A callable running `conv` (F.conv1d's signature, F.conv_transpose1d's for a transposed shape) on
        input set `index`; returns the results: (y,) for fwd, (y, grad_x, grad_w, grad_b) for fwdbwd."""
        args = self.shape.conv_args()
        x, w, b, gy = self.sets[index]
        if self.mode == "fwd":

            def run():
                with torch.no_grad():
                    return (conv(x, w, b, *args),)
        else:

            def run():
                y = conv(x, w, b, *args)
                # The gradients a .backward(grad_y) would produce, without accumulating into .grad.
                return (y,) + torch.autograd.grad(y, (x, w, b), gy)

        return run

    def reference_fp32(self):
        """F.conv1d (F.conv_transpose1d) in float32 on the same (already rounded) inputs: the check for
        16-bit dtypes."""
        conv = reference_conv(self.shape)
        args = self.shape.conv_args()
        x, w, b, gy = (v.detach().float() if v is not None else None for v in self.sets[0])
        if self.mode == "fwd":
            return (conv(x, w, b, *args),)
        x, w, b = (v.requires_grad_(True) for v in (x, w, b))
        y = conv(x, w, b, *args)
        return (y,) + torch.autograd.grad(y, (x, w, b), gy)


class DecodeInputs:
    """Inputs of one decode step (shape.decode): x (N, C), weight (C, k), bias (C) and a conv_state
    (N, C, k) in `n_sets` copies. The reference keeps the whole (N, C, k) window as its state (causal-conv1d's
    causal_conv1d_update_ref); ours the last k - 1 inputs, a contiguous (N, C, k - 1) copy of
    state[..., 1:] (step.own_state). Each runner gets its own copy of the state (both sides update it in
    place), so the first, checked calls start from the same state; a result is (output, the last k - 1
    inputs after the step)."""

    def __init__(self, shape, dtype, device, n_sets, seed=0):
        self.shape = shape
        g = torch.Generator().manual_seed(seed)
        s = shape
        self.sets = []
        for _ in range(n_sets):
            x = torch.randn(s.N, s.C_in, generator=g)
            w = torch.randn(s.C_in, s.k, generator=g) / math.sqrt(s.k)
            b = torch.randn(s.C_in, generator=g) * 0.1
            state = torch.randn(s.N, s.C_in, s.k, generator=g)
            self.sets.append(tuple(v.to(device=device, dtype=dtype) for v in (x, w, b, state)))

    def runner(self, step, index=0):
        """A callable running `step(x, state, w, b)` (decode_reference's signature) on input set `index`,
        with a fresh copy of that set's state that it keeps updating."""
        x, w, b, state0 = self.sets[index]
        state = step.own_state(state0)

        def run():
            with torch.no_grad():
                return step(x, state, w, b)

        return run

    def reference_fp32(self):
        """The reference step in float32 on the same (already rounded) inputs: the check for 16-bit types."""
        x, w, b, state = (v.float() for v in self.sets[0])
        return decode_reference(self.shape.activation)(x, state.clone(), w, b)


def decode_reference(activation):
    """causal-conv1d's causal_conv1d_update_ref (the roll-and-sum), state (N, C, k): (out, state[..., 1:])."""

    def step(x, state, w, b):
        state.copy_(torch.roll(state, shifts=-1, dims=-1))
        state[:, :, -1] = x
        out = torch.sum(state * w, dim=-1) + b
        return (F.silu(out) if activation == "silu" else out), state[..., 1:]

    step.own_state = torch.clone
    return step


def decode_ours(module, activation):
    """conv1d_ext.causal_conv1d_update (of `module`) in decode_reference's signature, on its own
    (N, C, k - 1) state."""

    def step(x, state, w, b):
        return module.causal_conv1d_update(x, state, w, b, activation=activation), state

    step.own_state = lambda state: state[..., 1:].contiguous()
    return step


def torch_causal(activation):
    """PyTorch's best expression of a causal depthwise convolution, in F.conv1d's signature."""

    def conv(x, w, b, stride, padding, dilation, groups):
        y = F.conv1d(x, w, b, stride, padding, dilation, groups)[..., :x.shape[-1]]
        return F.silu(y) if activation == "silu" else y

    return conv


def ours_causal(module, activation):
    """conv1d_ext.causal_conv1d_fn (of `module`, the package of ours), in F.conv1d's signature."""

    def conv(x, w, b, stride, padding, dilation, groups):
        return module.causal_conv1d_fn(x, w[:, 0], b, activation=activation, dilation=dilation)

    return conv


def reference_conv(shape):
    if shape.causal:
        return torch_causal(shape.activation)
    return F.conv_transpose1d if shape.transposed else F.conv1d


def implementations(shape, ours):
    """(reference, ours) for `shape`: F.conv1d and `ours`; for a transposed shape F.conv_transpose1d and
    the conv_transpose1d of `ours`'s module (conv1d_ext.conv_transpose1d for conv1d_ext.conv1d;
    F.conv_transpose1d itself for --self-test-against-torch)."""
    if shape.decode:
        if ours is F.conv1d:
            return decode_reference(shape.activation), decode_reference(shape.activation)
        package = importlib.import_module(ours.__module__.split(".")[0])
        return decode_reference(shape.activation), decode_ours(package, shape.activation)
    if shape.causal:
        if ours is F.conv1d:
            return torch_causal(shape.activation), torch_causal(shape.activation)
        package = importlib.import_module(ours.__module__.split(".")[0])
        return torch_causal(shape.activation), ours_causal(package, shape.activation)
    if not shape.transposed:
        return F.conv1d, ours
    if ours is F.conv1d:
        return F.conv_transpose1d, F.conv_transpose1d
    return F.conv_transpose1d, importlib.import_module(ours.__module__).conv_transpose1d


def work(shape, dtype, mode):
    """(FLOPs, minimum bytes moved) of one call: every input read once, every output written once (a
    decode step: x, weight, bias and the k - 1 state entries read, the output and the state written)."""
    item = torch.empty((), dtype=dtype).element_size()
    if shape.decode:
        n, c, k = shape.N, shape.C_in, shape.k
        return 2 * n * c * k, item * (n * c * (1 + 2 * (k - 1) + 1) + c * (k + 1))
    x_n, w_n, b_n, y_n = shape.numels()
    flops = shape.flops_fwd() * (3 if mode == "fwdbwd" else 1)  # grad_input and grad_weight: a forward each
    nbytes = item * (x_n + w_n + b_n + y_n) * (2 if mode == "fwdbwd" else 1)
    return flops, nbytes


def describe(shape, dtype, mode, device):
    """The row fields that say which case this is."""
    flops, nbytes = work(shape, dtype, mode)
    return dict(
        device=device,
        dtype=SHORT[dtype],
        shape=shape.name,
        family=shape.family,
        config=shape.describe(),
        mode=mode,
        N=shape.N,
        C_in=shape.C_in,
        C_out=shape.C_out,
        L=shape.L,
        k=shape.k,
        stride=shape.stride,
        padding=shape.padding,
        dilation=shape.dilation,
        groups=shape.groups,
        L_out=shape.out_len,
        gflop=flops / 1e9,
        mbytes=nbytes / 1e6,
    )


def run_case(shape, dtype, mode, machine, ours, seed=0, thread_scaling=False):
    """Check `ours` against F.conv1d on one case, then time both sides: a row of the results table.

    A failure of any kind (ours raising, a result off) is recorded in row["check"], never raised, so a
    sweep goes on; KeyboardInterrupt passes through.
    """
    row = describe(shape, dtype, mode, machine.device)
    try:
        row.update(_measure(shape, dtype, mode, machine, ours, seed, thread_scaling))
    except Exception as e:
        message = str(e).splitlines()[0][:200] if str(e) else ""
        row["check"] = f"FAIL: {type(e).__name__}: {message}"
    return row


def _measure(shape, dtype, mode, machine, ours, seed, thread_scaling):
    flops, nbytes = work(shape, dtype, mode)
    n_sets = machine.input_sets(nbytes)
    if shape.decode:
        inputs = DecodeInputs(shape, dtype, machine.device, n_sets, seed=seed)
    else:
        inputs = CaseInputs(shape, dtype, machine.device, mode, n_sets, seed=seed)
    ref_conv, our_conv = implementations(shape, ours)
    runs = {
        "ref": [inputs.runner(ref_conv, i) for i in range(n_sets)],
        "ours": [inputs.runner(our_conv, i) for i in range(n_sets)],
    }
    # Thread scaling (CPU): ours again on one thread, in the same interleaved rounds.
    scaling = thread_scaling and machine.device == "cpu" and machine.timer.threads > 1
    if scaling:
        runs["ours_1t"] = runs["ours"]
    timer = machine.timer
    # First calls give the results to check and a time estimate; the reference goes first so that its
    # one-time setup is not charged to us.
    est = {}
    est["ref"], ref_out = timer.once(runs["ref"][0])
    try:
        est["ours"], our_out = timer.once(runs["ours"][0])
    except Exception as e:
        raise RuntimeError(f"ours raised {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    names = checking.DECODE_RESULT_NAMES if shape.decode else checking.RESULT_NAMES
    fields = checking.check(our_out, ref_out, dtype, machine.tf32, inputs.reference_fp32, names)
    del ref_out, our_out
    # A second call for the quick ones warms caches, the allocator and lazy initialisation; on CUDA the
    # first call also ran cuDNN's autotuning, so its time is no estimate.
    if scaling:
        est["ours_1t"] = timer.once(runs["ours_1t"][0], "ours_1t")[0]
    for side in ("ref", "ours"):
        if est[side] < 0.2 or machine.device == "cuda":
            est[side] = timer.once(runs[side][0])[0]
    times = timer.measure(runs, est)
    for side in runs:
        t = statistics.median(times[side])
        fields[f"{side}_min_ms"] = min(times[side]) * 1e3
        fields[f"{side}_ms"] = t * 1e3
        fields[f"{side}_reps"] = len(times[side])
        fields[f"{side}_gflops"] = flops / t / 1e9
        fields[f"{side}_gbps"] = nbytes / t / 1e9
    fields["speedup"] = fields["ref_ms"] / fields["ours_ms"]
    if scaling:
        fields["scaling"] = fields["ours_1t_ms"] / fields["ours_ms"]
    return fields
