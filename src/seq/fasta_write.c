#include "seq/fasta_write.h"

int md_fasta_write(FILE *fp, const char *name, const char *comment, const char *seq, int64_t len, int width)
{
    if (comment && *comment) fprintf(fp, ">%s %s\n", name, comment);
    else fprintf(fp, ">%s\n", name);
    if (width <= 0) width = len > 0 ? (int)(len < INT32_MAX ? len : INT32_MAX) : 1;
    for (int64_t i = 0; i < len; i += width) {
        int64_t n = len - i < width ? len - i : width;
        fwrite(seq + i, 1, (size_t)n, fp);
        putc('\n', fp);
    }
    return ferror(fp) ? -1 : 0;
}
