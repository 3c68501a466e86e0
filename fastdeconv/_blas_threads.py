"""Hold SciPy's BLAS to one thread while fastdeconv kernels run.

Why: a multithreaded OpenBLAS GEMM partitions its matrices by thread count, and elements that
land in edge tiles take a different kernel and summation order, so ``A @ B`` changes in the last
bits between 1 and 2 BLAS threads. fastdeconv promises the same bits whatever the thread count,
so it parallelises GEMMs itself (fixed pieces, one single-threaded BLAS call each, spread over
OpenMP threads; ``_gemm.parallel_gemm``) and keeps BLAS single-threaded meanwhile.

How: the thread setter of the OpenBLAS that ``scipy.linalg.cython_blas`` calls is looked up at
run time with ctypes (fastdeconv links no BLAS). ``openblas_set_num_threads_local`` is process
global in pthreads builds, so the global setter is used with a reference count: the first
kernel call that enters sets one thread, the last one that leaves restores the previous count.
Other SciPy BLAS/LAPACK calls made by other Python threads in that window run single-threaded.
NumPy's own OpenBLAS is a separate library and is not touched.

When no OpenBLAS is found (SciPy built against MKL or Accelerate), :data:`CONTROLLED` is False,
fastdeconv runs its GEMM pieces one after another and lets BLAS thread as it likes; results are
then bit-identical only for a fixed BLAS thread count. :func:`fastdeconv.show_config` reports it.
"""

import ctypes
import os
import threading
from contextlib import contextmanager

__all__ = ["CONTROLLED", "LIBRARY", "single_threaded_blas"]

# (setter, getter) names: scipy-openblas wheels prefix their symbols; other builds do not.
_SYMBOLS = (
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _scipy_library_candidates():
    """Shared libraries loaded from SciPy's directories (Linux: /proc/self/maps)."""
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (make sure its BLAS is loaded)

    roots = {os.path.dirname(os.path.realpath(scipy.__file__))}
    roots |= {root.rstrip(os.sep) + suffix for root in list(roots) for suffix in (".libs", os.sep + ".dylibs")}
    site = os.path.dirname(next(iter(roots)))
    roots.add(os.path.join(site, "scipy.libs"))
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if "/" in line else ""
                if "blas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:  # not Linux
        pass
    for root in roots:
        if os.path.isdir(root):
            for name in sorted(os.listdir(root)):
                path = os.path.join(root, name)
                if "blas" in name.lower() and path not in paths:
                    paths.append(path)
    # SciPy's own libraries first (NumPy bundles a separate, 64-bit integer OpenBLAS), and the
    # OpenBLAS file itself before modules that merely link it.
    return sorted(paths, key=lambda p: (not any(p.startswith(r) for r in roots),
                                        "openblas" not in os.path.basename(p).lower()))


def _find_controls():
    try:
        candidates = _scipy_library_candidates()
    except Exception:  # pragma: no cover - unusual SciPy installs
        return None, None, None
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter = getattr(lib, set_name, None)
            getter = getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return path, setter, getter
    return None, None, None


LIBRARY, _set_threads, _get_threads = _find_controls()
#: True when fastdeconv can hold SciPy's BLAS to one thread (see the module docstring).
CONTROLLED = _set_threads is not None

_lock = threading.Lock()
_depth = 0
_saved = 1


@contextmanager
def single_threaded_blas():
    """Context in which SciPy's OpenBLAS runs single-threaded (re-entrant, thread-safe)."""
    global _depth, _saved
    if not CONTROLLED:
        yield False
        return
    with _lock:
        if _depth == 0:
            _saved = _get_threads()
            if _saved != 1:
                _set_threads(1)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                _set_threads(_saved)
