"""Numerics: NaN and inf propagate as in PyTorch, and the float32 accumulation error is bounded.

Non-finite values: every operator is a sum of products of its input with finite
coefficients, so a NaN or an infinity in ``x`` reaches exactly the outputs whose sum contains
it (inf - inf and inf * 0 giving NaN as IEEE arithmetic says), whatever the algorithm. Each
algorithm of the dispatcher is forced here and compared, value for value, with PyTorch.

float32 accumulation: a sum of ``K`` products computed in float32 from float32 operands has
``|fl(s) - s| <= gamma_K * sum |a_i b_i|`` with ``gamma_K = K u / (1 - K u)`` and
``u = 2**-24`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5).
The tests hold every algorithm except Winograd (whose transforms round; its bound is in
test_winograd.py) to that bound elementwise, against float64 results from the same float32
operands, and record how far below it the blocked GEMM actually stays.
"""

import math

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._problem import conv_problem, conv_transpose_problem

U32 = 2.0**-24

CONV_CASES = [  # (x shape, weight shape, keywords) for conv; transposed for conv_transpose
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(padding=1)),
    ((2, 4, 9, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((2, 4, 11), (4, 1, 4), dict(stride=2, padding=1, groups=4)),
    ((1, 3, 5, 4, 6), (2, 3, 2, 2, 2), dict(stride=2)),
    ((2, 8, 7, 7), (8, 8, 4, 4), dict(stride=2, padding=1)),
]
TRANSPOSE_CASES = [  # (x shape, weight shape, keywords) for conv_transpose
    ((2, 4, 5, 4), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 6), (4, 1, 4), dict(stride=2, padding=1, groups=4)),
    ((2, 4, 3, 3), (4, 8, 2, 2), dict(stride=2)),
    ((1, 2, 3, 3, 2), (2, 2, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 16, 4, 4), (16, 8, 8, 8), dict(stride=4, padding=2)),
    ((2, 4, 6, 5), (4, 3, 3, 3), dict(padding=1)),
]


def _with_nonfinite(rng, shape, dtype):
    """Normal values with a few NaN, +inf and -inf (positions drawn at random, and a NaN in
    the middle of the first plane)."""
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
    flat[picks[:2]] = np.nan
    flat[picks[2:4]] = np.inf
    flat[picks[4:]] = -np.inf
    x[(0, 0) + tuple(n // 2 for n in shape[2:])] = np.nan  # inside some receptive field
    return x.astype(dtype)


def _torch_conv(torch, transpose, ndim):
    F = torch.nn.functional
    return getattr(F, f"conv_transpose{ndim}d" if transpose else f"conv{ndim}d")


def assert_same_nonfinite_pattern(actual, expected, dtype):
    """Same NaN positions, same signed infinities, finite values within the dtype tolerance."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    err = float(np.max(np.abs(actual[finite] - expected[finite].astype(np.float64)),
                       initial=0.0))
    assert err <= rtol * scale, err


@pytest.mark.parametrize("algorithm", _dispatch.ALGORITHMS["forward"])
@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_input_propagates_through_conv_as_in_torch(torch, algorithm, x_shape, w_shape,
                                                            kw, dtype, rng):
    x = _with_nonfinite(rng, x_shape, dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        y = fastdeconv.conv(x, w, **kw)
    expected = _torch_conv(torch, False, x.ndim - 2)(torch.from_numpy(x), torch.from_numpy(w),
                                                     **kw).numpy()
    assert np.isnan(expected).any() and np.isfinite(expected).any()
    assert_same_nonfinite_pattern(y, expected, dtype)


@pytest.mark.parametrize("algorithm", _dispatch.ALGORITHMS["backward_input"])
@pytest.mark.parametrize("x_shape, w_shape, kw", TRANSPOSE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_input_propagates_through_conv_transpose_as_in_torch(torch, algorithm, x_shape,
                                                                      w_shape, kw, dtype, rng):
    x = _with_nonfinite(rng, x_shape, dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        y = fastdeconv.conv_transpose(x, w, **kw)
    expected = _torch_conv(torch, True, x.ndim - 2)(torch.from_numpy(x), torch.from_numpy(w),
                                                    **kw).numpy()
    assert np.isnan(expected).any()
    assert_same_nonfinite_pattern(y, expected, dtype)


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES[:3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_grad_output_propagates_through_conv_gradients_as_in_torch(torch, x_shape,
                                                                            w_shape, kw, dtype,
                                                                            rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = fastdeconv.conv(x, w, **kw).shape
    g = _with_nonfinite(rng, y_shape, dtype)
    gx, gw, gb = fastdeconv.conv_backward(g, x, w, **kw)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.zeros(w_shape[0], dtype=xt.dtype, requires_grad=True)
    yt = _torch_conv(torch, False, x.ndim - 2)(xt, wt, bt, **kw)
    tgx, tgw, tgb = torch.autograd.grad(yt, (xt, wt, bt), torch.from_numpy(g))
    for ours, theirs in [(gx, tgx), (gw, tgw), (gb, tgb)]:
        assert_same_nonfinite_pattern(ours, theirs.numpy(), dtype)


RESIZE_CASES = [
    ("nearest", "nearest", {}),
    ("nearest-exact", "nearest-exact", {}),
    ("linear", "bilinear", dict(align_corners=False)),
    ("linear", "bilinear", dict(align_corners=True)),
    ("cubic", "bicubic", dict(align_corners=False)),
    ("linear", "bilinear", dict(antialias=True)),
    ("area", "area", {}),
]


@pytest.mark.parametrize("mode, torch_mode, kw", RESIZE_CASES)
@pytest.mark.parametrize("size", [(13, 7), (4, 3), (8, 6), (15, 11), (16, 12)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_input_propagates_through_resize_as_in_torch(torch, mode, torch_mode, kw, size,
                                                              dtype, rng):
    x = _with_nonfinite(rng, (2, 3, 8, 6), dtype)
    y = fastdeconv.resize(x, size, mode=mode, **kw)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode=torch_mode,
                                               **kw).numpy()
    assert_same_nonfinite_pattern(y, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_values_move_unchanged_through_unpooling_and_pixel_shuffle(torch, dtype, rng):
    x = _with_nonfinite(rng, (2, 8, 6, 6), dtype)
    y, idx = fastdeconv.max_pool(np.abs(rng.standard_normal(x.shape)), 2, return_indices=True)
    v = _with_nonfinite(rng, y.shape, dtype)
    F = torch.nn.functional
    np.testing.assert_array_equal(
        fastdeconv.max_unpool(v, idx, 2),
        F.max_unpool2d(torch.from_numpy(v), torch.from_numpy(idx), 2).numpy())
    np.testing.assert_array_equal(fastdeconv.pixel_shuffle(x, 2),
                                  F.pixel_shuffle(torch.from_numpy(x), 2).numpy())


# --------------------------------------------------------------- float32 accumulation error
def _terms_per_output(x_shape, w_shape, kw, transpose):
    """K: the products summed into one output (an upper bound over outputs)."""
    groups = kw.get("groups", 1)
    kernel = math.prod(w_shape[2:])
    if not transpose:
        return w_shape[1] * kernel
    stride = kw.get("stride", 1)
    per_dim = [math.ceil(k / stride) for k in w_shape[2:]]
    return (x_shape[1] // groups) * math.prod(per_dim)


def _gamma(k):
    return k * U32 / (1 - k * U32)


#: (pass, algorithm, x shape, weight shape, keywords): every algorithm whose float32 result
#: is a sum of exact products (not Winograd or space_to_depth, which is Winograd: their
#: transforms round; see test_winograd.py), on
#: geometries where the dispatcher really runs it (asserted) and with K in the hundreds.
BOUND_CASES = [
    ("forward", "im2col", (2, 64, 9, 8), (6, 64, 3, 3), dict(padding=1)),
    ("forward", "im2col", (2, 64, 9, 8), (6, 32, 3, 3), dict(stride=2, padding=1, groups=2)),
    ("forward", "im2col", (1, 48, 5, 4, 6), (2, 48, 2, 2, 2), dict(stride=2)),
    ("forward", "packed", (2, 64, 9, 8), (6, 64, 3, 3), dict(padding=1)),
    ("forward", "packed", (1, 48, 5, 4, 6), (4, 24, 2, 2, 2), dict(stride=2, groups=2)),
    ("forward", "direct", (2, 64, 9, 8), (40, 64, 3, 3), dict(stride=2, padding=1)),
    ("forward", "direct", (1, 64, 5, 4, 6), (36, 32, 3, 3, 3), dict(stride=2, groups=2)),
    ("backward_input", "col2im", (2, 64, 5, 4), (64, 3, 4, 4), dict(stride=2, padding=1)),
    ("backward_input", "col2im", (1, 32, 3, 3, 2), (32, 2, 3, 3, 3),
     dict(stride=2, padding=1, output_padding=1)),
    ("backward_input", "phases", (2, 64, 5, 4), (64, 3, 4, 4), dict(stride=2, padding=1)),
    ("backward_input", "phases", (2, 64, 6, 5), (64, 3, 3, 3), dict(padding=1)),
    ("backward_input", "packed_phases", (2, 64, 5, 4), (64, 3, 4, 4), dict(stride=2,
                                                                         padding=1)),
    ("backward_input", "packed_phases", (1, 200, 4, 3), (200, 5, 3, 3), dict(stride=2)),
    ("backward_input", "packed_col2im", (2, 64, 5, 4), (64, 3, 4, 4), dict(stride=2,
                                                                         padding=1)),
    ("backward_input", "packed_col2im", (1, 200, 4, 3), (200, 5, 3, 3), dict(stride=2)),
    ("backward_input", "depthwise", (2, 64, 6), (64, 1, 4), dict(stride=2, padding=1,
                                                                 groups=64)),
    ("backward_input", "subpixel", (2, 16, 4, 4), (16, 8, 8, 8), dict(stride=4, padding=2)),
]


@pytest.mark.parametrize("pass_name, algorithm, x_shape, w_shape, kw", BOUND_CASES)
def test_float32_error_is_within_the_accumulation_bound(pass_name, algorithm, x_shape, w_shape,
                                                       kw, rng):
    transpose = pass_name == "backward_input"
    op = fastdeconv.conv_transpose if transpose else fastdeconv.conv
    make_problem = conv_transpose_problem if transpose else conv_problem
    with _dispatch.forced_algorithm(algorithm):
        used = _dispatch.plan(pass_name, make_problem(x_shape, w_shape, **kw), 4).algorithm
    assert used == algorithm  # the case exercises the algorithm it names
    # wide dynamic range: magnitudes over e^-4 .. e^4
    x = (rng.standard_normal(x_shape) * np.exp(rng.uniform(-4, 4, x_shape))).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    with _dispatch.forced_algorithm(algorithm):
        y32 = op(x, w, **kw)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y64 = op(x64, w64, **kw)
    magnitude = op(np.abs(x64), np.abs(w64), **kw)  # sum |a_i b_i| per output
    k = _terms_per_output(x_shape, w_shape, kw, transpose)
    error = np.abs(y32 - y64)
    assert np.all(error <= _gamma(k + 1) * magnitude + 1e-45), (
        f"max error / bound {float(np.max(error / (_gamma(k + 1) * magnitude + 1e-300))):.3g}")


def test_the_bound_cases_cover_every_exact_algorithm():
    covered = {(p, a) for p, a, *_ in BOUND_CASES}
    expected = {(p, a) for p in ("forward", "backward_input") for a in _dispatch.ALGORITHMS[p]
                if a not in ("winograd", "space_to_depth")}
    assert covered == expected


@pytest.mark.parametrize("n_terms", [64, 1024, 16384])
def test_float32_weight_gradient_error_is_within_the_accumulation_bound(n_terms, rng):
    # the weight gradient sums over the batch and every output position: K = N * out positions
    side = int(math.isqrt(n_terms // 4))
    x = rng.standard_normal((4, 3, side, side)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    g = (rng.standard_normal((4, 5, side, side))).astype(np.float32)
    _, gw32, _ = fastdeconv.conv_backward(g, x, w, padding=1, grads="weight")
    _, gw64, _ = fastdeconv.conv_backward(g.astype(np.float64), x.astype(np.float64),
                                          w.astype(np.float64), padding=1, grads="weight")
    _, magnitude, _ = fastdeconv.conv_backward(np.abs(g).astype(np.float64),
                                               np.abs(x).astype(np.float64),
                                               w.astype(np.float64), padding=1, grads="weight")
    k = 4 * side * side
    assert np.all(np.abs(gw32 - gw64) <= _gamma(k + 1) * magnitude)


def test_float32_error_measured_relative_to_unit_roundoff(rng):
    """The documented numbers: error / (u * sum|a b|) stays far below K (blocked FMA sums)."""
    x = rng.standard_normal((2, 256, 12, 12)).astype(np.float32)
    w = rng.standard_normal((64, 256, 3, 3)).astype(np.float32)
    with _dispatch.forced_algorithm("im2col"):
        y32 = fastdeconv.conv(x, w, padding=1)
    y64 = fastdeconv.conv(x.astype(np.float64), w.astype(np.float64), padding=1)
    magnitude = fastdeconv.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                                padding=1)
    ratio = float(np.max(np.abs(y32 - y64) / (U32 * magnitude)))
    # gamma_K / u is K = 2304 here; measured about 1 (table in docs/user_guide/reliability.rst)
    assert ratio < 16, ratio
