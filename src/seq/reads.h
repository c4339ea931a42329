/* Streaming reads: FASTA and FASTQ records, one at a time or in batches.
 *
 * Input is plain text, gzip or bgzip (any multi-member gzip), told apart by
 * content; "-" is stdin. Memory is constant in the file's size: the buffers
 * grow to the longest record seen and no further.
 *
 * Accepted text, record by record (a file may mix FASTA and FASTQ):
 * - A header line: '>' (FASTA) or '@' (FASTQ), then the name (the first word,
 *   ended by a space or tab), then optionally whitespace and a comment.
 *   An empty name, or a control byte in the header, is an error.
 * - FASTA: any number of sequence lines, up to the next line that starts with
 *   '>' or '@' or the end of the file. An empty sequence is a valid record.
 * - FASTQ: sequence lines up to a line that starts with '+' (its remainder is
 *   ignored), then the quality. When the sequence took at most one line (the
 *   standard 4-line form) the quality is exactly one line; when it was
 *   wrapped, quality lines are taken until they reach the sequence's length,
 *   as htslib's kseq does. Quality bytes must be '!'..'~'.
 * - Sequence bytes are kept as they are (case included; the tokenizer folds
 *   case and maps non-ACGT to N); spaces, tabs and '\r' inside sequence lines
 *   are dropped; any other byte outside '!'..'~' is an error. A '\r' before
 *   each '\n' (Windows line ends) is dropped everywhere.
 * - Blank lines between records are skipped. A missing final '\n' is fine.
 *
 * Errors: every failure prints exactly one md_error() line naming the file
 * ("stdin" for "-"), the record (1-based number and, once known, its name)
 * and the line, then the call returns -1; so does every later call, silently.
 * Detected: missing or unreadable file, a directory, binary junk or another
 * format (the first non-blank byte is not '>' or '@'; bzip2, xz, zstd and BAM
 * are named), FASTQ without its '+' line, quality length differing from the
 * sequence's, a record cut short by the end of the file, a truncated gzip
 * stream (zlib reports it only through gzerror() at the end, which is checked)
 * and a corrupt one (gzread() fails mid-file; the error is recorded and
 * reported once, never retried in a loop).
 *
 * An empty file (or one holding only blank lines) is not an error here: the
 * first md_reads_next() returns 0. Commands that need reads report "no reads"
 * themselves (md_reads_count() == 0 at the end).
 */
#ifndef MD_SEQ_READS_H
#define MD_SEQ_READS_H

#include <stddef.h>
#include <stdint.h>

typedef struct md_reads md_reads_t;

/* One record. All strings are NUL-terminated. */
typedef struct md_read {
    char *name;       /* non-empty, no whitespace */
    char *comment;    /* the header after the name and its whitespace; "" if none */
    char *seq;        /* len bytes as in the file (case kept, whitespace dropped) */
    char *qual;       /* len bytes for FASTQ; NULL for FASTA */
    int64_t len;
    int64_t index;    /* 0-based position of the record in the file */
} md_read_t;

/* Opens path ("-" for stdin). NULL after one error line (missing, a
 * directory, unreadable). Format problems show at the first md_reads_next(). */
md_reads_t *md_reads_open(const char *path);

/* Reads the next record into *rec, whose strings point into r's buffers and
 * stay valid until the next call on r or md_reads_close().
 * 1: a record; 0: the clean end of the input; -1: after one error line. */
int md_reads_next(md_reads_t *r, md_read_t *rec);

/* Sets the longest read accepted, in bases (default MD_READS_DEFAULT_MAX_LEN
 * of seq/limits.h, 268 Mbp). A longer sequence or quality is an error
 * reported as soon as the limit is passed, before more is stored; so are a
 * read name over MD_MAX_NAME_LEN (255) bytes and a header line over
 * MD_MAX_LINE_BYTES. */
void md_reads_set_max_len(md_reads_t *r, int64_t max_len);

/* Closes r; NULL is fine. Stdin is left open for the process. */
void md_reads_close(md_reads_t *r);

/* The path as given, and the name errors use ("stdin" for "-"). */
const char *md_reads_path(const md_reads_t *r);
/* Records and bases returned so far. */
int64_t md_reads_count(const md_reads_t *r);
int64_t md_reads_bases(const md_reads_t *r);
/* Bytes consumed from the file as stored (compressed for gzip): with the
 * file's size, a progress fraction. -1 when unknown (a pipe). */
int64_t md_reads_raw_offset(const md_reads_t *r);
/* Bytes currently allocated for r's buffers: bounded by a fixed input buffer
 * plus a small multiple of the longest record, whatever the file's size. */
size_t md_reads_buffer_bytes(const md_reads_t *r);

/* A batch of records with storage of its own, reused from call to call (its
 * memory grows to the largest batch and stays). Zero-initialise it or call
 * md_read_batch_init(); release with md_read_batch_free(). */
typedef struct md_read_batch {
    md_read_t *reads;   /* n records; strings point into the batch's storage */
    int64_t n;
    int64_t n_bases;    /* sum of reads[i].len */
    /* private */
    char *arena;
    size_t arena_cap, reads_cap, offs_cap;
    size_t *offs;
} md_read_batch_t;

void md_read_batch_init(md_read_batch_t *b);
void md_read_batch_free(md_read_batch_t *b);

/* Fills b with the next records: up to max_reads of them, stopping after the
 * read that brings the total to max_bases or beyond (so one read longer than
 * max_bases still makes a batch of its own). max_reads >= 1; max_bases <= 0
 * means no base limit. Returns b->n (> 0), 0 at the clean end, or -1 after
 * one error line (b's contents are then unspecified). */
int64_t md_reads_next_batch(md_reads_t *r, md_read_batch_t *b, int64_t max_reads, int64_t max_bases);

#endif
