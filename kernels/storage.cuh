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

/* V consecutive columns as floats, V = 1, 2 or 4: one 16-byte fp32 or 8-byte
 * bf16 access a lane for V = 4, so that a warp moves 256 or 512 contiguous
 * bytes per access (the caller checks the alignment, e.g. with vec_ok) */
template <int V> __device__ __forceinline__ void ld_v(const float *p, float *o)
{
    if (V == 4) {
        float4 a = *(const float4 *)p;
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w;
    } else if (V == 2) {
        float2 a = *(const float2 *)p;
        o[0] = a.x, o[1] = a.y;
    } else {
        o[0] = *p;
    }
}
template <int V> __device__ __forceinline__ void ld_v(const __nv_bfloat16 *p, float *o)
{
    if (V == 4) {
        uint2 a = *(const uint2 *)p;
        float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)&a.x);
        float2 hi = __bfloat1622float2(*(const __nv_bfloat162 *)&a.y);
        o[0] = lo.x, o[1] = lo.y, o[2] = hi.x, o[3] = hi.y;
    } else if (V == 2) {
        float2 a = ld_pair(p);
        o[0] = a.x, o[1] = a.y;
    } else {
        o[0] = ld_f(p);
    }
}
template <int V> __device__ __forceinline__ void st_v(float *p, const float *v)
{
    if (V == 4) *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    else if (V == 2) *(float2 *)p = make_float2(v[0], v[1]);
    else *p = v[0];
}
template <int V> __device__ __forceinline__ void st_v(__nv_bfloat16 *p, const float *v)
{
    if (V == 4) {
        __nv_bfloat162 lo = __float22bfloat162_rn(make_float2(v[0], v[1]));
        __nv_bfloat162 hi = __float22bfloat162_rn(make_float2(v[2], v[3]));
        uint2 a;
        a.x = *(const unsigned *)&lo, a.y = *(const unsigned *)&hi;
        *(uint2 *)p = a;
    } else if (V == 2) {
        st_pair(p, make_float2(v[0], v[1]));
    } else {
        st_f(p, v[0]);
    }
}

/* 1 when every (pointer, row stride) pair allows the V-wide accesses above */
static inline int vec_ok(int V, int64_t cols, size_t es, const void *p0, int64_t ld0, const void *p1, int64_t ld1,
                         const void *p2, int64_t ld2)
{
    return cols % V == 0 && ld0 % V == 0 && ld1 % V == 0 && ld2 % V == 0 && (uintptr_t)p0 % (V * es) == 0 &&
           (uintptr_t)p1 % (V * es) == 0 && (uintptr_t)p2 % (V * es) == 0;
}

/* 1 when every (pointer, row stride) pair allows the pair accesses above */
static inline int pairs_ok(int64_t cols, size_t es, const void *p0, int64_t ld0, const void *p1, int64_t ld1,
                           const void *p2, int64_t ld2)
{
    return vec_ok(2, cols, es, p0, ld0, p1, ld1, p2, ld2);
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
