"""Weight and bias gradients of the chunked convolutions: tree reductions over chunks.

The weight gradient is a sum over batch and space. Each chunk of the array that drives it
(``grad_output`` for :func:`conv_backward`, ``x`` for :func:`conv_transpose_backward`) gives one
partial gradient, computed by the in-memory backward function on that chunk and the exact
region of the other array it meets (with the chunk's own padding); the partials are summed by
``dask.array.sum(split_every=...)``, a tree whose depth grows with the logarithm of the number
of chunks. Channel chunks are joined inside each task (every partial sees all channels).
"""

import itertools
from dataclasses import dataclass

import numpy as np

from dask.base import tokenize

import fastdeconv
from . import _chunks
from ._graph import Halos, axis_pull, data_key, new_array, region, whole

__all__ = ["weight_gradient", "bias_gradient", "SPLIT_EVERY"]

#: Partial sums combined per node of the reduction tree.
SPLIT_EVERY = 8


@dataclass(frozen=True, eq=False)
class _Partial:
    transpose: bool
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


def _partial(spec, weight, grad_output, x):
    backward = fastdeconv.conv_transpose_backward if spec.transpose else fastdeconv.conv_backward
    grad = backward(grad_output, x, weight, stride=spec.stride, padding=spec.padding,
                    dilation=spec.dilation, groups=spec.groups, grads=("weight",))[1]
    return grad[np.newaxis]


def _zeros(shape, dtype):
    return np.zeros((1,) + shape, dtype=dtype)


def _full(array):
    """Pull of every channel of ``array`` (channel chunks are joined)."""
    return axis_pull(_chunks.offsets(array.chunks[1]), (0, array.shape[1]))


def weight_gradient(grad_output, x, weight, *, transpose, stride, dilation, groups, plans,
                    dtype):
    """Tree-summed weight gradient.

    ``plans`` holds, per spatial dimension and per chunk of the driving array (``grad_output``
    unless ``transpose``, then ``x``), ``(select, padding)``: the range of the other array that
    chunk meets (None: it meets nothing) and the in-memory call's padding.
    """
    driver, other = (x, grad_output) if transpose else (grad_output, x)
    name = "grad-weight-" + tokenize(grad_output.name, x.name, weight, transpose, stride,
                                     dilation, groups)
    graph = {}
    halos = Halos(name)
    wkey = data_key(f"{name}-w", weight, graph)
    batch_edges = _chunks.offsets(driver.chunks[0])
    other_batch = _chunks.offsets(other.chunks[0])
    driver_batch = whole(driver.chunks[0])
    other_spatial = [_chunks.offsets(c) for c in other.chunks[2:]]
    driver_full, other_full = _full(driver), _full(other)
    count = 0
    for b in range(len(driver.chunks[0])):
        batch_pull = driver_batch[b]
        other_batch_pull = axis_pull(other_batch, (batch_edges[b], batch_edges[b + 1]))
        for index in itertools.product(*[range(len(c)) for c in driver.chunks[2:]]):
            chosen = [dim[i] for dim, i in zip(plans, index)]
            key = (name, count) + (0,) * weight.ndim
            count += 1
            if any(c[0] is None for c in chosen):
                graph[key] = (_zeros, weight.shape, dtype)
                continue
            own = region(driver, [batch_pull, driver_full,
                                  *[whole(c)[i] for c, i in zip(driver.chunks[2:], index)]],
                         halos)
            met = region(other, [other_batch_pull, other_full,
                                 *[axis_pull(edges, c[0]) for edges, c in zip(other_spatial,
                                                                              chosen)]],
                         halos)
            spec = _Partial(transpose, stride, tuple(c[1] for c in chosen), dilation, groups)
            gy, xx = (met, own) if transpose else (own, met)
            graph[key] = (_partial, spec, wkey, gy, xx)
    chunks = ((1,) * count,) + tuple((n,) for n in weight.shape)
    partials = new_array(name, halos.add_to(graph), [grad_output, x], chunks, dtype)
    return partials.sum(axis=0, split_every=SPLIT_EVERY)


def bias_gradient(grad_output, dtype):
    """``grad_output`` summed over batch and space, as a tree."""
    axes = (0,) + tuple(range(2, grad_output.ndim))
    return grad_output.astype(dtype).sum(axis=axes, split_every=SPLIT_EVERY)
