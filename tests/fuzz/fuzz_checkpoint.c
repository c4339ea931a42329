/* libFuzzer target: model checkpoints (src/nn/checkpoint.c over
 * safetensors.c and the config JSON in its metadata). An accepted
 * checkpoint's every registry tensor is then read as md_ckpt_load_params
 * reads it. */
#include "fuzz_common.h"
#include "nn/checkpoint.h"
#include "nn/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    fz_write("model.safetensors", data, size, path, sizeof path);
    fz_log_begin();
    md_ckpt_t *c = md_ckpt_open(path);
    fz_log_end(c == NULL, "md_ckpt_open");
    if (!c) return 0;
    md_params_t reg;
    fz_log_begin();
    FZ_CHECK(md_params_build(&c->cfg, &reg) == 0);
    fz_log_end(0, "md_params_build");
    float *host = malloc((size_t)reg.numel * sizeof(float) + 1);
    for (int64_t i = 0; i < reg.n; i++) {
        const md_param_t *p = &reg.p[i];
        if (p->tied_to >= 0) continue;
        fz_log_begin();
        FZ_CHECK(md_st_get_f32(c->st, p->name, p->ndim, p->shape, host + p->offset) == 0);
        fz_log_end(0, "md_st_get_f32");
    }
    free(host);
    md_params_free(&reg);
    md_ckpt_close(c);
    return 0;
}
