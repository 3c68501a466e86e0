# cython: language_level=3
"""Vectorised inner loops of ``_simd.h`` for either floating type (shared by the kernels)."""
from cython cimport floating

cdef extern from "_simd.h" nogil:
    void fd_add_f(Py_ssize_t n, const float* x, float* y)
    void fd_add_d(Py_ssize_t n, const double* x, double* y)
    void fd_add_pair_f(Py_ssize_t n, const float* a, const float* b, float* y)
    void fd_add_pair_d(Py_ssize_t n, const double* a, const double* b, double* y)
    void fd_split_pair_f(Py_ssize_t n, const float* x, float* a, float* b)
    void fd_split_pair_d(Py_ssize_t n, const double* x, double* a, double* b)
    void fd_store_pair_f(Py_ssize_t n, const float* a, const float* b, float* y)
    void fd_store_pair_d(Py_ssize_t n, const double* a, const double* b, double* y)
    void fd_taps_f(Py_ssize_t n, Py_ssize_t k, const float* w, const Py_ssize_t* off,
                   const float* x, float* z)
    void fd_taps_d(Py_ssize_t n, Py_ssize_t k, const double* w, const Py_ssize_t* off,
                   const double* x, double* z)
    void fd_taps_pair_rows_f(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t nb, Py_ssize_t ka,
                             const float* wa, const Py_ssize_t* offa, const float* xa,
                             Py_ssize_t kb, const float* wb, const Py_ssize_t* offb,
                             const float* xb, Py_ssize_t xstride, float* y,
                             Py_ssize_t ystride, float* za, float* zb)
    void fd_taps_pair_rows_d(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t nb, Py_ssize_t ka,
                             const double* wa, const Py_ssize_t* offa, const double* xa,
                             Py_ssize_t kb, const double* wb, const Py_ssize_t* offb,
                             const double* xb, Py_ssize_t xstride, double* y,
                             Py_ssize_t ystride, double* za, double* zb)


cdef inline void add_pair(Py_ssize_t n, const floating* a, const floating* b,
                          floating* y) noexcept nogil:
    """y[2i] += a[i], y[2i + 1] += b[i] for i < n, vectorised (see _simd.h)."""
    if floating is float:
        fd_add_pair_f(n, a, b, y)
    else:
        fd_add_pair_d(n, a, b, y)


cdef inline void store_pair(Py_ssize_t n, const floating* a, const floating* b,
                            floating* y) noexcept nogil:
    """y[2i] = a[i], y[2i + 1] = b[i] for i < n, vectorised (see _simd.h)."""
    if floating is float:
        fd_store_pair_f(n, a, b, y)
    else:
        fd_store_pair_d(n, a, b, y)


cdef inline void taps(Py_ssize_t n, Py_ssize_t k, const floating* w, const Py_ssize_t* off,
                      const floating* x, floating* z) noexcept nogil:
    """z[i] = sum over t < k of w[t] * x[off[t] + i] (from 0, in order of t), for i < n."""
    if floating is float:
        fd_taps_f(n, k, w, off, x, z)
    else:
        fd_taps_d(n, k, w, off, x, z)


cdef inline void split_pair(Py_ssize_t n, const floating* x, floating* a,
                            floating* b) noexcept nogil:
    """a[i] = x[2i], b[i] = x[2i + 1] for i < n, vectorised (see _simd.h)."""
    if floating is float:
        fd_split_pair_f(n, x, a, b)
    else:
        fd_split_pair_d(n, x, a, b)


cdef inline void add(Py_ssize_t n, const floating* x, floating* y) noexcept nogil:
    """y[:n] += x[:n], vectorised for the CPU at hand (see _simd.h)."""
    if floating is float:
        fd_add_f(n, x, y)
    else:
        fd_add_d(n, x, y)


cdef inline void taps_pair_rows(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t nb, Py_ssize_t ka,
                                const floating* wa, const Py_ssize_t* offa, const floating* xa,
                                Py_ssize_t kb, const floating* wb, const Py_ssize_t* offb,
                                const floating* xb, Py_ssize_t xstride, floating* y,
                                Py_ssize_t ystride, floating* za, floating* zb) noexcept nogil:
    """Two interleaving stride phases computed and stored row by row (see _simd.h)."""
    if floating is float:
        fd_taps_pair_rows_f(rows, n, nb, ka, wa, offa, xa, kb, wb, offb, xb, xstride, y,
                            ystride, za, zb)
    else:
        fd_taps_pair_rows_d(rows, n, nb, ka, wa, offa, xa, kb, wb, offb, xb, xstride, y,
                            ystride, za, zb)
