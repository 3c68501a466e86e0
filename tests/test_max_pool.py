"""fastdeconv.max_pool / max_pool_backward against PyTorch and the NumPy reference: values,
switches (ties, NaN, -inf), ceil_mode, dilation, padding, gradients, threads, bad input."""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv.testing import assert_adjoint, max_pool_reference

DTYPES = ["float32", "float64"]


def _draw_params(rng, ndim):
    """Random valid pooling keywords (PyTorch's padding rule) and a spatial size."""
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
        stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
        dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        ceil_mode = bool(rng.integers(0, 2))
        size = tuple(int(v) for v in rng.integers(1, 9 if ndim < 3 else 6, ndim))
        params = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
        try:
            fastdeconv.max_pool(np.zeros((1, 1) + size), **params)
        except ValueError:
            continue
        return size, params


def _data(rng, shape, dtype, kind):
    if kind == "ties":          # few distinct values: many ties
        return rng.integers(-2, 3, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "nan":
        x[rng.random(shape) < 0.25] = np.nan
    elif kind == "inf":
        x[rng.random(shape) < 0.5] = -np.inf
    return x


def _torch_pool(torch, x, params, grad=None):
    fn = getattr(torch.nn.functional, f"max_pool{x.ndim - 2}d")
    xt = torch.from_numpy(x).requires_grad_()
    y, idx = fn(xt, params["kernel_size"], params["stride"], params["padding"],
                params["dilation"], ceil_mode=params["ceil_mode"], return_indices=True)
    gx = None
    if grad is not None:
        (gx,) = torch.autograd.grad(y, xt, torch.from_numpy(grad))
        gx = gx.numpy()
    return y.detach().numpy(), idx.numpy(), gx


CASES = list(itertools.product([1, 2, 3], DTYPES, ["normal", "ties", "nan", "inf"]))


@pytest.mark.torch
@pytest.mark.parametrize("ndim, dtype, kind", CASES)
def test_values_indices_and_gradient_match_torch(torch, ndim, dtype, kind, rng, assert_close):
    for _ in range(12):
        size, params = _draw_params(rng, ndim)
        x = _data(rng, (2, 3) + size, dtype, kind)
        y, idx = fastdeconv.max_pool(x, **params, return_indices=True)
        g = rng.standard_normal(y.shape).astype(dtype)
        ty, tidx, tgx = _torch_pool(torch, x, params, g)
        np.testing.assert_array_equal(y, ty)          # NaN == NaN here
        np.testing.assert_array_equal(idx, tidx)
        assert idx.dtype == np.int64 and y.dtype == np.dtype(dtype)
        assert_close(fastdeconv.max_pool_backward(g, idx, x.shape), tgx, dtype)


@pytest.mark.torch
@pytest.mark.slow
def test_long_torch_sweep(torch, assert_close):
    rng = np.random.default_rng(9)
    for ndim, dtype, kind in CASES:
        for _ in range(150):
            size, params = _draw_params(rng, ndim)
            x = _data(rng, (1, 2) + size, dtype, kind)
            y, idx = fastdeconv.max_pool(x, **params, return_indices=True)
            ty, tidx, _ = _torch_pool(torch, x, params)
            np.testing.assert_array_equal(y, ty)
            np.testing.assert_array_equal(idx, tidx)


@pytest.mark.parametrize("ndim, dtype, kind", CASES)
def test_matches_reference(ndim, dtype, kind, rng):
    for _ in range(6):
        size, params = _draw_params(rng, ndim)
        x = _data(rng, (2, 2) + size, dtype, kind)
        y, idx = fastdeconv.max_pool(x, **params, return_indices=True)
        ry, ridx = max_pool_reference(x, **params)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(idx, ridx)


def test_ties_nan_and_padding_rules():
    x = np.array([[[2.0, 2.0, 1.0, 0.0, np.nan, 0.0, np.nan, 5.0]]])
    y, idx = fastdeconv.max_pool(x, 4, return_indices=True)
    # first maximum wins a tie; a NaN wins, and the last NaN of a window
    assert idx.tolist() == [[[0, 6]]]
    assert y[0, 0, 0] == 2.0 and np.isnan(y[0, 0, 1])
    y, idx = fastdeconv.max_pool(np.full((1, 1, 3), -np.inf), 3, padding=1, stride=1,
                                 return_indices=True)
    assert idx.tolist() == [[[0, 0, 1]]]       # all -inf: the first position inside the input
    assert np.all(y == -np.inf)


def test_documented_output_size():
    x = np.zeros((1, 1, 10, 7))
    y = fastdeconv.max_pool(x, 3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True)
    # floor((10 + 2 - 3 + 1) / 2) + 1 = 6; width: floor((7 + 2 - 5 + 1) / 2) + 1 = 3
    assert y.shape == (1, 1, 6, 3)
    # ceil_mode drops a last window that would start in the right padding
    assert fastdeconv.max_pool(np.zeros((1, 1, 5)), 2, stride=2, padding=1,
                               ceil_mode=True).shape == (1, 1, 3)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_backward_is_the_adjoint_of_the_selection(ndim, rng):
    size, params = _draw_params(rng, ndim)
    x = rng.standard_normal((2, 3) + size)
    y, idx = fastdeconv.max_pool(x, **params, return_indices=True)

    def select(v):   # the linear map v -> v at the switches
        return np.take_along_axis(v.reshape(2, 3, -1), idx.reshape(2, 3, -1), -1).reshape(y.shape)

    assert_adjoint(select, lambda g: fastdeconv.max_pool_backward(g, idx, x.shape),
                   x.shape, y.shape, rng=rng)
    np.testing.assert_array_equal(select(x), y)


def test_gradient_by_finite_differences(rng):
    x = rng.standard_normal((2, 3, 7, 6))    # distinct values: max_pool is locally linear
    y, idx = fastdeconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    g = rng.standard_normal(y.shape)
    gx = fastdeconv.max_pool_backward(g, idx, x.shape)
    d = rng.standard_normal(x.shape)
    eps = 1e-7
    numeric = (np.vdot(fastdeconv.max_pool(x + eps * d, 3, stride=2, padding=1), g)
               - np.vdot(fastdeconv.max_pool(x - eps * d, 3, stride=2, padding=1), g)) / (2 * eps)
    assert abs(numeric - np.vdot(gx, d)) < 1e-6 * max(1.0, abs(numeric))


def test_overlapping_windows_sum_their_gradients():
    x = np.array([[[0.0, 9.0, 1.0, 2.0]]])
    y, idx = fastdeconv.max_pool(x, 3, stride=1, return_indices=True)
    assert idx.tolist() == [[[1, 1]]]
    assert fastdeconv.max_pool_backward(np.array([[[1.0, 10.0]]]), idx, x.shape).tolist() == \
        [[[0.0, 11.0, 0.0, 0.0]]]


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.int64, np.float64),
    (np.bool_, np.float64)])
def test_dtype_policy_and_layout(dtype, expected, rng):
    x = rng.integers(0, 5, (2, 3, 6, 8)).astype(dtype)
    view = x[:, ::-1, ::2, ::-1]
    y, idx = fastdeconv.max_pool(view, 2, return_indices=True)
    assert y.dtype == expected
    ry, ridx = fastdeconv.max_pool(np.ascontiguousarray(view), 2, return_indices=True)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert fastdeconv.max_pool_backward(y, idx.astype(np.int32), view.shape).dtype == expected


def test_bit_identical_for_any_thread_count(rng):
    x = rng.standard_normal((4, 5, 20, 21)).astype(np.float32)
    previous = fastdeconv.set_num_threads(1)
    try:
        y1, i1 = fastdeconv.max_pool(x, 3, stride=2, return_indices=True)
        g1 = fastdeconv.max_pool_backward(y1, i1, x.shape)
        fastdeconv.set_num_threads(3)
        y3, i3 = fastdeconv.max_pool(x, 3, stride=2, return_indices=True)
        g3 = fastdeconv.max_pool_backward(y3, i3, x.shape)
    finally:
        fastdeconv.set_num_threads(previous)
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(i1, i3)
    np.testing.assert_array_equal(g1, g3)


def test_empty_batch():
    y, idx = fastdeconv.max_pool(np.zeros((0, 2, 4, 4)), 2, return_indices=True)
    assert y.shape == idx.shape == (0, 2, 2, 2)
    assert fastdeconv.max_pool_backward(y, idx, (0, 2, 4, 4)).shape == (0, 2, 4, 4)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros((4, 4)), 2), {}, ValueError, r"x must have shape \(N, C, \*spatial\)"),
    ((np.zeros((1, 1, 2, 2, 2, 2)), 2), {}, ValueError, "1 to 3 spatial"),
    ((np.zeros((1, 1, 4)), 0), {}, ValueError, "kernel_size must be"),
    ((np.zeros((1, 1, 4)), (2, 2)), {}, ValueError, "kernel_size must be"),
    ((np.zeros((1, 1, 4)), 2.0), {}, TypeError, "kernel_size must be"),
    ((np.zeros((1, 1, 4)), 2), dict(stride=0), ValueError, "stride must be"),
    ((np.zeros((1, 1, 4)), 2), dict(padding=-1), ValueError, "padding must be"),
    ((np.zeros((1, 1, 4)), 2), dict(padding=2), ValueError, "padding must be at most half"),
    ((np.zeros((1, 1, 4)), 2), dict(dilation=0), ValueError, "dilation must be"),
    ((np.zeros((1, 1, 4)), 5), {}, ValueError, "output would be empty"),
    ((np.zeros((1, 1, 1)), 2), dict(stride=1, padding=1, dilation=2), ValueError,
     "entirely in the padding"),
    ((np.zeros((1, 1, 4)), 2), dict(ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    ((np.zeros((1, 1, 4)), 2), dict(return_indices="yes"), TypeError, "return_indices"),
    ((np.zeros((1, 1, 4), dtype=complex), 2), {}, TypeError, "x has complex dtype"),
])
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.max_pool(*args, **kwargs)


def test_backward_bad_input():
    g = np.zeros((1, 2, 2))
    with pytest.raises(TypeError, match="indices must have an integer dtype"):
        fastdeconv.max_pool_backward(g, np.zeros((1, 2, 2)), (1, 2, 4))
    with pytest.raises(ValueError, match=r"indices must have shape \(1, 2, 2\)"):
        fastdeconv.max_pool_backward(g, np.zeros((1, 2, 3), dtype=np.int64), (1, 2, 4))
    with pytest.raises(ValueError, match=r"indices\[0, 1, 1\] = 4 is outside the plane of 4"):
        fastdeconv.max_pool_backward(g, np.array([[[0, 1], [2, 4]]]), (1, 2, 4))
    with pytest.raises(ValueError, match=r"indices\[0, 0, 0\] = -1"):
        fastdeconv.max_pool_backward(g, np.array([[[-1, 1], [2, 3]]]), (1, 2, 4))
    with pytest.raises(ValueError, match="input_shape must be the full shape"):
        fastdeconv.max_pool_backward(g, np.zeros((1, 2, 2), dtype=int), (4,))
    with pytest.raises(TypeError, match="input_shape must be a sequence"):
        fastdeconv.max_pool_backward(g, np.zeros((1, 2, 2), dtype=int), 4)


@pytest.mark.parametrize("kw, match", [
    (dict(kernel_size=1, stride=(1, 2**63)), r"stride too large for 64-bit index arithmetic"),
    (dict(kernel_size=2**62), r"kernel_size too large for 64-bit index arithmetic"),
    (dict(kernel_size=2**61, dilation=4), r"kernel extent .* too large"),
])
def test_huge_parameters_are_rejected_before_any_index_arithmetic(kw, match):
    with pytest.raises(ValueError, match=match):
        fastdeconv.max_pool(np.zeros((0, 0, 1, 1)), **kw)


def test_a_huge_kernel_on_a_tiny_input_does_not_enumerate_its_taps():
    # 2**41 taps per window: the empty-window check is arithmetic, not an array of taps
    y = fastdeconv.max_pool(np.ones((1, 1, 1)), 2**41, padding=2**40)
    assert y.tolist() == [[[1.0]]]
