"""``python -m fastdeconv bench``: options, the two modes (layer suite, ``--upsampling``), output.

Both modes print the same format (:mod:`fastdeconv._bench.table`) on stdout, or their rows as
JSON with ``--json``, and draw a progress bar on stderr when it is a terminal.
"""

import argparse
import json
import os
import sys
import textwrap

from . import layers, upsampling
from .peers import PEERS
from .suite import SUITE, SUITE_ENV, Case

__all__ = ["QUIET_POOLS", "add_arguments", "add_parser", "command", "main", "main_from_args"]

#: Set for the layer benchmark when it runs more than one thread. An OpenBLAS worker (NumPy's,
#: in the plain-NumPy peer and the GEMM peak) spins for 2**28 cycles (~0.1 s) after each
#: threaded call unless told otherwise, and with the peers interleaved in one process that
#: spin takes the cores from the peer timed next; 2**4 cycles makes idle workers sleep at once.
#: This cannot be done in-process: OpenBLAS reads the variable once, when the library is loaded
#: (NumPy loads it before any code of fastdeconv runs), and has no call to change it later
#: (threadpoolctl and ``openblas_set_num_threads`` change the thread count, not how idle
#: workers wait; lowering the count leaves the spinning workers spinning). So the command runs
#: itself again with the variable set (:func:`command`); a value the user set is kept.
QUIET_POOLS = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def _case_list():
    """The cases of both modes, for ``--help``."""
    cases = [Case.from_dict(entry) for entry in SUITE]
    width = max(len(case.name) for case in cases)
    lines = [f"layer cases (the packaged suite; --suite or ${SUITE_ENV} names another):"]
    lines += [f"  {case.name:<{width}}  {case.op:<14}  {case.summary()}" for case in cases]
    lines += ["  or an op: conv_transpose, conv, conv_wgrad (its cases)", "",
              "upsampling cases (with --upsampling; the _backward ones with --backward):"]
    names = ", ".join(case.replace(" ", "_") for case in upsampling.CASES
                      + upsampling.BACKWARD_CASES)
    lines += textwrap.wrap(names, 78, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def add_arguments(parser):
    """Add the benchmark's options to an :class:`argparse.ArgumentParser` (or subparser)."""
    parser.add_argument("cases", nargs="*", metavar="CASE",
                        help="case names or ops (see the list below); default all")
    parser.add_argument("--cases", dest="case_list", action="append", default=[],
                        metavar="CASE,CASE", help="comma-separated cases (as CASE; repeatable)")
    parser.add_argument("--dtype", choices=layers.DTYPES, default="float32")
    parser.add_argument("--threads", type=int, default=1, help="threads per library (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per peer (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="at most 3 repetitions and a 2 s budget per peer and case")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per peer and case before repetitions are cut "
                             "(default 10, or 2 with --quick)")
    parser.add_argument("--peers", default=None,
                        help=f"comma-separated peers (default {','.join(PEERS)}; with "
                             f"--upsampling {','.join(upsampling.PEERS)})")
    parser.add_argument("--suite", default=None,
                        help=f"suite JSON file (default ${SUITE_ENV} or the packaged suite)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the results as JSON to FILE ('-' or no value: stdout, "
                             "instead of the table)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr (there is none when stderr is not a "
                             "terminal)")
    parser.add_argument("--data-format", dest="data_format", default="channels_first",
                        choices=("channels_first", "channels_last"),
                        help="layout of the data operands (layer suite): channels_last runs "
                        "fastdeconv with data_format='channels_last', PyTorch in its "
                        "channels_last memory format, and fastdeconv_nchw for comparison")
    parser.add_argument("--upsampling", action="store_true",
                        help="time resize (nearest/linear/cubic, 2x and 4x), max_pool and "
                        "max_unpool on a (16, 64, 64, 64) batch against PyTorch instead of the "
                        "layer suite")
    parser.add_argument("--backward", action="store_true",
                        help="with --upsampling: also time the gradients")
    return parser


def add_parser(subparsers):
    """Add the ``bench`` sub-command to the subparsers of ``python -m fastdeconv``."""
    bench = subparsers.add_parser(
        "bench",
        help="time fastdeconv, PyTorch, ONNX Runtime and plain NumPy side by side on the "
        "benchmark suite",
        description="Time every available peer in one process, interleaved, with thread "
        "counts pinned, on the layer suite; print ms, the ratio to the fastest other peer and "
        "the fraction of the machine's limit, under the setup (CPU, BLAS, threads, dtype).",
        epilog=_case_list(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(bench)
    bench.set_defaults(func=command)
    return bench


def _selectors(args):
    names = list(args.cases)
    for text in args.case_list:
        names += [name for name in text.split(",") if name.strip()]
    return names or None


def main_from_args(args):
    """Run the benchmark from parsed :func:`add_arguments` options; return an exit code."""
    peers = [p.strip() for p in args.peers.split(",") if p.strip()] if args.peers else None
    if args.upsampling:
        rows = upsampling.run(threads=args.threads, repeats=args.repeat,
                              cases=_selectors(args), backward=args.backward,
                              peers=peers or upsampling.PEERS, dtype=args.dtype,
                              progress=args.progress, quick=args.quick, budget=args.budget)
        table = upsampling.format_table
    else:
        rows = layers.run(_selectors(args), dtype=args.dtype, threads=args.threads,
                          repeat=args.repeat, quick=args.quick, peers=peers,
                          progress=args.progress, budget=args.budget, suite=args.suite,
                          data_format=args.data_format)
        table = layers.format_table
    if args.json == "-":
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    print(table(rows))
    return 0


def _rerun_with_quiet_pools(args):
    """Run ``python -m fastdeconv bench ...`` again with :data:`QUIET_POOLS` set, if needed.

    Only the layer benchmark with more than one thread needs it (the upsampling one has no
    peer calling NumPy's BLAS), and only a process started as ``python -m fastdeconv`` is
    replaced: when :func:`main` is called in-process (tests, notebooks), nothing happens.
    """
    if args.upsampling or args.threads <= 1 or all(k in os.environ for k in QUIET_POOLS):
        return
    main_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "__main__.py")
    try:
        started_as_module = os.path.samefile(sys.argv[0], main_file)
    except OSError:
        started_as_module = False
    if started_as_module:
        env = dict(QUIET_POOLS, **os.environ)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "fastdeconv"] + sys.argv[1:], env)


def command(args):
    """The ``bench`` sub-command: :func:`main_from_args`, in a process with quiet pools."""
    _rerun_with_quiet_pools(args)
    return main_from_args(args)


def main(argv=None):
    """Run the benchmark with the options of ``python -m fastdeconv bench``."""
    parser = argparse.ArgumentParser(prog="fastdeconv bench", epilog=_case_list(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return main_from_args(add_arguments(parser).parse_args(argv))
