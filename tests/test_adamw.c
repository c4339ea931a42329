/* AdamW through the optimizer driver and the CPU backend: known answers
 * worked out by hand, a double-precision reference over many steps, the
 * decay boundary (no decay on A_log, D, norms and biases), clipping, and a
 * gradient norm that does not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "nn/config.h"
#include "nn/params.h"
#include "testutil.h"
#include "train/adamw.h"
#include "util/log.h"
#include "util/rng.h"

static int close_rel(double a, double b, double rtol, double atol) { return fabs(a - b) <= atol + rtol * fabs(b); }

/* Two steps on one decayed scalar, the arithmetic done by hand:
 * p0 = 1, lr 0.1, wd 0.1, g1 = 0.5, g2 = -0.25, betas (0.9, 0.95).
 * step 1: m = 0.05, v = 0.0125, m^ = 0.5, v^ = 0.25, p = 0.99 - 0.1 * 0.5 / 0.5 = 0.89
 * step 2: m = 0.02, v = 0.015, m^ = 0.02 / 0.19, v^ = 0.015 / 0.0975,
 *         p = 0.89 * 0.99 - 0.1 * (0.105263158 / 0.392232270) = 0.881100 - 0.026836 = 0.854264 */
static void test_known_answer(const md_backend_t *be)
{
    md_adamw_opts_t o;
    md_adamw_opts_default(&o);
    md_adamw_t opt;
    CHECK(md_adamw_init(&opt, be, MD_DTYPE_F32, 2, 1, &o) == 0, "init");
    float p[2] = {1, 1}, g[2] = {0.5f, 0.5f};
    md_adamw_step(&opt, p, g, 0.1, 1.0);
    CHECK(close_rel(p[0], 0.89, 1e-6, 0), "step 1 decayed: %.9g", p[0]);
    CHECK(close_rel(p[1], 0.9, 1e-6, 0), "step 1 not decayed: %.9g", p[1]);
    g[0] = g[1] = -0.25f;
    md_adamw_step(&opt, p, g, 0.1, 1.0);
    double m2 = 0.02 / 0.19, v2 = 0.015 / 0.0975;
    double want0 = 0.89 * 0.99 - 0.1 * m2 / (sqrt(v2) + 1e-8);
    double want1 = 0.9 - 0.1 * m2 / (sqrt(v2) + 1e-8);
    CHECK(close_rel(want0, 0.854264, 1e-5, 0), "hand arithmetic %.9g", want0);
    CHECK(close_rel(p[0], want0, 1e-6, 0), "step 2 decayed: %.9g vs %.9g", p[0], want0);
    CHECK(close_rel(p[1], want1, 1e-6, 0), "step 2 not decayed: %.9g vs %.9g", p[1], want1);
    CHECK(opt.step == 2, "step count %lld", (long long)opt.step);
    md_adamw_free(&opt);
}

/* Many steps against a plain double implementation written from the paper. */
static void test_reference(const md_backend_t *be)
{
    enum { N = 1000, ND = 600, STEPS = 50 };
    md_adamw_opts_t o = {0.9, 0.95, 1e-8, 0.1};
    md_adamw_t opt;
    CHECK(md_adamw_init(&opt, be, MD_DTYPE_F32, N, ND, &o) == 0, "init");
    float *p = malloc(N * 4), *g = malloc(N * 4);
    double *rp = malloc(N * 8), *rm = calloc(N, 8), *rv = calloc(N, 8);
    md_rng_t r;
    md_rng_seed(&r, 7);
    for (int i = 0; i < N; i++) rp[i] = p[i] = (float)md_rng_normal(&r);
    double worst = 0;
    for (int t = 1; t <= STEPS; t++) {
        double lr = 1e-2 * (1.0 + 0.1 * sin(t)), scale = 0.5 + 0.01 * t;
        for (int i = 0; i < N; i++) g[i] = (float)(md_rng_normal(&r) + 0.3 * rp[i]);
        md_adamw_step(&opt, p, g, lr, scale);
        for (int i = 0; i < N; i++) {
            double gi = (double)g[i] * scale;
            if (i < ND) rp[i] -= lr * 0.1 * rp[i];
            rm[i] = 0.9 * rm[i] + 0.1 * gi;
            rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
            double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.95, t));
            rp[i] -= lr * mh / (sqrt(vh) + 1e-8);
        }
        for (int i = 0; i < N; i++) {
            double d = fabs(p[i] - rp[i]);
            if (d > worst) worst = d;
        }
    }
    CHECK(worst < 2e-5, "largest difference from the double reference after %d steps: %g", STEPS, worst);
    free(p); free(g); free(rp); free(rm); free(rv);
    md_adamw_free(&opt);
}

/* With zero gradients only the decay moves parameters: the matrices and the
 * embedding shrink by (1 - lr wd); A_log, D, norms and biases stay put. */
static void test_decay_groups(const md_backend_t *be)
{
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 32, 2);
    md_params_t reg;
    CHECK(md_params_build(&cfg, &reg) == 0, "registry");
    md_adamw_opts_t o;
    md_adamw_opts_default(&o);
    md_adamw_t opt;
    CHECK(md_adamw_init(&opt, be, MD_DTYPE_F32, reg.numel, reg.n_decay, &o) == 0, "init");
    float *p = malloc(reg.numel * 4), *g = calloc(reg.numel, 4);
    for (int64_t i = 0; i < reg.numel; i++) p[i] = 1.0f;
    md_adamw_step(&opt, p, g, 0.5, 1.0);
    int n_decayed = 0, n_kept = 0;
    for (int64_t k = 0; k < reg.n; k++) {
        const md_param_t *e = &reg.p[k];
        if (e->tied_to >= 0) continue;
        const char *nm = e->name;
        size_t len = strlen(nm);
        int no_decay = strstr(nm, "A_log") || (len >= 2 && !strcmp(nm + len - 2, ".D")) || strstr(nm, "norm") ||
                       strstr(nm, "bias");
        float want = no_decay ? 1.0f : (float)(1.0 - 0.5 * 0.1);
        int ok = 1;
        for (int64_t i = 0; i < e->numel; i++) ok &= p[e->offset + i] == want;
        CHECK(ok, "%s: %s after a zero-gradient step (%g)", nm, no_decay ? "decayed" : "not decayed",
              p[e->offset]);
        if (no_decay) n_kept++;
        else n_decayed++;
    }
    CHECK(n_decayed == 1 + 5 * 2 && n_kept == 1 + 5 * 2, "%d decayed, %d kept tensors", n_decayed, n_kept);
    free(p);
    free(g);
    md_adamw_free(&opt);
    md_params_free(&reg);
}

static void test_clip_and_norm(const md_backend_t *be)
{
    CHECK(md_clip_scale(0.5, 1.0) == 1.0, "below the limit");
    CHECK(md_clip_scale(1.0, 1.0) == 1.0, "at the limit");
    CHECK(close_rel(md_clip_scale(4.0, 1.0) * 4.0, 1.0, 1e-6, 0), "above the limit");
    CHECK(md_clip_scale(1e9, 0) == 1.0, "clipping off");
    enum { N = 300001 };
    float *x = malloc(N * 4);
    double ref = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i % 17) - 8) * 0.01f;
        ref += (double)x[i] * x[i];
    }
    ref = sqrt(ref);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = md_flat_norm(be, x, MD_DTYPE_F32, N);
    omp_set_num_threads(2);
    double n2 = md_flat_norm(be, x, MD_DTYPE_F32, N);
    omp_set_num_threads(nt);
    CHECK(close_rel(n1, ref, 1e-12, 0), "norm %.17g vs %.17g", n1, ref);
    CHECK(n1 == n2, "norm depends on the thread count: %.17g vs %.17g", n1, n2);
    free(x);
}

int main(void)
{
    md_verbose = 0;
    const md_backend_t *be = md_backend_cpu();
    test_known_answer(be);
    test_reference(be);
    test_decay_groups(be);
    test_clip_and_norm(be);
    return md_test_done();
}
