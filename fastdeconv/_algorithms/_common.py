"""What every algorithm shares: the plan, the tiling rule, workspaces and the GEMM drivers.

A :class:`Plan` is what an algorithm's ``plan`` returns and its ``run`` takes: the
algorithm's name, its tiling and workspace sizes (in elements), the problem it runs and,
in subclasses, every sub-problem and layout it derived, so that the run derives nothing
again.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import _blas_threads
from .._ext import _runtime
from .._threads import kernel_threads
from .._scratch import give, take_array
from .._validation import allocate

__all__ = ["BLAS_INT_MAX", "Plan", "allocate_output", "check_blas_dims", "check_kernel_dims",
           "run_gemm_driver", "thread_counts", "tiling", "workspaces"]

#: Largest dimension of a BLAS call (32-bit integers in scipy.linalg.cython_blas).
BLAS_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Plan:
    """How one pass runs: algorithm, tiling and workspace sizes (in elements).

    ``pass_name`` and ``problem`` are the pass and the problem it computes (not compared).
    """

    algorithm: str
    samples_per_tile: int
    tile: int
    col_elements: int
    io_elements: int
    output_tile: int = 0  # winograd: m of F(m x m, r x r)
    pass_name: str = field(default="", compare=False, repr=False)
    problem: object = field(default=None, compare=False, repr=False)

    def workspace_bytes(self, itemsize):
        return (self.col_elements + self.io_elements) * itemsize


#: Per pass: the problem's output shape attribute, the output's name and whether the
#: kernels accumulate into it (then it starts zeroed).
_OUTPUTS = {
    "forward": ("forward_output_shape", "output", False),
    "backward_input": ("forward_input_shape", "output", True),
    "backward_weight": ("weight_shape", "weight gradient", True),
}


def allocate_output(pass_name, problem, dtype, *, written_whole=False):
    """The output array of one pass of ``problem``: zeroed where the kernels accumulate,
    unless ``written_whole`` (the caller's kernel writes every output value)."""
    shape, what, zero = _OUTPUTS[pass_name]
    return allocate(getattr(problem, shape), dtype, what, zero=zero and not written_whole)


def tiling(rows, length, batch, itemsize, io_rows=0, *, io_always=False, budget):
    """(samples per tile, positions per tile) for a column matrix of ``rows`` x ``length``
    per sample, under ``budget`` (a :class:`fastdeconv._algorithms.Budget`).

    ``io_rows`` rows of a second workspace (gathered input or output rows) come with every
    column of a tile of several samples, and of every tile with ``io_always``; the two
    together stay within ``workspace_bytes``. Whole samples share a tile when a sample has
    fewer than ``target_columns`` positions and its columns fit ``tile_bytes``, or when it
    has fewer than ``min_columns`` positions; such a tile is about ``tile_bytes``, but at
    least ``min_columns`` columns while the workspace bound allows (GEMMs with a small N run
    far below peak, and every GEMM call packs the whole weight again). A larger sample is
    cut into tiles of positions by the same two rules.
    """
    length = max(length, 1)
    workspace, target, least = budget.workspace_bytes, budget.target_columns, budget.min_columns
    cache = min(budget.tile_bytes, workspace)
    column = max(rows * itemsize, 1)                      # the column tile, per column
    both = max((rows + io_rows) * itemsize, 1)            # with the gathered rows
    per_sample = column * length
    if length < target and (per_sample <= cache or length < least):
        samples = min(batch, -(-target // length),
                      max(cache // per_sample, -(-least // length)),
                      workspace // (both * length))
        if samples > 1 or (samples == 1 and per_sample <= cache):
            return samples, length
    single = both if io_always else column                # one sample: gathered rows or not
    tile = max(cache // single, min(least, workspace // single))
    return 1, max(1, min(length, tile))


def check_blas_dims(problem, the_plan):
    """ValueError when a GEMM of ``the_plan`` would pass a dimension past 32-bit BLAS."""
    g = problem.geometry
    columns = the_plan.samples_per_tile * the_plan.tile
    dims = {
        "output channels per group": problem.c_out // problem.groups,
        "input channels per group x kernel size": problem.c_in // problem.groups * g.kernel_numel,
        "output positions per sample": g.output_numel,
        "input positions per sample": g.input_numel,
        "columns per tile": columns,
    }
    for what, value in dims.items():
        if value > BLAS_INT_MAX:
            raise ValueError(
                f"this convolution is too large for 32-bit BLAS: {what} = {value} > "
                f"{BLAS_INT_MAX}"
            )


def check_kernel_dims(problem):
    """ValueError when the kernels cannot take this many spatial dimensions."""
    if problem.geometry.ndim > _runtime.MAX_SPATIAL_DIMS:
        raise ValueError(
            f"the kernels support at most {_runtime.MAX_SPATIAL_DIMS} spatial dimensions, "
            f"got a weight of shape {problem.weight_shape}"
        )


def thread_counts():
    """(threads, GEMM threads): without control of BLAS's own threads, GEMM pieces run one
    after another."""
    threads = kernel_threads()
    return threads, threads if _blas_threads.CONTROLLED else 1


@contextmanager
def workspaces(the_plan, dtype):
    """The plan's two workspaces (column tile or transformed data, gathered rows), as a
    context: one block of the scratch pool (:mod:`fastdeconv._scratch`; the two arrays start
    on 64-byte boundaries inside it), given back when the ``with`` block ends, so no view of
    them may outlive it.

    Fresh arrays cost a page fault per 4 KiB page whenever the C library has handed their
    memory back to the system between calls: ``dcgan_rgb`` paid 542 of them per call on its
    col2im path (1.69 ms a call against 1.14 ms without them); pooled workspaces measured
    0.78x the time, calls alternating with fresh ones in one process (0.91x with PyTorch and
    ONNX Runtime calls in between, see the performance notes).
    """
    dtype = np.dtype(dtype)
    col_bytes = -(-max(the_plan.col_elements, 1) * dtype.itemsize // 64) * 64
    io_elements = max(the_plan.io_elements, 1)
    both, block = take_array((col_bytes + io_elements * dtype.itemsize,), np.uint8,
                             "workspace")
    try:
        yield (both[:col_bytes].view(dtype)[:max(the_plan.col_elements, 1)],
               both[col_bytes:].view(dtype))
    finally:
        give(block)


def run_gemm_driver(driver, first, second, out, the_plan):
    """Run one of the tiled im2col / col2im / weight-gradient drivers into ``out``."""
    problem = the_plan.problem
    check_blas_dims(problem, the_plan)
    threads, gemm_threads = thread_counts()
    # GEMM pieces run on OpenMP threads instead of BLAS's own
    with workspaces(the_plan, out.dtype) as (col, io), _blas_threads.single_threaded_blas():
        driver(
            first.reshape(-1), second.reshape(-1), out.reshape(-1),
            problem.batch, problem.c_in, problem.c_out, problem.groups,
            *problem.geometry.as_kernel_args(),
            col, io, the_plan.samples_per_tile, the_plan.tile, problem.geometry.is_pointwise,
            threads, gemm_threads,
        )
    return out
