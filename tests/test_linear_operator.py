"""fastdeconv.sparse.linear_operator: kernels (matvec / rmatvec) against the index-arithmetic
matrices (to_sparse), for every operator, plus the dot test and SciPy interoperability."""

import numpy as np
import pytest
import scipy.sparse.linalg

import fastdeconv
from fastdeconv._operators import names
from fastdeconv.sparse import FastLinearOperator, conv_matrix, linear_operator

TOL = 1e-10


def _conv_ops(rng):
    w2 = rng.standard_normal((4, 3, 3, 3))
    return [
        ("conv", (3, 8, 7), dict(weight=w2, stride=2, padding=1)),
        ("conv", (4, 9), dict(weight=rng.standard_normal((6, 2, 3)), stride=2, padding=((2, 1),),
                              dilation=2, groups=2)),
        ("conv", (2, 6, 7), dict(weight=rng.standard_normal((3, 2, 3, 2)), padding=(2, 1),
                                 padding_mode="reflect")),
        ("conv", (2, 5, 6), dict(weight=rng.standard_normal((2, 2, 3, 3)), padding=2,
                                 padding_mode="circular")),
        ("conv", (2, 5), dict(weight=rng.standard_normal((2, 2, 2)), padding=1,
                              padding_mode="replicate")),
        ("conv", (2, 7, 6), dict(weight=rng.standard_normal((3, 2, 4, 3)), stride=2, padding="same")),
        ("conv_transpose", (4, 4, 5), dict(weight=w2, stride=2, padding=1, output_padding=1)),
        ("conv_transpose", (4, 6), dict(weight=rng.standard_normal((4, 3, 3)), stride=3, padding=2,
                                        output_padding=2, dilation=2, groups=2)),
        # output_padding >= stride (allowed below the dilation): the adjoint crops
        ("conv_transpose", (2, 5), dict(weight=rng.standard_normal((2, 2, 3)), stride=1,
                                        output_padding=1, dilation=2)),
        ("conv_transpose", (2, 3, 4), dict(weight=rng.standard_normal((2, 3, 3, 3)), stride=2,
                                           padding=1, output_size=(6, 8))),
        ("conv_transpose", (2, 3, 3, 4), dict(weight=rng.standard_normal((2, 2, 2, 2, 2)), stride=2)),
    ]


def _upsampling_ops(rng):
    x = rng.standard_normal((1, 3, 6, 8))
    _, indices = fastdeconv.max_pool(x, 2, return_indices=True)
    _, indices3 = fastdeconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    return [
        ("resize", (2, 4, 5), dict(scale_factor=2)),
        ("resize", (2, 4, 5), dict(size=(7, 9), mode="linear")),
        ("resize", (1, 6), dict(size=13, mode="cubic", align_corners=True)),
        ("resize", (2, 8, 8), dict(scale_factor=0.5, mode="area")),
        ("resize", (1, 4, 4), dict(scale_factor=2.0, mode="linear",
                                   coordinate_transformation_mode="asymmetric")),
        ("max_unpool", (3, 3, 4), dict(indices=indices[0], kernel_size=2)),
        ("max_unpool", (3, 3, 4), dict(indices=indices3[0], kernel_size=3, stride=2, padding=1,
                                       output_size=(6, 8))),
        ("pixel_shuffle", (8, 3, 2), dict(upscale_factor=2)),
        ("pixel_shuffle", (12, 2, 3), dict(upscale_factor=(2, 3), order="DCR")),
        ("pixel_shuffle", (8, 2), dict(upscale_factor=4)),
    ]


def _all_ops():
    rng = np.random.default_rng(12345)
    return _conv_ops(rng) + _upsampling_ops(rng)


OPS = _all_ops()


@pytest.mark.parametrize("name", names(linear=True))
def test_every_linear_operator_of_the_registry_has_configurations_here(name):
    assert any(op == name for op, _, _ in OPS)


@pytest.mark.parametrize("op, shape, params", OPS, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(OPS)])
def test_kernels_match_the_index_arithmetic_matrix(op, shape, params, rng):
    A = linear_operator(op, shape, **params)
    assert isinstance(A, FastLinearOperator) and isinstance(A, scipy.sparse.linalg.LinearOperator)
    M = A.to_sparse()
    assert M.shape == A.shape
    assert A.shape[1] == np.prod(shape) and A.input_shape == shape
    assert A.shape[0] == np.prod(A.output_shape)
    x = rng.standard_normal(A.shape[1])
    y = rng.standard_normal(A.shape[0])
    np.testing.assert_allclose(A.matvec(x), M @ x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(A.rmatvec(y), M.T @ y, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(A @ x, M @ x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(A.H @ y, M.T @ y, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(A.T @ y, M.T @ y, rtol=TOL, atol=TOL)
    X = rng.standard_normal((A.shape[1], 3))
    Y = rng.standard_normal((A.shape[0], 3))
    np.testing.assert_allclose(A.matmat(X), M @ X, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(A.rmatmat(Y), M.T @ Y, rtol=TOL, atol=TOL)
    # the dot test with the kernels alone
    assert abs(np.dot(A.matvec(x), y) - np.dot(x, A.rmatvec(y))) <= 1e-10 * (
        np.linalg.norm(A.matvec(x)) * np.linalg.norm(y))
    # matvec is one sample of the batched operator
    direct = {
        "conv": lambda v: fastdeconv.conv(v, **params),
        "conv_transpose": lambda v: fastdeconv.conv_transpose(v, **params),
    }.get(op)
    if direct is not None:
        np.testing.assert_allclose(A.matvec(x), direct(x.reshape((1,) + shape)).ravel(), rtol=TOL)


def test_complex_vectors_apply_to_real_and_imaginary_parts(rng):
    w = rng.standard_normal((2, 1, 3))
    A = linear_operator("conv", (1, 6), weight=w, padding=1)
    z = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    np.testing.assert_allclose(A.matvec(z), A.to_sparse() @ z, rtol=TOL)


def test_float32_weight_gives_a_float32_operator(rng):
    w = rng.standard_normal((2, 1, 3)).astype(np.float32)
    A = linear_operator("conv", (1, 6), weight=w)
    assert A.dtype == np.float32 and A.to_sparse().dtype == np.float32
    assert "FastLinearOperator conv" in repr(A)


def test_scipy_solvers_take_it(rng):
    w = rng.standard_normal((3, 1, 3))
    A = linear_operator("conv", (1, 10), weight=w, padding=2)
    x = rng.standard_normal(10)
    b = A.matvec(x)
    solution = scipy.sparse.linalg.lsqr(A, b, atol=1e-12, btol=1e-12)[0]
    np.testing.assert_allclose(solution, x, atol=1e-8)
    # the explicit matrix from sparse.conv_matrix is the same operator
    assert (A.to_sparse() != conv_matrix((1, 10), w, padding=2)).nnz == 0


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("fft", (1, 4)), dict(weight=np.ones((1, 1, 3))), ValueError, "op must be one of"),
        (("conv", (1, 4)), {}, TypeError, "needs the keyword weight="),
        (("conv", (1, 4)), dict(weight=np.ones((1, 1, 3)), bias=np.ones(1)), TypeError,
         "unexpected keyword\\(s\\) bias"),
        (("conv", (1, 4)), dict(weight=np.ones((1, 1, 3)), output_padding=1), TypeError,
         "unexpected keyword"),
        (("conv", 4), dict(weight=np.ones((1, 1, 3))), TypeError, "input_shape must be a sequence"),
        (("conv", (4,)), dict(weight=np.ones((1, 1, 3))), ValueError, "input_shape must be \\(C, \\*spatial\\)"),
        (("conv", (2, 4)), dict(weight=np.ones((1, 1, 3))), ValueError, "weight.shape\\[1\\] \\* groups"),
        (("conv_transpose", (2, 4)), dict(weight=np.ones((1, 1, 3))), ValueError, "weight.shape\\[0\\]"),
        (("max_unpool", (1, 4)), dict(kernel_size=2), TypeError, "needs the keywords indices="),
        (("max_unpool", (1, 4)), dict(kernel_size=2, indices=np.zeros((1, 3), dtype=int)),
         ValueError, "indices must have the shape input_shape"),
        (("pixel_shuffle", (4, 4)), {}, TypeError, "needs the keyword upscale_factor="),
        (("pixel_shuffle", (3, 4)), dict(upscale_factor=2), ValueError, "divisible"),
        (("resize", (1, 4)), dict(scale_factor=2, weight=1), TypeError, "unexpected keyword"),
        (("resize", (1, 4)), {}, ValueError, "size"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_operator(*args, **kwargs)
