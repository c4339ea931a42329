/* The Mamba (S6) block, forward and backward, against backend/ops.h.
 *
 * Internal to src/nn (model.c drives it through the per-architecture table
 * in model_internal.h); other blocks (Transformer++ in transformer.h,
 * Hyena) follow the same shape: a size query and a carve function
 * for the activations the block saves and for the scratch its backward
 * uses, then fwd(h_in -> h_out) and bwd(g: dL/dh_out -> dL/dh_in, in place).
 *
 * The block, as mamba_ssm's Mamba with MixerModel's prenorm residual:
 *   hn = RMSNorm(h_in);  [x | z] = hn in_proj^T           (M, 2E)
 *   u = SiLU(causal depthwise conv(x) + conv bias)         (M, E)
 *   [dt_in | B | C] = u x_proj^T                           (M, R + 2N)
 *   delta = dt_in dt_proj^T   (the dt_proj bias is applied inside the scan;
 *                              where the backend's scan forms delta itself,
 *                              never stored: ops.h, md_scan_forms_delta)
 *   y = scan(u, delta, ...) * SiLU(z)                      (M, E)
 *   h_out = h_in + y out_proj^T                            (M, d)
 * All (M, ·) tensors are (B, L, ·) flattened, M = B * L.
 */
#ifndef MD_NN_MAMBA_H
#define MD_NN_MAMBA_H

#include <stdint.h>

#include "backend/ops.h"
#include "nn/config.h"
#include "nn/params.h"

/* How a model's activation sets serve its layers, which decides what a set
 * holds: one set per layer, each kept from its forward to its backward
 * (training); one set for all layers, refilled by a recomputed forward
 * before each backward (training with md_model_opts_t.recompute); the
 * same but with every layer's scan states kept from the first forward,
 * so that the recomputed forward runs no scan (recompute =
 * MD_RECOMPUTE_KEEP_STATES; other blocks than Mamba's plan it as SHARED);
 * one set for a forward alone (md_model_opts_t.inference). */
typedef enum md_acts_plan {
    MD_ACTS_PER_LAYER,
    MD_ACTS_SHARED,
    MD_ACTS_SHARED_STATES,
    MD_ACTS_FORWARD_ONLY,
    /* MD_ACTS_PER_LAYER without the scan's segment states (ops.h,
     * scan_seg_states_size): where those do not fit (md_model_create) */
    MD_ACTS_PER_LAYER_LEAN,
} md_acts_plan_t;

/* Whether one set serves every layer, refilled before each backward. */
static inline int md_acts_shared(md_acts_plan_t p) { return p == MD_ACTS_SHARED || p == MD_ACTS_SHARED_STATES; }
/* Whether each layer keeps its own set. */
static inline int md_acts_per_layer(md_acts_plan_t p) { return p == MD_ACTS_PER_LAYER || p == MD_ACTS_PER_LAYER_LEAN; }

/* What one forward/backward call works with. */
typedef struct md_block_ctx {
    const md_backend_t *be;
    const md_config_t *cfg;
    const md_params_t *reg;
    md_dtype_t dtype;
    /* The dtype of the activations and activation gradients the block
     * stores, and of wparams: md_act_dtype(be, dtype) for blocks that store
     * in it (model_internal.h, act_storage), else dtype. */
    md_dtype_t adtype;
    int64_t B, L, M;         /* this call's batch, length and B * L */
    void *params, *grads;    /* the flat buffers */
    void *wparams;           /* the parameters in adtype (== params when adtype == dtype), for the GEMMs */
    void *op_ws;             /* the block's op workspace for this call (scan_bwd's, attention_bwd's) */
    /* Where this call's rows sit in the planned buffers: activation and
     * scratch sets hold max_batch x max_len rows, and this call uses rows
     * [r0, r0 + M); seq is the sequence index when the model runs one
     * sequence per call (whole = 0), for per-sequence regions. */
    int64_t max_batch, max_len, r0, seq;
    int whole;
    const void *consts;      /* the architecture's constant buffer (Hyena: the filter's positional features), or NULL */
    /* The residual add deferred into the next RMSNorm (add_rmsnorm_fwd),
     * forward only, for blocks whose table entry sets defer_residual: with
     * branch_only, fwd writes only its branch to h_out and leaves the add
     * h_out += h_in to the next norm; with h_res not NULL, h_in holds only
     * the previous block's branch, and fwd first completes it in place,
     * h_in += h_res, fused with its prenorm. 0 and NULL: whole blocks. */
    int branch_only;
    const void *h_res;
    /* Inference's block boundary in one op (linear_add_rmsnorm_fwd), for
     * the same blocks, in place of branch_only and h_res: with next_norm
     * not NULL, fwd ends with out_proj fused with the residual add and the
     * RMSNorm of weight next_norm that follows it: h_out = h_in + branch,
     * complete, and its normalised rows and rstd into norm_y and norm_rstd
     * (norm_f's hf and rstd_f after the last block), or where those are
     * NULL into the activation set's hn and rstd slots, where the next
     * block finds its norm done: every block but the first, as all are
     * called with next_norm. All blocks share the one set (inference). */
    const md_tensor_t *next_norm;
    void *norm_y, *norm_rstd;
    /* the plan the activation sets were laid out for (their carve needs
     * it); MD_ACTS_FORWARD_ONLY (md_model_opts_t.inference): nothing needs
     * to be kept for a backward, so the scan gets no states buffer */
    md_acts_plan_t acts_plan;
} md_block_ctx_t;

/* Whether the call is a forward alone, with nothing kept for a backward. */
static inline int md_block_forward_only(const md_block_ctx_t *c) { return c->acts_plan == MD_ACTS_FORWARD_ONLY; }

/* Saved for the backward (per layer, or one shared set when recomputing).
 * states: what the backend's scan_fwd leaves for its backward. rstd is of
 * the model's dtype, the others of the activation dtype (md_act_dtype: bf16
 * on the bf16 CUDA table, halving them). The normalised input hn, (M, d),
 * has a buffer of its own where each layer keeps its set
 * (MD_ACTS_PER_LAYER), which the backward reads; in a shared set (hn NULL)
 * it lives in y's slot until in_proj has read it, and the backward
 * recomputes it there (md_mamba_bwd), or, with the block boundary fused
 * (md_block_ctx_t.next_norm, inference), in delta's slot (md_mamba_fwd):
 * an own buffer there would cost a layer's worth of memory in the plans
 * that exist to save it. */
typedef struct md_mamba_acts {
    void *rstd, *xz, *u, *xdbl, *delta, *y, *states, *hn;
    void *seg_states;   /* scan_fwd's (ops.h); MD_ACTS_PER_LAYER only, else NULL */
} md_mamba_acts_t;

/* The backward's temporaries (one set for all layers), of the activation
 * dtype: with bf16 storage the activation gradients are bf16 too, as the
 * scan's bf16 kernels and the bf16 GEMMs take them (the parameter gradients
 * and the residual stream's gradient stay in the model's dtype). The other
 * activation gradients live in the saved set's slots once these are dead
 * (md_mamba_bwd): dy in y's, ddelta over delta, dhn in delta's. */
typedef struct md_mamba_scratch {
    void *dxz, *du, *dxdbl;
} md_mamba_scratch_t;

/* Bytes of one set for batches of up to max_batch x max_len, every
 * sub-buffer 64-byte aligned; carve lays a set out from base. dt is the
 * model's dtype; the scratch functions take the activation dtype.
 * plan MD_ACTS_FORWARD_ONLY: no room for scan states (md_mamba_fwd passes
 * the scan none in that plan, md_block_forward_only); MD_ACTS_PER_LAYER
 * and _LEAN: room for hn (md_mamba_acts_t), else a->hn = NULL;
 * MD_ACTS_PER_LAYER: also for the scan's segment states (where the backend
 * keeps them), else a->seg_states = NULL; MD_ACTS_SHARED_STATES:
 * room for every layer's states, layer l's md_mamba_states_stride bytes
 * after layer l - 1's (a->states is layer 0's). */
size_t md_mamba_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                           int64_t max_len, md_acts_plan_t plan);
void md_mamba_acts_carve(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                         int64_t max_len, md_acts_plan_t plan, void *base, md_mamba_acts_t *a);
/* The distance between two layers' scan states in a set of plan
 * MD_ACTS_SHARED_STATES (0 in the other plans): the part of a states
 * buffer the backward reads (ops.h, scan_states_kept_size), for the whole
 * batch or, where sequences run one per call, at their fixed stride. */
size_t md_mamba_states_stride(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                              int64_t max_len, md_acts_plan_t plan);
size_t md_mamba_scratch_bytes(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows);
void md_mamba_scratch_carve(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows, void *base,
                            md_mamba_scratch_t *s);

/* Forward of block `layer`: fills a, and writes h_out = h_in + mixer
 * output when h_out is not NULL (NULL: only the activations, for the
 * recomputation in the backward, which in a shared set leaves y out:
 * md_mamba_bwd gets it from the scan's backward). h_in and h_out are
 * (M, d). With the
 * residual deferred (c->branch_only, c->h_res) h_out gets the mixer output
 * alone, and h_in is completed in place first. */
void md_mamba_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, const md_mamba_acts_t *a);

/* Backward of block `layer`: g is dL/dh_out on entry and dL/dh_in on
 * return; the block's parameter gradients are added into c->grads. It
 * overwrites a's y and delta (their slots hold gradients once read, and,
 * without a->hn, y's the recomputed hn): a set serves one backward. */
void md_mamba_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g, const md_mamba_acts_t *a,
                  const md_mamba_scratch_t *s);

/* A set of n sub-buffers of cols[i] columns of dtype dts[i] (activations
 * in c->adtype beside statistics in c->dtype) for `rows` rows, each 64-byte
 * aligned, for blocks whose activations are plain (M, cols) matrices
 * (transformer.c, hyena.c): its bytes, and, for the plan's rows (max_batch
 * x max_len), its sub-buffers advanced to the call's first row c->r0
 * (out[i]). */
size_t md_block_set_bytes_dt(const int64_t *cols, const md_dtype_t *dts, int n, int64_t rows);
void md_block_slice_dt(const md_block_ctx_t *c, void *base, const int64_t *cols, const md_dtype_t *dts, int n,
                       void **out);

/* A tensor view of registry entry (layer, role) inside base (the parameter
 * or the gradient buffer), 2-D for matrices ([E,1,K] is seen as (E, K)),
 * 1-D for vectors. */
md_tensor_t md_param_view(const md_block_ctx_t *c, void *base, int layer, md_param_role_t role);
/* The same in a buffer of dtype dt (c->wparams: dt = c->adtype). */
md_tensor_t md_param_view_as(const md_block_ctx_t *c, void *base, md_dtype_t dt, int layer, md_param_role_t role);

#endif
