/* The Mamba block's in_proj fused with conv1d + SiLU, for the inference
 * forward (backend_kernels.h, mdk_in_proj_conv_fwd_bf16): from hn (M, D)
 * and in_proj's weight W (2E, D), writes z = hn W[E:2E]^T and
 * u = silu(conv1d(x) + bias) with x = hn W[0:E]^T, never storing x
 * (NOTES-backend.md, "classify: in_proj fused with conv1d + SiLU").
 *
 * Persistent blocks, one an SM (W takes most of the shared memory): a
 * block copies W into shared memory once, and each of its warp groups
 * walks whole sequences in tiles of kRows rows, so that the conv's K - 1
 * taps before a tile are the previous tile's last rows of x, kept on chip
 * (zeros at a sequence's start), and no halo is recomputed. A tile: its z
 * half on the tensor cores (m16n8k16, fp32 accumulation), rounded to
 * bf16, staged in shared memory and stored in 16-byte rows; then its x
 * half, rounded to bf16 exactly as storing xz would, into the shared x
 * tile, and the conv + SiLU over it with conv1d.cu's arithmetic
 * (conv1d_pair.cuh), so that the fused and the unfused paths differ only
 * by the products' accumulation order. The next tile's hn rows are in
 * flight (cp.async) while a tile computes. At classify's shape it takes
 * 2.54 ms, about what cuBLAS's in_proj and conv1d.cu take together
 * (NOTES-backend.md: the floors, and what would reach them). On a 9.0
 * device with the sm_90a kernels built, sm90a/in_proj_wgmma.cu's kernel
 * (2.05 ms) runs instead; this one stays for other devices and for A/B
 * (MD_IN_PROJ_WGMMA=0). */
#include "backend_kernels.h"

#include "conv1d_pair.cuh"
#include "mma_bf16.cuh"
#include "storage.cuh"

namespace {

/* Two groups of 8 warps a block by default (MD_IN_PROJ_GROUPS, a -D switch
 * for tools/in_proj_conv_bench.cu), each on its own sequences with its own
 * tiles and barriers, sharing W: while one group's tensor cores run, the
 * other's conv (the SFU's sigmoids) and stores can (at classify's shape
 * one group of 64-row tiles took 2.74 ms, two of 32 rows 2.54). A group's
 * 8 warps each own E / 8 columns of a half and all its rows. */
#ifndef MD_IN_PROJ_GROUPS
#define MD_IN_PROJ_GROUPS 2
#endif
constexpr int kGroups = MD_IN_PROJ_GROUPS;
constexpr int kRows = 64 / kGroups;             /* rows a tile */
constexpr int kMT = kRows / 16;                 /* m-tiles of 16 a warp */
constexpr int kGroupThreads = 256;
constexpr int kThreads = kGroupThreads * kGroups;
constexpr int kK = 4;                           /* conv width */
constexpr int kHalo = kK - 1;

template <int D, int E> struct InProj {
    static constexpr int LDW = D + PAD;         /* W's and hn's shared rows (bf16) */
    static constexpr int LDX = E + PAD;         /* the x (or staged z) tile's */
    static constexpr int NT = E / 64;           /* n-tiles of 8 a warp */
    static constexpr int PAIRS = E / 2, SEGS = kGroupThreads / PAIRS, S = kRows / SEGS;   /* the conv's split */
    static constexpr size_t W_ELEMS = (size_t)2 * E * LDW, H_ELEMS = (size_t)kRows * LDW;
    static constexpr size_t X_ELEMS = (size_t)(kRows + kHalo) * LDX;
    static constexpr size_t G_ELEMS = 2 * H_ELEMS + X_ELEMS;   /* a group's: two hn tiles, the x tile */
    static constexpr size_t SMEM = (W_ELEMS + kGroups * G_ELEMS) * sizeof(__nv_bfloat16);
    static_assert(NT % 2 == 0 && D % 16 == 0, "two n-tiles per ldmatrix; k-steps of 16");
    static_assert(kGroupThreads % PAIRS == 0 && kRows % SEGS == 0, "the conv's threads tile the x tile");
    static_assert(SMEM <= 227 * 1024, "one block an SM");
};

/* the group's barrier (named barrier 1 + group, its 256 threads) */
__device__ __forceinline__ void group_sync(int group)
{
    if (kGroups == 1) __syncthreads();
    else asm volatile("bar.sync %0, %1;\n" ::"r"(group + 1), "n"(kGroupThreads) : "memory");
}

/* acc (16 kMT x 8 NT: the warp's rows and columns) = the hn tile times the
 * rows n0 .. n0 + 8 NT of the shared W (its columns of the product) */
template <int D, int NT>
__device__ __forceinline__ void tile_product(float (&acc)[kMT][NT][4], const __nv_bfloat16 *hs,
                                             const __nv_bfloat16 *ws, int n0)
{
    constexpr int LD = D + PAD;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int m = 0; m < kMT; m++)
#pragma unroll
        for (int n = 0; n < NT; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
    /* ldmatrix.x4 lane addresses: A, lanes 0-15 rows 0-15 at k0, 16-31 the
     * same at k0 + 8; B, lanes 0-7 rows (n) 0-7 at k0, 8-15 at k0 + 8,
     * 16-31 the same for the next n-tile */
    const uint32_t a_base = (uint32_t)__cvta_generic_to_shared(hs + (lane & 15) * LD + 8 * (lane >> 4));
    const uint32_t b_base = (uint32_t)__cvta_generic_to_shared(
        ws + (n0 + (lane & 7) + 8 * (lane >> 4)) * LD + 8 * ((lane >> 3) & 1));
#pragma unroll 2
    for (int kd = 0; kd < D / 16; kd++) {
        uint32_t a[kMT][4], b[NT][2];
#pragma unroll
        for (int m = 0; m < kMT; m++) {
            const uint32_t addr = a_base + (uint32_t)((16 * m * LD + 16 * kd) * sizeof(__nv_bfloat16));
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(a[m][0]), "=r"(a[m][1]), "=r"(a[m][2]), "=r"(a[m][3])
                         : "r"(addr));
        }
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
            const uint32_t addr = b_base + (uint32_t)((8 * n * LD + 16 * kd) * sizeof(__nv_bfloat16));
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(b[n][0]), "=r"(b[n][1]), "=r"(b[n + 1][0]), "=r"(b[n + 1][1])
                         : "r"(addr));
        }
#pragma unroll
        for (int m = 0; m < kMT; m++)
#pragma unroll
            for (int n = 0; n < NT; n++) mma16816(acc[m][n], a[m], b[n][0], b[n][1]);
    }
}

/* the warp's C fragments, rounded to bf16, into rows 0 .. kRows - 1 of
 * the shared tile xs (row stride LD) at columns c0 + 8 n + 2 (lane % 4) */
template <int NT, int LD>
__device__ __forceinline__ void tile_to_shared(__nv_bfloat16 *xs, const float (&acc)[kMT][NT][4], int c0)
{
    const int lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
#pragma unroll
    for (int m = 0; m < kMT; m++)
#pragma unroll
        for (int n = 0; n < NT; n++) {
            __nv_bfloat16 *p = xs + (16 * m + g) * LD + c0 + 8 * n + c2;
            *reinterpret_cast<uint32_t *>(p) = pack_bf16(acc[m][n][0], acc[m][n][1]);
            *reinterpret_cast<uint32_t *>(p + 8 * LD) = pack_bf16(acc[m][n][2], acc[m][n][3]);
        }
}

template <int D, int E>
__global__ void __launch_bounds__(kThreads, 1)
    in_proj_conv_kernel(__nv_bfloat16 *u, int64_t ldu, __nv_bfloat16 *z, int64_t ldz, const __nv_bfloat16 *hn,
                        int64_t ldh, const __nv_bfloat16 *w_in, int64_t ldw, const float *conv_w,
                        const float *conv_b, int batch, int len)
{
    using P = InProj<D, E>;
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16 *ws = reinterpret_cast<__nv_bfloat16 *>(smem);
    const int group = threadIdx.x / kGroupThreads, gt = threadIdx.x % kGroupThreads;
    __nv_bfloat16 *const hs0 = ws + P::W_ELEMS + group * P::G_ELEMS;   /* two hn tiles, P::H_ELEMS apart */
    __nv_bfloat16 *xs = hs0 + 2 * P::H_ELEMS;   /* rows 0 .. K-2: the taps before the tile; then the tile */

    const int wn = gt >> 5;   /* the warp's columns: wn * 8 NT .. of each half */
    const int pair = gt % P::PAIRS, seg = gt / P::PAIRS, e = 2 * pair;
    float wk[2][kK], bias[2];
#pragma unroll
    for (int v = 0; v < 2; v++) {
#pragma unroll
        for (int k = 0; k < kK; k++) wk[v][k] = conv_w[(e + v) * kK + k];
        bias[v] = conv_b[e + v];
    }

    copy_tile_async<2 * E, D, kThreads>(ws, w_in, (int)ldw, 2 * E);
    cp_async_commit();
    /* the group's sequences: b, + stride, ... */
    const int stride = gridDim.x * kGroups;
    int b = blockIdx.x * kGroups + group, t0 = 0, buf = 0;
    if (b < batch)
        copy_tile_async<kRows, D, kGroupThreads>(hs0, hn + (int64_t)b * len * ldh, (int)ldh, min(kRows, len), gt);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();   /* W is in, from every thread's copies */

    while (b < batch) {
        const int n_in = min(kRows, len - t0);
        const int64_t r0 = (int64_t)b * len + t0;
        /* the next tile: the rest of this sequence, or the group's next one */
        int nb = b, nt0 = t0 + kRows;
        if (nt0 >= len) nb += stride, nt0 = 0;
        cp_async_wait<0>();
        group_sync(group);   /* hn's tile is in; the last tile's reads of xs and of the other hn buffer are done */
        if (nb < batch)
            copy_tile_async<kRows, D, kGroupThreads>(hs0 + (buf ^ 1) * P::H_ELEMS, hn + ((int64_t)nb * len + nt0) * ldh,
                                                     (int)ldh, min(kRows, len - nt0), gt);
        cp_async_commit();
        if (t0 == 0)   /* the taps before the sequence's start */
            for (int i = gt; i < kHalo * P::LDX / 2; i += kGroupThreads) reinterpret_cast<uint32_t *>(xs)[i] = 0;

        const __nv_bfloat16 *hw = hs0 + buf * P::H_ELEMS;
        __nv_bfloat16 *xw = xs + kHalo * P::LDX;
        float acc[kMT][P::NT][4];
        /* z: staged in the x tile's rows, stored as 16-byte row pieces */
        tile_product<D, P::NT>(acc, hw, ws, E + wn * 8 * P::NT);
        tile_to_shared<P::NT, P::LDX>(xw, acc, wn * 8 * P::NT);
        group_sync(group);
        for (int i = gt; i < n_in * (E / 8); i += kGroupThreads) {
            const int r = i / (E / 8), c = 8 * (i - r * (E / 8));
            *reinterpret_cast<uint4 *>(z + (r0 + r) * ldz + c) =
                *reinterpret_cast<const uint4 *>(xw + r * P::LDX + c);
        }
        group_sync(group);
        /* x, rounded as its store would round it, then the conv + SiLU */
        tile_product<D, P::NT>(acc, hw, ws, wn * 8 * P::NT);
        tile_to_shared<P::NT, P::LDX>(xw, acc, wn * 8 * P::NT);
        group_sync(group);
        {
            const int i0 = seg * P::S, nrows = min(P::S, n_in - i0);
            const __nv_bfloat16 *xp = xs + i0 * P::LDX + e;   /* x at tile row i0 - (K-1) + j: xp[j LDX] */
            __nv_bfloat16 *up = u + (r0 + i0) * ldu + e;
            float win[kK][2];
#pragma unroll
            for (int j = 0; j < kK - 1; j++) ld_v<2>(xp + j * P::LDX, win[j]);
#pragma unroll 4
            for (int i = 0; i < nrows; i++) {
                ld_v<2>(xp + (i + kK - 1) * P::LDX, win[kK - 1]);
                float out[2];
                conv_silu_pair<kK>(out, win, wk, bias);
                st_v<2>(up, out);
                up += ldu;
            }
        }
        group_sync(group);
        /* the tile's last K-1 rows of x become the next tile's taps (a
         * tile short of kRows ends its sequence: the next one zeroes them) */
        if (n_in == kRows)
            for (int i = gt; i < kHalo * E / 2; i += kGroupThreads) {
                const int r = i / (E / 2), c = 2 * (i - r * (E / 2));
                *reinterpret_cast<uint32_t *>(xs + r * P::LDX + c) =
                    *reinterpret_cast<const uint32_t *>(xs + (kRows + r) * P::LDX + c);
            }
        b = nb, t0 = nt0, buf ^= 1;
    }
    cp_async_wait<0>();
}


template <int D, int E>
cudaError_t launch(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                   int64_t ldw, const float *conv_w, const float *conv_b, int64_t batch, int64_t len, cudaStream_t s)
{
    using P = InProj<D, E>;
    /* set at every launch: a host-side call, and per device */
    cudaError_t e = cudaFuncSetAttribute(in_proj_conv_kernel<D, E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)P::SMEM);
    if (e != cudaSuccess) return e;
    const int64_t blocks = (batch + kGroups - 1) / kGroups, sms = mdk_sm_count();
    const int grid = (int)(blocks < sms ? blocks : sms);
    in_proj_conv_kernel<D, E><<<grid, kThreads, P::SMEM, s>>>(
        (__nv_bfloat16 *)u, ldu, (__nv_bfloat16 *)z, ldz, (const __nv_bfloat16 *)hn, ldh,
        (const __nv_bfloat16 *)w_in, ldw, conv_w, conv_b, (int)batch, (int)len);
    return cudaGetLastError();
}

bool aligned16(const void *p, int64_t ld) { return ((uintptr_t)p % 16) == 0 && (ld * 2) % 16 == 0; }

}   // namespace

int mdk_sm_count(void)
{
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

int mdk_in_proj_conv_takes(int64_t batch, int64_t len, int64_t d, int64_t E, int64_t width, const void *u,
                           int64_t ldu, const void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                           int64_t ldw)
{
    const bool shape = width == kK && ((d == 128 && E == 256) || (d == 64 && E == 128) || (d == 64 && E == 256));
    const int sms = mdk_sm_count();
    return shape && sms > 0 && batch >= (int64_t)MDK_IN_PROJ_CONV_MIN_SEQS_PER_SM * sms &&
           batch * len < INT32_MAX && aligned16(z, ldz) && aligned16(hn, ldh) && aligned16(w_in, ldw) &&
           ((uintptr_t)u % 4) == 0 && ldu % 2 == 0;
}

cudaError_t mdk_in_proj_conv_fwd_bf16(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh,
                                      const void *w_in, int64_t ldw, const float *conv_w, const float *conv_b,
                                      int64_t batch, int64_t len, int64_t d, int64_t E, cudaStream_t s)
{
#if MD_HAVE_WGMMA
    if (mdk_in_proj_wgmma_variant())
        return mdk_in_proj_conv_fwd_wgmma(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, d, E, s);
#endif
    if (d == 128 && E == 256) return launch<128, 256>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 128) return launch<64, 128>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    if (d == 64 && E == 256) return launch<64, 256>(u, ldu, z, ldz, hn, ldh, w_in, ldw, conv_w, conv_b, batch, len, s);
    return cudaErrorInvalidValue;
}
