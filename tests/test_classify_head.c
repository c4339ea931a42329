/* The sequence-classification head (md_model_classify), for Mamba and
 * Transformer++ and both poolings:
 *   - its class log-probabilities equal a host computation from the final
 *     hidden states (md_model_hidden) and the head's weights: the last
 *     position's state, or the mean over positions, times classifier.weight
 *     plus the bias, log-softmaxed; loss, count and correctness follow;
 *   - gradients against central finite differences in double precision,
 *     for every tensor (the head, norm_f, the blocks, the embedding) with
 *     the sequence-parallel path (B = 3) and the whole-batch path (B = 1),
 *     an unlabelled sequence contributing nothing;
 *   - the LM head gets no gradient; a second call adds the same gradient;
 *   - the f32 classifier does not depend on the thread count;
 *   - a model planned for inference gives the same bits in less memory;
 *   - errors: a language model, a label out of range. */
#include "gradcheck.h"
#include "nn/params.h"
#include "util/log.h"

typedef struct { md_model_t *m; const uint8_t *in; const int32_t *lab; int64_t B, L; } cls_ctx_t;

static double cls_loss(void *p)
{
    cls_ctx_t *c = p;
    md_class_result_t r;
    md_model_classify(c->m, c->in, c->lab, c->B, c->L, 0, NULL, &r);
    return r.loss_sum;
}

static void perturb(md_model_t *m, double amp)
{
    md_tensor_t P = md_model_param_buffer(m);
    for (int64_t i = 0; i < P.shape[0]; i++) ((double *)P.data)[i] += (2 * md_rng_uniform(&rng) - 1) * amp;
}

static void config(md_config_t *cfg, md_arch_t arch, int pooling)
{
    md_config_init(cfg, arch, 8, 2);
    cfg->dt_min = 0.01, cfg->dt_max = 0.5;
    cfg->n_heads = 2;
    cfg->d_ff = 16;
    cfg->n_classes = 3;
    cfg->cls_pooling = pooling;
}

/* The head recomputed on the host from md_model_hidden. */
static void check_head_math(md_arch_t arch, int pooling)
{
    md_config_t cfg;
    config(&cfg, arch, pooling);
    const int64_t B = 3, L = 6, C = 3, d = 8;
    md_model_t *m = md_model_new(&cfg, be, F64, B, L);
    md_model_init_weights(m, 5);
    perturb(m, 0.3);
    uint8_t in[18], tgt[18];
    random_tokens(in, tgt, B * L);
    int32_t lab[3] = {2, -1, 0};
    float lp[9], hid[3 * 6 * 8];
    md_class_result_t r;
    CHECK(md_model_classify(m, in, lab, B, L, 0, lp, &r) == 0, "classify");
    CHECK(md_model_hidden(m, in, B, L, hid) == 0, "hidden");
    const md_params_t *reg = md_model_params(m);
    const double *P = md_model_param_buffer(m).data;
    const double *W = P + md_params_get(reg, -1, MD_ROLE_CLS_W)->offset, *bias = P + md_params_get(reg, -1, MD_ROLE_CLS_B)->offset;
    double loss = 0, max_err = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < B; b++) {
        double pooled[8] = {0}, z[3], mx = -1e300, s = 0;
        for (int64_t t = 0; t < L; t++) {
            if (pooling == MD_POOL_LAST && t != L - 1) continue;
            for (int64_t j = 0; j < d; j++) pooled[j] += hid[(b * L + t) * d + j] / (pooling == MD_POOL_MEAN ? L : 1);
        }
        int arg = 0;
        for (int k = 0; k < C; k++) {
            z[k] = bias[k];
            for (int64_t j = 0; j < d; j++) z[k] += W[k * d + j] * pooled[j];
            if (z[k] > mx) mx = z[k], arg = k;
        }
        for (int k = 0; k < C; k++) s += exp(z[k] - mx);
        for (int k = 0; k < C; k++) {
            double want = z[k] - mx - log(s), e = fabs(want - lp[b * C + k]);
            if (e > max_err) max_err = e;
        }
        if (lab[b] >= 0) loss -= z[lab[b]] - mx - log(s), correct += arg == lab[b];
    }
    CHECK(max_err < 1e-5, "%s %s: log-probabilities differ from the host's by %.3g", md_arch_name(arch),
          md_pooling_name(pooling), max_err);
    CHECK(r.n_labelled == 2, "2 labelled, got %lld", (long long)r.n_labelled);
    CHECK(r.n_correct == correct, "correct %lld, want %lld", (long long)r.n_correct, (long long)correct);
    CHECK_CLOSE(r.loss_sum, loss, 1e-6, 1e-9, "loss sum");
    md_model_free(m);
}

static void check_gradients(md_arch_t arch, int pooling)
{
    md_config_t cfg;
    config(&cfg, arch, pooling);
    const int64_t L = 5;
    md_model_t *m = md_model_new(&cfg, be, F64, 3, L);
    md_model_init_weights(m, 11);
    perturb(m, 0.2);
    uint8_t in[15], tgt[15];
    random_tokens(in, tgt, 15);
    in[4] = MD_TOK_N;
    int32_t lab[3] = {1, 2, -1};
    const md_params_t *reg = md_model_params(m);
    int64_t n = reg->numel;
    double *grad = malloc((size_t)n * sizeof *grad), *P = md_model_param_buffer(m).data;
    for (int64_t B = 3; B >= 1; B -= 2) {
        md_model_zero_grad(m);
        md_class_result_t r;
        CHECK(md_model_classify(m, in, lab, B, L, 1, NULL, &r) == 0, "classify with backward");
        CHECK(r.n_labelled == (B == 3 ? 2 : 1), "labelled count %lld", (long long)r.n_labelled);
        memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
        const md_param_t *lm = md_params_get(reg, -1, MD_ROLE_LM_HEAD), *emb = md_params_get(reg, -1, MD_ROLE_EMBEDDING);
        CHECK(lm->tied_to >= 0 && lm->offset == emb->offset, "the LM head is the embedding's alias");
        cls_ctx_t c = {m, in, lab, B, L};
        for (int64_t i = 0; i < reg->n; i++) {
            const md_param_t *p = &reg->p[i];
            if (p->tied_to >= 0) continue;
            char what[160];
            snprintf(what, sizeof what, "%s %s B=%lld %s", md_arch_name(arch), md_pooling_name(pooling), (long long)B,
                     p->name);
            fd_check(what, P + p->offset, grad + p->offset, p->numel, cls_loss, &c, 5);
        }
        /* a second call adds the same gradient again */
        md_model_classify(m, in, lab, B, L, 1, NULL, &r);
        const double *g2 = md_model_grad_buffer(m).data;
        int doubled = 1;
        for (int64_t i = 0; i < n; i++) doubled &= fabs(g2[i] - 2 * grad[i]) <= 1e-12 * fabs(grad[i]) + 1e-300;
        CHECK(doubled, "a second call adds the same gradient");
    }
    /* an unlabelled sequence adds nothing */
    int32_t none[3] = {-1, -1, -1};
    md_model_zero_grad(m);
    md_class_result_t r;
    md_model_classify(m, in, none, 3, L, 1, NULL, &r);
    int zero = r.n_labelled == 0 && r.loss_sum == 0;
    for (int64_t i = 0; i < n; i++) zero &= ((double *)md_model_grad_buffer(m).data)[i] == 0;
    CHECK(zero, "unlabelled sequences: no loss and no gradient");
    free(grad);
    md_model_free(m);
}

static void check_threads_cls(md_arch_t arch)
{
    md_config_t cfg;
    md_config_init(&cfg, arch, 32, 2);
    cfg.n_classes = 5;
    const int64_t L = 300, B = 3;
    uint8_t *in = malloc(B * L), *tgt = malloc(B * L);
    random_tokens(in, tgt, B * L);
    int32_t lab[3] = {4, 0, 2};
    float *g[2], lp[2][15];
    int64_t n = 0;
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        md_model_t *m = md_model_new(&cfg, be, MD_DTYPE_F32, 4, L);
        md_model_init_weights(m, 3);
        md_model_zero_grad(m);
        md_class_result_t r;
        md_model_classify(m, in, lab, B, L, 1, lp[run], &r);
        n = md_model_params(m)->numel;
        g[run] = malloc((size_t)n * sizeof(float));
        memcpy(g[run], md_model_grad_buffer(m).data, (size_t)n * sizeof(float));
        md_model_free(m);
    }
    omp_set_num_threads(2);
    CHECK(!memcmp(lp[0], lp[1], sizeof lp[0]), "%s: log-probabilities with 1 and 2 threads differ", md_arch_name(arch));
    CHECK(!memcmp(g[0], g[1], (size_t)n * sizeof(float)), "%s: gradients with 1 and 2 threads differ", md_arch_name(arch));
    free(g[0]), free(g[1]), free(in), free(tgt);
}

/* A model planned for inference (forward only: two residual streams in
 * turn, no scan states) gives the same bits as the training model, over
 * enough blocks for the streams to wrap, in the whole-batch (B = 1) and
 * sequence-parallel (B = 3) paths; it refuses a backward and plans less. */
static void check_inference(md_arch_t arch)
{
    md_config_t cfg;
    md_config_init(&cfg, arch, 16, 5);
    cfg.n_heads = 2;
    cfg.n_classes = 4;
    const int64_t L = 150, MB = 3, d = 16, C = 4;
    uint8_t in[3 * 150], tgt[3 * 150];
    random_tokens(in, tgt, MB * L);
    md_model_opts_t inf = {.inference = 1};
    md_model_t *ref = md_model_new(&cfg, be, MD_DTYPE_F32, MB, L), *m = md_model_new_ex(&cfg, be, MD_DTYPE_F32, MB, L, &inf);
    md_model_init_weights(ref, 11);
    md_model_init_weights(m, 11);
    for (int64_t B = 1; B <= MB; B += 2) {
        float lp[2][3 * 4], hid[2][3 * 150 * 16];
        md_class_result_t r;
        CHECK(md_model_classify(ref, in, NULL, B, L, 0, lp[0], &r) == 0 && md_model_classify(m, in, NULL, B, L, 0, lp[1], &r) == 0,
              "%s: classify", md_arch_name(arch));
        CHECK(!memcmp(lp[0], lp[1], (size_t)(B * C) * sizeof(float)), "%s B=%lld: inference log-probabilities differ",
              md_arch_name(arch), (long long)B);
        CHECK(md_model_hidden(ref, in, B, L, hid[0]) == 0 && md_model_hidden(m, in, B, L, hid[1]) == 0, "hidden");
        CHECK(!memcmp(hid[0], hid[1], (size_t)(B * L * d) * sizeof(float)), "%s B=%lld: inference hidden states differ",
              md_arch_name(arch), (long long)B);
    }
    md_class_result_t r;
    int32_t lab[3] = {0, 1, 2};
    CHECK(md_model_classify(m, in, lab, MB, L, 1, NULL, &r) < 0, "%s: an inference model ran a backward", md_arch_name(arch));
    md_loss_t loss;
    CHECK(md_model_forward_backward(m, in, tgt, MB, L, 1, &loss) < 0, "%s: an inference model ran a backward",
          md_arch_name(arch));
    CHECK(md_model_forward_backward(m, in, tgt, MB, L, 0, &loss) == 0, "%s: an inference model's forward loss",
          md_arch_name(arch));
    md_model_memory_t a, b;
    md_model_memory(ref, &a);
    md_model_memory(m, &b);
    CHECK(b.activations < a.activations && b.workspace < a.workspace, "%s: inference plans %lld + %lld bytes vs %lld + %lld",
          md_arch_name(arch), (long long)b.activations, (long long)b.workspace, (long long)a.activations,
          (long long)a.workspace);
    md_model_free(ref);
    md_model_free(m);
}

static void check_errors(void)
{
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 8, 1);
    md_model_t *lm = md_model_new(&cfg, be, F64, 2, 4);
    uint8_t in[8] = {7, 8, 9, 10, 7, 8, 9, 10};
    int32_t lab[2] = {0, 3};
    md_class_result_t r;
    CHECK(md_model_classify(lm, in, NULL, 2, 4, 0, NULL, &r) < 0, "a language model is not a classifier");
    md_model_free(lm);
    cfg.n_classes = 3;
    md_model_t *m = md_model_new(&cfg, be, F64, 2, 4);
    CHECK(md_model_classify(m, in, lab, 2, 4, 0, NULL, &r) < 0, "label 3 of 3 classes");
    CHECK(md_model_classify(m, in, lab, 1, 4, 0, NULL, &r) == 0, "label 0 of 3 classes");
    md_model_free(m);
    /* the registry and the counts agree */
    md_params_t reg;
    md_params_build(&cfg, &reg);
    CHECK(reg.numel == md_config_n_params(&cfg), "registry %lld vs config %lld parameters", (long long)reg.numel,
          (long long)md_config_n_params(&cfg));
    CHECK(md_params_find(&reg, "classifier.weight") >= 0 && md_params_find(&reg, "classifier.bias") >= 0,
          "classifier tensors named");
    md_params_free(&reg);
    cfg.n_classes = 1;
    CHECK(md_config_validate(&cfg, "test") < 0, "one class is refused");
    /* the config's JSON keeps the head */
    cfg.n_classes = 7;
    cfg.cls_pooling = MD_POOL_MEAN;
    char *js = md_config_to_json(&cfg);
    md_config_t back;
    CHECK(md_config_from_json(js, &back, "test") == 0 && back.n_classes == 7 && back.cls_pooling == MD_POOL_MEAN,
          "JSON round trip of the head");
    free(js);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 77);
    md_arch_t archs[2] = {MD_ARCH_MAMBA, MD_ARCH_TRANSFORMER};
    for (int a = 0; a < 2; a++) {
        for (int pool = MD_POOL_LAST; pool <= MD_POOL_MEAN; pool++) {
            check_head_math(archs[a], pool);
            check_gradients(archs[a], pool);
        }
        check_threads_cls(archs[a]);
        check_inference(archs[a]);
    }
    check_errors();
    printf("worst relative error %.2e\n", worst);
    return md_test_done();
}
