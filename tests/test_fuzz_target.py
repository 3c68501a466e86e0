"""The coverage-guided fuzz target of the packed GEMM engine (tests/fuzz/fuzz_packed.py), run
for about 20 seconds: every execution is a GEMM or a convolution through the packed engine,
checked against NumPy; any report (a wrong result, an exception, a crash) fails the test.

The long run (10^6 executions) and the instrumented build are described in the target's
docstring and on the reliability page. atheris is a test dependency: CI installs it, so the
test does not skip there (``FASTDECONV_NO_SKIPS=1``).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "tests" / "fuzz" / "fuzz_packed.py"
SECONDS = int(os.environ.get("FASTDECONV_FUZZ_SECONDS", "20"))


def _run_target(tmp_path, *args, script=TARGET):
    """Run the target (or a script that wraps it) with libFuzzer's arguments; the reports'
    inputs are written to tmp_path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    env.setdefault("OMP_WAIT_POLICY", "passive")
    proc = subprocess.run(
        [sys.executable, str(script), f"-artifact_prefix={tmp_path}{os.sep}", "-seed=14",
         "-max_len=64", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SECONDS + 600)
    reports = sorted(p.name for p in tmp_path.iterdir()
                     if p.name.startswith(("crash-", "oom-", "timeout-")))
    return proc.returncode, proc.stdout + proc.stderr, reports


def test_fuzz_target_runs_without_a_report(tmp_path):
    pytest.importorskip("atheris")
    status, output, reports = _run_target(tmp_path, f"-max_total_time={SECONDS}",
                                          "-atheris_runs=200000")
    assert status == 0 and not reports, (
        f"the fuzz target reported (exit {status}, inputs {reports}); re-run one with "
        f"python {TARGET.relative_to(ROOT)} <input>:\n{output[-6000:]}")
    done = re.search(r"Done (\d+) (?:runs|in)", output)
    assert done and int(done.group(1)) > 100, output[-3000:]


def test_fuzz_target_reports_a_wrong_result(tmp_path):
    """The check is live: with the engine's GEMM replaced by one whose last column is off, the
    target's first executions that reach it fail (the break-check of a real bug in the C code
    is on the reliability page)."""
    pytest.importorskip("atheris")
    wrapper = tmp_path / "broken_target.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(TARGET.parent)!r})\n"
        "import fuzz_packed\n"
        "real = fuzz_packed._packed_gemm.gemm\n"
        "class Engine:\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(fuzz_packed.__dict__['_real_engine'], name)\n"
        "    def gemm(self, a, b, c, **kw):\n"
        "        real(a, b, c, **kw)\n"
        "        if c.shape[0] > 2 and c.shape[1] > 2:\n"
        "            c[-1, -1] += 1\n"
        "        return c\n"
        "fuzz_packed._real_engine = fuzz_packed._packed_gemm\n"
        "fuzz_packed._packed_gemm = Engine()\n"
        "fuzz_packed.main()\n")
    status, output, reports = _run_target(tmp_path, "-max_total_time=60", script=wrapper)
    assert status != 0 and "packed engine mismatch" in output, output[-3000:]
    assert any(name.startswith("crash-") for name in reports), reports
