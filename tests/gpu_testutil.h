/* What the GPU op tests (test_gpu_ops.c, test_gpu_hyena.c) share: a
 * float buffer with a CPU copy and a GPU copy, views of it for each
 * backend, NaN poisoning of outputs, the relative error over a whole buffer
 * (row padding included), and the table of worst errors per op.
 * Each test sets `cpu`, `gpu` and seeds `rng` before using them. */
#ifndef MD_TESTS_GPU_TESTUTIL_H
#define MD_TESTS_GPU_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "testutil.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* fp32 ops against the CPU: ||gpu - cpu|| / ||cpu|| over a buffer */
static const double TOL = 1e-5;

static const md_backend_t *cpu, *gpu;
static md_rng_t rng;

typedef struct {
    float *h;   /* the CPU's copy */
    float *d;   /* the GPU's */
    int64_t rows, cols, ld;
} buf_t;

static inline buf_t mk(int64_t rows, int64_t cols, int64_t ld, double lo, double hi)
{
    buf_t b = {NULL, NULL, rows, cols, ld};
    size_t n = (size_t)(rows * ld);
    b.h = md_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) b.h[i] = (float)(lo + (hi - lo) * md_rng_uniform(&rng));
    b.d = gpu->alloc(gpu, (n ? n : 1) * sizeof(float));
    gpu->copy(gpu, b.d, b.h, n * sizeof(float), MD_COPY_H2D);
    return b;
}

static inline void drop(buf_t *b)
{
    free(b->h);
    gpu->free(gpu, b->d);
}

static inline md_tensor_t th(const buf_t *b)
{
    md_tensor_t t = md_tensor_2d(b->h, MD_DTYPE_F32, MD_DEVICE_CPU, b->rows, b->cols);
    t.ld = b->ld;
    return t;
}

static inline md_tensor_t td(const buf_t *b)
{
    md_tensor_t t = md_tensor_2d(b->d, MD_DTYPE_F32, MD_DEVICE_CUDA, b->rows, b->cols);
    t.ld = b->ld;
    return t;
}

/* NaN over the view (not the padding) of the GPU copy */
static inline void poison(buf_t *b)
{
    size_t n = (size_t)(b->rows * b->ld);
    float *t = md_malloc((n ? n : 1) * sizeof(float));
    gpu->copy(gpu, t, b->d, n * sizeof(float), MD_COPY_D2H);
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t c = 0; c < b->cols; c++) t[r * b->ld + c] = NAN;
    gpu->copy(gpu, b->d, t, n * sizeof(float), MD_COPY_H2D);
    free(t);
}

/* all-ones bytes (NaN as floats) over n bytes of GPU memory */
static inline void poison_bytes(void *d, size_t n)
{
    void *t = md_malloc(n ? n : 1);
    memset(t, 0xff, n);
    gpu->copy(gpu, d, t, n, MD_COPY_H2D);
    free(t);
}

/* ||gpu - cpu|| / max(||cpu||, floor) over the whole buffer; +inf on any
 * NaN. The floor is for results that cancel (a derivative near its zero):
 * their error is measured against the size of the terms instead. */
static inline double relerr_floor(const buf_t *b, double floor)
{
    size_t n = (size_t)(b->rows * b->ld);
    float *t = md_malloc((n ? n : 1) * sizeof(float));
    gpu->copy(gpu, t, b->d, n * sizeof(float), MD_COPY_D2H);
    double num = 0, den = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(t[i]) || isnan(b->h[i])) bad = 1;
        double e = (double)t[i] - b->h[i];
        num += e * e;
        den += (double)b->h[i] * b->h[i];
    }
    free(t);
    if (bad) return INFINITY;
    den = sqrt(den) > floor ? sqrt(den) : floor;
    return den > 0 ? sqrt(num) / den : sqrt(num);
}

/* ||gpu - cpu|| / ||cpu|| over the whole buffer; +inf on any NaN */
static inline double relerr(const buf_t *b) { return relerr_floor(b, 0); }

/* ||x|| over the view of the CPU copy */
static inline double view_norm(const buf_t *b)
{
    double s = 0;
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t c = 0; c < b->cols; c++) s += (double)b->h[r * b->ld + c] * b->h[r * b->ld + c];
    return sqrt(s);
}

/* sqrt(mean((gpu - cpu)^2)) over the view; +inf on any NaN */
static inline double rmserr(const buf_t *b)
{
    size_t n = (size_t)(b->rows * b->ld);
    float *t = md_malloc((n ? n : 1) * sizeof(float));
    gpu->copy(gpu, t, b->d, n * sizeof(float), MD_COPY_D2H);
    double num = 0;
    int bad = 0;
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t c = 0; c < b->cols; c++) {
            double g = t[r * b->ld + c], e = g - b->h[r * b->ld + c];
            if (isnan(g)) bad = 1;
            num += e * e;
        }
    free(t);
    return bad ? INFINITY : sqrt(num / (double)(b->rows * b->cols > 0 ? b->rows * b->cols : 1));
}

/* worst error per op, for the table */
enum { MAX_OPS = 32 };
static const char *op_names[MAX_OPS];
static double op_worst[MAX_OPS];
static int op_checks[MAX_OPS], n_ops;

static inline void record(const char *op, const char *what, double err, double tol, const char *shape)
{
    int i;
    for (i = 0; i < n_ops && strcmp(op_names[i], op); i++) {}
    if (i == n_ops && n_ops < MAX_OPS) op_names[n_ops++] = op;
    if (i < MAX_OPS) {
        if (err > op_worst[i]) op_worst[i] = err;
        op_checks[i]++;
    }
    CHECK(err <= tol, "%s %s %s: relative error %.3g > %.1g", op, what, shape, err, tol);
}

/* a column slice [c0, c0 + cols) of b, as the model's q/k/v of one qkv matrix */
static inline md_tensor_t slice(const buf_t *b, int dev, int64_t c0, int64_t cols)
{
    float *base = dev ? b->d : b->h;
    md_tensor_t t = md_tensor_2d(base + c0, MD_DTYPE_F32, dev ? MD_DEVICE_CUDA : MD_DEVICE_CPU, b->rows, cols);
    t.ld = b->ld;
    return t;
}

/* the GPU copy of b equals its previous download bit for bit */
static inline int same_bits(const buf_t *b, const float *prev)
{
    size_t n = (size_t)(b->rows * b->ld);
    float *t = md_malloc((n ? n : 1) * sizeof(float));
    gpu->copy(gpu, t, b->d, n * sizeof(float), MD_COPY_D2H);
    int same = !memcmp(t, prev, n * sizeof(float));
    free(t);
    return same;
}

/* Sets cpu and gpu (fp32) and seeds rng from MD_TEST_SEED or the clock;
 * exits 77 (skipped) without CUDA or a GPU, 1 when the backend fails. */
static inline void gpu_test_start(void)
{
    md_test_need_gpu();
    cpu = md_backend_cpu();
    if (!(gpu = md_backend_cuda(0))) exit(1);
    const char *seed = getenv("MD_TEST_SEED");
    uint64_t sd = seed ? strtoull(seed, NULL, 10) : 0x5eedULL ^ (uint64_t)time(NULL);
    printf("seed %llu (MD_TEST_SEED to repeat)\n", (unsigned long long)sd);
    md_rng_seed(&rng, sd);
}

static inline void print_worst(void)
{
    printf("%-18s %7s %12s\n", "op", "checks", "worst err");
    for (int i = 0; i < n_ops; i++) printf("%-18s %7d %12.3g\n", op_names[i], op_checks[i], op_worst[i]);
}

#endif
