/* Packing routines, instantiated per dtype by fd_gemm.h (FD_T, FD_SFX(name)).
 *
 * Packed A (the whole matrix, packed once and shared read-only by every thread): for each KC
 * slice [k0, k0 + kc) of the reduction, for each MR-row micro-panel, kc columns of MR values:
 *
 *     apack[k0 * m_pad + (i / MR) * MR * kc + k * MR + r] = A[i + r, k0 + k]     (0 if i+r >= m)
 *
 * (m_pad = m rounded up to MR; every slice before k0 is a full KC, so the slice starts at
 * k0 * m_pad). When a GEMM's work items do not split its columns, each item packs its own
 * MC x KC blocks of A instead, into its scratch, just before using them (fd_gemm_item with
 * apack == NULL): A is then read once and never written back out of cache.
 *
 * Packed B (one KC x nc block of one work item, private to a thread): for each NR-column
 * micro-panel p, kc rows of NR values, zero past column n:
 *
 *     bpack[p * kc * NR + k * NR + j] = B[k0 + k, j0 + p * NR + j]
 *
 * B comes from a dense matrix or, for a forward convolution, straight from the (explicitly
 * padded) input through the geometry: no column matrix is ever built (see fd_conv_src).
 */

/* dst[0:n] = from[0:n] for n a register tile's width or height: one row of a packed B
 * micro-panel (NR) or one column of a packed A micro-panel (MR). A copy of run-time length is
 * a call of the C library's memmove; the usual widths are listed so that each copy is inlined
 * as vector moves (16-byte ones in the baseline build, 64-byte ones in the AVX-512 builds of
 * the packers). */
static inline void FD_SFX(fd_copy_width)(FD_T *restrict dst, const FD_T *restrict from, int n)
{
    switch (n) {
    case 48: memcpy(dst, from, 48 * sizeof(FD_T)); break;
    case 32: memcpy(dst, from, 32 * sizeof(FD_T)); break;
    case 24: memcpy(dst, from, 24 * sizeof(FD_T)); break;
    case 16: memcpy(dst, from, 16 * sizeof(FD_T)); break;
    case 12: memcpy(dst, from, 12 * sizeof(FD_T)); break;
    case 8: memcpy(dst, from, 8 * sizeof(FD_T)); break;
    case 6: memcpy(dst, from, 6 * sizeof(FD_T)); break;
    case 4: memcpy(dst, from, 4 * sizeof(FD_T)); break;
    default: memcpy(dst, from, (size_t)n * sizeof(FD_T));
    }
}

/* Columns [k0, k0 + kc) of the `rows` rows of A that start at `a` (row stride lda; or of its
 * transpose stored k x m when trans_a, `a` then pointing at the first of those columns) into
 * MR-row micro-panels at dst, panel p at dst + p * mr * kc, zero past `rows`. A row-major
 * panel is a transposition (column kk of the panel's rows is the panel's kk-th MR values):
 * the register-tile one of fd_transpose.h where the kernel is not the portable one (the
 * value-by-value loop before it took 2-3 cycles a value). */
static void FD_SFX(fd_pack_a_block)(ptrdiff_t rows, const FD_T *a, ptrdiff_t lda, int trans_a,
                                    int mr, ptrdiff_t k0, ptrdiff_t kc, FD_T *restrict dst,
                                    int isa)
{
    ptrdiff_t i0 = 0;
    if (trans_a) {   /* the whole panels row by row of the k x m source: each read is a
                      * contiguous run of the block's rows, each copy of the tile's width
                      * inlined (panel by panel, MR values from another row each time:
                      * dcgan_g2's col2im call 1.02x the time; with a memmove call per copy,
                      * its packing was 18 % of the call) */
        ptrdiff_t whole = rows / mr * mr;
        for (ptrdiff_t kk = 0; kk < kc; ++kk) {
            const FD_T *src = a + (k0 + kk) * lda;
            FD_T *d = dst + kk * mr;
            for (ptrdiff_t r0 = 0; r0 < whole; r0 += mr, d += mr * kc)
                FD_SFX(fd_copy_width)(d, src + r0, mr);
        }
        i0 = whole;
        dst += whole * kc;
    }
    for (; i0 < rows; i0 += mr, dst += mr * kc) {
        int n = rows - i0 < mr ? (int)(rows - i0) : mr;
        if (trans_a) {
            for (ptrdiff_t kk = 0; kk < kc; ++kk) {
                const FD_T *src = a + (k0 + kk) * lda + i0;   /* the part panel */
                int r = 0;
                for (; r < n; ++r) dst[kk * mr + r] = src[r];
                for (; r < mr; ++r) dst[kk * mr + r] = 0;
            }
        } else {
            FD_SFX(fd_transpose)(a + i0 * lda + k0, lda, dst, mr, n, kc, isa != FD_ISA_PORTABLE);
            for (int r = n; r < mr; ++r)
                for (ptrdiff_t kk = 0; kk < kc; ++kk) dst[kk * mr + r] = 0;
        }
    }
}

/* KC slice `slice` of the whole of A (m x k) into the pre-packed layout above. The slices are
 * independent: threads may pack them in parallel. */
static void FD_SFX(fd_pack_a_slice)(ptrdiff_t m, ptrdiff_t k, const FD_T *a, ptrdiff_t lda,
                                    int trans_a, int mr, ptrdiff_t kc_block, ptrdiff_t slice,
                                    FD_T *restrict apack, int isa)
{
    ptrdiff_t m_pad = (m + mr - 1) / mr * mr, k0 = slice * kc_block;
    ptrdiff_t kc = k - k0 < kc_block ? k - k0 : kc_block;
    FD_SFX(fd_pack_a_block)(m, a, lda, trans_a, mr, k0, kc, apack + k0 * m_pad, isa);
}

/* d[r] = s[r * stride] for r < n, the n <= mr rows of one column of an MR-row micro-panel,
 * zero for r in [n, mr). The usual tile heights are listed so that the full panels' loops have
 * a constant length (unrolled). */
static inline void FD_SFX(fd_gather_column)(FD_T *restrict d, const FD_T *restrict s,
                                            ptrdiff_t stride, int n, int mr)
{
    if (n == mr && stride == 1) {   /* the stacked one-tap phases' rows (unet_up) */
        FD_SFX(fd_copy_width)(d, s, mr);
        return;
    }
    if (n == mr) {
        switch (mr) {
        case 12: for (int r = 0; r < 12; ++r) d[r] = s[r * stride]; return;
        case 8: for (int r = 0; r < 8; ++r) d[r] = s[r * stride]; return;
        case 6: for (int r = 0; r < 6; ++r) d[r] = s[r * stride]; return;
        case 4: for (int r = 0; r < 4; ++r) d[r] = s[r * stride]; return;
        default: break;
        }
    }
    int r = 0;
    for (; r < n; ++r) d[r] = s[r * stride];
    for (; r < mr; ++r) d[r] = 0;
}

/* fd_pack_a_phases' tile: the columns (a channel's taps) it transposes at once, MR's bound,
 * and the micro-panels of rows per pass over the channels (measured: the performance notes). */
#ifndef FD_PHASE_TILE_COLS
#define FD_PHASE_TILE_COLS 64
#endif
#ifndef FD_PHASE_TILE_ROWS
#define FD_PHASE_TILE_ROWS 16
#endif
#ifndef FD_PHASE_PASS_PANELS
#define FD_PHASE_PASS_PANELS 8
#endif

/* Channel c of fd_pack_a_phases (below), value by value. */
static void FD_SFX(fd_pack_a_phases_gather)(ptrdiff_t m, const FD_T *a, ptrdiff_t row_stride,
                                            ptrdiff_t c, ptrdiff_t phases,
                                            const ptrdiff_t *taps_of,
                                            const ptrdiff_t *const *col_offset_of,
                                            const ptrdiff_t *const *dst_of, const int *mr_of,
                                            FD_T *const *apack_of, ptrdiff_t r0, ptrdiff_t r1)
{
    for (ptrdiff_t ph = 0; ph < phases; ++ph) {
        ptrdiff_t taps = taps_of[ph];
        int mr = mr_of[ph];
        const ptrdiff_t *col = col_offset_of[ph] + c * taps;
        const ptrdiff_t *dst = dst_of[ph] + 2 * c * taps;
        for (ptrdiff_t t = 0; t < taps; ++t) {
            FD_T *d = apack_of[ph] + dst[2 * t];
            ptrdiff_t kc = dst[2 * t + 1];
            const FD_T *src = a + col[t];
            for (ptrdiff_t i0 = r0; i0 < r1; i0 += mr) {
                int n = m - i0 < mr ? (int)(m - i0) : mr;
                FD_SFX(fd_gather_column)(d + i0 * kc, src + i0 * row_stride, row_stride, n, mr);
            }
        }
    }
}

/* Rows [r0, r1) of the A of several stride phases, each gathered as in
 * A[i, kk] = a[i * row_stride + col_offset_of[p][kk]] (phase p: channels * taps_of[p]
 * columns, channel-major: column kk = c * taps_of[p] + t reads channel c; register tile rows
 * mr_of[p], every KC slice) into its pre-packed layout at apack_of[p]: column kk of the
 * micro-panel of rows [i0, i0 + MR) lands at
 * apack_of[p] + dst_of[p][2 kk] + i0 * dst_of[p][2 kk + 1], the first number being k0 * m_pad + (kk - k0) * MR and the second the width kc of the KC
 * slice [k0, k0 + kc) that holds kk (the tables compute both once per shape: no division
 * here). r0 and r1 are multiples of every phase's MR (or r1 = m). Channel by channel, every
 * phase takes its taps of the rows [r0, r1) while they are in L1 (a transposed
 * convolution's weight holds one row's taps of one channel together): each line of the
 * weight is read from memory once, where a loop over the phases outside read the block again
 * from L2 for every phase (dcgan_g2's 8 MiB weight: see the performance notes).
 *
 * When every phase has the same MR, the rows are not stacked taps (row_stride > 1), the
 * phases take at most FD_PHASE_TILE_COLS taps in all, and a channel's taps lie within `span`
 * <= min(row_stride, FD_PHASE_TILE_COLS) columns of its rows, each micro-panel's rows of the
 * channel are transposed at once (fd_transpose.h, in register tiles unless the kernel is the
 * portable one) into a tile of span columns of MR values, and each phase's column is copied
 * out of it: dcgan_g2's 8 MiB weight took 1.24 ms value by value. Otherwise, value by value.
 * When every phase has the same MR, the rows go in passes of FD_PHASE_PASS_PANELS panels
 * over the channels (the stacked one-tap phases' copies too: unet_up 0.051 -> 0.037-0.044 ms).
 * Every phase has at least one tap. */
static void FD_SFX(fd_pack_a_phases)(ptrdiff_t m, const FD_T *a, ptrdiff_t row_stride,
                                     ptrdiff_t channels, ptrdiff_t phases,
                                     const ptrdiff_t *taps_of,
                                     const ptrdiff_t *const *col_offset_of,
                                     const ptrdiff_t *const *dst_of, const int *mr_of,
                                     FD_T *const *apack_of, ptrdiff_t r0, ptrdiff_t r1, int isa)
{
    int mr = mr_of[0], same_mr = 1;
    ptrdiff_t all_taps = 0;
    for (ptrdiff_t ph = 0; ph < phases; ++ph) {
        same_mr = same_mr && mr_of[ph] == mr;
        all_taps += taps_of[ph];
    }
    int tiled = same_mr && row_stride > 1 && mr <= FD_PHASE_TILE_ROWS;
    tiled = tiled && all_taps <= FD_PHASE_TILE_COLS;
    FD_T tile[FD_PHASE_TILE_COLS * FD_PHASE_TILE_ROWS];   /* tile[j * mr + r] */
    ptrdiff_t column_of[FD_PHASE_TILE_COLS];                /* a phase's tap: its tile column */
    ptrdiff_t rows_per_pass = same_mr ? (ptrdiff_t)FD_PHASE_PASS_PANELS * mr : r1 - r0;
    for (ptrdiff_t p0 = r0; p0 < r1; p0 += rows_per_pass) {
        ptrdiff_t p1 = p0 + rows_per_pass < r1 ? p0 + rows_per_pass : r1;
        for (ptrdiff_t c = 0; c < channels; ++c) {
            ptrdiff_t base = 0, span = 0, q = 0;
            if (tiled) {
                base = col_offset_of[0][c * taps_of[0]];
                for (ptrdiff_t ph = 0; ph < phases; ++ph)
                    for (ptrdiff_t t = 0; t < taps_of[ph]; ++t) {
                        ptrdiff_t col = col_offset_of[ph][c * taps_of[ph] + t];
                        base = col < base ? col : base;
                    }
                for (ptrdiff_t ph = 0; ph < phases; ++ph)
                    for (ptrdiff_t t = 0; t < taps_of[ph]; ++t, ++q) {
                        column_of[q] = col_offset_of[ph][c * taps_of[ph] + t] - base;
                        span = column_of[q] + 1 > span ? column_of[q] + 1 : span;
                    }
            }
            if (!tiled || span > row_stride || span > FD_PHASE_TILE_COLS) {
                FD_SFX(fd_pack_a_phases_gather)(m, a, row_stride, c, phases, taps_of,
                                                col_offset_of, dst_of, mr_of, apack_of, p0, p1);
                continue;
            }
            for (ptrdiff_t i0 = p0; i0 < p1; i0 += mr) {
                int n = m - i0 < mr ? (int)(m - i0) : mr;
                FD_SFX(fd_transpose)(a + i0 * row_stride + base, row_stride, tile, mr, n, span,
                                     isa != FD_ISA_PORTABLE);
                for (ptrdiff_t j = 0; j < span; ++j)
                    for (int r = n; r < mr; ++r) tile[j * mr + r] = 0;
                q = 0;
                for (ptrdiff_t ph = 0; ph < phases; ++ph) {
                    const ptrdiff_t *dst = dst_of[ph] + 2 * c * taps_of[ph];
                    for (ptrdiff_t t = 0; t < taps_of[ph]; ++t, ++q)
                        FD_SFX(fd_copy_width)(apack_of[ph] + dst[2 * t] + i0 * dst[2 * t + 1],
                                              tile + column_of[q] * mr, mr);
                }
            }
        }
    }
}

/* dst[0:len] = from[0:len] for a short run of a packed row (an output row of a small map,
 * inside one NR panel), inlined the same way: 32-byte moves, then at most three shorter ones
 * (a loop of run-time length would again become a memmove call). */
static inline void FD_SFX(fd_copy_run)(FD_T *restrict dst, const FD_T *restrict from,
                                       ptrdiff_t len)
{
    enum { W = 32 / sizeof(FD_T) };   /* elements of a 32-byte move: 8 float, 4 double */
    for (; len >= W; len -= W, dst += W, from += W) memcpy(dst, from, W * sizeof(FD_T));
    if (len >= W / 2) {
        memcpy(dst, from, W / 2 * sizeof(FD_T));
        len -= W / 2, dst += W / 2, from += W / 2;
    }
    if (W / 4 >= 2 && len >= W / 4) {   /* float: 2 more */
        memcpy(dst, from, W / 4 * sizeof(FD_T));
        len -= W / 4, dst += W / 4, from += W / 4;
    }
    if (len) *dst = *from;
}

#if FD_GEMM_X86 && FD_IS_FLOAT   /* once: the float instantiation comes first */
/* The whole NR-wide panels of a dense block of B, row by row, in 64-byte vector moves: row kk
 * of B (from src + kk * ld_bytes) holds `panels` panel rows of panel_bytes (a multiple of 64:
 * the AVX-512 tiles' 128 or 192 bytes), each copied to bpack + q * panel_stride + kk *
 * panel_bytes (2 or 3 lines); the row 16 ahead is prefetched. A copy of run-time length is a call of the C
 * library's memmove, whose cost per call is most of a 192-byte copy from L2. */
__attribute__((target("avx512f"))) static void fd_pack_panels_avx512(
    const char *src, ptrdiff_t ld_bytes, ptrdiff_t kc, ptrdiff_t panels, ptrdiff_t panel_bytes,
    char *restrict bpack)
{
    ptrdiff_t panel_stride = kc * panel_bytes, lines = panel_bytes / 64;
    for (ptrdiff_t kk = 0; kk < kc; ++kk) {
        const char *row = src + kk * ld_bytes;
        char *dst = bpack + kk * panel_bytes;
        for (ptrdiff_t q = 0; q < panels; ++q) {
            const char *from = row + q * panel_bytes;
            char *to = dst + q * panel_stride;
            if (kk + 16 < kc)
                for (ptrdiff_t e = 0; e < lines; ++e)
                    __builtin_prefetch(from + 16 * ld_bytes + 64 * e, 0, 3);
            /* a constant count of moves (a loop of run-time length is turned back into a
             * memcpy call by the compiler) */
            __m512i v0 = _mm512_loadu_si512((const void *)from);
            __m512i v1 = _mm512_loadu_si512((const void *)(from + 64));
            _mm512_storeu_si512((void *)to, v0);
            _mm512_storeu_si512((void *)(to + 64), v1);
            if (lines == 3)
                _mm512_storeu_si512((void *)(to + 128),
                                    _mm512_loadu_si512((const void *)(from + 128)));
        }
    }
}

/* dst[0:len] = from[0:2 len:2], the run of a stride-2 convolution's packed row (float32): per
 * 16 values, two masked loads of exactly the values read, their even elements picked by one
 * two-source permute, and one masked store; masked-out elements are not read, so nothing past
 * the run's last value is touched. Measured on resnet_s2 (runs of 14): the packing's share
 * 9.2 -> 7.8 %, 0.99x the time end to end; the same for float64 (8 a step) was 1.025x slower
 * than the compiler's loop, which float64 keeps. */
__attribute__((target("avx512f"))) static inline void fd_gather2_avx512_f(
    float *restrict dst, const float *restrict from, ptrdiff_t len)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (; len > 0; len -= 16, dst += 16, from += 32) {
        int n = len < 16 ? (int)len : 16, span = 2 * n - 1;
        __mmask16 lo_mask = (__mmask16)(span >= 16 ? 0xFFFFu : (1u << span) - 1);
        __mmask16 hi_mask = (__mmask16)(span > 16 ? (1u << (span - 16)) - 1 : 0u);
        __m512 lo = _mm512_maskz_loadu_ps(lo_mask, from);
        __m512 hi = _mm512_maskz_loadu_ps(hi_mask, from + 16);
        _mm512_mask_storeu_ps(dst, (__mmask16)(n == 16 ? 0xFFFFu : (1u << n) - 1),
                              _mm512_permutex2var_ps(lo, even, hi));
    }
}
#endif

/* Dense B: k x n (row stride ldb), or its transpose stored n x k when trans_b. */
static void FD_SFX(fd_pack_b_dense)(const FD_T *b, ptrdiff_t ldb, int trans_b, ptrdiff_t k0,
                                    ptrdiff_t kc, ptrdiff_t j0, ptrdiff_t nc, int nr,
                                    FD_T *restrict bpack, int isa)
{
    ptrdiff_t jp = 0;
#if FD_GEMM_X86
    /* AVX-512 tiles: the whole panels in 64-byte moves of our own (the library's copy below,
     * a call per panel row, measured 1.06x slower on pointwise's rows once they were
     * prefetched into L2) */
    if (!trans_b && nc >= nr && isa == FD_ISA_AVX512
            && (nr * sizeof(FD_T) == 128 || nr * sizeof(FD_T) == 192)) {
        ptrdiff_t full = nc / nr * nr;
        fd_pack_panels_avx512((const char *)(b + k0 * ldb + j0), ldb * (ptrdiff_t)sizeof(FD_T),
                              kc, full / nr, nr * (ptrdiff_t)sizeof(FD_T), (char *)bpack);
        jp = full;
    }
#else
    (void)isa;
#endif
    if (!trans_b && nc - jp >= nr) {
        /* The whole panels row by row: each row of B is read as one contiguous stretch of
           the block's columns, not as one short piece per panel over every row (hundreds of
           streams 1 row stride apart, which the prefetcher does not follow), and the row 16
           rows ahead is prefetched. */
        ptrdiff_t full = nc / nr * nr;   /* jp == 0 here */
        const FD_T *src = b + k0 * ldb + j0;
        for (ptrdiff_t kk = 0; kk < kc; ++kk)
            for (ptrdiff_t q = 0; q < full; q += nr) {
                if (kk + 16 < kc)
                    for (ptrdiff_t e = 0; e < nr; e += 64 / (ptrdiff_t)sizeof(FD_T))
                        __builtin_prefetch(src + (kk + 16) * ldb + q + e, 0, 3);
                memcpy(bpack + q * kc + kk * nr, src + kk * ldb + q, (size_t)nr * sizeof(FD_T));
            }
        jp = full;
    }
    for (; jp < nc; jp += nr) {
        FD_T *dst = bpack + jp * kc;
        int cols = nc - jp < nr ? (int)(nc - jp) : nr;
        if (trans_b) {
            for (int j = 0; j < cols; ++j) {
                const FD_T *src = b + (j0 + jp + j) * ldb + k0;
                for (ptrdiff_t kk = 0; kk < kc; ++kk) dst[kk * nr + j] = src[kk];
            }
            for (int j = cols; j < nr; ++j)
                for (ptrdiff_t kk = 0; kk < kc; ++kk) dst[kk * nr + j] = 0;
        } else if (cols == nr) {
            const FD_T *src = b + k0 * ldb + j0 + jp;
            for (ptrdiff_t kk = 0; kk < kc; ++kk)   /* rows of x out of cache: the C library's
                                                       widest copy is the fastest here */
                memcpy(dst + kk * nr, src + kk * ldb, (size_t)nr * sizeof(FD_T));
        } else {
            const FD_T *src = b + k0 * ldb + j0 + jp;
            for (ptrdiff_t kk = 0; kk < kc; ++kk) {
                int j = 0;
                for (; j < cols; ++j) dst[kk * nr + j] = src[kk * ldb + j];
                for (; j < nr; ++j) dst[kk * nr + j] = 0;
            }
        }
    }
}


#define FD_PACK_NAME FD_SFX(fd_pack_b_conv_base)
#define FD_PACK_TARGET
#include "fd_pack_conv.h"
#if FD_GEMM_X86
#define FD_PACK_NAME FD_SFX(fd_pack_b_conv_avx512)
#define FD_PACK_TARGET __attribute__((target("avx512f")))
#if FD_IS_FLOAT
#define FD_PACK_GATHER2 fd_gather2_avx512_f
#endif
#include "fd_pack_conv.h"
#endif

/* The convolution's B (fd_pack_conv.h), packed by the AVX-512 build of the copies when the
 * kernel is AVX-512's. */
static void FD_SFX(fd_pack_b_conv)(const fd_conv_src *src, const FD_T *xp, const fd_run *runs,
                                   ptrdiff_t nruns, ptrdiff_t k0, ptrdiff_t kc, ptrdiff_t nc,
                                   int nr, FD_T *restrict bpack, int isa)
{
#if FD_GEMM_X86
    if (isa == FD_ISA_AVX512) {
        FD_SFX(fd_pack_b_conv_avx512)(src, xp, runs, nruns, k0, kc, nc, nr, bpack);
        return;
    }
#endif
    (void)isa;
    FD_SFX(fd_pack_b_conv_base)(src, xp, runs, nruns, k0, kc, nc, nr, bpack);
}
