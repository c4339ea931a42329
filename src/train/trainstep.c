/* md_train_step (train/trainer.h): the optimizer step that pretrain and
 * finetune share, with its guard against non-finite steps. */
#include <math.h>

#include "backend/ops.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "train/trainguard.h"
#include "util/log.h"

int md_train_step(md_model_t *m, md_comm_t *comm, md_adamw_t *opt, int64_t accum, md_micro_batch_fn fn, void *ud,
                  double lr, double clip, int64_t step, md_progress_t *pg, md_step_guard_t *guard,
                  md_step_result_t *r)
{
    md_model_zero_grad(m);
    double loss_sum = 0;
    int64_t count = 0;
    for (int64_t a = 0; a < accum; a++) {
        double ls = 0;
        int64_t n = 0;
        if (fn(ud, a, &ls, &n) < 0) return -1;
        loss_sum += ls;
        count += n;
    }
    const md_backend_t *be = md_model_backend(m);
    md_tensor_t pbuf = md_model_param_buffer(m), gbuf = md_model_grad_buffer(m);
    if (comm) {   /* also on one rank: the same bits, and the path of many is exercised */
        /* The ranks' gradient sums and counts add up to the whole batch's:
         * the norm, the clip and the update below are the global ones. */
        double sums[2] = {loss_sum, (double)count};
        if (md_comm_allreduce_sum(comm, gbuf.data, md_model_params(m)->numel, gbuf.dtype) < 0 ||
            md_comm_allreduce_host(comm, sums, 2) < 0)
            return -1;
        loss_sum = sums[0];
        count = llround(sums[1]);
    }
    if (count == 0) {
        md_progress_clear(pg);
        md_error("step %lld: the batch holds nothing to learn from (no A/C/G/T target or label; lower --max-n)",
                 (long long)step + 1);
        return -1;
    }
    md_train_poison_gradient(m, step + 1);
    const double loss = loss_sum / (double)count, gscale = 1.0 / (double)count;
    const double gnorm = md_flat_norm(be, gbuf.data, gbuf.dtype, md_model_params(m)->numel) * gscale;
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
        /* The moments stay as they were, but the step count moves on, so
         * that it always equals the steps taken (a resume sets it so). */
        opt->step++;
        return 1;
    }
    guard->streak = 0;
    md_adamw_step(opt, pbuf.data, gbuf.data, lr, gscale * md_clip_scale(gnorm, clip));
    return 0;
}
