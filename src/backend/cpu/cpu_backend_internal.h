/* What the files of the CPU backend's table share (cpu_backend.c: the
 * table and most ops; cpu_backend_hyena.c: the Hyena ops): the argument
 * checks and the per-op profile. Not a public header. */
#ifndef MD_BACKEND_CPU_BACKEND_INTERNAL_H
#define MD_BACKEND_CPU_BACKEND_INTERNAL_H

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/ops.h"
#include "util/log.h"

#define OP_REQUIRE(cond, op)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            md_error("backend cpu, op %s: internal error, %s does not hold", op, #cond);    \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static inline int is_f64(const md_tensor_t *t, const char *op)
{
    OP_REQUIRE(t->dtype == MD_DTYPE_F32 || t->dtype == MD_DTYPE_F64, op);
    OP_REQUIRE(t->device == MD_DEVICE_CPU, op);
    OP_REQUIRE(t->ld >= md_tensor_ncols(t), op);
    return t->dtype == MD_DTYPE_F64;
}

#define SAME_DTYPE(a, b, op) OP_REQUIRE((a)->dtype == (b)->dtype, op)
#define NROWS(t) md_tensor_nrows(t)
#define NCOLS(t) md_tensor_ncols(t)

/* y, x (B*L, C) views, w (C, K <= 16), bias (C): a depthwise causal conv's arguments */
static inline void md_cpu_conv_check(const md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                                     const md_tensor_t *bias, int64_t batch, const char *op)
{
    int64_t dim = NCOLS(x);
    SAME_DTYPE(x, y, op);
    SAME_DTYPE(w, y, op);
    SAME_DTYPE(bias, y, op);
    OP_REQUIRE(batch >= 1 && NROWS(x) % batch == 0, op);
    OP_REQUIRE(NROWS(y) == NROWS(x) && NCOLS(y) == dim, op);
    OP_REQUIRE(md_tensor_numel(w) % dim == 0 && md_tensor_numel(w) / dim <= MD_CPU_CONV_MAXK &&
                   md_tensor_numel(bias) == dim,
               op);
}

/* The per-op profile (md_cpu_profile_enable): time and calls per kind. */
enum { P_GEMM, P_ADD, P_SCALE, P_SUMSQ, P_ADAMW, P_EMB_F, P_EMB_B, P_RMS_F, P_RMS_B, P_CONV_F, P_CONV_B, P_SCAN_F,
       P_SCAN_B, P_XENT, P_COPY, P_ROPE, P_ATTN_F, P_ATTN_B, P_SWIGLU_F, P_SWIGLU_B,
       P_LN_F, P_LN_B, P_FFTCONV_F, P_FFTCONV_B, P_DWCONV_F, P_DWCONV_B, P_HYENA_EW, N_PROF };
extern int md_cpu_prof_on;
extern double md_cpu_prof_time[N_PROF];
extern int64_t md_cpu_prof_calls[N_PROF];

#define PROF_BEGIN double prof_t0_ = md_cpu_prof_on ? omp_get_wtime() : 0
/* ops may run on several threads at once (one sequence each) */
#define PROF_END(k)                                        \
    do {                                                   \
        if (md_cpu_prof_on) {                                     \
            double dt_ = omp_get_wtime() - prof_t0_;       \
            _Pragma("omp atomic") md_cpu_prof_time[k] += dt_;     \
            _Pragma("omp atomic") md_cpu_prof_calls[k]++;         \
        }                                                  \
    } while (0)

/* cpu_backend_hyena.c: the Hyena section of the table */
void md_cpu_op_bias_add(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *bias);
void md_cpu_op_bias_bwd(const md_backend_t *be, md_tensor_t *dbias, const md_tensor_t *dy);
void md_cpu_op_layernorm_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *mean, md_tensor_t *rstd,
                             const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *b, double eps);
void md_cpu_op_layernorm_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *db,
                             const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                             const md_tensor_t *mean, const md_tensor_t *rstd, int accumulate);
void md_cpu_op_gelu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x);
void md_cpu_op_gelu_bwd(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *x);
void md_cpu_op_sin_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *freq);
void md_cpu_op_sin_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dfreq, md_tensor_t *dbias,
                       const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *freq);
void md_cpu_op_hyena_modulate(const md_backend_t *be, md_tensor_t *k, int64_t l_max, double target, double fast_pct,
                              double slow_pct);
void md_cpu_op_dwconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                          const md_tensor_t *bias, int64_t batch);
void md_cpu_op_dwconv_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                          const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w, int64_t batch);
size_t md_cpu_op_fftconv_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                   int64_t channels);
size_t md_cpu_op_fftconv_spectra_bytes(const md_backend_t *be, int64_t batch, int64_t len, int64_t channels);
void md_cpu_op_fftconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x0, const md_tensor_t *x1,
                           const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D, int64_t batch,
                           void *workspace, void *spectra);
void md_cpu_op_fftconv_bwd(const md_backend_t *be, md_tensor_t *dx0, md_tensor_t *dx1, md_tensor_t *dv,
                           md_tensor_t *dk, md_tensor_t *dD, const md_tensor_t *dy, const md_tensor_t *x0,
                           const md_tensor_t *x1, const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D,
                           int64_t batch, void *workspace, const void *spectra);

#endif
