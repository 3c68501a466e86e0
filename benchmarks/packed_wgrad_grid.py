"""The grid behind the packed engine's weight-gradient rule: ``packed`` forced on the
``backward_weight`` pass against what the chooser takes without it, interleaved in one process,
1 thread.

Run from a built checkout (not an asv benchmark)::

    PYTHONPATH=$PWD python benchmarks/packed_wgrad_grid.py float32 7
    PYTHONPATH=$PWD python benchmarks/packed_wgrad_grid.py float64 7

Cases: the convolutions of the layer suite (forward cases taken as weight gradients) and more
(strides 1-3, kernels 1-5, dilation, 1-d, 3-d, groups). "without" is the chooser with
``packed_wgrad_itemsizes=()``; the two calls alternate (their order reversed every other
round), timed with ``time.thread_time``. The table is Markdown: median ms, the speedup and
whether the rule takes the case.
"""
import sys

import numpy as np
import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import budget
from fastdeconv._problem import conv_problem


def main():
    from common import alternate_medians, grid_setup   # run as a script from benchmarks/

    dtype, reps, suite = grid_setup(sys.argv[1:])
    CASES = []
    for c in suite:
        if c['op'] in ('conv', 'conv_wgrad'):
            nd = len(c['spatial'])
            CASES.append((c['name'], (c['N'], c['Cin']) + tuple(c['spatial']),
                          (c['Cout'], c['Cin'] // c['groups']) + (c['k'],) * nd,
                          dict(stride=c['s'], padding=c['p'], dilation=c['d'], groups=c['groups'])))
    CASES += [
        ("k3s2 c64->128 56", (8, 64, 56, 56), (128, 64, 3, 3), dict(stride=2, padding=1)),
        ("k3s2 c256->512 14", (8, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1)),
        ("k4s2 c64->128 32", (8, 64, 32, 32), (128, 64, 4, 4), dict(stride=2, padding=1)),
        ("k4s2 c3->64 64", (16, 3, 64, 64), (64, 3, 4, 4), dict(stride=2, padding=1)),
        ("k4s2 c256->512 8", (16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1)),
        ("k5s1 c32->32 64", (4, 32, 64, 64), (32, 32, 5, 5), dict(padding=2)),
        ("k3s1 c128->128 28", (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
        ("k7s2 c3->64 112", (4, 3, 112, 112), (64, 3, 7, 7), dict(stride=2, padding=3)),
        ("k1s2 c256->512 28", (8, 256, 28, 28), (512, 256, 1, 1), dict(stride=2)),
        ("k3s3 c64->64 48", (4, 64, 48, 48), (64, 64, 3, 3), dict(stride=3)),
        ("1d k4s2 c128->64", (8, 128, 4096), (64, 128, 4), dict(stride=2, padding=1)),
        ("1d k3s1 c64->64", (8, 64, 4096), (64, 64, 3), dict(padding=1)),
        ("3d k3s1 c32->32", (1, 32, 24, 24, 24), (32, 32, 3, 3, 3), dict(padding=1)),
        ("3d k4s2 c16->32", (2, 16, 32, 32, 32), (32, 16, 4, 4, 4), dict(stride=2, padding=1)),
        ("g4 k3s2 c128->128", (8, 128, 28, 28), (128, 32, 3, 3), dict(stride=2, padding=1,
                                                                         groups=4)),
    ]
    rng = np.random.default_rng(0)
    print(f"dtype {dtype}, 1 thread, thread CPU ms, median of {reps}, interleaved")
    print("| case | without (algorithm) | ms | packed ms | speedup | rule takes it |")
    print("|---|---|---|---|---|---|")
    for name, xs, ws, kw in CASES:
        problem = conv_problem(xs, ws, **kw)
        with budget(packed_wgrad_itemsizes=()):
            other = _dispatch.plan("backward_weight", problem, dtype.itemsize).algorithm
        chosen = _dispatch.plan("backward_weight", problem, dtype.itemsize).algorithm
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        gy = rng.standard_normal(problem.forward_output_shape).astype(dtype)
        def a():
            with budget(packed_wgrad_itemsizes=()):
                return fastdeconv.conv_backward(gy, x, w, grads=("weight",), **kw)[1]
        def b():
            with _dispatch.forced_algorithm("packed"):
                return fastdeconv.conv_backward(gy, x, w, grads=("weight",), **kw)[1]
        ma, mb = alternate_medians(a, b, reps)
        taken = "yes" if chosen == "packed" else "no"
        print(f"| {name} | {other} | {ma:.2f} | {mb:.2f} | {ma / mb:.2f} | {taken} |", flush=True)


if __name__ == "__main__":
    main()
