/* The convolution B source of the packed GEMM engine (included by fd_gemm.h, after the work
 * plan): a forward convolution's input read through its geometry as the B of C = W B, in runs
 * of output positions; the gathered rows of a weight gradient; and which panels of a block
 * the micro-kernels can copy themselves. */
#ifndef FASTDECONV_GEMM_CONV_SRC_H
#define FASTDECONV_GEMM_CONV_SRC_H

#define FD_MAX_NDIM 8

/* A run of output positions of one work item inside one output row and one NR panel: lane
 * `lane` of panel `panel` on, `len` positions, reading the padded input from `src` (flat,
 * tap 0, channel 0) with the last dimension's stride; for a placed source (below) the run's
 * first output is at `dst` in y (flat, channel 0), the next ones every place_step_last. */
typedef struct { ptrdiff_t panel, lane, src, len, dst; } fd_run;

/* Gathered rows as the B of a weight gradient over channels-last data (fd_pack_b_rows):
 *
 *     B[k, j] = base[row_offset[k] + tap_offset[j / width] + j % width]
 *
 * rows k: output positions (sample after sample); columns j: (tap, channel) pairs, `width`
 * channels per tap, contiguous in base (a pixel's channels). */
typedef struct {
    const ptrdiff_t *row_offset, *tap_offset;
    ptrdiff_t width;
} fd_rows_src;

/* Forward convolution of one sample and group as the B of C = W B, over an input padded
 * explicitly (sizes in_size; zero padding is then no longer a special case): B has
 * channels * taps rows (row c * taps + t) and prod(out_size) columns.
 *
 * Placed (`placed` != 0): output position o of the convolution is stored at position
 * place_first + place_step * o (per dimension) of a larger output of spatial size place_size,
 * place_sample_stride elements per sample. A stride phase of a transposed convolution is such
 * a stride-1 convolution, its outputs every stride-th position of the transposed output:
 * each phase's GEMM stores straight into the interleaved result (no tile, no scatter pass).
 * With place_row, row r of C starts at c + place_row[r] instead of c + r * ldc: the phases of
 * a kernel equal to the stride (one tap each, all reading the same B) are then one GEMM whose
 * rows are (output channel, phase) pairs, each row moved to its phase's first position. */
typedef struct {
    int ndim;
    ptrdiff_t in_size[FD_MAX_NDIM], out_size[FD_MAX_NDIM], stride[FD_MAX_NDIM];
    ptrdiff_t taps, stride_last, channel_stride;
    ptrdiff_t positions, sample_stride;   /* prod(out_size); input elements per sample */
    const ptrdiff_t *tap_offset;   /* taps values: flat offset of tap t = sum t_d dil_d stride_d */
    int placed;
    ptrdiff_t place_size[FD_MAX_NDIM], place_first[FD_MAX_NDIM], place_step[FD_MAX_NDIM];
    ptrdiff_t place_sample_stride;
    const ptrdiff_t *place_row;    /* placed: NULL, or each row's start (elements from c) */
} fd_conv_src;

/* The runs of columns [j0, j0 + nc) (sample j / positions, position j % positions) cut at
 * output rows and NR panels; at most
 * nc + nc / nr + 2 of them (fd_runs_bound). */
static ptrdiff_t fd_conv_runs(const fd_conv_src *s, ptrdiff_t j0, ptrdiff_t nc, int nr,
                              fd_run *runs)
{
    ptrdiff_t idx[FD_MAX_NDIM], sample = j0 / s->positions, rem = j0 % s->positions;
    ptrdiff_t count = 0, j = 0;
    int last = s->ndim - 1;
    for (int d = last; d >= 0; --d) { idx[d] = rem % s->out_size[d]; rem /= s->out_size[d]; }
    while (j < nc) {
        ptrdiff_t len = s->out_size[last] - idx[last], flat = 0;
        if (len > nr - j % nr) len = nr - j % nr;
        if (len > nc - j) len = nc - j;
        for (int d = 0; d <= last; ++d) flat = flat * s->in_size[d] + idx[d] * s->stride[d];
        runs[count].panel = j / nr; runs[count].lane = j % nr;
        runs[count].src = sample * s->sample_stride + flat; runs[count].len = len;
        runs[count].dst = 0;
        if (s->placed) {
            ptrdiff_t at = 0;
            for (int d = 0; d <= last; ++d)
                at = at * s->place_size[d] + s->place_first[d] + idx[d] * s->place_step[d];
            runs[count].dst = sample * s->place_sample_stride + at;
        }
        ++count;
        j += len;
        idx[last] += len;
        for (int d = last; d > 0 && idx[d] == s->out_size[d]; --d) { idx[d] = 0; ++idx[d - 1]; }
        if (idx[0] == s->out_size[0]) { idx[0] = 0; ++sample; }   /* the next sample */
    }
    return count;
}

/* Columns a convolution GEMM should have at least: below, the GEMMs of several samples are
 * joined (NR-wide tiles waste less of a 7x7 or 14x14 output, items get wider). */
#define FD_CONV_MIN_COLUMNS 2048

/* Samples per convolution GEMM: the smallest divisor of `samples` whose positions reach
 * FD_CONV_MIN_COLUMNS (all samples if none does); 1 for a pointwise convolution read in place.
 * A function of the shape only (the bits of the result depend on it: it sets the columns of
 * the GEMMs, not the order of any sum, but keeping it fixed keeps that obvious). */
static ptrdiff_t fd_conv_samples_per_gemm(ptrdiff_t samples, ptrdiff_t positions, int pointwise)
{
    if (pointwise || samples <= 1) return 1;
    for (ptrdiff_t d = 1; d < samples; ++d)
        if (samples % d == 0 && d * positions >= FD_CONV_MIN_COLUMNS) return d;
    return samples;
}

static ptrdiff_t fd_runs_bound(const fd_plan *p) { return p->n_chunk + p->n_chunk / p->nr + 2; }

/* The runs of panel `panel` among runs[0, nruns) (fd_conv_runs: in the order of their
 * panels): the first, and their number in *count. The search starts at *cursor (0 at first,
 * then the first run of the panel asked for before), or at 0 when the run before the cursor is
 * not of an earlier panel: the panels of a row of tiles, asked in order, are one pass over the
 * runs (a binary search per tile took 2.9 % of unet_up's profile). */
static const fd_run *fd_panel_runs(const fd_run *runs, ptrdiff_t nruns, ptrdiff_t panel,
                                   ptrdiff_t *cursor, ptrdiff_t *count)
{
    ptrdiff_t q = *cursor;
    if (q > nruns || (q > 0 && runs[q - 1].panel >= panel)) q = 0;   /* an earlier panel */
    while (q < nruns && runs[q].panel < panel) ++q;
    ptrdiff_t end = q;
    while (end < nruns && runs[end].panel == panel) ++end;
    *cursor = q;
    *count = end - q;
    return runs + q;
}

/* Pieces of a register tile's row that a micro-kernel copies at most: 16-byte pieces of an
 * AVX-512 float32 row of 48 (192 bytes). */
#define FD_MAX_NV 12

/* The runs [0, nruns) of a block of nc columns (fd_conv_runs) when every vector of `vlen`
 * lanes of its whole panels' rows lies inside one run (runs that start and end on vector
 * boundaries: output rows of a multiple of 16 floats): the source of each such vector, at
 * vec_src[panel * (nr / vlen) + vector], and the number of whole panels; 0 when some run of
 * a whole panel is not so (the packer copies those panels). */
static ptrdiff_t fd_vector_panels(const fd_run *runs, ptrdiff_t nruns, ptrdiff_t nc, int nr,
                                  int vlen, ptrdiff_t *vec_src)
{
    ptrdiff_t whole = nc / nr, nv = nr / vlen;
    if (nv > FD_MAX_NV || nv * vlen != nr) return 0;
    for (ptrdiff_t q = 0; q < nruns && runs[q].panel < whole; ++q) {
        if (runs[q].lane % vlen || runs[q].len % vlen) return 0;
        for (ptrdiff_t e = 0; e < runs[q].len; e += vlen)
            vec_src[runs[q].panel * nv + (runs[q].lane + e) / vlen] = runs[q].src + e;
    }
    return whole;
}

#endif /* FASTDECONV_GEMM_CONV_SRC_H */
