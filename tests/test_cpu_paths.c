/* The CPU backend's two code paths for f32, run on the same inputs: the
 * AVX-512 kernels (the scan's and the conv's items and the GEMM of
 * cpu_*_avx512.c, used where the CPU has AVX-512) and the portable ones
 * (the C template, and BLAS), which test_ops_cpu only sees on CPUs without AVX-512. Each is
 * checked against the f64 instantiation (itself checked against naive
 * references by test_ops_cpu), on shapes with partial channel chunks,
 * d_state not a multiple of 16, several segments, and row strides; a
 * forward on one path must also feed a backward on the other (shared
 * checkpoint layout), and thread count must not change a bit. Where the
 * CPU lacks AVX-512 only the portable path runs.
 *
 * `test_cpu_paths --bench-scan [E]` times the f32 scan instead, on the
 * active path: forward and backward of 4 x 1024 tokens, d_inner E (256,
 * the 1.4M model's; 512 at 7M), d_state 16, one thread, the least CPU time
 * of 7 calls each (on a shared machine the least is the steadiest).
 *
 * `test_cpu_paths --bench-conv` times the f32 conv1d + SiLU forward and
 * backward on both paths: 4 x 1024 tokens, 256 channels (x inside rows of
 * 512, as in the model), K = 4, one thread, the least CPU time of 7 calls.
 *
 * `test_cpu_paths --bench-gemm [MiB]` times the f32 GEMMs of a 1.4M
 * model's training step at L = 1024 (one sequence: m or k = 1024), with
 * the model's beta, on OpenBLAS and, where md_cpu_sgemm_avx512_takes the
 * shape, on the AVX-512 kernel (nan where not): one thread, the two
 * alternating, the least CPU time of 9 rounds. Every call takes the next
 * of as many copies of A, B and C as fill MiB (16 unless given; at least
 * 8 copies), on huge pages as the model's buffers are. With 256 the
 * operands come from DRAM, as the model's do (300 MiB of activations a
 * step), and the rates are those of `mambadna info --profile`; with 16
 * they stay in L3. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/ops.h"
#include "testutil.h"
#include "util/rng.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
/* MXCSR's control bits (not its sticky exception flags): the AVX-512 scan
 * flushes denormals inside, and must leave the mode as it found it */
static unsigned fp_mode(void) { return _mm_getcsr() & ~0x3Fu; }
#else
static unsigned fp_mode(void) { return 0; }
#endif

static const md_backend_t *be;
static md_rng_t rng;

enum { MAX_BUFS = 8192 };
static void *bufs[MAX_BUFS];
static int n_bufs;

static void *keep(void *p)
{
    if (!p || n_bufs == MAX_BUFS) { fprintf(stderr, "out of buffers\n"); exit(2); }
    return bufs[n_bufs++] = p;
}

static double *rnd(int64_t n, double lo, double hi)
{
    double *x = keep(malloc((size_t)(n ? n : 1) * sizeof *x));
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * md_rng_uniform(&rng);
    return x;
}

/* (rows, cols) of dtype dt with row stride ld, 64-byte aligned as the
 * model's buffers are (the scan streams aligned rows past the cache); the
 * padding holds `pad` */
static md_tensor_t mk(md_dtype_t dt, const double *src, int64_t rows, int64_t cols, int64_t ld, double pad)
{
    size_t es = md_dtype_size(dt);
    char *p = keep(aligned_alloc(64, ((size_t)(rows * ld + 1) * es + 63) & ~(size_t)63));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) {
            double v = c < cols ? (src ? src[r * cols + c] : 0) : pad;
            if (dt == MD_DTYPE_F64) ((double *)p)[r * ld + c] = v;
            else ((float *)p)[r * ld + c] = (float)v;
        }
    return md_tensor_cols(md_tensor_2d(p, dt, MD_DEVICE_CPU, rows, ld), 0, cols);
}

static double *rd(const md_tensor_t *t)
{
    int64_t rows = md_tensor_nrows(t), cols = md_tensor_ncols(t);
    double *x = keep(malloc((size_t)(rows * cols + 1) * sizeof *x));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            x[r * cols + c] = t->dtype == MD_DTYPE_F64 ? ((double *)t->data)[r * t->ld + c]
                                                       : ((float *)t->data)[r * t->ld + c];
    return x;
}

static int padding_is(const md_tensor_t *t, double pad)
{
    int64_t rows = md_tensor_nrows(t), cols = md_tensor_ncols(t);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = cols; c < t->ld; c++) {
            double v = t->dtype == MD_DTYPE_F64 ? ((double *)t->data)[r * t->ld + c] : ((float *)t->data)[r * t->ld + c];
            if (!(v == (t->dtype == MD_DTYPE_F64 ? pad : (double)(float)pad))) return 0;
        }
    return 1;
}

static double relerr(const double *got, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static const char *path_name(int avx) { return avx ? "avx512" : "portable"; }

/* ---- the scan ---- */

typedef struct {
    int64_t B, L, E, N;
    double *u, *delta, *bias, *A_log, *Bm, *Cm, *D, *z, *dy;
    double *dt_low, *dt_w;   /* (B*L, 3) and (E, 3) with delta = dt_low dt_w^T, or NULL */
} scan_in_t;

enum { N_SCAN_OUT = 9 };   /* y, du, ddelta, dA_log, dB, dC, dD, dz, ddt_bias */
static const char *const scan_out_names[N_SCAN_OUT] = {"y", "du", "ddelta", "dA_log", "dB", "dC", "dD", "dz",
                                                       "ddt_bias"};

typedef struct {
    double *v[N_SCAN_OUT];
    void *states;   /* the forward's, for a backward on another path */
    float *raw[3];  /* f32 dA_log, dD, ddt_bias, for bit comparisons */
} scan_out_t;

/* Forward (path fwd_avx) and backward (path bwd_avx) on dtype dt; the
 * backward takes the forward's states unless recompute, and writes ddelta
 * over delta and y over dy when in_place (ops.h allows it; the model does
 * it), else y apart. A second forward without y must leave the same
 * states, and the backward's y the forward's bits. fold: the
 * scan forms delta from in->dt_low and in->dt_w (delta NULL). */
static void run_scan(const scan_in_t *in, md_dtype_t dt, int fwd_avx, int bwd_avx, int recompute, int in_place,
                     int fold, scan_out_t *o)
{
    int64_t B = in->B, L = in->L, E = in->E, N = in->N, M = B * L, X = 3 + 2 * N;
    /* dt_low, B and C inside a wider matrix, u and z row-strided, as in the model */
    double *xdbl = keep(calloc((size_t)(M * X), sizeof(double)));
    for (int64_t i = 0; i < M; i++)
        for (int64_t r = 0; r < 3 && in->dt_low; r++) xdbl[i * X + r] = in->dt_low[i * 3 + r];
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            xdbl[i * X + 3 + n] = in->Bm[i * N + n];
            xdbl[i * X + 3 + N + n] = in->Cm[i * N + n];
        }
    md_tensor_t txd = mk(dt, xdbl, M, X, X, 0);
    md_tensor_t tB = md_tensor_cols(txd, 3, N), tC = md_tensor_cols(txd, 3 + N, N);
    md_tensor_t tu = mk(dt, in->u, M, E, 2 * E, 1e30), tdl = mk(dt, in->delta, M, E, E, 0);
    md_tensor_t tbias = mk(dt, in->bias, 1, E, E, 0), tA = mk(dt, in->A_log, E, N, N, 0), tD = mk(dt, in->D, 1, E, E, 0);
    md_tensor_t tz = mk(dt, in->z, M, E, E + 3, 1e30), ty = mk(dt, NULL, M, E, E + 1, 1e30);
    md_tensor_t tdy = mk(dt, in->dy, M, E, E + 2, 1e30), tdu = mk(dt, NULL, M, E, E + 1, 1e30);
    md_tensor_t tdd = in_place ? tdl : mk(dt, NULL, M, E, E, 0), tdz = mk(dt, NULL, M, E, E + 5, 1e30);
    md_tensor_t tdxd = mk(dt, NULL, M, X, X, 0);
    md_tensor_t tlow = md_tensor_cols(txd, 0, 3), tW = mk(dt, fold ? in->dt_w : NULL, E, 3, 3, 0);
    const md_tensor_t *dl = fold ? NULL : &tdl;
    md_tensor_t tdB = md_tensor_cols(tdxd, 3, N), tdC = md_tensor_cols(tdxd, 3 + N, N);
    md_tensor_t tdA = mk(dt, NULL, E, N, N, 0), tdD = mk(dt, NULL, 1, E, E, 0), tdb = mk(dt, NULL, 1, E, E, 0);
    /* the backward's y (ops.h), over dy where ddelta goes over delta */
    md_tensor_t ty_bwd = in_place ? tdy : mk(dt, NULL, M, E, E + 7, 1e30);
    size_t st_bytes = be->scan_states_size(be, dt, B, L, E, N);
    void *states = keep(malloc(st_bytes)), *states_only = keep(malloc(st_bytes));
    void *ws = keep(malloc(be->scan_bwd_workspace(be, dt, B, L, E, N)));
    unsigned mode = fp_mode();
    md_cpu_allow_avx512(fwd_avx);
    be->scan_fwd(be, &ty, &tu, dl, &tlow, &tW, &tbias, &tA, &tB, &tC, &tD, &tz, B, states, NULL);
    /* y NULL: the states alone, the same bits */
    be->scan_fwd(be, NULL, &tu, dl, &tlow, &tW, &tbias, &tA, &tB, &tC, &tD, &tz, B, states_only, NULL);
    md_cpu_allow_avx512(bwd_avx);
    be->scan_bwd(be, &tdu, &tdd, &tdA, &tdB, &tdC, &tdD, &tdz, &tdb, &ty_bwd, &tdy, &tu, dl, &tlow, &tW, &tbias, &tA,
                 &tB, &tC, &tD, &tz, B, recompute ? NULL : states, NULL, ws);
    md_cpu_allow_avx512(1);
    CHECK(fp_mode() == mode, "scan (%s fwd, %s bwd) left the floating-point mode changed (MXCSR %#x, was %#x)",
          path_name(fwd_avx), path_name(bwd_avx), fp_mode(), mode);
    CHECK(padding_is(&ty, 1e30) && padding_is(&tdu, 1e30) && padding_is(&tdz, 1e30) && padding_is(&ty_bwd, 1e30),
          "scan (%s fwd, %s bwd) wrote into a row padding", path_name(fwd_avx), path_name(bwd_avx));
    CHECK(!memcmp(states, states_only, st_bytes), "scan_fwd (%s) without y: other states", path_name(fwd_avx));
    if (fwd_avx == bwd_avx) {   /* one path: the forward's bits (across paths the exps differ) */
        double *yf = rd(&ty), *yb = rd(&ty_bwd);
        CHECK(!memcmp(yf, yb, (size_t)(M * E) * sizeof(double)), "scan_bwd (%s%s): y differs from the forward's",
              path_name(bwd_avx), recompute ? ", recomputed states" : "");
    }
    int untouched = 1;   /* dt_low's columns of dxdbl are not the scan's */
    md_tensor_t whole = md_tensor_2d(tdxd.data, dt, MD_DEVICE_CPU, M, X);
    double *all = rd(&whole);
    for (int64_t i = 0; i < M; i++)
        for (int c = 0; c < 3; c++) untouched &= all[i * X + c] == 0;
    CHECK(untouched, "scan_bwd (%s) wrote outside dB and dC", path_name(bwd_avx));
    const md_tensor_t *t[N_SCAN_OUT] = {&ty, &tdu, &tdd, &tdA, &tdB, &tdC, &tdD, &tdz, &tdb};
    for (int k = 0; k < N_SCAN_OUT; k++) o->v[k] = rd(t[k]);
    o->states = states;
    o->raw[0] = tdA.data, o->raw[1] = tdD.data, o->raw[2] = tdb.data;
}

/* Random inputs of shape {B, L, E, N} (delta without dt_low and dt_w) */
static scan_in_t scan_inputs(const int64_t shape[4])
{
    scan_in_t in;
    memset(&in, 0, sizeof in);
    in.B = shape[0], in.L = shape[1], in.E = shape[2], in.N = shape[3];
    int64_t M = in.B * in.L, E = in.E, N = in.N;
    in.u = rnd(M * E, -1, 1);
    in.delta = rnd(M * E, -3, 1);
    in.bias = rnd(E, -2, 0);
    in.A_log = rnd(E * N, -1, 2.5);
    in.Bm = rnd(M * N, -1, 1);
    in.Cm = rnd(M * N, -1, 1);
    in.D = rnd(E, 0.5, 1.5);
    in.z = rnd(M * E, -2, 2);
    in.dy = rnd(M * E, -1, 1);
    return in;
}

static void test_scan(int have_avx)
{
    int64_t shapes[][4] = {{2, 67, 200, 16}, {1, 40, 64, 5}, {3, 33, 130, 20}, {1, 1, 3, 2}, {1, 300, 64, 16},
                           {2, 25, 70, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        scan_in_t in = scan_inputs(shapes[s]);
        int64_t M = in.B * in.L, E = in.E, N = in.N;
        in.delta[0] = 25;                      /* softplus's threshold */
        if (M * E > 5) in.delta[5] = -40;      /* dt ~ 0 */
        scan_out_t ref;
        run_scan(&in, MD_DTYPE_F64, 0, 0, 0, 0, 0, &ref);
        int64_t sz[N_SCAN_OUT] = {M * E, M * E, M * E, E * N, M * N, M * N, E, M * E, E};
        /* (forward path, backward path, recompute) */
        int runs[][3] = {{0, 0, 0}, {0, 0, 1}, {1, 1, 0}, {1, 1, 1}, {1, 0, 0}, {0, 1, 0}};
        for (int r = 0; r < 6; r++) {
            if (!have_avx && (runs[r][0] || runs[r][1])) continue;
            scan_out_t got, over;
            run_scan(&in, MD_DTYPE_F32, runs[r][0], runs[r][1], runs[r][2], 0, 0, &got);
            /* ddelta written over delta: the same bits */
            run_scan(&in, MD_DTYPE_F32, runs[r][0], runs[r][1], runs[r][2], 1, 0, &over);
            for (int k = 0; k < N_SCAN_OUT; k++) {
                double e = relerr(got.v[k], ref.v[k], sz[k]);
                CHECK(e <= 2e-5, "scan %s (B %lld L %lld E %lld N %lld; %s fwd, %s bwd%s): relative error %.3g",
                      scan_out_names[k], (long long)in.B, (long long)in.L, (long long)E, (long long)N,
                      path_name(runs[r][0]), path_name(runs[r][1]), runs[r][2] ? ", recomputed states" : "", e);
                CHECK(!memcmp(got.v[k], over.v[k], (size_t)sz[k] * sizeof(double)),
                      "scan %s (B %lld L %lld E %lld N %lld; %s fwd, %s bwd%s): ddelta over delta, y over dy change it",
                      scan_out_names[k], (long long)in.B, (long long)in.L, (long long)E, (long long)N,
                      path_name(runs[r][0]), path_name(runs[r][1]), runs[r][2] ? ", recomputed states" : "");
            }
        }
    }
}

/* delta formed inside the scan from dt_proj's input and weight (ops.h,
 * delta NULL) against the scan given that delta, computed here in f64: in
 * f64 the same results up to the rounding of the sum, in f32 on every
 * path within the bound the scan has against f64 anyway. */
static void test_scan_fold(int have_avx)
{
    int64_t shapes[][4] = {{2, 67, 200, 16}, {3, 33, 130, 20}, {1, 1, 3, 2}, {1, 300, 64, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        scan_in_t in = scan_inputs(shapes[s]);
        int64_t M = in.B * in.L, E = in.E, N = in.N;
        in.dt_low = rnd(M * 3, -1, 1);
        in.dt_w = rnd(E * 3, -1.5, 1.5);
        in.dt_low[0] = 20, in.dt_low[1] = in.dt_low[2] = 0, in.dt_w[0] = 1.2;   /* delta 24: softplus's threshold */
        if (M > 1) in.dt_low[3] = -30, in.dt_low[4] = in.dt_low[5] = 0;      /* delta -36 in channel 0: dt ~ 0 */
        for (int64_t t = 0; t < M; t++)
            for (int64_t e = 0; e < E; e++) {
                double d = 0;
                for (int r = 0; r < 3; r++) d += in.dt_w[e * 3 + r] * in.dt_low[t * 3 + r];
                in.delta[t * E + e] = d;
            }
        int64_t sz[N_SCAN_OUT] = {M * E, M * E, M * E, E * N, M * N, M * N, E, M * E, E};
        scan_out_t ref, got;
        run_scan(&in, MD_DTYPE_F64, 0, 0, 0, 0, 0, &ref);
        run_scan(&in, MD_DTYPE_F64, 0, 0, 0, 0, 1, &got);
        for (int k = 0; k < N_SCAN_OUT; k++) {
            double e = relerr(got.v[k], ref.v[k], sz[k]);
            CHECK(e <= 1e-13, "scan %s (B %lld L %lld E %lld N %lld; f64, delta formed): relative error %.3g",
                  scan_out_names[k], (long long)in.B, (long long)in.L, (long long)E, (long long)N, e);
        }
        int runs[][3] = {{0, 0, 0}, {0, 0, 1}, {1, 1, 0}, {1, 1, 1}, {1, 0, 0}, {0, 1, 0}};
        for (int r = 0; r < 6; r++) {
            if (!have_avx && (runs[r][0] || runs[r][1])) continue;
            run_scan(&in, MD_DTYPE_F32, runs[r][0], runs[r][1], runs[r][2], 0, 1, &got);
            for (int k = 0; k < N_SCAN_OUT; k++) {
                double e = relerr(got.v[k], ref.v[k], sz[k]);
                CHECK(e <= 2e-5,
                      "scan %s (B %lld L %lld E %lld N %lld; %s fwd, %s bwd%s, delta formed): relative error %.3g",
                      scan_out_names[k], (long long)in.B, (long long)in.L, (long long)E, (long long)N,
                      path_name(runs[r][0]), path_name(runs[r][1]), runs[r][2] ? ", recomputed states" : "", e);
            }
        }
    }
}

/* Bit-identical parameter gradients with 1 and 2 threads on the active path */
static void test_scan_threads(void)
{
    scan_in_t in;
    memset(&in, 0, sizeof in);
    in.B = 2, in.L = 50, in.E = 150, in.N = 16;
    int64_t M = in.B * in.L, E = in.E, N = in.N;
    in.u = rnd(M * E, -1, 1);
    in.delta = rnd(M * E, -3, 1);
    in.bias = rnd(E, -2, 0);
    in.A_log = rnd(E * N, 0, 2);
    in.Bm = rnd(M * N, -1, 1);
    in.Cm = rnd(M * N, -1, 1);
    in.D = rnd(E, 0.5, 1.5);
    in.z = rnd(M * E, -2, 2);
    in.dy = rnd(M * E, -1, 1);
    scan_out_t o[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        run_scan(&in, MD_DTYPE_F32, 1, 1, 0, 0, 0, &o[t]);
    }
    omp_set_num_threads(2);
    int same = 1;
    for (int k = 0; k < N_SCAN_OUT; k++) {
        int64_t n = k == 3 ? E * N : k == 6 || k == 8 ? E : k == 4 || k == 5 ? M * N : M * E;
        same &= !memcmp(o[0].v[k], o[1].v[k], (size_t)n * sizeof(double));
    }
    CHECK(same, "the scan's results differ between 1 and 2 threads");
}

/* ---- conv1d + SiLU ---- */

typedef struct {
    int64_t B, L, E, K;
    double *x, *w, *bias, *dy, *dw0, *db0;
} conv_in_t;

enum { N_CONV_OUT = 4 };   /* y, dx, dw, dbias */
static const char *const conv_out_names[N_CONV_OUT] = {"y", "dx", "dw", "dbias"};

/* Forward and backward on dtype dt, on the AVX-512 path (avx) or the
 * portable one; x and dx inside wider rows, dx filled with garbage first
 * (the backward writes it), dw and dbias added into */
static void run_conv(const conv_in_t *in, md_dtype_t dt, int avx, double *out[N_CONV_OUT])
{
    int64_t M = in->B * in->L, E = in->E, K = in->K;
    md_tensor_t tx = mk(dt, in->x, M, E, 2 * E + 1, 1e30), tw = mk(dt, in->w, E, K, K, 0);
    md_tensor_t tb = mk(dt, in->bias, 1, E, E, 0), ty = mk(dt, NULL, M, E, E + 3, 1e30);
    md_tensor_t tdy = mk(dt, in->dy, M, E, E + 1, 1e30), tdx = mk(dt, rnd(M * E, 5, 6), M, E, 2 * E, 1e30);
    md_tensor_t tdw = mk(dt, in->dw0, E, K, K, 0), tdb = mk(dt, in->db0, 1, E, E, 0);
    md_cpu_allow_avx512(avx);
    be->conv1d_silu_fwd(be, &ty, &tx, &tw, &tb, in->B);
    be->conv1d_silu_bwd(be, &tdx, &tdw, &tdb, &tdy, &tx, &tw, &tb, in->B);
    md_cpu_allow_avx512(1);
    CHECK(padding_is(&ty, 1e30) && padding_is(&tdx, 1e30),
          "conv (%s, B %lld L %lld E %lld K %lld) wrote into a row padding",
          path_name(avx), (long long)in->B, (long long)in->L, (long long)E, (long long)K);
    const md_tensor_t *t[N_CONV_OUT] = {&ty, &tdx, &tdw, &tdb};
    for (int k = 0; k < N_CONV_OUT; k++) out[k] = rd(t[k]);
}

static void test_conv(int have_avx)
{
    /* B, L, E, K: whole and partial vectors and blocks of 64 channels,
     * sequences shorter than the taps, the models' K = 4 and others */
    int64_t shapes[][4] = {{2, 50, 256, 4}, {3, 33, 70, 4}, {1, 2, 16, 4}, {2, 9, 3, 4},
                           {2, 40, 130, 3}, {1, 20, 64, 2}, {2, 17, 100, 7}, {1, 5, 33, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        conv_in_t in;
        in.B = shapes[s][0], in.L = shapes[s][1], in.E = shapes[s][2], in.K = shapes[s][3];
        int64_t M = in.B * in.L, E = in.E, K = in.K, sz[N_CONV_OUT] = {M * E, M * E, E * K, E};
        in.x = rnd(M * E, -3, 3), in.w = rnd(E * K, -1, 1), in.bias = rnd(E, -0.5, 0.5);
        in.dy = rnd(M * E, -1, 1), in.dw0 = rnd(E * K, -1, 1), in.db0 = rnd(E, -1, 1);
        in.x[0] = -100, in.x[M * E - 1] = 100;   /* sigmoid's e^-|x| clamped */
        double *ref[N_CONV_OUT], *got[N_CONV_OUT];
        run_conv(&in, MD_DTYPE_F64, 0, ref);
        for (int avx = 0; avx <= have_avx; avx++) {
            run_conv(&in, MD_DTYPE_F32, avx, got);
            for (int k = 0; k < N_CONV_OUT; k++) {
                double e = relerr(got[k], ref[k], sz[k]);
                CHECK(e <= 1e-6, "conv %s (%s, B %lld L %lld E %lld K %lld): relative error %.3g", conv_out_names[k],
                      path_name(avx), (long long)in.B, (long long)in.L, (long long)E, (long long)K, e);
            }
        }
    }
}

/* The AVX-512 scan's A = -exp(A_log) from its vector exp (double) must give
 * the floats the portable scan gets from libm's exp: both round a double
 * within a few ulps of e^x to float, and differ only where e^x lies that
 * close to a rounding boundary of float (none in 2^24 random x tried). */
static void test_scan_neg_exp(int have_avx)
{
#if MD_CPU_HAVE_AVX512
    if (!have_avx) return;
    enum { N = 200003 };   /* not a multiple of 16: a masked tail */
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-40f, 1e-30f, 88.7f, 89.0f,
                                    -87.0f, -104.0f, -746.0f, 710.0f, 1e30f, -1e30f, 0.5f, -0.5f};
    float *x = keep(malloc(N * sizeof(float))), *a = keep(malloc(N * sizeof(float)));
    float *a2 = keep(malloc(N * sizeof(float)));
    int ns = (int)(sizeof special / sizeof special[0]);
    for (int64_t i = 0; i < N; i++) {
        double r = md_rng_uniform(&rng);
        x[i] = i < ns ? special[i] : i % 2 ? (float)(-10 + 20 * r) : (float)(-200 + 400 * r);
    }
    md_cpu_scan_neg_exp_avx512(x, N, a, a2);
    int64_t bad = 0, bad2 = 0, first = -1;
    for (int64_t i = 0; i < N; i++) {
        double A = -exp((double)x[i]);
        float ra = (float)A, ra2 = (float)(A * 1.4426950408889634);
        if (memcmp(&ra, &a[i], sizeof ra)) bad++, first = first < 0 ? i : first;
        if (memcmp(&ra2, &a2[i], sizeof ra2)) bad2++, first = first < 0 ? i : first;
    }
    CHECK(bad == 0 && bad2 == 0,
          "scan's -exp(A_log): %lld of %d A and %lld of A log2 e differ from libm's (first x = %.9g)", (long long)bad,
          N, (long long)bad2, first < 0 ? 0.0 : (double)x[first]);
    float nan_in = NAN, nan_out = 0;
    md_cpu_scan_neg_exp_avx512(&nan_in, 1, &nan_out, NULL);
    CHECK(isnan(nan_out), "scan's -exp(A_log) of NaN gives %g", (double)nan_out);
#else
    (void)have_avx;
#endif
}

/* ---- the GEMM ---- */

static void test_gemm(int have_avx)
{
    /* m, n, k: partial tiles (m % 6), partial panels (n % 64, n < 16), the
     * model's shapes, K in blocks of 128 (whole, and a partial last one:
     * k = 256, 257, 260, 300), and for the narrow products (n <= 8) odd m,
     * m % 32, k % 16 and k past their copy of B^T (k > 1024); with op(A) =
     * A^T, the tiles for 64 <= n <= 256, m <= 128 and m > 128 */
    int64_t shapes[][3] = {{1, 1, 1},     {7, 5, 3},      {13, 70, 40},  {64, 17, 128}, {100, 300, 256},
                           {61, 8, 257},  {200, 40, 256}, {130, 512, 128}, {6, 64, 9},  {257, 16, 130},
                           {256, 8, 100}, {37, 3, 1030},  {50, 9, 17},   {40, 256, 300},
                           {150, 70, 260}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 3; bi++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                double alpha = bi == 2 ? -0.6 : 1.0, beta = bi == 0 ? 0.0 : bi == 1 ? 1.0 : 0.3;
                double *A = rnd(m * k, -1, 1), *Bv = rnd(k * n, -1, 1), *C0 = rnd(m * n, -1, 1);
                double *As = keep(malloc((size_t)(m * k) * sizeof(double)));   /* as stored: A or A^T */
                double *Bs = keep(malloc((size_t)(k * n) * sizeof(double)));   /* as stored: B or B^T */
                for (int64_t i = 0; i < m; i++)
                    for (int64_t l = 0; l < k; l++) As[ta ? l * m + i : i * k + l] = A[i * k + l];
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < n; j++) Bs[tb ? j * k + i : i * n + j] = Bv[i * n + j];
                double *ref = keep(malloc((size_t)(m * n) * sizeof(double)));
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double acc = 0;
                        for (int64_t l = 0; l < k; l++) acc += (double)(float)A[i * k + l] * (double)(float)Bv[l * n + j];
                        ref[i * n + j] = alpha * acc + beta * (double)(float)C0[i * n + j];
                    }
                for (int avx = 0; avx <= have_avx; avx++) {
                    md_tensor_t a = ta ? mk(MD_DTYPE_F32, As, k, m, m + 3, 0) : mk(MD_DTYPE_F32, As, m, k, k + 3, 0);
                    md_tensor_t b = tb ? mk(MD_DTYPE_F32, Bs, n, k, k + 1, 0) : mk(MD_DTYPE_F32, Bs, k, n, n + 2, 0);
                    md_tensor_t c = mk(MD_DTYPE_F32, C0, m, n, n + 5, 7.0);
                    if (beta == 0)   /* beta = 0 must ignore C, NaN included */
                        for (int64_t i = 0; i < m; i++)
                            for (int64_t j = 0; j < n; j++) ((float *)c.data)[i * c.ld + j] = NAN;
                    md_cpu_allow_avx512(avx);
                    be->gemm(be, ta, tb, alpha, &a, &b, beta, &c);
                    md_cpu_allow_avx512(1);
                    double e = relerr(rd(&c), ref, m * n);
                    CHECK(e <= 1e-6, "gemm %s (m %lld n %lld k %lld, %c%c, alpha %g beta %g): relative error %.3g",
                          path_name(avx), (long long)m, (long long)n, (long long)k, ta ? 'T' : 'N', tb ? 'T' : 'N',
                          alpha, beta, e);
                    CHECK(padding_is(&c, 7.0), "gemm %s (m %lld n %lld k %lld) wrote into the row padding",
                          path_name(avx), (long long)m, (long long)n, (long long)k);
                }
            }
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int bench_scan(int64_t E)
{
    const int64_t B = 4, L = 1024, N = 16, M = B * L, reps = 7;
    md_dtype_t dt = MD_DTYPE_F32;
    md_cpu_set_threads(1);
    /* u and z halves of one matrix, as in the model; B and C plain */
    md_tensor_t xz = mk(dt, rnd(M * 2 * E, -2, 2), M, 2 * E, 2 * E, 0);
    md_tensor_t u = md_tensor_cols(xz, 0, E), z = md_tensor_cols(xz, E, E);
    md_tensor_t Bm = mk(dt, rnd(M * N, -1, 1), M, N, N, 0), Cm = mk(dt, rnd(M * N, -1, 1), M, N, N, 0);
    md_tensor_t delta = mk(dt, rnd(M * E, -3, 1), M, E, E, 0), dy = mk(dt, rnd(M * E, -1, 1), M, E, E, 0);
    md_tensor_t bias = mk(dt, rnd(E, -2, 0), 1, E, E, 0), A = mk(dt, rnd(E * N, -1, 2.5), E, N, N, 0);
    md_tensor_t D = mk(dt, rnd(E, 0.5, 1.5), 1, E, E, 0), y = mk(dt, NULL, M, E, E, 0);
    md_tensor_t dxz = mk(dt, NULL, M, 2 * E, 2 * E, 0);
    md_tensor_t du = md_tensor_cols(dxz, 0, E), dz = md_tensor_cols(dxz, E, E);
    md_tensor_t dB = mk(dt, NULL, M, N, N, 0), dC = mk(dt, NULL, M, N, N, 0), dd = mk(dt, NULL, M, E, E, 0);
    md_tensor_t dA = mk(dt, NULL, E, N, N, 0), dD = mk(dt, NULL, 1, E, E, 0), db = mk(dt, NULL, 1, E, E, 0);
    void *states = keep(aligned_alloc(64, (be->scan_states_size(be, dt, B, L, E, N) + 63) & ~(size_t)63));
    void *ws = keep(aligned_alloc(64, (be->scan_bwd_workspace(be, dt, B, L, E, N) + 63) & ~(size_t)63));
    double fwd = INFINITY, bwd = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_seconds();
        be->scan_fwd(be, &y, &u, &delta, NULL, NULL, &bias, &A, &Bm, &Cm, &D, &z, B, states, NULL);
        double t1 = cpu_seconds();
        be->scan_bwd(be, &du, &dd, &dA, &dB, &dC, &dD, &dz, &db, NULL, &dy, &u, &delta, NULL, NULL, &bias, &A, &Bm, &Cm, &D,
                     &z, B,
                     states, NULL, ws);
        double t2 = cpu_seconds();
        fwd = fmin(fwd, t1 - t0), bwd = fmin(bwd, t2 - t1);
    }
    printf("scan f32 (%s), B %lld x L %lld, E %lld, N %lld, 1 thread: forward %.3f ms, backward %.3f ms "
           "(least CPU time of %lld)\n",
           path_name(md_cpu_avx512_active()), (long long)B, (long long)L, (long long)E, (long long)N, 1e3 * fwd,
           1e3 * bwd, (long long)reps);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    return 0;
}

static int bench_conv(int64_t E)
{
    const int64_t B = 4, L = 1024, K = 4, M = B * L, reps = 7;
    md_dtype_t dt = MD_DTYPE_F32;
    md_cpu_set_threads(1);
    md_tensor_t xz = mk(dt, rnd(M * 2 * E, -2, 2), M, 2 * E, 2 * E, 0), x = md_tensor_cols(xz, 0, E);
    md_tensor_t w = mk(dt, rnd(E * K, -1, 1), E, K, K, 0), bias = mk(dt, rnd(E, -1, 1), 1, E, E, 0);
    md_tensor_t y = mk(dt, NULL, M, E, E, 0), dy = mk(dt, rnd(M * E, -1, 1), M, E, E, 0);
    md_tensor_t dxz = mk(dt, NULL, M, 2 * E, 2 * E, 0), dx = md_tensor_cols(dxz, 0, E);
    md_tensor_t dw = mk(dt, NULL, E, K, K, 0), db = mk(dt, NULL, 1, E, E, 0);
    int have_avx = md_cpu_avx512_active();
    for (int avx = 0; avx <= have_avx; avx++) {
        md_cpu_allow_avx512(avx);
        double fwd = INFINITY, bwd = INFINITY;
        for (int r = 0; r < reps; r++) {
            double t0 = cpu_seconds();
            be->conv1d_silu_fwd(be, &y, &x, &w, &bias, B);
            double t1 = cpu_seconds();
            be->conv1d_silu_bwd(be, &dx, &dw, &db, &dy, &x, &w, &bias, B);
            double t2 = cpu_seconds();
            fwd = fmin(fwd, t1 - t0), bwd = fmin(bwd, t2 - t1);
        }
        printf("conv1d_silu f32 (%s), B %lld x L %lld, E %lld, K %lld, 1 thread: forward %.3f ms, backward %.3f ms\n",
               path_name(avx), (long long)B, (long long)L, (long long)E, (long long)K, 1e3 * fwd, 1e3 * bwd);
    }
    md_cpu_allow_avx512(1);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    return 0;
}

/* One GEMM shape of --bench-gemm: op(A) m x k, op(B) k x n. */
typedef struct {
    int ta, tb;
    int64_t m, n, k;
    int beta;   /* 1 where the model adds into C (a residual, a gradient) */
    const char *what;
} gemm_shape_t;

static int bench_gemm(int64_t copies_mib)
{
    enum { ROUNDS = 9, CALLS = 8, MAX_COPIES = 1024 };
    static const gemm_shape_t shapes[] = {
        {0, 1, 1024, 512, 128, 0, "in_proj forward"},  {0, 0, 1024, 128, 512, 0, "in_proj dx"},
        {1, 0, 512, 128, 1024, 1, "in_proj dW"},       {0, 1, 1024, 128, 256, 1, "out_proj forward"},
        {0, 0, 1024, 256, 128, 0, "out_proj dx"},      {1, 0, 128, 256, 1024, 1, "out_proj dW"},
        {0, 1, 1024, 40, 256, 0, "x_proj forward"},    {0, 0, 1024, 256, 40, 1, "x_proj dx"},
        {1, 0, 40, 256, 1024, 1, "x_proj dW"},         {0, 1, 1024, 256, 8, 0, "dt_proj forward"},
        {0, 0, 1024, 8, 256, 0, "dt_proj dx"},         {1, 0, 256, 8, 1024, 1, "dt_proj dW"},
    };
    md_cpu_set_threads(1);
    openblas_set_num_threads(1);
    static float *a[MAX_COPIES], *b[MAX_COPIES], *c[MAX_COPIES];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const gemm_shape_t *g = &shapes[s];
        int64_t ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
        int64_t br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
        size_t na = (size_t)(ar * ac), nb = (size_t)(br * bc), nc = (size_t)(g->m * g->n);
        int64_t copies = (int64_t)((copies_mib << 20) / ((na + nb + nc) * sizeof(float)));
        copies = copies < 8 ? 8 : copies > MAX_COPIES ? MAX_COPIES : copies;
        /* carved from one buffer of the backend's, on huge pages as the model's activations are */
        size_t set = (na + nb + nc + 48) * sizeof(float);
        char *arena = be->alloc(be, (size_t)copies * set);
        if (!arena) { fprintf(stderr, "out of memory\n"); exit(2); }
        for (int64_t j = 0; j < copies; j++) {
            a[j] = (float *)(arena + j * set);
            b[j] = a[j] + ((na + 15) & ~(size_t)15);
            c[j] = b[j] + ((nb + 15) & ~(size_t)15);
            for (size_t i = 0; i < na; i++) a[j][i] = j ? a[0][i] : (float)md_rng_uniform(&rng) - 0.5f;
            for (size_t i = 0; i < nb; i++) b[j][i] = j ? b[0][i] : (float)md_rng_uniform(&rng) - 0.5f;
            memset(c[j], 0, nc * sizeof(float));
        }
        int64_t next = 0;
        int takes = md_cpu_sgemm_avx512_takes(g->ta, g->tb, g->m, g->n, g->k);
        double best[2] = {INFINITY, INFINITY};
        for (int r = 0; r < ROUNDS; r++)
            for (int own = 0; own <= takes; own++) {
                double t0 = cpu_seconds();
                for (int i = 0; i < CALLS; i++) {
                    int64_t j = next++ % copies;
                    if (own)
                        md_cpu_sgemm_avx512(g->ta, g->tb, g->m, g->n, g->k, 1.0f, a[j], ac, b[j], bc, (float)g->beta,
                                            c[j], g->n);
                    else
                        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                                    g->tb ? CblasTrans : CblasNoTrans, (int)g->m, (int)g->n, (int)g->k, 1.0f, a[j],
                                    (int)ac, b[j], (int)bc, (float)g->beta, c[j], (int)g->n);
                }
                best[own] = fmin(best[own], (cpu_seconds() - t0) / CALLS);
            }
        double gflop = 2e-9 * (double)(g->m * g->n * g->k);
        printf("gemm %c%c %5lld x %4lld x %4lld  %-17s openblas %6.1f  avx512 %6.1f GFLOP/s\n", g->ta ? 'T' : 'N',
               g->tb ? 'T' : 'N', (long long)g->m, (long long)g->n, (long long)g->k, g->what, gflop / best[0],
               takes ? gflop / best[1] : NAN);
        be->free(be, arena);
    }
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    return 0;
}

int main(int argc, char **argv)
{
    be = md_backend_cpu();
    md_rng_seed(&rng, 777);
    if (argc > 1 && !strcmp(argv[1], "--bench-scan")) {
        int64_t E = argc > 2 ? atoll(argv[2]) : 256;
        if (E < 1 || E > 16384) {
            fprintf(stderr, "usage: test_cpu_paths [--bench-scan [E, 1..16384]]\n");
            return 1;
        }
        return bench_scan(E);
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-conv")) return bench_conv(256);
    if (argc > 1 && !strcmp(argv[1], "--bench-gemm")) {
        if (!md_cpu_avx512_active()) {
            fprintf(stderr, "test_cpu_paths --bench-gemm: this CPU lacks AVX-512\n");
            return 1;
        }
        return bench_gemm(argc > 2 ? atoll(argv[2]) : 16);
    }
    int have_avx = md_cpu_avx512_active();
    printf("AVX-512 kernels: %s\n", have_avx ? "present, both paths tested" : "absent, portable path only");
    test_scan(have_avx);
    test_scan_fold(have_avx);
    test_scan_threads();
    test_scan_neg_exp(have_avx);
    test_conv(have_avx);
    test_gemm(have_avx);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    return md_test_done();
}
