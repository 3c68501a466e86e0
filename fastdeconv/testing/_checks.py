"""Numerical checks for linear operators and gradients: dot test, finite differences."""

import numpy as np

__all__ = ["TOLERANCES", "tolerances", "assert_adjoint", "directional_derivative_check"]

#: Tolerances (keyword arguments of :func:`numpy.testing.assert_allclose`) for comparing an
#: operator's result computed in a given dtype with a float64 reference, for data of order one
#: and reductions over up to a few thousand terms.
TOLERANCES = {
    np.float32: {"rtol": 1e-4, "atol": 1e-5},
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
}


def tolerances(dtype):
    """``TOLERANCES`` entry for ``dtype`` (anything :class:`numpy.dtype` accepts).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import tolerances
    >>> tolerances("float32")
    {'rtol': 0.0001, 'atol': 1e-05}
    """
    scalar_type = np.dtype(dtype).type
    if scalar_type not in TOLERANCES:
        raise ValueError(f"no tolerances for dtype {np.dtype(dtype)}; known: float32, float64")
    return TOLERANCES[scalar_type]


def _relative_gap(a, b, scale):
    return abs(a - b) / scale if scale > 0 else abs(a - b)


def assert_adjoint(forward, adjoint, x_shape, y_shape, *, rtol=None, rng=None,
                   dtype=np.float64):
    """Dot test: assert ``<forward(x), y> == <x, adjoint(y)>`` for random ``x`` and ``y``.

    Parameters
    ----------
    forward : callable
        Linear map from arrays of shape ``x_shape`` to arrays of shape ``y_shape``.
    adjoint : callable
        Its claimed adjoint, from ``y_shape`` to ``x_shape``.
    x_shape, y_shape : tuple of int
        Shapes of the operator's input and output.
    rtol : float, optional
        Allowed ``|<A x, y> - <x, A^T y>|`` relative to ``||A x|| ||y||`` (the Cauchy-Schwarz
        bound of both sides, which stays meaningful when they nearly cancel). Defaults to
        ``1e-10`` for float64 and ``1e-4`` for float32.
    rng : numpy.random.Generator or int, optional
        Source of the standard normal ``x`` and ``y``.
    dtype : dtype, default float64
        dtype of ``x`` and ``y``.

    Returns
    -------
    lhs, rhs : float
        ``<forward(x), y>`` and ``<x, adjoint(y)>``, computed in float64.

    Raises
    ------
    AssertionError
        If a result has the wrong shape or the two inner products differ by more than
        ``rtol``; the message shows both numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import assert_adjoint
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> lhs, rhs = assert_adjoint(lambda x: A @ x, lambda y: A.T @ y, (3,), (2,), rng=0)
    """
    rng = np.random.default_rng(rng)
    if rtol is None:
        rtol = tolerances(dtype)["rtol"]
    x = rng.standard_normal(x_shape).astype(dtype)
    y = rng.standard_normal(y_shape).astype(dtype)
    ax, aty = np.asarray(forward(x)), np.asarray(adjoint(y))
    if ax.shape != tuple(y_shape):
        raise AssertionError(f"forward(x) has shape {ax.shape}, expected {tuple(y_shape)}")
    if aty.shape != tuple(x_shape):
        raise AssertionError(f"adjoint(y) has shape {aty.shape}, expected {tuple(x_shape)}")
    ax, aty, x, y = (np.asarray(a, dtype=np.float64).ravel() for a in (ax, aty, x, y))
    lhs, rhs = float(ax @ y), float(x @ aty)
    scale = max(np.linalg.norm(ax) * np.linalg.norm(y), np.linalg.norm(x) * np.linalg.norm(aty))
    gap = _relative_gap(lhs, rhs, scale)
    if not gap <= rtol:
        raise AssertionError(
            f"dot test failed: <A x, y> = {lhs!r} but <x, A^T y> = {rhs!r} "
            f"(relative gap {gap:.3e} > rtol {rtol:.1e}, scale ||A x|| ||y|| = {scale:.6g})"
        )
    return lhs, rhs


def directional_derivative_check(f, x, direction, grad, *, eps=1e-6, rtol=1e-6):
    """Compare ``<grad, direction>`` with a central difference of ``f`` along ``direction``.

    Checking one random direction tests every component of ``grad`` at the cost of two
    evaluations of ``f``. Everything is done in float64.

    Parameters
    ----------
    f : callable
        Scalar function of an array shaped like ``x``.
    x : array_like
        Point at which ``grad`` was computed.
    direction : array_like
        Direction of the difference, same shape as ``x`` (typically standard normal).
    grad : array_like
        Claimed gradient of ``f`` at ``x``, same shape as ``x``.
    eps : float, default 1e-6
        Step. For functions that are linear in ``x`` (e.g. ``<conv(x, w), g>`` in either
        argument) the central difference is exact and ``eps=1`` avoids cancellation.
    rtol : float, default 1e-6
        Allowed difference relative to ``||grad|| ||direction||``.

    Returns
    -------
    numeric, analytic : float
        ``(f(x + eps d) - f(x - eps d)) / (2 eps)`` and ``<grad, d>``.

    Raises
    ------
    AssertionError
        If the two numbers differ by more than ``rtol``; the message shows both.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.testing import directional_derivative_check
    >>> x = np.array([1.0, 2.0])
    >>> numeric, analytic = directional_derivative_check(
    ...     lambda v: np.sum(v ** 3), x, np.array([0.5, -1.0]), 3 * x ** 2)
    """
    x = np.asarray(x, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    for name, array in (("direction", direction), ("grad", grad)):
        if array.shape != x.shape:
            raise ValueError(f"{name} must have the shape of x {x.shape}, got {array.shape}")
    numeric = (float(f(x + eps * direction)) - float(f(x - eps * direction))) / (2 * eps)
    analytic = float(np.vdot(grad, direction))
    scale = float(np.linalg.norm(grad) * np.linalg.norm(direction))
    gap = _relative_gap(numeric, analytic, scale)
    if not gap <= rtol:
        raise AssertionError(
            f"directional derivative mismatch: finite difference {numeric!r} but "
            f"<grad, direction> = {analytic!r} (relative gap {gap:.3e} > rtol {rtol:.1e}, "
            f"eps={eps})"
        )
    return numeric, analytic
