"""im2col (forward, weight gradient) and col2im (backward_input): the algorithm for any
geometry, and the last entry of the registry.

A tile of columns (the inputs each output position reads, :func:`tiling`) and one GEMM per
group and tile; the weight gradient accumulates its GEMMs over tiles with ``beta = 1``, and
col2im runs the GEMM into a column tile and then scatter-adds it. For a 1x1 convolution with
unit stride and no padding the input (or output) itself is the column matrix.
"""

from .._ext import _im2col_kernels
from ._common import Plan, allocate_output, run_gemm_driver, tiling

NAME = "im2col"
#: The pass each name serves: col2im is its transposed (backward_input) form.
PASSES = {"forward": NAME, "backward_input": "col2im", "backward_weight": NAME}

#: The compiled driver of each pass.
_DRIVERS = {
    "forward": _im2col_kernels.conv_forward,
    "backward_input": _im2col_kernels.conv_backward_input,
    "backward_weight": _im2col_kernels.conv_backward_weight,
}


def plan(pass_name, problem, budget, itemsize):
    """The tiled plan (any geometry); called ``"col2im"`` for ``backward_input``."""
    g = problem.geometry
    rows = problem.c_in * g.kernel_numel
    nb, tile = tiling(rows, g.output_numel, max(problem.batch, 1), itemsize,
                      io_rows=problem.c_out, budget=budget)
    direct = g.is_pointwise and nb == 1  # the input (or output) itself is the column matrix
    col = 0 if direct else rows * nb * tile
    io = problem.c_out * nb * tile if nb > 1 else 0
    return Plan(PASSES[pass_name], nb, tile, col, io,
                pass_name=pass_name, problem=problem)


def might_pay(pass_name, problem, budget, itemsize):
    return True


def pays(the_plan, budget, itemsize):
    return True


def run(the_plan, first, second, out=None):
    """Run the pass; ``out`` (zeroed where the pass accumulates) is allocated if None."""
    if out is None:
        out = allocate_output(the_plan.pass_name, the_plan.problem, first.dtype)
    return run_gemm_driver(_DRIVERS[the_plan.pass_name], first, second, out, the_plan)

