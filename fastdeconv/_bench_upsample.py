"""Timing of the upsampling operators against PyTorch, side by side in one process.

Every case runs each peer in turn within every repetition (interleaved, so machine noise hits
both alike) after one warm-up call each, with the thread count pinned in BLAS/OpenMP
(threadpoolctl), in PyTorch (``torch.set_num_threads``) and in fastdeconv
(:func:`fastdeconv.set_num_threads`); the reported time is the median. The two results are
compared (``max |a - b|`` relative to ``max |b|``) so that a fast wrong answer shows.

Cases: 2x and 4x ``nearest`` / ``linear`` / ``cubic`` upsampling of a ``(16, 64, 64, 64)``
float32 batch (PyTorch: ``interpolate`` with ``scale_factor``; 2-D ``"bilinear"`` and
``"bicubic"``), 2x2 max pooling with indices and 2x2 max unpooling, and optionally their
gradients (PyTorch's ``upsample_*_backward``, ``max_pool2d_with_indices_backward`` and, for
``max_unpool``, the gather its autograd runs).

>>> from fastdeconv import _bench_upsample as b
>>> rows = b.run(shape=(1, 2, 8, 8), repeats=1, cases=["max_pool"], peers=["fastdeconv"])
>>> rows[0]["case"], rows[0]["fastdeconv"] > 0
('max_pool 2x2', True)
"""

import contextlib
import statistics
import sys
import time

import numpy as np

__all__ = ["CASES", "BACKWARD_CASES", "run", "format_table", "main"]

SHAPE = (16, 64, 64, 64)
CASES = ["nearest 2x", "linear 2x", "cubic 2x", "nearest 4x", "linear 4x", "cubic 4x",
         "max_pool", "max_unpool"]
BACKWARD_CASES = ["nearest 2x backward", "linear 2x backward", "cubic 2x backward",
                  "max_pool backward", "max_unpool backward"]
_TORCH_MODE = {"nearest": "nearest", "linear": "bilinear", "cubic": "bicubic"}


@contextlib.contextmanager
def _pinned(threads):
    import fastdeconv

    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch else None
    saved_fd = fastdeconv.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a test/bench dependency
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=threads)
    try:
        with limits:
            yield
    finally:
        fastdeconv.set_num_threads(saved_fd)
        if torch:
            torch.set_num_threads(saved_torch)


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


def run(*, shape=SHAPE, threads=1, repeats=7, cases=None, backward=False,
        peers=("fastdeconv", "torch"), stream=None):
    """Time every case; return one dict per case.

    Parameters
    ----------
    shape : tuple of int, default (16, 64, 64, 64)
        The float32 input batch ``(N, C, H, W)``.
    threads : int, default 1
        Thread count pinned in every library.
    repeats : int, default 7
        Timed repetitions (after one warm-up call); the median is reported.
    cases : sequence of str, optional
        Subset of :data:`CASES` (and :data:`BACKWARD_CASES`); default all forward cases.
    backward : bool, default False
        Also time the gradients (:data:`BACKWARD_CASES`) when ``cases`` is not given.
    peers : sequence of {"fastdeconv", "torch"}
        Libraries to time; a peer that cannot be imported is left out.
    stream : file, optional
        Progress lines go here (default: none).

    Returns
    -------
    list of dict
        Keys: ``case``, one key per peer (milliseconds), ``ratio`` (torch / fastdeconv, > 1
        when fastdeconv is faster) and ``max_rel_diff`` between the two results.
    """
    peers = list(peers)
    if "torch" in peers:
        try:
            import torch  # noqa: F401 - imported before the threads are pinned
        except ImportError:
            peers.remove("torch")
    if cases is None:
        cases = CASES + (BACKWARD_CASES if backward else [])
    unknown = [c for c in cases if c not in CASES + BACKWARD_CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {CASES + BACKWARD_CASES}")
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    rows = []
    with _pinned(threads):
        for case in cases:
            calls = _calls(case, x, peers)
            results = {peer: np.asarray(call()) for peer, call in calls.items()}   # warm-up
            times = {peer: [] for peer in calls}
            for _ in range(repeats):
                for peer, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[peer].append(time.perf_counter() - start)
            row = {"case": case + (" 2x2" if case in ("max_pool", "max_unpool") else "")}
            for peer in calls:
                row[peer] = 1e3 * statistics.median(times[peer])
            if "torch" in row and "fastdeconv" in row:
                row["ratio"] = row["torch"] / row["fastdeconv"]
                a, b = results["fastdeconv"], results["torch"]
                scale = max(float(np.max(np.abs(b))), 1e-30)
                row["max_rel_diff"] = float(np.max(np.abs(a - b))) / scale
            rows.append(row)
            if stream is not None:
                stream.write(f"{row['case']}: {row}\n")
                stream.flush()
    return rows


def format_table(rows, *, shape=SHAPE, threads=1):
    """The timings as a Markdown table (ms, and PyTorch's time over fastdeconv's)."""
    header = "| case | fastdeconv (ms) | torch (ms) | torch / fastdeconv | max rel diff |"
    lines = [f"float32 input {tuple(shape)}, {threads} thread(s), median of interleaved "
             "repetitions", "", header, "|---|---:|---:|---:|---:|"]
    for row in rows:
        fd = f"{row['fastdeconv']:.1f}" if "fastdeconv" in row else "-"
        tt = f"{row['torch']:.1f}" if "torch" in row else "-"
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "-"
        diff = f"{row['max_rel_diff']:.1e}" if "max_rel_diff" in row else "-"
        lines.append(f"| {row['case']} | {fd} | {tt} | {ratio} | {diff} |")
    return "\n".join(lines)


def main(argv=None):
    """``python -m fastdeconv._bench_upsample [--threads N] [--repeats N] [--backward]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastdeconv._bench_upsample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backward", action="store_true", help="also time the gradients")
    args = parser.parse_args(argv)
    rows = run(threads=args.threads, repeats=args.repeats, backward=args.backward,
               stream=sys.stderr)
    print(format_table(rows, threads=args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
