"""The packed GEMM engine (fastdeconv._ext._packed_gemm and _packed_conv) against SciPy's BLAS
and the NumPy reference convolution: every kernel this CPU runs, both dtypes, odd shapes, flags, threads."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg.blas as scipy_blas

from fastdeconv._ext import _packed_conv as pc
from fastdeconv._ext import _packed_gemm as pg
from fastdeconv.testing._reference import conv_reference

KERNELS = pg.supported_kernels()
DTYPES = [np.float32, np.float64]
#: max |error| relative to max (|A| |B|): the scale of the sums, whatever their cancellation
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

# M, N, K: 1, below / at / past the register tile (MR x NR: 8x48, 8x24, 6x16, 6x8, 4x8, 4x4),
# at / past KC (384 for float32, 256 for float64 with AVX-512), and past the work-item split (m * n * k >= 2**21 cuts n, or m when n is
# small). A dense B is read in place by items of at most 8 row panels, packed by larger ones
# ((96, 90, 300) takes one path on one thread, the other on more).
SHAPES = [
    (1, 1, 1), (1, 17, 5), (13, 1, 300), (8, 48, 384), (9, 49, 385), (12, 32, 256),
    (14, 33, 257), (25, 65, 513),
    (7, 130, 31), (97, 45, 600), (64, 200, 300), (300, 40, 200), (3, 700, 1100),
    (36, 64, 500), (120, 256, 700),      # AVX-512 takes its 12-row tile for these
]


def _operands(rng, m, n, k, dtype, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def _blas(a, b, trans_a, trans_b, c=None):
    """op(a) op(b) (+ c) by SciPy's BLAS, the oracle."""
    fn = scipy_blas.sgemm if a.dtype == np.float32 else scipy_blas.dgemm
    if a.shape[0] * a.shape[1] == 0 or b.shape[0] * b.shape[1] == 0:
        m = a.shape[1] if trans_a else a.shape[0]
        n = b.shape[0] if trans_b else b.shape[1]
        return np.zeros((m, n), a.dtype) if c is None else c.copy()
    if c is None:
        return fn(1.0, a, b, trans_a=trans_a, trans_b=trans_b)
    return fn(1.0, a, b, 1.0, c.copy(), trans_a=trans_a, trans_b=trans_b)


def _assert_close(actual, expected, a, b, trans_a, trans_b, extra=0.0):
    scale = np.abs(a.T if trans_a else a).astype(np.float64) @ np.abs(
        b.T if trans_b else b).astype(np.float64)
    scale = max(1.0, float(np.max(scale, initial=0.0)) + extra)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert err <= RTOL[actual.dtype] * scale, f"max error {err:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["NN", "TN", "NT", "TT"])
def test_gemm_matches_blas(rng, kernel, dtype, shape, trans):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, dtype, *trans)
    c = np.full((m, n), np.nan, dtype)
    pg.gemm(a, b, c, *trans, kernel=kernel)
    _assert_close(c, _blas(a, b, *trans).astype(np.float64), a, b, *trans)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 9, 3), (25, 65, 513), (64, 200, 300)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gemm_accumulate_and_bias(rng, kernel, dtype, shape):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, dtype, False, True)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    bias = rng.standard_normal(m).astype(dtype)
    expected = _blas(a, b, False, True, c0).astype(np.float64)
    c = c0.copy()
    pg.gemm(a, b, c, trans_b=True, accumulate=True, kernel=kernel)
    _assert_close(c, expected, a, b, False, True, extra=float(np.abs(c0).max()))
    c = c0.copy()
    pg.gemm(a, b, c, trans_b=True, accumulate=True, bias=bias, kernel=kernel)
    _assert_close(c, expected + bias[:, None], a, b, False, True, extra=float(np.abs(c0).max()) + 3)
    c = c0.copy()
    pg.gemm(a, b, c, trans_b=True, bias=bias, kernel=kernel)
    _assert_close(c, _blas(a, b, False, True) + bias[:, None].astype(np.float64), a, b, False,
                  True, extra=3)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_empty_reduction(kernel, dtype):
    """K = 0: C = 0 (+ bias), or C unchanged (+ bias) when accumulating."""
    a, b = np.zeros((5, 0), dtype), np.zeros((0, 37), dtype)
    c = np.full((5, 37), 7.0, dtype)
    pg.gemm(a, b, c, kernel=kernel)
    assert np.array_equal(c, np.zeros((5, 37), dtype))
    c[:] = 7
    pg.gemm(a, b, c, accumulate=True, kernel=kernel)
    assert np.array_equal(c, np.full((5, 37), 7.0, dtype))
    bias = np.arange(5, dtype=dtype)
    pg.gemm(a, b, c, bias=bias, kernel=kernel)
    assert np.array_equal(c, np.broadcast_to(bias[:, None], (5, 37)))
    pg.gemm(a, b, c, accumulate=True, bias=bias, kernel=kernel)
    assert np.array_equal(c, np.broadcast_to(2 * bias[:, None], (5, 37)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (0, 0, 0)])
def test_gemm_empty_output(dtype, shape):
    m, n, k = shape
    c = np.zeros((m, n), dtype)
    assert pg.gemm(np.ones((m, k), dtype), np.ones((k, n), dtype), c) is c


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 700, 300), (300, 40, 600), (5, 3000, 200),
                                   (120, 256, 700), (96, 90, 300)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gemm_bit_identical_across_threads(rng, kernel, dtype, shape):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, dtype, False, False)
    bias = rng.standard_normal(m).astype(dtype)
    results = []
    for threads in (1, 2, 4):
        c = np.empty((m, n), dtype)
        pg.gemm(a, b, c, bias=bias, threads=threads, kernel=kernel)
        results.append(c)
    assert all(np.array_equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_plan_takes_the_tile_that_pads_least(dtype):
    for kernel in KERNELS:
        tiles = pg.kernel_info(kernel)[np.dtype(dtype).name]["tiles"]
        for m, n in [(64, 3136), (36, 64), (120, 256), (12, 32), (256, 64), (1, 1)]:
            plan = pg.plan_info(m, n, 300, dtype, kernel)
            padded = [-(-m // mr) * mr * (-(-n // nr) * nr) for mr, nr in tiles]
            assert padded[plan["tile"]] == min(padded)
            assert plan["items_m"] * plan["m_chunk"] >= m and plan["items_n"] * plan["n_chunk"] >= n
            assert plan["m_chunk"] % plan["MR"] == 0
    if "avx512" in KERNELS:
        assert pg.plan_info(120, 256, 700, dtype, "avx512")["tile"] == 1
        assert pg.plan_info(64, 3136, 576, dtype, "avx512")["tile"] == 0


def test_plan_is_one_item_per_column_block_on_one_thread_and_four_or_more_on_two():
    for m, n, k in [(256, 256, 2048), (4096, 256, 512), (64, 3136, 576), (2048, 2048, 2048),
                    (256, 1568, 1152)]:
        one = pg.plan_info(m, n, k, threads=1)
        assert one["items_m"] == 1 and one["m_chunk"] >= m
        blocks = -(-n // one["NC"])            # NC blocks of equal width, whole NR panels
        assert one["items_n"] == blocks
        if blocks == 1:
            assert one["n_chunk"] == n
        else:
            assert one["n_chunk"] % one["NR"] == 0 and one["n_chunk"] <= one["NC"]
            assert one["n_chunk"] - one["NR"] < -(-n // blocks) <= one["n_chunk"]
        two = pg.plan_info(m, n, k, threads=2)
        assert two["items_m"] * two["items_n"] >= 4
        assert two["items_m"] * two["m_chunk"] >= m and two["items_n"] * two["n_chunk"] >= n
    small = pg.plan_info(8, 16, 4, threads=2)       # too little work for threads: one item
    assert small["items_m"] * small["items_n"] == 1


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("m, n, k", [(256, 1568, 1152), (64, 3136, 256), (64, 100, 300),
                                     (512, 1024, 256), (16, 4097, 64), (256, 49, 4608)])
def test_items_cover_the_columns_in_runs_of_panels_that_differ_by_at_most_one(m, n, k,
                                                                              threads):
    # resnet_s2 on 2 threads: 33 panels of 48 columns in items of 8, 8, 8 and 9 panels, not 9,
    # 9, 9 and 6, which left one thread waiting for the other (0.956x the time)
    plan = pg.plan_info(m, n, k, threads=threads)
    columns, nr = plan["item_columns"], plan["NR"]
    assert len(columns) == plan["items_n"]
    assert [j0 for j0, _ in columns] == [0] + [j0 + nc for j0, nc in columns[:-1]]
    assert columns[-1][0] + columns[-1][1] == n
    assert all(j0 % nr == 0 for j0, _ in columns)
    panels = [-(-nc // nr) for _, nc in columns]
    assert max(panels) - min(panels) <= 1
    widest = max(nc for _, nc in columns)   # (its last panel may be part of one)
    assert widest <= plan["n_chunk"] < widest + nr and plan["n_chunk"] <= max(plan["NC"], nr)


def test_plan_rejects_bad_sizes_and_threads():
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        pg.plan_info(3, -1, 2)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        pg.plan_info(3, 4, 2, threads=0)


def test_kernel_name_and_info():
    name = pg.kernel_name()
    assert name.split()[0] in ("avx512f", "avx2+fma", "portable")
    assert "KC=" in name
    for kernel in KERNELS:
        info = pg.kernel_info(kernel)
        for dtype in ("float32", "float64"):
            assert set(info[dtype]) == {"MR", "NR", "MC", "KC", "NC", "tiles"}
            assert info[dtype]["MC"] % info[dtype]["MR"] == 0
            assert (info[dtype]["MR"], info[dtype]["NR"]) == info[dtype]["tiles"][0]
    assert pg.kernel_info("portable")["name"] == "portable"
    assert "portable" in KERNELS


@pytest.mark.parametrize("value, expected", [("portable", "portable"), (" Portable ", "portable"),
                                             ("auto", None), ("", None)])
def test_kernel_environment_variable(value, expected):
    env = dict(os.environ, FASTDECONV_GEMM_KERNEL=value)
    code = "from fastdeconv._ext import _packed_gemm as pg; print(pg.kernel_info()['name'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == (expected or pg.kernel_info()["name"])


def test_kernel_environment_variable_is_validated():
    env = dict(os.environ, FASTDECONV_GEMM_KERNEL="sse9")
    code = "from fastdeconv._ext import _packed_gemm"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "FASTDECONV_GEMM_KERNEL" in proc.stderr
    assert "sse9" in proc.stderr


def _good():
    return np.ones((3, 4)), np.ones((4, 5)), np.zeros((3, 5))


@pytest.mark.parametrize("change, error, match", [
    (lambda a, b, c: dict(a=[[1.0]]), TypeError, "a must be a numpy.ndarray"),
    (lambda a, b, c: dict(b=b.astype(np.int64)), TypeError, "b must be float32 or float64"),
    (lambda a, b, c: dict(b=b.astype(np.float32)), TypeError, "b has dtype float32"),
    (lambda a, b, c: dict(c=np.zeros(15)), ValueError, "c must have 2 dimensions"),
    (lambda a, b, c: dict(a=np.ones((4, 6))[:, ::2].T), ValueError, "a must be C-contiguous"),
    (lambda a, b, c: dict(b=np.ones((3, 5))), ValueError, "inner dimensions"),
    (lambda a, b, c: dict(c=np.zeros((5, 3))), ValueError, r"c must have shape \(3, 5\)"),
    (lambda a, b, c: dict(threads=0), ValueError, "threads must be >= 1"),
    (lambda a, b, c: dict(threads=2.0), TypeError, "threads must be an int"),
    (lambda a, b, c: dict(trans_a=1), TypeError, "trans_a must be a bool"),
    (lambda a, b, c: dict(accumulate="yes"), TypeError, "accumulate must be a bool"),
    (lambda a, b, c: dict(bias=np.ones(4)), ValueError, "bias must have 3 values"),
    (lambda a, b, c: dict(kernel="sse9"), ValueError, "kernel must be one of"),
    (lambda a, b, c: dict(c=a[:, :3]), ValueError, "c must"),
])
def test_gemm_rejects_bad_input(change, error, match):
    a, b, c = _good()
    kwargs = dict(a=a, b=b, c=c)
    kwargs.update(change(a, b, c))
    with pytest.raises(error, match=match):
        pg.gemm(**kwargs)


def test_gemm_rejects_read_only_output():
    a, b, c = _good()
    c.flags.writeable = False
    with pytest.raises(ValueError, match="c must be writable"):
        pg.gemm(a, b, c)


@pytest.mark.parametrize("name", sorted(pg.KERNEL_CHOICES))
def test_a_kernel_runs_where_the_cpu_supports_it_and_is_a_value_error_elsewhere(name):
    """Every kernel name is either run (and right) or refused naming the CPU's kernels: on a
    CPU that runs all three (AVX-512) only the first half of this test can run."""
    a, b, c = _good()
    if name in KERNELS:
        pg.gemm(a, b, c, kernel=name)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    else:
        with pytest.raises(ValueError, match="does not support"):
            pg.gemm(a, b, c, kernel=name)


# ----------------------------------------------------------------------------- convolution
# (x shape, weight shape, stride, padding (before), dilation, groups)
CONV_CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 10, 9), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
    ((1, 8, 7), (5, 8, 1), 1, 0, 1, 1),                       # pointwise 1-d: x rows in place
    ((3, 16, 6, 6), (32, 16, 1, 1), 1, 0, 1, 1),              # pointwise 2-d
    ((2, 6, 7, 7), (6, 2, 1, 1), 2, 0, 1, 3),                 # 1x1 stride 2, grouped
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), (1, 2, 1), (1, 0, 2), (2, 1, 1), 1),
    ((2, 4, 13), (8, 1, 5), 3, 2, 2, 4),                      # depthwise-like 1-d
    ((1, 48, 15, 15), (24, 48, 3, 3), 1, 1, 1, 1),            # K = 432 > KC: two slices
    ((1, 8, 40, 40), (70, 8, 3, 3), 2, 1, 1, 1),              # several work items per sample
    ((2, 3, 4, 4), (5, 3, 4, 4), 1, 2, 1, 1),                 # padding wider than the input
    ((6, 4, 9, 7), (6, 2, 3, 3), 2, 1, 1, 2),                 # 6 samples' columns in one GEMM
    ((4, 3, 32, 32), (5, 3, 3, 3), 1, 1, 1, 1),               # 2 samples per GEMM, 2 GEMMs
    ((3, 400, 20, 21), (24, 400, 1, 1), 1, 0, 1, 1),          # pointwise: whole panels of x
                                                              # read in place, 2 KC slices
    ((1, 64, 4, 16), (128, 64, 3, 3), 1, 1, 1, 1),            # rows of whole vectors: copied
                                                              # (1 thread) or read in place
    ((2, 1, 17, 17), (8, 1, 2, 2), 1, 0, 1, 1),               # read in place, K = 4 < the
                                                              # prefetch distance
]


def _conv_args(case):
    xs, ws, stride, padding, dilation, groups = case
    nd = len(xs) - 2
    padding = (padding,) * nd if isinstance(padding, int) else padding
    return xs, ws, stride, padding, dilation, groups


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
def test_conv_forward_packed_matches_reference(rng, kernel, dtype, case, with_bias):
    xs, ws, stride, padding, dilation, groups = _conv_args(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    bias = rng.standard_normal(ws[0]).astype(dtype) if with_bias else None
    expected = conv_reference(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                              groups=groups)
    y = np.full(expected.shape, np.nan, dtype)
    pc.conv_forward_packed(x, w, y, stride=stride, dilation=dilation, padding=padding,
                           groups=groups, bias=bias, kernel=kernel, threads=2)
    scale = conv_reference(np.abs(x), np.abs(w), None if bias is None else np.abs(bias),
                           stride=stride, padding=padding, dilation=dilation, groups=groups)
    err = float(np.max(np.abs(y.astype(np.float64) - expected)))
    assert err <= RTOL[np.dtype(dtype)] * max(1.0, float(scale.max()))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_width", range(1, 51))
def test_stride_2_rows_of_every_run_length_match_reference(rng, kernel, dtype, out_width):
    """A stride-2 convolution's packed rows are runs of every length up to 50: shorter than
    one vector step (16 float32 or 8 float64 values), one step, across steps, cut by the end of
    a panel."""
    x = rng.standard_normal((1, 3, 3, 2 * out_width - 1)).astype(dtype)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    expected = conv_reference(x, w, stride=2, padding=1)
    assert expected.shape[-1] == out_width
    y = np.full(expected.shape, np.nan, dtype)
    pc.conv_forward_packed(x, w, y, stride=2, padding=1, kernel=kernel)
    scale = conv_reference(np.abs(x), np.abs(w), stride=2, padding=1)
    err = float(np.max(np.abs(y.astype(np.float64) - expected)))
    assert err <= RTOL[np.dtype(dtype)] * max(1.0, float(scale.max()))


@pytest.mark.parametrize("kernel", KERNELS)
def test_conv_forward_packed_crops_negative_padding(rng, kernel):
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    expected = conv_reference(x[:, :, 2:, 1:], w)     # pad_before -2, -1 crops the start
    y = np.empty(expected.shape)
    pc.conv_forward_packed(x, w, y, padding=(-2, -1), kernel=kernel)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[3], CONV_CASES[8], CONV_CASES[10],
                                  CONV_CASES[11], CONV_CASES[12], CONV_CASES[13], CONV_CASES[14]],
                         ids=["strided", "pointwise", "items", "samples", "sample-blocks",
                              "pointwise-in-place", "vectors-in-place", "vectors-short-k"])
def test_conv_forward_packed_bit_identical_across_threads(rng, dtype, case):
    xs, ws, stride, padding, dilation, groups = _conv_args(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    bias = rng.standard_normal(ws[0]).astype(dtype)
    shape = conv_reference(x, w, stride=stride, padding=padding, dilation=dilation,
                           groups=groups).shape
    results = []
    for threads in (1, 2, 4):
        y = np.empty(shape, dtype)
        pc.conv_forward_packed(x, w, y, stride=stride, dilation=dilation, padding=padding,
                               groups=groups, bias=bias, threads=threads)
        results.append(y)
    assert all(np.array_equal(results[0], r) for r in results[1:])


def test_conv_forward_packed_empty():
    y = np.zeros((0, 4, 5, 5))
    pc.conv_forward_packed(np.ones((0, 3, 5, 5)), np.ones((4, 3, 1, 1)), y)
    y = np.full((2, 4, 5, 5), 9.0)
    pc.conv_forward_packed(np.ones((2, 0, 5, 5)), np.ones((4, 0, 1, 1)), y,
                           bias=np.arange(4.0))
    assert np.array_equal(y, np.broadcast_to(np.arange(4.0)[:, None, None], (2, 4, 5, 5)))


@pytest.mark.parametrize("change, error, match", [
    (dict(x=np.ones((2, 3))), ValueError, "x must have 3 dimensions"),
    (dict(weight=np.ones((4, 3, 3, 3), np.float32)), TypeError, "weight has dtype float32"),
    (dict(weight=np.ones((4, 2, 3, 3))), ValueError, "weight has shape"),
    (dict(groups=2), ValueError, "weight has shape"),
    (dict(groups=0), ValueError, "groups must be an int >= 1"),
    (dict(y=np.zeros((2, 5, 8, 8))), ValueError, r"y must have shape \(2, 4, ...\)"),
    (dict(stride=(1, 0)), ValueError, "stride must be >= 1"),
    (dict(dilation=(1, 1, 1)), ValueError, "dilation must be an int or 2 ints"),
    (dict(padding=1.5), ValueError, "padding must be an int or 2 ints"),
    (dict(bias=np.ones(3)), ValueError, "bias must have 4 values"),
    (dict(threads=-1), ValueError, "threads must be >= 1"),
    (dict(kernel="fast"), ValueError, "kernel must be one of"),
])
def test_conv_forward_packed_rejects_bad_input(change, error, match):
    kwargs = dict(x=np.ones((2, 3, 10, 10)), weight=np.ones((4, 3, 3, 3)),
                  y=np.zeros((2, 4, 8, 8)))
    kwargs.update(change)
    with pytest.raises(error, match=match):
        pc.conv_forward_packed(**kwargs)


def test_show_config_names_the_kernel():
    from fastdeconv._config import config

    assert config()["packed gemm"]["kernel"] == pg.kernel_name()


@pytest.mark.parametrize("kernel", KERNELS)
def test_microkernel_measurement_returns_for_every_kernel(kernel):
    """The benchmark's micro-kernel timing ends (the portable kernel has no peak loop: its
    calibration once never stopped) and reports a peak for the vector kernels only."""
    for dtype in ("float32", "float64"):
        ukr, peak = pg.microkernel_gflops(kernel, dtype, 0, seconds=0.02, bursts=2)
        assert ukr > 0
        assert (peak == 0) == (kernel == "portable")


@pytest.mark.parametrize("bursts", [0, -1, True, 1.5, "4"])
def test_microkernel_measurement_rejects_bad_bursts(bursts):
    with pytest.raises(ValueError, match="bursts must be a positive int"):
        pg.microkernel_gflops(KERNELS[0], "float32", 0, seconds=0.01, bursts=bursts)
