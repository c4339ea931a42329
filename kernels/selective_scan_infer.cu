/* The selective scan's forward for inference: neither chunk states nor
 * workspace (see scan_api.h; md_scan_fwd hands such calls here).
 *
 * Each sequence runs in one pass (NOTES-scan.md, v4-v6 inference). A block
 * owns one sequence and CH channels; each thread owns S = 16 states of one
 * channel (Q = NPAD/16 threads a channel, y summed over them with
 * shuffles) and does everything of its channel itself, step by step:
 * dt = softplus(delta + bias), the recurrence, y = (Cm.h) silu(z) +
 * D u silu(z). A warp's loads and stores of a step are 32/Q consecutive
 * channels of one row, whole 32-byte sectors, so they need no staging.
 * Latency is hidden inside the thread: the step's delta, u and z are
 * loaded kAhead steps before their use (in storage form, md_raw), and the
 * Bm/Cm rows, which every thread of the block reads, a tile of kTile steps
 * ahead into registers, then as fp32 into one of two shared tiles: one
 * barrier a tile.
 * Where the caller passes dt_proj's input and weight instead of delta
 * (scan_api.h), delta is formed here: the step's R inputs join the Bm/Cm
 * tiles (a third shared tile, RP = R padded to 8 or 16 columns of zeros),
 * each thread keeps its channel's RP weights in registers, and delta is
 * RP FMAs a channel-step instead of a K = R GEMM writing it and this
 * kernel reading it back.
 * The states' exps go to MUFU.EX2 (moving part of them to an FMA-pipe
 * polynomial was measured slower, NOTES-scan.md v5); softplus takes one
 * MUFU op and a polynomial for its log1p instead of three MUFU ops.
 */
#include "selective_scan.cuh"
#include "storage.cuh"

#include <climits>
#include <type_traits>

/* Tuning (NOTES-scan.md, v6 inference); the benchmark builds override them. */
#ifndef MD_SCAN_INFER_TILE
#define MD_SCAN_INFER_TILE 16   /* steps per Bm/Cm tile */
#endif
#ifndef MD_SCAN_INFER_AHEAD
#define MD_SCAN_INFER_AHEAD 4   /* steps between a delta/u/z load and its use */
#endif
#ifndef MD_SCAN_INFER_MINB
#define MD_SCAN_INFER_MINB 5    /* __launch_bounds__ minimum blocks an SM at N <= 16 */
#endif
#ifndef MD_SCAN_INFER_FOLD_MINB
#define MD_SCAN_INFER_FOLD_MINB 4   /* the same where the kernel forms delta (RP > 0) */
#endif

namespace {

constexpr int kThreads = 128, kStates = 16;
constexpr int kTile = MD_SCAN_INFER_TILE, kAhead = MD_SCAN_INFER_AHEAD;
static_assert(kTile % kAhead == 0, "a step's ring slot must be the same in every tile");

template <typename T>
struct InferArgs {
    const T *u, *delta, *z, *Bm, *Cm;
    int64_t ld_u, ld_delta, ld_z, ld_B, ld_C;
    const T *dt_low, *dt_w;   /* delta NULL: dt_proj's input (ld_dt_low) and weight (E, R) */
    int64_t ld_dt_low, R;
    const float *A_log, *D, *dt_bias, *h0;
    float *hT;
    T *y;
    int64_t ld_y;
    int64_t L, E, N;
    int64_t bld_u, bld_delta, bld_z, bld_y;   /* the strides in bytes */
};

/* One step's delta, u and z in storage form. */
template <typename T>
struct StepLoads {
    typename md_raw<T>::type delta, u, z;
};

/* A thread's channel in the rows of delta, u and z, a row at a time (no
 * delta where the kernel forms it: FOLD). The strides take the form
 * measured faster for the instance (NOTES-scan.md, v9 inference), BYTES:
 * in bytes from the parameters as int64, which a 64-bit advance uses as
 * they are (an IADD3 pair: no sign extension or shift, no register);
 * otherwise as int elements (the launcher checks that they fit). */
template <bool BYTES>
using RowStride = std::conditional_t<BYTES, int64_t, int>;

template <bool BYTES, typename T>
__device__ __forceinline__ void advance_row(T *&p, RowStride<BYTES> ld)
{
    if constexpr (BYTES)
        p = reinterpret_cast<T *>(reinterpret_cast<std::conditional_t<std::is_const_v<T>, const char, char> *>(p) + ld);
    else
        p += ld;
}

/* A row stride in the form RowStride<BYTES> takes, from the parameters'
 * ld and byte stride (bytes formed in the kernel cost 11 instructions of
 * the FULL loop more: ptxas reforms them there). */
template <bool BYTES>
__device__ __forceinline__ RowStride<BYTES> row_stride(int64_t ld, int64_t bytes)
{
    if constexpr (BYTES) return bytes;
    else return (int)ld;
}

template <typename T, bool FOLD, bool BYTES>
struct RowCursor {
    const T *delta, *u, *z;
    RowStride<BYTES> ld_delta, ld_u, ld_z;

    __device__ __forceinline__ void load_next(StepLoads<T> &r, bool in)
    {
        if (!FOLD) r.delta = in ? md_ld_raw(delta) : 0;
        r.u = in ? md_ld_raw(u) : 0;
        r.z = in ? md_ld_raw(z) : 0;
        if (!FOLD) advance_row<BYTES>(delta, ld_delta);
        advance_row<BYTES>(u, ld_u), advance_row<BYTES>(z, ld_z);
    }
};

/* The minimum-blocks bound for N <= 16 alone: ptxas spills the wider
 * states' (Q > 1) instances under it. RP: 0 reads delta, 8 or 16 forms
 * it from R <= RP inputs a step. */
template <typename T, int NPAD, int RP>
__global__ void __launch_bounds__(kThreads, NPAD == 16 ? (RP ? MD_SCAN_INFER_FOLD_MINB : MD_SCAN_INFER_MINB) : 1)
    infer_kernel(InferArgs<T> a)
{
    constexpr int Q = NPAD / kStates, CH = kThreads / Q;
    constexpr bool FOLD = RP > 0;
    /* the strides in bytes where that measured faster: bf16 up to N 32
     * (fp32 lost 14% at N 16, bf16 2% at N 64; NOTES-scan.md, v9 inference) */
    constexpr bool BYTES = sizeof(T) == 2 && NPAD <= 32;
    constexpr int RT = FOLD ? RP : 8;   /* the dt_low tile's columns (unused without FOLD) */
    __shared__ __align__(16) float s_B[2][kTile][NPAD];
    __shared__ __align__(16) float s_C[2][kTile][NPAD];
    __shared__ __align__(16) float s_R[2][FOLD ? kTile : 1][RT];

    const int64_t ncb = (a.E + CH - 1) / CH;
    const int64_t b = blockIdx.x / ncb, e0 = (blockIdx.x % ncb) * CH;
    const int q = threadIdx.x % Q;
    const int64_t e = e0 + threadIdx.x / Q;
    const bool valid = e < a.E;
    const float bias = valid ? __ldg(a.dt_bias + e) : 0.f, Dv = valid ? __ldg(a.D + e) : 0.f;
    float A2[kStates], h[kStates];
#pragma unroll
    for (int s = 0; s < kStates; s++) {
        const int64_t n = q * kStates + s;
        const bool ok = valid && n < a.N;
        A2[s] = ok ? -expf(__ldg(a.A_log + e * a.N + n)) * MD_LOG2E : 0.f;
        h[s] = ok && a.h0 ? a.h0[(b * a.E + e) * a.N + n] : 0.f;
    }
    float W[RT];   /* the channel's row of dt_proj's weight, zeros past R */
#pragma unroll
    for (int r = 0; r < (FOLD ? RT : 0); r++) W[r] = valid && r < a.R ? md_ld(a.dt_w + e * a.R + r) : 0.f;

    const int64_t row0 = b * a.L;
    /* ring[t % kAhead] holds step t's loads from kAhead steps before t */
    const int64_t ec = valid ? e : 0;
    RowCursor<T, FOLD, BYTES> cur = {FOLD ? a.delta : a.delta + row0 * a.ld_delta + ec, a.u + row0 * a.ld_u + ec,
                              a.z + row0 * a.ld_z + ec, row_stride<BYTES>(a.ld_delta, a.bld_delta), row_stride<BYTES>(a.ld_u, a.bld_u),
                              row_stride<BYTES>(a.ld_z, a.bld_z)};
    StepLoads<T> ring[kAhead];
#pragma unroll
    for (int k = 0; k < kAhead; k++) cur.load_next(ring[k], valid && k < a.L);
    T *yp = a.y + row0 * a.ld_y + ec;
    md_tile_ahead<T, NPAD, kTile, kThreads> nB, nC;
    md_tile_ahead<T, RT, kTile, kThreads> nR;
    {
        const int nt = (int)min((int64_t)kTile, a.L);
        nB.load(a.Bm, a.ld_B, row0, nt, a.N);
        nC.load(a.Cm, a.ld_C, row0, nt, a.N);
        if (FOLD) nR.load(a.dt_low, a.ld_dt_low, row0, nt, a.R);
        nB.store(s_B[0]);
        nC.store(s_C[0]);
        if (FOLD) nR.store(s_R[0]);
    }
    __syncthreads();

    /* kAhead steps from step t0 + jr, unrolled: the ring's slots are
     * registers, and the scheduler's window stays small enough for the
     * registers. FULL: every step and every load ahead lies inside the
     * sequence, so that neither needs a check (a thread past E loads
     * channel 0's values and stores nothing). */
    const int ld_y = (int)a.ld_y;   /* the int form; BYTES takes a.bld_y in the loop */
    auto steps = [&](auto full, int64_t t0, int jr, int buf) {
        constexpr bool FULL = decltype(full)::value;
#pragma unroll
        for (int k = 0; k < kAhead; k++) {
            const int j = jr + k;
            const int64_t t = t0 + j;
            const bool in = FULL || t < a.L;
            StepLoads<T> &r = ring[k];
            const float u = md_from_raw(r.u), zv = md_from_raw(r.z);
            /* steps past L get dt = 0: the state keeps */
            float delta;
            if constexpr (FOLD) {   /* sum_r W[r] dt_low[t, r], r ascending (ops.h) */
                const float4 *Rv = reinterpret_cast<const float4 *>(&s_R[buf][j][0]);
                delta = 0.f;
#pragma unroll
                for (int r4 = 0; r4 < RT / 4; r4++) {
                    const float4 v = Rv[r4];
                    delta = fmaf(W[4 * r4], v.x, delta);
                    delta = fmaf(W[4 * r4 + 1], v.y, delta);
                    delta = fmaf(W[4 * r4 + 2], v.z, delta);
                    delta = fmaf(W[4 * r4 + 3], v.w, delta);
                }
            } else {
                delta = md_from_raw(r.delta);
            }
            const float dt = in ? md_softplus<true>(delta + bias) : 0.f, dtu = dt * u;
            cur.load_next(r, FULL || t + kAhead < a.L);
            const float4 *Bv = reinterpret_cast<const float4 *>(&s_B[buf][j][q * kStates]);
            const float4 *Cv = reinterpret_cast<const float4 *>(&s_C[buf][j][q * kStates]);
            float acc = 0.f;
#pragma unroll
            for (int s4 = 0; s4 < kStates / 4; s4++) {
                const float4 bb = Bv[s4], cc = Cv[s4];
                const float bs[4] = {bb.x, bb.y, bb.z, bb.w}, cs[4] = {cc.x, cc.y, cc.z, cc.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int s = 4 * s4 + i;
                    h[s] = fmaf(md_ex2(dt * A2[s]), h[s], dtu * bs[i]);
                    acc = fmaf(cs[i], h[s], acc);
                }
            }
#pragma unroll
            for (int m = 1; m < Q; m <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, m);
            const float g = zv * md_sigmoid(zv);
            if (q == 0 && valid && in) md_st(yp, fmaf(acc, g, Dv * u * g));
            advance_row<BYTES>(yp, row_stride<BYTES>(ld_y, a.bld_y));
        }
    };
    int buf = 0;
    for (int64_t t0 = 0; t0 < a.L; t0 += kTile, buf ^= 1) {
        const int64_t tn = t0 + kTile;
        if (tn < a.L) {
            const int ntn = (int)min((int64_t)kTile, a.L - tn);
            nB.load(a.Bm, a.ld_B, row0 + tn, ntn, a.N);
            nC.load(a.Cm, a.ld_C, row0 + tn, ntn, a.N);
            if (FOLD) nR.load(a.dt_low, a.ld_dt_low, row0 + tn, ntn, a.R);
        }
        if (tn + kAhead <= a.L) {
#pragma unroll 1
            for (int jr = 0; jr < kTile; jr += kAhead) steps(std::true_type(), t0, jr, buf);
        } else {
#pragma unroll 1
            for (int jr = 0; jr < kTile; jr += kAhead) steps(std::false_type(), t0, jr, buf);
        }
        /* the other tile was last read before the previous barrier */
        nB.store(s_B[buf ^ 1]);
        nC.store(s_C[buf ^ 1]);
        if (FOLD) nR.store(s_R[buf ^ 1]);
        __syncthreads();
    }
    if (a.hT && valid) {
#pragma unroll
        for (int s = 0; s < kStates; s++) {
            const int64_t n = q * kStates + s;
            if (n < a.N) a.hT[(b * a.E + e) * a.N + n] = h[s];
        }
    }
}

template <typename T>
cudaError_t infer_t(const md_scan_args_t *a, cudaStream_t st)
{
    InferArgs<T> ia;
    ia.u = (const T *)a->u, ia.delta = (const T *)a->delta, ia.z = (const T *)a->z;
    ia.Bm = (const T *)a->Bm, ia.Cm = (const T *)a->Cm;
    ia.ld_u = a->ld_u, ia.ld_delta = a->ld_delta, ia.ld_z = a->ld_z, ia.ld_B = a->ld_B, ia.ld_C = a->ld_C;
    ia.dt_low = (const T *)a->dt_low, ia.dt_w = (const T *)a->dt_w, ia.ld_dt_low = a->ld_dt_low, ia.R = a->dt_rank;
    ia.A_log = a->A_log, ia.D = a->D, ia.dt_bias = a->dt_bias, ia.h0 = a->h0, ia.hT = a->hT;
    ia.y = (T *)a->y, ia.ld_y = a->ld_y;
    ia.bld_u = ia.ld_u * (int64_t)sizeof(T), ia.bld_delta = ia.ld_delta * (int64_t)sizeof(T);
    ia.bld_z = ia.ld_z * (int64_t)sizeof(T), ia.bld_y = ia.ld_y * (int64_t)sizeof(T);
    ia.L = a->len, ia.E = a->d_inner, ia.N = a->d_state;
    if (ia.ld_u > INT_MAX || (a->delta && ia.ld_delta > INT_MAX) || ia.ld_z > INT_MAX || ia.ld_y > INT_MAX)
        return cudaErrorInvalidValue;
    const int rp = a->delta ? 0 : a->dt_rank <= 8 ? 8 : 16;
    return md_scan_npad_switch(ia.N, [&](auto npad) {
        constexpr int NPAD = decltype(npad)::value, CH = kThreads / (NPAD / kStates);
        const unsigned blocks = (unsigned)(a->batch * ((ia.E + CH - 1) / CH));
        if (rp == 0) infer_kernel<T, NPAD, 0><<<blocks, kThreads, 0, st>>>(ia);
        else if (rp == 8) infer_kernel<T, NPAD, 8><<<blocks, kThreads, 0, st>>>(ia);
        else infer_kernel<T, NPAD, 16><<<blocks, kThreads, 0, st>>>(ia);
        MD_CU_LAUNCHED();
        return cudaSuccess;
    });
}

}   // namespace

cudaError_t md_scan_fwd_infer(const md_scan_args_t *a, cudaStream_t s)
{
    return a->dtype == MD_SCAN_BF16 ? infer_t<__nv_bfloat16>(a, s) : infer_t<float>(a, s);
}
