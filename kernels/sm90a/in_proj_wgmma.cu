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
 * classify shape), both operands read by descriptor. A tile's products
 * are issued and run asynchronously while the threads do the previous
 * tile's conv + SiLU and its z and u stores; a tile's x (rounded) and z
 * then go to shared tiles (x behind the previous tile's last K - 1 rows,
 * kept on chip) for the next round. Warpgroup 0 computes x, 1 z, one
 * m64nEk16 a k16 step, and stores its accumulators by stmatrix. Variants
 * (MD_IN_PROJ_WGMMA, InProjVariant): the conv's channels a thread, 2 (1)
 * or 4 (2, the default; 8-byte u stores, so 1 where u's rows do not
 * allow them). At classify's shape the default takes 2.05 ms against the
 * mma.sync kernel's 2.54. */
#include "backend_kernels.h"

#include "attention_wgmma.cuh"
#include "conv1d_pair.cuh"
#include "storage.cuh"

namespace {

constexpr int kRows = 64;   /* rows a tile: wgmma's M */
constexpr int kThreads = 256;
constexpr int kK = 4;       /* conv width */
constexpr int kHalo = kK - 1;

/* V 1: the conv on 2 channels a thread; 2: on 4 (twice the rows' ILP,
 * half the rows). The measured steps before these (warpgroups splitting
 * both halves, accumulators stored 4 bytes a lane) are in the notes. */
template <int V> struct InProjVariant {
    static constexpr int kCh = V >= 2 ? 4 : 2;
};
constexpr int kVariants = 2, kDefaultVariant = 2;   /* 2.14, 2.05 ms at classify's shape */

template <int D, int E, int CH> struct InProjWg {
    static constexpr int PAIRS = E / CH, SEGS = kThreads / PAIRS, S = kRows / SEGS;   /* the conv's split */
    static constexpr int CARRY = (kHalo * E / 2 + kThreads - 1) / kThreads;         /* carried u32 a thread */
    static constexpr uint32_t W_BYTES = 2 * E * D * 2, H_BYTES = kRows * D * 2;
    static constexpr uint32_t X_BYTES = (kRows + kHalo) * E * 2, Z_BYTES = kRows * E * 2;
    /* + 1024: the SW128 tiles' alignment */
    static constexpr size_t SMEM = (size_t)W_BYTES + 2 * H_BYTES + X_BYTES + Z_BYTES + 1024;
    static_assert(D % 64 == 0 && E % 128 == 0 && E <= 256, "SW128 rows of 64; n64 pieces; wgmma's n");
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

/* Issues the warpgroup's products of a tile from the hn tile at shared
 * address hs and W at w, committed as one group: acc's E / 8 column blocks
 * of 8 are all of x (warpgroup 0) or z (1). Both operands from shared
 * memory: A in registers would hold 32 more a thread through the conv,
 * and the accumulators already take 128. */
template <int D, int E>
__device__ __forceinline__ void issue_products(float (&acc)[E / 8][4], uint32_t hs, uint32_t w)
{
    const int wg = threadIdx.x >> 7;
    wgmma_fence();
#pragma unroll
    for (int kd = 0; kd < D / 16; kd++) {
        /* a k16 step: SW128 tile kd / 4 (of kRows or 2E rows), 32 bytes on per step within it */
        const uint64_t a = sw128_desc(hs + (uint32_t)((kd >> 2) * kRows * 128 + 32 * (kd & 3)));
        const uint32_t wk = w + (uint32_t)((kd >> 2) * 2 * E * 128 + 32 * (kd & 3));
        const uint64_t b = sw128_desc(wk + (uint32_t)(wg * E * 128));
        if constexpr (E == 256) wgmma_m64n256k16_ss<0>(acc, a, b, kd);
        else wgmma_m64n128k16_ss<0>(acc, a, b, kd);
    }
    wgmma_commit();
}

/* NB of the warp's accumulator column blocks, rounded to bf16, into tile
 * rows row0 + (its 16 rows) of the x or z tile t, columns col0 + 8 i .. */
template <int E, int NB>
__device__ __forceinline__ void acc_to_shared(__nv_bfloat16 *t, const float (*acc)[4], int row0, int col0)
{
    const int lane = threadIdx.x & 31, wrow = row0 + 16 * ((threadIdx.x >> 5) & 3);
    /* stmatrix x4: matrices (rows 0-7, block i), (8-15, i), (0-7, i + 1),
     * (8-15, i + 1); lane l gives row l % 8 of matrix l / 8. A matrix row
     * is one swizzled 16-byte chunk. */
    const int m = lane >> 3, r = wrow + (lane & 7) + 8 * (m & 1);
#pragma unroll
    for (int i = 0; i < NB; i += 2) {
        const uint32_t addr = (uint32_t)__cvta_generic_to_shared(t + xz_at<E>(r, col0 + 8 * (i + (m >> 1))));
        asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(addr),
                     "r"(pack_bf16(acc[i][0], acc[i][1])), "r"(pack_bf16(acc[i][2], acc[i][3])),
                     "r"(pack_bf16(acc[i + 1][0], acc[i + 1][1])), "r"(pack_bf16(acc[i + 1][2], acc[i + 1][3]))
                     : "memory");
    }
}

/* the tile after (b, t0) of the block's sequences b, b + stride, ... */
__device__ __forceinline__ void next_tile(int &b, int &t0, int len)
{
    t0 += kRows;
    if (t0 >= len) b += gridDim.x, t0 = 0;
}

template <int D, int E, int V>
__global__ void __launch_bounds__(kThreads, 1)
    in_proj_conv_wgmma_kernel(__nv_bfloat16 *u, int64_t ldu, __nv_bfloat16 *z, int64_t ldz, const __nv_bfloat16 *hn,
                              int64_t ldh, const __nv_bfloat16 *w_in, int64_t ldw, const float *conv_w,
                              const float *conv_b, int batch, int len)
{
#if MD_WGMMA_ON
    using Var = InProjVariant<V>;
    using P = InProjWg<D, E, Var::kCh>;
    constexpr int kCh = Var::kCh;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023) & ~1023u;
    unsigned char *smem = smem_raw + (base - (uint32_t)__cvta_generic_to_shared(smem_raw));
    const uint32_t ws = base, hs0 = base + P::W_BYTES;   /* hn tile buf at hs0 + buf H_BYTES */
    /* rows 0 .. K-2: the taps before the tile (the previous tile's last
     * rows, zeros at a sequence's start); then the tile */
    __nv_bfloat16 *xs = reinterpret_cast<__nv_bfloat16 *>(smem + P::W_BYTES + 2 * P::H_BYTES);
    __nv_bfloat16 *zs = xs + (kRows + kHalo) * E;
    const int gt = threadIdx.x;

    const int pair = gt % P::PAIRS, seg = gt / P::PAIRS, e = kCh * pair;
    float wk[kCh / 2][2][kK], bias[kCh / 2][2];
#pragma unroll
    for (int g = 0; g < kCh / 2; g++)
#pragma unroll
        for (int v = 0; v < 2; v++) {
#pragma unroll
            for (int k = 0; k < kK; k++) wk[g][v][k] = conv_w[(e + 2 * g + v) * kK + k];
            bias[g][v] = conv_b[e + 2 * g + v];
        }

    int b = blockIdx.x, t0 = 0, buf = 0;
    copy_sw128_async<2 * E, D>(ws, w_in, ldw, 2 * E);
    if (b < batch) copy_sw128_async<kRows, D>(hs0, hn + (int64_t)b * len * ldh, ldh, min(kRows, len));
    cp_async_commit();
    cp_async_wait<0>();
    fence_async_shared();
    __syncthreads();

    float acc[E / 8][4];
    if (b < batch) issue_products<D, E>(acc, hs0, ws);
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
        reg_fence<E / 8>(acc);
        __syncthreads();   /* the last tile's conv and z copy are done with xs and zs */
        /* the taps: the last tile's last K-1 rows (read into carry at its
         * end; the same swizzle, as kRows % 8 == 0), or zeros */
#pragma unroll
        for (int q = 0; q < P::CARRY; q++) {
            const int i = gt + q * kThreads;
            if (i < kHalo * E / 2) reinterpret_cast<uint32_t *>(xs)[i] = t0 == 0 ? 0u : carry[q];
        }
        {
            const int wg = gt >> 7;
            acc_to_shared<E, E / 8>(wg ? zs : xs, acc, wg ? 0 : kHalo, 0);
        }
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
            float win[kCh / 2][kK][2];
#pragma unroll
            for (int j = 0; j < kK - 1; j++) {
                float x[kCh];
                ld_v<kCh>(xs + xz_at<E>(i0 + j, e), x);
#pragma unroll
                for (int g = 0; g < kCh / 2; g++) win[g][j][0] = x[2 * g], win[g][j][1] = x[2 * g + 1];
            }
#pragma unroll 4
            for (int i = 0; i < nrows; i++) {
                float x[kCh], out[kCh];
                ld_v<kCh>(xs + xz_at<E>(i0 + i + kK - 1, e), x);
#pragma unroll
                for (int g = 0; g < kCh / 2; g++) {
                    win[g][kK - 1][0] = x[2 * g], win[g][kK - 1][1] = x[2 * g + 1];
                    conv_silu_pair<kK>(*reinterpret_cast<float(*)[2]>(out + 2 * g), win[g], wk[g], bias[g]);
                }
                st_v<kCh>(up, out);
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

template <int D, int E, int V>
cudaError_t launch(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                   int64_t ldw, const float *conv_w, const float *conv_b, int64_t batch, int64_t len, cudaStream_t s)
{
    using P = InProjWg<D, E, InProjVariant<V>::kCh>;
    cudaError_t e = cudaFuncSetAttribute(in_proj_conv_wgmma_kernel<D, E, V>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)P::SMEM);
    if (e != cudaSuccess) return e;
    const int64_t sms = mdk_sm_count();
    const int grid = (int)(batch < sms ? batch : sms);
    in_proj_conv_wgmma_kernel<D, E, V><<<grid, kThreads, P::SMEM, s>>>(
        (__nv_bfloat16 *)u, ldu, (__nv_bfloat16 *)z, ldz, (const __nv_bfloat16 *)hn, ldh,
        (const __nv_bfloat16 *)w_in, ldw, conv_w, conv_b, (int)batch, (int)len);
    return cudaGetLastError();
}

template <int V>
cudaError_t launch_shape(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                         int64_t ldw, const float *conv_w, const float *conv_b, int64_t batch, int64_t len,
                         int64_t d, int64_t E, cudaStream_t s)
{
    if (d == 128 && E == 256) return launch<128, 256, V>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 128) return launch<64, 128, V>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 256) return launch<64, 256, V>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    return cudaErrorInvalidValue;
}

}   // namespace

extern "C" int mdk_in_proj_wgmma_variant(void)
{
    static int variant = -1;
    return cached_variant(&variant, 1, "MD_IN_PROJ_WGMMA", kVariants, kDefaultVariant);
}

extern "C" cudaError_t mdk_in_proj_conv_fwd_wgmma(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn,
                                                  int64_t ldh, const void *w_in, int64_t ldw, const float *conv_w,
                                                  const float *conv_b, int64_t batch, int64_t len, int64_t d,
                                                  int64_t E, cudaStream_t s)
{
    int v = mdk_in_proj_wgmma_variant();
    if (v == 2 && (((uintptr_t)u % 8) != 0 || ldu % 4 != 0)) v = 1;   /* its 8-byte u stores */
    switch (v) {
    case 1: return launch_shape<1>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, d, E, s);
    case 2: return launch_shape<2>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, d, E, s);
    default: return cudaErrorInvalidValue;
    }
}
