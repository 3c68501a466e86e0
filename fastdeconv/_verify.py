"""``python -m fastdeconv verify``: every operator against three independent oracles.

For each operator and configuration, in float64:

sparse
    the fast kernel against its explicit matrix from :mod:`fastdeconv.sparse` (built by index
    arithmetic, not by probing the kernel);
adjoint
    the dot test ``<A x, y> == <x, A^T y>`` between the operator and its adjoint kernel;
reference
    the fast kernel against the plain-NumPy reference of :mod:`fastdeconv.testing`, which uses
    a different algorithm (e.g. zero insertion and a flipped kernel for the transpose);
grad x / grad w / grad b
    the gradients of the ``*_backward`` functions against central finite differences of
    ``<op(x, w, b), g>`` along a random direction.

The upsampling operators have no weight or bias (``-`` in those columns). ``resize``,
``max_unpool`` and ``pixel_shuffle`` are linear and checked like the convolutions (their
adjoints are ``resize_backward``, ``max_unpool_backward`` and ``pixel_unshuffle``).
``max_pool`` is not linear: its "adjoint" is the dot test of ``max_pool_backward`` against
the selection of the values at the returned indices, "reference" compares values and indices
(an index mismatch counts as an error of 1), and "grad x" is a central difference with the
largest step that changes no index (the maximum is linear there); it has no matrix.

Every error is relative (see :func:`_relative`); a configuration passes when all are below
``tolerance`` (default 1e-10).
"""

import numbers
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _conv, _problem
from . import sparse as _sparse
from .testing import _reference

__all__ = ["CASES", "OPS", "run", "format_table"]


# Shorter keyword names in the table's configuration column.
_SHORT = {"coordinate_transformation_mode": "ctm", "cubic_coeff_a": "a",
          "scale_factor": "scale", "upscale_factor": "factor", "kernel_size": "kernel"}


@dataclass(frozen=True)
class Case:
    """One operator configuration: shapes of one input batch and the operator's keywords."""

    op: str
    x_shape: tuple
    weight_shape: tuple = None  # None for the upsampling operators
    params: dict = field(default_factory=dict)

    @property
    def label(self):
        spatial = "x".join(map(str, self.x_shape[2:]))
        if self.weight_shape is None:
            params = ", ".join(f"{_SHORT.get(k, k)}={v}" for k, v in self.params.items())
            what = "pool of" if self.op == "max_unpool" else "in"
            return f"{len(self.x_shape) - 2}d {what} {spatial} {params}"
        kernel = "x".join(map(str, self.weight_shape[2:]))
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{len(self.x_shape) - 2}d in {spatial} k {kernel}" + (f" {params}" if params else "")


CASES = [
    Case("conv", (2, 3, 11), (4, 3, 3)),
    Case("conv", (2, 4, 13), (6, 2, 4), dict(stride=3, padding=2, dilation=2, groups=2)),
    Case("conv", (1, 2, 9), (3, 2, 3), dict(padding=((2, 1),), padding_mode="reflect")),
    Case("conv", (2, 3, 8, 7), (4, 3, 3, 3), dict(stride=2, padding=1)),
    Case("conv", (1, 4, 9, 10), (4, 1, 3, 2), dict(stride=(2, 1), padding="same", groups=4)),
    Case("conv", (1, 2, 7, 6), (2, 2, 3, 3), dict(padding=2, dilation=(2, 1), padding_mode="circular")),
    Case("conv", (1, 2, 6, 6), (3, 2, 2, 3), dict(padding=(1, 2), padding_mode="replicate")),
    Case("conv", (1, 2, 6, 7), (2, 2, 4, 3), dict(stride=2, padding="same_lower")),
    Case("conv", (2, 4, 5, 4, 6), (2, 2, 3, 2, 3), dict(stride=(1, 2, 2), padding=((1, 0), (0, 1), (2, 1)), groups=2)),
    Case("conv", (1, 2, 4, 5, 4), (2, 2, 1, 1, 1)),
    Case("conv_transpose", (2, 3, 7), (3, 2, 4), dict(stride=2, padding=1)),
    Case("conv_transpose", (1, 4, 6), (4, 3, 3), dict(stride=3, padding=2, output_padding=2, dilation=2, groups=2)),
    Case("conv_transpose", (2, 3, 4, 5), (3, 2, 4, 4), dict(stride=2, padding=1)),
    Case("conv_transpose", (1, 2, 5, 4), (2, 3, 3, 2), dict(stride=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 2), dilation=(1, 2))),
    Case("conv_transpose", (1, 4, 4, 4), (4, 1, 3, 3), dict(stride=2, padding="same", groups=4)),
    Case("conv_transpose", (1, 2, 3, 4, 3), (2, 2, 2, 2, 2), dict(stride=2)),
    Case("conv_transpose", (1, 2, 3, 3, 4), (2, 4, 3, 2, 3), dict(stride=(2, 1, 2), padding=1, output_size=(6, 2, 8), groups=2)),
    # upsampling operators (x_shape of max_unpool: the pooled tensor whose switches it uses)
    Case("resize", (2, 3, 7), params=dict(scale_factor=2.5, mode="linear")),
    Case("resize", (2, 2, 6, 7), params=dict(size=(13, 5), mode="nearest")),
    Case("resize", (1, 2, 5, 6), params=dict(size=(11, 4), mode="cubic", align_corners=True)),
    Case("resize", (1, 2, 9, 8), params=dict(size=(4, 3), mode="linear", antialias=True)),
    Case("resize", (1, 2, 7, 9), params=dict(size=(3, 4), mode="area")),
    Case("resize", (1, 2, 4, 3, 5), params=dict(scale_factor=(2.0, 1.5, 0.5), mode="nearest-exact")),
    Case("resize", (1, 2, 4, 5, 3), params=dict(size=(6, 3, 7), mode="linear")),
    Case("resize", (1, 2, 8), params=dict(size=13, mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_ceil")),
    Case("resize", (1, 2, 5, 6), params=dict(size=(9, 11), mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.5, exclude_outside=True)),
    Case("resize", (1, 2, 10, 7), params=dict(scale_factor=0.4, mode="cubic", coordinate_transformation_mode="half_pixel_symmetric", antialias=True)),
    Case("max_pool", (2, 3, 11), params=dict(kernel_size=3, stride=2, padding=1)),
    Case("max_pool", (2, 3, 8, 7), params=dict(kernel_size=2)),
    Case("max_pool", (1, 2, 9, 8), params=dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    Case("max_pool", (1, 2, 5, 6, 4), params=dict(kernel_size=2)),
    Case("max_unpool", (2, 3, 10), params=dict(kernel_size=2)),
    Case("max_unpool", (2, 3, 8, 6), params=dict(kernel_size=2)),
    Case("max_unpool", (1, 2, 9, 7), params=dict(kernel_size=3, stride=2, padding=1)),
    Case("max_unpool", (1, 2, 4, 6, 5), params=dict(kernel_size=2)),
    Case("pixel_shuffle", (2, 6, 5), params=dict(upscale_factor=3)),
    Case("pixel_shuffle", (1, 8, 3, 4), params=dict(upscale_factor=2, order="DCR")),
    Case("pixel_shuffle", (1, 12, 2, 3), params=dict(upscale_factor=(2, 3))),
    Case("pixel_shuffle", (1, 16, 2, 3, 2), params=dict(upscale_factor=2)),
]

#: Operators of :data:`CASES`, in order (the choices of ``verify --op``).
OPS = ("conv", "conv_transpose", "resize", "max_pool", "max_unpool", "pixel_shuffle")


def _relative(a, b):
    """max |a - b| / max(max |b|, tiny): error relative to the scale of the expected value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _operators(case):
    """Forward, adjoint (in x), backward, reference and matrix of ``case``'s operator."""
    p = dict(case.params)
    groups = p.get("groups", 1)
    if case.op == "conv":
        geometry = _problem.conv_problem(case.x_shape, case.weight_shape, **p).geometry
        forward = lambda x, w, b=None: _conv.conv(x, w, b, **p)  # noqa: E731
        backward = lambda gy, x, w: _conv.conv_backward(gy, x, w, **p)  # noqa: E731
        reference = lambda x, w, b=None: _reference.conv_reference(x, w, b, **p)  # noqa: E731
        matrix = lambda w: _sparse.conv_matrix(case.x_shape[1:], w, **p)  # noqa: E731
        if p.get("padding_mode", "zeros") == "zeros":
            adjoint = lambda gy, w: _conv.conv_transpose(  # noqa: E731
                gy, w, stride=geometry.stride, padding=geometry.padding,
                dilation=geometry.dilation, groups=groups, output_size=geometry.input_size,
            )
        else:  # through reflect/replicate/circular padding the adjoint is conv_backward's
            adjoint = lambda gy, w: backward(gy, np.zeros(case.x_shape), w)[0]  # noqa: E731
    else:
        geometry = _problem.conv_transpose_problem(case.x_shape, case.weight_shape, **p).geometry
        forward = lambda x, w, b=None: _conv.conv_transpose(x, w, b, **p)  # noqa: E731
        backward = lambda gy, x, w: _conv.conv_transpose_backward(gy, x, w, **p)  # noqa: E731
        ref_params = {k: v for k, v in p.items() if k != "output_size"}
        if "output_size" in p:  # the reference takes the output_padding that output_size picks
            ref_params["output_padding"] = geometry.output_padding
        reference = lambda x, w, b=None: _reference.conv_transpose_reference(x, w, b, **ref_params)  # noqa: E731
        matrix = lambda w: _sparse.conv_transpose_matrix(case.x_shape[1:], w, **p)  # noqa: E731
        adjoint = lambda gy, w: _conv.conv(  # noqa: E731
            gy, w, stride=geometry.stride, padding=geometry.padding,
            dilation=geometry.dilation, groups=groups,
        )
    return forward, adjoint, backward, reference, matrix


def _dot_gap(y, g, x, adj):
    lhs, rhs = float(np.vdot(y, g)), float(np.vdot(x, adj))
    return abs(lhs - rhs) / max(np.linalg.norm(y) * np.linalg.norm(g), 1e-300)


def _fd_gap(loss, x, grad, direction, eps):
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2.0 * eps)
    analytic = float(np.vdot(grad, direction))
    return abs(numeric - analytic) / max(
        abs(analytic), np.linalg.norm(grad) * np.linalg.norm(direction) * 1e-3, 1e-300)


def _check_upsampling(case, rng):
    """The checks of resize, max_pool, max_unpool and pixel_shuffle (no weight, no bias)."""
    from . import _pool, _resize, _shuffle
    from .testing import _reference_pool, _reference_resize

    p = dict(case.params)
    x = rng.standard_normal(case.x_shape)
    errors = {"grad w": None, "grad b": None}
    if case.op == "max_pool":
        y, idx = _pool.max_pool(x, **p, return_indices=True)
        g = rng.standard_normal(y.shape)

        def select(v):
            flat = v.reshape(v.shape[:2] + (-1,))
            return np.take_along_axis(flat, idx.reshape(idx.shape[:2] + (-1,)), -1).reshape(
                y.shape)

        gx = _pool.max_pool_backward(g, idx, x.shape)
        errors["sparse"] = None
        errors["adjoint"] = _dot_gap(select(x), g, x, gx)
        ry, ridx = _reference_pool.max_pool_reference(x, **p)
        errors["reference"] = max(_relative(y, ry), float(not np.array_equal(idx, ridx)))
        # Piecewise linear: a central difference is exact while no window changes its
        # maximum, so take the largest step that keeps every index.
        loss = lambda v: float(np.vdot(_pool.max_pool(v, **p), g))  # noqa: E731
        direction = rng.standard_normal(x.shape)
        eps = 1e-2
        while eps > 1e-12 and not all(
                np.array_equal(_pool.max_pool(x + s * eps * direction, **p,
                                              return_indices=True)[1], idx) for s in (1, -1)):
            eps /= 4
        errors["grad x"] = _fd_gap(loss, x, gx, direction, eps)
        return errors
    if case.op == "max_unpool":
        pool = {k: v for k, v in p.items() if k in ("kernel_size", "stride", "padding")}
        x, idx = _pool.max_pool(x, **pool, return_indices=True)   # the unpool input
        p = dict(pool, output_size=case.x_shape[2:])
        forward = lambda v: _pool.max_unpool(v, idx, **p)  # noqa: E731
        adjoint = lambda w: _pool.max_unpool_backward(w, idx)  # noqa: E731
        reference = lambda v: _reference_pool.max_unpool_reference(v, idx, case.x_shape[2:])  # noqa: E731
        matrices = [_sparse.max_unpool_matrix(i, x.shape[1:], case.x_shape[1:]) for i in idx]
    elif case.op == "resize":
        forward = lambda v: _resize.resize(v, **p)  # noqa: E731
        adjoint = lambda w: _resize.resize_backward(w, x.shape, **p)  # noqa: E731
        reference = lambda v: _reference_resize.resize_reference(v, **p)  # noqa: E731
        matrices = [_sparse.resize_matrix(x.shape[1:], **p)] * x.shape[0]
    elif case.op == "pixel_shuffle":
        forward = lambda v: _shuffle.pixel_shuffle(v, **p)  # noqa: E731
        adjoint = lambda w: _shuffle.pixel_unshuffle(  # noqa: E731
            w, p["upscale_factor"], order=p.get("order", "CRD"))
        reference = lambda v: _reference_pool.pixel_shuffle_reference(v, **p)  # noqa: E731
        matrices = [_sparse.pixel_shuffle_matrix(x.shape[1:], **p)] * x.shape[0]
    else:
        raise ValueError(f"unknown operator {case.op!r}")
    y = forward(x)
    g = rng.standard_normal(y.shape)
    ys = np.stack([m @ xi.ravel() for m, xi in zip(matrices, x)]).reshape(y.shape)
    errors["sparse"] = _relative(y, ys)
    gx = adjoint(g)
    errors["adjoint"] = _dot_gap(y, g, x, gx)
    errors["reference"] = _relative(y, reference(x))
    loss = lambda v: float(np.vdot(forward(v), g))  # noqa: E731
    errors["grad x"] = _fd_gap(loss, x, gx, rng.standard_normal(x.shape), 1.0)
    return errors


def check_case(case, rng):
    """Run every check of one case; return a dict of relative errors (None: not applicable)."""
    if case.weight_shape is None:
        return _check_upsampling(case, rng)
    forward, adjoint, backward, reference, matrix = _operators(case)
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.weight_shape)
    y = forward(x, w)
    b = rng.standard_normal(y.shape[1])
    g = rng.standard_normal(y.shape)
    errors = {}

    m = matrix(w)
    ys = np.stack([m @ xi.ravel() for xi in x]).reshape(y.shape)
    errors["sparse"] = _relative(y, ys)

    adj = adjoint(g, w)
    lhs, rhs = float(np.vdot(y, g)), float(np.vdot(x, adj))
    errors["adjoint"] = abs(lhs - rhs) / max(np.linalg.norm(y) * np.linalg.norm(g), 1e-300)

    errors["reference"] = _relative(forward(x, w, b), reference(x, w, b))

    gx, gw, gb = backward(g, x, w)
    loss = lambda xx, ww, bb: float(np.vdot(forward(xx, ww, bb), g))  # noqa: E731
    for name, grad, args_of in (
        ("grad x", gx, lambda d: ((x + d, w, b), (x - d, w, b))),
        ("grad w", gw, lambda d: ((x, w + d, b), (x, w - d, b))),
        ("grad b", gb, lambda d: ((x, w, b + d), (x, w, b - d))),
    ):
        direction = rng.standard_normal(grad.shape)
        # The loss is linear in each argument: a central difference with a unit step is
        # exact up to rounding (JAX's check_grads_bilinear uses eps=1 for the same reason).
        plus, minus = args_of(direction)
        numeric = (loss(*plus) - loss(*minus)) / 2.0
        analytic = float(np.vdot(grad, direction))
        errors[name] = abs(numeric - analytic) / max(abs(analytic), np.linalg.norm(grad) * np.linalg.norm(direction) * 1e-3, 1e-300)
    return errors


COLUMNS = ("sparse", "adjoint", "reference", "grad x", "grad w", "grad b")


def run(cases=None, *, tolerance=1e-10, seed=0, progress=True, stream=None):
    """Check every case; return a list of ``(case, errors, passed)`` rows."""
    if (not isinstance(tolerance, numbers.Real) or isinstance(tolerance, bool)
            or not 0 <= tolerance < float("inf")):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    cases = CASES if cases is None else cases
    stream = sys.stderr if stream is None else stream
    rng = np.random.default_rng(seed)
    rows = []
    start = time.perf_counter()
    for i, case in enumerate(cases):
        if progress:
            _progress(i, len(cases), case.op, stream)
        errors = check_case(case, rng)
        rows.append((case, errors,
                     all(e is None or e <= tolerance for e in errors.values())))
    if progress:
        _progress(len(cases), len(cases), f"done in {time.perf_counter() - start:.1f} s", stream)
        stream.write("\n")
    return rows


def _progress(done, total, label, stream, width=30):
    filled = int(width * done / max(total, 1))
    stream.write(f"\rverify [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<30}")
    stream.flush()


def format_table(rows, tolerance=1e-10):
    """The verification table as text, one row per operator configuration."""
    header = ("operator", "configuration") + COLUMNS + ("status",)
    body = [
        (case.op, case.label)
        + tuple("-" if errors.get(c) is None else f"{errors[c]:.1e}" for c in COLUMNS)
        + ("ok" if ok else "FAIL",)
        for case, errors, ok in rows
    ]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in body]
    failed = sum(not ok for _, _, ok in rows)
    if any(errors.get(c) is None for _, errors, _ in rows for c in COLUMNS):
        out.append("")
        out.append("-: does not apply (no weight or bias; max_pool is not linear, so it has no "
                   "matrix: its adjoint column checks max_pool_backward against the sparse "
                   "matrix of the switches it recorded)")
    out.append("")
    out.append(
        f"{len(rows) - failed} of {len(rows)} configurations passed (float64, relative "
        f"tolerance {tolerance:g}): kernels == sparse matrices == NumPy reference, "
        "adjoints and finite-difference gradients agree." if not failed else
        f"{failed} of {len(rows)} configurations FAILED (relative tolerance {tolerance:g})."
    )
    return "\n".join(out)
