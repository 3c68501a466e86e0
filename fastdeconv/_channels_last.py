"""Pointwise convolutions computed natively on channels-last data.

A 1x1 convolution with unit stride and no padding is one matrix product per group. On
channels-last data ``(N, *spatial, C)`` the rows of that product are the positions of every
sample, already contiguous: ``y = x.reshape(-1, C_in) @ W.T`` is a single GEMM over the whole
batch, with no transposing copy on the way in or out. Every other geometry is computed on a
channels-first copy (:mod:`fastdeconv._conv`). The GEMM is the packed engine's
(:mod:`fastdeconv._ext._packed_gemm`): its result does not depend on the thread count.

Shapes (``P`` the positions of one sample, ``W`` the 2-d weight)::

    conv            y  = x  @ W.T      W: (C_out, C_in)
    conv_transpose  y  = x  @ W        W: (C_in, C_out)
    their gradients gx = gy @ W or gy @ W.T,  gW = gy.T @ x  or  x.T @ gy
"""

import numpy as np

from ._ext import _packed_gemm
from ._threads import kernel_threads

__all__ = ["is_native", "pointwise_product", "pointwise_weight_grad", "pointwise_backward"]

_MAX_ROWS = 2**31 - 1


def is_native(problem, layout):
    """True when the channels-last call runs as one GEMM on the caller's array."""
    g = problem.geometry
    return (layout.channels_last and problem.groups == 1 and g.is_pointwise
            and problem.batch > 0 and problem.batch * g.input_numel <= _MAX_ROWS
            and problem.c_in <= _MAX_ROWS and problem.c_out <= _MAX_ROWS)


def _rows(array):
    return array.reshape(-1, array.shape[-1])


def pointwise_product(data, weight, bias=None, *, transpose_weight):
    """``data @ W.T`` (``transpose_weight``) or ``data @ W`` on channels-last ``data``.

    ``data`` is C-contiguous ``(N, *spatial, C)``, ``weight`` the C-contiguous 1x1 kernel
    ``(A, B, 1, ...)``; returns the C-contiguous channels-last product with ``bias`` added.
    """
    w2 = weight.reshape(weight.shape[0], weight.shape[1])
    channels = w2.shape[0] if transpose_weight else w2.shape[1]
    out = np.empty(data.shape[:-1] + (channels,), dtype=data.dtype)
    _packed_gemm.gemm(_rows(data), w2, _rows(out), trans_b=transpose_weight,
                      threads=kernel_threads())
    if bias is not None:
        out += bias
    return out


def pointwise_weight_grad(left, right, weight_shape):
    """``left_rows.T @ right_rows`` reshaped to the 1x1 ``weight_shape``: the weight gradient,
    a reduction over every position of the batch (blocked by shape, not by threads)."""
    a, b = _rows(left), _rows(right)
    out = np.empty((a.shape[1], b.shape[1]), dtype=a.dtype)
    _packed_gemm.gemm(a, b, out, trans_a=True, threads=kernel_threads())
    return out.reshape(weight_shape)


def pointwise_backward(grad_output, x, weight, wanted, *, transpose):
    """``(grad_x, grad_weight, grad_bias)`` of a native 1x1 call (``transpose``: of
    conv_transpose), each None unless its name is in ``wanted``; canonical weight layout."""
    grad_x = grad_weight = grad_bias = None
    if "x" in wanted:
        grad_x = pointwise_product(grad_output, weight, transpose_weight=transpose)
    if "weight" in wanted:
        left, right = (x, grad_output) if transpose else (grad_output, x)
        grad_weight = pointwise_weight_grad(left, right, weight.shape)
    if "bias" in wanted:
        with np.errstate(invalid="ignore", over="ignore"):   # as the compiled kernels
            grad_bias = _rows(grad_output).sum(axis=0)
    return grad_x, grad_weight, grad_bias
