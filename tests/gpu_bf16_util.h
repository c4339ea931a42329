/* What the bf16 storage tests (test_gpu_bf16.c: the Mamba block's ops;
 * test_gpu_bf16_blocks.c: the Hyena and Transformer++ blocks' ops) share
 * beside gpu_testutil.h: a bf16 buffer on the GPU with the CPU's fp32 copy,
 * its views, NaN poisoning and the relative error of its bf16 values.
 *
 * Tolerances (||gpu - cpu|| / ||cpu|| over a buffer):
 *   - an f32 output computed from bf16 inputs: 1e-5, as the fp32 ops
 *     (a product of two bf16 values is exact in fp32, so only the order of
 *     the fp32 sums differs);
 *   - a bf16 output: ONE_ROUNDING = 2^-8 + 1e-5: rounding to bf16 (an
 *     8-bit significand, nearest even: unit roundoff 2^-8) moves each value
 *     by at most 2^-8 of itself, so the error's norm is at most 2^-8 of the
 *     result's (uniform rounding errors average ~2^-8/sqrt(3) over many
 *     values: ~2e-3 is what large outputs show);
 *   - convert: bit-exact against the host's rounding.
 */
#ifndef MD_TESTS_GPU_BF16_UTIL_H
#define MD_TESTS_GPU_BF16_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "gpu_testutil.h"

static const double ONE_ROUNDING = 1.0 / 256 + 1e-5;

/* A bf16 buffer on the GPU; h is the CPU's fp32 copy: the rounded values
 * for an input, the fp32 reference for an output. */
typedef struct {
    float *h;
    uint16_t *d;
    int64_t rows, cols, ld;
} b16_t;

static inline void upload16(b16_t *b)
{
    size_t n = (size_t)(b->rows * b->ld);
    uint16_t *t = md_malloc((n ? n : 1) * 2);
    for (size_t i = 0; i < n; i++) t[i] = md_test_f2bf(b->h[i]);
    gpu->copy(gpu, b->d, t, n * 2, MD_COPY_H2D);
    free(t);
}

static inline b16_t mk16(int64_t rows, int64_t cols, int64_t ld, double lo, double hi)
{
    b16_t b = {NULL, NULL, rows, cols, ld};
    size_t n = (size_t)(rows * ld);
    b.h = md_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) b.h[i] = md_test_bf2f(md_test_f2bf((float)(lo + (hi - lo) * md_rng_uniform(&rng))));
    b.d = gpu->alloc(gpu, (n ? n : 1) * 2);
    upload16(&b);
    return b;
}

static inline void drop16(b16_t *b)
{
    free(b->h);
    gpu->free(gpu, b->d);
}

/* columns [c0, c0 + cols) of b on the CPU (f32) or the GPU (bf16) */
static inline md_tensor_t cols16(const b16_t *b, int dev, int64_t c0, int64_t cols)
{
    md_tensor_t t = dev ? md_tensor_2d(b->d + c0, MD_DTYPE_BF16, MD_DEVICE_CUDA, b->rows, cols)
                        : md_tensor_2d(b->h + c0, MD_DTYPE_F32, MD_DEVICE_CPU, b->rows, cols);
    t.ld = b->ld;
    return t;
}

static inline md_tensor_t h16(const b16_t *b) { return cols16(b, 0, 0, b->cols); }
static inline md_tensor_t d16(const b16_t *b) { return cols16(b, 1, 0, b->cols); }

/* all-ones (a NaN) over columns [c0, c0 + n) of the GPU copy: an op's
 * output view; the other columns must come back as they were */
static inline void poison16_cols(b16_t *b, int64_t c0, int64_t n_cols)
{
    size_t n = (size_t)(b->rows * b->ld);
    uint16_t *t = md_malloc((n ? n : 1) * 2);
    gpu->copy(gpu, t, b->d, n * 2, MD_COPY_D2H);
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t c = c0; c < c0 + n_cols; c++) t[r * b->ld + c] = 0xffff;
    gpu->copy(gpu, b->d, t, n * 2, MD_COPY_H2D);
    free(t);
}

static inline void poison16(b16_t *b) { poison16_cols(b, 0, b->cols); }

/* h rounded to bf16 in place and uploaded: an op's fp32 reference output
 * made the next op's input on both sides */
static inline void round16(b16_t *b)
{
    for (int64_t i = 0; i < b->rows * b->ld; i++) b->h[i] = md_test_bf2f(md_test_f2bf(b->h[i]));
    upload16(b);
}

static inline uint16_t *download16(const b16_t *b)
{
    size_t n = (size_t)(b->rows * b->ld);
    uint16_t *t = md_malloc((n ? n : 1) * 2);
    gpu->copy(gpu, t, b->d, n * 2, MD_COPY_D2H);
    return t;
}

/* ||gpu - cpu|| / ||cpu|| over columns [c0, c0 + n_cols) of every row
 * (padding included where they reach it); +inf on any NaN */
static inline double err16_cols(const b16_t *b, int64_t c0, int64_t n_cols)
{
    uint16_t *t = download16(b);
    double num = 0, den = 0;
    int bad = 0;
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t c = c0; c < c0 + n_cols; c++) {
            size_t i = (size_t)(r * b->ld + c);
            double g = md_test_bf2f(t[i]), e = g - b->h[i];
            if (isnan(g) || isnan(b->h[i])) bad = 1;
            num += e * e;
            den += (double)b->h[i] * b->h[i];
        }
    free(t);
    if (bad) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* the same over the whole buffer */
static inline double err16(const b16_t *b) { return err16_cols(b, 0, b->ld); }

/* gpu_test_start, then the CUDA backend's bf16 table (NULL, with a failed
 * check, if there is none), its activations checked to be bf16 where the
 * fp32 table's and the CPU's are fp32 */
static inline const md_backend_t *gpu_bf16_test_start(void)
{
    gpu_test_start();
    const md_backend_t *bf = md_backend_cuda_ex(0, MD_PRECISION_BF16);
    CHECK(bf != NULL, "bf16 backend");
    if (!bf) return NULL;
    CHECK(bf->act_dtype == MD_DTYPE_BF16 && gpu->act_dtype == MD_DTYPE_F32 && cpu->act_dtype == MD_DTYPE_F32,
          "activation dtypes: bf16 table %s, fp32 table %s, cpu %s", md_dtype_name(bf->act_dtype),
          md_dtype_name(gpu->act_dtype), md_dtype_name(cpu->act_dtype));
    return bf;
}

#endif
