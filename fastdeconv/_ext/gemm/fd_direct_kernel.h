/* One direct-convolution micro-kernel, instantiated per (instruction set, dtype, vectors) by
 * fd_direct.h.
 *
 *     tile[r, j] = sum over taps t, channels c of  x[offsets[t * MR + r] + c] * w[(t, c), j]
 *
 * for the MR output positions r (offsets[t * MR + r]: where tap t of position r starts in
 * the channels-last input, or a row of zeros for padding) and the NV x VLEN output channels j of one
 * packed weight panel (w: for every (t, c) in that order, NV vectors). The MR x NV
 * accumulators stay in registers over the whole sum (taps x channels values), so every
 * output value is one chain of multiply-adds in a fixed order whatever the thread or work
 * item. x is read in place: the MR values of one (t, c) are broadcast one at a time from
 * their rows, so no input is packed. The tile is stored with row stride ldt.
 *
 * Parameters before inclusion: FD_DK_NAME, FD_T, FD_MR, FD_NV, FD_TARGET, FD_V, FD_VLEN and
 * the intrinsics family FD_PFX / FD_SFX_OP (as fd_ukernel.h). Everything is #undef'd at the
 * end.
 */
FD_TARGET FD_NOINLINE static void FD_DK_NAME(const FD_T *restrict x,
                                             const ptrdiff_t *restrict offsets, ptrdiff_t ntaps,
                                             ptrdiff_t channels, const FD_T *restrict w,
                                             FD_T *restrict tile, ptrdiff_t ldt)
{
    FD_V acc[FD_MR][FD_NV];
    _Pragma("GCC unroll 16")
    for (int r = 0; r < FD_MR; ++r) {
        _Pragma("GCC unroll 4")
        for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VOP(setzero)();
    }
    for (ptrdiff_t t = 0; t < ntaps; ++t) {
        const FD_T *p[FD_MR];
        _Pragma("GCC unroll 16")
        for (int r = 0; r < FD_MR; ++r) p[r] = x + offsets[t * FD_MR + r];
        for (ptrdiff_t c = 0; c < channels; ++c) {
            FD_V bv[FD_NV];
            _Pragma("GCC unroll 4")
            for (int v = 0; v < FD_NV; ++v) bv[v] = FD_VOP(loadu)(w + v * FD_VLEN);
            w += FD_NV * FD_VLEN;
            _Pragma("GCC unroll 16")
            for (int r = 0; r < FD_MR; ++r) {
                FD_V av = FD_VOP(set1)(p[r][c]);
                _Pragma("GCC unroll 4")
                for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VOP(fmadd)(av, bv[v], acc[r][v]);
            }
        }
    }
    _Pragma("GCC unroll 16")
    for (int r = 0; r < FD_MR; ++r) {
        _Pragma("GCC unroll 4")
        for (int v = 0; v < FD_NV; ++v) FD_VOP(storeu)(tile + r * ldt + v * FD_VLEN, acc[r][v]);
    }
}

#undef FD_DK_NAME
#undef FD_NV
