r"""Why transposed convolutions make checkerboards, and how to start without them.

A transposed convolution with stride :math:`s` scatters every input cell into :math:`k`
output cells spaced by the dilation :math:`d`, and neighbouring input cells land :math:`s`
cells apart. An output cell :math:`o` therefore receives the kernel taps
:math:`t \equiv o + p_b \pmod s` (times :math:`d`) only, its *phase*: when :math:`s` does not
divide :math:`k` some phases get more taps than others (the *overlap map*), and even with
equal counts the taps of different phases generally have different sums. Either way a
constant input gives an output that repeats with period :math:`s`: the checkerboard artefact
(Odena et al. [Odena2016b]_).

:func:`overlap_map` counts the taps per output cell, :func:`is_uniform` says whether the
counts are equal, :func:`constant_response` and :func:`checkerboard_score` measure the
unevenness for given weights, and :func:`icnr` initialises sub-pixel and transposed
convolutions so that every phase has the same kernel (Aitken et al. [Aitken2017]_), which makes the
response to a constant input flat from the start.

Everything here is index arithmetic on the convolution geometry
(:class:`fastdeconv._geometry.ConvGeometry`), independent of the compiled kernels, which the
tests hold it against.

.. autosummary::
   :toctree: generated/

   overlap_map
   is_uniform
   constant_response
   checkerboard_score
   icnr

References
----------
.. [Aitken2017] A. Aitken, C. Ledig, L. Theis, J. Caballero, Z. Wang and W. Shi, "Checkerboard
   artifact free sub-pixel convolution: A note on sub-pixel convolution, resize convolution
   and convolution resize", arXiv:1707.02937, 2017.
.. [Odena2016b] A. Odena, V. Dumoulin and C. Olah, "Deconvolution and checkerboard
   artifacts", Distill, 2016. https://distill.pub/2016/deconv-checkerboard/

Examples
--------
>>> from fastdeconv.checkerboard import overlap_map, is_uniform
>>> overlap_map(3, 2)                 # kernel 3, stride 2: phases get 2 and 1 taps
array([2, 1])
>>> overlap_map((3, 3), 2)
array([[4, 2],
       [2, 1]])
>>> is_uniform(3, 2), is_uniform(4, 2)
(False, True)
"""

from math import prod

import numpy as np

from ._geometry import ConvGeometry
from ._validation import (as_array, as_int_tuple, check_int, check_workspace, normalize_tuple,
                          result_dtype)

__all__ = ["overlap_map", "is_uniform", "constant_response", "checkerboard_score", "icnr"]


def _ndim(*values):
    for value in values:
        if isinstance(value, (list, tuple, np.ndarray)):
            return len(value)
    return 1


def _phase_counts_1d(k, s, d):
    """Taps per phase (o + p_b) mod s of one dimension: relation (1) with j = 0."""
    taps = np.arange(k)
    geometry = ConvGeometry.for_conv((d * (k - 1) + 1,), (k,), stride=s, dilation=d)
    positions = geometry.input_positions(0, 0, taps)      # t * d (no padding)
    return np.bincount(positions % s, minlength=s)


def _full_counts_1d(n, k, s, d, pair, op):
    """Taps per output cell of a 1-D transposed convolution on n input cells."""
    geometry = ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=(pair,),
                                               output_padding=op, dilation=d)
    out = geometry.input_size[0]
    j, t = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    positions = geometry.input_positions(0, j, t).ravel()
    inside = (positions >= 0) & (positions < out)
    return np.bincount(positions[inside], minlength=out)


def overlap_map(kernel_size, stride, *, dilation=1, input_shape=None, padding=0,
                output_padding=0):
    r"""How many kernel taps land on each output cell of a transposed convolution.

    Parameters
    ----------
    kernel_size, stride : int or tuple of int
    dilation : int or tuple of int, default 1
    input_shape : int or tuple of int, optional
        Spatial input shape of the transposed convolution. Without it, one period of the
        interior is returned (shape ``stride``); with it, the whole output.
    padding, output_padding : optional
        As for :func:`fastdeconv.conv_transpose` (only with ``input_shape``).

    Returns
    -------
    ndarray of int
        Without ``input_shape``: shape ``stride``, entry :math:`\rho` the number of taps
        :math:`t` (over all spatial dimensions) with :math:`t\,d \equiv \rho \pmod s`, which
        every interior output cell :math:`o` with :math:`o + p_b \equiv \rho` receives. With
        ``input_shape``: the output's spatial shape, the number of (input cell, tap) pairs
        that write each output cell (the response of ``conv_transpose`` with an all-ones
        kernel to an all-ones input).

    Notes
    -----
    The map is separable: its N-d value is the product of the 1-D counts. In 1-D with
    :math:`d = 1` the phases get :math:`\lfloor k/s \rfloor` or :math:`\lceil k/s \rceil` taps.

    Examples
    --------
    >>> from fastdeconv.checkerboard import overlap_map
    >>> overlap_map(3, 2, input_shape=4)          # borders get fewer taps than the interior
    array([1, 1, 2, 1, 2, 1, 2, 1, 1])
    >>> overlap_map(3, 2, input_shape=4, padding=1, output_padding=1)
    array([1, 2, 1, 2, 1, 2, 1, 1])
    >>> overlap_map(3, 3, dilation=2)             # taps 0, 2, 4 fall in phases 0, 2, 1
    array([1, 1, 1])
    """
    ndim = _ndim(input_shape, kernel_size, stride, dilation)
    kernel = normalize_tuple(kernel_size, ndim, "kernel_size", min_value=1)
    strides = normalize_tuple(stride, ndim, "stride", min_value=1)
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    if input_shape is None:
        if not (isinstance(padding, int) and padding == 0) or not (
                isinstance(output_padding, int) and output_padding == 0):
            raise ValueError("padding and output_padding need input_shape (a whole output)")
        # one int64 per output phase: refuse clearly what cannot fit, before building it
        check_workspace(16 * prod(strides), "overlap map")
        counts = [_phase_counts_1d(k, s, d) for k, s, d in zip(kernel, strides, dilation)]
    else:
        sizes = normalize_tuple(input_shape, ndim, "input_shape", min_value=1)
        geometry = ConvGeometry.for_conv_transpose(sizes, kernel, stride=strides,
                                                   padding=padding,
                                                   output_padding=output_padding,
                                                   dilation=dilation)
        check_workspace(16 * prod(geometry.input_size), "overlap map")   # one per output
        counts = [
            _full_counts_1d(n, k, s, d, pair, op)
            for n, k, s, d, pair, op in zip(sizes, kernel, strides, dilation, geometry.padding,
                                            geometry.output_padding)
        ]
    out = counts[0]
    for c in counts[1:]:
        out = np.multiply.outer(out, c)
    return out.astype(np.int64)


def is_uniform(kernel_size, stride, *, dilation=1):
    r"""Whether every output phase of a transposed convolution gets the same number of taps.

    True exactly when, in every dimension, the taps :math:`t\,d` are equally distributed
    over the residues modulo :math:`s` (with :math:`d = 1`: when :math:`s` divides
    :math:`k`). Uniform overlap is necessary for a flat response to a constant input, not
    sufficient: the taps of each phase must also have the same sum (see
    :func:`checkerboard_score`).

    Examples
    --------
    >>> from fastdeconv.checkerboard import is_uniform
    >>> is_uniform(4, 2), is_uniform(3, 2), is_uniform((4, 3), (2, 1))
    (True, False, True)
    >>> is_uniform(3, 2, dilation=2)            # taps 0, 2, 4: all in phase 0
    False
    """
    period = overlap_map(kernel_size, stride, dilation=dilation)
    return bool(np.all(period == period.flat[0]))


def _weight(weight):
    weight = as_array(weight, "weight")
    result_dtype((weight, "weight"))          # TypeError for complex or non-numeric weights
    if weight.ndim < 3:
        raise ValueError(
            "weight must have at least 3 dimensions (C_in, C_out / groups, *kernel_size), "
            f"got shape {weight.shape}"
        )
    return np.asarray(weight, dtype=np.float64)


def constant_response(weight, stride, *, dilation=1, groups=1):
    r"""One period of ``conv_transpose``'s response to an all-ones input, away from borders.

    Parameters
    ----------
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
        A ``conv_transpose`` weight.
    stride, dilation : int or tuple of int
    groups : int, default 1

    Returns
    -------
    ndarray, shape (C_out, \*stride)
        Entry ``[co, rho]``: the value of every interior output cell ``o`` of channel ``co``
        with ``o + pad_before == rho`` (mod stride), that is

        .. math::

            r[c_o, \rho] = \sum_{c_i \in g(c_o)} \sum_{t\,:\ t d \equiv \rho \ (\mathrm{mod}\ s)}
                w[c_i, c_o, t] .

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.checkerboard import constant_response
    >>> w = np.array([[[1.0, 2.0, 3.0]]])            # k = 3, stride 2
    >>> constant_response(w, 2)                      # phase 0: 1 + 3, phase 1: 2
    array([[4., 2.]])
    """
    weight = _weight(weight)
    ndim = weight.ndim - 2
    strides = normalize_tuple(stride, ndim, "stride", min_value=1)
    dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    groups = check_int(groups, "groups", min_value=1)
    c_in, cog = weight.shape[:2]
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide weight.shape[0] = {c_in}")
    # sum over the input channels of each group: (groups, cog, *k) -> (C_out, *k)
    summed = weight.reshape((groups, c_in // groups, cog) + weight.shape[2:]).sum(axis=1)
    summed = summed.reshape((groups * cog,) + weight.shape[2:])
    for axis, (k, s, d) in enumerate(zip(weight.shape[2:], strides, dilation), start=1):
        phases = (np.arange(k) * d) % s                  # relation (1): tap t lands on t * d
        fold = np.zeros((k, s))
        fold[np.arange(k), phases] = 1.0
        summed = np.moveaxis(np.tensordot(summed, fold, axes=([axis], [0])), -1, axis)
    return summed


def checkerboard_score(weight, stride, *, dilation=1, groups=1):
    r"""How uneven ``conv_transpose``'s response to a constant input is, from 0 (flat) to 2.

    Parameters
    ----------
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
    stride, dilation : int or tuple of int
    groups : int, default 1

    Returns
    -------
    float
        The largest, over output channels, of the peak-to-peak variation of
        :func:`constant_response` divided by its largest magnitude,

        .. math::

            \max_{c_o} \frac{\max_\rho r[c_o, \rho] - \min_\rho r[c_o, \rho]}
                             {\max_\rho |r[c_o, \rho]|} ,

        0 for a channel whose response is identically zero.

    Raises
    ------
    ValueError
        If the response has NaN or infinite values (NaN or infinite weights, or sums that
        overflow): the score would be meaningless.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.checkerboard import checkerboard_score
    >>> checkerboard_score(np.ones((1, 1, 3, 3)), 2)      # phases get 4, 2, 2, 1 taps
    0.75
    >>> checkerboard_score(np.ones((1, 1, 4, 4)), 2)      # s divides k: flat
    0.0
    >>> w = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    >>> checkerboard_score(w, 2) > 0.1                    # uniform overlap, unequal sums
    True
    """
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, as a ValueError
        response = constant_response(weight, stride, dilation=dilation, groups=groups)
    flat = response.reshape(response.shape[0], -1)
    if not np.isfinite(flat).all():
        raise ValueError(
            "weight must be finite: the response to a constant input has NaN or infinite "
            "values (NaN or infinite weights, or sums that overflow)"
        )
    with np.errstate(over="ignore"):   # finite extremes of opposite signs near the limit
        span = flat.max(axis=1) - flat.min(axis=1)
    if not np.isfinite(span).all():
        raise ValueError("weight too large: the spread of the response to a constant input "
                         "overflows")
    scale = np.abs(flat).max(axis=1)
    ratios = np.where(scale > 0, span / np.where(scale > 0, scale, 1.0), 0.0)
    return float(ratios.max())


def icnr(weight_shape, upscale_factor, *, transpose=False, rng=None, base=None,
         dtype=np.float64):
    r"""ICNR initialisation: every output phase gets the same kernel (Aitken et al. 2017).

    Parameters
    ----------
    weight_shape : tuple of int
        With ``transpose=False``, the weight of a sub-pixel convolution,
        ``(C_out * r**d, C_in / groups, *kernel_size)``, whose output goes through
        ``pixel_shuffle(., r)``. With ``transpose=True``, a stride-``r`` ``conv_transpose``
        weight ``(C_in, C_out / groups, *kernel_size)`` with every kernel size a multiple of
        ``r``.
    upscale_factor : int
        :math:`r`.
    transpose : bool, default False
    rng : numpy.random.Generator or int, optional
        Source of the base kernel when ``base`` is not given.
    base : array_like, optional
        The kernel every phase gets: shape ``(C_out, C_in / groups, *kernel_size)`` for a
        sub-pixel convolution, ``(C_in, C_out / groups, *(kernel_size / r))`` for a
        transposed convolution. By default He-normal,
        :math:`\mathcal N(0, 2 / \text{fan}_\text{in})`.
    dtype : dtype, default float64

    Returns
    -------
    ndarray of shape ``weight_shape``

    Notes
    -----
    Sub-pixel convolution: the :math:`r^d` output channels ``co * r**d + sigma`` that pixel
    shuffle interleaves into channel ``co`` all get ``base[co]``, so the shuffled output is
    the nearest-neighbour upsampling of one low-resolution convolution. Transposed
    convolution: ``w[..., m r + rho] = base[..., m]``, so that every stride phase has the
    same sub-kernel :math:`w[\cdot\, r + \rho] = \text{base}`. Either way the response to a
    constant input is flat away from the borders (:func:`checkerboard_score` is 0) until
    training moves the phases apart.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.checkerboard import icnr, checkerboard_score
    >>> w = icnr((3, 5, 4, 4), 2, transpose=True, rng=0)  # conv_transpose, stride 2
    >>> w.shape, checkerboard_score(w, 2)
    ((3, 5, 4, 4), 0.0)
    >>> icnr((1, 1, 4), 2, transpose=True, base=[[[1.0, 2.0]]])
    array([[[1., 1., 2., 2.]]])
    >>> icnr((4, 1, 3), 2, base=[[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]])[:, 0]
    array([[1., 2., 3.],
           [1., 2., 3.],
           [4., 5., 6.],
           [4., 5., 6.]])
    """
    shape = as_int_tuple(weight_shape, "weight_shape", min_value=1, expected="a tuple of ints")
    if len(shape) < 3:
        raise ValueError(
            f"weight_shape must have at least 3 entries (channels, channels, *kernel_size), "
            f"got {weight_shape!r}"
        )
    r = check_int(upscale_factor, "upscale_factor", min_value=1)
    ndim = len(shape) - 2
    if not isinstance(transpose, (bool, np.bool_)):
        raise TypeError(f"transpose must be True or False, got {transpose!r}")
    if transpose:
        bad = [k for k in shape[2:] if k % r]
        if bad:
            raise ValueError(
                f"weight_shape {shape}: every kernel size of a transposed convolution must be "
                f"a multiple of upscale_factor={r} for ICNR"
            )
        base_shape = shape[:2] + tuple(k // r for k in shape[2:])
        fan_in = shape[0] * prod(base_shape[2:])
    else:
        if shape[0] % r ** ndim:
            raise ValueError(
                f"weight_shape[0] = {shape[0]} must be a multiple of upscale_factor ** {ndim} "
                f"= {r ** ndim} (one output channel per phase)"
            )
        base_shape = (shape[0] // r ** ndim,) + shape[1:]
        fan_in = shape[1] * prod(shape[2:])
    if base is None:
        generator = np.random.default_rng(rng)
        base = generator.standard_normal(base_shape) * np.sqrt(2.0 / fan_in)
    else:
        base = np.asarray(as_array(base, "base"), dtype=np.float64)
        if base.shape != base_shape:
            raise ValueError(f"base must have shape {base_shape}, got {base.shape}")
    if transpose:
        out = base
        for axis in range(2, 2 + ndim):
            out = np.repeat(out, r, axis=axis)
    else:
        out = np.repeat(base, r ** ndim, axis=0)
    return np.ascontiguousarray(out, dtype=dtype)
