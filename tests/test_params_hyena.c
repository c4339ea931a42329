/* Hyena presets and registry: HyenaDNA's layer/width pairs with the
 * parameter counts of the issue (#6), recomputed here module by module as
 * HyenaDNA's model.parameters() counts them (the Sin frequency once per
 * layer, the positional features z not at all), the HF names and shapes,
 * the aliased frequencies, weight decay, the config JSON round trip with
 * l_max, and the initialisation's fixed values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "nn/config.h"
#include "nn/hyena.h"
#include "nn/model.h"
#include "nn/params.h"
#include "testutil.h"
#include "util/log.h"

/* nn.Linear(i, o) with or without bias */
static int64_t linear(int64_t i, int64_t o, int bias) { return i * o + (bias ? o : 0); }

static void test_presets(void)
{
    static const struct { const char *name; int64_t n, d, count; } want[] = {
        {"436K", 2, 128, 436096}, {"1.6M", 2, 256, 1641088}, {"870K", 4, 128, 869888},
        {"3.3M", 4, 256, 3277568}, {"6.6M", 8, 256, 6550528},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        md_config_t c;
        CHECK(md_config_preset(&c, MD_ARCH_HYENA, want[i].name) == 0, "preset %s", want[i].name);
        CHECK(c.d_model == want[i].d && c.n_layer == want[i].n, "preset %s is %lld x %lld", want[i].name,
              (long long)c.n_layer, (long long)c.d_model);
        CHECK(md_config_validate(&c, "test") == 0, "preset %s validates", want[i].name);
        int64_t d = want[i].d;
        int64_t mixer = linear(d, 3 * d, 1) + 3 * d * 3 + 3 * d   /* in_proj, short_filter Conv1d(3d, 3d, 3, groups 3d) */
                      + linear(d, d, 1)                            /* out_proj */
                      + d                                          /* filter_fn.bias */
                      + linear(5, 64, 1) + 2 * linear(64, 64, 1) + linear(64, d, 0) + 64;   /* MLP + one Sin */
        int64_t block = 2 * d + mixer + 2 * d + linear(d, 4 * d, 1) + linear(4 * d, d, 1);
        int64_t total = want[i].n * block + 2 * d /* ln_f */ + 16 * d /* embedding, tied head */;
        CHECK(total == want[i].count, "preset %s: HyenaDNA's modules give %lld, the issue says %lld", want[i].name,
              (long long)total, (long long)want[i].count);
        CHECK(md_config_n_params(&c) == want[i].count, "preset %s: %lld parameters, want %lld", want[i].name,
              (long long)md_config_n_params(&c), (long long)want[i].count);
        md_params_t r;
        CHECK(md_params_build(&c, &r) == 0, "registry %s", want[i].name);
        CHECK(r.numel == want[i].count, "registry %s numel %lld", want[i].name, (long long)r.numel);
        printf("hyena %-5s %lld x %3lld  %9lld parameters\n", want[i].name, (long long)want[i].n, (long long)d,
               (long long)r.numel);
        md_params_free(&r);
    }
    md_config_t c;
    CHECK(md_config_preset(&c, MD_ARCH_HYENA, "1.4M") < 0, "a Mamba preset name is refused");
}

static void test_registry(void)
{
    md_config_t c;
    md_config_init(&c, MD_ARCH_HYENA, 32, 2);
    md_params_t r;
    CHECK(md_params_build(&c, &r) == 0, "registry");
    static const struct { const char *name; int ndim; int64_t s0, s1, s2; int decay; } want[] = {
        {"hyena.backbone.embeddings.word_embeddings.weight", 2, 16, 32, 0, 1},
        {"hyena.backbone.layers.1.norm1.weight", 1, 32, 0, 0, 0},
        {"hyena.backbone.layers.1.norm1.bias", 1, 32, 0, 0, 0},
        {"hyena.backbone.layers.1.mixer.in_proj.weight", 2, 96, 32, 0, 1},
        {"hyena.backbone.layers.1.mixer.in_proj.bias", 1, 96, 0, 0, 0},
        {"hyena.backbone.layers.1.mixer.out_proj.weight", 2, 32, 32, 0, 1},
        {"hyena.backbone.layers.1.mixer.short_filter.weight", 3, 96, 1, 3, 1},
        {"hyena.backbone.layers.1.mixer.short_filter.bias", 1, 96, 0, 0, 0},
        {"hyena.backbone.layers.1.mixer.filter_fn.bias", 1, 32, 0, 0, 0},
        {"hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.0.weight", 2, 64, 5, 0, 0},
        {"hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.1.freq", 2, 1, 64, 0, 0},
        {"hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.4.bias", 1, 64, 0, 0, 0},
        {"hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.6.weight", 2, 32, 64, 0, 0},
        {"hyena.backbone.layers.1.mlp.fc1.weight", 2, 128, 32, 0, 1},
        {"hyena.backbone.layers.1.mlp.fc2.weight", 2, 32, 128, 0, 1},
        {"hyena.backbone.ln_f.bias", 1, 32, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t k = md_params_find(&r, want[i].name);
        CHECK(k >= 0, "registry has %s", want[i].name);
        if (k < 0) continue;
        const md_param_t *p = &r.p[k];
        CHECK(p->ndim == want[i].ndim && p->shape[0] == want[i].s0 && (p->ndim < 2 || p->shape[1] == want[i].s1) &&
                  (p->ndim < 3 || p->shape[2] == want[i].s2),
              "%s shape", want[i].name);
        CHECK(p->decay == want[i].decay, "%s decay %d", want[i].name, p->decay);
        CHECK(p->tied_to < 0, "%s owns its storage", want[i].name);
    }
    /* .3.freq and .5.freq are the .1.freq of their layer */
    int64_t f1 = md_params_find(&r, "hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.1.freq");
    int64_t f3 = md_params_find(&r, "hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.3.freq");
    int64_t f5 = md_params_find(&r, "hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.5.freq");
    CHECK(f1 >= 0 && f3 >= 0 && f5 >= 0 && r.p[f3].tied_to == f1 && r.p[f5].tied_to == f1 &&
              r.p[f3].offset == r.p[f1].offset,
          "the three Sin frequencies of a layer are one tensor");
    int64_t head = md_params_find(&r, "lm_head.weight");
    CHECK(head >= 0 && r.p[head].tied_to == 0, "lm_head is tied to the embedding");
    for (int64_t i = 0; i < r.n; i++) {
        const md_param_t *p = &r.p[i];
        if (p->tied_to < 0) CHECK((p->offset < r.n_decay) == (p->decay == 1), "%s in its decay group", p->name);
    }
    md_params_free(&r);
}

static void test_json_and_init(void)
{
    md_config_t c, back;
    md_config_init(&c, MD_ARCH_HYENA, 16, 1);
    c.l_max = 4096;
    char *js = md_config_to_json(&c);
    CHECK(md_config_from_json(js, &back, "test") == 0, "json parses");
    CHECK(back.arch == MD_ARCH_HYENA && back.l_max == 4096 && back.filter_order == 64 && back.d_ff == 64 &&
              back.d_conv == 3 && back.filter_freq == 10.0,
          "json round trip: %s", js);
    free(js);
    c.l_max = 0;
    CHECK(md_config_validate(&c, "test") < 0, "l_max 0 is refused");

    /* fixed initial values: norms 1/0, frequencies 10, biases 0; D ~ N(0, 1) */
    md_config_init(&c, MD_ARCH_HYENA, 16, 2);
    c.l_max = 32;
    md_model_t *m = md_model_new(&c, md_backend_cpu(), MD_DTYPE_F32, 1, 32);
    md_model_init_weights(m, 3);
    const md_params_t *r = md_model_params(m);
    float *w = malloc((size_t)r->numel * sizeof *w);
    md_model_read_params(m, w);
    const md_param_t *p;
    p = md_params_get(r, 1, MD_ROLE_FILT_FREQ);
    CHECK(p && w[p->offset] == 10.0f && w[p->offset + p->numel - 1] == 10.0f, "Sin frequency starts at 10");
    p = md_params_get(r, 0, MD_ROLE_LN2_W);
    CHECK(p && w[p->offset] == 1.0f, "norm2 weight 1");
    p = md_params_get(r, -1, MD_ROLE_NORM_F_B);
    CHECK(p && w[p->offset] == 0.0f, "ln_f bias 0");
    p = md_params_get(r, 0, MD_ROLE_FILTER_D);
    double s2 = 0;
    for (int64_t i = 0; i < p->numel; i++) s2 += (double)w[p->offset + i] * w[p->offset + i];
    CHECK(s2 / p->numel > 0.2 && s2 / p->numel < 5, "D has unit-scale entries (mean square %.3g)", s2 / p->numel);
    p = md_params_get(r, 0, MD_ROLE_SHORT_W);
    float mx = 0;
    for (int64_t i = 0; i < p->numel; i++) mx = fmaxf(mx, fabsf(w[p->offset + i]));
    CHECK(mx <= 1 / sqrtf(3.0f) && mx > 0.3f, "short filter within +-1/sqrt(3) (max %.3g)", mx);
    free(w);
    md_model_free(m);
}

/* HyenaDNA's PositionalEmbedding for seq_len = l_max: t = linspace(0, 1,
 * l_max), w = 2 pi arange(l_max) / l_max, f = linspace(1e-4, 1, 2),
 * z = [t, Re exp(-i f w), Im exp(-i f w)]; the first max_len rows. */
static void test_positional_features(void)
{
    md_config_t c;
    md_config_init(&c, MD_ARCH_HYENA, 16, 1);
    c.l_max = 50;
    const int64_t n = 37;
    double *z = malloc(md_hyena_consts_bytes(&c, MD_DTYPE_F64, n));
    md_hyena_consts_init(&c, md_backend_cpu(), MD_DTYPE_F64, n, z);
    double err = 0;
    for (int64_t l = 0; l < n; l++) {
        double t = 0 + (1.0 - 0) * l / (50 - 1), w = 2 * M_PI * l / 50;
        double want[5] = {t, cos(1e-4 * w), cos(1.0 * w), -sin(1e-4 * w), -sin(1.0 * w)};
        for (int k = 0; k < 5; k++) err = fmax(err, fabs(z[l * 5 + k] - want[k]));
    }
    CHECK(err < 1e-15, "positional features differ from HyenaDNA's by %.3g", err);
    free(z);
}

int main(void)
{
    md_verbose = 0;
    test_presets();
    test_registry();
    test_json_and_init();
    test_positional_features();
    return md_test_done();
}
