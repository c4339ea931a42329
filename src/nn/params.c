#include "nn/params.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/xalloc.h"

typedef struct {
    md_params_t *reg;
    int64_t cap;
} builder_t;

static md_param_t *add(builder_t *b, int layer, md_param_role_t role, int decay, int ndim, int64_t s0, int64_t s1,
                       int64_t s2, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static md_param_t *add(builder_t *b, int layer, md_param_role_t role, int decay, int ndim, int64_t s0, int64_t s1,
                       int64_t s2, const char *fmt, ...)
{
    md_params_t *r = b->reg;
    if (r->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        r->p = md_realloc(r->p, (size_t)b->cap * sizeof *r->p);
    }
    md_param_t *p = &r->p[r->n++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->shape[0] = s0;
    p->shape[1] = s1;
    p->shape[2] = s2;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->numel *= p->shape[i];
    p->decay = decay;
    p->tied_to = -1;
    p->layer = layer;
    p->role = role;
    p->offset = -1;
    return p;
}

static void add_mamba_tensors(builder_t *b, const md_config_t *cfg)
{
    int64_t d = cfg->d_model, E = cfg->d_inner, N = cfg->d_state, R = cfg->dt_rank, K = cfg->d_conv;
    add(b, -1, MD_ROLE_EMBEDDING, 1, 2, cfg->vocab_size, d, 0, "backbone.embeddings.weight");
    for (int i = 0; i < cfg->n_layer; i++) {
        const char *pre = "backbone.layers";
        add(b, i, MD_ROLE_NORM, 0, 1, d, 0, 0, "%s.%d.norm.weight", pre, i);
        add(b, i, MD_ROLE_IN_PROJ, 1, 2, 2 * E, d, 0, "%s.%d.mixer.in_proj.weight", pre, i);
        add(b, i, MD_ROLE_CONV_W, 1, 3, E, 1, K, "%s.%d.mixer.conv1d.weight", pre, i);
        add(b, i, MD_ROLE_CONV_B, 0, 1, E, 0, 0, "%s.%d.mixer.conv1d.bias", pre, i);
        add(b, i, MD_ROLE_X_PROJ, 1, 2, R + 2 * N, E, 0, "%s.%d.mixer.x_proj.weight", pre, i);
        add(b, i, MD_ROLE_DT_PROJ_W, 1, 2, E, R, 0, "%s.%d.mixer.dt_proj.weight", pre, i);
        add(b, i, MD_ROLE_DT_PROJ_B, 0, 1, E, 0, 0, "%s.%d.mixer.dt_proj.bias", pre, i);
        add(b, i, MD_ROLE_A_LOG, 0, 2, E, N, 0, "%s.%d.mixer.A_log", pre, i);
        add(b, i, MD_ROLE_D, 0, 1, E, 0, 0, "%s.%d.mixer.D", pre, i);
        add(b, i, MD_ROLE_OUT_PROJ, 1, 2, d, E, 0, "%s.%d.mixer.out_proj.weight", pre, i);
    }
    add(b, -1, MD_ROLE_NORM_F, 0, 1, d, 0, 0, "backbone.norm_f.weight");
}

/* LlamaForCausalLM's names; q, k, v and gate, up stay adjacent (params.h). */
static void add_transformer_tensors(builder_t *b, const md_config_t *cfg)
{
    int64_t d = cfg->d_model, F = cfg->d_ff;
    add(b, -1, MD_ROLE_EMBEDDING, 1, 2, cfg->vocab_size, d, 0, "model.embed_tokens.weight");
    for (int i = 0; i < cfg->n_layer; i++) {
        const char *pre = "model.layers";
        add(b, i, MD_ROLE_ATTN_NORM, 0, 1, d, 0, 0, "%s.%d.input_layernorm.weight", pre, i);
        add(b, i, MD_ROLE_Q_PROJ, 1, 2, d, d, 0, "%s.%d.self_attn.q_proj.weight", pre, i);
        add(b, i, MD_ROLE_K_PROJ, 1, 2, d, d, 0, "%s.%d.self_attn.k_proj.weight", pre, i);
        add(b, i, MD_ROLE_V_PROJ, 1, 2, d, d, 0, "%s.%d.self_attn.v_proj.weight", pre, i);
        add(b, i, MD_ROLE_O_PROJ, 1, 2, d, d, 0, "%s.%d.self_attn.o_proj.weight", pre, i);
        add(b, i, MD_ROLE_MLP_NORM, 0, 1, d, 0, 0, "%s.%d.post_attention_layernorm.weight", pre, i);
        add(b, i, MD_ROLE_GATE_PROJ, 1, 2, F, d, 0, "%s.%d.mlp.gate_proj.weight", pre, i);
        add(b, i, MD_ROLE_UP_PROJ, 1, 2, F, d, 0, "%s.%d.mlp.up_proj.weight", pre, i);
        add(b, i, MD_ROLE_DOWN_PROJ, 1, 2, d, F, 0, "%s.%d.mlp.down_proj.weight", pre, i);
    }
    add(b, -1, MD_ROLE_NORM_F, 0, 1, d, 0, 0, "model.norm.weight");
}

/* HyenaDNA's names (HF HyenaDNAForCausalLM); the Sin frequency is stored
 * once and aliased as .3 and .5 (params.h). */
static void add_hyena_tensors(builder_t *b, const md_config_t *cfg)
{
    int64_t d = cfg->d_model, F = cfg->d_ff, K = cfg->d_conv, O = cfg->filter_order;
    add(b, -1, MD_ROLE_EMBEDDING, 1, 2, cfg->vocab_size, d, 0, "hyena.backbone.embeddings.word_embeddings.weight");
    for (int i = 0; i < cfg->n_layer; i++) {
        char pre[64], flt[96];
        snprintf(pre, sizeof pre, "hyena.backbone.layers.%d", i);
        snprintf(flt, sizeof flt, "%s.mixer.filter_fn.implicit_filter", pre);
        add(b, i, MD_ROLE_LN1_W, 0, 1, d, 0, 0, "%s.norm1.weight", pre);
        add(b, i, MD_ROLE_LN1_B, 0, 1, d, 0, 0, "%s.norm1.bias", pre);
        add(b, i, MD_ROLE_HY_IN_W, 1, 2, 3 * d, d, 0, "%s.mixer.in_proj.weight", pre);
        add(b, i, MD_ROLE_HY_IN_B, 0, 1, 3 * d, 0, 0, "%s.mixer.in_proj.bias", pre);
        add(b, i, MD_ROLE_HY_OUT_W, 1, 2, d, d, 0, "%s.mixer.out_proj.weight", pre);
        add(b, i, MD_ROLE_HY_OUT_B, 0, 1, d, 0, 0, "%s.mixer.out_proj.bias", pre);
        add(b, i, MD_ROLE_SHORT_W, 1, 3, 3 * d, 1, K, "%s.mixer.short_filter.weight", pre);
        add(b, i, MD_ROLE_SHORT_B, 0, 1, 3 * d, 0, 0, "%s.mixer.short_filter.bias", pre);
        add(b, i, MD_ROLE_FILTER_D, 0, 1, d, 0, 0, "%s.mixer.filter_fn.bias", pre);
        add(b, i, MD_ROLE_FILT0_W, 0, 2, O, 5, 0, "%s.0.weight", flt);
        add(b, i, MD_ROLE_FILT0_B, 0, 1, O, 0, 0, "%s.0.bias", flt);
        int64_t freq = b->reg->n;
        add(b, i, MD_ROLE_FILT_FREQ, 0, 2, 1, O, 0, "%s.1.freq", flt);
        add(b, i, MD_ROLE_FILT2_W, 0, 2, O, O, 0, "%s.2.weight", flt);
        add(b, i, MD_ROLE_FILT2_B, 0, 1, O, 0, 0, "%s.2.bias", flt);
        add(b, i, MD_ROLE_FILT_FREQ3, 0, 2, 1, O, 0, "%s.3.freq", flt)->tied_to = (int)freq;
        add(b, i, MD_ROLE_FILT4_W, 0, 2, O, O, 0, "%s.4.weight", flt);
        add(b, i, MD_ROLE_FILT4_B, 0, 1, O, 0, 0, "%s.4.bias", flt);
        add(b, i, MD_ROLE_FILT_FREQ5, 0, 2, 1, O, 0, "%s.5.freq", flt)->tied_to = (int)freq;
        add(b, i, MD_ROLE_FILT6_W, 0, 2, d, O, 0, "%s.6.weight", flt);
        add(b, i, MD_ROLE_LN2_W, 0, 1, d, 0, 0, "%s.norm2.weight", pre);
        add(b, i, MD_ROLE_LN2_B, 0, 1, d, 0, 0, "%s.norm2.bias", pre);
        add(b, i, MD_ROLE_FC1_W, 1, 2, F, d, 0, "%s.mlp.fc1.weight", pre);
        add(b, i, MD_ROLE_FC1_B, 0, 1, F, 0, 0, "%s.mlp.fc1.bias", pre);
        add(b, i, MD_ROLE_FC2_W, 1, 2, d, F, 0, "%s.mlp.fc2.weight", pre);
        add(b, i, MD_ROLE_FC2_B, 0, 1, d, 0, 0, "%s.mlp.fc2.bias", pre);
    }
    add(b, -1, MD_ROLE_NORM_F, 0, 1, d, 0, 0, "hyena.backbone.ln_f.weight");
    add(b, -1, MD_ROLE_NORM_F_B, 0, 1, d, 0, 0, "hyena.backbone.ln_f.bias");
}

int md_params_build(const md_config_t *cfg, md_params_t *reg)
{
    memset(reg, 0, sizeof *reg);
    if ((unsigned)cfg->arch > MD_ARCH_TRANSFORMER) {
        md_error("model: no parameter registry for the %s architecture yet", md_arch_name(cfg->arch));
        return -1;
    }
    builder_t b = {reg, 0};
    int64_t d = cfg->d_model, V = cfg->vocab_size;
    if (cfg->arch == MD_ARCH_TRANSFORMER) add_transformer_tensors(&b, cfg);
    else if (cfg->arch == MD_ARCH_HYENA) add_hyena_tensors(&b, cfg);
    else add_mamba_tensors(&b, cfg);
    md_param_t *head = add(&b, -1, MD_ROLE_LM_HEAD, 1, 2, V, d, 0, "lm_head.weight");
    if (cfg->tie_embeddings) head->tied_to = 0;
    if (cfg->n_classes > 0) {
        add(&b, -1, MD_ROLE_CLS_W, 1, 2, cfg->n_classes, d, 0, "classifier.weight");
        add(&b, -1, MD_ROLE_CLS_B, 0, 1, cfg->n_classes, 0, 0, "classifier.bias");
    }

    /* Storage: decayed tensors first, each group in entry order; offsets
     * rounded to 16 elements would waste nothing for these sizes but would
     * break the "numel = parameter count" contract, so they are packed. */
    int64_t off = 0;
    for (int pass = 1; pass >= 0; pass--) {
        for (int64_t i = 0; i < reg->n; i++) {
            md_param_t *p = &reg->p[i];
            if (p->tied_to >= 0 || p->decay != pass) continue;
            p->offset = off;
            off += p->numel;
        }
        if (pass == 1) reg->n_decay = off;
    }
    reg->numel = off;
    for (int64_t i = 0; i < reg->n; i++)
        if (reg->p[i].tied_to >= 0) reg->p[i].offset = reg->p[reg->p[i].tied_to].offset;

    reg->n_layer = cfg->n_layer;
    size_t n_index = (size_t)(cfg->n_layer + 1) * MD_N_ROLES;
    reg->index = md_malloc(n_index * sizeof *reg->index);
    for (size_t i = 0; i < n_index; i++) reg->index[i] = -1;
    for (int64_t i = 0; i < reg->n; i++) {
        const md_param_t *p = &reg->p[i];
        int64_t layer = p->layer < 0 ? cfg->n_layer : p->layer;
        reg->index[layer * MD_N_ROLES + p->role] = (int)i;
    }
    return 0;
}

void md_params_free(md_params_t *reg)
{
    free(reg->p);
    free(reg->index);
    memset(reg, 0, sizeof *reg);
}

int64_t md_params_find(const md_params_t *reg, const char *name)
{
    for (int64_t i = 0; i < reg->n; i++)
        if (!strcmp(reg->p[i].name, name)) return i;
    return -1;
}

const md_param_t *md_params_get(const md_params_t *reg, int layer, md_param_role_t role)
{
    if (layer >= reg->n_layer || (int)role < 0 || role >= MD_N_ROLES) return NULL;
    int64_t l = layer < 0 ? reg->n_layer : layer;
    int i = reg->index[l * MD_N_ROLES + role];
    return i < 0 ? NULL : &reg->p[i];
}

int64_t md_params_count_no_embed(const md_params_t *reg)
{
    const md_param_t *e = md_params_get(reg, -1, MD_ROLE_EMBEDDING);
    return reg->numel - (e ? e->numel : 0);
}

char *md_param_shape_str(const md_param_t *p, char *buf, int size)
{
    int n = snprintf(buf, size, "[");
    for (int i = 0; i < p->ndim && n < size; i++)
        n += snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)p->shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}
