# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""Convolutions on the packed GEMM engine (``gemm/fd_gemm.h``; kernels, validation and
execution helpers shared with :mod:`fastdeconv._ext._packed_gemm`):

* :func:`conv_forward_packed` -- a forward convolution whose GEMM reads its B operand straight
  from the input through the geometry (implicit im2col: no column matrix), the weight packed
  once per call;
* :func:`conv_transpose_phases_packed` -- a transposed convolution as its stride phases, each
  a stride-1 forward convolution whose GEMM stores straight into the interleaved output.

Each runs in two steps that callers repeating a shape keep apart: the *tables*
(:func:`forward_tables`, :func:`phases_tables`: validated shapes and everything derived from
them alone -- GEMM plans, tap offsets, the phases' gather offsets, the order of the work
items), made once, and a *run* on arrays of those shapes (:func:`conv_forward_run`,
:func:`conv_transpose_phases_run`). A run takes the weight itself, packed into the GEMM's A
micro-panels on every run, or a :class:`~fastdeconv._ext._packed_gemm.PackedWeight` packed once for those tables
(:func:`pack_forward_weight`, :func:`pack_phases_weight`): the same values in the same panels,
so the same bits.

Threads never change a bit of the result (see :mod:`fastdeconv._ext._packed_gemm`).
"""
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uintptr_t

import itertools
from math import gcd, prod

import numpy as np

from ._packed_gemm cimport *
from ._packed_tables cimport *
from ._packed_gemm import (_check_bias, _check_conv_arrays, _check_per_dim, _check_shapes,
                           _check_threads, _isa_of, give_scratch)
from ._packed_shapes import (apack_destinations, checked_phases, live_phases, one_tap_phases,
                             pad_plan, padded)


# ---------------------------------------------------------------------------- the tables
cdef class ForwardTables(_Tables):
    """The tables of a forward convolution (:func:`forward_tables`)."""
    cdef ConvTables conv


cdef class PhasesTables(_Tables):
    """The tables of a transposed convolution's stride phases (:func:`phases_tables`): one
    ConvTables per live phase, the gather offsets of their A, the order of their items."""
    cdef list convs, col_offsets, dst_offsets
    cdef Py_ssize_t[::1] k_of, taps_of, job_of, item_of, partner_of
    cdef int[::1] mr_of
    cdef size_t[::1] offsets_of, dsts_of
    cdef Py_ssize_t m, kc, row_stride, group_stride, channels, blocks, block, total
    cdef int pack_threads, run_threads
    cdef size_t work_bytes, odd_block_offset
    cdef readonly Py_ssize_t pairs      # phase pairs stored interleaved (fd_conv_item_pair)


# ------------------------------------------------------------------------ forward entries
def forward_tables(x_shape, weight_shape, y_shape, dtype, stride=1, dilation=1, padding=0,
                   groups=1, threads=1, kernel=None):
    """The tables of :func:`conv_forward_run` for arrays of these shapes and dtype (the
    parameters as for :func:`conv_forward_packed`; shapes as tuples of ints)."""
    dtype, groups = _check_shapes(dtype, groups, x=x_shape, weight=weight_shape, y=y_shape)
    return _forward_tables(x_shape, weight_shape, y_shape, dtype, stride, dilation, padding,
                           groups, threads, kernel)


def _forward_tables(x_shape, weight_shape, y_shape, dtype, stride, dilation, padding, groups,
                    threads, kernel):
    ndim = len(x_shape) - 2
    batch, c_in = x_shape[:2]
    c_out, cin_g = weight_shape[:2]
    if c_in % groups or c_out % groups or cin_g * groups != c_in:
        raise ValueError(f"weight has shape {weight_shape}: with groups={groups} and x's "
                         f"{c_in} channels it must be ({c_out}, {c_in // groups}, ...) and "
                         f"groups must divide c_out")
    if y_shape[:2] != (batch, c_out):
        raise ValueError(f"y must have shape ({batch}, {c_out}, ...), got {y_shape}")
    kernel_size = tuple(int(k) for k in weight_shape[2:])
    if any(k < 1 for k in kernel_size):
        raise ValueError(f"weight must have kernel sizes >= 1, got shape {weight_shape}")
    stride = _check_per_dim(stride, ndim, "stride", 1)
    dilation = _check_per_dim(dilation, ndim, "dilation", 1)
    padding = _check_per_dim(padding, ndim, "padding", None)
    cdef ForwardTables tables = ForwardTables.__new__(ForwardTables)
    tables.threads = _check_threads(threads)
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double = dtype == np.float64
    tables.x_shape, tables.weight_shape, tables.y_shape = x_shape, weight_shape, y_shape
    tables.dtype, tables.groups, tables.empty = dtype, groups, prod(y_shape) == 0
    out_size = tuple(y_shape[2:])
    extent = tuple((o - 1) * s + (k - 1) * d + 1
                   for o, s, k, d in zip(out_size, stride, kernel_size, dilation))
    pointwise = (all(k == 1 for k in kernel_size) and all(s == 1 for s in stride)
                 and all(p == 0 for p in padding) and out_size == tuple(x_shape[2:]))
    tables.pad = None if pointwise else pad_plan(x_shape[2:], padding, extent)
    xp_shape = tuple(x_shape) if tables.pad is None else tuple(x_shape[:2]) + extent
    if not tables.empty:
        tables.conv = _conv_tables(xp_shape, kernel_size, c_out // groups, tuple(y_shape),
                                   out_size, stride, dilation, groups, tables.threads, isa,
                                   is_double, pointwise)
        tables.packing_key = ("forward", dtype.str, isa, groups, tuple(weight_shape),
                              tables.conv.p.mr, tables.conv.p.kc)
    return tables


def pack_forward_weight(ForwardTables tables not None, weight):
    """``weight`` (the tables' shape and dtype, C-contiguous) packed for ``tables``: a
    :class:`~fastdeconv._ext._packed_gemm.PackedWeight` that :func:`conv_forward_run` takes in its place."""
    check_like(weight, "weight", tables.weight_shape, tables.dtype)
    return _pack_forward(tables, weight)


cdef PackedWeight _pack_forward(ForwardTables tables, weight):
    cdef ConvTables t = tables.conv
    if t is None:
        return new_packed(tables.packing_key, [])
    cdef size_t elem = 8 if t.is_double else 4
    cdef PackedWeight packed = new_packed(tables.packing_key,
                                           [t.apack_group * t.groups * elem])
    cdef const char* pw = <const char*> <uintptr_t> weight.ctypes.data
    cdef Py_ssize_t g
    cdef int threads = tables.threads
    with nogil:
        for g in range(t.groups):
            pack_a(pw + g * t.group_stride * elem, t.k, False, &t.p, t.is_double,
                   packed.data + g * t.apack_group * elem, threads)
    return packed


def conv_forward_run(ForwardTables tables not None, x, weight, y, bias=None):
    """:func:`conv_forward_packed` on arrays of the shapes of ``tables``; ``weight`` is the
    weight array or a :class:`~fastdeconv._ext._packed_gemm.PackedWeight` packed for these tables. Returns ``y``."""
    packed = _check_operands(tables, x, weight, y)
    bias = _check_bias(bias, tables.y_shape[1], tables.dtype)
    if bias is not None and np.shares_memory(y, bias):
        raise ValueError("y must not overlap x, weight or bias")
    if tables.empty:
        return y
    if packed is None:
        packed = _pack_forward(tables, weight)
    cdef ConvTables t = tables.conv
    cdef const void* pbias = NULL
    cdef char* work = NULL
    cdef size_t work_stride
    cdef int threads = tables.threads
    if bias is not None:
        pbias = <const void*> <uintptr_t> bias.ctypes.data
    xp, pad_block = padded(x, tables.pad, threads)
    try:
        work_block = take_work(t.work_bytes, threads, &work, &work_stride)
        cj = _conv_job(t, <const void*> <uintptr_t> xp.ctypes.data,
                       <void*> <uintptr_t> y.ctypes.data, pbias, packed.data)
        _run_conv_items(cj, t, work, work_stride, threads)
        give_scratch(work_block)
    finally:
        give_scratch(pad_block)
    return y


cdef _run_conv_items(_ConvJob cj, ConvTables t, char* work, size_t work_stride, int threads):
    cdef void* job = cj.job()
    with nogil:
        run_items(job, t.is_double, True, t.items, work, work_stride, threads)


def conv_forward_packed(x, weight, y, stride=1, dilation=1, padding=0, groups=1, bias=None,
                        threads=1, kernel=None):
    """``y = conv(x, weight) (+ bias)`` through the packed engine, without a column matrix.

    The geometry is that of the ``Geometry`` struct of ``fastdeconv/_ext/_index.pxd``: the
    spatial sizes come from the arrays, ``padding`` is the zero padding before each dimension
    (``pad_before``; what the output size implies after it is zero too). The input is padded
    explicitly once when any padding is read; the B operand of each group's GEMM is then packed
    straight from it, its
    columns the positions of one sample or, for small outputs, of several samples one after the
    other (a 1x1 stride-1 unpadded convolution reads the rows of x in place). Its tables
    (:func:`forward_tables`) are made on every call; callers repeating a shape keep them.

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
    tables = _forward_tables(x.shape, weight.shape, y.shape, x.dtype, stride, dilation,
                             padding, groups, threads, kernel)
    return conv_forward_run(tables, x, weight, y, bias)


# ------------------------------------------------------------------- stride-phase entries
def phases_tables(x_shape, weight_shape, y_shape, dtype, stride, phases, groups=1, threads=1,
                  kernel=None):
    """The tables of :func:`conv_transpose_phases_run` for arrays of these shapes and dtype
    (the parameters as for :func:`conv_transpose_phases_packed`; shapes as tuples of ints)."""
    dtype, groups = _check_shapes(dtype, groups, x=x_shape, weight=weight_shape, y=y_shape)
    return _phases_tables(x_shape, weight_shape, y_shape, dtype, stride, phases, groups,
                          threads, kernel)


def _phases_tables(x_shape, weight_shape, y_shape, dtype, stride, phases, groups, threads,
                   kernel):
    ndim = len(x_shape) - 2
    batch, c_x = x_shape[:2]
    c_y, cout_g = y_shape[1], weight_shape[1]
    if y_shape[0] != batch or c_x % groups or weight_shape[0] != c_x or cout_g * groups != c_y:
        raise ValueError(f"x {x_shape}, weight {weight_shape} and y {y_shape} do not match "
                         f"with groups={groups}: weight must be ({c_x}, y's channels // "
                         f"{groups}, ...) and y have x's {batch} samples")
    kernel_size = tuple(int(k) for k in weight_shape[2:])
    stride = _check_per_dim(stride, ndim, "stride", 1)
    cdef PhasesTables tables = PhasesTables.__new__(PhasesTables)
    tables.threads = _check_threads(threads)
    checked = checked_phases(phases, ndim, kernel_size, stride, tuple(y_shape[2:]))
    cdef int isa = _isa_of(kernel, "kernel")
    checked = live_phases(checked)
    tables.x_shape, tables.weight_shape, tables.y_shape = x_shape, weight_shape, y_shape
    tables.dtype, tables.groups, tables.convs = dtype, groups, []
    tables.empty = prod(y_shape) == 0 or c_x == 0 or not checked
    if tables.empty:
        return tables
    # one padded copy for every phase: from the most padded phase's start to the furthest read
    # (the same union as fastdeconv._algorithms.packed_phases._padded_per_sample, which bounds
    # this copy's memory in the plan)
    low = tuple(max(p[1][d] for p in checked) for d in range(ndim))
    extent = tuple(max(low[d] - p[1][d] + p[3][d] + len(p[0][d]) - 1 for p in checked)
                   for d in range(ndim))
    tables.pad = pad_plan(x_shape[2:], low, extent)
    xp_shape = tuple(x_shape) if tables.pad is None else tuple(x_shape[:2]) + extent
    in_strides = np.cumprod((xp_shape[2:] + (1,))[::-1])[::-1][1:]
    k_strides = np.cumprod((kernel_size + (1,))[::-1])[::-1][1:]
    k_numel = prod(kernel_size)
    cin_g = c_x // groups
    tables.col_offsets = []
    stacked = one_tap_phases(checked, k_numel)
    if stacked:
        _stack_one_tap_phases(tables, checked, xp_shape, y_shape, low, in_strides, k_strides,
                              k_numel, cin_g, cout_g, stride, groups, isa, dtype)
    for taps, pad, first, sub_out in ([] if stacked else checked):
        base = sum((lo - p) * int(st) for lo, p, st in zip(low, pad, in_strides))
        # A[o, c * K_p + t] = weight[g * cin_g + c, o, taps[t]]
        tap_flat = np.array([sum(int(i) * int(st) for i, st in zip(tap, k_strides))
                             for tap in itertools.product(*taps)], dtype=np.intp)
        tables.col_offsets.append((np.arange(cin_g, dtype=np.intp)[:, None]
                                   * (cout_g * k_numel) + tap_flat[None, :]).reshape(-1))
        tables.convs.append(_conv_tables(
            xp_shape, tuple(len(t) for t in taps), cout_g, tuple(y_shape), sub_out,
            (1,) * ndim, (1,) * ndim, groups, tables.threads, isa, dtype == np.float64, False,
            base, first, stride))
    convs = tables.convs
    # the GEMMs' A: rows of m = cout_g (each phase), or cout_g * k_numel (stacked) rows, row i
    # at i * row_stride in the weight's group
    tables.m = cout_g * k_numel if stacked else cout_g
    tables.row_stride = 1 if stacked else k_numel
    tables.k_of = np.array([(<ConvTables> c).k for c in convs], dtype=np.intp)
    tables.mr_of = np.array([(<ConvTables> c).p.mr for c in convs], dtype=np.intc)
    tables.offsets_of = np.array([c.ctypes.data for c in tables.col_offsets], dtype=np.uintp)
    tables.kc = (<ConvTables> convs[0]).p.kc
    tables.taps_of = np.array([(<ConvTables> c).k // cin_g for c in convs], dtype=np.intp)
    tables.dst_offsets = [apack_destinations((<ConvTables> c).k, tables.m, (<ConvTables> c).p.mr,
                                             (<ConvTables> c).p.kc) for c in convs]
    tables.dsts_of = np.array([d.ctypes.data for d in tables.dst_offsets], dtype=np.uintp)
    tables.group_stride = cin_g * cout_g * k_numel
    tables.channels = cin_g        # every phase's k is cin_g times its taps (col_offsets)
    # the packing: blocks of rows that every phase's MR divides, in parallel when large
    block = 1
    for c in convs:
        block = block * (<ConvTables> c).p.mr // gcd(block, (<ConvTables> c).p.mr)
    tables.block, tables.blocks = block, (tables.m + block - 1) // block
    tables.pack_threads = tables.threads
    if tables.blocks < 2 or tables.m * max(tables.k_of) < 65536:
        tables.pack_threads = 1
    # the run: item i of every phase before item i + 1 of any (a region of the output is
    # finished while it is in cache); a phase and its odd partner (_odd_partners) run each
    # item together and store it interleaved (fd_conv_item_pair)
    items = [(<ConvTables> c).items for c in convs]
    partner = {} if stacked else _odd_partners(checked, convs, stride)
    odd = set(partner.values())
    tables.pairs = len(partner)
    order = [(q, i) for i in range(max(items)) for q in range(len(convs))
             if i < items[q] and q not in odd]
    tables.total = len(order)
    tables.job_of = np.array([q for q, _ in order] or [0], dtype=np.intp)
    tables.item_of = np.array([i for _, i in order] or [0], dtype=np.intp)
    tables.partner_of = np.array([partner.get(q, -1) for q, _ in order] or [-1], dtype=np.intp)
    tables.run_threads = 1 if tables.total < 2 else tables.threads
    tables.work_bytes = max((<ConvTables> c).work_bytes for c in convs)
    # a pair's odd block follows the thread's scratch
    tables.odd_block_offset = (tables.work_bytes + 63) // 64 * 64
    cdef ConvTables odd_tables
    cdef Py_ssize_t odd_elems = 0
    for q in odd:
        odd_tables = convs[q]
        odd_elems = max(odd_elems, fd_placed_block_elems(&odd_tables.p))
    if partner:
        tables.work_bytes = tables.odd_block_offset + odd_elems * (8 if dtype == np.float64
                                                                    else 4)
    tables.packing_key = ("phases", dtype.str, isa, groups, tuple(weight_shape), tables.kc,
                          stacked, tuple((<ConvTables> c).p.mr for c in convs),
                          tuple(p[0] for p in checked))
    return tables


#: a pair's odd block is at most this many bytes (two blocks and the packed B stay in L2)
PAIR_BLOCK_BYTES = 256 * 1024


def _odd_partners(checked, convs, stride):
    """``{even: odd}``: the live phases (indices into ``checked`` and ``convs``) whose outputs
    are the even positions of output lines of which another phase's are the odd ones (the last
    dimension's stride 2, the odd one's first output one after the even one's, the same first
    outputs in the other dimensions and the same output counts), with the same work items (the
    same plan but for the reduction, whose bits it does not touch) and blocks of at most
    ``PAIR_BLOCK_BYTES``: each such pair runs an item of both and stores them interleaved."""
    last = len(stride) - 1
    if last < 0 or stride[last] != 2:
        return {}
    by_first = {tuple(first): q for q, (_, _, first, _) in enumerate(checked)}
    partners = {}
    cdef ConvTables a, b
    for q, (_, _, first, sub_out) in enumerate(checked):
        if first[last] != 0:
            continue
        r = by_first.get(tuple(first[:last]) + (1,))
        if r is None or checked[r][3] != sub_out:
            continue
        a, b = convs[q], convs[r]
        elem = 8 if a.is_double else 4
        if (a.p.k > 0 and b.p.k > 0 and a.items == b.items and a.p.mr == b.p.mr
                and a.p.nr == b.p.nr and a.p.m == b.p.m and a.p.n == b.p.n
                and a.p.m_chunk == b.p.m_chunk and a.p.n_chunk == b.p.n_chunk
                and a.place_row is None and b.place_row is None
                and fd_placed_block_elems(&a.p) * elem <= PAIR_BLOCK_BYTES):
            partners[q] = r
    return partners


cdef _stack_one_tap_phases(PhasesTables tables, list live, tuple xp_shape, tuple y_shape,
                           tuple low, in_strides, k_strides, Py_ssize_t k_numel,
                           Py_ssize_t cin_g, Py_ssize_t cout_g, tuple stride, Py_ssize_t groups,
                           int isa, dtype):
    """The one GEMM of the live one-tap phases (:func:`one_tap_phases`): its rows are the pairs
    (output channel o, tap t), row ``o * k_numel + t``, so that its A is gathered from the
    weight's group with row stride 1, ``A[o * k_numel + t, c] = weight[c, o, t]`` (channel c at
    ``c * cout_g * k_numel``), and row (o, t) is stored from y's channel o at the first
    position of the phase of tap t, every stride-th position on."""
    ndim = len(stride)
    _, pad, _, sub_out = live[0]            # the same for every live phase
    base = sum((lo - p) * int(st) for lo, p, st in zip(low, pad, in_strides))
    y_strides = np.cumprod((tuple(y_shape[2:]) + (1,))[::-1])[::-1][1:]
    first_of_tap = np.zeros(k_numel, dtype=np.intp)
    for taps, _, first, _ in live:
        tap = sum(int(t[0]) * int(st) for t, st in zip(taps, k_strides))
        first_of_tap[tap] = sum(int(f) * int(st) for f, st in zip(first, y_strides))
    plane = prod(y_shape[2:])
    place_row = (np.arange(cout_g, dtype=np.intp)[:, None] * plane
                 + first_of_tap[None, :]).reshape(-1)
    tables.col_offsets.append(np.arange(cin_g, dtype=np.intp) * (cout_g * k_numel))
    tables.convs.append(_conv_tables(
        xp_shape, (1,) * ndim, cout_g * k_numel, tuple(y_shape), sub_out, (1,) * ndim,
        (1,) * ndim, groups, tables.threads, isa, dtype == np.float64, False, base,
        (0,) * ndim, stride, place_row, cout_g))


def pack_phases_weight(PhasesTables tables not None, weight):
    """``weight`` (the tables' shape and dtype, C-contiguous) packed for ``tables``: every
    phase's A, a :class:`~fastdeconv._ext._packed_gemm.PackedWeight` that :func:`conv_transpose_phases_run` takes in its
    place."""
    check_like(weight, "weight", tables.weight_shape, tables.dtype)
    return _pack_phases(tables, weight)


cdef PackedWeight _pack_phases(PhasesTables tables, weight):
    """Every phase's A, group by group, in ranges of whole blocks of rows (a block: rows
    that every phase's MR divides), one range per thread: each line of the weight is read
    from memory once for all phases, channel after channel (fd_pack_a_phases)."""
    cdef Py_ssize_t count = len(tables.convs), q, g, block_index, r0, r1
    cdef bint is_double = tables.dtype == np.float64
    cdef size_t elem = 8 if is_double else 4
    cdef PackedWeight packed = new_packed(
        tables.packing_key, [(<ConvTables> c).apack_group * tables.groups * elem
                             for c in tables.convs])
    if count == 0:
        return packed
    cdef Py_ssize_t[::1] group_elems = np.array(
        [(<ConvTables> c).apack_group for c in tables.convs], dtype=np.intp)
    cdef size_t[::1] apack_of = np.empty(count, dtype=np.uintp)
    cdef const char* pw = <const char*> <uintptr_t> weight.ctypes.data
    cdef Py_ssize_t m = tables.m, block = tables.block, blocks = tables.blocks
    cdef Py_ssize_t row_stride = tables.row_stride, group_stride = tables.group_stride
    cdef Py_ssize_t groups = tables.groups, channels = tables.channels
    cdef int threads = tables.pack_threads
    cdef int isa = (<ConvTables> tables.convs[0]).p.isa
    cdef Py_ssize_t* taps_of = &tables.taps_of[0]
    cdef int* mr_of = &tables.mr_of[0]
    cdef const Py_ssize_t* const* offsets_of = <const Py_ssize_t* const*> &tables.offsets_of[0]
    cdef const Py_ssize_t* const* dsts_of = <const Py_ssize_t* const*> &tables.dsts_of[0]
    # one range of whole blocks per thread: within it the weight's rows of one channel are
    # contiguous, so channel after channel reads it as one stream (a range of one block read
    # a block's rows of every channel, one stride of the channel apart)
    cdef Py_ssize_t pieces = threads if threads < blocks else blocks
    cdef Py_ssize_t per_piece = (blocks + pieces - 1) // pieces * block
    for g in range(groups):
        for q in range(count):
            apack_of[q] = <size_t> (packed.data + packed.part_offset[q]
                                    + g * group_elems[q] * elem)
        for block_index in prange(pieces, nogil=True, num_threads=threads, schedule="static"):
            r0 = block_index * per_piece
            r1 = r0 + per_piece if r0 + per_piece < m else m
            if is_double:
                fd_pack_a_phases_d(m, <const double*> (pw + g * group_stride * elem),
                                   row_stride, channels, count, taps_of, offsets_of, dsts_of,
                                   mr_of, <double* const*> &apack_of[0], r0, r1, isa)
            else:
                fd_pack_a_phases_f(m, <const float*> (pw + g * group_stride * elem),
                                   row_stride, channels, count, taps_of, offsets_of, dsts_of,
                                   mr_of, <float* const*> &apack_of[0], r0, r1, isa)
    return packed


def conv_transpose_phases_run(PhasesTables tables not None, x, weight, y):
    """:func:`conv_transpose_phases_packed` on arrays of the shapes of ``tables``; ``weight``
    is the weight array or a :class:`~fastdeconv._ext._packed_gemm.PackedWeight` packed for these tables. Returns ``y``."""
    packed = _check_operands(tables, x, weight, y)
    if tables.empty:
        return y
    if packed is None:
        packed = _pack_phases(tables, weight)
    xp, pad_block = padded(x, tables.pad, tables.threads)
    try:
        _run_phases(tables, xp, y, packed)
    finally:
        give_scratch(pad_block)
    return y


cdef _run_phases(PhasesTables tables, xp, y, PackedWeight packed):
    """Every phase's work items of one run, on ``tables.run_threads`` threads."""
    cdef const void* px = <const void*> <uintptr_t> xp.ctypes.data
    cdef void* py = <void*> <uintptr_t> y.ctypes.data
    cdef Py_ssize_t count = len(tables.convs), q, i
    jobs = [_conv_job(tables.convs[q], px, py, NULL, packed.data + packed.part_offset[q])
            for q in range(count)]
    cdef size_t[::1] pointers = np.array([<size_t> (<_ConvJob> j).job() for j in jobs],
                                         dtype=np.uintp)
    cdef Py_ssize_t* job_of = &tables.job_of[0]
    cdef Py_ssize_t* item_of = &tables.item_of[0]
    cdef Py_ssize_t* partner_of = &tables.partner_of[0]
    cdef bint is_double = tables.dtype == np.float64
    cdef char* work = NULL
    cdef char* mine = NULL
    cdef size_t work_stride, odd_block = tables.odd_block_offset
    cdef int threads = tables.run_threads
    cdef Py_ssize_t total = tables.total
    work_block = take_work(tables.work_bytes, threads, &work, &work_stride)
    with nogil, parallel(num_threads=threads):
        mine = work + <size_t> threadid() * work_stride
        for i in prange(total, schedule="dynamic"):
            if partner_of[i] >= 0:
                if is_double:
                    fd_conv_item_pair_d(<fd_conv_job_d*> pointers[job_of[i]],
                                        <fd_conv_job_d*> pointers[partner_of[i]], item_of[i],
                                        <double*> mine, <double*> (mine + odd_block))
                else:
                    fd_conv_item_pair_f(<fd_conv_job_f*> pointers[job_of[i]],
                                        <fd_conv_job_f*> pointers[partner_of[i]], item_of[i],
                                        <float*> mine, <float*> (mine + odd_block))
            elif is_double:
                fd_conv_item_d(<fd_conv_job_d*> pointers[job_of[i]], item_of[i], <double*> mine)
            else:
                fd_conv_item_f(<fd_conv_job_f*> pointers[job_of[i]], item_of[i], <float*> mine)
    give_scratch(work_block)


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
    that no phase writes are left as they are (the caller zeroes them). Its tables
    (:func:`phases_tables`) are made on every call; callers repeating a shape keep them.

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
    tables = _phases_tables(x.shape, weight.shape, y.shape, x.dtype, stride, phases, groups,
                            threads, kernel)
    return conv_transpose_phases_run(tables, x, weight, y)


fd_transpose_simd()   # the CPU check runs once here, not first inside a parallel region
