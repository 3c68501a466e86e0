"""The packed engine's weight gradient (backward_weight): one GEMM per group that reduces over
the output positions, read straight from channels-last copies of the input and of the output
gradient (:func:`fastdeconv._ext._packed_wgrad.conv_weight_grad_packed`).

For group ``g``, with ``k`` running over the output positions of every sample::

    gW[g][co, (t, c)] = sum over k of  gy[k, co] * x_padded[pos(k) + tap(t), c]

(``pos(k)`` the first input position that output position ``k`` reads, ``tap(t)`` the offset of
tap ``t``). In channels-last data a position's channels are contiguous. The engine computes the
transposed product ``gW[g]^T = X^T gy[g]``: its micro-kernels broadcast MR channels of one tap
of ``x`` at each position, read where the copy holds them, against packed rows of ``gy``, so
that nothing is gathered (0.84x the time of packing the gathered rows of ``x`` as the B of
``gy^T X`` on wgrad_dcgan). That gathered form remains for more than
``Budget.packed_wgrad_transposed_max_cout`` (96) output channels per group, where its packed
panels serve enough rows of C to win, and for fewer input channels per group than MR. The
result has whole MR panels per tap (:func:`~fastdeconv._ext._packed_wgrad.transposed_rows`)
and is put in the weight's ``(channel, tap)`` order at the end. Channels-first data would
need a transposition per element (an earlier version that read it measured 2-3x slower than
im2col + OpenBLAS); the copies are one blocked transpose of each operand per part of the
batch; no column matrix exists.

The batch is cut into parts whose copies fit ``budget.workspace_bytes`` (at least one
sample); the parts' GEMMs accumulate in order. A part's positions are the reduction of one
GEMM, cut into the kernel's KC slices and never split across threads, so the bits do not
depend on the thread count (they do depend on the part size, which the shape and budget fix).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .. import _scratch
from .._ext import _layout_kernels, _packed_wgrad
from .._ext._packed_shapes import pad_plan, zero_border
from .._threads import kernel_threads
from .._validation import allocate
from ._common import Plan
from .packed import _padded_extent, padded_read

NAME = "packed"
PASSES = {"backward_weight": NAME}


@dataclass(frozen=True, kw_only=True)
class PackedWeightGradPlan(Plan):
    """``samples_per_tile`` samples per engine call; ``extent``: the padded input's spatial
    size the positions read (the channels-last copy's, or the input's when no padding is
    read: ``padded`` False); ``layout``: the transposed GEMM's ``(rows, row_of)``
    (:func:`_transposed_layout`), or None for the gathered one."""

    extent: tuple
    padded: bool
    layout: object = field(default=None, compare=False, repr=False)

    @property
    def transposed(self):
        return self.layout is not None


def _per_sample(problem, extent, padded):
    """(workspace elements, row offsets) per sample: the channels-last (padded) input and
    output gradient; one offset per output position."""
    g = problem.geometry
    x_elements = problem.c_in * (math.prod(extent) if padded else g.input_numel)
    return x_elements + problem.c_out * g.output_numel, g.output_numel


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None when one sample's copies and the result do not fit
    ``budget.workspace_bytes``.

    As many samples per engine call as fit ``budget.workspace_bytes`` with the GEMM's result:
    fewer, larger parts measured faster than parts that stay in cache, 0.83-0.98x the time
    of 2 MiB parts for 16 MiB ones (float32 and float64, 1 and 2 threads; the GEMM reads the
    copies panel by panel, each position's lines once into L2 for all its taps).
    """
    g = problem.geometry
    extent, padded = padded_read(g)
    elements, offsets = _per_sample(problem, extent, padded)
    per_sample = max(elements * itemsize + offsets * 8, 1)
    layout = _transposed_layout(problem, budget, itemsize)
    if layout is None:   # (c_out, (tap, channel))
        result = problem.c_out * problem.c_in // problem.groups * g.kernel_numel
    else:                # (groups, rows, c_out / groups)
        result = problem.c_out * layout[0]
    room = budget.workspace_bytes - result * itemsize
    if per_sample > room:
        return None
    samples = max(1, min(max(problem.batch, 1), room // per_sample))
    return PackedWeightGradPlan(NAME, samples, g.output_numel, samples * elements, result,
                                pass_name=pass_name, problem=problem,
                                extent=extent if padded else tuple(g.input_size),
                                padded=padded, layout=layout)


def _transposed_layout(problem, budget, itemsize):
    """The layout of the transposed GEMM ``gW^T = X^T gy`` (``x`` read in place; the
    (rows, row_of) of :func:`~fastdeconv._ext._packed_wgrad.transposed_rows`), or None for
    the gathered one: transposed for at most ``budget.packed_wgrad_transposed_max_cout``
    output channels per group (where it measured faster) and at least the register tile's
    MR input channels per group."""
    if problem.c_out // problem.groups > budget.packed_wgrad_transposed_max_cout:
        return None
    layout = _packed_wgrad.transposed_rows(problem.c_in, problem.c_out,
                                           problem.geometry.kernel_numel, problem.groups,
                                           np.float64 if itemsize == 8 else np.float32)
    if layout is not None:   # kept by the plan, shared by its calls: read-only
        layout[1].flags.writeable = False
    return layout


def might_pay(pass_name, problem, budget, itemsize):
    """The measured rule, on the problem alone: :func:`rule`."""
    return rule(problem, budget, itemsize)


def pays(the_plan, budget, itemsize):
    return True  # might_pay decided on the problem; the plan only bounds the copies


def rule(problem, budget, itemsize):
    """Where the engine's weight gradient measured faster than the algorithm the chooser took
    before it (im2col, space-to-depth Winograd; :class:`Budget` ``packed_wgrad_*`` and
    ``packed_min_work``; the grid is on the performance page).

    An itemsize in ``packed_wgrad_itemsizes``; at least ``packed_wgrad_min_ndim`` spatial
    dimensions (1-d measured even); at least 2 kernel taps (a 1x1 kernel has no reuse of
    the input to win back the transposed copies); at least ``packed_wgrad_min_channels``
    input channels per group (the GEMM's N is taps x channels: 3 channels measured slower);
    a padded input at most ``packed_wgrad_max_padded_ratio`` times the input (a copy that is
    mostly zeros: 9x measured slower); and ``packed_min_work`` multiply-adds.
    """
    g = problem.geometry
    cin_g = problem.c_in // problem.groups
    work = max(problem.batch, 1) * problem.c_out * cin_g * g.output_numel * g.kernel_numel
    padded_ratio = math.prod(_padded_extent(g)) / max(g.input_numel, 1)
    return (itemsize in budget.packed_wgrad_itemsizes
            and g.ndim >= budget.packed_wgrad_min_ndim
            and g.kernel_numel >= 2
            and cin_g >= budget.packed_wgrad_min_channels
            and padded_ratio <= budget.packed_wgrad_max_padded_ratio
            and work >= budget.per_itemsize(budget.packed_min_work, itemsize))


def _offsets(problem, extent, samples):
    """(row_offset, tap_offset) in elements of the channels-last copy of ``samples`` samples
    of spatial size ``extent``."""
    g = problem.geometry
    pixel = [math.prod(extent[d + 1:]) for d in range(len(extent))]
    first = np.zeros((), dtype=np.intp)
    for d, (o, s) in enumerate(zip(g.output_size, g.stride)):
        first = np.add.outer(first, np.arange(o, dtype=np.intp) * (s * pixel[d]))
    taps = np.zeros((), dtype=np.intp)
    for d, (k, dil) in enumerate(zip(g.kernel_size, g.dilation)):
        taps = np.add.outer(taps, np.arange(k, dtype=np.intp) * (dil * pixel[d]))
    sample = np.arange(samples, dtype=np.intp) * math.prod(extent)
    rows = np.add.outer(sample, first.reshape(-1)).reshape(-1) * problem.c_in
    return rows, np.ascontiguousarray(taps.reshape(-1) * problem.c_in)


def _channels_last(array, extent, pad_before, padded, threads, out=None):
    """``(S, C, *spatial)`` C-contiguous to ``(S, *extent, C)``: a transposed copy, zero-padded
    by ``pad_before`` (cropped where negative) when ``padded``; into ``out`` (any contents:
    its padding is zeroed here) or a new array."""
    batch, channels = array.shape[:2]
    shape = (batch,) + tuple(extent) + (channels,)
    if out is None:
        out = allocate(shape, array.dtype, "workspace", zero=padded, result=False)
    elif padded:
        _zero_outside(out, array.shape[2:], pad_before)
    if not padded:
        _layout_kernels.transpose_batched(array.reshape(batch, channels, -1),
                                          out.reshape(batch, -1, channels), threads)
    else:
        _layout_kernels.channels_last_padded(array.reshape(batch, -1), out.reshape(batch, -1),
                                             array.shape[2:], tuple(extent), tuple(pad_before),
                                             threads)
    return out


def _zero_outside(out, spatial, pad_before):
    """Zero the cells of the channels-last ``out`` ``(S, *extent, C)`` that a copy of an input
    of size ``spatial`` placed at ``pad_before`` does not write (its padding)."""
    plan = pad_plan(spatial, pad_before, out.shape[1:-1])
    if plan is not None:
        zero_border(out, plan[1][2:], 1)


def run(the_plan, x, grad_y):
    """grad_w from ``x`` and ``grad_y``, ``samples_per_tile`` samples per engine call."""
    problem = the_plan.problem
    g = problem.geometry
    threads = kernel_threads()
    cin_g = problem.c_in // problem.groups
    if problem.c_out == 0 or cin_g == 0:
        return allocate(problem.weight_shape, x.dtype, "weight gradient", zero=True)
    cout_g = problem.c_out // problem.groups
    layout = the_plan.layout
    # the GEMM's result comes from the scratch pool too: fresh, each call paid a page fault
    # per 4 KiB page of it (1.6 % of wgrad_dcgan)
    columns, columns_block = _scratch.take_array(
        (problem.c_out, g.kernel_numel * cin_g) if layout is None
        else (problem.groups, layout[0], cout_g), x.dtype, "weight gradient's GEMM result")
    try:
        _accumulate_parts(the_plan, x, grad_y, columns, threads)
        return _in_weight_order(the_plan, columns, threads)
    finally:
        del columns
        _scratch.give(columns_block)


def _accumulate_parts(the_plan, x, grad_y, columns, threads):
    """``columns`` = the GEMM's result, summed over the parts of the batch in order."""
    problem = the_plan.problem
    g = problem.geometry
    layout = the_plan.layout
    step = the_plan.samples_per_tile
    rows, taps = _offsets(problem, the_plan.extent, step)
    for first in range(0, problem.batch, step):
        last = min(first + step, problem.batch)
        part = last - first
        # the copies come from the engine's scratch pool: taken fresh on every call, a new
        # mapping of a few MiB costs a page fault per 4 KiB page
        x_last, x_block = _scratch.take_array((part,) + tuple(the_plan.extent) + (problem.c_in,),
                                              x.dtype, "channels-last copy of x")
        try:
            gy_last, gy_block = _scratch.take_array(
                (part,) + tuple(g.output_size) + (problem.c_out,), x.dtype,
                "channels-last copy of grad_y")
            try:
                _channels_last(x[first:last], the_plan.extent, g.pad_before, the_plan.padded,
                               threads, out=x_last)
                _channels_last(grad_y[first:last], g.output_size, (), False, threads,
                               out=gy_last)
                _packed_wgrad.conv_weight_grad_packed(
                    x_last, gy_last.reshape(-1, problem.c_out), columns,
                    rows[:part * g.output_numel], taps, groups=problem.groups,
                    accumulate=first > 0, threads=threads, transposed=layout is not None)
            finally:
                del gy_last
                _scratch.give(gy_block)
        finally:
            del x_last
            _scratch.give(x_block)


def _in_weight_order(the_plan, columns, threads):
    """The weight gradient ``(c_out, c_in / groups, *k)`` from the GEMM's result."""
    problem = the_plan.problem
    g = problem.geometry
    cin_g, cout_g = problem.c_in // problem.groups, problem.c_out // problem.groups
    layout = the_plan.layout
    grad_w = allocate(problem.weight_shape, columns.dtype, "weight gradient")
    if layout is None:   # (c_out, (tap, channel))
        np.copyto(grad_w.reshape(problem.c_out, cin_g, g.kernel_numel),
                  columns.reshape(problem.c_out, g.kernel_numel, cin_g).transpose(0, 2, 1))
        return grad_w
    # (groups, rows, cout_g), tap t of channel c in row row_of[t, c]
    _packed_wgrad.transposed_to_weight(
        columns, layout[1], grad_w.reshape(problem.groups, cout_g, cin_g * g.kernel_numel),
        threads)
    return grad_w
