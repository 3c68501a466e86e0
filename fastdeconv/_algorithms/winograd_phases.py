"""Winograd stride phases (backward_input, registered as ``"winograd"``): when every stride
phase of a transposed convolution has the same r x r sub-kernel (kernel = r x stride,
r = 2 or 3, 2-d, dilation 1; e.g. DCGAN's kernel 4, stride 2), each phase is a Winograd
F(4x4, r x r) convolution written to every stride-th output (2.56x fewer multiplications
than its taps for r = 2).

Rule: each phase has at least ``budget.winograd_phase_min_tiles`` tiles and the groups at
least ``budget.winograd_phase_min_channels`` input and output channels (with fewer, the
transforms outweigh the GEMMs saved), and every phase passes the forward Winograd rule.
Where the chooser would otherwise give the case to the packed engine's stride phases
(:func:`fastdeconv._algorithms.packed_phases.rule`, and no algorithm between the two
takes it), Winograd defers to them: with its tables made once per plan
and its packers inlined, the engine measured 1.01-1.48x faster on all 11 float32 shapes of
the grid that this rule took (``dcgan_g4`` 1.26x, k6s3 1.48x, grouped 1.38-1.45x; the
performance page has the table). In float64 (medians of three runs of the grid) the engine
measured 1.02-1.39x on 10 of those 11 shapes and 0.95x on ``k4s2 c64->64 64``.
"""

import sys
from dataclasses import dataclass

import numpy as np

from . import _chooser, im2col, packed_phases, winograd
from ._common import Plan, allocate_output, check_blas_dims, workspaces
from .phases import phase_weights

NAME = "winograd"
PASSES = dict.fromkeys(("backward_input",), NAME)


@dataclass(frozen=True, kw_only=True)
class WinogradPhasesPlan(Plan):
    """The largest phase's Winograd workspace, and per phase ``(phase, forward problem,
    Winograd plan)``; ``fallback`` is the col2im plan of the whole transposed convolution."""

    phase_plans: tuple
    fallback: Plan


def _phase_tiles_bound(problem, budget):
    """An upper bound of the Winograd tiles of the largest stride phase (batch included):
    a phase has at most ceil(input / stride) positions per dimension of the transposed
    convolution's output. Enumerating the phases costs milliseconds when there are many
    (fcn32s: 1024), so the rule checks this first."""
    if problem.geometry.phase_sub_kernel is None:
        return 0
    g = problem.geometry
    count = max(problem.batch, 1)
    for n, s in zip(g.input_size, g.stride):
        count *= -(-(-(-n // s)) // budget.winograd_output_tile)
    return count


def _phase_plans(problem, budget, itemsize):
    """(phase, forward problem, Winograd plan) for every phase with outputs, or None when
    the sub-kernels differ or a phase's plan does not fit."""
    phases = [p for p in problem.geometry.transpose_phases() if 0 not in p["sub_out"]]
    kernels = {p["sub_kernel"] for p in phases}
    if len(kernels) != 1 or next(iter(kernels)) not in ((2, 2), (3, 3)):
        return None
    result = []
    for phase in phases:
        sub = problem.phase_problem(phase)
        sub_plan = winograd.sized_plan(sub, budget, itemsize)
        if sub_plan is None:
            return None
        result.append((phase, sub, sub_plan))
    return tuple(result)


def plan(pass_name, problem, budget, itemsize):
    if (problem.geometry.phase_sub_kernel is None
            or problem.geometry.phase_count > budget.max_phases):
        return None
    phase_plans = _phase_plans(problem, budget, itemsize)
    if phase_plans is None:
        return None
    largest = max((p for _, _, p in phase_plans), key=lambda p: p.workspace_bytes(itemsize))
    return WinogradPhasesPlan(
        NAME, largest.samples_per_tile, largest.tile, largest.col_elements,
        largest.io_elements, largest.output_tile, pass_name=pass_name, problem=problem,
        phase_plans=phase_plans, fallback=im2col.plan(pass_name, problem, budget, itemsize))


def might_pay(pass_name, problem, budget, itemsize):
    """The arithmetic part of the rule, before any phase is enumerated (and the deferral to
    the packed engine's phases, see the module docstring)."""
    return (_phase_tiles_bound(problem, budget) >= budget.winograd_phase_min_tiles
            and min(problem.c_in, problem.c_out) // problem.groups
            >= budget.winograd_phase_min_channels
            and not _engine_takes_it(pass_name, problem, budget, itemsize))


def _engine_takes_it(pass_name, problem, budget, itemsize):
    """Would the chooser, without this algorithm, give the case to the packed engine's
    phases? Their rule holds and no algorithm between the two in the registry (sub-pixel)
    takes it first, by the chooser's own steps (``might_pay``, ``plan``, ``pays``); else
    Winograd keeps the case (a kernel 8 or 9 with stride 4 or 3 stays Winograd's rather
    than going to sub-pixel, which was not measured against it)."""
    if not packed_phases.might_pay(pass_name, problem, budget, itemsize):
        return False
    serving = [m for m in _chooser.REGISTRY if pass_name in m.PASSES]
    this = sys.modules[__name__]
    if this not in serving or packed_phases not in serving:
        return False
    for module in serving[serving.index(this) + 1:serving.index(packed_phases)]:
        if module.might_pay(pass_name, problem, budget, itemsize):
            the_plan = module.plan(pass_name, problem, budget, itemsize)
            if the_plan is not None and module.pays(the_plan, budget, itemsize):
                return False
    return packed_phases.plan(pass_name, problem, budget, itemsize) is not None


def pays(the_plan, budget, itemsize):
    m = budget.winograd_output_tile
    return all(winograd.rule_for("forward")(sub, budget, itemsize)
               and sub.batch * winograd.tiles(sub, m) >= budget.winograd_phase_min_tiles
               for _, sub, _ in the_plan.phase_plans)


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: ``{key: U}``, every phase's transformed weight made once
    (one array, the phases' U one after the other), or the U of that key in ``known``; for
    :func:`run`."""
    key = _u_key(the_plan, weight.dtype)
    if known is not None and key in known:
        return {key: known[key]}
    sizes = _u_sizes(the_plan)
    u = np.empty(sum(sizes), weight.dtype)
    start = 0
    for (phase, sub, sub_plan), sub_weight, size in zip(the_plan.phase_plans,
                                                         _sub_weights(the_plan, weight), sizes):
        winograd.transformed_weight(sub_weight, sub, sub_plan, u[start:start + size])
        start += size
    return {key: u}


def _u_key(the_plan, dtype):
    """What the phases' U depend on besides the weight: dtype, their taps and F(m, r)."""
    return (NAME + "_phases", np.dtype(dtype).str,
            tuple((tuple(map(tuple, phase["taps"])), sub_plan.output_tile)
                  for phase, _, sub_plan in the_plan.phase_plans))


def _u_sizes(the_plan):
    """Elements of each phase's U."""
    return [winograd.transformed_size(sub, sub_plan) for _, sub, sub_plan in the_plan.phase_plans]


def _sub_weights(the_plan, weight):
    """Each phase's forward weight, in the order of ``phase_plans``."""
    problem = the_plan.problem
    weights, offsets = phase_weights(weight, [p for p, _, _ in the_plan.phase_plans],
                                     problem.groups)
    return [weights[offset:offset + int(np.prod(sub.weight_shape))].reshape(sub.weight_shape)
            for (_, sub, _), offset in zip(the_plan.phase_plans, offsets)]


def run(the_plan, x, weight, prepared=None):
    """Each phase a Winograd convolution written to its positions; NaN or inf: col2im.
    ``prepared``: what :func:`prepare_weight` made (the phases' U are then not made again)."""
    problem = the_plan.problem
    y = allocate_output(the_plan.pass_name, problem, x.dtype)
    if prepared is None:
        sub_weights = _sub_weights(the_plan, weight)
    else:
        u_all, start = prepared[_u_key(the_plan, y.dtype)], 0
    nonfinite = 0
    with workspaces(the_plan, y.dtype) as (col, io):
        for q, ((phase, sub, sub_plan), size) in enumerate(zip(the_plan.phase_plans,
                                                               _u_sizes(the_plan))):
            check_blas_dims(sub, sub_plan)
            placement = (problem.geometry.input_size, phase["first"], problem.geometry.stride)
            if prepared is None:
                nonfinite += winograd.convolve(x, sub_weights[q], y, sub, sub_plan, col, io,
                                               placement)
            else:
                nonfinite += winograd.transformed_pass(x, u_all[start:start + size], y, sub,
                                                       sub_plan, col[size:], io, placement)
                start += size
    # the fallback takes its own workspace: one at a time
    if nonfinite:
        y[...] = 0
        return im2col.run(the_plan.fallback, x, weight, y)
    return y
