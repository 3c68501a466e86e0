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

Every error is relative (see :func:`_relative`); a configuration passes when all are below
``tolerance`` (default 1e-10).
"""

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _conv, _problem
from . import sparse as _sparse
from .testing import _reference

__all__ = ["CASES", "run", "format_table"]


@dataclass(frozen=True)
class Case:
    """One operator configuration: shapes of one input batch and the operator's keywords."""

    op: str
    x_shape: tuple
    weight_shape: tuple
    params: dict = field(default_factory=dict)

    @property
    def label(self):
        spatial = "x".join(map(str, self.x_shape[2:]))
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
]


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


def check_case(case, rng):
    """Run every check of one case; return a dict of relative errors."""
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
    cases = CASES if cases is None else cases
    stream = sys.stderr if stream is None else stream
    rng = np.random.default_rng(seed)
    rows = []
    start = time.perf_counter()
    for i, case in enumerate(cases):
        if progress:
            _progress(i, len(cases), case.op, stream)
        errors = check_case(case, rng)
        rows.append((case, errors, all(e <= tolerance for e in errors.values())))
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
        (case.op, case.label) + tuple(f"{errors[c]:.1e}" for c in COLUMNS) + ("ok" if ok else "FAIL",)
        for case, errors, ok in rows
    ]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in body]
    failed = sum(not ok for _, _, ok in rows)
    out.append("")
    out.append(
        f"{len(rows) - failed} of {len(rows)} configurations passed (float64, relative "
        f"tolerance {tolerance:g}): kernels == sparse matrices == NumPy reference, "
        "adjoints and finite-difference gradients agree." if not failed else
        f"{failed} of {len(rows)} configurations FAILED (relative tolerance {tolerance:g})."
    )
    return "\n".join(out)
