"""Explicit sparse matrices of the convolution and upsampling operators.

The matrices are assembled from COO triplets by index arithmetic on a
:class:`~fastdeconv._geometry.ConvGeometry` (relation ``i = o * stride - pad_before +
t * dilation``), never by applying an operator to unit vectors. They are therefore an
oracle that is independent of the compiled kernels, and a convenient way to hand a
convolution to ``scipy.sparse.linalg`` solvers.

.. autosummary::
   :toctree: generated/

   conv_matrix
   conv_transpose_matrix
   resize_matrix
   max_unpool_matrix
   pixel_shuffle_matrix

The upsampling matrices come from index arithmetic too: :func:`resize_matrix` is the
Kronecker product of one small matrix per spatial dimension (the interpolation plan of that
dimension), :func:`max_unpool_matrix` places a one at ``(c, indices[c, i]), (c, i)`` and
:func:`pixel_shuffle_matrix` is the permutation written out by its formula.

Matrix-free
-----------

:func:`linear_operator` wraps any of these operators as a
``scipy.sparse.linalg.LinearOperator`` whose products run the fast kernels (and the adjoint
kernels for the transpose), with ``to_sparse()`` giving the matrix above: the form that
SciPy's iterative solvers take, and what :func:`fastdeconv.deconvolve` uses.

.. autosummary::
   :toctree: generated/

   linear_operator
   FastLinearOperator
"""

import numpy as np
import scipy.sparse

from ._problem import conv_problem, conv_transpose_problem
from ._docstrings import docfiller
from ._geometry import source_index
from ._validation import as_array, check_int, normalize_tuple, result_dtype

__all__ = ["conv_matrix", "conv_transpose_matrix", "resize_matrix", "max_unpool_matrix",
           "pixel_shuffle_matrix"]


def _check_operands(input_shape, weight):
    """``weight`` in its compute dtype and ``(1, *input_shape)``, the shape of a batch of one.

    The channel counts, groups and geometry are validated by ``conv_problem`` /
    ``conv_transpose_problem``, exactly as for the kernels.
    """
    weight = as_array(weight, "weight")
    dtype = result_dtype((weight, "weight"))
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a sequence of ints (C, *spatial), got {input_shape!r}"
        ) from None
    shape = tuple(check_int(n, "input_shape", min_value=1) for n in shape)
    if weight.ndim >= 3 and len(shape) != weight.ndim - 1:
        raise ValueError(
            f"input_shape must be (C, *spatial) with {weight.ndim - 1} entries for a weight "
            f"with {weight.ndim - 2} spatial dimensions (weight shape {weight.shape}); got "
            f"{input_shape!r} (give the shape of one sample, without the batch dimension)"
        )
    return weight.astype(dtype, copy=False), (1,) + shape


# ---------------------------------------------------------------------------- assembly
def _conv_triplets(weight, problem):
    """COO triplets of the forward convolution ``y = conv(x)`` of ``problem``, one sample.

    Parameters
    ----------
    weight : ndarray, shape (C_out, C_in // groups, *kernel_size)
    problem : fastdeconv._problem.ConvProblem
        Validated geometry, channel counts, groups and padding mode of the forward
        convolution (for a transposed convolution, the one it is the adjoint of).

    Returns
    -------
    rows, cols : ndarray of int64
        Flat indices into ``y`` (shape ``(C_out, *geometry.output_size)``) and ``x`` (shape
        ``(C_in, *geometry.input_size)``), both C order.
    values : ndarray
        ``weight`` entries; repeated ``(row, col)`` pairs, which reflect, replicate and
        circular padding produce, are meant to be summed.
    """
    geometry, padding_mode = problem.geometry, problem.padding_mode
    ndim = geometry.ndim
    # Spatial part: every (output position, tap) pair whose input position exists, on an
    # open grid of shape (*output_size, *kernel_size).
    full = geometry.output_size + geometry.kernel_size
    grid = np.indices(full, dtype=np.int64, sparse=True)
    outputs, taps = grid[:ndim], grid[ndim:]
    sources = [
        source_index(geometry.input_positions(d, outputs[d], taps[d]), geometry.input_size[d],
                     padding_mode)
        for d in range(ndim)
    ]
    valid = np.ones(full, dtype=bool)
    for src in sources:
        valid &= src >= 0

    def flat(indices, sizes):
        return np.ravel_multi_index([np.broadcast_to(i, full)[valid] for i in indices], sizes)

    out_flat = flat(outputs, geometry.output_size)
    tap_flat = flat(taps, geometry.kernel_size)
    in_flat = flat(sources, geometry.input_size)

    # Channel part: output channel co of group g reads input channels g * cig + (0..cig-1).
    c_out, cig = weight.shape[:2]
    cog = c_out // problem.groups
    co = np.arange(c_out, dtype=np.int64)[:, None, None]
    ci = (co // cog) * cig + np.arange(cig, dtype=np.int64)[None, :, None]
    rows = co * geometry.output_numel + out_flat
    cols = ci * geometry.input_numel + in_flat
    values = weight.reshape(c_out, cig, geometry.kernel_numel)[:, :, tap_flat]
    rows, cols = np.broadcast_arrays(rows, cols)
    return rows.ravel(), cols.ravel(), values.ravel()


def _csr(rows, cols, values, shape):
    """CSR array with duplicates summed; explicit zeros of ``values`` are kept."""
    matrix = scipy.sparse.csr_array((values, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix


# ---------------------------------------------------------------------------- public API
@docfiller
def conv_matrix(input_shape, weight, *, stride=1, padding=0, dilation=1, groups=1,
                padding_mode="zeros"):
    """Sparse matrix of :func:`fastdeconv.conv` acting on one sample.

    Returns ``M`` such that ``conv(x, weight, ...)[n].ravel() == M @ x[n].ravel()`` for every
    sample ``x[n]`` of shape ``input_shape``. The matrix is assembled from index arithmetic
    (not by applying :func:`fastdeconv.conv` to unit vectors), so it is an independent check
    of the kernels and can be handed to ``scipy.sparse.linalg`` solvers.

    Parameters
    ----------
    input_shape : sequence of int
        Shape ``(C_in, *spatial)`` of one input sample (no batch dimension).
    weight : array_like, shape (C_out, C_in / groups, \\*kernel_size)
        Convolution kernel (cross-correlation, as in PyTorch).
    %(stride)s
    %(padding_conv)s
    %(dilation)s
    %(groups)s
    %(padding_mode)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C_out * prod(out_spatial), C_in * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order. The
        dtype is the compute dtype of ``weight`` (float32 for float16/float32 weights,
        float64 otherwise).

    Raises
    ------
    TypeError
        If a parameter has the wrong type, or ``weight`` has an unsupported dtype.
    ValueError
        If shapes, channels and ``groups`` disagree, a parameter is out of range, or the
        padding is too large for ``padding_mode``.

    See Also
    --------
    conv_transpose_matrix : The matrix of the transposed convolution, ``M.T``.

    Notes
    -----
    With ``k_eff = dilation * (k - 1) + 1`` and ``(p_b, p_a)`` the padding of one spatial
    dimension of size ``n``, the output size along that dimension is

    .. math::

        n_\\text{out} = \\left\\lfloor \\frac{n + p_b + p_a - k_\\text{eff}}{s} \\right\\rfloor + 1.

    Entry ``M[(co, o), (ci, i)]`` is the sum of ``weight[co, ci - g * C_in / groups, t]`` over
    the taps ``t`` whose padded position ``o * stride - p_b + t * dilation`` maps to input
    position ``i`` (for ``padding_mode="zeros"`` there is at most one such tap; the other
    modes fold several padded positions onto one input position). Positions are flattened in
    C order. The sparsity structure depends only on the geometry: zero entries of ``weight``
    are stored explicitly.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.sparse import conv_matrix
    >>> weight = np.array([[[1.0, 2.0, 3.0]]])        # C_out = C_in = 1, kernel size 3
    >>> M = conv_matrix((1, 4), weight, padding=1)
    >>> M.shape                                       # out = (4 + 1 + 1 - 3) // 1 + 1 = 4
    (4, 4)
    >>> M.toarray()
    array([[2., 3., 0., 0.],
           [1., 2., 3., 0.],
           [0., 1., 2., 3.],
           [0., 0., 1., 2.]])
    >>> conv_matrix((1, 4), weight, padding=1, padding_mode="replicate").toarray()
    array([[3., 3., 0., 0.],
           [1., 2., 3., 0.],
           [0., 1., 2., 3.],
           [0., 0., 1., 5.]])
    """
    weight, x_shape = _check_operands(input_shape, weight)
    problem = conv_problem(x_shape, weight.shape, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, padding_mode=padding_mode,
                           x_name="(1, *input_shape)")
    rows, cols, values = _conv_triplets(weight, problem)
    shape = (problem.c_out * problem.geometry.output_numel,
             problem.c_in * problem.geometry.input_numel)
    return _csr(rows, cols, values, shape)


@docfiller
def conv_transpose_matrix(input_shape, weight, *, stride=1, padding=0, output_padding=0,
                          dilation=1, groups=1, output_size=None):
    """Sparse matrix of :func:`fastdeconv.conv_transpose` acting on one sample.

    Returns ``M`` such that ``conv_transpose(x, weight, ...)[n].ravel() == M @ x[n].ravel()``
    for every sample ``x[n]`` of shape ``input_shape``. ``M`` is the transpose of the matrix of
    the convolution whose adjoint ``conv_transpose`` is, built from the same triplets as
    :func:`conv_matrix`.

    Parameters
    ----------
    input_shape : sequence of int
        Shape ``(C_in, *spatial)`` of one input sample of the transposed convolution (no batch
        dimension).
    weight : array_like, shape (C_in, C_out / groups, \\*kernel_size)
        Kernel, laid out as for the convolution that maps ``C_out`` channels to ``C_in``.
    %(stride)s
    %(padding_transpose)s
    %(output_padding)s
    %(dilation)s
    %(groups)s
    %(output_size)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C_out * prod(out_spatial), C_in * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order. The
        dtype is the compute dtype of ``weight``.

    Raises
    ------
    TypeError
        If a parameter has the wrong type, or ``weight`` has an unsupported dtype.
    ValueError
        If shapes, channels and ``groups`` disagree, or a parameter is out of range.

    See Also
    --------
    conv_matrix : The matrix of the forward convolution.

    Notes
    -----
    Along a spatial dimension of input size ``n`` the output size is

    .. math::

        n_\\text{out} = (n - 1) s - p_b - p_a + d (k - 1) + 1 + \\text{output\\_padding}.

    When ``output_padding < stride`` this equals
    ``conv_matrix((C_out, *out_spatial), weight, stride=stride, padding=pairs,
    dilation=dilation, groups=groups).T`` with ``pairs`` the resolved ``(before, after)``
    padding. (PyTorch also allows ``stride <= output_padding < dilation``; then the forward
    convolution of the larger output has extra output positions, and ``M`` is the transpose of
    that matrix without their rows.)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.sparse import conv_transpose_matrix
    >>> weight = np.array([[[1.0, 2.0, 3.0]]])
    >>> M = conv_transpose_matrix((1, 2), weight, stride=2)
    >>> M.shape                                       # out = (2 - 1) * 2 + 3 = 5
    (5, 2)
    >>> M.toarray()
    array([[1., 0.],
           [2., 0.],
           [3., 1.],
           [0., 2.],
           [0., 3.]])
    """
    weight, x_shape = _check_operands(input_shape, weight)
    problem = conv_transpose_problem(
        x_shape, weight.shape, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation, groups=groups, output_size=output_size, x_name="(1, *input_shape)",
    )
    # The forward convolution maps problem.c_in channels of size geometry.input_size to
    # problem.c_out (this operator's input channels) of size geometry.output_size: transpose
    # its triplets.
    rows, cols, values = _conv_triplets(weight, problem)
    shape = (problem.c_in * problem.geometry.input_numel,
             problem.c_out * problem.geometry.output_numel)
    return _csr(cols, rows, values, shape)


# ------------------------------------------------------------------------------ upsampling
def _sample_shape(input_shape, name="input_shape", *, min_ndim=2, max_ndim=4):
    """``input_shape`` as a tuple of positive ints ``(C, *spatial)``."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints (C, *spatial), got "
                        f"{input_shape!r}") from None
    shape = tuple(check_int(n, name, min_value=1) for n in shape)
    if not min_ndim <= len(shape) <= max_ndim:
        raise ValueError(
            f"{name} must be the shape (C, *spatial) of one sample with 1 to {max_ndim - 1} "
            f"spatial dimensions (no batch dimension), got {input_shape!r}")
    return shape


@docfiller
def resize_matrix(input_shape, size=None, *, scale_factor=None, mode="nearest",
                  align_corners=None, antialias=False, coordinate_transformation_mode=None,
                  nearest_mode=None, cubic_coeff_a=None, exclude_outside=False,
                  dtype=np.float64):
    """Sparse matrix of :func:`fastdeconv.resize` acting on one sample.

    Returns ``M`` such that ``resize(x, ...)[n].ravel() == M @ x[n].ravel()`` for every sample
    ``x[n]`` of shape ``input_shape``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape ``(C, *spatial)`` of one input sample (no batch dimension), 1 to 3 spatial
        dimensions.
    %(resize_parameters)s
    dtype : {float64, float32}, default float64
        dtype of the matrix; it also selects PyTorch's float32 or float64 index arithmetic of
        the nearest modes, as :func:`fastdeconv.resize` does for inputs of that dtype.

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C * prod(out_spatial), C * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order.

    Raises
    ------
    ValueError, TypeError
        As :func:`fastdeconv.resize`, or for a bad ``input_shape`` or ``dtype``.

    See Also
    --------
    fastdeconv.resize, fastdeconv.resize_backward : ``M @ x`` and ``M.T @ g``, fast.

    Notes
    -----
    Resizing is separable, so ``M = I_C (x) A_1 (x) ... (x) A_d`` (Kronecker products), where
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
    from ._resize_plan import resolve_resize

    shape = _sample_shape(input_shape)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    spec = resolve_resize(
        shape[1:], size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
        antialias=antialias, coordinate_transformation_mode=coordinate_transformation_mode,
        nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
    )
    matrix = scipy.sparse.identity(shape[0], dtype=dtype, format="csr")
    for plan in spec.plans(dtype):
        factor = scipy.sparse.csr_array(
            (plan.weights.astype(dtype), plan.indices.copy(), plan.offsets.copy()),
            shape=(plan.n_out, plan.n_in))
        factor.sum_duplicates()
        matrix = scipy.sparse.kron(matrix, factor, format="csr")
    return scipy.sparse.csr_array(matrix)


def max_unpool_matrix(indices, input_shape, output_shape):
    """Sparse matrix of :func:`fastdeconv.max_unpool` for the indices of one sample.

    Returns ``M`` such that ``max_unpool(x, indices, ...)[n].ravel() == M @ x[n].ravel()``
    when ``indices`` is ``indices[n]`` of the batch.

    Parameters
    ----------
    indices : array_like of int, shape (C, \\*spatial)
        Flat positions within each output plane (one sample of ``max_pool``'s indices).
    input_shape : sequence of int
        ``(C, *spatial)``, the shape of one input sample; must equal ``indices.shape``.
    output_shape : sequence of int
        ``(C, *out_spatial)`` or the spatial output size ``out_spatial``.

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C * prod(out_spatial), C * prod(spatial)), float64
        A 0/1 matrix with at most one entry per row and per column.

    Raises
    ------
    TypeError
        If ``indices`` does not have an integer dtype.
    ValueError
        If the shapes disagree or an index is outside the output plane.

    See Also
    --------
    fastdeconv.max_unpool, fastdeconv.max_unpool_backward : ``M @ x`` and ``M.T @ g``.

    Notes
    -----
    ``M[c * P_out + indices[c, i], c * P_in + i] = 1`` with ``P`` the number of positions per
    plane. When an index repeats within a plane, only the last input position (in C order)
    keeps its entry: the value that :func:`fastdeconv.max_unpool` writes last.

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
    from ._pool import _check_indices

    shape = _sample_shape(input_shape)
    indices = _check_indices(indices, shape)
    try:
        out = tuple(output_shape)
    except TypeError:
        raise TypeError(f"output_shape must be a sequence of ints, got {output_shape!r}") \
            from None
    out = tuple(check_int(n, "output_shape", min_value=1) for n in out)
    if len(out) == len(shape) - 1:
        out = (shape[0],) + out
    if len(out) != len(shape) or out[0] != shape[0]:
        raise ValueError(f"output_shape must be (C, *out_spatial) with C = {shape[0]} and "
                         f"{len(shape) - 1} spatial dimensions, or out_spatial; got "
                         f"{output_shape!r}")
    channels = shape[0]
    p_in = int(np.prod(shape[1:]))
    p_out = int(np.prod(out[1:]))
    flat = indices.reshape(channels, p_in)
    bad = (flat < 0) | (flat >= p_out)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), shape)
        raise ValueError(f"indices{list(map(int, where))} = {int(indices[where])} is outside "
                         f"the output plane of {p_out} positions {tuple(out[1:])}")
    rows = (np.arange(channels)[:, None] * p_out + flat).ravel()
    cols = np.arange(channels * p_in)
    # the last write wins: keep the last column of every repeated row
    _, last = np.unique(rows[::-1], return_index=True)
    keep = rows.size - 1 - last
    return scipy.sparse.csr_array(
        (np.ones(keep.size), (rows[keep], cols[keep])), shape=(channels * p_out, channels * p_in))


def pixel_shuffle_matrix(input_shape, upscale_factor, *, order="CRD"):
    """Permutation matrix of :func:`fastdeconv.pixel_shuffle` acting on one sample.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C * prod(upscale_factor), *spatial)``, the shape of one input sample.
    upscale_factor : int or tuple of int
        Block size, one value or one per spatial dimension.
    order : {"CRD", "DCR"}, default "CRD"
        PyTorch's channel order, or TensorFlow's / ONNX ``DepthToSpace``'s default.

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
    ``(p C + c, j // r)`` for ``"DCR"``.

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
    from ._shuffle import ORDERS

    shape = _sample_shape(input_shape)
    ndim = len(shape) - 1
    factors = normalize_tuple(upscale_factor, ndim, "upscale_factor", min_value=1)
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be 'CRD' or 'DCR', got {order!r}")
    blocks = int(np.prod(factors))
    if shape[0] % blocks:
        raise ValueError(f"the channels of input_shape ({shape[0]}) must be divisible by the "
                         f"product of upscale_factor {factors} ({blocks})")
    c_out = shape[0] // blocks
    spatial = shape[1:]
    out_spatial = tuple(n * r for n, r in zip(spatial, factors))
    grid = np.indices((c_out,) + out_spatial, sparse=True)
    c, j = grid[0], grid[1:]
    phase = np.zeros((1,) * (ndim + 1), dtype=np.int64)
    for jj, r in zip(j, factors):
        phase = phase * r + jj % r
    channel = c * blocks + phase if order == "CRD" else phase * c_out + c
    source = [channel] + [jj // r for jj, r in zip(j, factors)]
    full = (c_out,) + out_spatial
    cols = np.ravel_multi_index([np.broadcast_to(v, full) for v in source], shape).ravel()
    n = cols.size
    return scipy.sparse.csr_array((np.ones(n), (np.arange(n), cols)), shape=(n, n))


# ------------------------------------------------------------------------ matrix-free views
from ._linear_operator import FastLinearOperator, linear_operator  # noqa: E402

__all__ += ["linear_operator", "FastLinearOperator"]
