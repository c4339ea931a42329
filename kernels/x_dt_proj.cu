/* The Mamba block's x_proj then dt_proj, forward (backend_kernels.h, ops.h
 * x_dt_proj_fwd): xdbl (M, J) = u w_x^T and delta (M, E) = xdbl[:, :R]
 * w_dt^T, bf16, E 256 with R 8 and J 40 (d_model 128) or R 16 and J 48, in
 * one pass: u read once, xdbl and delta written once, xdbl's first R
 * columns never read back. cuBLAS takes two narrow products at ~2.5-3x
 * their byte floors (kernels/NOTES-backend.md, "x_proj and dt_proj's
 * forward in one pass"). At E 512 this kernel lost to them (4 warps an SM
 * where the shared memory holds w_x and the stages), so it is not used
 * there.
 *
 * Each warp streams its own 16-row tiles of u through a cp.async pipeline
 * of two or three stages in shared memory (no block barrier after the
 * weights' load).
 * xdbl's tile is one mma m16n8k16 product over E (u as A by ldmatrix, w_x
 * as B from shared memory), rounded to bf16 and stored; its first R
 * columns, still in registers, are the A fragment of delta's product
 * (the accumulator's layout is the A operand's, k 8-15 zero at R 8), with
 * w_dt as B from shared memory. delta's 16 x E tile goes through the
 * stage u came from, so that its rows leave in 16-byte stores. fp32 sums,
 * each output rounded once, as cuBLAS's; no reduction across threads, so
 * the bits do not depend on the grid. */
#include <cuda_bf16.h>
#include <stdint.h>

#include "backend_kernels.h"
#include "mma_bf16.cuh"

namespace {

constexpr int TM = 16;

/* warps a block: one block an SM, 67-135 KB of u in flight an SM */
constexpr int WARPS = 8;

template <int E, int R, int J, int STAGES> struct xdt_layout {
    static constexpr int U_LD = E + PAD, STAGE = TM * U_LD;
    /* w_x (J rows, padded), w_dt (E x R), then each warp's stages */
    static constexpr int WX = J * U_LD, WDT = E * R;
    static constexpr size_t BYTES = (size_t)(WX + WDT + WARPS * STAGES * STAGE) * 2;
};

template <int E, int R, int J, int STAGES>
__global__ void __launch_bounds__(32 * WARPS) x_dt_proj_kernel(__nv_bfloat16 *xdbl, int64_t ldxd,
                                                                    __nv_bfloat16 *delta, int64_t ldd,
                                                                    const __nv_bfloat16 *u, int ldu,
                                                                    const __nv_bfloat16 *wx,
                                                                    const __nv_bfloat16 *wdt, int64_t rows)
{
    using L = xdt_layout<E, R, J, STAGES>;
    constexpr int NJ = J / 8, KS = E / 16, NE = E / 8, THREADS = 32 * WARPS;
    static_assert(R == 8 || R == 16, "delta's k: one or two of xdbl's n-tiles");
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16 *wx_s = reinterpret_cast<__nv_bfloat16 *>(smem), *wdt_s = wx_s + L::WX;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    __nv_bfloat16 *mine = wdt_s + L::WDT + warp * STAGES * L::STAGE;

    for (int i = threadIdx.x; i < J * E / 8; i += THREADS) {
        const int r = i / (E / 8), c = 8 * (i % (E / 8));
        *reinterpret_cast<uint4 *>(wx_s + r * L::U_LD + c) = *reinterpret_cast<const uint4 *>(wx + r * E + c);
    }
    for (int i = threadIdx.x; i < E * R / 8; i += THREADS)
        *reinterpret_cast<uint4 *>(wdt_s + 8 * i) = *reinterpret_cast<const uint4 *>(wdt + 8 * i);
    __syncthreads();

    const int64_t tiles = (rows + TM - 1) / TM, step = (int64_t)gridDim.x * WARPS;
    const int64_t first = (int64_t)blockIdx.x * WARPS + warp;
    auto issue = [&](int64_t tile, int stage) {
        if (tile < tiles) {
            const int64_t r0 = tile * TM;
            const int n_in = (int)(rows - r0 < TM ? rows - r0 : TM);
            copy_tile_async<TM, E, 32>(mine + stage * L::STAGE, u + r0 * ldu, ldu, n_in, lane);
        }
        cp_async_commit();   /* empty past the last tile: the group count stays uniform */
    };
#pragma unroll
    for (int st = 0; st < STAGES - 1; st++) issue(first + st * step, st);

    int it = 0;
    for (int64_t tile = first; tile < tiles; tile += step, it++) {
        cp_async_wait<STAGES - 2>();
        __syncwarp();   /* the other lanes' copies, and their reads of the stage refilled next */
        issue(tile + (STAGES - 1) * step, (it + STAGES - 1) % STAGES);
        __nv_bfloat16 *s = mine + (it % STAGES) * L::STAGE;
        const int64_t r0 = tile * TM;

        float acc[NJ][4] = {};
#pragma unroll 4
        for (int ks = 0; ks < KS; ks++) {
            uint32_t a[4];
            ldsm_x4(a, s + (lane & 15) * L::U_LD + 16 * ks + 8 * (lane >> 4));
#pragma unroll
            for (int nj = 0; nj < NJ; nj++) {
                const __nv_bfloat16 *b = wx_s + (8 * nj + g) * L::U_LD + 16 * ks + 2 * q;
                mma16816(acc[nj], a, ld32(b), ld32(b + 8));
            }
        }
        /* xdbl rounded once; rows g and g + 8 of the tile */
        uint32_t xb[NJ][2];
#pragma unroll
        for (int nj = 0; nj < NJ; nj++) {
            xb[nj][0] = pack_bf16(acc[nj][0], acc[nj][1]);
            xb[nj][1] = pack_bf16(acc[nj][2], acc[nj][3]);
            const int col = 8 * nj + 2 * q;
            if (r0 + g < rows) *reinterpret_cast<uint32_t *>(xdbl + (r0 + g) * ldxd + col) = xb[nj][0];
            if (r0 + g + 8 < rows) *reinterpret_cast<uint32_t *>(xdbl + (r0 + g + 8) * ldxd + col) = xb[nj][1];
        }

        /* delta = dt_in w_dt^T, dt_in the accumulator of xdbl's first n-tiles */
        const uint32_t a[4] = {xb[0][0], xb[0][1], R == 16 ? xb[R / 8 - 1][0] : 0u, R == 16 ? xb[R / 8 - 1][1] : 0u};
        __syncwarp();   /* every lane's ldmatrix of u done: the stage takes delta */
#pragma unroll 8
        for (int ne = 0; ne < NE; ne++) {
            const __nv_bfloat16 *b = wdt_s + (8 * ne + g) * R + 2 * q;
            float d[4] = {};
            mma16816(d, a, ld32(b), R == 16 ? ld32(b + 8) : 0u);
            const int col = 8 * ne + 2 * q;
            *reinterpret_cast<uint32_t *>(s + g * L::U_LD + col) = pack_bf16(d[0], d[1]);
            *reinterpret_cast<uint32_t *>(s + (g + 8) * L::U_LD + col) = pack_bf16(d[2], d[3]);
        }
        __syncwarp();
        for (int i = lane; i < TM * E / 8; i += 32) {
            const int r = i / (E / 8), c = 8 * (i % (E / 8));
            if (r0 + r < rows)
                *reinterpret_cast<uint4 *>(delta + (r0 + r) * ldd + c) =
                    *reinterpret_cast<const uint4 *>(s + r * L::U_LD + c);
        }
    }
    cp_async_wait<0>();
}

/* three stages (two tiles in flight a warp: 47 against 51 us at E 256, J
 * 40) where they fit in sm_90's 227 KB of shared memory a block */
template <int E, int R, int J>
cudaError_t launch(__nv_bfloat16 *xdbl, int64_t ldxd, __nv_bfloat16 *delta, int64_t ldd, const __nv_bfloat16 *u,
                   int64_t ldu, const __nv_bfloat16 *wx, const __nv_bfloat16 *wdt, int64_t rows, cudaStream_t s)
{
    constexpr int ST = xdt_layout<E, R, J, 3>::BYTES <= 227 * 1024 ? 3 : 2;
    constexpr size_t BYTES = xdt_layout<E, R, J, ST>::BYTES;
    cudaError_t e = cudaFuncSetAttribute(x_dt_proj_kernel<E, R, J, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)BYTES);
    if (e != cudaSuccess) return e;
    const int64_t warps = (rows + TM - 1) / TM, need = (warps + WARPS - 1) / WARPS, sms = mdk_sm_count();
    const unsigned grid = (unsigned)(need < sms ? need : sms);
    x_dt_proj_kernel<E, R, J, ST><<<grid, 32 * WARPS, BYTES, s>>>(xdbl, ldxd, delta, ldd, u, (int)ldu, wx, wdt, rows);
    return cudaGetLastError();
}

}   // namespace

int mdk_x_dt_proj_ok(const void *xdbl, int64_t ldxd, const void *delta, int64_t ldd, const void *u, int64_t ldu,
                     const void *wx, int64_t ldwx, const void *wdt, int64_t ldwdt, int64_t rows, int64_t e, int64_t r,
                     int64_t j)
{
    const bool shape =
        e == 256 && ((r == 8 && j == 40) || (r == 16 && j == 48)) && ldwx == e && ldwdt == r && rows >= 1;
    /* 16-byte copies of u's, the weights' and delta's rows; xdbl two columns at a time */
    const bool rows_ok = ldu % 8 == 0 && ldu <= INT32_MAX && ldd % 8 == 0 && ldxd % 2 == 0 && aligned(u, 16) &&
                         aligned(delta, 16) && aligned(xdbl, 4) && aligned(wx, 16) && aligned(wdt, 16);
    return shape && rows_ok && mdk_sm_count() > 0;
}

cudaError_t mdk_x_dt_proj(void *xdbl, int64_t ldxd, void *delta, int64_t ldd, const void *u, int64_t ldu,
                          const void *wx, const void *wdt, int64_t rows, int64_t e, int64_t r, int64_t j,
                          cudaStream_t s)
{
    __nv_bfloat16 *x = (__nv_bfloat16 *)xdbl, *d = (__nv_bfloat16 *)delta;
    const __nv_bfloat16 *ub = (const __nv_bfloat16 *)u, *wxb = (const __nv_bfloat16 *)wx,
                        *wdb = (const __nv_bfloat16 *)wdt;
    if (e == 256 && r == 8 && j == 40) return launch<256, 8, 40>(x, ldxd, d, ldd, ub, ldu, wxb, wdb, rows, s);
    if (e == 256 && r == 16 && j == 48) return launch<256, 16, 48>(x, ldxd, d, ldd, ub, ldu, wxb, wdb, rows, s);
    return cudaErrorInvalidValue;
}
