"""The stencil engine of the chunked convolutions.

Every output chunk is one task: it pulls its input region (:mod:`._graph`), runs the in-memory
:func:`fastdeconv.conv` or :func:`fastdeconv.conv_transpose` on it with that chunk's own
padding (:mod:`._chunks`), sums the partial results over input-channel chunks and adds the
bias. The four public convolutions and their input gradients are all such stencils:

=============================  ==========  ===============  ================================
result                         kind        reads            output chunks
=============================  ==========  ===============  ================================
conv                           conv        x                x's / stride
conv_transpose                 transpose   x                x's * stride
conv_backward grad_x           transpose   grad_output      x's (padding modes: then folded)
conv_transpose_backward grad_x conv        grad_output      x's
=============================  ==========  ===============  ================================
"""

import itertools
from dataclasses import dataclass

import numpy as np

from dask.base import tokenize

import fastdeconv
from . import _chunks
from ._graph import Halos, axis_pull, data_key, new_array, region, whole

__all__ = ["Stencil", "stencil", "conv_plans", "transposed_plans", "fold_padding"]


@dataclass(frozen=True)
class Stencil:
    """Static description shared by every block of one stencil."""

    kind: str            # "conv" or "transpose"
    stride: tuple
    dilation: tuple
    groups: int
    dtype: object


@dataclass(frozen=True, eq=False)
class _Block:
    """What one partial in-memory call of a block needs besides its arrays."""

    stencil: Stencil
    groups: int
    padding: tuple
    extend: tuple


def _partial(block, weight, x):
    """One in-memory (transposed) convolution of a pulled region."""
    s = block.stencil
    if s.kind == "conv":
        y = fastdeconv.conv(x, weight, stride=s.stride, padding=block.padding,
                            dilation=s.dilation, groups=block.groups)
    else:
        y = fastdeconv.conv_transpose(x, weight, stride=s.stride, padding=block.padding,
                                      dilation=s.dilation, groups=block.groups)
    if any(before or after for before, after in block.extend):
        y = np.pad(y, ((0, 0), (0, 0)) + block.extend)
    elif np.may_share_memory(y, x):     # x may be the thread's scratch buffer (._graph)
        y = y.copy()
    return y


def _zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def _finish(parts, bias):
    """Sum the partial results (in input-channel order) and add the bias, as in memory."""
    y = parts[0]
    for part in parts[1:]:
        y += part
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


# ------------------------------------------------------------------------- per-dim plans
# A plan is, per spatial dimension, one (select, padding, extend) per output chunk: `select` is
# the (start, stop) input range or an index array (padding modes), None when nothing is read.
def conv_plans(in_size, out_edges, kernel_extent, stride, pad_before, mode="zeros"):
    """Plans of a convolution whose output chunks have edges ``out_edges`` (one dimension)."""
    plans = []
    for lo, hi in _chunks.conv_windows(out_edges, kernel_extent, stride, pad_before):
        if lo >= 0 and hi <= in_size:
            plans.append(((lo, hi), (0, 0), (0, 0)))
        elif mode != "zeros":
            plans.append((_chunks.source_index(np.arange(lo, hi), in_size, mode), (0, 0), (0, 0)))
        elif max(lo, 0) >= min(hi, in_size):
            plans.append((None, (0, 0), (0, 0)))
        else:
            plans.append(((max(lo, 0), min(hi, in_size)), (max(-lo, 0), max(hi - in_size, 0)),
                          (0, 0)))
    return plans


def transposed_plans(in_size, out_edges, kernel_extent, stride, crop_before):
    """Plans of a transposed convolution whose output chunks have edges ``out_edges``."""
    return [(None if t.empty else (t.start, t.stop), t.crop, t.extend)
            for t in _chunks.transposed_sources(out_edges, in_size, kernel_extent, stride,
                                                crop_before)]


def _interior_crops(crops, kernel_extents, stride):
    """``(zeros, crops)`` per spatial dimension for a transposed convolution's region: the
    ``(before, after)`` zeros to join around it and the crops of the in-memory call on the
    joined region, each crop at least ``kernel_extent - 1`` (the crops of an interior chunk,
    whose region the engine reads in place: no zero of the equivalent convolution's padding
    is left to add). ``s`` zeros more on a side add ``s`` outputs there, so the crop grows by
    ``s`` per zero.

    >>> _interior_crops(((1, 3), (3, 3)), (4, 4), (2, 2))
    (((1, 0), (0, 0)), ((3, 3), (3, 3)))
    """
    zeros, local = [], []
    for (before, after), extent, s in zip(crops, kernel_extents, stride):
        pair = tuple(max(0, -(-(extent - 1 - c) // s)) for c in (before, after))
        zeros.append(pair)
        local.append((before + s * pair[0], after + s * pair[1]))
    return tuple(zeros), tuple(local)


def _weight_part(weight, kind, groups, block, part):
    """The rows (and, ungrouped, columns) of the weight that one partial call uses."""
    if kind == "conv":
        rows = weight[block.out[0]:block.out[1]]
        return rows[:, part[0]:part[1]] if groups == 1 else rows
    return weight[part[0]:part[1]]


def stencil(name, source, weight, bias, spec, plans, out_edges):
    """The dask array of a stencil over ``source`` (batch, channel, spatial chunks)."""
    c_edges = _chunks.offsets(source.chunks[1])
    out_per_group = weight.shape[0] // spec.groups if spec.kind == "conv" else weight.shape[1]
    blocks = _chunks.group_blocks(c_edges, spec.groups, out_per_group)
    graph = {}
    token = tokenize(source.name, weight, bias, spec, out_edges,
                     [[(p[0] if isinstance(p[0], tuple) else tokenize(p[0]), p[1], p[2])
                       for p in dim] for dim in plans])
    name = f"{name}-{token}"
    halos = Halos(name)
    spatial_edges = [_chunks.offsets(c) for c in source.chunks[2:]]
    batch = whole(source.chunks[0])
    grid = [range(len(dim)) for dim in plans]
    extents = tuple((k - 1) * d + 1 for k, d in zip(weight.shape[2:], spec.dilation))
    for bi, block in enumerate(blocks):
        wkeys = [data_key(f"{name}-w", _weight_part(weight, spec.kind, spec.groups, block, part),
                          graph) for part in block.parts]
        bkey = None if bias is None else data_key(f"{name}-b", bias[block.out[0]:block.out[1]],
                                                  graph)
        channels = [axis_pull(c_edges, part) for part in block.parts]
        for index in np.ndindex(*[len(g) for g in grid]):
            chosen = [dim[i] for dim, i in zip(plans, index)]
            sizes = tuple(out_edges[d][i + 1] - out_edges[d][i] for d, i in enumerate(index))
            padding = tuple(c[1] for c in chosen)
            # the zeros a chunk at a global edge reads go into the region's copy, and the
            # in-memory call reads the region in place (it joins it anyway; a padded call
            # would copy it again): a convolution gets no padding; a transposed convolution
            # gets zeros before and after that bring its crop to that of an interior chunk
            if spec.kind == "conv":
                pad, padding = padding, ((0, 0),) * len(padding)
            else:
                pad, padding = _interior_crops(padding, extents, spec.stride)
            local = _Block(spec, block.groups[1] - block.groups[0], padding,
                           tuple(c[2] for c in chosen))
            pad = ((0, 0), (0, 0)) + pad
            spatial = (None if any(c[0] is None for c in chosen) else
                       [axis_pull(edges, c[0]) for edges, c in zip(spatial_edges, chosen)])
            for b, batch_pull in enumerate(batch):
                shape = (source.chunks[0][b], block.out[1] - block.out[0]) + sizes
                if spatial is None:
                    parts = [(_zeros, shape, spec.dtype)]
                else:
                    parts = [(_partial, local, wkey,
                              region(source, [batch_pull, cpull, *spatial], halos, pad,
                                     scratch=True))
                             for wkey, cpull in zip(wkeys, channels)]
                graph[(name, b, bi, *index)] = (_finish, parts, bkey)
    chunks = (source.chunks[0], tuple(b.out[1] - b.out[0] for b in blocks),
              *[_chunks.chunks_from_offsets(e) for e in out_edges])
    return new_array(name, halos.add_to(graph), [source], chunks, spec.dtype)


# ---------------------------------------------------------------- padding-mode gradient fold
@dataclass(frozen=True, eq=False)
class _Fold:
    targets: tuple       # per spatial dimension: target cell (local) of each padded position
    sizes: tuple


def _fold(spec, grad):
    """Add the gradient of every padded cell to its source cell, one dimension at a time, in
    increasing padded position: the order of the in-memory operator."""
    for dim, (index, size) in enumerate(zip(spec.targets, spec.sizes)):
        axis = 2 + dim
        shape = list(grad.shape)
        shape[axis] = size
        folded = np.zeros(shape, dtype=grad.dtype)
        np.add.at(np.moveaxis(folded, axis, 0), index, np.moveaxis(grad, axis, 0))
        grad = folded
    return grad


def fold_padding(padded, x_chunks, pads, mode):
    """``grad_x`` chunked like ``x`` from the gradient over the padded input (chunked with the
    padding as its own first and last chunks)."""
    name = "fold-" + tokenize(padded.name, x_chunks, pads, mode)
    graph = {}
    halos = Halos(name)
    padded_edges = [_chunks.offsets(c) for c in padded.chunks[2:]]
    per_dim = []
    for chunks, (before, after) in zip(x_chunks[2:], pads):
        n = sum(chunks)
        source = _chunks.source_index(np.arange(-before, n + after), n, mode)
        edges = _chunks.offsets(chunks)
        dim = []
        for a, b in zip(edges[:-1], edges[1:]):
            positions = np.flatnonzero((source >= a) & (source < b))
            dim.append((positions, source[positions] - a, b - a))
        per_dim.append(dim)
    channels = whole(padded.chunks[1])
    batch = whole(padded.chunks[0])
    for index in np.ndindex(*[len(d) for d in per_dim]):
        chosen = [d[i] for d, i in zip(per_dim, index)]
        pulls = [axis_pull(edges, c[0]) for edges, c in zip(padded_edges, chosen)]
        spec = _Fold(tuple(c[1] for c in chosen), tuple(c[2] for c in chosen))
        for (b, batch_pull), (c, channel_pull) in itertools.product(enumerate(batch),
                                                                     enumerate(channels)):
            graph[(name, b, c, *index)] = (_fold, spec, region(
                padded, [batch_pull, channel_pull, *pulls], halos))
    chunks = (padded.chunks[0], padded.chunks[1], *x_chunks[2:])
    return new_array(name, halos.add_to(graph), [padded], chunks, padded.dtype)
