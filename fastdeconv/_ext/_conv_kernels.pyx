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
from libc.string cimport memset, memcpy

from ._blas cimport gemm, blas_int
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
cdef Py_ssize_t GEMM_MIN_PIECE = 64
cdef Py_ssize_t GEMM_PARALLEL_MIN_FLOPS = 1 << 18


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
    lo[0] = o0 if o0 > first else first
    hi[0] = o0 + count if o0 + count < last else last
    if hi[0] < lo[0]:
        hi[0] = lo[0]


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


cdef void im2col_row(const floating* x_channel, floating* dst, const Geometry* g,
                     Py_ssize_t t, Py_ssize_t l0, Py_ssize_t l1) noexcept nogil:
    """One column row: tap t of one channel, output positions [l0, l1)."""
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef Py_ssize_t offset[MAX_NDIM]
    cdef int last = g.ndim - 1
    cdef Py_ssize_t s = g.stride[last], n_last = g.in_size[last], o_count = g.out_size[last]
    cdef Py_ssize_t pos = l0, seg, base, lo, hi, o, off
    cdef const floating* src
    tap_offsets(g, t, offset)
    unravel(g, l0, idx)
    off = offset[last]
    while pos < l1:
        seg = o_count - idx[last]
        if seg > l1 - pos:
            seg = l1 - pos
        base = outer_base(g, idx, offset)
        if base < 0:
            memset(dst, 0, seg * sizeof(floating))
        else:
            valid_range(idx[last], seg, s, off, n_last, &lo, &hi)
            for o in range(idx[last], lo):
                dst[o - idx[last]] = 0
            src = x_channel + base + off
            if s == 1:
                memcpy(dst + (lo - idx[last]), src + lo, (hi - lo) * sizeof(floating))
            else:
                for o in range(lo, hi):
                    dst[o - idx[last]] = src[o * s]
            for o in range(hi, idx[last] + seg):
                dst[o - idx[last]] = 0
        dst += seg
        pos += seg
        next_row(g, idx)


cdef void col2im_row(const floating* src, floating* x_channel, const Geometry* g,
                     Py_ssize_t t, Py_ssize_t l0, Py_ssize_t l1) noexcept nogil:
    """Adjoint of :func:`im2col_row`: add column row t of one channel into its image."""
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef Py_ssize_t offset[MAX_NDIM]
    cdef int last = g.ndim - 1
    cdef Py_ssize_t s = g.stride[last], n_last = g.in_size[last], o_count = g.out_size[last]
    cdef Py_ssize_t pos = l0, seg, base, lo, hi, o, off
    cdef floating* dst
    tap_offsets(g, t, offset)
    unravel(g, l0, idx)
    off = offset[last]
    while pos < l1:
        seg = o_count - idx[last]
        if seg > l1 - pos:
            seg = l1 - pos
        base = outer_base(g, idx, offset)
        if base >= 0:
            valid_range(idx[last], seg, s, off, n_last, &lo, &hi)
            dst = x_channel + base + off
            if s == 1:
                for o in range(lo, hi):
                    dst[o] += src[o - idx[last]]
            else:
                for o in range(lo, hi):
                    dst[o * s] += src[o - idx[last]]
        src += seg
        pos += seg
        next_row(g, idx)


cdef void im2col_tile(const floating* x, floating* col, Py_ssize_t channels, const Geometry* g,
                      Py_ssize_t l0, Py_ssize_t l1, int num_threads) noexcept nogil:
    """col[(channels*K), (l1 - l0)] = im2col of one sample x[channels, *in_size]."""
    cdef Py_ssize_t rows = channels * g.k_numel, width = l1 - l0, r
    if rows * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for r in prange(rows, num_threads=num_threads, schedule="static"):
        im2col_row(x + (r / g.k_numel) * g.in_numel, col + r * width, g,
                   r % g.k_numel, l0, l1)


cdef void col2im_tile(const floating* col, floating* x, Py_ssize_t channels, const Geometry* g,
                      Py_ssize_t l0, Py_ssize_t l1, int num_threads) noexcept nogil:
    """x[channels, *in_size] += col2im(col); parallel over channels only (deterministic)."""
    cdef Py_ssize_t width = l1 - l0, c, t
    if channels * g.k_numel * width < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    for c in prange(channels, num_threads=num_threads, schedule="static"):
        for t in range(g.k_numel):
            col2im_row(col + (c * g.k_numel + t) * width, x + c * g.in_numel, g, t, l0, l1)


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
    cdef Py_ssize_t pieces = extent / GEMM_MIN_PIECE
    cdef Py_ssize_t width, p, start, count
    if pieces > GEMM_MAX_PIECES:
        pieces = GEMM_MAX_PIECES
    if pieces < 1 or m * n * k < GEMM_PARALLEL_MIN_FLOPS:
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
def conv_forward(const floating[::1] x, const floating[::1] weight, floating[::1] y,
                 Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                 const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                 const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                 const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                 floating[::1] workspace, Py_ssize_t tile, bint pointwise,
                 int num_threads):
    """y[n] = conv(x[n]) for every sample; workspace holds c_in*K*tile elements."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, K = g.k_numel, n, l0, l1, grp
    cdef const floating* xn
    cdef const floating* col
    cdef floating* yn
    cdef floating* ws = &workspace[0] if workspace.shape[0] > 0 else NULL
    with nogil:
        for n in range(batch):
            xn = &x[0] + n * c_in * g.in_numel
            yn = &y[0] + n * c_out * L
            l0 = 0
            while l0 < L:
                l1 = L if pointwise else (l0 + tile if l0 + tile < L else L)
                if pointwise:
                    col = xn
                else:
                    im2col_tile(xn, ws, c_in, &g, l0, l1, num_threads)
                    col = ws
                for grp in range(groups):
                    parallel_gemm(False, False, cout_g, (l1 - l0),
                         (cin_g * K), <floating> 1,
                         &weight[0] + grp * cout_g * cin_g * K, (cin_g * K),
                         col + grp * cin_g * K * (l1 - l0), (l1 - l0),
                         <floating> 0, yn + grp * cout_g * L + l0, L, num_threads)
                l0 = l1


def conv_backward_input(const floating[::1] grad_y, const floating[::1] weight,
                        floating[::1] grad_x,
                        Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                        const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                        const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                        const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                        floating[::1] workspace, Py_ssize_t tile, bint pointwise,
                 int num_threads):
    """grad_x[n] = conv^T(grad_y[n]) (= conv_transpose); grad_x must be zero on entry."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, K = g.k_numel, n, l0, l1, grp
    cdef const floating* gyn
    cdef floating* gxn
    cdef floating* ws = &workspace[0] if workspace.shape[0] > 0 else NULL
    with nogil:
        for n in range(batch):
            gyn = &grad_y[0] + n * c_out * L
            gxn = &grad_x[0] + n * c_in * g.in_numel
            if pointwise:
                for grp in range(groups):
                    parallel_gemm(True, False, cin_g, L, cout_g,
                         <floating> 1, &weight[0] + grp * cout_g * cin_g, cin_g,
                         gyn + grp * cout_g * L, L,
                         <floating> 0, gxn + grp * cin_g * L, L, num_threads)
                continue
            l0 = 0
            while l0 < L:
                l1 = l0 + tile if l0 + tile < L else L
                for grp in range(groups):
                    parallel_gemm(True, False, (cin_g * K), (l1 - l0),
                         cout_g, <floating> 1,
                         &weight[0] + grp * cout_g * cin_g * K, (cin_g * K),
                         gyn + grp * cout_g * L + l0, L,
                         <floating> 0, ws + grp * cin_g * K * (l1 - l0), (l1 - l0), num_threads)
                col2im_tile(ws, gxn, c_in, &g, l0, l1, num_threads)
                l0 = l1


def conv_backward_weight(const floating[::1] x, const floating[::1] grad_y,
                         floating[::1] grad_weight,
                         Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                         const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                         const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                         const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                         floating[::1] workspace, Py_ssize_t tile, bint pointwise,
                 int num_threads):
    """grad_weight = sum_n grad_y[n] @ im2col(x[n])^T per group; overwritten, not added to."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups
    cdef Py_ssize_t L = g.out_numel, K = g.k_numel, n, l0, l1, grp
    cdef const floating* xn
    cdef const floating* gyn
    cdef const floating* col
    cdef Py_ssize_t ldcol
    cdef floating* ws = &workspace[0] if workspace.shape[0] > 0 else NULL
    cdef floating beta
    with nogil:
        memset(&grad_weight[0], 0, grad_weight.shape[0] * sizeof(floating))
        for n in range(batch):
            xn = &x[0] + n * c_in * g.in_numel
            gyn = &grad_y[0] + n * c_out * L
            l0 = 0
            while l0 < L:
                l1 = L if pointwise else (l0 + tile if l0 + tile < L else L)
                if pointwise:
                    col = xn
                else:
                    im2col_tile(xn, ws, c_in, &g, l0, l1, num_threads)
                    col = ws
                for grp in range(groups):
                    parallel_gemm(False, True, cout_g, (cin_g * K),
                         (l1 - l0), <floating> 1,
                         gyn + grp * cout_g * L + l0, L,
                         col + grp * cin_g * K * (l1 - l0), (l1 - l0),
                         <floating> 1, &grad_weight[0] + grp * cout_g * cin_g * K,
                         (cin_g * K), num_threads)
                l0 = l1


# ------------------------------------------------------------- primitives, for tests/benchmarks
def im2col(const floating[::1] x, floating[::1] col, Py_ssize_t channels,
           const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
           const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
           const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
           Py_ssize_t l0, Py_ssize_t l1, int num_threads):
    """col[channels*K, l1-l0] = im2col(x[channels, *in_size]) for positions [l0, l1)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    with nogil:
        im2col_tile(&x[0], &col[0], channels, &g, l0, l1, num_threads)


def col2im(const floating[::1] col, floating[::1] x, Py_ssize_t channels,
           const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
           const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
           const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
           Py_ssize_t l0, Py_ssize_t l1, int num_threads):
    """x[channels, *in_size] += col2im(col[channels*K, l1-l0]) for positions [l0, l1)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    with nogil:
        col2im_tile(&col[0], &x[0], channels, &g, l0, l1, num_threads)
