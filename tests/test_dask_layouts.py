"""fastdeconv.dask with data_format and weight_format: equal to the in-memory call in the same
layouts (dask's threaded scheduler; the LocalCluster runs the same graphs in tests/test_dask.py).
"""

import inspect

import numpy as np
import pytest

da = pytest.importorskip(
    "dask.array", reason="fastdeconv.dask needs the dask extra: pip install 'fastdeconv[dask]'")

import fastdeconv  # noqa: E402
import fastdeconv.dask as fdd  # noqa: E402


def last(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _chunked(a, chunks):
    return da.from_array(a, chunks=chunks)


def _same(got, want, exact=False):
    got = np.asarray(got.compute() if hasattr(got, "compute") else got)
    assert got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("data_format", ["channels_last", "NHWC"])
def test_convolutions_in_channels_last_and_hwio(data_format, rng):
    x = last(rng.standard_normal((2, 4, 13, 11)))                  # NHWC
    w = rng.standard_normal((3, 2, 2, 6))                          # HWIO, groups 2
    xd = _chunked(x, (1, 5, 4, 4))
    kw = dict(stride=2, padding=((1, 0), (2, 1)), groups=2, data_format=data_format)
    y = fdd.conv(xd, w, weight_format="HWIO", **kw)
    assert y.chunks[-1] == (6,) and y.shape[1:3] == (6, 7)
    _same(y, fastdeconv.conv(x, w, weight_format="HWIO", **kw))
    gy = rng.standard_normal(y.shape)
    got = fdd.conv_backward(_chunked(gy, (1, 3, 3, 6)), xd, w, weight_format="HWIO", **kw)
    want = fastdeconv.conv_backward(gy, x, w, weight_format="HWIO", **kw)
    for g, e in zip(got, want):
        _same(g, e)
    wt = rng.standard_normal((3, 3, 5, 4))                         # HWOI of conv_transpose
    kt = dict(stride=2, padding=1, output_size=(2, 26, 22, 5), data_format=data_format)
    yt = fdd.conv_transpose(xd, wt, weight_format="HWOI", **kt)
    _same(yt, fastdeconv.conv_transpose(x, wt, weight_format="HWOI", **kt))
    gyt = rng.standard_normal(yt.shape)
    got = fdd.conv_transpose_backward(_chunked(gyt, (1, 9, 9, 5)), xd, wt,
                                      weight_format="HWOI", **kt)
    want = fastdeconv.conv_transpose_backward(gyt, x, wt, weight_format="HWOI", **kt)
    for g, e in zip(got, want):
        _same(g, e)


def test_upsamplers_in_channels_last(rng):
    x = last(rng.standard_normal((2, 3, 12, 10)))
    xd = _chunked(x, (1, 5, 4, 3))
    _same(fdd.resize(xd, scale_factor=2, mode="linear", data_format="channels_last"),
          fastdeconv.resize(x, scale_factor=2, mode="linear", data_format="channels_last"))
    pooled, idx = fdd.max_pool(xd, 2, return_indices=True, data_format="channels_last")
    ref_pooled, ref_idx = fastdeconv.max_pool(x, 2, return_indices=True,
                                              data_format="channels_last")
    _same(pooled, ref_pooled, exact=True)
    _same(idx, ref_idx, exact=True)
    _same(fdd.max_unpool(pooled, idx, 2, output_size=(2, 12, 10, 3), data_format="NHWC"),
          fastdeconv.max_unpool(ref_pooled, ref_idx, 2, output_size=(2, 12, 10, 3),
                                data_format="NHWC"), exact=True)
    x4 = last(rng.standard_normal((1, 8, 6, 4)))
    shuffled = fdd.pixel_shuffle(_chunked(x4, (1, 3, 2, 8)), 2, data_format="channels_last")
    _same(shuffled, fastdeconv.pixel_shuffle(x4, 2, data_format="channels_last"), exact=True)
    _same(fdd.pixel_unshuffle(shuffled, 2, data_format="channels_last"), x4, exact=True)


def test_signatures_match_the_in_memory_functions():
    # every operator; halo_priority and HaloFirstArray (scheduling helpers) have no in-memory
    # counterpart
    for name in [n for n in fdd.__all__ if n not in ("halo_priority", "HaloFirstArray")]:
        assert (list(inspect.signature(getattr(fdd, name)).parameters)
                == list(inspect.signature(getattr(fastdeconv, name)).parameters)), name


def test_bad_layouts_are_rejected_naming_the_parameter(rng):
    xd = da.zeros((1, 6, 6, 2), chunks=3)
    w = np.zeros((3, 3, 2, 4))
    with pytest.raises(ValueError, match="data_format"):
        fdd.conv(xd, w, data_format="NCW")
    with pytest.raises(ValueError, match="weight_format"):
        fdd.conv(xd, w, data_format="channels_last", weight_format="HWI")
    with pytest.raises(TypeError, match="weight_format"):
        fdd.resize(xd, scale_factor=2, weight_format="HWIO")
    with pytest.raises(ValueError, match="weight"):       # a chunked weight, in any layout
        fdd.conv(xd, da.from_array(w), data_format="channels_last", weight_format="HWIO")
