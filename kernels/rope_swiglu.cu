/* RoPE and SwiGLU (backend_kernels.h; the math of backend/ops.h and of
 * the CPU's cpu_attention_tmpl.h, whose rounding these follow: the angle
 * is inv_freq * position in fp32, inv_freq = 1 / theta^(2i/hd) rounded
 * from double). Tensors of fp32 or bf16 storage (T, storage.cuh), fp32
 * arithmetic. */
#include "backend_kernels.h"
#include "storage.cuh"

#include <math.h>

namespace {

/* Row kernels: a block of ROW_WARPS warps, one warp per row at a time
 * (grid-stride over rows), lanes over the columns: coalesced, and no
 * 64-bit division per element. */
enum { ROW_WARPS = 8 };

unsigned grid_rows(int64_t rows)
{
    int64_t g = (rows + ROW_WARPS - 1) / ROW_WARPS;
    if (g > 4096) g = 4096;   /* about 4 waves of 8 blocks per multiprocessor; the rest by grid stride */
    return (unsigned)(g < 1 ? 1 : g);
}

#define FOR_ROWS(r, rows)                                                                      \
    for (int64_t r = blockIdx.x * (int64_t)ROW_WARPS + (threadIdx.x >> 5); r < (rows);        \
         r += (int64_t)gridDim.x * ROW_WARPS)

/* inv_freq[i] = 1 / theta^(2i/hd), rounded from double on the host as the
 * CPU rounds it; passed by value (512 bytes of kernel parameters) */
struct inv_freq_t {
    float f[MDK_ATTN_MAX_HD / 2];
};

/* lane i < hd/2 of a row: the angle once, then every head */
template <typename T>
__global__ void rope_kernel(T *x, int64_t ldx, int64_t rows, int64_t len, int64_t n_heads, int hd,
                            const __grid_constant__ inv_freq_t inv, int inverse)
{
    int half = hd / 2, lane = threadIdx.x & 31;
    FOR_ROWS(r, rows) {
        float pos = (float)(r % len);
        T *xr = x + r * ldx;
        for (int i = lane; i < half; i += 32) {
            float sn, cs;
            sincosf(inv.f[i] * pos, &sn, &cs);
            if (inverse) sn = -sn;
            for (int64_t h = 0; h < n_heads; h++) {
                T *x1 = xr + h * hd + i, *x2 = x1 + half;
                float p = ld_f(x1), q = ld_f(x2);
                st_f(x1, p * cs - q * sn);
                st_f(x2, q * cs + p * sn);
            }
        }
    }
}

__device__ inline float sigmoid_(float x)
{
    float e = expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x < 0.0f ? e * r : r;
}

template <typename T>
__global__ void swiglu_fwd_kernel(T *y, int64_t ldy, const T *g, int64_t ldg, const T *u, int64_t ldu, int64_t rows,
                                  int cols)
{
    FOR_ROWS(r, rows) {
        const T *gr = g + r * ldg, *ur = u + r * ldu;
        T *yr = y + r * ldy;
        for (int c = threadIdx.x & 31; c < cols; c += 32) {
            float x = ld_f(gr + c);
            st_f(yr + c, x * sigmoid_(x) * ld_f(ur + c));
        }
    }
}

template <typename T>
__global__ void swiglu_bwd_kernel(T *dg, int64_t lddg, T *du, int64_t lddu, const T *dy, int64_t lddy, const T *g,
                                  int64_t ldg, const T *u, int64_t ldu, int64_t rows, int cols)
{
    FOR_ROWS(r, rows) {
        const T *gr = g + r * ldg, *ur = u + r * ldu, *dyr = dy + r * lddy;
        T *dgr = dg + r * lddg, *dur = du + r * lddu;
        for (int c = threadIdx.x & 31; c < cols; c += 32) {
            float x = ld_f(gr + c), s = sigmoid_(x), d = ld_f(dyr + c);
            st_f(dur + c, d * x * s);
            st_f(dgr + c, d * ld_f(ur + c) * s * (1.0f + x * (1.0f - s)));
        }
    }
}

}   // namespace

extern "C" cudaError_t mdk_rope(void *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads,
                                int64_t head_dim, double theta, int inverse, int act_bf16, cudaStream_t s)
{
    if (batch * len * (head_dim / 2) == 0 || n_heads == 0) return cudaSuccess;
    if (head_dim > MDK_ATTN_MAX_HD) return cudaErrorInvalidValue;
    inv_freq_t inv;
    for (int64_t i = 0; i < head_dim / 2; i++) inv.f[i] = (float)(1.0 / pow(theta, (double)(2 * i) / (double)head_dim));
    WITH_ACT_TYPE(act_bf16, rope_kernel<<<grid_rows(batch * len), 32 * ROW_WARPS, 0, s>>>(
                                (T *)x, ldx, batch * len, len, n_heads, (int)head_dim, inv, inverse));
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_fwd(void *y, int64_t ldy, const void *gate, int64_t ldg, const void *up,
                                      int64_t ldu, int64_t rows, int64_t cols, int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    WITH_ACT_TYPE(act_bf16, swiglu_fwd_kernel<<<grid_rows(rows), 32 * ROW_WARPS, 0, s>>>(
                                (T *)y, ldy, (const T *)gate, ldg, (const T *)up, ldu, rows, (int)cols));
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_bwd(void *dgate, int64_t lddg, void *dup, int64_t lddu, const void *dy,
                                      int64_t lddy, const void *gate, int64_t ldg, const void *up, int64_t ldu,
                                      int64_t rows, int64_t cols, int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    WITH_ACT_TYPE(act_bf16, swiglu_bwd_kernel<<<grid_rows(rows), 32 * ROW_WARPS, 0, s>>>(
                                (T *)dgate, lddg, (T *)dup, lddu, (const T *)dy, lddy, (const T *)gate, ldg,
                                (const T *)up, ldu, rows, (int)cols));
    return cudaGetLastError();
}
