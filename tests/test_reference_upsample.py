"""The upsampling references of fastdeconv.testing checked on their own: hand-computed values,
PyTorch and ONNX Runtime directly (so that a bug shared by a kernel and its reference cannot
hide), and the ONNX model writer."""

import numpy as np
import pytest

from fastdeconv.testing import (
    max_pool_reference,
    max_unpool_reference,
    pixel_shuffle_reference,
    pixel_unshuffle_reference,
    resize_matrices_reference,
    resize_reference,
)


def test_hand_computed_matrices():
    (m,) = resize_matrices_reference((2,), 4, mode="linear")
    np.testing.assert_allclose(m, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    (m,) = resize_matrices_reference((3,), 5, mode="linear", align_corners=True)
    np.testing.assert_allclose(m, [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5],
                                   [0, 0, 1]])
    (m,) = resize_matrices_reference((4,), 2, mode="area")
    np.testing.assert_allclose(m, [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    (m,) = resize_matrices_reference((3,), 2, mode="area")            # [0, 2), [1, 3)
    np.testing.assert_allclose(m, [[0.5, 0.5, 0], [0, 0.5, 0.5]])
    (m,) = resize_matrices_reference((2,), 4, mode="nearest",
                                     coordinate_transformation_mode="asymmetric")
    np.testing.assert_array_equal(m, [[1, 0], [1, 0], [0, 1], [0, 1]])
    # Keys cubic at the half-way point: (-1/16, 9/16, 9/16, -1/16) for a = -0.5
    (m,) = resize_matrices_reference((4,), 7, mode="cubic", cubic_coeff_a=-0.5,
                                     coordinate_transformation_mode="align_corners")
    np.testing.assert_allclose(m[3], [-1 / 16, 9 / 16, 9 / 16, -1 / 16])
    for m in resize_matrices_reference((5, 6), (9, 4), mode="cubic", antialias=True):
        np.testing.assert_allclose(m.sum(axis=1), 1.0)


@pytest.mark.torch
@pytest.mark.parametrize("mode, ndim", [("nearest", 1), ("nearest", 2), ("nearest-exact", 3),
                                        ("linear", 1), ("linear", 3), ("cubic", 2),
                                        ("area", 2)])
def test_resize_reference_matches_torch(torch, mode, ndim, rng):
    tmode = {("linear", 1): "linear", ("linear", 3): "trilinear",
             ("cubic", 2): "bicubic"}.get((mode, ndim), mode)
    for align in ([None, True] if mode in ("linear", "cubic") else [None]):
        for _ in range(5):
            in_size = tuple(int(v) for v in rng.integers(1, 7, ndim))
            out = tuple(int(v) for v in rng.integers(1, 12, ndim))
            x = rng.standard_normal((1, 2) + in_size)
            expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=out,
                                                       mode=tmode, align_corners=align)
            np.testing.assert_allclose(resize_reference(x, out, mode=mode, align_corners=align),
                                       expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.torch
def test_resize_reference_antialias_matches_torch(torch, rng):
    for mode, tmode in [("linear", "bilinear"), ("cubic", "bicubic")]:
        x = rng.standard_normal((1, 2, 13, 11))
        for out in [(4, 3), (6, 9), (20, 5)]:
            expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=out,
                                                       mode=tmode, antialias=True)
            np.testing.assert_allclose(resize_reference(x, out, mode=mode, antialias=True),
                                       expected.numpy(), rtol=1e-12, atol=1e-12)


def test_resize_reference_matches_onnxruntime(rng):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")   # builds the one-node models
    from fastdeconv.testing._onnx import run_single_node

    x = rng.standard_normal((1, 2, 7, 9)).astype(np.float32)
    for attrs in [dict(mode="cubic", coordinate_transformation_mode="half_pixel",
                       cubic_coeff_a=-0.5, exclude_outside=1),
                  dict(mode="linear", coordinate_transformation_mode="asymmetric"),
                  dict(mode="linear", coordinate_transformation_mode="half_pixel",
                       antialias=1)]:
        for sizes in [(1, 2, 13, 4), (1, 2, 3, 17)]:
            (expected,) = run_single_node("Resize", [x, None, None, np.array(sizes)], attrs)
            kw = {k: bool(v) if k in ("exclude_outside", "antialias") else v
                  for k, v in attrs.items()}
            np.testing.assert_allclose(resize_reference(x, sizes[2:], **kw), expected,
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_pool_references_match_torch(torch, rng):
    x = rng.integers(-2, 3, (2, 2, 7, 6)).astype(np.float64)
    x[0, 0, 1, 1] = np.nan
    y, idx = max_pool_reference(x, 3, stride=2, padding=1, ceil_mode=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True,
                                              return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    u = max_unpool_reference(y, idx, x.shape[2:])
    tu = torch.nn.functional.max_unpool2d(ty, tidx, 3, 2, 1, output_size=x.shape[2:])
    np.testing.assert_array_equal(u, tu.numpy())


def test_pixel_shuffle_reference_by_hand():
    x = np.arange(8.0).reshape(1, 8, 1)          # 1-D, factor 2: 4 channels of 2 positions
    assert pixel_shuffle_reference(x, 2).tolist() == [[[0, 1], [2, 3], [4, 5], [6, 7]]]
    assert pixel_shuffle_reference(x, 2, order="DCR").tolist() == [[[0, 4], [1, 5], [2, 6],
                                                                    [3, 7]]]
    y = pixel_shuffle_reference(x, 2, order="DCR")
    np.testing.assert_array_equal(pixel_unshuffle_reference(y, 2, order="DCR"), x)


def test_onnx_model_writer_runs_with_attributes_of_every_kind(rng):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")   # builds the one-node models
    from fastdeconv.testing._onnx import run_single_node, single_node_model

    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    (y,) = run_single_node("LeakyRelu", [x], dict(alpha=0.25))                 # float
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.25 * x), rtol=1e-6)
    (y,) = run_single_node("Transpose", [x], dict(perm=[0, 1, 3, 2]))          # ints
    np.testing.assert_array_equal(y, x.transpose(0, 1, 3, 2))
    y, idx = run_single_node("MaxPool", [x], dict(kernel_shape=[2, 2], strides=[2, 2]),
                             output_dtypes=[np.float32, np.int64])              # 2 outputs
    assert y.shape == idx.shape == (1, 1, 2, 2)
    (y,) = run_single_node("Pad", [x, np.array([0, 0, -1, 0, 0, 0, 0, 1])], dict(mode="edge"))
    assert y.shape == (1, 1, 3, 5)                                              # negative int64
    assert single_node_model("Relu", [x]).startswith(b"\x08\x08")              # IR version 8


@pytest.mark.parametrize("mode, torch_mode, kw", [
    ("nearest", "nearest", {}), ("nearest-exact", "nearest-exact", {}),
    ("linear", "linear", dict(align_corners=False)), ("linear", "linear", dict(align_corners=True)),
    ("cubic", "bicubic", dict(align_corners=False)), ("area", "area", {}),
])
@pytest.mark.parametrize("size", [1, 3, 6, 11, 13])
def test_the_resize_reference_propagates_nan_and_inf_like_torch(torch, mode, torch_mode, kw,
                                                                size):
    # a NaN or an inf reaches the outputs whose taps read it (zero weights included), not
    # every output of its row as a dense matrix product would
    rng = np.random.default_rng(size)
    x = rng.standard_normal((3, 2, 6))
    x[0, 0, 2], x[1, 1, 5], x[2, 0, 0], x[2, 1, 3] = np.nan, np.inf, -np.inf, np.nan
    xt = torch.from_numpy(x)
    if torch_mode == "bicubic":  # PyTorch's cubic is 2-d only: a 1 x 6 image (whose
        # height, 1 -> 1, still reads four clamped taps: inf under a negative weight is NaN)
        expected = torch.nn.functional.interpolate(xt[:, :, None], size=(1, size),
                                                   mode=torch_mode, **kw)[:, :, 0].numpy()
        actual = resize_reference(x[:, :, None], (1, size), mode=mode, **kw)[:, :, 0]
    else:
        expected = torch.nn.functional.interpolate(xt, size=size, mode=torch_mode, **kw).numpy()
        actual = resize_reference(x, size, mode=mode, **kw)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-12, atol=1e-12)
