/* Causal multi-head attention on the tensor cores: bf16 operands, fp32
 * accumulation (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32), for
 * the bf16 precision table (backend_kernels.h). Tensors stay fp32 in
 * memory; tiles are rounded to bf16 as they are loaded. Head dims 32, 64
 * and 128; attention.cu's fp32 kernels serve every other head dim and the
 * fp32 table.
 *
 * Fragment layouts of m16n8k16 (g = lane / 4, c = lane % 4): A (16 x 16,
 * row) holds rows g and g + 8, columns 2c, 2c + 1 and 2c + 8, 2c + 9; B
 * (16 x 8, col) holds rows (the k index) 2c, 2c + 1 and 2c + 8, 2c + 9 of
 * column g; C holds rows g, g + 8 and columns 2c, 2c + 1. So a C tile pair
 * (keys 16t .. 16t + 15) re-packs into an A fragment in registers
 * (FlashAttention-2's trick). A B operand whose columns are rows of a
 * shared tile (K in Q K^T) is read as 32-bit pairs; one whose rows are rows
 * of a tile (V in P V) comes from ldmatrix.trans, so every tile is stored
 * once, row-major. Shared rows are padded by 8 bf16 (16 bytes): the 8 rows
 * a 32-bit read or an ldmatrix phase touches fall in 8 different 4-bank
 * groups. Tiles load as float4 when every view allows it (row strides a
 * multiple of 4 floats, 16-byte aligned bases: the model's layout), else
 * as single floats.
 *
 * Forward: a block of 8 warps owns 128 queries of one (sequence, head),
 * each warp 16; key tiles of 64 run from 0 to the diagonal (later tiles are
 * never visited, nor by a warp the tiles past its own rows; only tiles
 * that cross the diagonal are masked); online softmax in base 2 with the
 * running max and sum in fp32; lse saved. The next K/V tile's cp.async
 * copies (fp32, into a staging tile) run under this tile's products.
 *
 * Backward (FlashAttention-2's recomputation from lse), no atomics:
 *   D_t = rowsum(dO_t * O_t)                          (attention.cu's kernel)
 *   dK, dV: a block per 64 keys (16 per warp) walks the query tiles from
 *           the diagonal down: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO,
 *           dK += dS^T Q
 *   dQ:     a block per 64 queries walks the key tiles up to the diagonal:
 *           S = Q K^T, dP = dO V^T, dQ += dS K
 * Each output element is summed by one thread in an order fixed by the
 * sizes, so reruns give identical bits. Rows past the sequence end load
 * as zeros, with lse = +inf and D = 0 there, so they add nothing. The
 * backward loads its tiles directly (load_tile): the forward's staging
 * made it slower (more shared memory per block, fewer blocks; measured in
 * NOTES-attention.md).
 */
#include "backend_kernels.h"

#include <cuda_bf16.h>
#include <math.h>

namespace {

enum { WARPS = 4, THREADS = 32 * WARPS, PAD = 8 };   /* the backward's blocks */
constexpr float LOG2E = 1.4426950408889634f;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* d += a b: one m16n8k16 bf16 product with fp32 accumulation */
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

/* Rows [r0, r0 + R) of a (len, HD) head view (row stride ld) rounded to
 * bf16 into sh (row stride HD + PAD) by NT threads; rows past len are
 * zeros. vec: ld % 4 == 0 and g 16-byte aligned (float4 loads). */
template <int R, int HD, int NT>
__device__ __forceinline__ void load_tile(__nv_bfloat16 *sh, const float *g, int64_t ld, int64_t r0, int64_t len,
                                          bool vec)
{
    if (vec) {
        for (int i = threadIdx.x; i < R * HD / 4; i += NT) {
            int r = i / (HD / 4), d = 4 * (i - r * (HD / 4));
            int64_t row = r0 + r;
            float4 x = row < len ? *reinterpret_cast<const float4 *>(g + row * ld + d) : make_float4(0, 0, 0, 0);
            uint2 v = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
            *reinterpret_cast<uint2 *>(sh + r * (HD + PAD) + d) = v;
        }
    } else {
        for (int i = threadIdx.x; i < R * HD / 2; i += NT) {
            int r = i / (HD / 2), d = 2 * (i - r * (HD / 2));
            int64_t row = r0 + r;
            float x0 = 0.0f, x1 = 0.0f;
            if (row < len) x0 = g[row * ld + d], x1 = g[row * ld + d + 1];
            *reinterpret_cast<uint32_t *>(sh + r * (HD + PAD) + d) = pack_bf16(x0, x1);
        }
    }
}

/* The forward's tiles travel in two steps so that the next tile's loads
 * overlap this tile's products: stage_tile queues cp.async copies of the fp32 rows into
 * a staging tile (row stride HD + 4 floats), convert_tile rounds a landed
 * staging tile to bf16 (row stride HD + PAD). */
template <int HD>
struct stage_ld {
    enum { F = HD + 4 };
};

/* one cp.async of W floats (16 bytes bypass L1, 4 bytes cannot) */
template <int W>
__device__ __forceinline__ void cp_async(float *dst, const float *src)
{
    uint32_t sa = (uint32_t)__cvta_generic_to_shared(dst);
    if (W == 4) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(src));
    else asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(sa), "l"(src));
}

/* Rows [r0, r0 + R) of a (len, HD) head view (row stride ld) into the
 * staging tile st by NT threads in chunks of W floats; rows past len are
 * zeros. */
template <int R, int HD, int NT, int W>
__device__ __forceinline__ void stage_chunks(float *st, const float *g, int64_t ld, int64_t r0, int64_t len)
{
    for (int i = threadIdx.x; i < R * HD / W; i += NT) {
        int r = i / (HD / W), d = W * (i - r * (HD / W));
        int64_t row = r0 + r;
        float *dst = st + r * stage_ld<HD>::F + d;
        if (row < len) {
            cp_async<W>(dst, g + row * ld + d);
        } else {
#pragma unroll
            for (int e = 0; e < W; e++) dst[e] = 0.0f;
        }
    }
}

/* vec: ld % 4 == 0 and g 16-byte aligned (16-byte copies), else 4-byte */
template <int R, int HD, int NT>
__device__ __forceinline__ void stage_tile(float *st, const float *g, int64_t ld, int64_t r0, int64_t len, bool vec)
{
    if (vec) stage_chunks<R, HD, NT, 4>(st, g, ld, r0, len);
    else stage_chunks<R, HD, NT, 1>(st, g, ld, r0, len);
}

__device__ __forceinline__ void stage_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void stage_wait() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

template <int R, int HD, int NT>
__device__ __forceinline__ void convert_tile(__nv_bfloat16 *sh, const float *st)
{
    enum { F = stage_ld<HD>::F };
    for (int i = threadIdx.x; i < R * HD / 4; i += NT) {
        int r = i / (HD / 4), d = 4 * (i - r * (HD / 4));
        float4 x = *reinterpret_cast<const float4 *>(st + r * F + d);
        *reinterpret_cast<uint2 *>(sh + r * (HD + PAD) + d) = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
    }
}

/* Shared bytes of a kernel that streams two tiles of R rows (staging and
 * bf16 copies) plus `extra` bytes. */
template <int R, int HD>
constexpr size_t pipe_smem(size_t extra)
{
    return 2 * (size_t)R * stage_ld<HD>::F * sizeof(float) + 2 * (size_t)R * (HD + PAD) * sizeof(__nv_bfloat16) +
           extra;
}

/* fast 2^x (ex2.approx.ftz: 2^-inf = 0) */
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* The A fragments (16 rows from r0, all HD columns) of a head view, straight
 * from global memory; rows past len are zeros. */
template <int HD>
__device__ __forceinline__ void load_a_frags(uint32_t a[HD / 16][4], const float *g, int64_t ld, int64_t r0,
                                             int64_t len)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t ra = r0 + gr, rb = ra + 8;
    const float *pa = g + ra * ld, *pb = g + rb * ld;
#pragma unroll
    for (int kd = 0; kd < HD / 16; kd++) {
        int d = 16 * kd + c2;
        float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (ra < len) x[0] = pa[d], x[1] = pa[d + 1], x[4] = pa[d + 8], x[5] = pa[d + 9];
        if (rb < len) x[2] = pb[d], x[3] = pb[d + 1], x[6] = pb[d + 8], x[7] = pb[d + 9];
        a[kd][0] = pack_bf16(x[0], x[1]);
        a[kd][1] = pack_bf16(x[2], x[3]);
        a[kd][2] = pack_bf16(x[4], x[5]);
        a[kd][3] = pack_bf16(x[6], x[7]);
    }
}

/* acc[N / 8][4] (16 x N) += A (16 x 16 KD, fragments a) times the matrix
 * whose columns are the rows [0, N) of the n-major shared tile bt (row
 * stride ldb, KD * 16 columns). */
template <int N, int KD>
__device__ __forceinline__ void mma_rows(float acc[N / 8][4], const uint32_t a[KD][4], const __nv_bfloat16 *bt,
                                         int ldb)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
#pragma unroll
    for (int nt = 0; nt < N / 8; nt++) {
        const __nv_bfloat16 *row = bt + (8 * nt + gr) * ldb + c2;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) mma16816(acc[nt], a[kd], ld32(row + 16 * kd), ld32(row + 16 * kd + 8));
    }
}

/* acc[N / 8][4] (16 x N) += A (16 x 16 KD, fragments a) times the matrix
 * held row-major in the shared tile b (KD * 16 rows from 0, columns [0, N),
 * row stride ldb): ldmatrix.x4.trans gives the B fragments of two n-tiles
 * (lanes 0-15 name rows k0 .. k0 + 15 at column n0, lanes 16-31 the same
 * rows at n0 + 8). */
template <int N, int KD>
__device__ __forceinline__ void mma_rows_trans(float acc[N / 8][4], const uint32_t a[KD][4],
                                               const __nv_bfloat16 *b, int ldb)
{
    int lane = threadIdx.x & 31;
    uint32_t base = (uint32_t)__cvta_generic_to_shared(b + (lane & 15) * ldb + 8 * (lane >> 4));
#pragma unroll
    for (int kd = 0; kd < KD; kd++)
#pragma unroll
        for (int nt = 0; nt < N / 8; nt += 2) {
            uint32_t b0, b1, b2, b3;
            uint32_t addr = base + (uint32_t)((16 * kd * ldb + 8 * nt) * sizeof(__nv_bfloat16));
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
                         : "r"(addr));
            mma16816(acc[nt], a[kd], b0, b1);
            mma16816(acc[nt + 1], a[kd], b2, b3);
        }
}

/* C fragments of a 16 x (16 KT) tile re-packed as bf16 A fragments */
template <int KT>
__device__ __forceinline__ void c_to_a(uint32_t a[KT][4], const float c[2 * KT][4])
{
#pragma unroll
    for (int t = 0; t < KT; t++) {
        a[t][0] = pack_bf16(c[2 * t][0], c[2 * t][1]);
        a[t][1] = pack_bf16(c[2 * t][2], c[2 * t][3]);
        a[t][2] = pack_bf16(c[2 * t + 1][0], c[2 * t + 1][1]);
        a[t][3] = pack_bf16(c[2 * t + 1][2], c[2 * t + 1][3]);
    }
}

template <int N>
__device__ __forceinline__ void zero(float a[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++) a[i][0] = a[i][1] = a[i][2] = a[i][3] = 0.0f;
}

/* Stores a 16 x HD fp32 C tile (rows from r0, times mul) into a head view. */
template <int HD>
__device__ __forceinline__ void store_rows(float *g, int64_t ld, int64_t r0, int64_t len, const float acc[HD / 8][4],
                                           float mul_a, float mul_b)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t ra = r0 + gr, rb = ra + 8;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        int d = 8 * nt + c2;
        if (ra < len) g[ra * ld + d] = acc[nt][0] * mul_a, g[ra * ld + d + 1] = acc[nt][1] * mul_a;
        if (rb < len) g[rb * ld + d] = acc[nt][2] * mul_b, g[rb * ld + d + 1] = acc[nt][3] * mul_b;
    }
}

__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

struct head_t {
    int64_t bh, row0, col;
};

__device__ __forceinline__ head_t head_of(int64_t bh, int64_t n_heads, int64_t len, int hd)
{
    head_t x;
    int64_t b = bh / n_heads;
    x.bh = bh;
    x.row0 = b * len;
    x.col = (bh - b * n_heads) * hd;
    return x;
}

/* ---------------------------------------------------------------- */
/* forward                                                          */

enum { FK = 64 };   /* keys per tile */

/* FW warps of 16 queries each; at head dims <= 64 capped at 128 registers
 * (512 threads per multiprocessor) */
template <int HD, int FW>
__global__ void __launch_bounds__(32 * FW, HD <= 64 ? 16 / FW : 1)
attn_fwd_mma(float *o, int64_t ldo, float *lse, const float *q, int64_t ldq, const float *k, int64_t ldk,
             const float *v, int64_t ldv, int64_t len, int64_t n_heads, float scale_log2, int64_t n_tiles, bool vec)
{
    enum { FTHREADS = 32 * FW, FQ = 16 * FW };
    extern __shared__ __align__(16) unsigned char smem_raw[];
    float *Kf = reinterpret_cast<float *>(smem_raw), *Vf = Kf + FK * stage_ld<HD>::F;   /* staging */
    __nv_bfloat16 *Ks = reinterpret_cast<__nv_bfloat16 *>(Vf + FK * stage_ld<HD>::F), *Vs = Ks + FK * (HD + PAD);
    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;   /* the costly tiles first */
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t i0 = tile * FQ, iw = i0 + 16 * warp;   /* this warp's first query */
    const float *kh = k + hp.row0 * ldk + hp.col, *vh = v + hp.row0 * ldv + hp.col;

    stage_tile<FK, HD, FTHREADS>(Kf, kh, ldk, 0, len, vec);
    stage_tile<FK, HD, FTHREADS>(Vf, vh, ldv, 0, len, vec);
    stage_commit();
    uint32_t qa[HD / 16][4];
    load_a_frags<HD>(qa, q + hp.row0 * ldq + hp.col, ldq, iw, len);
    float acc[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    zero<HD / 8>(acc);
    int64_t i_end = i0 + FQ < len ? i0 + FQ : len;
    for (int64_t j0 = 0; j0 < i_end; j0 += FK) {
        stage_wait();
        __syncthreads();   /* this tile staged; the previous tile's readers are done */
        convert_tile<FK, HD, FTHREADS>(Ks, Kf);
        convert_tile<FK, HD, FTHREADS>(Vs, Vf);
        __syncthreads();
        if (j0 + FK < i_end) {   /* the next tile's copies run under this tile's products */
            stage_tile<FK, HD, FTHREADS>(Kf, kh, ldk, j0 + FK, len, vec);
            stage_tile<FK, HD, FTHREADS>(Vf, vh, ldv, j0 + FK, len, vec);
            stage_commit();
        }
        /* tiles start at multiples of 64 and warps at multiples of 16, so a
         * visited tile's first key precedes every query of the warp: each
         * row's max below is finite */
        if (j0 > iw) continue;
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
    store_rows<HD>(o + hp.row0 * ldo + hp.col, ldo, iw, len, acc, 1.0f / l[0], 1.0f / l[1]);
    if ((lane & 3) == 0) {
        const float LN2 = 0.6931471805599453f;
        int64_t ra = iw + gr, rb = ra + 8;
        if (ra < len) lse[hp.bh * len + ra] = m[0] * LN2 + logf(l[0]);
        if (rb < len) lse[hp.bh * len + rb] = m[1] * LN2 + logf(l[1]);
    }
}

/* ---------------------------------------------------------------- */
/* backward                                                         */

/* lse (times log2 e; +inf past len) and D (0 past len) of R rows from r0 */
template <int R>
__device__ __forceinline__ void load_rowvals(float *lse_s, float *D_s, const float *lse, const float *D, int64_t r0,
                                             int64_t len)
{
    for (int r = threadIdx.x; r < R; r += THREADS) {
        bool in = r0 + r < len;
        lse_s[r] = in ? lse[r0 + r] * LOG2E : INFINITY;
        D_s[r] = in ? D[r0 + r] : 0.0f;
    }
}

/* dK, dV for 64 keys per block; query tiles of BQ */
enum { BK_KV = 64 };

template <int HD, int BQ>
__global__ void __launch_bounds__(THREADS, HD <= 64 ? 3 : 1)
attn_bwd_dkdv_mma(float *dk, int64_t lddk, float *dv, int64_t lddv, const float *dout, int64_t lddo, const float *q,
                  int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, const float *lse,
                  const float *D, int64_t len, int64_t n_heads, float scale, int64_t n_tiles, bool vec)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *Qs = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* BQ x HD */
    __nv_bfloat16 *dOs = Qs + BQ * (HD + PAD);
    float *lse_s = reinterpret_cast<float *>(dOs + BQ * (HD + PAD)), *D_s = lse_s + BQ;

    int64_t tile = blockIdx.x % n_tiles;
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t j0 = tile * BK_KV, jw = j0 + 16 * warp;   /* this warp's first key */
    const float scale_log2 = scale * LOG2E;
    const float *qh = q + hp.row0 * ldq + hp.col, *doh = dout + hp.row0 * lddo + hp.col;
    const float *lh = lse + hp.bh * len, *Dh = D + hp.bh * len;

    uint32_t ka[HD / 16][4], va[HD / 16][4];
    load_a_frags<HD>(ka, k + hp.row0 * ldk + hp.col, ldk, jw, len);
    load_a_frags<HD>(va, v + hp.row0 * ldv + hp.col, ldv, jw, len);
    float adk[HD / 8][4], adv[HD / 8][4];
    zero<HD / 8>(adk);
    zero<HD / 8>(adv);
    for (int64_t i0 = j0; i0 < len; i0 += BQ) {
        __syncthreads();
        load_tile<BQ, HD, THREADS>(Qs, qh, ldq, i0, len, vec);
        load_tile<BQ, HD, THREADS>(dOs, doh, lddo, i0, len, vec);
        load_rowvals<BQ>(lse_s, D_s, lh, Dh, i0, len);
        __syncthreads();
        if (i0 + BQ - 1 < jw) continue;   /* every query of the tile precedes this warp's keys */
        float st[BQ / 8][4], dpt[BQ / 8][4];   /* rows: keys; columns: queries */
        zero<BQ / 8>(st);
        zero<BQ / 8>(dpt);
        mma_rows<BQ, HD / 16>(st, ka, Qs, HD + PAD);
        mma_rows<BQ, HD / 16>(dpt, va, dOs, HD + PAD);
        bool diag = jw + 15 > i0;
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int ic = 8 * nt + c2 + (e & 1);
                float p = fast_exp2(st[nt][e] * scale_log2 - lse_s[ic]);
                if (diag && jw + gr + 8 * (e >> 1) > i0 + ic) p = 0.0f;
                st[nt][e] = p;
                dpt[nt][e] = p * (dpt[nt][e] - D_s[ic]);
            }
        uint32_t pa[BQ / 16][4];
        c_to_a<BQ / 16>(pa, st);
        mma_rows_trans<HD, BQ / 16>(adv, pa, dOs, HD + PAD);
        c_to_a<BQ / 16>(pa, dpt);
        mma_rows_trans<HD, BQ / 16>(adk, pa, Qs, HD + PAD);
    }
    store_rows<HD>(dk + hp.row0 * lddk + hp.col, lddk, jw, len, adk, scale, scale);
    store_rows<HD>(dv + hp.row0 * lddv + hp.col, lddv, jw, len, adv, 1.0f, 1.0f);
}

/* dQ for 64 queries per block; key tiles of BK */
enum { BQ_Q = 64 };

template <int HD, int BK>
__global__ void __launch_bounds__(THREADS, HD <= 64 ? 4 : 1)
attn_bwd_dq_mma(float *dq, int64_t lddq, const float *dout, int64_t lddo, const float *q, int64_t ldq, const float *k,
                int64_t ldk, const float *v, int64_t ldv, const float *lse, const float *D, int64_t len,
                int64_t n_heads, float scale, int64_t n_tiles, bool vec)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *Ks = reinterpret_cast<__nv_bfloat16 *>(smem_raw);   /* BK x HD */
    __nv_bfloat16 *Vs = Ks + BK * (HD + PAD);                           /* BK x HD */

    int64_t tile = n_tiles - 1 - blockIdx.x % n_tiles;
    head_t hp = head_of(blockIdx.x / n_tiles, n_heads, len, HD);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t i0 = tile * BQ_Q, iw = i0 + 16 * warp;
    const float scale_log2 = scale * LOG2E;
    const float *kh = k + hp.row0 * ldk + hp.col, *vh = v + hp.row0 * ldv + hp.col;

    uint32_t qa[HD / 16][4], doa[HD / 16][4];
    load_a_frags<HD>(qa, q + hp.row0 * ldq + hp.col, ldq, iw, len);
    load_a_frags<HD>(doa, dout + hp.row0 * lddo + hp.col, lddo, iw, len);
    float lse_r[2], D_r[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int64_t i = iw + gr + 8 * h;
        lse_r[h] = i < len ? lse[hp.bh * len + i] * LOG2E : INFINITY;
        D_r[h] = i < len ? D[hp.bh * len + i] : 0.0f;
    }
    float adq[HD / 8][4];
    zero<HD / 8>(adq);
    int64_t i_end = i0 + BQ_Q < len ? i0 + BQ_Q : len;
    for (int64_t j0 = 0; j0 < i_end; j0 += BK) {
        __syncthreads();
        load_tile<BK, HD, THREADS>(Ks, kh, ldk, j0, len, vec);
        load_tile<BK, HD, THREADS>(Vs, vh, ldv, j0, len, vec);
        __syncthreads();
        if (j0 > iw + 15) continue;   /* every key of the tile follows this warp's queries */
        float s[BK / 8][4], dp[BK / 8][4];
        zero<BK / 8>(s);
        zero<BK / 8>(dp);
        mma_rows<BK, HD / 16>(s, qa, Ks, HD + PAD);
        mma_rows<BK, HD / 16>(dp, doa, Vs, HD + PAD);
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
        mma_rows_trans<HD, BK / 16>(adq, dsa, Ks, HD + PAD);
    }
    store_rows<HD>(dq + hp.row0 * lddq + hp.col, lddq, iw, len, adq, scale, scale);
}

/* tile sizes per head dim: fewer queries (keys) per inner tile at 128 keep
 * the accumulators in registers */
template <int HD>
struct bwd_tiles {
    enum { BQ = HD <= 64 ? 64 : 32, BK = HD <= 64 ? 64 : 32 };
};

template <int HD>
size_t dkdv_smem()
{
    enum { BQ = bwd_tiles<HD>::BQ };
    return (size_t)2 * BQ * (HD + PAD) * sizeof(__nv_bfloat16) + 2 * BQ * sizeof(float);
}

template <int HD>
size_t dq_smem()
{
    enum { BK = bwd_tiles<HD>::BK };
    return (size_t)2 * BK * (HD + PAD) * sizeof(__nv_bfloat16);
}

/* float4 tile loads: every head's rows start 16-byte aligned (head columns
 * are multiples of 4 floats for the mma head dims) */
bool vec_ok(const float *p, int64_t ld) { return ld % 4 == 0 && ((uintptr_t)p & 15) == 0; }

template <typename K>
cudaError_t allow_smem(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* 8 warps (128 queries) per forward block: 15-25% faster than 4 (64) on an
 * H200 (NOTES-attention.md) */
enum { FWD_WARPS = 8 };

template <int HD>
cudaError_t fwd_launch(float *o, int64_t ldo, float *lse, const float *q, int64_t ldq, const float *k, int64_t ldk,
                       const float *v, int64_t ldv, int64_t batch, int64_t len, int64_t n_heads, double scale,
                       cudaStream_t s)
{
    int64_t nt = (len + 16 * FWD_WARPS - 1) / (16 * FWD_WARPS);
    bool vec = vec_ok(q, ldq) && vec_ok(k, ldk) && vec_ok(v, ldv);
    size_t sm = pipe_smem<FK, HD>(0);
    cudaError_t e = allow_smem(attn_fwd_mma<HD, FWD_WARPS>, sm);
    if (e != cudaSuccess) return e;
    attn_fwd_mma<HD, FWD_WARPS><<<(unsigned)(batch * n_heads * nt), 32 * FWD_WARPS, sm, s>>>(
        o, ldo, lse, q, ldq, k, ldk, v, ldv, len, n_heads, (float)(scale * 1.4426950408889634), nt, vec);
    return cudaGetLastError();
}

template <int HD>
cudaError_t bwd_launch(float *dq, int64_t lddq, float *dk, int64_t lddk, float *dv, int64_t lddv, const float *dout,
                       int64_t lddo, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                       int64_t ldv, const float *lse, const float *D, int64_t batch, int64_t len, int64_t n_heads,
                       float scale, cudaStream_t s)
{
    enum { BQ = bwd_tiles<HD>::BQ, BK = bwd_tiles<HD>::BK };
    size_t sm_kv = dkdv_smem<HD>(), sm_q = dq_smem<HD>();
    cudaError_t e = allow_smem(attn_bwd_dkdv_mma<HD, BQ>, sm_kv);
    if (e == cudaSuccess) e = allow_smem(attn_bwd_dq_mma<HD, BK>, sm_q);
    if (e != cudaSuccess) return e;
    int64_t nk = (len + BK_KV - 1) / BK_KV, nq = (len + BQ_Q - 1) / BQ_Q;
    bool vec = vec_ok(q, ldq) && vec_ok(k, ldk) && vec_ok(v, ldv) && vec_ok(dout, lddo);
    attn_bwd_dkdv_mma<HD, BQ><<<(unsigned)(batch * n_heads * nk), THREADS, sm_kv, s>>>(
        dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, len, n_heads, scale, nk, vec);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    attn_bwd_dq_mma<HD, BK><<<(unsigned)(batch * n_heads * nq), THREADS, sm_q, s>>>(
        dq, lddq, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, len, n_heads, scale, nq, vec);
    return cudaGetLastError();
}

}   // namespace

extern "C" int mdk_attention_mma_head_dim(int64_t head_dim)
{
    return head_dim == 32 || head_dim == 64 || head_dim == 128;
}

extern "C" cudaError_t mdk_attention_fwd_mma(float *o, int64_t ldo, float *lse, const float *q, int64_t ldq,
                                             const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t batch,
                                             int64_t len, int64_t n_heads, int64_t head_dim, double scale,
                                             cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    switch (head_dim) {
    case 32: return fwd_launch<32>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, scale, s);
    case 64: return fwd_launch<64>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, scale, s);
    case 128: return fwd_launch<128>(o, ldo, lse, q, ldq, k, ldk, v, ldv, batch, len, n_heads, scale, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t mdk_attention_bwd_mma(float *dq, int64_t lddq, float *dk, int64_t lddk, float *dv,
                                             int64_t lddv, const float *dout, int64_t lddo, const float *q,
                                             int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                                             const float *o, int64_t ldo, const float *lse, int64_t batch,
                                             int64_t len, int64_t n_heads, int64_t head_dim, double scale,
                                             void *workspace, cudaStream_t s)
{
    if (batch * len * n_heads == 0) return cudaSuccess;
    if (!mdk_attention_mma_head_dim(head_dim)) return cudaErrorInvalidValue;
    float *D = (float *)workspace, sc = (float)scale;
    cudaError_t e = mdk_attention_rowdot(D, dout, lddo, o, ldo, batch, len, n_heads, head_dim, s);
    if (e != cudaSuccess) return e;
    switch (head_dim) {
    case 32:
        return bwd_launch<32>(dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, batch, len,
                              n_heads, sc, s);
    case 64:
        return bwd_launch<64>(dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, batch, len,
                              n_heads, sc, s);
    default:
        return bwd_launch<128>(dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, lse, D, batch, len,
                               n_heads, sc, s);
    }
}
