"""fastdeconv.compat.tf and .keras: explained calls, argument errors, and TensorFlow / Keras 3
as slow optional oracles (random sweeps, float32).

The oracle tests are marked ``slow`` (deselected by default) and need TensorFlow or Keras;
without them they skip, unless ``FASTDECONV_REQUIRE_TF=1`` / ``FASTDECONV_REQUIRE_KERAS=1``
makes a missing framework a failure. TensorFlow is a large install, kept out of the project's
environment (the porting page of the user guide gives the commands)::

    # TensorFlow and Keras on its TensorFlow backend, in a separate environment
    FASTDECONV_REQUIRE_TF=1 FASTDECONV_REQUIRE_KERAS=1 PYTHONPATH=$PWD \\
        /work/venv-tf/bin/python -m pytest -m slow -p no:cacheprovider tests/test_compat_tf_keras.py
    # Keras on the JAX backend, in the project's environment (pip install keras)
    FASTDECONV_REQUIRE_KERAS=1 PYTHONPATH=$PWD \\
        python -m pytest -m slow -p no:cacheprovider tests/test_compat_tf_keras.py -k keras

TensorFlow's default CPU kernels (oneDNN) return wrong results for two of the random
convolutions (``TF_ONEDNN_WRONG``: a strided ``conv3d``; a dilated ``conv1d`` whose output is
empty comes back as an array of the input's length, zeros or uninitialised memory -- also
through Keras's TensorFlow backend); its reference kernels
(``TF_ENABLE_ONEDNN_OPTS=0``) agree with fastdeconv there, and so does a direct sum, which the
test checks instead. (With ``TF_ENABLE_ONEDNN_OPTS=0`` the sweep refuses more cases: the
reference kernels lack dilated and grouped variants.)

``python tests/test_compat_tf_keras.py`` prints the counts per function (cases, matches,
refused by both, refused by TensorFlow only -- CPU kernels TensorFlow lacks --, mismatches).
"""

import collections
import os

import numpy as np
import pytest

import fastdeconv
from fastdeconv.compat import keras as compat_keras
from fastdeconv.compat import tf as compat_tf

CASES = 60          # random cases per function and framework
RESIZE_CASES = 120
RTOL = 2e-5         # float32, relative to max(1, max |expected|)
#: TensorFlow's bicubic resize (not antialiased) reads Keys' weights from a table of 1024
#: fractions per pixel, i.e. rounds every fraction to 1/1024: up to ~1e-3 relative error
#: against exact weights (fastdeconv's, and JAX's, whose Keras backend matches at RTOL)
RTOL_TF_BICUBIC = 3e-3


# ---------------------------------------------------------------------- comparison
def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def compare(oracle, function, arguments, keywords, names, rtol=RTOL):
    """Compare ``function(*arguments, **keywords)`` with ``oracle()``: ``"match"``, ``"both
    refuse"``, ``"oracle refuses"`` (a case the framework does not run, e.g. a CPU kernel it
    lacks), ``"not expressible"`` (NotImplementedError, e.g. TensorFlow's fractional area
    filter), ``"empty output refused"`` (Keras's JAX backend refuses an empty convolution
    output; its TensorFlow backend returns it, or with oneDNN an array of the input's shape
    holding uninitialised memory), or raise AssertionError. The explained call
    must evaluate to the result."""
    try:
        expected = _numpy(oracle())
    except Exception:   # noqa: BLE001 -- any refusal of the framework counts
        expected = None
    try:
        actual = function(*arguments, **keywords)
    except NotImplementedError:
        return "oracle refuses" if expected is None else "not expressible"
    except (ValueError, TypeError) as exc:
        if expected is None:
            return "both refuse"
        if expected.size == 0 or "larger than the padded input" in str(exc):
            return "empty output refused"   # TF's oneDNN returns garbage there (module doc)
        raise
    if expected is None:
        return "oracle refuses"
    assert actual.shape == expected.shape, (actual.shape, expected.shape, keywords)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    assert error <= rtol * scale, f"error {error:.3g} (scale {scale:.3g}) for {keywords}"
    text = function(*arguments, explain=True, **keywords)
    scope = dict(np=np, fastdeconv=fastdeconv, **dict(zip(names, arguments)))
    np.testing.assert_array_equal(eval(text, scope), actual, err_msg=text)
    return "match"


def _floats(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _shape(n, batch, channels, spatial, last):
    return (batch,) + tuple(spatial) + (channels,) if last else (batch, channels) + tuple(spatial)


# ---------------------------------------------------------------------- TensorFlow cases
def tf_conv_case(seed, tf):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    last = rng.random() < 0.8
    data_format = compat_tf._FORMATS[n][0 if last else 1]
    groups = int(rng.integers(1, 3)) if rng.random() < 0.3 else 1
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    spatial = rng.integers(3, 9 if n < 3 else 6, n)
    kernel = rng.integers(1, 4, n)
    strides = [int(v) for v in rng.integers(1, 3, n)]
    dilations = [int(v) for v in rng.integers(1, 3, n)] if rng.random() < 0.4 else None
    if n == 2 and rng.random() < 0.4:
        pairs = [[int(v) for v in rng.integers(0, 3, 2)] for _ in range(n)]
        padding = [[0, 0]] + pairs + [[0, 0]] if last else [[0, 0], [0, 0]] + pairs
    else:
        padding = ["SAME", "VALID"][rng.integers(2)]
    x = _floats(rng, _shape(n, int(rng.integers(1, 3)), c_in, spatial, last))
    w = _floats(rng, tuple(kernel) + (c_in // groups, c_out))
    function = {1: compat_tf.conv1d, 2: compat_tf.conv2d, 3: compat_tf.conv3d}[n]
    oracle_function = {1: tf.nn.conv1d, 2: tf.nn.conv2d, 3: tf.nn.conv3d}[n]
    stride = strides if n != 3 else [1] + strides + [1] if last else [1, 1] + strides
    keywords = dict(data_format=data_format, dilations=dilations)
    arguments = (x, w, stride, padding)
    return (lambda: oracle_function(*arguments, **keywords)), function, arguments, keywords, (
        "input", "filters")


def _transpose_output_size(rng, n_in, k_eff, stride, padding):
    """An output size that the forward convolution maps back onto ``n_in``."""
    if padding == "SAME":
        return int(rng.integers((n_in - 1) * stride + 1, n_in * stride + 1))
    before, after = (0, 0) if padding == "VALID" else padding
    low = (n_in - 1) * stride + k_eff - before - after
    return int(rng.integers(max(low, 1), max(low, 1) + stride))


def tf_conv_transpose_case(seed, tf):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(1, 4))
    last = True
    c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    spatial = [int(v) for v in rng.integers(1, 6 if n < 3 else 4, n)]
    kernel = [int(v) for v in rng.integers(1, 5, n)]
    strides = [int(v) for v in rng.integers(1, 4, n)]
    dilations = None
    if rng.random() < 0.3:
        dilations = [int(v) for v in rng.integers(1, 3, n)]
    k_effs = [(d or 1) * (k - 1) + 1 for k, d in zip(kernel, dilations or [1] * n)]
    if n == 2 and rng.random() < 0.4:
        pairs = [tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(n)]
        padding = [[0, 0]] + [list(p) for p in pairs] + [[0, 0]]
        sizes = [_transpose_output_size(rng, i, k, s, p)
                 for i, k, s, p in zip(spatial, k_effs, strides, pairs)]
    else:
        padding = ["SAME", "VALID"][rng.integers(2)]
        sizes = [_transpose_output_size(rng, i, k, s, padding)
                 for i, k, s in zip(spatial, k_effs, strides)]
    batch = int(rng.integers(1, 3))
    x = _floats(rng, _shape(n, batch, c_in, spatial, last))
    w = _floats(rng, tuple(kernel) + (c_out, c_in))
    output_shape = [batch] + sizes + [c_out]
    function = {1: compat_tf.conv1d_transpose, 2: compat_tf.conv2d_transpose,
                3: compat_tf.conv3d_transpose}[n]
    oracle_function = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose,
                       3: tf.nn.conv3d_transpose}[n]
    stride = strides if n != 3 else [1] + strides + [1]
    keywords = dict(padding=padding, dilations=dilations)
    arguments = (x, w, output_shape, stride)
    return (lambda: oracle_function(*arguments, **keywords)), function, arguments, keywords, (
        "input", "filters")


def tf_resize_case(seed, tf):
    rng = np.random.default_rng(2000 + seed)
    method = ["bilinear", "nearest", "bicubic", "area"][rng.integers(4)]
    antialias = bool(rng.random() < 0.3)
    preserve = bool(rng.random() < 0.2)
    in_size = [int(v) for v in rng.integers(1, 9, 2)]
    if method == "area" and rng.random() < 0.8:   # mostly sizes that divide each other
        size = [i * int(rng.integers(1, 4)) if rng.random() < 0.5 else
                max(i // int(rng.integers(1, 3)), 1) for i in in_size]
        size = [s if (s % i == 0 or i % s == 0) else i for s, i in zip(size, in_size)]
    else:
        size = [int(v) for v in rng.integers(1, 13, 2)]
    shape = [int(rng.integers(1, 3))] + in_size + [int(rng.integers(1, 4))]
    images = _floats(rng, shape[1:] if rng.random() < 0.2 else shape)
    keywords = dict(method=method, antialias=antialias, preserve_aspect_ratio=preserve)
    arguments = (images, size)
    return (lambda: tf.image.resize(*arguments, **keywords)), compat_tf.resize, arguments, \
        keywords, ("images",)


def tf_depth_to_space_case(seed, tf):
    rng = np.random.default_rng(3000 + seed)
    block = int(rng.integers(2, 4))
    x = _floats(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                      int(rng.integers(1, 4)), block * block * int(rng.integers(1, 3))))
    return (lambda: tf.nn.depth_to_space(x, block)), compat_tf.depth_to_space, (x, block), \
        {}, ("input",)


# ---------------------------------------------------------------------- Keras cases
def keras_conv_case(seed, keras):
    rng = np.random.default_rng(4000 + seed)
    n = int(rng.integers(1, 4))
    data_format = ["channels_last", "channels_first", None][rng.integers(3)]
    last = data_format != "channels_first"
    groups = int(rng.integers(1, 3)) if rng.random() < 0.3 else 1
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    spatial = rng.integers(3, 9 if n < 3 else 6, n)
    kernel = rng.integers(1, 4, n)
    strides = int(rng.integers(1, 3)) if rng.random() < 0.5 else tuple(
        int(v) for v in rng.integers(1, 3, n))
    dilation = 1 if rng.random() < 0.6 else int(rng.integers(1, 3))
    if dilation > 1:
        strides = 1   # Keras refuses strides > 1 with dilation > 1 in some backends
    x = _floats(rng, _shape(n, int(rng.integers(1, 3)), c_in, spatial, last))
    w = _floats(rng, tuple(kernel) + (c_in // groups, c_out))
    keywords = dict(strides=strides, padding=["valid", "same"][rng.integers(2)],
                    data_format=data_format, dilation_rate=dilation)
    return (lambda: keras.ops.conv(x, w, **keywords)), compat_keras.conv, (x, w), keywords, (
        "inputs", "kernel")


def keras_conv_transpose_case(seed, keras):
    rng = np.random.default_rng(5000 + seed)
    n = int(rng.integers(1, 4))
    data_format = ["channels_last", "channels_first", None][rng.integers(3)]
    last = data_format != "channels_first"
    c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    spatial = rng.integers(1, 6 if n < 3 else 4, n)
    kernel = [int(v) for v in rng.integers(1, 5, n)]
    strides = int(rng.integers(1, 4))
    dilation = int(rng.integers(1, 3)) if rng.random() < 0.3 else 1
    output_padding = None if rng.random() < 0.5 else int(rng.integers(0, strides))
    x = _floats(rng, _shape(n, int(rng.integers(1, 3)), c_in, spatial, last))
    w = _floats(rng, tuple(kernel) + (c_out, c_in))
    keywords = dict(strides=strides, padding=["valid", "same"][rng.integers(2)],
                    output_padding=output_padding, data_format=data_format,
                    dilation_rate=dilation)
    return (lambda: keras.ops.conv_transpose(x, w, **keywords)), compat_keras.conv_transpose, \
        (x, w), keywords, ("inputs", "kernel")


def keras_upsampling_case(seed, keras):
    rng = np.random.default_rng(6000 + seed)
    data_format = ["channels_last", "channels_first", None][rng.integers(3)]
    size = int(rng.integers(1, 4)) if rng.random() < 0.5 else tuple(
        int(v) for v in rng.integers(1, 4, 2))
    interpolation = ["nearest", "bilinear", "bicubic"][rng.integers(3)]
    last = data_format != "channels_first"
    x = _floats(rng, _shape(2, int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                            rng.integers(1, 7, 2), last))
    keywords = dict(interpolation=interpolation, data_format=data_format)

    def oracle():
        layer = keras.layers.UpSampling2D(size=size, **keywords)
        return keras.ops.convert_to_numpy(layer(x))

    return oracle, compat_keras.upsampling, (x, size), keywords, ("x", "size")


TF_SWEEPS = {"conv": (tf_conv_case, CASES), "conv_transpose": (tf_conv_transpose_case, CASES),
             "resize": (tf_resize_case, RESIZE_CASES),
             "depth_to_space": (tf_depth_to_space_case, CASES // 2)}
KERAS_SWEEPS = {"conv": (keras_conv_case, CASES),
                "conv_transpose": (keras_conv_transpose_case, CASES),
                "upsampling": (keras_upsampling_case, CASES)}


def _keras_numpy(keras, make):
    oracle, *rest = make
    return (lambda: keras.ops.convert_to_numpy(oracle())), *rest


def _rtol(tensorflow_bicubic, keywords):
    bicubic = "bicubic" in (keywords.get("method"), keywords.get("interpolation"))
    return RTOL_TF_BICUBIC if tensorflow_bicubic and bicubic and not keywords.get(
        "antialias") else RTOL


#: (sweep, seed): TensorFlow's oneDNN kernels are wrong there (see the module docstring)
TF_ONEDNN_WRONG = {("conv", 30): "dilated conv1d with an empty output: zeros of length 4",
                   ("conv", 53): "conv3d with strides (2, 1, 2): wrong values"}


def _direct_conv(x, w, stride, dilation):
    """``VALID`` channels-last convolution of one group by a sum per output position."""
    n = w.ndim - 2
    k_eff = [d * (k - 1) + 1 for k, d in zip(w.shape[:n], dilation)]
    out = [max(0, (i - k) // s + 1) for i, k, s in zip(x.shape[1:-1], k_eff, stride)]
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for position in np.ndindex(*out):
        window = tuple(slice(o * s, o * s + k, d) for o, s, k, d in zip(
            position, stride, k_eff, dilation))
        y[(slice(None), *position)] = np.tensordot(
            x[(slice(None), *window)], w, axes=(range(1, n + 2), range(n + 1)))
    return y


#: what each sweep may answer besides "match" and "both refuse"
ALLOWED = {"conv": {"oracle refuses", "empty output refused"}, "resize": {"not expressible"},
           "conv_transpose": {"oracle refuses"}}


@pytest.mark.slow
@pytest.mark.parametrize("name, seed", [(name, seed) for name, (_, count) in TF_SWEEPS.items()
                                        for seed in range(count)])
def test_tf_oracle(tf, name, seed):
    make, _ = TF_SWEEPS[name]
    case = make(seed, tf)
    if (name, seed) in TF_ONEDNN_WRONG:
        _, function, (x, w, stride, padding), keywords, _ = case
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            with pytest.raises(AssertionError):
                compare(*case)
        n = w.ndim - 2
        strides = stride if len(stride) == n else stride[1:-1]
        expected = _direct_conv(x, w, strides, keywords["dilations"] or [1] * n)
        np.testing.assert_allclose(function(x, w, stride, padding, **keywords), expected,
                                   rtol=1e-5, atol=1e-5)
        return
    outcome = compare(*case, rtol=_rtol(True, case[3]))
    assert outcome in {"match", "both refuse"} | ALLOWED.get(name, set())


@pytest.mark.slow
@pytest.mark.parametrize("name, seed", [(name, seed) for name, (_, count) in KERAS_SWEEPS.items()
                                        for seed in range(count)])
def test_keras_oracle(keras, name, seed):
    make, _ = KERAS_SWEEPS[name]
    case = _keras_numpy(keras, make(seed, keras))
    outcome = compare(*case, rtol=_rtol(keras.backend.backend() == "tensorflow", case[3]))
    assert outcome in {"match", "both refuse"} | ALLOWED.get(name, set())


# ---------------------------------------------------------------------- without frameworks
def _explained(function, arguments, names, **keywords):
    text = function(*arguments, explain=True, **keywords)
    scope = dict(np=np, fastdeconv=fastdeconv, **dict(zip(names, arguments)))
    np.testing.assert_array_equal(eval(text, scope), function(*arguments, **keywords))
    return text


def test_explained_tf_calls_give_the_results(rng):
    x, w = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((3, 2, 3, 4))
    assert _explained(compat_tf.conv2d, (x, w, [1, 2, 1, 1], "SAME"), ("input", "filters"),
                      dilations=[1, 2]) == (
        "fastdeconv.conv(input, filters, stride=(2, 1), padding='same', dilation=(1, 2), "
        "data_format='NHWC', weight_format='HWIO')")
    wt = rng.standard_normal((3, 3, 4, 3))
    text = _explained(compat_tf.conv2d_transpose, (x, wt, [2, 12, 10, 4], 2),
                      ("input", "filters"))
    assert "padding='same'" in text and "weight_format='HWOI'" in text
    _explained(compat_tf.conv1d, (x[:, 0], w[0], 2, "VALID"), ("input", "filters"))
    _explained(compat_tf.resize, (x[0], (9, 4)), ("images",), method="bicubic")
    _explained(compat_tf.resize, (x, (3, 10)), ("images",), antialias=True)
    _explained(compat_tf.depth_to_space, (rng.standard_normal((1, 2, 2, 8)), 2), ("input",))


def test_explained_keras_calls_give_the_results(rng):
    x, w = rng.standard_normal((2, 5, 6, 4)), rng.standard_normal((3, 3, 2, 6))
    _explained(compat_keras.conv, (x, w), ("inputs", "kernel"), padding="same", strides=2)
    wt = rng.standard_normal((3, 3, 5, 4))
    text = _explained(compat_keras.conv_transpose, (x, wt), ("inputs", "kernel"), strides=2,
                      padding="valid", output_padding=1)
    assert text.startswith("fastdeconv.conv_transpose(inputs, kernel, stride=(2, 2)")
    _explained(compat_keras.upsampling, (x, 2), ("x", "size"), interpolation="bicubic",
               data_format="channels_first")


def test_tf_and_keras_transposed_shapes_follow_their_rules():
    x = np.ones((1, 5, 5, 3))
    for k in (1, 2, 3, 4):
        kernel = np.ones((k, k, 2, 3))
        for s in (1, 2, 3):
            k_max = max(k, s)
            assert compat_keras.conv_transpose(x, kernel, s).shape[1] == 4 * s + k_max
            assert compat_keras.conv_transpose(x, kernel, s, "same").shape[1] == 5 * s
            for op in range(s):
                assert compat_keras.conv_transpose(x, kernel, s, "valid", op).shape[1] == (
                    4 * s + k + op)
                assert compat_keras.conv_transpose(x, kernel, s, "same", op).shape[1] == (
                    4 * s + k % 2 + op)


def test_tf_resize_keeps_the_aspect_ratio_as_tensorflow_rounds():
    images = np.ones((1, 3, 7, 1))
    # scale min(10/3, 10/7) = 10/7 in float32: 3 * 1.4285715 = 4.2857 -> 4, 7 -> 10
    assert compat_tf.resize(images, (10, 10), preserve_aspect_ratio=True).shape == (1, 4, 10, 1)


@pytest.mark.parametrize("call, error, match", [
    (lambda: compat_tf.conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), 1, "same"),
     ValueError, "padding must be one of"),
    (lambda: compat_tf.conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), [2, 2, 2, 2],
                              "SAME"), ValueError, "strides must be 1 in the batch"),
    (lambda: compat_tf.conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), 1,
                              [[0, 0], [1, 1], [1, 1], [1, 0]]), ValueError, "padding must be"),
    (lambda: compat_tf.conv1d(np.ones((1, 4, 1)), np.ones((2, 1, 1)), 1,
                              [[0, 0], [1, 1], [0, 0]]), ValueError, "'SAME' or 'VALID' here"),
    (lambda: compat_tf.conv2d(np.ones((1, 4, 4, 3)), np.ones((2, 2, 2, 1)), 1, "SAME"),
     ValueError, "multiple of the filters' in_channels"),
    (lambda: compat_tf.conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), 1, "SAME",
                              data_format="NDHWC"), ValueError, "data_format"),
    (lambda: compat_tf.conv2d_transpose(np.ones((1, 4, 4, 1)), np.ones((3, 3, 2, 1)),
                                        [1, 9, 8, 2], 2), ValueError, "output_shape"),
    (lambda: compat_tf.conv2d_transpose(np.ones((1, 4, 4, 1)), np.ones((3, 3, 2, 2)),
                                        [1, 8, 8, 2], 2), ValueError, "in_channels"),
    (lambda: compat_tf.resize(np.ones((1, 4, 4, 1)), (3, 3), "lanczos3"),
     NotImplementedError, "lanczos3"),
    (lambda: compat_tf.resize(np.ones((1, 4, 4, 1)), (3, 3), "area"),
     NotImplementedError, "area"),
    (lambda: compat_tf.resize(np.ones((1, 4, 4, 1)), (3, 3), "spline"),
     ValueError, "method must be one of"),
    (lambda: compat_tf.resize(np.ones((4, 4)), (3, 3)), ValueError, "images must be"),
    (lambda: compat_tf.resize(np.ones((1, 4, 4, 1)), (3, 3), antialias=1), TypeError,
     "antialias"),
    (lambda: compat_tf.depth_to_space(np.ones((1, 2, 2, 6)), 2), ValueError, "divisible"),
    (lambda: compat_tf.depth_to_space(np.ones((1, 2, 2, 4)), 1), ValueError, "block_size"),
    (lambda: compat_keras.conv(np.ones((1, 4, 4, 3)), np.ones((2, 2, 2, 1))), ValueError,
     "divisible"),
    (lambda: compat_keras.conv(np.ones((1, 4, 4, 3)), np.ones((2, 2, 3, 1)), padding="full"),
     ValueError, "padding must be one of"),
    (lambda: compat_keras.conv(np.ones((1, 4, 4, 3)), np.ones((2, 2, 3, 1)), strides=(1, 1, 1)),
     ValueError, "strides"),
    (lambda: compat_keras.conv(np.ones((1, 4, 4, 3)), np.ones((2, 2, 3, 1)),
                               data_format="NHWC"), ValueError, "data_format"),
    (lambda: compat_keras.conv_transpose(np.ones((1, 4, 4, 3)), np.ones((2, 2, 3, 1))),
     ValueError, "in_channels"),
    (lambda: compat_keras.conv_transpose(np.ones((1, 4, 4, 3)), np.ones((2, 2, 1, 3)),
                                         output_padding=-1), ValueError, "output_padding"),
    (lambda: compat_keras.upsampling(np.ones((1, 4, 4, 3)), 2, "lanczos5"),
     NotImplementedError, "lanczos5"),
    (lambda: compat_keras.upsampling(np.ones((1, 4, 3)), 2), ValueError, "x must be 4-d"),
    (lambda: compat_keras.upsampling(np.ones((1, 4, 4, 3)), 0), ValueError, "size"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


if __name__ == "__main__":   # the counts for the notes
    import importlib.util
    import warnings

    warnings.simplefilter("ignore")
    frameworks = {}
    if importlib.util.find_spec("tensorflow") is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow

        frameworks["tf"] = (tensorflow, TF_SWEEPS, lambda module, make: make)
    if importlib.util.find_spec("keras") is not None:
        if importlib.util.find_spec("jax") is not None:
            os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras as keras_module

        frameworks[f"keras[{keras_module.backend.backend()}]"] = (
            keras_module, KERAS_SWEEPS, _keras_numpy)
    for label, (module, sweeps, wrap) in frameworks.items():
        for name, (make, count) in sweeps.items():
            counts = collections.Counter()
            for seed in range(count):
                case = wrap(module, make(seed, module))
                if label == "tf" and (name, seed) in TF_ONEDNN_WRONG:
                    counts["tensorflow (oneDNN) wrong"] += 1
                    continue
                tensorflow_bicubic = label == "tf" or label == "keras[tensorflow]"
                try:
                    counts[compare(*case, rtol=_rtol(tensorflow_bicubic, case[3]))] += 1
                except (AssertionError, ValueError, TypeError) as exc:
                    counts["mismatch"] += 1
                    print("  mismatch", label, name, seed, str(exc)[:200])
            print(label, name, count, dict(counts))
