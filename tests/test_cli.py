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
    from fastdeconv._verify import CASES

    assert f"{len(CASES)} of {len(CASES)} configurations passed" in out
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


def test_verify_shows_a_progress_bar_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # only on a terminal
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


# ------------------------------------------------------------------------------ shapes
def test_shapes_transpose_prints_shape_direct_conv_and_padding_choices(capsys):
    argv = ["shapes", "transpose", "--input", "4", "4", "--kernel", "3", "--stride", "2",
            "--padding", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "output shape: 7x7" in out
    assert "every dimension: (4 - 1) * 2 - 1 - 1 + 3 + 0 = 7" in out
    assert "zeros inserted between cells: 4x4 -> 7x7" in out
    assert "padded by (before, after) = ((1, 1), (1, 1))" in out
    assert "paddings that give output 8x8" in out
    assert "padding=(0, 1) output_padding=0 | padding=(1, 1) output_padding=1" in out
    assert "padding='same' gives it too" in out


def test_shapes_conv_per_dimension_and_target(capsys):
    argv = ["shapes", "conv", "--input", "8", "7", "--kernel", "3", "--stride", "2",
            "--padding", "0,1", "1,1", "--target", "5", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "output shape: 4x4" in out
    assert "dimension 0: floor((8 + 0 + 1 - 3) / 2) + 1 = 4" in out
    assert "maps 4x4 back to 8x7 with output_padding=(0, 0)" in out
    assert "paddings that give output 5x4:" in out
    assert "dimension 0: padding=(1, 2) | padding=(2, 2)" in out


def test_shapes_reports_unreachable_targets(capsys):
    assert main(["shapes", "transpose", "--input", "4", "--kernel", "3", "--stride", "2",
                 "--target", "20"]) == 0
    assert "every dimension: unreachable" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["shapes", "transpose", "--input", "4", "--kernel", "3", "--padding", "1,2,3"],
         "invalid padding '1,2,3'"),
        (["shapes", "transpose", "--input", "4", "--kernel", "x"], "invalid int value: 'x'"),
        (["shapes", "deconv", "--input", "4", "--kernel", "3"], "invalid choice: 'deconv'"),
        (["shapes", "conv", "--kernel", "3"], "the following arguments are required: --input"),
    ],
)
def test_shapes_bad_arguments_print_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["shapes", "transpose", "--input", "4", "--kernel", "3", "--padding", "9"],
         "conv_transpose output would be empty"),
        (["shapes", "conv", "--input", "4", "--kernel", "3", "--output-padding", "1"],
         "--output-padding applies to transpose only"),
        (["shapes", "conv", "--input", "4", "4", "--kernel", "3", "--target", "1", "2", "3"],
         "--target must have 2 sizes"),
        (["shapes", "conv", "--input", "4", "--kernel", "3", "--padding", "same", "1"],
         "a padding string"),
        (["shapes", "conv", "--input", "4", "--kernel", "3", "--stride", "0"], "stride must be"),
        (["checkerboard", "--kernel", "3", "--stride", "2", "--padding", "1"],
         "--padding and --output-padding need --input"),
        (["checkerboard", "--kernel", "3", "3", "--stride", "2", "2", "2"], "must have one value"),
        (["verify", "--tolerance", "-1"], "tolerance must be a finite number >= 0, got -1.0"),
        (["verify", "--tolerance", "nan"], "tolerance must be a finite number >= 0, got nan"),
    ],
)
def test_invalid_values_print_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ checkerboard
def test_checkerboard_prints_one_period_and_says_whether_it_is_uniform(capsys):
    assert main(["checkerboard", "--kernel", "3", "--stride", "2"]) == 0
    out = capsys.readouterr().out
    assert "  4 2\n  2 1\n" in out
    assert "not uniform: interior cells receive 1 to 4 taps" in out
    assert main(["checkerboard", "--kernel", "4", "--stride", "2", "--ndim", "1"]) == 0
    out = capsys.readouterr().out
    assert "  2 2\n" in out and "uniform: every interior cell receives 2 taps" in out


def test_checkerboard_whole_output_matches_the_library(capsys):
    from fastdeconv.checkerboard import overlap_map

    assert main(["checkerboard", "--kernel", "3", "--stride", "2", "--input", "4", "3",
                 "--padding", "1", "--output-padding", "1"]) == 0
    out = capsys.readouterr().out
    expected = overlap_map(3, 2, input_shape=(4, 3), padding=1, output_padding=1)
    rows = [line.split() for line in out.splitlines()[1:1 + expected.shape[0]]]
    np.testing.assert_array_equal(np.array(rows, dtype=int), expected)
    assert "whole output 8x6 of an input 4x3" in out


def test_checkerboard_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "map.png"
    assert main(["checkerboard", "--kernel", "3", "--stride", "2", "--input", "4", "4",
                 "--png", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {path}" in capsys.readouterr().out
    assert main(["checkerboard", "--kernel", "3", "--stride", "2",
                 "--png", str(tmp_path / "missing" / "x.png")]) == 2
    assert "--png could not write" in capsys.readouterr().err


def test_without_matplotlib_only_png_fails_with_a_clear_line(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import fastdeconv\n"
        "from fastdeconv._cli import main\n"
        "assert main(['checkerboard', '--kernel', '3', '--stride', '2']) == 0\n"
        "assert main(['shapes', 'transpose', '--input', '4', '--kernel', '3']) == 0\n"
        f"sys.exit(main(['checkerboard', '--kernel', '3', '--stride', '2', '--png', "
        f"{str(tmp_path / 'x.png')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "--png needs matplotlib" in err and "fastdeconv[plot]" in err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("verify", "shapes", "checkerboard", "bench", "config"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["shapes", "--help"])
    out = capsys.readouterr().out
    assert "--output-padding" in out and "--target" in out and "before,after" in out


@pytest.mark.parametrize("threads, expected", [(2, {"OPENBLAS_THREAD_TIMEOUT": "4"}), (1, {})])
def test_bench_command_quiets_spinning_blas_pools_for_more_than_one_thread(threads, expected):
    import json
    import os

    import fastdeconv

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fastdeconv.__file__)))
    done = subprocess.run([sys.executable, "-m", "fastdeconv", "bench", "--threads",
                           str(threads), "--peers", "fastdeconv", "--repeat", "1", "--json",
                           "-", "--no-progress", "dcgan_rgb"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["environment"] == expected and row["threads"] == threads


def test_a_size_that_cannot_fit_prints_one_line_and_exits_1(capsys, monkeypatch):
    # one int64 per phase: 10**12 of them; refused from the size, before NumPy allocates
    from fastdeconv import _validation
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: 8 * 2**30)
    assert main(["checkerboard", "--kernel", "3", "--stride", "1000000"]) == 1
    err = capsys.readouterr().err.strip()
    assert "error: out of memory: the overlap map would need about" in err
    assert len(err.splitlines()) == 1
