/* The f32 instantiation of the CPU kernels (training). */
#pragma GCC optimize("no-trapping-math")   /* lets GCC if-convert the clamps: see cpu_math.h */

#define REAL float
#define SFX f32
#define CH MD_CPU_SCAN_CH_F32
#define ITEMS_AVX512 1   /* the scan's and the conv's items from cpu_*_avx512.c where the CPU has it */
#define R_EXPN md_expf_neg
#define R_SOFTPLUS md_softplusf
#define R_SIGMOID md_sigmoidf
#include "backend/cpu/cpu_kernels_tmpl.h"
#include "backend/cpu/cpu_scan_tmpl.h"
