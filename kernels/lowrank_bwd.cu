/* The backward of a low-rank Linear (backend_kernels.h, ops.h lowrank_bwd):
 * dx (M, R) = dy w and dw (E, R) += dy^T x, given dy (M, E), x (M, R) and
 * w (E, R), R <= 8, E 64 .. 256 (the Mamba block's dt_proj at d_model 128:
 * R = dt_rank 8, E = d_inner 256), in one pass over dy instead of two
 * cuBLAS products that each read it (~2x their byte floor each at M =
 * 2^17: kernels/NOTES-backend.md, "dt_proj's backward in one pass").
 *
 * A warp streams its own contiguous rows: G = E / 8 lanes a row, 8
 * columns a lane (one 16-byte bf16 or two fp32 copies), 32 / G rows at
 * once, ROWS of those an iteration, through a 3-stage cp.async pipeline
 * in shared memory (x's 8 columns staged beside when R = 8 and they are
 * aligned). A lane keeps its 8 rows of w and its 8 x 8 sums of dw in
 * registers for all its rows. dx: each lane's partial sums over its 8
 * columns, summed over the row's G lanes by shuffles that halve the
 * values at each step (no block barrier in the loop). dw: the warp's row
 * groups added by shuffles, the block's warps in order through shared
 * memory into the caller's scratch (one E x R slice a block), then
 * mdk_colsum_add adds the slices into dw in block order. The partition
 * depends only on the sizes and the SM count: no atomics, the same bits
 * run to run on one GPU model. Arithmetic in fp32 (fma).
 *
 * A first version (one row a block pass of 256 threads, dx's sums through
 * shared memory between two block barriers, x loaded in the iteration)
 * took 103 us at E 256 R 8 against the GEMMs' 82, and 493 us at E 512 R 16
 * against 145: each iteration waited out a DRAM latency (NOTES). */
#include <cuda_bf16.h>
#include <stdint.h>

#include "backend_kernels.h"
#include "storage.cuh"

namespace {

constexpr int WARPS = 4, THREADS = WARPS * 32;
constexpr int STAGES = 3;          /* cp.async stages a warp: two iterations of rows in flight */
constexpr int EPT = 8, RP = 8;     /* columns of dy a lane; R padded with zero columns */
constexpr int MAX_E = 32 * EPT;

__device__ __forceinline__ void cp16(void *smem, const void *g, bool valid)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(g), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

/* 8 consecutive elements from shared memory as floats */
__device__ __forceinline__ void ld8(const float *p, float *o)
{
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
}
__device__ __forceinline__ void ld8(const __nv_bfloat16 *p, float *o)
{
    uint4 a = *(const uint4 *)p;
    const unsigned u[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {   /* bf16 is fp32's upper half; the low element in the low bits */
        o[2 * i] = __uint_as_float(u[i] << 16);
        o[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

/* ROWS rows a lane an iteration; G lanes a row (E = 8 G); XV: x's rows are
 * 8 aligned elements (R = 8), staged beside dy, else read from global */
template <typename T, int G, int ROWS, bool XV> struct plan {
    static constexpr int P = 32 / G;             /* rows a warp covers at once */
    static constexpr int RW = P * ROWS;          /* rows a warp an iteration */
    static constexpr int CH = 16 / (int)sizeof(T);   /* elements a 16-byte copy */
    static constexpr int DY = ROWS * 32 * EPT;   /* dy elements a stage (a warp) */
    static constexpr int XS = RW * RP;           /* x elements a stage */
    static constexpr int STAGE_BYTES = (DY + XS) * (int)sizeof(T);
    static constexpr int PIPE_BYTES = WARPS * STAGES * STAGE_BYTES;
    static constexpr int RED_BYTES = WARPS * MAX_E * RP * 4;
    static constexpr int BYTES = PIPE_BYTES > RED_BYTES ? PIPE_BYTES : RED_BYTES;
};

template <typename T, int G, int ROWS, bool XV>
__global__ void __launch_bounds__(THREADS, 2)
    lowrank_bwd_kernel(T *__restrict__ dx, int64_t lddx, float *__restrict__ part, const T *__restrict__ dy,
                       int64_t lddy, const T *__restrict__ x, int64_t ldx, const T *__restrict__ w, int64_t ldw,
                       int64_t M, int R, int64_t rows_per_warp)
{
    typedef plan<T, G, ROWS, XV> PL;
    constexpr int P = PL::P, RW = PL::RW, CH = PL::CH, V = ROWS * RP;
    __shared__ __align__(16) unsigned char smem[PL::BYTES];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane % G, rl = lane / G, e0 = g * EPT;
    T *pipe = reinterpret_cast<T *>(smem) + warp * STAGES * (PL::DY + PL::XS);

    float wr[EPT][RP], acc[EPT][RP];
#pragma unroll
    for (int i = 0; i < EPT; i++)
#pragma unroll
        for (int r = 0; r < RP; r++) {
            wr[i][r] = r < R ? ld_f(w + (int64_t)(e0 + i) * ldw + r) : 0.f;
            acc[i][r] = 0.f;
        }

    const int64_t r0 = ((int64_t)blockIdx.x * WARPS + warp) * rows_per_warp;
    const int64_t r1 = r0 + rows_per_warp < M ? r0 + rows_per_warp : M;
    const int64_t iters = r1 > r0 ? (r1 - r0 + RW - 1) / RW : 0;
    /* stage layout: dy [k][lane][EPT], then x [k * P + rl][RP] */
    auto issue = [&](int64_t it) {
        T *st = pipe + (int)(it % STAGES) * (PL::DY + PL::XS);
#pragma unroll
        for (int k = 0; k < ROWS; k++) {
            const int64_t m = r0 + it * RW + k * P + rl;
            const bool ok = m < r1;
#pragma unroll
            for (int c = 0; c < EPT / CH; c++)
                cp16(st + (k * 32 + lane) * EPT + c * CH, ok ? dy + m * lddy + e0 + c * CH : dy, ok);
            if (XV && g < RP / CH)
                cp16(st + PL::DY + (k * P + rl) * RP + g * CH, ok ? x + m * ldx + g * CH : x, ok);
        }
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < iters) issue(s);
        cp_commit();
    }
    for (int64_t it = 0; it < iters; it++) {
        cp_wait<STAGES - 2>();
        __syncwarp();   /* this stage landed for every lane; the previous stage's reads done */
        if (it + STAGES - 1 < iters) issue(it + STAGES - 1);
        cp_commit();
        const T *st = pipe + (int)(it % STAGES) * (PL::DY + PL::XS);
        float v[V];
#pragma unroll
        for (int k = 0; k < ROWS; k++) {
            float d[EPT], xv[RP];
            ld8(st + (k * 32 + lane) * EPT, d);
            if (XV) {
                ld8(st + PL::DY + (k * P + rl) * RP, xv);
            } else {
                const int64_t m = r0 + it * RW + k * P + rl;
#pragma unroll
                for (int r = 0; r < RP; r++) xv[r] = r < R && m < r1 ? ld_f(x + m * ldx + r) : 0.f;
            }
#pragma unroll
            for (int r = 0; r < RP; r++) {
                float s = 0.f;
#pragma unroll
                for (int i = 0; i < EPT; i++) s = fmaf(d[i], wr[i][r], s);
                v[k * RP + r] = s;
            }
#pragma unroll
            for (int i = 0; i < EPT; i++)
#pragma unroll
                for (int r = 0; r < RP; r++) acc[i][r] = fmaf(d[i], xv[r], acc[i][r]);
        }
        /* dx: the V partial sums of each lane summed over the G lanes of its
         * row group, halving the values at each step (a lane keeps the
         * half its offset bit names), whole once one is left */
#pragma unroll
        for (int o = G / 2, n = V; o >= 1; o >>= 1) {
            if (n > 1) {
                const bool up = lane & o;
                n >>= 1;
#pragma unroll
                for (int i = 0; i < V / 2; i++)
                    if (i < n) {
                        const float send = up ? v[i] : v[i + n], keep = up ? v[i + n] : v[i];
                        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
                    }
            } else {
                v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
            }
        }
        constexpr int CNT = V >= G ? V / G : 1, SPREAD = V >= G ? 1 : G / V;
        if (g % SPREAD == 0) {
#pragma unroll
            for (int i = 0; i < CNT; i++) {
                const int j = (g / SPREAD) * CNT + i, k = j / RP, r = j % RP;
                const int64_t m = r0 + it * RW + k * P + rl;
                if (r < R && m < r1) st_f(dx + m * lddx + r, v[i]);
            }
        }
    }
    cp_wait<0>();

    /* dw: the warp's row groups added (lane offsets G .. 16), then the
     * warps in order, into the block's slice */
#pragma unroll
    for (int o = G; o < 32; o <<= 1)
#pragma unroll
        for (int i = 0; i < EPT; i++)
#pragma unroll
            for (int r = 0; r < RP; r++) acc[i][r] += __shfl_xor_sync(0xffffffffu, acc[i][r], o);
    __syncthreads();   /* every warp done with its stages */
    float *red = reinterpret_cast<float *>(smem);
    if (rl == 0)
#pragma unroll
        for (int i = 0; i < EPT; i++)
#pragma unroll
            for (int r = 0; r < RP; r++) red[warp * MAX_E * RP + (e0 + i) * RP + r] = acc[i][r];
    __syncthreads();
    const int E = G * EPT;
    float *slice = part + (int64_t)blockIdx.x * E * R;
    for (int o = threadIdx.x; o < E * R; o += THREADS) {
        const int e = o / R, r = o % R;
        float s = 0.f;
#pragma unroll
        for (int q = 0; q < WARPS; q++) s += red[q * MAX_E * RP + e * RP + r];
        slice[o] = s;
    }
}

bool aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

template <typename T, int G, bool XV>
cudaError_t launch(T *dx, int64_t lddx, float *dw, const T *dy, int64_t lddy, const T *x, int64_t ldx, const T *w,
                   int64_t ldw, int64_t M, int64_t R, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    constexpr int ROWS = sizeof(T) == 2 ? 4 : 2;
    constexpr int RW = plan<T, G, ROWS, XV>::RW;
    const int64_t E = (int64_t)G * EPT;
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess) return e;
    const int64_t iters = (M + RW - 1) / RW;
    int64_t blocks = 2 * (int64_t)(sms < 1 ? 1 : sms);
    if (blocks > (int64_t)(scratch_floats / (size_t)(E * R))) blocks = (int64_t)(scratch_floats / (size_t)(E * R));
    if (blocks > (iters + WARPS - 1) / WARPS) blocks = (iters + WARPS - 1) / WARPS;
    if (blocks < 1) blocks = 1;
    const int64_t per_warp = (iters + blocks * WARPS - 1) / (blocks * WARPS) * RW;
    blocks = (M + per_warp * WARPS - 1) / (per_warp * WARPS);
    lowrank_bwd_kernel<T, G, ROWS, XV><<<(unsigned)blocks, THREADS, 0, s>>>(dx, lddx, scratch, dy, lddy, x, ldx, w,
                                                                             ldw, M, (int)R, per_warp);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, blocks, E * R, E * R, s);
}

template <typename T, bool XV>
cudaError_t by_width(T *dx, int64_t lddx, float *dw, const T *dy, int64_t lddy, const T *x, int64_t ldx, const T *w,
                     int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch, size_t scratch_floats,
                     cudaStream_t s)
{
    switch (E / EPT) {
    case 8: return launch<T, 8, XV>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, R, scratch, scratch_floats, s);
    case 16: return launch<T, 16, XV>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, R, scratch, scratch_floats, s);
    default: return launch<T, 32, XV>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, R, scratch, scratch_floats, s);
    }
}

template <typename T>
cudaError_t dispatch(void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x, int64_t ldx,
                     const void *w, int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch,
                     size_t scratch_floats, cudaStream_t s)
{
    T *dxt = static_cast<T *>(dx);
    const T *dyt = static_cast<const T *>(dy), *xt = static_cast<const T *>(x), *wt = static_cast<const T *>(w);
    /* x's rows as 16-byte copies: R = 8 aligned elements */
    if (R == RP && ldx % (16 / (int64_t)sizeof(T)) == 0 && aligned(x, 16))
        return by_width<T, true>(dxt, lddx, dw, dyt, lddy, xt, ldx, wt, ldw, M, E, R, scratch, scratch_floats, s);
    return by_width<T, false>(dxt, lddx, dw, dyt, lddy, xt, ldx, wt, ldw, M, E, R, scratch, scratch_floats, s);
}

}   // namespace

int mdk_lowrank_bwd_ok(int bf16, const void *dy, int64_t lddy, int64_t M, int64_t E, int64_t R,
                       size_t scratch_floats)
{
    const int64_t es = bf16 ? 2 : 4;
    if (M < 1 || R < 1 || R > MDK_LOWRANK_MAX_R) return 0;
    if (E != 8 * EPT && E != 16 * EPT && E != 32 * EPT) return 0;
    if ((size_t)(E * R) > scratch_floats) return 0;
    return (lddy * es) % 16 == 0 && aligned(dy, 16);
}

cudaError_t mdk_lowrank_bwd(int bf16, void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x,
                            int64_t ldx, const void *w, int64_t ldw, int64_t M, int64_t E, int64_t R, float *scratch,
                            size_t scratch_floats, cudaStream_t s)
{
    if (bf16)
        return dispatch<__nv_bfloat16>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, E, R, scratch, scratch_floats, s);
    return dispatch<float>(dx, lddx, dw, dy, lddy, x, ldx, w, ldw, M, E, R, scratch, scratch_floats, s);
}
