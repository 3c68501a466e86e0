"""Explicit sparse matrices of the upsampling operators, by index arithmetic.

:func:`resize_matrix` is the Kronecker product of one small matrix per spatial dimension (the
interpolation plan of that dimension), :func:`max_unpool_matrix` places a one at
``(c, indices[c, i]), (c, i)`` and :func:`pixel_shuffle_matrix` is the permutation written
out by its formula. The public names are exported by :mod:`fastdeconv.sparse`.

With ``data_format="channels_last"`` a matrix acts on a channels-last sample ``(*spatial,
C)`` raveled in C order (the channel index fastest), and is built by the same index
arithmetic in that order, not by permuting the channels-first matrix.
"""

import numpy as np
import scipy.sparse

from ._docstrings import docfiller
from ._formats import is_channels_last
from ._pool import _check_indices
from ._resize_plan import resolve_resize
from ._shuffle import ORDERS
from ._validation import as_int_tuple, normalize_tuple

__all__ = ["resize_matrix", "max_unpool_matrix", "pixel_shuffle_matrix"]


def _sample_shape(input_shape, data_format, name="input_shape", *, min_ndim=2, max_ndim=4):
    """``(shape, channels_last)``: ``input_shape`` as a tuple of positive ints, ``(C,
    *spatial)`` or ``(*spatial, C)`` as ``data_format`` says (validated for its rank)."""
    is_channels_last(data_format)       # an unknown data_format fails before the shape
    expected = "(*spatial, C)" if is_channels_last(data_format) else "(C, *spatial)"
    shape = as_int_tuple(input_shape, name, min_value=1,
                         expected=f"a sequence of ints {expected}")
    if not min_ndim <= len(shape) <= max_ndim:
        raise ValueError(
            f"{name} must be the shape {expected} of one sample with 1 to {max_ndim - 1} "
            f"spatial dimensions (no batch dimension), got {input_shape!r}")
    return shape, is_channels_last(data_format, len(shape) - 1)


def _channels_spatial(shape, channels_last):
    """``(C, spatial)`` of a sample shape."""
    return (shape[-1], shape[:-1]) if channels_last else (shape[0], shape[1:])


@docfiller
def resize_matrix(input_shape, size=None, *, scale_factor=None, mode="nearest",
                  align_corners=None, antialias=False, coordinate_transformation_mode=None,
                  nearest_mode=None, cubic_coeff_a=None, exclude_outside=False,
                  dtype=np.float64, data_format="channels_first"):
    """Sparse matrix of :func:`fastdeconv.resize` acting on one sample.

    Returns ``M`` such that ``resize(x, ..., data_format=data_format)[n].ravel() == M @
    x[n].ravel()`` for every sample ``x[n]`` of shape ``input_shape``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one input sample (no batch dimension), ``(C, *spatial)`` or, with
        ``data_format="channels_last"``, ``(*spatial, C)``; 1 to 3 spatial dimensions.
    %(resize_parameters)s
    dtype : {float64, float32}, default float64
        dtype of the matrix; it also selects PyTorch's float32 or float64 index arithmetic of
        the nearest modes, as :func:`fastdeconv.resize` does for inputs of that dtype.
    %(data_format)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C * prod(out_spatial), C * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order of the
        sample's layout (channel fastest in channels-last).

    Raises
    ------
    ValueError, TypeError
        As :func:`fastdeconv.resize`, or for a bad ``input_shape`` or ``dtype``.

    See Also
    --------
    fastdeconv.resize, fastdeconv.resize_backward : ``M @ x`` and ``M.T @ g``, fast.

    Notes
    -----
    Resizing is separable, so ``M = I_C (x) A_1 (x) ... (x) A_d`` (Kronecker products;
    ``A_1 (x) ... (x) A_d (x) I_C`` in channels-last), where
    ``A_k`` is the ``(out_k, in_k)`` interpolation matrix of spatial dimension ``k``: row
    ``o`` of ``A_k`` holds the weights of the input pixels that output ``o`` interpolates
    (clamped at the edges, repeated indices summed). The ``A_k`` come from the same
    per-dimension plans as the compiled kernels, computed by index arithmetic from the
    coordinate formulas, never by applying the operator to unit vectors. Weights that are
    exactly zero are not stored.

    Examples
    --------
    >>> from fastdeconv.sparse import resize_matrix
    >>> resize_matrix((1, 3), 6, mode="linear").toarray()
    array([[1.  , 0.  , 0.  ],
           [0.75, 0.25, 0.  ],
           [0.25, 0.75, 0.  ],
           [0.  , 0.75, 0.25],
           [0.  , 0.25, 0.75],
           [0.  , 0.  , 1.  ]])
    >>> resize_matrix((2, 4, 4), scale_factor=0.5, mode="area").shape   # 2 channels
    (8, 32)
    """
    shape, channels_last = _sample_shape(input_shape, data_format)
    channels, spatial = _channels_spatial(shape, channels_last)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    spec = resolve_resize(
        spatial, size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
        antialias=antialias, coordinate_transformation_mode=coordinate_transformation_mode,
        nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
    )
    identity = scipy.sparse.identity(channels, dtype=dtype, format="csr")
    factors = []
    for plan in spec.plans(dtype):
        factor = scipy.sparse.csr_array(
            (plan.weights.astype(dtype), plan.indices.copy(), plan.offsets.copy()),
            shape=(plan.n_out, plan.n_in))
        factor.sum_duplicates()
        factors.append(factor)
    factors = factors + [identity] if channels_last else [identity] + factors
    matrix = factors[0]
    for factor in factors[1:]:
        matrix = scipy.sparse.kron(matrix, factor, format="csr")
    return scipy.sparse.csr_array(matrix)


@docfiller
def max_unpool_matrix(indices, input_shape, output_shape, *, data_format="channels_first"):
    """Sparse matrix of :func:`fastdeconv.max_unpool` for the indices of one sample.

    Returns ``M`` such that ``max_unpool(x, indices, ..., data_format=data_format)[n].ravel()
    == M @ x[n].ravel()`` when ``indices`` is ``indices[n]`` of the batch.

    Parameters
    ----------
    indices : array_like of int, shape (C, \\*spatial) or (\\*spatial, C)
        Flat positions within each output plane (one sample of ``max_pool``'s indices, in
        the layout ``data_format``).
    input_shape : sequence of int
        ``(C, *spatial)`` or ``(*spatial, C)``, the shape of one input sample; must equal
        ``indices.shape``.
    output_shape : sequence of int
        ``(C, *out_spatial)`` (``(*out_spatial, C)`` in channels-last) or the spatial output
        size ``out_spatial``.
    %(data_format)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C * prod(out_spatial), C * prod(spatial)), float64
        A 0/1 matrix with at most one entry per row and per column.

    Raises
    ------
    TypeError, ValueError
        TypeError if ``indices`` does not have an integer dtype; ValueError if the shapes
        disagree or an index is outside the output plane.

    See Also
    --------
    fastdeconv.max_unpool, fastdeconv.max_unpool_backward : ``M @ x`` and ``M.T @ g``.

    Notes
    -----
    ``M[c * P_out + indices[c, i], c * P_in + i] = 1`` with ``P`` the number of positions per
    plane (channels-last: ``M[indices[i, c] * C + c, i * C + c] = 1``). When an index
    repeats within a plane, only the last input position (in C order over the spatial
    dimensions) keeps its entry: the value that :func:`fastdeconv.max_unpool` writes last.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.sparse import max_unpool_matrix
    >>> max_unpool_matrix(np.array([[1, 3, 3]]), (1, 3), (1, 4)).toarray()
    array([[0., 0., 0.],
           [1., 0., 0.],
           [0., 0., 0.],
           [0., 0., 1.]])
    """
    shape, channels_last = _sample_shape(input_shape, data_format)
    indices = _check_indices(indices, shape)
    channels, spatial = _channels_spatial(shape, channels_last)
    out = as_int_tuple(output_shape, "output_shape", min_value=1)
    if len(out) == len(shape) - 1:
        out = out + (channels,) if channels_last else (channels,) + out
    out_channels, out_spatial = _channels_spatial(out, channels_last)
    if len(out) != len(shape) or out_channels != channels:
        expected = "(*out_spatial, C)" if channels_last else "(C, *out_spatial)"
        raise ValueError(f"output_shape must be {expected} with C = {channels} and "
                         f"{len(shape) - 1} spatial dimensions, or out_spatial; got "
                         f"{output_shape!r}")
    p_in = int(np.prod(spatial))
    p_out = int(np.prod(out_spatial))
    bad = (indices < 0) | (indices >= p_out)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), shape)
        raise ValueError(f"indices{list(map(int, where))} = {int(indices[where])} is outside "
                         f"the output plane of {p_out} positions {tuple(out_spatial)}")
    # rows and columns in the order of the sample's elements (C order of its layout)
    if channels_last:
        rows = (indices.reshape(p_in, channels) * channels + np.arange(channels)).ravel()
    else:
        rows = (np.arange(channels)[:, None] * p_out + indices.reshape(channels, p_in)).ravel()
    cols = np.arange(channels * p_in)
    # the last write wins: keep the last column of every repeated row
    _, last = np.unique(rows[::-1], return_index=True)
    keep = rows.size - 1 - last
    return scipy.sparse.csr_array(
        (np.ones(keep.size), (rows[keep], cols[keep])), shape=(channels * p_out, channels * p_in))


@docfiller
def pixel_shuffle_matrix(input_shape, upscale_factor, *, order="CRD",
                         data_format="channels_first"):
    """Permutation matrix of :func:`fastdeconv.pixel_shuffle` acting on one sample.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C * prod(upscale_factor), *spatial)``, the shape of one input sample
        (``(*spatial, C * prod(upscale_factor))`` in channels-last).
    upscale_factor : int or tuple of int
        Block size, one value or one per spatial dimension.
    order : {"CRD", "DCR"}, default "CRD"
        PyTorch's channel order, or TensorFlow's / ONNX ``DepthToSpace``'s default.
    %(data_format)s

    Returns
    -------
    P : scipy.sparse.csr_array, shape (n, n), float64
        ``n = prod(input_shape)``; ``P.T`` is the matrix of :func:`fastdeconv.pixel_unshuffle`
        (the inverse and the adjoint).

    Raises
    ------
    ValueError, TypeError
        As :func:`fastdeconv.pixel_shuffle`.

    See Also
    --------
    fastdeconv.pixel_shuffle, fastdeconv.pixel_unshuffle

    Notes
    -----
    Output element ``(c, j)`` (``j`` the spatial position, phase ``p`` = ``j mod r`` flattened
    in C order, ``R = prod(r)``) is input element ``(c R + p, j // r)`` for ``"CRD"`` and
    ``(p C + c, j // r)`` for ``"DCR"``; rows and columns are the elements of the output and
    input samples in C order of their layout (in channels-last the channel index last).

    Examples
    --------
    One spatial dimension, 4 channels of 1 position to 2 channels of 2 positions: in PyTorch's
    order the channels stay in place, in TensorFlow's the phase is the slow part of the
    channel index.

    >>> from fastdeconv.sparse import pixel_shuffle_matrix
    >>> pixel_shuffle_matrix((4, 1), 2).toarray()
    array([[1., 0., 0., 0.],
           [0., 1., 0., 0.],
           [0., 0., 1., 0.],
           [0., 0., 0., 1.]])
    >>> pixel_shuffle_matrix((4, 1), 2, order="DCR").toarray()
    array([[1., 0., 0., 0.],
           [0., 0., 1., 0.],
           [0., 1., 0., 0.],
           [0., 0., 0., 1.]])
    """
    shape, channels_last = _sample_shape(input_shape, data_format)
    ndim = len(shape) - 1
    factors = normalize_tuple(upscale_factor, ndim, "upscale_factor", min_value=1)
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be 'CRD' or 'DCR', got {order!r}")
    blocks = int(np.prod(factors))
    channels, spatial = _channels_spatial(shape, channels_last)
    if channels % blocks:
        raise ValueError(f"the channels of input_shape ({channels}) must be divisible by the "
                         f"product of upscale_factor {factors} ({blocks})")
    c_out = channels // blocks
    out_spatial = tuple(n * r for n, r in zip(spatial, factors))
    full = out_spatial + (c_out,) if channels_last else (c_out,) + out_spatial
    grid = np.indices(full, sparse=True)
    c, j = (grid[-1], grid[:-1]) if channels_last else (grid[0], grid[1:])
    phase = np.zeros((1,) * (ndim + 1), dtype=np.int64)
    for jj, r in zip(j, factors):
        phase = phase * r + jj % r
    channel = c * blocks + phase if order == "CRD" else phase * c_out + c
    position = [jj // r for jj, r in zip(j, factors)]
    source = position + [channel] if channels_last else [channel] + position
    cols = np.ravel_multi_index([np.broadcast_to(v, full) for v in source], shape).ravel()
    n = cols.size
    return scipy.sparse.csr_array((np.ones(n), (np.arange(n), cols)), shape=(n, n))
