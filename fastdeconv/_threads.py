"""How many threads fastdeconv's kernels use: one setting for every operator.

By default the kernels use OpenMP's maximum thread count, which follows ``OMP_NUM_THREADS`` and
``threadpoolctl.threadpool_limits(user_api="openmp")``. :func:`set_num_threads` overrides it
for the whole process. Results are bit-identical whatever the count (see the docs' Performance
page): every parallel loop splits its work by shape, never by thread count.
"""

import os
import threading

from ._ext import _runtime
from ._validation import check_int

__all__ = ["get_num_threads", "kernel_threads", "set_num_threads", "num_threads"]

#: Largest thread count :func:`set_num_threads` accepts.
MAX_THREADS = 2**15
#: The kernels never start more threads than this: OpenMP creates a whole team per parallel
#: loop whatever its length, and tens of thousands of threads exhaust the system (measured: a
#: fuzzed set_num_threads(30000) then one call killed the process). Four per CPU still lets
#: tests check that results do not depend on the thread count.
EFFECTIVE_MAX_THREADS = max(4, 4 * (os.cpu_count() or 1))

_lock = threading.Lock()
_override = None


def num_threads():
    """Threads for the next kernel call: the override, else OpenMP's current maximum, at most
    :data:`EFFECTIVE_MAX_THREADS`."""
    override = _override
    wanted = override if override is not None else _runtime.max_threads()
    return min(wanted, EFFECTIVE_MAX_THREADS)


def kernel_threads():
    """Threads to pass to the next kernel call: :func:`num_threads`, at least 1 (the one
    helper every operator's Python layer uses)."""
    return max(1, num_threads())


def get_num_threads():
    """Number of threads fastdeconv's kernels use (1 when built without OpenMP).

    Examples
    --------
    >>> import fastdeconv
    >>> fastdeconv.get_num_threads() >= 1
    True
    """
    return num_threads() if _runtime.HAVE_OPENMP else 1


def set_num_threads(n):
    """Set the number of threads of fastdeconv's kernels; ``None`` restores the default.

    Parameters
    ----------
    n : int or None
        A positive count, a negative count (``-1`` is every available thread, ``-2`` all but
        one, as in scikit-learn; below ``-(CPUs)``, one thread), or ``None`` for OpenMP's
        maximum (``OMP_NUM_THREADS``). The kernels use at most 4 threads per CPU
        (``EFFECTIVE_MAX_THREADS``) whatever is set: :func:`get_num_threads` reports the
        count they use.

    Returns
    -------
    previous : int or None
        The previous setting, to pass back to restore it.

    Raises
    ------
    ValueError
        If ``n`` is 0 or larger than 32768 (``MAX_THREADS``).
    TypeError
        If ``n`` is not an int or None.

    Examples
    --------
    >>> import fastdeconv
    >>> previous = fastdeconv.set_num_threads(1)
    >>> fastdeconv.get_num_threads()
    1
    >>> _ = fastdeconv.set_num_threads(previous)
    """
    global _override
    if n is not None:
        n = check_int(n, "n")
        if n == 0:
            raise ValueError("n = 0 threads is invalid: use a positive count, -1 for all, or None")
        if n > MAX_THREADS:  # the kernels take a C int; OpenMP could not start that many anyway
            raise ValueError(f"n = {n} threads is too many: at most {MAX_THREADS}")
        if n < 0:
            import os

            n = max(1, (os.cpu_count() or 1) + 1 + n)
    with _lock:
        previous, _override = _override, n
    return previous
