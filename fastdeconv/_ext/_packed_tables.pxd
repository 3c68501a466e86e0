# The packed engine's convolution tables and jobs (_packed_tables.pyx), cimported by
# _packed_conv.pyx.
from ._packed_gemm cimport *


cdef class ConvTables:
    cdef fd_plan p
    cdef fd_conv_src src
    cdef object tap_offset           # the array src.tap_offset points into
    cdef object place_row            # the array src.place_row points into, or None
    cdef bint is_double, pointwise
    cdef Py_ssize_t groups, samples, per_gemm, k, apack_group, group_stride, items
    cdef Py_ssize_t x_sample, x_group, y_sample, y_group, ldb, ldc
    cdef size_t work_bytes


cdef ConvTables _conv_tables(tuple xp_shape, tuple kernel_size, Py_ssize_t cout_g,
                             tuple y_shape, tuple out_size, tuple stride, tuple dilation,
                             Py_ssize_t groups, int threads, int isa, bint is_double,
                             bint pointwise, Py_ssize_t base=*, tuple place_first=*,
                             tuple place_step=*, place_row=*, Py_ssize_t y_channels=*)


cdef class _Tables:
    cdef readonly tuple x_shape, weight_shape, y_shape
    cdef readonly object dtype, packing_key
    cdef object pad
    cdef int threads
    cdef Py_ssize_t groups
    cdef bint empty


cdef PackedWeight _check_operands(_Tables tables, x, weight, y)


cdef class _ConvJob:
    cdef fd_conv_job_f jf
    cdef fd_conv_job_d jd
    cdef bint is_double

    cdef void* job(self) noexcept


cdef _ConvJob _conv_job(ConvTables t, const void* px, void* py, const void* pbias,
                        const char* apack)
