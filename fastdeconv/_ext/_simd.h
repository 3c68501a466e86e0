/* Hot inner loops, compiled once per instruction-set level and picked at load time.
 *
 * The default build is portable (no -march=native), which limits auto-vectorisation to
 * SSE2. With GCC on x86-64 Linux, target_clones compiles each function for x86-64-v4
 * (AVX-512), x86-64-v3 (AVX2/FMA) and the baseline, and the dynamic loader picks the best
 * one the CPU supports (an ifunc), like OpenBLAS's DYNAMIC_ARCH. Elsewhere they are plain
 * functions. The loops are written so that their results do not depend on the vector width:
 * each element is updated by one multiply-add in a fixed order (no reassociation; FMA
 * contraction is disabled so that every clone rounds the same way).
 */
#ifndef FASTDECONV_SIMD_H
#define FASTDECONV_SIMD_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && (__GNUC__ >= 12)
#define FD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                 optimize("fp-contract=off")))
#else
#define FD_CLONES
#endif

/* y[i] += a * x[i], i < n */
FD_CLONES static void fd_axpy_f(ptrdiff_t n, float a, const float *restrict x, float *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) y[i] += a * x[i];
}

FD_CLONES static void fd_axpy_d(ptrdiff_t n, double a, const double *restrict x,
                                double *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) y[i] += a * x[i];
}

/* y[i] += x[i], i < n */
FD_CLONES static void fd_add_f(ptrdiff_t n, const float *restrict x, float *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) y[i] += x[i];
}

FD_CLONES static void fd_add_d(ptrdiff_t n, const double *restrict x, double *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) y[i] += x[i];
}

/* y[2i] += a[i] and y[2i + 1] += b[i], i < n: two taps of a stride-2 col2im, interleaved */
FD_CLONES static void fd_add_pair_f(ptrdiff_t n, const float *restrict a,
                                    const float *restrict b, float *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        y[2 * i] += a[i];
        y[2 * i + 1] += b[i];
    }
}

FD_CLONES static void fd_add_pair_d(ptrdiff_t n, const double *restrict a,
                                    const double *restrict b, double *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        y[2 * i] += a[i];
        y[2 * i + 1] += b[i];
    }
}

/* a[i] = x[2i] and b[i] = x[2i + 1], i < n: two taps of a stride-2 im2col, de-interleaved */
FD_CLONES static void fd_split_pair_f(ptrdiff_t n, const float *restrict x, float *restrict a,
                                      float *restrict b)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        a[i] = x[2 * i];
        b[i] = x[2 * i + 1];
    }
}

FD_CLONES static void fd_split_pair_d(ptrdiff_t n, const double *restrict x, double *restrict a,
                                      double *restrict b)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        a[i] = x[2 * i];
        b[i] = x[2 * i + 1];
    }
}

#endif
