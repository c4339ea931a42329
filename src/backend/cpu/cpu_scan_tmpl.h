/* The selective scan's CPU kernels: the second half of the template that
 * cpu_f32.c and cpu_f64.c instantiate, after cpu_kernels_tmpl.h (whose
 * macros, REAL, CH and helpers it uses). The plain sequential reference
 * the GPU kernels are checked against is this code run in f64. */

/* ------------------------------------------------------------------ */
/* the selective scan                                                 */

/* Work item: one sequence b and one chunk of CH channels, vectorised over
 * the channels; the N states of the chunk live in h[N][CH]. Full chunks
 * read and write the rows in place; the last chunk of an E that is not a
 * multiple of CH goes through zero-padded copies (padded lanes: A = -1,
 * everything else 0, so they stay exactly 0).
 *
 * The backward needs every state h_t in reverse order. They are recomputed
 * segment by segment: the state entering each segment of seg_len ~ sqrt(L)
 * steps is a checkpoint (saved by the forward when it is given a states
 * buffer, else recomputed by a first pass), and each segment's states and
 * decays exp(dt A) are rebuilt from its checkpoint just before its reverse
 * pass. Memory per item: O(sqrt(L) N CH), whatever L. */

typedef struct {
    int64_t seg_len, nseg, nchunk, items;
    size_t item_elems, bc_elems, ch_elems;   /* workspace REALs, each a multiple of 16 */
} scan_ws_layout_t;

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static scan_ws_layout_t scan_ws_layout(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    scan_ws_layout_t w;
    w.seg_len = (int64_t)ceil(sqrt((double)len));
    if (w.seg_len < 1) w.seg_len = 1;
    w.nseg = (len + w.seg_len - 1) / w.seg_len;
    w.nchunk = (d_inner + CH - 1) / CH;
    w.items = batch * w.nchunk;
    /* nseg <= seg_len, and seg_len grows with len: sizing the checkpoints
     * by seg_len makes the sizes for (batch, len) enough for any smaller
     * batch and length too. Per item: a segment's states and decays, the
     * checkpoints, and per step of a segment dt here, six rows of CH in
     * the AVX-512 items (cpu_scan_avx512.c). */
    w.item_elems = round16((size_t)(3 * w.seg_len * d_state * CH + 6 * w.seg_len * CH));
    w.bc_elems = round16((size_t)(w.nchunk * batch * len * 2 * d_state));
    w.ch_elems = round16((size_t)(batch * d_inner * (d_state + 2)));
    return w;
}

size_t KFN(scan_states_size)(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    scan_ws_layout_t w = scan_ws_layout(batch, len, d_inner, d_state);
    return (size_t)(w.items * w.seg_len * d_state * CH) * sizeof(REAL);
}

size_t KFN(scan_bwd_workspace)(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    scan_ws_layout_t w = scan_ws_layout(batch, len, d_inner, d_state);
    return (w.items * w.item_elems + w.bc_elems + w.ch_elems) * sizeof(REAL);
}

/* The row itself for a full chunk, else a zero-padded copy in buf. */
static inline const REAL *chunk_in(const REAL *row, int64_t nc, REAL *buf)
{
    if (nc == CH) return row;
    for (int64_t c = 0; c < CH; c++) buf[c] = c < nc ? row[c] : 0;
    return buf;
}

static inline void chunk_out(REAL *restrict row, int64_t nc, const REAL *restrict buf)
{
    if (nc == CH) {
#pragma omp simd
        for (int c = 0; c < CH; c++) row[c] = buf[c];
    } else {
        for (int64_t c = 0; c < nc; c++) row[c] = buf[c];
    }
}

/* Wc (dt_rank x CH): the chunk's columns of dt_w, zero past nc, when delta is formed */
static void load_chunk_params(const md_cpu_scan_args_t *a, int64_t e0, int64_t nc, REAL *Aneg, REAL *Dv, REAL *bias,
                              REAL *Wc)
{
    const REAL *A_log = a->A_log, *D = a->D, *dtb = a->dt_bias, *W = a->dt_w;
    int64_t N = a->d_state, R = a->dt_rank;
    if (!a->delta)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < CH; c++) Wc[r * CH + c] = c < nc ? W[(e0 + c) * R + r] : 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < CH; c++) Aneg[n * CH + c] = c < nc ? -(REAL)exp((double)A_log[(e0 + c) * N + n]) : -1;
    for (int64_t c = 0; c < CH; c++) {
        Dv[c] = c < nc ? D[e0 + c] : 0;
        bias[c] = c < nc ? dtb[e0 + c] : 0;
    }
}

/* delta's chunk of a row: the row (chunk_in), or formed from the row's
 * dt_low and the chunk's columns of dt_w, summed over r in order */
static inline const REAL *chunk_delta(const md_cpu_scan_args_t *a, const REAL *Wc, int64_t row, int64_t e0,
                                      int64_t nc, REAL *restrict buf)
{
    if (a->delta) return chunk_in((const REAL *)a->delta + row * a->ld_delta + e0, nc, buf);
    const REAL *x = (const REAL *)a->dt_low + row * a->ld_dt_low;
#pragma omp simd
    for (int c = 0; c < CH; c++) buf[c] = 0;
    for (int64_t r = 0; r < a->dt_rank; r++) {
        REAL xr = x[r];
        const REAL *restrict w = Wc + r * CH;
#pragma omp simd
        for (int c = 0; c < CH; c++) buf[c] += xr * w[c];
    }
    return buf;
}

/* The sum of v[0..CH) by halving (destroys v): a fixed order that
 * vectorises, where an omp simd reduction of floats becomes a serial chain
 * of scalar adds without -ffast-math. CH is a power of two. */
#define TREE_STEP(w)                                      \
    _Pragma("omp simd") for (int c = 0; c < (w); c++) v[c] += v[c + (w)]

static inline REAL tree_sum(REAL *v)
{
#if CH >= 128
    TREE_STEP(64);
#endif
#if CH >= 64
    TREE_STEP(32);
#endif
#if CH >= 32
    TREE_STEP(16);
#endif
#if CH >= 16
    TREE_STEP(8);
#endif
    TREE_STEP(4);
    TREE_STEP(2);
    return v[0] + v[1];
}

/* dt = softplus(delta + bias) of one step */
static inline void step_dt(const REAL *restrict dd, const REAL *restrict bias, REAL *restrict dt)
{
#pragma omp simd
    for (int c = 0; c < CH; c++) dt[c] = R_SOFTPLUS(dd[c] + bias[c]);
}

/* h = exp(dt A) h + dt u B over the N states, in place */
static inline void step_state(REAL *restrict h, const REAL *restrict Aneg, const REAL *restrict dt,
                              const REAL *restrict dtu, const REAL *restrict Br, int64_t N)
{
    for (int64_t n = 0; n < N; n++) {
        REAL bn = Br[n];
        REAL *restrict hn = h + n * CH;
        const REAL *restrict An = Aneg + n * CH;
#pragma omp simd
        for (int c = 0; c < CH; c++) hn[c] = R_EXPN(dt[c] * An[c]) * hn[c] + dtu[c] * bn;
    }
}

/* The same from hin into hout, keeping the decays in a. */
static inline void step_state_keep(const REAL *restrict hin, REAL *restrict hout, REAL *restrict a,
                                   const REAL *restrict Aneg, const REAL *restrict dt, const REAL *restrict dtu,
                                   const REAL *restrict Br, int64_t N)
{
    for (int64_t n = 0; n < N; n++) {
        REAL bn = Br[n];
        const REAL *restrict hi = hin + n * CH, *restrict An = Aneg + n * CH;
        REAL *restrict ho = hout + n * CH, *restrict an = a + n * CH;
#pragma omp simd
        for (int c = 0; c < CH; c++) {
            REAL av = R_EXPN(dt[c] * An[c]);
            an[c] = av;
            ho[c] = av * hi[c] + dtu[c] * bn;
        }
    }
}

static MD_HOT void scan_fwd_item(const md_cpu_scan_args_t *a, const scan_ws_layout_t *w, int64_t b, int64_t e0,
                                 REAL *ckpt)
{
    const int64_t L = a->len, N = a->d_state, S = w->seg_len, nc = min64(CH, a->d_inner - e0);
    REAL Aneg[MAXN * CH], h[MAXN * CH], Dv[CH], bias[CH], Wc[MD_CPU_SCAN_MAX_DT_RANK * CH];
    REAL ub[CH], db[CH], zb[CH], yb[CH];
    load_chunk_params(a, e0, nc, Aneg, Dv, bias, Wc);
    memset(h, 0, sizeof h);
    for (int64_t t = 0, seg = 0; t < L; t++) {
        int64_t row = b * L + t;
        if (ckpt && t == seg * S) memcpy(ckpt + (seg++) * N * CH, h, (size_t)(N * CH) * sizeof(REAL));
        const REAL *uu = chunk_in((const REAL *)a->u + row * a->ld_u + e0, nc, ub);
        const REAL *dd = chunk_delta(a, Wc, row, e0, nc, db);
        const REAL *zz = chunk_in((const REAL *)a->z + row * a->ld_z + e0, nc, zb);
        const REAL *Br = (const REAL *)a->Bm + row * a->ld_B, *Cr = (const REAL *)a->Cm + row * a->ld_C;
        REAL dt[CH], dtu[CH], yv[CH];
        step_dt(dd, bias, dt);
#pragma omp simd
        for (int c = 0; c < CH; c++) {
            dtu[c] = dt[c] * uu[c];
            yv[c] = Dv[c] * uu[c];
        }
        if (!a->y) {   /* the states alone (ops.h) */
            step_state(h, Aneg, dt, dtu, Br, N);
            continue;
        }
        for (int64_t n = 0; n < N; n++) {
            REAL bn = Br[n], cn = Cr[n];
            REAL *restrict hn = h + n * CH;
            const REAL *restrict An = Aneg + n * CH;
#pragma omp simd
            for (int c = 0; c < CH; c++) {
                REAL hv = R_EXPN(dt[c] * An[c]) * hn[c] + dtu[c] * bn;
                hn[c] = hv;
                yv[c] += cn * hv;
            }
        }
        REAL *yrow = (REAL *)a->y + row * a->ld_y + e0;
#pragma omp simd
        for (int c = 0; c < CH; c++) yb[c] = yv[c] * (zz[c] * R_SIGMOID(zz[c]));
        chunk_out(yrow, nc, yb);
    }
}

void KFN(scan_fwd)(const md_cpu_scan_args_t *a)
{
    scan_ws_layout_t w = scan_ws_layout(a->batch, a->len, a->d_inner, a->d_state);
    REAL *states = a->states;
    int fast = items_avx512();
#pragma omp parallel for schedule(static) if (PAR(a->batch * a->len * a->d_inner > PAR_MIN))
    for (int64_t i = 0; i < w.items; i++) {
        int64_t b = i / w.nchunk, e0 = (i % w.nchunk) * CH;
        REAL *ckpt = states ? states + i * w.nseg * a->d_state * CH : NULL;
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
        if (fast) {
            md_cpu_scan_fwd_item_avx512(a, w.seg_len, b, e0, ckpt);
            continue;
        }
#endif
        (void)fast;
        scan_fwd_item(a, &w, b, e0, ckpt);
    }
}

static MD_HOT void scan_bwd_item(const md_cpu_scan_args_t *a, const scan_ws_layout_t *w, int64_t b, int64_t e0,
                                 const REAL *saved, REAL *scratch, REAL *bc, REAL *chan)
{
    const int64_t L = a->len, N = a->d_state, S = w->seg_len, nseg = w->nseg;
    const int64_t nc = min64(CH, a->d_inner - e0);
    REAL Aneg[MAXN * CH], h[MAXN * CH], Dv[CH], bias[CH], Wc[MD_CPU_SCAN_MAX_DT_RANK * CH];
    REAL dA[MAXN * CH], carry[MAXN * CH], dDa[CH], dba[CH];
    REAL ub[CH], db[CH], zb[CH], dyb[CH], dub[CH], ddb[CH], dzb[CH], yb[CH];
    REAL *hs = scratch, *as = hs + S * N * CH, *dts = as + S * N * CH, *ckpt = dts + S * CH;
    load_chunk_params(a, e0, nc, Aneg, Dv, bias, Wc);

    if (saved) {
        ckpt = (REAL *)saved;
    } else {   /* pass 1: the state entering each segment */
        memset(h, 0, sizeof h);
        for (int64_t s = 0; s < nseg; s++) {
            memcpy(ckpt + s * N * CH, h, (size_t)(N * CH) * sizeof(REAL));
            if (s == nseg - 1) break;
            for (int64_t t = s * S; t < (s + 1) * S; t++) {
                int64_t row = b * L + t;
                const REAL *uu = chunk_in((const REAL *)a->u + row * a->ld_u + e0, nc, ub);
                const REAL *dd = chunk_delta(a, Wc, row, e0, nc, db);
                REAL dt[CH], dtu[CH];
                step_dt(dd, bias, dt);
#pragma omp simd
                for (int c = 0; c < CH; c++) dtu[c] = dt[c] * uu[c];
                step_state(h, Aneg, dt, dtu, (const REAL *)a->Bm + row * a->ld_B, N);
            }
        }
    }

    memset(dA, 0, sizeof dA);
    memset(carry, 0, sizeof carry);
    memset(dDa, 0, sizeof dDa);
    memset(dba, 0, sizeof dba);
    for (int64_t s = nseg - 1; s >= 0; s--) {
        int64_t t0 = s * S, t1 = min64(L, t0 + S);
        /* pass 2: this segment's states h_t and decays a_t */
        for (int64_t t = t0; t < t1; t++) {
            int64_t row = b * L + t, j = t - t0;
            const REAL *uu = chunk_in((const REAL *)a->u + row * a->ld_u + e0, nc, ub);
            const REAL *dd = chunk_delta(a, Wc, row, e0, nc, db);
            REAL *dt = dts + j * CH, dtu[CH];
            step_dt(dd, bias, dt);
#pragma omp simd
            for (int c = 0; c < CH; c++) dtu[c] = dt[c] * uu[c];
            step_state_keep(j > 0 ? hs + (j - 1) * N * CH : ckpt + s * N * CH, hs + j * N * CH, as + j * N * CH, Aneg,
                            dt, dtu, (const REAL *)a->Bm + row * a->ld_B, N);
        }
        /* pass 3: the reverse recurrence over the segment */
        for (int64_t t = t1 - 1; t >= t0; t--) {
            int64_t row = b * L + t, j = t - t0;
            const REAL *dt = dts + j * CH, *hj = hs + j * N * CH, *aj = as + j * N * CH;
            const REAL *hprev = j > 0 ? hs + (j - 1) * N * CH : ckpt + s * N * CH;
            const REAL *uu = chunk_in((const REAL *)a->u + row * a->ld_u + e0, nc, ub);
            const REAL *dd = chunk_delta(a, Wc, row, e0, nc, db);
            const REAL *zz = chunk_in((const REAL *)a->z + row * a->ld_z + e0, nc, zb);
            const REAL *dyv = chunk_in((const REAL *)a->dy + row * a->ld_dy + e0, nc, dyb);
            const REAL *Br = (const REAL *)a->Bm + row * a->ld_B, *Cr = (const REAL *)a->Cm + row * a->ld_C;
            REAL *bcr = bc + row * 2 * N;
            REAL ys[CH], dys[CH], du[CH], ddt[CH], dtu[CH];
            REAL *durow = (REAL *)a->du + row * a->ld_du + e0, *ddrow = (REAL *)a->ddelta + row * a->ld_ddelta + e0;
            REAL *dzrow = (REAL *)a->dz + row * a->ld_dz + e0;
            REAL *duo = nc == CH ? durow : dub, *ddo = nc == CH ? ddrow : ddb, *dzo = nc == CH ? dzrow : dzb;
#pragma omp simd
            for (int c = 0; c < CH; c++) ys[c] = Dv[c] * uu[c];
            for (int64_t n = 0; n < N; n++) {
                REAL cn = Cr[n];
                const REAL *restrict hn = hj + n * CH;
#pragma omp simd
                for (int c = 0; c < CH; c++) ys[c] += cn * hn[c];
            }
#pragma omp simd
            for (int c = 0; c < CH; c++) {
                REAL sg = R_SIGMOID(zz[c]);
                dzo[c] = dyv[c] * ys[c] * sg * (1 + zz[c] * (1 - sg));
                dys[c] = dyv[c] * zz[c] * sg;
                dDa[c] += dys[c] * uu[c];
                du[c] = dys[c] * Dv[c];
                ddt[c] = 0;
                dtu[c] = dt[c] * uu[c];
            }
            if (a->y) {   /* the forward's y, in its order of operations, after dy's last read (ops.h) */
#pragma omp simd
                for (int c = 0; c < CH; c++) yb[c] = ys[c] * (zz[c] * R_SIGMOID(zz[c]));
                chunk_out((REAL *)a->y + row * a->ld_y + e0, nc, yb);
            }
            for (int64_t n = 0; n < N; n++) {
                REAL bn = Br[n], cn = Cr[n], pb[CH], pc[CH];
                const REAL *restrict hn = hj + n * CH, *restrict hp = hprev + n * CH, *restrict an = aj + n * CH;
                const REAL *restrict An = Aneg + n * CH;
                REAL *restrict cr = carry + n * CH, *restrict dAn = dA + n * CH;
#pragma omp simd
                for (int c = 0; c < CH; c++) {
                    REAL dh = dys[c] * cn + cr[c];       /* d loss / d h_t */
                    REAL ea = dh * hp[c] * an[c];        /* d loss / d (dt A) */
                    pc[c] = dys[c] * hn[c];
                    pb[c] = dh * dtu[c];
                    ddt[c] += ea * An[c] + dh * bn * uu[c];
                    dAn[c] += ea * dt[c];
                    du[c] += dh * dt[c] * bn;
                    cr[c] = an[c] * dh;
                }
                bcr[n] = tree_sum(pb);
                bcr[N + n] = tree_sum(pc);
            }
#pragma omp simd
            for (int c = 0; c < CH; c++) {
                REAL x = dd[c] + bias[c];
                ddo[c] = x > 20 ? ddt[c] : ddt[c] * R_SIGMOID(x);
                dba[c] += ddo[c];
                duo[c] = du[c];
            }
            if (nc < CH) {
                chunk_out(durow, nc, dub);
                chunk_out(ddrow, nc, ddb);
                chunk_out(dzrow, nc, dzb);
            }
        }
    }
    for (int64_t c = 0; c < nc; c++) {
        REAL *ch = chan + (b * a->d_inner + e0 + c) * (N + 2);
        for (int64_t n = 0; n < N; n++) ch[n] = dA[n * CH + c];
        ch[N] = dDa[c];
        ch[N + 1] = dba[c];
    }
}

void KFN(scan_bwd)(const md_cpu_scan_args_t *a)
{
    const int64_t B = a->batch, L = a->len, E = a->d_inner, N = a->d_state;
    scan_ws_layout_t w = scan_ws_layout(B, L, E, N);
    REAL *ws = a->workspace;
    REAL *bc_all = ws + w.items * w.item_elems;
    REAL *chan = bc_all + w.bc_elems;
    const REAL *states = a->states;
    int par = B * L * E > PAR_MIN, fast = items_avx512();
#pragma omp parallel for schedule(static) if (PAR(par))
    for (int64_t i = 0; i < w.items; i++) {
        int64_t b = i / w.nchunk, k = i % w.nchunk;
        const REAL *ckpt = states ? states + i * w.nseg * N * CH : NULL;
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
        if (fast) {
            md_cpu_scan_bwd_item_avx512(a, w.seg_len, w.nseg, b, k * CH, ckpt, ws + i * w.item_elems,
                                        bc_all + k * (B * L * 2 * N), chan);
            continue;
        }
#endif
        (void)fast;
        scan_bwd_item(a, &w, b, k * CH, ckpt, ws + i * w.item_elems, bc_all + k * (B * L * 2 * N), chan);
    }
    /* dB, dC: sum the chunks' partials in chunk order (a row's 2N sums side
     * by side, so that the adds run along the vector lanes) */
#pragma omp parallel for schedule(static) if (PAR(par))
    for (int64_t row = 0; row < B * L; row++) {
        REAL s[2 * MAXN];
#pragma omp simd
        for (int64_t n = 0; n < 2 * N; n++) s[n] = 0;
        for (int64_t k = 0; k < w.nchunk; k++) {
            const REAL *restrict part = bc_all + k * (B * L * 2 * N) + row * 2 * N;
#pragma omp simd
            for (int64_t n = 0; n < 2 * N; n++) s[n] += part[n];
        }
        memcpy((REAL *)a->dBm + row * a->ld_dB, s, (size_t)N * sizeof(REAL));
        memcpy((REAL *)a->dCm + row * a->ld_dC, s + N, (size_t)N * sizeof(REAL));
    }
    /* dA_log, dD, d(dt_bias): sum the sequences' partials in batch order */
    const REAL *A_log = a->A_log;
    REAL *dA_log = a->dA_log, *dD = a->dD, *ddb = a->ddt_bias;
#pragma omp parallel for schedule(static) if (PAR(par))
    for (int64_t e = 0; e < E; e++) {
        REAL A[MAXN];   /* dA/dA_log = A */
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
        if (fast) md_cpu_scan_neg_exp_avx512(A_log + e * N, N, A, NULL);
        else
#endif
            for (int64_t n = 0; n < N; n++) A[n] = -(REAL)exp((double)A_log[e * N + n]);
        for (int64_t n = 0; n < N + 2; n++) {
            REAL s = 0;
            for (int64_t b = 0; b < B; b++) s += chan[(b * E + e) * (N + 2) + n];
            if (n < N) dA_log[e * N + n] += s * A[n];
            else if (n == N) dD[e] += s;
            else ddb[e] += s;
        }
    }
}

