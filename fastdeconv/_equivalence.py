"""Shared parts of :mod:`fastdeconv.equivalences`: weight checks, :class:`Equivalence` and
:func:`dilate_kernel`."""

from dataclasses import dataclass, field

import numpy as np

from ._geometry import resolve_padding
from ._validation import as_array, check_int, normalize_tuple, result_dtype

__all__ = ["Equivalence", "dilate_kernel"]


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
