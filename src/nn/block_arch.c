/* The per-architecture table of model_internal.h: the Transformer++ block
 * plugs in directly; the Mamba block gets thin adapters that cut its
 * activation and scratch structs out of a set for this call's rows. */
#include <stddef.h>

#include "nn/hyena.h"
#include "nn/mamba.h"
#include "nn/model_internal.h"
#include "nn/transformer.h"

static size_t round64b(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- Mamba ---- */

/* scan_bwd's workspace: none for the forward alone */
static size_t mamba_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch,
                             int64_t len, int inference)
{
    return inference ? 0 : be->scan_bwd_workspace(be, dt, batch, len, cfg->d_inner, cfg->d_state);
}

/* base advanced to this call's first row, for elements of dtype dt */
static void *rows_of(const md_block_ctx_t *c, void *base, int64_t cols, md_dtype_t dt)
{
    return (char *)base + (size_t)(c->r0 * cols) * md_dtype_size(dt);
}

/* The set at base for the plan's rows, advanced to this call's rows; the
 * scan states of a per-sequence call sit at a fixed per-sequence stride,
 * and where the set keeps every layer's, at the layer's place. */
static md_mamba_acts_t mamba_acts(const md_block_ctx_t *c, int layer, void *base)
{
    const md_config_t *cfg = c->cfg;
    int64_t E = cfg->d_inner, X = cfg->dt_rank + 2 * cfg->d_state;
    md_mamba_acts_t a, r;
    md_dtype_t adt = c->adtype;
    md_mamba_acts_carve(cfg, c->be, c->dtype, c->max_batch, c->max_len, c->acts_plan, base, &a);
    r.rstd = rows_of(c, a.rstd, 1, c->dtype);
    r.xz = rows_of(c, a.xz, 2 * E, adt);
    r.u = rows_of(c, a.u, E, adt);
    r.xdbl = rows_of(c, a.xdbl, X, adt);
    r.delta = rows_of(c, a.delta, E, adt);
    r.y = rows_of(c, a.y, E, adt);
    r.hn = a.hn ? rows_of(c, a.hn, cfg->d_model, adt) : NULL;
    size_t states_seq = round64b(c->be->scan_states_size(c->be, adt, 1, c->max_len, E, cfg->d_state));
    size_t stride = md_mamba_states_stride(cfg, c->be, c->dtype, c->max_batch, c->max_len, c->acts_plan);
    size_t layer_at = (size_t)layer * stride;
    r.states = (char *)a.states + layer_at + (c->whole ? 0 : (size_t)c->seq * states_seq);
    r.seg_states = c->whole ? a.seg_states : NULL;   /* planned for whole batches only */
    return r;
}

static void mamba_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts)
{
    md_mamba_acts_t a = mamba_acts(c, layer, acts);
    md_mamba_fwd(c, layer, h_in, h_out, &a);
}

static void mamba_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g, void *acts, void *scratch)
{
    const md_config_t *cfg = c->cfg;
    int64_t E = cfg->d_inner, X = cfg->dt_rank + 2 * cfg->d_state;
    md_mamba_acts_t a = mamba_acts(c, layer, acts);
    md_mamba_scratch_t s, r;
    md_dtype_t adt = c->adtype;
    md_mamba_scratch_carve(cfg, adt, c->max_batch * c->max_len, scratch, &s);
    r.dxz = rows_of(c, s.dxz, 2 * E, adt);
    r.du = rows_of(c, s.du, E, adt);
    r.dxdbl = rows_of(c, s.dxdbl, X, adt);
    md_mamba_bwd(c, layer, h_in, g, &a, &r);
}

static double mamba_flops(const md_config_t *c, int64_t L, double *matmul_only)
{
    double d = (double)c->d_model, E = (double)c->d_inner, N = (double)c->d_state, R = (double)c->dt_rank;
    double K = (double)c->d_conv, V = (double)c->vocab_size;
    double mm = c->n_layer * 2.0 * (d * 2 * E + E * (R + 2 * N) + R * E + E * d) + 2.0 * V * d;
    /* per block: scan ~9 per state element (exp counted as one), its
     * per-channel terms ~20; conv 2K + 5 per channel; norm ~4 per channel */
    double ew = c->n_layer * (9.0 * E * N + 20.0 * E + (2.0 * K + 5.0) * E + 4.0 * d) + 4.0 * d + 5.0 * V;
    (void)L;
    if (matmul_only) *matmul_only = mm;
    return mm + ew;
}

static int mamba_supported(const md_backend_t *be)
{
    return be->scan_fwd && be->scan_bwd && be->conv1d_silu_fwd && be->conv1d_silu_bwd;
}

/* ---- Transformer++ and Hyena's workspace: their sizes, the same for the forward alone ---- */

static size_t tfm_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                             int64_t max_len, md_acts_plan_t plan)
{
    (void)plan;
    return md_tfm_acts_bytes(cfg, be, dt, max_batch, max_len);
}

static size_t tfm_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                           int inference)
{
    (void)inference;
    return md_tfm_ws_bytes(cfg, be, dt, batch, len);
}

/* fftconv_fwd uses its workspace too */
static size_t hyena_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch,
                             int64_t len, int inference)
{
    (void)inference;
    return md_hyena_ws_bytes(cfg, be, dt, batch, len);
}

/* ---- Transformer++ ---- */

static int tfm_supported(const md_backend_t *be)
{
    return be->rope && be->attention_fwd && be->attention_bwd && be->attention_workspace && be->swiglu_fwd &&
           be->swiglu_bwd && be->linear_fwd;
}

/* ---- Hyena ---- */

static int hyena_supported(const md_backend_t *be)
{
    return be->bias_add && be->bias_bwd && be->layernorm_fwd && be->layernorm_bwd && be->gelu_fwd && be->gelu_bwd &&
           be->sin_fwd && be->sin_bwd && be->hyena_modulate && be->dwconv_fwd && be->dwconv_bwd &&
           be->fftconv_workspace && be->fftconv_spectra_bytes && be->fftconv_fwd && be->fftconv_bwd && be->linear_fwd &&
           be->linear_bwd_dx;
}

static const md_block_arch_t archs[] = {
    [MD_ARCH_MAMBA] = {md_mamba_acts_bytes, md_mamba_scratch_bytes, mamba_ws_bytes, mamba_fwd, mamba_bwd,
                       mamba_flops, mamba_supported, .defer_residual = 1, .act_storage = 1, .ws_bwd_only = 1},
    [MD_ARCH_TRANSFORMER] = {tfm_acts_bytes, md_tfm_scratch_bytes, tfm_ws_bytes, md_tfm_fwd, md_tfm_bwd,
                             md_tfm_flops_per_token, tfm_supported, .act_storage = 1},   /* attention_fwd uses op_ws too */
    [MD_ARCH_HYENA] = {md_hyena_acts_bytes, md_hyena_scratch_bytes, hyena_ws_bytes, md_hyena_fwd, md_hyena_bwd,
                       md_hyena_flops_per_token, hyena_supported, .consts_bytes = md_hyena_consts_bytes,
                       .consts_init = md_hyena_consts_init, .final_layernorm = 1, .act_storage = 1},
};

const md_block_arch_t *md_block_arch(md_arch_t arch)
{
    if ((unsigned)arch >= sizeof archs / sizeof archs[0] || !archs[arch].fwd) return NULL;
    return &archs[arch];
}
