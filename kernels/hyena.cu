/* The Hyena section's pointwise, normalisation and short-conv kernels
 * (backend_kernels.h): bias, LayerNorm, GELU (tanh form), Sin, the exponential
 * modulation of the long filter and the depthwise causal conv. Parameter
 * gradients are column sums through hyena_reduce.cuh (no atomics). */
#include "backend_kernels.h"
#include "hyena_reduce.cuh"

#include <math.h>

#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- bias ---- */

__global__ void bias_add_kernel(float *y, int64_t ldy, const float *bias, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t r = i / cols, c = i - r * cols;
        y[r * ldy + c] += bias[c];
    }
}

extern "C" cudaError_t mdk_bias_add(float *y, int64_t ldy, const float *bias, int64_t rows, int64_t cols,
                                    cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    bias_add_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(y, ldy, bias, rows, cols);
    return cudaGetLastError();
}

struct dy_term {
    const float *dy;
    int64_t ld;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const { acc[0] += dy[r * ld + c]; }
};

extern "C" cudaError_t mdk_bias_bwd(float *dbias, const float *dy, int64_t lddy, int64_t rows, int64_t cols,
                                    float *scratch, size_t scratch_floats, cudaStream_t s)
{
    float *dst[1] = {dbias};
    return hyena_colsum_add<1>(dst, 1, rows, cols, dy_term{dy, lddy}, scratch, scratch_floats, s);
}

/* ---- LayerNorm: one warp per row ---- */

enum { LN_ROWS = 8 };   /* rows (warps) per block */

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void __launch_bounds__(LN_ROWS * 32) layernorm_fwd_kernel(float *y, int64_t ldy, float *mean, float *rstd,
                                                                   const float *x, int64_t ldx, const float *w,
                                                                   const float *b, int64_t rows, int64_t dim,
                                                                   double eps)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * LN_ROWS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const float *xr = x + r * ldx;
    float s = 0;
    for (int64_t c = lane; c < dim; c += 32) s += xr[c];
    float mu = warp_sum(s) / (float)dim;
    /* two passes (the row is in L1): no cancellation in the variance */
    float ss = 0;
    for (int64_t c = lane; c < dim; c += 32) {
        float d = xr[c] - mu;
        ss += d * d;
    }
    ss = warp_sum(ss);
    float rs = (float)(1.0 / sqrt((double)ss / (double)dim + eps));
    if (lane == 0) mean[r] = mu, rstd[r] = rs;
    float *yr = y + r * ldy;
    for (int64_t c = lane; c < dim; c += 32) yr[c] = (xr[c] - mu) * rs * w[c] + b[c];
}

extern "C" cudaError_t mdk_layernorm_fwd(float *y, int64_t ldy, float *mean, float *rstd, const float *x,
                                         int64_t ldx, const float *w, const float *b, int64_t rows, int64_t dim,
                                         double eps, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    layernorm_fwd_kernel<<<(unsigned)((rows + LN_ROWS - 1) / LN_ROWS), LN_ROWS * 32, 0, s>>>(y, ldy, mean, rstd, x,
                                                                                          ldx, w, b, rows, dim, eps);
    return cudaGetLastError();
}

/* dx = rstd (w dy - mean(w dy) - xhat mean(w dy xhat)) */
__global__ void __launch_bounds__(LN_ROWS * 32) layernorm_dx_kernel(float *dx, int64_t lddx, const float *dy,
                                                                  int64_t lddy, const float *x, int64_t ldx,
                                                                  const float *w, const float *mean,
                                                                  const float *rstd, int64_t rows, int64_t dim,
                                                                  int accumulate)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * LN_ROWS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const float *xr = x + r * ldx, *dyr = dy + r * lddy;
    float *dxr = dx + r * lddx;
    float mu = mean[r], rs = rstd[r], s1 = 0, s2 = 0;
    for (int64_t c = lane; c < dim; c += 32) {
        float g = dyr[c] * w[c];
        s1 += g;
        s2 += g * (xr[c] - mu) * rs;
    }
    s1 = warp_sum(s1) / (float)dim;
    s2 = warp_sum(s2) / (float)dim;
    for (int64_t c = lane; c < dim; c += 32) {
        float v = rs * (dyr[c] * w[c] - s1 - (xr[c] - mu) * rs * s2);
        dxr[c] = accumulate ? dxr[c] + v : v;
    }
}

struct layernorm_dw_term {
    const float *dy, *x, *mean, *rstd;
    int64_t lddy, ldx;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const
    {
        float g = dy[r * lddy + c];
        acc[0] += g * (x[r * ldx + c] - mean[r]) * rstd[r];
        acc[1] += g;
    }
};

extern "C" cudaError_t mdk_layernorm_bwd(float *dx, int64_t lddx, float *dw, float *db, const float *dy,
                                         int64_t lddy, const float *x, int64_t ldx, const float *w,
                                         const float *mean, const float *rstd, int64_t rows, int64_t dim,
                                         int accumulate, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    /* the parameter sums first: dx may not alias dy, but keep the order of sin_bwd */
    float *dst[2] = {dw, db};
    cudaError_t e = hyena_colsum_add<2>(dst, 2, rows, dim, layernorm_dw_term{dy, x, mean, rstd, lddy, ldx}, scratch,
                                        scratch_floats, s);
    if (e != cudaSuccess) return e;
    layernorm_dx_kernel<<<(unsigned)((rows + LN_ROWS - 1) / LN_ROWS), LN_ROWS * 32, 0, s>>>(
        dx, lddx, dy, lddy, x, ldx, w, mean, rstd, rows, dim, accumulate);
    return cudaGetLastError();
}

/* ---- GELU, tanh form (HyenaDNA's MLP) ---- */

#define GELU_A 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_B 0.044715f

__global__ void gelu_fwd_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t r = i / cols, c = i - r * cols;
        float v = x[r * ldx + c];
        y[r * ldy + c] = 0.5f * v * (1.0f + tanhf(GELU_A * (v + GELU_B * v * v * v)));
    }
}

__global__ void gelu_bwd_kernel(float *dx, int64_t lddx, const float *dy, int64_t lddy, const float *x, int64_t ldx,
                                int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t r = i / cols, c = i - r * cols;
        float v = x[r * ldx + c], th = tanhf(GELU_A * (v + GELU_B * v * v * v));
        float d = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * GELU_A * (1.0f + 3.0f * GELU_B * v * v);
        dx[r * lddx + c] = dy[r * lddy + c] * d;
    }
}

extern "C" cudaError_t mdk_gelu_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                                    cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    gelu_fwd_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(y, ldy, x, ldx, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_gelu_bwd(float *dx, int64_t lddx, const float *dy, int64_t lddy, const float *x,
                                    int64_t ldx, int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    gelu_bwd_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(dx, lddx, dy, lddy, x, ldx, rows, cols);
    return cudaGetLastError();
}

/* ---- Sin with a trainable frequency per column ---- */

__global__ void sin_fwd_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, const float *freq, int64_t rows,
                               int64_t cols)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t r = i / cols, c = i - r * cols;
        y[r * ldy + c] = sinf(freq[c] * x[r * ldx + c]);
    }
}

__global__ void sin_dx_kernel(float *dx, int64_t lddx, const float *dy, int64_t lddy, const float *x, int64_t ldx,
                              const float *freq, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t r = i / cols, c = i - r * cols;
        float f = freq[c];
        dx[r * lddx + c] = dy[r * lddy + c] * f * cosf(f * x[r * ldx + c]);
    }
}

struct sin_dfreq_term {
    const float *dy, *x, *freq;
    int64_t lddy, ldx;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const
    {
        float xv = x[r * ldx + c];
        acc[0] += dy[r * lddy + c] * xv * cosf(freq[c] * xv);
    }
};

extern "C" cudaError_t mdk_sin_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *freq,
                                   int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    sin_fwd_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(y, ldy, x, ldx, freq, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_sin_bwd(float *dx, int64_t lddx, float *dfreq, const float *dy, int64_t lddy,
                                   const float *x, int64_t ldx, const float *freq, int64_t rows, int64_t cols,
                                   float *scratch, size_t scratch_floats, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    /* dfreq reads dy: before dx, which may alias it, is written */
    float *dst[1] = {dfreq};
    cudaError_t e =
        hyena_colsum_add<1>(dst, 1, rows, cols, sin_dfreq_term{dy, x, freq, lddy, ldx}, scratch, scratch_floats, s);
    if (e != cudaSuccess) return e;
    sin_dx_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(dx, lddx, dy, lddy, x, ldx, freq, rows, cols);
    return cudaGetLastError();
}

/* ---- HyenaDNA's ExponentialModulation ---- */

/* torch.linspace(lo, hi, n)[c] as computed in double; t_l = l / (l_max - 1) */
__global__ void modulate_kernel(float *k, int64_t rows, int64_t cols, int64_t l_max, double lo, double hi)
{
    GRID_STRIDE(i, rows * cols)
    {
        int64_t l = i / cols, c = i - l * cols;
        double delta = cols > 1 ? lo + (hi - lo) * (double)c / (double)(cols - 1) : lo;
        double t = l_max > 1 ? (double)l / (double)(l_max - 1) : 0.0;
        k[i] = (float)((double)k[i] * exp(-t * fabs(delta)));
    }
}

extern "C" cudaError_t mdk_hyena_modulate(float *k, int64_t rows, int64_t cols, int64_t l_max, double target,
                                          double fast_pct, double slow_pct, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    double lo = log(target) / slow_pct, hi = log(target) / fast_pct;
    modulate_kernel<<<hyena_grid(rows * cols), 256, 0, s>>>(k, rows, cols, l_max, lo, hi);
    return cudaGetLastError();
}

/* ---- depthwise causal conv with bias (the short filter) ---- */

__global__ void dwconv_fwd_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                  const float *bias, int64_t rows, int64_t len, int64_t dim, int K)
{
    GRID_STRIDE(i, rows * dim)
    {
        int64_t r = i / dim, e = i - r * dim, t = r % len;
        float acc = bias[e];
        for (int j = t < K - 1 ? K - 1 - (int)t : 0; j < K; j++) acc += w[e * K + j] * x[(r - K + 1 + j) * ldx + e];
        y[r * ldy + e] = acc;
    }
}

extern "C" cudaError_t mdk_dwconv_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                      const float *bias, int64_t batch, int64_t len, int64_t dim, int64_t width,
                                      cudaStream_t s)
{
    if (batch * len * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_DWCONV_MAXK) return cudaErrorInvalidValue;
    dwconv_fwd_kernel<<<hyena_grid(batch * len * dim), 256, 0, s>>>(y, ldy, x, ldx, w, bias, batch * len, len, dim,
                                                                    (int)width);
    return cudaGetLastError();
}

/* dx[t] = sum_j w[j] dy[t + K-1-j] within the sequence */
__global__ void dwconv_dx_kernel(float *dx, int64_t lddx, const float *dy, int64_t lddy, const float *w,
                                 int64_t rows, int64_t len, int64_t dim, int K)
{
    GRID_STRIDE(i, rows * dim)
    {
        int64_t r = i / dim, e = i - r * dim, t = r % len;
        float acc = 0;
        for (int j = K - 1; j >= 0; j--) {
            int64_t tt = t + K - 1 - j;
            if (tt < len) acc += w[e * K + j] * dy[(r + K - 1 - j) * lddy + e];
        }
        dx[r * lddx + e] = acc;
    }
}

/* acc[j] += dy[t] x[t - K+1+j] for j < K; acc[K] += dy[t] (the bias) */
struct dwconv_dw_term {
    const float *dy, *x;
    int64_t lddy, ldx, len;
    int K;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const
    {
        int64_t t = r % len;
        float g = dy[r * lddy + c];
#pragma unroll
        for (int j = 0; j < MDK_DWCONV_MAXK; j++)
            if (j < K && t - K + 1 + j >= 0) acc[j] += g * x[(r - K + 1 + j) * ldx + c];
        /* the bias slot is acc[K]: a runtime index, so branch over the unrolled slots */
#pragma unroll
        for (int j = 0; j <= MDK_DWCONV_MAXK; j++)
            if (j == K) acc[j] += g;
    }
};

/* The slices' partials ([j][c], the bias as j = K) added in slice order
 * into dw (c, j) and dbias (c). */
__global__ void dwconv_wsum_kernel(float *dw, float *dbias, const float *part, int64_t slices, int64_t dim, int K)
{
    int64_t width = (int64_t)(K + 1) * dim;
    GRID_STRIDE(i, width)
    {
        int64_t j = i / dim, c = i - j * dim;
        float acc = 0;
        for (int64_t k = 0; k < slices; k++) acc += part[k * width + i];
        if (j == K) dbias[c] += acc;
        else dw[c * K + j] += acc;
    }
}

extern "C" cudaError_t mdk_dwconv_bwd(float *dx, int64_t lddx, float *dw, float *dbias, const float *dy,
                                      int64_t lddy, const float *x, int64_t ldx, const float *w, int64_t batch,
                                      int64_t len, int64_t dim, int64_t width, float *scratch, size_t scratch_floats,
                                      cudaStream_t s)
{
    int64_t rows = batch * len;
    if (rows * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_DWCONV_MAXK) return cudaErrorInvalidValue;
    int K = (int)width;
    dwconv_dx_kernel<<<hyena_grid(rows * dim), 256, 0, s>>>(dx, lddx, dy, lddy, w, rows, len, dim, K);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    int64_t width_p = (int64_t)(K + 1) * dim;
    int64_t slices = mdk_reduce_slices(rows, width_p, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    hyena_colsum_part_kernel<MDK_DWCONV_MAXK + 1>
        <<<dim3((unsigned)((dim + 31) / 32), (unsigned)slices), dim3(32, 8), 0, s>>>(
            scratch, rows, dim, K + 1, per, dwconv_dw_term{dy, x, lddy, ldx, len, K});
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    dwconv_wsum_kernel<<<hyena_grid(width_p), 256, 0, s>>>(dw, dbias, scratch, slices, dim, K);
    return cudaGetLastError();
}
