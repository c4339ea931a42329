/* The special-function unit's approximations (ex2, rcp, lg2; flush-to-zero)
 * and what the kernels build from them, for elementwise math where an
 * error of a few ulp is below what the checks allow: expf and an IEEE
 * division cost ~20 instructions an element more, which binds kernels
 * that do little else per element (NOTES-scan.md v5, NOTES-backend.md's
 * conv1d section). */
#ifndef MD_KERNELS_FASTMATH_CUH
#define MD_KERNELS_FASTMATH_CUH

#define MD_LOG2E 1.4426950408889634f
#define MD_LN2 0.6931471805599453f

__device__ __forceinline__ float md_ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float md_rcp(float x)
{
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float md_lg2(float x)
{
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* sigmoid(z); 0 for z below about -88 (rcp of +inf). */
__device__ __forceinline__ float md_sigmoid(float z) { return md_rcp(1.f + md_ex2(-z * MD_LOG2E)); }

#endif
