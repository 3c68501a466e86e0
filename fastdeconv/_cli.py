"""Command line: ``python -m fastdeconv {verify,shapes,checkerboard,bench,config}``.

Errors in the arguments print one line and exit with status 2; ``verify`` exits with 1 when a
check fails.
"""

import argparse
import sys

from . import _verify

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_verify(args):
    cases = _verify.CASES
    if args.op:
        cases = [c for c in cases if c.op in args.op]
    rows = _verify.run(cases, tolerance=args.tolerance, seed=args.seed,
                       progress=not args.no_progress and sys.stderr.isatty())
    print(_verify.format_table(rows, args.tolerance))
    return 0 if all(ok for _, _, ok in rows) else 1


def _cmd_config(args):
    from . import show_config

    show_config()
    return 0


def build_parser():
    parser = _Parser(
        prog="python -m fastdeconv",
        description="fastdeconv: exact, explainable, fast convolution, transposed convolution "
        "and upsampling for NumPy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    verify = sub.add_parser(
        "verify",
        help="check every operator against its sparse matrix, its adjoint, the NumPy "
        "reference and finite differences (float64)",
        description="Check every operator on a default set of configurations against its "
        "explicit sparse matrix, the dot-product (adjoint) test, the plain-NumPy reference and "
        "float64 finite differences of its gradients; print a table; exit 1 on a mismatch.",
    )
    verify.add_argument("--op", action="append",
                        choices=_verify.OPS,
                        help="only this operator (repeatable)")
    verify.add_argument("--tolerance", type=float, default=1e-10,
                        help="largest relative error that passes (default 1e-10)")
    verify.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(func=_cmd_verify)

    from . import _cli_explain

    _cli_explain.add_shapes_parser(sub)
    _cli_explain.add_checkerboard_parser(sub)

    from ._bench import cli as _bench_cli

    _bench_cli.add_parser(sub)

    config = sub.add_parser("config", help="print versions, build options, OpenMP and BLAS")
    config.set_defaults(func=_cmd_config)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # a size that cannot fit: the message says how much it needs
        print(f"{parser.prog} {args.command}: error: out of memory: {exc}", file=sys.stderr)
        return 1
