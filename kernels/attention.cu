/* Causal multi-head attention, flash-style, with fp32 FMA math
 * (backend_kernels.h; the math of backend/ops.h). q, k, v, o and their
 * gradients are stored in fp32 or bf16 (S, storage.cuh: the bf16 table's
 * activations at head dims the tensor-core kernels do not cover); the
 * shared tiles, lse and D are fp32.
 *
 * Tiles of T = 32 queries by T = 32 keys; a block of 4 warps owns one
 * (sequence, head, tile). In every T x T score tile a warp owns rows
 * w, w+4, ..., and lane c owns key c of the tile: the row's max and sum
 * are warp shuffles, and the running output rows stay in that warp's
 * registers (lane owns columns lane, lane+32, ...), so only the K/V (or
 * Q/dO) tile loads need a block barrier. Key tiles past the diagonal are
 * never visited; the L x L matrix is never formed.
 *
 * Backward (FlashAttention-2's recomputation from the saved lse):
 *   D_t = rowsum(dO_t * O_t)                            (one kernel)
 *   dK_j, dV_j: per key tile, the query tiles from the diagonal down
 *   dQ_i:       per query tile, the key tiles up to the diagonal
 * Both recompute P = exp(S - lse) and dS = P (dP - D); each output is
 * owned by one block, so there are no atomics and the sums run in one
 * order fixed by the sizes (bit-identical reruns).
 *
 * Shared rows are padded to hd + 1 floats, so lanes reading one column of
 * 32 different rows hit 32 different banks. Head dims up to 256 (the
 * model's limit) take up to 140 KB of shared memory per block (opted in).
 */
#include "backend_kernels.h"
#include "storage.cuh"

#include <math.h>

namespace {

enum { T = 32, WARPS = 4, THREADS = WARPS * 32, RPW = T / WARPS };

__device__ inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ inline float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* rows [r0, r0 + T) of a (len, hd) head view into a padded tile; rows past
 * len are zero */
template <typename S>
__device__ inline void load_tile(float *sh, const S *g, int64_t ld, int64_t r0, int64_t len, int hd)
{
    int ldp = hd + 1;
    for (int i = threadIdx.x; i < T * hd; i += THREADS) {
        int r = i / hd, d = i - r * hd;
        int64_t row = r0 + r;
        sh[r * ldp + d] = row < len ? ld_f(g + row * ld + d) : 0.0f;
    }
}

/* a . b over hd, a broadcast across the warp and b one row per lane */
__device__ inline float dot_row(const float *a, const float *b, int hd)
{
    float acc = 0.0f;
    for (int d = 0; d < hd; d++) acc = fmaf(a[d], b[d], acc);
    return acc;
}

/* Per (sequence, head): the head's view starts at column h*hd of row b*len. */
struct head_t {
    int64_t b, h, row0;
};

__device__ inline head_t head_of(int64_t bh, int64_t n_heads, int64_t len)
{
    head_t x;
    x.b = bh / n_heads;
    x.h = bh - x.b * n_heads;
    x.row0 = x.b * len;
    return x;
}

/* ---------------------------------------------------------------- */
/* forward                                                          */

template <typename S, int NC>
__global__ void __launch_bounds__(THREADS)
attn_fwd_kernel(S *o, int64_t ldo, float *lse, const S *q, int64_t ldq, const S *k, int64_t ldk, const S *v,
                int64_t ldv, int64_t len, int64_t n_heads, int hd, float scale, int64_t n_tiles)
{
    extern __shared__ float sm[];
    int ldp = hd + 1;
    float *Qs = sm, *Ks = Qs + T * ldp, *Vs = Ks + T * ldp, *Ps = Vs + T * ldp;   /* Ps: T x (T+1) */
    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;   /* the costly tiles first */
    int64_t bh = blockIdx.x / n_tiles;
    head_t hp = head_of(bh, n_heads, len);
    int64_t i0 = tile * T, col = hp.h * hd;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    load_tile(Qs, q + hp.row0 * ldq + col, ldq, i0, len, hd);
    float m[RPW], l[RPW], acc[RPW][NC];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) acc[rr][c] = 0.0f;
    }
    int64_t i_end = i0 + T < len ? i0 + T : len;   /* one past the tile's last query */
    for (int64_t j0 = 0; j0 < i_end; j0 += T) {
        __syncthreads();   /* the previous tile's readers are done */
        load_tile(Ks, k + hp.row0 * ldk + col, ldk, j0, len, hd);
        load_tile(Vs, v + hp.row0 * ldv + col, ldv, j0, len, hd);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int r = warp + WARPS * rr;
            int64_t i = i0 + r, j = j0 + lane;
            bool ok = i < len && j <= i;
            float s = ok ? scale * dot_row(Qs + r * ldp, Ks + lane * ldp, hd) : -INFINITY;
            float mx = warp_max(s);
            float mn = fmaxf(m[rr], mx);
            float p = ok && mn != -INFINITY ? expf(s - mn) : 0.0f;
            float a = m[rr] == -INFINITY ? (mn == -INFINITY ? 1.0f : 0.0f) : expf(m[rr] - mn);
            l[rr] = l[rr] * a + warp_sum(p);
            m[rr] = mn;
            Ps[r * (T + 1) + lane] = p;
#pragma unroll
            for (int c = 0; c < NC; c++) acc[rr][c] *= a;
        }
        __syncwarp();
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int r = warp + WARPS * rr;
            const float *pr = Ps + r * (T + 1);
#pragma unroll
            for (int c = 0; c < NC; c++) {
                int d = lane + 32 * c;
                if (d < hd) {
                    float s = acc[rr][c];
                    for (int kk = 0; kk < T; kk++) s = fmaf(pr[kk], Vs[kk * ldp + d], s);
                    acc[rr][c] = s;
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int64_t i = i0 + warp + WARPS * rr;
        if (i >= len) continue;
        float inv = 1.0f / l[rr];
        S *orow = o + (hp.row0 + i) * ldo + col;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int d = lane + 32 * c;
            if (d < hd) st_f(orow + d, acc[rr][c] * inv);
        }
        if (lane == 0) lse[bh * len + i] = m[rr] + (float)log((double)l[rr]);
    }
}

/* ---------------------------------------------------------------- */
/* backward                                                         */

/* D_t = rowsum(dO_t * O_t), one warp per (sequence, head, position) */
template <typename S>
__global__ void attn_rowdot_kernel(float *D, const S *dout, int64_t lddo, const S *o, int64_t ldo,
                                   int64_t len, int64_t n_heads, int hd, int64_t n_items)
{
    int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= n_items) return;
    int64_t bh = w / len, t = w - bh * len;
    head_t hp = head_of(bh, n_heads, len);
    const S *dr = dout + (hp.row0 + t) * lddo + hp.h * hd, *orow = o + (hp.row0 + t) * ldo + hp.h * hd;
    float acc = 0.0f;
    for (int d = lane; d < hd; d += 32) acc = fmaf(ld_f(dr + d), ld_f(orow + d), acc);
    acc = warp_sum(acc);
    if (lane == 0) D[w] = acc;
}

/* P and dS of one tile pair for the rows this warp owns: row r = warp +
 * WARPS * rr, key = lane. Qs, dOs hold the query tile at i0; Ks, Vs the
 * key tile at j0. */
__device__ inline void p_ds_rows(float *Ps, float *dSs, const float *Qs, const float *dOs, const float *Ks,
                                 const float *Vs, const float *lse_i, const float *D_i, int64_t i0, int64_t j0,
                                 int64_t len, int hd, float scale)
{
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, ldp = hd + 1;
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int r = warp + WARPS * rr;
        int64_t i = i0 + r, j = j0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (i < len && j <= i) {
            float x = scale * dot_row(Qs + r * ldp, Ks + lane * ldp, hd) - lse_i[r];
            p = expf(x < 0.0f ? x : 0.0f);   /* S <= lse up to rounding */
            float dp = dot_row(dOs + r * ldp, Vs + lane * ldp, hd);
            ds = p * (dp - D_i[r]);
        }
        Ps[r * (T + 1) + lane] = p;
        dSs[r * (T + 1) + lane] = ds;
    }
}

__device__ inline void load_rowvals(float *sh, const float *g, int64_t i0, int64_t len)
{
    if (threadIdx.x < T) sh[threadIdx.x] = i0 + threadIdx.x < len ? g[i0 + threadIdx.x] : 0.0f;
}

template <typename S, int NC>
__global__ void __launch_bounds__(THREADS)
attn_bwd_dkdv_kernel(S *dk, int64_t lddk, S *dv, int64_t lddv, const S *dout, int64_t lddo, const S *q, int64_t ldq,
                     const S *k, int64_t ldk, const S *v, int64_t ldv,
                     const float *lse, const float *D, int64_t len, int64_t n_heads, int hd, float scale,
                     int64_t n_tiles)
{
    extern __shared__ float sm[];
    int ldp = hd + 1;
    float *Ks = sm, *Vs = Ks + T * ldp, *Qs = Vs + T * ldp, *dOs = Qs + T * ldp;
    float *Ps = dOs + T * ldp, *dSs = Ps + T * (T + 1), *lse_s = dSs + T * (T + 1), *D_s = lse_s + T;
    int64_t tile = blockIdx.x % n_tiles, bh = blockIdx.x / n_tiles;
    head_t hp = head_of(bh, n_heads, len);
    int64_t j0 = tile * T, col = hp.h * hd;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    load_tile(Ks, k + hp.row0 * ldk + col, ldk, j0, len, hd);
    load_tile(Vs, v + hp.row0 * ldv + col, ldv, j0, len, hd);
    float adk[RPW][NC], adv[RPW][NC];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++)
#pragma unroll
        for (int c = 0; c < NC; c++) adk[rr][c] = adv[rr][c] = 0.0f;
    for (int64_t i0 = j0; i0 < len; i0 += T) {
        __syncthreads();
        load_tile(Qs, q + hp.row0 * ldq + col, ldq, i0, len, hd);
        load_tile(dOs, dout + hp.row0 * lddo + col, lddo, i0, len, hd);
        load_rowvals(lse_s, lse + bh * len, i0, len);
        load_rowvals(D_s, D + bh * len, i0, len);
        __syncthreads();
        p_ds_rows(Ps, dSs, Qs, dOs, Ks, Vs, lse_s, D_s, i0, j0, len, hd, scale);
        __syncthreads();
        /* dV_c += sum_r P[r][c] dO_r;  dK_c += sum_r dS[r][c] Q_r (scaled last) */
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int c_key = warp + WARPS * rr;
#pragma unroll
            for (int c = 0; c < NC; c++) {
                int d = lane + 32 * c;
                if (d < hd) {
                    float sv = adv[rr][c], sk = adk[rr][c];
                    for (int r = 0; r < T; r++) {
                        sv = fmaf(Ps[r * (T + 1) + c_key], dOs[r * ldp + d], sv);
                        sk = fmaf(dSs[r * (T + 1) + c_key], Qs[r * ldp + d], sk);
                    }
                    adv[rr][c] = sv, adk[rr][c] = sk;
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int64_t j = j0 + warp + WARPS * rr;
        if (j >= len) continue;
        S *dkr = dk + (hp.row0 + j) * lddk + col, *dvr = dv + (hp.row0 + j) * lddv + col;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int d = lane + 32 * c;
            if (d < hd) st_f(dkr + d, scale * adk[rr][c]), st_f(dvr + d, adv[rr][c]);
        }
    }
}

template <typename S, int NC>
__global__ void __launch_bounds__(THREADS)
attn_bwd_dq_kernel(S *dq, int64_t lddq, const S *dout, int64_t lddo, const S *q, int64_t ldq, const S *k,
                   int64_t ldk, const S *v, int64_t ldv, const float *lse, const float *D,
                   int64_t len, int64_t n_heads, int hd, float scale, int64_t n_tiles)
{
    extern __shared__ float sm[];
    int ldp = hd + 1;
    float *Qs = sm, *dOs = Qs + T * ldp, *Ks = dOs + T * ldp, *Vs = Ks + T * ldp;
    float *Ps = Vs + T * ldp, *dSs = Ps + T * (T + 1), *lse_s = dSs + T * (T + 1), *D_s = lse_s + T;
    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles, bh = blockIdx.x / n_tiles;
    head_t hp = head_of(bh, n_heads, len);
    int64_t i0 = tile * T, col = hp.h * hd;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    load_tile(Qs, q + hp.row0 * ldq + col, ldq, i0, len, hd);
    load_tile(dOs, dout + hp.row0 * lddo + col, lddo, i0, len, hd);
    load_rowvals(lse_s, lse + bh * len, i0, len);
    load_rowvals(D_s, D + bh * len, i0, len);
    float adq[RPW][NC];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++)
#pragma unroll
        for (int c = 0; c < NC; c++) adq[rr][c] = 0.0f;
    int64_t i_end = i0 + T < len ? i0 + T : len;
    for (int64_t j0 = 0; j0 < i_end; j0 += T) {
        __syncthreads();
        load_tile(Ks, k + hp.row0 * ldk + col, ldk, j0, len, hd);
        load_tile(Vs, v + hp.row0 * ldv + col, ldv, j0, len, hd);
        __syncthreads();
        p_ds_rows(Ps, dSs, Qs, dOs, Ks, Vs, lse_s, D_s, i0, j0, len, hd, scale);
        __syncwarp();   /* this warp reads back only the rows it wrote */
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int r = warp + WARPS * rr;
            const float *dsr = dSs + r * (T + 1);
#pragma unroll
            for (int c = 0; c < NC; c++) {
                int d = lane + 32 * c;
                if (d < hd) {
                    float s = adq[rr][c];
                    for (int kk = 0; kk < T; kk++) s = fmaf(dsr[kk], Ks[kk * ldp + d], s);
                    adq[rr][c] = s;
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int64_t i = i0 + warp + WARPS * rr;
        if (i >= len) continue;
        S *dqr = dq + (hp.row0 + i) * lddq + col;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int d = lane + 32 * c;
            if (d < hd) st_f(dqr + d, scale * adq[rr][c]);
        }
    }
}

size_t fwd_smem(int hd) { return (size_t)(3 * T * (hd + 1) + T * (T + 1)) * sizeof(float); }
size_t bwd_smem(int hd) { return (size_t)(4 * T * (hd + 1) + 2 * T * (T + 1) + 2 * T) * sizeof(float); }

/* chunks of 32 columns per lane, rounded up to a power of two */
int chunks_for(int64_t hd) { return hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8; }

template <typename K>
cudaError_t allow_smem(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* The storage type's kernels for the head dim's column chunks. */
template <typename S, int NC>
cudaError_t fwd_launch(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k, int64_t ldk,
                       const void *v, int64_t ldv, int64_t batch, int64_t len, int64_t n_heads, int hd, float scale,
                       cudaStream_t s)
{
    int64_t nt = (len + T - 1) / T;
    size_t sm = fwd_smem(hd);
    cudaError_t e = allow_smem(attn_fwd_kernel<S, NC>, sm);
    if (e != cudaSuccess) return e;
    attn_fwd_kernel<S, NC><<<(unsigned)(batch * n_heads * nt), THREADS, sm, s>>>(
        (S *)o, ldo, lse, (const S *)q, ldq, (const S *)k, ldk, (const S *)v, ldv, len, n_heads, hd, scale, nt);
    return cudaGetLastError();
}

template <typename S, int NC>
cudaError_t bwd_launch(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv, const void *dout,
                       int64_t lddo, const void *q, int64_t ldq, const void *k, int64_t ldk, const void *v,
                       int64_t ldv, const float *lse, const float *D, int64_t batch, int64_t len, int64_t n_heads,
                       int hd, float scale, cudaStream_t s)
{
    int64_t nt = (len + T - 1) / T;
    unsigned grid = (unsigned)(batch * n_heads * nt);
    size_t sm = bwd_smem(hd);
    cudaError_t e = allow_smem(attn_bwd_dkdv_kernel<S, NC>, sm);
    if (e == cudaSuccess) e = allow_smem(attn_bwd_dq_kernel<S, NC>, sm);
    if (e != cudaSuccess) return e;
    attn_bwd_dkdv_kernel<S, NC><<<grid, THREADS, sm, s>>>((S *)dk, lddk, (S *)dv, lddv, (const S *)dout, lddo,
                                                          (const S *)q, ldq, (const S *)k, ldk, (const S *)v, ldv,
                                                          lse, D, len, n_heads, hd, scale, nt);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    attn_bwd_dq_kernel<S, NC><<<grid, THREADS, sm, s>>>((S *)dq, lddq, (const S *)dout, lddo, (const S *)q, ldq,
                                                        (const S *)k, ldk, (const S *)v, ldv, lse, D, len, n_heads,
                                                        hd, scale, nt);
    return cudaGetLastError();
}

/* fwd_launch<S, NC> for the head dim's chunk count */
template <typename S>
cudaError_t fwd_chunks(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k, int64_t ldk,
                       const void *v, int64_t ldv, int64_t batch, int64_t len, int64_t n_heads, int hd, float sc,
                       cudaStream_t s)
{
    switch (chunks_for(hd)) {
    case 1: return fwd_launch<S, 1>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, hd, sc, s);
    case 2: return fwd_launch<S, 2>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, hd, sc, s);
    case 4: return fwd_launch<S, 4>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, hd, sc, s);
    default: return fwd_launch<S, 8>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, hd, sc, s);
    }
}

template <typename S>
cudaError_t bwd_chunks(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv, const void *dout,
                       int64_t lddo, const void *q, int64_t ldq, const void *k, int64_t ldk, const void *v,
                       int64_t ldv, const float *lse, const float *D, int64_t batch, int64_t len, int64_t n_heads,
                       int hd, float sc, cudaStream_t s)
{
#define BWD_ARGS dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, batch, len, n_heads, hd, sc, s
    switch (chunks_for(hd)) {
    case 1: return bwd_launch<S, 1>(BWD_ARGS);
    case 2: return bwd_launch<S, 2>(BWD_ARGS);
    case 4: return bwd_launch<S, 4>(BWD_ARGS);
    default: return bwd_launch<S, 8>(BWD_ARGS);
    }
#undef BWD_ARGS
}

}   // namespace

extern "C" cudaError_t mdk_attention_fwd(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k,
                                         int64_t ldk, const void *v, int64_t ldv, int64_t batch, int64_t len,
                                         int64_t n_heads, int64_t head_dim, double scale, int act_bf16,
                                         cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (head_dim < 1 || head_dim > MDK_ATTN_MAX_HD) return cudaErrorInvalidValue;
    return (act_bf16 ? fwd_chunks<__nv_bfloat16> : fwd_chunks<float>)(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len,
                                                                      n_heads, (int)head_dim, (float)scale, s);
}

extern "C" cudaError_t mdk_attention_rowdot(float *D, const void *dout, int64_t lddo, const void *o, int64_t ldo,
                                            int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim,
                                            int act_bf16, cudaStream_t s)
{
    int64_t items = batch * n_heads * len;
    if (items == 0) return cudaSuccess;
    unsigned grid = (unsigned)((items + 7) / 8);
    if (act_bf16)
        attn_rowdot_kernel<<<grid, 256, 0, s>>>(D, (const __nv_bfloat16 *)dout, lddo, (const __nv_bfloat16 *)o, ldo,
                                                len, n_heads, (int)head_dim, items);
    else
        attn_rowdot_kernel<<<grid, 256, 0, s>>>(D, (const float *)dout, lddo, (const float *)o, ldo, len, n_heads,
                                                (int)head_dim, items);
    return cudaGetLastError();
}

extern "C" size_t mdk_attention_bwd_workspace(int64_t batch, int64_t len, int64_t n_heads)
{
    return (size_t)(batch * n_heads * len) * sizeof(float);
}

extern "C" cudaError_t mdk_attention_bwd(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv,
                                         const void *dout, int64_t lddo, const void *q, int64_t ldq, const void *k,
                                         int64_t ldk, const void *v, int64_t ldv, const void *o, int64_t ldo,
                                         const float *lse, int64_t batch, int64_t len, int64_t n_heads,
                                         int64_t head_dim, double scale, void *workspace, int act_bf16,
                                         cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (head_dim < 1 || head_dim > MDK_ATTN_MAX_HD) return cudaErrorInvalidValue;
    float *D = (float *)workspace;
    cudaError_t e = mdk_attention_rowdot(D, dout, lddo, o, ldo, batch, len, n_heads, head_dim, act_bf16, s);
    if (e != cudaSuccess) return e;
    return (act_bf16 ? bwd_chunks<__nv_bfloat16> : bwd_chunks<float>)(dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq,
                                                                       k, ldk, v, ldv, lse, D, batch, len, n_heads,
                                                                       (int)head_dim, (float)scale, s);
}
