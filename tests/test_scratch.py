"""The packed engine's scratch pool (fastdeconv._scratch): blocks are reused between calls,
bounded, aligned, never handed to two users at once, and a block's leftover contents never
reach a result."""
import sys
import threading

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch, _scratch
from fastdeconv.testing import conv_reference, conv_transpose_reference


@pytest.fixture(autouse=True)
def empty_pool():
    _scratch.release()
    yield
    _scratch.release()


def test_a_given_back_block_is_handed_out_again():
    block = _scratch.take(3 * 2**20)
    assert block.dtype == np.uint8 and block.ndim == 1 and block.size >= 3 * 2**20
    _scratch.give(block)
    assert _scratch.idle_bytes() == _scratch._footprint(block) >= block.size
    again = _scratch.take(2**20)
    assert again is block
    assert _scratch.idle_bytes() == 0
    assert _scratch.take(2**20) is not block      # in use: a new one


def test_the_smallest_idle_block_that_fits_is_taken():
    small, large = _scratch.take(100_000), _scratch.take(5 * 2**20)
    _scratch.give(large)
    _scratch.give(small)
    assert _scratch.take(50_000) is small
    assert _scratch.take(3 * 2**20) is large


def test_a_small_packed_weight_does_not_take_a_much_larger_idle_block():
    """A small packed weight (which a prepared layer keeps) must not pin a large block; the
    packed weights take their blocks with kept=True."""
    large = _scratch.take(20 * 2**20)
    _scratch.give(large)
    small = _scratch.take(1000, kept=True)
    assert small is not large and small.size == 64 * 2**10
    assert _scratch.take(9 * 2**20, kept=True) is large    # within twice a new block's 10 MiB
    _scratch.give(large)
    assert _scratch.take(1000) is large            # a block given back within the call: any


def test_block_sizes_are_rounded_to_64_kib_or_to_huge_pages():
    assert _scratch.take(1).size == 64 * 2**10
    assert _scratch.take(64 * 2**10 + 1).size == 128 * 2**10
    assert _scratch.take(2**20).size == 2 * 2**20
    assert _scratch.take(2 * 2**20 + 1).size == 4 * 2**20
    for nbytes in (1, 2**20 - 1, 2**20, 7 * 2**20 + 5):
        assert _scratch._footprint(_scratch.take(nbytes)) - nbytes <= _scratch.SLACK_PER_BLOCK


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge pages: Linux only")
def test_large_blocks_start_on_a_huge_page_boundary():
    for nbytes in (2**20, 3 * 2**20, 9 * 2**20):
        assert _scratch.take(nbytes).ctypes.data % 2**21 == 0


def test_idle_buffers_stay_within_keep_bytes_oldest_freed_first(monkeypatch):
    blocks = [_scratch.take(3 * 2**20) for _ in range(3)]     # 4 MiB views
    each = _scratch._footprint(blocks[0])
    monkeypatch.setattr(_scratch, "KEEP_BYTES", 2 * each)
    for block in blocks:
        _scratch.give(block)
    assert _scratch.idle_bytes() == 2 * each
    assert _scratch.take(2**20) is blocks[1]                  # blocks[0] was freed
    huge = _scratch.take(3 * each)                             # larger than KEEP_BYTES: freed
    _scratch.give(huge)
    assert _scratch.idle_bytes() == each


def test_giving_a_block_back_twice_is_an_error():
    block = _scratch.take(10)
    _scratch.give(block)
    with pytest.raises(ValueError, match="twice"):
        _scratch.give(block)


def test_release_frees_every_idle_block():
    large, small = _scratch.take(3 * 2**20), _scratch.take(10)
    _scratch.give(large)
    _scratch.give(small)
    assert _scratch.release() == _scratch._footprint(large) + _scratch._footprint(small)
    assert _scratch.idle_bytes() == 0


_REENTRANT_GIVE = """
import threading
from fastdeconv import _scratch
block = _scratch.take(10)
with _scratch._lock:           # as when a collection inside the pool frees a packed weight
    _scratch.give(block)
assert _scratch.take(10) is block, "the queued block did not become idle"
print("ok")
"""

_COLLECTION_INSIDE_THE_POOL = """
import gc
import numpy as np
from fastdeconv import _scratch
from fastdeconv._ext import _packed_conv
x, w = np.ones((1, 4, 8, 8), np.float32), np.ones((8, 4, 3, 3), np.float32)
tables = _packed_conv.forward_tables(x.shape, w.shape, (1, 8, 6, 6), np.float32)
cycle = [_packed_conv.pack_forward_weight(tables, w)]
cycle.append(cycle)
del cycle
with _scratch._lock:
    gc.collect()               # frees the packed weight: its block comes back through give
assert _scratch.idle_bytes() > 0, "the packed weight's block did not come back"
print("ok")
"""


@pytest.mark.parametrize("code", [_REENTRANT_GIVE, _COLLECTION_INSIDE_THE_POOL],
                         ids=["give-with-the-lock-held", "collection-inside-the-pool"])
def test_giving_back_never_waits_for_the_lock(code):
    """A garbage collection that starts inside the pool (its lock held) may free a packed
    weight, whose block comes back through give on the same thread: give must queue it, not
    wait for the lock. In a fresh interpreter with a timeout, since the regression is a
    deadlock."""
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(fastdeconv.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _count_new_blocks(monkeypatch):
    made = []
    new_block = _scratch._new_block

    def counting(size):
        made.append(size)
        return new_block(size)
    monkeypatch.setattr(_scratch, "_new_block", counting)
    return made


def _engine_calls(rng, dtype=np.float32):
    """Calls that run every user of the pool: the forward engine with padding (padded copy,
    packed weight, packing buffers), the stride phases, and the weight gradient (its packed
    grad_y)."""
    x = rng.standard_normal((2, 16, 20, 20)).astype(dtype)
    w = rng.standard_normal((24, 16, 3, 3)).astype(dtype)
    wt = rng.standard_normal((16, 24, 4, 4)).astype(dtype)
    gy = rng.standard_normal((2, 24, 20, 20)).astype(dtype)

    def forward():
        with _dispatch.forced_algorithm("packed"):
            return fastdeconv.conv(x, w, padding=1), conv_reference(x, w, padding=1)

    def transpose():
        with _dispatch.forced_algorithm("packed_phases"):
            return (fastdeconv.conv_transpose(x, wt, stride=2, padding=1),
                    conv_transpose_reference(x, wt, stride=2, padding=1))

    def weight_grad():
        with _dispatch.forced_algorithm("packed"):
            got = fastdeconv.conv_backward(gy, x, w, padding=1, grads=("weight",))[1]
        with _dispatch.forced_algorithm("im2col"):
            expected = fastdeconv.conv_backward(gy.astype(np.float64), x.astype(np.float64),
                                                w.astype(np.float64), padding=1,
                                                grads=("weight",))[1]
        return got, expected

    return [forward, transpose, weight_grad]


def test_a_repeated_engine_call_takes_no_new_block(monkeypatch, rng):
    made = _count_new_blocks(monkeypatch)
    for call in _engine_calls(rng):
        _scratch.release()
        call()
        first = len(made)
        assert first >= 1
        call()
        assert len(made) == first, call.__name__
        made.clear()
    assert _scratch.idle_bytes() > 0


def test_packed_weights_take_their_blocks_as_kept_and_the_rest_not(monkeypatch, rng):
    seen = []
    take = _scratch.take

    def recording(nbytes, what="scratch", kept=False):
        seen.append((what, kept))
        return take(nbytes, what, kept)
    monkeypatch.setattr(_scratch, "take", recording)
    for call in _engine_calls(rng):
        call()
    assert ("packed weight", True) in seen
    assert all(kept == (what == "packed weight") for what, kept in seen), seen
    assert {what for what, _ in seen} >= {"padded copy of x", "packing buffers"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leftover_contents_of_reused_blocks_never_reach_a_result(dtype, rng, assert_close):
    """Every idle block is filled with NaN bytes before each call: the padded copy's zero
    border, the packed weight and the packing buffers must all be written before read."""
    for call in _engine_calls(rng, dtype):
        for _ in range(2):
            blocks = [_scratch.take(n) for n in (10, 100_000, 2**20, 3 * 2**20, 9 * 2**20)]
            for block in blocks:
                block[:] = 0xFF                 # NaN in float32 and float64
                _scratch.give(block)
            got, expected = call()
            assert np.isfinite(got).all(), call.__name__
            assert_close(got, expected, dtype)


def test_concurrent_calls_from_python_threads_get_their_own_blocks(rng, assert_close):
    calls = _engine_calls(rng)
    expected = [call()[1] for call in calls]
    errors, results = [], {}

    def worker(index):
        try:
            for _ in range(20):
                results.setdefault(index, []).append(calls[index % len(calls)]()[0])
        except Exception as exc:   # reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(results) == list(range(6))
    for index, all_got in results.items():
        assert len(all_got) == 20
        for got in all_got:
            assert_close(got, expected[index % len(calls)], np.float32)
