# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""The direct convolution (forward pass) on a channels-last copy of the input
(``gemm/fd_direct.h``): no input packing.

For output position ``o`` of sample ``n`` and output channel ``co`` of group ``g``::

    y[n, co, o] = sum over taps t, channels c of
                  x[n, g * C_in/g + c, o * stride + t * dilation - padding] * weight[co, c, t]

(zero where the input position lies outside the input) from ``x_last``, the channels-last
``(N * prod(in_size) + 1, C_in)`` copy of ``x`` whose last row is zeros (every padding tap
reads it), and ``weight``, the convolution's ``(C_out, C_in / groups, *k)``. The micro-kernels read ``x_last`` in place and
the weight packed into panels of output channels (:func:`pack_weight`, once per call or
once for a prepared layer).

Threads: work items are blocks of output positions against one panel, fixed by the shape;
each output value is one chain of multiply-adds in one kernel call, so the result is the
same to the bit for any ``threads``.
"""
cimport cython
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uintptr_t

import numpy as np

from .. import _scratch
from ._packed_gemm cimport PackedWeight, take_scratch
from ._packed_gemm import (_check_groups, _check_matrix, _check_per_dim, _check_same_dtype,
                           _check_threads, _isa_of)
from ._packed_wgrad import _check_count


cdef extern from "gemm/fd_direct.h" nogil:
    const char* fd_isa_names[3]
    ctypedef struct fd_direct_panel:
        Py_ssize_t group, first, width, nv, offset
    int fd_direct_mr(int isa)
    int fd_direct_vlen(int isa, int is_double)
    int fd_direct_max_nv(int isa)
    int FD_DIRECT_MAX_NDIM, FD_DIRECT_MAX_TAPS
    ctypedef struct fd_direct_geom:
        int ndim
        Py_ssize_t in_size[8]
        Py_ssize_t out_size[8]
        Py_ssize_t stride[8]
        Py_ssize_t dilation[8]
        Py_ssize_t kernel[8]
        Py_ssize_t pad[8]
        Py_ssize_t samples, c_in, taps, in_positions, out_positions, zero_row
        const Py_ssize_t* tap_offset
    ctypedef struct fd_direct_job:
        pass
    void fd_direct_job_init(fd_direct_job* job, int is_double, int isa,
                            const fd_direct_geom* g, const void* x, Py_ssize_t c_out,
                            Py_ssize_t channels, const void* w, const fd_direct_panel* panels,
                            Py_ssize_t npanels, void* y)
    Py_ssize_t fd_direct_job_items(const fd_direct_job* job, int is_double)
    Py_ssize_t fd_direct_job_table_elems(const fd_direct_job* job, int is_double)
    void fd_direct_job_item(const fd_direct_job* job, int is_double, Py_ssize_t item,
                            Py_ssize_t* table, Py_ssize_t* held)
    ctypedef struct fd_direct_space:
        Py_ssize_t phases, c_out
        Py_ssize_t stride[8]
        Py_ssize_t origin[8]
        Py_ssize_t size[8]
    void fd_direct_job_set_space(fd_direct_job* job, int is_double, const fd_direct_space* space)
    int fd_transpose_simd()
    void fd_direct_pack_f(const float* weight, Py_ssize_t channels, Py_ssize_t taps,
                          const fd_direct_panel* pn, Py_ssize_t vlen, float* w)
    void fd_direct_pack_d(const double* weight, Py_ssize_t channels, Py_ssize_t taps,
                          const fd_direct_panel* pn, Py_ssize_t vlen, double* w)
    void fd_direct_pack_gather_f(const float* weight, Py_ssize_t c_stride, Py_ssize_t channels,
                                 Py_ssize_t taps, const Py_ssize_t* src, Py_ssize_t src_ld,
                                 const fd_direct_panel* pn, Py_ssize_t vlen, float* w)
    void fd_direct_pack_gather_d(const double* weight, Py_ssize_t c_stride,
                                 Py_ssize_t channels, Py_ssize_t taps, const Py_ssize_t* src,
                                 Py_ssize_t src_ld, const fd_direct_panel* pn, Py_ssize_t vlen,
                                 double* w)


cdef Py_ssize_t PANEL_FIELDS = 5   # the fields of fd_direct_panel, in its order

fd_transpose_simd()   # the CPU check of the tiles' store runs once here, not in a thread


def tile(dtype=np.float32, kernel=None):
    """The register tile of the direct convolution's kernel for ``dtype``: ``{'kernel': name,
    'MR': output positions, 'NR': output channels at most (vectors x lanes), 'lanes': of a
    vector}``."""
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double = _float_dtype(dtype, "dtype") == np.float64
    lanes = fd_direct_vlen(isa, is_double)
    return {"kernel": fd_isa_names[isa].decode(), "MR": fd_direct_mr(isa),
            "NR": lanes * fd_direct_max_nv(isa), "lanes": lanes}


def _float_dtype(dtype, name):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def panels(c_out, groups, dtype=np.float32, kernel=None):
    """The packed weight's panels: an ``(n, 5)`` intp array of (group, first output channel,
    width, vectors, element offset) and the packed weight's elements per tap and input
    channel (its size is that times taps x input channels per group). Each group's output
    channels are dealt out to panels of at most the kernel's vectors, their vector counts
    differing by at most one."""
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double = _float_dtype(dtype, "dtype") == np.float64
    c_out = _check_count(c_out, "c_out", 0)
    groups = _check_groups(groups)
    if c_out % groups:
        raise ValueError(f"c_out must be a multiple of groups, got c_out={c_out}, "
                         f"groups={groups}")
    lanes, most = fd_direct_vlen(isa, is_double), fd_direct_max_nv(isa)
    per_group = c_out // groups
    vectors = -(-per_group // lanes)
    count = -(-vectors // most) if vectors else 0
    rows, offset = [], 0
    for g in range(groups):
        done = 0
        for i in range(count):
            nv = vectors * (i + 1) // count - vectors * i // count
            width = min(nv * lanes, per_group - done)
            rows.append((g, g * per_group + done, width, nv, offset))
            done += width
            offset += nv * lanes
    table = np.array(rows, dtype=np.intp).reshape(-1, PANEL_FIELDS)
    return table, offset


@cython.final
cdef class DirectWeight(PackedWeight):
    """A convolution weight packed for the direct convolution (:func:`pack_weight`): every
    group's panels of output channels, in a block of the engine's scratch pool that goes back
    to it with the object (:class:`~fastdeconv._ext._packed_gemm.PackedWeight`'s). ``key`` =
    (kernel, dtype, weight shape, groups); ``address``: where the panels start (a 64-byte
    boundary)."""
    cdef readonly object table
    cdef readonly Py_ssize_t taps, channels
    cdef readonly int isa

    def __init__(self):
        raise TypeError("a DirectWeight is made by pack_weight()")

    @property
    def address(self):
        return <uintptr_t> self.data


def pack_weight(weight, groups=1, kernel=None, threads=1):
    """``weight`` ``(C_out, C_in / groups, *k)`` (C-contiguous float32 or float64) packed for
    :func:`conv_direct`, a :class:`DirectWeight`, on up to ``threads`` threads (a panel
    each)."""
    if not isinstance(weight, np.ndarray) or weight.ndim < 3:
        raise (TypeError if not isinstance(weight, np.ndarray) else ValueError)(
            f"weight must be a numpy.ndarray (C_out, C_in / groups, *k), got "
            f"{getattr(weight, 'shape', type(weight).__name__)}")
    _check_matrix(weight, "weight", ndim=weight.ndim)
    cdef int isa = _isa_of(kernel, "kernel")
    groups = _check_groups(groups)
    cdef int n_threads = _check_threads(threads)
    cdef DirectWeight packed = _new_direct_weight(weight.shape, groups, weight.dtype, isa, kernel)
    table = packed.table
    cdef Py_ssize_t channels = packed.channels, taps = packed.taps, i, count = table.shape[0]
    cdef Py_ssize_t total = (packed.nbytes - table.nbytes) // weight.itemsize
    cdef Py_ssize_t[:, ::1] rows = table
    cdef fd_direct_panel* pn = <fd_direct_panel*> &rows[0, 0] if count else NULL
    cdef bint is_double = weight.dtype == np.float64
    cdef Py_ssize_t lanes = fd_direct_vlen(isa, is_double)
    cdef uintptr_t src = weight.ctypes.data, dst = <uintptr_t> packed.data
    if count < 2 or total < 65536:
        n_threads = 1
    with nogil:
        for i in prange(count, num_threads=n_threads, schedule="static"):
            if is_double:
                fd_direct_pack_d(<const double*> src, channels, taps, &pn[i], lanes,
                                 <double*> dst)
            else:
                fd_direct_pack_f(<const float*> src, channels, taps, &pn[i], lanes,
                                 <float*> dst)
    return packed


cdef DirectWeight _new_direct_weight(shape, Py_ssize_t groups, dtype, int isa, kernel):
    """An unfilled :class:`DirectWeight` of a weight of ``shape`` ``(C_out, C_in / groups,
    *k)``: its panels' table (offsets in elements) and its block of the scratch pool."""
    table, per_k = panels(shape[0], groups, dtype, kernel)
    cdef Py_ssize_t channels = shape[1], taps = 1
    for size in shape[2:]:
        taps *= size
    cdef Py_ssize_t total = max(per_k * taps * channels, 1)
    cdef DirectWeight packed = DirectWeight.__new__(DirectWeight)
    packed.block = take_scratch(total * dtype.itemsize, &packed.data, "packed weight", True)
    table[:, 4] *= taps * channels   # the panel offsets counted elements per (tap, channel)
    packed.table, packed.taps, packed.channels = table, taps, channels
    packed.isa, packed.nbytes = isa, total * dtype.itemsize + table.nbytes
    packed.key = (fd_isa_names[isa].decode(), dtype.name, tuple(shape), groups)
    return packed


def pack_weight_gathered(weight, src, shape, kernel=None, threads=1):
    """A :class:`DirectWeight` of the one-group weight of ``shape`` ``(C_out, C_in, *k)`` whose
    value ``[co, c, t]`` (``t`` row-major over ``k``) is ``weight[c].flat[src[t, co]]``:
    ``weight`` a C-contiguous float32 or float64 array of ``C_in`` rows (leading dimension),
    ``src`` a C-contiguous intp array ``(prod(k), C_out)`` of indices into one row. The
    sub-pixel convolution's weight of a transposed convolution, packed straight from its
    weight (:func:`conv_direct_to_space`)."""
    if not isinstance(weight, np.ndarray) or weight.ndim < 1:
        raise TypeError(f"weight must be a numpy.ndarray with a leading dimension, got "
                        f"{type(weight).__name__}")
    _check_matrix(weight, "weight", ndim=weight.ndim)
    cdef int isa = _isa_of(kernel, "kernel")
    cdef int n_threads = _check_threads(threads)
    if not isinstance(shape, tuple) or len(shape) < 3:
        raise ValueError(f"shape must be a tuple (C_out, C_in, *k), got {shape!r}")
    shape = tuple(_check_count(v, "shape", 0) for v in shape)
    _weight_ndim(shape)
    cdef Py_ssize_t c_out = shape[0], channels = shape[1], taps = 1
    for size in shape[2:]:
        taps *= size
    if weight.shape[0] != channels:
        raise ValueError(f"weight must have C_in = {channels} rows, got shape {weight.shape}")
    cdef Py_ssize_t c_stride = weight.size // channels if channels else 0
    if (not isinstance(src, np.ndarray) or src.dtype != np.intp or src.shape != (taps, c_out)
            or not src.flags.c_contiguous):
        raise ValueError(f"src must be a C-contiguous intp array of shape {(taps, c_out)}, got "
                         f"{getattr(src, 'dtype', type(src).__name__)} "
                         f"{getattr(src, 'shape', '')}")
    if src.size and channels and (src.min() < 0 or src.max() >= c_stride):
        raise ValueError(f"src must index a row of {c_stride} values, got values in "
                         f"[{src.min()}, {src.max()}]")
    cdef DirectWeight packed = _new_direct_weight(shape, 1, weight.dtype, isa, kernel)
    table = packed.table
    cdef Py_ssize_t i, count = table.shape[0]
    cdef Py_ssize_t total = (packed.nbytes - table.nbytes) // weight.itemsize
    cdef Py_ssize_t[:, ::1] rows = table
    cdef fd_direct_panel* pn = <fd_direct_panel*> &rows[0, 0] if count else NULL
    cdef bint is_double = weight.dtype == np.float64
    cdef Py_ssize_t lanes = fd_direct_vlen(isa, is_double)
    cdef const Py_ssize_t[:, ::1] src_view = src
    cdef const Py_ssize_t* psrc = &src_view[0, 0] if src.size else NULL
    cdef uintptr_t pw = weight.ctypes.data, dst = <uintptr_t> packed.data
    if count < 2 or total < 65536:
        n_threads = 1
    if channels and taps and c_out:
        with nogil:
            for i in prange(count, num_threads=n_threads, schedule="static"):
                if is_double:
                    fd_direct_pack_gather_d(<const double*> pw, c_stride, channels, taps, psrc,
                                            c_out, &pn[i], lanes, <double*> dst)
                else:
                    fd_direct_pack_gather_f(<const float*> pw, c_stride, channels, taps, psrc,
                                            c_out, &pn[i], lanes, <float*> dst)
    return packed


def conv_direct(x_last, in_size, weight, y, stride=1, dilation=1, padding=0, groups=1,
                threads=1, kernel=None):
    """``y`` ``(N, C_out, *out_size)`` = the convolution (``stride``, ``dilation``, ``padding``
    before, per dimension or one int) of the input of spatial size ``in_size`` whose
    channels-last copy is ``x_last`` ``(N * prod(in_size) + 1, C_in)`` (the last row zeros) by
    ``weight`` (an array ``(C_out, C_in / groups, *k)``, packed here, or a
    :class:`DirectWeight` of it). Output positions whose window passes the input read zeros,
    so any ``out_size`` is safe. Returns ``y``."""
    _check_output(x_last, y)
    threads = _check_threads(threads)
    groups = _check_groups(groups)
    cdef int isa = _isa_of(kernel, "kernel")
    packed, shape = _weight_of(weight, x_last, groups, isa, kernel)
    ndim = _weight_ndim(shape)
    if y.ndim != ndim + 2 or y.shape[1] != shape[0] or shape[0] % groups:
        raise ValueError(f"y of shape {y.shape} does not fit the weight {shape} and "
                         f"groups={groups}")
    cdef fd_direct_geom g
    tap_offset = _geometry(&g, x_last, in_size, shape, y.shape[2:], stride, dilation, padding,
                           groups, y.shape[0])
    if y.size == 0:
        return y
    if packed is None:
        packed = pack_weight(weight, groups, kernel, threads=threads)
    _run(packed, &g, x_last, y, shape[1], threads, NULL)
    return y


def conv_direct_to_space(x_last, in_size, weight, grid, y, stride, origin, padding=0,
                         threads=1, kernel=None):
    """The sub-pixel transposed convolution's two steps in one: the stride-1 convolution
    (``padding`` before) of the input of spatial size ``in_size`` (``x_last`` as for
    :func:`conv_direct`) by ``weight`` ``(C_y * prod(stride), C_in, *k)`` (an array or a
    :class:`DirectWeight`, one group) onto ``grid`` positions, each tile stored straight
    into ``y`` ``(N, C_y, *size)`` by depth-to-space: output channel ``co * prod(stride) +
    rho`` (``rho`` row-major over ``stride``) at grid index ``i`` goes to ``y[n, co, origin +
    i * stride + rho]`` (per dimension), and is dropped where that lies outside ``y``.
    Positions of ``y`` that no channel reaches keep their values. Returns ``y``."""
    _check_output(x_last, y)
    threads = _check_threads(threads)
    cdef int isa = _isa_of(kernel, "kernel")
    packed, shape = _weight_of(weight, x_last, 1, isa, kernel)
    ndim = _weight_ndim(shape)
    grid = _check_per_dim(grid, ndim, "grid", 0)
    stride = _check_per_dim(stride, ndim, "stride", 1)
    origin = _check_per_dim(origin, ndim, "origin", None)
    if y.ndim != ndim + 2:
        raise ValueError(f"y must have {ndim + 2} dimensions for the weight {shape}, got "
                         f"shape {y.shape}")
    phases = 1
    for d in range(ndim):
        phases *= stride[d]
        if abs(origin[d]) + (grid[d] + 1) * stride[d] > 2**62:
            raise ValueError(f"origin {origin} and grid {grid} with stride {stride} pass the "
                             f"index range")
    if shape[0] != y.shape[1] * phases:
        raise ValueError(f"the weight's {shape[0]} output channels must be y's {y.shape[1]} "
                         f"channels times prod(stride) = {phases}")
    cdef fd_direct_geom g
    tap_offset = _geometry(&g, x_last, in_size, shape, grid, 1, 1, padding, 1, y.shape[0])
    if y.size == 0 or g.out_positions == 0:
        return y
    cdef fd_direct_space space
    space.phases, space.c_out = phases, y.shape[1]
    for d in range(ndim):
        space.stride[d], space.origin[d], space.size[d] = stride[d], origin[d], y.shape[2 + d]
    if packed is None:
        packed = pack_weight(weight, 1, kernel, threads=threads)
    _run(packed, &g, x_last, y, shape[1], threads, &space)
    return y


def _check_output(x_last, y):
    _check_matrix(x_last, "x_last")
    _check_matrix(y, "y", ndim=y.ndim if isinstance(y, np.ndarray) and y.ndim >= 3 else 3)
    _check_same_dtype(x_last.dtype, y=y)
    if not y.flags.writeable:
        raise ValueError("y must be writable")


def _weight_of(weight, x_last, groups, int isa, kernel):
    """(the DirectWeight or None, the weight's shape) of an entry's ``weight``."""
    if isinstance(weight, DirectWeight):
        packed = weight
        if (packed.isa != isa or packed.key[1] != x_last.dtype.name
                or packed.key[3] != groups):
            raise ValueError(f"weight was packed for {packed.key}, not for kernel {kernel!r}, "
                             f"dtype {x_last.dtype}, groups {groups}")
        return packed, packed.key[2]
    if isinstance(weight, np.ndarray):
        _check_same_dtype(x_last.dtype, weight=weight)
        return None, weight.shape
    raise TypeError(f"weight must be a numpy.ndarray or a DirectWeight, got "
                    f"{type(weight).__name__}")


def _weight_ndim(shape):
    ndim = len(shape) - 2
    if not 1 <= ndim <= FD_DIRECT_MAX_NDIM:
        raise ValueError(f"weight must be (C_out, C_in / groups, *k) with 1 to "
                         f"{FD_DIRECT_MAX_NDIM} spatial dimensions, got shape {shape}")
    return ndim


cdef object _geometry(fd_direct_geom* g, x_last, in_size, shape, out_size, stride, dilation,
                      padding, Py_ssize_t groups, Py_ssize_t samples):
    """Fill ``g`` for ``samples`` samples, checking ``x_last`` against it; returns the tap
    offsets that ``g.tap_offset`` points into (keep them while ``g`` is used)."""
    cdef int ndim = len(shape) - 2
    in_size = _check_per_dim(in_size, ndim, "in_size", 0)
    stride = _check_per_dim(stride, ndim, "stride", 1)
    dilation = _check_per_dim(dilation, ndim, "dilation", 1)
    padding = _check_per_dim(padding, ndim, "padding", 0)
    cdef Py_ssize_t d
    g.ndim = ndim
    g.samples, g.c_in, g.taps, g.in_positions, g.out_positions = samples, 0, 1, 1, 1
    for d in range(ndim):
        g.in_size[d], g.out_size[d] = in_size[d], out_size[d]
        g.stride[d], g.dilation[d] = stride[d], dilation[d]
        g.kernel[d], g.pad[d] = shape[2 + d], padding[d]
        g.taps *= shape[2 + d]
        g.in_positions *= in_size[d]
        g.out_positions *= out_size[d]
    cdef Py_ssize_t channels = shape[1]
    g.c_in = channels * groups
    if g.taps > FD_DIRECT_MAX_TAPS:
        raise ValueError(f"the direct convolution takes at most {FD_DIRECT_MAX_TAPS} taps, "
                         f"got a weight of shape {shape}")
    rows = g.samples * g.in_positions + 1
    if x_last.shape[0] != rows or x_last.shape[1] != g.c_in:
        raise ValueError(f"x_last must have shape ({rows}, {g.c_in}) for {g.samples} samples "
                         f"of size {in_size}, the weight {shape} and groups={groups}, got "
                         f"{x_last.shape}")
    if g.c_in and x_last[rows - 1].any():
        raise ValueError("x_last's last row must be zeros (the padding taps read it)")
    g.zero_row = (rows - 1) * g.c_in
    # tap t's offset from a window's first position (row-major taps), in elements
    taps = np.zeros((), dtype=np.intp)
    step = g.c_in
    for d in range(ndim - 1, -1, -1):
        taps = np.add.outer(np.arange(shape[2 + d], dtype=np.intp) * (dilation[d] * step), taps)
        step *= in_size[d]
    cdef Py_ssize_t[::1] tap_offset = np.ascontiguousarray(taps.reshape(-1))
    g.tap_offset = &tap_offset[0]
    return tap_offset


cdef _run(DirectWeight packed, const fd_direct_geom* g, x_last, y, Py_ssize_t channels,
          int threads, const fd_direct_space* space):
    cdef Py_ssize_t[:, ::1] table = packed.table
    cdef fd_direct_job job
    cdef bint is_double = x_last.dtype == np.float64
    cdef Py_ssize_t items, item, per_thread
    if table.shape[0] == 0:
        return
    fd_direct_job_init(&job, is_double, packed.isa, g,
                       <const void*> <uintptr_t> x_last.ctypes.data, y.shape[1], channels,
                       packed.data, <fd_direct_panel*> &table[0, 0], table.shape[0],
                       <void*> <uintptr_t> y.ctypes.data)
    if space != NULL:
        fd_direct_job_set_space(&job, is_double, space)
    items = fd_direct_job_items(&job, is_double)
    per_thread = fd_direct_job_table_elems(&job, is_double)
    if items < 2:
        threads = 1
    # each thread's table of tile offsets and the block it holds (-1: none yet)
    tables, block = _scratch.take_array((threads, per_thread + 1), np.intp,
                                        "direct convolution's offsets")
    tables[:, per_thread] = -1
    cdef Py_ssize_t[:, ::1] offsets = tables
    cdef Py_ssize_t* mine
    try:
        with nogil, parallel(num_threads=threads):
            mine = &offsets[threadid(), 0]
            for item in prange(items, schedule="static"):
                fd_direct_job_item(&job, is_double, item, mine, mine + per_thread)
    finally:
        del offsets, tables
        _scratch.give(block)
