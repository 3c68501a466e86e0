"""A transposed convolution as a convolution followed by pixel shuffle, and back.

:func:`conv_transpose_as_subpixel` and :func:`subpixel_as_conv_transpose`, exported by
:mod:`fastdeconv.equivalences`.
"""

import numpy as np

from ._equivalence import Equivalence, _check_groups, _pairs, _weight, dilate_kernel
from ._geometry import resolve_padding
from ._validation import check_int, normalize_tuple

__all__ = ["conv_transpose_as_subpixel", "subpixel_as_conv_transpose"]


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
