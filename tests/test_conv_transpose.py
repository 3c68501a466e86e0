"""fastdeconv.conv_transpose: reference (zero insertion), adjoint of conv, output_size, errors."""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._problem import conv_transpose_problem
from fastdeconv.testing import assert_adjoint, conv_transpose_reference

SPATIAL = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}
KERNEL = {1: (4,), 2: (3, 2), 3: (2, 3, 2)}


def _sweep():
    for ndim, stride, padding, dilation, groups, output_padding in itertools.product(
        (1, 2, 3), (1, 2, 3), (0, 1, "pairs", "same", "valid"), (1, 2), (1, 2), (0, 1)
    ):
        if padding == "pairs":
            padding = tuple(((i + 1) % 2, i % 3) for i in range(ndim))
        if output_padding >= max(stride, dilation) or (padding == "same" and output_padding):
            continue
        yield ndim, stride, padding, dilation, groups, output_padding


@pytest.mark.parametrize("ndim, stride, padding, dilation, groups, output_padding", list(_sweep()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose_matches_zero_insertion_reference(ndim, stride, padding, dilation, groups, output_padding, dtype, rng, assert_close):
    x = rng.standard_normal((2, 4) + SPATIAL[ndim]).astype(dtype)
    w = rng.standard_normal((4, 6 // groups) + KERNEL[ndim]).astype(dtype)
    b = rng.standard_normal(6 // groups * groups).astype(dtype)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    y = fastdeconv.conv_transpose(x, w, b, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_transpose_reference(x, w, b, **kw), dtype)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, ((2, 0),) * 3, 2, 1)])
def test_conv_transpose_is_the_adjoint_of_conv(ndim, stride, padding, dilation, groups, rng):
    if isinstance(padding, tuple):
        padding = padding[:ndim]
    w = rng.standard_normal((4, 6 // groups) + KERNEL[ndim])
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    big = tuple(n * stride + 2 for n in SPATIAL[ndim])
    y_shape = fastdeconv.conv(np.zeros((2, 6) + big), w, **kw).shape
    assert_adjoint(
        lambda u: fastdeconv.conv(u, w, **kw),
        lambda v: fastdeconv.conv_transpose(v, w, output_size=big, **kw),
        (2, 6) + big, y_shape, rng=rng,
    )


def test_conv_transpose_equals_the_input_gradient_of_conv(rng):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    gy = rng.standard_normal(fastdeconv.conv(x, w, **kw).shape)
    gx, _, _ = fastdeconv.conv_backward(gy, x, w, **kw)
    np.testing.assert_array_equal(fastdeconv.conv_transpose(gy, w, output_size=x.shape, **kw), gx)


@pytest.mark.parametrize("stride, kernel, padding", [(2, 3, 1), (3, 4, 0), (4, 1, 0), (2, 2, 0)])
def test_output_size_selects_output_padding_like_pytorch(stride, kernel, padding, rng, assert_close):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 3, kernel, kernel))
    low = (5 - 1) * stride - 2 * padding + kernel
    for extra in range(stride):
        y = fastdeconv.conv_transpose(x, w, stride=stride, padding=padding, output_size=(low + extra, low))
        assert y.shape == (1, 3, low + extra, low)
        ref = conv_transpose_reference(x, w, stride=stride, padding=padding, output_padding=(extra, 0))
        assert_close(y, ref)


def test_same_padding_output_is_input_times_stride_even_when_the_kernel_is_shorter_than_the_stride(rng, assert_close):
    x = rng.standard_normal((1, 2, 5))
    for kernel, stride in [(1, 2), (2, 4), (3, 2), (4, 2), (5, 3)]:
        w = rng.standard_normal((2, 3, kernel))
        y = fastdeconv.conv_transpose(x, w, stride=stride, padding="same")
        assert y.shape == (1, 3, 5 * stride)
        # its adjoint is the forward 'same' conv on the 5*stride input
        assert_adjoint(
            lambda u: fastdeconv.conv(u, w, stride=stride, padding="same"),
            lambda v: fastdeconv.conv_transpose(v, w, stride=stride, padding="same"),
            (1, 3, 5 * stride), (1, 2, 5), rng=rng,
        )
        assert_close(y, conv_transpose_reference(x, w, stride=stride, padding="same"))


def test_output_padding_up_to_the_dilation_is_allowed_when_it_exceeds_the_stride(rng, assert_close):
    x = rng.standard_normal((1, 2, 4))
    w = rng.standard_normal((2, 2, 3))
    y = fastdeconv.conv_transpose(x, w, stride=1, dilation=3, output_padding=2)
    assert y.shape == (1, 2, 4 - 1 + 6 + 1 + 2)
    assert_close(y, conv_transpose_reference(x, w, stride=1, dilation=3, output_padding=2))


def test_conv_transpose_with_kernel_equal_to_stride_and_pointwise_paths(rng, assert_close):
    x = rng.standard_normal((2, 8, 6, 6))
    for w_shape, kw in [((8, 4, 2, 2), dict(stride=2)), ((8, 4, 1, 1), {}), ((8, 2, 1, 1), dict(groups=4))]:
        w = rng.standard_normal(w_shape)
        assert_close(fastdeconv.conv_transpose(x, w, **kw), conv_transpose_reference(x, w, **kw))


def test_conv_transpose_in_small_tiles_matches_one_tile(rng, replace_budget):
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((4, 3, 4, 3))
    kw = dict(stride=(2, 3), padding=1)
    whole = fastdeconv.conv_transpose(x, w, **kw)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    replace_budget(min_columns=1)   # else tiles never get this small
    for budget, columns in ((1, 1), (3 * 12 * 8 * 4, 4)):
        replace_budget(tile_bytes=budget)
        with _dispatch.forced_algorithm("col2im"):
            the_plan = _dispatch.plan("backward_input", problem, 8)
            assert the_plan.algorithm == "col2im" and the_plan.samples_per_tile * the_plan.tile == columns
            np.testing.assert_allclose(fastdeconv.conv_transpose(x, w, **kw), whole, rtol=1e-13, atol=1e-13)


#: col2im tiles of several samples whose GEMM has at most 48 rows (output channels per group
#: times taps) and 256 positions or more per sample: one GEMM per sample reads grad_y in place
#: (no gathered rows), the samples over the threads
PER_SAMPLE_GEMM_CASES = [
    ((6, 16, 16, 16), (16, 3, 4, 4), dict(stride=2, padding=1)),                # 48 rows
    ((5, 8, 20, 18), (8, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((4, 6, 24, 24), (6, 2, 4, 4), dict(stride=2, padding=1, groups=2)),       # 2 groups
    ((3, 4, 300), (4, 2, 8), dict(stride=4, padding=2)),                        # 1-d
]


@pytest.mark.parametrize("x_shape, w_shape, kw", PER_SAMPLE_GEMM_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_tiles_of_several_samples_with_one_gemm_per_sample(
        x_shape, w_shape, kw, dtype, rng, assert_close, assert_same_bits_for_thread_counts):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    with _dispatch.forced_algorithm("col2im"):
        the_plan = _dispatch.plan("backward_input", problem, np.dtype(dtype).itemsize)
        assert the_plan.algorithm == "col2im" and the_plan.samples_per_tile > 1
        assert w_shape[1] * np.prod(w_shape[2:]) <= 48 and np.prod(x_shape[2:]) >= 256
        assert_close(fastdeconv.conv_transpose(x, w, **kw), conv_transpose_reference(x, w, **kw),
                     dtype)
        assert_same_bits_for_thread_counts(lambda: fastdeconv.conv_transpose(x, w, **kw),
                                           counts=(1, 2, 3))


def test_conv_transpose_accepts_any_layout(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((3, 2, 3, 3))
    expected = fastdeconv.conv_transpose(x, w, stride=2)
    np.testing.assert_array_equal(fastdeconv.conv_transpose(np.asfortranarray(x), w[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1], stride=2), expected)
    x32 = x.astype(np.float32)  # float32 input with a float64 weight computes in float64
    np.testing.assert_array_equal(fastdeconv.conv_transpose(x32, w, stride=2), fastdeconv.conv_transpose(x32.astype(np.float64), w, stride=2))


X = np.zeros((2, 4, 5, 5))
W = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((X, np.zeros((3, 3, 3, 3))), {}, ValueError, r"weight.shape\[0\] must equal the input channels for conv_transpose"),
        ((X, W), {"groups": 3}, ValueError, r"groups=3 must divide the input channels \(4\)"),
        ((X, W), {"stride": 2, "output_padding": 2}, ValueError, r"output_padding must be smaller than max\(stride, dilation\)"),
        ((X, W), {"stride": 2, "output_size": (20, 11)}, ValueError, r"output_size \(20, 11\) is unreachable: in spatial dimension 0 .* can only be 11 to 12"),
        ((X, W), {"output_size": (7,)}, ValueError, r"output_size must have 2 spatial sizes"),
        ((X, W), {"padding": 4}, ValueError, r"conv_transpose output would be empty in spatial dimension 0"),
        ((X, W), {"padding": "same", "output_padding": 1}, ValueError, r"output_padding must be 0 when padding is 'same'"),
        ((X, W, np.zeros(4)), {}, ValueError, r"bias must have shape \(3,\)"),
        ((X[0], W), {}, ValueError, r"x must have 4 dimensions"),
        ((X.astype(np.complex64), W), {}, TypeError, r"x has complex dtype"),
    ],
)
def test_conv_transpose_rejects_bad_input_naming_the_parameter(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.conv_transpose(*args, **kwargs)
