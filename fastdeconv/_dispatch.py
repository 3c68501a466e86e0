"""Algorithm choice for the three convolution passes: the names the docs and tests use.

The algorithms, their registry and the chooser live in :mod:`fastdeconv._algorithms`; this
module keeps the entry points :func:`forward`, :func:`backward_input` and
:func:`backward_weight`, :func:`plan` and :func:`forced_algorithm`, and the default
thresholds as read-only names (change them with :func:`fastdeconv._algorithms.budget`, not by
assigning these).
"""

from functools import partial

from ._algorithms import (ALGORITHMS, BLAS_INT_MAX, DEFAULT_BUDGET, Plan, budget,
                          current_budget, forced_algorithm, plan, run_pass)

__all__ = ["ALGORITHMS", "BLAS_INT_MAX", "MIN_COLUMNS", "SPACE_TO_DEPTH_BYTES", "TILE_BYTES",
           "WORKSPACE_BYTES", "Plan", "backward_input", "backward_weight", "budget",
           "current_budget", "forced_algorithm", "forward", "plan"]

#: Default upper bound of the workspace of one call, in bytes (``Budget.workspace_bytes``).
WORKSPACE_BYTES = DEFAULT_BUDGET.workspace_bytes
#: Default target size of one column tile (``Budget.tile_bytes``).
TILE_BYTES = DEFAULT_BUDGET.tile_bytes
#: Default least columns of a tile while the workspace allows (``Budget.min_columns``).
MIN_COLUMNS = DEFAULT_BUDGET.min_columns
#: Default bound of a space-to-depth part of the batch (``Budget.space_to_depth_bytes``).
SPACE_TO_DEPTH_BYTES = DEFAULT_BUDGET.space_to_depth_bytes

#: y = conv(x): ``forward(x, weight, problem)``.
forward = partial(run_pass, "forward")
#: grad_x = conv^T(grad_y), the transposed convolution: ``backward_input(grad_y, weight, problem)``.
backward_input = partial(run_pass, "backward_input")
#: grad_w = sum over samples of grad_y @ im2col(x)^T: ``backward_weight(x, grad_y, problem)``.
backward_weight = partial(run_pass, "backward_weight")
