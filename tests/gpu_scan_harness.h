/* The harness of test_gpu_scan.c: host-side bf16 rounding, device
 * matrices with padded rows (NaN in the padding of inputs, checked
 * untouched in outputs), one random problem rounded to its dtype, its f64
 * reference from the CPU op, and the GPU side of it (buffers, the scan's
 * arguments, poisoned outputs, a forward and backward run, the results
 * downloaded and compared bit for bit).
 *
 * Included once, by test_gpu_scan.c, after its CUDA check: everything here
 * is static to that test. */
#ifndef MD_TESTS_GPU_SCAN_HARNESS_H
#define MD_TESTS_GPU_SCAN_HARNESS_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "scan_api.h"
#include "testutil.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

#define CU(call)                                                                                       \
    do {                                                                                               \
        cudaError_t e_ = (call);                                                                       \
        if (e_ != cudaSuccess) {                                                                       \
            md_error("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));              \
            exit(2);                                                                                   \
        }                                                                                              \
    } while (0)

/* ---- host-side dtypes ---- */

static uint16_t f2bf(float f) { return md_test_f2bf(f); }
static float bf2f(uint16_t h) { return md_test_bf2f(h); }

static double round_to(double v, int bf16) { return bf16 ? bf2f(f2bf((float)v)) : (double)(float)v; }

/* ---- device matrices: rows x cols, row stride ld, f32 or bf16 ---- */

typedef struct {
    void *p;
    int64_t rows, cols, ld;
    int bf16;
} dmat_t;

static size_t dmat_bytes(const dmat_t *m) { return (size_t)(m->rows * m->ld) * (m->bf16 ? 2 : 4); }

static dmat_t dmat_new(int64_t rows, int64_t cols, int64_t pad, int bf16)
{
    dmat_t m = {NULL, rows, cols, cols + pad, bf16};
    CU(cudaMalloc(&m.p, dmat_bytes(&m) ? dmat_bytes(&m) : 4));
    return m;
}

static void dmat_free(dmat_t *m)
{
    cudaFree(m->p);
    m->p = NULL;
}

/* Uploads src (rows x cols, contiguous); the padding gets NaN. */
static void dmat_upload(dmat_t *m, const double *src)
{
    size_t n = (size_t)(m->rows * m->ld), es = m->bf16 ? 2 : 4;
    unsigned char *h = md_malloc(n * es);
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->ld; c++) {
            float v = c < m->cols ? (float)src[r * m->cols + c] : NAN;
            size_t i = (size_t)(r * m->ld + c);
            if (m->bf16) {
                uint16_t b = f2bf(v);
                memcpy(h + 2 * i, &b, 2);
            } else {
                memcpy(h + 4 * i, &v, 4);
            }
        }
    CU(cudaMemcpy(m->p, h, n * es, cudaMemcpyHostToDevice));
    free(h);
}

static void dmat_poison(dmat_t *m) { CU(cudaMemset(m->p, 0xff, dmat_bytes(m))); }

/* Downloads into out (rows x cols, contiguous doubles); *pad_ok = padding
 * still all-ones bytes. */
static void dmat_download(const dmat_t *m, double *out, int *pad_ok)
{
    size_t n = (size_t)(m->rows * m->ld), es = m->bf16 ? 2 : 4;
    unsigned char *h = md_malloc(n * es);
    CU(cudaMemcpy(h, m->p, n * es, cudaMemcpyDeviceToHost));
    int ok = 1;
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->ld; c++) {
            size_t i = (size_t)(r * m->ld + c);
            if (c >= m->cols) {
                for (size_t k = 0; k < es; k++) ok &= h[es * i + k] == 0xff;
                continue;
            }
            if (m->bf16) {
                uint16_t b;
                memcpy(&b, h + 2 * i, 2);
                out[r * m->cols + c] = bf2f(b);
            } else {
                float v;
                memcpy(&v, h + 4 * i, 4);
                out[r * m->cols + c] = v;
            }
        }
    if (pad_ok) *pad_ok = ok;
    free(h);
}

static double relerr(const double *x, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

/* f32 device vector <-> doubles */
static float *dvec_new(int64_t n)
{
    float *p;
    CU(cudaMalloc((void **)&p, (size_t)(n > 0 ? n : 1) * sizeof(float)));
    return p;
}
static void dvec_upload(float *d, const double *src, int64_t n)
{
    float *h = md_malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) h[i] = (float)src[i];
    CU(cudaMemcpy(d, h, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
}
static void dvec_download(const float *d, double *out, int64_t n)
{
    float *h = md_malloc((size_t)n * sizeof(float));
    CU(cudaMemcpy(h, d, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < n; i++) out[i] = h[i];
    free(h);
}

/* ---- one problem: host inputs, rounded to the dtype ---- */

typedef struct {
    int64_t B, L, E, N;
    int bf16;
    double *u, *delta, *z, *Bm, *Cm, *dy, *A_log, *D, *dt_bias, *dA0, *dD0, *db0;
} problem_t;

static double *rand_vec(md_rng_t *r, int64_t n, double lo, double hi, int bf16)
{
    double *v = md_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) v[i] = round_to(lo + (hi - lo) * md_rng_uniform(r), bf16);
    return v;
}

static void problem_init(problem_t *p, int64_t B, int64_t L, int64_t E, int64_t N, int bf16, double dlo, double dhi,
                         uint64_t seed)
{
    md_rng_t r;
    md_rng_seed(&r, seed);
    const int64_t M = B * L;
    p->B = B, p->L = L, p->E = E, p->N = N, p->bf16 = bf16;
    p->u = rand_vec(&r, M * E, -1, 1, bf16);
    p->delta = rand_vec(&r, M * E, dlo, dhi, bf16);
    p->z = rand_vec(&r, M * E, -2, 2, bf16);
    p->Bm = rand_vec(&r, M * N, -1, 1, bf16);
    p->Cm = rand_vec(&r, M * N, -1, 1, bf16);
    p->dy = rand_vec(&r, M * E, -1, 1, bf16);
    /* A = -(n+1) (S4D-real) jittered; dt = softplus(delta + dt_bias) mostly 0.005..0.3 */
    p->A_log = md_malloc((size_t)(E * N) * sizeof(double));
    for (int64_t e = 0; e < E; e++)
        for (int64_t n = 0; n < N; n++)
            p->A_log[e * N + n] = (float)(log((double)(n % 16 + 1)) + 0.2 * (md_rng_uniform(&r) - 0.5));
    p->D = rand_vec(&r, E, 0.5, 1.5, 0);
    p->dt_bias = rand_vec(&r, E, -4, -2, 0);
    p->dA0 = rand_vec(&r, E * N, -1, 1, 0);
    p->dD0 = rand_vec(&r, E, -1, 1, 0);
    p->db0 = rand_vec(&r, E, -1, 1, 0);
}

static void problem_free(problem_t *p)
{
    double *v[] = {p->u, p->delta, p->z, p->Bm, p->Cm, p->dy, p->A_log, p->D, p->dt_bias, p->dA0, p->dD0, p->db0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) free(v[i]);
}

/* The CPU reference in f64. */
typedef struct {
    double *y, *du, *ddelta, *dz, *dB, *dC, *dA, *dD, *db;
} grads_t;

static void grads_alloc(grads_t *g, int64_t M, int64_t E, int64_t N)
{
    g->y = md_malloc((size_t)(M * E) * 8), g->du = md_malloc((size_t)(M * E) * 8);
    g->ddelta = md_malloc((size_t)(M * E) * 8), g->dz = md_malloc((size_t)(M * E) * 8);
    g->dB = md_malloc((size_t)(M * N) * 8), g->dC = md_malloc((size_t)(M * N) * 8);
    g->dA = md_malloc((size_t)(E * N) * 8), g->dD = md_malloc((size_t)E * 8), g->db = md_malloc((size_t)E * 8);
}

static void grads_free(grads_t *g)
{
    free(g->y), free(g->du), free(g->ddelta), free(g->dz), free(g->dB), free(g->dC), free(g->dA), free(g->dD), free(g->db);
}

static void reference(const problem_t *p, grads_t *g)
{
    const md_backend_t *cpu = md_backend_cpu();
    const int64_t M = p->B * p->L, E = p->E, N = p->N;
    const md_dtype_t F = MD_DTYPE_F64;
    const md_device_kind_t H = MD_DEVICE_CPU;
    md_tensor_t u = md_tensor_2d(p->u, F, H, M, E), delta = md_tensor_2d(p->delta, F, H, M, E);
    md_tensor_t z = md_tensor_2d(p->z, F, H, M, E), Bm = md_tensor_2d(p->Bm, F, H, M, N);
    md_tensor_t Cm = md_tensor_2d(p->Cm, F, H, M, N), dy = md_tensor_2d(p->dy, F, H, M, E);
    md_tensor_t A_log = md_tensor_2d(p->A_log, F, H, E, N), D = md_tensor_1d(p->D, F, H, E);
    md_tensor_t dtb = md_tensor_1d(p->dt_bias, F, H, E);
    md_tensor_t y = md_tensor_2d(g->y, F, H, M, E), du = md_tensor_2d(g->du, F, H, M, E);
    md_tensor_t ddelta = md_tensor_2d(g->ddelta, F, H, M, E), dz = md_tensor_2d(g->dz, F, H, M, E);
    md_tensor_t dB = md_tensor_2d(g->dB, F, H, M, N), dC = md_tensor_2d(g->dC, F, H, M, N);
    md_tensor_t dA = md_tensor_2d(g->dA, F, H, E, N), dD = md_tensor_1d(g->dD, F, H, E);
    md_tensor_t db = md_tensor_1d(g->db, F, H, E);
    memcpy(g->dA, p->dA0, (size_t)(E * N) * 8);
    memcpy(g->dD, p->dD0, (size_t)E * 8);
    memcpy(g->db, p->db0, (size_t)E * 8);
    cpu->scan_fwd(cpu, &y, &u, &delta, NULL, NULL, &dtb, &A_log, &Bm, &Cm, &D, &z, p->B, NULL, NULL);
    void *ws = md_malloc(cpu->scan_bwd_workspace(cpu, F, p->B, p->L, E, N) + 64);
    cpu->scan_bwd(cpu, &du, &ddelta, &dA, &dB, &dC, &dD, &dz, &db, NULL, &dy, &u, &delta, NULL, NULL, &dtb, &A_log, &Bm, &Cm,
                  &D, &z,
                  p->B, NULL, NULL, ws);
    free(ws);
}

/* ---- the GPU side of one problem ---- */

typedef struct {
    dmat_t u, delta, z, Bm, Cm, dy, y, du, ddelta, dz, dB, dC;
    float *A_log, *D, *dt_bias, *dA, *dD, *db, *states, *h0, *hT, *dhT, *dh0;
    void *ws;
    size_t ws_bytes;
    md_scan_args_t a;
} gpu_t;

static void gpu_setup(gpu_t *G, const problem_t *p, int64_t pad, int with_state)
{
    const int64_t M = p->B * p->L, E = p->E, N = p->N;
    const int bf = p->bf16;
    memset(G, 0, sizeof *G);
    G->u = dmat_new(M, E, pad, bf), G->delta = dmat_new(M, E, pad + 1, bf), G->z = dmat_new(M, E, pad ? pad + 2 : 0, bf);
    G->Bm = dmat_new(M, N, pad ? pad + 3 : 0, bf), G->Cm = dmat_new(M, N, pad, bf), G->dy = dmat_new(M, E, pad, bf);
    G->y = dmat_new(M, E, pad ? pad + 4 : 0, bf), G->du = dmat_new(M, E, pad ? pad + 2 : 0, bf), G->ddelta = dmat_new(M, E, pad, bf);
    G->dz = dmat_new(M, E, pad, bf), G->dB = dmat_new(M, N, pad, bf), G->dC = dmat_new(M, N, pad ? pad + 1 : 0, bf);
    dmat_upload(&G->u, p->u), dmat_upload(&G->delta, p->delta), dmat_upload(&G->z, p->z);
    dmat_upload(&G->Bm, p->Bm), dmat_upload(&G->Cm, p->Cm), dmat_upload(&G->dy, p->dy);
    G->A_log = dvec_new(E * N), G->D = dvec_new(E), G->dt_bias = dvec_new(E);
    G->dA = dvec_new(E * N), G->dD = dvec_new(E), G->db = dvec_new(E);
    dvec_upload(G->A_log, p->A_log, E * N), dvec_upload(G->D, p->D, E), dvec_upload(G->dt_bias, p->dt_bias, E);
    size_t sb = md_scan_states_bytes(p->B, p->L, E, N);
    if (sb) CU(cudaMalloc((void **)&G->states, sb));
    if (with_state) {
        G->h0 = dvec_new(p->B * E * N), G->hT = dvec_new(p->B * E * N);
        G->dhT = dvec_new(p->B * E * N), G->dh0 = dvec_new(p->B * E * N);
        CU(cudaMemset(G->hT, 0xff, (size_t)(p->B * E * N) * sizeof(float)));   /* unwritten shows as NaN */
        CU(cudaMemset(G->dh0, 0xff, (size_t)(p->B * E * N) * sizeof(float)));
    }
    G->ws_bytes = md_scan_bwd_workspace(p->B, p->L, E, N);
    if (G->ws_bytes) CU(cudaMalloc(&G->ws, G->ws_bytes));
    md_scan_args_t *a = &G->a;
    memset(a, 0, sizeof *a);
    a->dtype = bf ? MD_SCAN_BF16 : MD_SCAN_F32;
    a->batch = p->B, a->len = p->L, a->d_inner = E, a->d_state = N;
    a->u = G->u.p, a->ld_u = G->u.ld, a->delta = G->delta.p, a->ld_delta = G->delta.ld;
    a->z = G->z.p, a->ld_z = G->z.ld, a->Bm = G->Bm.p, a->ld_B = G->Bm.ld, a->Cm = G->Cm.p, a->ld_C = G->Cm.ld;
    a->A_log = G->A_log, a->D = G->D, a->dt_bias = G->dt_bias;
    a->y = G->y.p, a->ld_y = G->y.ld;
    a->dy = G->dy.p, a->ld_dy = G->dy.ld;
    a->du = G->du.p, a->ld_du = G->du.ld, a->ddelta = G->ddelta.p, a->ld_ddelta = G->ddelta.ld;
    a->dz = G->dz.p, a->ld_dz = G->dz.ld, a->dBm = G->dB.p, a->ld_dB = G->dB.ld, a->dCm = G->dC.p, a->ld_dC = G->dC.ld;
    a->dA_log = G->dA, a->dD = G->dD, a->ddt_bias = G->db;
    a->workspace = G->ws, a->workspace_bytes = G->ws_bytes;
}

static void gpu_free(gpu_t *G)
{
    dmat_t *m[] = {&G->u, &G->delta, &G->z, &G->Bm, &G->Cm, &G->dy, &G->y, &G->du, &G->ddelta, &G->dz, &G->dB, &G->dC};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) dmat_free(m[i]);
    float *v[] = {G->A_log, G->D, G->dt_bias, G->dA, G->dD, G->db, G->states, G->h0, G->hT, G->dhT, G->dh0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cudaFree(v[i]);
    cudaFree(G->ws);
}

static void poison_outputs(gpu_t *G)
{
    dmat_t *m[] = {&G->y, &G->du, &G->ddelta, &G->dz, &G->dB, &G->dC};
    for (size_t i = 0; i < 6; i++) dmat_poison(m[i]);
    if (G->ws) CU(cudaMemset(G->ws, 0xff, G->ws_bytes));
    if (G->states) CU(cudaMemset(G->states, 0xff, md_scan_states_bytes(G->a.batch, G->a.len, G->a.d_inner, G->a.d_state)));
}

static void reset_param_grads(gpu_t *G, const problem_t *p)
{
    dvec_upload(G->dA, p->dA0, p->E * p->N), dvec_upload(G->dD, p->dD0, p->E), dvec_upload(G->db, p->db0, p->E);
}

static void run_fwd_bwd(gpu_t *G, int save_states)
{
    G->a.states = save_states ? G->states : NULL;
    CU(md_scan_fwd(&G->a, 0));
    CU(md_scan_bwd(&G->a, 0));
    CU(cudaDeviceSynchronize());
}

/* All the GPU's outputs as doubles. */
static void gpu_results(const gpu_t *G, const problem_t *p, grads_t *g, int *pad_ok)
{
    const int64_t E = p->E, N = p->N;
    int ok[6];
    dmat_download(&G->y, g->y, &ok[0]), dmat_download(&G->du, g->du, &ok[1]);
    dmat_download(&G->ddelta, g->ddelta, &ok[2]), dmat_download(&G->dz, g->dz, &ok[3]);
    dmat_download(&G->dB, g->dB, &ok[4]), dmat_download(&G->dC, g->dC, &ok[5]);
    dvec_download(G->dA, g->dA, E * N), dvec_download(G->dD, g->dD, E), dvec_download(G->db, g->db, E);
    *pad_ok = ok[0] && ok[1] && ok[2] && ok[3] && ok[4] && ok[5];
}

static int same_bits(const gpu_t *G1, const grads_t *a, const grads_t *b, const problem_t *p)
{
    const int64_t M = p->B * p->L, E = p->E, N = p->N;
    return !memcmp(a->y, b->y, (size_t)(M * E) * 8) && !memcmp(a->du, b->du, (size_t)(M * E) * 8) &&
           !memcmp(a->ddelta, b->ddelta, (size_t)(M * E) * 8) && !memcmp(a->dz, b->dz, (size_t)(M * E) * 8) &&
           !memcmp(a->dB, b->dB, (size_t)(M * N) * 8) && !memcmp(a->dC, b->dC, (size_t)(M * N) * 8) &&
           !memcmp(a->dA, b->dA, (size_t)(E * N) * 8) && !memcmp(a->dD, b->dD, (size_t)E * 8) &&
           !memcmp(a->db, b->db, (size_t)E * 8);
    (void)G1;
}

#endif
