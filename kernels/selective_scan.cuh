/* Shared pieces of the selective-scan kernels: element loads and stores,
 * the fast math, the chunk plan and the workspace layout, and the launchers
 * that selective_scan_fwd.cu exports to selective_scan_bwd.cu.
 *
 * Index conventions (all 64-bit): b batch, t position, e channel (E of
 * them), n state (N of them, padded to NPAD = 16, 32 or 64 inside the
 * kernels; padded states have B = C = 0 and so stay exactly 0), c chunk (nc
 * of MD_SCAN_CHUNK steps). Device-memory records keep e fastest so that a
 * warp of consecutive channels reads and writes them coalesced:
 *   chunk summary  sum[((b*nc + c)*(N+1) + n)*E + e]  (n = N holds the
 *                  chunk's sum of dt)
 *   chunk states   st[((b*nc + c)*N + n)*E + e]
 */
#ifndef MD_KERNELS_SELECTIVE_SCAN_CUH
#define MD_KERNELS_SELECTIVE_SCAN_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "fastmath.cuh"
#include "scan_api.h"

/* ---- elements ---- */

/* bf16 goes through plain 16-bit integer loads and stores: cuda_bf16.h's
 * __ldg for bf16 is inline assembly, which the compiler can neither
 * predicate nor schedule freely. */
__device__ __forceinline__ float md_ld(const float *p) { return __ldg(p); }
__device__ __forceinline__ float md_ld(const __nv_bfloat16 *p)
{
    return __uint_as_float((unsigned)__ldg(reinterpret_cast<const unsigned short *>(p)) << 16);
}
/* A load kept in its storage form: a kernel that loads a step's values one
 * segment ahead carries them across the loop in this form and converts
 * them where they are used. Converting at the load (md_ld) would make the
 * bf16 shift wait for the load in the iteration that issues it, exposing
 * the whole latency the early load was meant to hide. */
template <typename T>
struct md_raw;
template <>
struct md_raw<float> {
    typedef float type;
};
template <>
struct md_raw<__nv_bfloat16> {
    typedef unsigned type;
};
__device__ __forceinline__ float md_ld_raw(const float *p) { return __ldg(p); }
__device__ __forceinline__ unsigned md_ld_raw(const __nv_bfloat16 *p)
{
    return __ldg(reinterpret_cast<const unsigned short *>(p));
}
__device__ __forceinline__ float md_from_raw(float v) { return v; }
__device__ __forceinline__ float md_from_raw(unsigned v) { return __uint_as_float(v << 16); }

__device__ __forceinline__ void md_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void md_st(__nv_bfloat16 *p, float v)
{
    *reinterpret_cast<unsigned short *>(p) = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

/* ---- math: the special-function unit (fastmath.cuh), with the accuracy the checks need ---- */

/* dt = softplus(x) (= x above 20, as mamba_ssm) in two forms, chosen per
 * walk by md_softplus<POLY> below.
 *
 * SFU: log1p from the SFU's log, three MUFU ops: log1p(e) = log(1+e) * e /
 * ((1+e) - 1) cancels the rounding of 1+e (Goldberg), so the small dt of a
 * strongly negative x keep their digits. Branch-free: both sides are
 * computed and one is selected. */
__device__ __forceinline__ float md_softplus_sfu(float x)
{
    const float e = md_ex2(fminf(x, 20.f) * MD_LOG2E), u = 1.f + e;
    const float sp = u == 1.f ? e : md_lg2(u) * MD_LN2 * e * md_rcp(u - 1.f);
    return x > 20.f ? x : sp;
}
/* The same and d(dt)/dx = sigmoid(x). */
__device__ __forceinline__ void md_softplus_grad_sfu(float x, float *dt, float *sig)
{
    const float e = md_ex2(fminf(x, 20.f) * MD_LOG2E), u = 1.f + e;
    const float sp = u == 1.f ? e : md_lg2(u) * MD_LN2 * e * md_rcp(u - 1.f);
    *dt = x > 20.f ? x : sp;
    *sig = x > 20.f ? 1.f : e * md_rcp(u);
}

/* POLY: max(x, 0) + log1p(w), w = exp(-|x|), log1p(w) = w p(w) on [0, 1]
 * (p: degree 8, least squares reweighted toward the largest relative error
 * on Chebyshev nodes; 1.9e-7 at most in fp32 Horner form), one MUFU op.
 * Equals x above 20 in fp32 (w p(w) < 2^-28 x there). */
__device__ __forceinline__ float md_softplus_of_w(float x, float w)
{
    float p = 0.005109514109790325f;
    p = fmaf(p, w, -0.029006922617554665f);
    p = fmaf(p, w, 0.07740543782711029f);
    p = fmaf(p, w, -0.1359272450208664f);
    p = fmaf(p, w, 0.1907232254743576f);
    p = fmaf(p, w, -0.24834208190441132f);
    p = fmaf(p, w, 0.33317968249320984f);
    p = fmaf(p, w, -0.4999943673610687f);
    p = fmaf(p, w, 0.9999999403953552f);
    return fmaf(w, p, fmaxf(x, 0.f));
}
__device__ __forceinline__ float md_softplus_poly(float x) { return md_softplus_of_w(x, md_ex2(-fabsf(x) * MD_LOG2E)); }
/* The same and sigmoid(x) = 1 / (1 + w) for x >= 0, w / (1 + w) below. */
__device__ __forceinline__ void md_softplus_grad_poly(float x, float *dt, float *sig)
{
    const float w = md_ex2(-fabsf(x) * MD_LOG2E), r = md_rcp(1.f + w);
    *dt = md_softplus_of_w(x, w);
    *sig = x >= 0.f ? r : w * r;
}

/* The form a walk takes. POLY where the kernel runs near the SFU's rate
 * (the thread-per-channel walks: the chunked scheme at N <= 16, and the
 * inference forward), where two MUFU ops fewer a channel-step gained 2-6%
 * (NOTES-scan.md, v6 inference and v16). SFU in the lane walks (the WHOLE
 * scheme, N > 16), where each lane computes its owned steps' dt at a
 * segment's start and the polynomial's chain of 9 dependent FMAs cost the
 * WHOLE forward 12-15%. A backward takes its forward's form (the main pass
 * is an instance of each), so that its dt, and so its states, are the
 * forward's bit for bit. */
template <bool POLY>
__device__ __forceinline__ float md_softplus(float x)
{
    return POLY ? md_softplus_poly(x) : md_softplus_sfu(x);
}
template <bool POLY>
__device__ __forceinline__ void md_softplus_grad(float x, float *dt, float *sig)
{
    if (POLY) md_softplus_grad_poly(x, dt, sig);
    else md_softplus_grad_sfu(x, dt, sig);
}

/* ---- the plan ---- */

static inline int md_scan_npad(int64_t n) { return n <= 16 ? 16 : n <= 32 ? 32 : 64; }

/* Returns f(std::integral_constant<int, NPAD>()) for the padding of n
 * states: how the launchers pick a kernel's template instance. */
template <typename F>
static inline cudaError_t md_scan_npad_switch(int64_t n, F &&f)
{
    switch (md_scan_npad(n)) {
    case 16: return f(std::integral_constant<int, 16>());
    case 32: return f(std::integral_constant<int, 32>());
    default: return f(std::integral_constant<int, 64>());
    }
}

/* Whether a training call with nc > 1 chunks walks each sequence whole
 * (scan_api.h's md_scan_pass_t). The forward and the backward decide
 * alike, so that a backward recomputing the states matches the forward's. */
static inline int md_scan_pass_whole(const md_scan_args_t *a)
{
    if (a->pass != MD_SCAN_PASS_AUTO) return a->pass == MD_SCAN_PASS_WHOLE;
    return a->batch * a->d_inner * (md_scan_npad(a->d_state) / 4) >= MD_SCAN_WHOLE_LANES;
}

/* The lanes of the whole-sequence forward and of the backward's main pass:
 * Q = NPAD/4 lanes of 4 states per channel, steps in segments of TS, of
 * which each lane owns R consecutive ones (loads them, computes their
 * per-channel values and hands them to the channel's lanes, finishes their
 * outputs). */
template <int NPAD>
struct md_lanes {
    static constexpr int Q = NPAD / 4;
    static constexpr int TS = Q > 8 ? Q : 8;
    static constexpr int R = TS / Q;
};

/* Segments of a sequence of len steps with n states (md_lanes' TS steps
 * each), for host code: seg_states' rows per sequence. */
static inline int64_t md_scan_seg_count(int64_t len, int64_t n)
{
    const int64_t q = md_scan_npad(n) / 4, ts = q > 8 ? q : 8;
    return (len + ts - 1) / ts;
}

/* One step of a lane's four states, h = 2^(dt A2) h + dt u B, the decays
 * to av. Every training walk takes it (the forward's, the backward's walk
 * to the segment starts and its recompute of a segment), so that a backward
 * starting from the forward's segment states sees the forward's states bit
 * for bit; the fmaf pins the contraction that the compiler would otherwise
 * choose per call site. */
__device__ __forceinline__ void md_scan_step4(float h[4], float av[4], float dt, float dtu, const float bs[4],
                                              const float A2[4])
{
#pragma unroll
    for (int s = 0; s < 4; s++) {
        av[s] = md_ex2(dt * A2[s]);
        h[s] = fmaf(av[s], h[s], dtu * bs[s]);
    }
}

/* Where lane q of channel e finds (stores) the state entering step t's
 * segment in seg_states (scan_api.h), laid out [b][t / TS][e][NPAD]: the
 * index of the lane's four states as a float4. */
template <int NPAD>
__device__ __forceinline__ int64_t md_seg_state(int64_t nsl, int64_t E, int64_t b, int64_t t, int64_t e, int q)
{
    return ((b * nsl + t / md_lanes<NPAD>::TS) * E + e) * (NPAD / 4) + q;
}

/* The lane of the channel's group (of Q lanes) that owns step j of a segment. */
template <int NPAD>
__device__ __forceinline__ int md_owner(int lane, int j)
{
    return (lane & ~(md_lanes<NPAD>::Q - 1)) | (j / md_lanes<NPAD>::R);
}

/* A TILE x NPAD tile of Bm or Cm rows, loaded into registers in storage
 * form (md_raw) a tile ahead of its use (the forward's walks), or with all
 * of a thread's loads in flight before its first store (the backward main
 * pass's chunk staging), then stored to shared memory as fp32: thread tid of THREADS holds elements tid, tid + THREADS, ... (zero
 * outside the nt rows and the N columns). */
template <typename T, int NPAD, int TILE, int THREADS>
struct md_tile_ahead {
    static constexpr int PER = TILE * NPAD / THREADS;
    typename md_raw<T>::type v[PER];

    static_assert(THREADS % NPAD == 0, "a thread keeps its column");
    static constexpr int RS = THREADS / NPAD;   /* rows between a thread's elements */

    /* Element k is row j0 + k RS of column n, so the loads go from one row
     * pointer (the 64-bit row product once a tile, not per element). */
    __device__ __forceinline__ void load(const T *M, int64_t ld, int64_t row0, int nt, int64_t N)
    {
        const int n = threadIdx.x % NPAD, j0 = threadIdx.x / NPAD;
        const T *p = M + (row0 + j0) * ld + n;
        const int64_t step = RS * ld;
#pragma unroll
        for (int k = 0; k < PER; k++, p += step) v[k] = j0 + k * RS < nt && n < N ? md_ld_raw(p) : 0;
    }
    /* A full tile (TILE rows) from this thread's first element p (row j0,
     * column n of the tile, as load takes them) and the stride between its
     * elements (RS rows); col_ok: n < N. For callers that step p from tile
     * to tile, with no row product. */
    __device__ __forceinline__ void load_full(const T *p, int64_t step, bool col_ok)
    {
#pragma unroll
        for (int k = 0; k < PER; k++, p += step) v[k] = col_ok ? md_ld_raw(p) : 0;
    }
    __device__ __forceinline__ void store(float (*s)[NPAD]) const
    {
        float *d = &s[0][0] + threadIdx.x;   /* element k at + k THREADS, rows packed */
#pragma unroll
        for (int k = 0; k < PER; k++) d[k * THREADS] = md_from_raw(v[k]);
    }
};

/* Writes the lane's part of a chunk summary record (sum, see the top; rec
 * points at n = 0 of channel e): its 4 states v (states q*4 .. q*4+3) and,
 * from lane q = 0, the channel's sum of dt, summed here over the channel's
 * Q lanes from each lane's dt_sum: every lane of the warp must call it. */
template <int Q>
__device__ __forceinline__ void md_write_summary(float *rec, int64_t N, int64_t E, int q, bool valid,
                                                 const float (&v)[4], float dt_sum)
{
#pragma unroll
    for (int m = 1; m < Q; m <<= 1) dt_sum += __shfl_xor_sync(0xffffffffu, dt_sum, m);
    if (!valid) return;
#pragma unroll
    for (int s = 0; s < 4; s++)
        if (q * 4 + s < N) rec[(q * 4 + s) * E] = v[s];
    if (q == 0) rec[N * E] = dt_sum;
}

__host__ __device__ constexpr int md_ilog2(int x) { return x <= 1 ? 0 : 1 + md_ilog2(x / 2); }

/* Sums v over the lanes that differ in the LEVELS mask bits hi_mask,
 * hi_mask/2, ...: each level sends half the values to the partner and adds
 * the half it receives, so the lane keeps V >> LEVELS finished sums, of the
 * original indices off + k with off = sum over levels l of
 * (lane & mask_l ? V >> (l+1) : 0). With V = TS, LEVELS = log2(Q) and
 * hi_mask = Q/2, that is: lane q keeps the sums of its owned steps. */
template <int V, int LEVELS>
__device__ __forceinline__ void md_transpose_reduce(float (&v)[V], int lane, int hi_mask)
{
#pragma unroll
    for (int l = 0; l < LEVELS; l++) {
        const int half = V >> (l + 1), m = hi_mask >> l;
        const bool up = lane & m;
#pragma unroll
        for (int i = 0; i < half; i++) {
            const float send = up ? v[i] : v[i + half];
            const float keep = up ? v[i + half] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, m);
        }
    }
}

/* Whether p may be read and written as float4 (the caller's buffers, as
 * the workspace, need not be 16-byte aligned). */
static inline bool md_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

typedef struct md_scan_layout {
    int64_t B, L, E, N, nc;
    int64_t G, ng, ng_max;      /* chunks per propagation group, groups, bound on groups */
    int64_t cpb, ncb;           /* backward: channels per block, channel blocks */
    int64_t cs_groups;          /* bound on the parameter reduction's row groups */
    /* byte offsets into the workspace */
    size_t states, sum, gsum, gstart, rend, dbc, pp, cs, fwd_bytes, bwd_bytes;
} md_scan_layout_t;

static inline size_t md_align256(size_t x) { return (x + 255) & ~(size_t)255; }

static inline int64_t md_isqrt_ceil(int64_t n)
{
    int64_t r = 1;
    while (r * r < n) r++;
    return r;
}

static inline md_scan_layout_t md_scan_layout(int64_t B, int64_t L, int64_t E, int64_t N)
{
    md_scan_layout_t w;
    w.B = B, w.L = L, w.E = E, w.N = N;
    w.nc = (L + MD_SCAN_CHUNK - 1) / MD_SCAN_CHUNK;
    w.G = md_isqrt_ceil(w.nc);
    w.ng = (w.nc + w.G - 1) / w.G;
    w.ng_max = w.G + 1;   /* >= ng, and non-decreasing in L */
    w.cpb = 256 / (md_scan_npad(N) / 4);
    w.ncb = (E + w.cpb - 1) / w.cpb;
    int64_t rows = B * w.nc;
    w.cs_groups = (rows + 31) / 32 < 64 ? (rows + 31) / 32 : 64;
    size_t f = sizeof(float), off = 0;
    int chunked = w.nc > 1;
    w.states = off;
    if (chunked) off += md_align256(f * B * w.nc * N * E);
    w.sum = off;
    if (chunked) off += md_align256(f * B * w.nc * (N + 1) * E);
    w.gsum = off;
    if (chunked) off += md_align256(f * B * w.ng_max * (N + 1) * E);
    w.gstart = off;
    if (chunked) off += md_align256(f * B * w.ng_max * N * E);
    w.fwd_bytes = off;
    w.rend = off;
    if (chunked) off += md_align256(f * B * w.nc * N * E);
    w.dbc = off;
    if (w.ncb > 1) off += md_align256(f * w.ncb * B * L * 2 * N);
    w.pp = off;
    off += md_align256(f * rows * E * (N + 2));
    w.cs = off;
    off += md_align256(f * w.cs_groups * E * (N + 2));
    w.bwd_bytes = off;
    return w;
}

/* ---- launchers shared by the forward and the backward ---- */

/* Each chunk's effect on a zero state, for chunks 0..nc-2: sum (see top). */
cudaError_t md_scan_launch_chunk_summary(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum,
                                         cudaStream_t s);
/* The whole-sequence forward (md_scan_pass_t WHOLE): y (skipped when a->y
 * is NULL: a backward recomputing the states), every chunk's start state
 * into st (when not NULL), hT (when a->hT). */
cudaError_t md_scan_launch_whole_fwd(const md_scan_args_t *a, const md_scan_layout_t *w, float *st, cudaStream_t s);
/* The chunk-start states from the chunk summaries: st[c] for every chunk.
 * Forward (reverse = 0): from init (B, E, N) or zero, chunk 0 first.
 * Reverse: the carry entering each chunk from its right, from init or zero
 * at the end. gsum and gstart are scratch. */
cudaError_t md_scan_launch_propagate(const md_scan_layout_t *w, const float *A_log, const float *sum,
                                     const float *init, float *st, float *gsum, float *gstart, int reverse,
                                     cudaStream_t s);

/* The chunked scheme's walks at N <= 16, a thread per channel
 * (selective_scan_chan.cu), whose values the backward's main pass
 * reproduces bit for bit (its POLY instance). md_scan_launch_chan_fwd:
 * summary != 0, the chunk summaries as md_scan_launch_chunk_summary; else
 * the output walk from the chunk start states st_in (NULL: h0 or zero)
 * writing a->y, a->seg_states and a->hT where given.
 * md_scan_launch_chan_reverse_summary: the backward's reverse chunk
 * summaries into sum. */
cudaError_t md_scan_launch_chan_fwd(const md_scan_args_t *a, const md_scan_layout_t *w, int summary,
                                    const float *st_in, float *sum, cudaStream_t s);
cudaError_t md_scan_launch_chan_reverse_summary(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum,
                                                cudaStream_t s);

/* The forward for inference (selective_scan_infer.cu): md_scan_fwd with
 * neither states nor workspace, arguments already checked. */
cudaError_t md_scan_fwd_infer(const md_scan_args_t *a, cudaStream_t s);

#define MD_CU_TRY(call)                          \
    do {                                         \
        cudaError_t md_err_ = (call);            \
        if (md_err_ != cudaSuccess) return md_err_; \
    } while (0)
#define MD_CU_LAUNCHED() MD_CU_TRY(cudaGetLastError())

#endif
