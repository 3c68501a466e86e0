r"""Proven equivalences between upsampling layers, as functions that build both sides.

Three facts that explain most of what upsampling layers do, each made executable: a function
computes the parameters of one side from the other, and the returned object runs both sides
(``eq.lhs(x)`` and ``eq.rhs(x)``) so that a test, or a reader, can check that they agree.

Resize-convolution is a transposed convolution
    Nearest-neighbour upsampling by an integer factor :math:`r` followed by a convolution
    equals a stride-:math:`r` transposed convolution whose kernel is the (flipped,
    channel-swapped) convolution kernel convolved with a box of :math:`r` ones; linear
    upsampling gives a triangle instead of the box
    (:func:`resize_conv_as_conv_transpose`). The box makes every stride phase receive the
    same total weight, which is why resize-convolution has no checkerboard artefacts
    (Odena et al. [Odena2016]_) while a general transposed convolution does.
A transposed convolution is a convolution followed by pixel shuffle
    A stride-:math:`r` transposed convolution equals a stride-1 convolution at the low
    resolution with :math:`r^d` times as many output channels, followed by
    :func:`fastdeconv.pixel_shuffle` (Shi et al. [Shi2016]_, "sub-pixel convolution")
    (:func:`conv_transpose_as_subpixel`, and the other way :func:`subpixel_as_conv_transpose`).
A dilated convolution is a convolution with a zero-inserted kernel
    ``conv(x, w, dilation=d) == conv(x, dilate_kernel(w, d))``, for the transposed
    convolution too (:func:`dilate_kernel`).

The fourth relationship, a transposed convolution as a direct convolution of a zero-inserted
input, is :func:`fastdeconv.shapes.conv_transpose_as_conv`.

.. autosummary::
   :toctree: generated/

   dilate_kernel
   resize_conv_as_conv_transpose
   conv_transpose_as_subpixel
   subpixel_as_conv_transpose
   Equivalence

References
----------
.. [Odena2016] A. Odena, V. Dumoulin and C. Olah, "Deconvolution and checkerboard artifacts",
   Distill, 2016. https://distill.pub/2016/deconv-checkerboard/
.. [Shi2016] W. Shi, J. Caballero, L. Theis, F. Huszar, A. Aitken, C. Ledig and Z. Wang,
   "Is the deconvolution layer the same as a convolutional layer?", arXiv:1609.07009, 2016.
"""

import numpy as np

from ._equivalence import (Equivalence, _check_groups, _flip, _pairs, _swap_channels, _weight,
                           dilate_kernel)
from ._subpixel import conv_transpose_as_subpixel, subpixel_as_conv_transpose
from ._validation import normalize_tuple

__all__ = [
    "dilate_kernel",
    "resize_conv_as_conv_transpose",
    "conv_transpose_as_subpixel",
    "subpixel_as_conv_transpose",
    "Equivalence",
]


# ------------------------------------------------------------------------- resize then conv
_RESIZE_MODES = {"nearest": "nearest", "nearest-exact": "nearest", "linear": "linear",
                 "bilinear": "linear", "trilinear": "linear"}


def _upsampling_filter(r, mode, align_corners):
    """1-D filter T, its transposed-conv padding q and the edge replication of the resize.

    Integer-factor upsampling by ``r`` is ``conv_transpose(x, T, stride=r, padding=q)``
    (after replicating ``edge`` cells at both ends of x and adding ``r * edge`` to q).
    """
    if mode == "nearest":                      # u[m] = x[m // r]
        return np.ones(r), 0, 0
    if align_corners:                          # u[m] = x at coordinate m / r, size (n-1) r + 1
        taps = np.arange(2 * r - 1)
        return 1.0 - np.abs(taps - (r - 1)) / r, r - 1, 0
    # half-pixel centres: coordinate (m + 0.5) / r - 0.5, clamped at both ends
    q = r // 2
    taps = np.arange(2 * r - r % 2)
    return 1.0 - np.abs(taps - q - (r - 1) / 2) / r, q, 1


def _full_convolve(weight, filters):
    """Full convolution of every spatial slice of ``weight`` with a separable filter."""
    out = weight
    for axis, filt in enumerate(filters, start=2):
        moved = np.moveaxis(out, axis, -1)
        rows = moved.reshape(-1, moved.shape[-1])
        conv = np.stack([np.convolve(row, filt) for row in rows])
        out = np.moveaxis(conv.reshape(moved.shape[:-1] + (conv.shape[-1],)), -1, axis)
    return out


def resize_conv_as_conv_transpose(weight, scale_factor, *, mode="nearest", padding=0,
                                  dilation=1, groups=1, align_corners=False):
    r"""The transposed convolution that equals upsampling followed by a convolution.

    Left-hand side: ``conv(resize(x, scale_factor=r, mode=mode), weight, padding=padding,
    dilation=dilation, groups=groups)`` (stride 1). Right-hand side:
    ``conv_transpose(x, v, stride=r, padding=Q)`` with the kernel ``v`` and padding ``Q``
    computed here.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in / groups, \*kernel_size)
        The convolution's weight (``conv`` layout).
    scale_factor : int or tuple of int
        Integer upsampling factor :math:`r` per spatial dimension.
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear"}, default "nearest"
        The resize mode (for integer factors PyTorch's ``"nearest"`` and ``"nearest-exact"``
        agree).
    padding : int, tuple of int or of (before, after) pairs, or "same", default 0
        The convolution's padding; must be 0 for ``"linear"`` (see Notes).
    dilation : int or tuple of int, default 1
        The convolution's dilation (handled by :func:`dilate_kernel`).
    groups : int, default 1
    align_corners : bool, default False
        For ``"linear"``: PyTorch's ``align_corners=True``, for which the equivalence needs
        the output size :math:`(i - 1) r + 1` (``lhs`` passes that ``size`` to the resize).

    Returns
    -------
    Equivalence
        ``params`` holds ``weight`` (``v``, in the ``conv_transpose`` layout
        ``(C_in, C_out / groups, *K)``), ``stride``, ``padding`` (``Q`` as pairs),
        ``groups``, ``edge`` (cells of edge replication applied to ``x`` by ``rhs``) and
        ``filters`` (the 1-D upsampling filters). ``lhs(x)`` runs
        :func:`fastdeconv.resize` then :func:`fastdeconv.conv`; ``rhs(x)`` runs
        :func:`fastdeconv.conv_transpose`.

    Raises
    ------
    ValueError
        For a non-integer or non-positive factor, an unsupported mode, or a non-zero padding
        with ``"linear"``.

    Notes
    -----
    Integer upsampling is itself a transposed convolution, channel by channel: nearest is
    ``conv_transpose(x, T, stride=r)`` with the box :math:`T = (1, \dots, 1)` of length
    :math:`r`; linear with ``align_corners=True`` uses the triangle
    :math:`T[\tau] = 1 - |\tau - (r - 1)| / r` (length :math:`2r - 1`, padding
    :math:`q = r - 1`); linear with half-pixel centres (the default) uses
    :math:`T[\tau] = 1 - |\tau - q - (r - 1)/2| / r` with :math:`q = \lfloor r/2 \rfloor`
    (length :math:`2r - (r \bmod 2)`) *in the interior*: at the two ends the resize clamps the
    source coordinate, which is the triangle applied to ``x`` with its edge cell repeated once
    more (``edge = 1``). Composing with the convolution (a correlation with
    :math:`w_e`, the dilated kernel of extent :math:`k_e`):

    .. math::

        \operatorname{conv}(\operatorname{up}(x), w) = \operatorname{conv\_transpose}(x, v,
        \text{stride}=r,\ \text{padding}=Q), \quad
        v = T * \operatorname{flip}(w_e), \quad Q = q + k_e - 1 - p

    per side (``*`` the full convolution, channels swapped per group; with edge replication
    ``Q`` grows by :math:`r`; a negative ``Q`` becomes zero taps at that end of ``v``).

    Where it holds: for ``"nearest"`` with any padding, since the box's transposed
    convolution is exactly zero outside the resized image, like the convolution's zero
    padding. For ``"linear"`` only without padding: the triangle's transposed convolution
    continues past the image edge (``x[0]`` times the triangle's tail) where the convolution
    pads with zeros.

    With the box, every stride phase of ``v`` sums to the same value (each phase sees all of
    :math:`w`), so a constant input gives a constant output away from the borders: no
    checkerboard (see :mod:`fastdeconv.checkerboard`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.equivalences import resize_conv_as_conv_transpose
    >>> w = np.array([[[1.0, 2.0, 3.0]]])               # conv: C_out = C_in = 1, k = 3
    >>> eq = resize_conv_as_conv_transpose(w, 2, padding=1)
    >>> eq["weight"]                                    # box (1, 1) * flip(w)
    array([[[3., 5., 3., 1.]]])
    >>> eq["stride"], eq["padding"]
    ((2,), ((1, 1),))

    Each stride phase of the kernel sums to 6 = sum(w): ``3 + 3 = 5 + 1``.
    """
    weight = _weight(weight)
    ndim = weight.ndim - 2
    mode_key = _RESIZE_MODES.get(mode) if isinstance(mode, str) else None
    if mode_key is None:
        raise ValueError(f"mode must be one of {tuple(_RESIZE_MODES)}, got {mode!r}")
    if not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"align_corners must be True or False, got {align_corners!r}")
    if align_corners and mode_key != "linear":
        raise ValueError("align_corners=True only applies to mode='linear'")
    scale = normalize_tuple(scale_factor, ndim, "scale_factor", min_value=1)
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    groups = _check_groups(groups, weight.shape[0])
    pairs, _ = _pairs(padding, weight.shape[2:], dilation, transpose=False)

    if mode_key == "linear" and any(b or a for b, a in pairs):
        raise ValueError(
            f"padding must be 0 for mode={mode!r}, got {padding!r}: the convolution's zero "
            "padding of the resized image is not a transposed convolution of x (the "
            "triangle's tails reach past the image), so the equivalence holds for 'valid' "
            "convolutions only"
        )
    dense = dilate_kernel(weight, dilation)
    filters, tpad, edges, grow = [], [], [], []
    for r, k_e, (before, after) in zip(scale, dense.shape[2:], pairs):
        filt, q, edge = _upsampling_filter(r, mode_key, bool(align_corners))
        full = q + k_e - 1 + r * edge          # padding of the full overlap
        # Q = full - p; when negative, zero taps at that end of v keep the padding >= 0
        front, back = max(0, before - full), max(0, after - full)
        filters.append(filt)
        edges.append(edge)
        grow.append((front, back))
        tpad.append((full - before + front, full - after + back))
    v = _full_convolve(_flip(dense), filters)
    v = np.pad(v, ((0, 0), (0, 0)) + tuple(grow))
    v = np.ascontiguousarray(_swap_channels(v, groups), dtype=weight.dtype)
    params = dict(weight=v, stride=scale, padding=tuple(tpad), groups=groups,
                  edge=tuple(edges), filters=tuple(filters))
    orig = dict(padding=pairs, dilation=dilation, groups=groups)

    def lhs(x):
        from . import conv, resize

        x = np.asarray(x)
        if align_corners:
            size = tuple((n - 1) * r + 1 for n, r in zip(x.shape[2:], scale))
            up = resize(x, size, mode="linear", align_corners=True)
        else:
            up = resize(x, scale_factor=scale, mode=mode if mode_key == "nearest" else "linear")
        return conv(up, weight, **orig)

    def rhs(x):
        from . import conv_transpose

        x = np.asarray(x)
        if any(edges):
            x = np.pad(x, ((0, 0), (0, 0)) + tuple((e, e) for e in edges), mode="edge")
        return conv_transpose(x, v, stride=scale, padding=tuple(tpad), groups=groups)

    statement = (
        f"conv(resize(x, scale_factor={scale}, mode={mode!r}"
        + (", align_corners=True" if align_corners else "")
        + f"), w{tuple(weight.shape)}, padding={pairs}, dilation={dilation}, groups={groups}) == "
        + ("conv_transpose(edge_pad(x, 1), " if any(edges) else "conv_transpose(x, ")
        + f"v{tuple(v.shape)}, stride={scale}, padding={tuple(tpad)}, groups={groups})"
    )
    return Equivalence(statement, params, lhs, rhs)
