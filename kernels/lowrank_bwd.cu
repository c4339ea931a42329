/* The backward of a low-rank Linear (backend_kernels.h, ops.h lowrank_bwd):
 * dx (M, R) = dy w and dw (E, R) += dy^T x, given dy (M, E), x (M, R) and
 * w (E, R), bf16, R 8 or 16, E 256 or 512 (the Mamba block's dt_proj: R =
 * dt_rank, E = d_inner at d_model 128 and 256), in one pass over dy where
 * cuBLAS takes two products that each read it (~2x their byte floor each
 * at M = 2^17: kernels/NOTES-backend.md, "dt_proj's backward in one pass").
 *
 * Both products run on the tensor cores (mma m16n8k16, fp32 sums), so the
 * pass is left with dy's bytes alone; the two CUDA-core versions before
 * this one were held by their arithmetic and their latency (the notes).
 * A block's 4 warps each own a quarter of dy's columns (EW = E / 4) and
 * stream the block's tiles of TM rows of that quarter, with the tile's x
 * rows, through a STAGES-deep cp.async pipeline of their own in shared
 * memory: no block barrier waits on a load. Per tile a warp forms its
 * quarter's share of dx (dy as A by ldmatrix; w's fragments stay in
 * registers for the whole kernel) and adds dy^T x into its dw sums (dy as A
 * by ldmatrix.trans, x as B by ldmatrix.trans), kept in registers over all
 * the block's tiles. The four shares of a dx row meet in shared memory and
 * are added in warp order (one barrier a tile, two buffers). Each block
 * writes its E x R sums of dw to its slice of the scratch, and
 * mdk_colsum_add adds the slices into dw in block order. Tiles go to the
 * blocks round robin and the grid depends on M and the SM count only: no
 * atomics, the same bits run to run on one GPU model. */
#include <cuda_bf16.h>
#include <stdint.h>

#include "backend_kernels.h"
#include "mma_bf16.cuh"

namespace {

constexpr int WARPS = 4, THREADS = 32 * WARPS, STAGES = 4, BLOCKS_PER_SM = 2;

/* rows a tile: a warp's stage is ~4.5 KB at either width */
constexpr int tile_rows(int ew) { return ew >= 128 ? 16 : 32; }

/* bf16 elements of one warp's pipeline stage (dy's quarter, then x) */
template <int EW, int R> struct layout {
    static constexpr int TM = tile_rows(EW), DY_LD = EW + PAD, X_LD = R + PAD;
    static constexpr int STAGE = TM * (DY_LD + X_LD);
    /* the warps' pipelines, then two buffers of the warps' dx shares
     * (WARPS x TM x R floats each) */
    static constexpr size_t BYTES = (size_t)WARPS * STAGES * STAGE * 2 + (size_t)2 * WARPS * TM * R * 4;
};

__device__ __forceinline__ uint32_t pack_raw(uint16_t lo, uint16_t hi) { return lo | (uint32_t)hi << 16; }

template <int EW, int R>
__global__ void __launch_bounds__(THREADS) lowrank_bwd_kernel(__nv_bfloat16 *dx, int64_t lddx, float *part,
                                                             const __nv_bfloat16 *dy, int lddy,
                                                             const __nv_bfloat16 *x, int ldx,
                                                             const __nv_bfloat16 *w, int64_t rows)
{
    using L = layout<EW, R>;
    constexpr int TM = L::TM, NT = R / 8, KT = EW / 16, MT = TM / 16, E = WARPS * EW;
    extern __shared__ __align__(16) unsigned char smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    __nv_bfloat16 *mine = reinterpret_cast<__nv_bfloat16 *>(smem) + warp * STAGES * L::STAGE;
    float *shares = reinterpret_cast<float *>(smem + (size_t)WARPS * STAGES * L::STAGE * 2);
    const int c0 = warp * EW;   /* the warp's first column of dy, row of w and dw */

    /* w as B of dx = dy w (k: dy's column, n: r), for the warp's columns */
    const uint16_t *w16 = reinterpret_cast<const uint16_t *>(w);
    uint32_t wb[KT][NT][2];
#pragma unroll
    for (int kt = 0; kt < KT; kt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int k = c0 + 16 * kt + 2 * q, n = 8 * nt + g;
            wb[kt][nt][0] = pack_raw(w16[k * R + n], w16[(k + 1) * R + n]);
            wb[kt][nt][1] = pack_raw(w16[(k + 8) * R + n], w16[(k + 9) * R + n]);
        }

    const int64_t tiles = (rows + TM - 1) / TM, step = gridDim.x;
    auto issue = [&](int64_t tile, int stage) {
        if (tile < tiles) {
            __nv_bfloat16 *s = mine + stage * L::STAGE;
            const int64_t r0 = tile * TM;
            const int n_in = (int)(rows - r0 < TM ? rows - r0 : TM);
            copy_tile_async<TM, EW, 32>(s, dy + r0 * lddy + c0, lddy, n_in, lane);
            copy_tile_async<TM, R, 32>(s + TM * L::DY_LD, x + r0 * ldx, ldx, n_in, lane);
        }
        cp_async_commit();   /* empty past the last tile: the group count stays uniform */
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) issue(blockIdx.x + s * step, s);

    float dw[KT][NT][4] = {};
    int it = 0;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += step, it++) {
        cp_async_wait<STAGES - 2>();
        __syncwarp();   /* the other lanes' copies, and their reads of the stage refilled next */
        issue(tile + (STAGES - 1) * step, (it + STAGES - 1) % STAGES);
        const __nv_bfloat16 *s = mine + (it % STAGES) * L::STAGE, *xs = s + TM * L::DY_LD;

        /* the warp's share of dx: rows of the tile (m) by r (n) */
        float dxs[MT][NT][4] = {};
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                uint32_t a[4];
                ldsm_x4(a, s + (16 * mt + (lane & 15)) * L::DY_LD + 16 * kt + 8 * (lane >> 4));
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mma16816(dxs[mt][nt], a, wb[kt][nt][0], wb[kt][nt][1]);
            }

        /* dw += dy^T x: columns of dy (m) by r (n), k along the tile's rows */
#pragma unroll
        for (int ks = 0; ks < MT; ks++) {
            uint32_t b[NT][2];
            const __nv_bfloat16 *xrow = xs + (16 * ks + (lane & 15)) * L::X_LD;
            if constexpr (NT == 2) {
                uint32_t t[4];
                ldsm_x4_trans(t, xrow + 8 * (lane >> 4));
                b[0][0] = t[0], b[0][1] = t[1], b[1][0] = t[2], b[1][1] = t[3];
            } else {
                ldsm_x2_trans(b[0], xrow);
            }
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                uint32_t a[4];
                ldsm_x4_trans(a, s + (16 * ks + (lane & 7) + 8 * (lane >> 4)) * L::DY_LD + 16 * kt +
                                     8 * ((lane >> 3) & 1));
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mma16816(dw[kt][nt], a, b[nt][0], b[nt][1]);
            }
        }

        /* the four shares of each dx row, added in warp order */
        float *buf = shares + (it & 1) * WARPS * TM * R;
        float *own = buf + warp * TM * R;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int row = 16 * mt + g, col = 8 * nt + 2 * q;
                *reinterpret_cast<float2 *>(own + row * R + col) = make_float2(dxs[mt][nt][0], dxs[mt][nt][1]);
                *reinterpret_cast<float2 *>(own + (row + 8) * R + col) = make_float2(dxs[mt][nt][2], dxs[mt][nt][3]);
            }
        __syncthreads();   /* the other buffer's readers finished before this barrier's previous round */
        const int64_t r0 = tile * TM;
        for (int p = threadIdx.x; p < TM * R / 2; p += THREADS) {
            const int row = p / (R / 2), col = 2 * (p % (R / 2));
            float sx = 0, sy = 0;
#pragma unroll
            for (int wi = 0; wi < WARPS; wi++) {
                const float2 v = *reinterpret_cast<const float2 *>(buf + (wi * TM + row) * R + col);
                sx += v.x, sy += v.y;
            }
            if (r0 + row < rows) *reinterpret_cast<uint32_t *>(dx + (r0 + row) * lddx + col) = pack_bf16(sx, sy);
        }
    }
    cp_async_wait<0>();

    float *slice = part + (int64_t)blockIdx.x * E * R;
#pragma unroll
    for (int kt = 0; kt < KT; kt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int col = c0 + 16 * kt + g, r = 8 * nt + 2 * q;
            *reinterpret_cast<float2 *>(slice + col * R + r) = make_float2(dw[kt][nt][0], dw[kt][nt][1]);
            *reinterpret_cast<float2 *>(slice + (col + 8) * R + r) = make_float2(dw[kt][nt][2], dw[kt][nt][3]);
        }
}

/* the grid of a call: a block for each tile, at most BLOCKS_PER_SM an SM and
 * as many as the scratch holds slices */
int64_t grid_of(int64_t rows, int64_t e, int64_t r, size_t scratch_floats)
{
    const int64_t tm = tile_rows((int)(e / WARPS)), tiles = (rows + tm - 1) / tm;
    int64_t blocks = (int64_t)BLOCKS_PER_SM * mdk_sm_count();
    const int64_t fit = (int64_t)(scratch_floats / (size_t)(e * r));
    if (blocks > fit) blocks = fit;
    return blocks < tiles ? blocks : tiles;
}

template <int EW, int R>
cudaError_t launch(__nv_bfloat16 *dx, int64_t lddx, float *dw, const __nv_bfloat16 *dy, int64_t lddy,
                   const __nv_bfloat16 *x, int64_t ldx, const __nv_bfloat16 *w, int64_t rows, float *scratch,
                   size_t scratch_floats, cudaStream_t s)
{
    const size_t bytes = layout<EW, R>::BYTES;
    cudaError_t e = cudaFuncSetAttribute(lowrank_bwd_kernel<EW, R>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)bytes);
    if (e != cudaSuccess) return e;
    const int64_t blocks = grid_of(rows, WARPS * EW, R, scratch_floats);
    lowrank_bwd_kernel<EW, R><<<(unsigned)blocks, THREADS, bytes, s>>>(dx, lddx, scratch, dy, (int)lddy, x, (int)ldx,
                                                                        w, rows);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, blocks, WARPS * EW * R, WARPS * EW * R, s);
}

}   // namespace

int mdk_lowrank_bwd_ok(const void *dx, int64_t lddx, const void *dy, int64_t lddy, const void *x, int64_t ldx,
                       const void *w, int64_t ldw, int64_t rows, int64_t e, int64_t r, size_t scratch_floats)
{
    const bool shape = (r == 8 || r == 16) && (e == 256 || e == 512) && ldw == r && rows >= 1;
    /* 16-byte cp.async of dy's and x's rows; dx written two columns at a time */
    const bool rows_ok = lddy % 8 == 0 && ldx % 8 == 0 && lddy <= INT32_MAX && ldx <= INT32_MAX && lddx % 2 == 0 &&
                         aligned(dy, 16) && aligned(x, 16) && aligned(dx, 4) && aligned(w, 2);
    return shape && rows_ok && mdk_sm_count() > 0 && grid_of(rows, e, r, scratch_floats) >= 1;
}

cudaError_t mdk_lowrank_bwd(void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x,
                            int64_t ldx, const void *w, int64_t rows, int64_t e, int64_t r, float *scratch,
                            size_t scratch_floats, cudaStream_t s)
{
    __nv_bfloat16 *dxb = (__nv_bfloat16 *)dx;
    const __nv_bfloat16 *dyb = (const __nv_bfloat16 *)dy, *xb = (const __nv_bfloat16 *)x, *wb = (const __nv_bfloat16 *)w;
    if (e == 256 && r == 8) return launch<64, 8>(dxb, lddx, dw, dyb, lddy, xb, ldx, wb, rows, scratch, scratch_floats, s);
    if (e == 256 && r == 16) return launch<64, 16>(dxb, lddx, dw, dyb, lddy, xb, ldx, wb, rows, scratch, scratch_floats, s);
    if (e == 512 && r == 8) return launch<128, 8>(dxb, lddx, dw, dyb, lddy, xb, ldx, wb, rows, scratch, scratch_floats, s);
    if (e == 512 && r == 16)
        return launch<128, 16>(dxb, lddx, dw, dyb, lddy, xb, ldx, wb, rows, scratch, scratch_floats, s);
    return cudaErrorInvalidValue;
}
