"""Scratch memory of the packed engine, kept between calls.

Every call of the packed engine needs scratch: the weight packed into micro-panels, each
thread's packing buffer, the zero-padded copy of the input, a packed operand of the weight
gradient and the weight gradient's channels-last copies. Taken fresh from the C library every call, a buffer of a few MiB comes from a new
memory mapping, and each of its 4 KiB pages costs a page fault on first touch (1-2.5 us here):
the first call of a process paid ~2,800 faults (about 4 ms) on ``dcgan_g2`` and its second call
as many again, before the C library kept the memory; in a dask worker, whose nanny makes the C
library hand memory back at once, every call paid them.

So the engine takes its scratch from this pool and gives it back when the call ends (a
packed weight when it is freed: a prepared layer keeps its own). A block
is a 1-d ``uint8`` array of a whole number of 2 MiB (64 KiB for requests under 1 MiB); blocks
of 2 MiB or more start on a 2 MiB boundary on Linux, inside a buffer that NumPy asks the kernel
to back with transparent huge pages (:func:`fastdeconv._validation._huge_page_aligned`): a
first call takes one fault per 2 MiB, and a later call none. Idle blocks are kept while
their buffers hold at most :data:`KEEP_BYTES` in all (the oldest go first); the smallest that
fits is handed out (for a packed weight, only if it is at most twice a new block's size);
:func:`release` frees them.
Blocks are NumPy arrays, so the memory tests (``tracemalloc``) see them.

Thread safety: :func:`take` and :func:`give` run with the GIL held (before and after the
compiled code's ``nogil`` section) and under a lock; a block is in one call's hands at a time.
:func:`give` never waits for the lock (see there): a garbage collection that starts while
the lock is held and frees a packed weight cannot deadlock.
"""

import threading

import numpy as np

from ._validation import _ALIGN_HUGE_PAGES, _HUGE_PAGE, _huge_page_aligned

__all__ = ["KEEP_BYTES", "SLACK_PER_BLOCK", "take", "take_array", "give", "release",
           "idle_bytes"]

#: the most bytes the buffers of idle blocks hold between calls
KEEP_BYTES = 64 * 2**20
#: requests from this size on are rounded up to whole huge pages (2 MiB)
_LARGE = 2**20
#: the most a block's size exceeds its request by, untouched memory included: the rounding up
#: to 2 MiB, and the 2 MiB of slack that lets a block start on a 2 MiB boundary
SLACK_PER_BLOCK = 2 * _HUGE_PAGE
_SMALL_STEP = 64 * 2**10

_idle = []          # idle blocks, oldest first
_idle_total = 0     # the bytes of their buffers
_returned = []      # blocks given back while the pool was busy, not yet idle
_lock = threading.Lock()


def _block_bytes(nbytes):
    step = _HUGE_PAGE if nbytes >= _LARGE else _SMALL_STEP
    return max(-(-nbytes // step) * step, step)


def _new_block(size):
    if size >= _HUGE_PAGE and _ALIGN_HUGE_PAGES:
        return _huge_page_aligned((size,), np.uint8, size, False)
    return np.empty(size, dtype=np.uint8)


def _footprint(block):
    """The bytes a block holds: its buffer's (a 2 MiB-aligned block is a view of a buffer
    2 MiB larger)."""
    base = block.base
    return base.nbytes if isinstance(base, np.ndarray) else block.nbytes


def _drain():
    """Make the given-back blocks idle and free the oldest beyond :data:`KEEP_BYTES` (with the
    lock held)."""
    global _idle_total
    while _returned:
        block = _returned.pop()
        _idle.append(block)
        _idle_total += _footprint(block)
    while _idle_total > KEEP_BYTES:
        _idle_total -= _footprint(_idle.pop(0))


def take(nbytes, what="scratch", kept=False):
    """A 1-d ``uint8`` array of at least ``nbytes`` bytes, idle until :func:`give` takes it
    back (its contents are whatever its last user left; it starts on a 64-byte boundary
    only when it is 2 MiB or more: align inside it).

    The smallest idle block that fits, else a new block. With ``kept`` (a packed weight,
    which a prepared layer keeps for its lifetime) an idle block only if it is at most twice
    the size a new block would have, so that a small weight does not hold on to a large
    block. Raises MemoryError, naming ``what`` and the size, when a new block cannot be
    allocated.
    """
    global _idle_total
    nbytes = int(nbytes)
    size = _block_bytes(nbytes)
    limit = 2 * size if kept else None
    with _lock:
        _drain()
        best = -1
        for i in range(len(_idle)):
            found = _idle[i].size
            if (nbytes <= found and (limit is None or found <= limit)
                    and (best < 0 or found < _idle[best].size)):
                best = i
        if best >= 0:
            block = _idle.pop(best)
            _idle_total -= _footprint(block)
            return block
    try:
        return _new_block(size)
    except MemoryError as exc:
        raise MemoryError(f"cannot allocate the {what} ({size} bytes)") from exc


def take_array(shape, dtype, what="scratch"):
    """``(array, block)``: an uninitialised C-contiguous array of ``shape`` and ``dtype`` that
    starts on a 64-byte boundary inside a block from :func:`take` (give ``block`` back, after
    the last use of ``array``)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    block = take(nbytes + 64, what)
    start = -block.ctypes.data % 64
    return block[start:start + nbytes].view(dtype).reshape(shape), block


def give(block):
    """Return ``block`` (from :func:`take`) to the pool; the oldest idle blocks are freed while
    the idle buffers would pass :data:`KEEP_BYTES` (a larger block is freed at once).

    Never waits: when the lock is held (by another thread, or by this one when a garbage
    collection that started inside the pool frees a packed weight), the block is queued and
    becomes idle at the next :func:`take` or :func:`give`."""
    if block is None or _footprint(block) > KEEP_BYTES:
        return
    if not _lock.acquire(blocking=False):
        _returned.append(block)
        return
    try:
        for queue in (_idle, _returned):
            for i in range(len(queue)):
                if queue[i] is block:
                    raise ValueError("a scratch block was given back twice")
        _returned.append(block)
        _drain()
    finally:
        _lock.release()


def release():
    """Free every idle block; returns the bytes of their buffers."""
    global _idle_total
    with _lock:
        _drain()
        freed = _idle_total
        _idle.clear()
        _idle_total = 0
    return freed


def idle_bytes():
    """Bytes of the buffers of the idle blocks the pool keeps."""
    with _lock:
        _drain()
        return _idle_total
