# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""im2col / col2im for N spatial dimensions and the three convolution drivers.

Layout of the column buffer for one sample and a tile ``[l0, l1)`` of flat output positions::

    col[c * K + t, l - l0] = x[c, i(l, t)]       K = prod(kernel_size), t = flat kernel tap

    i(l, t)_d = o_d * stride_d - pad_before_d + t_d * dilation_d    (o = unravel(l, output_size))

and ``col = 0`` where ``i`` falls outside the input (zero padding; other padding modes are
applied in Python by padding explicitly). ``col2im`` is the exact adjoint: it adds
``col[c*K + t, l]`` into ``x[c, i(l, t)]``.

Drivers (per sample, per tile of output positions, per group ``g``)::

    forward:          col = im2col(x[n]);  y[n, g] = W[g] @ col[g]
    backward_input:   col[g] = W[g]^T @ gy[n, g];  gx[n] += col2im(col)   (= conv_transpose)
    backward_weight:  col = im2col(x[n]);  gW[g] += gy[n, g] @ col[g]^T

Determinism (same bits whatever the thread count): im2col writes each column row once
(parallel over rows); col2im is parallel over channels, and one thread adds every contribution
of a channel in a fixed order, so no two threads touch one output. Every GEMM goes through
:func:`parallel_gemm`, which cuts the larger of its M and N dimensions into pieces whose number
depends only on the shape, never on the thread count, and runs one single-threaded BLAS call
per piece (``fastdeconv._blas_threads`` holds BLAS to one thread meanwhile). Weight gradients
accumulate tiles and samples in a fixed order through GEMM with ``beta = 1``.

Everything here trusts its arguments: the Python layer (``fastdeconv._conv``) validated the
geometry, made arrays C-contiguous and of one dtype, sized the workspace, and checked that BLAS
dimensions fit in ``blas_int``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset, memcpy

from ._blas cimport gemm, blas_int

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
from ._openmp cimport FASTDECONV_HAVE_OPENMP, omp_get_max_threads

cdef enum:
    MAX_NDIM = 8

HAVE_OPENMP = bool(FASTDECONV_HAVE_OPENMP)
MAX_SPATIAL_DIMS = MAX_NDIM

# Below this many column elements per tile, im2col / col2im run on one thread.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 1 << 15
# GEMMs are cut into at most this many pieces along M or N, each at least GEMM_MIN_PIECE wide,
# and below GEMM_PARALLEL_MIN_FLOPS multiply-adds they run as one piece.
cdef Py_ssize_t GEMM_MAX_PIECES = 16
cdef Py_ssize_t GEMM_MIN_PIECE = 256
cdef Py_ssize_t GEMM_MIN_PIECE_FLOOR = 32   # no piece is narrower than this
cdef Py_ssize_t GEMM_PARALLEL_MIN_FLOPS = 1 << 18


def gemm_piece_parameters(min_piece=None, max_pieces=None, parallel_min_flops=None):
    """Get (and optionally set) how GEMMs are cut into pieces; for tuning and tests only."""
    global GEMM_MIN_PIECE, GEMM_MAX_PIECES, GEMM_PARALLEL_MIN_FLOPS
    if min_piece is not None:
        GEMM_MIN_PIECE = min_piece
    if max_pieces is not None:
        GEMM_MAX_PIECES = max_pieces
    if parallel_min_flops is not None:
        GEMM_PARALLEL_MIN_FLOPS = parallel_min_flops
    return GEMM_MIN_PIECE, GEMM_MAX_PIECES, GEMM_PARALLEL_MIN_FLOPS


def max_threads():
    """``omp_get_max_threads()``, or 1 without OpenMP."""
    return omp_get_max_threads()


cdef struct Geometry:
    int ndim
    Py_ssize_t in_size[MAX_NDIM]
    Py_ssize_t out_size[MAX_NDIM]
    Py_ssize_t kernel[MAX_NDIM]
    Py_ssize_t stride[MAX_NDIM]
    Py_ssize_t dilation[MAX_NDIM]
    Py_ssize_t pad[MAX_NDIM]
    Py_ssize_t in_numel
    Py_ssize_t out_numel
    Py_ssize_t k_numel


cdef Geometry make_geometry(const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                            const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                            const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad):
    cdef Geometry g
    cdef int d
    g.ndim = <int> in_size.shape[0]
    g.in_numel = 1
    g.out_numel = 1
    g.k_numel = 1
    for d in range(g.ndim):
        g.in_size[d] = in_size[d]
        g.out_size[d] = out_size[d]
        g.kernel[d] = kernel[d]
        g.stride[d] = stride[d]
        g.dilation[d] = dilation[d]
        g.pad[d] = pad[d]
        g.in_numel *= in_size[d]
        g.out_numel *= out_size[d]
        g.k_numel *= kernel[d]
    return g


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Floor division for b > 0 and any a (C division truncates toward zero)."""
    if a >= 0:
        return a / b
    return -((-a + b - 1) / b)


cdef inline void valid_range(Py_ssize_t o0, Py_ssize_t count, Py_ssize_t stride,
                             Py_ssize_t offset, Py_ssize_t size,
                             Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output positions o in [o0, o0+count) with 0 <= o*stride + offset < size: [lo, hi)."""
    cdef Py_ssize_t first = -floor_div(offset, stride)          # ceil(-offset / stride)
    cdef Py_ssize_t last = floor_div(size - 1 - offset, stride) + 1
    cdef Py_ssize_t end = o0 + count
    # o0 <= lo <= hi <= end, even when the tap lies wholly in the padding
    lo[0] = o0 if o0 > first else (first if first < end else end)
    hi[0] = end if end < last else (last if last > lo[0] else lo[0])


cdef inline void tap_offsets(const Geometry* g, Py_ssize_t t, Py_ssize_t* offset) noexcept nogil:
    """offset[d] = tap_d * dilation_d - pad_d for the flat kernel tap t (row-major)."""
    cdef int d
    for d in range(g.ndim - 1, -1, -1):
        offset[d] = (t % g.kernel[d]) * g.dilation[d] - g.pad[d]
        t = t / g.kernel[d]


cdef inline void unravel(const Geometry* g, Py_ssize_t pos, Py_ssize_t* idx) noexcept nogil:
    cdef int d
    for d in range(g.ndim - 1, -1, -1):
        idx[d] = pos % g.out_size[d]
        pos = pos / g.out_size[d]


cdef inline Py_ssize_t outer_base(const Geometry* g, const Py_ssize_t* idx,
                                  const Py_ssize_t* offset) noexcept nogil:
    """Flat input offset of the row start for output row idx[:-1], or -1 if it is padding."""
    cdef int d
    cdef Py_ssize_t base = 0, p
    for d in range(g.ndim - 1):
        p = idx[d] * g.stride[d] + offset[d]
        if p < 0 or p >= g.in_size[d]:
            return -1
        base = base * g.in_size[d] + p
    return base * g.in_size[g.ndim - 1]


cdef inline void next_row(const Geometry* g, Py_ssize_t* idx) noexcept nogil:
    """Advance idx[:-1] to the next output row (row-major carry); idx[-1] = 0."""
    cdef int d
    idx[g.ndim - 1] = 0
    for d in range(g.ndim - 2, -1, -1):
        idx[d] += 1
        if idx[d] < g.out_size[d]:
            return
        idx[d] = 0


cdef struct RowWalk:
    # the output positions [l0, l1) of one kernel tap, cut at the ends of output rows
    Py_ssize_t idx[MAX_NDIM]       # output index of the segment's first position
    Py_ssize_t offset[MAX_NDIM]    # the tap's input offset per dimension (tap * d - pad)
    Py_ssize_t pos, l1
    Py_ssize_t i0, seg, base       # the segment: first position in its row, length, row start
    Py_ssize_t off                 # the tap's offset in the last dimension


cdef inline void walk_start(RowWalk* w, const Geometry* g, Py_ssize_t t, Py_ssize_t l0,
                            Py_ssize_t l1) noexcept nogil:
    tap_offsets(g, t, w.offset)
    unravel(g, l0, w.idx)
    w.off = w.offset[g.ndim - 1]
    w.pos, w.l1, w.seg = l0, l1, 0


cdef inline bint walk_next(RowWalk* w, const Geometry* g) noexcept nogil:
    """Advance to the next segment (one output row's part of [l0, l1)); False at the end.
    ``base`` is the flat input offset of the segment's input row, -1 if it is padding."""
    cdef int last = g.ndim - 1
    if w.seg > 0:
        w.pos += w.seg
        next_row(g, w.idx)
    if w.pos >= w.l1:
        return False
    w.i0 = w.idx[last]
    w.seg = g.out_size[last] - w.i0
    if w.seg > w.l1 - w.pos:
        w.seg = w.l1 - w.pos
    w.base = outer_base(g, w.idx, w.offset)
    return True


cdef void im2col_row(const floating* x_channel, floating* dst, const Geometry* g,
                     Py_ssize_t t, Py_ssize_t l0, Py_ssize_t l1) noexcept nogil:
    """One column row: tap t of one channel, output positions [l0, l1)."""
    cdef RowWalk w
    cdef Py_ssize_t s = g.stride[g.ndim - 1], n_last = g.in_size[g.ndim - 1], lo, hi, o
    cdef const floating* src
    walk_start(&w, g, t, l0, l1)
    while walk_next(&w, g):
        if w.base < 0:
            memset(dst, 0, w.seg * sizeof(floating))
        else:
            valid_range(w.i0, w.seg, s, w.off, n_last, &lo, &hi)
            memset(dst, 0, (lo - w.i0) * sizeof(floating))
            src = x_channel + w.base + w.off
            if s == 1:
                memcpy(dst + (lo - w.i0), src + lo, (hi - lo) * sizeof(floating))
            else:
                for o in range(lo, hi):
                    dst[o - w.i0] = src[o * s]
            memset(dst + (hi - w.i0), 0, (w.i0 + w.seg - hi) * sizeof(floating))
        dst += w.seg


cdef void im2col_row_pair(const floating* x_channel, floating* dst0, floating* dst1,
                          const Geometry* g, Py_ssize_t t, Py_ssize_t l0,
                          Py_ssize_t l1) noexcept nogil:
    """:func:`im2col_row` of taps t and t + 1, neighbours in the last kernel dimension with
    stride 2 and dilation 1 there: tap t reads the even offsets of a row, tap t + 1 the odd
    ones, so one de-interleaving pass fills both rows."""
    cdef RowWalk w
    cdef Py_ssize_t n_last = g.in_size[g.ndim - 1], lo0, hi0, lo1, hi1, hi, o, i0
    cdef const floating* src
    walk_start(&w, g, t, l0, l1)   # tap t + 1: offset w.off + 1
    while walk_next(&w, g):
        if w.base < 0:
            memset(dst0, 0, w.seg * sizeof(floating))
            memset(dst1, 0, w.seg * sizeof(floating))
        else:
            i0 = w.i0   # dst[k] is output position i0 + k
            valid_range(i0, w.seg, 2, w.off, n_last, &lo0, &hi0)
            valid_range(i0, w.seg, 2, w.off + 1, n_last, &lo1, &hi1)
            # as in col2im_row_pair: lo1 <= lo0, hi1 <= hi0; both valid on [lo0, hi1)
            hi = hi1 if hi1 > lo0 else lo0
            src = x_channel + w.base + w.off
            memset(dst0, 0, (lo0 - i0) * sizeof(floating))
            memset(dst1, 0, (lo1 - i0) * sizeof(floating))
            for o in range(lo1, hi1 if hi1 < lo0 else lo0):
                dst1[o - i0] = src[2 * o + 1]
            split_pair(hi - lo0, src + 2 * lo0, dst0 + (lo0 - i0), dst1 + (lo0 - i0))
            for o in range(hi, hi0):
                dst0[o - i0] = src[2 * o]
            memset(dst0 + (hi0 - i0), 0, (i0 + w.seg - hi0) * sizeof(floating))
            memset(dst1 + (hi1 - i0), 0, (i0 + w.seg - hi1) * sizeof(floating))
        dst0 += w.seg
        dst1 += w.seg


cdef void col2im_row(const floating* src, floating* x_channel, const Geometry* g,
                     Py_ssize_t t, Py_ssize_t l0, Py_ssize_t l1) noexcept nogil:
    """Adjoint of :func:`im2col_row`: add column row t of one channel into its image."""
    cdef RowWalk w
    cdef Py_ssize_t s = g.stride[g.ndim - 1], n_last = g.in_size[g.ndim - 1], lo, hi, o
    cdef floating* dst
    walk_start(&w, g, t, l0, l1)
    while walk_next(&w, g):
        if w.base >= 0:
            valid_range(w.i0, w.seg, s, w.off, n_last, &lo, &hi)
            dst = x_channel + w.base + w.off
            if s == 1:
                add(hi - lo, src + (lo - w.i0), dst + lo)
            else:
                for o in range(lo, hi):
                    dst[o * s] += src[o - w.i0]
        src += w.seg


cdef void col2im_row_pair(const floating* src0, const floating* src1, floating* x_channel,
                          const Geometry* g, Py_ssize_t t, Py_ssize_t l0,
                          Py_ssize_t l1) noexcept nogil:
    """:func:`col2im_row` of taps t and t + 1, neighbours in the last kernel dimension with
    stride 2 and dilation 1 there: tap t adds to even offsets of a row, tap t + 1 to odd
    ones, so one interleaved pass adds both. No output receives both, so every output gets
    the same additions in the same order as two col2im_row calls: the same bits."""
    cdef RowWalk w
    cdef Py_ssize_t n_last = g.in_size[g.ndim - 1], lo0, hi0, lo1, hi1, hi, o, i0
    cdef floating* dst
    walk_start(&w, g, t, l0, l1)   # tap t + 1: offset w.off + 1
    while walk_next(&w, g):
        if w.base >= 0:
            i0 = w.i0   # src[k] is output position i0 + k
            valid_range(i0, w.seg, 2, w.off, n_last, &lo0, &hi0)
            valid_range(i0, w.seg, 2, w.off + 1, n_last, &lo1, &hi1)
            # tap t + 1 reads one position further: lo1 <= lo0 and hi1 <= hi0, so both taps
            # are valid on [lo0, hi1), tap t + 1 alone on its left, tap t alone on its right
            hi = hi1 if hi1 > lo0 else lo0
            dst = x_channel + w.base + w.off
            for o in range(lo1, hi1 if hi1 < lo0 else lo0):
                dst[2 * o + 1] += src1[o - i0]
            for o in range(hi, hi0):
                dst[2 * o] += src0[o - i0]
            add_pair(hi - lo0, src0 + (lo0 - i0), src1 + (lo0 - i0), dst + 2 * lo0)
        src0 += w.seg
        src1 += w.seg


cdef void im2col_batch(const floating* x, Py_ssize_t x_stride, Py_ssize_t nb,
                       floating* col, Py_ssize_t ldcol, Py_ssize_t channels, const Geometry* g,
                       Py_ssize_t l0, Py_ssize_t l1, int num_threads) noexcept nogil:
    """Column tile of ``nb`` samples: col[c*K + t, b*w + l - l0] = x[b][c, i(l, t)], w = l1 - l0.

    Sample ``b`` starts at ``x + b * x_stride``; rows of ``col`` are ``ldcol`` apart.
    Parallel over (sample, row) pairs: every element is written by exactly one thread.
    """
    cdef Py_ssize_t rows = channels * g.k_numel, width = l1 - l0, item, b, r, j
    cdef Py_ssize_t k_last = g.kernel[g.ndim - 1]
    # neighbouring taps of a kernel row interleave with stride 2 (dilation 1): in pairs, the
    # first of a pair writes both rows
    cdef bint pairs = g.stride[g.ndim - 1] == 2 and g.dilation[g.ndim - 1] == 1
    if nb * rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * rows, num_threads=num_threads, schedule="static"):
        b = item / rows
        r = item % rows
        j = r % k_last   # tap index in the last kernel dimension
        if pairs and j % 2 == 1:
            continue
        if pairs and j + 1 < k_last:
            im2col_row_pair(x + b * x_stride + (r / g.k_numel) * g.in_numel,
                            col + r * ldcol + b * width, col + (r + 1) * ldcol + b * width, g,
                            r % g.k_numel, l0, l1)
        else:
            im2col_row(x + b * x_stride + (r / g.k_numel) * g.in_numel,
                       col + r * ldcol + b * width, g, r % g.k_numel, l0, l1)


cdef void col2im_batch(const floating* col, Py_ssize_t ldcol, floating* x, Py_ssize_t x_stride,
                       Py_ssize_t nb, Py_ssize_t channels, const Geometry* g,
                       Py_ssize_t l0, Py_ssize_t l1, int num_threads) noexcept nogil:
    """Adjoint of :func:`im2col_batch`: x[b][c] += col2im(col); parallel over (sample, channel).

    One thread adds every contribution to one channel of one sample, taps in a fixed order:
    no racing scatter-adds, the same bits for any thread count.
    """
    cdef Py_ssize_t width = l1 - l0, item, b, c, t, k_last = g.kernel[g.ndim - 1]
    # neighbouring taps of a kernel row interleave with stride 2 (dilation 1): in pairs
    cdef bint pairs = g.stride[g.ndim - 1] == 2 and g.dilation[g.ndim - 1] == 1
    if nb * channels * g.k_numel * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * channels, num_threads=num_threads, schedule="static"):
        b = item / channels
        c = item % channels
        t = 0
        while t < g.k_numel:
            if pairs and t % k_last + 1 < k_last:
                col2im_row_pair(col + (c * g.k_numel + t) * ldcol + b * width,
                                col + (c * g.k_numel + t + 1) * ldcol + b * width,
                                x + b * x_stride + c * g.in_numel, g, t, l0, l1)
                t = t + 2
            else:
                col2im_row(col + (c * g.k_numel + t) * ldcol + b * width,
                           x + b * x_stride + c * g.in_numel, g, t, l0, l1)
                t = t + 1


cdef void gather_rows(const floating* src, Py_ssize_t src_stride, Py_ssize_t src_ld,
                      Py_ssize_t nb, Py_ssize_t rows, Py_ssize_t width,
                      floating* dst, Py_ssize_t ldst, int num_threads) noexcept nogil:
    """dst[r, b*width:(b+1)*width] = src[b*src_stride + r*src_ld : ... + width] (sample blocks)."""
    cdef Py_ssize_t item, b, r
    if nb * rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * rows, num_threads=num_threads, schedule="static"):
        b = item / rows
        r = item % rows
        memcpy(dst + r * ldst + b * width, src + b * src_stride + r * src_ld,
               width * sizeof(floating))


cdef void scatter_rows(const floating* src, Py_ssize_t lsrc, Py_ssize_t nb, Py_ssize_t rows,
                       Py_ssize_t width, floating* dst, Py_ssize_t dst_stride, Py_ssize_t dst_ld,
                       int num_threads) noexcept nogil:
    """Inverse of :func:`gather_rows`: dst[b*dst_stride + r*dst_ld + j] = src[r, b*width + j]."""
    cdef Py_ssize_t item, b, r
    if nb * rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * rows, num_threads=num_threads, schedule="static"):
        b = item / rows
        r = item % rows
        memcpy(dst + b * dst_stride + r * dst_ld, src + r * lsrc + b * width,
               width * sizeof(floating))


cdef void parallel_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating* a, Py_ssize_t lda,
                        const floating* b, Py_ssize_t ldb, floating beta,
                        floating* c, Py_ssize_t ldc, int num_threads) noexcept nogil:
    """Row-major GEMM cut into shape-determined pieces along M or N, over OpenMP threads.

    The pieces (and so every BLAS call and its summation order) depend only on (m, n, k), so
    the result is bit-identical for any ``num_threads``. The reduction dimension K is never cut.
    """
    cdef bint split_m = m >= n
    cdef Py_ssize_t extent = m if split_m else n
    cdef Py_ssize_t pieces = (extent + GEMM_MIN_PIECE - 1) / GEMM_MIN_PIECE
    cdef Py_ssize_t width, p, start, count
    # A multiple of 4 pieces balances 1, 2 and 4 threads (the count must not depend on the
    # thread count, or the summation order, and so the bits, would).
    if pieces > 1 or extent >= 4 * GEMM_MIN_PIECE_FLOOR:
        pieces = (pieces + 3) / 4 * 4
    if pieces > GEMM_MAX_PIECES:
        pieces = GEMM_MAX_PIECES
    if extent < 4 * GEMM_MIN_PIECE_FLOOR or m * n * k < GEMM_PARALLEL_MIN_FLOPS:
        pieces = 1
    width = (extent + pieces - 1) / pieces
    pieces = (extent + width - 1) / width
    if pieces == 1:
        num_threads = 1
    for p in prange(pieces, num_threads=num_threads, schedule="static"):
        start = p * width
        count = extent - start if extent - start < width else width
        if split_m:
            gemm(trans_a, trans_b, <blas_int> count, <blas_int> n, <blas_int> k, alpha,
                 a + (start if trans_a else start * lda), <blas_int> lda,
                 b, <blas_int> ldb, beta, c + start * ldc, <blas_int> ldc)
        else:
            gemm(trans_a, trans_b, <blas_int> m, <blas_int> count, <blas_int> k, alpha,
                 a, <blas_int> lda, b + (start * ldb if trans_b else start), <blas_int> ldb,
                 beta, c + start, <blas_int> ldc)


# ---------------------------------------------------------------------------------- drivers
# Tiles: ``samples_per_tile`` (nb) whole samples at a time when one sample's columns are small
# (then ``tile == L``), else one sample and ``tile`` output positions at a time. The column
# matrix of a tile has nb * (l1 - l0) columns; GEMMs of several samples go through the
# gathered/scattered buffer ``ws_io``. Both buffers are sized by the Python layer.


cdef const floating* column_tile(const floating* x, Py_ssize_t c_in, const Geometry* g,
                                 Py_ssize_t n0, Py_ssize_t nbt, Py_ssize_t l0, Py_ssize_t l1,
                                 bint pointwise, floating* wcol, Py_ssize_t* ldcol,
                                 int num_threads) noexcept nogil:
    """Column matrix of a tile (rows c*K + t, nbt * (l1 - l0) columns); its row stride in ldcol.

    A 1x1 convolution of one sample uses the input itself, of several samples their gathered
    rows; anything else is im2col into ``wcol``.
    """
    cdef Py_ssize_t P = g.in_numel, ncols = nbt * (l1 - l0)
    if pointwise and nbt == 1:
        ldcol[0] = g.out_numel
        return x + n0 * c_in * P + l0
    ldcol[0] = ncols
    if pointwise:
        gather_rows(x + n0 * c_in * P + l0, c_in * P, P, nbt, c_in, l1 - l0, wcol, ncols,
                    num_threads)
    else:
        im2col_batch(x + n0 * c_in * P, c_in * P, nbt, wcol, ncols, c_in, g, l0, l1, num_threads)
    return wcol


cdef const floating* output_rows(const floating* y, Py_ssize_t c_out, Py_ssize_t L,
                                 Py_ssize_t n0, Py_ssize_t nbt, Py_ssize_t l0, Py_ssize_t l1,
                                 floating* wio, Py_ssize_t* ld, int num_threads) noexcept nogil:
    """Rows of an output-shaped array for a tile: in place for one sample, else gathered."""
    if nbt == 1:
        ld[0] = L
        return y + n0 * c_out * L + l0
    ld[0] = nbt * (l1 - l0)
    gather_rows(y + n0 * c_out * L + l0, c_out * L, L, nbt, c_out, l1 - l0, wio, ld[0],
                num_threads)
    return wio


cdef struct Tiles:
    # the tiles of a pass: samples [n0, n0 + nbt) x positions [l0, l1) of L per sample,
    # ncols = nbt * (l1 - l0) columns; every sample's positions in order, then the next samples
    Py_ssize_t batch, L, samples_per_tile, tile
    Py_ssize_t n0, nbt, l0, l1, ncols


cdef inline Tiles tiles_of(Py_ssize_t batch, Py_ssize_t L, Py_ssize_t samples_per_tile,
                           Py_ssize_t tile) noexcept nogil:
    """The tiles of ``samples_per_tile`` samples x ``tile`` positions, before the first."""
    cdef Tiles t
    t.batch, t.L, t.samples_per_tile, t.tile = batch, L, samples_per_tile, tile
    t.n0, t.nbt, t.l0, t.l1, t.ncols = 0, 0, 0, 0, 0
    return t


cdef inline bint next_tile(Tiles* t) noexcept nogil:
    """Advance to the next tile; False after the last (none when a sample has no positions)."""
    if t.L <= 0:
        return False
    if t.nbt == 0 or t.l1 >= t.L:   # the first tile, or these samples are done
        t.n0 += t.nbt
        if t.n0 >= t.batch:
            return False
        t.nbt = t.samples_per_tile if t.samples_per_tile < t.batch - t.n0 else t.batch - t.n0
        t.l0 = 0
    else:
        t.l0 = t.l1
    t.l1 = t.l0 + t.tile if t.l0 + t.tile < t.L else t.L
    t.ncols = t.nbt * (t.l1 - t.l0)
    return True


def conv_forward(const floating[::1] x, const floating[::1] weight, floating[::1] y,
                 Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                 const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                 const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                 const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                 floating[::1] ws_col, floating[::1] ws_io, Py_ssize_t samples_per_tile,
                 Py_ssize_t tile, bint pointwise, int num_threads, int gemm_threads):
    """y[n] = conv(x[n]) for every sample."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, P = g.in_numel, K = g.k_numel
    cdef Py_ssize_t ldcol, grp
    cdef Tiles t = tiles_of(batch, L, samples_per_tile, tile)
    cdef const floating* col
    cdef floating* wcol = &ws_col[0]
    cdef floating* wio = &ws_io[0]
    with nogil:
        while next_tile(&t):
            col = column_tile(&x[0], c_in, &g, t.n0, t.nbt, t.l0, t.l1, pointwise, wcol, &ldcol,
                              num_threads)
            for grp in range(groups):
                if t.nbt == 1:
                    parallel_gemm(False, False, cout_g, t.ncols, cin_g * K, <floating> 1,
                                  &weight[0] + grp * cout_g * cin_g * K, cin_g * K,
                                  col + grp * cin_g * K * ldcol, ldcol, <floating> 0,
                                  &y[0] + t.n0 * c_out * L + grp * cout_g * L + t.l0, L,
                                  gemm_threads)
                else:
                    parallel_gemm(False, False, cout_g, t.ncols, cin_g * K, <floating> 1,
                                  &weight[0] + grp * cout_g * cin_g * K, cin_g * K,
                                  col + grp * cin_g * K * ldcol, ldcol, <floating> 0,
                                  wio + grp * cout_g * t.ncols, t.ncols, gemm_threads)
            if t.nbt > 1:
                scatter_rows(wio, t.ncols, t.nbt, c_out, t.l1 - t.l0,
                             &y[0] + t.n0 * c_out * L + t.l0, c_out * L, L, num_threads)


def conv_backward_input(const floating[::1] grad_y, const floating[::1] weight,
                        floating[::1] grad_x,
                        Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                        const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                        const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                        const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                        floating[::1] ws_col, floating[::1] ws_io, Py_ssize_t samples_per_tile,
                        Py_ssize_t tile, bint pointwise, int num_threads, int gemm_threads):
    """grad_x[n] = conv^T(grad_y[n]) (col2im algorithm); grad_x must be zero on entry."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, P = g.in_numel, K = g.k_numel
    cdef Py_ssize_t ldb, grp
    cdef Tiles t = tiles_of(batch, L, samples_per_tile, tile)
    cdef const floating* b
    cdef floating* wcol = &ws_col[0]
    cdef floating* wio = &ws_io[0]
    with nogil:
        while next_tile(&t):
            b = output_rows(&grad_y[0], c_out, L, t.n0, t.nbt, t.l0, t.l1, wio, &ldb,
                            num_threads)
            if pointwise and t.nbt == 1:
                for grp in range(groups):
                    parallel_gemm(True, False, cin_g, t.ncols, cout_g, <floating> 1,
                                  &weight[0] + grp * cout_g * cin_g, cin_g,
                                  b + grp * cout_g * ldb, ldb, <floating> 0,
                                  &grad_x[0] + t.n0 * c_in * P + grp * cin_g * P + t.l0, P,
                                  gemm_threads)
            else:
                for grp in range(groups):
                    parallel_gemm(True, False, cin_g * K, t.ncols, cout_g, <floating> 1,
                                  &weight[0] + grp * cout_g * cin_g * K, cin_g * K,
                                  b + grp * cout_g * ldb, ldb, <floating> 0,
                                  wcol + grp * cin_g * K * t.ncols, t.ncols, gemm_threads)
                if pointwise:
                    scatter_rows(wcol, t.ncols, t.nbt, c_in, t.l1 - t.l0,
                                 &grad_x[0] + t.n0 * c_in * P + t.l0, c_in * P, P, num_threads)
                else:
                    col2im_batch(wcol, t.ncols, &grad_x[0] + t.n0 * c_in * P, c_in * P, t.nbt,
                                 c_in, &g, t.l0, t.l1, num_threads)


def conv_backward_weight(const floating[::1] x, const floating[::1] grad_y,
                         floating[::1] grad_weight,
                         Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                         const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                         const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                         const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                         floating[::1] ws_col, floating[::1] ws_io, Py_ssize_t samples_per_tile,
                         Py_ssize_t tile, bint pointwise, int num_threads, int gemm_threads):
    """grad_weight = sum over samples of grad_y[n] @ im2col(x[n])^T, per group (overwritten)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, P = g.in_numel, K = g.k_numel
    cdef Py_ssize_t ldcol, lda, grp
    cdef Tiles t = tiles_of(batch, L, samples_per_tile, tile)
    cdef const floating* col
    cdef const floating* a
    cdef floating* wcol = &ws_col[0]
    cdef floating* wio = &ws_io[0]
    with nogil:
        memset(&grad_weight[0], 0, grad_weight.shape[0] * sizeof(floating))
        while next_tile(&t):
            col = column_tile(&x[0], c_in, &g, t.n0, t.nbt, t.l0, t.l1, pointwise, wcol, &ldcol,
                              num_threads)
            a = output_rows(&grad_y[0], c_out, L, t.n0, t.nbt, t.l0, t.l1, wio, &lda,
                            num_threads)
            for grp in range(groups):
                parallel_gemm(False, True, cout_g, cin_g * K, t.ncols, <floating> 1,
                              a + grp * cout_g * lda, lda,
                              col + grp * cin_g * K * ldcol, ldcol, <floating> 1,
                              &grad_weight[0] + grp * cout_g * cin_g * K, cin_g * K,
                              gemm_threads)


cdef void scatter_phase_row(const floating* src, floating* dst, const Geometry* g,
                            Py_ssize_t l0, Py_ssize_t l1, const Py_ssize_t* y_size,
                            const Py_ssize_t* first, const Py_ssize_t* step) noexcept nogil:
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef int last = g.ndim - 1, d
    cdef Py_ssize_t pos = l0, seg, base, o, s = step[last]
    cdef floating* out
    unravel(g, l0, idx)
    while pos < l1:
        seg = g.out_size[last] - idx[last]
        if seg > l1 - pos:
            seg = l1 - pos
        base = 0
        for d in range(last):
            base = base * y_size[d] + first[d] + idx[d] * step[d]
        out = dst + base * y_size[last] + first[last] + idx[last] * s
        for o in range(seg):
            out[o * s] = src[o]
        src += seg
        pos += seg
        next_row(g, idx)


cdef void scatter_phase(const floating* src, Py_ssize_t lsrc, Py_ssize_t nb, Py_ssize_t rows,
                        const Geometry* g, Py_ssize_t l0, Py_ssize_t l1, floating* y,
                        Py_ssize_t y_stride, const Py_ssize_t* y_size, const Py_ssize_t* first,
                        const Py_ssize_t* step, int num_threads) noexcept nogil:
    """y[b][r, first + o * step] = src[r, b*w + l - l0] for phase positions o = unravel(l).

    Rows of one sample of ``y`` are ``prod(y_size)`` apart. The positions of different phases
    are disjoint, so writes never overlap.
    """
    cdef Py_ssize_t width = l1 - l0, item, b, r, y_numel = 1
    cdef int d
    for d in range(g.ndim):
        y_numel *= y_size[d]
    if nb * rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for item in prange(nb * rows, num_threads=num_threads, schedule="static"):
        b = item / rows
        r = item % rows
        scatter_phase_row(src + r * lsrc + b * width, y + b * y_stride + r * y_numel, g, l0, l1,
                          y_size, first, step)


def conv_transpose_phases(const floating[::1] x, const floating[::1] phase_weight,
                          floating[::1] y,
                          Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                          const Py_ssize_t[::1] x_size, const Py_ssize_t[::1] y_size,
                          const Py_ssize_t[::1] step, const Py_ssize_t[:, ::1] sub_out,
                          const Py_ssize_t[:, ::1] sub_kernel, const Py_ssize_t[:, ::1] sub_pad,
                          const Py_ssize_t[:, ::1] first, const Py_ssize_t[::1] weight_offset,
                          floating[::1] ws_col, floating[::1] ws_io, Py_ssize_t samples_per_tile,
                          Py_ssize_t tile, int num_threads, int gemm_threads):
    """Transposed convolution by stride phases (sub-pixel decomposition); y zero on entry.

    The output positions ``o = first[p] + u * step`` of phase ``p`` receive a stride-1
    correlation of ``x`` with the phase's sub-kernel: an im2col of ``x`` (geometry
    ``x_size -> sub_out[p]``, kernel ``sub_kernel[p]``, padding ``sub_pad[p]``) and one GEMM
    per group with the phase's weights (at ``weight_offset[p]``, ``(c_out/g, c_in/g * K_p)``
    per group), then a strided copy into ``y``. No scatter-add, no multiplications by
    inserted zeros. ``c_in``/``c_out`` are the transposed convolution's own channel counts.
    """
    cdef Py_ssize_t n_phases = sub_out.shape[0], ndim = x_size.shape[0]
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t P = 1, Y = 1, ph, d, grp, K, L
    cdef Tiles t
    cdef Geometry g
    cdef floating* wcol = &ws_col[0]
    cdef floating* wio = &ws_io[0]
    for d in range(ndim):
        P *= x_size[d]
        Y *= y_size[d]
    g.ndim = <int> ndim
    with nogil:
        for ph in range(n_phases):
            g.in_numel = P
            g.out_numel = 1
            g.k_numel = 1
            for d in range(ndim):
                g.in_size[d] = x_size[d]
                g.out_size[d] = sub_out[ph, d]
                g.kernel[d] = sub_kernel[ph, d]
                g.stride[d] = 1
                g.dilation[d] = 1
                g.pad[d] = sub_pad[ph, d]
                g.out_numel *= sub_out[ph, d]
                g.k_numel *= sub_kernel[ph, d]
            L = g.out_numel
            K = g.k_numel
            if L == 0 or K == 0:
                continue
            t = tiles_of(batch, L, samples_per_tile,
                         L if samples_per_tile > 1 or tile > L else tile)
            while next_tile(&t):
                im2col_batch(&x[0] + t.n0 * c_in * P, c_in * P, t.nbt, wcol, t.ncols, c_in, &g,
                             t.l0, t.l1, num_threads)
                for grp in range(groups):
                    parallel_gemm(False, False, cout_g, t.ncols, cin_g * K, <floating> 1,
                                  &phase_weight[0] + weight_offset[ph] + grp * cout_g * cin_g * K,
                                  cin_g * K, wcol + grp * cin_g * K * t.ncols, t.ncols,
                                  <floating> 0, wio + grp * cout_g * t.ncols, t.ncols,
                                  gemm_threads)
                scatter_phase(wio, t.ncols, t.nbt, c_out, &g, t.l0, t.l1,
                              &y[0] + t.n0 * c_out * Y, c_out * Y, &y_size[0], &first[ph, 0],
                              &step[0], num_threads)


cdef void store_phase_planes(const floating* za, const floating* zb, floating* dst_plane,
                             int ndim, const Py_ssize_t* z_strides, const Py_ssize_t* count,
                             Py_ssize_t count_b, const Py_ssize_t* y_size,
                             const Py_ssize_t* first, const Py_ssize_t* step) noexcept nogil:
    """Write a phase plane ``za`` (rows ``z_strides`` apart) to every ``step``-th output.

    With ``zb`` (not NULL; the last step is then 2), ``zb`` is the plane of the phase whose
    outputs sit one position after those of ``za`` in the last dimension (``count_b`` of
    them a row, ``count[ndim - 1] - 1`` or ``count[ndim - 1]``; the other dimensions as
    ``za``'s): the two are written together, interleaved (one vectorised pass,
    ``store_pair``).
    """
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef Py_ssize_t rows = 1, r, rem, zoff, ybase, u, s = step[ndim - 1], cnt = count[ndim - 1]
    cdef int d
    cdef const floating* src
    cdef floating* dst
    for d in range(ndim - 1):
        rows *= count[d]
    for r in range(rows):
        rem = r
        for d in range(ndim - 2, -1, -1):
            idx[d] = rem % count[d]
            rem = rem / count[d]
        zoff = 0
        ybase = 0
        for d in range(ndim - 1):
            zoff += idx[d] * z_strides[d]
            ybase = ybase * y_size[d] + first[d] + idx[d] * step[d]
        src = za + zoff
        dst = dst_plane + ybase * y_size[ndim - 1] + first[ndim - 1]
        if zb == NULL:
            for u in range(cnt):
                dst[u * s] = src[u]
            continue
        store_pair(count_b, src, zb + zoff, dst)
        if cnt > count_b:
            dst[2 * count_b] = src[count_b]


def conv_transpose_depthwise(const floating[::1] x, const floating[::1] phase_weight,
                             floating[::1] y, Py_ssize_t batch, Py_ssize_t channels,
                             Py_ssize_t multiplier,
                             const Py_ssize_t[::1] x_size, const Py_ssize_t[::1] y_size,
                             const Py_ssize_t[::1] step, const Py_ssize_t[:, ::1] sub_out,
                             const Py_ssize_t[:, ::1] sub_kernel, const Py_ssize_t[:, ::1] sub_pad,
                             const Py_ssize_t[:, ::1] first, const Py_ssize_t[::1] weight_offset,
                             const Py_ssize_t[::1] partner,
                             const Py_ssize_t[::1] halo, const Py_ssize_t[::1] padded_size,
                             int num_threads):
    """Depthwise transposed convolution (groups == input channels), direct, by stride phases.

    Output channel ``c * multiplier + j`` is the transposed convolution of input channel ``c``
    with kernel ``weight[c, j]``. Each input plane is copied once into a zero-padded buffer
    (``halo`` positions before, ``padded_size`` in all) laid out so that, for every phase, a
    sub-kernel tap is one flat multiply-add over the whole phase plane::

        z[u] = 0 + w[0] * xpad[u + base(phase) + offset(0)] + w[1] * ...  (u over the padded rows)

    long vectorised loops, four taps a pass (``taps`` in ``_simd.h``); the phase plane ``z``
    is then written to every ``step``-th output. Every phase table entry is live (no zero
    count or sub-kernel). ``partner[ph]`` pairs the phases of a last-dimension stride of 2:
    ``>= 0`` is the phase whose outputs follow ``ph``'s by one position (the two planes are
    stored interleaved in one pass), ``-2`` a phase stored with its partner, ``-1`` a phase
    stored alone. Each output receives its taps in a fixed order, and planes are independent
    (parallel over sample, channel, j), so the result does not depend on the thread count.
    ``y`` must be zero on entry. Each thread allocates ``prod(padded_size)`` plus one or (with
    pairs) two phase planes; the caller bounds that times ``num_threads``.
    """
    cdef Py_ssize_t n_phases = sub_out.shape[0], ndim = x_size.shape[0]
    cdef Py_ssize_t P = 1, Y = 1, E = 1, ph, d, item, n, c, j, t, rem, r, rows_x, other
    cdef Py_ssize_t strides[MAX_NDIM]  # read-only inside the parallel loop
    cdef Py_ssize_t* base = <Py_ssize_t*> malloc(max(n_phases, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* span = <Py_ssize_t*> malloc(max(n_phases, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* ks = <Py_ssize_t*> malloc(max(n_phases, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* tap_start = <Py_ssize_t*> malloc(max(n_phases, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* tap_offset
    cdef Py_ssize_t k_total = 0, span_max = 1, xoff, planes = 1
    cdef floating* xpad
    cdef floating* za
    cdef floating* zb
    cdef floating* dst
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if base == NULL or span == NULL or ks == NULL or tap_start == NULL:
        free(base); free(span); free(ks); free(tap_start)
        raise MemoryError("cannot allocate the phase table")
    for d in range(ndim):
        P *= x_size[d]
        Y *= y_size[d]
        E *= padded_size[d]
    strides[ndim - 1] = 1
    for d in range(ndim - 2, -1, -1):
        strides[d] = strides[d + 1] * padded_size[d + 1]
    # per phase: start of u = 0 in the padded plane, length of the flat loop, taps
    for ph in range(n_phases):
        base[ph] = 0
        span[ph] = 1
        ks[ph] = 1
        for d in range(ndim):
            base[ph] += (halo[d] - sub_pad[ph, d]) * strides[d]
            span[ph] += (sub_out[ph, d] - 1) * strides[d]
            ks[ph] *= sub_kernel[ph, d]
        tap_start[ph] = k_total
        k_total += ks[ph]
        if span[ph] > span_max:
            span_max = span[ph]
    tap_offset = <Py_ssize_t*> malloc(max(k_total, 1) * sizeof(Py_ssize_t))
    if tap_offset == NULL:
        free(base); free(span); free(ks); free(tap_start)
        raise MemoryError("cannot allocate the tap table")
    for ph in range(n_phases):
        for t in range(ks[ph]):
            rem = t
            tap_offset[tap_start[ph] + t] = 0
            for d in range(ndim - 1, -1, -1):
                tap_offset[tap_start[ph] + t] += (rem % sub_kernel[ph, d]) * strides[d]
                rem = rem / sub_kernel[ph, d]
    rows_x = P / x_size[ndim - 1]
    for ph in range(n_phases):
        if partner[ph] >= 0:
            planes = 2  # a second phase plane for the partner
    try:
        with nogil:
            for item in prange(batch * channels * multiplier, num_threads=num_threads,
                               schedule="static"):
                n = item / (channels * multiplier)
                c = (item / multiplier) % channels
                j = item % multiplier
                xpad = <floating*> malloc((E + planes * span_max) * sizeof(floating))
                if xpad == NULL:
                    failed_flag[0] = 1
                    continue
                za = xpad + E
                zb = za + span_max  # used (allocated) only with planes == 2
                dst = &y[0] + (n * channels * multiplier + c * multiplier + j) * Y
                # the zero-padded copy of input plane (n, c)
                memset(xpad, 0, E * sizeof(floating))
                for r in range(rows_x):
                    rem = r
                    xoff = halo[ndim - 1]
                    for d in range(ndim - 2, -1, -1):
                        xoff = xoff + (rem % x_size[d] + halo[d]) * strides[d]
                        rem = rem / x_size[d]
                    memcpy(xpad + xoff, &x[0] + (n * channels + c) * P + r * x_size[ndim - 1],
                           x_size[ndim - 1] * sizeof(floating))
                for ph in range(n_phases):
                    other = partner[ph]
                    if other == -2:
                        continue  # stored with the phase it follows
                    taps(span[ph], ks[ph],
                         &phase_weight[0] + weight_offset[ph] + (c * multiplier + j) * ks[ph],
                         tap_offset + tap_start[ph], xpad + base[ph], za)
                    if other < 0:
                        store_phase_planes(za, <floating*> NULL, dst, <int> ndim, strides,
                                           &sub_out[ph, 0], 0, &y_size[0], &first[ph, 0],
                                           &step[0])
                        continue
                    taps(span[other], ks[other],
                         &phase_weight[0] + weight_offset[other]
                         + (c * multiplier + j) * ks[other],
                         tap_offset + tap_start[other], xpad + base[other], zb)
                    store_phase_planes(za, zb, dst, <int> ndim, strides, &sub_out[ph, 0],
                                       sub_out[other, ndim - 1], &y_size[0], &first[ph, 0],
                                       &step[0])
                free(xpad)
    finally:
        free(base)
        free(span)
        free(ks)
        free(tap_start)
        free(tap_offset)
    if failed:
        raise MemoryError("cannot allocate a plane buffer of the depthwise kernel")


def depth_to_space_phases(const floating[::1] z, floating[::1] y, Py_ssize_t batch,
                          Py_ssize_t channels, Py_ssize_t y_channels, Py_ssize_t y_first_channel,
                          const Py_ssize_t[::1] z_size,
                          const Py_ssize_t[::1] y_size, const Py_ssize_t[::1] step,
                          const Py_ssize_t[:, ::1] phase_start, const Py_ssize_t[:, ::1] count,
                          const Py_ssize_t[:, ::1] first, int num_threads):
    """Write each phase's block of ``z`` to every ``step``-th position of ``y`` (a permutation).

    ``z`` is ``(batch, channels * n_phases, *z_size)`` and ``y`` ``(batch, y_channels,
    *y_size)``: channel ``c`` of phase ``p`` is ``z`` channel ``c * n_phases + p`` and goes
    to ``y`` channel ``y_first_channel + c``. Positions ``u`` of phase ``p`` with
    ``phase_start[p] <= u < phase_start[p] + count[p]`` go to
    ``y[:, y_first_channel + c, first[p] + (u - phase_start[p]) * step]``. The phases of a
    channel are adjacent planes of ``z``, read one after the other (with the phases of a
    channel far apart, the reads of a large ``z`` missed the cache: fcn32s 7.7 -> 5.6 ms).
    Phases cover disjoint outputs, so this is a parallel copy with no overlap (over sample,
    channel, phase).
    """
    cdef Py_ssize_t n_phases = phase_start.shape[0]
    cdef int ndim = <int> z_size.shape[0], d
    cdef Py_ssize_t Z = 1, Y = 1, item, n, ph, c, start
    cdef Py_ssize_t z_strides[MAX_NDIM]  # row-major strides of z_size; read-only below
    z_strides[ndim - 1] = 1
    for d in range(ndim - 2, -1, -1):
        z_strides[d] = z_strides[d + 1] * z_size[d + 1]
    for d in range(ndim):
        Z *= z_size[d]
        Y *= y_size[d]
    with nogil:
        for item in prange(batch * channels * n_phases, num_threads=num_threads,
                           schedule="static"):
            n = item / (channels * n_phases)
            c = (item / n_phases) % channels
            ph = item % n_phases
            start = 0
            for d in range(ndim):
                start = start + phase_start[ph, d] * z_strides[d]
            # the phase's block of z is a phase plane with rows z_strides apart
            store_phase_planes(&z[0] + (n * channels * n_phases + c * n_phases + ph) * Z + start,
                               <floating*> NULL,
                               &y[0] + (n * y_channels + y_first_channel + c) * Y, ndim,
                               z_strides, &count[ph, 0], 0, &y_size[0], &first[ph, 0], &step[0])


def scatter_kernel_taps(const floating[::1] weight, floating[::1] out, Py_ssize_t groups,
                        Py_ssize_t cin_g, Py_ssize_t cout_g, const Py_ssize_t[::1] tap_offset,
                        Py_ssize_t channel_step, int num_threads):
    """Rearrange a transposed convolution's weight by a table of kernel-tap positions.

    ``weight`` is ``(groups * cin_g, cout_g, K)`` (``K = len(tap_offset)`` taps a kernel) and
    ``out`` is ``(groups * cout_g, cin_g * K)``: tap ``t`` of ``weight[g * cin_g + i, j]``
    goes to ``out[g * cout_g + j, tap_offset[t] + i * channel_step]`` (the caller's table
    makes this a permutation of each row; ``fastdeconv._dispatch.subpixel_weight``). Parallel
    over output rows; a row's reads are whole kernels (contiguous) and its writes stay in the
    row (in cache), whereas a NumPy transpose of these axes reads with a stride of the stride.
    """
    cdef Py_ssize_t K = tap_offset.shape[0], item, g, j, i, t
    cdef const floating* src
    cdef floating* dst
    with nogil:
        for item in prange(groups * cout_g, num_threads=num_threads, schedule="static"):
            g = item / cout_g
            j = item % cout_g
            for i in range(cin_g):
                src = &weight[0] + ((g * cin_g + i) * cout_g + j) * K
                dst = &out[0] + item * cin_g * K + i * channel_step
                for t in range(K):
                    dst[tap_offset[t]] = src[t]


def space_to_depth_2d(const floating[::1] x, floating[::1] out, Py_ssize_t planes,
                      Py_ssize_t height, Py_ssize_t width, Py_ssize_t sy, Py_ssize_t sx,
                      Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t out_height,
                      Py_ssize_t out_width, int num_threads):
    """out[p * sy * sx + ry * sx + rx, i, j] = x[p, sy * i + ry - pad_top, sx * j + rx - pad_left]
    (0 outside ``x``) for every plane ``p`` (sample and channel) of ``x`` (``planes x height x
    width``): the space-to-depth rearrangement (PyTorch's ``pixel_unshuffle`` channel order)
    of the zero-padded input, ``out_height x out_width`` positions per output plane.
    """
    cdef Py_ssize_t item, p, ry, rx, i, j, row, j0, j1, plane_out = out_height * out_width
    cdef const floating* src
    cdef floating* dst
    if planes * sy * sx * plane_out < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    with nogil:
        for item in prange(planes * sy, num_threads=num_threads, schedule="static"):
            p = item / sy
            ry = item % sy
            for rx in range(sx):
                # the columns j with 0 <= sx * j + rx - pad_left < width: [j0, j1)
                j0 = -floor_div(rx - pad_left, sx)
                j0 = 0 if j0 < 0 else (out_width if j0 > out_width else j0)
                j1 = floor_div(width - 1 + pad_left - rx, sx) + 1
                j1 = j0 if j1 < j0 else (out_width if j1 > out_width else j1)
                for i in range(out_height):
                    dst = &out[0] + ((p * sy + ry) * sx + rx) * plane_out + i * out_width
                    row = sy * i + ry - pad_top
                    if row < 0 or row >= height:
                        memset(dst, 0, out_width * sizeof(floating))
                        continue
                    src = &x[0] + (p * height + row) * width + rx - pad_left
                    if j0 > 0:
                        memset(dst, 0, j0 * sizeof(floating))
                    for j in range(j0, j1):
                        dst[j] = src[sx * j]
                    if j1 < out_width:
                        memset(dst + j1, 0, (out_width - j1) * sizeof(floating))


# ------------------------------------------------------------- primitives, for tests/benchmarks
def im2col(const floating[::1] x, floating[::1] col, Py_ssize_t channels,
           const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
           const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
           const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
           Py_ssize_t l0, Py_ssize_t l1, int num_threads):
    """col[channels*K, l1-l0] = im2col(x[channels, *in_size]) for positions [l0, l1)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    with nogil:
        im2col_batch(&x[0], 0, 1, &col[0], l1 - l0, channels, &g, l0, l1, num_threads)


def col2im(const floating[::1] col, floating[::1] x, Py_ssize_t channels,
           const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
           const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
           const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
           Py_ssize_t l0, Py_ssize_t l1, int num_threads):
    """x[channels, *in_size] += col2im(col[channels*K, l1-l0]) for positions [l0, l1)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    with nogil:
        col2im_batch(&col[0], l1 - l0, &x[0], 0, 1, channels, &g, l0, l1, num_threads)
