/* mambadna eval: a checkpoint's loss, perplexity and bits per base on genome
 * windows, optionally only on a held-out split, beside a Markov baseline. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "cmd/cmd.h"
#include "nn/checkpoint.h"
#include "nn/model.h"
#include "nn/safetensors.h"
#include "seq/genome.h"
#include "train/evaluate.h"
#include "train/lmdata.h"
#include "train/lmopts.h"
#include "train/markov.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/xalloc.h"

enum {
    OPT_WINDOWS = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_MARKOV, OPT_MAX_N, OPT_DUMP_LOGITS, OPT_DUMP_WINDOWS, OPT_PRECISION,
    OPT_HOLDOUT_FIRST
};

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna eval -i MODEL.safetensors [options] GENOME...\n\n"
            "Scores a language model on windows of the genome: loss (nats per base), perplexity and\n"
            "bits per base over the A/C/G/T targets. With a held-out option only the held-out part is\n"
            "scored, on the very windows 'pretrain' validates on (same options and --seed).\n\n"
            "  -i FILE               checkpoint (safetensors)\n"
            "  -L INT                sequence length [the checkpoint's training length, else 1024]\n"
            "  -B INT                sequences per batch [8]\n"
            "      --windows INT     windows of L+1 bp to score (also --val-windows) [64]\n"
            "      --max-n FLOAT     skip windows with more than this fraction of N [0.1]\n"
            "      --markov INT      also score an order-INT Markov chain fitted on the training part\n"
            "                        (the whole genome when nothing is held out); -1 = none [-1]\n"
            "      --dump-logits FILE  write the first windows' input_ids (I64 [n, L]) and logits\n"
            "                        (F32 [n, L, 16]) as safetensors, for tools/check_hf.py\n"
            "      --dump-windows INT  windows to dump [2]\n"
            "      --precision STR   fp32, or bf16 matrix products and block activations (GPU only)\n"
            "                        [fp32]\n"
            MD_LMOPTS_HOLDOUT_HELP
            "Common:\n"
            "  -t, --threads INT     worker threads (0 = all cores) [0]\n"
            "  -x, --device STR      auto, cpu, cuda or cuda:N [auto]\n"
            "      --seed INT        selects the windows (use the training seed) [the checkpoint's, else 1]\n"
            "      --json            print a JSON object instead of a table\n"
            "  -q, --quiet           only warnings and errors on stderr\n"
            "  -h, --help            this help\n");
}

static int dump_logits(md_model_t *m, md_lm_data_t *d, int64_t L, int64_t n, int64_t batch, const char *path)
{
    const int64_t W = L + 1, V = md_model_config(m)->vocab_size;
    uint8_t *win = md_malloc((size_t)(n * W));
    md_lm_data_val_batch(d, 0, n, win, NULL);
    int64_t *ids = md_malloc(sizeof *ids * (size_t)(n * L));
    uint8_t *in = md_malloc((size_t)(n * L));
    float *logits = md_malloc(sizeof *logits * (size_t)(n * L * V));
    for (int64_t b = 0; b < n; b++)
        for (int64_t t = 0; t < L; t++) ids[b * L + t] = in[b * L + t] = win[b * W + t];
    int ret = 0;
    for (int64_t first = 0; first < n && ret == 0; first += batch) {
        int64_t B = n - first < batch ? n - first : batch;
        ret = md_model_logits(m, in + first * L, B, L, logits + first * L * V);
    }
    if (ret == 0) {
        md_st_writer_t *w = md_st_writer_new();
        md_st_add(w, "input_ids", MD_ST_I64, 2, (int64_t[]){n, L}, ids);
        md_st_add(w, "logits", MD_ST_F32, 3, (int64_t[]){n, L, V}, logits);
        md_st_set_meta(w, "format", "pt");
        ret = md_st_write(w, path);
        md_st_writer_free(w);
        if (ret == 0) md_info("wrote the logits of %lld windows of %lld tokens to '%s'", (long long)n, (long long)L, path);
    }
    free(win);
    free(ids);
    free(in);
    free(logits);
    return ret;
}

int cmd_eval(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    md_lmopts_t lo;
    md_lmopts_init(&lo);
    const char *in = NULL, *dump = NULL;
    int64_t L = 0, batch = 8, n_windows = 64, markov = -1, dump_n = 2;
    md_precision_t precision = MD_PRECISION_FP32;
    double max_n = 0.1;
    int seed_given = 0;
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"input", required_argument, 0, 'i'},
                                             {"windows", required_argument, 0, OPT_WINDOWS},
                                             {"val-windows", required_argument, 0, OPT_WINDOWS},
                                             {"markov", required_argument, 0, OPT_MARKOV},
                                             {"max-n", required_argument, 0, OPT_MAX_N},
                                             {"dump-logits", required_argument, 0, OPT_DUMP_LOGITS},
                                             {"dump-windows", required_argument, 0, OPT_DUMP_WINDOWS},
                                             {"precision", required_argument, 0, OPT_PRECISION},
                                             MD_LMOPTS_HOLDOUT_LONGOPTS(OPT_HOLDOUT_FIRST),
                                             {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "i:L:B:", longopts, NULL)) >= 0) {
        int r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'i': in = optarg; break;
        case 'L': if (md_parse_i64("-L", optarg, 1, 1 << 24, 1, &L) < 0) return 1; break;
        case 'B': if (md_parse_i64("-B", optarg, 1, 1 << 20, 0, &batch) < 0) return 1; break;
        case OPT_WINDOWS: if (md_parse_i64("--windows", optarg, 1, 1 << 24, 1, &n_windows) < 0) return 1; break;
        case OPT_MARKOV:
            if (md_parse_i64("--markov", optarg, -1, MD_MARKOV_MAX_ORDER, 0, &markov) < 0) return 1;
            break;
        case OPT_MAX_N: if (md_parse_double("--max-n", optarg, 0, 1, &max_n) < 0) return 1; break;
        case OPT_DUMP_LOGITS: dump = optarg; break;
        case OPT_PRECISION: if (md_precision_parse("--precision", optarg, &precision) < 0) return 1; break;
        case OPT_DUMP_WINDOWS:
            if (md_parse_i64("--dump-windows", optarg, 1, 1 << 16, 0, &dump_n) < 0) return 1;
            break;
        default:
            r = md_lmopts_parse(&lo, c - OPT_HOLDOUT_FIRST, optarg);
            if (r < 0) return 1;
            if (r > 0) break;
            r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("eval", c, argv[optind - 1]); return 1; }
            if (c == MD_OPT_SEED) seed_given = 1;
            if (c == 'o') { md_error("option -o: eval prints to standard output; use --dump-logits for logits"); return 1; }
        }
    }
    if (!in) { md_error("no checkpoint given: -i MODEL.safetensors"); return 1; }
    if (optind >= argc) { md_error("no genome given; see 'mambadna eval -h'"); return 1; }
    md_holdout_t h;
    if (md_lmopts_resolve(&lo, &h) < 0) return 1;
    md_cpu_set_threads(co.threads);
    md_device_t dev;
    if (md_device_resolve(co.device, &dev) < 0) return 1;
    const md_backend_t *be = md_backend_for_device(&dev, precision);
    if (!be) return 1;
    md_info("device: %s", dev.name);

    md_ckpt_t *ck = md_ckpt_open(in);
    if (!ck) return 1;
    /* The training length and seed, when the checkpoint records them. */
    const char *tj = md_ckpt_meta(ck, "training");
    if (tj) {
        json_error_t err;
        json_t *o = json_loads(tj, 0, &err);
        if (o && !L && json_is_integer(json_object_get(o, "seq_len"))) L = json_integer_value(json_object_get(o, "seq_len"));
        const char *sd = json_string_value(json_object_get(o, "seed"));
        if (o && !seed_given && sd) co.seed = strtoull(sd, NULL, 10);
        json_decref(o);
    }
    if (!L) L = 1024;
    md_genome_t *g = NULL;
    md_lm_data_t *d = NULL;
    md_model_t *m = NULL;
    int ret = 1;
    uint64_t avail;
    if (!(g = md_genome_open((const char *const *)argv + optind, argc - optind))) goto out;
    if (md_genome_load(g) < 0) goto out;
    if (!(d = md_lm_data_new(g, &h, co.seed, max_n, 0))) goto out;
    if (md_lm_data_prepare_val(d, L + 1, &avail) < 0) goto out;
    if (h.kind != MD_HOLDOUT_NONE && (uint64_t)n_windows > avail) {
        md_warn("only %llu distinct held-out windows of %lld bp exist; scoring them all", (unsigned long long)avail,
                (long long)L + 1);
        n_windows = (int64_t)avail;
    }
    int64_t mb = batch < n_windows ? batch : n_windows;
    if (dump && dump_n > mb) mb = dump_n < batch ? dump_n : batch;
    if (!(be = md_backend_for_arch(ck->cfg.arch, be, co.device))) goto out;
    if (!(m = md_model_new(&ck->cfg, be, MD_DTYPE_F32, mb, L))) goto out;
    if (md_ckpt_load_params(ck, m) < 0) goto out;
    double t0 = md_realtime();
    md_eval_result_t r;
    if (md_eval_model(m, d, L, n_windows, mb, &r) < 0) goto out;
    double secs = md_realtime() - t0;
    md_eval_result_t mk = {0};
    if (markov >= 0) {
        if (h.kind == MD_HOLDOUT_NONE)
            md_warn("--markov without held-out data fits the chain on the very windows it scores (optimistic)");
        md_eval_markov(d, (int)markov, L, n_windows, &mk);
    }
    if (dump && dump_logits(m, d, L, dump_n < n_windows ? dump_n : n_windows, mb, dump) < 0) goto out;
    char hold[600];
    md_holdout_describe(&h, hold, sizeof hold);
    if (co.json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "model", in, "held_out", hold,
                              "seq_len", (json_int_t)L, "windows", (json_int_t)r.n_windows, "targets",
                              (json_int_t)r.n_targets, "loss", r.loss, "perplexity", r.ppl, "bits_per_base",
                              r.bits_per_base, "seconds", secs);
        if (markov >= 0)
            json_object_set_new(o, "markov", json_pack("{s:I, s:f, s:f, s:f}", "order", (json_int_t)markov, "loss",
                                                       mk.loss, "perplexity", mk.ppl, "bits_per_base",
                                                       mk.bits_per_base));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("model\t%s\nheld_out\t%s\nseq_len\t%lld\nwindows\t%lld\ntargets\t%lld\n", in, hold, (long long)L,
               (long long)r.n_windows, (long long)r.n_targets);
        printf("loss\t%.6f\nperplexity\t%.6f\nbits_per_base\t%.6f\n", r.loss, r.ppl, r.bits_per_base);
        if (markov >= 0)
            printf("markov%lld_loss\t%.6f\nmarkov%lld_bits_per_base\t%.6f\n", (long long)markov, mk.loss,
                   (long long)markov, mk.bits_per_base);
    }
    md_info("%lld windows of %lld bp: %.4f bits per base (%.0f tokens/s)", (long long)r.n_windows, (long long)L + 1,
            r.bits_per_base, (double)r.n_windows * (double)L / (secs > 1e-9 ? secs : 1e-9));
    ret = 0;
out:
    md_model_free(m);
    md_lm_data_free(d);
    md_genome_close(g);
    md_ckpt_close(ck);
    return ret;
}
