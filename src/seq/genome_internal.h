/* Shared between genome.c (the facade), genome_fasta.c (streaming FASTA
 * into packed contigs, and the .fai it can write) and genome_index.c (the
 * .fai and .gzi checked before htslib reads them). Not a public API. */
#ifndef MD_SEQ_GENOME_INTERNAL_H
#define MD_SEQ_GENOME_INTERNAL_H

#include <htslib/bgzf.h>
#include <stdint.h>
#include <zlib.h>

#include "seq/genome.h"

/* How a FASTA file's bytes are compressed, as told by its first bytes. */
enum { MD_FASTA_PLAIN = 0, MD_FASTA_GZIP = 1, MD_FASTA_BGZF = 2 };

/* What faidx needs per record, gathered while streaming. */
typedef struct md_fai_rec {
    uint64_t seq_offset;     /* uncompressed offset of the first base */
    int64_t line_bases;      /* bases on a full line */
    int64_t line_width;      /* bytes on a full line, end of line included */
} md_fai_rec_t;

/* A FASTA file streamed whole into packed contigs. */
typedef struct md_fasta_scan {
    md_contig_t *contigs;    /* loaded, n_cum still NULL; file_index unset */
    md_fai_rec_t *fai;       /* parallel to contigs */
    int n;
    int indexable;           /* every record has the regular line layout faidx needs */
    int compression;
    BGZF *bgzf;              /* kept open until the .gzi is written (MD_FASTA_BGZF, PLAIN) */
    gzFile gz;               /* MD_FASTA_GZIP */
} md_fasta_scan_t;

/* Streams path (compression as detected) into s. Duplicate names within
 * the file are an error. 0, or -1 after one error line naming the file. */
int md_fasta_scan(const char *path, int compression, md_fasta_scan_t *s);

/* Writes path.fai (and path.gzi for bgzip) from a finished scan, each
 * atomically. A folder we cannot write to is not an error: returns 1 then,
 * after an info line; 0 when written. Never prints an error line. */
int md_fasta_write_index(md_fasta_scan_t *s, const char *path);

/* Frees everything the scan holds except contigs whose ownership was taken
 * (the caller sets s->n = 0 after moving them). */
void md_fasta_scan_free(md_fasta_scan_t *s);

/* Checks the .gzi at gzi_path against the bgzip file bgz_path (file_size
 * bytes): every entry must be a block's offset with the uncompressed
 * offset the blocks before it add up to, and every block with data but the
 * first must be listed (the end-of-file block may or may not be).
 * *total_bytes is the file's uncompressed size. 0, or -1 with the reason
 * in why (no message printed). */
int md_gzi_check(const char *gzi_path, const char *bgz_path, uint64_t file_size, uint64_t *total_bytes, char *why,
                 size_t why_n);

/* Names, 64-bit lengths and line layouts from the .fai at fai_path, each
 * record checked against the file's size (max_bytes, uncompressed) so that
 * no length it claims is believed beyond what the file can hold, and
 * against the limits of seq/limits.h. *out and *recs_out are n_out
 * contigs (names set, nothing loaded) and their layouts, the caller's to
 * free. 0, or -1 with the reason in why (no message printed). */
int md_fai_read(const char *fai_path, uint64_t max_bytes, md_contig_t **out, md_fai_rec_t **recs_out, int *n_out,
                char *why, size_t why_n);

/* Frees the heap parts of a contig. */
void md_contig_free(md_contig_t *c);

#endif
