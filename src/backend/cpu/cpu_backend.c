/* md_backend_cpu(): unwraps tensors, checks them, and calls the f32 or f64
 * kernel. A mismatch of shapes or dtypes is a bug in the caller, never a
 * user error, so it aborts with one line naming the op. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_backend_internal.h"
#include "backend/cpu/cpu_hyena.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_linear.h"
#include "backend/ops.h"
#include "util/log.h"

void md_cpu_set_threads(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

/* OpenBLAS runs single-threaded inside our OpenMP threads: two pools (its
 * pthreads and OpenMP's) would spin against each other on every switch
 * between a gemm and an elementwise op, which on two cores costs more than
 * the gemms themselves. Something else (a benchmark) may have changed it. */
static void blas_single_threaded(void)
{
    if (!omp_in_parallel() && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* ---- which kernels ---- */

static int allow_avx512 = 1;   /* md_cpu_allow_avx512 */
static int have_avx512 = -1;   /* unknown until the first query */

void md_cpu_allow_avx512(int allow) { __atomic_store_n(&allow_avx512, allow != 0, __ATOMIC_RELAXED); }

int md_cpu_avx512_active(void)
{
#if MD_CPU_HAVE_AVX512
    int have = __atomic_load_n(&have_avx512, __ATOMIC_RELAXED);
    if (have < 0) {   /* every thread that gets here computes the same value */
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
        __atomic_store_n(&have_avx512, have, __ATOMIC_RELAXED);
    }
    return have && __atomic_load_n(&allow_avx512, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

/* ---- profiling ---- */

static const char *const prof_names[N_PROF] = {"gemm", "add", "scale", "sumsq", "adamw", "embedding_fwd",
                                               "embedding_bwd", "rmsnorm_fwd", "rmsnorm_bwd", "conv1d_silu_fwd",
                                               "conv1d_silu_bwd", "scan_fwd", "scan_bwd", "xent", "copy/memset",
                                               "rope", "attention_fwd", "attention_bwd", "swiglu_fwd",
                                               "swiglu_bwd", "layernorm_fwd", "layernorm_bwd", "fftconv_fwd",
                                               "fftconv_bwd", "dwconv_fwd", "dwconv_bwd", "hyena other"};
int md_cpu_prof_on;
double md_cpu_prof_time[N_PROF];
int64_t md_cpu_prof_calls[N_PROF];

/* the gemm time split by shape, to see which shapes run below the BLAS rate */
enum { N_GEMM_SHAPES = 48 };
typedef struct {
    int ta, tb;
    int64_t m, n, k;
    double time;
    int64_t calls;
} gemm_shape_prof_t;
static gemm_shape_prof_t gemm_prof[N_GEMM_SHAPES];
static int n_gemm_prof;

static void gemm_prof_add(int ta, int tb, int64_t m, int64_t n, int64_t k, double dt)
{
#pragma omp critical(md_cpu_gemm_prof)
    {
        int i = 0;
        while (i < n_gemm_prof && !(gemm_prof[i].ta == ta && gemm_prof[i].tb == tb && gemm_prof[i].m == m &&
                                    gemm_prof[i].n == n && gemm_prof[i].k == k))
            i++;
        if (i < N_GEMM_SHAPES) {
            if (i == n_gemm_prof) {
                gemm_shape_prof_t g = {ta, tb, m, n, k, 0, 0};
                gemm_prof[n_gemm_prof++] = g;
            }
            gemm_prof[i].time += dt;
            gemm_prof[i].calls++;
        }
    }
}

void md_cpu_profile_enable(int on) { md_cpu_prof_on = on; }

void md_cpu_profile_report(void)
{
    double total = 0;
    for (int i = 0; i < N_PROF; i++) total += md_cpu_prof_time[i];
    for (int i = 0; i < N_PROF; i++) {
        if (!md_cpu_prof_calls[i]) continue;
        md_info("%-16s %8lld calls %9.3f s %5.1f%%", prof_names[i], (long long)md_cpu_prof_calls[i], md_cpu_prof_time[i],
                total > 0 ? 100 * md_cpu_prof_time[i] / total : 0);
    }
    for (int i = 0; i < n_gemm_prof; i++) {
        const gemm_shape_prof_t *g = &gemm_prof[i];
        md_info("  gemm %c%c %5lld x %5lld x %5lld %6lld calls %8.3f s %6.1f GFLOP/s", g->ta ? 'T' : 'N',
                g->tb ? 'T' : 'N', (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->calls, g->time,
                g->time > 0 ? 2.0 * g->m * g->n * g->k * g->calls / g->time / 1e9 : 0);
    }
    memset(md_cpu_prof_time, 0, sizeof md_cpu_prof_time);
    memset(md_cpu_prof_calls, 0, sizeof md_cpu_prof_calls);
    n_gemm_prof = 0;
}

/* ---- memory ---- */

/* Buffers of 2 MiB or more (the model's activations, gradients and
 * workspace) are 2 MiB-aligned and asked for transparent huge pages: the
 * ops stream through hundreds of MiB per step, and with 4 KiB pages a
 * page walk would start every 4 KiB. Where THP is off, madvise changes
 * nothing. */
enum { HUGE_PAGE = 2 << 20 };

static void *cpu_alloc(const md_backend_t *be, size_t bytes)
{
    if (bytes >= HUGE_PAGE) {
        size_t n = (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
        void *p = aligned_alloc(HUGE_PAGE, n);
        if (p) madvise(p, n, MADV_HUGEPAGE);
        return p;
    }
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    return aligned_alloc(64, n);
}
static void cpu_free(const md_backend_t *be, void *p) { free(p); }

static void cpu_memset0(const md_backend_t *be, void *p, size_t bytes)
{
    PROF_BEGIN;
    if (bytes) memset(p, 0, bytes);
    PROF_END(P_COPY);
}

static void cpu_copy(const md_backend_t *be, void *dst, const void *src, size_t bytes, md_copy_kind_t kind)
{
    PROF_BEGIN;
    blas_single_threaded();   /* before the model's sequence-parallel region: it starts with a copy */
    if (bytes && dst != src) memmove(dst, src, bytes);
    PROF_END(P_COPY);
}

static void cpu_sync(const md_backend_t *be) {}

/* ---- dense ---- */

static void cpu_gemm(const md_backend_t *be, int ta, int tb, double alpha, const md_tensor_t *a,
                     const md_tensor_t *b, double beta, md_tensor_t *c)
{
    PROF_BEGIN;
    int d = is_f64(c, "gemm");
    SAME_DTYPE(a, c, "gemm");
    SAME_DTYPE(b, c, "gemm");
    int64_t m = NROWS(c), n = NCOLS(c);
    int64_t k = ta ? NROWS(a) : NCOLS(a);
    OP_REQUIRE((ta ? NCOLS(a) : NROWS(a)) == m, "gemm");
    OP_REQUIRE((tb ? NCOLS(b) : NROWS(b)) == k, "gemm");
    OP_REQUIRE((tb ? NROWS(b) : NCOLS(b)) == n, "gemm");
    OP_REQUIRE(m < INT_MAX && n < INT_MAX && k < INT_MAX && a->ld < INT_MAX && b->ld < INT_MAX, "gemm");
    if (m == 0 || n == 0) return;
    blas_single_threaded();
    /* Split C into blocks of rows (or, for few rows, of columns) whose size
     * depends only on the shape, never on the thread count: each block is
     * one identical BLAS call whatever thread runs it, so the result is
     * bit-identical for any number of threads. */
    enum { ROW_BLOCK = 1024, COL_BLOCK = 128 };
    int64_t nb = 1, rb = m, cb = n;
    int by_rows = 1;
    if (m >= 2 * ROW_BLOCK) nb = (m + ROW_BLOCK - 1) / ROW_BLOCK, rb = ROW_BLOCK;
    else if (n >= 2 * COL_BLOCK) nb = (n + COL_BLOCK - 1) / COL_BLOCK, cb = COL_BLOCK, by_rows = 0;
    if ((double)m * n * k < 1e6) nb = 1, rb = m, cb = n;   /* not worth a parallel region */
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int own = !d && md_cpu_sgemm_avx512_takes(ta, tb, m, n, k);
    size_t es = d ? sizeof(double) : sizeof(float);
    const char *A = a->data, *Bp = b->data;
    char *C = c->data;
#pragma omp parallel for schedule(static) if (nb > 1 && !omp_in_parallel())
    for (int64_t i = 0; i < nb; i++) {
        int64_t r0 = by_rows ? i * rb : 0, c0 = by_rows ? 0 : i * cb;
        int64_t mi = by_rows ? (m - r0 < rb ? m - r0 : rb) : m, ni = by_rows ? n : (n - c0 < cb ? n - c0 : cb);
        /* rows r0.. of op(a): rows of a, or columns when transposed; likewise columns c0.. of op(b) */
        const char *Ai = A + (size_t)(ta ? r0 : r0 * a->ld) * es;
        const char *Bi = Bp + (size_t)(tb ? c0 * b->ld : c0) * es;
        char *Ci = C + (size_t)(r0 * c->ld + c0) * es;
        if (d)
            cblas_dgemm(CblasRowMajor, TA, TB, (int)mi, (int)ni, (int)k, alpha, (const double *)Ai, (int)a->ld,
                        (const double *)Bi, (int)b->ld, beta, (double *)Ci, (int)c->ld);
        else if (own)
            md_cpu_sgemm_avx512(ta, tb, mi, ni, k, (float)alpha, (const float *)Ai, a->ld, (const float *)Bi, b->ld,
                                (float)beta, (float *)Ci, c->ld);
        else
            cblas_sgemm(CblasRowMajor, TA, TB, (int)mi, (int)ni, (int)k, (float)alpha, (const float *)Ai,
                        (int)a->ld, (const float *)Bi, (int)b->ld, (float)beta, (float *)Ci, (int)c->ld);
    }
    if (md_cpu_prof_on) gemm_prof_add(ta, tb, m, n, k, omp_get_wtime() - prof_t0_);
    PROF_END(P_GEMM);
}

static void cpu_add(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x)
{
    PROF_BEGIN;
    int d = is_f64(y, "add");
    SAME_DTYPE(x, y, "add");
    OP_REQUIRE(NROWS(x) == NROWS(y) && NCOLS(x) == NCOLS(y), "add");
    (d ? md_cpu_add_f64 : md_cpu_add_f32)(y->data, y->ld, x->data, x->ld, NROWS(y), NCOLS(y));
    PROF_END(P_ADD);
}

static void cpu_scale(const md_backend_t *be, md_tensor_t *x, double alpha)
{
    PROF_BEGIN;
    int d = is_f64(x, "scale");
    OP_REQUIRE(x->ld == NCOLS(x), "scale");
    (d ? md_cpu_scale_f64 : md_cpu_scale_f32)(x->data, md_tensor_numel(x), alpha);
    PROF_END(P_SCALE);
}

static double cpu_sumsq(const md_backend_t *be, const md_tensor_t *x)
{
    int d = is_f64(x, "sumsq");
    OP_REQUIRE(x->ld == NCOLS(x), "sumsq");
    return (d ? md_cpu_sumsq_f64 : md_cpu_sumsq_f32)(x->data, md_tensor_numel(x));
}

static void cpu_adamw(const md_backend_t *be, md_tensor_t *p, const md_tensor_t *g, md_tensor_t *m, md_tensor_t *v,
                      int64_t n_decay, const md_adamw_hparams_t *hp)
{
    PROF_BEGIN;
    int d = is_f64(p, "adamw");
    SAME_DTYPE(g, p, "adamw");
    SAME_DTYPE(m, p, "adamw");
    SAME_DTYPE(v, p, "adamw");
    int64_t n = md_tensor_numel(p);
    OP_REQUIRE(md_tensor_numel(g) == n && md_tensor_numel(m) == n && md_tensor_numel(v) == n, "adamw");
    OP_REQUIRE(hp->step >= 1, "adamw");
    (d ? md_cpu_adamw_f64 : md_cpu_adamw_f32)(p->data, g->data, m->data, v->data, n, n_decay, hp);
    PROF_END(P_ADAMW);
}

/* ---- embedding ---- */

static void cpu_embedding_fwd(const md_backend_t *be, md_tensor_t *out, const md_tensor_t *tok,
                              const md_tensor_t *w)
{
    PROF_BEGIN;
    int d = is_f64(out, "embedding_fwd");
    SAME_DTYPE(w, out, "embedding_fwd");
    OP_REQUIRE(tok->dtype == MD_DTYPE_U8 && md_tensor_numel(tok) == NROWS(out), "embedding_fwd");
    OP_REQUIRE(NCOLS(w) == NCOLS(out) && w->ld == NCOLS(w), "embedding_fwd");
    (d ? md_cpu_embedding_fwd_f64 : md_cpu_embedding_fwd_f32)(out->data, out->ld, tok->data, w->data, NROWS(out),
                                                              NCOLS(out));
    PROF_END(P_EMB_F);
}

static void cpu_embedding_bwd(const md_backend_t *be, md_tensor_t *dw, const md_tensor_t *dout,
                              const md_tensor_t *tok)
{
    PROF_BEGIN;
    int d = is_f64(dw, "embedding_bwd");
    SAME_DTYPE(dout, dw, "embedding_bwd");
    OP_REQUIRE(tok->dtype == MD_DTYPE_U8 && md_tensor_numel(tok) == NROWS(dout), "embedding_bwd");
    OP_REQUIRE(NCOLS(dw) == NCOLS(dout) && dw->ld == NCOLS(dw), "embedding_bwd");
    (d ? md_cpu_embedding_bwd_f64 : md_cpu_embedding_bwd_f32)(dw->data, dout->data, dout->ld, tok->data,
                                                              NROWS(dout), NCOLS(dout));
    PROF_END(P_EMB_B);
}

/* ---- RMSNorm ---- */

static void cpu_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *rstd, const md_tensor_t *x,
                            const md_tensor_t *w, double eps)
{
    PROF_BEGIN;
    int d = is_f64(y, "rmsnorm_fwd");
    SAME_DTYPE(x, y, "rmsnorm_fwd");
    SAME_DTYPE(w, y, "rmsnorm_fwd");
    SAME_DTYPE(rstd, y, "rmsnorm_fwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    OP_REQUIRE(NROWS(y) == rows && NCOLS(y) == dim && md_tensor_numel(w) == dim && md_tensor_numel(rstd) == rows,
               "rmsnorm_fwd");
    (d ? md_cpu_rmsnorm_fwd_f64 : md_cpu_rmsnorm_fwd_f32)(y->data, y->ld, rstd->data, x->data, x->ld, w->data, rows,
                                                          dim, eps);
    PROF_END(P_RMS_F);
}

/* counted under rmsnorm_fwd in the profile */
static void cpu_add_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *h, md_tensor_t *y, md_tensor_t *rstd,
                                const md_tensor_t *hin, const md_tensor_t *xadd, const md_tensor_t *w, double eps)
{
    PROF_BEGIN;
    int d = is_f64(y, "add_rmsnorm_fwd");
    const md_tensor_t *all[] = {h, hin, xadd, rstd, w};
    for (int i = 0; i < 5; i++) {
        SAME_DTYPE(all[i], y, "add_rmsnorm_fwd");
        if (i < 3) is_f64(all[i], "add_rmsnorm_fwd");   /* the row-strided views */
    }
    int64_t rows = NROWS(h), dim = NCOLS(h);
    OP_REQUIRE(NROWS(y) == rows && NCOLS(y) == dim && NROWS(hin) == rows && NCOLS(hin) == dim, "add_rmsnorm_fwd");
    OP_REQUIRE(NROWS(xadd) == rows && NCOLS(xadd) == dim, "add_rmsnorm_fwd");
    OP_REQUIRE(md_tensor_numel(w) == dim && md_tensor_numel(rstd) == rows, "add_rmsnorm_fwd");
    (d ? md_cpu_add_rmsnorm_fwd_f64 : md_cpu_add_rmsnorm_fwd_f32)(h->data, h->ld, y->data, y->ld, rstd->data,
                                                                  hin->data, hin->ld, xadd->data, xadd->ld, w->data,
                                                                  rows, dim, eps);
    PROF_END(P_RMS_F);
}

static void cpu_rmsnorm_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                            const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *rstd, int accumulate,
                            md_tensor_t *dx_act)
{
    PROF_BEGIN;
    int d = is_f64(dx, "rmsnorm_bwd");
    SAME_DTYPE(dw, dx, "rmsnorm_bwd");
    SAME_DTYPE(dy, dx, "rmsnorm_bwd");
    SAME_DTYPE(x, dx, "rmsnorm_bwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    OP_REQUIRE(NROWS(dx) == rows && NCOLS(dx) == dim && NROWS(dy) == rows && NCOLS(dy) == dim, "rmsnorm_bwd");
    OP_REQUIRE(md_tensor_numel(w) == dim && md_tensor_numel(dw) == dim && md_tensor_numel(rstd) == rows,
               "rmsnorm_bwd");
    (d ? md_cpu_rmsnorm_bwd_f64 : md_cpu_rmsnorm_bwd_f32)(dx->data, dx->ld, dw->data, dy->data, dy->ld, x->data,
                                                          x->ld, w->data, rstd->data, rows, dim, accumulate);
    if (dx_act) {   /* the CPU stores activations in the model's dtype: a plain copy */
        SAME_DTYPE(dx_act, dx, "rmsnorm_bwd");
        OP_REQUIRE(NROWS(dx_act) == rows && NCOLS(dx_act) == dim, "rmsnorm_bwd");
        size_t es = md_dtype_size(dx->dtype);
        for (int64_t r = 0; r < rows; r++)
            memcpy((char *)dx_act->data + (size_t)(r * dx_act->ld) * es,
                   (const char *)dx->data + (size_t)(r * dx->ld) * es, (size_t)dim * es);
    }
    PROF_END(P_RMS_B);
}

/* ---- conv1d ---- */

static void cpu_conv1d_silu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                                const md_tensor_t *bias, int64_t batch)
{
    PROF_BEGIN;
    int d = is_f64(y, "conv1d_silu_fwd");
    md_cpu_conv_check(y, x, w, bias, batch, "conv1d_silu_fwd");
    int64_t dim = NCOLS(x);
    (d ? md_cpu_conv1d_silu_fwd_f64 : md_cpu_conv1d_silu_fwd_f32)(y->data, y->ld, x->data, x->ld, w->data,
                                                                  bias->data, batch, NROWS(x) / batch, dim,
                                                                  md_tensor_numel(w) / dim);
    PROF_END(P_CONV_F);
}

/* the reference of the fused op (ops.h): the two ops it fuses, x left in
 * xz's first half */
static int cpu_in_proj_conv_fwd(const md_backend_t *be, md_tensor_t *u, md_tensor_t *xz, const md_tensor_t *hn,
                                const md_tensor_t *w_in, const md_tensor_t *w, const md_tensor_t *bias, int64_t batch)
{
    md_tensor_t x = md_tensor_cols(*xz, 0, NCOLS(xz) / 2);
    cpu_gemm(be, 0, 1, 1.0, hn, w_in, 0.0, xz);
    cpu_conv1d_silu_fwd(be, u, &x, w, bias, batch);
    return 1;
}

static void cpu_conv1d_silu_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                                const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                                const md_tensor_t *bias, int64_t batch)
{
    PROF_BEGIN;
    int d = is_f64(dx, "conv1d_silu_bwd");
    md_cpu_conv_check(dx, x, w, bias, batch, "conv1d_silu_bwd");
    md_cpu_conv_check(dy, x, dw, dbias, batch, "conv1d_silu_bwd");
    int64_t dim = NCOLS(x);
    (d ? md_cpu_conv1d_silu_bwd_f64 : md_cpu_conv1d_silu_bwd_f32)(
        dx->data, dx->ld, dw->data, dbias->data, dy->data, dy->ld, x->data, x->ld, w->data, bias->data, batch,
        NROWS(x) / batch, dim, md_tensor_numel(w) / dim);
    PROF_END(P_CONV_B);
}

/* ---- the selective scan ---- */

static void scan_fill(md_cpu_scan_args_t *s, const md_tensor_t *u, const md_tensor_t *delta,
                      const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                      const md_tensor_t *A_log, const md_tensor_t *Bm, const md_tensor_t *Cm, const md_tensor_t *D,
                      const md_tensor_t *z, int64_t batch, const char *op)
{
    memset(s, 0, sizeof *s);
    int64_t E = NCOLS(u), N = NCOLS(Bm), M = NROWS(u);
    OP_REQUIRE(batch >= 1 && M % batch == 0, op);
    OP_REQUIRE(NROWS(z) == M && NCOLS(z) == E, op);
    OP_REQUIRE(NROWS(Bm) == M && NROWS(Cm) == M && NCOLS(Cm) == N && N <= 64, op);
    OP_REQUIRE(md_tensor_numel(A_log) == E * N && md_tensor_numel(D) == E && md_tensor_numel(dt_bias) == E, op);
    const md_tensor_t *all[] = {dt_bias, A_log, Bm, Cm, D, z};
    for (int i = 0; i < 6; i++) SAME_DTYPE(all[i], u, op);
    if (delta) {
        OP_REQUIRE(NROWS(delta) == M && NCOLS(delta) == E, op);
        SAME_DTYPE(delta, u, op);
        s->delta = delta->data, s->ld_delta = delta->ld;
    } else {   /* delta formed from dt_proj's input and weight (ops.h) */
        OP_REQUIRE(dt_low && dt_w && NROWS(dt_low) == M && NCOLS(dt_low) <= MD_CPU_SCAN_MAX_DT_RANK, op);
        OP_REQUIRE(NROWS(dt_w) == E && NCOLS(dt_w) == NCOLS(dt_low) && dt_w->ld == NCOLS(dt_w), op);
        SAME_DTYPE(dt_low, u, op);
        SAME_DTYPE(dt_w, u, op);
        s->dt_low = dt_low->data, s->ld_dt_low = dt_low->ld;
        s->dt_w = dt_w->data, s->dt_rank = NCOLS(dt_w);
    }
    s->batch = batch;
    s->len = M / batch;
    s->d_inner = E;
    s->d_state = N;
    s->u = u->data, s->ld_u = u->ld;
    s->dt_bias = dt_bias->data;
    s->A_log = A_log->data;
    s->Bm = Bm->data, s->ld_B = Bm->ld;
    s->Cm = Cm->data, s->ld_C = Cm->ld;
    s->D = D->data;
    s->z = z->data, s->ld_z = z->ld;
}

static void cpu_scan_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *u, const md_tensor_t *delta,
                         const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                         const md_tensor_t *A_log, const md_tensor_t *Bm,
                         const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                         void *states, void *seg_states)
{
    (void)seg_states;   /* none here (scan_seg_states_size NULL) */
    PROF_BEGIN;
    int d = is_f64(u, "scan_fwd");
    md_cpu_scan_args_t s;
    scan_fill(&s, u, delta, dt_low, dt_w, dt_bias, A_log, Bm, Cm, D, z, batch, "scan_fwd");
    OP_REQUIRE(y || states, "scan_fwd");
    if (y) {
        SAME_DTYPE(u, y, "scan_fwd");
        OP_REQUIRE(NROWS(y) == NROWS(u) && NCOLS(y) == NCOLS(u), "scan_fwd");
        s.y = y->data, s.ld_y = y->ld;
    }
    s.states = states;
    (d ? md_cpu_scan_fwd_f64 : md_cpu_scan_fwd_f32)(&s);
    PROF_END(P_SCAN_F);
}

static size_t cpu_scan_states_size(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                   int64_t d_inner, int64_t d_state)
{
    return (dt == MD_DTYPE_F64 ? md_cpu_scan_states_size_f64 : md_cpu_scan_states_size_f32)(batch, len, d_inner,
                                                                                             d_state);
}

static size_t cpu_scan_bwd_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                     int64_t d_inner, int64_t d_state)
{
    return (dt == MD_DTYPE_F64 ? md_cpu_scan_bwd_workspace_f64 : md_cpu_scan_bwd_workspace_f32)(batch, len, d_inner,
                                                                                                 d_state);
}

static void cpu_scan_bwd(const md_backend_t *be, md_tensor_t *du, md_tensor_t *ddelta, md_tensor_t *dA_log,
                         md_tensor_t *dBm, md_tensor_t *dCm, md_tensor_t *dD, md_tensor_t *dz, md_tensor_t *ddt_bias,
                         md_tensor_t *y, const md_tensor_t *dy, const md_tensor_t *u, const md_tensor_t *delta,
                         const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                         const md_tensor_t *A_log, const md_tensor_t *Bm,
                         const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                         const void *states, const void *seg_states, void *workspace)
{
    (void)seg_states;
    PROF_BEGIN;
    int d = is_f64(du, "scan_bwd");
    md_cpu_scan_args_t s;
    scan_fill(&s, u, delta, dt_low, dt_w, dt_bias, A_log, Bm, Cm, D, z, batch, "scan_bwd");
    const md_tensor_t *outs[] = {du, ddelta, dA_log, dBm, dCm, dD, dz, ddt_bias, dy};
    for (int i = 0; i < 9; i++) SAME_DTYPE(outs[i], u, "scan_bwd");
    int64_t M = NROWS(u), E = s.d_inner, N = s.d_state;
    OP_REQUIRE(NROWS(du) == M && NCOLS(du) == E && NROWS(ddelta) == M && NCOLS(ddelta) == E, "scan_bwd");
    OP_REQUIRE(NROWS(dz) == M && NCOLS(dz) == E && NROWS(dy) == M && NCOLS(dy) == E, "scan_bwd");
    OP_REQUIRE(NROWS(dBm) == M && NCOLS(dBm) == N && NROWS(dCm) == M && NCOLS(dCm) == N, "scan_bwd");
    OP_REQUIRE(md_tensor_numel(dA_log) == E * N && md_tensor_numel(dD) == E && md_tensor_numel(ddt_bias) == E,
               "scan_bwd");
    OP_REQUIRE(workspace != NULL, "scan_bwd");
    s.dy = dy->data, s.ld_dy = dy->ld;
    s.du = du->data, s.ld_du = du->ld;
    s.ddelta = ddelta->data, s.ld_ddelta = ddelta->ld;
    s.dA_log = dA_log->data;
    s.dBm = dBm->data, s.ld_dB = dBm->ld;
    s.dCm = dCm->data, s.ld_dC = dCm->ld;
    s.dD = dD->data;
    s.dz = dz->data, s.ld_dz = dz->ld;
    s.ddt_bias = ddt_bias->data;
    if (y) {   /* the forward's y again (ops.h) */
        SAME_DTYPE(y, u, "scan_bwd");
        OP_REQUIRE(NROWS(y) == M && NCOLS(y) == E, "scan_bwd");
        s.y = y->data, s.ld_y = y->ld;
    }
    s.states = (void *)states;
    s.workspace = workspace;
    (d ? md_cpu_scan_bwd_f64 : md_cpu_scan_bwd_f32)(&s);
    PROF_END(P_SCAN_B);
}

/* ---- cross-entropy ---- */

static size_t cpu_xent_workspace(const md_backend_t *be, int64_t rows) { return md_cpu_xent_workspace(rows); }

static double cpu_xent(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                       const md_tensor_t *targets, double grad_scale, int64_t *n_counted, void *workspace)
{
    PROF_BEGIN;
    int d = is_f64(logits, "xent");
    int64_t rows = NROWS(logits), vocab = NCOLS(logits);
    OP_REQUIRE(targets->dtype == MD_DTYPE_U8 && md_tensor_numel(targets) == rows, "xent");
    if (dlogits) {
        SAME_DTYPE(dlogits, logits, "xent");
        OP_REQUIRE(NROWS(dlogits) == rows && NCOLS(dlogits) == vocab, "xent");
    }
    OP_REQUIRE(workspace != NULL, "xent");
    double loss = (d ? md_cpu_xent_f64 : md_cpu_xent_f32)(dlogits ? dlogits->data : NULL, dlogits ? dlogits->ld : 0,
                                                          logits->data, logits->ld, targets->data, rows, vocab,
                                                          grad_scale, n_counted, workspace);
    PROF_END(P_XENT);
    return loss;
}

static void cpu_xent_acc(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                         const md_tensor_t *targets, double grad_scale, double *acc, void *workspace)
{
    int64_t n = 0;
    acc[0] += cpu_xent(be, dlogits, logits, targets, grad_scale, &n, workspace);
    acc[1] += (double)n;
}

/* ---- Transformer: RoPE, causal attention, SwiGLU ---- */

/* q, k, v, o-like (B*L, H*dh) views; returns dh. */
static int64_t attn_check(const md_tensor_t *x, const md_tensor_t *ref, int64_t batch, int64_t n_heads,
                          const char *op)
{
    SAME_DTYPE(x, ref, op);
    OP_REQUIRE(x->device == MD_DEVICE_CPU && x->ld >= NCOLS(x), op);
    OP_REQUIRE(batch >= 1 && n_heads >= 1 && NROWS(x) == NROWS(ref) && NROWS(x) % batch == 0, op);
    OP_REQUIRE(NCOLS(x) == NCOLS(ref) && NCOLS(x) % n_heads == 0, op);
    int64_t hd = NCOLS(x) / n_heads;
    OP_REQUIRE(hd % 2 == 0 && hd <= MD_CPU_ATTN_MAX_HD, op);
    OP_REQUIRE(NROWS(x) / batch * hd < INT_MAX && x->ld < INT_MAX, op);
    return hd;
}

static void cpu_rope(const md_backend_t *be, md_tensor_t *x, int64_t batch, int64_t n_heads, double theta,
                     int inverse)
{
    PROF_BEGIN;
    int d = is_f64(x, "rope");
    int64_t hd = attn_check(x, x, batch, n_heads, "rope");
    (d ? md_cpu_rope_f64 : md_cpu_rope_f32)(x->data, x->ld, batch, NROWS(x) / batch, n_heads, hd, theta, inverse);
    PROF_END(P_ROPE);
}

static void cpu_attention_fwd(const md_backend_t *be, md_tensor_t *o, md_tensor_t *lse, const md_tensor_t *q,
                              const md_tensor_t *k, const md_tensor_t *v, int64_t batch, int64_t n_heads,
                              double scale, void *workspace)
{
    PROF_BEGIN;
    int d = is_f64(q, "attention_fwd");
    int64_t hd = attn_check(q, q, batch, n_heads, "attention_fwd");
    attn_check(k, q, batch, n_heads, "attention_fwd");
    attn_check(v, q, batch, n_heads, "attention_fwd");
    attn_check(o, q, batch, n_heads, "attention_fwd");
    SAME_DTYPE(lse, q, "attention_fwd");
    OP_REQUIRE(md_tensor_numel(lse) == NROWS(q) * n_heads && lse->ld == NCOLS(lse), "attention_fwd");
    blas_single_threaded();
    (d ? md_cpu_attention_fwd_f64 : md_cpu_attention_fwd_f32)(o->data, o->ld, lse->data, q->data, q->ld, k->data,
                                                              k->ld, v->data, v->ld, batch, NROWS(q) / batch,
                                                              n_heads, hd, scale);
    PROF_END(P_ATTN_F);
}

/* the backward's alone: the forward needs none */
static size_t cpu_attention_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                      int64_t n_heads, int64_t head_dim)
{
    return md_cpu_attention_bwd_workspace(md_dtype_size(dt), batch, len, n_heads);
}

static void cpu_attention_bwd(const md_backend_t *be, md_tensor_t *dq, md_tensor_t *dk, md_tensor_t *dv,
                              const md_tensor_t *dout, const md_tensor_t *q, const md_tensor_t *k,
                              const md_tensor_t *v, const md_tensor_t *o, const md_tensor_t *lse, int64_t batch,
                              int64_t n_heads, double scale, void *workspace)
{
    PROF_BEGIN;
    int d = is_f64(q, "attention_bwd");
    int64_t hd = attn_check(q, q, batch, n_heads, "attention_bwd");
    const md_tensor_t *all[] = {dq, dk, dv, dout, k, v, o};
    for (int i = 0; i < 7; i++) attn_check(all[i], q, batch, n_heads, "attention_bwd");
    SAME_DTYPE(lse, q, "attention_bwd");
    OP_REQUIRE(md_tensor_numel(lse) == NROWS(q) * n_heads && workspace != NULL, "attention_bwd");
    blas_single_threaded();
    (d ? md_cpu_attention_bwd_f64 : md_cpu_attention_bwd_f32)(
        dq->data, dq->ld, dk->data, dk->ld, dv->data, dv->ld, dout->data, dout->ld, q->data, q->ld, k->data, k->ld,
        v->data, v->ld, o->data, o->ld, lse->data, batch, NROWS(q) / batch, n_heads, hd, scale, workspace);
    PROF_END(P_ATTN_B);
}

static void swiglu_check(const md_tensor_t *x, const md_tensor_t *ref, const char *op)
{
    SAME_DTYPE(x, ref, op);
    OP_REQUIRE(x->device == MD_DEVICE_CPU && x->ld >= NCOLS(x), op);
    OP_REQUIRE(NROWS(x) == NROWS(ref) && NCOLS(x) == NCOLS(ref), op);
}

static void cpu_swiglu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *gate, const md_tensor_t *up)
{
    PROF_BEGIN;
    int d = is_f64(y, "swiglu_fwd");
    swiglu_check(gate, y, "swiglu_fwd");
    swiglu_check(up, y, "swiglu_fwd");
    (d ? md_cpu_swiglu_fwd_f64 : md_cpu_swiglu_fwd_f32)(y->data, y->ld, gate->data, gate->ld, up->data, up->ld,
                                                        NROWS(y), NCOLS(y));
    PROF_END(P_SWIGLU_F);
}

static void cpu_swiglu_bwd(const md_backend_t *be, md_tensor_t *dgate, md_tensor_t *dup, const md_tensor_t *dy,
                           const md_tensor_t *gate, const md_tensor_t *up)
{
    PROF_BEGIN;
    int d = is_f64(dy, "swiglu_bwd");
    const md_tensor_t *all[] = {dgate, dup, gate, up};
    for (int i = 0; i < 4; i++) swiglu_check(all[i], dy, "swiglu_bwd");
    (d ? md_cpu_swiglu_bwd_f64 : md_cpu_swiglu_bwd_f32)(dgate->data, dgate->ld, dup->data, dup->ld, dy->data, dy->ld,
                                                        gate->data, gate->ld, up->data, up->ld, NROWS(dy), NCOLS(dy));
    PROF_END(P_SWIGLU_B);
}

static const md_backend_t cpu_backend = {
    .name = "cpu",
    .device = MD_DEVICE_CPU,
    .ctx = NULL,
    .scan_max_dt_rank_infer = MD_CPU_SCAN_MAX_DT_RANK,
    .scan_max_dt_rank_train = MD_CPU_SCAN_MAX_DT_RANK,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset0 = cpu_memset0,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .add = cpu_add,
    .scale = cpu_scale,
    .sumsq = cpu_sumsq,
    .adamw = cpu_adamw,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .add_rmsnorm_fwd = cpu_add_rmsnorm_fwd,
    .linear_add_rmsnorm_fwd = md_cpu_linear_add_rmsnorm_fwd,
    .conv1d_silu_fwd = cpu_conv1d_silu_fwd,
    .in_proj_conv_fwd = cpu_in_proj_conv_fwd,
    .conv1d_silu_bwd = cpu_conv1d_silu_bwd,
    .scan_fwd = cpu_scan_fwd,
    .scan_states_size = cpu_scan_states_size,
    .scan_states_kept_size = cpu_scan_states_size,
    .scan_bwd_workspace = cpu_scan_bwd_workspace,
    .scan_bwd = cpu_scan_bwd,
    .xent_workspace = cpu_xent_workspace,
    .xent = cpu_xent,
    .xent_acc = cpu_xent_acc,
    .rope = cpu_rope,
    .attention_fwd = cpu_attention_fwd,
    .attention_workspace = cpu_attention_workspace,
    .attention_bwd = cpu_attention_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .bias_add = md_cpu_op_bias_add,
    .bias_bwd = md_cpu_op_bias_bwd,
    .layernorm_fwd = md_cpu_op_layernorm_fwd,
    .layernorm_bwd = md_cpu_op_layernorm_bwd,
    .gelu_fwd = md_cpu_op_gelu_fwd,
    .gelu_bwd = md_cpu_op_gelu_bwd,
    .sin_fwd = md_cpu_op_sin_fwd,
    .sin_bwd = md_cpu_op_sin_bwd,
    .hyena_modulate = md_cpu_op_hyena_modulate,
    .dwconv_fwd = md_cpu_op_dwconv_fwd,
    .dwconv_bwd = md_cpu_op_dwconv_bwd,
    .fftconv_workspace = md_cpu_op_fftconv_workspace,
    .fftconv_spectra_bytes = md_cpu_op_fftconv_spectra_bytes,
    .fftconv_fwd = md_cpu_op_fftconv_fwd,
    .fftconv_bwd = md_cpu_op_fftconv_bwd,
    .linear_fwd = md_cpu_linear_fwd,
    .linear_bwd_dx = md_cpu_linear_bwd_dx,
    .lowrank_bwd = md_cpu_lowrank_bwd,
    .x_dt_proj_fwd = md_cpu_x_dt_proj_fwd,
};

const md_backend_t *md_backend_cpu(void) { return &cpu_backend; }
