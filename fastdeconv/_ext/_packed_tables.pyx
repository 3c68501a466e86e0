# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""The packed engine's convolution tables and jobs, shared by the convolutions of
:mod:`fastdeconv._ext._packed_conv` (declared in ``_packed_tables.pxd``): the shape-only
set-up of one engine convolution (:class:`ConvTables`, made by ``_conv_tables``), what every
tables object of a run has (``_Tables``), the check of a run's arrays against them
(``_check_operands``) and a run's job with its pointers (``_ConvJob``, made by
``_conv_job``)."""
from math import prod

import numpy as np

from ._packed_gemm cimport *


# ------------------------------------------------------------------------------ validation
cdef PackedWeight _check_operands(_Tables tables, x, weight, y):
    """Check a run's arrays against its tables; the PackedWeight passed as ``weight``, or
    None for an array."""
    packed = weight if isinstance(weight, PackedWeight) else None
    check_like(x, "x", tables.x_shape, tables.dtype)
    check_like(y, "y", tables.y_shape, tables.dtype)
    if packed is None:
        check_like(weight, "weight", tables.weight_shape, tables.dtype)
    elif packed.key != tables.packing_key:
        raise ValueError("weight is a PackedWeight packed for other tables (its key "
                         f"{packed.key!r} is not the tables' {tables.packing_key!r})")
    if not y.flags.writeable:
        raise ValueError("y must be writable")
    if np.shares_memory(y, x) or (packed is None and np.shares_memory(y, weight)):
        raise ValueError("y must not overlap x or weight")
    return packed


# ---------------------------------------------------------------------------- the tables
cdef class ConvTables:
    """The shape-only set-up of one engine convolution (a GEMM per sample block and group):
    its plan, its B source (sizes and the tap offsets it points to) and its operands'
    strides. Read-only once made; a run makes its job (pointers) from it (its attributes are
    declared in ``_packed_tables.pxd``)."""


cdef ConvTables _conv_tables(tuple xp_shape, tuple kernel_size, Py_ssize_t cout_g,
                             tuple y_shape, tuple out_size, tuple stride, tuple dilation,
                             Py_ssize_t groups, int threads, int isa, bint is_double,
                             bint pointwise, Py_ssize_t base=0, tuple place_first=None,
                             tuple place_step=None, place_row=None, Py_ssize_t y_channels=-1):
    """The tables of the engine's convolution of a padded input of shape xp_shape into y,
    out_size outputs per dimension; every tap reads base elements further on. With
    place_first and place_step, output o goes to y[..., place_first + place_step * o] (a
    placed source: no bias), else y is (batch, c_out, *out_size). The GEMM's A is a weight
    (c_out, c_in // groups, *kernel_size) or a stride phase's, cout_g rows per group. A
    placed source may give each row's start in y's group (place_row, an intp array of cout_g
    offsets in elements) and y_channels, the channels of y per group (default cout_g)."""
    cdef ConvTables t = ConvTables.__new__(ConvTables)
    cdef Py_ssize_t ndim = len(xp_shape) - 2, d, taps = prod(kernel_size)
    cdef Py_ssize_t cin_g = xp_shape[1] // groups
    cdef Py_ssize_t P = prod(xp_shape[2:]), L = prod(out_size), Y = prod(y_shape[2:])
    cdef Py_ssize_t[::1] tap_offset
    cdef fd_conv_job_f jf
    cdef fd_conv_job_d jd
    t.is_double, t.pointwise, t.groups, t.samples = is_double, pointwise, groups, xp_shape[0]
    t.k = cin_g * taps
    t.per_gemm = fd_conv_samples_per_gemm(t.samples, L, pointwise)
    t.p = fd_make_plan(isa, is_double, cout_g, t.per_gemm * L, t.k, threads)
    if place_first is not None:
        fd_plan_cap_rows(&t.p, FD_PLACED_MAX_ROWS)
    t.apack_group = fd_apack_elems(&t.p)
    t.group_stride = cout_g * cin_g * taps
    # tap t (row-major over kernel_size) reads the padded input at flat offset tap_offset[t]
    in_strides = np.cumprod((xp_shape[2:] + (1,))[::-1])[::-1][1:]
    t.tap_offset = np.array([base + sum(i * dl * int(st) for i, dl, st in
                                        zip(tap, dilation, in_strides))
                             for tap in np.ndindex(*kernel_size)] or [0], dtype=np.intp)
    tap_offset = t.tap_offset
    t.src.ndim = <int> ndim
    t.src.placed = place_first is not None
    for d in range(ndim):
        t.src.in_size[d] = xp_shape[2 + d]
        t.src.out_size[d] = out_size[d]
        t.src.stride[d] = stride[d]
        t.src.place_size[d] = y_shape[2 + d]
        t.src.place_first[d] = place_first[d] if t.src.placed else 0
        t.src.place_step[d] = place_step[d] if t.src.placed else 1
    t.src.taps, t.src.stride_last, t.src.channel_stride = taps, stride[ndim - 1], P
    t.src.positions, t.src.sample_stride = L, xp_shape[1] * P
    t.src.place_sample_stride = y_shape[1] * Y
    t.src.tap_offset = &tap_offset[0]
    cdef Py_ssize_t[::1] rows
    t.place_row = place_row
    t.src.place_row = NULL
    if place_row is not None:
        rows = place_row
        t.src.place_row = &rows[0]
    t.x_sample, t.x_group, t.y_sample, t.y_group = xp_shape[1] * P, cin_g * P, y_shape[1] * Y, \
        (cout_g if y_channels < 0 else y_channels) * Y
    t.ldb, t.ldc = P, Y
    # the job's item count, from a job without operands
    fd_conv_job_init(is_double, <void*> &jd if is_double else <void*> &jf, &t.p, NULL,
                     t.apack_group, pointwise, NULL, P, &t.src, NULL, NULL, t.samples,
                     t.per_gemm, groups, t.x_sample, t.x_group, t.y_sample, t.y_group)
    t.items = fd_conv_items_d(&jd) if is_double else fd_conv_items_f(&jf)
    t.work_bytes = fd_workspace_bytes(&t.p, 8 if is_double else 4, t.src.placed)
    return t


cdef class _Tables:
    """What every tables object has: the shapes and dtype of its runs' arrays, the padding of
    x, the threads and the key of the weights packed for it (attributes in the .pxd)."""


# ------------------------------------------------------------------------------- the jobs
cdef class _ConvJob:
    """One run's job of a ConvTables: the tables' plan and source with the run's pointers."""

    cdef void* job(self) noexcept:
        return <void*> &self.jd if self.is_double else <void*> &self.jf


cdef _ConvJob _conv_job(ConvTables t, const void* px, void* py, const void* pbias,
                        const char* apack):
    """The job of ``t`` on the padded input at px, the output at py and the packed A at apack
    (every group's); t and the arrays must outlive it."""
    cdef _ConvJob cj = _ConvJob.__new__(_ConvJob)
    cj.is_double = t.is_double
    cdef void* job = cj.job()
    fd_conv_job_init(t.is_double, job, &t.p, apack, t.apack_group, t.pointwise, px, t.ldb,
                     &t.src, py, pbias, t.samples, t.per_gemm, t.groups, t.x_sample,
                     t.x_group, t.y_sample, t.y_group)
    if t.src.placed:
        fd_conv_job_set_ldc(t.is_double, job, t.ldc)
    return cj


fd_transpose_simd()   # the CPU check runs once here, not first inside a parallel region
