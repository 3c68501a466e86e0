# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py,
# which turns the checks back on with FASTDECONV_CYTHON_DEBUG=1.
"""Stride-phase family: transposed convolutions by stride phases and the rearrangements
around them (depth-to-space of phases, weight tap scatter, space-to-depth).

A transposed convolution with stride ``s`` is, per stride phase ``p`` (the output positions
``o = first[p] + u * s``), a stride-1 correlation of its input with the phase's sub-kernel:
:func:`conv_transpose_phases` runs it as im2col + GEMM per phase (the im2col family's
``im2col_batch``) and copies each phase to its positions, :func:`conv_transpose_depthwise`
directly with vectorised tap loops for depthwise layers. :func:`depth_to_space_phases` and
:func:`scatter_kernel_taps` serve the sub-pixel path (all phases as one forward convolution
of the input); :func:`space_to_depth_2d` rearranges a strided convolution's input into a
stride-1 one.

Determinism: phases cover disjoint outputs and every output receives its taps in a fixed
order, so the results do not depend on the thread count. Everything here trusts its arguments
(``fastdeconv._algorithms`` validated the geometry and built the phase tables).
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset, memcpy

from ._gemm cimport PARALLEL_MIN_ELEMENTS, parallel_gemm
from ._im2col_kernels cimport im2col_batch
from ._index cimport MAX_NDIM, Geometry, Tiles, floor_div, next_row, next_tile, tiles_of, unravel
from ._simd cimport store_pair, taps, taps_pair_rows
from ._transpose cimport fd_transpose_simd, transpose


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
    stored interleaved in one pass; in 2-d the pair is computed and stored row by row
    instead, ``taps_pair_rows``: the same sums, one row of each phase at a time in L1),
    ``-2`` a phase stored with its partner, ``-1`` a phase stored alone. Each output
    receives its taps in a fixed order, and planes are independent (parallel over sample,
    channel, j), so the result does not depend on the thread count.
    Each live phase's every output is stored (not added to), so ``y`` must be zero on entry
    only where no live phase writes (phases with outputs but no taps). Each thread allocates
    ``prod(padded_size)`` plus one or (with pairs) two phase planes once per call (zeroing
    the padded plane once: every input plane's copy then writes the same interior); the
    caller bounds that times ``num_threads``.
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
        with nogil, parallel(num_threads=num_threads):
            # the thread's buffer; its zero border stays zero (each plane's copy writes the
            # same interior positions), so it is zeroed once, not once per plane
            xpad = <floating*> malloc((E + planes * span_max) * sizeof(floating))
            if xpad != NULL:
                memset(xpad, 0, E * sizeof(floating))
            for item in prange(batch * channels * multiplier, schedule="static"):
                if xpad == NULL:
                    failed_flag[0] = 1
                    continue
                n = item / (channels * multiplier)
                c = (item / multiplier) % channels
                j = item % multiplier
                za = xpad + E
                zb = za + span_max  # used (allocated) only with planes == 2
                dst = &y[0] + (n * channels * multiplier + c * multiplier + j) * Y
                # the interior of the zero-padded copy of input plane (n, c)
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
                    if other < 0:
                        taps(span[ph], ks[ph],
                             &phase_weight[0] + weight_offset[ph]
                             + (c * multiplier + j) * ks[ph],
                             tap_offset + tap_start[ph], xpad + base[ph], za)
                        store_phase_planes(za, <floating*> NULL, dst, <int> ndim, strides,
                                           &sub_out[ph, 0], 0, &y_size[0], &first[ph, 0],
                                           &step[0])
                        continue
                    if ndim == 2:   # row by row (each row of both phases in L1)
                        taps_pair_rows(
                            sub_out[ph, 0], sub_out[ph, 1], sub_out[other, 1], ks[ph],
                            &phase_weight[0] + weight_offset[ph] + (c * multiplier + j) * ks[ph],
                            tap_offset + tap_start[ph], xpad + base[ph], ks[other],
                            &phase_weight[0] + weight_offset[other]
                            + (c * multiplier + j) * ks[other],
                            tap_offset + tap_start[other], xpad + base[other], strides[0],
                            dst + first[ph, 0] * y_size[1] + first[ph, 1], step[0] * y_size[1],
                            za, zb)
                        continue
                    taps(span[ph], ks[ph],
                         &phase_weight[0] + weight_offset[ph] + (c * multiplier + j) * ks[ph],
                         tap_offset + tap_start[ph], xpad + base[ph], za)
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


fd_transpose_simd()   # the CPU check runs once here, not first inside a parallel region


cdef inline Py_ssize_t _phase_run(const Py_ssize_t[:, ::1] phase_start,
                                  const Py_ssize_t[:, ::1] first, Py_ssize_t ph,
                                  Py_ssize_t end, int ndim) noexcept nogil:
    """How many phases from ``ph`` (before ``end``) have first outputs one apart in the last
    dimension and the same start in the intermediate (their rows of a line then interleave as
    a transpose)."""
    cdef Py_ssize_t run = 1, d
    while ph + run < end and first[ph + run, ndim - 1] == first[ph, ndim - 1] + run:
        for d in range(ndim):
            if phase_start[ph + run, d] != phase_start[ph, d]:
                return run
        run += 1
    return run


cdef int _line_runs(const Py_ssize_t[:, ::1] phase_start, const Py_ssize_t[:, ::1] count,
                    const Py_ssize_t[:, ::1] first, Py_ssize_t base, Py_ssize_t s_last,
                    int ndim, Py_ssize_t* runs) noexcept nogil:
    """The runs of the ``s_last`` phases from ``base`` (the phases of one line of ``y``, see
    :func:`_phase_run`): ``runs[3 * q + (0, 1, 2)]`` = first phase, length and how many
    values of each row run ``q`` transposes in register tiles (the shortest count in the last
    dimension; 0 for a run of one phase). Returns the number of runs."""
    cdef Py_ssize_t r = 0, ph, run, cnt, j
    cdef int q = 0
    while r < s_last:
        ph = base + r
        run = _phase_run(phase_start, first, ph, base + s_last, ndim)
        cnt = count[ph, ndim - 1]
        for j in range(ph + 1, ph + run):
            if count[j, ndim - 1] < cnt:
                cnt = count[j, ndim - 1]
        runs[3 * q], runs[3 * q + 1], runs[3 * q + 2] = ph, run, cnt if run > 1 else 0
        q += 1
        r = r + run
    return q


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
    channel far apart, the reads of a large ``z`` missed the cache).
    Phases cover disjoint outputs, so this is a parallel copy with no overlap. It runs line
    by line of ``y`` (the last dimension; parallel over sample, channel and line): the phases
    whose outputs fall in one line are the ``step[-1]`` consecutive phases of one residue of
    the leading dimensions (the phases are row-major over the residues), and each writes its
    row of the line, every ``step[-1]``-th value. A line is then written while it is in L1;
    phase by phase, the lines ``step`` rows apart that one phase writes fell in the same few
    L1 sets and every store missed (``fcn32s``, stride 32: a third of the call). Those
    phases are cut into runs whose first
    outputs are one apart and whose rows start at the same place in the intermediate (a
    stride phase's residue r writes first output (r - pad) mod step: two runs a line, or one
    when the padding is a multiple of the step); a run's rows interleave as their transpose
    (register tiles, up to the run's shortest count), the values past it one by one. The runs
    of each residue are found once per call (:func:`_line_runs`), not once per line.
    """
    cdef Py_ssize_t n_phases = phase_start.shape[0]
    cdef int ndim = <int> z_size.shape[0], d, q, nq
    cdef Py_ssize_t Z = 1, Y = 1, item, n, c, line, rest, i, u, r, ph, base, zoff
    cdef Py_ssize_t s_last = step[ndim - 1], width = y_size[ndim - 1], cnt, f, e, j, run
    cdef Py_ssize_t n_res, res, lines = 1
    cdef Py_ssize_t per_residue[MAX_NDIM]  # phases per step of residue d (row-major)
    cdef Py_ssize_t z_strides[MAX_NDIM]  # row-major strides of z_size; read-only below
    cdef Py_ssize_t* runs = NULL   # per residue: s_last triples (_line_runs), read-only below
    cdef int* nruns = NULL
    cdef bint inside
    cdef const floating* src
    cdef floating* dst
    if n_phases == 0:
        return
    n_res = n_phases / s_last
    runs = <Py_ssize_t*> malloc(n_phases * 3 * sizeof(Py_ssize_t))
    nruns = <int*> malloc(max(n_res, 1) * sizeof(int))
    if runs == NULL or nruns == NULL:
        free(runs)
        free(nruns)
        raise MemoryError("cannot allocate the run table of depth_to_space_phases")
    z_strides[ndim - 1] = 1
    for d in range(ndim - 2, -1, -1):
        z_strides[d] = z_strides[d + 1] * z_size[d + 1]
    for d in range(ndim):
        Z *= z_size[d]
        Y *= y_size[d]
        if d < ndim - 1:
            lines *= y_size[d]
    per_residue[ndim - 1] = 1
    for d in range(ndim - 2, -1, -1):
        per_residue[d] = per_residue[d + 1] * step[d + 1]
    for res in range(n_res):
        nruns[res] = _line_runs(phase_start, count, first, res * s_last, s_last, ndim,
                                runs + 3 * res * s_last)
    try:
        with nogil:
            for item in prange(batch * channels * lines, num_threads=num_threads,
                               schedule="static"):
                n = item / (channels * lines)
                c = (item / lines) % channels
                line = item % lines
                # the leading residues of the line (phase 0 has residue 0 in every dimension,
                # and a phase's first output is its residue plus phase 0's, modulo the step),
                # and the row u of those phases' planes that the line is
                rest = line
                base = 0
                zoff = 0
                inside = True
                for d in range(ndim - 2, -1, -1):
                    i = rest % y_size[d]
                    rest = rest / y_size[d]
                    r = i - first[0, d] - floor_div(i - first[0, d], step[d]) * step[d]
                    base = base + r * per_residue[d]
                rest = line
                for d in range(ndim - 2, -1, -1):
                    i = rest % y_size[d]
                    rest = rest / y_size[d]
                    u = i - first[base, d]
                    # never true for the sub-pixel tables (every line of y is in its phases'
                    # range); kept so that other tables cannot make it read outside z
                    if u < 0 or u % step[d] != 0 or u / step[d] >= count[base, d]:
                        inside = False
                    zoff = zoff + (u / step[d]) * z_strides[d]
                if not inside:
                    continue
                dst = &y[0] + (n * y_channels + y_first_channel + c) * Y + line * width
                res = base / s_last
                nq = nruns[res]
                for q in range(nq):
                    ph = runs[3 * (res * s_last + q)]
                    run = runs[3 * (res * s_last + q) + 1]
                    cnt = runs[3 * (res * s_last + q) + 2]
                    src = &z[0] + (n * channels * n_phases + c * n_phases + ph) * Z + zoff
                    for d in range(ndim):
                        src = src + phase_start[ph, d] * z_strides[d]
                    if cnt > 0:
                        transpose(src, Z, dst + first[ph, ndim - 1], s_last, run, cnt, 1)
                    for j in range(run):
                        f = first[ph + j, ndim - 1]
                        for e in range(cnt, count[ph + j, ndim - 1]):
                            dst[f + e * s_last] = src[j * Z + e]
    finally:
        free(runs)
        free(nruns)


def scatter_kernel_taps(const floating[::1] weight, floating[::1] out, Py_ssize_t groups,
                        Py_ssize_t cin_g, Py_ssize_t cout_g, const Py_ssize_t[::1] tap_offset,
                        Py_ssize_t channel_step, int num_threads):
    """Rearrange a transposed convolution's weight by a table of kernel-tap positions.

    ``weight`` is ``(groups * cin_g, cout_g, K)`` (``K = len(tap_offset)`` taps a kernel) and
    ``out`` is ``(groups * cout_g, cin_g * K)``: tap ``t`` of ``weight[g * cin_g + i, j]``
    goes to ``out[g * cout_g + j, tap_offset[t] + i * channel_step]`` (the caller's table
    makes this a permutation of each row; ``fastdeconv._algorithms.subpixel._subpixel_weight``). Parallel
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

