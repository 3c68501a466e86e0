# cython: language_level=3
"""What the stride-phase kernels use of the im2col family (``_im2col_kernels.pyx``)."""
from cython cimport floating

from ._index cimport Geometry

cdef void im2col_batch(const floating* x, Py_ssize_t x_stride, Py_ssize_t nb,
                       floating* col, Py_ssize_t ldcol, Py_ssize_t channels, const Geometry* g,
                       Py_ssize_t l0, Py_ssize_t l1, int num_threads) noexcept nogil
