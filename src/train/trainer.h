/* The pre-training loop: next-base prediction on genome windows.
 *
 * Each optimizer step:
 *   1. the sequence length len = md_seq_len_at(step) (L without warmup);
 *   2. accum = ceil(tokens_per_step / (batch x len)) micro-batches, each of
 *      `batch` training windows of len + 1 bases (inputs = the first len,
 *      targets = the last len), forward + backward, gradients summed;
 *      with sequence-length warmup the shorter stages thus take more
 *      sequences per step, keeping the tokens per step constant;
 *   3. the gradient is scaled by 1 / (targets counted), its global norm
 *      measured and clipped to `clip`, and AdamW applied at md_lr_at(step).
 * Every input is a pure function of (options, step, data position), and
 * the CPU backend is deterministic, so training N steps, saving, resuming
 * and training M more gives bit-identical losses and weights to N + M
 * steps straight.
 *
 * Checkpoints (every save_every steps, at the end, and on SIGINT/SIGTERM)
 * go to out_path and its training state beside it (nn/checkpoint.h), a
 * pair that md_trainer_save replaces so that a kill at any moment leaves a
 * matching pair that --resume finds; the state holds the
 * step, tokens seen, the next window index and every option that fixes
 * the run (md_train_fixed_t), which a resumed run must share.
 */
#ifndef MD_TRAIN_TRAINER_H
#define MD_TRAIN_TRAINER_H

#include <stdint.h>

#include "dist/comm.h"
#include "nn/model.h"
#include "train/adamw.h"
#include "train/lmdata.h"
#include "train/progress.h"

/* ---- one optimizer step, shared by pretrain and finetune ---- */

/* Runs micro-batch `micro` (0 .. accum-1) of a step: forward and backward,
 * ADDING the gradient of its loss SUM to the model's gradient buffer, and
 * returning that sum and the count it is a sum over (targets, labelled
 * sequences). 0, or -1 after one error line. */
typedef int (*md_micro_batch_fn)(void *ud, int64_t micro, double *loss_sum, int64_t *count);

typedef struct md_step_result {
    double loss_sum;
    int64_t count;
    double loss;                  /* loss_sum / count */
    double grad_norm;             /* of the mean loss, before clipping */
} md_step_result_t;

/* The non-finite guard of md_train_step: a step whose loss or gradient
 * norm is NaN or infinite is skipped (no update) and logged; max_bad such
 * steps in a row stop the run. */
typedef struct md_step_guard {
    int64_t max_bad;              /* >= 1 */
    int64_t streak;               /* non-finite steps in a row so far */
    int64_t skipped;              /* in all */
} md_step_guard_t;

#define MD_MAX_BAD_STEPS_DEFAULT 5

/* One optimizer step at 0-based `step`: zero the gradients, run accum
 * micro-batches through fn, sum the gradients and counts over comm's ranks
 * (NULL: nothing to sum; every rank then holds the whole batch's) -- in
 * buckets during the last micro-batch's backward (train/gradsync.h), or,
 * when opt is sharded (ZeRO-1, md_train_adamw_init), by a reduce-scatter
 * after it, AdamW on this rank's shard alone and an all-gather of the
 * updated parameters -- scale the summed gradient by 1 / count, clip
 * its global norm to clip (0 = off) and apply AdamW at lr. Returns 0; 1
 * when the loss or gradient norm was not finite and the step was skipped
 * (a warning; no update, but opt's step count still advances); or -1 after
 * one error line (fn failed; nothing counted; guard->max_bad non-finite
 * steps in a row). pg's line is cleared before a message. *r is filled
 * unless fn failed. */
int md_train_step(md_model_t *m, md_comm_t *comm, md_adamw_t *opt, int64_t accum, md_micro_batch_fn fn, void *ud,
                  double lr, double clip, int64_t step, md_progress_t *pg, md_step_guard_t *guard,
                  md_step_result_t *r);

/* The guard's verdict on a step (after its loss and gradient norm are
 * known, before the update): fills *r; returns 0 to update; 1 when the
 * loss or the norm is not finite (a warning; guard counts it; the caller
 * skips the update but still advances the optimizer's step count, so
 * that it always equals the steps taken, as a resume sets it); -1 after
 * one error line when count is 0 or guard->max_bad such steps came in a
 * row. pg's line is cleared before a message. */
int md_train_step_verdict(double loss_sum, int64_t count, double gnorm, int64_t step, md_progress_t *pg,
                          md_step_guard_t *guard, md_step_result_t *r);

/* The optimizer for m's parameters: md_adamw_init_zero1 for comm's rank
 * when comm asks for ZeRO-1 (md_comm_zero1), else md_adamw_init over all
 * of them. comm may be NULL. 0, or -1 after one error line. */
int md_train_adamw_init(md_adamw_t *opt, md_model_t *m, md_comm_t *comm, const md_adamw_opts_t *ao);

/* Options a resumed run must share with the run it continues. */
typedef struct md_train_fixed {
    int64_t seq_len;              /* L */
    int64_t batch;                /* sequences per micro-batch */
    int64_t tokens_per_step;      /* input tokens per optimizer step */
    int64_t steps;                /* total optimizer steps (may be raised on resume) */
    double lr, lr_min, warmup;    /* peak rate, floor, warmup fraction of steps */
    double clip;                  /* global gradient-norm limit; 0 = off */
    md_adamw_opts_t adamw;
    int64_t seq_warmup_start;     /* first stage length */
    int64_t seq_warmup_steps;     /* steps per stage below L; 0 = off */
    uint64_t seed;
    double max_n_frac;
    int revcomp;
    md_holdout_t holdout;
} md_train_fixed_t;

/* Options free to change between runs. */
typedef struct md_train_opts {
    md_train_fixed_t f;
    int64_t log_every;            /* steps between log lines / metrics rows */
    int64_t val_every;            /* steps between validations; 0 = none */
    int64_t val_windows;          /* validation windows of L + 1 bases */
    int64_t save_every;           /* steps between checkpoints; 0 = at the end only */
    const char *out_path;         /* checkpoint; NULL = none */
    const char *metrics_path;     /* TSV (+ SVG beside it); NULL = none */
    int markov_order;             /* baseline fitted at start when validating; < 0 = none */
    int64_t stop_at;              /* stop (and save) after this step, leaving the schedule to steps; 0 = none */
    int64_t max_bad_steps;        /* non-finite steps in a row that stop the run (md_step_guard_t) */
    md_comm_t *comm;              /* data-parallel ranks (dist/comm.h); NULL = this process alone */
    int cuda_graph;               /* md_cuda_graph_t (train/graphstep.h): the step as a CUDA graph */
} md_train_opts_t;

void md_train_opts_init(md_train_opts_t *o);

/* The state a checkpoint records beyond weights and moments. */
typedef struct md_train_progress {
    int64_t step;                 /* optimizer steps completed */
    int64_t tokens;               /* input tokens processed */
    uint64_t next_window;         /* the training stream's next raw window index */
} md_train_progress_t;

/* Reads the fixed options a training state file recorded (the file beside
 * weights_path). Strings in saved->holdout point into *keep, which the
 * caller frees with free(). 0, or -1 after one error line. */
int md_train_read_saved(const char *weights_path, md_train_fixed_t *saved, md_train_progress_t *prog, char **keep);

/* Option names for messages and the bit of each in a "given" mask. */
enum {
    MD_TF_SEQ_LEN = 0, MD_TF_BATCH, MD_TF_TOKENS_PER_STEP, MD_TF_STEPS, MD_TF_LR, MD_TF_LR_MIN, MD_TF_WARMUP,
    MD_TF_CLIP, MD_TF_WEIGHT_DECAY, MD_TF_SEQ_WARMUP_START, MD_TF_SEQ_WARMUP_STEPS, MD_TF_SEED, MD_TF_MAX_N,
    MD_TF_REVCOMP, MD_TF_HOLDOUT, MD_TF_BETA2, MD_TF_N
};

/* Makes `o` the saved options, except that an option whose bit is set in
 * given must equal the saved value (an error otherwise, naming the option
 * and both values) -- but --steps may differ (a warning: the schedule
 * changes). 0, or -1 after one error line. */
int md_train_merge_saved(md_train_fixed_t *o, const md_train_fixed_t *saved, uint32_t given, const char *ckpt);

typedef struct md_trainer md_trainer_t;

/* Called after every optimizer step (for tests and tools). */
typedef void (*md_train_step_fn)(void *ud, int64_t step, double loss, double grad_norm, double lr);

/* Sets up training of m on d: the optimizer, the training samplers for
 * every stage length, the validation windows. Nothing is written yet.
 * NULL after one error line. */
md_trainer_t *md_trainer_new(md_model_t *m, md_lm_data_t *d, const md_train_opts_t *o);
void md_trainer_free(md_trainer_t *t);

/* Loads weights, moments and progress from a checkpoint written by a run
 * with the same fixed options (checked again here) and the same genome.
 * 0, or -1 after one error line. */
int md_trainer_resume(md_trainer_t *t, const char *weights_path);

/* Runs until o->f.steps. 0; MD_TRAIN_INTERRUPTED (train/trainguard.h) when
 * a SIGINT or SIGTERM stopped it at a step boundary, after saving a
 * checkpoint; or -1 after one error line (diverged, I/O), the last
 * checkpoint on disk left as it was. */
int md_trainer_run(md_trainer_t *t, md_train_step_fn fn, void *ud);

const md_train_progress_t *md_trainer_progress(const md_trainer_t *t);

/* Saves a checkpoint of the current state to path (and its state file). */
int md_trainer_save(md_trainer_t *t, const char *path);

/* ---- the weights + training state pair, shared by pretrain and finetune ---- */

/* Writes opt's moments with state_json (which must hold the integer
 * "step" that the weights' "training" record also holds) to path's state
 * file, and the weights through save_weights(ud, path), replacing an
 * earlier pair so that a kill at any moment leaves a matching one. 0, or
 * -1 after one error line (the earlier pair left as it was). */
int md_train_save_pair(const char *path, const md_adamw_t *opt, const char *state_json,
                       int (*save_weights)(void *ud, const char *path), void *ud);

/* Finds the state that matches the weights at weights_path by step (the
 * state file, or what an interrupted save set aside, moved back), loads its
 * moments into opt (allocated for the same parameters) and sets opt's step.
 * *state_json receives the state's JSON and *state_path the state file's
 * name (both freed by the caller). The weights themselves are the caller's
 * to load. 0, or -1 after one error line. */
int md_train_load_pair(const char *weights_path, md_adamw_t *opt, char **state_json, char **state_path);

/* The JSON of the training state beside weights_path (the file
 * md_train_load_pair would read first, without its moments: the options
 * to check before a model's size is trusted). *state_path receives the
 * file's name, also on failure; both freed by the caller. 0, or -1 after
 * one error line. */
int md_train_read_state(const char *weights_path, char **state_json, char **state_path);

/* The parsed state record `text` of the file state_path (a JSON object);
 * NULL after one error line naming the file. */
struct json_t *md_train_parse_state(const char *state_path, const char *text);

#endif
