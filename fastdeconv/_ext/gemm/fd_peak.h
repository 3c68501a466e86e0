/* Measurement helpers (benchmarks/gemm_kernels.py): the micro-kernel alone on L1-resident
 * panels, and the machine's multiply-add peak for one kernel's vector width -- independent
 * chains of fused multiply-adds with no loads, as many as the micro-kernel has accumulators.
 * Not used by any computation. */
#ifndef FASTDECONV_GEMM_PEAK_H
#define FASTDECONV_GEMM_PEAK_H

#include "fd_gemm.h"

/* `calls` calls of one micro-kernel over kc on packed panels of zeros; the flops done. */
static double fd_time_ukr(int isa, int is_double, int tile, ptrdiff_t kc, ptrdiff_t calls,
                          void *scratch)
{
    const fd_blocking *b = &fd_blocking_table[isa][is_double ? 1 : 0][tile];
    size_t elem = is_double ? 8 : 4;
    char *a = (char *)scratch, *bp = a + b->mr * kc * elem, *c = bp + b->nr * kc * elem;
    memset(scratch, 0, (size_t)(b->mr * kc + b->nr * kc + b->mr * b->nr) * elem);
    for (ptrdiff_t i = 0; i < calls; ++i) {
        if (is_double)
            fd_ukr_for_d(isa, tile, FD_B_PACKED)(kc, (double *)a, (double *)bp, b->nr, (double *)c, b->nr, 1, NULL, NULL);
        else
            fd_ukr_for_f(isa, tile, FD_B_PACKED)(kc, (float *)a, (float *)bp, b->nr, (float *)c, b->nr, 1, NULL, NULL);
    }
    return 2.0 * b->mr * b->nr * kc * (double)calls;
}

#if FD_GEMM_X86
#define FD_PEAK_CHAINS 24
__attribute__((target("avx512f"))) static double fd_peak_avx512(ptrdiff_t iters, float *sink)
{
    __m512 acc[FD_PEAK_CHAINS], x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-8f);
    for (int j = 0; j < FD_PEAK_CHAINS; ++j) acc[j] = _mm512_set1_ps((float)j);
    for (ptrdiff_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
        for (int j = 0; j < FD_PEAK_CHAINS; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
        __asm__ volatile("" : "+v"(x));
    }
    for (int j = 0; j < FD_PEAK_CHAINS; ++j) *sink += _mm512_reduce_add_ps(acc[j]);
    return 2.0 * 16 * FD_PEAK_CHAINS * (double)iters;
}

__attribute__((target("avx2,fma"))) static double fd_peak_avx2(ptrdiff_t iters, float *sink)
{
    __m256 acc[12], x = _mm256_set1_ps(1.0f), y = _mm256_set1_ps(1e-8f);
    float lanes[8];
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps((float)j);
    for (ptrdiff_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
        __asm__ volatile("" : "+x"(x));
    }
    for (int j = 0; j < 12; ++j) { _mm256_storeu_ps(lanes, acc[j]); *sink += lanes[0]; }
    return 2.0 * 8 * 12 * (double)iters;
}
#endif

/* float32 flops of `iters` peak iterations for the kernel's vector width (0: no vector peak). */
static double fd_time_peak(int isa, ptrdiff_t iters)
{
    float sink = 0;
    double flops = 0;
#if FD_GEMM_X86
    if (isa == FD_ISA_AVX512) flops = fd_peak_avx512(iters, &sink);
    else if (isa == FD_ISA_AVX2) flops = fd_peak_avx2(iters, &sink);
#endif
    (void)isa; (void)iters;
    return sink == 12345.0f ? flops + 1 : flops;
}

#endif /* FASTDECONV_GEMM_PEAK_H */
