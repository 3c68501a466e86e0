"""The registry of fastdeconv's operators: one :class:`Operator` entry each, in :data:`OPERATORS`.

Every place that enumerates the operators reads this list instead of keeping its own:
``python -m fastdeconv verify`` (:mod:`fastdeconv._verify`: the configurations and the checks
of each operator), the CLI's ``verify --op`` choices, :func:`fastdeconv.sparse.linear_operator`
(:mod:`fastdeconv._linear_operator`) and the tests that run every operator. Adding an operator
is its module, its kernel, its NumPy reference and one entry here (see
``docs/dev/adding_an_operator.rst``).

Words: an operator's *backward* is the function that computes its gradient (``conv_backward``,
``resize_backward``, ...); for a linear operator the gradient with respect to the input is the
adjoint :math:`A^T` of the operator, which is the mathematical term in the documentation.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ._conv import conv, conv_backward, conv_transpose, conv_transpose_backward
from ._geometry import source_index
from ._matrix_conv import conv_matrix, conv_transpose_matrix
from ._matrix_upsample import max_unpool_matrix, pixel_shuffle_matrix, resize_matrix
from ._pool import max_pool, max_pool_backward, max_unpool, max_unpool_backward
from ._problem import conv_problem, conv_transpose_problem
from ._resize import resize, resize_backward
from ._shuffle import pixel_shuffle, pixel_unshuffle
from ._validation import as_array, result_dtype
from .testing._reference import conv_reference, conv_transpose_reference
from .testing._reference_pool import (max_pool_reference, max_unpool_reference,
                                      pixel_shuffle_reference)
from .testing._reference_resize import resize_reference

__all__ = ["Operator", "Case", "LinearParts", "OPERATORS", "BY_NAME", "names"]

# Shorter keyword names in verify's configuration column.
_SHORT = {"coordinate_transformation_mode": "ctm", "cubic_coeff_a": "a",
          "scale_factor": "scale", "upscale_factor": "factor", "kernel_size": "kernel"}


@dataclass(frozen=True)
class Case:
    """One configuration that ``verify`` checks: shapes of one input batch and the keywords."""

    op: str
    x_shape: tuple
    weight_shape: tuple = None  # None for the operators without weight
    params: dict = field(default_factory=dict)

    @property
    def label(self):
        """The configuration column of verify's table."""
        spatial = "x".join(map(str, self.x_shape[2:]))
        if self.weight_shape is None:
            params = ", ".join(f"{_SHORT.get(k, k)}={v}" for k, v in self.params.items())
            return f"{len(self.x_shape) - 2}d {BY_NAME[self.op].case_input} {spatial} {params}"
        kernel = "x".join(map(str, self.weight_shape[2:]))
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{len(self.x_shape) - 2}d in {spatial} k {kernel}" + (f" {params}" if params else "")


@dataclass(frozen=True)
class LinearParts:
    """An operator on one sample, linear in its input, as ``linear_operator`` wraps it."""

    input_shape: tuple          # one sample, (C, *spatial)
    output_shape: tuple
    dtype: np.dtype
    forward: Callable           # batch (N, *input_shape) -> (N, *output_shape)
    backward: Callable          # batch (N, *output_shape) -> (N, *input_shape): the adjoint
    matrix: Callable            # () -> scipy.sparse array
    description: str


@dataclass(frozen=True)
class Operator:
    """One operator and everything the registry's consumers need about it.

    Attributes
    ----------
    name : str
        The public name (``fastdeconv.<name>``).
    forward, backward : callable
        The public fast function and the public function of its gradient (``pixel_unshuffle``
        for ``pixel_shuffle``, whose gradient is its inverse).
    reference : callable
        The plain-NumPy reference of ``forward`` (:mod:`fastdeconv.testing`).
    matrix : callable or None
        The builder of the explicit sparse matrix of one sample (:mod:`fastdeconv.sparse`);
        None for an operator that is not linear in its input.
    check : {"weighted", "linear", "selection"}
        Which of verify's checks applies: a convolution with weight and bias, an operator
        linear in its only array input, or a max selection (piecewise linear, no matrix).
    verify_parts : callable or None
        ``case -> (forward, backward_x, backward, reference, matrix)`` (weighted) or
        ``(case, x) -> (x, forward, backward, reference, matrices)`` (linear): the callables
        verify compares on one case.
    linear_parts : callable or None
        ``(input_shape, params) -> LinearParts`` for ``linear_operator``; None if not linear.
    cases : tuple of Case
        verify's configurations.
    example : callable
        ``(x, rng) -> (forward_call, backward_call)``: the operator and its backward on a
        batch ``x`` of shape ``(N, C, *spatial)`` (``C`` divisible by 4, every spatial size
        by 2 and at least 4) with small fixed parameters, as two zero-argument callables
        whose operands are read-only (the tests that run every operator use them).
    case_input : str
        The words before the spatial size in verify's configuration column.
    """

    name: str
    forward: Callable
    backward: Callable
    reference: Callable
    matrix: Optional[Callable]
    check: str
    verify_parts: Optional[Callable]
    linear_parts: Optional[Callable]
    cases: tuple
    example: Callable
    case_input: str = "in"


# ------------------------------------------------------------------------- convolutions
def _conv_verify_parts(case):
    p = dict(case.params)
    geometry = conv_problem(case.x_shape, case.weight_shape, **p).geometry
    forward = lambda x, w, b=None: conv(x, w, b, **p)  # noqa: E731
    backward = lambda gy, x, w: conv_backward(gy, x, w, **p)  # noqa: E731
    reference = lambda x, w, b=None: conv_reference(x, w, b, **p)  # noqa: E731
    matrix = lambda w: conv_matrix(case.x_shape[1:], w, **p)  # noqa: E731
    if p.get("padding_mode", "zeros") == "zeros":
        backward_x = lambda gy, w: conv_transpose(  # noqa: E731
            gy, w, stride=geometry.stride, padding=geometry.padding,
            dilation=geometry.dilation, groups=p.get("groups", 1),
            output_size=geometry.input_size,
        )
    else:  # through reflect/replicate/circular padding the adjoint is conv_backward's
        backward_x = lambda gy, w: backward(gy, np.zeros(case.x_shape), w)[0]  # noqa: E731
    return forward, backward_x, backward, reference, matrix


def _conv_transpose_verify_parts(case):
    p = dict(case.params)
    geometry = conv_transpose_problem(case.x_shape, case.weight_shape, **p).geometry
    forward = lambda x, w, b=None: conv_transpose(x, w, b, **p)  # noqa: E731
    backward = lambda gy, x, w: conv_transpose_backward(gy, x, w, **p)  # noqa: E731
    ref_params = {k: v for k, v in p.items() if k != "output_size"}
    if "output_size" in p:  # the reference takes the output_padding that output_size picks
        ref_params["output_padding"] = geometry.output_padding
    reference = lambda x, w, b=None: conv_transpose_reference(x, w, b, **ref_params)  # noqa: E731
    matrix = lambda w: conv_transpose_matrix(case.x_shape[1:], w, **p)  # noqa: E731
    backward_x = lambda gy, w: conv(  # noqa: E731
        gy, w, stride=geometry.stride, padding=geometry.padding,
        dilation=geometry.dilation, groups=p.get("groups", 1),
    )
    return forward, backward_x, backward, reference, matrix


def _pop_weight(params, op):
    if "weight" not in params:
        raise TypeError(f"linear_operator({op!r}, ...) needs the keyword weight=")
    weight = as_array(params.pop("weight"), "weight")
    dtype = result_dtype((weight, "weight"))
    return np.ascontiguousarray(weight, dtype=dtype), dtype


def check_keywords(params, allowed, op):
    """TypeError naming the keywords of ``params`` that ``linear_operator(op)`` does not take."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(
            f"linear_operator({op!r}, ...) got unexpected keyword(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed))}"
        )


def _conv_linear_parts(input_shape, params):
    weight, dtype = _pop_weight(params, "conv")
    check_keywords(params, {"stride", "padding", "dilation", "groups", "padding_mode"}, "conv")
    problem = conv_problem((1,) + input_shape, weight.shape, x_name="(1, *input_shape)",
                           **params)
    g = problem.geometry
    mode = problem.padding_mode

    def forward(x):
        return conv(x, weight, **params)

    if mode == "zeros":
        def backward(y):
            return conv_transpose(y, weight, stride=g.stride, padding=g.padding,
                                  dilation=g.dilation, groups=problem.groups,
                                  output_size=g.input_size)
    else:
        padded = tuple(n + b + a for n, (b, a) in zip(g.input_size, g.padding))
        sources = [source_index(np.arange(-b, n + a), n, mode)
                   for n, (b, a) in zip(g.input_size, g.padding)]

        def backward(y):
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

    return LinearParts(
        input_shape, (problem.c_out,) + g.output_size, np.dtype(dtype), forward, backward,
        lambda: conv_matrix(input_shape, weight, **params),
        f"conv weight {weight.shape}",
    )


def _conv_transpose_linear_parts(input_shape, params):
    weight, dtype = _pop_weight(params, "conv_transpose")
    check_keywords(params, {"stride", "padding", "output_padding", "dilation", "groups",
                            "output_size"}, "conv_transpose")
    problem = conv_transpose_problem((1,) + input_shape, weight.shape,
                                     x_name="(1, *input_shape)", **params)
    g = problem.geometry
    n_in = input_shape[1:]

    def forward(x):
        return conv_transpose(x, weight, **params)

    def backward(y):
        out = conv(y, weight, stride=g.stride, padding=g.padding, dilation=g.dilation,
                   groups=problem.groups)
        # output_padding >= stride (allowed when < dilation) gives the forward conv extra
        # output cells that the transposed convolution never reads: drop them
        return out[(slice(None), slice(None)) + tuple(slice(0, n) for n in n_in)]

    return LinearParts(
        input_shape, (problem.c_in,) + g.input_size, np.dtype(dtype), forward, backward,
        lambda: conv_transpose_matrix(input_shape, weight, **params),
        f"conv_transpose weight {weight.shape}",
    )


# --------------------------------------------------------------------------- upsampling
def _resize_verify_parts(case, x):
    p = dict(case.params)
    return (x, lambda v: resize(v, **p), lambda w: resize_backward(w, x.shape, **p),
            lambda v: resize_reference(v, **p), [resize_matrix(x.shape[1:], **p)] * x.shape[0])


def _max_unpool_verify_parts(case, x):
    # x_shape of a max_unpool case is the pooled tensor whose switches it uses
    pool = {k: v for k, v in case.params.items() if k in ("kernel_size", "stride", "padding")}
    x, idx = max_pool(x, **pool, return_indices=True)   # the unpool input
    p = dict(pool, output_size=case.x_shape[2:])
    return (x, lambda v: max_unpool(v, idx, **p), lambda w: max_unpool_backward(w, idx),
            lambda v: max_unpool_reference(v, idx, case.x_shape[2:]),
            [max_unpool_matrix(i, x.shape[1:], case.x_shape[1:]) for i in idx])


def _pixel_shuffle_verify_parts(case, x):
    p = dict(case.params)
    return (x, lambda v: pixel_shuffle(v, **p),
            lambda w: pixel_unshuffle(w, p["upscale_factor"], order=p.get("order", "CRD")),
            lambda v: pixel_shuffle_reference(v, **p),
            [pixel_shuffle_matrix(x.shape[1:], **p)] * x.shape[0])


_RESIZE_KEYWORDS = {"size", "scale_factor", "mode", "align_corners", "antialias",
                    "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                    "exclude_outside", "data_format"}


def _resize_linear_parts(input_shape, params):
    check_keywords(params, _RESIZE_KEYWORDS, "resize")
    size = params.pop("size", None)
    probe = resize(np.zeros((1,) + input_shape), size, **params)    # validates, gives the shape
    return LinearParts(
        input_shape, probe.shape[1:], np.dtype(np.float64),
        lambda x: resize(x, size, **params),
        lambda y: resize_backward(y, (y.shape[0],) + input_shape, size, **params),
        lambda: resize_matrix(input_shape, size, **params),
        f"resize {params.get('mode', 'nearest')}",
    )


def _max_unpool_linear_parts(input_shape, params):
    if "indices" not in params or "kernel_size" not in params:
        raise TypeError("linear_operator('max_unpool', ...) needs the keywords indices= (of "
                        "one sample, shape input_shape) and kernel_size=")
    check_keywords(params, {"indices", "kernel_size", "stride", "padding", "output_size",
                            "data_format"}, "max_unpool")
    indices = np.asarray(params.pop("indices"))
    if indices.shape != input_shape:
        raise ValueError(f"indices must have the shape input_shape {input_shape} of one "
                         f"sample, got {indices.shape}")
    kernel_size = params.pop("kernel_size")
    layout = {"data_format": params.get("data_format", "channels_first")}
    probe = max_unpool(np.zeros((1,) + input_shape), indices[None], kernel_size, **params)

    def batch_indices(n):
        return np.ascontiguousarray(np.broadcast_to(indices, (n,) + input_shape))

    return LinearParts(
        input_shape, probe.shape[1:], np.dtype(np.float64),
        lambda x: max_unpool(x, batch_indices(x.shape[0]), kernel_size, **params),
        lambda y: max_unpool_backward(y, batch_indices(y.shape[0]), **layout),
        lambda: max_unpool_matrix(indices, input_shape, probe.shape[1:], **layout),
        "max_unpool",
    )


def _pixel_shuffle_linear_parts(input_shape, params):
    if "upscale_factor" not in params:
        raise TypeError("linear_operator('pixel_shuffle', ...) needs the keyword "
                        "upscale_factor=")
    check_keywords(params, {"upscale_factor", "order", "data_format"}, "pixel_shuffle")
    factor = params.pop("upscale_factor")
    probe = pixel_shuffle(np.zeros((1,) + input_shape), factor, **params)
    return LinearParts(
        input_shape, probe.shape[1:], np.dtype(np.float64),
        lambda x: pixel_shuffle(x, factor, **params),
        lambda y: pixel_unshuffle(y, factor, **params),
        lambda: pixel_shuffle_matrix(input_shape, factor, **params),
        f"pixel_shuffle r={factor}",
    )


# ------------------------------------------------------------------------------ examples
def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _transposed_pair(x, rng):
    """A weight for conv_transpose of ``x`` (channels halved, kernel 3) and that output."""
    w = rng.standard_normal((x.shape[1], x.shape[1] // 2) + (3,) * (x.ndim - 2)).astype(x.dtype)
    return _read_only(w, conv_transpose(x, w, stride=2, padding=1))


def _conv_example(x, rng):
    """conv with stride 2, padding 1 of the conv_transpose example's output."""
    w, y = _transposed_pair(x, rng)
    return (lambda: conv(y, w, stride=2, padding=1),
            lambda: conv_backward(x, y, w, stride=2, padding=1))


def _conv_transpose_example(x, rng):
    w, y = _transposed_pair(x, rng)
    return (lambda: conv_transpose(x, w, stride=2, padding=1),
            lambda: conv_transpose_backward(y, x, w, stride=2, padding=1))


def _resize_example(x, rng):
    (y,) = _read_only(resize(x, scale_factor=2, mode="cubic"))
    return (lambda: resize(x, scale_factor=2, mode="cubic"),
            lambda: resize_backward(y, x.shape, scale_factor=2, mode="cubic"))


def _max_pool_example(x, rng):
    p, idx = _read_only(*max_pool(x, 3, stride=2, padding=1, return_indices=True))
    return (lambda: max_pool(x, 3, stride=2, padding=1, return_indices=True),
            lambda: max_pool_backward(p, idx, x.shape))


def _max_unpool_example(x, rng):
    p, idx = _read_only(*max_pool(x, 3, stride=2, padding=1, return_indices=True))
    return (lambda: max_unpool(p, idx, 3, stride=2, padding=1, output_size=x.shape[2:]),
            lambda: max_unpool_backward(x, idx))


def _pixel_shuffle_example(x, rng):
    return lambda: pixel_shuffle(x, 2), lambda: pixel_unshuffle(x, 2)


# ----------------------------------------------------------------------------- registry
def _cases(op, *configurations):
    """verify's Case of ``op`` for each ``(x_shape, weight_shape, params)``."""
    return tuple(Case(op, *c) for c in configurations)


def _upsampling_cases(op, *configurations):
    """verify's Case of ``op`` for each ``(x_shape, params)`` (no weight)."""
    return tuple(Case(op, x_shape, params=params) for x_shape, params in configurations)


OPERATORS = (
    Operator(
        "conv", conv, conv_backward, conv_reference, conv_matrix, "weighted",
        _conv_verify_parts, _conv_linear_parts, _cases(
            "conv",
            ((2, 3, 11), (4, 3, 3), {}),
            ((2, 4, 13), (6, 2, 4), dict(stride=3, padding=2, dilation=2, groups=2)),
            ((1, 2, 9), (3, 2, 3), dict(padding=((2, 1),), padding_mode="reflect")),
            ((2, 3, 8, 7), (4, 3, 3, 3), dict(stride=2, padding=1)),
            ((1, 4, 9, 10), (4, 1, 3, 2), dict(stride=(2, 1), padding="same", groups=4)),
            ((1, 2, 7, 6), (2, 2, 3, 3), dict(padding=2, dilation=(2, 1), padding_mode="circular")),
            ((1, 2, 6, 6), (3, 2, 2, 3), dict(padding=(1, 2), padding_mode="replicate")),
            ((1, 2, 6, 7), (2, 2, 4, 3), dict(stride=2, padding="same_lower")),
            ((2, 4, 5, 4, 6), (2, 2, 3, 2, 3), dict(stride=(1, 2, 2), padding=((1, 0), (0, 1), (2, 1)), groups=2)),
            ((1, 2, 4, 5, 4), (2, 2, 1, 1, 1), {}),
        ), _conv_example),
    Operator(
        "conv_transpose", conv_transpose, conv_transpose_backward, conv_transpose_reference,
        conv_transpose_matrix, "weighted", _conv_transpose_verify_parts,
        _conv_transpose_linear_parts, _cases(
            "conv_transpose",
            ((2, 3, 7), (3, 2, 4), dict(stride=2, padding=1)),
            ((1, 4, 6), (4, 3, 3), dict(stride=3, padding=2, output_padding=2, dilation=2, groups=2)),
            ((2, 3, 4, 5), (3, 2, 4, 4), dict(stride=2, padding=1)),
            ((1, 2, 5, 4), (2, 3, 3, 2), dict(stride=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 2), dilation=(1, 2))),
            ((1, 4, 4, 4), (4, 1, 3, 3), dict(stride=2, padding="same", groups=4)),
            ((1, 2, 3, 4, 3), (2, 2, 2, 2, 2), dict(stride=2)),
            ((1, 2, 3, 3, 4), (2, 4, 3, 2, 3), dict(stride=(2, 1, 2), padding=1, output_size=(6, 2, 8), groups=2)),
        ), _conv_transpose_example),
    Operator(
        "resize", resize, resize_backward, resize_reference, resize_matrix, "linear",
        _resize_verify_parts, _resize_linear_parts, _upsampling_cases(
            "resize",
            ((2, 3, 7), dict(scale_factor=2.5, mode="linear")),
            ((2, 2, 6, 7), dict(size=(13, 5), mode="nearest")),
            ((1, 2, 5, 6), dict(size=(11, 4), mode="cubic", align_corners=True)),
            ((1, 2, 9, 8), dict(size=(4, 3), mode="linear", antialias=True)),
            ((1, 2, 7, 9), dict(size=(3, 4), mode="area")),
            ((1, 2, 4, 3, 5), dict(scale_factor=(2.0, 1.5, 0.5), mode="nearest-exact")),
            ((1, 2, 4, 5, 3), dict(size=(6, 3, 7), mode="linear")),
            ((1, 2, 8), dict(size=13, mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_ceil")),
            ((1, 2, 5, 6), dict(size=(9, 11), mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.5, exclude_outside=True)),
            ((1, 2, 10, 7), dict(scale_factor=0.4, mode="cubic", coordinate_transformation_mode="half_pixel_symmetric", antialias=True)),
        ), _resize_example),
    Operator(
        "max_pool", max_pool, max_pool_backward, max_pool_reference, None, "selection",
        None, None, _upsampling_cases(
            "max_pool",
            ((2, 3, 11), dict(kernel_size=3, stride=2, padding=1)),
            ((2, 3, 8, 7), dict(kernel_size=2)),
            ((1, 2, 9, 8), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
            ((1, 2, 5, 6, 4), dict(kernel_size=2)),
        ), _max_pool_example),
    Operator(
        "max_unpool", max_unpool, max_unpool_backward, max_unpool_reference, max_unpool_matrix,
        "linear", _max_unpool_verify_parts, _max_unpool_linear_parts, _upsampling_cases(
            "max_unpool",
            ((2, 3, 10), dict(kernel_size=2)),
            ((2, 3, 8, 6), dict(kernel_size=2)),
            ((1, 2, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
            ((1, 2, 4, 6, 5), dict(kernel_size=2)),
        ), _max_unpool_example, case_input="pool of"),
    Operator(
        "pixel_shuffle", pixel_shuffle, pixel_unshuffle, pixel_shuffle_reference,
        pixel_shuffle_matrix, "linear", _pixel_shuffle_verify_parts,
        _pixel_shuffle_linear_parts, _upsampling_cases(
            "pixel_shuffle",
            ((2, 6, 5), dict(upscale_factor=3)),
            ((1, 8, 3, 4), dict(upscale_factor=2, order="DCR")),
            ((1, 12, 2, 3), dict(upscale_factor=(2, 3))),
            ((1, 16, 2, 3, 2), dict(upscale_factor=2)),
        ), _pixel_shuffle_example),
)

#: The entries of :data:`OPERATORS` by name.
BY_NAME = {op.name: op for op in OPERATORS}


def names(*, linear=None):
    """Names of the registered operators, in registry order; ``linear=True``: only those
    with a matrix (what ``linear_operator`` takes), ``linear=False``: only the others."""
    return tuple(op.name for op in OPERATORS
                 if linear is None or (op.matrix is not None) == linear)
