#include "nn/hyena.h"

#include <math.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/xalloc.h"

/* Columns of each activation sub-buffer, in carve order. The filter's
 * (FP* before Sin, FA* after, K the modulated filter) use the call's first
 * L rows. The per-token tensors the GEMMs, the short conv and the long
 * convolution read and write are stored in the activation dtype (bf16 on
 * the bf16 table); the LayerNorm statistics, the residual stream's h_mid
 * and the filter (L rows, fp32 into the FFTs) in the model's. */
enum { A_MEAN1, A_RSTD1, A_HN1, A_P, A_C, A_Y, A_HMID, A_MEAN2, A_RSTD2, A_HN2, A_F1, A_ACT,
       A_FP1, A_FA1, A_FP2, A_FA2, A_FP3, A_FA3, A_K, N_ACTS };
/* The backward's buffers; lifetimes that do not overlap share one: the
 * MLP's dact and then the mixer's dc (dx0 | dx1 | dv); dhn and, between the
 * two LayerNorm backwards, dy; dp's first d columns hold g in the
 * activation dtype for the GEMMs before dwconv_bwd writes dp. dk and the
 * filter's are of the model's dtype. */
enum { S_DACT_DC, S_DHN_DY, S_DP, S_DK, S_DFA, S_DFB, N_SCRATCH };

static void act_cols(const md_config_t *c, int64_t *cols)
{
    int64_t d = c->d_model, F = c->d_ff, O = c->filter_order;
    int64_t v[N_ACTS] = {1, 1, d, 3 * d, 3 * d, d, d, 1, 1, d, F, F, O, O, O, O, O, O, d};
    for (int i = 0; i < N_ACTS; i++) cols[i] = v[i];
}

/* dt: the model's dtype, adt: the activation dtype */
static void act_dtypes(md_dtype_t dt, md_dtype_t adt, md_dtype_t *dts)
{
    for (int i = 0; i < N_ACTS; i++) dts[i] = dt;
    const int stored[] = {A_HN1, A_P, A_C, A_Y, A_HN2, A_F1, A_ACT};
    for (size_t i = 0; i < sizeof stored / sizeof stored[0]; i++) dts[stored[i]] = adt;
}

static void scratch_cols(const md_config_t *c, int64_t *cols)
{
    int64_t d = c->d_model, F = c->d_ff, O = c->filter_order;
    int64_t v[N_SCRATCH] = {F > 3 * d ? F : 3 * d, d, 3 * d, d, O, O};
    for (int i = 0; i < N_SCRATCH; i++) cols[i] = v[i];
}

static void scratch_dtypes(md_dtype_t dt, md_dtype_t adt, md_dtype_t *dts)
{
    for (int i = 0; i < N_SCRATCH; i++) dts[i] = i < S_DK ? adt : dt;
}

/* The set's (M, ·) and filter buffers, before the kept spectra */
static size_t matrices_bytes(const md_config_t *cfg, md_dtype_t dt, md_dtype_t adt, int64_t max_rows)
{
    int64_t cols[N_ACTS];
    md_dtype_t dts[N_ACTS];
    act_cols(cfg, cols);
    act_dtypes(dt, adt, dts);
    return md_block_set_bytes_dt(cols, dts, N_ACTS, max_rows);
}

/* After the matrices, the long convolution's forward spectra, kept for
 * the backward where the backend keeps any (fftconv_spectra_bytes: CUDA,
 * its transforms of s and k and the convolution spare the backward 3 of
 * the 9 transforms of C sequences it would redo at B = 1); none for a
 * forward with no backward to follow (kept_spectra). */
size_t md_hyena_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                           int64_t max_len, md_acts_plan_t plan)
{
    size_t spectra = plan == MD_ACTS_FORWARD_ONLY ? 0 : be->fftconv_spectra_bytes(be, max_batch, max_len, cfg->d_model);
    return matrices_bytes(cfg, dt, md_act_dtype(be, dt), max_batch * max_len) + (spectra + 63) / 64 * 64;
}

/* The kept spectra of this call, or NULL: none kept by the backend, a
 * forward pass with no backward to follow, or one sequence of a batch
 * (the CPU's per-sequence calls; it keeps none anyway). The forward and
 * the backward of one call find the same buffer. */
static void *kept_spectra(const md_block_ctx_t *c, void *acts)
{
    if (md_block_forward_only(c) || !c->whole || !c->be->fftconv_spectra_bytes(c->be, c->B, c->L, c->cfg->d_model)) return NULL;
    return (char *)acts + matrices_bytes(c->cfg, c->dtype, c->adtype, c->max_batch * c->max_len);
}

/* The model's dtype behind an activation dtype: only f32 models store in
 * bf16 (md_act_dtype). */
static md_dtype_t model_dtype(md_dtype_t adt) { return adt == MD_DTYPE_BF16 ? MD_DTYPE_F32 : adt; }

size_t md_hyena_scratch_bytes(const md_config_t *cfg, md_dtype_t adt, int64_t max_rows)
{
    int64_t cols[N_SCRATCH];
    md_dtype_t dts[N_SCRATCH];
    scratch_cols(cfg, cols);
    scratch_dtypes(model_dtype(adt), adt, dts);
    return md_block_set_bytes_dt(cols, dts, N_SCRATCH, max_rows);
}

size_t md_hyena_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len)
{
    return be->fftconv_workspace(be, dt, batch, len, cfg->d_model);
}

size_t md_hyena_consts_bytes(const md_config_t *cfg, md_dtype_t dt, int64_t max_len)
{
    return (size_t)(max_len * MD_HYENA_EMB_DIM) * md_dtype_size(dt);
}

void md_hyena_consts_init(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_len,
                          void *consts)
{
    int64_t n = max_len * MD_HYENA_EMB_DIM, lm = cfg->l_max;
    double *z = md_malloc((size_t)n * sizeof *z);
    const double f[2] = {1e-4, 1.0};   /* torch.linspace(1e-4, bands - 1, bands), bands = 2 */
    for (int64_t l = 0; l < max_len; l++) {
        double *r = z + l * MD_HYENA_EMB_DIM, w = 2.0 * M_PI * (double)l / (double)lm;
        r[0] = lm > 1 ? (double)l / (double)(lm - 1) : 0.0;
        r[1] = cos(f[0] * w), r[2] = cos(f[1] * w);     /* exp(-i f w): real parts, */
        r[3] = -sin(f[0] * w), r[4] = -sin(f[1] * w);   /* then imaginary parts */
    }
    if (dt == MD_DTYPE_F64) {
        be->copy(be, consts, z, (size_t)n * sizeof *z, MD_COPY_H2D);
    } else {
        float *zf = md_malloc((size_t)n * sizeof *zf);
        for (int64_t i = 0; i < n; i++) zf[i] = (float)z[i];
        be->copy(be, consts, zf, (size_t)n * sizeof *zf, MD_COPY_H2D);
        free(zf);
    }
    free(z);
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

static md_tensor_t vec(const md_block_ctx_t *c, void *p, int64_t n) { return md_tensor_1d(p, c->dtype, c->be->device, n); }

/* One block's tensors, viewed in the parameter or the gradient buffer. */
typedef struct {
    md_tensor_t ln1_w, ln1_b, in_w, in_b, out_w, out_b, short_w, short_b, D;
    md_tensor_t f0_w, f0_b, freq, f2_w, f2_b, f4_w, f4_b, f6_w;
    md_tensor_t ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} hyena_tensors_t;

/* The GEMMs over stored activations (in_proj, out_proj, fc1, fc2) read
 * their weights in gemm_base, of dtype gemm_dt (the parameters' copies in
 * the activation dtype, or the gradients), and so do the biases of the
 * layers whose output is stored (in_proj, fc1): a Linear's bias has its
 * output's dtype. */
static hyena_tensors_t hyena_tensors(const md_block_ctx_t *c, void *base, void *gemm_base, md_dtype_t gemm_dt,
                                     int layer)
{
#define V(role) md_param_view(c, base, layer, role)
#define G(role) md_param_view_as(c, gemm_base, gemm_dt, layer, role)
    hyena_tensors_t t = {
        V(MD_ROLE_LN1_W), V(MD_ROLE_LN1_B), G(MD_ROLE_HY_IN_W), G(MD_ROLE_HY_IN_B), G(MD_ROLE_HY_OUT_W),
        V(MD_ROLE_HY_OUT_B), V(MD_ROLE_SHORT_W), V(MD_ROLE_SHORT_B), V(MD_ROLE_FILTER_D),
        V(MD_ROLE_FILT0_W), V(MD_ROLE_FILT0_B), V(MD_ROLE_FILT_FREQ), V(MD_ROLE_FILT2_W), V(MD_ROLE_FILT2_B),
        V(MD_ROLE_FILT4_W), V(MD_ROLE_FILT4_B), V(MD_ROLE_FILT6_W),
        V(MD_ROLE_LN2_W), V(MD_ROLE_LN2_B), G(MD_ROLE_FC1_W), G(MD_ROLE_FC1_B), G(MD_ROLE_FC2_W), V(MD_ROLE_FC2_B),
    };
#undef G
#undef V
    return t;
}

/* The views of one activation set for this call. */
typedef struct {
    md_tensor_t mean1, rstd1, hn1, p, cc, x0, x1, v, y, hmid, mean2, rstd2, hn2, f1, act;
    md_tensor_t z, fp[3], fa[3], k;
} hyena_acts_t;

static hyena_acts_t acts_view(const md_block_ctx_t *c, void *acts)
{
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, L = c->L, d = cfg->d_model, F = cfg->d_ff, O = cfg->filter_order;
    int64_t cols[N_ACTS];
    md_dtype_t dts[N_ACTS];
    void *a[N_ACTS];
    act_cols(cfg, cols);
    act_dtypes(c->dtype, c->adtype, dts);
    md_block_slice_dt(c, acts, cols, dts, N_ACTS, a);
    hyena_acts_t t;
    t.mean1 = vec(c, a[A_MEAN1], M), t.rstd1 = vec(c, a[A_RSTD1], M), t.hn1 = amat(c, a[A_HN1], M, d);
    t.p = amat(c, a[A_P], M, 3 * d), t.cc = amat(c, a[A_C], M, 3 * d);
    t.x0 = md_tensor_cols(t.cc, 0, d), t.x1 = md_tensor_cols(t.cc, d, d), t.v = md_tensor_cols(t.cc, 2 * d, d);
    t.y = amat(c, a[A_Y], M, d), t.hmid = mat(c, a[A_HMID], M, d);
    t.mean2 = vec(c, a[A_MEAN2], M), t.rstd2 = vec(c, a[A_RSTD2], M), t.hn2 = amat(c, a[A_HN2], M, d);
    t.f1 = amat(c, a[A_F1], M, F), t.act = amat(c, a[A_ACT], M, F);
    t.z = mat(c, (void *)c->consts, L, MD_HYENA_EMB_DIM);
    for (int i = 0; i < 3; i++) t.fp[i] = mat(c, a[A_FP1 + 2 * i], L, O), t.fa[i] = mat(c, a[A_FA1 + 2 * i], L, O);
    t.k = mat(c, a[A_K], L, d);
    return t;
}

/* k = modulate(sin(sin(sin(z W0^T + b0) W2^T + b2) W4^T + b4) W6^T) */
static void filter_fwd(const md_block_ctx_t *c, const hyena_tensors_t *w, hyena_acts_t *a)
{
    const md_backend_t *be = c->be;
    const md_tensor_t *W[3] = {&w->f0_w, &w->f2_w, &w->f4_w}, *b[3] = {&w->f0_b, &w->f2_b, &w->f4_b};
    for (int i = 0; i < 3; i++) {
        be->linear_fwd(be, &a->fp[i], NULL, i ? &a->fa[i - 1] : &a->z, W[i], b[i], NULL, MD_ACT_NONE);
        be->sin_fwd(be, &a->fa[i], &a->fp[i], &w->freq);
    }
    be->gemm(be, 0, 1, 1.0, &a->fa[2], &w->f6_w, 0.0, &a->k);
    be->hyena_modulate(be, &a->k, c->cfg->l_max, MD_HYENA_MOD_TARGET, MD_HYENA_MOD_FAST, MD_HYENA_MOD_SLOW);
}

/* From dk (L, d), which it overwrites: the filter MLP's gradients. */
static void filter_bwd(const md_block_ctx_t *c, const hyena_tensors_t *w, hyena_tensors_t *gw, const hyena_acts_t *a,
                       md_tensor_t *dk, md_tensor_t *dfa, md_tensor_t *dfb)
{
    const md_backend_t *be = c->be;
    const md_tensor_t *W[3] = {&w->f0_w, &w->f2_w, &w->f4_w};
    md_tensor_t *gW[3] = {&gw->f0_w, &gw->f2_w, &gw->f4_w}, *gb[3] = {&gw->f0_b, &gw->f2_b, &gw->f4_b};
    be->hyena_modulate(be, dk, c->cfg->l_max, MD_HYENA_MOD_TARGET, MD_HYENA_MOD_FAST, MD_HYENA_MOD_SLOW);
    be->gemm(be, 0, 0, 1.0, dk, &w->f6_w, 0.0, dfa);
    be->gemm(be, 1, 0, 1.0, dk, &a->fa[2], 1.0, &gw->f6_w);
    md_tensor_t *cur = dfa, *next = dfb;   /* dL/d(fa[i]) in cur */
    for (int i = 2; i >= 0; i--) {
        /* now dL/d(fp[i]), and the bias's gradient from it */
        be->sin_bwd(be, cur, &gw->freq, gb[i], cur, &a->fp[i], &w->freq);
        be->gemm(be, 1, 0, 1.0, cur, i ? &a->fa[i - 1] : &a->z, 1.0, gW[i]);
        if (i) {
            be->gemm(be, 0, 0, 1.0, cur, W[i], 0.0, next);
            md_tensor_t *t = cur;
            cur = next, next = t;
        }
    }
}

void md_hyena_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, d = cfg->d_model;
    hyena_acts_t a = acts_view(c, acts);
    hyena_tensors_t w = hyena_tensors(c, c->params, c->wparams, c->adtype, layer);
    md_tensor_t hin = mat(c, (void *)h_in, M, d);

    be->layernorm_fwd(be, &a.hn1, &a.mean1, &a.rstd1, &hin, &w.ln1_w, &w.ln1_b, cfg->norm_eps);
    be->linear_fwd(be, &a.p, NULL, &a.hn1, &w.in_w, &w.in_b, NULL, MD_ACT_NONE);
    be->dwconv_fwd(be, &a.cc, &a.p, &w.short_w, &w.short_b, c->B);
    filter_fwd(c, &w, &a);
    be->fftconv_fwd(be, &a.y, &a.x0, &a.x1, &a.v, &a.k, &w.D, c->B, c->op_ws, kept_spectra(c, acts));
    be->linear_fwd(be, &a.hmid, NULL, &a.y, &w.out_w, &w.out_b, &hin, MD_ACT_NONE);
    be->layernorm_fwd(be, &a.hn2, &a.mean2, &a.rstd2, &a.hmid, &w.ln2_w, &w.ln2_b, cfg->norm_eps);
    be->linear_fwd(be, &a.act, &a.f1, &a.hn2, &w.fc1_w, &w.fc1_b, NULL, MD_ACT_GELU_TANH);
    if (h_out) {
        md_tensor_t hout = mat(c, h_out, M, d);
        be->linear_fwd(be, &hout, NULL, &a.act, &w.fc2_w, &w.fc2_b, &a.hmid, MD_ACT_NONE);
    }
}

void md_hyena_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g_, void *acts, void *scratch)
{
    const md_backend_t *be = c->be;
    const md_config_t *cfg = c->cfg;
    int64_t M = c->M, L = c->L, d = cfg->d_model, F = cfg->d_ff, O = cfg->filter_order;
    hyena_acts_t a = acts_view(c, acts);
    hyena_tensors_t w = hyena_tensors(c, c->params, c->wparams, c->adtype, layer);
    hyena_tensors_t gw = hyena_tensors(c, c->grads, c->grads, c->dtype, layer);
    int64_t scols[N_SCRATCH];
    md_dtype_t sdts[N_SCRATCH];
    void *s[N_SCRATCH];
    scratch_cols(cfg, scols);
    scratch_dtypes(c->dtype, c->adtype, sdts);
    md_block_slice_dt(c, scratch, scols, sdts, N_SCRATCH, s);
    md_tensor_t hin = mat(c, (void *)h_in, M, d), g = mat(c, g_, M, d);
    md_tensor_t dact = amat(c, s[S_DACT_DC], M, F), dc = amat(c, s[S_DACT_DC], M, 3 * d);
    md_tensor_t dhn = amat(c, s[S_DHN_DY], M, d), dy = amat(c, s[S_DHN_DY], M, d);
    md_tensor_t dp = amat(c, s[S_DP], M, 3 * d), dk = mat(c, s[S_DK], L, d);
    md_tensor_t dfa = mat(c, s[S_DFA], L, O), dfb = mat(c, s[S_DFB], L, O);
    md_tensor_t dx0 = md_tensor_cols(dc, 0, d), dx1 = md_tensor_cols(dc, d, d), dv = md_tensor_cols(dc, 2 * d, d);
    /* g as the GEMMs read it: a copy in the activation dtype, in dp */
    md_tensor_t g_mm = c->adtype != c->dtype ? md_tensor_cols(dp, 0, d) : g;

    /* MLP: h_out = h_mid + gelu(hn2 fc1^T + b1) fc2^T + b2 */
    if (c->adtype != c->dtype) be->convert(be, &g_mm, &g);
    be->linear_bwd_dx(be, &dact, &g_mm, &w.fc2_w, &a.f1, MD_ACT_GELU_TANH);
    be->gemm(be, 1, 0, 1.0, &g_mm, &a.act, 1.0, &gw.fc2_w);
    be->bias_bwd(be, &gw.fc2_b, &g);
    be->gemm(be, 0, 0, 1.0, &dact, &w.fc1_w, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dact, &a.hn2, 1.0, &gw.fc1_w);
    be->bias_bwd(be, &gw.fc1_b, &dact);
    be->layernorm_bwd(be, &g, &gw.ln2_w, &gw.ln2_b, &dhn, &a.hmid, &w.ln2_w, &a.mean2, &a.rstd2, 1);
    /* mixer: h_mid = h_in + y out_proj^T + b */
    if (c->adtype != c->dtype) be->convert(be, &g_mm, &g);
    be->gemm(be, 0, 0, 1.0, &g_mm, &w.out_w, 0.0, &dy);
    be->gemm(be, 1, 0, 1.0, &g_mm, &a.y, 1.0, &gw.out_w);
    be->bias_bwd(be, &gw.out_b, &g);
    be->memset0(be, dk.data, (size_t)(L * d) * md_dtype_size(c->dtype));
    be->fftconv_bwd(be, &dx0, &dx1, &dv, &dk, &gw.D, &dy, &a.x0, &a.x1, &a.v, &a.k, &w.D, c->B, c->op_ws,
                    kept_spectra(c, acts));
    filter_bwd(c, &w, &gw, &a, &dk, &dfa, &dfb);
    be->dwconv_bwd(be, &dp, &gw.short_w, &gw.short_b, &dc, &a.p, &w.short_w, c->B);
    be->gemm(be, 0, 0, 1.0, &dp, &w.in_w, 0.0, &dhn);
    be->gemm(be, 1, 0, 1.0, &dp, &a.hn1, 1.0, &gw.in_w);
    be->bias_bwd(be, &gw.in_b, &dp);
    be->layernorm_bwd(be, &g, &gw.ln1_w, &gw.ln1_b, &dhn, &hin, &w.ln1_w, &a.mean1, &a.rstd1, 1);
}

double md_hyena_flops_per_token(const md_config_t *c, int64_t L, double *matmul_only)
{
    double d = (double)c->d_model, F = (double)c->d_ff, O = (double)c->filter_order, V = (double)c->vocab_size;
    double nl = (double)c->n_layer, K = (double)c->d_conv;
    /* projections and MLP; the filter MLP once per position of a sequence */
    double mm = nl * 2.0 * (3 * d * d + d * d + 2 * d * F + MD_HYENA_EMB_DIM * O + 2 * O * O + O * d) + 2.0 * V * d;
    /* per channel: three real transforms of n = 2L, ~2.5 n log2 n each, per L tokens */
    double fft = 3.0 * 2.5 * 2.0 * log2(2.0 * (double)L);
    /* LayerNorms ~8 per value, short conv 2K per value of 3d, gating ~6 per d,
     * GELU ~10 per F, Sin ~10 per O (three), modulation 1 per d, biases */
    double ew = nl * (fft * d + 16.0 * d + 2.0 * K * 3 * d + 6.0 * d + 10.0 * F + 30.0 * O + d + 5 * d + F) +
                8.0 * d + 5.0 * V;
    if (matmul_only) *matmul_only = mm;
    return mm + ew;
}
