"""Depthwise transposed convolution (backward_input): direct vectorised loops over the
stride phases when every group has one input channel of the transposed convolution (at most
4 output channels), dilation 1; no GEMM.

One zero-padded copy of an input plane serves every phase; each thread holds that copy and
one phase plane in its row layout (two when the phases of a last stride of 2 are paired,
:func:`_phase_partners`, and stored in one interleaving pass). In 2-d a pair is computed and
stored row by row instead, one row of each phase in those buffers at a time (in L1): against
the planes computed whole and then stored, ``depthwise_up`` took 0.87x the time (float64
0.84x, 2 threads 0.86x; loops of 2 s, processes alternating).
"""

import math
from dataclasses import dataclass

import numpy as np

from .._ext import _phase_kernels
from .._threads import kernel_threads
from .phases import PhasePlan, phase_output_and_args, phase_table, phases_apply

NAME = "depthwise"
PASSES = dict.fromkeys(("backward_input",), NAME)


@dataclass(frozen=True, kw_only=True)
class DepthwisePlan(PhasePlan):
    """:class:`PhasePlan` plus the padded plane (``halo`` before, ``padded`` in all, per
    dimension), the phase pairs and the most threads whose buffers fit the workspace."""

    halo: np.ndarray
    padded: np.ndarray
    partner: np.ndarray
    max_threads: int


def _is_depthwise(problem):
    """Each group has one input channel of the transposed convolution (= c_out here)."""
    return problem.groups == problem.c_out and problem.c_in // problem.groups <= 4


def _phase_partners(first, sub_out, stride):
    """Pairs of phases whose outputs interleave in the last dimension (its stride is 2).

    ``first`` and ``sub_out`` are the phase table's ``(n_phases, ndim)`` first output
    positions and counts. Returns ``partner`` (intp, one per phase): the phase whose outputs
    sit one position after this phase's in the last dimension (same rows, i.e. the same first
    position and count in every other dimension; as many outputs a row or one fewer), ``-2``
    for that phase itself, ``-1`` for a phase without a partner (every phase when the last
    stride is not 2).
    """
    partner = np.full(len(first), -1, dtype=np.intp)
    if stride[-1] != 2:
        return partner
    by_first = {tuple(f): p for p, f in enumerate(first.tolist())}
    for p, f in enumerate(first.tolist()):
        q = by_first.get(tuple(f[:-1]) + (f[-1] + 1,))
        if (partner[p] == -1 and q is not None and partner[q] == -1
                and np.array_equal(sub_out[p, :-1], sub_out[q, :-1])
                and 0 <= sub_out[p, -1] - sub_out[q, -1] <= 1):
            partner[p], partner[q] = q, -2
    return partner


def _buffers(problem, phases, table):
    """(halo, padded, partner, elements of one thread's buffer).

    The padded plane covers positions ``-sub_pad .. sub_out - 1 - sub_pad + sub_kernel - 1``
    of each phase, per dimension, and the output.
    """
    g = problem.geometry
    low = np.minimum((-table["sub_pad"]).min(axis=0), 0)
    high = (table["sub_out"] - 1 - table["sub_pad"] + table["sub_kernel"] - 1).max(axis=0)
    high = np.maximum(high, np.array(g.output_size) - 1)
    halo = (-low).astype(np.intp)
    padded = (high - low + 1).astype(np.intp)
    strides = np.append(np.cumprod(padded[:0:-1])[::-1], 1)  # row-major, of the padded plane
    span = int((1 + ((table["sub_out"] - 1) * strides).sum(axis=1)).max())
    partner = _phase_partners(table["first"], table["sub_out"], g.stride)
    planes = 2 if (partner >= 0).any() else 1
    for array in (halo, padded, partner):
        array.flags.writeable = False
    return halo, padded, partner, math.prod(padded.tolist()) + planes * max(span, 1)


def plan(pass_name, problem, budget, itemsize):
    """The depthwise plan, or None (not depthwise, or one thread's buffer does not fit)."""
    if not (phases_apply(problem, budget) and _is_depthwise(problem)):
        return None
    phases, table = phase_table(problem)
    halo = padded = partner = None
    elements = 0
    if phases:
        halo, padded, partner, elements = _buffers(problem, phases, table)
    if elements * itemsize > budget.workspace_bytes:
        return None
    # threads x buffer stays within the workspace bound (planes are independent, so the
    # thread count does not change the result)
    max_threads = budget.workspace_bytes // max(1, elements * itemsize)
    return DepthwisePlan(NAME, 1, 0, elements, 0, pass_name=pass_name, problem=problem,
                         phases=phases, table=table, halo=halo, padded=padded, partner=partner,
                         max_threads=max_threads)


def might_pay(pass_name, problem, budget, itemsize):
    return True


def pays(the_plan, budget, itemsize):
    return True


def run(the_plan, x, weight):
    problem = the_plan.problem
    # the kernel stores each live phase's plane at every one of its outputs
    y, weights, phase_args = phase_output_and_args(the_plan, x, weight,
                                                   stores_every_phase=True)
    if weights is None:  # no phase has outputs and taps: y stays zero
        return y
    _phase_kernels.conv_transpose_depthwise(
        x.reshape(-1), weights, y.reshape(-1), problem.batch, problem.c_out,
        problem.c_in // problem.groups, *phase_args,
        the_plan.partner, the_plan.halo, the_plan.padded,
        max(1, min(kernel_threads(), the_plan.max_threads)),
    )
    return y
