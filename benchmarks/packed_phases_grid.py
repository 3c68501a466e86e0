"""The grid behind the ``packed_phases`` rule: the packed engine's stride phases (forced)
against what the chooser takes without them, interleaved in one process, 1 thread.

Run from a built checkout (not an asv benchmark)::

    PYTHONPATH=$PWD python benchmarks/packed_phases_grid.py float32 7
    PYTHONPATH=$PWD python benchmarks/packed_phases_grid.py float64 7

Cases: the transposed convolutions of the layer suite and 22 more (k3/k4/k5/k6, strides 2 and
3, 1-d, 3-d, grouped, and the shapes that Winograd's stride phases took before they deferred to
the engine in float32). "without" is the chooser with ``packed_phases_min_rows`` out of reach;
the two calls alternate (their order reversed every other round), timed with
``time.thread_time`` (CPU time of the calling thread: with one thread, the descheduled time
of a shared machine is left out). The table is Markdown: median ms, the speedup and whether
the rule takes the case.
"""
import sys

import numpy as np
import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import budget
from fastdeconv._problem import conv_transpose_problem


def main():
    from common import alternate_medians, grid_setup   # run as a script from benchmarks/

    dtype, reps, suite = grid_setup(sys.argv[1:])
    CASES = []
    for c in suite:
        if c['op'] == 'conv_transpose':
            nd = len(c['spatial'])
            CASES.append((c['name'], (c['N'], c['Cin']) + tuple(c['spatial']),
                          (c['Cin'], c['Cout'] // c['groups']) + (c['k'],) * nd,
                          dict(stride=c['s'], padding=c['p'], output_padding=c['output_padding'],
                               groups=c['groups'])))
    K3S2 = dict(stride=2, padding=1, output_padding=1)
    K4S2 = dict(stride=2, padding=1)
    CASES += [
        ("k3s2 c16->16 56", (4, 16, 56, 56), (16, 16, 3, 3), K3S2),
        ("k3s2 c128->64 28", (4, 128, 28, 28), (128, 64, 3, 3), K3S2),
        ("k3s2 c256->128 14", (8, 256, 14, 14), (256, 128, 3, 3), K3S2),
        ("k4s2 c64->32 64", (4, 64, 64, 64), (64, 32, 4, 4), K4S2),
        ("k4s2 c32->16 32", (16, 32, 32, 32), (32, 16, 4, 4), K4S2),
        ("k4s2 c256->128 8", (4, 256, 8, 8), (256, 128, 4, 4), K4S2),
        ("k5s2 c64->64 32", (4, 64, 32, 32), (64, 64, 5, 5),
         dict(stride=2, padding=2, output_padding=1)),
        ("k3s3 c64->64 32", (4, 64, 32, 32), (64, 64, 3, 3), dict(stride=3)),
        ("k6s3 c64->32 32", (4, 64, 32, 32), (64, 32, 6, 6), dict(stride=3, padding=1)),
        ("1d k8s4 c64->64", (8, 64, 2048), (64, 64, 8), dict(stride=4, padding=2)),
        ("1d k4s2 c128->64", (8, 128, 2048), (128, 64, 4), dict(stride=2, padding=1)),
        ("3d k4s2 c32->16", (1, 32, 16, 16, 16), (32, 16, 4, 4, 4), K4S2),
        ("3d k3s2 c64->32", (2, 64, 8, 8, 8), (64, 32, 3, 3, 3), K3S2),
        ("g2 k4s2 c64->64", (4, 64, 32, 32), (64, 32, 4, 4), dict(stride=2, padding=1, groups=2)),
        ("g8 k3s2 c64->64", (4, 64, 32, 32), (64, 8, 3, 3), dict(K3S2, groups=8)),
        # shapes Winograd's stride phases took before they deferred to the engine in float32
        ("k4s2 c128->128 32", (4, 128, 32, 32), (128, 128, 4, 4), K4S2),
        ("k4s2 c256->128 16", (8, 256, 16, 16), (256, 128, 4, 4), K4S2),
        ("k4s2 c64->64 64", (2, 64, 64, 64), (64, 64, 4, 4), K4S2),
        ("k4s2 c32->32 128", (1, 32, 128, 128), (32, 32, 4, 4), K4S2),
        ("k4s2 c256->256 32", (2, 256, 32, 32), (256, 256, 4, 4), K4S2),
        ("k6s3 c32->32 64", (2, 32, 64, 64), (32, 32, 6, 6), dict(stride=3, padding=1)),
        ("g4 k4s2 c128->128 32", (4, 128, 32, 32), (128, 32, 4, 4), dict(K4S2, groups=4)),
    ]
    rng = np.random.default_rng(0)
    print(f"dtype {dtype}, 1 thread, thread CPU ms, median of {reps}, interleaved")
    print("| case | without (algorithm) | ms | packed_phases ms | speedup | rule takes it |")
    print("|---|---|---|---|---|---|")
    for name, xs, ws, kw in CASES:
        problem = conv_transpose_problem(xs, ws, **kw)
        with budget(packed_phases_min_rows=10**9):
            other = _dispatch.plan("backward_input", problem, dtype.itemsize).algorithm
        chosen = _dispatch.plan("backward_input", problem, dtype.itemsize).algorithm
        x = rng.standard_normal(xs).astype(dtype); w = rng.standard_normal(ws).astype(dtype)
        def a():
            with budget(packed_phases_min_rows=10**9):
                return fastdeconv.conv_transpose(x, w, **kw)
        def b():
            with _dispatch.forced_algorithm("packed_phases"):
                return fastdeconv.conv_transpose(x, w, **kw)
        ma, mb = alternate_medians(a, b, reps)
        taken = "yes" if chosen == "packed_phases" else "no"
        print(f"| {name} | {other} | {ma:.2f} | {mb:.2f} | {ma / mb:.2f} | {taken} |", flush=True)


if __name__ == "__main__":
    main()
