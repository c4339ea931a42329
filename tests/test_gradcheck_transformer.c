/* The Transformer++ backwards against central finite differences in
 * double precision (the f64 instantiation of the CPU kernels): causal
 * attention with respect to q, k and v (with a length spanning several
 * query and key tiles), RoPE, SwiGLU, and the whole transformer model on a tiny config
 * (every tensor, then a random subset). The scalar checked is
 * sum(output * R) for a fixed random R.
 *
 * Also: the recomputing model gives the same gradients bit for bit, the B = 1
 * path agrees with finite differences too, and the f32 model's loss and
 * gradients do not depend on the thread count. */
#include "gradcheck.h"
#include "util/log.h"

typedef struct { int64_t B, L, H, dh; double scale, *qkv, *R, *o, *lse, *ws; } attn_ctx_t;

static void attn_views(attn_ctx_t *c, double *base, md_tensor_t *q, md_tensor_t *k, md_tensor_t *v)
{
    int64_t d = c->H * c->dh;
    md_tensor_t all = T2(base, c->B * c->L, 3 * d);
    *q = md_tensor_cols(all, 0, d), *k = md_tensor_cols(all, d, d), *v = md_tensor_cols(all, 2 * d, d);
}

static double attn_loss(void *p)
{
    attn_ctx_t *c = p;
    md_tensor_t q, k, v, o = T2(c->o, c->B * c->L, c->H * c->dh);
    md_tensor_t lse = md_tensor_1d(c->lse, F64, MD_DEVICE_CPU, c->B * c->H * c->L);
    attn_views(c, c->qkv, &q, &k, &v);
    be->attention_fwd(be, &o, &lse, &q, &k, &v, c->B, c->H, c->scale, c->ws);
    return dot(c->o, c->R, c->B * c->L * c->H * c->dh);
}

static void check_attention(int64_t B, int64_t L, int64_t H, int64_t dh, int sample)
{
    attn_ctx_t c = {B, L, H, dh, 1.0 / sqrt((double)dh), NULL, NULL, NULL, NULL, NULL};
    int64_t M = B * L, d = H * dh;
    c.qkv = rnd(M * 3 * d, -1.5, 1.5), c.R = rnd(M * d, -1, 1), c.o = zeros(M * d), c.lse = zeros(B * H * L);
    double *ws = zeros(B * H * L);   /* the CPU's attention_workspace: one double per row and head */
    c.ws = ws;
    attn_loss(&c);
    double *g = zeros(M * 3 * d);
    md_tensor_t q, k, v, dq, dk, dv, o = T2(c.o, M, d), dout = T2(c.R, M, d);
    md_tensor_t lse = md_tensor_1d(c.lse, F64, MD_DEVICE_CPU, B * H * L);
    attn_views(&c, c.qkv, &q, &k, &v);
    attn_views(&c, g, &dq, &dk, &dv);
    be->attention_bwd(be, &dq, &dk, &dv, &dout, &q, &k, &v, &o, &lse, B, H, c.scale, ws);
    char what[96];
    snprintf(what, sizeof what, "attention B %lld L %lld H %lld dh %lld d/d(q,k,v)", (long long)B, (long long)L,
             (long long)H, (long long)dh);
    fd_check(what, c.qkv, g, M * 3 * d, attn_loss, &c, sample);
    free(c.qkv), free(c.R), free(c.o), free(c.lse), free(g), free(ws);
}

/* ---- RoPE ---- */

typedef struct { int64_t B, L, H, dh; double *x, *y, *R; } rope_ctx_t;

static double rope_loss(void *p)
{
    rope_ctx_t *c = p;
    int64_t n = c->B * c->L * c->H * c->dh;
    memcpy(c->y, c->x, (size_t)n * sizeof *c->y);
    md_tensor_t y = T2(c->y, c->B * c->L, c->H * c->dh);
    be->rope(be, &y, c->B, c->H, 10000.0, 0);
    return dot(c->y, c->R, n);
}

static void check_rope(void)
{
    rope_ctx_t c = {2, 9, 2, 6, NULL, NULL, NULL};
    int64_t n = c.B * c.L * c.H * c.dh;
    c.x = rnd(n, -1, 1), c.y = zeros(n), c.R = rnd(n, -1, 1);
    double *g = malloc((size_t)n * sizeof *g);
    memcpy(g, c.R, (size_t)n * sizeof *g);
    md_tensor_t tg = T2(g, c.B * c.L, c.H * c.dh);
    be->rope(be, &tg, c.B, c.H, 10000.0, 1);   /* the backward: the inverse rotation */
    fd_check("rope d/dx", c.x, g, n, rope_loss, &c, 400);
    free(c.x), free(c.y), free(c.R), free(g);
}

/* ---- SwiGLU ---- */

typedef struct { int64_t M, F; double *gu, *y, *R; } swiglu_ctx_t;

static double swiglu_loss(void *p)
{
    swiglu_ctx_t *c = p;
    md_tensor_t gu = T2(c->gu, c->M, 2 * c->F), y = T2(c->y, c->M, c->F);
    md_tensor_t g = md_tensor_cols(gu, 0, c->F), u = md_tensor_cols(gu, c->F, c->F);
    be->swiglu_fwd(be, &y, &g, &u);
    return dot(c->y, c->R, c->M * c->F);
}

static void check_swiglu(void)
{
    swiglu_ctx_t c = {5, 7, NULL, NULL, NULL};
    c.gu = rnd(70, -4, 4), c.y = zeros(35), c.R = rnd(35, -1, 1);
    double *dgu = zeros(70);
    md_tensor_t tgu = T2(c.gu, 5, 14), tdgu = T2(dgu, 5, 14), dy = T2(c.R, 5, 7);
    md_tensor_t g = md_tensor_cols(tgu, 0, 7), u = md_tensor_cols(tgu, 7, 7);
    md_tensor_t dg = md_tensor_cols(tdgu, 0, 7), du = md_tensor_cols(tdgu, 7, 7);
    be->swiglu_bwd(be, &dg, &du, &dy, &g, &u);
    fd_check("swiglu d/d(gate, up)", c.gu, dgu, 70, swiglu_loss, &c, 100);
    free(c.gu), free(c.y), free(c.R), free(dgu);
}

/* ---- the whole model ---- */

static void tiny_config(md_config_t *cfg)
{
    md_config_init(cfg, MD_ARCH_TRANSFORMER, 8, 2);
    cfg->n_heads = 2;   /* head_dim 4 */
    cfg->d_ff = 12;
    /* a larger init so that attention is far from uniform */
    cfg->initializer_range = 0.5;
}

static void check_model(void)
{
    md_config_t cfg;
    tiny_config(&cfg);
    CHECK(md_config_validate(&cfg, "tiny") == 0, "tiny transformer config is valid");
    const int64_t B = 2, L = 70;   /* two key tiles */
    md_model_t *m = md_model_new(&cfg, be, F64, B, L);
    CHECK(m != NULL, "tiny f64 transformer");
    if (!m) return;
    md_model_init_weights(m, 7);
    md_tensor_t P = md_model_param_buffer(m);
    for (int64_t i = 0; i < P.shape[0]; i++) ((double *)P.data)[i] += (2 * md_rng_uniform(&rng) - 1) * 0.1;
    uint8_t in[2 * 70], tgt[2 * 70];
    random_tokens(in, tgt, B * L);
    in[3] = MD_TOK_N, tgt[5] = MD_TOK_N, tgt[75] = MD_TOK_PAD;
    md_model_zero_grad(m);
    md_loss_t out;
    CHECK(md_model_forward_backward(m, in, tgt, B, L, 1, &out) == 0, "forward_backward");
    CHECK(out.n_targets == B * L - 2, "counted targets %lld", (long long)out.n_targets);
    int64_t n = md_model_params(m)->numel;
    double *grad = malloc((size_t)n * sizeof *grad);
    memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
    model_ctx_t c = {m, in, tgt, B, L};
    check_model_tensors(&c, grad, "model", "model.");
    check_recompute_and_b1(&c, &cfg, &out, grad);
    free(grad);
    md_model_free(m);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 4242);
    check_attention(1, 1, 1, 4, 100);
    check_attention(2, 5, 2, 4, 400);
    check_attention(1, 300, 1, 4, 150);   /* 5 query tiles of 64, 2 key tiles of 256, both partial at the end */
    check_rope();
    check_swiglu();
    check_model();
    check_threads(MD_ARCH_TRANSFORMER, 64, 2, 300, 320);
    return md_test_done();
}
