/* The backward of attention_mma.cu's causal attention on the tensor cores
 * (FlashAttention-2's recomputation from lse), deterministic (no atomics):
 *
 *   D_t = rowsum(dO_t * O_t)                  (attention.cu's kernel, fp32 sums)
 *   q, k, v, dO:   read in place where they are bf16 views whose rows
 *                  16-byte copies can read (the model's, under bf16
 *                  activation storage), else first copied to head-major
 *                  (B, H, L, hd) bf16 copies in the workspace (from fp32:
 *                  the rounding the earlier load-time conversion did)
 *   dK, dV: a block per 64 keys (16 per warp) walks the query tiles from
 *           the diagonal down: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO,
 *           dK += dS^T Q
 *   dQ:     a block per 128 queries walks the key tiles up to the diagonal:
 *           S = Q K^T, dP = dO V^T, dQ += dS K
 *
 * Either way every tile row is a run of 16-byte cp.async copies straight
 * into the padded bf16 shared layout, so each kernel double-buffers its
 * tiles: the next tile's copies run under this tile's products, at half
 * the shared memory an fp32 staging tile costs (which made the backward
 * slower: NOTES-attention.md). The inputs must not overlap dq, dk, dv.
 *
 * At head dim 64 on a compute-capability-9.0 device both kernels give way
 * to their Hopper wgmma counterparts (kernels/sm90a/attention_wgmma_bwd.cu
 * and attention_wgmma_dq.cu; MD_ATTN_WGMMA_BWD=0 / MD_ATTN_WGMMA_DQ=0 keep
 * these).
 *
 * Each output element is summed by one thread in an order fixed by the
 * sizes, so reruns give identical bits. Rows past the sequence end load as
 * zeros (lse and D too), so they add nothing.
 */
#include "attention_mma.cuh"

namespace {

/* dK, dV for 16 W keys per block (W warps); query tiles of BQ, two stages
 * of (Q, dO, lse, D) */
template <int HD, int BQ, int W, bool VIEW, typename S>
__global__ void __launch_bounds__(32 * W, HD <= 64 ? 12 / W : 1)
attn_bwd_dkdv_mma(S *dk, int64_t lddk, S *dv, int64_t lddv, attn_in in, const float *lse, int64_t len,
                  int64_t n_heads, float scale, int64_t n_tiles)
{
    enum { TILE = BQ * (HD + PAD), THREADS = 32 * W };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *tiles = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* stage s: Q at 2s TILE, dO next */
    float *rowv = reinterpret_cast<float *>(tiles + 4 * TILE);             /* stage s: lse at 2s BQ, D next */

    int64_t tile = blockIdx.x % n_tiles;
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t j0 = tile * 16 * W, jw = j0 + 16 * warp;   /* this warp's first key */
    const float scale_log2 = scale * LOG2E;
    const rows_t qh = head_rows<HD, VIEW>(in.q, hp), doh = head_rows<HD, VIEW>(in.dout, hp);
    const float *lh = lse + hp.bh * len, *Dh = in.D + hp.bh * len;
    auto fetch = [&](int stage, int64_t i0) {
        copy_pair_async<BQ, HD, THREADS>(tiles + 2 * stage * TILE, tiles + (2 * stage + 1) * TILE, qh, doh, i0, len);
        copy_rowvals_async<BQ, THREADS>(rowv + 2 * stage * BQ, rowv + (2 * stage + 1) * BQ, lh + i0, Dh + i0,
                                        rows_in<BQ>(i0, len));
    };

    fetch(0, j0);
    cp_async_commit();
    uint32_t ka[HD / 16][4], va[HD / 16][4];
    load_a_frags<HD>(ka, head_rows<HD, VIEW>(in.k, hp), jw, len);
    load_a_frags<HD>(va, head_rows<HD, VIEW>(in.v, hp), jw, len);
    float adk[HD / 8][4], adv[HD / 8][4];
    zero<HD / 8>(adk);
    zero<HD / 8>(adv);
    int stage = 0;
    for (int64_t i0 = j0; i0 < len; i0 += BQ, stage ^= 1) {
        if (i0 + BQ < len) fetch(stage ^ 1, i0 + BQ);   /* the last reader of that stage passed the barrier below */
        cp_async_commit();
        cp_async_wait<1>();   /* this stage's copies landed */
        __syncthreads();
        const __nv_bfloat16 *Qs = tiles + 2 * stage * TILE, *dOs = Qs + TILE;
        const float *lse_s = rowv + 2 * stage * BQ, *D_s = lse_s + BQ;
        if (i0 + BQ - 1 >= jw) {   /* some query of the tile sees this warp's keys */
            float st[BQ / 8][4], dpt[BQ / 8][4];   /* rows: keys; columns: queries */
            zero<BQ / 8>(st);
            zero<BQ / 8>(dpt);
            mma_rows<BQ, HD / 16>(&st, &ka, Qs, HD + PAD);
            mma_rows<BQ, HD / 16>(&dpt, &va, dOs, HD + PAD);
            bool diag = jw + 15 > i0;
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int ic = 8 * nt + c2 + (e & 1);
                    float p = fast_exp2(fmaf(st[nt][e], scale_log2, -LOG2E * lse_s[ic]));
                    if (diag && jw + gr + 8 * (e >> 1) > i0 + ic) p = 0.0f;
                    st[nt][e] = p;
                    dpt[nt][e] = p * (dpt[nt][e] - D_s[ic]);
                }
            uint32_t pa[BQ / 16][4];
            c_to_a<BQ / 16>(pa, st);
            mma_rows_trans<HD, BQ / 16>(&adv, &pa, dOs, HD + PAD);
            c_to_a<BQ / 16>(pa, dpt);
            mma_rows_trans<HD, BQ / 16>(&adk, &pa, Qs, HD + PAD);
        }
        __syncthreads();   /* this stage is free for the copies two tiles on */
    }
    store_rows<HD>(dk + hp.row0 * lddk + hp.col, lddk, jw, len, adk, scale, scale);
    store_rows<HD>(dv + hp.row0 * lddv + hp.col, lddv, jw, len, adv, 1.0f, 1.0f);
}

/* dQ for 16 W queries per block (W warps); key tiles of BK, two stages of
 * (K, V) */
template <int HD, int BK, int W, bool VIEW, typename S>
__global__ void __launch_bounds__(32 * W, HD <= 64 ? 16 / W : 1)
attn_bwd_dq_mma(S *dq, int64_t lddq, attn_in in, const float *lse, int64_t len, int64_t n_heads, float scale,
                int64_t n_tiles)
{
    enum { TILE = BK * (HD + PAD), THREADS = 32 * W, BQ_Q = 16 * W };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *tiles = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* stage s: K at 2s TILE, V next */

    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;   /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t i0 = tile * BQ_Q, iw = i0 + 16 * warp;
    const float scale_log2 = scale * LOG2E;
    const rows_t kh = head_rows<HD, VIEW>(in.k, hp), vh = head_rows<HD, VIEW>(in.v, hp);
    auto fetch = [&](int stage, int64_t j0) {
        copy_pair_async<BK, HD, THREADS>(tiles + 2 * stage * TILE, tiles + (2 * stage + 1) * TILE, kh, vh, j0, len);
    };

    fetch(0, 0);
    cp_async_commit();
    uint32_t qa[HD / 16][4], doa[HD / 16][4];
    load_a_frags<HD>(qa, head_rows<HD, VIEW>(in.q, hp), iw, len);
    load_a_frags<HD>(doa, head_rows<HD, VIEW>(in.dout, hp), iw, len);
    float lse_r[2], D_r[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int64_t i = iw + gr + 8 * h;
        lse_r[h] = i < len ? lse[hp.bh * len + i] * LOG2E : INFINITY;
        D_r[h] = i < len ? in.D[hp.bh * len + i] : 0.0f;
    }
    float adq[HD / 8][4];
    zero<HD / 8>(adq);
    int64_t i_end = i0 + BQ_Q < len ? i0 + BQ_Q : len;
    int stage = 0;
    for (int64_t j0 = 0; j0 < i_end; j0 += BK, stage ^= 1) {
        if (j0 + BK < i_end) fetch(stage ^ 1, j0 + BK);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const __nv_bfloat16 *Ks = tiles + 2 * stage * TILE, *Vs = Ks + TILE;
        if (j0 <= iw + 15) {   /* some key of the tile precedes some query of this warp */
            float s[BK / 8][4], dp[BK / 8][4];
            zero<BK / 8>(s);
            zero<BK / 8>(dp);
            mma_rows<BK, HD / 16>(&s, &qa, Ks, HD + PAD);
            mma_rows<BK, HD / 16>(&dp, &doa, Vs, HD + PAD);
            bool diag = j0 + BK - 1 > iw;
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int h = e >> 1;
                    float p = fast_exp2(s[nt][e] * scale_log2 - lse_r[h]);
                    if (diag && j0 + 8 * nt + c2 + (e & 1) > iw + gr + 8 * h) p = 0.0f;
                    s[nt][e] = p * (dp[nt][e] - D_r[h]);
                }
            uint32_t dsa[BK / 16][4];
            c_to_a<BK / 16>(dsa, s);
            mma_rows_trans<HD, BK / 16>(&adq, &dsa, Ks, HD + PAD);
        }
        __syncthreads();
    }
    store_rows<HD>(dq + hp.row0 * lddq + hp.col, lddq, iw, len, adq, scale, scale);
}

/* tile sizes per head dim: fewer queries (keys) per inner tile at 128 keep
 * the accumulators in registers */
template <int HD>
struct bwd_tiles {
    enum { BQ = HD <= 64 ? 64 : 32, BK = HD <= 64 ? 64 : 32 };
};

/* Warps per block (16 keys or queries each) of the dK/dV kernel (4: 8
 * measured 5-7% slower, 1 block of 182 registers per multiprocessor) and of
 * the dQ kernel (8: 1-3% faster than 4 at L >= 4096, NOTES-attention.md). */
enum { DKDV_WARPS = 4, DQ_WARPS = 8 };

/* S: the storage type of q, k, v, o, dO and the gradients; VIEW: q, k, v
 * and dO read in place (views_in_place), else from their copies, made
 * here unless kv_done: dK and dV are written (and the copies made) by
 * the wgmma kernel already; q_done: dQ too (all is done) */
template <int HD, typename S, bool VIEW, int WKV = DKDV_WARPS, int WQ = DQ_WARPS>
cudaError_t bwd_launch(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv, const pack_job &job,
                       const attn_in &in, const float *lse, int64_t batch, int64_t len, int64_t n_heads, float scale,
                       bool kv_done, bool q_done, cudaStream_t s)
{
    enum { BQ = bwd_tiles<HD>::BQ, BK = bwd_tiles<HD>::BK };
    size_t sm_kv = 2 * (2 * (size_t)BQ * (HD + PAD) * sizeof(__nv_bfloat16) + 2 * BQ * sizeof(float));
    size_t sm_q = 2 * 2 * (size_t)BK * (HD + PAD) * sizeof(__nv_bfloat16);
    cudaError_t e = cudaSuccess;
    if (!kv_done) {
        e = allow_smem(attn_bwd_dkdv_mma<HD, BQ, WKV, VIEW, S>, sm_kv);
        if (e == cudaSuccess && !VIEW) e = pack_heads<HD, S>(job, 4, batch, len, n_heads, s);
        if (e != cudaSuccess) return e;
        int64_t nk = (len + 16 * WKV - 1) / (16 * WKV);
        attn_bwd_dkdv_mma<HD, BQ, WKV, VIEW, S><<<(unsigned)(batch * n_heads * nk), 32 * WKV, sm_kv, s>>>(
            (S *)dk, lddk, (S *)dv, lddv, in, lse, len, n_heads, scale, nk);
        e = cudaGetLastError();
    }
    if (e != cudaSuccess || q_done) return e;
    if ((e = allow_smem(attn_bwd_dq_mma<HD, BK, WQ, VIEW, S>, sm_q)) != cudaSuccess) return e;
    int64_t nq = (len + 16 * WQ - 1) / (16 * WQ);
    attn_bwd_dq_mma<HD, BK, WQ, VIEW, S><<<(unsigned)(batch * n_heads * nq), 32 * WQ, sm_q, s>>>(
        (S *)dq, lddq, in, lse, len, n_heads, scale, nq);
    return cudaGetLastError();
}

template <typename S, bool VIEW>
cudaError_t bwd_head_dim(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv, const pack_job &job,
                         const attn_in &in, const float *lse, int64_t batch, int64_t len, int64_t n_heads,
                         int64_t head_dim, float sc, bool kv_done, bool q_done, cudaStream_t s)
{
    switch (head_dim) {
    case 32:
        return bwd_launch<32, S, VIEW>(dq, lddq, dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, sc, kv_done,
                                       q_done, s);
    case 64:
        return bwd_launch<64, S, VIEW>(dq, lddq, dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, sc, kv_done,
                                       q_done, s);
    default:
        return bwd_launch<128, S, VIEW>(dq, lddq, dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, sc, kv_done,
                                        q_done, s);
    }
}

}   // namespace

extern "C" cudaError_t mdk_attention_bwd_mma(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv,
                                             const void *dout, int64_t lddo, const void *q, int64_t ldq,
                                             const void *k, int64_t ldk, const void *v, int64_t ldv, const void *o,
                                             int64_t ldo, const float *lse, int64_t batch, int64_t len,
                                             int64_t n_heads, int64_t head_dim, double scale, void *workspace,
                                             int act_bf16, cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (!mdk_attention_mma_head_dim(head_dim) || ((uintptr_t)workspace & 15) != 0) return cudaErrorInvalidValue;
    pack_job job;
    bool view;
    attn_in in = plan_backward(dout, lddo, q, ldq, k, ldk, v, ldv, workspace, batch, len, n_heads, head_dim, act_bf16,
                               &job, &view);
    float *D = carve_ws(workspace, batch * n_heads * len, head_dim).D;   /* in.D, writable */
    cudaError_t e = mdk_attention_rowdot(D, dout, lddo, o, ldo, batch, len, n_heads, head_dim, act_bf16, s);
    if (e != cudaSuccess) return e;
    bool kv_done = false, q_done = false;
#if MD_HAVE_WGMMA
    /* (its tile copies keep row offsets in 32 bits) */
    if (head_dim == 64 && ldq <= INT_MAX / 256 && ldk <= INT_MAX / 256 && ldv <= INT_MAX / 256 &&
        lddo <= INT_MAX / 256 && mdk_attention_wgmma_bwd_variant() != 0) {
        e = mdk_attention_bwd_dkdv_wgmma(dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, batch, len,
                                         n_heads, scale, workspace, act_bf16, s);
        if (e != cudaSuccess) return e;
        kv_done = true;
        if (mdk_attention_wgmma_dq_variant() != 0) {
            e = mdk_attention_bwd_dq_wgmma(dq, lddq, dout, lddo, q, ldq, k, ldk, v, ldv, lse, batch, len, n_heads,
                                           scale, workspace, act_bf16, s);
            if (e != cudaSuccess) return e;
            q_done = true;
        }
    }
#endif
    if (view)
        return bwd_head_dim<__nv_bfloat16, true>(dq, lddq, dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads,
                                                 head_dim, (float)scale, kv_done, q_done, s);
    return (act_bf16 ? bwd_head_dim<__nv_bfloat16, false> : bwd_head_dim<float, false>)(
        dq, lddq, dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, head_dim, (float)scale, kv_done, q_done, s);
}
