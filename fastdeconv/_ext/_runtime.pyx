# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""Run-time facts of the compiled kernels: OpenMP, threads, dimension limit, GEMM pieces.

Read by ``fastdeconv._threads`` and ``fastdeconv._config`` (and through them by every
operator); no computing kernel lives here.
"""
from ._gemm cimport GemmPieces, gemm_pieces
from ._index cimport MAX_NDIM
from ._openmp cimport FASTDECONV_HAVE_OPENMP, omp_get_max_threads

#: Whether the kernels were compiled with OpenMP.
HAVE_OPENMP = bool(FASTDECONV_HAVE_OPENMP)
#: The most spatial dimensions the im2col and stride-phase kernels handle.
MAX_SPATIAL_DIMS = MAX_NDIM


def gemm_piece_parameters(min_piece=None, max_pieces=None, parallel_min_flops=None):
    """Get (and optionally set) how GEMMs are cut into pieces; for tuning and tests only.

    One setting for every kernel module (``_gemm.pxd``); ``parallel_min_flops`` also decides
    when the Winograd GEMMs run on more than one thread.
    """
    cdef GemmPieces* pieces = gemm_pieces()
    if min_piece is not None:
        pieces.min_piece = min_piece
    if max_pieces is not None:
        pieces.max_pieces = max_pieces
    if parallel_min_flops is not None:
        pieces.parallel_min_flops = parallel_min_flops
    return pieces.min_piece, pieces.max_pieces, pieces.parallel_min_flops


def max_threads():
    """``omp_get_max_threads()``, or 1 without OpenMP."""
    return omp_get_max_threads()
