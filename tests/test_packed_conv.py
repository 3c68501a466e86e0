"""The packed GEMM engine as the "packed" algorithm of the registry (forward pass): forced on
every kind of geometry against the NumPy reference, its rule, bit-identity across thread
counts, the batch cut into parts for the padded copy, and its peak memory."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import DEFAULT_BUDGET, current_budget, packed, packed_wgrad
from fastdeconv._algorithms import budget as replaced_budget
from fastdeconv._ext import _layout_kernels
from fastdeconv._problem import conv_problem
from fastdeconv.testing import conv_reference

#: (x shape, weight shape, conv keywords): n-d 1-3, stride, dilation, padding (asymmetric
#: too), groups, pointwise read in place, kernels larger than the input's unpadded size.
GEOMETRIES = [
    ((2, 5, 17), (7, 5, 3), dict(padding=1)),
    ((3, 4, 20), (6, 2, 4), dict(stride=3, padding=((2, 1),), dilation=2, groups=2)),
    ((2, 6, 9), (4, 6, 1), {}),                                            # 1-d pointwise
    ((2, 3, 9, 7), (5, 3, 3, 3), dict(padding=1)),
    ((2, 4, 11, 10), (6, 2, 3, 3), dict(padding=((2, 0), (1, 2)), dilation=2, groups=2)),
    ((2, 8, 9, 9), (8, 1, 3, 3), dict(padding=1, groups=8)),               # depthwise
    ((2, 4, 9, 7), (5, 4, 4, 4), dict(stride=2, padding=1)),
    ((1, 3, 13, 12), (4, 3, 5, 3), dict(stride=(2, 3), padding=((3, 0), (0, 2)), dilation=(1, 2))),
    ((3, 16, 6, 5), (24, 16, 1, 1), {}),                                    # pointwise in place
    ((2, 6, 7, 8), (9, 6, 1, 1), dict(stride=2)),                          # 1x1 strided
    ((2, 4, 5, 6), (3, 4, 1, 1), dict(padding=1)),                         # 1x1 padded
    ((1, 2, 3, 3), (3, 2, 3, 3), dict(padding=2)),                         # output > input
    ((2, 3, 6, 5, 4), (4, 3, 3, 3, 3), dict(padding=1)),
    ((1, 4, 7, 6, 5), (6, 2, 2, 3, 2), dict(stride=(2, 1, 2), padding=((1, 0), (0, 1), (1, 1)),
                                           dilation=(1, 2, 1), groups=2)),
    ((2, 37, 11, 13), (45, 37, 3, 3), dict(padding=1)),                    # edge tiles in M, N
    ((1, 130, 9, 9), (20, 130, 3, 3), dict(padding=1)),                    # K over several KC
]


def _forced_conv(x, w, bias=None, **kw):
    with _dispatch.forced_algorithm("packed"):
        return fastdeconv.conv(x, w, bias, **kw)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_forced_packed_matches_reference(x_shape, w_shape, kw, dtype, with_bias, rng,
                                         assert_close):
    problem = conv_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("packed"):
        assert _dispatch.plan("forward", problem, np.dtype(dtype).itemsize).algorithm == "packed"
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    y = _forced_conv(x, w, bias, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_reference(x, w, bias, **kw), dtype)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES[::3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_is_bit_identical_across_thread_counts(x_shape, w_shape, kw, dtype, rng,
        assert_same_bits_for_thread_counts):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    assert_same_bits_for_thread_counts(lambda: _forced_conv(x, w, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_is_bit_identical_across_thread_counts_on_many_work_items(dtype, rng,
        assert_same_bits_for_thread_counts):
    # several MC and NC blocks per GEMM and several GEMMs: many work items to share
    x = rng.standard_normal((3, 48, 40, 36)).astype(dtype)
    w = rng.standard_normal((200, 48, 3, 3)).astype(dtype)
    assert_same_bits_for_thread_counts(lambda: _forced_conv(x, w, padding=1),
                                        counts=(1, 2, 4, 3, 2))


#: output rows of whole vectors (16 floats or 8 doubles, or a multiple) or of whole 16-byte
#: pieces: the micro-kernels of a work item's first row panel copy its whole panels after the
#: first (fd_vector_panels); several KC slices, a second MC block, a part panel at the end,
#: 1-d, 3-d, groups
VECTOR_ROW_GEOMETRIES = [
    ((2, 64, 16, 16), (16, 64, 3, 3), dict(padding=1)),       # K = 576: 2 or 3 slices
    ((1, 8, 20, 32), (300, 8, 3, 3), dict(padding=1)),        # M = 300; 640 columns
    ((3, 16, 96), (8, 16, 5), dict(padding=2)),                # 1-d, rows of 96
    ((1, 4, 6, 8, 16), (8, 4, 3, 3, 3), dict(padding=1)),     # 3-d, rows of 16
    ((2, 8, 16, 32), (8, 4, 3, 3), dict(padding=1, groups=2)),
    ((2, 6, 18, 34), (5, 6, 3, 3), {}),                        # rows of 32 read from 34
    # rows of whole 16-byte pieces, not vectors: copied piece by piece
    ((4, 16, 8, 8), (8, 16, 3, 3), dict(padding=1)),          # rows of 8
    ((3, 8, 12, 12), (300, 8, 3, 3), dict(padding=1)),        # rows of 12, M = 300
    ((8, 32, 4, 4), (16, 32, 3, 3), dict(padding=1)),         # rows of 4, K = 288
    ((4, 4, 6, 6), (8, 2, 3, 3), dict(padding=1, groups=2)),  # rows of 6 (float64 pieces)
]


@pytest.mark.parametrize("x_shape, w_shape, kw", VECTOR_ROW_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panels_copied_by_the_micro_kernels_match_the_reference_on_any_thread_count(
        x_shape, w_shape, kw, dtype, rng, assert_close, assert_same_bits_for_thread_counts):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    assert_close(_forced_conv(x, w, **kw), conv_reference(x, w, **kw), dtype)
    assert_same_bits_for_thread_counts(lambda: _forced_conv(x, w, **kw), counts=(1, 2, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_copy_is_made_a_part_of_the_batch_at_a_time(dtype, replace_budget, rng):
    x = rng.standard_normal((7, 5, 10, 9)).astype(dtype)
    w = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    kw = dict(padding=1, stride=(1, 2))
    whole = _forced_conv(x, w, **kw)
    per_sample = 5 * 12 * 11 * x.itemsize   # c_in x padded extent read by the output
    replace_budget(workspace_bytes=3 * per_sample)
    the_plan = packed.plan("forward", conv_problem(x.shape, w.shape, **kw), current_budget(),
                           x.itemsize)
    assert (the_plan.samples_per_tile, the_plan.col_elements) == (3, 3 * per_sample // x.itemsize)
    assert np.array_equal(_forced_conv(x, w, **kw), whole)  # samples are independent


def test_plan_reads_in_place_without_padding_and_declines_a_border_too_large(replace_budget):
    problem = conv_problem((5, 16, 12, 12), (8, 16, 1, 1))
    the_plan = packed.plan("forward", problem, current_budget(), 4)
    assert (the_plan.padded, the_plan.samples_per_tile, the_plan.col_elements) == (False, 5, 0)
    unpadded_3x3 = conv_problem((5, 16, 12, 12), (8, 16, 3, 3))
    assert not packed.plan("forward", unpadded_3x3, current_budget(), 4).padded
    padded = conv_problem((5, 16, 12, 12), (8, 16, 3, 3), padding=1)
    assert packed.plan("forward", padded, current_budget(), 4).padded
    replace_budget(workspace_bytes=16 * 14 * 14 * 4 - 1)  # one padded sample does not fit:
    one = packed.plan("forward", padded, current_budget(), 4)   # padded one at a time,
    assert (one.samples_per_tile, one.col_elements) == (1, 16 * 14 * 14)   # within the bound
    replace_budget(workspace_bytes=16 * (14 * 14 - 12 * 12) * 4 - 1)   # nor does its border
    assert packed.plan("forward", padded, current_budget(), 4) is None
    with _dispatch.forced_algorithm("packed"):
        assert _dispatch.plan("forward", padded, 4).algorithm == "im2col"


def test_packed_serves_the_forward_pass_and_the_weight_gradient():
    assert packed.PASSES == {"forward": "packed"}
    assert packed_wgrad.PASSES == {"backward_weight": "packed"}
    assert "packed" in _dispatch.ALGORITHMS["forward"]
    assert "packed" not in _dispatch.ALGORITHMS["backward_input"]   # that is packed_phases
    assert "packed" in _dispatch.ALGORITHMS["backward_weight"]


def test_peak_extra_memory_is_within_the_bound(peak_extra_bytes, engine_scratch_allowance, rng):
    # 32 MiB of input with padding: the padded copy is made a part of the batch at a time
    x = rng.standard_normal((64, 32, 64, 64)).astype(np.float32)
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    extra, (y,) = peak_extra_bytes(lambda: _forced_conv(x, w, padding=1))
    assert extra <= max(x.nbytes, y.nbytes) + 32 * 2**20, extra
    assert extra <= DEFAULT_BUDGET.workspace_bytes + engine_scratch_allowance(), extra
    assert np.array_equal(y[:2], _forced_conv(x[:2], w, padding=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_reach_exactly_the_outputs_that_read_them(dtype):
    x = np.ones((1, 2, 6, 6), dtype)
    x[0, 1, 2, 3] = np.nan
    x[0, 0, 5, 0] = np.inf
    w = np.ones((3, 2, 3, 3), dtype)
    y = _forced_conv(x, w, padding=1)
    expected = conv_reference(x, w, padding=1)
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    assert np.array_equal(np.isinf(y), np.isinf(expected))


#: (x shape, weight shape, keywords, itemsize, the algorithm the chooser takes): measured wins
#: of the packed engine and, on the other side of each threshold, im2col or Winograd.
RULE_CASES = [
    ((8, 256, 56, 56), (64, 256, 1, 1), {}, 4, "packed"),                     # pointwise
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 4, "winograd"),       # resnet_3x3
    ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), 4, "direct"),  # resnet_s2
    ((8, 128, 28, 28), (256, 128, 2, 2), dict(stride=2), 4, "packed"),         # 196 >= 128
    ((4, 256, 14, 14), (512, 256, 2, 2), dict(stride=2), 4, "im2col"),         # 49 < 128
    ((8, 128, 28, 28), (256, 128, 2, 2), dict(stride=2), 8, "packed"),         # 196 >= 128
    ((4, 256, 14, 14), (512, 256, 2, 2), dict(stride=2), 8, "im2col"),         # 49 < 128
    ((1, 512, 14, 14), (512, 512, 3, 3), dict(padding=1), 8, "im2col"),      # 18 MiB weight
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), 4, "packed"),     # stem
    ((1, 3, 224, 224), (64, 3, 3, 3), dict(padding=1), 4, "packed"),
    ((4, 32, 32, 32), (32, 32, 5, 5), dict(padding=2), 8, "packed"),
    ((8, 64, 1024), (64, 64, 9), dict(padding=4), 4, "packed"),               # 1-d
    ((1, 32, 16, 16, 16), (32, 32, 3, 3, 3), dict(padding=1), 4, "packed"),   # 3-d
    ((4, 128, 28, 28), (128, 4, 3, 3), dict(padding=1, groups=32), 4, "packed"),
    ((4, 16, 28, 28), (16, 16, 1, 1), {}, 4, "im2col"),                       # 0.8 M < 10 M
    ((4, 16, 28, 28), (64, 16, 1, 1), {}, 8, "im2col"),                       # 3.2 M < 5 M
    ((4, 256, 28, 28), (256, 256, 1, 1), {}, 8, "packed"),
    ((2, 4, 16, 16), (4, 4, 3, 3), dict(padding=1), 4, "im2col"),
    ((4, 64, 32, 32), (128, 64, 4, 4), dict(stride=2, padding=1), 4, "direct"),
    ((4, 16, 32, 32), (128, 16, 4, 4), dict(stride=2, padding=1), 4, "space_to_depth"),
]


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", RULE_CASES)
def test_chooser_takes_packed_where_it_measured_faster(x_shape, w_shape, kw, itemsize,
                                                       expected):
    problem = conv_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("forward", problem, itemsize).algorithm == expected
    assert (expected == "packed") == (
        packed.rule(problem, current_budget(), itemsize)
        and expected not in ("winograd", "space_to_depth", "direct"))


def test_every_threshold_of_the_rule_decides(replace_budget):
    problem = conv_problem((4, 64, 28, 28), (64, 64, 1, 1))   # 784 positions, 12.8 M, 16 KiB
    assert _dispatch.plan("forward", problem, 4).algorithm == "packed"
    for changes in (dict(packed_min_positions=((4, 785), (8, 128))),
                    dict(packed_min_work=((4, 4 * 784 * 64 * 64 + 1), (8, 1))),
                    dict(packed_max_weight_bytes=64 * 64 * 4 - 1)):
        with replaced_budget(**changes):
            assert _dispatch.plan("forward", problem, 4).algorithm == "im2col", changes
    replace_budget(packed_min_positions=((4, 784), (8, 128)),
                   packed_min_work=((4, 4 * 784 * 64 * 64), (8, 1)),
                   packed_max_weight_bytes=64 * 64 * 4)
    assert _dispatch.plan("forward", problem, 4).algorithm == "packed"


def test_the_backward_passes_never_take_packed():
    problem = conv_problem((8, 256, 56, 56), (64, 256, 1, 1))
    assert _dispatch.plan("backward_input", problem, 4).algorithm != "packed"
    assert _dispatch.plan("backward_weight", problem, 4).algorithm != "packed"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial, pad, extent", [
    ((5, 6), (1, 2), (8, 9)), ((7,), (0,), (9,)), ((4, 5, 6), (1, 0, -1), (6, 4, 5)),
    ((10, 10), (-2, 3), (6, 15)), ((40, 50), (1, 1), (42, 52)),   # rows of 52: memset per row
    ((28, 28), (1, 1), (29, 29)), ((3, 3), (4, 4), (2, 2)),      # nothing copied: all zeros
    ((300, 300), (1, 1), (302, 302)),                  # on 2 threads (>= 65536 values)
])
def test_channels_first_padded_copy_writes_every_cell_of_a_dirty_output(dtype, spatial, pad,
                                                                      extent, rng,
                                                                      padding_boxes):
    x = rng.standard_normal((3,) + spatial).astype(dtype)
    out = np.full((3,) + extent, np.nan, dtype)   # what a scratch block may hold
    _layout_kernels.channels_first_padded(x.reshape(3, -1), out.reshape(3, -1), spatial,
                                          extent, pad, 2)
    expected = np.zeros_like(out)
    src, dst = padding_boxes(spatial, pad, extent)
    expected[dst] = x[src]
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("contiguous", [True, False])
def test_engine_padded_copy_from_a_dirty_pool_matches_numpy_padding(contiguous, rng,
                                                                    dirty_scratch_pool):
    from fastdeconv import _scratch
    from fastdeconv._ext._packed_shapes import pad_plan, padded
    x = rng.standard_normal((2, 3, 9, 20))
    if not contiguous:   # the NumPy route
        x = rng.standard_normal((2, 3, 9, 40))[..., ::2]
    dirty_scratch_pool((2**12, 2**16, 2**20))
    xp, block = padded(x, pad_plan((9, 20), (1, 2), (11, 23)), 2)
    try:
        expected = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 1)))
        assert np.array_equal(xp, expected)
    finally:
        del xp
        _scratch.give(block)


@pytest.mark.parametrize("args, match", [
    (dict(out=np.zeros((2, 8))), r"out must have shape \(2, 64\)"),
    (dict(x=np.zeros((2, 63))), r"x must have shape \(2, 64\)"),
    (dict(x_spatial=(), extent=(), pad_before=()), "the same 1 to 8 entries"),
    (dict(pad_before=(0,)), "the same 1 to 8 entries"),
    (dict(extent=(-1, 64), out=np.zeros((2, 0))), "must be >= 0"),
])
def test_channels_first_padded_rejects_sizes_that_do_not_match(args, match):
    call = dict(x=np.ones((2, 64)), out=np.zeros((2, 64)), x_spatial=(8, 8), extent=(8, 8),
                pad_before=(0, 0))
    call.update(args)
    with pytest.raises(ValueError, match=match):
        _layout_kernels.channels_first_padded(call["x"], call["out"], call["x_spatial"],
                                              call["extent"], call["pad_before"], 1)
