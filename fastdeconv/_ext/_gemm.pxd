# cython: language_level=3
"""Shared GEMM machinery of the im2col, stride-phase and Winograd kernels (in ``_gemm.pyx``).

:func:`parallel_gemm` cuts a GEMM into pieces whose number depends only on its shape, never
on the thread count, and runs one single-threaded BLAS call per piece; :func:`gather_rows` and
:func:`scatter_rows` move the rows of several samples into one GEMM operand and back. The
piece thresholds are one setting shared by every kernel module (:func:`gemm_pieces`; set by
``fastdeconv._ext._runtime.gemm_piece_parameters``, for tuning and tests).
"""
from cython cimport floating

cdef enum:
    # Below this many elements a copy (im2col, col2im, gathered rows, tile transforms) runs on
    # one thread: starting threads would cost more than it saves.
    PARALLEL_MIN_ELEMENTS = 1 << 15
    # No GEMM piece is narrower than this.
    GEMM_MIN_PIECE_FLOOR = 32


cdef struct GemmPieces:
    # GEMMs are cut into at most max_pieces pieces along M or N, each at least min_piece wide,
    # and below parallel_min_flops multiply-adds they run as one piece (on one thread).
    Py_ssize_t min_piece
    Py_ssize_t max_pieces
    Py_ssize_t parallel_min_flops


cdef GemmPieces* gemm_pieces() noexcept nogil

cdef void copy_rows(const floating* src, Py_ssize_t src_stride, Py_ssize_t src_ld,
                    floating* dst, Py_ssize_t dst_stride, Py_ssize_t dst_ld, Py_ssize_t nb,
                    Py_ssize_t rows, Py_ssize_t width, int num_threads) noexcept nogil


cdef inline void gather_rows(const floating* src, Py_ssize_t src_stride, Py_ssize_t src_ld,
                             Py_ssize_t nb, Py_ssize_t rows, Py_ssize_t width,
                             floating* dst, Py_ssize_t ldst, int num_threads) noexcept nogil:
    """dst[r, b*width:(b+1)*width] = src[b*src_stride + r*src_ld : ... + width] (sample blocks)."""
    copy_rows(src, src_stride, src_ld, dst, width, ldst, nb, rows, width, num_threads)


cdef inline void scatter_rows(const floating* src, Py_ssize_t lsrc, Py_ssize_t nb,
                              Py_ssize_t rows, Py_ssize_t width, floating* dst,
                              Py_ssize_t dst_stride, Py_ssize_t dst_ld,
                              int num_threads) noexcept nogil:
    """Inverse of :func:`gather_rows`: dst[b*dst_stride + r*dst_ld + j] = src[r, b*width + j]."""
    copy_rows(src, width, lsrc, dst, dst_stride, dst_ld, nb, rows, width, num_threads)


cdef void parallel_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating* a, Py_ssize_t lda,
                        const floating* b, Py_ssize_t ldb, floating beta,
                        floating* c, Py_ssize_t ldc, int num_threads) noexcept nogil
