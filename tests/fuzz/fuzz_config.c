/* libFuzzer target: the model config JSON that checkpoints carry in their
 * metadata (md_config_from_json, src/nn/config.c). An accepted config must
 * survive the round trip through md_config_to_json exactly (config.h's
 * contract), and give a parameter registry whose size is the config's
 * parameter count. */
#include "fuzz_common.h"
#include "nn/config.h"
#include "nn/params.h"

static int same(const md_config_t *a, const md_config_t *b)
{
    return a->arch == b->arch && !strcmp(a->preset, b->preset) && a->d_model == b->d_model &&
           a->n_layer == b->n_layer && a->vocab_size == b->vocab_size && a->norm_eps == b->norm_eps &&
           a->tie_embeddings == b->tie_embeddings && a->expand == b->expand && a->d_inner == b->d_inner &&
           a->d_state == b->d_state && a->dt_rank == b->dt_rank && a->d_conv == b->d_conv && a->dt_min == b->dt_min &&
           a->dt_max == b->dt_max && a->dt_init_floor == b->dt_init_floor &&
           a->initializer_range == b->initializer_range && a->n_heads == b->n_heads && a->d_ff == b->d_ff &&
           a->rope_theta == b->rope_theta;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    md_config_t cfg, again;
    fz_log_begin();
    int ok = md_config_from_json(text, &cfg, "fuzz") == 0;
    fz_log_end(!ok, "md_config_from_json");
    free(text);
    if (!ok) return 0;
    char *json = md_config_to_json(&cfg);
    fz_log_begin();
    FZ_CHECK(md_config_from_json(json, &again, "round trip") == 0);
    fz_log_end(0, "md_config_from_json of md_config_to_json");
    FZ_CHECK(same(&cfg, &again));
    free(json);
    md_params_t reg;
    fz_log_begin();
    FZ_CHECK(md_params_build(&cfg, &reg) == 0);
    fz_log_end(0, "md_params_build");
    FZ_CHECK(reg.numel == md_config_n_params(&cfg));
    md_params_free(&reg);
    return 0;
}
