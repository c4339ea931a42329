/* The tensor-core primitives shared by the mma.sync kernels
 * (attention_mma.cuh's attention, linear_add_rmsnorm.cu): one m16n8k16
 * bf16 product with fp32 accumulation, 32-bit fragment reads from shared
 * tiles, bf16 packing and cp.async's group fences. Fragment layouts: see
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

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/* waits until at most N committed cp.async groups are still in flight */
template <int N>
__device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}   // namespace

#endif
