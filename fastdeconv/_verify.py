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
adjoints, the gradients in the input, are ``resize_backward``, ``max_unpool_backward`` and
``pixel_unshuffle``).
``max_pool`` is not linear: its "adjoint" is the dot test of ``max_pool_backward`` against
the selection of the values at the returned indices, "reference" compares values and indices
(an index mismatch counts as an error of 1), and "grad x" is a central difference with the
largest step that changes no index (the maximum is linear there); it has no matrix.

The operators, their configurations and the callables each check compares come from the
registry :data:`fastdeconv._operators.OPERATORS`; each entry names which of the three checks
(weighted, linear, selection) applies to it.

Every error is relative (see :func:`_relative`); a configuration passes when all are below
``tolerance`` (default 1e-10).
"""

import numbers
import sys
import time

import numpy as np

from ._operators import BY_NAME, OPERATORS, Case

__all__ = ["Case", "CASES", "OPS", "run", "format_table"]

#: Every configuration of every registered operator, in registry order.
CASES = [case for op in OPERATORS for case in op.cases]

#: Operators with configurations, in order (the choices of ``verify --op``).
OPS = tuple(op.name for op in OPERATORS if op.cases)


def _relative(a, b):
    """max |a - b| / max(max |b|, tiny): error relative to the scale of the expected value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _dot_gap(y, g, x, backward_g):
    """Relative gap of the dot test ``<y, g> == <x, backward_g>`` (``backward_g`` = A^T g)."""
    lhs, rhs = float(np.vdot(y, g)), float(np.vdot(x, backward_g))
    return abs(lhs - rhs) / max(np.linalg.norm(y) * np.linalg.norm(g), 1e-300)


def _fd_gap(numeric, grad, direction):
    """Relative gap between a finite difference and the gradient along ``direction``."""
    analytic = float(np.vdot(grad, direction))
    return abs(numeric - analytic) / max(
        abs(analytic), np.linalg.norm(grad) * np.linalg.norm(direction) * 1e-3, 1e-300)


def _central(loss, x, direction, eps):
    return (loss(x + eps * direction) - loss(x - eps * direction)) / (2.0 * eps)


def _check_selection(op, case, rng):
    """max_pool-like: a selection of input values by the indices the forward returns."""
    p = dict(case.params)
    x = rng.standard_normal(case.x_shape)
    errors = {"grad w": None, "grad b": None}
    y, idx = op.forward(x, **p, return_indices=True)
    g = rng.standard_normal(y.shape)

    def select(v):
        flat = v.reshape(v.shape[:2] + (-1,))
        return np.take_along_axis(flat, idx.reshape(idx.shape[:2] + (-1,)), -1).reshape(
            y.shape)

    gx = op.backward(g, idx, x.shape)
    errors["sparse"] = None
    errors["adjoint"] = _dot_gap(select(x), g, x, gx)
    ry, ridx = op.reference(x, **p)
    errors["reference"] = max(_relative(y, ry), float(not np.array_equal(idx, ridx)))
    # Piecewise linear: a central difference is exact while no window changes its
    # maximum, so take the largest step that keeps every index.
    loss = lambda v: float(np.vdot(op.forward(v, **p), g))  # noqa: E731
    direction = rng.standard_normal(x.shape)
    eps = 1e-2
    while eps > 1e-12 and not all(
            np.array_equal(op.forward(x + s * eps * direction, **p,
                                      return_indices=True)[1], idx) for s in (1, -1)):
        eps /= 4
    errors["grad x"] = _fd_gap(_central(loss, x, direction, eps), gx, direction)
    return errors


def _check_linear(op, case, rng):
    """An operator linear in its only array input (no weight, no bias)."""
    errors = {"grad w": None, "grad b": None}
    x, forward, backward, reference, matrices = op.verify_parts(
        case, rng.standard_normal(case.x_shape))
    y = forward(x)
    g = rng.standard_normal(y.shape)
    ys = np.stack([m @ xi.ravel() for m, xi in zip(matrices, x)]).reshape(y.shape)
    errors["sparse"] = _relative(y, ys)
    gx = backward(g)
    errors["adjoint"] = _dot_gap(y, g, x, gx)
    errors["reference"] = _relative(y, reference(x))
    loss = lambda v: float(np.vdot(forward(v), g))  # noqa: E731
    direction = rng.standard_normal(x.shape)
    errors["grad x"] = _fd_gap(_central(loss, x, direction, 1.0), gx, direction)
    return errors


def _check_weighted(op, case, rng):
    """A convolution: linear in the input, in the weight and in the bias."""
    forward, backward_x, backward, reference, matrix = op.verify_parts(case)
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.weight_shape)
    y = forward(x, w)
    b = rng.standard_normal(y.shape[1])
    g = rng.standard_normal(y.shape)
    errors = {}

    m = matrix(w)
    ys = np.stack([m @ xi.ravel() for xi in x]).reshape(y.shape)
    errors["sparse"] = _relative(y, ys)
    errors["adjoint"] = _dot_gap(y, g, x, backward_x(g, w))
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
        errors[name] = _fd_gap((loss(*plus) - loss(*minus)) / 2.0, grad, direction)
    return errors


_CHECKS = {"weighted": _check_weighted, "linear": _check_linear, "selection": _check_selection}


def check_case(case, rng):
    """Run every check of one case; return a dict of relative errors (None: not applicable)."""
    op = BY_NAME[case.op]
    return _CHECKS[op.check](op, case, rng)


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
