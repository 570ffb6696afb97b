"""The text of explain() and receptive_field(): the step-by-step explanation of one conv and the per-layer
table of a stack."""

from .window import flag_runs, padded_output_flags, read_input_flags

__all__ = ["explanation_lines", "receptive_field_lines"]

# ---- explain(): the text ------------------------------------------------------------------------------------------

_LABEL_WIDTH = 16


def _row(label, text):
    return f"{label:<{_LABEL_WIDTH}}{text}"


def _more(text):
    return " " * _LABEL_WIDTH + text


def _signed(value):
    """' + 3' / ' − 3' / '' for writing t·s + value."""
    if value == 0:
        return ""
    return f" + {value}" if value > 0 else f" − {-value}"


def _times(factor, name):
    """'2t', or 't' for a factor of 1."""
    return name if factor == 1 else f"{factor}{name}"


def _plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _positions(first, last, step, limit=6):
    """'a, b, c' or 'a, b, …, z (n positions)'."""
    values = range(first, last + 1, step)
    if len(values) <= limit:
        return ", ".join(str(v) for v in values)
    return f"{values[0]}, {values[1]}, …, {values[-1]} ({len(values)} positions)"


def _runs_text(runs, limit=4):
    """(first, last) runs as 'a … b, c', shortened after ``limit`` runs."""
    texts = []
    for first, last in runs:
        if len(texts) == limit:
            texts.append("…")
            break
        texts.append(f"{first}" if first == last else f"{first} … {last}")
    return ", ".join(texts)


def _header(e):
    parts = [f"in_channels={e.in_channels}", f"out_channels={e.out_channels}", f"kernel_size={e.kernel_size}",
             f"stride={e.stride}", f"padding={e.padding!r}", f"dilation={e.dilation}"]
    if e.transposed:
        parts.append(f"output_padding={e.output_padding}")
    if e.groups != 1:
        parts.append(f"groups={e.groups}")
    if not e.bias:
        parts.append("bias=False")
    if e.padding_mode != "zeros":
        parts.append(f"padding_mode={e.padding_mode!r}")
    return f"{e.type_name}({', '.join(parts)}) on an input of length L = {e.length}"


def _padding_lines(e):
    if e.padding == "valid":
        return [_row("padding", "'valid': none")]
    if e.padding == "same":
        total = e.pad_left + e.pad_right
        lines = [_row("padding", f"'same' ({e.padding_mode}): total = dilation·(k − 1) = {e.dilation}·"
                      f"{e.kernel_size - 1} = {total}, left = total // 2 = {e.pad_left}, right = total − left = "
                      f"{e.pad_right}")]
    else:
        explicit = "; explicit, as F.pad and then a conv with padding=0" if isinstance(e.padding, tuple) else ""
        lines = [_row("padding", f"{e.pad_left} left, {e.pad_right} right ({e.padding_mode}{explicit})")]
    if e.padding_mode != "zeros":
        lines.append(_more(f"{e.padding_mode}: the padding cells hold copies of inputs, not zeros; the positions "
                           "are the same"))
    if e.pad_left or e.pad_right:
        lines.append(_more(f"the padded input spans positions {-e.pad_left} … {e.length + e.pad_right - 1}; "
                           f"positions < 0 and >= {e.length} are padding"))
    return lines


def _span_line(e):
    return _row("kernel span", f"dilation·(k − 1) + 1 = {e.dilation}·({e.kernel_size} − 1) + 1 = {e.kernel_span} "
                f"positions, one tap every {e.dilation}")


def _conv_length_lines(e):
    numerator = e.length + e.pad_left + e.pad_right - e.dilation * (e.kernel_size - 1) - 1
    return [
        _row("output length", "floor((L + pad_left + pad_right − dilation·(k − 1) − 1) / stride) + 1"),
        _more(f"= floor(({e.length} + {e.pad_left} + {e.pad_right} − {e.dilation}·{e.kernel_size - 1} − 1) "
              f"/ {e.stride}) + 1"),
        _more(f"= floor({numerator} / {e.stride}) + 1 = {numerator // e.stride} + 1 = {e.out_len}"),
    ]


def _transposed_length_lines(e):
    return [
        _row("output length", "(L − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1"),
        _more(f"= ({e.length} − 1)·{e.stride} − 2·{e.pad_left} + {e.dilation}·{e.kernel_size - 1} + "
              f"{e.output_padding} + 1 = {e.out_len}"),
    ]


def _sample_outputs(out_len):
    return sorted(t for t in {0, 1, out_len // 2, out_len - 1} if t < out_len)


def _reads_lines(e):
    g = e.geometry
    lines = []
    if e.transposed:
        target = f"{_times(e.stride, 'i')}{_signed(-e.pad_left)} + {_times(e.dilation, 'j')}"
        lines.append(_row("scatter", f"input i adds w[j]·x[i] to output i·stride − padding + j·dilation = "
                          f"{target}, j = 0 … {e.kernel_size - 1}"))
        lines.append(_row("output t reads", "the inputs i with i·stride = t + padding − j·dilation for some j"))
    else:
        first = f"{_times(e.stride, 't')}{_signed(-e.pad_left)}"
        last = f"{_times(e.stride, 't')}{_signed(e.kernel_span - 1 - e.pad_left)}"
        lines.append(_row("output t reads", f"t·stride − pad_left + j·dilation, j = 0 … {e.kernel_size - 1}: "
                          f"{first} … {last}, step {e.dilation}"))
    width = len(str(e.out_len - 1))
    for t in _sample_outputs(e.out_len):
        reads = g.inputs_of(t)
        if reads is None:
            lines.append(_more(f"output {t:<{width}} reads nothing (no tap lands on an input: bias only)"))
            continue
        first, last, step = reads
        note = _outside_note([p for p in range(first, last + 1, step) if not 0 <= p < e.length], e.transposed)
        lines.append(_more(f"output {t:<{width}} reads {_positions(first, last, step)}{note}"))
    return lines


def _outside_note(outside, transposed):
    if not outside:
        return ""
    where = "outside the input" if transposed else "padding"
    if len(outside) == 1:
        return f"   ({outside[0]} is {where})"
    if len(outside) <= 3:
        return f"   ({', '.join(str(p) for p in outside)} are {where})"
    return f"   ({len(outside)} of them are {where})"


def _direct_equivalent_lines(e):
    left = e.kernel_span - 1 - e.pad_left
    right = left + e.output_padding
    pads = (f"pad dilation·(k − 1) − padding = {left} left and {right} right" if left >= 0 else
            f"crop {-left} left and {-right} right" if right <= 0 else f"crop {-left} left, pad {right} right")
    zeros = _plural(e.stride - 1, "zero")
    return [_row("equivalent", f"a direct conv: insert stride − 1 = {zeros} between inputs, {pads},"),
            _more("flip the kernel and slide it with stride 1")]


def _edge_lines(e):
    lines = []
    if e.outputs_reading_padding:
        where = "padding" if not e.transposed else "positions outside the input"
        runs = flag_runs(padded_output_flags(e.geometry, e.length, e.out_len), 1)
        lines.append(_row("edges", f"{e.outputs_reading_padding} of {e.out_len} outputs read {where}: "
                          f"{_runs_text(runs)}"))
    else:
        lines.append(_row("edges", "no output reads padding" if not e.transposed else
                          "no output reads positions outside the input"))
    if e.inputs_never_read:
        runs = flag_runs(read_input_flags(e.geometry, e.length, e.out_len), 0)
        lines.append(_row("unread", f"{_plural(e.inputs_never_read, 'input')} never read: {_runs_text(runs)}"))
    return lines


def _cost_lines(e):
    dtype = str(e.dtype).removeprefix("torch.")
    if e.transposed:
        formula = (f"batch·L·in_channels·(out_channels/groups)·k = {e.batch}·{e.length}·{e.in_channels}·"
                   f"{e.out_channels // e.groups}·{e.kernel_size}")
    else:
        formula = (f"batch·out_len·out_channels·(in_channels/groups)·k = {e.batch}·{e.out_len}·{e.out_channels}·"
                   f"{e.in_channels // e.groups}·{e.kernel_size}")
    parts = [f"input {e.input_bytes:,}", f"weight {e.weight_bytes:,}"]
    if e.bias:
        parts.append(f"bias {e.bias_bytes:,}")
    parts.append(f"output {e.output_bytes:,}")
    return [_row("cost", f"one call, batch {e.batch}, {dtype} ({e.dtype.itemsize} bytes each):"),
            _more(f"multiply-adds {formula} = {e.macs:,}"),
            _more(f"bytes {' + '.join(parts)} = {e.total_bytes:,} (each tensor read or written once)")]


def explanation_lines(e):
    """The explanation as a list of lines."""
    lines = [_header(e), ""]
    if e.transposed:
        lines += _transposed_length_lines(e)
        lines += _reads_lines(e)
        lines += _direct_equivalent_lines(e)
    else:
        lines += _padding_lines(e)
        lines.append(_span_line(e))
        lines += _conv_length_lines(e)
        lines += _reads_lines(e)
    lines += _edge_lines(e)
    lines += _cost_lines(e)
    return lines



# ---- receptive_field(): the text -----------------------------------------------------------------------------------

def _text(value):
    return "?" if value is None else str(value)


# Which columns hold numbers (right-aligned): #, then size, hop, offset of the layer and of the stack.
_NUMERIC = (0, 4, 5, 6, 7, 8, 9)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [text.rjust(width) if i in _NUMERIC else text.ljust(width)
                 for i, (text, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _layer_rows(rf):
    rows = [["#", "layer", "type", "length", "size", "hop", "offset", "cum. size", "cum. hop", "cum. offset",
             "note"]]
    for layer in rf.layers:
        if layer.window is None:
            own = ["?", "?", "?"]
        else:
            own = [str(layer.size), str(layer.hop), str(layer.offset)]
        cumulative = layer.cumulative
        total = ["?", "?", "?"] if cumulative is None else [str(cumulative.size), str(cumulative.hop),
                                                             str(cumulative.offset)]
        kind = layer.kind if layer.kind in ("unknown", "assumed pointwise", "norm") else ""
        fed = "" if layer.fed_by_previous else "input computed in forward() (a skip, sum or reshape?)"
        rows.append([str(layer.index), layer.name, layer.type_name,
                     f"{_text(layer.in_length)} → {_text(layer.out_length)}", *own, *total,
                     "; ".join(filter(None, [": ".join(filter(None, [kind, layer.note])), fed]))])
    return rows


def _summary(rf):
    if not rf.complete:
        first = rf.unknown_layers[0]
        return [f"unknown after layer {first.index} ({first.name}): {first.note}.",
                "The model's size, hop and offset are not claimed; the cumulative columns hold up to the layer "
                "before it."]
    size, hop, offset = rf.size, rf.hop, rf.offset
    t_hop = "t" if hop == 1 else f"{hop}·t"
    lines = [f"output t reads inputs offset + t·hop … offset + t·hop + size − 1 = {t_hop}{_signed(offset)} … "
             f"{t_hop}{_signed(offset + size - 1)}   (size {size}, hop {hop}, offset {offset})",
             "positions < 0 or >= the input length are padding"]
    lookahead = rf.lookahead
    if lookahead == 0:
        lines.append("lookahead 0: causal, output t reads no input after its aligned input t·hop")
    elif lookahead < 0:
        lines.append(f"lookahead {lookahead}: causal, output t reads nothing after input t·hop{_signed(lookahead)}")
    else:
        lines.append(f"lookahead {lookahead}: output t reads up to {lookahead} inputs after its aligned input "
                     f"t·hop; streaming it adds a latency of {lookahead} input samples")
    if any(layer.kind == "conv_transpose" for layer in rf.layers):
        lines.append("with transposed convs the span bounds the inputs read; rf.input_span(t) gives the exact "
                     "first and last")
    fed_by_code = sum(not layer.fed_by_previous for layer in rf.layers)
    if fed_by_code:
        lines.append(f"{fed_by_code} layers read a tensor computed in forward(): the layers are composed as a "
                     "chain, which holds for residual sums around windows that contain the aligned position; "
                     "parallel branches are not followed")
    return lines


def receptive_field_lines(rf):
    out_length = f", output length {rf.out_length}" if rf.out_length is not None else ""
    lines = [f"Receptive field of {rf.model_name}: {len(rf.layers)} layers in forward order on an input of "
             f"(1, {rf.in_channels}, {rf.length}){out_length}", ""]
    lines += _table(_layer_rows(rf))
    lines.append("")
    lines += _summary(rf)
    return lines

