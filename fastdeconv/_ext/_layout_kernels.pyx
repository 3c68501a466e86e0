# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""Layout changes between channels-first and channels-last data, in cache blocks.

* ``transpose_batched(src, dst, threads)`` writes ``dst[b, j, i] = src[b, i, j]`` for a stack
  of matrices: a channels-last batch ``(N, P, C)`` (P the positions of a sample) becomes the
  channels-first ``(N, C, P)`` that every kernel reads, or the other way round.
* ``channels_last_padded(x, out, x_spatial, extent, pad_before, threads)`` writes a
  channels-first batch ``(N, C, *x_spatial)`` into the interior of a zeroed channels-last
  ``(N, *extent, C)`` (the packed engine's weight gradient reads that).
* ``channels_first_padded(x, out, x_spatial, extent, pad_before, threads)`` writes planes
  ``(P, *x_spatial)`` into planes ``(P, *extent)``, zeros around them, in one pass over
  ``out`` (the packed engine's zero-padded copy of the input).

NumPy's strided copy walks the source with a stride of ``C`` elements for every destination
element; here 32 x 32 blocks keep both sides in L1, and each block is transposed in 8 x 8
(float32; 4 x 4 for 4-7 rows left over) or 4 x 4 (float64) register tiles with AVX shuffles
where the CPU has AVX (``fd_transpose.h``; measured on the suite's shapes: the performance
page). A copy is exact, so neither the thread count (blocks in a fixed split) nor the tiles
change a bit.
"""
from cython cimport floating
from libc.string cimport memcpy, memset
from cython.parallel cimport prange

from ._transpose cimport fd_transpose_simd, transpose

DEF BLOCK = 32
DEF SMALL_ROW_BYTES = 128   # rows shorter than this: channels_first_padded zeroes whole planes


def simd_transpose():
    """Whether the register-tile (AVX) transposition runs on this CPU."""
    return bool(fd_transpose_simd())


simd_transpose()   # the CPU check runs once here, not first inside a parallel region


def _check_shape(name, actual, expected):
    """ValueError unless ``actual == expected`` (both dtypes are one fused type already)."""
    if tuple(actual) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(actual)}")


def _spatial_sizes(x_spatial, extent, pad_before):
    """``(prod(x_spatial), prod(extent))`` after checking that the three have the same 1 to 8
    entries and the sizes are >= 0 (ValueError naming them otherwise)."""
    ndim = len(x_spatial)
    if not 1 <= ndim <= 8 or len(extent) != ndim or len(pad_before) != ndim:
        raise ValueError(f"x_spatial, extent and pad_before must have the same 1 to 8 entries, "
                         f"got {x_spatial!r}, {extent!r}, {pad_before!r}")
    if any(v < 0 for v in tuple(x_spatial) + tuple(extent)):
        raise ValueError(f"x_spatial and extent must be >= 0, got {x_spatial!r}, {extent!r}")
    positions = cells = 1
    for d in range(ndim):
        positions *= x_spatial[d]
        cells *= extent[d]
    return positions, cells


def transpose_batched(const floating[:, :, ::1] src, floating[:, :, ::1] dst, int threads,
                      bint simd=True):
    """``dst[b, j, i] = src[b, i, j]``; shapes ``(B, R, C)`` and ``(B, C, R)`` (ValueError
    otherwise). ``simd=False`` forces the plain C blocks (for tests)."""
    _check_shape("dst", (dst.shape[0], dst.shape[1], dst.shape[2]),
                 (src.shape[0], src.shape[2], src.shape[1]))
    cdef Py_ssize_t batch = src.shape[0], rows = src.shape[1], cols = src.shape[2]
    cdef Py_ssize_t row_blocks = (rows + BLOCK - 1) // BLOCK
    cdef Py_ssize_t col_blocks = (cols + BLOCK - 1) // BLOCK
    cdef Py_ssize_t per_matrix = row_blocks * col_blocks, matrix = rows * cols
    cdef Py_ssize_t block, b, i0, j0, rest
    cdef const floating* s = &src[0, 0, 0] if src.size else NULL
    cdef floating* d = &dst[0, 0, 0] if dst.size else NULL
    if matrix == 0 or batch == 0:
        return
    if batch * per_matrix < 2 or batch * matrix < 65536:
        threads = 1
    with nogil:
        for block in prange(batch * per_matrix, num_threads=threads, schedule="static"):
            b = block // per_matrix
            rest = block % per_matrix
            i0 = rest // col_blocks * BLOCK
            j0 = rest % col_blocks * BLOCK
            transpose(s + b * matrix + i0 * cols + j0, cols, d + b * matrix + j0 * rows + i0,
                       rows, min(BLOCK, rows - i0), min(BLOCK, cols - j0), simd)


def channels_last_padded(const floating[:, ::1] x, floating[:, ::1] out, x_spatial, extent,
                         pad_before, int threads, bint simd=True):
    """Channels-first ``x`` ``(N, C * prod(x_spatial))`` into the zeroed channels-last ``out``
    ``(N, prod(extent) * C)``: ``out[n, i + pad_before, c] = x[n, c, i]`` where ``i +
    pad_before`` lies in ``extent`` (a negative ``pad_before`` crops). 1 to 8 spatial
    dimensions; ValueError for sizes that do not match."""
    cdef Py_ssize_t ndim = len(x_spatial), d, r, rest, task, n, c0, length
    cdef Py_ssize_t batch = x.shape[0], channels
    cdef Py_ssize_t positions = 1, cells = 1, lead = 1
    cdef Py_ssize_t lo_src[8]
    cdef Py_ssize_t lo_dst[8]
    cdef Py_ssize_t span[8]
    cdef Py_ssize_t src_step[8]
    cdef Py_ssize_t dst_step[8]
    cdef Py_ssize_t src_off, dst_off
    positions, cells = _spatial_sizes(x_spatial, extent, pad_before)
    channels = x.shape[1] // positions if positions else 0
    if x.shape[1] != channels * positions:
        raise ValueError(f"x has {x.shape[1]} values per sample, not a multiple of "
                         f"prod(x_spatial) = {positions}")
    _check_shape("out", (out.shape[0], out.shape[1]), (batch, cells * channels))
    if batch == 0 or positions == 0 or channels == 0:
        return
    for d in range(ndim - 1, -1, -1):
        lo_src[d] = max(0, -pad_before[d])
        lo_dst[d] = max(0, pad_before[d])
        span[d] = max(0, min(x_spatial[d] - lo_src[d], extent[d] - lo_dst[d]))
        src_step[d] = 1 if d == ndim - 1 else src_step[d + 1] * x_spatial[d + 1]
        dst_step[d] = 1 if d == ndim - 1 else dst_step[d + 1] * extent[d + 1]
        if d < ndim - 1:
            lead *= span[d]
        if span[d] == 0:
            return
    length = span[ndim - 1]
    cdef const floating* px = &x[0, 0]
    cdef floating* po = &out[0, 0]
    if batch * lead * channels * length < 65536:
        threads = 1
    with nogil:
        for task in prange(batch * lead, num_threads=threads, schedule="static"):
            n = task // lead
            rest = task % lead
            src_off = lo_src[ndim - 1]
            dst_off = lo_dst[ndim - 1]
            for d in range(ndim - 2, -1, -1):
                r = rest % span[d]
                rest = rest // span[d]
                src_off = src_off + (lo_src[d] + r) * src_step[d]
                dst_off = dst_off + (lo_dst[d] + r) * dst_step[d]
            for c0 in range(0, channels, BLOCK):
                transpose(px + n * channels * positions + c0 * positions + src_off, positions,
                           po + (n * cells + dst_off) * channels + c0, channels,
                           min(BLOCK, channels - c0), length, simd)


def channels_first_padded(const floating[:, ::1] x, floating[:, ::1] out, x_spatial, extent,
                          pad_before, int threads):
    """Planes ``x`` ``(P, prod(x_spatial))`` into ``out`` ``(P, prod(extent))``: ``out[p, i +
    pad_before] = x[p, i]`` where ``i + pad_before`` lies in ``extent`` (a negative
    ``pad_before`` crops), every other cell of ``out`` zero, whatever it held. Each output
    row is written once, left to right (zeros, the copied run, zeros): one pass over ``out``
    (rows shorter than SMALL_ROW_BYTES: the plane is zeroed at once, then the runs copied)
    instead of zeroing its border and then assigning its interior. 1 to 8 spatial
    dimensions; ValueError for sizes that do not match."""
    cdef Py_ssize_t ndim = len(x_spatial), d, r, rest, plane, row, rows = 1
    cdef Py_ssize_t planes = x.shape[0], positions = 1, cells = 1
    cdef Py_ssize_t lo_src[8]
    cdef Py_ssize_t lo_dst[8]
    cdef Py_ssize_t span[8]
    cdef Py_ssize_t src_step[8]
    cdef Py_ssize_t ext[8]
    cdef Py_ssize_t src_off, width, head, length
    cdef bint inside, small
    positions, cells = _spatial_sizes(x_spatial, extent, pad_before)
    _check_shape("x", (x.shape[0], x.shape[1]), (planes, positions))
    _check_shape("out", (out.shape[0], out.shape[1]), (planes, cells))
    if planes == 0 or cells == 0:
        return
    for d in range(ndim - 1, -1, -1):
        ext[d] = extent[d]
        lo_src[d] = max(0, -pad_before[d])
        lo_dst[d] = max(0, pad_before[d])
        span[d] = max(0, min(x_spatial[d] - lo_src[d], extent[d] - lo_dst[d]))
        src_step[d] = 1 if d == ndim - 1 else src_step[d + 1] * x_spatial[d + 1]
        if d < ndim - 1:
            rows *= extent[d]
    width = extent[ndim - 1]
    small = width * sizeof(floating) < SMALL_ROW_BYTES
    head = min(lo_dst[ndim - 1], width)
    length = span[ndim - 1]
    cdef const floating* px = &x[0, 0] if x.size else NULL
    cdef floating* po = &out[0, 0]
    if planes * cells < 65536:
        threads = 1
    with nogil:
        for plane in prange(planes, num_threads=threads, schedule="static"):
            if small:   # short rows: the plane zeroed at once, then only the copies
                memset(po + plane * cells, 0, cells * sizeof(floating))
            for row in range(rows):
                rest = row
                inside = length > 0
                src_off = lo_src[ndim - 1]
                for d in range(ndim - 2, -1, -1):
                    r = rest % ext[d] - lo_dst[d]
                    rest = rest // ext[d]
                    if r < 0 or r >= span[d]:
                        inside = False
                    src_off = src_off + (lo_src[d] + r) * src_step[d]
                if not inside:
                    if not small:
                        memset(po + plane * cells + row * width, 0, width * sizeof(floating))
                    continue
                if not small:
                    memset(po + plane * cells + row * width, 0, head * sizeof(floating))
                memcpy(po + plane * cells + row * width + head,
                       px + plane * positions + src_off, length * sizeof(floating))
                if not small:
                    memset(po + plane * cells + row * width + head + length, 0,
                           (width - head - length) * sizeof(floating))
