"""Task graphs of :mod:`fastdeconv.dask`: one task per output chunk that *pulls* the exact
input region it needs from the input blocks that hold it.

An output chunk names, per axis of an input, either a range ``(start, stop)`` or an array of
input positions (padding modes, channel orders). :func:`axis_pull` turns that into the input
blocks to read and what to take from each; :func:`region` makes the (nested) task that cuts and
joins those pieces. The input is never rechunked as a separate step, so each output chunk's
task depends only on the blocks its halo touches, however many chunks the array has.
"""

from dataclasses import dataclass

import numpy as np

import dask.array as da
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["AxisPull", "axis_pull", "region", "data_key", "new_array", "whole", "map_regions"]


@dataclass(frozen=True, eq=False)
class AxisPull:
    """How one output chunk reads one axis of an input: ``blocks`` (block indices), the part
    of each (a slice or an index array, local to the block) and, for index selections that are
    not increasing runs, ``reorder``: positions into the joined parts."""

    blocks: tuple
    parts: tuple
    reorder: object = None


def whole(chunks):
    """Selections that read every position of an axis, one per block (batch pass-through)."""
    return [AxisPull((i,), (slice(None),)) for i in range(len(chunks))]


def axis_pull(edges, select):
    """:class:`AxisPull` for ``select``: a ``(start, stop)`` range or an array of positions of
    an axis chunked at ``edges``."""
    edges = np.asarray(edges)
    if isinstance(select, tuple):
        start, stop = select
        first = int(np.searchsorted(edges, start, side="right")) - 1
        last = int(np.searchsorted(edges, stop, side="left")) - 1
        blocks = tuple(range(first, max(last, first) + 1))
        parts = tuple(slice(max(start - int(edges[b]), 0),
                            min(stop, int(edges[b + 1])) - int(edges[b])) for b in blocks)
        return AxisPull(blocks, parts)
    select = np.asarray(select, dtype=np.int64)
    unique = np.unique(select)
    owner = np.searchsorted(edges, unique, side="right") - 1
    blocks, parts = [], []
    for b in np.unique(owner):
        local = unique[owner == b] - int(edges[b])
        run = local.size == local[-1] - local[0] + 1
        blocks.append(int(b))
        parts.append(slice(int(local[0]), int(local[-1]) + 1) if run else local)
    reorder = np.searchsorted(unique, select)
    if reorder.size == unique.size and np.array_equal(reorder, np.arange(reorder.size)):
        reorder = None
    return AxisPull(tuple(blocks), tuple(parts), reorder)


@dataclass(frozen=True, eq=False)
class _Pulls:
    """The per-axis pulls of one region (an opaque object, so dask does not look inside);
    ``cut[flat]`` is True where that block's piece arrives already cut; ``pad``, when not
    None, the ``(before, after)`` zeros around the region on each axis."""

    axes: tuple
    cut: tuple
    pad: tuple = None

    @property
    def grid(self):
        return tuple(len(a.blocks) for a in self.axes)


def _cut(block, parts):
    """The part of one block that a region reads (a view where slices suffice)."""
    piece = block[tuple(p if isinstance(p, slice) else slice(None) for p in parts)]
    for axis, p in enumerate(parts):
        if not isinstance(p, slice):
            piece = np.take(piece, p, axis=axis)
    return piece


def _assemble(blocks, pulls):
    """Cut every block to its part and join them into the region (runs on a worker).

    With ``pulls.pad`` the pieces are copied straight into a zero-filled array that has the
    padding around them (one copy, as joining them takes anyway); a region of one piece and
    no padding is that piece itself, a view where it can be.
    """
    grid = pulls.grid
    pieces = []
    for flat, block in enumerate(blocks):
        index = np.unravel_index(flat, grid)
        pieces.append(block if pulls.cut[flat] else
                      _cut(block, [axis.parts[i] for axis, i in zip(pulls.axes, index)]))
    reordered = any(pull.reorder is not None for pull in pulls.axes)
    pad = pulls.pad if pulls.pad is not None and any(b or a for b, a in pulls.pad) else None
    if len(pieces) == 1 and pad is None:
        out = pieces[0]
    elif reordered:
        nested = np.empty(grid, dtype=object)
        for flat, piece in enumerate(pieces):
            nested[np.unravel_index(flat, grid)] = piece
        out = np.block(nested.tolist()) if len(pieces) > 1 else pieces[0]
    else:
        return _place(pieces, grid, pad)
    for axis, pull in enumerate(pulls.axes):
        if pull.reorder is not None:
            out = np.take(out, pull.reorder, axis=axis)
    return out if pad is None else np.pad(out, pad)


def _place(pieces, grid, pad):
    """The pieces of a ``grid`` (C order) copied into one new array, with ``pad`` (or no)
    zeros around them."""
    pad = pad or ((0, 0),) * len(grid)
    strides = np.cumprod((1,) + grid[:0:-1])[::-1]
    starts = []
    for axis, count in enumerate(grid):
        lengths = [pieces[i * strides[axis]].shape[axis] for i in range(count)]
        starts.append(np.cumsum([pad[axis][0]] + lengths))
    shape = tuple(int(s[-1]) + after for s, (_, after) in zip(starts, pad))
    out = (np.zeros if any(b or a for b, a in pad) else np.empty)(
        shape, dtype=np.result_type(*pieces))
    for flat, piece in enumerate(pieces):
        index = np.unravel_index(flat, grid)
        out[tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))] = piece
    return out


def _length(part, size):
    return len(range(*part.indices(size))) if isinstance(part, slice) else len(part)


def region(array, axes, graph=None, key=None, pad=None):
    """Task that builds the region of ``array`` selected by one :class:`AxisPull` per axis
    (with ``pad``, per axis, ``(before, after)`` zeros around it).

    With ``graph`` and ``key`` (a tuple naming the consumer), the pieces of the neighbouring
    blocks are cut by tasks of their own, ``(key[0] + "-cut", *key[1:], i)``: a distributed
    scheduler runs them where the block is, so only the halo travels between workers, not
    whole blocks. The largest piece is cut by the consumer (which runs where that block is).
    """
    grid = tuple(len(a.blocks) for a in axes)
    blocks, parts, sizes = [], [], []
    for index in np.ndindex(grid):
        chosen = [axis.blocks[i] for axis, i in zip(axes, index)]
        block_parts = [axis.parts[i] for axis, i in zip(axes, index)]
        blocks.append((array.name, *chosen))
        parts.append(block_parts)
        block_shape = [array.chunks[d][b] for d, b in enumerate(chosen)]
        sizes.append((int(np.prod([_length(p, n) for p, n in zip(block_parts, block_shape)])),
                      int(np.prod(block_shape))))
    cut = [False] * len(blocks)
    if graph is not None and len(blocks) > 1:
        primary = max(range(len(blocks)), key=lambda i: sizes[i][0])
        for i, (piece, whole_block) in enumerate(sizes):
            if i != primary and piece < whole_block:
                cut_key = (f"{key[0]}-cut", *key[1:], i)
                graph[cut_key] = (_cut, blocks[i], parts[i])
                blocks[i], cut[i] = cut_key, True
    return (_assemble, blocks, _Pulls(tuple(axes), tuple(cut),
                                      None if pad is None else tuple(pad)))


def data_key(prefix, value, graph):
    """Put an in-memory array (a weight, a bias, an index plan) into ``graph`` once; its key."""
    key = f"{prefix}-{tokenize(value)}"
    graph[key] = value
    return key


def new_array(name, graph, dependencies, chunks, dtype):
    """The dask array of ``graph`` (keys ``(name, i, j, ...)``) with known ``chunks``."""
    layer = HighLevelGraph.from_collections(name, graph, dependencies=dependencies)
    meta = np.empty((0,) * len(chunks), dtype=dtype)
    return da.Array(layer, name, chunks, meta=meta)


@dataclass(frozen=True, eq=False)
class _Items:
    """Per-axis parameters of one output chunk (opaque to dask)."""

    values: tuple


def map_regions(name, func, spec, sources, items, out_chunks, dtype):
    """One task per output chunk: ``func(spec, items, *regions)``.

    ``sources`` is a list of ``(array, selects)``; ``selects[axis][i]`` is what output chunk
    ``i`` along ``axis`` reads of that axis of ``array`` (a range or an index array).
    ``items[axis][i]`` is passed to ``func`` as ``items.values[axis]``. Returns the graph and
    its output keys' name; the caller makes the array (or arrays) with :func:`new_array`.
    """
    graph = {}
    pulls = []
    for array, selects in sources:
        edges = [tuple(int(v) for v in np.cumsum((0,) + c)) for c in array.chunks]
        pulls.append([[axis_pull(e, sel) for sel in axis_selects]
                      for e, axis_selects in zip(edges, selects)])
    for index in np.ndindex(*[len(c) for c in out_chunks]):
        regions = [region(array, [axis[i] for axis, i in zip(per_axis, index)], graph,
                          (name, *index, source))
                   for source, ((array, _), per_axis) in enumerate(zip(sources, pulls))]
        values = _Items(tuple(axis[i] for axis, i in zip(items, index)))
        graph[(name, *index)] = (func, spec, values, *regions)
    return graph
