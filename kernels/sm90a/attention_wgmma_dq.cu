/* The dQ half of the causal attention backward at head dim 64 on Hopper's
 * warpgroup MMA (wgmma.cuh); compiled for sm_90a alone. mdk_attention_bwd_mma
 * (attention_mma_bwd.cu) calls it in place of its mma.sync dQ kernel where
 * mdk_attention_wgmma_dq_variant() says so, after the dK / dV kernel of
 * attention_wgmma_bwd.cu (which made the workspace's copies of q, k, v,
 * dO where they are needed, and after the D pre-pass). dQ is written
 * exactly as the mma.sync kernel writes it.
 *
 * The forward's structure (attention_wgmma.cu) without its online
 * softmax: a block owns 64 NWG queries of one (sequence, head), each of
 * its warpgroups 64 (their Q and dO fragments in registers as wgmma's A
 * operands, their lse and D per row in registers); K and V tiles of FK
 * keys from 0 to the block's diagonal run through a ring of STAGES SW128
 * stages filled by cp.async STAGES - 1 tiles ahead; a warpgroup skips the
 * tiles past its rows and masks only the one on its diagonal. Per tile:
 *   S = Q K^T, dP = dO V^T        (K, V tiles as K-major B)
 *   dS = exp2(S scale log2 e - lse log2 e) o (dP - D)
 *   dQ += dS K                    (dS re-packed as A; K tile MN-major B)
 * One thread sums each output element in a fixed order: deterministic.
 */
#include "attention_wgmma.cuh"

namespace {

/* A kernel shape: warpgroups per block, ring stages; registers capped
 * for MINB blocks per multiprocessor */
template <int NWG_, int STAGES_, int MINB_>
struct dq_dims {
    enum { NWG = NWG_, STAGES = STAGES_, MINB = MINB_ };
};
/* The variants, numbered as MD_ATTN_WGMMA_DQ selects them: 1 (the default,
 * 168 registers) and 2 (167) timed alike on an H200 (9.37 ms the backward
 * at L 16384; 2 is 2% faster at 32768, 1% slower at 1024); 2 blocks of 2
 * warpgroups at 128 registers spilled and serialised the wgmma. */
template <int V>
struct dq_shape;
template <> struct dq_shape<1> : dq_dims<2, 4, 1> {};
template <> struct dq_shape<2> : dq_dims<3, 4, 1> {};
enum { N_DQ_VARIANTS = 2, DEFAULT_DQ_VARIANT = 1 };

/* dS of one visited tile (keys from the tile's first) from the scores s
 * and dp of this thread's rows, in place in s; nl = -lse log2 e and D per
 * row (ra, ra + 8). DIAG: the tile starts at this warpgroup's first row;
 * rel = (this thread's first row) - (its first column) within it, and a
 * key past the row gets P 0. */
template <bool DIAG>
__device__ __forceinline__ void dq_grads(float (*s)[4], const float (*dp)[4], const float nl[2], const float d[2],
                                         int rel, float scale_log2)
{
#pragma unroll
    for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float p = fast_exp2(fmaf(s[nt][e], scale_log2, nl[e >> 1]));
            if (DIAG && 8 * nt + (e & 1) > rel + 8 * (e >> 1)) p = 0.0f;
            s[nt][e] = p * (dp[nt][e] - d[e >> 1]);
        }
}

template <int V>
constexpr size_t dq_smem()
{
    return (size_t)dq_shape<V>::STAGES * 2 * FK * WHD * sizeof(__nv_bfloat16) + 1024;
}

template <int V, bool VIEW, typename S>
__global__ void __launch_bounds__(128 * dq_shape<V>::NWG, dq_shape<V>::MINB)
attn_bwd_dq_wgmma(S *dq, int64_t lddq, attn_in in, const float *lse, int64_t len, int64_t n_heads, float scale,
                  int64_t n_qtiles)
{
#if MD_WGMMA_ON
    enum {
        NWG = dq_shape<V>::NWG, STAGES = dq_shape<V>::STAGES, NT = 128 * NWG, BQ = 64 * NWG, TILE = FK * WHD,
        PD = STAGES - 1   /* tiles copied ahead */
    };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    uint32_t ring_sa = raw + ((1024 - (raw & 1023)) & 1023);   /* stage s: K at 2 s TILE bf16, V after it */

    int64_t qtile = n_qtiles - 1 - blockIdx.x % n_qtiles;   /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_qtiles, n_heads, len, WHD);
    int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, gr = (threadIdx.x & 31) >> 2;
    int64_t i0 = qtile * BQ, iw = i0 + 64 * wg;   /* the block's and this warpgroup's first query */
    int64_t i_end = i0 + BQ < len ? i0 + BQ : len;
    int nt = (int)((i_end + FK - 1) / FK);
    int nt_wg = iw < len ? (int)(iw / FK) + 1 : 0;   /* tiles up to this warpgroup's diagonal, the last */
    const float scale_log2 = scale * LOG2E;
    const rows_t kh = head_rows<WHD, VIEW>(in.k, hp), vh = head_rows<WHD, VIEW>(in.v, hp);
    /* the ring of attention_wgmma.cuh written out: through ring_first /
     * ring_fetch this kernel's address code came out different, and its
     * backward 0.6% slower at L 16384 (the forward's and the dK / dV
     * kernel's machine code is the same either way) */
    auto k_at = [&](int t) { return ring_sa + (uint32_t)(2 * (t % STAGES) * TILE * 2); };
    auto v_at = [&](int t) { return ring_sa + (uint32_t)((2 * (t % STAGES) + 1) * TILE * 2); };
    const tile_copier<FK, NT> kc(kh.ld), vc(vh.ld);
    auto fetch = [&](int t) {
        int64_t j0 = (int64_t)t * FK;
        int n_in = rows_in<FK>(j0, len);
        kc.issue(k_at(t), kh.p + j0 * kh.ld, n_in);
        vc.issue(v_at(t), vh.p + j0 * vh.ld, n_in);
    };

#pragma unroll
    for (int t = 0; t < PD; t++) {
        if (t < nt) fetch(t);
        cp_async_commit();
    }
    int64_t ra = iw + 16 * warp + gr;   /* this thread's rows: ra and ra + 8 */
    uint32_t qa[WHD / 16][4], doa[WHD / 16][4];
    load_a_frags<WHD>(qa, head_rows<WHD, VIEW>(in.q, hp), iw + 16 * warp, len);
    load_a_frags<WHD>(doa, head_rows<WHD, VIEW>(in.dout, hp), iw + 16 * warp, len);
    float nl[2], d[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int64_t i = ra + 8 * h;
        nl[h] = i < len ? -LOG2E * lse[hp.bh * len + i] : -INFINITY;   /* rows past the end: P 0 */
        d[h] = i < len ? in.D[hp.bh * len + i] : 0.0f;
    }
    int rel = 16 * warp + gr - 2 * (int)(threadIdx.x & 3);
    float adq[WHD / 8][4], s[FK / 8][4], dp[FK / 8][4];
    uint32_t dsa[FK / 16][4];
    zero<WHD / 8>(adq);
    for (int t = 0; t < nt; t++) {
        cp_async_wait<PD - 1>();   /* tile t landed (one group per tile, in order) */
        fence_async_shared();
        __syncthreads();           /* ... for every thread; and every read of tile t + PD - STAGES is done */
        if (t + PD < nt) fetch(t + PD);
        cp_async_commit();
        /* every wgmma group is issued and waited for inside this branch */
        if (t < nt_wg) {
            wgmma_fence();
            qk_product(s, qa, k_at(t));
            qk_product(dp, doa, v_at(t));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<FK / 8>(s);
            reg_fence<FK / 8>(dp);
            if (t == nt_wg - 1)
                dq_grads<true>(s, dp, nl, d, rel, scale_log2);
            else
                dq_grads<false>(s, dp, nl, d, rel, scale_log2);
            c_to_a<FK / 16>(dsa, s);
            wgmma_fence();
            pv_product(adq, dsa, k_at(t));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<WHD / 8>(adq);
        }
    }
    store_rows<WHD>(dq + hp.row0 * lddq + hp.col, lddq, iw + 16 * warp, len, adq, scale, scale);
#endif
}

template <int V, bool VIEW, typename S>
cudaError_t dq_launch(void *dq, int64_t lddq, const attn_in &in, const float *lse, int64_t batch, int64_t len,
                      int64_t n_heads, float scale, cudaStream_t s)
{
    enum { BQ = 64 * dq_shape<V>::NWG };
    int64_t nq = (len + BQ - 1) / BQ;
    size_t sm = dq_smem<V>();
    cudaError_t e = allow_smem(attn_bwd_dq_wgmma<V, VIEW, S>, sm);
    if (e != cudaSuccess) return e;
    attn_bwd_dq_wgmma<V, VIEW, S><<<(unsigned)(batch * n_heads * nq), 128 * dq_shape<V>::NWG, sm, s>>>(
        (S *)dq, lddq, in, lse, len, n_heads, scale, nq);
    return cudaGetLastError();
}

template <int V>
cudaError_t dq_variant(void *dq, int64_t lddq, const attn_in &in, bool view, int act_bf16, const float *lse,
                       int64_t batch, int64_t len, int64_t n_heads, float scale, cudaStream_t s)
{
    if (view) return dq_launch<V, true, __nv_bfloat16>(dq, lddq, in, lse, batch, len, n_heads, scale, s);
    return (act_bf16 ? dq_launch<V, false, __nv_bfloat16> : dq_launch<V, false, float>)(dq, lddq, in, lse, batch,
                                                                                        len, n_heads, scale, s);
}

}   // namespace

extern "C" int mdk_attention_wgmma_dq_variant(void)
{
    static int variant = -1;
    return cached_variant(&variant, mdk_attention_wgmma_bwd_variant(), "MD_ATTN_WGMMA_DQ", N_DQ_VARIANTS,
                          DEFAULT_DQ_VARIANT);
}

extern "C" cudaError_t mdk_attention_bwd_dq_wgmma(void *dq, int64_t lddq, const void *dout, int64_t lddo,
                                                  const void *q, int64_t ldq, const void *k, int64_t ldk,
                                                  const void *v, int64_t ldv, const float *lse, int64_t batch,
                                                  int64_t len, int64_t n_heads, double scale, void *workspace,
                                                  int act_bf16, cudaStream_t s)
{
    int variant = mdk_attention_wgmma_dq_variant();
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (variant == 0 || ((uintptr_t)workspace & 15) != 0) return cudaErrorInvalidValue;
    pack_job job;   /* (the dK / dV kernel ran it) */
    bool view;
    attn_in in = plan_backward(dout, lddo, q, ldq, k, ldk, v, ldv, workspace, batch, len, n_heads, WHD, act_bf16, &job,
                               &view);
    if (variant == 2) return dq_variant<2>(dq, lddq, in, view, act_bf16, lse, batch, len, n_heads, (float)scale, s);
    return dq_variant<1>(dq, lddq, in, view, act_bf16, lse, batch, len, n_heads, (float)scale, s);
}
