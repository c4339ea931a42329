/* A whole training step on the GPU against the CPU in fp32: the same
 * model (one definition, src/nn) on md_backend_cpu and md_backend_cuda(0),
 * the same weights and tokens; the loss, every parameter's gradient
 * (||gpu - cpu|| / ||cpu|| per tensor), then one AdamW step on each side
 * and the loss after it. Configs: a tiny one (d_model 32, 2 layers; odd L
 * over the scan's 128-step chunk; batch 3 of L = 1) and the 250K preset at
 * L = 1024, batch 2; the same for Transformer++ (a tiny one with two
 * heads, and the 214K preset); the same for Hyena (a tiny one and the
 * 436K preset); then the Mamba pair, the tiny Transformer and the Hyena
 * pair again on the bf16 table (md_backend_cuda_ex, MD_PRECISION_BF16) at
 * bf16 tolerances, with the Transformer++ pair and a tiny Transformer of
 * head dim 16 (the fp32 attention kernels on bf16 tensors): bf16 GEMMs
 * and bf16 storage of every block's activations, their gradients and the
 * GEMM weights, whose saving in the memory plan is checked against the
 * blocks' layouts.
 *
 * Exits 77 (skipped) without CUDA or a GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "nn/config.h"
#include "nn/model.h"
#include "nn/params.h"
#include "testutil.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* fp32; bf16 GEMM operands (md_backend_cuda_ex bf16) round to 8 bits */
static double LOSS_TOL = 1e-5, GRAD_TOL = 1e-4, STEP_TOL = 1e-4;
static const md_backend_t *gpu;

static void adamw_step(md_model_t *m, void *mom, void *var, double grad_scale)
{
    const md_backend_t *be = md_model_backend(m);
    const md_params_t *reg = md_model_params(m);
    md_tensor_t p = md_model_param_buffer(m), g = md_model_grad_buffer(m);
    md_tensor_t mt = md_tensor_1d(mom, MD_DTYPE_F32, be->device, reg->numel);
    md_tensor_t vt = md_tensor_1d(var, MD_DTYPE_F32, be->device, reg->numel);
    md_adamw_hparams_t hp = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                             .grad_scale = grad_scale, .step = 1};
    be->adamw(be, &p, &g, &mt, &vt, reg->n_decay, &hp);
}

/* With bf16 storage (the bf16 table) the plan shrinks, to the 64-byte
 * alignment of each sub-buffer, by 2 bytes per element of what the block
 * stores in the activation dtype. Mamba (mamba.h): per saved set xz (2E),
 * u, delta, y (E each), xdbl (R + 2N) and, a set per layer, hn (d); in the
 * backward's scratch du (E), dxz (2E) and dxdbl (R + 2N) -- dy, ddelta and
 * dhn take y's and delta's slots in the saved set. Hyena (hyena.c): per set
 * hn1, y, hn2 (d each), p, c (3d each), f1, act (F each); in the scratch
 * dact/dc (max(F, 3d)), dhn/dy (d) and dp (3d). Transformer++
 * (transformer.c): per set hn1, o, hn2 (d each), qkv (3d), gu (2F), act
 * (F); in the scratch dhn, dout (d each), dqkv (3d), dact (F), dgu (2F).
 * Transformer++'s op workspace differs between the tables (the
 * tensor-core attention's bf16 copies); it lies over the dead head
 * buffers where it fits (ws_bwd_only, model.c), which at a tiny B x L
 * only the fp32 table's does: the workspace saving is the scratch's, less
 * the bf16 table's op workspace and plus the fp32 one's where they are
 * planned apart. */
static void check_bf16_plan(const char *label, const md_config_t *cfg, md_model_t *mg, int64_t B, int64_t L)
{
    if (gpu->act_dtype != MD_DTYPE_BF16) return;
    md_model_t *ref = md_model_new(cfg, md_backend_cuda(0), MD_DTYPE_F32, B, L);
    CHECK(ref != NULL, "%s: fp32 reference model", label);
    if (!ref) return;
    md_model_memory_t m16, m32;
    md_model_memory(mg, &m16);
    md_model_memory(ref, &m32);
    int64_t M = B * L, d = cfg->d_model, E = cfg->d_inner, X = cfg->dt_rank + 2 * cfg->d_state, F = cfg->d_ff;
    double per_set = (double)(5 * E + X + d), per_scratch = (double)(3 * E + X);
    if (cfg->arch == MD_ARCH_HYENA) per_set = (double)(9 * d + 2 * F), per_scratch = (double)((F > 3 * d ? F : 3 * d) + 4 * d);
    if (cfg->arch == MD_ARCH_TRANSFORMER) per_set = (double)(6 * d + 3 * F), per_scratch = (double)(5 * d + 3 * F);
    double acts = (double)cfg->n_layer * M * per_set * 2, scratch = (double)M * per_scratch * 2;
    double got_a = (double)(m32.activations - m16.activations), got_w = (double)(m32.workspace - m16.workspace);
    CHECK(fabs(got_a - acts) <= 64.0 * 8 * cfg->n_layer, "%s: bf16 activations save %.0f bytes, expected %.0f", label,
          got_a, acts);
    double ws16 = 0, ws32 = 0;
    if (cfg->arch == MD_ARCH_TRANSFORMER) {
        int64_t H = cfg->n_heads, hd = d / H;
        const md_backend_t *f32 = md_backend_cuda(0);
        ws16 = (double)((gpu->attention_workspace(gpu, MD_DTYPE_F32, B, L, H, hd) + 63) & ~(size_t)63);
        ws32 = (double)((f32->attention_workspace(f32, MD_DTYPE_F32, B, L, H, hd) + 63) & ~(size_t)63);
    }
    int ok_w = 0;
    for (int apart = 0; apart < 4; apart++)   /* bit 0: the fp32 op workspace planned apart, bit 1: the bf16 one */
        ok_w |= fabs(got_w - (scratch + (apart & 1 ? ws32 : 0) - (apart & 2 ? ws16 : 0))) <= 64.0 * 8;
    CHECK(ok_w, "%s: bf16 scratch saves %.0f bytes, expected %.0f (op workspaces %.0f bf16, %.0f fp32)", label, got_w,
          scratch, ws16, ws32);
    CHECK(m16.weight_copies >= md_model_params(mg)->numel * 2 && m32.weight_copies == 0,
          "%s: weight copies %lld (bf16) and %lld (fp32) bytes", label, (long long)m16.weight_copies,
          (long long)m32.weight_copies);
    printf("%-8s plan: activations %.2f -> %.2f MiB, workspace %.2f -> %.2f MiB, total %.2f -> %.2f MiB\n", label,
           m32.activations / 1048576.0, m16.activations / 1048576.0, m32.workspace / 1048576.0,
           m16.workspace / 1048576.0, m32.total / 1048576.0, m16.total / 1048576.0);
    md_model_free(ref);
}

/* The recomputing model on the same backend (recompute: what it keeps,
 * model.h): the same loss and gradients (lg, gg) from the same weights and
 * tokens, bit for bit -- the recomputed activations come from the same
 * deterministic ops, the Mamba block's y from the scan's backward has the
 * forward's bits, and kept scan states are the forward's. */
static void check_recompute(const char *label, const md_config_t *cfg, int64_t B, int64_t L, const float *params,
                            const uint8_t *in, const uint8_t *tg, const md_loss_t *lg, const float *gg, int recompute)
{
    md_model_opts_t opts = {.recompute = recompute};
    md_model_t *mr = md_model_new_ex(cfg, gpu, MD_DTYPE_F32, B, L, &opts);
    CHECK(mr != NULL, "%s: recomputing model", label);
    if (!mr) return;
    md_model_write_params(mr, params);
    md_model_zero_grad(mr);
    md_loss_t lr;
    CHECK(md_model_forward_backward(mr, in, tg, B, L, 1, &lr) == 0, "%s: recompute step", label);
    float *gr = md_test_grads_to_host(mr);
    size_t bytes = (size_t)md_model_params(mr)->numel * sizeof *gr;
    CHECK(lr.loss_sum == lg->loss_sum, "%s: recompute %d: loss %.17g vs %.17g", label, recompute, lr.loss_sum,
          lg->loss_sum);
    if (memcmp(gr, gg, bytes)) {   /* name the tensors that differ, for the log */
        const md_params_t *reg = md_model_params(mr);
        for (int64_t i = 0; i < reg->n; i++) {
            const md_param_t *t = &reg->p[i];
            if (t->tied_to >= 0 || !memcmp(gr + t->offset, gg + t->offset, (size_t)t->numel * sizeof *gr)) continue;
            double dmax = 0, gmax = 0;
            for (int64_t k = t->offset; k < t->offset + t->numel; k++) {
                dmax = fmax(dmax, fabs((double)gr[k] - gg[k]));
                gmax = fmax(gmax, fabs((double)gg[k]));
            }
            printf("  %s: recompute %d differs in %s: max |diff| %.3g of max |grad| %.3g\n", label, recompute, t->name,
                   dmax, gmax);
        }
    }
    CHECK(!memcmp(gr, gg, bytes), "%s: recompute %d: the gradients differ", label, recompute);
    free(gr);
    md_model_free(mr);
}

static void run_config(const char *label, const md_config_t *cfg, int64_t B, int64_t L, uint64_t seed, int verbose)
{
    /* MD_GPU_TRAIN_ARCH=hyena (say) runs one family's configs alone */
    const char *only = getenv("MD_GPU_TRAIN_ARCH");
    if (only && strcmp(only, md_arch_name(cfg->arch))) return;
    const md_backend_t *cpu = md_backend_cpu();
    md_model_t *mc = md_model_new(cfg, cpu, MD_DTYPE_F32, B, L), *mg = md_model_new(cfg, gpu, MD_DTYPE_F32, B, L);
    CHECK(mc && mg, "%s: models", label);
    if (!mc || !mg) return;
    check_bf16_plan(label, cfg, mg, B, L);
    md_model_init_weights(mc, seed);
    md_model_init_weights(mg, seed);
    const md_params_t *reg = md_model_params(mc);
    int64_t n = reg->numel;
    float *pc = md_malloc((size_t)n * 4), *pg = md_malloc((size_t)n * 4);
    md_model_read_params(mc, pc);
    md_model_read_params(mg, pg);
    CHECK(!memcmp(pc, pg, (size_t)n * 4), "%s: the same initial weights on both backends", label);

    md_rng_t r;
    md_rng_seed(&r, seed ^ 0x77);
    uint8_t *in = md_malloc((size_t)(B * L)), *tg = md_malloc((size_t)(B * L));
    for (int64_t i = 0; i < B * L; i++) {
        in[i] = (uint8_t)(7 + md_rng_below(&r, 4));
        /* ~3% ignored targets (N) */
        tg[i] = md_rng_below(&r, 32) ? (uint8_t)(7 + md_rng_below(&r, 4)) : 11;
    }
    md_loss_t lc, lg;
    md_model_zero_grad(mc);
    md_model_zero_grad(mg);
    CHECK(md_model_forward_backward(mc, in, tg, B, L, 1, &lc) == 0, "%s: cpu step", label);
    CHECK(md_model_forward_backward(mg, in, tg, B, L, 1, &lg) == 0, "%s: gpu step", label);
    double le = fabs(lg.loss_sum - lc.loss_sum) / fabs(lc.loss_sum);
    CHECK(lc.n_targets == lg.n_targets, "%s: counted targets %lld vs %lld", label, (long long)lc.n_targets,
          (long long)lg.n_targets);
    CHECK(le <= LOSS_TOL, "%s: loss %.9g (cpu) vs %.9g (gpu): relative error %.3g", label, lc.loss_sum / lc.n_targets,
          lg.loss_sum / lg.n_targets, le);

    float *gc = md_test_grads_to_host(mc), *gg = md_test_grads_to_host(mg);
    double worst = 0, total = 0;
    const char *worst_name = "";
    for (int64_t i = 0; i < reg->n; i++)
        if (reg->p[i].tied_to < 0)
            for (int64_t k = reg->p[i].offset; k < reg->p[i].offset + reg->p[i].numel; k++) total += (double)gc[k] * gc[k];
    total = sqrt(total);
    for (int64_t i = 0; i < reg->n; i++) {
        const md_param_t *p = &reg->p[i];
        if (p->tied_to >= 0) continue;
        double num = 0, den = 0, gsq = 0;
        int nan = 0;
        for (int64_t k = p->offset; k < p->offset + p->numel; k++) {
            if (isnan(gg[k])) nan = 1;
            double e = (double)gg[k] - gc[k];
            num += e * e;
            den += (double)gc[k] * gc[k];
            gsq += (double)gg[k] * gg[k];
        }
        /* A gradient that is zero in exact arithmetic (q_proj and k_proj at
         * L = 1: the softmax over one key is constant) is rounding noise on
         * both sides, and the ratio of two noises means nothing: such a
         * tensor must be near zero on the GPU as well. */
        if (!nan && sqrt(den) < 1e-4 * total) {
            if (verbose) printf("  %-44s %10lld  grad ~0: cpu %.2g gpu %.2g of the total\n", p->name,
                                (long long)p->numel, sqrt(den) / total, sqrt(gsq) / total);
            CHECK(sqrt(gsq) <= 1e-3 * total, "%s: gradient of %s: %.3g of the total norm on the GPU, ~0 on the CPU",
                  label, p->name, sqrt(gsq) / total);
            continue;
        }
        double err = nan ? INFINITY : (den > 0 ? sqrt(num / den) : sqrt(num));
        if (verbose) printf("  %-44s %10lld  grad rel err %.3g\n", p->name, (long long)p->numel, err);
        CHECK(err <= GRAD_TOL, "%s: gradient of %s: relative error %.3g", label, p->name, err);
        if (err > worst) worst = err, worst_name = p->name;
    }

    if (cfg->arch != MD_ARCH_HYENA)
        for (int r = MD_RECOMPUTE_INPUTS; r <= MD_RECOMPUTE_KEEP_STATES; r++)
            check_recompute(label, cfg, B, L, pg, in, tg, &lg, gg, r);

    /* one AdamW step each, then the loss again (forward only) */
    void *m1 = cpu->alloc(cpu, (size_t)n * 4), *v1 = cpu->alloc(cpu, (size_t)n * 4);
    void *m2 = gpu->alloc(gpu, (size_t)n * 4), *v2 = gpu->alloc(gpu, (size_t)n * 4);
    cpu->memset0(cpu, m1, (size_t)n * 4), cpu->memset0(cpu, v1, (size_t)n * 4);
    gpu->memset0(gpu, m2, (size_t)n * 4), gpu->memset0(gpu, v2, (size_t)n * 4);
    adamw_step(mc, m1, v1, 1.0 / lc.n_targets);
    adamw_step(mg, m2, v2, 1.0 / lg.n_targets);
    md_loss_t lc2, lg2;
    CHECK(md_model_forward_backward(mc, in, tg, B, L, 0, &lc2) == 0, "%s: cpu forward", label);
    CHECK(md_model_forward_backward(mg, in, tg, B, L, 0, &lg2) == 0, "%s: gpu forward", label);
    double le2 = fabs(lg2.loss_sum - lc2.loss_sum) / fabs(lc2.loss_sum);
    /* AdamW's first step moves every weight by ~lr whatever the gradient's
     * size, so gradient rounding differences show up more here */
    CHECK(le2 <= STEP_TOL, "%s: loss after one AdamW step %.9g vs %.9g: relative error %.3g", label,
          lc2.loss_sum / lc2.n_targets, lg2.loss_sum / lg2.n_targets, le2);
    CHECK(lc2.loss_sum < lc.loss_sum, "%s: the step lowered the loss on its own batch", label);
    printf("%-8s %-9s B=%lld L=%lld: %lld params; loss/target cpu %.7f gpu %.7f (rel %.2g); worst grad rel err %.3g (%s); "
           "after AdamW: cpu %.7f gpu %.7f (rel %.2g)\n",
           label, gpu->name, (long long)B, (long long)L, (long long)n, lc.loss_sum / lc.n_targets, lg.loss_sum / lg.n_targets, le,
           worst, worst_name, lc2.loss_sum / lc2.n_targets, lg2.loss_sum / lg2.n_targets, le2);
    cpu->free(cpu, m1), cpu->free(cpu, v1), gpu->free(gpu, m2), gpu->free(gpu, v2);
    free(pc), free(pg), free(gc), free(gg), free(in), free(tg);
    md_model_free(mc);
    md_model_free(mg);
}

int main(void)
{
    md_test_need_gpu();
    /* every GPU model zeroes h_L .. logits once dead (model_internal.h): a
     * buffer still live there shows in the comparison with the CPU */
    setenv("MD_POISON_DEAD", "1", 1);
    if (!(gpu = md_backend_cuda(0))) return 1;
    const char *s = getenv("MD_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (MD_TEST_SEED to repeat)\n", (unsigned long long)seed);
    md_config_t tiny, small;
    md_config_init(&tiny, MD_ARCH_MAMBA, 32, 2);
    run_config("tiny", &tiny, 2, 301, seed, 1);
    run_config("tiny", &tiny, 3, 1, seed + 1, 0);
    if (md_config_preset(&small, MD_ARCH_MAMBA, "250K") < 0) return 1;
    run_config("250K", &small, 2, 1024, seed + 2, 0);
    /* Transformer++: two heads of 32, odd L over several attention tiles */
    md_config_t ttiny, tsmall;
    md_config_init(&ttiny, MD_ARCH_TRANSFORMER, 64, 2);
    ttiny.n_heads = 2;
    run_config("tfm-tiny", &ttiny, 2, 301, seed + 3, 1);
    run_config("tfm-tiny", &ttiny, 3, 1, seed + 4, 1);
    if (md_config_preset(&tsmall, MD_ARCH_TRANSFORMER, "214K") < 0) return 1;
    run_config("214K", &tsmall, 2, 1024, seed + 5, 0);
    /* Hyena: a tiny one (odd L below l_max, so the filter is a prefix of
     * the implicit filter's length), batch 3 of L = 1, and the 436K preset */
    md_config_t htiny, hsmall;
    md_config_init(&htiny, MD_ARCH_HYENA, 32, 2);
    htiny.l_max = 512;
    run_config("hy-tiny", &htiny, 2, 301, seed + 6, 1);
    run_config("hy-tiny", &htiny, 3, 1, seed + 7, 0);
    if (md_config_preset(&hsmall, MD_ARCH_HYENA, "436K") < 0) return 1;
    run_config("436K", &hsmall, 2, 1024, seed + 8, 0);
    /* bf16 matrix products: the same step within bf16 rounding */
    if (!(gpu = md_backend_cuda_ex(0, MD_PRECISION_BF16))) return 1;
    LOSS_TOL = 1e-2, GRAD_TOL = 5e-2, STEP_TOL = 1e-2;
    run_config("tiny", &tiny, 2, 301, seed, 1);
    run_config("tiny", &tiny, 3, 1, seed + 1, 0);
    run_config("250K", &small, 2, 1024, seed + 2, 1);
    run_config("tfm-tiny", &ttiny, 2, 301, seed + 3, 0);
    run_config("tfm-tiny", &ttiny, 3, 1, seed + 4, 0);
    run_config("214K", &tsmall, 2, 1024, seed + 5, 0);
    md_config_t thd16 = ttiny;   /* head dim 16: no tensor-core kernel */
    thd16.n_heads = 4;
    run_config("tfm-hd16", &thd16, 2, 301, seed + 9, 0);
    run_config("hy-tiny", &htiny, 2, 301, seed + 6, 0);
    run_config("436K", &hsmall, 2, 1024, seed + 8, 0);
    return md_test_done();
}
