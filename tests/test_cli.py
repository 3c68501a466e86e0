"""python -m fastdeconv: verify passes, detects a broken kernel, and reports bad arguments."""

import subprocess
import sys

import numpy as np
import pytest

from fastdeconv import _conv
from fastdeconv._cli import main


def test_verify_passes_and_prints_the_table(capsys):
    assert main(["verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "operator" in out and "grad w" in out
    assert "17 of 17 configurations passed" in out
    assert "FAIL" not in out


def test_verify_fails_with_exit_1_when_a_kernel_is_wrong(capsys, monkeypatch):
    original = _conv._backward_input

    def off_by_a_little(grad_y, weight, problem):
        out = original(grad_y, weight, problem)
        out.reshape(-1)[0] += 1e-6  # one wrong element in every transposed convolution
        return out

    monkeypatch.setattr(_conv, "_backward_input", off_by_a_little)
    assert main(["verify", "--no-progress", "--op", "conv_transpose"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "configurations FAILED" in out


def test_verify_shows_a_progress_bar_on_stderr(capsys):
    assert main(["verify", "--op", "conv_transpose"]) == 0
    assert "verify [" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "--op", "nope"], "invalid choice: 'nope'"),
        (["verify", "--tolerance", "abc"], "invalid float value: 'abc'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    # run outside the source tree so the installed package is imported
    done = subprocess.run([sys.executable, "-m", "fastdeconv", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "verify" in done.stdout and "bench" in done.stdout


def test_config_command_reports_openmp_and_blas(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "openmp:" in out and "blas:" in out and "numpy:" in out


def test_verify_table_marks_the_failing_configuration():
    from fastdeconv import _verify

    rows = [(c, {k: 0.0 for k in _verify.COLUMNS}, True) for c in _verify.CASES[:2]]
    rows[1][1]["grad w"] = np.float64(1.0)
    rows[1] = (rows[1][0], rows[1][1], False)
    table = _verify.format_table(rows)
    assert table.splitlines()[3].endswith("FAIL") and "1 of 2 configurations FAILED" in table
