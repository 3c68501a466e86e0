"""fastdeconv.checkerboard against the transposed-convolution kernels and sparse matrices.

The overlap map is index arithmetic; its oracles are ``conv_transpose`` with all-ones data
and the row counts of ``conv_transpose_matrix``. The constant response is a sum of kernel taps
per phase; its oracle is the interior of ``conv_transpose`` of an all-ones input. ICNR's claim,
a flat response inside the image, is checked on real outputs of both layer kinds.
"""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv import checkerboard as cb
from fastdeconv.sparse import conv_transpose_matrix


def _interior(counts, period):
    """Mask of the output cells that receive as many taps as the interior of their phase."""
    full = np.zeros(counts.shape, dtype=bool)
    # a cell is interior when its count equals the largest count of its residue class
    for phase in np.ndindex(period.shape):
        index = tuple(slice(p, None, s) for p, s in zip(phase, period.shape))
        block = counts[index]
        full[index] = block == block.max()
    return full


@pytest.mark.parametrize("k, s, d", list(itertools.product([1, 2, 3, 4, 5, 7], [1, 2, 3, 4], [1, 2, 3])))
def test_period_map_counts_taps_per_residue(k, s, d):
    expected = np.zeros(s, dtype=int)
    for t in range(k):                       # brute force: tap t lands on t * d
        expected[(t * d) % s] += 1
    np.testing.assert_array_equal(cb.overlap_map(k, s, dilation=d), expected)
    assert cb.is_uniform(k, s, dilation=d) == bool(np.all(expected == expected[0]))
    if d == 1:
        assert cb.is_uniform(k, s) == (k % s == 0)
        assert set(expected.tolist()) <= {k // s, -(-k // s)}


@pytest.mark.parametrize("n, k, s, d, p, op", [
    (4, 3, 2, 1, 0, 0), (4, 3, 2, 1, 1, 1), (6, 4, 2, 1, 1, 0), (5, 5, 3, 1, 2, 2),
    (5, 3, 2, 2, ((2, 0),), 1), (3, 2, 3, 1, 0, 0), (7, 3, 1, 2, 1, 0),
])
def test_whole_map_equals_conv_transpose_of_ones_and_matrix_row_counts(n, k, s, d, p, op):
    counts = cb.overlap_map(k, s, dilation=d, input_shape=n, padding=p, output_padding=op)
    y = fastdeconv.conv_transpose(np.ones((1, 1, n)), np.ones((1, 1, k)), stride=s, padding=p,
                                  output_padding=op, dilation=d)
    np.testing.assert_array_equal(counts, y[0, 0])
    M = conv_transpose_matrix((1, n), np.ones((1, 1, k)), stride=s, padding=p,
                              output_padding=op, dilation=d)
    np.testing.assert_array_equal(counts, np.diff(M.indptr))


def test_whole_map_in_two_dimensions_is_the_outer_product():
    counts = cb.overlap_map((3, 4), (2, 2), input_shape=(4, 5), padding=1)
    y = fastdeconv.conv_transpose(np.ones((1, 1, 4, 5)), np.ones((1, 1, 3, 4)), stride=2,
                                  padding=1)
    np.testing.assert_array_equal(counts, y[0, 0])
    rows = cb.overlap_map(3, 2, input_shape=4, padding=1)
    cols = cb.overlap_map(4, 2, input_shape=5, padding=1)
    np.testing.assert_array_equal(counts, np.outer(rows, cols))


@pytest.mark.parametrize("k, s, d, g", [(3, 2, 1, 1), (4, 2, 1, 2), (5, 3, 1, 1), (3, 3, 2, 1),
                                        ((3, 4), (2, 3), 1, 1), ((2, 3), 2, (2, 1), 2)])
def test_constant_response_is_the_interior_of_conv_transpose_of_ones(k, s, d, g, rng):
    ks = (k, k) if isinstance(k, int) else k
    ss = (s, s) if isinstance(s, int) else s
    ds = (d, d) if isinstance(d, int) else d
    w = rng.standard_normal((2 * g, 3) + ks)
    y = fastdeconv.conv_transpose(np.ones((1, 2 * g, 9, 8)), w, stride=s, dilation=d, groups=g)
    response = cb.constant_response(w, s, dilation=d, groups=g)
    assert response.shape == (3 * g,) + ss
    counts = cb.overlap_map(ks, ss, dilation=ds, input_shape=(9, 8))
    inside = _interior(counts, cb.overlap_map(ks, ss, dilation=ds))
    assert inside.sum() > 0
    for co in range(3 * g):
        for pos in zip(*np.nonzero(inside)):
            phase = tuple(p % si for p, si in zip(pos, ss))    # no padding: phase = o mod s
            assert np.isclose(y[0, co][pos], response[co][phase], rtol=1e-12, atol=1e-12)


def test_checkerboard_score():
    assert cb.checkerboard_score(np.ones((2, 3, 3, 3)), 2) == 0.75       # 4 vs 1 taps
    assert cb.checkerboard_score(np.ones((2, 3, 4, 4)), 2) == 0.0
    assert cb.checkerboard_score(np.zeros((1, 1, 3)), 2) == 0.0
    w = np.array([[[1.0, -1.0]]])                     # phases: +1 and -1
    assert cb.checkerboard_score(w, 2) == 2.0
    assert cb.checkerboard_score(w, 1) == 0.0         # stride 1: one phase


@pytest.mark.parametrize("shape, r, p", [((3, 5, 4, 4), 2, 1), ((2, 3, 6, 6), 3, 0),
                                         ((4, 2, 6), 2, 2), ((2, 2, 2, 4, 4), 2, 1)])
def test_icnr_makes_conv_transpose_flat_inside_the_image(shape, r, p, rng):
    w = cb.icnr(shape, r, transpose=True, rng=rng)
    assert w.shape == shape
    assert cb.checkerboard_score(w, r) < 1e-12
    ndim = len(shape) - 2
    y = fastdeconv.conv_transpose(np.ones((1, shape[0]) + (6,) * ndim), w, stride=r, padding=p)
    margin = shape[2] - p                        # cells near the border miss some inputs
    inside = y[(slice(None), slice(None)) + (slice(margin, -margin),) * ndim]
    assert inside.size > 0
    spread = inside.max(axis=tuple(range(2, 2 + ndim))) - inside.min(axis=tuple(range(2, 2 + ndim)))
    assert spread.max() < 1e-12
    # a random initialisation of the same shape is not flat
    w0 = rng.standard_normal(shape)
    assert cb.checkerboard_score(w0, r) > 0.05


@pytest.mark.parametrize("c_out, c_in, k, r, ndim", [(3, 4, 3, 2, 2), (2, 3, 3, 3, 2), (2, 2, 3, 2, 1),
                                                     (1, 2, 3, 2, 3)])
def test_icnr_makes_sub_pixel_convolution_flat_inside_the_image(c_out, c_in, k, r, ndim, rng):
    shape = (c_out * r ** ndim, c_in) + (k,) * ndim
    w = cb.icnr(shape, r, rng=rng)
    x = np.ones((1, c_in) + (6,) * ndim)
    y = fastdeconv.pixel_shuffle(fastdeconv.conv(x, w, padding=k // 2), r)
    margin = (k // 2) * r
    inside = y[(slice(None), slice(None)) + (slice(margin, -margin),) * ndim]
    spread = np.ptp(inside.reshape(c_out, -1), axis=1)
    assert spread.max() < 1e-12
    # it is the nearest-neighbour upsampling of one low-resolution convolution
    base = w[:: r ** ndim]
    low = fastdeconv.conv(x, base, padding=k // 2)
    np.testing.assert_allclose(y, fastdeconv.resize(low, scale_factor=r, mode="nearest"),
                               rtol=1e-12, atol=1e-12)
    # the He-normal scale: variance 2 / fan_in
    big = cb.icnr((4 * 64, 16, 3, 3), 2, rng=0)
    assert abs(big.std() - np.sqrt(2 / (16 * 9))) < 0.02


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: cb.overlap_map(3, 0), ValueError, "stride must be"),
        (lambda: cb.overlap_map((3, 3), (2, 2, 2)), ValueError, "stride must be"),
        (lambda: cb.overlap_map(3, 2, padding=1), ValueError, "padding and output_padding need input_shape"),
        (lambda: cb.overlap_map(3, 2, input_shape=0), ValueError, "input_shape must be"),
        (lambda: cb.constant_response(np.ones((3, 3)), 2), ValueError, "weight must have at least 3"),
        (lambda: cb.constant_response(np.ones((3, 1, 3)), 2, groups=2), ValueError, "groups=2 must divide"),
        (lambda: cb.constant_response(np.ones((1, 1, 3), dtype=complex), 2), TypeError, "complex"),
        (lambda: cb.icnr((3, 1, 3), 2), ValueError, "weight_shape\\[0\\] = 3 must be a multiple"),
        (lambda: cb.icnr((1, 1, 3), 2, transpose=True), ValueError, "multiple of upscale_factor=2"),
        (lambda: cb.icnr((1, 1), 2), ValueError, "weight_shape must have at least 3"),
        (lambda: cb.icnr(5, 2), TypeError, "weight_shape must be a tuple"),
        (lambda: cb.icnr((4, 1, 3), 0), ValueError, "upscale_factor must be >= 1"),
        (lambda: cb.icnr((4, 1, 3), 2, base=np.ones((1, 1, 3))), ValueError, "base must have shape"),
        (lambda: cb.icnr((4, 1, 3), 2, transpose=1), TypeError, "transpose must be True or False"),
        (lambda: cb.checkerboard_score(np.array([[[1.0, np.nan, 1.0]]]), 2), ValueError, "weight must be finite"),
        (lambda: cb.checkerboard_score(np.array([[[1.0, np.inf, 1.0]]]), 2), ValueError, "weight must be finite"),
        (lambda: cb.checkerboard_score(np.full((1, 1, 3), 1e308), 2), ValueError, "sums that overflow"),
        (lambda: cb.checkerboard_score(np.array([[[1e308, -1e308, 0.0, 0.0]]]), 2), ValueError, "spread .* overflows"),  # phases 1e308 and -1e308
    ],
)
def test_bad_arguments_name_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call", [
    lambda: cb.overlap_map((3, 3), 10**6),                       # 10**12 phases
    lambda: cb.overlap_map(3, 10**12),                           # 1-d: checked before bincount
    lambda: cb.overlap_map((3, 3), 2, input_shape=(10**6, 10**6)),
])
def test_overlap_maps_that_cannot_fit_are_refused_from_their_size(call, monkeypatch):
    from fastdeconv import _validation
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: 8 * 2**30)
    with pytest.raises(MemoryError, match=r"the overlap map would need about .* GiB; only 8 GiB"):
        call()
