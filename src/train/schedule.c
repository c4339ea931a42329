#include "train/schedule.h"

#include <math.h>

double md_lr_at(const md_lr_schedule_t *s, int64_t step)
{
    if (step < s->warmup_steps) return s->lr * (double)(step + 1) / (double)s->warmup_steps;
    int64_t decay_steps = s->total_steps - s->warmup_steps;
    if (decay_steps <= 0) return s->lr;
    double p = (double)(step - s->warmup_steps) / (double)decay_steps;
    if (p > 1) p = 1;
    return s->lr_min + (s->lr - s->lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}

int md_seq_n_stages(const md_seq_schedule_t *s)
{
    if (s->stage_steps <= 0 || s->start_len >= s->target_len) return 1;
    int n = 1;
    for (int64_t len = s->start_len; len < s->target_len; len *= 2) n++;
    return n;
}

int64_t md_seq_len_at(const md_seq_schedule_t *s, int64_t step)
{
    if (s->stage_steps <= 0 || s->start_len >= s->target_len) return s->target_len;
    int64_t stage = step / s->stage_steps;
    int64_t len = s->start_len;
    for (int64_t k = 0; k < stage && len < s->target_len; k++) len *= 2;
    return len < s->target_len ? len : s->target_len;
}

int64_t md_seq_batch_at(const md_seq_schedule_t *s, int64_t batch, int64_t step)
{
    int64_t len = md_seq_len_at(s, step);
    int64_t b = batch * s->target_len / len;
    return b > 0 ? b : 1;
}

int64_t md_accum_steps(int64_t tokens_per_step, int64_t b, int64_t len)
{
    int64_t per = b * len;
    if (per <= 0 || tokens_per_step <= per) return 1;
    return (tokens_per_step + per - 1) / per;
}
