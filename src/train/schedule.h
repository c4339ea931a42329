/* Learning-rate and sequence-length schedules: pure functions of the step,
 * so a resumed run recomputes them from the saved step alone.
 *
 * Learning rate (step counted from 0, total steps T, warmup W):
 *   step < W:  lr * (step + 1) / W              linear warmup
 *   else:      lr_min + (lr - lr_min) (1 + cos(pi p)) / 2,  p = (step - W) / (T - W)
 *
 * Sequence-length warmup (the HyenaDNA/Mamba paper's "SLW"): training starts
 * at length `start` (2^10 by default) and doubles after every `stage_steps`
 * steps until it reaches the target length L; the batch grows by the same
 * factor, so every step still sees the same number of tokens.
 */
#ifndef MD_TRAIN_SCHEDULE_H
#define MD_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef struct md_lr_schedule {
    double lr, lr_min;
    int64_t warmup_steps, total_steps;
} md_lr_schedule_t;

double md_lr_at(const md_lr_schedule_t *s, int64_t step);

typedef struct md_seq_schedule {
    int64_t target_len;      /* L */
    int64_t start_len;       /* first stage's length; >= target_len means no warmup */
    int64_t stage_steps;     /* steps per stage below L; 0 means no warmup */
} md_seq_schedule_t;

/* The sequence length in force at step (0-based). */
int64_t md_seq_len_at(const md_seq_schedule_t *s, int64_t step);
/* The batch at step: batch x L / len (at least 1), so tokens per step stay
 * those of the full length; exact when L / start is a power of two. */
int64_t md_seq_batch_at(const md_seq_schedule_t *s, int64_t batch, int64_t step);
/* The number of stages (1 without warmup). */
int md_seq_n_stages(const md_seq_schedule_t *s);

/* Gradient accumulation: how many micro-batches of b windows of length len
 * make up a step of tokens_per_step tokens (at least 1, rounding up). */
int64_t md_accum_steps(int64_t tokens_per_step, int64_t b, int64_t len);

#endif
