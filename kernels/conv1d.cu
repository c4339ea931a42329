/* Causal depthwise conv1d + SiLU, forward and backward (backend_kernels.h).
 * (B, L, E) layout, channel fastest: a thread per (row, channel) reads
 * coalesced rows. The backward recomputes the pre-activation from x (as
 * the CPU does) instead of saving it: K^2 = 16 FMAs per element. The
 * sequence tensors (x, y, dx, dy) are fp32 or all bf16 (template T); the
 * weights, their gradients and all arithmetic are fp32. */
#include "backend_kernels.h"

#include <math.h>

#include "conv1d_pair.cuh"
#include "fastmath.cuh"
#include "storage.cuh"

__device__ static inline float sigmoidf_(float x)
{
    float e = expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x < 0.0f ? e * r : r;
}

/* pre-activation at row (b, t) of channel e */
template <typename T>
__device__ static inline float conv_pre(const T *x, int64_t ldx, const float *w, float bias, int64_t row0,
                                        int64_t t, int64_t e, int K)
{
    float acc = bias;
    for (int k = t < K - 1 ? K - 1 - (int)t : 0; k < K; k++) acc += w[e * K + k] * ld_f(x + (row0 + t - K + 1 + k) * ldx + e);
    return acc;
}

template <typename T>
__global__ void conv_fwd_kernel(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w,
                                const float *bias, int64_t rows, int64_t len, int64_t dim, int K)
{
    int64_t n = rows * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, e = i - r * dim, t = r % len;
        float p = conv_pre(x, ldx, w, bias[e], r - t, t, e, K);
        st_f(y + r * ldy + e, p * sigmoidf_(p));
    }
}

/* Width known at compile time (the Mamba block's 4), for rows the staged
 * kernels below cannot take (E or a stride not a multiple of 16 bytes'
 * elements, or misaligned; their pace before those: NOTES-backend.md,
 * "conv1d + SiLU tiles staged through shared memory"): each thread owns
 * kConvRows consecutive rows of V adjacent channels (2 where the rows'
 * alignment allows: one load or store for both, so that a warp moves whole
 * 128-byte lines in bf16) and slides the x window along them in registers,
 * with one 64-bit division per tile where the generic kernel below takes
 * two per element and reloads every tap. 4 channels a lane (8-byte bf16
 * accesses) measured slower in both directions on the H200
 * (NOTES-backend.md, "The Mamba step around the scan": forward 98 -> 109
 * us, backward 351 -> 426 us at E 256, B x L 131072): the registers of the
 * wider window halve the warps per SM. */
constexpr int kConvRows = 16;          /* rows per thread */
constexpr int kConvTilesPerBlock = 8;  /* threadIdx.y; threadIdx.x: 32 channel groups */

template <typename T, int K, int V>
__global__ void __launch_bounds__(256) conv_fwd_rows_kernel(T *y, int64_t ldy, const T *x, int64_t ldx,
                                                          const float *w, const float *bias, int64_t rows,
                                                          int64_t len, int64_t dim)
{
    constexpr int NX = kConvRows + K - 1;
    const int64_t e = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    if (e >= dim) return;
    float wk[V][K], b[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
#pragma unroll
        for (int k = 0; k < K; k++) wk[v][k] = w[(e + v) * K + k];
        b[v] = bias[e + v];
    }
    const int64_t ntiles = (rows + kConvRows - 1) / kConvRows;
    for (int64_t tile = (int64_t)blockIdx.y * kConvTilesPerBlock + threadIdx.y; tile < ntiles;
         tile += (int64_t)gridDim.y * kConvTilesPerBlock) {
        const int64_t r0 = tile * kConvRows;
        float xs[NX][V];   /* x at rows r0 - (K-1) + j */
#pragma unroll
        for (int j = 0; j < NX; j++) {
            const int64_t r = r0 - (K - 1) + j;
            if (r < 0 || r >= rows) {
#pragma unroll
                for (int v = 0; v < V; v++) xs[j][v] = 0.f;
            } else {
                ld_v<V>(x + r * ldx + e, xs[j]);
            }
        }
        int64_t t = r0 % len;
#pragma unroll
        for (int i = 0; i < kConvRows; i++) {
            const int64_t r = r0 + i;
            if (r < rows) {
                const int tc = (int)(t < K - 1 ? t : K - 1);
                float out[V];
#pragma unroll
                for (int v = 0; v < V; v++) {
                    float p = b[v];
#pragma unroll
                    for (int k = 0; k < K; k++)
                        if (tc - (K - 1) + k >= 0) p += wk[v][k] * xs[i + k][v];
                    out[v] = p * sigmoidf_(p);
                }
                st_v<V>(y + r * ldy + e, out);
            }
            if (++t == len) t = 0;
        }
    }
}

/* the channels a lane (2 or 1) that dim, the strides and the pointers of
 * a call allow */
static int conv_vec_width(int64_t dim, size_t es, const void *a, int64_t lda, const void *b, int64_t ldb,
                          const void *c, int64_t ldc)
{
    return vec_ok(2, dim, es, a, lda, b, ldb, c, ldc) ? 2 : 1;
}

static unsigned grid_of(int64_t n)
{
    int64_t g = (n + 255) / 256;
    return (unsigned)(g > 1048576 ? 1048576 : (g < 1 ? 1 : g));
}

/* ---- Staged tiles: the width-4 kernels for 16-byte aligned rows ----
 * The row kernels above keep ~19 narrow loads in flight a thread and
 * moved 0.5 TB/s in the backward (NOTES-backend.md, "The Mamba step
 * around the scan"). Here a block
 * of 256 threads owns a tile of rows x CW channels (CW: one 16-byte vector
 * a lane across a warp, 256 bf16 or 128 fp32 channels) and first copies
 * its rows and their halo (3 rows before the tile for x; 3 after it too,
 * and dy's, in the backward) into shared memory, every lane's 16-byte
 * loads issued before any is stored, so that a block has its whole tile in
 * flight at once. Then each thread slides a window of channel pairs down
 * its S = R / SEGS of the tile's R rows from shared memory, with the
 * arithmetic (and its order) of the row kernels. MD_CONV_STAGED=0 keeps
 * the row kernels; the -D switches below are for tools/conv1d_bench.cu. */
#ifndef MD_CONV_STAGED
#define MD_CONV_STAGED 1
#endif
#ifndef MD_CONV_FWD_TILE_ROWS
#define MD_CONV_FWD_TILE_ROWS 64
#endif
#ifndef MD_CONV_BWD_TILE_ROWS
#define MD_CONV_BWD_TILE_ROWS 32
#endif
#ifndef MD_CONV_BWD_MIN_BLOCKS /* blocks an SM the backward's registers must allow */
#define MD_CONV_BWD_MIN_BLOCKS 3
#endif

constexpr int kStageThreads = 256;

template <typename T> struct ConvStage {
    static constexpr int VE = 16 / (int)sizeof(T);        /* elements in a 16-byte vector */
    static constexpr int CW = 32 * VE;                    /* channels a block */
    static constexpr int SEGS = kStageThreads / (CW / 2); /* row segments: threads a channel pair */
};

/* Rows first .. first + NR - 1 of channels c0 .. c0 + CW - 1 of a (rows,
 * dim) view, zeros outside it: load() issues a thread's share of the
 * 16-byte loads into registers, store() puts them into shared memory
 * ([NR][CW] as 16-byte vectors). A kernel loads all its tiles before it
 * stores any, so that every load is in flight at once. */
template <typename T, int NR> struct ConvTile {
    static constexpr int N = NR * 32, J = (N + kStageThreads - 1) / kStageThreads;
    uint4 v[J];

    __device__ __forceinline__ void load(const T *src, int64_t ld, int64_t first, int64_t rows, int64_t c0,
                                         int64_t dim)
    {
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int i = j * kStageThreads + (int)threadIdx.x;
            const int64_t r = first + i / 32, c = c0 + (int64_t)(i % 32) * ConvStage<T>::VE;
            v[j] = make_uint4(0, 0, 0, 0);
            if (i < N && r >= 0 && r < rows && c < dim) v[j] = __ldg((const uint4 *)(src + r * ld + c));
        }
    }
    __device__ __forceinline__ void store(uint4 *sh) const
    {
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int i = j * kStageThreads + (int)threadIdx.x;
            if (i < N) sh[i] = v[j];
        }
    }
};

/* A window of channel pairs at position t of its sequence: the taps
 * before the sequence's start become zeros (x * 0 adds nothing, as the
 * row kernels' masked sum), for the staged forward and backward alike */
template <int K>
__device__ __forceinline__ void zero_taps_before_start(float (&win)[K][2], int t)
{
    if (t < K - 1) {
#pragma unroll
        for (int k = 0; k < K - 1; k++)
            if (k < K - 1 - t) win[k][0] = win[k][1] = 0.f;
    }
}

/* The forward's sum and gate are its whole arithmetic (~1G elements in
 * classify's forward), so it takes the fast forms: the taps before a
 * sequence's start are zeros in the window (x * 0 adds nothing: the row
 * kernels' masked sum, bit for bit) instead of a mask an element, the
 * sigmoid the SFU's (md_sigmoid: ex2, rcp) instead of expf and an IEEE
 * division, and the row count and position as int; NOTES-backend.md,
 * "conv1d + SiLU forward in fast math". */
template <typename T, int R>
__global__ void __launch_bounds__(kStageThreads)
    conv_fwd_staged_kernel(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w, const float *bias,
                           int64_t rows, int64_t len, int64_t dim)
{
    constexpr int K = 4, CW = ConvStage<T>::CW, S = R / ConvStage<T>::SEGS, NR = R + K - 1;
    __shared__ uint4 shx[NR * 32];
    const int64_t r0 = (int64_t)blockIdx.x * R, c0 = (int64_t)blockIdx.y * CW;
    {
        ConvTile<T, NR> tx;
        tx.load(x, ldx, r0 - (K - 1), rows, c0, dim);
        tx.store(shx);
    }
    const int pair = (int)threadIdx.x % (CW / 2), seg = (int)threadIdx.x / (CW / 2);
    const int64_t e = c0 + 2 * pair, rs = r0 + (int64_t)seg * S;
    const bool active = e < dim && rs < rows;
    float wk[2][K], b[2];
#pragma unroll
    for (int v = 0; v < 2; v++) {
#pragma unroll
        for (int k = 0; k < K; k++) wk[v][k] = active ? w[(e + v) * K + k] : 0.f;
        b[v] = active ? bias[e + v] : 0.f;
    }
    __syncthreads();
    if (!active) return;
    const T *xs = (const T *)shx + (int64_t)seg * S * CW + 2 * pair; /* x at row rs - (K-1) + j: xs[j * CW] */
    float win[K][2];
#pragma unroll
    for (int j = 0; j < K - 1; j++) ld_v<2>(xs + j * CW, win[j]);
    const int nrows = (int)min((int64_t)S, rows - rs);
    /* the warp's lanes share their rows, so the sequence-start branch is uniform */
    int t = (int)(rs % len), ilen = (int)len;
    T *yp = y + rs * ldy + e;
#pragma unroll
    for (int i = 0; i < S; i++) {
        if (i >= nrows) break;
        ld_v<2>(xs + (i + K - 1) * CW, win[K - 1]);
        zero_taps_before_start<K>(win, t);
        float out[2];
        conv_silu_pair<K>(out, win, wk, b);
        st_v<2>(yp, out);
        yp += ldy;
        if (++t == ilen) t = 0;
    }
}

/* dx of the tile's rows and the dw / dbias terms of its rows, summed over
 * the block's tiles (blockIdx.x, + gridDim.x, ...) into one slice of
 * partials as conv_bwd_rows_kernel's; a thread's S rows take the pre-
 * activation gradients of the K - 1 rows after them too, recomputed. The
 * forward's fast forms (above) here too: the zeroed window serves the
 * pre-activation and the dw terms (dp * 0 adds nothing), md_sigmoid, int
 * positions, and dx's mask of the next sequence's rows only in the branch
 * of the K - 1 rows before a sequence's end; NOTES-backend.md, "The Mamba
 * step around the scan, continued". */
template <typename T, int R>
__global__ void __launch_bounds__(kStageThreads, MD_CONV_BWD_MIN_BLOCKS)
    conv_bwd_staged_kernel(T *dx, int64_t lddx, float *part, int64_t ld_part, const T *dy, int64_t lddy, const T *x,
                           int64_t ldx, const float *w, const float *bias, int64_t rows, int64_t len, int64_t dim)
{
    constexpr int K = 4, CW = ConvStage<T>::CW, SEGS = ConvStage<T>::SEGS, S = R / SEGS;
    constexpr int NX = R + 2 * (K - 1), NY = R + K - 1;
    static_assert(NX * 32 * 16 >= SEGS * (K + 1) * CW * 4, "the partials' reduction reuses shx");
    __shared__ uint4 shx[NX * 32], shy[NY * 32];
    const int64_t c0 = (int64_t)blockIdx.y * CW;
    const int pair = (int)threadIdx.x % (CW / 2), seg = (int)threadIdx.x / (CW / 2);
    const int64_t e = c0 + 2 * pair;
    float wk[2][K], b[2], acc[K + 1][2];
#pragma unroll
    for (int v = 0; v < 2; v++) {
#pragma unroll
        for (int k = 0; k < K; k++) wk[v][k] = e < dim ? w[(e + v) * K + k] : 0.f;
        b[v] = e < dim ? bias[e + v] : 0.f;
#pragma unroll
        for (int k = 0; k <= K; k++) acc[k][v] = 0.f;
    }
    const int64_t ntiles = (rows + R - 1) / R;
    const int ilen = (int)len;
    for (int64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        const int64_t r0 = tile * R, rs = r0 + (int64_t)seg * S;
        __syncthreads(); /* the previous tile's reads are done */
        {
            ConvTile<T, NX> tx;
            ConvTile<T, NY> tg;
            tx.load(x, ldx, r0 - (K - 1), rows, c0, dim);
            tg.load(dy, lddy, r0, rows, c0, dim);
            tx.store(shx);
            tg.store(shy);
        }
        __syncthreads();
        if (e >= dim || rs >= rows) continue;
        const T *xs = (const T *)shx + seg * S * CW + 2 * pair; /* x at row rs - (K-1) + j */
        const T *gs = (const T *)shy + seg * S * CW + 2 * pair; /* dy at row rs + i */
        float win[K][2], dpw[K][2];  /* x at rows i - (K-1) .. i; dp at rows i - (K-1) .. i */
#pragma unroll
        for (int j = 0; j < K - 1; j++) ld_v<2>(xs + j * CW, win[j]);
        const int nrows = (int)min((int64_t)S, rows - rs);
        /* the warp's lanes share their rows, so both sequence-boundary
         * branches below are uniform; t: row i's position in its sequence,
         * left: rows after row i - (K-1) in its sequence */
        int t = (int)(rs % len), left = ilen - 1 - t;
        T *dxp = dx + rs * lddx + e;
#pragma unroll
        for (int i = 0; i < S + K - 1; i++) {
            ld_v<2>(xs + (i + K - 1) * CW, win[K - 1]);
            zero_taps_before_start<K>(win, t);
            float g[2];
            ld_v<2>(gs + i * CW, g);
            const bool own = i < nrows;
#pragma unroll
            for (int v = 0; v < 2; v++) {
                float p = b[v];
#pragma unroll
                for (int k = 0; k < K; k++) p += wk[v][k] * win[k][v];
                const float sg = md_sigmoid(p);
                dpw[K - 1][v] = g[v] * sg * (1 + p * (1 - sg));
                if (own) {
#pragma unroll
                    for (int k = 0; k < K; k++) acc[k][v] += dpw[K - 1][v] * win[k][v];
                    acc[K][v] += dpw[K - 1][v];
                }
            }
            if (i >= K - 1) {
                if (i - (K - 1) >= nrows) break;
                float a[2];
#pragma unroll
                for (int v = 0; v < 2; v++) {
                    a[v] = 0;
                    if (left >= K - 1) {
#pragma unroll
                        for (int k = K - 1; k >= 0; k--) a[v] += wk[v][k] * dpw[K - 1 - k][v];
                    } else {
#pragma unroll
                        for (int k = K - 1; k >= 0; k--)
                            if (K - 1 - k <= left) a[v] += wk[v][k] * dpw[K - 1 - k][v];
                    }
                }
                st_v<2>(dxp, a);
                dxp += lddx;
                left = left == 0 ? ilen - 1 : left - 1;
            }
#pragma unroll
            for (int k = 0; k < K - 1; k++)
#pragma unroll
                for (int v = 0; v < 2; v++) win[k][v] = win[k + 1][v], dpw[k][v] = dpw[k + 1][v];
            if (++t == ilen) t = 0;
        }
    }
    __syncthreads();
    float *sh = (float *)shx; /* [SEGS][K + 1][CW] */
#pragma unroll
    for (int k = 0; k <= K; k++)
#pragma unroll
        for (int v = 0; v < 2; v++) sh[(seg * (K + 1) + k) * CW + 2 * pair + v] = acc[k][v];
    __syncthreads();
    for (int i = (int)threadIdx.x; i < (K + 1) * CW; i += kStageThreads) {
        const int k = i / CW, c = i % CW;
        const int64_t ev = c0 + c;
        if (ev >= dim) continue;
        float sum = 0;
        for (int j = 0; j < SEGS; j++) sum += sh[(j * (K + 1) + k) * CW + c];
        part[(int64_t)blockIdx.x * ld_part + (k == K ? dim * K + ev : ev * K + k)] = sum;
    }
}

/* 1 when a width-4 call's rows suit the staged kernels (16-byte vectors) */
template <typename T>
static bool conv_staged_ok(int64_t dim, const void *a, int64_t lda, const void *b, int64_t ldb, const void *c,
                           int64_t ldc)
{
    return MD_CONV_STAGED && vec_ok(ConvStage<T>::VE, dim, sizeof(T), a, lda, b, ldb, c, ldc);
}

template <typename T>
static cudaError_t conv1d_silu_fwd_staged(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w,
                                          const float *bias, int64_t rows, int64_t len, int64_t dim, cudaStream_t s)
{
    constexpr int R = MD_CONV_FWD_TILE_ROWS;
    const int64_t gx = (rows + R - 1) / R, gy = (dim + ConvStage<T>::CW - 1) / ConvStage<T>::CW;
    if (gx > INT32_MAX || gy > 65535) return cudaErrorInvalidConfiguration;
    conv_fwd_staged_kernel<T, R><<<dim3((unsigned)gx, (unsigned)gy), kStageThreads, 0, s>>>(y, ldy, x, ldx, w, bias,
                                                                                             rows, len, dim);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t conv1d_silu_bwd_staged(T *dx, int64_t lddx, float *dw, float *dbias, const T *dy, int64_t lddy,
                                          const T *x, int64_t ldx, const float *w, const float *bias, int64_t rows,
                                          int64_t len, int64_t dim, float *scratch, size_t scratch_floats,
                                          cudaStream_t s)
{
    constexpr int R = MD_CONV_BWD_TILE_ROWS, K = 4;
    /* as many blocks as fit on the GPU at once, so that each takes the
     * same number of tiles and there is no second, partial wave */
    static int resident = 0;
    if (resident == 0) {
        int dev = 0, sms = 0, per_sm = 0;
        cudaError_t e = cudaGetDevice(&dev);
        if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        if (e == cudaSuccess)
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, conv_bwd_staged_kernel<T, R>, kStageThreads, 0);
        if (e != cudaSuccess) return e;
        resident = sms * per_sm > 0 ? sms * per_sm : 1;
    }
    const int64_t ldp = dim * (K + 1), gy = (dim + ConvStage<T>::CW - 1) / ConvStage<T>::CW;
    const int64_t ntiles = (rows + R - 1) / R, fit = (int64_t)(scratch_floats / (size_t)ldp);
    int64_t slices = (resident + gy - 1) / gy;
    if (slices > ntiles) slices = ntiles;
    if (slices > fit) slices = fit;
    if (slices < 1 || gy > 65535) return cudaErrorInvalidConfiguration;
    conv_bwd_staged_kernel<T, R><<<dim3((unsigned)slices, (unsigned)gy), kStageThreads, 0, s>>>(
        dx, lddx, scratch, ldp, dy, lddy, x, ldx, w, bias, rows, len, dim);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    if ((e = mdk_colsum_add(dw, scratch, slices, ldp, dim * K, s)) != cudaSuccess) return e;
    return mdk_colsum_add(dbias, scratch + dim * K, slices, ldp, dim, s);
}

template <typename T>
static cudaError_t conv1d_silu_fwd(T *y, int64_t ldy, const T *x, int64_t ldx, const float *w, const float *bias,
                                   int64_t batch, int64_t len, int64_t dim, int64_t width, cudaStream_t s)
{
    if (batch * len * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_CONV_MAXK) return cudaErrorInvalidValue;
    if (width == 4 && len <= INT32_MAX && conv_staged_ok<T>(dim, x, ldx, y, ldy, y, ldy))
        return conv1d_silu_fwd_staged(y, ldy, x, ldx, w, bias, batch * len, len, dim, s);
    if (width == 4) {
        const int64_t tiles = (batch * len + kConvRows - 1) / kConvRows;
        const int64_t by = (tiles + kConvTilesPerBlock - 1) / kConvTilesPerBlock;
        const dim3 block(32, kConvTilesPerBlock);
        const unsigned gy = (unsigned)(by < 65535 ? by : 65535);
        const int V = conv_vec_width(dim, sizeof(T), x, ldx, y, ldy, x, ldx);
        const dim3 grid((unsigned)((dim / V + 31) / 32), gy);
        if (V == 2)
            conv_fwd_rows_kernel<T, 4, 2><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, bias, batch * len, len, dim);
        else conv_fwd_rows_kernel<T, 4, 1><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, bias, batch * len, len, dim);
        return cudaGetLastError();
    }
    conv_fwd_kernel<<<grid_of(batch * len * dim), 256, 0, s>>>(y, ldy, x, ldx, w, bias, batch * len, len, dim,
                                                               (int)width);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_conv1d_silu_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                           const float *bias, int64_t batch, int64_t len, int64_t dim,
                                           int64_t width, cudaStream_t s)
{
    return conv1d_silu_fwd(y, ldy, x, ldx, w, bias, batch, len, dim, width, s);
}

extern "C" cudaError_t mdk_conv1d_silu_fwd_bf16(void *y, int64_t ldy, const void *x, int64_t ldx, const float *w,
                                                const float *bias, int64_t batch, int64_t len, int64_t dim,
                                                int64_t width, cudaStream_t s)
{
    return conv1d_silu_fwd((__nv_bfloat16 *)y, ldy, (const __nv_bfloat16 *)x, ldx, w, bias, batch, len, dim, width,
                           s);
}

/* d(loss)/d(pre-activation) at (b, t, e) */
template <typename T>
__device__ static inline float conv_dpre(const T *dy, int64_t lddy, const T *x, int64_t ldx, const float *w,
                                         float bias, int64_t row0, int64_t t, int64_t e, int K)
{
    float p = conv_pre(x, ldx, w, bias, row0, t, e, K);
    float s = sigmoidf_(p);
    return ld_f(dy + (row0 + t) * lddy + e) * s * (1 + p * (1 - s));
}

/* dx[t] = sum_k w[k] dp[t + K-1-k], taps in the CPU's order (k = K-1 first) */
template <typename T>
__global__ void conv_dx_kernel(T *dx, int64_t lddx, const T *dy, int64_t lddy, const T *x, int64_t ldx,
                               const float *w, const float *bias, int64_t rows, int64_t len, int64_t dim, int K)
{
    int64_t n = rows * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, e = i - r * dim, t = r % len, row0 = r - t;
        float b = bias[e], acc = 0;
        for (int k = K - 1; k >= 0; k--) {
            int64_t tt = t + K - 1 - k;
            if (tt >= len) continue;
            acc += w[e * K + k] * conv_dpre(dy, lddy, x, ldx, w, b, row0, tt, e, K);
        }
        st_f(dx + r * lddx + e, acc);
    }
}

/* per-slice partials of dw (e, k) at [e*K + k] and dbias (e) at [dim*K + e];
 * 32 channels x 8 row lanes per block, the lanes added in order */
template <typename T>
__global__ void __launch_bounds__(256) conv_dw_kernel(float *part, int64_t ld_part, const T *dy, int64_t lddy,
                                                    const T *x, int64_t ldx, const float *w, const float *bias,
                                                    int64_t rows, int64_t len, int64_t dim, int K,
                                                    int64_t rows_per_slice)
{
    __shared__ float sh[8][MDK_CONV_MAXK + 1][32];
    int64_t e = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice, r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
    float acc[MDK_CONV_MAXK + 1];
#pragma unroll
    for (int k = 0; k <= MDK_CONV_MAXK; k++) acc[k] = 0;
    if (e < dim) {
        float b = bias[e];
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            int64_t t = r % len, row0 = r - t;
            float dp = conv_dpre(dy, lddy, x, ldx, w, b, row0, t, e, K);
#pragma unroll
            for (int k = 0; k < MDK_CONV_MAXK; k++)
                if (k < K && t - K + 1 + k >= 0) acc[k] += dp * ld_f(x + (r - K + 1 + k) * ldx + e);
            acc[MDK_CONV_MAXK] += dp;
        }
    }
#pragma unroll
    for (int k = 0; k <= MDK_CONV_MAXK; k++) sh[threadIdx.y][k][threadIdx.x] = acc[k];
    __syncthreads();
    if (e >= dim) return;
    for (int k = threadIdx.y; k <= K; k += 8) {
        int kk = k == K ? MDK_CONV_MAXK : k;
        float s = 0;
        for (int j = 0; j < 8; j++) s += sh[j][kk][threadIdx.x];
        part[(int64_t)blockIdx.y * ld_part + (k == K ? dim * K + e : e * K + k)] = s;
    }
}

/* The backward for a width known at compile time (the Mamba block's 4) where
 * the staged kernel above cannot take the rows, in one pass: each thread
 * owns R consecutive rows of V adjacent channels (as the forward's), keeps
 * the x window and the pre-activation gradients of its rows (and of the
 * K - 1 rows after them, which its dx needs) in registers, writes dx and adds
 * its rows' dw and dbias terms, which the block sums into one slice of
 * partials. The generic kernels below recompute the pre-activation K times
 * per output and were ~10x slower (27% of a 128 x 6 Mamba step); with one
 * channel a lane and 16 rows a thread it took 4x the forward's time, with
 * pairs and 8 rows (123 registers, 2 blocks an SM) 13-17% less than that
 * (NOTES-backend.md, "The Mamba step around the scan"). */
constexpr int kConvBwdRows = 8;

template <typename T, int K, int V, int R>
__global__ void __launch_bounds__(256)
    conv_bwd_rows_kernel(T *dx, int64_t lddx, float *part, int64_t ld_part, const T *dy, int64_t lddy, const T *x,
                         int64_t ldx, const float *w, const float *bias, int64_t rows, int64_t len, int64_t dim)
{
    constexpr int NX = R + 2 * (K - 1), NP = R + K - 1;
    __shared__ float sh[kConvTilesPerBlock][K + 1][32 * V];
    const int64_t e = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    const int64_t ntiles = (rows + R - 1) / R;
    float acc[K + 1][V];
#pragma unroll
    for (int k = 0; k <= K; k++)
#pragma unroll
        for (int v = 0; v < V; v++) acc[k][v] = 0;
    float wk[V][K], b[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
#pragma unroll
        for (int k = 0; k < K; k++) wk[v][k] = e < dim ? w[(e + v) * K + k] : 0.f;
        b[v] = e < dim ? bias[e + v] : 0.f;
    }

    for (int64_t tile = (int64_t)blockIdx.y * kConvTilesPerBlock + threadIdx.y; e < dim && tile < ntiles;
         tile += (int64_t)gridDim.y * kConvTilesPerBlock) {
        const int64_t r0 = tile * R;
        const int64_t t0 = r0 % len;
        float xs[NX][V];   /* x at rows r0 - (K-1) + j */
#pragma unroll
        for (int j = 0; j < NX; j++) {
            const int64_t r = r0 - (K - 1) + j;
            if (r >= 0 && r < rows) {
                ld_v<V>(x + r * ldx + e, xs[j]);
            } else {
#pragma unroll
                for (int v = 0; v < V; v++) xs[j][v] = 0.f;
            }
        }
        float dp[NP][V];   /* dL/d(pre-activation) at rows r0 + i */
        int tpos[NP];      /* their positions in their sequences, capped at K - 1 for the masks */
        int64_t t = t0;
#pragma unroll
        for (int i = 0; i < NP; i++) {
            const int64_t r = r0 + i;
            tpos[i] = (int)(t < K - 1 ? t : K - 1);
            float g[V];
            if (r < rows) {
                ld_v<V>(dy + r * lddy + e, g);
            } else {
#pragma unroll
                for (int v = 0; v < V; v++) g[v] = 0.f;
            }
#pragma unroll
            for (int v = 0; v < V; v++) {
                float p = b[v];
#pragma unroll
                for (int k = 0; k < K; k++)
                    if (tpos[i] - (K - 1) + k >= 0) p += wk[v][k] * xs[i + k][v];
                const float sg = sigmoidf_(p);
                dp[i][v] = g[v] * sg * (1 + p * (1 - sg));
            }
            if (++t == len) t = 0;
        }
        /* rows left in the sequence after row r0 + i, capped at K - 1 */
        int64_t left = len - 1 - t0;
#pragma unroll
        for (int i = 0; i < R; i++) {
            const int64_t r = r0 + i;
            if (r < rows) {
                float a[V];
#pragma unroll
                for (int v = 0; v < V; v++) {
                    a[v] = 0;
#pragma unroll
                    for (int k = K - 1; k >= 0; k--)
                        if (K - 1 - k <= left) a[v] += wk[v][k] * dp[i + K - 1 - k][v];
#pragma unroll
                    for (int k = 0; k < K; k++)
                        if (tpos[i] - (K - 1) + k >= 0) acc[k][v] += dp[i][v] * xs[i + k][v];
                    acc[K][v] += dp[i][v];
                }
                st_v<V>(dx + r * lddx + e, a);
            }
            left = left == 0 ? len - 1 : left - 1;
        }
    }
#pragma unroll
    for (int k = 0; k <= K; k++)
#pragma unroll
        for (int v = 0; v < V; v++) sh[threadIdx.y][k][threadIdx.x * V + v] = acc[k][v];
    __syncthreads();
    for (int k = threadIdx.y; k <= K; k += kConvTilesPerBlock)
#pragma unroll
        for (int v = 0; v < V; v++) {
            const int64_t ev = e + v;
            if (ev >= dim) break;
            float sum = 0;
            for (int j = 0; j < kConvTilesPerBlock; j++) sum += sh[j][k][threadIdx.x * V + v];
            part[(int64_t)blockIdx.y * ld_part + (k == K ? dim * K + ev : ev * K + k)] = sum;
        }
}

template <typename T, int K, int V>
static cudaError_t conv1d_silu_bwd_rows(T *dx, int64_t lddx, float *dw, float *dbias, const T *dy, int64_t lddy,
                                        const T *x, int64_t ldx, const float *w, const float *bias, int64_t rows,
                                        int64_t len, int64_t dim, float *scratch, size_t scratch_floats,
                                        cudaStream_t s)
{
    constexpr int R = kConvBwdRows;
    const int64_t ldp = dim * (K + 1);
    const int64_t ntiles = (rows + R - 1) / R;
    int64_t slices = (ntiles + kConvTilesPerBlock - 1) / kConvTilesPerBlock;
    const int64_t fit = (int64_t)(scratch_floats / (size_t)ldp);
    if (slices > fit) slices = fit;
    if (slices > 65535) slices = 65535;
    if (slices < 1 || (dim / V + 31) / 32 > INT32_MAX) return cudaErrorInvalidConfiguration;
    conv_bwd_rows_kernel<T, K, V, R><<<dim3((unsigned)((dim / V + 31) / 32), (unsigned)slices),
                                       dim3(32, kConvTilesPerBlock), 0, s>>>(dx, lddx, scratch, ldp, dy, lddy, x, ldx,
                                                                             w, bias, rows, len, dim);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    if ((e = mdk_colsum_add(dw, scratch, slices, ldp, dim * K, s)) != cudaSuccess) return e;
    return mdk_colsum_add(dbias, scratch + dim * K, slices, ldp, dim, s);
}

template <typename T>
static cudaError_t conv1d_silu_bwd(T *dx, int64_t lddx, float *dw, float *dbias, const T *dy, int64_t lddy,
                                   const T *x, int64_t ldx, const float *w, const float *bias, int64_t batch,
                                   int64_t len, int64_t dim, int64_t width, float *scratch, size_t scratch_floats,
                                   cudaStream_t s)
{
    int64_t rows = batch * len;
    if (rows * dim == 0) return cudaSuccess;
    if (width < 1 || width > MDK_CONV_MAXK) return cudaErrorInvalidValue;
    int K = (int)width;
    if (K == 4 && len <= INT32_MAX && conv_staged_ok<T>(dim, dx, lddx, dy, lddy, x, ldx))
        return conv1d_silu_bwd_staged(dx, lddx, dw, dbias, dy, lddy, x, ldx, w, bias, rows, len, dim, scratch,
                                      scratch_floats, s);
    if (K == 4) {
        const int V = conv_vec_width(dim, sizeof(T), dx, lddx, dy, lddy, x, ldx);
#define CONV_BWD_ROWS(V)                                                                                   \
    conv1d_silu_bwd_rows<T, 4, V>(dx, lddx, dw, dbias, dy, lddy, x, ldx, w, bias, rows, len, dim, scratch, \
                                  scratch_floats, s)
        return V == 2 ? CONV_BWD_ROWS(2) : CONV_BWD_ROWS(1);
#undef CONV_BWD_ROWS
    }
    conv_dx_kernel<<<grid_of(rows * dim), 256, 0, s>>>(dx, lddx, dy, lddy, x, ldx, w, bias, rows, len, dim, K);
    int64_t ldp = dim * (K + 1);
    int64_t slices = mdk_reduce_slices(rows, ldp, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    conv_dw_kernel<<<dim3((unsigned)((dim + 31) / 32), (unsigned)slices), dim3(32, 8), 0, s>>>(
        scratch, ldp, dy, lddy, x, ldx, w, bias, rows, len, dim, K, per);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    if ((e = mdk_colsum_add(dw, scratch, slices, ldp, dim * K, s)) != cudaSuccess) return e;
    return mdk_colsum_add(dbias, scratch + dim * K, slices, ldp, dim, s);
}

extern "C" cudaError_t mdk_conv1d_silu_bwd(float *dx, int64_t lddx, float *dw, float *dbias, const float *dy,
                                           int64_t lddy, const float *x, int64_t ldx, const float *w,
                                           const float *bias, int64_t batch, int64_t len, int64_t dim,
                                           int64_t width, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    return conv1d_silu_bwd(dx, lddx, dw, dbias, dy, lddy, x, ldx, w, bias, batch, len, dim, width, scratch,
                           scratch_floats, s);
}

extern "C" cudaError_t mdk_conv1d_silu_bwd_bf16(void *dx, int64_t lddx, float *dw, float *dbias, const void *dy,
                                                int64_t lddy, const void *x, int64_t ldx, const float *w,
                                                const float *bias, int64_t batch, int64_t len, int64_t dim,
                                                int64_t width, float *scratch, size_t scratch_floats, cudaStream_t s)
{
    typedef __nv_bfloat16 bf;
    return conv1d_silu_bwd((bf *)dx, lddx, dw, dbias, (const bf *)dy, lddy, (const bf *)x, ldx, w, bias, batch, len,
                           dim, width, scratch, scratch_floats, s);
}
