/* Elementwise math for the CPU kernels, written so that GCC vectorises the
 * f32 versions inside `#pragma omp simd` loops (libm's expf/log1pf are
 * scalar calls without -ffast-math, which would make the scan ~10x slower).
 * The f64 versions call libm: they serve the gradient checks, where
 * accuracy matters and speed does not.
 *
 * Accuracy of the f32 versions: exp ~2 ulp; softplus and sigmoid ~3e-7
 * relative (checked against the f64 versions by test_ops_cpu through every
 * op that uses them).
 *
 * The translation units that include this use
 * `#pragma GCC optimize("no-trapping-math")`: without it GCC refuses to
 * if-convert the float comparisons in the clamps, and nothing vectorises.
 */
#ifndef MD_BACKEND_CPU_MATH_H
#define MD_BACKEND_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp for x <= 0 (the scan's dt A, and e^-|x| in softplus and sigmoid):
 * x = k ln2 + r, |r| <= ln2/2, k rounded by the 1.5*2^23 trick; below -87
 * the result is ~1e-38, not 0. */
static inline float md_expf_neg(float x)
{
    x = x > -87.0f ? x : -87.0f;
    float kr = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - kr * 0.693145751953125f;
    r = r - kr * 1.428606765330187045e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
              r * (0.00833333377f + r * 0.00138888892f)))));
    int32_t bits = ((int32_t)kr + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

/* log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, so no
 * cancellation for small e; the series to s^13 is good to ~1e-8. */
static inline float md_log1pf_01(float e)
{
    float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f + s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * (0.111111111f +
              s2 * (0.0909090909f + s2 * 0.0769230769f)))));
    return 2.0f * s * p;
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): one clamp, and
 * above 20 it rounds to x in float, as mamba_ssm's threshold has it. */
static inline float md_softplusf(float x)
{
    float e = md_expf_neg(x < 0.0f ? x : -x);
    return (x > 0.0f ? x : 0.0f) + md_log1pf_01(e);
}

/* 1 / (1 + e^-x) through e^-|x| <= 1: one clamp, and no overflow */
static inline float md_sigmoidf(float x)
{
    float e = md_expf_neg(x < 0.0f ? x : -x);
    float r = 1.0f / (1.0f + e);
    return x < 0.0f ? e * r : r;
}

static inline double md_exp_d(double x) { return exp(x); }
static inline double md_softplus_d(double x) { return x > 20.0 ? x : log1p(exp(x)); }
static inline double md_sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

#endif
