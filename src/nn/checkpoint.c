#include "nn/checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_info.h"
#include "nn/params.h"
#include "seq/tokenizer.h"
#include "util/log.h"
#include "util/xalloc.h"

#define STATE_FORMAT "mambadna-train-state"

char *md_ckpt_tokenizer_json(void)
{
    json_t *vocab = json_array();
    for (int i = 0; i < MD_VOCAB_SIZE; i++) json_array_append_new(vocab, json_string(md_tok_names[i]));
    json_t *o = json_pack("{s:s, s:o, s:i, s:i, s:i, s:i, s:i, s:b}", "type", "char", "vocab", vocab,
                          "pad_token_id", MD_TOK_PAD, "unk_token_id", MD_TOK_UNK, "cls_token_id", MD_TOK_CLS,
                          "sep_token_id", MD_TOK_SEP, "bos_token_id", MD_TOK_BOS, "uppercase", 1);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *r = md_strdup(s);
    free(s);
    return r;
}

void md_ckpt_close(md_ckpt_t *c)
{
    if (!c) return;
    md_st_free(c->st);
    free(c->path);
    free(c);
}

const char *md_ckpt_meta(const md_ckpt_t *c, const char *key)
{
    return md_st_meta(c->st, key);
}

/* A LlamaForCausalLM without our config (an exported folder's weights):
 * sizes from the shapes; the head count, which no shape shows, from
 * config.json beside the file when it has num_attention_heads, else the
 * default rule for the width (config.h). */
static int infer_llama_config(md_ckpt_t *c, const md_st_tensor_t *emb)
{
    const md_st_file_t *f = c->st;
    int64_t n_layer = 0;
    char name[128];
    for (;; n_layer++) {
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.q_proj.weight", (long long)n_layer);
        if (!md_st_find(f, name)) break;
    }
    const md_st_tensor_t *gate = md_st_find(f, "model.layers.0.mlp.gate_proj.weight");
    if (n_layer == 0 || !gate || gate->ndim != 2 || emb->ndim != 2) {
        md_error("'%s' is not a Llama checkpoint: no model config, and no model.layers.0 attention and MLP tensors",
                 c->path);
        return -1;
    }
    md_config_init(&c->cfg, MD_ARCH_TRANSFORMER, emb->shape[1], n_layer);
    c->cfg.vocab_size = emb->shape[0];
    c->cfg.d_ff = gate->shape[0];
    /* config.json of the same folder, if any */
    const char *slash = strrchr(c->path, '/');
    size_t dir = slash ? (size_t)(slash - c->path + 1) : 0;
    char *cj = md_malloc(dir + 16);
    memcpy(cj, c->path, dir);
    strcpy(cj + dir, "config.json");
    json_t *o = json_load_file(cj, 0, NULL);
    free(cj);
    json_t *h = o ? json_object_get(o, "num_attention_heads") : NULL, *t = o ? json_object_get(o, "rope_theta") : NULL;
    if (h && json_is_integer(h)) c->cfg.n_heads = json_integer_value(h);
    if (t && json_is_number(t)) c->cfg.rope_theta = json_number_value(t);
    json_decref(o);
    c->config_inferred = 1;
    return 0;
}

/* A file without our config: read the sizes off the tensors, as a Mamba
 * (or Llama) saved by transformers has them. */
static int infer_config(md_ckpt_t *c)
{
    const md_st_file_t *f = c->st;
    const md_st_tensor_t *llama = md_st_find(f, "model.embed_tokens.weight");
    if (llama) return infer_llama_config(c, llama);
    const md_st_tensor_t *emb = md_st_find(f, "backbone.embeddings.weight");
    if (!emb || emb->ndim != 2) {
        md_error("'%s' is not a Mamba checkpoint: it has no model config and no 2-D backbone.embeddings.weight",
                 c->path);
        return -1;
    }
    int64_t n_layer = 0;
    char name[128];
    for (;; n_layer++) {
        snprintf(name, sizeof name, "backbone.layers.%lld.mixer.in_proj.weight", (long long)n_layer);
        if (!md_st_find(f, name)) break;
    }
    snprintf(name, sizeof name, "backbone.layers.0.mixer.A_log");
    const md_st_tensor_t *alog = md_st_find(f, name);
    const md_st_tensor_t *dtw = md_st_find(f, "backbone.layers.0.mixer.dt_proj.weight");
    const md_st_tensor_t *conv = md_st_find(f, "backbone.layers.0.mixer.conv1d.weight");
    if (n_layer == 0 || !alog || alog->ndim != 2 || !dtw || dtw->ndim != 2 || !conv || conv->ndim != 3) {
        md_error("'%s' is not a Mamba checkpoint: no model config, and no backbone.layers.0.mixer tensors", c->path);
        return -1;
    }
    int64_t d = emb->shape[1], E = alog->shape[0];
    md_config_init(&c->cfg, MD_ARCH_MAMBA, d, n_layer);
    c->cfg.vocab_size = emb->shape[0];
    c->cfg.d_state = alog->shape[1];
    c->cfg.dt_rank = dtw->shape[1];
    c->cfg.d_conv = conv->shape[2];
    c->cfg.expand = d > 0 ? E / d : 0;
    c->cfg.d_inner = E;
    c->config_inferred = 1;
    return 0;
}

/* Every stored tensor of the registry must be there, with its shape and a
 * float dtype; a tied head may be absent (transformers omits it). A tensor
 * the registry lacks means the file holds another model (more layers than
 * its config says, another architecture's parts): refused by name rather
 * than silently dropped. */
static int check_tensors(const md_ckpt_t *c)
{
    md_params_t reg;
    if (md_params_build(&c->cfg, &reg) < 0) return -1;
    int ret = 0;
    for (int64_t i = 0; i < reg.n && ret == 0; i++) {
        const md_param_t *p = &reg.p[i];
        const md_st_tensor_t *t = md_st_find(c->st, p->name);
        if (!t) {
            if (p->tied_to >= 0) continue;
            md_error("checkpoint '%s' lacks tensor '%s' (is it a %s model of this size?)", c->path, p->name,
                     md_arch_name(c->cfg.arch));
            ret = -1;
            break;
        }
        int same = t->ndim == p->ndim;
        for (int k = 0; same && k < p->ndim; k++) same = t->shape[k] == p->shape[k];
        if (!same) {
            char want[64];
            md_param_shape_str(p, want, sizeof want);
            md_error("checkpoint '%s': tensor '%s' does not have the shape %s that its config implies", c->path,
                     p->name, want);
            ret = -1;
        } else if (t->dtype != MD_ST_F32 && t->dtype != MD_ST_BF16 && t->dtype != MD_ST_F16 &&
                   t->dtype != MD_ST_F64) {
            md_error("checkpoint '%s': tensor '%s' has dtype %s, not a floating-point type", c->path, p->name,
                     md_st_dtype_name(t->dtype));
            ret = -1;
        }
    }
    for (int i = 0; i < c->st->n_tensors && ret == 0; i++) {
        const char *name = c->st->tensors[i].name;
        if (md_params_find(&reg, name) >= 0) continue;
        md_error("checkpoint '%s' holds tensor '%s', which a %lld x %lld %s model does not have (another model?)",
                 c->path, name, (long long)c->cfg.d_model, (long long)c->cfg.n_layer, md_arch_name(c->cfg.arch));
        ret = -1;
    }
    md_params_free(&reg);
    return ret;
}

md_ckpt_t *md_ckpt_open(const char *path)
{
    md_ckpt_t *c = md_calloc(1, sizeof *c);
    c->path = md_strdup(path);
    if (!(c->st = md_st_read(path))) goto fail;
    const char *fmt = md_st_meta(c->st, "format");
    if (fmt && !strcmp(fmt, STATE_FORMAT)) {
        md_error("'%s' is a training state file, not model weights (give the .safetensors beside it)", path);
        goto fail;
    }
    const char *type = md_st_meta(c->st, "model_type");
    md_arch_t a;
    if (type && md_arch_parse(type, &a) < 0) {
        md_error("checkpoint '%s' holds a model of type '%s', which mambadna does not know", path, type);
        goto fail;
    }
    const char *cfg_json = md_st_meta(c->st, "config");
    if (!cfg_json && type && a == MD_ARCH_HYENA) {
        md_error("checkpoint '%s' holds a hyena model without mambadna's model config (l_max cannot be inferred)",
                 path);
        goto fail;
    }
    if (cfg_json) {
        if (md_config_from_json(cfg_json, &c->cfg, path) < 0) goto fail;
    } else if (infer_config(c) < 0) {
        goto fail;
    }
    if (md_config_validate(&c->cfg, path) < 0) goto fail;
    if (check_tensors(c) < 0) goto fail;
    return c;
fail:
    md_ckpt_close(c);
    return NULL;
}

static int same_backbone(const md_config_t *a, const md_config_t *b)
{
    return a->arch == b->arch && a->d_model == b->d_model && a->n_layer == b->n_layer &&
           a->vocab_size == b->vocab_size && a->d_inner == b->d_inner && a->d_state == b->d_state &&
           a->dt_rank == b->dt_rank && a->d_conv == b->d_conv && a->tie_embeddings == b->tie_embeddings &&
           a->norm_eps == b->norm_eps && a->n_heads == b->n_heads && a->d_ff == b->d_ff &&
           a->rope_theta == b->rope_theta && a->l_max == b->l_max && a->filter_order == b->filter_order;
}

static int same_config(const md_config_t *a, const md_config_t *b)
{
    return same_backbone(a, b) && a->n_classes == b->n_classes && a->cls_pooling == b->cls_pooling;
}

static int is_head(const md_param_t *p) { return p->role == MD_ROLE_CLS_W || p->role == MD_ROLE_CLS_B; }

/* Loads the registry's tensors into m, all of them or (backbone_only) all
 * but the classification head, which keeps m's values. */
static int load_params(const md_ckpt_t *c, md_model_t *m, int backbone_only)
{
    const md_config_t *mc = md_model_config(m);
    if (!(backbone_only ? same_backbone : same_config)(mc, &c->cfg)) {
        if (same_backbone(mc, &c->cfg) && (!c->cfg.n_classes || !mc->n_classes))
            md_error("checkpoint '%s' is a %s, not the %s asked for", c->path,
                     c->cfg.n_classes ? "classifier" : "language model", mc->n_classes ? "classifier" : "language model");
        else if (same_backbone(mc, &c->cfg))
            md_error("checkpoint '%s' has %lld classes (%s pooling), not the %lld (%s) asked for", c->path,
                     (long long)c->cfg.n_classes, md_pooling_name(c->cfg.cls_pooling), (long long)mc->n_classes,
                     md_pooling_name(mc->cls_pooling));
        else
            md_error("checkpoint '%s' is a %s %lld x %lld model, not the %s %lld x %lld one asked for", c->path,
                     md_arch_name(c->cfg.arch), (long long)c->cfg.d_model, (long long)c->cfg.n_layer,
                     md_arch_name(mc->arch), (long long)mc->d_model, (long long)mc->n_layer);
        return -1;
    }
    const md_params_t *reg = md_model_params(m);
    float *host = md_malloc((size_t)reg->numel * sizeof(float) + 1);
    if (backbone_only) md_model_read_params(m, host);
    int ret = 0;
    for (int64_t i = 0; i < reg->n && ret == 0; i++) {
        const md_param_t *p = &reg->p[i];
        if (p->tied_to >= 0 || (backbone_only && is_head(p))) continue;
        ret = md_st_get_f32(c->st, p->name, p->ndim, p->shape, host + p->offset);
    }
    if (ret == 0) {
        /* A tied head that disagrees with the embedding (or an aliased Hyena
         * frequency with its owner) would be silently replaced by it; say so,
         * since the file then describes another model. */
        for (int64_t i = 0; i < reg->n; i++) {
            const md_param_t *p = &reg->p[i];
            const md_st_tensor_t *t = p->tied_to >= 0 ? md_st_find(c->st, p->name) : NULL;
            if (!t || t->dtype != MD_ST_F32) continue;
            if (memcmp(t->data, host + p->offset, (size_t)p->numel * sizeof(float)))
                md_warn("checkpoint '%s': '%s' differs from '%s', to which it is tied; '%s' is used", c->path,
                        p->name, reg->p[p->tied_to].name, reg->p[p->tied_to].name);
        }
        md_model_write_params(m, host);
    }
    free(host);
    return ret;
}

int md_ckpt_load_params(const md_ckpt_t *c, md_model_t *m) { return load_params(c, m, 0); }

int md_ckpt_load_backbone(const md_ckpt_t *c, md_model_t *m) { return load_params(c, m, 1); }

/* The weights file with an optional classifier record. */
static int save_host(const char *path, const md_config_t *cfg, const md_params_t *reg, const float *params,
                     const char *training_json, const char *classifier_json);

int md_ckpt_save_weights_host(const char *path, const md_config_t *cfg, const md_params_t *reg, const float *params,
                              const char *training_json)
{
    return save_host(path, cfg, reg, params, training_json, NULL);
}

static int save_host(const char *path, const md_config_t *cfg, const md_params_t *reg, const float *params,
                     const char *training_json, const char *classifier_json)
{
    md_st_writer_t *w = md_st_writer_new();
    for (int64_t i = 0; i < reg->n; i++) {
        const md_param_t *p = &reg->p[i];
        md_st_add(w, p->name, MD_ST_F32, p->ndim, p->shape, params + p->offset);
    }
    md_st_set_meta(w, "format", "pt");
    md_st_set_meta(w, "model_type", md_arch_name(cfg->arch));
    char *cj = md_config_to_json(cfg);
    md_st_set_meta(w, "config", cj);
    free(cj);
    char *tj = md_ckpt_tokenizer_json();
    md_st_set_meta(w, "tokenizer", tj);
    free(tj);
    md_st_set_meta(w, "mambadna", MD_VERSION);
    if (training_json) md_st_set_meta(w, "training", training_json);
    if (classifier_json) md_st_set_meta(w, "classifier", classifier_json);
    int ret = md_st_write(w, path);
    md_st_writer_free(w);
    return ret;
}

int md_ckpt_save_weights(const char *path, const md_model_t *m, const char *training_json)
{
    const md_params_t *reg = md_model_params(m);
    float *host = md_malloc((size_t)reg->numel * sizeof(float) + 1);
    md_model_read_params(m, host);
    int ret = md_ckpt_save_weights_host(path, md_model_config(m), reg, host, training_json);
    free(host);
    return ret;
}

void md_cls_info_free(md_cls_info_t *info)
{
    for (int64_t i = 0; info->labels && i < info->n_classes; i++) free(info->labels[i]);
    free(info->labels);
    memset(info, 0, sizeof *info);
}

int md_ckpt_save_classifier(const char *path, const md_model_t *m, const char *training_json,
                            const md_cls_info_t *info)
{
    json_t *labels = json_array();
    for (int64_t i = 0; i < info->n_classes; i++) json_array_append_new(labels, json_string(info->labels[i]));
    json_t *o = json_pack("{s:o, s:I, s:s, s:I}", "labels", labels, "n_classes", (json_int_t)info->n_classes,
                          "pooling", md_pooling_name(info->pooling), "seq_len", (json_int_t)info->seq_len);
    char *cj = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    const md_params_t *reg = md_model_params(m);
    float *host = md_malloc((size_t)reg->numel * sizeof(float) + 1);
    md_model_read_params(m, host);
    int ret = save_host(path, md_model_config(m), reg, host, training_json, cj);
    free(host);
    free(cj);
    return ret;
}

int md_ckpt_classifier(const md_ckpt_t *c, md_cls_info_t *info)
{
    memset(info, 0, sizeof *info);
    const char *js = md_st_meta(c->st, "classifier");
    if (c->cfg.n_classes <= 0) {
        md_error("'%s' is a language model, not a classifier: make one with 'mambadna finetune -i %s'", c->path,
                 c->path);
        return -1;
    }
    json_error_t err;
    json_t *o = js ? json_loads(js, 0, &err) : NULL, *labels = o ? json_object_get(o, "labels") : NULL;
    json_t *L = o ? json_object_get(o, "seq_len") : NULL;
    int ok = o && json_is_array(labels) && (int64_t)json_array_size(labels) == c->cfg.n_classes && json_is_integer(L) &&
             json_integer_value(L) >= 1;
    for (size_t i = 0; ok && i < json_array_size(labels); i++) {
        const char *s = json_string_value(json_array_get(labels, i));
        ok = s && *s;
    }
    if (!ok) {
        md_error("classifier '%s': its 'classifier' record is missing or does not list %lld labels and a seq_len",
                 c->path, (long long)c->cfg.n_classes);
        json_decref(o);
        return -1;
    }
    info->n_classes = c->cfg.n_classes;
    info->pooling = c->cfg.cls_pooling;
    info->seq_len = json_integer_value(L);
    info->labels = md_malloc((size_t)info->n_classes * sizeof *info->labels);
    for (int64_t i = 0; i < info->n_classes; i++)
        info->labels[i] = md_strdup(json_string_value(json_array_get(labels, (size_t)i)));
    json_decref(o);
    return 0;
}

char *md_ckpt_state_path(const char *weights_path)
{
    static const char ext[] = ".safetensors";
    size_t n = strlen(weights_path), e = sizeof ext - 1;
    char *s = md_malloc(n + 32);
    if (n > e && !strcmp(weights_path + n - e, ext)) {
        memcpy(s, weights_path, n - e);
        strcpy(s + n - e, ".state.safetensors");
    } else {
        snprintf(s, n + 32, "%s.state.safetensors", weights_path);
    }
    return s;
}

int md_ckpt_save_state(const char *path, const float *m, const float *v, int64_t numel, const char *state_json)
{
    md_st_writer_t *w = md_st_writer_new();
    int64_t shape[1] = {numel};
    md_st_add(w, "adamw.exp_avg", MD_ST_F32, 1, shape, m);
    md_st_add(w, "adamw.exp_avg_sq", MD_ST_F32, 1, shape, v);
    md_st_set_meta(w, "format", STATE_FORMAT);
    md_st_set_meta(w, "state", state_json);
    md_st_set_meta(w, "mambadna", MD_VERSION);
    int ret = md_st_write(w, path);
    md_st_writer_free(w);
    return ret;
}

int md_ckpt_load_state(const char *path, float *m, float *v, int64_t numel, char **state_json)
{
    md_st_file_t *f = md_st_read(path);
    if (!f) return -1;
    int ret = -1;
    const char *fmt = md_st_meta(f, "format"), *js = md_st_meta(f, "state");
    if (!fmt || strcmp(fmt, STATE_FORMAT) || !js) {
        md_error("'%s' is not a mambadna training state file", path);
        goto out;
    }
    const md_st_tensor_t *t = md_st_find(f, "adamw.exp_avg");
    if (t && (t->ndim != 1 || t->shape[0] != numel)) {
        md_error("training state '%s' holds moments for %lld parameters, but the model has %lld", path,
                 (long long)t->shape[0], (long long)numel);
        goto out;
    }
    int64_t shape[1] = {numel};
    if (md_st_get_f32(f, "adamw.exp_avg", 1, shape, m) < 0 || md_st_get_f32(f, "adamw.exp_avg_sq", 1, shape, v) < 0)
        goto out;
    *state_json = md_strdup(js);
    ret = 0;
out:
    md_st_free(f);
    return ret;
}
