"""Our results against F.conv1d's: per result tensor, max|ours - reference| / max|reference| ≤ tolerance."""

import math

import torch

RESULT_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")
DECODE_RESULT_NAMES = ("output", "conv_state")
HALF_DTYPES = (torch.float16, torch.bfloat16)


def tolerance(dtype, tf32):
    """Largest accepted normalized error per result tensor."""
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        return 5e-3 if tf32 else 2e-4
    return 1e-2  # 16-bit: compared with float32 math on the same (rounded) inputs


def normalized_error(a, b):
    a, b = a.double(), b.double()
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    if not torch.isfinite(a).all():
        return float("inf")
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / max(scale, 1e-30)


def check(ours, ref, dtype, tf32, reference_fp32, names=RESULT_NAMES):
    """Row fields max_err, tol, check (and ref_err for 16-bit) for the result tuples `ours` and `ref`.

    16-bit dtypes are checked against `reference_fp32()` (float32 F.conv1d on the same rounded inputs):
    ours may be as far off as F.conv1d's own 16-bit result is (x1.25), or within the fixed tolerance.
    """
    tol = tolerance(dtype, tf32)
    fields = {}
    if dtype in HALF_DTYPES:
        truth = reference_fp32()
        errs = [normalized_error(o, t) for o, t in zip(ours, truth, strict=False)]
        ref_errs = [normalized_error(r, t) for r, t in zip(ref, truth, strict=False)]
        tols = [max(tol, 1.25 * e) if math.isfinite(e) else tol for e in ref_errs]
        fields["ref_err"] = max(ref_errs)
    else:
        errs = [normalized_error(o, r) for o, r in zip(ours, ref, strict=False)]
        tols = [tol] * len(errs)
    bad = [f"{n} {e:.2e} > {t:.1e}" for n, e, t in zip(names, errs, tols, strict=False) if not e <= t]
    fields.update(max_err=max(errs), tol=max(tols), check="ok" if not bad else "FAIL: " + ", ".join(bad))
    return fields
