/* UCSC .2bit reader and writer; see twobit.h for the layout. */
#include "seq/twobit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seq/genome.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

#define TWOBIT_MAGIC 0x1A412743u
#define TWOBIT_HEADER_BYTES 16
/* dna size, N block count, mask block count, reserved */
#define TWOBIT_RECORD_MIN_BYTES 16
/* Packed bases are read in pieces of this many bytes. */
#define TWOBIT_CHUNK (1 << 20)

const uint8_t md_twobit_code[256] = {
    ['T'] = 0, ['t'] = 0, ['C'] = 1, ['c'] = 1, ['A'] = 2, ['a'] = 2, ['G'] = 3, ['g'] = 3,
};

typedef struct tb_seq {
    char *name;
    uint64_t offset;         /* the record's first byte */
    int64_t len;             /* -1 until the record header has been read */
    uint32_t n_blocks, n_masks;
    uint64_t dna_offset;     /* first byte of the packed bases */
    int runs_read;           /* n_runs and mask_runs hold the record's blocks */
    md_run_t *n_runs, *mask_runs;
    int64_t n_n_runs, n_mask_runs;
} tb_seq_t;

struct md_twobit {
    char *path;
    FILE *fp;
    uint64_t file_size;
    int big_endian;
    int version;
    int n;
    tb_seq_t *seqs;
};

static uint32_t tb_u32(const md_twobit_t *tb, const uint8_t *p)
{
    if (tb->big_endian)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t tb_u64(const md_twobit_t *tb, const uint8_t *p)
{
    uint64_t a = tb_u32(tb, p), b = tb_u32(tb, p + 4);
    return tb->big_endian ? a << 32 | b : b << 32 | a;
}

/* Reads n bytes at off. Callers have checked the range against the file
 * size, so a short read means the file shrank or the disk failed. */
static int tb_read_at(md_twobit_t *tb, uint64_t off, void *buf, size_t n)
{
    if (fseeko(tb->fp, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, tb->fp) != n) {
        md_error("%s: read error at byte %llu: %s", tb->path, (unsigned long long)off,
                 ferror(tb->fp) ? strerror(errno) : "unexpected end of file");
        return -1;
    }
    return 0;
}

md_twobit_t *md_twobit_open(const char *path)
{
    md_twobit_t *tb = md_calloc(1, sizeof *tb);
    tb->path = md_strdup(path);
    struct stat st;
    uint8_t hdr[TWOBIT_HEADER_BYTES];
    uint64_t pos;
    if (!(tb->fp = fopen(path, "rb"))) {
        md_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(tb->fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        md_error("%s: not a regular file; a 2bit file needs random access", path);
        goto fail;
    }
    tb->file_size = (uint64_t)st.st_size;
    if (tb->file_size == 0) {
        md_error("%s: empty file", path);
        goto fail;
    }
    if (tb->file_size < TWOBIT_HEADER_BYTES) {
        md_error("%s: truncated 2bit file: %llu bytes, shorter than the 16-byte header", path,
                 (unsigned long long)tb->file_size);
        goto fail;
    }
    if (tb_read_at(tb, 0, hdr, sizeof hdr) < 0) goto fail;
    tb->big_endian = 0;
    if (tb_u32(tb, hdr) != TWOBIT_MAGIC) {
        tb->big_endian = 1;
        if (tb_u32(tb, hdr) != TWOBIT_MAGIC) {
            md_error("%s: not a 2bit file (wrong magic number)", path);
            goto fail;
        }
    }
    uint32_t version = tb_u32(tb, hdr + 4), count = tb_u32(tb, hdr + 8);
    if (version > 1) {
        md_error("%s: unsupported 2bit version %u (only 0 and 1 exist)", path, version);
        goto fail;
    }
    tb->version = (int)version;
    int off_bytes = version == 1 ? 8 : 4;
    /* Each index entry holds at least a name length, a 1-byte name and an offset. */
    uint64_t min_index = (uint64_t)count * (uint64_t)(2 + off_bytes);
    if (count > INT32_MAX || min_index > tb->file_size - TWOBIT_HEADER_BYTES) {
        md_error("%s: truncated or corrupt 2bit file: the header claims %u sequences, more than "
                 "its %llu bytes can index", path, count, (unsigned long long)tb->file_size);
        goto fail;
    }
    tb->n = (int)count;
    tb->seqs = md_calloc(count ? count : 1, sizeof *tb->seqs);
    /* the index is read in order, through the FILE's buffer */
    pos = TWOBIT_HEADER_BYTES;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t len_byte, off_buf[8];
        char name[256];
        if (pos + 1 > tb->file_size || fread(&len_byte, 1, 1, tb->fp) != 1) goto truncated_index;
        if (len_byte == 0) {
            md_error("%s: corrupt 2bit index: sequence %u has an empty name", path, i + 1);
            goto fail;
        }
        if (pos + 1 + len_byte + off_bytes > tb->file_size) goto truncated_index;
        if (fread(name, 1, len_byte, tb->fp) != len_byte || fread(off_buf, 1, off_bytes, tb->fp) != (size_t)off_bytes)
            goto truncated_index;
        name[len_byte] = 0;
        for (int k = 0; k < len_byte; k++) {
            unsigned char c = (unsigned char)name[k];
            if (c <= ' ' || c >= 0x7f) {
                md_error("%s: corrupt 2bit index: the name of sequence %u holds byte 0x%02x", path, i + 1, c);
                goto fail;
            }
        }
        tb->seqs[i].name = md_strdup(name);
        tb->seqs[i].offset = off_bytes == 8 ? tb_u64(tb, off_buf) : tb_u32(tb, off_buf);
        tb->seqs[i].len = -1;
        pos += 1 + len_byte + off_bytes;
    }
    for (uint32_t i = 0; i < count; i++) {
        const tb_seq_t *s = &tb->seqs[i];
        if (s->offset < pos) {
            md_error("%s: corrupt 2bit index: the record of '%s' is said to start at byte %llu, inside "
                     "the header or index", path, s->name, (unsigned long long)s->offset);
            goto fail;
        }
        if (s->offset > tb->file_size || tb->file_size - s->offset < TWOBIT_RECORD_MIN_BYTES) {
            md_error("%s: truncated 2bit file: the record of '%s' starts at byte %llu, but the file has "
                     "%llu bytes", path, s->name, (unsigned long long)s->offset, (unsigned long long)tb->file_size);
            goto fail;
        }
    }
    return tb;

truncated_index:
    md_error("%s: truncated 2bit file: the index ends past the end of the file (%llu bytes)", path,
             (unsigned long long)tb->file_size);
fail:
    md_twobit_close(tb);
    return NULL;
}

void md_twobit_close(md_twobit_t *tb)
{
    if (!tb) return;
    for (int i = 0; i < tb->n; i++) {
        free(tb->seqs[i].name);
        free(tb->seqs[i].n_runs);
        free(tb->seqs[i].mask_runs);
    }
    free(tb->seqs);
    if (tb->fp) fclose(tb->fp);
    free(tb->path);
    free(tb);
}

int md_twobit_n_seqs(const md_twobit_t *tb) { return tb->n; }
const char *md_twobit_name(const md_twobit_t *tb, int i) { return tb->seqs[i].name; }

int64_t md_twobit_length(md_twobit_t *tb, int i)
{
    tb_seq_t *s = &tb->seqs[i];
    if (s->len >= 0) return s->len;
    uint8_t b[8];
    uint64_t size = tb->file_size, at = s->offset;   /* at + 16 <= size, checked at open */
    if (tb_read_at(tb, at, b, 8) < 0) return -1;
    uint32_t len = tb_u32(tb, b), nb = tb_u32(tb, b + 4);
    at += 8;
    if ((uint64_t)nb * 8 + 4 > size - at) goto truncated;
    at += (uint64_t)nb * 8;
    if (tb_read_at(tb, at, b, 4) < 0) return -1;
    uint32_t nm = tb_u32(tb, b);
    at += 4;
    if ((uint64_t)nm * 8 + 4 > size - at) goto truncated;
    at += (uint64_t)nm * 8 + 4;
    if (((uint64_t)len + 3) / 4 > size - at) goto truncated;
    s->n_blocks = nb;
    s->n_masks = nm;
    s->dna_offset = at;
    s->len = len;
    return s->len;
truncated:
    md_error("%s: truncated 2bit file: the record of '%s' (at byte %llu) ends past the end of the file "
             "(%llu bytes)", tb->path, s->name, (unsigned long long)s->offset, (unsigned long long)size);
    return -1;
}

static int run_cmp(const void *a, const void *b)
{
    const md_run_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Turns a block list (starts, then sizes) into sorted, disjoint, maximal runs. */
static int tb_blocks_to_runs(md_twobit_t *tb, const tb_seq_t *s, const char *kind, const uint8_t *buf,
                             uint32_t n, md_run_t **runs_out, int64_t *n_out)
{
    md_run_t *runs = md_malloc((n ? n : 1) * sizeof *runs);
    int64_t m = 0;
    int sorted = 1;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t start = tb_u32(tb, buf + 4 * (uint64_t)k), size = tb_u32(tb, buf + 4 * ((uint64_t)n + k));
        if (start + size > (uint64_t)s->len) {
            md_error("%s: corrupt 2bit record of '%s': %s block %u [%llu, %llu) extends past the "
                     "sequence's end (%lld)", tb->path, s->name, kind, k + 1, (unsigned long long)start,
                     (unsigned long long)(start + size), (long long)s->len);
            free(runs);
            return -1;
        }
        if (size == 0) continue;
        if (m && (int64_t)start < runs[m - 1].start) sorted = 0;
        runs[m].start = (int64_t)start;
        runs[m].end = (int64_t)(start + size);
        m++;
    }
    if (!sorted) qsort(runs, (size_t)m, sizeof *runs, run_cmp);
    int64_t w = 0;
    for (int64_t k = 0; k < m; k++) {
        if (w && runs[k].start <= runs[w - 1].end) {
            if (runs[k].end > runs[w - 1].end) runs[w - 1].end = runs[k].end;
        } else {
            runs[w++] = runs[k];
        }
    }
    *runs_out = runs;
    *n_out = w;
    return 0;
}

static int tb_read_runs(md_twobit_t *tb, int i)
{
    tb_seq_t *s = &tb->seqs[i];
    if (md_twobit_length(tb, i) < 0) return -1;
    if (s->runs_read) return 0;
    /* sizes were checked against the file size in md_twobit_length */
    uint64_t nb_bytes = (uint64_t)s->n_blocks * 8, nm_bytes = (uint64_t)s->n_masks * 8;
    uint64_t max_bytes = nb_bytes > nm_bytes ? nb_bytes : nm_bytes;
    uint8_t *buf = md_malloc(max_bytes ? max_bytes : 1);
    int ret = -1;
    free(s->n_runs);
    free(s->mask_runs);
    s->n_runs = s->mask_runs = NULL;
    if (tb_read_at(tb, s->offset + 8, buf, nb_bytes) < 0) goto out;
    if (tb_blocks_to_runs(tb, s, "N", buf, s->n_blocks, &s->n_runs, &s->n_n_runs) < 0) goto out;
    if (tb_read_at(tb, s->offset + 12 + nb_bytes, buf, nm_bytes) < 0) goto out;
    if (tb_blocks_to_runs(tb, s, "mask", buf, s->n_masks, &s->mask_runs, &s->n_mask_runs) < 0) goto out;
    s->runs_read = 1;
    ret = 0;
out:
    free(buf);
    if (ret < 0) {
        free(s->n_runs);
        free(s->mask_runs);
        s->n_runs = s->mask_runs = NULL;
    }
    return ret;
}

void md_twobit_unpack(const uint8_t *packed, int64_t start, int64_t end, char *out)
{
    static const char base[4] = {'T', 'C', 'A', 'G'};
    int64_t p = start;
    for (; p < end && (p & 3); p++) *out++ = base[(packed[p >> 2] >> (6 - 2 * (p & 3))) & 3];
    for (; p + 4 <= end; p += 4) {
        uint8_t b = packed[p >> 2];
        out[0] = base[b >> 6];
        out[1] = base[(b >> 4) & 3];
        out[2] = base[(b >> 2) & 3];
        out[3] = base[b & 3];
        out += 4;
    }
    for (; p < end; p++) *out++ = base[(packed[p >> 2] >> (6 - 2 * (p & 3))) & 3];
}

int md_twobit_fetch(md_twobit_t *tb, int i, int64_t start, int64_t end, char *out, int keep_case)
{
    if (tb_read_runs(tb, i) < 0) return -1;
    tb_seq_t *s = &tb->seqs[i];
    if (start < 0 || end < start || end > s->len) {
        md_error("%s: range [%lld, %lld) lies outside '%s' (length %lld)", tb->path, (long long)start,
                 (long long)end, s->name, (long long)s->len);
        return -1;
    }
    if (start == end) return 0;
    uint8_t *buf = md_malloc(TWOBIT_CHUNK);
    for (int64_t p = start; p < end;) {
        /* bases [p, q) come from packed bytes [p/4, (q+3)/4) */
        int64_t q = (p & ~(int64_t)3) + (int64_t)TWOBIT_CHUNK * 4;
        if (q > end) q = end;
        int64_t b0 = p >> 2, b1 = (q + 3) >> 2;
        if (tb_read_at(tb, s->dna_offset + (uint64_t)b0, buf, (size_t)(b1 - b0)) < 0) {
            free(buf);
            return -1;
        }
        md_twobit_unpack(buf, p - 4 * b0, q - 4 * b0, out + (p - start));
        p = q;
    }
    free(buf);
    for (int64_t k = md_runs_first_ending_after(s->n_runs, s->n_n_runs, start); k < s->n_n_runs && s->n_runs[k].start < end; k++) {
        int64_t a = s->n_runs[k].start > start ? s->n_runs[k].start : start;
        int64_t b = s->n_runs[k].end < end ? s->n_runs[k].end : end;
        memset(out + (a - start), 'N', (size_t)(b - a));
    }
    if (keep_case) {
        for (int64_t k = md_runs_first_ending_after(s->mask_runs, s->n_mask_runs, start);
             k < s->n_mask_runs && s->mask_runs[k].start < end; k++) {
            int64_t a = s->mask_runs[k].start > start ? s->mask_runs[k].start : start;
            int64_t b = s->mask_runs[k].end < end ? s->mask_runs[k].end : end;
            for (int64_t x = a; x < b; x++) out[x - start] |= 0x20;   /* ACGTN -> acgtn */
        }
    }
    return 0;
}

/* Sets the 2-bit codes of [a, b) to T (0). */
static void packed_clear(uint8_t *packed, int64_t a, int64_t b)
{
    for (; a < b && (a & 3); a++) packed[a >> 2] &= (uint8_t)~(3u << (6 - 2 * (a & 3)));
    if (b - a >= 4) {
        memset(packed + (a >> 2), 0, (size_t)((b - a) >> 2));
        a += (b - a) & ~(int64_t)3;
    }
    for (; a < b; a++) packed[a >> 2] &= (uint8_t)~(3u << (6 - 2 * (a & 3)));
}

int md_twobit_load(md_twobit_t *tb, int i, uint8_t **packed, struct md_run **n_runs, int64_t *n_n_runs,
                   struct md_run **mask_runs, int64_t *n_mask_runs)
{
    if (tb_read_runs(tb, i) < 0) return -1;
    tb_seq_t *s = &tb->seqs[i];
    size_t n_bytes = (size_t)((s->len + 3) / 4);
    uint8_t *p = md_malloc(n_bytes ? n_bytes : 1);
    if (n_bytes && tb_read_at(tb, s->dna_offset, p, n_bytes) < 0) {
        free(p);
        return -1;
    }
    for (int64_t k = 0; k < s->n_n_runs; k++) packed_clear(p, s->n_runs[k].start, s->n_runs[k].end);
    /* the runs move to the caller; a later fetch re-reads them */
    *packed = p;
    *n_runs = s->n_runs;
    *n_n_runs = s->n_n_runs;
    *mask_runs = s->mask_runs;
    *n_mask_runs = s->n_mask_runs;
    s->n_runs = s->mask_runs = NULL;
    s->runs_read = 0;
    return 0;
}

/* ---- writer ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void write32(FILE *fp, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    fwrite(b, 1, 4, fp);
}

static int is_n_byte(unsigned char c)
{
    switch (c) {
    case 'A': case 'C': case 'G': case 'T': case 'a': case 'c': case 'g': case 't': return 0;
    }
    return 1;
}

static int is_lower_byte(unsigned char c) { return c >= 'a' && c <= 'z'; }

/* Runs of bytes where pred holds; fills starts/sizes when given, returns the count. */
static uint32_t seq_blocks(const char *seq, int64_t len, int (*pred)(unsigned char), uint32_t *starts, uint32_t *sizes)
{
    uint32_t n = 0;
    int64_t i = 0;
    while (i < len) {
        if (!pred((unsigned char)seq[i])) { i++; continue; }
        int64_t j = i + 1;
        while (j < len && pred((unsigned char)seq[j])) j++;
        if (starts) { starts[n] = (uint32_t)i; sizes[n] = (uint32_t)(j - i); }
        n++;
        i = j;
    }
    return n;
}

static void write_blocks(FILE *fp, const uint32_t *starts, const uint32_t *sizes, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) write32(fp, starts[k]);
    for (uint32_t k = 0; k < n; k++) write32(fp, sizes[k]);
}

static void write_packed(FILE *fp, const char *seq, int64_t len)
{
    uint8_t buf[1 << 14];
    size_t nb = 0;
    for (int64_t i = 0; i < len; i += 4) {
        uint8_t b = 0;
        for (int k = 0; k < 4; k++) {
            b <<= 2;
            /* N becomes T (0), as UCSC writes it; md_twobit_code maps non-bases to 0 */
            if (i + k < len) b |= md_twobit_code[(unsigned char)seq[i + k]];
        }
        buf[nb++] = b;
        if (nb == sizeof buf) { fwrite(buf, 1, nb, fp); nb = 0; }
    }
    fwrite(buf, 1, nb, fp);
}

int md_twobit_write(const char *path, int n, const char *const *names, const char *const *seqs,
                    const int64_t *lens)
{
    if (n < 0) {
        md_error("%s: cannot write a negative number of sequences (%d)", path, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        if (nl == 0 || nl > 255) {
            md_error("%s: sequence %d: a 2bit name holds 1 to 255 bytes, '%s' has %zu", path, i + 1, names[i], nl);
            return -1;
        }
        for (size_t k = 0; k < nl; k++) {
            unsigned char c = (unsigned char)names[i][k];
            if (c <= ' ' || c >= 0x7f) {
                md_error("%s: sequence name '%s' holds whitespace or a control byte, which 2bit cannot store", path, names[i]);
                return -1;
            }
        }
        if (lens[i] < 0 || lens[i] > (int64_t)UINT32_MAX) {
            md_error("%s: sequence '%s' has %lld bases; a 2bit sequence holds fewer than 2^32", path,
                     names[i], (long long)lens[i]);
            return -1;
        }
    }
    uint32_t *n_nb = md_malloc((n ? n : 1) * sizeof *n_nb), *n_nm = md_malloc((n ? n : 1) * sizeof *n_nm);
    for (int i = 0; i < n; i++) {
        n_nb[i] = seq_blocks(seqs[i], lens[i], is_n_byte, NULL, NULL);
        n_nm[i] = seq_blocks(seqs[i], lens[i], is_lower_byte, NULL, NULL);
    }
    /* Version 0 unless a record starts beyond 4 GiB. */
    int version = 0;
    for (;;) {
        uint64_t off = TWOBIT_HEADER_BYTES, max_start = 0;
        for (int i = 0; i < n; i++) off += 1 + strlen(names[i]) + (version ? 8 : 4);
        for (int i = 0; i < n; i++) {
            max_start = off;
            off += TWOBIT_RECORD_MIN_BYTES + 8 * ((uint64_t)n_nb[i] + n_nm[i]) + ((uint64_t)lens[i] + 3) / 4;
        }
        if (version == 1 || max_start <= UINT32_MAX) break;
        version = 1;
    }
    md_outfile_t *o = md_outfile_open(path);
    if (!o) { free(n_nb); free(n_nm); return -1; }
    FILE *fp = o->fp;
    write32(fp, TWOBIT_MAGIC);
    write32(fp, (uint32_t)version);
    write32(fp, (uint32_t)n);
    write32(fp, 0);
    uint64_t off = TWOBIT_HEADER_BYTES;
    for (int i = 0; i < n; i++) off += 1 + strlen(names[i]) + (version ? 8 : 4);
    for (int i = 0; i < n; i++) {
        uint8_t nl = (uint8_t)strlen(names[i]);
        fputc(nl, fp);
        fwrite(names[i], 1, nl, fp);
        if (version) { write32(fp, (uint32_t)off); write32(fp, (uint32_t)(off >> 32)); }
        else write32(fp, (uint32_t)off);
        off += TWOBIT_RECORD_MIN_BYTES + 8 * ((uint64_t)n_nb[i] + n_nm[i]) + ((uint64_t)lens[i] + 3) / 4;
    }
    for (int i = 0; i < n; i++) {
        uint32_t most = n_nb[i] > n_nm[i] ? n_nb[i] : n_nm[i];
        uint32_t *starts = md_malloc((most ? most : 1) * sizeof *starts), *sizes = md_malloc((most ? most : 1) * sizeof *sizes);
        write32(fp, (uint32_t)lens[i]);
        write32(fp, n_nb[i]);
        seq_blocks(seqs[i], lens[i], is_n_byte, starts, sizes);
        write_blocks(fp, starts, sizes, n_nb[i]);
        write32(fp, n_nm[i]);
        seq_blocks(seqs[i], lens[i], is_lower_byte, starts, sizes);
        write_blocks(fp, starts, sizes, n_nm[i]);
        write32(fp, 0);
        free(starts);
        free(sizes);
        write_packed(fp, seqs[i], lens[i]);
    }
    free(n_nb);
    free(n_nm);
    return md_outfile_commit(o);
}
