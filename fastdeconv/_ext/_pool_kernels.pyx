# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""Max pooling with switches, max unpooling, and their adjoints (PyTorch's conventions).

Every array is a stack of ``planes`` planes of 1 to 3 spatial dimensions, passed here as 3-D
by prepending dimensions of size one (kernel 1, stride 1, no padding), with ``channels``
interleaved values per position: channels-first data is ``N * C`` planes of one value,
channels-last data ``(N, *spatial, C)`` is ``N`` planes of ``C`` values (value ``c`` of
position ``p`` at ``p * C + c``). Every channel of such a plane sees its window's taps, or
its scatter's additions, in the same order as a channels-first plane, so both layouts give the
same bits.
Indices are flat spatial positions within a plane (PyTorch's ``return_indices`` convention,
per channel), int64.

max_pool_forward
    For each window, the first maximum in scan order wins; a NaN wins over every number and a
    later NaN over an earlier one (as PyTorch's CPU kernel: ``val > max || isnan(val)``).
    Padding is implicit ``-inf``: only positions inside the input are scanned.
max_pool_backward
    ``grad_x[plane, ind[o]] += grad_y[plane, o]``, adding in output order.
max_unpool_forward
    ``y[plane, ind[i]] = x[plane, i]`` in input order: when indices repeat, the last write wins
    (as PyTorch's CPU kernel); ``y`` must be zero on entry.
max_unpool_backward
    The exact adjoint of the above: ``grad_x[plane, i] = grad_y[plane, ind[i]]`` if ``i`` is
    the last input with that index, else 0.

The window of output ``o`` along a dimension covers taps ``o * stride - pad + t * dilation``;
the Python layer passes, per dimension, the first tap inside the input and the end of the
window (clipped to the input), so the loops only visit positions inside the input.

Parallelism is over planes only; a thread handles whole planes in a fixed order, so results
are bit-identical for any thread count. Indices are checked here (one branch per element):
a kernel returns ``-1`` when all were in range, else the flat position (in the whole index
array) of one that was not, and leaves the offending element unwritten.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

cdef extern from *:
    """
    /* One step of a window's running maximum, without branches: random data would
       mispredict a branch on the comparison about half of the time. Bit masks select the
       indices; the float select is a MAXSS/MAXSD. NaNs are tracked apart (the last wins). */
    #define FASTDECONV_MAX_STEP(T, NAME)                                                   \
    static inline void NAME(T val, Py_ssize_t idx, T* m, Py_ssize_t* best,                \
                            Py_ssize_t* nan_at) {                                          \
        Py_ssize_t take = -(Py_ssize_t)(val > *m);                                         \
        Py_ssize_t isnan = -(Py_ssize_t)(val != val);                                      \
        *best = (*best & ~take) | (idx & take);                                            \
        *nan_at = (*nan_at & ~isnan) | (idx & isnan);                                      \
        *m = val > *m ? val : *m;                                                          \
    }
    FASTDECONV_MAX_STEP(float, fastdeconv_max_step_f)
    FASTDECONV_MAX_STEP(double, fastdeconv_max_step_d)
    """
    void fastdeconv_max_step_f(float val, Py_ssize_t idx, float* m, Py_ssize_t* best,
                               Py_ssize_t* nan_at) noexcept nogil
    void fastdeconv_max_step_d(double val, Py_ssize_t idx, double* m, Py_ssize_t* best,
                               Py_ssize_t* nan_at) noexcept nogil


cdef struct Window:
    Py_ssize_t in_size[3]
    Py_ssize_t out_size[3]
    Py_ssize_t kernel[3]
    Py_ssize_t stride[3]
    Py_ssize_t pad[3]
    Py_ssize_t dilation[3]


cdef Window make_window(const Py_ssize_t[::1] geometry):
    """geometry = in_size[3], out_size[3], kernel[3], stride[3], pad[3], dilation[3]."""
    cdef Window w
    cdef int d
    for d in range(3):
        w.in_size[d] = geometry[d]
        w.out_size[d] = geometry[3 + d]
        w.kernel[d] = geometry[6 + d]
        w.stride[d] = geometry[9 + d]
        w.pad[d] = geometry[12 + d]
        w.dilation[d] = geometry[15 + d]
    return w


cdef inline int plane_threads(Py_ssize_t planes, int num_threads) noexcept nogil:
    """Threads for ``planes`` planes: no more than there are planes, at least one."""
    if planes < num_threads:
        return <int> planes if planes > 0 else 1
    return num_threads


cdef void pool_plane(const floating* x, floating* y, int64_t* ind, const Window* w,
                     const Py_ssize_t* starts, const Py_ssize_t* stops) noexcept nogil:
    """Max pooling of one plane; ``starts``/``stops`` hold every window's first in-range tap
    and end per dimension (``out_size[0] + out_size[1] + out_size[2]`` entries each)."""
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, i, j, k, idx, best, o = 0
    cdef Py_ssize_t H = w.in_size[1], W = w.in_size[2]
    cdef Py_ssize_t OD = w.out_size[0], OH = w.out_size[1], OW = w.out_size[2]
    cdef Py_ssize_t dd = w.dilation[0], dh = w.dilation[1], dw = w.dilation[2]
    cdef const Py_ssize_t* ws = starts + OD + OH
    cdef const Py_ssize_t* we = stops + OD + OH
    cdef const floating* row
    cdef floating maxval
    cdef Py_ssize_t nan_at
    for od in range(OD):
        d0 = starts[od]
        d1 = stops[od]
        for oh in range(OH):
            h0 = starts[OD + oh]
            h1 = stops[OD + oh]
            for ow in range(OW):
                w0 = ws[ow]
                w1 = we[ow]
                maxval = -INFINITY
                best = (d0 * H + h0) * W + w0
                nan_at = -1
                i = d0
                while i < d1:
                    j = h0
                    while j < h1:
                        idx = (i * H + j) * W
                        row = x + idx
                        k = w0
                        while k < w1:
                            if floating is float:
                                fastdeconv_max_step_f(row[k], idx + k, &maxval, &best, &nan_at)
                            else:
                                fastdeconv_max_step_d(row[k], idx + k, &maxval, &best, &nan_at)
                            k = k + dw
                        j = j + dh
                    i = i + dd
                if nan_at >= 0:
                    best = nan_at
                    maxval = x[nan_at]
                y[o] = maxval
                ind[o] = best
                o = o + 1


cdef void pool_plane_channels_last(const floating* x, floating* y, int64_t* ind,
                                   const Window* w, const Py_ssize_t* starts,
                                   const Py_ssize_t* stops, Py_ssize_t channels) noexcept nogil:
    """:func:`pool_plane` of a plane of ``channels`` interleaved values per position: each
    window's taps in the same scan order, each tap a contiguous row of ``channels`` values
    compared with the running maxima, kept in ``y`` and ``ind``. A NaN is taken when met, so
    the last NaN of a window wins (the result of pool_plane's ``nan_at``)."""
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, i, j, k, idx, c, first
    cdef Py_ssize_t H = w.in_size[1], W = w.in_size[2]
    cdef Py_ssize_t OD = w.out_size[0], OH = w.out_size[1], OW = w.out_size[2]
    cdef Py_ssize_t dd = w.dilation[0], dh = w.dilation[1], dw = w.dilation[2]
    cdef const Py_ssize_t* ws = starts + OD + OH
    cdef const Py_ssize_t* we = stops + OD + OH
    cdef const floating* tap
    cdef floating* ym = y
    cdef int64_t* im = ind
    cdef floating v
    for od in range(OD):
        d0 = starts[od]
        d1 = stops[od]
        for oh in range(OH):
            h0 = starts[OD + oh]
            h1 = stops[OD + oh]
            for ow in range(OW):
                w0 = ws[ow]
                w1 = we[ow]
                first = (d0 * H + h0) * W + w0
                for c in range(channels):
                    ym[c] = -INFINITY
                    im[c] = first
                i = d0
                while i < d1:
                    j = h0
                    while j < h1:
                        k = w0
                        while k < w1:
                            idx = (i * H + j) * W + k
                            tap = x + idx * channels
                            for c in range(channels):
                                v = tap[c]
                                if v > ym[c] or v != v:
                                    ym[c] = v
                                    im[c] = idx
                            k = k + dw
                        j = j + dh
                    i = i + dd
                ym = ym + channels
                im = im + channels


def max_pool_forward(const floating[::1] x, floating[::1] y, int64_t[::1] indices,
                     Py_ssize_t planes, Py_ssize_t channels, const Py_ssize_t[::1] geometry,
                     const Py_ssize_t[::1] starts, const Py_ssize_t[::1] stops,
                     int num_threads):
    """y, indices = max pooling of every plane of ``channels`` interleaved values per
    position (geometry: see :func:`make_window`)."""
    cdef Window w = make_window(geometry)
    cdef Py_ssize_t in_numel = w.in_size[0] * w.in_size[1] * w.in_size[2] * channels
    cdef Py_ssize_t out_numel = w.out_size[0] * w.out_size[1] * w.out_size[2] * channels
    cdef Py_ssize_t plane
    num_threads = plane_threads(planes, num_threads)
    with nogil:
        for plane in prange(planes, num_threads=num_threads, schedule="static"):
            if channels == 1:
                pool_plane(&x[0] + plane * in_numel, &y[0] + plane * out_numel,
                           &indices[0] + plane * out_numel, &w, &starts[0], &stops[0])
            else:
                pool_plane_channels_last(&x[0] + plane * in_numel, &y[0] + plane * out_numel,
                                         &indices[0] + plane * out_numel, &w, &starts[0],
                                         &stops[0], channels)


cdef inline void record(Py_ssize_t* bad, Py_ssize_t position) noexcept nogil:
    if bad[0] < 0:
        bad[0] = position


cdef inline void scatter_plane(const floating* src, const int64_t* ind, floating* dst, Py_ssize_t n,
                        Py_ssize_t bound, Py_ssize_t channels, bint accumulate, Py_ssize_t* bad,
                        Py_ssize_t first) noexcept nogil:
    """dst[ind[i, c], c] = src[i, c] (``accumulate``: +=) for positions i < n in order, and
    each channel c < ``channels``; an index outside [0, bound) is skipped and its position
    ``first + i * channels + c`` recorded in ``bad``."""
    cdef Py_ssize_t i, c, e
    cdef int64_t k
    for i in range(n):
        for c in range(channels):
            e = i * channels + c
            k = ind[e]
            if not 0 <= k < bound:
                record(bad, first + e)
            elif accumulate:
                dst[k * channels + c] = dst[k * channels + c] + src[e]
            else:
                dst[k * channels + c] = src[e]


def scatter_planes(bint accumulate, const floating[::1] src, const int64_t[::1] indices,
                   floating[::1] dst, Py_ssize_t planes, Py_ssize_t channels, Py_ssize_t n_src,
                   Py_ssize_t n_dst, Py_ssize_t[::1] bad, int num_threads):
    """dst[plane, indices[plane, i, c], c] = (``accumulate``: +=) src[plane, i, c] in order,
    for every plane (``n_src`` and ``n_dst`` positions of ``channels`` values a plane);
    ``dst`` zero on entry.

    ``bad[plane]`` is set to the flat position of an out-of-range index of that plane (else
    left at -1).
    """
    cdef Py_ssize_t plane
    num_threads = plane_threads(planes, num_threads)
    with nogil:
        for plane in prange(planes, num_threads=num_threads, schedule="static"):
            # the literal 1 lets the compiler specialize the inlined loop for channels-first
            if channels == 1:
                scatter_plane(&src[0] + plane * n_src, &indices[0] + plane * n_src,
                              &dst[0] + plane * n_dst, n_src, n_dst, 1, accumulate,
                              &bad[plane], plane * n_src)
            else:
                scatter_plane(&src[0] + plane * n_src * channels,
                              &indices[0] + plane * n_src * channels,
                              &dst[0] + plane * n_dst * channels, n_src, n_dst, channels,
                              accumulate, &bad[plane], plane * n_src * channels)


def max_pool_backward(grad_y, indices, grad_x, planes, channels, in_numel, out_numel, bad,
                      num_threads):
    """grad_x[plane, indices[o]] += grad_y[plane, o]; grad_x must be zero on entry (``bad``:
    see :func:`scatter_planes`)."""
    scatter_planes(True, grad_y, indices, grad_x, planes, channels, out_numel, in_numel, bad,
                   num_threads)


def max_unpool_forward(x, indices, y, planes, channels, in_numel, out_numel, bad,
                       num_threads):
    """y[plane, indices[i]] = x[plane, i] in input order (last write wins); y zero on entry."""
    scatter_planes(False, x, indices, y, planes, channels, in_numel, out_numel, bad,
                   num_threads)


cdef inline void unpool_backward_plane(const floating* g, const int64_t* ip, floating* gx,
                                      unsigned char* seen, Py_ssize_t in_numel,
                                      Py_ssize_t out_numel, Py_ssize_t channels,
                                      Py_ssize_t* bad, Py_ssize_t first) noexcept nogil:
    """One plane of :func:`max_unpool_backward`; an out-of-range index's position ``first +
    i`` is recorded in ``bad``."""
    cdef Py_ssize_t p, c, i, slot
    cdef int64_t k
    cdef unsigned char dup = 0
    for p in range(in_numel):
        for c in range(channels):
            i = p * channels + c
            k = ip[i]
            if 0 <= k < out_numel:
                slot = k * channels + c
                dup = dup | seen[slot]
                seen[slot] = 1
                gx[i] = g[slot]
            else:
                gx[i] = 0
                record(bad, first + i)
    if dup:
        # Backward sweep: marks 1 -> 2 when met from the end; a position whose index is
        # already 2 lost to a later one.
        for p in range(in_numel - 1, -1, -1):
            for c in range(channels):
                i = p * channels + c
                k = ip[i]
                if 0 <= k < out_numel:
                    slot = k * channels + c
                    if seen[slot] == 2:
                        gx[i] = 0
                    seen[slot] = 2
    memset(seen, 0, out_numel * channels)    # leave the marks zero for the next plane


def max_unpool_backward(const floating[::1] grad_y, const int64_t[::1] indices,
                        floating[::1] grad_x, Py_ssize_t planes, Py_ssize_t channels,
                        Py_ssize_t in_numel, Py_ssize_t out_numel, unsigned char[::1] marks,
                        Py_ssize_t[::1] bad, int num_threads):
    """grad_x[plane, i, c] = grad_y[plane, indices[plane, i, c], c] for the last position i
    of each index of channel c, else 0 (``in_numel`` and ``out_numel`` positions a plane).

    A forward sweep gathers and detects repeated indices with ``marks`` (scratch of
    ``out_numel * channels`` bytes per thread, zero on entry and left zero: ``marks[k *
    channels + c] = 1`` once output ``k`` of channel ``c`` is met in the current plane); only
    a plane with repeats gets a second, backward sweep that zeroes all but the last position
    of each index.
    """
    cdef Py_ssize_t plane
    cdef Py_ssize_t in_values = in_numel * channels, out_values = out_numel * channels
    cdef int tid
    num_threads = plane_threads(planes, num_threads)
    with nogil:
        for plane in prange(planes, num_threads=num_threads, schedule="static"):
            tid = threadid()
            # the literal 1 lets the compiler specialize the inlined loops for channels-first
            if channels == 1:
                unpool_backward_plane(&grad_y[0] + plane * out_values,
                                      &indices[0] + plane * in_values,
                                      &grad_x[0] + plane * in_values,
                                      &marks[0] + tid * out_values, in_numel, out_numel, 1,
                                      &bad[plane], plane * in_values)
            else:
                unpool_backward_plane(&grad_y[0] + plane * out_values,
                                      &indices[0] + plane * in_values,
                                      &grad_x[0] + plane * in_values,
                                      &marks[0] + tid * out_values, in_numel, out_numel,
                                      channels, &bad[plane], plane * in_values)
