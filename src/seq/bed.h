/* BED intervals with a split column, as training sets are published.
 *
 * Two layouts are in use and both are read the same way (chrom, start, end,
 * then the split label in column 4 by default):
 *   Basenji/Enformer sequences_*.bed:  chrom start end {train|valid|test}
 *   Borzoi sequences_*.bed.gz:         chrom start end fold0 .. fold7
 * In a Borzoi-style file (every label is "fold<digits>") the names train,
 * valid and test are also accepted and mean what Borzoi used: test = fold3,
 * valid = fold4, train = every other fold present. A label that is itself in
 * the file always wins over that mapping.
 *
 * Files are read plain or gzip (zlib detects which). Blank lines and lines
 * starting with '#', "track" or "browser" are skipped. Columns are split on
 * tabs, or on runs of spaces when a line holds no tab. Every data line must
 * have integer start >= 0 and end > start; anything else is an error naming
 * file:line. Coordinates are 0-based, half-open, 64-bit.
 */
#ifndef MD_SEQ_BED_H
#define MD_SEQ_BED_H

#include <stdint.h>

typedef struct md_bed_interval {
    int64_t start, end;
    int64_t line;       /* 1-based line in the file, for messages */
    int32_t chrom;      /* index into md_bed_t.chroms */
    int32_t split;      /* index into md_bed_t.splits; -1 when read without a split column */
} md_bed_interval_t;

typedef struct md_bed {
    char *path;
    md_bed_interval_t *iv;   /* in file order */
    int64_t n;
    char **chroms;           /* distinct chromosome names, in order of first appearance */
    int n_chroms;
    char **splits;           /* distinct split labels, in order of first appearance */
    int n_splits;
    int split_col;           /* 1-based column of the split label; 0 = none read */
} md_bed_t;

/* Reads every interval of path (plain or gzip; "-" is standard input).
 * split_col > 3 makes that column the split
 * label, and a line without it is an error; 0 ignores columns past the third.
 * Returns NULL after one error line (missing file, gzip error, malformed
 * line as file:line, no intervals at all). */
md_bed_t *md_bed_read(const char *path, int split_col);
void md_bed_free(md_bed_t *b);

/* Resolves a split selection: spec is a comma list of labels (e.g.
 * "fold0,fold1" or "train"), with the Borzoi train/valid/test mapping above.
 * Sets selected[i] (n_splits entries) to 1 for each chosen label. 0, or -1
 * after one error line naming the file, the unknown label and the labels
 * the file holds. b must have been read with a split column. */
int md_bed_select_splits(const md_bed_t *b, const char *spec, uint8_t *selected);

#endif
