#!/usr/bin/env python3
"""Every conv1d_ext op on CUDA, in every dtype, on small shapes that reach every kernel family: a short run
for compute-sanitizer (memcheck, racecheck, synccheck) — see benchmarks/gpu_check.sh.

Each op is called directly (asymmetric padding included) and through autograd (conv1d_ext.conv1d forward +
backward, and one double backward), and compared with F.conv1d computed on the CPU in float64, so the only
CUDA kernels the sanitizer sees are ours and PyTorch's elementwise/copy kernels (no cuDNN). Exit status 1 on
any mismatch; the sanitizer's own --error-exitcode reports memory errors and races.

  compute-sanitizer --tool memcheck --error-exitcode 99 python benchmarks/sanitize_smoke.py
  PYTHONPATH=. python benchmarks/sanitize_smoke.py --quick     # fewer configs, one dtype pass
"""

import argparse
import sys

import torch
import torch.nn.functional as F

# (N, C_in, C_out, L, k, stride, pad_left, pad_right, dilation, groups): one line per kernel path
CONFIGS = [
    (2, 8, 16, 33, 3, 1, 1, 1, 1, 1),  # dense, 'same'
    (2, 64, 64, 200, 3, 1, 1, 1, 1, 1),  # dense, large enough for the tiled path's full tiles + tails
    (3, 16, 24, 97, 7, 2, 3, 3, 1, 1),  # strided (backward-input phase decomposition, 2 phases)
    (2, 12, 8, 101, 5, 3, 0, 2, 1, 1),  # stride 3, asymmetric padding
    (2, 8, 8, 130, 3, 1, 16, 16, 8, 1),  # dilated (TCN)
    (1, 8, 8, 150, 2, 1, 64, 0, 64, 1),  # dilation 64, causal left padding only
    (2, 16, 16, 64, 4, 1, 1, 2, 1, 1),  # even kernel 'same' (asymmetric)
    (2, 32, 32, 70, 5, 1, 4, 4, 2, 8),  # grouped
    (2, 16, 16, 300, 4, 1, 3, 3, 1, 16),  # depthwise k4 (Mamba), several L chunks
    (2, 8, 8, 300, 31, 1, 15, 15, 1, 8),  # depthwise k31 (Conformer)
    (2, 8, 8, 123, 3, 2, 1, 1, 2, 8),  # depthwise strided + dilated
    (2, 4, 12, 77, 3, 1, 1, 1, 1, 4),  # depthwise with channel multiplier 3
    (2, 1, 16, 400, 80, 4, 0, 0, 1, 1),  # waveform front end, C_in 1
    (2, 32, 48, 50, 1, 1, 0, 0, 1, 1),  # pointwise
    (0, 8, 8, 20, 3, 1, 1, 1, 1, 1),  # empty batch
    (1, 4, 4, 3, 5, 1, 1, 1, 1, 1),  # kernel = padded length: L_out 1
]
DEVICE = "cuda"


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


TOL = {torch.float64: 1e-9, torch.float32: 2e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def err(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    if not torch.isfinite(a).all():
        return float("inf")
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def reference(x, w, b, gy, cfg):
    """F.conv1d in float64 on the CPU: output and the three gradients."""
    _, _, _, _, _, s, pl, pr, d, g = cfg
    x, w, b = (t.detach().double().cpu().requires_grad_(True) for t in (x, w, b))
    y = F.conv1d(F.pad(x, (pl, pr)), w, b, s, 0, d, g)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), gy.double().cpu())
    return y.detach(), gx, gw, gb


def check_config(cfg, dtype, failures, tf32):
    n, c_in, c_out, length, k, s, pl, pr, d, g = cfg
    ops = torch.ops.conv1d_ext
    gen = torch.Generator().manual_seed(hash(cfg) % 2**31)
    x = torch.randn(n, c_in, length, generator=gen).to(DEVICE, dtype)
    w = (torch.randn(c_out, c_in // g, k, generator=gen) / (c_in // g * k) ** 0.5).to(DEVICE, dtype)
    b = torch.randn(c_out, generator=gen).to(DEVICE, dtype)
    out_len = (length + pl + pr - d * (k - 1) - 1) // s + 1
    gy = torch.randn(n, c_out, out_len, generator=gen).to(DEVICE, dtype)
    y_ref, gx_ref, gw_ref, gb_ref = reference(x, w, b, gy, cfg)
    tol = 5e-3 if (dtype == torch.float32 and tf32) else TOL[dtype]
    results = {
        "conv1d": ops.conv1d(x, w, b, s, pl, pr, d, g),
        "conv1d(bias=None)+bias": ops.conv1d(x, w, None, s, pl, pr, d, g) + b.view(1, -1, 1),
        "conv1d_backward_input": ops.conv1d_backward_input(gy, w, length, s, pl, pr, d, g),
        "conv1d_backward_weight": ops.conv1d_backward_weight(gy, x, k, s, pl, pr, d, g),
        "conv1d_backward_bias": ops.conv1d_backward_bias(gy),
        # a transposed (non-contiguous) input view
        "conv1d(non-contiguous x)": ops.conv1d(
            x.transpose(1, 2).contiguous().transpose(1, 2), w, b, s, pl, pr, d, g
        ),
    }
    refs = {
        "conv1d": y_ref,
        "conv1d(bias=None)+bias": y_ref,
        "conv1d_backward_input": gx_ref,
        "conv1d_backward_weight": gw_ref,
        "conv1d_backward_bias": gb_ref,
        "conv1d(non-contiguous x)": y_ref,
    }
    if pl == pr:  # the public function with autograd
        import conv1d_ext

        xr, wr, br = (t.detach().requires_grad_(True) for t in (x, w, b))
        y = conv1d_ext.conv1d(xr, wr, br, s, pl, d, g)
        gx, gw, gb = torch.autograd.grad(y, (xr, wr, br), gy)
        results.update(
            {"autograd y": y, "autograd grad_input": gx, "autograd grad_weight": gw, "autograd grad_bias": gb}
        )
        refs.update(
            {
                "autograd y": y_ref,
                "autograd grad_input": gx_ref,
                "autograd grad_weight": gw_ref,
                "autograd grad_bias": gb_ref,
            }
        )
    sync()
    for name, got in results.items():
        e = err(got, refs[name])
        if not e <= tol:
            failures.append(f"{dtype} tf32={tf32} {cfg} {name}: error {e:.2e} > {tol:.0e}")


def second_order(conv, device, tensors, s, p, d, g):
    x, w, b = (t.to(device).requires_grad_(True) for t in tensors)
    y = conv(x, w, b, s, p, d, g)
    gx, gw = torch.autograd.grad((y * y).sum(), (x, w), create_graph=True)
    return torch.autograd.grad((gx * gx).sum() + (gw * gw).sum(), (x, w, b))


def double_backward(failures):
    """Second-order gradients (the backward built from our ops, differentiated again), float64."""
    import conv1d_ext

    gen = torch.Generator().manual_seed(7)
    for cfg in ((2, 8, 12, 40, 3, 2, 1, 1, 2, 2), (2, 8, 8, 40, 4, 1, 3, 3, 1, 8)):
        n, c_in, c_out, length, k, s, p, _, d, g = cfg
        tensors = [
            torch.randn(n, c_in, length, generator=gen, dtype=torch.float64),
            torch.randn(c_out, c_in // g, k, generator=gen, dtype=torch.float64),
            torch.randn(c_out, generator=gen, dtype=torch.float64),
        ]
        got = second_order(conv1d_ext.conv1d, DEVICE, tensors, s, p, d, g)
        want = second_order(F.conv1d, "cpu", tensors, s, p, d, g)
        for name, a, r in zip(("x", "w", "b"), got, want, strict=True):
            e = err(a, r)
            if not e <= 1e-8:
                failures.append(f"double backward {cfg} d/d{name}: error {e:.2e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every other config, no tf32 pass")
    p.add_argument("--device", default="cuda", help="cuda (default); cpu only to try this script itself")
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to do")
        return 2
    import conv1d_ext  # noqa: F401  (loads the ops)

    configs = CONFIGS[::2] if args.quick else CONFIGS
    failures = []
    passes = [(dt, False) for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16)]
    if not args.quick and DEVICE == "cuda":
        passes.append((torch.float32, True))
    for dtype, tf32 in passes:
        torch.backends.cudnn.allow_tf32 = tf32
        for cfg in configs:
            try:
                check_config(cfg, dtype, failures, tf32)
            except Exception as e:  # an op that raises is a failure too; keep going
                failures.append(f"{dtype} tf32={tf32} {cfg}: {type(e).__name__}: {str(e).splitlines()[0]}")
        print(f"{dtype} allow_tf32={tf32}: {len(configs)} configs done", flush=True)
    torch.backends.cudnn.allow_tf32 = True
    try:
        double_backward(failures)
        print("double backward done", flush=True)
    except Exception as e:
        failures.append(f"double backward: {type(e).__name__}: {str(e).splitlines()[0]}")
    sync()
    for f in failures:
        print("FAIL", f)
    print(f"sanitize_smoke: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
