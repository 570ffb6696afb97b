"""torch.func and forward-mode AD against PyTorch's own conv1d: torch.func.jvp, jacrev, jacfwd, hessian,
torch.autograd.forward_ad, and torch.vmap over extra dims of the input, the weight and the bias (alone,
together, nested, under grad: per-sample gradients), for Conv1dExt / conv1d_ext.conv1d and, where they
support it, the ops themselves. float64, so the results must agree to round-off. conv_transpose1d under jvp
and per-sample gradients against F.conv_transpose1d; the causal ops, which have neither batching rules nor
torch.func support, under vmap (slice by slice) and the clear errors of the other transforms and of forward
mode."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vmap
from torch.utils._python_dispatch import TorchDispatchMode

import conv1d_ext
from conv1d_ext import causal_conv1d_fn

ops = torch.ops.conv1d_ext

# (in_channels, out_channels, length, kernel_size, conv1d keyword arguments)
CONFIGS = {
    "dense": (3, 4, 9, 3, {"padding": 1}),
    "grouped_strided_dilated": (4, 6, 13, 3, {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}),
    "depthwise": (4, 4, 10, 3, {"padding": "same", "groups": 4}),
    "depthwise_multiplier_even_same": (2, 6, 9, 4, {"padding": "same", "groups": 2}),
}


def make(cfg, device, batch=2, bias=True, seed=0):
    cin, cout, length, k, kwargs = CONFIGS[cfg]
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device)

    return rand(batch, cin, length), rand(cout, cin // kwargs.get("groups", 1), k), rand(cout) if bias else None, \
        kwargs


def both(kwargs):
    """conv1d_ext.conv1d and F.conv1d as functions of (x, w, b) with the same arguments."""
    return (lambda x, w, b: conv1d_ext.conv1d(x, w, b, **kwargs)), (lambda x, w, b: F.conv1d(x, w, b, **kwargs))


def op_conv(kwargs, kernel_size):
    """The op's (stride, pad_left, pad_right, dilation, groups) for F.conv1d's keyword arguments."""
    dilation, padding = kwargs.get("dilation", 1), kwargs.get("padding", 0)
    total = dilation * (kernel_size - 1) if padding == "same" else 2 * padding
    return kwargs.get("stride", 1), total // 2, total - total // 2, dilation, kwargs.get("groups", 1)


def assert_trees_close(ours, ref):
    ours, ref = torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(ref)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def no_vmap_fallback():
    """vmap must use the ops' batching rules: the per-slice fallback (slow) is an error here."""
    torch._C._functorch._set_vmap_fallback_enabled(False)
    yield
    torch._C._functorch._set_vmap_fallback_enabled(True)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_jvp(device, cfg):
    x, w, b, kwargs = make(cfg, device)
    tangents = tuple(torch.randn_like(t) for t in (x, w, b))
    ours, ref = both(kwargs)
    assert_trees_close(jvp(ours, (x, w, b), tangents), jvp(ref, (x, w, b), tangents))
    for i in range(3):  # one tangent at a time (the others are constants)
        def only(f, i=i):
            return lambda t: f(*[t if j == i else a for j, a in enumerate((x, w, b))])
        assert_trees_close(jvp(only(ours), ((x, w, b)[i],), (tangents[i],)),
                           jvp(only(ref), ((x, w, b)[i],), (tangents[i],)))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_ad(device, cfg):
    """torch.autograd.forward_ad, through conv1d_ext.conv1d and through the op itself."""
    x, w, b, kwargs = make(cfg, device)
    ours, ref = both(kwargs)
    conv = op_conv(kwargs, w.shape[2])

    def op(x, w, b):
        return ops.conv1d(x, w, b, *conv)

    tangents = [torch.randn_like(t) for t in (x, w, b)]
    results = []
    for f in (ours, op, ref):
        with fwAD.dual_level():
            out = f(*(fwAD.make_dual(p, t) for p, t in zip((x, w, b), tangents, strict=True)))
            results.append(fwAD.unpack_dual(out))
    for got in results[:2]:
        assert_trees_close((got.primal, got.tangent), (results[2].primal, results[2].tangent))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_jacrev_and_jacfwd(device, cfg):
    x, w, b, kwargs = make(cfg, device, batch=1)
    ours, ref = both(kwargs)
    for transform in (jacrev, jacfwd):
        assert_trees_close(transform(ours, argnums=(0, 1, 2))(x, w, b), transform(ref, argnums=(0, 1, 2))(x, w, b))


@pytest.mark.parametrize("cfg", ["dense", "grouped_strided_dilated"])
def test_hessian(device, cfg):
    """hessian = jacfwd(jacrev): forward mode through the backward ops, of the input and of the weight."""
    x, w, b, kwargs = make(cfg, device, batch=1)
    ours, ref = both(kwargs)
    assert_trees_close(hessian(lambda x: ours(x, w, b).sin().sum())(x),
                       hessian(lambda x: ref(x, w, b).sin().sum())(x))
    assert_trees_close(hessian(lambda w: ours(x, w, b).sin().sum())(w),
                       hessian(lambda w: ref(x, w, b).sin().sum())(w))
    assert_trees_close(jacfwd(jacfwd(lambda w: ours(x, w, b).sin().sum()))(w),
                       jacfwd(jacfwd(lambda w: ref(x, w, b).sin().sum()))(w))


def test_forward_over_reverse_with_forward_ad(device):
    x, w, b, kwargs = make("grouped_strided_dilated", device)
    tangent = torch.randn_like(w)
    results = []
    for f in both(kwargs):
        xr = x.clone().requires_grad_()
        with fwAD.dual_level():
            y = f(xr, fwAD.make_dual(w, tangent), b)
            (gx,) = torch.autograd.grad(y.sin().sum(), xr, create_graph=True)
            results.append(fwAD.unpack_dual(gx).tangent)
    assert_trees_close(*results)


# which arguments are vmapped, and over which dim of each (None: shared by all V slices)
VMAPS = {
    "input": (0, None, None), "input_dim2": (2, None, None), "weight": (None, 0, None),
    "weight_dim1": (None, 1, None), "bias": (None, None, 0), "input_bias": (0, None, 0),
    "input_weight": (0, 0, None), "all": (0, 0, 0), "weight_bias": (None, 0, 0),
}


def vmapped_operands(x, w, b, in_dims, size=3):
    return [t if d is None else torch.stack([torch.randn_like(t) for _ in range(size)], d)
            for t, d in zip((x, w, b), in_dims, strict=True)]


@pytest.mark.parametrize("which", VMAPS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_vmap(device, cfg, which):
    x, w, b, kwargs = make(cfg, device)
    torch.manual_seed(0)
    args = vmapped_operands(x, w, b, VMAPS[which])
    ours, ref = both(kwargs)
    assert_trees_close(vmap(ours, in_dims=VMAPS[which])(*args), vmap(ref, in_dims=VMAPS[which])(*args))


@pytest.mark.parametrize("cfg", ["dense", "depthwise_multiplier_even_same"])
def test_nested_vmap_and_the_ops_themselves(device, cfg):
    """vmap over samples inside vmap over weights (an ensemble); and the op called directly is vmappable."""
    x, w, b, kwargs = make(cfg, device)
    torch.manual_seed(0)
    xs, ws = torch.randn(4, *x.shape, dtype=x.dtype, device=device), torch.randn(5, *w.shape, dtype=w.dtype,
                                                                                 device=device)
    ours, ref = both(kwargs)

    def ensemble(f):
        return vmap(vmap(f, in_dims=(0, None, None)), in_dims=(None, 0, None))(xs, ws, b)

    assert_trees_close(ensemble(ours), ensemble(ref))
    conv = op_conv(kwargs, w.shape[2])
    assert_trees_close(ensemble(lambda x, w, b: ops.conv1d(x, w, b, *conv)), ensemble(ref))


def small_net(conv_cls):
    torch.manual_seed(0)
    return nn.Sequential(conv_cls(3, 8, 5, padding=2), nn.Tanh(), conv_cls(8, 8, 3, groups=8, padding="same"),
                         nn.Tanh(), conv_cls(8, 4, 3, stride=2, dilation=2, groups=2)).double()


def test_per_sample_gradients(device):
    """vmap(grad(loss)) over the samples of a batch, as differentially private training computes them."""
    models = [small_net(cls).to(device) for cls in (conv1d_ext.Conv1dExt, nn.Conv1d)]
    x = torch.randn(6, 3, 20, dtype=torch.float64, device=device)
    target = torch.randn(6, 4, 8, dtype=torch.float64, device=device)
    results = []
    for model in models:
        params = {k: v.detach() for k, v in model.named_parameters()}

        def loss(params, xi, ti, model=model):
            return (functional_call(model, params, (xi[None],)) - ti[None]).square().sum()

        results.append(vmap(grad(loss), in_dims=(None, 0, 0))(params, x, target))
    assert results[0].keys() == results[1].keys()
    assert_trees_close(results[0], results[1])
    assert all(g.shape[0] == 6 for g in results[0].values())


def test_vmap_of_jacrev_and_jvp(device):
    x, w, b, kwargs = make("grouped_strided_dilated", device)
    torch.manual_seed(0)
    xs = torch.randn(3, *x.shape, dtype=x.dtype, device=device)
    tangents = torch.randn(4, *w.shape, dtype=w.dtype, device=device)

    def transforms(f):
        jacobians = vmap(jacrev(lambda w, x: f(x, w, b).sum(dim=(0, 2))), in_dims=(None, 0))(w, xs)
        return jacobians, vmap(lambda t: jvp(lambda w: f(x, w, b), (w,), (t,))[1])(tangents)

    assert_trees_close(*map(transforms, both(kwargs)))


class OpSpy(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.add(func.name())
        return func(*args, **(kwargs or {}))


def test_forward_mode_runs_this_projects_ops(device):
    """The tangents are computed by conv1d_ext's ops (a jvp of a convolution is a convolution), not by a
    fallback to PyTorch's convolution."""
    x, w, b, kwargs = make("grouped_strided_dilated", device)
    with OpSpy() as spy:
        jvp(both(kwargs)[0], (x, w, b), tuple(torch.randn_like(t) for t in (x, w, b)))
        hessian(lambda x, w: conv1d_ext.conv1d(x, w, b, **kwargs).sin().sum(), argnums=(0, 1))(x, w)
    assert {"conv1d_ext::conv1d", "conv1d_ext::conv1d_backward_input", "conv1d_ext::conv1d_backward_weight"} \
        <= spy.calls
    assert not any("convolution" in name for name in spy.calls), spy.calls


def test_the_ops_name_the_entry_point_under_torch_func(device):
    """torch.func's autograd transforms need the autograd.Function applied from Python (conv1d_ext.conv1d);
    the ops say so instead of failing inside PyTorch."""
    x, w, _, _ = make("dense", device)
    with pytest.raises(RuntimeError, match=r"use conv1d_ext\.conv1d or Conv1dExt"):
        grad(lambda x: ops.conv1d(x, w, None, 1, 1, 1, 1, 1).sum())(x)


# ---------------------------------------------------------------------------------------------------
# Transposed and causal convolution
# ---------------------------------------------------------------------------------------------------


def test_transposed_jvp_and_per_sample_grads_match_pytorch(device):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 9, dtype=torch.float64, device=device)
    w = torch.randn(4, 6, 3, dtype=torch.float64, device=device)
    b = torch.randn(6, dtype=torch.float64, device=device)
    dx, dw = torch.randn_like(x), torch.randn_like(w)

    def ours(x, w):
        return conv1d_ext.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)

    def ref(x, w):
        return F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)

    assert_trees_close(jvp(ours, (x, w), (dx, dw)), jvp(ref, (x, w), (dx, dw)))

    def loss(fn):
        return lambda w, xi: fn(xi[None], w).square().sum()

    per_sample = vmap(grad(loss(ours)), in_dims=(None, 0))(w, x)
    assert_trees_close(per_sample, vmap(grad(loss(ref)), in_dims=(None, 0))(w, x))


def causal_problem(device):
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=gen, dtype=torch.float64).to(device) for s in [(3, 4, 9), (4, 3), (4,)])
    return x, w, b


def causal_reference(x, w, b):
    return F.silu(F.conv1d(F.pad(x, (w.shape[1] - 1, 0)), w[:, None], b, groups=w.shape[0]))


def test_causal_vmap_runs_slice_by_slice(device):
    """The causal ops have no batching rule: torch.vmap runs them one slice at a time through PyTorch's
    fallback (an error naming the op while the fallback is off, as elsewhere in this file), with
    F.conv1d's results."""
    x, w, b = causal_problem(device)

    def per_sample(xi):
        return causal_conv1d_fn(xi[None], w, b, activation="silu")[0]

    with pytest.raises(RuntimeError, match="causal_conv1d_fwd hit the vmap fallback"):
        vmap(per_sample)(x)
    torch._C._functorch._set_vmap_fallback_enabled(True)  # no_vmap_fallback turns it off again
    torch.testing.assert_close(vmap(per_sample)(x), causal_reference(x, w, b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("transform", ["grad", "jacrev", "vmap_of_grad"])
def test_causal_reverse_mode_transforms_are_a_clear_error(device, transform):
    """causal_conv1d_fn's autograd (torch.library.register_autograd) serves loss.backward() and
    torch.autograd.grad, not torch.func's transforms: they raise PyTorch's error saying so."""
    x, w, b = causal_problem(device)

    def loss(w):
        return causal_conv1d_fn(x, w, b, activation="silu").square().sum()

    run = {"grad": lambda: grad(loss)(w), "jacrev": lambda: jacrev(lambda w: causal_conv1d_fn(x, w, b))(w),
           "vmap_of_grad": lambda: vmap(grad(loss))(w[None].expand(2, -1, -1))}[transform]
    with pytest.raises(RuntimeError, match="autograd.Function with functorch transforms"):
        run()


FORWARD_MODE_CASES = {
    "silu": dict(activation="silu"),
    "no_bias": dict(bias=False, activation="silu"),
    "no_activation": dict(activation=None),
    "initial_states": dict(activation="silu", initial_states=True),
    "final_states": dict(activation=None, initial_states=True, return_final_states=True),
}


@pytest.mark.parametrize("case", list(FORWARD_MODE_CASES))
@pytest.mark.parametrize("mode", ["jvp", "forward_ad"])
def test_causal_forward_mode_is_right_or_a_clear_error(device, mode, case):
    """Forward mode through causal_conv1d_fn gives the tangent F.conv1d gives, or raises (it raises
    NotImplementedError today: the causal ops have no forward-mode rule); never a silently dropped tangent.
    float64, tangents on every differentiable input."""
    cfg = FORWARD_MODE_CASES[case]
    x, w, b = causal_problem(device)
    b = b if cfg.get("bias", True) else None
    init = torch.randn(x.shape[0], x.shape[1], w.shape[1] - 1, dtype=x.dtype, device=device) \
        if cfg.get("initial_states") else None
    final = cfg.get("return_final_states", False)
    primals = tuple(t for t in (x, w, b, init) if t is not None)
    tangents = tuple(torch.randn_like(t) for t in primals)

    def split(args):
        args = iter(args)
        return next(args), next(args), next(args) if b is not None else None, \
            next(args) if init is not None else None

    def ours(*args):
        xi, wi, bi, ii = split(args)
        return causal_conv1d_fn(xi, wi, bi, initial_states=ii, return_final_states=final,
                                activation=cfg["activation"])

    def reference(*args):
        xi, wi, bi, ii = split(args)
        full = torch.cat([ii, xi], -1) if ii is not None else F.pad(xi, (wi.shape[1] - 1, 0))
        out = F.conv1d(full, wi[:, None], bi, groups=wi.shape[0])
        out = F.silu(out) if cfg["activation"] else out
        return (out, full[..., full.shape[-1] - (wi.shape[1] - 1):]) if final else out

    expected = jvp(reference, primals, tangents)[1]
    try:
        if mode == "jvp":
            tangent = jvp(ours, primals, tangents)[1]
        else:
            with fwAD.dual_level():
                result = ours(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents, strict=True)))
                tangent = tuple(fwAD.unpack_dual(r).tangent for r in result) if final \
                    else fwAD.unpack_dual(result).tangent
    except RuntimeError as error:
        assert "causal_conv1d_fn" in str(error)  # a clear error, naming the function, is an acceptable answer
        return
    assert tangent is not None and (not final or None not in tangent), "forward-mode AD dropped the tangent"
    torch.testing.assert_close(tangent, expected, rtol=1e-10, atol=1e-10)


def test_causal_forward_mode_raises_not_implemented():
    """Today's answer to forward mode: NotImplementedError naming the function and the alternatives, for a
    tangent on any input (here only on weight), under both torch.func.jvp and torch.autograd.forward_ad."""
    x, w, b = causal_problem("cpu")
    with pytest.raises(NotImplementedError, match="causal_conv1d_fn has no forward-mode AD rule"):
        jvp(lambda w: causal_conv1d_fn(x, w, b), (w,), (torch.randn_like(w),))
    with fwAD.dual_level(), pytest.raises(NotImplementedError, match="use reverse mode"):
        causal_conv1d_fn(x, w, fwAD.make_dual(b, torch.randn_like(b)))
    causal_conv1d_fn(x, w, b).sum()  # no tangent: no error
