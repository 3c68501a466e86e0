"""Winograd minimal filtering F(m x m, r x r): the transform matrices (Lavin & Gray 2015).

A 1-D correlation of ``r`` taps ``g`` with ``alpha = m + r - 1`` inputs ``d`` gives ``m``
outputs ``y_i = sum_k g_k d_{i+k}``; Winograd's algorithm computes them with ``alpha``
multiplications::

    y = A^T [(G g) * (B^T d)]          A^T: m x alpha,  G: alpha x r,  B^T: alpha x alpha

and the 2-D algorithm nests it, ``Y = A^T [(G g G^T) * (B^T d B)] A``. The matrices come from
Toom-Cook with ``alpha - 1`` finite interpolation points and the point at infinity: ``A^T`` and
``G`` evaluate the polynomials of the outputs and of the kernel at the points (Vandermonde
rows; the point at infinity takes the leading coefficient), and ``B^T`` is the transpose of
the inverse of the ``alpha x alpha`` evaluation matrix. The rows of ``B^T`` are scaled to
primitive integer vectors and ``G`` takes the inverse scales, so that the data transforms are
exact in floating point for integer points (and dyadic for the points +-1/2) and every
non-dyadic fraction sits in ``G``, which fastdeconv applies to the weights in float64 once per
call. The matrices are built with exact rational arithmetic here and rounded to float64 once.
"""

from fractions import Fraction
from functools import lru_cache
from math import gcd, lcm

import numpy as np

__all__ = ["POINTS", "WinogradMatrices", "matrices"]

#: Finite interpolation points per (output tile size ``m``, kernel size ``r``), with the
#: point at infinity.
#: F(2, 3) is Lavin's {0, 1, -1}. For F(4, 3), measured in float32 on 1 to 256 input
#: channels (normal, uniform and log-normal data, several paddings and dilations), the
#: largest error relative to ``max conv(|x|, |w|)`` was 4.5e-6 with Lavin's {0, +-1, +-2},
#: 2.9e-6 with {0, +-1, +-1/2}, 1.5e-6 with {0, +-1, 2, -1/2} and 1.0e-6 with
#: {0, +-1, 1/2, -2} (the set Barabasz et al. 2020 recommend), which is used. For 2x2
#: kernels (stride phases of transposed convolutions), F(4, 2) measured 1.45e-6 with
#: {0, +-1, 2}, 1.0e-6 with {0, +-1, 1/2} and 9.4e-7 with {0, +-1, -2}, used.
POINTS = {
    (2, 3): (0, 1, -1),
    (4, 3): (0, 1, -1, Fraction(1, 2), -2),
    (3, 2): (0, 1, -1),
    (4, 2): (0, 1, -1, -2),
}


class WinogradMatrices:
    """``A^T`` (m x alpha), ``G`` (alpha x r) and ``B^T`` (alpha x alpha) as float64 arrays."""

    def __init__(self, m, r, points):
        alpha = m + r - 1
        points = tuple(Fraction(p) for p in points)
        if len(points) != alpha - 1 or len(set(points)) != len(points):
            raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct finite points, got {points}")
        self.m, self.r, self.alpha, self.points = m, r, alpha, points
        at = _evaluation(points, m)          # alpha x m; A^T is its transpose
        g = _evaluation(points, r)           # alpha x r
        bt = _transpose(_inverse(_evaluation(points, alpha)))   # alpha x alpha
        for j, row in enumerate(bt):
            scale = _primitive_scale(row)
            bt[j] = [v * scale for v in row]
            g[j] = [v / scale for v in g[j]]
        self.exact = dict(AT=_transpose(at), G=g, BT=bt)
        self.AT = np.array(self.exact["AT"], dtype=np.float64)
        self.G = np.array(g, dtype=np.float64)
        self.BT = np.array(bt, dtype=np.float64)

    def __repr__(self):
        points = ", ".join(str(p) for p in self.points)
        return f"WinogradMatrices(F({self.m}, {self.r}), points {{{points}, inf}})"


def _evaluation(points, n):
    """Rows p^0 .. p^(n-1) for every finite point, then the leading coefficient (infinity)."""
    rows = [[p ** i for i in range(n)] for p in points]
    rows.append([Fraction(int(i == n - 1)) for i in range(n)])
    return rows


def _transpose(rows):
    return [list(col) for col in zip(*rows)]


def _inverse(rows):
    """Gauss-Jordan inverse in exact rational arithmetic."""
    n = len(rows)
    work = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if work[r][col] != 0)
        work[col], work[pivot] = work[pivot], work[col]
        inv = 1 / work[col][col]
        work[col] = [v * inv for v in work[col]]
        for r in range(n):
            if r != col and work[r][col] != 0:
                factor = work[r][col]
                work[r] = [a - factor * b for a, b in zip(work[r], work[col])]
    return [row[n:] for row in work]


def _primitive_scale(row):
    """The positive factor that turns ``row`` into a primitive integer vector."""
    nonzero = [v for v in row if v != 0]
    den = lcm(*(v.denominator for v in nonzero))
    num = gcd(*(int(v * den) for v in nonzero))
    return Fraction(den, num)


@lru_cache(maxsize=None)
def matrices(m, r=3, points=None):
    """The :class:`WinogradMatrices` of F(m, r), with :data:`POINTS` unless ``points`` given."""
    return WinogradMatrices(m, r, POINTS[m, r] if points is None else points)
