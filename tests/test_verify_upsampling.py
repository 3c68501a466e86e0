"""python -m fastdeconv verify on the upsampling operators: passes, and catches a broken kernel."""

import numpy as np
import pytest

from fastdeconv import _pool, _resize
from fastdeconv import _verify
from fastdeconv._cli import main
from fastdeconv._operators import OPERATORS

# every registered operator without weight and bias
UPSAMPLING = [op.name for op in OPERATORS if op.check != "weighted"]


def test_every_operator_has_cases():
    assert {case.op for case in _verify.CASES} == set(_verify.OPS)


def test_verify_upsampling_operators_pass(capsys):
    argv = ["verify", "--no-progress"] + [a for op in UPSAMPLING for a in ("--op", op)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    n = sum(case.op in UPSAMPLING for case in _verify.CASES)
    assert f"{n} of {n} configurations passed" in out
    rows = [line for line in out.splitlines() if line.startswith(tuple(UPSAMPLING))]
    assert len(rows) == n and all(line.rstrip().endswith("ok") for line in rows)
    assert all(" -  " in line for line in rows)      # no weight or bias gradients


@pytest.mark.parametrize("op, module, name", [
    ("resize", _resize, "_run"),
    ("max_unpool", _pool._pool_kernels, "max_unpool_backward"),
])
def test_verify_catches_a_broken_kernel(op, module, name, monkeypatch, capsys):
    original = getattr(module, name)

    def broken(*args, **kwargs):
        out = original(*args, **kwargs)
        if op == "resize":
            out.reshape(-1)[0] += 1.0
        else:
            args[2][0] += 1.0        # grad_x
        return out

    monkeypatch.setattr(module, name, broken)
    assert main(["verify", "--no-progress", "--op", op]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_max_pool_step_keeps_indices():
    """The max_pool row's finite difference is exact: the step changes no switch."""
    rng = np.random.default_rng(0)
    case = next(c for c in _verify.CASES if c.op == "max_pool")
    errors = _verify.check_case(case, rng)
    assert errors["grad x"] < 1e-12 and errors["sparse"] is None
