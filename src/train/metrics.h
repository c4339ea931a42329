/* Training metrics: a TSV with one row per log interval, and an SVG plot of
 * the curves beside it (FILE.tsv -> FILE.svg), redrawn after every row.
 *
 * The file starts with '#' provenance lines (util/provenance.h), then the
 * column names: step tokens seq_len lr loss grad_norm tokens_per_s val_loss
 * val_ppl val_bits_per_base; a column without a value holds NA. Losses are
 * natural-log cross-entropy per predicted base; bits per base = loss / ln 2.
 * A fresh run replaces the file; a resumed run keeps the rows up to the
 * step it resumes from and drops later ones (they belonged to a run that
 * went on past its last checkpoint), so the curve has no doubled steps.
 */
#ifndef MD_TRAIN_METRICS_H
#define MD_TRAIN_METRICS_H

#include <stdint.h>

typedef struct md_metrics_row {
    int64_t step;             /* optimizer steps completed */
    int64_t tokens;           /* training tokens seen (predicted positions) */
    int64_t seq_len;
    double lr, loss, grad_norm, tokens_per_s;
    double val_loss;          /* NaN when not evaluated at this row */
} md_metrics_row_t;

typedef struct md_metrics md_metrics_t;

/* Opens tsv_path for a run. resume_step < 0: a fresh run (the file is
 * replaced with a header). Otherwise rows with step <= resume_step are kept.
 * baseline_bpb (NaN for none) is drawn as a reference line. NULL after one
 * error line. */
md_metrics_t *md_metrics_open(const char *tsv_path, int64_t resume_step, const char *title);
void md_metrics_set_baseline(md_metrics_t *m, double bits_per_base, const char *label);
/* Appends a row to the TSV and redraws the SVG. 0, or -1 after one error line. */
int md_metrics_append(md_metrics_t *m, const md_metrics_row_t *row);
void md_metrics_close(md_metrics_t *m);

/* The SVG path beside a TSV path: the .tsv extension replaced by .svg, or
 * .svg appended. Caller frees. */
char *md_metrics_svg_path(const char *tsv_path);

#endif
