# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""The weight gradient of a convolution on the packed GEMM engine (``gemm/fd_gemm.h``;
kernels, validation and execution helpers shared with :mod:`fastdeconv._ext._packed_gemm`).

One GEMM per group reduces over the output positions::

    gw[g][co, (t, c)] (+)= sum over k of  gy[k, g * C_out/g + co]
                                        * x[row_offset[k] + tap_offset[t] + g * C_in/g + c]

with ``gy`` and ``x`` channels-last (a position's channels contiguous). Two forms:

- transposed (:func:`transposed_rows` is not None: at least MR channels per group), the
  GEMM ``gw[g]^T = X^T gy[g]`` whose A, the gathered rows of ``x``, is read in place by the
  micro-kernels (MR channels of one tap at each position) and whose B, ``gy``, is a dense
  packed matrix: nothing is gathered. The result is in a layout of whole MR panels per tap;
- otherwise ``gw[g] = gy[g]^T X`` with B, the gathered rows of ``x``, packed row by row.

The reduction is never split: every element of ``gw`` is one chain of multiply-adds over the
KC slices of positions in order, whatever the threads.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uintptr_t

import numpy as np

from ._packed_gemm cimport *
from ._transpose cimport transpose
from ._packed_gemm import (_check_flag, _check_matrix, _check_same_dtype, _check_threads,
                           _isa_of, give_scratch)


cdef extern from "gemm/fd_gemm.h" nogil:
    ctypedef struct fd_rows_src:
        const Py_ssize_t* row_offset
        const Py_ssize_t* tap_offset
        Py_ssize_t width
    void fd_gemm_job_set_rows(int is_double, void* job, const fd_rows_src* rows,
                              const void* base)
    void fd_gemm_job_set_a_rows(int is_double, void* job, const fd_rows_src* rows,
                                const void* base)
    fd_plan fd_make_plan_a_rows(int isa, int is_double, Py_ssize_t width,
                                Py_ssize_t groups_of_rows, Py_ssize_t n, Py_ssize_t k,
                                int threads)


def _check_offsets(value, name):
    if not isinstance(value, np.ndarray) or value.dtype != np.intp or value.ndim != 1 \
            or not value.flags.c_contiguous:
        raise TypeError(f"{name} must be a 1-d C-contiguous numpy.ndarray of dtype intp, "
                        f"got {value!r:.80}")
    return value


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def transposed_rows(c_in, c_out, taps, groups=1, dtype=np.float32, kernel=None):
    """The layout of the transposed weight gradient, or None where it does not apply.

    Parameters
    ----------
    c_in, c_out : int
        Channels of ``x`` and ``grad_y`` (multiples of ``groups``).
    taps : int
        Kernel taps (>= 1).
    groups : int
    dtype : {numpy.float32, numpy.float64}
    kernel : {None, 'portable', 'avx2', 'avx512'}
        The kernel the GEMM will run on (None: the default).

    Returns
    -------
    (rows, row_of) or None
        ``rows``: the rows per group of :func:`conv_weight_grad_packed`'s ``transposed``
        output ``(groups, rows, c_out // groups)``; ``row_of``: ``(taps, c_in // groups)``
        intp, the row that holds tap ``t`` of channel ``c``. Each tap's channels are
        whole panels of the register tile's MR rows, the last moved back to end with the
        channels (its first rows repeat channels of the panel before). None when a group
        has fewer channels than MR.

    Examples
    --------
    >>> rows, row_of = transposed_rows(20, 64, 2, kernel="portable")   # MR = 4
    >>> rows, row_of.shape
    (40, (2, 20))
    """
    c_in, c_out = _check_count(c_in, "c_in", 0), _check_count(c_out, "c_out", 0)
    taps, groups = _check_count(taps, "taps", 1), _check_count(groups, "groups", 1)
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    cdef int isa = _isa_of(kernel, "kernel")
    cdef Py_ssize_t cin_g = c_in // groups
    cdef fd_plan p = fd_make_plan_a_rows(isa, dtype == np.float64, cin_g, taps,
                                         max(c_out // groups, 1), 1, 1)
    if p.m == 0:
        return None
    run = p.m // taps
    channel_row = np.arange(cin_g, dtype=np.intp)
    channel_row[run - p.mr:] += run - cin_g   # the last panel, moved back
    row_of = np.arange(taps, dtype=np.intp)[:, None] * run + channel_row
    return int(p.m), row_of


DEF OUT_BLOCK = 8   # transposed_to_weight's rows of grad_weight at a time: one 8 x 8 tile


def transposed_to_weight(columns, row_of, grad_weight, threads=1):
    """The transposed form's result in the weight's order: ``grad_weight[g, co, c * taps +
    t] = columns[g, row_of[t, c], co]``.

    Parameters
    ----------
    columns : numpy.ndarray
        ``(groups, rows, c_out // groups)``, C-contiguous float32 or float64:
        :func:`conv_weight_grad_packed`'s ``transposed`` result.
    row_of : numpy.ndarray
        ``(taps, c_in // groups)`` intp, from :func:`transposed_rows` (its taps' rows a
        constant number of rows apart, every row below ``rows``).
    grad_weight : numpy.ndarray
        ``(groups, c_out // groups, c_in // groups * taps)``, C-contiguous, same dtype,
        writable (the weight ``(c_out, c_in // groups, *kernel_size)`` viewed so);
        overwritten.
    threads : int

    One register-tile transposition (``fd_transpose.h``) per channel: its taps' rows of
    ``columns`` into its columns of ``grad_weight``. A copy: the bits are ``columns``'.
    (NumPy's pick of the rows and transposing copy took 0.17 ms of ``wgrad_dcgan``.)
    """
    _check_matrix(columns, "columns", 3)
    _check_matrix(grad_weight, "grad_weight", 3)
    _check_same_dtype(columns.dtype, grad_weight=grad_weight)
    if not grad_weight.flags.writeable:
        raise ValueError("grad_weight must be writable")
    row_of, step = _check_row_of(row_of, columns.shape[1])
    groups, cout_g = columns.shape[0], columns.shape[2]
    taps, cin_g = row_of.shape
    if grad_weight.shape != (groups, cout_g, cin_g * taps):
        raise ValueError(f"grad_weight must have shape {(groups, cout_g, cin_g * taps)}, "
                         f"got {grad_weight.shape}")
    if np.shares_memory(columns, grad_weight):
        raise ValueError("grad_weight must not overlap columns")
    threads = _check_threads(threads)
    if grad_weight.size:
        if columns.dtype == np.float64:
            _weight_order[double](columns, row_of, step, grad_weight, threads)
        else:
            _weight_order[float](columns, row_of, step, grad_weight, threads)


cdef _weight_order(const floating[:, :, ::1] columns, const Py_ssize_t[:, ::1] rows,
                   Py_ssize_t step, floating[:, :, ::1] grad_weight, int threads):
    """transposed_to_weight on checked arrays; a channel's taps are `step` rows apart."""
    cdef Py_ssize_t groups = columns.shape[0], cout_g = columns.shape[2]
    cdef Py_ssize_t taps = rows.shape[0], cin_g = rows.shape[1], g, c, block, co
    cdef Py_ssize_t blocks = (cout_g + OUT_BLOCK - 1) // OUT_BLOCK
    with nogil:
        for g in range(groups):
            # OUT_BLOCK output channels (rows of grad_weight) at a time, channel after
            # channel: a channel's columns of every row at once wrote rows c_in x taps
            # values apart, which share their L1 sets when that is a multiple of 1024 bytes
            # (wgrad_dcgan: 64 rows 8 KiB apart, 68 us)
            for block in prange(blocks, num_threads=threads, schedule="static"):
                co = block * OUT_BLOCK
                for c in range(cin_g):
                    transpose(&columns[g, rows[0, c], co], step * cout_g,
                              &grad_weight[g, co, c * taps], cin_g * taps, taps,
                              min(OUT_BLOCK, cout_g - co), 1)


def _check_row_of(row_of, rows):
    """``(row_of, step)``: ``row_of`` as :func:`transposed_to_weight` needs it (2-d intp, at
    least one tap, values in ``[0, rows)``) and the number of rows between a channel's taps,
    the same for every channel (else ValueError)."""
    if not isinstance(row_of, np.ndarray) or row_of.dtype != np.intp or row_of.ndim != 2 \
            or row_of.shape[0] < 1 or not row_of.flags.c_contiguous:
        raise TypeError(f"row_of must be a 2-d C-contiguous numpy.ndarray of dtype intp with "
                        f"at least one row, got {row_of!r:.80}")
    if row_of.size and (row_of.min() < 0 or row_of.max() >= rows):
        raise ValueError(f"row_of must hold rows in [0, {rows}), got values in "
                         f"[{row_of.min()}, {row_of.max()}]")
    step = row_of[1, 0] - row_of[0, 0] if row_of.shape[0] > 1 else 0
    apart = np.arange(row_of.shape[0], dtype=np.intp)[:, None] * step
    if not np.array_equal(row_of - row_of[0], np.broadcast_to(apart, row_of.shape)):
        raise ValueError("row_of's taps must be a constant number of rows apart for every "
                         "channel (transposed_rows' layout)")
    return row_of, int(step)


def conv_weight_grad_packed(x, grad_y, grad_weight, row_offset, tap_offset, groups=1,
                            accumulate=False, threads=1, kernel=None, transposed=False):
    """``grad_weight (+)= sum over positions of grad_y x-gathered`` per group, on the engine.

    Parameters
    ----------
    x : numpy.ndarray
        The channels-last padded input, ``(..., c_in)``, C-contiguous float32 or float64;
        element ``row_offset[k] + tap_offset[t] + c`` is channel ``c`` of the input that tap
        ``t`` of output position ``k`` reads.
    grad_y : numpy.ndarray
        ``(positions, c_out)``: the output gradient, channels-last, one row per position.
    grad_weight : numpy.ndarray
        ``(c_out, taps * c_in // groups)``, writable: column ``t * (c_in // groups) + c``
        is tap ``t`` of channel ``c`` of the group; with ``transposed``, ``(groups, rows,
        c_out // groups)`` with ``rows, row_of = transposed_rows(...)``: row ``row_of[t, c]``
        of group ``g`` holds tap ``t`` of channel ``c`` (the other rows: any values).
        Overwritten, or added to when ``accumulate``.
    row_offset : numpy.ndarray
        ``(positions,)`` intp, >= 0: where each position's channels start in ``x``.
    tap_offset : numpy.ndarray
        ``(taps,)`` intp, >= 0: each tap's offset from the position.
    groups : int
        Divides ``c_in`` and ``c_out``.
    accumulate : bool
        Add to ``grad_weight`` instead of overwriting it.
    threads : int
        Threads to use (>= 1); the result does not depend on it.
    kernel : {None, 'portable', 'avx2', 'avx512'}
        Force a kernel (for tests).
    transposed : bool
        Compute the transposed form (``x`` read in place; :func:`transposed_rows` must not
        be None).

    Returns
    -------
    numpy.ndarray
        ``grad_weight``.
    """
    if isinstance(x, np.ndarray) and x.ndim == 0:
        raise ValueError("x must have at least 1 dimension (its last: the channels), got a 0-d "
                         "array")
    _check_matrix(x, "x", ndim=x.ndim if isinstance(x, np.ndarray) else 1)
    _check_matrix(grad_y, "grad_y")
    transposed = _check_flag(transposed, "transposed")
    _check_matrix(grad_weight, "grad_weight", ndim=3 if transposed else 2)
    _check_same_dtype(x.dtype, grad_y=grad_y, grad_weight=grad_weight)
    if not grad_weight.flags.writeable:
        raise ValueError("grad_weight must be writable")
    row_offset = _check_offsets(row_offset, "row_offset")
    tap_offset = _check_offsets(tap_offset, "tap_offset")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    accumulate = _check_flag(accumulate, "accumulate")
    threads = _check_threads(threads)
    cdef int isa = _isa_of(kernel, "kernel")
    c_in = x.shape[x.ndim - 1]
    positions, c_out = grad_y.shape
    taps = tap_offset.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide x's {c_in} and grad_y's {c_out} "
                         f"channels")
    cin_g, cout_g = c_in // groups, c_out // groups
    expected = (c_out, taps * cin_g)
    if transposed:
        if taps == 0:
            raise ValueError("transposed=True needs at least one tap (tap_offset is empty)")
        layout = transposed_rows(c_in, c_out, taps, groups, x.dtype, kernel)
        if layout is None:
            raise ValueError(f"transposed=True needs at least as many channels per group as "
                             f"the kernel's register tile has rows, got {cin_g} "
                             f"(transposed_rows is None)")
        expected = (groups, layout[0], cout_g)
    if grad_weight.shape != expected:
        raise ValueError(f"grad_weight must have shape {expected}, got {grad_weight.shape}")
    if row_offset.shape[0] != positions:
        raise ValueError(f"row_offset must have {positions} values (grad_y's rows), "
                         f"got {row_offset.shape[0]}")
    if any(np.shares_memory(grad_weight, other)
           for other in (x, grad_y, row_offset, tap_offset)):
        raise ValueError("grad_weight must not overlap x, grad_y, row_offset or tap_offset")
    if grad_weight.size == 0:
        return grad_weight
    if positions and taps and c_in:
        for name, offsets in (("row_offset", row_offset), ("tap_offset", tap_offset)):
            if offsets.min() < 0:
                raise ValueError(f"{name} must be >= 0, got {int(offsets.min())}")
        last = int(row_offset.max()) + int(tap_offset.max()) + c_in
        if last > x.size:   # (the transposed form reads the same elements)
            raise ValueError(f"row_offset and tap_offset read x up to element {last - 1}, "
                             f"but x has {x.size} elements")
    if transposed:
        _run_transposed(x, grad_y, grad_weight, row_offset, tap_offset, groups, accumulate,
                        threads, isa)
    else:
        _run_weight_grad(x, grad_y, grad_weight, row_offset, tap_offset, groups, accumulate,
                         threads, isa)
    return grad_weight


cdef fd_rows_src _rows_source(row_offset, tap_offset, Py_ssize_t width):
    """The gathered rows of ``x`` (fd_rows_src) over validated offset arrays."""
    cdef fd_rows_src src
    src.row_offset = <const Py_ssize_t*> <uintptr_t> row_offset.ctypes.data
    src.tap_offset = <const Py_ssize_t*> <uintptr_t> tap_offset.ctypes.data
    src.width = width
    return src


cdef _run_transposed(x, grad_y, grad_weight, row_offset, tap_offset, Py_ssize_t groups,
                     bint accumulate, int threads, int isa):
    """gw[g]^T (+)= X^T gy[g] per group: A read in place from x (fd_gemm_job_set_a_rows),
    B = the group's columns of grad_y, C = grad_weight[g] (rows x cout_g)."""
    cdef bint is_double = x.dtype == np.float64
    cdef size_t elem = 8 if is_double else 4
    cdef Py_ssize_t c_in = x.shape[x.ndim - 1], positions = grad_y.shape[0]
    cdef Py_ssize_t c_out = grad_y.shape[1], taps = tap_offset.shape[0]
    cdef Py_ssize_t cin_g = c_in // groups, cout_g = c_out // groups
    cdef fd_plan p = fd_make_plan_a_rows(isa, is_double, cin_g, taps, cout_g, positions,
                                         threads)
    cdef fd_rows_src src
    cdef fd_gemm_job_f jf
    cdef fd_gemm_job_d jd
    cdef void* job = <void*> &jd if is_double else <void*> &jf
    cdef char* work = NULL
    cdef size_t work_stride
    cdef char* px = <char*> <uintptr_t> x.ctypes.data
    cdef char* pgy = <char*> <uintptr_t> grad_y.ctypes.data
    cdef char* pgw = <char*> <uintptr_t> grad_weight.ctypes.data
    cdef Py_ssize_t g
    src = _rows_source(row_offset, tap_offset, cin_g)
    work_block = take_work(fd_workspace_bytes(&p, elem, 0), threads, &work, &work_stride)
    try:
        for g in range(groups):
            fd_gemm_job_init(is_double, job, &p, NULL, NULL, 0, False, pgy + g * cout_g * elem,
                             c_out, False, pgw + g * p.m * cout_g * elem, cout_g, accumulate,
                             NULL)
            fd_gemm_job_set_a_rows(is_double, job, &src, px + g * cin_g * elem)
            with nogil:
                run_items(job, is_double, False, fd_plan_items(&p), work, work_stride, threads)
    finally:
        give_scratch(work_block)


cdef _run_weight_grad(x, grad_y, grad_weight, row_offset, tap_offset, Py_ssize_t groups,
                      bint accumulate, int threads, int isa):
    cdef bint is_double = x.dtype == np.float64
    cdef size_t elem = 8 if is_double else 4
    cdef Py_ssize_t c_in = x.shape[x.ndim - 1], positions = grad_y.shape[0]
    cdef Py_ssize_t c_out = grad_y.shape[1], taps = tap_offset.shape[0]
    cdef Py_ssize_t cin_g = c_in // groups, cout_g = c_out // groups, n = taps * cin_g
    cdef fd_plan p = fd_make_plan(isa, is_double, cout_g, n, positions, threads)
    cdef fd_rows_src src
    cdef fd_gemm_job_f jf
    cdef fd_gemm_job_d jd
    cdef void* job = <void*> &jd if is_double else <void*> &jf
    cdef bint prepack = fd_prepack_a(&p)
    cdef char* apack = NULL
    cdef char* work = NULL
    cdef size_t work_stride
    cdef char* px = <char*> <uintptr_t> x.ctypes.data
    cdef char* pgy = <char*> <uintptr_t> grad_y.ctypes.data
    cdef char* pgw = <char*> <uintptr_t> grad_weight.ctypes.data
    cdef Py_ssize_t g
    src = _rows_source(row_offset, tap_offset, cin_g)
    apack_block = (take_scratch(max(fd_apack_elems(&p), 1) * elem, &apack, "packed grad_y")
                   if prepack else None)
    try:
        work_block = take_work(fd_workspace_bytes(&p, elem, 0), threads, &work, &work_stride)
        for g in range(groups):
            fd_gemm_job_init(is_double, job, &p, apack, pgy + g * cout_g * elem, c_out, True,
                             NULL, 0, False, pgw + g * cout_g * n * elem, n, accumulate, NULL)
            fd_gemm_job_set_rows(is_double, job, &src, px + g * cin_g * elem)
            with nogil:
                if prepack:
                    pack_a(pgy + g * cout_g * elem, c_out, True, &p, is_double, apack, threads)
                run_items(job, is_double, False, fd_plan_items(&p), work, work_stride, threads)
        give_scratch(work_block)
    finally:
        give_scratch(apack_block)


fd_transpose_simd()   # the CPU check runs once here, not first inside a parallel region
