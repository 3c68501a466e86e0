"""fastdeconv.conv against the plain-NumPy reference: geometry sweep, layouts, dtypes, errors."""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _conv, _dispatch
from fastdeconv._problem import conv_problem
from fastdeconv.testing import conv_reference


SPATIAL = {1: (11,), 2: (7, 6), 3: (5, 6, 4)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}


def _sweep():
    """ndim x stride x padding x dilation x groups, pruned to a representative product."""
    paddings = [0, 1, "valid", "same", "same_lower", "pairs"]
    for ndim, stride, padding, dilation, groups in itertools.product(
        (1, 2, 3), (1, 2), paddings, (1, 2), (1, 2)
    ):
        if padding == "pairs":
            padding = tuple((i % 2, (i + 1) % 3) for i in range(ndim))
        yield ndim, stride, padding, dilation, groups


@pytest.mark.parametrize("ndim, stride, padding, dilation, groups", list(_sweep()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_matches_reference_over_the_geometry_sweep(ndim, stride, padding, dilation, groups, dtype, rng, assert_close):
    x = rng.standard_normal((2, 4) + SPATIAL[ndim]).astype(dtype)
    w = rng.standard_normal((6, 4 // groups) + KERNEL[ndim]).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = fastdeconv.conv(x, w, b, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_reference(x, w, b, **kw), dtype)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_padding_modes_match_reference(mode, ndim, rng, assert_close):
    x = rng.standard_normal((2, 2) + SPATIAL[ndim])
    w = rng.standard_normal((3, 2) + KERNEL[ndim])
    padding = tuple((1 + i % 2, i % 2) for i in range(ndim))
    kw = dict(stride=2, padding=padding, padding_mode=mode)
    assert_close(fastdeconv.conv(x, w, **kw), conv_reference(x, w, **kw))


def test_conv_reflect_padding_may_reach_size_minus_one_and_circular_the_size(rng, assert_close):
    x = rng.standard_normal((1, 1, 4))
    w = rng.standard_normal((1, 1, 3))
    for mode, pad in (("reflect", 3), ("circular", 4), ("replicate", 9)):
        kw = dict(padding=pad, padding_mode=mode)
        assert_close(fastdeconv.conv(x, w, **kw), conv_reference(x, w, **kw))
    with pytest.raises(ValueError, match=r"padding_mode='reflect' needs padding smaller than the input size: spatial dimension 0 has size 4 and padding \(4, 4\)"):
        fastdeconv.conv(x, w, padding=4, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode='circular' needs padding at most the input size"):
        fastdeconv.conv(x, w, padding=5, padding_mode="circular")


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_pointwise_conv_path_matches_reference(ndim, rng, assert_close):
    x = rng.standard_normal((3, 8) + SPATIAL[ndim])
    w = rng.standard_normal((4, 8) + (1,) * ndim)
    assert_close(fastdeconv.conv(x, w), conv_reference(x, w))
    w = rng.standard_normal((4, 2) + (1,) * ndim)
    assert_close(fastdeconv.conv(x, w, groups=4), conv_reference(x, w, groups=4))


def test_depthwise_conv_matches_reference(rng, assert_close):
    x = rng.standard_normal((2, 16, 12, 12))
    w = rng.standard_normal((32, 1, 3, 3))
    kw = dict(stride=2, padding=1, groups=16)
    assert_close(fastdeconv.conv(x, w, **kw), conv_reference(x, w, **kw))


def test_conv_in_tiles_smaller_than_a_row_matches_one_tile(rng, replace_budget):
    x = rng.standard_normal((2, 3, 9, 10))
    w = rng.standard_normal((5, 3, 3, 3))
    kw = dict(stride=(1, 2), padding=1, dilation=(2, 1))
    whole = fastdeconv.conv(x, w, **kw)
    assert _conv.workspace_bytes("conv", x.shape, w.shape, dtype=x.dtype, **kw) <= _dispatch.TILE_BYTES
    problem = conv_problem(x.shape, w.shape, **kw)
    replace_budget(min_columns=1)   # else tiles never get this small
    for budget in (1, 27 * 8 * 3, 27 * 8 * 7):  # tiles of 1, 3 and 7 output positions
        replace_budget(tile_bytes=budget)
        the_plan = _dispatch.plan("forward", problem, 8)
        assert the_plan.algorithm == "im2col"
        assert (the_plan.samples_per_tile, the_plan.tile) == (1, max(1, budget // (27 * 8)))
        np.testing.assert_allclose(fastdeconv.conv(x, w, **kw), whole, rtol=1e-13, atol=1e-13)


def test_workspace_is_bounded_whatever_the_batch_size():
    big = _conv.workspace_bytes("conv", (4096, 64, 56, 56), (64, 64, 3, 3), padding=1)
    small = _conv.workspace_bytes("conv", (1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert big == small <= _dispatch.WORKSPACE_BYTES
    assert _conv.workspace_bytes("conv", (8, 64, 56, 56), (64, 64, 1, 1)) == 0


def test_empty_batch_gives_an_empty_output(rng):
    y = fastdeconv.conv(np.zeros((0, 3, 8)), rng.standard_normal((4, 3, 3)), stride=2)
    assert y.shape == (0, 4, 3)


# ----------------------------------------------------------------------------- memory layouts
def _layouts(x):
    """The same values in layouts that break naive pointer arithmetic."""
    yield "fortran", np.asfortranarray(x)
    big = np.zeros((x.shape[0], x.shape[1] * 2) + tuple(2 * n for n in x.shape[2:]))
    view = big[(slice(None), slice(None, None, 2)) + (slice(None, None, 2),) * (x.ndim - 2)]
    view[...] = x
    yield "strided", view
    flipped = np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    yield "negative-strides", flipped
    readonly = x.copy()
    readonly.flags.writeable = False
    yield "read-only", readonly
    record = np.zeros(x.shape, dtype=[("a", np.int8), ("x", np.float64)])
    record["x"] = x
    yield "byte-offset-field", record["x"]
    yield "nested-list", x.tolist()


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative-strides", "read-only", "byte-offset-field", "nested-list"])
def test_conv_gives_the_same_result_for_every_memory_layout(layout, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    expected = fastdeconv.conv(x, w, padding=1)
    xs = dict(_layouts(x))[layout]
    ws = dict(_layouts(w))[layout]
    np.testing.assert_array_equal(fastdeconv.conv(xs, ws, padding=1), expected)


def test_conv_accepts_torch_cpu_tensors(torch, rng):
    x = rng.standard_normal((1, 2, 6))
    w = rng.standard_normal((3, 2, 3))
    y = fastdeconv.conv(torch.tensor(x), torch.tensor(w))
    np.testing.assert_array_equal(y, fastdeconv.conv(x, w))


# ----------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "x_dtype, w_dtype, out_dtype",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.float16, np.float16, np.float32),
        (np.int64, np.int64, np.float64),
        (np.uint8, np.int16, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.int8, np.float32, np.float32),
    ],
)
def test_conv_dtype_policy(x_dtype, w_dtype, out_dtype, rng):
    x = rng.integers(0, 2, size=(1, 2, 5)).astype(x_dtype)
    w = rng.integers(0, 2, size=(3, 2, 2)).astype(w_dtype)
    y = fastdeconv.conv(x, w)
    assert y.dtype == out_dtype
    np.testing.assert_array_equal(y, conv_reference(x.astype(np.float64), w.astype(np.float64)))


def test_conv_rejects_complex_input():
    with pytest.raises(TypeError, match="x has complex dtype complex128"):
        fastdeconv.conv(np.zeros((1, 1, 4), dtype=complex), np.zeros((1, 1, 2)))


# ----------------------------------------------------------------------------------- errors
X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 4, 3, 3))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((np.zeros((2, 4, 8)), W), {}, ValueError, r"x must have 4 dimensions \(N, C, \*spatial\) to match a weight with 2 spatial dimensions"),
        ((X, np.zeros((6, 4))), {}, ValueError, r"weight must have at least 3 dimensions"),
        ((X, np.zeros((6, 3, 3, 3))), {}, ValueError, r"weight.shape\[1\] \* groups must equal the input channels"),
        ((X, np.zeros((6, 2, 3, 3))), {"groups": 3}, ValueError, r"groups=3 must divide both the input channels \(4\) and the output channels \(6\)"),
        ((X, np.zeros((6, 4, 3, 3))), {"groups": 0}, ValueError, r"groups must be >= 1, got 0"),
        ((X, W), {"groups": 1.0}, TypeError, r"groups must be an int, got 1.0"),
        ((X, W), {"stride": 0}, ValueError, r"stride must be an int or a tuple of 2 positive ints, got 0"),
        ((X, W), {"stride": (1, 1, 1)}, ValueError, r"stride .* got \(1, 1, 1\) of length 3"),
        ((X, W), {"dilation": -1}, ValueError, r"dilation must be an int or a tuple of 2 positive ints, got -1"),
        ((X, W), {"padding": -1}, ValueError, r"padding must be non-negative, got -1"),
        ((X, W), {"padding": "fully"}, ValueError, r"padding must be one of"),
        ((X, W), {"padding_mode": "mirror"}, ValueError, r"padding_mode must be one of \('zeros', 'reflect', 'replicate', 'circular'\), got 'mirror'"),
        ((X, np.zeros((6, 4, 9, 3))), {}, ValueError, r"kernel size is larger than the padded input in spatial dimension 0"),
        ((np.zeros((2, 4, 0, 8)), W), {}, ValueError, r"x must not have zero-size channel or spatial dimensions"),
        ((X, np.zeros((0, 4, 3, 3))), {}, ValueError, r"weight must not have zero-size dimensions"),
        ((X, W, np.zeros(5)), {}, ValueError, r"bias must have shape \(6,\) \(one per output channel\), got shape \(5,\)"),
        ((X, W, np.zeros((6, 1))), {}, ValueError, r"bias must have shape \(6,\)"),
        ((X, np.zeros((6, 4) + (1,) * 9)), {}, ValueError, r"x must have 11 dimensions"),
        ((np.zeros((2, 4) + (1,) * 9), np.zeros((6, 4) + (1,) * 9)), {}, ValueError, r"the kernels support at most 8 spatial dimensions"),
        ((X, "weight"), {}, TypeError, r"weight has unsupported dtype"),
        ((None, W), {}, TypeError, r"^x must be an array, got None$"),
        ((X, None), {}, TypeError, r"^weight must be an array, got None$"),
        ((3.0, W), {}, ValueError, r"x must have 4 dimensions .* got shape \(\)$"),
        ((X, W, 1.0), {}, ValueError, r"bias must have shape \(6,\) \(one per output channel\), got shape \(\)$"),
    ],
)
def test_conv_rejects_bad_input_naming_the_parameter(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.conv(*args, **kwargs)


def test_conv_accepts_byte_swapped_input(rng):
    x = rng.standard_normal((1, 2, 7))
    w = rng.standard_normal((3, 2, 3))
    swapped = x.astype(x.dtype.newbyteorder())
    np.testing.assert_array_equal(fastdeconv.conv(swapped, w), fastdeconv.conv(x, w))
