"""Timing shared by every bench mode: thread pinning, interleaved repetitions, progress bar.

Every peer's call runs once (warm-up, whose result is also compared with the first peer's),
then each repetition times every peer in turn, so that machine noise hits all of them alike,
in a balanced order (:func:`balanced_orders`), so that no peer keeps following the same other
one (what a call leaves behind, in the caches and the allocator, slows the next); the reported
time is the median of a peer's timed calls.
"""

import contextlib
import math
import statistics
import sys
import time

import numpy as np

__all__ = ["DTYPES", "TRANSITION_CALLS", "Progress", "balanced_orders", "check_options",
           "pinned_threads", "rel_diff", "time_peers"]

DTYPES = ("float32", "float64")

#: With more than one thread, each timed call follows one untimed call of the same peer:
#: worker pools that spin after a call (OpenBLAS's for about 2**28 cycles, OpenMP's, ONNX
#: Runtime's) would otherwise take the cores from the peer timed next; a pause instead (pools
#: asleep) would make every peer pay cold wake-ups.
TRANSITION_CALLS = 1


def check_options(dtype, threads, repeat, repeat_name="repeat"):
    """ValueError naming the option unless dtype, threads and repeat are valid."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if not (isinstance(repeat, int) and repeat >= 1):
        raise ValueError(f"{repeat_name} must be a positive int, got {repeat!r}")


@contextlib.contextmanager
def pinned_threads(threads):
    """Limit BLAS, OpenMP, fastdeconv and PyTorch's intra-op pool to ``threads`` threads.

    Every library must be imported before: threadpoolctl only limits the runtimes already
    loaded. ONNX Runtime takes its thread count per session (see the ``onnxruntime`` peer).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise RuntimeError("the benchmark needs threadpoolctl to pin threads: "
                           "pip install threadpoolctl") from None
    import fastdeconv

    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch else None
    saved_fastdeconv = fastdeconv.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        fastdeconv.set_num_threads(saved_fastdeconv)
        if torch:
            torch.set_num_threads(saved_torch)


def rel_diff(result, reference):
    """``max|result - reference| / max|reference|`` in float64 (inf on a shape mismatch)."""
    result = np.asarray(result, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if result.shape != reference.shape:
        return math.inf
    scale = np.max(np.abs(reference)) if reference.size else 0.0
    return float(np.max(np.abs(result - reference)) / scale) if scale else 0.0


class Progress:
    """A progress bar: one updating line on ``stream`` when it is a terminal, else nothing.

    Parameters
    ----------
    total : int
        Steps of the whole run.
    stream : file, optional
        Where to draw (``sys.stderr`` for the command line); None draws nothing.
    """

    def __init__(self, total, stream=None, width=30):
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.stream, self.total, self.width, self.done = stream, max(total, 1), width, 0
        self.start = time.perf_counter()

    def step(self, label="", advance=1):
        """Advance by ``advance`` steps and show ``label`` (what runs now)."""
        self.done = min(self.done + advance, self.total)
        if self.enabled:
            filled = self.width * self.done // self.total
            elapsed = int(time.perf_counter() - self.start)
            self.stream.write(f"\r[{'#' * filled}{'-' * (self.width - filled)}] "
                              f"{self.done}/{self.total} {elapsed // 60}:{elapsed % 60:02d} "
                              f"{label:<32.32}")
            self.stream.flush()

    def close(self):
        """Erase the bar, so that what is printed next starts on a clean line."""
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + 52) + "\r")
            self.stream.flush()


def balanced_orders(n):
    """Orders of ``n`` peers (lists of their indices) in which each peer directly follows
    each other one equally often: a Williams design, ``n`` orders for an even ``n`` (each
    ordered pair once), ``2 n`` for an odd one (twice); repetition ``r`` takes order
    ``r % len``. In the first five orders no peer follows the same other one more than
    twice, so that one neighbour never sets a median of five.
    """
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    orders = [[(i + shift) % n for i in first] for shift in range(n)] if n else [[]]
    if n % 2:
        orders += [order[::-1] for order in orders]
    return orders


def time_peers(calls, *, repeat, budget, threads, progress, label):
    """Warm up, compare and time zero-argument callables, interleaved.

    Parameters
    ----------
    calls : dict
        Peer name -> callable performing one operator call and returning its result.
    repeat : int
        Timed calls per peer at most.
    budget : float or None
        Seconds per peer: a peer whose warm-up call took ``t`` seconds is timed
        ``max(1, min(repeat, budget // t))`` times; None times every peer ``repeat`` times.
    threads : int
        Threads of the run (more than one adds :data:`TRANSITION_CALLS` before each timed call).
    progress : Progress
        Advanced once after the warm-ups and once per repetition.
    label : str
        What the progress bar shows (the case name).

    Returns
    -------
    dict
        ``ms`` (peer -> median milliseconds), ``repeats`` (peer -> timed calls), ``failed``
        (peer -> error of its warm-up call), ``reference`` (the first peer whose warm-up call
        succeeded), ``rel_diff`` (peer -> :func:`rel_diff` of its result to the reference's)
        and ``max_rel_diff`` (None with fewer than two peers).
    """
    results, repeats, failed = {}, {}, {}
    for peer, fn in calls.items():
        progress.step(f"{label} warm-up {peer}", advance=0)
        try:
            start = time.perf_counter()
            results[peer] = np.asarray(fn())
            first = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - a failing peer is reported, not fatal
            failed[peer] = f"{type(exc).__name__}: {exc}"
            continue
        repeats[peer] = max(1, min(repeat, int(budget / first))) if budget else repeat
    progress.step(f"{label} warm-up")
    calls = {peer: fn for peer, fn in calls.items() if peer not in failed}

    reference = next(iter(results), None)
    diffs = {peer: rel_diff(out, results[reference])
             for peer, out in results.items() if peer != reference}
    del results

    samples = {peer: [] for peer in calls}
    transition = TRANSITION_CALLS if threads > 1 else 0
    names = list(calls)
    orders = balanced_orders(len(names))
    for rep in range(repeat):
        # a balanced order, so that no peer keeps running right after the same other one (the
        # call right after plain NumPy's measured 0.4 ms slower, whichever peer made it)
        for peer in (names[i] for i in orders[rep % len(orders)]):
            fn = calls[peer]
            if len(samples[peer]) < repeats[peer]:
                for _ in range(transition):
                    fn()
                start = time.perf_counter()
                fn()
                samples[peer].append(time.perf_counter() - start)
        progress.step(f"{label} {rep + 1}/{repeat}")

    return {"ms": {peer: 1e3 * statistics.median(times) for peer, times in samples.items()},
            "repeats": repeats, "failed": failed, "reference": reference, "rel_diff": diffs,
            "max_rel_diff": max(diffs.values(), default=None)}
