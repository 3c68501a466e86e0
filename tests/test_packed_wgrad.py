"""The packed engine's weight gradient ("packed" on the backward_weight pass): forced on every
kind of geometry against the NumPy reference, every kernel, bit identity across thread
counts, the batch cut into cache-sized parts, peak memory, NaN propagation, the rule, the
compiled entry's validation, and the layout kernels that make its channels-last copies."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import DEFAULT_BUDGET, current_budget, packed_wgrad
from fastdeconv._ext import _layout_kernels, _packed_gemm, _packed_wgrad
from fastdeconv._problem import conv_problem
from fastdeconv.testing import conv_weight_grad_reference

#: (x shape, weight shape, conv keywords): 1-3 d, strides 1-3, dilation, asymmetric padding,
#: groups, channel counts off the register tiles, a reduction over several KC slices.
GEOMETRIES = [
    ((2, 5, 11), (7, 5, 3), dict(stride=2, padding=1)),
    ((3, 4, 12), (6, 2, 4), dict(stride=3, padding=((2, 1),), groups=2)),
    ((2, 3, 7, 6), (5, 3, 3, 3), dict(padding=1)),
    ((2, 6, 9, 8), (4, 6, 4, 4), dict(stride=2, padding=1)),
    ((1, 4, 9, 10), (6, 4, 3, 2), dict(stride=(2, 1), padding=((2, 0), (1, 3)))),
    ((2, 6, 8, 8), (6, 2, 3, 3), dict(padding=2, dilation=2, groups=3)),
    ((2, 8, 7, 7), (8, 1, 3, 3), dict(stride=2, padding=1, groups=8)),       # depthwise
    ((1, 3, 5, 6, 7), (4, 3, 3, 2, 3), dict(stride=(1, 2, 1), padding=1)),
    ((1, 4, 6, 6, 6), (6, 2, 2, 3, 2), dict(stride=2, groups=2)),
    ((2, 37, 9, 9), (45, 37, 3, 3), dict(stride=2, padding=1)),              # edge tiles
    ((3, 20, 30, 30), (16, 20, 3, 3), dict(padding=1)),                      # K over KC
    ((2, 5, 8, 8), (3, 5, 1, 1), dict()),                                    # 1x1
    ((2, 64, 6, 6), (8, 64, 3, 3), dict(padding=1)),           # panels of one tap: 8 x 48
    ((2, 64, 6, 6), (12, 64, 2, 3), dict(stride=2, padding=1)),  # and 12 x 32 tiles
    ((2, 4, 9, 9), (3, 4, 3, 3), dict(stride=2, padding=1, padding_mode="reflect")),
]


def _forced(gy, x, w, **kw):
    with _dispatch.forced_algorithm("packed"):
        return fastdeconv.conv_backward(gy, x, w, grads=("weight",), **kw)[1]


def _operands(x_shape, w_shape, kw, dtype, rng):
    problem = conv_problem(x_shape, w_shape, **kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(problem.forward_output_shape).astype(dtype)
    return problem, x, w, gy


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forced_packed_weight_gradient_matches_the_reference(x_shape, w_shape, kw, dtype, rng,
                                                             assert_close):
    problem, x, w, gy = _operands(x_shape, w_shape, kw, dtype, rng)
    with _dispatch.forced_algorithm("packed"):
        used = _dispatch.plan("backward_weight", problem, np.dtype(dtype).itemsize).algorithm
    assert used == "packed"
    grad_w = _forced(gy, x, w, **kw)
    assert grad_w.dtype == dtype and grad_w.shape == w.shape
    assert_close(grad_w, conv_weight_grad_reference(x, gy, w.shape, **kw), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_convolution_weight_gradient_through_the_engine(dtype, rng, assert_close):
    x = rng.standard_normal((2, 6, 5, 5)).astype(dtype)
    w = rng.standard_normal((6, 4, 4, 4)).astype(dtype)
    kw = dict(stride=2, padding=1)
    gy = rng.standard_normal(fastdeconv.conv_transpose(x, w, **kw).shape).astype(dtype)
    with _dispatch.forced_algorithm("packed"):
        got = fastdeconv.conv_transpose_backward(gy, x, w, grads=("weight",), **kw)[1]
    with _dispatch.forced_algorithm("im2col"):
        expected = fastdeconv.conv_transpose_backward(gy, x, w, grads=("weight",), **kw)[1]
    assert_close(got, expected, dtype)


def _entry_operands(rng, dtype=np.float64, groups=1, channels=6, c_out=4):
    """A small problem in the compiled entry's terms and its gradient by einsum."""
    problem, x, w, gy = _operands((2, channels, 7, 6), (c_out, channels // groups, 3, 2),
                                  dict(stride=(2, 1), padding=1, groups=groups), dtype, rng)
    the_plan = packed_wgrad.plan("backward_weight", problem, current_budget(), x.itemsize)
    x_last = packed_wgrad._channels_last(x, the_plan.extent, problem.geometry.pad_before,
                                         the_plan.padded, 1)
    gy_last = np.ascontiguousarray(np.moveaxis(gy, 1, -1)).reshape(-1, c_out)
    rows, taps = packed_wgrad._offsets(problem, the_plan.extent, 2)
    gathered = x_last.reshape(-1)[rows[:, None, None] + taps[None, :, None]
                                  + np.arange(channels)[None, None, :]]  # (k, t, c)
    cin_g, cout_g = channels // groups, c_out // groups
    expected = np.concatenate([
        np.einsum("ko,ktc->otc", gy_last[:, g * cout_g:(g + 1) * cout_g],
                  gathered[:, :, g * cin_g:(g + 1) * cin_g]).reshape(cout_g, -1)
        for g in range(groups)])
    return x_last, gy_last, rows, taps, expected


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, channels", [(1, 6), (2, 6), (1, 64), (2, 96)])
def test_every_kernel_computes_the_weight_gradient(kernel, dtype, groups, channels, rng,
                                                   assert_close):
    # 6 channels: runs of a few channels per panel; 64 and 96 (48 per group): whole panels
    # of one tap, the packer's one-copy rows, on every register tile
    x_last, gy_last, rows, taps, expected = _entry_operands(rng, dtype, groups, channels)
    out = np.full(expected.shape, np.nan, dtype)
    _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, out, rows, taps, groups=groups,
                                          kernel=kernel)
    assert_close(out, expected, dtype)
    _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, out, rows, taps, groups=groups,
                                          accumulate=True, kernel=kernel)
    assert_close(out, 2 * expected, dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, channels, c_out", [
    (1, 6, 4), (1, 13, 4), (2, 26, 4), (1, 64, 4), (2, 96, 4),
    (1, 16, 40), (2, 32, 200), (1, 12, 96)])   # several NR panels of grad_y, a part one
def test_every_kernel_computes_the_transposed_weight_gradient(kernel, dtype, groups, channels,
                                                              c_out, rng, assert_close):
    # x read in place, whole MR panels per tap: 13 channels leave a last panel moved back
    # over the one before on every tile (MR 4, 6, 8, 12), 6 on the portable one (MR 4)
    x_last, gy_last, rows, taps, expected = _entry_operands(rng, dtype, groups, channels,
                                                            c_out)
    cin_g, cout_g = channels // groups, c_out // groups
    layout = _packed_wgrad.transposed_rows(channels, c_out, taps.size, groups, dtype, kernel)
    if layout is None:   # 6 channels on the tiles of 8 and 12 rows
        assert cin_g < 8 and kernel == "avx512"
        with pytest.raises(ValueError, match="needs at least as many channels per group"):
            _packed_wgrad.conv_weight_grad_packed(
                x_last, gy_last, np.zeros((groups, 36, cout_g), dtype), rows, taps,
                groups=groups, kernel=kernel, transposed=True)
        return
    n_rows, row_of = layout
    assert row_of.shape == (taps.size, cin_g) and n_rows % taps.size == 0
    out = np.full((groups, n_rows, cout_g), np.nan, dtype)
    _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, out, rows, taps, groups=groups,
                                          kernel=kernel, transposed=True)
    got = out[:, row_of.reshape(-1), :].transpose(0, 2, 1).reshape(expected.shape)
    assert_close(got, expected, dtype)
    _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, out, rows, taps, groups=groups,
                                          accumulate=True, kernel=kernel, transposed=True)
    got = out[:, row_of.reshape(-1), :].transpose(0, 2, 1).reshape(expected.shape)
    assert_close(got, 2 * expected, dtype)


@pytest.mark.parametrize("kernel, channels, mr, rows_per_tap, moved", [
    ("portable", 13, 4, 16, 3),      # panels at 0, 4, 8 and the last at 9, not 12
    ("portable", 12, 4, 12, 0),
    ("portable", 4, 4, 4, 0),
])
def test_transposed_rows_places_each_tap_in_whole_panels(kernel, channels, mr, rows_per_tap,
                                                         moved):
    n_rows, row_of = _packed_wgrad.transposed_rows(channels, 8, 3, kernel=kernel)
    assert n_rows == 3 * rows_per_tap
    c = np.arange(channels)
    expected = np.where(c >= rows_per_tap - mr, c + moved, c)
    assert np.array_equal(row_of, np.arange(3)[:, None] * rows_per_tap + expected)


def test_transposed_rows_is_none_below_the_tile_rows():
    assert _packed_wgrad.transposed_rows(3, 8, 9, kernel="portable") is None      # MR 4
    assert _packed_wgrad.transposed_rows(8, 8, 9, groups=4, kernel="portable") is None
    assert _packed_wgrad.transposed_rows(0, 8, 9, kernel="portable") is None


@pytest.mark.parametrize("args, error, match", [
    (dict(c_in=6, groups=4), ValueError, "groups=4 must divide"),
    (dict(taps=0), ValueError, "taps must be an int >= 1"),
    (dict(c_out=-1), ValueError, "c_out must be an int >= 0"),
    (dict(groups=True), ValueError, "groups must be an int >= 1"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(kernel="sse"), ValueError, "kernel must be one of"),
])
def test_transposed_rows_rejects_bad_arguments_naming_them(args, error, match):
    call = dict(c_in=8, c_out=8, taps=9, groups=1, dtype=np.float32, kernel=None)
    call.update(args)
    with pytest.raises(error, match=match):
        _packed_wgrad.transposed_rows(**call)


@pytest.mark.parametrize("kernel, channels, groups, taps", [
    ("portable", 13, 1, 3),       # the last panel moved back: rows 9-12 repeat 9-11
    ("portable", 8, 2, 4),
    (None, 37, 1, 16),           # AVX-512: 12-row panels, 8 x 8 tiles and edges
    (None, 24, 1, 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_transposed_to_weight_puts_each_tap_of_each_channel_in_the_weights_order(
        kernel, channels, groups, taps, dtype, threads, rng):
    c_out = 10 * groups
    n_rows, row_of = _packed_wgrad.transposed_rows(channels * groups, c_out, taps, groups,
                                                   dtype, kernel=kernel)
    columns = rng.standard_normal((groups, n_rows, c_out // groups)).astype(dtype)
    out = np.full((groups, c_out // groups, channels * taps), np.nan, dtype)
    _packed_wgrad.transposed_to_weight(columns, row_of, out, threads)
    expected = columns[:, row_of.reshape(-1), :].reshape(groups, taps, channels, -1)
    assert np.array_equal(out, expected.transpose(0, 3, 2, 1).reshape(out.shape))


@pytest.mark.parametrize("change, error, match", [
    (lambda c, r, o: (c, r.astype(np.int32), o), TypeError, "row_of must be a 2-d"),
    (lambda c, r, o: (c, r[0], o), TypeError, "row_of must be a 2-d"),
    (lambda c, r, o: (c, r + c.shape[1], o), ValueError, r"row_of must hold rows in \[0, "),
    (lambda c, r, o: (c, r - 1, o), ValueError, r"row_of must hold rows in \[0, "),
    (lambda c, r, o: (c, r[[1, 0, 2]], o), ValueError, "constant number of rows apart"),
    (lambda c, r, o: (c, r, o[:, :, 1:].copy()), ValueError, "grad_weight must have shape"),
    (lambda c, r, o: (c, r, o[:, :, ::2]), ValueError, "grad_weight must be C-contiguous"),
    (lambda c, r, o: (c, r, o.astype(np.float64)), TypeError, "grad_weight has dtype float64"),
    (lambda c, r, o: (c.astype(np.int32), r, o), TypeError, "columns must be float32"),
    (lambda c, r, o: (c, r, c.reshape(-1)[:144].reshape(1, 6, 24)), ValueError,
     "must not overlap columns"),
])
def test_transposed_to_weight_rejects_bad_arguments_naming_them(change, error, match):
    n_rows, row_of = _packed_wgrad.transposed_rows(8, 6, 3, kernel="portable")
    columns = np.zeros((1, n_rows, 6), np.float32)
    out = np.zeros((1, 6, 24), np.float32)
    with pytest.raises(error, match=match):
        _packed_wgrad.transposed_to_weight(*change(columns, row_of, out))


@pytest.mark.parametrize("x_shape, w_shape, kw", [GEOMETRIES[3], GEOMETRIES[7], GEOMETRIES[10],
                                                  GEOMETRIES[13]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_weight_gradient_is_bit_identical_across_thread_counts(
        x_shape, w_shape, kw, dtype, rng, assert_same_bits_for_thread_counts):
    _, x, w, gy = _operands(x_shape, w_shape, kw, dtype, rng)
    assert_same_bits_for_thread_counts(lambda: _forced(gy, x, w, **kw), counts=(1, 2, 4, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 24])   # the gathered and the transposed GEMM (3 <
#                                                 every tile's MR, 24 >= every tile's MR)
def test_batch_is_cut_into_parts_that_fit_the_workspace(dtype, channels, replace_budget, rng,
                                                        assert_close):
    kw = dict(stride=2, padding=1)
    problem, x, w, gy = _operands((7, channels, 10, 9), (6, channels, 3, 3), kw, dtype, rng)
    whole = _forced(gy, x, w, **kw)
    elements, offsets = packed_wgrad._per_sample(problem, (11, 11), True)   # 10x9 read as 11x11
    per_sample = elements * x.itemsize + offsets * 8
    result = packed_wgrad.plan("backward_weight", problem, current_budget(),
                               x.itemsize).io_elements * x.itemsize   # the GEMM's result
    replace_budget(workspace_bytes=3 * per_sample + result)
    the_plan = packed_wgrad.plan("backward_weight", problem, current_budget(), x.itemsize)
    assert the_plan.samples_per_tile == 3 and the_plan.extent == (11, 11)
    assert the_plan.transposed == (channels == 24)
    assert_close(_forced(gy, x, w, **kw), whole, dtype)   # parts accumulate in order
    replace_budget(workspace_bytes=per_sample - 1)
    assert packed_wgrad.plan("backward_weight", problem, current_budget(), x.itemsize) is None


@pytest.mark.parametrize("x_shape, w_shape, kw", [GEOMETRIES[3], GEOMETRIES[4], GEOMETRIES[7]])
def test_channels_last_copies_from_a_dirty_scratch_pool_are_zero_padded(x_shape, w_shape, kw,
                                                                        rng, assert_close,
                                                                        dirty_scratch_pool):
    # the copies are blocks of the engine's scratch pool, which hold what their last user
    # left: fill idle blocks with NaN first, so that a padding cell left unwritten shows
    _, x, w, gy = _operands(x_shape, w_shape, kw, np.float64, rng)
    expected = conv_weight_grad_reference(x, gy, w.shape, **kw)
    dirty_scratch_pool()
    assert_close(_forced(gy, x, w, **kw), expected, np.float64)


def test_peak_extra_memory_is_within_the_bound(peak_extra_bytes, rng):
    kw = dict(stride=2, padding=1)
    _, x, w, gy = _operands((64, 32, 32, 32), (64, 32, 4, 4), kw, np.float32, rng)  # 8 MiB x
    extra, (grad_w,) = peak_extra_bytes(lambda: _forced(gy, x, w, **kw))
    assert extra <= max(x.nbytes, gy.nbytes) + 32 * 2**20, extra
    assert extra <= 2 * DEFAULT_BUDGET.workspace_bytes, extra


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_reaches_exactly_the_weights_that_read_it(dtype):
    x = np.ones((1, 2, 6, 6), dtype)
    x[0, 1, 0, 3] = np.nan
    gy = np.ones((1, 3, 3, 3), dtype)
    w = np.ones((3, 2, 3, 3), dtype)
    got = _forced(gy, x, w, stride=2, padding=1)
    expected = conv_weight_grad_reference(x, gy, w.shape, stride=2, padding=1)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    assert np.array_equal(np.isnan(got), np.isnan(expected))


#: (x shape, weight shape, keywords, itemsize, the algorithm the chooser takes)
RULE_CASES = [
    ((16, 128, 32, 32), (64, 128, 4, 4), dict(stride=2, padding=1), 4, "packed"),  # wgrad_dcgan
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "packed"),  # resnet_s2
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 8, "packed"),  # float64
    ((16, 128, 32, 32), (64, 128, 4, 4), dict(stride=2, padding=1), 8, "packed"),
    ((8, 128, 8, 8), (128, 128, 4, 4), dict(stride=2, padding=1), 4, "packed"),    # 1.8x
    ((1, 512, 14, 14), (512, 512, 3, 3), dict(padding=1), 4, "packed"),  # Winograd's dU too big
    ((4, 64, 32, 32), (64, 64, 3, 3), dict(padding=32, dilation=32), 4, "im2col"),  # 9x pad
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 4, "winograd"),           # wgrad_3x3
    ((16, 3, 64, 64), (64, 3, 4, 4), dict(stride=2, padding=1), 4, "space_to_depth"),  # 3 ch.
    ((8, 256, 56, 56), (64, 256, 1, 1), dict(), 4, "im2col"),                    # 1x1
    ((8, 128, 4096), (64, 128, 4), dict(stride=2, padding=1), 4, "im2col"),      # 1-d
    ((2, 16, 8, 8), (16, 16, 3, 3), dict(stride=2, padding=1), 4, "im2col"),     # little work
]


@pytest.mark.parametrize("w_shape, groups, itemsize, expected", [
    ((64, 128, 4, 4), 1, 4, True),       # wgrad_dcgan: 64 output channels
    ((64, 128, 4, 4), 1, 8, True),
    ((96, 128, 4, 4), 1, 4, True),
    ((128, 128, 4, 4), 1, 4, False),     # measured slower on 2 threads
    ((256, 128, 4, 4), 1, 4, False),
    ((256, 32, 4, 4), 4, 4, True),       # 64 a group
])
def test_transposed_gemm_is_planned_for_few_output_channels_per_group(w_shape, groups,
                                                                     itemsize, expected):
    problem = conv_problem((16, 128, 32, 32), w_shape, stride=2, padding=1, groups=groups)
    the_plan = packed_wgrad.plan("backward_weight", problem, DEFAULT_BUDGET, itemsize)
    assert the_plan.transposed is expected


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", RULE_CASES)
def test_chooser_takes_the_packed_weight_gradient_where_it_measured_faster(
        x_shape, w_shape, kw, itemsize, expected):
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_weight", problem, itemsize).algorithm == expected


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(x=a["x"].astype(np.float32)), TypeError,
     "grad_y has dtype float64, expected float32"),
    (lambda a: a.update(x=[1.0]), TypeError, "x must be a numpy.ndarray"),
    (lambda a: a.update(gy=a["gy"][:, :3]), ValueError, "grad_y must be C-contiguous"),
    (lambda a: a.update(gw=a["gw"][:3]), ValueError, r"grad_weight must have shape \(4, 36\)"),
    (lambda a: a.update(gw=np.asfortranarray(a["gw"])), ValueError,
     "grad_weight must be C-contiguous"),
    (lambda a: a.update(rows=a["rows"][:-1]), ValueError, "row_offset must have"),
    (lambda a: a.update(rows=a["rows"].astype(np.int32)), TypeError, "row_offset must be"),
    (lambda a: a.update(taps=a["taps"] - 1), ValueError, "must be >= 0"),
    (lambda a: a.update(rows=a["rows"] + a["x"].size), ValueError, "read x up to element"),
    (lambda a: a.update(groups=4), ValueError, "groups=4 must divide"),
    (lambda a: a.update(groups=0), ValueError, "groups must be an int >= 1"),
    (lambda a: a.update(accumulate=1), TypeError, "accumulate must be a bool"),
    (lambda a: a.update(threads=0), ValueError, "threads must be >= 1"),
    (lambda a: a.update(transposed=True), ValueError, "grad_weight must have 3 dimensions"),
    (lambda a: a.update(transposed=True, groups=2, gw=np.zeros((2, 36, 2)), kernel="portable"),
     ValueError, "transposed=True needs at least as many channels per group"),   # 3 < MR 4
    (lambda a: a.update(transposed="yes"), TypeError, "transposed must be a bool"),
    (lambda a: a.update(transposed=True, taps=np.zeros(0, np.intp), gw=np.zeros((1, 0, 4))),
     ValueError, "transposed=True needs at least one tap"),
])
def test_compiled_entry_rejects_bad_arguments_naming_them(change, error, match, rng):
    x_last, gy_last, rows, taps, expected = _entry_operands(rng)
    args = dict(x=x_last, gy=gy_last, gw=np.zeros(expected.shape), rows=rows, taps=taps,
                groups=1, accumulate=False, threads=1, transposed=False, kernel=None)
    change(args)
    with pytest.raises(error, match=match):
        _packed_wgrad.conv_weight_grad_packed(
            args["x"], args["gy"], args["gw"], args["rows"], args["taps"],
            groups=args["groups"], accumulate=args["accumulate"], threads=args["threads"],
            kernel=args["kernel"], transposed=args["transposed"])


@pytest.mark.parametrize("which", ["row_offset", "tap_offset"])
def test_compiled_entry_rejects_grad_weight_overlapping_the_offsets(which, rng):
    x_last, gy_last, rows, taps, expected = _entry_operands(rng)
    buffer = np.zeros(expected.size + rows.size + taps.size)
    gw = buffer[:expected.size].reshape(expected.shape)
    offsets = {"row_offset": rows, "tap_offset": taps}
    shared = buffer.view(np.intp)[expected.size - 1:expected.size - 1 + offsets[which].size]
    shared[...] = offsets[which]
    offsets[which] = shared
    with pytest.raises(ValueError, match="grad_weight must not overlap"):
        _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, gw, offsets["row_offset"],
                                              offsets["tap_offset"])


def test_compiled_entry_rejects_overlap(rng):
    x_last, gy_last, rows, taps, expected = _entry_operands(rng)
    buffer = np.zeros(x_last.size + expected.size)
    x_view = buffer[:x_last.size].reshape(x_last.shape)
    x_view[...] = x_last
    with pytest.raises(ValueError, match="grad_weight must not overlap"):
        _packed_wgrad.conv_weight_grad_packed(
            x_view, gy_last, buffer[x_last.size - 1:x_last.size - 1 + expected.size]
            .reshape(expected.shape), rows, taps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 37, 45), (2, 64, 64), (1, 8, 8), (4, 1, 17), (2, 9, 1),
                                   (2, 301, 299)])   # the last on 2 threads (>= 65536 values)
@pytest.mark.parametrize("simd", [True, False])
def test_transpose_batched_in_register_tiles_and_plain(dtype, shape, simd, rng):
    a = rng.standard_normal(shape).astype(dtype)
    out = np.empty((shape[0], shape[2], shape[1]), dtype)
    _layout_kernels.transpose_batched(a, out, 2, simd)
    assert np.array_equal(out, a.transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial, pad, extent", [
    ((5, 6), (1, 2), (8, 9)), ((7,), (0,), (7,)), ((4, 5, 6), (1, 0, -1), (6, 4, 5)),
    ((10, 10), (-2, 3), (6, 15)), ((40, 3), (1, 1), (42, 5)),
    ((40, 50), (1, -2), (43, 47)),                       # on 2 threads (>= 65536 values)
])
@pytest.mark.parametrize("simd", [True, False])
def test_channels_last_padded_copy_matches_numpy(dtype, spatial, pad, extent, simd, rng,
                                                 padding_boxes):
    x = rng.standard_normal((3, 37) + spatial).astype(dtype)
    out = np.zeros((3,) + extent + (37,), dtype)
    _layout_kernels.channels_last_padded(x.reshape(3, -1), out.reshape(3, -1), spatial, extent,
                                         pad, 2, simd)
    expected = np.zeros_like(out)
    src, dst = padding_boxes(spatial, pad, extent)   # (the channels: the last axis, whole)
    expected[dst] = np.moveaxis(x, 1, -1)[src]
    assert np.array_equal(out, expected)


def test_workspace_is_bounded_whatever_the_batch():
    for batch in (1, 64, 4096):
        for channels, size, itemsize in ((16, 16, 4), (64, 64, 8), (256, 64, 4)):
            problem = conv_problem((batch, channels, size, size), (channels, channels, 4, 4),
                                   stride=2, padding=1)
            the_plan = packed_wgrad.plan("backward_weight", problem, DEFAULT_BUDGET, itemsize)
            copies = the_plan.col_elements * itemsize
            per_sample = copies // the_plan.samples_per_tile
            if per_sample <= DEFAULT_BUDGET.workspace_bytes // 2:   # several samples a part
                assert 2 <= the_plan.samples_per_tile <= batch or batch == 1
                assert copies <= DEFAULT_BUDGET.workspace_bytes
            else:                                             # one sample a part
                assert the_plan.samples_per_tile == 1
            assert the_plan.workspace_bytes(itemsize) <= DEFAULT_BUDGET.workspace_bytes


def test_channels_last_data_and_weight_formats_through_the_engine(rng, assert_close):
    kw = dict(stride=2, padding=1, groups=2)
    _, x, w, gy = _operands((2, 32, 9, 10), (8, 16, 3, 3), kw, np.float32, rng)
    expected = conv_weight_grad_reference(x, gy, w.shape, **kw)
    x_last, gy_last = np.moveaxis(x, 1, -1).copy(), np.moveaxis(gy, 1, -1).copy()
    w_hwio = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    with _dispatch.forced_algorithm("packed"):
        got = fastdeconv.conv_backward(gy_last, x_last, w_hwio, grads=("weight",),
                                       data_format="channels_last", weight_format="HWIO",
                                       **kw)[1]
    assert_close(got, expected.transpose(2, 3, 1, 0), np.float32)


@pytest.mark.parametrize("args, match", [
    (dict(out=np.zeros((1, 8), np.float32), x_spatial=(64, 64), extent=(200, 200),
          pad_before=(0, 0)), r"out must have shape \(1, 2560000\)"),
    (dict(x_spatial=(), extent=(), pad_before=()), "the same 1 to 8 entries"),
    (dict(x_spatial=(2,) * 9, extent=(2,) * 9, pad_before=(0,) * 9), "the same 1 to 8 entries"),
    (dict(x_spatial=(64, 64), extent=(64, 64), pad_before=(0,)), "the same 1 to 8 entries"),
    (dict(x_spatial=(63, 64), extent=(63, 64), pad_before=(0, 0)), "not a multiple"),
    (dict(x_spatial=(64, 64), extent=(-1, 64), pad_before=(0, 0)), "must be >= 0"),
])
def test_channels_last_padded_rejects_sizes_that_do_not_match(args, match):
    call = dict(x=np.ones((1, 64 * 4096), np.float32), out=np.zeros((1, 64 * 4096), np.float32),
                x_spatial=(64, 64), extent=(64, 64), pad_before=(0, 0))
    call.update(args)
    with pytest.raises(ValueError, match=match):
        _layout_kernels.channels_last_padded(call["x"], call["out"], call["x_spatial"],
                                             call["extent"], call["pad_before"], 1)


def test_transpose_batched_rejects_a_destination_of_another_shape():
    with pytest.raises(ValueError, match=r"dst must have shape \(2, 5, 3\)"):
        _layout_kernels.transpose_batched(np.ones((2, 3, 5)), np.ones((2, 3, 5)), 1)
