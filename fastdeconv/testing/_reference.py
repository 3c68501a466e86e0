"""Plain NumPy reference implementations of the convolution operators.

These functions are the test oracle of fastdeconv, in the spirit of JAX's
``lax_reference``: short, slow, obviously correct, and independent of the library they
check. This module imports nothing from fastdeconv (no compiled kernels, no
``ConvGeometry``); it parses padding itself and uses different algorithms from the kernels:

- ``conv_reference``: ``numpy.pad`` + ``sliding_window_view`` + ``tensordot`` per group,
  dilation by slicing the window;
- ``conv_transpose_reference``: zero insertion (dilating the input by ``stride``), a
  spatially flipped kernel with input and output channels swapped per group, and a
  stride-1 convolution whose negative padding crops;
- gradients of the padding modes: ``numpy.pad`` applied to an index array, then a
  scatter-add back onto the input.

Everything is computed in float64 unless ``dtype=`` says otherwise.
"""

from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv_reference",
    "conv_transpose_reference",
    "conv_weight_grad_reference",
    "conv_backward_reference",
    "conv_transpose_backward_reference",
]

# PyTorch padding_mode -> numpy.pad mode.
_NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                    "circular": "wrap"}


# ---------------------------------------------------------------------------- parameters
def _per_dim(value, ndim):
    if np.ndim(value) == 0:
        return (int(value),) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"expected {ndim} values, got {value}")
    return value


def _extent(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _padding_pairs(padding, in_sizes, kernel, stride, dilation, *, transpose):
    """``(pairs, extra_output_padding)`` from an int, ints, pairs, or a padding string."""
    ndim = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim, (0,) * ndim
        if padding == "full":
            return tuple((e - 1, e - 1) for e in _extent(kernel, dilation)), (0,) * ndim
        if padding not in ("same", "same_lower"):
            raise ValueError(f"unknown padding {padding!r}")
        pairs, extra = [], []
        for n, k_eff, s in zip(in_sizes, _extent(kernel, dilation), stride):
            # forward: out = ceil(n / s); transposed: out = n * s.
            total = k_eff - s if transpose else max((-(-n // s) - 1) * s + k_eff - n, 0)
            extra.append(max(-total, 0))
            total = max(total, 0)
            low, high = total // 2, total - total // 2
            pairs.append((high, low) if padding == "same_lower" else (low, high))
        return tuple(pairs), tuple(extra)
    if np.ndim(padding) == 2:
        pairs = tuple((int(b), int(a)) for b, a in padding)
        if len(pairs) != ndim:
            raise ValueError(f"expected {ndim} padding pairs, got {padding}")
        return pairs, (0,) * ndim
    return tuple((p, p) for p in _per_dim(padding, ndim)), (0,) * ndim


def _pad(x, pairs, padding_mode="zeros"):
    """Pad the spatial axes (all but the first two)."""
    if padding_mode not in _NUMPY_PAD_MODES:
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    return np.pad(x, ((0, 0), (0, 0)) + tuple(pairs), mode=_NUMPY_PAD_MODES[padding_mode])


def _pad_or_crop(x, pairs):
    """Zero padding where a pair entry is positive, cropping where it is negative.

    Pads first, then crops (``lax.pad`` semantics: a crop on one side may reach into the
    padding added on the other).
    """
    x = _pad(x, [(max(b, 0), max(a, 0)) for b, a in pairs])
    crop = tuple(slice(max(-b, 0), max(max(-b, 0), x.shape[2 + d] - max(-a, 0)))
                 for d, (b, a) in enumerate(pairs))
    return x[(slice(None), slice(None)) + crop]


def _dilate(x, stride):
    """Insert ``stride - 1`` zeros between neighbouring spatial samples."""
    shape = x.shape[:2] + tuple((n - 1) * s + 1 for n, s in zip(x.shape[2:], stride))
    out = np.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = x
    return out


# ---------------------------------------------------------------------------- core
def _windows(xp, kernel, stride, dilation, out_sizes=None):
    """View of shape (N, C, *out, *kernel): the (strided, dilated) windows of padded ``xp``."""
    ndim = len(kernel)
    spatial = tuple(range(2, 2 + ndim))
    view = sliding_window_view(xp, _extent(kernel, dilation), axis=spatial)
    select = (slice(None), slice(None))
    select += tuple(slice(None, None if out_sizes is None else out_sizes[d] * s, s)
                    for d, s in enumerate(stride))
    select += tuple(slice(None, None, d) for d in dilation)
    return view[select]


def _correlate(xp, weight, stride, dilation, groups):
    """Grouped cross-correlation of an already padded input (no further padding)."""
    ndim = weight.ndim - 2
    win = _windows(xp, weight.shape[2:], stride, dilation)
    cig, cog = weight.shape[1], weight.shape[0] // groups
    blocks = []
    for g in range(groups):
        w = weight[g * cog:(g + 1) * cog]
        # contract channels and taps: (N, cig, *out, *k) x (cog, cig, *k) -> (N, *out, cog)
        y = np.tensordot(win[:, g * cig:(g + 1) * cig], w,
                         axes=([1] + list(range(2 + ndim, 2 + 2 * ndim)),
                               [1] + list(range(2, 2 + ndim))))
        blocks.append(np.moveaxis(y, -1, 1))
    return np.concatenate(blocks, axis=1)


def _weight_grad(xp, grad_output, weight_shape, stride, dilation, groups):
    """Gradient of ``<_correlate(xp, w), grad_output>`` with respect to ``w``."""
    ndim = len(weight_shape) - 2
    win = _windows(xp, weight_shape[2:], stride, dilation, out_sizes=grad_output.shape[2:])
    cig, cog = weight_shape[1], weight_shape[0] // groups
    axes = list(range(2, 2 + ndim))
    blocks = []
    for g in range(groups):
        # (N, cog, *out) x (N, cig, *out, *k) -> (cog, cig, *k)
        blocks.append(np.tensordot(grad_output[:, g * cog:(g + 1) * cog],
                                   win[:, g * cig:(g + 1) * cig],
                                   axes=([0] + axes, [0] + axes)))
    return np.concatenate(blocks, axis=0)


def _fold_padding(grad_padded, in_sizes, pairs, padding_mode):
    """Adjoint of ``_pad``: add every padded position's gradient onto its source position.

    The sources come from applying ``numpy.pad`` to an array of flat input indices (with -1
    in the zero border), so this is the derivative of ``numpy.pad`` itself.
    """
    n_in = prod(in_sizes)
    index = np.arange(n_in).reshape((1, 1) + tuple(in_sizes))
    if padding_mode == "zeros":
        index = np.pad(index, ((0, 0), (0, 0)) + tuple(pairs), constant_values=-1)
    else:
        index = _pad(index, pairs, padding_mode)
    index = index.ravel()
    batch = grad_padded.shape[:2]
    flat = grad_padded.reshape(prod(batch), prod(grad_padded.shape[2:]))  # also when empty
    keep = index >= 0
    folded = np.zeros((n_in, flat.shape[0]), dtype=grad_padded.dtype)
    np.add.at(folded, index[keep], flat[:, keep].T)
    return folded.T.reshape(batch + tuple(in_sizes))


def _flip_transpose_kernel(weight, groups):
    """(C_in, C_out/g, *k) -> (C_out, C_in/g, *k): swap channels per group, flip space."""
    cig = weight.shape[0] // groups
    blocks = [np.swapaxes(weight[g * cig:(g + 1) * cig], 0, 1) for g in range(groups)]
    flipped = np.concatenate(blocks, axis=0)
    return flipped[(slice(None), slice(None)) + (slice(None, None, -1),) * (weight.ndim - 2)]


def _as(array, dtype):
    return None if array is None else np.asarray(array, dtype=dtype)


def _add_bias(y, bias):
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def _conv_params(x_shape, kernel, stride, padding, dilation):
    ndim = len(kernel)
    stride, dilation = _per_dim(stride, ndim), _per_dim(dilation, ndim)
    pairs, _ = _padding_pairs(padding, x_shape[2:], kernel, stride, dilation, transpose=False)
    return stride, dilation, pairs


def _transpose_params(x_shape, kernel, stride, padding, output_padding, dilation):
    ndim = len(kernel)
    stride, dilation = _per_dim(stride, ndim), _per_dim(dilation, ndim)
    pairs, extra = _padding_pairs(padding, x_shape[2:], kernel, stride, dilation, transpose=True)
    output_padding = tuple(op + e for op, e in zip(_per_dim(output_padding, ndim), extra))
    return stride, dilation, pairs, output_padding


# ---------------------------------------------------------------------------- public
def conv_reference(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros", dtype=np.float64):
    """N-d grouped cross-correlation with PyTorch's semantics, in plain NumPy.

    Parameters
    ----------
    x : array_like, shape (N, C_in, \\*spatial)
    weight : array_like, shape (C_out, C_in / groups, \\*kernel_size)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (before, after) pairs, or str
        ``"valid"``, ``"same"`` (output ``ceil(in / stride)``, odd extra pad at the end) or
        ``"same_lower"`` (odd extra pad at the start).
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        ``numpy.pad`` modes constant, reflect, edge and wrap.
    dtype : dtype, default float64
        Compute and result dtype.

    Returns
    -------
    y : ndarray, shape (N, C_out, \\*out_spatial)
        ``out = (in + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1``.
    """
    x, weight, bias = _as(x, dtype), _as(weight, dtype), _as(bias, dtype)
    stride, dilation, pairs = _conv_params(x.shape, weight.shape[2:], stride, padding, dilation)
    y = _correlate(_pad(x, pairs, padding_mode), weight, stride, dilation, groups)
    return _add_bias(y, bias)


def conv_transpose_reference(x, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                             dilation=1, groups=1, dtype=np.float64):
    """N-d grouped transposed convolution (PyTorch's semantics), by zero insertion.

    The input is dilated by ``stride`` (``stride - 1`` zeros between samples), then correlated
    at stride 1 with the spatially flipped kernel whose input and output channels are swapped
    per group, after padding by ``dilation * (k - 1) - pad_before`` before and
    ``dilation * (k - 1) - pad_after + output_padding`` after (negative values crop).

    Parameters
    ----------
    x : array_like, shape (N, C_in, \\*spatial)
    weight : array_like, shape (C_in, C_out / groups, \\*kernel_size)
    bias : array_like, shape (C_out,), optional
    stride, output_padding, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (before, after) pairs, or str
        Padding of the forward convolution; ``"same"`` gives output size ``in * stride``.
    groups : int
    dtype : dtype, default float64

    Returns
    -------
    y : ndarray, shape (N, C_out, \\*out_spatial)
        ``out = (in - 1) * stride - pad_before - pad_after + dilation * (k - 1) + 1 +
        output_padding``.
    """
    x, weight, bias = _as(x, dtype), _as(weight, dtype), _as(bias, dtype)
    kernel = weight.shape[2:]
    stride, dilation, pairs, output_padding = _transpose_params(
        x.shape, kernel, stride, padding, output_padding, dilation)
    full = [d * (k - 1) for k, d in zip(kernel, dilation)]
    border = [(f - b, f - a + op) for f, (b, a), op in zip(full, pairs, output_padding)]
    xp = _pad_or_crop(_dilate(x, stride), border)
    y = _correlate(xp, _flip_transpose_kernel(weight, groups), (1,) * len(kernel), dilation,
                   groups)
    return _add_bias(y, bias)


def conv_weight_grad_reference(x, grad_output, weight_shape, *, stride=1, padding=0,
                               dilation=1, groups=1, padding_mode="zeros", dtype=np.float64):
    """Gradient of ``<conv_reference(x, w, ...), grad_output>`` with respect to ``w``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, \\*spatial)
    grad_output : array_like, shape (N, C_out, \\*out_spatial)
    weight_shape : tuple of int
        ``(C_out, C_in / groups, *kernel_size)``.
    stride, padding, dilation, groups, padding_mode, dtype
        As for :func:`conv_reference`.

    Returns
    -------
    grad_weight : ndarray, shape ``weight_shape``
    """
    x, grad_output = _as(x, dtype), _as(grad_output, dtype)
    weight_shape = tuple(weight_shape)
    stride, dilation, pairs = _conv_params(x.shape, weight_shape[2:], stride, padding, dilation)
    return _weight_grad(_pad(x, pairs, padding_mode), grad_output, weight_shape, stride,
                        dilation, groups)


def conv_backward_reference(x, weight, grad_output, *, stride=1, padding=0, dilation=1,
                            groups=1, padding_mode="zeros", dtype=np.float64):
    """Gradients of ``<conv_reference(x, weight, bias, ...), grad_output>``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, \\*spatial)
    weight : array_like, shape (C_out, C_in / groups, \\*kernel_size)
    grad_output : array_like, shape (N, C_out, \\*out_spatial)
    stride, padding, dilation, groups, padding_mode, dtype
        As for :func:`conv_reference`.

    Returns
    -------
    grad_x : ndarray, shape of ``x``
        Transposed convolution of ``grad_output`` onto the padded input, folded back onto
        ``x`` through the padding (for reflect/replicate/circular the border gradients are
        added to the input positions they copy).
    grad_weight : ndarray, shape of ``weight``
    grad_bias : ndarray, shape (C_out,)
    """
    x, weight, grad_output = _as(x, dtype), _as(weight, dtype), _as(grad_output, dtype)
    kernel = weight.shape[2:]
    stride, dilation, pairs = _conv_params(x.shape, kernel, stride, padding, dilation)
    padded_sizes = [n + b + a for n, (b, a) in zip(x.shape[2:], pairs)]
    # Transposed convolution back onto the padded input; positions the strided windows
    # never reach (the remainder of the floor in the output size) get output padding.
    remainder = [
        p - ((o - 1) * s + e) for p, o, s, e in
        zip(padded_sizes, grad_output.shape[2:], stride, _extent(kernel, dilation))
    ]
    grad_padded = conv_transpose_reference(grad_output, weight, stride=stride, padding=0,
                                           output_padding=remainder, dilation=dilation,
                                           groups=groups, dtype=dtype)
    grad_x = _fold_padding(grad_padded, x.shape[2:], pairs, padding_mode)
    grad_w = _weight_grad(_pad(x, pairs, padding_mode), grad_output, weight.shape, stride,
                          dilation, groups)
    grad_b = grad_output.sum(axis=(0,) + tuple(range(2, grad_output.ndim)))
    return grad_x, grad_w, grad_b


def conv_transpose_backward_reference(x, weight, grad_output, *, stride=1, padding=0,
                                      output_padding=0, dilation=1, groups=1,
                                      dtype=np.float64):
    """Gradients of ``<conv_transpose_reference(x, weight, bias, ...), grad_output>``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, \\*spatial)
    weight : array_like, shape (C_in, C_out / groups, \\*kernel_size)
    grad_output : array_like, shape (N, C_out, \\*out_spatial)
    stride, padding, output_padding, dilation, groups, dtype
        As for :func:`conv_transpose_reference`.

    Returns
    -------
    grad_x : ndarray, shape of ``x``
        The forward convolution of ``grad_output`` (cropped to ``x``'s spatial size when
        ``output_padding >= stride`` makes that convolution longer).
    grad_weight : ndarray, shape of ``weight``
    grad_bias : ndarray, shape (C_out,)
    """
    x, weight, grad_output = _as(x, dtype), _as(weight, dtype), _as(grad_output, dtype)
    stride, dilation, pairs, _ = _transpose_params(x.shape, weight.shape[2:], stride, padding,
                                                   output_padding, dilation)
    padded = _pad(grad_output, pairs)
    crop = (slice(None), slice(None)) + tuple(slice(n) for n in x.shape[2:])
    grad_x = _correlate(padded, weight, stride, dilation, groups)[crop]
    # y[n, co, o*s - p + t*d] += x[n, ci, o] * w[ci, co, t]: the weight gradient of a
    # convolution whose input is grad_output and whose output gradient is x.
    grad_w = _weight_grad(padded, x, weight.shape, stride, dilation, groups)
    grad_b = grad_output.sum(axis=(0,) + tuple(range(2, grad_output.ndim)))
    return grad_x, grad_w, grad_b
