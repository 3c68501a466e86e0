"""Shared pieces of the asv benchmarks: safe imports, the layer suite, thread pinning.

The layer suite (one operator call per case, as real networks make them) is the one
``python -m fastdeconv bench`` runs: ``suite.json``, package data of ``fastdeconv._bench``, read
from the fastdeconv being benchmarked (``importlib.resources``), or from this checkout when that
fastdeconv cannot be imported or predates the file. The environment variable
``FASTDECONV_BENCH_SUITE`` names another file to use instead.

Set ``ASV_SKIP_SLOW=1`` to skip the float64 grid points.
"""

import abc
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["CaseSuite", "DTYPES", "SUITE_ENV", "alternate_medians", "case_names", "grid_setup",
           "load_suite", "safe_import"]

SUITE_ENV = "FASTDECONV_BENCH_SUITE"
#: The suite in the checkout the benchmarks come from (the same file as the package data).
CHECKOUT_SUITE = Path(__file__).resolve().parents[1] / "fastdeconv" / "_bench" / "suite.json"
DTYPES = ["float32", "float64"]
SEED = 1234
# Suite op -> op name understood by fastdeconv._conv.workspace_bytes.
_WORKSPACE_OP = {"conv": "conv", "conv_transpose": "conv_transpose", "conv_wgrad": "conv_backward",
                 "conv_backward": "conv_backward"}


class safe_import:
    """Context manager that lets a benchmark module import when the commit lacks a name.

    An ``ImportError`` inside the block is swallowed and kept as ``error`` (the benchmarks
    then skip themselves and say why); set ``FASTDECONV_BENCH_STRICT_IMPORTS=1`` to let it
    propagate. Same idea as SciPy's
    ``benchmarks/common.py::safe_import``.
    """

    def __enter__(self):
        self.error = False
        return self

    def __exit__(self, type_, value, traceback):
        if type_ is None:
            return False
        self.error = value
        strict = os.environ.get("FASTDECONV_BENCH_STRICT_IMPORTS", "") not in ("", "0")
        return issubclass(type_, ImportError) and not strict


fastdeconv = None
with safe_import() as _fastdeconv_import:
    import fastdeconv  # noqa: F811 - loaded before threads are pinned, so its OpenMP is too


def load_suite():
    """Cases of the suite, by name (see the module docstring for where they come from)."""
    if os.environ.get(SUITE_ENV):
        text = Path(os.environ[SUITE_ENV]).read_text(encoding="utf-8")
    else:
        try:
            text = resources.files("fastdeconv._bench").joinpath("suite.json").read_text(
                encoding="utf-8")
        except (ImportError, OSError, TypeError):
            # fastdeconv is not importable (its benchmarks skip themselves) or the commit is
            # older than the packaged file: the checkout's copy
            text = CHECKOUT_SUITE.read_text(encoding="utf-8")
    return {case["name"]: case for case in json.loads(text)["cases"]}


SUITE = load_suite()


def case_names(op):
    """Names of the suite's cases of one op (``conv_transpose``, ``conv`` or ``conv_wgrad``)."""
    return [name for name, case in SUITE.items() if case["op"] == op]


class CaseSuite(abc.ABC):
    """Base of the per-op suites: one grid point per (suite case, dtype).

    ``setup`` pins every BLAS and OpenMP pool to one thread, draws seeded operands and the
    keyword arguments of the call; subclasses time :meth:`run`. The class is abstract, so asv
    does not collect it as a benchmark of its own.
    """

    #: Suite op whose cases this class runs; set by subclasses.
    op = None
    param_names = ["case", "dtype"]
    timeout = 120
    _threads = None  # threadpoolctl limits set by setup, undone by teardown

    def setup(self, case, dtype):
        if fastdeconv is None:
            raise NotImplementedError(f"fastdeconv is not importable: {_fastdeconv_import.error}")
        if dtype == "float64" and os.environ.get("ASV_SKIP_SLOW", "") not in ("", "0"):
            raise NotImplementedError("ASV_SKIP_SLOW is set")
        self._threads = threadpool_limits(limits=1)
        spec = SUITE[case]
        ndim = len(spec["spatial"])
        groups = spec["groups"]
        self.kwargs = {"stride": spec["s"], "padding": spec["p"], "dilation": spec["d"],
                       "groups": groups}
        kernel = (spec["k"],) * ndim
        if self.op == "conv_transpose":
            self.kwargs["output_padding"] = spec["output_padding"]
            weight_shape = (spec["Cin"], spec["Cout"] // groups) + kernel
        else:
            weight_shape = (spec["Cout"], spec["Cin"] // groups) + kernel
        rng = np.random.default_rng(SEED)
        self.x = rng.standard_normal((spec["N"], spec["Cin"], *spec["spatial"]), dtype=dtype)
        self.weight = rng.standard_normal(weight_shape, dtype=dtype)
        if self.op in ("conv_wgrad", "conv_backward"):
            out_shape = fastdeconv.conv(self.x, self.weight, **self.kwargs).shape
            self.grad_output = rng.standard_normal(out_shape, dtype=dtype)
        self.dtype = dtype

    def teardown(self, case, dtype):
        if self._threads is not None:  # asv also calls teardown after a skipping setup
            self._threads.restore_original_limits()

    @abc.abstractmethod
    def run(self):
        """The timed call."""

    def peakmem_reference(self, case, dtype):
        """Empty: asv's peak memory includes what ``setup`` allocated; this is the baseline."""

    def track_workspace_bytes(self, case, dtype):
        """Bytes of the im2col/col2im tile workspace one call allocates (NaN if unknown)."""
        conv_module = getattr(fastdeconv, "_conv", None)
        workspace_bytes = getattr(conv_module, "workspace_bytes", None)
        if workspace_bytes is None:
            return float("nan")
        return workspace_bytes(_WORKSPACE_OP[self.op], self.x.shape, self.weight.shape,
                               dtype=self.dtype, **self.kwargs)

    track_workspace_bytes.unit = "bytes"


def alternate_medians(first, second, reps):
    """Median thread CPU milliseconds of two calls timed in turn: the rule grids' timing
    (``packed_phases_grid.py``, ``packed_wgrad_grid.py``).

    Parameters
    ----------
    first, second : callable
        Zero-argument calls; each is called once to warm up, then ``reps`` times, the two in
        turn (their order reversed every other round).
    reps : int
        Timed calls of each.

    Returns
    -------
    (float, float)
        The median milliseconds of ``first`` and of ``second``, thread CPU time (with one
        thread it leaves out the time a shared machine takes the core away).
    """
    import statistics
    import time

    first(), second()
    times = ([], [])
    for r in range(reps):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            call = (first, second)[i]
            start = time.thread_time()
            call()
            times[i].append(time.thread_time() - start)
    return tuple(1e3 * statistics.median(t) for t in times)


def grid_setup(argv):
    """The rule grids' common start: one thread everywhere, and their arguments.

    Parameters
    ----------
    argv : list of str
        ``[dtype [repetitions]]`` (default ``float32`` and 7).

    Returns
    -------
    (numpy.dtype, int, list of dict)
        The dtype, the repetitions and the cases of the layer suite packaged with the
        fastdeconv being measured (``suite.json``), as written there.
    """
    import fastdeconv

    threadpool_limits(1)
    fastdeconv.set_num_threads(1)
    suite = Path(fastdeconv.__file__).parent / "_bench" / "suite.json"
    dtype = np.dtype(argv[0] if argv else "float32")
    reps = int(argv[1]) if len(argv) > 1 else 7
    return dtype, reps, json.loads(suite.read_text())["cases"]
