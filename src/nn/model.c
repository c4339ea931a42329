#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mamba.h"
#include "nn/model_internal.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }
static size_t round64b(size_t n) { return (n + 63) & ~(size_t)63; }

/* Element counts (act, ws) and byte counts (scan and xent workspaces). */
typedef struct {
    int64_t resid_elems, n_resid, n_acts, head_elems;
    md_acts_plan_t acts_plan;
    int64_t g_elems, dlogits_elems, n_slots;
    size_t acts_bytes, scratch_bytes, op_ws_bytes, xent_ws_bytes, tok_bytes, consts_bytes;
    size_t op_ws_seq, xent_ws_seq;
    int op_ws_in_act;   /* op_ws laid over h_L .. logits (make_plan) */
    int g_in_h0;        /* g laid over h_0 (make_plan) */
    int loss_in_scratch; /* dlogits and xent's workspace laid over the blocks' scratch (make_plan) */
} plan_t;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Elements of the classification head's buffers (model_internal.h; 0 for a
 * language model), counted with the activations in the plan. */
static int64_t cls_elems(const md_config_t *cfg, int64_t max_batch, int64_t max_len)
{
    int64_t C = cfg->n_classes, d = cfg->d_model;
    if (C <= 0) return 0;
    return 2 * round16(max_batch * d) + 2 * round16(max_batch * C) + round16(max_len > max_batch ? max_len : max_batch);
}

/* Carves the head's buffers from a (model_internal.h) and fills the ones. */
static void carve_cls(md_model_t *m, char *a)
{
    int64_t C = m->cfg.n_classes, d = m->cfg.d_model, MB = m->max_batch;
    size_t es = md_dtype_size(m->dtype);
    if (C <= 0) return;
    m->cls_pooled = a;
    a += round16(MB * d) * es;
    m->cls_dpooled = a;
    a += round16(MB * d) * es;
    m->cls_logits = a;
    a += round16(MB * C) * es;
    m->cls_dlogits = a;
    a += round16(MB * C) * es;
    m->cls_ones = a;
    int64_t n = m->max_len > MB ? m->max_len : MB;
    void *ones = md_malloc((size_t)n * es);
    for (int64_t i = 0; i < n; i++) {
        if (m->dtype == MD_DTYPE_F64) ((double *)ones)[i] = 1.0;
        else ((float *)ones)[i] = 1.0f;
    }
    m->be->copy(m->be, m->cls_ones, ones, (size_t)n * es, MD_COPY_H2D);
    free(ones);
    m->cls_host = md_malloc((size_t)(MB * C) * sizeof *m->cls_host);
    m->cls_host_io = md_malloc((size_t)(MB * C) * es);
}

int md_model_keeps_scan_states(const md_config_t *cfg, const md_model_opts_t *opts)
{
    return opts && !opts->inference && opts->recompute == MD_RECOMPUTE_KEEP_STATES && cfg->arch == MD_ARCH_MAMBA;
}

/* lean: without the scan's segment states (MD_ACTS_PER_LAYER_LEAN) */
static void make_plan(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                      int64_t max_len, const md_model_opts_t *opts, int lean, plan_t *p, md_model_memory_t *mem,
                      int64_t n_params)
{
    int64_t M = max_batch * max_len, d = cfg->d_model, V = cfg->vocab_size;
    size_t es = md_dtype_size(dt);
    if (!be) be = md_backend_cpu();   /* planning without a backend: the CPU's figures */
    const md_block_arch_t *arch = md_block_arch(cfg->arch);
    md_dtype_t adt = md_block_act_dtype(arch, be, dt);
    p->resid_elems = round16(M * d);
    int inference = opts && opts->inference;
    if (inference) p->acts_plan = MD_ACTS_FORWARD_ONLY;
    else if (!opts || !opts->recompute) p->acts_plan = lean ? MD_ACTS_PER_LAYER_LEAN : MD_ACTS_PER_LAYER;
    else if (md_model_keeps_scan_states(cfg, opts)) p->acts_plan = MD_ACTS_SHARED_STATES;
    else p->acts_plan = MD_ACTS_SHARED;
    p->acts_bytes = arch->acts_bytes(cfg, be, dt, max_batch, max_len, p->acts_plan);
    /* forward only: block l reads h_l (and, with a deferred residual add,
     * first of all h_{l-1}, into h_l) and then writes h_{l+1}, so two
     * streams in turn suffice: h_{l+1} overwrites h_{l-1} once read */
    p->n_resid = inference && cfg->n_layer + 1 > 2 ? 2 : cfg->n_layer + 1;
    p->n_acts = md_acts_per_layer(p->acts_plan) ? cfg->n_layer : 1;
    /* hf, the final norm's statistics (rstd, and mean for a LayerNorm),
     * logits, and a classifier's head buffers */
    p->head_elems = round16(M * d) + (arch->final_layernorm ? 2 : 1) * round16(M) + round16(M * V) +
                    cls_elems(cfg, max_batch, max_len);
    p->consts_bytes = arch->consts_bytes ? round64b(arch->consts_bytes(cfg, dt, max_len)) : 0;
    p->scratch_bytes = inference ? 0 : arch->scratch_bytes(cfg, adt, M);
    /* g, dL/dh, lives from the final norm's backward on; the stream h_0
     * (the embedding's output) is read only by block 0 and, with a deferred
     * residual add, block 1, so g may take its place once the blocks'
     * forward is done, and block 0's backward gets h_0 again from the
     * embedding, in h_1's place (dead after block 1's backward). Not with a
     * single block, whose h_1 is h_L, where op_ws may lie. dhf takes hf's
     * place. */
    p->g_in_h0 = !inference && cfg->n_layer >= 2;
    p->g_elems = inference || p->g_in_h0 ? 0 : round16(M * d);
    p->dlogits_elems = inference ? 0 : round16(M * V);
    /* the CPU runs batches of >= 2 sequence by sequence (model_internal.h) */
    p->n_slots = 0;
    if (be->device == MD_DEVICE_CPU && max_batch >= 2) p->n_slots = max_batch < MD_MAX_SLOTS ? max_batch : MD_MAX_SLOTS;
    p->op_ws_seq = round64b(arch->ws_bytes(cfg, be, dt, 1, max_len, inference));
    p->xent_ws_seq = round64b(be->xent_workspace(be, max_len));
    size_t op_ws_batch = arch->ws_bytes(cfg, be, dt, max_batch, max_len, inference);
    p->op_ws_bytes = max_size(round64b(op_ws_batch), (size_t)p->n_slots * p->op_ws_seq);
    p->xent_ws_bytes = max_size(round64b(be->xent_workspace(be, M)), (size_t)p->n_slots * p->xent_ws_seq);
    /* The blocks' backward starts once the final norm's backward has read
     * h_L, hf (holding dhf) and its statistics, and xent the logits: from
     * then on they are dead, and a workspace only the backward uses fits
     * there when it is no larger. Not with sequences on threads: one
     * sequence's backward would overwrite another's forward. md_model_new
     * carves h_L, hf, the statistics and logits in this order, back to
     * back. */
    int64_t tail_elems = p->resid_elems + p->head_elems - cls_elems(cfg, max_batch, max_len);
    p->op_ws_in_act = !inference && p->n_slots == 0 && arch->ws_bwd_only &&
                      p->op_ws_bytes <= (size_t)tail_elems * es;
    /* dlogits and the loss's workspace live from xent to the head's
     * backward, before the first block's backward touches its scratch:
     * they fit there when it is large enough (not with sequences on
     * threads, for the same reason as op_ws) */
    size_t loss_bytes = (size_t)p->dlogits_elems * es + p->xent_ws_bytes;
    p->loss_in_scratch = !inference && p->n_slots == 0 && loss_bytes <= p->scratch_bytes;
    p->tok_bytes = 2 * round64b((size_t)M);
    mem->params = n_params * (int64_t)es;
    mem->grads = (1 + p->n_slots) * n_params * (int64_t)es;
    mem->activations = (p->n_resid * p->resid_elems + p->head_elems) * (int64_t)es +
                       p->n_acts * (int64_t)p->acts_bytes + (int64_t)p->consts_bytes;
    mem->workspace = p->g_elems * (int64_t)es + (int64_t)p->scratch_bytes +
                     (int64_t)(p->op_ws_in_act ? 0 : p->op_ws_bytes) + (int64_t)(p->loss_in_scratch ? 0 : loss_bytes);
    mem->tokens = (int64_t)p->tok_bytes;
    mem->weight_copies = adt != dt ? (int64_t)round64b((size_t)n_params * md_dtype_size(adt)) : 0;
    mem->total = mem->params + mem->grads + mem->activations + mem->workspace + mem->tokens + mem->weight_copies;
}

int md_model_plan(const md_config_t *cfg, md_dtype_t dtype, int64_t max_batch, int64_t max_len,
                  const md_model_opts_t *opts, md_model_memory_t *mem)
{
    if (!md_block_arch(cfg->arch) || max_batch < 1 || max_len < 1) return -1;
    plan_t p;
    make_plan(cfg, NULL, dtype, max_batch, max_len, opts, 0, &p, mem, md_config_n_params(cfg));
    return 0;
}

static void log_plan(const md_model_t *m)
{
    static const char *const plan_note[] = {
        [MD_ACTS_PER_LAYER] = "", [MD_ACTS_SHARED] = " (recompute)",
        [MD_ACTS_SHARED_STATES] = " (recompute, scan states kept)", [MD_ACTS_FORWARD_ONLY] = " (inference)",
        [MD_ACTS_PER_LAYER_LEAN] = " (no scan segment states)"};
    const md_model_memory_t *x = &m->mem;
    double MiB = 1048576.0;
    char copies[64] = "";
    if (x->weight_copies)
        snprintf(copies, sizeof copies, ", %s weight copies %.1f MiB", md_dtype_name(m->adtype),
                 x->weight_copies / MiB);
    md_info("%s model d=%lld x %lld blocks, %lld parameters (%s, activations %s), batch <= %lld x length <= %lld%s "
            "on %s: params %.1f MiB%s, grads %.1f MiB, activations %.1f MiB, workspace %.1f MiB, total %.1f MiB",
            md_arch_name(m->cfg.arch), (long long)m->cfg.d_model, (long long)m->cfg.n_layer, (long long)m->reg.numel,
            md_dtype_name(m->dtype), md_dtype_name(m->adtype), (long long)m->max_batch, (long long)m->max_len,
            plan_note[m->acts_plan], m->be->name, x->params / MiB, copies, x->grads / MiB, x->activations / MiB,
            x->workspace / MiB, x->total / MiB);
}

md_model_t *md_model_new(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dtype, int64_t max_batch,
                         int64_t max_len)
{
    return md_model_new_ex(cfg, be, dtype, max_batch, max_len, NULL);
}

int md_model_arch_supported(md_arch_t arch, const md_backend_t *be)
{
    const md_block_arch_t *a = md_block_arch(arch);
    return a && a->supported(be);
}

const md_backend_t *md_backend_for_arch(md_arch_t arch, const md_backend_t *be, const char *device_spec)
{
    if (md_model_arch_supported(arch, be)) return be;
    if (!strcmp(device_spec, "auto") && md_model_arch_supported(arch, md_backend_cpu())) {
        md_warn("the %s backend has no kernels for the %s architecture yet; running on the CPU", be->name,
                md_arch_name(arch));
        return md_backend_cpu();
    }
    md_error("option -x/--device: the %s backend has no kernels for the %s architecture yet; use -x cpu", be->name,
             md_arch_name(arch));
    return NULL;
}

/* The plan's buffers; 0 when one did not fit (those that did stay, for
 * the message and free_plan). */
static int alloc_plan(md_model_t *m, const plan_t *p)
{
    const md_backend_t *be = m->be;
    m->params = be->alloc(be, (size_t)m->mem.params);
    m->grads = be->alloc(be, (size_t)m->mem.grads);   /* the gradients, then the slots */
    m->act = be->alloc(be, (size_t)m->mem.activations);
    m->ws = be->alloc(be, (size_t)m->mem.workspace);
    m->tok_in = be->alloc(be, p->tok_bytes);
    m->wparams = m->mem.weight_copies ? be->alloc(be, (size_t)m->mem.weight_copies) : m->params;
    return m->params && m->grads && m->act && m->ws && m->tok_in && m->wparams;
}

static void free_plan(md_model_t *m)
{
    const md_backend_t *be = m->be;
    if (m->wparams && m->wparams != m->params) be->free(be, m->wparams);
    be->free(be, m->params), be->free(be, m->grads), be->free(be, m->act), be->free(be, m->ws);
    be->free(be, m->tok_in);
    m->wparams = m->params = m->grads = m->act = m->ws = NULL;
    m->tok_in = NULL;
}

md_model_t *md_model_new_ex(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dtype, int64_t max_batch,
                            int64_t max_len, const md_model_opts_t *opts)
{
    if (md_config_validate(cfg, "model") < 0) return NULL;
    const md_block_arch_t *arch = md_block_arch(cfg->arch);
    /* asked to keep scan states, in training, where the model has none */
    int asked_keep = opts && opts->recompute == MD_RECOMPUTE_KEEP_STATES && !opts->inference;
    if (asked_keep && !md_model_keeps_scan_states(cfg, opts))
        md_warn("model: --keep-scan-states keeps Mamba blocks' scan states; a %s model has none and recomputes "
                "as with --recompute",
                md_arch_name(cfg->arch));
    if (!md_model_arch_supported(cfg->arch, be)) {
        md_error("model: the %s backend has no kernels for the %s architecture yet", be->name,
                 md_arch_name(cfg->arch));
        return NULL;
    }
    if (dtype != MD_DTYPE_F32 && !(dtype == MD_DTYPE_F64 && be->device == MD_DEVICE_CPU)) {
        md_error("model: dtype %s is not supported on the %s backend", md_dtype_name(dtype), be->name);
        return NULL;
    }
    if (max_batch < 1 || max_len < 1 || max_batch > (INT64_C(1) << 31) / max_len) {
        md_error("model: batch %lld x length %lld is out of range", (long long)max_batch, (long long)max_len);
        return NULL;
    }
    if (cfg->l_max > 0 && max_len > cfg->l_max) {
        md_error("model: length %lld exceeds the %s model's filter length l_max = %lld", (long long)max_len,
                 md_arch_name(cfg->arch), (long long)cfg->l_max);
        return NULL;
    }
    md_model_t *m = md_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->dtype = dtype;
    m->max_batch = max_batch;
    m->max_len = max_len;
    m->max_rows = max_batch * max_len;
    m->arch = arch;
    m->adtype = md_block_act_dtype(arch, be, dtype);
    if (opts) m->opts = *opts;
    if (md_params_build(&m->cfg, &m->reg) < 0) {
        free(m);
        return NULL;
    }
    plan_t p;
    make_plan(&m->cfg, be, dtype, max_batch, max_len, &m->opts, 0, &p, &m->mem, m->reg.numel);
    size_t es = md_dtype_size(dtype);
    int fits = alloc_plan(m, &p);
    if (!fits && !m->act && m->params && m->grads && p.acts_plan == MD_ACTS_PER_LAYER) {
        /* The scan's segment states buy speed with memory; where the
         * activations do not fit with them, the model runs without (the
         * same results, bit for bit) */
        plan_t lean;
        md_model_memory_t lean_mem;
        make_plan(&m->cfg, be, dtype, max_batch, max_len, &m->opts, 1, &lean, &lean_mem, m->reg.numel);
        if (lean_mem.total < m->mem.total) {
            md_warn("model: no room on %s for the scan's segment states (%.1f MiB of a %.1f MiB plan): planning "
                    "without them, the scan's backward ~13%% slower",
                    be->name, (double)(m->mem.total - lean_mem.total) / 1048576.0, m->mem.total / 1048576.0);
            free_plan(m);
            p = lean, m->mem = lean_mem;
            fits = alloc_plan(m, &p);
        }
    }
    if (!fits) {
        const char *buf = !m->params ? "parameters" : !m->grads ? "gradients" : !m->act ? "activations"
                        : !m->ws ? "workspace" : !m->tok_in ? "token buffers" : "weight copies";
        double asked = (double)(!m->params ? m->mem.params : !m->grads ? m->mem.grads : !m->act ? m->mem.activations
                                : !m->ws ? m->mem.workspace : !m->tok_in ? m->mem.tokens : m->mem.weight_copies);
        md_error("model: out of %s memory for its %s (%.1f MiB of a %.1f MiB plan for batch %lld x length %lld); try "
                 "a smaller batch, --recompute or a shorter -L", be->name, buf, asked / 1048576.0,
                 m->mem.total / 1048576.0, (long long)max_batch, (long long)max_len);
        md_model_free(m);
        return NULL;
    }
    m->tok_tgt = m->tok_in + p.tok_bytes / 2;
    be->memset0(be, m->params, (size_t)m->mem.params);
    be->memset0(be, m->grads, (size_t)m->mem.grads);
    be->memset0(be, m->act, (size_t)m->mem.activations);
    be->memset0(be, m->ws, (size_t)m->mem.workspace);

    int64_t M = m->max_rows, d = m->cfg.d_model, V = m->cfg.vocab_size;
    char *a = m->act;
    m->n_acts = p.n_acts;
    m->acts_plan = p.acts_plan;
    m->acts = md_malloc((size_t)p.n_acts * sizeof *m->acts);
    for (int64_t l = 0; l < p.n_acts; l++, a += p.acts_bytes) m->acts[l] = a;
    /* the last stream, hf, the statistics and logits back to back: the
     * tail an op workspace may lie over (make_plan) */
    m->n_resid = p.n_resid;
    m->resid = md_malloc((size_t)p.n_resid * sizeof *m->resid);
    for (int64_t l = 0; l < p.n_resid; l++, a += p.resid_elems * es) m->resid[l] = a;
    m->hf = a;
    a += round16(M * d) * es;
    m->rstd_f = a;
    a += round16(M) * es;
    if (arch->final_layernorm) {
        m->mean_f = a;
        a += round16(M) * es;
    }
    m->logits = a;
    a += round16(M * V) * es;
    m->tail_bytes = (size_t)(a - (char *)m->resid[m->n_resid - 1]);
    const char *poison = getenv("MD_POISON_DEAD");
    m->poison_dead = poison && !strcmp(poison, "1");
    carve_cls(m, a);
    a += cls_elems(&m->cfg, m->max_batch, m->max_len) * es;
    if (arch->consts_bytes) {
        m->consts = a;
        arch->consts_init(&m->cfg, be, dtype, max_len, m->consts);
    }

    char *w = m->ws, *loss = NULL;   /* loss: dlogits, then xent's workspace, over the scratch (make_plan) */
    if (!m->opts.inference) {   /* the backward's buffers */
        m->scratch = w;
        w += p.scratch_bytes;
        m->g = p.g_in_h0 ? m->resid[0] : w;
        m->dhf = m->hf;
        w += p.g_elems * es;
        if (p.loss_in_scratch) loss = m->scratch;
        m->dlogits = loss ? loss : w;
        if (!loss) w += p.dlogits_elems * es;
    }
    if (p.op_ws_in_act) {
        m->op_ws = m->resid[m->cfg.n_layer];   /* h_L, then hf .. logits */
    } else {
        m->op_ws = w;
        w += p.op_ws_bytes;
    }
    m->xent_ws = loss ? loss + p.dlogits_elems * es : w;
    m->n_slots = p.n_slots;
    m->slot_grads = (char *)m->grads + (size_t)m->reg.numel * es;
    m->op_ws_seq = p.op_ws_seq;
    m->xent_ws_seq = p.xent_ws_seq;
    m->seq_loss = md_malloc((size_t)max_batch * sizeof *m->seq_loss);
    m->seq_count = md_malloc((size_t)max_batch * sizeof *m->seq_count);
    log_plan(m);
    return m;
}

void md_model_free(md_model_t *m)
{
    if (!m) return;
    const md_backend_t *be = m->be;
    if (m->params) be->free(be, m->params);
    if (m->grads) be->free(be, m->grads);
    if (m->act) be->free(be, m->act);
    if (m->ws) be->free(be, m->ws);
    if (m->tok_in) be->free(be, m->tok_in);
    if (m->wparams && m->wparams != m->params) be->free(be, m->wparams);
    free(m->resid);
    free(m->acts);
    free(m->seq_loss);
    free(m->seq_count);
    free(m->cls_host);
    free(m->cls_host_io);
    md_params_free(&m->reg);
    free(m);
}

const md_config_t *md_model_config(const md_model_t *m) { return &m->cfg; }
const md_params_t *md_model_params(const md_model_t *m) { return &m->reg; }
const md_backend_t *md_model_backend(const md_model_t *m) { return m->be; }
md_dtype_t md_model_dtype(const md_model_t *m) { return m->dtype; }
int64_t md_model_max_batch(const md_model_t *m) { return m->max_batch; }
int64_t md_model_max_len(const md_model_t *m) { return m->max_len; }
void md_model_memory(const md_model_t *m, md_model_memory_t *mem) { *mem = m->mem; }

md_tensor_t md_model_param_buffer(md_model_t *m)
{
    return md_tensor_1d(m->params, m->dtype, m->be->device, m->reg.numel);
}

md_tensor_t md_model_grad_buffer(md_model_t *m)
{
    return md_tensor_1d(m->grads, m->dtype, m->be->device, m->reg.numel);
}

void md_model_set_grad_ready(md_model_t *m, md_grad_ready_fn fn, void *ud)
{
    m->grad_ready = fn;
    m->grad_ready_ud = fn ? ud : NULL;
}

int64_t md_param_ready_layer(const md_params_t *reg, const md_param_t *p)
{
    if (p->layer >= 0) return p->layer;
    return p->role == MD_ROLE_EMBEDDING ? -1 : reg->n_layer;
}

void md_model_zero_grad(md_model_t *m)
{
    m->be->memset0(m->be, m->grads, (size_t)m->reg.numel * md_dtype_size(m->dtype));
}

/* Host staging for the parameter copies; not on the training path. */
static void write_params_double(md_model_t *m, const double *src)
{
    size_t n = (size_t)m->reg.numel;
    if (m->dtype == MD_DTYPE_F64) {
        m->be->copy(m->be, m->params, src, n * sizeof(double), MD_COPY_H2D);
        return;
    }
    float *tmp = md_malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = (float)src[i];
    m->be->copy(m->be, m->params, tmp, n * sizeof *tmp, MD_COPY_H2D);
    free(tmp);
}

void md_model_write_params(md_model_t *m, const float *src)
{
    size_t n = (size_t)m->reg.numel;
    if (m->dtype == MD_DTYPE_F32) {
        m->be->copy(m->be, m->params, src, n * sizeof(float), MD_COPY_H2D);
        return;
    }
    double *tmp = md_malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = src[i];
    m->be->copy(m->be, m->params, tmp, n * sizeof *tmp, MD_COPY_H2D);
    free(tmp);
}

void md_model_read_params(const md_model_t *m, float *dst)
{
    size_t n = (size_t)m->reg.numel;
    if (m->dtype == MD_DTYPE_F32) {
        m->be->copy(m->be, dst, m->params, n * sizeof(float), MD_COPY_D2H);
        return;
    }
    double *tmp = md_malloc(n * sizeof *tmp);
    m->be->copy(m->be, tmp, m->params, n * sizeof *tmp, MD_COPY_D2H);
    for (size_t i = 0; i < n; i++) dst[i] = (float)tmp[i];
    free(tmp);
}

static double uniform_pm(md_rng_t *r, double bound) { return (2.0 * md_rng_uniform(r) - 1.0) * bound; }

void md_model_init_weights(md_model_t *m, uint64_t seed)
{
    const md_config_t *c = &m->cfg;
    double *w = md_malloc((size_t)m->reg.numel * sizeof *w);
    double E = (double)c->d_inner, d = (double)c->d_model, K = (double)c->d_conv, R = (double)c->dt_rank;
    double resid_scale = 1.0 / sqrt(2.0 * (double)c->n_layer);   /* Transformer++: two residual adds per block */
    for (int64_t i = 0; i < m->reg.n; i++) {
        const md_param_t *p = &m->reg.p[i];
        if (p->tied_to >= 0) continue;
        md_rng_t r;
        md_rng_seed(&r, md_hash64(seed, UINT64_C(0x696e6974), (uint64_t)i));
        double *x = w + p->offset;
        for (int64_t j = 0; j < p->numel; j++) {
            double v = 0;
            switch (p->role) {
            case MD_ROLE_EMBEDDING: v = md_rng_normal(&r) * c->initializer_range; break;
            case MD_ROLE_NORM:
            case MD_ROLE_NORM_F:
            case MD_ROLE_D: v = 1.0; break;
            case MD_ROLE_IN_PROJ: v = uniform_pm(&r, 1.0 / sqrt(d)); break;
            case MD_ROLE_CONV_W:
            case MD_ROLE_CONV_B: v = uniform_pm(&r, 1.0 / sqrt(K)); break;   /* fan_in = 1 * d_conv */
            case MD_ROLE_X_PROJ: v = uniform_pm(&r, 1.0 / sqrt(E)); break;
            case MD_ROLE_DT_PROJ_W: v = uniform_pm(&r, 1.0 / sqrt(R)); break;
            case MD_ROLE_DT_PROJ_B: {
                double lo = log(c->dt_min), hi = log(c->dt_max);
                double dt = exp(md_rng_uniform(&r) * (hi - lo) + lo);
                if (dt < c->dt_init_floor) dt = c->dt_init_floor;
                v = dt + log(-expm1(-dt));   /* softplus^-1 */
                break;
            }
            case MD_ROLE_A_LOG: v = log((double)(j % c->d_state + 1)); break;
            case MD_ROLE_OUT_PROJ: v = uniform_pm(&r, 1.0 / sqrt(E)) / sqrt((double)c->n_layer); break;
            case MD_ROLE_LM_HEAD: v = md_rng_normal(&r) * c->initializer_range; break;   /* untied only */
            case MD_ROLE_ATTN_NORM:
            case MD_ROLE_MLP_NORM: v = 1.0; break;
            case MD_ROLE_Q_PROJ:
            case MD_ROLE_K_PROJ:
            case MD_ROLE_V_PROJ:
            case MD_ROLE_GATE_PROJ:
            case MD_ROLE_UP_PROJ: v = md_rng_normal(&r) * c->initializer_range; break;
            case MD_ROLE_O_PROJ:
            case MD_ROLE_DOWN_PROJ: v = md_rng_normal(&r) * c->initializer_range * resid_scale; break;
            /* Hyena: HyenaDNA's _init_weights (every Linear N(0, 0.02), biases 0,
             * out_proj and fc2 scaled by 1/sqrt(2 n_layer)), torch's Conv1d
             * default for the short filter (fan_in = K), Sin frequency w, D N(0, 1) */
            case MD_ROLE_LN1_W:
            case MD_ROLE_LN2_W: v = 1.0; break;
            case MD_ROLE_HY_IN_W:
            case MD_ROLE_FC1_W:
            case MD_ROLE_FILT0_W:
            case MD_ROLE_FILT2_W:
            case MD_ROLE_FILT4_W:
            case MD_ROLE_FILT6_W: v = md_rng_normal(&r) * c->initializer_range; break;
            case MD_ROLE_HY_OUT_W:
            case MD_ROLE_FC2_W: v = md_rng_normal(&r) * c->initializer_range * resid_scale; break;
            case MD_ROLE_SHORT_W:
            case MD_ROLE_SHORT_B: v = uniform_pm(&r, 1.0 / sqrt(K)); break;
            case MD_ROLE_FILT_FREQ: v = c->filter_freq; break;
            case MD_ROLE_FILTER_D: v = md_rng_normal(&r); break;
            case MD_ROLE_CLS_W: v = md_rng_normal(&r) * c->initializer_range; break;   /* bias: 0 */
            default: break;
            }
            x[j] = v;
        }
    }
    write_params_double(m, w);
    free(w);
}

double md_model_flops_per_token(const md_config_t *c, int64_t L, double *matmul_only)
{
    const md_block_arch_t *arch = md_block_arch(c->arch);
    if (!arch) {
        if (matmul_only) *matmul_only = 0;
        return 0;
    }
    return arch->flops_per_token(c, L, matmul_only);
}
