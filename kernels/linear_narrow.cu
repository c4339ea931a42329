/* C = A B^T for a narrow K (8 or 16) in bf16 storage: the Mamba block's
 * dt_proj forward, delta (M, E) = dt_in (M, R) dt_w^T, whose bytes are all
 * in C. cuBLAS took ~2.5x the time C's bytes allow on these shapes
 * (54 us for 131072 x 256 x 8, NOTES-backend.md), a time spent once a
 * layer and again in every recomputed forward.
 *
 * A thread owns V consecutive columns of C: their K weights stay in
 * registers (fp32) for the whole run, and it walks rows, loading the row's
 * K inputs (the same 16 bytes for every thread of the row: one broadcast)
 * and storing its V outputs in one 8- or 16-byte store, so that a warp
 * writes 256 or 512 contiguous bytes. Sums in fp32 over r in order, one
 * rounding to bf16 at the store.
 */
#include <cuda_bf16.h>

#include "backend_kernels.h"

namespace {

constexpr int kThreads = 256;

template <int K>
struct Narrow {
    static constexpr int V = K == 8 ? 8 : 4;   /* columns a thread: 64 weights in registers either way */
};

/* K bf16 values from a 16-byte aligned row into fp32 */
template <int K>
__device__ __forceinline__ void load_row(const __nv_bfloat16 *__restrict__ p, float (&x)[K])
{
#pragma unroll
    for (int q = 0; q < K / 8; q++) {
        const uint4 raw = __ldg(reinterpret_cast<const uint4 *>(p) + q);
        const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            x[q * 8 + 2 * i] = __uint_as_float(w[i] << 16);
            x[q * 8 + 2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
}

template <int V>
__device__ __forceinline__ void store_cols(__nv_bfloat16 *p, const float (&c)[V])
{
    unsigned w[V / 2];
#pragma unroll
    for (int i = 0; i < V / 2; i++) {
        const __nv_bfloat162 h = __float22bfloat162_rn(make_float2(c[2 * i], c[2 * i + 1]));
        w[i] = *reinterpret_cast<const unsigned *>(&h);
    }
    if constexpr (V == 8) *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
    else *reinterpret_cast<uint2 *>(p) = make_uint2(w[0], w[1]);
}

/* Rows r0, r0 + rstep, ... of columns [g V, g V + V): g and r0 from the
 * thread's index, groups = n / V threads a row (a power of two dividing
 * kThreads, so that a thread keeps its columns as it steps). */
template <int K>
__global__ void __launch_bounds__(kThreads) narrow_kernel(__nv_bfloat16 *__restrict__ c, int64_t ldc,
                                                          const __nv_bfloat16 *__restrict__ a, int64_t lda,
                                                          const __nv_bfloat16 *__restrict__ b, int64_t ldb,
                                                          int64_t m, int groups)
{
    constexpr int V = Narrow<K>::V;
    const int64_t t = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    const int g = (int)(t & (groups - 1));
    const int64_t rstep = (int64_t)gridDim.x * kThreads / groups;
    float w[V][K];
#pragma unroll
    for (int v = 0; v < V; v++)
#pragma unroll
        for (int r = 0; r < K; r++) w[v][r] = __bfloat162float(b[(int64_t)(g * V + v) * ldb + r]);
    const __nv_bfloat16 *pa = a + (t / groups) * lda;
    __nv_bfloat16 *pc = c + (t / groups) * ldc + g * V;
#pragma unroll 2
    for (int64_t row = t / groups; row < m; row += rstep, pa += rstep * lda, pc += rstep * ldc) {
        float x[K], acc[V];
        load_row<K>(pa, x);
#pragma unroll
        for (int v = 0; v < V; v++) {
            acc[v] = x[0] * w[v][0];
#pragma unroll
            for (int r = 1; r < K; r++) acc[v] = fmaf(x[r], w[v][r], acc[v]);
        }
        store_cols<V>(pc, acc);
    }
}

int pow2_at_most(int64_t x, int64_t cap) { return x >= 1 && x <= cap && (x & (x - 1)) == 0; }

}  // namespace

extern "C" int mdk_gemm_narrow_takes(int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, const void *b,
                                     const void *c, int64_t ldc)
{
    if (k != 8 && k != 16) return 0;
    const int V = k == 8 ? Narrow<8>::V : Narrow<16>::V;
    /* 16-byte rows of A and 8- or 16-byte stores into C */
    const size_t va = 16, vc = (size_t)V * 2;
    return m >= 1 && n % V == 0 && pow2_at_most(n / V, kThreads) && a && b && c && (uintptr_t)a % va == 0 &&
           (lda * 2) % (int64_t)va == 0 && (uintptr_t)c % vc == 0 && (ldc * 2) % (int64_t)vc == 0;
}

extern "C" cudaError_t mdk_gemm_narrow_bf16(void *c, int64_t ldc, const void *a, int64_t lda, const void *b,
                                            int64_t ldb, int64_t m, int64_t n, int64_t k, cudaStream_t s)
{
    if (!mdk_gemm_narrow_takes(m, n, k, a, lda, b, c, ldc)) return cudaErrorInvalidValue;
    const int V = k == 8 ? Narrow<8>::V : Narrow<16>::V, groups = (int)(n / V);
    /* enough blocks to fill the GPU a few times over, no more: each thread
     * loads its weights once */
    const int64_t want = (m * groups + kThreads - 1) / kThreads, sms = mdk_sm_count(), cap = (int64_t)(sms > 0 ? sms : 1) * 8;
    const unsigned blocks = (unsigned)(want < cap ? want : cap);
    const __nv_bfloat16 *A = (const __nv_bfloat16 *)a, *B = (const __nv_bfloat16 *)b;
    __nv_bfloat16 *C = (__nv_bfloat16 *)c;
    if (k == 8) narrow_kernel<8><<<blocks, kThreads, 0, s>>>(C, ldc, A, lda, B, ldb, m, groups);
    else narrow_kernel<16><<<blocks, kThreads, 0, s>>>(C, ldc, A, lda, B, ldb, m, groups);
    return cudaGetLastError();
}
