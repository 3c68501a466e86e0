/* fastdeconv's packed GEMM engine: register-blocked micro-kernels fed by packing routines.
 *
 *     C[m x n] = A[m x k] B[k x n]   |   C += A B   |   C = A B + bias[row]
 *
 * with B either a dense matrix or the implicit im2col of a forward convolution's input.
 * Three kernels, chosen at run time from the CPU (fd_best_isa; the extension lets the
 * environment variable FASTDECONV_GEMM_KERNEL force one):
 *
 *     avx512f    x86-64 with AVX-512F   (function attribute target("avx512f"))
 *     avx2+fma   x86-64 with AVX2, FMA  (target("avx2,fma"))
 *     portable   plain C, vectorised by the compiler for the build's baseline (any CPU)
 *
 * so no -march flag is needed and the header builds on aarch64 (x86 code is guarded;
 * -DFD_GEMM_PORTABLE_ONLY compiles the portable kernel alone, as elsewhere).
 *
 * Register and cache blocking, chosen by measurement on the development machine (Intel Xeon
 * with AVX-512, 2 cores, L1d 48 KiB and L2 2 MiB per core, L3 300 MiB shared; the numbers
 * and the method are in the performance notes, benchmarks/gemm_kernels.py reproduces them):
 *
 *     kernel     dtype    MR x NR            accumulators   KC    MC    NC (max item width)
 *     avx512f    float32   8 x 48 or 12 x 32  24 zmm         384   256   768
 *     avx512f    float64   8 x 24 or 12 x 16  24 zmm         256   256   480
 *     avx2+fma   float32   6 x 16             12 ymm         384   252   768
 *     avx2+fma   float64   6 x 8              12 ymm         256   252   480
 *     portable   float32   4 x 8              (compiler)     256   128   1024
 *     portable   float64   4 x 4              (compiler)     256   128   512
 *
 * Why: the vector (NR) direction is the row of C, i.e. the output positions of a convolution,
 * contiguous in y; A (the weight) is broadcast one value at a time. 24 of the 32 zmm registers
 * accumulate (enough independent chains for two FMA ports of latency 4), 2-3 hold B and one
 * the broadcast. On L1-resident panels 8x48, 12x32, 14x32 and 6x64 all ran at 95-100 % of a
 * multiply-add peak loop, so the tile is chosen for the padding it wastes: MR = 8 divides
 * every usual channel count (12 wastes 11 % of the rows for C_out = 64) while NR = 32 divides
 * the power-of-two widths (48 wastes a third of n = 64); each GEMM takes the AVX-512 tile
 * that pads its m x n least (fd_make_plan). Loop order is BLIS's: the MR x KC A micro-panel
 * (12-18 KiB) stays in L1 while the KC x NR B micro-panels stream from the KC x NC block of B
 * in L2 (at most 1.1 MiB float32, 0.9 MiB float64); KC = 384 measured best of 128 / 192 /
 * 256 / 384 (fewer loads and stores of the C tile per flop), after moving from the other loop
 * order (B micro-panel in L1), which measured slower on large GEMMs. MC bounds the block of A
 * an item packs itself when A is not pre-packed (fd_prepack_a). On more than one thread the
 * split (up to 4 items, balancing 2 and 4 threads) usually makes the items narrower than NC.
 *
 * Determinism: every element of C is one chain of multiply-adds over the KC slices in order,
 * in whichever work item, register tile or thread it is computed; the KC slices depend only
 * on the kernel and dtype, so C is the same to the bit for any thread count (the work items
 * follow the thread count, fd_make_plan; different kernels round differently).
 */
#ifndef FASTDECONV_GEMM_H
#define FASTDECONV_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#define restrict __restrict
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(FD_GEMM_PORTABLE_ONLY)
#define FD_GEMM_X86 1
#include <immintrin.h>
#else
#define FD_GEMM_X86 0
#endif

enum { FD_ISA_PORTABLE = 0, FD_ISA_AVX2 = 1, FD_ISA_AVX512 = 2, FD_ISA_COUNT = 3 };

static const char *const fd_isa_names[FD_ISA_COUNT] = {"portable", "avx2+fma", "avx512f"};

/* Register (mr x nr) and cache (mc, kc, nc) blocking of one kernel and dtype. */
typedef struct { int mr, nr; ptrdiff_t mc, kc, nc; } fd_blocking;

/* AVX-512 has two register tiles per dtype; each GEMM takes the one that pads its m x n least
 * (fd_make_plan): MR x (NV vectors) = 8 x 3 (e.g. 8x48 float32) or 12 x 2 (12x32). */
#define FD_AVX512_MR_0 8
#define FD_AVX512_NV_0 3
#define FD_AVX512_MR_1 12
#define FD_AVX512_NV_1 2
#ifndef FD_AVX2_MR
#define FD_AVX2_MR 6
#endif
#ifndef FD_AVX2_NV
#define FD_AVX2_NV 2
#endif
#define FD_PORTABLE_MR 4
#define FD_PORTABLE_NR_F 8
#define FD_PORTABLE_NR_D 4
#ifndef FD_KC_F
#define FD_KC_F 384
#endif
#ifndef FD_KC_D
#define FD_KC_D 256
#endif
#ifndef FD_IR_OUTER
#define FD_IR_OUTER 1
#endif
#ifndef FD_MC
#define FD_MC 256
#endif
#ifndef FD_NC_F
#define FD_NC_F 768
#endif
#ifndef FD_NC_D
#define FD_NC_D 480
#endif

/* Packing (fd_pack.h, fd_pack_conv.h; measured in the performance notes): a convolution's
 * block of B is packed row by row over the runs of a panel, instead of run by run over the
 * rows, when its panels hold more than this many runs on average (short output rows: 4x4 and
 * 6x6 maps in float32); while a slice of a dense B computes, the micro-kernels prefetch the
 * next block into L2 (the hint's level: __builtin_prefetch's locality). */
#ifndef FD_GROUP_RUNS_PER_PANEL
#define FD_GROUP_RUNS_PER_PANEL 6
#endif
#ifndef FD_PREFETCH_LOCALITY
#define FD_PREFETCH_LOCALITY 2
#endif
/* A read in place (fd_prefetch.a_offset): the micro-kernel prefetches into L1 the row it will
 * read this many k ahead (measured: 4, 8, 16 ahead 0.964, 0.946, 0.949 the time on
 * wgrad_dcgan's weight gradient). */
#ifndef FD_A_PREFETCH_AHEAD
#define FD_A_PREFETCH_AHEAD 8
#endif
/* A dense B (and a convolution's panels of whole vectors) is read in place, not packed, by
 * a work item of at most FD_B_IN_PLACE_PANELS row panels (few reuses of a packed panel do
 * not pay for packing it: the engine's GEMM on (M, K, N) = (64, 256, 3136) 173 -> 188
 * GFLOP/s; with 16 and 32 row panels packing measured faster); its micro-kernel prefetches
 * into L1 the row FD_B_PREFETCH_AHEAD k ahead (4 and 16 measured 1.003-1.009x slower). */
enum { FD_B_PACKED = 0, FD_B_ROWS = 1, FD_B_VECTORS = 2 };   /* how a micro-kernel reads B */
#ifndef FD_B_PREFETCH_AHEAD
#define FD_B_PREFETCH_AHEAD 8
#endif
#ifndef FD_B_IN_PLACE_PANELS
#define FD_B_IN_PLACE_PANELS 8
#endif
/* ... and such a GEMM's items, when it has at least half that many row panels (which read
 * its block of B again from L2, each row prefetched into L1), are at most FD_NC_IN_PLACE_F /
 * _D columns wide instead of NC: measured in the performance notes. */
#ifndef FD_NC_IN_PLACE_F
#define FD_NC_IN_PLACE_F 384
#endif
#ifndef FD_NC_IN_PLACE_D
#define FD_NC_IN_PLACE_D 240
#endif
/* The micro-kernels' copying loops must stay one loop: GCC's loop distribution (-O3) splits
 * each into a copying loop and then a multiply-add loop, so that the copy no longer runs
 * between the multiply-adds (where the out-of-order core hides it) but before them. (A
 * compiler barrier in the loop keeps it whole too, but then GCC keeps an accumulator on the
 * stack.) */
#if defined(__GNUC__) && !defined(__clang__)
#define FD_ONE_LOOP __attribute__((optimize("no-tree-loop-distribution")))
#else
#define FD_ONE_LOOP
#endif
#if defined(__GNUC__)
#define FD_NOINLINE __attribute__((noinline))
#else
#define FD_NOINLINE
#endif

#define FD_TILES 2
#define FD_BLOCK(mr, nr, kc, nc) {mr, nr, FD_MC / (mr) * (mr), kc, nc}

/* [isa][0 = float32, 1 = float64][register tile] */
static const fd_blocking fd_blocking_table[FD_ISA_COUNT][2][FD_TILES] = {
    {{FD_BLOCK(FD_PORTABLE_MR, FD_PORTABLE_NR_F, 256, 1024),
      FD_BLOCK(FD_PORTABLE_MR, FD_PORTABLE_NR_F, 256, 1024)},
     {FD_BLOCK(FD_PORTABLE_MR, FD_PORTABLE_NR_D, 256, 512),
      FD_BLOCK(FD_PORTABLE_MR, FD_PORTABLE_NR_D, 256, 512)}},
    {{FD_BLOCK(FD_AVX2_MR, FD_AVX2_NV * 8, FD_KC_F, FD_NC_F),
      FD_BLOCK(FD_AVX2_MR, FD_AVX2_NV * 8, FD_KC_F, FD_NC_F)},
     {FD_BLOCK(FD_AVX2_MR, FD_AVX2_NV * 4, FD_KC_D, FD_NC_D),
      FD_BLOCK(FD_AVX2_MR, FD_AVX2_NV * 4, FD_KC_D, FD_NC_D)}},
    {{FD_BLOCK(FD_AVX512_MR_0, FD_AVX512_NV_0 * 16, FD_KC_F, FD_NC_F),
      FD_BLOCK(FD_AVX512_MR_1, FD_AVX512_NV_1 * 16, FD_KC_F, FD_NC_F)},
     {FD_BLOCK(FD_AVX512_MR_0, FD_AVX512_NV_0 * 8, FD_KC_D, FD_NC_D),
      FD_BLOCK(FD_AVX512_MR_1, FD_AVX512_NV_1 * 8, FD_KC_D, FD_NC_D)}},
};

/* Is this kernel usable on this CPU (and compiled in)? */
static int fd_isa_supported(int isa)
{
    if (isa == FD_ISA_PORTABLE) return 1;
#if FD_GEMM_X86
    __builtin_cpu_init();
    if (isa == FD_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == FD_ISA_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

/* The best kernel this CPU supports. */
static int fd_best_isa(void)
{
    for (int isa = FD_ISA_COUNT - 1; isa > 0; --isa)
        if (fd_isa_supported(isa)) return isa;
    return FD_ISA_PORTABLE;
}

/* ------------------------------------------------------------------ work plan of one GEMM */
typedef struct {
    int isa, tile, mr, nr;             /* tile: index of the register tile (fd_blocking_table) */
    ptrdiff_t m, n, k, mc, kc, nc;
    ptrdiff_t m_chunk, n_chunk, items_m, items_n;   /* work items: items_m x items_n tiles */
} fd_plan;

/* Below this many multiply-adds a GEMM is one work item per NC block (threads would not pay). */
#define FD_PARALLEL_MIN_MACS ((ptrdiff_t)1 << 21)
/* Work items aimed at on more than one thread: a multiple of 4 balances 2 and 4 threads. */
#define FD_TARGET_ITEMS 4

static ptrdiff_t fd_round_up(ptrdiff_t v, ptrdiff_t to) { return (v + to - 1) / to * to; }
static ptrdiff_t fd_ceil_div(ptrdiff_t v, ptrdiff_t by) { return (v + by - 1) / by; }

/* The plan of a GEMM run on `threads` threads. The work items never change a bit of C: each
 * element is the same chain of multiply-adds over the same KC slices (and the same edge-tile
 * formula) whichever item, tile or thread computes it, so only (isa, dtype, k) fix the bits.
 * The items themselves follow the threads: on one thread a single item per NC block of columns
 * (every micro-panel of A reused across the whole block, as in BLIS; the blocks as wide as
 * one another to a panel, fd_plan_item_columns, at most NC); on more, n is cut into
 * items of at least two NR panels and m too while there are fewer than FD_TARGET_ITEMS (a
 * multiple of 2 and 4 keeps 2 and 4 threads balanced). */
static fd_plan fd_make_plan_tile(int isa, int is_double, int tile, ptrdiff_t m, ptrdiff_t n,
                                 ptrdiff_t k, int threads)
{
    const fd_blocking *b = &fd_blocking_table[isa][is_double ? 1 : 0][tile];
    fd_plan p;
    p.isa = isa; p.tile = tile;
    p.mr = b->mr; p.nr = b->nr; p.mc = b->mc; p.kc = b->kc; p.nc = b->nc;
    p.m = m; p.n = n; p.k = k;
    ptrdiff_t row_panels = fd_ceil_div(m, p.mr), narrow = is_double ? FD_NC_IN_PLACE_D
                                                                     : FD_NC_IN_PLACE_F;
    if (isa != FD_ISA_PORTABLE && row_panels <= FD_B_IN_PLACE_PANELS
            && 2 * row_panels >= FD_B_IN_PLACE_PANELS && narrow < p.nc)
        p.nc = narrow;
    p.m_chunk = fd_round_up(m > 0 ? m : 1, p.mr);
    p.n_chunk = n < p.nc ? (n > 0 ? n : 1) : p.nc;
    if (n > p.nc) {   /* NC blocks of equal width (whole NR panels): no thin last block */
        ptrdiff_t blocks = fd_ceil_div(n, p.nc);
        p.n_chunk = fd_round_up(fd_ceil_div(n, blocks), p.nr);
    }
    if (threads > 1 && m * n * (k > 0 ? k : 1) >= FD_PARALLEL_MIN_MACS) {
        ptrdiff_t panels = fd_ceil_div(n, p.nr), items_n = panels / 2;
        if (items_n > FD_TARGET_ITEMS) items_n = FD_TARGET_ITEMS;
        if (items_n < 1) items_n = 1;
        ptrdiff_t want = fd_ceil_div(panels, items_n) * p.nr;
        if (want < p.n_chunk) p.n_chunk = want;
        items_n = fd_ceil_div(n, p.n_chunk);
        if (items_n < FD_TARGET_ITEMS) {
            ptrdiff_t items_m = fd_ceil_div(FD_TARGET_ITEMS, items_n);
            ptrdiff_t rows = fd_round_up(fd_ceil_div(m, items_m), p.mr);
            if (rows < p.m_chunk) p.m_chunk = rows;
        }
    }
    p.items_m = m > 0 ? fd_ceil_div(m, p.m_chunk) : 0;
    p.items_n = n > 0 ? fd_ceil_div(n, p.n_chunk) : 0;
    if (p.items_n > 0) {   /* at least the widest item of fd_plan_item_columns, less than a
                              panel more (its last panel may be a part one) */
        p.n_chunk = fd_ceil_div(fd_ceil_div(n, p.nr), p.items_n) * p.nr;
        if (p.n_chunk > n) p.n_chunk = n;
    }
    return p;
}

/* fd_make_plan_tile with the register tile that pads m x n least (ties: the first). */
static fd_plan fd_make_plan(int isa, int is_double, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            int threads)
{
    int tile = 0;
    for (int t = 1; t < FD_TILES; ++t) {
        const fd_blocking *o = &fd_blocking_table[isa][is_double ? 1 : 0][t];
        const fd_blocking *b = &fd_blocking_table[isa][is_double ? 1 : 0][tile];
        if (fd_round_up(m, o->mr) * fd_round_up(n, o->nr)
                < fd_round_up(m, b->mr) * fd_round_up(n, b->nr))
            tile = t;
    }
    return fd_make_plan_tile(isa, is_double, tile, m, n, k, threads);
}

/* The plan of a GEMM whose A is read in place as `groups_of_rows` runs of `width` rows each
 * (fd_rows_src as A, fd_gemm_job_set_a_rows): each run is rounded up to whole MR panels
 * (a last panel that would pass the run's end is moved back to end with it), so m is
 * groups_of_rows * round_up(width, MR). The tile that pads this m x n least among those with
 * MR <= width; p.m == 0 when none has (the caller then needs another form of the GEMM). */
static fd_plan fd_make_plan_a_rows(int isa, int is_double, ptrdiff_t width,
                                   ptrdiff_t groups_of_rows, ptrdiff_t n, ptrdiff_t k,
                                   int threads)
{
    int tile = -1;
    ptrdiff_t best = 0;
    for (int t = 0; t < FD_TILES; ++t) {
        const fd_blocking *o = &fd_blocking_table[isa][is_double ? 1 : 0][t];
        if (o->mr > width) continue;
        ptrdiff_t cost = groups_of_rows * fd_round_up(width, o->mr) * fd_round_up(n, o->nr);
        if (tile < 0 || cost < best) { tile = t; best = cost; }
    }
    if (tile < 0) {
        fd_plan none = fd_make_plan_tile(isa, is_double, 0, 0, n, k, threads);
        return none;
    }
    ptrdiff_t mr = fd_blocking_table[isa][is_double ? 1 : 0][tile].mr;
    return fd_make_plan_tile(isa, is_double, tile, groups_of_rows * fd_round_up(width, mr), n,
                             k, threads);
}

static ptrdiff_t fd_plan_items(const fd_plan *p) { return p->items_m * p->items_n; }

/* The columns [j0, j0 + nc) of item `item`'s block of C: the n columns' NR panels dealt out to
 * the items_n items in runs whose lengths differ by at most one panel, so that no item is
 * thinner than the others by more than a panel (resnet_s2 on 2 threads: 33 panels in items
 * of 8, 8, 8 and 9 panels, 0.956x the time of 9, 9, 9 and 6). */
static void fd_plan_item_columns(const fd_plan *p, ptrdiff_t item, ptrdiff_t *j0, ptrdiff_t *nc)
{
    ptrdiff_t in = item % p->items_n, panels = fd_ceil_div(p->n, p->nr);
    ptrdiff_t j1 = (in + 1) * panels / p->items_n * p->nr;
    *j0 = in * panels / p->items_n * p->nr;
    *nc = (j1 < p->n ? j1 : p->n) - *j0;
}


/* Elements of one packed KC x n_chunk block of B. */
static ptrdiff_t fd_bpack_elems(const fd_plan *p) { return p->kc * fd_round_up(p->n_chunk, p->nr); }

/* Elements of packed A. */
static ptrdiff_t fd_apack_elems(const fd_plan *p) { return fd_round_up(p->m, p->mr) * p->k; }

#include "fd_conv_src.h"
#include "../fd_transpose.h"   /* the row-major A panels' transposition (fd_pack_a_block) */

/* Elements of the block of C a work item of a placed convolution source computes before
 * storing it (its rows and columns rounded up to whole register tiles). */
static ptrdiff_t fd_placed_block_elems(const fd_plan *p)
{
    return fd_round_up(p->m_chunk, p->mr) * fd_round_up(p->n_chunk, p->nr);
}

/* Rows of a placed convolution's work items at most (bounds the block above: with n_chunk <=
 * NC, at most 512 x NC values, e.g. 512 x 768 float32 on AVX-512, 512 x 1024 portable). */
#define FD_PLACED_MAX_ROWS 512

/* Cut m into items of at most `rows` rows (a multiple of MR); the bits do not change. */
static void fd_plan_cap_rows(fd_plan *p, ptrdiff_t rows)
{
    rows = rows / p->mr * p->mr;
    if (rows < p->mr) rows = p->mr;
    if (p->m_chunk > rows) {
        p->m_chunk = rows;
        p->items_m = p->m > 0 ? fd_ceil_div(p->m, p->m_chunk) : 0;
    }
}

/* Elements of one MC x KC block of A packed by a work item. */
static ptrdiff_t fd_ablock_elems(const fd_plan *p) { return p->mc * p->kc; }

/* Should a GEMM pre-pack the whole of A (shared by its items), or each item pack its blocks?
 * Pre-packing pays when several items use the same rows of A, i.e. when n is split. */
static int fd_prepack_a(const fd_plan *p) { return p->items_n > 1; }

/* Entries of a work item's tables for the panels its micro-kernels copy (fd_vector_panels):
 * a slice's row offsets, then each panel's vector sources. */
static ptrdiff_t fd_copy_table_entries(const fd_plan *p)
{
    return p->kc + (p->n_chunk + p->nr - 1) / p->nr * FD_MAX_NV;
}

/* Bytes of one thread's scratch: packed B block, an edge tile, a block of A (when A is not
 * pre-packed), the runs of a convolution source and the tables of its copied panels, and,
 * for a placed source, its block of C. */
static size_t fd_workspace_bytes(const fd_plan *p, size_t elem, int placed)
{
    return (size_t)(fd_bpack_elems(p) + p->mr * p->nr + fd_ablock_elems(p)) * elem
           + (size_t)fd_runs_bound(p) * sizeof(fd_run)
           + (size_t)fd_copy_table_entries(p) * sizeof(ptrdiff_t)
           + (placed ? (size_t)fd_placed_block_elems(p) * elem + 64 : 0) + 64;
}

/* ------------------------------------------------- prefetching while the micro-kernel runs */
/* A stream of cache lines that a micro-kernel prefetches into L2 while it computes, one line
 * every other k: `rows` rows of `row_bytes` bytes, `ld` bytes apart, starting `off` bytes into
 * the row at `row`. The driver points it at the next block of B it will pack, so that the
 * packing copies from cache instead of waiting on memory (fd_gemm_item_ex).
 * With copy_to, the stream is instead one packed panel of B that the micro-kernel copies
 * while it computes, one row of NR values per k to copy_to + k * NR (elements): vector v of
 * the row (VLEN values) from row + row_offset[k] + vec_src[v] (elements: a dense B's rows, or
 * a convolution's whose every vector lies in one run, fd_vector_panels), or with `pieces`,
 * each 16-byte piece of the row so. */
typedef struct {
    const char *row;
    ptrdiff_t ld, row_bytes, off, rows;
    char *copy_to;                 /* not NULL: a copy instead (fd_gemm_item_ex) */
    const ptrdiff_t *row_offset, *vec_src;
    int pieces;                    /* 0: vec_src are vectors; else 16-byte pieces */
    const ptrdiff_t *a_offset;     /* not NULL: A read in place (neither prefetch nor copy):
                                      for each k, its MR values at a + a_offset[k] */
} fd_prefetch;

static inline void fd_prefetch_step(fd_prefetch *pf)
{
    __builtin_prefetch(pf->row + pf->off, 0, FD_PREFETCH_LOCALITY);
    pf->off += 64;
    if (pf->off >= pf->row_bytes) {
        pf->off = 0;
        pf->row += pf->ld;
        --pf->rows;
    }
}


/* --------------------------------------------------------------- micro-kernels per dtype */
#define FD_CAT2_(a, b) a##b
#define FD_CAT2(a, b) FD_CAT2_(a, b)
#define FD_CAT3_(a, b, c) a##b##c
#define FD_CAT3(a, b, c) FD_CAT3_(a, b, c)
#define FD_VOP(name) FD_CAT3(FD_PFX, name, FD_SFX_OP)

#define FD_T float
#define FD_IS_FLOAT 1
#define FD_SFX(name) name##_f

#define FD_UKR_NAME fd_ukr_portable_f
#define FD_MR FD_PORTABLE_MR
#define FD_NR FD_PORTABLE_NR_F
#include "fd_ukernel_portable.h"

#if FD_GEMM_X86
#define FD_UKR_NAME fd_ukr_avx2_f
#define FD_TARGET __attribute__((target("avx2,fma")))
#define FD_MR FD_AVX2_MR
#define FD_NV FD_AVX2_NV
#define FD_V __m256
#define FD_VLEN 8
#define FD_PFX _mm256_
#define FD_SFX_OP _ps
#include "fd_ukernel.h"

#define FD_UKR_NAME fd_ukr_avx512_0_f
#define FD_TARGET __attribute__((target("avx512f")))
#define FD_MR FD_AVX512_MR_0
#define FD_NV FD_AVX512_NV_0
#define FD_V __m512
#define FD_VLEN 16
#define FD_PFX _mm512_
#define FD_SFX_OP _ps
#include "fd_ukernel.h"

#define FD_UKR_NAME fd_ukr_avx512_1_f
#define FD_TARGET __attribute__((target("avx512f")))
#define FD_MR FD_AVX512_MR_1
#define FD_NV FD_AVX512_NV_1
#define FD_V __m512
#define FD_VLEN 16
#define FD_PFX _mm512_
#define FD_SFX_OP _ps
#include "fd_ukernel.h"
#endif

#include "fd_pack.h"
#include "fd_pack_rows.h"
#include "fd_driver.h"

/* The micro-kernel of a kernel and register tile (fd_plan.tile), on packed panels of B
 * (FD_B_PACKED), on a dense B's rows in place (FD_B_ROWS) or on a convolution's panel whose
 * vectors each lie in one run, in place (FD_B_VECTORS); the portable kernel reads packed
 * panels and dense rows, and the driver reads nothing in place for it (fd_gemm_item_ex). */
static fd_ukr_fn_f fd_ukr_for_f(int isa, int tile, int b_read)
{
#if FD_GEMM_X86
    if (isa == FD_ISA_AVX512 && b_read == FD_B_ROWS)
        return tile ? fd_ukr_avx512_1_f_rows : fd_ukr_avx512_0_f_rows;
    if (isa == FD_ISA_AVX512 && b_read == FD_B_VECTORS)
        return tile ? fd_ukr_avx512_1_f_vectors : fd_ukr_avx512_0_f_vectors;
    if (isa == FD_ISA_AVX512) return tile ? fd_ukr_avx512_1_f : fd_ukr_avx512_0_f;
    if (isa == FD_ISA_AVX2 && b_read == FD_B_ROWS) return fd_ukr_avx2_f_rows;
    if (isa == FD_ISA_AVX2 && b_read == FD_B_VECTORS) return fd_ukr_avx2_f_vectors;
    if (isa == FD_ISA_AVX2) return fd_ukr_avx2_f;
#endif
    (void)isa; (void)tile; (void)b_read;
    return fd_ukr_portable_f;
}

#undef FD_T
#undef FD_IS_FLOAT
#undef FD_SFX
#define FD_T double
#define FD_IS_FLOAT 0
#define FD_SFX(name) name##_d

#define FD_UKR_NAME fd_ukr_portable_d
#define FD_MR FD_PORTABLE_MR
#define FD_NR FD_PORTABLE_NR_D
#include "fd_ukernel_portable.h"

#if FD_GEMM_X86
#define FD_UKR_NAME fd_ukr_avx2_d
#define FD_TARGET __attribute__((target("avx2,fma")))
#define FD_MR FD_AVX2_MR
#define FD_NV FD_AVX2_NV
#define FD_V __m256d
#define FD_VLEN 4
#define FD_PFX _mm256_
#define FD_SFX_OP _pd
#include "fd_ukernel.h"

#define FD_UKR_NAME fd_ukr_avx512_0_d
#define FD_TARGET __attribute__((target("avx512f")))
#define FD_MR FD_AVX512_MR_0
#define FD_NV FD_AVX512_NV_0
#define FD_V __m512d
#define FD_VLEN 8
#define FD_PFX _mm512_
#define FD_SFX_OP _pd
#include "fd_ukernel.h"

#define FD_UKR_NAME fd_ukr_avx512_1_d
#define FD_TARGET __attribute__((target("avx512f")))
#define FD_MR FD_AVX512_MR_1
#define FD_NV FD_AVX512_NV_1
#define FD_V __m512d
#define FD_VLEN 8
#define FD_PFX _mm512_
#define FD_SFX_OP _pd
#include "fd_ukernel.h"
#endif

#include "fd_pack.h"
#include "fd_pack_rows.h"
#include "fd_driver.h"

/* The micro-kernel of a kernel and register tile (fd_plan.tile), on packed panels of B
 * (FD_B_PACKED), on a dense B's rows in place (FD_B_ROWS) or on a convolution's panel whose
 * vectors each lie in one run, in place (FD_B_VECTORS); the portable kernel reads packed
 * panels and dense rows, and the driver reads nothing in place for it (fd_gemm_item_ex). */
static fd_ukr_fn_d fd_ukr_for_d(int isa, int tile, int b_read)
{
#if FD_GEMM_X86
    if (isa == FD_ISA_AVX512 && b_read == FD_B_ROWS)
        return tile ? fd_ukr_avx512_1_d_rows : fd_ukr_avx512_0_d_rows;
    if (isa == FD_ISA_AVX512 && b_read == FD_B_VECTORS)
        return tile ? fd_ukr_avx512_1_d_vectors : fd_ukr_avx512_0_d_vectors;
    if (isa == FD_ISA_AVX512) return tile ? fd_ukr_avx512_1_d : fd_ukr_avx512_0_d;
    if (isa == FD_ISA_AVX2 && b_read == FD_B_ROWS) return fd_ukr_avx2_d_rows;
    if (isa == FD_ISA_AVX2 && b_read == FD_B_VECTORS) return fd_ukr_avx2_d_vectors;
    if (isa == FD_ISA_AVX2) return fd_ukr_avx2_d;
#endif
    (void)isa; (void)tile; (void)b_read;
    return fd_ukr_portable_d;
}

#undef FD_T
#undef FD_IS_FLOAT
#undef FD_SFX

/* fd_gemm_job_init_f / _d on an untyped job (one call site for both dtypes). */
static void fd_gemm_job_init(int is_double, void *job, const fd_plan *p, const void *apack,
                             const void *a, ptrdiff_t lda, int trans_a, const void *b,
                             ptrdiff_t ldb, int trans_b, void *c, ptrdiff_t ldc, int accumulate,
                             const void *bias)
{
    if (is_double)
        fd_gemm_job_init_d((fd_gemm_job_d *)job, p, apack, a, lda, trans_a, b, ldb, trans_b, c,
                           ldc, accumulate, bias);
    else
        fd_gemm_job_init_f((fd_gemm_job_f *)job, p, apack, a, lda, trans_a, b, ldb, trans_b, c,
                           ldc, accumulate, bias);
}

/* fd_conv_job_init_f / _d on an untyped job. */
static void fd_conv_job_init(int is_double, void *cj, const fd_plan *p, const void *apack,
                             ptrdiff_t apack_group, int pointwise, const void *x, ptrdiff_t ldb,
                             const fd_conv_src *src, void *y, const void *bias, ptrdiff_t samples,
                             ptrdiff_t samples_per_gemm, ptrdiff_t groups, ptrdiff_t x_sample,
                             ptrdiff_t x_group, ptrdiff_t y_sample, ptrdiff_t y_group)
{
    if (is_double)
        fd_conv_job_init_d((fd_conv_job_d *)cj, p, apack, apack_group, pointwise, x, ldb, src, y,
                           bias, samples, samples_per_gemm, groups, x_sample, x_group, y_sample,
                           y_group);
    else
        fd_conv_job_init_f((fd_conv_job_f *)cj, p, apack, apack_group, pointwise, x, ldb, src, y,
                           bias, samples, samples_per_gemm, groups, x_sample, x_group, y_sample,
                           y_group);
}

/* C's row stride of a convolution job (an untyped job): the channel stride of the output. */
static void fd_conv_job_set_ldc(int is_double, void *cj, ptrdiff_t ldc)
{
    if (is_double) ((fd_conv_job_d *)cj)->gemm.ldc = ldc;
    else ((fd_conv_job_f *)cj)->gemm.ldc = ldc;
}

/* Make a GEMM job's B the gathered rows `rows` over `base` (b and conv stay NULL). */
static void fd_gemm_job_set_rows(int is_double, void *job, const fd_rows_src *rows,
                                 const void *base)
{
    if (is_double) {
        ((fd_gemm_job_d *)job)->rows = rows;
        ((fd_gemm_job_d *)job)->xp = (const double *)base;
    } else {
        ((fd_gemm_job_f *)job)->rows = rows;
        ((fd_gemm_job_f *)job)->xp = (const float *)base;
    }
}

/* Make a GEMM job's A the rows `rows` read in place over `base` (apack and a stay NULL; the
 * plan from fd_make_plan_a_rows). */
static void fd_gemm_job_set_a_rows(int is_double, void *job, const fd_rows_src *rows,
                                   const void *base)
{
    if (is_double) {
        ((fd_gemm_job_d *)job)->a_rows = rows;
        ((fd_gemm_job_d *)job)->ax = (const double *)base;
    } else {
        ((fd_gemm_job_f *)job)->a_rows = rows;
        ((fd_gemm_job_f *)job)->ax = (const float *)base;
    }
}

#endif /* FASTDECONV_GEMM_H */
