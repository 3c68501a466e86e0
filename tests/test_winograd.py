"""The Winograd algorithm of the forward convolution (3x3 kernels, stride 1).

Checked against the plain-NumPy reference (float64) and the im2col algorithm on many
geometries, with the documented float32 error bound; bit-identical results for 1, 2 and 4
threads; a workspace bounded whatever the batch; and the dispatcher's choice.
"""

import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch, _winograd
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

#: Float32 Winograd error bound, relative to max conv(|x|, |w|) (the size of the largest
#: sum of absolute products): 32 units of float32 rounding; measured up to 1.0e-6 (im2col:
#: 2.4e-7). The docs' performance page quotes it.
FLOAT32_BOUND = 32 * float(np.finfo(np.float32).eps)
FLOAT64_BOUND = 32 * float(np.finfo(np.float64).eps)


def _scale(x, w, kw):
    return max(float(conv_reference(np.abs(x), np.abs(w), **kw).max()), 1e-300)


def conv_winograd(x, w, bias=None, **kw):
    with _dispatch.forced_algorithm("winograd"):
        return fastdeconv.conv(x, w, bias, **kw)


@pytest.fixture
def small_passes(monkeypatch):
    """Passes of a few tiles, so that small problems take several passes."""
    monkeypatch.setattr(_dispatch, "WINOGRAD_CHUNK", 3)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_matches_the_reference_within_the_documented_bound(x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("forward", problem, np.dtype(dtype).itemsize).algorithm == "winograd"
    y = conv_winograd(x.astype(dtype), w.astype(dtype), **kw)
    assert y.dtype == dtype
    expected = conv_reference(x, w, **kw)
    bound = FLOAT32_BOUND if dtype == np.float32 else FLOAT64_BOUND
    assert np.abs(y - expected).max() <= bound * _scale(x, w, kw)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
def test_winograd_agrees_with_im2col_over_several_passes(x_shape, w_shape, kw, rng, small_passes):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    with _dispatch.forced_algorithm("im2col"):
        direct = fastdeconv.conv(x, w, **kw)
    y = conv_winograd(x, w, **kw)
    assert np.abs(y - direct).max() <= 2 * FLOAT32_BOUND * _scale(x, w, kw)
    assert np.array_equal(y, conv_winograd(x, w, **kw))   # deterministic


@pytest.mark.parametrize("output_tile", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_output_tile_sizes_match_the_reference(output_tile, dtype, rng, monkeypatch):
    monkeypatch.setattr(_dispatch, "WINOGRAD_OUTPUT_TILE", output_tile)
    for x_shape, w_shape, kw in GEOMETRIES[2:6] + GEOMETRIES[9:12]:
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        y = conv_winograd(x.astype(dtype), w.astype(dtype), **kw)
        bound = FLOAT32_BOUND if dtype == np.float32 else FLOAT64_BOUND
        assert np.abs(y - conv_reference(x, w, **kw)).max() <= bound * _scale(x, w, kw)


def test_float32_error_on_a_resnet_layer_is_within_the_bound(rng):
    x = rng.standard_normal((2, 64, 28, 28))
    w = rng.standard_normal((64, 64, 3, 3)) / 24
    y = conv_winograd(x.astype(np.float32), w.astype(np.float32), padding=1)
    error = np.abs(y - conv_reference(x, w, padding=1)).max()
    assert error <= FLOAT32_BOUND * _scale(x, w, dict(padding=1))


def test_bias_non_contiguous_and_integer_inputs_take_the_winograd_path(rng):
    x = rng.standard_normal((2, 5, 12, 9, 2))[..., 0]       # non-contiguous
    w = rng.integers(-3, 4, (4, 5, 3, 3))                    # integers compute in float64
    b = rng.standard_normal(4)
    y = conv_winograd(x, w, b, padding=1)
    expected = conv_reference(x, w.astype(np.float64), padding=1) + b[:, None, None]
    assert np.abs(y - expected).max() <= FLOAT64_BOUND * _scale(x, w, dict(padding=1)) + 1e-15


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
def test_winograd_is_bit_identical_for_1_2_and_4_threads(kw, dtype, rng):
    x = rng.standard_normal((3, 16, 37, 41)).astype(dtype)    # about 290 tiles: several passes
    w = rng.standard_normal((32, 16 // kw.get("groups", 1), 3, 3)).astype(dtype)
    results = []
    for threads in (1, 2, 4):
        previous = fastdeconv.set_num_threads(threads)
        try:
            results.append(conv_winograd(x, w, **kw))
        finally:
            fastdeconv.set_num_threads(previous)
    assert all(np.array_equal(results[0], other) for other in results[1:])


def test_the_workspace_is_bounded_whatever_the_batch():
    for batch in (1, 64, 4096):
        for channels, itemsize in ((64, 4), (64, 8), (128, 8), (256, 4)):
            problem = conv_problem((batch, channels, 56, 56), (channels, channels, 3, 3), padding=1)
            the_plan = _dispatch._winograd_plan(problem, itemsize)
            assert the_plan is not None
            assert the_plan.workspace_bytes(itemsize) <= _dispatch.WORKSPACE_BYTES
    # the transformed weight alone would not fit: no Winograd plan
    huge = conv_problem((1, 512, 56, 56), (512, 512, 3, 3), padding=1)
    assert _dispatch._winograd_plan(huge, 4) is None
    # stride phases (F(4x4, 2x2): 25 elements) of a large batch
    phases = conv_transpose_problem((4096, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)
    the_plan = _dispatch.plan("backward_input", phases, 4)
    assert the_plan.algorithm == "winograd"
    assert the_plan.workspace_bytes(4) <= _dispatch.WORKSPACE_BYTES
    assert the_plan.col_elements == 25 * 64 * 128 + 25 * 128 * the_plan.tile


def test_peak_extra_memory_of_a_large_batch_stays_within_the_workspace_bound():
    # 32 samples of 64x56x56 float32: the transformed tiles of the whole batch would take
    # 32 * 196 tiles * 36 * (64 + 64) * 4 bytes = 108 MiB
    x = np.zeros((32, 64, 56, 56), np.float32)   # 26 MB, lazily zeroed
    x[:, :, ::9, ::7] = 1.0
    w = np.ones((64, 64, 3, 3), np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = conv_winograd(x, w, padding=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - y.nbytes <= _dispatch.WORKSPACE_BYTES + 4 * 2**20, (peak, y.nbytes)
    corner = x[-1:, :, :10, :10].astype(np.float64)
    expected = conv_reference(corner, w.astype(np.float64), padding=1)[..., :9, :9]
    assert np.abs(y[-1:, :, :9, :9] - expected).max() <= FLOAT32_BOUND * 64 * 9


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
    # the data transforms are exact in floating point: integer B^T, dyadic A^T
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
    ((4, 64, 64, 64), (64, 64, 3, 3), dict(padding=2, dilation=2), 4, "winograd"),
    ((8, 16, 28, 28), (16, 16, 3, 3), dict(padding=1), 4, "winograd"),
    ((1, 16, 28, 28), (16, 16, 3, 3), dict(padding=1), 8, "im2col"),         # float64: too little work
    ((1, 3, 224, 224), (64, 3, 3, 3), dict(padding=1), 4, "im2col"),         # 3 input channels
    ((1, 128, 7, 7), (128, 128, 3, 3), dict(padding=1), 4, "im2col"),        # 4 tiles
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "im2col"),
    ((8, 64, 56, 56), (64, 64, 5, 5), dict(padding=2), 4, "im2col"),
    ((8, 64, 56, 56), (64, 2, 3, 3), dict(padding=1, groups=32), 4, "im2col"),  # 2 per group
    ((1, 512, 14, 14), (512, 512, 3, 3), dict(padding=1), 4, "im2col"),      # U > workspace
])
def test_dispatch_picks_winograd_only_where_it_measurably_wins(x_shape, w_shape, kw, itemsize, expected):
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("forward", problem, itemsize).algorithm == expected


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
    grad_x = fastdeconv.conv_backward(gy, x, w, padding=1, grads=("x",))[0]
    expected = conv_backward_reference(x, w, gy, padding=1)[0]
    assert np.abs(grad_x - expected).max() <= FLOAT64_BOUND * _scale(gy, w, dict(padding=1))


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
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    with _dispatch.forced_algorithm("winograd"):
        assert _dispatch.plan("backward_input", conv_transpose_problem(x_shape, w_shape, **kw), 4).algorithm == "winograd"
        y = fastdeconv.conv_transpose(x.astype(dtype), w.astype(dtype), **kw)
    expected = conv_transpose_reference(x, w, **kw)
    scale = max(float(conv_transpose_reference(np.abs(x), np.abs(w), **kw).max()), 1e-300)
    bound = FLOAT32_BOUND if dtype == np.float32 else FLOAT64_BOUND
    assert y.shape == expected.shape and np.abs(y - expected).max() <= bound * scale


def test_stride_phases_with_nonfinite_input_give_the_col2im_result(rng):
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    x[0, 0, 4, 4], x[1, 3, 0, 8] = np.nan, np.inf
    with _dispatch.forced_algorithm("col2im"):
        direct = fastdeconv.conv_transpose(x, w, stride=2, padding=1)
    with _dispatch.forced_algorithm("winograd"):
        np.testing.assert_array_equal(fastdeconv.conv_transpose(x, w, stride=2, padding=1), direct)


def test_stride_phases_are_bit_identical_for_1_2_and_4_threads(rng):
    x = rng.standard_normal((4, 32, 17, 15)).astype(np.float32)
    w = rng.standard_normal((32, 16, 4, 4)).astype(np.float32)
    results = []
    for threads in (1, 2, 4):
        previous = fastdeconv.set_num_threads(threads)
        try:
            with _dispatch.forced_algorithm("winograd"):
                results.append(fastdeconv.conv_transpose(x, w, stride=2, padding=1))
        finally:
            fastdeconv.set_num_threads(previous)
    assert all(np.array_equal(results[0], other) for other in results[1:])


@pytest.mark.parametrize("x_shape, w_shape, kw, expected", [
    ((16, 128, 16, 16), (128, 64, 4, 4), dict(stride=2, padding=1), "winograd"),   # dcgan_g4
    ((16, 512, 4, 4), (512, 256, 4, 4), dict(stride=2, padding=1), "col2im"),      # 16 tiles a phase
    ((16, 64, 32, 32), (64, 3, 4, 4), dict(stride=2, padding=1), "col2im"),        # 3 channels
    ((4, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1, output_padding=1), "col2im"),
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "winograd"),                # stride 1
])
def test_dispatch_picks_winograd_for_transposed_convolutions_where_it_wins(x_shape, w_shape, kw, expected):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_input", problem, 4).algorithm == expected
    # float64: stride 1 only (the stride phases tie with col2im there)
    float64 = "winograd" if kw.get("stride", 1) == 1 else ("col2im" if expected == "winograd" else expected)
    assert _dispatch.plan("backward_input", problem, 8).algorithm == float64
