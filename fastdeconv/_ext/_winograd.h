/* Inner loops of the Winograd transforms (_winograd_kernels.pyx), with tiles side by side.
 *
 * The kernels keep many tiles side by side, tile index innermost, so every loop here is a
 * long loop over tiles: a small matrix times a block of rows (the transforms), and the
 * de-interleaving of an input row into one row per tile column (and its inverse for the
 * output). Compiled per instruction-set level like the loops of _simd.h (whose FD_CLONES this
 * reuses); every output element is a sum over j in increasing order of one product each, so
 * the result does not depend on the vector width.
 */
#ifndef FASTDECONV_WINOGRAD_H
#define FASTDECONV_WINOGRAD_H

#include <stddef.h>
#include <string.h>
#include "_simd.h"

#define FD_LANES 16     /* tiles per register block */

#if defined(__GNUC__)
#define FD_INLINE static inline __attribute__((always_inline))  /* into each clone */
#else
#define FD_INLINE static inline
#endif
#define FD_MAX_INNER 8  /* largest transform (alpha = m + r - 1 <= 8) */

/* out[r, t] = sum_j a[r, j] * in[j, t] for r < rows, j < inner, t < n; a is rows x inner,
 * row-major; rows of in are ldin apart, rows of out ldout apart. Blocks of FD_LANES tiles
 * are loaded once into vector registers (GCC/Clang vector extensions; plain loops
 * elsewhere) and every output row is accumulated in registers. The sizes of the Winograd
 * transforms (6x6 and 4x6 for F(4, 3), 6x4 and 3x6 for its weight gradient, 5x5 and 4x5 for
 * F(4, 2), ...) are compile-time constants
 * in their own copies of the loop, so that it is unrolled into straight-line code (zero
 * coefficients are multiplied like the others: no branches). */
#if defined(__GNUC__)
#define FD_SMALL_MM_BLOCK(NAME, T)                                                           \
typedef T NAME##_vec __attribute__((vector_size(FD_LANES * sizeof(T))));                      \
FD_INLINE void NAME##_block(ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t len, const T *a,        \
                            const T *in, ptrdiff_t ldin, T *out, ptrdiff_t ldout)              \
{                                                                                            \
    NAME##_vec x[FD_MAX_INNER];                                                              \
    for (ptrdiff_t j = 0; j < inner; ++j) {                                                  \
        if (len < FD_LANES) memset(&x[j], 0, sizeof x[j]);                                   \
        memcpy(&x[j], in + j * ldin, (size_t)len * sizeof(T));                               \
    }                                                                                        \
    for (ptrdiff_t r = 0; r < rows; ++r) {                                                   \
        NAME##_vec acc = a[r * inner] * x[0];                                                \
        for (ptrdiff_t j = 1; j < inner; ++j) acc += a[r * inner + j] * x[j];                \
        memcpy(out + r * ldout, &acc, (size_t)len * sizeof(T));                              \
    }                                                                                        \
}
#else
#define FD_SMALL_MM_BLOCK(NAME, T)                                                           \
FD_INLINE void NAME##_block(ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t len, const T *a,        \
                            const T *in, ptrdiff_t ldin, T *out, ptrdiff_t ldout)              \
{                                                                                            \
    for (ptrdiff_t r = 0; r < rows; ++r)                                                     \
        for (ptrdiff_t l = 0; l < len; ++l) {                                                \
            T acc = a[r * inner] * in[l];                                                    \
            for (ptrdiff_t j = 1; j < inner; ++j) acc += a[r * inner + j] * in[j * ldin + l];\
            out[r * ldout + l] = acc;                                                        \
        }                                                                                    \
}
#endif

#define FD_SMALL_MM(NAME, T)                                                                 \
FD_SMALL_MM_BLOCK(NAME, T)                                                                   \
FD_INLINE void NAME##_run(ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t n, const T *a,            \
                          const T *in, ptrdiff_t ldin, T *out, ptrdiff_t ldout)                \
{                                                                                            \
    ptrdiff_t t = 0;                                                                         \
    for (; t + FD_LANES <= n; t += FD_LANES)                                                 \
        NAME##_block(rows, inner, FD_LANES, a, in + t, ldin, out + t, ldout);                \
    if (t < n)                                                                               \
        NAME##_block(rows, inner, n - t, a, in + t, ldin, out + t, ldout);                   \
}                                                                                            \
FD_CLONES static void NAME(ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t n, const T *a,           \
                           const T *in, ptrdiff_t ldin, T *out, ptrdiff_t ldout)               \
{                                                                                            \
    if (rows == 6 && inner == 6) NAME##_run(6, 6, n, a, in, ldin, out, ldout);               \
    else if (rows == 4 && inner == 6) NAME##_run(4, 6, n, a, in, ldin, out, ldout);          \
    else if (rows == 4 && inner == 4) NAME##_run(4, 4, n, a, in, ldin, out, ldout);          \
    else if (rows == 2 && inner == 4) NAME##_run(2, 4, n, a, in, ldin, out, ldout);          \
    else if (rows == 6 && inner == 3) NAME##_run(6, 3, n, a, in, ldin, out, ldout);          \
    else if (rows == 4 && inner == 3) NAME##_run(4, 3, n, a, in, ldin, out, ldout);          \
    else if (rows == 5 && inner == 5) NAME##_run(5, 5, n, a, in, ldin, out, ldout);          \
    else if (rows == 4 && inner == 5) NAME##_run(4, 5, n, a, in, ldin, out, ldout);          \
    else if (rows == 5 && inner == 2) NAME##_run(5, 2, n, a, in, ldin, out, ldout);          \
    else if (rows == 6 && inner == 4) NAME##_run(6, 4, n, a, in, ldin, out, ldout);          \
    else if (rows == 3 && inner == 6) NAME##_run(3, 6, n, a, in, ldin, out, ldout);          \
    else NAME##_run(rows, inner, n, a, in, ldin, out, ldout);                                \
}

FD_SMALL_MM(fd_small_mm_f, float)
FD_SMALL_MM(fd_small_mm_d, double)

/* De-interleave: dst[r * ld + q] = src[(q * m + r) * d] for r < m, q < n, and its inverse,
 * interleave: dst[(q * m + r) * d] = src[r * ld + q]. (m, d) = (4, 1), (4, 2), (2, 1),
 * (2, 2) (de-interleave) and (4, 1), (2, 1) (interleave) are written out so that the
 * compiler vectorises them (interleaved loads and stores); other pairs take the plain loop.
 * (Explicit vector shuffles on whole blocks of tiles were measured too, for the short rows
 * of 56-pixel images: no difference.) */
#define FD_INTERLEAVING(NAME, T)                                                             \
FD_CLONES static void NAME##_deinterleave(ptrdiff_t n, ptrdiff_t m, ptrdiff_t d,               \
                                          const T *restrict src, T *restrict dst, ptrdiff_t ld)\
{                                                                                            \
    if (m == 4 && d == 1) {                                                                  \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[q] = src[4 * q]; dst[ld + q] = src[4 * q + 1];                               \
            dst[2 * ld + q] = src[4 * q + 2]; dst[3 * ld + q] = src[4 * q + 3];              \
        }                                                                                    \
    } else if (m == 4 && d == 2) {                                                           \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[q] = src[8 * q]; dst[ld + q] = src[8 * q + 2];                               \
            dst[2 * ld + q] = src[8 * q + 4]; dst[3 * ld + q] = src[8 * q + 6];              \
        }                                                                                    \
    } else if (m == 2 && d == 1) {                                                           \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[q] = src[2 * q]; dst[ld + q] = src[2 * q + 1];                               \
        }                                                                                    \
    } else if (m == 2 && d == 2) {                                                           \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[q] = src[4 * q]; dst[ld + q] = src[4 * q + 2];                               \
        }                                                                                    \
    } else {                                                                                 \
        for (ptrdiff_t r = 0; r < m; ++r)                                                    \
            for (ptrdiff_t q = 0; q < n; ++q) dst[r * ld + q] = src[(q * m + r) * d];         \
    }                                                                                        \
}                                                                                            \
FD_CLONES static void NAME##_interleave(ptrdiff_t n, ptrdiff_t m, ptrdiff_t d,                 \
                                        const T *restrict src, ptrdiff_t ld, T *restrict dst)  \
{                                                                                            \
    if (m == 4 && d == 1) {                                                                  \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[4 * q] = src[q]; dst[4 * q + 1] = src[ld + q];                               \
            dst[4 * q + 2] = src[2 * ld + q]; dst[4 * q + 3] = src[3 * ld + q];              \
        }                                                                                    \
    } else if (m == 2 && d == 1) {                                                           \
        for (ptrdiff_t q = 0; q < n; ++q) {                                                  \
            dst[2 * q] = src[q]; dst[2 * q + 1] = src[ld + q];                               \
        }                                                                                    \
    } else {                                                                                 \
        for (ptrdiff_t r = 0; r < m; ++r)                                                    \
            for (ptrdiff_t q = 0; q < n; ++q) dst[(q * m + r) * d] = src[r * ld + q];         \
    }                                                                                        \
}                                                                                            \
/* dst[:n] = src[:n] for n <= 64, in pieces of constant size: inlined moves (a loop or a    \
 * memcpy here becomes a library call or a rep movs, slow for these short rows) */           \
FD_CLONES static void NAME##_short_copy(ptrdiff_t n, const T *src, T *dst)                    \
{                                                                                            \
    ptrdiff_t i = 0;                                                                         \
    if (n - i >= 32) { memcpy(dst + i, src + i, 32 * sizeof(T)); i += 32; }                  \
    if (n - i >= 32) { memcpy(dst + i, src + i, 32 * sizeof(T)); i += 32; }                  \
    if (n - i >= 16) { memcpy(dst + i, src + i, 16 * sizeof(T)); i += 16; }                  \
    if (n - i >= 8) { memcpy(dst + i, src + i, 8 * sizeof(T)); i += 8; }                     \
    if (n - i >= 4) { memcpy(dst + i, src + i, 4 * sizeof(T)); i += 4; }                     \
    if (n - i >= 2) { memcpy(dst + i, src + i, 2 * sizeof(T)); i += 2; }                     \
    if (n - i >= 1) dst[i] = src[i];                                                         \
}

/* 1 if any of x[:n] is NaN or infinite (x - x is 0 exactly for finite x), else 0 */
#define FD_NONFINITE(NAME, T)                                                                \
FD_CLONES static int NAME(ptrdiff_t n, const T *x)                                           \
{                                                                                            \
    int bad = 0;                                                                             \
    for (ptrdiff_t i = 0; i < n; ++i) bad |= !(x[i] - x[i] == (T)0);                         \
    return bad;                                                                              \
}

FD_NONFINITE(fd_f_nonfinite, float)
FD_NONFINITE(fd_d_nonfinite, double)

FD_INTERLEAVING(fd_f, float)
FD_INTERLEAVING(fd_d, double)

#endif
