/* Out-of-place matrix transposition in registers:
 *
 *     dst[j * ldd + i] = src[i * lds + j]      for i < rows, j < cols
 *
 * in 8 x 8 (float; 4 x 4 SSE tiles for the first four of 4-7 rows left over) and 4 x 4
 * (double) register tiles with AVX shuffles where the CPU has AVX (function attribute
 * target("avx"), chosen at run time: no -march flag), in plain C
 * otherwise and for the edges (any CPU, aarch64 included; -DFD_GEMM_PORTABLE_ONLY forces
 * it). A copy is exact: both versions give the same bits.
 */
#ifndef FASTDECONV_TRANSPOSE_H
#define FASTDECONV_TRANSPOSE_H

#include <stddef.h>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(FD_GEMM_PORTABLE_ONLY)
#define FD_TRANSPOSE_X86 1
#include <immintrin.h>
#else
#define FD_TRANSPOSE_X86 0
#endif

#define FD_TRANSPOSE_PLAIN(T, name)                                                          \
    static void name(const T *src, ptrdiff_t lds, T *dst, ptrdiff_t ldd, ptrdiff_t i0,       \
                     ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1)                               \
    {                                                                                        \
        for (ptrdiff_t j = j0; j < j1; ++j)                                                  \
            for (ptrdiff_t i = i0; i < i1; ++i) dst[j * ldd + i] = src[i * lds + j];        \
    }
FD_TRANSPOSE_PLAIN(float, fd_transpose_plain_f)
FD_TRANSPOSE_PLAIN(double, fd_transpose_plain_d)

#if FD_TRANSPOSE_X86
/* The 8 x 8 (float) and 4 x 4 (double) register transpositions, in place: row k of the
 * block in r[k] before, its column k after (also the direct convolution's tile stores). */
__attribute__((target("avx"), always_inline)) static inline void fd_transpose_8x8_ps(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

__attribute__((target("avx"), always_inline)) static inline void fd_transpose_4x4_pd(__m256d r[4])
{
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

__attribute__((target("avx"))) static void fd_transpose_avx_f(const float *src, ptrdiff_t lds,
                                                              float *dst, ptrdiff_t ldd,
                                                              ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (ptrdiff_t i = 0; i < rows8; i += 8)
        for (ptrdiff_t j = 0; j < cols8; j += 8) {
            const float *s = src + i * lds + j;
            __m256 r[8];
            for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(s + k * lds);
            fd_transpose_8x8_ps(r);
            float *d = dst + j * ldd + i;
            for (int k = 0; k < 8; ++k) _mm256_storeu_ps(d + k * ldd, r[k]);
        }
    fd_transpose_plain_f(src, lds, dst, ldd, 0, rows8, cols8, cols);
    /* the first four of 4-7 rows left over in 4 x 4 tiles (e.g. a depth-to-space run of 4
     * phases: stride 8 with half of it padding), then the rest value by value */
    ptrdiff_t rows4 = rows8 + (rows - rows8) / 4 * 4, cols4 = cols / 4 * 4;
    for (ptrdiff_t i = rows8; i < rows4; i += 4) {
        for (ptrdiff_t j = 0; j < cols4; j += 4) {
            const float *s = src + i * lds + j;
            __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + lds);
            __m128 r2 = _mm_loadu_ps(s + 2 * lds), r3 = _mm_loadu_ps(s + 3 * lds);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float *d = dst + j * ldd + i;
            _mm_storeu_ps(d, r0);
            _mm_storeu_ps(d + ldd, r1);
            _mm_storeu_ps(d + 2 * ldd, r2);
            _mm_storeu_ps(d + 3 * ldd, r3);
        }
        fd_transpose_plain_f(src, lds, dst, ldd, i, i + 4, cols4, cols);
    }
    fd_transpose_plain_f(src, lds, dst, ldd, rows4, rows, 0, cols);
}

__attribute__((target("avx"))) static void fd_transpose_avx_d(const double *src, ptrdiff_t lds,
                                                              double *dst, ptrdiff_t ldd,
                                                              ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t rows4 = rows / 4 * 4, cols4 = cols / 4 * 4;
    for (ptrdiff_t i = 0; i < rows4; i += 4)
        for (ptrdiff_t j = 0; j < cols4; j += 4) {
            const double *s = src + i * lds + j;
            __m256d r[4];
            for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_pd(s + k * lds);
            fd_transpose_4x4_pd(r);
            double *d = dst + j * ldd + i;
            for (int k = 0; k < 4; ++k) _mm256_storeu_pd(d + k * ldd, r[k]);
        }
    fd_transpose_plain_d(src, lds, dst, ldd, 0, rows4, cols4, cols);
    fd_transpose_plain_d(src, lds, dst, ldd, rows4, rows, 0, cols);
}
#endif

/* 1 when the register-tile version runs (the CPU has AVX), else 0; computed once. */
static int fd_transpose_simd(void)
{
#if FD_TRANSPOSE_X86
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx") ? 1 : 0;
    }
    return have;
#else
    return 0;
#endif
}

/* The transposition above; `simd` = 0 forces the plain C version (for tests). */
static void fd_transpose_f(const float *src, ptrdiff_t lds, float *dst, ptrdiff_t ldd,
                           ptrdiff_t rows, ptrdiff_t cols, int simd)
{
#if FD_TRANSPOSE_X86
    if (simd && fd_transpose_simd()) { fd_transpose_avx_f(src, lds, dst, ldd, rows, cols); return; }
#endif
    (void)simd;
    fd_transpose_plain_f(src, lds, dst, ldd, 0, rows, 0, cols);
}

static void fd_transpose_d(const double *src, ptrdiff_t lds, double *dst, ptrdiff_t ldd,
                           ptrdiff_t rows, ptrdiff_t cols, int simd)
{
#if FD_TRANSPOSE_X86
    if (simd && fd_transpose_simd()) { fd_transpose_avx_d(src, lds, dst, ldd, rows, cols); return; }
#endif
    (void)simd;
    fd_transpose_plain_d(src, lds, dst, ldd, 0, rows, 0, cols);
}

#endif /* FASTDECONV_TRANSPOSE_H */
