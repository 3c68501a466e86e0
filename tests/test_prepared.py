"""Prepared layers (fastdeconv.PreparedConv, PreparedConvTranspose): the same bits as the plain
call on every kind of geometry, dtype, layout and algorithm, for every thread count; the
weight copied; arguments validated like the plain call's; the packed weight made once and
reused, and the engine's tables made once per plan for plain calls too."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import ALGORITHMS, _chooser
from fastdeconv._ext import _direct_conv, _packed_col2im, _packed_conv, _winograd_kernels

#: (op, x shape, weight shape, keywords): 1-3 d, groups, strides, padding (asymmetric and
#: strings), output_padding, dilation, padding modes.
GEOMETRIES = [
    ("conv", (2, 3, 11), (4, 3, 3), dict(stride=2, padding=1)),
    ("conv", (2, 4, 9, 8), (6, 2, 3, 3), dict(padding=1, groups=2)),
    ("conv", (1, 3, 10, 9), (5, 3, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)),
                                               dilation=(1, 2))),
    ("conv", (2, 4, 8, 8), (8, 4, 3, 3), dict(padding="same", padding_mode="reflect")),
    ("conv", (2, 8, 7, 7), (6, 8, 1, 1), {}),
    ("conv", (1, 2, 5, 6, 4), (3, 2, 3, 3, 2), dict(stride=2, padding=1)),
    ("conv", (2, 16, 12, 12), (16, 16, 3, 3), dict(padding=1)),
    ("conv_transpose", (2, 5, 9), (5, 7, 3), dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose", (2, 3, 5, 6), (3, 5, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose", (2, 8, 4, 4), (8, 3, 2, 2), dict(stride=2, groups=4)),
    ("conv_transpose", (1, 6, 5, 7), (6, 4, 3, 5), dict(stride=(2, 3),
                                                        padding=((2, 0), (1, 3)))),
    ("conv_transpose", (2, 4, 6, 6), (4, 3, 3, 3), dict(padding=1, dilation=2)),
    ("conv_transpose", (1, 4, 4, 3, 5), (4, 3, 3, 3, 3), dict(stride=2, padding=1,
                                                              output_padding=1)),
    ("conv_transpose", (2, 37, 6, 5), (37, 45, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose", (2, 16, 8, 8), (16, 16, 3, 3), dict(padding=1)),
]

LAYERS = {"conv": fastdeconv.PreparedConv, "conv_transpose": fastdeconv.PreparedConvTranspose}
PASSES = {"conv": "forward", "conv_transpose": "backward_input"}


def _operands(rng, op, x_shape, w_shape, kw, dtype, with_bias=True):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    channels = w_shape[0] if op == "conv" else w_shape[1] * kw.get("groups", 1)
    bias = rng.standard_normal(channels).astype(dtype) if with_bias else None
    return x, w, bias


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("op, x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_prepared_layer_gives_the_plain_calls_bits(op, x_shape, w_shape, kw, dtype, with_bias,
                                                   rng):
    x, w, bias = _operands(rng, op, x_shape, w_shape, kw, dtype, with_bias)
    layer = LAYERS[op](w, bias, **kw)
    plain = getattr(fastdeconv, op)
    expected = plain(x, w, bias, **kw)
    for _ in range(2):                                      # the first call, then from cache
        assert _same_bits(layer(x), expected)
    other = x[:1] * 2                                       # another shape, then the first
    assert _same_bits(layer(other), plain(other, w, bias, **kw))
    assert _same_bits(layer(x), expected)


@pytest.mark.parametrize("op, x_shape, w_shape, kw", GEOMETRIES[::2])
def test_prepared_layer_gives_the_plain_calls_bits_with_every_algorithm(op, x_shape, w_shape,
                                                                        kw, rng):
    x, w, bias = _operands(rng, op, x_shape, w_shape, kw, np.float32)
    layer = LAYERS[op](w, bias, **kw)
    for name in ALGORITHMS[PASSES[op]]:
        with _dispatch.forced_algorithm(name):
            expected = getattr(fastdeconv, op)(x, w, bias, **kw)
            assert _same_bits(layer(x), expected), name
            assert _same_bits(layer(x), expected), name


@pytest.mark.parametrize("op, x_shape, w_shape, kw", [
    ("conv", (2, 3, 9, 8), (4, 3, 3, 3), dict(padding=1)),
    ("conv", (2, 6, 7, 7), (5, 6, 1, 1), {}),                        # native 1x1 GEMM
    ("conv_transpose", (2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose", (2, 6, 7, 7), (6, 5, 1, 1), {}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_last_and_weight_formats(op, x_shape, w_shape, kw, dtype, rng):
    x, w, bias = _operands(rng, op, x_shape, w_shape, kw, dtype)
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    fmt = "HWIO" if op == "conv" else "HWOI"
    w_hw = np.ascontiguousarray(np.moveaxis(w, (0, 1), (-1, -2) if op == "conv" else (-1, -2)))
    for algorithm in ("packed", "packed_phases", "packed_col2im", None):
        layer = LAYERS[op](w_hw, bias, data_format="channels_last", weight_format=fmt, **kw)
        plain = getattr(fastdeconv, op)
        with _dispatch.forced_algorithm(algorithm or "im2col"):
            expected = plain(x_last, w_hw, bias, data_format="channels_last",
                             weight_format=fmt, **kw)
            assert _same_bits(layer(x_last), expected)
            assert _same_bits(layer(x_last), expected)
        assert _same_bits(layer.weight, w_hw)


@pytest.mark.parametrize("op, x_shape, w_shape, kw", [
    ("conv", (3, 16, 20, 20), (24, 16, 3, 3), dict(padding=1, stride=2)),
    ("conv_transpose", (3, 32, 10, 10), (32, 24, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose", (2, 32, 6, 6, 6), (32, 16, 3, 3, 3), dict(stride=2, padding=1,
                                                                  output_padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_bits_do_not_depend_on_the_thread_count(op, x_shape, w_shape, kw, dtype, rng,
                                                         assert_same_bits_for_thread_counts):
    x, w, bias = _operands(rng, op, x_shape, w_shape, kw, dtype)
    layer = LAYERS[op](w, bias, **kw)          # prepared on one thread count, run on others
    for algorithm in ["packed"] if op == "conv" else ["packed_phases", "packed_col2im"]:
        with _dispatch.forced_algorithm(algorithm):
            expected = getattr(fastdeconv, op)(x, w, bias, **kw)
            assert_same_bits_for_thread_counts(lambda: layer(x))
            assert _same_bits(layer(x), expected)


def test_output_size_per_call(rng):
    x, w, bias = _operands(rng, "conv_transpose", (1, 4, 5, 5), (4, 3, 3, 3), {}, np.float32)
    layer = fastdeconv.PreparedConvTranspose(w, bias, stride=2, padding=1)
    for size in [(9, 9), (10, 10), [10, 9], np.array([9, 10]), None]:
        expected = fastdeconv.conv_transpose(x, w, bias, stride=2, padding=1, output_size=size)
        assert _same_bits(layer(x, output_size=size), expected)
    with pytest.raises(ValueError, match="output_size"):
        layer(x, output_size=(12, 9))
    with pytest.raises(TypeError, match="output_size"):       # not hidden by the cached (9, 9)
        layer(x, output_size=(9.0, 9))


def test_the_weight_and_bias_are_copied(rng):
    x, w, bias = _operands(rng, "conv_transpose", (2, 4, 5, 5), (4, 3, 4, 4), {}, np.float32)
    expected = fastdeconv.conv_transpose(x, w, bias, stride=2)
    layer = fastdeconv.PreparedConvTranspose(w, bias, stride=2)
    w[:] = 0
    bias[:] = 0
    assert _same_bits(layer(x), expected)
    assert not layer.weight.flags.writeable and not layer.bias.flags.writeable
    assert not np.shares_memory(layer.weight, w) and layer.nbytes >= w.nbytes + bias.nbytes


@pytest.mark.parametrize("make, error, match", [
    (lambda w: fastdeconv.PreparedConv(w, stride=0), ValueError, "stride"),
    (lambda w: fastdeconv.PreparedConv(w, stride=1.5), TypeError, "stride"),
    (lambda w: fastdeconv.PreparedConv(w, padding=-1), ValueError, "padding"),
    (lambda w: fastdeconv.PreparedConv(w, padding="bogus"), ValueError, "padding"),
    (lambda w: fastdeconv.PreparedConv(w, dilation=(1, 0)), ValueError, "dilation"),
    (lambda w: fastdeconv.PreparedConv(w, groups="2"), TypeError, "groups"),
    (lambda w: fastdeconv.PreparedConv(w, groups=0), ValueError, "groups"),
    (lambda w: fastdeconv.PreparedConv(w, groups=3), ValueError, "groups=3"),
    (lambda w: fastdeconv.PreparedConv(w, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda w: fastdeconv.PreparedConv(w, data_format="NCW"), ValueError, "data_format"),
    (lambda w: fastdeconv.PreparedConv(w, weight_format="XY"), ValueError, "weight_format"),
    (lambda w: fastdeconv.PreparedConv(w, np.ones(3)), ValueError, "bias"),
    (lambda w: fastdeconv.PreparedConv(w, cache_size=0), ValueError, "cache_size"),
    (lambda w: fastdeconv.PreparedConv(None), TypeError, "weight"),
    (lambda w: fastdeconv.PreparedConv(np.ones((4, 3, 0, 3))), ValueError, "weight"),
    (lambda w: fastdeconv.PreparedConv(w[0, 0]), ValueError, "weight"),
    (lambda w: fastdeconv.PreparedConv(w.astype(complex)), TypeError, "weight"),
    (lambda w: fastdeconv.PreparedConvTranspose(w, output_padding=2, stride=2), ValueError,
     "output_padding"),
    (lambda w: fastdeconv.PreparedConvTranspose(w, np.ones((3, 1))), ValueError, "bias"),
    (lambda w: fastdeconv.PreparedConvTranspose(w, stride=(1, 2, 3)), ValueError, "stride"),
])
def test_bad_parameters_are_rejected_when_the_layer_is_made(make, error, match):
    with pytest.raises(error, match=match):
        make(np.ones((4, 3, 3, 3)))


def test_bad_inputs_are_rejected_naming_x():
    layer = fastdeconv.PreparedConv(np.ones((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        layer(np.ones((3, 8, 8)))
    with pytest.raises(ValueError, match="channels of x"):
        layer(np.ones((1, 2, 8, 8)))
    with pytest.raises(TypeError, match="x has complex dtype"):
        layer(np.ones((1, 3, 8, 8), complex))
    with pytest.raises(ValueError, match="kernel size is larger"):
        layer(np.ones((1, 3, 2, 8)))
    with pytest.raises(TypeError, match="x could not be converted"):
        layer([[1], [1, 2]])


def test_dtype_follows_the_inputs_as_in_the_plain_call(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    layer = fastdeconv.PreparedConv(w, padding=1)
    for x in (rng.standard_normal((1, 3, 6, 6)),
              rng.standard_normal((1, 3, 6, 6)).astype(np.float16),
              np.arange(108).reshape(1, 3, 6, 6)):
        assert _same_bits(layer(x), fastdeconv.conv(x, w, padding=1))


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("op, algorithm, module, pack, kernel", [
    ("conv", "packed", _packed_conv, "pack_forward_weight", (4, 4)),
    ("conv_transpose", "packed_phases", _packed_conv, "pack_phases_weight", (4, 4)),
    ("conv_transpose", "packed_col2im", _packed_col2im, "pack_col2im_weight", (4, 4)),
    ("conv", "winograd", _winograd_kernels, "winograd_weight", (3, 3)),
    ("conv_transpose", "winograd", _winograd_kernels, "winograd_weight", (3, 3)),
    ("conv_transpose", "winograd", _winograd_kernels, "winograd_weight", (4, 4)),  # phases
    ("conv_transpose", "subpixel", _direct_conv, "pack_weight_gathered", (32, 32)),  # direct
    ("conv", "direct", _direct_conv, "pack_weight", (3, 3)),
])
def test_the_weight_is_prepared_once_and_reused(op, algorithm, module, pack, kernel,
                                                monkeypatch, rng):
    packs = _counting(monkeypatch, module, pack)
    stride = {(4, 4): 2, (32, 32): 16}.get(kernel, 1)
    phases = 4 if algorithm == "winograd" and stride == 2 else 1      # a U per phase
    # col2im's packed A follows the register tile its GEMM's columns choose: batches of 4
    # and 2 both take 8 x 48 (a batch of 3, 12 x 32: another form, packed once too)
    batch = 4 if algorithm == "packed_col2im" else 3
    x, w, bias = _operands(rng, op, (batch, 8, 9, 9), (8, 8) + kernel, {}, np.float32)
    layer = LAYERS[op](w, bias, stride=stride)
    with _dispatch.forced_algorithm(algorithm):
        for _ in range(4):
            layer(x)
        assert len(packs) == phases
        size = layer.nbytes
        assert size > w.nbytes + bias.nbytes           # the prepared weight is held
        layer(x[:2])                                     # another batch: the same form
        assert len(packs) == phases and layer.nbytes == size
    layer.clear_cache()
    assert layer.nbytes == w.nbytes + bias.nbytes


def test_the_cache_is_bounded(rng):
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    layer = fastdeconv.PreparedConvTranspose(w, stride=2, cache_size=2)
    with _dispatch.forced_algorithm("packed_phases"):
        for size in range(3, 12):
            layer(rng.standard_normal((1, 8, size, size)).astype(np.float32))
    assert len(layer._entries) == 2
    assert layer.nbytes <= w.nbytes * 2 + 2 * 8 * 4 * 16 * 4 * 2   # weight + 2 packed, padded


@pytest.mark.parametrize("op, algorithm, tables", [
    ("conv", "packed", "forward_tables"),
    ("conv_transpose", "packed_phases", "phases_tables"),
])
def test_plain_calls_make_the_engine_tables_once_per_plan(op, algorithm, tables, monkeypatch,
                                                          rng):
    _chooser._choose.cache_clear()                  # fresh plans: no tables made before
    made = _counting(monkeypatch, _packed_conv, tables)
    x, w, bias = _operands(rng, op, (2, 8, 9, 9), (8, 8, 4, 4), dict(stride=2), np.float32)
    with _dispatch.forced_algorithm(algorithm):
        first = getattr(fastdeconv, op)(x, w, bias, stride=2)
        for _ in range(3):
            assert _same_bits(getattr(fastdeconv, op)(x, w, bias, stride=2), first)
    assert len(made) == 1


def test_a_changed_budget_chooses_and_prepares_again(rng, replace_budget):
    x, w, bias = _operands(rng, "conv_transpose", (2, 32, 8, 8), (32, 16, 4, 4), {},
                           np.float32)
    layer = fastdeconv.PreparedConvTranspose(w, bias, stride=2, padding=1)
    with _dispatch.forced_algorithm("packed_phases"):
        assert _same_bits(layer(x), fastdeconv.conv_transpose(x, w, bias, stride=2, padding=1))
        replace_budget(workspace_bytes=4 * 32 * 10 * 10)  # one sample's padded copy per call
        assert _dispatch.plan("backward_input", layer._entries[next(iter(layer._entries))]
                              .problem, 4).samples_per_tile == 1
        assert _same_bits(layer(x), fastdeconv.conv_transpose(x, w, bias, stride=2, padding=1))
    replace_budget(packed_phases_min_rows=10**6)          # another algorithm, by the rules
    assert _same_bits(layer(x), fastdeconv.conv_transpose(x, w, bias, stride=2, padding=1))


def test_compiled_runs_reject_a_weight_packed_for_other_tables(rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    tables = _packed_conv.forward_tables(x.shape, w.shape, (1, 5, 4, 4), np.float32)
    other = _packed_conv.forward_tables(x.shape, w.shape, (1, 5, 4, 4), np.float64)
    packed = _packed_conv.pack_forward_weight(tables, w)
    y = np.empty((1, 5, 4, 4), np.float32)
    _packed_conv.conv_forward_run(tables, x, packed, y)
    assert _same_bits(y, _packed_conv.conv_forward_packed(x, w, np.empty_like(y)))
    with pytest.raises(ValueError, match="packed for other tables"):
        _packed_conv.conv_forward_run(other, x.astype(np.float64), packed,
                                      y.astype(np.float64))
    with pytest.raises(ValueError, match="x must have the tables' shape"):
        _packed_conv.conv_forward_run(tables, x[:, :3].copy(), packed, y)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        _packed_conv.pack_forward_weight(tables, w.astype(np.float64))
    with pytest.raises(ValueError, match="x_shape must be a tuple"):
        _packed_conv.forward_tables([1, 4, 6, 6], w.shape, (1, 5, 4, 4), np.float32)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _packed_conv.forward_tables(x.shape, w.shape, (1, 5, 4, 4), np.int32)


@pytest.mark.parametrize("op, kernel, stride", [("conv", (3, 3), 1),
                                                ("conv_transpose", (3, 3), 1),
                                                ("conv_transpose", (4, 4), 2)])
def test_winograd_with_a_nan_input_falls_back_as_the_plain_call(op, kernel, stride, rng):
    x, w, bias = _operands(rng, op, (2, 8, 9, 9), (8, 8) + kernel, {}, np.float64)
    x[1, 3, 4, 4] = np.nan
    layer = LAYERS[op](w, bias, stride=stride)
    with _dispatch.forced_algorithm("winograd"):
        expected = getattr(fastdeconv, op)(x, w, bias, stride=stride)
        assert np.isnan(expected).any() and not np.isnan(expected[0]).any()
        assert _same_bits(layer(x), expected) and _same_bits(layer(x), expected)


def test_a_layer_called_from_several_threads_gives_the_plain_calls_bits(rng):
    from concurrent.futures import ThreadPoolExecutor

    w = rng.standard_normal((128, 64, 4, 4)).astype(np.float32)
    layer = fastdeconv.PreparedConvTranspose(w, stride=2, padding=1, cache_size=3)
    xs = [rng.standard_normal((n, 128, 5 + n % 3, 6)).astype(np.float32) for n in range(3, 9)]
    expected = [fastdeconv.conv_transpose(x, w, stride=2, padding=1) for x in xs]
    with ThreadPoolExecutor(4) as pool:      # (a forced algorithm is per thread: none here)
        for _ in range(3):
            results = list(pool.map(layer, xs))
    assert all(_same_bits(r, e) for r, e in zip(results, expected))
    assert layer.nbytes > w.nbytes                  # packed_phases ran, by the rules
