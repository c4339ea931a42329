/* libFuzzer target: reads through a valid gzip stream (see fuzz_reads.c).
 * Its seeds are corpus/reads, as plain text. */
#define FUZZ_READS_GZIP 1
#include "fuzz_reads.c"
