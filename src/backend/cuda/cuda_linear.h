/* The CUDA backend's fused Linear ops (backend/ops.h: linear_fwd,
 * linear_bwd_dx), in cuda_linear.c. Not a public header. */
#ifndef MD_BACKEND_CUDA_LINEAR_H
#define MD_BACKEND_CUDA_LINEAR_H

#include "backend/ops.h"

/* Fills linear_fwd and linear_bwd_dx; bf16 selects the bf16 table's
 * arithmetic (CUBLAS_COMPUTE_32F_FAST_16BF, as its gemm). */
void md_cuda_linear_install(md_backend_t *be, int bf16);

#endif
