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

typedef struct md_adamw_opts {
    double beta1, beta2, eps, weight_decay;
} md_adamw_opts_t;

void md_adamw_opts_default(md_adamw_opts_t *o);

typedef struct md_adamw {
    const md_backend_t *be;
    md_adamw_opts_t opts;
    md_dtype_t dtype;
    int64_t numel, n_decay;
    void *m, *v;             /* first and second moments, numel each, on the backend */
    int64_t step;            /* updates applied so far */
} md_adamw_t;

/* Allocates zeroed moments for numel parameters, the first n_decay of which
 * take weight decay. 0, or -1 after one error line when out of memory. */
int md_adamw_init(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                  const md_adamw_opts_t *opts);
void md_adamw_free(md_adamw_t *opt);

/* The L2 norm of a flat buffer of n elements (the backend's sumsq:
 * deterministic whatever the thread count). */
double md_flat_norm(const md_backend_t *be, void *buf, md_dtype_t dtype, int64_t n);

/* The factor that brings a gradient of norm `norm` down to max_norm,
 * torch.nn.utils.clip_grad_norm_'s max_norm / (norm + 1e-6) when the norm
 * exceeds it, else 1. max_norm <= 0 turns clipping off. */
double md_clip_scale(double norm, double max_norm);

/* One update: step += 1, then param -= AdamW(grad * grad_scale) at rate lr. */
void md_adamw_step(md_adamw_t *opt, void *param, const void *grad, double lr, double grad_scale);

#endif
