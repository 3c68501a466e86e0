"""Shared fixtures: seeded RNG, per-dtype tolerances, hypothesis profiles, torch and jax oracles."""

import gc
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The default profile is derandomized: every run (and CI) draws the same examples, so a run
# fails or passes reproducibly; the "long" profile explores at random.
settings.register_profile(
    "default", max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# (a registered profile inherits from the current default, so "long" must undo
# derandomize explicitly, or it would draw the same examples on every run)
settings.register_profile(
    "long", max_examples=2000, deadline=None, derandomize=False, database=None,
    suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("FASTDECONV_HYPOTHESIS_PROFILE", "default"))

import fastdeconv
from fastdeconv.testing import TOLERANCES

#: Tolerance relative to the scale of the expected output, per compute dtype (the rtol of
#: fastdeconv.testing.TOLERANCES: one table for the library and its tests).
RTOL = {np.dtype(t): tol["rtol"] for t, tol in TOLERANCES.items()}


def assert_close_scaled(actual, expected, dtype=None, rtol=None):
    """max |actual - expected| <= rtol * max(1, max |expected|), with a useful message."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if rtol is None:
        rtol = RTOL[np.dtype(dtype if dtype is not None else actual.dtype)]
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)), initial=0.0))
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol:g} * scale {scale:.3e}"


@pytest.fixture(scope="session")
def assert_close():
    """:func:`assert_close_scaled` as a fixture (test modules cannot import conftest)."""
    return assert_close_scaled


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible and different per test."""
    seed = sum(map(ord, request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or skip: it is an optional oracle that CI installs.

    With ``FASTDECONV_REQUIRE_TORCH=1`` (set by ``.ci/run``) a missing torch is a failure, so
    that CI cannot pass with the oracle tests silently skipped.
    """
    if os.environ.get("FASTDECONV_ASAN") == "1":  # .ci/asan: torch is not loaded under ASan
        pytest.skip("torch is not imported under AddressSanitizer (.ci/asan)")
    if os.environ.get("FASTDECONV_REQUIRE_TORCH") == "1":
        import torch
    else:
        torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def jax():
    """JAX (CPU) with float64 enabled, or skip: an optional oracle that CI installs.

    With ``FASTDECONV_REQUIRE_JAX=1`` (set by ``.ci/run``) a missing jax is a failure, as for
    torch. Each oracle case compiles a new XLA function; with the CPU backend's optimisation
    off (level 0, unless ``XLA_FLAGS`` says otherwise) that takes ~0.1 s instead of ~0.7 s.
    """
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if os.environ.get("FASTDECONV_REQUIRE_JAX") == "1":
        import jax
    else:
        jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """With ``FASTDECONV_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test fails the run: CI has
    every optional oracle installed, so a skip there means a test silently did not run."""
    if os.environ.get("FASTDECONV_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(
            f"FASTDECONV_NO_SKIPS=1: {len(skipped)} test(s) were skipped; CI runs every test",
            red=True,
        )
        for report in skipped:
            reporter.write_line(f"  skipped: {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}")
        session.exitstatus = 1


def _peak_extra_bytes(call):
    """Peak traced memory of ``call()`` beyond its result's bytes (tracemalloc sees NumPy's
    allocations, the engine's scratch blocks among them), and the results as a tuple. The
    scratch pool is emptied first, so that the call's blocks are new and counted."""
    from fastdeconv import _scratch

    gc.collect()
    _scratch.release()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    results = result if isinstance(result, tuple) else (result,)
    return peak - sum(r.nbytes for r in results if r is not None), results


@pytest.fixture
def peak_extra_bytes():
    """``peak_extra_bytes(call) -> (extra bytes, results)``: the memory tests' measure."""
    return _peak_extra_bytes


def _dirty_scratch_pool(sizes=(2**12, 2**16, 2**20, 2**22)):
    """Empty the engine's scratch pool, then leave idle blocks of ``sizes`` bytes in it that
    hold NaN: what a block holds after its last user, so that a cell a kernel should have
    written (a padding cell, a workspace entry) and did not shows in the result."""
    from fastdeconv import _scratch

    _scratch.release()
    blocks = [_scratch.take(n) for n in sizes]
    for block in blocks:
        block.view(np.float64)[:] = np.nan
    for block in blocks:
        _scratch.give(block)


@pytest.fixture
def dirty_scratch_pool():
    """``dirty_scratch_pool(sizes=...)``: :func:`_dirty_scratch_pool`."""
    return _dirty_scratch_pool


def _padding_boxes(spatial, pad, extent, lead=1):
    """``(src, dst)`` index tuples (``lead`` whole axes, then one slice per spatial axis; any
    later axes whole) of an input of size ``spatial`` placed at ``pad`` (negative: cropped)
    in a padded array of size ``extent``: ``padded[dst] = x[src]``, the rest zeros. The
    tests' own arithmetic, apart from the engine's ``pad_plan``."""
    src, dst = [slice(None)] * lead, [slice(None)] * lead
    for n, p, e in zip(spatial, pad, extent):
        lo_src, lo_dst = max(0, -p), max(0, p)
        length = max(0, min(n - lo_src, e - lo_dst))
        src.append(slice(lo_src, lo_src + length))
        dst.append(slice(lo_dst, lo_dst + length))
    return tuple(src), tuple(dst)


@pytest.fixture
def padding_boxes():
    """``padding_boxes(spatial, pad, extent, lead=1)``: :func:`_padding_boxes`."""
    return _padding_boxes


@pytest.fixture
def engine_scratch_allowance():
    """``engine_scratch_allowance(blocks=3)``: what the packed engine's scratch adds to the
    workspace (a padded tile) in a memory test's peak: its other blocks (the threads'
    packing buffers, under 2 MiB a thread, and the packed weight) and each block's slack
    (the rounding up to 2 MiB and the alignment slack,
    :data:`fastdeconv._scratch.SLACK_PER_BLOCK`)."""
    from fastdeconv import _scratch
    from fastdeconv._threads import kernel_threads

    return lambda blocks=3: blocks * _scratch.SLACK_PER_BLOCK + kernel_threads() * 2 * 2**20


@pytest.fixture
def replace_budget():
    """``replace_budget(**changes)``: the dispatcher's thresholds (a frozen
    :class:`fastdeconv._algorithms.Budget`) with ``changes``, until the test ends; later
    calls apply on top of earlier ones."""
    from contextlib import ExitStack

    from fastdeconv._algorithms import budget

    with ExitStack() as stack:
        yield lambda **changes: stack.enter_context(budget(**changes))


def _import_framework(module, flag):
    """Import a slow optional oracle (TensorFlow, Keras): a failure with ``flag=1`` set,
    else a skip when it is missing. Their import-time warnings are not the tests' concern."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if os.environ.get(flag) == "1":
            return importlib.import_module(module)
        return pytest.importorskip(module)


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, or skip (``FASTDECONV_REQUIRE_TF=1``: a failure): the slow optional oracle
    of :mod:`fastdeconv.compat.tf`, installed in a separate environment (docs: porting)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _import_framework("tensorflow", "FASTDECONV_REQUIRE_TF")


@pytest.fixture(scope="session")
def keras():
    """Keras 3, or skip (``FASTDECONV_REQUIRE_KERAS=1``: a failure), on the JAX backend when
    JAX is installed (else TensorFlow's), unless ``KERAS_BACKEND`` says otherwise."""
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = _import_framework("keras", "FASTDECONV_REQUIRE_KERAS")
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    return keras


def _assert_same_bits_for_thread_counts(call, counts=(1, 2, 4)):
    """``call()`` (an array or a tuple of arrays) gives the same bits for every thread count."""
    results = []
    for threads in counts:
        previous = fastdeconv.set_num_threads(threads)
        try:
            result = call()
        finally:
            fastdeconv.set_num_threads(previous)
        results.append(result if isinstance(result, tuple) else (result,))
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


@pytest.fixture
def assert_same_bits_for_thread_counts():
    """``assert_same_bits_for_thread_counts(call, counts=(1, 2, 4))``: the thread-identity
    tests' check (test modules cannot import conftest)."""
    return _assert_same_bits_for_thread_counts
