"""The side-by-side benchmark engine (fastdeconv._bench): the suite, FLOP counts, peers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _bench
from fastdeconv._bench import layers as bench_layers
from fastdeconv._bench import peers as bench_peers
from fastdeconv._bench import suite as bench_suite

REPO = Path(__file__).resolve().parents[1]

# Small geometries covering every op, ndim 1-3, stride, padding, output_padding, dilation, groups.
SMALL_CASES = [
    _bench.Case("t_ct1", "conv_transpose", 2, 4, 6, (7,), 4, 3, 1, 2, 1, 2),
    _bench.Case("t_ct2", "conv_transpose", 2, 4, 2, (5, 4), 3, 2, 1, 1, 2, 1),
    _bench.Case("t_ct3", "conv_transpose", 1, 3, 2, (3, 4, 2), 2, 2, 0, 0, 1, 1),
    _bench.Case("t_c1", "conv", 2, 4, 6, (9,), 3, 2, 2, 0, 2, 2),
    _bench.Case("t_c2", "conv", 2, 3, 4, (6, 7), 3, 1, 1, 0, 1, 1),
    _bench.Case("t_c3", "conv", 1, 2, 3, (5, 4, 6), 2, 2, 1, 0, 1, 1),
    _bench.Case("t_w2", "conv_wgrad", 2, 4, 4, (8, 6), 4, 2, 1, 0, 1, 2),
    _bench.Case("t_w3", "conv_wgrad", 1, 2, 3, (4, 5, 3), 3, 1, 1, 0, 1, 1),
]
IDS = [case.name for case in SMALL_CASES]


def _reference(case, operands):
    return np.asarray(bench_peers.PEER_OPS["fastdeconv"][case.op](case, operands, 1)())


def test_embedded_suite_matches_json_copies():
    # the packaged suite.json is the only copy in the repository; the shared material's
    # copy (outside it) must still be the same suite
    embedded = [_bench.Case.from_dict(entry) for entry in _bench.SUITE]
    copies = [Path(_bench.__file__).with_name("suite.json"),
              REPO.parent / "shared" / "bench" / "suite.json"]
    for path in filter(Path.is_file, copies):
        assert _bench.load_suite(path) == embedded, path


@pytest.mark.parametrize("case", SMALL_CASES, ids=IDS)
def test_macs_equal_the_operator_applied_to_ones(case):
    # With all-ones operands every output sums one term per real multiply-add.
    ones = {name: np.ones(shape) for name, shape in case.operand_shapes.items()}
    assert case.macs() == round(_reference(case, ones).sum())


@pytest.mark.parametrize("case", SMALL_CASES, ids=IDS)
def test_result_shape_matches_fastdeconv(case):
    operands = bench_suite.make_operands(case, "float64")
    assert _reference(case, operands).shape == case.result_shape


@pytest.mark.parametrize("peer", ["numpy", "torch", "onnxruntime"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=IDS)
def test_peers_agree_with_fastdeconv(peer, case, assert_close):
    if peer != "numpy":
        pytest.importorskip(peer)
    dtype = "float32" if peer == "onnxruntime" else "float64"
    operands = bench_suite.make_operands(case, dtype)
    try:
        call = bench_peers.PEER_OPS[peer][case.op](case, operands, 1)
    except bench_peers.PeerUnavailable:
        assert peer == "onnxruntime" and case.op == "conv_wgrad"
        return
    assert_close(np.asarray(call()), _reference(case, operands), dtype=dtype)


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=IDS)
def test_prepared_peer_gives_the_plain_call_bits_and_no_weight_gradient(case, data_format):
    operands = bench_layers._operands(case, "float32", data_format)
    plain = bench_peers.PEER_OPS["fastdeconv"][case.op](case, operands, 1)
    if case.op == "conv_wgrad":
        with pytest.raises(bench_peers.PeerUnavailable, match="no weight gradient"):
            bench_peers.PEER_OPS["fastdeconv_prepared"][case.op](case, operands, 1)
        return
    prepared = bench_peers.PEER_OPS["fastdeconv_prepared"][case.op](case, operands, 1)
    expected = np.asarray(plain())
    for _ in range(2):           # the first call prepares, the second reuses
        np.testing.assert_array_equal(np.asarray(prepared()), expected)


def test_table_compares_the_prepared_layer_with_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    suite = tmp_path / "suite.json"
    entries = [dict(vars(case), spatial=list(case.spatial)) for case in SMALL_CASES
               if case.op == "conv_transpose"][:1]
    suite.write_text(json.dumps({"cases": entries}))
    rows = _bench.run(dtype="float32", repeat=1, progress=False, suite=suite,
                      peers=("fastdeconv", "fastdeconv_prepared", "onnxruntime"))
    (row,) = rows
    assert set(row["ms"]) == {"fastdeconv", "fastdeconv_prepared", "onnxruntime"}
    assert row["best_peer"] == "onnxruntime"   # the prepared layer is not another library
    assert row["rel_diff"]["fastdeconv_prepared"] == 0
    table = _bench.format_table(rows)
    header = next(line for line in table.splitlines() if line.startswith("| case"))
    ratio = row["ms"]["onnxruntime"] / row["ms"]["fastdeconv_prepared"]
    assert "onnxruntime / prepared" in header and f"{ratio:.2f}x" in table
    without = _bench.format_table(_bench.run(dtype="float32", repeat=1, progress=False,
                                             suite=suite, peers=("fastdeconv", "onnxruntime")))
    assert "onnxruntime / prepared" not in without


def test_run_and_format_table(tmp_path):
    suite = tmp_path / "suite.json"
    entries = [dict(vars(case), spatial=list(case.spatial)) for case in SMALL_CASES[::3]]
    suite.write_text(json.dumps({"cases": entries}))
    rows = _bench.run(dtype="float64", repeat=2, peers=("fastdeconv", "numpy"), progress=False,
                      suite=suite)
    assert [row["case"] for row in rows] == [entry["name"] for entry in entries]
    for row in rows:
        assert set(row["ms"]) == {"fastdeconv", "numpy"}
        assert row["reference"] == "fastdeconv" and row["max_rel_diff"] < 1e-12
        assert row["flops"] > 0 and row["limit_ms"] > 0 and row["speedup"] > 0
    json.dumps(rows)
    table = _bench.format_table(rows)
    assert all(entry["name"] in table for entry in entries)
    assert fastdeconv.__version__ in table
    assert all(row["blas_coretype"] == os.environ.get("OPENBLAS_CORETYPE") for row in rows)
    # a pinned OpenBLAS kernel type is reported under the table, an unset one is not
    pinned = [dict(row, blas_coretype="Haswell") for row in rows]
    assert "OPENBLAS_CORETYPE=Haswell is set" in _bench.format_table(pinned)
    unset = [dict(row, blas_coretype=None) for row in rows]
    assert "OPENBLAS_CORETYPE" not in _bench.format_table(unset)


def test_channels_last_mode_runs_every_op_in_both_layouts(tmp_path):
    pytest.importorskip("torch")
    suite = tmp_path / "suite.json"
    entries = [dict(vars(case), spatial=list(case.spatial)) for case in SMALL_CASES]
    suite.write_text(json.dumps({"cases": entries}))
    rows = _bench.run(dtype="float64", repeat=1, progress=False, suite=suite,
                      data_format="channels_last")
    for row in rows:
        # the three layouts' results agree (torch channels_last, fastdeconv both ways)
        assert set(row["ms"]) == {"fastdeconv", "fastdeconv_nchw", "torch"}, row["skipped"]
        assert row["max_rel_diff"] < 1e-12
        assert row["best_peer"] == "torch"          # fastdeconv_nchw is not another library
    table = _bench.format_table(rows)
    assert "channels_last" in table and "NCHW / NHWC" in table
    with pytest.raises(ValueError, match="data_format must be one of"):
        _bench.run(dtype="float64", progress=False, suite=suite, data_format="NHWC")
    only_first = _bench.run(dtype="float64", repeat=1, progress=False, suite=suite,
                            peers=("fastdeconv", "onnxruntime", "numpy"),
                            data_format="channels_last")
    assert all(set(row["ms"]) == {"fastdeconv"} for row in only_first)
    assert "channels-first data only" in only_first[0]["skipped"]["numpy"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_peer_orders_are_balanced(n):
    """Each peer directly follows each other one equally often over the orders, and in the
    first five no peer follows the same other one more than twice (what a call leaves in the
    caches and the allocator slows the next; a median of five must not be set by it)."""
    from collections import Counter

    from fastdeconv._bench.timing import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    pairs = Counter((a, b) for order in orders for a, b in zip(order, order[1:]))
    assert len(pairs) == n * (n - 1) and len(set(pairs.values())) <= 1
    first_five = Counter((a, b) for order in (orders * 5)[:5] for a, b in zip(order, order[1:]))
    assert n <= 2 or max(first_five.values()) <= 2


def test_each_repetition_times_every_peer_in_a_balanced_order():
    from fastdeconv._bench.timing import Progress, balanced_orders, time_peers

    log = []
    calls = {name: (lambda name=name: log.append(name) or np.zeros(1)) for name in "abc"}
    timed = time_peers(calls, repeat=7, budget=None, threads=1,
                       progress=Progress(0, stream=None), label="t")
    assert log[:3] == list("abc")                                    # the warm-ups, in order
    orders = balanced_orders(3)
    assert log[3:] == ["abc"[i] for r in range(7) for i in orders[r % len(orders)]]
    assert timed["repeats"] == {"a": 7, "b": 7, "c": 7}


def test_unknown_case_or_peer_is_a_value_error():
    with pytest.raises(ValueError, match="unknown case or op"):
        _bench.run(cases="no_such_case", progress=False)
    with pytest.raises(ValueError, match="unknown peer"):
        _bench.run(cases="dcgan_rgb", peers=("fastdeconv", "jax"), progress=False)


def test_select_cases_by_name_and_op():
    suite = _bench.load_suite()
    picked = bench_suite.select_cases(suite, "dcgan_rgb,conv_wgrad")
    assert [case.name for case in picked] == ["dcgan_rgb", "wgrad_3x3", "wgrad_dcgan"]


def test_cli_options_round_trip():
    import argparse

    args = _bench.add_arguments(argparse.ArgumentParser()).parse_args(
        ["dcgan_rgb", "--dtype", "float64", "--quick", "--json", "--peers", "numpy"])
    assert args.cases == ["dcgan_rgb"] and args.quick and args.json == "-"
    assert args.peers == "numpy" and args.dtype == "float64" and args.progress


def test_help_lists_the_case_names_of_both_modes(capsys):
    from fastdeconv._cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert all(entry["name"] in out for entry in _bench.SUITE)
    assert "nearest_2x" in out and "max_unpool_backward" in out


def test_both_modes_print_the_same_setup_and_table_format(tmp_path):
    from fastdeconv._bench import upsampling

    suite = tmp_path / "suite.json"
    entries = [dict(vars(SMALL_CASES[1]), spatial=list(SMALL_CASES[1].spatial))]
    suite.write_text(json.dumps({"cases": entries}))
    layer_rows = _bench.run(dtype="float64", repeat=1, peers=("fastdeconv", "numpy"),
                            progress=False, suite=suite)
    upsampling_rows = upsampling.run(shape=(1, 2, 8, 8), repeats=1, cases="max_pool",
                                     peers=["fastdeconv"], dtype="float64")
    for table in (_bench.format_table(layer_rows), upsampling.format_table(upsampling_rows)):
        lines = table.splitlines()
        for label in ("dtype: float64", "threads: 1", "cpu: ", "blas: ", "timing: ",
                      "versions: fastdeconv"):
            assert any(line.startswith(f"- {label}") for line in lines), (label, table)
        header = next(line for line in lines if line.startswith("| case |"))
        assert header.endswith("| max rel diff |")


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_is_one_updating_line_on_a_terminal_only(terminal):
    import io

    from fastdeconv._bench.timing import Progress

    stream = io.StringIO()
    stream.isatty = lambda: terminal
    bar = Progress(4, stream)
    for _ in range(4):
        bar.step("case")
    bar.close()
    text = stream.getvalue()
    assert "\n" not in text
    assert (text.count("\r[") == 4) if terminal else text == ""


def test_cli_runs_upsampling_cases_given_with_the_cases_option(capsys):
    from fastdeconv._cli import main

    assert main(["bench", "--upsampling", "--peers", "fastdeconv", "--repeat", "1",
                 "--cases", "max_pool,max_unpool", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["case"] for row in rows] == ["max_pool 2x2", "max_unpool 2x2"]
