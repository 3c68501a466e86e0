"""fastdeconv.equivalences: both sides of every equivalence run, on random data, and agree.

Each side is a different chain of public operators (resize + conv against conv_transpose,
conv_transpose against conv + pixel_shuffle, ...), so a wrong weight rearrangement or padding
in the equivalence, or a bug in one of the operators, makes the two sides differ.
"""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import equivalences as eqs
from fastdeconv.checkerboard import constant_response

TOL = 1e-10


def _numpy_pixel_shuffle(x, r):
    """PyTorch's pixel shuffle by reshapes: channel c * r**d + phase -> phase of channel c."""
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    d = len(spatial)
    y = x.reshape((n, c // r ** d) + (r,) * d + spatial)
    order = [0, 1]
    for i in range(d):
        order += [2 + d + i, 2 + i]
    return y.transpose(order).reshape((n, c // r ** d) + tuple(s * r for s in spatial))


# ------------------------------------------------------------------------------- dilation
@pytest.mark.parametrize("dilation", [1, 2, 3, (2, 1), (1, 3)])
def test_dilated_conv_equals_conv_with_a_zero_inserted_kernel(dilation, rng):
    x = rng.standard_normal((2, 4, 13, 12))
    w = rng.standard_normal((6, 2, 3, 2))
    dense = eqs.dilate_kernel(w, dilation)
    d = (dilation,) * 2 if isinstance(dilation, int) else dilation
    assert dense.shape[2:] == tuple(di * (k - 1) + 1 for di, k in zip(d, (3, 2)))
    assert np.count_nonzero(dense) == np.count_nonzero(w)
    np.testing.assert_allclose(
        fastdeconv.conv(x, dense, stride=2, padding=((1, 2), (0, 1)), groups=2),
        fastdeconv.conv(x, w, stride=2, padding=((1, 2), (0, 1)), dilation=dilation, groups=2),
        rtol=TOL, atol=TOL)
    wt = rng.standard_normal((4, 3, 3, 2))
    xt = rng.standard_normal((1, 4, 5, 4))
    np.testing.assert_allclose(
        fastdeconv.conv_transpose(xt, eqs.dilate_kernel(wt, dilation), stride=2, padding=1),
        fastdeconv.conv_transpose(xt, wt, stride=2, padding=1, dilation=dilation),
        rtol=TOL, atol=TOL)


def test_dilate_kernel_values():
    w = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(eqs.dilate_kernel(w, (2, 3))[0, 0],
                                  [[1, 0, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]])


# ------------------------------------------------------------------------ resize then conv
RESIZE_CASES = [
    # (ndim, kernel, scale, padding, dilation, groups)
    (1, 3, 2, 1, 1, 1),
    (1, 4, 3, 0, 1, 2),
    (1, 1, 2, 1, 1, 1),            # padding beyond the full overlap: zero taps on v
    (1, 2, 2, ((3, 0),), 2, 1),
    (2, 3, 2, 1, 1, 1),
    (2, 3, (2, 3), ((1, 0), (2, 1)), (1, 2), 2),
    (2, 2, 2, "same", 1, 1),
    (2, 5, 4, 2, 1, 1),
    (3, 3, 2, 1, 1, 1),
]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("ndim, k, r, p, d, g", RESIZE_CASES)
def test_nearest_resize_conv_equals_conv_transpose_with_a_box_filtered_kernel(mode, ndim, k, r, p, d, g, rng):
    w = rng.standard_normal((2 * g, 3) + (k,) * ndim)
    x = rng.standard_normal((2, 3 * g) + (5, 4, 3)[:ndim])
    eq = eqs.resize_conv_as_conv_transpose(w, r, mode=mode, padding=p, dilation=d, groups=g)
    assert eq.max_abs_difference(x) < TOL
    # and the two sides are what they say they are
    up = fastdeconv.resize(x, scale_factor=eq["stride"], mode=mode)
    lhs = fastdeconv.conv(up, w, padding=p, dilation=d, groups=g)
    rhs = fastdeconv.conv_transpose(x, eq["weight"], stride=eq["stride"],
                                    padding=eq["padding"], groups=g)
    np.testing.assert_allclose(lhs, rhs, rtol=TOL, atol=TOL)
    # the box gives every stride phase the whole kernel: resize-conv has no checkerboard
    response = constant_response(eq["weight"], eq["stride"], groups=g)
    flat = response.reshape(response.shape[0], -1)
    np.testing.assert_allclose(flat, flat[:, :1].repeat(flat.shape[1], axis=1), atol=1e-12)


@pytest.mark.parametrize("ndim, k, r", [(1, 3, 2), (1, 2, 3), (1, 1, 4), (2, 3, 2), (2, 2, 3), (3, 2, 2)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_linear_resize_conv_equals_conv_transpose_with_a_triangle_filtered_kernel(ndim, k, r, align_corners, rng):
    w = rng.standard_normal((2, 3) + (k,) * ndim)
    x = rng.standard_normal((2, 3) + (6, 5, 4)[:ndim])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]
    eq = eqs.resize_conv_as_conv_transpose(w, r, mode=mode, align_corners=align_corners)
    assert eq.max_abs_difference(x) < TOL
    if not align_corners:
        # half-pixel: the triangle holds in the interior; the edge replication of x is what
        # the resize's clamped coordinates add at the borders
        assert eq["edge"] == (1,) * ndim
    filt = eq["filters"][0]
    assert filt.size == (2 * r - 1 if align_corners else 2 * r - r % 2)
    assert np.isclose(filt.sum(), r)                       # a triangle of area r


def test_linear_half_pixel_without_edge_replication_differs_only_at_the_borders(rng):
    w = rng.standard_normal((1, 1, 3))
    x = rng.standard_normal((1, 1, 10))
    eq = eqs.resize_conv_as_conv_transpose(w, 2, mode="linear")
    (r,), (q_b, q_a) = eq["stride"], eq["padding"][0]
    plain = fastdeconv.conv_transpose(x, eq["weight"], stride=r, padding=((q_b - r, q_a - r),))
    exact = eq.lhs(x)
    assert plain.shape == exact.shape
    diff = np.abs(plain - exact)[0, 0]
    assert diff[3:-3].max() < TOL and diff.max() > 1e-3


def test_resize_conv_kernel_is_the_box_convolved_with_the_flipped_kernel():
    w = np.array([[[1.0, 2.0, 3.0]]])
    eq = eqs.resize_conv_as_conv_transpose(w, 3)
    np.testing.assert_array_equal(eq["weight"][0, 0], np.convolve(np.ones(3), w[0, 0, ::-1]))
    assert eq["padding"] == ((2, 2),)


def test_linear_resize_conv_with_padding_is_rejected():
    with pytest.raises(ValueError, match="padding must be 0 for mode='linear'"):
        eqs.resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 2, mode="linear", padding=1)


# --------------------------------------------------------------- conv_transpose = sub-pixel
SUBPIXEL_CASES = [
    # (ndim, kernel, stride, padding, output_padding, dilation, groups)
    (2, 4, 2, 1, 0, 1, 1),          # DCGAN: 3x3 padding 1 at low resolution
    (2, 3, 2, 1, 1, 1, 1),
    (2, 3, 2, 1, 0, 1, 1),          # odd output: cropped
    (1, 5, 3, 2, 2, 1, 2),
    (1, 3, 2, 4, 0, 1, 1),          # padding of a whole period and more
    (1, 3, 2, 0, 1, 2, 1),
    (1, 2, 3, "same", 0, 1, 1),
    (2, 4, 2, ((0, 2), (3, 1)), 1, (1, 2), 2),
    (2, 1, 2, 0, 1, 1, 1),
    (3, 3, 2, 1, 1, 1, 1),
    (1, 4, 1, 1, 0, 1, 1),          # stride 1: pixel shuffle is the identity
]


@pytest.mark.parametrize("ndim, k, s, p, op, d, g", SUBPIXEL_CASES)
def test_conv_transpose_equals_low_resolution_conv_then_pixel_shuffle(ndim, k, s, p, op, d, g, rng):
    w = rng.standard_normal((2 * g, 3) + (k,) * ndim)
    x = rng.standard_normal((2, 2 * g) + (6, 5, 4)[:ndim])
    eq = eqs.conv_transpose_as_subpixel(w, s, padding=p, output_padding=op, dilation=d, groups=g)
    assert eq.max_abs_difference(x) < TOL
    # the right side by hand, with an independent pixel shuffle
    u = eq["weight"]
    assert u.shape[:2] == (3 * g * s ** ndim, 2)
    low = fastdeconv.conv(x, u, padding=eq["padding"], groups=g)
    shuffled = _numpy_pixel_shuffle(low, s)
    np.testing.assert_array_equal(fastdeconv.pixel_shuffle(low, s), shuffled)
    expected = fastdeconv.conv_transpose(x, w, stride=s, padding=p, output_padding=op,
                                         dilation=d, groups=g)
    crop = tuple(slice(0, n) for n in expected.shape[2:])
    np.testing.assert_allclose(shuffled[(slice(None),) * 2 + crop], expected, rtol=TOL, atol=TOL)
    assert tuple(a - b for a, b in zip(shuffled.shape[2:], expected.shape[2:])) == eq["crop"]


def test_dcgan_layer_is_a_3x3_sub_pixel_convolution(rng):
    w = rng.standard_normal((8, 4, 4, 4))
    eq = eqs.conv_transpose_as_subpixel(w, 2, padding=1)
    assert eq["weight"].shape == (16, 8, 3, 3)
    assert eq["padding"] == ((1, 1), (1, 1)) and eq["crop"] == (0, 0)
    # every phase uses 2x2 of the 4x4 taps: a quarter of the 3x3 kernel entries are used
    assert np.count_nonzero(eq["weight"]) == 4 * 8 * 4 * 4


@pytest.mark.parametrize("ndim, length, r, p, g", [
    (2, 3, 2, 1, 1), (1, 3, 3, 0, 1), (1, 2, 2, ((0, 1),), 2), (2, 1, 2, 0, 1),
    (2, 3, 2, ((2, 0), (0, 3)), 1), (1, 4, 2, "same", 1), (3, 2, 2, 1, 1),
])
def test_sub_pixel_convolution_equals_a_conv_transpose_and_converts_back(ndim, length, r, p, g, rng):
    c_out, c_in = 2 * g, 3 * g
    u = rng.standard_normal((c_out * r ** ndim, c_in // g) + (length,) * ndim)
    x = rng.standard_normal((2, c_in) + (5, 4, 3)[:ndim])
    eq = eqs.subpixel_as_conv_transpose(u, r, padding=p, groups=g)
    assert eq.max_abs_difference(x) < TOL
    w = eq["weight"]
    assert w.shape[:2] == (c_in, c_out // g)
    lhs = _numpy_pixel_shuffle(fastdeconv.conv(x, u, padding=p, groups=g), r)
    rhs = fastdeconv.conv_transpose(x, w, stride=r, padding=eq["padding"], groups=g)
    np.testing.assert_allclose(lhs, rhs, rtol=TOL, atol=TOL)
    # and back: the low-resolution weight and padding are recovered exactly (when the
    # padding did not need extra zero taps)
    back = eqs.conv_transpose_as_subpixel(w, r, padding=eq["padding"], groups=g)
    assert back.max_abs_difference(x) < TOL
    if isinstance(p, int) and p <= length - 1:
        np.testing.assert_array_equal(back["weight"], u)
        assert back["padding"] == ((p, p),) * ndim


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: eqs.dilate_kernel(np.ones((2, 2)), 2), ValueError, "weight must have at least 3"),
        (lambda: eqs.dilate_kernel(np.ones((1, 1, 3)), 0), ValueError, "dilation must be"),
        (lambda: eqs.dilate_kernel(np.ones((1, 1, 3), dtype=complex), 2), TypeError, "complex"),
        (lambda: eqs.resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 2, mode="cubic"),
         ValueError, "mode must be one of"),
        (lambda: eqs.resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 1.5), TypeError,
         "scale_factor must be"),
        (lambda: eqs.resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 0), ValueError,
         "scale_factor must be"),
        (lambda: eqs.resize_conv_as_conv_transpose(np.ones((1, 1, 3)), 2, align_corners=True),
         ValueError, "align_corners=True only applies"),
        (lambda: eqs.resize_conv_as_conv_transpose(np.ones((3, 1, 3)), 2, groups=2),
         ValueError, "groups=2 must divide"),
        (lambda: eqs.conv_transpose_as_subpixel(np.ones((1, 1, 3, 3)), (2, 3)), ValueError,
         "stride must be the same in every dimension"),
        (lambda: eqs.conv_transpose_as_subpixel(np.ones((1, 1, 3)), 2, output_padding=2),
         ValueError, "output_padding must be smaller"),
        (lambda: eqs.subpixel_as_conv_transpose(np.ones((3, 1, 3, 3)), 2), ValueError,
         "weight.shape\\[0\\] must be a multiple of upscale_factor"),
        (lambda: eqs.subpixel_as_conv_transpose(np.ones((4, 1, 3)), 2, groups=2.0), TypeError,
         "groups must be an int"),
        (lambda: eqs.subpixel_as_conv_transpose(np.ones((4, 1, 3)), 0), ValueError,
         "upscale_factor must be >= 1"),
    ],
)
def test_bad_arguments_name_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_an_equivalence_prints_its_statement_and_checks_shapes(rng):
    eq = eqs.conv_transpose_as_subpixel(rng.standard_normal((1, 1, 4, 4)), 2, padding=1)
    assert str(eq).startswith("conv_transpose(x, w(1, 1, 4, 4), stride=2")
    assert "pixel_shuffle(conv(x, u(4, 1, 3, 3)" in str(eq)
    broken = eqs.Equivalence("", {}, lambda x: x, lambda x: x[..., :-1])
    with pytest.raises(AssertionError, match="different shapes"):
        broken.max_abs_difference(np.zeros((1, 1, 3)))


# ----------------------------------------------------------------- PyTorch as a third party
@pytest.mark.torch
@pytest.mark.parametrize("mode, r, k, p", [("nearest", 2, 3, 1), ("nearest", 3, 2, 0),
                                           ("bilinear", 2, 3, 0), ("bilinear", 3, 3, 0)])
def test_resize_conv_side_computed_by_pytorch(torch, mode, r, k, p, rng):
    w = rng.standard_normal((3, 2, k, k))
    x = rng.standard_normal((2, 2, 5, 6))
    eq = eqs.resize_conv_as_conv_transpose(w, r, mode=mode, padding=p)
    F = torch.nn.functional
    kwargs = {} if mode == "nearest" else dict(align_corners=False)
    up = F.interpolate(torch.from_numpy(x), scale_factor=r, mode=mode, **kwargs)
    lhs = F.conv2d(up, torch.from_numpy(w), padding=p).numpy()
    np.testing.assert_allclose(eq.rhs(x), lhs, rtol=1e-10, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("k, s, p, op", [(4, 2, 1, 0), (3, 2, 1, 1), (5, 3, 2, 0), (3, 3, 0, 2)])
def test_sub_pixel_side_computed_by_pytorch(torch, k, s, p, op, rng):
    w = rng.standard_normal((4, 3, k, k))
    x = rng.standard_normal((2, 4, 5, 4))
    eq = eqs.conv_transpose_as_subpixel(w, s, padding=p, output_padding=op)
    F = torch.nn.functional
    expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=s, padding=p,
                                  output_padding=op).numpy()
    pads = eq["padding"]
    low = F.conv2d(F.pad(torch.from_numpy(x), (pads[1][0], pads[1][1], pads[0][0], pads[0][1])),
                   torch.from_numpy(eq["weight"]))
    shuffled = F.pixel_shuffle(low, s).numpy()
    crop = (slice(None), slice(None)) + tuple(slice(0, n) for n in expected.shape[2:])
    np.testing.assert_allclose(shuffled[crop], expected, rtol=1e-10, atol=1e-10)
