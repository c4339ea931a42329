/* Bucketed, overlapped gradient all-reduce (train/gradsync.h). */
#include "train/gradsync.h"

#include <stdlib.h>

#include "util/log.h"
#include "util/xalloc.h"

typedef struct {
    int64_t off, n;     /* elements [off, off + n) of the gradient buffer */
    int64_t layer;      /* final after the readiness call of this layer */
} bucket_t;

struct md_grad_sync {
    md_model_t *m;
    md_comm_t *comm;
    bucket_t *b;        /* in start order */
    int64_t n, next;    /* buckets; the next one to start */
    int failed;
};

static int by_offset(const void *a, const void *b)
{
    const bucket_t *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* Start order: the bucket final first goes first; among equals the one
 * nearer the buffer's end (a fixed order, the same on every rank). */
static int by_start_order(const void *a, const void *b)
{
    const bucket_t *x = a, *y = b;
    if (x->layer != y->layer) return x->layer > y->layer ? -1 : 1;
    return (x->off < y->off) - (x->off > y->off);
}

md_grad_sync_t *md_grad_sync_new(md_model_t *m, md_comm_t *comm)
{
    const md_params_t *reg = md_model_params(m);
    md_grad_sync_t *s = md_calloc(1, sizeof *s);
    s->m = m;
    s->comm = comm;
    /* the storage tensors (no aliases) by offset, then merged into buckets */
    bucket_t *t = md_malloc((size_t)(reg->n + 1) * sizeof *t);
    int64_t nt = 0;
    for (int64_t i = 0; i < reg->n; i++)
        if (reg->p[i].tied_to < 0)
            t[nt++] = (bucket_t){reg->p[i].offset, reg->p[i].numel, md_param_ready_layer(reg, &reg->p[i])};
    qsort(t, (size_t)nt, sizeof *t, by_offset);
    const double mb = md_comm_bucket_mb(comm);
    const int64_t cap = mb > 0 ? (int64_t)(mb * 1048576.0 / md_dtype_size(md_model_dtype(m))) : reg->numel;
    s->b = md_malloc((size_t)(nt + 1) * sizeof *s->b);
    for (int64_t i = 0; i < nt; i++) {
        bucket_t *last = s->n ? &s->b[s->n - 1] : NULL;
        if (last && last->n < (cap > 0 ? cap : 1)) {
            last->n = t[i].off + t[i].n - last->off;
            if (t[i].layer < last->layer) last->layer = t[i].layer;
        } else {
            s->b[s->n++] = t[i];
        }
    }
    free(t);
    qsort(s->b, (size_t)s->n, sizeof *s->b, by_start_order);
    if (md_comm_size(comm) > 1 && s->n == 1)
        md_info("gradient exchange: one all-reduce of %.3g MiB after the backward",
                reg->numel * md_dtype_size(md_model_dtype(m)) / 1048576.0);
    else if (md_comm_size(comm) > 1)
        md_info("gradient exchange: %lld buckets of about %.3g MiB, all-reduced during the backward", (long long)s->n,
                mb);
    return s;
}

void md_grad_sync_free(md_grad_sync_t *s)
{
    if (!s) return;
    md_model_set_grad_ready(s->m, NULL, NULL);
    free(s->b);
    free(s);
}

int64_t md_grad_sync_n_buckets(const md_grad_sync_t *s) { return s->n; }

/* Starts, in order, every bucket final after readiness call `layer`. */
static void start_ready(md_grad_sync_t *s, int64_t layer)
{
    md_tensor_t g = md_model_grad_buffer(s->m);
    const size_t es = md_dtype_size(g.dtype);
    while (!s->failed && s->next < s->n && s->b[s->next].layer >= layer) {
        const bucket_t *b = &s->b[s->next++];
        if (md_comm_allreduce_start(s->comm, (char *)g.data + (size_t)b->off * es, b->n, g.dtype) < 0) s->failed = 1;
    }
}

static void on_ready(void *ud, int64_t layer) { start_ready(ud, layer); }

void md_grad_sync_arm(md_grad_sync_t *s)
{
    s->next = 0;
    s->failed = 0;
    md_model_set_grad_ready(s->m, on_ready, s);
}

int md_grad_sync_finish(md_grad_sync_t *s)
{
    md_model_set_grad_ready(s->m, NULL, NULL);
    start_ready(s, -1);
    /* wait even after a failure: requests started must not outlive us */
    return md_comm_wait(s->comm) < 0 || s->failed ? -1 : 0;
}
