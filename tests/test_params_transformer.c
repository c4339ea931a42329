/* Transformer++ presets and registry: the paper's layer/width pairs with
 * parameter counts recomputed here from the block's formula (Llama's
 * d_ff rule written out independently), the documented table in config.h,
 * the LlamaForCausalLM names and shapes, weight decay only on matrices and
 * the embedding, q/k/v and gate/up adjacent in storage, the head rule, the
 * validation of heads, and the config JSON round trip. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/config.h"
#include "nn/params.h"
#include "testutil.h"
#include "util/log.h"

/* Llama's MLP width: int(2 * 4d / 3), then up to a multiple of 64. */
static int64_t llama_ffn(int64_t d)
{
    int64_t hidden = (int64_t)floor(2.0 * (4.0 * (double)d) / 3.0);
    int64_t f = 0;
    while (f < hidden) f += 64;
    return f;
}

static void test_presets(void)
{
    /* layers/width of the Mamba paper's Transformer++ baselines, and the
     * counts (without the embedding) that config.h documents */
    static const struct { const char *name; int64_t n, d, heads, count; } want[] = {
        {"214K", 4, 64, 1, 213568},    {"554K", 5, 96, 1, 554016},    {"1.3M", 6, 128, 2, 1279616},
        {"3.1M", 7, 192, 3, 3099456},  {"6.4M", 8, 256, 4, 6426880},  {"18M", 10, 384, 6, 17702784},
        {"39M", 12, 512, 8, 38547968},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        md_config_t c;
        CHECK(md_config_preset(&c, MD_ARCH_TRANSFORMER, want[i].name) == 0, "preset %s", want[i].name);
        CHECK(c.arch == MD_ARCH_TRANSFORMER && c.d_model == want[i].d && c.n_layer == want[i].n,
              "preset %s is %lld x %lld", want[i].name, (long long)c.d_model, (long long)c.n_layer);
        CHECK(c.n_heads == want[i].heads, "preset %s: %lld heads", want[i].name, (long long)c.n_heads);
        CHECK(md_config_validate(&c, "test") == 0, "preset %s validates", want[i].name);
        int64_t d = want[i].d, F = llama_ffn(d);
        CHECK(c.d_ff == F, "preset %s: d_ff %lld, Llama's rule gives %lld", want[i].name, (long long)c.d_ff,
              (long long)F);
        /* per block: q, k, v, o (d x d each), gate, up (F x d), down (d x F), two norms */
        int64_t formula = want[i].n * (4 * d * d + 3 * d * F + 2 * d) + d;
        CHECK(formula == want[i].count, "preset %s: the formula gives %lld, config.h documents %lld", want[i].name,
              (long long)formula, (long long)want[i].count);
        CHECK(md_config_n_params_no_embed(&c) == formula, "preset %s: %lld parameters, want %lld", want[i].name,
              (long long)md_config_n_params_no_embed(&c), (long long)formula);
        md_params_t r;
        CHECK(md_params_build(&c, &r) == 0, "registry %s", want[i].name);
        CHECK(r.numel == formula + 16 * d, "registry %s numel %lld", want[i].name, (long long)r.numel);
        CHECK(md_params_count_no_embed(&r) == formula, "registry %s without the embedding", want[i].name);
        printf("transformer %-5s %2lld x %3lld  heads %lld  d_ff %4lld  %9lld parameters (%lld with the embedding)\n",
               want[i].name, (long long)want[i].n, (long long)d, (long long)c.n_heads, (long long)F,
               (long long)formula, (long long)r.numel);
        md_params_free(&r);
    }
    md_config_t c;
    CHECK(md_config_preset(&c, MD_ARCH_TRANSFORMER, "1.3m") == 0 && c.d_model == 128, "preset names ignore case");
    CHECK(md_config_preset(&c, MD_ARCH_TRANSFORMER, "1.4M") < 0, "a Mamba preset name is refused");
}

static void test_registry(void)
{
    md_config_t c;
    md_config_init(&c, MD_ARCH_TRANSFORMER, 192, 2);
    c.d_ff = 100;
    md_params_t r;
    CHECK(md_params_build(&c, &r) == 0, "registry");
    static const struct { const char *name; int64_t s0, s1; int decay; } want[] = {
        {"model.embed_tokens.weight", 16, 192, 1},
        {"model.layers.1.input_layernorm.weight", 192, 0, 0},
        {"model.layers.1.self_attn.q_proj.weight", 192, 192, 1},
        {"model.layers.1.self_attn.k_proj.weight", 192, 192, 1},
        {"model.layers.1.self_attn.v_proj.weight", 192, 192, 1},
        {"model.layers.1.self_attn.o_proj.weight", 192, 192, 1},
        {"model.layers.1.post_attention_layernorm.weight", 192, 0, 0},
        {"model.layers.1.mlp.gate_proj.weight", 100, 192, 1},
        {"model.layers.1.mlp.up_proj.weight", 100, 192, 1},
        {"model.layers.1.mlp.down_proj.weight", 192, 100, 1},
        {"model.norm.weight", 192, 0, 0},
        {"lm_head.weight", 16, 192, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t k = md_params_find(&r, want[i].name);
        CHECK(k >= 0, "tensor %s", want[i].name);
        if (k < 0) continue;
        const md_param_t *p = &r.p[k];
        CHECK(p->shape[0] == want[i].s0 && p->ndim == (want[i].s1 ? 2 : 1) && (!want[i].s1 || p->shape[1] == want[i].s1),
              "%s shape", want[i].name);
        CHECK(p->decay == want[i].decay, "%s decay %d", want[i].name, p->decay);
        CHECK(p->decay ? p->offset + p->numel <= r.n_decay || p->tied_to >= 0 : p->offset >= r.n_decay,
              "%s on the right side of the decay boundary", want[i].name);
    }
    CHECK(r.n == 1 + 2 * 9 + 2, "%lld entries", (long long)r.n);
    CHECK(r.p[r.n - 1].tied_to == 0, "lm_head tied to the embedding");
    /* no Mamba names */
    for (int64_t i = 0; i < r.n; i++) CHECK(strncmp(r.p[i].name, "backbone.", 9), "Mamba name %s", r.p[i].name);
    /* q, k, v and gate, up contiguous: the block's fused gemms rely on it */
    for (int l = 0; l < 2; l++) {
        const md_param_t *q = md_params_get(&r, l, MD_ROLE_Q_PROJ), *k = md_params_get(&r, l, MD_ROLE_K_PROJ);
        const md_param_t *v = md_params_get(&r, l, MD_ROLE_V_PROJ), *g = md_params_get(&r, l, MD_ROLE_GATE_PROJ);
        const md_param_t *u = md_params_get(&r, l, MD_ROLE_UP_PROJ);
        CHECK(k->offset == q->offset + q->numel && v->offset == k->offset + k->numel, "layer %d q, k, v adjacent", l);
        CHECK(u->offset == g->offset + g->numel, "layer %d gate, up adjacent", l);
    }
    /* storage is exactly covered once */
    char *seen = calloc((size_t)r.numel, 1);
    int overlap = 0;
    for (int64_t i = 0; i < r.n; i++) {
        if (r.p[i].tied_to >= 0) continue;
        for (int64_t j = 0; j < r.p[i].numel; j++) overlap |= seen[r.p[i].offset + j]++;
    }
    int covered = 1;
    for (int64_t j = 0; j < r.numel; j++) covered &= seen[j] == 1;
    CHECK(!overlap && covered, "storage covered exactly once");
    free(seen);
    md_params_free(&r);
}

static void test_heads_and_json(void)
{
    /* head rule: 64-wide heads from 128 up, one head below, always dividing d */
    static const int64_t d[] = {8, 64, 96, 128, 192, 200, 512, 520};
    static const int64_t h[] = {1, 1, 1, 2, 3, 2, 8, 8};   /* 200: 3 does not divide, so 2 */
    for (int i = 0; i < 8; i++) {
        CHECK(md_config_default_heads(d[i]) == h[i], "d %lld: %lld heads", (long long)d[i],
              (long long)md_config_default_heads(d[i]));
        CHECK(d[i] % md_config_default_heads(d[i]) == 0, "heads divide d %lld", (long long)d[i]);
    }
    md_config_t c;
    md_config_init(&c, MD_ARCH_TRANSFORMER, 48, 3);
    c.n_heads = 5;
    CHECK(md_config_validate(&c, "test") < 0, "5 heads do not divide 48");
    c.n_heads = 16;
    CHECK(md_config_validate(&c, "test") < 0, "odd head dimension 3 is refused");
    c.n_heads = 4, c.d_ff = 77, c.rope_theta = 500000;
    CHECK(md_config_validate(&c, "test") == 0, "4 heads of 12");
    char *js = md_config_to_json(&c);
    md_config_t back;
    CHECK(md_config_from_json(js, &back, "json") == 0, "JSON parses back: %s", js);
    CHECK(back.arch == MD_ARCH_TRANSFORMER && back.n_heads == 4 && back.d_ff == 77 && back.rope_theta == 500000 &&
              back.d_model == 48 && back.n_layer == 3,
          "round trip: %s", js);
    free(js);
}

int main(void)
{
    md_verbose = 0;
    test_presets();
    test_registry();
    test_heads_and_json();
    return md_test_done();
}
