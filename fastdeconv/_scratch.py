"""Scratch memory of the packed engine, kept between calls.

Every call of the packed engine needs scratch: the weight packed into micro-panels, each
thread's packing buffer, the zero-padded copy of the input, a packed operand of the weight
gradient. Taken fresh from the C library every call, a buffer of a few MiB comes from a new
memory mapping, and each of its 4 KiB pages costs a page fault on first touch (1-2.5 us here):
the first call of a process paid ~2,800 faults (about 4 ms) on ``dcgan_g2`` and its second call
as many again, before the C library kept the memory; in a dask worker, whose nanny makes the C
library hand memory back at once, every call paid them.

So the engine takes its scratch from this pool and gives it back when the call ends. A block
is a 1-d ``uint8`` array of a whole number of 2 MiB (64 KiB for requests under 1 MiB); blocks
of 2 MiB or more start on a 2 MiB boundary on Linux, inside a buffer that NumPy asks the kernel
to back with transparent huge pages (:func:`fastdeconv._validation._huge_page_aligned`): a
first call takes one fault per 2 MiB, and a later call none. Idle blocks are kept up to
:data:`KEEP_BYTES` in all (the smallest that fits is handed out; the oldest go first when the
total would pass it); :func:`release` frees them. Blocks are NumPy arrays, so the memory
tests (``tracemalloc``) see them.

Thread safety: :func:`take` and :func:`give` run with the GIL held (before and after the
compiled code's ``nogil`` section) and under a lock; a block is in one call's hands at a time.
"""

import threading

import numpy as np

from ._validation import _ALIGN_HUGE_PAGES, _HUGE_PAGE, _huge_page_aligned

__all__ = ["KEEP_BYTES", "SLACK_PER_BLOCK", "take", "give", "release", "idle_bytes"]

#: the most bytes of idle blocks the pool keeps between calls
KEEP_BYTES = 64 * 2**20
#: requests from this size on are rounded up to whole huge pages (2 MiB)
_LARGE = 2**20
#: the most a block's size exceeds its request by, untouched memory included: the rounding up
#: to 2 MiB, and the 2 MiB of slack that lets a block start on a 2 MiB boundary
SLACK_PER_BLOCK = 2 * _HUGE_PAGE
_SMALL_STEP = 64 * 2**10

_idle = []              # idle blocks, oldest first
_lock = threading.Lock()


def _block_bytes(nbytes):
    step = _HUGE_PAGE if nbytes >= _LARGE else _SMALL_STEP
    return max(-(-nbytes // step) * step, step)


def _new_block(size):
    if size >= _HUGE_PAGE and _ALIGN_HUGE_PAGES:
        return _huge_page_aligned((size,), np.uint8, size, False)
    return np.empty(size, dtype=np.uint8)


def take(nbytes, what="scratch"):
    """A 1-d ``uint8`` array of at least ``nbytes`` bytes, idle until :func:`give` takes it
    back (its contents are whatever its last user left; it starts on a 64-byte boundary
    only when it is 2 MiB or more: align inside it).

    Raises MemoryError, naming ``what`` and the size, when a new block cannot be allocated.
    """
    nbytes = int(nbytes)
    with _lock:
        fitting = [i for i, block in enumerate(_idle) if block.size >= nbytes]
        if fitting:
            return _idle.pop(min(fitting, key=lambda i: _idle[i].size))
    size = _block_bytes(nbytes)
    try:
        return _new_block(size)
    except MemoryError as exc:
        raise MemoryError(f"cannot allocate the {what} ({size} bytes)") from exc


def give(block):
    """Return ``block`` (from :func:`take`) to the pool; the oldest idle blocks are freed while
    the idle total would pass :data:`KEEP_BYTES` (a larger block is freed at once)."""
    if block is None or block.size > KEEP_BYTES:
        return
    with _lock:
        if any(b is block for b in _idle):
            raise ValueError("a scratch block was given back twice")
        _idle.append(block)
        while sum(b.size for b in _idle) > KEEP_BYTES:
            _idle.pop(0)


def release():
    """Free every idle block; returns the bytes released."""
    with _lock:
        freed = sum(b.size for b in _idle)
        _idle.clear()
    return freed


def idle_bytes():
    """Bytes of the idle blocks the pool keeps."""
    with _lock:
        return sum(b.size for b in _idle)
