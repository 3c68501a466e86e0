"""``data_format`` and ``weight_format`` of the chunked operators, as in memory.

Each public function of :mod:`fastdeconv.dask` takes the layout keywords of its in-memory
namesake. A channels-last dask array is made channels-first lazily
(:func:`dask.array.moveaxis`: every chunk is transposed inside its own task, no data moves
between chunks and the chunk sizes of every axis are kept), the chunked operator runs with
its chunking rules unchanged, and its results are moved back the same way; a weight in
another letter order is transposed in memory (:class:`fastdeconv._formats.Layout`). The
in-memory kernels then receive each block as the channels-first view of channels-last memory
and copy it once, by the blocked transpose.
"""

import functools
import inspect

import dask.array as da
import numpy as np

from .._formats import Layout

__all__ = ["with_layouts"]

#: the data operands: their layout is data_format
_DATA = ("x", "grad_output", "indices")

_PARAMETERS = {
    "data_format": """\
data_format : str, default "channels_first"
    Layout of the data arrays, as in memory: ``"channels_first"``, ``"channels_last"`` or an
    explicit ``"NCHW"``, ``"NHWC"``, ... string. A channels-last array is moved to
    channels-first lazily (:func:`dask.array.moveaxis`, chunk by chunk, chunk sizes kept) and
    the results are moved back.""",
    "weight_format": """\
weight_format : str, optional
    Layout of the weight (and of the returned weight gradient), as in memory (``"HWIO"``,
    ``"HWOI"``, ...).""",
}


def _move(array, source, destination):
    if array is None:
        return None
    if isinstance(array, da.Array):
        return da.moveaxis(array, source, destination) if array.ndim >= 3 else array
    array = np.asarray(array)
    return np.moveaxis(array, source, destination) if array.ndim >= 3 else array


def _insert_parameters(doc, names):
    """``doc`` with the layout parameters added at the end of its Parameters section."""
    if not doc or "\nReturns\n" not in doc:
        return doc
    text = "\n".join(_PARAMETERS[name] for name in names)
    head, tail = doc.split("\nReturns\n", 1)
    return f"{head.rstrip()}\n{text}\n\nReturns\n{tail}"


def with_layouts(function, *, weight=None):
    """``function`` with ``data_format`` (and, for ``weight="conv"`` or
    ``"conv_transpose"``, ``weight_format``) keywords added after its own."""
    signature = inspect.signature(function)
    extra = ["data_format"] + (["weight_format"] if weight else [])
    parameters = list(signature.parameters.values()) + [
        inspect.Parameter("data_format", inspect.Parameter.KEYWORD_ONLY,
                          default="channels_first")] + (
        [inspect.Parameter("weight_format", inspect.Parameter.KEYWORD_ONLY, default=None)]
        if weight else [])

    @functools.wraps(function)
    def wrapper(*args, data_format="channels_first", weight_format=None, **kwargs):
        if weight is None and weight_format is not None:
            raise TypeError(f"{function.__name__}() got an unexpected keyword argument "
                            "'weight_format'")
        bound = signature.bind(*args, **kwargs)
        x = bound.arguments.get("x")
        ndim = getattr(x, "ndim", None)
        if ndim is None:
            ndim = np.ndim(x)
        layout = Layout.resolve(data_format, ndim - 2 if ndim >= 3 else None,
                                weight_format, transpose=weight == "conv_transpose")
        if layout.is_canonical:
            return function(*bound.args, **bound.kwargs)
        if layout.channels_last:
            for name in _DATA:
                if name in bound.arguments:
                    bound.arguments[name] = _move(bound.arguments[name], -1, 1)
            size = bound.arguments.get("output_size")
            if size is not None and np.ndim(size) == 1 and len(size) == ndim:
                bound.arguments["output_size"] = layout.shape_in(tuple(size))
        if weight and layout.weight_axes is not None:
            w = bound.arguments["weight"]
            bound.arguments["weight"] = layout.weight_in(w if hasattr(w, "ndim")
                                                         else np.asarray(w))
        result = function(*bound.args, **bound.kwargs)
        return _moved_out(result, layout, weight)

    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__doc__ = _insert_parameters(function.__doc__, extra)
    return wrapper


def _moved_out(result, layout, weight):
    """Results in the caller's layouts: data moved back, a weight gradient re-lettered."""
    def data(array):
        return _move(array, 1, -1) if layout.channels_last else array

    if not isinstance(result, tuple):
        return data(result)
    if weight:                        # (grad_x, grad_weight, grad_bias)
        grad_x, grad_weight, grad_bias = result
        if grad_weight is not None and layout.weight_axes is not None:
            grad_weight = grad_weight.transpose(layout.weight_axes_out)   # lazy, no copy
        return data(grad_x), grad_weight, grad_bias
    return tuple(data(array) for array in result)   # (y, indices) of max_pool
