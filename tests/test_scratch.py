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
    assert _scratch.idle_bytes() == block.size
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


def test_block_sizes_are_rounded_to_64_kib_or_to_huge_pages():
    assert _scratch.take(1).size == 64 * 2**10
    assert _scratch.take(64 * 2**10 + 1).size == 128 * 2**10
    assert _scratch.take(2**20).size == 2 * 2**20
    assert _scratch.take(2 * 2**20 + 1).size == 4 * 2**20
    for nbytes in (1, 2**20 - 1, 2**20, 7 * 2**20 + 5):
        assert _scratch.take(nbytes).size - nbytes <= _scratch.SLACK_PER_BLOCK


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge pages: Linux only")
def test_large_blocks_start_on_a_huge_page_boundary():
    for nbytes in (2**20, 3 * 2**20, 9 * 2**20):
        assert _scratch.take(nbytes).ctypes.data % 2**21 == 0


def test_idle_blocks_stay_within_keep_bytes_oldest_freed_first(monkeypatch):
    monkeypatch.setattr(_scratch, "KEEP_BYTES", 8 * 2**20)
    blocks = [_scratch.take(3 * 2**20) for _ in range(3)]     # 4 MiB each
    for block in blocks:
        _scratch.give(block)
    assert _scratch.idle_bytes() == 8 * 2**20
    assert _scratch.take(2**20) is blocks[1]                  # blocks[0] was freed
    _scratch.give(_scratch.take(9 * 2**20))                   # larger than KEEP_BYTES: freed
    assert _scratch.idle_bytes() == 4 * 2**20


def test_giving_a_block_back_twice_is_an_error():
    block = _scratch.take(10)
    _scratch.give(block)
    with pytest.raises(ValueError, match="twice"):
        _scratch.give(block)


def test_release_frees_every_idle_block():
    large, small = _scratch.take(3 * 2**20), _scratch.take(10)
    _scratch.give(large)
    _scratch.give(small)
    assert _scratch.release() == 4 * 2**20 + 64 * 2**10
    assert _scratch.idle_bytes() == 0


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
                results[index] = calls[index % len(calls)]()[0]
        except Exception as exc:   # reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for index, got in results.items():
        assert_close(got, expected[index % len(calls)], np.float32)
