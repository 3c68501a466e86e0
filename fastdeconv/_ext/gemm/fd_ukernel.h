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
 * row FD_A_PREFETCH_AHEAD positions ahead into L1). ldb is not read: B is a packed panel.
 *
 * FD_UKR_NAME##_rows is the same kernel on a B read in place, its rows ldb elements apart
 * (a dense B's whole NR-wide panel, not packed: fd_gemm_item_ex), which prefetches into L1
 * the row it will read FD_B_PREFETCH_AHEAD positions ahead and, with pf, a line of the next
 * block of B every other k; it neither copies nor reads A in place. FD_UKR_NAME##_vectors
 * reads a convolution's panel in place: vector v of row k at b + row_offset[k] + vec_src[v]
 * (pf's tables, those of a copy). Each is a function of its own (not one with a branch on
 * ldb): the extra pointers of the other loops made GCC keep an accumulator on the stack.
 * Parameters before inclusion:
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

/* C's tile prefetched (it arrives while the k loop runs); the accumulators zeroed. */
#define FD_UKR_BEGIN()                                                                     \
    FD_V acc[FD_MR][FD_NV];                                                               \
    _Pragma("GCC unroll 32")                                                              \
    for (int r = 0; r < FD_MR; ++r) {                                                     \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) __builtin_prefetch(c + r * ldc + v * FD_VLEN, 1, 3); \
    }                                                                                     \
    _Pragma("GCC unroll 32")                                                              \
    for (int r = 0; r < FD_MR; ++r) {                                                     \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VZERO();                          \
    }
/* One k: the row of B (b, then b += B_STEP) times the column of A (a, then a += MR). */
#define FD_UKR_STEP_BY(B_STEP)                                                             \
    do {                                                                                  \
        FD_V bv[FD_NV];                                                                   \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) bv[v] = FD_VLOAD(b + v * FD_VLEN);               \
        FD_UKR_MUL(bv);                                                                   \
        b += (B_STEP);                                                                    \
    } while (0)
/* The row of B in bv times the column of A (a, then a += MR). */
#define FD_UKR_MUL(bv)                                                                     \
    do {                                                                                  \
        _Pragma("GCC unroll 32")                                                          \
        for (int r = 0; r < FD_MR; ++r) {                                                 \
            FD_V av = FD_VSET1(a[r]);                                                     \
            _Pragma("GCC unroll 8")                                                       \
            for (int v = 0; v < FD_NV; ++v) acc[r][v] = FD_VFMA(av, bv[v], acc[r][v]);    \
        }                                                                                 \
        a += FD_MR;                                                                       \
    } while (0)
/* v = acc (+ bias[r]) (+ C), stored with ldc. */
#define FD_UKR_END()                                                                       \
    _Pragma("GCC unroll 32")                                                              \
    for (int r = 0; r < FD_MR; ++r) {                                                     \
        FD_T *cr = c + r * ldc;                                                           \
        FD_V bias_r = bias ? FD_VSET1(bias[r]) : FD_VZERO();                              \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) {                                                 \
            FD_V val = acc[r][v];                                                         \
            if (bias) val = FD_VADD(val, bias_r);                                         \
            if (add) val = FD_VADD(val, FD_VLOAD(cr + v * FD_VLEN));                      \
            FD_VSTORE(cr + v * FD_VLEN, val);                                             \
        }                                                                                 \
    }

#define FD_UKR_PARAMS                                                                      \
    (ptrdiff_t kc, const FD_T *restrict a, const FD_T *restrict b, ptrdiff_t ldb,          \
     FD_T *restrict c, ptrdiff_t ldc, int add, const FD_T *restrict bias,                 \
     fd_prefetch *restrict pf)
#define FD_UKR_STEP() FD_UKR_STEP_BY(FD_NV * FD_VLEN)

/* A read in place: row k of the panel at a + a_offset[k], the row FD_A_PREFETCH_AHEAD on
 * prefetched (its two ends: a row may cross a line). */
FD_TARGET FD_NOINLINE static void FD_CAT2(FD_UKR_NAME, _a_rows) FD_UKR_PARAMS
{
    (void)ldb;
    FD_UKR_BEGIN()
    const ptrdiff_t *a_offset = pf->a_offset;
    const FD_T *a0 = a;
    ptrdiff_t k = 0;
    for (; k + FD_A_PREFETCH_AHEAD < kc; ++k) {
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
    FD_UKR_END()
}

/* The next panel of B copied in 16-byte pieces, one row per k, between the multiply-adds. */
FD_TARGET FD_NOINLINE FD_ONE_LOOP static void FD_CAT2(FD_UKR_NAME, _copy_pieces) FD_UKR_PARAMS
{
    (void)ldb;
    FD_UKR_BEGIN()
    enum { PIECES = FD_NV * FD_VLEN * (int)sizeof(FD_T) / 16 };
    const char *from = pf->row;
    const ptrdiff_t *row_offset = pf->row_offset;
    ptrdiff_t piece_src[PIECES];
    char *to = pf->copy_to;
#pragma GCC unroll 16
    for (int q = 0; q < PIECES; ++q) piece_src[q] = pf->vec_src[q] * (ptrdiff_t)sizeof(FD_T);
    for (ptrdiff_t k = 0; k < kc; ++k) {
        FD_UKR_STEP();
        const char *row = from + row_offset[k] * (ptrdiff_t)sizeof(FD_T);
#pragma GCC unroll 16
        for (int q = 0; q < PIECES; ++q)
            _mm_storeu_si128((__m128i *)(to + 16 * q),
                             _mm_loadu_si128((const __m128i *)(row + piece_src[q])));
        to += PIECES * 16;
    }
    FD_UKR_END()
}

/* The next panel of B copied vector by vector, one row per k, between the multiply-adds. */
FD_TARGET FD_NOINLINE FD_ONE_LOOP static void FD_CAT2(FD_UKR_NAME, _copy) FD_UKR_PARAMS
{
    (void)ldb;
    FD_UKR_BEGIN()
    const FD_T *from = (const FD_T *)pf->row;
    const ptrdiff_t *row_offset = pf->row_offset;
    ptrdiff_t vec_src[FD_NV];
    FD_T *to = (FD_T *)pf->copy_to;
#pragma GCC unroll 8
    for (int v = 0; v < FD_NV; ++v) vec_src[v] = pf->vec_src[v];
    for (ptrdiff_t k = 0; k < kc; ++k) {
        FD_UKR_STEP();
        const FD_T *row = from + row_offset[k];
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v)
            FD_VSTORE(to + v * FD_VLEN, FD_VLOAD(row + vec_src[v]));
        to += FD_NV * FD_VLEN;
    }
    FD_UKR_END()
}

/* The kernel on a packed panel of B: with pf, a line of the next block of B prefetched every
 * other k while the stream lasts; pf's other modes are the functions above (one function
 * each, so that each loop has the registers to itself). */
FD_TARGET static void FD_UKR_NAME FD_UKR_PARAMS
{
    if (pf && pf->a_offset) {
        FD_CAT2(FD_UKR_NAME, _a_rows)(kc, a, b, ldb, c, ldc, add, bias, pf);
        return;
    }
    if (pf && pf->copy_to) {
        if (pf->pieces) FD_CAT2(FD_UKR_NAME, _copy_pieces)(kc, a, b, ldb, c, ldc, add, bias, pf);
        else FD_CAT2(FD_UKR_NAME, _copy)(kc, a, b, ldb, c, ldc, add, bias, pf);
        return;
    }
    (void)ldb;
    FD_UKR_BEGIN()
    ptrdiff_t k = 0;
    if (pf) {
        for (; k + 1 < kc && pf->rows > 0; k += 2) {
            FD_UKR_STEP();
            FD_UKR_STEP();
            fd_prefetch_step(pf);
        }
    }
    for (; k < kc; ++k) FD_UKR_STEP();
    FD_UKR_END()
}

/* B read in place, its rows ldb elements apart (a dense B's whole panel): the row
 * FD_B_PREFETCH_AHEAD on prefetched into L1 (every line it touches) and, with pf, a line of
 * the next block of B every other k. */
FD_TARGET static void FD_CAT2(FD_UKR_NAME, _rows) FD_UKR_PARAMS
{
    FD_UKR_BEGIN()
    ptrdiff_t k = 0;
    for (; k + FD_B_PREFETCH_AHEAD < kc; ++k) {
        const char *ahead = (const char *)(b + FD_B_PREFETCH_AHEAD * ldb);
#pragma GCC unroll 8
        for (int q = 0; q < (int)(FD_NV * FD_VLEN * sizeof(FD_T)) / 64; ++q)
            __builtin_prefetch(ahead + 64 * q, 0, 3);
        __builtin_prefetch(ahead + FD_NV * FD_VLEN * sizeof(FD_T) - 1, 0, 3);
        FD_UKR_STEP_BY(ldb);
        if (pf && (k & 1) && pf->rows > 0) fd_prefetch_step(pf);
    }
    for (; k < kc; ++k) FD_UKR_STEP_BY(ldb);
    FD_UKR_END()
}
/* A convolution's panel of B read in place: vector v of row k at b + row_offset[k] +
 * vec_src[v] (pf's tables, as for a copy: a panel whose every vector lies in one run of the
 * padded input), the row FD_B_PREFETCH_AHEAD on prefetched into L1. */
FD_TARGET static void FD_CAT2(FD_UKR_NAME, _vectors) FD_UKR_PARAMS
{
    (void)ldb;
    FD_UKR_BEGIN()
    const ptrdiff_t *row_offset = pf->row_offset;
    ptrdiff_t vec_src[FD_NV];
#pragma GCC unroll 8
    for (int v = 0; v < FD_NV; ++v) vec_src[v] = pf->vec_src[v];
#define FD_UKR_STEP_VECTORS()                                                              \
    do {                                                                                  \
        const FD_T *row = b + row_offset[k];                                              \
        FD_V bv[FD_NV];                                                                   \
        _Pragma("GCC unroll 8")                                                           \
        for (int v = 0; v < FD_NV; ++v) bv[v] = FD_VLOAD(row + vec_src[v]);              \
        FD_UKR_MUL(bv);                                                                   \
    } while (0)
    ptrdiff_t k = 0;
    for (; k + FD_B_PREFETCH_AHEAD < kc; ++k) {
        const FD_T *ahead = b + row_offset[k + FD_B_PREFETCH_AHEAD];
#pragma GCC unroll 8
        for (int v = 0; v < FD_NV; ++v) __builtin_prefetch(ahead + vec_src[v], 0, 3);
        FD_UKR_STEP_VECTORS();
    }
    for (; k < kc; ++k) FD_UKR_STEP_VECTORS();
#undef FD_UKR_STEP_VECTORS
    FD_UKR_END()
}
#undef FD_UKR_PARAMS
#undef FD_UKR_STEP
#undef FD_UKR_BEGIN
#undef FD_UKR_STEP_BY
#undef FD_UKR_MUL
#undef FD_UKR_END

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
