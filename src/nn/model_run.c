/* The forward and backward drivers.
 *
 * A "span" is a run of rows of every (M, ·) buffer: the whole batch, or
 * one sequence. On a GPU (and on the CPU for B = 1) the whole batch is one
 * span and each op parallelises inside. On the CPU a batch of B >= 2 runs
 * sequence by sequence on OpenMP threads, each sequence's forward and
 * backward back to back with serial ops: one fork-join per step instead of
 * a few hundred, which on a couple of cores shared with other work is the
 * difference between scaling and slowing down. Parameter gradients then go
 * to per-slot buffers, summed in a fixed order (model_internal.h). Slots
 * are handed to threads dynamically: which thread runs a slot changes
 * nothing in the result, and a thread the OS preempts holds up less.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_internal.h"
#include "util/log.h"
#include "util/xalloc.h"

typedef struct {
    int64_t r0, B, L;        /* rows r0 .. r0 + B L */
    int64_t seq;             /* the sequence's index for per-sequence regions; 0 for a whole batch */
    int whole;               /* 1: the whole batch (per-sequence strides do not apply) */
    void *grads;             /* where parameter gradients are added */
    void *op_ws, *xent_ws;
} span_t;

static size_t es_of(const md_model_t *m) { return md_dtype_size(m->dtype); }

static void *rows(const md_model_t *m, void *base, const span_t *s, int64_t cols)
{
    return (char *)base + (size_t)(s->r0 * cols) * es_of(m);
}

static md_tensor_t mat(const md_model_t *m, void *p, int64_t r, int64_t c)
{
    return md_tensor_2d(p, m->dtype, m->be->device, r, c);
}

static md_block_ctx_t span_ctx(md_model_t *m, const span_t *s)
{
    md_block_ctx_t c;
    c.be = m->be;
    c.cfg = &m->cfg;
    c.reg = &m->reg;
    c.dtype = m->dtype;
    c.adtype = m->adtype;
    c.B = s->B;
    c.L = s->L;
    c.M = s->B * s->L;
    c.params = m->params;
    c.wparams = m->wparams;
    c.grads = s->grads;
    c.op_ws = s->op_ws;
    c.max_batch = m->max_batch;
    c.max_len = m->max_len;
    c.r0 = s->r0;
    c.seq = s->seq;
    c.whole = s->whole;
    c.consts = m->consts;
    c.branch_only = 0;
    c.h_res = NULL;
    c.next_norm = NULL;
    c.norm_y = c.norm_rstd = NULL;
    c.acts_plan = m->acts_plan;
    return c;
}

static void *layer_acts(const md_model_t *m, int64_t layer) { return m->acts[m->n_acts == 1 ? 0 : layer]; }

/* The residual stream h_l (model_internal.h: all of them, or two in turn). */
static void *resid(const md_model_t *m, int64_t l) { return m->resid[l % m->n_resid]; }

/* Embedding, blocks and norm_f over the span: h_L in resid[n_layer], the
 * normalised output in hf. Where the block allows it, each residual add
 * is deferred into the RMSNorm that reads its result (add_rmsnorm_fwd):
 * block l writes only its branch to resid[l + 1], which block l + 1 (or
 * norm_f) completes in place by adding resid[l]. In inference, where the
 * blocks share one activation set, the add and that RMSNorm go into block
 * l's out_proj instead (mamba.h, next_norm): block l writes the complete
 * resid[l + 1] and block l + 1's hn (the last block: hf and rstd_f). */
static void span_trunk(md_model_t *m, const span_t *s)
{
    const md_backend_t *be = m->be;
    md_block_ctx_t c = span_ctx(m, s);
    int64_t M = c.M, d = m->cfg.d_model, nl = m->cfg.n_layer;
    int defer = m->arch->defer_residual;
    int fuse = defer && md_block_forward_only(&c) && !m->arch->final_layernorm;
    md_tensor_t tok = md_tensor_1d(m->tok_in + s->r0, MD_DTYPE_U8, be->device, M);
    md_tensor_t emb = md_param_view(&c, m->params, -1, MD_ROLE_EMBEDDING);
    md_tensor_t h0 = mat(m, rows(m, resid(m, 0), s, d), M, d);
    be->embedding_fwd(be, &h0, &tok, &emb);
    md_tensor_t hL = mat(m, rows(m, resid(m, nl), s, d), M, d), hf = mat(m, rows(m, m->hf, s, d), M, d);
    md_tensor_t rstd = md_tensor_1d(rows(m, m->rstd_f, s, 1), m->dtype, be->device, M);
    md_tensor_t nw = md_param_view(&c, m->params, -1, MD_ROLE_NORM_F);
    c.branch_only = defer && !fuse;
    for (int64_t l = 0; l < nl; l++) {
        c.h_res = c.branch_only && l > 0 ? rows(m, resid(m, l - 1), s, d) : NULL;
        md_tensor_t next_w = fuse && l + 1 < nl ? md_param_view(&c, m->params, (int)l + 1, MD_ROLE_NORM) : nw;
        c.next_norm = fuse ? &next_w : NULL;
        c.norm_y = fuse && l + 1 == nl ? hf.data : NULL;
        c.norm_rstd = fuse && l + 1 == nl ? rstd.data : NULL;
        m->arch->fwd(&c, (int)l, rows(m, resid(m, l), s, d), rows(m, resid(m, l + 1), s, d), layer_acts(m, l));
    }
    if (m->arch->final_layernorm) {
        md_tensor_t mean = md_tensor_1d(rows(m, m->mean_f, s, 1), m->dtype, be->device, M);
        md_tensor_t nb = md_param_view(&c, m->params, -1, MD_ROLE_NORM_F_B);
        be->layernorm_fwd(be, &hf, &mean, &rstd, &hL, &nw, &nb, m->cfg.norm_eps);
    } else if (c.branch_only) {
        md_tensor_t hprev = mat(m, rows(m, resid(m, nl - 1), s, d), M, d);
        be->add_rmsnorm_fwd(be, &hL, &hf, &rstd, &hL, &hprev, &nw, m->cfg.norm_eps);
    } else if (!fuse) {   /* fused: the last block wrote hf and rstd */
        be->rmsnorm_fwd(be, &hf, &rstd, &hL, &nw, m->cfg.norm_eps);
    }
}

static void span_logits(md_model_t *m, const span_t *s)
{
    md_block_ctx_t c = span_ctx(m, s);
    int64_t d = m->cfg.d_model, V = m->cfg.vocab_size;
    md_tensor_t hf = mat(m, rows(m, m->hf, s, d), c.M, d), logits = mat(m, rows(m, m->logits, s, V), c.M, V);
    md_tensor_t head = md_param_view(&c, m->params, -1, MD_ROLE_LM_HEAD);
    m->be->gemm(m->be, 0, 1, 1.0, &hf, &head, 0.0, &logits);
}

/* The loss over the span (and its dlogits when with_grad). */
static double span_loss(md_model_t *m, const span_t *s, int with_grad, int64_t *count)
{
    const md_backend_t *be = m->be;
    int64_t M = s->B * s->L, V = m->cfg.vocab_size;
    md_tensor_t tgt = md_tensor_1d(m->tok_tgt + s->r0, MD_DTYPE_U8, be->device, M);
    md_tensor_t logits = mat(m, rows(m, m->logits, s, V), M, V), dlogits = mat(m, rows(m, m->dlogits, s, V), M, V);
    if (m->loss_acc) {   /* md_model_forward_backward_dev: the totals stay on the device */
        be->xent_acc(be, with_grad ? &dlogits : NULL, &logits, &tgt, 1.0, m->loss_acc, s->xent_ws);
        *count = 0;
        return 0;
    }
    return be->xent(be, with_grad ? &dlogits : NULL, &logits, &tgt, 1.0, count, s->xent_ws);
}

/* Tells md_model_set_grad_ready's hook that the gradients outside blocks
 * 0 .. layer-1 (and the embedding, unless layer is -1) are final -- only
 * when the span writes the model's own gradient buffer: the CPU's
 * per-sequence slots are summed into it at the end (run_batch). */
static void grads_ready(md_model_t *m, const span_t *s, int64_t layer)
{
    if (m->grad_ready && s->grads == m->grads) m->grad_ready(m->grad_ready_ud, layer);
}

/* The backward over the span. lm_head = 1: from the LM head's dlogits;
 * 0: from dhf, which the caller (the classification head) has written. */
static void span_backward(md_model_t *m, const span_t *s, int lm_head)
{
    const md_backend_t *be = m->be;
    md_block_ctx_t c = span_ctx(m, s);
    int64_t M = c.M, d = m->cfg.d_model, V = m->cfg.vocab_size, nl = m->cfg.n_layer;
    md_tensor_t dhf = mat(m, rows(m, m->dhf, s, d), M, d);
    if (lm_head) {
        /* head: logits = hf head^T, the head tied to the embedding; dhf
         * overwrites hf (model_internal.h), so the weight gradient first */
        md_tensor_t dlogits = mat(m, rows(m, m->dlogits, s, V), M, V), hf = mat(m, rows(m, m->hf, s, d), M, d);
        md_tensor_t head = md_param_view(&c, m->params, -1, MD_ROLE_LM_HEAD);
        md_tensor_t g_head = md_param_view(&c, s->grads, -1, MD_ROLE_LM_HEAD);
        be->gemm(be, 1, 0, 1.0, &dlogits, &hf, 1.0, &g_head);
        be->gemm(be, 0, 0, 1.0, &dlogits, &head, 0.0, &dhf);
    }
    /* norm_f */
    void *g_rows = rows(m, m->g, s, d);
    md_tensor_t g = mat(m, g_rows, M, d), hL = mat(m, rows(m, resid(m, nl), s, d), M, d);
    md_tensor_t rstd = md_tensor_1d(rows(m, m->rstd_f, s, 1), m->dtype, be->device, M);
    md_tensor_t nw = md_param_view(&c, m->params, -1, MD_ROLE_NORM_F);
    md_tensor_t g_nw = md_param_view(&c, s->grads, -1, MD_ROLE_NORM_F);
    if (m->arch->final_layernorm) {
        md_tensor_t mean = md_tensor_1d(rows(m, m->mean_f, s, 1), m->dtype, be->device, M);
        md_tensor_t g_nb = md_param_view(&c, s->grads, -1, MD_ROLE_NORM_F_B);
        be->layernorm_bwd(be, &g, &g_nw, &g_nb, &dhf, &hL, &nw, &mean, &rstd, 0);
    } else {
        be->rmsnorm_bwd(be, &g, &g_nw, &dhf, &hL, &nw, &rstd, 0, NULL);
    }
    grads_ready(m, s, nl);
    if (m->poison_dead && s->whole) be->memset0(be, resid(m, nl), m->tail_bytes);
    /* blocks, last to first; with one shared activation set every block
     * but the last is recomputed from its input first */
    md_tensor_t tok = md_tensor_1d(m->tok_in + s->r0, MD_DTYPE_U8, be->device, M);
    md_tensor_t emb = md_param_view(&c, m->params, -1, MD_ROLE_EMBEDDING);
    for (int64_t l = nl - 1; l >= 0; l--) {
        void *h_in = rows(m, resid(m, l), s, d);
        if (l == 0 && m->g == m->resid[0]) {   /* g holds h_0's place: the same bits again in h_1's */
            h_in = rows(m, resid(m, 1), s, d);
            md_tensor_t h0 = mat(m, h_in, M, d);
            be->embedding_fwd(be, &h0, &tok, &emb);
        }
        if (m->n_acts == 1 && l != nl - 1) m->arch->fwd(&c, (int)l, h_in, NULL, layer_acts(m, l));
        m->arch->bwd(&c, (int)l, h_in, g_rows, layer_acts(m, l), m->scratch);
        if (m->poison_dead && s->whole && l >= 1) be->memset0(be, h_in, (size_t)(M * d) * es_of(m));   /* h_l is dead */
        grads_ready(m, s, l);
    }
    /* embedding */
    md_tensor_t g_emb = md_param_view(&c, s->grads, -1, MD_ROLE_EMBEDDING);
    be->embedding_bwd(be, &g_emb, &g, &tok);
    grads_ready(m, s, -1);
}

int md_model_check_inputs(const md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, int do_backward)
{
    if (do_backward && m->opts.inference) {
        md_error("model: a backward pass was asked of a model planned for inference (forward only)");
        return -1;
    }
    if (B < 1 || L < 1 || B > m->max_batch || L > m->max_len) {
        md_error("model: batch %lld x length %lld exceeds the planned %lld x %lld", (long long)B, (long long)L,
                 (long long)m->max_batch, (long long)m->max_len);
        return -1;
    }
    for (int64_t i = 0; i < B * L; i++) {
        if (inputs[i] >= m->cfg.vocab_size) {
            md_error("model: input token %lld has id %d, outside the vocabulary of %lld", (long long)i, inputs[i],
                     (long long)m->cfg.vocab_size);
            return -1;
        }
    }
    return 0;
}

/* The GEMMs' weight copies from the masters, before every forward pass:
 * the optimizer updates the masters in place between steps, and one pass
 * over the parameters costs next to nothing beside a step. */
static void refresh_weight_copies(md_model_t *m)
{
    if (m->wparams == m->params) return;
    md_tensor_t src = md_tensor_2d(m->params, m->dtype, m->be->device, 1, m->reg.numel);
    md_tensor_t dst = md_tensor_2d(m->wparams, m->adtype, m->be->device, 1, m->reg.numel);
    m->be->convert(m->be, &dst, &src);
}

static int by_sequence(const md_model_t *m, int64_t B) { return m->n_slots > 0 && B >= 2; }

/* Waking the thread pool costs microseconds on an idle machine and a
 * scheduler time slice (milliseconds) on a busy one: tiny batches run on
 * the calling thread. The results are the same either way. */
static int worth_threads(const md_model_t *m, int64_t B, int64_t L)
{
    return (double)B * L * m->cfg.d_inner * m->cfg.n_layer > 1e6;
}

static span_t whole_span(md_model_t *m, int64_t B, int64_t L)
{
    span_t s = {0, B, L, 0, 1, m->grads, m->op_ws, m->xent_ws};
    return s;
}

static span_t seq_span(md_model_t *m, int64_t b, int64_t L, int64_t slot, void *grads)
{
    span_t s = {b * L, 1, L, b, 0, grads, (char *)m->op_ws + (size_t)slot * m->op_ws_seq,
                (char *)m->xent_ws + (size_t)slot * m->xent_ws_seq};
    return s;
}

/* Adds the first n_slots slot gradients into the gradient buffer, in order. */
static void sum_slots(md_model_t *m, int64_t n_slots)
{
    int64_t numel = m->reg.numel;
    size_t gbytes = (size_t)numel * es_of(m);
    md_tensor_t gt = md_tensor_1d(m->grads, m->dtype, m->be->device, numel);
    for (int64_t k = 0; k < n_slots; k++) {
        md_tensor_t sk = md_tensor_1d((char *)m->slot_grads + (size_t)k * gbytes, m->dtype, m->be->device, numel);
        m->be->add(m->be, &gt, &sk);
    }
}

/* What the batch drivers run on one span. */
typedef void (*span_fn)(md_model_t *m, const span_t *s, void *ctx, int do_backward);

/* Runs fn over a batch of B sequences of L tokens: as one whole span, or
 * (the CPU, B >= 2) sequence by sequence on the threads, each slot's
 * parameter gradients zeroed first and summed in order at the end. */
static void run_batch(md_model_t *m, int64_t B, int64_t L, int do_backward, span_fn fn, void *ctx)
{
    refresh_weight_copies(m);
    if (!by_sequence(m, B)) {
        span_t s = whole_span(m, B, L);
        fn(m, &s, ctx, do_backward);
        return;
    }
    int64_t n_slots = B < m->n_slots ? B : m->n_slots;
    size_t gbytes = (size_t)m->reg.numel * es_of(m);
#pragma omp parallel for schedule(dynamic, 1) if (worth_threads(m, B, L))
    for (int64_t k = 0; k < n_slots; k++) {
        void *grads = (char *)m->slot_grads + (size_t)k * gbytes;
        if (do_backward) m->be->memset0(m->be, grads, gbytes);
        for (int64_t b = k; b < B; b += n_slots) {
            span_t s = seq_span(m, b, L, k, grads);
            fn(m, &s, ctx, do_backward);
        }
    }
    if (do_backward) {
        sum_slots(m, n_slots);
        if (m->grad_ready) m->grad_ready(m->grad_ready_ud, -1);
    }
}

/* Next-base prediction over a span: its loss sum and count in seq_loss and
 * seq_count at the span's first sequence. */
static void lm_span(md_model_t *m, const span_t *s, void *ctx, int do_backward)
{
    (void)ctx;
    int64_t b0 = s->r0 / s->L;
    span_trunk(m, s);
    span_logits(m, s);
    m->seq_loss[b0] = span_loss(m, s, do_backward, &m->seq_count[b0]);
    if (do_backward) span_backward(m, s, 1);
}

int md_model_forward_backward(md_model_t *m, const uint8_t *inputs, const uint8_t *targets, int64_t B, int64_t L,
                              int do_backward, md_loss_t *out)
{
    if (md_model_check_inputs(m, inputs, B, L, do_backward) < 0) return -1;
    const md_backend_t *be = m->be;
    be->copy(be, m->tok_in, inputs, (size_t)(B * L), MD_COPY_H2D);
    be->copy(be, m->tok_tgt, targets, (size_t)(B * L), MD_COPY_H2D);
    run_batch(m, B, L, do_backward, lm_span, NULL);
    out->loss_sum = 0;
    out->n_targets = 0;
    for (int64_t b = 0; b < (by_sequence(m, B) ? B : 1); b++) {
        out->loss_sum += m->seq_loss[b];
        out->n_targets += m->seq_count[b];
    }
    return 0;
}

int md_model_forward_backward_dev(md_model_t *m, const void *inputs, const void *targets, int64_t B, int64_t L,
                                  double *loss_acc)
{
    if (B < 1 || L < 1 || B > m->max_batch || L > m->max_len || m->opts.inference || by_sequence(m, B)) {
        md_error("model: a %lld x %lld batch cannot run as one span with the loss kept on the device",
                 (long long)B, (long long)L);
        return -1;
    }
    const md_backend_t *be = m->be;
    be->copy(be, m->tok_in, inputs, (size_t)(B * L), MD_COPY_D2D);
    be->copy(be, m->tok_tgt, targets, (size_t)(B * L), MD_COPY_D2D);
    m->loss_acc = loss_acc;
    run_batch(m, B, L, 1, lm_span, NULL);
    m->loss_acc = NULL;
    return 0;
}

/* Forward of a span: hidden states in hf, and logits when *ctx is 1. */
static void fwd_span(md_model_t *m, const span_t *s, void *ctx, int do_backward)
{
    (void)do_backward;
    span_trunk(m, s);
    if (*(const int *)ctx) span_logits(m, s);
}

static void forward_only(md_model_t *m, int64_t B, int64_t L, int with_logits)
{
    run_batch(m, B, L, 0, fwd_span, &with_logits);
}

/* Device rows of the model dtype to host floats. */
static void rows_to_host(md_model_t *m, const void *src, int64_t n, float *dst)
{
    if (m->dtype == MD_DTYPE_F32) {
        m->be->copy(m->be, dst, src, (size_t)n * sizeof(float), MD_COPY_D2H);
        return;
    }
    double *tmp = md_malloc((size_t)n * sizeof *tmp);
    m->be->copy(m->be, tmp, src, (size_t)n * sizeof *tmp, MD_COPY_D2H);
    for (int64_t i = 0; i < n; i++) dst[i] = (float)tmp[i];
    free(tmp);
}

int md_model_logits(md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, float *logits)
{
    if (md_model_check_inputs(m, inputs, B, L, 0) < 0) return -1;
    m->be->copy(m->be, m->tok_in, inputs, (size_t)(B * L), MD_COPY_H2D);
    forward_only(m, B, L, 1);
    m->be->sync(m->be);
    rows_to_host(m, m->logits, B * L * m->cfg.vocab_size, logits);
    return 0;
}

int md_model_hidden(md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, float *hidden)
{
    if (md_model_check_inputs(m, inputs, B, L, 0) < 0) return -1;
    m->be->copy(m->be, m->tok_in, inputs, (size_t)(B * L), MD_COPY_H2D);
    forward_only(m, B, L, 0);
    m->be->sync(m->be);
    rows_to_host(m, m->hf, B * L * m->cfg.d_model, hidden);
    return 0;
}

/* ---- the classification head (model.h) ---- */

static md_tensor_t strided(md_tensor_t t, int64_t ld)
{
    t.ld = ld;
    return t;
}

/* pooled rows of the span's sequences, then their logits */
static void span_cls_forward(md_model_t *m, const span_t *s)
{
    const md_backend_t *be = m->be;
    md_block_ctx_t c = span_ctx(m, s);
    int64_t B = s->B, L = s->L, b0 = s->r0 / L, d = m->cfg.d_model, C = m->cfg.n_classes;
    size_t es = es_of(m);
    char *pooled = (char *)m->cls_pooled + (size_t)(b0 * d) * es, *hf = rows(m, m->hf, s, d);
    md_tensor_t P = mat(m, pooled, B, d);
    if (m->cfg.cls_pooling == MD_POOL_LAST) {
        /* the last position of each sequence: rows L-1, 2L-1, ... of hf */
        md_tensor_t last = strided(mat(m, hf + (size_t)((L - 1) * d) * es, B, d), L * d);
        be->memset0(be, pooled, (size_t)(B * d) * es);
        be->add(be, &P, &last);
    } else {
        md_tensor_t ones = mat(m, m->cls_ones, 1, L);
        for (int64_t b = 0; b < B; b++) {
            md_tensor_t hb = mat(m, hf + (size_t)(b * L * d) * es, L, d), pb = mat(m, pooled + (size_t)(b * d) * es, 1, d);
            be->gemm(be, 0, 0, 1.0 / (double)L, &ones, &hb, 0.0, &pb);
        }
    }
    md_tensor_t W = md_param_view(&c, m->params, -1, MD_ROLE_CLS_W);
    md_tensor_t bias = mat(m, md_param_view(&c, m->params, -1, MD_ROLE_CLS_B).data, 1, C);
    md_tensor_t logits = mat(m, (char *)m->cls_logits + (size_t)(b0 * C) * es, B, C);
    md_tensor_t onesB = mat(m, m->cls_ones, B, 1);
    be->gemm(be, 0, 1, 1.0, &P, &W, 0.0, &logits);
    be->gemm(be, 0, 0, 1.0, &onesB, &bias, 1.0, &logits);
}

/* Host softmax of the span's logits: per-sequence loss and correctness in
 * seq_loss / seq_count (1 when the argmax is the label), log-probabilities
 * in cls_host, and dlogits (softmax - one-hot; 0 for unlabelled rows) on
 * the device when with_grad. */
static void span_cls_loss(md_model_t *m, const span_t *s, const int32_t *labels, int with_grad)
{
    const md_backend_t *be = m->be;
    int64_t B = s->B, b0 = s->r0 / s->L, C = m->cfg.n_classes;
    size_t es = es_of(m), off = (size_t)(b0 * C);
    double *x = m->cls_host + off;
    void *io = (char *)m->cls_host_io + off * es;
    be->copy(be, io, (char *)m->cls_logits + off * es, (size_t)(B * C) * es, MD_COPY_D2H);
    for (int64_t i = 0; i < B * C; i++) x[i] = m->dtype == MD_DTYPE_F64 ? ((double *)io)[i] : ((float *)io)[i];
    for (int64_t b = 0; b < B; b++) {
        double *r = x + b * C, mx = r[0], sum = 0;
        int64_t arg = 0;
        for (int64_t k = 1; k < C; k++)
            if (r[k] > mx) mx = r[k], arg = k;
        for (int64_t k = 0; k < C; k++) sum += exp(r[k] - mx);
        double lse = mx + log(sum);
        for (int64_t k = 0; k < C; k++) r[k] -= lse;
        int32_t y = labels ? labels[b0 + b] : -1;
        m->seq_loss[b0 + b] = y >= 0 ? -r[y] : 0;
        m->seq_count[b0 + b] = y >= 0 ? (arg == y ? 1 : 0) : -1;
        if (!with_grad) continue;
        for (int64_t k = 0; k < C; k++) {
            double g = y >= 0 ? exp(r[k]) - (k == y) : 0.0;
            if (m->dtype == MD_DTYPE_F64) ((double *)io)[b * C + k] = g;
            else ((float *)io)[b * C + k] = (float)g;
        }
    }
    if (with_grad) be->copy(be, (char *)m->cls_dlogits + off * es, io, (size_t)(B * C) * es, MD_COPY_H2D);
}

/* The head's backward into dhf, then the trunk's. */
static void span_cls_backward(md_model_t *m, const span_t *s)
{
    const md_backend_t *be = m->be;
    md_block_ctx_t c = span_ctx(m, s);
    int64_t B = s->B, L = s->L, b0 = s->r0 / L, d = m->cfg.d_model, C = m->cfg.n_classes;
    size_t es = es_of(m);
    md_tensor_t dlogits = mat(m, (char *)m->cls_dlogits + (size_t)(b0 * C) * es, B, C);
    md_tensor_t P = mat(m, (char *)m->cls_pooled + (size_t)(b0 * d) * es, B, d);
    char *dpooled = (char *)m->cls_dpooled + (size_t)(b0 * d) * es, *dhf = rows(m, m->dhf, s, d);
    md_tensor_t dP = mat(m, dpooled, B, d), onesB = mat(m, m->cls_ones, B, 1);
    md_tensor_t W = md_param_view(&c, m->params, -1, MD_ROLE_CLS_W), gW = md_param_view(&c, s->grads, -1, MD_ROLE_CLS_W);
    md_tensor_t gb = mat(m, md_param_view(&c, s->grads, -1, MD_ROLE_CLS_B).data, 1, C);
    be->gemm(be, 1, 0, 1.0, &dlogits, &P, 1.0, &gW);
    be->gemm(be, 1, 0, 1.0, &onesB, &dlogits, 1.0, &gb);
    be->gemm(be, 0, 0, 1.0, &dlogits, &W, 0.0, &dP);
    if (m->cfg.cls_pooling == MD_POOL_LAST) {
        be->memset0(be, dhf, (size_t)(B * L * d) * es);
        md_tensor_t last = strided(mat(m, dhf + (size_t)((L - 1) * d) * es, B, d), L * d);
        be->add(be, &last, &dP);
    } else {
        md_tensor_t ones = mat(m, m->cls_ones, L, 1);
        for (int64_t b = 0; b < B; b++) {
            md_tensor_t db = mat(m, dhf + (size_t)(b * L * d) * es, L, d), pb = mat(m, dpooled + (size_t)(b * d) * es, 1, d);
            be->gemm(be, 0, 0, 1.0 / (double)L, &ones, &pb, 0.0, &db);
        }
    }
    span_backward(m, s, 0);
}

static void span_classify(md_model_t *m, const span_t *s, void *labels, int do_backward)
{
    span_trunk(m, s);
    span_cls_forward(m, s);
    span_cls_loss(m, s, labels, do_backward);
    if (do_backward) span_cls_backward(m, s);
}

int md_model_classify(md_model_t *m, const uint8_t *inputs, const int32_t *labels, int64_t B, int64_t L,
                      int do_backward, float *logprobs, md_class_result_t *out)
{
    int64_t C = m->cfg.n_classes;
    if (C <= 0) {
        md_error("model: not a classifier (it has no classification head)");
        return -1;
    }
    if (md_model_check_inputs(m, inputs, B, L, do_backward) < 0) return -1;
    for (int64_t b = 0; labels && b < B; b++) {
        if (labels[b] >= C) {
            md_error("model: label %d of sequence %lld is not below the %lld classes", labels[b], (long long)b,
                     (long long)C);
            return -1;
        }
    }
    m->be->copy(m->be, m->tok_in, inputs, (size_t)(B * L), MD_COPY_H2D);
    run_batch(m, B, L, do_backward, span_classify, (void *)labels);
    memset(out, 0, sizeof *out);
    for (int64_t b = 0; b < B; b++) {
        if (m->seq_count[b] < 0) continue;
        out->loss_sum += m->seq_loss[b];
        out->n_labelled++;
        out->n_correct += m->seq_count[b];
    }
    if (logprobs)
        for (int64_t i = 0; i < B * C; i++) logprobs[i] = (float)m->cls_host[i];
    return 0;
}
