/* Elementwise ops, the optimizer, and the fixed-order reductions
 * (backend_kernels.h). */
#include "backend_kernels.h"

#include <math.h>

#include "storage.cuh"

static unsigned grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g > 65535 * 16) g = 65535 * 16;   /* grid-stride loops cover the rest */
    return (unsigned)(g < 1 ? 1 : g);
}

extern "C" int64_t mdk_reduce_slices(int64_t rows, int64_t cols_times_width, size_t scratch_floats)
{
    int64_t s = (rows + 255) / 256;
    if (s > 1024) s = 1024;
    int64_t fit = (int64_t)(scratch_floats / (size_t)(cols_times_width > 0 ? cols_times_width : 1));
    if (s > fit) s = fit;
    return s < 1 ? 1 : s;
}

__global__ void add_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        y[r * ldy + c] += x[r * ldx + c];
    }
}

extern "C" cudaError_t mdk_add(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                               cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    add_kernel<<<grid_for(rows * cols, 256), 256, 0, s>>>(y, ldy, x, ldx, rows, cols);
    return cudaGetLastError();
}

__global__ void scale_kernel(float *x, int64_t n, float a)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

extern "C" cudaError_t mdk_scale(float *x, int64_t n, double alpha, cudaStream_t s)
{
    if (n == 0) return cudaSuccess;
    scale_kernel<<<grid_for(n, 256), 256, 0, s>>>(x, n, (float)alpha);
    return cudaGetLastError();
}

/* ---- sum of squares: SUMSQ_BLOCKS fixed ranges, then one block ---- */
enum { SUMSQ_BLOCKS = 1024, RT = 256 };

/* Tree sum of one value per thread in shared memory: a fixed order. */
__device__ static double block_sum_d(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = RT / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

__global__ void __launch_bounds__(RT) sumsq_part_kernel(const float *x, int64_t n, int64_t per_block, double *part)
{
    __shared__ double sh[RT];
    int64_t i0 = blockIdx.x * per_block, i1 = i0 + per_block < n ? i0 + per_block : n;
    double acc = 0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += RT) acc += (double)x[i] * (double)x[i];
    double t = block_sum_d(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

__global__ void __launch_bounds__(RT) sum_parts_kernel(const double *part, int nb, double *out)
{
    __shared__ double sh[RT];
    double acc = 0;
    for (int i = threadIdx.x; i < nb; i += RT) acc += part[i];
    double t = block_sum_d(acc, sh);
    if (threadIdx.x == 0) *out = t;
}

extern "C" size_t mdk_sumsq_scratch_bytes(void) { return SUMSQ_BLOCKS * sizeof(double); }

extern "C" cudaError_t mdk_sumsq(const float *x, int64_t n, double *out, void *scratch, cudaStream_t s)
{
    int64_t per = (n + SUMSQ_BLOCKS - 1) / SUMSQ_BLOCKS;
    if (per < 4096) per = 4096;
    int nb = (int)((n + per - 1) / per);
    if (nb < 1) nb = 1;
    sumsq_part_kernel<<<nb, RT, 0, s>>>(x, n, per, (double *)scratch);
    sum_parts_kernel<<<1, RT, 0, s>>>((const double *)scratch, nb, out);
    return cudaGetLastError();
}

/* ---- AdamW: the CPU's expression, including its double-precision
 * denominator (C's sqrt of a float promotes) ---- */
__device__ static inline void adamw_elem(float *p, const float *g, float *m, float *v, int64_t i, float decay_mul,
                                         float b1, float b2, float gs, float step_size, float bc2_sqrt, float eps)
{
    float gi = g[i] * gs;
    float pi = p[i] * decay_mul;
    float mi = b1 * m[i] + (1 - b1) * gi;
    float vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = (float)((double)pi - (double)(step_size * mi) / (sqrt((double)vi) / (double)bc2_sqrt + (double)eps));
}

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay,
                             float decay_mul, float b1, float b2, float gs, float step_size, float bc2_sqrt,
                             float eps)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        adamw_elem(p, g, m, v, i, i < n_decay ? decay_mul : 1.0f, b1, b2, gs, step_size, bc2_sqrt, eps);
}

extern "C" cudaError_t mdk_adamw(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay,
                                 float decay_mul, float b1, float b2, float gs, float step_size, float bc2_sqrt,
                                 float eps, cudaStream_t s)
{
    if (n == 0) return cudaSuccess;
    adamw_kernel<<<grid_for(n, 256), 256, 0, s>>>(p, g, m, v, n, n_decay, decay_mul, b1, b2, gs, step_size,
                                                  bc2_sqrt, eps);
    return cudaGetLastError();
}

/* dst[i] += sum over the slices of src[k, i]. A block takes 32 columns;
 * its 8 rows of lanes take slices y, y + 8, ... (a fixed partition, so the
 * sum is the same every run) and are added in lane order. One thread per
 * column walking every slice was latency-bound: 0.3 ms for 512 slices. */
__global__ void __launch_bounds__(256) colsum_add_kernel(float *dst, const float *src, int64_t slices,
                                                         int64_t ld_src, int64_t n)
{
    __shared__ float part[8][32];
    const int64_t i = (int64_t)blockIdx.x * 32 + threadIdx.x;
    float acc = 0;
    if (i < n) {
#pragma unroll 8
        for (int64_t k = threadIdx.y; k < slices; k += 8) acc += src[k * ld_src + i];
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && i < n) {
        float sum = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) sum += part[j][threadIdx.x];
        dst[i] += sum;
    }
}

extern "C" cudaError_t mdk_colsum_add(float *dst, const float *src, int64_t slices, int64_t ld_src, int64_t n,
                                      cudaStream_t s)
{
    if (n == 0) return cudaSuccess;
    int64_t blocks = (n + 31) / 32;
    if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
    colsum_add_kernel<<<(unsigned)blocks, dim3(32, 8), 0, s>>>(dst, src, slices, ld_src, n);
    return cudaGetLastError();
}

/* dst = src between the storage dtypes, (rows, cols) views: a warp per row
 * (no division per element), two columns a lane where the pointers and
 * strides allow (storage.cuh's pairs); one long row (the launcher folds a
 * contiguous view into one: the weight copies) spreads over the whole
 * grid. g's bf16 copy for the Hyena GEMMs (twice a block) went ~2.7x its
 * byte floor with one element and one 64-bit division a thread. */
template <typename TD, typename TS, bool PAIRS>
__global__ void convert_kernel(TD *dst, int64_t ldd, const TS *src, int64_t lds, int64_t rows, int64_t cols)
{
    int one_row = rows == 1;
    int64_t c0 = one_row ? (int64_t)blockIdx.x * blockDim.x + threadIdx.x : threadIdx.x & 31;
    int64_t cstep = one_row ? (int64_t)gridDim.x * blockDim.x : 32;
    int64_t r0 = one_row ? 0 : (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    int64_t rstep = one_row ? 1 : (int64_t)gridDim.x * 8;
    for (int64_t r = r0; r < rows; r += rstep) {
        TD *dr = dst + r * ldd;
        const TS *sr = src + r * lds;
        if (PAIRS)
            for (int64_t c = 2 * c0; c < cols; c += 2 * cstep) st_pair(dr + c, ld_pair(sr + c));
        else
            for (int64_t c = c0; c < cols; c += cstep) st_f(dr + c, ld_f(sr + c));
    }
}

template <typename TD, typename TS>
static void convert_launch(void *dst, int64_t ldd, const void *src, int64_t lds, int64_t rows, int64_t cols,
                           cudaStream_t s)
{
    if (ldd == cols && lds == cols) cols *= rows, rows = 1, ldd = lds = cols;
    int pairs = pairs_ok(cols, sizeof(TD), dst, ldd, dst, ldd, dst, ldd) &&
                pairs_ok(cols, sizeof(TS), src, lds, src, lds, src, lds);
    unsigned g = rows == 1 ? grid_for(pairs ? cols / 2 : cols, 256) : grid_for(rows, 8);
    if (pairs)
        convert_kernel<TD, TS, true><<<g, 256, 0, s>>>((TD *)dst, ldd, (const TS *)src, lds, rows, cols);
    else
        convert_kernel<TD, TS, false><<<g, 256, 0, s>>>((TD *)dst, ldd, (const TS *)src, lds, rows, cols);
}

extern "C" cudaError_t mdk_convert(void *dst, int dst_bf16, int64_t ldd, const void *src, int src_bf16, int64_t lds,
                                   int64_t rows, int64_t cols, cudaStream_t s)
{
    typedef __nv_bfloat16 bf;
    if (rows * cols == 0) return cudaSuccess;
    if (dst_bf16 && !src_bf16) convert_launch<bf, float>(dst, ldd, src, lds, rows, cols, s);
    else if (!dst_bf16 && src_bf16) convert_launch<float, bf>(dst, ldd, src, lds, rows, cols, s);
    else if (dst_bf16) convert_launch<bf, bf>(dst, ldd, src, lds, rows, cols, s);
    else convert_launch<float, float>(dst, ldd, src, lds, rows, cols, s);
    return cudaGetLastError();
}

/* ---- the device-resident step (mdk_step_block_t) ---- */

/* The same scalars as AdamW's host path (train/adamw.c, md_clip_scale),
 * in the same double operations, each rounded alone (no FMA contraction):
 * the same bits. */
__global__ void step_finalize_kernel(mdk_step_block_t *b)
{
    double gscale = __ddiv_rn(1.0, b->count);
    double gnorm = __dmul_rn(__dsqrt_rn(b->sumsq), gscale);
    double loss = __ddiv_rn(b->loss_sum, b->count);
    double clip = b->clip, cs = 1.0;
    if (clip > 0 && gnorm > clip) cs = __ddiv_rn(clip, __dadd_rn(gnorm, 1e-6));
    b->grad_norm = gnorm;
    b->grad_scale = (float)__dmul_rn(gscale, cs);
    b->skip = !isfinite(loss) || !isfinite(gnorm);
}

extern "C" cudaError_t mdk_step_finalize(mdk_step_block_t *b, cudaStream_t s)
{
    step_finalize_kernel<<<1, 1, 0, s>>>(b);
    return cudaGetLastError();
}

__global__ void adamw_dev_kernel(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay,
                                 const mdk_step_block_t *b)
{
    if (b->skip) return;
    const float dm = b->decay_mul, b1 = b->b1, b2 = b->b2, gs = b->grad_scale, ss = b->step_size;
    const float bc2 = b->bc2_sqrt, eps = b->eps;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        adamw_elem(p, g, m, v, i, i < n_decay ? dm : 1.0f, b1, b2, gs, ss, bc2, eps);
}

extern "C" cudaError_t mdk_adamw_dev(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay,
                                     const mdk_step_block_t *b, cudaStream_t s)
{
    if (n == 0) return cudaSuccess;
    adamw_dev_kernel<<<grid_for(n, 256), 256, 0, s>>>(p, g, m, v, n, n_decay, b);
    return cudaGetLastError();
}

__global__ void step_poison_kernel(float *g, const mdk_step_block_t *b)
{
    if (b->poison) g[0] = __int_as_float(0x7fc00000);
}

extern "C" cudaError_t mdk_step_poison(float *g, const mdk_step_block_t *b, cudaStream_t s)
{
    step_poison_kernel<<<1, 1, 0, s>>>(g, b);
    return cudaGetLastError();
}
