/* The inference scan (kernels/selective_scan_infer.cu) alone, at
 * classify's shape with the Mamba block's strides: z a column slice of xz
 * (ld 2E), Bm and Cm slices of xdbl (ld R + 2N, R = 8), u, delta, y
 * contiguous. Times md_scan_fwd_infer with CUDA events (median of REPS
 * after 2 warm-ups) and checks y: every element written (y poisoned
 * first), and 64 random channels against a float64 reference of the
 * dtype-rounded inputs (||gpu - ref|| / ||ref|| over them). FOLD=1: the
 * scan forms delta from xdbl's first R columns and a weight (E, R) instead
 * of reading it (scan_api.h, delta NULL), as classify's Mamba blocks call it.
 *
 * Built by tools/scan-infer-bench.sh, once per variant of the kernel
 * (its -D switches), not by CMake:
 *   scan_infer_bench [bf16|f32] [B L E N REPS]     (bf16 4096 1000 256 16 10)
 * Prints one line: dtype B L E N median_ms min_ms rel_err nonfinite.
 */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "selective_scan.cuh"

#define BENCH_NAME "scan_infer_bench"
#include "bench_common.cuh"
#include "scan_bench_inputs.cuh"

template <typename T>
__global__ void count_nonfinite(const T *p, int64_t n, unsigned long long *cnt)
{
    unsigned long long c = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        c += !isfinite(md_ld(p + i));
    if (c) atomicAdd(cnt, c);
}

static float to_f(float v) { return v; }
static float to_f(__nv_bfloat16 v)
{
    unsigned short s;
    memcpy(&s, &v, 2);
    unsigned w = (unsigned)s << 16;
    float f;
    memcpy(&f, &w, 4);
    return f;
}

template <typename T>
static int run(int64_t B, int64_t L, int64_t E, int64_t N, int reps, const char *name)
{
    const bool fold = getenv("FOLD") && atoi(getenv("FOLD"));
    ScanBenchInputs<T> in = scan_bench_inputs<T>(B, L, E, N);
    const int64_t R = in.R, X = R + 2 * N, M = B * L;
    T *xz = in.xz, *u = in.u, *delta = in.delta, *xdbl = in.xdbl, *y = in.y, *dt_w = in.dt_w;
    float *A_log = in.A_log, *D = in.D, *bias = in.bias;
    md_scan_args_t &a = in.args;
    if (fold) a.delta = NULL, a.dt_low = xdbl, a.ld_dt_low = X, a.dt_w = dt_w, a.dt_rank = R;

    CK(cudaMemset(y, 0xFF, sizeof(T) * M * E));
    CK(md_scan_fwd_infer(&a, 0));
    CK(cudaDeviceSynchronize());
    unsigned long long *cnt, nonfinite = 0;
    CK(cudaMalloc(&cnt, sizeof *cnt));
    CK(cudaMemset(cnt, 0, sizeof *cnt));
    count_nonfinite<<<1024, 256>>>(y, M * E, cnt);
    CK(cudaMemcpy(&nonfinite, cnt, sizeof *cnt, cudaMemcpyDeviceToHost));

    /* float64 reference of 64 random channels */
    std::vector<float> hA(E * N), hD(E), hb(E);
    CK(cudaMemcpy(hA.data(), A_log, sizeof(float) * E * N, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hD.data(), D, sizeof(float) * E, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb.data(), bias, sizeof(float) * E, cudaMemcpyDeviceToHost));
    std::vector<T> hW(E * R);
    CK(cudaMemcpy(hW.data(), dt_w, sizeof(T) * E * R, cudaMemcpyDeviceToHost));
    std::vector<T> rxz(L * 2 * E), ru(L * E), rd(L * E), rx(L * X), ry(L * E);
    double num = 0, den = 0;
    for (int k = 0; k < 64; k++) {
        const int64_t b = (int64_t)(hash_uniform(k, 99, 0.f, 1.f) * B);
        const int64_t e = (int64_t)(hash_uniform(k, 98, 0.f, 1.f) * E);
        CK(cudaMemcpy(rxz.data(), xz + b * L * 2 * E, sizeof(T) * L * 2 * E, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ru.data(), u + b * L * E, sizeof(T) * L * E, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(rd.data(), delta + b * L * E, sizeof(T) * L * E, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(rx.data(), xdbl + b * L * X, sizeof(T) * L * X, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ry.data(), y + b * L * E, sizeof(T) * L * E, cudaMemcpyDeviceToHost));
        std::vector<double> h(N, 0.0);
        for (int64_t t = 0; t < L; t++) {
            double dl = 0;
            for (int64_t r = 0; r < R; r++) dl += (double)to_f(hW[e * R + r]) * to_f(rx[t * X + r]);
            const double x = (fold ? dl : (double)to_f(rd[t * E + e])) + hb[e];
            const double dt = x > 20 ? x : log1p(exp(x)), uu = to_f(ru[t * E + e]), z = to_f(rxz[t * 2 * E + E + e]);
            double acc = 0;
            for (int64_t n = 0; n < N; n++) {
                h[n] = exp(-dt * exp((double)hA[e * N + n])) * h[n] + dt * uu * to_f(rx[t * X + R + n]);
                acc += to_f(rx[t * X + R + N + n]) * h[n];
            }
            const double ref = (acc + hD[e] * uu) * z / (1 + exp(-z)), got = to_f(ry[t * E + e]);
            num += (got - ref) * (got - ref), den += ref * ref;
        }
    }

    const std::vector<float> ms = event_times_ms(reps, [&] { return md_scan_fwd_infer(&a, 0); });
    printf("%s%s\t%s\t%lld\t%lld\t%lld\t%lld\t%.3f\t%.3f\t%.2e\t%llu\n", name, fold ? "+fold" : "",
           sizeof(T) == 2 ? "bf16" : "f32", (long long)B, (long long)L, (long long)E, (long long)N, ms[ms.size() / 2],
           ms[0], sqrt(num / den), nonfinite);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dt = argc > 1 ? argv[1] : "bf16";
    const int64_t B = argc > 2 ? atoll(argv[2]) : 4096, L = argc > 3 ? atoll(argv[3]) : 1000;
    const int64_t E = argc > 4 ? atoll(argv[4]) : 256, N = argc > 5 ? atoll(argv[5]) : 16;
    const int reps = argc > 6 ? atoi(argv[6]) : 10;
    const char *name = getenv("VARIANT") ? getenv("VARIANT") : argv[0];
    return strcmp(dt, "f32") == 0 ? run<float>(B, L, E, N, reps, name) : run<__nv_bfloat16>(B, L, E, N, reps, name);
}
