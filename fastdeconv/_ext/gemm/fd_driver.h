/* The blocked driver, instantiated per dtype by fd_gemm.h (FD_T, FD_SFX(name)).
 *
 * The output C (m x n) is cut into work items of at most m_chunk x n_chunk (fd_plan,
 * fd_plan_item_columns; they follow the
 * thread count, the bits do not depend on them); the caller runs the items on any threads.
 * One item:
 *
 *     for each KC slice k0 (in order; the reduction is never split):     BLIS loop 4
 *         pack B[k0:k0+kc, item columns] into the thread's bpack        (L2-resident;
 *             with few row panels, a dense B's panels and a convolution's panels of whole
 *             vectors are read in place instead)
 *         for each MC block of the item's rows:                          loop 3
 *             for each NR micro-panel of B:                              loop 2 (B panel in L1)
 *                 for each MR micro-panel of the pre-packed A:           loop 1
 *                     micro-kernel over kc
 *
 * The first slice stores C = AB (+ bias) or adds to C (accumulate); later slices add. Tiles
 * cut by the edges of C are computed whole into a scratch tile (A and B are zero-padded) and
 * their valid part stored with the same formula. A placed convolution source (a stride phase)
 * computes the item's whole tiles into a block of the scratch (or, with one KC slice, each
 * into the scratch tile) and stores each tile at the placed output positions right after its
 * last slice, while it is in L1 (the partner phases of fd_conv_item_pair store whole blocks
 * instead); it neither accumulates nor adds a bias (its caller passes neither).
 */
typedef void (*FD_SFX(fd_ukr_fn))(ptrdiff_t, const FD_T *restrict, const FD_T *restrict,
                                  ptrdiff_t, FD_T *restrict, ptrdiff_t, int, const FD_T *restrict,
                                  fd_prefetch *restrict);

/* The micro-kernel of a kernel and register tile (defined in fd_gemm.h). */
static FD_SFX(fd_ukr_fn) FD_SFX(fd_ukr_for)(int isa, int tile, int b_read);

typedef struct {
    fd_plan plan;
    FD_SFX(fd_ukr_fn) ukr, ukr_rows, ukr_vectors;   /* fd_ukr_for: FD_B_PACKED, _ROWS, _VECTORS */
    const FD_T *apack;            /* A packed by fd_pack_a_slice with plan.mr, plan.kc, or NULL:
                                     each item packs blocks of a itself (fd_pack_a_block) */
    const FD_T *a;                /* A, when apack is NULL */
    ptrdiff_t lda;
    int trans_a;
    const FD_T *b;                /* dense B, or NULL for the convolution source */
    ptrdiff_t ldb;
    int trans_b;
    const fd_conv_src *conv;      /* convolution B source (b == NULL) */
    const fd_rows_src *rows;      /* or gathered-rows B source (b == NULL, conv == NULL) */
    const FD_T *xp;               /* their padded input, already offset to the group's channels */
    const fd_rows_src *a_rows;    /* not NULL: A read in place from ax (no apack, no a), row
                                     (t, c) of A, column k at ax + row_offset[k] +
                                     tap_offset[t] + c, rows in runs of round_up(width, MR)
                                     (fd_make_plan_a_rows) */
    const FD_T *ax;
    FD_T *c;
    ptrdiff_t ldc;
    ptrdiff_t c_block, c_block_stride;  /* if c_block > 0: column j of C is column j % c_block
                                           of the block at c + (j / c_block) * c_block_stride */
    int accumulate;
    const FD_T *bias;             /* m values or NULL */
} FD_SFX(fd_gemm_job);

/* The dense B block a thread is expected to pack next: columns [j0, j0 + nc) of b (NULL:
 * none known). */
typedef struct {
    const FD_T *b;
    ptrdiff_t j0, nc;
} FD_SFX(fd_next_block);

/* What the micro-kernels prefetch while slice [k0, k0 + kc) of an item (columns [j0, j0 +
 * nc)) computes: the rows of a dense B that the next packing reads, those of the item's next
 * slice or of the next item's first. NULL: nothing (the last item, a transposed B, or a B
 * that is not dense: their packing measured no faster with the planes of x prefetched). */
static fd_prefetch *FD_SFX(fd_next_prefetch)(const FD_SFX(fd_gemm_job) *job, ptrdiff_t k0,
                                             ptrdiff_t kc, ptrdiff_t j0, ptrdiff_t nc,
                                             const FD_SFX(fd_next_block) *next,
                                             fd_prefetch *pf)
{
    const fd_plan *p = &job->plan;
    if (!job->b || job->trans_b) return NULL;
    const FD_T *b = job->b;
    if (k0 + kc < p->k) {   /* the next slice of this item */
        k0 += kc;
    } else {                /* the first slice of the next item */
        if (!next || !next->b) return NULL;
        b = next->b;
        k0 = 0;
        j0 = next->j0;
        nc = next->nc;
    }
    pf->row = (const char *)(b + k0 * job->ldb + j0);
    pf->ld = job->ldb * (ptrdiff_t)sizeof(FD_T);
    pf->row_bytes = nc * (ptrdiff_t)sizeof(FD_T);
    pf->off = 0;
    pf->rows = p->k - k0 < p->kc ? p->k - k0 : p->kc;
    pf->copy_to = NULL;
    pf->a_offset = NULL;
    return pf;
}

/* Store (or add) one m x n tile of values v (row stride ldv) with the micro-kernel's formula. */
static void FD_SFX(fd_store_edge)(ptrdiff_t m, ptrdiff_t n, const FD_T *v, ptrdiff_t ldv,
                                  FD_T *c, ptrdiff_t ldc, int add, const FD_T *bias)
{
    for (ptrdiff_t i = 0; i < m; ++i)
        for (ptrdiff_t j = 0; j < n; ++j) {
            FD_T val = v ? v[i * ldv + j] : 0;
            if (bias) val = val + bias[i];
            if (add) val = val + c[i * ldc + j];
            c[i * ldc + j] = val;
        }
}

/* fd_store_edge of columns [j, j + n) of C, cut where they cross blocks of c_block columns. */
static void FD_SFX(fd_store_cols)(const FD_SFX(fd_gemm_job) *job, ptrdiff_t i, ptrdiff_t m,
                                  ptrdiff_t j, ptrdiff_t n, const FD_T *v, ptrdiff_t ldv,
                                  int add, const FD_T *bias)
{
    ptrdiff_t blk = job->c_block > 0 ? job->c_block : j + n;
    for (ptrdiff_t done = 0; done < n;) {
        ptrdiff_t jj = j + done, len = blk - jj % blk;
        if (len > n - done) len = n - done;
        FD_SFX(fd_store_edge)(m, len, v ? v + done : NULL, ldv,
                              job->c + (jj / blk) * job->c_block_stride + jj % blk + i * job->ldc,
                              job->ldc, add, bias);
        done += len;
    }
}

/* out[2 e] = even[e], out[2 e + 1] = odd[e] for e < len: two stride phases' values of one
 * output line, written together (whole vectors, each line once). An AVX-512 version (two
 * permutes and two stores per 16 pairs) measured no faster on unet_up and dcgan_g4: the
 * output's stores from memory, not the instructions, set the time. */
static inline void FD_SFX(fd_interleave2)(FD_T *restrict out, const FD_T *even, const FD_T *odd,
                                          ptrdiff_t len)
{
    for (ptrdiff_t e = 0; e < len; ++e) {
        out[2 * e] = even[e];
        out[2 * e + 1] = odd[e];
    }
}

/* Store the m x nc block v (row stride ldv; rows [i, i + m) of C, the columns of one work
 * item, whose runs are runs[0, nruns), from panel panel0 on) at the output positions of a
 * placed convolution source, each element once (v == NULL: zeros). */
static void FD_SFX(fd_store_placed)(const FD_SFX(fd_gemm_job) *job, const fd_run *runs,
                                    ptrdiff_t nruns, ptrdiff_t i, ptrdiff_t m, int nr,
                                    const FD_T *v, ptrdiff_t ldv, ptrdiff_t panel0)
{
    ptrdiff_t step = job->conv->place_step[job->conv->ndim - 1];
    const ptrdiff_t *place_row = job->conv->place_row;
    for (ptrdiff_t r = 0; r < m; ++r) {
        if (v && step == 2 && place_row && r + 1 < m
                && place_row[i + r + 1] == place_row[i + r] + 1) {
            /* stacked phases: rows r and r + 1 fill the even and odd positions of the same
             * output row (taps 0 and 1 of a kernel of 2 at stride 2): written together,
             * interleaved, each output line once */
            FD_T *row = job->c + place_row[i + r];
            for (ptrdiff_t q = 0; q < nruns; ++q) {
                FD_T *restrict out = row + runs[q].dst;
                const FD_T *even = v + r * ldv + (runs[q].panel - panel0) * nr + runs[q].lane;
                FD_SFX(fd_interleave2)(out, even, even + ldv, runs[q].len);
            }
            ++r;
            continue;
        }
        FD_T *row = job->c + (place_row ? place_row[i + r] : (i + r) * job->ldc);
        for (ptrdiff_t q = 0; q < nruns; ++q) {
            FD_T *out = row + runs[q].dst;
            const FD_T *from = v ? v + r * ldv + (runs[q].panel - panel0) * nr + runs[q].lane
                                 : NULL;
            ptrdiff_t len = runs[q].len;
            if (from && step == 1) memcpy(out, from, (size_t)len * sizeof(FD_T));
            else for (ptrdiff_t e = 0; e < len; ++e) out[e * step] = from ? from[e] : 0;
        }
    }
}

/* Run work item `item` of the job; work is the thread's scratch of fd_workspace_bytes(plan,
 * sizeof(FD_T), placed). A placed source's item computes its block at `placed_block` (NULL:
 * in work, after the runs) and stores it tile by tile if `store`, else leaves the whole block
 * there (fd_conv_item_pair stores two items' blocks at once); returns the item's runs, which
 * stay in work (at *runs_at, and its block at *block_at, when those are given). */
static ptrdiff_t FD_SFX(fd_gemm_item_ex)(const FD_SFX(fd_gemm_job) *job, ptrdiff_t item,
                                         FD_T *work, FD_T *placed_block, int store,
                                         const fd_run **runs_at, FD_T **block_at,
                                         const FD_SFX(fd_next_block) *next)
{
    const fd_plan *p = &job->plan;
    ptrdiff_t im = item / p->items_n, in = item % p->items_n;
    ptrdiff_t i0 = im * p->m_chunk, i1 = i0 + p->m_chunk < p->m ? i0 + p->m_chunk : p->m;
    ptrdiff_t j0, nc;
    fd_plan_item_columns(p, in, &j0, &nc);
    ptrdiff_t j1 = j0 + nc, mr = p->mr, nr = p->nr;
    ptrdiff_t m_pad = (p->m + mr - 1) / mr * mr;
    FD_T *bpack = work;
    FD_T *tile = work + fd_bpack_elems(p);
    FD_T *ablock = tile + mr * nr;   /* MC x KC block of A packed here when apack is NULL */
    fd_run *runs = (fd_run *)(ablock + (job->apack ? 0 : fd_ablock_elems(p)));
    ptrdiff_t nruns = 0;
    /* A placed source's item is computed into a block of its own (the whole tiles, rows
     * and columns rounded up to MR and NR, after the runs in the scratch), then stored once */
    int placed = !job->b && job->conv && job->conv->placed;
    ptrdiff_t ldb_item = fd_round_up(nc, nr);
    ptrdiff_t *row_offset = (ptrdiff_t *)(runs + fd_runs_bound(p));   /* fd_copy_table_entries */
    ptrdiff_t *vec_src = row_offset + p->kc;
    FD_T *block = placed_block ? placed_block
                               : (FD_T *)(((uintptr_t)(row_offset + fd_copy_table_entries(p))
                                           + 63) & ~(uintptr_t)63);
    if (runs_at) *runs_at = runs;
    if (block_at) *block_at = block;
    if (placed) {
        nruns = fd_conv_runs(job->conv, j0, nc, (int)nr, runs);
        if (p->k == 0) {   /* no channels: the placed outputs are zero */
            FD_SFX(fd_store_placed)(job, runs, nruns, i0, i1 - i0, (int)nr, NULL, 0, 0);
            return nruns;
        }
    }
    /* A placed item that stores its own block stores it tile by tile instead, each tile in
     * its last KC slice right after the micro-kernel, while it is in L1 (and between the
     * tiles' multiply-adds); an item of one slice computes its tiles into the scratch tile,
     * not the block */
    int tile_by_tile = placed && store, into_tile = tile_by_tile && p->k <= p->kc;
    ptrdiff_t run_cursor = 0;   /* fd_panel_runs */
    if (p->k == 0) {
        if (!job->accumulate || job->bias)
            FD_SFX(fd_store_cols)(job, i0, i1 - i0, j0, nc, NULL, 0, job->accumulate,
                                  job->bias ? job->bias + i0 : NULL);
        return nruns;
    }
    if (job->conv && !job->b && !placed) nruns = fd_conv_runs(job->conv, j0, nc, (int)nr, runs);
    /* The whole panels after the first are copied by the micro-kernels of the item's first
     * row panel, each copying the next panel between its multiply-adds instead of a packing
     * pass before them (the portable kernel does not copy), when every vector of their rows
     * lies in one place: a dense B's (pointwise 0.96x the time, float64 0.92x), and a
     * convolution's whose output rows are whole vectors (a multiple of 16 floats: dcgan_g4
     * 0.89x, vnet3d_k3 0.80x, float64 0.95x and 0.90x; forward 5x5 and 7x7 convolutions on
     * 32x32 and 64x64 maps 0.96x) or else whole 16-byte pieces (a multiple of 4 floats or 2
     * doubles, copied piece by piece: dcgan_g2 0.92x, 2 threads 0.96x, float64 0.98x; k4 s2
     * phases on 8x8 and 12x12 maps 0.95x and 0.87x). row_offset (per slice, below) and
     * vec_src locate each row and vector from copy_base. */
    ptrdiff_t copied_panels = 0, nv = 0, first_runs = 0, last_runs = nruns;
    int pieces = 0;
    const FD_T *copy_base = job->b ? job->b : job->xp;
    const fd_rows_src *a_rows = job->a_rows;
    ptrdiff_t a_run = a_rows ? fd_round_up(a_rows->width, mr) : 0;
    /* a dense B of an item of few row panels is read in place (FD_B_IN_PLACE_PANELS): its
     * whole panels by the _rows micro-kernel, only a part panel at the end packed (measured
     * with the AVX-512 kernels; the portable kernel keeps packing) */
    int few_row_panels = fd_ceil_div(i1 - i0, mr) <= FD_B_IN_PLACE_PANELS;
    int b_in_place = p->isa != FD_ISA_PORTABLE && job->b && !job->trans_b && !a_rows
                     && few_row_panels;
    ptrdiff_t whole_panels = nc / nr;
    if (p->isa != FD_ISA_PORTABLE && !a_rows && !b_in_place) {
        int vlen = (int)((p->isa == FD_ISA_AVX512 ? 64 : 32) / sizeof(FD_T));
        nv = nr / vlen;
        if (job->b && !job->trans_b) {
            copied_panels = nc / nr;
            for (ptrdiff_t q = 0; q < copied_panels * nv; ++q) vec_src[q] = j0 + q * vlen;
        } else if (nruns && job->conv->stride_last == 1) {
            copied_panels = fd_vector_panels(runs, nruns, nc, (int)nr, vlen, vec_src);
            if (!copied_panels) {   /* runs of whole 16-byte pieces: 4x4, 8x8, 12x12 maps */
                vlen = (int)(16 / sizeof(FD_T));
                copied_panels = fd_vector_panels(runs, nruns, nc, (int)nr, vlen, vec_src);
                nv = nr / vlen;
                pieces = 1;
            }
            while (first_runs < nruns && runs[first_runs].panel == 0) ++first_runs;
            while (last_runs > 0 && runs[last_runs - 1].panel >= copied_panels) --last_runs;
        }
    }
    /* and a convolution's panels whose vectors each lie in one run, when the item has few
     * row panels (as a dense B's): read in place by the _vectors micro-kernel (the copy's
     * tables), only the panels after them packed */
    int conv_in_place = copied_panels >= 1 && !job->b && !pieces && few_row_panels;
    fd_prefetch in_place;   /* the _vectors kernel's tables: only vec_src changes per panel */
    memset(&in_place, 0, sizeof(in_place));
    in_place.row_offset = row_offset;
    /* C's blocks of columns: when the item's columns lie in one block (the usual case: one
     * sample's positions), column jr is at c + block_shift + jr, with no division per tile */
    ptrdiff_t blk = job->c_block > 0 ? job->c_block : (p->n > 0 ? p->n : 1);
    ptrdiff_t first_block = j0 / blk;
    int one_block = nc > 0 && (j1 - 1) / blk == first_block;
    ptrdiff_t block_shift = first_block * (job->c_block_stride - blk);
    fd_prefetch pf_state, *pf = NULL;
    for (ptrdiff_t k0 = 0; k0 < p->k; k0 += p->kc) {
        ptrdiff_t kc = p->k - k0 < p->kc ? p->k - k0 : p->kc;
        int add = k0 == 0 ? (placed ? 0 : job->accumulate) : 1;
        pf = a_rows ? NULL : FD_SFX(fd_next_prefetch)(job, k0, kc, j0, nc, next, &pf_state);
        const FD_T *bias = k0 == 0 && !placed ? job->bias : NULL;
        if (b_in_place) {   /* only a part panel at the end is packed */
            if (nc > whole_panels * nr)
                FD_SFX(fd_pack_b_dense)(job->b, job->ldb, 0, k0, kc, j0 + whole_panels * nr,
                                        nc - whole_panels * nr, (int)nr,
                                        bpack + whole_panels * nr * kc, p->isa);
        } else if (copied_panels > 1 && job->b) {   /* the first panel, and a part panel at the end */
            FD_SFX(fd_pack_b_dense)(job->b, job->ldb, 0, k0, kc, j0, nr, (int)nr, bpack, p->isa);
            if (nc > copied_panels * nr)
                FD_SFX(fd_pack_b_dense)(job->b, job->ldb, 0, k0, kc, j0 + copied_panels * nr,
                                        nc - copied_panels * nr, (int)nr,
                                        bpack + copied_panels * nr * kc, p->isa);
            for (ptrdiff_t kk = 0; kk < kc; ++kk) row_offset[kk] = (k0 + kk) * job->ldb;
        } else if (job->b)
            FD_SFX(fd_pack_b_dense)(job->b, job->ldb, job->trans_b, k0, kc, j0, nc, (int)nr, bpack,
                                    p->isa);
        else if (job->rows)
            FD_SFX(fd_pack_b_rows)(job->rows, job->xp, k0, kc, j0, nc, (int)nr, bpack);
        else if (copied_panels > 1 || conv_in_place) {   /* the first panel (unless read in
                                                             place), a part panel at the end */
            if (!conv_in_place)
                FD_SFX(fd_pack_b_conv)(job->conv, job->xp, runs, first_runs, k0, kc, nc,
                                       (int)nr, bpack, p->isa);
            if (last_runs < nruns)
                FD_SFX(fd_pack_b_conv)(job->conv, job->xp, runs + last_runs, nruns - last_runs,
                                       k0, kc, nc, (int)nr, bpack, p->isa);
            ptrdiff_t c = k0 / job->conv->taps, t = k0 % job->conv->taps;
            for (ptrdiff_t kk = 0; kk < kc; ++kk) {
                row_offset[kk] = c * job->conv->channel_stride + job->conv->tap_offset[t];
                if (++t == job->conv->taps) { t = 0; ++c; }
            }
        } else
            FD_SFX(fd_pack_b_conv)(job->conv, job->xp, runs, nruns, k0, kc, nc, (int)nr, bpack,
                                   p->isa);
        for (ptrdiff_t ic = i0; ic < i1; ic += p->mc) {
            ptrdiff_t ie = ic + p->mc < i1 ? ic + p->mc : i1;
            if (!job->apack && !a_rows)
                FD_SFX(fd_pack_a_block)(ie - ic, job->a + (job->trans_a ? ic : ic * job->lda),
                                        job->lda, job->trans_a, (int)mr, k0, kc, ablock,
                                        p->isa);
            ptrdiff_t a_panels = fd_ceil_div(ie - ic, mr), b_panels = fd_ceil_div(j1 - j0, nr);
            for (ptrdiff_t u = 0; u < (FD_IR_OUTER ? a_panels : b_panels); ++u) {
                for (ptrdiff_t v = 0; v < (FD_IR_OUTER ? b_panels : a_panels); ++v) {
                    ptrdiff_t ir = ic + (FD_IR_OUTER ? u : v) * mr;
                    ptrdiff_t jr = j0 + (FD_IR_OUTER ? v : u) * nr;
                    const FD_T *bp = bpack + (jr - j0) * kc;
                    ptrdiff_t ldb_k = nr;
                    FD_SFX(fd_ukr_fn) ukr = job->ukr;
                    if (b_in_place && jr + nr <= j1) {   /* a whole panel of B, in place */
                        bp = job->b + k0 * job->ldb + jr;
                        ldb_k = job->ldb;
                        ukr = job->ukr_rows;
                    }
                    const FD_T *ap = job->apack ? job->apack + k0 * m_pad + ir * kc
                                                : ablock + (ir - ic) * kc;
                    fd_prefetch copy, *stream = pf;
                    if (a_rows) {   /* the panel's rows: MR channels of one tap, in place */
                        ptrdiff_t t = ir / a_run, c0 = ir % a_run;
                        if (c0 + mr > a_rows->width) c0 = a_rows->width - mr;
                        ap = job->ax + a_rows->tap_offset[t] + c0;
                        memset(&copy, 0, sizeof(copy));
                        copy.a_offset = a_rows->row_offset + k0;
                        stream = &copy;
                    }
                    ptrdiff_t nrows = ie - ir < mr ? ie - ir : mr;
                    ptrdiff_t ncols = j1 - jr < nr ? j1 - jr : nr;
                    const FD_T *bias_r = bias ? bias + ir : NULL;
                    ptrdiff_t panel = (jr - j0) / nr;
                    if (conv_in_place && panel < copied_panels) {   /* in place, no copy */
                        bp = copy_base;
                        ukr = job->ukr_vectors;
                        in_place.vec_src = vec_src + panel * nv;
                        stream = &in_place;
                    } else if (copied_panels > 1 && ir == i0 && panel + 1 < copied_panels) {
                        copy.a_offset = NULL;
                        copy.row = (const char *)copy_base;
                        copy.row_offset = row_offset;
                        copy.vec_src = vec_src + (panel + 1) * nv;
                        copy.pieces = pieces;
                        copy.copy_to = (char *)(bpack + (jr - j0 + nr) * kc);
                        stream = &copy;
                    }
                    if (placed) {   /* whole tiles into the item's block or the tile */
                        FD_T *at = into_tile ? tile : block + (ir - i0) * ldb_item + (jr - j0);
                        ptrdiff_t ld = into_tile ? nr : ldb_item, count;
                        ukr(kc, ap, bp, ldb_k, at, ld, add, NULL, stream);
                        if (tile_by_tile && k0 + kc == p->k) {
                            const fd_run *first = fd_panel_runs(runs, nruns, panel,
                                                                &run_cursor, &count);
                            FD_SFX(fd_store_placed)(job, first, count, ir, nrows, (int)nr, at,
                                                    ld, panel);
                        }
                    } else if (nrows == mr && ncols == nr
                               && (one_block || jr / blk == (jr + nr - 1) / blk)) {
                        ptrdiff_t at = one_block ? block_shift + jr
                                                 : (jr / blk) * job->c_block_stride + jr % blk;
                        FD_T *cp = job->c + at + ir * job->ldc;
                        ukr(kc, ap, bp, ldb_k, cp, job->ldc, add, bias_r, stream);
                    } else {   /* an edge of C, or a tile across two blocks of columns */
                        ukr(kc, ap, bp, ldb_k, tile, nr, 0, NULL, stream);
                        FD_SFX(fd_store_cols)(job, ir, nrows, jr, ncols, tile, nr, add, bias_r);
                    }
                }
            }
        }
    }
    return nruns;
}

static void FD_SFX(fd_gemm_item)(const FD_SFX(fd_gemm_job) *job, ptrdiff_t item, FD_T *work)
{
    FD_SFX(fd_next_block) next = {NULL, 0, 0};
    if (job->b && item + 1 < fd_plan_items(&job->plan)) {
        next.b = job->b;
        fd_plan_item_columns(&job->plan, item + 1, &next.j0, &next.nc);
    }
    FD_SFX(fd_gemm_item_ex)(job, item, work, NULL, 1, NULL, NULL, &next);
}

/* A forward convolution as GEMMs y[S, g] = W[g] B(x[S, g]) (+ bias[g]), one per group and
 * block S of samples_per_gemm samples, whose columns are the positions of those samples one
 * after the other; each is cut into the work items of `gemm.plan` (m, n, k = cout_g,
 * samples_per_gemm * positions, cin_g * taps). `gemm` is the template: its B (dense b for a
 * pointwise convolution of one sample per GEMM, read in place, else the convolution source
 * over xp), apack, c and bias are offset per block and group; C's columns are cut into blocks
 * of `positions` columns, one per sample (c_block). */
typedef struct {
    FD_SFX(fd_gemm_job) gemm;
    ptrdiff_t samples, groups, samples_per_gemm;   /* samples_per_gemm divides samples */
    ptrdiff_t apack_group, x_sample, x_group, y_sample, y_group;   /* strides in elements */
} FD_SFX(fd_conv_job);

static ptrdiff_t FD_SFX(fd_conv_items)(const FD_SFX(fd_conv_job) *cj)
{
    return cj->samples / cj->samples_per_gemm * cj->groups * fd_plan_items(&cj->gemm.plan);
}

/* The GEMM job of the sample block and group of conv item `item` (offset copies of the
 * template's pointers); returns the item's index within that GEMM. */
static ptrdiff_t FD_SFX(fd_conv_item_job)(const FD_SFX(fd_conv_job) *cj, ptrdiff_t item,
                                          FD_SFX(fd_gemm_job) *job)
{
    ptrdiff_t per_gemm = fd_plan_items(&cj->gemm.plan);
    ptrdiff_t gemm_index = item / per_gemm, g = gemm_index % cj->groups;
    ptrdiff_t s = gemm_index / cj->groups * cj->samples_per_gemm;   /* first sample */
    *job = cj->gemm;
    ptrdiff_t x_off = s * cj->x_sample + g * cj->x_group;   /* runs add the later samples */
    if (job->b) job->b += x_off;
    else job->xp += x_off;
    if (job->apack) job->apack += g * cj->apack_group;   /* (fd_col2im_unit: a dense A) */
    job->c += s * cj->y_sample + g * cj->y_group;
    if (job->bias) job->bias += g * job->plan.m;
    return item % per_gemm;
}

static void FD_SFX(fd_conv_item)(const FD_SFX(fd_conv_job) *cj, ptrdiff_t item, FD_T *work)
{
    FD_SFX(fd_gemm_job) job;
    ptrdiff_t local = FD_SFX(fd_conv_item_job)(cj, item, &job);
    FD_SFX(fd_next_block) next = {NULL, 0, 0};
    if (job.b && item + 1 < FD_SFX(fd_conv_items)(cj)) {   /* the next item's dense B */
        FD_SFX(fd_gemm_job) after;
        ptrdiff_t next_local = FD_SFX(fd_conv_item_job)(cj, item + 1, &after);
        next.b = after.b;
        fd_plan_item_columns(&after.plan, next_local, &next.j0, &next.nc);
    }
    FD_SFX(fd_gemm_item_ex)(&job, local, work, NULL, 1, NULL, NULL, &next);
}

/* Item `item` of two stride phases that fill the even and the odd positions of the same
 * output lines (last dimension's stride 2, the odd phase's first output one after the
 * even one's; the same plan but for k, the same runs but for that one position; placed, no
 * place_row, k > 0: the caller checks): both blocks are computed (the even one in work,
 * the odd one at odd_block, of fd_placed_block_elems), then stored together, interleaved,
 * so that each output line is written once with whole vectors instead of twice, every
 * other element. The values are those of fd_conv_item on each. */
static void FD_SFX(fd_conv_item_pair)(const FD_SFX(fd_conv_job) *even,
                                      const FD_SFX(fd_conv_job) *odd, ptrdiff_t item,
                                      FD_T *work, FD_T *odd_block)
{
    FD_SFX(fd_gemm_job) je, jo;
    ptrdiff_t local = FD_SFX(fd_conv_item_job)(even, item, &je);
    FD_SFX(fd_conv_item_job)(odd, item, &jo);
    const fd_plan *p = &je.plan;
    ptrdiff_t nr = p->nr, i0 = local / p->items_n * p->m_chunk;
    ptrdiff_t j0, nc;
    fd_plan_item_columns(p, local, &j0, &nc);
    ptrdiff_t rows = p->m - i0 < p->m_chunk ? p->m - i0 : p->m_chunk;
    ptrdiff_t ldv = fd_round_up(nc, nr);
    const fd_run *runs;
    FD_T *even_block;
    FD_SFX(fd_gemm_item_ex)(&je, local, work, NULL, 0, NULL, &even_block, NULL);
    /* the odd item's runs overwrite the even one's: each is one position further on */
    ptrdiff_t nruns = FD_SFX(fd_gemm_item_ex)(&jo, local, work, odd_block, 0, &runs, NULL, NULL);
    for (ptrdiff_t r = 0; r < rows; ++r) {
        FD_T *line = jo.c + (i0 + r) * jo.ldc - 1;
        for (ptrdiff_t q = 0; q < nruns; ++q) {
            FD_T *restrict out = line + runs[q].dst;
            ptrdiff_t at = r * ldv + runs[q].panel * nr + runs[q].lane;
            FD_SFX(fd_interleave2)(out, even_block + at, odd_block + at, runs[q].len);
        }
    }
}

/* Unit `unit` of a transposed convolution as col2im fused into its GEMM
 * (fastdeconv._ext._packed_col2im): the job's GEMM per sample block and group has the rows
 * (output channel o, tap t), row o * taps + t of the weight read as a dense transposed A
 * (A[o * taps + t, c] = weight[c * lda + o * taps + t], `a_group` elements per group, packed
 * block by block inside each item), unless the job has it pre-packed (apack: a prepared
 * layer's), and the columns the positions of x (a placed 1x1 source over x, its
 * step the stride); no column matrix. The unit is item row `unit % items_m` of GEMM
 * `unit / items_m` over every item column (order below): each item's block is computed,
 * then added into C, row r's values at c + add_row[r] + run.dst + e * step (C: the output with
 * room for every tap's position, uncropped, zeroed by the caller). An output gets its terms
 * from one unit only (the caller makes m_chunk a multiple of taps, so that a unit's rows are
 * whole output channels), and in the order of its taps: output o's term of tap t is at
 * position j with j * stride + t = o (per dimension), so a later tap is an earlier position;
 * within an item the rows (taps) go in order, and the items go from the last columns to the
 * first. The sums depend neither on the threads nor on how the columns are cut (items,
 * samples per GEMM, samples per call). */
static void FD_SFX(fd_col2im_unit)(const FD_SFX(fd_conv_job) *cj, const FD_T *weight,
                                   ptrdiff_t lda, ptrdiff_t a_group, const ptrdiff_t *add_row,
                                   ptrdiff_t unit, FD_T *work)
{
    const fd_plan *p = &cj->gemm.plan;
    ptrdiff_t row_item = unit % p->items_m, gemm_index = unit / p->items_m;
    ptrdiff_t i0 = row_item * p->m_chunk, i1 = i0 + p->m_chunk < p->m ? i0 + p->m_chunk : p->m;
    ptrdiff_t step = cj->gemm.conv->place_step[cj->gemm.conv->ndim - 1];
    for (ptrdiff_t col = p->items_n - 1; col >= 0; --col) {
        FD_SFX(fd_gemm_job) job;
        ptrdiff_t item = gemm_index * fd_plan_items(p) + row_item * p->items_n + col;
        ptrdiff_t local = FD_SFX(fd_conv_item_job)(cj, item, &job);
        if (!job.apack) {   /* each item packs its blocks of A (fd_pack_a_block) */
            job.a = weight + (gemm_index % cj->groups) * a_group;
            job.lda = lda;
            job.trans_a = 1;
        }
        const fd_run *runs;
        FD_T *block;
        ptrdiff_t nruns = FD_SFX(fd_gemm_item_ex)(&job, local, work, NULL, 0, &runs, &block,
                                                  NULL);
        ptrdiff_t j0, nc;
        fd_plan_item_columns(p, local, &j0, &nc);
        ptrdiff_t ldv = fd_round_up(nc, p->nr);
        for (ptrdiff_t r = i0; r < i1; ++r) {
            FD_T *row = job.c + add_row[r];
            const FD_T *v = block + (r - i0) * ldv;
            for (ptrdiff_t q = 0; q < nruns; ++q) {
                FD_T *restrict out = row + runs[q].dst;
                const FD_T *from = v + runs[q].panel * p->nr + runs[q].lane;
                for (ptrdiff_t e = 0; e < runs[q].len; ++e) out[e * step] += from[e];
            }
        }
    }
}

/* Fill a GEMM job (pointers untyped so that one call site serves both dtypes). */
static void FD_SFX(fd_gemm_job_init)(FD_SFX(fd_gemm_job) *job, const fd_plan *p,
                                     const void *apack, const void *a, ptrdiff_t lda,
                                     int trans_a, const void *b, ptrdiff_t ldb, int trans_b,
                                     void *c, ptrdiff_t ldc, int accumulate, const void *bias)
{
    memset(job, 0, sizeof(*job));
    job->plan = *p;
    job->ukr = FD_SFX(fd_ukr_for)(p->isa, p->tile, FD_B_PACKED);
    job->ukr_rows = FD_SFX(fd_ukr_for)(p->isa, p->tile, FD_B_ROWS);
    job->ukr_vectors = FD_SFX(fd_ukr_for)(p->isa, p->tile, FD_B_VECTORS);
    job->apack = (const FD_T *)apack;
    job->a = (const FD_T *)a; job->lda = lda; job->trans_a = trans_a;
    job->b = (const FD_T *)b; job->ldb = ldb; job->trans_b = trans_b;
    job->c = (FD_T *)c; job->ldc = ldc;
    job->accumulate = accumulate;
    job->bias = (const FD_T *)bias;
}

/* Fill a convolution job: B is x read in place (pointwise: x rows, row stride ldb) or the
 * convolution source src over the padded input x; strides in elements. */
static void FD_SFX(fd_conv_job_init)(FD_SFX(fd_conv_job) *cj, const fd_plan *p,
                                     const void *apack, ptrdiff_t apack_group, int pointwise,
                                     const void *x, ptrdiff_t ldb, const fd_conv_src *src,
                                     void *y, const void *bias, ptrdiff_t samples,
                                     ptrdiff_t samples_per_gemm, ptrdiff_t groups,
                                     ptrdiff_t x_sample, ptrdiff_t x_group, ptrdiff_t y_sample,
                                     ptrdiff_t y_group)
{
    ptrdiff_t positions = p->n / samples_per_gemm;
    FD_SFX(fd_gemm_job_init)(&cj->gemm, p, apack, NULL, 0, 0, pointwise ? x : NULL, ldb, 0, y,
                             positions, 0, bias);
    cj->gemm.c_block = positions;
    cj->gemm.c_block_stride = y_sample;
    cj->samples_per_gemm = samples_per_gemm;
    cj->gemm.conv = src;
    cj->gemm.xp = pointwise ? NULL : (const FD_T *)x;
    cj->samples = samples; cj->groups = groups; cj->apack_group = apack_group;
    cj->x_sample = x_sample; cj->x_group = x_group;
    cj->y_sample = y_sample; cj->y_group = y_group;
}
