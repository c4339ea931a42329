/* Model configuration and the named presets.
 *
 * One struct for every architecture; `arch` says which fields apply.
 * Mamba and Transformer++ are implemented; Hyena gets its fields when its
 * block lands, and the struct may grow at the end without breaking callers
 * that fill it through the functions here.
 *
 * Mamba is exactly state-spaces/mamba's Mamba (S6) block as wrapped by
 * MixerModel / HF MambaForCausalLM: d_inner = expand * d_model (expand 2),
 * d_state 16, dt_rank = ceil(d_model / 16), d_conv 4, no Linear biases, a
 * conv bias, RMSNorm eps 1e-5, residual stream in fp32, lm_head tied to the
 * embedding, vocabulary 16 (HyenaDNA's character tokens, padded).
 *
 * Presets (parameters excluding the 16 x d_model embedding):
 *   250K  64 x 8    261,696        3.5M  192 x 14   3,524,160
 *   700K  96 x 10   682,656        7M    256 x 16   7,008,512
 *   1.4M 128 x 12 1,399,424        19M   384 x 20  19,284,864
 *                                  40M   512 x 24  40,686,080
 *
 * Transformer++ (src/nn/transformer.h) is HF LlamaForCausalLM without
 * biases: RMSNorm prenorm (eps 1e-5), multi-head causal attention with RoPE
 * (theta 10000, rotate_half convention) and a SwiGLU MLP, final RMSNorm,
 * lm_head tied to the embedding, vocabulary 16. Defaults:
 *   n_heads = the largest divisor of d_model that is <= max(1, d_model/64),
 *             so heads are 64 wide from d_model 128 up (one head below);
 *   d_ff    = Llama's rule 8/3 d_model rounded up to a multiple of 64.
 * Presets: the Mamba paper's Transformer++ sizes (layers/width), named by
 * their parameter count excluding the 16 x d_model embedding
 * (per layer 4 d^2 + 3 d d_ff + 2 d, plus the final norm's d):
 *   214K  64 x 4 (d_ff  192)    213,568     6.4M 256 x 8  (d_ff  704)  6,426,880
 *   554K  96 x 5 (d_ff  256)    554,016     18M  384 x 10 (d_ff 1024) 17,702,784
 *   1.3M 128 x 6 (d_ff  384)  1,279,616     39M  512 x 12 (d_ff 1408) 38,547,968
 *   3.1M 192 x 7 (d_ff  512)  3,099,456
 *
 * Hyena (src/nn/hyena.h) is HyenaDNA's LM: LayerNorm prenorm blocks of the
 * order-2 Hyena operator and a 4x GELU MLP, final LayerNorm, tied head.
 * Presets: HyenaDNA's sizes, named by their parameter count WITH the
 * 16 x d_model embedding (as the HyenaDNA paper counts them; the implicit
 * filter's positional features are a fixed buffer here, not counted); per
 * layer 12 d^2 + 26 d + 64 d + 8,768 (d_ff = 4d, filter width 64):
 *   436K 128 x 2    436,096       3.3M 256 x 4   3,277,568
 *   870K 128 x 4    869,888       6.6M 256 x 8   6,550,528
 *   1.6M 256 x 2  1,641,088
 */
#ifndef MD_NN_CONFIG_H
#define MD_NN_CONFIG_H

#include <stdint.h>

typedef enum { MD_ARCH_MAMBA = 0, MD_ARCH_HYENA = 1, MD_ARCH_TRANSFORMER = 2 } md_arch_t;

typedef struct md_config {
    md_arch_t arch;
    char preset[16];          /* preset name, or "" for a custom size */
    int64_t d_model;
    int64_t n_layer;
    int64_t vocab_size;       /* 16 */
    double norm_eps;          /* RMSNorm epsilon, 1e-5 */
    int tie_embeddings;       /* 1: lm_head.weight is backbone.embeddings.weight */

    /* Mamba */
    int64_t expand;           /* 2 */
    int64_t d_inner;          /* E = expand * d_model */
    int64_t d_state;          /* N = 16 */
    int64_t dt_rank;          /* R = ceil(d_model / 16) */
    int64_t d_conv;           /* 4 */
    /* Mamba initialisation (mamba_ssm defaults) */
    double dt_min, dt_max, dt_init_floor;   /* 0.001, 0.1, 1e-4 */
    double initializer_range;               /* 0.02: std of the embedding (and Transformer++ weights) */

    /* Transformer++ */
    int64_t n_heads;          /* attention heads; head_dim = d_model / n_heads (even, <= 256) */
    int64_t d_ff;             /* SwiGLU hidden size */
    double rope_theta;        /* RoPE base, 10000 */

    /* Hyena (src/nn/hyena.h); it also uses d_ff (the MLP width, 4 d_model)
     * and d_conv (the short filter's width, 3) */
    int64_t l_max;            /* the implicit filter's length: its positional features and decay span it; L <= l_max */
    int64_t filter_order;     /* width of the implicit filter's MLP, 64 */
    double filter_freq;       /* initial frequency of its Sin activations, 10 */

    /* Sequence classification head (nn/model.h, md_model_classify): with
     * n_classes > 0 the model carries classifier.weight [n_classes, d] and
     * classifier.bias [n_classes] on the final hidden state (after norm_f),
     * pooled over positions as cls_pooling says; the LM head stays in the
     * registry (tied, it costs nothing) but is not used. 0 = a language
     * model only. */
    int64_t n_classes;        /* 0, or 2..MD_MAX_CLASSES */
    int cls_pooling;          /* md_pooling_t */
} md_config_t;

/* How the classifier pools the final hidden states of a sequence:
 * LAST takes the last position's (the Mamba paper's, and the only one a
 * causal model sees the whole sequence at); MEAN averages all positions. */
typedef enum { MD_POOL_LAST = 0, MD_POOL_MEAN = 1 } md_pooling_t;
enum { MD_MAX_CLASSES = 1024 };
/* "last", "mean"; md_pooling_parse returns 0, or -1 (no message). */
const char *md_pooling_name(int pooling);
int md_pooling_parse(const char *s, int *pooling);

const char *md_arch_name(md_arch_t a);          /* "mamba", "hyena", "transformer" */
/* Returns 0, or -1 (no message) for an unknown name. */
int md_arch_parse(const char *s, md_arch_t *a);

/* Fills cfg with the defaults of arch at the given size and derives the
 * dependent fields (d_inner, dt_rank; n_heads, d_ff; for Hyena d_ff = 4
 * d_model, d_conv = 3, l_max = 1024). preset is set to "". */
void md_config_init(md_config_t *cfg, md_arch_t arch, int64_t d_model, int64_t n_layer);

/* The Transformer++ defaults for width d (see above). */
int64_t md_config_default_heads(int64_t d_model);
int64_t md_config_default_ffn(int64_t d_model);

/* Fills cfg from a preset name ("1.4M", case-insensitive, "1.4m" too).
 * Returns 0, or -1 after one error line that lists the valid presets. */
int md_config_preset(md_config_t *cfg, md_arch_t arch, const char *name);

/* The preset a command uses when given none: 1.4M (mamba), 1.3M
 * (transformer), 436K (hyena). */
const char *md_config_default_preset(md_arch_t arch);

/* The presets of arch, NULL-terminated, for help texts. */
const char *const *md_config_preset_names(md_arch_t arch);

/* The size options of a command: --preset, or --d-model with --n-layer
 * (0 when not given). Returns 0, or -1 after one error line when both kinds
 * are given or only one of d_model and n_layer. */
int md_config_check_size_opts(const char *preset, int64_t d_model, int64_t n_layer);

/* Checks that the fields are consistent and supported (positive sizes,
 * d_inner = expand * d_model, an implemented arch, d_state <= 64, ...).
 * Returns 0, or -1 after one error line prefixed with `what` (e.g. the
 * checkpoint's file name or "model"). */
int md_config_validate(const md_config_t *cfg, const char *what);

/* The config as a compact JSON object string (malloc'd), with every field,
 * for checkpoint metadata. md_config_from_json parses it back (fields absent
 * take their defaults for the arch and size); returns 0, or -1 after one
 * error line prefixed with `what`. The round trip is exact. */
char *md_config_to_json(const md_config_t *cfg);
int md_config_from_json(const char *json, md_config_t *cfg, const char *what);

/* Parameter counts (no allocation needed): all storage, and storage minus
 * the embedding (the papers' convention). A tied lm_head counts once. */
int64_t md_config_n_params(const md_config_t *cfg);
int64_t md_config_n_params_no_embed(const md_config_t *cfg);

#endif
