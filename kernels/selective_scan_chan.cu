/* The chunked scheme's walks at N <= 16 with a thread per channel: the
 * forward's chunk summaries and output walk, and the backward's reverse
 * chunk summaries (scan_api.h's CHUNKED; selective_scan_fwd.cu and
 * selective_scan_bwd.cu hand them here).
 *
 * Why not the lanes (md_lanes: 4 lanes of 4 states a channel) that the
 * whole-sequence walks and the backward's main pass use: a chunked call has
 * B x nc x E threads of parallelism at one thread a channel, enough to fill
 * the GPU, and with the whole channel in one thread its per-step work
 * (softplus, the gate, the loads, the owners' hand-over of dt and dt u, the
 * transpose of y's partial sums) is done once for 16 states instead of
 * once for 4, so the walks come near the special-function unit's rate
 * (one exp a state-step), and take the one-op softplus (md_softplus<true>)
 * that the lanes, which compute it on their path to the step, could not
 * use. The inference forward (selective_scan_infer.cu) showed it first
 * (NOTES-scan.md, v6 inference, v15 and v16).
 *
 * The backward's main pass (its POLY instance) must see the forward's
 * values bit for bit: every state steps through md_scan_step4 with the
 * same dt and dt u; y's sum over the states runs in the lanes' order (four
 * fma chains of four states, then (0 + 2) + (1 + 3)), so the backward's y
 * (y_out) equals the forward's; the segment states are the states its
 * phase 1 walk would reach. A chunk's sum of dt keeps the order the lane
 * walks summed it in (four partial sums of the steps each lane owned, 2k
 * and 2k + 1 of every segment, then (0 + 1) + (2 + 3)).
 *
 * Latency is hidden inside the thread, as in the inference forward: a
 * step's delta, u, z (or dy) are loaded kAhead steps before their use into
 * a ring of registers (storage form, md_raw); the Bm and Cm rows, which
 * every thread of the block reads, a tile ahead into registers, then as
 * fp32 into one of two shared tiles: one barrier a tile. A tile whose steps
 * and loads ahead all lie inside the sequence runs an instance with no
 * bounds checks.
 */
#include "selective_scan.cuh"

#include <type_traits>

/* Tuning (NOTES-scan.md, v17); the measuring builds override them. */
#ifndef MD_SCAN_CHAN_TILE
#define MD_SCAN_CHAN_TILE 16      /* steps of Bm/Cm staged at once */
#endif
#ifndef MD_SCAN_CHAN_AHEAD
#define MD_SCAN_CHAN_AHEAD 4      /* steps between a load and its use */
#endif
#ifndef MD_SCAN_CHAN_OUT_MINB
#define MD_SCAN_CHAN_OUT_MINB 5   /* __launch_bounds__ minimum blocks an SM: the output walk */
#endif
#ifndef MD_SCAN_CHAN_SUM_MINB
#define MD_SCAN_CHAN_SUM_MINB 6   /* the same: both summaries */
#endif

namespace {

constexpr int kThreads = 128;                   /* channels a block */
constexpr int kStates = 16;                     /* NPAD */
constexpr int kSeg = md_lanes<kStates>::TS;     /* steps of a segment (seg_states) */
constexpr int kOwned = md_lanes<kStates>::R;    /* steps a lane owned in a segment */
constexpr int kTile = MD_SCAN_CHAN_TILE;
constexpr int kAhead = MD_SCAN_CHAN_AHEAD;
static_assert(kTile % kSeg == 0 && kSeg % kAhead == 0 && MD_SCAN_CHUNK % kTile == 0,
              "segments tile the chunk, and a step's ring slot is its index mod kAhead");
static_assert(kSeg / kOwned == 4, "four lanes' partial sums");

template <typename T>
struct ChanArgs {
    const T *u, *delta, *z, *dy, *Bm, *Cm;
    int64_t ld_u, ld_delta, ld_z, ld_dy, ld_B, ld_C;
    const float *A_log, *D, *dt_bias, *h0, *st_in;
    T *y;
    int64_t ld_y;
    float *seg, *hT, *sum;
    int64_t B, L, E, N, nc, nsl;
};

/* One step's delta, u or dy (x), and z, in storage form. */
template <typename T>
struct StepIn {
    typename md_raw<T>::type d, x, z;
};

/* The thread's channel in the rows of delta, x (u or dy) and z, a row
 * further (DIR = 1) or back (-1) at each load. */
template <typename T, int DIR>
struct Cursor {
    const T *d, *x, *z;
    int64_t ld_d, ld_x, ld_z;
    bool with_z;

    __device__ __forceinline__ void load(StepIn<T> &r, bool ok)
    {
        r.d = ok ? md_ld_raw(d) : 0;
        r.x = ok ? md_ld_raw(x) : 0;
        r.z = ok && with_z ? md_ld_raw(z) : 0;
        d += DIR * ld_d, x += DIR * ld_x, z += DIR * ld_z;
    }
};

/* A chunk record's entry for channel e (selective_scan.cuh's sum layout):
 * the state v and the sum of dt from the four lanes' partial sums. */
__device__ __forceinline__ void write_record(float *rec, int64_t N, int64_t E, const float (&v)[kStates],
                                             const float (&dts)[4])
{
#pragma unroll
    for (int s = 0; s < kStates; s++)
        if (s < N) rec[s * E] = v[s];
    rec[N * E] = (dts[0] + dts[1]) + (dts[2] + dts[3]);
}

enum ChanWalk { CHAN_SUMMARY, CHAN_OUTPUT };

/* SUMMARY: chunk c in [0, nc - 1) from zero: its final state and sum of dt
 * into the record. OUTPUT: chunk c from its start state (st_in, else h0,
 * else zero): y (unless NULL), every segment's start state (seg, unless
 * NULL), hT after the sequence's last step (unless NULL). The block
 * registers: 5 blocks an SM for OUTPUT, as the inference forward's; 6 for
 * SUMMARY, which holds no Cm, z or y. */
template <typename T, ChanWalk W>
__global__ void __launch_bounds__(kThreads, W == CHAN_OUTPUT ? MD_SCAN_CHAN_OUT_MINB : MD_SCAN_CHAN_SUM_MINB) chan_fwd_kernel(ChanArgs<T> a)
{
    constexpr bool OUT = W == CHAN_OUTPUT;
    __shared__ __align__(16) float sB[2][kTile][kStates];
    __shared__ __align__(16) float sC[2][OUT ? kTile : 1][kStates];
    const int64_t ncb = (a.E + kThreads - 1) / kThreads, nrange = OUT ? a.nc : a.nc - 1;
    const int64_t cb = blockIdx.x % ncb, rest = blockIdx.x / ncb;
    const int64_t b = rest / nrange, c = rest % nrange, N = a.N, E = a.E;
    const int64_t t_begin = c * MD_SCAN_CHUNK, t_end = min(a.L, t_begin + MD_SCAN_CHUNK), row0 = b * a.L;
    const int64_t e = cb * kThreads + threadIdx.x;
    const bool valid = e < E;
    const int64_t ec = valid ? e : 0;   /* a thread past E reads channel 0 and writes nothing */

    float A2[kStates], h[kStates];
#pragma unroll
    for (int s = 0; s < kStates; s++) {
        const bool ok = valid && s < N;
        A2[s] = ok ? -expf(__ldg(a.A_log + ec * N + s)) * MD_LOG2E : 0.f;
        float hv = 0.f;
        if (OUT && ok) hv = a.st_in ? a.st_in[((b * a.nc + c) * N + s) * E + e] : a.h0 ? a.h0[(b * E + e) * N + s] : 0.f;
        h[s] = hv;
    }
    const float bias = valid ? __ldg(a.dt_bias + ec) : 0.f, Dv = valid ? __ldg(a.D + ec) : 0.f;
    const bool want_y = OUT && a.y != NULL, want_seg = OUT && a.seg != NULL && valid;

    /* ring[t % kAhead] holds step t's inputs, loaded kAhead steps before t */
    Cursor<T, 1> cur = {a.delta + (row0 + t_begin) * a.ld_delta + ec, a.u + (row0 + t_begin) * a.ld_u + ec,
                        a.z + (row0 + t_begin) * a.ld_z + ec, a.ld_delta, a.ld_u, a.ld_z, OUT};
    StepIn<T> ring[kAhead];
#pragma unroll
    for (int k = 0; k < kAhead; k++) cur.load(ring[k], t_begin + k < a.L);
    T *py = want_y ? a.y + (row0 + t_begin) * a.ld_y + ec : NULL;
    /* the thread's slot of the segment states, a segment further each time */
    float4 *pseg = want_seg ? reinterpret_cast<float4 *>(a.seg) + md_seg_state<kStates>(a.nsl, E, b, t_begin, e, 0)
                            : NULL;
    const int64_t sseg = E * (kStates / 4);

    md_tile_ahead<T, kStates, kTile, kThreads> nB, nC;
    {
        const int nt = (int)min((int64_t)kTile, t_end - t_begin);
        nB.load(a.Bm, a.ld_B, row0 + t_begin, nt, N);
        if (OUT) nC.load(a.Cm, a.ld_C, row0 + t_begin, nt, N);
        nB.store(sB[0]);
        if (OUT) nC.store(sC[0]);
    }
    __syncthreads();

    float dts[4] = {0.f, 0.f, 0.f, 0.f};   /* SUMMARY: the sum of dt in the lanes' order */
    /* A segment's kSeg steps from t_begin + jt, unrolled. FULL: every step
     * and every load ahead lies inside the chunk and the sequence. Steps
     * past the chunk's end (a partial last tile) run with dt = 0 and zero
     * Bm rows, so h passes them unchanged. */
    auto segment = [&](auto full, int64_t ts, int js, int buf) {
        constexpr bool FULL = decltype(full)::value;
        if (want_seg) {
            if (FULL || ts < t_end) {
#pragma unroll
                for (int s4 = 0; s4 < kStates / 4; s4++)
                    pseg[s4] = make_float4(h[4 * s4], h[4 * s4 + 1], h[4 * s4 + 2], h[4 * s4 + 3]);
            }
            pseg += sseg;
        }
#pragma unroll
        for (int k = 0; k < kSeg; k++) {
            const int j = js + k;
            const int64_t t = ts + k;
            const bool in = FULL || t < t_end;
            StepIn<T> &r = ring[k % kAhead];
            const float uu = md_from_raw(r.x), zz = md_from_raw(r.z);
            const float sp = md_softplus<true>(md_from_raw(r.d) + bias);
            const float dt = in ? sp : 0.f, dtu = dt * uu;
            cur.load(r, FULL || t + kAhead < a.L);
            const float4 *Bv = reinterpret_cast<const float4 *>(&sB[buf][j][0]);
            const float4 *Cv = reinterpret_cast<const float4 *>(&sC[OUT ? buf : 0][OUT ? j : 0][0]);
            float part[4];
#pragma unroll
            for (int s4 = 0; s4 < kStates / 4; s4++) {
                const float4 bb = Bv[s4];
                const float bs[4] = {bb.x, bb.y, bb.z, bb.w};
                float av[4];
                md_scan_step4(&h[4 * s4], av, dt, dtu, bs, &A2[4 * s4]);
                if (OUT) {
                    const float4 cc = Cv[s4];
                    const float cs[4] = {cc.x, cc.y, cc.z, cc.w};
                    float acc = 0.f;
#pragma unroll
                    for (int i = 0; i < 4; i++) acc = fmaf(cs[i], h[4 * s4 + i], acc);
                    part[s4] = acc;
                }
            }
            if (!OUT) dts[k / kOwned] += dt;
            if (want_y) {
                const float ys = (part[0] + part[2]) + (part[1] + part[3]);
                const float gate = zz * md_sigmoid(zz);
                if (valid && in) md_st(py, (ys + Dv * uu) * gate);
                py += a.ld_y;
            }
        }
    };
    int buf = 0;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += kTile, buf ^= 1) {
        const int64_t tn = t0 + kTile;
        if (tn < t_end) {
            const int ntn = (int)min((int64_t)kTile, t_end - tn);
            nB.load(a.Bm, a.ld_B, row0 + tn, ntn, N);
            if (OUT) nC.load(a.Cm, a.ld_C, row0 + tn, ntn, N);
        }
        if (tn <= t_end && tn + kAhead <= a.L) {
#pragma unroll 1
            for (int js = 0; js < kTile; js += kSeg) segment(std::true_type(), t0 + js, js, buf);
        } else {
#pragma unroll 1
            for (int js = 0; js < kTile; js += kSeg) segment(std::false_type(), t0 + js, js, buf);
        }
        /* the other tile was last read before the previous barrier */
        nB.store(sB[buf ^ 1]);
        if (OUT) nC.store(sC[buf ^ 1]);
        __syncthreads();
    }
    if (!OUT) {
        if (valid) write_record(a.sum + (b * a.nc + c) * (N + 1) * E + e, N, E, h, dts);
        return;
    }
    if (a.hT && valid && t_end == a.L) {
#pragma unroll
        for (int s = 0; s < kStates; s++)
            if (s < N) a.hT[(b * E + e) * N + s] = h[s];
    }
}

/* The backward's reverse summaries: chunk c in [1, nc) right to left from
 * zero, g_s <- exp(dt A_s) (dys Cm_s + g_s), dys = dy silu(z), and the
 * chunk's sum of dt, into the record (selective_scan_bwd.cu's
 * reverse_summary_kernel, bit for bit). */
template <typename T>
__global__ void __launch_bounds__(kThreads, MD_SCAN_CHAN_SUM_MINB) chan_reverse_summary_kernel(ChanArgs<T> a)
{
    __shared__ __align__(16) float sC[2][kTile][kStates];
    const int64_t ncb = (a.E + kThreads - 1) / kThreads;
    const int64_t cb = blockIdx.x % ncb, rest = blockIdx.x / ncb;
    const int64_t c = 1 + rest % (a.nc - 1), b = rest / (a.nc - 1), N = a.N, E = a.E;
    const int64_t t_begin = c * MD_SCAN_CHUNK, row0 = b * a.L + t_begin;
    const int len = (int)min(a.L - t_begin, (int64_t)MD_SCAN_CHUNK), ntile = (len + kTile - 1) / kTile;
    const int64_t e = cb * kThreads + threadIdx.x;
    const bool valid = e < E;
    const int64_t ec = valid ? e : 0;

    float A2[kStates], g[kStates];
#pragma unroll
    for (int s = 0; s < kStates; s++) {
        A2[s] = valid && s < N ? -expf(__ldg(a.A_log + ec * N + s)) * MD_LOG2E : 0.f;
        g[s] = 0.f;
    }
    const float bias = valid ? __ldg(a.dt_bias + ec) : 0.f;

    /* from the last tile's top step down; ring[j % kAhead] holds step j's
     * inputs (j from the chunk's start). Loads ahead below the chunk's
     * start read the chunk before's rows (c >= 1), unused. */
    const int j_top = ntile * kTile - 1;
    Cursor<T, -1> cur = {a.delta + (row0 + j_top) * a.ld_delta + ec, a.dy + (row0 + j_top) * a.ld_dy + ec,
                         a.z + (row0 + j_top) * a.ld_z + ec, a.ld_delta, a.ld_dy, a.ld_z, true};
    StepIn<T> ring[kAhead];
#pragma unroll
    for (int k = 0; k < kAhead; k++) cur.load(ring[kAhead - 1 - k], j_top - k < len);   /* j_top % kAhead = kAhead - 1 */

    md_tile_ahead<T, kStates, kTile, kThreads> nC;   /* the tile before the current one */
    nC.load(a.Cm, a.ld_C, row0 + (ntile - 1) * kTile, len - (ntile - 1) * kTile, N);
    nC.store(sC[0]);
    __syncthreads();

    float dts[4] = {0.f, 0.f, 0.f, 0.f};
    /* A segment's kSeg steps from jt (from the chunk's start) down,
     * unrolled; FULL: all of them inside the chunk. */
    auto segment = [&](auto full, int jt, int js, int buf) {
        constexpr bool FULL = decltype(full)::value;
        float dtv[kSeg];
#pragma unroll
        for (int k = kSeg - 1; k >= 0; k--) {
            const int j = jt + k;
            const bool in = FULL || j < len;
            StepIn<T> &r = ring[k % kAhead];
            const float zz = md_from_raw(r.z);
            const float dt = md_softplus<true>(md_from_raw(r.d) + bias);
            const float dys = md_from_raw(r.x) * zz * md_sigmoid(zz);
            const float odt = in ? dt : 0.f, odys = in ? dys : 0.f;
            dtv[k] = odt;
            cur.load(r, FULL || j - kAhead < len);
            const float4 *Cv = reinterpret_cast<const float4 *>(&sC[buf][js + k][0]);
#pragma unroll
            for (int s4 = 0; s4 < kStates / 4; s4++) {
                const float4 cc = Cv[s4];
                const float cs[4] = {cc.x, cc.y, cc.z, cc.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int s = 4 * s4 + i;
                    g[s] = md_ex2(odt * A2[s]) * (odys * cs[i] + g[s]);
                }
            }
        }
        /* each lane summed its owned steps in step order, segment by segment */
#pragma unroll
        for (int p = 0; p < 4; p++) dts[p] = (dts[p] + dtv[kOwned * p]) + dtv[kOwned * p + 1];
    };
    int buf = 0;
    for (int tile = ntile - 1; tile >= 0; tile--, buf ^= 1) {
        if (tile > 0) nC.load(a.Cm, a.ld_C, row0 + (int64_t)(tile - 1) * kTile, kTile, N);
        if ((tile + 1) * kTile <= len) {
#pragma unroll 1
            for (int js = kTile - kSeg; js >= 0; js -= kSeg) segment(std::true_type(), tile * kTile + js, js, buf);
        } else {
#pragma unroll 1
            for (int js = kTile - kSeg; js >= 0; js -= kSeg) segment(std::false_type(), tile * kTile + js, js, buf);
        }
        nC.store(sC[buf ^ 1]);
        __syncthreads();
    }
    if (valid) write_record(a.sum + (b * a.nc + c) * (N + 1) * E + e, N, E, g, dts);
}

template <typename T>
ChanArgs<T> chan_args(const md_scan_args_t *a, const md_scan_layout_t *w, const float *st_in, float *sum)
{
    ChanArgs<T> f;
    f.u = (const T *)a->u, f.delta = (const T *)a->delta, f.z = (const T *)a->z, f.dy = (const T *)a->dy;
    f.Bm = (const T *)a->Bm, f.Cm = (const T *)a->Cm;
    f.ld_u = a->ld_u, f.ld_delta = a->ld_delta, f.ld_z = a->ld_z, f.ld_dy = a->ld_dy;
    f.ld_B = a->ld_B, f.ld_C = a->ld_C;
    f.A_log = a->A_log, f.D = a->D, f.dt_bias = a->dt_bias, f.h0 = a->h0, f.st_in = st_in;
    f.y = (T *)a->y, f.ld_y = a->ld_y;
    f.seg = a->seg_states, f.hT = a->hT, f.sum = sum;
    f.B = w->B, f.L = w->L, f.E = w->E, f.N = w->N, f.nc = w->nc;
    f.nsl = md_scan_seg_count(w->L, w->N);
    return f;
}

unsigned chan_blocks(const md_scan_layout_t *w, int64_t ranges)
{
    return (unsigned)(w->B * ranges * ((w->E + kThreads - 1) / kThreads));
}

template <typename T>
cudaError_t chan_fwd_t(const md_scan_args_t *a, const md_scan_layout_t *w, int summary, const float *st_in,
                       float *sum, cudaStream_t s)
{
    const ChanArgs<T> f = chan_args<T>(a, w, st_in, sum);
    if (summary) chan_fwd_kernel<T, CHAN_SUMMARY><<<chan_blocks(w, w->nc - 1), kThreads, 0, s>>>(f);
    else chan_fwd_kernel<T, CHAN_OUTPUT><<<chan_blocks(w, w->nc), kThreads, 0, s>>>(f);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

template <typename T>
cudaError_t chan_reverse_t(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum, cudaStream_t s)
{
    chan_reverse_summary_kernel<T><<<chan_blocks(w, w->nc - 1), kThreads, 0, s>>>(chan_args<T>(a, w, NULL, sum));
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

}  // namespace

cudaError_t md_scan_launch_chan_fwd(const md_scan_args_t *a, const md_scan_layout_t *w, int summary,
                                    const float *st_in, float *sum, cudaStream_t s)
{
    return a->dtype == MD_SCAN_BF16 ? chan_fwd_t<__nv_bfloat16>(a, w, summary, st_in, sum, s)
                                    : chan_fwd_t<float>(a, w, summary, st_in, sum, s);
}

cudaError_t md_scan_launch_chan_reverse_summary(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum,
                                                cudaStream_t s)
{
    return a->dtype == MD_SCAN_BF16 ? chan_reverse_t<__nv_bfloat16>(a, w, sum, s) : chan_reverse_t<float>(a, w, sum, s);
}
