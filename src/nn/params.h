/* The parameter registry: where each named tensor lives in ONE flat buffer.
 *
 * A model's parameters are a single contiguous buffer of `numel` elements
 * (f32 for training, f64 in the gradient checks), and its gradients a
 * second buffer with the identical layout. The registry names every tensor
 * with its HF transformers name (MambaForCausalLM for Mamba,
 * LlamaForCausalLM for Transformer++) and gives its
 * shape, element offset and count, and whether AdamW decays it. The
 * optimizer, checkpoints and the data-parallel all-reduce all work on the
 * flat buffers through this table.
 *
 * Storage order: every tensor that takes weight decay comes first, so that
 * elements [0, n_decay) decay and [n_decay, numel) do not; AdamW is then
 * one pass with a boundary (md_backend_t.adamw). Decay: embeddings and the
 * matrix weights (in_proj, conv1d.weight, x_proj, dt_proj.weight,
 * out_proj; q/k/v/o_proj, gate/up/down_proj); no decay: norms, biases
 * (conv1d.bias, dt_proj.bias), A_log, D.
 *
 * Transformer++ entries per layer: input_layernorm, q, k, v, o_proj,
 * post_attention_layernorm, gate, up, down_proj. Because storage follows
 * entry order within the decayed group, q, k and v of a layer are adjacent
 * (one (3d, d) matrix) and so are gate and up (one (2 d_ff, d) matrix): the
 * block runs each pair/triple as a single gemm.
 *
 * Hyena entries per layer: HyenaDNA's (HF HyenaDNAForCausalLM) names;
 * decay on the embedding and the in_proj, out_proj, short_filter, fc1 and
 * fc2 weights, none on norms, biases, D and the implicit filter (HyenaDNA
 * gives the filter weight decay 0). HyenaDNA's filter MLP applies ONE Sin
 * module three times, so its state dict holds the same frequency as .1,
 * .3 and .5.freq: here .3 and .5 are aliases of .1 (like a tied head).
 *
 * Entry order (params->p[i]) is the checkpoint order: embeddings, then each
 * layer's tensors, then norm_f, then lm_head.weight, then (a classifier
 * only) classifier.weight and classifier.bias. The head's names are the
 * same for every architecture; a backbone's entries do not depend on
 * whether a head follows, so an LM checkpoint loads into a classifier's
 * backbone by name.
 *
 * Tied tensors: with tie_embeddings, lm_head.weight is an ALIAS entry: its
 * tied_to is the index of backbone.embeddings.weight, its offset/numel are
 * that entry's, and it owns no storage (numel of the buffer counts it
 * once). Code that walks storage (optimizer, init, counts) skips aliases;
 * checkpoint export writes every entry, aliases included, so that HF finds
 * lm_head.weight; checkpoint import reads the owner and may ignore aliases.
 */
#ifndef MD_NN_PARAMS_H
#define MD_NN_PARAMS_H

#include <stdint.h>

#include "nn/config.h"

/* What a tensor is within its block; the model and the initialiser look
 * tensors up by (layer, role) rather than by name. */
typedef enum {
    MD_ROLE_EMBEDDING = 0,   /* backbone.embeddings.weight [V, d] */
    MD_ROLE_NORM_F,          /* backbone.norm_f.weight [d] */
    MD_ROLE_LM_HEAD,         /* lm_head.weight [V, d] (an alias when tied) */
    MD_ROLE_NORM,            /* layers.i.norm.weight [d] */
    MD_ROLE_IN_PROJ,         /* layers.i.mixer.in_proj.weight [2E, d] */
    MD_ROLE_CONV_W,          /* layers.i.mixer.conv1d.weight [E, 1, K] */
    MD_ROLE_CONV_B,          /* layers.i.mixer.conv1d.bias [E] */
    MD_ROLE_X_PROJ,          /* layers.i.mixer.x_proj.weight [R+2N, E] */
    MD_ROLE_DT_PROJ_W,       /* layers.i.mixer.dt_proj.weight [E, R] */
    MD_ROLE_DT_PROJ_B,       /* layers.i.mixer.dt_proj.bias [E] */
    MD_ROLE_A_LOG,           /* layers.i.mixer.A_log [E, N] */
    MD_ROLE_D,               /* layers.i.mixer.D [E] */
    MD_ROLE_OUT_PROJ,        /* layers.i.mixer.out_proj.weight [d, E] */
    /* Transformer++ (LlamaForCausalLM names under model.layers.i) */
    MD_ROLE_ATTN_NORM,       /* input_layernorm.weight [d] */
    MD_ROLE_Q_PROJ,          /* self_attn.q_proj.weight [d, d] */
    MD_ROLE_K_PROJ,          /* self_attn.k_proj.weight [d, d] */
    MD_ROLE_V_PROJ,          /* self_attn.v_proj.weight [d, d] */
    MD_ROLE_O_PROJ,          /* self_attn.o_proj.weight [d, d] */
    MD_ROLE_MLP_NORM,        /* post_attention_layernorm.weight [d] */
    MD_ROLE_GATE_PROJ,       /* mlp.gate_proj.weight [F, d] */
    MD_ROLE_UP_PROJ,         /* mlp.up_proj.weight [F, d] */
    MD_ROLE_DOWN_PROJ,       /* mlp.down_proj.weight [d, F] */
    /* Hyena (HyenaDNA's names under hyena.backbone.layers.i; O = filter_order) */
    MD_ROLE_NORM_F_B,        /* hyena.backbone.ln_f.bias [d] (ln_f.weight is MD_ROLE_NORM_F) */
    MD_ROLE_LN1_W,           /* norm1.weight [d] */
    MD_ROLE_LN1_B,           /* norm1.bias [d] */
    MD_ROLE_HY_IN_W,         /* mixer.in_proj.weight [3d, d] */
    MD_ROLE_HY_IN_B,         /* mixer.in_proj.bias [3d] */
    MD_ROLE_HY_OUT_W,        /* mixer.out_proj.weight [d, d] */
    MD_ROLE_HY_OUT_B,        /* mixer.out_proj.bias [d] */
    MD_ROLE_SHORT_W,         /* mixer.short_filter.weight [3d, 1, K] */
    MD_ROLE_SHORT_B,         /* mixer.short_filter.bias [3d] */
    MD_ROLE_FILTER_D,        /* mixer.filter_fn.bias [d]: D */
    MD_ROLE_FILT0_W,         /* mixer.filter_fn.implicit_filter.0.weight [O, 5] */
    MD_ROLE_FILT0_B,         /* .0.bias [O] */
    MD_ROLE_FILT_FREQ,       /* .1.freq [1, O]: the one Sin module of the three */
    MD_ROLE_FILT2_W,         /* .2.weight [O, O] */
    MD_ROLE_FILT2_B,         /* .2.bias [O] */
    MD_ROLE_FILT_FREQ3,      /* .3.freq: an alias of .1.freq */
    MD_ROLE_FILT4_W,         /* .4.weight [O, O] */
    MD_ROLE_FILT4_B,         /* .4.bias [O] */
    MD_ROLE_FILT_FREQ5,      /* .5.freq: an alias of .1.freq */
    MD_ROLE_FILT6_W,         /* .6.weight [d, O] (no bias) */
    MD_ROLE_LN2_W,           /* norm2.weight [d] */
    MD_ROLE_LN2_B,           /* norm2.bias [d] */
    MD_ROLE_FC1_W,           /* mlp.fc1.weight [F, d] */
    MD_ROLE_FC1_B,           /* mlp.fc1.bias [F] */
    MD_ROLE_FC2_W,           /* mlp.fc2.weight [d, F] */
    MD_ROLE_FC2_B,           /* mlp.fc2.bias [d] */
    /* the classification head (cfg->n_classes > 0), any architecture */
    MD_ROLE_CLS_W,           /* classifier.weight [C, d] (decayed) */
    MD_ROLE_CLS_B,           /* classifier.bias [C] */
    MD_N_ROLES
} md_param_role_t;

typedef struct md_param {
    char name[96];           /* HF name, e.g. "backbone.layers.3.mixer.A_log" */
    int ndim;
    int64_t shape[4];
    int64_t offset;          /* first element in the flat buffers */
    int64_t numel;           /* product of shape */
    int decay;               /* 1: AdamW applies weight decay */
    int tied_to;             /* -1, or the owner's index for an alias */
    int layer;               /* block index, -1 outside the blocks */
    md_param_role_t role;
} md_param_t;

typedef struct md_params {
    md_param_t *p;           /* entries, aliases included, in checkpoint order */
    int64_t n;
    int64_t numel;           /* elements of storage (aliases not counted) */
    int64_t n_decay;         /* storage [0, n_decay) takes weight decay */
    int64_t n_layer;
    /* index[layer * MD_N_ROLES + role] for block tensors and
     * index[n_layer * MD_N_ROLES + role] for the others; -1 if absent */
    int *index;
} md_params_t;

/* Builds the registry for cfg (which must have passed md_config_validate).
 * Returns 0, or -1 after one error line for an architecture without a
 * registry yet. */
int md_params_build(const md_config_t *cfg, md_params_t *reg);
void md_params_free(md_params_t *reg);

/* Index of the entry named `name`, or -1. */
int64_t md_params_find(const md_params_t *reg, const char *name);
/* The entry of (layer, role); layer -1 for non-block tensors. NULL if absent. */
const md_param_t *md_params_get(const md_params_t *reg, int layer, md_param_role_t role);

/* Storage elements excluding the embedding (the papers' count). */
int64_t md_params_count_no_embed(const md_params_t *reg);

/* "[256, 1, 4]" into buf; returns buf. */
char *md_param_shape_str(const md_param_t *p, char *buf, int size);

#endif
