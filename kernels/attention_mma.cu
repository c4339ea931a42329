/* Causal multi-head attention on the tensor cores: bf16 operands, fp32
 * accumulation (mma.sync m16n8k16, attention_mma.cuh), for the bf16
 * precision table (backend_kernels.h): the forward here, the backward in
 * attention_mma_bwd.cu. Head dims 32, 64 and 128; attention.cu's fp32
 * kernels serve every other head dim and the fp32 table.
 *
 * Forward: q, k, v (fp32, or bf16 with the bf16 table's activation
 * storage: then o too) are first copied to bf16 head-major copies in the
 * workspace (attention_mma.cuh), so that every K/V tile is a run of
 * 16-byte cp.async copies straight into the padded bf16 shared layout. A
 * block of 8 warps owns 128 queries of one (sequence, head), each warp 16;
 * key tiles of 64 run from 0 to the diagonal (later tiles are never
 * visited, nor by a warp the tiles past its own rows; only tiles that
 * cross the diagonal are masked), double-buffered: the next tile's copies
 * run under this tile's products. Online softmax in base 2 with the
 * running max and sum in fp32; lse saved.
 */
#include "attention_mma.cuh"

namespace {

enum { FK = 64 };   /* keys per tile */

/* FW warps of 16 queries each; at head dims <= 64 capped at 128 registers
 * (512 threads per multiprocessor) */
template <int HD, int FW, typename S>
__global__ void __launch_bounds__(32 * FW, HD <= 64 ? 16 / FW : 1)
attn_fwd_mma(S *o, int64_t ldo, float *lse, attn_ws w, int64_t len, int64_t n_heads, float scale_log2,
             int64_t n_tiles)
{
    enum { FTHREADS = 32 * FW, FQ = 16 * FW, TILE = FK * (HD + PAD) };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *tiles = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* stage s: K at 2s TILE, V next */
    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;                     /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t i0 = tile * FQ, iw = i0 + 16 * warp;   /* this warp's first query */
    int64_t head_off = hp.bh * len * HD;
    const __nv_bfloat16 *kh = w.k + head_off, *vh = w.v + head_off;
    auto fetch = [&](int stage, int64_t j0) {
        copy_pair_async<FK, HD, FTHREADS>(tiles + 2 * stage * TILE, tiles + (2 * stage + 1) * TILE, kh, vh, j0, len);
    };

    fetch(0, 0);
    cp_async_commit();
    uint32_t qa[HD / 16][4];
    load_a_frags<HD>(qa, w.q + head_off, iw, len);
    float acc[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    zero<HD / 8>(acc);
    int64_t i_end = i0 + FQ < len ? i0 + FQ : len;
    int stage = 0;
    for (int64_t j0 = 0; j0 < i_end; j0 += FK, stage ^= 1) {
        if (j0 + FK < i_end) fetch(stage ^ 1, j0 + FK);   /* the last reader of that stage passed the barrier below */
        cp_async_commit();
        cp_async_wait<1>();   /* this stage's copies landed */
        __syncthreads();
        const __nv_bfloat16 *Ks = tiles + 2 * stage * TILE, *Vs = Ks + TILE;
        /* tiles start at multiples of 64 and warps at multiples of 16, so a
         * visited tile's first key precedes every query of the warp: each
         * row's max below is finite */
        if (j0 <= iw) {
            float s[FK / 8][4];
            zero<FK / 8>(s);
            mma_rows<FK, HD / 16>(s, qa, Ks, HD + PAD);
            bool diag = j0 + FK - 1 > iw;   /* some key of the tile lies past some query of the warp */
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[nt][e] * scale_log2;
                    if (diag) {
                        int64_t i = iw + gr + 8 * (e >> 1), j = j0 + 8 * nt + c2 + (e & 1);
                        if (j > i) x = -INFINITY;
                    }
                    s[nt][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            float alpha[2];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                mx[h] = quad_max(mx[h]);
                alpha[h] = fast_exp2(m[h] - mx[h]);
                m[h] = mx[h];
            }
            float rs[2] = {0.0f, 0.0f};
#pragma unroll
            for (int nt = 0; nt < FK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = fast_exp2(s[nt][e] - m[e >> 1]);
                    s[nt][e] = p;
                    rs[e >> 1] += p;
                }
#pragma unroll
            for (int h = 0; h < 2; h++) l[h] = l[h] * alpha[h] + quad_sum(rs[h]);
#pragma unroll
            for (int nt = 0; nt < HD / 8; nt++) {
                acc[nt][0] *= alpha[0], acc[nt][1] *= alpha[0];
                acc[nt][2] *= alpha[1], acc[nt][3] *= alpha[1];
            }
            uint32_t pa[FK / 16][4];
            c_to_a<FK / 16>(pa, s);
            mma_rows_trans<HD, FK / 16>(acc, pa, Vs, HD + PAD);
        }
        __syncthreads();   /* this stage is free for the copies two tiles on */
    }
    store_rows<HD>(o + hp.row0 * ldo + hp.col, ldo, iw, len, acc, 1.0f / l[0], 1.0f / l[1]);
    if ((lane & 3) == 0) {
        const float LN2 = 0.6931471805599453f;
        int64_t ra = iw + gr, rb = ra + 8;
        if (ra < len) lse[hp.bh * len + ra] = m[0] * LN2 + logf(l[0]);
        if (rb < len) lse[hp.bh * len + rb] = m[1] * LN2 + logf(l[1]);
    }
}

/* 8 warps (128 queries) per forward block: on an H200 3% faster than 4
 * (64) at L 16384, 2.5% slower at L 1024, with the bf16 copies; 15-25%
 * faster with fp32 staging tiles (NOTES-attention.md) */
enum { FWD_WARPS = 8 };

/* S: the storage type of q, k, v and o */
template <int HD, typename S>
cudaError_t fwd_launch(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_ws &w, int64_t batch,
                       int64_t len, int64_t n_heads, double scale, cudaStream_t s)
{
    int64_t nt = (len + 16 * FWD_WARPS - 1) / (16 * FWD_WARPS);
    size_t sm = 2 * 2 * (size_t)FK * (HD + PAD) * sizeof(__nv_bfloat16);
    cudaError_t e = allow_smem(attn_fwd_mma<HD, FWD_WARPS, S>, sm);
    if (e == cudaSuccess) e = pack_heads<HD, S>(job, 3, batch, len, n_heads, s);
    if (e != cudaSuccess) return e;
    attn_fwd_mma<HD, FWD_WARPS, S><<<(unsigned)(batch * n_heads * nt), 32 * FWD_WARPS, sm, s>>>(
        (S *)o, ldo, lse, w, len, n_heads, (float)(scale * 1.4426950408889634), nt);
    return cudaGetLastError();
}

template <typename S>
cudaError_t fwd_head_dim(void *o, int64_t ldo, float *lse, const pack_job &job, const attn_ws &w, int64_t batch,
                         int64_t len, int64_t n_heads, int64_t head_dim, double scale, cudaStream_t s)
{
    switch (head_dim) {
    case 32: return fwd_launch<32, S>(o, ldo, lse, job, w, batch, len, n_heads, scale, s);
    case 64: return fwd_launch<64, S>(o, ldo, lse, job, w, batch, len, n_heads, scale, s);
    default: return fwd_launch<128, S>(o, ldo, lse, job, w, batch, len, n_heads, scale, s);
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
    attn_ws w = carve_ws(workspace, batch * n_heads * len, head_dim);
    pack_job job = {{q, k, v, NULL}, {ldq, ldk, ldv, 0}, {w.q, w.k, w.v, NULL}};
    return (act_bf16 ? fwd_head_dim<__nv_bfloat16> : fwd_head_dim<float>)(o, ldo, lse, job, w, batch, len, n_heads,
                                                                           head_dim, scale, s);
}
