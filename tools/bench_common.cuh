/* What the standalone kernel timing programs (tools/NAME_bench.cu) share:
 * CK, which exits with one [E::BENCH_NAME] line when a CUDA call fails,
 * hash_uniform, a reproducible uniform draw on the host or device,
 * fill, which draws a buffer's elements with it, sum_of, a checksum of a
 * (rows, cols) view, and event_times_ms, which times a call with CUDA
 * events.
 * Define BENCH_NAME (a string) before including. */
#ifndef MD_TOOLS_BENCH_COMMON_CUH
#define MD_TOOLS_BENCH_COMMON_CUH

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime_api.h>

#include "storage.cuh"

#define CK(x)                                                                                     \
    do {                                                                                          \
        cudaError_t e_ = (x);                                                                     \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "[E::%s] %s: %s\n", BENCH_NAME, #x, cudaGetErrorString(e_));          \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* uniform in [lo, hi) from (i, seed) */
__host__ __device__ static inline float hash_uniform(uint64_t i, uint32_t seed, float lo, float hi)
{
    uint64_t x = i * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 31, x *= 0xBF58476D1CE4E5B9ull, x ^= x >> 29, x *= 0x94D049BB133111EBull, x ^= x >> 32;
    return lo + (hi - lo) * (float)(x & 0xFFFFFF) / 16777216.f;
}

/* p[i] = a uniform draw in [lo, hi) from (i, seed), stored as T */
template <typename T>
__global__ void fill(T *p, int64_t n, uint32_t seed, float lo, float hi)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st_f(p + i, hash_uniform(i, seed, lo, hi));
}

/* out[0] += sum of the (rows, cols) view's elements, in double */
template <typename T>
__global__ void sum_view(const T *p, int64_t ld_, int64_t rows, int64_t cols, double *out)
{
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < rows * cols;
         i += (int64_t)gridDim.x * blockDim.x)
        s += ld_f(p + (i / cols) * ld_ + i % cols);
    atomicAdd(out, s);
}

/* the sum of the view's elements (dsum: one device double of scratch) */
template <typename T>
static double sum_of(const T *p, int64_t ld_, int64_t rows, int64_t cols, double *dsum)
{
    double h = 0;
    CK(cudaMemset(dsum, 0, sizeof(double)));
    sum_view<<<1024, 256>>>(p, ld_, rows, cols, dsum);
    CK(cudaGetLastError());
    CK(cudaMemcpy(&h, dsum, sizeof(double), cudaMemcpyDeviceToHost));
    return h;
}

/* The times in ms of reps calls of call() (a cudaError_t on the default
 * stream) after 2 warm-ups, each between two CUDA events, each after an
 * untimed before() (a cudaError_t too: what the call should follow);
 * sorted, so that [size / 2] is the median and [0] the fastest */
template <typename F, typename G>
static std::vector<float> event_times_ms(int reps, F &&call, G &&before)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> ms;
    for (int i = 0; i < reps + 2; i++) {
        CK(before());
        CK(cudaEventRecord(a));
        CK(call());
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float t;
        CK(cudaEventElapsedTime(&t, a, b));
        if (i >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return ms;
}

template <typename F>
static std::vector<float> event_times_ms(int reps, F &&call)
{
    return event_times_ms(reps, call, [] { return cudaSuccess; });
}

#endif
