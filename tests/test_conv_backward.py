"""conv_backward and conv_transpose_backward: finite differences, duality, reference."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv.testing import (
    conv_backward_reference,
    conv_transpose_backward_reference,
    directional_derivative_check,
)

CONV_CASES = [
    ((2, 3, 9), (4, 3, 3), dict(stride=2, padding=1)),
    ((1, 4, 8), (6, 2, 2), dict(padding=((2, 1),), dilation=3, groups=2)),
    ((2, 2, 6, 7), (3, 2, 3, 2), dict(stride=(2, 1), padding="same")),
    ((1, 2, 5, 6), (2, 2, 3, 3), dict(padding=2, padding_mode="reflect")),
    ((1, 2, 5, 6), (2, 2, 2, 3), dict(padding=(3, 1), stride=2, padding_mode="replicate")),
    ((1, 2, 4, 5), (2, 1, 3, 3), dict(padding=((2, 1), (0, 3)), groups=2, padding_mode="circular")),
    ((1, 2, 4, 3, 5), (4, 2, 2, 2, 3), dict(stride=(1, 2, 2), padding=1)),
    ((2, 4, 3, 3), (4, 4, 1, 1), {}),
]

TRANSPOSE_CASES = [
    ((2, 3, 5), (3, 2, 4), dict(stride=2, padding=1)),
    ((1, 4, 4), (4, 2, 3), dict(stride=3, output_padding=2, dilation=2, groups=2)),
    ((1, 2, 3, 4), (2, 3, 3, 2), dict(stride=(2, 3), padding=((1, 0), (0, 1)), output_padding=(1, 0))),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(stride=2, padding="same")),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), dict(stride=2)),
]


def _check_gradients(op, backward, x, w, kw, rng):
    y = op(x, w, **kw)
    gy = rng.standard_normal(y.shape)
    b = rng.standard_normal(y.shape[1])
    gx, gw, gb = backward(gy, x, w, **kw)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == b.shape
    loss = lambda xx, ww, bb: float(np.vdot(op(xx, ww, bb, **kw), gy))  # noqa: E731
    directional_derivative_check(lambda v: loss(v, w, b), x, rng.standard_normal(x.shape), gx)
    directional_derivative_check(lambda v: loss(x, v, b), w, rng.standard_normal(w.shape), gw)
    directional_derivative_check(lambda v: loss(x, w, v), b, rng.standard_normal(b.shape), gb)
    return gy, (gx, gw, gb)


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_conv_backward_matches_finite_differences_and_reference(x_shape, w_shape, kw, rng, assert_close):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy, grads = _check_gradients(fastdeconv.conv, fastdeconv.conv_backward, x, w, kw, rng)
    for got, want in zip(grads, conv_backward_reference(x, w, gy, **kw)):
        assert_close(got, want)


@pytest.mark.parametrize("x_shape, w_shape, kw", TRANSPOSE_CASES)
def test_conv_transpose_backward_matches_finite_differences_and_reference(x_shape, w_shape, kw, rng, assert_close):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy, grads = _check_gradients(fastdeconv.conv_transpose, fastdeconv.conv_transpose_backward, x, w, kw, rng)
    for got, want in zip(grads, conv_transpose_backward_reference(x, w, gy, **kw)):
        assert_close(got, want)


def test_duality_conv_transpose_backward_input_is_conv_and_weight_grads_swap_roles(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    kw = dict(stride=2, padding=1)
    y = fastdeconv.conv_transpose(x, w, **kw)
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = fastdeconv.conv_transpose_backward(gy, x, w, **kw)
    np.testing.assert_array_equal(gx, fastdeconv.conv(gy, w, **kw))
    # the weight gradient of conv_transpose(x) is conv's weight gradient with x and gy swapped
    _, gw_conv, _ = fastdeconv.conv_backward(x, gy, w, **kw)
    np.testing.assert_array_equal(gw, gw_conv)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_outputs_have_the_compute_dtype(dtype, rng):
    x = rng.standard_normal((1, 2, 6)).astype(dtype)
    w = rng.standard_normal((3, 2, 3)).astype(dtype)
    gy = np.ones((1, 3, 4), dtype=dtype)
    assert {g.dtype for g in fastdeconv.conv_backward(gy, x, w)} == {np.dtype(dtype)}
    x_t = rng.standard_normal((1, 3, 4)).astype(dtype)
    w_t = rng.standard_normal((3, 2, 3)).astype(dtype)
    gy_t = np.ones((1, 2, 6), dtype=dtype)
    assert {g.dtype for g in fastdeconv.conv_transpose_backward(gy_t, x_t, w_t)} == {np.dtype(dtype)}


def test_backward_with_an_empty_batch_gives_zero_weight_gradient(rng):
    w = rng.standard_normal((3, 2, 3))
    gx, gw, gb = fastdeconv.conv_backward(np.zeros((0, 3, 4)), np.zeros((0, 2, 6)), w)
    assert gx.shape == (0, 2, 6) and np.array_equal(gw, np.zeros_like(w)) and np.array_equal(gb, np.zeros(3))


def test_backward_rejects_a_grad_output_of_the_wrong_shape():
    x, w = np.zeros((2, 3, 8)), np.zeros((4, 3, 3))
    with pytest.raises(ValueError, match=r"grad_output must have the operator's output shape \(2, 4, 6\), got \(2, 4, 7\)"):
        fastdeconv.conv_backward(np.zeros((2, 4, 7)), x, w)
    with pytest.raises(ValueError, match=r"grad_output must have the operator's output shape \(2, 3, 10\)"):
        fastdeconv.conv_transpose_backward(np.zeros((2, 3, 9)), np.zeros((2, 4, 8)), w)


@pytest.mark.parametrize("grads", [("weight",), ("x",), ("bias",), ("x", "bias"), "weight"])
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_backward_computes_only_the_requested_gradients(op, grads, rng):
    x = rng.standard_normal((2, 4, 6, 5))
    if op == "conv_transpose":
        w, kw = rng.standard_normal((4, 2, 3, 3)), dict(stride=2, padding=1)
    else:
        w, kw = rng.standard_normal((2, 4, 3, 3)), dict(padding=1, padding_mode="reflect")
    backward = getattr(fastdeconv, f"{op}_backward")
    gy = rng.standard_normal(getattr(fastdeconv, op)(x, w, **kw).shape)
    full = backward(gy, x, w, **kw)
    partial = backward(gy, x, w, grads=grads, **kw)
    wanted = {grads} if isinstance(grads, str) else set(grads)
    for name, got, want in zip(("x", "weight", "bias"), partial, full):
        if name in wanted:
            np.testing.assert_array_equal(got, want)
        else:
            assert got is None


@pytest.mark.parametrize("grads, error, match", [((), ValueError, "grads must be a non-empty sequence"), (("x", "w"), ValueError, r"drawn from \('x', 'weight', 'bias'\), got \('x', 'w'\)"), (3, TypeError, "grads must be a sequence")])
def test_backward_rejects_bad_grads(grads, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.conv_backward(np.ones((1, 1, 3)), np.ones((1, 1, 5)), np.ones((1, 1, 3)), grads=grads)


@pytest.mark.parametrize("op", [fastdeconv.conv_backward, fastdeconv.conv_transpose_backward])
@pytest.mark.parametrize("missing", ["grad_output", "x", "weight"])
def test_backward_passes_reject_none_naming_the_array(op, missing):
    arrays = dict(grad_output=np.ones((1, 1, 4)), x=np.ones((1, 1, 4)), weight=np.ones((1, 1, 1)))
    arrays[missing] = None
    with pytest.raises(TypeError, match=rf"^{missing} must be an array, got None$"):
        op(arrays["grad_output"], arrays["x"], arrays["weight"])
