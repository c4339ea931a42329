/* Helpers shared by the AVX-512 (F + DQ) kernels of the CPU backend
 * (cpu_scan_avx512.c, cpu_conv_avx512.c, cpu_gemm_avx512.c); include only
 * inside their #if MD_CPU_HAVE_AVX512. */
#ifndef MD_CPU_AVX512_H
#define MD_CPU_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#define AVX512 __attribute__((target("avx512f,avx512dq")))

/* The sums of 16 vectors' lanes, v[k] (the 16 floats at v + 16 k) in
 * lane k. The shuffles leave the sum of input i in lane 4 (i mod 4) + i / 4,
 * so the inputs are taken in that (self-inverse) order. */
static inline AVX512 __m512 md_avx512_sum16x16(const float *v)
{
    __m512 x[16], y[8], z[4], w[2];
    for (int i = 0; i < 16; i++) x[i] = _mm512_loadu_ps(v + 16 * (4 * (i % 4) + i / 4));
    for (int i = 0; i < 8; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        w[i] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD));
}

/* The 16 x 16 block at src (rows lds floats apart) transposed into dst
 * (rows ldd apart): unpacks pair the rows, shuffles within 128-bit lanes
 * make columns of 4 rows, and two rounds of lane shuffles gather them. */
static inline AVX512 void md_avx512_transpose16x16(float *dst, int64_t ldd, const float *src, int64_t lds)
{
    __m512 r[16], t[16], v[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4 g + m], lane L: column 4 L + m of rows 4 g .. 4 g + 3 */
    for (int g = 0; g < 4; g++) {
        r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    /* v[m] (rows 0-7) and v[8 + m] (rows 8-15): lanes 0 and 2 of the two
     * groups' r, v[4 + m] and v[12 + m] lanes 1 and 3 */
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 4; m++) {
            v[8 * h + m] = _mm512_shuffle_f32x4(r[8 * h + m], r[8 * h + 4 + m], 0x88);
            v[8 * h + 4 + m] = _mm512_shuffle_f32x4(r[8 * h + m], r[8 * h + 4 + m], 0xDD);
        }
    for (int m = 0; m < 4; m++) {
        _mm512_storeu_ps(dst + m * ldd, _mm512_shuffle_f32x4(v[m], v[8 + m], 0x88));
        _mm512_storeu_ps(dst + (8 + m) * ldd, _mm512_shuffle_f32x4(v[m], v[8 + m], 0xDD));
        _mm512_storeu_ps(dst + (4 + m) * ldd, _mm512_shuffle_f32x4(v[4 + m], v[12 + m], 0x88));
        _mm512_storeu_ps(dst + (12 + m) * ldd, _mm512_shuffle_f32x4(v[4 + m], v[12 + m], 0xDD));
    }
}

/* c[0] x^(n-1) + ... + c[n-1], by Horner's rule */
static inline AVX512 __m512 horner(__m512 x, const float *c, int n)
{
    __m512 p = _mm512_set1_ps(c[0]);
    for (int i = 1; i < n; i++) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(c[i]));
    return p;
}

/* 2^x for x <= 0: x = k + f with k = floor(x), 0 <= f < 1, so that
 * VSCALEFPS, which scales by 2^floor of its second operand, takes x
 * itself (no k to subtract), and 2^f by a degree-5 polynomial with
 * p(0) = 1. Its coefficients are a minimax fit of the relative error,
 * rounded to float and then moved by an ulp or two so that the error of
 * the f32 evaluation, over f in [0, 1), has a mean of 2e-10 (max 1.6e-7;
 * the degree-6 polynomial on [-1/2, 1/2] it replaces: mean -2e-9, max
 * 1.0e-7, both dominated by f32 rounding). The mean matters more than the
 * max: the states sum such errors coherently over their memory, and an
 * earlier degree-5 set, whose rounded coefficients erred on one side (mean
 * +5e-8), put dB and dC 10x further from the f64 scan. */
static inline AVX512 __m512 exp2_neg(__m512 x)
{
    static const float c[] = {1.86713168e-3f, 9.01702698e-3f, 5.57999201e-2f, 2.40164459e-1f, 6.93151295e-1f,
                              1.0f};
    __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(horner(f, c, 6), x);
}

/* e^x for x <= 0 as 2^(x log2 e) by exp2_neg (x clamped at -87 as
 * md_expf_neg does, so -inf gives e^-87 and not 2^(-inf)'s NaN): 8
 * vector operations where md_expf_neg's exact reduction (ln 2 in two
 * parts) and degree-6 polynomial took 12. Rounding x log2 e errs by
 * |x| 2^-24 in the exponent, a relative error of |x| 6e-8 in e^x; in
 * softplus and sigmoid, where e^x is added to 1 or 2, at most 2.2e-8 of
 * the sum (x e^x peaks at x = -1). */
static inline AVX512 __m512 exp_neg(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    return exp2_neg(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)));
}

/* e^x in double precision: x = k ln 2 + r with k = round(x log2 e) and
 * |r| <= ln 2 / 2 (ln 2 in two parts, each product taken by an FMA), e^r
 * by its Taylor polynomial of degree 13 (truncation below 5e-18) and the
 * scaling by 2^k by VSCALEFPD. x is clamped to +-800 first, so that
 * +-inf give inf and 0 as libm's exp does, not NaN; NaN stays NaN.
 * Within a few ulps of double. */
static inline AVX512 __m512d exp_pd(__m512d x)
{
    static const double c[] = {1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880,
                               1.0 / 40320,      1.0 / 5040,      1.0 / 720,      1.0 / 120,     1.0 / 24,
                               1.0 / 6,          0.5,             1.0,            1.0};   /* 1 / 13!, ..., 1 / 0! */
    /* max and min return their second operand where one is NaN */
    x = _mm512_min_pd(_mm512_set1_pd(800.0), _mm512_max_pd(_mm512_set1_pd(-800.0), x));
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.44269504088896338700)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180559945286227e-01), x);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(2.31904681384629955842e-17), r);
    __m512d p = _mm512_set1_pd(c[0]);
    for (int i = 1; i < 14; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[i]));
    return _mm512_scalef_pd(p, k);
}

/* 1 / d for d in [1, 3]: VRCP14PS (relative error below 2^-14) and one
 * Newton step, within an ulp or two of the quotient. A VDIVPS holds its
 * port for ~16 cycles per vector, and the per-channel work of a step had
 * two (forward) or three (backward) of them per 16 channels (by that
 * count a fifth of the forward's time; measured, 3%: the rest was hidden
 * behind the recurrence). */
static inline AVX512 __m512 recip_1_3(__m512 d)
{
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

static inline AVX512 __m512 neg_abs(__m512 x) { return _mm512_or_ps(x, _mm512_set1_ps(-0.0f)); }

/* md_softplusf and md_sigmoidf (cpu_math.h), the same formulas, vector by
 * vector, with recip_1_3 for their divisions */
static inline AVX512 __m512 softplus_v(__m512 x)
{
    __m512 e = exp_neg(neg_abs(x));
    __m512 s = _mm512_mul_ps(e, recip_1_3(_mm512_add_ps(e, _mm512_set1_ps(2.0f)))), s2 = _mm512_mul_ps(s, s);
    static const float c[] = {0.0769230769f, 0.0909090909f, 0.111111111f, 0.142857143f, 0.2f, 0.333333333f, 1.0f};
    __m512 l = _mm512_mul_ps(_mm512_add_ps(s, s), horner(s2, c, 7));
    return _mm512_add_ps(_mm512_max_ps(x, _mm512_setzero_ps()), l);
}

static inline AVX512 __m512 sigmoid_v(__m512 x)
{
    __m512 e = exp_neg(neg_abs(x));
    __m512 r = recip_1_3(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), e, r);
}

#endif
