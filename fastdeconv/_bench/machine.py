"""What a bench result depends on besides the code: the CPU, the BLAS and its kernels, the
environment of the worker pools, and the GEMM peak and copy bandwidth of this process."""

import math
import os
import platform
import time

import numpy as np

__all__ = ["GEMM_SIZE", "POOL_ENVIRONMENT", "describe_setup", "measure_machine"]

GEMM_SIZE = 2048
_COPY_BYTES = 1 << 27  # 128 MiB: well beyond any last-level cache
_SEED = 1234

#: Environment variables that decide how idle worker pools wait; recorded with the results.
POOL_ENVIRONMENT = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _best_seconds(fn, calls):
    fn()
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_machine(dtype="float32"):
    """Measure the GEMM peak and the copy bandwidth under the current thread pin.

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Dtype of the 2048 x 2048 ``np.matmul``.

    Returns
    -------
    dict
        ``gemm_gflops`` (best of 3 after a warm-up), ``bandwidth_gbs`` (bytes read plus
        written by a 128 MiB ``np.copyto``, best of 5) and ``blas`` (the BLAS libraries loaded
        and the kernel architecture each one selected, from threadpoolctl).
    """
    rng = np.random.default_rng(_SEED)
    a, b = (rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.dtype(dtype)) for _ in "ab")
    c = np.empty_like(a)
    seconds = _best_seconds(lambda: np.matmul(a, b, out=c), 3)
    gemm_gflops = 2 * GEMM_SIZE ** 3 / seconds / 1e9
    src = np.ones(_COPY_BYTES // 8)
    dst = np.empty_like(src)
    seconds = _best_seconds(lambda: np.copyto(dst, src), 5)
    return {"gemm_gflops": gemm_gflops, "bandwidth_gbs": 2 * src.nbytes / seconds / 1e9,
            "blas": _blas_description()}


def _blas_description():
    """The BLAS libraries loaded and the kernels they chose, e.g. ``openblas Haswell x2``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    kinds = [f"{lib['internal_api']} {lib.get('architecture') or '?'}"
             for lib in threadpool_info() if lib["user_api"] == "blas"]
    return ", ".join(f"{kind} x{kinds.count(kind)}" if kinds.count(kind) > 1 else kind
                     for kind in dict.fromkeys(kinds))


def _cpu_description():
    """CPU model, logical CPUs and system, e.g. ``Intel(R) Xeon(R) Processor, 2 CPUs, Linux``."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh
                          if line.startswith("model name")), None)
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "?"
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def describe_setup(dtype, threads):
    """The facts every bench table states in its header (the keys of every result row).

    Returns
    -------
    dict
        ``dtype``, ``threads``, ``cpu``, ``blas`` (libraries and kernel types loaded),
        ``blas_coretype`` (``OPENBLAS_CORETYPE`` if set, else None) and ``environment`` (the
        :data:`POOL_ENVIRONMENT` variables that are set).
    """
    return {"dtype": dtype, "threads": threads, "cpu": _cpu_description(),
            "blas": _blas_description(), "blas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "environment": {k: os.environ[k] for k in POOL_ENVIRONMENT if k in os.environ}}
