/* Fine-tuning a sequence classifier on labelled genomes (mambadna
 * finetune): the Mamba paper's great-ape protocol.
 *
 * Epochs of steps_per_epoch optimizer steps; each step takes `batch`
 * training examples (train/species.h: species uniform, then a window of its
 * training part), in micro-batches of at most the model's max batch whose
 * gradients are summed (md_train_step: mean over the step's examples,
 * global-norm clipping, AdamW). Learning rate: linear warmup over the first
 * warmup fraction of all steps, then cosine down to lr_min.
 *
 * Data parallel (o->comm of several ranks): -B stays the step's number of
 * examples and --micro-batch each rank's; a micro-batch is micro x ranks
 * examples, drawn whole on every rank, of which rank r runs r, r + ranks,
 * ...; gradients, counts and training accuracy are summed over the ranks,
 * and rank 0 alone evaluates, reports and saves. The checkpoint is that of
 * a one-process run; it continues on any number of ranks given the same
 * --micro-batch.
 *
 * Sequence-length warmup (the paper's rule for L > 2^14): one extra epoch
 * per doubling of length from seq_warmup_start (2^14) up to L, before the
 * `epochs` epochs at L; the batch keeps its number of examples (a
 * classification step counts sequences, not tokens). Memory is planned
 * once, for L.
 *
 * After every epoch: validation loss and accuracy over every species'
 * validation windows, per-species accuracy, the epoch TSV/SVG and the
 * validation confusion matrix (TSV/SVG), and the checkpoint (the classifier
 * record of nn/checkpoint.h) with its training state beside it (the pair
 * of train/trainer.h: md_train_save_pair), which holds the moments, the
 * step, the epoch's partial sums and the finished epochs' report rows. A
 * run resumed from it (o->resume; also from a checkpoint saved mid-epoch by
 * a signal) continues bit-exactly: same weights and reports as a run never
 * stopped. At the end, the test windows' accuracy and confusion matrix.
 */
#ifndef MD_TRAIN_CLSTRAIN_H
#define MD_TRAIN_CLSTRAIN_H

#include <stdint.h>

#include "dist/comm.h"
#include "nn/model.h"
#include "train/adamw.h"
#include "train/species.h"

typedef struct md_cls_train_opts {
    int64_t seq_len, batch, epochs, steps_per_epoch;
    int64_t seq_warmup_start;     /* 2^14 */
    double lr, lr_min, warmup, clip;
    md_adamw_opts_t adamw;
    int64_t val_windows, test_windows;   /* per species */
    uint64_t seed;
    int64_t log_every;            /* steps between log lines */
    int64_t max_bad_steps;        /* non-finite steps in a row that stop the run (trainer.h: md_step_guard_t) */
    const char *out_path;         /* the checkpoint */
    const char *report_prefix;    /* PREFIX.epochs.tsv, PREFIX.val-confusion.tsv, PREFIX.test-confusion.tsv (+ .svg) */
    const char *source;           /* the pretrained checkpoint, or NULL (from scratch), for the record */
    /* what fixes the training data (a resumed run must match it) */
    const char *holdout_desc;     /* md_holdout_describe's */
    double max_n_frac;
    int revcomp;
    const char *resume;           /* a checkpoint of this run to continue from, or NULL */
    int64_t stop_at;              /* stop (and save) after this step, before the test; 0 = never */
    md_comm_t *comm;              /* data-parallel ranks (dist/comm.h); NULL = this process alone */
    int cuda_graph;               /* md_cuda_graph_t (train/graphstep.h): never a graph here (the head's
                                     softmax is on the host); "on" is an error */
} md_cls_train_opts_t;

typedef struct md_cls_train_result {
    double val_acc, val_loss, test_acc, test_loss;
    int64_t n_test;               /* 0 when stop_at stopped the run before the test */
} md_cls_train_result_t;

/* Trains m (a classifier with one class per species of d, weights already
 * initialised or loaded) and writes the checkpoint and reports. 0 (also
 * when o->stop_at stopped it);
 * MD_TRAIN_INTERRUPTED (train/trainguard.h) when a SIGINT or SIGTERM stopped
 * it at a step boundary, after saving the checkpoint; or -1 after one error
 * line. */
int md_cls_train(md_model_t *m, md_species_data_t *d, const md_cls_train_opts_t *o, md_cls_train_result_t *res);

/* The number of sequence-length warmup epochs for length L. */
int64_t md_cls_warmup_epochs(int64_t seq_len, int64_t start);

#endif
