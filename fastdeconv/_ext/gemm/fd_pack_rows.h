/* The gathered-rows B packer (fd_rows_src), instantiated per dtype by fd_gemm.h (FD_T,
 * FD_SFX(name)): the B operand of a weight gradient, whose reduction runs over the output
 * positions, read from a channels-last copy of the padded input.
 *
 *     gW[co, (t, c)] = sum over positions k of  gy[k, co] * x_cl[pos(k) + tap(t), c]
 *
 * Channels are the contiguous axis of both the source (a pixel's channels) and of a packed
 * row (NR columns), so every row of a micro-panel is one or a few straight copies: no
 * transposition. The packed layout is fd_pack.h's: bpack[p * kc * NR + k * NR + j].
 */

/* dst[kk * nr + e] = from[rows[kk] + e], e < nr, kk < kc: each row one fd_copy_width
 * (inlined vector moves for the tiles' widths; the switch on nr is loop-invariant, and -O3
 * takes it out of the loop). */
static inline void FD_SFX(fd_copy_rows)(
    const FD_T *from, const ptrdiff_t *rows, ptrdiff_t kc, FD_T *restrict dst, int nr)
{
    for (ptrdiff_t kk = 0; kk < kc; ++kk)
        FD_SFX(fd_copy_width)(dst + kk * nr, from + rows[kk], nr);
}

/* Rows [k0, k0 + kc) and columns [j0, j0 + nc) of the gathered-rows B into NR-column
 * micro-panels at bpack, zero past column nc. Every offset was checked by the caller. */
static void FD_SFX(fd_pack_b_rows)(const fd_rows_src *src, const FD_T *base, ptrdiff_t k0,
                                   ptrdiff_t kc, ptrdiff_t j0, ptrdiff_t nc, int nr,
                                   FD_T *restrict bpack)
{
    const ptrdiff_t *rows = src->row_offset + k0;
    ptrdiff_t width = src->width;
    for (ptrdiff_t jp = 0; jp < nc; jp += nr) {
        FD_T *dst = bpack + jp * kc;
        int cols = nc - jp < nr ? (int)(nc - jp) : nr;
        ptrdiff_t col = j0 + jp, tap = col / width, c = col % width;
        if (width - c >= nr && cols == nr) {   /* the panel is one run: one copy per row */
            FD_SFX(fd_copy_rows)(base + src->tap_offset[tap] + c, rows, kc, dst, nr);
            continue;
        }
        for (ptrdiff_t kk = 0; kk < kc; ++kk) {   /* runs of one tap each, then zeros */
            const FD_T *row = base + rows[kk];
            FD_T *restrict d = dst + kk * nr;
            ptrdiff_t t = tap, cc = c;
            int j = 0;
            while (j < cols) {
                ptrdiff_t len = width - cc < cols - j ? width - cc : cols - j;
                const FD_T *restrict s = row + src->tap_offset[t] + cc;
                for (ptrdiff_t e = 0; e < len; ++e) d[j + e] = s[e];
                j += (int)len;
                cc = 0;
                ++t;
            }
            for (; j < nr; ++j) d[j] = 0;
        }
    }
}
