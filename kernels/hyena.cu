/* The Hyena section's pointwise, normalisation and short-conv kernels
 * (backend_kernels.h): bias, LayerNorm, GELU (tanh form), Sin, the exponential
 * modulation of the long filter and the depthwise causal conv. Parameter
 * gradients are column sums through hyena_reduce.cuh, the short conv's
 * through a kernel of the same shape with a sliding window (no atomics).
 * The activation tensors (void * in the launchers) are fp32 or bf16 by the
 * launcher's act_bf16 (storage.cuh: fp32 arithmetic either way); parameters,
 * their gradients, LayerNorm's input, statistics and dx, and the filter's
 * tensors (Sin, the modulation) are always fp32. */
#include "backend_kernels.h"
#include "hyena_reduce.cuh"
#include "storage.cuh"

#include <math.h>

/* Elementwise kernels go a warp per row, its lanes over the columns: one
 * 64-bit multiply per row for the index math (no division per element) and
 * 128 contiguous bytes per warp access. 256 threads, 8 rows per block. */
#define FOR_ROWS(r, rows) \
    for (int64_t r = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5); r < (rows); r += (int64_t)gridDim.x * 8)
#define FOR_COLS(c, cols) for (int64_t c = threadIdx.x & 31; c < (cols); c += 32)

static unsigned row_grid(int64_t rows)
{
    int64_t g = (rows + 7) / 8;
    return (unsigned)(g > 1048576 ? 1048576 : (g < 1 ? 1 : g));
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- bias ---- */

template <class T>
__global__ void bias_add_kernel(T *y, int64_t ldy, const T *bias, int64_t rows, int64_t cols)
{
    FOR_ROWS(r, rows)
    {
        T *yr = y + r * ldy;
        FOR_COLS(c, cols) st_f(yr + c, ld_f(yr + c) + ld_f(bias + c));
    }
}

extern "C" cudaError_t mdk_bias_add(void *y, int64_t ldy, const void *bias, int64_t rows, int64_t cols,
                                    int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    WITH_ACT_TYPE(act_bf16,
                  (bias_add_kernel<T><<<row_grid(rows), 256, 0, s>>>((T *)y, ldy, (const T *)bias, rows, cols)));
    return cudaGetLastError();
}

template <class T>
struct dy_term {
    const T *dy;
    int64_t ld;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const { acc[0] += ld_f(dy + r * ld + c); }
};

extern "C" cudaError_t mdk_bias_bwd(float *dbias, const void *dy, int64_t lddy, int64_t rows, int64_t cols,
                                    float *scratch, size_t scratch_floats, int act_bf16, cudaStream_t s)
{
    float *dst[1] = {dbias};
    cudaError_t e;
    WITH_ACT_TYPE(act_bf16, e = hyena_colsum_add<1>(dst, 1, rows, cols, dy_term<T>{(const T *)dy, lddy}, scratch,
                                                     scratch_floats, s));
    return e;
}

/* ---- LayerNorm: one warp per row ---- */

enum { LN_ROWS = 8 };   /* rows (warps) per block */

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <class T>
__global__ void __launch_bounds__(LN_ROWS * 32) layernorm_fwd_kernel(T *y, int64_t ldy, float *mean, float *rstd,
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
    T *yr = y + r * ldy;
    for (int64_t c = lane; c < dim; c += 32) st_f(yr + c, (xr[c] - mu) * rs * w[c] + b[c]);
}

extern "C" cudaError_t mdk_layernorm_fwd(void *y, int64_t ldy, float *mean, float *rstd, const float *x,
                                         int64_t ldx, const float *w, const float *b, int64_t rows, int64_t dim,
                                         double eps, int act_bf16, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    unsigned grid = (unsigned)((rows + LN_ROWS - 1) / LN_ROWS);
    WITH_ACT_TYPE(act_bf16, (layernorm_fwd_kernel<T><<<grid, LN_ROWS * 32, 0, s>>>((T *)y, ldy, mean, rstd, x, ldx, w,
                                                                                   b, rows, dim, eps)));
    return cudaGetLastError();
}

/* dx = rstd (w dy - mean(w dy) - xhat mean(w dy xhat)). PAIRS: two columns
 * a lane (storage.cuh), where the shapes allow: a bf16 dy went 64 bytes a
 * warp access. */
template <class T, bool PAIRS>
__global__ void __launch_bounds__(LN_ROWS * 32) layernorm_dx_kernel(float *dx, int64_t lddx, const T *dy,
                                                                  int64_t lddy, const float *x, int64_t ldx,
                                                                  const float *w, const float *mean,
                                                                  const float *rstd, int64_t rows, int64_t dim,
                                                                  int accumulate)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * LN_ROWS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const float *xr = x + r * ldx;
    const T *dyr = dy + r * lddy;
    float *dxr = dx + r * lddx;
    float mu = mean[r], rs = rstd[r], s1 = 0, s2 = 0;
    if (PAIRS) {
        for (int64_t c = 2 * lane; c < dim; c += 64) {
            float2 g = ld_pair(dyr + c), xv = ld_pair(xr + c), wv = ld_pair(w + c);
            g.x *= wv.x, g.y *= wv.y;
            s1 += g.x, s2 += g.x * (xv.x - mu) * rs;
            s1 += g.y, s2 += g.y * (xv.y - mu) * rs;
        }
    } else {
        for (int64_t c = lane; c < dim; c += 32) {
            float g = ld_f(dyr + c) * w[c];
            s1 += g;
            s2 += g * (xr[c] - mu) * rs;
        }
    }
    s1 = warp_sum(s1) / (float)dim;
    s2 = warp_sum(s2) / (float)dim;
    if (PAIRS) {
        for (int64_t c = 2 * lane; c < dim; c += 64) {
            float2 g = ld_pair(dyr + c), xv = ld_pair(xr + c), wv = ld_pair(w + c);
            float2 v = make_float2(rs * (g.x * wv.x - s1 - (xv.x - mu) * rs * s2),
                                   rs * (g.y * wv.y - s1 - (xv.y - mu) * rs * s2));
            if (accumulate) {
                float2 o = ld_pair(dxr + c);
                v.x += o.x, v.y += o.y;
            }
            st_pair(dxr + c, v);
        }
    } else {
        for (int64_t c = lane; c < dim; c += 32) {
            float v = rs * (ld_f(dyr + c) * w[c] - s1 - (xr[c] - mu) * rs * s2);
            dxr[c] = accumulate ? dxr[c] + v : v;
        }
    }
}

template <class T>
struct layernorm_dw_term {
    const T *dy;
    const float *x, *mean, *rstd;
    int64_t lddy, ldx;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const
    {
        float g = ld_f(dy + r * lddy + c);
        acc[0] += g * (x[r * ldx + c] - mean[r]) * rstd[r];
        acc[1] += g;
    }
};

template <class T>
static cudaError_t layernorm_bwd(float *dx, int64_t lddx, float *dw, float *db, const T *dy, int64_t lddy,
                                 const float *x, int64_t ldx, const float *w, const float *mean, const float *rstd,
                                 int64_t rows, int64_t dim, int accumulate, float *scratch, size_t scratch_floats,
                                 cudaStream_t s)
{
    /* the parameter sums first: dx may not alias dy, but keep the order of sin_bwd */
    float *dst[2] = {dw, db};
    cudaError_t e = hyena_colsum_add<2>(dst, 2, rows, dim, layernorm_dw_term<T>{dy, x, mean, rstd, lddy, ldx},
                                        scratch, scratch_floats, s);
    if (e != cudaSuccess) return e;
    unsigned grid = (unsigned)((rows + LN_ROWS - 1) / LN_ROWS);
    if (pairs_ok(dim, sizeof(T), dy, lddy, dy, lddy, dy, lddy) && pairs_ok(dim, sizeof(float), x, ldx, dx, lddx, w, 0))
        layernorm_dx_kernel<T, true><<<grid, LN_ROWS * 32, 0, s>>>(dx, lddx, dy, lddy, x, ldx, w, mean, rstd, rows, dim,
                                                                   accumulate);
    else
        layernorm_dx_kernel<T, false><<<grid, LN_ROWS * 32, 0, s>>>(dx, lddx, dy, lddy, x, ldx, w, mean, rstd, rows,
                                                                    dim, accumulate);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_layernorm_bwd(float *dx, int64_t lddx, float *dw, float *db, const void *dy,
                                         int64_t lddy, const float *x, int64_t ldx, const float *w,
                                         const float *mean, const float *rstd, int64_t rows, int64_t dim,
                                         int accumulate, float *scratch, size_t scratch_floats, int act_bf16,
                                         cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    cudaError_t e;
    WITH_ACT_TYPE(act_bf16, e = layernorm_bwd<T>(dx, lddx, dw, db, (const T *)dy, lddy, x, ldx, w, mean, rstd, rows,
                                                 dim, accumulate, scratch, scratch_floats, s));
    return e;
}

/* ---- GELU, tanh form (HyenaDNA's MLP) ---- */

#define GELU_A 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_B 0.044715f

template <class T>
__global__ void gelu_fwd_kernel(T *y, int64_t ldy, const T *x, int64_t ldx, int64_t rows, int64_t cols)
{
    FOR_ROWS(r, rows)
    {
        const T *xr = x + r * ldx;
        T *yr = y + r * ldy;
        FOR_COLS(c, cols)
        {
            float v = ld_f(xr + c);
            st_f(yr + c, 0.5f * v * (1.0f + tanhf(GELU_A * (v + GELU_B * v * v * v))));
        }
    }
}

__device__ __forceinline__ float gelu_grad(float v)
{
    float th = tanhf(GELU_A * (v + GELU_B * v * v * v));
    return 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * GELU_A * (1.0f + 3.0f * GELU_B * v * v);
}

/* PAIRS: two columns per lane (pairs_ok) */
template <class T, bool PAIRS>
__global__ void gelu_bwd_kernel(T *dx, int64_t lddx, const T *dy, int64_t lddy, const T *x, int64_t ldx, int64_t rows,
                                int64_t cols)
{
    FOR_ROWS(r, rows)
    {
        const T *xr = x + r * ldx, *dyr = dy + r * lddy;
        T *dxr = dx + r * lddx;
        if (PAIRS) {
            for (int64_t c = 2 * (threadIdx.x & 31); c < cols; c += 64) {
                float2 v = ld_pair(xr + c), g = ld_pair(dyr + c);
                st_pair(dxr + c, make_float2(g.x * gelu_grad(v.x), g.y * gelu_grad(v.y)));
            }
        } else {
            FOR_COLS(c, cols) st_f(dxr + c, ld_f(dyr + c) * gelu_grad(ld_f(xr + c)));
        }
    }
}

template <class T>
static void gelu_bwd(T *dx, int64_t lddx, const T *dy, int64_t lddy, const T *x, int64_t ldx, int64_t rows,
                     int64_t cols, cudaStream_t s)
{
    if (pairs_ok(cols, sizeof(T), dx, lddx, dy, lddy, x, ldx))
        gelu_bwd_kernel<T, true><<<row_grid(rows), 256, 0, s>>>(dx, lddx, dy, lddy, x, ldx, rows, cols);
    else
        gelu_bwd_kernel<T, false><<<row_grid(rows), 256, 0, s>>>(dx, lddx, dy, lddy, x, ldx, rows, cols);
}

extern "C" cudaError_t mdk_gelu_fwd(void *y, int64_t ldy, const void *x, int64_t ldx, int64_t rows, int64_t cols,
                                    int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    WITH_ACT_TYPE(act_bf16,
                  (gelu_fwd_kernel<T><<<row_grid(rows), 256, 0, s>>>((T *)y, ldy, (const T *)x, ldx, rows, cols)));
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_gelu_bwd(void *dx, int64_t lddx, const void *dy, int64_t lddy, const void *x,
                                    int64_t ldx, int64_t rows, int64_t cols, int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    WITH_ACT_TYPE(act_bf16, gelu_bwd<T>((T *)dx, lddx, (const T *)dy, lddy, (const T *)x, ldx, rows, cols, s));
    return cudaGetLastError();
}

/* ---- Sin with a trainable frequency per column ---- */

__global__ void sin_fwd_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, const float *freq, int64_t rows,
                               int64_t cols)
{
    FOR_ROWS(r, rows)
    {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        FOR_COLS(c, cols) yr[c] = sinf(freq[c] * xr[c]);
    }
}

/* One pass for both gradients: each (r, c) is read and then written by
 * the same thread, so dx may alias dy. The two products keep the order of
 * the CPU's (dy x cos, dy f cos). */
struct sin_bwd_term {
    float *dx;
    const float *dy, *x, *freq;
    int64_t lddx, lddy, ldx;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const
    {
        float xv = x[r * ldx + c], dyv = dy[r * lddy + c], f = freq[c];
        float cs = cosf(f * xv);
        float dxv = dyv * f * cs;
        acc[0] += dyv * xv * cs;
        acc[1] += dxv;   /* the bias's sum, when asked for (nout 2) */
        dx[r * lddx + c] = dxv;
    }
};

extern "C" cudaError_t mdk_sin_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *freq,
                                   int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    sin_fwd_kernel<<<row_grid(rows), 256, 0, s>>>(y, ldy, x, ldx, freq, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_sin_bwd(float *dx, int64_t lddx, float *dfreq, float *dbias, const float *dy,
                                   int64_t lddy, const float *x, int64_t ldx, const float *freq, int64_t rows,
                                   int64_t cols, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    float *dst[2] = {dfreq, dbias};
    return hyena_colsum_add<2>(dst, dbias ? 2 : 1, rows, cols, sin_bwd_term{dx, dy, x, freq, lddx, lddy, ldx},
                               scratch, scratch_floats, s);
}

/* ---- HyenaDNA's ExponentialModulation ---- */

/* torch.linspace(lo, hi, n)[c] as computed in double; t_l = l / (l_max - 1) */
/* The decay's exponent -t_l |delta_c| is formed in double as the CPU forms
 * it (delta's step passed in), then exponentiated in float: the exponent
 * lies in [-ln(1/target)/fast_pct, 0] (-15.4 for HyenaDNA's), so its
 * rounding to float costs ~1e-6 of the factor, well inside the fp32
 * checks, while an exp in double per element made this pass ~2.5x its byte
 * floor at L = 131072. */
__global__ void modulate_kernel(float *k, int64_t rows, int64_t cols, int64_t l_max, double lo, double step)
{
    FOR_ROWS(l, rows)
    {
        double t = l_max > 1 ? (double)l / (double)(l_max - 1) : 0.0;
        float *kr = k + l * cols;
        FOR_COLS(c, cols) kr[c] *= expf((float)(-t * fabs(lo + (double)c * step)));
    }
}

extern "C" cudaError_t mdk_hyena_modulate(float *k, int64_t rows, int64_t cols, int64_t l_max, double target,
                                          double fast_pct, double slow_pct, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    double lo = log(target) / slow_pct, hi = log(target) / fast_pct;
    double step = cols > 1 ? (hi - lo) / (double)(cols - 1) : 0.0;
    modulate_kernel<<<row_grid(rows), 256, 0, s>>>(k, rows, cols, l_max, lo, step);
    return cudaGetLastError();
}

/* ---- depthwise causal conv with bias (the short filter) ---- */

template <class T>
__global__ void dwconv_fwd_kernel(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w,
                                  const float *bias, int64_t rows, int64_t len, int64_t dim, int K)
{
    FOR_ROWS(r, rows)
    {
        int64_t t = r % len;
        int j0 = t < K - 1 ? K - 1 - (int)t : 0;
        FOR_COLS(e, dim)
        {
            float acc = bias[e];
            for (int j = j0; j < K; j++) acc += w[e * K + j] * ld_f(x + (r - K + 1 + j) * ldx + e);
            st_f(y + r * ldy + e, acc);
        }
    }
}

/* The short conv over channel pairs, for the common case (width <= 4,
 * even dim and row strides, pair-aligned pointers): a thread owns channels
 * (c, c+1) (ld_pair) and DW_RUN consecutive rows, walked with the K - 1
 * neighbouring rows of x (dy) kept in registers, so each input is loaded
 * once instead of K times; w and the bias are loaded once per thread.
 * Blocks are 32 pairs x 8 runs. The sums run in the generic kernels'
 * order: the same bits. */
enum { DW_RUN = 16, DW_PAIR_MAXK = 4 };

__device__ __forceinline__ void fma_pair(float2 *acc, float2 w, float2 x) { acc->x += w.x * x.x, acc->y += w.y * x.y; }

/* The pair kernels' grid, or a zero grid when the shape needs the generic kernels. */
static dim3 dw_pair_grid(const void *a, int64_t lda, const void *b, int64_t ldb, size_t es, int64_t rows, int64_t dim,
                         int K)
{
    int64_t gy = (rows + 8 * DW_RUN - 1) / (8 * DW_RUN);
    int ok = K <= DW_PAIR_MAXK && gy <= 65535 && pairs_ok(dim, es, a, lda, b, ldb, a, lda);
    return ok ? dim3((unsigned)((dim / 2 + 31) / 32), (unsigned)gy) : dim3(0, 0);
}

/* y = bias + sum_j w[j] x[t-K+1+j]; win[j] holds x at row r - K + 1 + j */
template <class T>
__global__ void __launch_bounds__(256) dwconv_fwd_pairs_kernel(T *y, int64_t ldy, const T *x, int64_t ldx,
                                                             const float *w, const float *bias, int64_t rows,
                                                             int64_t len, int64_t dim, int K)
{
    int64_t c = ((int64_t)blockIdx.x * 32 + threadIdx.x) * 2, a = ((int64_t)blockIdx.y * 8 + threadIdx.y) * DW_RUN;
    if (c >= dim || a >= rows) return;
    int64_t b = a + DW_RUN < rows ? a + DW_RUN : rows, t = a % len;
    float2 wj[DW_PAIR_MAXK], win[DW_PAIR_MAXK], bs = make_float2(bias[c], bias[c + 1]);
#pragma unroll
    for (int j = 0; j < DW_PAIR_MAXK; j++) {
        wj[j] = j < K ? make_float2(w[c * K + j], w[(c + 1) * K + j]) : make_float2(0, 0);
        win[j] = j < K - 1 && t - K + 1 + j >= 0 ? ld_pair(x + (a - K + 1 + j) * ldx + c) : make_float2(0, 0);
    }
    for (int64_t r = a; r < b; r++) {
        float2 acc = bs, xr = ld_pair(x + r * ldx + c);
#pragma unroll
        for (int j = 0; j < DW_PAIR_MAXK; j++) {
            if (j == K - 1) win[j] = xr;
            if (j < K) fma_pair(&acc, wj[j], win[j]);
        }
        st_pair(y + r * ldy + c, acc);
        if (++t == len) {   /* the next row starts a sequence */
            t = 0;
#pragma unroll
            for (int j = 0; j < DW_PAIR_MAXK; j++) win[j] = make_float2(0, 0);
        } else {
#pragma unroll
            for (int j = 0; j + 1 < DW_PAIR_MAXK; j++) win[j] = win[j + 1];
        }
    }
}

/* dx[t] = sum_j w[j] dy[t + K-1-j] within the sequence: the rows walked
 * downwards, nxt[i] holding dy at row r + i (zeros past a sequence's end) */
template <class T>
__global__ void __launch_bounds__(256) dwconv_dx_pairs_kernel(T *dx, int64_t lddx, const T *dy, int64_t lddy,
                                                            const float *w, int64_t rows, int64_t len, int64_t dim,
                                                            int K)
{
    int64_t c = ((int64_t)blockIdx.x * 32 + threadIdx.x) * 2, a = ((int64_t)blockIdx.y * 8 + threadIdx.y) * DW_RUN;
    if (c >= dim || a >= rows) return;
    int64_t b = a + DW_RUN < rows ? a + DW_RUN : rows, t = (b - 1) % len;
    float2 wr[DW_PAIR_MAXK], nxt[DW_PAIR_MAXK];   /* wr[i] = w[K-1-i] */
#pragma unroll
    for (int i = 0; i < DW_PAIR_MAXK; i++) {
        wr[i] = i < K ? make_float2(w[c * K + K - 1 - i], w[(c + 1) * K + K - 1 - i]) : make_float2(0, 0);
        nxt[i] = i >= 1 && i < K && t + i < len ? ld_pair(dy + (b - 1 + i) * lddy + c) : make_float2(0, 0);
    }
    for (int64_t r = b - 1; r >= a; r--) {
        nxt[0] = ld_pair(dy + r * lddy + c);
        float2 acc = make_float2(0, 0);
#pragma unroll
        for (int i = 0; i < DW_PAIR_MAXK; i++)
            if (i < K) fma_pair(&acc, wr[i], nxt[i]);
        st_pair(dx + r * lddx + c, acc);
        if (t == 0) {   /* the row before ends the previous sequence */
            t = len - 1;
#pragma unroll
            for (int i = 0; i < DW_PAIR_MAXK; i++) nxt[i] = make_float2(0, 0);
        } else {
            t--;
#pragma unroll
            for (int i = DW_PAIR_MAXK - 1; i >= 1; i--) nxt[i] = nxt[i - 1];
        }
    }
}

template <class T>
static void dwconv_fwd(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w, const float *bias, int64_t rows,
                       int64_t len, int64_t dim, int K, cudaStream_t s)
{
    dim3 g = dw_pair_grid(y, ldy, x, ldx, sizeof(T), rows, dim, K);
    if (g.x)
        dwconv_fwd_pairs_kernel<T><<<g, dim3(32, 8), 0, s>>>(y, ldy, x, ldx, w, bias, rows, len, dim, K);
    else
        dwconv_fwd_kernel<T><<<row_grid(rows), 256, 0, s>>>(y, ldy, x, ldx, w, bias, rows, len, dim, K);
}

extern "C" cudaError_t mdk_dwconv_fwd(void *y, int64_t ldy, const void *x, int64_t ldx, const float *w,
                                      const float *bias, int64_t batch, int64_t len, int64_t dim, int64_t width,
                                      int act_bf16, cudaStream_t s)
{
    if (batch * len * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_DWCONV_MAXK) return cudaErrorInvalidValue;
    WITH_ACT_TYPE(act_bf16, dwconv_fwd<T>((T *)y, ldy, (const T *)x, ldx, w, bias, batch * len, len, dim, (int)width,
                                          s));
    return cudaGetLastError();
}

/* dx[t] = sum_j w[j] dy[t + K-1-j] within the sequence */
template <class T>
__global__ void dwconv_dx_kernel(T *dx, int64_t lddx, const T *dy, int64_t lddy, const float *w,
                                 int64_t rows, int64_t len, int64_t dim, int K)
{
    FOR_ROWS(r, rows)
    {
        int64_t t = r % len;
        /* taps j with t + K-1-j < len: j >= j0 */
        int j0 = t + K - 1 >= len ? (int)(t + K - len) : 0;
        FOR_COLS(e, dim)
        {
            float acc = 0;
            for (int j = K - 1; j >= j0; j--) acc += w[e * K + j] * ld_f(dy + (r + K - 1 - j) * lddy + e);
            st_f(dx + r * lddx + e, acc);
        }
    }
}

/* Per-slice partials of dw (tap j < K, at [j][c]) and dbias (at [K][c]):
 * a block owns 32 columns x one slice of rows, cut into 8 contiguous runs,
 * one per thread row, added in run order. A thread walks its run keeping
 * the last K values of x in registers (zeros before a sequence's start),
 * so x and dy are each read once and the position in the sequence is one
 * remainder per run, not per element. KMAX >= K, a compile-time bound so
 * the window stays in registers. */
template <int KMAX, class T>
__global__ void __launch_bounds__(256) dwconv_dw_kernel(float *part, const T *dy, int64_t lddy, const T *x,
                                                      int64_t ldx, int64_t rows, int64_t len, int64_t dim, int K,
                                                      int64_t rows_per_slice)
{
    __shared__ float sh[KMAX + 1][8][33];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice;
    int64_t r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
    int64_t run = (r1 - r0 + 7) / 8, a = r0 + threadIdx.y * run, b = a + run < r1 ? a + run : r1;
    float acc[KMAX + 1], win[KMAX];   /* win[j]: x at row r - K + 1 + j */
#pragma unroll
    for (int j = 0; j <= KMAX; j++) acc[j] = 0;
    if (c < dim && a < b) {
        int64_t t = a % len;
#pragma unroll
        for (int j = 0; j < KMAX; j++)
            win[j] = j < K - 1 && t - K + 1 + j >= 0 ? ld_f(x + (a - K + 1 + j) * ldx + c) : 0.0f;
        for (int64_t r = a; r < b; r++) {
            float g = ld_f(dy + r * lddy + c), xr = ld_f(x + r * ldx + c);
#pragma unroll
            for (int j = 0; j < KMAX; j++) {
                if (j == K - 1) win[j] = xr;
                if (j < K) acc[j] += g * win[j];
            }
            acc[KMAX] += g;
            if (++t == len) {   /* the next row starts a sequence */
                t = 0;
#pragma unroll
                for (int j = 0; j < KMAX; j++) win[j] = 0.0f;
            } else {
#pragma unroll
                for (int j = 0; j + 1 < KMAX; j++) win[j] = win[j + 1];
            }
        }
    }
#pragma unroll
    for (int j = 0; j <= KMAX; j++) sh[j][threadIdx.y][threadIdx.x] = acc[j];
    __syncthreads();
    if (c >= dim) return;
    for (int j = threadIdx.y; j <= K; j += 8) {
        int src = j == K ? KMAX : j;
        float sum = 0;
        for (int k = 0; k < 8; k++) sum += sh[src][k][threadIdx.x];
        part[(int64_t)blockIdx.y * (K + 1) * dim + (int64_t)j * dim + c] = sum;
    }
}

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

template <class T>
static cudaError_t dwconv_bwd(T *dx, int64_t lddx, float *dw, float *dbias, const T *dy, int64_t lddy, const T *x,
                              int64_t ldx, const float *w, int64_t rows, int64_t len, int64_t dim, int K,
                              float *scratch, size_t scratch_floats, cudaStream_t s)
{
    dim3 g = dw_pair_grid(dx, lddx, dy, lddy, sizeof(T), rows, dim, K);
    if (g.x)
        dwconv_dx_pairs_kernel<T><<<g, dim3(32, 8), 0, s>>>(dx, lddx, dy, lddy, w, rows, len, dim, K);
    else
        dwconv_dx_kernel<T><<<row_grid(rows), 256, 0, s>>>(dx, lddx, dy, lddy, w, rows, len, dim, K);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    int64_t width_p = (int64_t)(K + 1) * dim;
    int64_t slices = mdk_reduce_slices(rows, width_p, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    dim3 grid((unsigned)((dim + 31) / 32), (unsigned)slices), block(32, 8);
    if (K <= 4)   /* the Hyena short filter is 3 wide */
        dwconv_dw_kernel<4, T><<<grid, block, 0, s>>>(scratch, dy, lddy, x, ldx, rows, len, dim, K, per);
    else
        dwconv_dw_kernel<MDK_DWCONV_MAXK, T><<<grid, block, 0, s>>>(scratch, dy, lddy, x, ldx, rows, len, dim, K, per);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    dwconv_wsum_kernel<<<hyena_grid(width_p), 256, 0, s>>>(dw, dbias, scratch, slices, dim, K);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_dwconv_bwd(void *dx, int64_t lddx, float *dw, float *dbias, const void *dy, int64_t lddy,
                                      const void *x, int64_t ldx, const float *w, int64_t batch, int64_t len,
                                      int64_t dim, int64_t width, float *scratch, size_t scratch_floats, int act_bf16,
                                      cudaStream_t s)
{
    int64_t rows = batch * len;
    if (rows * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_DWCONV_MAXK) return cudaErrorInvalidValue;
    cudaError_t e;
    WITH_ACT_TYPE(act_bf16, e = dwconv_bwd<T>((T *)dx, lddx, dw, dbias, (const T *)dy, lddy, (const T *)x, ldx, w,
                                              rows, len, dim, (int)width, scratch, scratch_floats, s));
    return e;
}
