/* The Transformer ops of the CPU backend against direct double-precision
 * formulas: causal attention (forward and backward) against a naive
 * softmax(q k^T scale + causal mask) v that forms the full matrix, for
 * L = 1, odd L, L not a multiple of the 64-query or 256-key tiles, one and
 * several key tiles, several heads,
 * batch > 1 and row-strided q/k/v (column slices of one projection);
 * RoPE against the rotate_half formula and its inverse; SwiGLU forward and
 * backward. Each in f64 (tight) and f32 (against the same reference, so f32
 * and f64 agree), and the f32 attention bit for bit with 1 and 2 threads. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "testutil.h"
#include "util/log.h"
#include "util/rng.h"

static const md_backend_t *be;
static md_rng_t rng;

static double *rnd(int64_t n, double lo, double hi)
{
    double *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * md_rng_uniform(&rng);
    return x;
}

/* A buffer of n values in dtype dt, from doubles. */
static void *as_dtype(const double *x, int64_t n, md_dtype_t dt)
{
    if (dt == MD_DTYPE_F64) {
        double *y = malloc((size_t)n * sizeof *y);
        memcpy(y, x, (size_t)n * sizeof *y);
        return y;
    }
    float *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static double get(const void *p, md_dtype_t dt, int64_t i)
{
    return dt == MD_DTYPE_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* ---- naive attention, full matrix, double ----
 * q, k, v, o: (B*L, ld) with head h at columns [h dh, (h+1) dh). */
static void naive_attention(double *o, double *lse, const double *q, const double *k, const double *v, int64_t ld,
                            int64_t B, int64_t L, int64_t H, int64_t dh, double scale)
{
    double *s = malloc((size_t)L * sizeof *s);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < L; t++) {
                const double *qt = q + (b * L + t) * ld + h * dh;
                double mx = -INFINITY;
                for (int64_t j = 0; j <= t; j++) {
                    const double *kj = k + (b * L + j) * ld + h * dh;
                    double acc = 0;
                    for (int64_t c = 0; c < dh; c++) acc += qt[c] * kj[c];
                    s[j] = acc * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j <= t; j++) sum += exp(s[j] - mx);
                double *ot = o + (b * L + t) * ld + h * dh;
                for (int64_t c = 0; c < dh; c++) ot[c] = 0;
                for (int64_t j = 0; j <= t; j++) {
                    double p = exp(s[j] - mx) / sum;
                    const double *vj = v + (b * L + j) * ld + h * dh;
                    for (int64_t c = 0; c < dh; c++) ot[c] += p * vj[c];
                }
                lse[(b * H + h) * L + t] = mx + log(sum);
            }
    free(s);
}

/* The backward of the naive attention, by the softmax Jacobian. */
static void naive_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q,
                                const double *k, const double *v, int64_t ld, int64_t B, int64_t L, int64_t H,
                                int64_t dh, double scale)
{
    double *p = malloc((size_t)L * sizeof *p), *dp = malloc((size_t)L * sizeof *dp);
    memset(dq, 0, (size_t)(B * L * ld) * sizeof *dq);
    memset(dk, 0, (size_t)(B * L * ld) * sizeof *dk);
    memset(dv, 0, (size_t)(B * L * ld) * sizeof *dv);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < L; t++) {
                int64_t rt = (b * L + t) * ld + h * dh;
                double mx = -INFINITY;
                for (int64_t j = 0; j <= t; j++) {
                    int64_t rj = (b * L + j) * ld + h * dh;
                    double acc = 0;
                    for (int64_t c = 0; c < dh; c++) acc += q[rt + c] * k[rj + c];
                    p[j] = acc * scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0;
                for (int64_t j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                double pdp = 0;
                for (int64_t j = 0; j <= t; j++) {
                    int64_t rj = (b * L + j) * ld + h * dh;
                    p[j] /= sum;
                    double acc = 0;
                    for (int64_t c = 0; c < dh; c++) acc += dout[rt + c] * v[rj + c], dv[rj + c] += p[j] * dout[rt + c];
                    dp[j] = acc;
                    pdp += p[j] * acc;
                }
                for (int64_t j = 0; j <= t; j++) {
                    int64_t rj = (b * L + j) * ld + h * dh;
                    double ds = p[j] * (dp[j] - pdp) * scale;
                    for (int64_t c = 0; c < dh; c++) dq[rt + c] += ds * k[rj + c], dk[rj + c] += ds * q[rt + c];
                }
            }
    free(p), free(dp);
}

/* Largest error of got's columns [c0, c0 + cols) against want's [0, cols),
 * relative to want's largest magnitude (at least 0.01: with one key the
 * gradients of q and k are exactly 0); both have row stride ld. */
static double max_rel(const void *got, md_dtype_t dt, const double *want, int64_t rows, int64_t cols, int64_t ld,
                      int64_t c0)
{
    double worst = 0, scale = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) scale = fmax(scale, fabs(want[r * ld + c]));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double e = fabs(get(got, dt, r * ld + c0 + c) - want[r * ld + c]) / fmax(scale, 1e-2);
            if (e > worst) worst = e;
        }
    return worst;
}

/* q, k, v as column slices of one (B*L, 3 H dh) matrix, as the model has them. */
static void check_attention(int64_t B, int64_t L, int64_t H, int64_t dh, md_dtype_t dt)
{
    int64_t d = H * dh, ld = 3 * d, M = B * L;
    double scale = 1.0 / sqrt((double)dh);
    double *qkv = rnd(M * ld, -1.5, 1.5), *dout = rnd(M * ld, -1, 1);
    /* the reference takes the inputs as the op sees them (rounded to f32) */
    void *qkv_d = as_dtype(qkv, M * ld, dt), *dout_d = as_dtype(dout, M * ld, dt);
    for (int64_t i = 0; i < M * ld; i++) qkv[i] = get(qkv_d, dt, i), dout[i] = get(dout_d, dt, i);
    double *ref_o = calloc((size_t)(M * ld), sizeof *ref_o), *ref_lse = malloc((size_t)(B * H * L) * sizeof *ref_lse);
    naive_attention(ref_o, ref_lse, qkv, qkv + d, qkv + 2 * d, ld, B, L, H, dh, scale);
    double *rdq = malloc((size_t)(M * ld) * sizeof *rdq), *rdk = malloc((size_t)(M * ld) * sizeof *rdk);
    double *rdv = malloc((size_t)(M * ld) * sizeof *rdv);
    naive_attention_bwd(rdq, rdk, rdv, dout, qkv, qkv + d, qkv + 2 * d, ld, B, L, H, dh, scale);

    size_t es = md_dtype_size(dt);
    char *o = calloc((size_t)(M * ld), es), *lse = calloc((size_t)(B * H * L), es), *dqkv = calloc((size_t)(M * ld), es);
    md_tensor_t tqkv = md_tensor_2d(qkv_d, dt, MD_DEVICE_CPU, M, ld), to = md_tensor_2d(o, dt, MD_DEVICE_CPU, M, ld);
    md_tensor_t tdo = md_tensor_2d(dout_d, dt, MD_DEVICE_CPU, M, ld), tdqkv = md_tensor_2d(dqkv, dt, MD_DEVICE_CPU, M, ld);
    md_tensor_t q = md_tensor_cols(tqkv, 0, d), k = md_tensor_cols(tqkv, d, d), v = md_tensor_cols(tqkv, 2 * d, d);
    md_tensor_t oo = md_tensor_cols(to, 0, d), dd = md_tensor_cols(tdo, 0, d);
    md_tensor_t dq = md_tensor_cols(tdqkv, 0, d), dk = md_tensor_cols(tdqkv, d, d), dv = md_tensor_cols(tdqkv, 2 * d, d);
    md_tensor_t tl = md_tensor_1d(lse, dt, MD_DEVICE_CPU, B * H * L);
    void *ws = malloc(be->attention_workspace(be, dt, B, L, H, dh) + 1);
    be->attention_fwd(be, &oo, &tl, &q, &k, &v, B, H, scale, ws);
    be->attention_bwd(be, &dq, &dk, &dv, &dd, &q, &k, &v, &oo, &tl, B, H, scale, ws);

    /* f32: the reference's inputs are exact, so this is the f32 op's own error */
    double tol = dt == MD_DTYPE_F64 ? 1e-12 : 2e-5;
    double eo = max_rel(o, dt, ref_o, M, d, ld, 0), el = 0;
    for (int64_t i = 0; i < B * H * L; i++) el = fmax(el, fabs(get(lse, dt, i) - ref_lse[i]) / (1 + fabs(ref_lse[i])));
    double eq = max_rel(dqkv, dt, rdq, M, d, ld, 0), ek = max_rel(dqkv, dt, rdk, M, d, ld, d);
    double ev = max_rel(dqkv, dt, rdv, M, d, ld, 2 * d);
    const char *tn = md_dtype_name(dt);
    CHECK(eo < tol, "%s attention B %lld L %lld H %lld dh %lld: output error %.3g", tn, (long long)B, (long long)L,
          (long long)H, (long long)dh, eo);
    CHECK(el < tol, "%s attention L %lld: lse error %.3g", tn, (long long)L, el);
    CHECK(eq < 5 * tol && ek < 5 * tol && ev < 5 * tol, "%s attention bwd B %lld L %lld H %lld: dq %.3g dk %.3g dv %.3g",
          tn, (long long)B, (long long)L, (long long)H, eq, ek, ev);
    printf("attention %s B %lld L %4lld H %lld dh %3lld: o %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n", tn, (long long)B,
           (long long)L, (long long)H, (long long)dh, eo, el, eq, ek, ev);
    free(qkv), free(dout), free(qkv_d), free(dout_d), free(ref_o), free(ref_lse), free(rdq), free(rdk), free(rdv);
    free(o), free(lse), free(dqkv), free(ws);
}

/* The f32 attention, forward and backward, is bit-identical on 1 and 2 threads. */
static void check_attention_threads(void)
{
    int64_t B = 2, L = 150, H = 3, dh = 16, d = H * dh, M = B * L;
    double *x = rnd(4 * M * d, -1, 1);
    float *in = as_dtype(x, 4 * M * d, MD_DTYPE_F32);
    float *out[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        out[run] = calloc((size_t)(4 * M * d + B * H * L), sizeof(float));
        float *o = out[run], *lse = o + M * d, *dq = lse + B * H * L, *dk = dq + M * d, *dv = dk + M * d;
        md_tensor_t q = md_tensor_2d(in, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t k = md_tensor_2d(in + M * d, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t v = md_tensor_2d(in + 2 * M * d, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t dd = md_tensor_2d(in + 3 * M * d, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t to = md_tensor_2d(o, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t tl = md_tensor_1d(lse, MD_DTYPE_F32, MD_DEVICE_CPU, B * H * L);
        md_tensor_t tq = md_tensor_2d(dq, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t tk = md_tensor_2d(dk, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        md_tensor_t tv = md_tensor_2d(dv, MD_DTYPE_F32, MD_DEVICE_CPU, M, d);
        float ws[2 * 3 * 150];
        be->attention_fwd(be, &to, &tl, &q, &k, &v, B, H, 0.25, ws);
        be->attention_bwd(be, &tq, &tk, &tv, &dd, &q, &k, &v, &to, &tl, B, H, 0.25, ws);
    }
    omp_set_num_threads(2);
    CHECK(!memcmp(out[0], out[1], (size_t)(4 * M * d + B * H * L) * sizeof(float)),
          "f32 attention differs between 1 and 2 threads");
    free(x), free(in), free(out[0]), free(out[1]);
}

/* ---- RoPE ---- */

static void check_rope(md_dtype_t dt)
{
    int64_t B = 2, L = 37, H = 3, dh = 8, half = dh / 2, ld = H * dh + 5, M = B * L;
    double theta = 10000;
    double *x = rnd(M * ld, -2, 2);
    void *xd = as_dtype(x, M * ld, dt);
    for (int64_t i = 0; i < M * ld; i++) x[i] = get(xd, dt, i);
    md_tensor_t t = md_tensor_cols(md_tensor_2d(xd, dt, MD_DEVICE_CPU, M, ld), 0, H * dh);
    be->rope(be, &t, B, H, theta, 0);
    double err = 0, untouched = 1;
    for (int64_t r = 0; r < M; r++) {
        double pos = (double)(r % L);
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < half; i++) {
                double a = pos / pow(theta, 2.0 * i / dh);
                double x1 = x[r * ld + h * dh + i], x2 = x[r * ld + h * dh + i + half];
                double y1 = x1 * cos(a) - x2 * sin(a), y2 = x2 * cos(a) + x1 * sin(a);
                err = fmax(err, fabs(get(xd, dt, r * ld + h * dh + i) - y1));
                err = fmax(err, fabs(get(xd, dt, r * ld + h * dh + i + half) - y2));
            }
        for (int64_t c = H * dh; c < ld; c++) untouched = untouched && get(xd, dt, r * ld + c) == x[r * ld + c];
    }
    /* f32 forms the angle in float as transformers does: ~1e-7 * pos off */
    double tol = dt == MD_DTYPE_F64 ? 1e-12 : 2e-5;
    CHECK(err < tol, "%s rope vs the rotate_half formula: error %.3g", md_dtype_name(dt), err);
    CHECK(untouched, "%s rope wrote outside its columns", md_dtype_name(dt));
    be->rope(be, &t, B, H, theta, 1);
    double back = 0;
    for (int64_t r = 0; r < M; r++)
        for (int64_t c = 0; c < H * dh; c++) back = fmax(back, fabs(get(xd, dt, r * ld + c) - x[r * ld + c]));
    CHECK(back < (dt == MD_DTYPE_F64 ? 1e-13 : 2e-6), "%s rope inverse does not undo it: %.3g", md_dtype_name(dt),
          back);
    printf("rope %s: error %.1e, inverse %.1e\n", md_dtype_name(dt), err, back);
    free(x), free(xd);
}

/* ---- SwiGLU ---- */

static void check_swiglu(md_dtype_t dt)
{
    int64_t M = 45, F = 37, ld = 2 * F;
    double *gu = rnd(M * ld, -6, 6), *dy = rnd(M * F, -1, 1);
    void *gud = as_dtype(gu, M * ld, dt), *dyd = as_dtype(dy, M * F, dt);
    for (int64_t i = 0; i < M * ld; i++) gu[i] = get(gud, dt, i);
    for (int64_t i = 0; i < M * F; i++) dy[i] = get(dyd, dt, i);
    size_t es = md_dtype_size(dt);
    char *y = calloc((size_t)(M * F), es), *dgu = calloc((size_t)(M * ld), es);
    md_tensor_t tgu = md_tensor_2d(gud, dt, MD_DEVICE_CPU, M, ld), tdgu = md_tensor_2d(dgu, dt, MD_DEVICE_CPU, M, ld);
    md_tensor_t g = md_tensor_cols(tgu, 0, F), u = md_tensor_cols(tgu, F, F);
    md_tensor_t dg = md_tensor_cols(tdgu, 0, F), du = md_tensor_cols(tdgu, F, F);
    md_tensor_t ty = md_tensor_2d(y, dt, MD_DEVICE_CPU, M, F), tdy = md_tensor_2d(dyd, dt, MD_DEVICE_CPU, M, F);
    be->swiglu_fwd(be, &ty, &g, &u);
    be->swiglu_bwd(be, &dg, &du, &tdy, &g, &u);
    double ey = 0, eg = 0, eu = 0;
    for (int64_t r = 0; r < M; r++)
        for (int64_t c = 0; c < F; c++) {
            double a = gu[r * ld + c], b = gu[r * ld + F + c], s = 1 / (1 + exp(-a)), d = dy[r * F + c];
            ey = fmax(ey, fabs(get(y, dt, r * F + c) - a * s * b) / (1 + fabs(a * s * b)));
            eg = fmax(eg, fabs(get(dgu, dt, r * ld + c) - d * b * (s + a * s * (1 - s))));
            eu = fmax(eu, fabs(get(dgu, dt, r * ld + F + c) - d * a * s));
        }
    double tol = dt == MD_DTYPE_F64 ? 1e-14 : 3e-6;
    CHECK(ey < tol && eg < 4 * tol && eu < 4 * tol, "%s swiglu: y %.3g dgate %.3g dup %.3g", md_dtype_name(dt), ey, eg,
          eu);
    printf("swiglu %s: y %.1e dgate %.1e dup %.1e\n", md_dtype_name(dt), ey, eg, eu);
    free(gu), free(dy), free(gud), free(dyd), free(y), free(dgu);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 77);
    static const int64_t shapes[][4] = {
        /* B, L, H, dh */
        {1, 1, 1, 8},    {1, 2, 2, 4},    {2, 67, 3, 16}, {1, 64, 1, 32},
        {3, 65, 2, 8},   {1, 130, 2, 64}, {2, 200, 1, 96}, {1, 300, 2, 16}, {1, 513, 1, 8},
    };
    for (int t = 0; t < 2; t++) {
        md_dtype_t dt = t ? MD_DTYPE_F32 : MD_DTYPE_F64;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_attention(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], dt);
        check_rope(dt);
        check_swiglu(dt);
    }
    check_attention_threads();
    return md_test_done();
}
