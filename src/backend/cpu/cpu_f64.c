/* The f64 instantiation of the CPU kernels: the same code in double
 * precision, with libm's exp/log1p, for the gradient checks. */
#define REAL double
#define SFX f64
#define CH 8
#define R_EXPN md_exp_d
#define R_SOFTPLUS md_softplus_d
#define R_SIGMOID md_sigmoid_d
#include "backend/cpu/cpu_kernels_tmpl.h"
#include "backend/cpu/cpu_scan_tmpl.h"
