/* One register-blocked micro-kernel, instantiated per (instruction set, dtype) by fd_gemm.h.
 *
 *     C[MR x NR] (+)= A_panel[MR x kc] * B_panel[kc x NR]   (+ bias[r] per row, first slice)
 *
 * A_panel holds, for every k, the MR values of one column of A (broadcast one at a time);
 * B_panel holds, for every k, NR consecutive values of one row of B (NV vectors). The MR x NV
 * accumulators stay in registers for the whole kc loop; each C element is the same sequence
 * of fused multiply-adds over k whatever thread or tile computes it.
 *
 * Store: v = acc (+ bias[r]) (+ C), written with ldc. pf (or NULL): a stream of cache lines
 * to prefetch, one every other k while the stream lasts (fd_prefetch_step; the driver points
 * it at the next block of B it will pack), or, with pf->copy_to, the next panel of B to copy,
 * one row per k (vector by vector, or in 16-byte pieces), or, with pf->a_offset, the rows of
 * A in place: row k of the panel at a + a_offset[k] (nothing prefetched or copied, but that
 * row FD_A_PREFETCH_AHEAD positions ahead into L1). Parameters before inclusion:
 *   FD_UKR_NAME, FD_T, FD_MR, FD_NV (vectors per row), FD_TARGET (function attribute), and the
 *   intrinsics family: FD_V (vector type), FD_VLEN (lanes), FD_PFX / FD_SFX_OP (_mm512_ / _ps:
 *   the intrinsics are FD_PFX##name##FD_SFX_OP). Everything is #undef'd at the end.
 */
#define FD_VZERO() FD_VOP(setzero)()
#define FD_VLOAD(p) FD_VOP(loadu)(p)
#define FD_VSET1(x) FD_VOP(set1)(x)
#define FD_VFMA(a, b, acc) FD_VOP(fmadd)(a, b, acc)
#define FD_VADD(a, b) FD_VOP(add)(a, b)
#define FD_VSTORE(p, v) FD_VOP(storeu)(p, v)

FD_TARGET static void FD_UKR_NAME(ptrdiff_t kc, const FD_T *restrict a, const FD_T *restrict b,
                                  FD_T *restrict c, ptrdiff_t ldc, int add,
                                  const FD_T *restrict bias, fd_prefetch *restrict pf)
{
    FD_V acc[FD_MR][FD_NV];
#pragma GCC unroll 32
    for (int r = 0; r < FD_MR; ++r) {   /* C's tile arrives while the k loop runs */
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v) __builtin_prefetch(c + r * ldc + v * FD_VLEN, 1, 3);
    }
#pragma GCC unroll 32
    for (int r = 0; r < FD_MR; ++r) {
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VZERO();
    }
#define FD_UKR_STEP()                                                                      \
    do {                                                                                  \
        FD_V bv[FD_NV];                                                                   \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) bv[v] = FD_VLOAD(b + v * FD_VLEN);               \
        _Pragma("GCC unroll 32")                                                          \
        for (int r = 0; r < FD_MR; ++r) {                                                 \
            FD_V av = FD_VSET1(a[r]);                                                     \
            _Pragma("GCC unroll 8")                                                       \
            for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VFMA(av, bv[v], acc[r][v]);    \
        }                                                                                 \
        a += FD_MR;                                                                       \
        b += FD_NV * FD_VLEN;                                                             \
    } while (0)
    ptrdiff_t k = 0;
    if (pf && pf->a_offset) {   /* A read in place: row k of the panel at a + a_offset[k] */
        const ptrdiff_t *a_offset = pf->a_offset;
        const FD_T *a0 = a;
        for (; k + FD_A_PREFETCH_AHEAD < kc; ++k) {   /* its two ends: a row may cross a line */
            const FD_T *ahead = a0 + a_offset[k + FD_A_PREFETCH_AHEAD];
            __builtin_prefetch(ahead, 0, 3);
            __builtin_prefetch(ahead + FD_MR - 1, 0, 3);
            a = a0 + a_offset[k];
            FD_UKR_STEP();
        }
        for (; k < kc; ++k) {
            a = a0 + a_offset[k];
            FD_UKR_STEP();
        }
    } else if (pf && pf->copy_to && pf->pieces) {   /* the next panel, in 16-byte pieces */
        enum { PIECES = FD_NV * FD_VLEN * (int)sizeof(FD_T) / 16 };
        const char *from = pf->row;
        const ptrdiff_t *row_offset = pf->row_offset;
        ptrdiff_t piece_src[PIECES];
        char *to = pf->copy_to;
#pragma GCC unroll 16
        for (int q = 0; q < PIECES; ++q) piece_src[q] = pf->vec_src[q] * (ptrdiff_t)sizeof(FD_T);
        for (; k < kc; ++k) {
            FD_UKR_STEP();
            const char *row = from + row_offset[k] * (ptrdiff_t)sizeof(FD_T);
#pragma GCC unroll 16
            for (int q = 0; q < PIECES; ++q)
                _mm_storeu_si128((__m128i *)(to + 16 * q),
                                 _mm_loadu_si128((const __m128i *)(row + piece_src[q])));
            to += PIECES * 16;
        }
    } else if (pf && pf->copy_to) {   /* the next panel, vector by vector */
        const FD_T *from = (const FD_T *)pf->row;
        const ptrdiff_t *row_offset = pf->row_offset;
        ptrdiff_t vec_src[FD_NV];
        FD_T *to = (FD_T *)pf->copy_to;
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v) vec_src[v] = pf->vec_src[v];
        for (; k < kc; ++k) {
            FD_UKR_STEP();
            const FD_T *row = from + row_offset[k];
#pragma GCC unroll 8
            for (int v = 0; v < FD_NV; ++v)
                FD_VSTORE(to + v * FD_VLEN, FD_VLOAD(row + vec_src[v]));
            to += FD_NV * FD_VLEN;
        }
    } else if (pf) {   /* a line of the next block of B every other k, while the FMAs run */
        for (; k + 1 < kc && pf->rows > 0; k += 2) {
            FD_UKR_STEP();
            FD_UKR_STEP();
            fd_prefetch_step(pf);
        }
    }
    for (; k < kc; ++k) FD_UKR_STEP();
#undef FD_UKR_STEP
#pragma GCC unroll 32
    for (int r = 0; r < FD_MR; ++r) {
        FD_T *cr = c + r * ldc;
        FD_V bias_r = bias ? FD_VSET1(bias[r]) : FD_VZERO();
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v) {
            FD_V val = acc[r][v];
            if (bias) val = FD_VADD(val, bias_r);
            if (add) val = FD_VADD(val, FD_VLOAD(cr + v * FD_VLEN));
            FD_VSTORE(cr + v * FD_VLEN, val);
        }
    }
}

#undef FD_UKR_NAME
#undef FD_MR
#undef FD_NV
#undef FD_TARGET
#undef FD_V
#undef FD_VLEN
#undef FD_PFX
#undef FD_SFX_OP
#undef FD_VZERO
#undef FD_VLOAD
#undef FD_VSET1
#undef FD_VFMA
#undef FD_VADD
#undef FD_VSTORE
