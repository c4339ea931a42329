/* The held-out data options shared by pretrain and eval:
 *   --bed F --train-split X --val-split Y | --val-contigs a,b | --val-fraction f
 * Each command numbers their getopt codes from a base of its own. */
#ifndef MD_TRAIN_LMOPTS_H
#define MD_TRAIN_LMOPTS_H

#include "train/lmdata.h"

typedef struct md_lmopts {
    const char *bed, *train_split, *val_split, *val_contigs;
    double val_fraction;
    int fraction_given;
} md_lmopts_t;

#define MD_LMOPTS_HOLDOUT_LONGOPTS(first) \
    {"bed", required_argument, 0, (first) + 0}, \
    {"train-split", required_argument, 0, (first) + 1}, \
    {"val-split", required_argument, 0, (first) + 2}, \
    {"val-contigs", required_argument, 0, (first) + 3}, \
    {"val-fraction", required_argument, 0, (first) + 4}

#define MD_LMOPTS_HOLDOUT_HELP \
    "Held-out data (at most one source):\n" \
    "      --bed FILE           BED of intervals with a split label in column 4 (Basenji/Borzoi style)\n" \
    "      --train-split STR    the BED split(s) to train on, comma-separated (e.g. train)\n" \
    "      --val-split STR      the BED split(s) to validate on (e.g. valid)\n" \
    "      --val-contigs STR    hold out these whole contigs, comma-separated\n" \
    "      --val-fraction FLOAT hold out the last FLOAT of every contig\n"

void md_lmopts_init(md_lmopts_t *o);
/* Handles option number idx (getopt code minus the command's base). 1 when
 * handled, 0 when idx is not one of these, -1 after one error line. */
int md_lmopts_parse(md_lmopts_t *o, int idx, const char *arg);
/* Checks the combination and fills h. 0, or -1 after one error line
 * (two sources, --train-split without --bed, --bed without both splits). */
int md_lmopts_resolve(const md_lmopts_t *o, md_holdout_t *h);

#endif
