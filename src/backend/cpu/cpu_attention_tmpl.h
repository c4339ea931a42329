/* The Transformer kernels (RoPE, causal attention, SwiGLU), written once
 * for a floating type and instantiated by cpu_attn_f32.c and cpu_attn_f64.c.
 * The including file defines:
 *   REAL       float or double
 *   SFX        the suffix of the exported names (f32, f64)
 *   R_EXPN     exp of x <= 0; R_SIGMOID           (cpu_math.h)
 *   R_GEMM     cblas_sgemm or cblas_dgemm (OpenBLAS runs single-threaded:
 *              cpu_backend.c makes sure before calling in)
 *
 * Attention is blocked as FlashAttention-2 is: a TQ x TK tile of scores
 * (64 queries x 256 keys) at a time, never the L x L matrix, so the memory
 * is O(L d) plus two tiles of stack per thread. Keys past the last query
 * of a tile are never computed (the key range is clipped to the diagonal),
 * so the wide key tiles cost only the 64 x 64 masked triangle on the
 * diagonal while giving BLAS 64 x 256 x dh products instead of 64^3 ones.
 *   forward:  per (sequence, head, query tile), key tiles left to right up
 *             to the diagonal, with an online softmax (running max m and sum
 *             l per query, the output rows rescaled by exp(m_old - m_new));
 *             lse = m + log l is saved.
 *   backward: per (sequence, head), key tiles left to right; for each, the
 *             query tiles at or below the diagonal recompute P = exp(S -
 *             lse) and add into dV_j, dK_j and dQ_i. Every sum runs in one
 *             fixed order inside one work item, so the result does not
 *             depend on the thread count (no atomics, no per-thread
 *             partials). The parallelism is B x H items; splitting over
 *             key tiles as well would need a second pass for dQ (40% more
 *             work), which a CPU with a few cores does not repay -- and the
 *             model runs whole sequences on separate threads anyway.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_math.h"

#define AFN2(name, s) md_cpu_##name##_##s
#define AFN1(name, s) AFN2(name, s)
#define AFN(name) AFN1(name, SFX)

#ifndef MD_ATTN_HOT
#define MD_ATTN_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define APAR_MIN 16384
#define APAR(cond) ((cond) && !omp_in_parallel())

enum { TQ = MD_CPU_ATTN_TILE_Q, TK = MD_CPU_ATTN_TILE_K };

static inline int64_t amin64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ */
/* RoPE                                                               */

void AFN(rope)(void *x_, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads, int64_t hd, double theta,
               int inverse)
{
    REAL *x = x_;
    int64_t rows = batch * len, half = hd / 2;
    REAL inv[MD_CPU_ATTN_MAX_HD / 2];
    for (int64_t i = 0; i < half; i++) inv[i] = (REAL)(1.0 / pow(theta, (double)(2 * i) / (double)hd));
#pragma omp parallel for schedule(static) if (APAR(rows * n_heads * hd > APAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        REAL cs[MD_CPU_ATTN_MAX_HD / 2], sn[MD_CPU_ATTN_MAX_HD / 2];
        REAL pos = (REAL)(r % len);
        for (int64_t i = 0; i < half; i++) {
            /* the angle as transformers forms it: inv_freq * position in the
             * model's precision, then cos and sin of that value in that
             * precision (libm's cosf/sinf are correctly rounded to < 1 ulp) */
            REAL a = inv[i] * pos;
            if (sizeof(REAL) == sizeof(float)) cs[i] = cosf((float)a), sn[i] = sinf((float)a);
            else cs[i] = (REAL)cos((double)a), sn[i] = (REAL)sin((double)a);
            if (inverse) sn[i] = -sn[i];
        }
        REAL *xr = x + r * ldx;
        for (int64_t h = 0; h < n_heads; h++) {
            REAL *x1 = xr + h * hd, *x2 = x1 + half;
#pragma omp simd
            for (int64_t i = 0; i < half; i++) {
                REAL a = x1[i], b = x2[i];
                x1[i] = a * cs[i] - b * sn[i];
                x2[i] = b * cs[i] + a * sn[i];
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* attention forward                                                  */

/* Online-softmax update of nq query rows against one tile of nk keys
 * starting at key j0 (queries start at i0): s (nq x TK) holds the scaled
 * scores on entry and the unnormalised probabilities on return (0 where
 * masked); m, l are the running max and sum; alpha gets the factor that
 * the output rows must be rescaled by. */
static MD_ATTN_HOT void softmax_tile(REAL *s, REAL *m, REAL *l, REAL *alpha, int64_t nq, int64_t nk, int64_t i0,
                                     int64_t j0)
{
    for (int64_t r = 0; r < nq; r++) {
        REAL *sr = s + r * TK;
        int64_t nv = amin64(nk, i0 + r - j0 + 1);   /* keys j0 .. i0+r */
        if (nv <= 0) {
            memset(sr, 0, (size_t)nk * sizeof(REAL));
            alpha[r] = 1;
            continue;
        }
        REAL mx = sr[0];
#pragma omp simd reduction(max : mx)
        for (int64_t c = 1; c < nv; c++) mx = sr[c] > mx ? sr[c] : mx;
        REAL mn = m[r] > mx ? m[r] : mx;
        REAL sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < nv; c++) {
            REAL p = R_EXPN(sr[c] - mn);
            sr[c] = p;
            sum += p;
        }
        for (int64_t c = nv; c < nk; c++) sr[c] = 0;
        REAL a = m[r] == -INFINITY ? 0 : R_EXPN(m[r] - mn);
        alpha[r] = a;
        l[r] = l[r] * a + sum;
        m[r] = mn;
    }
}

static void attn_fwd_item(REAL *o, int64_t ldo, REAL *lse, const REAL *q, int64_t ldq, const REAL *k, int64_t ldk,
                          const REAL *v, int64_t ldv, int64_t len, int64_t hd, REAL scale, int64_t i0)
{
    REAL s[TQ * TK], m[TQ], l[TQ], alpha[TQ];
    int64_t nq = amin64(TQ, len - i0);
    const REAL *qi = q + i0 * ldq;
    REAL *oi = o + i0 * ldo;
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        memset(oi + r * ldo, 0, (size_t)hd * sizeof(REAL));
    }
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += TK) {
        int64_t nk = amin64(TK, i0 + nq - j0);   /* clipped at the tile's last query */
        R_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd, scale, qi, (int)ldq, k + j0 * ldk,
               (int)ldk, 0, s, TK);
        softmax_tile(s, m, l, alpha, nq, nk, i0, j0);
        if (j0 > 0)
            for (int64_t r = 0; r < nq; r++) {
                REAL a = alpha[r], *orow = oi + r * ldo;
                if (a != 1)
                    for (int64_t c = 0; c < hd; c++) orow[c] *= a;
            }
        R_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)hd, (int)nk, 1, s, TK, v + j0 * ldv, (int)ldv,
               1, oi, (int)ldo);
    }
    for (int64_t r = 0; r < nq; r++) {
        REAL inv = 1 / l[r], *orow = oi + r * ldo;
        for (int64_t c = 0; c < hd; c++) orow[c] *= inv;
        lse[i0 + r] = m[r] + (REAL)log((double)l[r]);
    }
}

void AFN(attention_fwd)(void *o_, int64_t ldo, void *lse_, const void *q_, int64_t ldq, const void *k_, int64_t ldk,
                        const void *v_, int64_t ldv, int64_t batch, int64_t len, int64_t n_heads, int64_t hd,
                        double scale)
{
    REAL *o = o_, *lse = lse_;
    const REAL *q = q_, *k = k_, *v = v_;
    int64_t nqt = (len + TQ - 1) / TQ, items = batch * n_heads * nqt;
    /* the tiles near the end of a sequence cost the most: dynamic */
#pragma omp parallel for schedule(dynamic, 1) if (APAR(items > 1 && batch * len * len * hd > 4 * APAR_MIN))
    for (int64_t it = 0; it < items; it++) {
        int64_t qt = nqt - 1 - it % nqt, bh = it / nqt, b = bh / n_heads, h = bh % n_heads;
        int64_t row0 = b * len;
        attn_fwd_item(o + row0 * ldo + h * hd, ldo, lse + bh * len, q + row0 * ldq + h * hd, ldq,
                      k + row0 * ldk + h * hd, ldk, v + row0 * ldv + h * hd, ldv, len, hd, (REAL)scale, qt * TQ);
    }
}

/* ------------------------------------------------------------------ */
/* attention backward                                                 */

/* P = exp(S - lse) (masked 0) in s; then dS = P (dP - D) in dp. */
static MD_ATTN_HOT void bwd_tile(REAL *s, REAL *dp, const REAL *lse, const REAL *D, int64_t nq, int64_t nk,
                                 int64_t i0, int64_t j0)
{
    for (int64_t r = 0; r < nq; r++) {
        REAL *sr = s + r * TK, *dr = dp + r * TK;
        int64_t nv = amin64(nk, i0 + r - j0 + 1);
        if (nv < 0) nv = 0;
        REAL ls = lse[i0 + r], Dr = D[i0 + r];
#pragma omp simd
        for (int64_t c = 0; c < nv; c++) {
            REAL x = sr[c] - ls;
            REAL p = R_EXPN(x < 0 ? x : 0);   /* S <= lse up to rounding */
            sr[c] = p;
            dr[c] = p * (dr[c] - Dr);
        }
        for (int64_t c = nv; c < nk; c++) sr[c] = 0, dr[c] = 0;
    }
}

static void attn_bwd_item(REAL *dq, int64_t lddq, REAL *dk, int64_t lddk, REAL *dv, int64_t lddv, const REAL *dout,
                          int64_t lddo, const REAL *q, int64_t ldq, const REAL *k, int64_t ldk, const REAL *v,
                          int64_t ldv, const REAL *o, int64_t ldo, const REAL *lse, REAL *D, int64_t len, int64_t hd,
                          REAL scale)
{
    REAL s[TQ * TK], dp[TQ * TK];
    for (int64_t t = 0; t < len; t++) {
        const REAL *dr = dout + t * lddo, *orow = o + t * ldo;
        REAL acc = 0;
        for (int64_t c = 0; c < hd; c++) acc += dr[c] * orow[c];
        D[t] = acc;
        memset(dq + t * lddq, 0, (size_t)hd * sizeof(REAL));
        memset(dk + t * lddk, 0, (size_t)hd * sizeof(REAL));
        memset(dv + t * lddv, 0, (size_t)hd * sizeof(REAL));
    }
    for (int64_t j0 = 0; j0 < len; j0 += TK) {
        const REAL *kj = k + j0 * ldk, *vj = v + j0 * ldv;
        REAL *dkj = dk + j0 * lddk, *dvj = dv + j0 * lddv;
        for (int64_t i0 = j0 / TQ * TQ; i0 < len; i0 += TQ) {
            int64_t nq = amin64(TQ, len - i0);
            int64_t nk = amin64(amin64(TK, len - j0), i0 + nq - j0);   /* clipped at the last query */
            const REAL *qi = q + i0 * ldq, *doi = dout + i0 * lddo;
            R_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd, scale, qi, (int)ldq, kj,
                   (int)ldk, 0, s, TK);
            R_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd, 1, doi, (int)lddo, vj,
                   (int)ldv, 0, dp, TK);
            bwd_tile(s, dp, lse, D, nq, nk, i0, j0);
            /* dV_j += P^T dO_i;  dQ_i += scale dS K_j;  dK_j += scale dS^T Q_i */
            R_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)hd, (int)nq, 1, s, TK, doi, (int)lddo, 1, dvj,
                   (int)lddv);
            R_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)hd, (int)nk, scale, dp, TK, kj, (int)ldk, 1,
                   dq + i0 * lddq, (int)lddq);
            R_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)hd, (int)nq, scale, dp, TK, qi, (int)ldq, 1,
                   dkj, (int)lddk);
        }
    }
}

void AFN(attention_bwd)(void *dq_, int64_t lddq, void *dk_, int64_t lddk, void *dv_, int64_t lddv, const void *dout_,
                        int64_t lddo, const void *q_, int64_t ldq, const void *k_, int64_t ldk, const void *v_,
                        int64_t ldv, const void *o_, int64_t ldo, const void *lse_, int64_t batch, int64_t len,
                        int64_t n_heads, int64_t hd, double scale, void *workspace)
{
    REAL *dq = dq_, *dk = dk_, *dv = dv_, *D = workspace;
    const REAL *dout = dout_, *q = q_, *k = k_, *v = v_, *o = o_, *lse = lse_;
    int64_t items = batch * n_heads;
#pragma omp parallel for schedule(dynamic, 1) if (APAR(items > 1 && batch * len * len * hd > 4 * APAR_MIN))
    for (int64_t bh = 0; bh < items; bh++) {
        int64_t b = bh / n_heads, h = bh % n_heads, row0 = b * len, c0 = h * hd;
        attn_bwd_item(dq + row0 * lddq + c0, lddq, dk + row0 * lddk + c0, lddk, dv + row0 * lddv + c0, lddv,
                      dout + row0 * lddo + c0, lddo, q + row0 * ldq + c0, ldq, k + row0 * ldk + c0, ldk,
                      v + row0 * ldv + c0, ldv, o + row0 * ldo + c0, ldo, lse + bh * len, D + bh * len, len, hd,
                      (REAL)scale);
    }
}

/* ------------------------------------------------------------------ */
/* SwiGLU                                                             */

static MD_ATTN_HOT void swiglu_fwd_rows(REAL *y, int64_t ldy, const REAL *g, int64_t ldg, const REAL *u, int64_t ldu,
                                        int64_t r0, int64_t r1, int64_t cols)
{
    for (int64_t r = r0; r < r1; r++) {
        REAL *yr = y + r * ldy;
        const REAL *gr = g + r * ldg, *ur = u + r * ldu;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) yr[c] = gr[c] * R_SIGMOID(gr[c]) * ur[c];
    }
}

void AFN(swiglu_fwd)(void *y, int64_t ldy, const void *gate, int64_t ldg, const void *up, int64_t ldu, int64_t rows,
                     int64_t cols)
{
    enum { RB = 64 };
    int64_t nb = (rows + RB - 1) / RB;
#pragma omp parallel for schedule(static) if (APAR(rows * cols > APAR_MIN))
    for (int64_t b = 0; b < nb; b++)
        swiglu_fwd_rows(y, ldy, gate, ldg, up, ldu, b * RB, amin64(rows, b * RB + RB), cols);
}

static MD_ATTN_HOT void swiglu_bwd_rows(REAL *dg, int64_t lddg, REAL *du, int64_t lddu, const REAL *dy, int64_t lddy,
                                        const REAL *g, int64_t ldg, const REAL *u, int64_t ldu, int64_t r0, int64_t r1,
                                        int64_t cols)
{
    for (int64_t r = r0; r < r1; r++) {
        REAL *dgr = dg + r * lddg, *dur = du + r * lddu;
        const REAL *dyr = dy + r * lddy, *gr = g + r * ldg, *ur = u + r * ldu;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) {
            REAL x = gr[c], s = R_SIGMOID(x), d = dyr[c];
            dur[c] = d * x * s;
            dgr[c] = d * ur[c] * s * (1 + x * (1 - s));
        }
    }
}

void AFN(swiglu_bwd)(void *dgate, int64_t lddg, void *dup, int64_t lddu, const void *dy, int64_t lddy,
                     const void *gate, int64_t ldg, const void *up, int64_t ldu, int64_t rows, int64_t cols)
{
    enum { RB = 64 };
    int64_t nb = (rows + RB - 1) / RB;
#pragma omp parallel for schedule(static) if (APAR(rows * cols > APAR_MIN))
    for (int64_t b = 0; b < nb; b++)
        swiglu_bwd_rows(dgate, lddg, dup, lddu, dy, lddy, gate, ldg, up, ldu, b * RB, amin64(rows, b * RB + RB), cols);
}
