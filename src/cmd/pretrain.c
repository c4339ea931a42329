/* mambadna pretrain: train a DNA language model on genome windows. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "cmd/cmd.h"
#include "dist/dist.h"
#include "train/lmopts.h"
#include "train/markov.h"
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"
#include "seq/genome.h"
#include "train/graphstep.h"
#include "train/lmdata.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "train/trainguard.h"
#include "util/cli.h"
#include "util/log.h"

enum {
    OPT_PRESET = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_D_MODEL, OPT_N_LAYER, OPT_TOKENS_PER_STEP, OPT_STEPS, OPT_LR,
    OPT_WARMUP, OPT_LR_MIN, OPT_WEIGHT_DECAY, OPT_CLIP, OPT_SEQ_WARMUP, OPT_SEQ_WARMUP_START, OPT_VAL_EVERY,
    OPT_VAL_WINDOWS, OPT_METRICS, OPT_SAVE_EVERY, OPT_RESUME, OPT_LOG_EVERY, OPT_MAX_N, OPT_REVCOMP,
    OPT_RECOMPUTE, OPT_KEEP_STATES, OPT_MARKOV, OPT_BETA2, OPT_STOP_AT, OPT_PRECISION, OPT_L_MAX, OPT_MAX_BAD_STEPS,
    OPT_CUDA_GRAPH, OPT_DIST_FIRST,
    OPT_HOLDOUT_FIRST = OPT_DIST_FIRST + MD_DIST_N_OPTS   /* lmopts.h numbers its own from here */
};

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna pretrain [options] -o MODEL.safetensors GENOME...\n\n"
            "Trains a DNA language model (next-base prediction) on windows of the genome(s):\n"
            "FASTA (plain, gzip, bgzip) or .2bit. N and PAD targets are left out of the loss.\n\n"
            "Model:\n"
            "  -m, --model STR          architecture: mamba, transformer (Transformer++) or hyena\n"
            "                           (HyenaDNA) [mamba]\n"
            "      --preset STR         mamba: 250K, 700K, 1.4M, 3.5M, 7M, 19M or 40M [1.4M];\n"
            "                           transformer: 214K, 554K, 1.3M, 3.1M, 6.4M, 18M or 39M [1.3M];\n"
            "                           hyena: 436K, 870K, 1.6M, 3.3M or 6.6M [436K]\n"
            "      --d-model INT        width (with --n-layer, instead of --preset)\n"
            "      --n-layer INT        number of blocks\n"
            "      --l-max INT          hyena: length of the implicit filter, >= L [L]\n"
            "      --recompute          keep only block inputs; recompute activations in the backward\n"
            "      --keep-scan-states   with --recompute (implied): also keep each Mamba block's scan\n"
            "                           states (E x N / 32 bytes a token and block on the GPU), so\n"
            "                           the backward reruns no scan: faster, same results\n"
            "      --precision STR      fp32, or bf16 (GPU only): bf16 matrix products and block\n"
            "                           activations; fp32 master weights, optimizer, scan state\n"
            "                           and loss [fp32]\n"
            "Optimisation:\n"
            "  -L INT                   sequence length [1024]\n"
            "  -B INT                   sequences per micro-batch [8]\n"
            "      --tokens-per-step INT  tokens per optimizer step; gradient accumulation fills it [B x L]\n"
            "      --steps INT          optimizer steps [1000]\n"
            "      --lr FLOAT           peak learning rate [2e-3]\n"
            "      --warmup FLOAT       linear warmup, as a fraction of --steps [0.1]\n"
            "      --lr-min FLOAT       cosine floor [0.1 x lr]\n"
            "      --weight-decay FLOAT AdamW decoupled weight decay (not on A_log, D, norms, biases,\n"
            "                           Hyena's implicit filter) [0.1]\n"
            "      --beta2 FLOAT        AdamW beta2 (beta1 0.9) [0.95]\n"
            "      --clip FLOAT         clip the global gradient norm; 0 = off [1.0]\n"
            "      --seq-warmup INT     sequence-length warmup: steps per stage, doubling from\n"
            "                           --seq-warmup-start up to L with the same tokens per step; 0 = off [0]\n"
            "      --seq-warmup-start INT  first stage's length [1024]\n"
            MD_CUDA_GRAPH_HELP
            "Data:\n"
            "      --max-n FLOAT        skip windows with more than this fraction of N [0.1]\n"
            "      --revcomp            reverse-complement half of the training windows\n"
            MD_LMOPTS_HOLDOUT_HELP
            "Validation and output:\n"
            "      --val-every INT      validate every INT steps (needs held-out data) [0 = never]\n"
            "      --val-windows INT    validation windows of L+1 bp [64]\n"
            "      --markov INT         order of the Markov baseline shown beside validation; -1 = none [2]\n"
            "      --metrics FILE.tsv   append metrics per log interval; an SVG plot is written beside it\n"
            "      --log-every INT      steps per log line / metrics row [10]\n"
            "  -o, --output FILE        checkpoint, e.g. M.safetensors (training state: M.state.safetensors)\n"
            "      --save-every INT     also save every INT steps [0 = at the end]\n"
            "      --resume FILE        continue the run saved in FILE exactly (-o defaults to FILE)\n"
            "      --stop-at INT        stop and save after step INT (the schedule still spans --steps)\n"
            "      --max-bad-steps INT  stop after INT steps in a row with a non-finite loss or gradient\n"
            "                           (each is skipped: no update) [5]\n"
            MD_DIST_HELP
            "Common:\n"
            "  -t, --threads INT        worker threads (0 = all cores) [0]\n"
            "  -x, --device STR         auto, cpu, cuda or cuda:N [auto]\n"
            "      --seed INT           weights, windows and augmentation [1]\n"
            "  -q, --quiet              only warnings and errors on stderr\n"
            "  -h, --help               this help\n"
            "SIGINT or SIGTERM saves a checkpoint after the current step and exits with 130 or 143;\n"
            "a second one stops at once (the last checkpoint stays whole).\n"
            "With several ranks -B and --tokens-per-step are the whole step's: each rank takes\n"
            "every n-th sequence of a micro-batch, so the run is the one-process run (to rounding).\n");
}

int cmd_pretrain(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    md_train_opts_t to;
    md_train_opts_init(&to);
    md_train_fixed_t *f = &to.f;
    md_lmopts_t lo;
    md_lmopts_init(&lo);
    const char *arch_name = "mamba", *preset = NULL, *resume = NULL;
    int64_t d_model = 0, n_layer = 0, l_max = 0, v;
    int recompute = 0, out_given = 0, model_given = 0;
    md_precision_t precision = MD_PRECISION_FP32;
    uint32_t given = 0;
    md_dist_opts_t dopt;
    md_dist_opts_init(&dopt);
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"model", required_argument, 0, 'm'},
        {"preset", required_argument, 0, OPT_PRESET},
        {"d-model", required_argument, 0, OPT_D_MODEL},
        {"n-layer", required_argument, 0, OPT_N_LAYER},
        {"l-max", required_argument, 0, OPT_L_MAX},
        {"tokens-per-step", required_argument, 0, OPT_TOKENS_PER_STEP},
        {"steps", required_argument, 0, OPT_STEPS},
        {"lr", required_argument, 0, OPT_LR},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"lr-min", required_argument, 0, OPT_LR_MIN},
        {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
        {"beta2", required_argument, 0, OPT_BETA2},
        {"clip", required_argument, 0, OPT_CLIP},
        {"seq-warmup", required_argument, 0, OPT_SEQ_WARMUP},
        {"seq-warmup-start", required_argument, 0, OPT_SEQ_WARMUP_START},
        {"val-every", required_argument, 0, OPT_VAL_EVERY},
        {"val-windows", required_argument, 0, OPT_VAL_WINDOWS},
        {"metrics", required_argument, 0, OPT_METRICS},
        {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"resume", required_argument, 0, OPT_RESUME},
        {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"max-n", required_argument, 0, OPT_MAX_N},
        {"revcomp", no_argument, 0, OPT_REVCOMP},
        {"recompute", no_argument, 0, OPT_RECOMPUTE},
        {"keep-scan-states", no_argument, 0, OPT_KEEP_STATES},
        {"markov", required_argument, 0, OPT_MARKOV},
        {"stop-at", required_argument, 0, OPT_STOP_AT},
        {"max-bad-steps", required_argument, 0, OPT_MAX_BAD_STEPS},
        {"precision", required_argument, 0, OPT_PRECISION},
        {"cuda-graph", required_argument, 0, OPT_CUDA_GRAPH},
        MD_LMOPTS_HOLDOUT_LONGOPTS(OPT_HOLDOUT_FIRST),
        MD_DIST_LONGOPTS(OPT_DIST_FIRST),
        {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "m:L:B:", longopts, NULL)) >= 0) {
        int r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'm': arch_name = optarg; model_given = 1; break;
        case OPT_PRESET: preset = optarg; model_given = 1; break;
        case OPT_D_MODEL:
            if (md_parse_i64("--d-model", optarg, 1, 65536, 0, &d_model) < 0) return 1;
            model_given = 1;
            break;
        case OPT_N_LAYER:
            if (md_parse_i64("--n-layer", optarg, 1, 1024, 0, &n_layer) < 0) return 1;
            model_given = 1;
            break;
        case OPT_L_MAX:
            if (md_parse_i64("--l-max", optarg, 1, INT64_C(1) << 30, 0, &l_max) < 0) return 1;
            break;
        case OPT_RECOMPUTE: recompute = md_recompute_with(recompute, MD_RECOMPUTE_INPUTS); break;
        case OPT_KEEP_STATES: recompute = md_recompute_with(recompute, MD_RECOMPUTE_KEEP_STATES); break;
        case OPT_PRECISION: if (md_precision_parse("--precision", optarg, &precision) < 0) return 1; break;
        case OPT_CUDA_GRAPH: {
            md_cuda_graph_t g = MD_CUDA_GRAPH_AUTO;
            if (md_cuda_graph_parse("--cuda-graph", optarg, &g) < 0) return 1;
            to.cuda_graph = g;
            break;
        }
        case 'L':
            if (md_parse_i64("-L", optarg, 2, 1 << 24, 1, &f->seq_len) < 0) return 1;
            given |= 1u << MD_TF_SEQ_LEN;
            break;
        case 'B':
            if (md_parse_i64("-B", optarg, 1, 1 << 20, 0, &f->batch) < 0) return 1;
            given |= 1u << MD_TF_BATCH;
            break;
        case OPT_TOKENS_PER_STEP:
            if (md_parse_i64("--tokens-per-step", optarg, 1, INT64_MAX / 4, 1, &f->tokens_per_step) < 0) return 1;
            given |= 1u << MD_TF_TOKENS_PER_STEP;
            break;
        case OPT_STEPS:
            if (md_parse_i64("--steps", optarg, 1, INT64_MAX / 4, 1, &f->steps) < 0) return 1;
            given |= 1u << MD_TF_STEPS;
            break;
        case OPT_LR:
            if (md_parse_double("--lr", optarg, 1e-12, 10, &f->lr) < 0) return 1;
            given |= 1u << MD_TF_LR;
            break;
        case OPT_WARMUP:
            if (md_parse_double("--warmup", optarg, 0, 1, &f->warmup) < 0) return 1;
            given |= 1u << MD_TF_WARMUP;
            break;
        case OPT_LR_MIN:
            if (md_parse_double("--lr-min", optarg, 0, 10, &f->lr_min) < 0) return 1;
            given |= 1u << MD_TF_LR_MIN;
            break;
        case OPT_WEIGHT_DECAY:
            if (md_parse_double("--weight-decay", optarg, 0, 10, &f->adamw.weight_decay) < 0) return 1;
            given |= 1u << MD_TF_WEIGHT_DECAY;
            break;
        case OPT_BETA2:
            if (md_parse_double("--beta2", optarg, 0, 0.999999, &f->adamw.beta2) < 0) return 1;
            given |= 1u << MD_TF_BETA2;
            break;
        case OPT_CLIP:
            if (md_parse_double("--clip", optarg, 0, 1e9, &f->clip) < 0) return 1;
            given |= 1u << MD_TF_CLIP;
            break;
        case OPT_SEQ_WARMUP:
            if (md_parse_i64("--seq-warmup", optarg, 0, INT64_MAX / 4, 1, &f->seq_warmup_steps) < 0) return 1;
            given |= 1u << MD_TF_SEQ_WARMUP_STEPS;
            break;
        case OPT_SEQ_WARMUP_START:
            if (md_parse_i64("--seq-warmup-start", optarg, 2, 1 << 24, 1, &f->seq_warmup_start) < 0) return 1;
            given |= 1u << MD_TF_SEQ_WARMUP_START;
            break;
        case OPT_VAL_EVERY:
            if (md_parse_i64("--val-every", optarg, 0, INT64_MAX / 4, 1, &to.val_every) < 0) return 1;
            break;
        case OPT_VAL_WINDOWS:
            if (md_parse_i64("--val-windows", optarg, 1, 1 << 24, 1, &to.val_windows) < 0) return 1;
            break;
        case OPT_METRICS: to.metrics_path = optarg; break;
        case OPT_SAVE_EVERY:
            if (md_parse_i64("--save-every", optarg, 0, INT64_MAX / 4, 1, &to.save_every) < 0) return 1;
            break;
        case OPT_RESUME: resume = optarg; break;
        case OPT_STOP_AT:
            if (md_parse_i64("--stop-at", optarg, 1, INT64_MAX / 4, 1, &to.stop_at) < 0) return 1;
            break;
        case OPT_MAX_BAD_STEPS:
            if (md_parse_i64("--max-bad-steps", optarg, 1, INT64_MAX / 4, 0, &to.max_bad_steps) < 0) return 1;
            break;
        case OPT_LOG_EVERY:
            if (md_parse_i64("--log-every", optarg, 1, INT64_MAX / 4, 1, &to.log_every) < 0) return 1;
            break;
        case OPT_MAX_N:
            if (md_parse_double("--max-n", optarg, 0, 1, &f->max_n_frac) < 0) return 1;
            given |= 1u << MD_TF_MAX_N;
            break;
        case OPT_REVCOMP: f->revcomp = 1; given |= 1u << MD_TF_REVCOMP; break;
        case OPT_MARKOV:
            if (md_parse_i64("--markov", optarg, -1, MD_MARKOV_MAX_ORDER, 0, &v) < 0) return 1;
            to.markov_order = (int)v;
            break;
        default:
            if (c >= OPT_DIST_FIRST && c < OPT_HOLDOUT_FIRST) {
                if (md_dist_opt(&dopt, c - OPT_DIST_FIRST, optarg) < 0) return 1;
                break;
            }
            r = md_lmopts_parse(&lo, c - OPT_HOLDOUT_FIRST, optarg);
            if (r < 0) return 1;
            if (r > 0) { given |= 1u << MD_TF_HOLDOUT; break; }
            r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("pretrain", c, argv[optind - 1]); return 1; }
            if (c == 'o') out_given = 1;
            if (c == MD_OPT_SEED) { f->seed = co.seed; given |= 1u << MD_TF_SEED; }
        }
    }
    if (optind >= argc) {
        md_error("no genome given; see 'mambadna pretrain -h'");
        return 1;
    }
    if (md_config_check_size_opts(preset, d_model, n_layer) < 0) return 1;
    if (md_lmopts_resolve(&lo, &f->holdout) < 0) return 1;
    to.out_path = out_given ? co.output : resume;
    if (!to.out_path) {
        md_error("no checkpoint to write: give -o MODEL.safetensors");
        return 1;
    }
    if (!strcmp(to.out_path, "-")) {
        md_error("option -o: a checkpoint cannot go to standard output");
        return 1;
    }
    md_cpu_set_threads(co.threads);
    if (md_dist_wants_launch(&dopt)) return md_dist_launch(&dopt, co.device, NULL, argc, argv);
    md_dist_t dist;
    if (md_dist_setup(&dopt, co.device, precision, &dist) < 0) return 1;
    const md_device_t dev = dist.dev;
    const md_backend_t *be = dist.be;
    const int ranks = md_comm_size(dist.comm);
    to.comm = dist.comm;

    /* The model config: the checkpoint's on --resume, else the options. */
    md_config_t cfg;
    char *keep = NULL;
    md_genome_t *g = NULL;
    md_lm_data_t *data = NULL;
    md_model_t *model = NULL;
    md_trainer_t *tr = NULL;
    int ret = 1;
    md_arch_t arch;
    if (md_arch_parse(arch_name, &arch) < 0) {
        md_error("option -m/--model: unknown architecture '%s' (mamba, hyena or transformer)", arch_name);
        goto out;
    }
    if (resume) {
        md_ckpt_t *ck = md_ckpt_open(resume);
        if (!ck) goto out;
        cfg = ck->cfg;
        md_ckpt_close(ck);
        if (model_given) {
            md_config_t want;
            if (preset) {
                if (md_config_preset(&want, arch, preset) < 0) goto out;
            } else {
                md_config_init(&want, arch, d_model ? d_model : cfg.d_model, n_layer ? n_layer : cfg.n_layer);
            }
            if (want.arch != cfg.arch || want.d_model != cfg.d_model || want.n_layer != cfg.n_layer) {
                md_error("the model options ask for a %s %lld x %lld model, but checkpoint '%s' is a %s %lld x %lld "
                         "one", md_arch_name(want.arch), (long long)want.d_model, (long long)want.n_layer, resume,
                         md_arch_name(cfg.arch), (long long)cfg.d_model, (long long)cfg.n_layer);
                goto out;
            }
        }
        md_train_fixed_t saved;
        md_train_progress_t prog;
        if (md_train_read_saved(resume, &saved, &prog, &keep) < 0) goto out;
        if (md_train_merge_saved(f, &saved, given, resume) < 0) goto out;
    } else {
        if (preset) {
            if (md_config_preset(&cfg, arch, preset) < 0) goto out;
        } else if (d_model) {
            md_config_init(&cfg, arch, d_model, n_layer);
        } else if (md_config_preset(&cfg, arch, md_config_default_preset(arch)) < 0) {
            goto out;
        }
        if (arch == MD_ARCH_HYENA) cfg.l_max = l_max ? l_max : f->seq_len;
        if (md_config_validate(&cfg, "model") < 0) goto out;
    }
    if (l_max && cfg.arch != MD_ARCH_HYENA) {
        md_error("option --l-max applies to hyena models only (this one is %s)", md_arch_name(cfg.arch));
        goto out;
    }
    if (resume && l_max && l_max != cfg.l_max) {
        md_error("option --l-max %lld differs from the filter length %lld of checkpoint '%s'", (long long)l_max,
                 (long long)cfg.l_max, resume);
        goto out;
    }
    if (f->seq_warmup_steps > 0 && f->seq_warmup_start >= f->seq_len) {
        md_error("option --seq-warmup-start %lld must be below -L %lld for a sequence-length warmup",
                 (long long)f->seq_warmup_start, (long long)f->seq_len);
        goto out;
    }
    if (f->tokens_per_step && f->tokens_per_step < f->batch * f->seq_len) {
        md_error("option --tokens-per-step %lld is less than one micro-batch (-B %lld x -L %lld = %lld)",
                 (long long)f->tokens_per_step, (long long)f->batch, (long long)f->seq_len,
                 (long long)(f->batch * f->seq_len));
        goto out;
    }
    if (f->lr_min >= 0 && f->lr_min > f->lr) {
        md_error("option --lr-min %g is above --lr %g", f->lr_min, f->lr);
        goto out;
    }
    if (to.val_every > 0 && f->holdout.kind == MD_HOLDOUT_NONE) {
        md_error("option --val-every needs held-out data: --val-fraction, --val-contigs or --bed with "
                 "--train-split/--val-split");
        goto out;
    }

    if (!(g = md_genome_open((const char *const *)argv + optind, argc - optind))) goto out;
    if (md_genome_load(g) < 0) goto out;
    if (!(data = md_lm_data_new(g, &f->holdout, f->seed, f->max_n_frac, f->revcomp))) goto out;
    md_model_opts_t mo = {.recompute = recompute};
    if (!(be = md_backend_for_arch(cfg.arch, be, co.device))) goto out;
    if (ranks > 1 && be->device != dev.kind) {
        md_error("the %s architecture has no kernels on %s, and ranks cannot change device", md_arch_name(cfg.arch),
                 dev.name);
        goto out;
    }
    /* Each rank holds its share of a micro-batch (rank 0's is the largest). */
    const int64_t share = md_dist_share(f->batch, 0, ranks);
    if (!(model = md_model_new_ex(&cfg, be, MD_DTYPE_F32, share, f->seq_len, &mo))) goto out;
    if (!(tr = md_trainer_new(model, data, &to))) goto out;
    if (resume) {
        if (md_trainer_resume(tr, resume) < 0) goto out;
    } else {
        md_model_init_weights(model, f->seed);
    }
    const md_params_t *reg = md_model_params(model);
    int64_t tps = f->tokens_per_step ? f->tokens_per_step : f->batch * f->seq_len;
    int64_t accum = md_accum_steps(tps, f->batch, f->seq_len);
    char hold[600];
    md_holdout_describe(&f->holdout, hold, sizeof hold);
    md_info("%s %lld x %lld: %lld parameters (%lld without the embedding); L %lld, %lld x %lld windows per step "
            "(%lld micro-batch%s), %lld steps, lr %g -> %g; %s; %s",
            md_arch_name(cfg.arch), (long long)cfg.d_model, (long long)cfg.n_layer, (long long)reg->numel,
            (long long)md_params_count_no_embed(reg), (long long)f->seq_len, (long long)(f->batch * accum),
            (long long)f->seq_len + 1, (long long)accum, accum == 1 ? "" : "es", (long long)f->steps, f->lr,
            f->lr_min >= 0 ? f->lr_min : 0.1 * f->lr, hold, dev.name);
    int run = md_trainer_run(tr, NULL, NULL);
    if (run < 0) goto out;
    ret = run == MD_TRAIN_INTERRUPTED ? md_train_interrupted_status() : 0;
out:
    md_trainer_free(tr);
    md_model_free(model);
    md_lm_data_free(data);
    md_genome_close(g);
    free(keep);
    md_dist_end(&dist);
    return ret;
}
