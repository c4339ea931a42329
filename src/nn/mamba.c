#include "nn/mamba.h"

#include <stdlib.h>

#include "util/log.h"

static md_tensor_t mat(const md_block_ctx_t *c, void *p, int64_t rows, int64_t cols)
{
    return md_tensor_2d(p, c->dtype, c->be->device, rows, cols);
}

/* a matrix of the activation dtype */
static md_tensor_t amat(const md_block_ctx_t *c, void *p, int64_t rows, int64_t cols)
{
    return md_tensor_2d(p, c->adtype, c->be->device, rows, cols);
}

md_tensor_t md_param_view_as(const md_block_ctx_t *c, void *base, md_dtype_t dt, int layer, md_param_role_t role)
{
    const md_param_t *p = md_params_get(c->reg, layer, role);
    if (!p) {
        md_error("model: internal error, no parameter of role %d in layer %d", (int)role, layer);
        abort();
    }
    void *data = (char *)base + (size_t)p->offset * md_dtype_size(dt);
    if (p->ndim == 1) return md_tensor_1d(data, dt, c->be->device, p->shape[0]);
    return md_tensor_2d(data, dt, c->be->device, p->shape[0], p->numel / p->shape[0]);
}

md_tensor_t md_param_view(const md_block_ctx_t *c, void *base, int layer, md_param_role_t role)
{
    return md_param_view_as(c, base, c->dtype, layer, role);
}

static size_t round64b(size_t n) { return (n + 63) & ~(size_t)63; }

size_t md_block_set_bytes_dt(const int64_t *cols, const md_dtype_t *dts, int n, int64_t rows)
{
    size_t b = 0;
    for (int i = 0; i < n; i++) b += round64b((size_t)(rows * cols[i]) * md_dtype_size(dts[i]));
    return b;
}

void md_block_slice_dt(const md_block_ctx_t *c, void *base, const int64_t *cols, const md_dtype_t *dts, int n,
                       void **out)
{
    size_t rows = (size_t)(c->max_batch * c->max_len);
    char *p = base;
    for (int i = 0; i < n; i++) {
        size_t es = md_dtype_size(dts[i]);
        out[i] = p + (size_t)(c->r0 * cols[i]) * es;
        p += round64b(rows * (size_t)cols[i] * es);
    }
}

enum { N_ACTS = 9 };

/* sizes of the sub-buffers in bytes, in carve order */
static void acts_sizes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t B, int64_t L,
                       md_acts_plan_t plan, size_t *s)
{
    int64_t M = B * L, E = cfg->d_inner, X = cfg->dt_rank + 2 * cfg->d_state;
    md_dtype_t adt = md_act_dtype(be, dt);
    size_t es = md_dtype_size(adt);
    s[0] = (size_t)M * md_dtype_size(dt); /* rstd */
    s[1] = (size_t)(M * 2 * E) * es; /* xz */
    s[2] = (size_t)(M * E) * es;     /* u */
    s[3] = (size_t)(M * X) * es;     /* xdbl */
    s[4] = (size_t)(M * E) * es;     /* delta */
    s[5] = (size_t)(M * E) * es;     /* y (and, without hn's own, hn before it: md_mamba_fwd) */
    /* the whole batch at once, or sequence by sequence at a fixed stride;
     * keeping every layer's, each layer's kept part apart and the last
     * one's whole buffer (md_mamba_states_stride) */
    size_t whole = be->scan_states_size(be, adt, B, L, E, cfg->d_state);
    size_t per_seq = (size_t)B * round64b(be->scan_states_size(be, adt, 1, L, E, cfg->d_state));
    size_t one = whole > per_seq ? whole : per_seq;
    s[6] = plan == MD_ACTS_FORWARD_ONLY ? 0 : one;
    if (plan == MD_ACTS_SHARED_STATES)
        s[6] += (size_t)(cfg->n_layer - 1) * md_mamba_states_stride(cfg, be, dt, B, L, plan);
    s[7] = md_acts_per_layer(plan) ? (size_t)(M * cfg->d_model) * es : 0; /* hn */
    /* the segment states, where each layer keeps its set: the plans that
     * recompute exist to save memory, and these cost 16x the states */
    s[8] = plan == MD_ACTS_PER_LAYER && be->scan_seg_states_size
               ? be->scan_seg_states_size(be, adt, B, L, E, cfg->d_state)
               : 0;
}

size_t md_mamba_states_stride(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                              int64_t max_len, md_acts_plan_t plan)
{
    if (plan != MD_ACTS_SHARED_STATES) return 0;
    md_dtype_t adt = md_act_dtype(be, dt);
    int64_t E = cfg->d_inner, N = cfg->d_state;
    /* Sequences one per call (the CPU's threads) lay theirs at the stride
     * of a whole buffer (block_arch.c): where they do, that is all kept. */
    size_t whole = round64b(be->scan_states_kept_size(be, adt, max_batch, max_len, E, N));
    size_t per_seq = (size_t)max_batch * round64b(be->scan_states_kept_size(be, adt, 1, max_len, E, N));
    return whole > per_seq ? whole : per_seq;
}

size_t md_mamba_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                           int64_t max_len, md_acts_plan_t plan)
{
    size_t s[N_ACTS], n = 0;
    acts_sizes(cfg, be, dt, max_batch, max_len, plan, s);
    for (int i = 0; i < N_ACTS; i++) n += round64b(s[i]);
    return n;
}

void md_mamba_acts_carve(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                         int64_t max_len, md_acts_plan_t plan, void *base, md_mamba_acts_t *a)
{
    size_t s[N_ACTS];
    acts_sizes(cfg, be, dt, max_batch, max_len, plan, s);
    void **slot[N_ACTS] = {&a->rstd, &a->xz, &a->u, &a->xdbl, &a->delta, &a->y, &a->states, &a->hn, &a->seg_states};
    char *p = base;
    for (int i = 0; i < N_ACTS; i++) {
        *slot[i] = p;
        p += round64b(s[i]);
    }
    if (!s[7]) a->hn = NULL;   /* hn shares a slot (mamba.h) */
    if (!s[8]) a->seg_states = NULL;
}

enum { N_SCRATCH = 3 };

static void scratch_sizes(const md_config_t *cfg, md_dtype_t dt, int64_t M, size_t *s)
{
    int64_t E = cfg->d_inner, X = cfg->dt_rank + 2 * cfg->d_state;
    size_t es = md_dtype_size(dt);
    s[0] = (size_t)(M * 2 * E) * es; /* dxz */
    s[1] = (size_t)(M * E) * es;     /* du */
    s[2] = (size_t)(M * X) * es;     /* dxdbl */
}

size_t md_mamba_scratch_bytes(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows)
{
    size_t s[N_SCRATCH], n = 0;
    scratch_sizes(cfg, dt, max_rows, s);
    for (int i = 0; i < N_SCRATCH; i++) n += round64b(s[i]);
    return n;
}

void md_mamba_scratch_carve(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows, void *base,
                            md_mamba_scratch_t *sc)
{
    size_t s[N_SCRATCH];
    scratch_sizes(cfg, dt, max_rows, s);
    void **slot[N_SCRATCH] = {&sc->dxz, &sc->du, &sc->dxdbl};
    char *p = base;
    for (int i = 0; i < N_SCRATCH; i++) {
        *slot[i] = p;
        p += round64b(s[i]);
    }
}

/* One block's tensors, viewed in the parameter or the gradient buffer;
 * the GEMM weights (in_proj, x_proj, dt_w, out_proj) in gemm_base, of
 * dtype gemm_dt (the parameters' copies for the GEMMs, or the gradients) */
typedef struct {
    md_tensor_t norm_w, in_proj, conv_w, conv_b, x_proj, dt_w, dt_b, A_log, D, out_proj;
} mamba_tensors_t;

static mamba_tensors_t mamba_tensors(const md_block_ctx_t *c, void *base, void *gemm_base, md_dtype_t gemm_dt,
                                     int layer)
{
    mamba_tensors_t t = {
        .norm_w = md_param_view(c, base, layer, MD_ROLE_NORM),
        .in_proj = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_IN_PROJ),
        .conv_w = md_param_view(c, base, layer, MD_ROLE_CONV_W),
        .conv_b = md_param_view(c, base, layer, MD_ROLE_CONV_B),
        .x_proj = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_X_PROJ),
        .dt_w = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_DT_PROJ_W),
        .dt_b = md_param_view(c, base, layer, MD_ROLE_DT_PROJ_B),
        .A_log = md_param_view(c, base, layer, MD_ROLE_A_LOG),
        .D = md_param_view(c, base, layer, MD_ROLE_D),
        .out_proj = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_OUT_PROJ),
    };
    return t;
}

/* Whether the scan forms delta itself from dt_proj's input and weight
 * (ops.h): then delta is never stored and dt_proj's forward product goes;
 * else x_dt_proj_fwd writes delta with xdbl before the scan. The
 * backward's call decides for training (forward_only 0), as its forward
 * did. */
static int scan_forms_delta(const md_block_ctx_t *c, int forward_only)
{
    return md_scan_forms_delta(c->be, c->cfg->dt_rank, forward_only);
}

/* Whether the backward takes y from the scan's backward instead of the
 * set: with one set for all layers, refilled by a recomputed forward
 * before each backward, that forward then skips the scan's output (ops.h:
 * scan_fwd with y NULL, scan_bwd's y), which costs the backward a store.
 * Per-layer sets keep the forward's y, which it had to make anyway. */
static int y_from_backward(const md_block_ctx_t *c) { return md_acts_shared(c->acts_plan); }

void md_mamba_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, const md_mamba_acts_t *a)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, E = cfg->d_inner, N = cfg->d_state, R = cfg->dt_rank;
    mamba_tensors_t w = mamba_tensors(c, c->params, c->wparams, c->adtype, layer);

    md_tensor_t hin = mat(c, (void *)h_in, M, d);
    md_tensor_t rstd = md_tensor_1d(a->rstd, c->dtype, be->device, M);
    md_tensor_t xz = amat(c, a->xz, M, 2 * E), u = amat(c, a->u, M, E);
    md_tensor_t xdbl = amat(c, a->xdbl, M, R + 2 * N), delta = amat(c, a->delta, M, E), y = amat(c, a->y, M, E);
    md_tensor_t x = md_tensor_cols(xz, 0, E), z = md_tensor_cols(xz, E, E);
    md_tensor_t dt_in = md_tensor_cols(xdbl, 0, R), Bm = md_tensor_cols(xdbl, R, N), Cm = md_tensor_cols(xdbl, R + N, N);
    /* hn in its own slot where the set has one (mamba.h), kept for the
     * backward; else in y's slot (d <= E columns of each row): in_proj reads
     * it before the scan writes y, and the backward recomputes it. With the block
     * boundary fused (mamba.h, next_norm) in delta's slot instead: out_proj's
     * fused op reads y while it writes the next block's hn, whose rows (d
     * wide) would overlap other rows of y (E wide); delta is dead from the
     * scan's end (and unused where the scan forms it) until x_dt_proj_fwd
     * writes it, after in_proj has read hn, and no op between writes it. */
    md_tensor_t hn = amat(c, a->hn ? a->hn : c->next_norm ? a->delta : a->y, M, d);

    if (c->h_res) {   /* h_in = previous branch + h_res, completed here (mamba.h) */
        md_tensor_t hres = mat(c, (void *)c->h_res, M, d);
        be->add_rmsnorm_fwd(be, &hin, &hn, &rstd, &hin, &hres, &w.norm_w, cfg->norm_eps);
    } else if (!c->next_norm || layer == 0) {   /* else the previous block's out_proj normalised h_in (mamba.h) */
        be->rmsnorm_fwd(be, &hn, &rstd, &hin, &w.norm_w, cfg->norm_eps);
    }
    /* inference never reads x again: in_proj and the conv in one op where
     * the backend takes it (x then stays on chip) */
    const int fwd_only = md_block_forward_only(c);
    if (!fwd_only || !be->in_proj_conv_fwd ||
        !be->in_proj_conv_fwd(be, &u, &xz, &hn, &w.in_proj, &w.conv_w, &w.conv_b, c->B)) {
        be->gemm(be, 0, 1, 1.0, &hn, &w.in_proj, 0.0, &xz);
        be->conv1d_silu_fwd(be, &u, &x, &w.conv_w, &w.conv_b, c->B);
    }
    /* x_proj, then dt_proj unless the scan forms delta itself */
    int fold = scan_forms_delta(c, fwd_only);
    if (fold) be->gemm(be, 0, 1, 1.0, &u, &w.x_proj, 0.0, &xdbl);
    else be->x_dt_proj_fwd(be, &xdbl, &delta, &u, &w.x_proj, &w.dt_w);
    /* the backward's recompute leaves y to the scan's backward (ops.h),
     * and, where the first forward kept every layer's states, the scan */
    int y_left = !h_out && y_from_backward(c);
    if (!y_left || c->acts_plan != MD_ACTS_SHARED_STATES)
        be->scan_fwd(be, y_left ? NULL : &y, &u, fold ? NULL : &delta, &dt_in, &w.dt_w, &w.dt_b, &w.A_log, &Bm, &Cm,
                     &w.D, &z, c->B, fwd_only ? NULL : a->states, fwd_only ? NULL : a->seg_states);
    if (c->next_norm) {
        md_tensor_t hout = mat(c, h_out, M, d);
        md_tensor_t ny = c->norm_y ? mat(c, c->norm_y, M, d) : hn;
        md_tensor_t nr = c->norm_rstd ? md_tensor_1d(c->norm_rstd, c->dtype, be->device, M) : rstd;
        be->linear_add_rmsnorm_fwd(be, &hout, &ny, &nr, &y, &w.out_proj, &hin, c->next_norm, cfg->norm_eps);
    } else if (h_out) {
        md_tensor_t hout = mat(c, h_out, M, d);
        if (!c->branch_only) be->copy(be, h_out, h_in, (size_t)(M * d) * md_dtype_size(c->dtype), MD_COPY_D2D);
        be->gemm(be, 0, 1, 1.0, &y, &w.out_proj, c->branch_only ? 0.0 : 1.0, &hout);
    }
}

void md_mamba_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g_, const md_mamba_acts_t *a,
                  const md_mamba_scratch_t *s)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, E = cfg->d_inner, N = cfg->d_state, R = cfg->dt_rank;
    mamba_tensors_t w = mamba_tensors(c, c->params, c->wparams, c->adtype, layer);
    mamba_tensors_t gw = mamba_tensors(c, c->grads, c->grads, c->dtype, layer);

    md_tensor_t hin = mat(c, (void *)h_in, M, d), g = mat(c, g_, M, d);
    md_tensor_t rstd = md_tensor_1d(a->rstd, c->dtype, be->device, M);
    md_tensor_t xz = amat(c, a->xz, M, 2 * E), u = amat(c, a->u, M, E);
    md_tensor_t xdbl = amat(c, a->xdbl, M, R + 2 * N), delta = amat(c, a->delta, M, E), y = amat(c, a->y, M, E);
    md_tensor_t x = md_tensor_cols(xz, 0, E), z = md_tensor_cols(xz, E, E);
    md_tensor_t dt_in = md_tensor_cols(xdbl, 0, R), Bm = md_tensor_cols(xdbl, R, N), Cm = md_tensor_cols(xdbl, R + N, N);

    md_tensor_t dxz = amat(c, s->dxz, M, 2 * E), du = amat(c, s->du, M, E), dxdbl = amat(c, s->dxdbl, M, R + 2 * N);
    md_tensor_t dx = md_tensor_cols(dxz, 0, E), dz = md_tensor_cols(dxz, E, E);
    md_tensor_t ddt_in = md_tensor_cols(dxdbl, 0, R), dB = md_tensor_cols(dxdbl, R, N), dC = md_tensor_cols(dxdbl, R + N, N);
    /* Gradients take the slots of activations they outlive (mamba.h): dy
     * y's, written once out_proj's weight gradient has read y (in a shared
     * set the recomputed forward left no y there, and the scan's backward
     * writes it over dy: y_from_backward); ddelta
     * delta's, written over it by the scan's backward (ops.h allows it;
     * where the scan forms delta, the slot holds nothing before);
     * dhn delta's too (d <= E columns of each row), once dt_proj's backward
     * has read ddelta; hn, kept in its own slot or else recomputed for
     * in_proj's weight gradient, y's again, dead after the scan's backward. */
    md_tensor_t dy = amat(c, a->y, M, E), ddelta = delta, dhn = amat(c, a->delta, M, d);
    md_tensor_t hn = amat(c, a->hn ? a->hn : a->y, M, d);

    /* out_proj; its GEMMs read g in the activation dtype: a copy in du's
     * slot, free until the scan's backward writes it. The RMSNorm backward
     * at the end of block layer + 1 wrote it there (its dx_act: one scratch
     * set for all blocks, which nothing else writes between their
     * backwards); the top block converts the g it is given. */
    int g_copy = c->adtype != c->dtype;
    md_tensor_t g_mm = g_copy ? amat(c, s->du, M, d) : g;
    if (g_copy && layer == cfg->n_layer - 1) be->convert(be, &g_mm, &g);
    int late_y = y_from_backward(c);
    if (!late_y) be->gemm(be, 1, 0, 1.0, &g_mm, &y, 1.0, &gw.out_proj);
    be->gemm(be, 0, 0, 1.0, &g_mm, &w.out_proj, 0.0, &dy);
    /* scan (with the gate, D and the dt bias); where the forward left y
     * out, the scan writes it over dy (ops.h), into y's own slot, where
     * out_proj's weight gradient reads it as in the per-layer plans */
    be->scan_bwd(be, &du, &ddelta, &gw.A_log, &dB, &dC, &gw.D, &dz, &gw.dt_b, late_y ? &y : NULL, &dy, &u,
                 scan_forms_delta(c, 0) ? NULL : &delta, &dt_in, &w.dt_w, &w.dt_b, &w.A_log, &Bm, &Cm, &w.D, &z, c->B,
                 a->states, a->seg_states, c->op_ws);
    /* dt_proj: both its gradients in one pass over ddelta */
    be->lowrank_bwd(be, &ddt_in, &gw.dt_w, &ddelta, &dt_in, &w.dt_w);
    if (late_y) {
        /* g's copy died with du's slot: again (ops.h: the bits of
         * rmsnorm_bwd's dx_act) into delta's, dead since dt_proj's
         * backward until in_proj's writes dhn there; g_mm itself keeps
         * du's slot, where the RMSNorm below leaves block layer - 1's */
        md_tensor_t g_again = g;
        if (g_copy) {
            g_again = amat(c, a->delta, M, d);
            be->convert(be, &g_again, &g);
        }
        be->gemm(be, 1, 0, 1.0, &g_again, &y, 1.0, &gw.out_proj);
    }
    /* x_proj: u feeds both the scan and x_proj */
    be->gemm(be, 0, 0, 1.0, &dxdbl, &w.x_proj, 1.0, &du);
    be->gemm(be, 1, 0, 1.0, &dxdbl, &u, 1.0, &gw.x_proj);
    /* conv1d + SiLU */
    be->conv1d_silu_bwd(be, &dx, &gw.conv_w, &gw.conv_b, &du, &x, &w.conv_w, &w.conv_b, c->B);
    /* in_proj; without a kept hn, hn again as the forward made it (rstd
     * gets the same bits) */
    if (!a->hn) be->rmsnorm_fwd(be, &hn, &rstd, &hin, &w.norm_w, cfg->norm_eps);
    be->gemm(be, 0, 0, 1.0, &dxz, &w.in_proj, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dxz, &hn, 1.0, &gw.in_proj);
    /* RMSNorm; the residual path keeps g itself, and its copy for block
     * layer - 1's GEMMs goes to du's slot, dead since the conv's backward */
    be->rmsnorm_bwd(be, &g, &gw.norm_w, &dhn, &hin, &w.norm_w, &rstd, 1, g_copy && layer > 0 ? &g_mm : NULL);
}
