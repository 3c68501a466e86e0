"""Every algorithm and tiling regime of the dispatcher against the plain-NumPy reference.

The dispatcher picks one algorithm per pass from the geometry; here each one is forced on
geometries that exercise it, and the tile budgets are shrunk so that tiles of several whole
samples, tiles of part of a sample and one-column tiles all run.
"""

import itertools
import math

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._algorithms import DEFAULT_BUDGET, _chooser, current_budget, depthwise, phases
from fastdeconv._algorithms import budget as replaced_budget
from fastdeconv._algorithms import _common, subpixel, winograd_phases
from fastdeconv._algorithms._common import tiling
from fastdeconv._geometry import ConvGeometry
from fastdeconv._problem import conv_problem, conv_transpose_problem
from fastdeconv.testing import conv_backward_reference, conv_reference, conv_transpose_reference

TRANSPOSE_CASES = [
    ((3, 4, 5, 4), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 5, 4), (4, 6, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    ((2, 2, 7), (2, 3, 16), dict(stride=8, padding=4)),
    ((2, 3, 6), (3, 2, 1), dict(stride=3)),                               # kernel < stride
    ((2, 2, 3, 3, 2), (2, 2, 3, 2, 2), dict(stride=(2, 1, 3), padding=((1, 0), (0, 1), (1, 1)))),
    ((2, 4, 4, 4), (4, 1, 4, 4), dict(stride=2, padding=1, groups=4)),    # depthwise
    ((2, 4, 3, 3), (4, 2, 2, 2), dict(stride=2)),                          # kernel == stride
    ((2, 2, 4, 4), (2, 2, 3, 3), dict(stride=1, padding="same")),
    ((2, 2, 4, 4), (2, 2, 3, 3), dict(stride=2, dilation=2, output_padding=1)),  # phases -> col2im
    ((3, 4, 5, 5), (4, 2, 1, 1), {}),                                      # pointwise
]
BUDGETS = {"default": None, "several samples": 4096, "part of a sample": 256, "one column": 1}


@pytest.fixture(params=list(BUDGETS))
def budget(request):
    value = BUDGETS[request.param]
    if value is None:
        yield request.param
        return
    # sub-pixel: blocks of several samples, of several channels, one channel of one sample
    with replaced_budget(tile_bytes=value, min_columns=1, target_columns=10**9,
                         subpixel_block_bytes=value, subpixel_min_rows=1):
        yield request.param


def _subpixel_layout(problem, limit, itemsize):
    """The block sizes of the sub-pixel plan (``limit=None``: whatever its overhead)."""
    assert limit is None
    the_plan = subpixel.plan("backward_input", problem, current_budget(), itemsize)
    return dict(samples_per_chunk=the_plan.samples_per_chunk,
                channels_per_block=the_plan.channels_per_block)


def _depthwise_buffers(problem):
    """The depthwise kernel's padded plane, phase pairs and per-thread buffer size."""
    halo, padded, partner, elements = depthwise._buffers(problem, *phases.phase_table(problem))
    return dict(halo=halo, padded=padded, partner=partner, buffer_elements=elements)


FORWARD_CASES = [
    ((3, 4, 9, 7), (5, 4, 3, 3), dict(padding=1)),                         # winograd
    ((2, 4, 11, 10), (6, 2, 3, 3), dict(padding=((2, 0), (1, 2)), dilation=2, groups=2)),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1, padding_mode="replicate")),
    ((2, 4, 9, 7), (5, 4, 3, 3), dict(stride=2, padding=1)),               # winograd -> im2col
    ((2, 3, 6, 5, 4), (4, 3, 3, 3, 3), dict(padding=1)),                   # 3-d: im2col only
    ((3, 6, 7), (4, 6, 1), {}),                                            # pointwise
    ((2, 4, 9, 7), (5, 4, 4, 4), dict(stride=2, padding=1)),               # space_to_depth
    ((3, 4, 10, 8), (6, 2, 6, 6), dict(stride=2, padding=2, groups=2)),    # space_to_depth, r 3
]
#: the algorithm each FORWARD_CASES geometry runs when "winograd" / "space_to_depth" is forced
FORCED_WINOGRAD = ["winograd"] * 3 + ["im2col"] * 5
FORCED_SPACE_TO_DEPTH = ["im2col"] * 6 + ["space_to_depth"] * 2
#: (operator, its NumPy reference, algorithm, case) for every algorithm of both passes
EVERY_ALGORITHM = (
    [(fastdeconv.conv_transpose, conv_transpose_reference, algorithm, case)
     for algorithm in _dispatch.ALGORITHMS["backward_input"] for case in TRANSPOSE_CASES]
    + [(fastdeconv.conv, conv_reference, algorithm, case)
       for algorithm in _dispatch.ALGORITHMS["forward"] for case in FORWARD_CASES]
)


@pytest.mark.parametrize("op, reference, algorithm, case", EVERY_ALGORITHM)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_algorithm_of_conv_and_conv_transpose_matches_reference(op, reference, algorithm, case, dtype, budget, rng, assert_close):
    x_shape, w_shape, kw = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        y = op(x, w, **kw)
    assert_close(y, reference(x, w, **kw), dtype)


def test_forced_forward_algorithms_run_where_they_apply():
    assert len(FORCED_WINOGRAD) == len(FORCED_SPACE_TO_DEPTH) == len(FORWARD_CASES)
    for (x_shape, w_shape, kw), winograd, s2d in zip(FORWARD_CASES, FORCED_WINOGRAD,
                                                     FORCED_SPACE_TO_DEPTH):
        problem = conv_problem(x_shape, w_shape, **kw)
        for pass_name in ("forward", "backward_weight"):
            with _dispatch.forced_algorithm("winograd"):
                assert _dispatch.plan(pass_name, problem, 4).algorithm == winograd
            with _dispatch.forced_algorithm("space_to_depth"):
                assert _dispatch.plan(pass_name, problem, 4).algorithm == s2d
            with _dispatch.forced_algorithm("im2col"):
                assert _dispatch.plan(pass_name, problem, 4).algorithm == "im2col"


@pytest.mark.parametrize("algorithm", _dispatch.ALGORITHMS["backward_weight"])
@pytest.mark.parametrize("case", FORWARD_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_algorithm_of_the_weight_gradient_matches_reference(algorithm, case, dtype, budget, rng, assert_close):
    x_shape, w_shape, kw = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(conv_reference(x, w, **kw).shape).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        got = fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    assert_close(got, conv_backward_reference(x, w, gy, **kw)[1], dtype)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((5, 4, 6, 5), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((3, 6, 7), (4, 6, 1), {}),
    ((2, 2, 4, 5, 3), (3, 2, 2, 3, 2), dict(padding=1, dilation=(1, 2, 1))),
])
def test_forward_and_weight_gradient_in_every_tiling_regime(x_shape, w_shape, kw, budget, rng, assert_close):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = fastdeconv.conv(x, w, **kw)
    assert_close(y, conv_reference(x, w, **kw))
    gy = rng.standard_normal(y.shape)
    for got, want in zip(fastdeconv.conv_backward(gy, x, w, **kw), conv_backward_reference(x, w, gy, **kw)):
        assert_close(got, want)


def test_the_tiling_regimes_are_really_reached():
    problem = conv_transpose_problem((8, 4, 5, 4), (4, 3, 4, 4), stride=2, padding=1)
    assert _dispatch.plan("backward_input", problem, 8).samples_per_tile > 1
    with replaced_budget(tile_bytes=256, min_columns=1):
        one = _dispatch.plan("backward_input", problem, 8)
    assert one.samples_per_tile == 1 and one.tile < problem.geometry.output_numel


@pytest.mark.parametrize("itemsize", [4, 8])
def test_tiles_of_whole_samples_reach_min_columns_while_the_workspace_allows(itemsize):
    # dcgan_g2: 16 samples of 4x4 positions and 4096 column rows; float64 fits only 4 samples
    # in TILE_BYTES, but a GEMM of 64 columns packs the 8 MiB weight once every 64 columns
    problem = conv_transpose_problem((16, 512, 4, 4), (512, 256, 4, 4), stride=2, padding=1)
    the_plan = _dispatch.plan("backward_input", problem, itemsize)
    columns = the_plan.samples_per_tile * the_plan.tile
    assert columns >= _dispatch.MIN_COLUMNS
    assert columns * 4096 * itemsize > _dispatch.TILE_BYTES or itemsize == 4
    assert the_plan.workspace_bytes(itemsize) <= _dispatch.WORKSPACE_BYTES


@pytest.mark.parametrize("rows, io_rows, length, batch", [
    (4096, 512, 16, 64), (4096, 8192, 16, 64), (30000, 30000, 4, 1000), (48, 64, 1024, 16),
    (1152, 256, 196, 8), (2**16, 0, 3, 50), (64, 1024, 2025, 8), (4096, 256, 100, 8),
    (32768, 256, 16, 100), (2048 * 9, 2048, 3136, 4), (10**6, 10, 5, 3),
])
@pytest.mark.parametrize("io_always", [False, True])
def test_tiling_keeps_both_workspaces_within_the_bound(rows, io_rows, length, batch, io_always):
    for itemsize in (4, 8):
        samples, tile = tiling(rows, length, batch, itemsize, io_rows=io_rows,
                               io_always=io_always, budget=DEFAULT_BUDGET)
        assert 1 <= samples <= batch and 1 <= tile <= length
        assert samples == 1 or tile == length          # several samples: whole ones
        columns = samples * tile
        gathered = io_rows if samples > 1 or io_always else 0
        if columns > 1:   # one column is the floor, whatever its size
            assert columns * (rows + gathered) * itemsize <= _dispatch.WORKSPACE_BYTES
        if columns * rows * itemsize > _dispatch.TILE_BYTES:   # widened past the cache tile
            assert columns < _dispatch.MIN_COLUMNS + length
        # at least MIN_COLUMNS columns whenever that many (of whole samples) fit the bound
        want = min(batch * length, _dispatch.MIN_COLUMNS)
        per_column = (rows + (io_rows if want > length or io_always else 0)) * itemsize
        if -(-want // length) * length * per_column <= _dispatch.WORKSPACE_BYTES or want <= length:
            if want * per_column <= _dispatch.WORKSPACE_BYTES:
                assert columns >= want


def test_tiling_widens_small_samples_larger_than_the_cache_tile():
    # 4096 rows x 10x10 positions in float64 is 3.1 MiB a sample: past TILE_BYTES, but two
    # samples (256 columns with their gathered rows) still fit the 16 MiB workspace
    assert tiling(4096, 100, 8, 8, io_rows=256, budget=DEFAULT_BUDGET) == (3, 100)
    assert tiling(32768, 16, 100, 8, io_rows=256, budget=DEFAULT_BUDGET) == (3, 16)   # 48 of 63 columns
    # one sample: the gathered rows are not allocated, so they do not narrow the tile
    assert tiling(2048 * 9, 3136, 4, 8, io_rows=2048, budget=DEFAULT_BUDGET) == (1, 113)   # 16 MiB of columns
    assert tiling(2048 * 9, 3136, 4, 8, io_rows=2048, io_always=True, budget=DEFAULT_BUDGET) == (1, 102)


def test_algorithm_choice_and_forcing():
    problem = conv_transpose_problem((1, 2, 4), (2, 2, 4), stride=2, dilation=2)
    with _dispatch.forced_algorithm("phases"):
        assert _dispatch.plan("backward_input", problem, 8).algorithm == "col2im"  # dilation 2
    problem = conv_transpose_problem((1, 2, 4), (2, 2, 4), stride=2)
    with _dispatch.forced_algorithm("phases"):
        assert _dispatch.plan("backward_input", problem, 8).algorithm == "phases"
    assert _dispatch.plan("backward_input", problem, 8).algorithm in _dispatch.ALGORITHMS["backward_input"]


@pytest.mark.parametrize("n_out, k, s, pad", list(itertools.product([1, 5, 8, 13], [1, 2, 3, 4, 7], [1, 2, 3, 5], [0, 1, 3])))
def test_stride_phases_cover_every_output_once_with_every_contributing_tap(n_out, k, s, pad):
    g = ConvGeometry(input_size=(n_out,), output_size=(max(1, n_out),), kernel_size=(k,), stride=(s,),
                     dilation=(1,), padding=((pad, 0),), output_padding=(0,))
    covered = np.zeros(n_out, dtype=int)
    for phase in g.transpose_phases():
        (first,), (count,), (taps,) = phase["first"], phase["sub_out"], phase["taps"]
        for u in range(count):
            o = first + u * s
            covered[o] += 1
            # exactly the taps t with (o + pad - t) divisible by s reach output o
            expected = sorted(t for t in range(k) if (o + pad - t) % s == 0)
            assert sorted(taps) == expected
    # every output position belongs to exactly one phase (a phase may have no taps at all
    # when the kernel is shorter than the stride: its outputs stay zero)
    assert np.all(covered == 1)


def test_subpixel_is_chosen_for_large_kernels_only_while_its_intermediate_is_small():
    fcn32s = conv_transpose_problem((1, 21, 16, 16), (21, 21, 64, 64), stride=32, padding=16)
    assert _dispatch.plan("backward_input", fcn32s, 4).algorithm == "subpixel"
    assert _dispatch.plan("backward_input", fcn32s, 8).algorithm == "subpixel"
    # one channel of one sample's intermediate (1024 phases x 17 x 17 x 8 bytes) must fit the
    # workspace: else col2im
    with replaced_budget(workspace_bytes=2**21):
        assert _dispatch.plan("backward_input", fcn32s, 8).algorithm == "col2im"
        assert _dispatch.plan("backward_input", fcn32s, 4).algorithm == "subpixel"
    small_kernel = conv_transpose_problem((16, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)
    # not sub-pixel: dcgan_g4's stride phases go to the packed engine (tests/test_winograd.py)
    assert _dispatch.plan("backward_input", small_kernel, 4).algorithm == "packed_phases"
    assert _dispatch.plan("backward_input", small_kernel, 8).algorithm == "packed_phases"
    depthwise = conv_transpose_problem((4, 64, 64, 64), (64, 1, 4, 4), stride=2, padding=1, groups=64)
    assert _dispatch.plan("backward_input", depthwise, 4).algorithm == "depthwise"


@pytest.mark.parametrize("itemsize", [4, 8])
def test_subpixel_takes_mid_sized_kernels_only_where_the_engine_phases_do_not(itemsize):
    # audio_1d (16 taps, 1-d): the engine's phases do not take it, col2im would; sub-pixel
    # measured faster there (the performance page)
    audio = conv_transpose_problem((8, 128, 4096), (128, 64, 16), stride=8, padding=4)
    assert _dispatch.plan("backward_input", audio, itemsize).algorithm == "subpixel"
    with replaced_budget(subpixel_min_kernel_col2im=17):
        assert _dispatch.plan("backward_input", audio, itemsize).algorithm == "col2im"
    # dcgan_g2 (16 taps, 2-d): the engine takes it (its col2im: few positions per channel)
    # and keeps it
    dcgan_g2 = conv_transpose_problem((16, 512, 4, 4), (512, 256, 4, 4), stride=2, padding=1)
    assert _dispatch.plan("backward_input", dcgan_g2, itemsize).algorithm == "packed_col2im"
    # 8 taps: below the minimum
    short = conv_transpose_problem((2, 64, 512), (64, 64, 8), stride=8)
    assert _dispatch.plan("backward_input", short, itemsize).algorithm != "subpixel"


def test_many_stride_phases_are_not_enumerated_when_winograd_cannot_pay(monkeypatch):
    # fcn32s: 1024 phases of 16 tiles each; enumerating them took 46 ms of Python per call
    # before the arithmetic bound (_phase_tiles_bound) was checked first
    def enumerated(*args):
        raise AssertionError("the stride phases were enumerated")

    monkeypatch.setattr(winograd_phases, "_phase_plans", enumerated)
    _chooser._choose.cache_clear()   # plans made by earlier tests would hide it
    problem = conv_transpose_problem((1, 21, 16, 16), (21, 21, 64, 64), stride=32, padding=16)
    assert (winograd_phases._phase_tiles_bound(problem, DEFAULT_BUDGET) == 16
            < DEFAULT_BUDGET.winograd_phase_min_tiles)
    assert _dispatch.plan("backward_input", problem, 4).algorithm == "subpixel"


def test_the_winograd_phase_plan_is_cached_per_problem_and_budget():
    problem = conv_transpose_problem((16, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)
    first = _dispatch.plan("backward_input", problem, 4)
    assert first is not None and _dispatch.plan("backward_input", problem, 4) is first
    with replaced_budget(workspace_bytes=_dispatch.WORKSPACE_BYTES // 2):
        assert _dispatch.plan("backward_input", problem, 4) is not first  # the budget is in the key


def test_phase_partners_pair_the_interleaved_phases_of_a_last_stride_of_two():
    # k4 s2 p1: residue 0 writes columns 1, 3, ... and residue 1 columns 0, 2, ...; phases are
    # row-major over (rho_h, rho_w), so phase 1 leads phase 0 and phase 3 leads phase 2
    problem = conv_transpose_problem((1, 1, 5, 6), (1, 1, 4, 4), stride=2, padding=1)
    _, table = phases.phase_table(problem)
    partner = depthwise._phase_partners(table["first"], table["sub_out"], (2, 2))
    assert partner.tolist() == [-2, 0, -2, 2]
    assert depthwise._phase_partners(table["first"], table["sub_out"], (2, 3)).tolist() == [-1] * 4
    # stride 2 only in a leading dimension: nothing to interleave in the rows
    problem = conv_transpose_problem((1, 1, 5, 6), (1, 1, 4, 3), stride=(2, 3))
    _, table = phases.phase_table(problem)
    assert set(depthwise._phase_partners(table["first"], table["sub_out"], (2, 3))) == {-1}


def _depthwise_geometries():
    """1-d and 2-d depthwise transposed convs with a last stride of 2: kernel lengths,
    paddings and sizes that give the two interleaved phases equal counts and one more."""
    for n, k, pad, out_pad in itertools.product(range(1, 6), range(1, 6), range(3), range(2)):
        if (n - 1) * 2 - 2 * pad + k + out_pad >= 1 and pad < k:
            yield (2, 3, n), (3, 2, k), dict(stride=2, padding=pad, output_padding=out_pad, groups=3)
    for n, k, pad in itertools.product(range(2, 5), range(2, 6), range(2)):
        yield ((2, 2, 3, n), (2, 1, 3, k),
               dict(stride=(3, 2), padding=(1, pad), output_padding=(2, 1), groups=2))


DEPTHWISE_GEOMETRIES = list(_depthwise_geometries())


@pytest.fixture
def outputs_start_as_nan(monkeypatch):
    """Outputs that a kernel is trusted to write whole (not zeroed) start as NaN, not as
    whatever fresh memory holds (often zeros): a value left unwritten shows."""
    real = _common.allocate

    def allocate(shape, dtype, what, *, zero=False, result=True):
        out = real(shape, dtype, what, zero=zero, result=result)
        if not zero:
            out[...] = np.nan
        return out

    monkeypatch.setattr(_common, "allocate", allocate)


@pytest.mark.parametrize("x_shape, w_shape, kw", DEPTHWISE_GEOMETRIES)
def test_depthwise_interleaved_phase_stores_match_reference(x_shape, w_shape, kw, rng,
                                                            assert_close, outputs_start_as_nan):
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    with _dispatch.forced_algorithm("depthwise"):
        assert _dispatch.plan("backward_input", problem, 8).algorithm == "depthwise"
        got = fastdeconv.conv_transpose(x, w, **kw)
    assert_close(got, conv_transpose_reference(x, w, **kw), rtol=1e-13)


def _forced_transpose_matches_reference(algorithm, x_shape, w_shape, kw, dtype, rng,
                                        assert_close, assert_same_bits_for_thread_counts):
    """conv_transpose forced to ``algorithm``: that plan is chosen, the result matches the
    reference and has the same bits on 1, 2 and 3 threads."""
    problem = conv_transpose_problem(x_shape, w_shape, **kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        assert _dispatch.plan("backward_input", problem, x.itemsize).algorithm == algorithm
        got = fastdeconv.conv_transpose(x, w, **kw)
        assert_same_bits_for_thread_counts(lambda: fastdeconv.conv_transpose(x, w, **kw),
                                           counts=(1, 2, 3))
    assert_close(got, conv_transpose_reference(x, w, **kw), dtype)


@pytest.mark.parametrize("n, k, pad", [(5, 4, 1), (6, 3, 1), (4, 10, 3), (7, 2, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_2d_pairs_computed_row_by_row_match_reference_for_any_thread_count(
        n, k, pad, dtype, rng, assert_close, assert_same_bits_for_thread_counts,
        outputs_start_as_nan):
    # 2-d pairs run row by row (taps_pair_rows): a multiplier of 2 (two output channels per
    # input channel), pairs of equal counts and of one more (k = 3: odd output rows), more
    # than four taps a phase (k = 10: 25), a kernel of one tap a phase (k = 2); 5 planes
    # over 1-3 threads, each thread's buffer reused plane after plane
    _forced_transpose_matches_reference(
        "depthwise", (1, 5, n, n + 1), (5, 2, k, k), dict(stride=2, padding=pad, groups=5),
        dtype, rng, assert_close, assert_same_bits_for_thread_counts)


def test_depthwise_output_is_left_unzeroed_only_where_the_phases_cover_it():
    # the geometries above include kernels shorter than the stride (phases without taps,
    # whose outputs stay zero) and kernels that reach every output (no zeroing pass)
    covered = [phases.phases_cover_output(problem, phases.phase_table(problem)[0])
               for problem in (conv_transpose_problem(x_shape, w_shape, **kw)
                               for x_shape, w_shape, kw in DEPTHWISE_GEOMETRIES)]
    assert any(covered) and not all(covered)
    problem = conv_transpose_problem((1, 2, 4), (2, 1, 1), stride=2, groups=2)   # kernel 1
    assert not phases.phases_cover_output(problem, phases.phase_table(problem)[0])
    problem = conv_transpose_problem((1, 2, 4), (2, 1, 4), stride=2, padding=1, groups=2)
    assert phases.phases_cover_output(problem, phases.phase_table(problem)[0])


def test_the_depthwise_geometries_reach_both_pairings_of_phase_counts():
    """Pairs whose lead (the phase with the first output) has as many outputs a row as its
    partner and one more (it cannot have fewer)."""
    differences = set()
    for x_shape, w_shape, kw in DEPTHWISE_GEOMETRIES:
        _, table = phases.phase_table(conv_transpose_problem(x_shape, w_shape, **kw))
        partner = depthwise._phase_partners(table["first"], table["sub_out"], kw["stride"] if
                                            isinstance(kw["stride"], tuple) else (2,))
        for p, q in enumerate(partner):
            if q >= 0:
                differences.add(int(table["sub_out"][p, -1] - table["sub_out"][q, -1]))
    assert differences == {0, 1}


def _subpixel_weight_by_transpose(weight, stride, groups):
    """subpixel_weight's layout by NumPy reshapes and transposes (the reference)."""
    c_in, cout_g = weight.shape[:2]
    ndim = weight.ndim - 2
    sub = [k // s for k, s in zip(weight.shape[2:], stride)]
    split = weight.reshape((groups, c_in // groups, cout_g)
                           + tuple(v for m, s in zip(sub, stride) for v in (m, s)))
    m_axes = [3 + 2 * d for d in range(ndim)]
    rho_axes = [4 + 2 * d for d in range(ndim)]
    ordered = np.flip(split, axis=m_axes).transpose([0, 2] + rho_axes + [1] + m_axes)
    return ordered.reshape((groups * cout_g * int(np.prod(stride)), c_in // groups) + tuple(sub))


@pytest.mark.parametrize("w_shape, stride, groups", [
    ((3, 2, 8), (4,), 1),
    ((4, 3, 4, 6), (2, 3), 2),
    ((2, 2, 4, 2, 6), (2, 1, 3), 1),
    ((21, 21, 64, 64), (32, 32), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subpixel_weight_is_the_transposed_and_flipped_kernel(w_shape, stride, groups, dtype, rng):
    w = rng.standard_normal(w_shape).astype(dtype)
    got = subpixel._subpixel_weight(w, stride, groups)
    want = _subpixel_weight_by_transpose(w, stride, groups)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("block_bytes, blocks", [(10**9, 2), (2048, 4), (1024, 6), (1, 12)])
def test_subpixel_runs_its_intermediate_in_blocks_of_channels_and_samples(block_bytes, blocks, rng, assert_close):
    # 3 samples, 2 groups of 2 output channels, 4 phases of 4x4 positions: 512 bytes a
    # channel of a sample in float64; a block is (sample chunk, group, channel block):
    # 3 samples x 2 channels, 2 x 2, 1 x 2, 1 x 1
    x_shape, w_shape, kw = (3, 4, 3, 3), (4, 2, 4, 4), dict(stride=2, padding=1, groups=2)
    with replaced_budget(subpixel_block_bytes=block_bytes, subpixel_min_rows=1):
        problem = conv_transpose_problem(x_shape, w_shape, **kw)
        layout = _subpixel_layout(problem, limit=None, itemsize=8)
        chunks = -(-3 // layout["samples_per_chunk"])
        assert chunks * 2 * -(-2 // layout["channels_per_block"]) == blocks
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        with _dispatch.forced_algorithm("subpixel"):
            got = fastdeconv.conv_transpose(x, w, **kw)
    assert_close(got, conv_transpose_reference(x, w, **kw), rtol=1e-13)


def _subpixel_geometries():
    """Kernels that are multiples of the stride (what sub-pixel takes) in 1-3 dimensions,
    with paddings that crop phases unevenly, output_padding, groups and a stride of 1 in a
    leading dimension, so that lines of y are written by some phases, all, or none."""
    yield (2, 3, 7), (3, 2, 8), dict(stride=4, padding=3)
    yield (1, 2, 5), (2, 1, 6), dict(stride=3, padding=5, output_padding=2)
    yield (2, 2, 4, 5), (2, 3, 4, 6), dict(stride=2, padding=(1, 2))
    yield (1, 4, 3, 4), (4, 1, 6, 4), dict(stride=(3, 2), padding=(4, 0), output_padding=(1, 1),
                                          groups=2)
    yield (2, 2, 3, 3), (2, 2, 2, 6), dict(stride=(1, 3), padding=((0, 1), (2, 1)))
    yield (1, 2, 3, 2, 4), (2, 2, 4, 2, 4), dict(stride=(2, 1, 2), padding=(1, 0, 3))
    yield (2, 3, 3, 3), (3, 2, 8, 8), dict(stride=4, padding=6)   # most of every phase cropped
    # a line's phases in runs long enough for the register tiles (8 x 8 float32, 4 x 4
    # float64): one run of 8 (padding a multiple of the stride), runs of 12 and 4, of 4 and 4
    yield (1, 2, 10), (2, 3, 16), dict(stride=8)
    yield (1, 2, 2, 10), (2, 3, 32, 32), dict(stride=16, padding=4)
    yield (2, 2, 12), (2, 3, 16), dict(stride=8, padding=4, output_padding=3)


@pytest.mark.parametrize("x_shape, w_shape, kw", list(_subpixel_geometries()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subpixel_depth_to_space_writes_every_phase_line_by_line(x_shape, w_shape, kw, dtype,
                                                                   rng, assert_close,
                                                                   assert_same_bits_for_thread_counts,
                                                                   outputs_start_as_nan):
    _forced_transpose_matches_reference("subpixel", x_shape, w_shape, kw, dtype, rng,
                                        assert_close, assert_same_bits_for_thread_counts)


def test_subpixel_blocks_have_enough_gemm_rows_while_the_workspace_allows():
    # audio_1d: 8 phases of 4097 positions; 2 MiB blocks alone would give 15 channels (120 rows)
    audio = conv_transpose_problem((8, 128, 4096), (128, 64, 16), stride=8, padding=4)
    layout = _subpixel_layout(audio, limit=None, itemsize=4)
    assert layout["channels_per_block"] * 8 == DEFAULT_BUDGET.subpixel_min_rows
    assert layout["samples_per_chunk"] == 1
    with replaced_budget(workspace_bytes=8 * 4097 * 4 * 3):  # 3 channels fit
        assert _subpixel_layout(audio, limit=None, itemsize=4)["channels_per_block"] == 3


def test_depthwise_buffers_are_bounded_by_the_workspace():
    # per thread: a padded input plane and one phase plane, two when phases are paired
    paired = conv_transpose_problem((1, 2, 1000), (2, 1, 3), stride=2, groups=2)
    single = conv_transpose_problem((1, 2, 1000), (2, 1, 3), stride=3, groups=2)
    both = [_depthwise_buffers(p) for p in (paired, single)]
    assert (both[0]["partner"] >= 0).any() and (both[1]["partner"] == -1).all()
    padded = [math.prod(b["padded"].tolist()) for b in both]
    assert both[0]["buffer_elements"] == padded[0] + 2 * 1001  # phase planes of 1001
    assert both[1]["buffer_elements"] == padded[1] + 1000  # 1000 a phase (stride 3)
    assert _dispatch.plan("backward_input", paired, 8).algorithm == "depthwise"
    # a plane too large for the workspace goes to col2im, even when depthwise is forced
    huge = conv_transpose_problem((1, 2, 2**20), (2, 1, 3), stride=2, groups=2)
    assert _depthwise_buffers(huge)["buffer_elements"] * 8 > _dispatch.WORKSPACE_BYTES
    assert _dispatch.plan("backward_input", huge, 8).algorithm == "col2im"
    with _dispatch.forced_algorithm("depthwise"):
        assert _dispatch.plan("backward_input", huge, 8).algorithm == "col2im"


def test_depthwise_threads_times_buffer_stay_within_the_workspace(monkeypatch, rng, assert_close):
    """Fewer threads than asked when their buffers together would exceed WORKSPACE_BYTES."""
    seen = []
    kernel = depthwise._phase_kernels.conv_transpose_depthwise
    monkeypatch.setattr(depthwise._phase_kernels, "conv_transpose_depthwise",
                        lambda *args: seen.append(args[-1]) or kernel(*args))
    x, w = rng.standard_normal((2, 4, 40, 40)), rng.standard_normal((4, 1, 4, 4))
    kw = dict(stride=2, padding=1, groups=4)
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    per_thread = _depthwise_buffers(problem)["buffer_elements"] * 8
    previous = fastdeconv.get_num_threads()
    fastdeconv.set_num_threads(4)
    try:
        with replaced_budget(workspace_bytes=2 * per_thread):
            got = fastdeconv.conv_transpose(x, w, **kw)
    finally:
        fastdeconv.set_num_threads(previous)
    assert seen == [2]
    assert_close(got, conv_transpose_reference(x, w, **kw), rtol=1e-13)


#: (pass, algorithm, x shape, weight shape, keywords): every algorithm whose workspaces come
#: from ``_common.workspaces`` (the BLAS paths and Winograd)
POOLED_WORKSPACE_CASES = [
    ("forward", "im2col", (2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ("forward", "winograd", (2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ("backward_input", "col2im", (2, 3, 5, 5), (3, 4, 4, 4), dict(stride=2, padding=1)),
    ("backward_input", "phases", (2, 3, 5, 5), (3, 4, 4, 4), dict(stride=2, padding=1)),
    ("backward_input", "winograd", (2, 3, 5, 5), (3, 4, 4, 4), dict(stride=2, padding=1)),
    ("backward_weight", "im2col", (2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ("backward_weight", "winograd", (2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("pass_name, name, x_shape, w_shape, kw", POOLED_WORKSPACE_CASES)
def test_workspaces_are_scratch_pool_blocks_reused_by_the_next_call(pass_name, name, x_shape,
                                                                     w_shape, kw, rng,
                                                                     assert_close, monkeypatch,
                                                                     dirty_scratch_pool):
    # fresh workspaces cost a page fault per page whenever the C library has handed their
    # memory back; pooled ones are whatever their last user left: fill idle blocks with NaN
    # first, so that a workspace read before it is written shows
    from fastdeconv import _scratch
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    if pass_name == "forward":
        problem = conv_problem(x_shape, w_shape, **kw)
        expected = conv_reference(x, w, **kw)

        def run():
            return fastdeconv.conv(x, w, **kw)
    elif pass_name == "backward_input":
        problem = conv_transpose_problem(x_shape, w_shape, **kw)
        expected = conv_transpose_reference(x, w, **kw)

        def run():
            return fastdeconv.conv_transpose(x, w, **kw)
    else:
        problem = conv_problem(x_shape, w_shape, **kw)
        gy = rng.standard_normal(conv_reference(x, w, **kw).shape)
        expected = conv_backward_reference(x, w, gy, **kw)[1]

        def run():
            return fastdeconv.conv_backward(gy, x, w, grads="weight", **kw)[1]
    dirty_scratch_pool((2**12, 2**16, 2**20))
    idle = _scratch.idle_bytes()
    new_blocks, taken_for = [], []
    real_new_block, real_take = _scratch._new_block, _scratch.take
    monkeypatch.setattr(_scratch, "_new_block",
                        lambda size: new_blocks.append(size) or real_new_block(size))
    monkeypatch.setattr(_scratch, "take",
                        lambda nbytes, what="scratch", kept=False:
                        taken_for.append(what) or real_take(nbytes, what, kept))
    with _dispatch.forced_algorithm(name):
        assert _dispatch.plan(pass_name, problem, 8).algorithm == name
        first = run()
        taken = len(new_blocks)
        second = run()
    assert_close(first, expected, rtol=1e-12)
    assert np.array_equal(first, second)
    assert taken_for.count("workspace") == 2   # one block per call
    assert len(new_blocks) == taken   # the second call took the first call's block again
    assert _scratch.idle_bytes() >= idle + sum(new_blocks)   # and every block came back
