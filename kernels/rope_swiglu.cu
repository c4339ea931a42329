/* RoPE and SwiGLU (backend_kernels.h; the math of backend/ops.h and of
 * the CPU's cpu_attention_tmpl.h, whose rounding these follow: the angle
 * is inv_freq * position in fp32, inv_freq = 1 / theta^(2i/hd) rounded
 * from double). */
#include "backend_kernels.h"

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
__global__ void rope_kernel(float *x, int64_t ldx, int64_t rows, int64_t len, int64_t n_heads, int hd,
                            const __grid_constant__ inv_freq_t inv, int inverse)
{
    int half = hd / 2, lane = threadIdx.x & 31;
    FOR_ROWS(r, rows) {
        float pos = (float)(r % len);
        float *xr = x + r * ldx;
        for (int i = lane; i < half; i += 32) {
            float sn, cs;
            sincosf(inv.f[i] * pos, &sn, &cs);
            if (inverse) sn = -sn;
            for (int64_t h = 0; h < n_heads; h++) {
                float *x1 = xr + h * hd + i, *x2 = x1 + half;
                float p = *x1, q = *x2;
                *x1 = p * cs - q * sn;
                *x2 = q * cs + p * sn;
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

__global__ void swiglu_fwd_kernel(float *y, int64_t ldy, const float *g, int64_t ldg, const float *u, int64_t ldu,
                                  int64_t rows, int cols)
{
    FOR_ROWS(r, rows) {
        const float *gr = g + r * ldg, *ur = u + r * ldu;
        float *yr = y + r * ldy;
        for (int c = threadIdx.x & 31; c < cols; c += 32) {
            float x = gr[c];
            yr[c] = x * sigmoid_(x) * ur[c];
        }
    }
}

__global__ void swiglu_bwd_kernel(float *dg, int64_t lddg, float *du, int64_t lddu, const float *dy, int64_t lddy,
                                  const float *g, int64_t ldg, const float *u, int64_t ldu, int64_t rows, int cols)
{
    FOR_ROWS(r, rows) {
        const float *gr = g + r * ldg, *ur = u + r * ldu, *dyr = dy + r * lddy;
        float *dgr = dg + r * lddg, *dur = du + r * lddu;
        for (int c = threadIdx.x & 31; c < cols; c += 32) {
            float x = gr[c], s = sigmoid_(x), d = dyr[c];
            dur[c] = d * x * s;
            dgr[c] = d * ur[c] * s * (1.0f + x * (1.0f - s));
        }
    }
}

}   // namespace

extern "C" cudaError_t mdk_rope(float *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads,
                                int64_t head_dim, double theta, int inverse, cudaStream_t s)
{
    if (batch * len * (head_dim / 2) == 0 || n_heads == 0) return cudaSuccess;
    if (head_dim > MDK_ATTN_MAX_HD) return cudaErrorInvalidValue;
    inv_freq_t inv;
    for (int64_t i = 0; i < head_dim / 2; i++) inv.f[i] = (float)(1.0 / pow(theta, (double)(2 * i) / (double)head_dim));
    rope_kernel<<<grid_rows(batch * len), 32 * ROW_WARPS, 0, s>>>(x, ldx, batch * len, len, n_heads, (int)head_dim,
                                                                  inv, inverse);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_fwd(float *y, int64_t ldy, const float *gate, int64_t ldg, const float *up,
                                      int64_t ldu, int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    swiglu_fwd_kernel<<<grid_rows(rows), 32 * ROW_WARPS, 0, s>>>(y, ldy, gate, ldg, up, ldu, rows, (int)cols);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_bwd(float *dgate, int64_t lddg, float *dup, int64_t lddu, const float *dy,
                                      int64_t lddy, const float *gate, int64_t ldg, const float *up, int64_t ldu,
                                      int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    swiglu_bwd_kernel<<<grid_rows(rows), 32 * ROW_WARPS, 0, s>>>(dgate, lddg, dup, lddu, dy, lddy, gate, ldg, up, ldu,
                                                                 rows, (int)cols);
    return cudaGetLastError();
}
