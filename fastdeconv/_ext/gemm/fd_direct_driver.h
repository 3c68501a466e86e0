/* The direct convolution's kernels, kernel choice, work items and weight packing, per dtype
 * (included twice by fd_direct.h with FD_T, FD_SFX, the vector types FD_V512 and FD_V256,
 * the intrinsics' suffix FD_VOP_SFX and FD_PORTABLE_NR). */

#if FD_GEMM_X86
/* AVX-512F: MR x (1 to 4 vectors); AVX2+FMA: MR x (1 to 3 vectors) (fd_direct_kernel.h). */
#define FD_MR FD_DIRECT_MR_AVX512
#define FD_TARGET __attribute__((target("avx512f")))
#define FD_V FD_V512
#define FD_VLEN ((int)(64 / sizeof(FD_T)))
#define FD_PFX _mm512_
#define FD_SFX_OP FD_VOP_SFX
#define FD_DK_NAME FD_SFX(fd_direct_avx512_1)
#define FD_NV 1
#include "fd_direct_kernel.h"
#define FD_DK_NAME FD_SFX(fd_direct_avx512_2)
#define FD_NV 2
#include "fd_direct_kernel.h"
#define FD_DK_NAME FD_SFX(fd_direct_avx512_3)
#define FD_NV 3
#include "fd_direct_kernel.h"
#define FD_DK_NAME FD_SFX(fd_direct_avx512_4)
#define FD_NV 4
#include "fd_direct_kernel.h"
#undef FD_MR
#undef FD_TARGET
#undef FD_V
#undef FD_VLEN
#undef FD_PFX
#define FD_MR FD_DIRECT_MR_AVX2
#define FD_TARGET __attribute__((target("avx2,fma")))
#define FD_V FD_V256
#define FD_VLEN ((int)(32 / sizeof(FD_T)))
#define FD_PFX _mm256_
#define FD_DK_NAME FD_SFX(fd_direct_avx2_1)
#define FD_NV 1
#include "fd_direct_kernel.h"
#define FD_DK_NAME FD_SFX(fd_direct_avx2_2)
#define FD_NV 2
#include "fd_direct_kernel.h"
#define FD_DK_NAME FD_SFX(fd_direct_avx2_3)
#define FD_NV 3
#include "fd_direct_kernel.h"
#undef FD_MR
#undef FD_TARGET
#undef FD_V
#undef FD_VLEN
#undef FD_PFX
#undef FD_SFX_OP
#endif

/* The portable kernel: fd_direct_kernel.h's contract in plain C (one "vector" of
 * FD_PORTABLE_NR lanes), which the compiler vectorises for the build's baseline. */
static void FD_SFX(fd_direct_portable)(const FD_T *restrict x, const ptrdiff_t *restrict offsets,
                                       ptrdiff_t ntaps, ptrdiff_t channels,
                                       const FD_T *restrict w, FD_T *restrict tile,
                                       ptrdiff_t ldt)
{
    FD_T acc[FD_DIRECT_MR_PORTABLE][FD_PORTABLE_NR];
    for (int r = 0; r < FD_DIRECT_MR_PORTABLE; ++r)
        for (int j = 0; j < FD_PORTABLE_NR; ++j) acc[r][j] = 0;
    for (ptrdiff_t t = 0; t < ntaps; ++t) {
        const FD_T *p[FD_DIRECT_MR_PORTABLE];
        for (int r = 0; r < FD_DIRECT_MR_PORTABLE; ++r)
            p[r] = x + offsets[t * FD_DIRECT_MR_PORTABLE + r];
        for (ptrdiff_t c = 0; c < channels; ++c, w += FD_PORTABLE_NR)
            for (int r = 0; r < FD_DIRECT_MR_PORTABLE; ++r) {
                FD_T a = p[r][c];
                for (int j = 0; j < FD_PORTABLE_NR; ++j) acc[r][j] += a * w[j];
            }
    }
    for (int r = 0; r < FD_DIRECT_MR_PORTABLE; ++r)
        for (int j = 0; j < FD_PORTABLE_NR; ++j) tile[r * ldt + j] = acc[r][j];
}

typedef void (*FD_SFX(fd_direct_fn))(const FD_T *, const ptrdiff_t *, ptrdiff_t, ptrdiff_t,
                                      const FD_T *, FD_T *, ptrdiff_t);

/* The kernel of an instruction set for a panel of nv vectors (1 <= nv <= fd_direct_max_nv). */
static FD_SFX(fd_direct_fn) FD_SFX(fd_direct_kernel)(int isa, ptrdiff_t nv)
{
#if FD_GEMM_X86
    if (isa == FD_ISA_AVX512)
        return nv == 1 ? FD_SFX(fd_direct_avx512_1) : nv == 2 ? FD_SFX(fd_direct_avx512_2)
             : nv == 3 ? FD_SFX(fd_direct_avx512_3) : FD_SFX(fd_direct_avx512_4);
    if (isa == FD_ISA_AVX2)
        return nv == 1 ? FD_SFX(fd_direct_avx2_1) : nv == 2 ? FD_SFX(fd_direct_avx2_2)
                                                            : FD_SFX(fd_direct_avx2_3);
#endif
    (void)isa; (void)nv;
    return FD_SFX(fd_direct_portable);
}

/* A tile's store (fd_direct.h): register transpositions where the CPU has AVX, then value by
 * value for the lanes left. */
static void FD_SFX(fd_direct_store)(const FD_T *tile, ptrdiff_t ldt, int n_rows, ptrdiff_t width,
                                    FD_T *y, ptrdiff_t ldy)
{
    ptrdiff_t j0 = 0;
#if FD_GEMM_X86
    if (fd_transpose_simd()) j0 = FD_SFX(fd_direct_store_avx)(tile, ldt, n_rows, width, y, ldy);
#endif
    FD_SFX(fd_transpose_plain)(tile, ldt, y, ldy, 0, n_rows, j0, width);   /* the lanes left */
}

/* One call of the direct convolution: the geometry g, the channels-last input x (a group's
 * `channels` input channels contiguous from x + group * channels), the packed weight w and
 * its panels, the output y (samples, c_out, out_positions). */
typedef struct {
    int isa;
    const fd_direct_geom *g;
    const FD_T *x;
    ptrdiff_t c_out, channels;
    const FD_T *w;
    const fd_direct_panel *panels;
    ptrdiff_t npanels;
    FD_T *y;
    const fd_direct_space *space;   /* NULL: y channels-first (samples, c_out, out_positions) */
} FD_SFX(fd_direct_job);

/* The tile of positions [q0, q0 + n_rows) against panel pn stored by the job's
 * depth-to-space map (fd_direct_space): each run of a channel's consecutive last-dimension
 * phases is a run of consecutive values of one line of y, cut where it leaves y. The phases
 * of the outer dimensions are counted on from run to run, without divisions. */
static void FD_SFX(fd_direct_store_space)(const FD_SFX(fd_direct_job) *job, const FD_T *tile,
                                          ptrdiff_t ldt, ptrdiff_t q0, int n_rows,
                                          const fd_direct_panel *pn)
{
    const fd_direct_geom *g = job->g;
    const fd_direct_space *sp = job->space;
    int last = g->ndim - 1;
    ptrdiff_t plane = 1, ystep[FD_DIRECT_MAX_NDIM], idx[FD_DIRECT_MAX_NDIM];
    ptrdiff_t rho0[FD_DIRECT_MAX_NDIM], rho[FD_DIRECT_MAX_NDIM], base[FD_DIRECT_MAX_NDIM];
    for (int d = last; d >= 0; --d) {
        ystep[d] = plane;
        plane *= sp->size[d];
    }
    ptrdiff_t pps = g->out_positions, s_last = sp->stride[last], size_last = sp->size[last];
    ptrdiff_t n = q0 / pps, rest = q0 - n * pps;
    for (int d = last; d >= 0; --d) {   /* the grid index of the first position */
        idx[d] = rest % g->out_size[d];
        rest /= g->out_size[d];
    }
    /* the panel's first channel: its y channel and phase per dimension */
    ptrdiff_t co0 = pn->first / sp->phases, ph = pn->first - co0 * sp->phases;
    for (int d = last; d >= 0; --d) {
        rho0[d] = ph % sp->stride[d];
        ph /= sp->stride[d];
    }
    int streamed = 0;
    for (int r = 0; r < n_rows; ++r) {
        FD_T *ys = job->y + n * sp->c_out * plane + co0 * plane;
        const FD_T *from = tile + r * ldt;
        for (int d = 0; d <= last; ++d) {
            rho[d] = rho0[d];
            base[d] = sp->origin[d] + idx[d] * sp->stride[d];
        }
        for (ptrdiff_t j = 0; j < pn->width;) {
            ptrdiff_t len = s_last - rho[last];
            if (len > pn->width - j) len = pn->width - j;
            ptrdiff_t at = 0;
            int inside = 1;
            for (int d = 0; d < last; ++d) {
                ptrdiff_t o = base[d] + rho[d];
                inside = inside && o >= 0 && o < sp->size[d];
                at += o * ystep[d];
            }
            if (inside) {
                ptrdiff_t o0 = base[last] + rho[last];
                ptrdiff_t a = o0 < 0 ? -o0 : 0;
                ptrdiff_t b = o0 + len > size_last ? size_last - o0 : len;
                FD_T *restrict out = ys + at + o0;
                const FD_T *restrict v = from + j;
                ptrdiff_t e = a;
#if FD_GEMM_X86   /* whole lines from a line's start: streamed, not read first */
                if (!((uintptr_t)(out + a) & 63)
                        && ((b - a) * (ptrdiff_t)sizeof(FD_T)) % 64 == 0) {
                    for (; e < b; e += 16 / (ptrdiff_t)sizeof(FD_T))
                        _mm_stream_si128((__m128i *)(out + e),
                                         _mm_loadu_si128((const __m128i *)(v + e)));
                    streamed = 1;
                }
#endif
                for (; e + 8 <= b; e += 8) memcpy(out + e, v + e, 8 * sizeof(FD_T));
                for (; e < b; ++e) out[e] = v[e];
            }
            j += len;
            rho[last] = 0;   /* the run ended with the last dimension's phases */
            int d = last - 1;
            for (; d >= 0; --d) {
                if (++rho[d] < sp->stride[d]) break;
                rho[d] = 0;
            }
            if (d < 0) ys += plane;   /* the next y channel */
        }
        if (++idx[last] < g->out_size[last])   /* the next position */
            continue;
        idx[last] = 0;
        int d = last - 1;
        for (; d >= 0; --d) {
            if (++idx[d] < g->out_size[d]) break;
            idx[d] = 0;
        }
        if (d < 0) ++n;
    }
#if FD_GEMM_X86
    if (streamed) _mm_sfence();
#else
    (void)streamed;
#endif
}

/* Work items of a job: blocks of FD_DIRECT_BLOCK_TILES tiles times panels. */
static ptrdiff_t FD_SFX(fd_direct_items)(const FD_SFX(fd_direct_job) *job)
{
    ptrdiff_t block = (ptrdiff_t)FD_DIRECT_BLOCK_TILES * fd_direct_mr(job->isa);
    ptrdiff_t positions = job->g->samples * job->g->out_positions;
    return (positions + block - 1) / block * job->npanels;
}

/* Elements of a thread's table of tile offsets (fd_direct_item): a block's tiles' offsets. */
static ptrdiff_t FD_SFX(fd_direct_table_elems)(const FD_SFX(fd_direct_job) *job)
{
    return (ptrdiff_t)FD_DIRECT_BLOCK_TILES * fd_direct_mr(job->isa) * job->g->taps;
}

/* Work item `item`: its block's tiles against its panel, each tile stored into y (a partial
 * last tile repeats its last position, whose values are not stored again). `table` (a
 * thread's, fd_direct_table_elems) holds the offsets of the tiles of block *held (-1: none):
 * a thread's consecutive items of one block make them once. A tile within one sample is
 * stored by a register-tile transposition, else value by value. */
static void FD_SFX(fd_direct_item)(const FD_SFX(fd_direct_job) *job, ptrdiff_t item,
                                   ptrdiff_t *table, ptrdiff_t *held)
{
    const fd_direct_geom *g = job->g;
    int mr = fd_direct_mr(job->isa);
    ptrdiff_t vlen = fd_direct_vlen(job->isa, sizeof(FD_T) == 8);
    ptrdiff_t block = (ptrdiff_t)FD_DIRECT_BLOCK_TILES * mr, pps = g->out_positions;
    ptrdiff_t positions = g->samples * pps, index = item / job->npanels;
    const fd_direct_panel *pn = job->panels + item % job->npanels;
    ptrdiff_t q_begin = index * block;
    ptrdiff_t q_end = q_begin + block < positions ? q_begin + block : positions;
    ptrdiff_t ldt = pn->nv * vlen, per_tile = g->taps * mr;
    FD_SFX(fd_direct_fn) kernel = FD_SFX(fd_direct_kernel)(job->isa, pn->nv);
    const FD_T *x = job->x + pn->group * job->channels;
    const FD_T *w = job->w + pn->offset;
    FD_T tile[8 * FD_DIRECT_MAX_NR];   /* MR rows, and zeros the stores read past them */
    memset(tile + mr * ldt, 0, (size_t)(8 - mr) * ldt * sizeof(FD_T));
    if (*held != index) {
        for (ptrdiff_t q0 = q_begin, i = 0; q0 < q_end; q0 += mr, ++i) {
            int n_rows = q_end - q0 < mr ? (int)(q_end - q0) : mr;
            fd_direct_offsets(g, q0, mr, n_rows, table + i * per_tile);
        }
        *held = index;
    }
    for (ptrdiff_t q0 = q_begin, i = 0; q0 < q_end; q0 += mr, ++i) {
        int n_rows = q_end - q0 < mr ? (int)(q_end - q0) : mr;
        kernel(x, table + i * per_tile, g->taps, job->channels, w, tile, ldt);
        if (job->space) {
            FD_SFX(fd_direct_store_space)(job, tile, ldt, q0, n_rows, pn);
            continue;
        }
        ptrdiff_t n = q0 / pps, p = q0 - n * pps;
        FD_T *y = job->y + (n * job->c_out + pn->first) * pps + p;
        if (p + n_rows <= pps) {
            FD_SFX(fd_direct_store)(tile, ldt, n_rows, pn->width, y, pps);
            continue;
        }
        for (int r = 0; r < n_rows; ++r, ++p) {   /* the tile passes into the next sample(s) */
            if (p == pps) {
                p = 0;
                ++n;
                y = job->y + (n * job->c_out + pn->first) * pps - r;
            }
            for (ptrdiff_t j = 0; j < pn->width; ++j) y[r + j * pps] = tile[r * ldt + j];
        }
    }
}

/* Panel pn of a weight given by gathering: the value of (tap t, channel c, output channel ch)
 * is weight[c * c_stride + src[t * src_ld + ch]] (the caller checked every src value lies in
 * [0, c_stride)), packed as fd_direct_pack packs (zeros past the panel's width). The
 * sub-pixel weight of a transposed convolution is packed this way straight from its weight. */
static void FD_SFX(fd_direct_pack_gather)(const FD_T *restrict weight, ptrdiff_t c_stride,
                                          ptrdiff_t channels, ptrdiff_t taps,
                                          const ptrdiff_t *restrict src, ptrdiff_t src_ld,
                                          const fd_direct_panel *pn, ptrdiff_t vlen,
                                          FD_T *restrict w)
{
    ptrdiff_t nr = pn->nv * vlen;
    unsigned char run[FD_DIRECT_MAX_NR];   /* run[j]: src[j, j + 8) consecutive */
    for (ptrdiff_t t = 0; t < taps; ++t) {
        const ptrdiff_t *from = src + t * src_ld + pn->first;
        for (ptrdiff_t j = 0; j < pn->width;) {   /* found once for every channel */
            int whole = j + 8 <= pn->width;
            for (int e = 1; e < 8 && whole; ++e) whole = from[j + e] == from[j] + e;
            run[j] = (unsigned char)whole;
            j += whole ? 8 : 1;
        }
        for (ptrdiff_t c = 0; c < channels; ++c) {
            FD_T *d = w + pn->offset + (t * channels + c) * nr;
            const FD_T *s = weight + c * c_stride;
            ptrdiff_t j = 0;
            while (j < pn->width) {   /* a run of 8 consecutive values is copied at once */
                if (run[j]) {
                    memcpy(d + j, s + from[j], 8 * sizeof(FD_T));
                    j += 8;
                } else {
                    d[j] = s[from[j]];
                    ++j;
                }
            }
            for (; j < nr; ++j) d[j] = 0;
        }
    }
}

/* Panel pn of the weight (c_out, channels, taps) (C-contiguous) into w + pn->offset: the
 * value of (tap t, channel c, lane j) at ((t * channels + c) * nv * vlen + j), zeros in the
 * lanes past the panel's width. The panel's rows are a width x (channels * taps) block of
 * the weight: it is transposed FD_DIRECT_PACK_COLUMNS columns at a time (fd_transpose.h,
 * register tiles) into a tile in L1, whose rows (one (c, t) each, channel-major) are then
 * copied to their place t * channels + c. (Value by value, with each lane a row of the
 * weight apart, it took 2 cycles a value: resnet_s2's 1.1 MiB weight 0.2 ms.) */
#ifndef FD_DIRECT_PACK_COLUMNS
#define FD_DIRECT_PACK_COLUMNS 64
#endif
static void FD_SFX(fd_direct_pack)(const FD_T *restrict weight, ptrdiff_t channels,
                                   ptrdiff_t taps, const fd_direct_panel *pn, ptrdiff_t vlen,
                                   FD_T *restrict w)
{
    ptrdiff_t nr = pn->nv * vlen, k = channels * taps;
    const FD_T *first = weight + pn->first * k;
    FD_T tile[FD_DIRECT_PACK_COLUMNS * FD_DIRECT_MAX_NR];   /* tile[(kk - k0) * nr + j] */
    ptrdiff_t c = 0, t = 0;   /* the (channel, tap) of column kk */
    for (ptrdiff_t k0 = 0; k0 < k; k0 += FD_DIRECT_PACK_COLUMNS) {
        ptrdiff_t k1 = k0 + FD_DIRECT_PACK_COLUMNS < k ? k0 + FD_DIRECT_PACK_COLUMNS : k;
        FD_SFX(fd_transpose)(first + k0, k, tile, nr, pn->width, k1 - k0, 1);
        for (ptrdiff_t kk = k0; kk < k1; ++kk) {
            FD_T *d = w + pn->offset + (t * channels + c) * nr;
            FD_SFX(fd_copy_width)(d, tile + (kk - k0) * nr, (int)pn->width);
            for (ptrdiff_t j = pn->width; j < nr; ++j) d[j] = 0;
            if (++t == taps) t = 0, ++c;
        }
    }
}
