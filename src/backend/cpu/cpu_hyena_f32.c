/* The f32 instantiation of the Hyena kernels (training), with fftw3f. */
#define REAL float
#define SFX f32
#define FFTW(x) fftwf_##x
#define R_SIN sinf
#define R_COS cosf
#define R_TANH tanhf
#include "backend/cpu/cpu_hyena_tmpl.h"
