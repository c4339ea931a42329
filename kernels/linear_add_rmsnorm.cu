/* out_proj fused with the residual add and the RMSNorm after it
 * (backend_kernels.h, ops.h linear_add_rmsnorm_fwd): h = h_in + x w^T,
 * y = h * rstd * nw, rstd = 1 / sqrt(mean(h^2) + eps), for the Mamba
 * inference forward's block boundary, where the unfused path writes the
 * fp32 product and reads it back with the residual (NOTES-backend.md,
 * "classify: out_proj fused with the residual add and the next RMSNorm").
 *
 * A row of h (d <= 256 columns) is one warp's: the warp owns tiles of 16
 * whole rows, so no other warp touches a row and its sum of squares stays
 * inside the warp. w (d x k bf16, 64 KB at d 128, k 256) is loaded into
 * shared memory once per persistent CTA; each warp streams its x tiles
 * (16 x k bf16) through two shared stages of its own with cp.async, the
 * next tile's copy in flight while the current one is multiplied
 * (mma.sync m16n8k16, fp32 accumulation, fragments by ldmatrix.x4, no
 * branch in the loop), so warps never wait on each other after the weight
 * load. h_in's rows of the tile are loaded into registers before the
 * product (d <= 128) so that their latency hides behind it.
 *
 * Where k = 2 x the kernel's width (the classify shape, Mamba's E = 2 d)
 * the loads are spread through the product instead (SP): the k loop is
 * unrolled and the next tile's x copy goes out two cp.async a lane a step
 * over its first half, the next tile's h_in rows (a second register set)
 * over its second half. The warps of an SM, and the SMs, start together
 * and do the same work, so they stay in step: with every load issued at
 * the top of the iteration no SM had reads in flight while they all
 * multiplied, and the op cost its bytes and the product in series. On
 * the H200: 2.70 -> 2.37 ms a call; loading h_in a tile ahead at the top
 * gained nothing, a third x stage (6 warps) lost (NOTES-backend.md,
 * "Toward the floor").
 *
 * Two epilogues. Where d <= 128, k >= 2 x the kernel's width and the rows
 * of h, h_in and y take 4-wide accesses (the classify shape), the row
 * layout (rows_epilogue): the product goes through the consumed x stage
 * so that h and y leave as whole-row vector stores. Otherwise the fragment
 * layout: each lane stores its fragments' column pairs (8 rows of 16 or 32
 * bytes an instruction) and the sums run over the quad's 4 lanes. On the
 * H200 at the classify shape: 2.70 ms a call in row layout (2.37 with SP),
 * 3.32 ms in fragment layout, against 3.05 ms for cuBLAS's out_proj and
 * add_rmsnorm_fwd (NOTES-backend.md). rstd's arithmetic is rmsnorm.cu's
 * (the fp32 sum of squares, then 1 / sqrt in double); the sums run in
 * another order than its, and the product's in another than cuBLAS's.
 */
#include "backend_kernels.h"
#include "mma_bf16.cuh"
#include "storage.cuh"

#include <math.h>

namespace {

enum { TILE_ROWS = 16, MAX_WARPS = 8, MAX_D = 256 };

/* bf16 elements of one padded shared row of k columns */
__host__ __device__ constexpr int64_t padded(int64_t k) { return k + PAD; }

/* shared bytes for the weight (dp rows) and nw warps' two x stages */
size_t smem_bytes(int64_t dp, int64_t k, int nw)
{
    return (size_t)(dp + (int64_t)nw * 2 * TILE_ROWS) * (size_t)padded(k) * sizeof(__nv_bfloat16);
}

/* h_in's row `row` in row layout (lane: 4 consecutive columns, RC chunks
 * of 128 columns), zero past d and rows */
template <int RC>
__device__ __forceinline__ void load_hin_row(float (&v)[RC][4], const float *hin, int64_t ldhin, int64_t row,
                                             int64_t rows, int d, int lane)
{
#pragma unroll
    for (int j = 0; j < RC; j++) {
        const int c = 4 * lane + 128 * j;
        if (c < d && row < rows) ld_v<4>(hin + row * ldhin + c, v[j]);
        else v[j][0] = v[j][1] = v[j][2] = v[j][3] = 0;
    }
}

/* h_in's rows [row0, row0 + 16) */
template <int RC>
__device__ __forceinline__ void load_hin_rows(float (&hr)[TILE_ROWS][RC][4], const float *hin, int64_t ldhin,
                                              int64_t row0, int64_t rows, int d, int lane)
{
#pragma unroll
    for (int r = 0; r < TILE_ROWS; r++) load_hin_row<RC>(hr[r], hin, ldhin, row0 + r, rows, d, lane);
}

/* Queues the copy of rows [r0, r0 + 16) of x (k columns, row stride ldx)
 * into the padded stage xs, 16 bytes a cp.async from the warp's lanes
 * (k / 16 a lane: copy_x_part j = 0 ..); rows from `rows` on are
 * zero-filled (source size 0). */
__device__ __forceinline__ void copy_x_part(__nv_bfloat16 *xs, const __nv_bfloat16 *x, int64_t ldx, int64_t r0,
                                            int64_t rows, int k, int lane, int j)
{
    const int chunks = k / 8, i = lane + 32 * j;
    int r = i / chunks, c = 8 * (i - r * chunks);
    bool in = r0 + r < rows;
    uint32_t sa = (uint32_t)__cvta_generic_to_shared(xs + r * padded(k) + c);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa),
                 "l"(x + (in ? (r0 + r) * ldx + c : 0)), "r"(in ? 16 : 0));
}

__device__ __forceinline__ void copy_x_tile(__nv_bfloat16 *xs, const __nv_bfloat16 *x, int64_t ldx, int64_t r0,
                                            int64_t rows, int k, int lane)
{
    for (int j = 0; j < k / 16; j++) copy_x_part(xs, x, ldx, r0, rows, k, lane, j);
}

/* one k step of the product: the warp's 16 x 16 A fragments (a) against
 * every n-tile of W, two n-tiles an ldmatrix.x4 (b_ptr: kernel's lane
 * address) */
template <int NT>
__device__ __forceinline__ void product_step(float (&acc)[NT][4], const uint32_t a[4], const __nv_bfloat16 *b_ptr,
                                             int kp, int k0)
{
#pragma unroll
    for (int np = 0; np < NT / 2; np++) {
        uint32_t b[4];
        ldsm_x4(b, b_ptr + np * 16 * kp + k0);
        mma16816(acc[2 * np], a, b[0], b[1]);
        mma16816(acc[2 * np + 1], a, b[2], b[3]);
    }
}

/* one butterfly step of rows_epilogue's reduction: lanes with bit 2 N set
 * keep values N .. 2 N - 1 (the upper rows), their partners 0 .. N - 1,
 * each adding the partner's share of the rows it keeps */
template <int N>
__device__ __forceinline__ void fold_rows(float (&v)[TILE_ROWS], int lane)
{
    const bool up = lane & (2 * N);
#pragma unroll
    for (int i = 0; i < N; i++) {
        const float send = up ? v[i] : v[i + N], keep = up ? v[i + N] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 2 * N);
    }
    if constexpr (N > 1) fold_rows<N / 2>(v, lane);
}

/* The epilogue in row layout (ROWS): the product (fragments) goes through
 * the warp's consumed x stage, so that each lane holds 4 consecutive
 * columns of every row (h_in's too, hr, loaded that way before the
 * product) and h and y leave as whole-row vector stores (a 512-byte h row
 * one instruction) where the fragment layout stores 8 rows of 16 or 32
 * bytes an instruction. The 16 rows' sums of squares reduce across the
 * warp in one butterfly (16 values a lane halved at each step: 16
 * shuffles, not 5 for each row), leaving row lane / 2's sum in lane lane. */
template <int DP, int RC, typename TY>
__device__ __forceinline__ void rows_epilogue(__nv_bfloat16 *stage, float (&acc)[DP / 8][4],
                                              float (&hr)[TILE_ROWS][RC][4], float *h, int64_t ldh, TY *y,
                                              int64_t ldy, float *rstd, const float *nw, int64_t row0, int64_t rows,
                                              int d, double eps, int lane)
{
    constexpr int HS = DP + 4;   /* the scratch's row stride (floats) */
    float *hs = reinterpret_cast<float *>(stage);
    const int g = lane >> 2, c2 = 2 * (lane & 3);
#pragma unroll
    for (int nt = 0; nt < DP / 8; nt++) {
        *reinterpret_cast<float2 *>(hs + g * HS + 8 * nt + c2) = make_float2(acc[nt][0], acc[nt][1]);
        *reinterpret_cast<float2 *>(hs + (g + 8) * HS + 8 * nt + c2) = make_float2(acc[nt][2], acc[nt][3]);
    }
    __syncwarp();
    float v[TILE_ROWS];
#pragma unroll
    for (int r = 0; r < TILE_ROWS; r++) {
        v[r] = 0;
#pragma unroll
        for (int j = 0; j < RC; j++) {
            const int c = 4 * lane + 128 * j;
            if (c >= d) continue;
            const float4 p = *reinterpret_cast<const float4 *>(hs + r * HS + c);
            hr[r][j][0] += p.x, hr[r][j][1] += p.y, hr[r][j][2] += p.z, hr[r][j][3] += p.w;
#pragma unroll
            for (int e = 0; e < 4; e++) v[r] += hr[r][j][e] * hr[r][j][e];
        }
    }
    fold_rows<TILE_ROWS / 2>(v, lane);
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], 1);
    const float rs = (float)(1.0 / sqrt((double)v[0] / (double)d + eps));
    if (!(lane & 1) && row0 + (lane >> 1) < rows) rstd[row0 + (lane >> 1)] = rs;
#pragma unroll
    for (int r = 0; r < TILE_ROWS; r++) {
        const float rr = __shfl_sync(0xffffffffu, rs, 2 * r);
        const int64_t row = row0 + r;
        if (row >= rows) continue;
#pragma unroll
        for (int j = 0; j < RC; j++) {
            const int c = 4 * lane + 128 * j;
            if (c >= d) continue;
            float out[4];
#pragma unroll
            for (int e = 0; e < 4; e++) out[e] = hr[r][j][e] * rr * nw[c + e];
            st_v<4>(h + row * ldh + c, hr[r][j]);
            st_v<4>(y + row * ldy + c, out);
        }
    }
}

/* DP: d rounded up to the instantiation's width (64, 128, 256); n-tiles
 * from d on are skipped. TY: y's storage. SP (ROWS, k = 2 DP): the next
 * tile's x copy and h_in rows spread over the product (see the header). */
template <int DP, typename TY, bool ROWS, bool SP>
__global__ void __launch_bounds__(MAX_WARPS * 32, 1)
    linear_add_rmsnorm_kernel(float *__restrict__ h, int64_t ldh, TY *__restrict__ y, int64_t ldy,
                              float *__restrict__ rstd, const __nv_bfloat16 *__restrict__ x, int64_t ldx,
                              const __nv_bfloat16 *__restrict__ w, int64_t ldw, const float *__restrict__ hin,
                              int64_t ldhin, const float *__restrict__ nw, int64_t rows, int d, int k, double eps)
{
    constexpr int NT = DP / 8;        /* n-tiles of 8 columns */
    constexpr bool EARLY = DP <= 128; /* h_in in registers during the product */
    constexpr int RC = (DP + 127) / 128;  /* ROWS: a lane's 4-column chunks of a row */
    extern __shared__ uint4 smem_raw[];
    __nv_bfloat16 *ws = reinterpret_cast<__nv_bfloat16 *>(smem_raw);
    const int kp = (int)padded(k), lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __nv_bfloat16 *xs = ws + DP * kp + warp * 2 * TILE_ROWS * kp;

    const int chunks = k / 8;
    for (int i = threadIdx.x; i < DP * chunks; i += blockDim.x) {
        int r = i / chunks, c = 8 * (i - r * chunks);
        uint4 v = r < d ? *reinterpret_cast<const uint4 *>(w + r * ldw + c) : make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4 *>(ws + r * kp + c) = v;
    }
    __syncthreads();

    const int g = lane >> 2, c2 = 2 * (lane & 3);
    const int64_t n_tiles = (rows + TILE_ROWS - 1) / TILE_ROWS, stride = (int64_t)gridDim.x * nwarps;
    int64_t t = (int64_t)blockIdx.x * nwarps + warp;
    if (t < n_tiles) copy_x_tile(xs, x, ldx, t * TILE_ROWS, rows, k, lane);
    cp_async_commit();
    /* ROWS: h_in's rows of tile t (hr); SP: those of the next tile too (hn) */
    float hr[ROWS ? TILE_ROWS : 1][ROWS ? RC : 1][4], hn[SP ? TILE_ROWS : 1][SP ? RC : 1][4];
    if constexpr (SP) load_hin_rows<RC>(hr, hin, ldhin, t * TILE_ROWS, rows, d, lane);
    for (int s = 0; t < n_tiles; t += stride, s ^= 1) {
        if constexpr (!SP) {
            if (t + stride < n_tiles)
                copy_x_tile(xs + (s ^ 1) * TILE_ROWS * kp, x, ldx, (t + stride) * TILE_ROWS, rows, k, lane);
            cp_async_commit();
        }
        const int64_t r0 = t * TILE_ROWS + g, r1 = r0 + 8;
        const bool in0 = r0 < rows, in1 = r1 < rows;
        float2 hv[EARLY && !ROWS ? NT : 1][2];
        if constexpr (SP) {
        } else if constexpr (ROWS) {
            load_hin_rows<RC>(hr, hin, ldhin, t * TILE_ROWS, rows, d, lane);
        } else if constexpr (EARLY) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int col = 8 * nt + c2;
                hv[nt][0] = nt * 8 < d && in0 ? ld_pair(hin + r0 * ldhin + col) : make_float2(0, 0);
                hv[nt][1] = nt * 8 < d && in1 ? ld_pair(hin + r1 * ldhin + col) : make_float2(0, 0);
            }
        }
        if constexpr (SP) cp_async_wait<0>();   /* SP commits the next tile's copy after the product */
        else cp_async_wait<1>();
        __syncwarp();

        /* ldmatrix.x4 lane addresses: A's four 8 x 8 quarters (rows 0-7 /
         * 8-15, columns k0 / k0 + 8: a[0..3]); two n-tiles of W (b0, b1 of
         * n-tile 2 np, then of 2 np + 1). n-tiles past d multiply W's zero
         * rows: no branch in the loop. */
        const __nv_bfloat16 *a_ptr = xs + s * TILE_ROWS * kp + (lane & 15) * kp + ((lane >> 4) << 3);
        const __nv_bfloat16 *b_ptr = ws + ((lane & 7) + ((lane >> 4) << 3)) * kp + (((lane >> 3) & 1) << 3);
        float acc[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0;
        if constexpr (SP) {
            /* k = 2 DP: KS steps, the next tile's x copy spread over the
             * first half (copy_x_tile's k / 16 cp.async a lane, two a
             * step), its h_in rows over the second (HR a step) */
            constexpr int KS = DP / 8, HR = 2 * TILE_ROWS / KS;
            const int64_t tn = t + stride;
            __nv_bfloat16 *xn = xs + (s ^ 1) * TILE_ROWS * kp;
#pragma unroll
            for (int i = 0; i < KS; i++) {
                const int k0 = 16 * i;
                uint32_t a[4];
                ldsm_x4(a, a_ptr + k0);
                if (i < KS / 2) {
                    if (tn < n_tiles) {
                        copy_x_part(xn, x, ldx, tn * TILE_ROWS, rows, k, lane, 2 * i);
                        copy_x_part(xn, x, ldx, tn * TILE_ROWS, rows, k, lane, 2 * i + 1);
                    }
                } else {
#pragma unroll
                    for (int r = (i - KS / 2) * HR; r < (i - KS / 2 + 1) * HR; r++)
                        load_hin_row<RC>(hn[r], hin, ldhin, tn * TILE_ROWS + r, rows, d, lane);
                }
                product_step<NT>(acc, a, b_ptr, kp, k0);
            }
            cp_async_commit();
        } else {
#pragma unroll 2
            for (int k0 = 0; k0 < k; k0 += 16) {
                uint32_t a[4];
                ldsm_x4(a, a_ptr + k0);
                product_step<NT>(acc, a, b_ptr, kp, k0);
            }
        }
        __syncwarp();   /* the stage is read: ROWS uses it as scratch */
        if constexpr (ROWS) {
            rows_epilogue<DP, RC>(xs + s * TILE_ROWS * kp, acc, hr, h, ldh, y, ldy, rstd, nw, t * TILE_ROWS, rows, d,
                                  eps, lane);
            if constexpr (SP) {
#pragma unroll
                for (int r = 0; r < TILE_ROWS; r++)
#pragma unroll
                    for (int j = 0; j < RC; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++) hr[r][j][e] = hn[r][j][e];
            }
            __syncwarp();   /* the next iteration's copy overwrites the scratch */
            continue;
        }

        float ss[2] = {0, 0};
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= d) break;
            const int col = 8 * nt + c2;
            float2 a0 = EARLY ? hv[EARLY && !ROWS ? nt : 0][0] : in0 ? ld_pair(hin + r0 * ldhin + col) : make_float2(0, 0);
            float2 a1 = EARLY ? hv[EARLY && !ROWS ? nt : 0][1] : in1 ? ld_pair(hin + r1 * ldhin + col) : make_float2(0, 0);
            acc[nt][0] += a0.x, acc[nt][1] += a0.y, acc[nt][2] += a1.x, acc[nt][3] += a1.y;
            ss[0] += acc[nt][0] * acc[nt][0] + acc[nt][1] * acc[nt][1];
            ss[1] += acc[nt][2] * acc[nt][2] + acc[nt][3] * acc[nt][3];
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            ss[i] += __shfl_xor_sync(0xffffffffu, ss[i], 1);
            ss[i] += __shfl_xor_sync(0xffffffffu, ss[i], 2);
            ss[i] = (float)(1.0 / sqrt((double)ss[i] / (double)d + eps));
        }
        if (c2 == 0) {
            if (in0) rstd[r0] = ss[0];
            if (in1) rstd[r1] = ss[1];
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (nt * 8 >= d) break;
            const int col = 8 * nt + c2;
            const float2 wv = ld_pair(nw + col);
            if (in0) {
                st_pair(h + r0 * ldh + col, make_float2(acc[nt][0], acc[nt][1]));
                st_pair(y + r0 * ldy + col, make_float2(acc[nt][0] * ss[0] * wv.x, acc[nt][1] * ss[0] * wv.y));
            }
            if (in1) {
                st_pair(h + r1 * ldh + col, make_float2(acc[nt][2], acc[nt][3]));
                st_pair(y + r1 * ldy + col, make_float2(acc[nt][2] * ss[1] * wv.x, acc[nt][3] * ss[1] * wv.y));
            }
        }
    }
    cp_async_wait<0>();
}

/* warps a CTA of this call gets: as many as shared memory holds, up to
 * MAX_WARPS; 0 when not even one fits beside the weight */
int warps_for(int64_t dp, int64_t k, int64_t smem_max)
{
    int nw = MAX_WARPS;
    while (nw > 0 && (int64_t)smem_bytes(dp, k, nw) > smem_max) nw--;
    return nw;
}

int64_t width_of(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

/* the opt-in shared memory of a CTA and the SM count of the current device */
cudaError_t smem_limit(int64_t *bytes, int *sms)
{
    int dev = 0, v = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev);
    *bytes = v;
    return e;
}

template <int DP, typename TY, bool ROWS, bool SP>
cudaError_t launch_as(float *h, int64_t ldh, TY *y, int64_t ldy, float *rstd, const __nv_bfloat16 *x, int64_t ldx,
                      const __nv_bfloat16 *w, int64_t ldw, const float *hin, int64_t ldhin, const float *nw,
                      int64_t rows, int64_t d, int64_t k, double eps, int64_t smem_max, int sms, cudaStream_t s)
{
    const int nwarps = warps_for(DP, k, smem_max);
    const size_t bytes = smem_bytes(DP, k, nwarps);
    cudaError_t e = cudaFuncSetAttribute(linear_add_rmsnorm_kernel<DP, TY, ROWS, SP>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return e;
    const int64_t tiles = (rows + TILE_ROWS - 1) / TILE_ROWS, need = (tiles + nwarps - 1) / nwarps;
    const unsigned grid = (unsigned)(need < sms ? need : sms);
    linear_add_rmsnorm_kernel<DP, TY, ROWS, SP><<<grid, nwarps * 32, bytes, s>>>(h, ldh, y, ldy, rstd, x, ldx, w, ldw,
                                                                                 hin, ldhin, nw, rows, (int)d, (int)k,
                                                                                 eps);
    return cudaGetLastError();
}

/* the row-layout epilogue where d <= 128, the scratch (16 rows of DP + 4
 * floats) fits in an x stage (k >= 2 DP), and h, h_in and y take 4-wide
 * vector accesses; with the loads spread through the product (SP) where
 * k = 2 DP, whose unrolled loop splits copy_x_tile's k / 16 cp.async a
 * lane two a step */
template <int DP, typename TY>
cudaError_t launch(float *h, int64_t ldh, TY *y, int64_t ldy, float *rstd, const __nv_bfloat16 *x, int64_t ldx,
                   const __nv_bfloat16 *w, int64_t ldw, const float *hin, int64_t ldhin, const float *nw,
                   int64_t rows, int64_t d, int64_t k, double eps, int64_t smem_max, int sms, cudaStream_t s)
{
    const bool rows_ok = DP <= 128 && k >= 2 * DP && ldh % 4 == 0 && aligned(h, 16) && ldhin % 4 == 0 &&
                         aligned(hin, 16) && ldy % 4 == 0 && aligned(y, 4 * sizeof(TY));
    if (rows_ok && k == 2 * DP)
        return launch_as<DP, TY, DP <= 128, DP <= 128>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k,
                                                       eps, smem_max, sms, s);
    if (rows_ok)
        return launch_as<DP, TY, DP <= 128, false>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k,
                                                   eps, smem_max, sms, s);
    return launch_as<DP, TY, false, false>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k, eps,
                                           smem_max, sms, s);
}

template <typename TY>
cudaError_t dispatch(float *h, int64_t ldh, TY *y, int64_t ldy, float *rstd, const __nv_bfloat16 *x, int64_t ldx,
                     const __nv_bfloat16 *w, int64_t ldw, const float *hin, int64_t ldhin, const float *nw,
                     int64_t rows, int64_t d, int64_t k, double eps, int64_t smem_max, int sms, cudaStream_t s)
{
    switch (width_of(d)) {
    case 64:
        return launch<64>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k, eps, smem_max, sms, s);
    case 128:
        return launch<128>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k, eps, smem_max, sms, s);
    default:
        return launch<256>(h, ldh, y, ldy, rstd, x, ldx, w, ldw, hin, ldhin, nw, rows, d, k, eps, smem_max, sms, s);
    }
}

}   // namespace

int mdk_linear_add_rmsnorm_ok(const float *h, int64_t ldh, const void *y, int64_t ldy, int y_bf16, const void *x,
                              int64_t ldx, const void *w, int64_t ldw, const float *hin, int64_t ldhin, int64_t d,
                              int64_t k)
{
    int64_t smem_max = 0;
    int sms = 0;
    if (d < 16 || d > MAX_D || d % 16 || k < 16 || k % 16 || k > INT32_MAX / 2) return 0;
    if (smem_limit(&smem_max, &sms) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    if (warps_for(width_of(d), k, smem_max) == 0) return 0;
    /* 16-byte cp.async rows of x and w; pairs of h, h_in and y */
    const size_t ye = y_bf16 ? 2 : 4;
    return ldx % 8 == 0 && aligned(x, 16) && ldw % 8 == 0 && aligned(w, 16) && ldh % 2 == 0 && aligned(h, 8) &&
           ldhin % 2 == 0 && aligned(hin, 8) && ldy % 2 == 0 && aligned(y, 2 * ye);
}

cudaError_t mdk_linear_add_rmsnorm_fwd(float *h, int64_t ldh, void *y, int64_t ldy, int y_bf16, float *rstd,
                                       const void *x, int64_t ldx, const void *w, int64_t ldw, const float *hin,
                                       int64_t ldhin, const float *nw, int64_t rows, int64_t d, int64_t k, double eps,
                                       cudaStream_t s)
{
    if (rows == 0) return cudaSuccess;
    int64_t smem_max = 0;
    int sms = 0;
    cudaError_t e = smem_limit(&smem_max, &sms);
    if (e != cudaSuccess) return e;
    const __nv_bfloat16 *xb = static_cast<const __nv_bfloat16 *>(x), *wb = static_cast<const __nv_bfloat16 *>(w);
    if (y_bf16)
        return dispatch(h, ldh, static_cast<__nv_bfloat16 *>(y), ldy, rstd, xb, ldx, wb, ldw, hin, ldhin, nw, rows, d,
                        k, eps, smem_max, sms, s);
    return dispatch(h, ldh, static_cast<float *>(y), ldy, rstd, xb, ldx, wb, ldw, hin, ldhin, nw, rows, d, k, eps,
                    smem_max, sms, s);
}
