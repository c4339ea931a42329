/* The benchmarks behind `mambadna bench`: the commands `bench train`
 * (bench_train.c) and `bench attention` (bench_attention.c), dispatched by
 * cmd/bench.c, and the measurements themselves as functions, so that
 * `bench all` (bench_suite.c) runs the same code paths. */
#ifndef MD_CMD_BENCH_TRAIN_H
#define MD_CMD_BENCH_TRAIN_H

#include <stdint.h>

#include "backend/ops.h"
#include "cmd/bench_report.h"
#include "nn/config.h"

/* argv[0] is "train". Returns the command's exit status. */
int md_bench_train_cmd(int argc, char **argv);
/* argv[0] is "attention". Returns the command's exit status. */
int md_bench_attention_cmd(int argc, char **argv);
/* argv[0] is "all". Returns the command's exit status. */
int md_bench_all_cmd(int argc, char **argv);

/* What one training benchmark runs: optimizer steps of cfg (zero the
 * gradients, forward + backward over tokens_per_step / (batch x len)
 * micro-batches of random A/C/G/T windows, the global gradient norm, one
 * AdamW update), `warmup` untimed steps first. */
typedef struct md_train_bench_spec {
    const md_config_t *cfg;
    const char *device;          /* a -x/--device spec */
    md_precision_t precision;
    int64_t batch, len, tokens_per_step;
    int64_t steps, warmup;
    int recompute;               /* md_model_opts_t.recompute (MD_RECOMPUTE_*) */
    int cuda_graph;              /* md_cuda_graph_t (train/graphstep.h); 0 = auto */
    uint64_t seed;
    /* This rank's set-up (dist/dist.h), or NULL: then the device comes from
     * `device`. With a communicator of several ranks the steps are timed
     * twice: alone, then with the gradient all-reduce of md_train_step. */
    const struct md_dist *dist;
} md_train_bench_spec_t;

typedef struct md_train_bench_result {
    int64_t params;
    char backend[32];            /* the backend table's name: cpu, cuda, cuda-bf16 */
    char device_name[256];
    int ranks;
    double step_ms_median, step_ms_min, tokens_per_s;
    double step_ms_median_alone;  /* several ranks: the median step without the all-reduce; else 0 */
    double peak_alloc_gib;       /* md_cuda_peak_bytes over the timed and warm-up steps; 0 on the CPU */
    double device_used_gib;      /* cudaMemGetInfo after the steps: the context and cuBLAS included */
    double last_loss;
} md_train_bench_result_t;

/* Builds the model on the spec's device (the GPU: CUDA events on the
 * backend's stream; the CPU: the wall clock), times spec->steps steps and
 * fills r with their median. Returns 0, or -1 after one error line (the
 * device, the model or its memory). */
int md_bench_train_measure(const md_train_bench_spec_t *spec, md_train_bench_result_t *r);

/* The selective scan's fwd+bwd (N = 16) on one shape, on the current GPU:
 * medians of `reps` CUDA-event timings after two warm-ups, input sets
 * rotated when one would fit in the L2 (l2_bytes). bytes_*: the minimal
 * bytes (inputs read once, outputs written once). */
typedef struct md_scan_bench_result {
    double fwd_ms, bwd_ms, all_ms, bytes_fwd, bytes_bwd;
    int sets;
} md_scan_bench_result_t;

/* pass: scan_api.h's md_scan_pass_t (0: AUTO, as training runs it);
 * seg_states: the backward from the forward's segment states (scan_api.h),
 * as training keeps them where each layer has its own activations, else
 * from its chunk states. Returns 0, or -1 after one error line (CUDA, or a
 * build without it). */
int md_bench_scan_measure(const md_scan_shape_t *sh, int bf16, int pass, int seg_states, int reps, uint64_t seed,
                          int64_t l2_bytes, md_scan_bench_result_t *r);

/* Device-to-device copy bandwidth of the current GPU in GB/s (bytes read
 * plus written, cudaMemcpy of 2 GiB, median of 10). 0, or -1 after one
 * error line. */
int md_bench_copy_bandwidth(double *gbps);

#endif
