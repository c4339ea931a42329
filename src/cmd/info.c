/* mambadna info: describe a model preset, a custom size, or a checkpoint:
 * its config, parameter counts with and without the embedding, the
 * per-tensor table (HF name, shape, count, weight decay), optionally the
 * memory plan for a batch shape, and optionally a CPU training benchmark. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "nn/bench.h"
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"
#include "nn/params.h"
#include "nn/safetensors.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

enum { OPT_MODEL = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_PRESET, OPT_D_MODEL, OPT_N_LAYER, OPT_RECOMPUTE, OPT_KEEP_STATES,
       OPT_BENCH, OPT_STEPS, OPT_PROFILE };

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna info [options] [MODEL.safetensors]\n\n"
            "Describes a model: its config, parameter counts with and without the embedding, and\n"
            "every tensor (Hugging Face name, shape, element count, weight decay). Give a preset,\n"
            "a size, or a checkpoint.\n\n"
            "  --model STR         architecture: mamba, transformer (Transformer++) or hyena\n"
            "                      (HyenaDNA) [mamba]\n"
            "  --preset STR        mamba: 250K, 700K, 1.4M, 3.5M, 7M, 19M or 40M [1.4M];\n"
            "                      transformer: 214K, 554K, 1.3M, 3.1M, 6.4M, 18M or 39M [1.3M];\n"
            "                      hyena: 436K, 870K, 1.6M, 3.3M or 6.6M [436K] (l_max = -L)\n"
            "  --d-model INT       model width (with --n-layer, instead of --preset)\n"
            "  --n-layer INT       number of blocks\n"
            "  -B, --batch INT     with -L: also print the memory plan for this batch [1]\n"
            "  -L, --length INT    sequence length of the memory plan (and the benchmark) [1024]\n"
            "  --recompute         plan with per-block recomputation (block inputs kept only)\n"
            "  --keep-scan-states  the same, also keeping each Mamba block's scan states\n"
            "  --bench-cpu         time forward+backward on the CPU at -B x -L and compare with\n"
            "                      the machine's sgemm rate\n"
            "  --steps INT         timed steps of --bench-cpu [5]\n"
            "  --profile           with --bench-cpu, log the time per op\n"
            "Common:\n"
            "  -t, --threads INT   worker threads (0 = all cores) [0]\n"
            "      --seed INT      weights of the benchmark model [1]\n"
            "  -o, --output FILE   output file, - for stdout [-]\n"
            "      --json          print a JSON object instead of tables\n"
            "  -q, --quiet         only warnings and errors on stderr\n"
            "  -h, --help          this help\n");
}

static char *fmt_count(int64_t v, char *buf)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v)), o = 0;
    if (v < 0) buf[o++] = '-';
    for (int i = 0; i < n; i++) {
        buf[o++] = tmp[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

typedef struct {
    const md_config_t *cfg;
    const md_params_t *reg;
    const md_ckpt_t *ckpt;           /* NULL for a preset or size */
    int64_t batch, len;
    int plan, recompute;
    const md_bench_result_t *bench;  /* NULL unless --bench-cpu */
} info_t;

static const char *file_dtype(const info_t *in, const char *name)
{
    if (!in->ckpt) return NULL;
    const md_st_tensor_t *t = md_st_find(in->ckpt->st, name);
    return t ? md_st_dtype_name(t->dtype) : "absent";
}

static void print_text(FILE *fp, const info_t *in)
{
    const md_config_t *c = in->cfg;
    char b1[32], b2[32];
    if (in->ckpt) {
        fprintf(fp, "checkpoint  %s%s\n", in->ckpt->path,
                in->ckpt->config_inferred ? " (no config metadata: inferred from the shapes)" : "");
        const char *v = md_ckpt_meta(in->ckpt, "mambadna"), *tr = md_ckpt_meta(in->ckpt, "training");
        if (v) fprintf(fp, "written by  mambadna %s\n", v);
        if (tr) fprintf(fp, "training    %s\n", tr);
    }
    fprintf(fp, "model       %s%s%s%s\n", md_arch_name(c->arch), c->preset[0] ? " (preset " : "", c->preset,
            c->preset[0] ? ")" : "");
    if (c->arch == MD_ARCH_HYENA)
        fprintf(fp, "config      d_model %lld, n_layer %lld, order 2, d_ff %lld, short filter %lld, l_max %lld, "
                    "filter MLP width %lld (Sin, freq %g), vocab %lld, LayerNorm eps %g, tied lm_head\n",
                (long long)c->d_model, (long long)c->n_layer, (long long)c->d_ff, (long long)c->d_conv,
                (long long)c->l_max, (long long)c->filter_order, c->filter_freq, (long long)c->vocab_size,
                c->norm_eps);
    else if (c->arch == MD_ARCH_TRANSFORMER)
        fprintf(fp, "config      d_model %lld, n_layer %lld, n_heads %lld (head_dim %lld), d_ff %lld, rope_theta %g, "
                    "vocab %lld, norm_eps %g, tied lm_head\n",
                (long long)c->d_model, (long long)c->n_layer, (long long)c->n_heads,
                (long long)(c->d_model / c->n_heads), (long long)c->d_ff, c->rope_theta, (long long)c->vocab_size,
                c->norm_eps);
    else
        fprintf(fp, "config      d_model %lld, n_layer %lld, d_inner %lld, d_state %lld, dt_rank %lld, d_conv %lld, "
                    "vocab %lld, norm_eps %g, tied lm_head\n",
                (long long)c->d_model, (long long)c->n_layer, (long long)c->d_inner, (long long)c->d_state,
                (long long)c->dt_rank, (long long)c->d_conv, (long long)c->vocab_size, c->norm_eps);
    md_cls_info_t ci;
    if (in->ckpt && c->n_classes > 0 && md_ckpt_classifier(in->ckpt, &ci) == 0) {
        fprintf(fp, "classifier  %lld classes (", (long long)ci.n_classes);
        for (int64_t k = 0; k < ci.n_classes; k++) fprintf(fp, "%s%s", k ? ", " : "", ci.labels[k]);
        fprintf(fp, "), %s-position pooling, fine-tuned at L %lld\n", md_pooling_name(ci.pooling),
                (long long)ci.seq_len);
        md_cls_info_free(&ci);
    }
    fprintf(fp, "parameters  %s (%s without the embedding)\n", fmt_count(in->reg->numel, b1),
            fmt_count(md_params_count_no_embed(in->reg), b2));
    fprintf(fp, "\n%-48s %-16s %12s  %-5s%s\n", "tensor", "shape", "count", "decay", in->ckpt ? "  dtype" : "");
    for (int64_t i = 0; i < in->reg->n; i++) {
        const md_param_t *p = &in->reg->p[i];
        char shape[64], line[512];
        md_param_shape_str(p, shape, sizeof shape);
        int n = snprintf(line, sizeof line, "%-48s %-16s %12s  %-5s", p->name, shape,
                         p->tied_to >= 0 ? "tied" : fmt_count(p->numel, b1), p->decay ? "yes" : "no");
        if (in->ckpt) n += snprintf(line + n, sizeof line - n, "  %s", file_dtype(in, p->name));
        if (p->tied_to >= 0) n += snprintf(line + n, sizeof line - n, "  (= %s)", in->reg->p[p->tied_to].name);
        while (n > 0 && line[n - 1] == ' ') line[--n] = 0;
        fprintf(fp, "%s\n", line);
    }
    if (in->plan) {
        md_model_memory_t mem;
        md_model_opts_t opts = {.recompute = in->recompute};
        md_model_plan(c, MD_DTYPE_F32, in->batch, in->len, &opts, &mem);
        int kept = md_model_keeps_scan_states(c, &opts);
        double MiB = 1048576.0;
        fprintf(fp, "\nmemory plan for batch %lld x length %lld (f32%s): params %.1f MiB, grads %.1f MiB, "
                    "activations %.1f MiB, workspace %.1f MiB, total %.1f MiB (optimizer moments: %.1f MiB more)\n",
                (long long)in->batch, (long long)in->len,
                kept ? ", recompute, scan states kept" : in->recompute ? ", recompute" : "",
                mem.params / MiB,
                mem.grads / MiB, mem.activations / MiB, mem.workspace / MiB, mem.total / MiB, 2 * mem.params / MiB);
    }
    if (in->bench) {
        const md_bench_result_t *r = in->bench;
        fprintf(fp, "\ncpu training benchmark (forward + backward, no optimizer), batch %lld x length %lld, "
                    "%d threads, %d steps:\n",
                (long long)r->batch, (long long)r->len, r->threads, r->steps);
        fprintf(fp, "  tokens/s          %.0f best, %.0f median (step %.3f s best, %.3f s median)\n",
                r->tokens_per_s_best, r->tokens_per_s_median, r->step_s_best, r->step_s_median);
        fprintf(fp, "  per CPU-second    %.0f tokens (%.3f CPU s per step, all threads)\n", r->tokens_per_cpu_s,
                r->cpu_s_per_step_median);
        fprintf(fp, "  sgemm             %.1f GFLOP/s at 1024^3 (%d threads), %.1f on one thread; %.1f at the "
                    "in_proj shape\n",
                r->sgemm_gflops_square, r->threads, r->sgemm_gflops_1core, r->sgemm_gflops_model);
        fprintf(fp, "  FLOPs per token   forward %.3g (matmuls %.3g); training matmuls %.3g\n",
                r->fwd_flops_per_token, r->fwd_matmul_flops_per_token, r->train_matmul_flops_per_token);
        fprintf(fp, "  BLAS bound        %.0f tokens/s (sgemm rate / training matmul FLOPs): best measured is "
                    "%.2fx below it\n",
                r->blas_bound_tokens_per_s, r->blas_bound_tokens_per_s / r->tokens_per_s_best);
        fprintf(fp, "  per core          %.0f tokens per CPU-second allowed by one core's sgemm: measured is %.2fx "
                    "below it\n",
                r->blas_bound_tokens_per_cpu_s, r->blas_bound_tokens_per_cpu_s / r->tokens_per_cpu_s);
    }
}

static json_t *config_json(const md_config_t *c)
{
    char *s = md_config_to_json(c);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

static void print_json(FILE *fp, const info_t *in)
{
    json_t *o = json_object();
    if (in->ckpt) {
        json_t *ck = json_object();
        json_object_set_new(ck, "path", json_string(in->ckpt->path));
        json_object_set_new(ck, "config_inferred", json_boolean(in->ckpt->config_inferred));
        const char *v = md_ckpt_meta(in->ckpt, "mambadna"), *tr = md_ckpt_meta(in->ckpt, "training");
        if (v) json_object_set_new(ck, "mambadna", json_string(v));
        if (tr) {
            json_t *tj = json_loads(tr, 0, NULL);
            json_object_set_new(ck, "training", tj ? tj : json_string(tr));
        }
        md_cls_info_t ci;
        if (in->cfg->n_classes > 0 && md_ckpt_classifier(in->ckpt, &ci) == 0) {
            json_t *cj = json_object(), *labels = json_array();
            for (int64_t k = 0; k < ci.n_classes; k++) json_array_append_new(labels, json_string(ci.labels[k]));
            json_object_set_new(cj, "labels", labels);
            json_object_set_new(cj, "pooling", json_string(md_pooling_name(ci.pooling)));
            json_object_set_new(cj, "seq_len", json_integer(ci.seq_len));
            json_object_set_new(ck, "classifier", cj);
            md_cls_info_free(&ci);
        }
        json_object_set_new(o, "checkpoint", ck);
    }
    json_object_set_new(o, "arch", json_string(md_arch_name(in->cfg->arch)));
    json_object_set_new(o, "preset", in->cfg->preset[0] ? json_string(in->cfg->preset) : json_null());
    json_object_set_new(o, "config", config_json(in->cfg));
    json_object_set_new(o, "n_params", json_integer(in->reg->numel));
    json_object_set_new(o, "n_params_no_embedding", json_integer(md_params_count_no_embed(in->reg)));
    json_t *arr = json_array();
    for (int64_t i = 0; i < in->reg->n; i++) {
        const md_param_t *p = &in->reg->p[i];
        json_t *t = json_object(), *sh = json_array();
        json_object_set_new(t, "name", json_string(p->name));
        for (int k = 0; k < p->ndim; k++) json_array_append_new(sh, json_integer(p->shape[k]));
        json_object_set_new(t, "shape", sh);
        json_object_set_new(t, "count", json_integer(p->numel));
        json_object_set_new(t, "decay", json_boolean(p->decay));
        json_object_set_new(t, "tied_to", p->tied_to >= 0 ? json_string(in->reg->p[p->tied_to].name) : json_null());
        if (in->ckpt) json_object_set_new(t, "dtype", json_string(file_dtype(in, p->name)));
        json_array_append_new(arr, t);
    }
    json_object_set_new(o, "tensors", arr);
    if (in->plan) {
        md_model_memory_t mem;
        md_model_opts_t opts = {.recompute = in->recompute};
        md_model_plan(in->cfg, MD_DTYPE_F32, in->batch, in->len, &opts, &mem);
        json_t *m = json_object();
        json_object_set_new(m, "batch", json_integer(in->batch));
        json_object_set_new(m, "length", json_integer(in->len));
        json_object_set_new(m, "recompute", json_boolean(in->recompute));
        json_object_set_new(m, "keep_scan_states", json_boolean(md_model_keeps_scan_states(in->cfg, &opts)));
        json_object_set_new(m, "params_bytes", json_integer(mem.params));
        json_object_set_new(m, "grads_bytes", json_integer(mem.grads));
        json_object_set_new(m, "activations_bytes", json_integer(mem.activations));
        json_object_set_new(m, "workspace_bytes", json_integer(mem.workspace));
        json_object_set_new(m, "total_bytes", json_integer(mem.total));
        json_object_set_new(o, "memory", m);
    }
    if (in->bench) {
        const md_bench_result_t *r = in->bench;
        json_t *b = json_object();
        json_object_set_new(b, "batch", json_integer(r->batch));
        json_object_set_new(b, "length", json_integer(r->len));
        json_object_set_new(b, "threads", json_integer(r->threads));
        json_object_set_new(b, "steps", json_integer(r->steps));
        json_object_set_new(b, "tokens_per_s_best", json_real(r->tokens_per_s_best));
        json_object_set_new(b, "tokens_per_s_median", json_real(r->tokens_per_s_median));
        json_object_set_new(b, "cpu_s_per_step_median", json_real(r->cpu_s_per_step_median));
        json_object_set_new(b, "tokens_per_cpu_s", json_real(r->tokens_per_cpu_s));
        json_object_set_new(b, "sgemm_gflops_1024", json_real(r->sgemm_gflops_square));
        json_object_set_new(b, "sgemm_gflops_1024_1thread", json_real(r->sgemm_gflops_1core));
        json_object_set_new(b, "sgemm_gflops_in_proj", json_real(r->sgemm_gflops_model));
        json_object_set_new(b, "fwd_flops_per_token", json_real(r->fwd_flops_per_token));
        json_object_set_new(b, "fwd_matmul_flops_per_token", json_real(r->fwd_matmul_flops_per_token));
        json_object_set_new(b, "train_matmul_flops_per_token", json_real(r->train_matmul_flops_per_token));
        json_object_set_new(b, "blas_bound_tokens_per_s", json_real(r->blas_bound_tokens_per_s));
        json_object_set_new(b, "blas_bound_tokens_per_cpu_s", json_real(r->blas_bound_tokens_per_cpu_s));
        json_object_set_new(o, "bench_cpu", b);
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fprintf(fp, "%s\n", s);
    free(s);
    json_decref(o);
}

int cmd_info(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},
        {"preset", required_argument, 0, OPT_PRESET},
        {"d-model", required_argument, 0, OPT_D_MODEL},
        {"n-layer", required_argument, 0, OPT_N_LAYER},
        {"batch", required_argument, 0, 'B'},
        {"length", required_argument, 0, 'L'},
        {"recompute", no_argument, 0, OPT_RECOMPUTE},
        {"keep-scan-states", no_argument, 0, OPT_KEEP_STATES},
        {"bench-cpu", no_argument, 0, OPT_BENCH},
        {"steps", required_argument, 0, OPT_STEPS},
        {"profile", no_argument, 0, OPT_PROFILE},
        {0, 0, 0, 0}};
    const char *arch_name = "mamba", *preset = NULL;
    int64_t d_model = 0, n_layer = 0, batch = 1, len = 1024, steps = 5;
    int have_b = 0, have_l = 0, recompute = 0, bench = 0, profile = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "B:L:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case OPT_MODEL: arch_name = optarg; break;
        case OPT_PRESET: preset = optarg; break;
        case OPT_D_MODEL:
            if (md_parse_i64("--d-model", optarg, 1, 65536, 0, &d_model) < 0) return 1;
            break;
        case OPT_N_LAYER:
            if (md_parse_i64("--n-layer", optarg, 1, 1024, 0, &n_layer) < 0) return 1;
            break;
        case 'B':
            if (md_parse_i64("-B/--batch", optarg, 1, 1 << 20, 1, &batch) < 0) return 1;
            have_b = 1;
            break;
        case 'L':
            if (md_parse_i64("-L/--length", optarg, 1, INT64_C(1) << 30, 1, &len) < 0) return 1;
            have_l = 1;
            break;
        case OPT_RECOMPUTE: recompute = md_recompute_with(recompute, MD_RECOMPUTE_INPUTS); break;
        case OPT_KEEP_STATES: recompute = md_recompute_with(recompute, MD_RECOMPUTE_KEEP_STATES); break;
        case OPT_BENCH: bench = 1; break;
        case OPT_STEPS:
            if (md_parse_i64("--steps", optarg, 1, 1000, 0, &steps) < 0) return 1;
            break;
        case OPT_PROFILE: profile = 1; break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) {
                md_report_bad_option("info", optopt, argv[optind - 1]);
                return 1;
            }
        }
        }
    }
    if (optind < argc - 1) {
        md_error("expected at most one checkpoint, got %d arguments ('%s' ...)", argc - optind, argv[optind]);
        return 1;
    }
    const char *ckpt_path = optind < argc ? argv[optind] : NULL;
    md_arch_t arch;
    if (md_arch_parse(arch_name, &arch) < 0) {
        md_error("option --model: unknown architecture '%s'; choose mamba, hyena or transformer", arch_name);
        return 1;
    }
    if (ckpt_path && (preset || d_model || n_layer)) {
        md_error("a checkpoint ('%s') describes its own model; drop --preset/--d-model/--n-layer", ckpt_path);
        return 1;
    }
    if (preset && (d_model || n_layer)) {
        md_error("options --preset and --d-model/--n-layer conflict; give a preset or a size");
        return 1;
    }
    if (!!d_model != !!n_layer) {
        md_error("option %s needs %s as well", d_model ? "--d-model" : "--n-layer", d_model ? "--n-layer" : "--d-model");
        return 1;
    }
    if (batch * len > (INT64_C(1) << 31)) {
        md_error("options -B/-L: batch %lld x length %lld is beyond 2^31 tokens", (long long)batch, (long long)len);
        return 1;
    }
    md_common_apply_threads(&co);

    md_config_t cfg;
    md_ckpt_t *ck = NULL;
    if (ckpt_path) {
        if (!(ck = md_ckpt_open(ckpt_path))) return 1;
        cfg = ck->cfg;
    } else {
        if (d_model) md_config_init(&cfg, arch, d_model, n_layer);
        else if (md_config_preset(&cfg, arch, preset ? preset : md_config_default_preset(arch)) < 0) return 1;
        if (arch == MD_ARCH_HYENA) cfg.l_max = len;   /* the filter spans the planned length */
        if (md_config_validate(&cfg, "model") < 0) return 1;
    }
    md_params_t reg;
    if (md_params_build(&cfg, &reg) < 0) {
        md_ckpt_close(ck);
        return 1;
    }
    int ret = 1;
    md_bench_result_t br;
    info_t in = {&cfg, &reg, ck, batch, len, have_b || have_l, recompute, NULL};
    if (bench) {
        if (md_bench_train_cpu(&cfg, batch, len, (int)steps, co.seed, profile, &br) < 0) goto done;
        in.bench = &br;
    }
    md_outfile_t *of = md_outfile_open(co.output);
    if (!of) goto done;
    if (co.json) print_json(of->fp, &in);
    else print_text(of->fp, &in);
    if (md_outfile_commit(of) < 0) goto done;
    ret = 0;
done:
    md_params_free(&reg);
    md_ckpt_close(ck);
    return ret;
}
