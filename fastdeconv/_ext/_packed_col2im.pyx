# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""A transposed convolution as col2im fused into the packed engine's GEMM: no column matrix
and no packed weight.

The GEMM per block of samples and group has one row per pair (output channel o, tap t) and
one column per position of ``x``: ``cols[o * taps + t, j] = sum_c weight[c, o, t] x[c, j]``.
Its A is the weight itself, read as the dense transposed matrix ``A[o * taps + t, c] =
weight[c, o, t]`` (rows contiguous: each work item packs its blocks of A with plain copies,
where a stride phase's A is gathered from every ``taps``-th value); its B is ``x`` through
a 1x1 source. Each work item's block of ``cols`` is added into the output right after it is
computed (``gemm/fd_driver.h``, ``fd_col2im_unit``): value ``(o, t, j)`` at output position
``j * stride + t * dilation`` of the uncropped output (every tap's position), which is
cropped by the padding afterwards. So the weight is never packed ahead (``dcgan_g2``: 8 MiB
that the stride phases gather on every call), at the cost of every tap's product past the
output's edges and of adds instead of stores.

A prepared layer keeps the weight packed into the GEMM's A micro-panels
(:func:`pack_col2im_weight`), so that no work item packs it: the same values, the same bits.

Work is cut into units of whole output channels (a unit's rows are a multiple of ``taps``),
one unit per thread at a time; a unit runs its column items in order, so each output gets
its terms in the same order whatever the thread count.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uintptr_t
from libc.string cimport memset

import math
from math import prod

import numpy as np

from ._packed_gemm cimport *
from ._packed_tables cimport *
from ._packed_gemm import (_check_conv_arrays, _check_per_dim, _check_shapes, _check_threads,
                           _isa_of, give_scratch)


cdef class Col2imTables(_Tables):
    """The tables of :func:`conv_transpose_col2im_run` (:func:`col2im_tables`)."""
    cdef ConvTables conv
    cdef object add_row                  # intp: row (o, t)'s offset in the uncropped output
    cdef readonly tuple full_shape       # the uncropped output of one engine call
    cdef tuple crop                      # y = full[crop]
    cdef readonly Py_ssize_t units       # units of work (whole output channels of a GEMM)
    cdef Py_ssize_t a_group, lda


def col2im_tables(x_shape, weight_shape, y_shape, dtype, stride=1, dilation=1, padding=0,
                  groups=1, threads=1, kernel=None):
    """The tables of :func:`conv_transpose_col2im_run` for arrays of these shapes and dtype
    (the parameters as for :func:`conv_transpose_col2im_packed`; shapes as tuples of ints)."""
    dtype, groups = _check_shapes(dtype, groups, x=x_shape, weight=weight_shape, y=y_shape)
    ndim = len(x_shape) - 2
    batch, c_x = x_shape[:2]
    c_y, cout_g = y_shape[1], weight_shape[1]
    if (y_shape[0] != batch or c_x % groups or weight_shape[0] != c_x
            or cout_g * groups != c_y):
        raise ValueError(f"x {x_shape}, weight {weight_shape} and y {y_shape} do not match "
                         f"with groups={groups}: weight must be ({c_x}, y's channels // "
                         f"{groups}, ...) and y have x's {batch} samples")
    kernel_size = tuple(int(k) for k in weight_shape[2:])
    if any(k < 1 for k in kernel_size):
        raise ValueError(f"weight must have kernel sizes >= 1, got shape {weight_shape}")
    stride = _check_per_dim(stride, ndim, "stride", 1)
    dilation = _check_per_dim(dilation, ndim, "dilation", 1)
    padding = _check_per_dim(padding, ndim, "padding", 0)
    cdef Col2imTables tables = Col2imTables.__new__(Col2imTables)
    tables.threads = _check_threads(threads)
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double = dtype == np.float64
    tables.x_shape, tables.weight_shape, tables.y_shape = x_shape, weight_shape, y_shape
    tables.dtype, tables.groups = dtype, groups
    tables.empty = prod(y_shape) == 0 or c_x == 0 or prod(x_shape) == 0
    tables.pad = None
    tables.packing_key = ("col2im", dtype.str, isa, groups, tuple(weight_shape))   # (empty)
    # the uncropped output: room for every tap of every position, and for the cropped output
    full = tuple(max((n - 1) * s + (k - 1) * d + 1, p + o) for n, s, k, d, p, o in
                 zip(x_shape[2:], stride, kernel_size, dilation, padding, y_shape[2:]))
    tables.full_shape = (batch, c_y) + full
    tables.crop = (slice(None), slice(None)) + tuple(slice(p, p + o)
                                                     for p, o in zip(padding, y_shape[2:]))
    if tables.empty:
        return tables
    taps = prod(kernel_size)
    cdef ConvTables t = _conv_tables(tuple(x_shape), (1,) * ndim, cout_g * taps,
                                     tables.full_shape, tuple(x_shape[2:]), (1,) * ndim,
                                     (1,) * ndim, groups, 1, isa, is_double, False, 0,
                                     (0,) * ndim, stride, None, cout_g)
    t.apack_group = fd_apack_elems(&t.p)   # (the plan's tile pads rows x columns least)
    # units of whole output channels: rows a multiple of taps and of MR, about
    # FD_PLACED_MAX_ROWS (the plan was made for one thread: the sums follow it alone)
    whole = t.p.mr * taps // math.gcd(t.p.mr, taps)
    rows = max(whole, FD_PLACED_MAX_ROWS // whole * whole)
    t.p.m_chunk = rows if t.p.m > rows else (t.p.m + t.p.mr - 1) // t.p.mr * t.p.mr
    t.p.items_m = (t.p.m + t.p.m_chunk - 1) // t.p.m_chunk
    t.work_bytes = fd_workspace_bytes(&t.p, 8 if is_double else 4, 1)
    tables.conv = t
    tables.packing_key = ("col2im", dtype.str, isa, groups, tuple(weight_shape), t.p.mr,
                          t.p.kc)
    tables.units = t.samples // t.per_gemm * groups * t.p.items_m
    tables.a_group = c_x // groups * cout_g * taps
    tables.lda = cout_g * taps
    full_strides = np.cumprod((full + (1,))[::-1])[::-1][1:]
    tap_at = np.array([sum(int(i) * int(d) * int(st) for i, d, st in
                           zip(tap, dilation, full_strides))
                       for tap in np.ndindex(*kernel_size)], dtype=np.intp)
    tables.add_row = (np.arange(cout_g, dtype=np.intp)[:, None] * prod(full)
                      + tap_at[None, :]).reshape(-1)
    return tables


def pack_col2im_weight(Col2imTables tables not None, weight):
    """``weight`` (the tables' shape and dtype, C-contiguous) packed for ``tables``: every
    group's A (the weight's rows, MR at a time, every KC slice), a
    :class:`~fastdeconv._ext._packed_gemm.PackedWeight` that
    :func:`conv_transpose_col2im_run` takes in its place (then no work item packs A)."""
    check_like(weight, "weight", tables.weight_shape, tables.dtype)
    cdef ConvTables t = tables.conv
    if t is None:
        return new_packed(tables.packing_key, [])
    cdef size_t elem = 8 if t.is_double else 4
    cdef PackedWeight packed = new_packed(tables.packing_key,
                                           [t.apack_group * t.groups * elem])
    cdef const char* pw = <const char*> <uintptr_t> weight.ctypes.data
    cdef Py_ssize_t g, lda = tables.lda, a_group = tables.a_group
    cdef int threads = tables.threads
    with nogil:
        for g in range(t.groups):
            pack_a(pw + g * a_group * elem, lda, True, &t.p, t.is_double,
                   packed.data + g * t.apack_group * elem, threads)
    return packed


def conv_transpose_col2im_run(Col2imTables tables not None, x, weight, y):
    """:func:`conv_transpose_col2im_packed` on arrays of the shapes of ``tables``; ``weight``
    is the weight array or a :class:`~fastdeconv._ext._packed_gemm.PackedWeight` packed for
    these tables (:func:`pack_col2im_weight`). Returns ``y``."""
    packed = _check_operands(tables, x, weight, y)
    if tables.empty:
        y[...] = 0
        return y
    cdef ConvTables t = tables.conv
    cdef bint in_place = tables.full_shape == tables.y_shape
    cdef char* pfull = NULL
    full_block = None
    if in_place:
        y[...] = 0
        full = y
        pfull = <char*> <uintptr_t> y.ctypes.data
    else:
        full_block = take_scratch(prod(tables.full_shape) * x.dtype.itemsize, &pfull,
                                  "uncropped output")
    cdef size_t full_bytes = prod(tables.full_shape) * x.dtype.itemsize
    cdef char* work = NULL
    cdef size_t work_stride
    cdef int threads = tables.threads
    cdef Py_ssize_t units = tables.units, a_group = tables.a_group
    cdef Py_ssize_t[::1] add_row = tables.add_row
    cdef const Py_ssize_t* prow = &add_row[0]
    try:
        if not in_place:
            with nogil:
                memset(pfull, 0, full_bytes)
        work_block = take_work(t.work_bytes, threads, &work, &work_stride)
        cj = _conv_job(t, <const void*> <uintptr_t> x.ctypes.data, <void*> pfull, NULL,
                       NULL if packed is None else (<PackedWeight> packed).data)
        _run_units(cj, NULL if packed is not None else
                   <const char*> <uintptr_t> weight.ctypes.data, tables.lda, a_group,
                   prow, units, work, work_stride, threads)
        give_scratch(work_block)
        if not in_place:
            start = <size_t> (pfull - <char*> <uintptr_t> full_block.ctypes.data)
            full = full_block[start:start + full_bytes].view(x.dtype).reshape(
                tables.full_shape)
            y[...] = full[tables.crop]
    finally:
        if full_block is not None:
            give_scratch(full_block)
    return y


cdef _run_units(_ConvJob cj, const char* pw, Py_ssize_t lda, Py_ssize_t a_group,
                const Py_ssize_t* prow, Py_ssize_t units, char* work, size_t work_stride,
                int threads):
    """Every unit of the job (fd_col2im_unit) on up to ``threads`` threads."""
    cdef void* job = cj.job()
    cdef bint is_double = cj.is_double
    cdef Py_ssize_t unit
    cdef char* mine = NULL
    if units < 2:
        threads = 1
    with nogil, parallel(num_threads=threads):
        mine = work + <size_t> threadid() * work_stride
        for unit in prange(units, schedule="dynamic"):
            if is_double:
                fd_col2im_unit_d(<fd_conv_job_d*> job, <const double*> pw, lda, a_group, prow,
                                 unit, <double*> mine)
            else:
                fd_col2im_unit_f(<fd_conv_job_f*> job, <const float*> pw, lda, a_group, prow,
                                 unit, <float*> mine)


def conv_transpose_col2im_packed(x, weight, y, stride=1, dilation=1, padding=0, groups=1,
                                 threads=1, kernel=None):
    """``y = conv_transpose(x, weight)`` as col2im fused into the packed engine's GEMM (see
    the module docstring): no column matrix, the weight read as it is.

    Output position ``o`` (per dimension) gets ``x[j] * weight[t]`` wherever
    ``o + padding = j * stride + t * dilation``; ``y``'s size is given (positions past the
    full output, as an ``output_padding`` makes, are zero). Its tables
    (:func:`col2im_tables`) are made on every call; callers repeating a shape keep them.

    Parameters
    ----------
    x : numpy.ndarray
        ``(batch, c_in, *input_size)``, C-contiguous float32 or float64.
    weight : numpy.ndarray
        ``(c_in, c_out // groups, *kernel_size)``, same dtype.
    y : numpy.ndarray
        ``(batch, c_out, *output_size)``, same dtype, writable; overwritten.
    stride, dilation : int or tuple of int
        Per spatial dimension, >= 1.
    padding : int or tuple of int
        Positions cropped before each spatial dimension, >= 0.
    groups : int
        Divides c_in and c_out.
    threads : int
        Threads to use (>= 1); the result does not depend on it.
    kernel : {None, 'portable', 'avx2', 'avx512'}
        Force a kernel (for tests).

    Returns
    -------
    numpy.ndarray
        ``y``.
    """
    ndim, groups = _check_conv_arrays(x, weight, y, groups)
    tables = col2im_tables(x.shape, weight.shape, y.shape, x.dtype, stride, dilation, padding,
                           groups, threads, kernel)
    return conv_transpose_col2im_run(tables, x, weight, y)
