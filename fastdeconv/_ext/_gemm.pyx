# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""GEMM family: the shape-determined parallel GEMM and the row gathers of sample tiles.

Determinism (same bits whatever the thread count): every GEMM of the im2col and stride-phase
kernels goes through :func:`parallel_gemm`, which cuts the larger of its M and N dimensions
into pieces whose number depends only on the shape, never on the thread count, and runs one
single-threaded BLAS call per piece (``fastdeconv._blas_threads`` holds BLAS to one thread
meanwhile). The reduction dimension K is never cut. The gathers and scatters are copies in
which every element is written by one thread.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy

from ._blas cimport gemm, blas_int

cdef GemmPieces PIECES
PIECES.min_piece = 256
PIECES.max_pieces = 16
PIECES.parallel_min_flops = 1 << 18


cdef GemmPieces* gemm_pieces() noexcept nogil:
    """The GEMM piece thresholds (one setting for every kernel module)."""
    return &PIECES


cdef void copy_rows(const floating* src, Py_ssize_t src_stride, Py_ssize_t src_ld,
                    floating* dst, Py_ssize_t dst_stride, Py_ssize_t dst_ld, Py_ssize_t nb,
                    Py_ssize_t rows, Py_ssize_t width, int num_threads) noexcept nogil:
    """dst[b*dst_stride + r*dst_ld + j] = src[b*src_stride + r*src_ld + j] for the samples
    b < nb, rows r < rows and j < width; parallel over (sample, row)."""
    cdef Py_ssize_t item, b, r
    if nb * rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * rows, num_threads=num_threads, schedule="static"):
        b = item / rows
        r = item % rows
        memcpy(dst + b * dst_stride + r * dst_ld, src + b * src_stride + r * src_ld,
               width * sizeof(floating))


cdef void parallel_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating* a, Py_ssize_t lda,
                        const floating* b, Py_ssize_t ldb, floating beta,
                        floating* c, Py_ssize_t ldc, int num_threads) noexcept nogil:
    """Row-major GEMM cut into shape-determined pieces along M or N, over OpenMP threads.

    The pieces (and so every BLAS call and its summation order) depend only on (m, n, k), so
    the result is bit-identical for any ``num_threads``. The reduction dimension K is never cut.
    """
    cdef bint split_m = m >= n
    cdef Py_ssize_t extent = m if split_m else n
    cdef Py_ssize_t pieces = (extent + PIECES.min_piece - 1) / PIECES.min_piece
    cdef Py_ssize_t width, p, start, count
    # A multiple of 4 pieces balances 1, 2 and 4 threads (the count must not depend on the
    # thread count, or the summation order, and so the bits, would).
    if pieces > 1 or extent >= 4 * GEMM_MIN_PIECE_FLOOR:
        pieces = (pieces + 3) / 4 * 4
    if pieces > PIECES.max_pieces:
        pieces = PIECES.max_pieces
    if extent < 4 * GEMM_MIN_PIECE_FLOOR or m * n * k < PIECES.parallel_min_flops:
        pieces = 1
    width = (extent + pieces - 1) / pieces
    pieces = (extent + width - 1) / width
    if pieces == 1:
        num_threads = 1
    for p in prange(pieces, num_threads=num_threads, schedule="static"):
        start = p * width
        count = extent - start if extent - start < width else width
        if split_m:
            gemm(trans_a, trans_b, <blas_int> count, <blas_int> n, <blas_int> k, alpha,
                 a + (start if trans_a else start * lda), <blas_int> lda,
                 b, <blas_int> ldb, beta, c + start * ldc, <blas_int> ldc)
        else:
            gemm(trans_a, trans_b, <blas_int> m, <blas_int> count, <blas_int> k, alpha,
                 a, <blas_int> lda, b + (start * ldb if trans_b else start), <blas_int> ldb,
                 beta, c + start, <blas_int> ldc)
