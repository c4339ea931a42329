/* Model checkpoints: the weights as safetensors that HF transformers loads,
 * and the training state beside them.
 *
 * Weights file (e.g. model.safetensors): every registry entry under its HF
 * name and shape (MambaForCausalLM: backbone.embeddings.weight, ...,
 * conv1d.weight [E,1,K], ..., lm_head.weight), F32, in registry order. A
 * tied lm_head.weight is written as its own tensor holding the embedding's
 * values, as HF's from_pretrained expects to find it. __metadata__:
 *   format        "pt" (what transformers' loader requires)
 *   model_type    "mamba" or "transformer"
 *   config        md_config_to_json(): our full model config
 *   tokenizer     {"type": "char", "vocab": ["[CLS]", ..., "N", ...], "pad_token_id": 4, ...}
 *   mambadna      the writing program's version
 *   training      optional JSON about the run (step, tokens, window length)
 *   classifier    a classifier only (config n_classes > 0): JSON
 *                 {"labels": [names], "n_classes": C, "pooling": "last"|"mean",
 *                  "seq_len": the training length L}
 * A classifier checkpoint has the backbone's tensors under the same names as
 * a language model's, plus classifier.weight [C, d] and classifier.bias [C].
 * A file without `config` (e.g. one saved by transformers itself) is
 * accepted when its shapes describe a Mamba, or a Llama (Transformer++:
 * model.embed_tokens.weight, model.layers.i.self_attn.q_proj.weight, ...),
 * with our 16-token vocabulary: the config is inferred from them (a
 * Llama's head count from config.json beside the file when there is one).
 *
 * Training state file (md_ckpt_state_path: model.safetensors ->
 * model.state.safetensors): the AdamW moments as F32 tensors
 * "adamw.exp_avg" and "adamw.exp_avg_sq" (flat, registry storage layout)
 * and __metadata__ format "mambadna-train-state" plus "state", a JSON
 * string the trainer defines (step, data position, options).
 *
 * Both are written atomically (util/outfile.h): an existing checkpoint is
 * replaced whole or left untouched. Each records its step; the trainer
 * replaces the two as a pair so that a kill between them still leaves a
 * matching pair (train/trainer.c: md_trainer_save, md_trainer_resume).
 */
#ifndef MD_NN_CHECKPOINT_H
#define MD_NN_CHECKPOINT_H

#include <stdint.h>

#include "nn/config.h"
#include "nn/model.h"
#include "nn/safetensors.h"

typedef struct md_ckpt {
    char *path;
    md_st_file_t *st;
    md_config_t cfg;
    int config_inferred;     /* 1: no config metadata, taken from the shapes */
} md_ckpt_t;

/* Reads a weights file and works out its model config. NULL after one error
 * line naming the file: unreadable, corrupt or truncated (see
 * safetensors.h), a model type other than Mamba or Transformer++, an invalid config, or a
 * tensor of the registry missing or of the wrong shape. */
md_ckpt_t *md_ckpt_open(const char *path);
void md_ckpt_close(md_ckpt_t *c);
/* A metadata value, or NULL. */
const char *md_ckpt_meta(const md_ckpt_t *c, const char *key);

/* Copies the checkpoint's weights into m, whose config must equal the
 * checkpoint's. 0, or -1 after one error line. */
int md_ckpt_load_params(const md_ckpt_t *c, md_model_t *m);

/* Writes m's weights to path, with training_json (may be NULL) as the
 * "training" metadata. 0, or -1 after one error line. */
int md_ckpt_save_weights(const char *path, const md_model_t *m, const char *training_json);

/* The same, from host floats in registry layout (export, tests). */
int md_ckpt_save_weights_host(const char *path, const md_config_t *cfg, const md_params_t *reg, const float *params,
                              const char *training_json);

/* path with ".safetensors" replaced by ".state.safetensors" (or that
 * appended). Caller frees. */
char *md_ckpt_state_path(const char *weights_path);

/* Writes the training state: moments m and v (numel host floats each) and
 * the trainer's JSON. 0, or -1 after one error line. */
int md_ckpt_save_state(const char *path, const float *m, const float *v, int64_t numel, const char *state_json);

/* Reads a training state written by md_ckpt_save_state for numel
 * parameters into m and v; *state_json gets a malloc'd copy of the JSON.
 * 0, or -1 after one error line (missing, corrupt, another format, or
 * moments of another size). */
int md_ckpt_load_state(const char *path, float *m, float *v, int64_t numel, char **state_json);

/* What a classifier checkpoint records about its head and training. */
typedef struct md_cls_info {
    int64_t n_classes;
    char **labels;           /* n_classes names, malloc'd (md_cls_info_free) */
    int pooling;             /* md_pooling_t */
    int64_t seq_len;         /* the length it was fine-tuned at */
} md_cls_info_t;

void md_cls_info_free(md_cls_info_t *info);

/* The classifier record of c. 0, or -1 after one error line naming the
 * file: a language model (no classification head: "not a classifier"), or
 * a record that is missing, malformed or disagrees with the config. */
int md_ckpt_classifier(const md_ckpt_t *c, md_cls_info_t *info);

/* Writes a classifier's weights with its classifier record (info's
 * n_classes and pooling must be the model's). 0, or -1 after one error line. */
int md_ckpt_save_classifier(const char *path, const md_model_t *m, const char *training_json,
                            const md_cls_info_t *info);

/* Copies the backbone (every tensor but classifier.*) of checkpoint c, a
 * language model or a classifier, into m, whose backbone config must equal
 * c's; m's head is left as it is (initialise it first). 0, or -1 after one
 * error line. */
int md_ckpt_load_backbone(const md_ckpt_t *c, md_model_t *m);

/* The tokenizer description stored in __metadata__ (malloc'd JSON). */
char *md_ckpt_tokenizer_json(void);

#endif
