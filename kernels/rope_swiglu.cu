/* RoPE and SwiGLU (backend_kernels.h; the math of backend/ops.h and of
 * the CPU's cpu_attention_tmpl.h, whose rounding these follow: the angle
 * is inv_freq * position in fp32, inv_freq = 1 / theta^(2i/hd) rounded
 * from double). Tensors of fp32 or bf16 storage (T, storage.cuh), fp32
 * arithmetic. */
#include "backend_kernels.h"
#include "storage.cuh"

#include <math.h>

namespace {

/* Row kernels: a block of ROW_WARPS warps, one warp per row at a time
 * (grid-stride over rows), lanes over the columns: coalesced, and no
 * 64-bit division per element. */
enum { ROW_WARPS = 8 };

unsigned grid_rows(int64_t rows)
{
    int64_t g = (rows + ROW_WARPS - 1) / ROW_WARPS;
    if (g > 4096) g = 4096;   /* about 4 waves of 8 blocks per multiprocessor; the rest by grid stride */
    return (unsigned)(g < 1 ? 1 : g);
}

#define FOR_ROWS(r, rows)                                                                      \
    for (int64_t r = blockIdx.x * (int64_t)ROW_WARPS + (threadIdx.x >> 5); r < (rows);        \
         r += (int64_t)gridDim.x * ROW_WARPS)

/* inv_freq[i] = 1 / theta^(2i/hd), rounded from double on the host as the
 * CPU rounds it; passed by value (512 bytes of kernel parameters) */
struct inv_freq_t {
    float f[MDK_ATTN_MAX_HD / 2];
};

/* One row per warp; the row's (head, i) rotations are spread over the
 * lanes, W adjacent i per lane (W = 2: the pair accesses of storage.cuh,
 * 4 or 8 bytes a lane; W = 1 where the views do not allow them). A lane
 * keeps its angles while its i stays the same, which at head dims whose
 * hd / (2 W) divides 32 is the whole row: one sincosf per i, as before. */
template <typename T, int W>
__global__ void rope_kernel(T *x, int64_t ldx, int64_t rows, int64_t len, int n_heads, int hd,
                            const __grid_constant__ inv_freq_t inv, int inverse)
{
    int half = hd / 2, per_head = half / W, items = n_heads * per_head, lane = threadIdx.x & 31;
    FOR_ROWS(r, rows) {
        float pos = (float)(r % len);
        T *xr = x + r * ldx;
        float sn[W], cs[W];
        int angles_of = -1;
        for (int j = lane; j < items; j += 32) {
            int h = j / per_head, i = (j - h * per_head) * W;
            if (i != angles_of) {
                for (int k = 0; k < W; k++) {
                    sincosf(inv.f[i + k] * pos, &sn[k], &cs[k]);
                    if (inverse) sn[k] = -sn[k];
                }
                angles_of = i;
            }
            T *x1 = xr + h * hd + i, *x2 = x1 + half;
            if (W == 2) {
                float2 p = ld_pair(x1), q = ld_pair(x2);
                st_pair(x1, make_float2(p.x * cs[0] - q.x * sn[0], p.y * cs[W - 1] - q.y * sn[W - 1]));
                st_pair(x2, make_float2(q.x * cs[0] + p.x * sn[0], q.y * cs[W - 1] + p.y * sn[W - 1]));
            } else {
                float p = ld_f(x1), q = ld_f(x2);
                st_f(x1, p * cs[0] - q * sn[0]);
                st_f(x2, q * cs[0] + p * sn[0]);
            }
        }
    }
}

__device__ inline float sigmoid_(float x)
{
    float e = expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x < 0.0f ? e * r : r;
}

/* 16 bytes of a row as floats: 4 fp32 or 8 bf16 values (SwiGLU's vector
 * path: a warp moves 512 contiguous bytes per access; with one 2-byte bf16
 * value per lane it was bound by its access count, not by the bytes) */
template <typename T> struct vec16 {
    enum { N = 16 / sizeof(T) };
};
__device__ __forceinline__ void ld16(const float *p, float *v)
{
    float4 a = *(const float4 *)p;
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
__device__ __forceinline__ void st16(float *p, const float *v) { *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]); }
__device__ __forceinline__ void ld16(const __nv_bfloat16 *p, float *v)
{
    uint4 a = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&a;
    for (int k = 0; k < 4; k++) {
        float2 f = __bfloat1622float2(h[k]);
        v[2 * k] = f.x, v[2 * k + 1] = f.y;
    }
}
__device__ __forceinline__ void st16(__nv_bfloat16 *p, const float *v)
{
    uint4 a;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&a;
    for (int k = 0; k < 4; k++) h[k] = __float22bfloat162_rn(make_float2(v[2 * k], v[2 * k + 1]));
    *(uint4 *)p = a;
}

/* N consecutive values at p: one element (N = 1) or 16 bytes */
template <int N, typename T> __device__ __forceinline__ void ld_n(const T *p, float *v)
{
    if (N == 1) v[0] = ld_f(p);
    else ld16(p, v);
}
template <int N, typename T> __device__ __forceinline__ void st_n(T *p, const float *v)
{
    if (N == 1) st_f(p, v[0]);
    else st16(p, v);
}

/* 1 when every view of a call (pointer, row stride) and cols allow 16-byte
 * accesses of es-byte elements */
static int vec16_ok(int64_t cols, size_t es, int n, const void *const *p, const int64_t *ld)
{
    int64_t per = (int64_t)(16 / es);
    if (cols % per) return 0;
    for (int i = 0; i < n; i++)
        if (ld[i] % per || (uintptr_t)p[i] % 16) return 0;
    return 1;
}

/* N columns per lane at a time: 1, or a 16-byte vector (vec16_ok) */
template <typename T, int N>
__global__ void swiglu_fwd_kernel(T *y, int64_t ldy, const T *g, int64_t ldg, const T *u, int64_t ldu, int64_t rows,
                                  int cols)
{
    FOR_ROWS(r, rows) {
        const T *gr = g + r * ldg, *ur = u + r * ldu;
        T *yr = y + r * ldy;
        for (int c = (threadIdx.x & 31) * N; c < cols; c += 32 * N) {
            float x[N], up[N], out[N];
            ld_n<N>(gr + c, x), ld_n<N>(ur + c, up);
            for (int k = 0; k < N; k++) out[k] = x[k] * sigmoid_(x[k]) * up[k];
            st_n<N>(yr + c, out);
        }
    }
}

template <typename T, int N>
__global__ void swiglu_bwd_kernel(T *dg, int64_t lddg, T *du, int64_t lddu, const T *dy, int64_t lddy, const T *g,
                                  int64_t ldg, const T *u, int64_t ldu, int64_t rows, int cols)
{
    FOR_ROWS(r, rows) {
        const T *gr = g + r * ldg, *ur = u + r * ldu, *dyr = dy + r * lddy;
        T *dgr = dg + r * lddg, *dur = du + r * lddu;
        for (int c = (threadIdx.x & 31) * N; c < cols; c += 32 * N) {
            float x[N], up[N], d[N], og[N], ou[N];
            ld_n<N>(gr + c, x), ld_n<N>(ur + c, up), ld_n<N>(dyr + c, d);
            for (int k = 0; k < N; k++) {
                float s = sigmoid_(x[k]);
                ou[k] = d[k] * x[k] * s;
                og[k] = d[k] * up[k] * s * (1.0f + x[k] * (1.0f - s));
            }
            st_n<N>(dur + c, ou), st_n<N>(dgr + c, og);
        }
    }
}

}   // namespace

extern "C" cudaError_t mdk_rope(void *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads,
                                int64_t head_dim, double theta, int inverse, int act_bf16, cudaStream_t s)
{
    if (batch * len * (head_dim / 2) == 0 || n_heads == 0) return cudaSuccess;
    if (head_dim > MDK_ATTN_MAX_HD) return cudaErrorInvalidValue;
    inv_freq_t inv;
    for (int64_t i = 0; i < head_dim / 2; i++) inv.f[i] = (float)(1.0 / pow(theta, (double)(2 * i) / (double)head_dim));
    size_t es = act_bf16 ? 2 : 4;
    int pairs = head_dim % 4 == 0 && pairs_ok(2, es, x, ldx, x, ldx, x, ldx);
    unsigned grid = grid_rows(batch * len);
    if (pairs)
        WITH_ACT_TYPE(act_bf16, rope_kernel<T, 2><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)x, ldx, batch * len, len, (int)n_heads, (int)head_dim, inv, inverse));
    else
        WITH_ACT_TYPE(act_bf16, rope_kernel<T, 1><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)x, ldx, batch * len, len, (int)n_heads, (int)head_dim, inv, inverse));
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_fwd(void *y, int64_t ldy, const void *gate, int64_t ldg, const void *up,
                                      int64_t ldu, int64_t rows, int64_t cols, int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    const void *p[] = {y, gate, up};
    const int64_t ld[] = {ldy, ldg, ldu};
    unsigned grid = grid_rows(rows);
    if (vec16_ok(cols, act_bf16 ? 2 : 4, 3, p, ld))
        WITH_ACT_TYPE(act_bf16, swiglu_fwd_kernel<T, vec16<T>::N><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)y, ldy, (const T *)gate, ldg, (const T *)up, ldu, rows, (int)cols));
    else
        WITH_ACT_TYPE(act_bf16, swiglu_fwd_kernel<T, 1><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)y, ldy, (const T *)gate, ldg, (const T *)up, ldu, rows, (int)cols));
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_swiglu_bwd(void *dgate, int64_t lddg, void *dup, int64_t lddu, const void *dy,
                                      int64_t lddy, const void *gate, int64_t ldg, const void *up, int64_t ldu,
                                      int64_t rows, int64_t cols, int act_bf16, cudaStream_t s)
{
    if (rows * cols == 0) return cudaSuccess;
    if (cols > INT32_MAX) return cudaErrorInvalidValue;
    const void *p[] = {dgate, dup, dy, gate, up};
    const int64_t ld[] = {lddg, lddu, lddy, ldg, ldu};
    unsigned grid = grid_rows(rows);
    if (vec16_ok(cols, act_bf16 ? 2 : 4, 5, p, ld))
        WITH_ACT_TYPE(act_bf16, swiglu_bwd_kernel<T, vec16<T>::N><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)dgate, lddg, (T *)dup, lddu, (const T *)dy, lddy, (const T *)gate, ldg,
                                    (const T *)up, ldu, rows, (int)cols));
    else
        WITH_ACT_TYPE(act_bf16, swiglu_bwd_kernel<T, 1><<<grid, 32 * ROW_WARPS, 0, s>>>(
                                    (T *)dgate, lddg, (T *)dup, lddu, (const T *)dy, lddy, (const T *)gate, ldg,
                                    (const T *)up, ldu, rows, (int)cols));
    return cudaGetLastError();
}
