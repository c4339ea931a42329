/* The AdamW optimizer state and its step, over the model's flat parameter
 * and gradient buffers (nn/params.h), on the model's backend.
 *
 * The element-wise update is the backend's adamw op (backend/ops.h,
 * torch.optim.AdamW semantics, one pass with the decay boundary n_decay:
 * the registry stores every decayed tensor first). This file owns the
 * moments, the step count, the gradient norm and the clipping factor.
 * Defaults follow the Mamba paper: betas (0.9, 0.95), eps 1e-8, weight
 * decay 0.1 on matrices and embeddings only (not on A_log, D, norms or
 * biases).
 */
#ifndef MD_TRAIN_ADAMW_H
#define MD_TRAIN_ADAMW_H

#include <stdint.h>

#include "backend/ops.h"
#include "dist/comm.h"

typedef struct md_adamw_opts {
    double beta1, beta2, eps, weight_decay;
} md_adamw_opts_t;

void md_adamw_opts_default(md_adamw_opts_t *o);

/* Elements [off, off + n) of the flat buffers. */
typedef struct md_adamw_range {
    int64_t off, n;
} md_adamw_range_t;

typedef struct md_adamw {
    const md_backend_t *be;
    md_adamw_opts_t opts;
    md_dtype_t dtype;
    int64_t numel, n_decay;
    /* The parameters this optimizer updates and keeps moments of: [0, numel)
     * alone, or under ZeRO-1 this rank's shard and the tail shared by all
     * (md_adamw_init_zero1). */
    md_adamw_range_t range[2];
    int n_ranges;
    int64_t state_numel;     /* the ranges' elements: the moments' length */
    void *m, *v;             /* first and second moments, state_numel each, range after range, on the backend */
    void *shard_grad;        /* ZeRO-1: the reduce-scatter's output, range[0].n elements; else NULL */
    float *host_m, *host_v;  /* ZeRO-1: the whole moments gathered for a save (md_adamw_gather_host), or NULL */
    int64_t step;            /* updates applied so far */
    struct md_grad_sync *sync;   /* the data-parallel exchange (train/gradsync.h), made by md_train_step */
} md_adamw_t;

/* Allocates zeroed moments for numel parameters, the first n_decay of which
 * take weight decay. 0, or -1 after one error line when out of memory. */
int md_adamw_init(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                  const md_adamw_opts_t *opts);

/* ZeRO-1: moments for rank `rank` of `size` alone. With s = numel / size
 * (rounded down), rank r owns the shard [r s, (r+1) s) -- the block that
 * md_comm_reduce_scatter_sum hands it -- and every rank also keeps the
 * tail [size s, numel) (fewer than size elements); so each rank holds
 * s + tail moments of each kind instead of numel, plus s elements for the
 * reduce-scatter's output. Logs the saving. 0, or -1 after one error line
 * when out of memory. */
int md_adamw_init_zero1(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                        const md_adamw_opts_t *opts, int rank, int size);
void md_adamw_free(md_adamw_t *opt);

/* 1 when opt was made by md_adamw_init_zero1 (also on one rank, whose
 * shard is every parameter: the same path, for tests on one GPU). */
static inline int md_adamw_sharded(const md_adamw_t *opt) { return opt->n_ranges > 1; }

/* ZeRO-1's checkpoint: every rank's shard of both moments gathered into
 * host_m and host_v (numel floats each, allocated here), which the state
 * file then takes whole, so that any number of ranks can resume from it
 * (md_train_load_pair puts each rank's ranges back). A collective: every
 * rank calls it, also those that do not save; keep = 0 frees the copies at
 * once (md_adamw_drop_host otherwise). scratch: numel elements of device
 * memory free for the moment (the gradient buffer between steps). A no-op
 * returning 0 without sharding. 0, or -1 after one error line. */
int md_adamw_gather_host(md_adamw_t *opt, md_comm_t *comm, void *scratch, int keep);
void md_adamw_drop_host(md_adamw_t *opt);

/* The L2 norm of a flat buffer of n elements (the backend's sumsq:
 * deterministic whatever the thread count). */
double md_flat_norm(const md_backend_t *be, void *buf, md_dtype_t dtype, int64_t n);

/* The factor that brings a gradient of norm `norm` down to max_norm,
 * torch.nn.utils.clip_grad_norm_'s max_norm / (norm + 1e-6) when the norm
 * exceeds it, else 1. max_norm <= 0 turns clipping off. */
double md_clip_scale(double norm, double max_norm);

/* One update: step += 1, then param -= AdamW(grad * grad_scale) at rate lr
 * over opt's ranges (param and grad: the whole flat buffers). */
void md_adamw_step(md_adamw_t *opt, void *param, const void *grad, double lr, double grad_scale);

#endif
