/* The model's state, shared by model.c (planning, allocation, weights) and
 * model_run.c (the forward and backward drivers). Internal to src/nn. */
#ifndef MD_NN_MODEL_INTERNAL_H
#define MD_NN_MODEL_INTERNAL_H

#include "nn/mamba.h"
#include "nn/model.h"

/* What the model needs of a block architecture: the sizes of its saved
 * activations (one set per layer, or one shared set with recompute), of
 * the backward's scratch (one set; scratch_bytes takes the dtype it is
 * stored in, md_block_ctx_t.adtype) and of its op workspace (scan_bwd's,
 * attention_bwd's), and the block's forward and backward. acts_bytes takes
 * the plan (mamba.h, md_acts_plan_t; fwd and bwd find it in
 * md_block_ctx_t.acts_plan): a set per layer may keep what a shared one
 * recomputes (the Mamba block's hn). inference = 1 (md_model_opts_t.inference,
 * MD_ACTS_FORWARD_ONLY): the sizes for the forward alone, which may
 * leave out what only the backward reads (the Mamba block's scan states
 * and scan_bwd workspace), and fwd finds md_block_forward_only true. A set is laid out
 * for the plan's max_batch x max_len rows; fwd/bwd take the set's base and
 * find this call's rows from the context (md_block_ctx_t.r0, seq, whole).
 * supported() says whether the backend has the block's ops. */
typedef struct md_block_arch {
    size_t (*acts_bytes)(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                         int64_t max_len, md_acts_plan_t plan);
    size_t (*scratch_bytes)(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows);
    size_t (*ws_bytes)(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                       int inference);
    void (*fwd)(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts);
    void (*bwd)(const md_block_ctx_t *c, int layer, const void *h_in, void *g, void *acts, void *scratch);
    double (*flops_per_token)(const md_config_t *cfg, int64_t L, double *matmul_only);
    int (*supported)(const md_backend_t *be);
    /* Optional (NULL: none): a constant buffer the blocks read through
     * md_block_ctx_t.consts, planned for max_len and filled once when the
     * model is made. */
    size_t (*consts_bytes)(const md_config_t *cfg, md_dtype_t dt, int64_t max_len);
    void (*consts_init)(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_len, void *consts);
    /* The final norm: 0 RMSNorm (weight MD_ROLE_NORM_F), 1 LayerNorm
     * (weight MD_ROLE_NORM_F, bias MD_ROLE_NORM_F_B). */
    int final_layernorm;
    /* 1: fwd honours md_block_ctx_t.branch_only and h_res (mamba.h), so the
     * driver defers each block's residual add into the next RMSNorm; and,
     * in inference, next_norm, norm_y and norm_rstd, so that the
     * add and that RMSNorm go into the block's last Linear (model_run.c) */
    int defer_residual;
    /* 1: the block stores its activations and their gradients in the
     * backend's activation dtype (md_act_dtype) and reads its GEMM weights
     * from the model's copies in that dtype (md_block_ctx_t.adtype,
     * wparams); 0: everything in the model's dtype */
    int act_storage;
    /* 1: only bwd uses md_block_ctx_t.op_ws, so a whole-batch training plan
     * may lay it over the buffers the backward is done with before the
     * blocks (model.c, make_plan) */
    int ws_bwd_only;
} md_block_arch_t;

/* The dtype in which arch's blocks store activations on be for a model of
 * dtype dt (md_block_ctx_t.adtype). */
static inline md_dtype_t md_block_act_dtype(const md_block_arch_t *arch, const md_backend_t *be, md_dtype_t dt)
{
    return arch->act_storage ? md_act_dtype(be, dt) : dt;
}

/* The table of arch, or NULL when its block is not implemented
 * (block_arch.c). */
const md_block_arch_t *md_block_arch(md_arch_t arch);

/* Sequences per gradient slot group: on the CPU a batch of B >= 2 runs
 * sequence by sequence on OpenMP threads, sequence b adding its parameter
 * gradients into slot b % n_slots; the slots are then summed in order.
 * The slot count depends only on max_batch, so results do not depend on
 * the thread count; it bounds the threads a step can use. */
enum { MD_MAX_SLOTS = 4 };

struct md_model {
    md_config_t cfg;
    const md_backend_t *be;
    md_dtype_t dtype;
    int64_t max_batch, max_len, max_rows;
    md_model_opts_t opts;
    md_params_t reg;
    md_model_memory_t mem;
    const md_block_arch_t *arch;

    md_dtype_t adtype;       /* md_block_act_dtype */
    void *params, *grads, *act, *ws;
    void *wparams;           /* the parameters in adtype, refreshed at every forward; == params when adtype == dtype */
    uint8_t *tok_in, *tok_tgt;

    /* carved from act: every (M, ·) buffer holds max_rows rows, sequence b
     * of a call at rows [b L, (b+1) L) */
    void **resid;            /* n_resid residual streams, (M, d) each: h_0 .. h_L, or (inference) h_l in resid[l % 2] */
    int64_t n_resid;
    void **acts;             /* n_layer activation sets, or 1 shared set with recompute */
    int64_t n_acts;
    md_acts_plan_t acts_plan;   /* how they serve the layers, which they were sized for */
    void *hf, *rstd_f, *mean_f, *logits;   /* mean_f: a LayerNorm final norm only */
    void *consts;            /* the architecture's constants (model_internal.h), or NULL */
    /* carved from ws */
    void *scratch;           /* the blocks' backward scratch */
    /* g: dL/dh through the blocks, in ws or laid over h_0 (make_plan; the
     * backward then embeds h_0 again in h_1's place for block 0); dhf:
     * dL/d(norm_f output), in hf's place (the head's weight gradient reads
     * hf first); op_ws: in ws, or laid over h_L .. logits in act
     * (make_plan) */
    void *g, *dhf, *dlogits, *op_ws, *xent_ws;
    /* sequence-parallel CPU path (n_slots = 0: never used) */
    int64_t n_slots;
    void *slot_grads;                   /* n_slots x numel */
    size_t op_ws_seq, xent_ws_seq;      /* per-slot workspace strides, bytes */
    double *seq_loss;                   /* host, max_batch */
    int64_t *seq_count;
    /* the classification head (cfg.n_classes > 0; all NULL otherwise),
     * carved from act after logits: pooled and dpooled (max_batch, d),
     * logits and dlogits (max_batch, C), ones (max(max_len, max_batch))
     * for the mean pooling and the bias as gemms */
    void *cls_pooled, *cls_logits, *cls_dlogits, *cls_dpooled, *cls_ones;
    double *cls_host;                   /* host, max_batch x C: logits in, log-probabilities out */
    void *cls_host_io;                  /* host, max_batch x C of the model dtype: the copies' staging */
    /* MD_POISON_DEAD=1 in the environment when the model was made: a
     * whole-batch backward zeroes the tail h_L .. logits (tail_bytes from
     * resid[n_layer]) once the final norm's backward has read it, and each
     * block input h_l, l >= 1, once block l's backward has, so that tests
     * see any buffer still live there (make_plan lays op_ws over the tail;
     * block 0's backward takes h_0 again in h_1's place) */
    int poison_dead;
    size_t tail_bytes;
    /* md_model_forward_backward_dev's loss accumulator (device), set for
     * the call; NULL otherwise */
    double *loss_acc;
    /* md_model_set_grad_ready's notification, or NULL */
    md_grad_ready_fn grad_ready;
    void *grad_ready_ud;
};

#endif
