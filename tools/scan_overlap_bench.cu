/* Whether the GPU runs classify's inference scan (bound by the special
 * function unit and instruction issue, NOTES-scan.md) alongside the
 * memory-bound products of the Mamba block, which is what running two
 * half-batches on two streams would need to pay. At classify's shape it
 * times, with CUDA events (medians of REPS after a warm-up):
 *   scan    md_scan_fwd_infer alone (bf16, B x L x 256, N = 16);
 *   gemms   GEMMS bf16 products of in_proj's shape (B L x 512 x 128) alone;
 *   both    the two on two streams of equal priority, launched together;
 *   prio    the same with the products' stream at the highest priority.
 * Overlap shows as both/prio below scan + gemms; max(scan, gemms) is the
 * most it can gain. Then, for each SPLIT given, the SMs are partitioned
 * with green contexts (SPLIT SMs for the scan, the rest for the products)
 * and the same three are timed on the host clock (streams of two contexts
 * share no events): what a spatial split of the GPU between the two
 * would give. The scan's inputs are random (its numerics are
 * tools/scan_infer_bench.cu's business).
 *
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Ikernels \
 *        -o scan_overlap_bench tools/scan_overlap_bench.cu kernels/selective_scan_infer.cu -lcublas -lcuda
 *   scan_overlap_bench [B L GEMMS REPS [SPLIT...]]      (4096 1000 3 5)
 * Prints a line "streams B L gemms scan_ms gemms_ms both_ms prio_ms", then
 * per SPLIT "split SMS_SCAN SMS_REST scan_ms gemms_ms both_ms".
 */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <chrono>

#include <cublas_v2.h>
#include <cuda.h>

#include "selective_scan.cuh"

#define BENCH_NAME "scan_overlap_bench"
#include "bench_common.cuh"
#include "scan_bench_inputs.cuh"

#define CKD(x)                                                                                    \
    do {                                                                                          \
        CUresult r_ = (x);                                                                        \
        if (r_ != CUDA_SUCCESS) {                                                                 \
            const char *m_ = "?";                                                                 \
            cuGetErrorString(r_, &m_);                                                            \
            fprintf(stderr, "[E::%s] %s: %s\n", BENCH_NAME, #x, m_);                               \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

#define CKB(x)                                                                                    \
    do {                                                                                          \
        cublasStatus_t s_ = (x);                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            fprintf(stderr, "[E::%s] %s: cuBLAS status %d\n", BENCH_NAME, #x, (int)s_);            \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

typedef __nv_bfloat16 bf16;

struct Work {
    md_scan_args_t scan;
    cublasHandle_t blas;
    const bf16 *a, *w;
    bf16 *c;
    int64_t M, d, n;
    int gemms;

    void run_scan(cudaStream_t s) const { CK(md_scan_fwd_infer(&scan, s)); }
    void run_gemms(cudaStream_t s) const
    {
        const float one = 1.f, zero = 0.f;
        CKB(cublasSetStream(blas, s));
        /* row-major C (M x n) = A (M x d) W^T (W: n x d), as column-major C^T = W^T' A' */
        for (int g = 0; g < gemms; g++)
            CKB(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)M, (int)d, &one, w, CUDA_R_16BF, (int)d, a,
                             CUDA_R_16BF, (int)d, &zero, c, CUDA_R_16BF, (int)n, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
    }
};

/* median ms of f(s1, s2) between an event on s1 and s1's wait for s2 */
template <typename F>
static float time_ms(cudaStream_t s1, cudaStream_t s2, int reps, F f)
{
    cudaEvent_t e0, e1, j;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaEventCreate(&j));
    std::vector<float> ms;
    for (int i = 0; i < reps + 1; i++) {
        CK(cudaEventRecord(e0, s1));
        CK(cudaStreamWaitEvent(s2, e0, 0));
        f(s1, s2);
        CK(cudaEventRecord(j, s2));
        CK(cudaStreamWaitEvent(s1, j, 0));
        CK(cudaEventRecord(e1, s1));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        if (i > 0) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaEventDestroy(j));
    return ms[ms.size() / 2];
}

/* median ms on the host clock of f(s1, s2), both streams drained */
template <typename F>
static float host_ms(cudaStream_t s1, cudaStream_t s2, int reps, F f)
{
    std::vector<float> ms;
    for (int i = 0; i < reps + 1; i++) {
        CK(cudaStreamSynchronize(s1));
        CK(cudaStreamSynchronize(s2));
        const auto t0 = std::chrono::steady_clock::now();
        f(s1, s2);
        CK(cudaStreamSynchronize(s1));
        CK(cudaStreamSynchronize(s2));
        const std::chrono::duration<float, std::milli> t = std::chrono::steady_clock::now() - t0;
        if (i > 0) ms.push_back(t.count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

/* a green context over res, and a stream in it */
static cudaStream_t green_stream(CUdevice dev, CUdevResource *res)
{
    CUdevResourceDesc desc;
    CUgreenCtx g;
    CUstream s;
    CKD(cuDevResourceGenerateDesc(&desc, res, 1));
    CKD(cuGreenCtxCreate(&g, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    CKD(cuGreenCtxStreamCreate(&s, g, CU_STREAM_NON_BLOCKING, 0));
    return (cudaStream_t)s;
}

int main(int argc, char **argv)
{
    const int64_t B = argc > 1 ? atoll(argv[1]) : 4096, L = argc > 2 ? atoll(argv[2]) : 1000;
    const int gemms = argc > 3 ? atoi(argv[3]) : 3, reps = argc > 4 ? atoi(argv[4]) : 5;
    const int64_t E = 256, N = 16, d = 128, M = B * L;
    ScanBenchInputs<bf16> in = scan_bench_inputs<bf16>(B, L, E, N);
    bf16 *w, *c;
    CK(cudaMalloc(&w, sizeof(bf16) * 2 * E * d));
    CK(cudaMalloc(&c, sizeof(bf16) * M * 2 * E));
    fill<<<64, 256>>>(w, 2 * E * d, 9, -0.1f, 0.1f);
    CK(cudaGetLastError());

    Work k;
    k.scan = in.args;
    CKB(cublasCreate(&k.blas));
    k.a = in.xz, k.w = w, k.c = c, k.M = M, k.d = d, k.n = 2 * E, k.gemms = gemms;   /* A: xz's first M x d */

    int lo, hi;
    CK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    cudaStream_t s1, s2, s2hi;
    CK(cudaStreamCreateWithPriority(&s1, cudaStreamNonBlocking, lo));
    CK(cudaStreamCreateWithPriority(&s2, cudaStreamNonBlocking, lo));
    CK(cudaStreamCreateWithPriority(&s2hi, cudaStreamNonBlocking, hi));

    const float scan = time_ms(s1, s2, reps, [&](cudaStream_t p, cudaStream_t) { k.run_scan(p); });
    const float prods = time_ms(s1, s2, reps, [&](cudaStream_t, cudaStream_t q) { k.run_gemms(q); });
    const float both = time_ms(s1, s2, reps, [&](cudaStream_t p, cudaStream_t q) {
        k.run_scan(p);
        k.run_gemms(q);
    });
    const float prio = time_ms(s1, s2hi, reps, [&](cudaStream_t p, cudaStream_t q) {
        k.run_gemms(q);
        k.run_scan(p);
    });
    printf("streams\t%lld\t%lld\t%d\t%.3f\t%.3f\t%.3f\t%.3f\n", (long long)B, (long long)L, gemms, scan, prods, both,
           prio);
    fflush(stdout);

    CUdevice dev;
    CUdevResource all;
    CKD(cuDeviceGet(&dev, 0));
    CKD(cuDeviceGetDevResource(dev, &all, CU_DEV_RESOURCE_TYPE_SM));
    for (int i = 5; i < argc; i++) {
        CUdevResource part, rest;
        unsigned groups = 1;
        CKD(cuDevSmResourceSplitByCount(&part, &groups, &all, &rest, 0, (unsigned)atoi(argv[i])));
        cudaStream_t sp = green_stream(dev, &part), sr = green_stream(dev, &rest);
        const float gs = host_ms(sp, sr, reps, [&](cudaStream_t p, cudaStream_t) { k.run_scan(p); });
        const float gg = host_ms(sp, sr, reps, [&](cudaStream_t, cudaStream_t q) { k.run_gemms(q); });
        const float gb = host_ms(sp, sr, reps, [&](cudaStream_t p, cudaStream_t q) {
            k.run_gemms(q);
            k.run_scan(p);
        });
        printf("split\t%u\t%u\t%.3f\t%.3f\t%.3f\n", part.sm.smCount, rest.sm.smCount, gs, gg, gb);
        fflush(stdout);
    }
    return 0;
}
