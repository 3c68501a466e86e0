"""Argument handling shared by the operators of :mod:`fastdeconv.dask`.

Validation is the in-memory operator's own: each public function first calls the in-memory
function on an *empty batch* of the same shape (no data is allocated), which raises exactly the
in-memory errors and gives the output's shape and dtype.
"""

import numbers

import numpy as np

import dask.array as da

__all__ = ["as_dask", "in_memory", "empty_batch", "per_dim", "padding_pairs", "extent"]


def as_dask(value, name):
    """A dask array; NumPy arrays and array-likes are wrapped (``dask.array.asarray``)."""
    if not isinstance(value, da.Array):
        if hasattr(value, "__dask_graph__"):
            raise TypeError(f"{name} must be a dask array or an in-memory array, got "
                            f"{type(value).__name__}")
        value = da.asarray(np.asarray(value))
    if any(isinstance(c, float) and np.isnan(c) for dim in value.chunks for c in dim):
        raise ValueError(f"{name} has unknown chunk sizes {value.chunks}; call "
                         f"{name}.compute_chunk_sizes() first")
    if value.ndim < 3:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with at least one spatial "
                         f"dimension, got shape {value.shape}")
    return value


def in_memory(value, name):
    """``value`` unchanged unless it is a chunked (dask) array: a ValueError naming it."""
    if value is not None and (isinstance(value, da.Array) or hasattr(value, "__dask_graph__")):
        raise ValueError(
            f"{name} must be an in-memory array (it is sent whole to the task of every chunk), "
            f"got a dask array of shape {getattr(value, 'shape', '?')} with chunks "
            f"{getattr(value, 'chunks', '?')}; pass {name}.compute() instead")
    return value


def empty_batch(array):
    """An empty NumPy array with ``array``'s shape except a batch of 0 (allocates nothing)."""
    return np.empty((0,) + tuple(array.shape[1:]), dtype=array.dtype)


def per_dim(value, ndim):
    """An int or a sequence of ints as one int per spatial dimension (already validated)."""
    if isinstance(value, numbers.Integral):
        return (int(value),) * ndim
    return tuple(int(v) for v in value)


def extent(kernel, dilation):
    """Dilated kernel extents ``d (k - 1) + 1``."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def padding_pairs(padding, in_size, kernel, stride, dilation, transpose=False):
    """``(before, after)`` per spatial dimension for any ``padding`` the operators accept."""
    from .. import shapes

    ndim = len(in_size)
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        return shapes.same_padding(in_size, kernel, stride=stride, dilation=dilation,
                                   transpose=transpose, lower=padding == "same_lower")
    if isinstance(padding, numbers.Integral):
        return ((int(padding),) * 2,) * ndim
    pairs = []
    for p in padding:
        pairs.append((int(p), int(p)) if isinstance(p, numbers.Integral)
                     else (int(p[0]), int(p[1])))
    return tuple(pairs)
