"""The compiled primitives on their own: im2col against nested loops, col2im as its adjoint."""

import itertools

import numpy as np
import pytest

from fastdeconv._ext import _im2col_kernels
from fastdeconv._geometry import ConvGeometry

GEOMETRIES = [
    ((7,), (3,), 1, 0, 1),
    ((9,), (2,), 3, ((2, 1),), 2),
    ((5, 6), (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 2)),
    ((4, 4), (1, 1), 1, 0, 1),
    ((6, 5), (4, 3), 3, 2, 1),
    ((4, 5, 3), (2, 3, 2), (1, 2, 2), 1, (2, 1, 1)),
    ((3, 2, 4, 3), (2, 1, 2, 2), 1, ((0, 1), (1, 0), (0, 0), (1, 1)), 1),  # 4-d
    # stride 2 and dilation 1 in the last dimension: col2im adds neighbouring taps in pairs
    ((11,), (3,), 2, 1, 1),                                   # a pair and a single tap
    ((10,), (4,), 2, ((2, 3),), 1),                           # the pair's ranges differ
    ((6, 9), (3, 5), (1, 2), ((0, 2), (3, 1)), (2, 1)),
    ((3,), (4,), 2, 3, 1),                                    # mostly padding
]


def _geometry(spec):
    size, kernel, stride, padding, dilation = spec
    return ConvGeometry.for_conv(size, kernel, stride=stride, padding=padding, dilation=dilation)


def _column_entries(channels, g):
    """(column row, column, input index) of every column entry inside the input, by explicit
    loops over channels, taps (in order) and output positions."""
    taps = list(itertools.product(*map(range, g.kernel_size)))
    outs = list(itertools.product(*map(range, g.output_size)))
    for c in range(channels):
        for ti, tap in enumerate(taps):
            for li, out in enumerate(outs):
                pos = [g.input_positions(d, out[d], tap[d]) for d in range(g.ndim)]
                if all(0 <= p < n for p, n in zip(pos, g.input_size)):
                    yield c * len(taps) + ti, li, (c, *pos)


def im2col_loops(x, g):
    """im2col by explicit loops over channels, taps and output positions."""
    col = np.zeros((x.shape[0] * g.kernel_numel, g.output_numel), dtype=x.dtype)
    for row, li, index in _column_entries(x.shape[0], g):
        col[row, li] = x[index]
    return col


def _call(fn, src, dst, channels, g, l0, l1, threads=2):
    fn(src.reshape(-1), dst.reshape(-1), channels, *g.as_kernel_args(), l0, l1, threads)


@pytest.mark.parametrize("spec", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_matches_nested_loops(spec, dtype, rng):
    g = _geometry(spec)
    x = rng.standard_normal((3,) + g.input_size).astype(dtype)
    col = np.full((3 * g.kernel_numel, g.output_numel), np.nan, dtype=dtype)
    _call(_im2col_kernels.im2col, x, col, 3, g, 0, g.output_numel)
    np.testing.assert_array_equal(col, im2col_loops(x, g))


@pytest.mark.parametrize("spec", GEOMETRIES)
def test_im2col_tiles_starting_and_ending_mid_row_match_the_full_matrix(spec, rng):
    g = _geometry(spec)
    x = rng.standard_normal((2,) + g.input_size)
    full = im2col_loops(x, g)
    bounds = sorted({0, g.output_numel, *rng.integers(0, g.output_numel + 1, size=3).tolist()})
    for l0, l1 in zip(bounds, bounds[1:]):
        col = np.full((2 * g.kernel_numel, l1 - l0), np.nan)
        _call(_im2col_kernels.im2col, x, col, 2, g, l0, l1)
        np.testing.assert_array_equal(col, full[:, l0:l1])


@pytest.mark.parametrize("spec", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_is_the_adjoint_of_im2col(spec, dtype, rng):
    g = _geometry(spec)
    x = rng.standard_normal((3,) + g.input_size).astype(dtype)
    col = rng.standard_normal((3 * g.kernel_numel, g.output_numel)).astype(dtype)
    col_x = np.empty_like(col)
    _call(_im2col_kernels.im2col, x, col_x, 3, g, 0, g.output_numel)
    x_col = np.zeros_like(x)
    _call(_im2col_kernels.col2im, col, x_col, 3, g, 0, g.output_numel)
    lhs = np.vdot(col_x.astype(np.float64), col)
    rhs = np.vdot(x.astype(np.float64), x_col)
    assert lhs == pytest.approx(rhs, rel=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("spec", GEOMETRIES)
def test_col2im_equals_the_transpose_of_the_loop_matrix(spec, rng):
    g = _geometry(spec)
    col = rng.standard_normal((2 * g.kernel_numel, g.output_numel))
    x = np.zeros((2,) + g.input_size)
    # accumulate in two tiles to exercise the tile offsets
    half = g.output_numel // 2
    _call(_im2col_kernels.col2im, np.ascontiguousarray(col[:, :half]), x, 2, g, 0, half)
    _call(_im2col_kernels.col2im, np.ascontiguousarray(col[:, half:]), x, 2, g, half, g.output_numel)
    expected = np.zeros_like(x)
    taps = list(itertools.product(*map(range, g.kernel_size)))
    outs = list(itertools.product(*map(range, g.output_size)))
    for c, (ti, tap), (li, out) in itertools.product(range(2), enumerate(taps), enumerate(outs)):
        pos = [g.input_positions(d, out[d], tap[d]) for d in range(g.ndim)]
        if all(0 <= p < n for p, n in zip(pos, g.input_size)):
            expected[(c, *pos)] += col[c * len(taps) + ti, li]
    np.testing.assert_allclose(x, expected, rtol=1e-13, atol=1e-13)


def test_col2im_is_bit_identical_for_one_and_two_threads(rng):
    g = _geometry(((40, 40), (4, 4), 2, 1, 1))
    col = rng.standard_normal((8 * g.kernel_numel, g.output_numel))
    results = []
    for threads in (1, 2):
        x = np.zeros((8,) + g.input_size)
        _call(_im2col_kernels.col2im, col, x, 8, g, 0, g.output_numel, threads)
        results.append(x)
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("spec", GEOMETRIES + [((1, 1), (1, 3), 1, ((0, 0), (2, 2)), (1, 2)), ((2,), (3,), 1, 4, 3)])
def test_im2col_writes_exactly_its_tile_even_when_taps_lie_wholly_in_the_padding(spec, rng):
    g = _geometry(spec)
    x = rng.standard_normal((2,) + g.input_size)
    width = g.output_numel
    buffer = np.full(2 * g.kernel_numel * width + 64, 7.0)  # sentinel after the tile
    col = buffer[: 2 * g.kernel_numel * width]
    _call(_im2col_kernels.im2col, x, col, 2, g, 0, width)
    assert np.all(buffer[col.size:] == 7.0), "im2col wrote past the end of its tile"
    np.testing.assert_array_equal(col.reshape(2 * g.kernel_numel, width), im2col_loops(x, g))


def col2im_loops(col, channels, g):
    """col2im by explicit loops: x[c, position of (tap, output)] += col, taps in order."""
    x = np.zeros((channels,) + g.input_size, dtype=col.dtype)
    for row, li, index in _column_entries(channels, g):
        x[index] += col[row, li]
    return x


@pytest.mark.parametrize("spec", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_equals_the_scatter_loops_bit_for_bit_in_tiles(spec, dtype, rng):
    """The same additions in the same order (taps ascending) as the loops, whole or in
    tiles that start and end mid-row."""
    g = _geometry(spec)
    col = rng.standard_normal((3 * g.kernel_numel, g.output_numel)).astype(dtype)
    expected = col2im_loops(col, 3, g)
    x = np.zeros((3,) + g.input_size, dtype=dtype)
    _call(_im2col_kernels.col2im, np.ascontiguousarray(col), x, 3, g, 0, g.output_numel)
    np.testing.assert_array_equal(x, expected)
    bounds = sorted({0, g.output_numel, *rng.integers(0, g.output_numel + 1, size=3).tolist()})
    pieces = np.zeros_like(x)
    for l0, l1 in zip(bounds, bounds[1:]):
        _call(_im2col_kernels.col2im, np.ascontiguousarray(col[:, l0:l1]), pieces, 3, g, l0, l1)
    np.testing.assert_allclose(pieces, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
