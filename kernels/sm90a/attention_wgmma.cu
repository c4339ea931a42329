/* Causal attention forward at head dim 64 on Hopper's warpgroup MMA
 * (wgmma.mma_async, wgmma.cuh), FlashAttention-3 style; compiled for
 * sm_90a alone (kernels/sm90a/CMakeLists.txt). attention_mma.cu calls it
 * for head dim 64 on a compute-capability-9.0 device unless
 * MD_ATTN_WGMMA=0 (mdk_attention_wgmma_variant); its mma.sync kernel
 * serves everything else. Inputs, outputs and workspace as
 * mdk_attention_fwd_mma's: q, k, v read in place where plan_inputs allows,
 * else from their bf16 head-major copies; o, and lse = m + ln l per row
 * exactly as the mma.sync kernel saves it (the backward reads it).
 *
 * A block owns 64 NWG queries of one (sequence, head); each of its NWG
 * warpgroups 64 of them (warp w % 4: 16), their Q fragments in registers
 * as wgmma's A operand. K and V tiles of FK keys run from 0 to the block's
 * diagonal through a ring of STAGES shared stages in the 128-byte-swizzled
 * layout (wgmma.cuh), filled by cp.async from all threads PD tiles ahead;
 * a warpgroup skips the tiles past its own rows and masks only those that
 * cross its diagonal (a separate code path). Per tile: S = Q K^T (K-major
 * B), online softmax in base 2 in registers, O += P V (P re-packed from S
 * in registers as the A operand, V an MN-major B). The overlap between
 * the tensor cores and the softmax comes from the other warpgroups on the
 * multiprocessor (4 per SM in the default shape).
 *
 * OVERLAP (variant 2) also overlaps within a warpgroup, in the spirit of
 * FlashAttention-3: tile t - 1's P V is issued after tile t's row maxima
 * and runs under its exponentials; O is rescaled once it lands. (The
 * maxima cannot run under a wgmma: ptxas makes the quad shuffles wait for
 * every wgmma in flight.) That keeps V of tile t - 1 in use during tile t,
 * so the copies run STAGES - 2 tiles ahead instead of STAGES - 1. On an
 * H200 it was 3-4% slower than the default.
 */
#include "attention_wgmma.cuh"

namespace {

/* A kernel shape: warpgroups per block, ring stages, overlap; registers
 * capped for MINB blocks per multiprocessor */
template <int NWG_, int STAGES_, int OVERLAP_, int MINB_>
struct wg_dims {
    enum { NWG = NWG_, STAGES = STAGES_, OVERLAP = OVERLAP_, MINB = MINB_ };
};
/* The variants, numbered as MD_ATTN_WGMMA selects them: 1 (the default)
 * was the fastest of those measured on an H200, 2 is the overlapped
 * schedule kept for A/B (3-4% slower at L 16384; NOTES-attention.md has
 * both and the shapes that lost) */
template <int V>
struct wg_shape;
template <> struct wg_shape<1> : wg_dims<2, 4, 0, 2> {};
template <> struct wg_shape<2> : wg_dims<2, 5, 1, 2> {};
enum { N_VARIANTS = 2, DEFAULT_VARIANT = 1 };

/* The online softmax of one visited tile (keys from j0), first half, on
 * the scores s of this thread's rows ra and ra + 8: masks keys past the
 * row where the tile crosses the diagonal (DIAG), updates the running max
 * m (base 2, scaled) and this thread's partial row sums l, and returns the
 * factors alpha by which the output rows must shrink and nm = -m. Its quad
 * shuffles make ptxas wait for every wgmma in flight, so it runs while
 * none is. */
template <bool DIAG>
__device__ __forceinline__ void tile_max(float (*s)[4], float m[2], float l[2], float alpha[2], float nm[2],
                                         int64_t ra, int64_t j0, float scale_log2)
{
    /* on a tile that crosses the diagonal the first row lies within
     * [j0, j0 + FK) or just past it: 32-bit column arithmetic suffices */
    int rel = DIAG ? (int)(ra - j0) - 2 * (int)(threadIdx.x & 3) : 0;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            if (DIAG && 8 * nt + (e & 1) > rel + 8 * (e >> 1)) s[nt][e] = -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float m_new = fmaxf(m[r], quad_max(mx[r]) * scale_log2);
        alpha[r] = fast_exp2(m[r] - m_new);
        m[r] = m_new;
        nm[r] = -m_new;
        l[r] *= alpha[r];
    }
}

/* Second half: s becomes the probabilities exp2(s scale_log2 - m), added
 * to this thread's partial row sums l (no shuffles: it can run under a
 * wgmma) */
__device__ __forceinline__ void tile_exp(float (*s)[4], float l[2], const float nm[2], float scale_log2)
{
#pragma unroll
    for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float p = fast_exp2(fmaf(s[nt][e], scale_log2, nm[e >> 1]));
            s[nt][e] = p;
            l[e >> 1] += p;
        }
}

__device__ __forceinline__ void rescale(float (*acc)[4], const float alpha[2])
{
#pragma unroll
    for (int nt = 0; nt < WHD / 8; nt++)
        acc[nt][0] *= alpha[0], acc[nt][1] *= alpha[0], acc[nt][2] *= alpha[1], acc[nt][3] *= alpha[1];
}

/* Shared bytes of variant V: the ring and 1024 bytes to align it */
template <int V>
constexpr size_t wg_smem()
{
    return (size_t)wg_shape<V>::STAGES * 2 * FK * WHD * sizeof(__nv_bfloat16) + 1024;
}

template <int V, bool VIEW, typename S>
__global__ void __launch_bounds__(128 * wg_shape<V>::NWG, wg_shape<V>::MINB)
attn_fwd_wgmma(S *o, int64_t ldo, float *lse, attn_in in, int64_t len, int64_t n_heads, float scale_log2,
               int64_t n_qtiles)
{
#if MD_WGMMA_ON
    enum {
        NWG = wg_shape<V>::NWG, STAGES = wg_shape<V>::STAGES,
        OVERLAP = wg_shape<V>::OVERLAP, NT = 128 * NWG, BQ = 64 * NWG,
        PD = OVERLAP ? STAGES - 2 : STAGES - 1   /* tiles copied ahead */
    };
    static_assert(PD >= 1, "the ring needs a stage to fill ahead");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t ring_sa = ring_base(smem_raw);   /* K tiles first, V second */

    int64_t qtile = n_qtiles - 1 - blockIdx.x % n_qtiles;   /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_qtiles, n_heads, len, WHD);
    int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, gr = (threadIdx.x & 31) >> 2;
    int64_t i0 = qtile * BQ, iw = i0 + 64 * wg;   /* the block's and this warpgroup's first query */
    int64_t i_end = i0 + BQ < len ? i0 + BQ : len;
    int nt = (int)((i_end + FK - 1) / FK);
    /* visited tiles start at or before iw (FK and iw multiples of 64), so
     * every row's max is finite from the first on */
    int nt_wg = iw < len ? (int)(iw / FK) + 1 : 0;
    const rows_t kh = head_rows<WHD, VIEW>(in.k, hp), vh = head_rows<WHD, VIEW>(in.v, hp);
    const tile_copier<FK, NT> kc(kh.ld), vc(vh.ld);
    auto k_at = [&](int t) { return ring_first<STAGES>(ring_sa, t); };
    auto v_at = [&](int t) { return ring_second<STAGES>(ring_sa, t); };
    auto fetch = [&](int t) { ring_fetch<STAGES>(ring_sa, t, kc, kh, vc, vh, (int64_t)t * FK, len); };

#pragma unroll
    for (int t = 0; t < PD; t++) {
        if (t < nt) fetch(t);
        cp_async_commit();
    }
    int64_t ra = iw + 16 * warp + gr;   /* this thread's rows: ra and ra + 8 */
    uint32_t qa[WHD / 16][4];
    load_a_frags<WHD>(qa, head_rows<WHD, VIEW>(in.q, hp), iw + 16 * warp, len);
    float acc[WHD / 8][4], s[FK / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, alpha[2], nm[2];
    uint32_t pa[FK / 16][4];
    zero<WHD / 8>(acc);
    for (int t = 0; t < nt; t++) {
        cp_async_wait<PD - 1>();   /* tile t landed (one group per tile, in order) */
        fence_async_shared();
        __syncthreads();           /* ... for every thread; and every read of tile t + PD - STAGES is done */
        if (t + PD < nt) fetch(t + PD);
        cp_async_commit();
        int64_t j0 = (int64_t)t * FK;
        bool diag = j0 + FK - 1 > iw;   /* only a tile that crosses this warpgroup's diagonal is masked */
        auto softmax_max = [&]() {
            if (diag)
                tile_max<true>(s, m, l, alpha, nm, ra, j0, scale_log2);
            else
                tile_max<false>(s, m, l, alpha, nm, ra, j0, scale_log2);
        };
        /* every wgmma group is issued and waited for inside one branch: a
         * wgmma issued on a condition while another was in flight made
         * ptxas serialise them all (its warning C7520) */
        if (t < nt_wg) {
            wgmma_fence();
            qk_product(s, qa, k_at(t));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<FK / 8>(s);
            softmax_max();
            if (!OVERLAP) {
                tile_exp(s, l, nm, scale_log2);
                rescale(acc, alpha);
                c_to_a<FK / 16>(pa, s);
                wgmma_fence();
                pv_product(acc, pa, v_at(t));
                wgmma_commit();
                wgmma_wait<0>();
                reg_fence<WHD / 8>(acc);
            } else {
                if (t > 0) {
                    /* P V of tile t - 1 on the tensor cores under this
                     * tile's exponentials */
                    wgmma_fence();
                    pv_product(acc, pa, v_at(t - 1));
                    wgmma_commit();
                    tile_exp(s, l, nm, scale_log2);
                    wgmma_wait<0>();
                    reg_fence<WHD / 8>(acc);
                    reg_fence<FK / 8>(s);   /* pa is rewritten only once its reader is done */
                    rescale(acc, alpha);
                } else {
                    tile_exp(s, l, nm, scale_log2);
                }
                c_to_a<FK / 16>(pa, s);
            }
        } else if (OVERLAP && t == nt_wg && t > 0) {
            /* this warpgroup's last P V, while tile t - 1 is still in its stage */
            wgmma_fence();
            pv_product(acc, pa, v_at(t - 1));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence<WHD / 8>(acc);
        }
    }
    if (OVERLAP && nt_wg == nt && nt > 0) {
        wgmma_fence();
        pv_product(acc, pa, v_at(nt - 1));
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence<WHD / 8>(acc);
    }
    l[0] = quad_sum(l[0]), l[1] = quad_sum(l[1]);
    store_rows<WHD>(o + hp.row0 * ldo + hp.col, ldo, iw + 16 * warp, len, acc, 1.0f / l[0], 1.0f / l[1]);
    if ((threadIdx.x & 3) == 0) {
        const float LN2 = 0.6931471805599453f;
        if (ra < len) lse[hp.bh * len + ra] = m[0] * LN2 + logf(l[0]);
        if (ra + 8 < len) lse[hp.bh * len + ra + 8] = m[1] * LN2 + logf(l[1]);
    }
#endif
}

template <int V, bool VIEW, typename S>
cudaError_t wg_launch(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_in &in, int64_t batch,
                      int64_t len, int64_t n_heads, double scale, cudaStream_t s)
{
    enum { BQ = 64 * wg_shape<V>::NWG };
    int64_t nq = (len + BQ - 1) / BQ;
    size_t sm = wg_smem<V>();
    cudaError_t e = allow_smem(attn_fwd_wgmma<V, VIEW, S>, sm);
    if (e == cudaSuccess && !VIEW) e = pack_heads<WHD, S>(job, 3, batch, len, n_heads, s);
    if (e != cudaSuccess) return e;
    attn_fwd_wgmma<V, VIEW, S><<<(unsigned)(batch * n_heads * nq), 128 * wg_shape<V>::NWG, sm, s>>>(
        (S *)o, ldo, lse, in, len, n_heads, (float)(scale * 1.4426950408889634), nq);
    return cudaGetLastError();
}

template <int V>
cudaError_t wg_variant(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_in &in, bool view,
                       int act_bf16, int64_t batch, int64_t len, int64_t n_heads, double scale, cudaStream_t s)
{
    if (view) return wg_launch<V, true, __nv_bfloat16>(o, ldo, lse, job, in, batch, len, n_heads, scale, s);
    return (act_bf16 ? wg_launch<V, false, __nv_bfloat16> : wg_launch<V, false, float>)(o, ldo, lse, job, in, batch,
                                                                                        len, n_heads, scale, s);
}

}   // namespace

extern "C" int mdk_attention_wgmma_variant(void)
{
    static int variant = -1;
    return cached_variant(&variant, 1, "MD_ATTN_WGMMA", N_VARIANTS, DEFAULT_VARIANT);
}

extern "C" cudaError_t mdk_attention_fwd_wgmma(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq,
                                               const void *k, int64_t ldk, const void *v, int64_t ldv,
                                               int64_t batch, int64_t len, int64_t n_heads, double scale,
                                               void *workspace, int act_bf16, cudaStream_t s)
{
    int variant = mdk_attention_wgmma_variant();
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (variant == 0 || ((uintptr_t)workspace & 15) != 0) return cudaErrorInvalidValue;
    pack_job job;
    bool view;
    attn_in in = plan_forward(q, ldq, k, ldk, v, ldv, workspace, batch, len, n_heads, WHD, act_bf16, &job, &view);
    if (variant == 2) return wg_variant<2>(o, ldo, lse, job, in, view, act_bf16, batch, len, n_heads, scale, s);
    return wg_variant<1>(o, ldo, lse, job, in, view, act_bf16, batch, len, n_heads, scale, s);
}
