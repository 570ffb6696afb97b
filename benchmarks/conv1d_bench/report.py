"""What a run reports: a console line per case, the CSV, the markdown tables and the PNG plot.

Measurements only: goals and verdicts live in the results notes, not here.
"""

import csv
import math

from .shapes import SHORT, source_of

MODE_NAMES = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}

CSV_FIELDS = [
    "device",
    "dtype",
    "shape",
    "family",
    "config",
    "mode",
    "N",
    "C_in",
    "C_out",
    "L",
    "k",
    "stride",
    "padding",
    "dilation",
    "groups",
    "L_out",
    "gflop",
    "mbytes",
    "ref_ms",
    "ours_ms",
    "speedup",
    "ref_gflops",
    "ours_gflops",
    "ref_gbps",
    "ours_gbps",
    "ours_pct_peak",
    "ours_pct_bw",
    "ours_1t_ms",
    "scaling",
    "ref_min_ms",
    "ours_min_ms",
    "ref_reps",
    "ours_reps",
    "max_err",
    "ref_err",
    "tol",
    "check",
    "disturbed",  # yes/no, the same in every row: see machine.disturbance
]


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def fmt_ms(sec):
    if sec is None or not math.isfinite(sec):
        return "—"
    ms = sec * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_num(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if v < 10**digits else f"{v:.0f}"


def fmt_speedup(speedup):
    """Bold when we are slower than F.conv1d."""
    text = f"{speedup:.2f}×"
    return f"**{text}**" if speedup < 1.0 else text


def case_line(r):
    """One line per case on the console."""
    head = f"{r['dtype']:4} {r['shape']:22} {r['mode']:6}"
    if "speedup" not in r:
        return f"{head} !!! {r['check']}"
    check = "ok" if r["check"] == "ok" else f"!!! {r['check']} !!!"
    pct = f" ({r['ours_pct_peak']:.0f}% peak)" if r.get("ours_pct_peak") is not None else ""
    return (
        f"{head} F.conv1d {fmt_ms(r['ref_ms'] / 1e3):>6} ms  ours {fmt_ms(r['ours_ms'] / 1e3):>6} ms  "
        f"{r['speedup']:6.2f}x  ours {fmt_num(r['ours_gflops']):>5} GFLOP/s{pct} "
        f"{fmt_num(r['ours_gbps']):>5} GB/s  check {check} (err {r['max_err']:.1e})"
        + (f"  1 thread {fmt_ms(r['ours_1t_ms'] / 1e3)} ms ({r['scaling']:.2f}x scaling)" if "scaling" in r else "")
    )


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


class _Table:
    """Rows indexed by (dtype short name, shape name, mode), and the shapes in sweep order."""

    def __init__(self, rows):
        self.by = {(r["dtype"], r["shape"], r["mode"]): r for r in rows}
        self.shapes = list(dict.fromkeys(r["shape"] for r in rows))
        self.configs = {r["shape"]: r["config"] for r in rows}

    def get(self, d, s, m):
        return self.by.get((d, s, m))

    def speedups(self, d, m):
        return [r["speedup"] for s in self.shapes if "speedup" in (r := self.by.get((d, s, m), {}))]


def markdown(rows, info, machine, ceil, dtypes, modes):
    """The report: header (machine, ceilings, timing), a summary table, a table per dtype, shape sources.
    `ceil`: the ceilings the rows' percentages were computed with."""
    table = _Table(rows)
    out = _header(info, machine)
    out += summary_table(table, dtypes, modes)
    for dtype in dtypes:
        out += dtype_table(table, dtype, modes, machine, ceil)
    out += ["## Shapes", ""]
    out += [f"- `{s}` ({table.configs[s]}): {source_of(s)}" for s in table.shapes]
    return "\n".join(out) + "\n"


def _header(info, machine):
    ref_name = "F.conv1d (oneDNN/native)" if machine.device == "cpu" else "F.conv1d (cuDNN)"
    out = [f"# conv1d_ext vs {ref_name}: {info['tag']}", ""]
    if info["disturbed"]:
        out += [f"> **disturbed**: {info['disturbed']}.", ""]
    isa_torch = f"; torch CPU capability: {info['isa_torch']}" if "isa_torch" in info else ""
    failures = f"{info['n_fail']} CHECK FAILURES" if info["n_fail"] else "all checks passed"
    out += [
        f"- machine: {machine.description}",
        f"- torch {info['torch']}, python {info['python']}; ours: {info['ours']}",
        f"- ISA path of our extension: {info['isa_ours']}{isa_torch}",
        f"- measured ceilings: {info['ceilings']} (the larger of the start and end measurements; the "
        f"percentages use these)",
        f"- ceilings at start / end of the run: {info['ceilings_start_end']}",
        f"- timing: {machine.timing}",
        f"- env: {info['malloc']} (both sides)",
        *([f"- note: {info['note']}"] if info.get("note") else []),
        f"- {info['date']}; sweep took {info['elapsed']:.0f} s; {failures}",
        "- speedup = F.conv1d time / ours; FLOPs 2·N·C_out·L_out·C_in/g·k (fwd+bwd 3×); bytes: inputs read "
        "once + outputs written once; checks: max|ours−ref|/max|ref| per result (output, grad_input, "
        "grad_weight, grad_bias), 16-bit against float32 F.conv1d on the same inputs",
        *(["- scaling (--thread-scaling) = ours on one thread / ours on all threads, timed in the same rounds"]
          if info.get("thread_scaling") else []),
        "",
    ]
    return out


def summary_table(table, dtypes, modes):
    """One compact table (README-sized): speedup and our time per dtype and mode."""
    cols = [(SHORT[dt], m) for dt in dtypes for m in modes]
    out = ["## Summary: speedup over F.conv1d (our time)", ""]
    out.append("| shape | config | " + " | ".join(f"{d} {MODE_NAMES[m]}" for d, m in cols) + " |")
    out.append("|" + "---|" * (2 + len(cols)))
    for s in table.shapes:
        cells = [s, table.configs[s]]
        for d, m in cols:
            r = table.get(d, s, m)
            if r is None or "speedup" not in r:
                cells.append("—" if r is None else "**FAIL**")
                continue
            cell = f"{fmt_speedup(r['speedup'])} ({fmt_ms(r['ours_ms'] / 1e3)} ms)"
            if r["check"] != "ok":
                cell += " **FAIL**"
            cells.append(cell)
        out.append("| " + " | ".join(cells) + " |")
    row = ["geomean", ""]
    for d, m in cols:
        sps = table.speedups(d, m)
        row.append(f"{geomean(sps):.2f}×" if sps else "—")
    out += ["| " + " | ".join(row) + " |", ""]
    return out


def binding_floor(r):
    """Which floor binds a measured row — "FLOPs" (its FLOPs over the compute ceiling) or "bytes" (its
    minimal bytes over the copy rate), whichever takes longer — and how close ours runs to it (floor time /
    our time, in %: the larger of the two percentages). None when a ceiling is unknown."""
    peak, bw = r.get("ours_pct_peak"), r.get("ours_pct_bw")
    if peak is None or bw is None:
        return None
    return ("FLOPs", peak) if peak >= bw else ("bytes", bw)


def dtype_table(table, dtype, modes, machine, ceil):
    """Times, speedup, throughput and % of the ceilings per shape and mode, for one dtype."""
    unit, scale = ("GFLOP/s", 1.0) if machine.device == "cpu" else ("TFLOP/s", 1e-3)
    d = SHORT[dtype]
    peak, peak_name = machine.peak_flops(ceil, dtype)
    ceiling = f" (compute ceiling {fmt_num(peak * scale)} {unit}, {peak_name})" if peak else ""
    out = [f"## {d}{ceiling}", ""]
    scaling = any("scaling" in r for r in table.by.values())
    head = ["shape", "config"]
    for m in modes:
        mn = MODE_NAMES[m]
        head += [
            f"{mn} F.conv1d ms",
            f"{mn} ours ms",
            f"{mn} speedup",
            f"{mn} ours {unit} (% peak)",
            f"{mn} ours GB/s (% bw)",
            f"{mn} floor that binds (ours % of it)",
        ]
        if scaling:
            head.append(f"{mn} ours 1-thread ms (scaling)")
    head.append("check")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for s in table.shapes:
        cells = [s, table.configs[s]]
        checks = []
        for m in modes:
            r = table.get(d, s, m)
            if r is not None and r["check"] != "ok":
                checks.append(f"{MODE_NAMES[m]}: {r['check']}")
            if r is None or "speedup" not in r:
                cells += ["—"] * (7 if scaling else 6)
                continue
            floor = binding_floor(r)
            pct = f" ({r['ours_pct_peak']:.0f}%)" if r.get("ours_pct_peak") is not None else ""
            pct_bw = f" ({r['ours_pct_bw']:.0f}%)" if r.get("ours_pct_bw") is not None else ""
            cells += [
                fmt_ms(r["ref_ms"] / 1e3),
                fmt_ms(r["ours_ms"] / 1e3),
                fmt_speedup(r["speedup"]),
                f"{fmt_num(r['ours_gflops'] * scale)}{pct}",
                f"{fmt_num(r['ours_gbps'])}{pct_bw}",
                f"{floor[0]} ({floor[1]:.0f}%)" if floor else "—",
            ]
            if scaling:
                cells.append(f"{fmt_ms(r['ours_1t_ms'] / 1e3)} ({r['scaling']:.2f}×)" if "scaling" in r else "—")
        cells.append("ok" if not checks else "**" + "; ".join(checks) + "**")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    summary = []
    for m in modes:
        sps = table.speedups(d, m)
        if sps:
            summary.append(f"{MODE_NAMES[m]}: geomean {geomean(sps):.2f}×, min {min(sps):.2f}×")
    if summary:
        out += [f"{d} speedup — " + "; ".join(summary), ""]
    return out


def plot(rows, info, machine, dtypes, path):
    """Speedup per shape, forward and forward+backward, a panel per dtype; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    table = _Table(rows)
    shapes = table.shapes
    fig, axes = plt.subplots(len(dtypes), 1, figsize=(max(8, 1.1 * len(shapes) + 2), 3.6 * len(dtypes)), squeeze=False)
    width = 0.38
    for ax, dtype in zip(axes[:, 0], dtypes, strict=False):
        d = SHORT[dtype]
        for j, (m, color, lbl) in enumerate(
            (("fwd", "tab:blue", "forward"), ("fwdbwd", "tab:orange", "forward+backward"))
        ):
            xs, ys, fails = [], [], []
            for i, s in enumerate(shapes):
                r = table.get(d, s, m)
                if r is None:
                    continue
                if "speedup" in r:
                    xs.append(i + (j - 0.5) * width)
                    ys.append(r["speedup"])
                    if r["check"] != "ok":
                        fails.append((xs[-1], ys[-1]))
                else:
                    fails.append((i + (j - 0.5) * width, 1.0))
            bars = ax.bar(xs, ys, width, color=color, label=lbl)
            for b, y in zip(bars, ys, strict=False):
                ax.annotate(f"{y:.2f}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
            for fx, fy in fails:
                ax.annotate("FAIL", (fx, fy), ha="center", va="top", color="red", fontsize=8, weight="bold")
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_ylabel("speedup vs F.conv1d")
        ax.set_title(f"{d}")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=25, ha="right", fontsize=8)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", which="both", alpha=0.3)
    disturbed = " (DISTURBED RUN)" if info["disturbed"] else ""
    fig.suptitle(
        f"conv1d_ext vs F.conv1d — {info['tag']}{disturbed}\n{machine.description}, torch {info['torch']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
