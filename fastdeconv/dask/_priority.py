"""Halo tasks first on a distributed cluster, with no annotation from the caller.

A halo task (:class:`._graph.Halos`) cuts the few cells of an input block that the
neighbouring output chunks read; the worker that holds the block runs it. With one thread
per worker, a halo task that dask's static order places after an output chunk's task waits
for that chunk (~0.1 s and more), and so does the worker that needs the cells. A priority
annotation on the graph's layer would say "halo tasks first", but dask.array's graph
optimisation (low-level fusion: :func:`dask.array.optimization.optimize` flattens the
layers into one dict) drops every layer annotation, and the scheduler reads annotations
only from the layers of the optimised graph (``HLGExpr.__dask_annotations__``).

So the arrays that :mod:`fastdeconv.dask` returns are :class:`HaloFirstArray`: a
:class:`dask.array.Array` whose ``__dask_optimize__`` (the optimisation hook of dask's
collection protocol; dask calls it, on the scheduler, with the graph and the output keys)
runs dask's own array optimisation and then puts the halo tasks that remain into a layer of
their own, annotated ``priority=1`` (one more than a priority annotated around the
submission: :class:`HaloPriority`; the ``priority=`` keyword of ``compute``/``persist`` is
not seen there). Nothing else changes: the same tasks, the same fusion, the user's dask
configuration untouched (an ``array_optimize`` set in it is the optimisation that runs), and
no barrier: a halo task still becomes ready only once its block is in memory. Its
:meth:`~HaloFirstArray.store` (which :func:`dask.array.to_zarr` calls) submits the store
within ``dask.annotate(priority=HaloPriority(...))``, since the stored array is a plain dask
array again. Arrays derived from the result (slicing, arithmetic, ...) are plain dask arrays;
for them, submit within ``dask.annotate(priority=halo_priority)``.
"""

import functools
from dataclasses import dataclass

import dask
import dask.array as da
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from ._graph import is_halo_name

__all__ = ["HALO_PRIORITY", "halo_priority", "is_halo_key", "HaloPriority", "ranked",
           "HaloFirst", "HaloFirstArray", "halo_first", "returning_halo_first"]

#: the scheduler priority of a halo task (any other task: dask's default, 0)
HALO_PRIORITY = 1


def is_halo_key(key):
    """Whether ``key`` names a halo task of :mod:`fastdeconv.dask` (its name made by
    :func:`._graph.halo_name`)."""
    name = key[0] if isinstance(key, tuple) and key else key
    return isinstance(name, str) and is_halo_name(name)


def halo_priority(key):
    """The ``priority`` of the task ``key``: 1 for a halo task of :mod:`fastdeconv.dask`, 0
    (dask's default) for any other task.

    A halo task cuts the few cells of an input block that the neighbouring output chunks
    read; the worker that holds the block is the one that runs it, and a worker that starts
    a long chunk first makes its neighbour wait. The arrays that :mod:`fastdeconv.dask`
    returns carry this priority themselves (:class:`HaloFirstArray`): ``client.persist(y)``,
    ``client.compute(y)``, ``y.compute()``, ``y.persist()``, ``y.to_zarr(...)`` and
    :func:`dask.array.to_zarr` run the halo tasks first with no annotation. Arrays derived
    from a result (``y[..., :100]``, ``y + 1``, :func:`dask.array.stack`, ...) are plain
    dask arrays, whose graph optimisation drops the priority; submit them within::

        with dask.annotate(priority=fastdeconv.dask.halo_priority):
            z = client.persist(y + 1)           # or z.to_zarr(...), client.compute(z), ...

    which gives the same priorities to the keys of the submitted graph (the scheduler calls
    this function: it must be able to import fastdeconv, as it must to read the graph's
    tasks). Around the submission of a result itself, it gives the priorities the result
    already has.

    Parameters
    ----------
    key : str or tuple
        A task key (``(name, i, j, ...)`` or a string).

    Returns
    -------
    int
        :data:`HALO_PRIORITY` (1) for a halo task, 0 otherwise.

    Examples
    --------
    >>> from fastdeconv.dask import halo_priority
    >>> halo_priority(("conv-halo-0f3a", 0, 0, 0, 1, 2, 0)), halo_priority(("conv-0f3a", 0))
    (1, 0)
    """
    return HALO_PRIORITY if is_halo_key(key) else 0


@dataclass(frozen=True)
class HaloPriority:
    """The priority of a task: ``base``'s (a number, a function of the key, or None for dask's
    default 0), plus :data:`HALO_PRIORITY` for a halo task. Picklable: the scheduler calls
    it."""

    base: object = None

    def __call__(self, key):
        base = self.base(key) if callable(self.base) else (self.base or 0)
        return base + halo_priority(key)


def ranked(base):
    """The priority annotation that puts the halo tasks first within ``base`` (the priority
    annotation in force, or None): ``base`` itself when it already does."""
    return base if base is halo_priority or isinstance(base, HaloPriority) else HaloPriority(base)


def _split(mapping, annotations, priority):
    """``mapping`` as its non-halo layer (``annotations`` kept) and its halo layer, annotated
    with ``priority``, or above the layer's own priority when ``annotations`` give one; None
    without halo tasks."""
    halo = {k: v for k, v in mapping.items() if is_halo_key(k)}
    if not halo:
        return None
    rest = {k: v for k, v in mapping.items() if k not in halo}
    annotations = annotations or {}
    if "priority" in annotations:
        priority = ranked(annotations["priority"])
    return MaterializedLayer(rest, annotations=annotations or None), MaterializedLayer(
        halo, annotations={**annotations, "priority": priority})


def _with_halo_layers(graph, priority):
    """The optimised ``graph`` (a dict, or a HighLevelGraph when dask did not fuse) with the
    halo tasks in layers of their own, annotated with ``priority``."""
    if not isinstance(graph, HighLevelGraph):
        graph = HighLevelGraph.from_collections("halo-first-tasks", dict(graph))
    layers, dependencies = {}, {}
    for name, layer in graph.layers.items():
        parts = (_split(layer.mapping, layer.annotations, priority)
                 if isinstance(layer, MaterializedLayer) else None)
        deps = set(graph.dependencies.get(name, ()))
        if parts is None:
            layers[name], dependencies[name] = layer, deps
            continue
        halo_name = name + "-halo-first"
        layers[name], layers[halo_name] = parts
        dependencies[halo_name] = deps
        dependencies[name] = deps | {halo_name}     # a layer's halo tasks feed it
    return HighLevelGraph(layers, dependencies)


@dataclass(frozen=True)
class HaloFirst:
    """The graph optimisation of a :class:`HaloFirstArray`: ``optimize`` (dask's array
    optimisation, or the one the user's dask configuration names), then the halo tasks in
    layers annotated with ``priority`` (a :class:`HaloPriority`).

    Picklable (dask sends it to the scheduler with the graph) and comparable (dask
    optimises together the collections that share an optimisation).
    """

    optimize: object
    priority: object = HaloPriority()

    def __call__(self, dsk, keys, **kwargs):
        return _with_halo_layers(self.optimize(dsk, keys, **kwargs), self.priority)


class _HaloFirstOptimize:
    """``__dask_optimize__`` of :class:`HaloFirstArray`: :class:`HaloFirst` around the
    optimisation a plain :class:`dask.array.Array` has at the time of the call. dask reads it
    when the array is submitted, so a priority annotated around the submission is known:
    the halo tasks get one more (:func:`ranked`)."""

    def __get__(self, instance, owner=None):
        return HaloFirst(da.Array.__dask_optimize__,
                         ranked(dask.get_annotations().get("priority")))


def halo_priority_annotation():
    """``dask.annotate`` with the priority that puts the halo tasks first within the one in
    force (:func:`ranked`)."""
    return dask.annotate(priority=ranked(dask.get_annotations().get("priority")))


class HaloFirstArray(da.Array):
    """The :class:`dask.array.Array` that :mod:`fastdeconv.dask` returns: its halo tasks run
    first on a ``distributed`` cluster, with no annotation (:func:`halo_priority`).

    It is a dask array in every other way. Operations on it return plain dask arrays (the
    priority then needs ``dask.annotate(priority=fastdeconv.dask.halo_priority)`` at
    submission), except :meth:`rechunk` and :meth:`store`, which :func:`dask.array.to_zarr`
    calls.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import fastdeconv.dask
    >>> x = da.ones((1, 2, 64, 64), chunks=(1, 2, 32, 32))
    >>> y = fastdeconv.dask.conv(x, np.ones((2, 2, 3, 3)), padding=1)
    >>> type(y).__name__, type(y + 1).__name__
    ('HaloFirstArray', 'Array')
    """

    __dask_optimize__ = _HaloFirstOptimize()

    def store(self, target, **kwargs):
        """:meth:`dask.array.Array.store` (which :func:`dask.array.to_zarr` calls), the
        halo tasks first; with ``compute=False`` the returned array keeps them first."""
        if not kwargs.get("compute", True):
            return halo_first(super().store(target, **kwargs))
        with halo_priority_annotation():
            return super().store(target, **kwargs)

    def rechunk(self, *args, **kwargs):
        """:meth:`dask.array.Array.rechunk` (which :func:`dask.array.to_zarr` calls for
        irregular chunks), still a :class:`HaloFirstArray`."""
        return halo_first(super().rechunk(*args, **kwargs))


def halo_first(result):
    """``result`` (a dask array, or a tuple of them and None) as :class:`HaloFirstArray`."""
    if isinstance(result, tuple):
        return tuple(halo_first(r) for r in result)
    if isinstance(result, da.Array) and not isinstance(result, HaloFirstArray):
        return HaloFirstArray(result.dask, result.name, result.chunks, meta=result._meta)
    return result


def returning_halo_first(function):
    """``function`` (same name, signature and docstring) with its dask array results as
    :class:`HaloFirstArray`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return halo_first(function(*args, **kwargs))

    return wrapper
