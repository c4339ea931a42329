/* The Mamba block's in_proj fused with conv1d + SiLU
 * (kernels/mamba_in_proj.cu) alone, at the inference forward's strides:
 * hn (M, d) contiguous, W (2E, d), z the second half of xz (ld 2E), u (M,
 * E), conv w (E, 4), bias (E), all bf16 but w and bias. Times
 * mdk_in_proj_conv_fwd_bf16 with CUDA events, median of REPS after 2
 * warm-ups, and prints checksums of u and z so that variants built from
 * the same inputs can be compared (the unit tests compare against the
 * CPU).
 *
 * Also times a pass that reads u right after the op (read_us), against
 * the same pass after a pass over an unrelated buffer (read_cold_us): how
 * much the op's aftermath (its dirty L2 lines) slows the next kernel, as
 * x_proj's GEMM after it.
 *
 * Built once per variant (MD_IN_PROJ_GROUPS), not by CMake:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Ikernels [-D...] \
 *       -o NAME tools/in_proj_conv_bench.cu kernels/mamba_in_proj.cu
 * or, with the wgmma kernel (sm90a/in_proj_wgmma.cu), add -DMD_HAVE_WGMMA=1 and an
 * object of it built with -gencode=arch=compute_90a,code=sm_90a -Isrc;
 * then on the GPU machine (MD_IN_PROJ_WGMMA=0..2 picks the kernel):
 *   VARIANT=NAME NAME [B L d E REPS]      (4096 1000 128 256 20)
 * Prints one line: variant B L d E us GB/s read_us read_cold_us sum(u)
 * sum(z) (GB/s: the bytes the op must move: hn read, u and z written).
 */
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "backend_kernels.h"

#define BENCH_NAME "in_proj_conv_bench"
#include "bench_common.cuh"

/* out[0] = one value from all n uint4 of p, so nothing is dropped */
__global__ void read_all(const uint4 *p, int64_t n, unsigned *out)
{
    unsigned x = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint4 v = __ldcs(p + i);
        x ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (x == 0x12345678u) out[0] = x;
}

/* reads all n uint4 of p: the pass timed after the op */
static cudaError_t read_pass(const uint4 *p, int64_t n, unsigned *out)
{
    read_all<<<132 * 8, 512>>>(p, n, out);
    return cudaGetLastError();
}

int main(int argc, char **argv)
{
    int64_t B = argc > 1 ? atoll(argv[1]) : 4096, L = argc > 2 ? atoll(argv[2]) : 1000;
    int64_t d = argc > 3 ? atoll(argv[3]) : 128, E = argc > 4 ? atoll(argv[4]) : 256;
    int reps = argc > 5 ? atoi(argv[5]) : 20;
    const char *variant = getenv("VARIANT") ? getenv("VARIANT") : "in_proj_conv";
    int64_t M = B * L;
    __nv_bfloat16 *hn, *w_in, *xz, *u;
    float *cw, *cb;
    double *dsum;
    CK(cudaMalloc(&hn, (size_t)M * d * 2));
    CK(cudaMalloc(&w_in, (size_t)2 * E * d * 2));
    CK(cudaMalloc(&xz, (size_t)M * 2 * E * 2));
    CK(cudaMalloc(&u, (size_t)M * E * 2));
    CK(cudaMalloc(&cw, (size_t)E * 4 * 4));
    CK(cudaMalloc(&cb, (size_t)E * 4));
    CK(cudaMalloc(&dsum, sizeof(double)));
    fill<<<1024, 256>>>(hn, M * d, 1, -2.f, 2.f);
    fill<<<1024, 256>>>(w_in, 2 * E * d, 2, -0.1f, 0.1f);
    fill<<<64, 256>>>(cw, E * 4, 3, -0.5f, 0.5f);
    fill<<<64, 256>>>(cb, E, 4, -0.5f, 0.5f);
    CK(cudaGetLastError());
    if (!mdk_in_proj_conv_takes(B, L, d, E, 4, u, E, xz + E, 2 * E, hn, d, w_in, d)) {
        fprintf(stderr, "[E::%s] the kernel does not take B %lld L %lld d %lld E %lld\n", BENCH_NAME, (long long)B,
                (long long)L, (long long)d, (long long)E);
        return 1;
    }
    std::vector<float> ms = event_times_ms(reps, [&] {
        return mdk_in_proj_conv_fwd_bf16(u, E, xz + E, 2 * E, hn, d, w_in, d, cw, cb, B, L, d, E, 0);
    });
    double us = 1e3 * ms[ms.size() / 2], bytes = (double)M * (d + 2 * E) * 2;
    const int64_t nu = M * E / 8;
    auto read_u = [&] { return read_pass((const uint4 *)u, nu, (unsigned *)dsum); };
    float after = event_times_ms(reps, read_u, [&] {
        return mdk_in_proj_conv_fwd_bf16(u, E, xz + E, 2 * E, hn, d, w_in, d, cw, cb, B, L, d, E, 0);
    })[reps / 2];
    float cold = event_times_ms(reps, read_u, [&] {
        return read_pass((const uint4 *)xz, M * 2 * E / 8, (unsigned *)dsum);
    })[reps / 2];
    printf("%s %lld %lld %lld %lld %.1f %.0f %.1f %.1f %.6e %.6e\n", variant, (long long)B, (long long)L,
           (long long)d, (long long)E, us, bytes / us * 1e-3, 1e3 * after, 1e3 * cold, sum_of(u, E, M, E, dsum),
           sum_of(xz + E, 2 * E, M, E, dsum));
    return 0;
}
