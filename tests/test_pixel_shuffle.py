"""fastdeconv.pixel_shuffle / pixel_unshuffle in both channel orders against PyTorch, ONNX
Runtime (DepthToSpace / SpaceToDepth), the NumPy reference and the permutation matrix."""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import pixel_shuffle_matrix
from fastdeconv.testing import (
    assert_adjoint,
    pixel_shuffle_reference,
    pixel_unshuffle_reference,
)

ORDERS = ["CRD", "DCR"]
CASES = list(itertools.product([1, 2, 3], ORDERS, [1, 2, 3]))   # ndim, order, factor


def _shape(rng, ndim, factor, c=None):
    c = int(rng.integers(1, 4)) if c is None else c
    spatial = tuple(int(v) for v in rng.integers(1, 5 if ndim < 3 else 4, ndim))
    return (2, c * factor ** ndim) + spatial


@pytest.mark.parametrize("ndim, order, factor", CASES)
def test_matches_reference_matrix_and_is_its_own_adjoint(ndim, order, factor, rng):
    shape = _shape(rng, ndim, factor)
    x = rng.standard_normal(shape)
    y = fastdeconv.pixel_shuffle(x, factor, order=order)
    assert y.shape == (2, shape[1] // factor ** ndim) + tuple(n * factor for n in shape[2:])
    np.testing.assert_array_equal(y, pixel_shuffle_reference(x, factor, order=order))
    np.testing.assert_array_equal(fastdeconv.pixel_unshuffle(y, factor, order=order), x)
    np.testing.assert_array_equal(pixel_unshuffle_reference(y, factor, order=order), x)
    m = pixel_shuffle_matrix(shape[1:], factor, order=order)
    np.testing.assert_array_equal(m @ x[0].ravel(), y[0].ravel())
    np.testing.assert_array_equal(m.T @ y[1].ravel(), x[1].ravel())
    assert_adjoint(lambda v: fastdeconv.pixel_shuffle(v, factor, order=order),
                   lambda w: fastdeconv.pixel_unshuffle(w, factor, order=order),
                   shape, y.shape, rng=rng)


def test_per_dimension_factors(rng):
    x = rng.standard_normal((1, 12, 2, 3))
    y = fastdeconv.pixel_shuffle(x, (2, 3))
    assert y.shape == (1, 2, 4, 9)
    np.testing.assert_array_equal(y, pixel_shuffle_reference(x, (2, 3)))
    np.testing.assert_array_equal(fastdeconv.pixel_unshuffle(y, (2, 3)), x)
    np.testing.assert_array_equal(
        pixel_shuffle_matrix((12, 2, 3), (2, 3), order="DCR") @ x[0].ravel(),
        fastdeconv.pixel_shuffle(x, (2, 3), order="DCR")[0].ravel())


def test_the_two_orders_differ_by_a_channel_permutation(rng):
    """DCR of x == CRD of x with its channels regrouped (phase-major -> channel-major)."""
    c, r = 3, 2
    x = rng.standard_normal((1, c * r * r, 4, 5))
    regrouped = x.reshape(1, r * r, c, 4, 5).transpose(0, 2, 1, 3, 4).reshape(x.shape)
    np.testing.assert_array_equal(fastdeconv.pixel_shuffle(x, r, order="DCR"),
                                  fastdeconv.pixel_shuffle(regrouped, r, order="CRD"))


@pytest.mark.torch
@pytest.mark.parametrize("factor", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_torch(torch, factor, dtype, rng, assert_close):
    shape = _shape(rng, 2, factor)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.pixel_shuffle(xt, factor)
    y = fastdeconv.pixel_shuffle(x, factor)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    (gx,) = torch.autograd.grad(yt, xt, torch.from_numpy(g))
    np.testing.assert_array_equal(fastdeconv.pixel_unshuffle(g, factor), gx.numpy())
    np.testing.assert_array_equal(fastdeconv.pixel_unshuffle(y, factor),
                                  torch.nn.functional.pixel_unshuffle(yt, factor).detach().numpy())


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_matches_onnxruntime(order, factor, rng):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")   # builds the one-node models
    from fastdeconv.testing._onnx import run_single_node

    x = rng.standard_normal(_shape(rng, 2, factor)).astype(np.float32)
    (y,) = run_single_node("DepthToSpace", [x], dict(blocksize=factor, mode=order), opset=13)
    np.testing.assert_array_equal(fastdeconv.pixel_shuffle(x, factor, order=order), y)
    if order == "DCR":   # SpaceToDepth has TensorFlow's (DCR) order only
        (back,) = run_single_node("SpaceToDepth", [y], dict(blocksize=factor), opset=13)
        np.testing.assert_array_equal(fastdeconv.pixel_unshuffle(y, factor, order="DCR"), back)


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.int32, np.float64),
    (np.bool_, np.float64)])
def test_dtype_policy_and_layout(dtype, expected, rng):
    x = rng.integers(0, 3, (2, 8, 3, 4)).astype(dtype)
    view = x[::-1, :, ::-1, ::2]
    y = fastdeconv.pixel_shuffle(view, 2)
    assert y.dtype == expected and y.flags.c_contiguous
    np.testing.assert_array_equal(y, pixel_shuffle_reference(np.ascontiguousarray(view), 2))
    assert fastdeconv.pixel_unshuffle(y, 2).dtype == expected


def test_documented_example():
    x = np.arange(8.0).reshape(1, 4, 1, 2)
    assert fastdeconv.pixel_shuffle(x, 2)[0, 0].tolist() == [[0, 2, 1, 3], [4, 6, 5, 7]]


@pytest.mark.parametrize("call, error, match", [
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 6, 2, 2)), 2), ValueError,
     r"channels of x \(6\) must be divisible .* \(4\)"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 4, 2)), 0), ValueError,
     "upscale_factor must be"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 4, 2)), 2.0), TypeError,
     "upscale_factor must be an int"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 4, 2, 2)), (2, 2, 2)), ValueError,
     "upscale_factor must be"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 4, 2)), 2, order="crd"), ValueError,
     "order must be 'CRD'"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((4, 2)), 2), ValueError,
     r"x must have shape \(N, C, \*spatial\)"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 8, 1, 1, 1, 1)), 2), ValueError,
     "1 to 3 spatial"),
    (lambda: fastdeconv.pixel_shuffle(np.zeros((1, 4, 2), dtype=complex), 2), TypeError,
     "complex"),
    (lambda: fastdeconv.pixel_unshuffle(np.zeros((1, 1, 5)), 2), ValueError,
     r"spatial size of x \(5,\) must be divisible by downscale_factor \(2,\)"),
    (lambda: fastdeconv.pixel_unshuffle(np.zeros((1, 1, 4)), -1), ValueError,
     "downscale_factor must be"),
    # an empty array with a factor that NumPy cannot put into a shape (size x itemsize)
    (lambda: fastdeconv.pixel_shuffle(np.zeros((0, 0, 1)), 2**62), ValueError,
     r"upscale_factor \(4611686018427387904,\) is too large"),
    (lambda: fastdeconv.pixel_unshuffle(np.zeros((0, 0, 0)), 2**61), ValueError,
     "downscale_factor .* is too large"),
    (lambda: pixel_shuffle_matrix((6, 2, 2), 2), ValueError, "must be divisible"),
    (lambda: pixel_shuffle_matrix((4, 2), 2, order="X"), ValueError, "order must be"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
