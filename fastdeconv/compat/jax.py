"""``jax.lax`` convolutions with JAX's signatures and semantics, as fastdeconv calls.

:func:`conv_general_dilated` and :func:`conv_transpose` take JAX's arguments -- string or
explicit (also negative) paddings, ``dimension_numbers`` such as ``("NHWC", "HWIO", "NHWC")``,
``lhs_dilation`` (a transposed convolution), feature and batch groups, ``conv_transpose``'s
``transpose_kernel`` -- and give JAX's result (checked against ``jax.lax`` itself in the
tests, float64). Each maps onto one :func:`fastdeconv.conv` or :func:`fastdeconv.conv_transpose`
call, with pure data movement around it where XLA's general convolution needs it (a crop for a
negative padding, zeros or a subsampling of the result for a transposed convolution with window
strides, a regrouping reshape for batch groups); ``explain=True`` returns that call as text.

Results follow fastdeconv's dtype policy (float32 for float16 and float32 inputs, float64
otherwise; JAX computes integer convolutions in integers). ``precision``,
``preferred_element_type`` and sharding arguments have no counterpart and are not accepted.

>>> import numpy as np
>>> from fastdeconv.compat import jax as lax
>>> lhs, rhs = np.ones((1, 4, 4, 3)), np.ones((3, 3, 3, 2))     # NHWC, HWIO
>>> print(lax.conv_transpose(lhs, rhs, (2, 2), "SAME", explain=True))
fastdeconv.conv_transpose(lhs, np.flip(rhs, (0, 1)), stride=(2, 2), padding='same', data_format='channels_last', weight_format='HWIO')
"""

import numpy as np

from ._arguments import array, int_value, ints
from ._expressions import Expression
from ._general import general_call

__all__ = ["conv_general_dilated", "conv_transpose"]

_PADDING_STRINGS = ("SAME", "SAME_LOWER", "VALID")

#: jax.lax.conv_transpose's dimension_numbers when None (TensorFlow's convention)
_TRANSPOSE_DEFAULTS = {3: ("NHC", "HIO", "NHC"), 4: ("NHWC", "HWIO", "NHWC"),
                       5: ("NHWDC", "HWDIO", "NHWDC")}


# ------------------------------------------------------------------------ arguments
def _operands(lhs, rhs):
    lhs, rhs = array(lhs, "lhs"), array(rhs, "rhs")
    if lhs.ndim != rhs.ndim:
        raise ValueError(f"lhs and rhs must have the same number of dimensions, got shapes "
                         f"{lhs.shape} and {rhs.shape}")
    if lhs.ndim < 3:
        raise ValueError(f"lhs must have at least one spatial dimension (rank >= 3), got shape "
                         f"{lhs.shape}")
    return lhs, rhs


def _string_permutations(specs, ndim):
    """JAX's ``conv_general_permutations`` of three layout strings."""
    for i, spec in enumerate(specs):
        if not isinstance(spec, str):
            raise TypeError(f"dimension_numbers must be three strings such as ('NHWC', 'HWIO', "
                            f"'NHWC'), got {specs!r}")
        if len(spec) != ndim:
            raise ValueError(f"dimension_numbers[{i}] must have {ndim} letters (the rank of "
                             f"lhs and rhs), got {spec!r}")
    lhs_spec, rhs_spec, out_spec = specs
    pairs = (("N", "C"), ("O", "I"), ("N", "C"))
    for i, (spec, (a, b)) in enumerate(zip(specs, pairs)):
        if spec.count(a) != 1 or spec.count(b) != 1 or len(set(spec)) != len(spec):
            raise ValueError(f"dimension_numbers[{i}] must contain {a!r} and {b!r} exactly "
                             f"once and no letter twice, got {spec!r}")
    if not set(lhs_spec) - {"N", "C"} == set(rhs_spec) - {"O", "I"} == set(out_spec) - {"N", "C"}:
        raise ValueError(f"dimension_numbers must have the same spatial letters in all three "
                         f"strings, got {specs!r}")

    def permutation(spec, pair):
        spatial = [i for i, c in enumerate(spec) if c not in pair]
        if spec is not rhs_spec:
            spatial.sort(key=lambda i: rhs_spec.index(spec[i]))
        return (spec.index(pair[0]), spec.index(pair[1])) + tuple(spatial)

    return tuple(permutation(spec, pair) for spec, pair in zip(specs, pairs))


def _permutations(dimension_numbers, ndim):
    """``(lhs_perm, rhs_perm, out_perm)`` of None, three strings or a ``ConvDimensionNumbers``
    (three sequences of axes)."""
    if dimension_numbers is None:
        return (tuple(range(ndim)),) * 3
    if not isinstance(dimension_numbers, (list, tuple)) or len(dimension_numbers) != 3:
        raise TypeError(f"dimension_numbers must be None, three layout strings such as "
                        f"('NHWC', 'HWIO', 'NHWC') or a ConvDimensionNumbers, got "
                        f"{dimension_numbers!r}")
    if all(isinstance(spec, str) for spec in dimension_numbers):
        return _string_permutations(tuple(dimension_numbers), ndim)
    perms = []
    for i, spec in enumerate(dimension_numbers):
        perm = ints(spec, f"dimension_numbers[{i}]", ndim, minimum=0)
        if sorted(perm) != list(range(ndim)):
            raise ValueError(f"dimension_numbers[{i}] must be a permutation of the {ndim} axes, "
                             f"got {list(spec)}")
        perms.append(perm)
    return tuple(perms)


def _per_axis(value, name, n, default=None):
    if value is None and default is not None:
        return (default,) * n
    return ints(value, name, n, minimum=1)


def _explicit_padding(padding, n, name="padding"):
    message = (f"{name} must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of {n} (low, high) "
               f"integer pairs, got {padding!r}")
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if not isinstance(padding, (list, tuple)):
        raise TypeError(message)
    if len(padding) != n:
        raise ValueError(message)
    pairs = []
    for pair in padding:
        if isinstance(pair, np.ndarray):
            pair = pair.tolist()
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(message)
        pairs.append(tuple(int_value(v, name) for v in pair))
    return tuple(pairs)


def _string_padding(padding, in_size, k_eff, strides):
    """JAX's ``padtype_to_pads``: SAME (odd extra at the end), SAME_LOWER, VALID."""
    kind = padding.upper()
    if kind not in _PADDING_STRINGS:
        raise ValueError(f"padding must be one of {_PADDING_STRINGS} (any case) or explicit "
                         f"(low, high) pairs, got {padding!r}")
    if kind == "VALID":
        return ((0, 0),) * len(in_size)
    pairs = []
    for n, k, s in zip(in_size, k_eff, strides):
        total = max(0, (-(-n // s) - 1) * s + k - n)
        small = total // 2
        pairs.append((small, total - small) if kind == "SAME" else (total - small, small))
    return tuple(pairs)


def _check_groups(lhs, rhs, perms, feature_group_count, batch_group_count):
    lhs_perm, rhs_perm, _ = perms
    groups = int_value(feature_group_count, "feature_group_count", 1)
    batch_groups = int_value(batch_group_count, "batch_group_count", 1)
    channels, batch = lhs.shape[lhs_perm[1]], lhs.shape[lhs_perm[0]]
    c_out, c_in = rhs.shape[rhs_perm[0]], rhs.shape[rhs_perm[1]]
    if groups > 1 and batch_groups > 1:
        raise ValueError(f"at most one of feature_group_count and batch_group_count may be > 1, "
                         f"got {groups} and {batch_groups}")
    if channels % groups or channels // groups != c_in:
        raise ValueError(f"the input features of lhs ({channels}) divided by "
                         f"feature_group_count={groups} must equal the input features (I) of "
                         f"rhs ({c_in})")
    if c_out % groups:
        raise ValueError(f"the output features (O) of rhs ({c_out}) must be a multiple of "
                         f"feature_group_count={groups}")
    if batch % batch_groups or c_out % batch_groups:
        raise ValueError(f"batch_group_count={batch_groups} must divide the batch of lhs "
                         f"({batch}) and the output features (O) of rhs ({c_out})")
    return groups, batch_groups


# ------------------------------------------------------------------------ public functions
def _general(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, perms,
             feature_group_count, batch_group_count, *, names=("lhs", "rhs"), rhs_perm=None,
             rhs_flipped=False):
    """conv_general_dilated after the array and dimension_numbers checks."""
    n = lhs.ndim - 2
    strides = _per_axis(window_strides, "window_strides", n)
    lhs_dilation = _per_axis(lhs_dilation, "lhs_dilation", n, 1)
    rhs_dilation = _per_axis(rhs_dilation, "rhs_dilation", n, 1)
    lhs_perm, kernel_perm, out_perm = perms
    kernel_perm = kernel_perm if rhs_perm is None else rhs_perm
    groups = _check_groups(lhs, rhs, (lhs_perm, kernel_perm, out_perm), feature_group_count,
                           batch_group_count)
    if isinstance(padding, str):
        if any(d != 1 for d in lhs_dilation):
            raise ValueError(
                f"padding={padding!r}: string padding is not implemented for a transposed "
                f"convolution (lhs_dilation={lhs_dilation}) in jax.lax.conv_general_dilated; "
                f"give explicit (low, high) pairs or use conv_transpose")
        k_eff = [d * (rhs.shape[a] - 1) + 1 for a, d in zip(kernel_perm[2:], rhs_dilation)]
        pairs = _string_padding(padding, [lhs.shape[a] for a in lhs_perm[2:]], k_eff, strides)
    else:
        pairs = _explicit_padding(padding, n)
    return general_call(
        Expression(names[0], lhs), Expression(names[1], rhs), lhs_perm=lhs_perm,
        rhs_perm=kernel_perm, out_perm=out_perm, window_strides=strides, padding=pairs,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, feature_group_count=groups[0],
        batch_group_count=groups[1], rhs_flipped=rhs_flipped)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, explain=False):
    """``jax.lax.conv_general_dilated``: XLA's general N-d convolution.

    Parameters
    ----------
    lhs : array_like
        Input of rank ``n + 2`` (``n`` spatial dimensions), laid out as
        ``dimension_numbers[0]`` says (default ``"NCHW"``-like).
    rhs : array_like
        Kernel of rank ``n + 2``, laid out as ``dimension_numbers[1]`` (default ``"OIHW"``).
    window_strides : sequence of int
        ``n`` strides, in the order of the kernel's spatial letters.
    padding : {"SAME", "SAME_LOWER", "VALID"} or sequence of (int, int)
        ``"SAME"`` pads so that the output has ``ceil(in / stride)`` positions, the odd extra
        at the end (``"SAME_LOWER"``: at the beginning); explicit ``(low, high)`` pairs pad the
        (dilated) input, negative values crop it.
    lhs_dilation : sequence of int, optional
        Zeros inserted between input positions (``L - 1``): a transposed convolution.
        String paddings are not allowed with it (as in JAX).
    rhs_dilation : sequence of int, optional
        Kernel dilation (atrous convolution).
    dimension_numbers : None, (str, str, str) or ConvDimensionNumbers
        Layouts of lhs, rhs and the output, e.g. ``("NHWC", "HWIO", "NHWC")``: ``N``/``C``
        (batch, features) in lhs and the output, ``O``/``I`` in the kernel, any other letters
        for the spatial dimensions, matched by letter and ordered as in the kernel's string.
        Or three axis permutations ``(N, C, *spatial)``, ``(O, I, *spatial)``,
        ``(N, C, *spatial)``.
    feature_group_count : int, default 1
        Grouped convolution: lhs features / groups = the kernel's ``I``.
    batch_group_count : int, default 1
        Batch block ``b`` of lhs is convolved with output-feature block ``b`` of the kernel
        and the output has ``batch / batch_group_count`` samples (XLA's form of the weight
        gradient of grouped convolutions).
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    out : ndarray or str
        Laid out as ``dimension_numbers[2]``, or with ``explain=True`` the call
        ``fastdeconv.conv(...)`` / ``fastdeconv.conv_transpose(...)`` (with the data movement
        around it), which evaluates to the result with ``np`` and ``fastdeconv`` imported and
        ``lhs``, ``rhs`` bound.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments; the message names the parameter and its value.

    Notes
    -----
    Along one spatial dimension with input size ``n``, kernel extent
    ``k = rhs_dilation * (kernel - 1) + 1`` and padding ``(lo, hi)`` the output has
    ``max(0, ((n - 1) * lhs_dilation + 1 + lo + hi - k) // stride + 1)`` positions. With
    ``lhs_dilation == 1`` this is :func:`fastdeconv.conv` with ``padding=(lo, hi)``; with
    ``lhs_dilation = L > 1`` it is :func:`fastdeconv.conv_transpose` with ``stride=L``,
    ``padding=(k - 1 - lo, k - 1 - hi)`` and the kernel flipped.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import jax as lax
    >>> lhs, rhs = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 4))
    >>> dn = ("NHWC", "HWIO", "NHWC")
    >>> print(lax.conv_general_dilated(lhs, rhs, (2, 2), "SAME", dimension_numbers=dn,
    ...                                explain=True))
    fastdeconv.conv(lhs, rhs, stride=(2, 2), padding='same', data_format='channels_last', weight_format='HWIO')

    An input dilation is a transposed convolution (of the flipped kernel); a negative
    padding crops, window strides subsample its result:

    >>> print(lax.conv_general_dilated(lhs, rhs, (2, 1), [(1, -1), (0, 0)],
    ...                                lhs_dilation=(2, 1), dimension_numbers=dn,
    ...                                explain=True))
    fastdeconv.conv_transpose(lhs, np.flip(rhs, (0, 1)), stride=(2, 1), padding=((1, 3), (2, 2)), data_format='channels_last', weight_format='HWIO')[:, ::2]
    >>> lax.conv_general_dilated(lhs, rhs, (2, 1), [(1, -1), (0, 0)], lhs_dilation=(2, 1),
    ...                          dimension_numbers=dn).shape
    (1, 4, 3, 4)
    """
    lhs, rhs = _operands(lhs, rhs)
    perms = _permutations(dimension_numbers, lhs.ndim)
    return _general(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, perms,
                    feature_group_count, batch_group_count).finish(explain)


def _transpose_padding(k_eff, stride, padding):
    """``jax.lax._conv_transpose_padding``: a forward convolution's padding (``"SAME"``,
    ``"VALID"`` or a pair) as the padding of the dilated input."""
    if padding == "SAME":
        total = k_eff + stride - 2
        before = k_eff - 1 if stride > k_eff - 1 else -(-total // 2)
    elif padding == "VALID":
        total = k_eff + stride - 2 + max(k_eff - stride, 0)
        before = k_eff - 1
    else:
        before, after = (k_eff - padding[0] - 1, k_eff - padding[1] - 1)
        total = before + after
    return before, total - before


def conv_transpose(lhs, rhs, strides, padding, rhs_dilation=None, dimension_numbers=None,
                   transpose_kernel=False, use_consistent_padding=False, explain=False):
    """``jax.lax.conv_transpose``: a fractionally strided convolution, JAX's way.

    It is ``conv_general_dilated(lhs, rhs, (1, ...), pads, lhs_dilation=strides,
    rhs_dilation=rhs_dilation)``: the kernel is **not** flipped (unlike the gradient of a
    convolution, TensorFlow's ``conv2d_transpose`` and Keras's ``Conv2DTranspose``) unless
    ``transpose_kernel=True``, which flips its spatial axes and swaps its ``I`` and ``O``
    axes; then the kernel is the one of the forward convolution this is the gradient of
    (jax#4592, jax#11252, jax#17618).

    Parameters
    ----------
    lhs : array_like
        Input, default layout channels-last (``"NHC"``, ``"NHWC"``, ``"NHWDC"``).
    rhs : array_like
        Kernel, default layout ``"HIO"``, ``"HWIO"``, ``"HWDIO"``.
    strides : sequence of int
        The fractional strides (``lhs_dilation``).
    padding : {"SAME", "VALID"} or sequence of (int, int)
        ``"SAME"``: output ``in * stride``; ``"VALID"``: ``(in - 1) * stride +
        max(k, stride)`` (``k`` the dilated kernel extent), both read as the padding of the
        forward convolution. Explicit pairs pad the dilated input as in
        :func:`conv_general_dilated` (negative values crop), unless
        ``use_consistent_padding``, which reads them as the forward convolution's padding
        (PyTorch's ``padding``). Other strings reach :func:`conv_general_dilated` unchanged
        (as in JAX, where they only work with unit strides).
    rhs_dilation : sequence of int, optional
    dimension_numbers : None, (str, str, str) or ConvDimensionNumbers
        As :func:`conv_general_dilated`; None is TensorFlow's channels-last convention.
    transpose_kernel : bool, default False
        Flip the kernel spatially and swap its ``I`` and ``O`` axes.
    use_consistent_padding : bool, default False
        Read explicit ``padding`` pairs as the forward convolution's padding.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    out : ndarray or str
        The result laid out as ``dimension_numbers[2]``, or the equivalent call as text.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments; the message names the parameter and its value.

    Examples
    --------
    Keras's ``Conv2DTranspose(strides=2, padding="same")`` on the JAX backend is
    ``transpose_kernel=True`` with an ``(h, w, out, in)`` kernel:

    >>> import numpy as np
    >>> from fastdeconv.compat import jax as lax
    >>> x, kernel = np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3))
    >>> print(lax.conv_transpose(x, kernel, (2, 2), "SAME", transpose_kernel=True,
    ...                          explain=True))
    fastdeconv.conv_transpose(lhs, rhs, stride=(2, 2), padding='same', data_format='channels_last', weight_format='HWOI')

    Without ``transpose_kernel`` the kernel is used as it is, i.e. flipped for the
    canonical transposed convolution:

    >>> print(lax.conv_transpose(x, np.ones((3, 3, 3, 2)), (2, 2), "SAME", explain=True))
    fastdeconv.conv_transpose(lhs, np.flip(rhs, (0, 1)), stride=(2, 2), padding='same', data_format='channels_last', weight_format='HWIO')
    >>> lax.conv_transpose(x, np.ones((3, 3, 3, 2)), (2, 2), "SAME").shape
    (1, 8, 8, 2)
    """
    return conv_transpose_call(lhs, rhs, strides, padding, rhs_dilation, dimension_numbers,
                               transpose_kernel, use_consistent_padding).finish(explain)


def conv_transpose_call(lhs, rhs, strides, padding, rhs_dilation=None, dimension_numbers=None,
                        transpose_kernel=False, use_consistent_padding=False,
                        names=("lhs", "rhs")):
    """The canonical call of :func:`conv_transpose` (``names``: the operands' names in the
    text, for the Keras functions that build on it)."""
    lhs, rhs = _operands(lhs, rhs)
    n = lhs.ndim - 2
    if dimension_numbers is None:
        if lhs.ndim not in _TRANSPOSE_DEFAULTS:
            raise ValueError(f"jax.lax.conv_transpose has default dimension_numbers for 1 to 3 "
                             f"spatial dimensions only; lhs has shape {lhs.shape}: give "
                             f"dimension_numbers")
        dimension_numbers = _TRANSPOSE_DEFAULTS[lhs.ndim]
    perms = _permutations(dimension_numbers, lhs.ndim)
    lhs_dilation = _per_axis(strides, "strides", n)
    rhs_dilation = _per_axis(rhs_dilation, "rhs_dilation", n, 1)
    rhs_perm = perms[1]
    k_eff = [d * (rhs.shape[a] - 1) + 1 for a, d in zip(rhs_perm[2:], rhs_dilation)]
    if not isinstance(transpose_kernel, (bool, np.bool_)):
        raise TypeError(f"transpose_kernel must be True or False, got {transpose_kernel!r}")
    if not isinstance(use_consistent_padding, (bool, np.bool_)):
        raise TypeError(f"use_consistent_padding must be True or False, got "
                        f"{use_consistent_padding!r}")
    if use_consistent_padding or (isinstance(padding, str) and padding in ("SAME", "VALID")):
        if isinstance(padding, str):
            if padding not in ("SAME", "VALID"):
                raise ValueError(f"padding must be 'SAME', 'VALID' or (low, high) pairs with "
                                 f"use_consistent_padding, got {padding!r}")
            forward = [padding] * n
        else:
            forward = _explicit_padding(padding, n)
        padding = tuple(_transpose_padding(k, s, p)
                        for k, s, p in zip(k_eff, lhs_dilation, forward))
    if transpose_kernel:   # flip the spatial axes, swap I and O: the swap is a relabelling
        rhs_perm = (rhs_perm[1], rhs_perm[0]) + tuple(rhs_perm[2:])
    return _general(lhs, rhs, (1,) * n, padding, lhs_dilation, rhs_dilation, perms, 1, 1,
                    names=names, rhs_perm=rhs_perm, rhs_flipped=bool(transpose_kernel))
