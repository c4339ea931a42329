/* The f64 instantiation of the Hyena kernels (the gradient checks), with fftw3. */
#define REAL double
#define SFX f64
#define FFTW(x) fftw_##x
#define R_SIN sin
#define R_COS cos
#define R_TANH tanh
#include "backend/cpu/cpu_hyena_tmpl.h"
