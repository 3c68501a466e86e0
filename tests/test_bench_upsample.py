"""The upsampling bench (fastdeconv._bench.upsampling) and its asv suite, on tiny inputs."""

import importlib
from pathlib import Path

import pytest

from fastdeconv._bench import upsampling as _bench_upsample

REPO = Path(__file__).resolve().parents[1]


def test_run_and_format_table_without_torch():
    rows = _bench_upsample.run(shape=(1, 2, 8, 8), repeats=1, peers=["fastdeconv"],
                               cases=["nearest 2x", "max_unpool", "cubic 2x backward"])
    assert [r["case"] for r in rows] == ["nearest 2x", "max_unpool 2x2", "cubic 2x backward"]
    assert all(r["fastdeconv"] > 0 and "torch" not in r for r in rows)
    table = _bench_upsample.format_table(rows, shape=(1, 2, 8, 8))
    assert "| nearest 2x |" in table and "(1, 2, 8, 8)" in table


@pytest.mark.torch
def test_every_case_agrees_with_torch(torch):
    rows = _bench_upsample.run(shape=(2, 3, 8, 6), repeats=1, backward=True)
    assert len(rows) == len(_bench_upsample.CASES) + len(_bench_upsample.BACKWARD_CASES)
    for row in rows:
        assert row["max_rel_diff"] < 1e-5, row
        assert row["ratio"] > 0
    assert "torch / fastdeconv" in _bench_upsample.format_table(rows)


def test_unknown_case():
    with pytest.raises(ValueError, match="unknown case"):
        _bench_upsample.run(cases=["bilinear 3x"], peers=["fastdeconv"])


def test_asv_suite_runs(monkeypatch):
    # benchmarks/ is not installed: import it from the checkout (fastdeconv itself is already
    # imported, from the installed build)
    monkeypatch.syspath_prepend(str(REPO))
    bench = importlib.import_module("benchmarks.bench_upsample")
    monkeypatch.setattr(bench, "SHAPE", (1, 4, 8, 8))
    for cls, params in [(bench.Resize, ("linear", 2)), (bench.MaxPoolUnpool, ("max_unpool",)),
                        (bench.ResizeConventions, ("tf2_bicubic",)),
                        (bench.PixelShuffle, ("DCR",))]:
        suite = cls()
        suite.setup(*params)
        try:
            for name in dir(suite):
                if name.startswith(("time_", "peakmem_")):
                    getattr(suite, name)(*params)
        finally:
            suite.teardown(*params)
