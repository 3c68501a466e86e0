"""The packed engine's stride phases as the "packed_phases" algorithm (backward_input, i.e.
conv_transpose): forced on every kind of geometry against the NumPy reference, bit identity
across thread counts, the batch cut for the padded copy, peak memory, the rule, and the
compiled entry's validation of what it is given."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import DEFAULT_BUDGET, current_budget, packed_phases
from fastdeconv._algorithms.phases import phase_table
from fastdeconv._ext import _packed_conv, _packed_gemm
from fastdeconv._problem import conv_transpose_problem
from fastdeconv.testing import conv_transpose_reference

#: (x shape, weight shape, conv_transpose keywords): 1-3 d, strides 1-4, kernels smaller
#: than, equal to and not multiples of the stride, asymmetric padding and output_padding,
#: groups, output channels that are not multiples of the register tile, K over several KC.
GEOMETRIES = [
    ((2, 5, 9), (5, 7, 3), dict(stride=2, padding=1, output_padding=1)),
    ((3, 4, 8), (4, 3, 5), dict(stride=3, padding=2, groups=2)),
    ((2, 6, 7), (6, 9, 2), dict(stride=4)),                                 # kernel < stride
    ((2, 3, 5, 6), (3, 5, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 6, 5), (4, 6, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 5, 7), (6, 4, 3, 5), dict(stride=(2, 3), padding=((2, 0), (1, 3)))),
    ((2, 8, 4, 4), (8, 3, 2, 2), dict(stride=2, groups=4)),                 # 1-tap phases
    ((2, 3, 6, 6), (3, 4, 3, 3), dict(padding=1)),                          # stride 1
    ((1, 4, 4, 3, 5), (4, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 3, 4, 3), (6, 2, 2, 3, 4), dict(stride=(2, 1, 3), padding=((1, 0), (1, 1), (0, 2)),
                                           groups=3)),
    ((2, 37, 6, 5), (37, 45, 4, 4), dict(stride=2, padding=1)),             # edge tiles
    ((1, 150, 4, 4), (150, 20, 3, 3), dict(stride=2, padding=1)),           # K over KC
    ((1, 2, 2, 2), (2, 3, 5, 5), dict(stride=3, padding=4, output_padding=2)),  # crops
    # kernel = stride: the one-tap phases stacked into one GEMM (rows: channel x tap)
    ((2, 5, 7), (5, 3, 3), dict(stride=3)),                                 # 9 rows
    ((1, 6, 3, 4, 3), (6, 4, 2, 2, 2), dict(stride=2, groups=2)),           # 3-d, 8 phases
    ((3, 20, 5, 4), (20, 70, 2, 2), dict(stride=2)),                        # 280 rows
    ((1, 9, 3, 3), (9, 130, 2, 2), dict(stride=2)),                         # 520: capped rows
    ((2, 4, 3, 5), (4, 2, 2, 3), dict(stride=(2, 3))),
    ((2, 4, 3, 5), (4, 2, 2, 3), dict(stride=(2, 3), output_padding=(1, 2))),  # not stacked
    # phase rows of whole vectors (16 floats, 2 x 8 doubles): panels read in place, paired
    ((2, 16, 16, 16), (16, 8, 4, 4), dict(stride=2, padding=1)),
    ((1, 16, 16, 16), (16, 128, 4, 4), dict(stride=2, padding=1)),   # 128 rows: copied
    # the weight packed value by value, not through a transposed tile: 81 taps a channel,
    # more than the tile holds; phases of 33 and 32 outputs, whose AVX-512 tiles differ in MR
    ((1, 3, 4, 4), (3, 5, 9, 9), dict(stride=2, padding=3)),
    ((1, 4, 33), (4, 24, 3), dict(stride=2, padding=1)),
    # two live phases of three, 44 taps in all, that span 65 columns of the weight's rows
    ((1, 2, 1), (2, 3, 66), dict(stride=3, padding=32)),
]


def _forced(x, w, **kw):
    with _dispatch.forced_algorithm("packed_phases"):
        return fastdeconv.conv_transpose(x, w, **kw)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_forced_packed_phases_match_the_reference(x_shape, w_shape, kw, dtype, with_bias, rng,
                                                  assert_close):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("packed_phases"):
        used = _dispatch.plan("backward_input", problem, np.dtype(dtype).itemsize).algorithm
    assert used == "packed_phases"
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[1] * kw.get("groups", 1)).astype(dtype) if with_bias \
        else None
    with _dispatch.forced_algorithm("packed_phases"):
        y = fastdeconv.conv_transpose(x, w, bias, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_transpose_reference(x, w, bias, **kw), dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_out", [13, 100])   # 100 rows: the weight packed in several passes
def test_every_kernel_computes_the_phases(kernel, dtype, c_out, rng, assert_close):
    x = rng.standard_normal((2, 19, 5, 6)).astype(dtype)
    w = rng.standard_normal((19, c_out, 4, 3)).astype(dtype)
    kw = dict(stride=(2, 3), padding=1)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    phases, _ = phase_table(problem)
    y = np.zeros(problem.forward_input_shape, dtype)
    _packed_conv.conv_transpose_phases_packed(x, w, y, (2, 3), phases, kernel=kernel)
    assert_close(y, conv_transpose_reference(x, w, **kw), dtype)


def test_dilation_has_no_stride_phases_and_falls_back():
    problem = conv_transpose_problem((1, 4, 5, 5), (4, 4, 3, 3), stride=2, dilation=2)
    assert packed_phases.plan("backward_input", problem, current_budget(), 4) is None
    with _dispatch.forced_algorithm("packed_phases"):
        assert _dispatch.plan("backward_input", problem, 4).algorithm == "col2im"


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES[::2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_phases_are_bit_identical_across_thread_counts(x_shape, w_shape, kw, dtype, rng,
        assert_same_bits_for_thread_counts):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    assert_same_bits_for_thread_counts(lambda: _forced(x, w, **kw), counts=(1, 2, 4, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_work_items_over_phases_are_bit_identical_across_thread_counts(dtype, rng,
        assert_same_bits_for_thread_counts):
    # several items per phase (rows capped, column blocks), interleaved over four phases
    x = rng.standard_normal((3, 24, 30, 28)).astype(dtype)
    w = rng.standard_normal((24, 600, 3, 3)).astype(dtype)
    kw = dict(stride=2, padding=1, output_padding=1)
    assert_same_bits_for_thread_counts(lambda: _forced(x, w, **kw), counts=(1, 2, 4, 2))
    np.testing.assert_allclose(_forced(x[:1], w, **kw), conv_transpose_reference(x[:1], w, **kw),
                               rtol=1e-4 if dtype == np.float32 else 1e-11, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_copy_is_made_a_part_of_the_batch_at_a_time(dtype, replace_budget, rng):
    x = rng.standard_normal((7, 5, 10, 9)).astype(dtype)
    w = rng.standard_normal((5, 6, 3, 3)).astype(dtype)
    kw = dict(stride=2, padding=1)
    whole = _forced(x, w, **kw)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    per_sample = packed_phases._padded_per_sample(problem, phase_table(problem)[0])
    assert per_sample >= 5 * 10 * 9
    replace_budget(workspace_bytes=3 * per_sample * x.itemsize)
    the_plan = packed_phases.plan("backward_input", problem, current_budget(), x.itemsize)
    assert (the_plan.samples_per_tile, the_plan.col_elements) == (3, 3 * per_sample)
    assert np.array_equal(_forced(x, w, **kw), whole)     # the samples are independent


def test_peak_extra_memory_is_within_the_bound(peak_extra_bytes, engine_scratch_allowance, rng):
    x = rng.standard_normal((64, 32, 32, 32)).astype(np.float32)      # 8 MiB in, 32 out
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1)
    extra, (y,) = peak_extra_bytes(lambda: _forced(x, w, **kw))
    assert extra <= max(x.nbytes, y.nbytes) + 32 * 2**20, extra
    assert extra <= DEFAULT_BUDGET.workspace_bytes + engine_scratch_allowance(), extra


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_reaches_exactly_the_outputs_that_read_it(dtype):
    x = np.ones((1, 2, 5, 5), dtype)
    x[0, 1, 2, 3] = np.nan
    w = np.ones((2, 3, 3, 3), dtype)
    y = _forced(x, w, stride=2, padding=1)
    expected = conv_transpose_reference(x, w, stride=2, padding=1)
    assert np.array_equal(np.isnan(y), np.isnan(expected))


#: (x shape, weight shape, keywords, itemsize, the algorithm the chooser takes)
RULE_CASES = [
    ((4, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1, output_padding=1), 4,
     "packed_phases"),                                                      # fcn_k3s2
    ((1, 32, 16, 16, 16), (32, 16, 3, 3, 3), dict(stride=2, padding=1, output_padding=1), 4,
     "packed_phases"),                                                      # vnet3d_k3
    ((16, 64, 32, 32), (64, 3, 4, 4), dict(stride=2, padding=1), 4, "col2im"),  # 3 rows
    ((1, 256, 32, 32), (256, 128, 2, 2), dict(stride=2), 4, "packed_phases"),  # unet_up: 1 tap
    ((1, 64, 16, 16, 16), (64, 32, 2, 2, 2), dict(stride=2), 4,
     "packed_phases"),                                  # unet3d_up: 1 tap, stacked, 32 rows
    ((1, 32, 32, 32, 32), (32, 16, 2, 2, 2), dict(stride=2), 4,
     "packed_phases"),                                  # 1 tap, stacked, 16 rows
    ((4, 32, 1024), (32, 32, 3), dict(stride=2), 4, "col2im"),  # 1.5 taps, not stacked
    ((1, 64, 16, 16, 16), (64, 8, 2, 2, 2), dict(stride=2), 4, "col2im"),  # stacked, 8 rows
    ((2, 8, 6, 6), (8, 16, 3, 3), dict(stride=2, padding=1), 4, "col2im"),  # little work
    ((1, 64, 16, 16), (64, 32, 8, 8), dict(stride=5, padding=2), 4, "col2im"),    # stride 5
    # audio_1d: not the engine's; col2im's until sub-pixel took 16-tap kernels the engine's
    # phases do not (Budget.subpixel_min_kernel_col2im)
    ((8, 128, 4096), (128, 64, 16), dict(stride=8, padding=4), 4, "subpixel"),
    ((4, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1, output_padding=1), 8,
     "packed_phases"),                                          # float64 (1.20-1.21x col2im)
    ((1, 64, 16, 16, 16), (64, 32, 2, 2, 2), dict(stride=2), 8,
     "packed_phases"),                                          # unet3d_up, float64: stacked
    ((8, 128, 4096), (128, 64, 16), dict(stride=8, padding=4), 8, "subpixel"),  # float64
    ((16, 64, 32, 32), (64, 3, 4, 4), dict(stride=2, padding=1), 8, "col2im"),  # f64, 3 rows
]


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", RULE_CASES)
def test_chooser_takes_packed_phases_where_it_measured_faster(x_shape, w_shape, kw, itemsize,
                                                              expected):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_input", problem, itemsize).algorithm == expected


def _phases_args(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    problem = conv_transpose_problem(x.shape, w.shape, stride=2, padding=1)
    y = np.zeros(problem.forward_input_shape)
    return x, w, y, phase_table(problem)[0]


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(x=a["x"].astype(np.float32)), TypeError,
     "weight has dtype float64, expected float32"),
    (lambda a: a.update(w=a["w"][:, :2].copy()), ValueError, "do not match"),
    (lambda a: a.update(w=a["w"][:, :2]), ValueError, "weight must be C-contiguous"),
    (lambda a: a.update(w=a["w"][:3]), ValueError, "do not match"),
    (lambda a: a.update(y=a["y"][:1]), ValueError, "do not match"),
    (lambda a: a.update(y=np.asfortranarray(a["y"])), ValueError, "y must be C-contiguous"),
    (lambda a: a.update(stride=0), ValueError, "stride must be >= 1"),
    (lambda a: a.update(groups=3), ValueError, "do not match"),
    (lambda a: a["phases"][0].update(taps=((3,), (0,))), ValueError, r"phases\[0\]\['taps'\]"),
    (lambda a: a["phases"][0].update(taps=((), (0,))), ValueError, r"phases\[0\]\['taps'\]"),
    (lambda a: a["phases"][1].update(first=(0, 2)), ValueError, r"phases\[1\]\['first'\]"),
    (lambda a: a["phases"][1].update(first=a["phases"][0]["first"]), ValueError,
     r"phases\[1\]\['first'\]"),
    (lambda a: a["phases"][2].update(sub_pad=(1,)), ValueError, r"phases\[2\]\['sub_pad'\]"),
    (lambda a: a["phases"].__setitem__(0, 5), ValueError, r"phases\[0\] must be a dict"),
    (lambda a: a.update(threads=0), ValueError, "threads must be >= 1"),
])
def test_compiled_entry_rejects_bad_arguments_naming_them(change, error, match, rng):
    x, w, y, phases = _phases_args(rng)
    args = dict(x=x, w=w, y=y, stride=2, groups=1, threads=1,
                phases=[dict(p) for p in phases])
    change(args)
    with pytest.raises(error, match=match):
        _packed_conv.conv_transpose_phases_packed(
            args["x"], args["w"], args["y"], args["stride"], args["phases"],
            groups=args["groups"], threads=args["threads"])


def test_compiled_entry_leaves_unwritten_positions_and_rejects_overlap(rng):
    x, w, y, phases = _phases_args(rng)
    y[:] = 7.0
    _packed_conv.conv_transpose_phases_packed(x, w, y, 2, phases[:1])   # one phase only
    first = phases[0]["first"]
    mask = np.zeros(y.shape[2:], bool)
    mask[first[0]::2, first[1]::2] = True
    assert np.all(y[:, :, ~mask] == 7.0)
    expected = conv_transpose_reference(x, w, stride=2, padding=1)
    np.testing.assert_allclose(y[:, :, mask], expected[:, :, mask], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="y must not overlap"):
        buffer = np.zeros(y.size + x.size)
        _packed_conv.conv_transpose_phases_packed(
            buffer[:x.size].reshape(x.shape), w, buffer[:y.size].reshape(y.shape), 2, phases)


@pytest.mark.parametrize("k, m, mr, kc", [(1, 1, 8, 384), (20, 13, 8, 7), (50, 24, 12, 16),
                                          (384, 64, 8, 384), (800, 37, 6, 384), (9, 5, 4, 4)])
def test_apack_destinations_place_every_column_as_the_packed_layout_says(k, m, mr, kc):
    # the layout at the top of gemm/fd_pack.h, element by element:
    # apack[k0 * m_pad + (i // mr) * mr * kc_s + (kk - k0) * mr + i % mr] = A[i, kk]
    from fastdeconv._ext._packed_shapes import apack_destinations
    m_pad = -(-m // mr) * mr
    a = np.arange(1, m * k + 1, dtype=np.float64).reshape(m, k)
    expected = np.zeros(m_pad * k)
    for k0 in range(0, k, kc):
        kc_s = min(kc, k - k0)
        for i in range(m):
            for kk in range(k0, k0 + kc_s):
                expected[k0 * m_pad + i // mr * mr * kc_s + (kk - k0) * mr + i % mr] = a[i, kk]
    dst = apack_destinations(k, m, mr, kc)
    assert dst.dtype == np.intp and dst.shape == (2 * k,) and dst.flags.c_contiguous
    packed = np.zeros(m_pad * k)
    for kk in range(k):
        for i0 in range(0, m, mr):
            rows = min(mr, m - i0)
            start = dst[2 * kk] + i0 * dst[2 * kk + 1]
            packed[start:start + rows] = a[i0:i0 + rows, kk]
    np.testing.assert_array_equal(packed, expected)


@pytest.mark.parametrize("w_shape, kw, stacked", [
    ((4, 3, 2, 2), dict(stride=2), True),
    ((4, 3, 3), dict(stride=3), True),
    ((4, 3, 2, 3), dict(stride=(2, 3)), True),
    ((4, 3, 2, 2), dict(stride=3), True),                 # kernel < stride: zeros between
    ((4, 3, 3), dict(stride=3, output_padding=1), False),  # one phase has one more output
    ((4, 3, 2, 2), dict(stride=2, padding=1), False),     # the phases read shifted inputs
    ((4, 3, 4, 4), dict(stride=2, padding=1), False),     # four taps a phase
])
def test_one_tap_phases_are_stacked_into_one_gemm_only_when_they_share_their_input(
        w_shape, kw, stacked, rng, assert_close):
    x_shape = (2, 4) + (5,) * (len(w_shape) - 2)
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    phases, _ = phase_table(problem)
    stride = problem.geometry.stride
    tables = _packed_conv.phases_tables(x_shape, w_shape, problem.forward_input_shape,
                                        np.dtype(np.float32), stride, phases)
    assert tables.packing_key[6] is stacked
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    # NaN where the phases write every position (each written once), else zeros between
    covered = sum(np.prod(p["sub_out"]) for p in phases) == problem.geometry.input_numel
    y = np.full(problem.forward_input_shape, np.nan if covered else 0, np.float32)
    _packed_conv.conv_transpose_phases_run(tables, x, w, y)
    assert_close(y, conv_transpose_reference(x, w, **kw), np.float32)


def test_phases_that_repeat_a_tap_are_not_stacked_and_each_keeps_its_own_taps(rng):
    # four phases of a 2x2 kernel at stride 2 that all take tap (0, 0) (the compiled entry
    # takes any phases; the geometry never makes these): each phase alone, into zeros, summed
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    problem = conv_transpose_problem(x.shape, w.shape, stride=2)
    phases = [dict(p, taps=((0,), (0,))) for p in phase_table(problem)[0]]
    shape = problem.forward_input_shape
    y = np.zeros(shape, np.float32)
    _packed_conv.conv_transpose_phases_packed(x, w, y, (2, 2), phases)
    expected = np.zeros(shape, np.float32)
    for phase in phases:
        alone = np.zeros(shape, np.float32)
        _packed_conv.conv_transpose_phases_packed(x, w, alone, (2, 2), [phase])
        expected += alone
    np.testing.assert_array_equal(y, expected)
    y_tap = np.einsum("nchw,co->nohw", x, w[:, :, 0, 0])
    np.testing.assert_allclose(y[:, :, 1::2, 0::2], y_tap, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dead_first", [True, False])
def test_a_phase_without_outputs_takes_no_part_in_stacked_phases(dead_first, rng):
    # 1-d, kernel 2 at stride 3 into 2 outputs: phases first=0 (tap 0) and first=1 (tap 1) are
    # stacked; a third phase, first=2, has no output (sub_out 0) but names tap 0 (the compiled
    # entry takes any phases). It must neither set the stacked GEMM's columns (as the first
    # phase, 0 of them would write nothing) nor move tap 0's rows to position 2 (as the last,
    # a write past the end of each output row): the tables drop it (live_phases).
    x = rng.standard_normal((2, 4, 1)).astype(np.float32)
    w = rng.standard_normal((4, 3, 2)).astype(np.float32)
    live = [dict(taps=((0,),), sub_pad=(0,), first=(0,)),
            dict(taps=((1,),), sub_pad=(0,), first=(1,))]
    dead = dict(taps=((0,),), sub_pad=(0,), first=(2,))
    phases = [dead] + live if dead_first else live + [dead]
    y = np.full((2, 3, 2), np.nan, np.float32)
    _packed_conv.conv_transpose_phases_packed(x, w, y, (3,), phases)
    expected = np.stack([np.einsum("nc,co->no", x[:, :, 0], w[:, :, t]) for t in (0, 1)], -1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape, w_shape, stride", [
    ((2, 32, 24, 24), (32, 160, 2, 2), 2),        # 640 rows: two row items, many columns
    ((1, 16, 12, 10, 8), (16, 40, 2, 2, 2), 2),   # 320 rows over 8 taps, 3-d
])
def test_stacked_phases_prepared_and_threaded_give_the_same_bits(x_shape, w_shape, stride, rng,
        assert_same_bits_for_thread_counts):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    problem = conv_transpose_problem(x_shape, w_shape, stride=stride)
    phases, _ = phase_table(problem)
    strides = problem.geometry.stride

    def run(weight, threads):
        tables = _packed_conv.phases_tables(x_shape, w_shape, problem.forward_input_shape,
                                            np.dtype(np.float32), strides, phases,
                                            threads=threads)
        assert tables.packing_key[6] is True
        if weight is None:
            weight = _packed_conv.pack_phases_weight(tables, w)
        y = np.full(problem.forward_input_shape, np.nan, np.float32)
        return _packed_conv.conv_transpose_phases_run(tables, x, weight, y)

    plain = run(w, 1)
    np.testing.assert_array_equal(run(None, 1), plain)      # the packed weight of a layer
    assert_same_bits_for_thread_counts(lambda: run(w, fastdeconv.get_num_threads()),
                                       counts=(1, 2, 4, 3))
    np.testing.assert_allclose(plain, conv_transpose_reference(x, w, stride=stride),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c_out", [40, 44])
def test_weight_packed_in_row_ranges_per_thread_gives_the_same_bits(c_out, rng,
        assert_same_bits_for_thread_counts):
    """The phases' A is packed in one range of whole row blocks per thread (the weight read
    channel after channel as one stream); with 5 or 6 blocks of rows on 1-4 threads (ranges
    that do not divide the rows evenly, a thread with none) every row is packed once: the
    results match the reference and each other to the bit, with the weight packed per call
    and packed ahead."""
    x = rng.standard_normal((2, 512, 3, 3)).astype(np.float32)
    w = rng.standard_normal((512, c_out, 4, 4)).astype(np.float32)
    problem = conv_transpose_problem(x.shape, w.shape, stride=2, padding=1)
    phases, _ = phase_table(problem)

    def run(prepacked, threads):
        tables = _packed_conv.phases_tables(x.shape, w.shape, problem.forward_input_shape,
                                            np.dtype(np.float32), (2, 2), phases,
                                            threads=threads)
        weight = _packed_conv.pack_phases_weight(tables, w) if prepacked else w
        y = np.full(problem.forward_input_shape, np.nan, np.float32)
        return _packed_conv.conv_transpose_phases_run(tables, x, weight, y)

    plain = run(False, 1)
    for threads in (1, 2, 3, 4):
        np.testing.assert_array_equal(run(True, threads), plain)
    assert_same_bits_for_thread_counts(lambda: run(False, fastdeconv.get_num_threads()),
                                       counts=(1, 2, 4, 3))
    np.testing.assert_allclose(plain, conv_transpose_reference(x, w, stride=2, padding=1),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, stride, padding, output_padding, groups, pairs", [
    ((2, 8, 9, 10), (8, 16, 4, 4), 2, 1, 0, 1, 2),              # dcgan-like, 2 x 2 phases
    ((3, 6, 7, 8), (6, 8, 3, 3), 2, 1, 1, 1, 2),                # fcn_k3s2-like: op 1
    ((2, 4, 5, 6, 7), (4, 10, 3, 3, 3), 2, 1, 1, 2, 4),         # 3-d, groups
    ((2, 8, 37), (8, 24, 4), 2, 1, 0, 1, 1),                    # 1-d
    ((2, 6, 7, 8), (6, 8, 3, 3), 2, 1, 0, 1, 0),                # odd output width: unequal
    ((2, 6, 7, 8), (6, 8, 4, 6), (2, 3), 1, 0, 1, 0),           # last stride 3: no pairs
])
def test_partner_phases_store_interleaved_with_the_same_bits(
        x_shape, w_shape, stride, padding, output_padding, groups, pairs, dtype, rng,
        monkeypatch, assert_same_bits_for_thread_counts):
    """Two phases that fill the even and the odd positions of the same output lines run each
    work item together and store it interleaved (fd_conv_item_pair). The result is the same
    to the bit as with every phase stored on its own (the pairing turned off), on 1-4 threads,
    and matches the reference; phases whose lines differ in length (an odd output width) or
    whose last stride is not 2 are not paired."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    problem = conv_transpose_problem(x_shape, w_shape, **kwargs)
    phases, _ = phase_table(problem)

    def run(threads):
        tables = _packed_conv.phases_tables(x_shape, w_shape, problem.forward_input_shape,
                                            np.dtype(dtype), problem.geometry.stride, phases,
                                            groups=groups, threads=threads)
        y = np.full(problem.forward_input_shape, np.nan, dtype)
        return tables.pairs, _packed_conv.conv_transpose_phases_run(tables, x, w, y)

    found, paired = run(1)
    assert found == pairs
    expected = conv_transpose_reference(x, w, **kwargs)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(paired, expected, **tol)
    assert_same_bits_for_thread_counts(lambda: run(fastdeconv.get_num_threads())[1],
                                       counts=(1, 2, 4, 3))
    monkeypatch.setattr(_packed_conv, "PAIR_BLOCK_BYTES", 0)
    unpaired, alone = run(1)
    assert unpaired == 0
    np.testing.assert_array_equal(paired, alone)
