/* UCSC .2bit files: our own reader and writer.
 *
 * Layout: a 16-byte header (magic 0x1A412743 in the file's byte order,
 * version 0 with 32-bit index offsets or 1 with 64-bit index offsets,
 * sequence count, reserved), an index of (name, offset), then per sequence:
 * dna size, N blocks, soft-mask blocks, reserved word, and the packed bases
 * (T=0 C=1 A=2 G=3, first base in the high bits). Sizes and block
 * coordinates are 32-bit in both versions, so one sequence holds < 4 Gbp.
 * Either byte order is read; files are written little-endian, version 0
 * unless an offset needs 64 bits, then version 1.
 *
 * Every count, offset and block is checked against the file size before it
 * is used, so a truncated or corrupt file gives one error line naming the
 * file and what is wrong, never a crash or an outsized allocation.
 *
 * A md_twobit_t reads through one FILE: not thread-safe.
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
 * soft-masked). 0, or -1 after one error line (a range outside the
 * sequence, a truncated or corrupt record). */
int md_twobit_fetch(md_twobit_t *tb, int i, int64_t start, int64_t end, char *out, int keep_case);

/* Loads sequence i whole, in the 2bit packing of genome.h's md_contig_t:
 * allocates *packed ((len + 3) / 4 bytes), *n_runs and *mask_runs (sorted,
 * disjoint, maximal; positions inside N runs hold T=0). 0, or -1 after one
 * error line. */
struct md_run;
int md_twobit_load(md_twobit_t *tb, int i, uint8_t **packed, struct md_run **n_runs, int64_t *n_n_runs,
                   struct md_run **mask_runs, int64_t *n_mask_runs);

/* Writes n ASCII sequences as a .2bit file at path, atomically (temporary
 * file, then rename). Lowercase becomes soft-mask blocks; bytes other than
 * ACGTacgt become N blocks (lowercase n is masked N). Names must be 1..255
 * bytes without whitespace, lengths < 2^32. 0, or -1 after one error line. */
int md_twobit_write(const char *path, int n, const char *const *names, const char *const *seqs,
                    const int64_t *lens);

/* The packing shared with genome.c. */
/* 2-bit code of an ASCII base, T=0 C=1 A=2 G=3, either case; other bytes 0. */
extern const uint8_t md_twobit_code[256];
/* Bases [start, end) of a packed array as uppercase ACGT (N runs and
 * masking are the caller's). */
void md_twobit_unpack(const uint8_t *packed, int64_t start, int64_t end, char *out);

#endif
