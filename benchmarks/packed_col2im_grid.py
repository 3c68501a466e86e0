"""The grid behind the ``packed_col2im`` rule: the packed engine's col2im against its stride
phases (both forced), interleaved in one process, 1 thread.

Run from a built checkout (not an asv benchmark)::

    PYTHONPATH=$PWD python benchmarks/packed_col2im_grid.py float32 11
    PYTHONPATH=$PWD python benchmarks/packed_col2im_grid.py float64 11

Cases: k4 s2 p1 and k3 s2 p1 transposed convolutions of 128, 256 and 512 input channels to
half as many, on 4 x 4 and 8 x 8 maps, batches of 1, 4, 16 and 64 (positions of the batch per
input channel from 0.03 to 32). The two calls alternate (their order reversed every other
round), timed with ``time.thread_time``. The table is Markdown: the positions per input
channel, median ms of each, their ratio and whether the rule takes the case.
"""
import sys

import numpy as np
import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._problem import conv_transpose_problem


def main():
    from common import alternate_medians, grid_setup   # run as a script from benchmarks/

    dtype, reps, _ = grid_setup(sys.argv[1:])
    rng = np.random.default_rng(0)
    print("| kernel | x | positions / channel | packed_phases ms | packed_col2im ms | "
          "col2im / phases | chosen |")
    print("|---|---|---:|---:|---:|---:|---|")
    for k in (4, 3):
        for c_in in (128, 256, 512):
            for size in (4, 8):
                for batch in (1, 4, 16, 64):
                    x = rng.standard_normal((batch, c_in, size, size)).astype(dtype)
                    w = rng.standard_normal((c_in, c_in // 2, k, k)).astype(dtype)
                    kw = dict(stride=2, padding=1)

                    def forced(name):
                        def call():
                            with _dispatch.forced_algorithm(name):
                                return fastdeconv.conv_transpose(x, w, **kw)
                        return call

                    phases, col2im = alternate_medians(forced("packed_phases"),
                                                       forced("packed_col2im"), reps)
                    problem = conv_transpose_problem(x.shape, w.shape, **kw)
                    chosen = _dispatch.plan("backward_input", problem, dtype.itemsize).algorithm
                    print(f"| k{k} s2 | {batch}x{c_in}x{size}x{size} | "
                          f"{batch * size * size / c_in:.2f} | {phases:.3f} | {col2im:.3f} | "
                          f"{col2im / phases:.3f} | {chosen} |", flush=True)


if __name__ == "__main__":
    main()
