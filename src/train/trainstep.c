/* md_train_step (train/trainer.h): the optimizer step that pretrain and
 * finetune share, with its guard against non-finite steps, and the
 * data-parallel exchange of its gradients: buckets all-reduced during the
 * backward (train/gradsync.h), or under ZeRO-1 a reduce-scatter, AdamW on
 * this rank's shard and an all-gather of the parameters. */
#include <math.h>

#include "backend/ops.h"
#include "train/adamw.h"
#include "train/gradsync.h"
#include "train/trainer.h"
#include "train/trainguard.h"
#include "util/log.h"

int md_train_adamw_init(md_adamw_t *opt, md_model_t *m, md_comm_t *comm, const md_adamw_opts_t *ao)
{
    const md_params_t *reg = md_model_params(m);
    const md_backend_t *be = md_model_backend(m);
    if (comm && md_comm_zero1(comm))
        return md_adamw_init_zero1(opt, be, md_model_dtype(m), reg->numel, reg->n_decay, ao, md_comm_rank(comm),
                                   md_comm_size(comm));
    return md_adamw_init(opt, be, md_model_dtype(m), reg->numel, reg->n_decay, ao);
}

static double range_sumsq(const md_backend_t *be, md_tensor_t buf, const md_adamw_range_t *r)
{
    if (r->n == 0) return 0;
    md_tensor_t t = md_tensor_1d((char *)buf.data + (size_t)r->off * md_dtype_size(buf.dtype), buf.dtype,
                                 be->device, r->n);
    return be->sumsq(be, &t);
}

/* ZeRO-1's gradient exchange: this rank's shard of the sum (reduce-scatter,
 * written back to its place in the buffer) and the tail's (all-reduce);
 * the rest of the buffer is left stale. */
static int zero1_reduce(md_comm_t *comm, const md_backend_t *be, md_tensor_t gbuf, const md_adamw_t *opt)
{
    const md_adamw_range_t *shard = &opt->range[0], *tail = &opt->range[1];
    const size_t es = md_dtype_size(gbuf.dtype);
    char *g = gbuf.data;
    if (md_comm_reduce_scatter_sum(comm, g, opt->shard_grad, shard->n, gbuf.dtype) < 0) return -1;
    be->copy(be, g + (size_t)shard->off * es, opt->shard_grad, (size_t)shard->n * es, MD_COPY_D2D);
    return md_comm_allreduce_sum(comm, g + (size_t)tail->off * es, tail->n, gbuf.dtype);
}

int md_train_step(md_model_t *m, md_comm_t *comm, md_adamw_t *opt, int64_t accum, md_micro_batch_fn fn, void *ud,
                  double lr, double clip, int64_t step, md_progress_t *pg, md_step_guard_t *guard,
                  md_step_result_t *r)
{
    const int zero1 = md_adamw_sharded(opt);
    md_model_zero_grad(m);
    double loss_sum = 0;
    int64_t count = 0;
    if (comm && !zero1 && !opt->sync) opt->sync = md_grad_sync_new(m, comm);
    for (int64_t a = 0; a < accum; a++) {
        double ls = 0;
        int64_t n = 0;
        if (opt->sync && a == accum - 1) md_grad_sync_arm(opt->sync);   /* the step's gradients are final in this one */
        if (fn(ud, a, &ls, &n) < 0) {
            md_model_set_grad_ready(m, NULL, NULL);
            return -1;
        }
        loss_sum += ls;
        count += n;
    }
    const md_backend_t *be = md_model_backend(m);
    md_tensor_t pbuf = md_model_param_buffer(m), gbuf = md_model_grad_buffer(m);
    /* The ranks' gradient sums and counts add up to the whole batch's: the
     * norm, the clip and the update below are the global ones. (Also on
     * one rank: the same bits, and the path of many is exercised.) */
    double sums[3] = {loss_sum, (double)count, 0};
    if (zero1) {
        /* the global norm from the shards' squared norms (the tail is on
         * every rank: counted once, after the sum) */
        if (zero1_reduce(comm, be, gbuf, opt) < 0) return -1;
        md_train_poison_gradient(m, step + 1);
        sums[2] = range_sumsq(be, gbuf, &opt->range[0]);
        if (md_comm_allreduce_host(comm, sums, 3) < 0) return -1;
        sums[2] += range_sumsq(be, gbuf, &opt->range[1]);
    } else if (comm) {
        if (md_grad_sync_finish(opt->sync) < 0 || md_comm_allreduce_host(comm, sums, 2) < 0) return -1;
    }
    loss_sum = sums[0];
    count = llround(sums[1]);
    const double gscale = count ? 1.0 / (double)count : 0;
    double gnorm = 0;
    if (zero1) {
        gnorm = sqrt(sums[2]) * gscale;
    } else if (count) {
        md_train_poison_gradient(m, step + 1);
        gnorm = md_flat_norm(be, gbuf.data, gbuf.dtype, md_model_params(m)->numel) * gscale;
    }
    const int verdict = md_train_step_verdict(loss_sum, count, gnorm, step, pg, guard, r);
    if (verdict == 1) opt->step++;   /* the moments stay; the count moves on (md_train_step_verdict) */
    if (verdict != 0) return verdict;
    md_adamw_step(opt, pbuf.data, gbuf.data, lr, gscale * md_clip_scale(gnorm, clip));
    if (zero1) {   /* every rank's updated shard to every rank (the tail is updated everywhere) */
        const md_adamw_range_t *shard = &opt->range[0];
        char *p = (char *)pbuf.data + (size_t)shard->off * md_dtype_size(pbuf.dtype);
        if (md_comm_all_gather(comm, p, pbuf.data, shard->n, pbuf.dtype) < 0) return -1;
    }
    return 0;
}

int md_train_step_verdict(double loss_sum, int64_t count, double gnorm, int64_t step, md_progress_t *pg,
                          md_step_guard_t *guard, md_step_result_t *r)
{
    if (count == 0) {
        md_progress_clear(pg);
        md_error("step %lld: the batch holds nothing to learn from (no A/C/G/T target or label; lower --max-n)",
                 (long long)step + 1);
        return -1;
    }
    const double loss = loss_sum / (double)count;
    *r = (md_step_result_t){loss_sum, count, loss, gnorm};
    if (!isfinite(loss) || !isfinite(gnorm)) {
        md_progress_clear(pg);
        guard->streak++;
        guard->skipped++;
        if (guard->streak >= guard->max_bad) {
            md_error("training stopped at step %lld: %lld steps in a row had a non-finite loss or gradient (loss %g, "
                     "gradient norm %g); the last checkpoint saved is kept; lower --lr", (long long)step + 1,
                     (long long)guard->streak, loss, gnorm);
            return -1;
        }
        md_warn("step %lld skipped: non-finite loss or gradient (loss %g, gradient norm %g); the weights are not "
                "updated (%lld in a row; %lld stop the run)", (long long)step + 1, loss, gnorm,
                (long long)guard->streak, (long long)guard->max_bad);
        return 1;
    }
    guard->streak = 0;
    return 0;
}
