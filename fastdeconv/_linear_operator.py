"""``scipy.sparse.linalg.LinearOperator`` views of fastdeconv's operators.

Each linear operator of the registry (:data:`fastdeconv._operators.OPERATORS`) makes a
:class:`~fastdeconv._operators.LinearParts` for one input shape: the shapes of one input and
one output sample, the forward and backward on batches (the fast kernels; the backward is
the adjoint) and a builder of its explicit sparse matrix (index arithmetic). The public entry
point :func:`linear_operator` is exported from :mod:`fastdeconv.sparse`.
"""

from math import prod

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ._formats import Layout
from ._operators import BY_NAME, LinearParts, names
from ._validation import as_array, as_sequence, check_int

__all__ = ["linear_operator", "FastLinearOperator"]


class FastLinearOperator(scipy.sparse.linalg.LinearOperator):
    """A fastdeconv operator on one flattened sample, as a SciPy ``LinearOperator``.

    ``matvec`` / ``matmat`` run the operator's fast kernel (``matmat`` as one batched call,
    one column per sample), ``rmatvec`` / ``rmatmat`` its adjoint kernel, and
    :meth:`to_sparse` builds its explicit matrix from index arithmetic. Made by
    :func:`fastdeconv.sparse.linear_operator`.

    Attributes
    ----------
    op : str
        The operator's name.
    input_shape, output_shape : tuple of int
        Shapes ``(C, *spatial)`` of one input and one output sample; vectors are these
        arrays flattened in C order.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.sparse import linear_operator
    >>> A = linear_operator("conv_transpose", (1, 3), weight=np.ones((1, 1, 2)), stride=2)
    >>> A.input_shape, A.output_shape, A.shape
    ((1, 3), (1, 6), (6, 3))
    >>> A.matvec(np.array([1.0, 2.0, 3.0]))
    array([1., 1., 2., 2., 3., 3.])
    >>> A.to_sparse().toarray()[:, 0]             # the first input goes to two outputs
    array([1., 1., 0., 0., 0., 0.])
    """

    def __init__(self, op, parts):
        self.op = op
        self.input_shape = parts.input_shape
        self.output_shape = parts.output_shape
        self._parts = parts
        super().__init__(dtype=parts.dtype,
                         shape=(prod(parts.output_shape), prod(parts.input_shape)))

    def _apply(self, function, columns, in_shape):
        columns = np.asarray(columns)
        if columns.dtype.kind == "c":
            real = self._apply(function, columns.real, in_shape)
            return real + 1j * self._apply(function, columns.imag, in_shape)
        batch = np.ascontiguousarray(columns.T).reshape((columns.shape[1],) + in_shape)
        out = np.asarray(function(batch))
        return out.reshape(columns.shape[1], -1).T

    def _matvec(self, x):
        return self._apply(self._parts.forward, np.reshape(x, (-1, 1)), self.input_shape)[:, 0]

    def _rmatvec(self, y):
        return self._apply(self._parts.backward, np.reshape(y, (-1, 1)), self.output_shape)[:, 0]

    def _matmat(self, X):
        return self._apply(self._parts.forward, X, self.input_shape)

    def _rmatmat(self, Y):
        return self._apply(self._parts.backward, Y, self.output_shape)

    def to_sparse(self):
        """The explicit ``scipy.sparse.csr_array`` of the operator (built by index arithmetic)."""
        return self._parts.matrix()

    def __repr__(self):
        return (f"<{self.shape[0]}x{self.shape[1]} FastLinearOperator {self._parts.description} "
                f"with dtype={self.dtype}>")


def _sample_shape(input_shape):
    shape = as_sequence(input_shape, "input_shape must be a sequence of ints (C, *spatial)")
    if len(shape) < 2:
        raise ValueError(
            f"input_shape must be (C, *spatial) with at least one spatial dimension, got "
            f"{input_shape!r} (the shape of one sample, without the batch dimension)"
        )
    return tuple(check_int(n, "input_shape", min_value=1) for n in shape)


def linear_operator(op, input_shape, **params):
    r"""A fastdeconv operator as a ``scipy.sparse.linalg.LinearOperator``, matrix-free.

    Parameters
    ----------
    op : {"conv", "conv_transpose", "resize", "max_unpool", "pixel_shuffle"}
        The operator (every operator of the registry that is linear in its input).
    input_shape : sequence of int
        Shape ``(C, *spatial)`` of one input sample (no batch dimension); ``(*spatial, C)``
        with ``data_format="channels_last"``.
    **params
        The operator's keywords, with the arrays it is linear *with respect to the input*
        for: ``weight=`` for ``"conv"`` and ``"conv_transpose"`` (plus ``stride``,
        ``padding``, ...; no bias, which would make it affine); ``indices=`` (of one sample)
        for ``"max_unpool"``; ``upscale_factor=`` for ``"pixel_shuffle"``; the resize
        keywords for ``"resize"``. Every operator also takes ``data_format``
        (``"channels_first"``, ``"channels_last"``, ``"NHWC"``, ...; the vectors are samples of
        that layout flattened in C order) and the convolutions take ``weight_format``, as
        for :func:`fastdeconv.conv`.

    Returns
    -------
    FastLinearOperator
        Shape ``(prod(output_shape), prod(input_shape))``; vectors are samples flattened in C
        order. ``matvec``/``matmat`` run the fast kernel (``matmat`` as one batch),
        ``rmatvec``/``rmatmat`` the adjoint kernel (``A.H`` / ``A.T`` too), and
        ``to_sparse()`` gives the explicit matrix that :mod:`fastdeconv.sparse` builds from
        index arithmetic, an independent check of both.

    Raises
    ------
    ValueError
        For an unknown ``op``, or parameters the operator rejects.
    TypeError
        For missing or unexpected keywords.

    See Also
    --------
    fastdeconv.deconvolve : least squares with these operators.

    Notes
    -----
    ``A.rmatvec`` is the adjoint :math:`A^T`: for every ``x`` and ``y``,
    :math:`\langle A x, y\rangle = \langle x, A^T y\rangle`. For ``"conv"`` it is
    :func:`fastdeconv.conv_transpose` (through the padding's adjoint when ``padding_mode``
    is not ``"zeros"``); for ``"conv_transpose"``, :func:`fastdeconv.conv`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.sparse import linear_operator
    >>> rng = np.random.default_rng(0)
    >>> A = linear_operator("conv", (3, 8, 8), weight=rng.standard_normal((4, 3, 3, 3)),
    ...                     stride=2, padding=1)
    >>> A.shape                                    # (4 * 4 * 4, 3 * 8 * 8)
    (64, 192)
    >>> x, y = rng.standard_normal(192), rng.standard_normal(64)
    >>> bool(np.isclose(A.matvec(x) @ y, x @ A.rmatvec(y)))
    True
    >>> bool(np.allclose(A.to_sparse() @ x, A.matvec(x)))
    True

    The upsampling operators work the same way; ``rmatvec`` of ``"pixel_shuffle"`` is
    :func:`fastdeconv.pixel_unshuffle` and of ``"resize"`` :func:`fastdeconv.resize_backward`:

    >>> R = linear_operator("resize", (1, 4, 4), scale_factor=2, mode="linear")
    >>> R.shape
    (64, 16)
    >>> P = linear_operator("pixel_shuffle", (4, 3, 3), upscale_factor=2)
    >>> bool(np.array_equal(P.rmatvec(P.matvec(np.arange(36.0))), np.arange(36.0)))
    True
    """
    linear = names(linear=True)
    if not isinstance(op, str) or op not in linear:
        raise ValueError(f"op must be one of {linear}, got {op!r}")
    shape = _sample_shape(input_shape)
    params = dict(params)
    if op not in _CHANNELS_FIRST_PARTS:     # the upsamplers' parts take data_format themselves
        return FastLinearOperator(op, BY_NAME[op].linear_parts(shape, params))
    layout = _layout(op, shape, params)
    parts = BY_NAME[op].linear_parts(layout.sample_shape_in(shape), params)
    return FastLinearOperator(op, _in_layout(parts, layout))


#: operators whose linear parts are channels-first only (the convolutions): linear_operator
#: moves their samples' axes around them and takes their weight_format
_CHANNELS_FIRST_PARTS = ("conv", "conv_transpose")


def _layout(op, shape, params):
    """The caller's :class:`Layout` from ``data_format`` (and ``weight_format``, whose weight
    becomes a canonical view in ``params``)."""
    data_format = params.pop("data_format", "channels_first")
    weight_format = params.pop("weight_format", None)
    layout = Layout.resolve(data_format, len(shape) - 1)
    if weight_format is not None and "weight" in params:
        weight = as_array(params["weight"], "weight")
        layout = Layout.resolve(data_format, len(shape) - 1,
                                weight_format if weight.ndim >= 3 else None,
                                transpose=op == "conv_transpose")
        params["weight"] = layout.weight_in(weight)
    return layout


def _in_layout(parts, layout):
    """``parts`` (channels first) acting on samples in the caller's data layout: one
    transposing copy in and one out around each kernel call, the matrix relabelled."""
    if not layout.channels_last:
        return parts

    def wrap(function):
        return lambda batch: layout.data_out(function(layout.data_in(batch)))

    def matrix():
        coo = parts.matrix().tocoo()
        rows, cols = layout.relabel(coo.row, coo.col, parts.output_shape, parts.input_shape)
        return scipy.sparse.csr_array((coo.data, (rows, cols)), shape=coo.shape)

    return LinearParts(
        layout.shape_out((1,) + parts.input_shape)[1:],
        layout.shape_out((1,) + parts.output_shape)[1:], parts.dtype,
        wrap(parts.forward), wrap(parts.backward), matrix,
        f"{parts.description} channels_last")
