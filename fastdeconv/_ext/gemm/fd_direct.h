/* The direct convolution (forward pass) on a channels-last copy of the input: no input packing.
 *
 *     y[n, co, p] = sum over taps t, channels c of  x_last[row(n, p) + tap(t) + c] * w[co, c, t]
 *
 * A GEMM with the output positions as its rows and the output channels as its columns: the
 * micro-kernels (fd_direct_kernel.h) broadcast one input value of each of MR positions,
 * read where the channels-last copy holds it (a position's channels are contiguous there,
 * and every tap of every position is one offset away), against NV vectors of output
 * channels of the weight, packed once per call into panels. So the input is never packed:
 * the packed engine's B packing and its edge tiles (12 % of resnet_s2's profile) are gone,
 * and only the channels-last copy (one blocked transposition) is made.
 *
 *     kernel     dtype    MR x NR (NR = NV vectors, at most)
 *     avx512f    float32  7 x 48   (21 zmm accumulators)
 *     avx512f    float64  7 x 24
 *     avx2+fma   float32  4 x 24   (12 ymm)
 *     avx2+fma   float64  4 x 12
 *     portable   float32  4 x 8    (plain C)
 *     portable   float64  4 x 4
 *
 * Chosen by measurement (resnet_s2's shape, the performance notes): on AVX-512 7 x 48 ran at
 * 96 % of the peak loop without the stores, 7 x 32, 14 x 32, 6 x 48 and 8 x 48 at 94-95 %,
 * 6 x 64 and 4 x 64 at 76-83 %; the taps outside the channels measured 4 % faster than inside.
 * The output channels of a group are dealt out to panels of at most NV vectors, their
 * vector counts differing by at most one (256 channels: 3, 3, 3, 3, 2, 2 vectors); a panel's
 * lanes past the group's channels are zeros in the packed weight and are not stored.
 *
 * Work items: a block of FD_DIRECT_BLOCK_TILES tiles of MR consecutive output positions
 * against one panel, blocks outer (a block's input rows stay in L2 while the panels pass).
 * Each output value is one chain of multiply-adds over (t, c) in order in one kernel call,
 * so the split (fixed by the shape) and the thread count change no bit.
 */
#ifndef FASTDECONV_DIRECT_H
#define FASTDECONV_DIRECT_H

#include "fd_gemm.h"

#define FD_DIRECT_MR_AVX512 7
#define FD_DIRECT_NV_AVX512 4
#define FD_DIRECT_MR_AVX2 4
#define FD_DIRECT_NV_AVX2 3
#define FD_DIRECT_MR_PORTABLE 4
#define FD_DIRECT_NR_PORTABLE_F 8
#define FD_DIRECT_NR_PORTABLE_D 4
#define FD_DIRECT_MAX_MR 7
#define FD_DIRECT_MAX_NR 64
#ifndef FD_DIRECT_BLOCK_TILES
#define FD_DIRECT_BLOCK_TILES 28
#endif

/* One panel of the packed weight: output channels [first, first + width) of group `group`
 * (first counts over every group), nv vectors wide, at element `offset` of the packed
 * weight (taps x channels x nv x vlen elements). */
typedef struct { ptrdiff_t group, first, width, nv, offset; } fd_direct_panel;

#define FD_DIRECT_MAX_NDIM 8
/* At most this many taps (a tile's offsets, taps x MR, live on the stack). */
#define FD_DIRECT_MAX_TAPS 512

/* The geometry of one call: `samples` samples of `in_size` positions of `c_in` channels in the
 * channels-last input (row-major positions, then one row of c_in zeros at
 * zero_row = samples * prod(in_size) * c_in, which every padding tap reads), `out_size`
 * output positions a sample; stride, dilation, kernel size and padding before per dimension;
 * tap_offset[t]: tap t's offset from a window's first input position, in elements, for the
 * windows that lie inside the input. */
typedef struct {
    int ndim;
    ptrdiff_t in_size[FD_DIRECT_MAX_NDIM], out_size[FD_DIRECT_MAX_NDIM];
    ptrdiff_t stride[FD_DIRECT_MAX_NDIM], dilation[FD_DIRECT_MAX_NDIM];
    ptrdiff_t kernel[FD_DIRECT_MAX_NDIM], pad[FD_DIRECT_MAX_NDIM];
    ptrdiff_t samples, c_in, taps, in_positions, out_positions, zero_row;
    const ptrdiff_t *tap_offset;
} fd_direct_geom;

/* A depth-to-space store (the sub-pixel transposed convolution): the convolution's output
 * channel ch = co * phases + rho (rho row-major over `stride`) at grid position (sample n,
 * index i) is y[n, co, origin + i * stride + rho] (per dimension; y of `size` positions and
 * c_out channels), dropped where that lies outside y. */
typedef struct {
    ptrdiff_t phases, c_out;
    ptrdiff_t stride[FD_DIRECT_MAX_NDIM], origin[FD_DIRECT_MAX_NDIM];
    ptrdiff_t size[FD_DIRECT_MAX_NDIM];
} fd_direct_space;

/* offsets[t * mr + r]: where tap t of output position q0 + r (every sample, sample-major;
 * rows past n_rows repeat the last position) starts in the channels-last input, in elements,
 * or g->zero_row where the tap reads padding. Every offset lies inside the input or is the
 * zero row, whatever the geometry. The first position's coordinates come from divisions,
 * the next ones' by counting on; a window inside the input takes the tap offsets. */
static void fd_direct_offsets(const fd_direct_geom *g, ptrdiff_t q0, int mr, int n_rows,
                              ptrdiff_t *offsets)
{
    ptrdiff_t o[FD_DIRECT_MAX_NDIM], n = q0 / g->out_positions, rest = q0 - n * g->out_positions;
    for (int d = g->ndim - 1; d >= 0; --d) {
        o[d] = rest % g->out_size[d];
        rest /= g->out_size[d];
    }
    for (int r = 0; r < mr; ++r) {
        if (r > 0 && r < n_rows) {   /* the next position, row-major, then the next sample */
            int d = g->ndim - 1;
            for (; d >= 0; --d) {
                if (++o[d] < g->out_size[d]) break;
                o[d] = 0;
            }
            if (d < 0) ++n;
        }
        ptrdiff_t first[FD_DIRECT_MAX_NDIM], k[FD_DIRECT_MAX_NDIM], at = 0;
        int inside = 1;
        for (int d = 0; d < g->ndim; ++d) {
            first[d] = o[d] * g->stride[d] - g->pad[d];
            k[d] = 0;
            inside = inside && first[d] >= 0
                     && first[d] + (g->kernel[d] - 1) * g->dilation[d] < g->in_size[d];
            at = at * g->in_size[d] + first[d];
        }
        if (inside) {
            ptrdiff_t base = (n * g->in_positions + at) * g->c_in;
            for (ptrdiff_t t = 0; t < g->taps; ++t) offsets[t * mr + r] = base + g->tap_offset[t];
            continue;
        }
        for (ptrdiff_t t = 0; t < g->taps; ++t) {
            int in = 1;
            at = 0;
            for (int d = 0; d < g->ndim; ++d) {
                ptrdiff_t i = first[d] + k[d] * g->dilation[d];
                in = in && i >= 0 && i < g->in_size[d];
                at = at * g->in_size[d] + i;
            }
            offsets[t * mr + r] = in ? (n * g->in_positions + at) * g->c_in : g->zero_row;
            for (int d = g->ndim - 1; d >= 0; --d) {   /* the next tap, row-major */
                if (++k[d] < g->kernel[d]) break;
                k[d] = 0;
            }
        }
    }
}

/* The register tile of a kernel: rows (MR), lanes of a vector and vectors a panel has at
 * most (the portable kernel: one "vector" of NR lanes). */
static int fd_direct_mr(int isa)
{
    return isa == FD_ISA_AVX512 ? FD_DIRECT_MR_AVX512
         : isa == FD_ISA_AVX2 ? FD_DIRECT_MR_AVX2 : FD_DIRECT_MR_PORTABLE;
}
static int fd_direct_vlen(int isa, int is_double)
{
    if (isa == FD_ISA_AVX512) return is_double ? 8 : 16;
    if (isa == FD_ISA_AVX2) return is_double ? 4 : 8;
    return is_double ? FD_DIRECT_NR_PORTABLE_D : FD_DIRECT_NR_PORTABLE_F;
}
static int fd_direct_max_nv(int isa)
{
    return isa == FD_ISA_AVX512 ? FD_DIRECT_NV_AVX512
         : isa == FD_ISA_AVX2 ? FD_DIRECT_NV_AVX2 : 1;
}

/* The store of a tile: y[j * ldy + r] = tile[r * ldt + j] for rows r < n_rows (at most 8; the
 * tile buffer has 8 readable rows) and lanes j < width, in 8 x 8 (float) or 4 x 4 (double)
 * register transpositions with masked stores of the rows' lanes where the CPU has AVX, value
 * by value otherwise and for the lanes past the last whole transposition. */
static const int fd_direct_lane_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#if FD_GEMM_X86
__attribute__((target("avx"))) static ptrdiff_t fd_direct_store_avx_f(
    const float *tile, ptrdiff_t ldt, int n_rows, ptrdiff_t width, float *y, ptrdiff_t ldy)
{
    __m256i mask = _mm256_loadu_si256((const __m256i *)(fd_direct_lane_mask + 8 - n_rows));
    ptrdiff_t j0 = 0;
    for (; j0 + 8 <= width; j0 += 8) {
        __m256 r[8];
        for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(tile + k * ldt + j0);
        fd_transpose_8x8_ps(r);
        for (int k = 0; k < 8; ++k) _mm256_maskstore_ps(y + (j0 + k) * ldy, mask, r[k]);
    }
    return j0;
}

__attribute__((target("avx"))) static ptrdiff_t fd_direct_store_avx_d(
    const double *tile, ptrdiff_t ldt, int n_rows, ptrdiff_t width, double *y, ptrdiff_t ldy)
{
    ptrdiff_t j0 = 0;
    for (; j0 + 4 <= width; j0 += 4)
        for (int i = 0; i < n_rows; i += 4) {
            int left = n_rows - i < 4 ? n_rows - i : 4;
            __m256i mask = _mm256_setr_epi64x(left > 0 ? -1 : 0, left > 1 ? -1 : 0,
                                              left > 2 ? -1 : 0, left > 3 ? -1 : 0);
            __m256d r[4];
            for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_pd(tile + (i + k) * ldt + j0);
            fd_transpose_4x4_pd(r);
            for (int k = 0; k < 4; ++k) _mm256_maskstore_pd(y + (j0 + k) * ldy + i, mask, r[k]);
        }
    return j0;
}
#endif

/* Per dtype: the vector types and lanes of each instruction set (fd_direct_driver.h
 * instantiates the kernels with them). */
#define FD_T float
#define FD_SFX(name) name##_f
#define FD_V512 __m512
#define FD_V256 __m256
#define FD_VOP_SFX _ps
#define FD_PORTABLE_NR FD_DIRECT_NR_PORTABLE_F
#include "fd_direct_driver.h"
#undef FD_T
#undef FD_SFX
#undef FD_V512
#undef FD_V256
#undef FD_VOP_SFX
#undef FD_PORTABLE_NR

#define FD_T double
#define FD_SFX(name) name##_d
#define FD_V512 __m512d
#define FD_V256 __m256d
#define FD_VOP_SFX _pd
#define FD_PORTABLE_NR FD_DIRECT_NR_PORTABLE_D
#include "fd_direct_driver.h"
#undef FD_T
#undef FD_SFX
#undef FD_V512
#undef FD_V256
#undef FD_VOP_SFX
#undef FD_PORTABLE_NR

/* A job of either dtype, and the driver's entries on it (one call site for both dtypes). */
typedef union { fd_direct_job_f f; fd_direct_job_d d; } fd_direct_job;

static void fd_direct_job_init(fd_direct_job *job, int is_double, int isa,
                               const fd_direct_geom *g, const void *x, ptrdiff_t c_out,
                               ptrdiff_t channels, const void *w,
                               const fd_direct_panel *panels, ptrdiff_t npanels, void *y)
{
    if (is_double) {
        fd_direct_job_d d = {isa, g, (const double *)x, c_out, channels, (const double *)w,
                             panels, npanels, (double *)y};
        job->d = d;
    } else {
        fd_direct_job_f f = {isa, g, (const float *)x, c_out, channels, (const float *)w,
                             panels, npanels, (float *)y};
        job->f = f;
    }
}

/* Store the job's tiles into y by `space` (fd_direct_space) instead of channels-first. */
static void fd_direct_job_set_space(fd_direct_job *job, int is_double,
                                    const fd_direct_space *space)
{
    if (is_double) job->d.space = space;
    else job->f.space = space;
}

static ptrdiff_t fd_direct_job_items(const fd_direct_job *job, int is_double)
{
    return is_double ? fd_direct_items_d(&job->d) : fd_direct_items_f(&job->f);
}

static ptrdiff_t fd_direct_job_table_elems(const fd_direct_job *job, int is_double)
{
    return is_double ? fd_direct_table_elems_d(&job->d) : fd_direct_table_elems_f(&job->f);
}

static void fd_direct_job_item(const fd_direct_job *job, int is_double, ptrdiff_t item,
                               ptrdiff_t *table, ptrdiff_t *held)
{
    if (is_double) fd_direct_item_d(&job->d, item, table, held);
    else fd_direct_item_f(&job->f, item, table, held);
}

#endif /* FASTDECONV_DIRECT_H */
