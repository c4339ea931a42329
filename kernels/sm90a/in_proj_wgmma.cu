/* mamba_in_proj.cu's op (in_proj fused with conv1d + SiLU, inference
 * forward) with its products on Hopper's warpgroup MMA: same arguments,
 * outputs and numerics (x rounded to bf16 before the conv, conv1d.cu's
 * arithmetic through conv1d_pair.cuh); only the products' accumulation
 * order differs (NOTES-backend.md, "classify: in_proj fused with conv1d +
 * SiLU", "On wgmma").
 *
 * One persistent block an SM, 256 threads = 2 warpgroups, walking whole
 * sequences in 64-row tiles. W (2E, D) and two hn tiles live in shared
 * memory in wgmma.cuh's SW128 layout (no padding: W is 128 KB at the
 * classify shape). Warpgroup g owns columns g E/2 .. of both halves, both
 * operands read by descriptor from shared memory. The point: a tile's
 * products are issued and run asynchronously while the threads do the
 * previous tile's conv + SiLU and its z and u stores; a tile's x (rounded)
 * and z then go to shared tiles (x behind the previous tile's last K - 1
 * rows, kept on chip) for the next round. */
#include "backend_kernels.h"

#include "attention_wgmma.cuh"
#include "conv1d_pair.cuh"
#include "storage.cuh"

namespace {

constexpr int kRows = 64;   /* rows a tile: wgmma's M */
constexpr int kThreads = 256;
constexpr int kK = 4;       /* conv width */
constexpr int kHalo = kK - 1;

template <int D, int E> struct InProjWg {
    static constexpr int NP = E / 128;          /* n64 pieces of a warpgroup's half */
    static constexpr int PAIRS = E / 2, SEGS = kThreads / PAIRS, S = kRows / SEGS;   /* the conv's split */
    static constexpr int CARRY = (kHalo * E / 2 + kThreads - 1) / kThreads;         /* carried u32 a thread */
    static constexpr uint32_t W_BYTES = 2 * E * D * 2, H_BYTES = kRows * D * 2;
    static constexpr uint32_t X_BYTES = (kRows + kHalo) * E * 2, Z_BYTES = kRows * E * 2;
    /* + 1024: the SW128 tiles' alignment */
    static constexpr size_t SMEM = (size_t)W_BYTES + 2 * H_BYTES + X_BYTES + Z_BYTES + 1024;
    static_assert(D % 64 == 0 && E % 128 == 0, "SW128 rows of 64; n64 pieces");
    static_assert(kThreads % PAIRS == 0 && kRows % SEGS == 0, "the conv's threads tile the x tile");
    static_assert(SMEM <= 227 * 1024, "one block an SM");
};

/* Element offset of (r, col) in an x or z tile of E columns, rows unpadded
 * and their 16-byte chunks XOR-swizzled by r % 8: the accumulators' 8-row
 * stores and the conv's row reads are then free of bank conflicts. */
template <int E> __device__ __forceinline__ int xz_at(int r, int col)
{
    return r * E + ((((col >> 3) ^ r) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

/* Queues the copy of R rows of D bf16 at g (row stride ld) into the SW128
 * tiles at shared address sh (D / 64 tiles of R rows, one after another);
 * rows from n_in on zero-filled */
template <int R, int D>
__device__ __forceinline__ void copy_sw128_async(uint32_t sh, const __nv_bfloat16 *g, int64_t ld, int n_in)
{
    for (int i = threadIdx.x; i < R * D / 8; i += kThreads) {
        const int r = i / (D / 8), c = i % (D / 8);
        const bool in = r < n_in;
        const uint32_t sa = sh + (uint32_t)((c >> 3) * R * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(g + (in ? r * ld + 8 * c : 0)),
                     "r"(in ? 16 : 0));
    }
}

/* Issues the warpgroup's products of a tile: acc[h][p] (64 x 64) = the hn
 * tile at shared address hs times W's rows h E + (warpgroup) E / 2 + 64 p
 * .., h = 0 for x, 1 for z; committed as one group. Both operands from
 * shared memory: A in registers would hold 32 more a thread through the
 * conv, and the accumulators already take 128. */
template <int D, int E>
__device__ __forceinline__ void issue_products(float (&acc)[2][E / 128][8][4], uint32_t hs, uint32_t w)
{
    const int n_wg = (threadIdx.x >> 7) * (E / 2);
    wgmma_fence();
#pragma unroll
    for (int kd = 0; kd < D / 16; kd++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int p = 0; p < E / 128; p++) {
                /* a k16 step: SW128 tile kd / 4 (of kRows or 2E rows), 32 bytes on per step within it */
                const uint32_t a = hs + (uint32_t)((kd >> 2) * kRows * 128 + 32 * (kd & 3));
                const uint32_t b = w + (uint32_t)((kd >> 2) * 2 * E * 128 + (h * E + n_wg + 64 * p) * 128 + 32 * (kd & 3));
                wgmma_m64n64k16_ss<0>(acc[h][p], sw128_desc(a), sw128_desc(b), kd);
            }
    wgmma_commit();
}

/* The warp's accumulators, rounded to bf16, into tile rows row0 + (its
 * rows) of the x or z tile t, columns (warpgroup) E / 2 + 64 p + .. */
template <int E>
__device__ __forceinline__ void acc_to_shared(__nv_bfloat16 *t, float (&acc)[E / 128][8][4], int row0)
{
    const int lane = threadIdx.x & 31, r = row0 + 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2);
    const int c0 = (threadIdx.x >> 7) * (E / 2) + 2 * (lane & 3);
#pragma unroll
    for (int p = 0; p < E / 128; p++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int col = c0 + 64 * p + 8 * j;
            *reinterpret_cast<uint32_t *>(t + xz_at<E>(r, col)) = pack_bf16(acc[p][j][0], acc[p][j][1]);
            *reinterpret_cast<uint32_t *>(t + xz_at<E>(r + 8, col)) = pack_bf16(acc[p][j][2], acc[p][j][3]);
        }
}

/* the tile after (b, t0) of the block's sequences b, b + stride, ... */
__device__ __forceinline__ void next_tile(int &b, int &t0, int len)
{
    t0 += kRows;
    if (t0 >= len) b += gridDim.x, t0 = 0;
}

template <int D, int E>
__global__ void __launch_bounds__(kThreads, 1)
    in_proj_conv_wgmma_kernel(__nv_bfloat16 *u, int64_t ldu, __nv_bfloat16 *z, int64_t ldz, const __nv_bfloat16 *hn,
                              int64_t ldh, const __nv_bfloat16 *w_in, int64_t ldw, const float *conv_w,
                              const float *conv_b, int batch, int len)
{
#if MD_WGMMA_ON
    using P = InProjWg<D, E>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023) & ~1023u;
    unsigned char *smem = smem_raw + (base - (uint32_t)__cvta_generic_to_shared(smem_raw));
    const uint32_t ws = base, hs0 = base + P::W_BYTES;   /* hn tile buf at hs0 + buf H_BYTES */
    /* rows 0 .. K-2: the taps before the tile (the previous tile's last
     * rows, zeros at a sequence's start); then the tile */
    __nv_bfloat16 *xs = reinterpret_cast<__nv_bfloat16 *>(smem + P::W_BYTES + 2 * P::H_BYTES);
    __nv_bfloat16 *zs = xs + (kRows + kHalo) * E;
    const int gt = threadIdx.x;

    const int pair = gt % P::PAIRS, seg = gt / P::PAIRS, e = 2 * pair;
    float wk[2][kK], bias[2];
#pragma unroll
    for (int v = 0; v < 2; v++) {
#pragma unroll
        for (int k = 0; k < kK; k++) wk[v][k] = conv_w[(e + v) * kK + k];
        bias[v] = conv_b[e + v];
    }

    int b = blockIdx.x, t0 = 0, buf = 0;
    copy_sw128_async<2 * E, D>(ws, w_in, ldw, 2 * E);
    if (b < batch) copy_sw128_async<kRows, D>(hs0, hn + (int64_t)b * len * ldh, ldh, min(kRows, len));
    cp_async_commit();
    cp_async_wait<0>();
    fence_async_shared();
    __syncthreads();

    float acc[2][P::NP][8][4];
    if (b < batch) {
        issue_products<D, E>(acc, hs0, ws);
    }
    {
        int nb = b, nt0 = t0;
        next_tile(nb, nt0, len);
        if (nb < batch)
            copy_sw128_async<kRows, D>(hs0 + P::H_BYTES, hn + ((int64_t)nb * len + nt0) * ldh, ldh,
                                       min(kRows, len - nt0));
        cp_async_commit();
    }
    uint32_t carry[P::CARRY];

    while (b < batch) {
        const int n_in = min(kRows, len - t0);
        const int64_t r0 = (int64_t)b * len + t0;
        wgmma_wait<0>();
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int p = 0; p < P::NP; p++) reg_fence<8>(acc[h][p]);
        __syncthreads();   /* the last tile's conv and z copy are done with xs and zs */
        /* the taps: the last tile's last K-1 rows (read into carry at its
         * end; the same swizzle, as kRows % 8 == 0), or zeros */
#pragma unroll
        for (int q = 0; q < P::CARRY; q++) {
            const int i = gt + q * kThreads;
            if (i < kHalo * E / 2) reinterpret_cast<uint32_t *>(xs)[i] = t0 == 0 ? 0u : carry[q];
        }
        acc_to_shared<E>(xs, acc[0], kHalo);
        acc_to_shared<E>(zs, acc[1], 0);
        cp_async_wait<0>();
        fence_async_shared();
        __syncthreads();   /* x and z of this tile in; the next tile's hn in, visible to wgmma */

        int nb = b, nt0 = t0;
        next_tile(nb, nt0, len);
        if (nb < batch) {
            issue_products<D, E>(acc, hs0 + (buf ^ 1) * P::H_BYTES, ws);
            int nnb = nb, nnt0 = nt0;
            next_tile(nnb, nnt0, len);
            /* into the buffer this tile's products read, all waited for */
            if (nnb < batch)
                copy_sw128_async<kRows, D>(hs0 + buf * P::H_BYTES, hn + ((int64_t)nnb * len + nnt0) * ldh, ldh,
                                           min(kRows, len - nnt0));
        }
        cp_async_commit();

        /* while the next tile's products run: this tile's z, and its conv + SiLU */
        for (int i = gt; i < n_in * (E / 8); i += kThreads) {
            const int r = i / (E / 8), c = 8 * (i - r * (E / 8));
            *reinterpret_cast<uint4 *>(z + (r0 + r) * ldz + c) = *reinterpret_cast<const uint4 *>(zs + xz_at<E>(r, c));
        }
        {
            const int i0 = seg * P::S, nrows = min(P::S, n_in - i0);
            __nv_bfloat16 *up = u + (r0 + i0) * ldu + e;
            float win[kK][2];
#pragma unroll
            for (int j = 0; j < kK - 1; j++) ld_v<2>(xs + xz_at<E>(i0 + j, e), win[j]);
#pragma unroll 4
            for (int i = 0; i < nrows; i++) {
                ld_v<2>(xs + xz_at<E>(i0 + i + kK - 1, e), win[kK - 1]);
                float out[2];
                conv_silu_pair<kK>(out, win, wk, bias);
                st_v<2>(up, out);
                up += ldu;
            }
        }
        /* the next tile's taps, if it goes on with this sequence (then this
         * tile was a whole one) */
#pragma unroll
        for (int q = 0; q < P::CARRY; q++) {
            const int i = gt + q * kThreads;
            if (i < kHalo * E / 2) carry[q] = reinterpret_cast<const uint32_t *>(xs + kRows * E)[i];
        }
        b = nb, t0 = nt0, buf ^= 1;
    }
    wgmma_wait<0>();   /* none in flight here; said, so that ptxas need not add its own */
    cp_async_wait<0>();
#endif
}

int sms_of_device(void)
{
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

template <int D, int E>
cudaError_t launch(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                   int64_t ldw, const float *conv_w, const float *conv_b, int64_t batch, int64_t len, cudaStream_t s)
{
    using P = InProjWg<D, E>;
    cudaError_t e = cudaFuncSetAttribute(in_proj_conv_wgmma_kernel<D, E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)P::SMEM);
    if (e != cudaSuccess) return e;
    const int64_t sms = sms_of_device();
    const int grid = (int)(batch < sms ? batch : sms);
    in_proj_conv_wgmma_kernel<D, E><<<grid, kThreads, P::SMEM, s>>>(
        (__nv_bfloat16 *)u, ldu, (__nv_bfloat16 *)z, ldz, (const __nv_bfloat16 *)hn, ldh,
        (const __nv_bfloat16 *)w_in, ldw, conv_w, conv_b, (int)batch, (int)len);
    return cudaGetLastError();
}

}   // namespace

extern "C" int mdk_in_proj_wgmma_variant(void)
{
    static int variant = -1;
    return cached_variant(&variant, 1, "MD_IN_PROJ_WGMMA", 1, 1);
}

extern "C" cudaError_t mdk_in_proj_conv_fwd_wgmma(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn,
                                                  int64_t ldh, const void *w_in, int64_t ldw, const float *conv_w,
                                                  const float *conv_b, int64_t batch, int64_t len, int64_t d,
                                                  int64_t E, cudaStream_t s)
{
    if (d == 128 && E == 256) return launch<128, 256>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 128) return launch<64, 128>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 256) return launch<64, 256>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    return cudaErrorInvalidValue;
}
