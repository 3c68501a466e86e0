/* The convolution's B packer, instantiated per dtype and per instruction set by fd_pack.h
 * (FD_T, FD_SFX(name), FD_PACK_NAME, FD_PACK_TARGET, and optionally FD_PACK_GATHER2: a
 * vectorised run of a stride-2 row, fd_gather2_avx512_*): the same copies, compiled once for the
 * build's baseline and once for AVX-512, where a panel row of 48 floats is three 64-byte
 * moves instead of twelve 16-byte ones and a run of 16 one move instead of two. The values
 * packed are the same.
 *
 * Convolution B: B[c * taps + t, l] = xp[c, o(l) * stride + t * dilation] over the padded input
 * xp (zero padding already applied, so every read is in bounds). The runs of positions that
 * share one output row and one NR panel are listed once per block (fd_conv_runs); each row of
 * B then copies every run with one strided (or, for stride 1, contiguous) loop. */
FD_PACK_TARGET static void FD_PACK_NAME(const fd_conv_src *src, const FD_T *xp,
                                        const fd_run *runs, ptrdiff_t nruns, ptrdiff_t k0,
                                        ptrdiff_t kc, ptrdiff_t nc, int nr,
                                        FD_T *restrict bpack)
{
    ptrdiff_t taps = src->taps, s = src->stride_last;
    ptrdiff_t panels = (nc + nr - 1) / nr;
    ptrdiff_t c = k0 / taps, t = k0 % taps;
    if (s == 1 && nruns > FD_GROUP_RUNS_PER_PANEL * panels) {
        /* short runs (the output rows of a small map: 12 runs of 4 in a float32 panel):
         * panel by panel, each row of the panel written at once from all of its runs; run by
         * run, the rows of a panel were written one run at a time, every row each time
         * (0.92-0.96x the time for 4x4 and 6x6 maps, float32; 1.07x slower for runs of 16) */
        for (ptrdiff_t q = 0; q < nruns;) {
            ptrdiff_t end = q + 1, cc = c, tt = t;
            while (end < nruns && runs[end].panel == runs[q].panel) ++end;
            FD_T *dst = bpack + runs[q].panel * kc * nr;
            for (ptrdiff_t kk = 0; kk < kc; ++kk, dst += nr) {
                const FD_T *row = xp + cc * src->channel_stride + src->tap_offset[tt];
                for (ptrdiff_t r = q; r < end; ++r)
                    FD_SFX(fd_copy_run)(dst + runs[r].lane, row + runs[r].src, runs[r].len);
                if (++tt == taps) { tt = 0; ++cc; }
            }
            q = end;
        }
    } else if (s == 1) {
        /* run by run, every row of B for it: a run's panel, lane and length are read once
         * per slice, not once per row (the runs of a small map are a row of it: 16 values
         * of dcgan_g4's phases, where the bookkeeping per run cost as much as the copy) */
        for (ptrdiff_t q = 0; q < nruns; ++q) {
            FD_T *dst = bpack + runs[q].panel * kc * nr + runs[q].lane;
            const FD_T *from = xp + runs[q].src;
            ptrdiff_t len = runs[q].len, cc = c, tt = t;
            for (ptrdiff_t kk = 0; kk < kc; ++kk, dst += nr) {
                const FD_T *row = from + cc * src->channel_stride + src->tap_offset[tt];
                if (len == nr) FD_SFX(fd_copy_width)(dst, row, nr);
                else FD_SFX(fd_copy_run)(dst, row, len);
                if (++tt == taps) { tt = 0; ++cc; }
            }
        }
    }
    if (s == 1) {
        if (nc % nr)   /* zero the columns past nc of the last panel */
            for (ptrdiff_t kk = 0; kk < kc; ++kk) {
                FD_T *dst = bpack + (panels - 1) * kc * nr + kk * nr;
                for (ptrdiff_t j = nc % nr; j < nr; ++j) dst[j] = 0;
            }
        return;
    }
    for (ptrdiff_t kk = 0; kk < kc; ++kk) {
        const FD_T *xrow = xp + c * src->channel_stride + src->tap_offset[t];
        for (ptrdiff_t q = 0; q < nruns; ++q) {
            FD_T *dst = bpack + runs[q].panel * kc * nr + kk * nr + runs[q].lane;
            const FD_T *from = xrow + runs[q].src;
            ptrdiff_t len = runs[q].len;
            if (s == 2) {   /* a constant stride: vectorised with shuffles */
#ifdef FD_PACK_GATHER2
                FD_PACK_GATHER2(dst, from, len);
#else
                for (ptrdiff_t i = 0; i < len; ++i) dst[i] = from[2 * i];
#endif
            } else {
                for (ptrdiff_t i = 0; i < len; ++i) dst[i] = from[i * s];
            }
        }
        if (nc % nr) {   /* zero the columns past nc of the last panel */
            FD_T *dst = bpack + (panels - 1) * kc * nr + kk * nr;
            for (ptrdiff_t j = nc % nr; j < nr; ++j) dst[j] = 0;
        }
        if (++t == taps) { t = 0; ++c; }
    }
}

#undef FD_PACK_NAME
#undef FD_PACK_TARGET
#undef FD_PACK_GATHER2
