/* RMSNorm forward (plain, and fused with the residual add before it) and
 * backward (backend_kernels.h): one warp per row; the weight gradient's sum
 * over rows goes through per-slice partials. */
#include "backend_kernels.h"

#include <math.h>

#include "storage.cuh"

enum { RW = 8 };   /* rows (warps) per block */

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* y = x * rstd * w of row r, x read at xr (the input, or the fused add's
 * h_out); lane `lane` touches columns lane, lane + 32, ... only. TY: the
 * output's storage (f32, or bf16 for the bf16 table's activations). */
template <typename TY>
__device__ static void rmsnorm_row(TY *yr, float *rstd, int64_t r, const float *xr, const float *w, int64_t dim,
                                   double eps, int lane)
{
    float ss = 0;
    for (int64_t c = lane; c < dim; c += 32) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    float rs = (float)(1.0 / sqrt((double)ss / (double)dim + eps));
    if (lane == 0) rstd[r] = rs;
    for (int64_t c = lane; c < dim; c += 32) st_f(yr + c, xr[c] * rs * w[c]);
}

template <typename TY>
__global__ void __launch_bounds__(RW * 32) rmsnorm_fwd_kernel(TY *y, int64_t ldy, float *rstd, const float *x,
                                                            int64_t ldx, const float *w, int64_t rows,
                                                            int64_t dim, double eps)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * RW + (threadIdx.x >> 5);
    if (r >= rows) return;
    rmsnorm_row(y + r * ldy, rstd, r, x + r * ldx, w, dim, eps, lane);
}

template <typename TY>
static cudaError_t rmsnorm_fwd(TY *y, int64_t ldy, float *rstd, const float *x, int64_t ldx, const float *w,
                               int64_t rows, int64_t dim, double eps, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    rmsnorm_fwd_kernel<<<(unsigned)((rows + RW - 1) / RW), RW * 32, 0, s>>>(y, ldy, rstd, x, ldx, w, rows, dim, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_rmsnorm_fwd(float *y, int64_t ldy, float *rstd, const float *x, int64_t ldx,
                                       const float *w, int64_t rows, int64_t dim, double eps, cudaStream_t s)
{
    return rmsnorm_fwd(y, ldy, rstd, x, ldx, w, rows, dim, eps, s);
}

extern "C" cudaError_t mdk_rmsnorm_fwd_bf16(void *y, int64_t ldy, float *rstd, const float *x, int64_t ldx,
                                            const float *w, int64_t rows, int64_t dim, double eps, cudaStream_t s)
{
    return rmsnorm_fwd((__nv_bfloat16 *)y, ldy, rstd, x, ldx, w, rows, dim, eps, s);
}

/* h = hin + xadd, then the norm of h: each lane reads back only the
 * columns it wrote itself, so h may alias hin or xadd and no barrier is
 * needed between the two passes */
template <typename TY>
__global__ void __launch_bounds__(RW * 32) add_rmsnorm_fwd_kernel(float *h, int64_t ldh, TY *y, int64_t ldy,
                                                                float *rstd, const float *hin, int64_t ldhin,
                                                                const float *xadd, int64_t ldxadd, const float *w,
                                                                int64_t rows, int64_t dim, double eps)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * RW + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *hr = h + r * ldh;
    const float *ar = hin + r * ldhin, *br = xadd + r * ldxadd;
    for (int64_t c = lane; c < dim; c += 32) hr[c] = ar[c] + br[c];
    rmsnorm_row(y + r * ldy, rstd, r, hr, w, dim, eps, lane);
}

template <typename TY>
static cudaError_t add_rmsnorm_fwd(float *h, int64_t ldh, TY *y, int64_t ldy, float *rstd, const float *hin,
                                   int64_t ldhin, const float *xadd, int64_t ldxadd, const float *w, int64_t rows,
                                   int64_t dim, double eps, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    add_rmsnorm_fwd_kernel<<<(unsigned)((rows + RW - 1) / RW), RW * 32, 0, s>>>(h, ldh, y, ldy, rstd, hin, ldhin,
                                                                                xadd, ldxadd, w, rows, dim, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_add_rmsnorm_fwd(float *h, int64_t ldh, float *y, int64_t ldy, float *rstd,
                                           const float *hin, int64_t ldhin, const float *xadd, int64_t ldxadd,
                                           const float *w, int64_t rows, int64_t dim, double eps, cudaStream_t s)
{
    return add_rmsnorm_fwd(h, ldh, y, ldy, rstd, hin, ldhin, xadd, ldxadd, w, rows, dim, eps, s);
}

extern "C" cudaError_t mdk_add_rmsnorm_fwd_bf16(float *h, int64_t ldh, void *y, int64_t ldy, float *rstd,
                                                const float *hin, int64_t ldhin, const float *xadd, int64_t ldxadd,
                                                const float *w, int64_t rows, int64_t dim, double eps,
                                                cudaStream_t s)
{
    return add_rmsnorm_fwd(h, ldh, (__nv_bfloat16 *)y, ldy, rstd, hin, ldhin, xadd, ldxadd, w, rows, dim, eps, s);
}

template <typename TD>
__global__ void __launch_bounds__(RW * 32) rmsnorm_dx_kernel(float *dx, int64_t lddx, const TD *dy,
                                                           int64_t lddy, const float *x, int64_t ldx,
                                                           const float *w, const float *rstd, int64_t rows,
                                                           int64_t dim, int accumulate)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * RW + (threadIdx.x >> 5);
    if (r >= rows) return;
    const float *xr = x + r * ldx;
    const TD *dyr = dy + r * lddy;
    float *dxr = dx + r * lddx;
    float rs = rstd[r], gx = 0;
    for (int64_t c = lane; c < dim; c += 32) gx += ld_f(dyr + c) * w[c] * xr[c];
    gx = warp_sum(gx);
    float k = rs * rs * gx / (float)dim;
    if (accumulate)
        for (int64_t c = lane; c < dim; c += 32) dxr[c] += rs * (ld_f(dyr + c) * w[c] - xr[c] * k);
    else
        for (int64_t c = lane; c < dim; c += 32) dxr[c] = rs * (ld_f(dyr + c) * w[c] - xr[c] * k);
}

/* partial[slice][c] = sum over the slice's rows of dy * x * rstd; 32
 * columns x 8 row lanes per block, the lanes added in order */
template <typename TD>
__global__ void __launch_bounds__(256) rmsnorm_dw_kernel(float *part, const TD *dy, int64_t lddy, const float *x,
                                                       int64_t ldx, const float *rstd, int64_t rows, int64_t dim,
                                                       int64_t rows_per_slice)
{
    __shared__ float sh[8][32];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice, r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
    float acc = 0;
    if (c < dim)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) acc += ld_f(dy + r * lddy + c) * x[r * ldx + c] * rstd[r];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < dim) {
        float s = 0;
        for (int k = 0; k < 8; k++) s += sh[k][threadIdx.x];
        part[(int64_t)blockIdx.y * dim + c] = s;
    }
}

template <typename TD>
static cudaError_t rmsnorm_bwd(float *dx, int64_t lddx, float *dw, const TD *dy, int64_t lddy, const float *x,
                               int64_t ldx, const float *w, const float *rstd, int64_t rows, int64_t dim,
                               int accumulate, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    rmsnorm_dx_kernel<<<(unsigned)((rows + RW - 1) / RW), RW * 32, 0, s>>>(dx, lddx, dy, lddy, x, ldx, w, rstd,
                                                                           rows, dim, accumulate);
    int64_t slices = mdk_reduce_slices(rows, dim, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    rmsnorm_dw_kernel<<<dim3((unsigned)((dim + 31) / 32), (unsigned)slices), dim3(32, 8), 0, s>>>(
        scratch, dy, lddy, x, ldx, rstd, rows, dim, per);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, slices, dim, dim, s);
}

extern "C" cudaError_t mdk_rmsnorm_bwd(float *dx, int64_t lddx, float *dw, const float *dy, int64_t lddy,
                                       const float *x, int64_t ldx, const float *w, const float *rstd, int64_t rows,
                                       int64_t dim, int accumulate, float *scratch, size_t scratch_floats,
                                       cudaStream_t s)
{
    return rmsnorm_bwd(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, rows, dim, accumulate, scratch, scratch_floats, s);
}

extern "C" cudaError_t mdk_rmsnorm_bwd_bf16(float *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy,
                                            const float *x, int64_t ldx, const float *w, const float *rstd,
                                            int64_t rows, int64_t dim, int accumulate, float *scratch,
                                            size_t scratch_floats, cudaStream_t s)
{
    return rmsnorm_bwd(dx, lddx, dw, (const __nv_bfloat16 *)dy, lddy, x, ldx, w, rstd, rows, dim, accumulate,
                       scratch, scratch_floats, s);
}
