/* A FASTA's .fai and .gzi checked before htslib reads them: a damaged or
 * stale index must cost a warning and a full read, never a crash or wrong
 * bases (see genome_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <htslib/khash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seq/genome_internal.h"
#include "seq/limits.h"
#include "util/xalloc.h"

KHASH_SET_INIT_STR(fai_names)

/* Bytes a BGZF block holds at most, uncompressed. */
#define BGZF_MAX_BLOCK 65536

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* The BGZF block of the file fd at byte c (file_size bytes in all): its
 * size and its uncompressed size, from its header and its last four bytes
 * (two small reads: the data is not read). 0, or -1 when no well-formed
 * block starts there (htslib's reader wants the BC subfield first, at
 * byte 12). */
static int bgzf_block_at(int fd, uint64_t c, uint64_t file_size, uint64_t *bsize, uint32_t *isize)
{
    uint8_t h[18], t[4];
    if (file_size - c < 28 || pread(fd, h, 18, (off_t)c) != 18 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 ||
        !(h[3] & 4) || h[12] != 'B' || h[13] != 'C' || h[14] != 2 || h[15] != 0)
        return -1;
    *bsize = (uint64_t)(h[16] | h[17] << 8) + 1;
    if (*bsize < 28 || *bsize > file_size - c || pread(fd, t, 4, (off_t)(c + *bsize - 4)) != 4 ||
        (*isize = le32(t)) > BGZF_MAX_BLOCK)
        return -1;
    return 0;
}

/* md_gzi_check (genome_internal.h): htslib allocates from the entry
 * count, and its seek asserts (aborting the program) where an entry is not
 * the start of a block or a block is missing, hence every check here. */
int md_gzi_check(const char *gzi_path, const char *bgz_path, uint64_t file_size, uint64_t *total_bytes, char *why,
                 size_t why_n)
{
    FILE *fp = fopen(gzi_path, "rb");
    int bgz = open(bgz_path, O_RDONLY);
    struct stat st;
    if (!fp || bgz < 0 || fstat(fileno(fp), &st) != 0) {
        snprintf(why, why_n, "%s", strerror(errno));
        if (fp) fclose(fp);
        if (bgz >= 0) close(bgz);
        return -1;
    }
    uint8_t b[16];
    uint64_t n = 0, i = 0, c = 0, u = 0;
    int ret = -1;
    if (fread(b, 1, 8, fp) != 8 || (n = le64(b)) > ((uint64_t)st.st_size - 8) / 16 ||
        (uint64_t)st.st_size != 8 + 16 * n) {
        snprintf(why, why_n, "its .gzi's size does not match its entry count");
        goto out;
    }
    uint64_t ec = 0, eu = 0;   /* entry i, read ahead */
    if (n > 0 && fread(b, 1, 16, fp) == 16) ec = le64(b), eu = le64(b + 8);
    for (uint64_t k = 0; c < file_size; k++) {
        uint64_t bsize;
        uint32_t isize;
        if (bgzf_block_at(bgz, c, file_size, &bsize, &isize) < 0) {
            snprintf(why, why_n, "no bgzip block starts at byte %llu of the file", (unsigned long long)c);
            goto out;
        }
        int listed = k > 0 && i < n && ec == c;
        if (k > 0 && i < n && ec < c) break;   /* an entry between blocks: reported below */
        if (listed && eu != u) {
            snprintf(why, why_n, "its .gzi entry %llu gives the block at byte %llu the offset %llu, not %llu",
                     (unsigned long long)i + 1, (unsigned long long)c, (unsigned long long)eu,
                     (unsigned long long)u);
            goto out;
        }
        if (k > 0 && !listed && isize > 0) {
            snprintf(why, why_n, "its .gzi does not list the block at byte %llu", (unsigned long long)c);
            goto out;
        }
        if (listed && ++i < n) {
            if (fread(b, 1, 16, fp) != 16) {
                snprintf(why, why_n, "its .gzi cannot be read");
                goto out;
            }
            ec = le64(b), eu = le64(b + 8);
        }
        c += bsize, u += isize;
    }
    if (i < n) {
        snprintf(why, why_n, "its .gzi entry %llu (byte %llu) is not where a bgzip block starts",
                 (unsigned long long)i + 1, (unsigned long long)ec);
        goto out;
    }
    *total_bytes = u;
    ret = 0;
out:
    fclose(fp);
    close(bgz);
    return ret;
}

/* Whether a .fai record's bases lie within max_bytes (uncompressed) of file. */
static int fai_rec_fits(int64_t len, uint64_t off, uint64_t lb, uint64_t lw, uint64_t max_bytes)
{
    uint64_t last = (uint64_t)len - 1, end;
    if (__builtin_mul_overflow(last / lb, lw, &end) || __builtin_add_overflow(end, last % lb + 1, &end) ||
        __builtin_add_overflow(end, off, &end))
        return 0;
    return end <= max_bytes;
}

/* md_fai_read (genome_internal.h): faidx_seq_len is int in htslib 1.16,
 * which has no 64-bit length getter, hence our own reader. */
int md_fai_read(const char *fai_path, uint64_t max_bytes, md_contig_t **out, md_fai_rec_t **recs_out, int *n_out,
                char *why, size_t why_n)
{
    FILE *fp = fopen(fai_path, "r");
    if (!fp) {
        snprintf(why, why_n, "%s", strerror(errno));
        return -1;
    }
    md_contig_t *cs = NULL;
    md_fai_rec_t *recs = NULL;
    size_t cap = 0, recs_cap = 0;
    int n = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    const char *reason = NULL;
    why[0] = 0;
    khash_t(fai_names) *seen = kh_init(fai_names);
    while ((len = getline(&line, &line_cap, fp)) > 0) {
        char *tab = strchr(line, '\t');
        if (!tab || tab == line) { reason = "a line without a name and a tab"; break; }
        if (tab - line > MD_MAX_NAME_LEN) { reason = "a name longer than 255 bytes"; break; }
        *tab = 0;
        char *end;
        errno = 0;
        long long v = strtoll(tab + 1, &end, 10);
        if (end == tab + 1 || *end != '\t' || errno || v <= 0) { reason = "a bad or zero length"; break; }
        unsigned long long off, lb, lw;
        if (sscanf(end + 1, "%llu %llu %llu", &off, &lb, &lw) != 3 || lb == 0 || lw <= lb || lw > UINT32_MAX) {
            reason = "bad offset or line sizes";
            break;
        }
        if (v > MD_MAX_CONTIG_LEN) {
            snprintf(why, why_n, "contig '%.100s' of %lld bp, above the limit of %lld for one contig", line, v,
                     (long long)MD_MAX_CONTIG_LEN);
            break;
        }
        if (!fai_rec_fits(v, off, lb, lw, max_bytes)) {
            snprintf(why, why_n, "contig '%.100s' of %lld bp at byte %llu, past the end of the file", line, v, off);
            break;
        }
        MD_GROW(cs, cap, (size_t)n + 1);
        memset(&cs[n], 0, sizeof cs[n]);
        cs[n].name = md_strdup(line);
        cs[n].len = v;
        MD_GROW(recs, recs_cap, (size_t)n + 1);
        recs[n] = (md_fai_rec_t){off, (int64_t)lb, (int64_t)lw};
        int absent;
        kh_put(fai_names, seen, cs[n].name, &absent);
        n++;
        if (!absent) { reason = "a name listed twice"; break; }
    }
    if (!reason && !why[0] && ferror(fp)) reason = strerror(errno);
    if (!reason && !why[0] && n == 0) reason = "no records";
    if (reason) snprintf(why, why_n, "%s", reason);
    kh_destroy(fai_names, seen);
    free(line);
    fclose(fp);
    if (why[0]) {
        for (int i = 0; i < n; i++) free(cs[i].name);
        free(cs);
        free(recs);
        return -1;
    }
    *out = cs;
    *recs_out = recs;
    *n_out = n;
    return 0;
}
