/* Every backward against central finite differences, in double precision
 * (the f64 instantiation of the same CPU kernels), on tiny shapes: RMSNorm,
 * a linear layer through gemm, conv1d + SiLU, the selective scan with
 * respect to each of its eight inputs (the SiLU(z) gate and the dt bias
 * included), the embedding and the cross-entropy; then the whole model's
 * gradient on a tiny config, for a random subset of parameters. The
 * scalar checked is sum(output * R) for a fixed random R, so every output
 * element matters.
 *
 * Also: gradients accumulate across calls; the recomputing model gives the
 * same gradients bit for bit; the f32 model's gradients do not depend on
 * the thread count. */
#include "gradcheck.h"
#include "util/log.h"

typedef struct { int64_t M, D; double *x, *w, *R, *y, *r; } rms_ctx_t;

static double rms_loss(void *p)
{
    rms_ctx_t *c = p;
    md_tensor_t y = T2(c->y, c->M, c->D), r = T1(c->r, c->M), x = T2(c->x, c->M, c->D), w = T1(c->w, c->D);
    be->rmsnorm_fwd(be, &y, &r, &x, &w, 1e-5);
    return dot(c->y, c->R, c->M * c->D);
}

static void check_rmsnorm(void)
{
    rms_ctx_t c;
    memset(&c, 0, sizeof c);
    c.M = 3, c.D = 5;
    c.x = rnd(15, -2, 2), c.w = rnd(5, 0.5, 1.5), c.R = rnd(15, -1, 1), c.y = zeros(15), c.r = zeros(3);
    double *dx = zeros(15), *dw = zeros(5);
    rms_loss(&c);
    md_tensor_t tdx = T2(dx, 3, 5), tdw = T1(dw, 5), dy = T2(c.R, 3, 5), x = T2(c.x, 3, 5), w = T1(c.w, 5),
                r = T1(c.r, 3);
    be->rmsnorm_bwd(be, &tdx, &tdw, &dy, &x, &w, &r, 0, NULL);
    fd_check("rmsnorm d/dx", c.x, dx, 15, rms_loss, &c, 100);
    fd_check("rmsnorm d/dw", c.w, dw, 5, rms_loss, &c, 100);
    free(c.x), free(c.w), free(c.R), free(c.y), free(c.r), free(dx), free(dw);
}

/* ---- linear: y = x W^T, as the model's projections ---- */

typedef struct { int64_t M, K, N; double *x, *W, *R, *y; } lin_ctx_t;

static double lin_loss(void *p)
{
    lin_ctx_t *c = p;
    md_tensor_t x = T2(c->x, c->M, c->K), W = T2(c->W, c->N, c->K), y = T2(c->y, c->M, c->N);
    be->gemm(be, 0, 1, 1.0, &x, &W, 0.0, &y);
    return dot(c->y, c->R, c->M * c->N);
}

static void check_linear(void)
{
    lin_ctx_t c;
    memset(&c, 0, sizeof c);
    c.M = 4, c.K = 3, c.N = 5;
    c.x = rnd(12, -1, 1), c.W = rnd(15, -1, 1), c.R = rnd(20, -1, 1), c.y = zeros(20);
    double *dx = zeros(12), *dW = zeros(15);
    md_tensor_t R = T2(c.R, 4, 5), W = T2(c.W, 5, 3), x = T2(c.x, 4, 3), tdx = T2(dx, 4, 3), tdW = T2(dW, 5, 3);
    be->gemm(be, 0, 0, 1.0, &R, &W, 0.0, &tdx);
    be->gemm(be, 1, 0, 1.0, &R, &x, 1.0, &tdW);
    fd_check("linear d/dx", c.x, dx, 12, lin_loss, &c, 100);
    fd_check("linear d/dW", c.W, dW, 15, lin_loss, &c, 100);
    free(c.x), free(c.W), free(c.R), free(c.y), free(dx), free(dW);
}

/* ---- conv1d + SiLU ---- */

typedef struct { int64_t B, L, E, K; double *x, *w, *b, *R, *y; } conv_ctx_t;

static double conv_loss(void *p)
{
    conv_ctx_t *c = p;
    int64_t M = c->B * c->L;
    md_tensor_t y = T2(c->y, M, c->E), x = T2(c->x, M, c->E), w = T2(c->w, c->E, c->K), b = T1(c->b, c->E);
    be->conv1d_silu_fwd(be, &y, &x, &w, &b, c->B);
    return dot(c->y, c->R, M * c->E);
}

static void check_conv(void)
{
    conv_ctx_t c;
    memset(&c, 0, sizeof c);
    c.B = 2, c.L = 6, c.E = 3, c.K = 4;
    int64_t M = 12, E = 3;
    c.x = rnd(M * E, -2, 2), c.w = rnd(E * 4, -1, 1), c.b = rnd(E, -0.5, 0.5), c.R = rnd(M * E, -1, 1);
    c.y = zeros(M * E);
    double *dx = zeros(M * E), *dw = zeros(E * 4), *db = zeros(E);
    md_tensor_t tdx = T2(dx, M, E), tdw = T2(dw, E, 4), tdb = T1(db, E), dy = T2(c.R, M, E), x = T2(c.x, M, E);
    md_tensor_t w = T2(c.w, E, 4), b = T1(c.b, E);
    be->conv1d_silu_bwd(be, &tdx, &tdw, &tdb, &dy, &x, &w, &b, c.B);
    fd_check("conv1d+silu d/dx", c.x, dx, M * E, conv_loss, &c, 100);
    fd_check("conv1d+silu d/dw", c.w, dw, E * 4, conv_loss, &c, 100);
    fd_check("conv1d+silu d/dbias", c.b, db, E, conv_loss, &c, 100);
    free(c.x), free(c.w), free(c.b), free(c.R), free(c.y), free(dx), free(dw), free(db);
}

/* ---- the selective scan ---- */

typedef struct {
    int64_t B, L, E, N;
    double *u, *delta, *bias, *A_log, *Bm, *Cm, *D, *z, *R, *y;
} scan_ctx_t;

static double scan_loss(void *p)
{
    scan_ctx_t *c = p;
    int64_t M = c->B * c->L;
    md_tensor_t y = T2(c->y, M, c->E), u = T2(c->u, M, c->E), dl = T2(c->delta, M, c->E), b = T1(c->bias, c->E);
    md_tensor_t A = T2(c->A_log, c->E, c->N), Bm = T2(c->Bm, M, c->N), Cm = T2(c->Cm, M, c->N), D = T1(c->D, c->E);
    md_tensor_t z = T2(c->z, M, c->E);
    be->scan_fwd(be, &y, &u, &dl, NULL, NULL, &b, &A, &Bm, &Cm, &D, &z, c->B, NULL, NULL);
    return dot(c->y, c->R, M * c->E);
}

static void check_scan(void)
{
    /* L = 11 is not a square, so the backward's segments are uneven; E = 11
     * is not a multiple of the SIMD chunk. */
    scan_ctx_t c;
    memset(&c, 0, sizeof c);
    c.B = 2, c.L = 11, c.E = 11, c.N = 3;
    int64_t M = c.B * c.L, E = c.E, N = c.N;
    c.u = rnd(M * E, -1, 1), c.delta = rnd(M * E, -2, 1), c.bias = rnd(E, -1, 0.5), c.A_log = rnd(E * N, -0.5, 1.5);
    c.Bm = rnd(M * N, -1, 1), c.Cm = rnd(M * N, -1, 1), c.D = rnd(E, 0.5, 1.5), c.z = rnd(M * E, -2, 2);
    c.R = rnd(M * E, -1, 1), c.y = zeros(M * E);
    double *du = zeros(M * E), *ddl = zeros(M * E), *dA = zeros(E * N), *dB = zeros(M * N), *dC = zeros(M * N);
    double *dD = zeros(E), *dz = zeros(M * E), *db = zeros(E);
    void *ws = malloc(be->scan_bwd_workspace(be, F64, c.B, c.L, E, N));
    md_tensor_t tdu = T2(du, M, E), tddl = T2(ddl, M, E), tdA = T2(dA, E, N), tdB = T2(dB, M, N), tdC = T2(dC, M, N);
    md_tensor_t tdD = T1(dD, E), tdz = T2(dz, M, E), tdb = T1(db, E), dy = T2(c.R, M, E);
    md_tensor_t u = T2(c.u, M, E), dl = T2(c.delta, M, E), b = T1(c.bias, E), A = T2(c.A_log, E, N);
    md_tensor_t Bm = T2(c.Bm, M, N), Cm = T2(c.Cm, M, N), D = T1(c.D, E), z = T2(c.z, M, E);
    be->scan_bwd(be, &tdu, &tddl, &tdA, &tdB, &tdC, &tdD, &tdz, &tdb, NULL, &dy, &u, &dl, NULL, NULL, &b, &A, &Bm, &Cm, &D,
                 &z, c.B, NULL, NULL,
                 ws);
    fd_check("scan d/du", c.u, du, M * E, scan_loss, &c, 300);
    fd_check("scan d/ddelta", c.delta, ddl, M * E, scan_loss, &c, 300);
    fd_check("scan d/dA_log", c.A_log, dA, E * N, scan_loss, &c, 300);
    fd_check("scan d/dB", c.Bm, dB, M * N, scan_loss, &c, 300);
    fd_check("scan d/dC", c.Cm, dC, M * N, scan_loss, &c, 300);
    fd_check("scan d/dD", c.D, dD, E, scan_loss, &c, 300);
    fd_check("scan d/dz (gate)", c.z, dz, M * E, scan_loss, &c, 300);
    fd_check("scan d/ddt_bias", c.bias, db, E, scan_loss, &c, 300);
    double *all[] = {c.u, c.delta, c.bias, c.A_log, c.Bm, c.Cm, c.D, c.z, c.R, c.y, du, ddl, dA, dB, dC, dD, dz, db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(ws);
}

/* ---- embedding ---- */

typedef struct { int64_t M, V, D; uint8_t *tok; double *W, *R, *y; } emb_ctx_t;

static double emb_loss(void *p)
{
    emb_ctx_t *c = p;
    md_tensor_t y = T2(c->y, c->M, c->D), W = T2(c->W, c->V, c->D);
    md_tensor_t t = md_tensor_1d(c->tok, MD_DTYPE_U8, MD_DEVICE_CPU, c->M);
    be->embedding_fwd(be, &y, &t, &W);
    return dot(c->y, c->R, c->M * c->D);
}

static void check_embedding(void)
{
    uint8_t tok[9] = {7, 8, 7, 11, 10, 7, 0, 9, 9};
    emb_ctx_t c;
    memset(&c, 0, sizeof c);
    c.M = 9, c.V = 16, c.D = 4, c.tok = tok;
    c.W = rnd(64, -1, 1), c.R = rnd(36, -1, 1), c.y = zeros(36);
    double *dW = zeros(64);
    md_tensor_t tdW = T2(dW, 16, 4), dy = T2(c.R, 9, 4), t = md_tensor_1d(tok, MD_DTYPE_U8, MD_DEVICE_CPU, 9);
    be->embedding_bwd(be, &tdW, &dy, &t);
    fd_check("embedding d/dW", c.W, dW, 64, emb_loss, &c, 100);
    free(c.W), free(c.R), free(c.y), free(dW);
}

/* ---- cross-entropy ---- */

typedef struct { int64_t M, V; uint8_t *tgt; double *l; void *ws; } xent_ctx_t;

static double xent_loss(void *p)
{
    xent_ctx_t *c = p;
    md_tensor_t l = T2(c->l, c->M, c->V), t = md_tensor_1d(c->tgt, MD_DTYPE_U8, MD_DEVICE_CPU, c->M);
    int64_t n;
    return be->xent(be, NULL, &l, &t, 1.0, &n, c->ws);
}

static void check_xent(void)
{
    uint8_t tgt[6] = {MD_TOK_A, MD_TOK_N, MD_TOK_T, MD_TOK_PAD, MD_TOK_G, MD_TOK_C};
    xent_ctx_t c;
    memset(&c, 0, sizeof c);
    c.M = 6, c.V = 16, c.tgt = tgt;
    c.l = rnd(96, -3, 3);
    c.ws = malloc(be->xent_workspace(be, 6));
    double *dl = zeros(96);
    md_tensor_t tdl = T2(dl, 6, 16), l = T2(c.l, 6, 16), t = md_tensor_1d(tgt, MD_DTYPE_U8, MD_DEVICE_CPU, 6);
    int64_t n;
    be->xent(be, &tdl, &l, &t, 1.0, &n, c.ws);
    CHECK(n == 4, "4 counted targets, got %lld", (long long)n);
    fd_check("cross-entropy d/dlogits", c.l, dl, 96, xent_loss, &c, 200);
    free(c.l), free(c.ws), free(dl);
}

/* ---- the whole model ---- */

/* the init, plus noise so that norms, D and the rest sit at generic points */
static void perturb_params(md_model_t *m, double amp)
{
    md_tensor_t P = md_model_param_buffer(m);
    for (int64_t i = 0; i < P.shape[0]; i++) {
        double r = (2 * md_rng_uniform(&rng) - 1) * amp;
        if (P.dtype == MD_DTYPE_F64) ((double *)P.data)[i] += r;
        else ((float *)P.data)[i] += (float)r;
    }
}

static void check_model(void)
{
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 8, 2);
    /* larger steps than the default init's [0.001, 0.1], so that the dt and
     * A gradients stand well above the differences' rounding noise */
    cfg.dt_min = 0.01, cfg.dt_max = 0.5;
    const int64_t B = 2, L = 7;
    md_model_t *m = md_model_new(&cfg, be, F64, B, L);
    CHECK(m != NULL, "tiny f64 model");
    if (!m) return;
    md_model_init_weights(m, 7);
    perturb_params(m, 0.1);
    uint8_t in[14], tgt[14];
    random_tokens(in, tgt, B * L);
    in[3] = MD_TOK_N, tgt[5] = MD_TOK_N, tgt[9] = MD_TOK_PAD;
    md_model_zero_grad(m);
    md_loss_t out;
    CHECK(md_model_forward_backward(m, in, tgt, B, L, 1, &out) == 0, "forward_backward");
    CHECK(out.n_targets == 12, "12 counted targets, got %lld", (long long)out.n_targets);
    const md_params_t *reg = md_model_params(m);
    int64_t n = reg->numel;
    double *grad = malloc((size_t)n * sizeof *grad);
    memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
    double *P = md_model_param_buffer(m).data;
    model_ctx_t c = {m, in, tgt, B, L};
    /* every tensor of both layers, a few elements each, then a random sample */
    for (int64_t i = 0; i < reg->n; i++) {
        const md_param_t *p = &reg->p[i];
        if (p->tied_to >= 0) continue;
        char what[128];
        snprintf(what, sizeof what, "model %s", p->name + (strncmp(p->name, "backbone.", 9) ? 0 : 9));
        fd_check(what, P + p->offset, grad + p->offset, p->numel, model_loss, &c, 6);
    }
    fd_check("model, random subset", P, grad, n, model_loss, &c, 200);

    /* gradients accumulate: a second identical call doubles them exactly */
    CHECK(md_model_forward_backward(m, in, tgt, B, L, 1, &out) == 0, "second call");
    const double *g2 = md_model_grad_buffer(m).data;
    int doubled = 1;   /* up to rounding: tensors fed by several ops (the tied embedding) sum in another order */
    for (int64_t i = 0; i < n; i++) doubled &= fabs(g2[i] - 2 * grad[i]) <= 1e-13 * fabs(grad[i]) + 1e-300;
    CHECK(doubled, "a second call adds the same gradient again");

    /* the recomputing models (block inputs kept, and the scan states
     * too): same loss and gradients, bit for bit */
    md_model_zero_grad(m);
    md_model_forward_backward(m, in, tgt, B, L, 1, &out);
    for (int recompute = MD_RECOMPUTE_INPUTS; recompute <= MD_RECOMPUTE_KEEP_STATES; recompute++) {
        md_model_opts_t opts = {.recompute = recompute};
        md_model_t *mr = md_model_new_ex(&cfg, be, F64, B, L, &opts);
        memcpy(md_model_param_buffer(mr).data, P, (size_t)n * sizeof *P);
        md_model_zero_grad(mr);
        md_loss_t out_r;
        md_model_forward_backward(mr, in, tgt, B, L, 1, &out_r);
        CHECK(out_r.loss_sum == out.loss_sum, "recompute %d: same loss", recompute);
        CHECK(!memcmp(md_model_grad_buffer(mr).data, md_model_grad_buffer(m).data, (size_t)n * sizeof(double)),
              "recompute %d: same gradients", recompute);
        md_model_free(mr);
    }

    /* the CPU scan forms delta from dt_proj's input and weight (ops.h); a
     * backend that does not (as CUDA's) runs dt_proj's GEMM first: the same
     * loss and gradients up to the rounding of delta's sum */
    CHECK(md_scan_forms_delta(be, cfg.dt_rank, 0), "the CPU scan forms delta at dt_rank %lld", (long long)cfg.dt_rank);
    md_backend_t gemm_be = *be;
    gemm_be.scan_max_dt_rank_infer = gemm_be.scan_max_dt_rank_train = 0;
    md_model_t *mg = md_model_new(&cfg, &gemm_be, F64, B, L);
    memcpy(md_model_param_buffer(mg).data, P, (size_t)n * sizeof *P);
    md_model_zero_grad(mg);
    md_loss_t out_g;
    md_model_forward_backward(mg, in, tgt, B, L, 1, &out_g);
    CHECK(fabs(out_g.loss_sum - out.loss_sum) <= 1e-13 * out.loss_sum, "delta by GEMM: loss %.17g vs %.17g",
          out_g.loss_sum, out.loss_sum);
    const double *gg = md_model_grad_buffer(mg).data, *gf = md_model_grad_buffer(m).data;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += (gg[i] - gf[i]) * (gg[i] - gf[i]), den += gf[i] * gf[i];
    CHECK(num <= 1e-26 * den, "delta by GEMM: gradients differ, relative %.3g", sqrt(num / den));
    md_model_free(mg);

    /* one sequence at a time takes the whole-batch path (B = 1): its
     * gradient is checked too, and the two sequences' losses add up to the
     * batch's */
    md_loss_t o1, o2;
    md_model_zero_grad(m);
    CHECK(md_model_forward_backward(m, in, tgt, 1, L, 1, &o1) == 0, "B = 1");
    memcpy(grad, md_model_grad_buffer(m).data, (size_t)n * sizeof *grad);
    CHECK(md_model_forward_backward(m, in + L, tgt + L, 1, L, 0, &o2) == 0, "B = 1, second sequence");
    CHECK(o1.n_targets + o2.n_targets == out.n_targets, "targets of the sequences add up");
    CHECK(fabs(o1.loss_sum + o2.loss_sum - out.loss_sum) <= 1e-12 * out.loss_sum, "losses of the sequences add up: %.17g + %.17g vs %.17g",
          o1.loss_sum, o2.loss_sum, out.loss_sum);
    model_ctx_t c1 = {m, in, tgt, 1, L};
    fd_check("model B = 1, random subset", P, grad, n, model_loss, &c1, 100);
    check_one_sequence_plan(&c1, &cfg, &o1, grad);
    free(grad);
    md_model_free(m);
}

int main(void)
{
    md_verbose = 0;
    be = md_backend_cpu();
    md_rng_seed(&rng, 2024);
    check_rmsnorm();
    check_linear();
    check_conv();
    check_scan();
    check_embedding();
    check_xent();
    check_model();
    check_threads(MD_ARCH_MAMBA, 64, 3, 1000, 1024);
    printf("worst relative error %.2e\n", worst);
    return md_test_done();
}
