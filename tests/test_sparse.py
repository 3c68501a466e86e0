"""fastdeconv.sparse: explicit matrices vs the NumPy references, each other and the kernels."""

import importlib
from math import prod

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from fastdeconv._geometry import ConvGeometry
from fastdeconv.sparse import conv_matrix, conv_transpose_matrix
from fastdeconv.testing import conv_reference, conv_transpose_reference, tolerances

DTYPES = [np.float32, np.float64]

# (in_sizes, kernel, stride, padding, dilation, groups, padding_mode)
CONV_CASES = [
    ((9,), (3,), 1, 0, 1, 1, "zeros"),
    ((10,), (3,), 2, ((1, 2),), 1, 1, "zeros"),
    ((8,), (3,), 1, 2, 2, 2, "reflect"),
    ((7,), (2,), 3, "same", 1, 1, "circular"),
    ((7,), (4,), 2, "same_lower", 1, 1, "replicate"),
    ((5,), (5,), 1, "valid", 1, 1, "zeros"),
    ((6, 7), (3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 2, "reflect"),
    ((5, 6), (3, 3), 1, 1, 1, 1, "replicate"),
    ((7, 5), (2, 3), (3, 2), ((2, 2), (0, 1)), (2, 1), 3, "circular"),
    ((6, 6), (3, 3), 2, "same", 1, 2, "zeros"),
    ((5, 8), (2, 3), (1, 3), "same_lower", (2, 1), 1, "reflect"),
    ((4, 5, 3), (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), 1, 1, "zeros"),
    ((5, 4, 4), (2, 2, 2), 2, 1, (2, 1, 1), 2, "replicate"),
    ((4, 4, 5), (3, 1, 2), 1, "same", 1, 1, "circular"),
]

# (in_sizes of the transposed conv, kernel, stride, padding, output_padding, dilation, groups)
TRANSPOSE_CASES = [
    ((5,), (3,), 2, 1, 1, 1, 1),
    ((4,), (4,), 3, ((2, 0),), 2, 1, 2),
    ((6,), (3,), 1, 2, 1, 2, 1),             # stride <= output_padding < dilation
    ((4,), (3,), 2, "same", 0, 1, 1),
    ((3, 4), (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 0), (1, 2), 2),
    ((3, 5), (1, 2), (3, 2), "same_lower", 0, 1, 1),   # k_eff < stride: implied padding
    ((4, 3), (2, 2), (2, 3), "valid", 0, 1, 3),
    ((2, 3, 2), (2, 3, 2), (2, 1, 2), ((0, 1), (1, 1), (1, 0)), (1, 0, 0), (1, 1, 2), 3),
]


def _conv_id(case):
    in_sizes, kernel, stride, padding, dilation, groups, mode = case
    return f"{len(in_sizes)}d-k{kernel}-s{stride}-p{padding}-d{dilation}-g{groups}-{mode}"


def _transpose_id(case):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    return (f"{len(in_sizes)}d-k{kernel}-s{stride}-p{padding}-op{output_padding}"
            f"-d{dilation}-g{groups}")


def _conv_problem(case, dtype, rng):
    in_sizes, kernel, stride, padding, dilation, groups, mode = case
    x = rng.standard_normal((2, 2 * groups, *in_sizes)).astype(dtype)
    w = rng.standard_normal((3 * groups, 2, *kernel)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=mode)
    return x, w, kwargs


def _transpose_problem(case, dtype, rng):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    x = rng.standard_normal((2, 2 * groups, *in_sizes)).astype(dtype)
    w = rng.standard_normal((2 * groups, 3, *kernel)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  dilation=dilation, groups=groups)
    return x, w, kwargs


def _apply(matrix, x, out_shape):
    """Apply a one-sample matrix to every sample of ``x``."""
    return (matrix @ x.reshape(x.shape[0], -1).T).T.reshape(x.shape[0], *out_shape)


def _assert_same_csr(a, b):
    a, b = scipy.sparse.csr_array(a), scipy.sparse.csr_array(b)
    a.sort_indices()
    b.sort_indices()
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------------------- conv_matrix
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv_matrix_times_input_equals_conv_reference(case, dtype):
    x, w, kwargs = _conv_problem(case, dtype, np.random.default_rng(0))
    matrix = conv_matrix(x.shape[1:], w, **kwargs)
    expected = conv_reference(x, w, **kwargs)
    assert isinstance(matrix, scipy.sparse.csr_array)
    assert matrix.dtype == dtype
    assert matrix.shape == (prod(expected.shape[1:]), prod(x.shape[1:]))
    np.testing.assert_allclose(_apply(matrix, x, expected.shape[1:]), expected,
                               **tolerances(dtype))


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv_matrix_nnz_is_at_most_one_entry_per_channel_pair_and_tap(case):
    x, w, kwargs = _conv_problem(case, np.float64, np.random.default_rng(1))
    matrix = conv_matrix(x.shape[1:], w, **kwargs)
    c_out, cig, *kernel = w.shape
    n_out = matrix.shape[0] // c_out
    assert matrix.nnz <= c_out * n_out * cig * prod(kernel)
    assert matrix.has_canonical_format  # duplicates from folded borders are summed


def test_conv_matrix_valid_padding_stores_every_tap_exactly_once():
    w = np.random.default_rng(2).standard_normal((4, 3, 2, 3))
    matrix = conv_matrix((3, 6, 7), w, stride=(2, 1), padding="valid")
    n_out = 3 * 5
    assert matrix.nnz == 4 * n_out * 3 * 6


def test_conv_matrix_structure_keeps_explicit_zero_weights():
    w = np.random.default_rng(3).standard_normal((2, 1, 3))
    zeroed = w.copy()
    zeroed[:, :, 1] = 0.0
    a = conv_matrix((1, 6), w, padding=1)
    b = conv_matrix((1, 6), zeroed, padding=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indptr, b.indptr)


def test_conv_matrix_doc_example_with_replicate_padding_sums_folded_taps():
    m = conv_matrix((1, 4), np.array([[[1.0, 2.0, 3.0]]]), padding=1, padding_mode="replicate")
    np.testing.assert_array_equal(
        m.toarray(), [[3, 3, 0, 0], [1, 2, 3, 0], [0, 1, 2, 3], [0, 0, 1, 5]])


@pytest.mark.parametrize("weight_dtype, matrix_dtype", [
    (np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64),
    (np.int32, np.float64), (np.bool_, np.float64),
])
def test_conv_matrix_dtype_follows_the_dtype_table(weight_dtype, matrix_dtype):
    w = np.ones((1, 1, 2), dtype=weight_dtype)
    assert conv_matrix((1, 4), w).dtype == matrix_dtype
    assert conv_transpose_matrix((1, 4), w).dtype == matrix_dtype


def test_conv_matrix_accepts_non_contiguous_weight():
    w = np.random.default_rng(4).standard_normal((3, 2, 5))
    view = w[:, :, ::-2]  # reversed and strided
    _assert_same_csr(conv_matrix((2, 6), view), conv_matrix((2, 6), view.copy()))


# ---------------------------------------------------------------------------- transpose
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_matrix_times_input_equals_reference(case, dtype):
    x, w, kwargs = _transpose_problem(case, dtype, np.random.default_rng(5))
    matrix = conv_transpose_matrix(x.shape[1:], w, **kwargs)
    expected = conv_transpose_reference(x, w, **kwargs)
    assert matrix.dtype == dtype
    assert matrix.shape == (prod(expected.shape[1:]), prod(x.shape[1:]))
    np.testing.assert_allclose(_apply(matrix, x, expected.shape[1:]), expected,
                               **tolerances(dtype))


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_matrix_is_exactly_the_transposed_conv_matrix(case):
    x, w, kwargs = _transpose_problem(case, np.float64, np.random.default_rng(6))
    c_in, *in_sizes = x.shape[1:]
    # The forward convolution that this transposed convolution is the adjoint of.
    geometry = ConvGeometry.for_conv_transpose(
        in_sizes, w.shape[2:], stride=kwargs["stride"], padding=kwargs["padding"],
        output_padding=kwargs["output_padding"], dilation=kwargs["dilation"])
    forward = conv_matrix((w.shape[1] * kwargs["groups"], *geometry.input_size), w,
                          stride=geometry.stride, padding=geometry.padding,
                          dilation=geometry.dilation, groups=kwargs["groups"])
    # With stride <= output_padding < dilation, that convolution has more output positions
    # than the transposed convolution has inputs: keep only the rows of the ones it has.
    forward_sizes = tuple((n + b + a - e) // s + 1 for n, (b, a), e, s in zip(
        geometry.input_size, geometry.padding, geometry.effective_kernel_size, geometry.stride))
    assert forward.shape[0] == c_in * prod(forward_sizes)
    rows = np.ravel_multi_index(np.indices(x.shape[1:]).reshape(x.ndim - 1, -1),
                                (c_in, *forward_sizes))
    _assert_same_csr(conv_transpose_matrix(x.shape[1:], w, **kwargs), forward[rows].T)


def test_conv_transpose_matrix_output_size_picks_output_padding():
    w = np.random.default_rng(7).standard_normal((2, 3, 3))
    _assert_same_csr(conv_transpose_matrix((2, 5), w, stride=3, output_size=(17,)),
                     conv_transpose_matrix((2, 5), w, stride=3, output_padding=2))


def test_conv_transpose_matrix_doc_example_overlaps_taps_at_stride_two():
    m = conv_transpose_matrix((1, 2), np.array([[[1.0, 2.0, 3.0]]]), stride=2)
    np.testing.assert_array_equal(m.toarray(), [[1, 0], [2, 0], [3, 1], [0, 2], [0, 3]])


# ---------------------------------------------------------------------------- fuzzing
@st.composite
def conv_problems(draw):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    sizes, pairs = [], []
    for k, d in zip(kernel, dilation):
        n = draw(st.integers(2, 6))
        limit = min(2, n - 1 if mode == "reflect" else n)
        before, after = draw(st.integers(0, limit)), draw(st.integers(0, limit))
        sizes.append(max(n, d * (k - 1) + 1 - before - after))  # kernel fits the padded input
        pairs.append((before, after))
    padding = draw(st.sampled_from([tuple(pairs), "same", "same_lower", "valid"]))
    if isinstance(padding, str) and padding != "valid" and mode == "reflect":
        mode = "replicate"  # "same" may pad by more than reflect allows
    if padding == "valid":
        sizes = [max(n, d * (k - 1) + 1) for n, k, d in zip(sizes, kernel, dilation)]
    return tuple(sizes), kernel, stride, padding, dilation, groups, mode


@given(case=conv_problems())
def test_conv_matrix_agrees_with_reference_on_random_geometries(case):
    x, w, kwargs = _conv_problem(case, np.float64, np.random.default_rng(8))
    expected = conv_reference(x, w, **kwargs)
    matrix = conv_matrix(x.shape[1:], w, **kwargs)
    np.testing.assert_allclose(_apply(matrix, x, expected.shape[1:]), expected,
                               **tolerances(np.float64))


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("input_shape, weight_shape, kwargs, error, match", [
    ((3, 8), (4, 2, 3), {}, ValueError, r"weight.shape\[1\] \* groups must equal"),
    ((4, 8), (3, 2, 3), {"groups": 2}, ValueError,
     r"groups=2 must divide both the input channels \(4\) and the output channels \(3\)"),
    ((3, 8), (3, 1, 3), {"groups": 2}, ValueError,
     r"groups=2 must divide both the input channels \(3\)"),
    ((1, 3, 8), (4, 3, 3), {}, ValueError, "input_shape must be .* without the batch"),
    ((3, 8.0), (4, 3, 3), {}, TypeError, "input_shape must be an int"),
    ((3, 0), (4, 3, 3), {}, ValueError, "input_shape must be >= 1"),
    ((3, 8), (4, 3), {}, ValueError, "weight must have at least 3 dimensions"),
    ((3, 8), (4, 3, 3), {"stride": 0}, ValueError, "stride"),
    ((3, 8), (4, 3, 3), {"dilation": (1, 1)}, ValueError, "dilation"),
    ((3, 8), (4, 3, 3), {"padding": "causal"}, ValueError, "padding must be one of"),
    ((3, 8), (4, 3, 3), {"padding": -1}, ValueError, "padding must be non-negative"),
    ((3, 2), (4, 3, 5), {}, ValueError, "kernel size is larger than the padded input"),
    ((3, 8), (4, 3, 3), {"padding_mode": "mirror"}, ValueError, "padding_mode must be one of"),
    ((3, 4), (4, 3, 3), {"padding": 4, "padding_mode": "reflect"}, ValueError,
     "padding_mode='reflect' needs padding smaller than the input size"),
    ((3, 4), (4, 3, 3), {"padding": 5, "padding_mode": "circular"}, ValueError,
     "padding_mode='circular' needs padding at most the input size"),
])
def test_conv_matrix_rejects_bad_arguments(input_shape, weight_shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv_matrix(input_shape, np.ones(weight_shape), **kwargs)


def test_conv_matrix_rejects_complex_weight():
    with pytest.raises(TypeError, match="weight has complex dtype"):
        conv_matrix((1, 4), np.ones((1, 1, 2), dtype=complex))


@pytest.mark.parametrize("input_shape, weight_shape, kwargs, error, match", [
    ((3, 8), (4, 2, 3), {}, ValueError,
     r"weight.shape\[0\] must equal the input channels for conv_transpose"),
    ((3, 8), (3, 2, 3), {"groups": 2}, ValueError, "groups=2 must divide"),
    ((3, 8), (3, 2, 3), {"stride": 2, "output_padding": 2}, ValueError,
     "output_padding must be smaller than max"),
    ((3, 8), (3, 2, 3), {"padding": "same", "output_padding": 1}, ValueError,
     "output_padding must be 0 when padding is .same."),
    ((3, 8), (3, 2, 3), {"stride": 2, "output_size": (30,)}, ValueError,
     "output_size .* is unreachable"),
    ((3, 1), (3, 2, 1), {"padding": 1}, ValueError, "conv_transpose output would be empty"),
])
def test_conv_transpose_matrix_rejects_bad_arguments(input_shape, weight_shape, kwargs, error,
                                                     match):
    with pytest.raises(error, match=match):
        conv_transpose_matrix(input_shape, np.ones(weight_shape), **kwargs)


# ---------------------------------------------------------------------------- kernels
def _kernel(name):
    function = getattr(importlib.import_module("fastdeconv"), name, None)
    if function is None:
        pytest.skip("kernels not built yet")
    return function


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv_kernel_equals_conv_matrix(case, dtype):
    conv = _kernel("conv")
    x, w, kwargs = _conv_problem(case, dtype, np.random.default_rng(9))
    got = conv(x, w, **kwargs)
    matrix = conv_matrix(x.shape[1:], w, **kwargs)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, _apply(matrix, x, got.shape[1:]), **tolerances(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_kernel_equals_conv_transpose_matrix(case, dtype):
    conv_transpose = _kernel("conv_transpose")
    x, w, kwargs = _transpose_problem(case, dtype, np.random.default_rng(10))
    got = conv_transpose(x, w, **kwargs)
    matrix = conv_transpose_matrix(x.shape[1:], w, **kwargs)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, _apply(matrix, x, got.shape[1:]), **tolerances(dtype))
