/* What fine-tuning a classifier reports: confusion matrices (TSV and an SVG
 * heat map) and the per-epoch curves (TSV and an SVG line plot).
 *
 * Confusion TSV: a '#' title line, then a header "true\pred" + one column
 * per label + "n" + "accuracy", then one row per true label: the counts
 * predicted as each label, the row's total and its accuracy (recall), and
 * a last row "all" with the column totals, the total and the overall
 * accuracy. The SVG shows each row's fractions as shades, with the counts.
 *
 * Epoch TSV columns: epoch step lr train_loss train_acc val_loss val_acc,
 * then val_acc_<label> per label. Losses are mean natural-log cross-entropy
 * per sequence. The file is rewritten whole after every epoch (outfile.h),
 * and its SVG (FILE.svg beside FILE.tsv) redrawn.
 */
#ifndef MD_TRAIN_CLSREPORT_H
#define MD_TRAIN_CLSREPORT_H

#include <stdint.h>

typedef struct md_confusion {
    int n_classes;
    int64_t *counts;         /* [truth * n_classes + predicted] */
    double loss_sum;         /* sum of -ln p(truth) */
    int64_t n;
} md_confusion_t;

void md_confusion_init(md_confusion_t *c, int n_classes);
void md_confusion_free(md_confusion_t *c);
void md_confusion_clear(md_confusion_t *c);
/* Adds one example: its true class and its class log-probabilities. */
void md_confusion_add(md_confusion_t *c, int truth, const float *logprobs);
double md_confusion_accuracy(const md_confusion_t *c);
/* Accuracy among examples of true class k (NaN when there are none). */
double md_confusion_class_accuracy(const md_confusion_t *c, int k);
double md_confusion_mean_loss(const md_confusion_t *c);

/* Writes the TSV at path and the heat map at path's .svg. 0, or -1 after
 * one error line. */
int md_confusion_write(const md_confusion_t *c, const char *const *labels, const char *title, const char *tsv_path);

typedef struct md_epoch_row {
    int64_t epoch, step;
    double lr, train_loss, train_acc, val_loss, val_acc;
    double *val_class_acc;   /* n_classes values, copied */
} md_epoch_row_t;

typedef struct md_epoch_log md_epoch_log_t;

md_epoch_log_t *md_epoch_log_new(const char *tsv_path, int n_classes, const char *const *labels, const char *title);
/* Appends a row and rewrites the TSV and the SVG. 0, or -1 after one error line. */
int md_epoch_log_add(md_epoch_log_t *l, const md_epoch_row_t *row);
void md_epoch_log_free(md_epoch_log_t *l);

#endif
