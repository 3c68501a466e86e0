"""Every operator of fastdeconv on chunked dask arrays, for data larger than memory.

``fastdeconv.dask.conv(x, w, ...)`` takes the same arguments, with the same defaults, as
:func:`fastdeconv.conv`, with ``x`` (and ``grad_output``, ``indices``) a
:class:`dask.array.Array` and the weights and bias in memory. It returns a lazy dask array
with known chunks, equal to the in-memory operator applied to the computed input
(bit-identical for the pooling, unpooling, pixel shuffles and nearest resizes; within
rounding where sums are involved, see each function). The chunking rules come from each
operator's index arithmetic (:mod:`fastdeconv.dask._chunks`): exact per-side halos,
stride-aligned output chunks, the padding applied once at the array's edges. Any dask
scheduler runs the result: the threaded default, a ``distributed`` ``LocalCluster`` or a
multi-machine cluster; inputs and outputs can live in zarr stores. See the user guide's
"Larger than memory" page. ``data_format`` (channels-last arrays) and ``weight_format`` are
taken as in memory (:mod:`fastdeconv.dask._layouts`).

Needs the ``dask`` extra: ``pip install "fastdeconv[dask]"`` (dask[array,distributed] and
zarr).

.. autosummary::
   :toctree: generated/

   conv
   conv_transpose
   conv_backward
   conv_transpose_backward
   resize
   max_pool
   max_unpool
   pixel_shuffle
   pixel_unshuffle
   halo_priority
   HaloFirstArray

The arrays returned are :class:`HaloFirstArray`: on a ``distributed`` cluster, a plain
``client.persist(y)``, ``client.compute(y)``, ``y.compute()`` or ``y.to_zarr(...)`` makes every
worker cut the halos its neighbours wait for before it starts a long chunk. Arrays derived
from a result are plain dask arrays: submit them within
``dask.annotate(priority=fastdeconv.dask.halo_priority)`` (:func:`halo_priority`).

Examples
--------
>>> import numpy as np, dask.array as da
>>> import fastdeconv, fastdeconv.dask
>>> x = da.random.default_rng(0).standard_normal((1, 8, 256, 256), chunks=(1, 8, 64, 64))
>>> w = np.random.default_rng(1).standard_normal((8, 4, 4, 4))
>>> y = fastdeconv.dask.conv_transpose(x, w, stride=2, padding=1)
>>> y.chunks[2:]
((128, 128, 128, 128), (128, 128, 128, 128))
>>> expected = fastdeconv.conv_transpose(x.compute(), w, stride=2, padding=1)
>>> bool(np.allclose(y.compute(), expected, rtol=0, atol=1e-12))
True
"""

from . import _conv, _upsample
from ._layouts import with_layouts
from ._priority import HaloFirstArray, halo_priority, returning_halo_first


def _public(function, weight=None):
    """The public function: the in-memory layouts (:mod:`._layouts`), and dask arrays
    returned as :class:`HaloFirstArray` (:mod:`._priority`)."""
    return returning_halo_first(with_layouts(function, weight=weight))


# every function takes the in-memory function's data_format (and weight_format)
conv = _public(_conv.conv, weight="conv")
conv_transpose = _public(_conv.conv_transpose, weight="conv_transpose")
conv_backward = _public(_conv.conv_backward, weight="conv")
conv_transpose_backward = _public(_conv.conv_transpose_backward, weight="conv_transpose")
resize = _public(_upsample.resize)
max_pool = _public(_upsample.max_pool)
max_unpool = _public(_upsample.max_unpool)
pixel_shuffle = _public(_upsample.pixel_shuffle)
pixel_unshuffle = _public(_upsample.pixel_unshuffle)

__all__ = [
    "conv",
    "conv_transpose",
    "conv_backward",
    "conv_transpose_backward",
    "resize",
    "max_pool",
    "max_unpool",
    "pixel_shuffle",
    "pixel_unshuffle",
    "halo_priority",
    "HaloFirstArray",
]
