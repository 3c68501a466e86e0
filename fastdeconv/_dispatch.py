"""Algorithm choice, tiling and workspaces for the three convolution passes.

The public functions in :mod:`fastdeconv._conv` validate and then call :func:`forward`,
:func:`backward_input` (= ``conv_transpose``) or :func:`backward_weight`; this module decides
*how*, from the geometry alone, and calls the compiled drivers:

=================  ===========================================================================
pass               algorithms
=================  ===========================================================================
forward            ``im2col``: column tile + one GEMM per group (the column tile is the input
                   itself for a 1x1 convolution with unit stride and no padding);
                   ``winograd``: Winograd F(4x4, 3x3) for 2-d 3x3 kernels with stride 1
                   (any padding, dilation, groups): 36 GEMMs per group over transformed
                   tiles instead of 9 taps per output, 4x fewer multiplications (Lavin &
                   Gray 2015; dilation d as d^2 dense polyphase convolutions). Chosen where
                   it measurably wins (:func:`_winograd_pays`: enough channels and tiles,
                   few tiles past the output's edges, float32 and float64) and while the
                   transformed weight and a chunk of tiles fit the workspace;
                   ``space_to_depth``: a strided 2-d convolution whose kernel is r x stride
                   (r = 2 or 3, dilation 1) is the stride-1 r x r convolution of its input
                   rearranged space-to-depth (prod(stride) x C_in channels), run by the
                   Winograd kernels under the same rule (:func:`_space_to_depth_problem`)
backward_input     ``phases``: stride-phase (sub-pixel) decomposition, each phase a stride-1
                   im2col + GEMM written to every stride-th output (dilation 1);
                   ``col2im``: GEMM into a column tile, then a scatter-add (any geometry);
                   ``depthwise``: direct vectorised loops over stride phases when every group
                   has one input channel (dilation 1), no GEMM;
                   ``subpixel``: when every kernel size is a multiple of its stride (dilation
                   1) all phases share one column matrix, so the transposed convolution is
                   one forward convolution with ``prod(stride) * C_out`` channels followed by
                   a pure permutation (depth-to-space, Shi et al. 2016): no scatter-add;
                   ``winograd``: with stride 1 (3x3, 2-d), the forward ``winograd`` of the
                   flipped, channel-swapped kernel, under the forward pass's rule; with
                   larger strides, when every stride phase has a 2x2 (or 3x3) sub-kernel
                   (kernel = 2 x stride), each phase a Winograd F(4x4, 2x2) convolution
                   written to every stride-th output (at least WINOGRAD_PHASE_MIN_TILES
                   tiles a phase and WINOGRAD_PHASE_MIN_CHANNELS channels a group)
backward_weight    ``im2col``: column tile, GEMM accumulated over tiles with ``beta = 1``;
                   ``winograd``: for the forward ``winograd``'s 3x3 geometries, its adjoint
                   with respect to the transformed weight U: dU[e] = sum over tiles of
                   (A gy A^T)[e] @ V[e]^T (36 GEMMs per group reducing over tiles, ``beta =
                   1`` chunk after chunk), then grad_w = G^T dU G in float64. Chosen by
                   :func:`_winograd_pays_weight` (enough channels and tiles, few tiles past
                   the edges, float32 and float64) while dU and a chunk fit the workspace;
                   ``space_to_depth``: the forward pass's, for the weight gradient
=================  ===========================================================================

Tiles are cache-sized (:data:`TILE_BYTES`) and never larger than :data:`WORKSPACE_BYTES`: when
one sample has few output positions, several whole samples share a tile (one larger GEMM, up
to :data:`TARGET_COLUMNS` columns); otherwise a tile is a range of output positions of one
sample. :func:`forced_algorithm` lets the
tests run every algorithm on every geometry it supports.
"""

import functools
import math
import threading
import types
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from . import _blas_threads
from . import _winograd
from ._ext import _im2col_kernels, _phase_kernels, _runtime, _winograd_kernels
from ._geometry import ConvGeometry
from ._problem import ConvProblem
from ._threads import num_threads
from ._validation import allocate

__all__ = [
    "ALGORITHMS",
    "TILE_BYTES",
    "WORKSPACE_BYTES",
    "Plan",
    "backward_input",
    "backward_weight",
    "forced_algorithm",
    "forward",
    "plan",
]

#: Upper bound of the workspace (column tile + gathered rows) of one call, in bytes,
#: whatever the batch size.
WORKSPACE_BYTES = 16 * 2**20
#: Target size of one column tile: small enough to stay in cache between im2col and GEMM.
TILE_BYTES = 2 * 2**20
#: Whole samples share a tile until it has about this many columns (GEMM's N); a sample
#: with at least this many output positions gets tiles of its own.
TARGET_COLUMNS = 2048
#: A tile has at least this many columns when WORKSPACE_BYTES allows (GEMMs with a small N
#: run far below peak, and each GEMM call packs the whole weight again), even if that makes
#: it larger than TILE_BYTES. 256 rather than 128, measured float32 / float64, 1 thread, im2col
#: with 512-768 input channels (3x3): 1.02x to 1.19x faster; dcgan_g2 float64 1.1x.
MIN_COLUMNS = 256

ALGORITHMS = {
    "forward": ("im2col", "winograd", "space_to_depth"),
    "backward_input": ("phases", "col2im", "depthwise", "subpixel", "winograd"),
    "backward_weight": ("im2col", "winograd", "space_to_depth"),
}

#: Largest dimension of a BLAS call (32-bit integers in scipy.linalg.cython_blas).
BLAS_INT_MAX = 2**31 - 1
_forced = threading.local()


@contextmanager
def forced_algorithm(name):
    """Use algorithm ``name`` for every pass that supports it, in this thread (for tests)."""
    previous = getattr(_forced, "name", None)
    _forced.name = name
    try:
        yield
    finally:
        _forced.name = previous


@dataclass(frozen=True)
class Plan:
    """How one pass runs: algorithm, tiling and workspace sizes (in elements)."""

    algorithm: str
    samples_per_tile: int
    tile: int
    col_elements: int
    io_elements: int
    output_tile: int = 0  # winograd: m of F(m x m, r x r)

    def workspace_bytes(self, itemsize):
        return (self.col_elements + self.io_elements) * itemsize


def _tiling(rows, length, batch, itemsize, io_rows=0, *, io_always=False):
    """(samples per tile, positions per tile) for a column matrix of ``rows`` x ``length``
    per sample.

    ``io_rows`` rows of a second workspace (gathered input or output rows) come with every
    column of a tile of several samples, and of every tile with ``io_always``; the two
    together stay within WORKSPACE_BYTES. Whole samples share a tile when a sample has fewer
    than TARGET_COLUMNS positions and its columns fit TILE_BYTES, or when it has fewer than
    MIN_COLUMNS positions; such a tile is about TILE_BYTES, but at least MIN_COLUMNS columns
    while the workspace bound allows (GEMMs with a small N run far below peak, and every GEMM
    call packs the whole weight again: dcgan_g2 float64, 64 columns 26 ms, 256 columns 22 ms).
    A larger sample is cut into tiles of positions by the same two rules.
    """
    length = max(length, 1)
    budget = min(TILE_BYTES, WORKSPACE_BYTES)
    column = max(rows * itemsize, 1)                      # the column tile, per column
    both = max((rows + io_rows) * itemsize, 1)            # with the gathered rows
    per_sample = column * length
    if length < TARGET_COLUMNS and (per_sample <= budget or length < MIN_COLUMNS):
        samples = min(batch, -(-TARGET_COLUMNS // length),
                      max(budget // per_sample, -(-MIN_COLUMNS // length)),
                      WORKSPACE_BYTES // (both * length))
        if samples > 1 or (samples == 1 and per_sample <= budget):
            return samples, length
    single = both if io_always else column                # one sample: gathered rows or not
    tile = max(budget // single, min(MIN_COLUMNS, WORKSPACE_BYTES // single))
    return 1, max(1, min(length, tile))


#: Stride-phase algorithms enumerate every phase (prod(stride) of them) in Python; beyond
#: this many they are not used (col2im has no such cost).
MAX_PHASES = 4096


def _few_phases(problem):
    # math.prod: exact. numpy.prod wraps around in int64, and strides up to the 2**62 index
    # limit do: (2**40, 2**40) gave 0 "phases", so the depthwise path then tried to
    # enumerate 2**80 of them (until memory ran out)
    return math.prod(problem.geometry.stride) <= MAX_PHASES


def _depthwise_fits(problem, itemsize):
    """The depthwise kernel's buffer (one per thread) fits the workspace bound."""
    return _depthwise_buffers(problem)["buffer_elements"] * itemsize <= WORKSPACE_BYTES


@functools.lru_cache(maxsize=256)
def _depthwise_buffers(problem):
    """The depthwise kernel's padded input plane, phase pairs and per-thread buffer.

    One zero-padded copy of an input plane serves every phase: positions ``-sub_pad ..
    sub_out - 1 - sub_pad + sub_kernel - 1`` of each phase, per dimension (``halo`` before,
    ``padded`` in all). Each thread holds that copy and one phase plane in its row layout
    (two when phases are paired: :func:`phase_partners`): ``buffer_elements``.
    """
    g = problem.geometry
    phases, table = _phase_table(problem)
    if not phases:
        return dict(buffer_elements=0)
    low = np.minimum((-table["sub_pad"]).min(axis=0), 0)
    high = (table["sub_out"] - 1 - table["sub_pad"] + table["sub_kernel"] - 1).max(axis=0)
    high = np.maximum(high, np.array(g.output_size) - 1)
    halo = (-low).astype(np.intp)
    padded = (high - low + 1).astype(np.intp)
    strides = np.append(np.cumprod(padded[:0:-1])[::-1], 1)  # row-major, of the padded plane
    span = int((1 + ((table["sub_out"] - 1) * strides).sum(axis=1)).max())
    partner = phase_partners(table["first"], table["sub_out"], g.stride)
    planes = 2 if (partner >= 0).any() else 1
    for array in (halo, padded, partner):
        array.flags.writeable = False
    return dict(halo=halo, padded=padded, partner=partner,
                buffer_elements=math.prod(padded.tolist()) + planes * max(span, 1))


def _is_depthwise(problem):
    """Each group has one input channel of the transposed convolution (= c_out here)."""
    return problem.groups == problem.c_out and problem.c_in // problem.groups <= 4


def _choose_backward_input(problem, itemsize):
    g = problem.geometry
    forced = getattr(_forced, "name", None)
    phases_ok = all(d == 1 for d in g.dilation) and _few_phases(problem)
    if forced in ALGORITHMS["backward_input"]:
        if forced == "phases" and not phases_ok:
            return "col2im"  # stride phases need dilation 1
        if forced == "depthwise" and not (phases_ok and _is_depthwise(problem)
                                          and _depthwise_fits(problem, itemsize)):
            return "col2im"
        if forced == "subpixel" and _subpixel_layout(problem, limit=None,
                                                     itemsize=itemsize) is None:
            return "col2im"
        if forced == "winograd" and not (
                _winograd_usable(_transpose_as_forward(problem), itemsize)
                or _winograd_phases(problem, itemsize) is not None):
            return "col2im"
        return forced
    as_forward = _transpose_as_forward(problem)
    if (_winograd_usable(as_forward, itemsize) and g.kernel_size == (3, 3)
            and _winograd_pays(as_forward, itemsize)):
        return "winograd"
    phases = (_winograd_phases(problem, itemsize)
              if _phase_tiles_bound(problem) >= WINOGRAD_PHASE_MIN_TILES
              and min(problem.c_in, problem.c_out) // problem.groups
              >= WINOGRAD_PHASE_MIN_CHANNELS else None)
    if phases and all(_winograd_pays(sub, itemsize)
                      and sub.batch * _winograd_tiles(sub, WINOGRAD_OUTPUT_TILE)
                      >= WINOGRAD_PHASE_MIN_TILES for _, sub, _ in phases):
        return "winograd"
    if phases_ok and _is_depthwise(problem) and _depthwise_fits(problem, itemsize):
        return "depthwise"
    if (problem.c_in // problem.groups >= SUBPIXEL_MIN_CHANNELS
            and g.kernel_numel >= SUBPIXEL_MIN_KERNEL):
        if _subpixel_layout(problem, itemsize=itemsize) is not None:
            return "subpixel"
    # Measured on the benchmark suite (float32, 1 and 2 threads): col2im is faster on every
    # case today; "phases" stays selectable (and tested) while its weight gather and im2col
    # are being optimised.
    return "col2im"


def plan(pass_name, problem, itemsize):
    """The :class:`Plan` for one pass of ``problem`` (a :class:`fastdeconv._problem.ConvProblem`)."""
    batch = max(problem.batch, 1)
    if pass_name in ("forward", "backward_weight"):
        choice = _choose_forward_or_weight(pass_name, problem, itemsize)
        if choice == "winograd":
            return _winograd_plan(problem, itemsize)
        if choice == "space_to_depth":
            return _space_to_depth_plan(problem, itemsize)
    choice = _choose_backward_input(problem, itemsize) if pass_name == "backward_input" else None
    if choice == "winograd":
        as_forward = _transpose_as_forward(problem)
        if as_forward is not None:
            return _winograd_plan(as_forward, itemsize)
        plans = [p for _, _, p in _winograd_phases(problem, itemsize)]
        return max(plans, key=lambda p: p.workspace_bytes(itemsize))
    if choice == "depthwise":
        return Plan("depthwise", 1, 0, _depthwise_buffers(problem)["buffer_elements"], 0)
    if choice == "subpixel":
        layout = _subpixel_layout(problem, limit=None, itemsize=itemsize)
        inner = plan("forward", layout["problem"], itemsize)
        return Plan("subpixel", layout["samples_per_chunk"], inner.tile, inner.col_elements,
                    inner.io_elements + layout["z_elements_per_block"])
    if choice == "phases":
        phases, _ = _phase_table(problem)
        k_max = max((int(np.prod(p["sub_kernel"])) for p in phases), default=1)
        l_max = max((int(np.prod(p["sub_out"])) for p in phases), default=1)
        rows = problem.c_out * k_max  # the transposed conv's input channels x sub-kernel
        nb, tile = _tiling(rows, l_max, batch, itemsize, io_rows=problem.c_in, io_always=True)
        return Plan("phases", nb, tile, rows * nb * tile, problem.c_in * nb * tile)
    return _im2col_plan(pass_name, problem, itemsize)


def _im2col_plan(pass_name, problem, itemsize):
    """The plan of the im2col (forward, weight gradient) or col2im (backward_input) pass."""
    g = problem.geometry
    batch = max(problem.batch, 1)
    algorithm = "col2im" if pass_name == "backward_input" else "im2col"
    rows = problem.c_in * g.kernel_numel
    nb, tile = _tiling(rows, g.output_numel, batch, itemsize, io_rows=problem.c_out)
    direct = g.is_pointwise and nb == 1  # the input (or output) itself is the column matrix
    col = 0 if direct else rows * nb * tile
    io = problem.c_out * nb * tile if nb > 1 else 0
    return Plan(algorithm, nb, tile, col, io)


def _check_blas_dims(problem, the_plan):
    g = problem.geometry
    columns = the_plan.samples_per_tile * the_plan.tile
    dims = {
        "output channels per group": problem.c_out // problem.groups,
        "input channels per group x kernel size": problem.c_in // problem.groups * g.kernel_numel,
        "output positions per sample": g.output_numel,
        "input positions per sample": g.input_numel,
        "columns per tile": columns,
    }
    for what, value in dims.items():
        if value > BLAS_INT_MAX:
            raise ValueError(
                f"this convolution is too large for 32-bit BLAS: {what} = {value} > "
                f"{BLAS_INT_MAX}"
            )


def _check_kernel_dims(problem):
    if problem.geometry.ndim > _runtime.MAX_SPATIAL_DIMS:
        raise ValueError(
            f"the kernels support at most {_runtime.MAX_SPATIAL_DIMS} spatial dimensions, "
            f"got a weight of shape {problem.weight_shape}"
        )


def _threads():
    threads = num_threads()
    # Without control of BLAS's own threads, GEMM pieces run one after another.
    return threads, threads if _blas_threads.CONTROLLED else 1


def _workspaces(the_plan, dtype):
    col = allocate((max(the_plan.col_elements, 1),), dtype, "workspace")
    io = allocate((max(the_plan.io_elements, 1),), dtype, "workspace")
    return col, io


def _run_generic(driver, first, second, out, problem, the_plan):
    _check_blas_dims(problem, the_plan)
    col, io = _workspaces(the_plan, out.dtype)
    threads, gemm_threads = _threads()
    with _blas_threads.single_threaded_blas():  # GEMM pieces run on OpenMP threads instead
        driver(
            first.reshape(-1), second.reshape(-1), out.reshape(-1),
            problem.batch, problem.c_in, problem.c_out, problem.groups,
            *problem.geometry.as_kernel_args(),
            col, io, the_plan.samples_per_tile, the_plan.tile, problem.geometry.is_pointwise,
            threads, gemm_threads,
        )
    return out


def forward(x, weight, problem):
    """y = conv(x) on an input padded for every mode but zeros (which the kernel handles)."""
    _check_kernel_dims(problem)
    y = allocate(problem.forward_output_shape, x.dtype, "output")
    if problem.batch == 0:
        return y
    the_plan = plan("forward", problem, x.dtype.itemsize)
    if the_plan.algorithm == "winograd":
        return _run_winograd(x, weight, y, problem, the_plan)
    if the_plan.algorithm == "space_to_depth":
        return _run_space_to_depth(x, weight, y, problem, the_plan)
    return _run_generic(_im2col_kernels.conv_forward, x, weight, y, problem, the_plan)


def backward_input(grad_y, weight, problem):
    """grad_x = conv^T(grad_y): the transposed convolution."""
    _check_kernel_dims(problem)
    if problem.batch == 0:
        return allocate(problem.forward_input_shape, grad_y.dtype, "output", zero=True)
    the_plan = plan("backward_input", problem, grad_y.dtype.itemsize)
    as_forward = _transpose_as_forward(problem)
    if the_plan.algorithm == "winograd" and as_forward is not None:
        # a forward convolution with the flipped kernel
        grad_x = allocate(as_forward.forward_output_shape, grad_y.dtype, "output")
        return _run_winograd(grad_y, _transpose_weight(weight, problem.groups), grad_x,
                             as_forward, the_plan)
    grad_x = allocate(problem.forward_input_shape, grad_y.dtype, "output", zero=True)
    if the_plan.algorithm == "winograd":
        return _run_winograd_phases(grad_y, weight, grad_x, problem, the_plan)
    if the_plan.algorithm == "col2im":
        return _run_generic(_im2col_kernels.conv_backward_input, grad_y, weight, grad_x, problem,
                            the_plan)
    if the_plan.algorithm == "subpixel":
        return _run_subpixel(grad_y, weight, grad_x, problem)
    return _run_phases(grad_y, weight, grad_x, problem, the_plan)


#: The sub-pixel path is chosen when its intermediate (all phases on a common grid) has at
#: most this much more than the output's positions (border phases make it larger) and the
#: groups have at least SUBPIXEL_MIN_CHANNELS output channels (else its GEMM is too thin).
#: Measured on the benchmark suite (float32 and float64): it wins where kernels are large,
#: whose column tiles get narrow in col2im (fcn32s, 64x64 kernel: col2im 31 ms, sub-pixel 16
#: ms float32, 1 thread, measured alone at d38bc93), and ties or loses on small kernels (unet_up,
#: unet3d_up: 1.0-1.3x slower), hence SUBPIXEL_MIN_KERNEL taps.
SUBPIXEL_MAX_OVERHEAD = 1.15
SUBPIXEL_MIN_CHANNELS = 8
SUBPIXEL_MIN_KERNEL = 64
#: The intermediate is computed a block of output channels (and samples) at a time, about
#: this many bytes, so that the depth-to-space step reads it from cache, not from memory, and
#: no intermediate as large as the output is allocated: fcn32s (float32, 1 thread, measured
#: alone) 21.4 ms with its whole 24.8 MB intermediate at once, 16.0 ms in 2 MiB blocks. A
#: block is larger when SUBPIXEL_MIN_ROWS asks for it or one channel of one sample is larger,
#: but at most WORKSPACE_BYTES (else col2im, whose workspace is tiled).
SUBPIXEL_BLOCK_BYTES = 2 * 2**20
#: ... but with at least this many GEMM rows (channels x phases) a block, when the workspace
#: allows: audio_1d (8 phases, 4097 positions), forced to sub-pixel, took 329 ms float32 in
#: blocks of 1 channel x 8 samples (8 rows, samples first: cb721fc); channels first, 124, 94
#: and 89 ms with 128, 256 and 512 rows (col2im, its default, 87 ms); fcn32s (1024 phases) is
#: not affected.
SUBPIXEL_MIN_ROWS = 512


def _subpixel_layout(problem, limit=SUBPIXEL_MAX_OVERHEAD, itemsize=8):
    """Shapes of the sub-pixel decomposition, or None when it does not apply (or pay).

    The intermediate is computed per group and per block of ``channels_per_block`` output
    channels of ``samples_per_chunk`` samples: ``problem`` is the forward convolution of one
    such block (the group's input channels in, ``channels_per_block * prod(stride)`` out).
    A read-only mapping, cached per problem (the choice, the plan and the run all ask).
    """
    return _subpixel_layout_cached(problem, limit, itemsize, WORKSPACE_BYTES,
                                   SUBPIXEL_BLOCK_BYTES, SUBPIXEL_MIN_ROWS, MAX_PHASES)


@functools.lru_cache(maxsize=64)
def _subpixel_layout_cached(problem, limit, itemsize, *budgets):
    """:func:`_subpixel_layout`; the ``budgets`` it depends on are part of the key (tests
    change them)."""
    g = problem.geometry
    if any(d != 1 for d in g.dilation) or any(k % s for k, s in zip(g.kernel_size, g.stride)):
        return None
    if not _few_phases(problem):
        return None
    sub_kernel = tuple(k // s for k, s in zip(g.kernel_size, g.stride))
    u_min, u_max = [], []
    for dim in range(g.ndim):
        q_lo, q_hi = g.phase_range(dim)
        u_min.append(int(q_lo.min()))
        u_max.append(int(q_hi.max()))
    common = tuple(hi - lo for lo, hi in zip(u_min, u_max))
    n_phases = math.prod(g.stride)
    if min(common) < 1:
        return None
    overhead = n_phases * int(np.prod(common)) / g.input_numel
    if limit is not None and overhead > limit:
        return None
    per_channel = n_phases * math.prod(common)  # of one sample
    if per_channel * itemsize > WORKSPACE_BYTES:
        return None
    z_geometry = ConvGeometry(
        input_size=g.output_size, output_size=common, kernel_size=sub_kernel,
        stride=(1,) * g.ndim, dilation=(1,) * g.ndim,
        padding=tuple((m - 1 - lo, 0) for m, lo in zip(sub_kernel, u_min)),
        output_padding=(0,) * g.ndim,
    )
    cout_g = problem.c_in // problem.groups
    budget = max(1, SUBPIXEL_BLOCK_BYTES // (itemsize * per_channel))
    # channels first: they are the GEMM's rows (channels x phases), at least
    # SUBPIXEL_MIN_ROWS of them while the workspace allows
    wanted = max(budget, -(-SUBPIXEL_MIN_ROWS // n_phases))
    block = max(1, min(cout_g, wanted, WORKSPACE_BYTES // (itemsize * per_channel)))
    chunk = max(1, min(problem.batch, budget // block))
    z_problem = ConvProblem(z_geometry, chunk, problem.c_out // problem.groups,
                            block * n_phases, 1)
    return types.MappingProxyType(dict(
        problem=z_problem, u_min=tuple(u_min), common=common, samples_per_chunk=chunk,
        channels_per_block=block, z_elements_per_block=chunk * block * per_channel))


def subpixel_weight(weight, stride, groups):
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
    out = allocate((groups * cout_g * math.prod(stride), cin_g) + sub, weight.dtype, "weight")
    _phase_kernels.scatter_kernel_taps(
        np.ascontiguousarray(weight).reshape(-1), out.reshape(-1), groups, cin_g, cout_g,
        _subpixel_tap_offsets(kernel, tuple(stride), cin_g), math.prod(sub), num_threads())
    return out


@functools.lru_cache(maxsize=64)
def _subpixel_tap_offsets(kernel, stride, cin_g):
    """Where each kernel tap goes in a row of :func:`subpixel_weight` (input channel 0).

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


def _subpixel_phase_table(problem, u_min):
    """(start in the common grid, count, first output position) per phase and dimension.

    Phases are numbered row-major over the per-dimension residues ``rho``.
    """
    g = problem.geometry
    columns = []
    for dim, (s, before, lo) in enumerate(zip(g.stride, g.pad_before, u_min)):
        q_lo, q_hi = g.phase_range(dim)
        columns.append((q_lo - lo, np.maximum(0, q_hi - q_lo), q_lo * s + np.arange(s) - before))
    grids = [np.meshgrid(*[col[i] for col in columns], indexing="ij") for i in range(3)]
    return [np.ascontiguousarray(np.stack([grid.reshape(-1) for grid in grid_set], axis=1),
                                 dtype=np.intp) for grid_set in grids]


def _run_subpixel(x, weight, y, problem):
    layout = _subpixel_layout(problem, limit=None, itemsize=x.dtype.itemsize)
    g = problem.geometry
    z_weight = subpixel_weight(weight, g.stride, problem.groups)
    start, count, first = _subpixel_phase_table(problem, layout["u_min"])
    chunk, block = layout["samples_per_chunk"], layout["channels_per_block"]
    n_phases = math.prod(g.stride)
    cin_g, cout_g = problem.c_out // problem.groups, problem.c_in // problem.groups
    tables = (np.array(layout["common"], dtype=np.intp), np.array(g.input_size, dtype=np.intp),
              np.array(g.stride, dtype=np.intp), start, count, first)
    for n0 in range(0, problem.batch, chunk):
        n1 = min(n0 + chunk, problem.batch)
        for group in range(problem.groups):
            part = x[n0:n1] if problem.groups == 1 else np.ascontiguousarray(
                x[n0:n1, group * cin_g:(group + 1) * cin_g])
            for j0 in range(0, cout_g, block):
                c0, c1 = group * cout_g + j0, group * cout_g + min(j0 + block, cout_g)
                z = forward(part, z_weight[c0 * n_phases:c1 * n_phases],
                            replace(layout["problem"], batch=n1 - n0,
                                    c_out=(c1 - c0) * n_phases))
                _phase_kernels.depth_to_space_phases(
                    z.reshape(-1), y[n0:n1].reshape(-1), n1 - n0, c1 - c0, problem.c_in, c0,
                    *tables, num_threads(),
                )
    return y


@functools.lru_cache(maxsize=256)
def _phase_table(problem):
    """The live stride phases of ``problem`` (some output, some taps) and their table as
    read-only ``(n_phases, ndim)`` arrays; cached per problem (the depthwise and phases
    paths and the depthwise buffer size all read it)."""
    phases = [p for p in problem.geometry.transpose_phases()
              if 0 not in p["sub_out"] and 0 not in p["sub_kernel"]]
    if not phases:  # e.g. a 1-tap kernel with stride > output: no output is reached
        return phases, {}
    table = {key: np.array([p[key] for p in phases], dtype=np.intp).reshape(len(phases), -1)
             for key in ("sub_out", "sub_kernel", "sub_pad", "first")}
    for array in table.values():
        array.flags.writeable = False
    return phases, table


def phase_partners(first, sub_out, stride):
    """Pairs of phases whose outputs interleave in the last dimension (its stride is 2).

    ``first`` and ``sub_out`` are the phase table's ``(n_phases, ndim)`` first output
    positions and counts. Returns ``partner`` (intp, one per phase): the phase whose outputs
    sit one position after this phase's in the last dimension (same rows, i.e. the same first
    position and count in every other dimension; as many outputs a row or one fewer), ``-2``
    for that phase itself, ``-1`` for a phase without a partner (every phase when the last
    stride is not 2). The depthwise kernel stores each pair in one interleaving pass.
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


def backward_weight(x, grad_y, problem):
    """grad_w = sum over samples of grad_y @ im2col(x)^T, per group."""
    _check_kernel_dims(problem)
    grad_w = allocate(problem.weight_shape, x.dtype, "weight gradient", zero=True)
    if problem.batch == 0:
        return grad_w
    the_plan = plan("backward_weight", problem, x.dtype.itemsize)
    if the_plan.algorithm == "winograd":
        return _run_winograd_weight(x, grad_y, grad_w, problem, the_plan)
    if the_plan.algorithm == "space_to_depth":
        return _run_space_to_depth_weight(x, grad_y, grad_w, problem, the_plan)
    return _run_generic(_im2col_kernels.conv_backward_weight, x, grad_y, grad_w, problem, the_plan)


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


def _run_phases(x, weight, y, problem, the_plan):
    g = problem.geometry
    phases, table = _phase_table(problem)
    if not phases:
        return y
    weights, offsets = phase_weights(weight, phases, problem.groups)
    if the_plan.algorithm == "depthwise":
        layout = _depthwise_buffers(problem)
        # threads x buffer stays within the workspace bound (planes are independent, so the
        # thread count does not change the result)
        per_thread = max(1, the_plan.col_elements * y.dtype.itemsize)
        _phase_kernels.conv_transpose_depthwise(
            x.reshape(-1), weights, y.reshape(-1), problem.batch, problem.c_out,
            problem.c_in // problem.groups,
            np.array(g.output_size, dtype=np.intp), np.array(g.input_size, dtype=np.intp),
            np.array(g.stride, dtype=np.intp), table["sub_out"], table["sub_kernel"],
            table["sub_pad"], table["first"], offsets, layout["partner"], layout["halo"],
            layout["padded"], max(1, min(num_threads(), WORKSPACE_BYTES // per_thread)),
        )
        return y
    _check_blas_dims(problem, the_plan)
    col, io = _workspaces(the_plan, y.dtype)
    threads, gemm_threads = _threads()
    with _blas_threads.single_threaded_blas():
        _phase_kernels.conv_transpose_phases(
            x.reshape(-1), weights, y.reshape(-1),
            problem.batch, problem.c_out, problem.c_in, problem.groups,
            np.array(g.output_size, dtype=np.intp), np.array(g.input_size, dtype=np.intp),
            np.array(g.stride, dtype=np.intp), table["sub_out"], table["sub_kernel"],
            table["sub_pad"], table["first"], offsets,
            col, io, the_plan.samples_per_tile, the_plan.tile, threads, gemm_threads,
        )
    return y


# ------------------------------------------------------------------------------- winograd
#: Output tile m of Winograd F(m x m, r x r) (see :mod:`fastdeconv._winograd`).
WINOGRAD_OUTPUT_TILE = 4
#: Tiles per pass of the Winograd kernel (the GEMMs' N), when the workspace allows; with
#: fewer than that many per pass (and more tiles in all) Winograd is not used. Measured
#: (float32, 1 thread, warm and cold caches): resnet_3x3 8.3 ms with 64 tiles, 8.6 with 96,
#: 9.0 with 128 (whose V and M, 2.4 MiB, leave the 2 MiB L2), 8.7 with 48; 16 tiles 1.3x
#: slower (narrow GEMMs); 256 tiles of 256 channels 1.2x slower than 64.
WINOGRAD_CHUNK = 64


def _winograd_applies(problem):
    """2-d, 3x3 or 2x2 kernel (the sub-kernels of the stride phases of a transposed
    convolution with kernel 4 and stride 2), stride 1 (any dilation and padding)."""
    g = problem.geometry
    return g.ndim == 2 and g.kernel_size in ((3, 3), (2, 2)) and g.stride == (1, 1)


#: The stride phases of a transposed convolution take Winograd (F(4x4, 2x2) for 2x2
#: sub-kernels, 2.56x fewer multiplications) when each phase also has this many tiles and
#: the groups have at least WINOGRAD_PHASE_MIN_CHANNELS input and output channels: with
#: fewer, the transforms outweigh the GEMMs saved. Measured on 1 thread over batches 1, 4,
#: 16, 8 to 256 channels and 8x8 to 32x32 inputs (kernel 4, stride 2; the docs' performance
#: page): inside the rule 1.01x to 1.77x float32 (one 0.88x: 16 samples of 8x8, 64 channels)
#: and 1.06x to 2.0x float64 (dcgan_g4 21.1 -> 13.9 ms); 16 channels lose up to 0.77x.
WINOGRAD_PHASE_MIN_TILES = 64
WINOGRAD_PHASE_MIN_CHANNELS = 32


def _winograd_tiles(problem, m):
    """Tiles of one sample: per dilation phase, ceil(ceil(out / d) / m) per dimension."""
    count = 1
    for n, d in zip(problem.geometry.output_size, problem.geometry.dilation):
        count *= d * -(-(-(-n // d)) // m)
    return count


def _winograd_plan(problem, itemsize, m=None):
    """The Winograd :class:`Plan`, or None when the workspace cannot hold a useful pass.

    The workspace is the transformed weight U (alpha^2 x C_out x C_in / groups), the
    transformed input tiles V (alpha^2 x C_in x chunk) and the GEMM results M (alpha^2 x
    C_out x chunk); ``col_elements`` counts U and V, ``io_elements`` M. The weight gradient
    uses the same three: the gradient of U, V and the transformed output gradient.
    """
    m = WINOGRAD_OUTPUT_TILE if m is None else m
    alpha2 = (m + problem.geometry.kernel_size[0] - 1) ** 2
    tiles = max(problem.batch, 1) * _winograd_tiles(problem, m)
    u = alpha2 * problem.c_out * (problem.c_in // problem.groups)
    per_tile = alpha2 * (problem.c_in + problem.c_out)
    chunk = min(WINOGRAD_CHUNK, tiles, (WORKSPACE_BYTES // itemsize - u) // per_tile)
    if chunk < min(WINOGRAD_CHUNK, tiles):
        return None
    return Plan("winograd", 1, chunk, u + alpha2 * problem.c_in * chunk,
                alpha2 * problem.c_out * chunk, output_tile=m)


#: Dispatch rule of the forward pass: Winograd when it applies, its workspace fits, the
#: groups have at least WINOGRAD_MIN_CHANNELS input and output channels, there are at least
#: WINOGRAD_MIN_TILES tiles, (output positions / m^2) x min(channels per group) reaches
#: WINOGRAD_MIN_WORK, and the tiles computed (m^2 outputs each) are at most
#: WINOGRAD_MAX_TILE_OVERHEAD times the output positions: with few channels or tiles the
#: transforms cost more than the GEMM FLOPs they save. Per itemsize; measured on 1 thread
#: over 3 to 128 channels, 7x7 to 56x56 outputs and batches 1 and 8 (the docs' performance
#: page has the table): float32 wins from 8 channels and 512, float64 (twice the transform
#: traffic per FLOP) from 16 and 2048.
WINOGRAD_MIN_CHANNELS = {4: 8, 8: 16}
WINOGRAD_MIN_TILES = 16
WINOGRAD_MIN_WORK = {4: 512, 8: 2048}
#: Tiles past the edges of the output (and of every dilation phase, whose sub-images are
#: ceil(out / d) wide) are computed in full. 1.31 for a 7x7 or 14x14 output (measured
#: wins, see the table); a large dilation makes it unbounded (dilation 32 on a 32x32 output:
#: 16, one real output per tile, 4x the multiplications of im2col before the transforms).
WINOGRAD_MAX_TILE_OVERHEAD = 1.5


def _winograd_pays(problem, itemsize):
    """The dispatch rule above, for a forward ``problem`` that Winograd can run."""
    g = problem.geometry
    m = WINOGRAD_OUTPUT_TILE
    channels = min(problem.c_in, problem.c_out) // problem.groups
    tiles = max(problem.batch, 1) * _winograd_tiles(problem, m)
    useful = max(problem.batch, 1) * g.output_numel / (m * m)
    return (channels >= WINOGRAD_MIN_CHANNELS.get(itemsize, 16)
            and tiles >= WINOGRAD_MIN_TILES
            and useful * channels >= WINOGRAD_MIN_WORK.get(itemsize, 2048)
            and tiles <= WINOGRAD_MAX_TILE_OVERHEAD * useful)


def _winograd_usable(problem, itemsize):
    """Winograd applies to the forward ``problem`` (None: no forward form) and fits."""
    return (problem is not None and _winograd_applies(problem)
            and _winograd_plan(problem, itemsize) is not None)


def _transpose_as_forward(problem):
    """A stride-1 transposed convolution as the forward convolution of its input with the
    flipped, channel-swapped kernel (:func:`_transpose_weight`), or None (a stride other
    than 1, or a padding larger than the dilated kernel extent minus one)."""
    g = problem.geometry
    if any(s != 1 for s in g.stride):
        return None
    padding = []
    for n_in, n_out, k, d, before in zip(g.output_size, g.input_size, g.kernel_size, g.dilation,
                                         g.pad_before):
        extent = d * (k - 1)
        if before > extent:
            return None
        padding.append((extent - before, max(0, n_out - n_in + before)))
    geometry = ConvGeometry(
        input_size=g.output_size, output_size=g.input_size, kernel_size=g.kernel_size,
        stride=g.stride, dilation=g.dilation, padding=tuple(padding),
        output_padding=(0,) * g.ndim,
    )
    return ConvProblem(geometry, problem.batch, problem.c_out, problem.c_in, problem.groups)


def _transpose_weight(weight, groups):
    """The forward weight ``(C_out, C_in / groups, *k)`` of a convolution as the weight of the
    forward convolution that computes its transpose: ``(C_in, C_out / groups, *k)``, every
    kernel flipped, channels swapped within each group."""
    c_out, cin_g = weight.shape[:2]
    per_group = weight.reshape((groups, c_out // groups, cin_g) + weight.shape[2:])
    swapped = np.swapaxes(per_group, 1, 2)
    flipped = np.flip(swapped, axis=tuple(range(3, weight.ndim + 1)))
    return np.ascontiguousarray(flipped).reshape(
        (groups * cin_g, c_out // groups) + weight.shape[2:])


def _choose_forward_or_weight(pass_name, problem, itemsize):
    """The algorithm of the ``"forward"`` or ``"backward_weight"`` pass: the forced one where
    it applies, else Winograd, space-to-depth or im2col by their rules."""
    forced = getattr(_forced, "name", None)
    square3 = problem.geometry.kernel_size == (3, 3)
    usable = _winograd_usable(problem, itemsize)
    if pass_name == "backward_weight":  # its adjoint transforms: 3x3 kernels only
        usable = usable and square3
    s2d = _space_to_depth_usable(problem, itemsize)
    if forced in ALGORITHMS[pass_name]:
        if (forced == "winograd" and not usable) or (forced == "space_to_depth" and not s2d):
            return "im2col"
        return forced
    # measured for 3x3 kernels; a 2x2 one is only forced (or a phase of a transposed one)
    if usable and square3 and _winograd_pays_for(pass_name, problem, itemsize):
        return "winograd"
    if s2d and _space_to_depth_pays(problem, pass_name, itemsize):
        return "space_to_depth"
    return "im2col"


def _winograd_pass(x, weight, y, problem, the_plan, col, io, placement=None):
    """One Winograd convolution of ``x`` with the forward ``weight`` into ``y``.

    ``placement`` is ``(y_size, first, step)`` when the output grid is every ``step``-th
    position of ``y`` from ``first`` (a stride phase). Returns the number of pieces with a
    NaN or infinite output (see ``conv_forward_winograd``).
    """
    u, v = _winograd_transformed_weight(weight, problem, the_plan, col)
    return _winograd_transformed_pass(x, u, y, problem, the_plan, v, io, placement)


def _winograd_transformed_weight(weight, problem, the_plan, col):
    """U = G w G^T written to the front of ``col``; returns U and the rest of ``col`` (V)."""
    mats = _winograd.matrices(the_plan.output_tile, problem.geometry.kernel_size[0])
    cin_g = problem.c_in // problem.groups
    u_elements = mats.alpha ** 2 * problem.c_out * cin_g
    u, v = col[:u_elements], col[u_elements:]
    _winograd_kernels.winograd_weight(weight.reshape(-1), u, problem.c_out, cin_g, mats.G,
                                      num_threads())
    return u, v


def _winograd_transformed_pass(x, u, y, problem, the_plan, v, io, placement=None):
    """:func:`_winograd_pass` with the transformed weight ``u`` already computed."""
    g = problem.geometry
    mats = _winograd.matrices(the_plan.output_tile, g.kernel_size[0])
    y_size, first, step = placement or (g.output_size, (0, 0), (1, 1))
    threads, gemm_threads = _threads()
    with _blas_threads.single_threaded_blas():  # GEMMs run on OpenMP threads instead
        return _winograd_kernels.conv_forward_winograd(
            x.reshape(-1), u, y.reshape(-1), problem.batch, problem.c_in, problem.c_out,
            problem.groups, *(np.array(sizes, dtype=np.intp) for sizes in (
                g.input_size, g.output_size, g.dilation, g.pad_before, y_size, first, step)),
            mats.AT.astype(y.dtype), mats.BT.astype(y.dtype), v, io, the_plan.tile,
            threads, gemm_threads,
        )


def _run_winograd(x, weight, y, problem, the_plan):
    _check_blas_dims(problem, the_plan)
    col, io = _workspaces(the_plan, y.dtype)
    nonfinite = _winograd_pass(x, weight, y, problem, the_plan, col, io)
    del col, io  # the fallback allocates its own workspace: one at a time
    if nonfinite:
        # NaN or inf: recompute directly, so that they reach exactly the outputs whose sums
        # contain them (the transforms would spread them over whole tiles)
        return _run_generic(_im2col_kernels.conv_forward, x, weight, y, problem,
                            _im2col_plan("forward", problem, y.dtype.itemsize))
    return y


#: Dispatch rule of the weight gradient: Winograd when it applies (3x3), its workspace fits,
#: the groups have at least WINOGRAD_WGRAD_MIN_CHANNELS input and output channels, there are
#: at least WINOGRAD_WGRAD_MIN_TILES tiles (the GEMMs' reduction) and the tile overhead is
#: at most WINOGRAD_MAX_TILE_OVERHEAD, float32 and float64 alike. Measured on 1 thread over
#: 4 to 64 channels, 7x7 to 56x56 outputs and batches 1 and 8 (the docs' performance page):
#: every case inside wins (1.09x to 3.6x), 4 tiles lose (0.5x to 0.9x), 16 tiles tie or
#: lose with up to 16 channels; 4 channels win at most 1.3x.
WINOGRAD_WGRAD_MIN_CHANNELS = 8
WINOGRAD_WGRAD_MIN_TILES = 32


def _winograd_pays_weight(problem, itemsize):
    """The dispatch rule above, for a ``problem`` whose weight gradient Winograd can run."""
    m = WINOGRAD_OUTPUT_TILE
    channels = min(problem.c_in, problem.c_out) // problem.groups
    tiles = max(problem.batch, 1) * _winograd_tiles(problem, m)
    useful = max(problem.batch, 1) * problem.geometry.output_numel / (m * m)
    return (channels >= WINOGRAD_WGRAD_MIN_CHANNELS
            and tiles >= WINOGRAD_WGRAD_MIN_TILES
            and tiles <= WINOGRAD_MAX_TILE_OVERHEAD * useful)


def _winograd_pays_for(pass_name, problem, itemsize):
    """The Winograd rule of the ``"forward"`` or ``"backward_weight"`` pass."""
    rule = _winograd_pays if pass_name == "forward" else _winograd_pays_weight
    return rule(problem, itemsize)


def _run_winograd_weight(x, grad_y, grad_w, problem, the_plan):
    """grad_w by the adjoint of the forward Winograd pass: the gradient of U = G g G^T is
    dU[e] = sum over tiles of (A gy A^T)[e] @ V[e]^T (36 GEMMs per group, over tiles), then
    grad_w = G^T dU G (float64). NaN or inf: recomputed by im2col (see _run_winograd)."""
    _check_blas_dims(problem, the_plan)
    col, io = _workspaces(the_plan, grad_w.dtype)
    du, v = _winograd_gradient_of_u(x, grad_y, problem, the_plan, col, io)
    nonfinite = _winograd_weight_from_du(du, grad_w, problem, the_plan)
    del col, io, du, v  # the fallback allocates its own workspace: one at a time
    if nonfinite:  # recompute directly (see _run_winograd)
        grad_w[...] = 0
        return _run_generic(_im2col_kernels.conv_backward_weight, x, grad_y, grad_w, problem,
                            _im2col_plan("backward_weight", problem, grad_w.dtype.itemsize))
    return grad_w


def _winograd_gradient_of_u(x, grad_y, problem, the_plan, col, io, accumulate=False):
    """dU (the front of ``col``; ``+=`` with ``accumulate``) and the rest of ``col`` (V)."""
    g = problem.geometry
    mats = _winograd.matrices(the_plan.output_tile, g.kernel_size[0])
    u_elements = mats.alpha ** 2 * problem.c_out * (problem.c_in // problem.groups)
    du, v = col[:u_elements], col[u_elements:]
    threads, gemm_threads = _threads()
    with _blas_threads.single_threaded_blas():  # GEMMs run on OpenMP threads instead
        _winograd_kernels.conv_backward_weight_winograd(
            x.reshape(-1), grad_y.reshape(-1), du, problem.batch, problem.c_in,
            problem.c_out, problem.groups, *(np.array(sizes, dtype=np.intp) for sizes in (
                g.input_size, g.output_size, g.dilation, g.pad_before)),
            np.ascontiguousarray(mats.AT.T, dtype=du.dtype), mats.BT.astype(du.dtype),
            v, io, the_plan.tile, threads, gemm_threads, accumulate,
        )
    return du, v


def _winograd_weight_from_du(du, grad_w, problem, the_plan):
    """grad_w = G^T dU G (float64 inside); returns the count of non-finite blocks."""
    mats = _winograd.matrices(the_plan.output_tile, problem.geometry.kernel_size[0])
    return _winograd_kernels.winograd_weight_grad(
        du, grad_w.reshape(-1), problem.c_out, problem.c_in // problem.groups,
        np.ascontiguousarray(mats.G.T), num_threads())


def _phase_sub_kernel(problem):
    """r when every stride phase has an r x r sub-kernel (kernel = r x stride, r = 2 or 3,
    2-d, dilation 1, stride > 1), else None: arithmetic only, no phase is enumerated."""
    g = problem.geometry
    if g.ndim != 2 or all(s == 1 for s in g.stride) or any(d != 1 for d in g.dilation):
        return None
    ratios = {k // s if k % s == 0 else None for k, s in zip(g.kernel_size, g.stride)}
    return ratios.pop() if len(ratios) == 1 and ratios <= {2, 3} else None


def _phase_tiles_bound(problem):
    """An upper bound of the Winograd tiles of the largest stride phase (batch included):
    a phase has at most ceil(input / stride) positions per dimension of the transposed
    convolution's output. Enumerating the phases costs milliseconds when there are many
    (fcn32s: 1024), so the dispatcher checks this first."""
    if _phase_sub_kernel(problem) is None:
        return 0
    g = problem.geometry
    tiles = max(problem.batch, 1)
    for n, s in zip(g.input_size, g.stride):
        tiles *= -(-(-(-n // s)) // WINOGRAD_OUTPUT_TILE)
    return tiles


def _winograd_phases(problem, itemsize):
    """The stride phases of a transposed convolution as (phase, forward problem, plan), when
    every phase has the same square r x r sub-kernel (r = 2 or 3; e.g. kernel 4, stride 2),
    dilation 1, 2-d, and each Winograd plan fits; else None."""
    if _phase_sub_kernel(problem) is None or not _few_phases(problem):
        return None
    return _winograd_phases_cached(problem, itemsize, WORKSPACE_BYTES, WINOGRAD_CHUNK,
                                   WINOGRAD_OUTPUT_TILE)


@functools.lru_cache(maxsize=64)
def _winograd_phases_cached(problem, itemsize, *budgets):
    """:func:`_winograd_phases`, cached per problem (a training loop repeats its shapes); the
    ``budgets`` the plans depend on are part of the key (tests change them)."""
    g = problem.geometry
    phases = [p for p in g.transpose_phases() if 0 not in p["sub_out"]]
    kernels = {p["sub_kernel"] for p in phases}
    if len(kernels) != 1 or next(iter(kernels)) not in ((2, 2), (3, 3)):
        return None
    result = []
    for phase in phases:
        geometry = ConvGeometry(
            input_size=g.output_size, output_size=phase["sub_out"],
            kernel_size=phase["sub_kernel"],
            stride=(1, 1), dilation=(1, 1), padding=tuple((p, 0) for p in phase["sub_pad"]),
            output_padding=(0, 0),
        )
        sub = ConvProblem(geometry, problem.batch, problem.c_out, problem.c_in, problem.groups)
        sub_plan = _winograd_plan(sub, itemsize)
        if sub_plan is None:
            return None
        result.append((phase, sub, sub_plan))
    return result


def _run_winograd_phases(x, weight, y, problem, the_plan):
    """conv_transpose by stride phases, each a Winograd convolution written to its positions."""
    phases = _winograd_phases(problem, y.dtype.itemsize)
    weights, offsets = phase_weights(weight, [p for p, _, _ in phases], problem.groups)
    col, io = _workspaces(the_plan, y.dtype)
    nonfinite = 0
    for (phase, sub, sub_plan), offset in zip(phases, offsets):
        _check_blas_dims(sub, sub_plan)
        size = int(np.prod(sub.weight_shape))
        sub_weight = weights[offset:offset + size].reshape(sub.weight_shape)
        nonfinite += _winograd_pass(x, sub_weight, y, sub, sub_plan, col, io,
                                    (problem.geometry.input_size, phase["first"],
                                     problem.geometry.stride))
    del col, io  # the fallback allocates its own workspace: one at a time
    if nonfinite:  # recompute directly (see _run_winograd)
        y[...] = 0
        return _run_generic(_im2col_kernels.conv_backward_input, x, weight, y, problem,
                            _im2col_plan("backward_input", problem, y.dtype.itemsize))
    return y


# ------------------------------------------------------------------------ space to depth
#: The space-to-depth rearrangement of a part of the batch is at most this large (a whole
#: sample larger than this: not used); with the Winograd workspace (WORKSPACE_BYTES) the
#: extra memory stays within 32 MiB.
SPACE_TO_DEPTH_BYTES = 16 * 2**20


@functools.lru_cache(maxsize=64)
def _space_to_depth_problem(problem):
    """A strided 2-d convolution whose kernel is r x stride (r = 2 or 3, dilation 1) as the
    stride-1 r x r convolution of its space-to-depth input, or None.

    With ``ky = sy * a + ry``, input row ``sy * o + ky - pad = sy * (o + a) + ry - pad``: tap
    ``(a, b)`` of phase ``(ry, rx)`` reads position ``(o + a, o' + b)`` of the plane
    ``X[ry, rx][i, j] = x[sy * i + ry - pad_top, sx * j + rx - pad_left]`` (zero outside x),
    so the convolution is a stride-1, unpadded r x r one over ``C_in * sy * sx`` channels
    (:func:`_space_to_depth_weight` rearranges the kernel the same way) of planes of
    ``(out + r - 1)`` positions per dimension: no zero work, Winograd F(4x4, r x r) applies.
    Cached: the dispatcher and the runners ask for it several times per call.
    """
    r = _phase_sub_kernel(problem)
    if r is None or not _few_phases(problem):
        return None
    g = problem.geometry
    geometry = ConvGeometry(
        input_size=tuple(n + r - 1 for n in g.output_size), output_size=g.output_size,
        kernel_size=(r, r), stride=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)),
        output_padding=(0, 0),
    )
    return ConvProblem(geometry, problem.batch, problem.c_in * math.prod(g.stride),
                       problem.c_out, problem.groups)


def _space_to_depth_samples(problem, s2d, itemsize):
    """Samples per part of the batch whose rearranged input fits SPACE_TO_DEPTH_BYTES (0:
    one sample does not)."""
    per_sample = s2d.c_in * s2d.geometry.input_numel * itemsize
    return min(max(problem.batch, 1), SPACE_TO_DEPTH_BYTES // per_sample)


def _space_to_depth_plan(problem, itemsize):
    """The Winograd plan of the rearranged problem, with the rearranged part of the batch
    (``samples_per_tile`` samples) added to ``io_elements``; None if either does not fit."""
    s2d = _space_to_depth_problem(problem)
    if s2d is None:
        return None
    samples = _space_to_depth_samples(problem, s2d, itemsize)
    inner = _winograd_plan(s2d, itemsize) if samples else None
    if inner is None:
        return None
    part = samples * s2d.c_in * s2d.geometry.input_numel
    return Plan("space_to_depth", samples, inner.tile, inner.col_elements,
                inner.io_elements + part, output_tile=inner.output_tile)


def _space_to_depth_usable(problem, itemsize):
    return _space_to_depth_plan(problem, itemsize) is not None


def _space_to_depth_pays(problem, pass_name, itemsize):
    """Dispatch rule: the Winograd rules of the rearranged problem."""
    return _winograd_pays_for(pass_name, _space_to_depth_problem(problem), itemsize)


def _space_to_depth_weight(weight, stride):
    """``(C_out, C_in / groups, sy * r, sx * r)`` -> ``(C_out, C_in / groups * sy * sx, r, r)``:
    tap ``(sy * a + ry, sx * b + rx)`` of input channel c becomes tap ``(a, b)`` of channel
    ``(c * sy + ry) * sx + rx``."""
    c_out, cin_g, ky, kx = weight.shape
    sy, sx = stride
    blocks = weight.reshape(c_out, cin_g, ky // sy, sy, kx // sx, sx)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 5, 2, 4)).reshape(
        c_out, cin_g * sy * sx, ky // sy, kx // sx)


def _space_to_depth_parts(x, problem, s2d, the_plan, buffer):
    """Yield (first sample, samples, rearranged input) for each part of the batch."""
    g = problem.geometry
    sy, sx = g.stride
    size = s2d.geometry.input_size
    per_sample = s2d.c_in * s2d.geometry.input_numel
    for n0 in range(0, problem.batch, the_plan.samples_per_tile):
        n = min(the_plan.samples_per_tile, problem.batch - n0)
        part = buffer[:n * per_sample]
        _phase_kernels.space_to_depth_2d(
            x[n0:n0 + n].reshape(-1), part, n * problem.c_in, *g.input_size, sy, sx,
            *g.pad_before, *size, num_threads())
        yield n0, n, part.reshape((n, s2d.c_in) + size)


def _space_to_depth_setup(problem, the_plan, dtype):
    """The rearranged problem and its Winograd plan, and the first workspace of a
    space_to_depth pass (U or dU, then V): (problem, plan, col)."""
    s2d = _space_to_depth_problem(problem)
    part = the_plan.samples_per_tile * s2d.c_in * s2d.geometry.input_numel
    inner = replace(the_plan, algorithm="winograd", samples_per_tile=1,
                    io_elements=the_plan.io_elements - part)
    _check_blas_dims(s2d, inner)
    return s2d, inner, allocate((max(inner.col_elements, 1),), dtype, "workspace")


def _space_to_depth_io(the_plan, inner, dtype):
    """The second workspace: M (the GEMM results) and the buffer of a rearranged part."""
    io = allocate((max(the_plan.io_elements, 1),), dtype, "workspace")
    return io[:inner.io_elements], io[inner.io_elements:]


def _run_space_to_depth(x, weight, y, problem, the_plan):
    """Forward conv as the Winograd convolution of the space-to-depth input, part by part
    of the batch (one transformed weight). NaN or inf: recomputed by im2col."""
    s2d, inner, col = _space_to_depth_setup(problem, the_plan, y.dtype)
    # the rearranged weight is a temporary of the transform, before the second workspace
    u, v = _winograd_transformed_weight(_space_to_depth_weight(weight, problem.geometry.stride),
                                        s2d, inner, col)
    m_ws, buffer = _space_to_depth_io(the_plan, inner, y.dtype)
    nonfinite = 0
    for n0, n, part in _space_to_depth_parts(x, problem, s2d, the_plan, buffer):
        nonfinite += _winograd_transformed_pass(part, u, y[n0:n0 + n], replace(s2d, batch=n),
                                                inner, v, m_ws)
    del col, u, v, m_ws, buffer, part  # the fallback allocates its own workspace
    if nonfinite:  # recompute directly (see _run_winograd)
        return _run_generic(_im2col_kernels.conv_forward, x, weight, y, problem,
                            _im2col_plan("forward", problem, y.dtype.itemsize))
    return y


def _run_space_to_depth_weight(x, grad_y, grad_w, problem, the_plan):
    """The weight gradient as the Winograd weight gradient of the space-to-depth input,
    accumulated part by part of the batch, rearranged back. NaN or inf: im2col."""
    s2d, inner, col = _space_to_depth_setup(problem, the_plan, grad_w.dtype)
    m_ws, buffer = _space_to_depth_io(the_plan, inner, grad_w.dtype)
    for n0, n, part in _space_to_depth_parts(x, problem, s2d, the_plan, buffer):
        du, v = _winograd_gradient_of_u(part, grad_y[n0:n0 + n], replace(s2d, batch=n), inner,
                                        col, m_ws, accumulate=n0 > 0)
    del m_ws, buffer, part  # the second workspace is not needed for G^T dU G
    grad_s2d = allocate(s2d.weight_shape, grad_w.dtype, "weight gradient")
    nonfinite = _winograd_weight_from_du(du, grad_s2d, s2d, inner)
    del col, du, v
    # rearranged back in place (no second temporary): the inverse of _space_to_depth_weight
    c_out, cin_g, ky, kx = grad_w.shape
    (sy, sx), r = problem.geometry.stride, s2d.geometry.kernel_size[0]
    grad_w.reshape(c_out, cin_g, r, sy, r, sx)[...] = grad_s2d.reshape(
        c_out, cin_g, sy, sx, r, r).transpose(0, 1, 4, 2, 5, 3)
    del grad_s2d
    if nonfinite:  # recompute directly (see _run_winograd)
        grad_w[...] = 0
        return _run_generic(_im2col_kernels.conv_backward_weight, x, grad_y, grad_w, problem,
                            _im2col_plan("backward_weight", problem, grad_w.dtype.itemsize))
    return grad_w
