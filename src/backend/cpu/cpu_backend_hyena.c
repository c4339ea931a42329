/* The Hyena section of the CPU backend's table (ops.h): unwraps and checks
 * the tensors and calls the f32 or f64 kernel of cpu_hyena.h. */
#include "backend/cpu/cpu_backend_internal.h"
#include "backend/cpu/cpu_hyena.h"

/* x is an (M, C) view of ref's dtype with the rows and columns given */
static void rc_check(const md_tensor_t *x, const md_tensor_t *ref, int64_t rows, int64_t cols, const char *op)
{
    SAME_DTYPE(x, ref, op);
    OP_REQUIRE(x->device == MD_DEVICE_CPU && x->ld >= NCOLS(x), op);
    OP_REQUIRE(NROWS(x) == rows && NCOLS(x) == cols, op);
}

static void vec_check(const md_tensor_t *x, const md_tensor_t *ref, int64_t n, const char *op)
{
    SAME_DTYPE(x, ref, op);
    OP_REQUIRE(x->device == MD_DEVICE_CPU && md_tensor_numel(x) == n && x->ld == NCOLS(x), op);
}

void md_cpu_op_bias_add(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *bias)
{
    PROF_BEGIN;
    int d = is_f64(y, "bias_add");
    vec_check(bias, y, NCOLS(y), "bias_add");
    (d ? md_cpu_bias_add_f64 : md_cpu_bias_add_f32)(y->data, y->ld, bias->data, NROWS(y), NCOLS(y));
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_bias_bwd(const md_backend_t *be, md_tensor_t *dbias, const md_tensor_t *dy)
{
    PROF_BEGIN;
    int d = is_f64(dy, "bias_bwd");
    vec_check(dbias, dy, NCOLS(dy), "bias_bwd");
    (d ? md_cpu_bias_bwd_f64 : md_cpu_bias_bwd_f32)(dbias->data, dy->data, dy->ld, NROWS(dy), NCOLS(dy));
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_layernorm_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *mean, md_tensor_t *rstd,
                             const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *b, double eps)
{
    PROF_BEGIN;
    int d = is_f64(x, "layernorm_fwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    rc_check(y, x, rows, dim, "layernorm_fwd");
    vec_check(mean, x, rows, "layernorm_fwd");
    vec_check(rstd, x, rows, "layernorm_fwd");
    vec_check(w, x, dim, "layernorm_fwd");
    vec_check(b, x, dim, "layernorm_fwd");
    (d ? md_cpu_layernorm_fwd_f64 : md_cpu_layernorm_fwd_f32)(y->data, y->ld, mean->data, rstd->data, x->data, x->ld,
                                                              w->data, b->data, rows, dim, eps);
    PROF_END(P_LN_F);
}

void md_cpu_op_layernorm_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *db,
                             const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                             const md_tensor_t *mean, const md_tensor_t *rstd, int accumulate)
{
    PROF_BEGIN;
    int d = is_f64(x, "layernorm_bwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    rc_check(dx, x, rows, dim, "layernorm_bwd");
    rc_check(dy, x, rows, dim, "layernorm_bwd");
    vec_check(mean, x, rows, "layernorm_bwd");
    vec_check(rstd, x, rows, "layernorm_bwd");
    const md_tensor_t *vecs[] = {w, dw, db};
    for (int i = 0; i < 3; i++) vec_check(vecs[i], x, dim, "layernorm_bwd");
    (d ? md_cpu_layernorm_bwd_f64 : md_cpu_layernorm_bwd_f32)(dx->data, dx->ld, dw->data, db->data, dy->data, dy->ld,
                                                              x->data, x->ld, w->data, mean->data, rstd->data, rows,
                                                              dim, accumulate);
    PROF_END(P_LN_B);
}

void md_cpu_op_gelu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x)
{
    PROF_BEGIN;
    int d = is_f64(x, "gelu_fwd");
    rc_check(y, x, NROWS(x), NCOLS(x), "gelu_fwd");
    (d ? md_cpu_gelu_fwd_f64 : md_cpu_gelu_fwd_f32)(y->data, y->ld, x->data, x->ld, NROWS(x), NCOLS(x));
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_gelu_bwd(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *x)
{
    PROF_BEGIN;
    int d = is_f64(x, "gelu_bwd");
    rc_check(dx, x, NROWS(x), NCOLS(x), "gelu_bwd");
    rc_check(dy, x, NROWS(x), NCOLS(x), "gelu_bwd");
    (d ? md_cpu_gelu_bwd_f64 : md_cpu_gelu_bwd_f32)(dx->data, dx->ld, dy->data, dy->ld, x->data, x->ld, NROWS(x),
                                                    NCOLS(x));
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_sin_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *freq)
{
    PROF_BEGIN;
    int d = is_f64(x, "sin_fwd");
    rc_check(y, x, NROWS(x), NCOLS(x), "sin_fwd");
    vec_check(freq, x, NCOLS(x), "sin_fwd");
    (d ? md_cpu_sin_fwd_f64 : md_cpu_sin_fwd_f32)(y->data, y->ld, x->data, x->ld, freq->data, NROWS(x), NCOLS(x));
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_sin_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dfreq, md_tensor_t *dbias,
                       const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *freq)
{
    PROF_BEGIN;
    int d = is_f64(x, "sin_bwd");
    rc_check(dx, x, NROWS(x), NCOLS(x), "sin_bwd");
    rc_check(dy, x, NROWS(x), NCOLS(x), "sin_bwd");
    vec_check(freq, x, NCOLS(x), "sin_bwd");
    vec_check(dfreq, x, NCOLS(x), "sin_bwd");
    (d ? md_cpu_sin_bwd_f64 : md_cpu_sin_bwd_f32)(dx->data, dx->ld, dfreq->data, dy->data, dy->ld, x->data, x->ld,
                                                  freq->data, NROWS(x), NCOLS(x));
    PROF_END(P_HYENA_EW);
    if (dbias) md_cpu_op_bias_bwd(be, dbias, dx);
}

void md_cpu_op_hyena_modulate(const md_backend_t *be, md_tensor_t *k, int64_t l_max, double target, double fast_pct,
                              double slow_pct)
{
    PROF_BEGIN;
    int d = is_f64(k, "hyena_modulate");
    OP_REQUIRE(k->ld == NCOLS(k) && l_max >= NROWS(k) && target > 0 && fast_pct > 0 && slow_pct > 0,
               "hyena_modulate");
    (d ? md_cpu_hyena_modulate_f64 : md_cpu_hyena_modulate_f32)(k->data, NROWS(k), NCOLS(k), l_max, target, fast_pct,
                                                                slow_pct);
    PROF_END(P_HYENA_EW);
}

void md_cpu_op_dwconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                          const md_tensor_t *bias, int64_t batch)
{
    PROF_BEGIN;
    int d = is_f64(x, "dwconv_fwd");
    md_cpu_conv_check(y, x, w, bias, batch, "dwconv_fwd");
    OP_REQUIRE(y->data != x->data, "dwconv_fwd");
    int64_t dim = NCOLS(x);
    (d ? md_cpu_dwconv_fwd_f64 : md_cpu_dwconv_fwd_f32)(y->data, y->ld, x->data, x->ld, w->data, bias->data, batch,
                                                        NROWS(x) / batch, dim, md_tensor_numel(w) / dim);
    PROF_END(P_DWCONV_F);
}

void md_cpu_op_dwconv_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                          const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w, int64_t batch)
{
    PROF_BEGIN;
    int d = is_f64(x, "dwconv_bwd");
    md_cpu_conv_check(dx, x, w, dbias, batch, "dwconv_bwd");
    md_cpu_conv_check(dy, x, dw, dbias, batch, "dwconv_bwd");
    int64_t dim = NCOLS(x);
    (d ? md_cpu_dwconv_bwd_f64 : md_cpu_dwconv_bwd_f32)(dx->data, dx->ld, dw->data, dbias->data, dy->data, dy->ld,
                                                        x->data, x->ld, w->data, batch, NROWS(x) / batch, dim,
                                                        md_tensor_numel(w) / dim);
    PROF_END(P_DWCONV_B);
}

size_t md_cpu_op_fftconv_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                   int64_t channels)
{
    return (dt == MD_DTYPE_F64 ? md_cpu_fftconv_workspace_f64 : md_cpu_fftconv_workspace_f32)(len, channels);
}

/* The CPU transforms sequence by sequence inside its workspace and keeps
 * nothing for the backward: fftconv_fwd/bwd ignore `spectra`. */
size_t md_cpu_op_fftconv_spectra_bytes(const md_backend_t *be, int64_t batch, int64_t len, int64_t channels)
{
    return 0;
}

static void fftconv_fill(md_cpu_fftconv_args_t *s, const md_tensor_t *x0, const md_tensor_t *x1,
                         const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D, int64_t batch,
                         void *workspace, const char *op)
{
    memset(s, 0, sizeof *s);
    int64_t M = NROWS(x0), C = NCOLS(x0);
    OP_REQUIRE(batch >= 1 && M % batch == 0 && workspace != NULL, op);
    rc_check(x1, x0, M, C, op);
    rc_check(v, x0, M, C, op);
    rc_check(k, x0, M / batch, C, op);
    OP_REQUIRE(k->ld == C, op);
    vec_check(D, x0, C, op);
    s->batch = batch, s->len = M / batch, s->channels = C;
    s->x0 = x0->data, s->ld_x0 = x0->ld;
    s->x1 = x1->data, s->ld_x1 = x1->ld;
    s->v = v->data, s->ld_v = v->ld;
    s->k = k->data, s->D = D->data;
    s->workspace = workspace;
}

void md_cpu_op_fftconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x0, const md_tensor_t *x1,
                           const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D, int64_t batch,
                           void *workspace, void *spectra)
{
    PROF_BEGIN;
    int d = is_f64(x0, "fftconv_fwd");
    md_cpu_fftconv_args_t s;
    fftconv_fill(&s, x0, x1, v, k, D, batch, workspace, "fftconv_fwd");
    rc_check(y, x0, NROWS(x0), NCOLS(x0), "fftconv_fwd");
    s.y = y->data, s.ld_y = y->ld;
    (d ? md_cpu_fftconv_fwd_f64 : md_cpu_fftconv_fwd_f32)(&s);
    PROF_END(P_FFTCONV_F);
}

void md_cpu_op_fftconv_bwd(const md_backend_t *be, md_tensor_t *dx0, md_tensor_t *dx1, md_tensor_t *dv,
                           md_tensor_t *dk, md_tensor_t *dD, const md_tensor_t *dy, const md_tensor_t *x0,
                           const md_tensor_t *x1, const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D,
                           int64_t batch, void *workspace, const void *spectra)
{
    PROF_BEGIN;
    int d = is_f64(x0, "fftconv_bwd");
    md_cpu_fftconv_args_t s;
    fftconv_fill(&s, x0, x1, v, k, D, batch, workspace, "fftconv_bwd");
    int64_t M = NROWS(x0), C = NCOLS(x0);
    const md_tensor_t *mats[] = {dx0, dx1, dv, dy};
    for (int i = 0; i < 4; i++) rc_check(mats[i], x0, M, C, "fftconv_bwd");
    rc_check(dk, x0, M / batch, C, "fftconv_bwd");
    OP_REQUIRE(dk->ld == C, "fftconv_bwd");
    vec_check(dD, x0, C, "fftconv_bwd");
    s.dy = dy->data, s.ld_dy = dy->ld;
    s.dx0 = dx0->data, s.ld_dx0 = dx0->ld;
    s.dx1 = dx1->data, s.ld_dx1 = dx1->ld;
    s.dv = dv->data, s.ld_dv = dv->ld;
    s.dk = dk->data, s.dD = dD->data;
    (d ? md_cpu_fftconv_bwd_f64 : md_cpu_fftconv_bwd_f32)(&s);
    PROF_END(P_FFTCONV_B);
}
