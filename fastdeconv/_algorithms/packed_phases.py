"""The packed engine's stride phases (backward_input, dilation 1): a transposed convolution
as one stride-1 forward convolution per phase, no multiplication by inserted zeros and no
scatter-add (:meth:`ConvGeometry.transpose_phases`;
:func:`fastdeconv._ext._packed_conv.conv_transpose_phases_run`).

Each phase's GEMM (M = output channels per group, K = input channels per group x the
phase's taps, N = positions; phases of one tap each that read the same input are one GEMM
of M = output channels per group x taps, :func:`stacked_phases`) reads its B operand straight from one zero-padded copy of the
input that serves every phase, its A gathered straight from the transposed convolution's
weight (every phase's in one pass over it), and each work item stores its block of the
phase's outputs once into every ``stride``-th position of the result; the items of all
phases are interleaved, so that a region of the output is finished while it is in cache.

Chosen by :func:`rule` where col2im would run (the specialised algorithms before it in the
registry keep their cases). The padded copy is made a part of the batch at a time, within
``budget.workspace_bytes`` (as for the forward engine, :func:`packed.padded_samples`).

As for the forward engine, the tables (every phase's GEMM plan, tap and gather offsets, the
interleaved order of the items) are made once per plan, engine call size and thread count
(:func:`tables`), and a prepared layer (:class:`fastdeconv.PreparedConvTranspose`) keeps
every phase's packed A (:func:`prepare_weight`).
"""

import math
from dataclasses import dataclass, field

from .._ext import _packed_conv
from .._ext._packed_shapes import checked_phases, one_tap_phases
from .._validation import allocate
from . import packed
from ._common import Plan
from .phases import phase_table, phases_apply, phases_cover_output

NAME = "packed_phases"
PASSES = {"backward_input": NAME}


@dataclass(frozen=True, kw_only=True)
class PackedPhasesPlan(Plan):
    """``phases``: the live stride phases (:func:`phases.phase_table`); ``samples_per_tile``
    samples per engine call (``col_elements``: their padded copy); ``covered``: whether the
    phases write every output position (else the output starts zeroed); ``tables``: the
    engine's tables per (samples, threads, dtype) of an engine call (:func:`tables`)."""

    phases: list
    covered: bool
    tables: dict = field(default_factory=dict, compare=False, repr=False)


def _padded_per_sample(problem, phases):
    """Elements of one sample's padded input read by every phase (the engine's copy)."""
    ndim = len(problem.geometry.input_size)
    low = [max(p["sub_pad"][d] for p in phases) for d in range(ndim)]
    extent = [max(low[d] - p["sub_pad"][d] + p["sub_out"][d] + p["sub_kernel"][d] - 1
                  for p in phases) for d in range(ndim)]
    return problem.c_out * math.prod(extent)


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None without stride phases (dilation) or when one sample's padded copy
    does not fit (see :func:`packed.padded_samples`)."""
    if not phases_apply(problem, budget):
        return None
    g = problem.geometry
    phases, _ = phase_table(problem)
    covered = phases_cover_output(problem, phases)
    batch = max(problem.batch, 1)
    if not phases:
        return PackedPhasesPlan(NAME, batch, g.input_numel, 0, 0, pass_name=pass_name,
                                problem=problem, phases=phases, covered=covered)
    per_sample = _padded_per_sample(problem, phases)
    samples = packed.padded_samples(batch, per_sample, problem.c_out * g.output_numel, budget,
                                    itemsize)
    if samples is None:
        return None
    return PackedPhasesPlan(NAME, samples, g.input_numel, samples * per_sample, 0,
                            pass_name=pass_name, problem=problem, phases=phases,
                            covered=covered)


def might_pay(pass_name, problem, budget, itemsize):
    """The measured rule, on the problem alone: :func:`rule`."""
    return phases_apply(problem, budget) and rule(problem, budget, itemsize)


def pays(the_plan, budget, itemsize):
    return True  # might_pay decided on the problem; the plan only bounds the padded copy


def rule(problem, budget, itemsize):
    """Where the engine's stride phases measured as fast as col2im or faster (within the noise
    of the machine: :class:`Budget` ``packed_phases_*`` and ``packed_min_work``; the grid is
    on the performance page).

    float32 and float64 (``packed_phases_itemsizes``); the transposed convolution has at least
    ``packed_phases_min_rows`` output channels per group (each phase's M: the engine's
    register tile is 8 or 12 rows), on average at least ``packed_phases_min_taps`` taps per
    phase, or phases the engine stacks into one GEMM (:func:`stacked_phases`: one tap each;
    taken for a kernel equal to the stride and no padding, where it measured 1.07-1.79x
    col2im), or else at
    least one tap a phase with at least ``packed_phases_one_tap_min_rows`` output channels
    per group, no stride above ``packed_phases_max_stride``, and ``packed_min_work``
    multiply-adds.
    """
    g = problem.geometry
    rows = problem.c_in // problem.groups          # the transposed convolution's output
    taps_per_phase = g.kernel_numel / max(g.phase_count, 1)
    work = (max(problem.batch, 1) * problem.c_out * rows * g.output_numel * g.kernel_numel)
    enough_taps = (taps_per_phase >= budget.packed_phases_min_taps
                   or _stacked_as_measured(problem)
                   or (taps_per_phase >= 1 and rows >= budget.packed_phases_one_tap_min_rows))
    return (itemsize in budget.packed_phases_itemsizes
            and rows >= budget.packed_phases_min_rows
            and enough_taps
            and max(g.stride) <= budget.packed_phases_max_stride
            and work >= budget.per_itemsize(budget.packed_min_work, itemsize))


def stacked_phases(problem):
    """Whether the engine runs the phases of ``problem`` as one GEMM (one tap each, all
    reading the same input: :func:`fastdeconv._ext._packed_shapes.one_tap_phases`, the test
    the tables make)."""
    g = problem.geometry
    phases, _ = phase_table(problem)
    checked = checked_phases(phases, g.ndim, g.kernel_size, g.stride, g.input_size)
    return one_tap_phases(checked, g.kernel_numel)


def _stacked_as_measured(problem):
    """Stacked phases of the measured kind: a kernel equal to the stride, no padding."""
    g = problem.geometry
    return (tuple(g.kernel_size) == tuple(g.stride)
            and all(before == 0 and after == 0 for before, after in g.padding)
            and stacked_phases(problem))


def tables(the_plan, samples, threads, dtype):
    """The engine's tables of an engine call of ``samples`` samples of ``dtype`` on
    ``threads`` threads, made once per plan
    (:func:`fastdeconv._ext._packed_conv.phases_tables`)."""
    def make():
        problem = the_plan.problem
        g = problem.geometry
        return _packed_conv.phases_tables(
            (samples, problem.c_out) + g.output_size, problem.weight_shape,
            (samples, problem.c_in) + g.input_size, dtype, g.as_kernel_args("stride")[0],
            the_plan.phases, groups=problem.groups, threads=threads)
    return packed.cached_tables(the_plan, (samples, threads, dtype), make)


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: every phase's A packed once for every engine call of a run
    (a :class:`PackedWeight` per tables key; see :func:`packed.packed_weights`), for
    :func:`run`."""
    return packed.packed_weights(the_plan, weight, known, tables,
                                 lambda t, w: _packed_conv.pack_phases_weight(t, w))


def run(the_plan, x, weight, prepared=None):
    """grad_x = conv^T(x) of the transposed convolution's input ``x``, its ``weight``
    ``(C_in, C_out / groups, *k)``, ``samples_per_tile`` samples per engine call;
    ``prepared``: the weight as :func:`prepare_weight` packed it (then ``weight`` is not
    read)."""
    problem = the_plan.problem
    y = allocate(problem.forward_input_shape, x.dtype, "output", zero=not the_plan.covered)
    if not the_plan.phases:
        return y
    return packed.run_engine(the_plan, x, weight, y, prepared, tables,
                             _packed_conv.conv_transpose_phases_run)
