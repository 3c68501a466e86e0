"""Pure data movement as text and value: operand expressions and result steps.

A compat function whose framework needs more than the canonical call's keywords -- a kernel
flipped or regrouped, an input cropped by a negative padding or regrouped by a batch group, a
result transposed, subsampled or zero-extended -- writes that data movement with these
helpers, so that :meth:`fastdeconv.compat._call.CanonicalCall.text` shows it and evaluating
the text gives the same arrays. Nothing here computes: every operation is a NumPy view,
reshape, transpose, flip, basic index or zero padding.

>>> import numpy as np
>>> w = Expression("rhs", np.arange(6.0).reshape(1, 2, 3))
>>> w.flip((2,)).transpose((2, 1, 0)).text
'np.flip(rhs, 2).transpose(2, 1, 0)'
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._call import Step, render

__all__ = ["Expression", "pad_step", "slice_step", "transpose_step"]


def _is_identity(axes):
    return tuple(axes) == tuple(range(len(axes)))


def _index_text(index):
    """Source of a basic index: slices (with steps), ints and ``Ellipsis``; trailing full
    slices are left out."""
    index = list(index)
    while len(index) > 1 and index[-1] == slice(None):
        index.pop()
    parts = []
    for item in index:
        if item is Ellipsis:
            parts.append("...")
        elif isinstance(item, slice):
            start = "" if item.start is None else str(item.start)
            stop = "" if item.stop is None else str(item.stop)
            parts.append(f"{start}:{stop}" + ("" if item.step is None else f":{item.step}"))
        else:
            parts.append(str(int(item)))
    return ", ".join(parts)


def _is_full(index):
    return all(item == slice(None) for item in index)


@dataclass(frozen=True)
class Expression:
    """An operand: its source ``text`` in the caller's parameter names and its ``value``."""

    text: str
    value: Any

    def transpose(self, axes):
        axes = tuple(int(a) for a in axes)
        if _is_identity(axes):
            return self
        return Expression(f"{self.text}.transpose{render(axes)}", self.value.transpose(axes))

    def flip(self, axes):
        axes = tuple(int(a) for a in axes)
        if not axes:
            return self
        shown = render(axes[0]) if len(axes) == 1 else render(axes)
        return Expression(f"np.flip({self.text}, {shown})", np.flip(self.value, axes))

    def reshape(self, shape):
        shape = tuple(int(n) for n in shape)
        if shape == self.value.shape:
            return self
        return Expression(f"{self.text}.reshape{render(shape)}", self.value.reshape(shape))

    def swapaxes(self, first, second):
        return Expression(f"{self.text}.swapaxes({int(first)}, {int(second)})",
                          self.value.swapaxes(first, second))

    def index(self, index):
        """Basic indexing (slices with steps, ints, ``Ellipsis``); a no-op index is dropped."""
        index = tuple(index)
        if _is_full(index):
            return self
        return Expression(f"{self.text}[{_index_text(index)}]", self.value[index])


def transpose_step(axes):
    """``result.transpose(axes)``, or None for the identity."""
    axes = tuple(int(a) for a in axes)
    if _is_identity(axes):
        return None
    return Step("{}.transpose" + render(axes), lambda result: result.transpose(axes))


def slice_step(index):
    """``result[index]`` with slices that may have steps, or None for a no-op index."""
    index = tuple(index)
    if _is_full(index):
        return None
    return Step("{}[" + _index_text(index) + "]", lambda result: result[index])


def pad_step(widths):
    """``np.pad(result, widths)``: zeros appended before and after each axis, or None."""
    widths = tuple((int(before), int(after)) for before, after in widths)
    if not any(map(any, widths)):
        return None
    return Step("np.pad({}, " + render(widths) + ")", lambda result: np.pad(result, widths))
