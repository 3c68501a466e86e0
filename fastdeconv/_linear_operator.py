"""``scipy.sparse.linalg.LinearOperator`` views of fastdeconv's operators.

Each operator is described by an :class:`_OperatorSpec`: the shapes of one input and one
output sample, the forward and adjoint on batches (the fast kernels), and a builder of its
explicit sparse matrix (index arithmetic, :mod:`fastdeconv.sparse`). The public entry point
:func:`linear_operator` is exported from :mod:`fastdeconv.sparse`.
"""

from dataclasses import dataclass
from math import prod

import numpy as np
import scipy.sparse.linalg

from ._geometry import source_index
from ._validation import as_array, check_int, result_dtype

__all__ = ["linear_operator", "FastLinearOperator", "OPERATORS"]


@dataclass(frozen=True)
class _OperatorSpec:
    input_shape: tuple          # one sample, (C, *spatial)
    output_shape: tuple
    dtype: np.dtype
    forward: object             # batch (N, *input_shape) -> (N, *output_shape)
    adjoint: object             # batch (N, *output_shape) -> (N, *input_shape)
    matrix: object              # () -> scipy.sparse array
    description: str


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
    >>> A.to_sparse().toarray()
    array([[1., 0., 0.],
           [1., 0., 0.],
           [0., 1., 0.],
           [0., 1., 0.],
           [0., 0., 1.],
           [0., 0., 1.]])
    """

    def __init__(self, op, spec):
        self.op = op
        self.input_shape = spec.input_shape
        self.output_shape = spec.output_shape
        self._spec = spec
        super().__init__(dtype=spec.dtype,
                         shape=(prod(spec.output_shape), prod(spec.input_shape)))

    def _apply(self, function, columns, in_shape):
        columns = np.asarray(columns)
        if columns.dtype.kind == "c":
            real = self._apply(function, columns.real, in_shape)
            return real + 1j * self._apply(function, columns.imag, in_shape)
        batch = np.ascontiguousarray(columns.T).reshape((columns.shape[1],) + in_shape)
        out = np.asarray(function(batch))
        return out.reshape(columns.shape[1], -1).T

    def _matvec(self, x):
        return self._apply(self._spec.forward, np.reshape(x, (-1, 1)), self.input_shape)[:, 0]

    def _rmatvec(self, y):
        return self._apply(self._spec.adjoint, np.reshape(y, (-1, 1)), self.output_shape)[:, 0]

    def _matmat(self, X):
        return self._apply(self._spec.forward, X, self.input_shape)

    def _rmatmat(self, Y):
        return self._apply(self._spec.adjoint, Y, self.output_shape)

    def to_sparse(self):
        """The explicit ``scipy.sparse.csr_array`` of the operator (built by index arithmetic)."""
        return self._spec.matrix()

    def __repr__(self):
        return (f"<{self.shape[0]}x{self.shape[1]} FastLinearOperator {self._spec.description} "
                f"with dtype={self.dtype}>")


# ---------------------------------------------------------------------------------- specs
def _sample_shape(input_shape):
    if isinstance(input_shape, np.ndarray):
        input_shape = input_shape.tolist()
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a sequence of ints (C, *spatial), got {input_shape!r}"
        ) from None
    if len(shape) < 2:
        raise ValueError(
            f"input_shape must be (C, *spatial) with at least one spatial dimension, got "
            f"{input_shape!r} (the shape of one sample, without the batch dimension)"
        )
    return tuple(check_int(n, "input_shape", min_value=1) for n in shape)


def _pop_weight(params, op):
    if "weight" not in params:
        raise TypeError(f"linear_operator({op!r}, ...) needs the keyword weight=")
    weight = as_array(params.pop("weight"), "weight")
    dtype = result_dtype((weight, "weight"))
    return np.ascontiguousarray(weight, dtype=dtype), dtype


def _check_keywords(params, allowed, op):
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(
            f"linear_operator({op!r}, ...) got unexpected keyword(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed))}"
        )


def _conv_spec(input_shape, params):
    from ._conv import conv, conv_transpose
    from ._problem import conv_problem
    from .sparse import conv_matrix

    weight, dtype = _pop_weight(params, "conv")
    _check_keywords(params, {"stride", "padding", "dilation", "groups", "padding_mode"}, "conv")
    problem = conv_problem((1,) + input_shape, weight.shape, x_name="(1, *input_shape)",
                           **params)
    g = problem.geometry
    mode = problem.padding_mode

    def forward(x):
        return conv(x, weight, **params)

    if mode == "zeros":
        def adjoint(y):
            return conv_transpose(y, weight, stride=g.stride, padding=g.padding,
                                  dilation=g.dilation, groups=problem.groups,
                                  output_size=g.input_size)
    else:
        padded = tuple(n + b + a for n, (b, a) in zip(g.input_size, g.padding))
        sources = [source_index(np.arange(-b, n + a), n, mode)
                   for n, (b, a) in zip(g.input_size, g.padding)]

        def adjoint(y):
            # conv_transpose onto the explicitly padded input, then add every padded cell's
            # value to the input cell it was copied from (the adjoint of the padding).
            grad = conv_transpose(y, weight, stride=g.stride, dilation=g.dilation,
                                  groups=problem.groups, output_size=padded)
            for dim, index in enumerate(sources):
                axis = 2 + dim
                shape = list(grad.shape)
                shape[axis] = g.input_size[dim]
                folded = np.zeros(shape, dtype=grad.dtype)
                np.add.at(np.moveaxis(folded, axis, 0), index, np.moveaxis(grad, axis, 0))
                grad = folded
            return grad

    return _OperatorSpec(
        input_shape, (problem.c_out,) + g.output_size, np.dtype(dtype), forward, adjoint,
        lambda: conv_matrix(input_shape, weight, **params),
        f"conv weight {weight.shape}",
    )


def _conv_transpose_spec(input_shape, params):
    from ._conv import conv, conv_transpose
    from ._problem import conv_transpose_problem
    from .sparse import conv_transpose_matrix

    weight, dtype = _pop_weight(params, "conv_transpose")
    _check_keywords(params, {"stride", "padding", "output_padding", "dilation", "groups",
                             "output_size"}, "conv_transpose")
    problem = conv_transpose_problem((1,) + input_shape, weight.shape,
                                     x_name="(1, *input_shape)", **params)
    g = problem.geometry
    n_in = input_shape[1:]

    def forward(x):
        return conv_transpose(x, weight, **params)

    def adjoint(y):
        out = conv(y, weight, stride=g.stride, padding=g.padding, dilation=g.dilation,
                   groups=problem.groups)
        # output_padding >= stride (allowed when < dilation) gives the forward conv extra
        # output cells that the transposed convolution never reads: drop them
        return out[(slice(None), slice(None)) + tuple(slice(0, n) for n in n_in)]

    return _OperatorSpec(
        input_shape, (problem.c_in,) + g.input_size, np.dtype(dtype), forward, adjoint,
        lambda: conv_transpose_matrix(input_shape, weight, **params),
        f"conv_transpose weight {weight.shape}",
    )


_RESIZE_KEYWORDS = {"size", "scale_factor", "mode", "align_corners", "antialias",
                    "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                    "exclude_outside"}


def _resize_spec(input_shape, params):
    from ._resize import resize, resize_backward
    from .sparse import resize_matrix

    _check_keywords(params, _RESIZE_KEYWORDS, "resize")
    size = params.pop("size", None)
    probe = resize(np.zeros((1,) + input_shape), size, **params)    # validates, gives the shape

    def forward(x):
        return resize(x, size, **params)

    def adjoint(y):
        return resize_backward(y, (y.shape[0],) + input_shape, size, **params)

    return _OperatorSpec(
        input_shape, probe.shape[1:], np.dtype(np.float64), forward, adjoint,
        lambda: resize_matrix(input_shape, size, **params),
        f"resize {params.get('mode', 'nearest')}",
    )


def _max_unpool_spec(input_shape, params):
    from ._pool import max_unpool, max_unpool_backward
    from .sparse import max_unpool_matrix

    if "indices" not in params or "kernel_size" not in params:
        raise TypeError("linear_operator('max_unpool', ...) needs the keywords indices= (of "
                        "one sample, shape input_shape) and kernel_size=")
    _check_keywords(params, {"indices", "kernel_size", "stride", "padding", "output_size"},
                    "max_unpool")
    indices = np.asarray(params.pop("indices"))
    if indices.shape != input_shape:
        raise ValueError(f"indices must have the shape input_shape {input_shape} of one "
                         f"sample, got {indices.shape}")
    kernel_size = params.pop("kernel_size")
    probe = max_unpool(np.zeros((1,) + input_shape), indices[None], kernel_size, **params)

    def batch_indices(n):
        return np.ascontiguousarray(np.broadcast_to(indices, (n,) + input_shape))

    def forward(x):
        return max_unpool(x, batch_indices(x.shape[0]), kernel_size, **params)

    def adjoint(y):
        return max_unpool_backward(y, batch_indices(y.shape[0]))

    return _OperatorSpec(
        input_shape, probe.shape[1:], np.dtype(np.float64), forward, adjoint,
        lambda: max_unpool_matrix(indices, input_shape, probe.shape[1:]),
        "max_unpool",
    )


def _pixel_shuffle_spec(input_shape, params):
    from ._shuffle import pixel_shuffle, pixel_unshuffle
    from .sparse import pixel_shuffle_matrix

    if "upscale_factor" not in params:
        raise TypeError("linear_operator('pixel_shuffle', ...) needs the keyword "
                        "upscale_factor=")
    _check_keywords(params, {"upscale_factor", "order"}, "pixel_shuffle")
    factor = params.pop("upscale_factor")
    probe = pixel_shuffle(np.zeros((1,) + input_shape), factor, **params)

    def forward(x):
        return pixel_shuffle(x, factor, **params)

    def adjoint(y):
        return pixel_unshuffle(y, factor, **params)

    return _OperatorSpec(
        input_shape, probe.shape[1:], np.dtype(np.float64), forward, adjoint,
        lambda: pixel_shuffle_matrix(input_shape, factor, **params),
        f"pixel_shuffle r={factor}",
    )


OPERATORS = {
    "conv": _conv_spec,
    "conv_transpose": _conv_transpose_spec,
    "resize": _resize_spec,
    "max_unpool": _max_unpool_spec,
    "pixel_shuffle": _pixel_shuffle_spec,
}


def linear_operator(op, input_shape, **params):
    r"""A fastdeconv operator as a ``scipy.sparse.linalg.LinearOperator``, matrix-free.

    Parameters
    ----------
    op : {"conv", "conv_transpose", "resize", "max_unpool", "pixel_shuffle"}
        The operator.
    input_shape : sequence of int
        Shape ``(C, *spatial)`` of one input sample (no batch dimension).
    **params
        The operator's keywords, with the arrays it is linear *with respect to the input*
        for: ``weight=`` for ``"conv"`` and ``"conv_transpose"`` (plus ``stride``,
        ``padding``, ...; no bias, which would make it affine); ``indices=`` (of one sample)
        for ``"max_unpool"``; ``upscale_factor=`` for ``"pixel_shuffle"``; the resize
        keywords for ``"resize"``.

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
    >>> w = rng.standard_normal((4, 3, 3, 3))
    >>> A = linear_operator("conv", (3, 8, 8), weight=w, stride=2, padding=1)
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
    if not isinstance(op, str) or op not in OPERATORS:
        raise ValueError(f"op must be one of {tuple(OPERATORS)}, got {op!r}")
    shape = _sample_shape(input_shape)
    return FastLinearOperator(op, OPERATORS[op](shape, dict(params)))
