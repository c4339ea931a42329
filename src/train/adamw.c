#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/gradsync.h"
#include "util/log.h"
#include "util/xalloc.h"

void md_adamw_opts_default(md_adamw_opts_t *o)
{
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
}

static int alloc_state(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                       const md_adamw_opts_t *opts, int64_t shard_grad)
{
    opt->be = be;
    opt->opts = *opts;
    opt->dtype = dtype;
    opt->numel = numel;
    opt->n_decay = n_decay;
    opt->state_numel = 0;
    for (int i = 0; i < opt->n_ranges; i++) opt->state_numel += opt->range[i].n;
    const size_t es = md_dtype_size(dtype), bytes = (size_t)opt->state_numel * es;
    opt->m = be->alloc(be, bytes ? bytes : 1);
    opt->v = be->alloc(be, bytes ? bytes : 1);
    if (shard_grad >= 0) opt->shard_grad = be->alloc(be, shard_grad ? (size_t)shard_grad * es : 1);
    if (!opt->m || !opt->v || (shard_grad >= 0 && !opt->shard_grad)) {
        md_error("out of %s memory for the optimizer state (2 x %.1f MiB, after the model's buffers); try a smaller "
                 "batch, --recompute, a shorter -L or a smaller model", be->name, bytes / 1048576.0);
        md_adamw_free(opt);
        return -1;
    }
    be->memset0(be, opt->m, bytes);
    be->memset0(be, opt->v, bytes);
    return 0;
}

int md_adamw_init(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                  const md_adamw_opts_t *opts)
{
    memset(opt, 0, sizeof *opt);
    opt->range[0] = (md_adamw_range_t){0, numel};
    opt->n_ranges = 1;
    return alloc_state(opt, be, dtype, numel, n_decay, opts, -1);
}

int md_adamw_init_zero1(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                        const md_adamw_opts_t *opts, int rank, int size)
{
    memset(opt, 0, sizeof *opt);
    const int64_t s = numel / size;
    opt->range[0] = (md_adamw_range_t){(int64_t)rank * s, s};
    opt->range[1] = (md_adamw_range_t){(int64_t)size * s, numel - (int64_t)size * s};
    opt->n_ranges = 2;
    if (alloc_state(opt, be, dtype, numel, n_decay, opts, s) < 0) return -1;
    const double mib = md_dtype_size(dtype) / 1048576.0;
    md_info("ZeRO-1: AdamW moments of %lld of the %lld parameters on each of %d rank%s: %.3g MiB of optimizer state "
            "(moments and the reduce-scatter's output) instead of %.3g MiB", (long long)opt->state_numel,
            (long long)numel, size, size == 1 ? "" : "s", (2.0 * (double)opt->state_numel + (double)s) * mib,
            2.0 * (double)numel * mib);
    return 0;
}

void md_adamw_free(md_adamw_t *opt)
{
    if (opt->be) {
        if (opt->m) opt->be->free(opt->be, opt->m);
        if (opt->v) opt->be->free(opt->be, opt->v);
        if (opt->shard_grad) opt->be->free(opt->be, opt->shard_grad);
    }
    opt->m = opt->v = opt->shard_grad = NULL;
    md_adamw_drop_host(opt);
    md_grad_sync_free(opt->sync);
    opt->sync = NULL;
}

/* One moment (state_numel elements at mom) gathered whole into host. */
static int gather_moment(md_adamw_t *opt, md_comm_t *comm, const void *mom, void *scratch, float *host)
{
    const md_backend_t *be = opt->be;
    const size_t es = md_dtype_size(opt->dtype);
    const md_adamw_range_t *shard = &opt->range[0], *tail = &opt->range[1];
    char *sc = scratch;
    be->copy(be, sc + (size_t)shard->off * es, mom, (size_t)shard->n * es, MD_COPY_D2D);
    be->copy(be, sc + (size_t)tail->off * es, (const char *)mom + (size_t)shard->n * es, (size_t)tail->n * es,
             MD_COPY_D2D);
    if (md_comm_all_gather(comm, sc + (size_t)shard->off * es, sc, shard->n, opt->dtype) < 0) return -1;
    if (opt->dtype == MD_DTYPE_F32) {
        be->copy(be, host, sc, (size_t)opt->numel * es, MD_COPY_D2H);
        return 0;
    }
    double *tmp = md_malloc((size_t)opt->numel * es + 8);
    be->copy(be, tmp, sc, (size_t)opt->numel * es, MD_COPY_D2H);
    for (int64_t i = 0; i < opt->numel; i++) host[i] = (float)tmp[i];
    free(tmp);
    return 0;
}

int md_adamw_gather_host(md_adamw_t *opt, md_comm_t *comm, void *scratch, int keep)
{
    if (!md_adamw_sharded(opt)) return 0;
    md_adamw_drop_host(opt);
    opt->host_m = md_malloc((size_t)opt->numel * sizeof(float) + 4);
    opt->host_v = md_malloc((size_t)opt->numel * sizeof(float) + 4);
    int ret = gather_moment(opt, comm, opt->m, scratch, opt->host_m) < 0 ||
              gather_moment(opt, comm, opt->v, scratch, opt->host_v) < 0 ? -1 : 0;
    if (ret < 0 || !keep) md_adamw_drop_host(opt);
    return ret;
}

void md_adamw_drop_host(md_adamw_t *opt)
{
    free(opt->host_m);
    free(opt->host_v);
    opt->host_m = opt->host_v = NULL;
}

double md_flat_norm(const md_backend_t *be, void *buf, md_dtype_t dtype, int64_t n)
{
    md_tensor_t t = md_tensor_1d(buf, dtype, be->device, n);
    return sqrt(be->sumsq(be, &t));
}

double md_clip_scale(double norm, double max_norm)
{
    if (max_norm <= 0 || !(norm > max_norm)) return 1.0;
    return max_norm / (norm + 1e-6);
}

void md_adamw_step(md_adamw_t *opt, void *param, const void *grad, double lr, double grad_scale)
{
    const md_backend_t *be = opt->be;
    opt->step++;
    md_adamw_hparams_t hp = {
        .lr = lr, .beta1 = opt->opts.beta1, .beta2 = opt->opts.beta2, .eps = opt->opts.eps,
        .weight_decay = opt->opts.weight_decay, .grad_scale = grad_scale, .step = opt->step,
    };
    const size_t es = md_dtype_size(opt->dtype);
    int64_t at = 0;   /* the range's first moment */
    for (int i = 0; i < opt->n_ranges; i++) {
        const int64_t off = opt->range[i].off, n = opt->range[i].n;
        if (n == 0) continue;
        /* the decay boundary, relative to the range */
        const int64_t n_decay = opt->n_decay <= off ? 0 : opt->n_decay - off < n ? opt->n_decay - off : n;
        md_tensor_t p = md_tensor_1d((char *)param + (size_t)off * es, opt->dtype, be->device, n);
        md_tensor_t g = md_tensor_1d((char *)grad + (size_t)off * es, opt->dtype, be->device, n);
        md_tensor_t m = md_tensor_1d((char *)opt->m + (size_t)at * es, opt->dtype, be->device, n);
        md_tensor_t v = md_tensor_1d((char *)opt->v + (size_t)at * es, opt->dtype, be->device, n);
        be->adamw(be, &p, &g, &m, &v, n_decay, &hp);
        at += n;
    }
}
