/* The CPU kernels of the Hyena section of backend/ops.h (bias, LayerNorm,
 * GELU, Sin, the exponential modulation, the short depthwise conv and the
 * FFT long convolution), on raw host pointers. Written once in
 * cpu_hyena_tmpl.h for a `real` type and compiled by cpu_hyena_f32.c (FFTW's
 * single precision, fftw3f) and cpu_hyena_f64.c (fftw3); cpu_backend.c
 * unwraps the tensors and dispatches on the dtype. ld* are row strides in
 * elements.
 *
 * The FFT convolution works channel by channel: the filter's transform is
 * taken once per channel and call, then every sequence of the batch is
 * convolved with it, so the sums over the batch (dk, dD) run in a fixed
 * order inside one channel and no two threads ever write the same output.
 * Adjacent channels go in groups of up to 16 (whole cache lines of each
 * row), groups are spread over lanes of the workspace (one per core, lane l
 * taking groups l, l + lanes, ...); neither the group size nor the lane
 * count changes any result.
 */
#ifndef MD_BACKEND_CPU_HYENA_H
#define MD_BACKEND_CPU_HYENA_H

#include <stddef.h>
#include <stdint.h>

#define MD_CPU_DECLARE_HYENA(S)                                                                                      \
    void md_cpu_bias_add_##S(void *y, int64_t ldy, const void *bias, int64_t rows, int64_t cols);                   \
    void md_cpu_bias_bwd_##S(void *dbias, const void *dy, int64_t lddy, int64_t rows, int64_t cols);                \
    void md_cpu_layernorm_fwd_##S(void *y, int64_t ldy, void *mean, void *rstd, const void *x, int64_t ldx,         \
                                  const void *w, const void *b, int64_t rows, int64_t dim, double eps);             \
    void md_cpu_layernorm_bwd_##S(void *dx, int64_t lddx, void *dw, void *db, const void *dy, int64_t lddy,        \
                                  const void *x, int64_t ldx, const void *w, const void *mean, const void *rstd,    \
                                  int64_t rows, int64_t dim, int accumulate);                                       \
    void md_cpu_gelu_fwd_##S(void *y, int64_t ldy, const void *x, int64_t ldx, int64_t rows, int64_t cols);         \
    void md_cpu_gelu_bwd_##S(void *dx, int64_t lddx, const void *dy, int64_t lddy, const void *x, int64_t ldx,     \
                             int64_t rows, int64_t cols);                                                           \
    void md_cpu_sin_fwd_##S(void *y, int64_t ldy, const void *x, int64_t ldx, const void *freq, int64_t rows,       \
                            int64_t cols);                                                                          \
    void md_cpu_sin_bwd_##S(void *dx, int64_t lddx, void *dfreq, const void *dy, int64_t lddy, const void *x,      \
                            int64_t ldx, const void *freq, int64_t rows, int64_t cols);                             \
    void md_cpu_hyena_modulate_##S(void *k, int64_t len, int64_t cols, int64_t l_max, double target,               \
                                   double fast_pct, double slow_pct);                                               \
    void md_cpu_dwconv_fwd_##S(void *y, int64_t ldy, const void *x, int64_t ldx, const void *w, const void *bias,  \
                               int64_t batch, int64_t len, int64_t dim, int64_t width);                             \
    void md_cpu_dwconv_bwd_##S(void *dx, int64_t lddx, void *dw, void *dbias, const void *dy, int64_t lddy,        \
                               const void *x, int64_t ldx, const void *w, int64_t batch, int64_t len, int64_t dim, \
                               int64_t width);                                                                      \
    size_t md_cpu_fftconv_workspace_##S(int64_t len, int64_t channels);                                             \
    void md_cpu_fftconv_fwd_##S(const md_cpu_fftconv_args_t *a);                                                    \
    void md_cpu_fftconv_bwd_##S(const md_cpu_fftconv_args_t *a);

/* Everything the FFT convolution's forward and backward read and write
 * (backward-only fields are NULL in the forward). */
typedef struct md_cpu_fftconv_args {
    int64_t batch, len, channels;
    const void *x0, *x1, *v, *k, *D;
    int64_t ld_x0, ld_x1, ld_v;
    void *y;
    int64_t ld_y;
    const void *dy;
    int64_t ld_dy;
    void *dx0, *dx1, *dv, *dk, *dD;
    int64_t ld_dx0, ld_dx1, ld_dv;
    void *workspace;
} md_cpu_fftconv_args_t;

MD_CPU_DECLARE_HYENA(f32)
MD_CPU_DECLARE_HYENA(f64)

#endif
