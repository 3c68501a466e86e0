"""The canonical fastdeconv call of a compat function: run it, or show it as text.

A compat function (:mod:`fastdeconv.compat`) validates its framework's arguments and builds
one :class:`CanonicalCall`: the name of a public fastdeconv function, its array operands
(each with the expression that produces it from the caller's arguments, usually just the
parameter's name), its keyword arguments, and the pure data-movement steps applied to the
result (:class:`Step`: cropping, reshaping). :meth:`CanonicalCall.finish` then either runs it
or returns its text, which evaluates (with ``np`` and ``fastdeconv`` in scope and the caller's
parameter names bound) to the same result.

>>> import numpy as np
>>> call = canonical_call("conv", [Operand("X", np.ones((1, 1, 4))),
...                                Operand("W", np.ones((1, 1, 2)))],
...                       dict(stride=(2,), padding=0, dilation=(1,)),
...                       [Step.crop((Ellipsis, slice(1, None)))])
>>> call.text()
'fastdeconv.conv(X, W, stride=(2,))[..., 1:]'
>>> call.run().tolist()
[[[2.0]]]
"""

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["CanonicalCall", "Operand", "Step", "canonical_call", "check_explain", "render"]


@dataclass(frozen=True)
class Operand:
    """One positional array argument: the expression ``text`` (in the caller's parameter
    names) and the ``value`` it evaluates to."""

    text: str
    value: Any


@dataclass(frozen=True)
class Step:
    """Pure data movement applied to the result: ``template.format(expr)`` is its text,
    ``apply(result)`` its effect."""

    template: str
    apply: Callable

    @classmethod
    def crop(cls, index):
        """Basic indexing ``result[index]`` (a tuple of slices, ints and ``Ellipsis``)."""
        index = tuple(index)
        text = ", ".join(_render_index(i) for i in index)
        return cls("{}[" + text + "]", lambda result: result[index])

    @classmethod
    def reshape(cls, shape):
        """``result.reshape(shape)``."""
        shape = tuple(int(n) for n in shape)
        return cls("{}.reshape" + render(shape), lambda result: result.reshape(shape))


@dataclass(frozen=True)
class CanonicalCall:
    """``fastdeconv.<function>(*operands, **keywords)`` followed by ``result_steps``."""

    function: str
    operands: tuple
    keywords: dict
    result_steps: tuple = ()

    def run(self):
        """Compute the call (fastdeconv validates what the compat function did not)."""
        import fastdeconv

        target = getattr(fastdeconv, self.function)
        result = target(*(operand.value for operand in self.operands), **self.keywords)
        for step in self.result_steps:
            result = step.apply(result)
        return result

    def text(self):
        """The call as Python source, e.g. ``fastdeconv.conv(X, W, stride=(2, 2))``."""
        arguments = [operand.text for operand in self.operands]
        arguments += [f"{name}={render(value)}" for name, value in self.keywords.items()]
        expression = f"fastdeconv.{self.function}({', '.join(arguments)})"
        for step in self.result_steps:
            expression = step.template.format(expression)
        return expression

    def finish(self, explain):
        """The text when ``explain`` is true, else the result of :meth:`run`."""
        return self.text() if check_explain(explain) else self.run()


def canonical_call(function, operands, keywords, result_steps=()):
    """A :class:`CanonicalCall` without the keywords that equal ``function``'s defaults.

    A keyword counts as default when it equals the default of the fastdeconv function's
    signature, or when the default is a scalar and the value is a (nested) tuple of it only
    (``stride=(1, 1)`` for ``stride=1``), which fastdeconv reads the same way.
    """
    import fastdeconv

    parameters = inspect.signature(getattr(fastdeconv, function)).parameters
    kept = {}
    for name, value in keywords.items():
        if name not in parameters:
            raise TypeError(f"fastdeconv.{function} has no keyword {name!r}")
        if not _is_default(value, parameters[name].default):
            kept[name] = value
    return CanonicalCall(function, tuple(operands), kept, tuple(result_steps))


def check_explain(explain):
    if not isinstance(explain, (bool, np.bool_)):
        raise TypeError(f"explain must be True or False, got {explain!r}")
    return bool(explain)


def _is_default(value, default):
    if default is inspect.Parameter.empty:
        return False
    if isinstance(value, tuple) and not isinstance(default, tuple):
        return all(_is_default(v, default) for v in value)
    return type(value) is type(default) and value == default


def render(value):
    """Python source of a keyword value: ints, floats, strings, None and tuples of them."""
    if isinstance(value, tuple):
        inner = ", ".join(render(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _render_index(item):
    if item is Ellipsis:
        return "..."
    if isinstance(item, slice):
        if item.step is not None:
            raise ValueError(f"crop steps take slices without a step, got {item!r}")
        start = "" if item.start is None else str(item.start)
        stop = "" if item.stop is None else str(item.stop)
        return f"{start}:{stop}"
    return str(int(item))
