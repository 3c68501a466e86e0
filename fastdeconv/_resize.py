"""Resize (interpolate) in PyTorch's or ONNX's conventions, and its exact adjoint.

Validation and the 1-D plans are in :mod:`fastdeconv._resize_plan`; this module turns the plans
into a *program* (an ordered list of separable passes with their CSR arrays in the compute
dtype) and runs it with the compiled kernels of ``fastdeconv._ext._resize_kernels``.

Channels-last data ``(N, *spatial, C)`` is resized natively, without transposing: a sample
is one plane whose spatial dimensions are followed by a dimension of ``C`` values that no
pass resizes, so every pass combines contiguous rows of ``C`` (or more) values. The passes
run in the order chosen for the channels-first plane, so each value is computed by the same
operations in the same order, and both layouts give the same bits.
"""

import functools
import itertools

import numpy as np

from ._docstrings import docfiller
from ._ext import _resize_kernels
from ._formats import Layout
from ._resize_plan import resolve_resize
from ._threads import kernel_threads
from ._validation import (allocate, as_array, as_compute_array, full_input_shape, result_dtype,
                          spatial_ndim)

__all__ = ["resize", "resize_backward"]


# ------------------------------------------------------------------------------- programs
class _Program:
    """Passes of one resize for one compute dtype, ready for the kernels.

    ``channels`` is the number of values per spatial position within one plane: 1 for
    channels-first planes ``(n, c)``, ``C`` for a channels-last sample, whose channels are
    a trailing dimension that no pass resizes. It does not change the pass order.
    """

    def __init__(self, spec, dtype, canonical=False, channels=1):
        plans = spec.plans(dtype)
        active = [d for d, plan in enumerate(plans) if not plan.is_identity]
        last_first = sorted(active, reverse=True)
        order = last_first if canonical else _pass_order(plans, active, spec.in_size)
        #: True when the passes run last dimension first, as PyTorch nests its sums; the
        #: order decides where inf - inf (NaN) appears when x has infinities
        self.is_canonical = order == last_first
        shape = list(spec.in_size)
        rows, offsets, indices, weights = [], [], [], []
        nnz = off = 0
        scratch = 1
        for step, d in enumerate(order):
            plan = plans[d]
            outer = int(np.prod(shape[:d], dtype=np.int64))
            inner = int(np.prod(shape[d + 1:], dtype=np.int64)) * channels
            rows.append((outer, plan.n_in, plan.n_out, inner, off, int(plan.is_selection)))
            offsets.append(plan.offsets + nnz)
            indices.append(plan.indices)
            weights.append(plan.weights)
            nnz += plan.indices.size
            off += plan.n_out + 1
            shape[d] = plan.n_out
            if step < len(order) - 1:
                scratch = max(scratch, outer * plan.n_out * inner)
        self.passes = np.array(rows, dtype=np.intp).reshape(-1, _resize_kernels.PASS_COLUMNS)
        self.offsets = np.concatenate(offsets or [np.zeros(1)]).astype(np.intp)
        self.indices = np.concatenate(indices or [np.zeros(1)]).astype(np.intp)
        self.weights = np.concatenate(weights or [np.zeros(1)]).astype(dtype)
        if not self.indices.size:  # keep every memoryview non-empty
            self.indices = np.zeros(1, dtype=np.intp)
            self.weights = np.zeros(1, dtype=dtype)
        self.scratch_numel = scratch
        self.in_numel = int(np.prod(spec.in_size, dtype=np.int64)) * channels
        self.out_numel = int(np.prod(spec.out_size, dtype=np.int64)) * channels

    @property
    def is_copy(self):
        return self.passes.shape[0] == 0


def _pass_order(plans, active, in_size):
    """Order of the passes with the least estimated work (ties: last dimension first).

    A pass costs about (values it writes) x (taps per output), twice that along the last
    dimension where it gathers single values instead of combining contiguous rows.
    """
    last = len(in_size) - 1
    best, best_cost = None, None
    for order in itertools.permutations(sorted(active, reverse=True)):
        shape = list(in_size)
        cost = 0.0
        for d in order:
            shape[d] = plans[d].n_out
            cost += np.prod(shape, dtype=np.float64) * max(plans[d].taps, 1.0) * (
                2.0 if d == last else 1.0)
        if best_cost is None or cost < best_cost:
            best, best_cost = order, cost
    return list(best or ())


@functools.lru_cache(maxsize=128)
def _program(spec, dtype, canonical=False, channels=1):
    return _Program(spec, np.dtype(dtype), canonical, channels)


def _program_for(spec, dtype, values, channels=1):
    """The fastest pass order, or PyTorch's (last dimension first) when ``values`` has a NaN
    or an infinity: an order changes where inf - inf gives NaN, so non-finite inputs take
    the one order whose NaN pattern is specified (and tested against PyTorch)."""
    program = _program(spec, dtype, channels=channels)
    if not program.is_canonical and not np.isfinite(values).all():
        program = _program(spec, dtype, canonical=True, channels=channels)
    return program


def _run(kernel, src, dst, planes, program):
    threads = kernel_threads()
    scratch = np.empty(2 * program.scratch_numel * threads, dtype=dst.dtype)
    kernel(src.reshape(-1), dst.reshape(-1), planes, program.in_numel, program.out_numel,
           program.passes, program.offsets, program.indices, program.weights, scratch,
           program.scratch_numel, threads)
    return dst


# ------------------------------------------------------------------------------ public API
@docfiller
def resize(x, size=None, *, scale_factor=None, mode="nearest", align_corners=None,
           antialias=False, coordinate_transformation_mode=None, nearest_mode=None,
           cubic_coeff_a=None, exclude_outside=False, data_format="channels_first"):
    r"""Resize (up- or downsample) the spatial dimensions of a batch by interpolation.

    With only PyTorch's keywords (``size``, ``scale_factor``, ``mode``, ``align_corners``,
    ``antialias``) this is ``torch.nn.functional.interpolate``. Giving
    ``coordinate_transformation_mode`` switches to the semantics of the ONNX ``Resize``
    operator, through which TensorFlow, Keras and JAX conventions are reachable too (see the
    conventions page of the user guide).

    Parameters
    ----------
    x : array_like, shape (N, C, \*spatial) or (N, \*spatial, C)
        Input batch with 1, 2 or 3 spatial dimensions, channels-first or channels-last
        (``data_format``).
    %(resize_parameters)s
    %(data_format)s

    Returns
    -------
    y : ndarray, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        ``float32`` or ``float64``, see Notes; in the layout of ``x``, C-contiguous.

    Raises
    ------
    ValueError
        For an unknown mode, a keyword that does not apply to the mode or convention (e.g.
        ``align_corners`` with ``"nearest"``), both or neither of ``size`` and
        ``scale_factor``, non-positive sizes or scales, a ``size`` of the wrong length, an
        empty output, or an unknown ``data_format`` (or one for another number of spatial
        dimensions); the message names the parameter.
    TypeError
        For complex or non-numeric inputs and parameters of the wrong type.

    See Also
    --------
    resize_backward : the adjoint (the gradient with respect to ``x``).
    fastdeconv.sparse.resize_matrix : the explicit sparse matrix of this operator.

    Notes
    -----
    %(resize_notes)s

    ``size`` and ``scale_factor`` refer to the spatial dimensions in either layout.
    Channels-last input is resized natively (no transposition), with the same bits as the
    channels-first result.

    %(dtypes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> fastdeconv.resize(x, scale_factor=2).tolist()          # PyTorch's legacy "nearest"
    [[[0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]]]
    >>> fastdeconv.resize(x, 8, mode="linear").tolist()        # half-pixel centres
    [[[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]]]
    >>> fastdeconv.resize(x, 7, mode="linear", align_corners=True).tolist()
    [[[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]]]

    TensorFlow 1's default ``resize_bilinear`` (no half-pixel centres) is ONNX's
    ``"asymmetric"`` transformation:

    >>> fastdeconv.resize(x, 8, mode="linear",
    ...                   coordinate_transformation_mode="asymmetric").tolist()
    [[[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]]]

    It also downsamples; ``"area"`` averages (PyTorch's adaptive average pooling):

    >>> fastdeconv.resize(np.arange(8.0).reshape(1, 1, 2, 4), (1, 2), mode="area").tolist()
    [[[[2.5, 4.5]]]]

    Channels-last (Keras's ``UpSampling2D`` layout), here 2 channels of 1 x 2 pixels:

    >>> xl = np.array([[[[1.0, 10.0], [2.0, 20.0]]]])       # (N, H, W, C) = (1, 1, 2, 2)
    >>> fastdeconv.resize(xl, scale_factor=(1, 2), data_format="NHWC")[0, 0].tolist()
    [[1.0, 10.0], [1.0, 10.0], [2.0, 20.0], [2.0, 20.0]]
    """
    x = as_array(x, "x")
    dtype = result_dtype((x, "x"))
    layout = Layout.resolve(data_format, spatial_ndim(x, "x"))
    spec = resolve_resize(
        layout.spatial(x.shape), size, scale_factor=scale_factor, mode=mode,
        align_corners=align_corners, antialias=antialias,
        coordinate_transformation_mode=coordinate_transformation_mode,
        nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
    )
    x = as_compute_array(x, dtype)
    n, c = layout.batch_and_channels(x.shape)
    # the output first: an impossible size fails here, before the index tables are built
    y = allocate(layout.data_shape(n, c, spec.out_size), dtype, "output")
    planes, channels = layout.planes(x.shape)
    program = _program_for(spec, dtype, x, channels)
    if program.is_copy:
        return x.copy()
    if n * c == 0:
        return y
    return _run(_resize_kernels.resize_forward, x, y, planes, program)


@docfiller
def resize_backward(grad_output, input_shape, size=None, *, scale_factor=None, mode="nearest",
                    align_corners=None, antialias=False, coordinate_transformation_mode=None,
                    nearest_mode=None, cubic_coeff_a=None, exclude_outside=False,
                    data_format="channels_first"):
    r"""Gradient of :func:`resize` with respect to its input: the exact adjoint.

    For the (per-sample) matrix :math:`R` of ``resize(x, ...)`` this computes
    :math:`R^T g`: every output gradient is scattered back onto the input positions it was
    interpolated from, with the same weights.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, \*out_spatial) or (N, \*out_spatial, C)
        Gradient of the loss with respect to ``resize(x, ...)``, in the layout
        ``data_format``.
    input_shape : sequence of int
        Full shape of the resized input ``x`` in the same layout: ``(N, C, *spatial)`` or
        ``(N, *spatial, C)``.
    %(resize_parameters)s
    %(data_format)s

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``
        C-contiguous, in the layout ``data_format``.

    Raises
    ------
    ValueError, TypeError
        As :func:`resize`, and when ``grad_output`` does not have the output shape.

    See Also
    --------
    resize

    Notes
    -----
    The adjoint is parallel over the ``N * C`` planes and adds the contributions to one plane
    in a fixed order, so the result has the same bits for any thread count. It is the exact
    adjoint of :func:`resize` also where PyTorch's own backward is not: PyTorch computes the
    nearest-neighbour source index of its backward with a slightly different formula than its
    forward, which picks a different pixel for rare sizes (e.g. ``nearest-exact`` from 2 to
    41 pixels). Channels-last gradients are computed natively, with the same bits as in
    channels-first.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> g = np.ones((1, 1, 8))
    >>> fastdeconv.resize_backward(g, (1, 1, 4), scale_factor=2).tolist()
    [[[2.0, 2.0, 2.0, 2.0]]]

    It is the adjoint: :math:`\langle R x, g \rangle = \langle x, R^T g \rangle`.

    >>> rng = np.random.default_rng(0)
    >>> x, g = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2, 3, 9, 4))
    >>> kw = dict(mode="cubic", align_corners=True)
    >>> lhs = np.vdot(fastdeconv.resize(x, (9, 4), **kw), g)
    >>> rhs = np.vdot(x, fastdeconv.resize_backward(g, x.shape, (9, 4), **kw))
    >>> bool(np.isclose(lhs, rhs))
    True
    """
    grad_output = as_array(grad_output, "grad_output")
    dtype = result_dtype((grad_output, "grad_output"))
    input_shape = full_input_shape(input_shape, "resized")
    layout = Layout.resolve(data_format, len(input_shape) - 2)
    n, c = layout.batch_and_channels(input_shape)
    spec = resolve_resize(
        layout.spatial(input_shape), size, scale_factor=scale_factor, mode=mode,
        align_corners=align_corners, antialias=antialias,
        coordinate_transformation_mode=coordinate_transformation_mode,
        nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
        x_name="input_shape",
    )
    expected = layout.data_shape(n, c, spec.out_size)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the output shape {expected} of resize for "
                         f"input_shape {input_shape}, got {grad_output.shape}")
    grad_output = as_compute_array(grad_output, dtype)
    grad_x = allocate(input_shape, dtype, "input gradient")
    planes, channels = layout.planes(input_shape)
    program = _program_for(spec, dtype, grad_output, channels)
    if program.is_copy:
        return grad_output.copy()
    if n * c == 0:
        return grad_x
    return _run(_resize_kernels.resize_backward, grad_output, grad_x, planes, program)
