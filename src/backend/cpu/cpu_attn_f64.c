/* The f64 instantiation of the Transformer kernels, for the gradient
 * checks: the same code in double precision with libm's exp. */
#include <cblas.h>

#define REAL double
#define SFX f64
#define R_EXPN md_exp_d
#define R_SIGMOID md_sigmoid_d
#define R_GEMM cblas_dgemm
#include "backend/cpu/cpu_attention_tmpl.h"
