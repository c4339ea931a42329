/* The inference scan's inputs at classify's shape, laid out as the Mamba
 * block lays them out (z a column slice of xz, ld 2E; Bm and Cm slices of
 * xdbl, ld R + 2N, R = 8; u, delta, y contiguous), drawn with fill, and
 * md_scan_args_t over them in the delta form (a caller that wants the
 * folded form points dt_low / dt_w at xdbl / dt_w itself). Shared by the
 * scan's single-kernel timing tools; include bench_common.cuh first. */
#ifndef MD_TOOLS_SCAN_BENCH_INPUTS_CUH
#define MD_TOOLS_SCAN_BENCH_INPUTS_CUH

#include <cstring>

#include "selective_scan.cuh"

template <typename T>
struct ScanBenchInputs {
    static constexpr int64_t R = 8;   /* dt_rank: the columns of xdbl before Bm */
    T *xz, *u, *delta, *xdbl, *y, *dt_w;
    float *A_log, *D, *bias;
    md_scan_args_t args;
};

template <typename T>
static ScanBenchInputs<T> scan_bench_inputs(int64_t B, int64_t L, int64_t E, int64_t N)
{
    ScanBenchInputs<T> s;
    const int64_t R = s.R, X = R + 2 * N, M = B * L;
    CK(cudaMalloc(&s.xz, sizeof(T) * M * 2 * E));
    CK(cudaMalloc(&s.u, sizeof(T) * M * E));
    CK(cudaMalloc(&s.delta, sizeof(T) * M * E));
    CK(cudaMalloc(&s.xdbl, sizeof(T) * M * X));
    CK(cudaMalloc(&s.y, sizeof(T) * M * E));
    CK(cudaMalloc(&s.dt_w, sizeof(T) * E * R));
    CK(cudaMalloc(&s.A_log, sizeof(float) * E * N));
    CK(cudaMalloc(&s.D, sizeof(float) * E));
    CK(cudaMalloc(&s.bias, sizeof(float) * E));
    fill<<<1024, 256>>>(s.xz, M * 2 * E, 1, -1.f, 1.f);
    fill<<<1024, 256>>>(s.u, M * E, 2, -1.f, 1.f);
    fill<<<1024, 256>>>(s.delta, M * E, 3, -1.f, 1.f);
    fill<<<1024, 256>>>(s.xdbl, M * X, 4, -1.f, 1.f);
    fill<<<64, 256>>>(s.A_log, E * N, 5, 0.f, 2.77f);
    fill<<<1, 256>>>(s.D, E, 6, -1.f, 1.f);
    fill<<<1, 256>>>(s.bias, E, 7, -4.f, -2.f);
    fill<<<64, 256>>>(s.dt_w, E * R, 8, -0.35f, 0.35f);
    CK(cudaGetLastError());

    md_scan_args_t &a = s.args;
    memset(&a, 0, sizeof a);
    a.dtype = sizeof(T) == 2 ? MD_SCAN_BF16 : MD_SCAN_F32;
    a.batch = B, a.len = L, a.d_inner = E, a.d_state = N;
    a.u = s.u, a.delta = s.delta, a.z = s.xz + E, a.Bm = s.xdbl + R, a.Cm = s.xdbl + R + N;
    a.ld_u = E, a.ld_delta = E, a.ld_z = 2 * E, a.ld_B = X, a.ld_C = X;
    a.A_log = s.A_log, a.D = s.D, a.dt_bias = s.bias;
    a.y = s.y, a.ld_y = E;
    return s;
}

#endif
