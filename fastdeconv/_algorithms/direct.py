"""The direct convolution (forward): the packed engine's GEMM turned around, with the output
positions as its rows, so that the input is read where a channels-last copy holds it and never
packed (:func:`fastdeconv._ext._direct_conv.conv_direct`).

For output position ``o`` of a sample and output channel ``co`` of group ``g``::

    y[co, o] = sum over taps t, channels c of  x_last[o * stride + t * dilation - pad, c] * w[co, c, t]

The micro-kernels hold a tile of MR output positions by NR output channels in registers and
broadcast one input value of each of the MR positions at a time, read in place (a position's
channels are contiguous in channels-last data; every tap of every position is one offset
away, and a tap in the padding reads a row of zeros after the copy), against NR output
channels of the weight, packed once per call into panels (or once for a prepared layer,
:func:`prepare_weight`). What the packed engine spends on packing its B from the padded
input and on its edge tiles is gone; what is added is one blocked transposition of the
input (no padded copy: padding is read from the zero row) and a transposing store of each
tile into the channels-first output.

The copy is made a part of the batch at a time, within ``budget.workspace_bytes`` (one
sample at least: the copy of a sample is no larger than the sample). Every output value is
one chain of multiply-adds over (tap, channel) in order in one kernel call, whichever work
item or thread computes it, so the bits do not depend on the thread count or the part size.
The bias of :func:`fastdeconv.conv` is added after the pass, as for every algorithm.

Chosen by :func:`rule` before space-to-depth Winograd and the packed engine, where it
measured faster than both and than im2col (:class:`Budget` ``direct_*``; the grid is on the
performance page).
"""

import math
from dataclasses import dataclass

from .. import _scratch
from .._ext import _direct_conv
from .._threads import kernel_threads
from ._common import Plan, allocate_output
from .packed_wgrad import _channels_last

NAME = "direct"
PASSES = {"forward": NAME}

#: The compiled entry's limits: taps of one window and spatial dimensions.
MAX_TAPS = 512
MAX_NDIM = 8


@dataclass(frozen=True, kw_only=True)
class DirectPlan(Plan):
    """``samples_per_tile`` samples per call of the compiled entry; ``col_elements`` their
    channels-last copy, with its row of zeros."""


def plan(pass_name, problem, budget, itemsize):
    """The plan, or None where the compiled entry does not apply (more than
    :data:`MAX_TAPS` taps or :data:`MAX_NDIM` dimensions, a negative padding: a crop)."""
    g = problem.geometry
    if (g.kernel_numel > MAX_TAPS or g.ndim > MAX_NDIM or any(p < 0 for p in g.pad_before)
            or itemsize not in (4, 8)):
        return None
    batch = max(problem.batch, 1)
    per_sample = max(problem.c_in * g.input_numel, 1)
    samples = max(1, min(batch, budget.workspace_bytes // (per_sample * itemsize)))
    return DirectPlan(NAME, samples, g.output_numel, samples * per_sample + problem.c_in, 0,
                      pass_name=pass_name, problem=problem)


def might_pay(pass_name, problem, budget, itemsize):
    """The measured rule, on the problem alone: :func:`rule`."""
    return rule(problem, budget, itemsize)


def pays(the_plan, budget, itemsize):
    return True  # might_pay decided on the problem; the plan only bounds the copy


def rule(problem, budget, itemsize):
    """Where the direct convolution measured faster than the algorithm the chooser took
    without it (the packed engine, im2col or space-to-depth Winograd; :class:`Budget`
    ``direct_*`` and ``packed_min_work``; the grid is on the performance page).

    An itemsize in ``direct_itemsizes``; a stride above 1 (at stride 1 the packed engine's
    panels are runs of the input's rows, and it measured faster); at least
    ``direct_min_taps_per_stride`` taps per prod(stride), the times each input value is read
    (the transposition of the input is paid once for them: a 2x2 kernel of stride 2 measured
    1.15-1.38x slower, a 3x3 of stride 2 0.87-1.02x the time); at least
    ``direct_min_channels`` input and output channels per group (16 measured level or
    slower); one group's weight at most ``direct_max_weight_bytes`` (it is read again for
    every block of positions); and ``packed_min_work`` multiply-adds.
    """
    g = problem.geometry
    cin_g, cout_g = problem.c_in // problem.groups, problem.c_out // problem.groups
    weight_per_group = cout_g * cin_g * g.kernel_numel
    work = max(problem.batch, 1) * problem.groups * g.output_numel * weight_per_group
    return (itemsize in budget.direct_itemsizes
            and max(g.stride) > 1
            and g.kernel_numel >= budget.direct_min_taps_per_stride * math.prod(g.stride)
            and min(cin_g, cout_g) >= budget.direct_min_channels
            and weight_per_group * itemsize <= budget.direct_max_weight_bytes
            and work >= budget.per_itemsize(budget.packed_min_work, itemsize))


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: the weight packed once (a
    :class:`~fastdeconv._ext._direct_conv.DirectWeight`), for :func:`run`; taken from
    ``known`` when it holds it."""
    groups = the_plan.problem.groups
    return prepared_form(NAME, weight, groups, known,
                         lambda: _direct_conv.pack_weight(weight, groups,
                                                          threads=kernel_threads()))


def prepared_form(owner, weight, detail, known, pack):
    """``{key: form}`` of a prepared layer whose form is a packed ``DirectWeight`` of
    ``weight``: ``pack()``, or the form of the same key in ``known``. The key (``owner``'s
    name, the kernel the packing is for, dtype, shape and ``detail``, what else the packing
    depends on) is known without packing first. Also sub-pixel's direct store's hook."""
    key = (owner, _direct_conv.tile(weight.dtype)["kernel"], weight.dtype.name, weight.shape,
           detail)
    found = None if known is None else known.get(key)
    return {key: pack() if found is None else found}


def run(the_plan, x, weight, prepared=None):
    """y = conv(x, weight), ``samples_per_tile`` samples per call of the compiled entry;
    ``prepared``: the weight as :func:`prepare_weight` packed it (then ``weight`` is not
    read)."""
    problem = the_plan.problem
    g = problem.geometry
    y = allocate_output("forward", problem, x.dtype)
    if y.size == 0:
        return y
    if problem.c_in == 0:         # no input channels: every sum is empty
        y[...] = 0
        return y
    threads = kernel_threads()
    packed = (next(iter(prepared.values())) if prepared is not None
              else _direct_conv.pack_weight(weight, problem.groups, threads=threads))
    _run_parts(the_plan, x, packed, y, threads)
    return y


def _run_parts(the_plan, x, packed, y, threads):
    """The compiled entry on ``samples_per_tile`` samples at a time (:func:`on_parts`)."""
    problem = the_plan.problem
    g = problem.geometry
    size = tuple(g.input_size)
    stride, dilation, pad_before = g.as_kernel_args("stride", "dilation", "pad_before")

    def compute(first, part, x_last):
        _direct_conv.conv_direct(x_last, size, packed, y[first:first + part], stride,
                                 dilation, pad_before, problem.groups, threads)
    on_parts(x, the_plan.samples_per_tile, threads, compute)


def on_parts(x, step, threads, compute):
    """``compute(first, part, x_last)`` on ``step`` samples of ``x`` at a time, ``x_last``
    their channels-last copy ``(part * positions + 1, channels)`` whose last row is zeros
    (:func:`packed_wgrad._channels_last`), all parts' copies in one scratch block."""
    batch, channels = x.shape[:2]
    size = tuple(x.shape[2:])
    positions = math.prod(size)
    copy, block = _scratch.take_array((step * positions + 1, channels), x.dtype,
                                      "channels-last copy of x")
    x_last = None
    try:
        for first in range(0, batch, step):
            part = min(first + step, batch) - first
            x_last = copy[:part * positions + 1]
            _channels_last(x[first:first + part], size, (), False, threads,
                           out=x_last[:-1].reshape((part,) + size + (channels,)))
            x_last[-1] = 0
            compute(first, part, x_last)
    finally:
        del copy, x_last
        _scratch.give(block)
