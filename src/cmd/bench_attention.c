/* mambadna bench attention: the CUDA backend's causal attention (the
 * attention_fwd / attention_bwd ops the Transformer trains with) on random
 * inputs, timed with CUDA events after a warm-up.
 *
 * q, k, v are column slices of one (B*L, 3 H dh) matrix and dq, dk, dv of
 * another, as in the model. TFLOP/s counts the causal products the way
 * FlashAttention's benchmarks do: forward 4 B H dh L^2 / 2 (Q K^T and P V
 * over the lower triangle), backward 2.5 times that (five products); the
 * kernels' recomputation is not counted. Two input sets alternate, each
 * larger than the L2 at the default sizes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "cmd/bench_train.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "scan_api.h"
#endif

enum { OPT_HEADS = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_HEAD_DIM, OPT_PRECISION, OPT_REPS, OPT_TOKENS };

static const int64_t default_lens[] = {1024, 2048, 4096, 8192, 16384, 32768};
enum { N_LENS = sizeof default_lens / sizeof default_lens[0] };

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna bench attention [options]\n\n"
            "Times the GPU's causal attention, forward and backward, with CUDA events\n"
            "(medians after a warm-up) on random inputs, and prints TFLOP/s over the\n"
            "causal FLOPs (forward 2 B H dh L^2, backward 2.5 times that).\n\n"
            "Options:\n"
            "  -L, --seq-len INT     one sequence length [1024 2048 4096 8192 16384 32768]\n"
            "  -B, --batch INT       sequences [--tokens / L, at least 1]\n"
            "      --tokens INT      tokens per run when -B is not given [131072]\n"
            "      --heads INT       heads [4]\n"
            "      --head-dim INT    head dim, even, <= 256 [64]\n"
            "      --precision STR   bf16 (tensor cores where the head dim allows) or fp32 [bf16]\n"
            "      --reps INT        timed runs per length [20]\n"
            MD_COMMON_HELP);
}

#if MD_HAVE_CUDA

typedef struct {
    int64_t B, L, H, hd;
    float fwd_ms, bwd_ms;
} attn_result_t;

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cuda_ok(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    md_error("bench attention: %s: %s", what, cudaGetErrorString(e));
    return -1;
}

static md_tensor_t view(float *base, int64_t rows, int64_t cols, int64_t ld)
{
    md_tensor_t t = md_tensor_2d(base, MD_DTYPE_F32, MD_DEVICE_CUDA, rows, cols);
    t.ld = ld;
    return t;
}

/* One length: fwd and bwd medians over reps runs after two warm-ups. */
static int bench_len(const md_backend_t *be, attn_result_t *r, int reps, uint64_t seed)
{
    int64_t M = r->B * r->L, W = r->H * r->hd;
    double scale = 1.0 / sqrt((double)r->hd);
    enum { SETS = 2 };
    float *qkv[SETS] = {0}, *dout[SETS] = {0}, *o = NULL, *lse = NULL, *dqkv = NULL;
    void *ws = NULL;
    size_t ws_bytes = be->attention_workspace(be, MD_DTYPE_F32, r->B, r->L, r->H, r->hd);
    float *tf = calloc((size_t)reps, sizeof *tf), *tb = calloc((size_t)reps, sizeof *tb);
    cudaEvent_t ev[3] = {0};
    int ret = -1;
    for (int s = 0; s < SETS; s++) {
        if (cuda_ok(cudaMalloc((void **)&qkv[s], (size_t)(M * 3 * W) * sizeof(float)), "inputs") < 0 ||
            cuda_ok(cudaMalloc((void **)&dout[s], (size_t)(M * W) * sizeof(float)), "inputs") < 0 ||
            cuda_ok(md_scan_fill_uniform(qkv[s], MD_SCAN_F32, M * 3 * W, seed + 2 * s, -1.f, 1.f, 0), "fill") < 0 ||
            cuda_ok(md_scan_fill_uniform(dout[s], MD_SCAN_F32, M * W, seed + 2 * s + 1, -1.f, 1.f, 0), "fill") < 0)
            goto out;
    }
    if (cuda_ok(cudaMalloc((void **)&o, (size_t)(M * W) * sizeof(float)), "outputs") < 0 ||
        cuda_ok(cudaMalloc((void **)&lse, (size_t)(M * r->H) * sizeof(float)), "outputs") < 0 ||
        cuda_ok(cudaMalloc((void **)&dqkv, (size_t)(M * 3 * W) * sizeof(float)), "outputs") < 0 ||
        cuda_ok(cudaMalloc(&ws, ws_bytes ? ws_bytes : 1), "workspace") < 0)
        goto out;
    for (int k = 0; k < 3; k++)
        if (cuda_ok(cudaEventCreate(&ev[k]), "events") < 0) goto out;
    md_tensor_t od = view(o, M, W, W), ld = view(lse, r->B * r->H, r->L, r->L);
    md_tensor_t dq = view(dqkv, M, W, 3 * W), dk = view(dqkv + W, M, W, 3 * W), dv = view(dqkv + 2 * W, M, W, 3 * W);
    for (int i = -2; i < reps; i++) {
        int s = (i + 2) % SETS;
        md_tensor_t q = view(qkv[s], M, W, 3 * W), k = view(qkv[s] + W, M, W, 3 * W);
        md_tensor_t v = view(qkv[s] + 2 * W, M, W, 3 * W), dd = view(dout[s], M, W, W);
        if (cuda_ok(cudaEventRecord(ev[0], 0), "event") < 0) goto out;
        be->attention_fwd(be, &od, &ld, &q, &k, &v, r->B, r->H, scale, ws);
        if (cuda_ok(cudaEventRecord(ev[1], 0), "event") < 0) goto out;
        be->attention_bwd(be, &dq, &dk, &dv, &dd, &q, &k, &v, &od, &ld, r->B, r->H, scale, ws);
        if (cuda_ok(cudaEventRecord(ev[2], 0), "event") < 0 || cuda_ok(cudaEventSynchronize(ev[2]), "run") < 0)
            goto out;
        if (i < 0) continue;
        if (cuda_ok(cudaEventElapsedTime(&tf[i], ev[0], ev[1]), "timing") < 0 ||
            cuda_ok(cudaEventElapsedTime(&tb[i], ev[1], ev[2]), "timing") < 0)
            goto out;
    }
    qsort(tf, (size_t)reps, sizeof *tf, cmp_float);
    qsort(tb, (size_t)reps, sizeof *tb, cmp_float);
    r->fwd_ms = tf[reps / 2];
    r->bwd_ms = tb[reps / 2];
    ret = 0;
out:
    for (int k = 0; k < 3; k++)
        if (ev[k]) cudaEventDestroy(ev[k]);
    for (int s = 0; s < SETS; s++) cudaFree(qkv[s]), cudaFree(dout[s]);
    cudaFree(o), cudaFree(lse), cudaFree(dqkv), cudaFree(ws);
    free(tf), free(tb);
    return ret;
}

static int bench_attention_run(const md_common_opts_t *co, int64_t L1, int64_t B1, int64_t tokens, int64_t H,
                               int64_t hd, md_precision_t prec, int reps)
{
    md_device_t dev;
    const char *spec = strcmp(co->device, "auto") ? co->device : "cuda";
    if (!strcmp(spec, "cpu")) {
        md_error("option -x/--device: bench attention runs on a GPU, not 'cpu'");
        return -1;
    }
    if (md_device_resolve(spec, &dev) < 0) return -1;
    const md_backend_t *be = md_backend_cuda_ex(dev.ordinal, prec);
    if (!be) return -1;
    md_info("GPU: %s; %s attention, %lld heads of %lld", dev.name, md_precision_name(prec), (long long)H,
            (long long)hd);
    md_outfile_t *of = md_outfile_open(co->output);
    if (!of) return -1;
    FILE *fp = of->fp;
    if (!co->json) {
        fprintf(fp, "# %s; %s; causal; medians of %d runs\n", dev.name, md_precision_name(prec), reps);
        fprintf(fp, "#L\tB\tH\tdh\tfwd_ms\tbwd_ms\tfwd_TFLOP/s\tbwd_TFLOP/s\tfwdbwd_TFLOP/s\n");
    }
    int ret = 0;
    for (int i = 0; i < N_LENS && !ret; i++) {
        int64_t L = L1 ? L1 : default_lens[i];
        if (L1 && i) break;
        attn_result_t r = {B1 ? B1 : (tokens / L > 1 ? tokens / L : 1), L, H, hd, 0, 0};
        if (bench_len(be, &r, reps, co->seed * 1000003u + (uint64_t)L) < 0) {
            ret = -1;
            break;
        }
        double fl_f = 2.0 * r.B * r.H * r.hd * (double)L * L, fl_b = 2.5 * fl_f;
        double tf_f = fl_f / (r.fwd_ms * 1e-3) / 1e12, tf_b = fl_b / (r.bwd_ms * 1e-3) / 1e12;
        double tf_a = (fl_f + fl_b) / ((r.fwd_ms + r.bwd_ms) * 1e-3) / 1e12;
        if (co->json)
            fprintf(fp,
                    "{\"L\": %lld, \"B\": %lld, \"H\": %lld, \"head_dim\": %lld, \"precision\": \"%s\", "
                    "\"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"fwd_tflops\": %.2f, \"bwd_tflops\": %.2f, "
                    "\"fwdbwd_tflops\": %.2f}\n",
                    (long long)L, (long long)r.B, (long long)H, (long long)hd, md_precision_name(prec), r.fwd_ms,
                    r.bwd_ms, tf_f, tf_b, tf_a);
        else
            fprintf(fp, "%lld\t%lld\t%lld\t%lld\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\n", (long long)L, (long long)r.B,
                    (long long)H, (long long)hd, r.fwd_ms, r.bwd_ms, tf_f, tf_b, tf_a);
        fflush(fp);
    }
    if (ret < 0) {
        md_outfile_abort(of);
        return -1;
    }
    return md_outfile_commit(of);
}

#endif /* MD_HAVE_CUDA */

int md_bench_attention_cmd(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"seq-len", required_argument, 0, 'L'},
                                             {"batch", required_argument, 0, 'B'},
                                             {"tokens", required_argument, 0, OPT_TOKENS},
                                             {"heads", required_argument, 0, OPT_HEADS},
                                             {"head-dim", required_argument, 0, OPT_HEAD_DIM},
                                             {"precision", required_argument, 0, OPT_PRECISION},
                                             {"reps", required_argument, 0, OPT_REPS},
                                             {0, 0, 0, 0}};
    int64_t L = 0, B = 0, tokens = 131072, H = 4, hd = 64, reps = 20;
    md_precision_t prec = MD_PRECISION_BF16;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "L:B:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'L': if (md_parse_i64("-L/--seq-len", optarg, 1, (int64_t)1 << 22, 0, &L) < 0) return 1; break;
        case 'B': if (md_parse_i64("-B/--batch", optarg, 1, 1 << 16, 0, &B) < 0) return 1; break;
        case OPT_TOKENS: if (md_parse_i64("--tokens", optarg, 1, (int64_t)1 << 26, 0, &tokens) < 0) return 1; break;
        case OPT_HEADS: if (md_parse_i64("--heads", optarg, 1, 1024, 0, &H) < 0) return 1; break;
        case OPT_HEAD_DIM: if (md_parse_i64("--head-dim", optarg, 2, 256, 0, &hd) < 0) return 1; break;
        case OPT_PRECISION: if (md_precision_parse("--precision", optarg, &prec) < 0) return 1; break;
        case OPT_REPS: if (md_parse_i64("--reps", optarg, 1, 100000, 0, &reps) < 0) return 1; break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) {
                md_report_bad_option("bench attention", c, argv[optind - 1]);
                return 1;
            }
        }
        }
    }
    if (optind < argc) {
        md_error("bench attention takes no arguments ('%s')", argv[optind]);
        return 1;
    }
    if (hd % 2) {
        md_error("option --head-dim %lld: must be even (RoPE pairs)", (long long)hd);
        return 1;
    }
#if MD_HAVE_CUDA
    if (md_cuda_device_count() == 0) {
        md_error("bench attention: no GPU is visible (CUDA %s)", md_cuda_version_string());
        return 1;
    }
    return bench_attention_run(&co, L, B, tokens, H, hd, prec, (int)reps) < 0 ? 1 : 0;
#else
    (void)L, (void)B, (void)tokens, (void)H, (void)hd, (void)prec, (void)reps;
    md_error("bench attention: this mambadna was built without CUDA");
    return 1;
#endif
}
