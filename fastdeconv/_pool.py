"""Max pooling with switches (indices), max unpooling, and their adjoints.

PyTorch's conventions: ``max_pool`` is ``torch.nn.functional.max_pool{1,2,3}d`` (with
``return_indices=True`` the indices are flat positions within each ``(n, c)`` plane, int64),
``max_unpool`` is ``max_unpool{1,2,3}d``: the "switches" of Zeiler and Fergus's
deconvolutional networks, which put every pooled value back where it came from and zeros
elsewhere. Validation and geometry are here; the loops are in
``fastdeconv._ext._pool_kernels``.

Channels-last data ``(N, *spatial, C)`` (``data_format``) is computed as it is, without
transposing: the kernels see ``N`` planes of ``C`` interleaved values per position instead
of ``N * C`` planes of one, and treat every channel as they treat a channels-first plane, so
both layouts give the same bits. Channels-last indices have the data's layout ``(N,
*spatial_out, C)`` and still hold flat spatial positions within each ``(n, c)`` plane
(PyTorch's convention), so channels-last pooling indices feed channels-last unpooling.
"""

import numpy as np

from ._docstrings import docfiller
from ._geometry import INDEX_LIMIT
from ._ext import _pool_kernels
from ._formats import Layout
from ._threads import kernel_threads
from ._validation import (
    allocate,
    as_array,
    as_compute_array,
    as_int_tuple,
    full_input_shape,
    normalize_tuple,
    result_dtype,
    spatial_ndim,
)

__all__ = ["max_pool", "max_unpool", "max_pool_backward", "max_unpool_backward",
           "max_pool_output_size", "max_unpool_output_size"]


# ------------------------------------------------------------------------------- geometry
def _pool_params(ndim, kernel_size, stride, padding, dilation):
    kernel = normalize_tuple(kernel_size, ndim, "kernel_size", min_value=1)
    stride = kernel if stride is None else normalize_tuple(stride, ndim, "stride", min_value=1)
    padding = normalize_tuple(padding, ndim, "padding", min_value=0)
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    for name, values in (("kernel_size", kernel), ("stride", stride), ("padding", padding),
                         ("dilation", dilation),
                         ("kernel extent (dilation * (kernel_size - 1) + 1)", extent)):
        if any(v >= INDEX_LIMIT for v in values):
            raise ValueError(f"{name} too large for 64-bit index arithmetic (limit 2**62), "
                             f"got {values}")
    return kernel, stride, padding, dilation


def max_pool_output_size(input_size, kernel_size, stride, padding, dilation, ceil_mode):
    """Spatial output size of :func:`max_pool` (PyTorch's ``pooling_output_shape``).

    ``out = floor((in + 2 p - d (k - 1) - 1 [+ s - 1 if ceil_mode]) / s) + 1``, and with
    ``ceil_mode`` the last window must start inside the input or the left padding.
    """
    out = []
    for d, (n, k, s, p, dil) in enumerate(zip(input_size, kernel_size, stride, padding,
                                              dilation)):
        extent = dil * (k - 1) + 1
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half of kernel_size (as in PyTorch), got padding "
                f"{tuple(padding)} for kernel_size {tuple(kernel_size)}"
            )
        size = (n + 2 * p - extent + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (size - 1) * s >= n + p:
            size -= 1
        if size < 1:
            raise ValueError(
                f"max_pool output would be empty along spatial dimension {d}: input size {n}, "
                f"padding {p}, effective kernel size {extent}, stride {s}"
            )
        # With dilation, a window can fall entirely into the padding (PyTorch then returns
        # -inf and an index outside the input); refuse instead.
        # Window o reads o s - p + j dil, j < k; its first tap at or after 0 is j0.
        start = np.arange(size, dtype=np.int64) * s - p
        j0 = np.maximum(0, -(start // dil))          # ceil(-start / dil) for start < 0
        empty = (j0 >= k) | (start + np.minimum(j0, k - 1) * dil >= n)
        if empty.any():
            raise ValueError(
                f"max_pool window {int(np.argmax(empty))} along spatial dimension {d} lies "
                f"entirely in the padding (input size {n}, kernel_size {k}, dilation {dil}, "
                f"padding {p}); reduce padding or dilation"
            )
        out.append(size)
    return tuple(out)


def max_unpool_output_size(input_size, kernel_size, stride, padding, output_size=None):
    """Spatial output size of :func:`max_unpool` (PyTorch's ``_unpool_output_size``).

    Default ``(in - 1) * stride - 2 * padding + kernel_size``; a given ``output_size`` (spatial
    or full shape) must lie strictly within ``stride`` of it.
    """
    ndim = len(input_size)
    default = tuple((n - 1) * s - 2 * p + k
                    for n, k, s, p in zip(input_size, kernel_size, stride, padding))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, np.ndarray):
            output_size = output_size.tolist()      # listed in the messages below
        size = as_int_tuple(output_size, "output_size")
        if len(size) == ndim + 2:
            size = size[2:]
        if len(size) != ndim:
            raise ValueError(f"output_size must have {ndim} or {ndim + 2} entries (spatial "
                             f"size, or the full shape), got {output_size!r}")
        for d in range(ndim):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < size[d] < high:
                raise ValueError(
                    f"invalid output_size {output_size!r}: spatial dimension {d} must be "
                    f"strictly between {low} and {high} (PyTorch's rule: within stride of the "
                    f"default {default[d]})"
                )
    if any(n < 1 for n in size):
        source = ("output_size" if output_size is not None else
                  f"x's spatial size {tuple(input_size)}, kernel_size {tuple(kernel_size)}, "
                  f"stride {tuple(stride)} and padding {tuple(padding)}")
        raise ValueError(f"max_unpool output would be empty: {source} give spatial size "
                         f"{size}; every output dimension must be >= 1")
    return size


def _as_3d(*tuples, fill):
    """Prepend ``fill`` so that each tuple has 3 entries (1-D and 2-D run as 3-D)."""
    return [tuple([fill] * (3 - len(t))) + tuple(t) for t in tuples]


def _geometry(in_size, out_size, kernel, stride, padding, dilation):
    """Kernel arguments: the 3-D geometry and, per dimension, every window's first in-range
    tap and its (clipped, exclusive) end, concatenated over the three dimensions."""
    in3, out3 = _as_3d(in_size, out_size, fill=1)
    k3, s3, d3 = _as_3d(kernel, stride, dilation, fill=1)
    (p3,) = _as_3d(padding, fill=0)
    starts, stops = [], []
    for n, o, k, s, p, d in zip(in3, out3, k3, s3, p3, d3):
        first = np.arange(o, dtype=np.intp) * s - p
        starts.append(np.where(first < 0, first + (-first + d - 1) // d * d, first))
        stops.append(np.minimum(first + (k - 1) * d + 1, n))
    return (np.array(in3 + out3 + k3 + s3 + p3 + d3, dtype=np.intp),
            np.concatenate(starts).astype(np.intp), np.concatenate(stops).astype(np.intp))


# -------------------------------------------------------------------------------- indices
def _check_indices(indices, shape, name="indices"):
    """int64 C-contiguous copy of integer ``indices`` of shape ``shape``."""
    indices = as_array(indices, name)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype (the int64 indices returned by "
                        f"max_pool), got dtype {indices.dtype}")
    if indices.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {indices.shape}")
    if indices.dtype == np.uint64 and indices.size and int(indices.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has an out-of-range value {int(indices.max())}")
    return np.ascontiguousarray(indices, dtype=np.int64)


def _raise_bad_index(bad, indices, limit, plane_shape, name="indices"):
    position = int(bad[bad >= 0].min())
    value = int(indices.reshape(-1)[position])
    where = np.unravel_index(position, indices.shape)
    raise ValueError(
        f"{name}{list(map(int, where))} = {value} is outside the plane of {limit} positions "
        f"(spatial shape {tuple(plane_shape)}); indices are flat positions within each "
        f"(n, c) plane, in [0, {limit})"
    )


def _layout_name(layout):
    return "(N, *spatial, C)" if layout.channels_last else "(N, C, *spatial)"


def _pooled_input_shape(input_shape, grad_output, layout):
    """``input_shape`` of max_pool_backward, checked against ``grad_output`` (both in the
    caller's layout)."""
    if not layout.channels_last:
        return full_input_shape(input_shape, "pooled", grad_output)
    shape = full_input_shape(input_shape, "pooled")
    if len(shape) != grad_output.ndim or (layout.batch_and_channels(shape)
                                          != layout.batch_and_channels(grad_output.shape)):
        raise ValueError(
            f"input_shape must be the full shape (N, *spatial, C) of the pooled input, with "
            f"the batch, channels and number of dimensions of grad_output "
            f"{grad_output.shape}; got {input_shape!r}")
    return shape


def _output_size_in(output_size, ndim, layout):
    """A full-shape ``output_size`` of max_unpool in the caller's layout as channels-first
    (a spatial size, or anything invalid, is left to the validation)."""
    if (layout.channels_last and isinstance(output_size, (tuple, list, np.ndarray))
            and len(output_size) == ndim + 2):
        return layout.shape_in(tuple(output_size))
    return output_size


# ------------------------------------------------------------------------------ public API
@docfiller
def max_pool(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False, data_format="channels_first"):
    r"""N-d max pooling, optionally returning the switches (argmax indices).

    Parameters
    ----------
    x : array_like, shape (N, C, \*spatial) or (N, \*spatial, C)
        Input batch with 1, 2 or 3 spatial dimensions, channels-first or channels-last
        (``data_format``).
    kernel_size : int or tuple of int
        Window size, one value or one per spatial dimension.
    stride : int or tuple of int, optional
        Step between windows; defaults to ``kernel_size``.
    padding : int or tuple of int, default 0
        Implicit ``-inf`` padding on both sides; at most ``kernel_size // 2`` (PyTorch's
        rule).
    %(dilation)s
    ceil_mode : bool, default False
        Round the output size up instead of down (the last window may then extend past the
        input; it must start inside the input or the left padding).
    return_indices : bool, default False
        Also return the position of each maximum.
    %(data_format)s

    Returns
    -------
    y : ndarray, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        In the layout of ``x``, C-contiguous.
    indices : ndarray of int64, shape of ``y``
        Only with ``return_indices``: flat position of the maximum within its ``(n, c)``
        plane of ``x`` (C order over the spatial dimensions only, in either layout), as
        PyTorch returns them; the input of :func:`max_unpool` and
        :func:`max_pool_backward` with the same ``data_format``.

    Raises
    ------
    ValueError
        For a wrong number of dimensions, non-positive kernel size, stride or dilation,
        padding larger than half the kernel, an empty output, or (with dilation) a window
        that lies entirely in the padding, where PyTorch would return ``-inf`` and an
        index outside the input.
    TypeError
        For complex or non-numeric inputs and non-integer parameters.

    See Also
    --------
    max_unpool : put the pooled values back at their indices.
    max_pool_backward : the gradient with respect to ``x``.

    Notes
    -----
    Along each spatial dimension the output size is

    .. math::

        o = \left\lfloor \frac{i + 2 p - d (k - 1) - 1 + c\,(s - 1)}{s} \right\rfloor + 1

    with :math:`c = 1` under ``ceil_mode`` (then :math:`o` is reduced by one if the last
    window would start past :math:`i + p`), else 0. Channels-last input is pooled as it is
    (no transposition), with the same values and indices as channels-first. Ties: the first
    maximum in scan order
    (C order within the window) wins. NaN: as PyTorch's CPU kernel, a NaN is the maximum and
    the last NaN of a window is the one whose index is returned.

    %(dtypes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 2.0, 0.0]]])
    >>> y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    >>> y.tolist(), idx.tolist()        # the tie 2.0, 2.0 goes to the first
    ([[[3.0, 2.0]]], [[[1, 2]]])
    >>> fastdeconv.max_pool(x, 2, ceil_mode=True).tolist()   # size ceil((5 - 2) / 2) + 1 = 3
    [[[3.0, 2.0, 0.0]]]

    Channels-last: the indices have the layout of the data and hold the same per-channel
    spatial positions.

    >>> xl = np.array([[[1.0, 9.0], [3.0, 8.0], [2.0, 7.0], [2.0, 6.0]]])   # (N, W, C)
    >>> y, idx = fastdeconv.max_pool(xl, 2, return_indices=True, data_format="NWC")
    >>> y.tolist(), idx.tolist()
    ([[[3.0, 9.0], [2.0, 7.0]]], [[[1, 0], [2, 2]]])
    """
    x = as_array(x, "x")
    dtype = result_dtype((x, "x"))
    ndim = spatial_ndim(x, "x")
    layout = Layout.resolve(data_format, ndim)
    kernel, stride, padding, dilation = _pool_params(ndim, kernel_size, stride, padding,
                                                     dilation)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    if not isinstance(return_indices, (bool, np.bool_)):
        raise TypeError(f"return_indices must be a bool, got {return_indices!r}")
    in_size = layout.spatial(x.shape)
    if any(n < 1 for n in in_size):
        raise ValueError(f"the spatial size of x must be positive, got shape {x.shape}")
    out_size = max_pool_output_size(in_size, kernel, stride, padding, dilation, ceil_mode)
    x = as_compute_array(x, dtype)
    y = allocate(layout.data_shape(*layout.batch_and_channels(x.shape), out_size), dtype,
                 "output")
    indices = allocate(y.shape, np.int64, "indices", result=bool(return_indices))
    planes, channels = layout.planes(x.shape)
    if planes * channels:
        _pool_kernels.max_pool_forward(
            x.reshape(-1), y.reshape(-1), indices.reshape(-1), planes, channels,
            *_geometry(in_size, out_size, kernel, stride, padding, dilation), kernel_threads())
    return (y, indices) if return_indices else y


@docfiller
def max_unpool(x, indices, kernel_size, *, stride=None, padding=0, output_size=None,
               data_format="channels_first"):
    r"""Max unpooling: scatter pooled values back to the positions of their maxima.

    The partial inverse of :func:`max_pool` (Zeiler and Fergus's *switches*): each value of
    ``x`` is written at its flat position ``indices`` within its ``(n, c)`` output plane, and
    every other position is zero.

    Parameters
    ----------
    x : array_like, shape (N, C, \*spatial) or (N, \*spatial, C)
        Pooled values, 1 to 3 spatial dimensions, channels-first or channels-last
        (``data_format``).
    indices : array_like of int, shape of ``x``
        Flat positions within each ``(n, c)`` output plane (over the spatial dimensions
        only, in either layout), e.g. from ``max_pool(..., return_indices=True)`` with the
        same ``data_format``; any integer dtype.
    kernel_size : int or tuple of int
        The pooling window size (it only sets the default output size).
    stride : int or tuple of int, optional
        Defaults to ``kernel_size``.
    padding : int or tuple of int, default 0
    output_size : sequence of int, optional
        Spatial output size (or the full shape, ``(N, C, *spatial)`` or ``(N, *spatial, C)``
        as ``data_format``), e.g. the input size of the pooling when it was ambiguous; it
        must differ from the default by less than ``stride`` in every dimension (PyTorch's
        rule).
    %(data_format)s

    Returns
    -------
    y : ndarray, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        Default size per dimension ``(in - 1) * stride - 2 * padding + kernel_size``; in the
        layout of ``x``, C-contiguous.

    Raises
    ------
    TypeError
        If ``indices`` does not have an integer dtype, or for non-numeric ``x``.
    ValueError
        If ``indices`` does not have the shape of ``x``, an index is outside
        ``[0, prod(out_spatial))`` (the message shows where and the value), or
        ``output_size`` is invalid.

    See Also
    --------
    max_pool, max_unpool_backward
    fastdeconv.sparse.max_unpool_matrix : the explicit sparse matrix.

    Notes
    -----
    Repeated indices within a plane (overlapping pooling windows that share a maximum, or
    hand-made indices): the value of the **last** input position in C order wins, as in
    PyTorch's CPU kernel. :func:`max_unpool_backward` and
    :func:`fastdeconv.sparse.max_unpool_matrix` follow the same rule, so the operator, its
    adjoint and its matrix agree exactly. Channels-last arrays are unpooled as they are (no
    transposition), with the same bits as channels-first.

    %(dtypes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.array([[[1.0, 5.0, 3.0, 2.0]]])
    >>> y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    >>> fastdeconv.max_unpool(y, idx, 2).tolist()
    [[[0.0, 5.0, 3.0, 0.0]]]
    >>> fastdeconv.max_unpool(y, idx, 2, output_size=(5,)).shape     # 4 < 5 < 6
    (1, 1, 5)
    """
    x = as_array(x, "x")
    dtype = result_dtype((x, "x"))
    ndim = spatial_ndim(x, "x")
    layout = Layout.resolve(data_format, ndim)
    kernel, stride, padding, _ = _pool_params(ndim, kernel_size, stride, padding, 1)
    indices = _check_indices(indices, x.shape)
    in_size = layout.spatial(x.shape)
    out_size = max_unpool_output_size(in_size, kernel, stride, padding,
                                      _output_size_in(output_size, ndim, layout))
    x = as_compute_array(x, dtype)
    y = allocate(layout.data_shape(*layout.batch_and_channels(x.shape), out_size), dtype,
                 "output", zero=True)
    planes, channels = layout.planes(x.shape)
    in_numel = int(np.prod(in_size, dtype=np.int64))
    out_numel = int(np.prod(out_size, dtype=np.int64))
    if planes * channels and in_numel:
        bad = np.full(planes, -1, dtype=np.intp)
        _pool_kernels.max_unpool_forward(x.reshape(-1), indices.reshape(-1), y.reshape(-1),
                                         planes, channels, in_numel, out_numel, bad,
                                         kernel_threads())
        if bad.max() >= 0:
            _raise_bad_index(bad, indices, out_numel, out_size)
    return y


@docfiller
def max_pool_backward(grad_output, indices, input_shape, *, data_format="channels_first"):
    r"""Gradient of :func:`max_pool` with respect to its input.

    Every output gradient is added to the input position its maximum came from.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        Gradient of the loss with respect to the pooled output, in the layout
        ``data_format``.
    indices : array_like of int, shape of ``grad_output``
        The indices returned by ``max_pool(..., return_indices=True)`` (same layout).
    input_shape : sequence of int
        Full shape of the pooled input in the same layout, ``(N, C, *spatial)`` or
        ``(N, *spatial, C)``.
    %(data_format)s

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``
        C-contiguous, in the layout ``data_format``.

    Raises
    ------
    TypeError
        If ``indices`` does not have an integer dtype.
    ValueError
        If the shapes disagree or an index is outside the input plane.

    See Also
    --------
    max_pool

    Notes
    -----
    With overlapping windows one input position can be the maximum of several windows; its
    gradient is the sum of theirs, added in output order (deterministic, whatever the thread
    count). This is the transpose of the selection matrix ``S`` with ``S[o, indices[o]] = 1``,
    i.e. :func:`max_unpool` *with summing* of repeated indices.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.array([[[1.0, 4.0, 2.0, 0.0, 3.0]]])
    >>> y, idx = fastdeconv.max_pool(x, 3, stride=1, return_indices=True)
    >>> idx.tolist()
    [[[1, 1, 4]]]
    >>> fastdeconv.max_pool_backward(np.ones_like(y), idx, x.shape).tolist()
    [[[0.0, 2.0, 0.0, 0.0, 1.0]]]
    """
    grad_output = as_array(grad_output, "grad_output")
    dtype = result_dtype((grad_output, "grad_output"))
    layout = Layout.resolve(data_format, spatial_ndim(grad_output, "grad_output"))
    shape = _pooled_input_shape(input_shape, grad_output, layout)
    indices = _check_indices(indices, grad_output.shape)
    grad_output = as_compute_array(grad_output, dtype)
    grad_x = allocate(shape, dtype, "input gradient", zero=True)
    planes, channels = layout.planes(shape)
    in_numel = int(np.prod(layout.spatial(shape), dtype=np.int64))
    out_numel = int(np.prod(layout.spatial(grad_output.shape), dtype=np.int64))
    if planes * channels and out_numel and not in_numel:  # (the kernel would index an empty buffer)
        raise ValueError(f"indices point into the input planes, but input_shape {shape} has "
                         f"none of their {out_numel} positions")
    if planes * channels and out_numel:
        bad = np.full(planes, -1, dtype=np.intp)
        _pool_kernels.max_pool_backward(grad_output.reshape(-1), indices.reshape(-1),
                                        grad_x.reshape(-1), planes, channels, in_numel,
                                        out_numel, bad, kernel_threads())
        if bad.max() >= 0:
            _raise_bad_index(bad, indices, in_numel, layout.spatial(shape))
    return grad_x


@docfiller
def max_unpool_backward(grad_output, indices, *, data_format="channels_first"):
    r"""Gradient of :func:`max_unpool` with respect to its input: the exact adjoint.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        Gradient of the loss with respect to the unpooled output, in the layout
        ``data_format``.
    indices : array_like of int, shape (N, C, \*spatial) or (N, \*spatial, C)
        The indices given to :func:`max_unpool` (same layout); their shape is the shape of
        the result.
    %(data_format)s

    Returns
    -------
    grad_x : ndarray, shape of ``indices``
        ``grad_output`` gathered at ``indices``: ``grad_x[n, c, i] = grad_output[n, c,
        indices[n, c, i]]`` (flat positions within each plane; channel index last in
        channels-last), C-contiguous.

    Raises
    ------
    TypeError
        If ``indices`` does not have an integer dtype.
    ValueError
        If batch and channels of the two disagree or an index is outside the output plane.

    See Also
    --------
    max_unpool

    Notes
    -----
    When an index repeats within a plane, only the position that :func:`max_unpool` let win
    (the last one in C order) receives the gradient; the others get zero, because their
    values never reach the output. (PyTorch's autograd gives every repeated position the
    gradient, which is not the derivative of its own forward.)

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> g = np.array([[[10.0, 20.0, 30.0, 40.0]]])
    >>> fastdeconv.max_unpool_backward(g, np.array([[[1, 2]]])).tolist()
    [[[20.0, 30.0]]]
    >>> fastdeconv.max_unpool_backward(g, np.array([[[3, 3]]])).tolist()   # the last wins
    [[[0.0, 40.0]]]
    """
    grad_output = as_array(grad_output, "grad_output")
    dtype = result_dtype((grad_output, "grad_output"))
    layout = Layout.resolve(data_format, spatial_ndim(grad_output, "grad_output"))
    indices = as_array(indices, "indices")
    if indices.ndim != grad_output.ndim or (layout.batch_and_channels(indices.shape)
                                            != layout.batch_and_channels(grad_output.shape)):
        raise ValueError(
            f"indices must have shape {_layout_name(layout)} with the batch, channels and "
            f"number of dimensions of grad_output {grad_output.shape}, got {indices.shape}")
    indices = _check_indices(indices, indices.shape)
    grad_output = as_compute_array(grad_output, dtype)
    grad_x = allocate(indices.shape, dtype, "input gradient")
    planes, channels = layout.planes(indices.shape)
    in_numel = int(np.prod(layout.spatial(indices.shape), dtype=np.int64))
    out_size = layout.spatial(grad_output.shape)
    out_numel = int(np.prod(out_size, dtype=np.int64))
    if planes * channels and in_numel:
        # one byte of marks per output element and working thread: at most a quarter of
        # grad_output's bytes, since no more threads than planes work
        threads = min(kernel_threads(), planes)
        marks = np.zeros(max(out_numel, 1) * channels * threads, dtype=np.uint8)
        bad = np.full(planes, -1, dtype=np.intp)
        _pool_kernels.max_unpool_backward(grad_output.reshape(-1), indices.reshape(-1),
                                          grad_x.reshape(-1), planes, channels, in_numel,
                                          out_numel, marks, bad, threads)
        if bad.max() >= 0:
            _raise_bad_index(bad, indices, out_numel, out_size)
    return grad_x
