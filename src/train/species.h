/* Labelled genomes for species classification (mambadna finetune).
 *
 * Each species is a label and one genome (one or more files, as the other
 * commands take them), loaded whole and split by the held-out options of
 * train/lmdata.h into training, validation and test parts, per species:
 * --val-contigs/--test-contigs name contigs, comma-separated: a plain name
 * for every species (the simulator's chr1, chr2, ...), "LABEL:NAME" for
 * species LABEL only (real genomes name their contigs differently); every
 * species must end up with at least one of each. --val-fraction/--test-fraction hold
 * out the end of every contig. Training never draws from either held-out
 * part (lmdata.h rejects any window that touches it).
 *
 * Sampling, as in the Mamba/HyenaDNA species experiment: training example
 * i picks its species uniformly, as a pure function of (seed, i); then the
 * species' own training stream (train/lmdata.h over data/sampler.h) gives
 * its next window of L bases: a start uniform over every valid start of the
 * species' training part, i.e. a contig weighted by its length (less L - 1)
 * and a uniform position in it, windows with too many N never drawn,
 * reverse-complemented with probability 1/2 when revcomp is on. A run's
 * examples are thus fixed by the seed and the order of the calls.
 *
 * Validation and test windows are the held-out parts' non-overlapping
 * tiles of L bases in a seeded shuffled order (the same for every call),
 * the first n of each species.
 */
#ifndef MD_TRAIN_SPECIES_H
#define MD_TRAIN_SPECIES_H

#include <stdint.h>

#include "train/lmdata.h"

/* The species as given on the command line: labels in order, each with its
 * genome files. */
typedef struct md_species_spec {
    int n;
    char **labels;
    char ***paths;           /* paths[i]: n_paths[i] files */
    int *n_paths;
} md_species_spec_t;

/* Adds "LABEL=GENOME[,GENOME...]"; files for a label already given add to
 * its genome. 0, or -1 after one error line (no '=', an empty label or
 * path, a label with a tab or newline). */
int md_species_spec_add(md_species_spec_t *s, const char *arg);
/* Adds every "label<TAB>path" line of a TSV file (blank lines and lines
 * starting with '#' skipped). 0, or -1 after one error line naming the
 * file and line. */
int md_species_spec_read_tsv(md_species_spec_t *s, const char *path);
void md_species_spec_free(md_species_spec_t *s);

typedef struct md_species_data md_species_data_t;

/* Opens and loads every species' genome and splits it by h (kind CONTIGS
 * or FRACTION). NULL after one error line, naming the species when a
 * genome lacks a held-out contig. */
md_species_data_t *md_species_data_new(const md_species_spec_t *spec, const md_holdout_t *h, uint64_t seed,
                                       double max_n_frac, int revcomp);
void md_species_data_free(md_species_data_t *d);

int md_species_data_n(const md_species_data_t *d);
const char *md_species_data_label(const md_species_data_t *d, int species);

/* Builds the training samplers for windows of len bases. 0, or -1 after
 * one error line naming the species (no window fits its training part). */
int md_species_data_prepare_train(md_species_data_t *d, int64_t len);

/* B training examples of len bases (prepared): tokens B x len and their
 * species indices. Advances the example counter and the species' streams. */
void md_species_data_train_batch(md_species_data_t *d, int64_t len, int64_t B, uint8_t *tokens, int32_t *labels);

enum { MD_SPLIT_VAL = 0, MD_SPLIT_TEST = 1 };

/* Prepares the validation or test tiles of len bases; n_per[species]
 * receives min(want, the tiles there are). 0, or -1 after one error line
 * (a species whose held-out part holds no window of len bases). */
int md_species_data_prepare_eval(md_species_data_t *d, int split, int64_t len, int64_t want, int64_t *n_per);
/* Tiles first .. first + n - 1 of a species' prepared set. */
void md_species_data_eval_batch(md_species_data_t *d, int split, int species, int64_t first, int64_t n,
                                uint8_t *tokens);

#endif
