"""Sub-pixel transposed convolutions of large strides by the direct convolution with a
depth-to-space store (fastdeconv._algorithms.subpixel.direct_rule,
fastdeconv._ext._direct_conv.conv_direct_to_space and pack_weight_gathered): against the
plain-NumPy reference (1-3 d, cropping, output padding, several parts of the batch, every
kernel), the same bits for any thread count and part size, output positions no channel
reaches left as they are, the weight gathered straight from the transposed convolution's
with the bits of the explicit sub-pixel weight, the measured rule on both sides, the memory
bound and the compiled entries' checks."""

import math
import tracemalloc

import numpy as np
import pytest

import fastdeconv
from fastdeconv._algorithms import budget, subpixel
from fastdeconv._algorithms import plan
from fastdeconv._ext import _direct_conv, _packed_gemm
from fastdeconv._problem import conv_transpose_problem
from fastdeconv.testing import conv_transpose_reference

#: (x shape, weight shape, keywords, dtype): strides whose phases fill whole cache lines
GEOMETRIES = [
    ((1, 5, 16, 16), (5, 9, 32, 32), dict(stride=16, padding=8), np.float32),
    ((2, 3, 16), (3, 8, 64), dict(stride=32, padding=16), np.float32),
    ((3, 4, 11), (4, 17, 32), dict(stride=16, padding=3), np.float32),
    ((2, 3, 9), (3, 8, 32), dict(stride=16, padding=20), np.float32),    # crops whole phases
    ((2, 4, 20, 20), (4, 10, 8, 16), dict(stride=(8, 16), padding=(2, 5), output_padding=(3, 7)),
     np.float32),
    ((1, 2, 3, 3, 16), (2, 8, 2, 2, 16), dict(stride=(2, 2, 16), padding=(0, 0, 4)),
     np.float32),
    ((2, 6, 15, 14), (6, 11, 16, 16), dict(stride=8, padding=4), np.float64),
    ((2, 3, 17), (3, 8, 24), dict(stride=8, padding=0, output_padding=5), np.float64),
]


def _oracle(x, w, **kw):
    """The plain-NumPy reference where its patches stay within 64 MiB, else the sub-pixel
    GEMM path (an independent algorithm: the engine's GEMM, then depth-to-space) in float64."""
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    patches = x.shape[0] * problem.geometry.input_numel * w.size // w.shape[1] * 8
    if patches <= 64 * 2**20:
        return conv_transpose_reference(x, w, **kw)
    with budget(subpixel_direct_min_line_bytes=2**62):
        return fastdeconv.conv_transpose(x.astype(np.float64), w.astype(np.float64), **kw)


def _operands(x_shape, w_shape, dtype, rng):
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(dtype))


def _plan(x_shape, w_shape, kw, dtype):
    return plan("backward_input", conv_transpose_problem(x_shape, w_shape, **kw),
                np.dtype(dtype).itemsize)


def _entry_operands(x, w, kw):
    """conv_direct_to_space's operands for conv_transpose(x, w, **kw), its sub-pixel weight
    made explicitly (subpixel._subpixel_weight)."""
    the_plan = _plan(x.shape, w.shape, kw, x.dtype)
    assert the_plan.origin is not None
    g, zg = the_plan.problem.geometry, the_plan.block_problem.geometry
    rows = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    x_last = np.ascontiguousarray(np.concatenate([rows, np.zeros((1, x.shape[1]), x.dtype)]))
    z_weight = subpixel._subpixel_weight(w, g.stride, 1)
    y_shape = (x.shape[0], w.shape[1]) + tuple(g.input_size)
    return (x_last, tuple(zg.input_size), z_weight, tuple(zg.output_size), y_shape,
            tuple(g.stride), the_plan.origin, tuple(zg.pad_before))


@pytest.mark.parametrize("x_shape, w_shape, kw, dtype", GEOMETRIES)
def test_large_stride_transposed_convolution_matches_the_reference(x_shape, w_shape, kw, dtype,
                                                                   rng, assert_close):
    x, w = _operands(x_shape, w_shape, dtype, rng)
    assert _plan(x_shape, w_shape, kw, dtype).origin is not None
    bias = rng.standard_normal(w_shape[1]).astype(dtype)
    assert_close(fastdeconv.conv_transpose(x, w, bias, **kw),
                 _oracle(x, w, **kw) + bias.reshape((-1,) + (1,) * (x.ndim - 2)), dtype)


@pytest.mark.parametrize("x_shape, w_shape, kw, dtype", [
    ((5, 64, 512), (64, 8, 32), dict(stride=16, padding=8), np.float32),
    ((5, 64, 16, 16), (64, 9, 32, 32), dict(stride=16, padding=8), np.float32),
    ((5, 32, 16, 16), (32, 8, 16, 16), dict(stride=8, padding=4), np.float64),
])
def test_parts_of_the_batch_and_threads_give_the_same_bits(x_shape, w_shape, kw, dtype, rng,
                                                           assert_close):
    x, w = _operands(x_shape, w_shape, dtype, rng)
    the_plan = _plan(x_shape, w_shape, kw, dtype)
    # the smallest workspace the sub-pixel plan takes: one channel of one sample of its grid
    grid = the_plan.block_problem.geometry.output_numel
    grid_bytes = the_plan.problem.geometry.phase_count * grid
    fastdeconv.set_num_threads(1)
    try:
        whole = fastdeconv.conv_transpose(x, w, **kw)
        with budget(workspace_bytes=max(grid_bytes * x.itemsize, x[0].nbytes) + 64):
            assert _plan(x_shape, w_shape, kw, dtype).samples_per_chunk < x.shape[0]
            for threads in (1, 2, 4):
                fastdeconv.set_num_threads(threads)
                np.testing.assert_array_equal(fastdeconv.conv_transpose(x, w, **kw), whole)
    finally:
        fastdeconv.set_num_threads(None)
    assert_close(whole, _oracle(x, w, **kw), dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("x_shape, w_shape, kw, dtype", [GEOMETRIES[0], GEOMETRIES[4],
                                                         GEOMETRIES[6]])
def test_every_kernel_stores_by_depth_to_space(kernel, x_shape, w_shape, kw, dtype, rng,
                                               assert_close):
    x, w = _operands(x_shape, w_shape, dtype, rng)
    x_last, size, z_weight, grid, y_shape, stride, origin, pad = _entry_operands(x, w, kw)
    y = np.zeros(y_shape, dtype)
    out = _direct_conv.conv_direct_to_space(x_last, size, z_weight, grid, y, stride, origin,
                                            pad, kernel=kernel)
    assert out is y
    assert_close(y, _oracle(x, w, **kw), dtype)


def test_positions_no_channel_reaches_keep_their_values(rng):
    # the grid moved 13 positions on (its first at 5, where the first 8 were cropped): the
    # same values 13 positions on, and the first 5 of every line no channel's
    x, w = _operands((2, 3, 16, 16), (3, 8, 32, 32), np.float32, rng)
    x_last, size, z_weight, grid, y_shape, stride, origin, pad = _entry_operands(
        x, w, dict(stride=16, padding=8))
    y, moved = np.full(y_shape, np.nan, np.float32), np.full(y_shape, np.nan, np.float32)
    _direct_conv.conv_direct_to_space(x_last, size, z_weight, grid, y, stride, origin, pad)
    _direct_conv.conv_direct_to_space(x_last, size, z_weight, grid, moved, stride,
                                      (origin[0] + 13, origin[1] + 13), pad)
    assert origin == (-8, -8) and not np.isnan(y).any()
    assert np.isnan(moved[:, :, :5]).all() and np.isnan(moved[:, :, :, :5]).all()
    assert not np.isnan(moved[:, :, 5:, 5:]).any()
    np.testing.assert_array_equal(moved[:, :, 13:, 13:], y[:, :, :-13, :-13])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_gathered_weight_has_the_bits_of_the_subpixel_weight(dtype, rng):
    x, w = _operands((2, 5, 16, 16), (5, 9, 32, 32), dtype, rng)
    kw = dict(stride=16, padding=8)
    x_last, size, z_weight, grid, y_shape, stride, origin, pad = _entry_operands(x, w, kw)
    gathered = _direct_conv.pack_weight_gathered(
        w, subpixel._gather_table((32, 32), stride, 9), z_weight.shape)
    assert gathered.key[2] == z_weight.shape
    y_array, y_packed = np.zeros(y_shape, dtype), np.zeros(y_shape, dtype)
    for weight, y in ((z_weight, y_array), (gathered, y_packed)):
        _direct_conv.conv_direct_to_space(x_last, size, weight, grid, y, stride, origin, pad)
    np.testing.assert_array_equal(y_packed, y_array)


def test_a_gather_table_without_runs_packs_value_by_value(rng):
    # src rows that are no runs of 8 (reversed and shuffled), and one run that breaks at its
    # last value: the packed weight is still weight[c].flat[src[t, co]]
    c_out, c_in = 40, 3
    w = rng.standard_normal((c_in, 50)).astype(np.float32)
    src = np.arange(c_out, dtype=np.intp)[::-1].copy().reshape(1, c_out)
    src[0, 8:16] = np.arange(8)
    src[0, 15] = 49
    src[0, 16:] = rng.permutation(50)[:c_out - 16]
    packed = _direct_conv.pack_weight_gathered(w, src, (c_out, c_in, 1))
    explicit = np.ascontiguousarray(w[:, src[0]].T.reshape(c_out, c_in, 1))
    x = rng.standard_normal((2, c_in, 5)).astype(np.float32)
    x_last = np.ascontiguousarray(np.concatenate(
        [np.moveaxis(x, 1, -1).reshape(-1, c_in), np.zeros((1, c_in), np.float32)]))
    y1, y2 = (np.zeros((2, c_out, 5), np.float32) for _ in range(2))
    _direct_conv.conv_direct(x_last, (5,), packed, y1)
    _direct_conv.conv_direct(x_last, (5,), explicit, y2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("x_shape, w_shape, kw, dtype, taken", [
    ((1, 4, 16, 16), (4, 8, 32, 32), dict(stride=16, padding=8), np.float32, True),
    ((1, 4, 16, 16), (4, 8, 16, 16), dict(stride=8, padding=4), np.float32, False),  # 32 bytes
    ((1, 4, 16, 16), (4, 8, 16, 16), dict(stride=8, padding=4), np.float64, True),
    ((1, 4, 16, 16), (4, 8, 32, 32), dict(stride=16, padding=8, groups=2), np.float32, False),
    ((1, 64, 16, 16), (64, 48, 32, 32), dict(stride=16, padding=8), np.float32, True),  # 12 MiB
    ((1, 64, 16, 16), (64, 72, 32, 32), dict(stride=16, padding=8), np.float32, False),  # 18 MiB
])
def test_the_rule_takes_strides_whose_phases_fill_cache_lines(x_shape, w_shape, kw, dtype,
                                                              taken):
    the_plan = _plan(x_shape, w_shape, kw, dtype)
    assert the_plan.algorithm == "subpixel"
    assert (the_plan.origin is not None) == taken
    if taken:
        with budget(subpixel_direct_min_line_bytes=2 * 16 * np.dtype(dtype).itemsize):
            assert _plan(x_shape, w_shape, kw, dtype).origin is None
        weight_bytes = math.prod(w_shape) * np.dtype(dtype).itemsize
        with budget(subpixel_direct_max_weight_bytes=weight_bytes - 1):
            assert _plan(x_shape, w_shape, kw, dtype).origin is None
        with budget(subpixel_direct_max_weight_bytes=weight_bytes):
            assert _plan(x_shape, w_shape, kw, dtype).origin is not None


def test_extra_memory_is_bounded(rng):
    # 8 MiB of input, 128 MiB of output: no intermediate, the copy within the workspace
    x = rng.standard_normal((4, 16, 32, 64)).astype(np.float32)   # 2 MiB
    w = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)
    assert _plan(x.shape, w.shape, dict(stride=16, padding=8), np.float32).origin is not None
    fastdeconv.conv_transpose(x, w, stride=16, padding=8)
    tracemalloc.start()
    try:
        y = fastdeconv.conv_transpose(x, w, stride=16, padding=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= y.nbytes + 32 * 2**20 + 4 * 2**20, peak


def _valid(rng):
    x, w = _operands((2, 3, 16, 16), (3, 8, 32, 32), np.float32, rng)
    return _entry_operands(x, w, dict(stride=16, padding=8))


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(y=np.zeros((2, 8, 256), np.float32)), ValueError, "y must have 4"),
    (lambda a: a.update(y=np.zeros((2, 3, 256, 256), np.float32)), ValueError, "times prod"),
    (lambda a: a.update(stride=(16, 0)), ValueError, "stride must be >= 1"),
    (lambda a: a.update(grid=(5, -1)), ValueError, "grid must be >= 0"),
    (lambda a: a.update(origin=(2**62, 0)), ValueError, "index range"),
    (lambda a: a.update(origin=1.5), ValueError, "origin must be an int"),
    (lambda a: a.update(padding=-1), ValueError, "padding must be >= 0"),
    (lambda a: a.update(x_last=a["x_last"][1:]), ValueError, "x_last must have shape"),
    (lambda a: a["x_last"].__setitem__(-1, 1.0), ValueError, "last row must be zeros"),
    (lambda a: a.update(y=a["y"].astype(np.float64)), TypeError, "dtype"),
    (lambda a: a["y"].setflags(write=False), ValueError, "y must be writable"),
    (lambda a: a.update(weight=np.asfortranarray(a["weight"])), ValueError, "contiguous"),
    (lambda a: a.update(weight=[1.0]), TypeError, "weight must be a numpy.ndarray or"),
    (lambda a: a.update(weight=_direct_conv.pack_weight(a["weight"], 2)), ValueError,
     "packed for"),
])
def test_bad_arguments_of_the_depth_to_space_entry(change, error, match, rng):
    x_last, size, weight, grid, y_shape, stride, origin, pad = _valid(rng)
    args = dict(x_last=x_last, in_size=size, weight=weight, grid=grid,
                y=np.zeros(y_shape, np.float32), stride=stride, origin=origin, padding=pad)
    change(args)
    with pytest.raises(error, match=match):
        _direct_conv.conv_direct_to_space(**args)


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(src=a["src"].astype(np.int32)), ValueError, "src must be a C-contig"),
    (lambda a: a.update(src=a["src"][:, :-1]), ValueError, "src must be a C-contiguous"),
    (lambda a: a.update(src=np.asfortranarray(np.tile(a["src"], (2, 1)))[:, :8]), ValueError,
     "src must be"),
    (lambda a: a["src"].__setitem__((0, 3), -1), ValueError, "src must index a row of"),
    (lambda a: a["src"].__setitem__((0, 3), 4 * 2 * 2), ValueError, "src must index a row"),
    (lambda a: a.update(shape=(8, 4, 1, 1)), ValueError, "weight must have C_in = 4 rows"),
    (lambda a: a.update(shape=[8, 3, 1, 1]), ValueError, "shape must be a tuple"),
    (lambda a: a.update(shape=(8, 3)), ValueError, "shape must be a tuple"),
    (lambda a: a.update(shape=(8, -3, 1, 1)), ValueError, "shape must be"),
    (lambda a: a.update(weight=a["weight"].tolist()), TypeError, "weight must be a numpy"),
    (lambda a: a.update(weight=a["weight"].astype(np.int64)), TypeError, "float32 or float64"),
    (lambda a: a.update(threads=0), ValueError, "threads"),
])
def test_bad_arguments_of_the_gathered_packing(change, error, match, rng):
    args = dict(weight=rng.standard_normal((3, 2, 2, 2)).astype(np.float32),
                src=np.arange(8, dtype=np.intp).reshape(1, 8), shape=(8, 3, 1, 1))
    change(args)
    with pytest.raises(error, match=match):
        _direct_conv.pack_weight_gathered(**args)
