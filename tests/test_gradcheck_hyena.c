/* The Hyena model's backward against central finite differences in double
 * precision (the f64 instantiation of the CPU kernels), on a tiny config:
 * every tensor -- the projections, the short conv, D, LayerNorms, the MLP,
 * and the implicit filter's MLP with its shared Sin frequency, reached only
 * through the FFT convolution's filter gradient -- then a random subset;
 * also with l_max above the trained length and on the B = 1 path. The
 * recomputing model gives the same gradients bit for bit, and the f32
 * model's loss and gradients do not depend on the thread count. */
#include "gradcheck.h"
#include "util/log.h"

static void tiny_config(md_config_t *cfg, int64_t l_max)
{
    md_config_init(cfg, MD_ARCH_HYENA, 8, 2);
    cfg->d_ff = 12;
    cfg->filter_order = 6;
    cfg->l_max = l_max;
    /* weights far from zero, so that the filter and the gating matter;
     * a lower Sin frequency keeps the loss smooth at the step sizes */
    cfg->initializer_range = 0.5;
    cfg->filter_freq = 2.0;
}

/* every tensor when per_tensor, else a random subset only */
static void check_model(int64_t B, int64_t L, int64_t l_max, int per_tensor)
{
    md_config_t cfg;
    tiny_config(&cfg, l_max);
    CHECK(md_config_validate(&cfg, "tiny") == 0, "tiny hyena config is valid");
    md_model_t *m = md_model_new(&cfg, be, F64, B, L);
    CHECK(m != NULL, "tiny f64 hyena");
    if (!m) return;
    md_model_init_weights(m, 11);
    md_tensor_t P = md_model_param_buffer(m);
    for (int64_t i = 0; i < P.shape[0]; i++) ((double *)P.data)[i] += (2 * md_rng_uniform(&rng) - 1) * 0.1;
    uint8_t *in = malloc((size_t)(B * L)), *tgt = malloc((size_t)(B * L));
    random_tokens(in, tgt, B * L);
    int64_t skipped = 0;
    if (B * L > 2) in[1] = MD_TOK_N, tgt[2] = MD_TOK_N, skipped = 1;
    md_model_zero_grad(m);
    md_loss_t out;
    CHECK(md_model_forward_backward(m, in, tgt, B, L, 1, &out) == 0, "forward_backward");
    CHECK(out.n_targets == B * L - skipped, "counted targets %lld", (long long)out.n_targets);
    int64_t n = md_model_params(m)->numel;
    double *grad = malloc((size_t)n * sizeof *grad);
    memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
    model_ctx_t c = {m, in, tgt, B, L};
    char label[64];
    snprintf(label, sizeof label, "B %lld L %lld", (long long)B, (long long)L);
    if (per_tensor) {
        check_model_tensors(&c, grad, label, "hyena.backbone.");
    } else {
        snprintf(label, sizeof label, "B %lld L %lld l_max %lld, subset", (long long)B, (long long)L, (long long)l_max);
        fd_check(label, md_model_param_buffer(m).data, grad, n, model_loss, &c, 100);
    }
    check_recompute_and_b1(&c, &cfg, &out, grad);
    free(grad), free(in), free(tgt);
    md_model_free(m);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 5151);
    check_model(2, 20, 20, 1);
    check_model(2, 13, 40, 0);   /* a filter longer than the sequences */
    check_model(1, 1, 1, 1);
    md_config_t cfg;
    tiny_config(&cfg, 8);
    CHECK(md_model_new(&cfg, be, F64, 1, 9) == NULL, "a length above l_max is refused");
    check_threads(MD_ARCH_HYENA, 64, 2, 300, 320);
    return md_test_done();
}
