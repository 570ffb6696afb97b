"""The pictures of explain() and receptive_field() (matplotlib, an optional dependency, imported only when
one is drawn)."""

import math
from dataclasses import dataclass
from fractions import Fraction

from .._geometry import module_int
from .window import ceil_div

__all__ = ["plot_explanation", "plot_receptive_field"]

_TAP_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _new_figure(width, height):
    """A matplotlib Figure that does not touch pyplot's global state; matplotlib is optional."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot() draws with matplotlib, an optional dependency of conv1d_ext: "
                          "pip install matplotlib") from error
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save(figure, path):
    figure.savefig(path, format="png")
    return path


@dataclass(frozen=True)
class _Rows:
    """A conv picture as two rows. The *wide* row (the input of a conv, the output of a transposed conv) has
    a cell per position; each cell n of the *narrow* row sits over the wide positions n·stride − shift …
    n·stride − shift + span − 1 that it reads (conv) or writes (transposed)."""

    wide_first: int  # virtual wide positions drawn at most: padding (conv) or cut outputs (transposed) included
    wide_last: int
    wide_length: int  # wide positions 0 … wide_length − 1 are real
    narrow_count: int
    stride: int
    shift: int
    span: int

    def narrow_span(self, n):
        first = n * self.stride - self.shift
        return first, first + self.span - 1

    def narrow_within(self, first, last):
        """The narrow cells whose whole span lies within wide positions first … last."""
        low = ceil_div(first + self.shift, self.stride)
        high = (last + self.shift - self.span + 1) // self.stride
        return range(max(0, low), min(self.narrow_count - 1, high) + 1)


def _conv_rows(e):
    if e.transposed:  # input i writes outputs i·s − padding … + span − 1; the full result is cut by padding
        return _Rows(wide_first=-e.pad_left, wide_last=max(e.out_len - 1, (e.length - 1) * e.stride - e.pad_left
                                                          + e.kernel_span - 1),
                     wide_length=e.out_len, narrow_count=e.length, stride=e.stride, shift=e.pad_left,
                     span=e.kernel_span)
    return _Rows(wide_first=-e.pad_left, wide_last=e.length + e.pad_right - 1, wide_length=e.length,
                 narrow_count=e.out_len, stride=e.stride, shift=e.pad_left, span=e.kernel_span)


def _links(e, t):
    """(narrow cells, wide cells) joined by lines for output t: its taps (conv), or the inputs that write to
    it (transposed)."""
    reads = e.inputs_of(t)
    if e.transposed:
        inputs = [] if reads is None else [i for i in range(reads[0], reads[1] + 1, reads[2]) if 0 <= i < e.length]
        return inputs, [t]
    return [t], list(range(reads[0], reads[1] + 1, reads[2]))


def _visible_blocks(rows, link_sets, limit=48):
    """Runs of wide positions to draw: all of them when few, else the neighbourhood of each output shown."""
    if rows.wide_last - rows.wide_first + 1 <= limit:
        return [(rows.wide_first, rows.wide_last)]
    wanted = []
    for narrow, wide in link_sets:
        ends = list(wide) + [p for n in narrow for p in rows.narrow_span(n)]
        wanted.append((max(rows.wide_first, min(ends) - 3), min(rows.wide_last, max(ends) + 3)))
    blocks = []
    for first, last in sorted(wanted):
        if blocks and first <= blocks[-1][1] + 4:
            blocks[-1] = (blocks[-1][0], max(blocks[-1][1], last))
        else:
            blocks.append((first, last))
    return blocks


class _Axis:
    """x coordinates of wide positions when some runs of them are left out: each gap takes 2 cells' width."""

    GAP = 2.0

    def __init__(self, blocks):
        self.blocks, self.starts = blocks, []
        x = 0.0
        for first, last in blocks:
            self.starts.append(x)
            x += last - first + 1 + self.GAP
        self.width = x - self.GAP

    def x(self, position):
        """x of a (possibly fractional) wide position inside one of the blocks."""
        for (first, last), start in zip(self.blocks, self.starts, strict=True):
            if first - 0.5 <= position <= last + 0.5:
                return start + position - first
        raise ValueError(f"position {position} is not drawn")

    def gaps(self):
        return [start - self.GAP / 2 - 0.5 for start in self.starts[1:]]


def _padding_source(e, p):
    """What padding cell p holds: '0', or '=x[i]' for the input it copies (reflect / replicate / circular)."""
    mode, n = e.padding_mode, e.length
    if mode == "zeros":
        return "0"
    if mode == "replicate":
        return f"=x[{min(max(p, 0), n - 1)}]"
    if mode == "circular":
        return f"=x[{p % n}]"
    return f"=x[{-p if p < 0 else 2 * (n - 1) - p}]"  # reflect


def _draw_cell(ax, x, y, label, colour=None, padding_note=None, fontsize=7):
    """One cell: white, or tinted with ``colour`` (a tap); a padding / cut cell is hatched grey with
    ``padding_note`` (its value, or 'cut') under it, and keeps ``colour`` as its border when it is a tap."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    corner, size = (x - 0.45, y - 0.4), (0.9, 0.8)
    if padding_note is not None:
        ax.add_patch(Rectangle(corner, *size, facecolor="#f0f0f0", edgecolor="#b0b0b0", hatch="///", linewidth=0))
        ax.text(x, y - 0.62, padding_note, ha="center", va="center", fontsize=fontsize - 1, color="#555555")
        face = "none"
    else:
        face = to_rgba(colour, 0.4) if colour else "white"
    ax.add_patch(Rectangle(corner, *size, facecolor=face, edgecolor=colour or "black",
                           linewidth=1.6 if colour else 0.8))
    if label:
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize,
                bbox=dict(boxstyle="square,pad=0.05", facecolor="#f0f0f0", linewidth=0) if padding_note else None)


def plot_explanation(e, path, outputs=None):
    outputs = _chosen_outputs(outputs, e.out_len)
    rows = _conv_rows(e)
    link_sets = [_links(e, t) for t in outputs]
    axis = _Axis(_visible_blocks(rows, link_sets))
    cells = sum(last - first + 1 for first, last in axis.blocks)
    width = min(22.0, max(7.0, 0.3 * axis.width + 2.5))
    # With equal aspect the rows take width·(3.8 / axis width) inches; the rest is title and margins.
    figure = _new_figure(width, min(3.4, max(2.3, width * 3.8 / (axis.width + 1.0) + 0.8)))
    ax = figure.add_subplot()
    wide_y, narrow_y = (2.4, 0.0) if e.transposed else (0.0, 2.4)
    fontsize = 7 if cells <= 60 else 6
    colour_of_wide, colour_of_narrow = {}, {}
    for (narrow, wide), colour in zip(link_sets, _TAP_COLOURS * 4, strict=False):
        colour_of_wide.update({p: colour for p in wide})
        colour_of_narrow.update({n: colour for n in narrow})

    for first, last in axis.blocks:  # the wide row: real cells, padding (conv) or cut outputs (transposed)
        for p in range(first, last + 1):
            note = None
            if not 0 <= p < rows.wide_length:
                note = "cut" if e.transposed else _padding_source(e, p)
            _draw_cell(ax, axis.x(p), wide_y, str(p), colour_of_wide.get(p), note, fontsize)
    for first, last in axis.blocks:  # the narrow row: each cell over the span it reads or writes
        for n in rows.narrow_within(first, last):
            a, b = rows.narrow_span(n)
            _draw_cell(ax, axis.x((a + b) / 2), narrow_y, str(n), colour_of_narrow.get(n), fontsize=fontsize)
    for narrow, wide in link_sets:  # the taps
        for n in narrow:
            a, b = rows.narrow_span(n)
            for p in wide:
                y_wide, y_narrow = (wide_y - 0.4, narrow_y + 0.4) if e.transposed else (wide_y + 0.4, narrow_y - 0.4)
                ax.plot([axis.x(p), axis.x((a + b) / 2)], [y_wide, y_narrow], color=colour_of_narrow[n],
                        linewidth=1.2, alpha=0.8)
    for x in axis.gaps():
        for y in (wide_y, narrow_y):
            ax.text(x, y, "⋯", ha="center", va="center", fontsize=12)

    _label_rows(ax, e, wide_y, narrow_y)
    ax.set_xlim(-1.0, axis.width)
    ax.set_ylim(-0.9, 2.9)
    ax.set_aspect("equal" if axis.width < 60 else "auto")
    ax.axis("off")
    ax.set_title(_picture_title(e, outputs), fontsize=9)
    return _save(figure, path)


def _chosen_outputs(outputs, out_len):
    if outputs is None:
        return sorted({0, out_len // 2, out_len - 1})
    outputs = [outputs] if isinstance(outputs, int) else list(outputs)
    for t in outputs:
        if not 0 <= module_int("outputs", t) < out_len:
            raise IndexError(f"output {t} out of range: the output has {out_len} positions")
    return outputs


def _label_rows(ax, e, wide_y, narrow_y):
    inputs, outputs = f"input\nL = {e.length}", f"output\n{e.out_len}"
    ax.text(-1.2, wide_y, outputs if e.transposed else inputs, ha="right", va="center", fontsize=8)
    ax.text(-1.2, narrow_y, inputs if e.transposed else outputs, ha="right", va="center", fontsize=8)


def _picture_title(e, outputs):
    numbers = f"k={e.kernel_size}, stride={e.stride}, dilation={e.dilation}"
    if e.transposed:
        numbers += f", padding={e.pad_left} (outputs cut), output_padding={e.output_padding}"
        what = "inputs writing to output"
    else:
        fill = "zeros" if e.padding_mode == "zeros" else e.padding_mode
        numbers += f", padding {e.pad_left} left / {e.pad_right} right ({fill}: hatched cells)"
        what = "taps of output"
    shown = ", ".join(str(t) for t in outputs)
    unreached = [t for t in outputs if not _links(e, t)[0]]
    note = f" (none reaches output {', '.join(str(t) for t in unreached)})" if unreached else ""
    return f"{e.type_name}: {numbers}\nL = {e.length} → {e.out_len}; lines: the {what} {shown}{note}"


@dataclass(frozen=True)
class _ConeRow:
    """One tensor of the stack in the cone picture, and which of its positions output t depends on (``cone``)
    or reads as padding (``padding``). Position u is drawn over its aligned inputs u·hop … u·hop + hop − 1,
    so a causal stack's cone leans left of the output and a centred one is symmetric."""

    label: str
    length: int
    hop: int | Fraction  # the cumulative hop of this tensor
    cone: frozenset
    padding: frozenset

    def x(self, position):
        return float(position * self.hop + (self.hop - 1) / 2)

    def position_at(self, x):
        return (x - float(self.hop - 1) / 2) / float(self.hop)

    @property
    def cell_width(self):
        return 0.85 * float(self.hop)


def _cone_rows(rf, output):
    """The rows of the cone of ``output``, input first. Rows are drawn for the convs, transposed convs and
    pools; padding layers and layers that keep positions are passed through."""
    rows, cone, padding = [], {output}, set()
    for layer in reversed(rf.layers):
        if layer.geometry is not None and layer.kind != "pad":
            rows.append(_ConeRow(f"{layer.name} ({layer.type_name})", layer.out_length, layer.cumulative.hop,
                                 frozenset(cone), frozenset(padding)))
        if layer.geometry is None:
            continue
        read = set()
        for t in cone:
            first, last, step = layer.geometry.inputs_of(t) or (0, -1, 1)
            read.update(range(first, last + 1, step))
        # Padding read above a padding layer is padding below it too, shifted by what that layer adds.
        shifted = {p - layer.geometry.pad_left for p in padding} if layer.kind == "pad" else set()
        cone = {p for p in read if 0 <= p < layer.in_length}
        padding = (read - cone) | shifted
    rows.append(_ConeRow("input", rf.length, 1, frozenset(cone), frozenset(padding)))
    return rows[::-1]


def _cone_x_range(rows):
    xs = [row.x(p) for row in rows for p in row.cone | row.padding] or [0.0]
    margin = max(3.0, 0.12 * (max(xs) - min(xs) + 1))
    return min(xs) - margin, max(xs) + margin


def _draw_cone_row(ax, row, y, x_range, colour):
    """Cells of one row across x_range: context cells white, cone cells tinted, padding cells hatched."""
    from matplotlib.colors import to_rgba

    width = row.cell_width
    positions = range(math.ceil(row.position_at(x_range[0])), math.floor(row.position_at(x_range[1])) + 1)
    many = len(positions) > 80  # then runs of cells become one bar: single cells would blur into stripes
    edge = "none" if many else "#444444"

    def bars(chosen):
        chosen = [p for p in chosen if p in positions]
        if not many:
            return [(row.x(p) - width / 2, width) for p in chosen]
        runs = []
        for p in chosen:
            if runs and p == runs[-1][1] + 1:
                runs[-1][1] = p
            else:
                runs.append([p, p])
        return [(row.x(a) - width / 2, row.x(b) - row.x(a) + width) for a, b in runs]

    context = [p for p in positions if 0 <= p < row.length and p not in row.cone]
    ax.broken_barh(bars(context), (y - 0.35, 0.7), facecolors="#ececec" if many else "white", edgecolors=edge,
                   linewidth=0.5)
    # An opaque tint, so the cone's shading behind does not show through.
    tint = tuple(1 - 0.55 * (1 - channel) for channel in to_rgba(colour)[:3])
    ax.broken_barh(bars(sorted(row.cone)), (y - 0.35, 0.7), facecolors=tint, edgecolors=edge, linewidth=0.5)
    ax.broken_barh(bars(sorted(row.padding)), (y - 0.35, 0.7), facecolors="#f0f0f0", edgecolors="#b0b0b0",
                   hatch="///", linewidth=0.5)
    if len(positions) <= 40:
        for p in positions:
            if 0 <= p < row.length or p in row.padding:
                ax.text(row.x(p), y, str(p), ha="center", va="center", fontsize=6, clip_on=True)


def _cone_outline(rows):
    """The polygon around the cone: left and right edges of its cells, row by row."""
    left, right = [], []
    for y, row in enumerate(rows):
        marked = row.cone | row.padding
        if marked:
            left.append((row.x(min(marked)) - row.cell_width / 2, y))
            right.append((row.x(max(marked)) + row.cell_width / 2, y))
    return left + right[::-1]


def plot_receptive_field(rf, path, output=None):
    if not rf.complete:
        first = rf.unknown_layers[0]
        raise ValueError(f"cannot draw the receptive field of {rf.model_name}: layer {first.index} "
                         f"{first.name!r} is unknown ({first.note})")
    output = rf.out_length // 2 if output is None else module_int("output", output)
    first, last = rf.window(output)  # also checks the range
    rows = _cone_rows(rf, output)
    x_range = _cone_x_range(rows)
    figure = _new_figure(11.0, 1.4 + 0.42 * len(rows))
    ax = figure.add_subplot()
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Polygon

    ax.add_patch(Polygon(_cone_outline(rows), closed=True, facecolor=to_rgba(_TAP_COLOURS[0], 0.1), edgecolor="none"))
    for y, row in enumerate(rows):
        _draw_cone_row(ax, row, y, x_range, _TAP_COLOURS[1] if y == len(rows) - 1 else _TAP_COLOURS[0])
    ax.set_yticks(range(len(rows)), [f"{row.label}  L={row.length}" for row in rows], fontsize=7)
    ax.set_xlim(*x_range)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("input position (each cell over its aligned inputs t·hop … t·hop + hop − 1)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    span = rf.input_span(output)
    depends = f"it depends on inputs {span[0]} … {span[1]}" if span else "it reads padding only"
    ax.set_title(f"{rf.model_name}: output {output} reads inputs {first} … {last} (size {rf.size}, hop {rf.hop}, "
                 f"offset {rf.offset}, lookahead {rf.lookahead}); {depends}\n"
                 "tinted: the positions it depends on, layer by layer; hatched: padding it reads", fontsize=9)
    return _save(figure, path)
