/* The training step captured as a CUDA graph (train/graphstep.h) against
 * the same step run op by op and against md_train_step's host path, on
 * one GPU, for each family (Mamba, Transformer++, Hyena; Mamba also on the
 * bf16 table): three models from the same weights take the same steps --
 * two micro-batches each (gradient accumulation), a learning rate that
 * changes every step, the norm clipped, step 3 poisoned with a NaN
 * gradient (MD_TEST_POISON_STEPS: the guard skips it) and a change of
 * sequence length half-way (a new capture), then back -- and must agree
 * bit for bit: every step's verdict, loss sum, count and gradient norm,
 * and at the end every parameter and both AdamW moments. The graph must
 * have been replayed on the steps after each shape's first.
 *
 * Exits 77 (skipped) without CUDA or a GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "nn/config.h"
#include "nn/model.h"
#include "testutil.h"
#include "train/graphstep.h"
#include "train/trainer.h"
#include "util/rng.h"
#include "util/xalloc.h"

enum { STEPS = 8, ACCUM = 2, BATCH = 2, POISONED = 3 };

/* the sequence length of 0-based step s: a second shape in the middle */
static int64_t len_at(int64_t s) { return s >= 4 && s < 6 ? 128 : 192; }

/* Micro-batch a of step s: random bases, ~3% N targets, by (s, a) alone. */
typedef struct { int64_t step, len; uint8_t *in, *tg; md_model_t *m; } micro_t;

static int tokens(void *ud, int64_t a, uint8_t *in, uint8_t *tg)
{
    micro_t *mc = ud;
    md_rng_t r;
    md_rng_seed(&r, 1000 * (uint64_t)mc->step + (uint64_t)a + 1);
    for (int64_t i = 0; i < BATCH * mc->len; i++) {
        in[i] = (uint8_t)(7 + md_rng_below(&r, 4));
        tg[i] = md_rng_below(&r, 32) ? (uint8_t)(7 + md_rng_below(&r, 4)) : 11;
    }
    return 0;
}

/* md_train_step's micro-batch: the same tokens through the host path */
static int host_micro(void *ud, int64_t a, double *loss_sum, int64_t *count)
{
    micro_t *mc = ud;
    tokens(mc, a, mc->in, mc->tg);
    md_loss_t l;
    if (md_model_forward_backward(mc->m, mc->in, mc->tg, BATCH, mc->len, 1, &l) < 0) return -1;
    *loss_sum = l.loss_sum;
    *count = l.n_targets;
    return 0;
}

static int same_double(double a, double b) { return (isnan(a) && isnan(b)) || !memcmp(&a, &b, sizeof a); }

static float *to_host(const md_backend_t *be, const void *dev, int64_t n)
{
    float *h = md_malloc((size_t)n * sizeof *h);
    be->copy(be, h, dev, (size_t)n * sizeof *h, MD_COPY_D2H);
    return h;
}

enum { GRAPH, DEVICE, HOST, N_WAYS };
static const char *way_name[N_WAYS] = {"graph", "op by op", "host path"};

static void run_family(const char *label, const md_config_t *cfg, const md_backend_t *be)
{
    md_model_t *m[N_WAYS];
    md_adamw_t opt[N_WAYS];
    md_graph_step_t *gs[2] = {NULL, NULL};
    md_adamw_opts_t ao;
    md_adamw_opts_default(&ao);
    for (int w = 0; w < N_WAYS; w++) {
        m[w] = md_model_new(cfg, be, MD_DTYPE_F32, BATCH, 192);
        CHECK(m[w] != NULL, "%s: model", label);
        if (!m[w]) return;
        md_model_init_weights(m[w], 7);
        CHECK(md_train_adamw_init(&opt[w], m[w], NULL, &ao) == 0, "%s: optimizer", label);
    }
    gs[GRAPH] = md_graph_step_new(m[GRAPH], MD_STEP_GRAPH);
    gs[DEVICE] = md_graph_step_new(m[DEVICE], MD_STEP_DEVICE);
    CHECK(gs[GRAPH] && gs[DEVICE], "%s: device steps", label);
    if (!gs[GRAPH] || !gs[DEVICE]) return;
    uint8_t *in = md_malloc(BATCH * 192), *tg = md_malloc(BATCH * 192);
    md_progress_t pg;
    md_progress_init(&pg, 0);
    pg.active = 0;
    md_step_guard_t guard[N_WAYS];
    for (int w = 0; w < N_WAYS; w++) guard[w] = (md_step_guard_t){5, 0, 0};
    for (int64_t s = 0; s < STEPS; s++) {
        const double lr = 1e-3 * (1.0 + 0.5 * (double)s), clip = 0.5;
        md_step_result_t r[N_WAYS];
        int ret[N_WAYS];
        for (int w = 0; w < N_WAYS; w++) {
            micro_t mc = {s, len_at(s), in, tg, m[w]};
            ret[w] = w == HOST ? md_train_step(m[w], NULL, &opt[w], ACCUM, host_micro, &mc, lr, clip, s, &pg,
                                               &guard[w], &r[w])
                               : md_graph_step_run(gs[w], &opt[w], BATCH, mc.len, ACCUM, tokens, &mc, lr, clip, s, &pg,
                                                   &guard[w], &r[w]);
        }
        CHECK(ret[GRAPH] == (s + 1 == POISONED ? 1 : 0), "%s: step %lld returned %d", label, (long long)s + 1,
              ret[GRAPH]);
        for (int w = DEVICE; w < N_WAYS; w++) {
            CHECK(ret[w] == ret[GRAPH], "%s: step %lld: %s returned %d, the graph %d", label, (long long)s + 1,
                  way_name[w], ret[w], ret[GRAPH]);
            CHECK(r[w].count == r[GRAPH].count && same_double(r[w].loss_sum, r[GRAPH].loss_sum) &&
                      same_double(r[w].grad_norm, r[GRAPH].grad_norm),
                  "%s: step %lld: %s: loss sum %.17g over %lld, norm %.17g; the graph: %.17g over %lld, norm %.17g",
                  label, (long long)s + 1, way_name[w], r[w].loss_sum, (long long)r[w].count, r[w].grad_norm,
                  r[GRAPH].loss_sum, (long long)r[GRAPH].count, r[GRAPH].grad_norm);
        }
        CHECK(s + 1 == POISONED ? isnan(r[GRAPH].grad_norm) : isfinite(r[GRAPH].grad_norm) && r[GRAPH].grad_norm > 0,
              "%s: step %lld: gradient norm %g", label, (long long)s + 1, r[GRAPH].grad_norm);
    }
    /* per shape: its first step op by op, then capture and replay; the
     * shapes run 4, 2 and 2 steps: 3 + 1 + 1 replays */
    CHECK(md_graph_step_replays(gs[GRAPH]) == 5 && md_graph_step_replays(gs[DEVICE]) == 0,
          "%s: %lld steps replayed a graph, %lld op by op", label, (long long)md_graph_step_replays(gs[GRAPH]),
          (long long)md_graph_step_replays(gs[DEVICE]));
    const int64_t n = md_model_params(m[GRAPH])->numel;
    float *ref[3] = {to_host(be, md_model_param_buffer(m[GRAPH]).data, n), to_host(be, opt[GRAPH].m, n),
                     to_host(be, opt[GRAPH].v, n)};
    for (int w = DEVICE; w < N_WAYS; w++) {
        float *got[3] = {to_host(be, md_model_param_buffer(m[w]).data, n), to_host(be, opt[w].m, n),
                         to_host(be, opt[w].v, n)};
        static const char *what[3] = {"parameters", "first moments", "second moments"};
        for (int k = 0; k < 3; k++) {
            CHECK(!memcmp(got[k], ref[k], (size_t)n * sizeof(float)), "%s: %s: the %s differ from the graph's", label,
                  way_name[w], what[k]);
            free(got[k]);
        }
        CHECK(opt[w].step == STEPS, "%s: %s: the optimizer counted %lld steps", label, way_name[w],
              (long long)opt[w].step);
    }
    CHECK(opt[GRAPH].step == STEPS, "%s: the graph's optimizer counted %lld steps", label, (long long)opt[GRAPH].step);
    printf("%-12s %lld parameters: %d steps bit-identical three ways (%lld replays)\n", label, (long long)n, STEPS,
           (long long)md_graph_step_replays(gs[GRAPH]));
    for (int k = 0; k < 3; k++) free(ref[k]);
    free(in), free(tg);
    for (int w = 0; w < N_WAYS; w++) {
        md_adamw_free(&opt[w]);
        md_model_free(m[w]);
    }
    md_graph_step_free(gs[GRAPH]);
    md_graph_step_free(gs[DEVICE]);
}

int main(void)
{
    md_test_need_gpu();
    setenv("MD_TEST_POISON_STEPS", "3", 1);
    const md_backend_t *f32 = md_backend_cuda(0), *b16 = md_backend_cuda_ex(0, MD_PRECISION_BF16);
    CHECK(f32 && b16, "the CUDA backends");
    if (!f32 || !b16) return md_test_done();
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 64, 2);
    run_family("mamba", &cfg, f32);
    run_family("mamba bf16", &cfg, b16);
    md_config_init(&cfg, MD_ARCH_TRANSFORMER, 64, 2);
    run_family("transformer", &cfg, f32);
    md_config_init(&cfg, MD_ARCH_HYENA, 64, 2);
    cfg.l_max = 192;
    run_family("hyena", &cfg, f32);
    return md_test_done();
}
