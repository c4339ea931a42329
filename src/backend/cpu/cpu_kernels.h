/* The CPU kernels behind md_backend_cpu(), on raw host pointers.
 *
 * Each kernel is written once in cpu_kernels_tmpl.h for a `real` type and
 * compiled twice: cpu_f32.c (float, suffix _f32) and cpu_f64.c (double,
 * _f64). cpu_backend.c unwraps md_tensor_t arguments, checks shapes and
 * dtypes, and calls the instantiation matching the dtype. Semantics,
 * layouts and gradient conventions are those of backend/ops.h; ld* are row
 * strides in elements. Pointers are void so one prototype list serves both
 * types.
 */
#ifndef MD_BACKEND_CPU_KERNELS_H
#define MD_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/ops.h"

/* Everything the scan's forward and backward read and write. */
typedef struct md_cpu_scan_args {
    int64_t batch, len, d_inner, d_state;
    const void *u, *delta, *dt_bias, *A_log, *Bm, *Cm, *D, *z;
    int64_t ld_u, ld_delta, ld_B, ld_C, ld_z;
    /* delta NULL: delta[t, e] = sum_r dt_w[e * dt_rank + r] dt_low[t * ld_dt_low + r] (ops.h scan_fwd) */
    const void *dt_low, *dt_w;
    int64_t ld_dt_low, dt_rank;   /* dt_rank <= MD_CPU_SCAN_MAX_DT_RANK */
    void *y;                 /* forward output (NULL: the states alone); in the backward NULL or its copy */
    int64_t ld_y;
    const void *dy;          /* backward */
    int64_t ld_dy;
    void *du, *ddelta, *dA_log, *dBm, *dCm, *dD, *dz, *ddt_bias;
    int64_t ld_du, ld_ddelta, ld_dB, ld_dC, ld_dz;
    void *states;            /* checkpoints the forward saves and the backward reads; may be NULL */
    void *workspace;
} md_cpu_scan_args_t;

#define MD_CPU_DECLARE_KERNELS(S)                                                                                    \
    void md_cpu_add_##S(void *y, int64_t ldy, const void *x, int64_t ldx, int64_t rows, int64_t cols);               \
    void md_cpu_scale_##S(void *x, int64_t n, double alpha);                                                         \
    double md_cpu_sumsq_##S(const void *x, int64_t n);                                                               \
    void md_cpu_adamw_##S(void *p, const void *g, void *m, void *v, int64_t n, int64_t n_decay,                      \
                          const md_adamw_hparams_t *hp);                                                             \
    void md_cpu_embedding_fwd_##S(void *out, int64_t ldo, const uint8_t *tok, const void *w, int64_t rows,           \
                                  int64_t dim);                                                                      \
    void md_cpu_embedding_bwd_##S(void *dw, const void *dout, int64_t ldd, const uint8_t *tok, int64_t rows,         \
                                  int64_t dim);                                                                      \
    void md_cpu_rmsnorm_fwd_##S(void *y, int64_t ldy, void *rstd, const void *x, int64_t ldx, const void *w,        \
                                int64_t rows, int64_t dim, double eps);                                              \
    void md_cpu_rmsnorm_bwd_##S(void *dx, int64_t lddx, void *dw, const void *dy, int64_t lddy, const void *x,     \
                                int64_t ldx, const void *w, const void *rstd, int64_t rows, int64_t dim,            \
                                int accumulate);                                                                     \
    void md_cpu_add_rmsnorm_fwd_##S(void *h, int64_t ldh, void *y, int64_t ldy, void *rstd, const void *hin,     \
                                    int64_t ldhin, const void *xadd, int64_t ldxadd, const void *w, int64_t rows,   \
                                    int64_t dim, double eps);                                                        \
    void md_cpu_conv1d_silu_fwd_##S(void *y, int64_t ldy, const void *x, int64_t ldx, const void *w,               \
                                    const void *bias, int64_t batch, int64_t len, int64_t dim, int64_t width);      \
    void md_cpu_conv1d_silu_bwd_##S(void *dx, int64_t lddx, void *dw, void *dbias, const void *dy, int64_t lddy,   \
                                    const void *x, int64_t ldx, const void *w, const void *bias, int64_t batch,     \
                                    int64_t len, int64_t dim, int64_t width);                                        \
    void md_cpu_scan_fwd_##S(const md_cpu_scan_args_t *a);                                                           \
    size_t md_cpu_scan_states_size_##S(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);             \
    size_t md_cpu_scan_bwd_workspace_##S(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);            \
    void md_cpu_scan_bwd_##S(const md_cpu_scan_args_t *a);                                                           \
    double md_cpu_xent_##S(void *dlogits, int64_t ldd, const void *logits, int64_t ldl, const uint8_t *targets,    \
                           int64_t rows, int64_t vocab, double grad_scale, int64_t *n_counted, void *workspace);

MD_CPU_DECLARE_KERNELS(f32)
MD_CPU_DECLARE_KERNELS(f64)

/* The largest dt_rank for which the scan forms delta itself: its items
 * keep their chunk's columns of dt_w (dt_rank x CH) on the stack. */
#define MD_CPU_SCAN_MAX_DT_RANK 64

/* Channels per work item of the f32 scan (four 16-lane vectors). The
 * portable and the AVX-512 items share it, and with it the layout of the
 * forward's checkpoints and of the backward's workspace. */
#define MD_CPU_SCAN_CH_F32 64

/* Channels per work item of the conv (both types and both paths), and the
 * widest conv (taps) the kernels take */
#define MD_CPU_CONV_CH 64
#define MD_CPU_CONV_MAXK 16

/* Kernels in AVX-512 (F + DQ), compiled on x86-64 with GCC or Clang
 * whatever the build flags and used only where the CPU has it (see
 * md_cpu_avx512_active):
 *  - the f32 scan's items (cpu_scan_avx512.c), arguments as the portable
 *    items in cpu_scan_tmpl.h: item (b, e0) of seg_len-step segments; ckpt
 *    receives (forward) or holds (backward; NULL: recomputed into scratch)
 *    the state entering each segment; bc is this chunk's block of dB/dC
 *    partial rows, chan the per-(b, channel) partials of dA_log, dD and
 *    ddt_bias;
 *  - the f32 conv1d + SiLU's items (cpu_conv_avx512.c), arguments as the
 *    portable items in cpu_kernels_tmpl.h: the forward's item is sequence
 *    b, channels e0 .. e0+nc-1 (nc <= MD_CPU_CONV_CH); the backward's the
 *    same channels over all sequences, adding into dw and dbias;
 *  - an f32 GEMM (cpu_gemm_avx512.c) for op(A) = A, and for op(A) = A^T
 *    in some shapes, row-major, BLAS semantics (beta = 0
 *    ignores C); md_cpu_sgemm_avx512_takes says which shapes it is meant
 *    for (1) and which it leaves to BLAS (0). */
#if defined(__x86_64__) && defined(__GNUC__)
#define MD_CPU_HAVE_AVX512 1
void md_cpu_scan_fwd_item_avx512(const md_cpu_scan_args_t *a, int64_t seg_len, int64_t b, int64_t e0, float *ckpt);
void md_cpu_scan_bwd_item_avx512(const md_cpu_scan_args_t *a, int64_t seg_len, int64_t nseg, int64_t b,
                                 int64_t e0, const float *ckpt, float *scratch, float *bc, float *chan);
void md_cpu_conv1d_silu_fwd_item_avx512(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                        const float *bias, int64_t b, int64_t len, int64_t K, int64_t e0,
                                        int64_t nc);
void md_cpu_conv1d_silu_bwd_item_avx512(float *dx, int64_t lddx, float *dw, float *dbias, const float *dy,
                                        int64_t lddy, const float *x, int64_t ldx, const float *w,
                                        const float *bias, int64_t batch, int64_t len, int64_t K, int64_t e0,
                                        int64_t nc);
/* The f32 scan's A = -exp(A_log) for x[0..n): a[i] = (float)-exp((double)x[i])
 * and, unless a_log2e is NULL, a_log2e[i] = (float)(-exp((double)x[i])
 * log2 e), as the portable scan computes them with libm's exp, from a
 * vector exp in double precision (within a few ulps of double, so that
 * the floats differ from libm's only where its result lies that close to
 * a rounding boundary of float). */
void md_cpu_scan_neg_exp_avx512(const float *x, int64_t n, float *a, float *a_log2e);
#else
#define MD_CPU_HAVE_AVX512 0
#endif
int md_cpu_sgemm_avx512_takes(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k);
void md_cpu_sgemm_avx512(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Whether the AVX-512 kernels run: the CPU has AVX-512 F and DQ, and they
 * are allowed. md_cpu_allow_avx512(0) makes the backend use its portable
 * kernels and BLAS everywhere (for tests comparing the two; the scan's
 * checkpoint layout is shared, so a forward on one path and a backward on
 * the other agree too). Not to be changed while an op runs. */
int md_cpu_avx512_active(void);
void md_cpu_allow_avx512(int allow);

/* Workspace of md_cpu_xent_*: one double per row. */
static inline size_t md_cpu_xent_workspace(int64_t rows) { return (size_t)rows * sizeof(double); }

#endif
