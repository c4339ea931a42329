/* The CPU's fused Linear ops (backend/ops.h, linear_fwd, linear_bwd_dx,
 * linear_add_rmsnorm_fwd, lowrank_bwd and x_dt_proj_fwd): compositions of
 * the table's own ops, so that their results are the bits of the unfused
 * calls. They call only be's ops, so another table may use one as its
 * fallback (CUDA's linear_add_rmsnorm_fwd, lowrank_bwd and x_dt_proj_fwd
 * do). */
#ifndef MD_BACKEND_CPU_LINEAR_H
#define MD_BACKEND_CPU_LINEAR_H

#include "backend/ops.h"

void md_cpu_linear_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                       const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act);
void md_cpu_linear_bwd_dx(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *w,
                          const md_tensor_t *pre_act, md_act_t act);
void md_cpu_linear_add_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *h_out, md_tensor_t *y, md_tensor_t *rstd,
                                   const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *h_in,
                                   const md_tensor_t *nw, double eps);

void md_cpu_lowrank_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                        const md_tensor_t *x, const md_tensor_t *w);

void md_cpu_x_dt_proj_fwd(const md_backend_t *be, md_tensor_t *xdbl, md_tensor_t *delta, const md_tensor_t *u,
                          const md_tensor_t *w_x, const md_tensor_t *w_dt);

#endif
