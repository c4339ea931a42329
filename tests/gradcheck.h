/* Shared by the finite-difference gradient checks (test_gradcheck*.c):
 * double-precision helpers, the 4-point central-difference comparison, and
 * the thread-independence check of a whole f32 model. Each test file sets
 * `be` and seeds `rng` before use. Header-only: every test is one file. */
#ifndef MD_TESTS_GRADCHECK_H
#define MD_TESTS_GRADCHECK_H

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "nn/model.h"
#include "seq/tokenizer.h"
#include "testutil.h"
#include "util/rng.h"

static const md_backend_t *be;
static md_rng_t rng;
static const md_dtype_t F64 = MD_DTYPE_F64;

static inline double *rnd(int64_t n, double lo, double hi)
{
    double *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * md_rng_uniform(&rng);
    return x;
}

static inline double *zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }
static inline md_tensor_t T2(double *p, int64_t r, int64_t c) { return md_tensor_2d(p, F64, MD_DEVICE_CPU, r, c); }
static inline md_tensor_t T1(double *p, int64_t n) { return md_tensor_1d(p, F64, MD_DEVICE_CPU, n); }

static inline double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Compares grad[i] with the derivative of loss() in x[i] by the 4-point
 * central difference (error O(h^4)), for all i when n is small, else for
 * `sample` random ones. The error measure is |a - n| / (|a| + |n| + tau)
 * and must stay below 1e-6: relative for gradients above tau = 1e-4, an
 * absolute 1e-10 below, where the rounding noise of the differences
 * (~1e-16 |loss| / h, ~1e-11 for the model) would swamp a relative one.
 * Two step sizes are tried and the better agreement counts: a large h
 * keeps the rounding noise down, a small one the truncation error where
 * the loss curves sharply (RMSNorm of a small embedding); a wrong gradient
 * disagrees at both. */
typedef double (*loss_fn)(void *ctx);

static double worst;

static double fd_derivative(double *xi, double h, loss_fn loss, void *ctx)
{
    static const double step[4] = {-2, -1, 1, 2};
    double keep = *xi, f[4];
    for (int q = 0; q < 4; q++) {
        *xi = keep + step[q] * h;
        f[q] = loss(ctx);
    }
    *xi = keep;
    return (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * h);
}

static void fd_check(const char *what, double *x, const double *grad, int64_t n, loss_fn loss, void *ctx, int sample)
{
    const double tau = 1e-4;
    double max_err = 0;
    int64_t max_i = -1, count = n <= sample ? n : sample;
    for (int64_t k = 0; k < count; k++) {
        int64_t i = n <= sample ? k : (int64_t)md_rng_below(&rng, (uint64_t)n);
        double ana = grad[i], err = 1e300;
        static const double hs[2] = {1e-3, 1e-4};
        for (int j = 0; j < 2; j++) {
            double num = fd_derivative(&x[i], hs[j], loss, ctx);
            double e = fabs(num - ana) / (fabs(num) + fabs(ana) + tau);
            if (e < err) err = e;
        }
        if (err > max_err) max_err = err, max_i = i;
    }
    if (max_err > worst) worst = max_err;
    CHECK(max_err < 1e-6, "%s: gradient element %lld has relative error %.3g", what, (long long)max_i, max_err);
    printf("%-44s %4lld checked, max error %.2e\n", what, (long long)count, max_err);
}

/* ---- RMSNorm ---- */


typedef struct { md_model_t *m; const uint8_t *in, *tgt; int64_t B, L; } model_ctx_t;

static inline double model_loss(void *p)
{
    model_ctx_t *c = p;
    md_loss_t out;
    md_model_forward_backward(c->m, c->in, c->tgt, c->B, c->L, 0, &out);
    return out.loss_sum;
}

static inline void random_tokens(uint8_t *in, uint8_t *tgt, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        in[i] = (uint8_t)(MD_TOK_A + md_rng_below(&rng, 4));
        tgt[i] = (uint8_t)(MD_TOK_A + md_rng_below(&rng, 4));
    }
}

/* Every tensor of c->m's registry (aliases skipped), 4 elements each, then
 * 60 random elements of all, against finite differences; grad holds the
 * model's gradients for c's batch. Lines are named `label` and the tensor
 * name without the prefix `strip`. */
static inline void check_model_tensors(model_ctx_t *c, double *grad, const char *label, const char *strip)
{
    const md_params_t *reg = md_model_params(c->m);
    double *p = md_model_param_buffer(c->m).data;
    size_t ns = strlen(strip);
    for (int64_t i = 0; i < reg->n; i++) {
        const md_param_t *e = &reg->p[i];
        if (e->tied_to >= 0) continue;
        char what[160];
        snprintf(what, sizeof what, "%s %s", label, e->name + (strncmp(e->name, strip, ns) ? 0 : ns));
        fd_check(what, p + e->offset, grad + e->offset, e->numel, model_loss, c, 4);
    }
    fd_check("model, random subset", p, grad, reg->numel, model_loss, c, 60);
}

/* A model planned for one sequence runs every batch whole, so an op
 * workspace only the backward uses lies over h_L .. logits where it fits
 * (model.c, make_plan), and with MD_POISON_DEAD those are zeroed once dead
 * whether or not it does: a B = 1 call on it must give the loss and
 * gradients (out, grad) of the same call on c's model, planned for more
 * sequences, bit for bit, with and without recompute. */
static inline void check_one_sequence_plan(const model_ctx_t *c, const md_config_t *cfg, const md_loss_t *out,
                                           const double *grad)
{
    int64_t n = md_model_params(c->m)->numel;
    for (int recompute = MD_RECOMPUTE_OFF; recompute <= MD_RECOMPUTE_KEEP_STATES; recompute++) {
        md_model_opts_t opts = {.recompute = recompute};
        setenv("MD_POISON_DEAD", "1", 1);   /* h_L .. logits zeroed once dead (model_internal.h) */
        md_model_t *m1 = md_model_new_ex(cfg, be, F64, 1, c->L, &opts);
        unsetenv("MD_POISON_DEAD");
        memcpy(md_model_param_buffer(m1).data, md_model_param_buffer(c->m).data, (size_t)n * sizeof(double));
        md_model_zero_grad(m1);
        md_loss_t o;
        CHECK(md_model_forward_backward(m1, c->in, c->tgt, 1, c->L, 1, &o) == 0, "one-sequence plan");
        CHECK(o.loss_sum == out->loss_sum, "one-sequence plan, recompute %d: same loss", recompute);
        CHECK(!memcmp(md_model_grad_buffer(m1).data, grad, (size_t)n * sizeof(double)),
              "one-sequence plan, recompute %d: same gradients", recompute);
        md_model_free(m1);
    }
}

/* The recomputing model gives c->m's loss (out) and gradients (grad) bit
 * for bit; and, for B >= 2, B = 1 (the whole-batch path, ops in parallel)
 * adds up to the same loss, agrees with finite differences and is what a
 * model planned for one sequence gives (check_one_sequence_plan). grad is
 * overwritten. */
static inline void check_recompute_and_b1(model_ctx_t *c, const md_config_t *cfg, const md_loss_t *out, double *grad)
{
    md_model_t *m = c->m;
    int64_t n = md_model_params(m)->numel, B = c->B, L = c->L;
    double *p = md_model_param_buffer(m).data;
    for (int recompute = MD_RECOMPUTE_INPUTS; recompute <= MD_RECOMPUTE_KEEP_STATES; recompute++) {
        md_model_opts_t opts = {.recompute = recompute};
        md_model_t *mr = md_model_new_ex(cfg, be, F64, B, L, &opts);
        memcpy(md_model_param_buffer(mr).data, p, (size_t)n * sizeof *p);
        md_model_zero_grad(mr);
        md_loss_t out_r;
        md_model_forward_backward(mr, c->in, c->tgt, B, L, 1, &out_r);
        CHECK(out_r.loss_sum == out->loss_sum, "recompute %d: same loss", recompute);
        CHECK(!memcmp(md_model_grad_buffer(mr).data, grad, (size_t)n * sizeof(double)),
              "recompute %d: same gradients", recompute);
        md_model_free(mr);
    }
    if (B < 2) return;
    md_loss_t o1, o2;
    md_model_zero_grad(m);
    CHECK(md_model_forward_backward(m, c->in, c->tgt, 1, L, 1, &o1) == 0, "B = 1");
    memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
    CHECK(md_model_forward_backward(m, c->in + L, c->tgt + L, 1, L, 0, &o2) == 0, "B = 1, second sequence");
    CHECK(fabs(o1.loss_sum + o2.loss_sum - out->loss_sum) <= 1e-12 * out->loss_sum, "sequence losses add up");
    model_ctx_t c1 = {m, c->in, c->tgt, 1, L};
    fd_check("model B = 1, random subset", p, grad, n, model_loss, &c1, 40);
    check_one_sequence_plan(&c1, cfg, &o1, grad);
}

/* The f32 model's loss and gradients must not depend on the thread count:
 * B = 3 runs sequence by sequence on threads, B = 1 inside each op. L and
 * max_len should be big enough for the threads to engage, with batch and
 * length below the planned maxima. */
static inline void check_threads(md_arch_t arch, int64_t d_model, int n_layer, int64_t L, int64_t max_len)
{
    md_config_t cfg;
    md_config_init(&cfg, arch, d_model, n_layer);
    uint8_t *in = malloc(3 * L), *tgt = malloc(3 * L);
    random_tokens(in, tgt, 3 * L);
    tgt[17 % L] = MD_TOK_N;   /* an ignored target too */
    for (int64_t B = 3; B >= 1; B -= 2) {
        float *g[2];
        double loss[2];
        int64_t n = 0;
        for (int run = 0; run < 2; run++) {
            omp_set_num_threads(run + 1);
            md_model_t *m = md_model_new(&cfg, be, MD_DTYPE_F32, 4, max_len);
            md_model_init_weights(m, 99);
            md_model_zero_grad(m);
            md_loss_t out;
            md_model_forward_backward(m, in, tgt, B, L, 1, &out);
            n = md_model_params(m)->numel;
            g[run] = malloc((size_t)n * sizeof(float));
            memcpy(g[run], md_model_grad_buffer(m).data, (size_t)n * sizeof(float));
            loss[run] = out.loss_sum;
            md_model_free(m);
        }
        omp_set_num_threads(2);
        CHECK(loss[0] == loss[1], "B = %lld: loss with 1 and 2 threads: %.17g vs %.17g", (long long)B, loss[0],
              loss[1]);
        CHECK(!memcmp(g[0], g[1], (size_t)n * sizeof(float)), "B = %lld: gradients with 1 and 2 threads differ",
              (long long)B);
        free(g[0]), free(g[1]);
    }
    free(in), free(tgt);
}

#endif
