"""data_format, weight_format and padding="full" of the convolution family.

The oracle of the layouts is the channels-first, canonical-weight call on arrays moved by
NumPy (bit-identical where the same kernels run; the 1x1 channels-last GEMM path is held to
the float64 reference), and the plain NumPy reference of fastdeconv.testing. ``padding="full"``
is held to ``numpy.convolve`` and ``scipy.signal.correlate``.
"""

import itertools

import numpy as np
import pytest
import scipy.signal

import fastdeconv
from fastdeconv import sparse
from fastdeconv._formats import (SPATIAL_LETTERS, channels_last_index,
                                 contiguous_channels_first)
from fastdeconv.testing import conv_reference, conv_transpose_reference

ALIASES = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def to_last(a):
    return np.moveaxis(a, 1, -1)


def in_format(weight, fmt, transpose=False):
    """A canonical weight laid out as ``fmt``."""
    canonical = ("IO" if transpose else "OI") + SPATIAL_LETTERS[weight.ndim - 2]
    return np.transpose(weight, [canonical.index(letter) for letter in fmt])


def cases():
    # (spatial input, weight shape (canonical conv), keywords)
    yield (9,), (4, 3, 3), dict(stride=2, padding=1)
    yield (7, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2),
                                     groups=2)
    yield (5, 6, 4), (4, 4, 2, 3, 2), dict(stride=1, padding="same")
    yield (6, 7), (5, 3, 1, 1), dict()                     # 1x1: the channels-last GEMM
    yield (6, 7), (4, 2, 1, 1), dict(groups=2)             # 1x1 grouped: the copy path


CASES = list(cases())


def _close(a, b, dtype):
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial, wshape, kw", CASES)
def test_conv_channels_last_and_weight_formats_equal_the_channels_first_call(
        spatial, wshape, kw, dtype, rng):
    ndim = len(spatial)
    x = rng.standard_normal((2, wshape[1] * kw.get("groups", 1)) + spatial).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[0]).astype(dtype)
    expected = fastdeconv.conv(x, w, b, **kw)
    spatial_letters = SPATIAL_LETTERS[ndim]
    for data_format in ("channels_last", ALIASES[ndim][1]):
        for fmt in ("I" + spatial_letters + "O", spatial_letters + "IO", "O" + spatial_letters + "I"):
            y = fastdeconv.conv(to_last(x), in_format(w, fmt), b, data_format=data_format,
                                weight_format=fmt, **kw)
            assert y.dtype == dtype and _at_most_one_copy(y)
            assert y.shape == to_last(expected).shape
            _close(y, to_last(expected), dtype)
    # channels-first aliases and the canonical string change nothing, bit for bit
    y = fastdeconv.conv(x, w, b, data_format=ALIASES[ndim][0], weight_format="OI" + spatial_letters, **kw)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("spatial, wshape, kw", CASES)
def test_conv_transpose_channels_last_matches_the_reference(spatial, wshape, kw, rng):
    # conv_transpose weight (C_in, C_out / groups, *k): the forward conv's weight
    w = rng.standard_normal(wshape)
    x = rng.standard_normal((2, wshape[0]) + spatial)
    kw_t = {k: v for k, v in kw.items() if not (k == "padding" and isinstance(v, str))}
    expected = conv_transpose_reference(x, w, **kw_t)
    letters = SPATIAL_LETTERS[len(spatial)]
    for fmt in (letters + "OI", "IO" + letters, "O" + letters + "I"):
        y = fastdeconv.conv_transpose(to_last(x), in_format(w, fmt, transpose=True),
                                      data_format="channels_last", weight_format=fmt, **kw_t)
        _close(y, to_last(expected), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial, wshape, kw", CASES)
def test_backward_passes_return_gradients_in_the_callers_layouts(spatial, wshape, kw, dtype, rng):
    letters = SPATIAL_LETTERS[len(spatial)]
    x = rng.standard_normal((2, wshape[1] * kw.get("groups", 1)) + spatial).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    gy = rng.standard_normal(fastdeconv.conv(x, w, **kw).shape).astype(dtype)
    gx, gw, gb = fastdeconv.conv_backward(gy, x, w, **kw)
    fmt = letters + "IO"
    lx, lw, lb = fastdeconv.conv_backward(to_last(gy), to_last(x), in_format(w, fmt),
                                          data_format="channels_last", weight_format=fmt, **kw)
    _close(lx, to_last(gx), dtype)
    _close(lw, in_format(gw, fmt), dtype)
    _close(lb, gb, dtype)
    assert _at_most_one_copy(lx) and lw.flags.c_contiguous
    # conv_transpose_backward: the roles of x and grad_output swap
    kw_t = {k: v for k, v in kw.items() if not (k == "padding" and isinstance(v, str))}
    y = fastdeconv.conv_transpose(gy, w, **kw_t)
    gx, gw, gb = fastdeconv.conv_transpose_backward(y, gy, w, **kw_t)
    fmt = letters + "OI"
    lx, lw, lb = fastdeconv.conv_transpose_backward(
        to_last(y), to_last(gy), in_format(w, fmt, transpose=True),
        data_format="channels_last", weight_format=fmt, **kw_t)
    _close(lx, to_last(gx), dtype)
    _close(lw, in_format(gw, fmt, transpose=True), dtype)
    _close(lb, gb, dtype)


def _at_most_one_copy(y):
    """A channels-last result is C-contiguous (native path) or the channels-last view of a
    C-contiguous channels-first array (no output copy)."""
    return y.flags.c_contiguous or np.moveaxis(y, -1, 1).flags.c_contiguous


def test_channels_last_chain_copies_only_its_first_input(rng, monkeypatch):
    import fastdeconv._conv as conv_module
    copied = []

    def recording(array, dtype):
        out = contiguous_channels_first(array, dtype)
        copied.append(array.ndim == 4 and not np.shares_memory(out, array))
        return out

    monkeypatch.setattr(conv_module, "contiguous_channels_first", recording)
    x = rng.standard_normal((1, 6, 6, 3))
    w1, w2 = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal((3, 3, 4, 2))
    h = fastdeconv.conv(x, w1, padding=1, data_format="NHWC", weight_format="HWIO")
    first = copied[:]
    copied.clear()
    y = fastdeconv.conv(h, w2, padding=1, data_format="NHWC", weight_format="HWIO")
    # x and the weight were copied to channels-first; h, a view of channels-first memory, not
    assert first == [True, True] and copied == [False, True]
    ref = fastdeconv.conv(np.ascontiguousarray(h), w2, padding=1, data_format="NHWC",
                          weight_format="HWIO")
    np.testing.assert_array_equal(y, ref)


def test_every_weight_letter_order_of_a_2d_kernel(rng):
    x = rng.standard_normal((1, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))      # distinct sizes: a wrong axis cannot fit
    expected = conv_reference(x, w, groups=2, padding=1)
    for fmt in map("".join, itertools.permutations("OIHW")):
        y = fastdeconv.conv(x, in_format(w, fmt), groups=2, padding=1, weight_format=fmt)
        _close(y, expected, np.float64)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_channels_last_gemm_is_exact_and_thread_independent(dtype, threads, rng):
    x = rng.standard_normal((3, 9, 11, 37)).astype(dtype)      # NHWC
    w = rng.standard_normal((29, 37, 1, 1)).astype(dtype)
    b = rng.standard_normal(29).astype(dtype)
    expected = to_last(conv_reference(np.moveaxis(x, -1, 1).astype(np.float64), w, b))
    with _threads(1):
        one = fastdeconv.conv(x, w, b, data_format="NHWC")
    with _threads(threads):
        y = fastdeconv.conv(x, w, b, data_format="NHWC")
        gy = rng.standard_normal(y.shape).astype(dtype)
        grads = fastdeconv.conv_backward(gy, x, w, data_format="NHWC")
    np.testing.assert_array_equal(y, one)
    _close(y, expected, dtype)
    ref = fastdeconv.conv_backward(to_last_inv(gy), to_last_inv(x), w)
    _close(grads[0], to_last(ref[0]), dtype)
    _close(grads[1], ref[1], dtype)
    _close(grads[2], ref[2], dtype)


def to_last_inv(a):
    return np.moveaxis(a, -1, 1)


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = fastdeconv.get_num_threads()
        fastdeconv.set_num_threads(self.n)

    def __exit__(self, *exc):
        fastdeconv.set_num_threads(self.old)


def test_pointwise_conv_transpose_channels_last(rng):
    x = rng.standard_normal((2, 5, 7, 6))
    w = rng.standard_normal((6, 4, 1, 1))
    b = rng.standard_normal(4)
    y = fastdeconv.conv_transpose(x, w, b, data_format="channels_last")
    _close(y, to_last(conv_transpose_reference(to_last_inv(x), w, b)), np.float64)
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = fastdeconv.conv_transpose_backward(gy, x, w, data_format="channels_last")
    rx, rw, rb = fastdeconv.conv_transpose_backward(to_last_inv(gy), to_last_inv(x), w)
    _close(gx, to_last(rx), np.float64)
    _close(gw, rw, np.float64)
    _close(gb, rb, np.float64)


# ----------------------------------------------------------------------- padding="full"
def test_full_padding_is_numpy_convolve_mode_full(rng):
    x, k = rng.standard_normal(11), rng.standard_normal(4)
    y = fastdeconv.conv(x[None, None], k[::-1][None, None], padding="full")
    np.testing.assert_allclose(y[0, 0], np.convolve(x, k, mode="full"), rtol=1e-12, atol=1e-12)


def test_full_padding_in_2d_with_dilation_is_scipy_correlate_full(rng):
    x, k = rng.standard_normal((6, 7)), rng.standard_normal((3, 2))
    dilated = np.zeros((5, 3))
    dilated[::2, ::2] = k
    y = fastdeconv.conv(x[None, None], k[None, None], padding="full", dilation=2)
    np.testing.assert_allclose(y[0, 0], scipy.signal.correlate(x, dilated, mode="full"),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, k, s, d, op", [(5, 3, 1, 1, 0), (7, 4, 2, 1, 1), (6, 3, 3, 2, 2)])
def test_full_transposed_output_length_is_keras_deconv_output_length(n, k, s, d, op, rng):
    # keras.src.utils.conv_utils.deconv_output_length(..., padding="full"):
    # k_e = k + (k - 1) (d - 1); pad = k_e - 1; (n - 1) s + k_e - 2 pad + output_padding
    k_e = k + (k - 1) * (d - 1)
    expected = (n - 1) * s + k_e - 2 * (k_e - 1) + op
    x = rng.standard_normal((1, 2, n))
    w = rng.standard_normal((2, 3, k))
    if expected < 1:
        with pytest.raises(ValueError, match="empty"):
            fastdeconv.conv_transpose(x, w, stride=s, dilation=d, padding="full", output_padding=op)
        return
    y = fastdeconv.conv_transpose(x, w, stride=s, dilation=d, padding="full", output_padding=op)
    assert y.shape == (1, 3, expected)
    assert fastdeconv.shapes.conv_transpose_output_shape(
        n, k, stride=s, dilation=d, padding="full", output_padding=op) == (expected,)
    # ... and it is the adjoint of the forward "full" convolution
    u = rng.standard_normal(y.shape)
    lhs = np.vdot(fastdeconv.conv(u, w, stride=s, dilation=d, padding="full")[..., :n], x)
    np.testing.assert_allclose(lhs, np.vdot(u, y), rtol=1e-10)


# ------------------------------------------------------------------- matrices, operators
def test_sparse_matrices_act_on_channels_last_samples(rng):
    x = rng.standard_normal((1, 5, 6, 4))
    w = rng.standard_normal((3, 2, 2, 4))          # HWIO: I = 4 channels / 2 groups, O = 4
    M = sparse.conv_matrix(x.shape[1:], w, groups=2, stride=2, padding="same",
                           data_format="channels_last", weight_format="HWIO")
    y = fastdeconv.conv(x, w, groups=2, stride=2, padding="same",
                        data_format="channels_last", weight_format="HWIO")
    np.testing.assert_allclose(M @ x[0].ravel(), y[0].ravel(), rtol=1e-12, atol=1e-12)
    wt = rng.standard_normal((3, 3, 5, 4))          # HWOI of a transposed conv
    T = sparse.conv_transpose_matrix(x.shape[1:], wt, stride=2, padding=1, output_size=(10, 12),
                                     data_format="NHWC", weight_format="HWOI")
    yt = fastdeconv.conv_transpose(x, wt, stride=2, padding=1, output_size=(10, 12),
                                   data_format="NHWC", weight_format="HWOI")
    np.testing.assert_allclose(T @ x[0].ravel(), yt[0].ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (1, 40, 33, 3), (3, 1, 1, 2), (2, 70, 5)])
def test_contiguous_channels_first_is_the_numpy_copy(shape, dtype, threads, rng):
    last = (100 * rng.standard_normal(shape)).astype(dtype)
    view = np.moveaxis(last, -1, 1)
    with _threads(threads):
        out = contiguous_channels_first(view, np.float32 if dtype == np.float16 else dtype)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.asarray(view, dtype=out.dtype, order="C"))
    # an array that is not such a view takes NumPy's path, unchanged values
    other = view[:, ::-1]
    np.testing.assert_array_equal(contiguous_channels_first(other, out.dtype), other)


def test_channels_last_index_relabels_a_sample(rng):
    x = rng.standard_normal((3, 4, 5))
    last = np.moveaxis(x, 0, -1).ravel()
    np.testing.assert_array_equal(last[channels_last_index(x.shape)], x.ravel())


def test_linear_operator_in_channels_last_is_consistent(rng):
    w = rng.standard_normal((3, 3, 2, 4))
    A = sparse.linear_operator("conv", (7, 6, 2), weight=w, stride=2, padding=1,
                               data_format="channels_last", weight_format="HWIO")
    assert A.input_shape == (7, 6, 2) and A.output_shape == (4, 3, 4)
    u, v = rng.standard_normal(A.shape[1]), rng.standard_normal(A.shape[0])
    np.testing.assert_allclose(A.matvec(u) @ v, u @ A.rmatvec(v), rtol=1e-12)
    np.testing.assert_allclose(A.to_sparse() @ u, A.matvec(u), rtol=1e-12, atol=1e-12)
    expected = fastdeconv.conv(u.reshape(1, 7, 6, 2), w, stride=2, padding=1,
                               data_format="NHWC", weight_format="HWIO")
    np.testing.assert_allclose(A.matvec(u), expected.ravel(), rtol=1e-12, atol=1e-12)


def test_deconvolve_solves_in_the_callers_layouts(rng):
    x = rng.standard_normal((1, 2, 7, 7))
    w = rng.standard_normal((5, 2, 3, 3))
    y = fastdeconv.conv(x, w, padding=1)
    result = fastdeconv.deconvolve(to_last(y), in_format(w, "HWIO"), padding=1,
                                   data_format="NHWC", weight_format="HWIO")
    assert result.x.shape == (1, 7, 7, 2)
    np.testing.assert_allclose(result.x, to_last(x), atol=1e-6)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(data_format="NHWCX"), ValueError, "data_format must be one of"),
    (dict(data_format="channels-last"), ValueError, "data_format must be one of"),
    (dict(data_format="NCW"), ValueError, r"data_format='NCW' is a layout for 1 spatial"),
    (dict(data_format="NDHWC"), ValueError, r"data_format='NDHWC' is a layout for 3"),
    (dict(data_format=1), TypeError, "data_format must be a string"),
    (dict(weight_format="OIH"), ValueError, "weight_format must be the letters O, I and H, W"),
    (dict(weight_format="OIHH"), ValueError, "weight_format must be the letters"),
    (dict(weight_format="OIDW"), ValueError, "weight_format must be the letters"),
    (dict(weight_format=["O", "I", "H", "W"]), TypeError, "weight_format must be a string"),
])
def test_bad_layouts_are_rejected_naming_the_parameter(kwargs, error, match):
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    for call in (lambda: fastdeconv.conv(x, w, **kwargs),
                 lambda: fastdeconv.conv_transpose(np.ones((1, 3, 5, 5)), w, **kwargs),
                 lambda: fastdeconv.conv_backward(np.ones((1, 3, 3, 3)), x, w, **kwargs),
                 lambda: sparse.conv_matrix((2, 5, 5), w, **kwargs)):
        with pytest.raises(error, match=match):
            call()


def test_weight_format_beyond_three_spatial_dimensions_is_refused():
    with pytest.raises(ValueError, match="weight_format is supported for 1 to 3"):
        fastdeconv.conv(np.ones((1, 1, 2, 2, 2, 2)), np.ones((1, 1, 1, 1, 1, 1)),
                        weight_format="OIDHW")
