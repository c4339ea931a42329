/* conv1d + SiLU (kernels/conv1d.cu, width 4) alone, forward and backward,
 * with the Mamba block's strides: x a column slice of xz (ld 2E), y, dy,
 * dx contiguous, w (E, 4), bias (E), the CUDA backend's 32 MiB scratch.
 * Times mdk_conv1d_silu_fwd / _bwd (the _bf16 entries for bf16) with CUDA
 * events, median of REPS after 2 warm-ups, and prints checksums of one
 * forward and one backward from zeroed dw, dbias, so that variants built
 * from the same inputs can be compared with each other (the unit tests
 * compare every path against the CPU).
 *
 * Built once per variant (kernels/conv1d.cu's -D switches: MD_CONV_STAGED,
 * MD_CONV_FWD_TILE_ROWS, MD_CONV_BWD_TILE_ROWS, MD_CONV_BWD_MIN_BLOCKS; or
 * another copy of the kernel, e.g. `git show REV:kernels/conv1d.cu`), not
 * by CMake:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Ikernels [-D...] \
 *       -o NAME tools/conv1d_bench.cu kernels/conv1d.cu kernels/elementwise.cu
 * then on the GPU machine:
 *   VARIANT=NAME NAME [bf16|f32] [B L E REPS]      (bf16 8 16384 256 20)
 * Prints one line: variant dtype B L E fwd_us fwd_GB/s bwd_us bwd_GB/s
 * sum(y) sum(dx) sum(dw) sum(dbias) (GB/s: the bytes the op must move,
 * x and y; x, dy and dx).
 */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend_kernels.h"
#include "storage.cuh"

#define BENCH_NAME "conv1d_bench"
#include "bench_common.cuh"

static cudaError_t fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, const float *b, int64_t B,
                       int64_t L, int64_t E)
{
    return mdk_conv1d_silu_fwd(y, ldy, x, ldx, w, b, B, L, E, 4, 0);
}
static cudaError_t fwd(__nv_bfloat16 *y, int64_t ldy, const __nv_bfloat16 *x, int64_t ldx, const float *w,
                       const float *b, int64_t B, int64_t L, int64_t E)
{
    return mdk_conv1d_silu_fwd_bf16(y, ldy, x, ldx, w, b, B, L, E, 4, 0);
}
static cudaError_t bwd(float *dx, float *dw, float *db, const float *dy, const float *x, int64_t ldx, const float *w,
                       const float *b, int64_t B, int64_t L, int64_t E, float *scratch, size_t nscratch)
{
    return mdk_conv1d_silu_bwd(dx, E, dw, db, dy, E, x, ldx, w, b, B, L, E, 4, scratch, nscratch, 0);
}
static cudaError_t bwd(__nv_bfloat16 *dx, float *dw, float *db, const __nv_bfloat16 *dy, const __nv_bfloat16 *x,
                       int64_t ldx, const float *w, const float *b, int64_t B, int64_t L, int64_t E, float *scratch,
                       size_t nscratch)
{
    return mdk_conv1d_silu_bwd_bf16(dx, E, dw, db, dy, E, x, ldx, w, b, B, L, E, 4, scratch, nscratch, 0);
}

template <typename F>
static double median_us(int reps, F &&call)
{
    const std::vector<float> ms = event_times_ms(reps, call);
    return 1e3 * ms[ms.size() / 2];
}

template <typename T>
static void run(const char *dtype, int64_t B, int64_t L, int64_t E, int reps)
{
    const int64_t M = B * L;
    const size_t nscratch = ((size_t)32 << 20) / sizeof(float);
    T *xz, *y, *dy, *dx;
    float *w, *bias, *dw, *db, *scratch;
    double *dsum;
    CK(cudaMalloc(&xz, sizeof(T) * M * 2 * E));
    CK(cudaMalloc(&y, sizeof(T) * M * E));
    CK(cudaMalloc(&dy, sizeof(T) * M * E));
    CK(cudaMalloc(&dx, sizeof(T) * M * E));
    CK(cudaMalloc(&w, sizeof(float) * E * 4));
    CK(cudaMalloc(&bias, sizeof(float) * E));
    CK(cudaMalloc(&dw, sizeof(float) * E * 4));
    CK(cudaMalloc(&db, sizeof(float) * E));
    CK(cudaMalloc(&scratch, sizeof(float) * nscratch));
    CK(cudaMalloc(&dsum, sizeof(double)));
    fill<<<1024, 256>>>(xz, M * 2 * E, 1, -2.f, 2.f);
    fill<<<1024, 256>>>(dy, M * E, 2, -1.f, 1.f);
    fill<<<64, 256>>>(w, E * 4, 3, -0.5f, 0.5f);
    fill<<<64, 256>>>(bias, E, 4, -0.5f, 0.5f);
    CK(cudaMemset(dw, 0, sizeof(float) * E * 4));
    CK(cudaMemset(db, 0, sizeof(float) * E));
    CK(fwd(y, E, xz, 2 * E, w, bias, B, L, E));
    CK(bwd(dx, dw, db, dy, xz, 2 * E, w, bias, B, L, E, scratch, nscratch));
    CK(cudaDeviceSynchronize());
    const double sy = sum_of(y, E, M, E, dsum), sdx = sum_of(dx, E, M, E, dsum), sdw = sum_of(dw, 4, E, 4, dsum),
                 sdb = sum_of(db, E, 1, E, dsum);
    const double tf = median_us(reps, [&] { return fwd(y, E, xz, 2 * E, w, bias, B, L, E); });
    const double tb = median_us(reps, [&] { return bwd(dx, dw, db, dy, xz, 2 * E, w, bias, B, L, E, scratch, nscratch); });
    const double el = (double)M * E * sizeof(T);
    const char *variant = getenv("VARIANT");
    printf("%s %s %lld %lld %lld fwd %.1f us %.0f GB/s bwd %.1f us %.0f GB/s sums %.6e %.6e %.6e %.6e\n",
           variant ? variant : "-", dtype, (long long)B, (long long)L, (long long)E, tf, 2 * el / tf * 1e-3, tb,
           3 * el / tb * 1e-3, sy, sdx, sdw, sdb);
    cudaFree(xz), cudaFree(y), cudaFree(dy), cudaFree(dx), cudaFree(w), cudaFree(bias), cudaFree(dw), cudaFree(db);
    cudaFree(scratch), cudaFree(dsum);
}

int main(int argc, char **argv)
{
    const char *dtype = argc > 1 ? argv[1] : "bf16";
    const int64_t B = argc > 2 ? atoll(argv[2]) : 8, L = argc > 3 ? atoll(argv[3]) : 16384,
                  E = argc > 4 ? atoll(argv[4]) : 256;
    const int reps = argc > 5 ? atoi(argv[5]) : 20;
    if (B < 1 || L < 1 || E < 1 || reps < 1 || (strcmp(dtype, "bf16") && strcmp(dtype, "f32"))) {
        fprintf(stderr, "[E::conv1d_bench] usage: conv1d_bench [bf16|f32] [B L E REPS]\n");
        return 1;
    }
    if (!strcmp(dtype, "bf16")) run<__nv_bfloat16>(dtype, B, L, E, reps);
    else run<float>(dtype, B, L, E, reps);
    return 0;
}
