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
#define FD_MAX_INNER 8  /* largest transform (alpha = m + 2 for m <= 6) */

/* out[r, t] = sum_j a[r, j] * in[j, t] for r < rows, j < inner, t < n; a is rows x inner,
 * row-major; rows of in are ldin apart, rows of out ldout apart. Blocks of FD_LANES tiles
 * are loaded once into vector registers (GCC/Clang vector extensions; plain loops
 * elsewhere) and every output row is accumulated in registers. The sizes of the Winograd
 * transforms (6x6 and 4x6 for F(4, 3), 4x4 and 2x4 for F(2, 3)) are compile-time constants
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
    else NAME##_run(rows, inner, n, a, in, ldin, out, ldout);                                \
}

FD_SMALL_MM(fd_small_mm_f, float)
FD_SMALL_MM(fd_small_mm_d, double)

/* De-interleave: dst[r * ld + q] = src[(q * m + r) * d] for r < m, q < n, and its inverse,
 * interleave: dst[(q * m + r) * d] = src[r * ld + q] (strided stores for d > 1).
 *
 * Rows of tiles are short (14 tiles for a 56-pixel row and m = 4), too short for the
 * compiler's vectorised loops, which would leave them to their scalar remainder; so with
 * GCC >= 12 or Clang, (m, d) = (4, 1), (4, 2), (2, 1), (2, 2) are written with vector
 * shuffles on whole blocks of FD_LANES tiles:
 *   - deinterleave reads whole blocks while at least FD_LANES * m * d elements remain
 *     readable from the block's start (``avail`` counts them from ``src``; the last blocks
 *     of an array are read element by element) and writes whole blocks: every row of
 *     ``dst`` must have room for n rounded up to FD_LANES;
 *   - interleave reads whole blocks of its rows (same rounding) and writes exactly the
 *     elements named.
 * Other cases are plain loops. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define FD_HAVE_SHUFFLE 1
#define FD_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define FD_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define FD_MOD4(r) r, 4 + r, 8 + r, 12 + r, 16 + r, 20 + r, 24 + r, 28 + r
#define FD_LOW_HALVES 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define FD_HIGH_HALVES 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define FD_ZIP_LOW 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define FD_ZIP_HIGH 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#define FD_ZIP2_LOW 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23
#define FD_ZIP2_HIGH 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31
#define FD_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)

#define FD_SHUFFLES(NAME, T)                                                                 \
typedef T NAME##_v __attribute__((vector_size(FD_LANES * sizeof(T))));                        \
/* dst[:n] = src[:n], n <= 4 * FD_LANES, in pieces of constant size: inlined moves (a loop  \
 * here would become a call to memcpy or a rep movs, slow for these short rows) */           \
FD_INLINE void NAME##_copy(ptrdiff_t n, const T *src, T *dst)                                 \
{                                                                                            \
    ptrdiff_t i = 0;                                                                         \
    if (n - i >= 2 * FD_LANES) { memcpy(dst, src, 2 * FD_LANES * sizeof(T)); i += 2 * FD_LANES; } \
    if (n - i >= 2 * FD_LANES) { memcpy(dst + i, src + i, 2 * FD_LANES * sizeof(T)); i += 2 * FD_LANES; } \
    if (n - i >= FD_LANES) { memcpy(dst + i, src + i, FD_LANES * sizeof(T)); i += FD_LANES; } \
    if (n - i >= 8) { memcpy(dst + i, src + i, 8 * sizeof(T)); i += 8; }                    \
    if (n - i >= 4) { memcpy(dst + i, src + i, 4 * sizeof(T)); i += 4; }                    \
    if (n - i >= 2) { memcpy(dst + i, src + i, 2 * sizeof(T)); i += 2; }                    \
    if (n - i >= 1) dst[i] = src[i];                                                         \
}                                                                                            \
/* one block: m rows of dst from the elements (q * m + r) * d of src */                       \
FD_INLINE void NAME##_split(ptrdiff_t m, ptrdiff_t d, ptrdiff_t avail, const T *src,          \
                            T *dst, ptrdiff_t ld)                                              \
{                                                                                            \
    NAME##_v v[8], out[4];                                                                   \
    if (avail >= FD_LANES * m * d) {                                                         \
        memcpy(v, src, sizeof(NAME##_v) * m * d);                                            \
    } else {                                                                                 \
        T *flat = (T *)v;                                                                    \
        ptrdiff_t count = avail < FD_LANES * m * d ? avail : FD_LANES * m * d;               \
        memset(v, 0, sizeof v);                                                              \
        for (ptrdiff_t i = 0; i < count; ++i) flat[i] = src[i];                              \
    }                                                                                        \
    if (d == 2)   /* keep the even elements: the d = 1 layout in v[0 .. m) */                \
        for (ptrdiff_t i = 0; i < m; ++i) v[i] = FD_SHUF(v[2 * i], v[2 * i + 1], FD_EVEN);   \
    if (m == 2) {                                                                            \
        out[0] = FD_SHUF(v[0], v[1], FD_EVEN);                                               \
        out[1] = FD_SHUF(v[0], v[1], FD_ODD);                                                \
    } else {                                                                                 \
        NAME##_v a = FD_SHUF(v[0], v[1], FD_MOD4(0), FD_MOD4(1));                            \
        NAME##_v b = FD_SHUF(v[0], v[1], FD_MOD4(2), FD_MOD4(3));                            \
        NAME##_v c = FD_SHUF(v[2], v[3], FD_MOD4(0), FD_MOD4(1));                            \
        NAME##_v e = FD_SHUF(v[2], v[3], FD_MOD4(2), FD_MOD4(3));                            \
        out[0] = FD_SHUF(a, c, FD_LOW_HALVES);                                               \
        out[1] = FD_SHUF(a, c, FD_HIGH_HALVES);                                              \
        out[2] = FD_SHUF(b, e, FD_LOW_HALVES);                                               \
        out[3] = FD_SHUF(b, e, FD_HIGH_HALVES);                                              \
    }                                                                                        \
    for (ptrdiff_t r = 0; r < m; ++r) memcpy(dst + r * ld, &out[r], sizeof out[r]);          \
}                                                                                            \
/* one block of len <= FD_LANES tiles, d = 1: rows of src -> elements q * m + r of dst */     \
FD_INLINE void NAME##_merge(ptrdiff_t m, ptrdiff_t len, const T *src, ptrdiff_t ld, T *dst)   \
{                                                                                            \
    NAME##_v o[4], v[4];                                                                     \
    for (ptrdiff_t r = 0; r < m; ++r) memcpy(&o[r], src + r * ld, sizeof o[r]);              \
    if (m == 2) {                                                                            \
        v[0] = FD_SHUF(o[0], o[1], FD_ZIP_LOW);                                              \
        v[1] = FD_SHUF(o[0], o[1], FD_ZIP_HIGH);                                             \
    } else {                                                                                 \
        NAME##_v a = FD_SHUF(o[0], o[1], FD_ZIP_LOW), c = FD_SHUF(o[0], o[1], FD_ZIP_HIGH);  \
        NAME##_v b = FD_SHUF(o[2], o[3], FD_ZIP_LOW), e = FD_SHUF(o[2], o[3], FD_ZIP_HIGH);  \
        v[0] = FD_SHUF(a, b, FD_ZIP2_LOW);                                                   \
        v[1] = FD_SHUF(a, b, FD_ZIP2_HIGH);                                                  \
        v[2] = FD_SHUF(c, e, FD_ZIP2_LOW);                                                   \
        v[3] = FD_SHUF(c, e, FD_ZIP2_HIGH);                                                  \
    }                                                                                        \
    NAME##_copy(len * m, (const T *)v, dst);                                                 \
}                                                                                            \
FD_INLINE void NAME##_split_row(ptrdiff_t n, ptrdiff_t m, ptrdiff_t d, const T *src,          \
                                ptrdiff_t avail, T *dst, ptrdiff_t ld)                         \
{                                                                                            \
    for (ptrdiff_t q = 0; q < n; q += FD_LANES)                                              \
        NAME##_split(m, d, avail - q * m * d, src + q * m * d, dst + q, ld);                 \
}                                                                                            \
FD_INLINE void NAME##_merge_row(ptrdiff_t n, ptrdiff_t m, const T *src, ptrdiff_t ld, T *dst) \
{                                                                                            \
    for (ptrdiff_t q = 0; q < n; q += FD_LANES)                                              \
        NAME##_merge(m, n - q < FD_LANES ? n - q : FD_LANES, src + q, ld, dst + q * m);      \
}
#define FD_SHUFFLE_CASES(NAME)                                                               \
    if (m == 4 && d == 1) { NAME##_split_row(n, 4, 1, src, avail, dst, ld); return; }        \
    if (m == 4 && d == 2) { NAME##_split_row(n, 4, 2, src, avail, dst, ld); return; }        \
    if (m == 2 && d == 1) { NAME##_split_row(n, 2, 1, src, avail, dst, ld); return; }        \
    if (m == 2 && d == 2) { NAME##_split_row(n, 2, 2, src, avail, dst, ld); return; }
#define FD_MERGE_CASES(NAME)                                                                 \
    if (m == 4 && d == 1) { NAME##_merge_row(n, 4, src, ld, dst); return; }                  \
    if (m == 2 && d == 1) { NAME##_merge_row(n, 2, src, ld, dst); return; }
#else
#define FD_HAVE_SHUFFLE 0
#define FD_SHUFFLES(NAME, T)
#define FD_SHUFFLE_CASES(NAME)
#define FD_MERGE_CASES(NAME)
#endif

#if FD_HAVE_SHUFFLE
#define FD_SHORT_COPY(NAME, T)                                                               \
FD_CLONES static void NAME##_short_copy(ptrdiff_t n, const T *src, T *dst)                    \
{                                                                                            \
    NAME##_copy(n, src, dst);                                                                \
}
#else
#define FD_SHORT_COPY(NAME, T)                                                               \
static void NAME##_short_copy(ptrdiff_t n, const T *src, T *dst)                              \
{                                                                                            \
    for (ptrdiff_t i = 0; i < n; ++i) dst[i] = src[i];                                       \
}
#endif

/* dst[:n] = src[:n] for n <= 4 * FD_LANES, without a call to memcpy (short rows) */
#define FD_INTERLEAVING(NAME, T)                                                             \
FD_SHUFFLES(NAME, T)                                                                         \
FD_SHORT_COPY(NAME, T)                                                                       \
FD_CLONES static void NAME##_deinterleave(ptrdiff_t n, ptrdiff_t m, ptrdiff_t d,               \
                                          const T *src, ptrdiff_t avail, T *dst, ptrdiff_t ld) \
{                                                                                            \
    FD_SHUFFLE_CASES(NAME)                                                                   \
    for (ptrdiff_t r = 0; r < m; ++r)                                                        \
        for (ptrdiff_t q = 0; q < n; ++q) dst[r * ld + q] = src[(q * m + r) * d];             \
}                                                                                            \
FD_CLONES static void NAME##_interleave(ptrdiff_t n, ptrdiff_t m, ptrdiff_t d, const T *src,   \
                                        ptrdiff_t ld, T *dst)                                  \
{                                                                                            \
    FD_MERGE_CASES(NAME)                                                                     \
    for (ptrdiff_t r = 0; r < m; ++r)                                                        \
        for (ptrdiff_t q = 0; q < n; ++q) dst[(q * m + r) * d] = src[r * ld + q];             \
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
