"""One-dimensional interpolation plans: the index arithmetic of :func:`fastdeconv.resize`.

Resizing is separable: along each spatial dimension, output position ``o`` is a weighted sum of
a few input positions. A *plan* lists them in CSR form::

    y[o] = sum(weights[k] * x[indices[k]] for k in range(offsets[o], offsets[o + 1]))

Every plan comes from **one** function per mode, :func:`plan_1d`, which first maps each output
index to a source coordinate (the framework convention: PyTorch's ``area_pixel_compute_*`` and
``nearest*_idx`` rules, or one of ONNX ``Resize``'s ``coordinate_transformation_mode``
formulas) and then turns the coordinate into taps and weights. The same plan feeds the
compiled forward kernel, its adjoint (the scatter of the same weights) and the sparse matrix
(:func:`fastdeconv.sparse.resize_matrix`, the Kronecker product of the per-dimension plan
matrices), so the three agree by construction; the independent check is the NumPy reference
in :mod:`fastdeconv.testing`, which evaluates the coordinate formulas on its own.

Entries with an exactly zero weight are dropped; repeated indices (edge clamping) are kept and
summed by every consumer.
"""

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import MAX_SPATIAL, check_workspace

__all__ = [
    "MODES",
    "COORDINATE_MODES",
    "NEAREST_MODES",
    "ResizeSpec",
    "Plan1D",
    "plan_1d",
    "resolve_resize",
]

#: Canonical modes and their accepted aliases (alias -> (canonical, required spatial rank)).
MODES = ("nearest", "nearest-exact", "linear", "cubic", "area")
_ALIASES = {
    "nearest": ("nearest", None),
    "nearest-exact": ("nearest-exact", None),
    "linear": ("linear", None),
    "bilinear": ("linear", 2),
    "trilinear": ("linear", 3),
    "cubic": ("cubic", None),
    "bicubic": ("cubic", 2),
    "area": ("area", None),
}
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")

#: Default Keys cubic coefficient: PyTorch's bicubic (and ONNX's default), and PyTorch's
#: antialiased bicubic (Pillow's, also TensorFlow's and JAX's).
CUBIC_A_PYTORCH = -0.75
CUBIC_A_PYTORCH_AA = -0.5



@dataclass(frozen=True)
class Plan1D:
    """Interpolation plan of one dimension (CSR: ``offsets``, ``indices``, ``weights``)."""

    n_in: int
    n_out: int
    offsets: np.ndarray  # (n_out + 1,) int64
    indices: np.ndarray  # (nnz,) int64, in [0, n_in)
    weights: np.ndarray  # (nnz,) float64

    @property
    def is_identity(self):
        """True when the plan copies: ``y[o] = x[o]``."""
        return (self.n_in == self.n_out and self.indices.size == self.n_out
                and np.array_equal(self.indices, np.arange(self.n_out))
                and bool(np.all(self.weights == 1.0)))

    @property
    def is_selection(self):
        """True when every output copies one input (nearest modes): one tap of weight 1."""
        return self.indices.size == self.n_out and bool(np.all(self.weights == 1.0))

    @property
    def taps(self):
        """Mean number of taps per output (cost estimate)."""
        return self.indices.size / max(self.n_out, 1)

    def toarray(self):
        """Dense ``(n_out, n_in)`` matrix (duplicates summed); for tests and debugging."""
        dense = np.zeros((self.n_out, self.n_in))
        rows = np.repeat(np.arange(self.n_out), np.diff(self.offsets))
        np.add.at(dense, (rows, self.indices), self.weights)
        return dense


@dataclass(frozen=True)
class ResizeSpec:
    """Validated arguments of one :func:`fastdeconv.resize` call."""

    in_size: tuple
    out_size: tuple
    scales: tuple  # user scale factor per dimension, or None when ``size`` was given
    mode: str
    align_corners: bool
    antialias: bool
    coordinate_transformation_mode: object  # None = PyTorch convention
    nearest_mode: str
    cubic_coeff_a: float
    exclude_outside: bool

    @property
    def ndim(self):
        return len(self.in_size)

    def plans(self, dtype=np.float64):
        """One :class:`Plan1D` per spatial dimension for compute dtype ``dtype``.

        Only PyTorch's nearest modes depend on the dtype: for 1 and 3 spatial dimensions
        PyTorch computes their source index in float32 arithmetic for float32 tensors and
        rounds a float64 product to float32 for float64 tensors; its 2-D kernels use that rule
        too when the output is large, and a third rule for both dtypes when
        ``out_h + out_w <= 128`` (``nearest_idx``: a copy when the size is kept, ``o // 2``
        when it doubles, else a float32 scale). The emulation picks the same pixels.
        """
        precision = "float32" if np.dtype(dtype) == np.float32 else "float64"
        # PyTorch's 2-D nearest kernels dispatch on the output size: its vectorised kernel
        # (nearest_idx, float32 scale) runs when out_h + out_w <= 128 (for NCHW input,
        # _use_vectorized_kernel_cond_2d in ATen's UpSampleKernel.cpp), its generic N-d
        # kernel (the 1-D/3-D rule) otherwise.
        if self.ndim == 2 and self.coordinate_transformation_mode is None and \
                self.mode in ("nearest", "nearest-exact") and sum(self.out_size) <= 128:
            precision = "pytorch2d"
        stencil = self.coordinate_transformation_mode is None and not self.antialias
        check_workspace(  # the tables of all dimensions are alive together
            sum(_table_bytes(n_in, n_out, self.mode, stencil)
                for n_in, n_out in zip(self.in_size, self.out_size)),
            f"interpolation tables of resize from {self.in_size} to {self.out_size}")
        return [
            plan_1d(n_in, n_out, scale, self.mode, self.align_corners, self.antialias,
                    self.coordinate_transformation_mode, self.nearest_mode,
                    self.cubic_coeff_a, self.exclude_outside, precision)
            for n_in, n_out, scale in zip(self.in_size, self.out_size, self.scales)
        ]


# ----------------------------------------------------------------------------- validation
def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _check_bool(value, name, *, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool{' or None' if allow_none else ''}, got {value!r}")


def _per_dim(value, ndim, name, kind):
    """Scalar or sequence of ``ndim`` values -> tuple (no range checks)."""
    scalar = (numbers.Integral,) if kind == "int" else (numbers.Real,)
    what, article = ("int", "an") if kind == "int" else ("number", "a")
    if isinstance(value, scalar) and not isinstance(value, (bool, np.bool_)):
        return (value,) * ndim
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be {article} {what} or a sequence of {ndim} {what}s, "
                        f"got {value!r}") from None
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, scalar) for v in values):
        raise TypeError(f"{name} must be {article} {what} or a sequence of {ndim} {what}s, "
                        f"got {value!r}")
    if len(values) != ndim:
        raise ValueError(f"{name} must have one entry per spatial dimension ({ndim}), got "
                         f"{value!r} of length {len(values)}")
    return values


#: Largest output size along one dimension (the kernels' per-dimension index plans are
#: int64, and no output this large fits in memory anyway).
_MAX_OUTPUT_SIZE = 2**31 - 1


def resolve_resize(in_size, size=None, *, scale_factor=None, mode="nearest", align_corners=None,
                   antialias=False, coordinate_transformation_mode=None, nearest_mode=None,
                   cubic_coeff_a=None, exclude_outside=False, x_name="x"):
    """Validate the keywords of :func:`fastdeconv.resize` for spatial input size ``in_size``.

    Returns a :class:`ResizeSpec`; every error names the parameter.
    """
    in_size = tuple(int(n) for n in in_size)
    ndim = len(in_size)
    if not 1 <= ndim <= MAX_SPATIAL:
        raise ValueError(f"{x_name} must have 1 to {MAX_SPATIAL} spatial dimensions (shape "
                         f"(N, C, *spatial)) for resize, got {ndim}")
    if any(n < 1 for n in in_size):
        raise ValueError(f"the spatial size of {x_name} must be positive, got {in_size}")

    if not isinstance(mode, str) or mode not in _ALIASES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _ALIASES))}; got {mode!r}")
    canonical, rank = _ALIASES[mode]
    if rank is not None and rank != ndim:
        raise ValueError(f"mode={mode!r} is for {rank} spatial dimensions but x has {ndim}; "
                         f"use mode={canonical!r}")
    mode = canonical

    antialias = _check_bool(antialias, "antialias")
    exclude_outside = _check_bool(exclude_outside, "exclude_outside")
    align_corners = _check_bool(align_corners, "align_corners", allow_none=True)
    onnx = coordinate_transformation_mode is not None
    if onnx:
        _check_choice(coordinate_transformation_mode, "coordinate_transformation_mode",
                      COORDINATE_MODES)
        if align_corners is not None:
            raise ValueError(
                "align_corners is PyTorch's keyword and cannot be combined with "
                "coordinate_transformation_mode; use coordinate_transformation_mode="
                "'align_corners' instead")
        if mode == "area":
            raise ValueError("mode='area' (PyTorch's adaptive average pooling) has no ONNX "
                             "coordinate_transformation_mode; leave it None")
        if mode == "nearest-exact":
            raise ValueError(
                "mode='nearest-exact' is PyTorch's; with coordinate_transformation_mode use "
                "mode='nearest' and pick the rounding with nearest_mode (PyTorch's "
                "nearest-exact is half_pixel with nearest_mode='round_prefer_ceil')")
    else:
        if align_corners is not None and mode not in ("linear", "cubic"):
            raise ValueError(
                f"align_corners can only be set with the interpolating modes 'linear', "
                f"'bilinear', 'trilinear', 'cubic' and 'bicubic', not mode={mode!r} (as in "
                "PyTorch); leave it None")
        if exclude_outside:
            raise ValueError(
                "exclude_outside is an ONNX keyword: it needs coordinate_transformation_mode "
                "(PyTorch's antialiased modes already exclude outside pixels)")
    if nearest_mode is not None:
        if not onnx:
            raise ValueError("nearest_mode is an ONNX keyword: it needs "
                             "coordinate_transformation_mode (PyTorch's 'nearest' floors, "
                             "'nearest-exact' rounds half up)")
        if mode != "nearest":
            raise ValueError(f"nearest_mode only applies to mode='nearest', not {mode!r}")
        _check_choice(nearest_mode, "nearest_mode", NEAREST_MODES)
    elif onnx and mode == "nearest":
        nearest_mode = "round_prefer_floor"  # ONNX's default
    if antialias and mode not in ("linear", "cubic"):
        raise ValueError(f"antialias only applies to the 'linear' and 'cubic' modes, not "
                         f"mode={mode!r}")
    if exclude_outside and mode != "cubic" and mode != "linear":
        raise ValueError(f"exclude_outside only applies to the 'linear' and 'cubic' modes, "
                         f"not mode={mode!r}")
    if cubic_coeff_a is not None:
        if mode != "cubic":
            raise ValueError(f"cubic_coeff_a only applies to mode='cubic', not {mode!r}")
        if (isinstance(cubic_coeff_a, (bool, np.bool_))
                or not isinstance(cubic_coeff_a, numbers.Real)):
            raise TypeError(f"cubic_coeff_a must be a real number, got {cubic_coeff_a!r}")
        cubic_coeff_a = float(cubic_coeff_a)
        if not math.isfinite(cubic_coeff_a):
            raise ValueError(f"cubic_coeff_a must be finite, got {cubic_coeff_a!r}")
    elif mode == "cubic":
        cubic_coeff_a = CUBIC_A_PYTORCH_AA if (antialias and not onnx) else CUBIC_A_PYTORCH

    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor"
                         + (" (both were given)" if size is not None else ""))
    if size is not None:
        if isinstance(size, float):
            raise TypeError(f"size must be an int or a sequence of {ndim} ints, got {size!r}")
        out_size = _per_dim(size, ndim, "size", "int")
        if any(n < 1 for n in out_size):
            raise ValueError(f"size must be positive, got {size!r}")
        out_size = tuple(int(n) for n in out_size)
        scales = (None,) * ndim
    else:
        scales = tuple(float(s) for s in _per_dim(scale_factor, ndim, "scale_factor", "real"))
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"scale_factor must be positive and finite, got {scale_factor!r}")
        # PyTorch and ONNX: output size = floor(input size * scale), in float64.
        out_size = tuple(int(math.floor(n * s)) for n, s in zip(in_size, scales))
        if any(n < 1 for n in out_size):
            raise ValueError(f"scale_factor={scale_factor!r} gives an empty output for input "
                             f"size {in_size} (output size floor(in * scale) = {out_size})")
    if any(n > _MAX_OUTPUT_SIZE for n in out_size):
        given = f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"
        raise ValueError(f"{given} gives an output size {out_size}: at most {_MAX_OUTPUT_SIZE} "
                         "positions per dimension are supported")
    return ResizeSpec(in_size, out_size, scales, mode, bool(align_corners), antialias,
                      coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                      exclude_outside)


# --------------------------------------------------------------------------- coordinates
def _pytorch_scale(n_in, n_out, scale, align_corners):
    """PyTorch's ``area_pixel_compute_scale``: input pixels per output pixel."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None else n_in / n_out


def _onnx_coordinates(o, n_in, n_out, scale, mode):
    """ONNX ``Resize``: source coordinate ``x_original`` of output indices ``o`` (float64).

    ``scale`` is the user scale factor, or ``None`` with ``size`` (then ``n_out / n_in``). The
    formulas are arranged so that a coordinate that is exactly an integer or a half-integer
    (where the nearest modes' rounding decides) is computed exactly: with ``size`` one
    division of exact integers, with ``scale_factor`` one division by the given factor.
    """
    o = o.astype(np.float64)
    if mode == "align_corners":
        if n_out == 1:
            return np.zeros(o.shape)
        return (o * (n_in - 1)) / (n_out - 1)
    if mode == "pytorch_half_pixel" and n_out == 1:
        return np.zeros(o.shape)
    if scale is None:  # s = n_out / n_in; half_pixel_symmetric is then half_pixel
        if mode == "asymmetric":
            return (o * n_in) / n_out
        return ((2 * o + 1) * n_in - n_out) / (2 * n_out)
    if mode == "asymmetric":
        return o / scale
    if mode == "half_pixel_symmetric":
        # offset + (o + 0.5) / s - 0.5 with offset = n_in / 2 * (1 - n_out / (s * n_in)):
        # centre the (possibly fractional) output canvas on the input's.
        return (o + 0.5 - n_out / 2) / scale + (n_in - 1) / 2
    return (o + 0.5) / scale - 0.5  # half_pixel, pytorch_half_pixel


def _nearest_indices(o, n_in, n_out, scale, mode, ctm, nearest_mode, precision):
    if ctm is None:
        f32 = np.float32
        if precision == "pytorch2d":
            # PyTorch's 2-D kernels (nearest_idx / nearest_exact_idx), for every dtype.
            s = f32(1.0 / scale) if scale is not None else f32(n_in) / f32(n_out)
            if mode == "nearest":
                if n_out == n_in:
                    return o.copy()
                if n_out == 2 * n_in:
                    return o >> 1
                src = np.floor(o.astype(f32) * s)
            else:
                src = np.floor(((o + 0.5) * np.float64(s)).astype(f32))
        elif precision == "float32":
            # PyTorch on float32 tensors: scale and products in float32; nearest-exact's
            # "scale * (o + 0.5) - 0.5" is one fused multiply-add (one rounding).
            s = f32(1.0 / scale) if scale is not None else f32(n_in) / f32(n_out)
            if mode == "nearest":
                src = np.floor(o.astype(f32) * s)
            else:
                r = ((o + 0.5) * np.float64(s) - 0.5).astype(f32)
                src = np.floor(np.maximum(r, f32(0)) + f32(0.5))
        else:
            # PyTorch on float64 tensors: float64 products, rounded to float32 by floorf.
            s = 1.0 / scale if scale is not None else n_in / n_out
            if mode == "nearest":
                src = np.floor((o * s).astype(f32))
            else:
                r = np.maximum((o + 0.5) * s - 0.5, 0.0)
                src = np.floor((r + 0.5).astype(f32))
        return np.minimum(src.astype(np.int64), n_in - 1)
    return np.clip(_onnx_nearest(n_in, n_out, scale, ctm, nearest_mode), 0, n_in - 1)


def _onnx_nearest(n_in, n_out, scale, ctm, nearest_mode):
    """ONNX nearest: the rounding of ``x_original`` decided in exact rational arithmetic.

    The coordinate is ``N / D`` with integers computed from the given scale (a float is an
    exact binary fraction ``p / q``), so a coordinate on (or a hair from) a rounding boundary
    is decided exactly, whatever float64 rounding would do.
    """
    p, q = (n_out, n_in) if scale is None else float(scale).as_integer_ratio()  # s = p / q
    rows = []
    for o in range(n_out):
        if ctm == "align_corners":
            num, den = (0, 1) if n_out == 1 else (o * (n_in - 1), n_out - 1)
        elif ctm == "asymmetric":
            num, den = o * q, p
        elif ctm == "pytorch_half_pixel" and n_out == 1:
            num, den = 0, 1
        elif ctm == "half_pixel_symmetric":
            num, den = (2 * o + 1 - n_out) * q + (n_in - 1) * p, 2 * p
        else:  # half_pixel, pytorch_half_pixel
            num, den = (2 * o + 1) * q - p, 2 * p
        if nearest_mode == "floor":
            rows.append(num // den)
        elif nearest_mode == "ceil":
            rows.append(-(-num // den))
        elif nearest_mode == "round_prefer_ceil":      # floor(x + 1/2)
            rows.append((2 * num + den) // (2 * den))
        else:                                          # round_prefer_floor: ceil(x - 1/2)
            rows.append(-((den - 2 * num) // (2 * den)))
    return np.array([min(max(v, -1), n_in) for v in rows], dtype=np.int64)


def _keys(x, a):
    """Keys' cubic convolution kernel W(x) with parameter ``a``."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _triangle(x):
    return np.maximum(0.0, 1.0 - np.abs(x))


def _table_bytes(n_in, n_out, mode, pytorch_stencil):
    """Upper bound of the bytes :func:`plan_1d` uses at once: ``(n_out, taps)`` arrays of
    int64 / float64 (the result and up to seven temporaries, measured). Taps per output: 1
    for the nearest modes, 2 / 4 for PyTorch's linear / cubic stencils, else at most
    ``2 * ceil(2 * max(1, n_in / n_out)) + 5`` (area, antialiased and ONNX windows)."""
    if mode in ("nearest", "nearest-exact"):
        taps = 1
    elif pytorch_stencil:
        taps = 2 if mode == "linear" else 4
    else:
        taps = 2 * math.ceil(2 * max(1.0, n_in / n_out)) + 5
    return 8 * 8 * n_out * taps + 8 * (n_out + 1)


def _csr(n_out, cols, vals, keep_zeros=False):
    """CSR arrays from per-output tap arrays of shape (n_out, taps).

    Exact zeros are dropped unless ``keep_zeros`` (True, or a per-tap mask): PyTorch's linear
    and cubic kernels read every tap of their stencil, and its antialiased kernels every tap
    of their window, so a NaN or inf under a zero weight still makes the output NaN
    (``0 * inf``); keeping those taps makes non-finite values propagate exactly as there.
    """
    keep = (vals != 0) | keep_zeros  # keep_zeros: a bool, or a mask of the taps to keep
    counts = keep.sum(axis=1)
    offsets = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, np.ascontiguousarray(cols[keep], dtype=np.int64), np.ascontiguousarray(
        vals[keep], dtype=np.float64)


def _window(x, n_in, radius, filt, filter_scale, normalize, exclude_outside):
    """Taps ``floor(x) + k`` with weights ``filt((tap - x) * filter_scale)`` over the support.

    ``radius`` bounds ``|tap - x|``. Taps outside the input are clamped to the edge, or with
    ``exclude_outside`` dropped (then the weights are renormalized to sum to one).
    """
    base = np.floor(x).astype(np.int64)
    reach = int(math.ceil(radius)) + 1
    k = np.arange(-reach, reach + 1)
    taps = base[:, None] + k[None, :]
    w = filt((taps - x[:, None]) * filter_scale)
    if normalize:
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    if exclude_outside:
        inside = (taps >= 0) & (taps < n_in)
        w = np.where(inside, w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.clip(taps, 0, n_in - 1), w


def _pytorch_antialias(o, n_in, n_out, scale, align_corners, mode, a):
    """PyTorch's ``_upsample_{bilinear,bicubic}2d_aa`` weights (Pillow's algorithm)."""
    s = _pytorch_scale(n_in, n_out, scale, align_corners)
    interp = 2 if mode == "linear" else 4
    support = interp / 2 * s if s >= 1.0 else interp / 2
    invscale = 1.0 / s if s >= 1.0 else 1.0
    center = s * (o + 0.5)
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), n_in)
    width = int(math.ceil(support)) * 2 + 1
    xmax = np.minimum(xmax, xmin + width)
    j = xmin[:, None] + np.arange(width)[None, :]
    arg = (j - center[:, None] + 0.5) * invscale
    w = _triangle(arg) if mode == "linear" else _keys(arg, a)
    read = j < xmax[:, None]  # the taps PyTorch's kernel reads (zero weights included)
    w = np.where(read, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.minimum(j, n_in - 1), w, read


@functools.lru_cache(maxsize=512)
def plan_1d(n_in, n_out, scale, mode, align_corners=False, antialias=False, ctm=None,
            nearest_mode=None, cubic_coeff_a=CUBIC_A_PYTORCH, exclude_outside=False,
            precision="float64"):
    """The :class:`Plan1D` of one dimension (cached; the arrays are read-only).

    Parameters follow :class:`ResizeSpec`; ``ctm`` is the ONNX
    ``coordinate_transformation_mode`` (``None`` selects PyTorch's conventions) and
    ``precision`` (``"float32"``, ``"float64"`` or ``"pytorch2d"``) only matters for
    PyTorch's nearest modes (see :meth:`ResizeSpec.plans`).
    """
    o = np.arange(n_out, dtype=np.int64)
    if mode in ("nearest", "nearest-exact"):
        cols = _nearest_indices(o, n_in, n_out, scale, mode, ctm, nearest_mode,
                                precision)[:, None]
        vals = np.ones(cols.shape)
    elif mode == "area":
        # PyTorch's adaptive average pooling: [floor(o n_in / n_out), ceil((o+1) n_in / n_out)).
        start = (o * n_in) // n_out
        stop = -((-(o + 1) * n_in) // n_out)
        width = int(np.max(stop - start))
        cols = start[:, None] + np.arange(width)[None, :]
        inside = cols < stop[:, None]
        vals = np.where(inside, 1.0 / (stop - start)[:, None], 0.0)
        cols = np.minimum(cols, n_in - 1)
    elif ctm is None:
        if antialias:
            if n_in == n_out:
                # PyTorch's separable antialiased kernel skips dimensions whose size is kept.
                cols, vals = o[:, None], np.ones((n_out, 1))
            else:
                cols, vals, read = _pytorch_antialias(o, n_in, n_out, scale, align_corners,
                                                      mode, cubic_coeff_a)
        elif mode == "linear":
            if n_in == n_out:
                # PyTorch copies when the sizes agree, whatever the scale factor or
                # align_corners, as x[o] * 1 + x[o] * 0 (so an inf becomes NaN there too).
                cols = np.stack([o, o], axis=1)
                vals = np.stack([np.ones(n_out), np.zeros(n_out)], axis=1)
            else:
                s = _pytorch_scale(n_in, n_out, scale, align_corners)
                src = s * o if align_corners else np.maximum(s * (o + 0.5) - 0.5, 0.0)
                i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
                lam = np.clip(src - i0, 0.0, 1.0)
                i1 = i0 + (i0 < n_in - 1)
                cols = np.stack([i0, i1], axis=1)
                vals = np.stack([1.0 - lam, lam], axis=1)
        else:  # cubic
            s = _pytorch_scale(n_in, n_out, scale, align_corners)
            src = s * o if align_corners else s * (o + 0.5) - 0.5
            i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
            t = np.clip(src - i0, 0.0, 1.0)
            k = np.arange(-1, 3)
            cols = np.clip(i0[:, None] + k[None, :], 0, n_in - 1)
            vals = _keys(k[None, :] - t[:, None], cubic_coeff_a)
    else:
        x = _onnx_coordinates(o, n_in, n_out, scale, ctm)
        s = scale if scale is not None else n_out / n_in
        aa = antialias and s < 1.0
        filter_scale = s if aa else 1.0
        if mode == "linear":
            cols, vals = _window(x, n_in, 1.0 / filter_scale, _triangle, filter_scale,
                                 aa, exclude_outside)
        else:
            a = cubic_coeff_a
            cols, vals = _window(x, n_in, 2.0 / filter_scale, lambda v: _keys(v, a),
                                 filter_scale, aa, exclude_outside)
    stencil = ctm is None and mode in ("linear", "cubic") and not antialias
    keep = read if ctm is None and antialias and n_in != n_out else stencil
    offsets, indices, weights = _csr(n_out, cols, vals, keep_zeros=keep)
    for array in (offsets, indices, weights):
        array.flags.writeable = False
    return Plan1D(n_in, n_out, offsets, indices, weights)
