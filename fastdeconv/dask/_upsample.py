"""Chunked upsamplers: :func:`resize`, :func:`max_pool`, :func:`max_unpool`,
:func:`pixel_shuffle` and :func:`pixel_unshuffle`.

Batch and channels pass through (resize, pooling) or are regrouped exactly (pixel shuffles);
each output chunk reads the exact spatial range its index arithmetic needs (:mod:`._chunks`).
"""

import math
import operator
from dataclasses import dataclass

import numpy as np

from dask.base import tokenize

import fastdeconv
from . import _chunks
from ._graph import map_regions, new_array
from ._docs import documented
from ._inputs import as_dask, empty_batch, extent, per_dim

__all__ = ["resize", "max_pool", "max_unpool", "pixel_shuffle", "pixel_unshuffle"]


def _same(chunks):
    """Selections of an axis that passes through: each output chunk reads its own block."""
    edges = _chunks.offsets(chunks)
    return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _spatial_out(x, out_size, rule):
    """Output edges per spatial dimension from ``rule(input edges, out size, dim)``."""
    return [rule(_chunks.offsets(c), o, d) for d, (c, o) in enumerate(zip(x.chunks[2:], out_size))]


def _ranges(edges):
    return list(zip(edges[:-1], edges[1:]))


# ---------------------------------------------------------------------------------- resize
@dataclass(frozen=True, eq=False)
class _Resize:
    dtype: object


def _resize_block(spec, items, x):
    """Apply each dimension's rows of the interpolation matrix (gathers for nearest modes)."""
    y = np.asarray(x).astype(spec.dtype, copy=False)
    rows = items.values[2:]
    order = sorted(range(len(rows)), key=lambda d: rows[d][1] / rows[d][2])
    for d in order:
        matrix, _, _ = rows[d]
        if matrix is None:
            continue
        axis = 2 + d
        moved = np.moveaxis(y, axis, 0)
        if isinstance(matrix, np.ndarray):
            out = np.take(moved, matrix, axis=0)
        else:
            out = (matrix @ moved.reshape(moved.shape[0], -1)).reshape(
                (matrix.shape[0],) + moved.shape[1:])
        y = np.moveaxis(out, 0, axis)
    return np.ascontiguousarray(y, dtype=spec.dtype)


def _dim_matrix(ndim, d, n, out, size, scale_factor, kwargs, dtype):
    """The ``(out, n)`` interpolation matrix of spatial dimension ``d`` alone."""
    shape = (1,) + tuple(n if e == d else 1 for e in range(ndim))
    if size is not None:
        probe_size = tuple(out if e == d else 1 for e in range(ndim))
        return fastdeconv.sparse.resize_matrix(shape, probe_size, dtype=dtype, **kwargs)
    factors = (scale_factor,) * ndim if np.ndim(scale_factor) == 0 else tuple(scale_factor)
    probe_scale = tuple(float(factors[d]) if e == d else 1.0 for e in range(ndim))
    return fastdeconv.sparse.resize_matrix(shape, scale_factor=probe_scale, dtype=dtype, **kwargs)


@documented
def resize(x, size=None, *, scale_factor=None, mode="nearest", align_corners=None,
           antialias=False, coordinate_transformation_mode=None, nearest_mode=None,
           cubic_coeff_a=None, exclude_outside=False):
    x = as_dask(x, "x")
    kwargs = dict(mode=mode, align_corners=align_corners, antialias=antialias,
                  coordinate_transformation_mode=coordinate_transformation_mode,
                  nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a,
                  exclude_outside=exclude_outside)
    probe = fastdeconv.resize(empty_batch(x), size, scale_factor=scale_factor, **kwargs)
    dtype, out_size, ndim = probe.dtype, probe.shape[2:], x.ndim - 2
    out_edges = _spatial_out(x, out_size, lambda e, o, d: _chunks.upsampled_output_offsets(e, o))
    selects, items = [_same(x.chunks[0]), _same(x.chunks[1])], [[None] * len(x.chunks[0]),
                                                               [None] * len(x.chunks[1])]
    for d, (n, o, edges) in enumerate(zip(x.shape[2:], out_size, out_edges)):
        matrix = _dim_matrix(ndim, d, n, o, size, scale_factor, kwargs, dtype).tocsr()
        if matrix.shape != (o, n):
            raise RuntimeError(f"resize matrix of dimension {d} has shape {matrix.shape}, "
                               f"expected {(o, n)}")
        dim_selects, dim_items = [], []
        for (o0, o1), (start, stop, rows) in zip(_ranges(edges),
                                                 _chunks.resize_sources(matrix, edges)):
            dim_selects.append((start, stop))
            rows.sum_duplicates()
            gather = (rows.nnz == rows.shape[0] and np.all(np.diff(rows.indptr) == 1)
                      and np.all(rows.data == 1))
            if gather and o == n and np.array_equal(rows.indices + start, np.arange(o0, o1)):
                block = None                        # identity along this dimension
            elif gather:
                block = rows.indices.astype(np.intp)
            else:
                block = rows
            dim_items.append((block, o1 - o0, stop - start))
        selects.append(dim_selects)
        items.append(dim_items)
    name = "resize-" + tokenize(x.name, size, scale_factor, kwargs)
    out_chunks = x.chunks[:2] + tuple(_chunks.chunks_from_offsets(e) for e in out_edges)
    graph = map_regions(name, _resize_block, _Resize(dtype), [(x, selects)], items,
                        out_chunks, dtype)
    return new_array(name, graph, [x], out_chunks, dtype)


# --------------------------------------------------------------------------------- pooling
@dataclass(frozen=True, eq=False)
class _Pool:
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    in_size: tuple


def _pool_block(spec, items, x):
    """In-memory max pooling of the region; kept windows; indices made global."""
    y, idx = fastdeconv.max_pool(x, spec.kernel, stride=spec.stride, padding=spec.padding,
                                 dilation=spec.dilation, ceil_mode=spec.ceil_mode,
                                 return_indices=True)
    windows = items.values[2:]
    keep = (slice(None), slice(None)) + tuple(slice(w.keep, w.keep + w.count) for w in windows)
    y, idx = np.ascontiguousarray(y[keep]), idx[keep]
    local = np.unravel_index(idx, x.shape[2:])
    idx = np.ravel_multi_index(tuple(c + w.start for c, w in zip(local, windows)), spec.in_size)
    return y, idx.astype(np.int64, copy=False)


@documented
def max_pool(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    x = as_dask(x, "x")
    y0, _ = fastdeconv.max_pool(empty_batch(x), kernel_size, stride=stride, padding=padding,
                                dilation=dilation, ceil_mode=ceil_mode, return_indices=True)
    ndim = x.ndim - 2
    kernel = per_dim(kernel_size, ndim)
    strides = kernel if stride is None else per_dim(stride, ndim)
    pads, dilations = per_dim(padding, ndim), per_dim(dilation, ndim)
    out_edges = _spatial_out(x, y0.shape[2:],
                             lambda e, o, d: _chunks.strided_output_offsets(e, strides[d], o))
    selects = [_same(x.chunks[0]), _same(x.chunks[1])]
    items = [[None] * len(x.chunks[0]), [None] * len(x.chunks[1])]
    for d, (n, edges, k_e) in enumerate(zip(x.shape[2:], out_edges, extent(kernel, dilations))):
        windows = _chunks.pool_windows(edges, n, k_e, strides[d], pads[d])
        selects.append([(w.start, w.stop) for w in windows])
        items.append(windows)
    spec = _Pool(kernel, strides, pads, dilations, bool(ceil_mode), tuple(x.shape[2:]))
    name = "max-pool-" + tokenize(x.name, spec)
    out_chunks = x.chunks[:2] + tuple(_chunks.chunks_from_offsets(e) for e in out_edges)
    graph = map_regions(name + "-both", _pool_block, spec, [(x, selects)], items, out_chunks,
                        y0.dtype)
    both = [k for k in graph if k[0] == name + "-both"]
    values = {(name, *k[1:]): (operator.getitem, k, 0) for k in both}
    switches = {(name + "-indices", *k[1:]): (operator.getitem, k, 1) for k in both}
    y = new_array(name, {**graph, **values}, [x], out_chunks, y0.dtype)
    if not return_indices:
        return y
    return y, new_array(name + "-indices", {**graph, **switches}, [x], out_chunks, np.int64)


@dataclass(frozen=True, eq=False)
class _Unpool:
    kernel: tuple
    stride: tuple
    padding: tuple
    out_size: tuple
    dtype: object


def _unpool_block(spec, items, x, indices):
    """Scatter the region's values that land in this output chunk (last one wins)."""
    ranges = items.values[2:]
    out_start = [r[0] for r in ranges]
    sizes = tuple(r[1] - r[0] for r in ranges)
    in_start = [r[2] for r in ranges]
    planes = x.shape[0] * x.shape[1]
    out = np.zeros(x.shape[:2] + sizes, dtype=spec.dtype)
    if x.size == 0:
        return out
    limit = math.prod(spec.out_size)
    flat = np.asarray(indices).reshape(planes, -1).astype(np.int64)
    if flat.min() < 0 or flat.max() >= limit:
        value = int(flat[(flat < 0) | (flat >= limit)][0])
        raise ValueError(f"indices holds {value}, outside the plane of {limit} positions (spatial "
                   f"shape {spec.out_size}); indices are flat positions within each (n, c) "
                   f"plane, in [0, {limit})")
    coords = np.unravel_index(flat, spec.out_size)
    position = np.indices(x.shape[2:]).reshape(len(sizes), 1, -1)
    inside = np.ones(flat.shape, dtype=bool)
    for d, c in enumerate(coords):
        low = (position[d] + in_start[d]) * spec.stride[d] - spec.padding[d]
        if np.any((c < low) | (c >= low + spec.kernel[d])):
            raise ValueError(
                f"indices must lie in the pooling window of their position (kernel_size "
                f"{spec.kernel}, stride {spec.stride}, padding {spec.padding}), as max_pool "
                f"returns them: fastdeconv.dask.max_unpool reads only the windows that meet "
                f"each output chunk; use fastdeconv.max_unpool for indices that point "
                f"elsewhere")
        inside &= (c >= out_start[d]) & (c < out_start[d] + sizes[d])
    local = np.ravel_multi_index(tuple(c - s for c, s in zip(coords, out_start)), sizes,
                                 mode="clip")
    target = (np.arange(planes)[:, None] * math.prod(sizes) + local)[inside]
    values = np.asarray(x, dtype=spec.dtype).reshape(planes, -1)[inside]
    reverse = target[::-1]
    unique, first = np.unique(reverse, return_index=True)    # last occurrence wins
    out.reshape(-1)[unique] = values[::-1][first]
    return out


@documented
def max_unpool(x, indices, kernel_size, *, stride=None, padding=0, output_size=None):
    x, indices = as_dask(x, "x"), as_dask(indices, "indices")
    probe = fastdeconv.max_unpool(empty_batch(x), empty_batch(indices), kernel_size,
                                  stride=stride, padding=padding, output_size=output_size)
    if indices.shape != x.shape:
        raise ValueError(f"indices must have shape {x.shape}, got {indices.shape}")
    ndim = x.ndim - 2
    kernel = per_dim(kernel_size, ndim)
    strides = kernel if stride is None else per_dim(stride, ndim)
    pads = per_dim(padding, ndim)
    out_size = probe.shape[2:]
    out_edges = _spatial_out(x, out_size, lambda e, o, d: _chunks.upsampled_output_offsets(
        e, o, strides[d]))
    selects = [_same(x.chunks[0]), _same(x.chunks[1])]
    items = [[None] * len(x.chunks[0]), [None] * len(x.chunks[1])]
    for d, (n, edges) in enumerate(zip(x.shape[2:], out_edges)):
        sources = _chunks.unpool_sources(edges, n, kernel[d], strides[d], pads[d])
        # a chunk that no window meets (kernel < stride) still reads one cell, which it drops
        selects.append([s if s[1] > s[0] else (min(s[0], n - 1), min(s[0], n - 1) + 1)
                        for s in sources])
        sources = [(sel[0], sel[1]) for sel in selects[-1]]
        items.append([(q0, q1, s[0]) for (q0, q1), s in zip(_ranges(edges), sources)])
    spec = _Unpool(kernel, strides, pads, tuple(out_size), probe.dtype)
    name = "max-unpool-" + tokenize(x.name, indices.name, spec)
    out_chunks = x.chunks[:2] + tuple(_chunks.chunks_from_offsets(e) for e in out_edges)
    graph = map_regions(name, _unpool_block, spec, [(x, selects), (indices, selects)], items,
                        out_chunks, probe.dtype)
    return new_array(name, graph, [x, indices], out_chunks, probe.dtype)


# ------------------------------------------------------------------------- pixel shuffles
@dataclass(frozen=True, eq=False)
class _Shuffle:
    factor: tuple
    order: str
    up: bool


def _shuffle_block(spec, items, x):
    op = fastdeconv.pixel_shuffle if spec.up else fastdeconv.pixel_unshuffle
    return op(x, spec.factor, order=spec.order)


def _shuffle(x, factor, order, up):
    op = fastdeconv.pixel_shuffle if up else fastdeconv.pixel_unshuffle
    x = as_dask(x, "x")
    probe = op(empty_batch(x), factor, order=order)
    r = per_dim(factor, x.ndim - 2)
    block = math.prod(r)
    c_in, c_out = x.shape[1], probe.shape[1]
    c_edges = _chunks.offsets(x.chunks[1])
    if up:      # output channel c reads input channels c * R .. (CRD) or o * C + c (DCR)
        out_c = _chunks.strided_output_offsets(c_edges, block, c_out)
        channel = [(c0 * block, c1 * block) if order == "CRD" else
                   np.array([o * c_out + c for o in range(block) for c in range(c0, c1)])
                   for c0, c1 in _ranges(out_c)]
        out_edges = _spatial_out(x, probe.shape[2:], lambda e, o, d: tuple(v * r[d] for v in e))
        spatial = [[(q0 // f, q1 // f) for q0, q1 in _ranges(e)] for e, f in zip(out_edges, r)]
    else:       # CRD: input channel c gives outputs c * R ..; DCR: one channel chunk
        out_c = tuple(v * block for v in c_edges) if order == "CRD" else (0, c_out)
        channel = (_ranges(c_edges) if order == "CRD" else [(0, c_in)])
        out_edges = _spatial_out(x, probe.shape[2:], lambda e, o, d:
                                 _chunks.strided_output_offsets(e, r[d], o))
        spatial = [[(q0 * f, q1 * f) for q0, q1 in _ranges(e)] for e, f in zip(out_edges, r)]
    selects = [_same(x.chunks[0]), channel, *spatial]
    out_chunks = (x.chunks[0], _chunks.chunks_from_offsets(out_c),
                  *[_chunks.chunks_from_offsets(e) for e in out_edges])
    items = [[None] * len(s) for s in selects]
    spec = _Shuffle(r, order, up)
    name = ("pixel-shuffle-" if up else "pixel-unshuffle-") + tokenize(x.name, spec)
    graph = map_regions(name, _shuffle_block, spec, [(x, selects)], items, out_chunks,
                        probe.dtype)
    return new_array(name, graph, [x], out_chunks, probe.dtype)


@documented
def pixel_shuffle(x, upscale_factor, *, order="CRD"):
    return _shuffle(x, upscale_factor, order, up=True)


@documented
def pixel_unshuffle(x, downscale_factor, *, order="CRD"):
    return _shuffle(x, downscale_factor, order, up=False)
