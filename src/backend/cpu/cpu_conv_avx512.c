/* The f32 depthwise causal conv1d + SiLU written for AVX-512 (F + DQ).
 *
 * The same work items, taps order and sums as the portable blocks in
 * cpu_kernels_tmpl.h (which the f32 conv runs instead on CPUs without
 * AVX-512): forward items of one sequence and MD_CPU_CONV_CH channels,
 * backward items of MD_CPU_CONV_CH channels over all sequences, each
 * channel's pre-activation summed bias first and then the taps in order,
 * its weight and bias gradients summed over (sequence, step) in order.
 * What differs is the sigmoid: sigmoid_v (cpu_avx512.h: e^-|x| by
 * VREDUCEPS/VSCALEFPS, the division by VRCP14PS and a Newton step) where
 * GCC's vectorisation of md_sigmoidf has a VDIVPS per 16 channels, and the
 * accumulators, which stay in registers (GCC kept the portable block's
 * arrays on the stack, a store and a reload per tap).
 *
 * The last block of a dim that is not a multiple of 16 is handled with
 * masked loads and stores (padded lanes read as 0 and are never written).
 */
#include "backend/cpu/cpu_kernels.h"

#if MD_CPU_HAVE_AVX512

#include <immintrin.h>
#include <stdint.h>

#include "backend/cpu/cpu_avx512.h"

enum {
    CV = MD_CPU_CONV_CH / 16,   /* vectors per block */
    MAXK = MD_CPU_CONV_MAXK,
    PF = 16   /* rows prefetched ahead: a block's rows are a whole row apart, too far for the hardware prefetcher */
};

typedef struct {
    __m512 w[MAXK][CV], bias[CV];
    __mmask16 m[CV];
} conv_params_t;

static AVX512 void load_params(conv_params_t *p, const float *w, const float *bias, int64_t K, int64_t e0, int64_t nc)
{
    float wt[MAXK][MD_CPU_CONV_CH] __attribute__((aligned(64))) = {{0}}, bb[MD_CPU_CONV_CH] = {0};
    for (int64_t c = 0; c < nc; c++) {
        for (int64_t k = 0; k < K; k++) wt[k][c] = w[(e0 + c) * K + k];
        bb[c] = bias[e0 + c];
    }
    for (int i = 0; i < CV; i++) {
        for (int64_t k = 0; k < K; k++) p->w[k][i] = _mm512_loadu_ps(wt[k] + 16 * i);
        p->bias[i] = _mm512_loadu_ps(bb + 16 * i);
        int64_t left = nc - 16 * i;
        p->m[i] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
}

/* The masks of a whole block stored again as constants after load_params,
 * which the compiler cannot see into: the rows inlined after it then load
 * and store unmasked instead of reloading each mask from the stack */
static inline void whole_block(conv_params_t *p)
{
    for (int i = 0; i < CV; i++) p->m[i] = (__mmask16)0xFFFF;
}

static inline void prefetch_row(const float *p, int write)
{
    const char *c = (const char *)p;
    for (int q = 0; q < (int)(MD_CPU_CONV_CH * sizeof(float)); q += 64) {
        if (write) __builtin_prefetch(c + q, 1, 3);
        else __builtin_prefetch(c + q, 0, 3);
    }
}

/* Vector i of the pre-activation at the step whose row is xt (taps k0 ..
 * K-1; k0 > 0 only for the first K-1 steps of a sequence) */
static inline AVX512 __attribute__((always_inline)) __m512 preact(const conv_params_t *p, int i, const float *xt,
                                                                  int64_t ldx, const int64_t K, int64_t k0)
{
    __m512 acc = p->bias[i];
#pragma GCC unroll 16
    for (int64_t k = k0; k < K; k++)
        acc = _mm512_fmadd_ps(p->w[k][i], _mm512_maskz_loadu_ps(p->m[i], xt - (K - 1 - k) * ldx + 16 * i), acc);
    return acc;
}

static inline AVX512 __attribute__((always_inline)) void fwd_row(const conv_params_t *p, float *yt, const float *xt,
                                                                 int64_t ldx, const int64_t K, int64_t k0)
{
#pragma GCC unroll 4
    for (int i = 0; i < CV; i++) {
        __m512 a = preact(p, i, xt, ldx, K, k0);
        _mm512_mask_storeu_ps(yt + 16 * i, p->m[i], _mm512_mul_ps(a, sigmoid_v(a)));
    }
}

/* K a constant where inlined with one, so that the taps unroll */
static inline AVX512 __attribute__((always_inline)) void fwd_rows(const conv_params_t *p, float *y, int64_t ldy,
                                                                  const float *x, int64_t ldx, int64_t len,
                                                                  const int64_t K)
{
    int64_t t = 0;
    for (; t < len && t < K - 1; t++) fwd_row(p, y + t * ldy, x + t * ldx, ldx, K, K - 1 - t);
    for (; t < len; t++) {
        if (t + PF < len) {
            prefetch_row(x + (t + PF) * ldx, 0);
            prefetch_row(y + (t + PF) * ldy, 1);
        }
        fwd_row(p, y + t * ldy, x + t * ldx, ldx, K, 0);
    }
}

AVX512 void md_cpu_conv1d_silu_fwd_item_avx512(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                               const float *bias, int64_t b, int64_t len, int64_t K, int64_t e0,
                                               int64_t nc)
{
    conv_params_t p;
    load_params(&p, w, bias, K, e0, nc);
    y += b * len * ldy + e0;
    x += b * len * ldx + e0;
    if (K == 4 && nc == MD_CPU_CONV_CH) {   /* the models' d_conv, a whole block */
        whole_block(&p);
        fwd_rows(&p, y, ldy, x, ldx, len, 4);
    } else if (K == 4) {
        fwd_rows(&p, y, ldy, x, ldx, len, 4);
    } else {
        fwd_rows(&p, y, ldy, x, ldx, len, K);
    }
}

/* One step of the backward: dp = dy silu'(pre-activation), summed into dbias
 * and, times the tap's input, into dw; dx[t] is first written by its own
 * step's tap (k = K-1) and then added to by the next steps'. */
static inline AVX512 __attribute__((always_inline)) void bwd_row(const conv_params_t *p, float *dxt, int64_t lddx,
                                                                 const float *dyt, const float *xt, int64_t ldx,
                                                                 const int64_t K, int64_t k0, __m512 dwa[][CV],
                                                                 __m512 *dba)
{
#pragma GCC unroll 4
    for (int i = 0; i < CV; i++) {
        __m512 a = preact(p, i, xt, ldx, K, k0), s = sigmoid_v(a), one = _mm512_set1_ps(1.0f);
        __m512 dp = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(p->m[i], dyt + 16 * i), s),
                                  _mm512_fmadd_ps(a, _mm512_sub_ps(one, s), one));
        dba[i] = _mm512_add_ps(dba[i], dp);
        dwa[K - 1][i] = _mm512_fmadd_ps(dp, _mm512_maskz_loadu_ps(p->m[i], xt + 16 * i), dwa[K - 1][i]);
        _mm512_mask_storeu_ps(dxt + 16 * i, p->m[i], _mm512_mul_ps(p->w[K - 1][i], dp));
#pragma GCC unroll 16
        for (int64_t k = K - 2; k >= k0; k--) {
            const float *xk = xt - (K - 1 - k) * ldx + 16 * i;
            float *dxk = dxt - (K - 1 - k) * lddx + 16 * i;
            dwa[k][i] = _mm512_fmadd_ps(dp, _mm512_maskz_loadu_ps(p->m[i], xk), dwa[k][i]);
            _mm512_mask_storeu_ps(dxk, p->m[i],
                                  _mm512_fmadd_ps(p->w[k][i], dp, _mm512_maskz_loadu_ps(p->m[i], dxk)));
        }
    }
}

static inline AVX512 __attribute__((always_inline)) void bwd_rows(const conv_params_t *p, float *dx, int64_t lddx,
                                                                  float *dw, float *dbias, const float *dy,
                                                                  int64_t lddy, const float *x, int64_t ldx,
                                                                  int64_t batch, int64_t len, int64_t e0,
                                                                  int64_t nc, const int64_t K)
{
    __m512 dwa[MAXK][CV], dba[CV];
    for (int i = 0; i < CV; i++) {
        dba[i] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) dwa[k][i] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < batch; b++) {
        float *dxb = dx + b * len * lddx;
        const float *dyb = dy + b * len * lddy, *xb = x + b * len * ldx;
        int64_t t = 0;
        for (; t < len && t < K - 1; t++)
            bwd_row(p, dxb + t * lddx, lddx, dyb + t * lddy, xb + t * ldx, ldx, K, K - 1 - t, dwa, dba);
        for (; t < len; t++) {
            if (t + PF < len) {
                prefetch_row(xb + (t + PF) * ldx, 0);
                prefetch_row(dyb + (t + PF) * lddy, 0);
                prefetch_row(dxb + (t + PF) * lddx, 1);
            }
            bwd_row(p, dxb + t * lddx, lddx, dyb + t * lddy, xb + t * ldx, ldx, K, 0, dwa, dba);
        }
    }
    float sw[MAXK][MD_CPU_CONV_CH] __attribute__((aligned(64))), sb[MD_CPU_CONV_CH] __attribute__((aligned(64)));
    for (int i = 0; i < CV; i++) {
        for (int64_t k = 0; k < K; k++) _mm512_store_ps(sw[k] + 16 * i, dwa[k][i]);
        _mm512_store_ps(sb + 16 * i, dba[i]);
    }
    for (int64_t c = 0; c < nc; c++) {
        for (int64_t k = 0; k < K; k++) dw[(e0 + c) * K + k] += sw[k][c];
        dbias[e0 + c] += sb[c];
    }
}

AVX512 void md_cpu_conv1d_silu_bwd_item_avx512(float *dx, int64_t lddx, float *dw, float *dbias, const float *dy,
                                               int64_t lddy, const float *x, int64_t ldx, const float *w,
                                               const float *bias, int64_t batch, int64_t len, int64_t K, int64_t e0,
                                               int64_t nc)
{
    conv_params_t p;
    load_params(&p, w, bias, K, e0, nc);
    dx += e0, dy += e0, x += e0;
    if (K == 4 && nc == MD_CPU_CONV_CH) {
        whole_block(&p);
        bwd_rows(&p, dx, lddx, dw, dbias, dy, lddy, x, ldx, batch, len, e0, nc, 4);
    } else if (K == 4) {
        bwd_rows(&p, dx, lddx, dw, dbias, dy, lddy, x, ldx, batch, len, e0, nc, 4);
    } else {
        bwd_rows(&p, dx, lddx, dw, dbias, dy, lddy, x, ldx, batch, len, e0, nc, K);
    }
}

#endif
