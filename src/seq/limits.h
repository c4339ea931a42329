/* Size limits on untrusted sequence input, shared by the parsers of
 * src/seq. A value beyond one is refused with one error line naming the
 * file, record and limit before anything is allocated for it, so that a
 * corrupt or hostile file (a header claiming a huge contig, a gzip bomb)
 * cannot make a command allocate blindly. */
#ifndef MD_SEQ_LIMITS_H
#define MD_SEQ_LIMITS_H

#include <stdint.h>

/* Contig, read and BED chromosome names: 2bit's own limit (a one-byte
 * length), and above SAM's 254 for read names. */
#define MD_MAX_NAME_LEN 255

/* One contig: 2^33 bases (8.6 Gbp), above every assembled chromosome
 * (the largest known are a few Gbp). 2bit cannot hold more than 2^32 - 1. */
#define MD_MAX_CONTIG_LEN ((int64_t)1 << 33)

/* One read, by default: 2^28 bases (268 Mbp), some 60 times the longest
 * nanopore reads; md_reads_set_max_len() changes it. */
#define MD_READS_DEFAULT_MAX_LEN ((int64_t)1 << 28)

/* A header line (name and comment) of a FASTA/FASTQ record, or one BED
 * line: longer ones mean the file is not what it claims to be. */
#define MD_MAX_LINE_BYTES ((int64_t)1 << 20)

#endif
