/* RMSNorm forward (plain, and fused with the residual add before it) and
 * backward (backend_kernels.h): one warp per row (rows of 128 and 256
 * columns: several rows a warp in rmsnorm_fwd and the backward, in flight
 * together); the weight gradient's sum over rows goes through per-slice
 * partials. */
#include "backend_kernels.h"

#include <math.h>

#include "storage.cuh"

enum { RW = 8 };   /* rows (warps) per block */

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* 1 when dim and every (pointer, row stride, element size) of a call allow
 * the 4-wide accesses of storage.cuh's ld_v / st_v (ld 0: a vector, no
 * stride): a d = 128 row is then one access per lane and tensor, where
 * single values took four dependent rounds */
static int v4_ok(int64_t dim, int n, const void *const *p, const int64_t *ld, const size_t *es)
{
    if (dim % 4) return 0;
    for (int i = 0; i < n; i++)
        if (ld[i] % 4 || (uintptr_t)p[i] % (4 * es[i])) return 0;
    return 1;
}

/* y = x * rstd * w of row r, x read at xr (the input, or the fused add's
 * h_out); lane `lane` touches columns [lane V, lane V + V), + 32 V, ...
 * only. TY: the output's storage (f32, or bf16 for the bf16 table's
 * activations). */
template <int V, typename TY>
__device__ static void rmsnorm_row(TY *yr, float *rstd, int64_t r, const float *xr, const float *w, int64_t dim,
                                   double eps, int lane)
{
    float ss = 0, xv[V], wv[V], out[V];
    for (int64_t c = lane * V; c < dim; c += 32 * V) {
        ld_v<V>(xr + c, xv);
        for (int k = 0; k < V; k++) ss += xv[k] * xv[k];
    }
    ss = warp_sum(ss);
    float rs = (float)(1.0 / sqrt((double)ss / (double)dim + eps));
    if (lane == 0) rstd[r] = rs;
    for (int64_t c = lane * V; c < dim; c += 32 * V) {
        ld_v<V>(xr + c, xv), ld_v<V>(w + c, wv);
        for (int k = 0; k < V; k++) out[k] = xv[k] * rs * wv[k];
        st_v<V>(yr + c, out);
    }
}

/* The row in registers, for dim = NC x 32 V (NC <= MAX_NC: the Mamba and
 * Transformer++ widths): each lane's NC vectors of the row are loaded (all
 * of them, by the caller, before any is used) and kept, so that a row is
 * read once, where the loops above read it twice, and a kernel's loads for
 * a row are in flight together. The sums run in the loops' order: the
 * same bits (the Mamba backward's recompute of hn relies on that). On the
 * H200 at M 131072: rmsnorm_fwd 52 -> 41 us (d 128), 73 -> 61 (d 256);
 * the backward and the fused add 0-6% (NOTES-backend.md, "The Mamba step
 * around the scan, continued"). */
enum { MAX_NC = 4 };

/* NC for the register path of a call (0: the loops), given that V = 4
 * accesses are allowed */
static int row_chunks(int64_t dim)
{
    return dim % 128 == 0 && dim / 128 <= MAX_NC ? (int)(dim / 128) : 0;
}

/* Rows a warp has in flight on the register path of each kernel: the
 * loads of all of them are issued before any row's sum (with one row a
 * warp, a d = 128 row is one 16-byte vector a lane, and each warp waits a
 * whole round trip, its shuffles and its stores for it). Each row is still
 * summed in the loops' order: the same bits as one row a warp. Measured on
 * the H200 at M 131072, bf16 (NOTES-backend.md, "RMSNorm: rows a warp in
 * flight"): rmsnorm_fwd with 4 vectors a lane (4 rows at d 128: 41 -> 35
 * us; 2 at d 256: unchanged, 60), the fused backward with 2 rows (d 128:
 * 90 -> 83 us, d 256: 155 -> 148; 4 rows 90 and 171, 8 rows 112 at d 128:
 * fewer blocks an SM), add_rmsnorm_fwd with one (2 or 4 rows: 1-3% slower
 * at d 128). */
enum { RK_FWD, RK_ADD, RK_BWD };
__host__ __device__ constexpr int warp_rows(int kernel, int nc)
{
    return nc <= 0 || kernel == RK_ADD ? 1 : kernel == RK_BWD ? (nc <= 2 ? 2 : 1) : nc >= 4 ? 1 : 4 / nc;
}

/* warp_sum of R values at once, each in warp_sum's order: the R rows'
 * shuffles overlap */
template <int R> __device__ static void warp_sums(float (&v)[R])
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int i = 0; i < R; i++) v[i] += __shfl_xor_sync(0xffffffffu, v[i], o);
}

/* y and rstd of rows r0 .. r0 + R - 1 (those below rows) from their values
 * in registers, xv[i] row r0 + i */
template <int V, int NC, int R, typename TY>
__device__ static void rmsnorm_rows_regs(TY *y, int64_t ldy, float *rstd, int64_t r0, int64_t rows,
                                         const float (&xv)[R][NC][V], const float *w, int64_t dim, double eps, int lane)
{
    float rs[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
        rs[i] = 0;
#pragma unroll
        for (int j = 0; j < NC; j++)
#pragma unroll
            for (int k = 0; k < V; k++) rs[i] += xv[i][j][k] * xv[i][j][k];
    }
    warp_sums<R>(rs);
#pragma unroll
    for (int i = 0; i < R; i++) {
        rs[i] = (float)(1.0 / sqrt((double)rs[i] / (double)dim + eps));
        if (lane == 0 && r0 + i < rows) rstd[r0 + i] = rs[i];
    }
#pragma unroll
    for (int j = 0; j < NC; j++) {
        const int64_t c = (int64_t)(j * 32 + lane) * V;
        float wv[V];
        ld_v<V>(w + c, wv);
#pragma unroll
        for (int i = 0; i < R; i++) {
            if (r0 + i >= rows) break;
            float out[V];
#pragma unroll
            for (int k = 0; k < V; k++) out[k] = xv[i][j][k] * rs[i] * wv[k];
            st_v<V>(y + (r0 + i) * ldy + c, out);
        }
    }
}

/* launches KERNEL<V, NC> (NC 0: the loops) with the arguments that follow */
#define LAUNCH_ROWS(KERNEL, v4, nc, grid, block, shared, s, ...)                                  \
    do {                                                                                          \
        if (!(v4)) KERNEL<1, 0><<<grid, block, shared, s>>>(__VA_ARGS__);                         \
        else if ((nc) == 1) KERNEL<4, 1><<<grid, block, shared, s>>>(__VA_ARGS__);                \
        else if ((nc) == 2) KERNEL<4, 2><<<grid, block, shared, s>>>(__VA_ARGS__);                \
        else if ((nc) == 3) KERNEL<4, 3><<<grid, block, shared, s>>>(__VA_ARGS__);                \
        else if ((nc) == 4) KERNEL<4, 4><<<grid, block, shared, s>>>(__VA_ARGS__);                \
        else KERNEL<4, 0><<<grid, block, shared, s>>>(__VA_ARGS__);                               \
    } while (0)

/* the grid of a forward kernel: blocks of RW warps, warp_rows(kernel, nc)
 * rows each */
static unsigned fwd_grid(int64_t rows, int kernel, int nc)
{
    const int64_t per_block = (int64_t)RW * warp_rows(kernel, nc);
    return (unsigned)((rows + per_block - 1) / per_block);
}

template <int V, int NC, typename TY>
__global__ void __launch_bounds__(RW * 32) rmsnorm_fwd_kernel(TY *y, int64_t ldy, float *rstd, const float *x,
                                                            int64_t ldx, const float *w, int64_t rows,
                                                            int64_t dim, double eps)
{
    constexpr int R = warp_rows(RK_FWD, NC);
    int lane = threadIdx.x & 31;
    int64_t r = ((int64_t)blockIdx.x * RW + (threadIdx.x >> 5)) * R;
    if (r >= rows) return;
    if constexpr (NC > 0) {
        float xv[R][NC][V] = {};   /* rows past the end: zeros, never stored */
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int j = 0; j < NC; j++)
                if (r + i < rows) ld_v<V>(x + (r + i) * ldx + (j * 32 + lane) * V, xv[i][j]);
        rmsnorm_rows_regs<V, NC, R>(y, ldy, rstd, r, rows, xv, w, dim, eps, lane);
    } else {
        rmsnorm_row<V>(y + r * ldy, rstd, r, x + r * ldx, w, dim, eps, lane);
    }
}

template <typename TY>
static cudaError_t rmsnorm_fwd(TY *y, int64_t ldy, float *rstd, const float *x, int64_t ldx, const float *w,
                               int64_t rows, int64_t dim, double eps, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    const void *p[] = {y, x, w};
    const int64_t ld[] = {ldy, ldx, 0};
    const size_t es[] = {sizeof(TY), 4, 4};
    int v4 = v4_ok(dim, 3, p, ld, es), nc = v4 ? row_chunks(dim) : 0;
    LAUNCH_ROWS(rmsnorm_fwd_kernel, v4, nc, fwd_grid(rows, RK_FWD, nc), RW * 32, 0, s, y, ldy, rstd, x, ldx, w, rows,
                dim, eps);
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
template <int V, int NC, typename TY>
__global__ void __launch_bounds__(RW * 32) add_rmsnorm_fwd_kernel(float *h, int64_t ldh, TY *y, int64_t ldy,
                                                                float *rstd, const float *hin, int64_t ldhin,
                                                                const float *xadd, int64_t ldxadd, const float *w,
                                                                int64_t rows, int64_t dim, double eps)
{
    constexpr int R = warp_rows(RK_ADD, NC);
    int lane = threadIdx.x & 31;
    int64_t r = ((int64_t)blockIdx.x * RW + (threadIdx.x >> 5)) * R;
    if (r >= rows) return;
    if constexpr (NC > 0) {
        float av[R][NC][V] = {}, bv[R][NC][V] = {};
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int j = 0; j < NC; j++) {
                const int64_t c = (int64_t)(j * 32 + lane) * V;
                if (r + i < rows)
                    ld_v<V>(hin + (r + i) * ldhin + c, av[i][j]), ld_v<V>(xadd + (r + i) * ldxadd + c, bv[i][j]);
            }
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int j = 0; j < NC; j++) {
#pragma unroll
                for (int k = 0; k < V; k++) av[i][j][k] += bv[i][j][k];
                if (r + i < rows) st_v<V>(h + (r + i) * ldh + (j * 32 + lane) * V, av[i][j]);
            }
        rmsnorm_rows_regs<V, NC, R>(y, ldy, rstd, r, rows, av, w, dim, eps, lane);
    } else {
        float *hr = h + r * ldh;
        const float *ar = hin + r * ldhin, *br = xadd + r * ldxadd;
        for (int64_t c = lane * V; c < dim; c += 32 * V) {
            float av[V], bv[V];
            ld_v<V>(ar + c, av), ld_v<V>(br + c, bv);
            for (int k = 0; k < V; k++) av[k] += bv[k];
            st_v<V>(hr + c, av);
        }
        rmsnorm_row<V>(y + r * ldy, rstd, r, hr, w, dim, eps, lane);
    }
}

template <typename TY>
static cudaError_t add_rmsnorm_fwd(float *h, int64_t ldh, TY *y, int64_t ldy, float *rstd, const float *hin,
                                   int64_t ldhin, const float *xadd, int64_t ldxadd, const float *w, int64_t rows,
                                   int64_t dim, double eps, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    const void *p[] = {h, y, hin, xadd, w};
    const int64_t ld[] = {ldh, ldy, ldhin, ldxadd, 0};
    const size_t es[] = {4, sizeof(TY), 4, 4, 4};
    int v4 = v4_ok(dim, 5, p, ld, es), nc = v4 ? row_chunks(dim) : 0;
    LAUNCH_ROWS(add_rmsnorm_fwd_kernel, v4, nc, fwd_grid(rows, RK_ADD, nc), RW * 32, 0, s, h, ldh, y, ldy, rstd, hin,
                ldhin, xadd, ldxadd, w, rows, dim, eps);
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

/* dx of row r (= or += by accumulate), and its bf16 copy at d16r when
 * that is set; adds the row's dy * x * rstd into dw_acc[c] for the lane's
 * columns when dw_acc is set */
template <int V, typename TD>
__device__ static void rmsnorm_dx_row(float *dxr, __nv_bfloat16 *d16r, const TD *dyr, const float *xr,
                                      const float *w, float rs, int64_t dim, int accumulate, float *dw_acc, int lane)
{
    float gx = 0, g[V], x[V], wv[V], d[V];
    for (int64_t c = lane * V; c < dim; c += 32 * V) {
        ld_v<V>(dyr + c, g), ld_v<V>(xr + c, x), ld_v<V>(w + c, wv);
        for (int k = 0; k < V; k++) gx += g[k] * wv[k] * x[k];
    }
    gx = warp_sum(gx);
    float kx = rs * rs * gx / (float)dim;
    for (int64_t c = lane * V; c < dim; c += 32 * V) {
        ld_v<V>(dyr + c, g), ld_v<V>(xr + c, x), ld_v<V>(w + c, wv);
        if (accumulate) ld_v<V>(dxr + c, d);
        for (int k = 0; k < V; k++) {
            float dk = rs * (g[k] * wv[k] - x[k] * kx);
            d[k] = accumulate ? d[k] + dk : dk;
            if (dw_acc) dw_acc[c + k] += g[k] * x[k] * rs;
        }
        st_v<V>(dxr + c, d);
        if (d16r) st_v<V>(d16r + c, d);
    }
}

/* rmsnorm_dx_row with the rows in registers (dim = NC x 32 V; dw_acc
 * set) for R rows at once, r0, r0 + step, ... (those below rows): dy, x,
 * (accumulating) dx and rstd of all of them loaded together, one round
 * trip for R rows where the loops wait on dy and x, then again on dx of
 * each. Each row's sums in the loops' order, and dw_acc's additions to a
 * column in row order: the same bits as one row at a time, except that an
 * accumulated dx is d + rs e in one rounding (fma) in every column, where
 * one row a warp rounded rs e first in each lane's first column of a
 * vector (a contraction the compiler chose; 1 ulp at most). */
template <int V, int NC, int R, typename TD>
__device__ static void rmsnorm_dx_rows_regs(float *dx, int64_t lddx, __nv_bfloat16 *d16, int64_t ld16, const TD *dy,
                                            int64_t lddy, const float *xs, int64_t ldx, const float *w,
                                            const float *rstd, int64_t r0, int64_t step, int64_t rows, int64_t dim,
                                            int accumulate, float *dw_acc, int lane)
{
    float g[R][NC][V] = {}, x[R][NC][V] = {}, d[R][NC][V] = {}, rs[R] = {}, kx[R], wv[V];
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int64_t r = r0 + i * step;
        if (r >= rows) break;
        rs[i] = rstd[r];
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const int64_t c = (int64_t)(j * 32 + lane) * V;
            ld_v<V>(dy + r * lddy + c, g[i][j]), ld_v<V>(xs + r * ldx + c, x[i][j]);
            if (accumulate) ld_v<V>(dx + r * lddx + c, d[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++) kx[i] = 0;
#pragma unroll
    for (int j = 0; j < NC; j++) {
        ld_v<V>(w + (j * 32 + lane) * V, wv);
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int k = 0; k < V; k++) kx[i] += g[i][j][k] * wv[k] * x[i][j][k];
    }
    warp_sums<R>(kx);
#pragma unroll
    for (int i = 0; i < R; i++) kx[i] = rs[i] * rs[i] * kx[i] / (float)dim;
#pragma unroll
    for (int j = 0; j < NC; j++) {
        const int64_t c = (int64_t)(j * 32 + lane) * V;
        ld_v<V>(w + c, wv);
#pragma unroll
        for (int i = 0; i < R; i++) {
            const int64_t r = r0 + i * step;
            if (r >= rows) break;
#pragma unroll
            for (int k = 0; k < V; k++) {
                /* the roundings spelled out: the compiler's contraction of
                 * the accumulating add otherwise depends on the code
                 * around it (one row a warp left the first column of each
                 * lane's vector unfused, the others fused) */
                const float e = __fsub_rn(__fmul_rn(g[i][j][k], wv[k]), __fmul_rn(x[i][j][k], kx[i]));
                d[i][j][k] = accumulate ? __fmaf_rn(rs[i], e, d[i][j][k]) : __fmul_rn(rs[i], e);
                dw_acc[c + k] = __fmaf_rn(__fmul_rn(g[i][j][k], x[i][j][k]), rs[i], dw_acc[c + k]);
            }
            st_v<V>(dx + r * lddx + c, d[i][j]);
            if (d16) st_v<V>(d16 + r * ld16 + c, d[i][j]);
        }
    }
}

template <int V, typename TD>
__global__ void __launch_bounds__(RW * 32) rmsnorm_dx_kernel(float *dx, int64_t lddx, __nv_bfloat16 *d16,
                                                           int64_t ld16, const TD *dy,
                                                           int64_t lddy, const float *x, int64_t ldx,
                                                           const float *w, const float *rstd, int64_t rows,
                                                           int64_t dim, int accumulate)
{
    int64_t r = (int64_t)blockIdx.x * RW + (threadIdx.x >> 5);
    if (r >= rows) return;
    rmsnorm_dx_row<V>(dx + r * lddx, d16 ? d16 + r * ld16 : d16, dy + r * lddy, x + r * ldx, w, rstd[r], dim,
                      accumulate, (float *)NULL, threadIdx.x & 31);
}

/* dx and the weight gradient's partials in one pass over dy and x: block b
 * (one slice) walks rows b RW + warp, stepping gridDim.x RW (the register
 * path warp_rows(RK_BWD, NC) of those rows at once); each warp
 * sums its rows' dy * x * rstd into a row of shared memory of its own
 * (RW x dim floats), and the block writes part[b][c] = the warps' sums
 * added in warp order. A fixed grid for a given row count: fixed order. */
template <int V, int NC, typename TD>
__global__ void __launch_bounds__(RW * 32) rmsnorm_bwd_fused_kernel(float *dx, int64_t lddx, __nv_bfloat16 *d16,
                                                                  int64_t ld16, float *part,
                                                                  const TD *dy, int64_t lddy, const float *x,
                                                                  int64_t ldx, const float *w, const float *rstd,
                                                                  int64_t rows, int64_t dim, int accumulate)
{
    extern __shared__ float dw_acc[];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *mine = dw_acc + warp * dim;
    for (int64_t c = lane; c < dim; c += 32) mine[c] = 0;
    const int64_t step = (int64_t)gridDim.x * RW;
    if constexpr (NC > 0) {
        constexpr int R = warp_rows(RK_BWD, NC);
        for (int64_t r = (int64_t)blockIdx.x * RW + warp; r < rows; r += R * step)
            rmsnorm_dx_rows_regs<V, NC, R>(dx, lddx, d16, ld16, dy, lddy, x, ldx, w, rstd, r, step, rows, dim,
                                           accumulate, mine, lane);
    } else {
        for (int64_t r = (int64_t)blockIdx.x * RW + warp; r < rows; r += step)
            rmsnorm_dx_row<V>(dx + r * lddx, d16 ? d16 + r * ld16 : d16, dy + r * lddy, x + r * ldx, w, rstd[r],
                              dim, accumulate, mine, lane);
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < dim; c += RW * 32) {
        float sum = 0;
        for (int k = 0; k < RW; k++) sum += dw_acc[k * dim + c];
        part[(int64_t)blockIdx.x * dim + c] = sum;
    }
}

/* partial[slice][c] = sum over the slice's rows of dy * x * rstd; 32
 * columns x 8 row lanes per block, the lanes added in order (the weight
 * gradient of rows wider than the fused kernel's shared memory holds) */
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

/* The fused kernel's widest row: RW rows of partials in the 48 KB of
 * shared memory a block gets without opting in. */
enum { FUSED_MAX_DIM = 48 * 1024 / (RW * 4) };

template <typename TD>
static cudaError_t rmsnorm_bwd(float *dx, int64_t lddx, float *dw, const TD *dy, int64_t lddy, const float *x,
                               int64_t ldx, const float *w, const float *rstd, int64_t rows, int64_t dim,
                               int accumulate, __nv_bfloat16 *d16, int64_t ld16, float *scratch,
                               size_t scratch_floats, cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    const void *p[] = {dx, dy, x, w, d16};
    const int64_t ld[] = {lddx, lddy, ldx, 0, ld16};
    const size_t es[] = {4, sizeof(TD), 4, 4, 2};
    int v4 = v4_ok(dim, d16 ? 5 : 4, p, ld, es);
    int64_t slices;
    if (dim <= FUSED_MAX_DIM) {
        /* 16 rows per warp at most: enough warps in flight to cover the
         * memory latency, at most 1024 partial rows to add */
        slices = (rows + 16 * RW - 1) / (16 * RW);
        int64_t fit = (int64_t)(scratch_floats / (size_t)dim);
        slices = slices > 1024 ? 1024 : slices > fit ? fit : slices;
        if (slices < 1) slices = 1;
        size_t shared = (size_t)RW * (size_t)dim * sizeof(float);
        LAUNCH_ROWS(rmsnorm_bwd_fused_kernel, v4, row_chunks(dim), (unsigned)slices, RW * 32, shared, s, dx, lddx,
                    d16, ld16, scratch, dy, lddy, x, ldx, w, rstd, rows, dim, accumulate);
    } else {
        unsigned grid = (unsigned)((rows + RW - 1) / RW);
        if (v4)
            rmsnorm_dx_kernel<4><<<grid, RW * 32, 0, s>>>(dx, lddx, d16, ld16, dy, lddy, x, ldx, w, rstd, rows, dim,
                                                          accumulate);
        else
            rmsnorm_dx_kernel<1><<<grid, RW * 32, 0, s>>>(dx, lddx, d16, ld16, dy, lddy, x, ldx, w, rstd, rows, dim,
                                                          accumulate);
        slices = mdk_reduce_slices(rows, dim, scratch_floats);
        int64_t per = (rows + slices - 1) / slices;
        rmsnorm_dw_kernel<<<dim3((unsigned)((dim + 31) / 32), (unsigned)slices), dim3(32, 8), 0, s>>>(
            scratch, dy, lddy, x, ldx, rstd, rows, dim, per);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, slices, dim, dim, s);
}

extern "C" cudaError_t mdk_rmsnorm_bwd(float *dx, int64_t lddx, float *dw, const float *dy, int64_t lddy,
                                       const float *x, int64_t ldx, const float *w, const float *rstd, int64_t rows,
                                       int64_t dim, int accumulate, void *dx16, int64_t ld16, float *scratch,
                                       size_t scratch_floats, cudaStream_t s)
{
    return rmsnorm_bwd(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, rows, dim, accumulate, (__nv_bfloat16 *)dx16, ld16,
                       scratch, scratch_floats, s);
}

extern "C" cudaError_t mdk_rmsnorm_bwd_bf16(float *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy,
                                            const float *x, int64_t ldx, const float *w, const float *rstd,
                                            int64_t rows, int64_t dim, int accumulate, void *dx16, int64_t ld16,
                                            float *scratch, size_t scratch_floats, cudaStream_t s)
{
    return rmsnorm_bwd(dx, lddx, dw, (const __nv_bfloat16 *)dy, lddy, x, ldx, w, rstd, rows, dim, accumulate,
                       (__nv_bfloat16 *)dx16, ld16, scratch, scratch_floats, s);
}
