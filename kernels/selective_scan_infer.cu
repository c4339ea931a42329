/* The selective scan's forward for inference: neither chunk states nor
 * workspace (see scan_api.h; md_scan_fwd hands such calls here).
 *
 * Each sequence runs in one pass, as the v4 one-pass forward did, but the
 * per-(step, channel) work is taken out of the recurrence's inner loop
 * (NOTES-scan.md, v5). A block owns one sequence and CH consecutive
 * channels and walks the sequence in tiles of kTile steps, three phases a
 * tile:
 *   A  every thread prepares a share of the tile's (step, channel)
 *      elements from coalesced loads of delta, u and z: dt =
 *      softplus(delta + bias) and dt*u for the recurrence, silu(z) and
 *      D*u*silu(z) for the output, into shared memory; the tile's Bm and Cm
 *      rows too;
 *   R  each thread runs S states of one channel over the tile (Q = NPAD/S
 *      threads per channel, y summed over them with shuffles) and leaves
 *      y = (Cm.h) silu(z) + D u silu(z) in shared memory;
 *   W  the tile's y goes out with coalesced stores.
 * Every exp goes to MUFU.EX2: moving part of them to an FMA-pipe
 * polynomial was measured slower (NOTES-scan.md, v5).
 */
#include "selective_scan.cuh"
#include "storage.cuh"

/* Tuning (NOTES-scan.md, v5); the benchmark builds override them. */
#ifndef MD_SCAN_INFER_STATES
#define MD_SCAN_INFER_STATES 16   /* states per thread when N <= 16 */
#endif
#ifndef MD_SCAN_INFER_TILE
#define MD_SCAN_INFER_TILE 16     /* steps per tile */
#endif

namespace {

constexpr int kThreads = 128;
constexpr int kTile = MD_SCAN_INFER_TILE;

/* Two adjacent channels (PAIR), else one, as floats. */
template <typename T, bool PAIR>
__device__ __forceinline__ void load_elems(const T *p, float *v)
{
    if constexpr (PAIR) {
        const float2 pv = ld_pair(p);
        v[0] = pv.x, v[1] = pv.y;
    } else {
        v[0] = md_ld(p);
    }
}

template <typename T, bool PAIR>
__device__ __forceinline__ void store_elems(T *p, const float *v)
{
    if constexpr (PAIR) st_pair(p, make_float2(v[0], v[1]));
    else md_st(p, v[0]);
}

/* Stores VW consecutive float2 of shared memory, one 16-byte store for 2. */
template <int VW>
__device__ __forceinline__ void sts_float2(float2 *p, const float *a, const float *b)
{
    if constexpr (VW == 2) {
        *reinterpret_cast<float4 *>(p) = make_float4(a[0], b[0], a[1], b[1]);
    } else {
        *p = make_float2(a[0], b[0]);
    }
}

template <typename T>
struct InferArgs {
    const T *u, *delta, *z, *Bm, *Cm;
    int64_t ld_u, ld_delta, ld_z, ld_B, ld_C;
    const float *A_log, *D, *dt_bias, *h0;
    float *hT;
    T *y;
    int64_t ld_y;
    int64_t L, E, N;
};

/* S states per thread. PAIR: E is even and every sequence tensor's rows
 * start at a pair's alignment, so that phases A and W move two channels per
 * thread (consecutive threads, consecutive pairs: coalesced loads and
 * stores, and shared-memory accesses free of bank conflicts). */
template <typename T, int NPAD, int S, bool PAIR>
__global__ void __launch_bounds__(kThreads) infer_kernel(InferArgs<T> a)
{
    constexpr int Q = NPAD / S, CH = kThreads / Q, VW = PAIR ? 2 : 1;
    __shared__ __align__(16) float2 s_dt[kTile][CH];   /* dt, dt*u */
    __shared__ __align__(16) float2 s_gate[kTile][CH]; /* silu(z), D*u*silu(z) */
    __shared__ __align__(16) float s_y[kTile][CH];
    __shared__ __align__(16) float s_B[kTile][NPAD];
    __shared__ __align__(16) float s_C[kTile][NPAD];
    __shared__ float s_bias[CH], s_D[CH];

    const int64_t ncb = (a.E + CH - 1) / CH;
    const int64_t b = blockIdx.x / ncb, e0 = (blockIdx.x % ncb) * CH;
    const int tid = threadIdx.x, q = tid % Q, c = tid / Q;
    const int64_t e = e0 + c;
    const bool valid = e < a.E;
    const int64_t ec = valid ? e : 0;

    for (int i = tid; i < CH; i += kThreads) {
        const bool ok = e0 + i < a.E;
        s_bias[i] = ok ? __ldg(a.dt_bias + e0 + i) : 0.f;
        s_D[i] = ok ? __ldg(a.D + e0 + i) : 0.f;
    }
    float A2[S], h[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        const int64_t n = q * S + s;
        const bool ok = valid && n < a.N;
        A2[s] = ok ? -expf(__ldg(a.A_log + ec * a.N + n)) * MD_LOG2E : 0.f;
        h[s] = ok && a.h0 ? a.h0[(b * a.E + e) * a.N + n] : 0.f;
    }

    const int64_t row0 = b * a.L;
    for (int64_t t0 = 0; t0 < a.L; t0 += kTile) {
        const int nt = (int)min((int64_t)kTile, a.L - t0);
        __syncthreads();   /* the previous tile's W has read s_y; s_bias is in */
        /* A: the tile's elements, VW channels at a time */
        for (int i = tid; i < kTile * (CH / VW); i += kThreads) {
            const int j = i / (CH / VW), c0 = (i % (CH / VW)) * VW;
            const int64_t row = row0 + t0 + j, ee = e0 + c0;
            const bool in = j < nt && ee < a.E;
            float dd[VW] = {}, uu[VW] = {}, zz[VW] = {}, dt[VW], dtu[VW], g[VW], dug[VW];
            if (in) {
                load_elems<T, PAIR>(a.delta + row * a.ld_delta + ee, dd);
                load_elems<T, PAIR>(a.u + row * a.ld_u + ee, uu);
                load_elems<T, PAIR>(a.z + row * a.ld_z + ee, zz);
            }
#pragma unroll
            for (int k = 0; k < VW; k++) {
                /* padding (past L or E) gets dt = 0: the state keeps */
                dt[k] = in ? md_softplus(dd[k] + s_bias[c0 + k]) : 0.f;
                dtu[k] = dt[k] * uu[k];
                g[k] = zz[k] * md_sigmoid(zz[k]);
                dug[k] = s_D[c0 + k] * uu[k] * g[k];
            }
            sts_float2<VW>(&s_dt[j][c0], dt, dtu);
            sts_float2<VW>(&s_gate[j][c0], g, dug);
        }
        for (int i = tid; i < kTile * NPAD; i += kThreads) {
            const int j = i / NPAD, n = i % NPAD;
            const bool ok = j < nt && n < a.N;
            s_B[j][n] = ok ? md_ld(a.Bm + (row0 + t0 + j) * a.ld_B + n) : 0.f;
            s_C[j][n] = ok ? md_ld(a.Cm + (row0 + t0 + j) * a.ld_C + n) : 0.f;
        }
        __syncthreads();
        /* R: the recurrence over the tile */
        for (int j = 0; j < nt; j++) {
            const float2 d = s_dt[j][c];
            const float4 *Bv = reinterpret_cast<const float4 *>(&s_B[j][q * S]);
            const float4 *Cv = reinterpret_cast<const float4 *>(&s_C[j][q * S]);
            float acc = 0.f;
#pragma unroll
            for (int s4 = 0; s4 < S / 4; s4++) {
                const float4 bb = Bv[s4], cc = Cv[s4];
                const float bs[4] = {bb.x, bb.y, bb.z, bb.w}, cs[4] = {cc.x, cc.y, cc.z, cc.w};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int s = 4 * s4 + k;
                    h[s] = fmaf(md_ex2(d.x * A2[s]), h[s], d.y * bs[k]);
                    acc = fmaf(cs[k], h[s], acc);
                }
            }
#pragma unroll
            for (int m = 1; m < Q; m <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, m);
            if (q == 0) {
                const float2 g = s_gate[j][c];
                s_y[j][c] = fmaf(acc, g.x, g.y);
            }
        }
        __syncthreads();
        /* W: the tile's y */
        for (int i = tid; i < kTile * (CH / VW); i += kThreads) {
            const int j = i / (CH / VW), c0 = (i % (CH / VW)) * VW;
            const int64_t ee = e0 + c0;
            if (j < nt && ee < a.E) store_elems<T, PAIR>(a.y + (row0 + t0 + j) * a.ld_y + ee, &s_y[j][c0]);
        }
    }
    if (a.hT && valid) {
#pragma unroll
        for (int s = 0; s < S; s++) {
            const int64_t n = q * S + s;
            if (n < a.N) a.hT[(b * a.E + e) * a.N + n] = h[s];
        }
    }
}

template <typename T, int NPAD, int S, bool PAIR>
cudaError_t launch(const InferArgs<T> &ia, int64_t batch, cudaStream_t st)
{
    constexpr int CH = kThreads / (NPAD / S);
    const int64_t blocks = batch * ((ia.E + CH - 1) / CH);
    infer_kernel<T, NPAD, S, PAIR><<<(unsigned)blocks, kThreads, 0, st>>>(ia);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

template <typename T, bool PAIR>
cudaError_t dispatch_npad(const InferArgs<T> &ia, int64_t batch, cudaStream_t st)
{
    switch (md_scan_npad(ia.N)) {
    case 16: return launch<T, 16, MD_SCAN_INFER_STATES, PAIR>(ia, batch, st);
    case 32: return launch<T, 32, 16, PAIR>(ia, batch, st);
    default: return launch<T, 64, 16, PAIR>(ia, batch, st);
    }
}

template <typename T>
bool pair_ok(const void *p, int64_t ld) { return (uintptr_t)p % (2 * sizeof(T)) == 0 && ld % 2 == 0; }

template <typename T>
cudaError_t infer_t(const md_scan_args_t *a, cudaStream_t st)
{
    InferArgs<T> ia;
    ia.u = (const T *)a->u, ia.delta = (const T *)a->delta, ia.z = (const T *)a->z;
    ia.Bm = (const T *)a->Bm, ia.Cm = (const T *)a->Cm;
    ia.ld_u = a->ld_u, ia.ld_delta = a->ld_delta, ia.ld_z = a->ld_z, ia.ld_B = a->ld_B, ia.ld_C = a->ld_C;
    ia.A_log = a->A_log, ia.D = a->D, ia.dt_bias = a->dt_bias, ia.h0 = a->h0, ia.hT = a->hT;
    ia.y = (T *)a->y, ia.ld_y = a->ld_y;
    ia.L = a->len, ia.E = a->d_inner, ia.N = a->d_state;
    const bool pair = a->d_inner % 2 == 0 && pair_ok<T>(a->u, a->ld_u) && pair_ok<T>(a->delta, a->ld_delta) &&
                      pair_ok<T>(a->z, a->ld_z) && pair_ok<T>(a->y, a->ld_y);
    return pair ? dispatch_npad<T, true>(ia, a->batch, st) : dispatch_npad<T, false>(ia, a->batch, st);
}

}   // namespace

cudaError_t md_scan_fwd_infer(const md_scan_args_t *a, cudaStream_t s)
{
    return a->dtype == MD_SCAN_BF16 ? infer_t<__nv_bfloat16>(a, s) : infer_t<float>(a, s);
}
