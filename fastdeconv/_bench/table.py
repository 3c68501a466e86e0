"""The one output format of ``python -m fastdeconv bench``, for every mode.

A report is a title, the setup every number depends on (a Markdown list: dtype, threads, CPU,
BLAS and its kernel type, worker-pool environment, versions, ...), a Markdown table with one
row per case (the columns of the mode, then one column per peer in milliseconds, the ratio of
the fastest other peer to fastdeconv and the largest relative difference between the peers),
and footnotes. It pastes into a Markdown document or an issue as it is.

Rows given to :func:`format_report` have the keys ``case``, ``ms`` (peer -> median ms),
``repeats`` (peer -> timed calls), ``skipped`` (peer -> why it did not run), ``notes``
(peer -> remark), ``max_rel_diff`` and ``dtype``; the first row also carries the setup
(:func:`fastdeconv._bench.machine.describe_setup`) and ``versions``.
"""

import textwrap

__all__ = ["AGREEMENT_RTOL", "format_ms", "format_report"]

#: Largest ``max_rel_diff`` between peers that is not flagged as a mismatch, per dtype.
AGREEMENT_RTOL = {"float32": 1e-4, "float64": 1e-10}

_POOLS_NOTE = ("idle worker pools sleep instead of spinning into the next peer's time; "
               "python -m fastdeconv bench sets OPENBLAS_THREAD_TIMEOUT=4 for more than one "
               "thread")


def format_ms(value):
    """Milliseconds with 3 significant digits (whole ones from 1000 up); ``-`` for None."""
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _setup_lines(title, first, extra):
    blas = first.get("blas") or "?"
    if first.get("blas_coretype"):
        blas += (f" (OPENBLAS_CORETYPE={first['blas_coretype']} is set: OpenBLAS, NumPy's and "
                 "SciPy's, so fastdeconv's GEMMs too, runs that CPU type's kernels instead of "
                 "the ones it detects)")
    else:
        blas += " (kernel type detected at load)"
    items = [("dtype", first["dtype"]),
             ("threads", f"{first['threads']}, pinned in every library"),
             ("cpu", first.get("cpu") or "?"), ("blas", blas), *extra,
             ("timing", "median ms after a warm-up call, peers interleaved in one process")]
    environment = first.get("environment") or {}
    if environment:
        items.append(("pools", ", ".join(f"{k}={v}" for k, v in environment.items())
                      + f" ({_POOLS_NOTE})"))
    versions = first.get("versions") or {}
    if versions:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return [title, ""] + [f"- {label}: {value}" for label, value in items] + [""]


def is_other_library(peer):
    """A peer that is not fastdeconv itself (``fastdeconv_nchw`` is fastdeconv in the other
    layout, left out of the ratio to the fastest other library)."""
    return not peer.startswith("fastdeconv")


def _ratio_column(peers):
    others = [peer for peer in peers if is_other_library(peer)]
    if "fastdeconv" not in peers or not others:
        return None
    return f"{others[0]} / fastdeconv" if len(others) == 1 else "fastest other / fastdeconv"


def format_report(rows, *, title, peers, columns=(), trailing=(), setup=(), legend=()):
    """Render bench results in the one format.

    Parameters
    ----------
    rows : list of dict
        Result rows (see the module docstring).
    title : str
        First line: what was timed.
    peers : sequence of str
        Peer columns, in order (those that ran in no row are left out).
    columns : sequence of (str, str, callable)
        Columns before the peers: header, alignment (``"l"`` or ``"r"``) and a function of
        the row returning the cell text.
    trailing : sequence of (str, str, callable)
        Columns between the ratio and ``max rel diff``, given as ``columns``.
    setup : sequence of (str, str)
        Setup lines of this mode, after the common ones (e.g. the input shape).
    legend : sequence of str
        Lines under the table explaining this mode's columns.

    Returns
    -------
    str
    """
    if not rows:
        return "(no results)"
    first = rows[0]
    peers = [peer for peer in peers if any(peer in row["ms"] or peer in row["skipped"]
                                           for row in rows)]
    ratio = _ratio_column([peer for peer in peers if any(peer in row["ms"] for row in rows)])
    header = [name for name, _, _ in columns] + list(peers)
    align = [a for _, a, _ in columns] + ["r"] * len(peers)
    if ratio:
        header.append(ratio)
        align.append("r")
    header += [name for name, _, _ in trailing] + ["max rel diff"]
    align += [a for _, a, _ in trailing] + ["r"]

    lines = _setup_lines(title, first, setup)
    lines += ["| " + " | ".join(header) + " |",
              "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    not_run, starred, mismatches = set(), False, False
    for row in rows:
        cells = [cell(row) for _, _, cell in columns]
        for peer in peers:
            if peer in row["ms"]:
                cell = format_ms(row["ms"][peer])
                if row["repeats"][peer] < max(row["repeats"].values()):
                    cell, starred = cell + "*", True
            else:
                cell = "-"
                not_run.add(f"{peer}: {row['skipped'].get(peer, 'not requested')}")
            cells.append(cell)
        if ratio:
            others = [t for peer, t in row["ms"].items() if is_other_library(peer)]
            fastdeconv = row["ms"].get("fastdeconv")
            cells.append(f"{min(others) / fastdeconv:.2f}x" if others and fastdeconv else "-")
        cells += [cell(row) for _, _, cell in trailing]
        diff = row["max_rel_diff"]
        mismatch = diff is not None and not diff <= AGREEMENT_RTOL.get(row["dtype"], 1e-4)
        mismatches |= mismatch
        cells.append("-" if diff is None else f"{diff:.1e}" + (" !" if mismatch else ""))
        lines.append("| " + " | ".join(cells) + " |")

    legend = list(legend)
    if ratio:
        other = ("the time of the fastest peer other than fastdeconv"
                 if ratio.startswith("fastest") else f"{ratio.split(' / ')[0]}'s time")
        legend.append(f"{ratio} = {other} / fastdeconv's (above 1: fastdeconv is faster).")
    if first["threads"] > 1:
        legend.append("With more than one thread each timed call follows an untimed call of the "
                      "same peer (the previous peer's spinning worker pools would take its "
                      "cores).")
    if any(row["max_rel_diff"] is not None for row in rows):
        legend.append("max rel diff = max|a - ref| / max|ref| over the peers' results a, ref "
                      "the first peer's.")
    lines.append("")
    for text in legend:
        lines += textwrap.wrap(text, 100)
    if mismatches:
        lines.append(f"! MISMATCH: peers disagree by more than "
                     f"{AGREEMENT_RTOL.get(first['dtype'], 1e-4):g} (see rel_diff in --json)")
    if starred:
        lines.append("* fewer timed calls: the peer's warm-up call exceeded the time budget")
    remarks = sorted({f"{peer} ({row.get('op', row['case'])}): {text}" for row in rows
                      for peer, text in row.get("notes", {}).items()})
    if remarks:
        lines += ["Notes:"] + [f"  {text}" for text in remarks]
    if not_run:
        lines += ["Not run (-):"] + [f"  {text}" for text in sorted(not_run)]
    return "\n".join(lines).rstrip()
