"""The arithmetic of one 1D convolution from the command line (see conv1d_ext.explain):

    python -m conv1d_ext.arithmetic --kernel 3 --dilation 4 --padding same --length 100
    python -m conv1d_ext.arithmetic --kernel 3 --stride 2 --padding 1 --length 100 --plot conv.png
    python -m conv1d_ext.arithmetic --kernel 4 --stride 2 --padding 1 --transposed --length 16

Bad numbers are reported as PyTorch reports them (exit status 2).
"""

import argparse
import sys

from .explanation import explain


def _padding(text):
    """An int, 'same', 'valid', or 'left,right'."""
    if text in ("same", "valid"):
        return text
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, 'same', 'valid' or 'left,right', got {text!r}") from None
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected one int or two (left,right), got {text!r}")
    return values[0] if len(values) == 1 else values


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m conv1d_ext.arithmetic",
                                     description="Explain the arithmetic of one 1D convolution: output length, "
                                                 "padding, the inputs each output reads, multiply-adds, bytes.")
    parser.add_argument("--kernel", "--kernel-size", dest="kernel_size", type=int, required=True)
    parser.add_argument("--length", type=int, required=True, help="input length L")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", type=_padding, default=0, help="an int, 'same', 'valid' or 'left,right'")
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--out-channels", type=int, default=1)
    parser.add_argument("--padding-mode", default="zeros", help="zeros, reflect, replicate or circular")
    parser.add_argument("--transposed", action="store_true", help="a transposed convolution (ConvTranspose1d)")
    parser.add_argument("--output-padding", type=int, default=0, help="with --transposed")
    parser.add_argument("--no-bias", dest="bias", action="store_false")
    parser.add_argument("--batch", type=int, default=1, help="batch size for the cost (default 1)")
    parser.add_argument("--dtype", default="float32", help="dtype for the bytes (default float32)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the rows and taps to this PNG file")
    parser.add_argument("--outputs", type=int, nargs="+", metavar="T", help="outputs whose taps --plot draws")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        explanation = explain(length=args.length, kernel_size=args.kernel_size, stride=args.stride,
                              padding=args.padding, dilation=args.dilation, groups=args.groups,
                              in_channels=args.in_channels, out_channels=args.out_channels, bias=args.bias,
                              padding_mode=args.padding_mode, transposed=args.transposed,
                              output_padding=args.output_padding, batch=args.batch, dtype=args.dtype)
        print(explanation)
        if args.plot:
            explanation.plot(args.plot, outputs=args.outputs)
            print(f"\npicture: {args.plot}")
    except (ValueError, TypeError, IndexError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
