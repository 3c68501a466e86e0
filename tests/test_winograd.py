"""The Winograd algorithm of the forward convolution (3x3 kernels, stride 1) and of its
weight gradient (the adjoint with respect to the transformed weight).

Checked against the plain-NumPy reference (float64) and the im2col algorithm on many
geometries, within the guaranteed rounding-error bound derived from the transform matrices
(:func:`error_bound`); bit-identical results for 1, 2 and 4 threads; a workspace bounded
whatever the batch; and the dispatcher's choice.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import fastdeconv
from fastdeconv import _dispatch, _winograd
from fastdeconv._scratch import SLACK_PER_BLOCK
from fastdeconv._algorithms import current_budget
from fastdeconv._algorithms import winograd as winograd_algorithm
from fastdeconv._problem import conv_problem, conv_transpose_problem
from fastdeconv.testing import conv_backward_reference, conv_reference, conv_transpose_reference

#: (x shape, weight shape, conv keywords): odd sizes, tiles straddling the edges, every
#: padding form, dilation, groups, batch 1 and many, channels 1 and many.
GEOMETRIES = [
    ((1, 1, 3, 3), (1, 1, 3, 3), {}),                                   # one output
    ((1, 1, 5, 7), (1, 1, 3, 3), dict(padding=1)),
    ((2, 3, 9, 11), (5, 3, 3, 3), dict(padding=1)),
    ((1, 4, 7, 6), (4, 4, 3, 3), {}),                                   # valid: 5x4 output
    ((3, 5, 13, 10), (6, 5, 3, 3), dict(padding="same")),
    ((2, 4, 9, 9), (6, 4, 3, 3), dict(padding=((2, 0), (1, 3)))),       # asymmetric
    ((2, 4, 8, 12), (3, 4, 3, 3), dict(padding=(0, 2))),
    ((1, 2, 6, 6), (2, 2, 3, 3), dict(padding=4)),                      # tiles wholly in padding
    ((3, 5, 13, 10), (6, 5, 3, 3), dict(padding=2, dilation=2)),
    ((2, 4, 11, 9), (6, 4, 3, 3), dict(padding=((2, 0), (1, 3)), dilation=(1, 3))),
    ((2, 3, 17, 16), (4, 3, 3, 3), dict(dilation=(3, 2))),
    ((2, 4, 9, 9), (6, 2, 3, 3), dict(padding=1, groups=2)),
    ((2, 6, 8, 7), (6, 2, 3, 3), dict(padding=1, groups=3, dilation=2)),
    ((5, 16, 19, 23), (24, 16, 3, 3), dict(padding=1)),                 # several passes
    ((1, 2, 40, 3), (3, 2, 3, 3), dict(padding=(1, 0))),                # one tile column
    ((2, 3, 10, 10), (4, 3, 3, 3), dict(padding=1, padding_mode="reflect")),
    ((2, 3, 10, 10), (4, 3, 3, 3), dict(padding=2, padding_mode="circular", dilation=2)),
]



def _gamma(k, dtype):
    """gamma_k = k u / (1 - k u), u the unit roundoff of ``dtype``."""
    u = float(np.finfo(dtype).eps) / 2
    return k * u / (1 - k * u)


def _bound(window_max, error_weights, cin_g, dtype, m, r):
    """gamma_k sum_c X_c max(C |w_c| C^T) (fastdeconv._winograd's docstring), plus the
    rounding of the float64 reference (at most gamma_{r^2 C_g + 2} conv(|x|, |w|), which the
    first sum bounds since max(C |g| C^T) >= sum |g|).

    ``window_max`` is (N, C_in, *out) (or broadcastable), ``error_weights`` (C_out, C_in /
    groups)."""
    n, c_in = window_max.shape[:2]
    c_out = error_weights.shape[0]
    groups = c_in // cin_g
    scale = np.einsum("ngc...,goc->ngo...",
                      window_max.reshape((n, groups, cin_g) + window_max.shape[2:]),
                      error_weights.reshape(groups, c_out // groups, cin_g))
    k = _winograd.matrices(m, r).rounding_steps(cin_g)
    factor = _gamma(k, dtype) + _gamma(r * r * cin_g + 2, np.float64)
    return factor * scale.reshape((n, c_out) + scale.shape[3:])


def error_bound(x, w, dtype, m=4, **kw):
    """Guaranteed bound of |winograd conv(x, w, **kw) - exact| for every output (r x r kernel,
    stride 1).

    X_c is the largest |x| of channel c in the inputs read by any m x m tile (of the
    output's dilation phase) that may contain the output: outputs o - (m - 1) d to
    o + (m - 1) d, so inputs o - (m - 1) d - p to o + (m + r - 2) d - p (zero padding; with
    another padding mode, the largest |x| of the channel, which the padding repeats).
    """
    geometry = conv_problem(x.shape, w.shape, **kw).geometry
    r = w.shape[2]
    a = np.abs(x).astype(np.float64)
    if kw.get("padding_mode", "zeros") != "zeros":
        a = np.broadcast_to(a.max(axis=(2, 3), keepdims=True), a.shape[:2] + geometry.output_size)
    else:
        for axis, (n_in, n_out, d, p) in enumerate(zip(
                geometry.input_size, geometry.output_size, geometry.dilation,
                geometry.pad_before), start=2):
            before, length = (m - 1) * d + p, (2 * m + r - 3) * d + 1
            widths = [(0, 0)] * a.ndim
            widths[axis] = (before, max(0, n_out - 1 + length - n_in - before))
            padded = np.pad(a, widths)
            windows = sliding_window_view(padded, length, axis=axis).max(axis=-1)
            a = np.take(windows, np.arange(n_out), axis=axis)
    weights = _winograd.matrices(m, r).error_weights(np.abs(w).astype(np.float64))
    return _bound(a, weights, w.shape[1], dtype, m, r)


def transpose_error_bound(x, w, dtype, stride=1, groups=1, **kw):
    """The bound of :func:`error_bound` for conv_transpose(x, w) by Winograd (stride 1, or
    stride phases with r x r sub-kernels), with the largest |x| of every channel and the
    largest error weight of every sub-kernel in any orientation (a valid upper bound
    whatever the phases and tiles)."""
    sy, sx = (stride, stride) if np.isscalar(stride) else stride
    r = w.shape[2] // sy
    mats = _winograd.matrices(4, r)
    a = np.abs(w).astype(np.float64)
    subs = [a[..., i::sy, j::sx] for i in range(sy) for j in range(sx)]
    weights = np.max([mats.error_weights(np.flip(sub, axes)) for sub in subs
                      for axes in ((), (2,), (3,), (2, 3))], axis=0)     # (C_in, C_out / g)
    cin_g = x.shape[1] // groups
    weights = weights.reshape(groups, cin_g, -1).transpose(0, 2, 1).reshape(-1, cin_g)
    window_max = np.abs(x).astype(np.float64).max(axis=(2, 3))[..., None, None]
    return _bound(window_max, weights, cin_g, dtype, 4, r)


def assert_within_bound(y, expected, bound):
    """|y - expected| <= bound elementwise, with the worst ratio in the message."""
    error = np.abs(y.astype(np.float64) - expected)
    assert y.shape == expected.shape
    ratio = float(np.max(error / bound))
    assert ratio <= 1, f"error {ratio:.3g} x the guaranteed bound"


def conv_winograd(x, w, bias=None, **kw):
    with _dispatch.forced_algorithm("winograd"):
        return fastdeconv.conv(x, w, bias, **kw)


@pytest.fixture
def small_passes(replace_budget):
    """Passes of a few tiles, so that small problems take several passes."""
    replace_budget(winograd_chunk=3)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_matches_the_reference_within_the_guaranteed_bound(x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("forward", problem, np.dtype(dtype).itemsize).algorithm == "winograd"
    y = conv_winograd(x, w, **kw)
    assert y.dtype == dtype
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), **kw)
    assert_within_bound(y, expected, error_bound(x, w, dtype, **kw))


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
def test_winograd_agrees_with_im2col_over_several_passes(x_shape, w_shape, kw, rng, small_passes):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv(x, w, **kw)
    y = conv_winograd(x, w, **kw)
    # im2col's own error: at most gamma_{9 C_g} conv(|x|, |w|), below the Winograd bound
    assert_within_bound(y, direct.astype(np.float64), 2 * error_bound(x, w, np.float32, **kw))
    assert np.array_equal(y, conv_winograd(x, w, **kw))   # deterministic


@pytest.mark.parametrize("output_tile", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_output_tile_sizes_match_the_reference(output_tile, dtype, rng, replace_budget):
    replace_budget(winograd_output_tile=output_tile)
    for x_shape, w_shape, kw in GEOMETRIES[2:6] + GEOMETRIES[9:12]:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        with _dispatch.forced_algorithm("winograd"):
            the_plan = _dispatch.plan("forward", conv_problem(x_shape, w_shape, **kw),
                                      np.dtype(dtype).itemsize)
        assert (the_plan.algorithm, the_plan.output_tile) == ("winograd", output_tile)
        y = conv_winograd(x, w, **kw)
        expected = conv_reference(x.astype(np.float64), w.astype(np.float64), **kw)
        assert_within_bound(y, expected, error_bound(x, w, dtype, m=output_tile, **kw))


def test_float32_error_on_a_resnet_layer_is_within_the_bound(rng):
    x = rng.standard_normal((2, 64, 28, 28)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    y = conv_winograd(x, w, padding=1)
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert_within_bound(y, expected, error_bound(x, w, np.float32, padding=1))


#: Geometries where float32 errors on random data were largest: one input channel (no sum
#: over channels averages the rounding), dilation 3, asymmetric padding; valid 6x6 (one tile)
WORST_GEOMETRIES = [
    ((1, 1, 40, 37), (1, 1, 3, 3), dict(padding=((0, 7), (9, 0)), dilation=3)),
    ((8, 1, 23, 29), (1, 1, 3, 3), dict(padding=((3, 0), (0, 5)), dilation=(3, 2))),
    ((3, 2, 31, 31), (3, 2, 3, 3), dict(padding=1, dilation=3)),
    ((16, 1, 6, 6), (1, 1, 3, 3), {}),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", WORST_GEOMETRIES)
@pytest.mark.parametrize("data", ["normal", "log-uniform", "signs"])
def test_few_channels_dilation_and_adversarial_data_stay_within_the_bound(x_shape, w_shape, kw, data, rng):
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("forward", problem, 4).algorithm == "winograd"
    if data == "normal":
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    elif data == "log-uniform":   # magnitudes over 6 decades: large and tiny inputs share tiles
        x = rng.choice([-1, 1], x_shape) * 10.0 ** rng.uniform(-3, 3, x_shape)
        w = rng.choice([-1, 1], w_shape) * 10.0 ** rng.uniform(-3, 3, w_shape)
    else:   # equal magnitudes, random signs: the largest sums through the transforms
        x = rng.choice([-1, 1], x_shape) * rng.uniform(0.5, 1, x_shape)
        w = rng.choice([-1, 1], w_shape) * rng.uniform(0.5, 1, w_shape)
    x, w = x.astype(np.float32), w.astype(np.float32)
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), **kw)
    assert_within_bound(conv_winograd(x, w, **kw), expected, error_bound(x, w, np.float32, **kw))


def test_outputs_whose_receptive_field_is_all_padding_share_their_tiles_rounding(rng):
    """The bound is per tile: outputs 0 and 1 of each row and column read only zero padding
    (exactly 0 in a direct convolution) but share tiles with outputs that read the input."""
    x = rng.standard_normal((1, 1, 6, 6)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    y = conv_winograd(x, w, padding=4)
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), padding=4)
    assert np.all(expected[..., :2, :] == 0) and np.all(expected[..., :, :2] == 0)
    bound = error_bound(x, w, np.float32, padding=4)
    assert np.all(bound[..., :2, :] > 0)
    assert_within_bound(y, expected, bound)
    assert np.any(y[..., :2, :] != 0)   # rounding noise of the tile, not an exact zero


def test_the_bound_terms_come_from_the_transform_matrices(rng):
    """max(C |g| C^T) bounds the exact elementwise sum |A^T| ((|G||g||G^T|) * (|B^T||d||B|)) |A|
    for |d| <= 1, reaches it for d = 1 and g = 1, and the documented factors per point set."""
    for m, r in ((4, 3), (2, 3), (4, 2)):
        mats = _winograd.matrices(m, r)
        at, g_abs, bt = np.abs(mats.AT), np.abs(mats.G), np.abs(mats.BT)
        for trial in range(6):
            g = np.ones((r, r)) if trial == 0 else np.abs(rng.standard_normal((r, r)))
            d = np.ones((mats.alpha, mats.alpha)) if trial == 0 else rng.uniform(0, 1, (mats.alpha,) * 2)
            exact = at @ ((g_abs @ g @ g_abs.T) * (bt @ d @ bt.T)) @ at.T
            assert exact.max() <= mats.error_weights(g) * (1 + 1e-12)
            assert mats.error_weights(g) >= g.sum()
            if (m, r) == (4, 3):   # the docs' "at most 287 sum |g|"
                assert mats.error_weights(g) <= 286.74 * g.sum()
            if trial == 0:
                assert np.isclose(exact.max(), mats.error_weights(g))
    factors = {points: _winograd.WinogradMatrices(4, 3, points).error_weights(np.ones((3, 3))) / 9
               for points in [(0, 1, -1, 2, -2), (0, 1, -1, Fraction(1, 2), Fraction(-1, 2)),
                              (0, 1, -1, 2, Fraction(-1, 2)), _winograd.POINTS[4, 3]]}
    assert np.allclose(list(factors.values()), [256, 256, 97.35, 97.35], rtol=1e-3)
    assert _winograd.matrices(4, 3).rounding_steps(1) == 30
    # the docs' 1.7e-4 of max |x| sum |w|: one channel, taps of equal magnitude, float32
    one_channel = _gamma(30, np.float32) * _winograd.matrices(4, 3).error_weights(np.ones((3, 3))) / 9
    assert round(float(one_channel), 5) == 1.7e-4
    assert _winograd.matrices(4, 2).rounding_steps(1) == 24


def test_bias_non_contiguous_and_integer_inputs_take_the_winograd_path(rng):
    x = rng.standard_normal((2, 5, 12, 9, 2))[..., 0]       # non-contiguous
    w = rng.integers(-3, 4, (4, 5, 3, 3))                    # integers compute in float64
    b = rng.standard_normal(4)
    y = conv_winograd(x, w, b, padding=1)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("forward", conv_problem(x.shape, w.shape, padding=1), 8).algorithm == "winograd"
    expected = conv_reference(x, w.astype(np.float64), padding=1) + b[:, None, None]
    # plus the rounding of the bias addition
    bound = error_bound(x, w, np.float64, padding=1) + np.finfo(np.float64).eps * np.abs(expected)
    assert_within_bound(y, expected, bound)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(stride=2, padding=1)),   # stride 2
    ((2, 3, 9, 9), (4, 3, 5, 5), dict(padding=2)),             # 5x5 kernel
    ((2, 3, 9, 9), (4, 3, 3, 1), dict(padding=1)),             # 3x1 kernel
    ((2, 3, 9), (4, 3, 3), dict(padding=1)),                   # 1-d
    ((2, 3, 5, 5, 5), (4, 3, 3, 3, 3), dict(padding=1)),       # 3-d
])
def test_forcing_winograd_where_it_does_not_apply_runs_im2col(x_shape, w_shape, kw, rng, assert_close):
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("forward", problem, 4).algorithm == "im2col"
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    assert_close(conv_winograd(x, w, **kw), conv_reference(x, w, **kw))


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=2, dilation=2), dict(padding=1, groups=4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_is_bit_identical_for_1_2_and_4_threads(kw, dtype, rng, assert_same_bits_for_thread_counts):
    x = rng.standard_normal((3, 16, 37, 41)).astype(dtype)    # about 290 tiles: several passes
    w = rng.standard_normal((32, 16 // kw.get("groups", 1), 3, 3)).astype(dtype)
    assert_same_bits_for_thread_counts(lambda: conv_winograd(x, w, **kw))


def test_the_workspace_is_bounded_whatever_the_batch():
    for batch in (1, 64, 4096):
        for channels, itemsize in ((64, 4), (64, 8), (128, 8), (256, 4)):
            problem = conv_problem((batch, channels, 56, 56), (channels, channels, 3, 3), padding=1)
            the_plan = winograd_algorithm.sized_plan(problem, current_budget(), itemsize)
            assert the_plan is not None
            assert the_plan.workspace_bytes(itemsize) <= _dispatch.WORKSPACE_BYTES
    # the transformed weight alone would not fit: no Winograd plan
    huge = conv_problem((1, 512, 56, 56), (512, 512, 3, 3), padding=1)
    assert winograd_algorithm.sized_plan(huge, current_budget(), 4) is None
    # stride phases (F(4x4, 2x2): 25 elements) of a large batch
    phases = conv_transpose_problem((4096, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)
    with _dispatch.forced_algorithm("winograd"):   # the chooser takes the engine's phases
        the_plan = _dispatch.plan("backward_input", phases, 8)
    assert the_plan.algorithm == "winograd"
    assert the_plan.workspace_bytes(8) <= _dispatch.WORKSPACE_BYTES
    assert the_plan.col_elements == 25 * 64 * 128 + 25 * 128 * the_plan.tile


def test_peak_extra_memory_of_a_large_batch_stays_within_the_workspace_bound(peak_extra_bytes):
    # 32 samples of 64x56x56 float32: the transformed tiles of the whole batch would take
    # 32 * 196 tiles * 36 * (64 + 64) * 4 bytes = 108 MiB
    x = np.zeros((32, 64, 56, 56), np.float32)   # 26 MB, lazily zeroed
    x[:, :, ::9, ::7] = 1.0
    w = np.ones((64, 64, 3, 3), np.float32)
    extra, (y,) = peak_extra_bytes(lambda: conv_winograd(x, w, padding=1))
    assert extra <= _dispatch.WORKSPACE_BYTES + 4 * 2**20, extra
    corner = x[-1:, :, :16, :16]
    expected = conv_reference(corner.astype(np.float64), w.astype(np.float64), padding=1)
    bound = error_bound(corner, w, np.float32, padding=1)
    # the 16x16 corner's first 12 rows and columns are whole tiles of the full output
    assert_within_bound(y[-1:, :, :12, :12], expected[..., :12, :12], bound[..., :12, :12])


@pytest.mark.parametrize("op", ["conv", "conv_transpose phases", "weight gradient"])
def test_the_nonfinite_fallback_does_not_hold_two_workspaces(op, peak_extra_bytes):
    """A NaN makes the call recompute directly; the Winograd workspace is given back first, so
    the peak is that of a finite input (here Winograd's 15.8 or 15.0 MiB and the direct
    algorithm's 0.7 or 1.6 MiB together would exceed WORKSPACE_BYTES)."""
    if op == "conv":
        x = np.zeros((1, 335, 8, 8), np.float32)
        w = np.ones((335, 335, 3, 3), np.float32)
        kw, problem = dict(padding=1), conv_problem(x.shape, w.shape, padding=1)
        pass_name, run, direct_algorithm = "forward", fastdeconv.conv, "im2col"
    elif op == "weight gradient":
        x = np.zeros((1, 335, 8, 8), np.float32)
        w = np.ones((335, 335, 3, 3), np.float32)
        gy = np.ones_like(x)
        kw, problem = dict(padding=1), conv_problem(x.shape, w.shape, padding=1)
        pass_name, direct_algorithm = "backward_weight", "im2col"

        def run(x, w, **kw):
            return fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    else:
        x = np.zeros((1, 396, 8, 8), np.float32)
        w = np.ones((396, 396, 4, 4), np.float32)
        kw = dict(stride=2, padding=1)
        problem = conv_transpose_problem(x.shape, w.shape, **kw)
        pass_name, run, direct_algorithm = "backward_input", fastdeconv.conv_transpose, "col2im"
    with _dispatch.forced_algorithm("winograd"):
        winograd = _dispatch.plan(pass_name, problem, 4)
    with _dispatch.forced_algorithm(direct_algorithm):
        direct = _dispatch.plan(pass_name, problem, 4)
    assert winograd.algorithm == "winograd"
    both = winograd.workspace_bytes(4) + direct.workspace_bytes(4)
    assert max(winograd.workspace_bytes(4), direct.workspace_bytes(4)) <= _dispatch.WORKSPACE_BYTES < both
    with _dispatch.forced_algorithm("winograd"):
        finite_peak, _ = peak_extra_bytes(lambda: run(x, w, **kw))
        x[0, 3, 5, 7] = np.nan
        nan_peak, (y,) = peak_extra_bytes(lambda: run(x, w, **kw))
    assert nan_peak <= finite_peak + 2**18, (nan_peak, finite_peak)
    if op != "conv_transpose phases":   # the phases also hold their rearranged weights
        # the workspaces are one block of the scratch pool: rounded up to 2 MiB and aligned
        assert finite_peak <= _dispatch.WORKSPACE_BYTES + SLACK_PER_BLOCK + 2**18, finite_peak
    with _dispatch.forced_algorithm(direct_algorithm):
        np.testing.assert_array_equal(y, run(x, w, **kw))


def test_the_channel_limit_quoted_in_the_docs():
    """U (36 C^2) plus V and M of a chunk (36 x 2C x min(64, tiles)) fit WORKSPACE_BYTES
    for C_in = C_out = C up to: 283 (float32) and 185 (float64) channels with 64 tiles or
    more, 295 / 197 for 28x28 (49 tiles), 325 / 225 for 14x14, 337 / 237 for 7x7 (4 tiles)."""
    for (n, h), limits in {(8, 56): (283, 185), (1, 28): (295, 197), (1, 14): (325, 225),
                           (1, 7): (337, 237)}.items():
        for itemsize, c in zip((4, 8), limits):
            fits = conv_problem((n, c, h, h), (c, c, 3, 3), padding=1)
            too_many = conv_problem((n, c + 1, h, h), (c + 1, c + 1, 3, 3), padding=1)
            assert winograd_algorithm.sized_plan(fits, current_budget(), itemsize) is not None
            assert winograd_algorithm.sized_plan(too_many, current_budget(), itemsize) is None
            with _dispatch.forced_algorithm("winograd"):
                assert _dispatch.plan("forward", fits, itemsize).algorithm == "winograd"
                assert _dispatch.plan("forward", too_many, itemsize).algorithm == "im2col"


@pytest.mark.parametrize("m", [2, 4])
def test_transform_matrices_compute_the_correlation_exactly(m, rng):
    mats = _winograd.matrices(m)
    at, g, bt = mats.exact["AT"], mats.exact["G"], mats.exact["BT"]
    for _ in range(5):
        taps = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
        data = [Fraction(int(v)) for v in rng.integers(-9, 10, mats.alpha)]
        gg = [sum(row[k] * taps[k] for k in range(3)) for row in g]
        dd = [sum(row[k] * data[k] for k in range(mats.alpha)) for row in bt]
        y = [sum(row[e] * gg[e] * dd[e] for e in range(mats.alpha)) for row in at]
        assert y == [sum(taps[k] * data[i + k] for k in range(3)) for i in range(m)]
    # the coefficients of the data transforms are exact in floating point (integer B^T,
    # powers of two in A^T); their sums of products still round
    assert all(v.denominator == 1 for row in bt for v in row)
    assert all(v.denominator & (v.denominator - 1) == 0 for row in at for v in row)


def test_transform_matrices_reject_repeated_points():
    with pytest.raises(ValueError, match="distinct"):
        _winograd.WinogradMatrices(2, 3, (0, 1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_inputs_and_overflow_give_the_direct_results(dtype, rng):
    x = rng.standard_normal((2, 8, 13, 11)).astype(dtype)
    w = rng.standard_normal((8, 8, 3, 3)).astype(dtype)
    x[0, 1, 4, 5], x[1, 2, 0, 0], x[1, 3, 7, 7] = np.nan, np.inf, -np.inf
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv(x, w, padding=1)
    np.testing.assert_array_equal(conv_winograd(x, w, padding=1), direct)
    # finite inputs whose transforms overflow: the direct sums stay finite
    big = np.full((1, 8, 8, 8), np.finfo(dtype).max / 4, dtype)
    big[..., ::2] *= -1
    ones = np.ones((8, 8, 3, 3), dtype) / 72
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv(big, ones, padding=1)
    assert np.isfinite(direct).all()
    np.testing.assert_array_equal(conv_winograd(big, ones, padding=1), direct)


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", [
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 4, "winograd"),        # resnet_3x3
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 8, "winograd"),
    ((4, 64, 64, 64), (64, 64, 3, 3), dict(padding=2, dilation=2), 4, "winograd"),   # dilated_3x3
    ((4, 64, 64, 64), (64, 64, 3, 3), dict(padding=3, dilation=3), 4, "winograd"),   # tiles 1.27x
    ((4, 64, 32, 32), (64, 64, 3, 3), dict(padding=32, dilation=32), 4, "im2col"),   # 1 output a tile
    ((4, 64, 32, 32), (64, 64, 3, 3), dict(padding=32, dilation=32), 8, "im2col"),
    ((8, 64, 60, 60), (64, 64, 3, 3), dict(padding=12, dilation=12), 4, "im2col"),   # tiles 2.56x
    ((8, 16, 28, 28), (16, 16, 3, 3), dict(padding=1), 4, "winograd"),
    ((1, 16, 28, 28), (16, 16, 3, 3), dict(padding=1), 8, "im2col"),         # float64: too little work
    ((1, 3, 224, 224), (64, 3, 3, 3), dict(padding=1), 4, "im2col"),         # 3 input channels
    ((1, 128, 7, 7), (128, 128, 3, 3), dict(padding=1), 4, "im2col"),        # 4 tiles
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "im2col"),
    ((8, 64, 56, 56), (64, 64, 5, 5), dict(padding=2), 4, "im2col"),
    ((8, 64, 56, 56), (64, 2, 3, 3), dict(padding=1, groups=32), 4, "im2col"),  # 2 per group
    ((1, 512, 14, 14), (512, 512, 3, 3), dict(padding=1), 4, "im2col"),      # U > workspace
])
def test_dispatch_picks_winograd_only_where_it_measurably_wins(x_shape, w_shape, kw, itemsize, expected, replace_budget):
    # Winograd's rule against im2col alone: the packed engine (whose rule is tested in
    # test_packed_conv.py) is never chosen here
    replace_budget(packed_min_work=((4, float("inf")), (8, float("inf"))))
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("forward", problem, itemsize).algorithm == expected
    with _dispatch.forced_algorithm("winograd"):   # Winograd could run: the rule decided
        usable = _dispatch.plan("forward", problem, itemsize).algorithm == "winograd"
    assert usable or expected == "im2col"


#: stride-1 transposed convolutions (x shape, weight (C_in, C_out / groups, 3, 3), keywords)
TRANSPOSE_GEOMETRIES = [
    ((2, 3, 9, 11), (3, 5, 3, 3), dict(padding=1)),
    ((1, 4, 7, 6), (4, 6, 3, 3), {}),                                       # output 9x8
    ((2, 4, 9, 9), (4, 3, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((2, 4, 9, 10), (4, 3, 3, 3), dict(padding=((2, 0), (1, 1)))),
    ((3, 5, 8, 7), (5, 4, 3, 3), dict(padding="same")),
    ((2, 4, 9, 9), (4, 3, 3, 3), dict(padding=1, output_padding=1, dilation=2)),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 3, 9, 9), (3, 4, 3, 3), dict(stride=2, padding=1)),
    ((2, 3, 9, 9), (3, 4, 3, 3), dict(padding=3)),              # padding beyond the kernel
    ((2, 3, 9, 9), (3, 4, 4, 4), dict(padding=1)),
])
def test_forcing_winograd_on_other_transposed_convolutions_runs_col2im(x_shape, w_shape, kw):
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_input", conv_transpose_problem(x_shape, w_shape, **kw), 4).algorithm == "col2im"


def test_input_gradient_of_a_resnet_layer_takes_winograd(rng):
    assert _dispatch.plan("backward_input", conv_transpose_problem(
        (8, 64, 56, 56), (64, 64, 3, 3), padding=1), 4).algorithm == "winograd"
    x = rng.standard_normal((4, 32, 20, 20))
    w = rng.standard_normal((32, 32, 3, 3))
    gy = rng.standard_normal((4, 32, 20, 20))
    # the problem computed below (float64): the dispatcher's own choice, nothing forced
    assert _dispatch.plan("backward_input", conv_transpose_problem(
        gy.shape, w.shape, padding=1), 8).algorithm == "winograd"
    grad_x = fastdeconv.conv_backward(gy, x, w, padding=1, grads=("x",))[0]
    expected = conv_backward_reference(x, w, gy, padding=1)[0]
    assert_within_bound(grad_x, expected, transpose_error_bound(gy, w, np.float64))


#: transposed convolutions whose stride phases all have 2x2 sub-kernels (kernel = 2 x stride)
PHASE_GEOMETRIES = [
    ((3, 4, 5, 4), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ((2, 3, 9, 11), (3, 5, 4, 4), dict(stride=2, padding=1)),
    ((1, 4, 7, 6), (4, 6, 4, 4), dict(stride=2)),
    ((2, 4, 9, 9), (4, 3, 4, 4), dict(stride=2, padding=1, groups=2)),
    ((2, 4, 5, 6), (4, 3, 6, 6), dict(stride=3, padding=2, output_padding=1)),
    ((2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=3)),             # negative phase padding
    ((2, 4, 6, 5), (4, 3, 4, 6), dict(stride=(2, 3), padding=((1, 0), (2, 1)))),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", TRANSPOSE_GEOMETRIES + PHASE_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose_by_winograd_matches_the_reference(x_shape, w_shape, kw, dtype, rng, small_passes):
    """Stride 1 (a forward Winograd convolution) and stride phases with 2x2 sub-kernels."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    itemsize = np.dtype(dtype).itemsize
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_input", conv_transpose_problem(x_shape, w_shape, **kw), itemsize).algorithm == "winograd"
        y = fastdeconv.conv_transpose(x, w, **kw)
    expected = conv_transpose_reference(x.astype(np.float64), w.astype(np.float64), **kw)
    bound = transpose_error_bound(x, w, dtype, stride=kw.get("stride", 1),
                                  groups=kw.get("groups", 1))
    assert_within_bound(y, expected, bound)


def test_stride_phases_with_nonfinite_input_give_the_col2im_result(rng):
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    x[0, 0, 4, 4], x[1, 3, 0, 8] = np.nan, np.inf
    with _dispatch.forced_algorithm("col2im"):
        direct = fastdeconv.conv_transpose(x, w, stride=2, padding=1)
    with _dispatch.forced_algorithm("winograd"):
        np.testing.assert_array_equal(fastdeconv.conv_transpose(x, w, stride=2, padding=1), direct)


def test_stride_phases_are_bit_identical_for_1_2_and_4_threads(rng, assert_same_bits_for_thread_counts):
    x = rng.standard_normal((4, 32, 17, 15)).astype(np.float32)
    w = rng.standard_normal((32, 16, 4, 4)).astype(np.float32)
    with _dispatch.forced_algorithm("winograd"):
        assert_same_bits_for_thread_counts(
            lambda: fastdeconv.conv_transpose(x, w, stride=2, padding=1))


@pytest.mark.parametrize("x_shape, w_shape, kw, expected", [
    ((16, 128, 16, 16), (128, 64, 4, 4), dict(stride=2, padding=1), "packed_phases"),  # dcgan_g4
    ((16, 512, 4, 4), (512, 256, 4, 4), dict(stride=2, padding=1),
     "packed_col2im"),                         # dcgan_g2: 16 tiles, the engine's col2im
    ((16, 64, 32, 32), (64, 3, 4, 4), dict(stride=2, padding=1), "col2im"),  # 3 channels
    ((4, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1, output_padding=1),
     "packed_phases"),
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "winograd"),  # stride 1
    ((1, 64, 32, 32), (64, 32, 4, 4), dict(stride=2, padding=1), "packed_phases"),  # 64 tiles
    ((4, 256, 16, 16), (256, 128, 4, 4), dict(stride=2, padding=1), "packed_phases"),
    ((16, 32, 32, 32), (32, 16, 4, 4), dict(stride=2, padding=1), "packed_phases"),  # 16 ch.
    ((4, 256, 8, 8), (256, 128, 4, 4), dict(stride=2, padding=1), "packed_phases"),  # 16 tiles
    # sub-pixel's rule would take these before the engine: Winograd keeps them
    ((4, 64, 16, 16), (64, 64, 9, 9), dict(stride=3), "winograd"),
    ((4, 64, 16, 16), (64, 64, 8, 8), dict(stride=4), "winograd"),
    # stride 5: beyond the engine's phases (packed_phases_max_stride)
    ((2, 64, 40, 40), (64, 64, 10, 10), dict(stride=5), "winograd"),
])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_dispatch_picks_the_stride_phase_algorithm_in_both_dtypes(x_shape, w_shape, kw,
                                                                  expected, itemsize):
    """Where Winograd declines, the next rule decides (the packed engine's phases or col2im);
    Winograd's stride phases defer to the engine's wherever the chooser would give the case to
    them (measured faster on every float32 shape Winograd took, and on 10 of 11 in float64,
    the other at 0.95x), in both dtypes."""
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_input", problem, itemsize).algorithm == expected


def test_winograd_stride_phases_keep_float32_where_the_engine_declines(replace_budget):
    """With the engine's phases out of reach, the float32 rule is Winograd's own again."""
    problem = conv_transpose_problem((16, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)
    replace_budget(packed_phases_min_rows=10**9)
    assert _dispatch.plan("backward_input", problem, 4).algorithm == "winograd"


def test_a_large_dilation_keeps_transposed_convolutions_off_winograd():
    """The stride-1 transposed convolution follows the forward rule, tile ratio included."""
    problem = conv_transpose_problem((4, 64, 32, 32), (64, 64, 3, 3), padding=32, dilation=32)
    as_forward = problem.transpose_as_forward()
    tiles = problem.batch * winograd_algorithm.tiles(as_forward, 4)
    assert tiles == problem.batch * as_forward.geometry.output_numel   # one real output a tile
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_input", problem, 4).algorithm == "winograd"
    for itemsize in (4, 8):
        assert _dispatch.plan("backward_input", problem, itemsize).algorithm != "winograd"
    dilated = conv_transpose_problem((4, 64, 64, 64), (64, 64, 3, 3), padding=2, dilation=2)
    assert _dispatch.plan("backward_input", dilated, 4).algorithm == "winograd"


# ------------------------------------------------------------------ weight gradient
_NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                 "circular": "wrap"}


def weight_grad_error_bound(x, gy, w_shape, dtype, m=4, **kw):
    """Guaranteed bound of |winograd dW - exact| for every weight-gradient element
    (fastdeconv._winograd's docstring): gamma_k |G^T| (sum over tiles of (|A| |gy_t| |A^T|)
    * (|B^T| |d_t| |B|)) |G|, with the tiles of every dilation phase as the kernel cuts them,
    plus the rounding of the float64 reference (at most gamma_{T m^2 + 2} times the sums of
    |gy| |x|, which the first sum bounds: with |gy| and |x| the abs transforms compute them
    exactly, and taking absolute values of the matrices only adds)."""
    geometry = conv_problem(x.shape, w_shape, **kw).geometry
    groups = kw.get("groups", 1)
    r = w_shape[2]
    alpha = m + r - 1
    mats = _winograd.matrices(m, r)
    abs_a, abs_bt, abs_g = np.abs(mats.AT.T), np.abs(mats.BT), np.abs(mats.G)
    xp = np.pad(np.abs(x).astype(np.float64), ((0, 0), (0, 0)) + geometry.padding,
                mode=_NP_PAD_MODES[kw.get("padding_mode", "zeros")])
    gy = np.abs(gy).astype(np.float64)
    (dy, dx), (oh, ow) = geometry.dilation, geometry.output_size
    th, tw = -(-(-(-oh // dy)) // m), -(-(-(-ow // dx)) // m)
    n, c_in, c_out = x.shape[0], x.shape[1], w_shape[0]
    total = np.zeros((w_shape[0], w_shape[1], r, r))
    for py in range(dy):
        for px in range(dx):
            g_sub = np.zeros((n, c_out, th * m, tw * m))
            sub = gy[:, :, py::dy, px::dx]
            g_sub[:, :, :sub.shape[2], :sub.shape[3]] = sub
            x_sub = np.zeros((n, c_in, th * m + r - 1, tw * m + r - 1))
            sub = xp[:, :, py::dy, px::dx][:, :, :th * m + r - 1, :tw * m + r - 1]
            x_sub[:, :, :sub.shape[2], :sub.shape[3]] = sub
            d = sliding_window_view(x_sub, (alpha, alpha), axis=(2, 3))[:, :, ::m, ::m]
            t = g_sub.reshape(n, c_out, th, m, tw, m).transpose(0, 1, 2, 4, 3, 5)
            v = np.einsum("ai,nctuij,bj->abctun", abs_bt, d, abs_bt).reshape(alpha**2, c_in, -1)
            w = np.einsum("ai,nktuij,bj->abktun", abs_a, t, abs_a).reshape(alpha**2, c_out, -1)
            for grp in range(groups):
                ks = slice(grp * c_out // groups, (grp + 1) * c_out // groups)
                cs = slice(grp * c_in // groups, (grp + 1) * c_in // groups)
                s = (w[:, ks] @ v[:, cs].transpose(0, 2, 1)).reshape(alpha, alpha, -1,
                                                                     c_in // groups)
                total[ks] += np.einsum("ai,abkc,bj->kcij", abs_g, s, abs_g)
    tiles = n * dy * dx * th * tw
    k = mats.weight_grad_rounding_steps(tiles)
    return (_gamma(k, dtype) + _gamma(tiles * m * m + 2, np.float64)) * total


def winograd_weight_grad(gy, x, w, **kw):
    with _dispatch.forced_algorithm("winograd"):
        return fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]


def _weight_grad_case(x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(fastdeconv.conv(x, w, **kw).shape).astype(dtype)
    return x, w, gy


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_by_winograd_matches_the_reference_within_the_bound(x_shape, w_shape, kw, dtype, rng):
    x, w, gy = _weight_grad_case(x_shape, w_shape, kw, dtype, rng)
    problem = conv_problem(x_shape, w_shape, **{k: v for k, v in kw.items() if k != "padding_mode"})
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_weight", problem, x.itemsize).algorithm == "winograd"
    got = winograd_weight_grad(gy, x, w, **kw)
    assert got.dtype == dtype
    expected = conv_backward_reference(x, w, gy, **kw)[1]
    assert_within_bound(got, expected, weight_grad_error_bound(x, gy, w.shape, dtype, **kw))


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES[2::3])
def test_weight_gradient_by_winograd_over_several_passes_agrees_with_im2col(x_shape, w_shape, kw, rng, small_passes):
    x, w, gy = _weight_grad_case(x_shape, w_shape, kw, np.float64, rng)
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    np.testing.assert_allclose(winograd_weight_grad(gy, x, w, **kw), direct, rtol=1e-11,
                               atol=1e-11 * np.abs(direct).max())


def test_weight_gradient_float32_error_of_a_resnet_layer_is_within_a_useful_bound(rng):
    """Measured error against the bound, and the bound against the gradient: not vacuous."""
    x, w, gy = _weight_grad_case((4, 32, 28, 28), (32, 32, 3, 3), dict(padding=1),
                                 np.float32, rng)
    problem = conv_problem(x.shape, w.shape, padding=1)
    assert _dispatch.plan("backward_weight", problem, 4).algorithm == "winograd"   # default
    got = fastdeconv.conv_backward(gy, x, w, padding=1, grads="weight")[1]
    expected = conv_backward_reference(x, w, gy, padding=1)[1]
    bound = weight_grad_error_bound(x, gy, w.shape, np.float32, padding=1)
    assert_within_bound(got, expected, bound)
    # not vacuous: a small fraction of every element's scale (its sum of |gy| |x|; measured
    # 1.2e-3) and of the gradient (1.2e-2 of max |dW|; the error is 1.7e-6 of it, im2col's
    # 4e-7: the bound's gamma_k grows with the tiles summed, the error like their root)
    scale = conv_backward_reference(np.abs(x), np.abs(w), np.abs(gy), padding=1)[1]
    assert np.max(bound / scale) < 5e-3
    assert np.max(bound) < 0.05 * np.max(np.abs(expected))


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=2, dilation=2), dict(padding=1, groups=4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_by_winograd_is_bit_identical_for_1_2_and_4_threads(kw, dtype, rng, assert_same_bits_for_thread_counts):
    x, w, gy = _weight_grad_case((3, 16, 37, 41), (32, 16 // kw.get("groups", 1), 3, 3), kw,
                                 dtype, rng)   # about 290 tiles: several passes
    assert_same_bits_for_thread_counts(lambda: winograd_weight_grad(gy, x, w, **kw))


def test_weight_gradient_workspace_is_bounded_whatever_the_batch(peak_extra_bytes):
    for batch in (1, 64, 4096):
        for channels, itemsize in ((64, 4), (64, 8), (128, 8), (256, 4)):
            problem = conv_problem((batch, channels, 56, 56), (channels, channels, 3, 3), padding=1)
            the_plan = _dispatch.plan("backward_weight", problem, itemsize)
            assert the_plan.algorithm == "winograd"
            assert the_plan.workspace_bytes(itemsize) <= _dispatch.WORKSPACE_BYTES
    x = np.zeros((32, 64, 56, 56), np.float32)   # 26 MB, lazily zeroed
    x[:, :, ::9, ::7] = 1.0
    gy = np.zeros_like(x)
    gy[:, :, ::5, ::3] = 1.0
    w = np.ones((64, 64, 3, 3), np.float32)
    extra, _ = peak_extra_bytes(lambda: winograd_weight_grad(gy, x, w, padding=1))
    assert extra <= _dispatch.WORKSPACE_BYTES + 2**18, extra


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["x", "grad_output", "overflow"])
def test_weight_gradient_with_nonfinite_inputs_is_the_im2col_result(where, dtype, rng):
    x, w, gy = _weight_grad_case((2, 8, 13, 11), (8, 8, 3, 3), dict(padding=1), dtype, rng)
    if where == "x":
        x[0, 1, 4, 5], x[1, 2, 0, 0], x[1, 3, 12, 10] = np.nan, np.inf, -np.inf
    elif where == "grad_output":
        gy[0, 1, 4, 5], gy[1, 7, 12, 10] = np.inf, np.nan
    else:   # finite inputs whose transforms overflow, finite direct sums
        x = np.full(x.shape, np.finfo(dtype).max / 4, dtype)
        x[..., ::2] *= -1
        gy = np.ones(gy.shape, dtype) / (2 * 13 * 11)
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv_backward(gy, x, w, padding=1, grads="weight")[1]
    assert np.isfinite(direct).all() == (where == "overflow")
    np.testing.assert_array_equal(winograd_weight_grad(gy, x, w, padding=1), direct)


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", [
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 4, "winograd"),        # wgrad_3x3
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 8, "winograd"),
    ((4, 64, 64, 64), (64, 64, 3, 3), dict(padding=2, dilation=2), 4, "winograd"),
    ((8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1), 8, "winograd"),
    ((8, 8, 7, 7), (8, 8, 3, 3), dict(padding=1), 4, "winograd"),            # 32 tiles
    ((1, 64, 14, 14), (64, 64, 3, 3), dict(padding=1), 4, "im2col"),        # 16 tiles
    ((1, 128, 7, 7), (128, 128, 3, 3), dict(padding=1), 8, "im2col"),       # 4 tiles
    ((8, 4, 56, 56), (4, 4, 3, 3), dict(padding=1), 4, "im2col"),           # 4 channels
    ((1, 3, 224, 224), (64, 3, 3, 3), dict(padding=1), 4, "im2col"),         # 3 input channels
    ((4, 64, 32, 32), (64, 64, 3, 3), dict(padding=32, dilation=32), 4, "im2col"),
    ((8, 64, 56, 56), (64, 2, 3, 3), dict(padding=1, groups=32), 4, "im2col"),
    ((1, 512, 14, 14), (512, 512, 3, 3), dict(padding=1), 4, "im2col"),      # dU > workspace
])
def test_dispatch_picks_winograd_for_the_weight_gradient_where_it_wins(x_shape, w_shape, kw, itemsize, expected, replace_budget):
    # Winograd's rule against im2col alone: the packed engine's weight gradient (whose rule
    # is tested in test_packed_wgrad.py) is never chosen here
    replace_budget(packed_wgrad_itemsizes=())
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_weight", problem, itemsize).algorithm == expected
    with _dispatch.forced_algorithm("winograd"):
        usable = _dispatch.plan("backward_weight", problem, itemsize).algorithm == "winograd"
    assert usable or expected == "im2col"


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 4, 9, 7), (5, 4, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 9, 7), (5, 4, 5, 5), dict(padding=2)),
    ((2, 4, 9, 7), (5, 4, 2, 2), {}),                        # 2x2: forward phases only
    ((2, 4, 9), (5, 4, 3), dict(padding=1)),
    ((2, 3, 6, 5, 4), (4, 3, 3, 3, 3), dict(padding=1)),
])
def test_forcing_winograd_on_other_weight_gradients_runs_im2col(x_shape, w_shape, kw, rng, assert_close):
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_weight", problem, 8).algorithm == "im2col"
    x, w, gy = _weight_grad_case(x_shape, w_shape, kw, np.float64, rng)
    assert_close(winograd_weight_grad(gy, x, w, **kw), conv_backward_reference(x, w, gy, **kw)[1])


# ------------------------------------------------------------------------ space to depth
#: Strided 2-d convolutions with kernel = r x stride (r = 2, 3): the ``space_to_depth``
#: algorithm of the forward pass and the weight gradient.
S2D_GEOMETRIES = [
    ((2, 4, 9, 7), (5, 4, 4, 4), dict(stride=2, padding=1)),             # DCGAN discriminator
    ((3, 4, 10, 8), (6, 2, 6, 6), dict(stride=2, padding=2, groups=2)),  # r = 3
    ((2, 3, 9, 11), (4, 3, 4, 2), dict(stride=(2, 1), padding=((1, 0), (0, 1)))),
    ((2, 3, 13, 12), (4, 3, 6, 6), dict(stride=3)),
    ((1, 2, 5, 5), (3, 2, 4, 4), dict(stride=2, padding=3)),             # tiles in the padding
    ((2, 3, 10, 10), (4, 3, 4, 4), dict(stride=2, padding=1, padding_mode="reflect")),
    ((5, 16, 19, 23), (24, 16, 4, 4), dict(stride=2, padding=1)),        # several passes
    ((1, 2, 4, 4), (1, 2, 4, 4), dict(stride=2, padding=1)),             # 2x2 output
]


def space_to_depth_reference(x, stride, pad_before, size):
    """X[n, (c * sy + ry) * sx + rx, i, j] = x[n, c, sy * i + ry - pt, sx * j + rx - pl]
    (0 outside x), by index arrays."""
    (sy, sx), (pt, pl), (hs, ws) = stride, pad_before, size
    n, c, h, w = x.shape
    out = np.zeros((n, c, sy, sx, hs, ws), x.dtype)
    for ry in range(sy):
        for rx in range(sx):
            rows, cols = sy * np.arange(hs) + ry - pt, sx * np.arange(ws) + rx - pl
            vr, vc = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
            out[:, :, ry, rx, np.flatnonzero(vr)[:, None], np.flatnonzero(vc)] = (
                x[:, :, rows[vr][:, None], cols[vc]])
    return out.reshape(n, c * sy * sx, hs, ws)


def space_to_depth_weight_reference(w, stride):
    """W[k, (c * sy + ry) * sx + rx, a, b] = w[k, c, sy * a + ry, sx * b + rx], by slices."""
    sy, sx = stride
    subs = np.stack([w[:, :, ry::sy, rx::sx] for ry in range(sy) for rx in range(sx)], axis=2)
    return subs.reshape((w.shape[0], -1) + subs.shape[3:])


def _space_to_depth_case(x_shape, w_shape, kw, dtype, rng):
    """x, w, gy, the rearranged x and w, and the problem (padding of other modes applied)."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(fastdeconv.conv(x, w, **kw).shape).astype(dtype)
    kw_zeros = {k: v for k, v in kw.items() if k != "padding_mode"}
    mode = kw.get("padding_mode", "zeros")
    xp = x
    if mode != "zeros":   # the other modes pad first, then convolve without padding
        geometry = conv_problem(x_shape, w_shape, **kw_zeros).geometry
        xp = np.pad(x, ((0, 0), (0, 0)) + geometry.padding, mode=_NP_PAD_MODES[mode])
        kw_zeros["padding"] = 0
    problem = conv_problem(xp.shape, w_shape, **kw_zeros)
    g = problem.geometry
    r = w_shape[2] // g.stride[0]
    xs = space_to_depth_reference(xp, g.stride, g.pad_before,
                                  tuple(n + r - 1 for n in g.output_size))
    ws = space_to_depth_weight_reference(w, g.stride)
    return x, w, gy, xs, ws, problem


@pytest.mark.parametrize("x_shape, w_shape, kw",
                         [case for case in S2D_GEOMETRIES if "padding_mode" not in case[2]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_space_to_depth_kernel_rearranges_the_padded_input(x_shape, w_shape, kw, dtype, rng):
    from fastdeconv._ext import _phase_kernels
    x, _, _, xs, _, problem = _space_to_depth_case(x_shape, w_shape, kw, dtype, rng)
    s2d = problem.space_to_depth()
    assert (s2d.c_in,) + s2d.geometry.input_size == xs.shape[1:]
    got = np.full(xs.size, np.nan, dtype)   # every element must be written
    _phase_kernels.space_to_depth_2d(x.reshape(-1), got, x.shape[0] * x.shape[1],
                                     *x.shape[2:], *problem.geometry.stride,
                                     *problem.geometry.pad_before, *xs.shape[2:], 2)
    np.testing.assert_array_equal(got.reshape(xs.shape), xs)


@pytest.mark.parametrize("x_shape, w_shape, kw", S2D_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_space_to_depth_conv_matches_the_reference_within_the_winograd_bound(x_shape, w_shape, kw, dtype, rng):
    x, w, _, xs, ws, problem = _space_to_depth_case(x_shape, w_shape, kw, dtype, rng)
    with _dispatch.forced_algorithm("space_to_depth"):
        assert _dispatch.plan("forward", problem, x.itemsize).algorithm == "space_to_depth"
        y = fastdeconv.conv(x, w, **kw)
    assert y.dtype == dtype
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), **kw)
    # the same convolution in the rearranged form, and its Winograd bound
    np.testing.assert_allclose(conv_reference(xs.astype(np.float64), ws.astype(np.float64),
                                              groups=kw.get("groups", 1)),
                               expected, rtol=1e-12, atol=1e-12)
    assert_within_bound(y, expected, error_bound(xs, ws, dtype, groups=kw.get("groups", 1)))


@pytest.mark.parametrize("x_shape, w_shape, kw", S2D_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_space_to_depth_weight_gradient_matches_the_reference_within_the_bound(x_shape, w_shape, kw, dtype, rng):
    x, w, gy, xs, ws, problem = _space_to_depth_case(x_shape, w_shape, kw, dtype, rng)
    with _dispatch.forced_algorithm("space_to_depth"):
        assert _dispatch.plan("backward_weight", problem, x.itemsize).algorithm == "space_to_depth"
        got = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    assert got.dtype == dtype
    expected = conv_backward_reference(x, w, gy, **kw)[1]
    groups = kw.get("groups", 1)
    bound_s2d = weight_grad_error_bound(xs, gy, ws.shape, dtype, groups=groups)
    # the bound of rearranged element (k, c', a, b) holds for the weight element it came from
    bound = np.empty(w.shape)
    sy, sx = problem.geometry.stride
    for ry in range(sy):
        for rx in range(sx):
            bound[:, :, ry::sy, rx::sx] = bound_s2d[:, ry * sx + rx::sy * sx]
    assert_within_bound(got, expected, bound)


@pytest.mark.parametrize("x_shape, w_shape, kw", S2D_GEOMETRIES[::2])
def test_space_to_depth_over_parts_of_the_batch_and_small_passes_agrees_with_im2col(x_shape, w_shape, kw, rng, small_passes, replace_budget):
    x, w, gy, xs, _, problem = _space_to_depth_case(x_shape, w_shape, kw, np.float64, rng)
    # one sample per part of the batch
    replace_budget(space_to_depth_bytes=xs[0].nbytes)
    with _dispatch.forced_algorithm("space_to_depth"):
        the_plan = _dispatch.plan("forward", problem, 8)
        assert the_plan.algorithm == "space_to_depth" and the_plan.samples_per_tile == 1
        y = fastdeconv.conv(x, w, **kw)
        gw = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    with _dispatch.forced_algorithm("im2col"):
        y_direct = fastdeconv.conv(x, w, **kw)
        gw_direct = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    np.testing.assert_allclose(y, y_direct, rtol=1e-11, atol=1e-11 * np.abs(y_direct).max())
    np.testing.assert_allclose(gw, gw_direct, rtol=1e-11, atol=1e-11 * np.abs(gw_direct).max())
    # a sample larger than the part budget: not used
    replace_budget(space_to_depth_bytes=xs[0].nbytes - 1)
    with _dispatch.forced_algorithm("space_to_depth"):
        assert _dispatch.plan("forward", problem, 8).algorithm == "im2col"
        assert _dispatch.plan("backward_weight", problem, 8).algorithm == "im2col"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_space_to_depth_is_bit_identical_for_1_2_and_4_threads(dtype, rng, replace_budget, assert_same_bits_for_thread_counts):
    kw = dict(stride=2, padding=1)
    x, w, gy, xs, _, _ = _space_to_depth_case((6, 16, 37, 41), (32, 16, 4, 4), kw, dtype, rng)
    replace_budget(space_to_depth_bytes=2 * xs[0].nbytes)  # 3 parts
    with _dispatch.forced_algorithm("space_to_depth"):
        assert_same_bits_for_thread_counts(
            lambda: (fastdeconv.conv(x, w, **kw),
                     fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]),
            counts=(1, 2, 4, 2))


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 4, 9, 7), (5, 4, 3, 3), dict(stride=2, padding=1)),     # kernel not r x stride
    ((2, 4, 9, 7), (5, 4, 4, 4), dict(padding=1)),               # stride 1
    ((2, 4, 9, 9), (5, 4, 4, 4), dict(stride=2, dilation=2)),
    ((2, 4, 16, 16), (5, 4, 8, 8), dict(stride=2)),              # r = 4
    ((2, 4, 9, 7), (5, 4, 4, 6), dict(stride=2)),                # r = 2 and 3
    ((2, 4, 9), (5, 4, 4), dict(stride=2, padding=1)),           # 1-d
    ((2, 3, 6, 6, 6), (4, 3, 4, 4, 4), dict(stride=2, padding=1)),   # 3-d
])
def test_forcing_space_to_depth_where_it_does_not_apply_runs_im2col(x_shape, w_shape, kw, rng, assert_close):
    problem = conv_problem(x_shape, w_shape, **kw)
    x, w, gy = _weight_grad_case(x_shape, w_shape, kw, np.float64, rng)
    with _dispatch.forced_algorithm("space_to_depth"):
        for pass_name in ("forward", "backward_weight"):
            assert _dispatch.plan(pass_name, problem, 8).algorithm == "im2col"
        y = fastdeconv.conv(x, w, **kw)
        gw = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    assert_close(y, conv_reference(x, w, **kw))
    assert_close(gw, conv_backward_reference(x, w, gy, **kw)[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["x", "grad_output"])
def test_space_to_depth_with_nonfinite_inputs_gives_the_im2col_result(where, dtype, rng):
    kw = dict(stride=2, padding=1)
    x, w, gy = _weight_grad_case((2, 8, 14, 12), (8, 8, 4, 4), kw, dtype, rng)
    if where == "x":
        x[0, 1, 4, 5], x[1, 2, 0, 0], x[1, 3, 13, 11] = np.nan, np.inf, -np.inf
    else:
        gy[0, 1, 4, 5], gy[1, 7, 6, 5] = np.inf, np.nan
    results = {}
    for algorithm in ("im2col", "space_to_depth"):
        with _dispatch.forced_algorithm(algorithm):
            results[algorithm] = (fastdeconv.conv(x, w, **kw),
                                  fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1])
    # non-finite results (both with x, the weight gradient with grad_output) are recomputed
    compared = (0, 1) if where == "x" else (1,)
    for i in compared:
        assert not np.isfinite(results["im2col"][i]).all()
        np.testing.assert_array_equal(results["space_to_depth"][i], results["im2col"][i])


def test_space_to_depth_workspace_is_bounded_whatever_the_batch(peak_extra_bytes):
    for batch in (1, 64, 4096):
        for channels, itemsize in ((64, 4), (64, 8), (128, 4)):
            problem = conv_problem((batch, channels, 64, 64), (channels, channels, 4, 4),
                                   stride=2, padding=1)
            with _dispatch.forced_algorithm("space_to_depth"):   # the engine comes first
                the_plan = _dispatch.plan("backward_weight", problem, itemsize)
            assert the_plan.algorithm == "space_to_depth"
            assert the_plan.workspace_bytes(itemsize) <= (_dispatch.WORKSPACE_BYTES
                                                          + _dispatch.SPACE_TO_DEPTH_BYTES)
    # 32 samples of 64x64x64 float32 (32 MiB): rearranged whole it would be 36 MiB more
    x = np.zeros((32, 64, 64, 64), np.float32)   # lazily zeroed
    x[:, :, ::9, ::7] = 1.0
    w = np.ones((64, 64, 4, 4), np.float32)
    gy = np.ones((32, 64, 32, 32), np.float32)
    with _dispatch.forced_algorithm("space_to_depth"):
        extra, _ = peak_extra_bytes(lambda: fastdeconv.conv(x, w, stride=2, padding=1))
        assert extra <= _dispatch.WORKSPACE_BYTES + _dispatch.SPACE_TO_DEPTH_BYTES + 2**18
        extra, _ = peak_extra_bytes(
            lambda: fastdeconv.conv_backward(gy, x, w, stride=2, padding=1, grads="weight")[1])
        assert extra <= _dispatch.WORKSPACE_BYTES + _dispatch.SPACE_TO_DEPTH_BYTES + 2**18


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", [
    ((16, 128, 32, 32), (64, 128, 4, 4), dict(stride=2, padding=1), 4, "space_to_depth"),
    ((16, 128, 32, 32), (64, 128, 4, 4), dict(stride=2, padding=1), 8, "space_to_depth"),
    ((8, 64, 64, 64), (128, 64, 4, 4), dict(stride=2, padding=1), 4, "space_to_depth"),
    ((8, 32, 32, 32), (32, 32, 4, 4), dict(stride=2, padding=1), 8, "space_to_depth"),
    ((8, 128, 8, 8), (128, 128, 4, 4), dict(stride=2, padding=1), 4, "im2col"),  # 1 tile each
    ((1, 64, 16, 16), (64, 64, 4, 4), dict(stride=2, padding=1), 4, "im2col"),   # 4 tiles
    ((8, 4, 32, 32), (4, 4, 4, 4), dict(stride=2, padding=1), 4, "im2col"),      # 4 channels
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "im2col"),  # k3 s2
])
def test_dispatch_picks_space_to_depth_where_it_measurably_wins(x_shape, w_shape, kw, itemsize, expected, replace_budget):
    # space-to-depth's rule against im2col alone: the packed engine's weight gradient comes
    # first in the registry (its rule is tested in test_packed_wgrad.py)
    replace_budget(packed_wgrad_itemsizes=())
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_weight", problem, itemsize).algorithm == expected


@st.composite
def _space_to_depth_geometries(draw):
    """A 2-d convolution with kernel r x stride (r = 2 or 3), any zero padding, groups."""
    r = draw(st.sampled_from([2, 3]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if stride == (1, 1):
        stride = (2, stride[1])
    kernel = (r * stride[0], r * stride[1])
    padding = tuple((draw(st.integers(0, k + 1)), draw(st.integers(0, k + 1))) for k in kernel)
    size = tuple(draw(st.integers(max(1, k - p[0] - p[1]), k + 9))
                 for k, p in zip(kernel, padding))
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(st.integers(1, 3))
    return ((batch, cin_g * groups) + size, (cout_g * groups, cin_g) + kernel,
            dict(stride=stride, padding=padding, groups=groups))


@settings(deadline=None)
@given(case=_space_to_depth_geometries(), seed=st.integers(0, 2**32 - 1))
def test_space_to_depth_on_random_geometries_matches_the_reference(case, seed):
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("space_to_depth"):
        for pass_name in ("forward", "backward_weight"):
            assert _dispatch.plan(pass_name, problem, 8).algorithm == "space_to_depth"
        y = fastdeconv.conv(x, w, **kw)
        gy = rng.standard_normal(y.shape)
        gw = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    expected = conv_reference(x, w, **kw)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12 * max(1, np.abs(expected).max()))
    expected_gw = conv_backward_reference(x, w, gy, **kw)[1]
    np.testing.assert_allclose(gw, expected_gw, rtol=1e-12,
                               atol=1e-12 * max(1, np.abs(expected_gw).max()))


@pytest.mark.parametrize("pass_name", ["forward", "backward_weight"])
def test_space_to_depth_nonfinite_fallback_does_not_hold_two_workspaces(pass_name, peak_extra_bytes):
    """The rearranged part of the batch (16 MiB here) is freed before im2col recomputes."""
    x = np.zeros((128, 8, 64, 64), np.float32)
    x[:, :, ::5, ::3] = 1.0
    w = np.ones((8, 8, 4, 4), np.float32)
    gy = np.ones((128, 8, 32, 32), np.float32)
    kw = dict(stride=2, padding=1)
    problem = conv_problem(x.shape, w.shape, **kw)
    with _dispatch.forced_algorithm("space_to_depth"):
        assert _dispatch.plan(pass_name, problem, 4).algorithm == "space_to_depth"

    def run():
        if pass_name == "forward":
            return fastdeconv.conv(x, w, **kw)
        return fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]

    with _dispatch.forced_algorithm("space_to_depth"):
        finite_peak, _ = peak_extra_bytes(run)
        x[3, 2, 10, 20] = np.nan
        nan_peak, (y,) = peak_extra_bytes(run)
    assert nan_peak <= finite_peak + 2**18, (nan_peak, finite_peak)
    with _dispatch.forced_algorithm("im2col"):
        np.testing.assert_array_equal(y, run())


@pytest.mark.parametrize("x_shape, w_shape, padding", [
    ((303, 96, 6, 6), (192, 96, 6, 6), 3),     # the rearranged part is larger than x's part
    ((65, 160, 6, 6), (96, 160, 6, 6), 7),
])
def test_space_to_depth_weight_gradient_peak_memory_is_within_the_bound(x_shape, w_shape, padding, peak_extra_bytes):
    """Peak extra memory <= max(input, output, weight) + 32 MiB (the reviewer's cases: the
    weight-sized temporaries used to coexist with the part buffer)."""
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    kw = dict(stride=2, padding=padding)
    problem = conv_problem(x.shape, w.shape, **kw)
    gy = np.ones((x_shape[0], w_shape[0]) + problem.geometry.output_size, np.float32)
    with _dispatch.forced_algorithm("space_to_depth"):   # the packed engine comes first
        assert _dispatch.plan("backward_weight", problem, 4).algorithm == "space_to_depth"
        extra, (gw,) = peak_extra_bytes(
            lambda: fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1])
    assert extra <= max(x.nbytes, gy.nbytes, w.nbytes) + 32 * 2**20, extra / 2**20
    assert np.all(np.isfinite(gw))
