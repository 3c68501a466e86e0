r"""Shape arithmetic of convolution and transposed convolution, as plain functions.

Every function here is a thin public layer over the geometry that the kernels and the sparse
matrices use (:class:`fastdeconv._geometry.ConvGeometry` and
:func:`fastdeconv._geometry.resolve_padding`): the sizes they report are the sizes
:func:`fastdeconv.conv` and :func:`fastdeconv.conv_transpose` produce, and they accept and
reject exactly the same arguments. Pure Python: no arrays are touched.

Shapes are *spatial* shapes: ``input_shape`` is an int (one spatial dimension) or a sequence
of ints, without batch and channel dimensions. ``kernel_size``, ``stride``, ``dilation`` and
``output_padding`` are an int for every dimension or one int per dimension; ``padding`` is
anything :func:`fastdeconv.conv` accepts (ints, ``(before, after)`` pairs, ``"valid"``,
``"same"``, ``"same_lower"``, ``"full"``).

Per spatial dimension, with :math:`k_e = d\,(k - 1) + 1`:

.. math::

    o_\text{conv} = \left\lfloor \frac{i + p_b + p_a - k_e}{s} \right\rfloor + 1,
    \qquad
    o_\text{transpose} = (i - 1)\,s - p_b - p_a + k_e + p_o .

.. autosummary::
   :toctree: generated/

   conv_output_shape
   conv_transpose_output_shape
   output_padding_for
   same_padding
   padding_choices
   conv_transpose_as_conv
   ConvTransposeAsConv
   PaddingChoice

Examples
--------
>>> from fastdeconv import shapes
>>> shapes.conv_output_shape((32, 32), 3, stride=2, padding=1)
(16, 16)
>>> shapes.conv_transpose_output_shape((16, 16), 3, stride=2, padding=1)
(31, 31)
>>> shapes.output_padding_for((16, 16), (32, 32), 3, stride=2, padding=1)
(1, 1)
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._geometry import ConvGeometry, resolve_padding
from ._validation import check_int, normalize_tuple

__all__ = [
    "conv_output_shape",
    "conv_transpose_output_shape",
    "output_padding_for",
    "same_padding",
    "padding_choices",
    "conv_transpose_as_conv",
    "ConvTransposeAsConv",
    "PaddingChoice",
]


# ----------------------------------------------------------------------------- arguments
def _spatial(input_shape, kernel_size, name="input_shape"):
    """(spatial sizes, kernel sizes) as tuples; ndim from ``input_shape`` (or the kernel)."""
    if isinstance(input_shape, np.ndarray):
        input_shape = input_shape.tolist()
    if isinstance(input_shape, (list, tuple)):
        if len(input_shape) == 0:
            raise ValueError(f"{name} must have at least one spatial size, got {input_shape!r}")
        sizes = tuple(check_int(n, name, min_value=1) for n in input_shape)
    else:
        try:
            size = check_int(input_shape, name, min_value=1)
        except TypeError:
            raise TypeError(
                f"{name} must be an int or a sequence of ints (spatial sizes, without batch and "
                f"channels), got {input_shape!r}"
            ) from None
        ndim = len(kernel_size) if isinstance(kernel_size, (list, tuple, np.ndarray)) else 1
        sizes = (size,) * ndim
    kernel = normalize_tuple(kernel_size, len(sizes), "kernel_size", min_value=1)
    return sizes, kernel


def _per_dim(value, ndim, name, min_value):
    return normalize_tuple(value, ndim, name, min_value=min_value)


# ----------------------------------------------------------------------------- output sizes
def conv_output_shape(input_shape, kernel_size, *, stride=1, padding=0, dilation=1):
    r"""Spatial output shape of :func:`fastdeconv.conv`.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape (no batch or channel dimension).
    kernel_size : int or sequence of int
    stride, dilation : int or sequence of int, default 1
    padding : int, sequence, or {"valid", "same", "same_lower", "full"}, default 0
        As for :func:`fastdeconv.conv`.

    Returns
    -------
    tuple of int
        One size per spatial dimension.

    Raises
    ------
    ValueError
        For non-positive sizes, strides or dilations, negative padding, or a dilated kernel
        larger than the padded input (the message names the parameter and dimension).
    TypeError
        For non-integer values.

    Notes
    -----
    Per dimension, with :math:`k_e = d (k - 1) + 1`,

    .. math::

        o = \left\lfloor \frac{i + p_b + p_a - k_e}{s} \right\rfloor + 1 ,

    the number of window positions that keep the whole dilated kernel inside the padded input.

    Examples
    --------
    >>> from fastdeconv.shapes import conv_output_shape
    >>> conv_output_shape((10, 7), 3, stride=2, padding=1)
    (5, 4)
    >>> conv_output_shape(10, 3, dilation=2)          # 10 - (2 * 2 + 1) + 1
    (6,)
    >>> conv_output_shape((7,), 4, stride=2, padding="same")
    (4,)
    >>> conv_output_shape((10,), 3, padding="full")   # numpy.convolve's mode: 10 + 3 - 1
    (12,)
    >>> conv_output_shape((2,), 5)
    Traceback (most recent call last):
        ...
    ValueError: kernel size is larger than the padded input in spatial dimension 0: ...
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    return ConvGeometry.for_conv(sizes, kernel, stride=stride, padding=padding,
                                 dilation=dilation).output_size


def conv_transpose_output_shape(input_shape, kernel_size, *, stride=1, padding=0,
                                output_padding=0, dilation=1):
    r"""Spatial output shape of :func:`fastdeconv.conv_transpose`.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape of the transposed convolution.
    kernel_size : int or sequence of int
    stride, dilation : int or sequence of int, default 1
    padding : int, sequence, or {"valid", "same", "same_lower", "full"}, default 0
        As for :func:`fastdeconv.conv_transpose`: the padding of the forward convolution's
        input, which *crops* this output.
    output_padding : int or sequence of int, default 0
        Cells added at the end; smaller than ``max(stride, dilation)``.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        For out-of-range parameters, ``output_padding >= max(stride, dilation)`` or an empty
        output.
    TypeError
        For non-integer values.

    Notes
    -----
    .. math::

        o = (i - 1)\,s - p_b - p_a + d (k - 1) + 1 + p_o .

    With ``padding="same"`` the output is :math:`i\,s` (TensorFlow, Keras, ONNX).

    Examples
    --------
    >>> from fastdeconv.shapes import conv_transpose_output_shape
    >>> conv_transpose_output_shape((4, 4), 4, stride=2, padding=1)     # the DCGAN layer
    (8, 8)
    >>> conv_transpose_output_shape((4, 4), 3, stride=2, padding=1, output_padding=1)
    (8, 8)
    >>> conv_transpose_output_shape((5,), 2, stride=3, padding="same")  # 5 * 3
    (15,)
    >>> conv_transpose_output_shape((10,), 3, stride=2, padding="full")  # 10 * 2 - (2 + 3 - 2)
    (17,)
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    return ConvGeometry.for_conv_transpose(
        sizes, kernel, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation,
    ).input_size


def output_padding_for(input_shape, output_size, kernel_size, *, stride=1, padding=0,
                       dilation=1):
    r"""The ``output_padding`` that makes :func:`fastdeconv.conv_transpose` reach a size.

    This is the rule of PyTorch's ``ConvTranspose*d.forward(output_size=...)``, the same code
    that ``conv_transpose(..., output_size=...)`` runs.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape of the transposed convolution.
    output_size : sequence of int
        Wanted spatial output shape (a full shape with batch and channels is accepted too).
    kernel_size, stride, padding, dilation
        As for :func:`conv_transpose_output_shape`.

    Returns
    -------
    tuple of int
        The value to pass as ``output_padding`` (all zeros for the string paddings, which fix
        the output size).

    Raises
    ------
    ValueError
        If ``output_size`` is unreachable; the message gives the reachable range.

    Notes
    -----
    The reachable sizes are :math:`o_0, \dots, o_0 + s - 1` with :math:`o_0` the output size
    for :math:`p_o = 0`; :math:`p_o = o - o_0`. A strided convolution maps all of them to the
    same size, so the transposed convolution has to be told which one is meant. (As in
    PyTorch, ``output_size`` only reaches :math:`p_o < s`; an ``output_padding`` up to
    :math:`\max(s, d) - 1` can still be passed directly.)

    Examples
    --------
    >>> from fastdeconv.shapes import output_padding_for
    >>> output_padding_for((4,), (8,), 3, stride=2, padding=1)
    (1,)
    >>> output_padding_for((4,), (9,), 3, stride=2, padding=1)
    Traceback (most recent call last):
        ...
    ValueError: output_size (9,) is unreachable: in spatial dimension 0 the output of this transposed convolution can only be 7 to 8 (output_size picks an output_padding of 0 to 1, below the stride, as PyTorch does), got 9
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    geometry = ConvGeometry.for_conv_transpose(
        sizes, kernel, stride=stride, padding=padding, dilation=dilation,
        output_size=output_size,
    )
    stride_t = _per_dim(stride, len(sizes), "stride", 1)
    dilation_t = _per_dim(dilation, len(sizes), "dilation", 1)
    _, implied = resolve_padding(padding, sizes, kernel, stride_t, dilation_t, transpose=True)
    return tuple(op - extra for op, extra in zip(geometry.output_padding, implied))


def same_padding(input_shape, kernel_size, *, stride=1, dilation=1, transpose=False,
                 lower=False):
    r"""The ``(before, after)`` padding that ``padding="same"`` resolves to.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape of the operator (for ``transpose=True``, of the transposed
        convolution).
    kernel_size, stride, dilation : int or sequence of int
    transpose : bool, default False
        Resolve for :func:`fastdeconv.conv_transpose` (output :math:`i\,s`) instead of
        :func:`fastdeconv.conv` (output :math:`\lceil i / s \rceil`).
    lower : bool, default False
        ``"same_lower"``: the odd extra cell goes before rather than after.

    Returns
    -------
    tuple of (int, int)
        One ``(before, after)`` pair per spatial dimension; passing it as ``padding`` gives the
        same result as ``"same"`` (for ``transpose=True`` and a dilated kernel extent
        :math:`k_e` smaller than the stride, together with
        ``output_padding = stride - k_e``, see Notes).

    Notes
    -----
    Convolution: :math:`o = \lceil i / s \rceil` and the total padding is
    :math:`\max((o - 1) s + k_e - i, 0)`. Transposed convolution: :math:`o = i\,s` and the
    total is :math:`k_e - s`; when that is negative the pairs are zero and ``"same"`` adds the
    missing :math:`s - k_e` cells as output padding. The odd cell of an odd total goes after
    (TensorFlow ``SAME``, ONNX ``SAME_UPPER``) or, with ``lower=True``, before (ONNX
    ``SAME_LOWER``).

    Examples
    --------
    >>> from fastdeconv.shapes import same_padding
    >>> same_padding((7, 8), 4, stride=2)
    ((1, 2), (1, 1))
    >>> same_padding((7,), 4, stride=2, lower=True)
    ((2, 1),)
    >>> same_padding((5,), 4, stride=2, transpose=True)     # k_e - s = 2
    ((1, 1),)
    >>> same_padding((5,), 1, stride=2, transpose=True)     # k_e < s: no padding ...
    ((0, 0),)
    >>> from fastdeconv.shapes import conv_transpose_output_shape
    >>> conv_transpose_output_shape((5,), 1, stride=2, output_padding=1)   # ... op = 1
    (10,)
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    ndim = len(sizes)
    stride_t = _per_dim(stride, ndim, "stride", 1)
    dilation_t = _per_dim(dilation, ndim, "dilation", 1)
    for name, flag in (("transpose", transpose), ("lower", lower)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    pairs, _ = resolve_padding("same_lower" if lower else "same", sizes, kernel, stride_t,
                               dilation_t, transpose=bool(transpose))
    return pairs


class PaddingChoice(NamedTuple):
    """One way to reach a size: ``(before, after)`` padding and ``output_padding``.

    Any other split of the same total ``before + after`` reaches the same size (it shifts the
    result by whole cells).

    Examples
    --------
    >>> from fastdeconv.shapes import PaddingChoice
    >>> c = PaddingChoice(1, 1, output_padding=1)
    >>> c.total, tuple(c)
    (2, (1, 1, 1))
    """

    before: int
    after: int
    output_padding: int = 0

    @property
    def total(self):
        return self.before + self.after


def padding_choices(input_shape, output_shape, kernel_size, *, stride=1, dilation=1,
                    transpose=False):
    r"""Every total padding (and ``output_padding``) that gives a wanted output size.

    Parameters
    ----------
    input_shape, output_shape : int or sequence of int
        Spatial input and wanted output shape of the operator.
    kernel_size, stride, dilation : int or sequence of int
    transpose : bool, default False
        For :func:`fastdeconv.conv_transpose` instead of :func:`fastdeconv.conv`.

    Returns
    -------
    tuple of list of PaddingChoice
        Per spatial dimension, the choices ordered by total padding (then
        ``output_padding``); each total is split with the odd cell after, as ``"same"`` does.
        An empty list means the size is unreachable in that dimension (the stride is too
        large, or the kernel too long to crop that much).

    Notes
    -----
    Every candidate is checked by building its geometry, the code the kernels run: for the
    convolution the totals :math:`P` with :math:`\lfloor (i + P - k_e)/s \rfloor + 1 = o`
    (there are up to :math:`s` of them); for the transposed convolution one total
    :math:`P = (i - 1) s + k_e + p_o - o \ge 0` for each
    :math:`0 \le p_o < \max(s, d)`.

    Examples
    --------
    >>> from fastdeconv.shapes import padding_choices
    >>> (dim,) = padding_choices((4,), (8,), 3, stride=2, transpose=True)
    >>> [tuple(c) for c in dim]                  # (before, after, output_padding)
    [(0, 1, 0), (1, 1, 1)]
    >>> (dim,) = padding_choices((8,), (4,), 3, stride=2)
    >>> [(c.before, c.after) for c in dim]
    [(0, 1), (1, 1)]
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    ndim = len(sizes)
    if isinstance(output_shape, np.ndarray):
        output_shape = output_shape.tolist()
    if isinstance(output_shape, (list, tuple)):
        wanted = tuple(check_int(n, "output_shape", min_value=1) for n in output_shape)
    else:
        wanted = (check_int(output_shape, "output_shape", min_value=1),) * ndim
    if len(wanted) != ndim:
        raise ValueError(
            f"output_shape must have {ndim} spatial sizes like input_shape {sizes}, got "
            f"{output_shape!r}"
        )
    stride_t = _per_dim(stride, ndim, "stride", 1)
    dilation_t = _per_dim(dilation, ndim, "dilation", 1)
    choices = []
    for n, o, k, s, d in zip(sizes, wanted, kernel, stride_t, dilation_t):
        found = []
        if transpose:
            for op in range(max(s, d)):
                unpadded = ConvGeometry.for_conv_transpose(
                    (n,), (k,), stride=s, output_padding=op, dilation=d).input_size[0]
                total = unpadded - o     # every cell of padding crops one output cell
                if total < 0:
                    continue
                pair = (total // 2, total - total // 2)
                if _transpose_size(n, k, s, pair, op, d) == o:
                    found.append(PaddingChoice(*pair, op))
        else:
            total = 0
            while True:
                pair = (total // 2, total - total // 2)
                try:
                    size = ConvGeometry.for_conv((n,), (k,), stride=s, padding=(pair,),
                                                 dilation=d).output_size[0]
                except ValueError:      # kernel longer than the padded input
                    size = 0
                if size == o:
                    found.append(PaddingChoice(*pair))
                elif size > o:
                    break
                total += 1
        choices.append(sorted(found, key=lambda c: (c.total, c.output_padding)))
    return tuple(choices)


def _transpose_size(n, k, s, pair, op, d):
    try:
        return ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=(pair,),
                                               output_padding=op, dilation=d).input_size[0]
    except ValueError:
        return None


# ------------------------------------------------------------------ transpose as a direct conv
@dataclass(frozen=True)
class ConvTransposeAsConv:
    r"""A transposed convolution written as a stride-1 direct convolution.

    Made by :func:`conv_transpose_as_conv`. The direct convolution reads an input with
    ``stride - 1`` zeros inserted between neighbouring cells, padded by :attr:`padding`
    (negative values crop), with the kernel flipped in every spatial dimension and its two
    channel axes swapped within each group, at stride 1 and the original dilation.

    Attributes
    ----------
    input_size, output_size : tuple of int
        Spatial sizes of the transposed convolution (and of the direct convolution's result).
    kernel_size, stride, dilation : tuple of int
        The transposed convolution's parameters; the direct convolution uses the same
        ``kernel_size`` and ``dilation`` with stride 1.
    groups : int
    zero_inserted_size : tuple of int
        :math:`(i - 1) s + 1`: the input after zero insertion.
    padding : tuple of (int, int)
        :math:`(k_e - 1 - p_b,\ k_e - 1 - p_a + p_o)` per dimension; negative means crop.
    """

    input_size: tuple
    output_size: tuple
    kernel_size: tuple
    stride: tuple
    dilation: tuple
    groups: int
    zero_inserted_size: tuple
    padding: tuple

    @property
    def ndim(self):
        return len(self.kernel_size)

    def weight(self, weight):
        """The direct convolution's kernel: ``(C_in, C_out / g, *k)`` to ``(C_out, C_in / g, *k)``.

        Within each group the two channel axes are swapped, and every spatial axis is
        reversed.
        """
        weight = np.asarray(weight)
        if weight.ndim != self.ndim + 2 or weight.shape[2:] != self.kernel_size:
            raise ValueError(
                f"weight must have shape (C_in, C_out / groups, *{self.kernel_size}), got "
                f"{weight.shape}"
            )
        if weight.shape[0] % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide weight.shape[0] = {weight.shape[0]}"
            )
        c_in, cog = weight.shape[:2]
        cig = c_in // self.groups
        blocks = weight.reshape((self.groups, cig, cog) + self.kernel_size)
        swapped = np.swapaxes(blocks, 1, 2).reshape((self.groups * cog, cig) + self.kernel_size)
        return np.ascontiguousarray(swapped[(slice(None),) * 2 + (slice(None, None, -1),) * self.ndim])

    def prepare_input(self, x):
        """Insert ``stride - 1`` zeros between cells of ``x`` (N, C, \\*spatial), then pad or crop."""
        x = np.asarray(x)
        if x.ndim != self.ndim + 2 or x.shape[2:] != self.input_size:
            raise ValueError(
                f"x must have shape (N, C, *{self.input_size}), got {x.shape}"
            )
        inserted = np.zeros(x.shape[:2] + self.zero_inserted_size, dtype=x.dtype)
        inserted[(slice(None),) * 2 + tuple(slice(None, None, s) for s in self.stride)] = x
        pads = [(0, 0), (0, 0)] + [(max(b, 0), max(a, 0)) for b, a in self.padding]
        padded = np.pad(inserted, pads)
        crop = tuple(slice(max(-b, 0), padded.shape[2 + i] - max(-a, 0))
                     for i, (b, a) in enumerate(self.padding))
        return padded[(slice(None),) * 2 + crop]

    def __call__(self, x, weight, bias=None):
        """Run the direct convolution: equals ``conv_transpose(x, weight, bias, ...)``."""
        from ._conv import conv

        return conv(self.prepare_input(x), self.weight(weight), bias, dilation=self.dilation,
                    groups=self.groups)

    def __str__(self):
        def size(t):
            return "x".join(map(str, t))

        k = size(self.kernel_size)
        lines = [
            f"conv_transpose: input {size(self.input_size)} -> output {size(self.output_size)}",
            "equals a stride-1 conv of",
            f"  the input with stride - 1 = {tuple(s - 1 for s in self.stride)} zeros inserted "
            f"between cells: {size(self.input_size)} -> {size(self.zero_inserted_size)}",
            f"  padded by (before, after) = {self.padding}"
            + (" (negative: cropped)" if any(min(p) < 0 for p in self.padding) else ""),
            f"  with the kernel flipped in every spatial dimension and channels swapped per "
            f"group: (C_in, C_out/g, {k}) -> (C_out, C_in/g, {k})",
            f"  dilation {self.dilation}, groups {self.groups}: output {size(self.output_size)}",
        ]
        return "\n".join(lines)


def conv_transpose_as_conv(input_shape, kernel_size, *, stride=1, padding=0, output_padding=0,
                           dilation=1, groups=1):
    r"""The direct convolution that equals a transposed convolution.

    Dumoulin & Visin's relationship for transposed convolutions, generalised to dilation,
    groups, asymmetric and string padding and ``output_padding``.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape of the transposed convolution.
    kernel_size : int or sequence of int
    stride, padding, output_padding, dilation
        As for :func:`fastdeconv.conv_transpose`.
    groups : int, default 1
        Used by :meth:`ConvTransposeAsConv.weight` to swap channels within each group.

    Returns
    -------
    ConvTransposeAsConv
        Sizes and paddings of the direct convolution. Call it as ``eq(x, weight)`` to run
        it; ``eq.weight(w)`` and ``eq.prepare_input(x)`` give its kernel and input.

    Notes
    -----
    Per dimension, with :math:`k_e = d (k - 1) + 1` and the resolved padding
    :math:`(p_b, p_a)`, ``conv_transpose(x, w, stride=s, padding=(p_b, p_a),
    output_padding=p_o, dilation=d)`` equals ``conv(x', w', stride=1, dilation=d)`` where
    :math:`x'` is :math:`x` with :math:`s - 1` zeros between neighbouring cells (size
    :math:`(i - 1) s + 1`), padded by

    .. math::

        p'_b = k_e - 1 - p_b, \qquad p'_a = k_e - 1 - p_a + p_o

    (a negative value crops), and :math:`w'` is :math:`w` flipped along every spatial axis
    with its two channel axes swapped within each group. The output size
    :math:`(i - 1) s + 1 + p'_b + p'_a - k_e + 1` is the transposed convolution's. This is
    the algorithm of :func:`fastdeconv.testing.conv_transpose_reference`; the kernels instead
    scatter (col2im) or split the output into stride phases, never multiplying the inserted
    zeros.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> from fastdeconv.shapes import conv_transpose_as_conv
    >>> eq = conv_transpose_as_conv((4, 4), 3, stride=2, padding=1)
    >>> eq.zero_inserted_size, eq.padding, eq.output_size
    ((7, 7), ((1, 1), (1, 1)), (7, 7))
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 5, 3, 3))
    >>> bool(np.allclose(eq(x, w), fastdeconv.conv_transpose(x, w, stride=2, padding=1)))
    True
    >>> print(eq)
    conv_transpose: input 4x4 -> output 7x7
    equals a stride-1 conv of
      the input with stride - 1 = (1, 1) zeros inserted between cells: 4x4 -> 7x7
      padded by (before, after) = ((1, 1), (1, 1))
      with the kernel flipped in every spatial dimension and channels swapped per group: (C_in, C_out/g, 3x3) -> (C_out, C_in/g, 3x3)
      dilation (1, 1), groups 1: output 7x7
    """
    sizes, kernel = _spatial(input_shape, kernel_size)
    groups = check_int(groups, "groups", min_value=1)
    g = ConvGeometry.for_conv_transpose(sizes, kernel, stride=stride, padding=padding,
                                        output_padding=output_padding, dilation=dilation)
    pads = tuple(
        (k_e - 1 - before, k_e - 1 - after + op)
        for k_e, (before, after), op in zip(g.effective_kernel_size, g.padding, g.output_padding)
    )
    inserted = tuple((n - 1) * s + 1 for n, s in zip(sizes, g.stride))
    return ConvTransposeAsConv(sizes, g.input_size, kernel, g.stride, g.dilation, groups,
                               inserted, pads)

