/* The selective scan's backward on the GPU (see scan_api.h for the contract).
 *
 * With g_t = d(loss)/d(h_t) . a_t carried right to left (a_t = exp(dt_t A)),
 *   dh_t   = dys_t Cm_t + g_{t+1},  dys_t = dy_t silu(z_t)
 * is a linear recurrence like the forward's, so long sequences use the same
 * chunked scheme: chunk summaries of the reverse recurrence from zero, a
 * reverse propagation of the carry entering each chunk, and a main pass per
 * chunk from the true start state and carry. Under md_scan_pass_t WHOLE a
 * main-pass block walks all chunks of its sequence right to left instead,
 * carrying g in registers: no reverse summaries, no propagation.
 *
 * The main pass (main_kernel) gives each channel Q = NPAD/4 lanes of 4
 * states each, so that a lane can hold a segment of TS steps of its states
 * (and decays) in registers. It sweeps the chunk forward once, keeping the
 * state at each segment start in shared memory, then walks the segments
 * backwards: recompute the segment's states into registers, then run the
 * reverse recurrence over them. Per-channel step values (dt, silu, ...) are
 * computed once by the lane that owns the step and reach the channel's
 * lanes through shared memory (a float4 a step, one LDS each: shuffles
 * took more instructions); the lane loads its owned steps' inputs one
 * segment ahead of their use in both phases, into registers in storage
 * form (md_raw). A segment's steps run branch-free, those past the
 * sequence's end with zero step values. The pass is bound by its
 * instruction count, so index arithmetic is done once a thread or a
 * segment, not per step (NOTES-scan.md, v6 and v7).
 *
 * Reductions, all in a fixed order (no atomics):
 *   dBm, dCm (a sum over channels per (b, t)): a transposing shuffle
 *     reduction inside the warp (each lane ends with one finished sum, 7
 *     shuffles for 32 sums over 8 channels), the warps' partials summed in
 *     shared memory, then the channel blocks' partials by dbc_reduce_kernel
 *     when E spans more than one block;
 *   dA_log, dD, ddt_bias (sums over batch and length): per (b, chunk)
 *     partials, summed by the two-stage colsum kernels.
 */
#include "mma_bf16.cuh"
#include "selective_scan.cuh"

namespace {

constexpr int kThreads = 128;   /* reverse-summary kernel */
constexpr int kTile = 32;       /* its steps of Cm staged in shared memory at once */

template <typename T>
struct BwdArgs {
    const T *u, *delta, *z, *Bm, *Cm, *dy;
    int64_t ld_u, ld_delta, ld_z, ld_B, ld_C, ld_dy;
    const float *A_log, *D, *dt_bias;
    T *du, *ddelta, *dz, *dBm, *dCm, *y;
    int64_t ld_du, ld_ddelta, ld_dz, ld_dB, ld_dC, ld_y;
    const float *seg;   /* seg_states (scan_api.h), may be NULL */
    int64_t B, L, E, N, nc, nsl;
};

template <typename T>
BwdArgs<T> unpack(const md_scan_args_t *a, int64_t nc)
{
    BwdArgs<T> f;
    f.u = (const T *)a->u, f.delta = (const T *)a->delta, f.z = (const T *)a->z;
    f.Bm = (const T *)a->Bm, f.Cm = (const T *)a->Cm, f.dy = (const T *)a->dy;
    f.ld_u = a->ld_u, f.ld_delta = a->ld_delta, f.ld_z = a->ld_z, f.ld_B = a->ld_B, f.ld_C = a->ld_C;
    f.ld_dy = a->ld_dy;
    f.A_log = a->A_log, f.D = a->D, f.dt_bias = a->dt_bias;
    f.du = (T *)a->du, f.ddelta = (T *)a->ddelta, f.dz = (T *)a->dz, f.dBm = (T *)a->dBm, f.dCm = (T *)a->dCm;
    f.ld_du = a->ld_du, f.ld_ddelta = a->ld_ddelta, f.ld_dz = a->ld_dz, f.ld_dB = a->ld_dB, f.ld_dC = a->ld_dC;
    f.y = (T *)a->y_out, f.ld_y = a->ld_y_out;
    f.seg = a->seg_states;
    f.B = a->batch, f.L = a->len, f.E = a->d_inner, f.N = a->d_state, f.nc = nc;
    f.nsl = md_scan_seg_count(f.L, f.N);
    return f;
}

/* ---- reverse chunk summaries: chunks 1..nc-1, carry to the left from zero ----
 * g_s <- exp(dt A_s) (dys C_s + g_s) over the chunk right to left, and the
 * chunk's sum of dt. The lanes are laid out as the forward's (md_lanes: Q
 * lanes of 4 states a channel, kThreads/Q channels a block); each lane
 * loads its owned steps of dy, z, delta one segment ahead and the block
 * the Cm tile before the current one a tile ahead (storage form, md_raw),
 * and the owners' dt and dys reach the channel's lanes by shuffles. */

template <typename T, int NPAD>
__global__ void __launch_bounds__(kThreads, 8) reverse_summary_kernel(BwdArgs<T> a, float *sum)
{
    using P = md_lanes<NPAD>;
    using raw = typename md_raw<T>::type;
    constexpr int Q = P::Q, TS = P::TS, R = P::R, CPB = kThreads / Q;
    static_assert(kTile % TS == 0, "segments must not straddle tiles");
    __shared__ __align__(16) float sC[2][kTile][NPAD];
    const int64_t ncb = (a.E + CPB - 1) / CPB, N = a.N, E = a.E;
    const int64_t cb = blockIdx.x % ncb, rest = blockIdx.x / ncb;
    const int64_t c = 1 + rest % (a.nc - 1), b = rest / (a.nc - 1);
    const int64_t t_begin = c * MD_SCAN_CHUNK, row0 = b * a.L + t_begin;
    const int len = (int)min(a.L - t_begin, (int64_t)MD_SCAN_CHUNK);
    const int nseg = (len + TS - 1) / TS, ntile = (len + kTile - 1) / kTile;
    const int tid = threadIdx.x, lane = tid & 31, q = tid % Q;
    const int64_t e = cb * CPB + tid / Q;
    const bool valid = e < E;
    const int64_t ec = valid ? e : 0;

    md_tile_ahead<T, NPAD, kTile, kThreads> nC;   /* the tile before the current one */
    nC.load(a.Cm, a.ld_C, row0 + (ntile - 1) * kTile, len - (ntile - 1) * kTile, N);
    raw ny[R], nz[R], nd[R];                      /* the owned steps of the next segment */
#pragma unroll
    for (int k = 0; k < R; k++) {
        const int j = (nseg - 1) * TS + q * R + k;
        const bool ok = valid && j < len;
        ny[k] = ok ? md_ld_raw(a.dy + (row0 + j) * a.ld_dy + ec) : 0;
        nz[k] = ok ? md_ld_raw(a.z + (row0 + j) * a.ld_z + ec) : 0;
        nd[k] = ok ? md_ld_raw(a.delta + (row0 + j) * a.ld_delta + ec) : 0;
    }

    float A2[4], g[4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const int64_t n = q * 4 + s;
        A2[s] = valid && n < N ? -expf(__ldg(a.A_log + ec * N + n)) * MD_LOG2E : 0.f;
        g[s] = 0.f;
    }
    const float bias = valid ? __ldg(a.dt_bias + ec) : 0.f;
    float dt_sum = 0.f;   /* over the lane's owned steps */

    /* The segment before's owned rows (always full), loaded a segment ahead:
     * pointers stepped back a segment each time, so that the 64-bit row
     * products are done once, not per segment (as the main pass's phase 1,
     * NOTES-scan.md v9 and v10). */
    const int64_t prev0 = row0 + (int64_t)(nseg - 2) * TS + q * R;
    const T *py = a.dy + prev0 * a.ld_dy + ec, *pz = a.z + prev0 * a.ld_z + ec;
    const T *pd = a.delta + prev0 * a.ld_delta + ec;
    /* this thread's first element of the tile before the current one's,
     * once the loop has stepped it back; its row product once, likewise */
    const int c_n = tid % NPAD;
    const bool c_ok = c_n < N;
    const int64_t cstep = (kThreads / NPAD) * a.ld_C;
    const T *pC = a.Cm + (row0 + (int64_t)(ntile - 2) * kTile + tid / NPAD) * a.ld_C + c_n;
    int buf = 1, tile = ntile;
    for (int seg = nseg - 1; seg >= 0; seg--, py -= TS * a.ld_dy, pz -= TS * a.ld_z, pd -= TS * a.ld_delta) {
        /* unsigned: seg >= 0, and the divisions by powers of two need no sign fix-ups */
        const unsigned j0 = (unsigned)seg * TS, jt = j0 % kTile;
        if ((int)(j0 / kTile) != tile) {
            /* buf ^ 1 was last read two tiles ago, before the barrier of the tile before */
            tile = (int)(j0 / kTile);
            buf ^= 1;
            nC.store(sC[buf]);
            __syncthreads();
            if (tile > 0) nC.load_full(pC, cstep, c_ok);
            pC -= kTile * a.ld_C;
        }
        const int nv = seg == nseg - 1 ? len - (nseg - 1) * TS : TS;
        float o_dt[R], o_dys[R];
#pragma unroll
        for (int k = 0; k < R; k++) {
            const float zz = md_from_raw(nz[k]);
            /* 0 past the sequence's end, where the steps below run too
             * (branch-free): av = 1 and dys = 0 leave g unchanged there.
             * Computed there too (their inputs are 0) and selected away,
             * so that no branch splits the owned steps' work. */
            const bool in = q * R + k < nv;
            const float dt = md_softplus<false>(md_from_raw(nd[k]) + bias);
            const float dys = md_from_raw(ny[k]) * zz * md_sigmoid(zz);
            o_dt[k] = in ? dt : 0.f;
            o_dys[k] = in ? dys : 0.f;
            dt_sum += o_dt[k];
            const bool ok = valid && seg > 0;
            ny[k] = ok ? md_ld_raw(py + k * a.ld_dy) : 0;
            nz[k] = ok ? md_ld_raw(pz + k * a.ld_z) : 0;
            nd[k] = ok ? md_ld_raw(pd + k * a.ld_delta) : 0;
        }
#pragma unroll
        for (int j = TS - 1; j >= 0; j--) {
            const int src = md_owner<NPAD>(lane, j);
            const float dt = __shfl_sync(0xffffffffu, o_dt[j % R], src);
            const float dys = __shfl_sync(0xffffffffu, o_dys[j % R], src);
            const float4 Cv = *reinterpret_cast<const float4 *>(&sC[buf][jt + j][q * 4]);
            const float cs[4] = {Cv.x, Cv.y, Cv.z, Cv.w};
#pragma unroll
            for (int s = 0; s < 4; s++) g[s] = md_ex2(dt * A2[s]) * (dys * cs[s] + g[s]);
        }
    }
    md_write_summary<Q>(sum + (b * a.nc + c) * (N + 1) * E + ec, N, E, q, valid, g, dt_sum);
}

/* ---- the main pass ---- */

/* md_scan_step4 with the step's Bm row (this lane's four entries) from
 * shared memory: phase 1's walk to the segment entries and phase 2's
 * recompute of a segment. */
__device__ __forceinline__ void advance4(float h[4], float av[4], float dt, float dtu, const float *B4,
                                         const float A2[4])
{
    const float4 Bv = *reinterpret_cast<const float4 *>(B4);
    const float bs[4] = {Bv.x, Bv.y, Bv.z, Bv.w};
    md_scan_step4(h, av, dt, dtu, bs, A2);
}

template <int NPAD>
struct MainCfg {
    static constexpr int Q = md_lanes<NPAD>::Q;    /* lanes per channel, of 4 states */
    static constexpr int NT = 256;                 /* threads per block */
    static constexpr int CPB = NT / Q;             /* channels per block */
    static constexpr int NW = NT / 32;
    static constexpr int G = 32 / Q;               /* channels per warp */
    static constexpr int TS = md_lanes<NPAD>::TS;  /* steps per segment */
    static constexpr int R = md_lanes<NPAD>::R;    /* steps each lane owns in a segment */
    static constexpr int NSEG = MD_SCAN_CHUNK / TS;
    static constexpr int NRED = NPAD <= 32 ? 2 : 1;
    static constexpr int BLOCKS = NPAD == 16 ? 2 : 1;
    /* The owned steps' u, sigmoid(delta + bias) and dz factor wait for the
     * segment's end in shared memory, per thread: in registers they made
     * ptxas spill at N <= 16. */
    static constexpr int NFIN = 3 * R;
    /* Phase 2's per-channel step values (dt, dt u, dys) reach the channel's
     * lanes through shared memory, [warp][step][channel of the warp]: one
     * LDS.128 a step instead of three shuffles and the owner lane's index
     * (NOTES-scan.md, v7). */
    static constexpr size_t SMEM = sizeof(float) * (2 * MD_SCAN_CHUNK * NPAD) + sizeof(float4) * NSEG * NT +
                                   sizeof(float) * NRED * TS * NW * 2 * NPAD + sizeof(float) * NFIN * NT +
                                   sizeof(float4) * NW * TS * G;
};

/* Y: also write the forward's y (a.y), a separate instance so that the
 * backward without it keeps its registers and instructions (the branch and
 * the gate's store cost the other instance 1-2%, NOTES-scan.md). WALK: find
 * the segments' start states by walking each chunk (phase 1), else copy
 * them from the forward's (a.seg); an instance too, since the runtime
 * branch made ptxas spill in phase 2's loop. POLY: the forward's softplus
 * (md_softplus), the polynomial where the forward's walks were the
 * thread-per-channel ones. */
template <typename T, int NPAD, bool Y, bool WALK, bool POLY>
__global__ void __launch_bounds__(MainCfg<NPAD>::NT, MainCfg<NPAD>::BLOCKS)
    main_kernel(BwdArgs<T> a, const float *st, const float *h0, const float *rend, const float *dhT, float *dh0,
                float *dbc_part, float *pp, int carry)
{
    using C = MainCfg<NPAD>;
    constexpr int Q = C::Q, TS = C::TS, R = C::R, NT = C::NT, NW = C::NW, G = C::G;
    extern __shared__ float4 smem4[];
    float *smem = reinterpret_cast<float *>(smem4);
    float(*sB)[NPAD] = reinterpret_cast<float(*)[NPAD]>(smem);
    float(*sC)[NPAD] = reinterpret_cast<float(*)[NPAD]>(smem + MD_SCAN_CHUNK * NPAD);
    float4 *ckpt = reinterpret_cast<float4 *>(smem + 2 * MD_SCAN_CHUNK * NPAD);
    float *red = reinterpret_cast<float *>(ckpt + C::NSEG * NT);
    float *fin = red + C::NRED * TS * NW * 2 * NPAD;   /* [NFIN][NT] */
    float4 *bcast = reinterpret_cast<float4 *>(fin + C::NFIN * NT);

    const int64_t ncb = (a.E + C::CPB - 1) / C::CPB;
    int64_t bid = blockIdx.x;
    const int64_t cb = bid % ncb;
    bid /= ncb;
    /* carry: the block walks every chunk of its sequence right to left,
     * g carried across; else it runs chunk c_hi = c_lo from rend's carry */
    const int64_t c_hi = carry ? a.nc - 1 : bid % a.nc, c_lo = carry ? 0 : c_hi, b = carry ? bid : bid / a.nc;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, q = tid % Q, cw = lane / Q;
    const int64_t e = cb * C::CPB + tid / Q;
    const bool valid = e < a.E;
    const int64_t ec = valid ? e : 0;
    const int64_t N = a.N, E = a.E;

    float A2[4], h[4], g[4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const int64_t n = q * 4 + s;
        const bool ok = valid && n < N;
        A2[s] = ok ? -expf(__ldg(a.A_log + ec * N + n)) * MD_LOG2E : 0.f;
        float gv = 0.f;
        if (ok) gv = rend ? rend[((b * a.nc + c_hi) * N + n) * E + e] : dhT ? dhT[(b * E + e) * N + n] : 0.f;
        g[s] = gv;
    }
    const float bias = valid ? __ldg(a.dt_bias + ec) : 0.f;
    const float Dv = valid ? __ldg(a.D + ec) : 0.f;
    using raw = typename md_raw<T>::type;
    /* this channel's step values in bcast: read at step j, written at owned step k */
    const float4 *const bc_rd = bcast + warp * TS * G + cw;
    float4 *const bc_wr = bcast + (warp * TS + q * R) * G + cw;
    const bool up16 = lane & 16;   /* the dBm/dCm transpose-reduce's first level */
    /* Where this lane's 8/G finished dBm/dCm sums of a step go in red (after
     * the step's and the buffer's offsets): sums i0 .. i0 + 8/G - 1 of the
     * transpose-reduce, i < 4 the dBm of state q*4 + i, else the dCm of
     * state q*4 + i - 4. Computed once: per step it would cost ~10
     * instructions (NOTES-scan.md, v7). */
    const int red_i0 = cw * (8 / G);
    const int red_slot = warp * 2 * NPAD + (red_i0 < 4 ? q * 4 + red_i0 : NPAD + q * 4 + red_i0 - 4);
    /* The sums this thread finishes after each segment's barrier (see there). */
    static_assert((TS * 2 * NPAD) % NT == 0 && NT % (2 * NPAD) == 0, "dBm/dCm sums per thread");
    const int red_j0 = tid / (2 * NPAD), red_col = tid % (2 * NPAD), red_n = red_col % NPAD;
    const bool red_isB = red_col < NPAD;
    const int64_t red_dcol = red_isB ? red_n : N + red_n;

    for (int64_t c = c_hi; c >= c_lo; c--) {
        const int64_t t0 = c * MD_SCAN_CHUNK, len = min(a.L - t0, (int64_t)MD_SCAN_CHUNK);
        const int64_t row0 = b * a.L + t0;
        const int nseg = (int)((len + TS - 1) / TS);
        /* The owned steps' inputs, one segment ahead of their use in storage
         * form (md_raw): phase 1's first segment (u, delta; only segments
         * before the last, which are full) and phase 2's first, the last
         * segment (u, delta, z, dy), issued here so that their latency
         * overlaps the Bm/Cm staging and phase 1. */
        raw pu[R], pd[R], ru[R], rd[R], rz[R], ry[R];
#pragma unroll
        for (int k = 0; k < R; k++) {
            const int j = q * R + k, jl = (nseg - 1) * TS + j;
            const bool ok1 = WALK && valid && nseg > 1, ok2 = valid && jl < len;
            pu[k] = ok1 ? md_ld_raw(a.u + (row0 + j) * a.ld_u + ec) : 0;
            pd[k] = ok1 ? md_ld_raw(a.delta + (row0 + j) * a.ld_delta + ec) : 0;
            ru[k] = ok2 ? md_ld_raw(a.u + (row0 + jl) * a.ld_u + ec) : 0;
            rd[k] = ok2 ? md_ld_raw(a.delta + (row0 + jl) * a.ld_delta + ec) : 0;
            rz[k] = ok2 ? md_ld_raw(a.z + (row0 + jl) * a.ld_z + ec) : 0;
            ry[k] = ok2 ? md_ld_raw(a.dy + (row0 + jl) * a.ld_dy + ec) : 0;
        }
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const int64_t n = q * 4 + s;
            float hv = 0.f;
            if (WALK && valid && n < N)
                hv = st ? st[((b * a.nc + c) * N + n) * E + e] : h0 ? h0[(b * E + e) * N + n] : 0.f;
            h[s] = hv;
        }
        __syncthreads();   /* the chunk before is done with sB, sC, red and ckpt */
        if (!WALK) {
            /* the forward's segment starts, each thread its own slots of
             * ckpt (so no barrier), landing while Bm and Cm are staged */
            const float4 *seg4 = reinterpret_cast<const float4 *>(a.seg) + md_seg_state<NPAD>(a.nsl, E, b, t0, ec, q);
            const int64_t sseg = E * (NPAD / 4);   /* a segment further: the index's products once a chunk */
            for (int sg = 0; sg < nseg; sg++, seg4 += sseg) cp_async16(&ckpt[sg * NT + tid], seg4, valid);
            cp_async_commit();
        }
        {
            /* a chunk's Bm and Cm rows (zero past len and N), every load in
             * flight before the first store: one round trip where four rows
             * at a time took two (NOTES-scan.md v25) */
            md_tile_ahead<T, NPAD, MD_SCAN_CHUNK, NT> rB, rC;
            rB.load(a.Bm, a.ld_B, row0, (int)len, N);
            rC.load(a.Cm, a.ld_C, row0, (int)len, N);
            rB.store(sB);
            rC.store(sC);
        }
        __syncthreads();

        /* Phase 1 (WALK): the state entering each segment. The lane's owned
         * rows of the next segment (its loads ahead), a segment further each
         * time: the 64-bit row products once a chunk (NOTES-scan.md, v9). */
        const T *pu_next = a.u + (row0 + TS + q * R) * a.ld_u + ec;
        const T *pd_next = a.delta + (row0 + TS + q * R) * a.ld_delta + ec;
        for (int seg = 0; WALK && seg < nseg; seg++, pu_next += TS * a.ld_u, pd_next += TS * a.ld_delta) {
            ckpt[seg * NT + tid] = make_float4(h[0], h[1], h[2], h[3]);
            if (seg == nseg - 1) break;
            /* the owned steps' dt, dt u to bcast (as phase 2 does), and the
             * loads of the next segment's */
            __syncwarp();   /* the segment before's reads of bcast are done */
#pragma unroll
            for (int k = 0; k < R; k++) {
                const float dt = md_softplus<POLY>(md_from_raw(pd[k]) + bias);
                *reinterpret_cast<float2 *>(&bc_wr[k * G]) = make_float2(dt, dt * md_from_raw(pu[k]));
                const bool ok = valid && seg + 2 < nseg;
                pu[k] = ok ? md_ld_raw(pu_next + k * a.ld_u) : 0;
                pd[k] = ok ? md_ld_raw(pd_next + k * a.ld_delta) : 0;
            }
            __syncwarp();
#pragma unroll
            for (int j = 0; j < TS; j++) {
                float av[4];
                const float2 dv = *reinterpret_cast<const float2 *>(&bc_rd[j * G]);
                advance4(h, av, dv.x, dv.y, &sB[seg * TS + j][q * 4], A2);
            }
        }

        if (!WALK) cp_async_wait<0>();

        /* Phase 2: the segments backwards. */
        float dA[4] = {0.f, 0.f, 0.f, 0.f};
        float dDacc = 0.f, dbacc = 0.f;
        int buf = 0;
        const int nv_last = (int)len - (nseg - 1) * TS;   /* the steps of the last segment */
        /* Where this thread's dBm/dCm sums of the last segment go, a segment
         * back each time (the 64-bit row product once a chunk): the channel
         * block's partials (fp32) or dBm / dCm themselves (T), one byte
         * pointer and row stride for either. The loads ahead and the stores
         * of du, ddelta, dz keep their per-segment row products: with
         * pointers carried across segments as well, ptxas sank the loads to
         * the segment's end, where their latency showed (NOTES-scan.md, v9). */
        const int64_t red_last = row0 + (nseg - 1) * TS + red_j0;
        const bool to_part = dbc_part != NULL;
        const int64_t red_ld = to_part ? 2 * N * (int64_t)sizeof(float)
                                       : (red_isB ? a.ld_dB : a.ld_dC) * (int64_t)sizeof(T);
        char *red_out = to_part ? (char *)(dbc_part + (cb * a.B * a.L + red_last) * 2 * N + red_dcol)
                                : (char *)((red_isB ? a.dBm : a.dCm) + red_last * (red_isB ? a.ld_dB : a.ld_dC) + red_n);
        for (int seg = nseg - 1; seg >= 0; seg--, red_out -= TS * red_ld) {
            float *const red_seg = red + buf * TS * NW * 2 * NPAD + red_slot;
            const int nv = seg == nseg - 1 ? nv_last : TS;
            const float4 hc = ckpt[seg * NT + tid];
            const float hstart[4] = {hc.x, hc.y, hc.z, hc.w};

            /* the owned steps' per-channel values; the segment before's
             * owned rows, whose loads the loop issues (the row products once
             * a segment, not per load: NOTES-scan.md, v7) */
            const int64_t prev = row0 + (seg - 1) * TS + q * R;
            const T *pu_prev = a.u + prev * a.ld_u + ec, *pd_prev = a.delta + prev * a.ld_delta + ec;
            const T *pz_prev = a.z + prev * a.ld_z + ec, *py_prev = a.dy + prev * a.ld_dy + ec;
            float o_dt[R], o_dys[R];
            __syncwarp();   /* phase 1's last reads of bcast are done (later segments: the barrier below) */
#pragma unroll
            for (int k = 0; k < R; k++) {
                const float uu = md_from_raw(ru[k]), dd = md_from_raw(rd[k]);
                const float zz = md_from_raw(rz[k]), gy = md_from_raw(ry[k]);
                float dt, sig;
                md_softplus_grad<POLY>(dd + bias, &dt, &sig);
                const float sz = md_sigmoid(zz);
                /* 0 past the sequence's end: see the recompute below */
                const bool in = q * R + k < nv;
                o_dt[k] = in ? dt : 0.f, o_dys[k] = in ? gy * zz * sz : 0.f;
                /* .w: the gate silu(z), for the owner's y (Y) at the segment's end */
                bc_wr[k * G] = make_float4(o_dt[k], o_dt[k] * uu, o_dys[k], Y ? zz * sz : 0.f);
                fin[(3 * k) * NT + tid] = uu;
                fin[(3 * k + 1) * NT + tid] = sig;
                fin[(3 * k + 2) * NT + tid] = gy * sz * (1.f + zz * (1.f - sz));
                /* the segment before (always full), for the next iteration */
                const bool ok = valid && seg > 0;
                ru[k] = ok ? md_ld_raw(pu_prev + k * a.ld_u) : 0;
                rd[k] = ok ? md_ld_raw(pd_prev + k * a.ld_delta) : 0;
                rz[k] = ok ? md_ld_raw(pz_prev + k * a.ld_z) : 0;
                ry[k] = ok ? md_ld_raw(py_prev + k * a.ld_dy) : 0;
            }
            __syncwarp();   /* bcast written */

            /* recompute the segment's states. Steps past the
             * sequence's end (nv <= j < TS, only in its last segment) run
             * too, branch-free: their dt, dt u and dys are 0 and their Bm
             * and Cm rows 0, so that h and g pass them unchanged (av = 1)
             * and their sums, never stored, are all that they touch. */
            float hs[TS][4];
            {
                float hcur[4] = {hstart[0], hstart[1], hstart[2], hstart[3]};
#pragma unroll
                for (int j = 0; j < TS; j++) {
                    float av[4];
                    const float2 dv = *reinterpret_cast<const float2 *>(&bc_rd[j * G]);
                    advance4(hcur, av, dv.x, dv.y, &sB[seg * TS + j][q * 4], A2);
#pragma unroll
                    for (int s = 0; s < 4; s++) hs[j][s] = hcur[s];
                }
            }

            /* the reverse recurrence over the segment */
            float l_dhB[TS], l_eaA[TS], l_ys[TS];
#pragma unroll
            for (int j = TS - 1; j >= 0; j--) {
                const float4 sv = bc_rd[j * G];
                const float dt = sv.x, dtu = sv.y, dys = sv.z;
                const float4 Bv = *reinterpret_cast<const float4 *>(&sB[seg * TS + j][q * 4]);
                const float4 Cv = *reinterpret_cast<const float4 *>(&sC[seg * TS + j][q * 4]);
                const float bs[4] = {Bv.x, Bv.y, Bv.z, Bv.w}, cs[4] = {Cv.x, Cv.y, Cv.z, Cv.w};
                /* The step's dBm terms dh dt u and dCm terms dys h of the four
                 * states are summed over the warp's G channels by a
                 * transpose-reduce whose first level (lanes 16 apart) is done
                 * here: a lane with lane & 16 sends its dBm terms and keeps
                 * the dCm ones, the others the reverse, so each lane forms
                 * the product it sends and adds the one it keeps to the
                 * received value in one FFMA (NOTES-scan.md, v7). */
                const float y_send = up16 ? dtu : dys, y_keep = up16 ? dys : dtu;
                float send[4], x_keep[4], dhB = 0.f, eaA = 0.f, ysp = 0.f;
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    /* the decay again: kept from the recompute it saves an
                     * exp a state and step, but measured no faster (with
                     * phase 1 it spilled 88 bytes; NOTES-scan.md, v11) */
                    const float av = md_ex2(dt * A2[s]);
                    const float hprev = j > 0 ? hs[j > 0 ? j - 1 : 0][s] : hstart[s];
                    const float dh = dys * cs[s] + g[s];
                    const float ea = dh * av * hprev;   /* d loss / d(dt A) */
                    eaA += ea * A2[s];
                    dA[s] += ea * dt;
                    dhB += dh * bs[s];
                    send[s] = (up16 ? dh : hs[j][s]) * y_send;
                    x_keep[s] = up16 ? hs[j][s] : dh;
                    ysp += cs[s] * hs[j][s];
                    g[s] = av * dh;
                }
                l_dhB[j] = dhB, l_eaA[j] = eaA, l_ys[j] = ysp;
                float v[4];
#pragma unroll
                for (int s = 0; s < 4; s++) v[s] = x_keep[s] * y_keep + __shfl_xor_sync(0xffffffffu, send[s], 16);
                md_transpose_reduce<4, md_ilog2(G) - 1>(v, lane, 8);
#pragma unroll
                for (int k = 0; k < 8 / G; k++) red_seg[j * NW * 2 * NPAD + k] = v[k];
            }

            /* finish the owned steps */
            const int64_t own = row0 + seg * TS + q * R;
            T *pdu = a.du + own * a.ld_du + ec, *pddel = a.ddelta + own * a.ld_ddelta + ec, *pdz = a.dz + own * a.ld_dz + ec;
            md_transpose_reduce<TS, md_ilog2(Q)>(l_dhB, lane, Q / 2);
            md_transpose_reduce<TS, md_ilog2(Q)>(l_eaA, lane, Q / 2);
            md_transpose_reduce<TS, md_ilog2(Q)>(l_ys, lane, Q / 2);
#pragma unroll
            for (int k = 0; k < R; k++) {
                const int j = q * R + k;
                if (valid && j < nv) {
                    const float uu = fin[(3 * k) * NT + tid], sig = fin[(3 * k + 1) * NT + tid];
                    const float dzf = fin[(3 * k + 2) * NT + tid];
                    const float du = o_dys[k] * Dv + o_dt[k] * l_dhB[k];
                    const float ddt = l_eaA[k] * MD_LN2 + uu * l_dhB[k];
                    const float ddel = ddt * sig;
                    const float dzv = dzf * (l_ys[k] + Dv * uu);
                    md_st(pdu + k * a.ld_du, du);
                    md_st(pddel + k * a.ld_ddelta, ddel);
                    md_st(pdz + k * a.ld_dz, dzv);
                    /* the forward's y, in its order of operations (lane_fwd_kernel) */
                    if (Y) md_st(a.y + (own + k) * a.ld_y + ec, (l_ys[k] + Dv * uu) * bc_wr[k * G].w);
                    dDacc += o_dys[k] * uu;
                    dbacc += ddel;
                }
            }

            /* dBm, dCm of the segment: the warps' partials in warp order */
            __syncthreads();
            {
                /* A segment has TS * 2 * NPAD sums, a multiple of NT: thread
                 * tid finishes sums tid, tid + NT, ..., all of one column
                 * (red_col) and rows red_j0 + k * NT / (2 * NPAD). */
                const float *rs = red + (buf * TS + red_j0) * NW * 2 * NPAD + red_col;
                constexpr int RPI = NT / (2 * NPAD);   /* rows an iteration */
#pragma unroll
                for (int k = 0; k < TS / RPI; k++) {
                    if (red_n >= N || red_j0 + k * RPI >= nv) continue;
                    float sum = 0.f;
#pragma unroll
                    for (int w = 0; w < NW; w++) sum += rs[(k * RPI * NW + w) * 2 * NPAD];
                    char *o = red_out + k * RPI * red_ld;
                    if (to_part) *reinterpret_cast<float *>(o) = sum;
                    else md_st(reinterpret_cast<T *>(o), sum);
                }
            }
            if (C::NRED == 1) __syncthreads();
            else buf ^= 1;
        }

        /* this chunk's parameter-gradient partials */
#pragma unroll
        for (int m = 1; m < Q; m <<= 1) {
            dDacc += __shfl_xor_sync(0xffffffffu, dDacc, m);
            dbacc += __shfl_xor_sync(0xffffffffu, dbacc, m);
        }
        if (valid) {
            float *prow = pp + ((b * a.nc + c) * E + e) * (N + 2);
#pragma unroll
            for (int s = 0; s < 4; s++) {
                const int64_t n = q * 4 + s;
                if (n < N) {
                    prow[n] = dA[s];
                    if (dh0 && c == 0) dh0[(b * E + e) * N + n] = g[s];
                }
            }
            if (q == 0) prow[N] = dDacc, prow[N + 1] = dbacc;
        }
    }
}

/* dBm, dCm = the channel blocks' partials summed in block order, V
 * consecutive sums a thread (V = 4 where N % 4 == 0: one 16-byte load a
 * block instead of four; NOTES-scan.md v23). */
template <typename T, int V>
__global__ void dbc_reduce_kernel(const float *part, int64_t ncb, int64_t rows, int64_t N, T *dB, int64_t ld_dB,
                                  T *dC, int64_t ld_dC)
{
    const int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= rows * 2 * N) return;
    const int64_t row = i / (2 * N), o = i % (2 * N);
    float s[V];
#pragma unroll
    for (int v = 0; v < V; v++) s[v] = 0.f;
    for (int64_t k = 0; k < ncb; k++) {
        const float *pk = part + k * rows * 2 * N + i;
        if constexpr (V == 4) {
            const float4 x = __ldcs(reinterpret_cast<const float4 *>(pk));
            s[0] += x.x, s[1] += x.y, s[2] += x.z, s[3] += x.w;
        } else {
            s[0] += __ldcs(pk);
        }
    }
    /* the V sums lie in one row, all in dB or all in dC (N % V == 0) */
    T *out = o < N ? dB + row * ld_dB + o : dC + row * ld_dC + o - N;
#pragma unroll
    for (int v = 0; v < V; v++) md_st(out + v, s[v]);
}

/* Column col's sum of rows r0 .. r1 - 1 of m (cols wide) by a (32, 8)
 * block: thread row ty sums every 8th row from r0 + ty, then thread row 0
 * the eight partials in order (valid in thread row 0). */
__device__ __forceinline__ float column_sum(const float *m, int64_t r0, int64_t r1, int64_t cols, int64_t col)
{
    __shared__ float part[8][33];
    float s = 0.f;
    if (col < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += m[r * cols + col];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    float t = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
    return t;
}

/* Column sums of pp (rows x cols), stage 1: row group blockIdx.y into
 * cs[group][col]. */
__global__ void colsum1_kernel(const float *pp, int64_t rows, int64_t cols, int64_t rows_per_group, float *cs)
{
    const int64_t col = (int64_t)blockIdx.x * 32 + threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_group, r1 = min(rows, r0 + rows_per_group);
    const float t = column_sum(pp, r0, r1, cols, col);
    if (threadIdx.y == 0 && col < cols) cs[blockIdx.y * cols + col] = t;
}

/* Stage 2: the groups' sums, added into the parameter gradients (d/dA_log
 * = d/dA * A). A (32, 8) block as stage 1's: a thread a column and the
 * groups in order took 10.6 us at (1, 256, 2^20), 64 groups on 18 blocks
 * (NOTES-scan.md v20). */
__global__ void colsum2_kernel(const float *cs, int64_t groups, int64_t E, int64_t N, const float *A_log, float *dA_log,
                               float *dD, float *ddt_bias)
{
    const int64_t col = (int64_t)blockIdx.x * 32 + threadIdx.x, cols = E * (N + 2);
    const float s = column_sum(cs, 0, groups, cols, col);
    if (threadIdx.y != 0 || col >= cols) return;
    const int64_t e = col / (N + 2), j = col % (N + 2);
    if (j < N) dA_log[e * N + j] += s * -expf(A_log[e * N + j]);
    else if (j == N) dD[e] += s;
    else ddt_bias[e] += s;
}

template <typename T, int NPAD>
cudaError_t reverse_summary_t(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum, cudaStream_t s)
{
    constexpr int CPB = kThreads / md_lanes<NPAD>::Q;
    const int64_t blocks = w->B * (w->nc - 1) * ((w->E + CPB - 1) / CPB);
    reverse_summary_kernel<T, NPAD><<<(unsigned)blocks, kThreads, 0, s>>>(unpack<T>(a, w->nc), sum);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

/* The main pass's instance for a's outputs (main_kernel's Y and WALK). */
template <typename T, int NPAD, bool POLY>
auto main_instance(const md_scan_args_t *a)
{
    return a->y_out        ? main_kernel<T, NPAD, true, true, POLY>
           : a->seg_states ? main_kernel<T, NPAD, false, false, POLY>
                           : main_kernel<T, NPAD, false, true, POLY>;
}

template <typename T, int NPAD>
cudaError_t main_t(const md_scan_args_t *a, const md_scan_layout_t *w, const float *st, const float *rend,
                   float *dbc_part, float *pp, int carry, cudaStream_t s)
{
    using C = MainCfg<NPAD>;
    /* the chunked scheme at N <= 16 ran its forward walks a thread per
     * channel (selective_scan_chan.cu), with the polynomial softplus */
    constexpr bool CHAN = NPAD == 16;
    auto kernel = CHAN && !carry ? main_instance<T, NPAD, CHAN>(a) : main_instance<T, NPAD, false>(a);
    MD_CU_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM));
    const int64_t blocks = w->B * (carry ? 1 : w->nc) * w->ncb;
    kernel<<<(unsigned)blocks, C::NT, C::SMEM, s>>>(unpack<T>(a, w->nc), st, a->h0, rend, a->dhT, a->dh0, dbc_part,
                                                     pp, carry);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}

template <typename T>
cudaError_t reverse_summary_dispatch(const md_scan_args_t *a, const md_scan_layout_t *w, float *sum, cudaStream_t s)
{
    /* at N <= 16 a thread per channel (selective_scan_chan.cu) */
    return md_scan_npad_switch(w->N, [&](auto np) {
        constexpr int NPAD = decltype(np)::value;
        if constexpr (NPAD == 16) return md_scan_launch_chan_reverse_summary(a, w, sum, s);
        else return reverse_summary_t<T, NPAD>(a, w, sum, s);
    });
}

template <typename T>
cudaError_t main_dispatch(const md_scan_args_t *a, const md_scan_layout_t *w, const float *st, const float *rend,
                          float *dbc_part, float *pp, int carry, cudaStream_t s)
{
    return md_scan_npad_switch(
        w->N, [&](auto np) { return main_t<T, decltype(np)::value>(a, w, st, rend, dbc_part, pp, carry, s); });
}

unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

}  // namespace

size_t md_scan_bwd_workspace(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state)
{
    if (batch < 1 || len < 1 || d_inner < 1 || d_state < 1 || d_state > MD_SCAN_MAX_STATE) return 0;
    return md_scan_layout(batch, len, d_inner, d_state).bwd_bytes;
}

cudaError_t md_scan_bwd(const md_scan_args_t *a, cudaStream_t s)
{
    if (!a || a->batch < 1 || a->len < 1 || a->d_inner < 1 || a->d_state < 1 || a->d_state > MD_SCAN_MAX_STATE)
        return cudaErrorInvalidValue;
    if (a->dtype != MD_SCAN_F32 && a->dtype != MD_SCAN_BF16) return cudaErrorInvalidValue;
    if (!a->u || !a->delta || !a->z || !a->Bm || !a->Cm || !a->A_log || !a->D || !a->dt_bias || !a->dy || !a->du ||
        !a->ddelta || !a->dz || !a->dBm || !a->dCm || !a->dA_log || !a->dD || !a->ddt_bias)
        return cudaErrorInvalidValue;
    const int64_t E = a->d_inner, N = a->d_state;
    if (a->ld_u < E || a->ld_delta < E || a->ld_z < E || a->ld_dy < E || a->ld_du < E || a->ld_ddelta < E ||
        a->ld_dz < E || a->ld_B < N || a->ld_C < N || a->ld_dB < N || a->ld_dC < N || (a->y_out && a->ld_y_out < E))
        return cudaErrorInvalidValue;
    if (a->seg_states && !md_aligned16(a->seg_states)) return cudaErrorInvalidValue;   /* copied 16 bytes at a time */
    md_scan_layout_t w = md_scan_layout(a->batch, a->len, E, N);
    if (!a->workspace || a->workspace_bytes < w.bwd_bytes) return cudaErrorInvalidValue;
    char *ws = (char *)a->workspace;
    float *sum = (float *)(ws + w.sum), *gsum = (float *)(ws + w.gsum), *gstart = (float *)(ws + w.gstart);
    const float *st = NULL, *rend = NULL;
    const int carry = w.nc > 1 && md_scan_pass_whole(a);
    if (a->seg_states && !a->y_out) {
        /* the segment starts come from the forward: no chunk states needed */
    } else if (carry) {
        if (a->states) {
            st = a->states;
        } else {   /* the states as the whole-sequence forward makes them, y not written */
            md_scan_args_t f = *a;
            f.y = NULL, f.hT = NULL;
            float *states = (float *)(ws + w.states);
            MD_CU_TRY(md_scan_launch_whole_fwd(&f, &w, states, s));
            st = states;
        }
    } else if (w.nc > 1) {
        if (a->states) {
            st = a->states;
        } else {
            float *states = (float *)(ws + w.states);
            MD_CU_TRY(md_scan_launch_chunk_summary(a, &w, sum, s));
            MD_CU_TRY(md_scan_launch_propagate(&w, a->A_log, sum, a->h0, states, gsum, gstart, 0, s));
            st = states;
        }
    }
    if (w.nc > 1 && !carry) {
        /* the reverse summaries reuse sum: the forward propagation above is queued first */
        if (a->dtype == MD_SCAN_BF16) MD_CU_TRY(reverse_summary_dispatch<__nv_bfloat16>(a, &w, sum, s));
        else MD_CU_TRY(reverse_summary_dispatch<float>(a, &w, sum, s));
        float *re = (float *)(ws + w.rend);
        MD_CU_TRY(md_scan_launch_propagate(&w, a->A_log, sum, a->dhT, re, gsum, gstart, 1, s));
        rend = re;
    }
    float *dbc_part = w.ncb > 1 ? (float *)(ws + w.dbc) : NULL;
    float *pp = (float *)(ws + w.pp), *cs = (float *)(ws + w.cs);
    if (a->dtype == MD_SCAN_BF16) MD_CU_TRY(main_dispatch<__nv_bfloat16>(a, &w, st, rend, dbc_part, pp, carry, s));
    else MD_CU_TRY(main_dispatch<float>(a, &w, st, rend, dbc_part, pp, carry, s));

    const int64_t rows = a->batch * a->len;
    if (dbc_part) {
        const bool v4 = N % 4 == 0 && md_aligned16(dbc_part);
        const unsigned nb = blocks_for(rows * 2 * N / (v4 ? 4 : 1), 256);
        if (a->dtype == MD_SCAN_BF16) {
            auto k = v4 ? dbc_reduce_kernel<__nv_bfloat16, 4> : dbc_reduce_kernel<__nv_bfloat16, 1>;
            k<<<nb, 256, 0, s>>>(dbc_part, w.ncb, rows, N, (__nv_bfloat16 *)a->dBm, a->ld_dB, (__nv_bfloat16 *)a->dCm,
                                 a->ld_dC);
        } else {
            auto k = v4 ? dbc_reduce_kernel<float, 4> : dbc_reduce_kernel<float, 1>;
            k<<<nb, 256, 0, s>>>(dbc_part, w.ncb, rows, N, (float *)a->dBm, a->ld_dB, (float *)a->dCm, a->ld_dC);
        }
        MD_CU_LAUNCHED();
    }
    const int64_t prow = a->batch * w.nc, pcol = E * (N + 2);
    const int64_t groups = w.cs_groups, per = (prow + groups - 1) / groups;
    colsum1_kernel<<<dim3((unsigned)((pcol + 31) / 32), (unsigned)groups), dim3(32, 8), 0, s>>>(pp, prow, pcol, per, cs);
    MD_CU_LAUNCHED();
    colsum2_kernel<<<(unsigned)((pcol + 31) / 32), dim3(32, 8), 0, s>>>(cs, groups, E, N, a->A_log, a->dA_log, a->dD,
                                                                      a->ddt_bias);
    MD_CU_LAUNCHED();
    return cudaSuccess;
}
