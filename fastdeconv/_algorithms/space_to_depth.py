"""Space-to-depth (forward, backward_weight): a strided 2-d convolution whose kernel is
r x stride (r = 2 or 3, dilation 1) is the stride-1, unpadded r x r convolution of its input
rearranged space-to-depth (``prod(stride) x C_in`` channels,
:meth:`ConvProblem.space_to_depth`), run by the Winograd kernels under the Winograd rule of
the pass for the rearranged problem: no zero work, F(4x4, r x r) applies.

The batch is rearranged a part at a time (at most ``budget.space_to_depth_bytes``), with one
transformed weight (forward) or one accumulated dU (weight gradient); with the Winograd
workspace the extra memory stays within ``workspace_bytes + space_to_depth_bytes``.
"""

from dataclasses import dataclass, replace

import numpy as np

from .._ext import _phase_kernels
from .._problem import ConvProblem
from .._threads import kernel_threads
from .._validation import allocate
from . import im2col, winograd
from ._common import Plan, allocate_output, check_blas_dims

NAME = "space_to_depth"
PASSES = dict.fromkeys(("forward", "backward_weight"), NAME)


@dataclass(frozen=True, kw_only=True)
class SpaceToDepthPlan(Plan):
    """``samples_per_tile`` samples rearranged at a time into ``rearranged`` (the stride-1
    problem), run by ``inner`` (its Winograd plan); ``io_elements`` includes the rearranged
    part. ``fallback``: the im2col plan of the original problem."""

    rearranged: ConvProblem
    inner: Plan
    fallback: Plan


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None when the rearrangement does not apply or one sample's rearranged
    input or the Winograd workspace does not fit."""
    if problem.geometry.phase_count > budget.max_phases:
        return None
    s2d = problem.space_to_depth()
    if s2d is None:
        return None
    per_sample = s2d.c_in * s2d.geometry.input_numel
    samples = min(max(problem.batch, 1), budget.space_to_depth_bytes // (per_sample * itemsize))
    inner = winograd.sized_plan(s2d, budget, itemsize, pass_name) if samples else None
    if inner is None:
        return None
    return SpaceToDepthPlan(
        NAME, samples, inner.tile, inner.col_elements, inner.io_elements + samples * per_sample,
        output_tile=inner.output_tile, pass_name=pass_name, problem=problem, rearranged=s2d,
        inner=inner, fallback=im2col.plan(pass_name, problem, budget, itemsize))


def might_pay(pass_name, problem, budget, itemsize):
    return True


def pays(the_plan, budget, itemsize):
    """The Winograd rule of the pass, for the rearranged problem."""
    return winograd.rule_for(the_plan.pass_name)(the_plan.rearranged, budget, itemsize)


def _rearranged_weight(weight, stride):
    """``(C_out, C_in / groups, sy * r, sx * r)`` -> ``(C_out, C_in / groups * sy * sx, r, r)``:
    tap ``(sy * a + ry, sx * b + rx)`` of input channel c becomes tap ``(a, b)`` of channel
    ``(c * sy + ry) * sx + rx``."""
    c_out, cin_g, ky, kx = weight.shape
    sy, sx = stride
    blocks = weight.reshape(c_out, cin_g, ky // sy, sy, kx // sx, sx)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 5, 2, 4)).reshape(
        c_out, cin_g * sy * sx, ky // sy, kx // sx)


def _parts(x, the_plan, buffer):
    """Yield (first sample, samples, rearranged input) for each part of the batch."""
    problem, s2d = the_plan.problem, the_plan.rearranged
    g = problem.geometry
    size = s2d.geometry.input_size
    per_sample = s2d.c_in * s2d.geometry.input_numel
    for n0 in range(0, problem.batch, the_plan.samples_per_tile):
        n = min(the_plan.samples_per_tile, problem.batch - n0)
        part = buffer[:n * per_sample]
        # space_to_depth_2d takes the sizes and the stride as scalars
        _phase_kernels.space_to_depth_2d(
            x[n0:n0 + n].reshape(-1), part, n * problem.c_in, *g.input_size, *g.stride,
            *g.pad_before, *size, kernel_threads())
        yield n0, n, part.reshape((n, s2d.c_in) + size)


def _first_workspace(the_plan, dtype):
    """U (or dU) and V of the Winograd pass; the second workspace (:func:`_second_workspace`)
    is allocated only once the first is in use (the rearranged weight comes between)."""
    check_blas_dims(the_plan.rearranged, the_plan.inner)
    return allocate((max(the_plan.inner.col_elements, 1),), dtype, "workspace", result=False)


def _second_workspace(the_plan, dtype):
    """M (the GEMM results) and the buffer of a rearranged part."""
    io = allocate((max(the_plan.io_elements, 1),), dtype, "workspace", result=False)
    return io[:the_plan.inner.io_elements], io[the_plan.inner.io_elements:]


def run(the_plan, first, second):
    if the_plan.pass_name == "backward_weight":
        return _run_weight(first, second, the_plan)
    return _run_forward(first, second, the_plan)


def _run_forward(x, weight, the_plan):
    """The Winograd convolution of the rearranged input, part by part of the batch (one
    transformed weight). NaN or inf: recomputed by im2col."""
    problem, s2d, inner = the_plan.problem, the_plan.rearranged, the_plan.inner
    y = allocate_output("forward", problem, x.dtype)
    col = _first_workspace(the_plan, y.dtype)
    # the rearranged weight is a temporary of the transform, before the second workspace
    u, v = winograd.transformed_weight(_rearranged_weight(weight, problem.geometry.stride),
                                       s2d, inner, col)
    m_ws, buffer = _second_workspace(the_plan, y.dtype)
    nonfinite = 0
    for n0, n, part in _parts(x, the_plan, buffer):
        nonfinite += winograd.transformed_pass(part, u, y[n0:n0 + n], replace(s2d, batch=n),
                                               inner, v, m_ws)
    del col, u, v, m_ws, buffer, part  # the fallback allocates its own workspace
    if nonfinite:
        return im2col.run(the_plan.fallback, x, weight, y)
    return y


def _run_weight(x, grad_y, the_plan):
    """The Winograd weight gradient of the rearranged input, accumulated part by part of
    the batch, rearranged back. NaN or inf: im2col."""
    problem, s2d, inner = the_plan.problem, the_plan.rearranged, the_plan.inner
    grad_w = allocate_output("backward_weight", problem, x.dtype)
    col = _first_workspace(the_plan, grad_w.dtype)
    m_ws, buffer = _second_workspace(the_plan, grad_w.dtype)
    for n0, n, part in _parts(x, the_plan, buffer):
        du, v = winograd.gradient_of_u(part, grad_y[n0:n0 + n], replace(s2d, batch=n), inner,
                                       col, m_ws, accumulate=n0 > 0)
    del m_ws, buffer, part  # the second workspace is not needed for G^T dU G
    grad_s2d = allocate(s2d.weight_shape, grad_w.dtype, "weight gradient", result=False)
    nonfinite = winograd.weight_from_du(du, grad_s2d, s2d, inner)
    del col, du, v
    # rearranged back in place (no second temporary): the inverse of _rearranged_weight
    c_out, cin_g, ky, kx = grad_w.shape
    (sy, sx), r = problem.geometry.stride, s2d.geometry.kernel_size[0]
    grad_w.reshape(c_out, cin_g, r, sy, r, sx)[...] = grad_s2d.reshape(
        c_out, cin_g, sy, sx, r, r).transpose(0, 1, 4, 2, 5, 3)
    del grad_s2d
    if nonfinite:
        grad_w[...] = 0
        return im2col.run(the_plan.fallback, x, grad_y, grad_w)
    return grad_w
