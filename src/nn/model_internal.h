/* The model's state, shared by model.c (planning, allocation, weights) and
 * model_run.c (the forward and backward drivers). Internal to src/nn. */
#ifndef MD_NN_MODEL_INTERNAL_H
#define MD_NN_MODEL_INTERNAL_H

#include "nn/mamba.h"
#include "nn/model.h"

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

    void *params, *grads, *act, *ws;
    uint8_t *tok_in, *tok_tgt;

    /* carved from act: every (M, ·) buffer holds max_rows rows, sequence b
     * of a call at rows [b L, (b+1) L) */
    void **resid;            /* n_layer + 1 residual streams h_0 .. h_L, (M, d) each */
    md_mamba_acts_t *acts;   /* n_layer sets, or 1 shared set with recompute */
    int64_t n_acts;
    void *hf, *rstd_f, *logits;
    /* carved from ws */
    md_mamba_scratch_t scratch;
    void *g, *dlogits, *scan_ws, *xent_ws;
    /* sequence-parallel CPU path (n_slots = 0: never used) */
    int64_t n_slots;
    void *slot_grads;                   /* n_slots x numel */
    size_t scan_ws_seq, xent_ws_seq;    /* per-slot workspace strides, bytes */
    size_t states_seq;                  /* per-sequence stride in each layer's scan states, bytes */
    double *seq_loss;                   /* host, max_batch */
    int64_t *seq_count;
};

#endif
