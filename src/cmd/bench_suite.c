/* mambadna bench all: every figure of issue #9's performance goals, measured
 * in one process on one GPU, printed as one table beside the reference each
 * is judged against (cmd/bench_report.h), and recorded as JSON (-o FILE)
 * with the date, the GPU, its driver, the git revision and the command, so
 * that later runs can be compared.
 *
 * The cells run the code of the single benchmarks (md_bench_scan_measure,
 * md_bench_train_measure; md_bench_train_cpu for the CPU figure of issue
 * #3), in this order: the scan S1..S5 (bf16 fwd+bwd, with its floors),
 * Mamba, Hyena and Transformer++ training at issue #9's sizes and lengths
 * (bf16 GEMMs, 2^17 tokens per step, one sequence at 2^20), the 7M preset's
 * peak memory at 2^20, and classify's reads/s. A cell that fails (out of
 * memory, say) is recorded as failed and the suite goes on; one that would
 * start after --time-budget is recorded as skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "build_info.h"
#include "cmd/bench_report.h"
#include "cmd/bench_train.h"
#include "nn/bench.h"
#include "nn/config.h"
#include "nn/model.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/provenance.h"
#include "util/rng.h"
#include "util/xalloc.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#endif

enum { OPT_ONLY = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_QUICK, OPT_BUDGET };

/* The groups, in the order they run; --only picks among them. */
enum { G_SCAN, G_MAMBA, G_HYENA, G_TRANSFORMER, G_MEMORY, G_CLASSIFY, G_CPU, N_GROUPS };
static const char *const group_names[N_GROUPS] = {"scan", "mamba", "hyena", "transformer", "memory", "classify", "cpu"};
#define GPU_GROUPS ((1u << G_CPU) - 1)

/* MUFU.EX2 issue rate per SM and clock on sm_90 (the scan's SFU floor,
 * kernels/NOTES-scan.md). */
#define EX2_PER_CLK_SM 16.0
#define TRAIN_TOKENS (INT64_C(1) << 17)
#define LEN_2_20 (INT64_C(1) << 20)

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna bench all [options]\n\n"
            "Runs every figure of the performance goals (issue #9) on this machine's GPU\n"
            "and prints one table: per cell our figure, the reference (PyTorch with the\n"
            "official kernels on an H200, from the issue), the ratio (times better), the\n"
            "goal ratio and whether it is met. -o writes the same as JSON with the date,\n"
            "GPU, driver, CUDA and git revision, for comparing runs.\n\n"
            "Groups (in this order):\n"
            "  scan         selective scan S1..S5, bf16 fwd+bwd, and its bytes / ex2 floors\n"
            "  mamba        training Mtokens/s, 128x6 and 256x8, L 1024 .. 2^20; peak GiB at 2^20\n"
            "  hyena        the same for Hyena\n"
            "  transformer  Transformer++ 128x6 and 256x8 at L 1024 and 16384\n"
            "  memory       peak GiB of the 7M Mamba at L 2^20, batch 1\n"
            "  classify     reads/s of 1 kb with a 1.4M classifier (random weights)\n"
            "  cpu          Mamba 1.4M training on the CPU (issue #3); the only group of -x cpu\n\n"
            "Options:\n"
            "      --only LIST         comma-separated groups [all GPU groups; cpu with -x cpu]\n"
            "      --quick             small shapes and few steps: a smoke run, goals not judged\n"
            "      --time-budget SEC   skip the cells that would start after SEC seconds [0: none]\n"
            "  -o, --output FILE       also write the JSON record to FILE\n"
            "      --json              print the JSON record instead of the table\n"
            "  -t, --threads INT       CPU threads for the cpu group (0 = all cores) [0]\n"
            "  -x, --device STR        cuda, cuda:N, auto, or cpu (the cpu group alone) [auto]\n"
            "      --seed INT          random inputs and weights [1]\n"
            "  -q, --quiet             only warnings and errors on stderr\n"
            "  -h, --help              this help\n");
}

/* Parses --only; 0, or -1 after one error line. */
static int parse_groups(const char *list, unsigned *mask)
{
    char *dup = md_strdup(list), *save = NULL;
    *mask = 0;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int g = 0;
        while (g < N_GROUPS && strcmp(t, group_names[g])) g++;
        if (g == N_GROUPS) {
            md_error("option --only: unknown group '%s' (scan, mamba, hyena, transformer, memory, classify, cpu)", t);
            free(dup);
            return -1;
        }
        *mask |= 1u << g;
    }
    free(dup);
    if (!*mask) {
        md_error("option --only: no group given");
        return -1;
    }
    return 0;
}

typedef struct {
    md_bench_report_t rep;
    const md_common_opts_t *co;
    int quick, failed;
    double t0, budget;
    /* the GPU's figures the scan floors need */
    int sms;
    double clock_hz, copy_gbps;
    int64_t l2_bytes;
} suite_t;

/* A new cell of this run (judged unless --quick); valid until the next one. */
static md_bench_cell_t *new_cell(suite_t *s, const char *group, const char *name, const char *metric,
                                 md_bench_sense_t sense)
{
    md_bench_cell_t *c = md_bench_report_add(&s->rep, group, name, metric, sense);
    c->judged = !s->quick;
    return c;
}

/* 1 after marking c skipped when the time budget is spent; else 0 (and the
 * cell is announced). Called once its reference and goal are set, so a
 * skipped cell still counts as a goal not met. */
static int over_budget(suite_t *s, md_bench_cell_t *c)
{
    if (s->budget > 0 && md_realtime() - s->t0 > s->budget) {
        c->state = MD_BENCH_SKIPPED;
        snprintf(c->note, sizeof c->note, "time budget of %g s spent", s->budget);
        return 1;
    }
    md_log_msg('M', "bench_all", "running %s %s", c->group, c->name);
    return 0;
}

static void cell_failed(suite_t *s, md_bench_cell_t *c)
{
    c->state = MD_BENCH_FAILED;
    snprintf(c->note, sizeof c->note, "failed: see the [E::] line above");
    s->failed++;
}

static void set_num(json_t *o, const char *key, double v) { json_object_set_new(o, key, json_real(v)); }
static void set_int(json_t *o, const char *key, int64_t v) { json_object_set_new(o, key, json_integer(v)); }

#if MD_HAVE_CUDA

/* "1024", "131072", but "2^20" where the digits stop reading at a glance. */
static void len_name(char *buf, size_t n, int64_t L)
{
    if (L > 131072 && !(L & (L - 1))) snprintf(buf, n, "2^%d", __builtin_ctzll((unsigned long long)L));
    else snprintf(buf, n, "%lld", (long long)L);
}

static void run_scan(suite_t *s)
{
    const int reps = s->quick ? 3 : 10;
    for (int i = 0; i < (s->quick ? 1 : MD_SCAN_N_SHAPES); i++) {
        const md_scan_shape_t *sh = &md_scan_shapes[i];
        char name[32];
        snprintf(name, sizeof name, "%s bf16", sh->name);
        md_bench_cell_t *c = new_cell(s, "scan", name, "fwd+bwd ms", MD_BENCH_LOWER_BETTER);
        c->ref = sh->official_bf16_ms;
        c->goal = 3;
        if (over_budget(s, c)) continue;
        set_int(c->settings, "B", sh->B), set_int(c->settings, "D", sh->D), set_int(c->settings, "L", sh->L);
        set_int(c->settings, "N", MD_SCAN_BENCH_STATE), set_int(c->settings, "reps", reps);
        json_object_set_new(c->settings, "dtype", json_string("bf16"));
        /* the backward from segment states, as the training cells run it */
        json_object_set_new(c->settings, "states", json_string("segment"));
        md_scan_bench_result_t r;
        const uint64_t seed = s->co->seed * 1000003u + (uint64_t)i * 17u;
        if (md_bench_scan_measure(sh, 1, 0, 1, reps, seed, s->l2_bytes, &r) < 0) {
            cell_failed(s, c);
            continue;
        }
        c->ours = r.all_ms;
        const double bytes = r.bytes_fwd + r.bytes_bwd;
        const double bytes_ms = bytes / (s->copy_gbps * 1e9) * 1e3;
        /* one exp(dt A) per (b, t, e, n) forward and at least one more backward */
        const double ex2_ms = 2.0 * sh->B * sh->L * sh->D * MD_SCAN_BENCH_STATE /
                              (EX2_PER_CLK_SM * s->sms * s->clock_hz) * 1e3;
        const double floor_ms = bytes_ms > ex2_ms ? bytes_ms : ex2_ms;
        set_num(c->extra, "fwd_ms", r.fwd_ms), set_num(c->extra, "bwd_ms", r.bwd_ms);
        set_num(c->extra, "fwdbwd_ms", r.all_ms), set_num(c->extra, "min_bytes", bytes);
        set_num(c->extra, "gbps", bytes / (r.all_ms * 1e-3) / 1e9);
        set_num(c->extra, "bytes_floor_ms", bytes_ms), set_num(c->extra, "ex2_floor_ms", ex2_ms);
        set_num(c->extra, "floor_multiple", r.all_ms / floor_ms), set_int(c->extra, "input_sets", r.sets);
        snprintf(c->note, sizeof c->note, "%.1fx its floor (%s %.3f ms; other %.3f ms)", r.all_ms / floor_ms,
                 bytes_ms > ex2_ms ? "bytes" : "ex2", floor_ms, bytes_ms > ex2_ms ? ex2_ms : bytes_ms);
    }
}

/* One training cell: tokens/s, and for Mamba at 2^20 a second cell with the
 * same run's peak memory beside PyTorch's. Cells are addressed by index:
 * adding one may move the others. */
static void run_train_cell(suite_t *s, md_arch_t arch, const char *arch_name, int64_t d, int64_t n, int64_t L)
{
    const md_train_anchor_t *a = md_train_anchor_find(arch_name, d, n, L);
    const int long_ctx = L == LEN_2_20;
    const int64_t runL = s->quick ? 1024 : L, B = s->quick ? 16 : runL <= TRAIN_TOKENS ? TRAIN_TOKENS / runL : 1;
    /* recompute where the activations would not fit otherwise; Hyena 128x6 fits at 2^20 without.
     * Mamba 256x8 also keeps each layer's scan states (the recompute then
     * runs no scan), which its memory goal, a third of PyTorch's 65.9 GiB,
     * has room for (+1.75 GiB: ~20.6); 128x6's, 8.60 GiB, has not (8.53
     * without them, +0.75 with). */
    const int recompute = long_ctx && !s->quick && !(arch == MD_ARCH_HYENA && d == 128);
    const int keep_states = recompute && arch == MD_ARCH_MAMBA && d == 256;
    char lname[16], name[48], pname[56];
    len_name(lname, sizeof lname, L);
    snprintf(name, sizeof name, "%lldx%lld L=%s", (long long)d, (long long)n, lname);
    snprintf(pname, sizeof pname, "%s peak", name);
    const int ci = s->rep.n;
    md_bench_cell_t *c = new_cell(s, arch_name, name, "Mtokens/s", MD_BENCH_HIGHER_BETTER);
    if (a && a->oom) {
        snprintf(c->ref_text, sizeof c->ref_text, "OOM");
        c->goal_runs = 1;
    } else if (a) {
        c->ref = a->mtokens_per_s;
        c->goal = arch == MD_ARCH_TRANSFORMER ? 1 : 2;
    }
    int pi = -1;
    if (arch == MD_ARCH_MAMBA && long_ctx && a && a->peak_gib > 0) {
        pi = s->rep.n;
        md_bench_cell_t *p = new_cell(s, arch_name, pname, "peak GiB", MD_BENCH_LOWER_BETTER);
        p->ref = a->peak_gib;
        p->goal = 3;
    }
    c = &s->rep.cells[ci];
    if (over_budget(s, c)) {
        if (pi >= 0) over_budget(s, &s->rep.cells[pi]);
        return;
    }
    md_config_t cfg;
    md_config_init(&cfg, arch, d, n);
    if (arch == MD_ARCH_HYENA) cfg.l_max = runL;   /* the filter spans the benchmarked length */
    md_train_bench_spec_t spec = {.cfg = &cfg, .device = s->co->device, .precision = MD_PRECISION_BF16,
                                  .batch = B, .len = runL, .tokens_per_step = B * runL,
                                  .steps = s->quick ? 2 : long_ctx ? 3 : 5, .warmup = s->quick || long_ctx ? 1 : 2,
                                  .recompute = keep_states ? MD_RECOMPUTE_KEEP_STATES : recompute,
                                  .seed = s->co->seed};
    json_t *st = c->settings;
    json_object_set_new(st, "model", json_string(arch_name));
    set_int(st, "d_model", d), set_int(st, "n_layer", n), set_int(st, "B", B), set_int(st, "L", runL);
    set_int(st, "tokens_per_step", spec.tokens_per_step), set_int(st, "steps", spec.steps);
    set_int(st, "warmup", spec.warmup);
    json_object_set_new(st, "recompute", json_boolean(recompute));
    json_object_set_new(st, "keep_scan_states", json_boolean(keep_states));
    json_object_set_new(st, "precision", json_string("bf16"));
    md_train_bench_result_t r;
    if (md_config_validate(&cfg, "model") < 0 || md_bench_train_measure(&spec, &r) < 0) {
        cell_failed(s, c);
        if (pi >= 0) cell_failed(s, &s->rep.cells[pi]);
        return;
    }
    c->ours = r.tokens_per_s / 1e6;
    set_int(c->extra, "params", r.params), set_num(c->extra, "step_ms_median", r.step_ms_median);
    set_num(c->extra, "step_ms_min", r.step_ms_min), set_num(c->extra, "tokens_per_s", r.tokens_per_s);
    set_num(c->extra, "peak_alloc_gib", r.peak_alloc_gib), set_num(c->extra, "device_used_gib", r.device_used_gib);
    set_num(c->extra, "last_loss", r.last_loss);
    char pt[32] = "";
    if (a && a->peak_gib > 0) snprintf(pt, sizeof pt, " (PyTorch %.1f)", a->peak_gib);
    snprintf(c->note, sizeof c->note, "peak %.2f GiB%s; B=%lld%s", r.peak_alloc_gib, pt, (long long)B,
             keep_states ? ", --keep-scan-states" : recompute ? ", --recompute" : "");
    if (pi >= 0) {
        md_bench_cell_t *p = &s->rep.cells[pi];
        p->ours = r.peak_alloc_gib;
        json_object_update(p->settings, c->settings);
        json_object_update(p->extra, c->extra);
        snprintf(p->note, sizeof p->note, "backend allocations; device in use %.2f GiB", r.device_used_gib);
    }
}

static void run_training(suite_t *s, unsigned groups)
{
    static const struct {
        int group;
        md_arch_t arch;
        const char *name;
        int n_len;
    } fams[] = {{G_MAMBA, MD_ARCH_MAMBA, "mamba", 4}, {G_HYENA, MD_ARCH_HYENA, "hyena", 4},
                {G_TRANSFORMER, MD_ARCH_TRANSFORMER, "transformer", 2}};
    static const int64_t sizes[2][2] = {{128, 6}, {256, 8}};
    static const int64_t lens[4] = {1024, 16384, 131072, LEN_2_20};
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        if (!(groups & (1u << fams[f].group))) continue;
        for (int z = 0; z < 2; z++)
            for (int l = 0; l < (s->quick ? 1 : fams[f].n_len); l++)
                run_train_cell(s, fams[f].arch, fams[f].name, sizes[z][0], sizes[z][1], lens[l]);
    }
}

/* The 7M preset (256 x 16) at 2^20, batch 1: the issue asks that it fit in 40 GiB. */
static void run_memory(suite_t *s)
{
    const int64_t L = s->quick ? 16384 : LEN_2_20;
    md_bench_cell_t *c = new_cell(s, "memory", s->quick ? "7M L=16384 B=1" : "7M L=2^20 B=1", "peak GiB",
                                  MD_BENCH_LOWER_BETTER);
    c->ref = 40;
    c->goal = 1;
    snprintf(c->note, sizeof c->note, "reference = the goal (fits in 40 GiB)");
    if (over_budget(s, c)) return;
    md_config_t cfg;
    md_config_preset(&cfg, MD_ARCH_MAMBA, "7M");
    md_train_bench_spec_t spec = {.cfg = &cfg, .device = s->co->device, .precision = MD_PRECISION_BF16,
                                  .batch = 1, .len = L, .tokens_per_step = L, .steps = 2, .warmup = 1,
                                  .recompute = 1, .seed = s->co->seed};
    json_object_set_new(c->settings, "preset", json_string("7M"));
    set_int(c->settings, "B", 1), set_int(c->settings, "L", L), set_int(c->settings, "steps", spec.steps);
    json_object_set_new(c->settings, "recompute", json_true());
    json_object_set_new(c->settings, "precision", json_string("bf16"));
    md_train_bench_result_t r;
    if (md_bench_train_measure(&spec, &r) < 0) {
        cell_failed(s, c);
        return;
    }
    c->ours = r.peak_alloc_gib;
    set_num(c->extra, "peak_alloc_gib", r.peak_alloc_gib), set_num(c->extra, "device_used_gib", r.device_used_gib);
    set_num(c->extra, "tokens_per_s", r.tokens_per_s), set_num(c->extra, "step_ms_median", r.step_ms_median);
    snprintf(c->note, sizeof c->note, "reference = the goal (40 GiB); %.0f tokens/s; device in use %.2f GiB",
             r.tokens_per_s, r.device_used_gib);
}

/* classify's model path: a 1.4M Mamba classifier (5 classes, random
 * weights: throughput does not depend on them) planned for inference with
 * classify's defaults (bf16 and batches of 4,096 reads on a GPU; fp32 and
 * 64 on the CPU), reads of 1,000 random bases; reads/s = B / the median
 * batch time (wall clock: each call returns the log-probabilities to the
 * host). File reading and tokenising are not included. */
static void run_classify(suite_t *s)
{
    const int64_t L = 1000;
    const int reps = s->quick ? 3 : 20;
    md_bench_cell_t *c = new_cell(s, "classify", "1.4M 1 kb reads", "reads/s", MD_BENCH_HIGHER_BETTER);
    c->ref = 50000;
    c->goal = 1;
    if (over_budget(s, c)) return;
    md_config_t cfg;
    md_config_preset(&cfg, MD_ARCH_MAMBA, "1.4M");
    cfg.n_classes = 5;
    md_device_t dev;
    const md_backend_t *be = NULL;
    md_model_opts_t mo = {.inference = 1};
    md_model_t *m = NULL;
    if (md_device_resolve(s->co->device, &dev) < 0) {
        cell_failed(s, c);
        return;
    }
    const int gpu = dev.kind != MD_DEVICE_CPU;
    const md_precision_t prec = gpu ? MD_PRECISION_BF16 : MD_PRECISION_FP32;
    const int64_t B = gpu ? 4096 : 64;
    snprintf(c->note, sizeof c->note, "reference = the goal; random weights, %s, model forward only (inference plan)",
             md_precision_name(prec));
    json_object_set_new(c->settings, "preset", json_string("1.4M"));
    json_object_set_new(c->settings, "precision", json_string(md_precision_name(prec)));
    set_int(c->settings, "classes", 5), set_int(c->settings, "reads_per_batch", B);
    set_int(c->settings, "read_length", L), set_int(c->settings, "batches", reps);
    if (!(be = md_backend_for_device(&dev, prec)) || !(be = md_backend_for_arch(cfg.arch, be, s->co->device)) ||
        !(m = md_model_new_ex(&cfg, be, MD_DTYPE_F32, B, L, &mo))) {
        cell_failed(s, c);
        return;
    }
    md_model_init_weights(m, s->co->seed);
    uint8_t *tok = md_malloc((size_t)(B * L));
    float *lp = md_malloc((size_t)(B * cfg.n_classes) * sizeof *lp);
    double *t = md_malloc((size_t)reps * sizeof *t);
    md_rng_t rng;
    md_rng_seed(&rng, s->co->seed);
    for (int64_t i = 0; i < B * L; i++) tok[i] = (uint8_t)(7 + md_rng_below(&rng, 4));
    int bad = 0;
    for (int i = -2; i < reps && !bad; i++) {
        md_class_result_t cr;
        double t0 = md_realtime();
        bad = md_model_classify(m, tok, NULL, B, L, 0, lp, &cr) < 0;
        if (i >= 0) t[i] = md_realtime() - t0;
    }
    if (bad) {
        cell_failed(s, c);
    } else {
        double med = md_bench_median(t, reps);
        c->ours = B / med;
        set_num(c->extra, "batch_ms_median", med * 1e3), set_num(c->extra, "batch_ms_min", t[0] * 1e3);
    }
    free(tok), free(lp), free(t);
    md_model_free(m);
}

/* The driver's release ("580.159.04"): from the kernel module's /proc file,
 * else from NVML (loaded at run time, so that nothing links against it;
 * sandboxes may lack the /proc file), else "unknown". */
static void driver_version(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *fp = fopen("/proc/driver/nvidia/version", "r");
    if (fp) {
        char line[512];
        int found = fgets(line, sizeof line, fp) && md_bench_driver_from_proc(line, buf, n) == 0;
        fclose(fp);
        if (found) return;
    }
    void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!nvml) return;
    int (*init)(void) = (int (*)(void))dlsym(nvml, "nvmlInit_v2");
    int (*get)(char *, unsigned) = (int (*)(char *, unsigned))dlsym(nvml, "nvmlSystemGetDriverVersion");
    int (*quit)(void) = (int (*)(void))dlsym(nvml, "nvmlShutdown");
    char v[96];
    if (init && get && quit && init() == 0) {   /* 0 is NVML_SUCCESS */
        if (get(v, sizeof v) == 0) snprintf(buf, n, "%s", v);
        quit();
    }
    dlclose(nvml);
}

/* The GPU's description into meta, and the figures the scan floors need. */
static int gpu_setup(suite_t *s, const md_device_t *dev, int want_copy)
{
    struct cudaDeviceProp prop;
    int khz = 0;
    if (cudaSetDevice(dev->ordinal) != cudaSuccess || cudaGetDeviceProperties(&prop, dev->ordinal) != cudaSuccess ||
        cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev->ordinal) != cudaSuccess) {
        md_error("bench all: cannot query GPU %d", dev->ordinal);
        return -1;
    }
    s->sms = prop.multiProcessorCount;
    s->l2_bytes = prop.l2CacheSize;
    s->clock_hz = khz * 1e3;
    char drv[96];
    driver_version(drv, sizeof drv);
    json_t *g = json_object();
    json_object_set_new(g, "name", json_string(prop.name));
    set_num(g, "memory_gib", prop.totalGlobalMem / 1073741824.0);
    set_int(g, "sms", s->sms), set_num(g, "sm_clock_mhz", khz / 1e3);
    set_int(g, "l2_bytes", s->l2_bytes);
    if (want_copy) {
        if (md_bench_copy_bandwidth(&s->copy_gbps) < 0) {
            json_decref(g);
            return -1;
        }
        set_num(g, "copy_gbps", s->copy_gbps);
        md_info("copy bandwidth: %.0f GB/s", s->copy_gbps);
    }
    json_object_set_new(s->rep.meta, "gpu", g);
    json_object_set_new(s->rep.meta, "device", json_string(prop.name));
    json_object_set_new(s->rep.meta, "driver", json_string(drv));
    json_object_set_new(s->rep.meta, "cuda", json_string(md_cuda_version_string()));
    return 0;
}

#endif /* MD_HAVE_CUDA */

/* Issue #3's CPU figure: Mamba 1.4M fwd+bwd at L 1024, B 4 (no optimizer),
 * against 2,000 tokens/s and against half the rate the machine's BLAS allows. */
static void run_cpu(suite_t *s)
{
    const int64_t B = s->quick ? 1 : 4, L = s->quick ? 64 : 1024;
    char name[48];
    snprintf(name, sizeof name, "1.4M L=%lld B=%lld", (long long)L, (long long)B);
    md_bench_cell_t *c = new_cell(s, "cpu", name, "tokens/s", MD_BENCH_HIGHER_BETTER);
    c->ref = 2000;
    c->goal = 1;
    if (over_budget(s, c)) return;
    md_config_t cfg;
    md_config_preset(&cfg, MD_ARCH_MAMBA, "1.4M");
    md_bench_result_t r;
    const int steps = s->quick ? 1 : 5;
    int threads = md_common_apply_threads(s->co);
    json_object_set_new(c->settings, "preset", json_string("1.4M"));
    set_int(c->settings, "B", B), set_int(c->settings, "L", L), set_int(c->settings, "steps", steps);
    set_int(c->settings, "threads", threads);
    if (md_bench_train_cpu(&cfg, B, L, steps, s->co->seed, 0, &r) < 0) {
        cell_failed(s, c);
        return;
    }
    c->ours = r.tokens_per_s_median;
    set_num(c->extra, "tokens_per_s_median", r.tokens_per_s_median);
    set_num(c->extra, "tokens_per_cpu_s", r.tokens_per_cpu_s);
    set_num(c->extra, "sgemm_gflops", r.sgemm_gflops_square);
    set_num(c->extra, "blas_bound_tokens_per_s", r.blas_bound_tokens_per_s);
    snprintf(c->note, sizeof c->note, "reference = issue #3's goal; fwd+bwd, no optimizer; %d threads", threads);
    json_t *set = json_deep_copy(c->settings), *ex = json_deep_copy(c->extra);
    md_bench_cell_t *b = new_cell(s, "cpu", "1.4M vs BLAS bound", "tokens/s", MD_BENCH_HIGHER_BETTER);
    json_object_update(b->settings, set), json_object_update(b->extra, ex);
    json_decref(set), json_decref(ex);
    b->ours = r.tokens_per_s_median;
    b->ref = r.blas_bound_tokens_per_s;
    b->goal = 0.5;
    snprintf(b->note, sizeof b->note, "reference = matrix products at sgemm's %.0f GFLOP/s (same run)",
             r.sgemm_gflops_square);
}

static void utc_now(char *buf, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int md_bench_all_cmd(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"only", required_argument, 0, OPT_ONLY},
                                             {"quick", no_argument, 0, OPT_QUICK},
                                             {"time-budget", required_argument, 0, OPT_BUDGET},
                                             {0, 0, 0, 0}};
    unsigned groups = 0;
    int quick = 0, c;
    double budget = 0;
    const char *only = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS, longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case OPT_ONLY:
            if (parse_groups(optarg, &groups) < 0) return 1;
            only = optarg;
            break;
        case OPT_QUICK: quick = 1; break;
        case OPT_BUDGET: if (md_parse_double("--time-budget", optarg, 0, 1e7, &budget) < 0) return 1; break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) {
                md_report_bad_option("bench all", c, argv[optind - 1]);
                return 1;
            }
        }
        }
    }
    if (optind < argc) {
        md_error("bench all takes no arguments ('%s')", argv[optind]);
        return 1;
    }
    const int on_cpu = !strcmp(co.device, "cpu");
    if (!groups) groups = on_cpu ? 1u << G_CPU : GPU_GROUPS;
    if (on_cpu && (groups & GPU_GROUPS)) {
        int g = __builtin_ctz(groups & GPU_GROUPS);
        md_error("option --only: group '%s' runs on a GPU; with -x cpu only 'cpu' runs", group_names[g]);
        return 1;
    }
    md_device_t dev;
    if (!on_cpu) {
#if MD_HAVE_CUDA
        if (md_cuda_device_count() == 0) {
            md_error("bench all: no GPU is visible (CUDA %s); -x cpu runs the CPU figure only",
                     md_cuda_version_string());
            return 1;
        }
#else
        md_error("bench all: this mambadna was built without CUDA; -x cpu runs the CPU figure only");
        return 1;
#endif
        if (!strcmp(co.device, "auto")) co.device = "cuda";
    }
    if (md_device_resolve(co.device, &dev) < 0) return 1;

    suite_t s;
    memset(&s, 0, sizeof s);
    md_bench_report_init(&s.rep);
    s.co = &co, s.quick = quick, s.budget = budget, s.t0 = md_realtime();
    json_t *meta = s.rep.meta;
    char date[32];
    utc_now(date, sizeof date);
    json_object_set_new(meta, "date", json_string(date));
    json_object_set_new(meta, "git_revision", json_string(MD_GIT_DESCRIBE));
    json_object_set_new(meta, "mambadna", md_provenance_json());   /* version and command line */
    json_object_set_new(meta, "device", json_string(dev.name));
    json_t *opts = json_object();
    json_object_set_new(opts, "only", json_string(only ? only : "default"));
    json_object_set_new(opts, "quick", json_boolean(quick));
    json_object_set_new(opts, "time_budget_s", json_real(budget));
    json_object_set_new(opts, "seed", json_integer((json_int_t)co.seed));
    json_object_set_new(meta, "options", opts);
    json_object_set_new(meta, "quick", json_boolean(quick));

    int ret = 0;
#if MD_HAVE_CUDA
    if (!on_cpu && gpu_setup(&s, &dev, (groups >> G_SCAN) & 1) < 0) ret = -1;
    if (!ret) {
        if (groups & (1u << G_SCAN)) run_scan(&s);
        run_training(&s, groups);
        if (groups & (1u << G_MEMORY)) run_memory(&s);
        if (groups & (1u << G_CLASSIFY)) run_classify(&s);
    }
#endif
    if (!ret && (groups & (1u << G_CPU))) run_cpu(&s);
    if (!ret) {
        set_num(meta, "seconds", md_realtime() - s.t0);
        if (co.json) {
            if (md_bench_report_write(&s.rep, "-") < 0) ret = -1;
        } else {
            md_bench_report_print(&s.rep, stdout);
            fflush(stdout);
        }
        if (!ret && strcmp(co.output, "-") && md_bench_report_write(&s.rep, co.output) < 0) ret = -1;
    }
    if (!ret && s.failed) {
        md_error("bench all: %d cell%s failed (marked in the table and the record)", s.failed,
                 s.failed > 1 ? "s" : "");
        ret = -1;
    }
    md_bench_report_free(&s.rep);
    return ret < 0 ? 1 : 0;
}
