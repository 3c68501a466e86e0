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
primitive integer vectors and ``G`` takes the inverse scales, so that the coefficients of the
data transforms are exact in floating point (integers in ``B^T``, powers of two in ``A^T``
for the points used) and every non-dyadic fraction sits in ``G``, which fastdeconv applies to
the weights in float64 once per call. The data transforms still round: their sums of
products are computed in the working precision. The matrices are built with exact rational
arithmetic here and rounded to float64 once.

Rounding error (:meth:`WinogradMatrices.rounding_steps`, :meth:`WinogradMatrices.error_weights`):
with unit roundoff ``u`` and ``gamma_k = k u / (1 - k u)``, the standard bound of each sum of
products (Higham, *Accuracy and Stability of Numerical Algorithms*, chapter 3), chained through
the weight transform (float64, then rounded), the two passes of ``B^T d B``, the GEMM over
the ``C_g`` input channels of a group and the two passes of ``A^T M A``, gives for every
output of a tile::

    |y_computed - y| <= gamma_k |A^T| ( sum_c (|G| |g_c| |G^T|) * (|B^T| |d_c| |B|) ) |A|

and, with ``|d_c| <= X_c`` (the largest ``|x|`` of channel ``c`` in the tile's input window,
zero padding included)::

    |y_computed - y| <= gamma_k sum_c X_c max(C |g_c| C^T),   C = |A^T| diag(|B^T| 1) |G|

The bound is per tile: an output whose own receptive field is all zero padding gets the
rounding error of the other outputs of its tile.

The weight gradient is the adjoint with respect to ``U``: ``dU = sum_t (A gy_t A^T) *
(B^T d_t B)`` over the ``T`` tiles (GEMMs over tiles), ``dg = G^T dU G`` (float64). Chaining
the same bounds (:meth:`WinogradMatrices.weight_grad_rounding_steps`) gives, for every
weight-gradient element::

    |dg_computed - dg| <= gamma_k |G^T| ( sum_t (|A| |gy_t| |A^T|) * (|B^T| |d_t| |B|) ) |G|
"""

from fractions import Fraction
from functools import lru_cache
from math import gcd, lcm

import numpy as np

__all__ = ["POINTS", "WinogradMatrices", "matrices"]

#: Finite interpolation points per (output tile size ``m``, kernel size ``r``), with the
#: point at infinity.
#: F(2, 3) is Lavin's {0, 1, -1}. For F(4, 3) the error factor ``max(C 1 C^T) / r^2`` of
#: :meth:`WinogradMatrices.error_weights` (unit weights) is 256 with Lavin's {0, +-1, +-2}
#: or {0, +-1, +-1/2} and 97.4 with {0, +-1, 2, -1/2} or {0, +-1, 1/2, -2} (the set
#: Barabasz et al. 2020 recommend), which is used. For 2x2 kernels (stride phases of
#: transposed convolutions) F(4, 2) has factor 100 with {0, +-1, 2}, {0, +-1, 1/2} and
#: {0, +-1, -2} alike; {0, +-1, -2} is used.
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

    def rounding_steps(self, channels):
        """The ``k`` of the rounding-error bound ``gamma_k`` (see the module docstring).

        Parameters
        ----------
        channels : int
            Input channels per group (the length of the GEMMs' sums).

        Returns
        -------
        int
            ``2 r + 3`` for the weight transform (two float64 passes with rounded ``G``,
            then the rounding to the working precision), twice the most non-zeros of a row
            of ``B^T`` and of ``A^T`` for the two passes of each data transform, and
            ``channels`` for the GEMM.
        """
        nnz_b = int((self.BT != 0).sum(axis=1).max())
        nnz_a = int((self.AT != 0).sum(axis=1).max())
        return 2 * self.r + 3 + 2 * nnz_b + channels + 2 * nnz_a

    def weight_grad_rounding_steps(self, tiles):
        """The ``k`` of the weight gradient's bound ``gamma_k`` (see the module docstring).

        Parameters
        ----------
        tiles : int
            Tiles of the GEMMs' sums (all samples and dilation phases).

        Returns
        -------
        int
            Twice the most non-zeros of a row of ``A`` (the transform ``A gy A^T`` of the
            output gradient's tiles) and of ``B^T``, ``tiles`` for the GEMM, and ``2 alpha +
            3`` for ``G^T dU G`` (two float64 passes with rounded ``G``, then the rounding to
            the working precision).
        """
        nnz_b = int((self.BT != 0).sum(axis=1).max())
        nnz_a = int((self.AT != 0).sum(axis=0).max())
        return 2 * nnz_a + 2 * nnz_b + tiles + 2 * self.alpha + 3

    def error_weights(self, abs_weight):
        """``max(C |g| C^T)`` of every ``r x r`` kernel (see the module docstring).

        Parameters
        ----------
        abs_weight : ndarray, shape (..., r, r)
            Absolute values of the kernels.

        Returns
        -------
        ndarray, shape (...)
            The largest over the ``m x m`` outputs of a tile of ``C |g| C^T``, with
            ``C = |A^T| diag(|B^T| 1) |G|``: ``gamma_k`` times the sum over input channels of
            this times the channel's largest ``|x|`` in the tile bounds the rounding error.
            At least ``sum |g|`` (``C >= 1`` entrywise, since the transforms are exact).
        """
        c = np.abs(self.AT) @ (np.abs(self.BT).sum(axis=1)[:, None] * np.abs(self.G))
        return np.einsum("pk,...kl,ql->...pq", c, abs_weight, c).max(axis=(-2, -1))

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
