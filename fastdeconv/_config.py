"""Build and run-time configuration report (:func:`show_config`)."""

import os
import platform
import sys

import numpy as np
import scipy

__all__ = ["show_config", "config"]


def _build_info():
    try:
        from ._build_info import BUILD_INFO
    except ImportError:  # running from a source tree that was never built by setup.py
        return {}
    return dict(BUILD_INFO)


def _blas_info():
    """What SciPy's BLAS is (fastdeconv calls it through scipy.linalg.cython_blas)."""
    info = {}
    try:
        deps = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {"name": deps.get("name"), "version": deps.get("version"),
                "configuration": deps.get("openblas configuration")}
    except Exception:  # pragma: no cover - very old SciPy
        info = {"name": "unknown"}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["threads"] = "unknown (install threadpoolctl to see it)"
    else:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        info["threads"] = ", ".join(
            f"{os.path.basename(p['filepath'])} ({p['internal_api']} {p.get('version')}, "
            f"{p.get('architecture')} kernels): {p['num_threads']}" for p in pools) or "unknown"
    from . import _blas_threads

    info["library"] = _blas_threads.LIBRARY
    info["held to one thread during kernels"] = _blas_threads.CONTROLLED
    return info


def _engine_info():
    """The packed GEMM engine's kernel (FASTDECONV_GEMM_KERNEL may force one) and the direct
    convolution's register tiles (output positions x output channels) with it."""
    try:
        from ._ext import _packed_gemm
    except (ImportError, ValueError) as exc:  # not built, or a bad FASTDECONV_GEMM_KERNEL
        return {"kernel": f"unavailable ({exc})"}
    from ._ext import _direct_conv

    tiles = {name: _direct_conv.tile(name) for name in ("float32", "float64")}
    return {"kernel": _packed_gemm.kernel_name(),
            "supported": ", ".join(_packed_gemm.supported_kernels()),
            "direct convolution": "; ".join(f"{name} {t['MR']}x{t['NR']}"
                                            for name, t in tiles.items())}


def config():
    """Return the configuration report as a nested dict (see :func:`show_config`)."""
    from . import __version__
    from ._ext import _runtime

    build = _build_info()
    return {
        "fastdeconv": {"version": __version__, "path": __file__.rsplit("/", 1)[0]},
        "python": {"version": sys.version.split()[0], "implementation": platform.python_implementation(),
                   "platform": platform.platform()},
        "dependencies": {"numpy": np.__version__, "scipy": scipy.__version__},
        "build": build,
        "openmp": {"compiled": bool(_runtime.HAVE_OPENMP), "max_threads": _runtime.max_threads()},
        "blas": _blas_info(),
        "packed gemm": _engine_info(),
    }


def show_config():
    """Print versions, the build (compiler flags, OpenMP) and the BLAS that fastdeconv uses.

    Examples
    --------
    >>> import fastdeconv
    >>> fastdeconv.show_config()  # doctest: +SKIP
    fastdeconv:
      version: 0.1.0
    ...
    """
    for section, values in config().items():
        print(f"{section}:")
        for key, value in values.items():
            print(f"  {key}: {value}")
