/* What stops a training run early, and how (pretrain, finetune).
 *
 * Signals: md_train_catch_signals() makes the first SIGINT or SIGTERM a
 * request, which the training loop honours at the next step boundary: it
 * saves a checkpoint and returns MD_TRAIN_INTERRUPTED, and the command
 * exits with md_train_interrupted_status() (128 + the signal: 130 for
 * SIGINT, 143 for SIGTERM, as a shell reports a process the signal killed,
 * so that scripts see the run did not finish). A second signal acts at once
 * (the default action: the process dies); checkpoints are written
 * atomically, so the last one on disk stays whole either way.
 * SIGXFSZ (a file-size limit, ulimit -f) is ignored while training, so that
 * writing past the limit fails with EFBIG and an error naming the file
 * instead of killing the process.
 *
 * Test hook: the environment variable MD_TEST_POISON_STEPS, a
 * comma-separated list of 1-based optimizer steps, writes a NaN into the
 * gradient of those steps (md_train_poison_gradient), to exercise the
 * non-finite-step guard of md_train_step on any backend. For tests only.
 */
#ifndef MD_TRAIN_TRAINGUARD_H
#define MD_TRAIN_TRAINGUARD_H

#include <stdint.h>

#include "nn/model.h"

/* What md_trainer_run and md_cls_train return after a SIGINT or SIGTERM. */
#define MD_TRAIN_INTERRUPTED 2

/* Installs the handlers (idempotent); md_train_release_signals() restores
 * the previous ones. */
void md_train_catch_signals(void);
void md_train_release_signals(void);

/* The signal that asked for a stop, or 0. */
int md_train_stop_signal(void);
/* "SIGINT" or "SIGTERM". */
const char *md_train_signal_name(int sig);
/* The exit status of a command stopped by a signal: 128 + the signal. */
int md_train_interrupted_status(void);

/* MD_TEST_POISON_STEPS: writes a NaN into m's gradient when the 1-based step
 * `step1` is listed. */
void md_train_poison_gradient(md_model_t *m, int64_t step1);
/* 1 when MD_TEST_POISON_STEPS lists the 1-based step step1 (the device
 * step's form of the hook, train/graphstep.h). */
int md_train_step_poisoned(int64_t step1);

#endif
