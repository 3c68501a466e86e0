"""The one chooser: walks the registry (installed by :mod:`fastdeconv._algorithms`, in its
documented order) and runs the chosen plan.

For a pass, the first entry that serves it, whose cheap rule ``might_pay`` holds, whose
``plan`` applies (not None) and whose ``pays`` rule accepts that plan is chosen; the last
entry (im2col / col2im) applies to every geometry and always pays. Under
:func:`forced_algorithm` the first entry of that name whose plan applies is chosen, rules
ignored, else the last entry. Plans are cached per (pass, problem, itemsize, budget,
forced name): the budget is a frozen value, so a changed budget gets fresh plans.
"""

import functools
import threading
from contextlib import contextmanager

from ._budget import current_budget
from ._common import allocate_output, check_kernel_dims

__all__ = ["ALGORITHMS", "choose", "forced_algorithm", "install", "plan", "run_pass"]

#: The registry, in the order the chooser walks it (see :func:`install`).
REGISTRY = ()
#: Per pass, the names of the algorithms that serve it, in registry order.
ALGORITHMS = {}
_forced = threading.local()


def install(registry):
    """Make ``registry`` (algorithm modules, the catch-all last) the one the chooser walks."""
    global REGISTRY
    REGISTRY = tuple(registry)
    ALGORITHMS.clear()
    for pass_name in ("forward", "backward_input", "backward_weight"):
        names = [m.PASSES[pass_name] for m in REGISTRY if pass_name in m.PASSES]
        ALGORITHMS[pass_name] = tuple(dict.fromkeys(names))
    _choose.cache_clear()


@contextmanager
def forced_algorithm(name):
    """Use algorithm ``name`` for every pass that supports it, in this thread (for tests).

    A pass that ``name`` does not serve is chosen by the rules. ValueError for a name no
    pass knows (a misspelt name would otherwise force nothing, silently).
    """
    known = sorted({n for names in ALGORITHMS.values() for n in names})
    if name not in known:
        raise ValueError(f"forced_algorithm: name must be one of {known}, got {name!r}")
    previous = getattr(_forced, "name", None)
    _forced.name = name
    try:
        yield
    finally:
        _forced.name = previous


@functools.lru_cache(maxsize=512)
def _choose(pass_name, problem, itemsize, budget, forced):
    """(algorithm module, plan) of one pass (see the module docstring)."""
    serving = [m for m in REGISTRY if pass_name in m.PASSES]
    if forced in ALGORITHMS[pass_name]:
        for module in serving:
            if module.PASSES[pass_name] == forced:
                the_plan = module.plan(pass_name, problem, budget, itemsize)
                if the_plan is not None:
                    return module, the_plan
    else:
        for module in serving[:-1]:
            if module.might_pay(pass_name, problem, budget, itemsize):
                the_plan = module.plan(pass_name, problem, budget, itemsize)
                if the_plan is not None and module.pays(the_plan, budget, itemsize):
                    return module, the_plan
    catch_all = serving[-1]
    return catch_all, catch_all.plan(pass_name, problem, budget, itemsize)


def choose(pass_name, problem, itemsize, budget):
    """(algorithm module, plan) of one pass under ``budget`` and the forced name in force:
    for algorithms whose plan contains a pass of a sub-problem (sub-pixel's forward
    convolution of a block), so that their run calls ``module.run(plan, ...)`` directly."""
    return _choose(pass_name, problem, itemsize, budget, getattr(_forced, "name", None))


def plan(pass_name, problem, itemsize, budget=None):
    """The plan of one pass of ``problem`` (a :class:`fastdeconv._problem.ConvProblem`)
    under ``budget`` (default: the current one): ``.algorithm``, tiling and
    ``.workspace_bytes(itemsize)``."""
    return _choose(pass_name, problem, itemsize, budget or current_budget(),
                   getattr(_forced, "name", None))[1]


def run_pass(pass_name, first, second, problem):
    """Run one pass (``"forward"``: y = conv(x, w); ``"backward_input"``: grad_x =
    conv^T(grad_y, w); ``"backward_weight"``: grad_w from x and grad_y) by its chosen plan."""
    check_kernel_dims(problem)
    if problem.batch == 0:
        return allocate_output(pass_name, problem, first.dtype)
    module, the_plan = _choose(pass_name, problem, first.dtype.itemsize, current_budget(),
                               getattr(_forced, "name", None))
    return module.run(the_plan, first, second)
