"""fastdeconv.compat.onnx against ONNX Runtime: random sweeps, one ONNX node per case.

Each test draws one random case from its seed (so that the number of cases is the number of
tests, and a failure names its seed): the same arrays and attributes go to the compat function
and to a one-node model run by ONNX Runtime (float32).
"""

import math

import numpy as np
import pytest

import fastdeconv.compat

pytest.importorskip("onnxruntime", reason="the sweeps need onnxruntime")
pytest.importorskip("onnx", reason="the one-node models are built with the onnx package")
from fastdeconv._resize_plan import _onnx_coordinates  # noqa: E402
from fastdeconv.testing._onnx import run_single_node  # noqa: E402

compat = fastdeconv.compat.onnx

AUTO_PADS = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]
CONV_CASES, CONV_TRANSPOSE_CASES, RESIZE_CASES, DEPTH_TO_SPACE_CASES, MAX_UNPOOL_CASES = (
    60, 90, 90, 24, 36)


def _random_conv(rng):
    """(X, W, B, spatial sizes, kernel, stride, dilation, group) of a random convolution."""
    n = int(rng.integers(1, 4))
    group = int(rng.choice([1, 1, 2, 3]))
    c_in, c_out = group * int(rng.integers(1, 3)), group * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4 if n < 3 else 3, n))
    stride = tuple(int(s) for s in rng.integers(1, 4, n))
    dilation = tuple(int(d) for d in rng.integers(1, 3, n))
    size = tuple(int(d) for d in rng.integers(1, 8 if n < 3 else 5, n))
    X = rng.standard_normal((int(rng.integers(1, 3)), c_in) + size).astype(np.float32)
    B = rng.standard_normal(c_out).astype(np.float32) if rng.random() < 0.5 else None
    return X, B, kernel, stride, dilation, group, c_in, c_out


def _attributes(rng, **values):
    """The attributes, each left out at random when it has ONNX's default value."""
    out = {}
    for name, value in values.items():
        default = {"dilations": 1, "strides": 1, "group": 1, "output_padding": 0,
                   "auto_pad": "NOTSET"}.get(name)
        is_default = (value == default or (isinstance(value, (list, tuple))
                                           and all(v == default for v in value)))
        if not is_default or rng.random() < 0.5:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _run_onnx(op, inputs, attributes, opset=22, **kw):
    return run_single_node(op, inputs, attributes, opset=opset, constant_inputs=False, **kw)


@pytest.mark.parametrize("seed", range(CONV_CASES))
def test_conv_matches_onnxruntime(seed, assert_close):
    rng = np.random.default_rng(seed)
    while True:
        X, B, kernel, stride, dilation, group, c_in, c_out = _random_conv(rng)
        n = len(kernel)
        W = rng.standard_normal((c_out, c_in // group) + kernel).astype(np.float32)
        auto_pad = str(rng.choice(AUTO_PADS))
        if auto_pad.startswith("SAME"):
            dilation = (1,) * n    # ONNX Runtime: "Dilation not supported for SAME_*"
        pads = [int(p) for p in rng.integers(0, 3, 2 * n)] if auto_pad == "NOTSET" else None
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        padded = [s + (pads[i] + pads[i + n] if pads else 0) for i, s in enumerate(X.shape[2:])]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") or min(
                p - e for p, e in zip(padded, extent)) >= 0:
            break
    attributes = _attributes(rng, auto_pad=auto_pad, dilations=dilation, group=group,
                             strides=stride)
    if pads is not None:
        attributes["pads"] = pads
    if rng.random() < 0.3:
        attributes["kernel_shape"] = list(kernel)
    (expected,) = _run_onnx("Conv", [X, W] + ([B] if B is not None else []), attributes)
    result = compat.conv(X, W, B, **attributes)
    assert_close(result, expected, "float32")


@pytest.mark.parametrize("seed", range(CONV_TRANSPOSE_CASES))
def test_conv_transpose_matches_onnxruntime(seed, assert_close):
    rng = np.random.default_rng(1000 + seed)
    while True:
        X, B, kernel, stride, dilation, group, c_in, c_out = _random_conv(rng)
        n = len(kernel)
        W = rng.standard_normal((c_in, c_out // group) + kernel).astype(np.float32)
        auto_pad = str(rng.choice(AUTO_PADS))
        limit = list(stride)   # ONNX Runtime: output_padding < stride (ONNX: max(s, d))
        output_padding = tuple(int(rng.integers(0, m)) if rng.random() < 0.4 else 0
                               for m in limit)
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        full = [s * (i - 1) + op + e for s, i, op, e in
                zip(stride, X.shape[2:], output_padding, extent)]
        attributes = _attributes(rng, auto_pad=auto_pad, dilations=dilation, group=group,
                                 strides=stride, output_padding=output_padding)
        kind = rng.choice(["pads", "output_shape"]) if auto_pad == "NOTSET" else (
            "output_shape" if rng.random() < 0.3 else "auto")
        if kind == "pads":
            pads = [int(rng.integers(0, e)) for e in extent + extent]
            if min(f - pads[i] - pads[i + n] for i, f in enumerate(full)) < 1:
                continue
            attributes["pads"] = pads
        elif kind == "output_shape":
            # from cropping most of the dilated kernel to appending up to max(stride,
            # dilation) - 1 - output_padding positions (ONNX Runtime appends them at the end)
            shape = [int(rng.integers(max(f - e + 1, 1), f + m - op))
                     for f, e, m, op in zip(full, extent, limit, output_padding)]
            attributes["output_shape"] = shape
        elif min(f - i * s for f, i, s in zip(full, X.shape[2:], stride)) < 0:
            continue   # SAME with a negative total padding: undefined (refused, tested below)
        break
    (expected,) = _run_onnx("ConvTranspose", [X, W] + ([B] if B is not None else []),
                            attributes)
    result = compat.conv_transpose(X, W, B, **attributes)
    assert_close(result, expected, "float32")


def test_conv_transpose_refuses_the_undefined_same_padding():
    X, W = np.ones((1, 1, 3), np.float32), np.ones((1, 1, 2), np.float32)
    (runtime,) = _run_onnx("ConvTranspose", [X, W], dict(strides=[3], auto_pad="SAME_UPPER"))
    assert runtime.shape[-1] == 8    # not 3 * 3 as the specification's auto_pad promises
    with pytest.raises(ValueError, match="leaves that undefined"):
        compat.conv_transpose(X, W, strides=[3], auto_pad="SAME_UPPER")
    np.testing.assert_array_equal(compat.conv_transpose(X, W, strides=[3], pads=[0, 0]),
                                  runtime)


# ------------------------------------------------------------------------ Resize
def _robust(n_in, n_out, scale, ctm):
    """Output indices whose nearest-neighbour rounding cannot depend on float32 rounding
    (ONNX Runtime computes the coordinates in float32; see tests/test_resize.py)."""
    x = _onnx_coordinates(np.arange(n_out), n_in, n_out, scale, ctm)
    dist = np.abs(2 * x - np.round(2 * x)) / 2
    exact = np.abs(x * 2 ** 10 - np.round(x * 2 ** 10)) == 0
    if ctm == "align_corners":
        exact &= math.log2(max(n_out - 1, 1)).is_integer() or (n_in - 1) % (n_out - 1) == 0
    else:
        exact &= math.log2(scale if scale is not None else n_out / n_in).is_integer()
    return np.flatnonzero((dist >= 1e-4) | ((dist == 0) & exact))


SCALES = [0.25, 0.5, 0.75, 1.5, 2.0, 3.0, 0.6, 1.7]


def _draw_resize(rng):
    mode = str(rng.choice(["nearest", "linear", "cubic"]))
    ctm = str(rng.choice(["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                          "align_corners", "asymmetric"]))
    n = 2 if mode == "cubic" else int(rng.integers(1, 4))   # ONNX Runtime: bicubic only
    rank = n + 2
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) + tuple(
        int(d) for d in rng.integers(2, 9 if n < 3 else 6, n))
    use_axes = rng.random() < 0.4
    axes = list(range(2, rank)) if use_axes else list(range(rank))
    if use_axes and rng.random() < 0.5:
        axes = axes[::-1]
    if use_axes and rng.random() < 0.5 and mode != "nearest":
        # negative axes (ONNX Runtime 1.32 ignores sizes with a keep_aspect_ratio_policy and
        # negative axes, so not with "nearest", which draws the policies)
        axes = [a - rank for a in axes]
    spatial = [a % rank for a in axes if a % rank >= 2]
    attributes = dict(mode=mode, coordinate_transformation_mode=ctm)
    if use_axes:
        attributes["axes"] = axes
    by_scale = rng.random() < 0.5
    policy = "stretch"
    if by_scale:
        per = {a: float(np.float32(rng.choice(SCALES))) for a in spatial}
        values = [per.get(a % rank, 1.0) for a in axes]
        out = {a: math.floor(shape[a] * per[a]) for a in spatial}
    else:
        per = {a: int(rng.integers(1, 2 * shape[a] + 2)) for a in spatial}
        values = [per.get(a % rank, shape[a % rank]) for a in axes]
        if mode == "nearest" and use_axes and rng.random() < 0.5:
            policy = str(rng.choice(["not_larger", "not_smaller"]))
            attributes["keep_aspect_ratio_policy"] = policy
            # where the rounded size needs edge pixels, fastdeconv.compat.onnx supports these
            attributes["coordinate_transformation_mode"] = str(
                rng.choice(["half_pixel", "asymmetric"]))
        out = dict(per)
    if mode == "nearest":
        attributes["nearest_mode"] = str(rng.choice(["round_prefer_floor", "round_prefer_ceil",
                                                     "floor", "ceil"]))
    else:
        attributes["antialias"] = int(rng.random() < 0.3)
        # ONNX Runtime: exclude_outside with "cubic", or "linear" with antialias only
        if mode == "cubic" or attributes["antialias"]:
            attributes["exclude_outside"] = int(rng.random() < 0.3)
    if mode == "cubic" and rng.random() < 0.5:
        attributes["cubic_coeff_a"] = float(rng.choice([-0.5, -0.6]))
    return shape, by_scale, values, per, out, spatial, policy, attributes


@pytest.mark.parametrize("seed", range(RESIZE_CASES))
def test_resize_matches_onnxruntime(seed, assert_close):
    rng = np.random.default_rng(2000 + seed)
    while True:
        shape, by_scale, values, per, out, spatial, policy, attributes = _draw_resize(rng)
        if min(out.values()) >= 1 and all(out[a] != shape[a] for a in spatial):
            break          # ONNX Runtime copies an axis whose size does not change
    X = rng.standard_normal(shape).astype(np.float32)
    if by_scale:
        inputs = [X, None, np.array(values, np.float32)]
    else:
        inputs = [X, None, None, np.array(values, np.int64)]
    result = compat.resize(*inputs, **attributes)
    (expected,) = run_single_node("Resize", inputs, attributes, opset=19,
                                  constant_inputs=False)
    assert result.shape == expected.shape
    if attributes["mode"] != "nearest":
        assert_close(result, expected, "float32")
        return
    ctm = attributes["coordinate_transformation_mode"]
    keep = []
    for a, n_out in zip(range(2, len(shape)), expected.shape[2:]):
        scale = per[a] if by_scale else None
        if policy != "stretch":
            ratios = [per[b] / shape[b] for b in spatial]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
        keep.append(_robust(shape[a], n_out, scale, ctm))
    grid = (slice(None), slice(None)) + np.ix_(*keep)
    np.testing.assert_array_equal(result[grid], expected[grid])


# ------------------------------------------------------------------------ DepthToSpace, MaxUnpool
@pytest.mark.parametrize("seed", range(DEPTH_TO_SPACE_CASES))
def test_depth_to_space_matches_onnxruntime(seed):
    rng = np.random.default_rng(3000 + seed)
    block = int(rng.integers(1, 4))
    mode = ["DCR", "CRD"][seed % 2]
    x = rng.standard_normal((int(rng.integers(1, 3)), block * block * int(rng.integers(1, 4)),
                             int(rng.integers(1, 5)), int(rng.integers(1, 5))))
    x = x.astype(np.float32)
    (expected,) = run_single_node("DepthToSpace", [x], dict(blocksize=block, mode=mode),
                                  opset=13)
    np.testing.assert_array_equal(compat.depth_to_space(x, block, mode=mode), expected)


@pytest.mark.parametrize("seed", range(MAX_UNPOOL_CASES))
def test_max_unpool_matches_onnxruntime(seed):
    rng = np.random.default_rng(4000 + seed)
    while True:
        n = int(rng.integers(1, 4))
        kernel = [int(k) for k in rng.integers(1, 4, n)]
        stride = [int(s) for s in rng.integers(2, 4, n)]
        pads = [int(rng.integers(0, k // 2 + 1)) for k in kernel + kernel]
        size = [int(k + rng.integers(0, 6)) for k in kernel]
        pooled_size = [(d + b + e - k) // s + 1 for d, b, e, k, s in
                       zip(size, pads[:n], pads[n:], kernel, stride)]
        if min((d - 1) * s + k - b - e for d, s, k, b, e in   # ONNX Runtime checks it
               zip(pooled_size, stride, kernel, pads[:n], pads[n:])) >= 1:
            break
    x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 3)), *size))
    x = x.astype(np.float32)
    pool = dict(kernel_shape=kernel, strides=stride, pads=pads)
    pooled, indices = run_single_node("MaxPool", [x], pool, opset=12,
                                      output_dtypes=[np.float32, np.int64])
    inputs = [pooled, indices]
    default = [(d - 1) * s + k - b - e for d, s, k, b, e in
               zip(pooled.shape[2:], stride, kernel, pads[:n], pads[n:])]
    if rng.random() < 0.6 or default != size:
        # the pooled input's shape, as graphs give it (without it the indices, which point
        # into that shape, need not fit the default output shape)
        inputs.append(np.array(x.shape, np.int64))
    (expected,) = _run_onnx("MaxUnpool", inputs, pool)
    np.testing.assert_array_equal(compat.max_unpool(*inputs, **pool), expected)
