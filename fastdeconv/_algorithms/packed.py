"""The packed GEMM engine (forward): fastdeconv's own micro-kernels, the weight packed once per
call and the input packed panel by panel straight from ``x`` (implicit im2col, no column
matrix; :func:`fastdeconv._ext._packed_conv.conv_forward_run`).

The engine's tables (GEMM plans, tap offsets: everything the shapes alone decide) are made
once per plan, engine call size and thread count and kept in the plan (:func:`tables`), so
that a repeated call pays none of that set-up. A prepared layer
(:class:`fastdeconv.PreparedConv`) also keeps the packed weight (:func:`prepare_weight`) and
passes it to :func:`run`: the same panels as a call packs, so the same bits.

Any geometry (n-d, stride, dilation, padding, groups). The engine reads a zero-padded copy of
the input when any padding is read; that copy is made a part of the batch at a time (at most
``budget.workspace_bytes``), so that the extra memory stays bounded whatever the batch. A
1x1 stride-1 unpadded convolution reads the rows of ``x`` in place.

Chosen by :func:`rule` (``might_pay``) where it measured faster than im2col, the algorithm
it takes cases from (:class:`Budget` fields ``packed_*``; the measured grid is on the
performance page); the algorithms before it in the registry keep theirs. Threads split
the output into work items and no reduction is split: every output is the same chain of
multiply-adds in any item, so the bits do not depend on the thread count. The bias of
:func:`fastdeconv.conv` is added after the pass, as for every algorithm (a pass does not
carry the bias).
"""

import math
from dataclasses import dataclass, field

from .._ext import _packed_conv
from .._threads import kernel_threads
from ._common import Plan, allocate_output

NAME = "packed"
PASSES = {"forward": NAME}


@dataclass(frozen=True, kw_only=True)
class PackedPlan(Plan):
    """``samples_per_tile`` samples per engine call (all of them when the input is read in
    place); ``col_elements`` is the padded copy of that many samples (0: read in place);
    ``padded``: whether the engine pads a copy; ``tables``: the engine's tables per
    (samples, threads, dtype) of an engine call, made on first use (:func:`tables`)."""

    padded: bool
    tables: dict = field(default_factory=dict, compare=False, repr=False)


def _padded_extent(g):
    """Per dimension, the padded input's extent the output reads."""
    return tuple((o - 1) * s + (k - 1) * d + 1 for o, s, k, d in
                 zip(g.output_size, g.stride, g.kernel_size, g.dilation))


def padded_read(g):
    """``(extent, padded)``: :func:`_padded_extent` and whether the output reads any padding
    (then the engine reads a zero-padded copy instead of the input itself)."""
    extent = _padded_extent(g)
    return extent, any(g.pad_before) or any(e > n for e, n in zip(extent, g.input_size))


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None when one sample's padded copy exceeds both
    ``budget.workspace_bytes`` and one input sample plus ``budget.workspace_bytes``.

    A sample larger than the workspace (a 128^3 volume) is padded one at a time: its copy is
    one input sample plus a border, within the memory bound of a call (the largest operand
    plus 32 MiB), and the packed engine then takes it instead of im2col (measured 112 against
    132 ms for one 16-channel 128^3 sample, 3x3x3, one thread).
    """
    g = problem.geometry
    batch = max(problem.batch, 1)
    extent, padded = padded_read(g)
    if not padded:
        return PackedPlan(NAME, batch, g.output_numel, 0, 0, pass_name=pass_name,
                          problem=problem, padded=False)
    # the engine copies the input from pad_before on over `extent` positions per dimension
    per_sample = problem.c_in * math.prod(extent)
    samples = padded_samples(batch, per_sample, problem.c_in * g.input_numel, budget, itemsize)
    if samples is None:
        return None
    return PackedPlan(NAME, samples, g.output_numel, samples * per_sample, 0,
                      pass_name=pass_name, problem=problem, padded=True)


def padded_samples(batch, per_sample, input_per_sample, budget, itemsize):
    """Samples per engine call whose padded copy (``per_sample`` elements each) fits
    ``budget.workspace_bytes``; 1 when one sample is larger but its border (beyond the
    ``input_per_sample`` elements of the input itself) fits; None when not even that does."""
    if per_sample == 0:      # nothing to copy (no channels)
        return batch
    samples = min(batch, budget.workspace_bytes // (per_sample * itemsize))
    if samples < 1:
        if (per_sample - input_per_sample) * itemsize > budget.workspace_bytes:
            return None
        samples = 1
    return samples


def might_pay(pass_name, problem, budget, itemsize):
    """The measured rule, on the problem alone: :func:`rule`."""
    return rule(problem, budget, itemsize)


def pays(the_plan, budget, itemsize):
    return True  # might_pay decided on the problem; the plan only bounds the padded copy


def rule(problem, budget, itemsize):
    """Where the packed engine measured faster than im2col (:class:`Budget` ``packed_*``).

    One sample has at least ``packed_min_positions`` output positions (the N of the engine's
    GEMM per sample and group), the call's multiply-adds reach ``packed_min_work`` and one
    group's weight (the GEMM's A, packed once and read for every sample) is at most
    ``packed_max_weight_bytes``.
    """
    g = problem.geometry
    weight_per_group = problem.c_out // problem.groups * problem.c_in // problem.groups
    weight_per_group *= g.kernel_numel
    work = max(problem.batch, 1) * problem.groups * g.output_numel * weight_per_group
    return (g.output_numel >= budget.per_itemsize(budget.packed_min_positions, itemsize)
            and work >= budget.per_itemsize(budget.packed_min_work, itemsize)
            and weight_per_group * itemsize <= budget.packed_max_weight_bytes)


def tables(the_plan, samples, threads, dtype):
    """The engine's tables of an engine call of ``samples`` samples of ``dtype`` on
    ``threads`` threads, made once per plan
    (:func:`fastdeconv._ext._packed_conv.forward_tables`)."""
    def make():
        problem = the_plan.problem
        g = problem.geometry
        stride, dilation, pad_before = g.as_kernel_args("stride", "dilation", "pad_before")
        return _packed_conv.forward_tables(
            (samples, problem.c_in) + g.input_size, problem.weight_shape,
            (samples, problem.c_out) + g.output_size, dtype, stride=stride, dilation=dilation,
            padding=pad_before, groups=problem.groups, threads=threads)
    return cached_tables(the_plan, (samples, threads, dtype), make)


def cached_tables(the_plan, key, make):
    """``the_plan.tables[key]``, made by ``make()`` on first use."""
    found = the_plan.tables.get(key)
    if found is None:
        found = the_plan.tables[key] = make()
    return found


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: ``weight`` packed once for every engine call of a run (a
    :class:`PackedWeight` per tables key), for :func:`run`."""
    return packed_weights(the_plan, weight, known, tables,
                          lambda t, w: _packed_conv.pack_forward_weight(t, w))


def packed_weights(the_plan, weight, known, tables_of, pack):
    """``{packing key: pack(tables, weight)}`` for the tables (``tables_of``) of every engine
    call of a run; the packed weights already in ``known`` (a dict of earlier results'
    values by key) are taken from it, not packed again."""
    threads = kernel_threads()
    packed = {}
    for samples in {min(the_plan.samples_per_tile, the_plan.problem.batch - first)
                    for first in range(0, the_plan.problem.batch, the_plan.samples_per_tile)}:
        the_tables = tables_of(the_plan, samples, threads, weight.dtype)
        key = the_tables.packing_key
        if key not in packed:
            found = None if known is None else known.get(key)
            packed[key] = found if found is not None else pack(the_tables, weight)
    return packed


def run(the_plan, x, weight, prepared=None):
    """y = conv(x, weight), ``samples_per_tile`` samples per engine call; ``prepared``: the
    weight as :func:`prepare_weight` packed it for this plan (then ``weight`` is not read)."""
    y = allocate_output("forward", the_plan.problem, x.dtype)
    return run_engine(the_plan, x, weight, y, prepared, tables, _packed_conv.conv_forward_run)


def run_engine(the_plan, x, weight, y, prepared, tables_of, engine_run):
    """``engine_run(tables, x, weight, y)`` on ``samples_per_tile`` samples at a time, with
    the prepared weight of their tables when ``prepared``; returns ``y``."""
    threads = kernel_threads()
    batch, step = the_plan.problem.batch, the_plan.samples_per_tile
    for first in range(0, batch, step):
        last = min(first + step, batch)
        the_tables = tables_of(the_plan, last - first, threads, x.dtype)
        engine_run(the_tables, x[first:last],
                   weight if prepared is None else prepared[the_tables.packing_key],
                   y[first:last])
    return y
