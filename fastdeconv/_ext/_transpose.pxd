# cython: language_level=3
"""Out-of-place transposition in register tiles (``fd_transpose.h``) for either floating type
(shared by the layout kernels and the sub-pixel depth-to-space step)."""
from cython cimport floating

cdef extern from "fd_transpose.h" nogil:
    void fd_transpose_f(const float* src, Py_ssize_t lds, float* dst, Py_ssize_t ldd,
                        Py_ssize_t rows, Py_ssize_t cols, int simd)
    void fd_transpose_d(const double* src, Py_ssize_t lds, double* dst, Py_ssize_t ldd,
                        Py_ssize_t rows, Py_ssize_t cols, int simd)
    int fd_transpose_simd()


cdef inline void transpose(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd,
                           Py_ssize_t rows, Py_ssize_t cols, int simd) noexcept nogil:
    """``dst[j * ldd + i] = src[i * lds + j]`` for ``i < rows``, ``j < cols``; ``simd`` = 0
    forces the plain C loop (a copy: both give the same bits). Call ``fd_transpose_simd()``
    once at import, so that its CPU check does not run first inside a parallel region."""
    if floating is float:
        fd_transpose_f(src, lds, dst, ldd, rows, cols, simd)
    else:
        fd_transpose_d(src, lds, dst, ldd, rows, cols, simd)
