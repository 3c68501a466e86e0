"""Side-by-side benchmark of fastdeconv and its peers on the layer suite.

This is the engine behind ``python -m fastdeconv bench``. Every case of the benchmark suite (one
operator call each, as real networks make them; :mod:`fastdeconv._bench.suite`) is run by every
available peer (:mod:`fastdeconv._bench.peers`) in **one process**, interleaved: each
repetition times every peer on the case in turn, so machine noise hits all of them alike. The
reported time is the median of the repetitions after one warm-up call, with the thread count
pinned in every library (:mod:`fastdeconv._bench.timing`).

Limit
-----
``limit = max(FLOPs / GEMM peak, bytes / bandwidth)``, where FLOPs are twice the multiply-adds
that touch real input (taps landing in padding or between the samples of a strided transposed
convolution are not counted; the count is exact, by index arithmetic per dimension), bytes are
those of the operands plus the result, the GEMM peak is what ``np.matmul`` reaches on two
2048 x 2048 matrices of the dtype, and the bandwidth is that of a large ``np.copyto`` (read plus
write bytes), both measured in-process under the same thread pin
(:func:`fastdeconv._bench.machine.measure_machine`).
"""

import math
import sys

import numpy as np

from .machine import GEMM_SIZE, describe_setup, measure_machine
from .peers import ALL_PEERS, CHANNELS_LAST_PEERS, PEER_OPS, PEERS, PeerUnavailable, load_peers
from .suite import load_suite, make_operands, select_cases
from .table import format_ms, format_report, is_other_library
from .timing import DTYPES, Progress, check_options, pinned_threads, time_peers

__all__ = ["DTYPES", "format_table", "run"]


DATA_FORMATS = ("channels_first", "channels_last")


def _operands(case, dtype, data_format):
    """The case's operands; channels-last data as C-contiguous channels-last arrays."""
    operands = make_operands(case, dtype)
    if data_format == "channels_last":
        operands = {name: np.ascontiguousarray(np.moveaxis(value, 1, -1))
                    if name in ("x", "grad_output") else value
                    for name, value in operands.items()}
        operands["data_format"] = data_format
    return operands


def _bench_case(case, dtype, threads, peers, unavailable, repeat, budget, progress,
                data_format="channels_first"):
    """Warm up, verify and time every peer on one case, interleaved; return the result row."""
    operands = _operands(case, dtype, data_format)
    calls, skipped = {}, dict(unavailable)
    for peer in peers:
        if peer in skipped:
            continue
        try:
            calls[peer] = PEER_OPS[peer][case.op](case, operands, threads)
        except PeerUnavailable as exc:
            skipped[peer] = str(exc)
    timed = time_peers(calls, repeat=repeat, budget=budget, threads=threads,
                       progress=progress, label=case.name)
    skipped.update(timed.pop("failed"))
    notes = {peer: fn.note for peer, fn in calls.items()
             if peer in timed["ms"] and getattr(fn, "note", None)}
    return {"case": case.name, "op": case.op, "shape": case.summary(), **timed,
            "skipped": skipped, "notes": notes}


def _add_limits(row, case, dtype, machine):
    """Add FLOPs, bytes, the limit and the derived ratios to a result row."""
    itemsize = np.dtype(dtype).itemsize
    flops = 2 * case.macs()
    nbytes = itemsize * sum(math.prod(shape) for shape in
                            [*case.operand_shapes.values(), case.result_shape])
    limit_ms = 1e3 * max(flops / (machine["gemm_gflops"] * 1e9),
                         nbytes / (machine["bandwidth_gbs"] * 1e9))
    ms = row["ms"]
    others = {peer: t for peer, t in ms.items() if is_other_library(peer)}
    best_peer = min(others, key=others.get) if others else None
    fd_ms = ms.get("fastdeconv")
    row.update(flops=flops, bytes=nbytes, limit_ms=limit_ms, best_peer=best_peer,
               speedup=others[best_peer] / fd_ms if fd_ms and best_peer else None,
               pct_of_limit={peer: 100 * limit_ms / t for peer, t in ms.items()}, **machine)
    return row


def run(cases=None, dtype="float32", threads=1, repeat=5, quick=False, peers=None,
        progress=True, *, budget=None, suite=None, data_format="channels_first"):
    """Benchmark fastdeconv and its peers side by side on the layer suite.

    Parameters
    ----------
    cases : str or sequence of str, optional
        Case names and/or op names (``"conv_transpose"``, ``"conv"``, ``"conv_wgrad"``); a
        string may be comma-separated. Default: every case.
    dtype : {"float32", "float64"}, default "float32"
    threads : int, default 1
        Threads allowed to every library (BLAS, OpenMP, PyTorch, ONNX Runtime).
    repeat : int, default 5
        Timed calls per peer and case, after one warm-up call; the median is reported.
    quick : bool, default False
        At most 3 repetitions and a 2 s budget per peer and case.
    peers : sequence of str, optional
        Peers to run; the first one that runs a case is the reference for ``rel_diff``.
        Default :data:`~fastdeconv._bench.peers.PEERS` (``fastdeconv``,
        ``fastdeconv_prepared``, ``torch``, ``onnxruntime``, ``numpy``), or
        ``CHANNELS_LAST_PEERS`` in the channels-last mode (no prepared layer there).
    progress : bool, default True
        Draw a progress bar on stderr when it is a terminal.
    budget : float, optional
        Seconds per peer and case: a peer whose warm-up call took ``t`` seconds is timed
        ``max(1, min(repeat, budget // t))`` times. Default 10 (2 with ``quick``).
    suite : str or os.PathLike, optional
        Suite JSON file; see :func:`fastdeconv._bench.suite.load_suite`.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Layout of the data operands and results. Channels-last runs fastdeconv with
        ``data_format="channels_last"``, PyTorch on its ``channels_last`` memory format, and
        ``fastdeconv_nchw`` (fastdeconv's channels-first call on channels-first copies, for
        the cost of the layout); the default peers are then ``CHANNELS_LAST_PEERS``.

    Returns
    -------
    list of dict
        One row per case with keys ``case``, ``op``, ``shape``, ``dtype``, ``threads``,
        ``ms`` (peer -> median milliseconds), ``repeats`` (peer -> timed calls), ``skipped``
        (peer -> reason), ``notes`` (peer -> remark), ``reference``, ``rel_diff`` (peer -> max
        relative difference to the reference peer), ``max_rel_diff``, ``flops``, ``bytes``,
        ``limit_ms``, ``best_peer`` (fastest peer other than fastdeconv), ``speedup`` (best
        peer's time / fastdeconv's), ``pct_of_limit`` (peer -> 100 * limit / time),
        ``versions``, ``cpu``, ``environment`` (the pool variables that are set),
        ``blas_coretype`` (``OPENBLAS_CORETYPE`` if set, else None) and the machine figures
        ``gemm_gflops``, ``bandwidth_gbs`` and ``blas``.
    """
    check_options(dtype, threads, repeat)
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    if peers is None:
        peers = CHANNELS_LAST_PEERS if data_format == "channels_last" else PEERS
    if quick:
        repeat = min(repeat, 3)
    if budget is None:
        budget = 2.0 if quick else 10.0
    peers = tuple(dict.fromkeys(peers))
    selected = select_cases(load_suite(suite), cases)

    versions, unavailable = load_peers(peers)
    bar = Progress(len(selected) * (1 + repeat) + 1, sys.stderr if progress else None)
    rows = []
    try:
        with pinned_threads(threads):
            bar.step("GEMM peak and bandwidth", advance=0)
            machine = measure_machine(dtype)
            bar.step("GEMM peak and bandwidth")
            setup = dict(describe_setup(dtype, threads), versions=versions,
                         data_format=data_format)
            for case in selected:
                row = _bench_case(case, dtype, threads, peers, unavailable, repeat, budget, bar,
                                  data_format)
                rows.append(_add_limits(dict(row, **setup), case, dtype, machine))
    finally:
        bar.close()
    return rows


def format_table(results):
    """Render :func:`run` results in the bench format (:mod:`fastdeconv._bench.table`).

    Parameters
    ----------
    results : list of dict
        Rows returned by :func:`run`.

    Returns
    -------
    str
    """
    if not results:
        return "(no results)"
    first = results[0]
    has_fd = any("fastdeconv" in row["ms"] for row in results)

    def pct(row):
        values = row["pct_of_limit"]
        if has_fd:
            return f"{values['fastdeconv']:.0f}%" if "fastdeconv" in values else "-"
        return f"{max(values.values()):.0f}%" if values else "-"

    layout = first.get("data_format", "channels_first")
    trailing = [("fastdeconv % of limit" if has_fd else "best % of limit", "r", pct)]
    if layout == "channels_last":
        trailing.insert(0, ("NCHW / NHWC", "r", _layout_ratio))
    prepared = any(_PREPARED_PAIR <= set(row["ms"]) for row in results)
    if prepared:
        trailing.insert(0, ("onnxruntime / prepared", "r", _prepared_ratio))
    return format_report(
        results, title=f"fastdeconv bench: layer suite, {len(results)} case(s), {layout}",
        peers=ALL_PEERS,
        columns=[("case", "l", lambda row: row["case"]), ("op", "l", lambda row: row["op"]),
                 ("shape", "l", lambda row: row["shape"]),
                 ("limit", "r", lambda row: format_ms(row["limit_ms"]))],
        trailing=trailing,
        setup=[("limit", f"GEMM peak {first['gemm_gflops']:.1f} GFLOP/s (np.matmul "
                         f"{GEMM_SIZE}^2), copy bandwidth {first['bandwidth_gbs']:.1f} GB/s")],
        legend=["limit = max(FLOPs / GEMM peak, bytes / bandwidth) in ms; % of limit = "
                "100 limit / time.",
                *(["ONNX Runtime runs with thread spinning off."]
                  if any("onnxruntime" in row["ms"] for row in results) else []),
                *(["fastdeconv_prepared: a PreparedConv / PreparedConvTranspose made once from "
                   "the weight, then called (its packed weight kept, as ONNX Runtime keeps its "
                   "pre-packed initializer); onnxruntime / prepared = ONNX Runtime's time / "
                   "the prepared layer's: the two in an inference loop."] if prepared else []),
                *(["channels_last: fastdeconv and torch (its channels_last memory format) take "
                   "and return channels-last arrays; fastdeconv_nchw is fastdeconv's "
                   "channels-first call on channels-first copies; NCHW / NHWC = "
                   "fastdeconv_nchw time / fastdeconv time."] if layout == "channels_last"
                  else [])])


#: The pair compared in inference loops: both keep their packed weight between calls.
_PREPARED_PAIR = {"fastdeconv_prepared", "onnxruntime"}


def _prepared_ratio(row):
    """ONNX Runtime's time over the prepared layer's (both with pre-packed weights)."""
    ms = row["ms"]
    if _PREPARED_PAIR <= set(ms):
        return f"{ms['onnxruntime'] / ms['fastdeconv_prepared']:.2f}x"
    return "-"


def _layout_ratio(row):
    ms = row["ms"]
    if "fastdeconv" in ms and "fastdeconv_nchw" in ms:
        return f"{ms['fastdeconv_nchw'] / ms['fastdeconv']:.2f}x"
    return "-"
