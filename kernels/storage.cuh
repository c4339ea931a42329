/* Loads and stores of the two storage dtypes the kernels template over
 * (fp32, and bf16 for the bf16 table's activations): arithmetic is always
 * fp32; a bf16 store rounds to nearest even. */
#ifndef MD_KERNELS_STORAGE_CUH
#define MD_KERNELS_STORAGE_CUH

#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

__device__ __forceinline__ float ld_f(const float *p) { return *p; }
__device__ __forceinline__ float ld_f(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void st_f(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* Two adjacent columns as one 4-byte (bf16) or 8-byte (fp32) access: where
 * a kernel's columns and row strides are even and its pointers aligned,
 * so that a warp moves 128 or 256 contiguous bytes per access instead of
 * 64 or 128 (bf16 elementwise kernels are bound by their access count). */
__device__ __forceinline__ float2 ld_pair(const float *p) { return *(const float2 *)p; }
__device__ __forceinline__ float2 ld_pair(const __nv_bfloat16 *p)
{
    return __bfloat1622float2(*(const __nv_bfloat162 *)p);
}
__device__ __forceinline__ void st_pair(float *p, float2 v) { *(float2 *)p = v; }
__device__ __forceinline__ void st_pair(__nv_bfloat16 *p, float2 v) { *(__nv_bfloat162 *)p = __float22bfloat162_rn(v); }

/* 1 when every (pointer, row stride) pair allows the pair accesses above */
static inline int pairs_ok(int64_t cols, size_t es, const void *p0, int64_t ld0, const void *p1, int64_t ld1,
                           const void *p2, int64_t ld2)
{
    return cols % 2 == 0 && ld0 % 2 == 0 && ld1 % 2 == 0 && ld2 % 2 == 0 && (uintptr_t)p0 % (2 * es) == 0 &&
           (uintptr_t)p1 % (2 * es) == 0 && (uintptr_t)p2 % (2 * es) == 0;
}

/* Runs `body` with T the storage type a launcher's act_bf16 flag names
 * (float or __nv_bfloat16), for launchers that take either. */
#define WITH_ACT_TYPE(act_bf16, ...)   \
    do {                               \
        if (act_bf16) {                \
            typedef __nv_bfloat16 T;   \
            __VA_ARGS__;               \
        } else {                       \
            typedef float T;           \
            __VA_ARGS__;               \
        }                              \
    } while (0)

#endif
