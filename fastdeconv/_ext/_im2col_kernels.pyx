# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""im2col family: im2col / col2im for N spatial dimensions and the three convolution drivers.

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
``_gemm.parallel_gemm`` (shape-determined pieces). Weight gradients accumulate tiles and
samples in a fixed order through GEMM with ``beta = 1``.

Everything here trusts its arguments: the Python layer (``fastdeconv._algorithms``) validated the
geometry, made arrays C-contiguous and of one dtype, sized the workspace, and checked that BLAS
dimensions fit in ``blas_int``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset, memcpy

from ._gemm cimport PARALLEL_MIN_ELEMENTS, gather_rows, parallel_gemm, scatter_rows
from ._index cimport (Geometry, RowWalk, Tiles, next_tile, tiles_of, valid_range, walk_next,
                      walk_start)
from ._simd cimport add, add_pair, split_pair


cdef Geometry make_geometry(const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                            const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                            const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad):
    """The geometry of the kernel arguments (``fastdeconv._geometry``'s as_kernel_args)."""
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


cdef struct ConvPass:
    # what the three drivers share: geometry, channels (per group too) and threads
    Geometry g
    Py_ssize_t c_in, c_out, groups, cin_g, cout_g
    bint pointwise
    int num_threads, gemm_threads


cdef void forward_tiles(const ConvPass* p, Tiles* t, const floating* x, const floating* weight,
                        floating* y, floating* wcol, floating* wio) noexcept nogil:
    """y[n] = conv(x[n]) for every sample of the tiles."""
    cdef Py_ssize_t L = p.g.out_numel, rows = p.cin_g * p.g.k_numel, ldcol, ldy, grp
    cdef const floating* col
    cdef floating* dst
    while next_tile(t):
        col = column_tile(x, p.c_in, &p.g, t.n0, t.nbt, t.l0, t.l1, p.pointwise, wcol, &ldcol,
                          p.num_threads)
        if t.nbt == 1:   # into y itself, else into the gathered rows of the samples
            dst, ldy = y + t.n0 * p.c_out * L + t.l0, L
        else:
            dst, ldy = wio, t.ncols
        for grp in range(p.groups):
            parallel_gemm(False, False, p.cout_g, t.ncols, rows, <floating> 1,
                          weight + grp * p.cout_g * rows, rows, col + grp * rows * ldcol, ldcol,
                          <floating> 0, dst + grp * p.cout_g * ldy, ldy, p.gemm_threads)
        if t.nbt > 1:
            scatter_rows(wio, t.ncols, t.nbt, p.c_out, t.l1 - t.l0, y + t.n0 * p.c_out * L + t.l0,
                         p.c_out * L, L, p.num_threads)


cdef enum:
    PER_SAMPLE_MIN_WIDTH = 256
    PER_SAMPLE_MAX_ROWS = 48


cdef void backward_input_tiles(const ConvPass* p, Tiles* t, const floating* grad_y,
                               const floating* weight, floating* grad_x, floating* wcol,
                               floating* wio) noexcept nogil:
    """grad_x[n] = conv^T(grad_y[n]) (col2im) for every sample of the tiles; grad_x zero."""
    cdef Py_ssize_t L = p.g.out_numel, P = p.g.in_numel, rows = p.cin_g * p.g.k_numel
    cdef Py_ssize_t ldb, ldc, grp
    cdef const floating* b
    cdef floating* dst
    cdef Py_ssize_t s, width, item
    # A tile of several samples gathers their grad_y rows into wio for one GEMM, except when
    # each sample has PER_SAMPLE_MIN_WIDTH positions or more and the GEMM at most
    # PER_SAMPLE_MAX_ROWS rows (few output channels times taps): then one GEMM per sample
    # reads grad_y in place, the samples over the threads. The choice depends on the shape
    # only, so the bits do not depend on the thread count (each GEMM's pieces are cut by its
    # shape); against the gathered GEMM the results measured identical here, which BLAS does
    # not promise (its pieces are narrower). The gather was 13 % of dcgan_rgb's time.
    # Measured: dcgan_rgb 0.96x (1 thread), 0.93x (2), 0.85x (float64); with 256 rows or
    # more the per-sample GEMMs, repacking the weight each time, were 6-33 % slower. Beyond
    # 2 threads a tile of fewer samples than threads leaves threads idle (not measured).
    while next_tile(t):
        width = t.l1 - t.l0
        if p.pointwise and t.nbt == 1:   # 1x1 (rows == cin_g): straight into grad_x
            dst, ldc = grad_x + t.n0 * p.c_in * P + t.l0, P
        else:
            dst, ldc = wcol, t.ncols
        if t.nbt > 1 and width >= PER_SAMPLE_MIN_WIDTH and rows <= PER_SAMPLE_MAX_ROWS:
            for item in prange(t.nbt * p.groups, num_threads=p.gemm_threads, schedule="static"):
                s = item // p.groups
                grp = item % p.groups
                parallel_gemm(True, False, rows, width, p.cout_g, <floating> 1,
                              weight + grp * p.cout_g * rows, rows,
                              grad_y + (t.n0 + s) * p.c_out * L + t.l0 + grp * p.cout_g * L, L,
                              <floating> 0, dst + s * width + grp * rows * ldc, ldc, 1)
        else:
          b = output_rows(grad_y, p.c_out, L, t.n0, t.nbt, t.l0, t.l1, wio, &ldb, p.num_threads)
          for grp in range(p.groups):
            parallel_gemm(True, False, rows, t.ncols, p.cout_g, <floating> 1,
                          weight + grp * p.cout_g * rows, rows, b + grp * p.cout_g * ldb, ldb,
                          <floating> 0, dst + grp * rows * ldc, ldc, p.gemm_threads)
        if p.pointwise and t.nbt > 1:
            scatter_rows(wcol, t.ncols, t.nbt, p.c_in, t.l1 - t.l0,
                         grad_x + t.n0 * p.c_in * P + t.l0, p.c_in * P, P, p.num_threads)
        elif not p.pointwise:
            col2im_batch(wcol, t.ncols, grad_x + t.n0 * p.c_in * P, p.c_in * P, t.nbt, p.c_in,
                         &p.g, t.l0, t.l1, p.num_threads)


cdef void backward_weight_tiles(const ConvPass* p, Tiles* t, const floating* x,
                                const floating* grad_y, floating* grad_weight, floating* wcol,
                                floating* wio) noexcept nogil:
    """grad_weight += grad_y[n] @ im2col(x[n])^T per group, over the samples of the tiles."""
    cdef Py_ssize_t L = p.g.out_numel, rows = p.cin_g * p.g.k_numel, ldcol, lda, grp
    cdef const floating* col
    cdef const floating* a
    while next_tile(t):
        col = column_tile(x, p.c_in, &p.g, t.n0, t.nbt, t.l0, t.l1, p.pointwise, wcol, &ldcol,
                          p.num_threads)
        a = output_rows(grad_y, p.c_out, L, t.n0, t.nbt, t.l0, t.l1, wio, &lda, p.num_threads)
        for grp in range(p.groups):
            parallel_gemm(False, True, p.cout_g, rows, t.ncols, <floating> 1,
                          a + grp * p.cout_g * lda, lda, col + grp * rows * ldcol, ldcol,
                          <floating> 1, grad_weight + grp * p.cout_g * rows, rows, p.gemm_threads)


cdef enum:
    FORWARD = 0
    BACKWARD_INPUT = 1
    BACKWARD_WEIGHT = 2


def run_conv_pass(int which, const floating[::1] first, const floating[::1] second,
                  floating[::1] out,
                  Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                  const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                  const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                  const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                  floating[::1] ws_col, floating[::1] ws_io, Py_ssize_t samples_per_tile,
                  Py_ssize_t tile, bint pointwise, int num_threads, int gemm_threads):
    """One pass (``which``: 0 forward, 1 input gradient, 2 weight gradient) over every sample.

    ``first, second, out`` are ``x, weight, y`` (forward), ``grad_y, weight, grad_x`` (input
    gradient; ``grad_x`` zero on entry) or ``x, grad_y, grad_weight`` (weight gradient,
    overwritten). Tiles: ``samples_per_tile`` whole samples at a time when one sample's
    columns are small (then ``tile`` covers a sample), else one sample and ``tile`` output
    positions at a time; ``ws_col`` holds a tile's columns, ``ws_io`` its gathered output rows.
    """
    cdef ConvPass p
    cdef Tiles t
    p.g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    p.c_in, p.c_out, p.groups = c_in, c_out, groups
    p.cin_g, p.cout_g = c_in / groups, c_out / groups
    p.pointwise, p.num_threads, p.gemm_threads = pointwise, num_threads, gemm_threads
    t = tiles_of(batch, p.g.out_numel, samples_per_tile, tile)
    with nogil:
        if which == FORWARD:
            forward_tiles(&p, &t, &first[0], &second[0], &out[0], &ws_col[0], &ws_io[0])
        elif which == BACKWARD_INPUT:
            backward_input_tiles(&p, &t, &first[0], &second[0], &out[0], &ws_col[0], &ws_io[0])
        else:
            memset(&out[0], 0, out.shape[0] * sizeof(floating))
            backward_weight_tiles(&p, &t, &first[0], &second[0], &out[0], &ws_col[0],
                                  &ws_io[0])


def conv_forward(x, weight, y, *pass_arguments):
    """y[n] = conv(x[n]) for every sample; the other arguments as :func:`run_conv_pass`'s."""
    run_conv_pass(FORWARD, x, weight, y, *pass_arguments)


def conv_backward_input(grad_y, weight, grad_x, *pass_arguments):
    """grad_x[n] = conv^T(grad_y[n]) (col2im algorithm); grad_x must be zero on entry."""
    run_conv_pass(BACKWARD_INPUT, grad_y, weight, grad_x, *pass_arguments)


def conv_backward_weight(x, grad_y, grad_weight, *pass_arguments):
    """grad_weight = sum over samples of grad_y[n] @ im2col(x[n])^T, per group (overwritten)."""
    run_conv_pass(BACKWARD_WEIGHT, x, grad_y, grad_weight, *pass_arguments)


# ------------------------------------------------------------- primitives, for tests/benchmarks
def run_columns(bint backward, const floating[::1] src, floating[::1] dst, Py_ssize_t channels,
                const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                const Py_ssize_t[::1] kernel, const Py_ssize_t[::1] stride,
                const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                Py_ssize_t l0, Py_ssize_t l1, int num_threads):
    """im2col of one sample's ``src`` into the columns ``dst``, or (``backward``) col2im of the
    columns ``src`` added into ``dst``; output positions [l0, l1)."""
    cdef Geometry g = make_geometry(in_size, out_size, kernel, stride, dilation, pad)
    with nogil:
        if backward:
            col2im_batch(&src[0], l1 - l0, &dst[0], 0, 1, channels, &g, l0, l1, num_threads)
        else:
            im2col_batch(&src[0], 0, 1, &dst[0], l1 - l0, channels, &g, l0, l1, num_threads)


def im2col(x, col, *geometry):
    """col[channels*K, l1-l0] = im2col(x[channels, *in_size]) for positions [l0, l1); the
    other arguments (channels, geometry, l0, l1, num_threads) as :func:`run_columns`'s."""
    run_columns(False, x, col, *geometry)


def col2im(col, x, *geometry):
    """x[channels, *in_size] += col2im(col[channels*K, l1-l0]) for positions [l0, l1)."""
    run_columns(True, col, x, *geometry)
