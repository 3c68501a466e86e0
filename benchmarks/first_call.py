"""Cost of the first call of a process against later calls, for every case of the layer suite.

Run from a built checkout (not an asv benchmark)::

    PYTHONPATH=$PWD python benchmarks/first_call.py                 # float32, 1 thread
    PYTHONPATH=$PWD python benchmarks/first_call.py --dtype float64 --threads 2
    PYTHONPATH=$PWD python benchmarks/first_call.py --library torch   # a peer, for comparison

Every case runs in a fresh interpreter (``python -c``) that imports fastdeconv, makes the
operands, then times the first call and ``--repeat`` later calls; the ratio is the first call's
time over the median of the later ones. One-off work (plans, transform matrices, thread pools)
lands in the first call; so does the first touch of the output's fresh pages, which every
library pays (a later call reuses memory that the allocator keeps).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import numpy as np
import fastdeconv
from fastdeconv._bench import peers, suite
case = [c for c in suite.load_suite() if c.name == sys.argv[1]][0]
fastdeconv.set_num_threads(int(sys.argv[3]))
operands = suite.make_operands(case, sys.argv[2])
call = peers.PEER_OPS[sys.argv[5]][case.op](case, operands, int(sys.argv[3]))
times = []
for _ in range(1 + int(sys.argv[4])):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def measure(case, dtype, threads, repeat, library="fastdeconv"):
    """``(first, median of later)`` seconds of ``case`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _CHILD, case, dtype, str(threads), str(repeat),
                          library],
                         check=True, capture_output=True, text=True, env=os.environ).stdout
    times = json.loads(out.splitlines()[-1])
    return times[0], statistics.median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="later calls (default 5)")
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes per case; the table gives the median ratio")
    parser.add_argument("--library", default="fastdeconv",
                        help="fastdeconv (default) or a peer of the bench (torch, onnxruntime)")
    parser.add_argument("cases", nargs="*", help="case names (default: the whole suite)")
    args = parser.parse_args(argv)
    from fastdeconv._bench import suite
    names = args.cases or [case.name for case in suite.load_suite()]
    print(f"{args.library}: first call vs later calls, {args.dtype}, {args.threads} thread(s), median of "
          f"{args.processes} fresh processes\n")
    print("| case | first ms | later ms | first / later |")
    print("|---|---:|---:|---:|")
    ratios = []
    for name in names:
        runs = [measure(name, args.dtype, args.threads, args.repeat, args.library)
                for _ in range(args.processes)]
        first = statistics.median(r[0] for r in runs)
        later = statistics.median(r[1] for r in runs)
        ratio = statistics.median(r[0] / r[1] for r in runs)
        ratios.append(ratio)
        print(f"| {name} | {1e3 * first:.2f} | {1e3 * later:.2f} | {ratio:.2f}x |", flush=True)
    print(f"\nlargest ratio {max(ratios):.2f}x, median {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
