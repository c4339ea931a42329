/* mambadna finetune: a species classifier from a pretrained model (or from
 * scratch), on labelled genomes. The protocol is train/clstrain.h's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "cmd/cmd.h"
#include "dist/dist.h"
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"
#include "train/clstrain.h"
#include "train/graphstep.h"
#include "train/species.h"
#include "train/trainer.h"
#include "train/trainguard.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

enum {
    OPT_FROM_SCRATCH = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_PRESET, OPT_D_MODEL, OPT_N_LAYER, OPT_MICRO_BATCH,
    OPT_EPOCHS, OPT_STEPS_PER_EPOCH, OPT_LR, OPT_LR_MIN, OPT_WARMUP, OPT_WEIGHT_DECAY, OPT_CLIP, OPT_POOLING,
    OPT_REVCOMP, OPT_MAX_N, OPT_VAL_CONTIGS, OPT_TEST_CONTIGS, OPT_VAL_FRACTION, OPT_TEST_FRACTION, OPT_VAL_WINDOWS,
    OPT_TEST_WINDOWS, OPT_SPECIES_TSV, OPT_SEQ_WARMUP_START, OPT_RECOMPUTE, OPT_KEEP_STATES, OPT_LOG_EVERY, OPT_REPORT,
    OPT_MAX_BAD_STEPS, OPT_RESUME, OPT_STOP_AT, OPT_PRECISION, OPT_CUDA_GRAPH, OPT_DIST_FIRST
};

/* Default peak learning rates: the Mamba paper's for Mamba (1e-4) and
 * HyenaDNA's for Hyena (4e-5); Transformer++ has no published value for
 * this task and takes Mamba's (a choice of ours, not a tuned value). */
static double default_lr(md_arch_t a) { return a == MD_ARCH_HYENA ? 4e-5 : 1e-4; }

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna finetune -i PRETRAINED.safetensors [options] -o OUT.safetensors LABEL=GENOME[,GENOME...]...\n"
            "       mambadna finetune --from-scratch [-m ARCH] [--preset STR] [options] -o OUT.safetensors LABEL=GENOME...\n\n"
            "Fine-tunes a classifier that tells which species (label) a DNA window of L bp comes from.\n"
            "Each training example takes a species uniformly, a contig by length, then a window; contigs or\n"
            "contig ends are held out per species for validation and test. Reports go beside OUT:\n"
            "OUT.epochs.tsv/.svg (loss and accuracy per epoch), OUT.val-confusion.tsv/.svg and\n"
            "OUT.test-confusion.tsv/.svg (OUT without .safetensors).\n\n"
            "Species:\n"
            "  LABEL=GENOME,...          a species and its genome file(s) (FASTA, gzip, bgzip, .2bit)\n"
            "      --species-tsv FILE    more species, one 'label<TAB>genome path' per line\n"
            "Model:\n"
            "  -i FILE                   pretrained checkpoint (its backbone; a fresh head)\n"
            "      --from-scratch        random weights instead (with -m/--preset or --d-model/--n-layer)\n"
            "  -m, --model STR           mamba or transformer, with --from-scratch [mamba]\n"
            "      --preset STR          a preset of the family, with --from-scratch [1.4M / 1.3M]\n"
            "      --d-model INT, --n-layer INT   a custom size, with --from-scratch\n"
            "      --pooling STR         last (the last position's state) or mean [last]\n"
            "      --recompute           recompute activations in the backward (long L)\n"
            "      --keep-scan-states    with --recompute (implied): also keep each Mamba block's\n"
            "                            scan states, so the backward reruns no scan (faster, more\n"
            "                            memory, the same results)\n"
            "      --precision STR       fp32, or bf16 (GPU only): bf16 matrix products and block\n"
            "                            activations; fp32 master weights, optimizer, scan state,\n"
            "                            head and loss [fp32]\n"
            "      --cuda-graph STR      auto, on or off [auto]: finetune's step is never a CUDA graph\n"
            "                            (its head's softmax is on the host); on is an error\n"
            "Training:\n"
            "  -L INT                    window length [1024]\n"
            "  -B INT                    examples per optimizer step [64]\n"
            "      --micro-batch INT     examples per forward/backward; gradients are summed [B]\n"
            "      --epochs INT          epochs at L [10]\n"
            "      --steps-per-epoch INT steps per epoch [1024]\n"
            "      --seq-warmup-start INT  for L above it, one extra epoch per doubling from it [16384]\n"
            "      --lr FLOAT            peak learning rate [mamba, transformer 1e-4; hyena 4e-5]\n"
            "      --lr-min FLOAT        cosine floor [1e-6]\n"
            "      --warmup FLOAT        linear warmup, as a fraction of all steps [0.1]\n"
            "      --weight-decay FLOAT  AdamW weight decay [0.1]\n"
            "      --clip FLOAT          clip the global gradient norm; 0 = off [1.0]\n"
            "      --revcomp             reverse-complement half of the training windows\n"
            "      --max-n FLOAT         skip windows with more than this fraction of N [0.1]\n"
            "Held-out data (per species; contigs or fractions):\n"
            "      --val-contigs STR     validation contigs, comma-separated: NAME for every species,\n"
            "                            LABEL:NAME for one\n"
            "      --test-contigs STR    test contigs, likewise\n"
            "      --val-fraction FLOAT  the end of every contig for validation [0.05 without contigs]\n"
            "      --test-fraction FLOAT the part after it for the test [0.05 without contigs]\n"
            "      --val-windows INT     validation windows per species [64]\n"
            "      --test-windows INT    test windows per species [256]\n"
            "Output:\n"
            "  -o FILE                   the classifier checkpoint (.safetensors)\n"
            "      --report PREFIX       report files' prefix [OUT without .safetensors]\n"
            "      --resume FILE         continue the run that saved FILE (give its options again): the same\n"
            "                            weights and reports as a run never stopped\n"
            "      --stop-at INT         stop and save after step INT, before the test (the schedule still\n"
            "                            spans every epoch)\n"
            "      --log-every INT       steps per log line when stderr is not a terminal [100]\n"
            "      --max-bad-steps INT   stop after INT steps in a row with a non-finite loss or gradient\n"
            "                            (each is skipped: no update) [5]\n"
            MD_DIST_HELP
            "  (-B stays the step's examples, --micro-batch each rank's [B / ranks])\n"
            "Common:\n"
            "  -t, --threads INT         worker threads (0 = all cores) [0]\n"
            "  -x, --device STR          auto, cpu, cuda or cuda:N [auto]\n"
            "      --seed INT            head initialisation, examples, augmentation [1]\n"
            "  -q, --quiet               only warnings and errors on stderr\n"
            "  -h, --help                this help\n"
            "Every save writes the optimizer state beside OUT (OUT.state.safetensors) for --resume.\n"
            "SIGINT or SIGTERM saves the checkpoint after the current step and exits with 130 or 143;\n"
            "a second one stops at once (the last checkpoint stays whole).\n");
}

typedef struct {
    const char *input, *arch_name, *preset, *species_tsv, *pooling;
    const char *val_contigs, *test_contigs, *report, *resume;
    double val_fraction, test_fraction, max_n;
    int from_scratch, fraction_given, revcomp, recompute;
    int64_t d_model, n_layer, micro;
    md_precision_t precision;
} ft_args_t;

/* The model config: the pretrained checkpoint's backbone, or the options'. */
static int resolve_config(const ft_args_t *a, int model_given, md_config_t *cfg)
{
    if (a->from_scratch) {
        md_arch_t arch;
        if (md_arch_parse(a->arch_name, &arch) < 0) {
            md_error("option -m/--model: unknown architecture '%s' (mamba, hyena or transformer)", a->arch_name);
            return -1;
        }
        if (a->preset) {
            if (md_config_preset(cfg, arch, a->preset) < 0) return -1;
        } else if (a->d_model) {
            md_config_init(cfg, arch, a->d_model, a->n_layer);
        } else if (md_config_preset(cfg, arch, arch == MD_ARCH_TRANSFORMER ? "1.3M" : "1.4M") < 0) {
            return -1;
        }
        return 0;
    }
    if (model_given) {
        md_error("options -m/--preset/--d-model/--n-layer go with --from-scratch; -i gives the model");
        return -1;
    }
    md_ckpt_t *ck = md_ckpt_open(a->input);
    if (!ck) return -1;
    *cfg = ck->cfg;
    md_ckpt_close(ck);
    return 0;
}

static char *default_prefix(const char *out)
{
    static const char ext[] = ".safetensors";
    size_t n = strlen(out), e = sizeof ext - 1;
    char *p = md_strdup(out);
    if (n > e && !strcmp(p + n - e, ext)) p[n - e] = 0;
    return p;
}

int cmd_finetune(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    ft_args_t a;
    memset(&a, 0, sizeof a);
    a.arch_name = "mamba";
    a.max_n = 0.1;
    md_cls_train_opts_t o;
    memset(&o, 0, sizeof o);
    o.seq_len = 1024, o.batch = 64, o.epochs = 10, o.steps_per_epoch = 1024, o.seq_warmup_start = 16384;
    o.lr = -1, o.lr_min = 1e-6, o.warmup = 0.1, o.clip = 1.0, o.val_windows = 64, o.test_windows = 256;
    o.log_every = 100, o.seed = 1, o.max_bad_steps = MD_MAX_BAD_STEPS_DEFAULT;
    md_adamw_opts_default(&o.adamw);
    md_dist_opts_t dopt;
    md_dist_opts_init(&dopt);
    md_species_spec_t spec;
    memset(&spec, 0, sizeof spec);
    int model_given = 0, val_frac_given = 0, test_frac_given = 0, out_given = 0;
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"model", required_argument, 0, 'm'},
        {"from-scratch", no_argument, 0, OPT_FROM_SCRATCH},
        {"preset", required_argument, 0, OPT_PRESET},
        {"d-model", required_argument, 0, OPT_D_MODEL},
        {"n-layer", required_argument, 0, OPT_N_LAYER},
        {"micro-batch", required_argument, 0, OPT_MICRO_BATCH},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"steps-per-epoch", required_argument, 0, OPT_STEPS_PER_EPOCH},
        {"lr", required_argument, 0, OPT_LR},
        {"lr-min", required_argument, 0, OPT_LR_MIN},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
        {"clip", required_argument, 0, OPT_CLIP},
        {"pooling", required_argument, 0, OPT_POOLING},
        {"revcomp", no_argument, 0, OPT_REVCOMP},
        {"max-n", required_argument, 0, OPT_MAX_N},
        {"val-contigs", required_argument, 0, OPT_VAL_CONTIGS},
        {"test-contigs", required_argument, 0, OPT_TEST_CONTIGS},
        {"val-fraction", required_argument, 0, OPT_VAL_FRACTION},
        {"test-fraction", required_argument, 0, OPT_TEST_FRACTION},
        {"val-windows", required_argument, 0, OPT_VAL_WINDOWS},
        {"test-windows", required_argument, 0, OPT_TEST_WINDOWS},
        {"species-tsv", required_argument, 0, OPT_SPECIES_TSV},
        {"seq-warmup-start", required_argument, 0, OPT_SEQ_WARMUP_START},
        {"recompute", no_argument, 0, OPT_RECOMPUTE},
        {"keep-scan-states", no_argument, 0, OPT_KEEP_STATES},
        {"precision", required_argument, 0, OPT_PRECISION},
        {"cuda-graph", required_argument, 0, OPT_CUDA_GRAPH},
        {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"max-bad-steps", required_argument, 0, OPT_MAX_BAD_STEPS},
        {"report", required_argument, 0, OPT_REPORT},
        {"resume", required_argument, 0, OPT_RESUME},
        {"stop-at", required_argument, 0, OPT_STOP_AT},
        MD_DIST_LONGOPTS(OPT_DIST_FIRST),
        {0, 0, 0, 0}};
    int c, ret = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "i:m:L:B:", longopts, NULL)) >= 0) {
        int r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'i': a.input = optarg; break;
        case 'm': a.arch_name = optarg; model_given = 1; break;
        case OPT_FROM_SCRATCH: a.from_scratch = 1; break;
        case OPT_PRESET: a.preset = optarg; model_given = 1; break;
        case OPT_D_MODEL: r = md_parse_i64("--d-model", optarg, 1, 65536, 0, &a.d_model); model_given = 1; break;
        case OPT_N_LAYER: r = md_parse_i64("--n-layer", optarg, 1, 1024, 0, &a.n_layer); model_given = 1; break;
        case 'L': r = md_parse_i64("-L", optarg, 1, 1 << 24, 1, &o.seq_len); break;
        case 'B': r = md_parse_i64("-B", optarg, 1, 1 << 20, 0, &o.batch); break;
        case OPT_MICRO_BATCH: r = md_parse_i64("--micro-batch", optarg, 1, 1 << 20, 0, &a.micro); break;
        case OPT_EPOCHS: r = md_parse_i64("--epochs", optarg, 1, 1 << 20, 0, &o.epochs); break;
        case OPT_STEPS_PER_EPOCH: r = md_parse_i64("--steps-per-epoch", optarg, 1, 1 << 30, 1, &o.steps_per_epoch); break;
        case OPT_LR: r = md_parse_double("--lr", optarg, 1e-12, 10, &o.lr); break;
        case OPT_LR_MIN: r = md_parse_double("--lr-min", optarg, 0, 10, &o.lr_min); break;
        case OPT_WARMUP: r = md_parse_double("--warmup", optarg, 0, 1, &o.warmup); break;
        case OPT_WEIGHT_DECAY: r = md_parse_double("--weight-decay", optarg, 0, 10, &o.adamw.weight_decay); break;
        case OPT_CLIP: r = md_parse_double("--clip", optarg, 0, 1e9, &o.clip); break;
        case OPT_POOLING: a.pooling = optarg; break;
        case OPT_REVCOMP: a.revcomp = 1; break;
        case OPT_MAX_N: r = md_parse_double("--max-n", optarg, 0, 1, &a.max_n); break;
        case OPT_VAL_CONTIGS: a.val_contigs = optarg; break;
        case OPT_TEST_CONTIGS: a.test_contigs = optarg; break;
        case OPT_VAL_FRACTION:
            r = md_parse_double("--val-fraction", optarg, 1e-9, 0.999, &a.val_fraction);
            val_frac_given = 1;
            break;
        case OPT_TEST_FRACTION:
            r = md_parse_double("--test-fraction", optarg, 1e-9, 0.999, &a.test_fraction);
            test_frac_given = 1;
            break;
        case OPT_VAL_WINDOWS: r = md_parse_i64("--val-windows", optarg, 1, 1 << 24, 1, &o.val_windows); break;
        case OPT_TEST_WINDOWS: r = md_parse_i64("--test-windows", optarg, 1, 1 << 24, 1, &o.test_windows); break;
        case OPT_SPECIES_TSV: a.species_tsv = optarg; break;
        case OPT_SEQ_WARMUP_START:
            r = md_parse_i64("--seq-warmup-start", optarg, 2, 1 << 24, 1, &o.seq_warmup_start);
            break;
        case OPT_RECOMPUTE: a.recompute = md_recompute_with(a.recompute, MD_RECOMPUTE_INPUTS); break;
        case OPT_KEEP_STATES: a.recompute = md_recompute_with(a.recompute, MD_RECOMPUTE_KEEP_STATES); break;
        case OPT_PRECISION: r = md_precision_parse("--precision", optarg, &a.precision); break;
        case OPT_CUDA_GRAPH: {
            md_cuda_graph_t g = MD_CUDA_GRAPH_AUTO;
            r = md_cuda_graph_parse("--cuda-graph", optarg, &g);
            o.cuda_graph = g;
            break;
        }
        case OPT_MAX_BAD_STEPS:
            r = md_parse_i64("--max-bad-steps", optarg, 1, INT64_MAX / 4, 0, &o.max_bad_steps);
            break;
        case OPT_LOG_EVERY: r = md_parse_i64("--log-every", optarg, 0, INT64_MAX / 4, 1, &o.log_every); break;
        case OPT_REPORT: a.report = optarg; break;
        case OPT_RESUME: a.resume = optarg; break;
        case OPT_STOP_AT: r = md_parse_i64("--stop-at", optarg, 1, INT64_MAX / 4, 1, &o.stop_at); break;
        default:
            if (c >= OPT_DIST_FIRST && c < OPT_DIST_FIRST + MD_DIST_N_OPTS) {
                r = md_dist_opt(&dopt, c - OPT_DIST_FIRST, optarg) < 0 ? -1 : 0;
                break;
            }
            r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("finetune", c, argv[optind - 1]); return 1; }
            if (c == 'o') out_given = 1;
            r = 0;
        }
        if (r < 0) return 1;
    }
    o.seed = co.seed;
    md_config_t cfg;
    md_species_data_t *data = NULL;
    md_model_t *model = NULL;
    md_ckpt_t *ck = NULL;
    char *prefix = NULL;
    md_dist_t dist;
    int dist_up = 0;

    /* ---- the arguments, checked before anything is loaded ---- */
    if (!!a.input == !!a.from_scratch) {
        md_error(a.input ? "options -i and --from-scratch conflict: give one"
                         : "no starting point: give -i PRETRAINED.safetensors or --from-scratch");
        goto out;
    }
    if (a.preset && (a.d_model || a.n_layer)) {
        md_error("options --preset and --d-model/--n-layer conflict: give one or the other");
        goto out;
    }
    if (!!a.d_model != !!a.n_layer) {
        md_error("options --d-model and --n-layer go together: give both (or --preset)");
        goto out;
    }
    if (!out_given || !strcmp(co.output, "-")) {
        md_error(out_given ? "option -o: a checkpoint cannot go to standard output"
                           : "no checkpoint to write: give -o OUT.safetensors");
        goto out;
    }
    struct stat st;
    if (stat(co.output, &st) == 0 && S_ISDIR(st.st_mode)) {
        md_error("option -o: '%s' is a folder; give the checkpoint's file name", co.output);
        goto out;
    }
    if (a.resume && access(a.resume, R_OK) != 0) {
        md_error("option --resume: cannot read '%s': %s", a.resume, strerror(errno));
        goto out;
    }
    int pooling = MD_POOL_LAST;
    if (a.pooling && md_pooling_parse(a.pooling, &pooling) < 0) {
        md_error("option --pooling: '%s' is not last or mean", a.pooling);
        goto out;
    }
    for (int i = optind; i < argc; i++)
        if (md_species_spec_add(&spec, argv[i]) < 0) goto out;
    if (a.species_tsv && md_species_spec_read_tsv(&spec, a.species_tsv) < 0) goto out;
    if (spec.n < 2) {
        md_error("%s: a classifier needs at least two species (LABEL=GENOME arguments or --species-tsv)",
                 spec.n ? "only one species given" : "no species given");
        goto out;
    }
    md_holdout_t h;
    memset(&h, 0, sizeof h);
    int contigs = a.val_contigs || a.test_contigs;
    if (contigs && (val_frac_given || test_frac_given)) {
        md_error("options --val-contigs/--test-contigs and --val-fraction/--test-fraction conflict: hold out "
                 "contigs or fractions");
        goto out;
    }
    if (contigs && (!a.val_contigs || !a.test_contigs)) {
        md_error("option %s needs %s too: validation and test sets are both held out",
                 a.val_contigs ? "--val-contigs" : "--test-contigs", a.val_contigs ? "--test-contigs" : "--val-contigs");
        goto out;
    }
    if (contigs) {
        h.kind = MD_HOLDOUT_CONTIGS, h.val_contigs = a.val_contigs, h.test_contigs = a.test_contigs;
    } else {
        h.kind = MD_HOLDOUT_FRACTION;
        h.val_fraction = val_frac_given ? a.val_fraction : 0.05;
        h.test_fraction = test_frac_given ? a.test_fraction : 0.05;
        if (h.val_fraction + h.test_fraction >= 1) {
            md_error("options --val-fraction %g and --test-fraction %g leave nothing for training", h.val_fraction,
                     h.test_fraction);
            goto out;
        }
    }
    if (resolve_config(&a, model_given, &cfg) < 0) goto out;
    if (cfg.n_classes > 0)
        md_info("'%s' is a classifier already: its backbone is fine-tuned again with a fresh head", a.input);
    cfg.n_classes = spec.n;
    cfg.cls_pooling = pooling;
    if (md_config_validate(&cfg, "model") < 0) goto out;
    if (o.lr < 0) o.lr = default_lr(cfg.arch);
    if (o.lr_min > o.lr) {
        md_error("option --lr-min %g is above --lr %g", o.lr_min, o.lr);
        goto out;
    }
    o.out_path = co.output;
    o.source = a.input;
    prefix = a.report ? md_strdup(a.report) : default_prefix(co.output);
    o.report_prefix = prefix;

    /* ---- the device, the data, the model ---- */
    md_cpu_set_threads(co.threads);
    if (md_dist_wants_launch(&dopt)) {
        ret = md_dist_launch(&dopt, co.device, NULL, argc, argv);
        goto out;
    }
    if (md_dist_setup(&dopt, co.device, a.precision, &dist) < 0) goto out;
    dist_up = 1;
    const md_device_t dev = dist.dev;
    const md_backend_t *be = dist.be;
    const int ranks = md_comm_size(dist.comm);
    o.comm = dist.comm;
    /* each rank's micro-batch: by default its share of the step */
    int64_t micro = a.micro ? a.micro : md_dist_share(o.batch, 0, ranks);
    if (micro > md_dist_share(o.batch, 0, ranks)) micro = md_dist_share(o.batch, 0, ranks);
    if (!(be = md_backend_for_arch(cfg.arch, be, co.device))) goto out;
    if (ranks > 1 && be->device != dev.kind) {
        md_error("the %s architecture has no kernels on %s, and ranks cannot change device", md_arch_name(cfg.arch),
                 dev.name);
        goto out;
    }
    md_outfile_t *probe = md_outfile_open(co.output);   /* fail now, not after training */
    if (!probe) goto out;
    md_outfile_abort(probe);
    if (!(data = md_species_data_new(&spec, &h, o.seed, a.max_n, a.revcomp))) goto out;
    md_model_opts_t mo = {.recompute = a.recompute};
    if (!(model = md_model_new_ex(&cfg, be, MD_DTYPE_F32, micro, o.seq_len, &mo))) goto out;
    md_model_init_weights(model, o.seed);
    if (a.input) {
        if (!(ck = md_ckpt_open(a.input)) || md_ckpt_load_backbone(ck, model) < 0) goto out;
        md_info("backbone from '%s'; a fresh %lld-class head (%s pooling)", a.input, (long long)cfg.n_classes,
                md_pooling_name(pooling));
    }
    char hold[600];
    md_holdout_describe(&h, hold, sizeof hold);
    o.holdout_desc = hold, o.max_n_frac = a.max_n, o.revcomp = a.revcomp;
    o.resume = a.resume;
    md_info("%s %lld x %lld classifier, %d species, L %lld; held out per species: %s; %s",
            md_arch_name(cfg.arch), (long long)cfg.d_model, (long long)cfg.n_layer, spec.n, (long long)o.seq_len, hold,
            dev.name);
    md_cls_train_result_t res;
    int run = md_cls_train(model, data, &o, &res);
    if (run < 0) goto out;
    if (run == MD_TRAIN_INTERRUPTED) {
        ret = md_train_interrupted_status();
        goto out;
    }
    if (res.n_test > 0)
        md_info("test accuracy %.2f%% on %lld windows (chance %.1f%%)", 100 * res.test_acc, (long long)res.n_test,
                100.0 / spec.n);
    ret = 0;
out:
    md_ckpt_close(ck);
    md_model_free(model);
    md_species_data_free(data);
    md_species_spec_free(&spec);
    free(prefix);
    if (dist_up) md_dist_end(&dist);
    return ret;
}
