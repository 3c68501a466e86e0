"""Stride phases (backward_input, dilation 1): each phase a stride-1 im2col + GEMM written
to every stride-th output, no scatter-add (:meth:`ConvGeometry.transpose_phases`).

Never chosen by the rules today (col2im is faster on every benchmark case); selectable with
:func:`fastdeconv._algorithms.forced_algorithm` and tested while its weight gather and
im2col are optimised. The phase table and per-phase weights here also serve the depthwise
and Winograd-phase algorithms.
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import _blas_threads
from .._ext import _phase_kernels
from ._common import Plan, allocate_output, check_blas_dims, thread_counts, tiling, workspaces

NAME = "phases"
PASSES = dict.fromkeys(("backward_input",), NAME)


@dataclass(frozen=True, kw_only=True)
class PhasePlan(Plan):
    """A plan over the live stride phases: ``phases`` (entries of
    :meth:`ConvGeometry.transpose_phases`) and their ``table`` of ``(n_phases, ndim)``
    arrays (see :func:`phase_table`)."""

    phases: list
    table: dict


def phases_apply(problem, budget):
    """Stride phases need dilation 1, and at most ``budget.max_phases`` of them."""
    g = problem.geometry
    return all(d == 1 for d in g.dilation) and g.phase_count <= budget.max_phases


def phase_table(problem):
    """The live stride phases of ``problem`` (some output, some taps) and their table as
    read-only ``(n_phases, ndim)`` intp arrays ``sub_out``, ``sub_kernel``, ``sub_pad``,
    ``first``."""
    phases = [p for p in problem.geometry.transpose_phases()
              if 0 not in p["sub_out"] and 0 not in p["sub_kernel"]]
    if not phases:  # e.g. a 1-tap kernel with stride > output: no output is reached
        return phases, {}
    table = {key: np.array([p[key] for p in phases], dtype=np.intp).reshape(len(phases), -1)
             for key in ("sub_out", "sub_kernel", "sub_pad", "first")}
    for array in table.values():
        array.flags.writeable = False
    return phases, table


def phase_weights(weight, phases, groups):
    """Concatenated per-phase GEMM weights and their offsets.

    ``weight`` is the transposed convolution's ``(C_in, C_out / groups, *k)``; phase ``p``
    contributes, per group, the row-major ``(C_out / groups, C_in / groups * K_p)`` matrix of
    its sub-kernel taps (in the order :meth:`ConvGeometry.transpose_phases` gives them).
    """
    c_in, cout_g = weight.shape[:2]
    cin_g = c_in // groups
    blocks, offsets, offset = [], [], 0
    for phase in phases:
        sub = weight[(slice(None), slice(None)) + np.ix_(*phase["taps"])]
        sub = sub.reshape((groups, cin_g, cout_g, -1)).transpose(0, 2, 1, 3)
        blocks.append(sub.reshape(-1))
        offsets.append(offset)
        offset += blocks[-1].size
    return np.ascontiguousarray(np.concatenate(blocks)), np.array(offsets, dtype=np.intp)


def plan(pass_name, problem, budget, itemsize):
    if not phases_apply(problem, budget):
        return None
    phases, table = phase_table(problem)
    k_max = max((math.prod(p["sub_kernel"]) for p in phases), default=1)
    l_max = max((math.prod(p["sub_out"]) for p in phases), default=1)
    rows = problem.c_out * k_max  # the transposed conv's input channels x sub-kernel
    nb, tile = tiling(rows, l_max, max(problem.batch, 1), itemsize, io_rows=problem.c_in,
                      io_always=True, budget=budget)
    return PhasePlan(NAME, nb, tile, rows * nb * tile, problem.c_in * nb * tile,
                     pass_name=pass_name, problem=problem, phases=phases, table=table)


def might_pay(pass_name, problem, budget, itemsize):
    return False  # forced only (see the module docstring)


def pays(the_plan, budget, itemsize):
    return False


def phases_cover_output(problem, phases):
    """Whether the live ``phases`` (of :func:`phase_table`) write every output of
    ``problem``'s transposed convolution: each output belongs to one phase (its position
    modulo the stride), so they do when their outputs add up to all of them, and there are
    input channels (with none, no kernel writes anything)."""
    return (problem.c_out > 0
            and sum(math.prod(p["sub_out"]) for p in phases) == problem.geometry.input_numel)


def phase_output_and_args(the_plan, x, weight, *, stores_every_phase=False):
    """The output, the per-phase weights and what the phase kernels take after them (output
    and input size, stride, the phase table, each phase's weight offset); the weights and
    arguments are None when no phase has outputs and taps. The output is zeroed, unless
    ``stores_every_phase`` (the caller's kernel stores each live phase's every output) and
    the live phases reach every output (:func:`phases_cover_output`): then it is left
    uninitialised, as every value of it is written."""
    written_whole = stores_every_phase and phases_cover_output(the_plan.problem,
                                                               the_plan.phases)
    y = allocate_output(the_plan.pass_name, the_plan.problem, x.dtype,
                        written_whole=written_whole)
    if not the_plan.phases:
        return y, None, None
    weights, offsets = phase_weights(weight, the_plan.phases, the_plan.problem.groups)
    table = the_plan.table
    return y, weights, (
        *the_plan.problem.geometry.as_kernel_args("output_size", "input_size", "stride"),
        table["sub_out"], table["sub_kernel"], table["sub_pad"], table["first"], offsets)


def run(the_plan, x, weight):
    problem = the_plan.problem
    y, weights, phase_args = phase_output_and_args(the_plan, x, weight)
    if weights is None:  # no phase has outputs and taps: y stays zero
        return y
    check_blas_dims(problem, the_plan)
    threads, gemm_threads = thread_counts()
    with workspaces(the_plan, y.dtype) as (col, io), _blas_threads.single_threaded_blas():
        _phase_kernels.conv_transpose_phases(
            x.reshape(-1), weights, y.reshape(-1),
            problem.batch, problem.c_out, problem.c_in, problem.groups, *phase_args,
            col, io, the_plan.samples_per_tile, the_plan.tile, threads, gemm_threads,
        )
    return y
