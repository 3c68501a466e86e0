"""Timing of the upsampling operators against PyTorch, side by side in one process.

The cases run as the layer suite's do (:mod:`fastdeconv._bench.timing`): each peer in turn
within every repetition, after one warm-up call each, with the thread count pinned in every
library; the reported time is the median, and the results are compared (``max |a - b|``
relative to ``max |b|``) so that a fast wrong answer shows.

Cases: 2x and 4x ``nearest`` / ``linear`` / ``cubic`` upsampling of a ``(16, 64, 64, 64)``
float32 batch (PyTorch: ``interpolate`` with ``scale_factor``; 2-D ``"bilinear"`` and
``"bicubic"``), 2x2 max pooling with indices and 2x2 max unpooling, and optionally their
gradients (PyTorch's ``upsample_*_backward``, ``max_pool2d_with_indices_backward`` and, for
``max_unpool``, the gather its autograd runs). On the command line
(``python -m fastdeconv bench --upsampling``) a case is named with ``_`` for the spaces
(``nearest_2x``, ``cubic_2x_backward``).

>>> from fastdeconv._bench import upsampling
>>> rows = upsampling.run(shape=(1, 2, 8, 8), repeats=1, cases=["max_pool"], peers=["fastdeconv"])
>>> rows[0]["case"], rows[0]["fastdeconv"] > 0
('max_pool 2x2', True)
"""

import sys

import numpy as np

from .machine import describe_setup
from .peers import PeerUnavailable, require
from .table import format_report
from .timing import Progress, check_options, pinned_threads, time_peers

__all__ = ["BACKWARD_CASES", "CASES", "PEERS", "SHAPE", "format_table", "run", "select"]

SHAPE = (16, 64, 64, 64)
PEERS = ("fastdeconv", "torch")
CASES = ["nearest 2x", "linear 2x", "cubic 2x", "nearest 4x", "linear 4x", "cubic 4x",
         "max_pool", "max_unpool"]
BACKWARD_CASES = ["nearest 2x backward", "linear 2x backward", "cubic 2x backward",
                  "max_pool backward", "max_unpool backward"]
_TORCH_MODE = {"nearest": "nearest", "linear": "bilinear", "cubic": "bicubic"}


def select(selectors):
    """Cases named by ``selectors`` (a sequence, or one comma-separated string): names as in
    :data:`CASES` or with ``_`` for the spaces.

    Returns the cases in the order of :data:`CASES` then :data:`BACKWARD_CASES`; an unknown
    name is a ValueError listing the known ones.
    """
    if isinstance(selectors, str):
        selectors = selectors.split(",")
    known = CASES + BACKWARD_CASES
    by_key = {case.replace("_", " "): case for case in known}
    names = [name.strip() for name in selectors if name.strip()]
    wanted = {name.replace("_", " ") for name in names}
    unknown = [name for name in names if name.replace("_", " ") not in by_key]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from "
                         f"{[case.replace(' ', '_') for case in known]}")
    return [by_key[key] for key in by_key if key in wanted]


def _calls(case, x, peers):
    """{peer: zero-argument callable returning an array} for one case, operands prepared."""
    import fastdeconv

    backward = case.endswith(" backward")
    name = case[: -len(" backward")] if backward else case
    torch = sys.modules.get("torch") if "torch" in peers else None
    xt = torch.from_numpy(x) if torch is not None else None
    calls = {}
    if name.startswith("max_pool") or name.startswith("max_unpool"):
        y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
        yt, it = (torch.from_numpy(y), torch.from_numpy(idx)) if torch is not None else (None,) * 2
        if name == "max_pool" and not backward:
            calls["fastdeconv"] = lambda: fastdeconv.max_pool(x, 2, return_indices=True)[0]
            if torch is not None:
                calls["torch"] = lambda: torch.nn.functional.max_pool2d(
                    xt, 2, return_indices=True)[0]
        elif name == "max_pool":
            calls["fastdeconv"] = lambda: fastdeconv.max_pool_backward(y, idx, x.shape)
            if torch is not None:
                calls["torch"] = lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                    yt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, it)
        elif not backward:
            calls["fastdeconv"] = lambda: fastdeconv.max_unpool(y, idx, 2)
            if torch is not None:
                calls["torch"] = lambda: torch.nn.functional.max_unpool2d(yt, it, 2)
        else:
            calls["fastdeconv"] = lambda: fastdeconv.max_unpool_backward(x, idx)
            if torch is not None:   # what autograd runs for max_unpool2d: a gather
                calls["torch"] = lambda: torch.gather(xt.flatten(2), 2, it.flatten(2)).view(
                    it.shape)
        return calls
    mode, factor = name.split()
    scale = float(factor.rstrip("x"))
    if not backward:
        calls["fastdeconv"] = lambda: fastdeconv.resize(x, scale_factor=scale, mode=mode)
        if torch is not None:
            calls["torch"] = lambda: torch.nn.functional.interpolate(
                xt, scale_factor=scale, mode=_TORCH_MODE[mode])
        return calls
    out = tuple(int(n * scale) for n in x.shape[2:])
    g = np.random.default_rng(1).standard_normal(x.shape[:2] + out, dtype=x.dtype)
    calls["fastdeconv"] = lambda: fastdeconv.resize_backward(g, x.shape, scale_factor=scale,
                                                             mode=mode)
    if torch is not None:
        gt = torch.from_numpy(g)
        op = {"nearest": torch.ops.aten.upsample_nearest2d_backward,
              "linear": torch.ops.aten.upsample_bilinear2d_backward,
              "cubic": torch.ops.aten.upsample_bicubic2d_backward}[mode]
        if mode == "nearest":
            calls["torch"] = lambda: op(gt, list(out), list(x.shape), scale, scale)
        else:
            calls["torch"] = lambda: op(gt, list(out), list(x.shape), False, scale, scale)
    return calls


def run(*, shape=SHAPE, threads=1, repeats=7, cases=None, backward=False, peers=PEERS,
        stream=None, dtype="float32", progress=False, quick=False, budget=None):
    """Time every case; return one dict per case.

    Parameters
    ----------
    shape : tuple of int, default (16, 64, 64, 64)
        The input batch ``(N, C, H, W)``.
    threads : int, default 1
        Thread count pinned in every library.
    repeats : int, default 7
        Timed repetitions (after one warm-up call); the median is reported.
    cases : sequence of str, optional
        Subset of :data:`CASES` (and :data:`BACKWARD_CASES`), also with ``_`` for the spaces;
        default all forward cases.
    backward : bool, default False
        Also time the gradients (:data:`BACKWARD_CASES`) when ``cases`` is not given.
    peers : sequence of {"fastdeconv", "torch"}
        Libraries to time; a peer that cannot be imported is left out.
    stream : file, optional
        Where the progress bar is drawn, when it is a terminal (default: stderr with
        ``progress``, else nowhere).
    dtype : {"float32", "float64"}, default "float32"
        Dtype of the input batch.
    progress : bool, default False
        Draw a progress bar on stderr when it is a terminal.
    quick : bool, default False
        At most 3 repetitions and a 2 s budget per peer and case.
    budget : float, optional
        Seconds per peer and case, as for the layer suite; default: every peer is timed
        ``repeats`` times (2 s with ``quick``).

    Returns
    -------
    list of dict
        Keys: ``case``, one key per peer (milliseconds), ``ratio`` (torch / fastdeconv, > 1
        when fastdeconv is faster), ``max_rel_diff`` between the two results (None with one
        peer), and as in the layer suite's rows ``ms``, ``repeats``, ``skipped``,
        ``reference``, ``rel_diff``, ``shape``, ``versions`` and the setup (``dtype``,
        ``threads``, ``cpu``, ``blas``, ``blas_coretype``, ``environment``).
    """
    check_options(dtype, threads, repeats, "repeats")
    peers = list(dict.fromkeys(peers))
    unknown = [peer for peer in peers if peer not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown} for the upsampling bench; "
                         f"choose from {PEERS}")
    versions, skipped = {}, {}
    for peer in peers:  # imported before the threads are pinned
        try:
            versions[peer] = getattr(require(peer), "__version__", "?")
        except PeerUnavailable as exc:
            skipped[peer] = str(exc)
    peers = [peer for peer in peers if peer not in skipped]
    cases = select(cases) if cases is not None else CASES + (BACKWARD_CASES if backward else [])
    if quick:
        repeats, budget = min(repeats, 3), 2.0 if budget is None else budget
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.dtype(dtype))
    setup = dict(describe_setup(dtype, threads), versions=versions,
                 shape=tuple(shape))
    bar = Progress(len(cases) * (1 + repeats),
                   stream if stream is not None else sys.stderr if progress else None)
    rows = []
    try:
        with pinned_threads(threads):
            for case in cases:
                label = case + (" 2x2" if case in ("max_pool", "max_unpool") else "")
                timed = time_peers(_calls(case, x, peers), repeat=repeats, budget=budget,
                                   threads=threads, progress=bar, label=label)
                failed = timed.pop("failed")
                row = {"case": label, **timed["ms"], **timed, **setup,
                       "skipped": dict(skipped, **failed)}
                if "torch" in row["ms"] and "fastdeconv" in row["ms"]:
                    row["ratio"] = row["torch"] / row["fastdeconv"]
                rows.append(row)
    finally:
        bar.close()
    return rows


def format_table(rows, *, shape=None, threads=None):
    """The timings in the bench format (:mod:`fastdeconv._bench.table`).

    ``shape`` and ``threads`` default to those recorded in the rows.
    """
    if not rows:
        return "(no results)"
    first = dict(rows[0], **({"threads": threads} if threads is not None else {}))
    shape = tuple(first.get("shape", SHAPE) if shape is None else shape)
    return format_report([first] + list(rows[1:]),
                         title=f"fastdeconv bench --upsampling: {len(rows)} case(s)",
                         peers=PEERS, columns=[("case", "l", lambda row: row["case"])],
                         setup=[("input", f"{shape} batch")])
