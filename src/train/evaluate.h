/* Held-out evaluation of a language model and of the Markov baseline on the
 * same validation windows. Loss is the mean natural-log cross-entropy per
 * counted target (A, C, G, T); perplexity exp(loss); bits per base
 * loss / ln 2 (2.0 is a uniform guess over four bases).
 */
#ifndef MD_TRAIN_EVALUATE_H
#define MD_TRAIN_EVALUATE_H

#include <stdint.h>

#include "nn/model.h"
#include "train/lmdata.h"
#include "train/markov.h"

typedef struct md_eval_result {
    double loss_sum;
    int64_t n_targets;
    int64_t n_windows;
    double loss, ppl, bits_per_base;   /* derived; NaN when n_targets is 0 */
} md_eval_result_t;

void md_eval_finish(md_eval_result_t *r);

/* The model on validation windows 0 .. n_windows-1 of seq_len + 1 bases
 * (prepared in d), batch sequences at a time (<= the model's max batch).
 * 0, or -1 after one error line. */
int md_eval_model(md_model_t *m, md_lm_data_t *d, int64_t seq_len, int64_t n_windows, int64_t batch,
                  md_eval_result_t *r);

/* Fits an order-k chain on the training regions of d and scores it on the
 * same validation windows. */
void md_eval_markov(md_lm_data_t *d, int order, int64_t seq_len, int64_t n_windows, md_eval_result_t *r);

#endif
