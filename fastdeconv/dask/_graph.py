"""Task graphs of :mod:`fastdeconv.dask`: one task per output chunk that *pulls* the exact
input region it needs from the input blocks that hold it.

An output chunk names, per axis of an input, either a range ``(start, stop)`` or an array of
input positions (padding modes, channel orders). :func:`axis_pull` turns that into the input
blocks to read and what to take from each; :func:`region` makes the (nested) task that cuts and
joins those pieces. The pieces of neighbouring blocks are cut where those blocks live, by one
halo task per input block (:class:`Halos`), so only they travel between workers. The input is
never rechunked as a separate step, so each output chunk's task depends only on its own block
and the halo tasks of the blocks its halo touches, however many chunks the array has.
"""

import operator
import threading
from dataclasses import dataclass

import numpy as np

import dask.array as da
from dask.base import tokenize
from dask.utils import key_split
from dask.highlevelgraph import HighLevelGraph

__all__ = ["AxisPull", "axis_pull", "region", "Halos", "HALO", "halo_name", "is_halo_name",
           "data_key", "new_array", "whole", "map_regions"]

#: the word that marks the names of halo tasks (their priority: :mod:`._priority`)
HALO = "halo"


def halo_name(name):
    """The name of the halo tasks of the layer ``name``: the word :data:`HALO` put before
    the name's token (``"conv_transpose-0f3a9c"`` -> ``"conv_transpose-halo-0f3a9c"``,
    ``"max-pool-5116ab-both"`` -> ``"max-pool-halo-5116ab-both"``).

    Before the token, so that the halo tasks get a *task prefix* of their own on a
    distributed scheduler (the words of a name before its token,
    :func:`dask.utils.key_split`: ``"conv_transpose-halo"`` against ``"conv_transpose"``).
    The scheduler estimates a task's duration from the recent durations of its prefix; with
    a shared prefix the output chunks' estimate was pulled down to the halo tasks'
    milliseconds, so that moving a chunk to an idle worker looked a hundred times costlier
    than computing it, and work stealing never moved one.

    >>> halo_name("conv_transpose-0f3a9c")
    'conv_transpose-halo-0f3a9c'
    >>> halo_name("max-pool-5116ab-both")
    'max-pool-halo-5116ab-both'
    """
    prefix = key_split(name)
    if name.startswith(prefix + "-"):
        return f"{prefix}-{HALO}{name[len(prefix):]}"
    return f"{name}-{HALO}"


def is_halo_name(name):
    """Whether ``name`` (a task key's name) was made by :func:`halo_name`: its task prefix
    ends in the word :data:`HALO`."""
    return key_split(name).endswith("-" + HALO)


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
    None, the ``(before, after)`` zeros around the region on each axis; ``scratch``: the
    task only reads the region, which may then live in the thread's scratch buffer."""

    axes: tuple
    cut: tuple
    pad: tuple = None
    scratch: bool = False

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
        return _place(pieces, grid, pad, pulls.scratch)
    for axis, pull in enumerate(pulls.axes):
        if pull.reorder is not None:
            out = np.take(out, pull.reorder, axis=axis)
    return out if pad is None else np.pad(out, pad)


#: regions up to this many bytes may be joined in a reused per-thread buffer
SCRATCH_BYTES = 256 * 2**20
_scratch = threading.local()


def _scratch_array(shape, dtype):
    """An uninitialised array of ``shape`` in this thread's scratch buffer, which grows as
    needed and is reused by the next region joined on this thread.

    A fresh array of tens of MiB costs its page faults on every task in a ``distributed``
    worker (its allocator returns large blocks to the system at once: ~7 ms for 17 MiB
    against ~1 ms reused, more than the copy into it); only the thread's own next region
    overwrites it, so it must not outlive the task that reads it.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < nbytes:
        buffer = _scratch.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def _place(pieces, grid, pad, scratch=False):
    """The pieces of a ``grid`` (C order) copied into one array, with ``pad`` (or no) zeros
    around them; with ``scratch`` (and a region of at most :data:`SCRATCH_BYTES`) the array
    is the thread's scratch buffer."""
    pad = pad or ((0, 0),) * len(grid)
    strides = np.cumprod((1,) + grid[:0:-1])[::-1]
    starts = []
    for axis, count in enumerate(grid):
        lengths = [pieces[i * strides[axis]].shape[axis] for i in range(count)]
        starts.append(np.cumsum([pad[axis][0]] + lengths))
    shape = tuple(int(s[-1]) + after for s, (_, after) in zip(starts, pad))
    dtype = np.result_type(*pieces)
    if scratch and int(np.prod(shape)) * dtype.itemsize <= SCRATCH_BYTES:
        out = _scratch_array(shape, dtype)
        for axis, (before, after) in enumerate(pad):      # zero only the padding
            ahead = (slice(None),) * axis
            out[ahead + (slice(0, before),)] = 0
            out[ahead + (slice(shape[axis] - after, None),)] = 0
    else:
        out = (np.zeros if any(b or a for b, a in pad) else np.empty)(shape, dtype=dtype)
    for flat, piece in enumerate(pieces):
        index = np.unravel_index(flat, grid)
        out[tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))] = piece
    return out


def _length(part, size):
    return len(range(*part.indices(size))) if isinstance(part, slice) else len(part)


def region(array, axes, halos=None, pad=None, scratch=False):
    """Task that builds the region of ``array`` selected by one :class:`AxisPull` per axis
    (with ``pad``, per axis, ``(before, after)`` zeros around it). ``scratch``: the task that
    reads the region returns nothing that shares its memory, so the region may be joined in
    the thread's reused scratch buffer.

    The largest piece is cut by the task itself (which runs where that block is). With
    ``halos`` (a :class:`Halos`), the other pieces that are not whole blocks are cut where
    their blocks live, by the halo tasks ``halos`` adds to the graph, so only the pieces travel
    between workers, not whole blocks; the task is complete after :meth:`Halos.add_to`.
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
    if halos is not None and len(blocks) > 1:
        primary = max(range(len(blocks)), key=lambda i: sizes[i][0])
        for i, (piece, whole_block) in enumerate(sizes):
            if i != primary and piece < whole_block:
                halos.request(blocks[i], parts[i], piece, whole_block, blocks, i)
                cut[i] = True
    return (_assemble, blocks, _Pulls(tuple(axes), tuple(cut),
                                      None if pad is None else tuple(pad), bool(scratch)))


def _cut_pieces(block, parts):
    """The pieces of one block that other blocks' output chunks read, as copies (so that the
    block itself can be released once its own output chunks are done)."""
    return tuple(np.array(_cut(block, p), copy=True) for p in parts)


def _signature(parts):
    return tuple((p.start, p.stop, p.step) if isinstance(p, slice) else p.tobytes()
                 for p in parts)


class Halos:
    """The halo tasks of one layer: the pieces that output chunks read from input blocks
    other than their primary one, cut where those blocks live.

    Every input block that others read gets **one** task that cuts all of its pieces
    (``(halo_name(name), source, *block, group)``, ``group`` 0), rather than one task per
    reading chunk: a distributed scheduler's cost is per task (about a millisecond of a
    worker's and of the scheduler's time each), and a task that other workers wait for must
    not queue behind long ones. A reader fetches the block's whole tuple of pieces, so the
    tuple is kept small: pieces go into it smallest first while the data that readers fetch
    but do not use stays within a quarter of the block; larger pieces get a task of their
    own (groups 1, 2, ...), as when neighbouring chunks read most of a block.
    """

    #: fetched-but-unused data a block's shared halo task may cause, as a fraction of the block
    WASTE = 0.25

    def __init__(self, name):
        self.name = halo_name(name)
        self._sources = {}     # array name -> number in the keys
        self._blocks = {}      # block key -> {signature: [parts, size, [(list, index), ...]]}
        self._sizes = {}       # block key -> elements of the block

    def request(self, block, parts, size, block_size, cells, index):
        """Make ``cells[index]`` (now ``block``'s key) the piece ``parts`` of it, once
        :meth:`add_to` has placed the halo tasks."""
        self._sources.setdefault(block[0], len(self._sources))
        pieces = self._blocks.setdefault(block, {})
        self._sizes[block] = block_size
        entry = pieces.setdefault(_signature(parts), [parts, size, []])
        entry[2].append((cells, index))

    def _groups(self, block):
        """The block's pieces split into the shared group and the ones on their own."""
        pieces = sorted(self._blocks[block].values(), key=lambda e: e[1])
        budget = self.WASTE * self._sizes[block]
        shared, total, readers, used = [], 0, 0, 0
        for entry in pieces:
            n = len(entry[2])
            waste = (readers + n) * (total + entry[1]) - (used + n * entry[1])
            if shared and waste > budget:
                break
            shared.append(entry)
            total, readers, used = total + entry[1], readers + n, used + n * entry[1]
        return [shared] + [[entry] for entry in pieces[len(shared):]]

    def add_to(self, graph):
        """Put the halo tasks into ``graph`` and point every requested cell at its piece."""
        for block in self._blocks:
            for group, entries in enumerate(self._groups(block)):
                key = (self.name, self._sources[block[0]], *block[1:], group)
                graph[key] = (_cut_pieces, block, tuple(e[0] for e in entries))
                for position, entry in enumerate(entries):
                    for cells, index in entry[2]:
                        cells[index] = (operator.getitem, key, position)
        self._blocks.clear()
        return graph


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
    halos = Halos(name)
    pulls = []
    for array, selects in sources:
        edges = [tuple(int(v) for v in np.cumsum((0,) + c)) for c in array.chunks]
        pulls.append([[axis_pull(e, sel) for sel in axis_selects]
                      for e, axis_selects in zip(edges, selects)])
    for index in np.ndindex(*[len(c) for c in out_chunks]):
        regions = [region(array, [axis[i] for axis, i in zip(per_axis, index)], halos)
                   for (array, _), per_axis in zip(sources, pulls)]
        values = _Items(tuple(axis[i] for axis, i in zip(items, index)))
        graph[(name, *index)] = (func, spec, values, *regions)
    return halos.add_to(graph)
