/* One genome API over every format: FASTA (plain, gzip, bgzip) and UCSC .2bit.
 *
 * md_genome_open() reads only what it needs to list the contigs (the .fai,
 * the 2bit index); md_genome_fetch() then reads a region straight from the
 * file. md_genome_load() brings every contig into memory, 2-bit packed with
 * N runs and soft-mask runs, about 1 byte per 4 bp: hg38 fits in ~0.8 GB.
 * The sampler and trainers work on a loaded genome only.
 *
 * Formats are told apart by content, not by name: the 2bit magic (either
 * byte order), gzip magic with or without the BGZF extra field, or text.
 * - bgzip or plain FASTA with its .fai (and .gzi for bgzip): htslib faidx.
 *   An index older than its file, or one we cannot read, is ignored with a
 *   warning and the file is read whole as if it had none.
 * - bgzip or plain FASTA without an index: streamed into memory at open
 *   (the loaded form then serves as the index), checking every record; the
 *   .fai (and .gzi) are written beside the file from that same pass when the
 *   folder is writable and the line layout allows random access. We index
 *   in our own pass rather than with fai_build3 because faidx's builder
 *   silently drops duplicate and empty records.
 * - plain gzip FASTA (which faidx refuses): streamed into memory at open.
 * - .2bit: our reader, versions 0 and 1, both byte orders.
 * Several files make one genome; a contig name seen twice is an error.
 *
 * FASTA bytes: ACGT in either case are bases; every other letter, '-', '*'
 * and '.' is N; lowercase is soft-masked; whitespace is skipped; digits,
 * other punctuation and binary bytes are an error naming file and line.
 *
 * Coordinates are 0-based, half-open, 64-bit throughout. Reading a loaded
 * genome (md_genome_tokens, md_genome_count_n, md_genome_contig) is
 * thread-safe; open, load, fetch and close are not.
 */
#ifndef MD_SEQ_GENOME_H
#define MD_SEQ_GENOME_H

#include <stdint.h>

/* A half-open interval [start, end) on a contig. */
typedef struct md_run {
    int64_t start, end;
} md_run_t;

/* Index of the first of n sorted, disjoint runs that ends after pos (n when
 * none does): where a scan of the runs overlapping [pos, ...) starts. */
int64_t md_runs_first_ending_after(const md_run_t *runs, int64_t n, int64_t pos);

/* The in-memory packing is UCSC 2bit's own: T=0 C=1 A=2 G=3, four bases a
 * byte, the first base in the two most significant bits. Loading a 2bit file
 * is thus a plain read. Positions inside an N run hold T (0) in packed. */
typedef struct md_contig {
    char *name;
    int64_t len;
    int file_index;            /* which of the opened files holds it */
    uint8_t *packed;           /* (len + 3) / 4 bytes once loaded, else NULL */
    md_run_t *n_runs;          /* sorted, disjoint, maximal; valid once loaded */
    int64_t n_n_runs;
    int64_t *n_cum;            /* n_n_runs + 1 prefix sums of N-run lengths, once loaded */
    md_run_t *mask_runs;       /* soft-masked (lowercase) runs, same rules */
    int64_t n_mask_runs;
} md_contig_t;

typedef struct md_genome md_genome_t;

/* Opens n_paths genome files as one genome. Returns NULL after one error
 * line naming the file and the problem (missing, empty, unknown format,
 * wrong magic, truncated, no sequences, a header with no sequence, a
 * duplicate contig name). */
md_genome_t *md_genome_open(const char *const *paths, int n_paths);
void md_genome_close(md_genome_t *g);

/* Brings every contig into memory (packed). Idempotent. 0, or -1 after one
 * error line (e.g. a truncated bgzip block discovered while reading, or a
 * .fai that does not match its FASTA). */
int md_genome_load(md_genome_t *g);

int md_genome_n_contigs(const md_genome_t *g);
const md_contig_t *md_genome_contig(const md_genome_t *g, int i);
/* Sum of contig lengths. */
int64_t md_genome_total_len(const md_genome_t *g);
/* Index of the contig called name, or -1. */
int md_genome_find(const md_genome_t *g, const char *name);
/* The path of file i as given to md_genome_open(). */
const char *md_genome_path(const md_genome_t *g, int file_index);

/* Writes the bases of contig[start, end) to out (end - start bytes, no NUL):
 * ACGTN, lowercase where soft-masked when keep_case is set, else uppercase.
 * Works on a loaded or an unloaded genome. 0, or -1 after one error line
 * (range outside the contig, I/O failure). */
int md_genome_fetch(md_genome_t *g, int contig, int64_t start, int64_t end, char *out, int keep_case);

/* Writes tokens (A=7 C=8 G=9 T=10 N=11, see tokenizer.h) of a loaded
 * genome's contig[start, end). Thread-safe; the range must be valid (it is
 * not checked). This is the sampler's hot path: a 4-tokens-per-byte table,
 * then the N runs found by binary search. */
void md_genome_tokens(const md_genome_t *g, int contig, int64_t start, int64_t end, uint8_t *out);

/* Number of N bases in contig[start, end) of a loaded genome: O(log runs). */
int64_t md_genome_count_n(const md_genome_t *g, int contig, int64_t start, int64_t end);

/* Parses "chr", "chr:start-end" (1-based, inclusive, commas allowed, as in
 * samtools) or "chr:start" / "chr:start-" (to the contig's end) into a
 * contig index and a 0-based half-open range. A contig name containing ':'
 * is matched whole first. 0, or -1 after one error line (unknown contig,
 * malformed, start < 1, end < start, start or end beyond the contig's end:
 * unlike samtools we do not clip, since a training region past the end is
 * a mistake worth hearing about). */
int md_genome_parse_region(const md_genome_t *g, const char *region, int *contig, int64_t *start, int64_t *end);

#endif
