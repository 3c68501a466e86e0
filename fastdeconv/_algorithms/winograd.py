"""Winograd F(4x4, 3x3) for 2-d 3x3 kernels with stride 1 (any padding, dilation, groups):
36 GEMMs per group over transformed tiles instead of 9 taps per output, 4x fewer
multiplications (Lavin & Gray 2015; dilation d as d^2 dense polyphase convolutions).

forward          chosen where it measurably wins (:func:`_pays_forward`: enough channels and
                 tiles, few tiles past the output's edges) and while the transformed weight
                 and a chunk of tiles fit the workspace;
backward_input   with stride 1, the forward pass of the flipped, channel-swapped kernel
                 (:meth:`ConvProblem.transpose_as_forward`), under the forward rule;
backward_weight  the adjoint with respect to the transformed weight U: dU[e] = sum over
                 tiles of (A gy A^T)[e] @ V[e]^T (36 GEMMs per group reducing over tiles,
                 ``beta = 1`` chunk after chunk), then grad_w = G^T dU G in float64, by
                 :func:`_pays_weight`.

A 2x2 kernel (a stride phase of a transposed convolution, :mod:`.winograd_phases`) runs
F(4x4, 2x2) only when forced or as such a phase. NaN or inf in a result: the pass is
recomputed by im2col (the plan's ``fallback``), so that they reach exactly the outputs whose
sums contain them (the transforms would spread them over whole tiles).
"""

from dataclasses import dataclass

import numpy as np

from .. import _blas_threads, _winograd
from .._ext import _winograd_kernels
from .._geometry import intp_arrays
from .._threads import kernel_threads
from . import im2col
from ._common import Plan, allocate_output, check_blas_dims, thread_counts, workspaces

# The transform tables of every F(m, r) in use, built once at import (about 10 ms of exact
# rational arithmetic) rather than in the first call, which would then cost up to 1.7x a
# later one (benchmarks/first_call.py).
for _tile_and_kernel in _winograd.POINTS:
    _winograd.matrices(*_tile_and_kernel)

NAME = "winograd"
PASSES = dict.fromkeys(("forward", "backward_input", "backward_weight"), NAME)


@dataclass(frozen=True, kw_only=True)
class WinogradPlan(Plan):
    """A Winograd pass of ``problem`` (a forward convolution: for ``backward_input`` the
    transposed convolution as a forward one, whose weight is flipped first:
    ``weight_transposed``), and the im2col plan that recomputes it when a result is not
    finite."""

    weight_transposed: bool
    fallback: Plan


def tiles(problem, m):
    """Tiles of one sample: per dilation phase, ceil(ceil(out / d) / m) per dimension."""
    count = 1
    for n, d in zip(problem.geometry.output_size, problem.geometry.dilation):
        count *= d * -(-(-(-n // d)) // m)
    return count


def _applies(problem):
    """2-d, 3x3 or 2x2 kernel, stride 1 (any dilation and padding)."""
    g = problem.geometry
    return g.ndim == 2 and g.kernel_size in ((3, 3), (2, 2)) and g.stride == (1, 1)


def sized_plan(problem, budget, itemsize, pass_name="forward", plan_type=Plan, **fields):
    """The Winograd :class:`Plan` of a forward ``problem`` it applies to, or None when the
    workspace cannot hold a useful pass.

    The workspace is the transformed weight U (alpha^2 x C_out x C_in / groups), the
    transformed input tiles V (alpha^2 x C_in x chunk) and the GEMM results M (alpha^2 x
    C_out x chunk); ``col_elements`` counts U and V, ``io_elements`` M. The weight gradient
    uses the same three: the gradient of U, V and the transformed output gradient.
    ``plan_type`` and ``fields``: a :class:`Plan` subclass and its own fields.
    """
    m = budget.winograd_output_tile
    alpha2 = (m + problem.geometry.kernel_size[0] - 1) ** 2
    count = max(problem.batch, 1) * tiles(problem, m)
    u = alpha2 * problem.c_out * (problem.c_in // problem.groups)
    per_tile = alpha2 * (problem.c_in + problem.c_out)
    chunk = min(budget.winograd_chunk, count,
                (budget.workspace_bytes // itemsize - u) // per_tile)
    if chunk < min(budget.winograd_chunk, count):
        return None
    return plan_type(NAME, 1, chunk, u + alpha2 * problem.c_in * chunk,
                     alpha2 * problem.c_out * chunk, output_tile=m, pass_name=pass_name,
                     problem=problem, **fields)


def plan(pass_name, problem, budget, itemsize):
    forward = problem.transpose_as_forward() if pass_name == "backward_input" else problem
    if forward is None or not _applies(forward):
        return None
    if pass_name == "backward_weight" and forward.geometry.kernel_size != (3, 3):
        return None  # its adjoint transforms: 3x3 kernels only
    fallback_pass = "backward_weight" if pass_name == "backward_weight" else "forward"
    return sized_plan(forward, budget, itemsize, pass_name, WinogradPlan,
                      weight_transposed=pass_name == "backward_input",
                      fallback=im2col.plan(fallback_pass, forward, budget, itemsize))


def might_pay(pass_name, problem, budget, itemsize):
    return True  # the plan is arithmetic only; the rule reads it (pays)


def pays(the_plan, budget, itemsize):
    """Measured for 3x3 kernels; a 2x2 one is only forced (or a phase of a transposed one)."""
    problem = the_plan.problem
    return problem.geometry.kernel_size == (3, 3) and rule_for(the_plan.pass_name)(
        problem, budget, itemsize)


def rule_for(pass_name):
    """The Winograd rule of a pass: the weight gradient's, or the forward one."""
    return _pays_weight if pass_name == "backward_weight" else _pays_forward


def _pays_forward(problem, budget, itemsize):
    """Enough channels, tiles and work, few tiles past the edges (:class:`Budget`)."""
    m = budget.winograd_output_tile
    channels = min(problem.c_in, problem.c_out) // problem.groups
    count = max(problem.batch, 1) * tiles(problem, m)
    useful = max(problem.batch, 1) * problem.geometry.output_numel / (m * m)
    return (channels >= budget.per_itemsize(budget.winograd_min_channels, itemsize)
            and count >= budget.winograd_min_tiles
            and useful * channels >= budget.per_itemsize(budget.winograd_min_work, itemsize)
            and count <= budget.winograd_max_tile_overhead * useful)


def _pays_weight(problem, budget, itemsize):
    """Enough channels and tiles (the GEMMs' reduction), few tiles past the edges."""
    m = budget.winograd_output_tile
    channels = min(problem.c_in, problem.c_out) // problem.groups
    count = max(problem.batch, 1) * tiles(problem, m)
    useful = max(problem.batch, 1) * problem.geometry.output_numel / (m * m)
    return (channels >= budget.winograd_wgrad_min_channels
            and count >= budget.winograd_wgrad_min_tiles
            and count <= budget.winograd_max_tile_overhead * useful)


def _transpose_weight(weight, groups):
    """The forward weight ``(C_out, C_in / groups, *k)`` of a convolution as the weight of the
    forward convolution that computes its transpose: ``(C_in, C_out / groups, *k)``, every
    kernel flipped, channels swapped within each group."""
    c_out, cin_g = weight.shape[:2]
    per_group = weight.reshape((groups, c_out // groups, cin_g) + weight.shape[2:])
    swapped = np.swapaxes(per_group, 1, 2)
    flipped = np.flip(swapped, axis=tuple(range(3, weight.ndim + 1)))
    return np.ascontiguousarray(flipped).reshape(
        (groups * cin_g, c_out // groups) + weight.shape[2:])


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook (forward and backward_input): ``{key: U}``, the transformed
    weight made once (the transposed convolution's kernel flipped first), or the U of that
    key in ``known`` (a dict of earlier results' values by key); for :func:`run`."""
    if the_plan.pass_name == "backward_weight":
        return {}
    key = _u_key(the_plan, weight.dtype)
    if known is not None and key in known:
        return {key: known[key]}
    problem = the_plan.problem
    forward = (_transpose_weight(weight, problem.groups) if the_plan.weight_transposed
               else weight)
    u = np.empty(transformed_size(problem, the_plan), weight.dtype)
    transformed_weight(forward, problem, the_plan, u)
    return {key: u}


def _u_key(the_plan, dtype):
    """What U depends on besides the weight: dtype, F(m, r) and the flip."""
    return (NAME, np.dtype(dtype).str, the_plan.output_tile,
            the_plan.problem.geometry.kernel_size, the_plan.weight_transposed)


def run(the_plan, first, second, prepared=None):
    """The pass; ``prepared``: what :func:`prepare_weight` made (U is then not made again)."""
    if the_plan.pass_name == "backward_weight":
        return _run_weight(first, second, the_plan)
    y = allocate_output("forward", the_plan.problem, first.dtype)
    check_blas_dims(the_plan.problem, the_plan)
    with workspaces(the_plan, y.dtype) as (col, io):
        if prepared is None:
            weight = (_transpose_weight(second, the_plan.problem.groups)
                      if the_plan.weight_transposed else second)
            u, v = transformed_weight(weight, the_plan.problem, the_plan, col)
        else:
            u = prepared[_u_key(the_plan, y.dtype)]
            v = col[u.size:]
        nonfinite = transformed_pass(first, u, y, the_plan.problem, the_plan, v, io)
        del u, v  # views of the workspaces, which go back to the pool here
    # the fallback takes its own workspace: one at a time
    if nonfinite:
        weight = (_transpose_weight(second, the_plan.problem.groups)
                  if the_plan.weight_transposed else second)
        return im2col.run(the_plan.fallback, first, weight, y)
    return y


def convolve(x, weight, y, problem, the_plan, col, io, placement=None):
    """One Winograd convolution of ``x`` with the forward ``weight`` into ``y``.

    ``placement`` is ``(y_size, first, step)`` when the output grid is every ``step``-th
    position of ``y`` from ``first`` (a stride phase). Returns the number of pieces with a
    NaN or infinite output (see ``conv_forward_winograd``).
    """
    u, v = transformed_weight(weight, problem, the_plan, col)
    return transformed_pass(x, u, y, problem, the_plan, v, io, placement)


def transformed_size(problem, the_plan):
    """Elements of U (alpha^2 x C_out x C_in / groups)."""
    alpha = _winograd.matrices(the_plan.output_tile, problem.geometry.kernel_size[0]).alpha
    return alpha ** 2 * problem.c_out * (problem.c_in // problem.groups)


def transformed_weight(weight, problem, the_plan, col):
    """U = G w G^T written to the front of ``col``; returns U and the rest of ``col`` (V)."""
    mats = _winograd.matrices(the_plan.output_tile, problem.geometry.kernel_size[0])
    cin_g = problem.c_in // problem.groups
    u_elements = transformed_size(problem, the_plan)
    u, v = col[:u_elements], col[u_elements:]
    _winograd_kernels.winograd_weight(weight.reshape(-1), u, problem.c_out, cin_g, mats.G,
                                      kernel_threads())
    return u, v


def transformed_pass(x, u, y, problem, the_plan, v, io, placement=None):
    """:func:`convolve` with the transformed weight ``u`` already computed."""
    g = problem.geometry
    mats = _winograd.matrices(the_plan.output_tile, g.kernel_size[0])
    y_size, first, step = placement or (g.output_size, (0, 0), (1, 1))
    threads, gemm_threads = thread_counts()
    with _blas_threads.single_threaded_blas():  # GEMMs run on OpenMP threads instead
        return _winograd_kernels.conv_forward_winograd(
            x.reshape(-1), u, y.reshape(-1), problem.batch, problem.c_in, problem.c_out,
            problem.groups, *g.as_kernel_args("input_size", "output_size", "dilation",
                                              "pad_before"),
            *intp_arrays(y_size, first, step),
            mats.AT.astype(y.dtype), mats.BT.astype(y.dtype), v, io, the_plan.tile,
            threads, gemm_threads,
        )


def _run_weight(x, grad_y, the_plan):
    """grad_w by the adjoint of the forward pass (see the module docstring)."""
    problem = the_plan.problem
    grad_w = allocate_output("backward_weight", problem, x.dtype)
    check_blas_dims(problem, the_plan)
    with workspaces(the_plan, grad_w.dtype) as (col, io):
        du, v = gradient_of_u(x, grad_y, problem, the_plan, col, io)
        nonfinite = weight_from_du(du, grad_w, problem, the_plan)
        del du, v  # views of the workspaces, which go back to the pool here
    # the fallback takes its own workspace: one at a time
    if nonfinite:
        grad_w[...] = 0
        return im2col.run(the_plan.fallback, x, grad_y, grad_w)
    return grad_w


def gradient_of_u(x, grad_y, problem, the_plan, col, io, accumulate=False):
    """dU (the front of ``col``; ``+=`` with ``accumulate``) and the rest of ``col`` (V)."""
    g = problem.geometry
    mats = _winograd.matrices(the_plan.output_tile, g.kernel_size[0])
    u_elements = mats.alpha ** 2 * problem.c_out * (problem.c_in // problem.groups)
    du, v = col[:u_elements], col[u_elements:]
    threads, gemm_threads = thread_counts()
    with _blas_threads.single_threaded_blas():  # GEMMs run on OpenMP threads instead
        _winograd_kernels.conv_backward_weight_winograd(
            x.reshape(-1), grad_y.reshape(-1), du, problem.batch, problem.c_in,
            problem.c_out, problem.groups,
            *g.as_kernel_args("input_size", "output_size", "dilation", "pad_before"),
            np.ascontiguousarray(mats.AT.T, dtype=du.dtype), mats.BT.astype(du.dtype),
            v, io, the_plan.tile, threads, gemm_threads, accumulate,
        )
    return du, v


def weight_from_du(du, grad_w, problem, the_plan):
    """grad_w = G^T dU G (float64 inside); returns the count of non-finite blocks."""
    mats = _winograd.matrices(the_plan.output_tile, problem.geometry.kernel_size[0])
    return _winograd_kernels.winograd_weight_grad(
        du, grad_w.reshape(-1), problem.c_out, problem.c_in // problem.groups,
        np.ascontiguousarray(mats.G.T), kernel_threads())
