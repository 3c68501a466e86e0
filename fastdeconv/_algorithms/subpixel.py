"""Sub-pixel (backward_input): when every kernel size is a multiple of its stride (dilation
1) all stride phases share one column matrix, so the transposed convolution is one forward
convolution with ``prod(stride) * C_out`` channels onto a common grid followed by a pure
permutation (depth-to-space, Shi et al. 2016): no scatter-add.

The intermediate is computed per group and per block of ``channels_per_block`` output
channels of ``samples_per_chunk`` samples (about ``budget.subpixel_block_bytes``), so that
the depth-to-space step reads it from cache. The forward convolution of a block is chosen
like any other pass (:func:`_chooser.choose`), once, when the plan is made: the plan holds the
chosen algorithm and plan of every block shape (whole blocks, and the last partial block of
samples or channels), so the run chooses nothing again.

Where each output channel's run of last-dimension phases fills whole cache lines of the output
(a large stride: :func:`direct_rule`), there is no intermediate at all: the direct
convolution (:mod:`fastdeconv._algorithms.direct`) computes the sub-pixel convolution with
its weight packed straight from the transposed convolution's (no sub-pixel weight array) and
stores each register tile straight into the output by depth-to-space
(:func:`fastdeconv._ext._direct_conv.conv_direct_to_space`).
"""

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from .._ext import _direct_conv, _phase_kernels
from .._geometry import intp_arrays
from .._problem import ConvProblem
from .._threads import kernel_threads
from .._validation import allocate
from . import _chooser, direct, packed_phases
from ._common import Plan, allocate_output

NAME = "subpixel"
PASSES = dict.fromkeys(("backward_input",), NAME)


@dataclass(frozen=True, kw_only=True)
class SubpixelPlan(Plan):
    """The forward convolution of one block (``block_problem``), the algorithm and plan of
    each block shape (``block_plans``: ``((samples, channels), (module, plan))`` pairs), the block
    sizes, the intermediate's overhead over the output positions and the phase tables of the
    depth-to-space step (``tables``: common grid, output size, stride, start, count, first);
    ``covered``: whether the phases' outputs are all of the output (each output belongs to
    one phase; then the output is not zeroed first, as every value of it is written);
    ``origin``: with the direct convolution (:func:`direct_rule`), the output position of
    the common grid's first position per dimension (``samples_per_chunk`` samples per call
    of its compiled entry), else ``None``."""

    block_problem: ConvProblem
    block_plans: tuple
    samples_per_chunk: int
    channels_per_block: int
    overhead: float
    tables: tuple
    covered: bool
    origin: tuple = None


def plan(pass_name, problem, budget, itemsize):
    """The sub-pixel plan, or None when it does not apply or its intermediate for one
    channel of one sample does not fit the workspace."""
    g = problem.geometry
    if g.phase_count > budget.max_phases:
        return None
    grid = g.subpixel_grid()
    if grid is None:
        return None
    u_min, common, z_geometry = grid
    n_phases = g.phase_count
    per_channel = n_phases * math.prod(common)  # of one sample
    if per_channel * itemsize > budget.workspace_bytes:
        return None
    cout_g = problem.c_in // problem.groups
    in_block = max(1, budget.subpixel_block_bytes // (itemsize * per_channel))
    # channels first: they are the GEMM's rows (channels x phases), at least
    # subpixel_min_rows of them while the workspace allows
    wanted = max(in_block, -(-budget.subpixel_min_rows // n_phases))
    block = max(1, min(cout_g, wanted, budget.workspace_bytes // (itemsize * per_channel)))
    chunk = max(1, min(problem.batch, in_block // block))
    z_problem = ConvProblem(z_geometry, chunk, problem.c_out // problem.groups,
                            block * n_phases, 1)
    block_plans = {}
    for samples in {chunk, problem.batch % chunk or chunk}:
        for channels in {block, cout_g % block or block}:
            block_plans[samples, channels] = _chooser.choose(
                "forward", replace(z_problem, batch=samples, c_out=channels * n_phases),
                itemsize, budget)
    inner = block_plans[chunk, block][1]
    table = _phase_table(g, u_min)
    block_plans = tuple(block_plans.items())
    fields = dict(
        pass_name=pass_name, problem=problem, block_problem=z_problem, block_plans=block_plans,
        channels_per_block=block, overhead=n_phases * math.prod(common) / g.input_numel,
        tables=(*intp_arrays(common, g.input_size, g.stride), *table),
        covered=problem.c_out > 0 and int(np.prod(table[1], axis=1).sum()) == g.input_numel)
    if direct_rule(problem, budget, itemsize, z_geometry):
        # one part's channels-last copy of the input (one sample at least), with its zero row
        per_sample = max(problem.c_out * z_geometry.input_numel, 1)
        samples = max(1, min(max(problem.batch, 1),
                             budget.workspace_bytes // (per_sample * itemsize)))
        origin = tuple(u * s - before for u, s, before in zip(u_min, g.stride, g.pad_before))
        return SubpixelPlan(NAME, samples, math.prod(common), samples * per_sample
                            + problem.c_out, 0, samples_per_chunk=samples, origin=origin,
                            **fields)
    return SubpixelPlan(
        NAME, chunk, inner.tile, inner.col_elements,
        inner.io_elements + chunk * block * per_channel, samples_per_chunk=chunk, **fields)


def direct_rule(problem, budget, itemsize, z_geometry):
    """Whether the sub-pixel convolution runs as the direct convolution with a depth-to-space
    store (measured: the performance page): an itemsize in ``budget.direct_itemsizes``; one
    group; the last dimension's stride times the itemsize at least
    ``budget.subpixel_direct_min_line_bytes`` (each output channel's run of phases fills
    whole cache lines, which the store writes without reading them first); no cropping
    padding of the input; at most the direct convolution's taps and dimensions; and the
    packed weight at most ``budget.subpixel_direct_max_weight_bytes``."""
    g = problem.geometry
    weight_bytes = problem.c_in * problem.c_out * g.kernel_numel * itemsize
    return (itemsize in budget.direct_itemsizes
            and problem.groups == 1
            and g.stride[-1] * itemsize >= budget.subpixel_direct_min_line_bytes
            and all(before >= 0 for before in z_geometry.pad_before)
            and z_geometry.kernel_numel <= direct.MAX_TAPS
            and g.ndim <= direct.MAX_NDIM
            and weight_bytes <= budget.subpixel_direct_max_weight_bytes)


def might_pay(pass_name, problem, budget, itemsize):
    """Large kernels with enough channels (small kernels tie or lose against col2im), and
    kernels of ``subpixel_min_kernel_col2im`` taps or more that the engine's stride phases
    do not take (col2im would; sub-pixel measured faster there: the performance page)."""
    if problem.c_in // problem.groups < budget.subpixel_min_channels:
        return False
    taps = problem.geometry.kernel_numel
    return taps >= budget.subpixel_min_kernel or (
        taps >= budget.subpixel_min_kernel_col2im
        and not packed_phases.might_pay(pass_name, problem, budget, itemsize))


def pays(the_plan, budget, itemsize):
    return the_plan.overhead <= budget.subpixel_max_overhead


def _phase_table(g, u_min):
    """(start in the common grid, count, first output position) per phase and dimension,
    phases row-major over the per-dimension residues."""
    columns = []
    for dim, (s, before, lo) in enumerate(zip(g.stride, g.pad_before, u_min)):
        q_lo, q_hi = g.phase_range(dim)
        columns.append((q_lo - lo, np.maximum(0, q_hi - q_lo), q_lo * s + np.arange(s) - before))
    grids = [np.meshgrid(*[col[i] for col in columns], indexing="ij") for i in range(3)]
    return [np.ascontiguousarray(np.stack([grid.reshape(-1) for grid in grid_set], axis=1),
                                 dtype=np.intp) for grid_set in grids]


def _subpixel_weight(weight, stride, groups):
    """Forward-convolution weight of the sub-pixel decomposition (kernel = multiple of stride).

    ``weight`` is the transposed convolution's ``(C_in, C_out / groups, *k)``; the result is
    ``(groups * C_out / groups * prod(stride), C_in / groups, *(k / stride))`` with output
    channels ordered (group, channel, phase), so that the phases of one output channel are
    adjacent planes of the intermediate (read in order by the depth-to-space step), and each
    sub-kernel flipped: tap ``t = rho + m * stride`` of phase ``rho`` sits at sub-kernel
    position ``k / stride - 1 - m``.
    """
    c_in, cout_g = weight.shape[:2]
    kernel = weight.shape[2:]
    sub = tuple(k // s for k, s in zip(kernel, stride))
    cin_g = c_in // groups
    out = allocate((groups * cout_g * math.prod(stride), cin_g) + sub, weight.dtype, "weight",
                   result=False)
    _phase_kernels.scatter_kernel_taps(
        np.ascontiguousarray(weight).reshape(-1), out.reshape(-1), groups, cin_g, cout_g,
        _tap_offsets(kernel, tuple(stride), cin_g), math.prod(sub), kernel_threads())
    return out


@functools.lru_cache(maxsize=64)
def _tap_offsets(kernel, stride, cin_g):
    """Where each kernel tap goes in a row of :func:`_subpixel_weight` (input channel 0).

    Tap ``t`` (row-major over ``kernel``), ``t_d = rho_d + m_d * stride_d``, belongs to phase
    ``rho`` (row-major over ``stride``) at flipped sub-kernel position ``k_d / stride_d - 1 -
    m_d``: offset ``(phase * cin_g) * prod(sub) + position`` (row-major over ``sub``).
    """
    sub = tuple(k // s for k, s in zip(kernel, stride))
    taps = np.indices(kernel).reshape(len(kernel), -1)
    rho = np.stack([t % s for t, s in zip(taps, stride)])
    flipped = np.stack([m - 1 - t // s for t, s, m in zip(taps, stride, sub)])
    phase = np.ravel_multi_index(tuple(rho), stride)
    position = np.ravel_multi_index(tuple(flipped), sub)
    offsets = (phase * cin_g * math.prod(sub) + position).astype(np.intp)
    offsets.flags.writeable = False
    return offsets


def prepare_weight(the_plan, weight, known=None):
    """The prepared-layer hook: on the direct store (``the_plan.origin`` set) the weight
    packed once (:func:`_pack_direct`, a
    :class:`~fastdeconv._ext._direct_conv.DirectWeight`), taken from ``known`` when it holds
    it; nothing on the GEMM path (its blocks' algorithms pack per call). For :func:`run`."""
    if the_plan.origin is None:
        return {}
    return direct.prepared_form(NAME, weight, tuple(the_plan.problem.geometry.stride), known,
                                lambda: _pack_direct(the_plan, weight))


def run(the_plan, x, weight, prepared=None):
    """y = conv_transpose(x, weight); ``prepared``: what :func:`prepare_weight` made (on the
    direct store, the packed weight: ``weight`` is then not read)."""
    problem = the_plan.problem
    y = allocate_output(the_plan.pass_name, problem, x.dtype, written_whole=the_plan.covered)
    if the_plan.origin is not None:
        if y.size and x.size:
            packed = (next(iter(prepared.values())) if prepared
                      else _pack_direct(the_plan, weight))
            _run_direct(the_plan, x, packed, y)
        return y
    g = problem.geometry
    z_weight = _subpixel_weight(weight, g.stride, problem.groups)
    chunk, block = the_plan.samples_per_chunk, the_plan.channels_per_block
    n_phases = g.phase_count
    cin_g, cout_g = problem.c_out // problem.groups, problem.c_in // problem.groups
    for n0 in range(0, problem.batch, chunk):
        n1 = min(n0 + chunk, problem.batch)
        for group in range(problem.groups):
            part = x[n0:n1] if problem.groups == 1 else np.ascontiguousarray(
                x[n0:n1, group * cin_g:(group + 1) * cin_g])
            for j0 in range(0, cout_g, block):
                c0, c1 = group * cout_g + j0, group * cout_g + min(j0 + block, cout_g)
                module, block_plan = dict(the_plan.block_plans)[n1 - n0, c1 - c0]
                z = module.run(block_plan, part, z_weight[c0 * n_phases:c1 * n_phases])
                _phase_kernels.depth_to_space_phases(
                    z.reshape(-1), y[n0:n1].reshape(-1), n1 - n0, c1 - c0, problem.c_in, c0,
                    *the_plan.tables, kernel_threads(),
                )
    return y


def _pack_direct(the_plan, weight):
    """The sub-pixel weight of the direct store, packed straight from ``weight``
    (:func:`_gather_table`)."""
    problem = the_plan.problem
    g, zg = problem.geometry, the_plan.block_problem.geometry
    src = _gather_table(tuple(g.kernel_size), tuple(g.stride), problem.c_in)
    z_shape = (problem.c_in * g.phase_count, problem.c_out) + tuple(zg.kernel_size)
    return _direct_conv.pack_weight_gathered(np.ascontiguousarray(weight), src, z_shape,
                                             threads=kernel_threads())


def _run_direct(the_plan, x, packed, y):
    """The direct convolution's depth-to-space entry on the ``packed`` weight
    (:func:`_pack_direct`), ``samples_per_chunk`` samples per call."""
    problem = the_plan.problem
    g, zg = problem.geometry, the_plan.block_problem.geometry
    threads = kernel_threads()
    grid, pad = tuple(zg.output_size), tuple(zg.pad_before)

    def compute(first, part, x_last):
        _direct_conv.conv_direct_to_space(x_last, tuple(zg.input_size), packed, grid,
                                          y[first:first + part], tuple(g.stride),
                                          the_plan.origin, pad, threads)
    direct.on_parts(x, the_plan.samples_per_chunk, threads, compute)


@functools.lru_cache(maxsize=64)
def _gather_table(kernel, stride, c_y):
    """``src`` of :func:`fastdeconv._ext._direct_conv.pack_weight_gathered` for the sub-pixel
    weight of a transposed convolution's weight ``(C_x, c_y, *kernel)``: the value of output
    channel ``co * prod(stride) + rho`` (``rho`` row-major over ``stride``) at sub-kernel
    position ``m`` (row-major over ``kernel / stride``) is tap ``rho + (k / stride - 1 - m) *
    stride`` of ``weight[c, co]`` (per dimension; :func:`_subpixel_weight`'s flip), at
    ``co * prod(kernel) + that tap`` in row ``c``."""
    sub = tuple(k // s for k, s in zip(kernel, stride))
    positions = np.indices(sub).reshape(len(sub), -1)   # (ndim, sub-kernel positions)
    phases = np.indices(stride).reshape(len(stride), -1)   # (ndim, phases)
    taps = tuple(phases[d][None, :] + (sub[d] - 1 - positions[d])[:, None] * stride[d]
                 for d in range(len(sub)))
    tap = np.ravel_multi_index(taps, kernel)   # (positions, phases)
    src = (np.arange(c_y)[None, :, None] * math.prod(kernel) + tap[:, None, :])
    src = np.ascontiguousarray(src.reshape(len(tap), -1), dtype=np.intp)
    src.flags.writeable = False
    return src
