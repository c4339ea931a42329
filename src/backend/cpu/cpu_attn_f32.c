/* The f32 instantiation of the Transformer kernels (training). */
#pragma GCC optimize("no-trapping-math")   /* lets GCC if-convert the clamps: see cpu_math.h */

#include <cblas.h>

#define REAL float
#define SFX f32
#define R_EXPN md_expf_neg
#define R_SIGMOID md_sigmoidf
#define R_GEMM cblas_sgemm
#include "backend/cpu/cpu_attention_tmpl.h"
