/* The portable micro-kernel (plain C that the compiler vectorises for the build's baseline:
 * SSE2 on x86-64, NEON on aarch64), instantiated per dtype by fd_gemm.h with FD_UKR_NAME,
 * FD_T, FD_MR, FD_NR. Same contract and store formula as fd_ukernel.h. */
static void FD_UKR_NAME(ptrdiff_t kc, const FD_T *restrict a, const FD_T *restrict b,
                        ptrdiff_t ldb, FD_T *restrict c, ptrdiff_t ldc, int add, const FD_T *restrict bias,
                        fd_prefetch *restrict pf)
{
    /* the portable kernel neither prefetches nor copies; it reads A in place (a_offset) */
    const ptrdiff_t *a_offset = pf ? pf->a_offset : NULL;
    const FD_T *a0 = a;
    FD_T acc[FD_MR][FD_NR];
    for (int r = 0; r < FD_MR; ++r)
        for (int j = 0; j < FD_NR; ++j) acc[r][j] = 0;
    for (ptrdiff_t k = 0; k < kc; ++k) {
        if (a_offset) a = a0 + a_offset[k];
        for (int r = 0; r < FD_MR; ++r) {
            FD_T ar = a[r];
            for (int j = 0; j < FD_NR; ++j) acc[r][j] += ar * b[j];
        }
        a += FD_MR;
        b += ldb;
    }
    for (int r = 0; r < FD_MR; ++r)
        for (int j = 0; j < FD_NR; ++j) {
            FD_T val = acc[r][j];
            if (bias) val = val + bias[r];
            if (add) val = val + c[r * ldc + j];
            c[r * ldc + j] = val;
        }
}

#undef FD_UKR_NAME
#undef FD_MR
#undef FD_NR
