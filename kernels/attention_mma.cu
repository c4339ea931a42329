/* Causal multi-head attention on the tensor cores: bf16 operands, fp32
 * accumulation (mma.sync m16n8k16, attention_mma.cuh), for the bf16
 * precision table (backend_kernels.h): the forward here, the backward in
 * attention_mma_bwd.cu. Head dims 32, 64 and 128; attention.cu's fp32
 * kernels serve every other head dim and the fp32 table.
 *
 * Forward: q, k, v are read in place where they are bf16 views whose rows
 * 16-byte copies can read (the bf16 table's activation storage at the
 * model's widths); otherwise (fp32, or misaligned) they are first copied
 * to bf16 head-major copies in the workspace (attention_mma.cuh). Either
 * way every K/V tile row is a run of 16-byte cp.async copies straight into
 * the padded bf16 shared layout. A block of fwd_shape's FW warps owns 16
 * QT FW queries of one (sequence, head), each warp 16 QT; key tiles of 64
 * run from 0 to the diagonal (later tiles are never visited, nor by a warp
 * the tiles past its own rows; only tiles that cross the diagonal are
 * masked), double-buffered: the next tile's copies run under this tile's
 * products. Online softmax in base 2 with the running max and sum in fp32;
 * lse saved.
 */
#include "attention_mma.cuh"

namespace {

enum { FK = 64 };   /* keys per tile */

/* The forward's shape per head dim: FW warps of QT row tiles (16 queries
 * each), registers capped for MINB blocks per multiprocessor. At 64 two
 * row tiles per warp (4 warps, 2 blocks of up to 255 registers): on an
 * H200 5-8% faster than one (8 warps, 2 blocks of 128 registers), which
 * stays at 32 (not measured) and 128 (its accumulators would not fit
 * twice). NOTES-attention.md has the figures. */
template <int HD>
struct fwd_shape {
    enum { FW = HD == 64 ? 4 : 8, QT = HD == 64 ? 2 : 1, MINB = HD <= 64 ? 2 : 1 };
};

/* FW warps of 16 QT queries each (QT row tiles of 16 share every K and V
 * fragment read from shared memory) */
template <int HD, int FW, int QT, bool VIEW, typename S>
__global__ void __launch_bounds__(32 * FW, fwd_shape<HD>::MINB)
attn_fwd_mma(S *o, int64_t ldo, float *lse, attn_in in, int64_t len, int64_t n_heads, float scale_log2,
             int64_t n_tiles)
{
    enum { FTHREADS = 32 * FW, WQ = 16 * QT, FQ = WQ * FW, TILE = FK * (HD + PAD) };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *tiles = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* stage s: K at 2s TILE, V next */
    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;                     /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t i0 = tile * FQ, iw = i0 + WQ * warp;   /* this warp's first query */
    const rows_t kh = head_rows<HD, VIEW>(in.k, hp), vh = head_rows<HD, VIEW>(in.v, hp);
    auto fetch = [&](int stage, int64_t j0) {
        copy_pair_async<FK, HD, FTHREADS>(tiles + 2 * stage * TILE, tiles + (2 * stage + 1) * TILE, kh, vh, j0, len);
    };

    fetch(0, 0);
    cp_async_commit();
    uint32_t qa[QT][HD / 16][4];
#pragma unroll
    for (int q = 0; q < QT; q++) load_a_frags<HD>(qa[q], head_rows<HD, VIEW>(in.q, hp), iw + 16 * q, len);
    /* row r of the warp: tile r >> 1, row gr + 8 (r & 1) */
    float acc[QT][HD / 8][4], m[2 * QT], l[2 * QT];
#pragma unroll
    for (int q = 0; q < QT; q++) zero<HD / 8>(acc[q]);
#pragma unroll
    for (int r = 0; r < 2 * QT; r++) m[r] = -INFINITY, l[r] = 0.0f;
    int64_t i_end = i0 + FQ < len ? i0 + FQ : len;
    int stage = 0;
    for (int64_t j0 = 0; j0 < i_end; j0 += FK, stage ^= 1) {
        if (j0 + FK < i_end) fetch(stage ^ 1, j0 + FK);   /* the last reader of that stage passed the barrier below */
        cp_async_commit();
        cp_async_wait<1>();   /* this stage's copies landed */
        __syncthreads();
        const __nv_bfloat16 *Ks = tiles + 2 * stage * TILE, *Vs = Ks + TILE;
        /* tiles start at multiples of 64 and warps at multiples of WQ (a
         * divisor of 64), so a visited tile's first key precedes every
         * query of the warp: each row's max below is finite */
        if (j0 <= iw) {
            float s[QT][FK / 8][4];
#pragma unroll
            for (int q = 0; q < QT; q++) zero<FK / 8>(s[q]);
            mma_rows<FK, HD / 16, QT>(s, qa, Ks, HD + PAD);
            bool diag = j0 + FK - 1 > iw;   /* some key of the tile lies past some query of the warp */
            /* the row maxima of the raw scores (the scale is positive), so
             * that each probability is one fma and one exp2 */
            float mx[2 * QT];
#pragma unroll
            for (int r = 0; r < 2 * QT; r++) mx[r] = -INFINITY;
#pragma unroll
            for (int q = 0; q < QT; q++)
#pragma unroll
                for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        if (diag) {
                            int64_t i = iw + 16 * q + gr + 8 * (e >> 1), j = j0 + 8 * nt + c2 + (e & 1);
                            if (j > i) s[q][nt][e] = -INFINITY;
                        }
                        mx[2 * q + (e >> 1)] = fmaxf(mx[2 * q + (e >> 1)], s[q][nt][e]);
                    }
            float alpha[2 * QT], nm[2 * QT];
#pragma unroll
            for (int r = 0; r < 2 * QT; r++) {
                float m_new = fmaxf(m[r], quad_max(mx[r]) * scale_log2);
                alpha[r] = fast_exp2(m[r] - m_new);
                m[r] = m_new;
                nm[r] = -m_new;
                l[r] *= alpha[r];
            }
            /* l stays this thread's part of the row sum (its 16 columns of
             * every tile) until the end: alpha is the same across the quad */
#pragma unroll
            for (int q = 0; q < QT; q++)
#pragma unroll
                for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int r = 2 * q + (e >> 1);
                        float p = fast_exp2(fmaf(s[q][nt][e], scale_log2, nm[r]));
                        s[q][nt][e] = p;
                        l[r] += p;
                    }
#pragma unroll
            for (int q = 0; q < QT; q++)
#pragma unroll
                for (int nt = 0; nt < HD / 8; nt++) {
                    acc[q][nt][0] *= alpha[2 * q], acc[q][nt][1] *= alpha[2 * q];
                    acc[q][nt][2] *= alpha[2 * q + 1], acc[q][nt][3] *= alpha[2 * q + 1];
                }
            uint32_t pa[QT][FK / 16][4];
#pragma unroll
            for (int q = 0; q < QT; q++) c_to_a<FK / 16>(pa[q], s[q]);
            mma_rows_trans<HD, FK / 16, QT>(acc, pa, Vs, HD + PAD);
        }
        __syncthreads();   /* this stage is free for the copies two tiles on */
    }
#pragma unroll
    for (int r = 0; r < 2 * QT; r++) l[r] = quad_sum(l[r]);
#pragma unroll
    for (int q = 0; q < QT; q++) {
        store_rows<HD>(o + hp.row0 * ldo + hp.col, ldo, iw + 16 * q, len, acc[q], 1.0f / l[2 * q], 1.0f / l[2 * q + 1]);
        int64_t ra = iw + 16 * q + gr, rb = ra + 8;
        if ((lane & 3) == 0) {
            const float LN2 = 0.6931471805599453f;
            if (ra < len) lse[hp.bh * len + ra] = m[2 * q] * LN2 + logf(l[2 * q]);
            if (rb < len) lse[hp.bh * len + rb] = m[2 * q + 1] * LN2 + logf(l[2 * q + 1]);
        }
    }
}

/* S: the storage type of q, k, v and o; VIEW: q, k, v read in place
 * (views_in_place), else from their copies, made here */
template <int HD, typename S, bool VIEW>
cudaError_t fwd_launch(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_in &in, int64_t batch,
                       int64_t len, int64_t n_heads, double scale, cudaStream_t s)
{
    enum { FW = fwd_shape<HD>::FW, QT = fwd_shape<HD>::QT };
    int64_t nt = (len + 16 * QT * FW - 1) / (16 * QT * FW);
    size_t sm = 2 * 2 * (size_t)FK * (HD + PAD) * sizeof(__nv_bfloat16);
    cudaError_t e = allow_smem(attn_fwd_mma<HD, FW, QT, VIEW, S>, sm);
    if (e == cudaSuccess && !VIEW) e = pack_heads<HD, S>(job, 3, batch, len, n_heads, s);
    if (e != cudaSuccess) return e;
    attn_fwd_mma<HD, FW, QT, VIEW, S><<<(unsigned)(batch * n_heads * nt), 32 * FW, sm, s>>>(
        (S *)o, ldo, lse, in, len, n_heads, (float)(scale * 1.4426950408889634), nt);
    return cudaGetLastError();
}

template <typename S, bool VIEW>
cudaError_t fwd_head_dim(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_in &in, int64_t batch,
                         int64_t len, int64_t n_heads, int64_t head_dim, double scale, cudaStream_t s)
{
    switch (head_dim) {
    case 32: return fwd_launch<32, S, VIEW>(o, ldo, lse, job, in, batch, len, n_heads, scale, s);
    case 64: return fwd_launch<64, S, VIEW>(o, ldo, lse, job, in, batch, len, n_heads, scale, s);
    default: return fwd_launch<128, S, VIEW>(o, ldo, lse, job, in, batch, len, n_heads, scale, s);
    }
}

}   // namespace

extern "C" int mdk_attention_mma_head_dim(int64_t head_dim)
{
    return head_dim == 32 || head_dim == 64 || head_dim == 128;
}

extern "C" size_t mdk_attention_mma_workspace(int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim)
{
    if (!mdk_attention_mma_head_dim(head_dim)) return mdk_attention_bwd_workspace(batch, len, n_heads);
    int64_t rows = batch * n_heads * len;
    return align256((size_t)rows * sizeof(float)) + 4 * ws_copy_bytes(rows, head_dim);
}

extern "C" cudaError_t mdk_attention_fwd_mma(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq,
                                             const void *k, int64_t ldk, const void *v, int64_t ldv, int64_t batch,
                                             int64_t len, int64_t n_heads, int64_t head_dim, double scale,
                                             void *workspace, int act_bf16, cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (!mdk_attention_mma_head_dim(head_dim) || ((uintptr_t)workspace & 15) != 0) return cudaErrorInvalidValue;
#if MD_HAVE_WGMMA
    /* (its tile copies keep row offsets in 32 bits) */
    if (head_dim == 64 && ldk <= INT_MAX / 256 && ldv <= INT_MAX / 256 && mdk_attention_wgmma_variant() != 0)
        return mdk_attention_fwd_wgmma(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, scale, workspace,
                                       act_bf16, s);
#endif
    pack_job job;
    bool view;
    attn_in in = plan_forward(q, ldq, k, ldk, v, ldv, workspace, batch, len, n_heads, head_dim, act_bf16, &job, &view);
    if (view) return fwd_head_dim<__nv_bfloat16, true>(o, ldo, lse, job, in, batch, len, n_heads, head_dim, scale, s);
    return (act_bf16 ? fwd_head_dim<__nv_bfloat16, false> : fwd_head_dim<float, false>)(o, ldo, lse, job, in, batch,
                                                                                         len, n_heads, head_dim,
                                                                                         scale, s);
}
