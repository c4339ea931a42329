/* The dK / dV half of the causal attention backward at head dim 64 on
 * Hopper's warpgroup MMA (wgmma.cuh); compiled for sm_90a alone.
 * mdk_attention_bwd_mma (attention_mma_bwd.cu) calls it in place of its
 * mma.sync dK / dV kernel where mdk_attention_wgmma_bwd_variant() says so;
 * its dQ kernel and D = rowsum(dO o O) pre-pass run as before. Inputs,
 * outputs and workspace as that op's: q, k, v, dO read in place where
 * plan_inputs allows, else from their head-major bf16 copies (made here);
 * dK and dV written exactly as the mma.sync kernel writes them.
 *
 * A block owns 64 NWG keys of one (sequence, head); each of its NWG
 * warpgroups 64 of them (warp w % 4: 16), their K and V fragments in
 * registers as wgmma's A operands (variant 2: read from shared memory by
 * descriptor instead). Query tiles of FK from the block's
 * first key to the sequence end run through a ring of STAGES shared
 * stages (Q and dO in the 128-byte-swizzled layout, lse and D as 64
 * floats each), filled by cp.async from all threads STAGES - 1 tiles
 * ahead; a warpgroup skips the tiles before its own keys and masks only
 * the one that crosses its diagonal (its own code path). Per tile, with
 * this warpgroup's 64 keys as rows and the tile's queries as columns:
 *   S^T = K Q^T, dP^T = V dO^T   (Q, dO tiles as K-major B)
 *   P^T = exp2(S^T scale log2 e - lse log2 e), dS^T = P^T o (dP^T - D)
 *   dV += P^T dO, dK += dS^T Q   (P^T, dS^T re-packed in registers as A;
 *                                 dO, Q tiles as MN-major B)
 * Each output element is summed by one thread in an order fixed by the
 * sizes (no atomics): reruns give identical bits. Query rows past the
 * sequence end load as zeros (lse and D too) and add nothing.
 */
#include "attention_wgmma.cuh"

namespace {

/* A kernel shape: warpgroups per block, ring stages, K and V as A
 * operands from shared memory (else registers); registers capped for MINB
 * blocks per multiprocessor */
template <int NWG_, int STAGES_, int A_SMEM_, int MINB_>
struct bwd_dims {
    enum { NWG = NWG_, STAGES = STAGES_, A_SMEM = A_SMEM_, MINB = MINB_ };
};
/* The variants, numbered as MD_ATTN_WGMMA_BWD selects them: 1 (the
 * default; 222 registers, one block per multiprocessor) was the fastest
 * on an H200; 2 (163 registers, K and V read by descriptor, 3
 * warpgroups) is kept for A/B: 3% slower at L 16384. NOTES-attention.md
 * has both and the shapes that lost. */
template <int V>
struct bwd_shape;
template <> struct bwd_shape<1> : bwd_dims<2, 3, 0, 1> {};
template <> struct bwd_shape<2> : bwd_dims<3, 3, 1, 1> {};
enum { N_BWD_VARIANTS = 2, DEFAULT_BWD_VARIANT = 1 };

/* P^T and dS^T of one visited tile from the scores st and dpt of this
 * thread's keys (rows) and the tile's lse and D (per query: columns), in
 * place. DIAG: the tile crosses the diagonal; rel = (row of this thread's
 * first key) - (its first column), and a key past a query gets P 0. */
template <bool DIAG>
__device__ __forceinline__ void tile_grads(float (*st)[4], float (*dpt)[4], const float *lse_s, const float *D_s,
                                           int rel, float scale_log2)
{
    int c2 = 2 * (threadIdx.x & 3);
#pragma unroll
    for (int nt = 0; nt < FK / 8; nt++) {
        float2 lq = *reinterpret_cast<const float2 *>(lse_s + 8 * nt + c2);
        float2 dq = *reinterpret_cast<const float2 *>(D_s + 8 * nt + c2);
        float nl[2] = {-LOG2E * lq.x, -LOG2E * lq.y}, d[2] = {dq.x, dq.y};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float p = fast_exp2(fmaf(st[nt][e], scale_log2, nl[e & 1]));
            if (DIAG && 8 * nt + (e & 1) < rel + 8 * (e >> 1)) p = 0.0f;
            st[nt][e] = p;
            dpt[nt][e] = p * (dpt[nt][e] - d[e & 1]);
        }
    }
}

/* Shared bytes of variant V: the Q / dO ring, the block's K and V
 * (A_SMEM), lse and D per stage, and 1024 bytes to align the tiles */
template <int V>
constexpr size_t bwd_smem()
{
    typedef bwd_shape<V> sh;
    return ((size_t)sh::STAGES * 2 * FK + sh::A_SMEM * 2 * 64 * sh::NWG) * WHD * sizeof(__nv_bfloat16) +
           (size_t)sh::STAGES * 2 * FK * sizeof(float) + 1024;
}

template <int V, bool VIEW, typename S>
__global__ void __launch_bounds__(128 * bwd_shape<V>::NWG, bwd_shape<V>::MINB)
attn_bwd_dkdv_wgmma(S *dk, int64_t lddk, S *dv, int64_t lddv, attn_in in, const float *lse, int64_t len,
                    int64_t n_heads, float scale, int64_t n_ktiles)
{
#if MD_WGMMA_ON
    enum {
        NWG = bwd_shape<V>::NWG, STAGES = bwd_shape<V>::STAGES, A_SMEM = bwd_shape<V>::A_SMEM, NT = 128 * NWG,
        BK = 64 * NWG, TILE = FK * WHD, PD = STAGES - 1   /* tiles copied ahead */
    };
    static_assert(PD >= 1, "the ring needs a stage to fill ahead");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    uint32_t align = (1024 - (raw & 1023)) & 1023;
    uint32_t ring_sa = raw + align;   /* the ring, then K and V, then lse and D */
    uint32_t ks_sa = ring_sa + STAGES * 2 * TILE * 2, vs_sa = ks_sa + A_SMEM * BK * WHD * 2;   /* (A_SMEM) */
    float *rowv = reinterpret_cast<float *>(smem_raw + align + (STAGES * 2 * TILE + A_SMEM * 2 * BK * WHD) * 2);

    int64_t ktile = blockIdx.x % n_ktiles;   /* the costly (first) keys first */
    head_t hp = head_of(blockIdx.x / n_ktiles, n_heads, len, WHD);
    int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, gr = (threadIdx.x & 31) >> 2;
    int64_t j0 = ktile * BK, jw = j0 + 64 * wg;   /* the block's and this warpgroup's first key */
    int nt = (int)((len - j0 + FK - 1) / FK);     /* query tiles from j0 on */
    /* tile t holds queries j0 + FK t ..: this warpgroup's keys see tiles
     * from wg on, and only tile wg crosses their diagonal */
    bool active = jw < len;
    const float scale_log2 = scale * LOG2E;
    const float *lh = lse + hp.bh * len, *Dh = in.D + hp.bh * len;
    const rows_t qh = head_rows<WHD, VIEW>(in.q, hp), doh = head_rows<WHD, VIEW>(in.dout, hp);
    const tile_copier<FK, NT> qc(qh.ld), oc(doh.ld);
    auto q_at = [&](int t) { return ring_first<STAGES>(ring_sa, t); };   /* Q tiles first, dO second */
    auto do_at = [&](int t) { return ring_second<STAGES>(ring_sa, t); };
    auto lse_at = [&](int t) { return rowv + 2 * (t % STAGES) * FK; };
    auto fetch = [&](int t) {
        int64_t i0 = j0 + (int64_t)t * FK;
        ring_fetch<STAGES>(ring_sa, t, qc, qh, oc, doh, i0, len);
        copy_rowvals_async<FK, NT>(lse_at(t), lse_at(t) + FK, lh + i0, Dh + i0, rows_in<FK>(i0, len));
    };

    const rows_t kh = head_rows<WHD, VIEW>(in.k, hp), vh = head_rows<WHD, VIEW>(in.v, hp);
    if (A_SMEM) {   /* the block's keys, with tile 0's group */
        int n_in = rows_in<BK>(j0, len);
        tile_copier<BK, NT>(kh.ld).issue(ks_sa, kh.p + j0 * kh.ld, n_in);
        tile_copier<BK, NT>(vh.ld).issue(vs_sa, vh.p + j0 * vh.ld, n_in);
    }
#pragma unroll
    for (int t = 0; t < PD; t++) {
        if (t < nt) fetch(t);
        cp_async_commit();
    }
    uint32_t ka[WHD / 16][4], va[WHD / 16][4];
    if (!A_SMEM) {
        load_a_frags<WHD>(ka, kh, jw + 16 * warp, len);
        load_a_frags<WHD>(va, vh, jw + 16 * warp, len);
    }
    const uint32_t kw_sa = ks_sa + 64 * WHD * 2 * wg, vw_sa = vs_sa + 64 * WHD * 2 * wg;   /* this warpgroup's */
    float adk[WHD / 8][4], adv[WHD / 8][4], st[FK / 8][4], dpt[FK / 8][4];
    uint32_t pa[FK / 16][4], dsa[FK / 16][4];
    zero<WHD / 8>(adk);
    zero<WHD / 8>(adv);
    int rel = 16 * warp + gr - 2 * (int)(threadIdx.x & 3);
    for (int t = 0; t < nt; t++) {
        cp_async_wait<PD - 1>();   /* tile t landed (one group per tile, in order) */
        fence_async_shared();
        __syncthreads();           /* ... for every thread; and every read of tile t + PD - STAGES is done */
        if (t + PD < nt) fetch(t + PD);
        cp_async_commit();
        /* every wgmma group is issued and waited for inside this branch
         * (NOTES-attention.md: ptxas serialises a conditional issue) */
        if (active && t >= wg) {
            wgmma_fence();
            if (A_SMEM) {
                qk_product_ss(st, kw_sa, q_at(t));
                qk_product_ss(dpt, vw_sa, do_at(t));
            } else {
                qk_product(st, ka, q_at(t));
                qk_product(dpt, va, do_at(t));
            }
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<FK / 8>(st);
            reg_fence<FK / 8>(dpt);
            if (t == wg)
                tile_grads<true>(st, dpt, lse_at(t), lse_at(t) + FK, rel, scale_log2);
            else
                tile_grads<false>(st, dpt, lse_at(t), lse_at(t) + FK, rel, scale_log2);
            c_to_a<FK / 16>(pa, st);
            c_to_a<FK / 16>(dsa, dpt);
            wgmma_fence();
            pv_product(adv, pa, do_at(t));
            pv_product(adk, dsa, q_at(t));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<WHD / 8>(adv);
            reg_fence<WHD / 8>(adk);
        }
    }
    store_rows<WHD>(dk + hp.row0 * lddk + hp.col, lddk, jw + 16 * warp, len, adk, scale, scale);
    store_rows<WHD>(dv + hp.row0 * lddv + hp.col, lddv, jw + 16 * warp, len, adv, 1.0f, 1.0f);
#endif
}

template <int V, bool VIEW, typename S>
cudaError_t bwd_wg_launch(void *dk, int64_t lddk, void *dv, int64_t lddv, const pack_job &job, const attn_in &in,
                          const float *lse, int64_t batch, int64_t len, int64_t n_heads, float scale, cudaStream_t s)
{
    enum { BK = 64 * bwd_shape<V>::NWG };
    int64_t nk = (len + BK - 1) / BK;
    size_t sm = bwd_smem<V>();
    cudaError_t e = allow_smem(attn_bwd_dkdv_wgmma<V, VIEW, S>, sm);
    if (e == cudaSuccess && !VIEW) e = pack_heads<WHD, S>(job, 4, batch, len, n_heads, s);
    if (e != cudaSuccess) return e;
    attn_bwd_dkdv_wgmma<V, VIEW, S><<<(unsigned)(batch * n_heads * nk), 128 * bwd_shape<V>::NWG, sm, s>>>(
        (S *)dk, lddk, (S *)dv, lddv, in, lse, len, n_heads, scale, nk);
    return cudaGetLastError();
}

template <int V>
cudaError_t bwd_wg_variant(void *dk, int64_t lddk, void *dv, int64_t lddv, const pack_job &job, const attn_in &in,
                           bool view, int act_bf16, const float *lse, int64_t batch, int64_t len, int64_t n_heads,
                           float scale, cudaStream_t s)
{
    if (view)
        return bwd_wg_launch<V, true, __nv_bfloat16>(dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, scale, s);
    return (act_bf16 ? bwd_wg_launch<V, false, __nv_bfloat16> : bwd_wg_launch<V, false, float>)(
        dk, lddk, dv, lddv, job, in, lse, batch, len, n_heads, scale, s);
}

}   // namespace

extern "C" int mdk_attention_wgmma_bwd_variant(void)
{
    static int variant = -1;
    return cached_variant(&variant, mdk_attention_wgmma_variant(), "MD_ATTN_WGMMA_BWD", N_BWD_VARIANTS,
                          DEFAULT_BWD_VARIANT);
}

extern "C" cudaError_t mdk_attention_bwd_dkdv_wgmma(void *dk, int64_t lddk, void *dv, int64_t lddv, const void *dout,
                                                    int64_t lddo, const void *q, int64_t ldq, const void *k,
                                                    int64_t ldk, const void *v, int64_t ldv, const float *lse,
                                                    int64_t batch, int64_t len, int64_t n_heads, double scale,
                                                    void *workspace, int act_bf16, cudaStream_t s)
{
    int variant = mdk_attention_wgmma_bwd_variant();
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (variant == 0 || ((uintptr_t)workspace & 15) != 0) return cudaErrorInvalidValue;
    pack_job job;
    bool view;
    attn_in in = plan_backward(dout, lddo, q, ldq, k, ldk, v, ldv, workspace, batch, len, n_heads, WHD, act_bf16, &job,
                               &view);
    float sc = (float)scale;
    if (variant == 2)
        return bwd_wg_variant<2>(dk, lddk, dv, lddv, job, in, view, act_bf16, lse, batch, len, n_heads, sc, s);
    return bwd_wg_variant<1>(dk, lddk, dv, lddv, job, in, view, act_bf16, lse, batch, len, n_heads, sc, s);
}
