/* mambadna bench train: training throughput of a model preset on the
 * chosen device (the GPU under -x auto when there is one).
 *
 * One timed step is what pretrain does per optimizer step: zero the
 * gradients, forward + backward over every micro-batch of --tokens-per-step
 * (random A/C/G/T windows, drawn once), the global gradient norm, one
 * AdamW update, as train/graphstep.h runs it on one GPU (a CUDA graph
 * unless --cuda-graph says otherwise) and md_train_step elsewhere. On a
 * GPU each step is timed with CUDA events on the legacy default stream
 * (which waits for the backend's stream); on the CPU with the wall
 * clock. Medians after --warmup untimed steps. Peak GPU memory is what the
 * backend allocated (md_cuda_peak_bytes) and what the device reports in use
 * (cudaMemGetInfo: the CUDA context and cuBLAS's workspace included).
 *
 * With --gpus (or under mpirun) every rank times the same steps twice:
 * alone, and with the gradient exchange of data-parallel training (as
 * pretrain does it: buckets of --bucket-mb all-reduced during the last
 * micro-batch's backward, train/gradsync.h). -B
 * and --tokens-per-step are then each GPU's (weak scaling), the throughput
 * is all ranks' tokens over rank 0's median step, and the scaling
 * efficiency is the median step alone over the median step with the
 * all-reduce: tokens/s on N GPUs over N times tokens/s on one, the one-GPU
 * figure measured on the same GPUs in the same run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "cmd/bench_train.h"
#include "dist/dist.h"
#include "nn/config.h"
#include "train/gradsync.h"
#include "nn/model.h"
#include "nn/params.h"
#include "train/adamw.h"
#include "train/graphstep.h"
#include "train/schedule.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/op_timer.h"
#endif

enum { OPT_PRESET = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_TPS, OPT_STEPS, OPT_WARMUP, OPT_RECOMPUTE, OPT_KEEP_STATES,
       OPT_PRECISION, OPT_D_MODEL, OPT_N_LAYER, OPT_CUDA_GRAPH, OPT_DIST_FIRST };

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna bench train [options]\n\n"
            "Times optimizer steps of a model (forward + backward over every\n"
            "micro-batch, gradient norm, AdamW) on random windows and prints tokens/s\n"
            "(median) and peak memory.\n\n"
            "Options:\n"
            "  -m, --model STR           mamba, transformer or hyena [mamba]\n"
            "      --preset STR          a preset of that model (see 'mambadna info -h')\n"
            "                            [1.4M for mamba, 1.3M for transformer, 436K for hyena]\n"
            "      --d-model INT         a custom size instead of a preset: the width,\n"
            "      --n-layer INT         and the number of blocks\n"
            "  -L, --seq-len INT         sequence length [1024]\n"
            "  -B, --batch INT           sequences per micro-batch [8]\n"
            "      --tokens-per-step INT tokens per optimizer step, a multiple of B x L [B x L]\n"
            "      --steps INT           timed steps [10]\n"
            "      --warmup INT          untimed steps first [2]\n"
            "      --recompute           recompute each block's activations in the backward\n"
            "      --keep-scan-states    with --recompute (implied): keep each Mamba block's scan\n"
            "                            states, so the backward reruns no scan\n"
            "      --precision STR       fp32, or bf16 matrix products and block activations (GPU\n"
            "                            only) [fp32]\n"
            "      --cuda-graph STR      the step as a CUDA graph (one GPU): auto, on or off [auto]\n"
            "      --gpus LIST           also time data-parallel steps on these GPUs (one process\n"
            "                            each; -B and --tokens-per-step per GPU): tokens/s of all\n"
            "                            and the scaling efficiency against one GPU\n"
            "      --bucket-mb MB        the gradients' all-reduce in buckets of this size during\n"
            "                            the backward; 0: all at once after it [25]\n"
            MD_COMMON_HELP);
}

/* The benchmark's windows: micro-batch a's B windows of L + 1 bases. */
typedef struct { const uint8_t *tok; int64_t B, L; } bench_tokens_t;

static void bench_window_rows(const bench_tokens_t *bt, int64_t a, uint8_t *in, uint8_t *tg)
{
    for (int64_t b = 0; b < bt->B; b++) {
        const uint8_t *w = bt->tok + (size_t)((a * bt->B + b) * (bt->L + 1));
        memcpy(in + b * bt->L, w, (size_t)bt->L);
        memcpy(tg + b * bt->L, w + 1, (size_t)bt->L);
    }
}

static int bench_tokens(void *ud, int64_t micro, uint8_t *in, uint8_t *tg)
{
    bench_window_rows(ud, micro, in, tg);
    return 0;
}

int md_bench_train_measure(const md_train_bench_spec_t *spec, md_train_bench_result_t *res)
{
    const md_config_t *cfg = spec->cfg;
    const int64_t B = spec->batch, L = spec->len, tps = spec->tokens_per_step, steps = spec->steps;
    const int64_t warmup = spec->warmup;
    memset(res, 0, sizeof *res);
    md_device_t dev;
    const md_backend_t *be;
    if (spec->dist) {
        dev = spec->dist->dev;
        be = spec->dist->be;
    } else {
        if (md_device_resolve(spec->device, &dev) < 0) return -1;
        if (!(be = md_backend_for_device(&dev, spec->precision))) return -1;
    }
    md_comm_t *comm = spec->dist ? spec->dist->comm : NULL;
    const int phases = comm && strcmp(md_comm_name(comm), "self") ? 2 : 1;   /* alone, then with the all-reduce */
    md_info("device: %s", dev.name);
    int64_t accum = md_accum_steps(tps, B, L);
    md_model_opts_t mo = {.recompute = spec->recompute};
    if (!(be = md_backend_for_arch(cfg->arch, be, spec->device))) return -1;
    md_model_t *m = md_model_new_ex(cfg, be, MD_DTYPE_F32, B, L, &mo);
    if (!m) return -1;
    const md_params_t *reg = md_model_params(m);
    md_adamw_t opt;
    md_adamw_opts_t ao;
    md_adamw_opts_default(&ao);
    if (md_adamw_init(&opt, be, MD_DTYPE_F32, reg->numel, reg->n_decay, &ao) < 0) {
        md_model_free(m);
        return -1;
    }
    md_model_init_weights(m, spec->seed);
    md_rng_t r;
    md_rng_seed(&r, spec->seed);
    size_t nt = (size_t)(accum * B * (L + 1));
    uint8_t *tok = md_malloc(nt);
    for (size_t i = 0; i < nt; i++) tok[i] = (uint8_t)(7 + md_rng_below(&r, 4));
    uint8_t *in = md_malloc((size_t)(B * L)), *tg = md_malloc((size_t)(B * L));
    md_tensor_t pbuf = md_model_param_buffer(m), gbuf = md_model_grad_buffer(m);
    double *ms = md_malloc((size_t)steps * sizeof *ms), loss = 0;
    md_grad_sync_t *sync = phases == 2 ? md_grad_sync_new(m, comm) : NULL;
    md_graph_step_t *gs = NULL;
    int ret = -1;
#if MD_HAVE_CUDA
    const int is_gpu = be->device == MD_DEVICE_CUDA;
    cudaEvent_t ev0 = NULL, ev1 = NULL;
    if (is_gpu && (cudaEventCreate(&ev0) != cudaSuccess || cudaEventCreate(&ev1) != cudaSuccess)) {
        md_error("bench train: cannot create CUDA events");
        goto out;
    }
    if (is_gpu) md_cuda_reset_peak(be);
#endif
    md_step_kind_t kind;
    if (md_step_kind_choose(spec->cuda_graph, m, comm ? md_comm_size(comm) : 1, NULL, &kind) < 0) goto out;
    if (kind != MD_STEP_HOST && !(gs = md_graph_step_new(m, kind))) goto out;
    md_progress_t pg;
    md_progress_init(&pg, 0);
    pg.active = 0;
    md_step_guard_t guard = {INT64_MAX, 0, 0};   /* random bases: every step is finite */
    bench_tokens_t bt = {tok, B, L};
    for (int phase = 0; phase < phases; phase++) {
        if (phase == 1) res->step_ms_median_alone = md_bench_median(ms, (int)steps);
        for (int64_t s = 0; s < warmup + steps; s++) {
            double t0 = md_realtime();
#if MD_HAVE_CUDA
            /* MD_CUDA_OP_TIMES: timed steps only */
            if (is_gpu && s == warmup && md_op_timer_on()) md_op_timer_reset();
            if (is_gpu) cudaEventRecord(ev0, 0);
#endif
            if (gs) {
                md_step_result_t sr;
                if (md_graph_step_run(gs, &opt, B, L, accum, bench_tokens, &bt, 1e-3, 1.0, s, &pg, &guard, &sr) < 0)
                    goto out;
                loss = sr.loss;
            } else {
                md_model_zero_grad(m);
                md_loss_t tot = {0, 0};
                for (int64_t a = 0; a < accum; a++) {
                    if (phase == 1 && a == accum - 1) md_grad_sync_arm(sync);
                    bench_window_rows(&bt, a, in, tg);
                    md_loss_t l;
                    if (md_model_forward_backward(m, in, tg, B, L, 1, &l) < 0) goto out;
                    tot.loss_sum += l.loss_sum;
                    tot.n_targets += l.n_targets;
                }
                if (phase == 1) {   /* as md_train_step: the ranks' sums, then the global norm */
                    double sums[2] = {tot.loss_sum, (double)tot.n_targets};
                    if (md_grad_sync_finish(sync) < 0 || md_comm_allreduce_host(comm, sums, 2) < 0) goto out;
                    tot.loss_sum = sums[0];
                    tot.n_targets = llround(sums[1]);
                }
                double gsc = 1.0 / (double)tot.n_targets;
                double gnorm = md_flat_norm(be, gbuf.data, MD_DTYPE_F32, reg->numel) * gsc;
                md_adamw_step(&opt, pbuf.data, gbuf.data, 1e-3, gsc * md_clip_scale(gnorm, 1.0));
                loss = tot.loss_sum / tot.n_targets;
            }
            double el;
#if MD_HAVE_CUDA
            if (is_gpu) {
                float f = 0;
                cudaEventRecord(ev1, 0);
                cudaEventSynchronize(ev1);
                cudaEventElapsedTime(&f, ev0, ev1);
                el = f;
            } else
#endif
            {
                be->sync(be);
                el = 1e3 * (md_realtime() - t0);
            }
            if (s >= warmup) ms[s - warmup] = el;
        }
#if MD_HAVE_CUDA
        if (is_gpu && md_op_timer_on()) md_op_timer_stop();   /* the timed steps' table, without the teardown */
#endif
    }
    res->step_ms_median = md_bench_median(ms, (int)steps);
    res->ranks = comm ? md_comm_size(comm) : 1;
    res->params = reg->numel;
    snprintf(res->backend, sizeof res->backend, "%s", be->name);
    snprintf(res->device_name, sizeof res->device_name, "%s", dev.name);
    res->step_ms_min = ms[0];
    res->tokens_per_s = tps / (res->step_ms_median / 1e3);
    res->last_loss = loss;
#if MD_HAVE_CUDA
    if (is_gpu) {
        size_t fr = 0, total = 0;
        cudaMemGetInfo(&fr, &total);
        res->peak_alloc_gib = md_cuda_peak_bytes(be) / 1073741824.0;
        res->device_used_gib = (total - fr) / 1073741824.0;
    }
#endif
    ret = 0;
out:
#if MD_HAVE_CUDA
    if (ev0) cudaEventDestroy(ev0);
    if (ev1) cudaEventDestroy(ev1);
#endif
    md_grad_sync_free(sync);
    md_graph_step_free(gs);
    free(ms), free(tok), free(in), free(tg);
    md_adamw_free(&opt);
    md_model_free(m);
    return ret;
}

int md_bench_train_cmd(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"model", required_argument, 0, 'm'},
                                             {"preset", required_argument, 0, OPT_PRESET},
                                             {"seq-len", required_argument, 0, 'L'},
                                             {"batch", required_argument, 0, 'B'},
                                             {"tokens-per-step", required_argument, 0, OPT_TPS},
                                             {"steps", required_argument, 0, OPT_STEPS},
                                             {"warmup", required_argument, 0, OPT_WARMUP},
                                             {"recompute", no_argument, 0, OPT_RECOMPUTE},
                                             {"keep-scan-states", no_argument, 0, OPT_KEEP_STATES},
                                             {"precision", required_argument, 0, OPT_PRECISION},
                                             {"d-model", required_argument, 0, OPT_D_MODEL},
                                             {"n-layer", required_argument, 0, OPT_N_LAYER},
                                             {"cuda-graph", required_argument, 0, OPT_CUDA_GRAPH},
                                             MD_DIST_LONGOPTS(OPT_DIST_FIRST),
                                             {0, 0, 0, 0}};
    const char *preset = NULL, *arch_name = "mamba";
    int64_t L = 1024, B = 8, tps = 0, steps = 10, warmup = 2, d_model = 0, n_layer = 0;
    int recompute = 0, c;
    md_cuda_graph_t cuda_graph = MD_CUDA_GRAPH_AUTO;
    md_precision_t precision = MD_PRECISION_FP32;
    md_dist_opts_t dopt;
    md_dist_opts_init(&dopt);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "m:L:B:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'm': arch_name = optarg; break;
        case OPT_PRESET: preset = optarg; break;
        case 'L': if (md_parse_i64("-L/--seq-len", optarg, 1, (int64_t)1 << 24, 0, &L) < 0) return 1; break;
        case 'B': if (md_parse_i64("-B/--batch", optarg, 1, 1 << 20, 0, &B) < 0) return 1; break;
        case OPT_TPS: if (md_parse_i64("--tokens-per-step", optarg, 1, (int64_t)1 << 40, 0, &tps) < 0) return 1; break;
        case OPT_STEPS: if (md_parse_i64("--steps", optarg, 1, 100000, 0, &steps) < 0) return 1; break;
        case OPT_WARMUP: if (md_parse_i64("--warmup", optarg, 0, 100000, 0, &warmup) < 0) return 1; break;
        case OPT_RECOMPUTE: recompute = md_recompute_with(recompute, MD_RECOMPUTE_INPUTS); break;
        case OPT_KEEP_STATES: recompute = md_recompute_with(recompute, MD_RECOMPUTE_KEEP_STATES); break;
        case OPT_PRECISION: if (md_precision_parse("--precision", optarg, &precision) < 0) return 1; break;
        case OPT_CUDA_GRAPH: if (md_cuda_graph_parse("--cuda-graph", optarg, &cuda_graph) < 0) return 1; break;
        case OPT_D_MODEL: if (md_parse_i64("--d-model", optarg, 1, 65536, 0, &d_model) < 0) return 1; break;
        case OPT_N_LAYER: if (md_parse_i64("--n-layer", optarg, 1, 4096, 0, &n_layer) < 0) return 1; break;
        default: {
            int r = c >= OPT_DIST_FIRST ? md_dist_opt(&dopt, c - OPT_DIST_FIRST, optarg) : 0;
            if (r < 0) return 1;
            if (r > 0) break;
            r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) {
                md_report_bad_option("bench train", c, argv[optind - 1]);
                return 1;
            }
        }
        }
    }
    if (optind < argc) {
        md_error("bench train takes no arguments ('%s')", argv[optind]);
        return 1;
    }
    if (!tps) tps = B * L;
    if (tps % (B * L)) {
        md_error("option --tokens-per-step %lld is not a multiple of -B x -L = %lld", (long long)tps, (long long)(B * L));
        return 1;
    }
    md_arch_t arch;
    if (md_arch_parse(arch_name, &arch) < 0) {
        md_error("option -m/--model: unknown architecture '%s' (mamba, transformer or hyena)", arch_name);
        return 1;
    }
    if (md_config_check_size_opts(preset, d_model, n_layer) < 0) return 1;
    md_config_t cfg;
    if (d_model)
        md_config_init(&cfg, arch, d_model, n_layer);
    else if (md_config_preset(&cfg, arch, preset ? preset : md_config_default_preset(arch)) < 0)
        return 1;
    if (arch == MD_ARCH_HYENA) cfg.l_max = L;   /* the filter spans the benchmarked length */
    if (md_config_validate(&cfg, "model") < 0) return 1;
    char size_name[48];   /* the preset, or d_model x n_layer for a custom size */
    if (cfg.preset[0])
        snprintf(size_name, sizeof size_name, "%s", cfg.preset);
    else
        snprintf(size_name, sizeof size_name, "%lldx%lld", (long long)cfg.d_model, (long long)cfg.n_layer);
    md_cpu_set_threads(co.threads);
    if (md_dist_wants_launch(&dopt)) return md_dist_launch(&dopt, co.device, "bench", argc, argv);
    if (dopt.zero1) {
        md_error("option --zero1: bench train times the bucketed all-reduce; ZeRO-1 is not benchmarked");
        return 1;
    }
    md_dist_t dist;
    if (md_dist_setup(&dopt, co.device, precision, &dist) < 0) return 1;
    md_train_bench_spec_t spec = {.cfg = &cfg, .device = co.device, .precision = precision, .batch = B, .len = L,
                                  .tokens_per_step = tps, .steps = steps, .warmup = warmup,
                                  .recompute = recompute, .cuda_graph = cuda_graph, .seed = co.seed,
                                  .dist = &dist};
    md_train_bench_result_t r;
    int ret = md_bench_train_measure(&spec, &r);
    const int lead = md_comm_rank(dist.comm) == 0;
    md_dist_end(&dist);
    if (ret < 0) return 1;
    if (r.step_ms_median_alone > 0) {
        const double all = (double)r.ranks * tps / (r.step_ms_median / 1e3), one = tps / (r.step_ms_median_alone / 1e3);
        if (lead) {
            printf("preset\tparams\tdevice\tranks\tB\tL\ttokens_per_step_per_rank\tstep_ms_median\t"
                   "step_ms_median_alone\ttokens_per_s\ttokens_per_s_one\tscaling_efficiency\n");
            printf("%s\t%lld\t%s\t%d\t%lld\t%lld\t%lld\t%.2f\t%.2f\t%.0f\t%.0f\t%.4f\n", size_name,
                   (long long)r.params, r.backend, r.ranks, (long long)B, (long long)L, (long long)tps,
                   r.step_ms_median, r.step_ms_median_alone, all, one, r.step_ms_median_alone / r.step_ms_median);
        }
        md_info("%s on %d ranks: %.0f tokens/s, %.1f%% of %d x one rank's %.0f (median step %.2f ms, alone %.2f ms)",
                size_name, r.ranks, all, 100 * r.step_ms_median_alone / r.step_ms_median, r.ranks, one,
                r.step_ms_median, r.step_ms_median_alone);
        return 0;
    }
    printf("preset\tparams\tdevice\tB\tL\ttokens_per_step\tstep_ms_median\tstep_ms_min\ttokens_per_s\tpeak_alloc_GiB\t"
           "device_used_GiB\tlast_loss\n");
    printf("%s\t%lld\t%s\t%lld\t%lld\t%lld\t%.2f\t%.2f\t%.0f\t%.3f\t%.3f\t%.4f\n", size_name, (long long)r.params,
           r.backend, (long long)B, (long long)L, (long long)tps, r.step_ms_median, r.step_ms_min, r.tokens_per_s,
           r.peak_alloc_gib, r.device_used_gib, r.last_loss);
    md_info("%s on %s: %.0f tokens/s (median step %.2f ms over %lld steps, %lld x %lld tokens x %lld micro-batches)",
            size_name, r.device_name, r.tokens_per_s, r.step_ms_median, (long long)steps, (long long)B, (long long)L,
            (long long)md_accum_steps(tps, B, L));
    return 0;
}
