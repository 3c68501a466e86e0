"""The algorithm registry, the chooser and the budget: their contracts, not their numbers.

Every algorithm module has one interface; the chooser walks the registry in the order its
docstring documents, with the catch-all last; ``forced_algorithm`` is per thread and rejects
names no pass knows; ``budget`` replaces the thresholds for its body only, also when the body
raises.
"""

import dataclasses
import re
import threading

import pytest

from fastdeconv import _algorithms, _dispatch
from fastdeconv._algorithms import (ALGORITHMS, DEFAULT_BUDGET, REGISTRY, Budget, budget,
                                    current_budget, forced_algorithm, plan)
from fastdeconv._problem import conv_problem, conv_transpose_problem

PASSES = ("forward", "backward_input", "backward_weight")


def _short_name(module):
    return module.__name__.rsplit(".", 1)[-1]


@pytest.mark.parametrize("module", REGISTRY, ids=_short_name)
def test_every_algorithm_module_has_the_interface(module):
    assert module.PASSES and set(module.PASSES) <= set(PASSES)
    assert all(isinstance(name, str) and name for name in module.PASSES.values())
    for function in ("plan", "might_pay", "pays", "run"):
        assert callable(getattr(module, function)), function


def test_the_last_entry_serves_every_pass_and_always_plans():
    catch_all = REGISTRY[-1]
    assert set(catch_all.PASSES) == set(PASSES)
    problem = conv_problem((2, 3, 9, 8), (4, 3, 3, 2), stride=(2, 1), dilation=(1, 3))
    for pass_name in PASSES:
        the_plan = catch_all.plan(pass_name, problem, DEFAULT_BUDGET, 8)
        assert the_plan is not None and the_plan.algorithm == catch_all.PASSES[pass_name]


def test_the_names_per_pass_follow_the_registry_order():
    for pass_name in PASSES:
        expected = []
        for module in REGISTRY:
            name = module.PASSES.get(pass_name)
            if name is not None and name not in expected:
                expected.append(name)
        assert ALGORITHMS[pass_name] == tuple(expected)
        assert _dispatch.ALGORITHMS[pass_name] == tuple(expected)


def test_the_documented_order_is_the_registry_order():
    # the first column of the table in the package docstring, one module per row
    rows = re.findall(r"^([a-z_0-9]+) {2,}\S", _algorithms.__doc__, flags=re.MULTILINE)
    assert rows[0] == "module"              # the header
    assert rows[1:] == [_short_name(m) for m in REGISTRY]


def test_forced_algorithm_rejects_a_name_no_pass_knows():
    with pytest.raises(ValueError, match=r"forced_algorithm: name must be one of .*'winograd'.*"
                                         r"got 'winograds'"):
        with forced_algorithm("winograds"):
            pass


def test_a_forced_name_that_does_not_serve_the_pass_leaves_it_to_the_rules():
    problem = conv_problem((2, 3, 9, 8), (4, 3, 3, 2), stride=(2, 1))
    default = plan("forward", problem, 4).algorithm
    with forced_algorithm("subpixel"):     # serves backward_input only
        assert plan("forward", problem, 4).algorithm == default


def test_forced_algorithm_holds_in_its_thread_only_and_is_restored():
    problem = conv_transpose_problem((2, 4, 5, 4), (4, 3, 4, 4), stride=2, padding=1)
    default = plan("backward_input", problem, 4).algorithm
    assert default != "phases"              # never chosen by rule
    seen = {}
    with forced_algorithm("phases"):
        assert plan("backward_input", problem, 4).algorithm == "phases"
        other = threading.Thread(
            target=lambda: seen.update(algorithm=plan("backward_input", problem, 4).algorithm))
        other.start()
        other.join()
    assert seen["algorithm"] == default
    with pytest.raises(RuntimeError):
        with forced_algorithm("phases"):
            raise RuntimeError
    assert plan("backward_input", problem, 4).algorithm == default


def test_a_budget_is_frozen_and_hashable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_BUDGET.tile_bytes = 1
    assert hash(Budget()) == hash(DEFAULT_BUDGET) and Budget() == DEFAULT_BUDGET


def test_budget_replaces_fields_for_its_body_only_also_when_it_raises():
    assert current_budget() is DEFAULT_BUDGET
    with budget(tile_bytes=256) as outer:
        assert current_budget() is outer and outer.tile_bytes == 256
        with budget(min_columns=1) as inner:
            assert (inner.tile_bytes, inner.min_columns) == (256, 1)   # on top of the outer
        assert current_budget() is outer
    assert current_budget() is DEFAULT_BUDGET
    with pytest.raises(RuntimeError):
        with budget(workspace_bytes=2**20):
            raise RuntimeError
    assert current_budget() is DEFAULT_BUDGET


def test_budget_rejects_a_field_it_does_not_have():
    with pytest.raises(TypeError, match="tile_size"):
        with budget(tile_size=256):
            pass
    assert current_budget() is DEFAULT_BUDGET


def test_an_explicit_budget_is_the_one_the_plan_reads():
    problem = conv_problem((4, 8, 16, 16), (8, 8, 3, 3), stride=2, padding=1)
    small = Budget(tile_bytes=256, min_columns=1)
    assert plan("forward", problem, 8, small).tile < plan("forward", problem, 8).tile
    with budget(tile_bytes=256, min_columns=1):
        assert plan("forward", problem, 8) == plan("forward", problem, 8, small)
