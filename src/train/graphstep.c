#include "train/graphstep.h"

#include <stdlib.h>
#include <string.h>

#include "backend/devstep.h"
#include "train/trainguard.h"
#include "util/log.h"
#include "util/xalloc.h"

struct md_graph_step {
    md_model_t *m;
    const md_backend_t *be;
    md_devstep_t *ds;
    int graphs;                 /* MD_STEP_GRAPH */
    int poison_hook;            /* MD_TEST_POISON_STEPS is set: the graph carries its kernel */
    uint8_t *host_tok, *dev_tok;   /* the step's tokens: micro-batch a's inputs, then its targets */
    size_t tok_cap;             /* bytes of both */
    int64_t warm[3];            /* the shape (B, len, accum) last run op by op, or -1 */
    int64_t shape[3];           /* the graph's shape, or -1 */
    int64_t replays;
};

int md_cuda_graph_parse(const char *opt, const char *s, md_cuda_graph_t *mode)
{
    if (!strcmp(s, "auto")) *mode = MD_CUDA_GRAPH_AUTO;
    else if (!strcmp(s, "on")) *mode = MD_CUDA_GRAPH_ON;
    else if (!strcmp(s, "off")) *mode = MD_CUDA_GRAPH_OFF;
    else {
        md_error("option %s: '%s' is not one of auto, on, off", opt, s);
        return -1;
    }
    return 0;
}

int md_step_kind_choose(md_cuda_graph_t mode, const md_model_t *m, int ranks, const char *why_not,
                        md_step_kind_t *kind)
{
    const md_backend_t *be = md_model_backend(m);
    *kind = MD_STEP_HOST;
    const char *host_why = be->device != MD_DEVICE_CUDA ? "the CPU has no CUDA graphs"
                         : ranks > 1                    ? "the gradient exchange between ranks is not captured"
                         : md_model_dtype(m) != MD_DTYPE_F32 ? "only f32 models are captured"
                                                         : why_not;
    if (host_why) {
        if (mode == MD_CUDA_GRAPH_ON) {
            md_error("option --cuda-graph on: %s; use --cuda-graph auto or off", host_why);
            return -1;
        }
        if (be->device == MD_DEVICE_CUDA) md_info("training step: op by op, not a CUDA graph (%s)", host_why);
        return 0;
    }
    const char *why = NULL;
    if (mode == MD_CUDA_GRAPH_OFF) {
        *kind = MD_STEP_DEVICE;
        md_info("training step: op by op (--cuda-graph off)");
    } else if (!md_devstep_capturable(be, &why)) {
        *kind = MD_STEP_DEVICE;
        md_info("training step: op by op, not a CUDA graph (%s)", why);
    } else {
        *kind = MD_STEP_GRAPH;
        md_info("training step: a CUDA graph, captured at each shape's second step and replayed");
    }
    return 0;
}

md_graph_step_t *md_graph_step_new(md_model_t *m, md_step_kind_t kind)
{
    md_graph_step_t *g = md_calloc(1, sizeof *g);
    g->m = m;
    g->be = md_model_backend(m);
    g->graphs = kind == MD_STEP_GRAPH;
    g->poison_hook = getenv("MD_TEST_POISON_STEPS") != NULL;
    for (int i = 0; i < 3; i++) g->warm[i] = g->shape[i] = -1;
    if (!(g->ds = md_devstep_new(g->be))) {
        if (g->be->device != MD_DEVICE_CUDA) md_error("training step: the device step needs a CUDA backend");
        free(g);
        return NULL;
    }
    return g;
}

void md_graph_step_free(md_graph_step_t *g)
{
    if (!g) return;
    md_devstep_free(g->ds);
    if (g->dev_tok) g->be->free(g->be, g->dev_tok);
    free(g->host_tok);
    free(g);
}

/* Room for `bytes` of tokens on both sides; a new device buffer makes the
 * graph stale (it copies from the old one). */
static int reserve_tokens(md_graph_step_t *g, size_t bytes)
{
    if (bytes <= g->tok_cap) return 0;
    md_devstep_drop_graph(g->ds);
    g->shape[0] = -1;
    if (g->dev_tok) g->be->free(g->be, g->dev_tok);
    free(g->host_tok);
    g->host_tok = md_malloc(bytes);
    g->tok_cap = 0;
    if (!(g->dev_tok = g->be->alloc(g->be, bytes))) {
        md_error("out of %s memory for the training step's tokens (%.3f MiB, after the model's buffers and the "
                 "optimizer state); try a smaller batch, --recompute, a shorter -L or a smaller model",
                 g->be->name, bytes / 1048576.0);
        return -1;
    }
    g->tok_cap = bytes;
    return 0;
}

/* The step's device work, queued (or captured). */
static int queue_step(md_graph_step_t *g, md_adamw_t *opt, int64_t B, int64_t len, int64_t accum)
{
    md_model_t *m = g->m;
    const size_t n = (size_t)(B * len);
    md_devstep_begin(g->ds);
    md_model_zero_grad(m);
    for (int64_t a = 0; a < accum; a++) {
        const uint8_t *in = g->dev_tok + 2 * (size_t)a * n;
        if (md_model_forward_backward_dev(m, in, in + n, B, len, md_devstep_loss_acc(g->ds)) < 0) return -1;
    }
    md_devstep_update(g->ds, md_model_param_buffer(m).data, md_model_grad_buffer(m).data, opt->m, opt->v, opt->numel,
                      opt->n_decay, g->poison_hook);
    return 0;
}

static int same_shape(const int64_t *a, const int64_t *b) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2]; }

int md_graph_step_run(md_graph_step_t *g, md_adamw_t *opt, int64_t B, int64_t len, int64_t accum,
                      md_micro_tokens_fn fn, void *ud, double lr, double clip, int64_t step, md_progress_t *pg,
                      md_step_guard_t *guard, md_step_result_t *r)
{
    const size_t n = (size_t)(B * len);
    if (reserve_tokens(g, 2 * (size_t)accum * n) < 0) return -1;
    for (int64_t a = 0; a < accum; a++) {
        uint8_t *in = g->host_tok + 2 * (size_t)a * n;
        if (fn(ud, a, in, in + n) < 0 || md_model_check_inputs(g->m, in, B, len, 1) < 0) return -1;
    }
    g->be->copy(g->be, g->dev_tok, g->host_tok, 2 * (size_t)accum * n, MD_COPY_H2D);
    /* the step count moves on whether or not the device skips the update
     * (md_train_step_verdict): its factors are known now */
    opt->step++;
    const md_adamw_opts_t *ao = &opt->opts;
    md_devstep_in_t in = {{lr, ao->beta1, ao->beta2, ao->eps, ao->weight_decay, 0, opt->step}, clip,
                          md_train_step_poisoned(step + 1)};
    md_devstep_set(g->ds, &in);
    const int64_t shape[3] = {B, len, accum};
    if (g->shape[0] >= 0 && !md_devstep_has_graph(g->ds)) {
        /* an FFT plan the graph ran was evicted: the next step makes it
         * again op by op (plans cannot be made during a capture) */
        g->shape[0] = g->warm[0] = -1;
    }
    if (g->graphs && same_shape(shape, g->shape) && md_devstep_has_graph(g->ds)) {
        md_devstep_replay(g->ds);
        g->replays++;
    } else if (g->graphs && same_shape(shape, g->warm)) {
        md_devstep_capture_begin(g->ds);
        int q = queue_step(g, opt, B, len, accum);
        if (md_devstep_capture_end(g->ds) < 0) {   /* nothing ran: this step and the rest op by op */
            g->graphs = 0;
            if (q < 0 || queue_step(g, opt, B, len, accum) < 0) return -1;
        } else {
            if (q < 0) return -1;
            memcpy(g->shape, shape, sizeof shape);
            md_devstep_replay(g->ds);
            g->replays++;
        }
    } else {
        if (queue_step(g, opt, B, len, accum) < 0) return -1;
        memcpy(g->warm, shape, sizeof shape);
    }
    md_devstep_out_t out;
    md_devstep_wait(g->ds, &out);
    return md_train_step_verdict(out.loss_sum, out.count, out.grad_norm, step, pg, guard, r);
}

int64_t md_graph_step_replays(const md_graph_step_t *g) { return g->replays; }
