/* The pieces shared by the wgmma attention kernels at head dim 64
 * (attention_wgmma.cu, the forward; attention_wgmma_bwd.cu, the dK / dV
 * half of the backward; attention_wgmma_dq.cu, its dQ half): the tile
 * size, the copies of 64-bf16 rows into 128-byte-swizzled shared tiles
 * (wgmma.cuh's layout) and the ring of tile pairs they stream through,
 * the two products of a 64-row A in registers with such a tile, and the
 * parsing of the variant switches. sm_90a code only (kernels/sm90a/CMakeLists.txt).
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

/* The shared address of the block's dynamic shared memory (smem) rounded
 * up to 1024 bytes, where an SW128 tile must start (wgmma.cuh); the
 * kernels reserve 1024 bytes more than they use for this. */
__device__ __forceinline__ uint32_t ring_base(const void *smem)
{
    uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem);
    return raw + ((1024 - (raw & 1023)) & 1023);
}

/* The ring every kernel here streams its tiles through: STAGES stages of
 * a pair of SW128 tiles of FK rows from base (stage s: the first matrix's
 * tile at 2 s tiles, the second's right after it); tile t of the stream
 * lives in stage t % STAGES. */
enum { RING_TILE_BYTES = FK * WHD * 2 };
template <int STAGES>
__device__ __forceinline__ uint32_t ring_first(uint32_t base, int t)
{
    return base + (uint32_t)(2 * (t % STAGES) * RING_TILE_BYTES);
}
template <int STAGES>
__device__ __forceinline__ uint32_t ring_second(uint32_t base, int t)
{
    return base + (uint32_t)((2 * (t % STAGES) + 1) * RING_TILE_BYTES);
}

/* Queues tile t of the ring at base: rows r0 .. r0 + FK - 1 of m1 and m2
 * (c1 and c2 their copiers), those from len on as zeros. */
template <int STAGES, int NT>
__device__ __forceinline__ void ring_fetch(uint32_t base, int t, const tile_copier<FK, NT> &c1, rows_t m1,
                                           const tile_copier<FK, NT> &c2, rows_t m2, int64_t r0, int64_t len)
{
    int n_in = rows_in<FK>(r0, len);
    c1.issue(ring_first<STAGES>(base, t), m1.p + r0 * m1.ld, n_in);
    c2.issue(ring_second<STAGES>(base, t), m2.p + r0 * m2.ld, n_in);
}

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

/* env_variant(name, n, def) decided once per process into *slot (a race
 * only repeats the same answer); 0 while parent, the variant of the
 * switch this one refines, is 0 (off). */
int cached_variant(int *slot, int parent, const char *name, int n, int def)
{
    if (*slot < 0) *slot = parent == 0 ? 0 : env_variant(name, n, def);
    return *slot;
}

}   // namespace

#endif
