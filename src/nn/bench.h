/* Training-throughput measurement on the CPU: tokens per second of forward
 * + backward (no optimizer), next to the machine's sgemm rate and the
 * model's FLOPs per token, so a figure can be judged against what BLAS
 * allows. Callable from any command (`mambadna info --bench-cpu` today).
 */
#ifndef MD_NN_BENCH_H
#define MD_NN_BENCH_H

#include <stdint.h>

#include "nn/config.h"

typedef struct md_bench_result {
    int threads, steps;
    int64_t batch, len;
    double step_s_best, step_s_median;           /* one forward+backward of batch x len tokens */
    double tokens_per_s_best, tokens_per_s_median;
    double cpu_s_per_step_median;                /* process CPU time, all threads */
    double tokens_per_cpu_s;                     /* per core-second: robust to other load */
    double sgemm_gflops_square;                  /* 1024^3 sgemm on all threads, best of several */
    double sgemm_gflops_1core;                   /* the same on one thread */
    double sgemm_gflops_model;                   /* the model's in_proj shape, all threads */
    double fwd_flops_per_token;                  /* md_model_flops_per_token */
    double fwd_matmul_flops_per_token;
    double train_matmul_flops_per_token;         /* 3 x forward matmuls (fwd, dX, dW) */
    double blas_bound_tokens_per_s;              /* sgemm_gflops_square / train_matmul_flops_per_token */
    double blas_bound_tokens_per_cpu_s;          /* sgemm_gflops_1core / train_matmul_flops_per_token */
} md_bench_result_t;

/* Builds a model of cfg in f32 on the CPU backend with the current thread
 * count, initialises it with seed, and times `steps` forward+backward
 * passes over random A/C/G/T batches of batch x len (after one warm-up).
 * With profile, logs the per-op time split of the timed steps. Returns 0,
 * or -1 after one error line (the model could not be made). */
int md_bench_train_cpu(const md_config_t *cfg, int64_t batch, int64_t len, int steps, uint64_t seed, int profile,
                       md_bench_result_t *r);

#endif
