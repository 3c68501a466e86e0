"""fastdeconv.max_unpool / max_unpool_backward against PyTorch, the NumPy reference, the sparse
matrix and the dot test; output_size rule, repeated indices, dtypes, threads and bad input."""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import max_unpool_matrix
from fastdeconv.testing import assert_adjoint, max_unpool_reference

DTYPES = ["float32", "float64"]


def _pooled(rng, ndim, dtype, *, overlap=False):
    """A max_pool result and its geometry: (x, pooled, indices, kernel, stride, padding)."""
    kernel = tuple(int(v) for v in rng.integers(2, 4, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 3, ndim)) if overlap else kernel
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    size = tuple(int(v) for v in rng.integers(4, 10 if ndim < 3 else 7, ndim))
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    y, idx = fastdeconv.max_pool(x, kernel, stride=stride, padding=padding, return_indices=True)
    return x, y, idx, kernel, stride, padding


def _torch_unpool(torch, y, idx, kernel, stride, padding, output_size, grad=None):
    fn = getattr(torch.nn.functional, f"max_unpool{y.ndim - 2}d")
    yt = torch.from_numpy(y).requires_grad_()
    out = fn(yt, torch.from_numpy(idx), kernel, stride, padding, output_size)
    gy = None
    if grad is not None:
        (gy,) = torch.autograd.grad(out, yt, torch.from_numpy(grad))
        gy = gy.numpy()
    return out.detach().numpy(), gy


@pytest.mark.torch
@pytest.mark.parametrize("ndim, dtype", list(itertools.product([1, 2, 3], DTYPES)))
def test_matches_torch(torch, ndim, dtype, rng, assert_close):
    for trial in range(10):
        x, y, idx, kernel, stride, padding = _pooled(rng, ndim, dtype)
        # the pooled input size, which the default size does not always recover
        default = tuple((n - 1) * s - 2 * p + k
                        for n, k, s, p in zip(y.shape[2:], kernel, stride, padding))
        output_size = None if default == x.shape[2:] and trial % 2 else x.shape[2:]
        u = fastdeconv.max_unpool(y, idx, kernel, stride=stride, padding=padding,
                                  output_size=output_size)
        g = rng.standard_normal(u.shape).astype(dtype)
        tu, tg = _torch_unpool(torch, y, idx, kernel, stride, padding, output_size, g)
        np.testing.assert_array_equal(u, tu)
        # non-overlapping windows: no repeated index, so PyTorch's gradient is the adjoint
        assert_close(fastdeconv.max_unpool_backward(g, idx), tg, dtype)


@pytest.mark.torch
def test_repeated_indices_last_write_wins_like_torch(torch, rng):
    y = rng.standard_normal((2, 3, 12))
    idx = rng.integers(0, 5, y.shape)          # many repeats in a plane of 6 outputs
    u = fastdeconv.max_unpool(y, idx, 2, stride=1, padding=3)   # default (12-1)-6+2 = 7
    tu, _ = _torch_unpool(torch, y, idx, (2,), (1,), (3,), None)
    np.testing.assert_array_equal(u, tu)
    np.testing.assert_array_equal(u, max_unpool_reference(y, idx, u.shape[2:]))


def test_repeated_indices_adjoint_and_matrix(rng):
    """Only the winning (last) position of a repeated index receives the gradient."""
    y = rng.standard_normal((2, 3, 4, 4))
    idx = rng.integers(0, 9, y.shape)          # 16 values into 9 of the 16 outputs
    kwargs = dict(kernel_size=1)
    u = fastdeconv.max_unpool(y, idx, **kwargs)
    assert_adjoint(lambda v: fastdeconv.max_unpool(v, idx, **kwargs),
                   lambda g: fastdeconv.max_unpool_backward(g, idx), y.shape, u.shape, rng=rng)
    for n in range(2):
        m = max_unpool_matrix(idx[n], y.shape[1:], u.shape[1:])
        np.testing.assert_array_equal(m @ y[n].ravel(), u[n].ravel())
        g = rng.standard_normal(u.shape[1:])
        gx = fastdeconv.max_unpool_backward(g[None].repeat(2, 0), idx)[n]
        np.testing.assert_array_equal(m.T @ g.ravel(), gx.ravel())
    assert fastdeconv.max_unpool_backward(np.array([[[1.0, 2.0]]]),
                                          np.array([[[1, 1, 0, 1]]])).tolist() == \
        [[[0.0, 0.0, 1.0, 2.0]]]


@pytest.mark.parametrize("ndim, dtype, overlap",
                         list(itertools.product([1, 2, 3], DTYPES, [False, True])))
def test_matches_reference_sparse_matrix_and_adjoint(ndim, dtype, overlap, rng, assert_close):
    for _ in range(4):
        x, y, idx, kernel, stride, padding = _pooled(rng, ndim, dtype, overlap=overlap)
        kw = dict(stride=stride, padding=padding, output_size=x.shape)
        u = fastdeconv.max_unpool(y, idx, kernel, **kw)
        assert u.shape == x.shape and u.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(u, max_unpool_reference(y, idx, x.shape[2:]))
        m = max_unpool_matrix(idx[1], y.shape[1:], x.shape[1:])
        np.testing.assert_array_equal(m @ y[1].ravel().astype(np.float64),
                                      u[1].ravel().astype(np.float64))
        g = rng.standard_normal(u.shape).astype(dtype)
        gx = fastdeconv.max_unpool_backward(g, idx)
        assert_close(gx[1].ravel(), m.T @ g[1].ravel().astype(np.float64), dtype)
        assert_adjoint(lambda v: fastdeconv.max_unpool(v, idx, kernel, **kw),
                       lambda w: fastdeconv.max_unpool_backward(w, idx),
                       y.shape, u.shape, rng=rng, dtype=dtype)


def test_unpool_of_pool_keeps_the_maxima(rng):
    x = rng.standard_normal((2, 3, 8, 6))
    y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    u = fastdeconv.max_unpool(y, idx, 2)
    assert np.all((u == 0) | (u == x))
    assert np.count_nonzero(u) == y.size     # one value per window (no zero maxima here)
    # the switches put every maximum back where it came from
    np.testing.assert_array_equal(
        np.take_along_axis(u.reshape(2, 3, -1), idx.reshape(2, 3, -1), -1).reshape(y.shape), y)


def test_output_size_rule():
    y = np.ones((1, 1, 3, 3))
    idx = np.zeros((1, 1, 3, 3), dtype=np.int64)
    assert fastdeconv.max_unpool(y, idx, 2).shape == (1, 1, 6, 6)          # (3-1)*2+2
    assert fastdeconv.max_unpool(y, idx, 2, output_size=(7, 5)).shape == (1, 1, 7, 5)
    assert fastdeconv.max_unpool(y, idx, 2, output_size=(1, 1, 7, 5)).shape == (1, 1, 7, 5)
    assert fastdeconv.max_unpool(y, idx, 3, stride=2, padding=1).shape == (1, 1, 5, 5)
    with pytest.raises(ValueError, match="strictly between 4 and 8"):
        fastdeconv.max_unpool(y, idx, 2, output_size=(8, 6))
    with pytest.raises(ValueError, match="strictly between 4 and 8"):
        fastdeconv.max_unpool(y, idx, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 entries"):
        fastdeconv.max_unpool(y, idx, 2, output_size=(6,))
    with pytest.raises(TypeError, match="output_size must be a sequence"):
        fastdeconv.max_unpool(y, idx, 2, output_size=6)


def test_an_empty_default_output_names_the_parameters_that_made_it():
    y, idx = np.ones((1, 1, 1)), np.zeros((1, 1, 1), dtype=np.int64)
    with pytest.raises(ValueError, match=r"x's spatial size \(1,\), kernel_size \(2,\), "
                                         r"stride \(2,\) and padding \(1,\) give spatial "
                                         r"size \(0,\)"):
        fastdeconv.max_unpool(y, idx, 2, stride=2, padding=1)


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.int16, np.float64),
    (np.bool_, np.float64)])
def test_dtype_policy_and_index_dtypes(dtype, expected):
    y = np.array([[[1, 0, 1]]]).astype(dtype)
    for index_dtype in (np.int8, np.int32, np.uint16, np.int64, np.uint64):
        u = fastdeconv.max_unpool(y, np.array([[[0, 3, 5]]], dtype=index_dtype), 2)
        assert u.dtype == expected and u.tolist() == [[[1, 0, 0, 0, 0, 1]]]
        grad = np.arange(6).astype(dtype).reshape(1, 1, 6)
        g = fastdeconv.max_unpool_backward(grad, np.array([[[0, 3, 5]]], dtype=index_dtype))
        assert g.dtype == expected
        np.testing.assert_array_equal(g, grad[..., [0, 3, 5]].astype(expected))


def test_any_layout_and_threads(rng):
    x = rng.standard_normal((4, 6, 12, 10)).astype(np.float32)
    y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    yv, iv = y[:, ::-1, :, ::-1], idx[:, ::-1, :, ::-1]
    expected = fastdeconv.max_unpool(np.ascontiguousarray(yv), np.ascontiguousarray(iv), 2)
    previous = fastdeconv.set_num_threads(1)
    try:
        u1 = fastdeconv.max_unpool(yv, iv, 2)
        g1 = fastdeconv.max_unpool_backward(x, iv)
        fastdeconv.set_num_threads(3)
        u3 = fastdeconv.max_unpool(yv, iv, 2)
        g3 = fastdeconv.max_unpool_backward(x, iv)
    finally:
        fastdeconv.set_num_threads(previous)
    np.testing.assert_array_equal(u1, expected)
    np.testing.assert_array_equal(u1, u3)
    np.testing.assert_array_equal(g1, g3)


def test_empty():
    y = np.zeros((0, 2, 3))
    assert fastdeconv.max_unpool(y, y.astype(int), 2).shape == (0, 2, 6)
    assert fastdeconv.max_unpool_backward(np.zeros((0, 2, 6)), y.astype(int)).shape == (0, 2, 3)


def test_bad_indices():
    y = np.ones((1, 2, 3))
    with pytest.raises(TypeError, match="indices must have an integer dtype"):
        fastdeconv.max_unpool(y, np.zeros((1, 2, 3)), 2)
    with pytest.raises(TypeError, match="indices must have an integer dtype"):
        fastdeconv.max_unpool(y, np.zeros((1, 2, 3), dtype=bool), 2)
    with pytest.raises(ValueError, match=r"indices must have shape \(1, 2, 3\)"):
        fastdeconv.max_unpool(y, np.zeros((1, 2, 4), dtype=int), 2)
    with pytest.raises(ValueError, match=r"indices\[0, 1, 2\] = 6 is outside the plane of 6"):
        fastdeconv.max_unpool(y, np.array([[[0, 1, 2], [3, 4, 6]]]), 2)
    with pytest.raises(ValueError, match=r"indices\[0, 0, 1\] = -3"):
        fastdeconv.max_unpool(y, np.array([[[0, -3, 2], [3, 4, 5]]]), 2)
    with pytest.raises(ValueError, match="out-of-range value"):
        fastdeconv.max_unpool(y, np.full((1, 2, 3), 2**63, dtype=np.uint64), 2)
    with pytest.raises(ValueError, match=r"indices\[0, 1, 0\] = 7"):
        fastdeconv.max_unpool_backward(np.zeros((1, 2, 6)), np.array([[[0, 1, 2], [7, 4, 5]]]))
    with pytest.raises(ValueError, match="indices must have shape"):
        fastdeconv.max_unpool_backward(np.zeros((1, 2, 6)), np.zeros((1, 3, 3), dtype=int))
    with pytest.raises(ValueError, match="x must have shape"):
        fastdeconv.max_unpool(np.ones((2, 3)), np.zeros((2, 3), dtype=int), 2)
    with pytest.raises(ValueError, match="kernel_size must be"):
        fastdeconv.max_unpool(y, np.zeros((1, 2, 3), dtype=int), 0)


def test_matrix_bad_input():
    with pytest.raises(ValueError, match=r"indices must have shape \(2, 3\)"):
        max_unpool_matrix(np.zeros((2, 4), dtype=int), (2, 3), (2, 6))
    with pytest.raises(ValueError, match="output_shape must be"):
        max_unpool_matrix(np.zeros((2, 3), dtype=int), (2, 3), (3, 6))
    with pytest.raises(ValueError, match=r"indices\[1, 0\] = 6 is outside"):
        max_unpool_matrix(np.array([[0, 1, 2], [6, 0, 0]]), (2, 3), (6,))
    with pytest.raises(TypeError, match="integer dtype"):
        max_unpool_matrix(np.zeros((2, 3)), (2, 3), (6,))
