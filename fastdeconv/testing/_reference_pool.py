"""Plain-Python/NumPy references of max pooling, max unpooling and pixel shuffling.

Loops over output positions with scalar index arithmetic (no shared code with the kernels or
with ``fastdeconv._pool`` / ``fastdeconv._shuffle``); slow, for small arrays.
"""

import itertools
import math

import numpy as np

__all__ = ["max_pool_reference", "max_unpool_reference", "pixel_shuffle_reference",
           "pixel_unshuffle_reference"]


def _tuple(value, ndim):
    return (int(value),) * ndim if np.ndim(value) == 0 else tuple(int(v) for v in value)


def _dtype(x):
    return np.float32 if x.dtype in (np.float16, np.float32) else np.float64


def max_pool_reference(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Reference :func:`fastdeconv.max_pool`: ``(y, indices)``.

    Scans each window in C order keeping ``v`` when ``v > max`` or ``v`` is NaN (PyTorch's
    rule: first maximum, last NaN); padding positions are skipped.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import max_pool_reference
    >>> y, idx = max_pool_reference(np.array([[[1.0, 3.0, 3.0, 2.0]]]), 2, stride=1)
    >>> y.tolist(), idx.tolist()
    ([[[3.0, 3.0, 3.0]]], [[[1, 1, 2]]])
    """
    x = np.asarray(x)
    ndim = x.ndim - 2
    k = _tuple(kernel_size, ndim)
    s = k if stride is None else _tuple(stride, ndim)
    p, d = _tuple(padding, ndim), _tuple(dilation, ndim)
    out = []
    for n, kk, ss, pp, dd in zip(x.shape[2:], k, s, p, d):
        span = dd * (kk - 1) + 1
        if ceil_mode:
            size = -(-(n + 2 * pp - span) // ss) + 1
            if (size - 1) * ss >= n + pp:
                size -= 1
        else:
            size = (n + 2 * pp - span) // ss + 1
        out.append(size)
    xf = x.astype(np.float64)
    y = np.empty(x.shape[:2] + tuple(out))
    idx = np.empty(y.shape, dtype=np.int64)
    for plane in itertools.product(*map(range, x.shape[:2])):
        for o in itertools.product(*map(range, out)):
            best, where = -math.inf, None
            # only the taps that land inside the input (the others are skipped anyway): a
            # kernel of 2**40 taps over a 1-sample input has one
            taps_inside = []
            for oo, ss, pp, dd, kk, n in zip(o, s, p, d, k, x.shape[2:]):
                start = oo * ss - pp
                lo = max(0, -(start // dd))
                taps_inside.append(range(lo, max(lo, min(kk, (n - 1 - start) // dd + 1))))
            for taps in itertools.product(*taps_inside):
                pos = tuple(oo * ss - pp + t * dd for oo, ss, pp, t, dd in zip(o, s, p, taps, d))
                if not all(0 <= q < n for q, n in zip(pos, x.shape[2:])):
                    continue
                flat = int(np.ravel_multi_index(pos, x.shape[2:]))
                v = xf[plane + pos]
                if where is None:
                    where = flat
                if v > best or math.isnan(v):
                    best, where = v, flat
            y[plane + o] = best
            idx[plane + o] = where
    return y.astype(_dtype(x)), idx


def max_unpool_reference(x, indices, output_size):
    """Reference :func:`fastdeconv.max_unpool` for the *spatial* ``output_size``.

    Writes ``x`` in C order at its flat ``indices`` of each plane (the last write wins).
    """
    x = np.asarray(x)
    indices = np.asarray(indices)
    out_size = tuple(int(v) for v in output_size)
    y = np.zeros(x.shape[:2] + out_size)
    for n, c in itertools.product(*map(range, x.shape[:2])):
        plane = y[n, c].reshape(-1)
        for value, index in zip(x[n, c].reshape(-1), indices[n, c].reshape(-1)):
            plane[int(index)] = value
    return y.astype(_dtype(x))


def _phase_positions(spatial, factors):
    for j in itertools.product(*(range(n * r) for n, r in zip(spatial, factors))):
        phase = 0
        for jj, r in zip(j, factors):
            phase = phase * r + jj % r
        yield j, phase, tuple(jj // r for jj, r in zip(j, factors))


def pixel_shuffle_reference(x, upscale_factor, *, order="CRD"):
    """Reference :func:`fastdeconv.pixel_shuffle`, one output element at a time.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import pixel_shuffle_reference
    >>> pixel_shuffle_reference(np.arange(4.0).reshape(1, 4, 1), 2).tolist()
    [[[0.0, 1.0], [2.0, 3.0]]]
    """
    x = np.asarray(x)
    ndim = x.ndim - 2
    r = _tuple(upscale_factor, ndim)
    blocks = math.prod(r)
    c_out = x.shape[1] // blocks
    y = np.empty((x.shape[0], c_out) + tuple(n * f for n, f in zip(x.shape[2:], r)))
    for n, c in itertools.product(range(x.shape[0]), range(c_out)):
        for j, phase, src in _phase_positions(x.shape[2:], r):
            channel = c * blocks + phase if order == "CRD" else phase * c_out + c
            y[(n, c) + j] = x[(n, channel) + src]
    return y.astype(_dtype(x))


def pixel_unshuffle_reference(x, downscale_factor, *, order="CRD"):
    """Reference :func:`fastdeconv.pixel_unshuffle`, one input element at a time."""
    x = np.asarray(x)
    ndim = x.ndim - 2
    r = _tuple(downscale_factor, ndim)
    blocks = math.prod(r)
    small = tuple(n // f for n, f in zip(x.shape[2:], r))
    c_in = x.shape[1]
    y = np.empty((x.shape[0], c_in * blocks) + small)
    for n, c in itertools.product(range(x.shape[0]), range(c_in)):
        for j, phase, dst in _phase_positions(small, r):
            channel = c * blocks + phase if order == "CRD" else phase * c_in + c
            y[(n, channel) + dst] = x[(n, c) + j]
    return y.astype(_dtype(x))
