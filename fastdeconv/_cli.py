"""Command line: ``python -m fastdeconv {verify,shapes,checkerboard,bench,config}``.

Errors in the arguments print one line and exit with status 2; ``verify`` exits with 1 when a
check fails.
"""

import argparse
import os
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


#: Set for the benchmark process when it runs more than one thread: an OpenBLAS worker
#: (NumPy's, in the plain-NumPy peer) spins for 2**28 cycles (~0.1 s) after each threaded call
#: unless told otherwise, and with the peers interleaved in one process that spin takes the
#: cores from the peer timed next; 2**4 cycles makes idle workers sleep at once. OpenBLAS
#: reads it when it is loaded, so the command re-executes itself with it (a value the user
#: set is kept).
QUIET_POOLS = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def _reexec_with_quiet_pools(args):
    """Re-run ``python -m fastdeconv bench ...`` with :data:`QUIET_POOLS` in the environment."""
    main_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")
    if args.threads <= 1 or all(k in os.environ for k in QUIET_POOLS):
        return
    try:
        started_as_module = os.path.samefile(sys.argv[0], main_file)
    except OSError:
        started_as_module = False
    if started_as_module:  # not when main() is called in-process (tests, notebooks)
        env = dict(QUIET_POOLS, **os.environ)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "fastdeconv"] + sys.argv[1:], env)


def _cmd_bench(args):
    _reexec_with_quiet_pools(args)
    args.progress = args.progress and sys.stderr.isatty()
    if args.upsampling:
        from . import _bench_upsample

        rows = _bench_upsample.run(threads=args.threads, repeats=args.repeat,
                                   backward=args.backward,
                                   stream=sys.stderr if args.progress else None)
        print(_bench_upsample.format_table(rows, threads=args.threads))
        return 0
    from . import _bench

    return _bench.main_from_args(args)


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

    try:
        from . import _bench
    except ImportError:  # pragma: no cover - the benchmark engine is part of the package
        _bench = None
    if _bench is not None:
        bench = sub.add_parser(
            "bench",
            help="time fastdeconv, PyTorch, ONNX Runtime and plain NumPy side by side on the "
            "benchmark suite",
            description="Time every available peer in one process, interleaved, with thread "
            "counts pinned, on the layer suite; print ms, the ratio to the best peer and the "
            "fraction of the machine's limit.",
        )
        _bench.add_arguments(bench)
        bench.add_argument("--upsampling", action="store_true",
                           help="time resize (nearest/linear/cubic, 2x and 4x), max_pool and "
                           "max_unpool on a (16, 64, 64, 64) float32 batch against PyTorch "
                           "instead of the layer suite")
        bench.add_argument("--backward", action="store_true",
                           help="with --upsampling: also time the gradients")
        bench.set_defaults(func=_cmd_bench)

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
