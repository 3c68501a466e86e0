"""Explicit sparse matrices of the convolutions, by index arithmetic.

The matrices are assembled from COO triplets on a :class:`~fastdeconv._geometry.ConvGeometry`
(relation ``i = o * stride - pad_before + t * dilation``), never by applying an operator to
unit vectors. The public names are exported by :mod:`fastdeconv.sparse`.
"""

import numpy as np
import scipy.sparse

from ._docstrings import docfiller
from ._formats import Layout
from ._geometry import source_index
from ._problem import conv_problem, conv_transpose_problem
from ._validation import as_array, as_int_tuple, result_dtype

__all__ = ["conv_matrix", "conv_transpose_matrix"]


def _check_operands(input_shape, weight, data_format, weight_format, transpose):
    """``weight`` in its compute dtype and the canonical layout, ``(1, *input_shape)`` (the
    shape of a batch of one, channels first) and the caller's :class:`Layout`.

    The channel counts, groups and geometry are validated by ``conv_problem`` /
    ``conv_transpose_problem``, exactly as for the kernels.
    """
    weight = as_array(weight, "weight")
    dtype = result_dtype((weight, "weight"))
    spatial = weight.ndim - 2 if weight.ndim >= 3 else None
    layout = Layout.resolve(data_format, spatial, weight_format if spatial else None,
                            transpose=transpose)
    weight = layout.weight_in(weight)
    shape = as_int_tuple(input_shape, "input_shape", min_value=1,
                         expected="a sequence of ints (C, *spatial)")
    if weight.ndim >= 3 and len(shape) != weight.ndim - 1:
        raise ValueError(
            f"input_shape must be (C, *spatial) with {weight.ndim - 1} entries for a weight "
            f"with {weight.ndim - 2} spatial dimensions (weight shape {weight.shape}); got "
            f"{input_shape!r} (give the shape of one sample, without the batch dimension)"
        )
    return weight.astype(dtype, copy=False), (1,) + layout.sample_shape_in(shape), layout


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


@docfiller
def conv_matrix(input_shape, weight, *, stride=1, padding=0, dilation=1, groups=1,
                padding_mode="zeros", data_format="channels_first", weight_format=None):
    """Sparse matrix of :func:`fastdeconv.conv` acting on one sample.

    Returns ``M`` such that ``conv(x, weight, ...)[n].ravel() == M @ x[n].ravel()`` for every
    sample ``x[n]`` of shape ``input_shape``. The matrix is assembled from index arithmetic
    (not by applying :func:`fastdeconv.conv` to unit vectors), so it is an independent check
    of the kernels and can be handed to ``scipy.sparse.linalg`` solvers.

    Parameters
    ----------
    input_shape : sequence of int
        Shape ``(C_in, *spatial)`` of one input sample (no batch dimension); ``(*spatial,
        C_in)`` channels-last.
    weight : array_like, shape (C_out, C_in / groups, \\*kernel_size)
        Convolution kernel (cross-correlation, as in PyTorch), or in ``weight_format``.
    %(conv_keywords)s
    %(data_format)s
    %(weight_format_conv)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C_out * prod(out_spatial), C_in * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order of
        ``data_format`` (channels-last: the channel varies fastest). The
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
    weight, x_shape, layout = _check_operands(input_shape, weight, data_format, weight_format,
                                              False)
    problem = conv_problem(x_shape, weight.shape, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, padding_mode=padding_mode,
                           x_name="(1, *input_shape)")
    rows, cols, values = _conv_triplets(weight, problem)
    shape = (problem.c_out * problem.geometry.output_numel,
             problem.c_in * problem.geometry.input_numel)
    rows, cols = layout.relabel(rows, cols, problem.forward_output_shape[1:],
                                problem.forward_input_shape[1:])
    return _csr(rows, cols, values, shape)


@docfiller
def conv_transpose_matrix(input_shape, weight, *, stride=1, padding=0, output_padding=0,
                          dilation=1, groups=1, output_size=None, data_format="channels_first",
                          weight_format=None):
    """Sparse matrix of :func:`fastdeconv.conv_transpose` acting on one sample.

    Returns ``M`` such that ``conv_transpose(x, weight, ...)[n].ravel() == M @ x[n].ravel()``
    for every sample ``x[n]`` of shape ``input_shape``. ``M`` is the transpose of the matrix of
    the convolution whose adjoint ``conv_transpose`` is, built from the same triplets as
    :func:`conv_matrix`.

    Parameters
    ----------
    input_shape : sequence of int
        Shape ``(C_in, *spatial)`` of one input sample of the transposed convolution (no batch
        dimension); ``(*spatial, C_in)`` channels-last.
    weight : array_like, shape (C_in, C_out / groups, \\*kernel_size)
        Kernel, laid out as for the convolution that maps ``C_out`` channels to ``C_in``, or
        in ``weight_format``.
    %(conv_transpose_keywords)s
    %(data_format)s
    %(weight_format_transpose)s

    Returns
    -------
    M : scipy.sparse.csr_array, shape (C_out * prod(out_spatial), C_in * prod(spatial))
        Rows index the output sample and columns the input sample, both in C order of
        ``data_format`` (channels-last: the channel varies fastest). The
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
    weight, x_shape, layout = _check_operands(input_shape, weight, data_format, weight_format,
                                              True)
    if (layout.channels_last and output_size is not None and np.ndim(output_size) == 1
            and len(output_size) == len(x_shape)):
        output_size = layout.shape_in(output_size)
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
    cols, rows = layout.relabel(cols, rows, problem.forward_input_shape[1:],
                                problem.forward_output_shape[1:])
    return _csr(cols, rows, values, shape)
