"""fastdeconv.dask: every operator on chunked arrays equals the in-memory operator.

Run on dask's threaded scheduler and on a real ``distributed.LocalCluster`` of two worker
processes on loopback (module-scoped: started once, closed at the end). Skipped, with the
reason, only when dask is not installed (``.ci/run`` installs it and forbids skips).
"""

import math

import numpy as np
import pytest

da = pytest.importorskip(
    "dask.array", reason="fastdeconv.dask needs the dask extra: pip install 'fastdeconv[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="fastdeconv.dask needs the dask extra: pip install 'fastdeconv[dask]'")

import fastdeconv  # noqa: E402
import fastdeconv.dask as fdd  # noqa: E402
from fastdeconv.dask import _chunks  # noqa: E402
from fastdeconv.dask._graph import halo_name  # noqa: E402

DTYPES = [np.float32, np.float64]

#: Operators whose chunks only copy or compare values: equal to the bit.
EXACT = {"max_pool", "max_unpool", "pixel_shuffle", "pixel_unshuffle"}


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each) on loopback, and its client."""
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=":0")
    # not the default scheduler: the other tests keep dask's threaded one
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _compute(result, scheduler):
    return tuple(None if r is None else np.asarray(r)
                 for r in __import__("dask").compute(*result, scheduler=scheduler))


def _check(actual, expected, dtype, exact, assert_close):
    assert actual.shape == expected.shape
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        rtol = 1e-12 if np.dtype(dtype) == np.float64 else None
        assert_close(actual, expected, dtype=dtype, rtol=rtol)


# --------------------------------------------------------------------------------- cases
# (op, x shape, x chunks, weight shape or None, keywords, extra chunks (grad_output/indices))
CASES = {
    # conv: chunks not multiples of the stride, channel chunks (partial sums), halos > chunk
    "conv-1d-s3-dil2": ("conv", (2, 3, 17), (1, 3, 4), (4, 3, 5),
                        dict(stride=3, padding=((2, 1),), dilation=2), None),
    "conv-2d-s2-cchunks": ("conv", (2, 4, 11, 9), (2, 2, 4, 3), (5, 4, 3, 3),
                           dict(stride=2, padding=1, bias=True), None),
    "conv-2d-chunks-of-1": ("conv", (1, 2, 7, 6), (1, 2, 1, 1), (3, 2, 3, 3),
                            dict(padding=2, dilation=2), None),
    "conv-2d-reflect": ("conv", (1, 2, 9, 8), (1, 2, 2, 3), (3, 2, 3, 3),
                        dict(padding=2, padding_mode="reflect", bias=True), None),
    "conv-2d-circular": ("conv", (1, 2, 9, 8), (1, 1, 4, 3), (3, 2, 3, 4),
                         dict(padding=((3, 1), (2, 2)), stride=2, padding_mode="circular"), None),
    "conv-2d-replicate": ("conv", (2, 2, 8, 7), (1, 2, 3, 4), (2, 2, 4, 3),
                          dict(padding=3, stride=2, padding_mode="replicate"), None),
    "conv-3d-same": ("conv", (1, 2, 6, 7, 5), (1, 2, 3, 2, 5), (4, 2, 3, 3, 2),
                     dict(stride=(2, 1, 2), padding="same"), None),
    "conv-groups-unaligned": ("conv", (2, 6, 8, 7), (1, (1, 3, 2), 3, 4), (6, 2, 3, 3),
                              dict(groups=3, padding=1, bias=True), None),
    "conv-depthwise": ("conv", (1, 4, 9, 9), (1, 1, 4, 4), (4, 1, 3, 3),
                       dict(groups=4, padding="same"), None),
    "conv-one-chunk": ("conv", (2, 3, 8, 8), (2, 3, 8, 8), (4, 3, 3, 3), dict(stride=2), None),
    "conv-all-padding-windows": ("conv", (1, 1, 5), (1, 1, 2), (2, 1, 2),
                                 dict(padding=4, bias=True), None),
    # conv_transpose: x's chunks times the stride, kernel < stride (gaps), output_padding
    "ct-2d-dcgan": ("conv_transpose", (2, 4, 6, 5), (1, 4, 2, 3), (4, 3, 4, 4),
                    dict(stride=2, padding=1, bias=True), None),
    "ct-1d-output-padding": ("conv_transpose", (2, 3, 9), (1, (1, 2), 2), (3, 2, 3),
                             dict(stride=3, padding=((2, 0),), output_padding=2), None),
    "ct-1d-gaps": ("conv_transpose", (1, 2, 7), (1, 2, 1), (2, 2, 2),
                   dict(stride=3, output_padding=1, bias=True), None),
    "ct-2d-dilation": ("conv_transpose", (1, 2, 6, 6), (1, 2, 4, 1), (2, 3, 3, 2),
                       dict(stride=2, dilation=(2, 3), padding=2, output_padding=(1, 2)), None),
    "ct-groups": ("conv_transpose", (1, 6, 5, 5), (1, (2, 4), 2, 3), (6, 1, 3, 3),
                  dict(groups=3, stride=2, padding=1, bias=True), None),
    "ct-3d-same": ("conv_transpose", (1, 2, 3, 4, 3), (1, 2, 1, 2, 2), (2, 2, 2, 3, 2),
                   dict(stride=2, padding="same"), None),
    "ct-output-size": ("conv_transpose", (1, 2, 5, 5), (1, 2, 2, 2), (2, 2, 3, 3),
                       dict(stride=2, padding=1, output_size=(10, 10)), None),
    # backward passes: grad_output chunked independently of x
    "cb-2d-s2": ("conv_backward", (2, 3, 9, 7), (1, 3, 4, 3), (4, 3, 3, 3),
                 dict(stride=2, padding=1), (2, (2, 2), 2, 3)),
    "cb-2d-reflect": ("conv_backward", (1, 2, 7, 8), (1, 2, 3, 3), (3, 2, 3, 3),
                      dict(padding=2, padding_mode="reflect"), (1, 3, 2, 5)),
    "cb-2d-circular-s2": ("conv_backward", (1, 2, 7, 8), (1, 1, 2, 5), (2, 2, 3, 2),
                          dict(padding=((1, 2), (2, 1)), stride=2, padding_mode="circular"),
                          (1, 2, 2, 2)),
    "cb-1d-replicate-dil": ("conv_backward", (2, 2, 11), (1, 2, 3), (3, 2, 3),
                            dict(padding=3, dilation=2, padding_mode="replicate"), (2, 3, 4)),
    "cb-3d-groups": ("conv_backward", (1, 4, 5, 4, 6), (1, 2, 2, 3, 4), (4, 2, 2, 3, 3),
                     dict(groups=2, stride=(1, 2, 2), padding=1), (1, 4, 3, 1, 2)),
    "cb-weight-only": ("conv_backward", (2, 3, 9, 7), (1, 3, 4, 3), (4, 3, 3, 3),
                       dict(stride=2, padding=1, grads=("weight",)), (1, 4, 2, 2)),
    "ctb-2d-dcgan": ("conv_transpose_backward", (2, 4, 5, 6), (1, 4, 2, 3), (4, 3, 4, 4),
                     dict(stride=2, padding=1), (2, 3, 5, 4)),
    "ctb-1d-op-dil": ("conv_transpose_backward", (2, 3, 8), (1, 3, 3), (3, 2, 3),
                      dict(stride=2, padding=1, output_padding=1, dilation=2), (1, 1, 5)),
    "ctb-3d-groups": ("conv_transpose_backward", (1, 4, 3, 4, 3), (1, 4, 1, 2, 2),
                      (4, 1, 2, 3, 2), dict(groups=2, stride=2, padding=1), (1, 2, 3, 3, 2)),
    "ctb-x-bias": ("conv_transpose_backward", (1, 2, 6, 6), (1, 1, 4, 4), (2, 2, 3, 3),
                   dict(stride=3, grads=("x", "bias")), (1, 2, 7, 7)),
    # resize: non-integer scales, every mode, 1-3 dimensions
    "resize-nearest-2d": ("resize", (2, 3, 9, 7), (1, 2, 4, 3), None,
                          dict(scale_factor=2), None),
    "resize-linear-1d-frac": ("resize", (2, 2, 13), (1, 2, 4), None,
                              dict(scale_factor=2.5, mode="linear"), None),
    "resize-cubic-size": ("resize", (1, 2, 9, 11), (1, 1, 2, 5), None,
                          dict(size=(7, 30), mode="cubic", align_corners=True), None),
    "resize-area-down": ("resize", (1, 2, 13, 17), (1, 2, 5, 4), None,
                         dict(scale_factor=(0.6, 1.7), mode="area"), None),
    "resize-antialias": ("resize", (1, 1, 20, 18), (1, 1, 7, 5), None,
                         dict(scale_factor=0.4, mode="linear", antialias=True), None),
    "resize-3d-trilinear": ("resize", (1, 2, 5, 6, 4), (1, 2, 2, 3, 3), None,
                            dict(scale_factor=(1.5, 0.5, 3), mode="trilinear"), None),
    "resize-nearest-exact": ("resize", (1, 1, 10, 10), (1, 1, 3, 3), None,
                             dict(size=(9, 23), mode="nearest-exact"), None),
    "resize-onnx-cubic": ("resize", (1, 1, 8, 9), (1, 1, 3, 4), None,
                          dict(scale_factor=1.75, mode="cubic", exclude_outside=True,
                               coordinate_transformation_mode="half_pixel",
                               cubic_coeff_a=-0.5), None),
    "resize-onnx-nearest": ("resize", (1, 1, 11), (1, 1, 4), None,
                            dict(scale_factor=1.5, coordinate_transformation_mode="asymmetric",
                                 nearest_mode="ceil"), None),
    # pooling
    "pool-2d-k3s2p1-ceil": ("max_pool", (2, 3, 11, 9), (1, 2, 4, 3), None,
                            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), None),
    "pool-2d-dilation": ("max_pool", (1, 2, 12, 11), (1, 2, 5, 2), None,
                         dict(kernel_size=(3, 2), stride=(2, 1), dilation=2, padding=1), None),
    "pool-1d-chunks-of-1": ("max_pool", (2, 2, 9), (1, 1, 1), None,
                            dict(kernel_size=2, padding=1), None),
    "pool-3d": ("max_pool", (1, 2, 6, 7, 5), (1, 1, 3, 3, 2), None,
                dict(kernel_size=2, stride=(2, 1, 2)), None),
    "unpool-2d": ("max_unpool", (2, 3, 11, 9), (1, 3, 2, 3), None,
                  dict(kernel_size=3, stride=2, padding=1), (2, 1, 3, 2)),
    "unpool-1d-gaps": ("max_unpool", (1, 2, 12), (1, 2, 1), None,
                       dict(kernel_size=2, stride=3), (1, 1, 2)),
    "unpool-3d": ("max_unpool", (1, 2, 6, 5, 4), (1, 2, 2, 3, 1), None,
                  dict(kernel_size=2), (1, 1, 3, 1, 2)),
    # pixel shuffles
    "shuffle-2d-crd": ("pixel_shuffle", (2, 8, 5, 3), (1, 3, 2, 2), None,
                       dict(upscale_factor=2), None),
    "shuffle-2d-dcr": ("pixel_shuffle", (1, 12, 3, 4), (1, 5, 2, 3), None,
                       dict(upscale_factor=(3, 2), order="DCR"), None),
    "shuffle-3d": ("pixel_shuffle", (1, 8, 2, 3, 2), (1, 8, 1, 2, 1), None,
                   dict(upscale_factor=2), None),
    "unshuffle-2d-crd": ("pixel_unshuffle", (2, 3, 12, 6), (1, 2, 5, 5), None,
                         dict(downscale_factor=(4, 3)), None),
    "unshuffle-1d-dcr": ("pixel_unshuffle", (1, 3, 12), (1, 1, 5), None,
                         dict(downscale_factor=3, order="DCR"), None),
}

#: One case per operator for the LocalCluster (the threaded scheduler runs every case).
CLUSTER_CASES = ["conv-2d-s2-cchunks", "conv-2d-circular", "ct-2d-dcgan", "cb-2d-reflect",
                 "ctb-2d-dcgan", "resize-linear-1d-frac", "pool-2d-k3s2p1-ceil", "unpool-2d",
                 "shuffle-2d-dcr", "unshuffle-2d-crd"]


def _build(case, dtype, rng):
    """(dask results, in-memory results) of one case."""
    op, shape, chunks, weight_shape, kwargs, extra = case
    kwargs = dict(kwargs)
    x = rng.standard_normal(shape).astype(dtype)
    X = da.from_array(x, chunks=chunks)
    if op in ("conv", "conv_transpose"):
        w = rng.standard_normal(weight_shape).astype(dtype)
        groups = kwargs.get("groups", 1)
        out_channels = weight_shape[0] if op == "conv" else weight_shape[1] * groups
        b = rng.standard_normal(out_channels).astype(dtype) if kwargs.pop("bias", False) else None
        return ((getattr(fdd, op)(X, w, b, **kwargs),),
                (getattr(fastdeconv, op)(x, w, b, **kwargs),))
    if op in ("conv_backward", "conv_transpose_backward"):
        w = rng.standard_normal(weight_shape).astype(dtype)
        forward = fastdeconv.conv if op == "conv_backward" else fastdeconv.conv_transpose
        params = {k: v for k, v in kwargs.items() if k != "grads"}
        gy = rng.standard_normal(forward(x, w, **params).shape).astype(dtype)
        GY = da.from_array(gy, chunks=extra)
        return (getattr(fdd, op)(GY, X, w, **kwargs), getattr(fastdeconv, op)(gy, x, w, **kwargs))
    if op == "max_pool":
        return (fdd.max_pool(X, **kwargs, return_indices=True),
                fastdeconv.max_pool(x, **kwargs, return_indices=True))
    if op == "max_unpool":
        pooled, idx = fastdeconv.max_pool(x, **kwargs, return_indices=True)
        Y, I = da.from_array(pooled, chunks=chunks), da.from_array(idx, chunks=extra)
        return ((fdd.max_unpool(Y, I, **kwargs, output_size=shape[2:]),),
                (fastdeconv.max_unpool(pooled, idx, **kwargs, output_size=shape[2:]),))
    return (getattr(fdd, op)(X, **kwargs),), (getattr(fastdeconv, op)(x, **kwargs),)


def _check_block_shapes(result):
    """Every computed block has the shape the array's chunks announce."""
    import dask

    blocks = result.to_delayed()
    shapes = [b.shape for b in dask.compute(*blocks.ravel(), scheduler="threads")]
    expected = [tuple(c[i] for c, i in zip(result.chunks, index))
                for index in np.ndindex(blocks.shape)]
    assert shapes == expected


def _run_case(name, dtype, rng, scheduler, assert_close):
    case = CASES[name]
    lazy, expected = _build(case, dtype, rng)
    for result in lazy:
        if result is not None:
            assert not any(math.isnan(c) for dim in result.chunks for c in dim)
            if scheduler == "threads":
                _check_block_shapes(result)
    actual = _compute(lazy, scheduler)
    op, kwargs = case[0], case[4]
    exact = op in EXACT or (op == "resize" and "nearest" in kwargs.get("mode", "nearest"))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert (a is None) == (e is None)
        if e is not None:
            _check(a, e, e.dtype if e.dtype.kind == "f" else dtype, exact or e.dtype.kind == "i",
                   assert_close)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("name", list(CASES))
def test_threaded_equals_in_memory(name, dtype, rng, assert_close):
    _run_case(name, dtype, rng, "threads", assert_close)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("name", CLUSTER_CASES)
def test_local_cluster_equals_in_memory(name, dtype, rng, client, assert_close):
    _run_case(name, dtype, rng, client.get, assert_close)


def test_local_cluster_has_two_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(w["host"] == "127.0.0.1" for w in workers.values())
    assert len({w["pid"] if "pid" in w else w["id"] for w in workers.values()}) == 2


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_chunks_may_run_another_algorithm(op, dtype, rng, assert_close):
    """Sizes where the in-memory dispatcher picks another algorithm or tiling for a chunk
    than for the whole array (Winograd, GEMM tiles): equal within rounding."""
    x = rng.standard_normal((2, 16, 48, 40)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3) if op == "conv" else (16, 16, 4, 4)).astype(dtype)
    kwargs = dict(padding=1) if op == "conv" else dict(stride=2, padding=1)
    chunked = getattr(fdd, op)(da.from_array(x, chunks=(1, 16, 13, 20)), w, **kwargs)
    rtol = 1e-12 if dtype == np.float64 else None
    assert_close(chunked.compute(), getattr(fastdeconv, op)(x, w, **kwargs), rtol=rtol)


# ----------------------------------------------------------------------- chunk structure
def test_output_chunks_follow_the_rules():
    x = da.zeros((2, 4, 64, 48), chunks=(1, 4, 16, 12))
    w = np.zeros((4, 4, 4, 4))
    assert fdd.conv(x, w, stride=2, padding=1).chunks[2:] == ((8,) * 4, (6,) * 4)
    assert fdd.conv_transpose(x, w, stride=2, padding=1).chunks[2:] == ((32,) * 4, (24,) * 4)
    assert fdd.conv(x, w, stride=2, padding=1).chunks[0] == (1, 1)
    gy = da.zeros((2, 4, 32, 24), chunks=(2, 2, 5, 7))
    gx, _, _ = fdd.conv_backward(gy, x, w, stride=2, padding=1)
    assert gx.chunks == x.chunks
    gx, _, _ = fdd.conv_transpose_backward(da.zeros((2, 4, 128, 96), chunks=9), x, w, stride=2,
                                           padding=1)
    assert gx.chunks == x.chunks
    assert fdd.resize(x, scale_factor=2).chunks[2:] == ((32,) * 4, (24,) * 4)
    assert fdd.max_pool(x, 2).chunks[2:] == ((8,) * 4, (6,) * 4)
    assert fdd.pixel_shuffle(x, 2).chunks[1:] == ((1,), (32,) * 4, (24,) * 4)


def test_strided_chunks_not_multiple_of_stride():
    x = da.zeros((1, 1, 25), chunks=(1, 1, (7, 5, 9, 4)))
    y = fdd.conv(x, np.ones((1, 1, 3)), stride=3)
    assert sum(y.chunks[2]) == 8 and y.chunks[2] == (3, 1, 3, 1)


def test_chunk_rules_halo_and_windows():
    assert _chunks.conv_halo(3, 1, 1) == (1, 1)
    assert _chunks.conv_halo(4, 2, 1) == (1, 1)
    windows = _chunks.conv_windows((0, 4, 8), 5, 1, 2)
    assert windows == [(-2, 6), (2, 10)]
    # every output of a transposed convolution is covered by exactly the inputs that reach it
    for n, k_e, s, crop in [(7, 4, 2, 1), (5, 2, 3, 0), (6, 7, 2, 3)]:
        out = (n - 1) * s + k_e - crop
        edges = (0, 3, 5, out)
        for (q0, q1), t in zip(zip(edges[:-1], edges[1:]),
                               _chunks.transposed_sources(edges, n, k_e, s, crop)):
            reach = [j for j in range(n) if j * s < q1 + crop and j * s + k_e > q0 + crop]
            assert (list(range(t.start, t.stop)) == reach) or (t.empty and not reach)


@pytest.mark.parametrize("ndim, kernel, stride, padding, dilation, output_padding", [
    (2, 4, 2, 1, 1, 0), (2, 3, 2, 0, 2, 1), (1, 5, 3, 2, 1, 2), (3, 2, 2, 0, 1, 0)])
def test_transposed_chunks_get_interior_crops(ndim, kernel, stride, padding, dilation,
                                              output_padding, rng, assert_close):
    """Every chunk of a transposed convolution, at a global edge or not, runs the in-memory
    operator with crops of at least ``kernel_extent - 1`` on each side (its region joined
    with the zeros it reads), so that the engine reads the region in place instead of
    copying it again with zero padding; the result stays that of the in-memory call."""
    from fastdeconv.dask._stencil import _partial

    x = rng.standard_normal((1, 3) + (11,) * ndim)
    w = rng.standard_normal((3, 2) + (kernel,) * ndim)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation,
                  output_padding=output_padding)
    y = fdd.conv_transpose(da.from_array(x, chunks=(1, 3) + (4,) * ndim), w, **kwargs)
    extent = (kernel - 1) * dilation + 1
    layer = dict(y.dask.layers[y.name])
    crops = [part[1].padding for key, task in layer.items() if key[0] == y.name
             for part in task[1] if part[0] is _partial]
    assert len(crops) == 3 ** ndim
    assert all(c >= extent - 1 for crop in crops for pair in crop for c in pair), crops
    assert_close(y.compute(), fastdeconv.conv_transpose(x, w, **kwargs), rtol=1e-12)


def test_chunk_rules_pool_windows_and_resize_rows():
    # a pooling chunk's region starts at a multiple of the stride and covers its windows
    n, k_e, s, p = 23, 5, 2, 2
    out = (n + 2 * p - k_e) // s + 1
    edges = _chunks.strided_output_offsets((0, 6, 7, 15, 23), s, out)
    for (o0, o1), w in zip(zip(edges[:-1], edges[1:]), _chunks.pool_windows(edges, n, k_e, s, p)):
        assert w.start % s == 0 and w.start // s + w.keep == o0 and w.count == o1 - o0
        assert w.start <= max(o0 * s - p, 0) and w.stop >= min((o1 - 1) * s - p + k_e, n)
    # a resize chunk reads exactly the columns of its rows
    import scipy.sparse

    matrix = scipy.sparse.csr_array(np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0],
                                              [0, 0, 0.25, 0.75]]))
    sources = _chunks.resize_sources(matrix, (0, 2, 4))
    assert [(a, b) for a, b, _ in sources] == [(0, 2), (2, 4)]
    np.testing.assert_array_equal(sources[1][2].toarray(), [[1, 0], [0.25, 0.75]])


def test_task_graph_per_output_chunk_does_not_grow():
    """One task per output chunk, plus the halo tasks of the input blocks its halo touches
    (which cut the pieces where the blocks live): at most 8 per block in 2-d, whatever the
    number of chunks. Chunks of 16 x 16 have halos that are large next to the block (a
    1-cell face is 1/16 of it), so a block's faces get tasks of their own and only its small
    pieces share one: 2, 3 and 5 halo tasks for a corner, edge and interior block."""
    import dask
    from dask.core import get_dependencies

    w = np.ones((2, 2, 3, 3))
    for blocks in (4, 8):
        x = da.ones((1, 2, 16 * blocks, 16 * blocks), chunks=(1, 2, 16, 16))
        y = fdd.conv(x, w, padding=1)
        layer = dict(y.dask.layers[y.name])
        outputs = [k for k in layer if isinstance(k, tuple) and k[0] == y.name]
        halos = [k for k in layer if isinstance(k, tuple) and k[0] == halo_name(y.name)]
        assert len(outputs) == blocks * blocks == math.prod(len(c) for c in y.chunks)
        assert len(outputs) + len(halos) <= 9 * len(outputs)
        assert len(halos) == 4 * 2 + 4 * (blocks - 2) * 3 + (blocks - 2) ** 2 * 5
        graph = dict(y.__dask_graph__())
        reads = [len([d for d in get_dependencies(graph, k) if isinstance(d, tuple)])
                 for k in outputs]
        assert max(reads) == 9
        (optimized,) = dask.optimize(y)
        assert sum(1 for k in optimized.__dask_graph__() if "-halo" in str(k)) == len(halos)
        assert dask.compute(y.sum())[0] > 0


def test_halo_tasks_have_a_task_prefix_of_their_own():
    """A distributed scheduler estimates a task's duration from its prefix (the name before
    the token); halo tasks (milliseconds) sharing the output chunks' prefix made a chunk look
    ~100x cheaper to compute than to move, and work stealing never moved one. Every operator
    whose graph has halo tasks names them apart, and only they are halo keys."""
    from dask.utils import key_split

    from fastdeconv.dask._priority import is_halo_key

    rng = np.random.default_rng(3)
    x = da.from_array(rng.standard_normal((2, 2, 24, 24)), chunks=(1, 2, 8, 8))
    w = rng.standard_normal((2, 2, 3, 3))
    results = [fdd.conv(x, w, padding=1), fdd.conv_transpose(x, w, stride=2, padding=1),
               fdd.conv_backward(x, x, w, padding=1)[1],
               fdd.resize(x, scale_factor=2, mode="bilinear"),
               fdd.max_pool(x, 3, stride=2, padding=1)]
    checked = 0
    for y in results:
        keys = [k for layer in y.dask.layers.values() for k in layer
                if isinstance(k, tuple)]
        halos = [k for k in keys if is_halo_key(k)]
        if not halos:
            continue
        checked += 1
        halo_prefixes = {key_split(k[0]) for k in halos}
        other_prefixes = {key_split(k[0]) for k in keys if not is_halo_key(k)}
        assert all(p.endswith("-halo") for p in halo_prefixes), halo_prefixes
        assert not halo_prefixes & other_prefixes
    assert checked >= 4
    assert not is_halo_key(("conv-0f3a", 0)) and not is_halo_key("halo")
    assert is_halo_key(("max-pool-halo-0f3a", 0, 1))


def test_one_halo_task_per_block_when_halos_are_thin():
    """Where the pieces are small next to the block, each input block has one halo task that
    cuts all of them: two tasks per output chunk, and the result is unchanged."""
    from dask.core import get_dependencies

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 512, 384))
    w = rng.standard_normal((1, 1, 3, 3))
    y = fdd.conv(da.from_array(x, chunks=(1, 1, 128, 128)), w, padding=1)
    layer = dict(y.dask.layers[y.name])
    outputs = [k for k in layer if isinstance(k, tuple) and k[0] == y.name]
    halos = [k for k in layer if isinstance(k, tuple) and k[0] == halo_name(y.name)]
    assert len(outputs) == len(halos) == 4 * 3
    assert all(k[-1] == 0 for k in halos)
    graph = dict(y.__dask_graph__())
    halo_reads = [len([d for d in get_dependencies(graph, k) if d in set(halos)])
                  for k in outputs]
    assert sorted(set(halo_reads)) == [3, 5, 8]
    np.testing.assert_allclose(y.compute(), fastdeconv.conv(x, w, padding=1), rtol=0,
                               atol=1e-12 * np.abs(x).max() * np.abs(w).sum())


def _priorities_on_the_scheduler(client, submit):
    """``submit()``'s result, and the priority the scheduler gave every task that started
    meanwhile (recorded as each one starts: the scheduler forgets done tasks)."""
    def record(dask_scheduler):
        from distributed.diagnostics.plugin import SchedulerPlugin

        class Priorities(SchedulerPlugin):
            name = "test-halo-priorities"

            def __init__(self):
                self.seen = {}

            def transition(self, key, start, finish, *args, **kwargs):
                if finish == "processing":
                    self.seen[key] = dask_scheduler.tasks[key].priority

        dask_scheduler.add_plugin(Priorities(), idempotent=False)

    def collect(dask_scheduler):
        seen = dict(dask_scheduler.plugins["test-halo-priorities"].seen)
        dask_scheduler.remove_plugin(name="test-halo-priorities")
        return seen

    client.run_on_scheduler(record)
    try:
        result = submit()
    finally:
        seen = client.run_on_scheduler(collect)
    return result, seen


def test_halo_priority_runs_the_halo_tasks_first(client, rng):
    """Submitted within ``dask.annotate(priority=fdd.halo_priority)``, every halo task gets
    priority 1 on the scheduler (dask's graph optimisation would drop a layer annotation) and
    every other task keeps 0; the result is unchanged."""
    import dask

    x = rng.standard_normal((1, 2, 48, 40))
    w = rng.standard_normal((2, 2, 3, 3))
    y = fdd.conv(da.from_array(x, chunks=(1, 2, 16, 20)), w, padding=1)
    halos = [k for k in y.dask.layers[y.name] if k[0] == halo_name(y.name)]
    assert halos and all(fdd.halo_priority(k) == 1 for k in halos)
    assert fdd.halo_priority((y.name, 0, 0, 0, 0)) == 0 and fdd.halo_priority("w-3f") == 0

    def submit():
        with dask.annotate(priority=fdd.halo_priority):
            return client.compute(y).result()

    result, seen = _priorities_on_the_scheduler(client, submit)
    assert {seen[k][0] for k in halos} == {-1}
    assert {seen[k][0] for k in seen if k not in halos} == {0}
    np.testing.assert_allclose(result, fastdeconv.conv(x, w, padding=1), rtol=0,
                               atol=1e-12 * np.abs(x).max() * np.abs(w).sum())


def test_halo_tasks_run_first_with_no_annotation(client, rng, tmp_path):
    """A plain ``client.persist(y)``, ``client.compute(y)``, ``y.compute()``, ``y.persist()``
    and ``y.to_zarr(...)`` (no annotation) give every halo task priority 1 on the scheduler, above
    every other task's 0, though dask's graph optimisation fuses the graph
    (:class:`fdd.HaloFirstArray`); the results are unchanged. An array derived from a result
    is a plain dask array (its halo tasks get the priority within ``dask.annotate``)."""
    import dask

    x = rng.standard_normal((1, 2, 48, 40))
    w = rng.standard_normal((2, 3, 4, 4))
    y = fdd.conv_transpose(da.from_array(x, chunks=(1, 2, 16, 20)), w, stride=2, padding=1)
    expected = fastdeconv.conv_transpose(x, w, stride=2, padding=1)
    tolerance = dict(rtol=0, atol=1e-12 * np.abs(x).max() * np.abs(w).sum())
    assert isinstance(y, fdd.HaloFirstArray)
    halos = {k for k in y.dask.layers[y.name] if k[0] == halo_name(y.name)}
    assert halos

    def persist():
        persisted = client.persist(y)
        client.gather(client.futures_of(persisted))
        return client.compute(persisted).result()

    def to_zarr():
        with client.as_current():
            y.to_zarr(str(tmp_path / "y.zarr"))
        return np.asarray(da.from_zarr(str(tmp_path / "y.zarr")).compute(scheduler="threads"))

    submissions = {"client.persist": persist,
                   "client.compute": lambda: client.compute(y).result(),
                   "compute": lambda: y.compute(scheduler=client),
                   "persist": lambda: client.compute(y.persist(scheduler=client)).result(),
                   "to_zarr": to_zarr}
    for how, submit in submissions.items():
        result, seen = _priorities_on_the_scheduler(client, submit)
        ran = halos & set(seen)
        assert ran == halos, how
        assert {seen[k][0] for k in ran} == {-1}, how
        assert {seen[k][0] for k in seen if k not in halos} == {0}, how
        np.testing.assert_allclose(result, expected, **tolerance)

    # a priority annotated around the submission: the halo tasks get one more
    with dask.annotate(priority=5):
        _, seen = _priorities_on_the_scheduler(client, lambda: client.compute(y).result())
    assert {seen[k][0] for k in halos} == {-6}
    assert {seen[k][0] for k in seen if k not in halos} == {-5}

    derived = y[:, :, :-1] + 1
    assert type(derived) is da.Array
    _, seen = _priorities_on_the_scheduler(client, lambda: client.compute(derived).result())
    assert {seen[k][0] for k in seen} == {0}
    with dask.annotate(priority=fdd.halo_priority):
        _, seen = _priorities_on_the_scheduler(client,
                                               lambda: client.compute(derived).result())
    assert {seen[k][0] for k in halos & set(seen)} == {-1}


# --------------------------------------------------------------------------- out of core
def test_zarr_round_trip(tmp_path, rng):
    zarr = pytest.importorskip("zarr", reason="the dask extra installs zarr")
    del zarr
    x = rng.standard_normal((1, 3, 20, 18)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    da.from_array(x, chunks=(1, 3, 8, 8)).to_zarr(str(tmp_path / "x.zarr"))
    source = da.from_zarr(str(tmp_path / "x.zarr"))
    fdd.conv_transpose(source, w, stride=2, padding=1).to_zarr(str(tmp_path / "y.zarr"))
    result = da.from_zarr(str(tmp_path / "y.zarr"))
    assert result.chunks[2:] == ((16, 16, 8), (16, 16, 4))
    np.testing.assert_allclose(result.compute(), fastdeconv.conv_transpose(x, w, stride=2,
                                                                           padding=1),
                               rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- bad input
def test_numpy_input_is_wrapped(rng):
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    y = fdd.conv(x, w, padding=1)
    assert isinstance(y, da.Array)
    np.testing.assert_allclose(y.compute(), fastdeconv.conv(x, w, padding=1), rtol=0,
                               atol=1e-12)
    assert isinstance(fdd.resize(x.tolist(), scale_factor=2), da.Array)


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_chunked_weight_is_an_error(op):
    x = da.zeros((1, 2, 8, 8), chunks=4)
    w = da.zeros((2, 2, 3, 3), chunks=1)
    with pytest.raises(ValueError, match="weight must be an in-memory array"):
        getattr(fdd, op)(x, w)
    with pytest.raises(ValueError, match="bias must be an in-memory array"):
        getattr(fdd, op)(x, np.zeros((2, 2, 3, 3)), da.zeros(2, chunks=1))
    with pytest.raises(ValueError, match="weight"):
        fdd.conv_backward(da.zeros((1, 2, 6, 6), chunks=3), x, w)


def test_in_memory_validation_is_eager():
    x = da.zeros((1, 2, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="stride"):
        fdd.conv(x, np.zeros((2, 2, 3, 3)), stride=0)
    with pytest.raises(ValueError, match="padding"):
        fdd.max_pool(x, 2, padding=2)
    with pytest.raises(TypeError):
        fdd.conv(x.astype(complex), np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        fdd.conv_backward(da.zeros((2, 2, 6, 6), chunks=3), x, np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        fdd.conv(da.zeros((4, 4), chunks=2), np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fdd.resize(da.zeros((1, 1, 8), chunks=4)[da.zeros(1, chunks=1) == 0], scale_factor=2)


def test_unpool_index_outside_its_window_is_named():
    x = da.ones((1, 1, 4), chunks=2)
    indices = da.from_array(np.array([[[0, 1, 4, 7]]]), chunks=2)      # 1 is not in [2, 4)
    with pytest.raises(ValueError, match="indices must lie in the pooling window"):
        fdd.max_unpool(x, indices, 2).compute(scheduler="sync")
    with pytest.raises(ValueError, match="outside the plane"):
        fdd.max_unpool(x, indices + 8, 2).compute(scheduler="sync")


# -------------------------------------------------------------------------- random sweep
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(60))
def test_random_geometries_and_chunkings(seed, assert_close):
    """Random conv / conv_transpose geometries (1-3 d, groups, every padding mode) on random
    chunkings, against the in-memory operators."""
    rng = np.random.default_rng(seed)
    while True:     # draw until the in-memory operator accepts the geometry
        ndim = int(rng.integers(1, 4))
        groups = int(rng.choice([1, 2]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
        stride = tuple(int(s) for s in rng.integers(1, 4, ndim))
        dilation = tuple(int(d) for d in rng.integers(1, 3, ndim))
        size = tuple(int(n) for n in rng.integers(6, 11 if ndim < 3 else 8, ndim))
        chunks = (int(rng.integers(1, 3)), int(rng.integers(1, c_in + 1)),
                  *[int(rng.integers(1, n + 1)) for n in size])
        dtype = DTYPES[seed % 2]
        x = rng.standard_normal((2, c_in) + size).astype(dtype)
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        padding = tuple(int(p) for p in rng.integers(0, 3, ndim))
        if mode == "reflect":
            padding = tuple(min(p, n - 1) for p, n in zip(padding, size))
        w = rng.standard_normal((c_out, c_in // groups) + kernel).astype(dtype)
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        try:
            expected = fastdeconv.conv(x, w, **kw, padding_mode=mode)
            break
        except ValueError:
            continue
    X = da.from_array(x, chunks=chunks)
    rtol = 1e-12 if dtype == np.float64 else None
    assert_close(fdd.conv(X, w, **kw, padding_mode=mode).compute(), expected, rtol=rtol)
    gy = rng.standard_normal(expected.shape).astype(dtype)
    GY = da.from_array(gy, chunks=(1, int(rng.integers(1, c_out + 1)),
                                   *[int(rng.integers(1, n + 1)) for n in gy.shape[2:]]))
    for a, e in zip(dask_compute(fdd.conv_backward(GY, X, w, **kw, padding_mode=mode)),
                    fastdeconv.conv_backward(gy, x, w, **kw, padding_mode=mode)):
        assert_close(a, e, rtol=rtol)
    wt = np.ascontiguousarray(np.swapaxes(w, 0, 1)) if groups == 1 else None
    if wt is not None and all(p < k_e for p, k_e in zip(padding, [d * (k - 1) + 1 for k, d in
                                                                  zip(kernel, dilation)])):
        op = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        expected = fastdeconv.conv_transpose(x, wt, stride=stride, padding=padding,
                                             output_padding=op, dilation=dilation)
        actual = fdd.conv_transpose(X, wt, stride=stride, padding=padding, output_padding=op,
                                    dilation=dilation).compute()
        assert_close(actual, expected, rtol=rtol)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_random_upsamplers_and_chunkings(seed):
    """Random resizes, poolings, unpoolings and pixel shuffles on random chunkings."""
    rng = np.random.default_rng(1000 + seed)
    ndim = int(rng.integers(1, 4))
    size = tuple(int(n) for n in rng.integers(4, 12 if ndim < 3 else 8, ndim))
    x = rng.standard_normal((2, 3) + size).astype(DTYPES[seed % 2])
    chunks = (1, int(rng.integers(1, 4)), *[int(rng.integers(1, n + 1)) for n in size])
    X = da.from_array(x, chunks=chunks)
    mode = str(rng.choice(["nearest", "nearest-exact", "linear", "area", "cubic"]))
    if mode == "cubic" and ndim != 2:
        mode = "linear"
    scale = tuple(float(f) for f in rng.choice([0.5, 0.7, 1.0, 1.5, 2.0, 2.6], ndim))
    kw = dict(scale_factor=scale, mode=mode)
    actual, expected = fdd.resize(X, **kw).compute(), fastdeconv.resize(x, **kw)
    if "nearest" in mode:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0,
                                   atol=2e-12 if x.dtype == np.float64 else 1e-5)
    kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
    stride = tuple(int(s) for s in rng.integers(1, 4, ndim))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding,
              ceil_mode=bool(rng.integers(2)))
    y, idx = fdd.max_pool(X, **kw, return_indices=True)
    y_mem, idx_mem = fastdeconv.max_pool(x, **kw, return_indices=True)
    np.testing.assert_array_equal(y.compute(), y_mem)
    np.testing.assert_array_equal(idx.compute(), idx_mem)
    kw.pop("ceil_mode")
    try:
        expected = fastdeconv.max_unpool(y_mem, idx_mem, **kw, output_size=size)
    except ValueError:          # the pooled size is not reachable by unpooling
        expected = None
    if expected is not None:
        Y = da.from_array(y_mem, chunks=(2, 1, *[int(rng.integers(1, n + 1))
                                                 for n in y_mem.shape[2:]]))
        np.testing.assert_array_equal(
            fdd.max_unpool(Y, idx, **kw, output_size=size).compute(), expected)


def dask_compute(results):
    import dask

    return dask.compute(*results, scheduler="threads")
