"""Plain-NumPy reference of :func:`fastdeconv.resize` and its adjoint.

Written independently of the library's plans (``fastdeconv._resize_plan``, which it does not
import): for every spatial dimension it builds the dense ``(out, in)`` interpolation matrix one
output at a time with scalar arithmetic, following the structure of the sources rather than
the library's vectorised formulas:

* PyTorch: ``area_pixel_compute_scale`` / ``area_pixel_compute_source_index``, the linear
  ``guard_index_and_lambda`` rule, ``upsample_get_value_bounded`` for cubic, the antialiased
  ``_compute_weights_aa`` loop, the nearest-neighbour index functions (with PyTorch's float32
  arithmetic for float32 tensors) and adaptive average pooling;
* ONNX: the ``Resize`` reference implementation's scheme — source coordinate, a ``ratio`` in
  ``(0, 1]``, the ``n`` nearest neighbours in an edge-padded input, per-mode coefficient
  functions, ``exclude_outside`` renormalisation.

The matrices are applied with :func:`numpy.tensordot` in float64; it is slow and meant for
small arrays.
"""

import math
from fractions import Fraction

import numpy as np

__all__ = ["resize_reference", "resize_backward_reference", "resize_matrices_reference"]

_ALIAS = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}


# ------------------------------------------------------------------------------- PyTorch
def _area_pixel_compute_scale(n_in, n_out, align_corners, scale):
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None else n_in / n_out


def _area_pixel_compute_source_index(scale, o, align_corners, cubic):
    if align_corners:
        return scale * o
    src = scale * (o + 0.5) - 0.5
    return 0.0 if (not cubic and src < 0) else src


def _torch_nearest(o, n_in, n_out, scale, exact, float32, two_d):
    """PyTorch's source index, with its float32 arithmetic (emulated with exact fractions).

    PyTorch's 2-D kernels use ``nearest_idx`` / ``nearest_exact_idx`` for every dtype, its 1-D
    and 3-D kernels a per-dtype rule.
    """
    if two_d:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(n_in) / np.float32(n_out)
        if not exact:
            if n_out == n_in:
                return o
            if n_out == 2 * n_in:
                return o // 2
            return min(int(math.floor(np.float32(o) * s)), n_in - 1)
        product = Fraction(2 * o + 1, 2) * Fraction(float(s))   # a double product ...
        return min(int(math.floor(np.float32(float(product)))), n_in - 1)   # ... floorf
    if float32:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(n_in) / np.float32(n_out)
        if not exact:
            return min(int(math.floor(np.float32(o) * s)), n_in - 1)
        # fused multiply-add "s * (o + 0.5) - 0.5", one rounding to float32
        r = np.float32(float(Fraction(float(s)) * Fraction(2 * o + 1, 2) - Fraction(1, 2)))
        r = max(r, np.float32(0))
        return min(int(math.floor(np.float32(r + np.float32(0.5)))), n_in - 1)
    s = 1.0 / scale if scale is not None else n_in / n_out
    if not exact:
        return min(int(math.floor(np.float32(o * s))), n_in - 1)
    r = max((o + 0.5) * s - 0.5, 0.0)
    return min(int(math.floor(np.float32(r + 0.5))), n_in - 1)


def _cubic_coefficients(t, a):
    def near(v):
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _aa_filter(mode, a):
    if mode == "linear":
        return lambda v: max(0.0, 1.0 - abs(v))

    def cubic(v):
        v = abs(v)
        if v < 1.0:
            return ((a + 2) * v - (a + 3)) * v * v + 1
        if v < 2.0:
            return (((v - 5) * v + 8) * v - 4) * a
        return 0.0
    return cubic


def _torch_row(o, n_in, n_out, scale, mode, align_corners, antialias, a, float32, two_d):
    """[(input index, weight), ...] of output ``o`` along one dimension, PyTorch conventions.

    Every tap PyTorch's kernel reads is listed, in its order, even with a zero weight and
    even when an index repeats: a NaN or inf under a zero weight makes the output NaN there.
    """
    row = []

    def add(i, w):
        row.append((i, w))

    if mode in ("nearest", "nearest-exact"):
        add(_torch_nearest(o, n_in, n_out, scale, mode == "nearest-exact", float32, two_d), 1.0)
    elif mode == "area":
        start = (o * n_in) // n_out
        end = ((o + 1) * n_in + n_out - 1) // n_out
        for i in range(start, end):
            add(i, 1.0 / (end - start))
    elif antialias:
        if n_in == n_out:
            add(o, 1.0)
            return row
        s = _area_pixel_compute_scale(n_in, n_out, align_corners, scale)
        support = (1.0 if mode == "linear" else 2.0) * (s if s >= 1.0 else 1.0)
        invscale = 1.0 / s if s >= 1.0 else 1.0
        center = s * (o + 0.5)
        xmin = max(int(center - support + 0.5), 0)
        xsize = min(int(center + support + 0.5), n_in) - xmin
        xsize = max(0, min(xsize, int(math.ceil(support)) * 2 + 1))
        filt = _aa_filter(mode, a)
        weights = [filt((j + xmin - center + 0.5) * invscale) for j in range(xsize)]
        total = sum(weights)
        for j, w in enumerate(weights):
            add(xmin + j, w / total if total != 0.0 else 0.0)
    elif mode == "linear":
        if n_in == n_out:  # PyTorch's copy: x[o] * 1 + x[o] * 0, whatever align_corners
            add(o, 1.0)
            add(o, 0.0)
            return row
        s = _area_pixel_compute_scale(n_in, n_out, align_corners, scale)
        real = _area_pixel_compute_source_index(s, o, align_corners, cubic=False)
        i0 = min(int(math.floor(real)), n_in - 1)
        lam = min(max(real - i0, 0.0), 1.0)
        i1 = i0 + (1 if i0 < n_in - 1 else 0)
        add(i0, 1.0 - lam)
        add(i1, lam)
    else:  # cubic, upsample_get_value_bounded
        s = _area_pixel_compute_scale(n_in, n_out, align_corners, scale)
        real = _area_pixel_compute_source_index(s, o, align_corners, cubic=True)
        i0 = min(int(math.floor(real)), n_in - 1)
        t = min(max(real - i0, 0.0), 1.0)
        for k, w in enumerate(_cubic_coefficients(t, a)):
            add(max(min(i0 - 1 + k, n_in - 1), 0), w)
    return row


# ---------------------------------------------------------------------------------- ONNX
def _onnx_x_original(o, n_in, n_out, scale, ctm):
    """ONNX ``x_original``, evaluated exactly (a fraction of the given float scale)."""
    s = Fraction(scale) if scale is not None else Fraction(n_out, n_in)
    o = Fraction(o)
    if ctm == "half_pixel":
        x = (o + Fraction(1, 2)) / s - Fraction(1, 2)
    elif ctm == "pytorch_half_pixel":
        x = (o + Fraction(1, 2)) / s - Fraction(1, 2) if n_out > 1 else Fraction(0)
    elif ctm == "align_corners":
        x = Fraction(0) if n_out == 1 else o * (n_in - 1) / (n_out - 1)
    elif ctm == "asymmetric":
        x = o / s
    elif ctm == "half_pixel_symmetric":
        adjustment = n_out / (s * n_in)
        offset = Fraction(n_in, 2) * (1 - adjustment)
        x = offset + (o + Fraction(1, 2)) / s - Fraction(1, 2)
    else:
        raise ValueError(ctm)
    return x


def _onnx_coefficients(ratio, s, mode, nearest_mode, a, antialias):
    if mode == "nearest":
        if ratio == 1:
            return [0.0, 1.0]
        if nearest_mode == "round_prefer_floor":
            return [float(ratio <= 0.5), float(ratio > 0.5)]
        if nearest_mode == "round_prefer_ceil":
            return [float(ratio < 0.5), float(ratio >= 0.5)]
        return [1.0, 0.0] if nearest_mode == "floor" else [0.0, 1.0]
    if not (antialias and s < 1.0):
        if mode == "linear":
            return [1.0 - ratio, ratio]
        return _cubic_coefficients(ratio, a)
    if mode == "linear":
        start = int(math.floor(-1 / s) + 1)
        coeffs = [max(0.0, 1.0 - abs((i - ratio) * s)) for i in range(start, 2 - start)]
    else:
        start = int(math.floor(-2 / s) + 1)
        filt = _aa_filter("cubic", a)
        coeffs = [filt(s * (i - ratio)) for i in range(start, 2 - start)]
    total = sum(coeffs)
    return [c / total for c in coeffs]


def _onnx_row(o, n_in, n_out, scale, mode, ctm, nearest_mode, a, exclude_outside, antialias):
    s = scale if scale is not None else n_out / n_in
    exact = _onnx_x_original(o, n_in, n_out, scale, ctm)
    x_int = math.floor(exact)
    if mode == "nearest":   # the rounding decision is exact
        ratio = 1 if exact == x_int else exact - x_int
    else:                   # interpolation weights in float64
        x = float(exact)
        x_int = math.floor(x)
        ratio = 1.0 if x == x_int else x - x_int
    coeffs = _onnx_coefficients(ratio, s, mode, nearest_mode, a, antialias)
    n = len(coeffs)
    # the n indices nearest to x, preferring the smaller on ties (ratio in (0, 1])
    first = x_int - (n // 2 - 1) - (1 if ratio == 1.0 else 0)
    taps = list(range(first, first + n))
    if exclude_outside:
        coeffs = [c if 0 <= t < n_in else 0.0 for c, t in zip(coeffs, taps)]
        total = sum(coeffs)
        coeffs = [c / total for c in coeffs] if total != 0.0 else coeffs
    row = {}
    for t, c in zip(taps, coeffs):
        i = min(max(t, 0), n_in - 1)  # edge padding
        row[i] = row.get(i, 0.0) + c
    return row


# ------------------------------------------------------------------------------- public
def _output_sizes(in_size, size, scale_factor):
    ndim = len(in_size)
    if size is not None:
        sizes = (size,) * ndim if np.ndim(size) == 0 else tuple(size)
        return tuple(int(v) for v in sizes), (None,) * ndim
    scales = (scale_factor,) * ndim if np.ndim(scale_factor) == 0 else tuple(scale_factor)
    scales = tuple(float(v) for v in scales)
    return tuple(int(math.floor(n * v)) for n, v in zip(in_size, scales)), scales


def resize_matrices_reference(input_size, size=None, *, scale_factor=None, mode="nearest",
                              align_corners=None, antialias=False,
                              coordinate_transformation_mode=None, nearest_mode=None,
                              cubic_coeff_a=None, exclude_outside=False, dtype=np.float64):
    """Dense ``(out, in)`` interpolation matrix of every spatial dimension of a resize.

    ``input_size`` is the spatial size; ``dtype`` selects PyTorch's float32 or float64 index
    arithmetic of the nearest modes. Keywords as :func:`fastdeconv.resize` (assumed valid).
    """
    matrices = []
    for n_in, rows in zip(input_size, _resize_rows(
            input_size, size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
            antialias=antialias, coordinate_transformation_mode=coordinate_transformation_mode,
            nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a,
            exclude_outside=exclude_outside, dtype=dtype)):
        dense = np.zeros((len(rows), n_in))
        for o, row in enumerate(rows):
            for i, w in row:
                dense[o, i] += w
        matrices.append(dense)
    return matrices


def _resize_rows(input_size, size, *, scale_factor=None, mode="nearest", align_corners=None,
                 antialias=False, coordinate_transformation_mode=None, nearest_mode=None,
                 cubic_coeff_a=None, exclude_outside=False, dtype=np.float64):
    """Per spatial dimension, per output: the taps ``[(input index, weight), ...]`` read.

    PyTorch rows list every tap its kernels read (see :func:`_torch_row`); ONNX rows list
    their non-zero weights (ONNX Runtime's reading pattern is not emulated).
    """
    mode = _ALIAS.get(mode, mode)
    out_size, scales = _output_sizes(tuple(input_size), size, scale_factor)
    if sum(out_size) + sum(input_size) > REFERENCE_MAX_ROWS:
        raise MemoryError(f"the resize reference builds its rows in Python; {out_size} "
                          f"outputs from {tuple(input_size)} is beyond its "
                          f"{REFERENCE_MAX_ROWS} rows")
    float32 = np.dtype(dtype) == np.float32
    ctm = coordinate_transformation_mode
    if cubic_coeff_a is None:
        a = -0.5 if (antialias and ctm is None) else -0.75
    else:
        a = float(cubic_coeff_a)
    if ctm is not None and mode == "nearest" and nearest_mode is None:
        nearest_mode = "round_prefer_floor"
    per_dim = []
    for n_in, n_out, scale in zip(input_size, out_size, scales):
        if ctm is not None:
            rows = [[(i, w) for i, w in _onnx_row(o, n_in, n_out, scale, mode, ctm,
                                                  nearest_mode, a, exclude_outside,
                                                  antialias).items() if w != 0]
                    for o in range(n_out)]
        else:
            rows = [_torch_row(o, n_in, n_out, scale, mode, bool(align_corners), antialias,
                               a, float32, len(input_size) == 2) for o in range(n_out)]
        per_dim.append(rows)
    return per_dim


def _apply(x, input_size, rows_per_dim, *, backward=False):
    """Apply the taps dimension by dimension, one product per tap: a tap that is not read
    contributes nothing, one read under a zero weight gives ``0 * x`` (NaN for inf, NaN).

    The last dimension first, as PyTorch nests its sums (the adjoint: the first dimension
    first); with infinities the order decides where ``inf - inf`` gives NaN."""
    y = np.asarray(x, dtype=np.float64)
    dims = list(enumerate(zip(input_size, rows_per_dim)))
    for d, (n_in, rows) in (dims if backward else dims[::-1]):
        src = np.moveaxis(y, 2 + d, 0)
        out = np.zeros(((n_in if backward else len(rows)),) + src.shape[1:])
        with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf is NaN, silently
            for o, row in enumerate(rows):
                for i, w in row:
                    if backward:  # each output's gradient goes back to the taps it read
                        out[i] += w * src[o]
                    else:
                        out[o] += w * src[i]
        y = np.moveaxis(out, 0, 2 + d)
    return y


#: The reference keeps one Python list of taps per output and dimension: beyond this many
#: rows it raises MemoryError instead of filling the memory.
REFERENCE_MAX_ROWS = 10**7


def _result_dtype(x):
    dt = np.asarray(x).dtype
    return np.float32 if dt in (np.float16, np.float32) else np.float64


def resize_reference(x, size=None, **kwargs):
    """Reference :func:`fastdeconv.resize` (float64 arithmetic, result in the policy dtype).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import resize_reference
    >>> resize_reference(np.arange(3.0).reshape(1, 1, 3), 6, mode="linear").tolist()
    [[[0.0, 0.25, 0.75, 1.25, 1.75, 2.0]]]
    """
    x = np.asarray(x)
    dtype = _result_dtype(x)
    rows = _resize_rows(x.shape[2:], size, dtype=dtype, **kwargs)
    return _apply(x, x.shape[2:], rows).astype(dtype)


def resize_backward_reference(grad_output, input_shape, size=None, **kwargs):
    """Reference :func:`fastdeconv.resize_backward`: the transposed taps, in float64."""
    grad_output = np.asarray(grad_output)
    dtype = _result_dtype(grad_output)
    spatial = tuple(input_shape)[2:]
    rows = _resize_rows(spatial, size, dtype=dtype, **kwargs)
    return _apply(grad_output, spatial, rows, backward=True).astype(dtype)
