/* Writing FASTA records, wrapped at a fixed width like samtools faidx. */
#ifndef MD_SEQ_FASTA_WRITE_H
#define MD_SEQ_FASTA_WRITE_H

#include <stdint.h>
#include <stdio.h>

/* Writes ">name[ comment]\n" then seq in lines of width (0 = one line).
 * Returns 0, or -1 when the stream reports an error (the caller names the file). */
int md_fasta_write(FILE *fp, const char *name, const char *comment, const char *seq, int64_t len, int width);

#endif
