# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""Convolutions on the packed GEMM engine (``gemm/fd_gemm.h``; kernels, validation and
execution helpers shared with :mod:`fastdeconv._ext._packed_gemm`):

* :func:`conv_forward_packed` -- a forward convolution whose GEMM reads its B operand straight
  from the input through the geometry (implicit im2col: no column matrix), the weight packed
  once per call;
* :func:`conv_transpose_phases_packed` -- a transposed convolution as its stride phases, each
  a stride-1 forward convolution whose GEMM stores straight into the interleaved output.

Threads never change a bit of the result (see :mod:`fastdeconv._ext._packed_gemm`).
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

import itertools
from math import gcd, prod

import numpy as np

from ._packed_gemm cimport *
from ._packed_gemm import (_check_bias, _check_matrix, _check_same_dtype, _check_threads,
                           _isa_of)


def _check_per_dim(value, ndim, name, minimum):
    if isinstance(value, (int, np.integer)):
        values = (value,) * ndim
    elif isinstance(value, (tuple, list, np.ndarray)):
        values = tuple(value)
    else:
        values = ()
    if len(values) != ndim or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or {ndim} ints, got {value!r}")
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def _padded_input(x, pad, extent):
    """x with pad[d] zeros before dimension d (cropped where negative) and spatial size extent."""
    spatial = x.shape[2:]
    if all(p == 0 for p in pad) and all(e <= n for e, n in zip(extent, spatial)):
        return x
    xp = np.zeros(x.shape[:2] + tuple(extent), dtype=x.dtype)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for n, p, e in zip(spatial, pad, extent):
        lo_src, lo_dst = max(0, -p), max(0, p)
        length = max(0, min(n - lo_src, e - lo_dst))
        src.append(slice(lo_src, lo_src + length))
        dst.append(slice(lo_dst, lo_dst + length))
    xp[tuple(dst)] = x[tuple(src)]
    return xp


def _check_conv_arrays(x, weight, y, groups):
    """Validate the arrays and groups of a convolution entry: C-contiguous, one float dtype,
    the same rank (at most FD_MAX_NDIM spatial dimensions), y writable; ``(ndim, groups)``."""
    _check_matrix(x, "x", ndim=x.ndim if isinstance(x, np.ndarray) and x.ndim >= 3 else 3)
    ndim = x.ndim - 2
    if ndim > FD_MAX_NDIM:
        raise ValueError(f"x has {ndim} spatial dimensions; at most {FD_MAX_NDIM} are supported")
    _check_matrix(weight, "weight", ndim=x.ndim)
    _check_matrix(y, "y", ndim=x.ndim)
    _check_same_dtype(x.dtype, weight=weight, y=y)
    if not y.flags.writeable:
        raise ValueError("y must be writable")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    return ndim, int(groups)


def conv_forward_packed(x, weight, y, stride=1, dilation=1, padding=0, groups=1, bias=None,
                        threads=1, kernel=None):
    """``y = conv(x, weight) (+ bias)`` through the packed engine, without a column matrix.

    The geometry is that of the ``Geometry`` struct of ``fastdeconv/_ext/_index.pxd``: the
    spatial sizes come from the arrays, ``padding`` is the zero padding before each dimension
    (``pad_before``; what the output size implies after it is zero too). The input is padded
    explicitly once when any padding is read; the B operand of each group's GEMM is then packed
    straight from it, its
    columns the positions of one sample or, for small outputs, of several samples one after the
    other (a 1x1 stride-1 unpadded convolution reads the rows of x in place).

    Parameters
    ----------
    x : numpy.ndarray
        ``(batch, c_in, *input_size)``, C-contiguous float32 or float64.
    weight : numpy.ndarray
        ``(c_out, c_in // groups, *kernel_size)``, same dtype.
    y : numpy.ndarray
        ``(batch, c_out, *output_size)``, same dtype, writable; overwritten.
    stride, dilation : int or tuple of int
        Per spatial dimension, >= 1.
    padding : int or tuple of int
        Zero padding before each spatial dimension (negative crops).
    groups : int
        Divides c_in and c_out.
    bias : numpy.ndarray, optional
        ``(c_out,)``.
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
    batch, c_in = x.shape[:2]
    c_out, cin_g = weight.shape[:2]
    if c_in % groups or c_out % groups or cin_g * groups != c_in:
        raise ValueError(f"weight has shape {weight.shape}: with groups={groups} and x's "
                         f"{c_in} channels it must be ({c_out}, {c_in // groups}, ...) and "
                         f"groups must divide c_out")
    if y.shape[:2] != (batch, c_out):
        raise ValueError(f"y must have shape ({batch}, {c_out}, ...), got {y.shape}")
    kernel_size = weight.shape[2:]
    if any(k < 1 for k in kernel_size):
        raise ValueError(f"weight must have kernel sizes >= 1, got shape {weight.shape}")
    stride = _check_per_dim(stride, ndim, "stride", 1)
    dilation = _check_per_dim(dilation, ndim, "dilation", 1)
    padding = _check_per_dim(padding, ndim, "padding", None)
    threads = _check_threads(threads)
    bias = _check_bias(bias, c_out, x.dtype)
    if np.shares_memory(y, x) or np.shares_memory(y, weight) or (
            bias is not None and np.shares_memory(y, bias)):
        raise ValueError("y must not overlap x, weight or bias")
    cdef int isa = _isa_of(kernel, "kernel")
    out_size = y.shape[2:]
    if y.size == 0:
        return y
    extent = tuple((o - 1) * s + (k - 1) * d + 1
                   for o, s, k, d in zip(out_size, stride, kernel_size, dilation))
    pointwise = (all(k == 1 for k in kernel_size) and all(s == 1 for s in stride)
                 and all(p == 0 for p in padding) and tuple(out_size) == tuple(x.shape[2:]))
    xp = x if pointwise else _padded_input(x, padding, extent)
    _run_conv(xp, weight, y, out_size, stride, dilation, groups, bias, threads, isa, pointwise)
    return y


def conv_transpose_phases_packed(x, weight, y, stride, phases, groups=1, threads=1,
                                 kernel=None):
    """``y = conv_transpose(x, weight)`` (dilation 1) as its stride phases, each a stride-1
    forward convolution whose GEMM stores straight into every ``stride``-th position of ``y``.

    Phase ``p`` (an entry of ``ConvGeometry.transpose_phases``) computes, per dimension, the
    output positions ``first + stride * o`` (``o = 0, 1, ...`` while inside ``y``):

        y[n, :, first + stride * o] = sum over the channels c of x's group and the taps
                                      t of the sub-kernel of weight[c, :, taps[t]]
                                      * x[n, c, o + t - sub_pad]

    (zero outside x). The input is padded once for every phase (the union of their reads);
    each phase's GEMM operand A is gathered once per call straight from ``weight`` into its
    micro-panels, and its B operand packed straight from the padded copy. Positions of ``y``
    that no phase writes are left as they are (the caller zeroes them).

    Parameters
    ----------
    x : numpy.ndarray
        ``(batch, c_x, *input_size)``, C-contiguous float32 or float64.
    weight : numpy.ndarray
        The transposed convolution's ``(c_x, c_y // groups, *kernel_size)``, same dtype,
        C-contiguous.
    y : numpy.ndarray
        ``(batch, c_y, *output_size)``, same dtype, C-contiguous and writable.
    stride : int or tuple of int
        The transposed convolution's stride (the step between one phase's outputs), >= 1.
    phases : sequence of dict
        Each with ``taps`` (per dimension, the kernel taps of the sub-kernel in correlation
        order, each in ``[0, kernel_size)``), ``sub_pad`` (zero padding before each dimension
        of the stride-1 convolution; negative crops) and ``first`` (its first output position
        per dimension, in ``[0, stride)``; no two phases share one).
    groups : int
        Divides c_x and c_y.
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
    batch, c_x = x.shape[:2]
    c_y = y.shape[1]
    cout_g = weight.shape[1]
    if y.shape[0] != batch or c_x % groups or weight.shape[0] != c_x or cout_g * groups != c_y:
        raise ValueError(f"x {x.shape}, weight {weight.shape} and y {y.shape} do not match "
                         f"with groups={groups}: weight must be ({c_x}, y's channels // "
                         f"{groups}, ...) and y have x's {batch} samples")
    kernel_size = weight.shape[2:]
    stride = _check_per_dim(stride, ndim, "stride", 1)
    threads = _check_threads(threads)
    out_size = y.shape[2:]
    checked, seen = [], set()
    for index, phase in enumerate(phases):
        try:
            taps, pad, first = phase["taps"], phase["sub_pad"], phase["first"]
        except (TypeError, KeyError):
            raise ValueError(f"phases[{index}] must be a dict with taps, sub_pad and first, "
                             f"got {phase!r}") from None
        pad = _check_per_dim(pad, ndim, f"phases[{index}]['sub_pad']", None)
        first = _check_per_dim(first, ndim, f"phases[{index}]['first']", 0)
        if (not isinstance(taps, (tuple, list)) or len(taps) != ndim
                or not all(isinstance(t, (tuple, list)) and len(t) > 0 and all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < k
                    for v in t) for t, k in zip(taps, kernel_size))):
            raise ValueError(f"phases[{index}]['taps'] must hold, per dimension, a non-empty "
                             f"tuple of taps in [0, {kernel_size}), got {taps!r}")
        if any(f >= s for f, s in zip(first, stride)) or first in seen:
            raise ValueError(f"phases[{index}]['first'] must be below the stride {stride} and "
                             f"differ from every other phase's, got {first}")
        seen.add(first)
        sub_out = tuple(max(0, -(-(n - f) // s)) for n, f, s in zip(out_size, first, stride))
        taps = tuple(tuple(int(v) for v in t) for t in taps)
        checked.append((taps, pad, first, sub_out))
    if np.shares_memory(y, x) or np.shares_memory(y, weight):
        raise ValueError("y must not overlap x or weight")
    cdef int isa = _isa_of(kernel, "kernel")
    checked = [p for p in checked if 0 not in p[3]]
    if y.size == 0 or x.shape[1] == 0 or not checked:
        return y
    # one padded copy for every phase: from the most padded phase's start to the furthest read
    # (the same union as fastdeconv._algorithms.packed_phases._padded_per_sample, which bounds
    # this copy's memory in the plan)
    low = tuple(max(p[1][d] for p in checked) for d in range(ndim))
    extent = tuple(max(low[d] - p[1][d] + p[3][d] + len(p[0][d]) - 1 for p in checked)
                   for d in range(ndim))
    xp = _padded_input(x, low, extent)
    in_strides = np.cumprod((xp.shape[2:] + (1,))[::-1])[::-1][1:]
    k_strides = np.cumprod((kernel_size + (1,))[::-1])[::-1][1:]
    k_numel = prod(kernel_size)
    cin_g = c_x // groups
    jobs, col_offsets = [], []
    for taps, pad, first, sub_out in checked:
        base = sum((lo - p) * int(st) for lo, p, st in zip(low, pad, in_strides))
        # A[o, c * K_p + t] = weight[g * cin_g + c, o, taps[t]]
        tap_flat = np.array([sum(int(i) * int(st) for i, st in zip(tap, k_strides))
                             for tap in itertools.product(*taps)], dtype=np.intp)
        col_offset = (np.arange(cin_g, dtype=np.intp)[:, None] * (cout_g * k_numel)
                      + tap_flat[None, :]).reshape(-1)
        gather = (tuple(len(t) for t in taps), cout_g)
        jobs.append(_conv_job(xp, weight, y, sub_out, (1,) * ndim, (1,) * ndim, groups, None,
                              threads, isa, False, base, first, stride, gather))
        col_offsets.append(col_offset)
    _pack_phases(jobs, col_offsets, weight, groups, k_numel, cin_g * cout_g * k_numel, threads)
    _run_jobs_interleaved(jobs, threads)
    return y


cdef class _ConvJob:
    """One convolution job of the engine: its source, its packed A (freed with the object) and
    the arrays its pointers read (kept alive here)."""
    cdef fd_conv_src src
    cdef fd_conv_job_f jf
    cdef fd_conv_job_d jd
    cdef bint is_double
    cdef void* raw
    cdef Py_ssize_t items
    cdef size_t work_bytes
    cdef object keep
    cdef char* apack
    cdef Py_ssize_t apack_group, k, kc, m
    cdef int mr

    def __dealloc__(self):
        free(self.raw)

    cdef void* job(self) noexcept:
        return <void*> &self.jd if self.is_double else <void*> &self.jf


cdef _ConvJob _conv_job(xp, weight, y, out_size, stride, dilation, Py_ssize_t groups, bias,
                        int threads, int isa, bint pointwise, Py_ssize_t base=0,
                        place_first=None, place_step=None, gather=None):
    """The engine's convolution of the padded xp into y, out_size outputs per dimension; every
    tap reads base elements further on. With place_first and place_step, output o goes to
    y[..., place_first + place_step * o] (a placed source: no bias), else y is (batch, c_out,
    *out_size). The GEMM's A is weight (c_out, c_in // groups, *kernel_size), packed here (on
    up to ``threads`` threads), or, with gather = (kernel_size, cout_g), a stride phase's A that
    the caller packs into the job's buffer (_pack_phases)."""
    cdef _ConvJob cj = _ConvJob()
    cdef bint is_double = xp.dtype == np.float64
    cdef size_t elem = 8 if is_double else 4
    kernel_size = weight.shape[2:] if gather is None else gather[0]
    cdef Py_ssize_t ndim = xp.ndim - 2, d, t, taps = prod(kernel_size)
    cdef Py_ssize_t cout_g = weight.shape[0] // groups if gather is None else gather[1]
    cdef Py_ssize_t cin_g = xp.shape[1] // groups
    cdef Py_ssize_t group_stride = cout_g * cin_g * taps
    cdef Py_ssize_t P = prod(xp.shape[2:]), L = prod(out_size), K = cin_g * taps, g
    cdef Py_ssize_t Y = prod(y.shape[2:])
    cdef Py_ssize_t per_gemm = fd_conv_samples_per_gemm(xp.shape[0], L, pointwise)
    cdef fd_plan p = fd_make_plan(isa, is_double, cout_g, per_gemm * L, K, threads)
    if place_first is not None:
        if bias is not None:
            raise ValueError("a placed convolution source adds no bias")
        fd_plan_cap_rows(&p, FD_PLACED_MAX_ROWS)
    cdef void* job = <void*> &cj.jd if is_double else <void*> &cj.jf
    cdef Py_ssize_t apack_group = fd_apack_elems(&p)
    cdef char* apack = <char*> malloc_aligned(max(apack_group * groups, 1) * elem, &cj.raw)
    cdef const char* pw = <const char*> <uintptr_t> weight.ctypes.data
    cdef const void* px = <const void*> <uintptr_t> xp.ctypes.data
    cdef void* py = <void*> <uintptr_t> y.ctypes.data
    cdef const void* pbias = NULL
    cdef Py_ssize_t[::1] tap_offset = np.zeros(max(taps, 1), dtype=np.intp)
    cj.is_double = is_double
    cj.keep = (xp, weight, y, bias, tap_offset)
    if bias is not None:
        pbias = <const void*> <uintptr_t> bias.ctypes.data
    if apack == NULL:
        raise MemoryError("packed convolution: cannot allocate the packed weight")
    # tap t (row-major over kernel_size) reads the padded input at flat offset tap_offset[t]
    in_strides = np.cumprod((xp.shape[2:] + (1,))[::-1])[::-1][1:]
    for t, tap in enumerate(np.ndindex(*kernel_size)):
        tap_offset[t] = base + sum(int(i) * dl * st
                                   for i, dl, st in zip(tap, dilation, in_strides))
    cj.src.ndim = <int> ndim
    cj.src.placed = place_first is not None
    for d in range(ndim):
        cj.src.in_size[d] = xp.shape[2 + d]
        cj.src.out_size[d] = out_size[d]
        cj.src.stride[d] = stride[d]
        cj.src.place_size[d] = y.shape[2 + d]
        cj.src.place_first[d] = place_first[d] if cj.src.placed else 0
        cj.src.place_step[d] = place_step[d] if cj.src.placed else 1
    cj.src.taps, cj.src.stride_last, cj.src.channel_stride = taps, stride[ndim - 1], P
    cj.src.positions, cj.src.sample_stride = L, xp.shape[1] * P
    cj.src.place_sample_stride = y.shape[1] * Y
    cj.src.tap_offset = &tap_offset[0]
    fd_conv_job_init(is_double, job, &p, apack, apack_group, pointwise, px, P, &cj.src, py,
                     pbias, xp.shape[0], per_gemm, groups, xp.shape[1] * P, cin_g * P,
                     y.shape[1] * Y, cout_g * Y)
    if cj.src.placed:
        fd_conv_job_set_ldc(is_double, job, Y)
    cj.items = fd_conv_items_d(&cj.jd) if is_double else fd_conv_items_f(&cj.jf)
    cj.work_bytes = fd_workspace_bytes(&p, elem, place_first is not None)
    cj.apack, cj.apack_group, cj.k, cj.kc, cj.m, cj.mr = apack, apack_group, K, p.kc, p.m, p.mr
    if gather is not None:
        return cj
    with nogil:
        for g in range(groups):
            pack_a(pw + g * group_stride * elem, K, False, &p, is_double,
                   apack + g * apack_group * elem, threads)
    return cj


cdef _pack_phases(list jobs, list col_offsets, weight, Py_ssize_t groups, Py_ssize_t row_stride,
                  Py_ssize_t group_stride, int threads):
    """Pack the A of every phase job (made without ``pack``), group by group, in blocks of
    rows that every phase's MR divides: each block of the weight's rows is read from memory
    once for all phases (fd_pack_a_phases); the blocks in parallel."""
    cdef Py_ssize_t count = len(jobs), q, g, block, blocks, r0, r1, block_index
    cdef Py_ssize_t most_k = max((<_ConvJob> j).k for j in jobs)
    cdef _ConvJob first = jobs[0]
    cdef bint is_double = first.is_double
    cdef size_t elem = 8 if is_double else 4
    cdef Py_ssize_t m = first.m, kc = first.kc
    cdef Py_ssize_t[::1] k_of = np.array([(<_ConvJob> j).k for j in jobs], dtype=np.intp)
    cdef int[::1] mr_of = np.array([(<_ConvJob> j).mr for j in jobs], dtype=np.intc)
    cdef size_t[::1] offsets_of = np.array([c.ctypes.data for c in col_offsets], dtype=np.uintp)
    cdef size_t[::1] apack_of = np.empty(count, dtype=np.uintp)
    cdef const char* pw = <const char*> <uintptr_t> weight.ctypes.data
    block = 1
    for q in range(count):
        block = block * mr_of[q] // gcd(block, mr_of[q])
    blocks = (m + block - 1) // block
    if blocks < 2 or m * most_k < 65536:
        threads = 1
    for g in range(groups):
        for q in range(count):
            apack_of[q] = <size_t> ((<_ConvJob> jobs[q]).apack
                                    + g * (<_ConvJob> jobs[q]).apack_group * elem)
        for block_index in prange(blocks, nogil=True, num_threads=threads, schedule="static"):
            r0 = block_index * block
            r1 = r0 + block if r0 + block < m else m
            if is_double:
                fd_pack_a_phases_d(m, <const double*> (pw + g * group_stride * elem),
                                   row_stride, count, &k_of[0],
                                   <const Py_ssize_t* const*> &offsets_of[0], &mr_of[0], kc,
                                   <double* const*> &apack_of[0], r0, r1)
            else:
                fd_pack_a_phases_f(m, <const float*> (pw + g * group_stride * elem),
                                   row_stride, count, &k_of[0],
                                   <const Py_ssize_t* const*> &offsets_of[0], &mr_of[0], kc,
                                   <float* const*> &apack_of[0], r0, r1)


cdef _run_conv(xp, weight, y, out_size, stride, dilation, Py_ssize_t groups, bias, int threads,
               int isa, bint pointwise):
    """One forward convolution of the padded xp into y (see _conv_job)."""
    cdef _ConvJob cj = _conv_job(xp, weight, y, out_size, stride, dilation, groups, bias,
                                 threads, isa, pointwise)
    cdef void* job = cj.job()
    cdef int failed
    with nogil:
        failed = run_items(job, cj.is_double, True, cj.items, cj.work_bytes, threads)
    if failed:
        raise MemoryError("conv_forward_packed: cannot allocate a thread's packing buffer")


cdef _run_jobs_interleaved(list jobs, int threads):
    """Run the items of several convolution jobs (stride phases writing one output) in one
    parallel loop, item i of every job before item i + 1 of any: the phases of one region of
    the output are computed together, while its lines are in cache."""
    cdef Py_ssize_t count = len(jobs), most = max((<_ConvJob> j).items for j in jobs)
    cdef Py_ssize_t i, q, total = sum((<_ConvJob> j).items for j in jobs)
    cdef Py_ssize_t[::1] job_of = np.empty(max(total, 1), dtype=np.intp)
    cdef Py_ssize_t[::1] item_of = np.empty(max(total, 1), dtype=np.intp)
    cdef size_t[::1] pointers = np.empty(count, dtype=np.uintp)
    cdef size_t work_bytes = max((<_ConvJob> j).work_bytes for j in jobs)
    cdef bint is_double = (<_ConvJob> jobs[0]).is_double
    cdef void* raw = NULL
    cdef char* work = NULL
    cdef int failed = 0
    cdef Py_ssize_t n = 0
    for q in range(count):
        pointers[q] = <size_t> (<_ConvJob> jobs[q]).job()
    for i in range(most):
        for q in range(count):
            if i < (<_ConvJob> jobs[q]).items:
                job_of[n], item_of[n] = q, i
                n += 1
    if total < 2:
        threads = 1
    with nogil, parallel(num_threads=threads):
        raw = malloc(work_bytes)
        work = aligned(raw)
        for i in prange(total, schedule="dynamic"):
            if raw == NULL:
                failed += 1
            elif is_double:
                fd_conv_item_d(<fd_conv_job_d*> pointers[job_of[i]], item_of[i], <double*> work)
            else:
                fd_conv_item_f(<fd_conv_job_f*> pointers[job_of[i]], item_of[i], <float*> work)
        free(raw)
    if failed:
        raise MemoryError("conv_transpose_phases_packed: cannot allocate a thread's buffer")
