"""Chunked :func:`conv`, :func:`conv_transpose` and their backward functions."""

import numpy as np

import fastdeconv
from . import _chunks
from ._docs import documented
from ._inputs import as_dask, empty_batch, extent, in_memory, padding_pairs, per_dim
from ._reductions import bias_gradient, weight_gradient
from ._stencil import Stencil, conv_plans, fold_padding, stencil, transposed_plans

__all__ = ["conv", "conv_transpose", "conv_backward", "conv_transpose_backward"]


class _Geometry:
    """Per-dimension kernel, stride, dilation, resolved padding and dilated extent."""

    def __init__(self, in_size, weight, stride, padding, dilation, transpose):
        ndim = len(in_size)
        self.kernel = tuple(weight.shape[2:])
        self.stride = per_dim(stride, ndim)
        self.dilation = per_dim(dilation, ndim)
        self.pairs = padding_pairs(padding, in_size, self.kernel, self.stride, self.dilation,
                                   transpose)
        self.extent = extent(self.kernel, self.dilation)

    def dims(self):
        return zip(self.extent, self.stride, self.pairs)


def _edges(array):
    return [_chunks.offsets(c) for c in array.chunks[2:]]


def _cast(array, dtype):
    return None if array is None else np.asarray(array).astype(dtype, copy=False)


def _backward_operands(in_memory_op, grad_output, x, weight, **kwargs):
    """Dask operands, the in-memory weight in the compute dtype, the in-memory function's
    result on an empty batch (validation; which gradients are wanted) and the dtype."""
    gy, x = as_dask(grad_output, "grad_output"), as_dask(x, "x")
    weight = in_memory(weight, "weight")
    probe = in_memory_op(empty_batch(gy), empty_batch(x), weight, **kwargs)
    if gy.shape[0] != x.shape[0]:
        raise ValueError(f"grad_output must have the batch size of x ({x.shape[0]}), got shape "
                         f"{gy.shape}")
    dtype = next(p for p in probe if p is not None).dtype
    return gy, x, _cast(weight, dtype), probe, dtype


def _like(result, x):
    """``result`` rechunked to ``x``'s chunks where they differ (grad_x is chunked like x)."""
    return result if result.chunks == x.chunks else result.rechunk(x.chunks)


def _forward(kind, x, weight, bias, stride, padding, dilation, groups, **kwargs):
    """A chunked forward operator: validate with the in-memory one, plan, build the stencil.

    Output chunk edges: ``ceil(b / s)`` of the input's for the convolution, ``b s`` for the
    transposed convolution.
    """
    transpose = kind == "transpose"
    x, weight, bias = as_dask(x, "x"), in_memory(weight, "weight"), in_memory(bias, "bias")
    in_memory_op = fastdeconv.conv_transpose if transpose else fastdeconv.conv
    probe = in_memory_op(empty_batch(x), weight, bias, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, **kwargs)
    weight, bias = _cast(weight, probe.dtype), _cast(bias, probe.dtype)
    g = _Geometry(x.shape[2:], weight, stride, padding, dilation, transpose=transpose)
    out_edges, plans = [], []
    for n, edges, o, (k_e, s, pads) in zip(x.shape[2:], _edges(x), probe.shape[2:], g.dims()):
        if transpose:
            out_edges.append(_chunks.upsampled_output_offsets(edges, o, s))
            plans.append(transposed_plans(n, out_edges[-1], k_e, s, pads[0]))
        else:
            out_edges.append(_chunks.strided_output_offsets(edges, s, o))
            plans.append(conv_plans(n, out_edges[-1], k_e, s, pads[0],
                                    kwargs["padding_mode"]))
    spec = Stencil(kind, g.stride, g.dilation, int(groups), probe.dtype)
    return stencil(in_memory_op.__name__, x, weight, bias, spec, plans, out_edges)


@documented
def conv(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros"):
    return _forward("conv", x, weight, bias, stride, padding, dilation, groups,
                    padding_mode=padding_mode)


@documented
def conv_transpose(x, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                   dilation=1, groups=1, output_size=None):
    return _forward("transpose", x, weight, bias, stride, padding, dilation, groups,
                    output_padding=output_padding, output_size=output_size)


def _parameter_gradients(probe, gy, x, weight, g, groups, dtype, *, transpose, plans):
    """``(grad_weight, grad_bias)``, each None unless the in-memory probe computed it;
    ``plans()`` gives the per-chunk ranges of the weight gradient's partials."""
    grad_weight = grad_bias = None
    if probe[1] is not None:
        grad_weight = weight_gradient(gy, x, weight, transpose=transpose, stride=g.stride,
                                      dilation=g.dilation, groups=int(groups), plans=plans(),
                                      dtype=dtype)
    if probe[2] is not None:
        grad_bias = bias_gradient(gy, dtype)
    return grad_weight, grad_bias


def _padded_edges(edges, before, after):
    """Edges over the padded input: the padding is a chunk of its own at each end."""
    n = edges[-1]
    inner = [before + e for e in edges]
    return tuple(sorted({0, *inner, n + before + after}))


@documented
def conv_backward(grad_output, x, weight, *, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", grads=("x", "weight", "bias")):
    gy, x, weight, probe, dtype = _backward_operands(
        fastdeconv.conv_backward, grad_output, x, weight, stride=stride, padding=padding,
        dilation=dilation, groups=groups, padding_mode=padding_mode, grads=grads)
    g = _Geometry(x.shape[2:], weight, stride, padding, dilation, transpose=False)
    spec = Stencil("transpose", g.stride, g.dilation, int(groups), dtype)
    grad_x = None
    if probe[0] is not None:
        if padding_mode == "zeros":
            plans = [transposed_plans(m, e, k_e, s, pads[0])
                     for m, e, (k_e, s, pads) in zip(gy.shape[2:], _edges(x), g.dims())]
            grad_x = stencil("conv_backward_x", gy, weight, None, spec, plans, _edges(x))
        else:
            padded = [_padded_edges(e, *pads) for e, pads in zip(_edges(x), g.pairs)]
            plans = [transposed_plans(m, e, k_e, s, 0)
                     for m, e, (k_e, s, _) in zip(gy.shape[2:], padded, g.dims())]
            grad_padded = stencil("conv_backward_padded", gy, weight, None, spec, plans, padded)
            grad_x = fold_padding(grad_padded, x.chunks, g.pairs, padding_mode)
        grad_x = _like(grad_x, x)
    grad_weight, grad_bias = _parameter_gradients(
        probe, gy, x, weight, g, groups, dtype, transpose=False,
        plans=lambda: [[(p[0], p[1]) for p in conv_plans(n, e, k_e, s, pads[0], padding_mode)]
                       for n, e, (k_e, s, pads) in zip(x.shape[2:], _edges(gy), g.dims())])
    return grad_x, grad_weight, grad_bias


def _transpose_weight_plans(x_edges, out_size, kernel_extent, stride, crop_before):
    """Per chunk of x: the range of grad_output its outputs reach, and the padding that crops
    the chunk's in-memory transposed convolution to that range."""
    plans = []
    for j0, j1 in zip(x_edges[:-1], x_edges[1:]):
        full0, full1 = j0 * stride, (j1 - 1) * stride + kernel_extent
        f0, f1 = max(full0, crop_before), min(full1, crop_before + out_size)
        if f0 >= f1:
            plans.append((None, (0, 0)))
        else:
            plans.append(((f0 - crop_before, f1 - crop_before), (f0 - full0, full1 - f1)))
    return plans


@documented
def conv_transpose_backward(grad_output, x, weight, *, stride=1, padding=0, output_padding=0,
                            dilation=1, groups=1, output_size=None,
                            grads=("x", "weight", "bias")):
    gy, x, weight, probe, dtype = _backward_operands(
        fastdeconv.conv_transpose_backward, grad_output, x, weight, stride=stride,
        padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
        output_size=output_size, grads=grads)
    g = _Geometry(x.shape[2:], weight, stride, padding, dilation, transpose=True)
    grad_x = None
    if probe[0] is not None:
        spec = Stencil("conv", g.stride, g.dilation, int(groups), dtype)
        plans = [conv_plans(m, e, k_e, s, pads[0])
                 for m, e, (k_e, s, pads) in zip(gy.shape[2:], _edges(x), g.dims())]
        grad_x = _like(stencil("conv_transpose_backward_x", gy, weight, None, spec, plans,
                               _edges(x)), x)
    grad_weight, grad_bias = _parameter_gradients(
        probe, gy, x, weight, g, groups, dtype, transpose=True,
        plans=lambda: [_transpose_weight_plans(e, m, k_e, s, pads[0])
                       for e, m, (k_e, s, pads) in zip(_edges(x), gy.shape[2:], g.dims())])
    return grad_x, grad_weight, grad_bias
