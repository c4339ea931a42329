/* The backward of a low-rank Linear (backend_kernels.h, ops.h lowrank_bwd):
 * dx (M, R) = dy w and dw (E, R) += dy^T x, given dy (M, E), x (M, R) and
 * w (E, R), R <= 16 (the Mamba block's dt_proj: R = dt_rank, E = d_inner),
 * in one pass over dy instead of two cuBLAS products that each read it
 * (~2x their byte floor each at M = 2^17, E = 256: kernels/NOTES-backend.md,
 * "dt_proj's backward in one pass").
 *
 * 256 threads a block; a row of dy is G = E / EPT threads, EPT consecutive
 * columns each (one 16-byte load for fp32 and for bf16 at R <= 8, 8 bytes
 * for bf16 at R <= 16, where the registers hold twice the rank), so a pass
 * of the block covers 256 / G rows, ROWS passes an iteration. A thread keeps
 * its EPT rows of w and its EPT x RP sums of dw in registers (RP: R padded
 * to 8 or 16 with zero columns) for all its rows. dx's row sums over the G
 * threads go through shared memory and are added in column-group order;
 * dw's per-block sums are added over the block's threads in a fixed order,
 * land in the caller's scratch (one E x R slice a block) and a second
 * kernel (mdk_colsum_add) adds the slices into dw in block order. The row
 * partition depends only on the sizes and the SM count: no atomics, the
 * same bits run to run on one GPU model. Arithmetic in fp32 (fma), each
 * thread's EPT products first, then the G partial sums in order. */
#include <cuda_bf16.h>
#include <stdint.h>

#include "backend_kernels.h"
#include "storage.cuh"

namespace {

constexpr int THREADS = 256;
constexpr int MIN_G = 8;   /* column groups a row, at least: bounds the shared memory */

/* EPT consecutive columns of dy, loaded raw one iteration ahead: one
 * 16-byte access (fp32 4, bf16 8 columns) or one 8-byte one (bf16 4) */
template <typename T, int EPT> struct raw_cols {
    static constexpr int WORDS = EPT * (int)sizeof(T) / 4;
    unsigned u[WORDS];
};

template <typename T, int EPT> __device__ __forceinline__ void ld_raw(raw_cols<T, EPT> &r, const T *p)
{
    if (raw_cols<T, EPT>::WORDS == 4) {
        uint4 a = *(const uint4 *)p;
        r.u[0] = a.x, r.u[1] = a.y, r.u[2] = a.z, r.u[3] = a.w;
    } else {
        uint2 a = *(const uint2 *)p;
        r.u[0] = a.x, r.u[1] = a.y;
    }
}

template <int EPT> __device__ __forceinline__ void raw_to_f(const raw_cols<float, EPT> &r, float *o)
{
#pragma unroll
    for (int i = 0; i < EPT; i++) o[i] = __uint_as_float(r.u[i]);
}

/* bf16 is fp32's upper half: the low element of a word in its low bits */
template <int EPT> __device__ __forceinline__ void raw_to_f(const raw_cols<__nv_bfloat16, EPT> &r, float *o)
{
#pragma unroll
    for (int i = 0; i < EPT / 2; i++) {
        o[2 * i] = __uint_as_float(r.u[i] << 16);
        o[2 * i + 1] = __uint_as_float(r.u[i] & 0xffff0000u);
    }
}

template <int RP, int ROWS> struct smem_plan {
    /* dx's partials: rows of an iteration x RP, G + 1 floats each (odd
     * stride: no bank conflicts as the sums read along a partial row) */
    static constexpr int RED = ROWS * (THREADS / MIN_G) * RP * (MIN_G + 1);
    static constexpr int XS = ROWS * (THREADS / MIN_G) * RP;
};

template <typename T, int RP, int EPT, int ROWS>
__global__ void __launch_bounds__(THREADS, 1)
    lowrank_bwd_kernel(T *__restrict__ dx, int64_t lddx, float *__restrict__ part, const T *__restrict__ dy,
                       int64_t lddy, const T *__restrict__ x, int64_t ldx, const T *__restrict__ w, int64_t ldw,
                       int64_t M, int E, int R, int log2g, int64_t iters_per_block)
{
    __shared__ float red[smem_plan<RP, ROWS>::RED];
    __shared__ __align__(16) float xs[smem_plan<RP, ROWS>::XS];
    const int G = 1 << log2g, tid = threadIdx.x;
    const int g = tid & (G - 1), rl = tid >> log2g, rows_pass = THREADS >> log2g, rows_it = rows_pass * ROWS;
    const int e0 = g * EPT;

    float wr[EPT][RP], acc[EPT][RP];
#pragma unroll
    for (int i = 0; i < EPT; i++)
#pragma unroll
        for (int r = 0; r < RP; r++) {
            wr[i][r] = r < R ? ld_f(w + (int64_t)(e0 + i) * ldw + r) : 0.f;
            acc[i][r] = 0.f;
        }

    const int64_t row0 = (int64_t)blockIdx.x * iters_per_block * rows_it;
    int64_t row_end = row0 + iters_per_block * rows_it;
    if (row_end > M) row_end = M;
    raw_cols<T, EPT> nxt[ROWS];
    auto load_rows = [&](int64_t base) {
#pragma unroll
        for (int k = 0; k < ROWS; k++) {
            int64_t m = base + k * rows_pass + rl;
            if (m < row_end) ld_raw(nxt[k], dy + m * lddy + e0);
            else
#pragma unroll
                for (int j = 0; j < raw_cols<T, EPT>::WORDS; j++) nxt[k].u[j] = 0u;   /* +0.0 in either dtype */
        }
    };
    if (row0 < row_end) load_rows(row0);
    for (int64_t base = row0; base < row_end; base += rows_it) {
        raw_cols<T, EPT> cur[ROWS];
#pragma unroll
        for (int k = 0; k < ROWS; k++) cur[k] = nxt[k];
        if (base + rows_it < row_end) load_rows(base + rows_it);
        for (int i = tid; i < rows_it * RP; i += THREADS) {
            int64_t m = base + i / RP;
            int r = i % RP;
            xs[i] = r < R && m < row_end ? ld_f(x + m * ldx + r) : 0.f;
        }
        __syncthreads();   /* xs written; the previous iteration's red read */
#pragma unroll
        for (int k = 0; k < ROWS; k++) {
            float d[EPT], xv[RP], p[RP];
            raw_to_f(cur[k], d);
            const int lr = k * rows_pass + rl;
#pragma unroll
            for (int r = 0; r < RP; r += 4) {
                float4 v = *(const float4 *)&xs[lr * RP + r];
                xv[r] = v.x, xv[r + 1] = v.y, xv[r + 2] = v.z, xv[r + 3] = v.w;
            }
#pragma unroll
            for (int r = 0; r < RP; r++) {
                float s = 0.f;
#pragma unroll
                for (int i = 0; i < EPT; i++) s = fmaf(d[i], wr[i][r], s);
                p[r] = s;
            }
#pragma unroll
            for (int i = 0; i < EPT; i++)
#pragma unroll
                for (int r = 0; r < RP; r++) acc[i][r] = fmaf(d[i], xv[r], acc[i][r]);
#pragma unroll
            for (int r = 0; r < RP; r++) red[(lr * RP + r) * (G + 1) + g] = p[r];
        }
        __syncthreads();   /* the partials of every row written */
        for (int o = tid; o < rows_it * RP; o += THREADS) {
            int64_t m = base + o / RP;
            int r = o % RP;
            if (r >= R || m >= row_end) continue;
            const float *q = red + o * (G + 1);
            float s = 0.f;
            for (int j = 0; j < G; j++) s += q[j];
            st_f(dx + m * lddx + r, s);
        }
    }

    /* dw's sums of the block: the rows_pass threads of each column group
     * added in rl order, 32 of a thread's sums at a time through red */
    constexpr int CH = EPT * RP < 32 ? EPT * RP : 32;
    static_assert(THREADS * (CH + 1) <= smem_plan<RP, ROWS>::RED, "red holds a chunk of every thread's sums");
    float *slice = part + (int64_t)blockIdx.x * E * R;
#pragma unroll
    for (int c0 = 0; c0 < EPT * RP; c0 += CH) {
        __syncthreads();
#pragma unroll
        for (int c = 0; c < CH; c++) red[(rl * G + g) * (CH + 1) + c] = acc[(c0 + c) / RP][(c0 + c) % RP];
        __syncthreads();
        for (int o = tid; o < G * CH; o += THREADS) {
            int gg = o / CH, c = o % CH, i = (c0 + c) / RP, r = (c0 + c) % RP;
            float s = 0.f;
            for (int j = 0; j < rows_pass; j++) s += red[(j * G + gg) * (CH + 1) + c];
            if (r < R) slice[(int64_t)(gg * EPT + i) * R + r] = s;
        }
    }
}

bool aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

int log2_exact(int64_t v)
{
    int l = 0;
    while (((int64_t)1 << l) < v) l++;
    return ((int64_t)1 << l) == v ? l : -1;
}

/* the shapes the kernel takes: R <= 16, E a power-of-two multiple (8 ..
 * 256 groups) of EPT, 16- or 8-byte aligned rows of dy */
int64_t ept_for(int bf16, int64_t R) { return bf16 && R <= 8 ? 8 : 4; }

template <typename T, int RP, int EPT, int ROWS>
cudaError_t launch(T *dx, int64_t lddx, float *dw, const T *dy, int64_t lddy, const T *x, int64_t ldx, const T *w,
                   int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch, size_t scratch_floats,
                   cudaStream_t s)
{
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess) return e;
    const int log2g = log2_exact(E / EPT);
    const int64_t rows_it = (int64_t)(THREADS >> log2g) * ROWS, iters = (M + rows_it - 1) / rows_it;
    int64_t blocks = sms < 1 ? 1 : sms;
    if (blocks > (int64_t)(scratch_floats / (size_t)(E * R))) blocks = (int64_t)(scratch_floats / (size_t)(E * R));
    if (blocks > iters) blocks = iters;
    if (blocks < 1) blocks = 1;
    const int64_t per_block = (iters + blocks - 1) / blocks;
    blocks = (iters + per_block - 1) / per_block;
    lowrank_bwd_kernel<T, RP, EPT, ROWS><<<(unsigned)blocks, THREADS, 0, s>>>(dx, lddx, scratch, dy, lddy, x, ldx, w,
                                                                               ldw, M, (int)E, (int)R, log2g,
                                                                               per_block);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, blocks, E * R, E * R, s);
}

template <typename T>
cudaError_t dispatch(void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x, int64_t ldx,
                     const void *w, int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch,
                     size_t scratch_floats, cudaStream_t s)
{
    T *dxt = static_cast<T *>(dx);
    const T *dyt = static_cast<const T *>(dy), *xt = static_cast<const T *>(x), *wt = static_cast<const T *>(w);
    constexpr int EPT8 = sizeof(T) == 2 ? 8 : 4;
    if (R <= 8)
        return launch<T, 8, EPT8, 4>(dxt, lddx, dw, dyt, lddy, xt, ldx, wt, ldw, M, E, R, scratch, scratch_floats, s);
    return launch<T, 16, 4, 2>(dxt, lddx, dw, dyt, lddy, xt, ldx, wt, ldw, M, E, R, scratch, scratch_floats, s);
}

}   // namespace

int mdk_lowrank_bwd_ok(int bf16, const void *dy, int64_t lddy, int64_t M, int64_t E, int64_t R,
                       size_t scratch_floats)
{
    const int64_t ept = ept_for(bf16, R), es = bf16 ? 2 : 4;
    if (M < 1 || R < 1 || R > MDK_LOWRANK_MAX_R || E % ept) return 0;
    const int l = log2_exact(E / ept);
    if (l < 0 || (1 << l) < MIN_G || (1 << l) > THREADS) return 0;
    if ((size_t)(E * R) > scratch_floats) return 0;
    return lddy % ept == 0 && aligned(dy, (size_t)(ept * es));
}

cudaError_t mdk_lowrank_bwd(int bf16, void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x,
                            int64_t ldx, const void *w, int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch,
                            size_t scratch_floats, cudaStream_t s)
{
    if (bf16)
        return dispatch<__nv_bfloat16>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, E, R, scratch, scratch_floats, s);
    return dispatch<float>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, E, R, scratch, scratch_floats, s);
}
