/* RoPE and SwiGLU (backend_kernels.h; the math of backend/ops.h and of
 * the CPU's cpu_attention_tmpl.h, whose rounding these follow: the angle
 * is inv_freq * position in fp32, inv_freq = 1 / theta^(2i/hd) rounded
 * from double). */
#include "backend_kernels.h"

#include <math.h>

namespace {

unsigned grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g > 65535 * 16) g = 65535 * 16;   /* grid-stride loops cover the rest */
    return (unsigned)(g < 1 ? 1 : g);
}

/* one thread per (row, i < hd/2): the angle once, then every head */
__global__ void rope_kernel(float *x, int64_t ldx, int64_t rows, int64_t len, int64_t n_heads, int64_t hd,
                            double theta, int inverse)
{
    int64_t half = hd / 2, n = rows * half;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e / half, i = e - r * half;
        float inv = (float)(1.0 / pow(theta, (double)(2 * i) / (double)hd));
        float a = inv * (float)(r % len);
        float cs = cosf(a), sn = sinf(a);
        if (inverse) sn = -sn;
        float *xr = x + r * ldx + i;
        for (int64_t h = 0; h < n_heads; h++) {
            float *x1 = xr + h * hd, *x2 = x1 + half;
            float p = *x1, q = *x2;
            *x1 = p * cs - q * sn;
            *x2 = q * cs + p * sn;
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
                                  int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e / cols, c = e - r * cols;
        float x = g[r * ldg + c];
        y[r * ldy + c] = x * sigmoid_(x) * u[r * ldu + c];
    }
}

__global__ void swiglu_bwd_kernel(float *dg, int64_t lddg, float *du, int64_t lddu, const float *dy, int64_t lddy,
                                  const float *g, int64_t ldg, const float *u, int64_t ldu, int64_t rows,
                                  int64_t cols)
{
    int64_t n = rows * cols;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e / cols, c = e - r * cols;
        float x = g[r * ldg + c], s = sigmoid_(x), d = dy[r * lddy + c];
        du[r * lddu + c] = d * x * s;
        dg[r * lddg + c] = d * u[r * ldu + c] * s * (1.0f + x * (1.0f - s));
    }
}

}   // namespace

extern "C" cudaError_t mdk_rope(float *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads,
                                int64_t head_dim, double theta, int inverse, cudaStream_t s)
{
    int64_t n = batch * len * (head_dim / 2);
    if (n == 0 || n_heads == 0) return cudaSuccess;
    rope_kernel<<<grid_for(n, 256), 256, 0, s>>>(x, ldx, batch * len, len, n_heads, head_dim, theta, inverse);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_fwd(float *y, int64_t ldy, const float *gate, int64_t ldg, const float *up,
                                      int64_t ldu, int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    swiglu_fwd_kernel<<<grid_for(rows * cols, 256), 256, 0, s>>>(y, ldy, gate, ldg, up, ldu, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_bwd(float *dgate, int64_t lddg, float *dup, int64_t lddu, const float *dy,
                                      int64_t lddy, const float *gate, int64_t ldg, const float *up, int64_t ldu,
                                      int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    swiglu_bwd_kernel<<<grid_for(rows * cols, 256), 256, 0, s>>>(dgate, lddg, dup, lddu, dy, lddy, gate, ldg, up,
                                                                 ldu, rows, cols);
    return cudaGetLastError();
}
