# cython: language_level=3
"""Index arithmetic shared by the im2col and stride-phase kernels (inline, written once).

``Geometry`` describes one convolution's positions; a ``RowWalk`` visits the output positions
``[l0, l1)`` of one kernel tap as segments cut at the ends of output rows; ``Tiles`` walks the
tiles of a pass (samples x output positions) in a fixed order.
"""

cdef enum:
    MAX_NDIM = 8     # spatial dimensions a kernel handles


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


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Floor division for b > 0 and any a (C division truncates toward zero)."""
    if a >= 0:
        return a / b
    return -((-a + b - 1) / b)


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Ceiling division for b > 0 and any a (C division truncates toward zero)."""
    if a >= 0:
        return (a + b - 1) / b
    return -((-a) / b)


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
