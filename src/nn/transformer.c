#include "nn/transformer.h"

#include <math.h>
#include <stdlib.h>

#include "util/log.h"

/* Columns of each activation sub-buffer, in carve order. */
enum { A_RSTD1, A_HN1, A_QKV, A_O, A_LSE, A_HMID, A_RSTD2, A_HN2, A_GU, A_ACT, N_ACTS };
enum { S_DACT, S_DGU, S_DHN, S_DO, S_DQKV, N_SCRATCH };

static void act_cols(const md_config_t *c, int64_t *cols)
{
    int64_t d = c->d_model, F = c->d_ff;
    int64_t v[N_ACTS] = {1, d, 3 * d, d, c->n_heads, d, 1, d, 2 * F, F};
    for (int i = 0; i < N_ACTS; i++) cols[i] = v[i];
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
    act_cols(cfg, cols);
    return md_block_set_bytes(cols, N_ACTS, dt, max_batch * max_len);
}

size_t md_tfm_scratch_bytes(const md_config_t *cfg, md_dtype_t dt, int64_t max_rows)
{
    int64_t cols[N_SCRATCH];
    scratch_cols(cfg, cols);
    return md_block_set_bytes(cols, N_SCRATCH, dt, max_rows);
}

size_t md_tfm_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len)
{
    return be->attention_workspace(be, dt, batch, len, cfg->n_heads, cfg->d_model / cfg->n_heads);
}

static md_tensor_t mat(const md_block_ctx_t *c, void *p, int64_t rows, int64_t cols)
{
    return md_tensor_2d(p, c->dtype, c->be->device, rows, cols);
}

/* n consecutive registry entries starting at (layer, first) as one
 * (n * rows, cols) matrix; the registry keeps them adjacent (params.h). */
static md_tensor_t fused(const md_block_ctx_t *c, void *base, int layer, md_param_role_t first, int n)
{
    const md_param_t *p0 = md_params_get(c->reg, layer, first);
    for (int i = 1; i < n; i++) {
        const md_param_t *pi = md_params_get(c->reg, layer, (md_param_role_t)(first + i));
        if (!p0 || !pi || pi->offset != p0->offset + i * p0->numel || pi->numel != p0->numel) {
            md_error("model: internal error, transformer projections of layer %d are not adjacent", layer);
            abort();
        }
    }
    void *data = (char *)base + (size_t)p0->offset * md_dtype_size(c->dtype);
    return md_tensor_2d(data, c->dtype, c->be->device, n * p0->shape[0], p0->shape[1]);
}

/* One block's tensors, viewed in the parameter or the gradient buffer; q/k/v
 * and gate/up are adjacent in the registry and used as one fused matrix. */
typedef struct {
    md_tensor_t attn_norm, mlp_norm, qkv, o, gate_up, down;
} tfm_tensors_t;

static tfm_tensors_t tfm_tensors(const md_block_ctx_t *c, void *base, int layer)
{
    tfm_tensors_t t = {
        .attn_norm = md_param_view(c, base, layer, MD_ROLE_ATTN_NORM),
        .mlp_norm = md_param_view(c, base, layer, MD_ROLE_MLP_NORM),
        .qkv = fused(c, base, layer, MD_ROLE_Q_PROJ, 3),
        .o = md_param_view(c, base, layer, MD_ROLE_O_PROJ),
        .gate_up = fused(c, base, layer, MD_ROLE_GATE_PROJ, 2),
        .down = md_param_view(c, base, layer, MD_ROLE_DOWN_PROJ),
    };
    return t;
}

void md_tfm_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads;
    int64_t cols[N_ACTS];
    void *a[N_ACTS];
    act_cols(cfg, cols);
    md_block_slice(c, acts, cols, N_ACTS, a);
    tfm_tensors_t w = tfm_tensors(c, c->params, layer);

    md_tensor_t hin = mat(c, (void *)h_in, M, d), hmid = mat(c, a[A_HMID], M, d);
    md_tensor_t rstd1 = md_tensor_1d(a[A_RSTD1], c->dtype, be->device, M);
    md_tensor_t rstd2 = md_tensor_1d(a[A_RSTD2], c->dtype, be->device, M);
    md_tensor_t hn1 = mat(c, a[A_HN1], M, d), qkv = mat(c, a[A_QKV], M, 3 * d), o = mat(c, a[A_O], M, d);
    md_tensor_t lse = md_tensor_1d(a[A_LSE], c->dtype, be->device, M * H);
    md_tensor_t hn2 = mat(c, a[A_HN2], M, d), gu = mat(c, a[A_GU], M, 2 * F), act = mat(c, a[A_ACT], M, F);
    md_tensor_t q = md_tensor_cols(qkv, 0, d), k = md_tensor_cols(qkv, d, d), v = md_tensor_cols(qkv, 2 * d, d);
    md_tensor_t qk = md_tensor_cols(qkv, 0, 2 * d);
    md_tensor_t gate = md_tensor_cols(gu, 0, F), up = md_tensor_cols(gu, F, F);
    size_t bytes = (size_t)(M * d) * md_dtype_size(c->dtype);

    be->rmsnorm_fwd(be, &hn1, &rstd1, &hin, &w.attn_norm, cfg->norm_eps);
    be->gemm(be, 0, 1, 1.0, &hn1, &w.qkv, 0.0, &qkv);
    /* q and k side by side are 2H heads of the same width: one pass */
    be->rope(be, &qk, c->B, 2 * H, cfg->rope_theta, 0);
    be->attention_fwd(be, &o, &lse, &q, &k, &v, c->B, H, 1.0 / sqrt((double)(d / H)), c->op_ws);
    /* h_mid = h_in + o Wo^T: the product alone, then the add fused into the norm */
    be->gemm(be, 0, 1, 1.0, &o, &w.o, 0.0, &hmid);
    be->add_rmsnorm_fwd(be, &hmid, &hn2, &rstd2, &hmid, &hin, &w.mlp_norm, cfg->norm_eps);
    be->gemm(be, 0, 1, 1.0, &hn2, &w.gate_up, 0.0, &gu);
    be->swiglu_fwd(be, &act, &gate, &up);
    if (h_out) {
        md_tensor_t hout = mat(c, h_out, M, d);
        be->copy(be, h_out, a[A_HMID], bytes, MD_COPY_D2D);
        be->gemm(be, 0, 1, 1.0, &act, &w.down, 1.0, &hout);
    }
}

void md_tfm_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g_, void *acts, void *scratch)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads;
    int64_t cols[N_ACTS], scols[N_SCRATCH];
    void *a[N_ACTS], *s[N_SCRATCH];
    act_cols(cfg, cols);
    md_block_slice(c, acts, cols, N_ACTS, a);
    scratch_cols(cfg, scols);
    md_block_slice(c, scratch, scols, N_SCRATCH, s);
    tfm_tensors_t w = tfm_tensors(c, c->params, layer);
    tfm_tensors_t gw = tfm_tensors(c, c->grads, layer);

    md_tensor_t hin = mat(c, (void *)h_in, M, d), hmid = mat(c, a[A_HMID], M, d), g = mat(c, g_, M, d);
    md_tensor_t rstd1 = md_tensor_1d(a[A_RSTD1], c->dtype, be->device, M);
    md_tensor_t rstd2 = md_tensor_1d(a[A_RSTD2], c->dtype, be->device, M);
    md_tensor_t hn1 = mat(c, a[A_HN1], M, d), qkv = mat(c, a[A_QKV], M, 3 * d), o = mat(c, a[A_O], M, d);
    md_tensor_t lse = md_tensor_1d(a[A_LSE], c->dtype, be->device, M * H);
    md_tensor_t hn2 = mat(c, a[A_HN2], M, d), gu = mat(c, a[A_GU], M, 2 * F), act = mat(c, a[A_ACT], M, F);
    md_tensor_t q = md_tensor_cols(qkv, 0, d), k = md_tensor_cols(qkv, d, d), v = md_tensor_cols(qkv, 2 * d, d);
    md_tensor_t gate = md_tensor_cols(gu, 0, F), up = md_tensor_cols(gu, F, F);

    md_tensor_t dact = mat(c, s[S_DACT], M, F), dgu = mat(c, s[S_DGU], M, 2 * F), dhn = mat(c, s[S_DHN], M, d);
    md_tensor_t dout = mat(c, s[S_DO], M, d), dqkv = mat(c, s[S_DQKV], M, 3 * d);
    md_tensor_t dgate = md_tensor_cols(dgu, 0, F), dup = md_tensor_cols(dgu, F, F);
    md_tensor_t dq = md_tensor_cols(dqkv, 0, d), dk = md_tensor_cols(dqkv, d, d), dv = md_tensor_cols(dqkv, 2 * d, d);
    md_tensor_t dqk = md_tensor_cols(dqkv, 0, 2 * d);

    /* MLP: h_out = h_mid + act Wdown^T */
    be->gemm(be, 0, 0, 1.0, &g, &w.down, 0.0, &dact);
    be->gemm(be, 1, 0, 1.0, &g, &act, 1.0, &gw.down);
    be->swiglu_bwd(be, &dgate, &dup, &dact, &gate, &up);
    be->gemm(be, 0, 0, 1.0, &dgu, &w.gate_up, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dgu, &hn2, 1.0, &gw.gate_up);
    be->rmsnorm_bwd(be, &g, &gw.mlp_norm, &dhn, &hmid, &w.mlp_norm, &rstd2, 1);   /* g is now dL/dh_mid */
    /* attention: h_mid = h_in + o Wo^T */
    be->gemm(be, 0, 0, 1.0, &g, &w.o, 0.0, &dout);
    be->gemm(be, 1, 0, 1.0, &g, &o, 1.0, &gw.o);
    be->attention_bwd(be, &dq, &dk, &dv, &dout, &q, &k, &v, &o, &lse, c->B, H, 1.0 / sqrt((double)(d / H)), c->op_ws);
    be->rope(be, &dqk, c->B, 2 * H, cfg->rope_theta, 1);
    be->gemm(be, 0, 0, 1.0, &dqkv, &w.qkv, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dqkv, &hn1, 1.0, &gw.qkv);
    be->rmsnorm_bwd(be, &g, &gw.attn_norm, &dhn, &hin, &w.attn_norm, &rstd1, 1);
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
