/* The selective scan's forward on the GPU (see scan_api.h for the contract).
 *
 * One kernel, lane_fwd_kernel, does every training-forward walk (the walk is
 * a template parameter: an instance each) but the chunked ones at N <= 16,
 * which take a thread per channel (selective_scan_chan.cu). A channel gets
 * Q = NPAD/4 lanes of 4 states (md_lanes), a warp covers consecutive
 * channels, so the loads of u, delta, z and the stores of y are coalesced;
 * Bm and Cm rows are shared by every channel and go through shared memory.
 * A block walks kThreads/Q channels of one sequence over a range of chunks:
 *   WHOLE    all of it from h0 (md_scan_pass_t WHOLE): y, and every
 *            chunk-start state as it passes, so no summaries and no
 *            propagation are needed;
 *   SUMMARY  chunk c in [0, nc-1) from zero: its final state and its sum of
 *            dt (the chunk's decay is exp(A * sum), A being constant in time);
 *   OUTPUT   chunk c from its true start state: y.
 * WHOLE and OUTPUT also leave every segment's start state in a.seg when it
 * is given (scan_api.h's seg_states).
 * L > MD_SCAN_CHUNK under CHUNKED runs SUMMARY, a propagation of the
 * chunk-start states (two levels, so that both the serial depth and the
 * thread count stay near sqrt(nc)) and OUTPUT; a single chunk runs OUTPUT.
 *
 * Forward only (neither states nor workspace given: inference) goes to
 * selective_scan_infer.cu, which walks each sequence whole.
 */
#include "selective_scan.cuh"

namespace {

constexpr int kThreads = 128;   /* threads per block of lane_fwd_kernel */
constexpr int kTile = 32;       /* steps of Bm/Cm staged in shared memory at once */

/* What the forward-style kernels read, unpacked from md_scan_args_t. */
template <typename T>
struct FwdArgs {
    const T *u, *delta, *z, *Bm, *Cm;
    int64_t ld_u, ld_delta, ld_z, ld_B, ld_C;
    const float *A_log, *D, *dt_bias;
    T *y;
    int64_t ld_y;
    float *seg;   /* seg_states (scan_api.h), may be NULL */
    int64_t B, L, E, N, nc, nsl;
};

template <typename T>
FwdArgs<T> unpack(const md_scan_args_t *a, int64_t nc)
{
    FwdArgs<T> f;
    f.u = (const T *)a->u, f.delta = (const T *)a->delta, f.z = (const T *)a->z;
    f.Bm = (const T *)a->Bm, f.Cm = (const T *)a->Cm;
    f.ld_u = a->ld_u, f.ld_delta = a->ld_delta, f.ld_z = a->ld_z, f.ld_B = a->ld_B, f.ld_C = a->ld_C;
    f.A_log = a->A_log, f.D = a->D, f.dt_bias = a->dt_bias;
    f.y = (T *)a->y, f.ld_y = a->ld_y;
    f.seg = a->seg_states;
    f.B = a->batch, f.L = a->len, f.E = a->d_inner, f.N = a->d_state, f.nc = nc;
    f.nsl = md_scan_seg_count(f.L, f.N);
    return f;
}

/* What a block of lane_fwd_kernel walks (see the top of this file); a
 * template parameter, so that each walk compiles to only its own work (with
 * the walk known only at run time, the forward ran 7% slower on S1 and S4
 * and 15% on the chunked shapes: NOTES-scan.md v6 call 4). */
enum LaneMode { LANE_WHOLE, LANE_SUMMARY, LANE_OUTPUT };

/* Blocks an SM must hold, i.e. the registers a thread may use (65536 /
 * (kThreads x this); ptxas -v at N = 16). WHOLE: 4, since the one-wave
 * grids it is for (S1, S4: 512 blocks on 132 SMs) take two waves at 3,
 * which is where ptxas puts it unbounded (140 registers; 110 bounded, no
 * spills, NOTES-scan.md v6 call 4; 127 since v8). OUTPUT and SUMMARY: 6
 * (80 registers, spills only outside the segment loop), measured 2% (OUTPUT
 * against 5) and 4-5% (SUMMARY against 4) faster on S2, S3, S5 than
 * fewer blocks with more registers (NOTES-scan.md v8). At N = 64: 3, the
 * residency it had unbounded before v8 (SUMMARY took 174 registers
 * unbounded after), bounded without spills. */
template <LaneMode MODE, int NPAD>
constexpr int lane_min_blocks()
{
    return NPAD == 64 ? 3 : MODE == LANE_WHOLE ? 4 : 6;
}

/* The training forward's walks (modes above): a block of kThreads lanes
 * covers kThreads/Q channels of one sequence, the lanes laid out as
 * md_lanes<NPAD>. Each lane loads its owned steps of u, delta, z one
 * segment ahead, and the block the next tile's Bm/Cm rows one tile ahead
 * (into registers in storage form, see md_raw, so that the loads' latency
 * overlaps the work before; two shared tiles, one barrier a tile). Each
 * lane sums C.h over its 4 states per step, and a transposing reduction
 * leaves each lane the finished sums of its owned steps.
 *   st_out  WHOLE: every chunk's start state (may be NULL)
 *   st_in   OUTPUT: the chunks' start states (NULL: h0, else zero)
 *   sum     SUMMARY: the chunk records (selective_scan.cuh)
 * y is written unless a.y is NULL or the mode is SUMMARY; hT (may be NULL)
 * after the last step, by WHOLE and by OUTPUT's last chunk. */
template <typename T, int NPAD, LaneMode MODE>
__global__ void __launch_bounds__(kThreads, lane_min_blocks<MODE, NPAD>())
    lane_fwd_kernel(FwdArgs<T> a, float *st_out, const float *st_in, const float *h0, float *hT, float *sum)
{
    using P = md_lanes<NPAD>;
    using raw = typename md_raw<T>::type;
    constexpr int Q = P::Q, TS = P::TS, R = P::R, CPB = kThreads / Q, G = 32 / Q;
    static_assert(kTile % TS == 0 && MD_SCAN_CHUNK % TS == 0, "segments must not straddle tiles or chunks");
    __shared__ __align__(16) float sB[2][kTile][NPAD];
    __shared__ __align__(16) float sC[2][kTile][NPAD];
    /* How a segment's per-channel step values (dt, dt u) reach the
     * channel's lanes from the lane that owns the step: through shared
     * memory, sv[warp][step][channel of the warp], one LDS.64 a step, or by
     * two shuffles a step from the owner lane. The same instruction count;
     * measured, shared memory is 2% faster in OUTPUT and SUMMARY (S2, S3,
     * S5), the shuffles 2-4% in WHOLE (S1, S4) (NOTES-scan.md, v8). */
    constexpr bool SV = MODE != LANE_WHOLE;
    __shared__ __align__(8) float2 sv[SV ? kThreads / 32 : 1][TS][G];
    const int64_t ncb = (a.E + CPB - 1) / CPB, N = a.N, E = a.E;
    const int64_t cb = blockIdx.x % ncb, rest = blockIdx.x / ncb;
    const int64_t nrange = MODE == LANE_WHOLE ? 1 : MODE == LANE_SUMMARY ? a.nc - 1 : a.nc;
    const int64_t b = rest / nrange, c0 = MODE == LANE_WHOLE ? 0 : rest % nrange;
    const int64_t t_begin = c0 * MD_SCAN_CHUNK, t_end = MODE == LANE_WHOLE ? a.L : min(a.L, t_begin + MD_SCAN_CHUNK);
    const int tid = threadIdx.x, lane = tid & 31, q = tid % Q, cw = lane / Q;
    const int64_t e = cb * CPB + tid / Q;
    const bool valid = e < E, want_y = a.y != NULL && MODE != LANE_SUMMARY;
    const int64_t ec = valid ? e : 0, row0 = b * a.L;

    /* the tile after the current one; the first is loaded and stored first */
    md_tile_ahead<T, NPAD, kTile, kThreads> nB, nC;
    {
        const int nt = (int)min((int64_t)kTile, t_end - t_begin);
        nB.load(a.Bm, a.ld_B, row0 + t_begin, nt, N);
        if (want_y) nC.load(a.Cm, a.ld_C, row0 + t_begin, nt, N);
    }

    /* the owned steps of the next segment */
    raw nu[R], nd[R], nz[R];
#pragma unroll
    for (int k = 0; k < R; k++) {
        const int64_t t = t_begin + q * R + k;
        const bool ok = valid && t < t_end;
        nu[k] = ok ? md_ld_raw(a.u + (row0 + t) * a.ld_u + ec) : 0;
        nd[k] = ok ? md_ld_raw(a.delta + (row0 + t) * a.ld_delta + ec) : 0;
        nz[k] = ok && want_y ? md_ld_raw(a.z + (row0 + t) * a.ld_z + ec) : 0;
    }

    float A2[4], h[4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const int64_t n = q * 4 + s;
        const bool ok = valid && n < N;
        A2[s] = ok ? -expf(__ldg(a.A_log + ec * N + n)) * MD_LOG2E : 0.f;
        float hv = 0.f;
        if (ok && MODE == LANE_OUTPUT && st_in) hv = st_in[((b * a.nc + c0) * N + n) * E + e];
        else if (ok && MODE != LANE_SUMMARY && h0) hv = h0[(b * E + e) * N + n];
        h[s] = hv;
    }
    const float bias = valid ? __ldg(a.dt_bias + ec) : 0.f;
    const float Dv = valid ? __ldg(a.D + ec) : 0.f;
    float dt_sum = 0.f;   /* over the lane's owned steps, for SUMMARY */
    /* this channel's step values in sv (SV): read at step j, written at owned step k */
    const float2 *const sv_rd = &sv[tid / 32][0][cw];
    float2 *const sv_wr = &sv[tid / 32][q * R][cw];

    /* the lane's owned rows of the segment after the current one (its loads
     * ahead) and of the current one (y), a segment further each time: the
     * 64-bit row products once a thread, not per load (NOTES-scan.md, v8) */
    const int64_t own0 = row0 + t_begin + q * R;
    const int64_t su = TS * a.ld_u, sd = TS * a.ld_delta, sz = TS * a.ld_z, sy = TS * a.ld_y;
    const T *pu = a.u + (own0 + TS) * a.ld_u + ec, *pd = a.delta + (own0 + TS) * a.ld_delta + ec;
    const T *pz = a.z + (own0 + TS) * a.ld_z + ec;
    T *py = a.y + own0 * a.ld_y + ec;
    /* this lane's slot of the segment states, a segment further each time
     * (the index's 64-bit products once, not per segment) */
    const bool want_seg = MODE != LANE_SUMMARY && a.seg != NULL && valid;
    float4 *pseg = want_seg ? reinterpret_cast<float4 *>(a.seg) + md_seg_state<NPAD>(a.nsl, E, b, t_begin, e, q) : NULL;
    const int64_t sseg = E * (NPAD / 4);

    int buf = 1;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += TS, pu += su, pd += sd, pz += sz, py += sy) {
        const int jt = (int)(t0 % kTile);
        if (jt == 0) {
            /* buf ^ 1 was last read two tiles ago, before the barrier of the tile before */
            buf ^= 1;
            nB.store(sB[buf]);
            if (want_y) nC.store(sC[buf]);
            __syncthreads();
            const int64_t tn = t0 + kTile;
            if (tn < t_end) {
                const int nt = (int)min((int64_t)kTile, t_end - tn);
                nB.load(a.Bm, a.ld_B, row0 + tn, nt, N);
                if (want_y) nC.load(a.Cm, a.ld_C, row0 + tn, nt, N);
            }
        }
        if (want_seg) {
            /* streaming (evict-first): read back only by the backward. ncu
             * found the plain store waiting on 11% of the walk's samples;
             * streamed, the S1 forward measured 0-2% faster (NOTES-scan.md v26) */
            __stcs(pseg, make_float4(h[0], h[1], h[2], h[3]));
            pseg += sseg;
        }
        if (MODE == LANE_WHOLE && st_out && t0 % MD_SCAN_CHUNK == 0) {
            float *rec = st_out + ((b * a.nc + t0 / MD_SCAN_CHUNK) * N) * E + e;
#pragma unroll
            for (int s = 0; s < 4; s++)
                if (valid && q * 4 + s < N) rec[(q * 4 + s) * E] = h[s];
        }
        /* steps of this segment (nv) and of the next (<= 0 after the last) */
        const int left = (int)min((int64_t)2 * TS, t_end - t0), nv = min(TS, left), nv_next = left - TS;

        /* the owned steps' per-channel values (to sv if SV), and the loads of
         * the next segment's */
        float o_u[R], o_gate[R], o_dt[R], o_dtu[R];
        if (SV) __syncwarp();   /* the segment before's reads of sv are done */
#pragma unroll
        for (int k = 0; k < R; k++) {
            const float uu = md_from_raw(nu[k]), zz = md_from_raw(nz[k]);
            /* 0 past the sequence's end, where the steps below run too
             * (branch-free): a decay of 1 and no input leave h unchanged */
            const float sp = md_softplus<false>(md_from_raw(nd[k]) + bias), dt = q * R + k < nv ? sp : 0.f;
            o_dt[k] = dt, o_dtu[k] = dt * uu;
            if (SV) sv_wr[k * G] = make_float2(o_dt[k], o_dtu[k]);
            o_u[k] = uu;
            o_gate[k] = zz * md_sigmoid(zz);
            dt_sum += dt;
            const bool ok = valid && q * R + k < nv_next;
            nu[k] = ok ? md_ld_raw(pu + k * a.ld_u) : 0;
            nd[k] = ok ? md_ld_raw(pd + k * a.ld_delta) : 0;
            nz[k] = ok && want_y ? md_ld_raw(pz + k * a.ld_z) : 0;
        }
        if (SV) __syncwarp();   /* sv written */

        /* Every step of the segment, branch-free: past the sequence's end
         * dt = dt u = 0 and the Bm/Cm rows are 0 (md_tile_ahead), so h
         * passes unchanged and ys, never stored, is all that they touch. */
        float ys[TS];
#pragma unroll
        for (int j = 0; j < TS; j++) {
            float2 dv;
            if (SV) {
                dv = sv_rd[j * G];
            } else {
                const int src = md_owner<NPAD>(lane, j);
                dv.x = __shfl_sync(0xffffffffu, o_dt[j % R], src);
                dv.y = __shfl_sync(0xffffffffu, o_dtu[j % R], src);
            }
            const float4 Bv = *reinterpret_cast<const float4 *>(&sB[buf][jt + j][q * 4]);
            const float4 Cv = *reinterpret_cast<const float4 *>(&sC[buf][jt + j][q * 4]);
            const float bs[4] = {Bv.x, Bv.y, Bv.z, Bv.w}, cs[4] = {Cv.x, Cv.y, Cv.z, Cv.w};
            float av[4], acc = 0.f;
            md_scan_step4(h, av, dv.x, dv.y, bs, A2);
#pragma unroll
            for (int s = 0; s < 4; s++) acc = fmaf(cs[s], h[s], acc);
            ys[j] = acc;
        }
        if (!want_y) continue;
        md_transpose_reduce<TS, md_ilog2(Q)>(ys, lane, Q / 2);
#pragma unroll
        for (int k = 0; k < R; k++)
            if (valid && q * R + k < nv) md_st(py + k * a.ld_y, (ys[k] + Dv * o_u[k]) * o_gate[k]);
    }
    if (MODE == LANE_SUMMARY) {
        md_write_summary<Q>(sum + (b * a.nc + c0) * (N + 1) * E + ec, N, E, q, valid, h, dt_sum);
        return;
    }
    if (hT && valid && t_end == a.L) {
#pragma unroll
        for (int s = 0; s < 4; s++)
            if (q * 4 + s < N) hT[(b * E + e) * N + q * 4 + s] = h[s];
    }
}

/* ---- propagation of the chunk-start states ----
 * Chunk k in the order of travel is c = k forward and nc-1-k in reverse;
 * group g holds travel positions [g*G, g*G + G). */

struct PropArgs {
    const float *A_log, *sum, *init;
    float *st, *gsum, *gstart;
    int64_t B, E, N, nc, G, ng;
    int reverse;
};

/* Links a thread of the fill's level loads ahead of their use (its stores
 * of st keep the compiler from hoisting the loads itself). One channel a
 * thread, two ahead took the fill from 110 to 89 us a pass at (1, 256,
 * 2^20) (the groups' level was slower so: NOTES-scan.md v20); with four
 * channels a thread (MD_SCAN_PROP_VEC) the four chains are in flight
 * already, and one ahead was as fast as two (82 us; v23). */
#ifndef MD_SCAN_PROP_AHEAD
#define MD_SCAN_PROP_AHEAD 1
#endif
#ifndef MD_SCAN_PROP_VEC
#define MD_SCAN_PROP_VEC 4   /* channels a thread of the groups' and fill's levels, where E % 4 == 0 */
#endif

/* Chunk k's record along the direction of travel (from the sequence's end
 * when reverse): the returned pointer + k * step. */
__device__ __forceinline__ const float *travel_rec(const PropArgs &p, int64_t b, int64_t e, int64_t *step)
{
    const int64_t rs = (p.N + 1) * p.E;
    *step = p.reverse ? -rs : rs;
    return p.sum + (b * p.nc + (p.reverse ? p.nc - 1 : 0)) * rs + e;
}

/* V consecutive channels' values of a record row (V = 1 or 4; at 4, E % 4
 * == 0 and the buffers 16-byte aligned, so a row's four are). Four
 * channels a thread gave the groups' and the fill's levels four chains in
 * flight and a quarter of the load instructions (NOTES-scan.md v23). */
template <int V>
struct ChanVals {
    float v[V];
};
template <int V, bool CG>
__device__ __forceinline__ ChanVals<V> ld_chans(const float *p)
{
    ChanVals<V> r;
    if constexpr (V == 4) {
        const float4 x = CG ? __ldcg(reinterpret_cast<const float4 *>(p)) : *reinterpret_cast<const float4 *>(p);
        r.v[0] = x.x, r.v[1] = x.y, r.v[2] = x.z, r.v[3] = x.w;
    } else {
        r.v[0] = CG ? __ldcg(p) : *p;
    }
    return r;
}
template <int V>
__device__ __forceinline__ void st_chans(float *p, const float (&v)[V])
{
    if constexpr (V == 4) *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else *p = v[0];
}

/* Level 1: each group's combined effect (all groups but the last
 * travelled), V channels a thread. */
template <int V>
__global__ void prop_groups_kernel(PropArgs p)
{
    const int64_t EV = p.E / V;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t total = p.B * (p.ng - 1) * p.N * EV;
    if (i >= total) return;
    const int64_t e = i % EV * V, n = (i / EV) % p.N, g = (i / (EV * p.N)) % (p.ng - 1), b = i / (EV * p.N * (p.ng - 1));
    float A2[V], H[V], S[V];
#pragma unroll
    for (int v = 0; v < V; v++) A2[v] = -expf(__ldg(p.A_log + (e + v) * p.N + n)) * MD_LOG2E, H[v] = 0.f, S[v] = 0.f;
    int64_t step;
    const float *rec = travel_rec(p, b, e, &step);
    const int64_t k0 = g * p.G, k1 = min(p.nc, (g + 1) * p.G);
    rec += k0 * step;
    for (int64_t k = k0; k < k1; k++, rec += step) {
        const ChanVals<V> Sc = ld_chans<V, false>(rec + p.N * p.E), X = ld_chans<V, false>(rec + n * p.E);
#pragma unroll
        for (int v = 0; v < V; v++) {
            H[v] = md_ex2(A2[v] * Sc.v[v]) * H[v] + X.v[v];
            S[v] += Sc.v[v];
        }
    }
    float *out = p.gsum + (b * p.ng + g) * (p.N + 1) * p.E + e;
    st_chans<V>(out + n * p.E, H);
    if (n == 0) st_chans<V>(out + p.N * p.E, S);
}

/* Level 2: the state entering each group, serially over the groups. Few
 * threads (B N E) walk the whole chain, so each load's latency is paid in
 * turn unless the loads run ahead: the links' records are loaded LINKS at
 * a time before they are applied (the stores of gstart kept the compiler
 * from hoisting them). Long chains (ng ~ 91 at L = 2^20) took 38 us a
 * pass one link at a time, 12 us so (NOTES-scan.md, v18 and v19). */
__global__ void prop_serial_kernel(PropArgs p)
{
    constexpr int LINKS = 8;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.B * p.N * p.E) return;
    const int64_t e = i % p.E, n = (i / p.E) % p.N, b = i / (p.E * p.N);
    const float A2 = -expf(__ldg(p.A_log + e * p.N + n)) * MD_LOG2E;
    float H = p.init ? p.init[(b * p.E + e) * p.N + n] : 0.f;
    const int64_t links = p.ng - 1;   /* the last group's record is not needed */
    const int64_t rs = (p.N + 1) * p.E;
    const float *rec = p.gsum + b * p.ng * rs + e;
    float *out = p.gstart + (b * p.ng * p.N + n) * p.E + e;
    for (int64_t g0 = 0; g0 < links; g0 += LINKS, rec += LINKS * rs) {
        float S[LINKS], X[LINKS];
#pragma unroll
        for (int k = 0; k < LINKS; k++) {
            const bool ok = g0 + k < links;
            S[k] = ok ? __ldcg(rec + k * rs + p.N * p.E) : 0.f;
            X[k] = ok ? __ldcg(rec + k * rs + n * p.E) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < LINKS; k++) {
            if (g0 + k >= links) break;
            out[(g0 + k) * p.N * p.E] = H;
            H = md_ex2(A2 * S[k]) * H + X[k];
        }
    }
    out[links * p.N * p.E] = H;
}

/* Level 3: every chunk's start state inside each group, V channels a
 * thread. */
template <int V>
__global__ void prop_fill_kernel(PropArgs p)
{
    constexpr int K = MD_SCAN_PROP_AHEAD;
    const int64_t EV = p.E / V;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.B * p.ng * p.N * EV) return;
    const int64_t e = i % EV * V, n = (i / EV) % p.N, g = (i / (EV * p.N)) % p.ng, b = i / (EV * p.N * p.ng);
    float A2[V], H[V];
    const ChanVals<V> H0 = ld_chans<V, false>(p.gstart + ((b * p.ng + g) * p.N + n) * p.E + e);
#pragma unroll
    for (int v = 0; v < V; v++) A2[v] = -expf(__ldg(p.A_log + (e + v) * p.N + n)) * MD_LOG2E, H[v] = H0.v[v];
    int64_t step;
    const float *rec = travel_rec(p, b, e, &step);
    /* st's entry of chunk k travelled: the record's offset less the sum's row */
    const int64_t ss = p.reverse ? -p.N * p.E : p.N * p.E;
    float *out = p.st + (b * p.nc + (p.reverse ? p.nc - 1 : 0)) * p.N * p.E + n * p.E + e;
    const int64_t k0 = g * p.G, k1 = min(p.nc, (g + 1) * p.G), xo = n * p.E, so = p.N * p.E;
    rec += k0 * step, out += k0 * ss;
#pragma unroll 1
    for (int64_t k = k0; k < k1; k += K, rec += K * step, out += K * ss) {
        ChanVals<V> Sc[K], X[K];
#pragma unroll
        for (int u = 0; u < K; u++) {
            /* the last chunk's record is not needed (nor kept) */
            if (k + u + 1 < p.nc && k + u < k1) {
                Sc[u] = ld_chans<V, true>(rec + u * step + so), X[u] = ld_chans<V, true>(rec + u * step + xo);
            } else {
#pragma unroll
                for (int v = 0; v < V; v++) Sc[u].v[v] = 0.f, X[u].v[v] = 0.f;
            }
        }
#pragma unroll
        for (int u = 0; u < K; u++) {
            if (k + u >= k1) break;
            st_chans<V>(out + u * ss, H);
#pragma unroll
            for (int v = 0; v < V; v++) H[v] = md_ex2(A2[v] * Sc[u].v[v]) * H[v] + X[u].v[v];
        }
    }
}

unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

/* Launches lane_fwd_kernel<T, NPAD, MODE> over every (sequence, channel
 * block) and, but for WHOLE, every chunk of the mode's range. */
template <typename T, int NPAD, LaneMode MODE>
cudaError_t lane_launch(const md_scan_args_t *a, const md_scan_layout_t *w, float *st_out, const float *st_in,
                        float *sum, cudaStream_t s)
{
    constexpr int CPB = kThreads / md_lanes<NPAD>::Q;
    const int64_t ranges = MODE == LANE_WHOLE ? 1 : MODE == LANE_SUMMARY ? w->nc - 1 : w->nc;
    const int64_t blocks = w->B * ranges * ((w->E + CPB - 1) / CPB);
    lane_fwd_kernel<T, NPAD, MODE><<<(unsigned)blocks, kThreads, 0, s>>>(unpack<T>(a, w->nc), st_out, st_in, a->h0,
                                                                         a->hT, sum);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

/* The walk of `mode`; at N <= 16 the chunked ones take a thread per channel
 * (selective_scan_chan.cu), so that their lane instances are not built. */
template <typename T, int NPAD>
cudaError_t lane_fwd_t(const md_scan_args_t *a, const md_scan_layout_t *w, LaneMode mode, float *st_out,
                       const float *st_in, float *sum, cudaStream_t s)
{
    if (mode == LANE_WHOLE) return lane_launch<T, NPAD, LANE_WHOLE>(a, w, st_out, st_in, sum, s);
    if constexpr (NPAD == 16) {
        return md_scan_launch_chan_fwd(a, w, mode == LANE_SUMMARY, st_in, sum, s);
    } else {
        return mode == LANE_SUMMARY ? lane_launch<T, NPAD, LANE_SUMMARY>(a, w, st_out, st_in, sum, s)
                                    : lane_launch<T, NPAD, LANE_OUTPUT>(a, w, st_out, st_in, sum, s);
    }
}

cudaError_t lane_fwd(const md_scan_args_t *a, const md_scan_layout_t *w, LaneMode mode, float *st_out,
                     const float *st_in, float *sum, cudaStream_t s)
{
    return md_scan_npad_switch(w->N, [&](auto np) {
        constexpr int NPAD = decltype(np)::value;
        return a->dtype == MD_SCAN_BF16 ? lane_fwd_t<__nv_bfloat16, NPAD>(a, w, mode, st_out, st_in, sum, s)
                                        : lane_fwd_t<float, NPAD>(a, w, mode, st_out, st_in, sum, s);
    });
}

__global__ void fill_kernel(void *p, int is_bf16, int64_t n, uint64_t seed, float lo, float hi)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t x = seed ^ (uint64_t)i * 0x9e3779b97f4a7c15ull;
        x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27, x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        const float v = lo + (hi - lo) * (float)(x >> 40) * (1.0f / 16777216.0f);
        if (is_bf16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
        else ((float *)p)[i] = v;
    }
}

}  // namespace

cudaError_t md_scan_launch_chunk_summary(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum,
                                         cudaStream_t s)
{
    return lane_fwd(a, w, LANE_SUMMARY, NULL, NULL, sum, s);
}

cudaError_t md_scan_launch_whole_fwd(const md_scan_args_t *a, const md_scan_layout_t *w, float *st, cudaStream_t s)
{
    return lane_fwd(a, w, LANE_WHOLE, st, NULL, NULL, s);
}

cudaError_t md_scan_launch_propagate(const md_scan_layout_t *w, const float *A_log, const float *sum,
                                     const float *init, float *st, float *gsum, float *gstart, int reverse,
                                     cudaStream_t s)
{
    PropArgs p;
    p.A_log = A_log, p.sum = sum, p.init = init, p.st = st, p.gsum = gsum, p.gstart = gstart;
    p.B = w->B, p.E = w->E, p.N = w->N, p.nc = w->nc, p.G = w->G, p.ng = w->ng, p.reverse = reverse;
    const int th = 256;
    const bool v4 = MD_SCAN_PROP_VEC == 4 && p.E % 4 == 0 && md_aligned16(sum) && md_aligned16(st) &&
                    md_aligned16(gsum) && md_aligned16(gstart);
    const int64_t ev = v4 ? p.E / 4 : p.E;
    if (p.ng > 1) {
        auto groups = v4 ? prop_groups_kernel<4> : prop_groups_kernel<1>;
        groups<<<blocks_for(p.B * (p.ng - 1) * p.N * ev, th), th, 0, s>>>(p);
        MD_CU_LAUNCHED();
    }
    prop_serial_kernel<<<blocks_for(p.B * p.N * p.E, th), th, 0, s>>>(p);
    MD_CU_LAUNCHED();
    auto fill = v4 ? prop_fill_kernel<4> : prop_fill_kernel<1>;
    fill<<<blocks_for(p.B * p.ng * p.N * ev, th), th, 0, s>>>(p);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

static int md_scan_sizes_ok(int64_t B, int64_t L, int64_t E, int64_t N)
{
    return B >= 1 && L >= 1 && E >= 1 && N >= 1 && N <= MD_SCAN_MAX_STATE;
}

size_t md_scan_states_bytes(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    if (!md_scan_sizes_ok(batch, len, d_inner, d_state)) return 0;
    md_scan_layout_t w = md_scan_layout(batch, len, d_inner, d_state);
    return w.nc > 1 ? sizeof(float) * (size_t)(w.B * w.nc * w.N * w.E) : 0;
}

size_t md_scan_seg_states_bytes(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    if (!md_scan_sizes_ok(batch, len, d_inner, d_state)) return 0;
    return sizeof(float) * (size_t)(batch * md_scan_seg_count(len, d_state) * d_inner * md_scan_npad(d_state));
}

size_t md_scan_fwd_workspace(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    if (!md_scan_sizes_ok(batch, len, d_inner, d_state)) return 0;
    return md_scan_layout(batch, len, d_inner, d_state).fwd_bytes;
}

cudaError_t md_scan_fwd(const md_scan_args_t *a, cudaStream_t s)
{
    if (!a || !md_scan_sizes_ok(a->batch, a->len, a->d_inner, a->d_state)) return cudaErrorInvalidValue;
    if (a->dtype != MD_SCAN_F32 && a->dtype != MD_SCAN_BF16) return cudaErrorInvalidValue;
    const int infer = !a->states && !a->workspace;
    if (!a->u || !a->z || !a->Bm || !a->Cm || !a->A_log || !a->D || !a->dt_bias || (!a->y && infer))
        return cudaErrorInvalidValue;
    const int64_t E = a->d_inner, N = a->d_state;
    if (a->ld_u < E || a->ld_z < E || (a->y && a->ld_y < E) || a->ld_B < N || a->ld_C < N)
        return cudaErrorInvalidValue;
    if (a->delta ? a->ld_delta < E
                 : !infer || !a->dt_low || !a->dt_w || a->dt_rank < 1 || a->dt_rank > MD_SCAN_MAX_DT_RANK ||
                       a->ld_dt_low < a->dt_rank)
        return cudaErrorInvalidValue;
    if (infer && a->seg_states) return cudaErrorInvalidValue;   /* a training forward's */
    if (a->seg_states && !md_aligned16(a->seg_states)) return cudaErrorInvalidValue;   /* stored 16 bytes at a time */
    if (infer) return md_scan_fwd_infer(a, s);
    md_scan_layout_t w = md_scan_layout(a->batch, a->len, E, N);
    const float *st = NULL;
    if (w.nc > 1 && md_scan_pass_whole(a)) {
        /* given a workspace and no states, the states go to its start, as below */
        float *states = a->states ? a->states : a->workspace ? (float *)((char *)a->workspace + w.states) : NULL;
        return md_scan_launch_whole_fwd(a, &w, states, s);
    }
    if (w.nc > 1) {
        if (!a->workspace || a->workspace_bytes < w.fwd_bytes) return cudaErrorInvalidValue;
        char *ws = (char *)a->workspace;
        float *states = a->states ? a->states : (float *)(ws + w.states);
        float *sum = (float *)(ws + w.sum);
        MD_CU_TRY(md_scan_launch_chunk_summary(a, &w, sum, s));
        MD_CU_TRY(md_scan_launch_propagate(&w, a->A_log, sum, a->h0, states, (float *)(ws + w.gsum),
                                           (float *)(ws + w.gstart), 0, s));
        st = states;
    }
    /* the states alone: the output pass would write nothing */
    if (!a->y && !a->hT && !a->seg_states) return cudaSuccess;
    return lane_fwd(a, &w, LANE_OUTPUT, NULL, st, NULL, s);
}

cudaError_t md_scan_fill_uniform(void *p, md_scan_dtype_t dt, int64_t n, uint64_t seed, float lo, float hi,
                                 cudaStream_t s)
{
    if (n <= 0) return cudaSuccess;
    if (!p || (dt != MD_SCAN_F32 && dt != MD_SCAN_BF16)) return cudaErrorInvalidValue;
    const int th = 256;
    const int64_t want = (n + th - 1) / th;
    fill_kernel<<<(unsigned)(want < 65536 ? want : 65536), th, 0, s>>>(p, dt == MD_SCAN_BF16, n, seed, lo, hi);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}
