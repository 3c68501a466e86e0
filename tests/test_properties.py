"""Hypothesis properties: random geometries agree with the reference, linearity, adjointness."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fastdeconv
from fastdeconv.testing import conv_reference, conv_transpose_reference


@st.composite
def conv_setups(draw, transpose=False):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if transpose:
        sizes = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        out = [(n - 1) * s - b - a + ke + op for n, s, (b, a), ke, op in zip(sizes, stride, padding, k_eff, output_padding)]
        if min(out) < 1:
            padding = ((0, 0),) * ndim
        params = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
        weight_shape = (c_in, c_out // groups) + kernel
    else:
        sizes = tuple(max(draw(st.integers(1, 7)), ke - b - a) for ke, (b, a) in zip(k_eff, padding))
        params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                      padding_mode=draw(st.sampled_from(["zeros", "replicate", "circular"])))
        if params["padding_mode"] == "circular":
            sizes = tuple(max(n, b, a) for n, (b, a) in zip(sizes, padding))
        weight_shape = (c_out, c_in // groups) + kernel
    batch = draw(st.integers(0, 2))
    seed = draw(st.integers(0, 2**32 - 1))
    return (batch, c_in) + sizes, weight_shape, params, np.random.default_rng(seed)


@given(conv_setups())
def test_conv_agrees_with_the_reference_on_random_geometries(setup):
    x_shape, w_shape, params, rng = setup
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    np.testing.assert_allclose(fastdeconv.conv(x, w, **params), conv_reference(x, w, **params), rtol=1e-10, atol=1e-10)


@given(conv_setups(transpose=True))
def test_conv_transpose_agrees_with_the_reference_on_random_geometries(setup):
    x_shape, w_shape, params, rng = setup
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    np.testing.assert_allclose(fastdeconv.conv_transpose(x, w, **params), conv_transpose_reference(x, w, **params), rtol=1e-10, atol=1e-10)


@given(conv_setups(), st.floats(-3, 3), st.floats(-3, 3))
def test_conv_is_linear_in_its_input(setup, a, b):
    x_shape, w_shape, params, rng = setup
    x1, x2, w = rng.standard_normal(x_shape), rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    lhs = fastdeconv.conv(a * x1 + b * x2, w, **params)
    rhs = a * fastdeconv.conv(x1, w, **params) + b * fastdeconv.conv(x2, w, **params)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@given(conv_setups(transpose=True))
def test_conv_transpose_backward_input_is_the_adjoint_on_random_geometries(setup):
    x_shape, w_shape, params, rng = setup
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = fastdeconv.conv_transpose(x, w, **params)
    v = rng.standard_normal(y.shape)
    gx, _, _ = fastdeconv.conv_transpose_backward(v, x, w, **params)
    lhs, rhs = np.vdot(y, v), np.vdot(x, gx)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, np.linalg.norm(y) * np.linalg.norm(v))
