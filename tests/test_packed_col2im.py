"""The packed engine's col2im as the "packed_col2im" algorithm (backward_input, i.e.
conv_transpose): forced on every kind of geometry against the NumPy reference, every kernel,
bit identity across thread counts, the batch cut for the uncropped output, peak memory, the
rule, and the compiled entry's validation of what it is given."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import DEFAULT_BUDGET, current_budget, packed_col2im
from fastdeconv._ext import _packed_col2im, _packed_gemm
from fastdeconv._problem import conv_transpose_problem
from fastdeconv.testing import conv_transpose_reference

#: (x shape, weight shape, conv_transpose keywords): 1-3 d, strides 1-4, kernels smaller
#: than, equal to and larger than the stride, dilation, padding that crops the uncropped
#: output (asymmetric, output_padding past it), none (the output added into in place),
#: groups, rows (channels x taps) over a unit of work and not multiples of the register
#: tile, K over several KC slices, several column items (more positions than NC).
GEOMETRIES = [
    ((2, 5, 9), (5, 7, 3), dict(stride=2, padding=1, output_padding=1)),
    ((3, 4, 8), (4, 3, 5), dict(stride=3, padding=2, groups=2)),
    ((2, 6, 7), (6, 9, 2), dict(stride=4)),                                 # kernel < stride
    ((2, 3, 5, 6), (3, 5, 4, 4), dict(stride=2, padding=1)),
    ((2, 3, 5, 6), (3, 5, 4, 4), dict(stride=2)),                           # in place
    ((1, 6, 5, 7), (6, 4, 3, 5), dict(stride=(2, 3), padding=((2, 0), (1, 3)))),
    ((2, 4, 6, 5), (4, 6, 3, 3), dict(stride=2, padding=1, output_padding=1, dilation=2)),
    ((2, 8, 4, 4), (8, 3, 2, 2), dict(stride=2, groups=4)),
    ((2, 3, 6, 6), (3, 4, 3, 3), dict(padding=1)),                          # stride 1
    ((1, 4, 4, 3, 5), (4, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 3, 4, 3), (6, 2, 2, 3, 4), dict(stride=(2, 1, 3), padding=((1, 0), (1, 1), (0, 2)),
                                           groups=3)),
    ((2, 37, 6, 5), (37, 45, 4, 4), dict(stride=2, padding=1)),   # 720 rows: two units
    ((1, 400, 3, 3), (400, 20, 3, 3), dict(stride=2, padding=1)),           # K over KC
    ((1, 2, 2, 2), (2, 3, 5, 5), dict(stride=3, padding=4, output_padding=2)),  # crops
    ((3, 16, 30, 31), (16, 8, 4, 4), dict(stride=2, padding=1)),  # 2790 columns: items
    ((16, 64, 4, 4), (64, 32, 4, 4), dict(stride=2, padding=1)),  # dcgan_g2-like, smaller
]


def _forced(x, w, bias=None, **kw):
    with _dispatch.forced_algorithm("packed_col2im"):
        return fastdeconv.conv_transpose(x, w, bias, **kw)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_forced_packed_col2im_matches_the_reference(x_shape, w_shape, kw, dtype, with_bias, rng,
                                                   assert_close):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    with _dispatch.forced_algorithm("packed_col2im"):
        used = _dispatch.plan("backward_input", problem, np.dtype(dtype).itemsize).algorithm
    assert used == "packed_col2im"
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[1] * kw.get("groups", 1)).astype(dtype) if with_bias \
        else None
    y = _forced(x, w, bias, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_transpose_reference(x, w, bias, **kw), dtype)


@pytest.mark.parametrize("kernel", _packed_gemm.supported_kernels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_out", [13, 100])   # 100 channels x 12 taps: three units
def test_every_kernel_computes_col2im(kernel, dtype, c_out, rng, assert_close):
    x = rng.standard_normal((2, 19, 5, 6)).astype(dtype)
    w = rng.standard_normal((19, c_out, 4, 3)).astype(dtype)
    kw = dict(stride=(2, 3), padding=1)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    y = np.full(problem.forward_input_shape, np.nan, dtype)
    out = _packed_col2im.conv_transpose_col2im_packed(x, w, y, (2, 3), padding=(1, 1),
                                                      kernel=kernel)
    assert out is y
    assert_close(y, conv_transpose_reference(x, w, **kw), dtype)


@pytest.mark.parametrize("x_shape, w_shape, kw", GEOMETRIES[::2] + GEOMETRIES[-2:])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_col2im_is_bit_identical_across_thread_counts(x_shape, w_shape, kw, dtype, rng,
        assert_same_bits_for_thread_counts):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    assert_same_bits_for_thread_counts(lambda: _forced(x, w, **kw), counts=(1, 2, 4, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_output_gets_its_terms_in_one_unit(dtype, rng):
    # units are whole output channels: with 3-tap rows and an 8- or 12-row tile, a unit of
    # rows cut anywhere else would add one channel's terms from two threads at once
    w = rng.standard_normal((24, 300, 3)).astype(dtype)
    x = rng.standard_normal((2, 24, 40)).astype(dtype)
    tables = _packed_col2im.col2im_tables(x.shape, w.shape, (2, 300, 81), dtype, 2, 1, 0,
                                          threads=4)
    ys = []
    for threads in (1, 4):
        y = np.empty((2, 300, 81), dtype)
        t = _packed_col2im.col2im_tables(x.shape, w.shape, y.shape, dtype, 2, 1, 0,
                                         threads=threads)
        ys.append(_packed_col2im.conv_transpose_col2im_run(t, x, w, y))
    assert tables.units > 1
    assert np.array_equal(ys[0], ys[1])
    np.testing.assert_allclose(ys[0], conv_transpose_reference(x, w, stride=2),
                               rtol=1e-4 if dtype == np.float32 else 1e-11, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uncropped_output_is_made_a_part_of_the_batch_at_a_time(dtype, replace_budget, rng):
    x = rng.standard_normal((7, 5, 10, 9)).astype(dtype)
    w = rng.standard_normal((5, 6, 4, 4)).astype(dtype)
    kw = dict(stride=2, padding=1)
    whole = _forced(x, w, **kw)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    per_sample = packed_col2im._full_per_sample(problem)
    assert per_sample == 6 * 22 * 20          # (10 - 1) * 2 + 4 by (9 - 1) * 2 + 4
    replace_budget(workspace_bytes=3 * per_sample * x.itemsize)
    the_plan = packed_col2im.plan("backward_input", problem, current_budget(), x.itemsize)
    assert (the_plan.samples_per_tile, the_plan.col_elements) == (3, 3 * per_sample)
    # the same bits: each output's terms are added in the order of its taps, however the
    # columns are cut
    assert np.array_equal(_forced(x, w, **kw), whole)
    replace_budget(workspace_bytes=per_sample * x.itemsize - 1)
    assert packed_col2im.plan("backward_input", problem, current_budget(), x.itemsize) is None


def test_peak_extra_memory_is_within_the_bound(peak_extra_bytes, engine_scratch_allowance, rng):
    # 160 samples: 2.5 MiB in, 10 out, an uncropped output of 15.6 MiB (10 x 10 a channel),
    # one engine call within the workspace
    x = rng.standard_normal((160, 256, 4, 4)).astype(np.float32)
    w = rng.standard_normal((256, 256, 4, 4)).astype(np.float32)
    kw = dict(stride=2, padding=1)
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
    ((16, 512, 4, 4), (512, 256, 4, 4), dict(stride=2, padding=1), 4,
     "packed_col2im"),                                                      # dcgan_g2
    ((16, 512, 4, 4), (512, 256, 4, 4), dict(stride=2, padding=1), 8, "packed_col2im"),
    ((16, 128, 16, 16), (128, 64, 4, 4), dict(stride=2, padding=1), 4,
     "packed_phases"),                                    # dcgan_g4: 32 positions a channel
    ((1, 256, 32, 32), (256, 128, 2, 2), dict(stride=2), 4,
     "packed_phases"),                                    # unet_up: kernel = stride
    ((4, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1, output_padding=1), 4,
     "packed_phases"),                                                      # fcn_k3s2
    ((16, 64, 4, 4), (64, 256, 4, 4), dict(stride=2, padding=1), 4,
     "packed_phases"),                                    # 64 input channels: too few
    ((1, 512, 4, 4), (512, 256, 4, 4), dict(stride=2, padding=1, dilation=2), 4,
     "col2im"),                                                             # dilation
    ((4, 512, 4, 4), (512, 256, 3, 3), dict(stride=2, padding=1), 4,
     "packed_phases"),                                    # 2.25 taps per stride step
]


@pytest.mark.parametrize("x_shape, w_shape, kw, itemsize, expected", RULE_CASES)
def test_chooser_takes_packed_col2im_where_it_measured_faster(x_shape, w_shape, kw, itemsize,
                                                              expected):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    assert _dispatch.plan("backward_input", problem, itemsize).algorithm == expected


def test_rule_bounds_are_budget_fields(replace_budget):
    dcgan_g2 = conv_transpose_problem((16, 512, 4, 4), (512, 256, 4, 4), stride=2, padding=1)
    assert packed_col2im.rule(dcgan_g2, current_budget(), 4)
    replace_budget(packed_col2im_max_positions_per_channel=256 / 512 - 0.01)
    assert not packed_col2im.rule(dcgan_g2, current_budget(), 4)
    replace_budget(packed_col2im_max_positions_per_channel=256 / 512,
                   packed_col2im_min_channels=513)
    assert not packed_col2im.rule(dcgan_g2, current_budget(), 4)
    replace_budget(packed_col2im_min_channels=512, packed_col2im_min_taps_per_step=4.01)
    assert not packed_col2im.rule(dcgan_g2, current_budget(), 4)
    replace_budget(packed_col2im_min_taps_per_step=4)
    assert packed_col2im.rule(dcgan_g2, current_budget(), 4)


def _col2im_args(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    y = np.zeros((2, 3, 9, 9))
    return dict(x=x, w=w, y=y, stride=2, dilation=1, padding=1, groups=1, threads=1)


@pytest.mark.parametrize("change, error, match", [
    (lambda a: a.update(x=a["x"].astype(np.float32)), TypeError,
     "weight has dtype float64, expected float32"),
    (lambda a: a.update(w=a["w"][:, :2].copy()), ValueError, "do not match"),
    (lambda a: a.update(w=a["w"][:, :2]), ValueError, "weight must be C-contiguous"),
    (lambda a: a.update(w=a["w"][:3]), ValueError, "do not match"),
    (lambda a: a.update(y=a["y"][:1]), ValueError, "do not match"),
    (lambda a: a.update(y=np.asfortranarray(a["y"])), ValueError, "y must be C-contiguous"),
    (lambda a: a.update(stride=0), ValueError, "stride must be >= 1"),
    (lambda a: a.update(dilation=(1, 0)), ValueError, "dilation must be >= 1"),
    (lambda a: a.update(padding=-1), ValueError, "padding must be >= 0"),
    (lambda a: a.update(padding=(1, 2, 3)), ValueError, "padding must be an int or 2 ints"),
    (lambda a: a.update(groups=3), ValueError, "do not match"),
    (lambda a: a.update(threads=0), ValueError, "threads must be >= 1"),
])
def test_compiled_entry_rejects_bad_arguments_naming_them(change, error, match, rng):
    args = _col2im_args(rng)
    change(args)
    with pytest.raises(error, match=match):
        _packed_col2im.conv_transpose_col2im_packed(
            args["x"], args["w"], args["y"], args["stride"], args["dilation"], args["padding"],
            groups=args["groups"], threads=args["threads"])


def test_compiled_entry_overwrites_y_and_rejects_overlap(rng):
    args = _col2im_args(rng)
    args["y"][:] = np.nan
    _packed_col2im.conv_transpose_col2im_packed(args["x"], args["w"], args["y"], 2, 1, 1)
    np.testing.assert_allclose(args["y"], conv_transpose_reference(args["x"], args["w"],
                                                                   stride=2, padding=1),
                               rtol=1e-12, atol=1e-12)
    x, w = args["x"], args["w"]
    with pytest.raises(ValueError, match="y must not overlap"):
        buffer = np.zeros(2 * 3 * 9 * 9 + x.size)
        _packed_col2im.conv_transpose_col2im_packed(
            buffer[:x.size].reshape(x.shape), w, buffer[:2 * 3 * 81].reshape(2, 3, 9, 9), 2, 1,
            1)
