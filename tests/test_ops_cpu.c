/* Every CPU op against a naive double-precision reference written
 * independently here (direct sums, a state-per-step scan, backprop through
 * stored states), on random inputs of several shapes: L = 1, odd and
 * non-square L, channel counts that are not a multiple of the SIMD chunk,
 * batch > 1, and row-strided views as the model uses them. Both the f64
 * and the f32 instantiations are checked: f64 to ~1e-12, f32 to ~1e-5
 * (relative L2 error). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_math.h"
#include "backend/ops.h"
#include "seq/tokenizer.h"
#include "testutil.h"
#include "util/rng.h"

static const md_backend_t *be;
static md_rng_t rng;

/* ---- buffers ---- */

enum { MAX_BUFS = 4096 };
static void *bufs[MAX_BUFS];
static int n_bufs;

static void *keep(void *p)
{
    if (n_bufs == MAX_BUFS) { fprintf(stderr, "too many buffers\n"); exit(2); }
    return bufs[n_bufs++] = p;
}

static void free_all(void)
{
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    n_bufs = 0;
}

static double *rnd(int64_t n, double lo, double hi)
{
    double *x = keep(malloc((size_t)(n ? n : 1) * sizeof *x));
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * md_rng_uniform(&rng);
    return x;
}

static double *zeros(int64_t n) { return keep(calloc((size_t)(n ? n : 1), sizeof(double))); }

/* A (rows, cols) tensor of dtype dt holding src (row-major, contiguous),
 * stored with row stride ld >= cols; the padding holds garbage that no op
 * may read or write. */
static md_tensor_t mk(md_dtype_t dt, const double *src, int64_t rows, int64_t cols, int64_t ld)
{
    size_t es = md_dtype_size(dt);
    char *p = keep(malloc((size_t)(rows * ld + 1) * es));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) {
            double v = c < cols ? src[r * cols + c] : 1e30;   /* sentinel in the padding */
            if (dt == MD_DTYPE_F64) ((double *)p)[r * ld + c] = v;
            else ((float *)p)[r * ld + c] = (float)v;
        }
    md_tensor_t t = md_tensor_2d(p, dt, MD_DEVICE_CPU, rows, ld);
    return md_tensor_cols(t, 0, cols);
}

static md_tensor_t mk1(md_dtype_t dt, const double *src, int64_t n) { return mk(dt, src, 1, n, n); }

static double *rd(const md_tensor_t *t)
{
    int64_t rows = md_tensor_nrows(t), cols = md_tensor_ncols(t);
    double *x = keep(malloc((size_t)(rows * cols + 1) * sizeof *x));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            x[r * cols + c] = t->dtype == MD_DTYPE_F64 ? ((double *)t->data)[r * t->ld + c]
                                                       : ((float *)t->data)[r * t->ld + c];
    return x;
}

/* The padding of a row-strided tensor must be untouched. */
static int padding_intact(const md_tensor_t *t)
{
    int64_t rows = md_tensor_nrows(t), cols = md_tensor_ncols(t);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = cols; c < t->ld; c++) {
            double v = t->dtype == MD_DTYPE_F64 ? ((double *)t->data)[r * t->ld + c] : ((float *)t->data)[r * t->ld + c];
            if (v != (t->dtype == MD_DTYPE_F64 ? 1e30 : (double)(float)1e30)) return 0;
        }
    return 1;
}

static md_tensor_t tok_tensor(uint8_t *tok, int64_t n) { return md_tensor_1d(tok, MD_DTYPE_U8, MD_DEVICE_CPU, n); }

/* |a - b| <= rtol |b| (testutil's CHECK_CLOSE drops its values from the message) */
#define CHECK_NEAR(a, b, rtol, what)                                                                               \
    do {                                                                                                           \
        double a_ = (a), b_ = (b);                                                                                 \
        CHECK(fabs(a_ - b_) <= (rtol) * fabs(b_), "%s: %.17g vs %.17g", what, a_, b_);                            \
    } while (0)

/* relative L2 error of got vs ref */
static double relerr(const double *got, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double tol(md_dtype_t dt) { return dt == MD_DTYPE_F64 ? 1e-11 : 2e-5; }

/* the shape under test, for failure messages */
static char ctx[128];

#define CHECK_REL(got, ref, n, dt, what)                                                                           \
    do {                                                                                                           \
        double e_ = relerr(got, ref, n);                                                                           \
        CHECK(e_ <= tol(dt), "%s %s %s: relative error %.3g > %.3g", md_dtype_name(dt), what, ctx, e_, tol(dt));   \
    } while (0)

static const md_dtype_t dtypes[2] = {MD_DTYPE_F64, MD_DTYPE_F32};

/* ---- gemm ---- */

static void test_gemm(void)
{
    /* the last two are big enough to be split over threads, by rows and by columns */
    int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 40}, {64, 128, 16}, {600, 70, 50}, {100, 300, 64}};
    for (int s = 0; s < 6; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                double *A = rnd(m * k, -1, 1), *B = rnd(k * n, -1, 1), *C = rnd(m * n, -1, 1);
                /* stored as op(A)^T when transposed */
                double *As = zeros(m * k), *Bs = zeros(k * n);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < k; j++) As[ta ? j * m + i : i * k + j] = A[i * k + j];
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < n; j++) Bs[tb ? j * k + i : i * n + j] = B[i * n + j];
                double alpha = 0.7, beta = s % 2 ? 1.0 : 0.0;
                double *ref = zeros(m * n);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double acc = 0;
                        for (int64_t l = 0; l < k; l++) acc += A[i * k + l] * B[l * n + j];
                        ref[i * n + j] = alpha * acc + beta * C[i * n + j];
                    }
                for (int d = 0; d < 2; d++) {
                    md_tensor_t a = ta ? mk(dtypes[d], As, k, m, m + 3) : mk(dtypes[d], As, m, k, k + 2);
                    md_tensor_t b = tb ? mk(dtypes[d], Bs, n, k, k + 1) : mk(dtypes[d], Bs, k, n, n);
                    md_tensor_t c = mk(dtypes[d], C, m, n, n + 5);
                    be->gemm(be, ta, tb, alpha, &a, &b, beta, &c);
                    snprintf(ctx, sizeof ctx, "(%lld,%lld,%lld ta %d tb %d)", (long long)m, (long long)n, (long long)k, ta, tb);
                    CHECK_REL(rd(&c), ref, m * n, dtypes[d], "gemm");
                    CHECK(padding_intact(&c), "gemm wrote into the row padding");
                }
            }
}

/* ---- elementwise, sumsq, adamw ---- */

static void test_elementwise(void)
{
    ctx[0] = 0;
    int64_t rows = 37, cols = 19, n = rows * cols;
    double *x = rnd(n, -2, 2), *y = rnd(n, -2, 2), *ref = zeros(n);
    for (int64_t i = 0; i < n; i++) ref[i] = y[i] + x[i];
    for (int d = 0; d < 2; d++) {
        md_tensor_t ty = mk(dtypes[d], y, rows, cols, cols + 3), tx = mk(dtypes[d], x, rows, cols, cols + 1);
        be->add(be, &ty, &tx);
        CHECK_REL(rd(&ty), ref, n, dtypes[d], "add");
        CHECK(padding_intact(&ty), "add wrote into the padding");
        md_tensor_t tc = mk(dtypes[d], x, 1, n, n);
        be->scale(be, &tc, -0.25);
        double *sref = zeros(n);
        for (int64_t i = 0; i < n; i++) sref[i] = -0.25 * x[i];
        CHECK_REL(rd(&tc), sref, n, dtypes[d], "scale");
    }
    /* add over one long contiguous row (a flat gradient buffer), split over threads */
    int64_t nf = 40001;
    double *fx = rnd(nf, -2, 2), *fy = rnd(nf, -2, 2), *fref = zeros(nf);
    for (int64_t i = 0; i < nf; i++) fref[i] = fy[i] + fx[i];
    for (int d = 0; d < 2; d++) {
        md_tensor_t ty = mk1(dtypes[d], fy, nf), tx = mk1(dtypes[d], fx, nf);
        be->add(be, &ty, &tx);
        CHECK_REL(rd(&ty), fref, nf, dtypes[d], "add (flat)");
    }
    /* sumsq over sizes around its block size; the reference sums in long double */
    int64_t sizes[] = {1, 1000, 65536 * 3 + 7};
    for (int s = 0; s < 3; s++) {
        double *v = rnd(sizes[s], -1, 1);
        long double acc = 0;
        for (int64_t i = 0; i < sizes[s]; i++) acc += (long double)v[i] * v[i];
        for (int d = 0; d < 2; d++) {
            md_tensor_t t = mk1(dtypes[d], v, sizes[s]);
            double got = be->sumsq(be, &t);
            double want = (double)acc;
            if (dtypes[d] == MD_DTYPE_F32) {   /* the f32 inputs are rounded: sum their squares */
                long double a2 = 0;
                for (int64_t i = 0; i < sizes[s]; i++) a2 += (long double)(float)v[i] * (float)v[i];
                want = (double)a2;
            }
            snprintf(ctx, sizeof ctx, "sumsq %s n=%lld", md_dtype_name(dtypes[d]), (long long)sizes[s]);
            CHECK_NEAR(got, want, 1e-12, ctx);
        }
    }
    /* adamw: two steps against the formula of torch.optim.AdamW */
    int64_t na = 50, n_decay = 20;
    double *p = rnd(na, -1, 1), *g1 = rnd(na, -1, 1), *g2 = rnd(na, -1, 1);
    md_adamw_hparams_t hp = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                             .grad_scale = 0.5, .step = 1};
    double *pr = zeros(na), *mr = zeros(na), *vr = zeros(na);
    memcpy(pr, p, na * sizeof *p);
    for (int step = 1; step <= 2; step++) {
        const double *g = step == 1 ? g1 : g2;
        for (int64_t i = 0; i < na; i++) {
            double gi = g[i] * hp.grad_scale;
            if (i < n_decay) pr[i] *= 1 - hp.lr * hp.weight_decay;
            mr[i] = hp.beta1 * mr[i] + (1 - hp.beta1) * gi;
            vr[i] = hp.beta2 * vr[i] + (1 - hp.beta2) * gi * gi;
            double mh = mr[i] / (1 - pow(hp.beta1, step)), vh = vr[i] / (1 - pow(hp.beta2, step));
            pr[i] -= hp.lr * mh / (sqrt(vh) + hp.eps);
        }
    }
    for (int d = 0; d < 2; d++) {
        md_tensor_t tp = mk1(dtypes[d], p, na), tm = mk1(dtypes[d], zeros(na), na), tv = mk1(dtypes[d], zeros(na), na);
        md_tensor_t tg1 = mk1(dtypes[d], g1, na), tg2 = mk1(dtypes[d], g2, na);
        hp.step = 1;
        be->adamw(be, &tp, &tg1, &tm, &tv, n_decay, &hp);
        hp.step = 2;
        be->adamw(be, &tp, &tg2, &tm, &tv, n_decay, &hp);
        CHECK_REL(rd(&tp), pr, na, dtypes[d], "adamw params");
        CHECK_REL(rd(&tm), mr, na, dtypes[d], "adamw m");
        CHECK_REL(rd(&tv), vr, na, dtypes[d], "adamw v");
    }
}

/* ---- embedding ---- */

static void test_embedding(void)
{
    int64_t V = 16, D = 21, M = 45;
    uint8_t tok[45];
    for (int64_t i = 0; i < M; i++) tok[i] = (uint8_t)md_rng_below(&rng, (uint64_t)V);
    tok[3] = tok[4] = tok[40] = 9;   /* repeats must accumulate */
    double *w = rnd(V * D, -1, 1), *dout = rnd(M * D, -1, 1), *dw0 = rnd(V * D, -1, 1);
    double *ref = zeros(M * D), *dref = zeros(V * D);
    for (int64_t i = 0; i < M; i++)
        for (int64_t c = 0; c < D; c++) ref[i * D + c] = w[tok[i] * D + c];
    memcpy(dref, dw0, V * D * sizeof *dref);
    for (int64_t i = 0; i < M; i++)
        for (int64_t c = 0; c < D; c++) dref[tok[i] * D + c] += dout[i * D + c];
    md_tensor_t tt = tok_tensor(tok, M);
    for (int d = 0; d < 2; d++) {
        md_tensor_t tw = mk(dtypes[d], w, V, D, D), to = mk(dtypes[d], zeros(M * D), M, D, D + 4);
        be->embedding_fwd(be, &to, &tt, &tw);
        CHECK_REL(rd(&to), ref, M * D, dtypes[d], "embedding_fwd");
        md_tensor_t tdw = mk(dtypes[d], dw0, V, D, D), tdo = mk(dtypes[d], dout, M, D, D + 2);
        be->embedding_bwd(be, &tdw, &tdo, &tt);
        CHECK_REL(rd(&tdw), dref, V * D, dtypes[d], "embedding_bwd");
    }
}

/* ---- RMSNorm ---- */

static void test_rmsnorm(void)
{
    int64_t shapes[][2] = {{1, 3}, {5, 8}, {67, 33}};   /* D = 1 cancels catastrophically in f32 */
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], D = shapes[s][1];
        double eps = 1e-5;
        double *x = rnd(M * D, -2, 2), *w = rnd(D, 0.5, 1.5), *dy = rnd(M * D, -1, 1), *dx0 = rnd(M * D, -1, 1);
        double *dw0 = rnd(D, -1, 1);
        double *y = zeros(M * D), *r = zeros(M), *dx = zeros(M * D), *dw = zeros(D);
        memcpy(dw, dw0, D * sizeof *dw);
        for (int64_t i = 0; i < M; i++) {
            double ms = 0;
            for (int64_t c = 0; c < D; c++) ms += x[i * D + c] * x[i * D + c];
            r[i] = 1 / sqrt(ms / D + eps);
            for (int64_t c = 0; c < D; c++) y[i * D + c] = x[i * D + c] * r[i] * w[c];
            /* backward through the explicit Jacobian dy_a/dx_b */
            for (int64_t b = 0; b < D; b++) {
                double acc = 0;
                for (int64_t a = 0; a < D; a++) {
                    double J = w[a] * ((a == b ? r[i] : 0) - x[i * D + a] * x[i * D + b] * r[i] * r[i] * r[i] / D);
                    acc += dy[i * D + a] * J;
                }
                dx[i * D + b] = acc;
            }
            for (int64_t c = 0; c < D; c++) dw[c] += dy[i * D + c] * x[i * D + c] * r[i];
        }
        for (int d = 0; d < 2; d++) {
            md_tensor_t tx = mk(dtypes[d], x, M, D, D + 1), tw = mk1(dtypes[d], w, D);
            md_tensor_t ty = mk(dtypes[d], zeros(M * D), M, D, D + 2), tr = mk1(dtypes[d], zeros(M), M);
            be->rmsnorm_fwd(be, &ty, &tr, &tx, &tw, eps);
            snprintf(ctx, sizeof ctx, "(%lld x %lld)", (long long)M, (long long)D);
            CHECK_REL(rd(&ty), y, M * D, dtypes[d], "rmsnorm_fwd");
            CHECK_REL(rd(&tr), r, M, dtypes[d], "rmsnorm rstd");
            md_tensor_t tdy = mk(dtypes[d], dy, M, D, D + 3), tdw = mk1(dtypes[d], dw0, D);
            md_tensor_t tdx = mk(dtypes[d], zeros(M * D), M, D, D);
            be->rmsnorm_bwd(be, &tdx, &tdw, &tdy, &tx, &tw, &tr, 0, NULL);
            CHECK_REL(rd(&tdx), dx, M * D, dtypes[d], "rmsnorm_bwd dx");
            CHECK_REL(rd(&tdw), dw, D, dtypes[d], "rmsnorm_bwd dw");
            /* accumulate mode adds to what is there */
            md_tensor_t tdx2 = mk(dtypes[d], dx0, M, D, D + 1);
            double *sum = zeros(M * D);
            for (int64_t i = 0; i < M * D; i++) sum[i] = dx0[i] + dx[i];
            /* dx_act: a second copy of the final dx (same dtype on the CPU) */
            md_tensor_t tcopy = mk(dtypes[d], zeros(M * D), M, D, D + 2);
            be->rmsnorm_bwd(be, &tdx2, &tdw, &tdy, &tx, &tw, &tr, 1, &tcopy);
            CHECK_REL(rd(&tdx2), sum, M * D, dtypes[d], "rmsnorm_bwd accumulate");
            double *got = rd(&tdx2), *copy = rd(&tcopy);
            int same = 1;
            for (int64_t i = 0; i < M * D; i++) same &= got[i] == copy[i];
            CHECK(same, "rmsnorm_bwd's dx_act differs from dx %s", ctx);
            CHECK(padding_intact(&tcopy), "rmsnorm_bwd wrote into dx_act's padding");
        }
    }
}

/* The fused residual add + RMSNorm: against the reference directly, in
 * each aliasing the op allows (h_out a third buffer, h_in, or x_add), and
 * bit for bit against add then rmsnorm_fwd, its documented equivalent.
 * The large shape runs the rows over threads. */
static void test_add_rmsnorm(void)
{
    int64_t shapes[][2] = {{1, 3}, {5, 8}, {67, 33}, {600, 64}};
    for (int s = 0; s < 4; s++) {
        int64_t M = shapes[s][0], D = shapes[s][1];
        double eps = 1e-5;
        double *hin = rnd(M * D, -2, 2), *xa = rnd(M * D, -1, 1), *w = rnd(D, 0.5, 1.5);
        double *h = zeros(M * D), *y = zeros(M * D), *r = zeros(M);
        for (int64_t i = 0; i < M; i++) {
            double ms = 0;
            for (int64_t c = 0; c < D; c++) {
                h[i * D + c] = hin[i * D + c] + xa[i * D + c];
                ms += h[i * D + c] * h[i * D + c];
            }
            r[i] = 1 / sqrt(ms / D + eps);
            for (int64_t c = 0; c < D; c++) y[i * D + c] = h[i * D + c] * r[i] * w[c];
        }
        for (int d = 0; d < 2; d++)
            for (int alias = 0; alias < 3; alias++) {   /* h_out: its own buffer, h_in, x_add */
                md_tensor_t th = mk(dtypes[d], zeros(M * D), M, D, D + 2);
                md_tensor_t ti = mk(dtypes[d], hin, M, D, D + 1), ta = mk(dtypes[d], xa, M, D, D + 3);
                md_tensor_t tw = mk1(dtypes[d], w, D), tr = mk1(dtypes[d], zeros(M), M);
                md_tensor_t ty = mk(dtypes[d], zeros(M * D), M, D, D + 1);
                md_tensor_t *out = alias == 0 ? &th : alias == 1 ? &ti : &ta;
                be->add_rmsnorm_fwd(be, out, &ty, &tr, &ti, &ta, &tw, eps);
                snprintf(ctx, sizeof ctx, "(%lld x %lld, h_out %s)", (long long)M, (long long)D,
                         alias == 0 ? "separate" : alias == 1 ? "= h_in" : "= x_add");
                CHECK_REL(rd(out), h, M * D, dtypes[d], "add_rmsnorm_fwd h_out");
                CHECK_REL(rd(&ty), y, M * D, dtypes[d], "add_rmsnorm_fwd y");
                CHECK_REL(rd(&tr), r, M, dtypes[d], "add_rmsnorm_fwd rstd");
                CHECK(padding_intact(out) && padding_intact(&ty), "add_rmsnorm_fwd %s wrote into row padding", ctx);
                /* the unfused pair, on fresh copies */
                md_tensor_t ui = mk(dtypes[d], hin, M, D, D), ua = mk(dtypes[d], xa, M, D, D);
                md_tensor_t uy = mk(dtypes[d], zeros(M * D), M, D, D), ur = mk1(dtypes[d], zeros(M), M);
                be->add(be, &ui, &ua);
                be->rmsnorm_fwd(be, &uy, &ur, &ui, &tw, eps);
                double *gh = rd(out), *gy = rd(&ty), *gr = rd(&tr), *eh = rd(&ui), *ey = rd(&uy), *er = rd(&ur);
                CHECK(!memcmp(gh, eh, (size_t)(M * D) * sizeof(double)) &&
                          !memcmp(gy, ey, (size_t)(M * D) * sizeof(double)) &&
                          !memcmp(gr, er, (size_t)M * sizeof(double)),
                      "%s add_rmsnorm_fwd %s: not the bits of add then rmsnorm_fwd", md_dtype_name(dtypes[d]), ctx);
            }
    }
}

/* ---- conv1d + SiLU ---- */

static double silu(double x) { return x / (1 + exp(-x)); }
static double dsilu(double x)
{
    double s = 1 / (1 + exp(-x));
    return s * (1 + x * (1 - s));
}

static void test_conv(void)
{
    int64_t shapes[][4] = {{1, 1, 3, 4}, {2, 7, 16, 4}, {3, 33, 70, 4}, {2, 5, 9, 2}};   /* B, L, E, K */
    for (int s = 0; s < 4; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], E = shapes[s][2], K = shapes[s][3], M = B * L;
        double *x = rnd(M * E, -2, 2), *w = rnd(E * K, -1, 1), *bias = rnd(E, -0.5, 0.5), *dy = rnd(M * E, -1, 1);
        double *dw0 = rnd(E * K, -1, 1), *db0 = rnd(E, -1, 1);
        double *y = zeros(M * E), *pre = zeros(M * E), *dx = zeros(M * E), *dw = zeros(E * K), *db = zeros(E);
        memcpy(dw, dw0, E * K * sizeof *dw);
        memcpy(db, db0, E * sizeof *db);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < L; t++)
                for (int64_t e = 0; e < E; e++) {
                    double acc = bias[e];
                    for (int64_t k = 0; k < K; k++) {
                        int64_t tt = t - (K - 1) + k;
                        if (tt >= 0) acc += w[e * K + k] * x[(b * L + tt) * E + e];
                    }
                    pre[(b * L + t) * E + e] = acc;
                    y[(b * L + t) * E + e] = silu(acc);
                }
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < L; t++)
                for (int64_t e = 0; e < E; e++) {
                    double dp = dy[(b * L + t) * E + e] * dsilu(pre[(b * L + t) * E + e]);
                    db[e] += dp;
                    for (int64_t k = 0; k < K; k++) {
                        int64_t tt = t - (K - 1) + k;
                        if (tt < 0) continue;
                        dw[e * K + k] += dp * x[(b * L + tt) * E + e];
                        dx[(b * L + tt) * E + e] += dp * w[e * K + k];
                    }
                }
        for (int d = 0; d < 2; d++) {
            md_tensor_t tx = mk(dtypes[d], x, M, E, 2 * E), tw = mk(dtypes[d], w, E, K, K), tb = mk1(dtypes[d], bias, E);
            md_tensor_t ty = mk(dtypes[d], zeros(M * E), M, E, E + 1);
            be->conv1d_silu_fwd(be, &ty, &tx, &tw, &tb, B);
            snprintf(ctx, sizeof ctx, "(B %lld L %lld E %lld K %lld)", (long long)B, (long long)L, (long long)E,
                     (long long)K);
            CHECK_REL(rd(&ty), y, M * E, dtypes[d], "conv1d_silu_fwd");
            CHECK(padding_intact(&ty), "conv fwd wrote into the padding");
            md_tensor_t tdy = mk(dtypes[d], dy, M, E, E), tdx = mk(dtypes[d], rnd(M * E, 5, 6), M, E, 2 * E);
            md_tensor_t tdw = mk(dtypes[d], dw0, E, K, K), tdb = mk1(dtypes[d], db0, E);
            be->conv1d_silu_bwd(be, &tdx, &tdw, &tdb, &tdy, &tx, &tw, &tb, B);
            CHECK_REL(rd(&tdx), dx, M * E, dtypes[d], "conv1d_silu_bwd dx");
            CHECK_REL(rd(&tdw), dw, E * K, dtypes[d], "conv1d_silu_bwd dw");
            CHECK_REL(rd(&tdb), db, E, dtypes[d], "conv1d_silu_bwd dbias");
            CHECK(padding_intact(&tdx), "conv bwd wrote into the padding");
        }
    }
}

/* ---- the selective scan ---- */

static double softplus(double x) { return x > 20 ? x : log1p(exp(x)); }
static double sigm(double x) { return 1 / (1 + exp(-x)); }

typedef struct {
    int64_t B, L, E, N;
    double *u, *delta, *bias, *A_log, *Bm, *Cm, *D, *z, *dy;
} scan_in_t;

/* y, and the gradients by backpropagation through all stored states. */
static void scan_reference(const scan_in_t *in, double *y, double *du, double *ddelta, double *dA_log, double *dB,
                           double *dC, double *dD, double *dz, double *dbias)
{
    int64_t B = in->B, L = in->L, E = in->E, N = in->N;
    double *h = zeros((L + 1) * N), *dtv = zeros(L), *dh = zeros(N);
    memset(dB, 0, B * L * N * sizeof *dB);
    memset(dC, 0, B * L * N * sizeof *dC);
    for (int64_t b = 0; b < B; b++)
        for (int64_t e = 0; e < E; e++) {
            /* forward, h[t+1] is the state after step t */
            memset(h, 0, N * sizeof *h);
            for (int64_t t = 0; t < L; t++) {
                int64_t i = (b * L + t) * E + e;
                double dt = softplus(in->delta[i] + in->bias[e]);
                dtv[t] = dt;
                double acc = in->D[e] * in->u[i];
                for (int64_t n = 0; n < N; n++) {
                    double A = -exp(in->A_log[e * N + n]);
                    h[(t + 1) * N + n] = exp(dt * A) * h[t * N + n] + dt * in->Bm[(b * L + t) * N + n] * in->u[i];
                    acc += in->Cm[(b * L + t) * N + n] * h[(t + 1) * N + n];
                }
                y[i] = acc * silu(in->z[i]);
            }
            /* backward */
            memset(dh, 0, N * sizeof *dh);
            for (int64_t t = L - 1; t >= 0; t--) {
                int64_t i = (b * L + t) * E + e;
                double dt = dtv[t], uu = in->u[i], zz = in->z[i];
                double ys = in->D[e] * uu;
                for (int64_t n = 0; n < N; n++) ys += in->Cm[(b * L + t) * N + n] * h[(t + 1) * N + n];
                dz[i] = in->dy[i] * ys * dsilu(zz);
                double dys = in->dy[i] * silu(zz);
                dD[e] += dys * uu;
                double dui = dys * in->D[e], ddt = 0;
                for (int64_t n = 0; n < N; n++) {
                    double A = -exp(in->A_log[e * N + n]);
                    double Bn = in->Bm[(b * L + t) * N + n], Cn = in->Cm[(b * L + t) * N + n];
                    dC[(b * L + t) * N + n] += dys * h[(t + 1) * N + n];
                    dh[n] += dys * Cn;   /* now dL/dh_t in full */
                    double a = exp(dt * A);
                    ddt += dh[n] * (A * a * h[t * N + n] + Bn * uu);
                    dA_log[e * N + n] += dh[n] * dt * a * h[t * N + n] * A;
                    dB[(b * L + t) * N + n] += dh[n] * dt * uu;
                    dui += dh[n] * dt * Bn;
                    dh[n] *= a;          /* carried to step t-1 */
                }
                du[i] = dui;
                double x = in->delta[i] + in->bias[e];
                ddelta[i] = ddt * (x > 20 ? 1 : sigm(x));
                dbias[e] += ddelta[i];
            }
        }
}

static void test_scan(void)
{
    int64_t shapes[][4] = {{1, 1, 3, 2}, {2, 7, 16, 4}, {3, 33, 37, 16}, {2, 101, 20, 5}, {1, 50, 8, 64}};
    for (int s = 0; s < 5; s++) {
        scan_in_t in;
        memset(&in, 0, sizeof in);
        in.B = shapes[s][0], in.L = shapes[s][1], in.E = shapes[s][2], in.N = shapes[s][3];
        int64_t M = in.B * in.L, E = in.E, N = in.N;
        in.u = rnd(M * E, -1, 1);
        in.delta = rnd(M * E, -3, 1);
        in.bias = rnd(E, -2, 0);
        in.A_log = rnd(E * N, -1, 2);
        in.Bm = rnd(M * N, -1, 1);
        in.Cm = rnd(M * N, -1, 1);
        in.D = rnd(E, 0.5, 1.5);
        in.z = rnd(M * E, -2, 2);
        in.dy = rnd(M * E, -1, 1);
        in.delta[0] = 25;   /* the softplus threshold branch */
        double *y = zeros(M * E), *du = zeros(M * E), *dd = zeros(M * E), *dA = rnd(E * N, -1, 1), *dB = zeros(M * N);
        double *dC = zeros(M * N), *dD = rnd(E, -1, 1), *dz = zeros(M * E), *dbias = rnd(E, -1, 1);
        double *dA0 = zeros(E * N), *dD0 = zeros(E), *dbias0 = zeros(E);
        memcpy(dA0, dA, E * N * sizeof *dA);
        memcpy(dD0, dD, E * sizeof *dD);
        memcpy(dbias0, dbias, E * sizeof *dbias);
        scan_reference(&in, y, du, dd, dA, dB, dC, dD, dz, dbias);
        for (int d = 0; d < 2; d++) {
            md_dtype_t dt = dtypes[d];
            int64_t X = 3 + 2 * N;   /* B and C inside a wider matrix, as x_proj's output */
            double *xdbl = zeros(M * X);
            for (int64_t i = 0; i < M; i++)
                for (int64_t n = 0; n < N; n++) {
                    xdbl[i * X + 3 + n] = in.Bm[i * N + n];
                    xdbl[i * X + 3 + N + n] = in.Cm[i * N + n];
                }
            md_tensor_t txd = mk(dt, xdbl, M, X, X);
            md_tensor_t tB = md_tensor_cols(txd, 3, N), tC = md_tensor_cols(txd, 3 + N, N);
            md_tensor_t tu = mk(dt, in.u, M, E, E + 7), tdl = mk(dt, in.delta, M, E, E);
            md_tensor_t tbias = mk1(dt, in.bias, E), tA = mk(dt, in.A_log, E, N, N), tD = mk1(dt, in.D, E);
            md_tensor_t tz = mk(dt, in.z, M, E, 2 * E), ty = mk(dt, zeros(M * E), M, E, E + 1);
            void *states = keep(malloc(be->scan_states_size(be, dt, in.B, in.L, E, N)));
            be->scan_fwd(be, &ty, &tu, &tdl, NULL, NULL, &tbias, &tA, &tB, &tC, &tD, &tz, in.B, states, NULL);
            snprintf(ctx, sizeof ctx, "(B %lld L %lld E %lld N %lld)", (long long)in.B, (long long)in.L, (long long)E,
                     (long long)N);
            CHECK_REL(rd(&ty), y, M * E, dt, "scan_fwd");
            CHECK(padding_intact(&ty), "scan_fwd wrote into the padding");

            size_t wsb = be->scan_bwd_workspace(be, dt, in.B, in.L, E, N);
            void *ws = keep(malloc(wsb));
            /* with the forward's saved states, and recomputing them itself */
            for (int use_states = 1; use_states >= 0; use_states--) {
                snprintf(ctx, sizeof ctx, "(B %lld L %lld E %lld N %lld, %s)", (long long)in.B, (long long)in.L,
                         (long long)E, (long long)N, use_states ? "saved states" : "recomputed states");
                md_tensor_t tdy = mk(dt, in.dy, M, E, E + 2), tdu = mk(dt, zeros(M * E), M, E, E + 1);
                md_tensor_t tdd = mk(dt, zeros(M * E), M, E, E), tdz = mk(dt, zeros(M * E), M, E, 2 * E);
                md_tensor_t tdxd = mk(dt, zeros(M * X), M, X, X);
                md_tensor_t tdB = md_tensor_cols(tdxd, 3, N), tdC = md_tensor_cols(tdxd, 3 + N, N);
                md_tensor_t tdA = mk(dt, dA0, E, N, N), tdD = mk1(dt, dD0, E), tdbias = mk1(dt, dbias0, E);
                be->scan_bwd(be, &tdu, &tdd, &tdA, &tdB, &tdC, &tdD, &tdz, &tdbias, NULL, &tdy, &tu, &tdl, NULL, NULL,
                             &tbias, &tA, &tB,
                             &tC, &tD, &tz, in.B, use_states ? states : NULL, NULL, ws);
                CHECK_REL(rd(&tdu), du, M * E, dt, "scan_bwd du");
                CHECK_REL(rd(&tdd), dd, M * E, dt, "scan_bwd ddelta");
                CHECK_REL(rd(&tdz), dz, M * E, dt, "scan_bwd dz");
                CHECK_REL(rd(&tdB), dB, M * N, dt, "scan_bwd dB");
                CHECK_REL(rd(&tdC), dC, M * N, dt, "scan_bwd dC");
                CHECK_REL(rd(&tdA), dA, E * N, dt, "scan_bwd dA_log (accumulated)");
                CHECK_REL(rd(&tdD), dD, E, dt, "scan_bwd dD (accumulated)");
                CHECK_REL(rd(&tdbias), dbias, E, dt, "scan_bwd ddt_bias (accumulated)");
                CHECK(padding_intact(&tdu) && padding_intact(&tdz), "scan_bwd wrote into the padding");
                /* columns 0..2 of dxdbl (dt's part) are not the scan's to write */
                md_tensor_t whole = md_tensor_2d(tdxd.data, dt, MD_DEVICE_CPU, M, X);
                double *dx_all = rd(&whole);
                int untouched = 1;
                for (int64_t i = 0; i < M; i++)
                    for (int c = 0; c < 3; c++) untouched &= dx_all[i * X + c] == 0;
                CHECK(untouched, "scan_bwd wrote outside dB and dC");
            }
        }
    }
}

/* ---- cross-entropy ---- */

static void test_xent(void)
{
    int64_t M = 29, V = 16;
    double *l = rnd(M * V, -4, 4);
    uint8_t tgt[29];
    for (int64_t i = 0; i < M; i++) tgt[i] = (uint8_t)(MD_TOK_A + md_rng_below(&rng, 4));
    tgt[2] = MD_TOK_N;
    tgt[5] = MD_TOK_PAD;
    tgt[6] = MD_TOK_CLS;
    tgt[11] = MD_TOK_N;
    l[7 * V + 3] = 300;   /* a large logit must not overflow */
    double ref = 0, scale = 0.3;
    int64_t cnt = 0;
    double *dref = zeros(M * V);
    for (int64_t i = 0; i < M; i++) {
        if (!md_tok_is_base(tgt[i])) continue;
        double mx = -1e300, se = 0;
        for (int64_t v = 0; v < V; v++) mx = fmax(mx, l[i * V + v]);
        for (int64_t v = 0; v < V; v++) se += exp(l[i * V + v] - mx);
        ref += mx + log(se) - l[i * V + tgt[i]];
        cnt++;
        for (int64_t v = 0; v < V; v++) dref[i * V + v] = scale * (exp(l[i * V + v] - mx) / se - (v == tgt[i]));
    }
    md_tensor_t tt = tok_tensor(tgt, M);
    for (int d = 0; d < 2; d++) {
        md_tensor_t tl = mk(dtypes[d], l, M, V, V), tdl = mk(dtypes[d], rnd(M * V, 5, 6), M, V, V + 1);
        void *ws = keep(malloc(be->xent_workspace(be, M)));
        int64_t n = -1;
        double loss = be->xent(be, &tdl, &tl, &tt, scale, &n, ws);
        CHECK(n == cnt, "xent counted %lld targets, expected %lld", (long long)n, (long long)cnt);
        CHECK_NEAR(loss, ref, dtypes[d] == MD_DTYPE_F64 ? 1e-12 : 1e-6, md_dtype_name(dtypes[d]));
        CHECK_REL(rd(&tdl), dref, M * V, dtypes[d], "xent dlogits");
        int64_t n2 = -1;
        double loss2 = be->xent(be, NULL, &tl, &tt, scale, &n2, ws);
        CHECK(loss2 == loss && n2 == n, "xent without gradient differs");
        /* xent_acc adds the same sum and count to what acc holds, in
         * double: twice onto a start of 1.25 and 3 */
        double acc[2] = {1.25, 3}, want0 = (1.25 + loss) + loss, want1 = 3 + 2 * (double)n;
        be->xent_acc(be, &tdl, &tl, &tt, scale, acc, ws);
        be->xent_acc(be, NULL, &tl, &tt, scale, acc, ws);
        CHECK(acc[0] == want0 && acc[1] == want1, "xent_acc: %.17g, %g; expected %.17g, %g", acc[0], acc[1], want0,
              want1);
        CHECK_REL(rd(&tdl), dref, M * V, dtypes[d], "xent_acc dlogits");
    }
}

/* ---- thread-count independence of the reductions ---- */

static void test_threads(void)
{
    int64_t B = 2, L = 45, E = 40, N = 16, M = B * L;
    double *u = rnd(M * E, -1, 1), *dl = rnd(M * E, -3, 1), *bias = rnd(E, -2, 0), *A = rnd(E * N, 0, 2);
    double *Bm = rnd(M * N, -1, 1), *Cm = rnd(M * N, -1, 1), *D = rnd(E, 0, 1), *z = rnd(M * E, -1, 1);
    double *dy = rnd(M * E, -1, 1);
    float *res[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run == 0 ? 1 : 2);
        md_dtype_t dt = MD_DTYPE_F32;
        md_tensor_t tu = mk(dt, u, M, E, E), tdl = mk(dt, dl, M, E, E), tb = mk1(dt, bias, E), tA = mk(dt, A, E, N, N);
        md_tensor_t tB = mk(dt, Bm, M, N, N), tC = mk(dt, Cm, M, N, N), tD = mk1(dt, D, E), tz = mk(dt, z, M, E, E);
        md_tensor_t tdy = mk(dt, dy, M, E, E);
        md_tensor_t o[8] = {mk(dt, zeros(M * E), M, E, E), mk(dt, zeros(M * E), M, E, E), mk(dt, zeros(E * N), E, N, N),
                            mk(dt, zeros(M * N), M, N, N), mk(dt, zeros(M * N), M, N, N), mk1(dt, zeros(E), E),
                            mk(dt, zeros(M * E), M, E, E), mk1(dt, zeros(E), E)};
        void *ws = keep(malloc(be->scan_bwd_workspace(be, dt, B, L, E, N)));
        be->scan_bwd(be, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], NULL, &tdy, &tu, &tdl, NULL, NULL, &tb, &tA,
                     &tB, &tC,
                     &tD, &tz, B, NULL, NULL, ws);
        res[run] = keep(malloc((size_t)(E * N + 2 * E) * sizeof(float)));
        memcpy(res[run], o[2].data, E * N * sizeof(float));
        memcpy(res[run] + E * N, o[5].data, E * sizeof(float));
        memcpy(res[run] + E * N + E, o[7].data, E * sizeof(float));
    }
    omp_set_num_threads(2);
    CHECK(!memcmp(res[0], res[1], (size_t)(E * N + 2 * E) * sizeof(float)),
          "scan_bwd parameter gradients differ between 1 and 2 threads");
}

/* ---- the vectorisable f32 math against libm in double ---- */

static void test_math(void)
{
    double worst_exp = 0, worst_sp = 0, worst_sig = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = (float)(-87.0 + 87.0 * i / 200000.0);
        double e = exp((double)x);
        worst_exp = fmax(worst_exp, fabs(md_expf_neg(x) - e) / e);
        float y = (float)(-30.0 + 60.0 * i / 200000.0);
        double sp = y > 20 ? y : log1p(exp((double)y)), sg = 1 / (1 + exp(-(double)y));
        worst_sp = fmax(worst_sp, fabs(md_softplusf(y) - sp) / sp);
        worst_sig = fmax(worst_sig, fabs(md_sigmoidf(y) - sg) / sg);
    }
    CHECK(worst_exp < 3e-7, "md_expf_neg relative error %.3g", worst_exp);
    CHECK(worst_sp < 1e-6, "md_softplusf relative error %.3g", worst_sp);
    CHECK(worst_sig < 1e-6, "md_sigmoidf relative error %.3g", worst_sig);
    printf("f32 math: max relative error exp %.2e, softplus %.2e, sigmoid %.2e\n", worst_exp, worst_sp, worst_sig);
}

int main(void)
{
    be = md_backend_cpu();
    md_rng_seed(&rng, 12345);
    test_math();
    test_gemm();
    test_elementwise();
    test_embedding();
    test_rmsnorm();
    test_add_rmsnorm();
    test_conv();
    test_scan();
    test_xent();
    test_threads();
    free_all();
    return md_test_done();
}
