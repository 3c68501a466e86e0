"""The direct convolution (fastdeconv._algorithms.direct, fastdeconv._ext._direct_conv): the
forward pass with the output positions as the GEMM's rows and the input read in place from a
channels-last copy. Against the plain-NumPy reference on every kernel (panel widths at and
past the register tile, tiles that pass from one sample into the next, padding read from the
zero row), the same bits for any thread count, batch part or prepared weight, NaN only where
it is read, the memory bound, the measured rule, and the compiled entry's checks."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv._algorithms import DEFAULT_BUDGET, current_budget, direct, forced_algorithm
from fastdeconv._dispatch import plan
from fastdeconv._ext import _direct_conv, _packed_gemm
from fastdeconv._problem import conv_problem
from fastdeconv.testing import conv_reference

#: (x shape, weight shape, keywords): 1-3 d, strides, dilation, asymmetric padding, groups,
#: channel counts that leave part vectors and part panels, samples smaller than a tile.
GEOMETRIES = [
    ((2, 32, 9, 8), (64, 32, 3, 3), dict(stride=2, padding=1)),
    ((3, 5, 23), (17, 5, 4), dict(stride=3, padding=((2, 1),))),
    ((1, 6, 5, 4, 6), (12, 3, 3, 3, 2), dict(stride=(2, 1, 2), padding=1, groups=2)),
    ((2, 8, 10, 10), (100, 8, 3, 3), dict(stride=2, dilation=2, padding=2)),
    ((9, 4, 3, 3), (20, 4, 2, 2), {}),                       # 4 positions a sample
    ((2, 16, 7, 7), (33, 16, 7, 7), dict(padding=3)),         # 49 taps, mostly padding
    ((1, 3, 1, 1), (8, 3, 3, 3), dict(padding=1)),             # every tap but one is padding
    ((2, 64, 6, 5), (48, 32, 4, 4), dict(stride=2, padding=((1, 2), (0, 1)), groups=2)),
]


def _operands(x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    return x, w, rng.standard_normal(w_shape[0]).astype(dtype)


def _forced(x, w, bias=None, **kw):
    with forced_algorithm("direct"):
        return fastdeconv.conv(x, w, bias, **kw)


def _channels_last(x):
    """The compiled entry's input: (N * prod(spatial) + 1, C), the last row zeros."""
    rows = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return np.ascontiguousarray(np.concatenate([rows, np.zeros((1, x.shape[1]), x.dtype)]))


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forced_direct_convolution_matches_the_reference(x_shape, w_shape, kw, dtype, rng,
                                                         assert_close):
    x, w, bias = _operands(x_shape, w_shape, kw, dtype, rng)
    problem = conv_problem(x_shape, w_shape, **{k: v for k, v in kw.items()})
    with forced_algorithm("direct"):
        assert plan("forward", problem, x.itemsize).algorithm == "direct"
    assert_close(_forced(x, w, bias, **kw), conv_reference(x, w, bias, **kw), dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_computes_every_panel_width(kernel, dtype, rng, assert_close):
    # output channels at, below and above each panel width of the kernel (1 to its most
    # vectors), a batch whose tiles pass from one sample into the next, padding on all sides
    tile = _direct_conv.tile(dtype, kernel)
    widths = {1, tile["lanes"] - 1, tile["NR"] + 1}
    widths.update(range(tile["lanes"], tile["NR"] + 1, tile["lanes"]))
    for c_out in sorted(widths):
        x, w, _ = _operands((3, 6, 5, 4), (c_out, 6, 3, 3), {}, dtype, rng)
        y = np.full((3, c_out, 3, 2), np.nan, dtype)
        out = _direct_conv.conv_direct(_channels_last(x), (5, 4), w, y, stride=2, padding=1,
                                       kernel=kernel)
        assert out is y
        assert_close(y, conv_reference(x, w, stride=2, padding=1), dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
def test_a_packed_weight_gives_the_bits_of_the_array(kernel, rng):
    x, w, _ = _operands((2, 12, 7, 7), (40, 6, 3, 3), {}, np.float32, rng)
    x_last = _channels_last(x)
    plain, packed = (np.empty((2, 40, 4, 4), np.float32) for _ in range(2))
    _direct_conv.conv_direct(x_last, (7, 7), w, plain, 2, 1, 1, groups=2, kernel=kernel)
    weight = _direct_conv.pack_weight(w, groups=2, kernel=kernel, threads=3)
    _direct_conv.conv_direct(x_last, (7, 7), weight, packed, 2, 1, 1, groups=2, kernel=kernel)
    assert np.array_equal(plain, packed)
    assert weight.address % 64 == 0


def test_show_config_names_the_direct_tiles():
    from fastdeconv._config import config

    tile = _direct_conv.tile(np.float64)
    assert config()["packed gemm"]["direct convolution"].endswith(
        f"float64 {tile['MR']}x{tile['NR']}")


def test_panels_deal_the_vectors_out_evenly():
    lanes, most = _direct_conv.tile()["lanes"], _direct_conv.tile()["NR"]
    table, per_k = _direct_conv.panels(2 * 129, 2, np.float32)
    for group in (0, 1):
        rows = table[table[:, 0] == group]
        assert rows[:, 2].sum() == 129                                 # every channel once
        assert rows[0, 1] == 129 * group and np.all(np.diff(rows[:, 1]) == rows[:-1, 2])
        assert np.ptp(rows[:, 3]) <= 1 and rows[:, 3].max() * lanes <= most
    assert np.all(np.diff(table[:, 4]) == table[:-1, 3] * lanes)      # panels back to back
    assert per_k == table[-1, 4] + table[-1, 3] * lanes


@pytest.mark.parametrize("x_shape, w_shape, kw", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[3]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_convolution_is_bit_identical_across_thread_counts(
        x_shape, w_shape, kw, dtype, rng, assert_same_bits_for_thread_counts):
    x, w, bias = _operands(x_shape, w_shape, kw, dtype, rng)
    assert_same_bits_for_thread_counts(lambda: _forced(x, w, bias, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_is_cut_into_parts_that_fit_the_workspace(dtype, rng, replace_budget):
    kw = dict(stride=2, padding=1)
    x, w, _ = _operands((7, 32, 11, 11), (40, 32, 3, 3), kw, dtype, rng)
    whole = _forced(x, w, **kw)
    per_sample = 32 * 11 * 11 * x.itemsize
    replace_budget(workspace_bytes=3 * per_sample)
    problem = conv_problem(x.shape, w.shape, **kw)
    assert direct.plan("forward", problem, current_budget(), x.itemsize).samples_per_tile == 3
    assert np.array_equal(_forced(x, w, **kw), whole)    # each output is one chain: the bits


@pytest.mark.parametrize("x_shape, w_shape, kw", [GEOMETRIES[0], GEOMETRIES[1], GEOMETRIES[6]])
def test_copies_from_a_dirty_scratch_pool_give_clean_results(x_shape, w_shape, kw, rng,
                                                             assert_close, dirty_scratch_pool):
    # the channels-last copy, its zero row, the packed weight and the offsets tables are
    # blocks of the scratch pool, which hold NaN here: a cell left unwritten shows
    x, w, _ = _operands(x_shape, w_shape, kw, np.float64, rng)
    dirty_scratch_pool()
    assert_close(_forced(x, w, **kw), conv_reference(x, w, **kw), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_reaches_exactly_the_outputs_that_read_it(dtype):
    x = np.ones((2, 32, 7, 7), dtype)
    x[1, 5, 0, 3] = np.nan
    w = np.ones((40, 32, 3, 3), dtype)
    got = _forced(x, w, stride=2, padding=1)
    expected = conv_reference(x, w, stride=2, padding=1)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    assert np.array_equal(np.isnan(got), np.isnan(expected))


def test_peak_extra_memory_is_within_the_bound(peak_extra_bytes, rng):
    kw = dict(stride=2, padding=1)
    x, w, _ = _operands((64, 32, 32, 32), (64, 32, 3, 3), kw, np.float32, rng)   # 8 MiB x
    extra, (y,) = peak_extra_bytes(lambda: _forced(x, w, **kw))
    assert extra <= max(x.nbytes, y.nbytes) + 32 * 2**20, extra
    assert extra <= 2 * DEFAULT_BUDGET.workspace_bytes, extra


def test_prepared_layer_keeps_the_packed_weight_and_gives_the_same_bits(rng):
    x, w, bias = _operands((4, 64, 14, 14), (128, 64, 3, 3), {}, np.float32, rng)
    problem = conv_problem(x.shape, w.shape, stride=2, padding=1)
    assert plan("forward", problem, 4).algorithm == "direct"      # by the rule
    layer = fastdeconv.PreparedConv(w, bias, stride=2, padding=1)
    expected = fastdeconv.conv(x, w, bias, stride=2, padding=1)
    assert np.array_equal(layer(x), expected) and np.array_equal(layer(x), expected)
    kept = list(layer._prepared_weights().items())
    assert len(kept) == 1 and isinstance(kept[0][1], _direct_conv.DirectWeight)
    assert kept[0][0] == (direct.NAME,) + kept[0][1].key     # found again by that key
    kept = [kept[0][1]]
    assert kept[0].nbytes >= w.nbytes


#: (x shape, weight shape, keywords, itemsize, the algorithm the chooser takes): each of the
#: rule's conditions on both sides of its threshold.
RULE_CASES = [
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "direct"),  # resnet_s2
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 8, "direct"),
    ((16, 64, 32, 32), (128, 64, 4, 4), dict(stride=2, padding=1), 4, "direct"),   # DCGAN D
    ((8, 64, 4096), (128, 64, 9), dict(stride=2, padding=4), 4, "direct"),         # 1-d
    ((8, 64, 4096), (128, 64, 4), dict(stride=2, padding=1), 4, "packed"),         # 2 taps/step
    ((8, 64, 56, 56), (64, 64, 2, 2), dict(stride=2), 4, "packed"),                # 1 tap/step
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(padding=1), 4, "winograd"),          # stride 1
    ((4, 32, 32, 32), (32, 32, 5, 5), dict(padding=2), 4, "packed"),               # stride 1
    ((4, 16, 64, 64), (64, 16, 3, 3), dict(stride=2, padding=1), 4, "packed"),     # 16 in
    ((4, 64, 64, 64), (16, 64, 3, 3), dict(stride=2, padding=1), 4, "packed"),     # 16 out
    ((4, 32, 64, 64), (32, 32, 3, 3), dict(stride=2, padding=1), 4, "direct"),     # 32 each
    ((2, 512, 14, 14), (512, 512, 3, 3), dict(stride=2, padding=1), 4, "im2col"),  # 9 MiB w
    ((4, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), 4, "direct"),  # 4.5 MiB
    ((1, 32, 8, 8), (32, 32, 3, 3), dict(stride=2, padding=1), 4, "im2col"),       # little work
]


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", RULE_CASES)
def test_chooser_takes_direct_where_it_measured_faster(x_shape, w_shape, kw, itemsize,
                                                       expected):
    problem = conv_problem(x_shape, w_shape, **kw)
    assert plan("forward", problem, itemsize).algorithm == expected
    assert (expected == "direct") == direct.rule(problem, current_budget(), itemsize)


def test_plan_is_none_where_the_compiled_entry_does_not_apply():
    budget = current_budget()
    many_taps = conv_problem((1, 4, 30, 30), (4, 4, 23, 23), stride=2)       # 529 taps
    assert direct.plan("forward", many_taps, budget, 4) is None
    assert direct.plan("forward", conv_problem((1, 4, 9, 9), (4, 4, 3, 3), stride=2), budget,
                       2) is None                                            # float16
    assert direct.plan("forward", conv_problem((1, 4, 9, 9), (4, 4, 3, 3), stride=2), budget,
                       4) is not None


def _entry_args(rng):
    x, w, _ = _operands((2, 8, 5, 5), (16, 8, 3, 3), {}, np.float32, rng)
    return dict(x_last=_channels_last(x), in_size=(5, 5), weight=w,
                y=np.empty((2, 16, 3, 3), np.float32), stride=2, dilation=1, padding=1)


def _read_only(shape):
    array = np.zeros(shape, np.float32)
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("change, error, match", [
    (dict(x_last=[[0.0]]), TypeError, "x_last must be a numpy.ndarray"),
    (dict(x_last=np.zeros((51, 8), np.float16)), TypeError, "x_last must be float32 or"),
    (dict(x_last=np.zeros((50, 8), np.float32)), ValueError, r"x_last must have shape \(51, 8\)"),
    (dict(x_last=np.zeros((51, 16), np.float32)[:, ::2]), ValueError, "x_last must be C-cont"),
    (dict(x_last=np.ones((51, 8), np.float32)), ValueError, "last row must be zeros"),
    (dict(y=np.empty((2, 16, 3, 3), np.float64)), TypeError, "y"),
    (dict(y=np.empty((2, 15, 3, 3), np.float32)), ValueError, "y of shape"),
    (dict(y=np.empty((2, 16, 9), np.float32)), ValueError, "y of shape"),
    (dict(weight=np.zeros((16, 8, 3, 3), np.float64)), TypeError, "weight"),
    (dict(weight=np.zeros((16, 8), np.float32)), ValueError, "weight must be"),
    (dict(weight="w"), TypeError, "weight must be a numpy.ndarray or a DirectWeight"),
    (dict(stride=0), ValueError, "stride"),
    (dict(dilation=(1, 0)), ValueError, "dilation"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding=1.5), ValueError, "padding"),
    (dict(y=_read_only((2, 16, 3, 3))), ValueError, "y must be writable"),
    (dict(padding=(1, 1, 1)), ValueError, "padding"),
    (dict(in_size=(5,)), ValueError, "in_size"),
    (dict(in_size=(5, 4)), ValueError, r"x_last must have shape \(41, 8\)"),
    (dict(groups=0), ValueError, "groups"),
    (dict(groups=3), ValueError, "groups=3"),
    (dict(threads=0), ValueError, "threads"),
    (dict(kernel="sse"), ValueError, "kernel"),
])
def test_conv_direct_rejects_bad_arguments_naming_them(change, error, match, rng):
    args = _entry_args(rng)
    args.update(change)
    with pytest.raises(error, match=match):
        _direct_conv.conv_direct(**args)


def test_conv_direct_rejects_a_weight_packed_for_another_call(rng):
    args = _entry_args(rng)
    packed = _direct_conv.pack_weight(args["weight"].astype(np.float64))
    with pytest.raises(ValueError, match="weight was packed for"):
        _direct_conv.conv_direct(**dict(args, weight=packed))
    many = np.zeros((4, 1) + (23, 23), np.float32)                     # 529 taps
    with pytest.raises(ValueError, match="at most 512 taps"):
        _direct_conv.conv_direct(np.zeros((1 * 30 * 30 + 1, 1), np.float32), (30, 30), many,
                                 np.empty((1, 4, 4, 4), np.float32), stride=7)


@pytest.mark.parametrize("call, error, match", [
    (lambda: _direct_conv.pack_weight([1.0]), TypeError, "weight must be a numpy.ndarray"),
    (lambda: _direct_conv.pack_weight(np.zeros((4, 2), np.float32)), ValueError, "weight"),
    (lambda: _direct_conv.pack_weight(np.zeros((4, 2, 3), np.int32)), TypeError, "dtype"),
    (lambda: _direct_conv.pack_weight(np.zeros((4, 2, 3), np.float32), groups=3), ValueError,
     "c_out must be a multiple of groups"),
    (lambda: _direct_conv.panels(-1, 1), ValueError, "c_out"),
    (lambda: _direct_conv.tile("int8"), TypeError, "dtype"),
    (lambda: _direct_conv.DirectWeight(), TypeError, "made by pack_weight"),
])
def test_packing_rejects_bad_arguments_naming_them(call, error, match):
    with pytest.raises(error, match=match):
        call()
