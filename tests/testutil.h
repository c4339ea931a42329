/* A minimal test harness: CHECK records a failure and carries on, so one run
 * shows every broken assertion; md_test_done() prints the tally and returns
 * the exit status. Tests that need ../shared/data call md_test_shared(),
 * which exits 77 (ctest's "skipped") when it is absent; GPU tests call
 * md_test_need_gpu(), which does the same without a CUDA GPU. */
#ifndef MD_TESTS_TESTUTIL_H
#define MD_TESTS_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/device.h"
#include "nn/model.h"
#include "nn/params.h"
#include "util/xalloc.h"

static int md_test_failures, md_test_checks;

#define CHECK(cond, ...) do { \
    md_test_checks++; \
    if (!(cond)) { \
        md_test_failures++; \
        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr); \
    } \
} while (0)

/* Closeness for floats: |a-b| <= atol + rtol*|b|. */
#define CHECK_CLOSE(a, b, rtol, atol, ...) do { \
    double a_ = (a), b_ = (b); \
    int close_ = fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_); \
    CHECK(close_, __VA_ARGS__); \
    if (!close_) fprintf(stderr, "     %s = %.9g, %s = %.9g\n", #a, a_, #b, b_); \
} while (0)

/* A=0 C=1 G=2 T=3 in either case; -1 for anything else. */
static inline int md_test_base_code(char c)
{
    switch (c | 0x20) {
    case 'a': return 0;
    case 'c': return 1;
    case 'g': return 2;
    case 't': return 3;
    }
    return -1;
}

static inline int md_test_done(void)
{
    printf("%d passed, %d failed\n", md_test_checks - md_test_failures, md_test_failures);
    return md_test_failures ? 1 : 0;
}

/* The ../shared/data folder, or exit 77 when it is not there. */
static inline const char *md_test_shared(void)
{
    static char path[4096];
    const char *s = getenv("MD_SHARED");
    if (!s) s = "../shared";
    snprintf(path, sizeof path, "%s/data", s);
    if (access(path, R_OK) != 0) {
        printf("skipped: %s is absent\n", path);
        exit(77);
    }
    return path;
}

/* Exits 77 (skipped) in a build without CUDA or on a machine without a GPU. */
static inline void md_test_need_gpu(void)
{
    if (!md_cuda_compiled() || md_cuda_device_count() == 0) {
        printf("no CUDA GPU: skipped\n");
        exit(77);
    }
}

/* A copy on the host of an f32 model's whole gradient buffer (registry
 * layout), from any backend; free() it. */
static inline float *md_test_grads_to_host(md_model_t *m)
{
    md_tensor_t g = md_model_grad_buffer(m);
    int64_t n = md_model_params(m)->numel;
    float *h = md_malloc((size_t)n * sizeof(float));
    const md_backend_t *be = md_model_backend(m);
    be->sync(be);
    be->copy(be, h, g.data, (size_t)n * sizeof(float), MD_COPY_D2H);
    return h;
}

/* A fresh temporary folder for this test's files (left for inspection on failure). */
static inline const char *md_test_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/mdtest.XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

/* bf16 on the host, for the GPU tests: round to nearest even (NaN stays a
 * quiet NaN), and back (exact). */
static inline uint16_t md_test_f2bf(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float md_test_bf2f(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

#endif
