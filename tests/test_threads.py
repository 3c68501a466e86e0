"""Same bits whatever the thread count; concurrent calls from Python threads are safe."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch
from fastdeconv._operators import OPERATORS
from fastdeconv._problem import conv_problem, conv_transpose_problem
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
    ("packed_phases", (3, 16, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1,
                                                          output_padding=1)),
    ("packed_phases", (2, 40, 10, 9), (40, 36, 4, 4), dict(stride=2, padding=1, groups=2)),
    ("col2im", (3, 16, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1, dilation=2)),
    ("depthwise", (2, 32, 24, 24), (32, 2, 4, 4), dict(stride=2, padding=1, groups=32)),
    ("subpixel", (3, 16, 12, 12), (16, 8, 4, 4), dict(stride=2, padding=1)),
    ("subpixel", (2, 8, 10, 10), (8, 4, 4, 4), dict(stride=2, padding=1, groups=4)),
    ("winograd", (2, 16, 20, 20), (16, 16, 3, 3), dict(padding=1)),
    ("winograd", (2, 16, 40, 40), (16, 16, 4, 4), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("algorithm, x_shape, w_shape, kw", ALGORITHM_CASES)
def test_every_algorithm_is_race_free_and_bit_identical_across_thread_counts(algorithm, x_shape, w_shape, kw, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    expected = conv_transpose_reference(x, w, **kw)
    with _dispatch.forced_algorithm(algorithm):
        problem = conv_transpose_problem(x_shape, w_shape, **kw)
        assert _dispatch.plan("backward_input", problem, 4).algorithm == algorithm
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


@pytest.mark.parametrize("algorithm", _dispatch.ALGORITHMS["forward"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_forward_algorithm_is_bit_identical_across_thread_counts(algorithm, dtype, rng):
    # space_to_depth needs a kernel of 2 x stride
    k, kw = (4, dict(stride=2, padding=1)) if algorithm == "space_to_depth" else (3, dict(padding=1))
    x = rng.standard_normal((3, 16, 30, 26)).astype(dtype)
    w = rng.standard_normal((24, 16, k, k)).astype(dtype)
    with _dispatch.forced_algorithm(algorithm):
        problem = conv_problem(x.shape, w.shape, **kw)
        assert _dispatch.plan("forward", problem, x.itemsize).algorithm == algorithm
    previous = fastdeconv.set_num_threads(1)
    try:
        with _dispatch.forced_algorithm(algorithm):
            baseline = fastdeconv.conv(x, w, **kw)
            for threads in (2, 4, 2, 4, 2):
                fastdeconv.set_num_threads(threads)
                assert np.array_equal(fastdeconv.conv(x, w, **kw), baseline)
    finally:
        fastdeconv.set_num_threads(previous)


def _every_operator(rng):
    """(name, call) for every registered operator and its backward, on small shared read-only
    inputs (the registry's examples), plus antialiased linear resizing."""
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    x.flags.writeable = False
    calls = []
    for op in OPERATORS:
        forward, backward = op.example(x, rng)
        calls += [(op.name, forward), (op.backward.__name__, backward)]
    calls.append(("resize_linear_aa", lambda: fastdeconv.resize(x, size=5, mode="linear",
                                                                antialias=True)))
    return calls


def _flatten(result):
    if isinstance(result, tuple):
        return [a for r in result for a in _flatten(r)]
    return [] if result is None else [np.asarray(result)]


def test_every_operator_is_bit_identical_for_1_2_4_threads_and_repeated_calls(rng):
    previous = fastdeconv.set_num_threads(1)
    try:
        for name, run in _every_operator(rng):
            fastdeconv.set_num_threads(1)
            baseline = _flatten(run())
            for threads in (2, 4, 1, 4, 2):
                fastdeconv.set_num_threads(threads)
                for a, b in zip(baseline, _flatten(run())):
                    assert np.array_equal(a, b, equal_nan=True), (name, threads)
    finally:
        fastdeconv.set_num_threads(previous)


def test_eight_python_threads_on_every_operator_get_the_serial_results(rng):
    operators = _every_operator(rng)
    serial = [_flatten(run()) for _, run in operators]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda op: _flatten(op[1]()), operators * 4))
    for i, result in enumerate(threaded):
        for a, b in zip(serial[i % len(operators)], result):
            assert np.array_equal(a, b, equal_nan=True), operators[i % len(operators)][0]


def test_huge_thread_counts_are_capped_so_no_thread_storm_starts(rng):
    from fastdeconv import _threads

    x = rng.standard_normal((1, 1, 12))
    w = rng.standard_normal((1, 1, 3))
    expected = fastdeconv.conv_transpose(x, w, stride=2)
    previous = fastdeconv.set_num_threads(_threads.MAX_THREADS)
    try:
        assert fastdeconv.get_num_threads() == _threads.EFFECTIVE_MAX_THREADS
        assert np.array_equal(fastdeconv.conv_transpose(x, w, stride=2), expected)
    finally:
        fastdeconv.set_num_threads(previous)
