"""The dispatcher's thresholds and memory bounds, in one frozen object.

Every algorithm's plan and rule reads its thresholds from a :class:`Budget`; the chooser
passes the current one (:func:`current_budget`). Tests and experiments change it with
:func:`budget`, a context manager, instead of patching module globals; because a budget is
hashable, it is part of the plan cache's key and a changed budget gets fresh plans.

The measurements behind the values are in the user guide's performance page.
"""

import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace

__all__ = ["Budget", "DEFAULT_BUDGET", "budget", "current_budget"]


@dataclass(frozen=True)
class Budget:
    """Thresholds of the algorithm choice, tiling and workspaces (bytes, counts).

    Attributes
    ----------
    workspace_bytes
        Upper bound of the workspace (column tile + gathered rows) of one call, whatever the
        batch size.
    tile_bytes
        Target size of one column tile: small enough to stay in cache between im2col and GEMM.
    target_columns
        Whole samples share a tile until it has about this many columns (GEMM's N); a sample
        with at least this many output positions gets tiles of its own.
    min_columns
        A tile has at least this many columns when ``workspace_bytes`` allows (GEMMs with a
        small N run far below peak, and each GEMM call packs the whole weight again), even if
        that makes it larger than ``tile_bytes``.
    max_phases
        Stride-phase algorithms enumerate every phase (prod(stride) of them) in Python;
        beyond this many they are not used (col2im has no such cost).
    subpixel_max_overhead, subpixel_min_channels, subpixel_min_kernel, subpixel_min_kernel_col2im
        Sub-pixel is chosen when its intermediate (all phases on a common grid) has at most
        ``subpixel_max_overhead`` times the output's positions, the groups have at least
        ``subpixel_min_channels`` output channels and the kernel at least
        ``subpixel_min_kernel`` taps (it ties or loses on small kernels), or at least
        ``subpixel_min_kernel_col2im`` taps where the engine's stride phases do not take the
        problem (col2im would: sub-pixel measured faster there from 16 taps).
    subpixel_block_bytes, subpixel_min_rows
        The intermediate is computed a block of output channels (and samples) at a time,
        about ``subpixel_block_bytes``, so that the depth-to-space step reads it from cache;
        a block has at least ``subpixel_min_rows`` GEMM rows (channels x phases) while the
        workspace allows.
    subpixel_direct_min_line_bytes, subpixel_direct_max_weight_bytes
        Sub-pixel runs as the direct convolution with a depth-to-space store (no intermediate:
        :func:`fastdeconv._algorithms.subpixel.direct_rule`) when the last dimension's stride
        times the itemsize is at least ``subpixel_direct_min_line_bytes`` (each channel's run
        of phases then fills whole cache lines of the output) and its packed weight has at
        most ``subpixel_direct_max_weight_bytes`` (with the channels-last copy, within
        ``workspace_bytes``, the extra memory stays within 32 MiB; ``fcn32s`` float64's 14 MiB
        measured 0.83x the GEMM path's time on one thread, 0.61x on two), with the direct
        convolution's itemsizes, one group and no cropping padding of the input.
    winograd_output_tile
        Output tile m of Winograd F(m x m, r x r) (see :mod:`fastdeconv._winograd`).
    winograd_chunk
        Tiles per pass of the Winograd kernel (the GEMMs' N), when the workspace allows;
        with fewer than that many per pass (and more tiles in all) Winograd is not used.
    winograd_min_channels, winograd_min_tiles, winograd_min_work, winograd_max_tile_overhead
        Rule of the forward pass: Winograd when the groups have at least
        ``winograd_min_channels`` input and output channels, there are at least
        ``winograd_min_tiles`` tiles, (output positions / m^2) x channels reaches
        ``winograd_min_work``, and the tiles computed (tiles past the edges of the output
        and of every dilation phase are computed in full) are at most
        ``winograd_max_tile_overhead`` times the useful ones. The channels and work are
        per itemsize: ``((itemsize, value), ...)`` pairs (hashable), read with
        :meth:`per_itemsize`.
    winograd_wgrad_min_channels, winograd_wgrad_min_tiles
        Rule of the weight gradient (tiles are the GEMMs' reduction; same tile overhead).
    winograd_phase_min_tiles, winograd_phase_min_channels
        The stride phases of a transposed convolution take Winograd when each phase has this
        many tiles and the groups this many input and output channels.
    packed_min_positions, packed_min_work, packed_max_weight_bytes
        Rule of the packed engine (forward): chosen when one sample has at least
        ``packed_min_positions`` output positions (the engine runs one GEMM per sample and
        group, or one per block of samples; below it im2col ties or wins), the
        call's multiply-adds (batch x output positions x output channels x input channels per
        group x taps) reach ``packed_min_work`` (below, fixed costs decide), and one group's
        weight is at most ``packed_max_weight_bytes`` (a larger packed weight is read from
        memory again for every sample and group). The first two per itemsize,
        ``((itemsize, value), ...)`` pairs.
    packed_phases_itemsizes, packed_phases_min_rows, packed_phases_min_taps, \
    packed_phases_one_tap_min_rows, packed_phases_max_stride
        Rule of the packed engine's stride phases (backward_input): chosen where col2im would
        run, for the itemsizes in ``packed_phases_itemsizes`` (float32 and float64; float64
        since the engine's phases measured faster than OpenBLAS's DGEMM under col2im), when
        the transposed convolution's output channels per group (the M of every phase's GEMM)
        are at least ``packed_phases_min_rows``, its phases have on average at least
        ``packed_phases_min_taps`` kernel taps or are stacked into one GEMM by the engine
        (one tap each, a kernel equal to the stride: ``packed_phases.stacked_phases``; else
        one tap a phase on average needs ``packed_phases_one_tap_min_rows`` output channels
        per group, since col2im then writes each output once too), no stride exceeds
        ``packed_phases_max_stride`` (each phase writes every stride-th value of an output row:
        with larger strides a row is written in too many pieces) and the work reaches
        ``packed_min_work``.
    packed_col2im_min_taps_per_step, packed_col2im_min_channels, \
    packed_col2im_max_positions_per_channel
        Rule of the packed engine's col2im (backward_input, before the stride phases):
        dilation 1, at least ``packed_col2im_min_taps_per_step`` taps per stride step, at
        least ``packed_col2im_min_channels`` input channels per group of the transposed
        convolution, at most ``packed_col2im_max_positions_per_channel`` input positions of
        the batch per such channel, and ``packed_min_work``
        (:func:`fastdeconv._algorithms.packed_col2im.rule`). Measured on k4 s2 and k3 s2
        layers of 128-512 channels, 4 x 4 and 8 x 8 maps, batches of 1-64 (the grid on the
        performance page): at 0.5 positions a channel or fewer, k4 s2 took 0.44-0.92x the
        stride phases' time in float32 and float64, at 1 or more 0.90-1.37x; k3 s2 won only
        at 0.12 or fewer.
    packed_wgrad_itemsizes, packed_wgrad_min_ndim, packed_wgrad_min_channels, \
    packed_wgrad_max_padded_ratio
        Rule of the packed engine's weight gradient (backward_weight, before space-to-depth
        and im2col): the itemsizes in ``packed_wgrad_itemsizes``, at least
        ``packed_wgrad_min_ndim`` spatial dimensions, at least two kernel taps, at least
        ``packed_wgrad_min_channels`` input channels per group, a padded input at most
        ``packed_wgrad_max_padded_ratio`` times the input and ``packed_min_work``
        multiply-adds (:func:`fastdeconv._algorithms.packed_wgrad.rule`).
    packed_wgrad_transposed_max_cout
        The packed weight gradient computes its transposed GEMM (``x`` read in place by the
        micro-kernels, nothing gathered) for at most this many output channels per group,
        and packs the gathered rows of ``x`` for more: 64 channels measured 0.82-0.89x the
        time, 96 0.89-0.92x, 128 and 192 0.92-0.96x on one thread but 1.03-1.14x on two,
        256 1.01-1.28x.
    direct_itemsizes, direct_min_taps_per_stride, direct_min_channels, direct_max_weight_bytes
        Rule of the direct convolution (forward, before space-to-depth and the packed
        engine): the itemsizes in ``direct_itemsizes``, a stride above 1, at least
        ``direct_min_taps_per_stride`` kernel taps per prod(stride), at least
        ``direct_min_channels`` input and output channels per group, one group's weight at
        most ``direct_max_weight_bytes`` and ``packed_min_work`` multiply-adds
        (:func:`fastdeconv._algorithms.direct.rule`).
    space_to_depth_bytes
        The space-to-depth rearrangement of a part of the batch is at most this large (a
        whole sample larger than this: not used).
    """

    workspace_bytes: int = 16 * 2**20
    tile_bytes: int = 2 * 2**20
    target_columns: int = 2048
    min_columns: int = 256

    max_phases: int = 2**12

    subpixel_max_overhead: float = 1.15
    subpixel_min_channels: int = 8
    subpixel_min_kernel: int = 64
    subpixel_min_kernel_col2im: int = 16

    subpixel_block_bytes: int = 2 * 2**20
    subpixel_min_rows: int = 512
    subpixel_direct_min_line_bytes: int = 64
    subpixel_direct_max_weight_bytes: int = 16 * 2**20

    winograd_output_tile: int = 4
    winograd_chunk: int = 64

    winograd_min_channels: tuple = ((4, 8), (8, 16))
    winograd_min_tiles: int = 16
    winograd_min_work: tuple = ((4, 512), (8, 2048))
    winograd_max_tile_overhead: float = 1.5

    winograd_wgrad_min_channels: int = 8
    winograd_wgrad_min_tiles: int = 32
    winograd_phase_min_tiles: int = 64
    winograd_phase_min_channels: int = 32

    packed_min_positions: tuple = ((4, 128), (8, 128))
    packed_min_work: tuple = ((4, 10_000_000), (8, 5_000_000))
    packed_max_weight_bytes: int = 8 * 2**20
    packed_phases_itemsizes: tuple = (4, 8)
    packed_phases_min_rows: int = 16
    packed_phases_min_taps: int = 2
    packed_phases_one_tap_min_rows: int = 64
    packed_phases_max_stride: int = 4
    packed_col2im_min_taps_per_step: float = 4.0
    packed_col2im_min_channels: int = 128
    packed_col2im_max_positions_per_channel: float = 0.5
    packed_wgrad_itemsizes: tuple = (4, 8)
    packed_wgrad_min_ndim: int = 2
    packed_wgrad_min_channels: int = 16
    packed_wgrad_max_padded_ratio: float = 2.0
    packed_wgrad_transposed_max_cout: int = 96

    direct_itemsizes: tuple = (4, 8)
    direct_min_taps_per_stride: float = 2.25
    direct_min_channels: int = 32
    direct_max_weight_bytes: int = 8 * 2**20

    space_to_depth_bytes: int = 16 * 2**20

    def per_itemsize(self, pairs, itemsize):
        """The value of ``pairs`` (a per-itemsize field) for ``itemsize``; float64's for others."""
        table = dict(pairs)
        return table.get(itemsize, table[8])


#: The thresholds the library runs with.
DEFAULT_BUDGET = Budget()
_lock = threading.Lock()
_current = DEFAULT_BUDGET


def current_budget():
    """The :class:`Budget` the dispatcher uses now."""
    return _current


@contextmanager
def budget(**changes):
    """Run the body with the current budget's fields replaced by ``changes`` (process-wide).

    Examples
    --------
    >>> from fastdeconv._algorithms import budget, current_budget
    >>> with budget(tile_bytes=256, min_columns=1):
    ...     current_budget().tile_bytes
    256
    >>> current_budget().tile_bytes
    2097152
    """
    global _current
    with _lock:
        previous = _current
        _current = replace(previous, **changes)
    try:
        yield _current
    finally:
        with _lock:
            _current = previous
