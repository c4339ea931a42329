/* The tensor-core pieces shared by attention_mma.cu (forward) and
 * attention_mma_bwd.cu (backward), over mma_bf16.cuh's m16n8k16 bf16
 * product with fp32 accumulation: fragment loads from shared tiles, C -> A re-packing,
 * stores of fp32 C tiles into fp32 or bf16 views (storage.cuh), a
 * (sequence, head) pair's offsets, the workspace's layout, the pass that
 * fills its bf16 copies (from fp32 or bf16 views), the choice between
 * those copies and the views themselves (views_in_place), and the
 * cp.async tile copies from either (and of the backward's lse and D).
 *
 * Fragment layouts of m16n8k16 (g = lane / 4, c = lane % 4): A (16 x 16,
 * row) holds rows g and g + 8, columns 2c, 2c + 1 and 2c + 8, 2c + 9; B
 * (16 x 8, col) holds rows (the k index) 2c, 2c + 1 and 2c + 8, 2c + 9 of
 * column g; C holds rows g, g + 8 and columns 2c, 2c + 1. So a C tile pair
 * (keys 16t .. 16t + 15) re-packs into an A fragment in registers
 * (FlashAttention-2's trick). A B operand whose columns are rows of a
 * shared tile (K in Q K^T) is read as 32-bit pairs; one whose rows are rows
 * of a tile (V in P V) comes from ldmatrix.trans, so every tile is stored
 * once, row-major. Shared rows are padded by PAD bf16 (16 bytes): the 8 rows
 * a 32-bit read or an ldmatrix phase touches fall in 8 different 4-bank
 * groups.
 */
#ifndef MD_KERNELS_ATTENTION_MMA_CUH
#define MD_KERNELS_ATTENTION_MMA_CUH

#include "backend_kernels.h"
#include "mma_bf16.cuh"
#include "storage.cuh"

#include <cuda_bf16.h>
#include <limits.h>
#include <math.h>

namespace {

constexpr float LOG2E = 1.4426950408889634f;

/* fast 2^x (ex2.approx.ftz: 2^-inf = 0) */
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* acc[QT][N / 8][4] (QT row tiles of 16 x N) += A (QT tiles of 16 x 16 KD,
 * fragments a) times the matrix whose columns are the rows [0, N) of the
 * n-major shared tile bt (row stride ldb, KD * 16 columns); each B
 * fragment read serves the QT row tiles. */
template <int N, int KD, int QT = 1>
__device__ __forceinline__ void mma_rows(float (*acc)[N / 8][4], uint32_t (*a)[KD][4], const __nv_bfloat16 *bt,
                                         int ldb)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
#pragma unroll
    for (int nt = 0; nt < N / 8; nt++) {
        const __nv_bfloat16 *row = bt + (8 * nt + gr) * ldb + c2;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            uint32_t b0 = ld32(row + 16 * kd), b1 = ld32(row + 16 * kd + 8);
#pragma unroll
            for (int q = 0; q < QT; q++) mma16816(acc[q][nt], a[q][kd], b0, b1);
        }
    }
}

/* acc[QT][N / 8][4] (QT row tiles of 16 x N) += A (QT tiles of 16 x 16 KD,
 * fragments a) times the matrix held row-major in the shared tile b (KD *
 * 16 rows from 0, columns [0, N), row stride ldb): ldmatrix.x4.trans gives
 * the B fragments of two n-tiles (lanes 0-15 name rows k0 .. k0 + 15 at
 * column n0, lanes 16-31 the same rows at n0 + 8), shared by the QT row
 * tiles. */
template <int N, int KD, int QT = 1>
__device__ __forceinline__ void mma_rows_trans(float (*acc)[N / 8][4], uint32_t (*a)[KD][4], const __nv_bfloat16 *b,
                                               int ldb)
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
#pragma unroll
            for (int q = 0; q < QT; q++) {
                mma16816(acc[q][nt], a[q][kd], b0, b1);
                mma16816(acc[q][nt + 1], a[q][kd], b2, b3);
            }
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

/* Stores a 16 x HD fp32 C tile (rows from r0, times mul) into a head view
 * of storage type S. */
template <int HD, typename S>
__device__ __forceinline__ void store_rows(S *g, int64_t ld, int64_t r0, int64_t len, const float acc[HD / 8][4],
                                           float mul_a, float mul_b)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t ra = r0 + gr, rb = ra + 8;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        int d = 8 * nt + c2;
        if (ra < len) st_f(g + ra * ld + d, acc[nt][0] * mul_a), st_f(g + ra * ld + d + 1, acc[nt][1] * mul_a);
        if (rb < len) st_f(g + rb * ld + d, acc[nt][2] * mul_b), st_f(g + rb * ld + d + 1, acc[nt][3] * mul_b);
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

/* (sequence, head) pair bh of a (B*L, H*hd) view: its sequence b, head h,
 * first row and column */
struct head_t {
    int64_t bh, b, h, row0, col;
};

__device__ __forceinline__ head_t head_of(int64_t bh, int64_t n_heads, int64_t len, int hd)
{
    head_t x;
    x.bh = bh;
    x.b = bh / n_heads;
    x.h = bh - x.b * n_heads;
    x.row0 = x.b * len;
    x.col = x.h * hd;
    return x;
}

/* One of q, k, v, dO as the kernels read it, bf16: row t of sequence b,
 * head h at p + b seq + h head + t ld. Either the model's (B*L, H*hd) view
 * itself or its head-major copy in the workspace (attn_ws); either way
 * every row starts 16-byte aligned (views_in_place). */
struct bf16_heads {
    const __nv_bfloat16 *p;
    int64_t seq, head;
    int ld;
};

/* The kernels' inputs: q, k, v, dO and the backward's D (attn_ws) */
struct attn_in {
    bf16_heads q, k, v, dout;
    const float *D;
};

/* One head's (len, hd) matrix: row t at p + t ld */
struct rows_t {
    const __nv_bfloat16 *p;
    int ld;
};

/* Head hp's matrix in x. VIEW false: x is a head-major copy, whose row
 * stride HD is then a constant to the compiler (a runtime stride costs
 * registers the tighter kernels spill). */
template <int HD, bool VIEW>
__device__ __forceinline__ rows_t head_rows(const bf16_heads &x, const head_t &hp)
{
    rows_t r = {x.p + hp.b * x.seq + hp.h * x.head, VIEW ? x.ld : HD};
    return r;
}

template <typename K>
cudaError_t allow_smem(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* The ops' workspace (mdk_attention_mma_workspace bytes): D (B H L fp32,
 * the backward's rowsum(dO o)), then bf16 copies of q, k, v and dO, each
 * (B, H, L, hd) contiguous (head-major, so a tile of rows is one run of
 * 16-byte copies); every part 256-byte aligned. The forward fills q, k, v;
 * the backward all five. */
struct attn_ws {
    float *D;
    __nv_bfloat16 *q, *k, *v, *dout;
};

size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

size_t ws_copy_bytes(int64_t rows, int64_t hd) { return align256((size_t)(rows * hd) * sizeof(__nv_bfloat16)); }

attn_ws carve_ws(void *workspace, int64_t rows, int64_t hd)
{
    char *p = (char *)workspace;
    size_t copy = ws_copy_bytes(rows, hd);
    attn_ws w;
    w.D = (float *)p;
    p += align256((size_t)rows * sizeof(float));
    w.q = (__nv_bfloat16 *)p;
    w.k = (__nv_bfloat16 *)(p + copy);
    w.v = (__nv_bfloat16 *)(p + 2 * copy);
    w.dout = (__nv_bfloat16 *)(p + 3 * copy);
    return w;
}

/* The (B*L, H*HD) views to copy, fp32 or bf16 (blockIdx.y picks one of
 * the first gridDim.y). */
struct pack_job {
    const void *src[4];
    int64_t ld[4];
    __nv_bfloat16 *dst[4];
};

/* 8 consecutive values of a view as bf16 pairs: fp32 rounded, bf16 as is;
 * 16-byte loads where aligned */
__device__ __forceinline__ uint4 load8_bf16(const float *s)
{
    float x[8];
    if (((uintptr_t)s & 15) == 0) {
        float4 lo = *reinterpret_cast<const float4 *>(s), hi = *reinterpret_cast<const float4 *>(s + 4);
        x[0] = lo.x, x[1] = lo.y, x[2] = lo.z, x[3] = lo.w, x[4] = hi.x, x[5] = hi.y, x[6] = hi.z, x[7] = hi.w;
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) x[e] = s[e];
    }
    return make_uint4(pack_bf16(x[0], x[1]), pack_bf16(x[2], x[3]), pack_bf16(x[4], x[5]), pack_bf16(x[6], x[7]));
}

__device__ __forceinline__ uint4 load8_bf16(const __nv_bfloat16 *s)
{
    if (((uintptr_t)s & 15) == 0) return *reinterpret_cast<const uint4 *>(s);
    uint32_t w[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        __nv_bfloat162 v = __halves2bfloat162(s[2 * e], s[2 * e + 1]);
        w[e] = *reinterpret_cast<uint32_t *>(&v);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* One thread per 8 columns of one (sequence, head, position) of views of
 * storage type S: one 16-byte store out (a relayout alone for bf16). */
template <int HD, typename S>
__global__ void pack_heads_bf16(pack_job job, int64_t len, int64_t n_heads, int64_t n_chunks)
{
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n_chunks) return;
    int which = blockIdx.y;   /* selected by value: an indexed kernel parameter array would go to the stack */
    const S *src = (const S *)(which == 0   ? job.src[0]
                               : which == 1 ? job.src[1]
                               : which == 2 ? job.src[2]
                                            : job.src[3]);
    int64_t ld = which == 0 ? job.ld[0] : which == 1 ? job.ld[1] : which == 2 ? job.ld[2] : job.ld[3];
    __nv_bfloat16 *dst = which == 0 ? job.dst[0] : which == 1 ? job.dst[1] : which == 2 ? job.dst[2] : job.dst[3];
    int64_t row = i / (HD / 8);   /* (bh, t) */
    int d = 8 * (int)(i - row * (HD / 8));
    int64_t bh = row / len, t = row - bh * len, b = bh / n_heads, h = bh - b * n_heads;
    *reinterpret_cast<uint4 *>(dst + row * HD + d) = load8_bf16(src + (b * len + t) * ld + h * HD + d);
}

/* Rows left in [r0, r0 + R) of a matrix of len rows (0 .. R) */
template <int R>
__device__ __forceinline__ int rows_in(int64_t r0, int64_t len)
{
    return len - r0 < R ? (int)(len - r0) : R;
}

/* Queues the copies of rows [r0, r0 + R) of the bf16 matrices a and b into
 * the shared tiles sa and sb: the K and V (or Q and dO) tiles of one
 * pipeline stage. */
template <int R, int HD, int NT>
__device__ __forceinline__ void copy_pair_async(__nv_bfloat16 *sa, __nv_bfloat16 *sb, rows_t a, rows_t b, int64_t r0,
                                                int64_t len)
{
    int n_in = rows_in<R>(r0, len);
    copy_tile_async<R, HD, NT>(sa, a.p + r0 * a.ld, a.ld, n_in);
    copy_tile_async<R, HD, NT>(sb, b.p + r0 * b.ld, b.ld, n_in);
}

/* Queues 4-byte copies of lse[0, R) and D[0, R) into lse_s and D_s; zeros
 * from n_in on (past the sequence end), where the zero Q and dO rows
 * already make every term (p dO, p (dP - D) Q with dP = 0) vanish. */
template <int R, int NT>
__device__ __forceinline__ void copy_rowvals_async(float *lse_s, float *D_s, const float *lse, const float *D,
                                                   int n_in)
{
    for (int i = threadIdx.x; i < 2 * R; i += NT) {
        int r = i < R ? i : i - R;
        bool in = r < n_in;
        const float *src = (i < R ? lse : D) + (in ? r : 0);
        uint32_t sa = (uint32_t)__cvta_generic_to_shared((i < R ? lse_s : D_s) + r);
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(sa), "l"(src), "r"(in ? 4 : 0));
    }
}

/* The A fragments (16 rows from r0, all HD columns) of the bf16 matrix m,
 * straight from global memory; rows past len are zeros. */
template <int HD>
__device__ __forceinline__ void load_a_frags(uint32_t a[HD / 16][4], rows_t m, int64_t r0, int64_t len)
{
    int lane = threadIdx.x & 31, gr = lane >> 2, c2 = 2 * (lane & 3);
    int64_t ra = r0 + gr, rb = ra + 8;
    const __nv_bfloat16 *pa = m.p + ra * m.ld + c2, *pb = m.p + rb * m.ld + c2;
#pragma unroll
    for (int kd = 0; kd < HD / 16; kd++) {
        a[kd][0] = ra < len ? ld32(pa + 16 * kd) : 0u;
        a[kd][1] = rb < len ? ld32(pb + 16 * kd) : 0u;
        a[kd][2] = ra < len ? ld32(pa + 16 * kd + 8) : 0u;
        a[kd][3] = rb < len ? ld32(pb + 16 * kd + 8) : 0u;
    }
}

/* Copies the first n (<= 4) views of job (of storage type S) to their
 * bf16 copies. */
template <int HD, typename S>
cudaError_t pack_heads(const pack_job &job, int n, int64_t batch, int64_t len, int64_t n_heads, cudaStream_t s)
{
    int64_t chunks = batch * n_heads * len * (HD / 8);
    pack_heads_bf16<HD, S><<<dim3((unsigned)((chunks + 255) / 256), (unsigned)n), 256, 0, s>>>(job, len, n_heads,
                                                                                             chunks);
    return cudaGetLastError();
}

/* Whether the kernels can read the n (B*L, H*hd) views src in place: bf16
 * views whose rows 16-byte copies can read (aligned bases, ld a multiple
 * of 8 values, as at the model's widths). Otherwise (fp32, or misaligned)
 * every one is first copied head-major into the workspace. */
bool views_in_place(int act_bf16, const void *const *src, const int64_t *ld, int n)
{
    if (!act_bf16) return false;
    for (int i = 0; i < n; i++)
        if (((uintptr_t)src[i] & 15) != 0 || ld[i] % 8 != 0 || ld[i] > INT_MAX) return false;
    return true;
}

/* The kernels' inputs from the n views src (q, k, v, then dO when n is
 * 4): the views themselves when *view (views_in_place), else their
 * head-major copies in the workspace w, whose copying is queued in *job. */
attn_in plan_inputs(const void *const *src, const int64_t *ld, int n, int act_bf16, const attn_ws &w, int64_t len,
                    int64_t n_heads, int64_t hd, pack_job *job, bool *view)
{
    __nv_bfloat16 *copies[4] = {w.q, w.k, w.v, w.dout};
    bf16_heads x[4] = {};
    *view = views_in_place(act_bf16, src, ld, n);
    *job = pack_job{};
    for (int i = 0; i < n; i++) {
        if (*view) {
            x[i] = {(const __nv_bfloat16 *)src[i], len * ld[i], hd, (int)ld[i]};
        } else {
            job->src[i] = src[i], job->ld[i] = ld[i], job->dst[i] = copies[i];
            x[i] = {copies[i], n_heads * len * hd, len * hd, (int)hd};
        }
    }
    attn_in in = {x[0], x[1], x[2], x[3], w.D};
    return in;
}

/* The forward's inputs: plan_inputs on q, k, v with the workspace's
 * copies */
attn_in plan_forward(const void *q, int64_t ldq, const void *k, int64_t ldk, const void *v, int64_t ldv,
                     void *workspace, int64_t batch, int64_t len, int64_t n_heads, int64_t hd, int act_bf16,
                     pack_job *job, bool *view)
{
    attn_ws w = carve_ws(workspace, batch * n_heads * len, hd);
    const void *src[3] = {q, k, v};
    const int64_t ld[3] = {ldq, ldk, ldv};
    return plan_inputs(src, ld, 3, act_bf16, w, len, n_heads, hd, job, view);
}

/* The backward's inputs: plan_inputs on q, k, v, dO with the workspace's
 * copies (and its D) */
attn_in plan_backward(const void *dout, int64_t lddo, const void *q, int64_t ldq, const void *k, int64_t ldk,
                      const void *v, int64_t ldv, void *workspace, int64_t batch, int64_t len, int64_t n_heads,
                      int64_t hd, int act_bf16, pack_job *job, bool *view)
{
    attn_ws w = carve_ws(workspace, batch * n_heads * len, hd);
    const void *src[4] = {q, k, v, dout};
    const int64_t ld[4] = {ldq, ldk, ldv, lddo};
    return plan_inputs(src, ld, 4, act_bf16, w, len, n_heads, hd, job, view);
}

}   // namespace

#endif
