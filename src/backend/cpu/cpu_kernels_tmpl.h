/* The CPU kernels, written once for a floating type and instantiated by
 * cpu_f32.c and cpu_f64.c (the selective scan is in cpu_scan_tmpl.h,
 * included after this). The including file defines:
 *   REAL       float or double
 *   SFX        the suffix of the exported names (f32, f64)
 *   CH         channels per work item of the scan, a power of two: 64 for
 *              f32 (four 512-bit vectors: wide enough to amortise each
 *              step's per-channel work and the sums over channels)
 *   R_EXPN     exp of x <= 0; R_SOFTPLUS, R_SIGMOID   (cpu_math.h)
 *   ITEMS_AVX512  (f32 only) hand the conv's and the scan's work items to
 *              the AVX-512 kernels where md_cpu_avx512_active()
 *
 * Parallelism never decides an order of summation: work is split by rows
 * (or by channels, or by (batch, channel chunk)), each item's sums run in a
 * fixed sequence, and partials of different items are combined by a
 * separate loop in a fixed order. Hence bit-identical results for any
 * thread count.
 *
 * The hot loops carry MD_HOT: GCC builds an AVX-512, an AVX2+FMA and a
 * baseline clone and picks one at load time, as the build does not use
 * -march=native.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_math.h"
#include "seq/tokenizer.h"

#define KFN2(name, s) md_cpu_##name##_##s
#define KFN1(name, s) KFN2(name, s)
#define KFN(name) KFN1(name, SFX)

#ifndef MD_HOT
#define MD_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

/* Parallelise only when there is enough work to pay for waking the pool,
 * and never inside a parallel region: the model may run whole sequences
 * on separate threads, each calling the ops serially. */
#define PAR_MIN 16384
#define PAR(cond) ((cond) && !omp_in_parallel())

enum { MAXN = 64 };   /* largest d_state (md_config_validate enforces it) */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ */
/* elementwise and optimizer                                          */

void KFN(add)(void *y_, int64_t ldy, const void *x_, int64_t ldx, int64_t rows, int64_t cols)
{
    REAL *y = y_;
    const REAL *x = x_;
    if (ldy == cols && ldx == cols) {   /* contiguous: split the elements, not the rows (a flat buffer is one row) */
        int64_t n = rows * cols;
#pragma omp parallel for simd schedule(static) if (PAR(n > PAR_MIN))
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
        return;
    }
#pragma omp parallel for schedule(static) if (PAR(rows * cols > PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        REAL *yr = y + r * ldy;
        const REAL *xr = x + r * ldx;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) yr[c] += xr[c];
    }
}

void KFN(scale)(void *x_, int64_t n, double alpha)
{
    REAL *x = x_;
    REAL a = (REAL)alpha;
#pragma omp parallel for simd schedule(static) if (PAR(n > PAR_MIN))
    for (int64_t i = 0; i < n; i++) x[i] *= a;
}

double KFN(sumsq)(const void *x_, int64_t n)
{
    const REAL *x = x_;
    enum { MAX_BLOCKS = 4096 };
    int64_t bs = (n + MAX_BLOCKS - 1) / MAX_BLOCKS;
    if (bs < 65536) bs = 65536;
    int64_t nb = (n + bs - 1) / bs;
    double part[MAX_BLOCKS];
#pragma omp parallel for schedule(static) if (PAR(nb > 1))
    for (int64_t b = 0; b < nb; b++) {
        int64_t i0 = b * bs, i1 = min64(n, i0 + bs);
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
        part[b] = s;
    }
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    return s;
}

static void adamw_range(REAL *p, const REAL *g, REAL *m, REAL *v, int64_t i0, int64_t i1, REAL decay_mul,
                        REAL b1, REAL b2, REAL gs, REAL step_size, REAL bc2_sqrt, REAL eps)
{
#pragma omp parallel for simd schedule(static) if (PAR(i1 - i0 > PAR_MIN))
    for (int64_t i = i0; i < i1; i++) {
        REAL gi = g[i] * gs;
        REAL pi = p[i] * decay_mul;
        REAL mi = b1 * m[i] + (1 - b1) * gi;
        REAL vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
    }
}

void KFN(adamw)(void *p_, const void *g_, void *m_, void *v_, int64_t n, int64_t n_decay,
                const md_adamw_hparams_t *hp)
{
    double bc1 = 1.0 - pow(hp->beta1, (double)hp->step);
    double bc2 = 1.0 - pow(hp->beta2, (double)hp->step);
    REAL step_size = (REAL)(hp->lr / bc1), bc2_sqrt = (REAL)sqrt(bc2);
    REAL b1 = (REAL)hp->beta1, b2 = (REAL)hp->beta2, gs = (REAL)hp->grad_scale, eps = (REAL)hp->eps;
    REAL *p = p_, *m = m_, *v = v_;
    const REAL *g = g_;
    if (n_decay > n) n_decay = n;
    adamw_range(p, g, m, v, 0, n_decay, (REAL)(1.0 - hp->lr * hp->weight_decay), b1, b2, gs, step_size, bc2_sqrt,
                eps);
    adamw_range(p, g, m, v, n_decay, n, 1, b1, b2, gs, step_size, bc2_sqrt, eps);
}

/* ------------------------------------------------------------------ */
/* embedding                                                          */

void KFN(embedding_fwd)(void *out_, int64_t ldo, const uint8_t *tok, const void *w_, int64_t rows, int64_t dim)
{
    REAL *out = out_;
    const REAL *w = w_;
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t r = 0; r < rows; r++) memcpy(out + r * ldo, w + (int64_t)tok[r] * dim, (size_t)dim * sizeof(REAL));
}

void KFN(embedding_bwd)(void *dw_, const void *dout_, int64_t ldd, const uint8_t *tok, int64_t rows, int64_t dim)
{
    /* Split by columns: every thread walks all rows in order. */
    REAL *dw = dw_;
    const REAL *dout = dout_;
    enum { CB = 16 };
    int64_t nblk = (dim + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * CB, c1 = min64(dim, c0 + CB);
        for (int64_t r = 0; r < rows; r++) {
            REAL *d = dw + (int64_t)tok[r] * dim;
            const REAL *s = dout + r * ldd;
            for (int64_t c = c0; c < c1; c++) d[c] += s[c];
        }
    }
}

/* ------------------------------------------------------------------ */
/* RMSNorm                                                            */

/* One row of y = x * rstd * w; returns rstd. The plain and the fused
 * forward share it, so that they give the same bits. */
static inline __attribute__((always_inline)) REAL rmsnorm_row(REAL *yr, const REAL *xr, const REAL *w, int64_t dim,
                                                              double eps)
{
    REAL ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < dim; c++) ss += xr[c] * xr[c];
    REAL rs = (REAL)(1.0 / sqrt((double)ss / (double)dim + eps));
#pragma omp simd
    for (int64_t c = 0; c < dim; c++) yr[c] = xr[c] * rs * w[c];
    return rs;
}

void KFN(rmsnorm_fwd)(void *y_, int64_t ldy, void *rstd_, const void *x_, int64_t ldx, const void *w_,
                      int64_t rows, int64_t dim, double eps)
{
    REAL *y = y_, *rstd = rstd_;
    const REAL *x = x_, *w = w_;
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t r = 0; r < rows; r++) rstd[r] = rmsnorm_row(y + r * ldy, x + r * ldx, w, dim, eps);
}

/* h may alias hin or xadd: each element is read before it is written, at
 * the same index, and the row is normalised from h afterwards (from L1). */
void KFN(add_rmsnorm_fwd)(void *h_, int64_t ldh, void *y_, int64_t ldy, void *rstd_, const void *hin_,
                          int64_t ldhin, const void *xadd_, int64_t ldxadd, const void *w_, int64_t rows,
                          int64_t dim, double eps)
{
    REAL *h = h_, *y = y_, *rstd = rstd_;
    const REAL *hin = hin_, *xadd = xadd_, *w = w_;
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        REAL *hr = h + r * ldh;
        const REAL *ar = hin + r * ldhin, *br = xadd + r * ldxadd;
#pragma omp simd
        for (int64_t c = 0; c < dim; c++) hr[c] = ar[c] + br[c];
        rstd[r] = rmsnorm_row(y + r * ldy, hr, w, dim, eps);
    }
}

/* One row of RMSNorm's input gradient:
 * dx = rstd * (g - x * rstd^2 * (g . x) / dim), g = dy * w; written or added. */
static inline __attribute__((always_inline)) void rmsnorm_dx_row(REAL *restrict dxr, const REAL *restrict dyr,
                                                                 const REAL *restrict xr, const REAL *w, REAL rs,
                                                                 int64_t dim, int accumulate)
{
    REAL gx = 0;
#pragma omp simd reduction(+ : gx)
    for (int64_t c = 0; c < dim; c++) gx += dyr[c] * w[c] * xr[c];
    REAL k = rs * rs * gx / (REAL)dim;
    if (accumulate) {
#pragma omp simd
        for (int64_t c = 0; c < dim; c++) dxr[c] += rs * (dyr[c] * w[c] - xr[c] * k);
    } else {
#pragma omp simd
        for (int64_t c = 0; c < dim; c++) dxr[c] = rs * (dyr[c] * w[c] - xr[c] * k);
    }
}

void KFN(rmsnorm_bwd)(void *dx_, int64_t lddx, void *dw_, const void *dy_, int64_t lddy, const void *x_,
                      int64_t ldx, const void *w_, const void *rstd_, int64_t rows, int64_t dim, int accumulate)
{
    REAL *dx = dx_, *dw = dw_;
    const REAL *dy = dy_, *x = x_, *w = w_, *rstd = rstd_;
    enum { FUSED_MAX = 1024 };
    if (!PAR(rows * dim > PAR_MIN) && dim <= FUSED_MAX) {
        /* On one thread, dw's sums over the rows run in the same loop, in
         * the same order (row by row from 0) and from the same zero start
         * as the column blocks below: the same bits, one pass fewer over
         * dy and x. */
        REAL acc[FUSED_MAX];
        for (int64_t c = 0; c < dim; c++) acc[c] = 0;
        for (int64_t r = 0; r < rows; r++) {
            const REAL *restrict xr = x + r * ldx, *restrict dyr = dy + r * lddy;
            REAL rs = rstd[r];
            rmsnorm_dx_row(dx + r * lddx, dyr, xr, w, rs, dim, accumulate);
#pragma omp simd
            for (int64_t c = 0; c < dim; c++) acc[c] += dyr[c] * xr[c] * rs;
        }
        for (int64_t c = 0; c < dim; c++) dw[c] += acc[c];
        return;
    }
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t r = 0; r < rows; r++)
        rmsnorm_dx_row(dx + r * lddx, dy + r * lddy, x + r * ldx, w, rstd[r], dim, accumulate);
    enum { CB = 16 };
    int64_t nblk = (dim + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (PAR(rows * dim > PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * CB, n = min64(dim, c0 + CB) - c0;
        REAL acc[CB] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const REAL *xr = x + r * ldx + c0, *dyr = dy + r * lddy + c0;
            REAL rs = rstd[r];
            for (int64_t c = 0; c < n; c++) acc[c] += dyr[c] * xr[c] * rs;
        }
        for (int64_t c = 0; c < n; c++) dw[c0 + c] += acc[c];
    }
}

/* ------------------------------------------------------------------ */
/* depthwise causal conv1d + SiLU                                     */

/* Whether this instantiation hands the conv's and the scan's items to the
 * AVX-512 kernels (cpu_conv_avx512.c, cpu_scan_avx512.c) */
static int items_avx512(void)
{
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
    return md_cpu_avx512_active();
#else
    return 0;
#endif
}

enum { CONV_CB = MD_CPU_CONV_CH, CONV_MAXK = MD_CPU_CONV_MAXK, CONV_PF = 16 };

/* A block's rows are CONV_CB values a whole row apart: too far apart for
 * the hardware prefetcher, and the activations come from DRAM. Rows
 * CONV_PF steps ahead are fetched while this one is computed. */
static inline void prefetch_block_row(const REAL *p, int write)
{
    const char *c = (const char *)p;
    for (size_t q = 0; q < CONV_CB * sizeof(REAL); q += 64) {
        if (write) __builtin_prefetch(c + q, 1, 3);
        else __builtin_prefetch(c + q, 0, 3);
    }
}

/* The loops over the nc channels of a block have a constant trip count in
 * the common full-block case (nc = CONV_CB, inlined), so they vectorise
 * without remainder code. */
static inline __attribute__((always_inline)) void conv_fwd_block(REAL *y, int64_t ldy, const REAL *x, int64_t ldx,
                                                                 const REAL *w, const REAL *bias, int64_t b,
                                                                 int64_t len, int64_t K, int64_t e0,
                                                                 const int64_t nc)
{
    REAL wt[CONV_MAXK][CONV_CB], bb[CONV_CB];
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < nc; c++) wt[k][c] = w[(e0 + c) * K + k];
    for (int64_t c = 0; c < nc; c++) bb[c] = bias[e0 + c];
    for (int64_t t = 0; t < len; t++) {
        REAL acc[CONV_CB];
        if (t + CONV_PF < len) {
            prefetch_block_row(x + (b * len + t + CONV_PF) * ldx + e0, 0);
            prefetch_block_row(y + (b * len + t + CONV_PF) * ldy + e0, 1);
        }
#pragma omp simd
        for (int64_t c = 0; c < nc; c++) acc[c] = bb[c];
        for (int64_t k = t < K - 1 ? K - 1 - t : 0; k < K; k++) {
            const REAL *restrict xr = x + (b * len + t - K + 1 + k) * ldx + e0;
#pragma omp simd
            for (int64_t c = 0; c < nc; c++) acc[c] += wt[k][c] * xr[c];
        }
        REAL *restrict yr = y + (b * len + t) * ldy + e0;
#pragma omp simd
        for (int64_t c = 0; c < nc; c++) yr[c] = acc[c] * R_SIGMOID(acc[c]);
    }
}

static MD_HOT void conv_fwd_item(REAL *y, int64_t ldy, const REAL *x, int64_t ldx, const REAL *w, const REAL *bias,
                                 int64_t b, int64_t len, int64_t K, int64_t e0, int64_t nc)
{
    if (nc == CONV_CB) conv_fwd_block(y, ldy, x, ldx, w, bias, b, len, K, e0, CONV_CB);
    else conv_fwd_block(y, ldy, x, ldx, w, bias, b, len, K, e0, nc);
}

void KFN(conv1d_silu_fwd)(void *y_, int64_t ldy, const void *x_, int64_t ldx, const void *w_, const void *bias_,
                          int64_t batch, int64_t len, int64_t dim, int64_t width)
{
    int64_t nblk = (dim + CONV_CB - 1) / CONV_CB;
    int fast = items_avx512();
#pragma omp parallel for schedule(static) if (PAR(batch * len * dim > PAR_MIN))
    for (int64_t i = 0; i < batch * nblk; i++) {
        int64_t b = i / nblk, e0 = (i % nblk) * CONV_CB, nc = min64(CONV_CB, dim - e0);
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
        if (fast) {
            md_cpu_conv1d_silu_fwd_item_avx512(y_, ldy, x_, ldx, w_, bias_, b, len, width, e0, nc);
            continue;
        }
#endif
        (void)fast;
        conv_fwd_item(y_, ldy, x_, ldx, w_, bias_, b, len, width, e0, nc);
    }
}

/* One block of channels over all sequences, so that the weight gradient of
 * each channel is summed in one fixed order. dx[t] is first written by the
 * tap that reads x[t] at step t (k = K-1) and then added to by the later
 * steps. */
static inline __attribute__((always_inline)) void conv_bwd_block(REAL *dx, int64_t lddx, REAL *dw, REAL *dbias,
                                                                 const REAL *dy, int64_t lddy, const REAL *x,
                                                                 int64_t ldx, const REAL *w, const REAL *bias,
                                                                 int64_t batch, int64_t len, int64_t K, int64_t e0,
                                                                 const int64_t nc)
{
    REAL wt[CONV_MAXK][CONV_CB], bb[CONV_CB], dwa[CONV_MAXK][CONV_CB], dba[CONV_CB];
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < nc; c++) wt[k][c] = w[(e0 + c) * K + k], dwa[k][c] = 0;
    for (int64_t c = 0; c < nc; c++) bb[c] = bias[e0 + c], dba[c] = 0;
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t t = 0; t < len; t++) {
            REAL p[CONV_CB], dp[CONV_CB];
            int64_t k0 = t < K - 1 ? K - 1 - t : 0;
            if (t + CONV_PF < len) {
                int64_t r = b * len + t + CONV_PF;
                prefetch_block_row(x + r * ldx + e0, 0);
                prefetch_block_row(dy + r * lddy + e0, 0);
                prefetch_block_row(dx + r * lddx + e0, 1);
            }
#pragma omp simd
            for (int64_t c = 0; c < nc; c++) p[c] = bb[c];
            for (int64_t k = k0; k < K; k++) {
                const REAL *restrict xr = x + (b * len + t - K + 1 + k) * ldx + e0;
#pragma omp simd
                for (int64_t c = 0; c < nc; c++) p[c] += wt[k][c] * xr[c];
            }
            const REAL *restrict dyr = dy + (b * len + t) * lddy + e0;
#pragma omp simd
            for (int64_t c = 0; c < nc; c++) {
                REAL s = R_SIGMOID(p[c]);
                dp[c] = dyr[c] * s * (1 + p[c] * (1 - s));
                dba[c] += dp[c];
            }
            {
                const REAL *restrict xr = x + (b * len + t) * ldx + e0;
                REAL *restrict dxr = dx + (b * len + t) * lddx + e0;
#pragma omp simd
                for (int64_t c = 0; c < nc; c++) {
                    dwa[K - 1][c] += dp[c] * xr[c];
                    dxr[c] = wt[K - 1][c] * dp[c];
                }
            }
            for (int64_t k = K - 2; k >= k0; k--) {
                const REAL *restrict xr = x + (b * len + t - K + 1 + k) * ldx + e0;
                REAL *restrict dxr = dx + (b * len + t - K + 1 + k) * lddx + e0;
#pragma omp simd
                for (int64_t c = 0; c < nc; c++) {
                    dwa[k][c] += dp[c] * xr[c];
                    dxr[c] += wt[k][c] * dp[c];
                }
            }
        }
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < nc; c++) dw[(e0 + c) * K + k] += dwa[k][c];
    for (int64_t c = 0; c < nc; c++) dbias[e0 + c] += dba[c];
}

static MD_HOT void conv_bwd_item(REAL *dx, int64_t lddx, REAL *dw, REAL *dbias, const REAL *dy, int64_t lddy,
                                 const REAL *x, int64_t ldx, const REAL *w, const REAL *bias, int64_t batch,
                                 int64_t len, int64_t K, int64_t e0, int64_t nc)
{
    if (nc == CONV_CB) conv_bwd_block(dx, lddx, dw, dbias, dy, lddy, x, ldx, w, bias, batch, len, K, e0, CONV_CB);
    else conv_bwd_block(dx, lddx, dw, dbias, dy, lddy, x, ldx, w, bias, batch, len, K, e0, nc);
}

void KFN(conv1d_silu_bwd)(void *dx_, int64_t lddx, void *dw_, void *dbias_, const void *dy_, int64_t lddy,
                          const void *x_, int64_t ldx, const void *w_, const void *bias_, int64_t batch,
                          int64_t len, int64_t dim, int64_t width)
{
    int64_t nblk = (dim + CONV_CB - 1) / CONV_CB;
    int fast = items_avx512();
#pragma omp parallel for schedule(static) if (PAR(batch * len * dim > PAR_MIN))
    for (int64_t i = 0; i < nblk; i++) {
        int64_t e0 = i * CONV_CB, nc = min64(CONV_CB, dim - e0);
#if defined(ITEMS_AVX512) && MD_CPU_HAVE_AVX512
        if (fast) {
            md_cpu_conv1d_silu_bwd_item_avx512(dx_, lddx, dw_, dbias_, dy_, lddy, x_, ldx, w_, bias_, batch, len,
                                               width, e0, nc);
            continue;
        }
#endif
        (void)fast;
        conv_bwd_item(dx_, lddx, dw_, dbias_, dy_, lddy, x_, ldx, w_, bias_, batch, len, width, e0, nc);
    }
}

/* ------------------------------------------------------------------ */
/* cross-entropy                                                      */

double KFN(xent)(void *dl_, int64_t ldd, const void *logits_, int64_t ldl, const uint8_t *targets, int64_t rows,
                 int64_t vocab, double grad_scale, int64_t *n_counted, void *workspace)
{
    REAL *dl = dl_;
    const REAL *logits = logits_;
    double *loss = workspace;
#pragma omp parallel for schedule(static) if (PAR(rows * vocab > PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *l = logits + r * ldl;
        uint8_t t = targets[r];
        if (!md_tok_is_base(t) || t >= vocab) {
            loss[r] = -1;
            if (dl) memset(dl + r * ldd, 0, (size_t)vocab * sizeof(REAL));
            continue;
        }
        double mx = l[0];
        for (int64_t v = 1; v < vocab; v++) mx = l[v] > mx ? l[v] : mx;
        double se = 0;
        for (int64_t v = 0; v < vocab; v++) se += exp((double)l[v] - mx);
        double lse = mx + log(se);
        loss[r] = lse - (double)l[t];
        if (dl) {
            REAL *d = dl + r * ldd;
            for (int64_t v = 0; v < vocab; v++)
                d[v] = (REAL)(grad_scale * (exp((double)l[v] - lse) - (v == t ? 1.0 : 0.0)));
        }
    }
    double s = 0;
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++)
        if (loss[r] >= 0) s += loss[r], n++;
    *n_counted = n;
    return s;
}
