/* The tensor-core primitives shared by the mma.sync kernels
 * (attention_mma.cuh's attention, linear_add_rmsnorm.cu, mamba_in_proj.cu,
 * lowrank_bwd.cu, x_dt_proj.cu): one m16n8k16 bf16 product with fp32
 * accumulation, 32-bit and ldmatrix fragment reads from shared tiles, bf16
 * packing, cp.async's copies and group fences. Fragment layouts: see
 * attention_mma.cuh. Shared rows are padded by PAD bf16 (16 bytes), so
 * that the 8 rows a 32-bit fragment read touches fall in 8 different
 * 4-bank groups.
 */
#ifndef MD_KERNELS_MMA_BF16_CUH
#define MD_KERNELS_MMA_BF16_CUH

#include <cuda_bf16.h>
#include <stdint.h>

namespace {

enum { PAD = 8 };   /* bf16 padding of a shared tile's rows */

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* d += a b: one m16n8k16 bf16 product with fp32 accumulation */
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* the four 8 x 8 bf16 matrices whose rows lanes 0-7, 8-15, 16-23, 24-31
 * address, in mma fragment order (r[i]: row lane / 4, columns 2 (lane % 4)
 * and + 1 of matrix i) */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const __nv_bfloat16 *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((uint32_t)__cvta_generic_to_shared(p)));
}

/* ldsm_x4 of the matrices transposed: r[i] holds rows 2 (lane % 4) and + 1
 * of column lane / 4 of matrix i (a fragment of the stored tile's
 * transpose: dy^T as A from dy's rows, or B with k along the rows) */
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const __nv_bfloat16 *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((uint32_t)__cvta_generic_to_shared(p)));
}

/* ldsm_x4_trans of two matrices, rows addressed by lanes 0-7 and 8-15 */
__device__ __forceinline__ void ldsm_x2_trans(uint32_t r[2], const __nv_bfloat16 *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"((uint32_t)__cvta_generic_to_shared(p)));
}

/* host side: whether p is a multiple of a bytes (a launch's alignment test) */
inline bool aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

/* queues a 16-byte copy from global src to shared dst; in false: 16 zero
 * bytes (source size 0, src must still be a valid address) */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool in)
{
    const uint32_t sa = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(src), "r"(in ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/* waits until at most N committed cp.async groups are still in flight */
template <int N>
__device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Queues the copies of the first R rows of the bf16 matrix at g (row
 * stride ld) into the padded shared tile sh (row stride HD + PAD), 16
 * bytes per cp.async by NT threads (tid: this one's index among them);
 * rows from n_in on are zero-filled (source size 0: the address is g's). */
template <int R, int HD, int NT>
__device__ __forceinline__ void copy_tile_async(__nv_bfloat16 *sh, const __nv_bfloat16 *g, int ld, int n_in,
                                                int tid = (int)threadIdx.x)
{
    for (int i = tid; i < R * HD / 8; i += NT) {
        int r = i / (HD / 8), d = 8 * (i - r * (HD / 8));
        bool in = r < n_in;
        cp_async16(sh + r * (HD + PAD) + d, g + (in ? r * ld + d : 0), in);
    }
}

}   // namespace

#endif
