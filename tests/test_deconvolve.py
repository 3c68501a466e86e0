"""fastdeconv.deconvolve against dense linear algebra on the explicit matrix.

The oracle is ``numpy.linalg.lstsq`` (or a dense solve of the damped normal equations) on the
dense matrix built by index arithmetic (fastdeconv.sparse), which shares no code with the
matrix-free solver path through the kernels.
"""

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import conv_matrix, conv_transpose_matrix

METHODS = ["lsqr", "lsmr", "cg"]

# (x shape, weight shape, params, transpose): all of full column rank
FULL_RANK = [
    ((2, 1, 11, 11), (4, 1, 3, 3), dict(stride=2, padding=1), False),
    ((1, 2, 13), (6, 2, 4), dict(stride=2, padding=2), False),
    ((1, 4, 9), (8, 2, 3), dict(stride=2, padding=1, groups=2), False),
    ((2, 1, 10), (2, 1, 3), dict(padding=2, dilation=2), False),
    ((1, 1, 8, 8), (1, 1, 3, 3), dict(padding=2), False),              # full padding, stride 1
    ((1, 2, 7, 6), (5, 2, 3, 2), dict(padding="same"), False),
    ((1, 3, 5, 5), (3, 2, 4, 4), dict(stride=2, padding=1), True),      # the DCGAN layer
    ((2, 2, 6), (2, 3, 3), dict(stride=3, output_padding=1), True),
    ((1, 4, 4, 3), (4, 1, 3, 3), dict(stride=2, padding=1, groups=2), True),
    ((1, 2, 5), (2, 3, 1), dict(stride=2, padding="same"), True),        # k_e < s: zeros added
    ((1, 2, 6, 5), (2, 2, 3, 3), dict(stride=2, padding="same_lower", dilation=2), True),
]


def _dense(x_shape, w, params, transpose):
    if transpose:
        return conv_transpose_matrix(x_shape[1:], w, **params).toarray()
    return conv_matrix(x_shape[1:], w, **params).toarray()


def _forward(x, w, params, transpose):
    return (fastdeconv.conv_transpose if transpose else fastdeconv.conv)(x, w, **params)


def _solver_params(params):
    return {k: v for k, v in params.items() if k != "output_padding"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x_shape, w_shape, params, transpose", FULL_RANK)
def test_recovers_x_when_the_operator_has_full_column_rank(x_shape, w_shape, params, transpose,
                                                           method, rng):
    w = rng.standard_normal(w_shape)
    x = rng.standard_normal(x_shape)
    C = _dense(x_shape, w, params, transpose)
    assert np.linalg.matrix_rank(C) == C.shape[1]          # the premise, checked
    y = _forward(x, w, params, transpose)
    result = fastdeconv.deconvolve(y, w, transpose=transpose, method=method,
                                   input_size=x_shape, **_solver_params(params))
    assert result.converged, result.message
    assert result.x.shape == x.shape and result.x.dtype == np.float64
    assert np.abs(result.x - x).max() < 1e-6
    assert result.residual_norm < 1e-6 * np.linalg.norm(y)
    assert result.iterations > 0 and result.method == method
    # and it is what dense least squares gives, sample by sample
    for n in range(x.shape[0]):
        dense = np.linalg.lstsq(C, y[n].ravel(), rcond=None)[0]
        np.testing.assert_allclose(result.x[n].ravel(), dense, atol=1e-6)


@pytest.mark.parametrize("method", ["lsqr", "lsmr"])
def test_rank_deficient_gives_the_minimum_norm_least_squares_solution(method, rng):
    # one output channel at stride 2: fewer equations than unknowns
    w = rng.standard_normal((1, 1, 3, 3))
    x = rng.standard_normal((1, 1, 10, 10))
    y = fastdeconv.conv(x, w, stride=2, padding=1) + 0.01 * rng.standard_normal((1, 1, 5, 5))
    C = conv_matrix((1, 10, 10), w, stride=2, padding=1).toarray()
    assert np.linalg.matrix_rank(C) < C.shape[1]
    result = fastdeconv.deconvolve(y, w, stride=2, padding=1, method=method, input_size=(10, 10))
    expected = np.linalg.pinv(C) @ y.ravel()
    np.testing.assert_allclose(result.x.ravel(), expected, atol=1e-6)
    # it fits y but is not x: the information is not in y
    assert np.abs(result.x - x).max() > 0.1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("transpose", [False, True])
def test_damping_solves_the_regularised_normal_equations(method, transpose, rng):
    if transpose:
        w, x_shape, params = rng.standard_normal((2, 1, 4)), (1, 2, 7), dict(stride=2, padding=1)
    else:
        w, x_shape, params = rng.standard_normal((1, 2, 3)), (1, 2, 9), dict(stride=2)
    x = rng.standard_normal(x_shape)
    y = _forward(x, w, params, transpose) + 0.1 * rng.standard_normal(
        _forward(x, w, params, transpose).shape)
    damp = 0.3
    C = _dense(x_shape, w, params, transpose)
    expected = np.linalg.solve(C.T @ C + damp ** 2 * np.eye(C.shape[1]), C.T @ y.ravel())
    result = fastdeconv.deconvolve(y, w, damp=damp, method=method, transpose=transpose,
                                   input_size=x_shape, **params)
    np.testing.assert_allclose(result.x.ravel(), expected, atol=1e-7)
    assert np.isclose(result.residual_norm, np.linalg.norm(C @ expected - y.ravel()), rtol=1e-6)


def test_conv_transpose_is_not_the_inverse_but_deconvolve_is(rng):
    x = rng.standard_normal((1, 1, 11, 11))
    w = rng.standard_normal((4, 1, 3, 3))
    y = fastdeconv.conv(x, w, stride=2, padding=1)
    adjoint = fastdeconv.conv_transpose(y, w, stride=2, padding=1)
    assert adjoint.shape == x.shape
    assert np.abs(adjoint - x).max() > 1.0
    assert np.abs(fastdeconv.deconvolve(y, w, stride=2, padding=1).x - x).max() < 1e-6


def test_default_shape_is_the_smallest_and_x0_or_input_size_choose(rng):
    w = rng.standard_normal((6, 1, 3))
    x = rng.standard_normal((1, 1, 12))
    y = fastdeconv.conv(x, w, stride=2, padding=1)
    assert fastdeconv.deconvolve(y, w, stride=2, padding=1).x.shape == (1, 1, 11)
    from_size = fastdeconv.deconvolve(y, w, stride=2, padding=1, input_size=(12,))
    from_x0 = fastdeconv.deconvolve(y, w, stride=2, padding=1, x0=np.zeros_like(x))
    np.testing.assert_allclose(from_size.x, x, atol=1e-6)
    np.testing.assert_allclose(from_x0.x, x, atol=1e-6)
    # a starting point at the solution needs no iteration
    at_solution = fastdeconv.deconvolve(y, w, stride=2, padding=1, x0=x, method="lsmr")
    assert at_solution.converged and at_solution.iterations <= 1
    np.testing.assert_allclose(at_solution.x, x, atol=1e-9)


def test_iteration_limit_is_reported_as_not_converged(rng):
    w = rng.standard_normal((4, 1, 3, 3))
    y = rng.standard_normal((1, 4, 6, 6))
    for method in METHODS:
        result = fastdeconv.deconvolve(y, w, stride=2, padding=1, method=method, maxiter=2)
        assert not result.converged and result.iterations <= 2
        assert "iteration limit" in result.message


def test_float32_and_integer_inputs_are_solved_in_float64(rng):
    w = rng.standard_normal((3, 1, 3)).astype(np.float32)
    y = np.arange(3 * 8).reshape(1, 3, 8)
    result = fastdeconv.deconvolve(y, w, padding=1)
    assert result.x.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(method="gmres"), ValueError, "method must be one of"),
        (dict(damp=-1.0), ValueError, "damp must be a finite non-negative number"),
        (dict(damp="a"), TypeError, "damp must be a real number"),
        (dict(tol=0.0), ValueError, "tol must be a finite positive number"),
        (dict(maxiter=0), ValueError, "maxiter must be >= 1"),
        (dict(maxiter=2.5), TypeError, "maxiter must be an int"),
        (dict(transpose="no"), TypeError, "transpose must be True or False"),
        (dict(x0=np.zeros((2, 1, 8))), ValueError, "x0 must have shape"),
        (dict(input_size=(3, 3)), ValueError, "input_size must have 1 spatial"),
        (dict(input_size=(20,)), ValueError, r"input_size \(20,\) asks for x of shape \(1, 1, 20\), which the operator maps to \(1, 2, 20\), not to y's shape"),
        (dict(x0=np.zeros((1, 1, 10))), ValueError, r"x0 has shape \(1, 1, 10\), which the operator maps to \(1, 2, 10\), not to y's shape \(1, 2, 8\)"),
        (dict(input_size=(1, 2, 8)), ValueError, "must have the batch and channels"),
        (dict(groups=0), ValueError, "groups must be >= 1"),
        (dict(stride=0), ValueError, "stride must be"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, match):
    y = np.zeros((1, 2, 8))
    w = np.ones((2, 1, 3))
    with pytest.raises(error, match=match):
        fastdeconv.deconvolve(y, w, padding=1, **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="weight must have at least 3 dimensions"):
        fastdeconv.deconvolve(np.zeros((1, 1, 4)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="y must have 3 dimensions"):
        fastdeconv.deconvolve(np.zeros((1, 4)), np.ones((1, 1, 3)))
    with pytest.raises(TypeError, match="complex"):
        fastdeconv.deconvolve(np.zeros((1, 1, 4), dtype=complex), np.ones((1, 1, 3)))
    with pytest.raises(ValueError, match="no input shape of this operator gives y's shape"):
        fastdeconv.deconvolve(np.zeros((1, 1, 2)), np.ones((1, 1, 3)), padding=5)
    with pytest.raises(ValueError, match=r"x has shape .*, which the operator maps to .*, not to y's shape \(1, 3, 8\)"):
        fastdeconv.deconvolve(np.zeros((1, 3, 8)), np.ones((2, 1, 3)))
    with pytest.raises(ValueError, match="weight.shape\\[0\\] must equal the input channels"):
        fastdeconv.deconvolve(np.zeros((1, 3, 8)), np.ones((2, 1, 3)), transpose=True,
                              x0=np.zeros((1, 3, 8)))
