/* UCSC .2bit files: our own reader and writer.
 *
 * Layout: a 16-byte header (magic 0x1A412743 in the file's byte order,
 * version 0 with 32-bit offsets or 1 with 64-bit offsets, sequence count,
 * reserved), an index of (name, offset), then per sequence: dna size,
 * N blocks, soft-mask blocks, reserved word, and the packed bases
 * (T=0 C=1 A=2 G=3, first base in the high bits). Either byte order is
 * read; files are written little-endian, version 0 unless an offset or a
 * length needs 64 bits, then version 1.
 */
#ifndef MD_SEQ_TWOBIT_H
#define MD_SEQ_TWOBIT_H

#include <stdint.h>

typedef struct md_twobit md_twobit_t;

/* Reads the header and index; NULL after one error line. */
md_twobit_t *md_twobit_open(const char *path);
void md_twobit_close(md_twobit_t *tb);

int md_twobit_n_seqs(const md_twobit_t *tb);
const char *md_twobit_name(const md_twobit_t *tb, int i);
/* Length of sequence i; reads its record header on first use. -1 after one
 * error line if the record is truncated or corrupt. */
int64_t md_twobit_length(md_twobit_t *tb, int i);

/* Writes seq i's bases [start, end) as ASCII (keep_case: lowercase where
 * soft-masked). 0, or -1 after one error line. */
int md_twobit_fetch(md_twobit_t *tb, int i, int64_t start, int64_t end, char *out, int keep_case);

/* Loads sequence i whole, in the 2bit packing of genome.h's md_contig_t:
 * allocates *packed ((len + 3) / 4 bytes), *n_runs and *mask_runs. 0, or -1
 * after one error line. */
struct md_run;
int md_twobit_load(md_twobit_t *tb, int i, uint8_t **packed, struct md_run **n_runs, int64_t *n_n_runs,
                   struct md_run **mask_runs, int64_t *n_mask_runs);

/* Writes n ASCII sequences as a .2bit file at path, atomically (temporary
 * file, then rename). Lowercase becomes soft-mask blocks; bytes other than
 * ACGTacgt become N blocks (lowercase n is masked N). 0, or -1 after one
 * error line. */
int md_twobit_write(const char *path, int n, const char *const *names, const char *const *seqs,
                    const int64_t *lens);

#endif
