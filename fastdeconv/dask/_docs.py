"""Docstrings of the public functions of :mod:`fastdeconv.dask` (numpydoc), applied by
:func:`documented` where each function is defined."""

_X = """\
x : dask.array.Array, shape (N, C, \\*spatial)
    The input, chunked along any axes (chunk sizes must be known). A NumPy array or any
    array-like is accepted and wrapped with :func:`dask.array.asarray`."""

_WEIGHT = """\
weight : numpy.ndarray
    In memory: it is put into the task graph once and sent to every chunk's task. A dask
    array is a ``ValueError`` naming ``weight`` (call ``weight.compute()``)."""

_RAISES = """\
Raises
------
ValueError, TypeError
    Exactly as the in-memory function, raised here and not at compute time: each function
    first calls the in-memory one on an empty batch of the same shape (no data is read).
    Also ``ValueError`` for a dask ``weight`` or ``bias``, or unknown chunk sizes."""

_STENCIL_NOTES = """\
Every output chunk is one task that reads the exact input region its windows need, from the
input blocks that hold it (see :mod:`fastdeconv.dask._chunks` and the user guide's "Larger
than memory" page); the input is never rechunked beforehand. With ``groups == 1`` and
channel-chunked input, the result is the sum of one in-memory call per channel chunk; with
groups, channel chunk edges are moved to group edges and each run of groups is an
independent output-channel chunk."""

_ROUNDING = """\
Equality: within rounding of the in-memory result (float64: relative 1e-14 in the tests;
float32: a few units in the last place). The in-memory dispatcher picks its algorithm
(im2col tiles, Winograd, samples per GEMM) from the sizes it is given, so a chunk may round
differently from the whole array; where it picks the same for every chunk (small arrays, one
channel chunk) the result is bit-identical. Chunked input channels add one more rounding:
the partial results are summed."""

DOCS = {}

DOCS["conv"] = f"""Chunked :func:`fastdeconv.conv`: N-d convolution of a dask array.

Parameters
----------
{_X}
{_WEIGHT}
    Shape ``(C_out, C_in / groups, *kernel_size)``.
bias : numpy.ndarray, shape (C_out,), optional
stride, padding, dilation, groups, padding_mode
    As :func:`fastdeconv.conv` (every padding mode; the border is applied once, at the
    array's edges, ``circular`` reading the far end of the array).

Returns
-------
y : dask.array.Array, shape (N, C_out, \\*out_spatial)
    Lazy, with known chunks: per spatial dimension
    ``o = floor((i + p_before + p_after - d (k - 1) - 1) / s) + 1``; batch chunks are
    ``x``'s, spatial chunk edges are ``ceil(b / s)`` of ``x``'s edges ``b``.

{_RAISES}

Notes
-----
{_STENCIL_NOTES}

The halo a chunk reads beyond its own input chunk is ``p_before`` cells before and
``d (k - 1) - p_before - s + 1`` after.

{_ROUNDING}

Examples
--------
>>> import numpy as np, dask.array as da
>>> import fastdeconv, fastdeconv.dask
>>> x = da.ones((1, 2, 64, 64), chunks=(1, 2, 16, 16))
>>> w = np.ones((4, 2, 3, 3))
>>> y = fastdeconv.dask.conv(x, w, stride=2, padding=1)
>>> y.shape, y.chunks[2]
((1, 4, 32, 32), (8, 8, 8, 8))
>>> bool(np.allclose(y.compute(), fastdeconv.conv(x.compute(), w, stride=2, padding=1)))
True
"""

DOCS["conv_transpose"] = f"""Chunked :func:`fastdeconv.conv_transpose` ("deconvolution").

Parameters
----------
{_X}
{_WEIGHT}
    Shape ``(C_in, C_out / groups, *kernel_size)``.
bias : numpy.ndarray, shape (C_out,), optional
stride, padding, output_padding, dilation, groups, output_size
    As :func:`fastdeconv.conv_transpose`.

Returns
-------
y : dask.array.Array, shape (N, C_out, \\*out_spatial)
    ``o = (i - 1) s - p_before - p_after + d (k - 1) + 1 + output_padding``; every output
    chunk is ``stride`` times its input chunk (edges ``b s``, the last chunk absorbing the
    crop and the ``output_padding``).

{_RAISES}

Notes
-----
{_STENCIL_NOTES}

Output chunk ``[q0, q1)`` reads inputs ``ceil((q0 + p_before - k_e + 1) / s)`` to
``floor((q1 - 1 + p_before) / s)`` (``k_e = d (k - 1) + 1``); its in-memory call is cropped by
that chunk's own padding, and cells no input reaches are zeros plus the bias.

{_ROUNDING}

Examples
--------
>>> import numpy as np, dask.array as da
>>> import fastdeconv.dask
>>> x = da.ones((1, 8, 32, 32), chunks=(1, 8, 8, 8))
>>> w = np.ones((8, 4, 4, 4))
>>> y = fastdeconv.dask.conv_transpose(x, w, stride=2, padding=1)
>>> y.shape, y.chunks[2]
((1, 4, 64, 64), (16, 16, 16, 16))
"""

DOCS["conv_backward"] = f"""Chunked :func:`fastdeconv.conv_backward`: gradients of a convolution.

Parameters
----------
grad_output : dask.array.Array, shape (N, C_out, \\*out_spatial)
{_X}
{_WEIGHT}
stride, padding, dilation, groups, padding_mode, grads
    As :func:`fastdeconv.conv_backward`.

Returns
-------
grad_x : dask.array.Array, shape of ``x``, chunked like ``x``
    A transposed convolution of ``grad_output``; with a padding mode other than zeros it is
    first computed over the padded input (the padding as a chunk of its own at each end) and
    then folded back onto the cells the padding copied, in the in-memory order.
grad_weight : dask.array.Array, shape of ``weight`` (one chunk)
    One partial weight gradient per chunk of ``grad_output`` (the in-memory function on that
    chunk and the region of ``x`` it meets), summed as a tree
    (``dask.array.sum(split_every=8)``).
grad_bias : dask.array.Array, shape (C_out,)
    ``grad_output`` summed over batch and space, as a tree.

Each is ``None`` when it is not in ``grads``.

{_RAISES}

Notes
-----
``grad_x`` is a transposed convolution of ``grad_output``, see :func:`conv_transpose` for
its equality; the weight and bias gradients are sums in another order, equal within
rounding.

Examples
--------
>>> import numpy as np, dask.array as da
>>> import fastdeconv.dask
>>> x = da.ones((2, 3, 16, 16), chunks=(1, 3, 8, 8))
>>> gy = da.ones((2, 4, 8, 8), chunks=(1, 4, 4, 4))
>>> gx, gw, gb = fastdeconv.dask.conv_backward(gy, x, np.ones((4, 3, 3, 3)), stride=2,
...                                            padding=1)
>>> gx.chunks == x.chunks, gw.shape, gb.compute().tolist()
(True, (4, 3, 3, 3), [128.0, 128.0, 128.0, 128.0])
"""

DOCS["conv_transpose_backward"] = f"""Chunked :func:`fastdeconv.conv_transpose_backward`.

Parameters
----------
grad_output : dask.array.Array, shape (N, C_out, \\*out_spatial)
{_X}
{_WEIGHT}
stride, padding, output_padding, dilation, groups, output_size, grads
    As :func:`fastdeconv.conv_transpose_backward`.

Returns
-------
grad_x : dask.array.Array, shape of ``x``, chunked like ``x``
    The convolution of ``grad_output`` (its windows as for :func:`conv`).
grad_weight : dask.array.Array, shape of ``weight``
    One partial per chunk of ``x`` (with the range of ``grad_output`` it reaches), summed
    as a tree.
grad_bias : dask.array.Array, shape (C_out,)

Each is ``None`` when it is not in ``grads``.

{_RAISES}

Examples
--------
>>> import numpy as np, dask.array as da
>>> import fastdeconv.dask
>>> x = da.ones((1, 4, 8, 8), chunks=(1, 4, 4, 4))
>>> gy = da.ones((1, 2, 16, 16), chunks=(1, 2, 5, 16))
>>> gx, gw, gb = fastdeconv.dask.conv_transpose_backward(gy, x, np.ones((4, 2, 4, 4)),
...                                                      stride=2, padding=1)
>>> gx.chunks[2:], gb.compute().tolist()
(((4, 4), (4, 4)), [256.0, 256.0])
"""

DOCS["resize"] = f"""Chunked :func:`fastdeconv.resize` (every mode and convention).

Parameters
----------
{_X}
size, scale_factor, mode, align_corners, antialias, coordinate_transformation_mode, \
nearest_mode, cubic_coeff_a, exclude_outside
    As :func:`fastdeconv.resize`.

Returns
-------
y : dask.array.Array, shape (N, C, \\*out_spatial)
    Output chunk edges ``floor(b * out / in)`` of the input's edges ``b`` (``b * scale`` for
    an integer scale).

{_RAISES}

Notes
-----
Each dimension's ``(out, in)`` interpolation matrix is built once by
:func:`fastdeconv.sparse.resize_matrix` (the plans the in-memory kernel runs); an output chunk
reads exactly the input columns its rows touch, whatever the scale (no approximation, also
for non-integer scales, antialiasing and cubic taps), and applies those rows. Nearest modes
(and pure copies) are gathers and bit-identical; ``"area"`` has been bit-identical in the
tests; linear and cubic agree within rounding (float64 relative 1e-15).

Examples
--------
>>> import dask.array as da
>>> import fastdeconv.dask
>>> x = da.ones((1, 1, 10, 10), chunks=(1, 1, 4, 4))
>>> y = fastdeconv.dask.resize(x, scale_factor=2.5, mode="linear")
>>> y.shape, y.chunks[2]
((1, 1, 25, 25), (10, 10, 5))
"""

DOCS["max_pool"] = f"""Chunked :func:`fastdeconv.max_pool`, optionally with the switches.

Parameters
----------
{_X}
kernel_size, stride, padding, dilation, ceil_mode, return_indices
    As :func:`fastdeconv.max_pool`.

Returns
-------
y : dask.array.Array, shape (N, C, \\*out_spatial)
    Spatial chunk edges ``ceil(b / s)``.
indices : dask.array.Array of int64
    With ``return_indices``: flat positions within each ``(n, c)`` plane of the whole ``x``.

{_RAISES}

Notes
-----
Each chunk runs the in-memory pooling on an input range that starts at a multiple of the
stride (so its windows are the global ones, shifted) with the global ``-inf`` padding, keeps
its own windows and makes their indices global. Bit-identical, values and indices.

Examples
--------
>>> import dask.array as da
>>> import fastdeconv.dask
>>> x = da.arange(16.0, chunks=5).reshape(1, 1, 16)
>>> fastdeconv.dask.max_pool(x, 2).compute().tolist()
[[[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]]]
"""

DOCS["max_unpool"] = f"""Chunked :func:`fastdeconv.max_unpool`.

Parameters
----------
{_X}
indices : dask.array.Array of int, shape of ``x``
    E.g. from ``max_pool(..., return_indices=True)``; chunked independently of ``x``.
kernel_size, stride, padding, output_size
    As :func:`fastdeconv.max_unpool`.

Returns
-------
y : dask.array.Array, shape (N, C, \\*out_spatial)
    Output chunks are ``stride`` times the input's.

{_RAISES}
    At compute time: ``ValueError`` naming ``indices`` for an index outside the plane, or one
    outside the pooling window of its position (``[i s - p, i s - p + k)`` per dimension):
    each output chunk reads only the windows that meet it.

Notes
-----
Where several values land on one cell the last in C order wins, as in memory.
Bit-identical.

Examples
--------
>>> import dask.array as da
>>> import fastdeconv.dask
>>> x = da.from_array([[[1.0, 5.0, 3.0, 2.0]]], chunks=(1, 1, 3))
>>> y, idx = fastdeconv.dask.max_pool(x, 2, return_indices=True)
>>> fastdeconv.dask.max_unpool(y, idx, 2).compute().tolist()
[[[0.0, 5.0, 3.0, 0.0]]]
"""

DOCS["pixel_shuffle"] = f"""Chunked :func:`fastdeconv.pixel_shuffle`: channels into space.

Parameters
----------
{_X}
upscale_factor, order
    As :func:`fastdeconv.pixel_shuffle`.

Returns
-------
y : dask.array.Array, shape (N, C, \\*(spatial r))
    Spatial chunks ``r`` times the input's; output channel chunks from the input's channel
    chunk edges divided by ``r^d`` (rounded up). Bit-identical.

{_RAISES}

Examples
--------
>>> import dask.array as da
>>> import fastdeconv.dask
>>> x = da.zeros((1, 8, 6, 6), chunks=(1, 4, 3, 3))
>>> y = fastdeconv.dask.pixel_shuffle(x, 2)
>>> y.shape, y.chunks[1:]
((1, 2, 12, 12), ((1, 1), (6, 6), (6, 6)))
"""

DOCS["pixel_unshuffle"] = f"""Chunked :func:`fastdeconv.pixel_unshuffle`: space into channels.

Parameters
----------
{_X}
downscale_factor, order
    As :func:`fastdeconv.pixel_unshuffle`.

Returns
-------
y : dask.array.Array, shape (N, C r^d, \\*(spatial / r))
    Spatial chunk edges ``ceil(b / r)`` (a chunk that is not a multiple of ``r`` reads
    across its neighbour); with ``"CRD"`` each input channel chunk gives ``r^d`` times as many
    output channels, with ``"DCR"`` the channels are one chunk. Bit-identical.

{_RAISES}

Examples
--------
>>> import dask.array as da
>>> import fastdeconv.dask
>>> x = da.zeros((1, 2, 12, 12), chunks=(1, 1, 5, 12))
>>> y = fastdeconv.dask.pixel_unshuffle(x, 2)
>>> y.shape, y.chunks[1:3]
((1, 8, 6, 6), ((4, 4), (3, 2, 1)))
"""


def documented(func):
    """Give ``func`` its docstring from :data:`DOCS`."""
    func.__doc__ = DOCS[func.__name__]
    return func
