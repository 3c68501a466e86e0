# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""Winograd F(m x m, r x r) forward convolution, stride 1 (Lavin & Gray 2015); r = 3 or 2.

The output is cut into ``m x m`` tiles; tile ``(ty, tx)`` reads an ``alpha x alpha`` input
tile (``alpha = m + r - 1``) and::

    Y_tile = A^T [ sum_c U[:, :, k, c] * (B^T d_c B) ] A          U = G g G^T (per k, c)

so for each of the ``alpha^2`` transform elements ``e`` the sum over input channels is one
GEMM ``M[e] (C_out x T) = U[e] (C_out x C_in) @ V[e] (C_in x T)`` over ``T`` tiles at once.
The output grid may sit in ``y`` with an offset and a step (one stride phase of a
transposed convolution, whose sub-kernels are 2x2 for kernel 4 and stride 2).

Dilation ``(dy, dx)`` is handled without copies: a convolution with dilation ``d`` and
stride 1 is ``d^2`` independent dense convolutions of the polyphase sub-images
``x[..., py::dy, px::dx]`` that write ``y[..., py::dy, px::dx]``; the tiles of every phase
simply read and write with step ``d``.

Tiles are numbered ``t = ((n * dy + py) * dx + px) * th * tw + ty * tw + tx`` over samples
``n``, phases ``(py, px)`` and tile rows and columns; a call works on chunks of ``T``
consecutive tiles (the workspace ``V``, ``M`` holds one chunk), in three steps:

1. input transform, parallel over (input channel, block of ``SB`` tiles): gather the input
   tiles of the block into ``D[i][j][t]`` (tile index innermost; zeros outside the input),
   then ``V[e][c][t] = (B^T D B)[e][t]`` with vectorised loops over ``t`` (``_winograd.h``);
2. ``alpha^2 * groups`` GEMMs, parallel over (element, group), one single-threaded BLAS call
   each (``fastdeconv._blas_threads`` holds BLAS to one thread);
3. output transform, parallel over (output channel, block): ``A^T M A``, scattered into
   ``y`` (tiles that overhang the output are clipped).

Every output element is computed by one thread in a fixed order, and the pieces (blocks,
GEMMs) depend only on the shape: the result is bit-identical for any thread count.

The weight gradient (:func:`conv_backward_weight_winograd`, :func:`winograd_weight_grad`)
is the adjoint with respect to ``U``: step 1 as above, the output gradient's tiles
transformed by ``A gy A^T`` (gathered like input tiles, zeros past the output), and per
element and group one GEMM ``dU[e] += W[e] @ V[e]^T`` reducing over the chunk's tiles;
finally ``grad_w = G^T dU G`` in float64.

Everything here trusts its arguments (the Python layer, ``fastdeconv._algorithms``, validated
the geometry and sized the workspaces).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from ._blas cimport gemm, blas_int
from ._gemm cimport PARALLEL_MIN_ELEMENTS, gemm_pieces
from ._index cimport ceil_div

cdef extern from "_winograd.h" nogil:
    void fd_small_mm_f(Py_ssize_t rows, Py_ssize_t inner, Py_ssize_t n, const float* a,
                       const float* inp, Py_ssize_t ldin, float* out, Py_ssize_t ldout)
    void fd_small_mm_d(Py_ssize_t rows, Py_ssize_t inner, Py_ssize_t n, const double* a,
                       const double* inp, Py_ssize_t ldin, double* out, Py_ssize_t ldout)
    void fd_f_deinterleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const float* src,
                           float* dst, Py_ssize_t ld)
    void fd_d_deinterleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const double* src,
                           double* dst, Py_ssize_t ld)
    void fd_f_short_copy(Py_ssize_t n, const float* src, float* dst)
    void fd_d_short_copy(Py_ssize_t n, const double* src, double* dst)
    int fd_f_nonfinite(Py_ssize_t n, const float* x)
    int fd_d_nonfinite(Py_ssize_t n, const double* x)
    void fd_f_interleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const float* src,
                         Py_ssize_t ld, float* dst)
    void fd_d_interleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const double* src,
                         Py_ssize_t ld, double* dst)

cdef enum:
    SB = 64          # tiles per block of the transforms (the vectorised dimension)
    ROW = SB         # row stride of the scratch buffers of a block
    MAX_ALPHA = 8    # input tile size: m + r - 1 <= 8
    MAX_R = 3        # kernel size

# Passes with fewer transformed elements than PARALLEL_MIN_ELEMENTS (alpha^2 x channels x
# tiles) run their transforms on one thread, and their GEMMs too below the GEMMs'
# parallel_min_flops multiply-adds (_gemm.pxd): starting threads would cost more than it saves.


cdef inline void small_mm(Py_ssize_t rows, Py_ssize_t inner, Py_ssize_t n, const floating* a,
                          const floating* inp, Py_ssize_t ldin, floating* out,
                          Py_ssize_t ldout) noexcept nogil:
    """out[r, :n] = sum_j a[r, j] * inp[j, :n] (rows ldin / ldout apart); see _winograd.h."""
    if floating is float:
        fd_small_mm_f(rows, inner, n, a, inp, ldin, out, ldout)
    else:
        fd_small_mm_d(rows, inner, n, a, inp, ldin, out, ldout)


cdef inline void deinterleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const floating* src,
                              floating* dst, Py_ssize_t ld) noexcept nogil:
    """dst[r * ld + q] = src[(q * m + r) * d] for r < m, q < n; see _winograd.h."""
    if floating is float:
        fd_f_deinterleave(n, m, d, src, dst, ld)
    else:
        fd_d_deinterleave(n, m, d, src, dst, ld)


cdef inline void interleave(Py_ssize_t n, Py_ssize_t m, Py_ssize_t d, const floating* src,
                            Py_ssize_t ld, floating* dst) noexcept nogil:
    """dst[(q * m + r) * d] = src[r * ld + q] for r < m, q < n; see _winograd.h."""
    if floating is float:
        fd_f_interleave(n, m, d, src, ld, dst)
    else:
        fd_d_interleave(n, m, d, src, ld, dst)


cdef inline void short_copy(Py_ssize_t n, const floating* src, floating* dst) noexcept nogil:
    """dst[:n] = src[:n] for n <= 64 (no call to memcpy: these rows are short)."""
    if floating is float:
        fd_f_short_copy(n, src, dst)
    else:
        fd_d_short_copy(n, src, dst)


cdef inline int nonfinite(Py_ssize_t n, const floating* x) noexcept nogil:
    """1 if any of x[:n] is NaN or infinite, else 0."""
    if floating is float:
        return fd_f_nonfinite(n, x)
    else:
        return fd_d_nonfinite(n, x)


cdef struct Tiling:
    Py_ssize_t m, alpha
    Py_ssize_t dy, dx            # dilation: number of phases per dimension
    Py_ssize_t H, W, OH, OW      # input and output sizes
    Py_ssize_t pt, pl            # padding before (top, left)
    Py_ssize_t th, tw            # tiles per phase (rows, columns)
    Py_ssize_t oy0, ox0, osy, osx  # output (r, c) of the grid is y[oy0 + r * osy, ox0 + c * osx]
    Py_ssize_t YH, YW            # size of a plane of y


cdef inline void clip_columns(Py_ssize_t first, Py_ssize_t step, Py_ssize_t last,
                              Py_ssize_t size, Py_ssize_t tx0, Py_ssize_t tx1, Py_ssize_t* lo,
                              Py_ssize_t* hi) noexcept nogil:
    """The tile columns tx in [tx0, tx1) whose positions first + tx * step + [0, last] all
    lie in [0, size): [lo, hi)."""
    cdef Py_ssize_t a = ceil_div(-first, step), b = ceil_div(size - last - first, step)
    lo[0] = tx0 if tx0 > a else (a if a < tx1 else tx1)
    hi[0] = tx1 if tx1 < b else (b if b > lo[0] else lo[0])


cdef inline Py_ssize_t next_segment(const Tiling* s, Py_ssize_t t, Py_ssize_t t_end,
                                    Py_ssize_t* n, Py_ssize_t* py, Py_ssize_t* px,
                                    Py_ssize_t* ty, Py_ssize_t* tx0) noexcept nogil:
    """Sample, phase, tile row and first column of tile ``t``; returns the end of its run of
    consecutive tiles in one tile row (at most ``t_end``)."""
    cdef Py_ssize_t per_phase = s.th * s.tw, phase, r
    cdef Py_ssize_t per_sample = s.dy * s.dx * per_phase
    n[0] = t / per_sample
    r = t % per_sample
    phase = r / per_phase
    py[0] = phase / s.dx
    px[0] = phase % s.dx
    ty[0] = (r % per_phase) / s.tw
    tx0[0] = r % s.tw
    r = t + s.tw - tx0[0]
    return r if r < t_end else t_end


cdef inline void edge_columns(const floating* src, floating* dst, Py_ssize_t col0,
                              const Tiling* s, Py_ssize_t k0, Py_ssize_t k1) noexcept nogil:
    """Columns j < m of the tiles k0 <= tx < k1 of one input row, checking every position."""
    cdef Py_ssize_t k, j, off
    for k in range(k0, k1):
        for j in range(s.m):
            off = (k * s.m + j) * s.dx
            dst[j * ROW + k] = src[off] if 0 <= col0 + off < s.W else 0


cdef void gather_tiles(const floating* x, Py_ssize_t c_in, Py_ssize_t c, const Tiling* s,
                       Py_ssize_t t0, Py_ssize_t t1, floating* d) noexcept nogil:
    """d[(i * alpha + j) * ROW + t - t0] = input (i, j) of tile t, channel c (0 outside).

    Input column j of tile tx is column ``j + m * tx`` of the phase's sub-image, so columns
    j < m are a de-interleaving of the input row (vectorised) and columns j >= m repeat
    column j - m of the next tile.
    """
    cdef Py_ssize_t a = s.alpha, m = s.m, dx = s.dx, step = s.m * s.dx
    cdef Py_ssize_t t = t0, t_seg, n, py, px, ty, tx0, tx1, i, j, lo, hi, row, col0, col
    cdef const floating* src
    cdef floating* dst
    while t < t1:
        t_seg = next_segment(s, t, t1, &n, &py, &px, &ty, &tx0)
        tx1 = tx0 + t_seg - t
        col0 = px - s.pl
        for i in range(a):
            row = py - s.pt + (ty * m + i) * s.dy
            dst = d + i * a * ROW + (t - t0) - tx0   # row j at dst + j * ROW, indexed by tx
            if row < 0 or row >= s.H:
                for j in range(a):
                    memset(dst + j * ROW + tx0, 0, (tx1 - tx0) * sizeof(floating))
                continue
            src = x + (n * c_in + c) * s.H * s.W + row * s.W + col0
            clip_columns(col0, step, (m - 1) * dx, s.W, tx0, tx1, &lo, &hi)
            deinterleave(hi - lo, m, dx, src + lo * step, dst + lo, ROW)
            edge_columns(src, dst, col0, s, tx0, lo)   # tiles at the left edge
            edge_columns(src, dst, col0, s, hi, tx1)   # and at the right edge
            for j in range(m, a):
                short_copy(tx1 - tx0 - 1, dst + (j - m) * ROW + tx0 + 1, dst + j * ROW + tx0)
                col = col0 + tx1 * step + (j - m) * dx
                dst[j * ROW + tx1 - 1] = src[tx1 * step + (j - m) * dx] if 0 <= col < s.W else 0
        t = t_seg


cdef void scatter_tiles(const floating* o, floating* y, Py_ssize_t c_out, Py_ssize_t k,
                        const Tiling* s, Py_ssize_t t0, Py_ssize_t t1) noexcept nogil:
    """y[n, k, output (i, j) of tile t] = o[(i * m + j) * ROW + t - t0], clipped to the output
    grid, which sits in y with offset (oy0, ox0) and step (osy, osx) (an interleaving of the
    tiles' rows, vectorised for unit steps)."""
    cdef Py_ssize_t m = s.m, dx = s.dx, step = s.m * s.dx
    cdef Py_ssize_t t = t0, t_seg, n, py, px, ty, tx0, tx1, i, j, u, lo, hi, row
    cdef const floating* src
    cdef floating* dst
    while t < t1:
        t_seg = next_segment(s, t, t1, &n, &py, &px, &ty, &tx0)
        tx1 = tx0 + t_seg - t
        for i in range(m):
            row = py + (ty * m + i) * s.dy
            if row >= s.OH:
                break
            src = o + i * m * ROW + (t - t0) - tx0
            dst = y + (n * c_out + k) * s.YH * s.YW + (s.oy0 + row * s.osy) * s.YW + s.ox0
            clip_columns(px, step, (m - 1) * dx, s.OW, tx0, tx1, &lo, &hi)
            interleave(hi - tx0, m, dx * s.osx, src + tx0, ROW, dst + (px + tx0 * step) * s.osx)
            for u in range(hi, tx1):   # tiles that overhang the output
                for j in range(m):
                    if px + u * step + j * dx < s.OW:
                        dst[(px + u * step + j * dx) * s.osx] = src[j * ROW + u]
        t = t_seg


cdef void transform_tiles(const floating* x, Py_ssize_t channels, Py_ssize_t c,
                          const Tiling* s, Py_ssize_t q, const floating* mat, Py_ssize_t t0,
                          Py_ssize_t t1, floating* v, Py_ssize_t ldv) noexcept nogil:
    """v[e * channels * ldv + c * ldv + t - t0] = (T d T^T)[e] for the tiles t in [t0, t1) of
    channel c, ``d`` the tile (``p x p``, ``p = s.alpha``, zeros outside ``x``) and ``T`` =
    ``mat`` (``q x p``): the input transform (``T = B^T``) and the adjoint of the output
    transform (``T = A``, on the output grid's tiles)."""
    cdef floating d[MAX_ALPHA * MAX_ALPHA * ROW]
    cdef floating h[MAX_ALPHA * MAX_ALPHA * ROW]
    cdef Py_ssize_t p = s.alpha, nt = t1 - t0, i, j
    gather_tiles(x, channels, c, s, t0, t1, d)
    for i in range(p):   # rows of the tile: h[i][j'] = sum_j T[j', j] d[i][j]
        small_mm(q, p, nt, mat, d + i * p * ROW, ROW, h + i * q * ROW, ROW)
    for j in range(q):   # columns: v[i'][j'] = sum_i T[i', i] h[i][j']
        small_mm(q, p, nt, mat, h + j * ROW, q * ROW, v + (j * channels + c) * ldv,
                 q * channels * ldv)


cdef void set_tiling(Tiling* s, Py_ssize_t m, Py_ssize_t alpha, const Py_ssize_t* dilation,
                     const Py_ssize_t* in_size, const Py_ssize_t* out_size,
                     const Py_ssize_t* pad) noexcept nogil:
    """The tiling of a stride-1 convolution with ``m x m`` output tiles over its output grid
    (per dilation phase); the output sits at the origin of planes of its own size."""
    s.m, s.alpha = m, alpha
    s.dy, s.dx = dilation[0], dilation[1]
    s.H, s.W = in_size[0], in_size[1]
    s.OH, s.OW = out_size[0], out_size[1]
    s.pt, s.pl = pad[0], pad[1]
    s.YH, s.YW = s.OH, s.OW
    s.oy0, s.ox0 = 0, 0
    s.osy, s.osx = 1, 1
    s.th = ceil_div(ceil_div(s.OH, s.dy), s.m)
    s.tw = ceil_div(ceil_div(s.OW, s.dx), s.m)


cdef void input_transform_chunk(const floating* x, Py_ssize_t c_in, const Tiling* s,
                                const floating* bt, Py_ssize_t t0, Py_ssize_t t1,
                                floating* v, Py_ssize_t chunk, int num_threads) noexcept nogil:
    """V = B^T d B of tiles [t0, t1) for every input channel, blocks of SB tiles spread over
    the threads when the chunk is large enough (the same for every pass that needs V)."""
    cdef Py_ssize_t nt = t1 - t0, blocks = (nt + SB - 1) / SB, item, c, b
    cdef int threads = (num_threads if s.alpha * s.alpha * c_in * nt >= PARALLEL_MIN_ELEMENTS
                        else 1)
    for item in prange(c_in * blocks, num_threads=threads, schedule="static"):
        c = item / blocks
        b = item % blocks
        transform_tiles(x, c_in, c, s, s.alpha, bt, t0 + b * SB,
                        t0 + b * SB + SB if b * SB + SB < nt else t1, v + b * SB, chunk)


cdef struct Chunks:
    # the passes over the tiles of a call, ``chunk`` tiles at a time, in order
    Py_ssize_t total, chunk, transform_per_tile, flops_per_tile
    int num_threads, gemm_threads
    Py_ssize_t t0, t1, nt, blocks  # the current chunk: tiles [t0, t1), blocks of SB tiles
    int threads_out, threads_gemm  # threads of its tile transforms and of its GEMMs


cdef inline Chunks chunks_of(const Tiling* s, Py_ssize_t batch, Py_ssize_t chunk,
                             Py_ssize_t c_out, Py_ssize_t weights, int num_threads,
                             int gemm_threads) noexcept nogil:
    """The chunks of a call over ``batch`` samples, before the first; ``weights`` is the
    number of weights (``c_out * cin_g``) of the GEMMs of one transform element."""
    cdef Chunks c
    c.total = batch * s.dy * s.dx * s.th * s.tw
    c.chunk = chunk
    c.transform_per_tile = s.alpha * s.alpha * c_out
    c.flops_per_tile = s.alpha * s.alpha * weights
    c.num_threads, c.gemm_threads = num_threads, gemm_threads
    c.t0, c.t1, c.nt, c.blocks, c.threads_out, c.threads_gemm = 0, 0, 0, 0, 1, 1
    return c


cdef inline bint next_chunk(Chunks* c) noexcept nogil:
    """Advance to the next chunk, False after the last; its size and how many threads its
    tile transforms (``transform_per_tile`` elements a tile) and GEMMs (``flops_per_tile``
    multiply-adds a tile) are worth (the same shape-determined pieces whatever the count)."""
    c.t0 = c.t1
    if c.t0 >= c.total:
        return False
    c.t1 = c.t0 + c.chunk if c.t0 + c.chunk < c.total else c.total
    c.nt = c.t1 - c.t0
    c.blocks = (c.nt + SB - 1) / SB
    c.threads_out = c.num_threads if c.transform_per_tile * c.nt >= PARALLEL_MIN_ELEMENTS else 1
    c.threads_gemm = (c.gemm_threads if c.flops_per_tile * c.nt >= gemm_pieces().parallel_min_flops
                      else 1)
    return True


cdef inline Py_ssize_t block_end(const Chunks* c, Py_ssize_t b) noexcept nogil:
    """The end of block ``b`` (SB tiles from ``t0 + b * SB``) of the chunk."""
    return c.t0 + b * SB + SB if b * SB + SB < c.nt else c.t1


cdef int output_transform(const floating* mat, Py_ssize_t c_out, Py_ssize_t k,
                          const Tiling* s, const floating* at, Py_ssize_t t0, Py_ssize_t t1,
                          Py_ssize_t ldm, floating* y) noexcept nogil:
    """y tiles of output channel k = A^T M A for the tiles t in [t0, t1) (M rows ldm apart).

    Returns 1 if any of these outputs is NaN or infinite, else 0.
    """
    cdef floating g[MAX_ALPHA * MAX_ALPHA * ROW]
    cdef floating o[MAX_ALPHA * MAX_ALPHA * ROW]
    cdef Py_ssize_t a = s.alpha, m = s.m, nt = t1 - t0, i, j
    cdef int bad = 0
    for j in range(a):   # columns: g[i][j'] = sum_i' A^T[i, i'] M[i'][j']
        small_mm(m, a, nt, at, mat + (j * c_out + k) * ldm, a * c_out * ldm, g + j * ROW, a * ROW)
    for i in range(m):   # rows: o[i][j] = sum_j' A^T[j, j'] g[i][j']
        small_mm(m, a, nt, at, g + i * a * ROW, ROW, o + i * m * ROW, ROW)
    for i in range(m * m):
        bad |= nonfinite(nt, o + i * ROW)
    scatter_tiles(o, y, c_out, k, s, t0, t1)
    return bad


def conv_forward_winograd(const floating[::1] x, const floating[::1] u, floating[::1] y,
                          Py_ssize_t batch, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t groups,
                          const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                          const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                          const Py_ssize_t[::1] y_size, const Py_ssize_t[::1] out_first,
                          const Py_ssize_t[::1] out_step,
                          const floating[:, ::1] at, const floating[:, ::1] bt,
                          floating[::1] ws_v, floating[::1] ws_m, Py_ssize_t chunk,
                          int num_threads, int gemm_threads):
    """y = conv(x, w) (r x r kernel, stride 1) with the transformed weight ``u`` (see
    :func:`winograd_weight`); ``at`` is A^T (m x alpha), ``bt`` B^T (alpha x alpha),
    ``r = alpha - m + 1``.

    The output grid (``out_size``) sits in ``y`` (planes of ``y_size``) at ``out_first +
    position * out_step``: ``(0, 0)`` and ``(1, 1)`` for a convolution, the positions of one
    stride phase for a phase of a transposed convolution (other positions are not written).

    ``ws_v`` and ``ws_m`` hold ``alpha^2 * c_in * chunk`` and ``alpha^2 * c_out * chunk``
    elements; ``chunk`` is the number of tiles per pass of the three steps.

    Returns the number of (output channel, block) pieces with a NaN or infinite output: the
    transforms mix the inputs of a tile, so a non-finite input (or an overflow inside the
    transforms) spreads over its tile instead of reaching exactly the outputs whose sum
    contains it; the caller then recomputes the convolution directly.
    """
    cdef Tiling s
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups, a2
    cdef Py_ssize_t item, c, b, e, grp
    cdef Chunks ck
    cdef Py_ssize_t bad = 0
    cdef floating* v = &ws_v[0]
    cdef floating* mat = &ws_m[0]
    set_tiling(&s, at.shape[0], at.shape[1], &dilation[0], &in_size[0], &out_size[0], &pad[0])
    s.YH, s.YW = y_size[0], y_size[1]
    s.oy0, s.ox0 = out_first[0], out_first[1]
    s.osy, s.osx = out_step[0], out_step[1]
    a2 = s.alpha * s.alpha
    ck = chunks_of(&s, batch, chunk, c_out, c_out * cin_g, num_threads, gemm_threads)
    with nogil:
        while next_chunk(&ck):
            input_transform_chunk(&x[0], c_in, &s, &bt[0, 0], ck.t0, ck.t1, v, chunk, num_threads)
            for item in prange(a2 * groups, num_threads=ck.threads_gemm, schedule="static"):
                e = item / groups
                grp = item % groups
                gemm(False, False, <blas_int> cout_g, <blas_int> ck.nt, <blas_int> cin_g,
                     <floating> 1, &u[0] + (e * c_out + grp * cout_g) * cin_g, <blas_int> cin_g,
                     v + (e * c_in + grp * cin_g) * chunk, <blas_int> chunk, <floating> 0,
                     mat + (e * c_out + grp * cout_g) * chunk, <blas_int> chunk)
            for item in prange(c_out * ck.blocks, num_threads=ck.threads_out, schedule="static"):
                c = item / ck.blocks
                b = item % ck.blocks
                bad += output_transform(mat + b * SB, c_out, c, &s, &at[0, 0], ck.t0 + b * SB,
                                        block_end(&ck, b), chunk, &y[0])
    return bad


cdef void transform_weights(const floating* w, floating* u, Py_ssize_t plane,
                            const double* g, Py_ssize_t alpha, Py_ssize_t r, Py_ssize_t k0,
                            Py_ssize_t k1) noexcept nogil:
    """u[e * plane + k] = (G w[k] G^T)[e] for the r x r kernels k0 <= k < k1, in float64 (the
    kernel index innermost, vectorised), rounded once; G is alpha x r."""
    cdef double wt[MAX_R * MAX_R * SB]
    cdef double tmp[MAX_ALPHA * MAX_R * SB]
    cdef double ud[MAX_ALPHA * MAX_ALPHA * SB]
    cdef Py_ssize_t nk = k1 - k0, k, i, p, e
    for k in range(nk):
        for i in range(r * r):
            wt[i * SB + k] = w[(k0 + k) * r * r + i]
    for i in range(r):      # columns of the kernel: tmp[p][i] = sum_q G[p, q] w[q][i]
        small_mm(alpha, r, nk, g, &wt[0] + i * SB, r * SB, &tmp[0] + i * SB, r * SB)
    for p in range(alpha):  # rows: ud[p][q] = sum_i G[q, i] tmp[p][i]
        small_mm(alpha, r, nk, g, &tmp[0] + p * r * SB, SB, &ud[0] + p * alpha * SB, SB)
    for e in range(alpha * alpha):
        for k in range(nk):
            u[e * plane + k0 + k] = <floating> ud[e * SB + k]


def winograd_weight(const floating[::1] weight, floating[::1] u, Py_ssize_t c_out,
                    Py_ssize_t cin_g, const double[:, ::1] g, int num_threads):
    """u[e, k, c] = (G w[k, c] G^T)[e], computed in float64; ``g`` is G (alpha x r).

    ``weight`` is the forward weight ``(c_out, cin_g, r, r)``; ``u`` is
    ``(alpha^2, c_out, cin_g)``: one ``c_out x cin_g`` GEMM operand per element ``e``.
    """
    cdef Py_ssize_t plane = c_out * cin_g, blocks = (plane + SB - 1) / SB, b
    if plane * g.shape[0] * g.shape[0] < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    with nogil:
        for b in prange(blocks, num_threads=num_threads, schedule="static"):
            transform_weights(&weight[0], &u[0], plane, &g[0, 0], g.shape[0], g.shape[1],
                              b * SB, b * SB + SB if b * SB + SB < plane else plane)


# ------------------------------------------------------------------- weight gradient
def conv_backward_weight_winograd(const floating[::1] x, const floating[::1] gy,
                                  floating[::1] du, Py_ssize_t batch, Py_ssize_t c_in,
                                  Py_ssize_t c_out, Py_ssize_t groups,
                                  const Py_ssize_t[::1] in_size, const Py_ssize_t[::1] out_size,
                                  const Py_ssize_t[::1] dilation, const Py_ssize_t[::1] pad,
                                  const floating[:, ::1] a_mat, const floating[:, ::1] bt,
                                  floating[::1] ws_v, floating[::1] ws_m, Py_ssize_t chunk,
                                  int num_threads, int gemm_threads, bint accumulate=False):
    """du[e, k, c] = sum over tiles of (A gy A^T)[e] (B^T d B)[e]: the gradient of the
    transformed weight U of :func:`conv_forward_winograd` (``a_mat`` is A = (A^T)^T, alpha x
    m; ``bt`` B^T). :func:`winograd_weight_grad` turns it into the weight gradient.

    Per chunk of tiles: the input transform V (as in the forward pass), the transform of the
    gradient's tiles into ``ws_m`` (alpha^2 x c_out x chunk), then per element and group one
    GEMM ``du[e] (cout_g x cin_g) += W[e] (cout_g x T) @ V[e]^T`` with ``beta = 1`` after
    the first chunk (from the start with ``accumulate``: du += the sum, for a batch cut into
    parts by the caller). Every ``du[e]`` block is accumulated by one thread, chunk after chunk:
    the result is bit-identical for any thread count.
    """
    cdef Tiling s, so
    cdef Py_ssize_t cin_g = c_in / groups, cout_g = c_out / groups, a2
    cdef Py_ssize_t item, c, b, e, grp
    cdef Chunks ck
    cdef floating beta
    cdef floating* v = &ws_v[0]
    cdef floating* w = &ws_m[0]
    set_tiling(&s, a_mat.shape[1], a_mat.shape[0], &dilation[0], &in_size[0], &out_size[0],
               &pad[0])
    so = s
    so.alpha = s.m
    so.H, so.W = s.OH, s.OW
    so.pt, so.pl = 0, 0
    a2 = s.alpha * s.alpha
    ck = chunks_of(&s, batch, chunk, c_out, c_out * cin_g, num_threads, gemm_threads)
    with nogil:
        while next_chunk(&ck):
            beta = 0 if ck.t0 == 0 and not accumulate else 1
            input_transform_chunk(&x[0], c_in, &s, &bt[0, 0], ck.t0, ck.t1, v, chunk, num_threads)
            for item in prange(c_out * ck.blocks, num_threads=ck.threads_out, schedule="static"):
                c = item / ck.blocks
                b = item % ck.blocks
                # the adjoint of the output transform: A gy A^T of the output's m x m tiles
                transform_tiles(&gy[0], c_out, c, &so, s.alpha, &a_mat[0, 0], ck.t0 + b * SB,
                                block_end(&ck, b), w + b * SB, chunk)
            for item in prange(a2 * groups, num_threads=ck.threads_gemm, schedule="static"):
                e = item / groups
                grp = item % groups
                gemm(False, True, <blas_int> cout_g, <blas_int> cin_g, <blas_int> ck.nt,
                     <floating> 1, w + (e * c_out + grp * cout_g) * chunk, <blas_int> chunk,
                     v + (e * c_in + grp * cin_g) * chunk, <blas_int> chunk, beta,
                     &du[0] + (e * c_out + grp * cout_g) * cin_g, <blas_int> cin_g)


cdef int transform_weight_grad(const floating* du, floating* w, Py_ssize_t plane,
                               const double* gt, Py_ssize_t alpha, Py_ssize_t r, Py_ssize_t k0,
                               Py_ssize_t k1) noexcept nogil:
    """w[k] = G^T du[:, k] G (r x r, from the alpha x alpha du[e * plane + k]) for the kernels
    k0 <= k < k1, in float64 (kernel index innermost), rounded once; ``gt`` is G^T (r x
    alpha). Returns 1 if any du or w element of these kernels is NaN or infinite."""
    cdef double ud[MAX_ALPHA * MAX_ALPHA * SB]
    cdef double tmp[MAX_ALPHA * MAX_R * SB]
    cdef double out[MAX_R * MAX_R * SB]
    cdef Py_ssize_t nk = k1 - k0, k, i, p, e
    cdef int bad = 0
    for e in range(alpha * alpha):
        bad |= nonfinite(nk, du + e * plane + k0)
        for k in range(nk):
            ud[e * SB + k] = du[e * plane + k0 + k]
    for p in range(alpha):  # rows: tmp[p][j] = sum_q G^T[j, q] du[p][q]
        small_mm(r, alpha, nk, gt, &ud[0] + p * alpha * SB, SB, &tmp[0] + p * r * SB, SB)
    for i in range(r):      # columns: out[j][i] = sum_p G^T[j, p] tmp[p][i]
        small_mm(r, alpha, nk, gt, &tmp[0] + i * SB, r * SB, &out[0] + i * SB, r * SB)
    for k in range(nk):
        for i in range(r * r):
            w[(k0 + k) * r * r + i] = <floating> out[i * SB + k]
    bad |= nonfinite(nk * r * r, w + k0 * r * r)
    return bad


def winograd_weight_grad(const floating[::1] du, floating[::1] grad_w, Py_ssize_t c_out,
                         Py_ssize_t cin_g, const double[:, ::1] gt, int num_threads):
    """grad_w[k, c] = G^T du[:, k, c] G, computed in float64; ``gt`` is G^T (r x alpha).

    ``du`` is ``(alpha^2, c_out, cin_g)`` (see :func:`conv_backward_weight_winograd`),
    ``grad_w`` the weight gradient ``(c_out, cin_g, r, r)``. Returns the number of blocks of
    kernels with a NaN or infinite ``du`` or ``grad_w`` element.
    """
    cdef Py_ssize_t plane = c_out * cin_g, blocks = (plane + SB - 1) / SB, b
    cdef Py_ssize_t bad = 0
    if plane * gt.shape[1] * gt.shape[1] < PARALLEL_MIN_ELEMENTS:
        num_threads = 1
    with nogil:
        for b in prange(blocks, num_threads=num_threads, schedule="static"):
            bad += transform_weight_grad(&du[0], &grad_w[0], plane, &gt[0, 0], gt.shape[1],
                                         gt.shape[0], b * SB,
                                         b * SB + SB if b * SB + SB < plane else plane)
    return bad
