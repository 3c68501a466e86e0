"""``python -m fastdeconv shapes`` and ``python -m fastdeconv checkerboard``.

Both only print what :mod:`fastdeconv.shapes` and :mod:`fastdeconv.checkerboard` compute;
``checkerboard --png`` draws the overlap map with matplotlib (the optional ``plot`` extra).
"""

import argparse

import numpy as np

from . import checkerboard, shapes
from ._geometry import PADDING_STRINGS

__all__ = ["add_shapes_parser", "add_checkerboard_parser"]

PLOT_HINT = "install it with: python -m pip install 'fastdeconv[plot]'"


# ---------------------------------------------------------------------------- parsing helpers
def _int_token(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    return value


def _padding_token(text):
    """One --padding token: an int, "before,after", or a padding string."""
    if text in PADDING_STRINGS:
        return text
    if "," in text:
        parts = text.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(
                f"invalid padding {text!r}: a pair is written before,after (e.g. 0,1)")
        return tuple(_int_token(p) for p in parts)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid padding {text!r}: give ints, before,after pairs, or one of "
            f"{', '.join(PADDING_STRINGS)}") from None


def _padding(tokens):
    """--padding tokens -> the value fastdeconv takes."""
    if len(tokens) == 1:
        return tokens[0] if not isinstance(tokens[0], tuple) else (tokens[0],)
    if any(isinstance(t, str) for t in tokens):
        raise ValueError(f"a padding string ({', '.join(PADDING_STRINGS)}) must come alone, "
                         f"got {' '.join(map(str, tokens))}")
    if all(isinstance(t, tuple) for t in tokens):
        return tuple(tokens)
    if any(isinstance(t, tuple) for t in tokens):
        raise ValueError("give --padding either as ints (one per dimension) or as before,after "
                         "pairs (one per dimension), not mixed")
    return tuple(tokens)


def _one_or_many(values):
    return values[0] if len(values) == 1 else tuple(values)


def _size(shape):
    return "x".join(map(str, shape))


def _list_option(parser, flag, *, type=_int_token, **kwargs):
    """An option of one or more values (one for every dimension, or one per dimension)."""
    parser.add_argument(flag, nargs="+", type=type, **kwargs)


def _add_geometry_arguments(parser, *, target=True):
    _list_option(parser, "--input", required=True, metavar="N",
                 help="spatial input size, one value per dimension (e.g. --input 4 4)")
    _list_option(parser, "--kernel", required=True, metavar="K",
                 help="kernel size: one value for every dimension or one per dimension")
    _list_option(parser, "--stride", default=[1], metavar="S",
                 help="stride (default 1)")
    _list_option(parser, "--padding", type=_padding_token, default=[0], metavar="P",
                 help="padding: an int, one int per dimension, before,after pairs per "
                 "dimension (e.g. --padding 0,1 1,1) or one of valid, same, same_lower, "
                 "full (default 0)")
    _list_option(parser, "--dilation", default=[1], metavar="D",
                 help="dilation (default 1)")


# ----------------------------------------------------------------------------------- shapes
def add_shapes_parser(sub):
    parser = sub.add_parser(
        "shapes",
        help="output shape of conv / conv_transpose, the equivalent direct convolution and "
        "the paddings that reach a target size",
        description="Shape arithmetic of a convolution or a transposed convolution: the output "
        "shape with its formula, for a transposed convolution the equivalent stride-1 direct "
        "convolution (zeros inserted, padding, flipped kernel), and every padding (and "
        "output_padding) that reaches a target size. Example: python -m fastdeconv shapes "
        "transpose --input 4 4 --kernel 3 --stride 2 --padding 1",
    )
    parser.add_argument("operator", choices=["conv", "transpose"],
                        help="conv, or transpose for conv_transpose")
    _add_geometry_arguments(parser)
    _list_option(parser, "--output-padding", default=[0],
                 metavar="OP", help="output_padding of a transposed convolution "
                 "(default 0)")
    _list_option(parser, "--target", metavar="N",
                 help="output size to find paddings for (default: input * stride for "
                 "transpose, ceil(input / stride) for conv)")
    parser.set_defaults(func=cmd_shapes)
    return parser


def _formula_conv(n, k, s, d, pair, out):
    k_e = d * (k - 1) + 1
    return f"floor(({n} + {pair[0]} + {pair[1]} - {k_e}) / {s}) + 1 = {out}"


def _formula_transpose(n, k, s, d, pair, op, out):
    k_e = d * (k - 1) + 1
    return f"({n} - 1) * {s} - {pair[0]} - {pair[1]} + {k_e} + {op} = {out}"


def _per_dim_lines(lines):
    """Collapse per-dimension lines that are all equal."""
    if len(set(lines)) == 1:
        return [f"  every dimension: {lines[0]}"]
    return [f"  dimension {i}: {line}" for i, line in enumerate(lines)]


def _choices_lines(choices, transpose):
    lines = []
    for dim_choices in choices:
        if not dim_choices:
            lines.append("unreachable")
            continue
        parts = []
        for c in dim_choices:
            text = f"padding=({c.before}, {c.after})"
            if transpose:
                text += f" output_padding={c.output_padding}"
            parts.append(text)
        lines.append(" | ".join(parts))
    return _per_dim_lines(lines)


def cmd_shapes(args):
    from ._geometry import ConvGeometry

    transpose = args.operator == "transpose"
    size = tuple(args.input)
    ndim = len(size)
    kernel, stride = _one_or_many(args.kernel), _one_or_many(args.stride)
    dilation, padding = _one_or_many(args.dilation), _padding(args.padding)
    output_padding = _one_or_many(args.output_padding)
    if not transpose and args.output_padding != [0]:
        raise ValueError("--output-padding applies to transpose only")
    if transpose:
        g = ConvGeometry.for_conv_transpose(
            size, shapes._spatial(size, kernel)[1], stride=stride, padding=padding,
            output_padding=output_padding, dilation=dilation)
        out = g.input_size
        name = "conv_transpose"
    else:
        g = ConvGeometry.for_conv(size, shapes._spatial(size, kernel)[1], stride=stride,
                                  padding=padding, dilation=dilation)
        out = g.output_size
        name = "conv"
    lines = [
        f"{name}: input {_size(size)}, kernel {_size(g.kernel_size)}, stride {g.stride}, "
        f"padding {g.padding}" + (f" (from {padding!r})" if isinstance(padding, str) else "")
        + (f", output_padding {g.output_padding}" if transpose else "")
        + f", dilation {g.dilation}",
        f"output shape: {_size(out)}",
    ]
    if transpose:
        formulas = [_formula_transpose(n, k, s, d, pair, op, o) for n, k, s, d, pair, op, o in
                    zip(size, g.kernel_size, g.stride, g.dilation, g.padding,
                        g.output_padding, out)]
        lines.append("  (i - 1) * s - p_before - p_after + d * (k - 1) + 1 + output_padding:")
    else:
        formulas = [_formula_conv(n, k, s, d, pair, o) for n, k, s, d, pair, o in
                    zip(size, g.kernel_size, g.stride, g.dilation, g.padding, out)]
        lines.append("  floor((i + p_before + p_after - d * (k - 1) - 1) / s) + 1:")
    lines += ["  " + line for line in _per_dim_lines(formulas)]

    if transpose:
        eq = shapes.conv_transpose_as_conv(size, kernel, stride=stride, padding=padding,
                                           output_padding=output_padding, dilation=dilation)
        lines += ["", "equivalent direct convolution (Dumoulin & Visin):"]
        lines += ["  " + line for line in str(eq).splitlines()[1:]]
    else:
        # which transposed convolution maps the output back to this input size
        op = shapes.output_padding_for(out, size, kernel, stride=stride, padding=padding,
                                       dilation=dilation) if not isinstance(padding, str) else None
        if op is not None:
            lines += ["", f"conv_transpose with the same parameters maps {_size(out)} back to "
                          f"{_size(size)} with output_padding={_one_or_many(list(op))}"]

    if args.target is not None:
        target = tuple(args.target)
        if len(target) == 1 and ndim > 1:
            target = target * ndim
        if len(target) != ndim:
            raise ValueError(f"--target must have {ndim} sizes like --input, got "
                             f"{' '.join(map(str, args.target))}")
        default = ""
    elif transpose:
        target = tuple(n * s for n, s in zip(size, g.stride))
        default = " (input * stride; change it with --target)"
    else:
        target = tuple(-(-n // s) for n, s in zip(size, g.stride))
        default = " (ceil(input / stride); change it with --target)"
    choices = shapes.padding_choices(size, target, kernel, stride=stride, dilation=dilation,
                                     transpose=transpose)
    lines += ["", f"paddings that give output {_size(target)}{default}:"]
    lines += _choices_lines(choices, transpose)
    same = _same_hits(size, kernel, stride, dilation, transpose, target)
    if same:
        lines.append(f"  padding={same!r} gives it too")
    print("\n".join(lines))
    return 0


def _same_hits(size, kernel, stride, dilation, transpose, target):
    for name in ("same", "same_lower", "full"):
        try:
            if transpose:
                out = shapes.conv_transpose_output_shape(size, kernel, stride=stride,
                                                         padding=name, dilation=dilation)
            else:
                out = shapes.conv_output_shape(size, kernel, stride=stride, padding=name,
                                               dilation=dilation)
        except ValueError:
            continue
        if out == target:
            return name
    return None


# ------------------------------------------------------------------------------ checkerboard
def add_checkerboard_parser(sub):
    parser = sub.add_parser(
        "checkerboard",
        help="print (or draw) how many kernel taps land on each output cell of a "
        "transposed convolution",
        description="The overlap map of a transposed convolution: how many kernel taps land "
        "on each output cell, for one period of the interior or (with --input) the whole "
        "output. Unequal counts are the source of checkerboard artefacts. --png draws the map "
        "(needs matplotlib). Example: python -m fastdeconv checkerboard --kernel 3 --stride 2",
    )
    # flag, metavar, default (None: required), help
    for flag, metavar, default, text in (
        ("--kernel", "K", None, "kernel size, one value or one per dimension (default 2-d)"),
        ("--stride", "S", None, "stride, one value or one per dimension"),
        ("--dilation", "D", [1], "dilation (default 1)"),
        ("--input", "N", (), "spatial input size: show the whole output instead of one period"),
        ("--padding", "P", [0], "padding of the transposed convolution (with --input)"),
        ("--output-padding", "OP", [0], "output_padding (with --input)"),
    ):
        _list_option(parser, flag, type=_padding_token if flag == "--padding" else _int_token,
                     metavar=metavar, help=text, required=default is None,
                     default=None if default in (None, ()) else default)
    parser.add_argument("--ndim", type=_int_token, default=None,
                        help="number of spatial dimensions when every option has one value "
                        "(default 2)")
    parser.add_argument("--png", metavar="FILE", help="also draw the map into FILE (matplotlib)")
    parser.set_defaults(func=cmd_checkerboard)
    return parser


def _grid_text(array):
    if array.ndim == 1:
        array = array[None]
    if array.ndim > 2:
        blocks = []
        for index in np.ndindex(array.shape[:-2]):
            blocks.append(f"[{', '.join(map(str, index))}, :, :]")
            blocks.append(_grid_text(array[index]))
        return "\n".join(blocks)
    width = max(len(str(v)) for v in array.flat)
    return "\n".join("  " + " ".join(str(v).rjust(width) for v in row) for row in array)


def cmd_checkerboard(args):
    lengths = {len(v) for v in (args.kernel, args.stride, args.dilation) if len(v) > 1}
    if args.input is not None:
        lengths.add(len(args.input))
    if len(lengths) > 1:
        raise ValueError("--kernel, --stride, --dilation and --input must have one value or "
                         "the same number of values")
    if args.ndim is not None and args.ndim < 1:
        raise ValueError(f"--ndim must be >= 1, got {args.ndim}")
    ndim = lengths.pop() if lengths else (args.ndim or 2)
    if args.ndim is not None and args.ndim != ndim:
        raise ValueError(f"--ndim {args.ndim} does not match {ndim} values given per option")

    def expand(values):
        return tuple(values) * ndim if len(values) == 1 else tuple(values)

    kernel, stride, dilation = expand(args.kernel), expand(args.stride), expand(args.dilation)
    whole = args.input is not None
    if not whole and (args.padding != [0] or args.output_padding != [0]):
        raise ValueError("--padding and --output-padding need --input (a whole output)")
    if whole:
        size = expand(args.input)
        padding = _padding(args.padding)
        output_padding = _one_or_many(args.output_padding)
        counts = checkerboard.overlap_map(kernel, stride, dilation=dilation, input_shape=size,
                                          padding=padding, output_padding=output_padding)
    else:
        counts = checkerboard.overlap_map(kernel, stride, dilation=dilation)
    period = checkerboard.overlap_map(kernel, stride, dilation=dilation)
    uniform = checkerboard.is_uniform(kernel, stride, dilation=dilation)
    what = (f"whole output {_size(counts.shape)} of an input {_size(size)}" if whole else
            f"one period ({_size(stride)} cells) of the interior")
    lines = [
        f"overlap map of conv_transpose, kernel {_size(kernel)}, stride {_size(stride)}, "
        f"dilation {_size(dilation)}: taps per output cell, {what}",
        _grid_text(counts),
        "",
    ]
    if uniform:
        lines.append(f"uniform: every interior cell receives {int(period.flat[0])} taps, so "
                     "all-equal weights give a flat response to a constant input (general "
                     "weights can still differ between phases; see checkerboard_score)")
    else:
        lines.append(f"not uniform: interior cells receive {int(period.min())} to "
                     f"{int(period.max())} taps in a pattern of period {_size(stride)}: a "
                     "checkerboard even for all-equal weights (make the kernel size a multiple "
                     "of the stride, or use resize-convolution)")
    if args.png:
        _draw(counts, args.png, kernel, stride, dilation, what)
        lines.append(f"wrote {args.png}")
    print("\n".join(lines))
    return 0


def _draw(counts, path, kernel, stride, dilation, what):
    try:
        import matplotlib
    except ImportError:
        raise ValueError(f"--png needs matplotlib, which is not installed; {PLOT_HINT}") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = counts if counts.ndim == 2 else (counts[None] if counts.ndim == 1 else
                                             counts.reshape(-1, counts.shape[-1]))
    fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * image.shape[1] + 1.5),
                                    max(2.0, 0.45 * image.shape[0] + 1.0)))
    shown = ax.imshow(image, cmap="viridis", vmin=0, interpolation="nearest")
    if image.size <= 400:
        for (i, j), v in np.ndenumerate(image):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v < image.max() * 0.6 else "black", fontsize=8)
    from matplotlib.ticker import MaxNLocator

    fig.colorbar(shown, ax=ax, label="taps", ticks=MaxNLocator(integer=True))
    ax.set_title(f"kernel {_size(kernel)}, stride {_size(stride)}, dilation {_size(dilation)}\n"
                 f"{what}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--png could not write {path!r}: {exc}") from None
    finally:
        plt.close(fig)
