"""Same bits whatever the thread count; concurrent calls from Python threads are safe."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv.testing import conv_transpose_reference

threadpoolctl = pytest.importorskip("threadpoolctl")

CASES = [
    ("conv", (4, 16, 20, 20), (32, 16, 3, 3), dict(stride=1, padding=1)),
    ("conv_transpose", (4, 32, 10, 10), (32, 16, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose", (2, 8, 6, 6, 6), (8, 4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
]


def _all_outputs(op, x, w, kw):
    forward = getattr(fastdeconv, op)
    backward = getattr(fastdeconv, f"{op}_backward")
    y = forward(x, w, **kw)
    return (y,) + backward(np.ones_like(y), x, w, **kw)


@pytest.mark.parametrize("op, x_shape, w_shape, kw", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_bit_identical_for_1_2_and_4_threads(op, x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    results = []
    for threads in (1, 2, 4):
        with threadpoolctl.threadpool_limits(limits=threads):
            results.append(_all_outputs(op, x, w, kw))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_eight_python_threads_get_the_serial_results(rng):
    x = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
    x.flags.writeable = False
    w.flags.writeable = False
    serial = [fastdeconv.conv_transpose(x, w, stride=s, padding=1) for s in (1, 2, 3, 4) * 4]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda s: fastdeconv.conv_transpose(x, w, stride=s, padding=1), (1, 2, 3, 4) * 4))
    for a, b in zip(serial, threaded):
        assert np.array_equal(a, b)


def test_set_num_threads_overrides_and_restores(rng):
    x = rng.standard_normal((2, 8, 16, 16))
    w = rng.standard_normal((8, 4, 3, 3))
    previous = fastdeconv.set_num_threads(1)
    try:
        assert fastdeconv.get_num_threads() == 1
        one = fastdeconv.conv_transpose(x, w, stride=2)
        fastdeconv.set_num_threads(-1)
        assert fastdeconv.get_num_threads() >= 1
        assert np.array_equal(fastdeconv.conv_transpose(x, w, stride=2), one)
    finally:
        fastdeconv.set_num_threads(previous)


@pytest.mark.parametrize("value, error, match", [(0, ValueError, "n = 0 threads is invalid"), (1.5, TypeError, "n must be an int")])
def test_set_num_threads_rejects_zero_and_non_integers(value, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.set_num_threads(value)


ALGORITHM_CASES = [
    ("phases", (3, 16, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("col2im", (3, 16, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1, dilation=2)),
    ("depthwise", (2, 32, 24, 24), (32, 2, 4, 4), dict(stride=2, padding=1, groups=32)),
    ("subpixel", (3, 16, 12, 12), (16, 8, 4, 4), dict(stride=2, padding=1)),
    ("subpixel", (2, 8, 10, 10), (8, 4, 4, 4), dict(stride=2, padding=1, groups=4)),
]


@pytest.mark.parametrize("algorithm, x_shape, w_shape, kw", ALGORITHM_CASES)
def test_every_algorithm_is_race_free_and_bit_identical_across_thread_counts(algorithm, x_shape, w_shape, kw, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    expected = conv_transpose_reference(x, w, **kw)
    previous = fastdeconv.set_num_threads(1)
    try:
        with _dispatch.forced_algorithm(algorithm):
            baseline = fastdeconv.conv_transpose(x, w, **kw)
            np.testing.assert_allclose(baseline, expected, rtol=1e-4, atol=1e-4)
            for threads in (2, 4, 2, 4, 2):  # repeated: a race shows up as a difference
                fastdeconv.set_num_threads(threads)
                assert np.array_equal(fastdeconv.conv_transpose(x, w, **kw), baseline)
    finally:
        fastdeconv.set_num_threads(previous)
