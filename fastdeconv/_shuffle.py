"""Pixel shuffle (depth to space) and pixel unshuffle (space to depth) in 1 to 3 dimensions.

Both are permutations of the elements, so each is the other's inverse *and* adjoint. The two
channel orders:

``"CRD"`` (column, row, depth)
    PyTorch's ``PixelShuffle`` and ONNX ``DepthToSpace(mode="CRD")``: input channel
    ``c * r**d + phase`` becomes output channel ``c`` (the sub-pixel phases are the fastest
    varying part of the channel index).
``"DCR"`` (depth, column, row)
    TensorFlow's ``depth_to_space`` and ONNX ``DepthToSpace``'s default: input channel
    ``phase * C + c`` becomes output channel ``c`` (the phases are the slowest varying part).

The work is one NumPy reshape/transpose/copy: a memory-bound permutation. With
``data_format="channels_last"`` the same single copy reads and writes ``(N, *spatial, C)``
directly (no transposition to channels-first and back).
"""

import math
import numbers

import numpy as np

from ._docstrings import docfiller
from ._formats import Layout
from ._validation import as_array, as_compute_array, normalize_tuple, result_dtype, spatial_ndim

__all__ = ["pixel_shuffle", "pixel_unshuffle", "ORDERS"]

ORDERS = ("CRD", "DCR")


def _check(x, factor, order, data_format, name, name_x="x"):
    """``(x, ndim, factors, channels_last)``: x as a C-contiguous compute array in the
    caller's layout."""
    x = as_array(x, name_x)
    dtype = result_dtype((x, name_x))
    ndim = spatial_ndim(x, name_x)
    channels_last = Layout.resolve(data_format, ndim).channels_last
    if isinstance(factor, numbers.Real) and not isinstance(factor, numbers.Integral):
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {factor!r}")
    factors = normalize_tuple(factor, ndim, name, min_value=1)
    # The reshapes below put the factors into the shape; NumPy refuses shapes whose non-zero
    # extents, times the item size, multiply beyond its index range (even for an empty array).
    nonzero_extent = math.prod(factors) * math.prod(d for d in x.shape if d)
    if nonzero_extent * np.dtype(dtype).itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{name} {factors} is too large for an input of shape {x.shape}")
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be 'CRD' (PyTorch) or 'DCR' (TensorFlow, ONNX's "
                         f"default), got {order!r}")
    return as_compute_array(x, dtype), ndim, factors, channels_last


def _split_channels(order, ndim, channels_first):
    """The channel axis of the view ``(N, [c, *r or *r, c], *spatial)`` (channels-first) or
    ``(N, *spatial, [c, *r or *r, c])`` (channels-last), and its ``ndim`` phase axes."""
    head = 1 if channels_first else 1 + ndim
    if order == "CRD":
        return head, list(range(head + 1, head + 1 + ndim))
    return head + ndim, list(range(head, head + ndim))


def _shuffled(v, axes, shape):
    """The one copy of the permutation: ``v.transpose(axes)`` C-contiguous, as ``shape``."""
    return np.ascontiguousarray(v.transpose(axes)).reshape(shape)


@docfiller
def pixel_shuffle(x, upscale_factor, *, order="CRD", data_format="channels_first"):
    r"""Rearrange channels into space: ``(N, C r^d, *S) -> (N, C, *(S r))``.

    Sub-pixel convolution's upsampling step (Shi et al., 2016): every group of
    :math:`r^d` channels becomes an :math:`r \times \dots \times r` block of pixels.

    Parameters
    ----------
    x : array_like, shape (N, C \* R, \*spatial) or (N, \*spatial, C \* R)
        Input with 1, 2 or 3 spatial dimensions, channels-first or channels-last
        (``data_format``); ``R = prod(upscale_factor)`` over the spatial dimensions.
    upscale_factor : int or tuple of int
        Block size :math:`r`, the same for every spatial dimension or one per dimension.
    order : {"CRD", "DCR"}, default "CRD"
        Channel order: ``"CRD"`` is PyTorch's ``pixel_shuffle`` (and ONNX ``DepthToSpace``
        with ``mode="CRD"``), ``"DCR"`` is TensorFlow's ``depth_to_space`` and ONNX
        ``DepthToSpace``'s default (with ``data_format="channels_last"``, exactly
        TensorFlow's ``depth_to_space`` of an NHWC tensor).
    %(data_format)s

    Returns
    -------
    y : ndarray, shape (N, C, \*(spatial \* r)) or (N, \*(spatial \* r), C)
        ``r = upscale_factor``; in the layout of ``x``, C-contiguous.

    Raises
    ------
    ValueError
        If the channels are not divisible by ``prod(upscale_factor)``, a factor is not
        positive, ``x`` has the wrong number of dimensions, or ``order`` or ``data_format``
        is unknown.
    TypeError
        For non-integer factors or non-numeric ``x``.

    See Also
    --------
    pixel_unshuffle : the inverse, which is also the adjoint (the gradient).
    fastdeconv.sparse.pixel_shuffle_matrix : the permutation matrix.

    Notes
    -----
    With :math:`d` spatial dimensions, :math:`R = \prod_k r_k` and the phase
    :math:`\phi = (j_1 \bmod r_1, \dots, j_d \bmod r_d)` of output position :math:`j`
    (flattened in C order to :math:`p \in [0, R)`),

    .. math::

        y[n, c, j] = x[n, c R + p, \lfloor j / r \rfloor] \quad \text{("CRD")}, \qquad
        y[n, c, j] = x[n, p C + c, \lfloor j / r \rfloor] \quad \text{("DCR")}.

    In channels-last the same formula holds with the channel index last,
    ``y[n, j, c] = x[n, j // r, c R + p]`` (``"CRD"``). Either layout costs one copy (a
    channels-last array is rearranged directly, not through channels-first).

    The result dtype follows the library's policy (float16 to float32, integers to
    float64); the operation itself is an exact permutation.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.arange(8.0).reshape(1, 4, 1, 2)        # 4 = 1 channel x 2 x 2 phases
    >>> fastdeconv.pixel_shuffle(x, 2)[0, 0].tolist()   # y[2h + i, 2w + j] = x[2i + j, h, w]
    [[0.0, 2.0, 1.0, 3.0], [4.0, 6.0, 5.0, 7.0]]
    >>> fastdeconv.pixel_shuffle(x, 2, order="DCR")[0, 0].tolist()   # one channel: the same
    [[0.0, 2.0, 1.0, 3.0], [4.0, 6.0, 5.0, 7.0]]
    >>> y = fastdeconv.pixel_shuffle(np.arange(8.0).reshape(1, 4, 2), 2)   # 1-D: 2 channels
    >>> y.tolist()
    [[[0.0, 2.0, 1.0, 3.0], [4.0, 6.0, 5.0, 7.0]]]
    >>> bool(np.array_equal(fastdeconv.pixel_unshuffle(y, 2), np.arange(8.0).reshape(1, 4, 2)))
    True

    Channels-last (TensorFlow's ``depth_to_space`` of an NHWC tensor is ``order="DCR"``):

    >>> xl = np.moveaxis(x, 1, -1)                       # (1, 1, 2, 4)
    >>> fastdeconv.pixel_shuffle(xl, 2, order="DCR", data_format="NHWC")[0, :, :, 0].tolist()
    [[0.0, 2.0, 1.0, 3.0], [4.0, 6.0, 5.0, 7.0]]
    """
    x, ndim, r, channels_last = _check(x, upscale_factor, order, data_format,
                                       "upscale_factor")
    n = x.shape[0]
    channels, spatial = (x.shape[-1], x.shape[1:-1]) if channels_last else (x.shape[1],
                                                                            x.shape[2:])
    blocks = math.prod(r)
    if channels % blocks:
        raise ValueError(
            f"the channels of x ({channels}) must be divisible by the product of "
            f"upscale_factor {tuple(r)} over the spatial dimensions ({blocks})")
    c = channels // blocks
    split = (c,) + tuple(r) if order == "CRD" else tuple(r) + (c,)
    channel_axis, phase_axes = _split_channels(order, ndim, not channels_last)
    out = tuple(s * f for s, f in zip(spatial, r))
    if channels_last:
        v = x.reshape((n,) + spatial + split)
        space_axes = list(range(1, 1 + ndim))
        interleaved = [a for pair in zip(space_axes, phase_axes) for a in pair]
        return _shuffled(v, [0] + interleaved + [channel_axis], (n,) + out + (c,))
    v = x.reshape((n,) + split + spatial)
    space_axes = list(range(2 + ndim, 2 + 2 * ndim))
    interleaved = [a for pair in zip(space_axes, phase_axes) for a in pair]
    return _shuffled(v, [0, channel_axis] + interleaved, (n, c) + out)


@docfiller
def pixel_unshuffle(x, downscale_factor, *, order="CRD", data_format="channels_first"):
    r"""Rearrange space into channels: ``(N, C, *(S r)) -> (N, C r^d, *S)``.

    The inverse of :func:`pixel_shuffle` with the same factor and order, and also its adjoint
    (the gradient), since both are permutations.

    Parameters
    ----------
    x : array_like, shape (N, C, \*spatial) or (N, \*spatial, C)
        Input with 1, 2 or 3 spatial dimensions, each divisible by its factor, channels-first
        or channels-last (``data_format``).
    downscale_factor : int or tuple of int
        Block size :math:`r`, one value or one per spatial dimension.
    order : {"CRD", "DCR"}, default "CRD"
        ``"CRD"``: PyTorch's ``pixel_unshuffle``; ``"DCR"``: TensorFlow's
        ``space_to_depth`` and ONNX ``SpaceToDepth``.
    %(data_format)s

    Returns
    -------
    y : ndarray, shape (N, C \* R, \*(spatial / r)) or (N, \*(spatial / r), C \* R)
        ``r = downscale_factor``, ``R = prod(r)``; in the layout of ``x``, C-contiguous.

    Raises
    ------
    ValueError
        If a spatial size is not divisible by its factor, a factor is not positive, ``x``
        has the wrong number of dimensions, or ``order`` or ``data_format`` is unknown.
    TypeError
        For non-integer factors or non-numeric ``x``.

    See Also
    --------
    pixel_shuffle

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y = fastdeconv.pixel_unshuffle(x, 2)
    >>> y.shape
    (1, 4, 2, 2)
    >>> y[0, :, 0, 0].tolist()      # the 2 x 2 block at the top left, phases in C order
    [0.0, 1.0, 4.0, 5.0]
    """
    x, ndim, r, channels_last = _check(x, downscale_factor, order, data_format,
                                       "downscale_factor")
    n = x.shape[0]
    c, spatial = (x.shape[-1], x.shape[1:-1]) if channels_last else (x.shape[1], x.shape[2:])
    if any(s % f for s, f in zip(spatial, r)):
        raise ValueError(f"the spatial size of x {tuple(spatial)} must be divisible by "
                         f"downscale_factor {tuple(r)}")
    small = tuple(s // f for s, f in zip(spatial, r))
    pairs = tuple(a for pair in zip(small, r) for a in pair)
    # the channel block of the result: c then the phases ("CRD") or the phases then c ("DCR")
    if channels_last:
        v = x.reshape((n,) + pairs + (c,))
        space_axes = [1 + 2 * k for k in range(ndim)]
        phase_axes = [2 + 2 * k for k in range(ndim)]
        channel_axis = 1 + 2 * ndim
        block = [channel_axis] + phase_axes if order == "CRD" else phase_axes + [channel_axis]
        return _shuffled(v, [0] + space_axes + block, (n,) + small + (c * math.prod(r),))
    v = x.reshape((n, c) + pairs)
    space_axes = [2 + 2 * k for k in range(ndim)]
    phase_axes = [3 + 2 * k for k in range(ndim)]
    block = [1] + phase_axes if order == "CRD" else phase_axes + [1]
    return _shuffled(v, [0] + block + space_axes, (n, c * math.prod(r)) + small)
