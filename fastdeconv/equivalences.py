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

from dataclasses import dataclass, field

import numpy as np

from ._geometry import resolve_padding
from ._validation import as_array, check_int, normalize_tuple, result_dtype

__all__ = [
    "dilate_kernel",
    "resize_conv_as_conv_transpose",
    "conv_transpose_as_subpixel",
    "subpixel_as_conv_transpose",
    "Equivalence",
]


# --------------------------------------------------------------------------------- helpers
def _weight(weight, name="weight"):
    weight = as_array(weight, name)
    dtype = result_dtype((weight, name))
    if weight.ndim < 3:
        raise ValueError(
            f"{name} must have at least 3 dimensions (channels, channels / groups, "
            f"*kernel_size), got shape {weight.shape}"
        )
    if 0 in weight.shape:
        raise ValueError(f"{name} must not have zero-size dimensions, got shape {weight.shape}")
    return np.asarray(weight, dtype=dtype)


def _pairs(padding, kernel_size, dilation, *, transpose):
    """Resolve explicit or string padding of a stride-1 conv (or of a transposed conv).

    At stride 1 the string paddings do not depend on the input size (``"same"`` pads
    ``dilation * (k - 1)`` in total), so any size will do for resolving them.
    """
    ndim = len(kernel_size)
    return resolve_padding(padding, (max(kernel_size) * max(dilation),) * ndim, kernel_size,
                           (1,) * ndim, dilation, transpose=transpose)


def _swap_channels(weight, groups):
    """(A, B / g, *k) <-> (B, A / g, *k): swap the two channel axes within each group."""
    a, bg = weight.shape[:2]
    ag = a // groups
    blocks = weight.reshape((groups, ag, bg) + weight.shape[2:])
    return np.swapaxes(blocks, 1, 2).reshape((groups * bg, ag) + weight.shape[2:])


def _check_groups(groups, channels, name="weight.shape[0]"):
    groups = check_int(groups, "groups", min_value=1)
    if channels % groups:
        raise ValueError(f"groups={groups} must divide {name} = {channels}")
    return groups


def _flip(weight):
    return weight[(slice(None),) * 2 + (slice(None, None, -1),) * (weight.ndim - 2)]


@dataclass(frozen=True)
class Equivalence:
    """Two computations that are equal for every input ``x``: ``lhs(x) == rhs(x)``.

    Attributes
    ----------
    statement : str
        What is equal to what, in words.
    params : dict
        The parameters of both sides (weights, strides, paddings, ...), for inspection;
        ``eq[key]`` is ``eq.params[key]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.equivalences import resize_conv_as_conv_transpose
    >>> eq = resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 2)
    >>> print(eq)
    conv(resize(x, scale_factor=(2,), mode='nearest'), w(1, 1, 3), padding=((0, 0),), dilation=(1,), groups=1) == conv_transpose(x, v(1, 1, 4), stride=(2,), padding=((2, 2),), groups=1)
    >>> x = np.arange(6.0).reshape(1, 1, 6)
    >>> eq.lhs(x)
    array([[[ 1.,  2.,  4.,  5.,  7.,  8., 10., 11., 13., 14.]]])
    >>> eq.max_abs_difference(x)
    0.0
    """

    statement: str
    params: dict
    _lhs: object = field(repr=False)
    _rhs: object = field(repr=False)

    def lhs(self, x):
        """The left-hand side applied to a batch ``x`` of shape (N, C, \\*spatial)."""
        return self._lhs(x)

    def rhs(self, x):
        """The right-hand side applied to ``x``."""
        return self._rhs(x)

    def max_abs_difference(self, x):
        """``max |lhs(x) - rhs(x)|``: zero up to rounding. Raises if the shapes differ."""
        a, b = self.lhs(x), self.rhs(x)
        if a.shape != b.shape:
            raise AssertionError(f"the two sides have different shapes {a.shape} and {b.shape}")
        return float(np.max(np.abs(a - b), initial=0.0))

    def __getitem__(self, key):
        return self.params[key]

    def __str__(self):
        return self.statement


# --------------------------------------------------------------------------------- dilation
def dilate_kernel(weight, dilation):
    r"""Insert ``dilation - 1`` zeros between neighbouring kernel taps.

    Parameters
    ----------
    weight : array_like, shape (A, B, \*kernel_size)
        A ``conv`` or ``conv_transpose`` weight.
    dilation : int or tuple of int
        One value for every spatial dimension or one per dimension, at least 1.

    Returns
    -------
    ndarray, shape (A, B, \*(dilation * (kernel_size - 1) + 1))
        ``out[..., t * dilation] = weight[..., t]``, zero elsewhere.

    Notes
    -----
    A dilated convolution reads input :math:`o s - p_b + t d` through tap :math:`t`; the
    zero-inserted kernel :math:`w'` has tap :math:`t d` equal to :math:`w[t]` and zeros in
    between, so

    .. math::

        \operatorname{conv}(x, w, \text{dilation}=d) = \operatorname{conv}(x, w')

    with every other parameter unchanged, and likewise for ``conv_transpose``. The dilated
    form avoids multiplying the zeros.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> from fastdeconv.equivalences import dilate_kernel
    >>> w = np.array([[[1.0, 2.0, 3.0]]])
    >>> dilate_kernel(w, 2)
    array([[[1., 0., 2., 0., 3.]]])
    >>> x = np.random.default_rng(0).standard_normal((1, 1, 12))
    >>> bool(np.allclose(fastdeconv.conv(x, w, dilation=2, stride=2, padding=1),
    ...                  fastdeconv.conv(x, dilate_kernel(w, 2), stride=2, padding=1)))
    True
    """
    weight = _weight(weight)
    ndim = weight.ndim - 2
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    size = tuple(d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation))
    out = np.zeros(weight.shape[:2] + size, dtype=weight.dtype)
    out[(slice(None),) * 2 + tuple(slice(None, None, d) for d in dilation)] = weight
    return out


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


# -------------------------------------------------------------- conv_transpose <-> sub-pixel
def _phase_taps(k_e, r, before):
    """Per-dimension tap table of the sub-pixel form of a stride-r transposed conv.

    Returns ``(table, pad_before, length)`` where ``table[sigma, mu]`` is the tap of the
    (dilated) transposed-conv kernel that output phase ``sigma`` reads at low-resolution
    offset ``mu`` (``-1``: none).
    """
    m = -(-k_e // r)
    c = [(sigma + before) // r for sigma in range(r)]
    e_min, e_max = c[0] - m + 1, c[-1]
    length = e_max - e_min + 1
    table = np.full((r, length), -1, dtype=np.int64)
    for sigma in range(r):
        rho = (sigma + before) % r
        for mm in range(m):
            tap = mm * r + rho
            if tap < k_e:
                table[sigma, c[sigma] - mm - e_min] = tap
    return table, -e_min, length


def conv_transpose_as_subpixel(weight, stride, *, padding=0, output_padding=0, dilation=1,
                               groups=1):
    r"""A stride-:math:`r` transposed convolution as a convolution followed by pixel shuffle.

    Left-hand side: ``conv_transpose(x, weight, stride=r, padding=padding,
    output_padding=output_padding, dilation=dilation, groups=groups)``. Right-hand side:
    ``pixel_shuffle(conv(x, u, padding=p, groups=groups), r)``, cropped by ``crop`` cells at
    the end of each spatial dimension when the transposed convolution's output is not a
    multiple of :math:`r`.

    Parameters
    ----------
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
        The transposed convolution's weight.
    stride : int or tuple of int
        The upscale factor :math:`r`, the same in every dimension (as for pixel shuffle).
    padding, output_padding, dilation, groups
        As for :func:`fastdeconv.conv_transpose` (string paddings included).

    Returns
    -------
    Equivalence
        ``params`` holds ``weight`` (``u``, shape ``(C_out * r**d, C_in / groups, *L)``),
        ``padding`` (the low-resolution convolution's ``(before, after)`` pairs),
        ``upscale_factor``, ``groups`` and ``crop``.

    Raises
    ------
    ValueError
        For different strides per dimension, or parameters ``conv_transpose`` rejects.

    Notes
    -----
    Output cell :math:`o = b r + \sigma` of the transposed convolution (padding
    :math:`p_b`) receives the taps :math:`t \equiv \sigma + p_b \pmod r` only (its *phase*):
    with :math:`c_\sigma = \lfloor (\sigma + p_b) / r \rfloor` and
    :math:`\rho_\sigma = (\sigma + p_b) \bmod r`,

    .. math::

        y[b r + \sigma] = \sum_{m} x[b + c_\sigma - m]\; w[m r + \rho_\sigma],

    a stride-1 correlation of :math:`x` with a sub-kernel per phase. Stacking the
    :math:`r^d` sub-kernels (zero-padded to a common length :math:`L`) as output channels
    ``co * r**d + sigma`` (row-major over the phases, pixel shuffle's order) gives ``u``;
    :func:`fastdeconv.pixel_shuffle` then interleaves the phases. For DCGAN's 4x4 kernel,
    stride 2, padding 1, ``u`` is 3x3 with padding 1 (Shi et al. 2016).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.equivalences import conv_transpose_as_subpixel
    >>> w = np.arange(1.0, 5.0).reshape(1, 1, 4)        # conv_transpose: k = 4
    >>> eq = conv_transpose_as_subpixel(w, 2, padding=1)
    >>> eq["weight"]                                    # phase 0 reads taps 3, 1; phase 1 taps 2, 0
    array([[[4., 2., 0.]],
    <BLANKLINE>
           [[0., 3., 1.]]])
    >>> eq["padding"], eq["crop"]
    (((1, 1),), (0,))
    """
    weight = _weight(weight)
    ndim = weight.ndim - 2
    strides = normalize_tuple(stride, ndim, "stride", min_value=1)
    if len(set(strides)) != 1:
        raise ValueError(f"stride must be the same in every dimension for pixel shuffle, got {strides}")
    r = strides[0]
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    output_padding = normalize_tuple(output_padding, ndim, "output_padding", min_value=0)
    groups = _check_groups(groups, weight.shape[0])
    pairs, implied = resolve_padding(padding, (1,) * ndim, weight.shape[2:], strides, dilation,
                                     transpose=True)
    # validate exactly as conv_transpose does (output_padding range, empty outputs)
    from ._geometry import ConvGeometry

    ConvGeometry.for_conv_transpose((1 << 30,) * ndim, weight.shape[2:],
                                    stride=strides, padding=padding,
                                    output_padding=output_padding, dilation=dilation)
    dense = dilate_kernel(weight, dilation)
    # A padding of a whole kernel period or more before the output: lengthen the kernel with
    # zero taps at the end and crop as many more cells after (the operator is unchanged).
    grow = [max(0, (before // r + 1) * r - k_e) for (before, _), k_e in zip(pairs, dense.shape[2:])]
    dense = np.pad(dense, ((0, 0), (0, 0)) + tuple((0, z) for z in grow))
    tables, low_pads, crops = [], [], []
    for dim, (k_e, (before, after), op, extra, z) in enumerate(
        zip(dense.shape[2:], pairs, output_padding, implied, grow)
    ):
        after += z
        table, pad_b, length = _phase_taps(k_e, r, before)
        delta = k_e + op + extra - before - after - r      # out = n * r + delta
        blocks = -(-delta // r)                              # low-res outputs = n + blocks
        pad_a = blocks + length - 1 - pad_b
        crop = blocks * r - delta
        if pad_a < 0:
            crop += -pad_a * r
            pad_a = 0
        tables.append(table)
        low_pads.append((pad_b, pad_a))
        crops.append(crop)
    # gather: u[(co, sigma...), ci, mu...] = dense[ci, co, table[sigma, mu]...]
    padded = np.pad(dense, ((0, 0), (0, 0)) + ((0, 1),) * ndim)    # index -1 -> zero slot
    index = []
    for dim, table in enumerate(tables):
        shape = [1] * (2 * ndim)
        shape[dim], shape[ndim + dim] = table.shape
        index.append(table.reshape(shape))
    gathered = padded[(slice(None), slice(None)) + tuple(index)]   # (C_in, cog, r.., L..)
    c_in, cog = dense.shape[:2]
    cig = c_in // groups
    lengths = tuple(t.shape[1] for t in tables)
    u = gathered.reshape((groups, cig, cog) + (r,) * ndim + lengths)
    order = (0, 2) + tuple(range(3, 3 + ndim)) + (1,) + tuple(range(3 + ndim, 3 + 2 * ndim))
    u = np.ascontiguousarray(u.transpose(order).reshape((groups * cog * r ** ndim, cig) + lengths))
    params = dict(weight=u, padding=tuple(low_pads), upscale_factor=r, groups=groups,
                  crop=tuple(crops))
    ct = dict(stride=strides, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)

    def lhs(x):
        from . import conv_transpose

        return conv_transpose(x, weight, **ct)

    def rhs(x):
        from . import conv, pixel_shuffle

        y = pixel_shuffle(conv(x, u, padding=tuple(low_pads), groups=groups), r)
        return y[(slice(None),) * 2 + tuple(slice(0, y.shape[2 + i] - c) for i, c in enumerate(crops))]

    statement = (
        f"conv_transpose(x, w{tuple(weight.shape)}, stride={r}, padding={padding!r}, "
        f"output_padding={output_padding}, dilation={dilation}, groups={groups}) == "
        f"pixel_shuffle(conv(x, u{tuple(u.shape)}, padding={tuple(low_pads)}, groups={groups}), {r})"
        + (f" cropped by {tuple(crops)} at the end" if any(crops) else "")
    )
    return Equivalence(statement, params, lhs, rhs)


def subpixel_as_conv_transpose(weight, upscale_factor, *, padding=0, groups=1):
    r"""The transposed convolution that equals a convolution followed by pixel shuffle.

    Left-hand side: ``pixel_shuffle(conv(x, weight, padding=padding, groups=groups), r)``
    (stride 1, the sub-pixel convolution layer of Shi et al.). Right-hand side:
    ``conv_transpose(x, w, stride=r, padding=P, groups=groups)`` with a kernel :math:`r`
    times longer. This inverts :func:`conv_transpose_as_subpixel`: converting back and forth
    returns the same low-resolution weight.

    Parameters
    ----------
    weight : array_like, shape (C_out * r**d, C_in / groups, \*L)
        The low-resolution convolution's weight; output channel ``co * r**d + sigma`` feeds
        phase ``sigma`` (row-major) of output channel ``co``.
    upscale_factor : int
        :math:`r`.
    padding : int, tuple of int or of (before, after) pairs, or "same", default 0
        The convolution's padding.
    groups : int, default 1

    Returns
    -------
    Equivalence
        ``params`` holds ``weight`` (shape ``(C_in, C_out / groups, *(L * r))``), ``stride``,
        ``padding`` (pairs) and ``groups``.

    Notes
    -----
    Phase :math:`\sigma` of the output reads the low-resolution kernel
    :math:`u_\sigma`; with :math:`P = (L - 1 - p) r` per side the transposed convolution's
    kernel is :math:`w[m r + \sigma] = u_\sigma[L - 1 - m]`: the phases interleaved and
    reversed, channels swapped per group. (A padding :math:`p > L - 1` first extends
    :math:`u` with zero taps at the other end, which changes nothing but keeps
    :math:`P \ge 0`.)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.equivalences import subpixel_as_conv_transpose
    >>> u = np.array([[[4.0, 2.0, 0.0]], [[0.0, 3.0, 1.0]]])   # 2 phases, L = 3
    >>> eq = subpixel_as_conv_transpose(u, 2, padding=1)
    >>> eq["weight"], eq["padding"]
    (array([[[0., 1., 2., 3., 4., 0.]]]), ((2, 2),))

    These are the kernel ``(1, 2, 3, 4)`` with padding 1 that
    :func:`conv_transpose_as_subpixel` started from, with one zero tap (and one more cell of
    padding) on each side.
    """
    weight = _weight(weight)
    ndim = weight.ndim - 2
    r = check_int(upscale_factor, "upscale_factor", min_value=1)
    phases = r ** ndim
    if weight.shape[0] % phases:
        raise ValueError(
            f"weight.shape[0] must be a multiple of upscale_factor ** {ndim} = {phases} (one "
            f"channel per output channel and phase), got shape {weight.shape}"
        )
    groups = check_int(groups, "groups", min_value=1)
    c_out = weight.shape[0] // phases
    if c_out % groups:
        raise ValueError(
            f"groups={groups} must divide the output channels weight.shape[0] / "
            f"upscale_factor ** {ndim} = {c_out}"
        )
    pairs, _ = _pairs(padding, weight.shape[2:], (1,) * ndim, transpose=False)
    # Padding of more than L - 1 cells: zero taps on the other end of the low-resolution
    # kernel (with as much more padding) leave the operator unchanged and keep P >= 0.
    front = [max(0, a - (n - 1)) for (_, a), n in zip(pairs, weight.shape[2:])]
    back = [max(0, b - (n - 1)) for (b, _), n in zip(pairs, weight.shape[2:])]
    low = np.pad(weight, ((0, 0), (0, 0)) + tuple(zip(front, back)))
    lengths = low.shape[2:]
    grown = tuple((b + f, a + z) for (b, a), f, z in zip(pairs, front, back))
    tpad = tuple(((length - 1 - b) * r, (length - 1 - a) * r) for (b, a), length in zip(grown, lengths))
    cig = weight.shape[1]
    cog = c_out // groups
    # (g, cog, r.., cig, L..) -> (g, cig, cog, L.., r..) with L reversed, then interleave
    u = low.reshape((groups, cog) + (r,) * ndim + (cig,) + lengths)
    u = _flip_axes(u, range(3 + ndim, 3 + 2 * ndim))
    order = [0, 2 + ndim, 1]
    for dim in range(ndim):
        order += [3 + ndim + dim, 2 + dim]
    w = u.transpose(order).reshape((groups * cig, cog) + tuple(n * r for n in lengths))
    w = np.ascontiguousarray(w)
    params = dict(weight=w, stride=(r,) * ndim, padding=tpad, groups=groups)

    def lhs(x):
        from . import conv, pixel_shuffle

        return pixel_shuffle(conv(x, weight, padding=pairs, groups=groups), r)

    def rhs(x):
        from . import conv_transpose

        return conv_transpose(x, w, stride=r, padding=tpad, groups=groups)

    statement = (
        f"pixel_shuffle(conv(x, u{tuple(weight.shape)}, padding={pairs}, groups={groups}), {r}) "
        f"== conv_transpose(x, w{tuple(w.shape)}, stride={r}, padding={tpad}, groups={groups})"
    )
    return Equivalence(statement, params, lhs, rhs)


def _flip_axes(array, axes):
    index = [slice(None)] * array.ndim
    for axis in axes:
        index[axis] = slice(None, None, -1)
    return array[tuple(index)]
