# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""Separable resampling: the forward and adjoint kernels of :func:`fastdeconv.resize`.

A resize is a sequence of *passes*, one per resized spatial dimension. A pass views the current
plane as ``(outer, n_in, inner)`` (``inner`` = product of the sizes after the dimension) and
applies a 1-D plan in CSR form (``offsets``, ``indices``, ``weights``)::

    forward:  dst[r, j, i]  = sum_k  weights[k] * src[r, indices[k], i]    k in [offsets[j], offsets[j+1])
    adjoint:  dst[r, indices[k], i] += weights[k] * src[r, j, i]           (dst zeroed first)

With ``inner == 1`` (the last dimension) a pass is a gather along a row; otherwise it combines
whole contiguous rows of ``inner`` values (vectorizable). A *selection* pass (one tap of weight
one per output: the nearest modes) copies without multiplying.

Parallelism and determinism: with at least as many planes (``N * C``) as threads, each thread
runs every pass of whole planes (intermediate results in per-thread scratch buffers). With
fewer planes, the planes run one after the other and each *pass* is split into independent
parts: forward, rows of the output (``inner == 1``) or output rows of ``inner`` values;
adjoint, rows (``inner == 1``) or fixed chunks of :data:`CHUNK` columns of ``inner``, so that
no two threads add into one value. Every value is accumulated in the same order however the
work is split, so the result has the same bits for any thread count.

Everything here trusts its arguments: ``fastdeconv._resize`` validated them, built the plans
(``fastdeconv._resize_plan``), chose the pass order and sized the scratch space.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

# Pass descriptor columns (int64 array of shape (passes, PASS_FIELDS)).
cdef enum:
    P_OUTER = 0
    P_N_IN = 1
    P_N_OUT = 2
    P_INNER = 3
    P_OFFSETS = 4      # start of this pass's n_out + 1 offsets in the offsets array
    P_SELECT = 5       # 1: one tap of weight one per output
    PASS_FIELDS = 6

PASS_COLUMNS = PASS_FIELDS

# Columns per part when an adjoint pass with inner > 1 is split (few planes).
cdef Py_ssize_t CHUNK = 256


cdef void pass_forward(const floating* src, floating* dst, const Py_ssize_t* p,
                       const Py_ssize_t* offsets, const Py_ssize_t* indices,
                       const floating* weights, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Parts [begin, end) of a forward pass: rows r (inner == 1), else output rows r*n_out + j."""
    cdef Py_ssize_t n_in = p[P_N_IN], n_out = p[P_N_OUT]
    cdef Py_ssize_t inner = p[P_INNER]
    cdef const Py_ssize_t* off = offsets + p[P_OFFSETS]
    cdef bint select = p[P_SELECT] != 0
    cdef Py_ssize_t r, j, i, t, t0, t1, item
    cdef const floating* s
    cdef const floating* s0
    cdef const floating* s1
    cdef const floating* s2
    cdef const floating* s3
    cdef floating* d
    cdef floating acc, w0, w1, w2, w3
    if inner == 1:
        for r in range(begin, end):
            s = src + r * n_in
            d = dst + r * n_out
            if select:
                for j in range(n_out):
                    d[j] = s[indices[off[j]]]
            else:
                for j in range(n_out):
                    acc = 0
                    for t in range(off[j], off[j + 1]):
                        acc = acc + weights[t] * s[indices[t]]
                    d[j] = acc
        return
    for item in range(begin, end):
        r = item / n_out
        j = item % n_out
        d = dst + item * inner
        t0 = off[j]
        t1 = off[j + 1]
        if t1 == t0:
            memset(d, 0, inner * sizeof(floating))
        elif select:
            memcpy(d, src + (r * n_in + indices[t0]) * inner, inner * sizeof(floating))
        elif t1 - t0 == 2:
            s0 = src + (r * n_in + indices[t0]) * inner
            s1 = src + (r * n_in + indices[t0 + 1]) * inner
            w0 = weights[t0]
            w1 = weights[t0 + 1]
            for i in range(inner):
                d[i] = w0 * s0[i] + w1 * s1[i]
        elif t1 - t0 == 4:
            s0 = src + (r * n_in + indices[t0]) * inner
            s1 = src + (r * n_in + indices[t0 + 1]) * inner
            s2 = src + (r * n_in + indices[t0 + 2]) * inner
            s3 = src + (r * n_in + indices[t0 + 3]) * inner
            w0 = weights[t0]
            w1 = weights[t0 + 1]
            w2 = weights[t0 + 2]
            w3 = weights[t0 + 3]
            for i in range(inner):
                d[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
        else:
            s0 = src + (r * n_in + indices[t0]) * inner
            w0 = weights[t0]
            for i in range(inner):
                d[i] = w0 * s0[i]
            for t in range(t0 + 1, t1):
                s0 = src + (r * n_in + indices[t]) * inner
                w0 = weights[t]
                for i in range(inner):
                    d[i] = d[i] + w0 * s0[i]


cdef void pass_backward(const floating* src, floating* dst, const Py_ssize_t* p,
                       const Py_ssize_t* offsets, const Py_ssize_t* indices,
                       const floating* weights, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Parts [begin, end) of an adjoint pass: rows r (inner == 1), else columns [begin, end)
    of every row. The part of ``dst`` (the pass's input side) is zeroed, then the scatter of
    ``src`` added in a fixed order (j, then taps)."""
    cdef Py_ssize_t outer = p[P_OUTER], n_in = p[P_N_IN], n_out = p[P_N_OUT]
    cdef Py_ssize_t inner = p[P_INNER]
    cdef const Py_ssize_t* off = offsets + p[P_OFFSETS]
    cdef bint select = p[P_SELECT] != 0
    cdef Py_ssize_t r, j, i, t, width = end - begin
    cdef const floating* s
    cdef floating* d
    cdef floating g, w
    if inner == 1:
        memset(dst + begin * n_in, 0, (end - begin) * n_in * sizeof(floating))
        for r in range(begin, end):
            s = src + r * n_out
            d = dst + r * n_in
            if select:
                for j in range(n_out):
                    d[indices[off[j]]] += s[j]
            else:
                for j in range(n_out):
                    g = s[j]
                    for t in range(off[j], off[j + 1]):
                        d[indices[t]] += weights[t] * g
        return
    for r in range(outer * n_in):
        memset(dst + r * inner + begin, 0, width * sizeof(floating))
    for r in range(outer):
        for j in range(n_out):
            s = src + (r * n_out + j) * inner + begin
            for t in range(off[j], off[j + 1]):
                d = dst + (r * n_in + indices[t]) * inner + begin
                if select:
                    for i in range(width):
                        d[i] = d[i] + s[i]
                else:
                    w = weights[t]
                    for i in range(width):
                        d[i] = d[i] + w * s[i]


cdef inline Py_ssize_t forward_parts(const Py_ssize_t* p) noexcept nogil:
    return p[P_OUTER] if p[P_INNER] == 1 else p[P_OUTER] * p[P_N_OUT]


cdef inline Py_ssize_t backward_parts(const Py_ssize_t* p) noexcept nogil:
    return p[P_OUTER] if p[P_INNER] == 1 else (p[P_INNER] + CHUNK - 1) / CHUNK


cdef void split_forward(const floating* src, floating* dst, const Py_ssize_t* p,
                        const Py_ssize_t* off, const Py_ssize_t* idx, const floating* w,
                        int num_threads) noexcept nogil:
    """One forward pass, its parts spread over threads."""
    cdef Py_ssize_t part, parts = forward_parts(p)
    for part in prange(parts, num_threads=num_threads, schedule="static"):
        pass_forward(src, dst, p, off, idx, w, part, part + 1)


cdef void split_backward(const floating* src, floating* dst, const Py_ssize_t* p,
                        const Py_ssize_t* off, const Py_ssize_t* idx, const floating* w,
                        int num_threads) noexcept nogil:
    """One adjoint pass, its parts (rows or column chunks) spread over threads."""
    cdef Py_ssize_t part, parts = backward_parts(p), stop
    if p[P_INNER] == 1:
        for part in prange(parts, num_threads=num_threads, schedule="static"):
            pass_backward(src, dst, p, off, idx, w, part, part + 1)
    else:
        for part in prange(parts, num_threads=num_threads, schedule="static"):
            stop = (part + 1) * CHUNK
            if stop > p[P_INNER]:
                stop = p[P_INNER]
            pass_backward(src, dst, p, off, idx, w, part * CHUNK, stop)


cdef void run_plane(bint backward, const floating* src, floating* dst_last, floating* buf,
                    Py_ssize_t scratch_numel, Py_ssize_t npass, const Py_ssize_t* pp,
                    const Py_ssize_t* off, const Py_ssize_t* idx, const floating* w,
                    int split_threads) noexcept nogil:
    """Every pass of one plane in order (``backward``: the adjoint passes, last pass first),
    through the two halves of ``buf``, the last into ``dst_last``. With ``split_threads``
    each pass is split over that many threads, else it runs whole on this thread."""
    cdef Py_ssize_t step, k
    cdef const Py_ssize_t* p
    cdef floating* dst
    for step in range(npass):
        k = npass - 1 - step if backward else step
        p = pp + k * PASS_FIELDS
        dst = dst_last if step == npass - 1 else buf + (step % 2) * scratch_numel
        if split_threads and backward:
            split_backward(src, dst, p, off, idx, w, split_threads)
        elif split_threads:
            split_forward(src, dst, p, off, idx, w, split_threads)
        elif backward:
            pass_backward(src, dst, p, off, idx, w, 0,
                         p[P_OUTER] if p[P_INNER] == 1 else p[P_INNER])
        else:
            pass_forward(src, dst, p, off, idx, w, 0, forward_parts(p))
        src = dst


def run_resize(bint backward, const floating[::1] src, floating[::1] dst, Py_ssize_t planes,
               Py_ssize_t src_numel, Py_ssize_t dst_numel, const Py_ssize_t[:, ::1] passes,
               const Py_ssize_t[::1] offsets, const Py_ssize_t[::1] indices,
               const floating[::1] weights, floating[::1] scratch,
               Py_ssize_t scratch_numel, int num_threads):
    """dst[plane] = the passes (``backward``: their adjoints, last pass first) applied to
    src[plane], for every plane; whole planes per thread, or with fewer planes than threads
    the planes one after the other and each pass split over the threads.

    ``scratch`` holds ``2 * scratch_numel`` values per thread; there is at least one pass.
    """
    cdef Py_ssize_t npass = passes.shape[0], plane
    cdef int tid
    with nogil:
        if planes >= num_threads or num_threads == 1:
            for plane in prange(planes, num_threads=num_threads, schedule="static"):
                tid = threadid()
                run_plane(backward, &src[0] + plane * src_numel, &dst[0] + plane * dst_numel,
                          &scratch[0] + tid * 2 * scratch_numel, scratch_numel, npass,
                          &passes[0, 0], &offsets[0], &indices[0], &weights[0], 0)
        else:
            for plane in range(planes):
                run_plane(backward, &src[0] + plane * src_numel, &dst[0] + plane * dst_numel,
                          &scratch[0], scratch_numel, npass, &passes[0, 0], &offsets[0],
                          &indices[0], &weights[0], num_threads)


def resize_forward(x, y, planes, in_numel, out_numel, *plan):
    """y[plane] = passes applied in order to x[plane], for every plane (the other arguments:
    :func:`run_resize`'s)."""
    run_resize(False, x, y, planes, in_numel, out_numel, *plan)


def resize_backward(grad_y, grad_x, planes, in_numel, out_numel, *plan):
    """grad_x[plane] = the adjoint passes, last pass first, applied to grad_y[plane]."""
    run_resize(True, grad_y, grad_x, planes, out_numel, in_numel, *plan)
