#include "nn/bench.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/ops.h"
#include "nn/model.h"
#include "seq/tokenizer.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Best GFLOP/s of C = A B^T for (m, k) x (n, k), as the model calls it,
 * with OpenBLAS's own threads (the model's gemm op sets it back to one). */
static double sgemm_rate(int m, int n, int k, int reps, int threads)
{
    float *a = md_malloc(sizeof *a * (size_t)m * k), *b = md_malloc(sizeof *b * (size_t)n * k);
    float *c = md_malloc(sizeof *c * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = omp_get_wtime();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        double t = omp_get_wtime() - t0;
        if (r > 0 && t < best) best = t;   /* the first call warms the pool */
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * k / best / 1e9;
}

int md_bench_train_cpu(const md_config_t *cfg, int64_t batch, int64_t len, int steps, uint64_t seed, int profile,
                       md_bench_result_t *r)
{
    memset(r, 0, sizeof *r);
    md_model_t *m = md_model_new(cfg, md_backend_cpu(), MD_DTYPE_F32, batch, len);
    if (!m) return -1;
    md_model_init_weights(m, seed);
    md_info("cpu kernels: %s", md_cpu_avx512_active() ? "AVX-512 (selective scan, projections) and OpenBLAS"
                                                      : "portable C and OpenBLAS");
    if (steps < 1) steps = 1;
    int64_t n = batch * len;
    uint8_t *in = md_malloc((size_t)n), *tgt = md_malloc((size_t)n);
    md_rng_t rng;
    md_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) {
        in[i] = (uint8_t)(MD_TOK_A + md_rng_below(&rng, 4));
        tgt[i] = (uint8_t)(MD_TOK_A + md_rng_below(&rng, 4));
    }
    double *t = md_malloc(sizeof *t * (size_t)steps), *tc = md_malloc(sizeof *tc * (size_t)steps);
    md_loss_t out;
    md_model_zero_grad(m);
    md_model_forward_backward(m, in, tgt, batch, len, 1, &out);   /* warm-up: page faults, thread pools */
    if (profile) md_cpu_profile_enable(1);
    for (int s = 0; s < steps; s++) {
        double t0 = omp_get_wtime(), c0 = cpu_seconds();
        md_model_forward_backward(m, in, tgt, batch, len, 1, &out);
        t[s] = omp_get_wtime() - t0;
        tc[s] = cpu_seconds() - c0;
    }
    if (profile) {
        md_cpu_profile_enable(0);
        md_cpu_profile_report();
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    qsort(tc, (size_t)steps, sizeof *tc, cmp_double);
    r->cpu_s_per_step_median = steps % 2 ? tc[steps / 2] : 0.5 * (tc[steps / 2 - 1] + tc[steps / 2]);
    r->tokens_per_cpu_s = n / r->cpu_s_per_step_median;
    r->threads = omp_get_max_threads();
    r->steps = steps;
    r->batch = batch;
    r->len = len;
    r->step_s_best = t[0];
    r->step_s_median = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
    r->tokens_per_s_best = n / r->step_s_best;
    r->tokens_per_s_median = n / r->step_s_median;
    free(t), free(tc), free(in), free(tgt);
    md_model_free(m);

    r->fwd_flops_per_token = md_model_flops_per_token(cfg, len, &r->fwd_matmul_flops_per_token);
    r->train_matmul_flops_per_token = 3 * r->fwd_matmul_flops_per_token;
    r->sgemm_gflops_square = sgemm_rate(1024, 1024, 1024, 5, r->threads);
    r->sgemm_gflops_1core = sgemm_rate(1024, 1024, 1024, 5, 1);
    int rows = (int)(n < 4096 ? n : 4096);
    r->sgemm_gflops_model = sgemm_rate(rows, (int)(2 * cfg->d_inner), (int)cfg->d_model, 5, r->threads);
    r->blas_bound_tokens_per_s = r->sgemm_gflops_square * 1e9 / r->train_matmul_flops_per_token;
    r->blas_bound_tokens_per_cpu_s = r->sgemm_gflops_1core * 1e9 / r->train_matmul_flops_per_token;
    return 0;
}
