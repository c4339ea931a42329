/* The f32 instantiation of the Hyena kernels (training), with fftw3f. */
#pragma GCC optimize("no-trapping-math")   /* lets GCC if-convert the clamps: see cpu_math.h */

#include "backend/cpu/cpu_math.h"

/* tanh through e^-2|u| (cpu_math.h's vectorisable exp): ~1e-7 absolute,
 * which is what GELU's 0.5 x (1 + tanh) needs; libm's tanhf is a scalar
 * call that would make GELU the slowest op of a Hyena block. */
static inline float md_tanhf(float u)
{
    float a = u < 0.0f ? -u : u, e = md_expf_neg(-2.0f * a), r = (1.0f - e) / (1.0f + e);
    return u < 0.0f ? -r : r;
}

#define REAL float
#define SFX f32
#define FFTW(x) fftwf_##x
#define R_SIN sinf
#define R_COS cosf
#define R_TANH md_tanhf
#include "backend/cpu/cpu_hyena_tmpl.h"
