/* The Hyena ops of the CPU backend: the FFT long convolution against the
 * direct O(L^2) sum, LayerNorm, GELU (tanh form), Sin, the exponential
 * modulation and the short depthwise conv against their formulas written
 * out here, every backward against central finite differences in f64, the
 * f32 instantiation against the f64 one, and the f32 FFT convolution's
 * results independent of the thread count. */
#include "gradcheck.h"
#include "util/log.h"

static md_tensor_t T2f(float *p, int64_t r, int64_t c) { return md_tensor_2d(p, MD_DTYPE_F32, MD_DEVICE_CPU, r, c); }
static md_tensor_t T1f(float *p, int64_t n) { return md_tensor_1d(p, MD_DTYPE_F32, MD_DEVICE_CPU, n); }

static double max_abs_diff(const double *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* ---- the FFT convolution ---- */

/* x0, x1, v are column slices of one (M, 3C) matrix, as in the model */
typedef struct { int64_t B, L, C; double *p, *k, *D, *y, *R; void *ws; } fc_ctx_t;

static void fc_views(const fc_ctx_t *c, double *base, md_tensor_t *x0, md_tensor_t *x1, md_tensor_t *v)
{
    md_tensor_t all = T2(base, c->B * c->L, 3 * c->C);
    *x0 = md_tensor_cols(all, 0, c->C), *x1 = md_tensor_cols(all, c->C, c->C), *v = md_tensor_cols(all, 2 * c->C, c->C);
}

static void fc_forward(fc_ctx_t *c)
{
    md_tensor_t x0, x1, v, k = T2(c->k, c->L, c->C), D = T1(c->D, c->C), y = T2(c->y, c->B * c->L, c->C);
    fc_views(c, c->p, &x0, &x1, &v);
    be->fftconv_fwd(be, &y, &x0, &x1, &v, &k, &D, c->B, c->ws, NULL);
}

static double fc_loss(void *p)
{
    fc_ctx_t *c = p;
    fc_forward(c);
    return dot(c->y, c->R, c->B * c->L * c->C);
}

/* y[b,t,c] = x0 (sum_{j<=t} k[j] s[t-j] + D s[t]), written out */
static void fc_direct(const fc_ctx_t *c, double *y)
{
    int64_t L = c->L, C = c->C, W = 3 * C;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t ch = 0; ch < C; ch++) {
                const double *row = c->p + (b * L + t) * W;
                double acc = 0;
                for (int64_t j = 0; j <= t; j++) {
                    const double *r2 = c->p + (b * L + t - j) * W;
                    acc += c->k[j * C + ch] * r2[C + ch] * r2[2 * C + ch];
                }
                acc += c->D[ch] * row[C + ch] * row[2 * C + ch];
                y[(b * L + t) * C + ch] = row[ch] * acc;
            }
}

static void check_fftconv(int64_t B, int64_t L, int64_t C)
{
    fc_ctx_t c = {B, L, C, NULL, NULL, NULL, NULL, NULL, NULL};
    int64_t M = B * L;
    c.p = rnd(M * 3 * C, -1, 1), c.k = rnd(L * C, -1, 1), c.D = rnd(C, -1, 1);
    c.y = zeros(M * C), c.R = rnd(M * C, -1, 1);
    /* 64-byte aligned, as the model's workspaces */
    c.ws = aligned_alloc(64, (be->fftconv_workspace(be, F64, B, L, C) + 63) & ~(size_t)63);
    fc_forward(&c);
    double *ref = zeros(M * C);
    fc_direct(&c, ref);
    double err = max_abs_diff(c.y, ref, M * C);
    CHECK(err < 1e-12 * (double)L, "fftconv B %lld L %lld C %lld: forward differs from the direct sum by %.3g",
          (long long)B, (long long)L, (long long)C, err);
    printf("fftconv B %lld L %4lld C %lld forward vs direct: %.2e\n", (long long)B, (long long)L, (long long)C, err);

    /* the backward: dx0, dx1, dv written, dk and dD added onto junk */
    double *g = zeros(M * 3 * C), *dk = rnd(L * C, -1, 1), *dD = rnd(C, -1, 1);
    double *dk0 = malloc((size_t)(L * C) * sizeof *dk0), *dD0 = malloc((size_t)C * sizeof *dD0);
    memcpy(dk0, dk, (size_t)(L * C) * sizeof *dk0), memcpy(dD0, dD, (size_t)C * sizeof *dD0);
    for (int64_t i = 0; i < M * 3 * C; i++) g[i] = NAN;
    md_tensor_t x0, x1, v, dx0, dx1, dv, k = T2(c.k, L, C), D = T1(c.D, C), dy = T2(c.R, M, C);
    md_tensor_t tdk = T2(dk, L, C), tdD = T1(dD, C);
    fc_views(&c, c.p, &x0, &x1, &v);
    fc_views(&c, g, &dx0, &dx1, &dv);
    be->fftconv_bwd(be, &dx0, &dx1, &dv, &tdk, &tdD, &dy, &x0, &x1, &v, &k, &D, B, c.ws, NULL);
    for (int64_t i = 0; i < L * C; i++) dk[i] -= dk0[i];
    for (int64_t i = 0; i < C; i++) dD[i] -= dD0[i];
    char what[96];
    snprintf(what, sizeof what, "fftconv B %lld L %lld d/d(x0,x1,v)", (long long)B, (long long)L);
    fd_check(what, c.p, g, M * 3 * C, fc_loss, &c, 300);
    snprintf(what, sizeof what, "fftconv B %lld L %lld d/dk", (long long)B, (long long)L);
    fd_check(what, c.k, dk, L * C, fc_loss, &c, 200);
    snprintf(what, sizeof what, "fftconv B %lld L %lld d/dD", (long long)B, (long long)L);
    fd_check(what, c.D, dD, C, fc_loss, &c, 50);
    free(c.p), free(c.k), free(c.D), free(c.y), free(c.R), free(ref), free(g), free(dk), free(dD), free(dk0), free(dD0);
    free(c.ws);
}

/* f32 against f64, and the f32 results for 1 and 2 threads (three
 * channel groups, so two lanes have work) */
static void check_fftconv_f32(void)
{
    const int64_t B = 3, L = 700, C = 40, M = B * L;
    double *p = rnd(M * 3 * C, -1, 1), *k = rnd(L * C, -0.2, 0.2), *D = rnd(C, -1, 1), *dy = rnd(M * C, -1, 1);
    float *pf = malloc((size_t)(M * 3 * C) * 4), *kf = malloc((size_t)(L * C) * 4), *Df = malloc((size_t)C * 4);
    float *dyf = malloc((size_t)(M * C) * 4);
    for (int64_t i = 0; i < M * 3 * C; i++) pf[i] = (float)p[i];
    for (int64_t i = 0; i < L * C; i++) kf[i] = (float)k[i], k[i] = kf[i];
    for (int64_t i = 0; i < C; i++) Df[i] = (float)D[i], D[i] = Df[i];
    for (int64_t i = 0; i < M * C; i++) dyf[i] = (float)dy[i], dy[i] = dyf[i];
    for (int64_t i = 0; i < M * 3 * C; i++) p[i] = pf[i];
    size_t wsb = be->fftconv_workspace(be, MD_DTYPE_F32, B, L, C);
    void *ws = aligned_alloc(64, (wsb + 63) & ~(size_t)63), *ws64 = NULL;
    ws64 = aligned_alloc(64, (be->fftconv_workspace(be, F64, B, L, C) + 63) & ~(size_t)63);
    /* f64 reference */
    double *y = zeros(M * C), *g = zeros(M * 3 * C), *dk = zeros(L * C), *dD = zeros(C);
    md_tensor_t all = T2(p, M, 3 * C), gall = T2(g, M, 3 * C);
    md_tensor_t x0 = md_tensor_cols(all, 0, C), x1 = md_tensor_cols(all, C, C), v = md_tensor_cols(all, 2 * C, C);
    md_tensor_t dx0 = md_tensor_cols(gall, 0, C), dx1 = md_tensor_cols(gall, C, C), dv = md_tensor_cols(gall, 2 * C, C);
    md_tensor_t tk = T2(k, L, C), tD = T1(D, C), ty = T2(y, M, C), tdy = T2(dy, M, C), tdk = T2(dk, L, C), tdD = T1(dD, C);
    be->fftconv_fwd(be, &ty, &x0, &x1, &v, &tk, &tD, B, ws64, NULL);
    be->fftconv_bwd(be, &dx0, &dx1, &dv, &tdk, &tdD, &tdy, &x0, &x1, &v, &tk, &tD, B, ws64, NULL);
    float *yf[2], *gf[2], *dkf[2], *dDf[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        yf[run] = calloc((size_t)(M * C), 4), gf[run] = calloc((size_t)(M * 3 * C), 4);
        dkf[run] = calloc((size_t)(L * C), 4), dDf[run] = calloc((size_t)C, 4);
        md_tensor_t a = T2f(pf, M, 3 * C), ga = T2f(gf[run], M, 3 * C);
        md_tensor_t fx0 = md_tensor_cols(a, 0, C), fx1 = md_tensor_cols(a, C, C), fv = md_tensor_cols(a, 2 * C, C);
        md_tensor_t fdx0 = md_tensor_cols(ga, 0, C), fdx1 = md_tensor_cols(ga, C, C), fdv = md_tensor_cols(ga, 2 * C, C);
        md_tensor_t fk = T2f(kf, L, C), fD = T1f(Df, C), fy = T2f(yf[run], M, C), fdy = T2f(dyf, M, C);
        md_tensor_t fdk = T2f(dkf[run], L, C), fdD = T1f(dDf[run], C);
        be->fftconv_fwd(be, &fy, &fx0, &fx1, &fv, &fk, &fD, B, ws, NULL);
        be->fftconv_bwd(be, &fdx0, &fdx1, &fdv, &fdk, &fdD, &fdy, &fx0, &fx1, &fv, &fk, &fD, B, ws, NULL);
    }
    omp_set_num_threads(2);
    double ey = 0, eg = 0, ek = 0, eD = 0, sy = 0, sg = 0, sk = 0, sD = 0;
    for (int64_t i = 0; i < M * C; i++) ey = fmax(ey, fabs(yf[0][i] - y[i])), sy = fmax(sy, fabs(y[i]));
    for (int64_t i = 0; i < M * 3 * C; i++) eg = fmax(eg, fabs(gf[0][i] - g[i])), sg = fmax(sg, fabs(g[i]));
    for (int64_t i = 0; i < L * C; i++) ek = fmax(ek, fabs(dkf[0][i] - dk[i])), sk = fmax(sk, fabs(dk[i]));
    for (int64_t i = 0; i < C; i++) eD = fmax(eD, fabs(dDf[0][i] - dD[i])), sD = fmax(sD, fabs(dD[i]));
    CHECK(ey < 1e-5 * sy && eg < 1e-5 * sg && ek < 1e-5 * sk && eD < 1e-5 * sD,
          "fftconv f32 vs f64: y %.3g, dx %.3g, dk %.3g, dD %.3g (of max %.3g %.3g %.3g %.3g)", ey, eg, ek, eD, sy, sg,
          sk, sD);
    printf("fftconv f32 vs f64 relative: y %.2e dx %.2e dk %.2e dD %.2e\n", ey / sy, eg / sg, ek / sk, eD / sD);
    CHECK(!memcmp(yf[0], yf[1], (size_t)(M * C) * 4) && !memcmp(gf[0], gf[1], (size_t)(M * 3 * C) * 4) &&
              !memcmp(dkf[0], dkf[1], (size_t)(L * C) * 4) && !memcmp(dDf[0], dDf[1], (size_t)C * 4),
          "fftconv f32: results with 1 and 2 threads differ");
    for (int r = 0; r < 2; r++) free(yf[r]), free(gf[r]), free(dkf[r]), free(dDf[r]);
    free(p), free(k), free(D), free(dy), free(pf), free(kf), free(Df), free(dyf), free(ws), free(ws64);
    free(y), free(g), free(dk), free(dD);
}

/* ---- LayerNorm ---- */

typedef struct { int64_t M, C; double *x, *w, *b, *y, *mean, *rstd, *R; } ln_ctx_t;

static double ln_loss(void *p)
{
    ln_ctx_t *c = p;
    md_tensor_t x = T2(c->x, c->M, c->C), y = T2(c->y, c->M, c->C), w = T1(c->w, c->C), b = T1(c->b, c->C);
    md_tensor_t mean = T1(c->mean, c->M), rstd = T1(c->rstd, c->M);
    be->layernorm_fwd(be, &y, &mean, &rstd, &x, &w, &b, 1e-5);
    return dot(c->y, c->R, c->M * c->C);
}

static void check_layernorm(void)
{
    ln_ctx_t c = {37, 19, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    int64_t M = c.M, C = c.C;
    c.x = rnd(M * C, -2, 3), c.w = rnd(C, 0.5, 1.5), c.b = rnd(C, -1, 1), c.y = zeros(M * C);
    c.mean = zeros(M), c.rstd = zeros(M), c.R = rnd(M * C, -1, 1);
    ln_loss(&c);
    double err = 0;
    for (int64_t r = 0; r < M; r++) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < C; i++) mu += c.x[r * C + i] / C;
        for (int64_t i = 0; i < C; i++) var += (c.x[r * C + i] - mu) * (c.x[r * C + i] - mu) / C;
        for (int64_t i = 0; i < C; i++)
            err = fmax(err, fabs(c.y[r * C + i] - ((c.x[r * C + i] - mu) / sqrt(var + 1e-5) * c.w[i] + c.b[i])));
    }
    CHECK(err < 1e-13, "layernorm forward differs from torch's formula by %.3g", err);
    double *dx = rnd(M * C, -1, 1), *dx0 = malloc((size_t)(M * C) * sizeof *dx0), *dw = zeros(C), *db = zeros(C);
    memcpy(dx0, dx, (size_t)(M * C) * sizeof *dx0);
    md_tensor_t tx = T2(c.x, M, C), tdx = T2(dx, M, C), tdy = T2(c.R, M, C), tw = T1(c.w, C), tdw = T1(dw, C);
    md_tensor_t tdb = T1(db, C), mean = T1(c.mean, M), rstd = T1(c.rstd, M);
    be->layernorm_bwd(be, &tdx, &tdw, &tdb, &tdy, &tx, &tw, &mean, &rstd, 1);   /* accumulate onto dx0 */
    for (int64_t i = 0; i < M * C; i++) dx[i] -= dx0[i];
    fd_check("layernorm d/dx (accumulated)", c.x, dx, M * C, ln_loss, &c, 200);
    fd_check("layernorm d/dw", c.w, dw, C, ln_loss, &c, 50);
    fd_check("layernorm d/db", c.b, db, C, ln_loss, &c, 50);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.mean), free(c.rstd), free(c.R), free(dx), free(dx0), free(dw),
        free(db);
}

/* ---- GELU, Sin, bias ---- */

typedef struct { int64_t M, C; double *x, *f, *y, *R; int which; } ew_ctx_t;   /* 0 gelu, 1 sin, 2 bias */

static double ew_loss(void *p)
{
    ew_ctx_t *c = p;
    md_tensor_t x = T2(c->x, c->M, c->C), y = T2(c->y, c->M, c->C), f = T1(c->f, c->C);
    if (c->which == 0) be->gelu_fwd(be, &y, &x);
    if (c->which == 1) be->sin_fwd(be, &y, &x, &f);
    if (c->which == 2) {
        memcpy(c->y, c->x, (size_t)(c->M * c->C) * sizeof(double));
        be->bias_add(be, &y, &f);
    }
    return dot(c->y, c->R, c->M * c->C);
}

static void check_elementwise(void)
{
    ew_ctx_t c = {23, 21, NULL, NULL, NULL, NULL, 0};
    int64_t M = c.M, C = c.C, n = M * C;
    c.x = rnd(n, -4, 4), c.f = rnd(C, 5, 15), c.y = zeros(n), c.R = rnd(n, -1, 1);
    double *dx = zeros(n), *df = zeros(C), err = 0;
    md_tensor_t x = T2(c.x, M, C), tdx = T2(dx, M, C), dy = T2(c.R, M, C), f = T1(c.f, C), tdf = T1(df, C);
    /* GELU against its formula, and in place */
    ew_loss(&c);
    for (int64_t i = 0; i < n; i++) {
        double v = c.x[i];
        err = fmax(err, fabs(c.y[i] - 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))));
    }
    CHECK(err < 1e-15, "gelu differs from the tanh formula by %.3g", err);
    be->gelu_bwd(be, &tdx, &dy, &x);
    fd_check("gelu d/dx", c.x, dx, n, ew_loss, &c, 200);
    c.which = 1;
    ew_loss(&c);
    err = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(c.y[i] - sin(c.f[i % C] * c.x[i])));
    CHECK(err < 1e-15, "sin differs from sin(freq x) by %.3g", err);
    double *dyc = malloc((size_t)n * sizeof *dyc);   /* the backward in place: dx aliases dy */
    memcpy(dyc, c.R, (size_t)n * sizeof *dyc);
    md_tensor_t tdyc = T2(dyc, M, C);
    /* the bias's sum folded in: the same bits as bias_bwd on dx after it */
    double *dbias = calloc((size_t)C, sizeof *dbias), *dbias_ref = calloc((size_t)C, sizeof *dbias_ref);
    md_tensor_t tdb = T1(dbias, C), tdb_ref = T1(dbias_ref, C);
    be->sin_bwd(be, &tdyc, &tdf, &tdb, &tdyc, &x, &f);
    fd_check("sin d/dx (in place)", c.x, dyc, n, ew_loss, &c, 200);
    fd_check("sin d/dfreq", c.f, df, C, ew_loss, &c, 50);
    be->bias_bwd(be, &tdb_ref, &tdyc);
    CHECK(memcmp(dbias, dbias_ref, (size_t)C * sizeof *dbias) == 0, "sin_bwd's dbias differs from bias_bwd on dx");
    free(dbias), free(dbias_ref);
    c.which = 2;
    memset(df, 0, (size_t)C * sizeof *df);
    be->bias_bwd(be, &tdf, &dy);
    fd_check("bias d/dbias", c.f, df, C, ew_loss, &c, 50);
    free(c.x), free(c.f), free(c.y), free(c.R), free(dx), free(df), free(dyc);
}

/* the f32 GELU (its own tanh) against the f64 formula */
static void check_gelu_f32(void)
{
    enum { N = 4000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *dx = malloc(N * sizeof *dx);
    float *ones = malloc(N * sizeof *ones);
    for (int i = 0; i < N; i++) x[i] = (float)(-8 + 16.0 * i / (N - 1)), ones[i] = 1;
    md_tensor_t tx = T2f(x, 40, 100), ty = T2f(y, 40, 100), tdx = T2f(dx, 40, 100), t1 = T2f(ones, 40, 100);
    be->gelu_fwd(be, &ty, &tx);
    be->gelu_bwd(be, &tdx, &t1, &tx);
    double ey = 0, ed = 0, a = sqrt(2 / M_PI), b = 0.044715;
    for (int i = 0; i < N; i++) {
        double v = x[i], th = tanh(a * (v + b * v * v * v));
        double g = 0.5 * v * (1 + th), dg = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * a * (1 + 3 * b * v * v);
        ey = fmax(ey, fabs(y[i] - g) / fmax(1, fabs(g)));
        ed = fmax(ed, fabs(dx[i] - dg));
    }
    CHECK(ey < 1e-6 && ed < 3e-6, "f32 gelu: forward off by %.3g, derivative by %.3g", ey, ed);
    printf("gelu f32 vs f64 formula: %.2e, derivative %.2e\n", ey, ed);
    free(x), free(y), free(dx), free(ones);
}

/* ---- the modulation ---- */

static void check_modulate(void)
{
    const int64_t L = 9, C = 6, l_max = 13;
    double *k = rnd(L * C, -1, 1), *k0 = malloc((size_t)(L * C) * sizeof *k0), err = 0;
    memcpy(k0, k, (size_t)(L * C) * sizeof *k0);
    md_tensor_t tk = T2(k, L, C);
    be->hyena_modulate(be, &tk, l_max, 1e-2, 0.3, 1.5);
    double lo = log(1e-2) / 1.5, hi = log(1e-2) / 0.3;
    for (int64_t l = 0; l < L; l++)
        for (int64_t c = 0; c < C; c++) {
            double t = (double)l / (l_max - 1), delta = lo + (hi - lo) * c / (C - 1);
            err = fmax(err, fabs(k[l * C + c] - k0[l * C + c] * exp(-t * fabs(delta))));
        }
    CHECK(err < 1e-15, "modulation differs from exp(-t |delta|) by %.3g", err);
    free(k), free(k0);
}

/* ---- the short depthwise conv ---- */

typedef struct { int64_t B, L, C, K; double *x, *w, *bias, *y, *R; } dw_ctx_t;

static double dw_loss(void *p)
{
    dw_ctx_t *c = p;
    int64_t M = c->B * c->L;
    md_tensor_t all = T2(c->x, M, 2 * c->C), x = md_tensor_cols(all, c->C, c->C), y = T2(c->y, M, c->C);
    md_tensor_t w = T2(c->w, c->C, c->K), b = T1(c->bias, c->C);
    be->dwconv_fwd(be, &y, &x, &w, &b, c->B);
    return dot(c->y, c->R, M * c->C);
}

static void check_dwconv(void)
{
    dw_ctx_t c = {2, 7, 5, 3, NULL, NULL, NULL, NULL, NULL};
    int64_t M = c.B * c.L, C = c.C, K = c.K;
    c.x = rnd(M * 2 * C, -1, 1), c.w = rnd(C * K, -1, 1), c.bias = rnd(C, -1, 1), c.y = zeros(M * C);
    c.R = rnd(M * C, -1, 1);
    dw_loss(&c);
    double err = 0;
    for (int64_t b = 0; b < c.B; b++)
        for (int64_t t = 0; t < c.L; t++)
            for (int64_t ch = 0; ch < C; ch++) {
                double s = c.bias[ch];
                for (int64_t j = 0; j < K; j++) {
                    int64_t src = t - K + 1 + j;
                    if (src >= 0) s += c.w[ch * K + j] * c.x[(b * c.L + src) * 2 * C + C + ch];
                }
                err = fmax(err, fabs(s - c.y[(b * c.L + t) * C + ch]));
            }
    CHECK(err < 1e-15, "dwconv differs from the direct sum by %.3g", err);
    double *gx = zeros(M * 2 * C), *dw = zeros(C * K), *db = zeros(C);
    md_tensor_t all = T2(c.x, M, 2 * C), x = md_tensor_cols(all, C, C), gall = T2(gx, M, 2 * C);
    md_tensor_t dx = md_tensor_cols(gall, C, C), dy = T2(c.R, M, C), w = T2(c.w, C, K), tdw = T2(dw, C, K);
    md_tensor_t tdb = T1(db, C);
    be->dwconv_bwd(be, &dx, &tdw, &tdb, &dy, &x, &w, c.B);
    fd_check("dwconv d/dx (a column slice)", c.x, gx, M * 2 * C, dw_loss, &c, 200);
    fd_check("dwconv d/dw", c.w, dw, C * K, dw_loss, &c, 50);
    fd_check("dwconv d/dbias", c.bias, db, C, dw_loss, &c, 50);
    free(c.x), free(c.w), free(c.bias), free(c.y), free(c.R), free(gx), free(dw), free(db);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 606);
    check_fftconv(1, 1, 1);
    check_fftconv(2, 5, 3);
    check_fftconv(2, 37, 4);   /* an FFT size (74) that is not a power of two */
    check_fftconv(1, 128, 2);
    check_fftconv(2, 9, 37);   /* channels in groups of 16, 16 and 5 */
    check_fftconv_f32();
    check_layernorm();
    check_elementwise();
    check_gelu_f32();
    check_modulate();
    check_dwconv();
    return md_test_done();
}
