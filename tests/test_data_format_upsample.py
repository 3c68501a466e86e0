"""``data_format`` of the upsampling family: resize, max_pool / max_unpool, pixel_shuffle /
pixel_unshuffle, their backward passes and their sparse matrices.

A channels-last call must give, bit for bit, the channels-first result of the moved input
with its axes moved back (C-contiguous), for 1 to 3 spatial dimensions, both compute dtypes
and every spelling of the layout; gradients come in the same layout; the channels-last
operators are adjoint to their backward passes; the matrices act on raveled channels-last
samples; bad layouts raise ValueError naming data_format; and the native channels-last
paths give the same bits for any thread count.
"""

import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import (linear_operator, max_unpool_matrix, pixel_shuffle_matrix,
                               resize_matrix)
from fastdeconv.testing import assert_adjoint

NDIMS = [1, 2, 3]
DTYPES = [np.float32, np.float64]
#: the channels-last spellings, and the channels-first ones (which must change nothing)
LAST = {1: ["channels_last", "NWC"], 2: ["channels_last", "NHWC"], 3: ["channels_last", "NDHWC"]}
FIRST = {1: ["NCW"], 2: ["NCHW"], 3: ["NCDHW"]}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}

RESIZE = {   # name: (keywords, spatial dimensions it applies to)
    "nearest2": (dict(scale_factor=2), NDIMS),
    "nearest_size": (dict(size=5), NDIMS),
    "nearest_exact": (dict(scale_factor=1.7, mode="nearest-exact"), NDIMS),
    "linear": (dict(scale_factor=2.5, mode="linear"), NDIMS),
    "linear_ac": (dict(size=4, mode="linear", align_corners=True), NDIMS),
    "linear_aa": (dict(scale_factor=0.5, mode="linear", antialias=True), NDIMS),
    "cubic": (dict(scale_factor=1.5, mode="cubic"), [2]),
    "area": (dict(size=3, mode="area"), NDIMS),
    "onnx_nearest": (dict(scale_factor=1.5, coordinate_transformation_mode="asymmetric",
                          nearest_mode="round_prefer_ceil"), NDIMS),
    "onnx_cubic": (dict(size=8, mode="cubic", coordinate_transformation_mode="half_pixel",
                        cubic_coeff_a=-0.5, exclude_outside=True), [2]),
}
RESIZE_CASES = [(name, ndim) for name, (_, ndims) in RESIZE.items() for ndim in ndims]
POOL = {1: dict(kernel_size=3, stride=2, padding=1),
        2: dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
        3: dict(kernel_size=2, ceil_mode=True)}


def last(a):
    """A channels-first array as channels-last (a view)."""
    return np.moveaxis(a, 1, -1)


def first(a):
    return np.moveaxis(a, -1, 1)


def last_shape(shape):
    return shape[:1] + shape[2:] + shape[1:2]


def sample(rng, ndim, dtype, channels=3, batch=2):
    return rng.standard_normal((batch, channels) + SPATIAL[ndim]).astype(dtype)


def assert_same_bits(actual, expected_first):
    """``actual`` (channels-last) is ``expected_first`` moved to channels-last, bit for bit,
    and C-contiguous."""
    expected = last(expected_first)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.flags.c_contiguous
    np.testing.assert_array_equal(actual, expected, strict=True)
    # same bits, NaN and signed zeros included
    assert actual.tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.fixture
def threads():
    """Restores fastdeconv's thread count after the test."""
    before = fastdeconv.get_num_threads()
    yield fastdeconv.set_num_threads
    fastdeconv.set_num_threads(before)


# ---------------------------------------------------------------------------------- resize
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, ndim", RESIZE_CASES)
def test_resize_channels_last_same_bits(name, ndim, dtype, rng):
    kw = RESIZE[name][0]
    x = sample(rng, ndim, dtype)
    y = fastdeconv.resize(x, **kw)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad = fastdeconv.resize_backward(g, x.shape, **kw)
    for fmt in LAST[ndim]:
        assert_same_bits(fastdeconv.resize(last(x), **kw, data_format=fmt), y)
        assert_same_bits(fastdeconv.resize_backward(last(g), last_shape(x.shape), **kw,
                                                    data_format=fmt), grad)
    for fmt in FIRST[ndim]:
        np.testing.assert_array_equal(fastdeconv.resize(x, **kw, data_format=fmt), y,
                                      strict=True)
        np.testing.assert_array_equal(
            fastdeconv.resize_backward(g, x.shape, **kw, data_format=fmt), grad, strict=True)


@pytest.mark.parametrize("name, ndim", RESIZE_CASES)
def test_resize_channels_last_adjoint_and_matrix(name, ndim, rng, assert_close):
    kw = RESIZE[name][0]
    x = last(sample(rng, ndim, np.float64))
    y = fastdeconv.resize(x, **kw, data_format="channels_last")
    assert_adjoint(lambda v: fastdeconv.resize(v, **kw, data_format="channels_last"),
                   lambda w: fastdeconv.resize_backward(w, x.shape, **kw,
                                                        data_format="channels_last"),
                   x.shape, y.shape, rng=rng)
    m = resize_matrix(x.shape[1:], **kw, data_format=LAST[ndim][1])
    for n in range(x.shape[0]):
        assert_close(m @ x[n].ravel(), y[n].ravel())
    g = rng.standard_normal(y.shape)
    grad = fastdeconv.resize_backward(g, x.shape, **kw, data_format="channels_last")
    assert_close(m.T @ g[1].ravel(), grad[1].ravel())


def test_resize_channels_last_nonfinite_takes_pytorchs_order(rng):
    # NaN / inf make resize run PyTorch's pass order; channels-last must follow it too
    x = sample(rng, 2, np.float64)
    x[0, 1, 2, 3] = np.inf
    x[1, 0, 4, 1] = np.nan
    kw = dict(size=(3, 20), mode="cubic")      # not the canonical pass order when finite
    assert_same_bits(fastdeconv.resize(last(x), **kw, data_format="NHWC"),
                     fastdeconv.resize(x, **kw))


@pytest.mark.parametrize("ndim", NDIMS)
def test_resize_channels_last_size_refers_to_space(ndim, rng):
    x = last(sample(rng, ndim, np.float32, channels=5))
    size = (3, 4, 2)[:ndim]
    assert fastdeconv.resize(x, size, data_format="channels_last").shape == (2,) + size + (5,)


# ------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", NDIMS)
def test_max_pool_family_channels_last_same_bits(ndim, dtype, rng):
    kw = POOL[ndim]
    x = sample(rng, ndim, dtype)
    x.reshape(-1)[::7] = x.reshape(-1)[0]          # ties
    x.reshape(-1)[5] = np.nan                      # a NaN wins its windows, and of two
    payload = {np.float32: (np.uint32, 0x7FC00123), np.float64: (np.uint64, 0x7FF8000000000123)}
    bits, value = payload[dtype]
    x.reshape(-1)[6] = np.array(value, dtype=bits).view(dtype)   # the last (its bits)
    y, idx = fastdeconv.max_pool(x, **kw, return_indices=True)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad = fastdeconv.max_pool_backward(g, idx, x.shape)
    # unpooling to the pooled size: the dilated window is the unpooling kernel
    kernel = np.broadcast_to(kw["kernel_size"], ndim)
    extent = tuple(int(d) * (int(k) - 1) + 1
                   for k, d in zip(kernel, np.broadcast_to(kw.get("dilation", 1), ndim)))
    unpool_kw = dict(kernel_size=extent, stride=kw.get("stride"), padding=kw.get("padding", 0))
    u = fastdeconv.max_unpool(y, idx, **unpool_kw, output_size=x.shape[2:])
    h = rng.standard_normal(u.shape).astype(dtype)
    grad_u = fastdeconv.max_unpool_backward(h, idx)
    for fmt in LAST[ndim]:
        yl, idxl = fastdeconv.max_pool(last(x), **kw, return_indices=True, data_format=fmt)
        assert_same_bits(yl, y)
        assert_same_bits(idxl, idx)        # the same per-plane flat spatial positions
        assert_same_bits(fastdeconv.max_pool(last(x), **kw, data_format=fmt), y)
        assert_same_bits(fastdeconv.max_pool_backward(last(g), idxl, last_shape(x.shape),
                                                      data_format=fmt), grad)
        for output_size in (x.shape[2:], last_shape(x.shape)):   # spatial or full shape
            assert_same_bits(fastdeconv.max_unpool(yl, idxl, **unpool_kw,
                                                   output_size=output_size,
                                                   data_format=fmt), u)
        assert_same_bits(fastdeconv.max_unpool_backward(last(h), idxl, data_format=fmt), grad_u)
    for fmt in FIRST[ndim]:
        yf, idxf = fastdeconv.max_pool(x, **kw, return_indices=True, data_format=fmt)
        np.testing.assert_array_equal(yf, y, strict=True)
        np.testing.assert_array_equal(idxf, idx, strict=True)
        np.testing.assert_array_equal(
            fastdeconv.max_pool_backward(g, idx, x.shape, data_format=fmt), grad, strict=True)
        np.testing.assert_array_equal(
            fastdeconv.max_unpool_backward(h, idx, data_format=fmt), grad_u, strict=True)


@pytest.mark.parametrize("ndim", NDIMS)
def test_max_unpool_channels_last_repeated_indices_adjoint_and_matrix(ndim, rng):
    # overlapping windows share maxima: repeated indices, where the last write wins
    x = last(sample(rng, ndim, np.float64, channels=4))
    kw = dict(kernel_size=3, stride=1, padding=1)
    p, idx = fastdeconv.max_pool(x, **kw, return_indices=True, data_format="channels_last")
    size = x.shape[1:-1]
    forward = lambda v: fastdeconv.max_unpool(v, idx, **kw, output_size=size,  # noqa: E731
                                              data_format="channels_last")
    backward = lambda w: fastdeconv.max_unpool_backward(w, idx,  # noqa: E731
                                                        data_format="channels_last")
    assert_adjoint(forward, backward, p.shape, x.shape, rng=rng)
    u = forward(p)
    g = rng.standard_normal(u.shape)
    grad = backward(g)
    for n in range(x.shape[0]):
        m = max_unpool_matrix(idx[n], p.shape[1:], x.shape[1:], data_format=LAST[ndim][1])
        np.testing.assert_array_equal(m @ p[n].ravel(), u[n].ravel())
        np.testing.assert_array_equal(m.T @ g[n].ravel(), grad[n].ravel())
        m_spatial = max_unpool_matrix(idx[n], p.shape[1:], size, data_format="channels_last")
        assert (m_spatial != m).nnz == 0


@pytest.mark.parametrize("ndim", NDIMS)
def test_max_pool_backward_channels_last_adds_overlaps(ndim, rng):
    x = last(sample(rng, ndim, np.float64))
    y, idx = fastdeconv.max_pool(x, 3, stride=1, return_indices=True, data_format="channels_last")
    g = rng.standard_normal(y.shape)
    grad = fastdeconv.max_pool_backward(g, idx, x.shape, data_format="channels_last")
    # the gradient is the sum, per (n, c) plane, of g at every window's argmax
    expected = np.zeros(first(x).shape)
    flat = expected.reshape(x.shape[0], x.shape[-1], -1)
    gi, ii = first(g).reshape(flat.shape[:2] + (-1,)), first(idx).reshape(flat.shape[:2] + (-1,))
    for n in range(flat.shape[0]):
        for c in range(flat.shape[1]):
            np.add.at(flat[n, c], ii[n, c], gi[n, c])
    np.testing.assert_allclose(grad, last(expected), rtol=1e-12)


def test_max_unpool_channels_last_bad_index_is_located_in_callers_layout():
    x = np.ones((1, 2, 3))                    # (N, W, C)
    idx = np.zeros((1, 2, 3), dtype=np.int64)
    idx[0, 1, 2] = 99
    with pytest.raises(ValueError, match=r"indices\[0, 1, 2\] = 99"):
        fastdeconv.max_unpool(x, idx, 2, data_format="NWC")
    with pytest.raises(ValueError, match=r"indices\[0, 1, 2\] = 99"):
        fastdeconv.max_unpool_backward(np.ones((1, 4, 3)), idx, data_format="NWC")
    with pytest.raises(ValueError, match=r"indices\[0, 1, 2\] = 99"):
        fastdeconv.max_pool_backward(x, idx, (1, 4, 3), data_format="NWC")


def test_pool_backward_shape_checks_in_channels_last():
    g = np.ones((1, 2, 3))
    idx = np.zeros((1, 2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"input_shape must be the full shape \(N, \*spatial, C\)"):
        fastdeconv.max_pool_backward(g, idx, (1, 3, 4), data_format="channels_last")
    with pytest.raises(ValueError, match=r"indices must have shape \(N, \*spatial, C\)"):
        fastdeconv.max_unpool_backward(g, np.zeros((1, 2, 4), dtype=np.int64),
                                       data_format="channels_last")


# ---------------------------------------------------------------------------- shuffling
@pytest.mark.parametrize("order", ["CRD", "DCR"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", NDIMS)
def test_pixel_shuffle_channels_last_same_bits_adjoint_and_matrix(ndim, dtype, order, rng):
    factor = (2, 3, 1)[:ndim] if ndim > 1 else 3
    blocks = int(np.prod(factor))
    x = rng.standard_normal((2, 2 * blocks) + SPATIAL[ndim]).astype(dtype)
    y = fastdeconv.pixel_shuffle(x, factor, order=order)
    back = fastdeconv.pixel_unshuffle(y, factor, order=order)
    for fmt in LAST[ndim]:
        yl = fastdeconv.pixel_shuffle(last(x), factor, order=order, data_format=fmt)
        assert_same_bits(yl, y)
        assert_same_bits(fastdeconv.pixel_unshuffle(yl, factor, order=order, data_format=fmt),
                         back)
    for fmt in FIRST[ndim]:
        np.testing.assert_array_equal(
            fastdeconv.pixel_shuffle(x, factor, order=order, data_format=fmt), y, strict=True)
    xl = last(x)
    yl = fastdeconv.pixel_shuffle(xl, factor, order=order, data_format="channels_last")
    assert_adjoint(
        lambda v: fastdeconv.pixel_shuffle(v, factor, order=order, data_format="channels_last"),
        lambda w: fastdeconv.pixel_unshuffle(w, factor, order=order,
                                             data_format="channels_last"),
        xl.shape, yl.shape, rng=rng, dtype=dtype)
    m = pixel_shuffle_matrix(xl.shape[1:], factor, order=order, data_format=LAST[ndim][1])
    for n in range(x.shape[0]):
        np.testing.assert_array_equal(m @ xl[n].ravel(), yl[n].ravel())
        np.testing.assert_array_equal(m.T @ yl[n].ravel(), xl[n].ravel())


def test_pixel_shuffle_channels_last_is_tensorflows_depth_to_space():
    # tf.nn.depth_to_space(x, 2) on NHWC: output[b, 2h + i, 2w + j, c] =
    # input[b, h, w, (i * 2 + j) * C + c]
    x = np.arange(2 * 2 * 3 * 8, dtype=np.float64).reshape(2, 2, 3, 8)   # C = 2
    y = fastdeconv.pixel_shuffle(x, 2, order="DCR", data_format="NHWC")
    b, h, w, i, j, c = np.indices((2, 2, 3, 2, 2, 2)).reshape(6, -1)
    np.testing.assert_array_equal(y[b, 2 * h + i, 2 * w + j, c], x[b, h, w, (i * 2 + j) * 2 + c])


# ------------------------------------------------------------------- every function at once
def _calls(fmt, ndim):
    """Every public function of the family with ``data_format=fmt`` on small channels-last
    data of ``ndim`` spatial dimensions (or the given rank for a wrong alias)."""
    x = np.ones((1,) + (4,) * ndim + (4,))
    idx = np.zeros(x.shape, dtype=np.int64)
    shape = x.shape
    kw = dict(data_format=fmt)
    return {
        "resize": lambda: fastdeconv.resize(x, scale_factor=2, **kw),
        "resize_backward": lambda: fastdeconv.resize_backward(x, shape, size=4, **kw),
        "max_pool": lambda: fastdeconv.max_pool(x, 2, **kw),
        "max_pool_backward": lambda: fastdeconv.max_pool_backward(x, idx, shape, **kw),
        "max_unpool": lambda: fastdeconv.max_unpool(x, idx, 1, **kw),
        "max_unpool_backward": lambda: fastdeconv.max_unpool_backward(x, idx, **kw),
        "pixel_shuffle": lambda: fastdeconv.pixel_shuffle(x, 1, **kw),
        "pixel_unshuffle": lambda: fastdeconv.pixel_unshuffle(x, 1, **kw),
        "resize_matrix": lambda: resize_matrix(shape[1:], 2, **kw),
        "max_unpool_matrix": lambda: max_unpool_matrix(idx[0], shape[1:], shape[1:], **kw),
        "pixel_shuffle_matrix": lambda: pixel_shuffle_matrix(shape[1:], 1, **kw),
    }


FUNCTIONS = list(_calls("channels_last", 1))
PUBLIC = {"resize_matrix": resize_matrix, "max_unpool_matrix": max_unpool_matrix,
          "pixel_shuffle_matrix": pixel_shuffle_matrix}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_data_format_is_a_keyword_only_parameter_defaulting_to_channels_first(function):
    parameter = inspect.signature(PUBLIC.get(function) or getattr(fastdeconv, function)
                                  ).parameters["data_format"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default == "channels_first"
    assert "data_format" in (PUBLIC.get(function) or getattr(fastdeconv, function)).__doc__


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("ndim", NDIMS)
def test_every_function_accepts_every_channels_last_spelling(function, ndim):
    for fmt in LAST[ndim]:
        _calls(fmt, ndim)[function]()


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("fmt", ["nhwc", "channels-last", "NCHW ", "", "HWC", "NCHWD"])
def test_unknown_data_format_raises_valueerror_naming_it(function, fmt):
    with pytest.raises(ValueError, match="data_format.*" + re.escape(repr(fmt))):
        _calls(fmt, 2)[function]()


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("fmt, ndim", [("NHWC", 1), ("NWC", 2), ("NDHWC", 2), ("NCHW", 3),
                                       ("NCW", 3), ("NCDHW", 1)])
def test_alias_of_another_rank_raises_valueerror_naming_data_format(function, fmt, ndim):
    with pytest.raises(ValueError, match=f"data_format='{fmt}' is a layout for"):
        _calls(fmt, ndim)[function]()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_string_data_format_raises_typeerror(function):
    with pytest.raises(TypeError, match="data_format"):
        _calls(None, 2)[function]()


def test_unknown_data_format_fails_before_the_work():
    # an impossible request (a huge output) is not attempted: the layout is checked first
    with pytest.raises(ValueError, match="data_format"):
        fastdeconv.resize(np.ones((1, 1, 2, 2)), (2**40, 2**40), data_format="bogus")


# ------------------------------------------------------------------------------ odd inputs
@pytest.mark.parametrize("ndim", NDIMS)
def test_channels_last_views_and_empty_batches(ndim, rng):
    x = sample(rng, ndim, np.float64)
    view = last(x)[:, ..., ::-1]                  # non-contiguous, negative stride
    assert_same_bits(fastdeconv.resize(view, scale_factor=2, mode="linear",
                                       data_format="channels_last"),
                     fastdeconv.resize(first(view), scale_factor=2, mode="linear"))
    assert_same_bits(fastdeconv.max_pool(view, 2, data_format="channels_last"),
                     fastdeconv.max_pool(first(view), 2))
    for shape in ((0,) + SPATIAL[ndim] + (3,), (2,) + SPATIAL[ndim] + (0,)):
        empty = np.zeros(shape)
        y = fastdeconv.resize(empty, scale_factor=2, data_format="channels_last")
        assert y.shape == shape[:1] + tuple(2 * n for n in shape[1:-1]) + shape[-1:]
        g = fastdeconv.resize_backward(y, shape, scale_factor=2, data_format="channels_last")
        assert g.shape == shape
        assert fastdeconv.pixel_shuffle(empty, 1, data_format="channels_last").shape == shape


# --------------------------------------------------------------------------------- threads
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name, ndim", [("linear", 2), ("cubic", 2), ("nearest2", 3),
                                        ("linear_aa", 1), ("area", 3)])
def test_native_channels_last_bits_do_not_depend_on_threads(name, ndim, batch, rng, threads):
    kw = RESIZE[name][0]
    x = last(sample(rng, ndim, np.float32, channels=5, batch=batch))
    g = None
    results = []
    for count in (1, 2):
        threads(count)
        y = fastdeconv.resize(x, **kw, data_format="channels_last")
        if g is None:
            g = rng.standard_normal(y.shape).astype(np.float32)
        results.append((y, fastdeconv.resize_backward(g, x.shape, **kw,
                                                      data_format="channels_last")))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("ndim", NDIMS)
def test_native_channels_last_pooling_does_not_depend_on_threads(ndim, batch, rng, threads):
    x = last(sample(rng, ndim, np.float64, channels=5, batch=batch))
    kw = dict(kernel_size=3, stride=1, padding=1)      # overlapping: repeated indices
    size = x.shape[1:-1]
    results = []
    for count in (1, 2):
        threads(count)
        y, idx = fastdeconv.max_pool(x, **kw, return_indices=True, data_format="channels_last")
        g = np.cos(np.arange(y.size)).reshape(y.shape)
        results.append((
            y, idx,
            fastdeconv.max_pool_backward(g, idx, x.shape, data_format="channels_last"),
            fastdeconv.max_unpool(y, idx, **kw, output_size=size, data_format="channels_last"),
            fastdeconv.max_unpool_backward(x, idx, data_format="channels_last"),
        ))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------- linear_operator
@pytest.mark.parametrize("fmt", ["channels_last", "NHWC"])
def test_linear_operator_of_upsamplers_in_channels_last(fmt, rng):
    x = rng.standard_normal((6, 5, 4))          # one channels-last sample
    y, idx = fastdeconv.max_pool(x[None], 2, return_indices=True, data_format=fmt)
    operators = {
        "resize": (linear_operator("resize", x.shape, scale_factor=2, mode="linear",
                                   data_format=fmt), x,
                   lambda v: fastdeconv.resize(v, scale_factor=2, mode="linear",
                                               data_format=fmt)),
        "max_unpool": (linear_operator("max_unpool", y.shape[1:], indices=idx[0],
                                       kernel_size=2, output_size=(6, 5), data_format=fmt),
                       y[0], lambda v: fastdeconv.max_unpool(v, idx, 2, output_size=(6, 5),
                                                             data_format=fmt)),
        "pixel_shuffle": (linear_operator("pixel_shuffle", x.shape, upscale_factor=2,
                                          data_format=fmt), x,
                          lambda v: fastdeconv.pixel_shuffle(v, 2, data_format=fmt)),
    }
    for name, (op, v, forward) in operators.items():
        expected = forward(v[None])[0]
        assert op.output_shape == expected.shape, name
        np.testing.assert_allclose(op @ v.ravel(), expected.ravel(), rtol=1e-13)
        np.testing.assert_allclose(op.to_sparse() @ v.ravel(), expected.ravel(), rtol=1e-13)
        g = rng.standard_normal(op.shape[0])
        np.testing.assert_allclose(op.T @ g, op.to_sparse().T @ g, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ benchmark
def test_asv_data_format_suite_runs(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    bench = importlib.import_module("benchmarks.bench_upsample")
    monkeypatch.setattr(bench, "SHAPE", (1, 4, 8, 8))
    for op in bench.DataFormat.params[0]:
        for data_format in bench.DataFormat.params[1]:
            suite = bench.DataFormat()
            suite.setup(op, data_format)
            try:
                suite.time_forward(op, data_format)
                suite.time_backward(op, data_format)
            finally:
                suite.teardown(op, data_format)
