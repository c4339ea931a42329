/* The pieces shared by the wgmma attention kernels at head dim 64
 * (attention_wgmma.cu, the forward; attention_wgmma_bwd.cu, the dK / dV
 * half of the backward): the tile size, the copies of 64-bf16 rows into
 * 128-byte-swizzled shared tiles (wgmma.cuh's layout), the two products
 * of a 64-row A in registers with such a tile, and the parsing of the
 * variant switches. sm_90a code only (kernels/sm90a/CMakeLists.txt).
 */
#ifndef MD_KERNELS_ATTENTION_WGMMA_CUH
#define MD_KERNELS_ATTENTION_WGMMA_CUH

#include "attention_mma.cuh"
#include "wgmma.cuh"

#include <stdlib.h>

namespace {

enum { WHD = 64 };   /* the head dim of these kernels: one 128-byte swizzle row per tile row */

/* rows per ring tile: keys in the forward (128 measured slower:
 * NOTES-attention.md), queries in the backward */
enum { FK = 64 };

/* One thread's share of the copies of R rows (64 bf16 each) of a matrix
 * with row stride ld into an SW128 tile, 16 bytes per cp.async by NT
 * threads: chunk c of row r goes to chunk position c ^ (r % 8). The
 * chunks a thread copies are the same in every tile, so their source
 * offsets (32 bits: the host keeps ld * R below 2^31) and shared offsets
 * are worked out once; a tile then costs one add, one compare and one
 * cp.async per chunk. */
template <int R, int NT>
struct tile_copier {
    enum { KC = (R * 8 + NT - 1) / NT };   /* chunks per thread; the last one partial where NT does not divide */
    int src[KC];
    uint32_t dst[KC];

    __device__ __forceinline__ explicit tile_copier(int ld)
    {
#pragma unroll
        for (int k = 0; k < KC; k++) {
            int i = threadIdx.x + k * NT, r = i >> 3, c = i & 7;
            src[k] = r * ld + 8 * c;
            dst[k] = (uint32_t)((r * WHD + 8 * (c ^ (r & 7))) * sizeof(__nv_bfloat16));
        }
    }

    /* Queues rows [0, R) of the matrix at g into the tile at shared address
     * sh; rows from n_in on are zero-filled (source size 0). */
    __device__ __forceinline__ void issue(uint32_t sh, const __nv_bfloat16 *g, int n_in) const
    {
#pragma unroll
        for (int k = 0; k < KC; k++) {
            int r = (threadIdx.x + k * NT) >> 3;
            if ((R * 8) % NT != 0 && r >= R) break;
            bool in = r < n_in;
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sh + dst[k]),
                         "l"(g + (in ? src[k] : 0)), "r"(in ? 16 : 0));
        }
    }
};

/* s (64 x 64) = q (64 x 64, A fragments per k16 step) times the tile at
 * shared address kt (64 rows, SW128) transposed: S = Q K^T forward, S^T =
 * K Q^T and dP^T = V dO^T backward */
__device__ __forceinline__ void qk_product(float (*s)[4], uint32_t (*qa)[4], uint32_t kt)
{
    /* each k16 step: the next 16 head-dim values, 32 bytes on in every row */
#pragma unroll
    for (int kd = 0; kd < WHD / 16; kd++) wgmma_m64n64k16<0>(s, qa[kd], sw128_desc(kt + 32 * kd), kd);
}

/* qk_product with the 64 x 64 A from shared memory: the K-major SW128
 * tile at shared address at (64 rows) */
__device__ __forceinline__ void qk_product_ss(float (*s)[4], uint32_t at, uint32_t kt)
{
#pragma unroll
    for (int kd = 0; kd < WHD / 16; kd++)
        wgmma_m64n64k16_ss<0>(s, sw128_desc(at + 32 * kd), sw128_desc(kt + 32 * kd), kd);
}

/* acc (64 x 64) += p (64 x FK, A fragments per k16 step) times the tile
 * at shared address vt (FK rows, SW128): O += P V forward, dV += P^T dO
 * and dK += dS^T Q backward */
__device__ __forceinline__ void pv_product(float (*acc)[4], uint32_t (*pa)[4], uint32_t vt)
{
#pragma unroll
    for (int kt = 0; kt < FK / 16; kt++) wgmma_m64n64k16<1>(acc, pa[kt], sw128_desc(vt + 16 * 128 * kt), 1);
}

/* The variant an environment switch names: def where name is unset or
 * not a number in [0, n]; 0 (off) on a device other than compute
 * capability 9.0, for which these files hold no machine code. */
int env_variant(const char *name, int n, int def)
{
    int v = def, dev = 0, major = 0, minor = 0;
    const char *env = getenv(name);
    if (env && *env) {
        char *end;
        long x = strtol(env, &end, 10);
        v = *end == '\0' && x >= 0 && x <= n ? (int)x : def;
    }
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) || major != 9 || minor != 0)
        v = 0;
    return v;
}

}   // namespace

#endif
