/* Loads and stores of the two storage dtypes the kernels template over
 * (fp32, and bf16 for the bf16 table's activations): arithmetic is always
 * fp32; a bf16 store rounds to nearest even. */
#ifndef MD_KERNELS_STORAGE_CUH
#define MD_KERNELS_STORAGE_CUH

#include <cuda_bf16.h>

__device__ __forceinline__ float ld_f(const float *p) { return *p; }
__device__ __forceinline__ float ld_f(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void st_f(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* Two adjacent elements (p 8-byte aligned for fp32, 4-byte for bf16): one
 * load or store for both, so that a warp moves 128 (bf16) or 256 (fp32)
 * consecutive bytes of a row. */
__device__ __forceinline__ void ld_pair(const float *p, float *v)
{
    const float2 r = *reinterpret_cast<const float2 *>(p);
    v[0] = r.x, v[1] = r.y;
}
__device__ __forceinline__ void ld_pair(const __nv_bfloat16 *p, float *v)
{
    const unsigned r = *reinterpret_cast<const unsigned *>(p);
    v[0] = __uint_as_float(r << 16), v[1] = __uint_as_float(r & 0xffff0000u);
}
__device__ __forceinline__ void st_pair(float *p, const float *v) { *reinterpret_cast<float2 *>(p) = make_float2(v[0], v[1]); }
__device__ __forceinline__ void st_pair(__nv_bfloat16 *p, const float *v)
{
    *reinterpret_cast<unsigned *>(p) = (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v[0])) |
                                       ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v[1])) << 16);
}

#endif
