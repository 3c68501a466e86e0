"""``python -m fastdeconv bench --dask`` (fastdeconv._bench.chunked) on tiny sizes.

Starts a real LocalCluster of 2 worker processes, as the command does; no timing is asserted
(the machine may be shared), only that every peer ran, the chunked results match the
in-memory operator and the graph columns are the operators' structure.
"""

import json

import pytest

pytest.importorskip(
    "dask.array", reason="fastdeconv.dask needs the dask extra: pip install 'fastdeconv[dask]'")
pytest.importorskip(
    "distributed", reason="fastdeconv.dask needs the dask extra: pip install 'fastdeconv[dask]'")

from fastdeconv._bench import chunked, cli  # noqa: E402


def test_run_both_cases_on_tiny_sizes():
    rows = chunked.run(shrink=32, repeat=2)
    assert [row["name"] for row in rows] == ["2d", "3d"]
    for row in rows:
        assert set(row["ms"]) == set(chunked.PEERS)
        assert all(ms > 0 for ms in row["ms"].values())
        assert all(len(times) == 2 for times in row["samples"].values())
        assert row["max_rel_diff"] < 1e-4
        assert row["overhead"] > -1 and row["overhead_best"] > -1
    # the 4 x 4 grid of the 2-d case: 16 output chunks and 52 halo tasks (at these tiny
    # chunks a block's faces are cut by tasks of their own); 2 x 2 x 2 in 3-d
    assert (rows[0]["output_chunks"], rows[0]["blocks_read"]) == (16, 9)
    assert rows[0]["tasks_per_chunk"] == pytest.approx(68 / 16)
    assert (rows[1]["output_chunks"], rows[1]["blocks_read"]) == (8, 8)
    assert rows[0]["shape"] == [1, 16, 64, 64] and rows[0]["chunks"] == [1, 16, 16, 16]
    table = chunked.format_table(rows)
    assert "| 2-d conv_transpose k4 s2, chunks 16x16 |" in table
    assert "LocalCluster 2x1" in table and "overhead" in table and "load average" in table
    assert "untimed call" not in table      # no transition calls in this mode


def test_command_line(capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert cli.main(["--dask", "--shrink", "64", "--repeat", "1", "--json", str(out),
                     "--no-progress", "3d"]) == 0
    table = capsys.readouterr().out
    assert "fastdeconv bench --dask: 1 case(s)" in table
    assert "| 3-d conv k3, chunks 2x2x2 |" in table
    (row,) = json.loads(out.read_text())
    assert row["name"] == "3d" and row["output_chunks"] == 8


def test_bad_options():
    with pytest.raises(ValueError, match="unknown case"):
        chunked.run(cases=["4d"])
    with pytest.raises(ValueError, match="shrink"):
        chunked.run(shrink=0)
    with pytest.raises(ValueError, match="repeat"):
        chunked.run(repeat=0)
