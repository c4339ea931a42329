/* mambadna bench: benchmarks of the GPU kernels (and, later, of training) on
 * this machine.
 *
 *   mambadna bench scan [--shape S1..S5|all|BxDxL] [--dtype f32|bf16|both] [--pass auto|chunked|whole]
 *                     [--states segment|chunk] [--reps N]
 *   mambadna bench train [--preset P] [-L N] [-B N] [--tokens-per-step N]   (bench_train.c)
 *   mambadna bench attention [-L N] [-B N] [--heads N] [--head-dim N]    (bench_attention.c)
 *   mambadna bench all [--only LIST] [--quick] [--time-budget S] [-o FILE]  (bench_suite.c)
 *
 * `bench scan` times the fused selective scan (kernels/scan_api.h) with CUDA
 * events on random inputs, after a warm-up, and reports the medians, the
 * bandwidth over the minimal bytes (every input read once, every output
 * written once) and that bandwidth as a share of the device-to-device copy
 * bandwidth it measures first. The bar is the official Mamba CUDA kernel's
 * fwd+bwd on an H200 (issue 4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/device.h"
#include "cmd/bench_train.h"
#include "cmd/cmd.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "scan_api.h"
#endif

enum { OPT_SHAPE = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_DTYPE, OPT_PASS, OPT_STATES, OPT_REPS };

/* --pass, in md_scan_pass_t's order */
static const char *const pass_names[] = {"auto", "chunked", "whole"};
/* --states: what the forward keeps for the backward (0: chunk, 1: segment) */
static const char *const states_names[] = {"chunk", "segment"};
/* --dtype, in the order of the dtypes bits less one */
static const char *const dtype_names[] = {"bf16", "f32", "both"};

enum { N_SCAN_SHAPES = MD_SCAN_N_SHAPES, SCAN_STATE = MD_SCAN_BENCH_STATE };
/* --shape, besides an index into md_scan_shapes */
enum { SHAPE_ALL = -1, SHAPE_CUSTOM = -2, SHAPE_BAD = -3 };

static void usage_top(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna bench <what> [options]\n\n"
            "Benchmarks on this machine's GPU.\n\n"
            "What:\n"
            "  scan       the fused selective scan, forward and backward, on shapes S1..S5\n"
            "  train      training throughput (tokens/s, peak memory) of a model preset\n"
            "  attention  causal attention forward and backward (ms, TFLOP/s) by length\n"
            "  all        every figure of the performance goals (issue #9) in one table, each\n"
            "             beside its PyTorch reference, with a JSON record (-o FILE)\n"
            "\nRun 'mambadna bench <what> -h' for its options.\n");
}

static void usage_scan(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna bench scan [options]\n\n"
            "Times the fused selective scan (N = 16) with CUDA events: forward, backward\n"
            "(from the states the forward kept) and both, as medians over --reps runs\n"
            "after a warm-up, on random inputs. GB/s counts the minimal bytes (inputs read\n"
            "once, outputs written once); %%copy compares it with a device-to-device copy\n"
            "measured first. 'bar' is the official Mamba kernel's fwd+bwd on an H200.\n\n"
            "Shapes (B, D, L): S1 64x256x1024, S2 8x256x16384, S3 1x256x1048576,\n"
            "S4 4x4096x2048, S5 1x512x1048576.\n\n"
            "Options:\n"
            "      --shape STR     S1..S5, all, or BxDxL (e.g. 16x256x4096: batch, channels,\n"
            "                      length; no bar to compare with) [all]\n"
            "      --dtype STR     f32, bf16 or both [both]\n"
            "      --pass STR      auto, chunked or whole: how a sequence longer than a\n"
            "                      chunk is covered (scan_api.h's md_scan_pass_t) [auto]\n"
            "      --states STR    what the forward keeps for the backward: 'segment', the state\n"
            "                      entering every 8 steps (training keeps these where each\n"
            "                      layer has its own activations), or 'chunk', every 128\n"
            "                      (as under --recompute) [segment]\n"
            "      --reps INT      timed runs per shape [10]\n"
            MD_COMMON_HELP);
}

#if MD_HAVE_CUDA

static int cuda_ok(cudaError_t e, const char *what, const char *file, int line)
{
    if (e == cudaSuccess) return 0;
    md_error("%s:%d: %s: %s", file, line, what, cudaGetErrorString(e));
    return -1;
}
#define CUDA_OK(call) cuda_ok((call), #call, __FILE__, __LINE__)

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

int md_bench_copy_bandwidth(double *gbps)
{
    size_t bytes = (size_t)2 << 30;
    void *src = NULL, *dst = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float t[10];
    int ret = -1;
    if (CUDA_OK(cudaMalloc(&src, bytes)) < 0 || CUDA_OK(cudaMalloc(&dst, bytes)) < 0) goto out;
    if (CUDA_OK(md_scan_fill_uniform(src, MD_SCAN_F32, (int64_t)(bytes / 4), 7, -1.f, 1.f, 0)) < 0) goto out;
    if (CUDA_OK(cudaEventCreate(&e0)) < 0 || CUDA_OK(cudaEventCreate(&e1)) < 0) goto out;
    for (int i = 0; i < 3; i++)
        if (CUDA_OK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice)) < 0) goto out;
    for (int i = 0; i < 10; i++) {
        if (CUDA_OK(cudaEventRecord(e0, 0)) < 0 || CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0)) < 0 ||
            CUDA_OK(cudaEventRecord(e1, 0)) < 0 || CUDA_OK(cudaEventSynchronize(e1)) < 0 ||
            CUDA_OK(cudaEventElapsedTime(&t[i], e0, e1)) < 0)
            goto out;
    }
    *gbps = 2.0 * (double)bytes / (median(t, 10) * 1e-3) / 1e9;
    ret = 0;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    return ret;
}

/* Device buffers of one input set. */
typedef struct {
    void *u, *delta, *z, *Bm, *Cm, *dy;
} scan_inputs_t;

int md_bench_scan_measure(const md_scan_shape_t *sh, int bf16, int pass, int seg_states, int reps, uint64_t seed,
                          int64_t l2_bytes, md_scan_bench_result_t *res)
{
    const md_scan_dtype_t dt = bf16 ? MD_SCAN_BF16 : MD_SCAN_F32;
    const int64_t B = sh->B, E = sh->D, L = sh->L, N = SCAN_STATE, M = B * L;
    const size_t es = dt == MD_SCAN_BF16 ? 2 : 4;
    const size_t seq = (size_t)M * E * es, bc = (size_t)M * N * es;
    /* inputs that fit in the L2 several times over would be timed from the cache: rotate sets */
    const size_t set_bytes = 4 * seq + 2 * bc;
    int sets = set_bytes >= (size_t)(3 * l2_bytes) ? 1 : (int)((3 * l2_bytes) / set_bytes) + 1;
    if (sets > 8) sets = 8;
    scan_inputs_t in[8];
    memset(in, 0, sizeof in);
    void *y = NULL, *du = NULL, *ddelta = NULL, *dz = NULL, *dBm = NULL, *dCm = NULL, *ws = NULL;
    float *A_log = NULL, *D = NULL, *dt_bias = NULL, *dA = NULL, *dD = NULL, *ddb = NULL, *states = NULL, *seg = NULL;
    cudaEvent_t ev[3] = {NULL, NULL, NULL};
    float *tf = md_malloc(sizeof(float) * reps), *tb = md_malloc(sizeof(float) * reps),
          *ta = md_malloc(sizeof(float) * reps);
    size_t ws_bytes = md_scan_bwd_workspace(B, L, E, N), st_bytes = md_scan_states_bytes(B, L, E, N);
    size_t seg_bytes = seg_states ? md_scan_seg_states_bytes(B, L, E, N) : 0;
    int ret = -1;

    for (int s = 0; s < sets; s++) {
        void **p[6] = {&in[s].u, &in[s].delta, &in[s].z, &in[s].Bm, &in[s].Cm, &in[s].dy};
        size_t sz[6] = {seq, seq, seq, bc, bc, seq};
        float lo[6] = {-1.f, -1.f, -2.f, -1.f, -1.f, -1.f}, hi[6] = {1.f, 1.f, 2.f, 1.f, 1.f, 1.f};
        for (int k = 0; k < 6; k++) {
            if (CUDA_OK(cudaMalloc(p[k], sz[k])) < 0) goto out;
            if (CUDA_OK(md_scan_fill_uniform(*p[k], dt, (int64_t)(sz[k] / es), seed + 100 * s + k, lo[k], hi[k], 0)) < 0)
                goto out;
        }
    }
    void **outs[6] = {&y, &du, &ddelta, &dz, &dBm, &dCm};
    size_t osz[6] = {seq, seq, seq, seq, bc, bc};
    for (int k = 0; k < 6; k++)
        if (CUDA_OK(cudaMalloc(outs[k], osz[k])) < 0) goto out;
    float **par[6] = {&A_log, &D, &dt_bias, &dA, &dD, &ddb};
    size_t psz[6] = {E * N, E, E, E * N, E, E};
    for (int k = 0; k < 6; k++)
        if (CUDA_OK(cudaMalloc((void **)par[k], psz[k] * sizeof(float))) < 0) goto out;
    /* A_log near log(1..16) (S4D-real); dt_bias so that dt = softplus(delta + bias) is about 0.005..0.3 */
    if (CUDA_OK(md_scan_fill_uniform(A_log, MD_SCAN_F32, E * N, seed + 1, 0.f, 2.77f, 0)) < 0 ||
        CUDA_OK(md_scan_fill_uniform(D, MD_SCAN_F32, E, seed + 2, 0.5f, 1.5f, 0)) < 0 ||
        CUDA_OK(md_scan_fill_uniform(dt_bias, MD_SCAN_F32, E, seed + 3, -4.f, -2.f, 0)) < 0 ||
        CUDA_OK(cudaMemset(dA, 0, E * N * sizeof(float))) < 0 || CUDA_OK(cudaMemset(dD, 0, E * sizeof(float))) < 0 ||
        CUDA_OK(cudaMemset(ddb, 0, E * sizeof(float))) < 0)
        goto out;
    if (ws_bytes && CUDA_OK(cudaMalloc(&ws, ws_bytes)) < 0) goto out;
    if (st_bytes && CUDA_OK(cudaMalloc((void **)&states, st_bytes)) < 0) goto out;
    if (seg_bytes && CUDA_OK(cudaMalloc((void **)&seg, seg_bytes)) < 0) goto out;
    for (int k = 0; k < 3; k++)
        if (CUDA_OK(cudaEventCreate(&ev[k])) < 0) goto out;

    md_scan_args_t a;
    memset(&a, 0, sizeof a);
    a.dtype = dt;
    a.pass = (md_scan_pass_t)pass;
    a.batch = B, a.len = L, a.d_inner = E, a.d_state = N;
    a.ld_u = a.ld_delta = a.ld_z = a.ld_y = a.ld_dy = a.ld_du = a.ld_ddelta = a.ld_dz = E;
    a.ld_B = a.ld_C = a.ld_dB = a.ld_dC = N;
    a.A_log = A_log, a.D = D, a.dt_bias = dt_bias;
    a.y = y, a.du = du, a.ddelta = ddelta, a.dz = dz, a.dBm = dBm, a.dCm = dCm;
    a.dA_log = dA, a.dD = dD, a.ddt_bias = ddb;
    a.states = states;
    a.seg_states = seg;
    a.workspace = ws, a.workspace_bytes = ws_bytes;

    for (int r = -2; r < reps; r++) {   /* two warm-up runs */
        const scan_inputs_t *s = &in[(r + 2) % sets];
        a.u = s->u, a.delta = s->delta, a.z = s->z, a.Bm = s->Bm, a.Cm = s->Cm, a.dy = s->dy;
        if (CUDA_OK(cudaEventRecord(ev[0], 0)) < 0 || CUDA_OK(md_scan_fwd(&a, 0)) < 0 ||
            CUDA_OK(cudaEventRecord(ev[1], 0)) < 0 || CUDA_OK(md_scan_bwd(&a, 0)) < 0 ||
            CUDA_OK(cudaEventRecord(ev[2], 0)) < 0 || CUDA_OK(cudaEventSynchronize(ev[2])) < 0)
            goto out;
        if (r < 0) continue;
        if (CUDA_OK(cudaEventElapsedTime(&tf[r], ev[0], ev[1])) < 0 ||
            CUDA_OK(cudaEventElapsedTime(&tb[r], ev[1], ev[2])) < 0 ||
            CUDA_OK(cudaEventElapsedTime(&ta[r], ev[0], ev[2])) < 0)
            goto out;
    }
    if (CUDA_OK(cudaDeviceSynchronize()) < 0) goto out;
    res->fwd_ms = median(tf, reps);
    res->bwd_ms = median(tb, reps);
    res->all_ms = median(ta, reps);
    res->bytes_fwd = (double)es * (4.0 * M * E + 2.0 * M * N);
    res->bytes_bwd = (double)es * (7.0 * M * E + 4.0 * M * N);
    res->sets = sets;
    ret = 0;
out:
    for (int k = 0; k < 3; k++)
        if (ev[k]) cudaEventDestroy(ev[k]);
    for (int s = 0; s < 8; s++) {
        cudaFree(in[s].u), cudaFree(in[s].delta), cudaFree(in[s].z);
        cudaFree(in[s].Bm), cudaFree(in[s].Cm), cudaFree(in[s].dy);
    }
    cudaFree(y), cudaFree(du), cudaFree(ddelta), cudaFree(dz), cudaFree(dBm), cudaFree(dCm);
    cudaFree(A_log), cudaFree(D), cudaFree(dt_bias), cudaFree(dA), cudaFree(dD), cudaFree(ddb);
    cudaFree(ws), cudaFree(states), cudaFree(seg);
    free(tf), free(tb), free(ta);
    return ret;
}

/* shape: an index into md_scan_shapes, SHAPE_ALL, or SHAPE_CUSTOM (the sizes in custom). */
static int bench_scan_run(const md_common_opts_t *co, int shape, const md_scan_shape_t *custom, int dtypes, int pass,
                          int seg_states, int reps)
{
    md_device_t dev;
    const char *spec = strcmp(co->device, "auto") ? co->device : "cuda";
    if (!strcmp(spec, "cpu")) {
        md_error("option -x/--device: bench scan runs on a GPU, not 'cpu'");
        return -1;
    }
    if (md_device_resolve(spec, &dev) < 0) return -1;
    if (CUDA_OK(cudaSetDevice(dev.ordinal)) < 0) return -1;
    int l2 = 0;
    if (CUDA_OK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev.ordinal)) < 0) return -1;
    md_info("GPU: %s", dev.name);

    double copy_gbps;
    if (md_bench_copy_bandwidth(&copy_gbps) < 0) return -1;
    md_info("copy bandwidth: %.0f GB/s (device-to-device cudaMemcpy of 2 GiB, read + write)", copy_gbps);

    md_outfile_t *of = md_outfile_open(co->output);
    if (!of) return -1;
    FILE *fp = of->fp;
    if (!co->json) {
        md_provenance_comment(fp, "#");
        fprintf(fp, "# %s; copy bandwidth %.0f GB/s; N = %d; pass %s; states %s; medians of %d runs\n", dev.name,
                copy_gbps, SCAN_STATE, pass_names[pass], states_names[seg_states], reps);
        fprintf(fp, "#shape\tB\tD\tL\tdtype\tfwd_ms\tbwd_ms\tfwdbwd_ms\tGB/s\t%%copy\tbar_ms\tbar/ours\n");
    }
    int ret = 0;
    const md_scan_shape_t *shapes = shape == SHAPE_CUSTOM ? custom : md_scan_shapes;
    const int n_shapes = shape == SHAPE_CUSTOM ? 1 : N_SCAN_SHAPES;
    for (int i = 0; i < n_shapes && !ret; i++) {
        if (shape >= 0 && shape != i) continue;
        for (int d = 0; d < 2 && !ret; d++) {
            if (!(dtypes & (1 << d))) continue;
            const md_scan_shape_t *sh = &shapes[i];
            md_scan_bench_result_t r;
            memset(&r, 0, sizeof r);
            const uint64_t seed = co->seed * 1000003u + (uint64_t)i * 17u + (uint64_t)d;
            if (md_bench_scan_measure(sh, d == 0, pass, seg_states, reps, seed, l2, &r) < 0) {
                ret = -1;
                break;
            }
            const double gbps = (r.bytes_fwd + r.bytes_bwd) / (r.all_ms * 1e-3) / 1e9;
            const double bar = d == 0 ? sh->official_bf16_ms : sh->official_f32_ms;
            const char *dn = d == 0 ? "bf16" : "f32";
            if (co->json)
                fprintf(fp,
                        "{\"shape\": \"%s\", \"B\": %lld, \"D\": %lld, \"L\": %lld, \"N\": %d, \"dtype\": \"%s\", "
                        "\"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"fwdbwd_ms\": %.4f, \"min_bytes\": %.0f, "
                        "\"gbps\": %.1f, \"copy_gbps\": %.1f, \"bar_ms\": %.3f, \"input_sets\": %d, "
                        "\"states\": \"%s\"}\n",
                        sh->name, (long long)sh->B, (long long)sh->D, (long long)sh->L, SCAN_STATE, dn, r.fwd_ms,
                        r.bwd_ms, r.all_ms, r.bytes_fwd + r.bytes_bwd, gbps, copy_gbps, bar, r.sets,
                        states_names[seg_states]);
            else {
                char bar_s[32] = "-", ratio_s[32] = "-";   /* a custom shape has no bar */
                if (bar > 0) {
                    snprintf(bar_s, sizeof bar_s, "%.3f", bar);
                    snprintf(ratio_s, sizeof ratio_s, "%.2fx", bar / r.all_ms);
                }
                fprintf(fp, "%s\t%lld\t%lld\t%lld\t%s\t%.3f\t%.3f\t%.3f\t%.0f\t%.1f\t%s\t%s\n", sh->name,
                        (long long)sh->B, (long long)sh->D, (long long)sh->L, dn, r.fwd_ms, r.bwd_ms, r.all_ms, gbps,
                        100.0 * gbps / copy_gbps, bar_s, ratio_s);
            }
            fflush(fp);
        }
    }
    if (ret < 0) {
        md_outfile_abort(of);
        return -1;
    }
    return md_outfile_commit(of);
}

#else

int md_bench_scan_measure(const md_scan_shape_t *sh, int bf16, int pass, int seg_states, int reps, uint64_t seed,
                          int64_t l2_bytes, md_scan_bench_result_t *res)
{
    md_error("bench scan: this mambadna was built without CUDA");
    return -1;
}

int md_bench_copy_bandwidth(double *gbps)
{
    md_error("bench: this mambadna was built without CUDA");
    return -1;
}

#endif /* MD_HAVE_CUDA */

/* "BxDxL" (e.g. 16x256x4096) into sh's sizes; -1 unless it is exactly that,
 * each >= 1 and B*D*L <= 2^30 (S5 is 2^29). */
static int parse_scan_shape(const char *s, md_scan_shape_t *sh)
{
    long long B, D, L;
    int end = 0;
    if (sscanf(s, "%lldx%lldx%lld%n", &B, &D, &L, &end) != 3 || s[end] || B < 1 || D < 1 || L < 1) return -1;
    const long long cap = 1ll << 30;
    if (B > cap || D > cap || L > cap || B * D > cap || B * D * L > cap) return -1;
    sh->B = B, sh->D = D, sh->L = L;
    return 0;
}

static int bench_scan(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"shape", required_argument, 0, OPT_SHAPE},
                                             {"dtype", required_argument, 0, OPT_DTYPE},
                                             {"pass", required_argument, 0, OPT_PASS},
                                             {"states", required_argument, 0, OPT_STATES},
                                             {"reps", required_argument, 0, OPT_REPS},
                                             {0, 0, 0, 0}};
    int shape = SHAPE_ALL, dtypes = 3, pass = 0, seg_states = 1, c;
    md_scan_shape_t custom = {"custom", 0, 0, 0, 0.0, 0.0};
    int64_t reps = 10;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS, longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage_scan(stdout); return 0;
        case OPT_SHAPE:
            if (!strcmp(optarg, "all")) {
                shape = SHAPE_ALL;
                break;
            }
            shape = SHAPE_BAD;
            for (int i = 0; i < N_SCAN_SHAPES; i++)
                if (!strcasecmp(optarg, md_scan_shapes[i].name)) shape = i;
            if (shape == SHAPE_BAD && parse_scan_shape(optarg, &custom) == 0) shape = SHAPE_CUSTOM;
            if (shape == SHAPE_BAD) {
                md_error("option --shape: '%s' is not one of S1, S2, S3, S4, S5, all, or BxDxL with each >= 1 "
                         "and B*D*L <= 2^30",
                         optarg);
                return 1;
            }
            break;
        case OPT_DTYPE:   /* dtypes: a bit each, 1 bf16, 2 f32 */
            if ((dtypes = md_parse_choice("--dtype", optarg, dtype_names, 3) + 1) == 0) return 1;
            break;
        case OPT_PASS:
            if ((pass = md_parse_choice("--pass", optarg, pass_names, 3)) < 0) return 1;
            break;
        case OPT_STATES:
            if ((seg_states = md_parse_choice("--states", optarg, states_names, 2)) < 0) return 1;
            break;
        case OPT_REPS:
            if (md_parse_i64("--reps", optarg, 1, 100000, 0, &reps) < 0) return 1;
            break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) {
                md_report_bad_option("bench scan", c, argv[optind - 1]);
                return 1;
            }
        }
        }
    }
    if (optind < argc) {
        md_error("bench scan takes no arguments ('%s')", argv[optind]);
        return 1;
    }
#if MD_HAVE_CUDA
    if (md_cuda_device_count() == 0) {
        md_error("bench scan: no GPU is visible (CUDA %s)", md_cuda_version_string());
        return 1;
    }
    return bench_scan_run(&co, shape, &custom, dtypes, pass, seg_states, (int)reps) < 0 ? 1 : 0;
#else
    (void)shape, (void)custom, (void)dtypes, (void)pass, (void)seg_states, (void)reps;
    md_error("bench scan: this mambadna was built without CUDA");
    return 1;
#endif
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
} bench_sub_t;

static const bench_sub_t bench_subs[] = {
    {"scan", bench_scan},
    {"train", md_bench_train_cmd},
    {"attention", md_bench_attention_cmd},
    {"all", md_bench_all_cmd},
};

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage_top(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof bench_subs / sizeof bench_subs[0]; i++)
        if (!strcmp(argv[1], bench_subs[i].name)) return bench_subs[i].run(argc - 1, argv + 1);
    md_error("bench: unknown benchmark '%s'; one of: scan, train, attention, all", argv[1]);
    return 1;
}
