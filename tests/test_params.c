/* Presets and the parameter registry: the paper's parameter counts, HF
 * names and shapes, the flat layout (disjoint, complete, decayed tensors
 * first), the tied lm_head, and the config's JSON round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/config.h"
#include "nn/params.h"
#include "testutil.h"
#include "util/log.h"

static void test_preset_counts(void)
{
    /* the Mamba paper's DNA model sizes (App. E.3.1), excluding embeddings */
    static const struct { const char *name; int64_t d, n, count; } want[] = {
        {"250K", 64, 8, 261696},    {"700K", 96, 10, 682656},   {"1.4M", 128, 12, 1399424},
        {"3.5M", 192, 14, 3524160}, {"7M", 256, 16, 7008512},   {"19M", 384, 20, 19284864},
        {"40M", 512, 24, 40686080},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        md_config_t c;
        CHECK(md_config_preset(&c, MD_ARCH_MAMBA, want[i].name) == 0, "preset %s", want[i].name);
        CHECK(c.d_model == want[i].d && c.n_layer == want[i].n, "preset %s is %lld x %lld", want[i].name,
              (long long)c.d_model, (long long)c.n_layer);
        CHECK(md_config_validate(&c, "test") == 0, "preset %s validates", want[i].name);
        CHECK(md_config_n_params_no_embed(&c) == want[i].count, "preset %s: %lld parameters, want %lld", want[i].name,
              (long long)md_config_n_params_no_embed(&c), (long long)want[i].count);
        CHECK(md_config_n_params(&c) == want[i].count + 16 * want[i].d, "preset %s with embeddings", want[i].name);
        md_params_t r;
        CHECK(md_params_build(&c, &r) == 0, "registry %s", want[i].name);
        CHECK(r.numel == want[i].count + 16 * want[i].d, "registry %s numel %lld", want[i].name, (long long)r.numel);
        CHECK(md_params_count_no_embed(&r) == want[i].count, "registry %s count without embeddings", want[i].name);
        md_params_free(&r);
    }
    md_config_t c;
    CHECK(md_config_preset(&c, MD_ARCH_MAMBA, "1.4m") == 0 && c.d_model == 128, "preset names ignore case");
    CHECK(md_config_preset(&c, MD_ARCH_MAMBA, "2M") < 0, "unknown preset is refused");
    CHECK(md_config_preset(&c, MD_ARCH_HYENA, "1.4M") < 0, "no hyena presets yet");
}

static void test_registry_layout(void)
{
    md_config_t c;
    md_config_preset(&c, MD_ARCH_MAMBA, "250K");
    md_params_t r;
    CHECK(md_params_build(&c, &r) == 0, "build");
    int64_t E = 128, N = 16, R = 4, d = 64;
    CHECK(r.n == 1 + 8 * 10 + 2, "%lld entries", (long long)r.n);
    /* every storage element belongs to exactly one owner */
    char *cover = calloc((size_t)r.numel, 1);
    int64_t owned = 0;
    int ok_cover = 1, ok_decay = 1;
    for (int64_t i = 0; i < r.n; i++) {
        const md_param_t *p = &r.p[i];
        int64_t prod = 1;
        for (int k = 0; k < p->ndim; k++) prod *= p->shape[k];
        CHECK(prod == p->numel, "%s: numel %lld is not the product of its shape", p->name, (long long)p->numel);
        CHECK(p->offset >= 0 && p->offset + p->numel <= r.numel, "%s lies inside the buffer", p->name);
        if (p->tied_to >= 0) continue;
        owned += p->numel;
        for (int64_t j = p->offset; j < p->offset + p->numel; j++) ok_cover &= cover[j]++ == 0;
        if (p->decay) ok_decay &= p->offset + p->numel <= r.n_decay;
        else ok_decay &= p->offset >= r.n_decay;
    }
    CHECK(ok_cover && owned == r.numel, "owned tensors tile the buffer exactly");
    CHECK(ok_decay, "decayed tensors sit in [0, n_decay), the others after");
    free(cover);

    static const struct { const char *name; int ndim; int64_t s0, s1, s2; int decay; } want[] = {
        {"backbone.embeddings.weight", 2, 16, 64, 0, 1},
        {"backbone.layers.0.norm.weight", 1, 64, 0, 0, 0},
        {"backbone.layers.0.mixer.in_proj.weight", 2, 256, 64, 0, 1},
        {"backbone.layers.0.mixer.conv1d.weight", 3, 128, 1, 4, 1},
        {"backbone.layers.0.mixer.conv1d.bias", 1, 128, 0, 0, 0},
        {"backbone.layers.0.mixer.x_proj.weight", 2, 36, 128, 0, 1},
        {"backbone.layers.0.mixer.dt_proj.weight", 2, 128, 4, 0, 1},
        {"backbone.layers.0.mixer.dt_proj.bias", 1, 128, 0, 0, 0},
        {"backbone.layers.7.mixer.A_log", 2, 128, 16, 0, 0},
        {"backbone.layers.7.mixer.D", 1, 128, 0, 0, 0},
        {"backbone.layers.7.mixer.out_proj.weight", 2, 64, 128, 0, 1},
        {"backbone.norm_f.weight", 1, 64, 0, 0, 0},
        {"lm_head.weight", 2, 16, 64, 0, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t k = md_params_find(&r, want[i].name);
        CHECK(k >= 0, "%s is registered", want[i].name);
        if (k < 0) continue;
        const md_param_t *p = &r.p[k];
        CHECK(p->ndim == want[i].ndim && p->shape[0] == want[i].s0 && (p->ndim < 2 || p->shape[1] == want[i].s1) &&
                  (p->ndim < 3 || p->shape[2] == want[i].s2),
              "%s has the HF shape", want[i].name);
        CHECK(p->decay == want[i].decay, "%s decay flag", want[i].name);
    }
    (void)E, (void)N, (void)R, (void)d;
    CHECK(md_params_find(&r, "backbone.layers.8.norm.weight") < 0, "no layer 8");

    /* lm_head is an alias of the embedding */
    int64_t emb = md_params_find(&r, "backbone.embeddings.weight"), head = md_params_find(&r, "lm_head.weight");
    CHECK(r.p[head].tied_to == emb && r.p[head].offset == r.p[emb].offset, "lm_head is tied to the embedding");
    CHECK(md_params_get(&r, -1, MD_ROLE_LM_HEAD) == &r.p[head], "lookup by role");
    CHECK(md_params_get(&r, 3, MD_ROLE_A_LOG) == &r.p[md_params_find(&r, "backbone.layers.3.mixer.A_log")],
          "lookup by layer and role");
    CHECK(md_params_get(&r, 8, MD_ROLE_A_LOG) == NULL, "lookup past the last layer");
    char buf[64];
    CHECK(!strcmp(md_param_shape_str(&r.p[md_params_find(&r, "backbone.layers.0.mixer.conv1d.weight")], buf, 64),
                  "[128, 1, 4]"),
          "shape string %s", buf);
    md_params_free(&r);
}

static void test_config_json(void)
{
    md_config_t c, back;
    md_config_init(&c, MD_ARCH_MAMBA, 40, 3);
    c.dt_min = 0.00123456789012345;
    c.norm_eps = 1e-6;
    char *js = md_config_to_json(&c);
    CHECK(md_config_from_json(js, &back, "test") == 0, "round trip parses: %s", js);
    CHECK(!memcmp(&c, &back, sizeof c), "round trip is exact: %s", js);
    free(js);
    md_config_t junk;
    CHECK(md_config_from_json("[1,2]", &junk, "test") < 0, "not an object");
    CHECK(md_config_from_json("{\"d_model\": 8}", &junk, "test") < 0, "no n_layer");
    CHECK(md_config_from_json("{\"d_model\": 8, \"n_layer\": 2, \"arch\": \"rnn\"}", &junk, "test") < 0, "bad arch");
    CHECK(md_config_from_json("{\"d_model\": \"8\", \"n_layer\": 2}", &junk, "test") < 0, "string size");
    CHECK(md_config_from_json("{\"d_model\": 8, \"n_layer\": 2, \"d_inner\": 17}", &junk, "test") < 0,
          "inconsistent d_inner");
    CHECK(md_config_from_json("{\"d_model\": 8, \"n_layer\": 2}", &junk, "test") == 0 && junk.dt_rank == 1 &&
              junk.d_inner == 16,
          "defaults derive from the size");
}

int main(void)
{
    md_verbose = 0;   /* the refusals above print their one error line; keep the log short */
    test_preset_counts();
    test_registry_layout();
    test_config_json();
    return md_test_done();
}
