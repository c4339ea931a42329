#include "backend/cpu/cpu_linear.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static void require(int cond, const char *op, const char *what)
{
    if (!cond) {
        md_error("backend cpu, op %s: internal error, %s", op, what);
        abort();
    }
}

/* y = residual, row by row (both host views of one shape). */
static void copy_rows(md_tensor_t *y, const md_tensor_t *r)
{
    int64_t rows = md_tensor_nrows(y), cols = md_tensor_ncols(y);
    size_t es = md_dtype_size(y->dtype);
    require(md_tensor_nrows(r) == rows && md_tensor_ncols(r) == cols && r->dtype == y->dtype, "linear_fwd",
            "the residual's shape or dtype differs from y's");
    for (int64_t i = 0; i < rows; i++)
        memcpy((char *)y->data + (size_t)(i * y->ld) * es, (const char *)r->data + (size_t)(i * r->ld) * es,
               (size_t)cols * es);
}

void md_cpu_linear_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                       const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act)
{
    if (act == MD_ACT_NONE) {
        require(!pre_act, "linear_fwd", "pre_act given without an activation");
        if (residual && residual->data != y->data) copy_rows(y, residual);
        be->gemm(be, 0, 1, 1.0, x, w, residual ? 1.0 : 0.0, y);
        if (bias) be->bias_add(be, y, bias);
        return;
    }
    require(act == MD_ACT_GELU_TANH && pre_act && !residual, "linear_fwd", "unknown activation or arguments");
    be->gemm(be, 0, 1, 1.0, x, w, 0.0, pre_act);
    if (bias) be->bias_add(be, pre_act, bias);
    be->gelu_fwd(be, y, pre_act);
}

void md_cpu_linear_bwd_dx(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *w,
                          const md_tensor_t *pre_act, md_act_t act)
{
    require(act == MD_ACT_NONE ? !pre_act : act == MD_ACT_GELU_TANH && pre_act != NULL, "linear_bwd_dx",
            "unknown activation or a missing pre_act");
    be->gemm(be, 0, 0, 1.0, dy, w, 0.0, dx);
    if (act == MD_ACT_GELU_TANH) be->gelu_bwd(be, dx, dx, pre_act);
}

void md_cpu_linear_add_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *h_out, md_tensor_t *y, md_tensor_t *rstd,
                                   const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *h_in,
                                   const md_tensor_t *nw, double eps)
{
    require(h_out->data != h_in->data && h_out->data != x->data && y->data != h_in->data && y->data != x->data,
            "linear_add_rmsnorm_fwd", "h_out or y aliases an input");
    be->gemm(be, 0, 1, 1.0, x, w, 0.0, h_out);
    be->add_rmsnorm_fwd(be, h_out, y, rstd, h_out, h_in, nw, eps);
}

void md_cpu_lowrank_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                        const md_tensor_t *x, const md_tensor_t *w)
{
    require(dx->data != dy->data && dx->data != x->data && dx->data != w->data && dw->data != dy->data &&
                dw->data != x->data && dw->data != w->data,
            "lowrank_bwd", "dx or dw aliases an input");
    be->gemm(be, 0, 0, 1.0, dy, w, 0.0, dx);
    be->gemm(be, 1, 0, 1.0, dy, x, 1.0, dw);
}

void md_cpu_x_dt_proj_fwd(const md_backend_t *be, md_tensor_t *xdbl, md_tensor_t *delta, const md_tensor_t *u,
                          const md_tensor_t *w_x, const md_tensor_t *w_dt)
{
    const int64_t R = md_tensor_ncols(w_dt);
    require(R <= md_tensor_ncols(xdbl), "x_dt_proj_fwd", "dt_proj's rank exceeds x_proj's outputs");
    md_tensor_t dt_in = md_tensor_cols(*xdbl, 0, R);
    be->gemm(be, 0, 1, 1.0, u, w_x, 0.0, xdbl);
    be->gemm(be, 0, 1, 1.0, &dt_in, w_dt, 0.0, delta);
}
