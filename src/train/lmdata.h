/* Language-model data: a loaded genome split into a training stream and a
 * fixed set of held-out validation windows.
 *
 * A window of length n gives n - 1 predictions: inputs are its tokens
 * [0, n-1), targets its tokens [1, n). Training at sequence length L thus
 * draws windows of L + 1 bases.
 *
 * Held-out sources (at most one):
 *   BED     --bed F --train-split X --val-split Y: training windows are the
 *           shuffled tiles of split X, validation the tiles of split Y.
 *   CONTIGS --val-contigs a,b: validation tiles cover those whole contigs;
 *           training draws uniformly from the rest.
 *   FRACTION --val-fraction f: the last f of every contig (rounded down to
 *           whole bases) is held out and tiled for validation; training draws
 *           uniformly from the first 1 - f.
 *   NONE    training draws uniformly from everything; "validation" windows
 *           are uniform draws under another seed (not held out: eval of a
 *           whole genome uses this).
 * A second held-out set, for a final test (finetune), is optional: with
 * CONTIGS, test_contigs names more whole contigs (disjoint from the
 * validation ones); with FRACTION, test_fraction holds out a further part of
 * every contig: contig c keeps [0, cut) for training, then
 * floor(val_fraction x len) bases for validation, then the rest (about
 * test_fraction x len) for the test. Training never touches either set.
 *
 * Uniform training over part of the genome is the sampler's uniform stream
 * with every window touching the held-out part skipped: window indices stay
 * a pure function of (seed, i), so a run resumes exactly from the next raw
 * index, and the distribution is uniform over the allowed starts.
 *
 * Validation windows are the first n tiles of a shuffled pass (distinct,
 * non-overlapping within the held-out region), the same for every call.
 */
#ifndef MD_TRAIN_LMDATA_H
#define MD_TRAIN_LMDATA_H

#include <stdint.h>

#include "data/sampler.h"
#include "seq/genome.h"

typedef enum { MD_HOLDOUT_NONE = 0, MD_HOLDOUT_BED, MD_HOLDOUT_CONTIGS, MD_HOLDOUT_FRACTION } md_holdout_kind_t;

typedef struct md_holdout {
    md_holdout_kind_t kind;
    const char *bed_path, *train_split, *val_split;   /* BED */
    const char *val_contigs;                          /* CONTIGS: comma list */
    double val_fraction;                              /* FRACTION, in (0, 1) */
    const char *test_contigs;                         /* CONTIGS: comma list, or NULL for no test set */
    double test_fraction;                             /* FRACTION: 0 for no test set */
} md_holdout_t;

/* Describes h as the options that give it ("--val-fraction 0.05"). */
void md_holdout_describe(const md_holdout_t *h, char *buf, int n);

typedef struct md_lm_data md_lm_data_t;

/* Over a loaded genome g (which must outlive it). max_n_frac and revcomp go
 * to the samplers. NULL after one error line (unknown contig, bad BED or
 * split, a fraction leaving nothing). */
md_lm_data_t *md_lm_data_new(md_genome_t *g, const md_holdout_t *h, uint64_t seed, double max_n_frac,
                             int revcomp);
void md_lm_data_free(md_lm_data_t *d);

/* Builds the training sampler for windows of win_len bases (cached per
 * length). 0, or -1 after one error line: no window of that length exists,
 * passes the N filter, or lies outside the held-out part. */
int md_lm_data_prepare_train(md_lm_data_t *d, int64_t win_len);
/* Builds the validation windows of win_len bases; *n_available receives
 * how many distinct ones there are (may be NULL). 0, or -1 after one error
 * line (none fits). */
int md_lm_data_prepare_val(md_lm_data_t *d, int64_t win_len, uint64_t *n_available);

/* The same for the test set (held-out kinds CONTIGS with test_contigs, or
 * FRACTION with test_fraction > 0; an error line otherwise). */
int md_lm_data_prepare_test(md_lm_data_t *d, int64_t win_len, uint64_t *n_available);
void md_lm_data_test_batch(md_lm_data_t *d, uint64_t first, int64_t B, uint8_t *tokens, md_window_t *windows);

/* B training windows of win_len bases (prepared) from raw index *next on,
 * skipping those that touch the held-out part; *next moves past the last
 * one used. tokens: B x win_len; windows (may be NULL) gets B windows. */
void md_lm_data_train_batch(md_lm_data_t *d, int64_t win_len, uint64_t *next, int64_t B, uint8_t *tokens,
                            md_window_t *windows);
/* Part `part` of `parts` of that batch (data-parallel ranks): its windows
 * b = part, part + parts, ... in order; the walk and *next are those of the
 * whole batch, so the parts of one batch are disjoint and together are
 * md_lm_data_train_batch's. Returns their number (dist/dist.h:
 * md_dist_share); tokens and windows hold that many. */
int64_t md_lm_data_train_batch_part(md_lm_data_t *d, int64_t win_len, uint64_t *next, int64_t B, int part,
                                    int parts, uint8_t *tokens, md_window_t *windows);
/* Validation windows first .. first + B - 1 (prepared length); windows may
 * be NULL. */
void md_lm_data_val_batch(md_lm_data_t *d, uint64_t first, int64_t B, uint8_t *tokens, md_window_t *windows);

/* Calls fn on every training region (contig, [start, end)), for baselines
 * fitted on the training data. Regions may overlap in BED mode. */
void md_lm_data_train_regions(const md_lm_data_t *d, void (*fn)(void *ud, int contig, int64_t start, int64_t end),
                              void *ud);

const md_genome_t *md_lm_data_genome(const md_lm_data_t *d);

/* Names the data in its error messages, e.g. "species 'human'": they then
 * read "species 'human' (--val-fraction 0.05) holds out ...". */
void md_lm_data_set_what(md_lm_data_t *d, const char *what);

#endif
