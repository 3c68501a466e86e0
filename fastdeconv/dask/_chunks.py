r"""The chunking rules of :mod:`fastdeconv.dask`, written once: which input cells each output
chunk reads, one spatial dimension at a time.

Every operator of fastdeconv is separable in its index arithmetic: along each spatial
dimension, output position :math:`o` reads a contiguous range of input positions that depends
on :math:`o` alone. So a chunked operator is planned per dimension, in three steps:

1. **Output chunk edges** from the input's chunk edges :math:`b_0 = 0 < b_1 < \dots < b_m = n`:

   - a strided *reducing* operator (``conv``, ``max_pool``, ``pixel_unshuffle``) gives output
     :math:`o` to the input chunk that holds position :math:`o\,s`: edges
     :math:`\lceil b_j / s \rceil` (:func:`strided_output_offsets`). Chunk edges are thereby
     aligned to the stride without rechunking the input; an input chunk that is not a multiple
     of the stride only makes its output chunk one cell shorter or longer.
   - an *upsampling* operator (``conv_transpose``, ``max_unpool``, ``pixel_shuffle``, integer
     ``resize``) gives every input chunk :math:`s` times its size: edges :math:`b_j s`
     (:func:`upsampled_output_offsets`); a non-integer resize scale
     :math:`n_\text{out}/n` puts them at :math:`\lfloor b_j n_\text{out} / n \rfloor`.
   - the gradient with respect to an input (``grad_x``) is chunked like that input.

   Edges are clipped to the output size and empty chunks are dropped.

2. **The window of each output chunk** :math:`[o_0, o_1)`, in input coordinates, exact and
   asymmetric (with :math:`k_e = d\,(k - 1) + 1`):

   ======================= =================================================================
   convolution, max pool   :math:`[o_0 s - p_b,\ (o_1 - 1) s - p_b + k_e)`
   transposed convolution  :math:`j \in [\lceil (o_0 + p_b - k_e + 1) / s \rceil,\
                           \lfloor (o_1 - 1 + p_b) / s \rfloor + 1)`
   max unpool              :math:`i \in [\lceil (o_0 + p - k + 1) / s \rceil,\
                           \lfloor (o_1 - 1 + p) / s \rfloor + 1)`
   resize                  the columns of rows :math:`o_0 \dots o_1 - 1` of the operator's
                           interpolation matrix (:func:`fastdeconv.sparse.resize_matrix`)
   ======================= =================================================================

   With the edges of step 1 the halo a convolution chunk reads beyond its own input chunk is
   :math:`p_b` cells before and :math:`k_e - 1 - p_b` after (:func:`conv_halo`); a halo may
   span several neighbouring chunks (chunks smaller than the halo).

3. **Global edges.** The part of a window outside :math:`[0, n)` is the operator's padding. It
   is handed to the in-memory operator as that chunk's own ``(before, after)`` padding (zeros,
   ``-inf`` for max pooling) or, for ``reflect``, ``replicate`` and ``circular``, gathered from
   the source cells :func:`source_index` names (for ``circular``, from the far end of the
   array). The crop and the ``output_padding`` of a transposed convolution fall on the first and
   last output chunk only. So every padding is applied exactly once.

This module is pure index arithmetic (no dask, no arrays of data); :mod:`fastdeconv.dask._graph`
turns the ranges into tasks.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .._geometry import source_index

__all__ = [
    "offsets", "chunks_from_offsets", "strided_output_offsets", "upsampled_output_offsets",
    "conv_windows", "conv_halo", "TransposedSource", "transposed_sources", "PoolWindow",
    "pool_windows", "unpool_sources", "source_index", "group_blocks", "ChannelBlock",
    "resize_sources",
]


# ------------------------------------------------------------------------------ chunk edges
def offsets(chunks):
    """Chunk sizes to edges: ``(3, 4) -> (0, 3, 7)``."""
    return (0, *itertools.accumulate(int(c) for c in chunks))


def chunks_from_offsets(edges):
    """Edges to chunk sizes, dropping empty chunks: ``(0, 3, 3, 7) -> (3, 4)``."""
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]) if b > a)


def _clean(edges, total):
    """Clip edges to ``[0, total]``, force the ends, drop repeats (empty chunks)."""
    clipped = sorted({min(max(int(e), 0), total) for e in edges} | {0, total})
    return tuple(clipped) if total > 0 else (0, 0)


def strided_output_offsets(in_edges, stride, out_size):
    """Output edges of a reducing operator: output ``o`` goes with input position ``o * stride``.

    >>> strided_output_offsets((0, 5, 10), 2, 5)
    (0, 3, 5)
    """
    return _clean([-(-e // stride) for e in in_edges[:-1]], out_size)


def upsampled_output_offsets(in_edges, out_size, factor=None):
    """Output edges of an upsampling operator: ``factor`` times the input's, or, when
    ``factor`` is None, ``floor(b * out_size / in_size)`` (non-integer resize scales).

    >>> upsampled_output_offsets((0, 3, 7), 14, 2)
    (0, 6, 14)
    >>> upsampled_output_offsets((0, 3, 7), 10)
    (0, 4, 10)
    """
    if factor is None:
        n = in_edges[-1]
        return _clean([e * out_size // n for e in in_edges[:-1]], out_size)
    return _clean([e * factor for e in in_edges[:-1]], out_size)


# ----------------------------------------------------------------------------- convolution
def conv_windows(out_edges, kernel_extent, stride, pad_before):
    """Input window ``(start, stop)`` of each output chunk of a convolution (or max pool).

    In input coordinates: ``start < 0`` or ``stop > n`` reach into the padding.

    >>> conv_windows((0, 4, 8), 3, 1, 1)       # 3-tap "same" convolution: halo 1 each side
    [(-1, 5), (3, 9)]
    """
    return [(o0 * stride - pad_before, (o1 - 1) * stride - pad_before + kernel_extent)
            for o0, o1 in zip(out_edges[:-1], out_edges[1:])]


def conv_halo(kernel_extent, stride, pad_before):
    """Cells a convolution chunk reads beyond its own input chunk, ``(before, after)``, when the
    output edges follow :func:`strided_output_offsets` and input chunks are stride multiples.

    >>> conv_halo(3, 1, 1), conv_halo(4, 2, 1), conv_halo(7, 2, 0)
    ((1, 1), (1, 1), (0, 5))
    """
    return (pad_before, max(kernel_extent - stride - pad_before, 0))


@dataclass(frozen=True)
class TransposedSource:
    """The input range ``[start, stop)`` one output chunk of a transposed convolution reads.

    The in-memory transposed convolution of that range covers the full (uncropped) positions
    ``[start * s, (stop - 1) * s + k_e)``; ``crop`` is the ``(before, after)`` padding that cuts
    it to the chunk, ``extend`` the zeros added where no input contributes (the global
    ``output_padding``, or gaps when ``s > k_e``). ``start == stop``: all zeros.
    """

    start: int
    stop: int
    crop: tuple
    extend: tuple

    @property
    def empty(self):
        return self.stop <= self.start


def transposed_sources(out_edges, in_size, kernel_extent, stride, crop_before):
    """:class:`TransposedSource` of each output chunk; output ``q`` is full position
    ``q + crop_before`` and input ``j`` reaches full positions ``j s .. j s + k_e - 1``.

    >>> [(t.start, t.stop, t.crop) for t in transposed_sources((0, 4, 8), 4, 4, 2, 1)]
    [(0, 3, (1, 3)), (1, 4, (3, 1))]
    """
    sources = []
    for q0, q1 in zip(out_edges[:-1], out_edges[1:]):
        f0, f1 = q0 + crop_before, q1 + crop_before
        start = max(0, -(-(f0 - kernel_extent + 1) // stride))
        stop = min(in_size, (f1 - 1) // stride + 1)
        if stop <= start:
            sources.append(TransposedSource(start, start, (0, 0), (0, 0)))
            continue
        before = f0 - start * stride
        after = (stop - 1) * stride + kernel_extent - f1
        sources.append(TransposedSource(start, stop, (max(before, 0), max(after, 0)),
                                        (max(-before, 0), max(-after, 0))))
    return sources


# ---------------------------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PoolWindow:
    """What the in-memory ``max_pool`` runs for one output chunk: input ``[start, stop)`` with
    the global (symmetric) padding, keeping local outputs ``[keep, keep + count)``.

    ``start`` is a multiple of the stride, so local window ``j`` is global window
    ``start / s + j``; windows that would read the (fake) padding before an interior ``start``
    are among those dropped, and ``stop`` is either the input's end (``last``: the global
    padding and ``ceil_mode`` apply) or past every kept window.
    """

    start: int
    stop: int
    keep: int
    count: int
    last: bool


def pool_windows(out_edges, in_size, kernel_extent, stride, padding):
    """:class:`PoolWindow` of each output chunk of a max pooling."""
    windows = []
    lead = -(-padding // stride)       # windows that start in the padding
    for o0, o1 in zip(out_edges[:-1], out_edges[1:]):
        first = max(0, o0 - lead)
        stop = min(in_size, (o1 - 1) * stride - padding + kernel_extent)
        windows.append(PoolWindow(first * stride, stop, o0 - first, o1 - o0, stop == in_size))
    return windows


def unpool_sources(out_edges, in_size, kernel_size, stride, padding):
    """Input range ``[start, stop)`` whose pooling windows meet each output chunk of max
    unpooling (window of input ``i``: ``[i s - p, i s - p + k)``)."""
    ranges = []
    for q0, q1 in zip(out_edges[:-1], out_edges[1:]):
        start = max(0, -(-(q0 + padding - kernel_size + 1) // stride))
        stop = min(in_size, (q1 - 1 + padding) // stride + 1)
        ranges.append((start, max(start, stop)))
    return ranges


# ---------------------------------------------------------------------------------- resize
def resize_sources(matrix, out_edges):
    """Exact source range and sub-matrix of each output chunk of a 1-d resize.

    ``matrix`` is the ``(out, in)`` CSR interpolation matrix of one dimension; returns, per
    output chunk, ``(start, stop, rows)`` with ``rows = matrix[o0:o1, start:stop]``.
    """
    result = []
    for o0, o1 in zip(out_edges[:-1], out_edges[1:]):
        rows = matrix[o0:o1]
        cols = rows.indices
        start, stop = (int(cols.min()), int(cols.max()) + 1) if cols.size else (0, 1)
        result.append((start, stop, rows[:, start:stop].tocsr()))
    return result


# -------------------------------------------------------------------------------- channels
@dataclass(frozen=True)
class ChannelBlock:
    """One output-channel chunk of a (transposed) convolution.

    Output channels ``out``, made from groups ``groups`` (a ``(first, stop)`` range); ``parts``
    are the input-channel ranges whose partial results are summed (one part unless
    ``groups == 1`` and the input's channels are chunked).
    """

    out: tuple
    groups: tuple
    parts: tuple


def group_blocks(in_edges, groups, out_per_group):
    """Output-channel chunks of a convolution whose input channels are chunked at ``in_edges``.

    With ``groups == 1`` every output channel needs every input channel: one output chunk, the
    sum of one partial convolution per input chunk. With groups, input chunk edges are moved
    down to group edges and every run of whole groups is an independent block.

    >>> [b.parts for b in group_blocks((0, 2, 4), 1, 3)]
    [((0, 2), (2, 4))]
    >>> [(b.out, b.groups) for b in group_blocks((0, 3, 8), 4, 1)]
    [((0, 1), (0, 1)), ((1, 4), (1, 4))]
    """
    channels = in_edges[-1]
    if groups == 1:
        parts = tuple(zip(in_edges[:-1], in_edges[1:]))
        return [ChannelBlock((0, out_per_group), (0, 1), parts)]
    per_group = channels // groups
    edges = sorted({e // per_group for e in in_edges} | {0, groups})
    return [ChannelBlock((g0 * out_per_group, g1 * out_per_group), (g0, g1),
                         ((g0 * per_group, g1 * per_group),))
            for g0, g1 in zip(edges[:-1], edges[1:])]
