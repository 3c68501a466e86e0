"""The packed engine's col2im (backward_input): a transposed convolution as one GEMM whose
rows are the pairs (output channel, tap), its A the weight read as it is, each work item's
block of columns added into the output right after it is computed, so that no column matrix
exists and no weight is packed ahead (:mod:`fastdeconv._ext._packed_col2im`).

The stride phases (:mod:`.packed_phases`) gather every phase's A from the weight, a value
every ``taps`` values, on every call; where the weight is large and the positions few (a
generator's first layers: ``dcgan_g2``'s 8 MiB weight for 16 x 16 positions), that
gathering is a fifth of the call. Here the weight's rows are read with plain copies, block by
block, while the GEMM runs; the price is the products of the taps that fall past the
output's edges (as for col2im) and adds instead of stores. Chosen by :func:`rule`, before the
stride phases. A prepared layer keeps the packed A (:func:`prepare_weight`).

The uncropped output (every tap's position) of ``samples_per_tile`` samples lives in the
engine's scratch pool when the padding crops it, at most ``budget.workspace_bytes``.
"""

import math
from dataclasses import dataclass, field

from .._ext import _packed_col2im
from .._validation import allocate
from . import packed
from ._common import Plan

NAME = "packed_col2im"
PASSES = {"backward_input": NAME}


@dataclass(frozen=True, kw_only=True)
class PackedCol2imPlan(Plan):
    """``samples_per_tile`` samples per engine call (``col_elements``: their uncropped
    output); ``tables``: the engine's tables per (samples, threads, dtype) of an engine call
    (:func:`tables`)."""

    tables: dict = field(default_factory=dict, compare=False, repr=False)


def _full_per_sample(problem):
    """Elements of one sample's uncropped output (every tap of every position)."""
    g = problem.geometry
    return problem.c_in * math.prod(
        max((n - 1) * s + (k - 1) * d + 1, before + o)
        for n, s, k, d, before, o in zip(g.output_size, g.stride, g.kernel_size, g.dilation,
                                         g.pad_before, g.input_size))


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None when one sample's uncropped output does not fit
    ``budget.workspace_bytes``."""
    g = problem.geometry
    per_sample = _full_per_sample(problem)
    batch = max(problem.batch, 1)
    samples = min(batch, budget.workspace_bytes // max(per_sample * itemsize, 1))
    if samples < 1:
        return None
    return PackedCol2imPlan(NAME, samples, g.input_numel, samples * per_sample, 0,
                            pass_name=pass_name, problem=problem)


def might_pay(pass_name, problem, budget, itemsize):
    """The measured rule, on the problem alone: :func:`rule`."""
    return rule(problem, budget, itemsize)


def pays(the_plan, budget, itemsize):
    return True  # might_pay decided on the problem; the plan only bounds the scratch


def rule(problem, budget, itemsize):
    """Where the engine's col2im measured faster than its stride phases (:class:`Budget`
    ``packed_col2im_*``; the grid is on the performance page).

    Dilation 1, at least ``packed_col2im_min_taps_per_step`` kernel taps per stride step
    (``prod(kernel) / prod(stride)``: each phase's A gathered from every that-many-th
    value, and few of the products past the edges wasted; 3 x 3 kernels at stride 2 measured
    slower wherever the positions were not very few), at least
    ``packed_col2im_min_channels`` input channels per group (the GEMM's K), at most
    ``packed_col2im_max_positions_per_channel`` positions of the batch (the GEMM's columns)
    per input channel per group (few positions for a large weight: its gathering outweighs
    the products past the edges), and ``packed_min_work`` multiply-adds.
    """
    g = problem.geometry
    channels = problem.c_out // problem.groups        # the transposed convolution's input
    positions = max(problem.batch, 1) * math.prod(g.output_size)
    work = (max(problem.batch, 1) * problem.c_out * (problem.c_in // problem.groups)
            * math.prod(g.output_size) * g.kernel_numel)
    return (all(d == 1 for d in g.dilation)
            and g.kernel_numel >= budget.packed_col2im_min_taps_per_step * math.prod(g.stride)
            and channels >= budget.packed_col2im_min_channels
            and positions <= budget.packed_col2im_max_positions_per_channel * channels
            and work >= budget.per_itemsize(budget.packed_min_work, itemsize))


def tables(the_plan, samples, threads, dtype):
    """The engine's tables of an engine call of ``samples`` samples of ``dtype`` on
    ``threads`` threads, made once per plan
    (:func:`fastdeconv._ext._packed_col2im.col2im_tables`)."""
    def make():
        problem = the_plan.problem
        g = problem.geometry
        return _packed_col2im.col2im_tables(
            (samples, problem.c_out) + g.output_size, problem.weight_shape,
            (samples, problem.c_in) + g.input_size, dtype, g.stride, g.dilation, g.pad_before,
            groups=problem.groups, threads=threads)
    return packed.cached_tables(the_plan, (samples, threads, dtype), make)


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: the weight packed once into the GEMM's A micro-panels for
    every engine call of a run (a :class:`PackedWeight` per tables key; see
    :func:`packed.packed_weights`), for :func:`run`; no work item packs it then."""
    return packed.packed_weights(the_plan, weight, known, tables,
                                 lambda t, w: _packed_col2im.pack_col2im_weight(t, w))


def run(the_plan, x, weight, prepared=None):
    """grad_x = conv^T(x) of the transposed convolution's input ``x``, its ``weight``
    ``(C_in, C_out / groups, *k)``, ``samples_per_tile`` samples per engine call;
    ``prepared``: the weight as :func:`prepare_weight` packed it (then ``weight`` is not
    read)."""
    problem = the_plan.problem
    y = allocate(problem.forward_input_shape, x.dtype, "output")
    return packed.run_engine(the_plan, x, weight, y, prepared, tables,
                             _packed_col2im.conv_transpose_col2im_run)
