#include "train/adamw.h"

#include <math.h>
#include <string.h>

#include "util/log.h"

void md_adamw_opts_default(md_adamw_opts_t *o)
{
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
}

int md_adamw_init(md_adamw_t *opt, const md_backend_t *be, md_dtype_t dtype, int64_t numel, int64_t n_decay,
                  const md_adamw_opts_t *opts)
{
    memset(opt, 0, sizeof *opt);
    opt->be = be;
    opt->opts = *opts;
    opt->dtype = dtype;
    opt->numel = numel;
    opt->n_decay = n_decay;
    size_t bytes = (size_t)numel * md_dtype_size(dtype);
    opt->m = be->alloc(be, bytes ? bytes : 1);
    opt->v = be->alloc(be, bytes ? bytes : 1);
    if (!opt->m || !opt->v) {
        md_error("out of %s memory for the optimizer state (2 x %.1f MiB, after the model's buffers); try a smaller "
                 "batch, --recompute, a shorter -L or a smaller model", be->name, bytes / 1048576.0);
        md_adamw_free(opt);
        return -1;
    }
    be->memset0(be, opt->m, bytes);
    be->memset0(be, opt->v, bytes);
    return 0;
}

void md_adamw_free(md_adamw_t *opt)
{
    if (opt->be) {
        if (opt->m) opt->be->free(opt->be, opt->m);
        if (opt->v) opt->be->free(opt->be, opt->v);
    }
    opt->m = opt->v = NULL;
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
    md_tensor_t p = md_tensor_1d(param, opt->dtype, be->device, opt->numel);
    md_tensor_t g = md_tensor_1d((void *)grad, opt->dtype, be->device, opt->numel);
    md_tensor_t m = md_tensor_1d(opt->m, opt->dtype, be->device, opt->numel);
    md_tensor_t v = md_tensor_1d(opt->v, opt->dtype, be->device, opt->numel);
    be->adamw(be, &p, &g, &m, &v, opt->n_decay, &hp);
}
