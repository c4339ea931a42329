/* The Hyena CPU kernels (cpu_hyena.h), written once for a floating type and
 * instantiated by cpu_hyena_f32.c and cpu_hyena_f64.c. The including file
 * defines:
 *   REAL       float or double
 *   SFX        the suffix of the exported names (f32, f64)
 *   FFTW(x)    fftwf_##x or fftw_##x (the FFTW library of that precision)
 *   R_SIN, R_COS, R_TANH   sin, cos and tanh of that precision
 *
 * As in cpu_kernels_tmpl.h, parallelism never decides an order of
 * summation: sums over rows run per block of columns from row 0 up, and the
 * FFT convolution keeps each channel's sums inside one work item.
 */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_hyena.h"
#include "util/log.h"

#define HFN2(name, s) md_cpu_##name##_##s
#define HFN1(name, s) HFN2(name, s)
#define HFN(name) HFN1(name, SFX)

#define H_PAR_MIN 16384
#define H_PAR(cond) ((cond) && !omp_in_parallel())

enum { H_CB = 16 };   /* columns per block of the sums over rows */

static inline int64_t hmin64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ */
/* bias                                                               */

void HFN(bias_add)(void *y_, int64_t ldy, const void *bias_, int64_t rows, int64_t cols)
{
    REAL *y = y_;
    const REAL *bias = bias_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        REAL *yr = y + r * ldy;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) yr[c] += bias[c];
    }
}

void HFN(bias_bwd)(void *dbias_, const void *dy_, int64_t lddy, int64_t rows, int64_t cols)
{
    REAL *dbias = dbias_;
    const REAL *dy = dy_;
    int64_t nblk = (cols + H_CB - 1) / H_CB;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * H_CB, n = hmin64(cols, c0 + H_CB) - c0;
        REAL acc[H_CB] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const REAL *dyr = dy + r * lddy + c0;
            for (int64_t c = 0; c < n; c++) acc[c] += dyr[c];
        }
        for (int64_t c = 0; c < n; c++) dbias[c0 + c] += acc[c];
    }
}

/* ------------------------------------------------------------------ */
/* LayerNorm                                                          */

void HFN(layernorm_fwd)(void *y_, int64_t ldy, void *mean_, void *rstd_, const void *x_, int64_t ldx, const void *w_,
                        const void *b_, int64_t rows, int64_t dim, double eps)
{
    REAL *y = y_, *mean = mean_, *rstd = rstd_;
    const REAL *x = x_, *w = w_, *b = b_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * dim > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx;
        REAL *yr = y + r * ldy;
        /* two passes in double: the variance of a row far from zero mean
         * loses nothing to cancellation */
        double s = 0, q = 0;
        for (int64_t c = 0; c < dim; c++) s += xr[c];
        double mu = s / (double)dim;
        for (int64_t c = 0; c < dim; c++) q += ((double)xr[c] - mu) * ((double)xr[c] - mu);
        REAL m = (REAL)mu, rs = (REAL)(1.0 / sqrt(q / (double)dim + eps));
        mean[r] = m;
        rstd[r] = rs;
#pragma omp simd
        for (int64_t c = 0; c < dim; c++) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
    }
}

void HFN(layernorm_bwd)(void *dx_, int64_t lddx, void *dw_, void *db_, const void *dy_, int64_t lddy, const void *x_,
                        int64_t ldx, const void *w_, const void *mean_, const void *rstd_, int64_t rows, int64_t dim,
                        int accumulate)
{
    REAL *dx = dx_, *dw = dw_, *db = db_;
    const REAL *dy = dy_, *x = x_, *w = w_, *mean = mean_, *rstd = rstd_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * dim > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx, *dyr = dy + r * lddy;
        REAL *dxr = dx + r * lddx;
        REAL m = mean[r], rs = rstd[r];
        double s1 = 0, s2 = 0;   /* mean of dxhat and of dxhat * xhat */
        for (int64_t c = 0; c < dim; c++) {
            double g = (double)dyr[c] * w[c], xh = ((double)xr[c] - m) * rs;
            s1 += g;
            s2 += g * xh;
        }
        REAL a1 = (REAL)(s1 / (double)dim), a2 = (REAL)(s2 / (double)dim);
        for (int64_t c = 0; c < dim; c++) {
            REAL xh = (xr[c] - m) * rs, v = rs * (dyr[c] * w[c] - a1 - xh * a2);
            dxr[c] = accumulate ? dxr[c] + v : v;
        }
    }
    int64_t nblk = (dim + H_CB - 1) / H_CB;
#pragma omp parallel for schedule(static) if (H_PAR(rows * dim > H_PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * H_CB, n = hmin64(dim, c0 + H_CB) - c0;
        REAL aw[H_CB] = {0}, ab[H_CB] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const REAL *xr = x + r * ldx + c0, *dyr = dy + r * lddy + c0;
            REAL m = mean[r], rs = rstd[r];
            for (int64_t c = 0; c < n; c++) {
                aw[c] += dyr[c] * (xr[c] - m) * rs;
                ab[c] += dyr[c];
            }
        }
        for (int64_t c = 0; c < n; c++) dw[c0 + c] += aw[c], db[c0 + c] += ab[c];
    }
}

/* ------------------------------------------------------------------ */
/* GELU (tanh form) and Sin                                           */

#define GELU_A ((REAL)0.7978845608028654)   /* sqrt(2 / pi) */
#define GELU_B ((REAL)0.044715)

void HFN(gelu_fwd)(void *y_, int64_t ldy, const void *x_, int64_t ldx, int64_t rows, int64_t cols)
{
    REAL *y = y_;
    const REAL *x = x_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx;
        REAL *yr = y + r * ldy;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) {
            REAL v = xr[c];
            yr[c] = (REAL)0.5 * v * (1 + R_TANH(GELU_A * (v + GELU_B * v * v * v)));
        }
    }
}

void HFN(gelu_bwd)(void *dx_, int64_t lddx, const void *dy_, int64_t lddy, const void *x_, int64_t ldx, int64_t rows,
                   int64_t cols)
{
    REAL *dx = dx_;
    const REAL *dy = dy_, *x = x_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx, *dyr = dy + r * lddy;
        REAL *dxr = dx + r * lddx;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) {
            REAL v = xr[c], th = R_TANH(GELU_A * (v + GELU_B * v * v * v));
            REAL g = (REAL)0.5 * (1 + th) + (REAL)0.5 * v * (1 - th * th) * GELU_A * (1 + 3 * GELU_B * v * v);
            dxr[c] = dyr[c] * g;
        }
    }
}

void HFN(sin_fwd)(void *y_, int64_t ldy, const void *x_, int64_t ldx, const void *freq_, int64_t rows, int64_t cols)
{
    REAL *y = y_;
    const REAL *x = x_, *freq = freq_;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx;
        REAL *yr = y + r * ldy;
        for (int64_t c = 0; c < cols; c++) yr[c] = R_SIN(freq[c] * xr[c]);
    }
}

void HFN(sin_bwd)(void *dx_, int64_t lddx, void *dfreq_, const void *dy_, int64_t lddy, const void *x_, int64_t ldx,
                  const void *freq_, int64_t rows, int64_t cols)
{
    REAL *dx = dx_, *dfreq = dfreq_;
    const REAL *dy = dy_, *x = x_, *freq = freq_;
    /* dfreq first: dx may alias dy */
    int64_t nblk = (cols + H_CB - 1) / H_CB;
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * H_CB, n = hmin64(cols, c0 + H_CB) - c0;
        REAL acc[H_CB] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const REAL *xr = x + r * ldx + c0, *dyr = dy + r * lddy + c0;
            for (int64_t c = 0; c < n; c++) acc[c] += dyr[c] * xr[c] * R_COS(freq[c0 + c] * xr[c]);
        }
        for (int64_t c = 0; c < n; c++) dfreq[c0 + c] += acc[c];
    }
#pragma omp parallel for schedule(static) if (H_PAR(rows * cols > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * ldx, *dyr = dy + r * lddy;
        REAL *dxr = dx + r * lddx;
        for (int64_t c = 0; c < cols; c++) dxr[c] = dyr[c] * freq[c] * R_COS(freq[c] * xr[c]);
    }
}

/* ------------------------------------------------------------------ */
/* ExponentialModulation                                              */

void HFN(hyena_modulate)(void *k_, int64_t len, int64_t cols, int64_t l_max, double target, double fast_pct,
                         double slow_pct)
{
    REAL *k = k_;
    double lo = log(target) / slow_pct, hi = log(target) / fast_pct;
#pragma omp parallel for schedule(static) if (H_PAR(len * cols > H_PAR_MIN))
    for (int64_t l = 0; l < len; l++) {
        double t = l_max > 1 ? (double)l / (double)(l_max - 1) : 0.0;
        REAL *kr = k + l * cols;
        for (int64_t c = 0; c < cols; c++) {
            /* torch.linspace(lo, hi, C): lo + c (hi - lo) / (C - 1) */
            double delta = cols > 1 ? lo + (double)c * (hi - lo) / (double)(cols - 1) : lo;
            kr[c] *= (REAL)exp(-t * fabs(delta));
        }
    }
}

/* ------------------------------------------------------------------ */
/* short depthwise causal conv with bias                              */

void HFN(dwconv_fwd)(void *y_, int64_t ldy, const void *x_, int64_t ldx, const void *w_, const void *bias_,
                     int64_t batch, int64_t len, int64_t dim, int64_t width)
{
    REAL *y = y_;
    const REAL *x = x_, *w = w_, *bias = bias_;
#pragma omp parallel for schedule(static) if (H_PAR(batch * len * dim * width > H_PAR_MIN))
    for (int64_t r = 0; r < batch * len; r++) {
        int64_t t = r % len;
        REAL *yr = y + r * ldy;
        for (int64_t c = 0; c < dim; c++) yr[c] = bias[c];
        for (int64_t j = 0; j < width; j++) {
            int64_t s = t - width + 1 + j;
            if (s < 0) continue;
            const REAL *xr = x + (r - t + s) * ldx;
            for (int64_t c = 0; c < dim; c++) yr[c] += w[c * width + j] * xr[c];
        }
    }
}

void HFN(dwconv_bwd)(void *dx_, int64_t lddx, void *dw_, void *dbias_, const void *dy_, int64_t lddy, const void *x_,
                     int64_t ldx, const void *w_, int64_t batch, int64_t len, int64_t dim, int64_t width)
{
    REAL *dx = dx_, *dw = dw_, *dbias = dbias_;
    const REAL *dy = dy_, *x = x_, *w = w_;
    int64_t rows = batch * len;
    /* dx[t] = sum_j w[j] dy[t + K - 1 - j] within the sequence */
#pragma omp parallel for schedule(static) if (H_PAR(rows * dim * width > H_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
        int64_t t = r % len;
        REAL *dxr = dx + r * lddx;
        for (int64_t c = 0; c < dim; c++) dxr[c] = 0;
        for (int64_t j = 0; j < width; j++) {
            int64_t s = t + width - 1 - j;
            if (s >= len) continue;
            const REAL *dyr = dy + (r - t + s) * lddy;
            for (int64_t c = 0; c < dim; c++) dxr[c] += w[c * width + j] * dyr[c];
        }
    }
    enum { KMAX = 16 };
    int64_t nblk = (dim + H_CB - 1) / H_CB;
#pragma omp parallel for schedule(static) if (H_PAR(rows * dim * width > H_PAR_MIN))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * H_CB, n = hmin64(dim, c0 + H_CB) - c0;
        REAL aw[KMAX][H_CB], ab[H_CB] = {0};
        memset(aw, 0, sizeof aw);
        for (int64_t r = 0; r < rows; r++) {
            int64_t t = r % len;
            const REAL *dyr = dy + r * lddy + c0;
            for (int64_t c = 0; c < n; c++) ab[c] += dyr[c];
            for (int64_t j = 0; j < width; j++) {
                int64_t s = t - width + 1 + j;
                if (s < 0) continue;
                const REAL *xr = x + (r - t + s) * ldx + c0;
                for (int64_t c = 0; c < n; c++) aw[j][c] += dyr[c] * xr[c];
            }
        }
        for (int64_t c = 0; c < n; c++) {
            dbias[c0 + c] += ab[c];
            for (int64_t j = 0; j < width; j++) dw[(c0 + c) * width + j] += aw[j][c];
        }
    }
}

/* ------------------------------------------------------------------ */
/* the FFT long convolution                                           */

/* Plans are made once per FFT size and kept for the life of the process.
 * FFTW's planner is not thread-safe, so lookups and planning hold a lock;
 * executing a plan on other arrays (fftw_execute_dft_r2c/c2r) is
 * thread-safe, and every array given to it is 64-byte aligned, as were
 * those it was planned on, which FFTW requires. */
enum { N_PLANS = 256 };
typedef struct { int64_t n; FFTW(plan) r2c, c2r; } fft_plans_t;
static fft_plans_t plans[N_PLANS];
static int n_plans;
static pthread_mutex_t plans_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t round64b_h(size_t n) { return (n + 63) & ~(size_t)63; }

/* One channel's buffers: two real arrays of n, five complex of n/2 + 1. */
enum { CH_REAL = 2, CH_CPLX = 5 };
typedef struct { REAL *r0, *r1; FFTW(complex) *K, *S, *U, *T, *DK; } chan_buf_t;

static size_t chan_bytes(int64_t n)
{
    return CH_REAL * round64b_h((size_t)n * sizeof(REAL)) +
           CH_CPLX * round64b_h((size_t)(n / 2 + 1) * sizeof(FFTW(complex)));
}

/* A lane works on a group of G adjacent channels at a time: reading G
 * adjacent values of a row uses whole cache lines, where one channel at a
 * time would fetch a line per value. G is as many as fit in LANE_CAP bytes
 * (at most 16, at least 1), and a lane takes max(LANE_CAP, one channel's
 * buffers), which grows with n: a workspace sized for some length serves
 * every shorter one. */
enum { LANE_CAP = 4 << 20, G_MAX = 16 };

static size_t lane_cap(int64_t n)
{
    size_t b = chan_bytes(n);
    return b > LANE_CAP ? b : LANE_CAP;
}

static int64_t group_size(int64_t n, int64_t channels)
{
    int64_t g = (int64_t)(LANE_CAP / chan_bytes(n));
    if (g > G_MAX) g = G_MAX;
    if (g > channels) g = channels;
    return g < 1 ? 1 : g;
}

/* Lanes: one per core the machine has, at most 64, and no more than there
 * are channels; the count changes no result. */
static int64_t max_lanes(int64_t channels)
{
    int64_t p = omp_get_num_procs();
    if (p > 64) p = 64;
    if (p < 1) p = 1;
    return channels < p ? channels : p;
}

static chan_buf_t chan_at(void *ws, int64_t n, int64_t lane, int64_t g)
{
    char *p = (char *)ws + (size_t)lane * lane_cap(n) + (size_t)g * chan_bytes(n);
    chan_buf_t a;
    a.r0 = (REAL *)p, p += round64b_h((size_t)n * sizeof(REAL));
    a.r1 = (REAL *)p, p += round64b_h((size_t)n * sizeof(REAL));
    FFTW(complex) **c[CH_CPLX] = {&a.K, &a.S, &a.U, &a.T, &a.DK};
    for (int i = 0; i < CH_CPLX; i++) {
        *c[i] = (FFTW(complex) *)p;
        p += round64b_h((size_t)(n / 2 + 1) * sizeof(FFTW(complex)));
    }
    return a;
}

static const fft_plans_t *plans_for(int64_t n, chan_buf_t *scratch)
{
    const fft_plans_t *found = NULL;
    pthread_mutex_lock(&plans_lock);
    for (int i = 0; i < n_plans && !found; i++)
        if (plans[i].n == n) found = &plans[i];
    if (!found) {
        if (n_plans == N_PLANS || n > INT32_MAX) {
            md_error("backend cpu, op fftconv: internal error, no FFT plan for size %lld", (long long)n);
            abort();
        }
        /* FFTW_ESTIMATE reads and writes neither array while planning */
        fft_plans_t *p = &plans[n_plans];
        p->n = n;
        p->r2c = FFTW(plan_dft_r2c_1d)((int)n, scratch->r0, scratch->S, FFTW_ESTIMATE);
        p->c2r = FFTW(plan_dft_c2r_1d)((int)n, scratch->T, scratch->r1, FFTW_ESTIMATE);
        if (!p->r2c || !p->c2r) {
            md_error("backend cpu, op fftconv: FFTW could not plan a transform of size %lld", (long long)n);
            abort();
        }
        n_plans++;
        found = p;
    }
    pthread_mutex_unlock(&plans_lock);
    return found;
}

size_t HFN(fftconv_workspace)(int64_t len, int64_t channels)
{
    return (size_t)max_lanes(channels) * lane_cap(2 * len);
}

/* element (t, c) of a (rows, ·) matrix with row stride ld */
#define AT(p, ld, t, c) ((p)[(t) * (ld) + (c)])

/* A group: channels c0 .. c0 + gn of the call, and its channels' buffers. */
typedef struct {
    const md_cpu_fftconv_args_t *a;
    const fft_plans_t *pl;
    int64_t c0, gn;
    chan_buf_t ch[G_MAX];
} group_t;

/* K = the transform of each channel's filter, zero padded, divided by n
 * (the inverse transforms are unnormalised) */
static void load_k(group_t *G)
{
    int64_t L = G->a->len, n = 2 * L, C = G->a->channels;
    const REAL *k = G->a->k;
    REAL inv = (REAL)1 / (REAL)n;
    for (int64_t g = 0; g < G->gn; g++) {
        chan_buf_t *w = &G->ch[g];
        for (int64_t t = 0; t < L; t++) w->r1[t] = k[t * C + G->c0 + g];
        memset(w->r1 + L, 0, (size_t)(n - L) * sizeof(REAL));
        FFTW(execute_dft_r2c)(G->pl->r2c, w->r1, w->K);
        for (int64_t f = 0; f <= L; f++) w->K[f][0] *= inv, w->K[f][1] *= inv;
    }
}

/* T = X Y (or X conj(Y)) over the n/2 + 1 frequencies, r1 = its inverse */
static void product_inverse(const fft_plans_t *pl, chan_buf_t *w, FFTW(complex) *X, FFTW(complex) *Y, int conj,
                            int64_t L)
{
    REAL sg = conj ? -1 : 1;
    for (int64_t f = 0; f <= L; f++) {
        REAL xr = X[f][0], xi = X[f][1], yr = Y[f][0], yi = sg * Y[f][1];
        w->T[f][0] = xr * yr - xi * yi;
        w->T[f][1] = xr * yi + xi * yr;
    }
    FFTW(execute_dft_c2r)(pl->c2r, w->T, w->r1);
}

/* r0 = s = x1 v of sequence b, zero padded, S = its transform; then
 * r1 = the causal convolution k * s */
static void load_s_conv(group_t *G, int64_t b)
{
    const md_cpu_fftconv_args_t *a = G->a;
    int64_t L = a->len, n = 2 * L, c0 = G->c0, gn = G->gn;
    const REAL *x1 = (const REAL *)a->x1 + b * L * a->ld_x1, *v = (const REAL *)a->v + b * L * a->ld_v;
    for (int64_t t = 0; t < L; t++)
        for (int64_t g = 0; g < gn; g++) G->ch[g].r0[t] = AT(x1, a->ld_x1, t, c0 + g) * AT(v, a->ld_v, t, c0 + g);
    for (int64_t g = 0; g < gn; g++) {
        chan_buf_t *w = &G->ch[g];
        memset(w->r0 + L, 0, (size_t)(n - L) * sizeof(REAL));
        FFTW(execute_dft_r2c)(G->pl->r2c, w->r0, w->S);
        product_inverse(G->pl, w, w->S, w->K, 0, L);
    }
}

/* Runs fn on every group, groups spread over the lanes. */
static void for_groups(const md_cpu_fftconv_args_t *a, void (*fn)(group_t *))
{
    int64_t L = a->len, n = 2 * L, C = a->channels, gs = group_size(n, C);
    int64_t ngroups = (C + gs - 1) / gs, lanes = max_lanes(ngroups);
    chan_buf_t w0 = chan_at(a->workspace, n, 0, 0);
    const fft_plans_t *pl = plans_for(n, &w0);
#pragma omp parallel for schedule(dynamic, 1) if (H_PAR(lanes > 1 && a->batch * L * C > H_PAR_MIN))
    for (int64_t l = 0; l < lanes; l++) {
        group_t G;
        G.a = a, G.pl = pl;
        for (int64_t g = 0; g < gs; g++) G.ch[g] = chan_at(a->workspace, n, l, g);
        for (int64_t grp = l; grp < ngroups; grp += lanes) {
            G.c0 = grp * gs;
            G.gn = hmin64(gs, C - G.c0);
            fn(&G);
        }
    }
}

static void fwd_group(group_t *G)
{
    const md_cpu_fftconv_args_t *a = G->a;
    int64_t L = a->len, c0 = G->c0, gn = G->gn;
    const REAL *D = a->D;
    load_k(G);
    for (int64_t b = 0; b < a->batch; b++) {
        load_s_conv(G, b);
        const REAL *x0 = (const REAL *)a->x0 + b * L * a->ld_x0;
        REAL *y = (REAL *)a->y + b * L * a->ld_y;
        for (int64_t t = 0; t < L; t++)
            for (int64_t g = 0; g < gn; g++)
                AT(y, a->ld_y, t, c0 + g) = AT(x0, a->ld_x0, t, c0 + g) * (G->ch[g].r1[t] + D[c0 + g] * G->ch[g].r0[t]);
    }
}

void HFN(fftconv_fwd)(const md_cpu_fftconv_args_t *a) { for_groups(a, fwd_group); }

/* With u = k * s + D s and y = x0 u:
 *   dx0 = dy u;   du = dy x0;   dD += sum_t du s;
 *   ds[t] = sum_{j >= t} du[j] k[j - t] + D du[t]   (a correlation)
 *   dk[j] += sum_t du[t] s[t - j]                  (summed over the batch)
 *   dx1 = ds v;   dv = ds x1.
 * Both correlations are products with a conjugate in frequency; dk's is
 * summed over the batch in frequency and inverted once per channel. Each
 * channel's sums run over b, then t, whatever the threads. */
static void bwd_group(group_t *G)
{
    const md_cpu_fftconv_args_t *a = G->a;
    int64_t L = a->len, n = 2 * L, C = a->channels, c0 = G->c0, gn = G->gn;
    const REAL *D = a->D;
    REAL dDc[G_MAX] = {0};
    load_k(G);
    for (int64_t g = 0; g < gn; g++) memset(G->ch[g].DK, 0, (size_t)(L + 1) * sizeof(FFTW(complex)));
    for (int64_t b = 0; b < a->batch; b++) {
        load_s_conv(G, b);   /* r0 = s, S, r1 = k * s */
        const REAL *x0 = (const REAL *)a->x0 + b * L * a->ld_x0, *dy = (const REAL *)a->dy + b * L * a->ld_dy;
        const REAL *x1 = (const REAL *)a->x1 + b * L * a->ld_x1, *v = (const REAL *)a->v + b * L * a->ld_v;
        REAL *dx0 = (REAL *)a->dx0 + b * L * a->ld_dx0, *dx1 = (REAL *)a->dx1 + b * L * a->ld_dx1;
        REAL *dv = (REAL *)a->dv + b * L * a->ld_dv;
        for (int64_t t = 0; t < L; t++)
            for (int64_t g = 0; g < gn; g++) {
                chan_buf_t *w = &G->ch[g];
                REAL gy = AT(dy, a->ld_dy, t, c0 + g), s = w->r0[t];
                AT(dx0, a->ld_dx0, t, c0 + g) = gy * (w->r1[t] + D[c0 + g] * s);
                REAL du = gy * AT(x0, a->ld_x0, t, c0 + g);
                dDc[g] += du * s;
                w->r0[t] = du;   /* r0 now holds du; its zero padding is intact */
            }
        for (int64_t g = 0; g < gn; g++) {
            chan_buf_t *w = &G->ch[g];
            FFTW(execute_dft_r2c)(G->pl->r2c, w->r0, w->U);
            for (int64_t f = 0; f <= L; f++) {   /* DK += U conj(S) */
                REAL ur = w->U[f][0], ui = w->U[f][1], sr = w->S[f][0], si = -w->S[f][1];
                w->DK[f][0] += ur * sr - ui * si;
                w->DK[f][1] += ur * si + ui * sr;
            }
            product_inverse(G->pl, w, w->U, w->K, 1, L);   /* r1 = the correlation part of ds */
        }
        for (int64_t t = 0; t < L; t++)
            for (int64_t g = 0; g < gn; g++) {
                chan_buf_t *w = &G->ch[g];
                REAL ds = w->r1[t] + D[c0 + g] * w->r0[t];
                AT(dx1, a->ld_dx1, t, c0 + g) = ds * AT(v, a->ld_v, t, c0 + g);
                AT(dv, a->ld_dv, t, c0 + g) = ds * AT(x1, a->ld_x1, t, c0 + g);
            }
    }
    REAL *dk = a->dk, *dD = a->dD, inv = (REAL)1 / (REAL)n;
    for (int64_t g = 0; g < gn; g++) {   /* the inverse of DK is unnormalised: divide by n here */
        chan_buf_t *w = &G->ch[g];
        memcpy(w->T, w->DK, (size_t)(L + 1) * sizeof(FFTW(complex)));
        FFTW(execute_dft_c2r)(G->pl->c2r, w->T, w->r1);
        for (int64_t t = 0; t < L; t++) dk[t * C + c0 + g] += w->r1[t] * inv;
        dD[c0 + g] += dDc[g];
    }
}

void HFN(fftconv_bwd)(const md_cpu_fftconv_args_t *a) { for_groups(a, bwd_group); }

#undef AT
