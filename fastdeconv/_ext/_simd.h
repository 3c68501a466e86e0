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
/* (unused: every kernel module includes all the loops and calls a few) */
#define FD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                 optimize("fp-contract=off"), unused))
#elif defined(__GNUC__)
#define FD_CLONES __attribute__((unused))
#else
#define FD_CLONES
#endif

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

/* y[2i] = a[i] and y[2i + 1] = b[i], i < n: two stride-2 phase planes, interleaved */
FD_CLONES static void fd_store_pair_f(ptrdiff_t n, const float *restrict a,
                                      const float *restrict b, float *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        y[2 * i] = a[i];
        y[2 * i + 1] = b[i];
    }
}

FD_CLONES static void fd_store_pair_d(ptrdiff_t n, const double *restrict a,
                                      const double *restrict b, double *restrict y)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        y[2 * i] = a[i];
        y[2 * i + 1] = b[i];
    }
}

/* z[i] = 0 + w[0] * x[off[0] + i] + ... + w[k - 1] * x[off[k - 1] + i], i < n, added in
 * that order (the same additions, in the same order, as k multiply-adds into a zeroed z),
 * four taps a pass over z. */
#define FD_TAPS_BODY(T)                                                                      \
    ptrdiff_t t = 0;                                                                         \
    if (k < 4)                                                                               \
        for (ptrdiff_t i = 0; i < n; ++i) z[i] = 0;                                          \
    for (; t + 4 <= k; t += 4) {                                                             \
        const T *x0 = x + off[t], *x1 = x + off[t + 1], *x2 = x + off[t + 2],                \
                *x3 = x + off[t + 3];                                                        \
        const T w0 = w[t], w1 = w[t + 1], w2 = w[t + 2], w3 = w[t + 3];                      \
        if (t == 0)                                                                          \
            for (ptrdiff_t i = 0; i < n; ++i) {                                              \
                T acc = 0;                                                                   \
                acc += w0 * x0[i]; acc += w1 * x1[i]; acc += w2 * x2[i]; acc += w3 * x3[i];  \
                z[i] = acc;                                                                  \
            }                                                                                \
        else                                                                                 \
            for (ptrdiff_t i = 0; i < n; ++i) {                                              \
                T acc = z[i];                                                                \
                acc += w0 * x0[i]; acc += w1 * x1[i]; acc += w2 * x2[i]; acc += w3 * x3[i];  \
                z[i] = acc;                                                                  \
            }                                                                                \
    }                                                                                        \
    for (; t < k; ++t) {                                                                     \
        const T *xt = x + off[t];                                                            \
        const T wt = w[t];                                                                   \
        for (ptrdiff_t i = 0; i < n; ++i) z[i] += wt * xt[i];                                \
    }

FD_CLONES static void fd_taps_f(ptrdiff_t n, ptrdiff_t k, const float *restrict w,
                                const ptrdiff_t *restrict off, const float *x,
                                float *restrict z)
{
    FD_TAPS_BODY(float)
}

FD_CLONES static void fd_taps_d(ptrdiff_t n, ptrdiff_t k, const double *restrict w,
                                const ptrdiff_t *restrict off, const double *x,
                                double *restrict z)
{
    FD_TAPS_BODY(double)
}

/* Two stride phases of a depthwise layer whose outputs interleave in the last dimension
 * (stride 2), row by row: for each of `rows` rows, za[:n] and zb[:nb] as fd_taps computes
 * them (phase a from xa with ka taps, phase b from xb with kb taps; the rows of both xstride
 * apart), then stored interleaved, y[2i] = za[i] and y[2i + 1] = zb[i] for i < nb (and
 * y[2 nb] = za[nb] when n = nb + 1; the caller pairs only phases with n - nb = 0 or 1,
 * depthwise._phase_partners), the rows of y ystride apart. The same values as the
 * planes computed whole and then stored (fd_taps, fd_store_pair), with one row of each
 * phase in za and zb (L1) instead of a plane, and no call per row. */
#define FD_TAPS_PAIR_ROWS(T, NAME)                                                           \
FD_CLONES static void NAME(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t nb, ptrdiff_t ka,         \
                           const T *restrict wa, const ptrdiff_t *restrict offa, const T *xa, \
                           ptrdiff_t kb, const T *restrict wb,                               \
                           const ptrdiff_t *restrict offb, const T *xb, ptrdiff_t xstride,   \
                           T *restrict y, ptrdiff_t ystride, T *restrict za,                 \
                           T *restrict zb)                                                   \
{                                                                                            \
    const ptrdiff_t na = n;                                                                  \
    for (ptrdiff_t r = 0; r < rows; ++r) {                                                   \
        {                                                                                    \
            const T *x = xa + r * xstride, *restrict w = wa;                                 \
            const ptrdiff_t *restrict off = offa, k = ka;                                    \
            T *restrict z = za;                                                              \
            FD_TAPS_BODY(T)                                                                  \
        }                                                                                    \
        {                                                                                    \
            const T *x = xb + r * xstride, *restrict w = wb;                                 \
            const ptrdiff_t *restrict off = offb, k = kb, n = nb;                            \
            T *restrict z = zb;                                                              \
            FD_TAPS_BODY(T)                                                                  \
        }                                                                                    \
        T *restrict yr = y + r * ystride;                                                    \
        for (ptrdiff_t i = 0; i < nb; ++i) {                                                 \
            yr[2 * i] = za[i];                                                               \
            yr[2 * i + 1] = zb[i];                                                           \
        }                                                                                    \
        if (na > nb) yr[2 * nb] = za[nb];                                                    \
    }                                                                                        \
}
FD_TAPS_PAIR_ROWS(float, fd_taps_pair_rows_f)
FD_TAPS_PAIR_ROWS(double, fd_taps_pair_rows_d)

#endif
