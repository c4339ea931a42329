#include "nn/transformer.h"

#include <math.h>
#include <stdlib.h>

#include "util/log.h"

/* Columns of each activation sub-buffer, in carve order. The per-token
 * tensors the GEMMs, RoPE, attention and SwiGLU read and write are stored
 * in the activation dtype (bf16 on the bf16 table); the RMSNorm and
 * softmax statistics (rstd, lse) and the residual stream's h_mid in the
 * model's. */
enum { A_RSTD1, A_HN1, A_QKV, A_O, A_LSE, A_HMID, A_RSTD2, A_HN2, A_GU, A_ACT, N_ACTS };
/* The backward's buffers, all of the activation dtype. dqkv's first d
 * columns hold g in that dtype for the GEMMs before attention_bwd writes
 * dqkv: the RMSNorm backwards write it beside g (rmsnorm_bwd's dx_act),
 * the last one of block l for block l - 1 (one scratch set for all blocks,
 * nothing else writes it between their backwards); the top block converts
 * the g it is given. */
enum { S_DACT, S_DGU, S_DHN, S_DO, S_DQKV, N_SCRATCH };

static void act_cols(const md_config_t *c, int64_t *cols)
{
    int64_t d = c->d_model, F = c->d_ff;
    int64_t v[N_ACTS] = {1, d, 3 * d, d, c->n_heads, d, 1, d, 2 * F, F};
    for (int i = 0; i < N_ACTS; i++) cols[i] = v[i];
}

/* dt: the model's dtype, adt: the activation dtype */
static void act_dtypes(md_dtype_t dt, md_dtype_t adt, md_dtype_t *dts)
{
    for (int i = 0; i < N_ACTS; i++) dts[i] = adt;
    dts[A_RSTD1] = dts[A_LSE] = dts[A_HMID] = dts[A_RSTD2] = dt;
}

static void scratch_cols(const md_config_t *c, int64_t *cols)
{
    int64_t d = c->d_model, F = c->d_ff;
    int64_t v[N_SCRATCH] = {F, 2 * F, d, d, 3 * d};
    for (int i = 0; i < N_SCRATCH; i++) cols[i] = v[i];
}

size_t md_tfm_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                         int64_t max_len)
{
    int64_t cols[N_ACTS];
    md_dtype_t dts[N_ACTS];
    act_cols(cfg, cols);
    act_dtypes(dt, md_act_dtype(be, dt), dts);
    return md_block_set_bytes_dt(cols, dts, N_ACTS, max_batch * max_len);
}

size_t md_tfm_scratch_bytes(const md_config_t *cfg, md_dtype_t adt, int64_t max_rows)
{
    int64_t cols[N_SCRATCH];
    md_dtype_t dts[N_SCRATCH];
    scratch_cols(cfg, cols);
    for (int i = 0; i < N_SCRATCH; i++) dts[i] = adt;
    return md_block_set_bytes_dt(cols, dts, N_SCRATCH, max_rows);
}

size_t md_tfm_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len)
{
    return be->attention_workspace(be, dt, batch, len, cfg->n_heads, cfg->d_model / cfg->n_heads);
}

static md_tensor_t mat(const md_block_ctx_t *c, void *p, int64_t rows, int64_t cols)
{
    return md_tensor_2d(p, c->dtype, c->be->device, rows, cols);
}

/* a matrix of the activation dtype */
static md_tensor_t amat(const md_block_ctx_t *c, void *p, int64_t rows, int64_t cols)
{
    return md_tensor_2d(p, c->adtype, c->be->device, rows, cols);
}

/* n consecutive registry entries starting at (layer, first) as one
 * (n * rows, cols) matrix of a buffer of dtype dt; the registry keeps them
 * adjacent (params.h). */
static md_tensor_t fused(const md_block_ctx_t *c, void *base, md_dtype_t dt, int layer, md_param_role_t first, int n)
{
    const md_param_t *p0 = md_params_get(c->reg, layer, first);
    for (int i = 1; i < n; i++) {
        const md_param_t *pi = md_params_get(c->reg, layer, (md_param_role_t)(first + i));
        if (!p0 || !pi || pi->offset != p0->offset + i * p0->numel || pi->numel != p0->numel) {
            md_error("model: internal error, transformer projections of layer %d are not adjacent", layer);
            abort();
        }
    }
    void *data = (char *)base + (size_t)p0->offset * md_dtype_size(dt);
    return md_tensor_2d(data, dt, c->be->device, n * p0->shape[0], p0->shape[1]);
}

/* One block's tensors, viewed in the parameter or the gradient buffer; q/k/v
 * and gate/up are adjacent in the registry and used as one fused matrix.
 * The GEMMs' matrices are read in gemm_base, of dtype gemm_dt (the
 * parameters' copies in the activation dtype, or the gradients); the norm
 * weights in base. */
typedef struct {
    md_tensor_t attn_norm, mlp_norm, qkv, o, gate_up, down;
} tfm_tensors_t;

static tfm_tensors_t tfm_tensors(const md_block_ctx_t *c, void *base, void *gemm_base, md_dtype_t gemm_dt, int layer)
{
    tfm_tensors_t t = {
        .attn_norm = md_param_view(c, base, layer, MD_ROLE_ATTN_NORM),
        .mlp_norm = md_param_view(c, base, layer, MD_ROLE_MLP_NORM),
        .qkv = fused(c, gemm_base, gemm_dt, layer, MD_ROLE_Q_PROJ, 3),
        .o = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_O_PROJ),
        .gate_up = fused(c, gemm_base, gemm_dt, layer, MD_ROLE_GATE_PROJ, 2),
        .down = md_param_view_as(c, gemm_base, gemm_dt, layer, MD_ROLE_DOWN_PROJ),
    };
    return t;
}

/* The views of one activation set for this call. */
typedef struct {
    md_tensor_t rstd1, hn1, qkv, q, k, v, o, lse, hmid, rstd2, hn2, gu, gate, up, act;
} tfm_acts_t;

static tfm_acts_t acts_view(const md_block_ctx_t *c, void *acts)
{
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads;
    int64_t cols[N_ACTS];
    md_dtype_t dts[N_ACTS];
    void *a[N_ACTS];
    act_cols(cfg, cols);
    act_dtypes(c->dtype, c->adtype, dts);
    md_block_slice_dt(c, acts, cols, dts, N_ACTS, a);
    tfm_acts_t t;
    t.rstd1 = md_tensor_1d(a[A_RSTD1], c->dtype, c->be->device, M);
    t.rstd2 = md_tensor_1d(a[A_RSTD2], c->dtype, c->be->device, M);
    t.lse = md_tensor_1d(a[A_LSE], c->dtype, c->be->device, M * H);
    t.hn1 = amat(c, a[A_HN1], M, d), t.qkv = amat(c, a[A_QKV], M, 3 * d), t.o = amat(c, a[A_O], M, d);
    t.q = md_tensor_cols(t.qkv, 0, d), t.k = md_tensor_cols(t.qkv, d, d), t.v = md_tensor_cols(t.qkv, 2 * d, d);
    t.hmid = mat(c, a[A_HMID], M, d), t.hn2 = amat(c, a[A_HN2], M, d);
    t.gu = amat(c, a[A_GU], M, 2 * F), t.act = amat(c, a[A_ACT], M, F);
    t.gate = md_tensor_cols(t.gu, 0, F), t.up = md_tensor_cols(t.gu, F, F);
    return t;
}

void md_tfm_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, H = cfg->n_heads;
    tfm_acts_t a = acts_view(c, acts);
    tfm_tensors_t w = tfm_tensors(c, c->params, c->wparams, c->adtype, layer);
    md_tensor_t hin = mat(c, (void *)h_in, M, d);
    /* q and k side by side are 2H heads of the same width: one RoPE pass */
    md_tensor_t qk = md_tensor_cols(a.qkv, 0, 2 * d);

    be->rmsnorm_fwd(be, &a.hn1, &a.rstd1, &hin, &w.attn_norm, cfg->norm_eps);
    be->gemm(be, 0, 1, 1.0, &a.hn1, &w.qkv, 0.0, &a.qkv);
    be->rope(be, &qk, c->B, 2 * H, cfg->rope_theta, 0);
    be->attention_fwd(be, &a.o, &a.lse, &a.q, &a.k, &a.v, c->B, H, 1.0 / sqrt((double)(d / H)), c->op_ws);
    /* the residual adds in the products: h_mid = h_in + o Wo^T and h_out =
     * h_mid + act Wdown^T, each residual the GEMM's C operand (no copy, no
     * pass of its own) */
    be->linear_fwd(be, &a.hmid, NULL, &a.o, &w.o, NULL, &hin, MD_ACT_NONE);
    be->rmsnorm_fwd(be, &a.hn2, &a.rstd2, &a.hmid, &w.mlp_norm, cfg->norm_eps);
    be->gemm(be, 0, 1, 1.0, &a.hn2, &w.gate_up, 0.0, &a.gu);
    be->swiglu_fwd(be, &a.act, &a.gate, &a.up);
    if (h_out) {
        md_tensor_t hout = mat(c, h_out, M, d);
        be->linear_fwd(be, &hout, NULL, &a.act, &w.down, NULL, &a.hmid, MD_ACT_NONE);
    }
}

void md_tfm_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g_, void *acts, void *scratch)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads;
    int64_t scols[N_SCRATCH];
    md_dtype_t sdts[N_SCRATCH];
    void *s[N_SCRATCH];
    scratch_cols(cfg, scols);
    for (int i = 0; i < N_SCRATCH; i++) sdts[i] = c->adtype;
    md_block_slice_dt(c, scratch, scols, sdts, N_SCRATCH, s);
    tfm_acts_t a = acts_view(c, acts);
    tfm_tensors_t w = tfm_tensors(c, c->params, c->wparams, c->adtype, layer);
    tfm_tensors_t gw = tfm_tensors(c, c->grads, c->grads, c->dtype, layer);

    md_tensor_t hin = mat(c, (void *)h_in, M, d), g = mat(c, g_, M, d);
    md_tensor_t dact = amat(c, s[S_DACT], M, F), dgu = amat(c, s[S_DGU], M, 2 * F), dhn = amat(c, s[S_DHN], M, d);
    md_tensor_t dout = amat(c, s[S_DO], M, d), dqkv = amat(c, s[S_DQKV], M, 3 * d);
    md_tensor_t dgate = md_tensor_cols(dgu, 0, F), dup = md_tensor_cols(dgu, F, F);
    md_tensor_t dq = md_tensor_cols(dqkv, 0, d), dk = md_tensor_cols(dqkv, d, d), dv = md_tensor_cols(dqkv, 2 * d, d);
    md_tensor_t dqk = md_tensor_cols(dqkv, 0, 2 * d);
    /* g as the GEMMs read it: a copy in the activation dtype, in dqkv */
    int g_copy = c->adtype != c->dtype;
    md_tensor_t g_mm = g_copy ? md_tensor_cols(dqkv, 0, d) : g;

    /* MLP: h_out = h_mid + act Wdown^T */
    if (g_copy && layer == cfg->n_layer - 1) be->convert(be, &g_mm, &g);
    be->gemm(be, 0, 0, 1.0, &g_mm, &w.down, 0.0, &dact);
    be->gemm(be, 1, 0, 1.0, &g_mm, &a.act, 1.0, &gw.down);
    be->swiglu_bwd(be, &dgate, &dup, &dact, &a.gate, &a.up);
    be->gemm(be, 0, 0, 1.0, &dgu, &w.gate_up, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dgu, &a.hn2, 1.0, &gw.gate_up);
    /* g is now dL/dh_mid */
    be->rmsnorm_bwd(be, &g, &gw.mlp_norm, &dhn, &a.hmid, &w.mlp_norm, &a.rstd2, 1, g_copy ? &g_mm : NULL);
    /* attention: h_mid = h_in + o Wo^T */
    be->gemm(be, 0, 0, 1.0, &g_mm, &w.o, 0.0, &dout);
    be->gemm(be, 1, 0, 1.0, &g_mm, &a.o, 1.0, &gw.o);
    be->attention_bwd(be, &dq, &dk, &dv, &dout, &a.q, &a.k, &a.v, &a.o, &a.lse, c->B, H, 1.0 / sqrt((double)(d / H)),
                      c->op_ws);
    be->rope(be, &dqk, c->B, 2 * H, cfg->rope_theta, 1);
    be->gemm(be, 0, 0, 1.0, &dqkv, &w.qkv, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dqkv, &a.hn1, 1.0, &gw.qkv);
    /* dL/dh_in, and its copy for block layer - 1's GEMMs */
    md_tensor_t *g_next = g_copy && layer > 0 ? &g_mm : NULL;
    be->rmsnorm_bwd(be, &g, &gw.attn_norm, &dhn, &hin, &w.attn_norm, &a.rstd1, 1, g_next);
}

double md_tfm_flops_per_token(const md_config_t *c, int64_t L, double *matmul_only)
{
    double d = (double)c->d_model, F = (double)c->d_ff, V = (double)c->vocab_size, nl = (double)c->n_layer;
    /* causal attention: token t attends to t+1 keys, (L+1)/2 on average,
     * two matmuls of d multiply-adds per key */
    double attn = 2.0 * 2.0 * d * (L + 1) / 2.0;
    double mm = nl * (2.0 * (4 * d * d + 3 * d * F) + attn) + 2.0 * V * d;
    /* softmax ~5 per score, RoPE ~3 per q/k value, SwiGLU ~8 per F, norms ~4 per d */
    double ew = nl * (5.0 * c->n_heads * (L + 1) / 2.0 + 6.0 * d + 8.0 * F + 8.0 * d) + 4.0 * d + 5.0 * V;
    if (matmul_only) *matmul_only = mm;
    return mm + ew;
}
