#include "nn/config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "seq/tokenizer.h"
#include "util/log.h"
#include "util/xalloc.h"

static const char *const arch_names[] = {"mamba", "hyena", "transformer"};

/* Size bounds, checked before any size is derived from another: within
 * them no parameter count overflows 64 bits. */
enum { MAX_D_MODEL = 65536, MAX_N_LAYER = 1024, MAX_EXPAND = 64 };

const char *md_arch_name(md_arch_t a)
{
    return (unsigned)a < 3 ? arch_names[a] : "unknown";
}

int md_arch_parse(const char *s, md_arch_t *a)
{
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(s, arch_names[i])) { *a = (md_arch_t)i; return 0; }
    return -1;
}

typedef struct { const char *name; int64_t d_model, n_layer; } preset_t;

/* The Mamba paper's DNA model sizes (App. E.3.1). */
static const preset_t mamba_presets[] = {
    {"250K", 64, 8}, {"700K", 96, 10}, {"1.4M", 128, 12}, {"3.5M", 192, 14},
    {"7M", 256, 16}, {"19M", 384, 20}, {"40M", 512, 24},
};
static const char *const mamba_preset_names[] = {"250K", "700K", "1.4M", "3.5M", "7M", "19M", "40M", NULL};
/* The Mamba paper's Transformer++ sizes (layers/width 4/64 ... 12/512),
 * named by their parameter count without the embedding (config.h). */
static const preset_t tfm_presets[] = {
    {"214K", 64, 4}, {"554K", 96, 5}, {"1.3M", 128, 6}, {"3.1M", 192, 7},
    {"6.4M", 256, 8}, {"18M", 384, 10}, {"39M", 512, 12},
};
static const char *const tfm_preset_names[] = {"214K", "554K", "1.3M", "3.1M", "6.4M", "18M", "39M", NULL};
/* HyenaDNA's sizes, named by the count with the embedding (config.h). */
static const preset_t hyena_presets[] = {
    {"436K", 128, 2}, {"870K", 128, 4}, {"1.6M", 256, 2}, {"3.3M", 256, 4}, {"6.6M", 256, 8},
};
static const char *const hyena_preset_names[] = {"436K", "870K", "1.6M", "3.3M", "6.6M", NULL};

const char *const *md_config_preset_names(md_arch_t arch)
{
    if (arch == MD_ARCH_MAMBA) return mamba_preset_names;
    if (arch == MD_ARCH_TRANSFORMER) return tfm_preset_names;
    return hyena_preset_names;
}

const char *md_config_default_preset(md_arch_t arch)
{
    return arch == MD_ARCH_TRANSFORMER ? "1.3M" : arch == MD_ARCH_HYENA ? "436K" : "1.4M";
}

const char *md_pooling_name(int pooling) { return pooling == MD_POOL_MEAN ? "mean" : "last"; }

int md_pooling_parse(const char *s, int *pooling)
{
    if (!strcasecmp(s, "last")) *pooling = MD_POOL_LAST;
    else if (!strcasecmp(s, "mean")) *pooling = MD_POOL_MEAN;
    else return -1;
    return 0;
}

int64_t md_config_default_heads(int64_t d)
{
    if (d < 1 || d > MAX_D_MODEL) return 1;   /* refused by md_config_validate; no search over a huge d */
    int64_t h = d / 64 > 1 ? d / 64 : 1;
    while (d % h) h--;
    return h;
}

int64_t md_config_default_ffn(int64_t d)
{
    int64_t f = 8 * d / 3;
    return (f + 63) / 64 * 64;
}

void md_config_init(md_config_t *cfg, md_arch_t arch, int64_t d_model, int64_t n_layer)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = arch;
    cfg->d_model = d_model;
    cfg->n_layer = n_layer;
    cfg->vocab_size = MD_VOCAB_SIZE;
    cfg->norm_eps = 1e-5;
    cfg->tie_embeddings = 1;
    cfg->expand = 2;
    cfg->d_inner = cfg->expand * d_model;
    cfg->d_state = 16;
    cfg->dt_rank = (d_model + 15) / 16;
    cfg->d_conv = 4;
    cfg->dt_min = 0.001;
    cfg->dt_max = 0.1;
    cfg->dt_init_floor = 1e-4;
    cfg->initializer_range = 0.02;
    cfg->n_heads = md_config_default_heads(d_model > 0 ? d_model : 1);
    cfg->d_ff = md_config_default_ffn(d_model);
    cfg->rope_theta = 10000.0;
    cfg->l_max = 0;
    if (arch == MD_ARCH_HYENA) {
        cfg->d_ff = 4 * d_model;
        cfg->d_conv = 3;
        cfg->l_max = 1024;
        cfg->filter_order = 64;
        cfg->filter_freq = 10.0;
    }
}

int md_config_preset(md_config_t *cfg, md_arch_t arch, const char *name)
{
    const preset_t *tab = NULL;
    size_t n = 0;
    if (arch == MD_ARCH_MAMBA) tab = mamba_presets, n = sizeof mamba_presets / sizeof mamba_presets[0];
    if (arch == MD_ARCH_TRANSFORMER) tab = tfm_presets, n = sizeof tfm_presets / sizeof tfm_presets[0];
    if (arch == MD_ARCH_HYENA) tab = hyena_presets, n = sizeof hyena_presets / sizeof hyena_presets[0];
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(name, tab[i].name)) continue;
        md_config_init(cfg, arch, tab[i].d_model, tab[i].n_layer);
        snprintf(cfg->preset, sizeof cfg->preset, "%s", tab[i].name);
        return 0;
    }
    char list[128];
    int o = 0;
    for (size_t i = 0; i < n; i++) o += snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", tab[i].name);
    md_error("option --preset: unknown %s preset '%s'; choose one of %s", md_arch_name(arch), name, list);
    return -1;
}

/* The Transformer++ fields (the shared ones are checked by the caller). */
static int validate_transformer(const md_config_t *c, const char *what)
{
    if (c->n_heads < 1 || c->d_model % c->n_heads) {
        md_error("%s: n_heads %lld does not divide d_model %lld", what, (long long)c->n_heads, (long long)c->d_model);
        return -1;
    }
    int64_t hd = c->d_model / c->n_heads;
    if (hd % 2 || hd > 256) {
        md_error("%s: head dimension %lld (d_model / n_heads) must be even (RoPE rotates pairs) and at most 256",
                 what, (long long)hd);
        return -1;
    }
    if (c->d_ff < 1 || c->d_ff > 1048576) {
        md_error("%s: d_ff %lld is out of range [1, 1048576]", what, (long long)c->d_ff);
        return -1;
    }
    if (!(c->rope_theta > 1 && c->rope_theta < 1e12)) {
        md_error("%s: rope_theta %g is out of range (1, 1e12)", what, c->rope_theta);
        return -1;
    }
    return 0;
}

/* The Hyena fields. */
static int validate_hyena(const md_config_t *c, const char *what)
{
    if (c->d_ff < 1 || c->d_ff > 1048576) {
        md_error("%s: d_ff %lld is out of range [1, 1048576]", what, (long long)c->d_ff);
        return -1;
    }
    if (c->d_conv < 1 || c->d_conv > 16) {
        md_error("%s: d_conv (the short filter's width) %lld is out of range [1, 16]", what, (long long)c->d_conv);
        return -1;
    }
    if (c->l_max < 1 || c->l_max > (INT64_C(1) << 30)) {
        md_error("%s: l_max %lld is out of range [1, 2^30]", what, (long long)c->l_max);
        return -1;
    }
    if (c->filter_order < 1 || c->filter_order > 4096) {
        md_error("%s: filter_order %lld is out of range [1, 4096]", what, (long long)c->filter_order);
        return -1;
    }
    if (!(c->filter_freq > 0 && c->filter_freq < 1e6) || !(c->initializer_range >= 0)) {
        md_error("%s: filter_freq %g or initializer_range %g is out of range", what, c->filter_freq,
                 c->initializer_range);
        return -1;
    }
    return 0;
}

int md_config_check_size_opts(const char *preset, int64_t d_model, int64_t n_layer)
{
    if (preset && (d_model || n_layer)) {
        md_error("options --preset and --d-model/--n-layer conflict: give one or the other");
        return -1;
    }
    if (!!d_model != !!n_layer) {
        md_error("options --d-model and --n-layer go together: give both (or --preset)");
        return -1;
    }
    return 0;
}

int md_config_validate(const md_config_t *c, const char *what)
{
    if ((unsigned)c->arch > MD_ARCH_TRANSFORMER) {
        md_error("%s: the %s architecture is not implemented yet", what, md_arch_name(c->arch));
        return -1;
    }
    if (c->d_model < 1 || c->d_model > MAX_D_MODEL) {
        md_error("%s: d_model %lld is out of range [1, %d]", what, (long long)c->d_model, MAX_D_MODEL);
        return -1;
    }
    if (c->n_layer < 1 || c->n_layer > MAX_N_LAYER) {
        md_error("%s: n_layer %lld is out of range [1, %d]", what, (long long)c->n_layer, MAX_N_LAYER);
        return -1;
    }
    if (c->vocab_size != MD_VOCAB_SIZE) {
        md_error("%s: vocab_size %lld is not %d (HyenaDNA's character vocabulary)", what,
                 (long long)c->vocab_size, MD_VOCAB_SIZE);
        return -1;
    }
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) {
        md_error("%s: norm_eps %g is out of range (0, 1)", what, c->norm_eps);
        return -1;
    }
    if (!c->tie_embeddings) {
        md_error("%s: untied embeddings are not supported (lm_head must be tied)", what);
        return -1;
    }
    if (c->n_classes != 0 && (c->n_classes < 2 || c->n_classes > MD_MAX_CLASSES)) {
        md_error("%s: n_classes %lld is out of range [2, %d] (0 for a language model)", what,
                 (long long)c->n_classes, MD_MAX_CLASSES);
        return -1;
    }
    if (c->cls_pooling != MD_POOL_LAST && c->cls_pooling != MD_POOL_MEAN) {
        md_error("%s: unknown classifier pooling %d", what, c->cls_pooling);
        return -1;
    }
    if (c->arch == MD_ARCH_TRANSFORMER) return validate_transformer(c, what);
    if (c->arch == MD_ARCH_HYENA) return validate_hyena(c, what);
    if (c->expand < 1 || c->expand > MAX_EXPAND || c->d_inner != c->expand * c->d_model) {
        md_error("%s: d_inner %lld is not expand (%lld) x d_model (%lld)", what, (long long)c->d_inner,
                 (long long)c->expand, (long long)c->d_model);
        return -1;
    }
    if (c->d_state < 1 || c->d_state > 64) {
        md_error("%s: d_state %lld is out of range [1, 64]", what, (long long)c->d_state);
        return -1;
    }
    if (c->dt_rank < 1 || c->dt_rank > c->d_inner) {
        md_error("%s: dt_rank %lld is out of range [1, d_inner]", what, (long long)c->dt_rank);
        return -1;
    }
    if (c->d_conv < 1 || c->d_conv > 16) {
        md_error("%s: d_conv %lld is out of range [1, 16]", what, (long long)c->d_conv);
        return -1;
    }
    if (!(c->dt_min > 0 && c->dt_max >= c->dt_min && c->dt_init_floor >= 0 && c->initializer_range >= 0)) {
        md_error("%s: dt_min/dt_max/dt_init_floor/initializer_range are inconsistent", what);
        return -1;
    }
    return 0;
}

char *md_config_to_json(const md_config_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "arch", json_string(md_arch_name(c->arch)));
    json_object_set_new(o, "preset", json_string(c->preset));
    json_object_set_new(o, "d_model", json_integer(c->d_model));
    json_object_set_new(o, "n_layer", json_integer(c->n_layer));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "norm_eps", json_real(c->norm_eps));
    json_object_set_new(o, "tie_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(o, "expand", json_integer(c->expand));
    json_object_set_new(o, "d_inner", json_integer(c->d_inner));
    json_object_set_new(o, "d_state", json_integer(c->d_state));
    json_object_set_new(o, "dt_rank", json_integer(c->dt_rank));
    json_object_set_new(o, "d_conv", json_integer(c->d_conv));
    json_object_set_new(o, "dt_min", json_real(c->dt_min));
    json_object_set_new(o, "dt_max", json_real(c->dt_max));
    json_object_set_new(o, "dt_init_floor", json_real(c->dt_init_floor));
    json_object_set_new(o, "initializer_range", json_real(c->initializer_range));
    json_object_set_new(o, "n_heads", json_integer(c->n_heads));
    json_object_set_new(o, "d_ff", json_integer(c->d_ff));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    if (c->arch == MD_ARCH_HYENA) {
        json_object_set_new(o, "l_max", json_integer(c->l_max));
        json_object_set_new(o, "filter_order", json_integer(c->filter_order));
        json_object_set_new(o, "filter_freq", json_real(c->filter_freq));
    }
    if (c->n_classes > 0) {   /* a language model's config stays as it was */
        json_object_set_new(o, "n_classes", json_integer(c->n_classes));
        json_object_set_new(o, "cls_pooling", json_string(md_pooling_name(c->cls_pooling)));
    }
    /* %.17g in jansson's real output keeps doubles exact. */
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    char *r = md_strdup(s);
    free(s);
    return r;
}

static int get_int(json_t *o, const char *key, int64_t *v, const char *what)
{
    json_t *x = json_object_get(o, key);
    if (!x) return 0;
    if (!json_is_integer(x)) {
        md_error("%s: config field '%s' is not an integer", what, key);
        return -1;
    }
    *v = json_integer_value(x);
    return 0;
}

static int get_real(json_t *o, const char *key, double *v, const char *what)
{
    json_t *x = json_object_get(o, key);
    if (!x) return 0;
    if (!json_is_number(x)) {
        md_error("%s: config field '%s' is not a number", what, key);
        return -1;
    }
    *v = json_number_value(x);
    return 0;
}

int md_config_from_json(const char *text, md_config_t *cfg, const char *what)
{
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    if (!o || !json_is_object(o)) {
        md_error("%s: the model config is not a JSON object (%s)", what, o ? "not an object" : err.text);
        json_decref(o);
        return -1;
    }
    int ret = -1;
    md_arch_t arch = MD_ARCH_MAMBA;
    json_t *a = json_object_get(o, "arch");
    if (a && (!json_is_string(a) || md_arch_parse(json_string_value(a), &arch) < 0)) {
        md_error("%s: config field 'arch' is not mamba, hyena or transformer", what);
        goto done;
    }
    int64_t d = 0, n = 0;
    if (get_int(o, "d_model", &d, what) < 0 || get_int(o, "n_layer", &n, what) < 0) goto done;
    if (d < 1 || n < 1) {
        md_error("%s: the model config lacks a positive d_model and n_layer", what);
        goto done;
    }
    if (d > MAX_D_MODEL || n > MAX_N_LAYER) {
        md_error("%s: d_model %lld and n_layer %lld must lie in [1, %d] and [1, %d]", what, (long long)d, (long long)n,
                 MAX_D_MODEL, MAX_N_LAYER);
        goto done;
    }
    md_config_init(cfg, arch, d, n);
    json_t *p = json_object_get(o, "preset");
    if (p && json_is_string(p)) snprintf(cfg->preset, sizeof cfg->preset, "%s", json_string_value(p));
    json_t *t = json_object_get(o, "tie_embeddings");
    if (t) {
        if (!json_is_boolean(t)) {
            md_error("%s: config field 'tie_embeddings' is not a boolean", what);
            goto done;
        }
        cfg->tie_embeddings = json_is_true(t);
    }
    if (get_int(o, "vocab_size", &cfg->vocab_size, what) < 0 || get_real(o, "norm_eps", &cfg->norm_eps, what) < 0 ||
        get_int(o, "expand", &cfg->expand, what) < 0) goto done;
    if (cfg->expand < 1 || cfg->expand > MAX_EXPAND) {
        md_error("%s: expand %lld is out of range [1, %d]", what, (long long)cfg->expand, MAX_EXPAND);
        goto done;
    }
    cfg->d_inner = cfg->expand * cfg->d_model;
    if (get_int(o, "d_inner", &cfg->d_inner, what) < 0 || get_int(o, "d_state", &cfg->d_state, what) < 0 ||
        get_int(o, "dt_rank", &cfg->dt_rank, what) < 0 || get_int(o, "d_conv", &cfg->d_conv, what) < 0 ||
        get_real(o, "dt_min", &cfg->dt_min, what) < 0 || get_real(o, "dt_max", &cfg->dt_max, what) < 0 ||
        get_real(o, "dt_init_floor", &cfg->dt_init_floor, what) < 0 ||
        get_real(o, "initializer_range", &cfg->initializer_range, what) < 0 ||
        get_int(o, "n_heads", &cfg->n_heads, what) < 0 || get_int(o, "d_ff", &cfg->d_ff, what) < 0 ||
        get_real(o, "rope_theta", &cfg->rope_theta, what) < 0 || get_int(o, "l_max", &cfg->l_max, what) < 0 ||
        get_int(o, "filter_order", &cfg->filter_order, what) < 0 ||
        get_real(o, "filter_freq", &cfg->filter_freq, what) < 0 || get_int(o, "n_classes", &cfg->n_classes, what) < 0)
        goto done;
    json_t *pool = json_object_get(o, "cls_pooling");
    if (pool && (!json_is_string(pool) || md_pooling_parse(json_string_value(pool), &cfg->cls_pooling) < 0)) {
        md_error("%s: config field 'cls_pooling' is not \"last\" or \"mean\"", what);
        goto done;
    }
    ret = md_config_validate(cfg, what);
done:
    json_decref(o);
    return ret;
}

int64_t md_config_n_params_no_embed(const md_config_t *c)
{
    if (c->arch == MD_ARCH_HYENA) {
        int64_t d = c->d_model, F = c->d_ff, K = c->d_conv, O = c->filter_order;
        int64_t filter = 5 * O + O             /* implicit_filter.0 (5 positional features -> O) */
                       + 2 * (O * O + O)       /* .2 and .4 */
                       + O                     /* the Sin frequency, one shared by .1, .3 and .5 */
                       + O * d                 /* .6, no bias */
                       + d;                    /* filter_fn.bias (D) */
        int64_t per_layer = 4 * d              /* norm1, norm2 (weight and bias) */
                          + 3 * d * d + 3 * d  /* in_proj */
                          + 3 * d * K + 3 * d  /* short_filter */
                          + d * d + d          /* out_proj */
                          + filter
                          + 2 * d * F + F + d; /* fc1, fc2 */
        return c->n_layer * per_layer + 2 * d /* ln_f */ + (c->tie_embeddings ? 0 : c->vocab_size * d);
    }
    if (c->arch == MD_ARCH_TRANSFORMER) {
        int64_t d = c->d_model, F = c->d_ff;
        int64_t per_layer = 2 * d             /* input and post-attention norms */
                          + 4 * d * d         /* q, k, v, o */
                          + 3 * d * F;        /* gate, up, down */
        return c->n_layer * per_layer + d + (c->tie_embeddings ? 0 : c->vocab_size * d) + c->n_classes * (d + 1);
    }
    int64_t d = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank, K = c->d_conv;
    int64_t per_layer = d                  /* norm */
                      + 2 * E * d          /* in_proj */
                      + E * K + E          /* conv1d weight, bias */
                      + (R + 2 * N) * E    /* x_proj */
                      + E * R + E          /* dt_proj weight, bias */
                      + E * N + E          /* A_log, D */
                      + d * E;             /* out_proj */
    return c->n_layer * per_layer + d /* norm_f */ + (c->tie_embeddings ? 0 : c->vocab_size * d) +
           c->n_classes * (d + 1) /* classifier */;
}

int64_t md_config_n_params(const md_config_t *c)
{
    return md_config_n_params_no_embed(c) + c->vocab_size * c->d_model;
}
