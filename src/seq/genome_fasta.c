/* Streaming a FASTA file (plain, gzip, bgzip) into packed contigs, checking
 * every record, and gathering the line layout that a .fai needs. */
#include <errno.h>
#include <htslib/khash.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seq/genome_internal.h"
#include "seq/limits.h"
#include "seq/twobit.h"
#include "util/log.h"
#include "util/xalloc.h"

KHASH_SET_INIT_STR(fasta_names)

/* Byte classes of sequence lines: the low two bits are the 2bit code. */
enum { C_N = 4, C_LOWER = 8, C_SKIP = 16, C_BAD = 32 };
static uint8_t seq_class[256];
static pthread_once_t seq_class_once = PTHREAD_ONCE_INIT;

static void seq_class_init(void)
{
    for (int c = 0; c < 256; c++) seq_class[c] = C_BAD;
    for (int c = 'A'; c <= 'Z'; c++) seq_class[c] = C_N;
    for (int c = 'a'; c <= 'z'; c++) seq_class[c] = C_N | C_LOWER;
    static const char bases[] = "ACGT";
    for (int k = 0; k < 4; k++) {
        seq_class[(unsigned char)bases[k]] = md_twobit_code[(unsigned char)bases[k]];
        seq_class[(unsigned char)bases[k] + 32] = md_twobit_code[(unsigned char)bases[k]] | C_LOWER;
    }
    seq_class['-'] = seq_class['*'] = seq_class['.'] = C_N;
    seq_class[' '] = seq_class['\t'] = seq_class['\r'] = seq_class['\v'] = seq_class['\f'] = C_SKIP;
}

#define READ_BUF_BYTES (1 << 20)

typedef struct scan_state {
    const char *path;
    md_fasta_scan_t *s;
    size_t contigs_cap;
    khash_t(fasta_names) *names;

    /* the record being read */
    int in_record;
    md_contig_t cur;
    md_fai_rec_t cur_fai;
    size_t packed_cap, n_cap, mask_cap;
    unsigned bits;               /* the last few 2-bit codes, newest lowest */
    int in_n, in_mask;
    int64_t n_start, mask_start;
    int64_t header_line;
    int64_t record_lines;
    int short_seen, blank_seen, bad_layout;

    /* the line being read */
    int at_line_start, in_header;
    char *hdr;
    size_t hdr_len, hdr_cap;
    int64_t line_bytes, line_ws;
    unsigned char last_byte;
    int64_t line_no;             /* 1-based */
    uint64_t offset;             /* uncompressed bytes before the current buffer */
} scan_state_t;

static void push_run(md_run_t **runs, int64_t *n, size_t *cap, int64_t start, int64_t end)
{
    MD_GROW(*runs, *cap, (size_t)*n + 1);
    (*runs)[*n].start = start;
    (*runs)[*n].end = end;
    (*n)++;
}

static int seq_segment(scan_state_t *st, const uint8_t *p, size_t n)
{
    md_contig_t *c = &st->cur;
    MD_GROW(c->packed, st->packed_cap, (size_t)((c->len + (int64_t)n) / 4 + 1));
    uint8_t *packed = c->packed;
    int64_t len = c->len, ws = 0;
    unsigned bits = st->bits;
    int in_n = st->in_n, in_mask = st->in_mask;
    for (size_t i = 0; i < n; i++) {
        uint8_t k = seq_class[p[i]];
        if (k >= C_SKIP) {
            if (k & C_BAD) {
                c->len = len;
                if (p[i] < 0x20 || p[i] >= 0x7f)
                    md_error("%s: line %lld: binary byte 0x%02x in the sequence of '%s': not a FASTA file?",
                             st->path, (long long)st->line_no, p[i], c->name);
                else
                    md_error("%s: line %lld: unexpected character '%c' in the sequence of '%s'", st->path,
                             (long long)st->line_no, p[i], c->name);
                return -1;
            }
            ws++;
            continue;
        }
        bits = bits << 2 | (k & 3u);
        if ((len & 3) == 3) packed[len >> 2] = (uint8_t)bits;
        int is_n = (k & C_N) != 0, is_lower = (k & C_LOWER) != 0;
        if (is_n != in_n) {
            if (is_n) st->n_start = len;
            else push_run(&c->n_runs, &c->n_n_runs, &st->n_cap, st->n_start, len);
            in_n = is_n;
        }
        if (is_lower != in_mask) {
            if (is_lower) st->mask_start = len;
            else push_run(&c->mask_runs, &c->n_mask_runs, &st->mask_cap, st->mask_start, len);
            in_mask = is_lower;
        }
        len++;
    }
    c->len = len;
    if (len > MD_MAX_CONTIG_LEN) {
        md_error("%s: line %lld: contig '%s' is longer than %lld bp, the limit for one contig", st->path,
                 (long long)st->line_no, c->name, (long long)MD_MAX_CONTIG_LEN);
        return -1;
    }
    st->bits = bits;
    st->in_n = in_n;
    st->in_mask = in_mask;
    st->line_bytes += (int64_t)n;
    st->line_ws += ws;
    if (n) st->last_byte = p[n - 1];
    return 0;
}

/* faidx computes positions as offset + pos / bases * width + pos % bases, so
 * every line but a record's last must hold the same bases and bytes, with
 * no whitespace inside a line and no blank line before more sequence. */
static void seq_line_end(scan_state_t *st)
{
    int crlf = st->line_bytes > 0 && st->last_byte == '\r';
    int64_t inner_ws = st->line_ws - crlf;
    int64_t bases = st->line_bytes - st->line_ws;
    int64_t width = st->line_bytes + 1;   /* the '\n', or the end of file, as faidx counts it */
    if (inner_ws) st->bad_layout = 1;
    if (bases == 0) {
        st->blank_seen = 1;
    } else {
        if (st->blank_seen || st->short_seen) st->bad_layout = 1;
        if (st->record_lines == 0) {
            st->cur_fai.line_bases = bases;
            st->cur_fai.line_width = width;
            if (width > UINT32_MAX) st->bad_layout = 1;   /* .fai widths are 32-bit */
        } else if (width > st->cur_fai.line_width || bases > st->cur_fai.line_bases ||
                   (width == st->cur_fai.line_width && bases != st->cur_fai.line_bases)) {
            st->bad_layout = 1;
        } else if (width < st->cur_fai.line_width) {
            st->short_seen = 1;
        }
        st->record_lines++;
    }
    st->line_bytes = st->line_ws = 0;
    st->last_byte = 0;
}

static int record_end(scan_state_t *st)
{
    md_contig_t *c = &st->cur;
    md_fasta_scan_t *s = st->s;
    if (c->len == 0) {
        md_error("%s: record '%s' (line %lld) has no sequence", st->path, c->name, (long long)st->header_line);
        return -1;
    }
    if (c->len & 3) c->packed[c->len >> 2] = (uint8_t)(st->bits << (2 * (4 - (c->len & 3))));
    if (st->in_n) push_run(&c->n_runs, &c->n_n_runs, &st->n_cap, st->n_start, c->len);
    if (st->in_mask) push_run(&c->mask_runs, &c->n_mask_runs, &st->mask_cap, st->mask_start, c->len);
    c->packed = md_realloc(c->packed, (size_t)((c->len + 3) / 4));
    c->n_runs = md_realloc(c->n_runs, (size_t)(c->n_n_runs ? c->n_n_runs : 1) * sizeof *c->n_runs);
    c->mask_runs = md_realloc(c->mask_runs, (size_t)(c->n_mask_runs ? c->n_mask_runs : 1) * sizeof *c->mask_runs);
    if (st->bad_layout) s->indexable = 0;
    MD_GROW(s->contigs, st->contigs_cap, (size_t)s->n + 1);
    s->fai = md_realloc(s->fai, st->contigs_cap * sizeof *s->fai);
    s->contigs[s->n] = *c;
    s->fai[s->n] = st->cur_fai;
    s->n++;
    memset(c, 0, sizeof *c);
    st->in_record = 0;
    return 0;
}

static int header_end(scan_state_t *st, uint64_t seq_offset)
{
    char *h = st->hdr;
    size_t n = st->hdr_len;
    for (size_t k = 0; k < n; k++) {
        unsigned char b = (unsigned char)h[k];
        if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f) {
            md_error("%s: line %lld: binary byte 0x%02x in a header: not a FASTA file?", st->path,
                     (long long)st->line_no, b);
            return -1;
        }
    }
    size_t a = 0;
    while (a < n && (h[a] == ' ' || h[a] == '\t')) a++;
    size_t b = a;
    while (b < n && h[b] != ' ' && h[b] != '\t' && h[b] != '\r') b++;
    if (b == a) {
        md_error("%s: line %lld: a '>' header without a name", st->path, (long long)st->line_no);
        return -1;
    }
    if (b - a > MD_MAX_NAME_LEN) {
        md_error("%s: line %lld: a contig name of %zu bytes (names hold at most %d)", st->path,
                 (long long)st->line_no, b - a, MD_MAX_NAME_LEN);
        return -1;
    }
    md_contig_t *c = &st->cur;
    memset(c, 0, sizeof *c);
    c->name = md_malloc(b - a + 1);
    memcpy(c->name, h + a, b - a);
    c->name[b - a] = 0;
    int absent;
    kh_put(fasta_names, st->names, c->name, &absent);
    if (!absent) {
        md_error("%s: line %lld: contig name '%s' appears twice", st->path, (long long)st->line_no, c->name);
        free(c->name);
        c->name = NULL;
        return -1;
    }
    st->in_record = 1;
    st->packed_cap = st->n_cap = st->mask_cap = 0;
    st->bits = 0;
    st->in_n = st->in_mask = 0;
    st->header_line = st->line_no;
    st->record_lines = 0;
    st->short_seen = st->blank_seen = st->bad_layout = 0;
    st->line_bytes = st->line_ws = 0;
    st->cur_fai.seq_offset = seq_offset;
    st->cur_fai.line_bases = st->cur_fai.line_width = 0;
    return 0;
}

static int scan_buffer(scan_state_t *st, const uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (st->at_line_start) {
            uint8_t c = buf[i];
            if (c == '>') {
                if (st->in_record && record_end(st) < 0) return -1;
                st->in_header = 1;
                st->at_line_start = 0;
                st->hdr_len = 0;
                i++;
                continue;
            }
            if (!st->in_record) {
                /* before the first header only blank lines may come */
                if (c == '\n') { st->line_no++; i++; continue; }
                if (c == '\r' || c == ' ' || c == '\t') { i++; continue; }
                if (c < 0x20 || c >= 0x7f)
                    md_error("%s: not a FASTA, gzip or 2bit file (binary byte 0x%02x on line %lld)", st->path, c,
                             (long long)st->line_no);
                else
                    md_error("%s: line %lld: sequence or text before the first '>' header: not a FASTA file?",
                             st->path, (long long)st->line_no);
                return -1;
            }
            st->at_line_start = 0;
        }
        const uint8_t *nl = memchr(buf + i, '\n', n - i);
        size_t j = nl ? (size_t)(nl - buf) : n;
        if (st->in_header) {
            if (st->hdr_len + (j - i) > MD_MAX_LINE_BYTES) {
                md_error("%s: line %lld: a header line longer than %lld bytes: not a FASTA file?", st->path,
                         (long long)st->line_no, (long long)MD_MAX_LINE_BYTES);
                return -1;
            }
            MD_GROW(st->hdr, st->hdr_cap, st->hdr_len + (j - i) + 1);
            memcpy(st->hdr + st->hdr_len, buf + i, j - i);
            st->hdr_len += j - i;
            if (nl) {
                if (header_end(st, st->offset + j + 1) < 0) return -1;
                st->in_header = 0;
                st->at_line_start = 1;
                st->line_no++;
            }
        } else {
            if (seq_segment(st, buf + i, j - i) < 0) return -1;
            if (nl) {
                seq_line_end(st);
                st->at_line_start = 1;
                st->line_no++;
            }
        }
        i = nl ? j + 1 : n;
    }
    return 0;
}

/* Reads up to n bytes; 0 at the end, -1 after one error line. */
static int64_t scan_read(md_fasta_scan_t *s, const char *path, void *buf, size_t n)
{
    if (s->compression == MD_FASTA_GZIP) {
        int r = gzread(s->gz, buf, (unsigned)n);
        int err;
        const char *msg = gzerror(s->gz, &err);
        if (r < 0 || (err != Z_OK && err != Z_BUF_ERROR)) {
            /* zlib's message starts with the path, which ours already names */
            size_t pl = strlen(path);
            if (msg && !strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
            md_error("%s: corrupt gzip data: %s", path, err == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0 && err == Z_BUF_ERROR) {
            md_error("%s: truncated gzip file (it ends inside a compressed stream)", path);
            return -1;
        }
        return r;
    }
    ssize_t r = bgzf_read(s->bgzf, buf, n);
    if (r < 0) {
        if (s->compression == MD_FASTA_BGZF)
            md_error("%s: truncated or corrupt bgzip file (a block cannot be read)", path);
        else
            md_error("%s: read error: %s", path, strerror(errno));
        return -1;
    }
    return r;
}

int md_fasta_scan(const char *path, int compression, md_fasta_scan_t *s)
{
    pthread_once(&seq_class_once, seq_class_init);
    memset(s, 0, sizeof *s);
    s->compression = compression;
    s->indexable = compression != MD_FASTA_GZIP;
    scan_state_t st;
    memset(&st, 0, sizeof st);
    st.path = path;
    st.s = s;
    st.names = kh_init(fasta_names);
    st.at_line_start = 1;
    st.line_no = 1;
    uint8_t *buf = NULL;
    int ret = -1;

    if (compression == MD_FASTA_GZIP) {
        if (!(s->gz = gzopen(path, "rb"))) {
            md_error("%s: cannot open: %s", path, strerror(errno));
            goto out;
        }
        gzbuffer(s->gz, 1 << 17);
    } else {
        if (!(s->bgzf = bgzf_open(path, "r"))) {
            md_error("%s: cannot open: %s", path, strerror(errno));
            goto out;
        }
        if (compression == MD_FASTA_BGZF) {
            /* a bgzip file cut at a block boundary reads cleanly; only the
             * missing end-of-file block tells */
            if (bgzf_check_EOF(s->bgzf) == 0) {
                md_error("%s: truncated bgzip file (the end-of-file block is missing)", path);
                goto out;
            }
            if (bgzf_index_build_init(s->bgzf) != 0) {
                md_error("%s: cannot start the bgzip index", path);
                goto out;
            }
        }
    }
    buf = md_malloc(READ_BUF_BYTES);
    for (;;) {
        int64_t n = scan_read(s, path, buf, READ_BUF_BYTES);
        if (n < 0) goto out;
        if (n == 0) break;
        if (scan_buffer(&st, buf, (size_t)n) < 0) goto out;
        st.offset += (uint64_t)n;
    }
    if (st.in_header) {
        /* a last header line without its newline */
        if (header_end(&st, st.offset) < 0) goto out;
        st.in_header = 0;
    } else if (!st.at_line_start && st.in_record) {
        seq_line_end(&st);
    }
    if (st.in_record && record_end(&st) < 0) goto out;
    if (s->n == 0) {
        md_error("%s: no sequences (no '>' header)", path);
        goto out;
    }
    ret = 0;
out:
    free(buf);
    free(st.hdr);
    md_contig_free(&st.cur);   /* the record being read when an error struck */
    kh_destroy(fasta_names, st.names);
    if (ret < 0) md_fasta_scan_free(s);
    return ret;
}

void md_contig_free(md_contig_t *c)
{
    free(c->name);
    free(c->packed);
    free(c->n_runs);
    free(c->n_cum);
    free(c->mask_runs);
    memset(c, 0, sizeof *c);
}

void md_fasta_scan_free(md_fasta_scan_t *s)
{
    for (int i = 0; i < s->n; i++) md_contig_free(&s->contigs[i]);
    free(s->contigs);
    free(s->fai);
    if (s->bgzf) bgzf_close(s->bgzf);
    if (s->gz) gzclose(s->gz);
    memset(s, 0, sizeof *s);
}

/* A temporary beside final, with the umask's mode. fd, or -1 with errno set. */
static int make_temp(const char *final, char **tmp)
{
    size_t n = strlen(final) + 16;
    *tmp = md_malloc(n);
    snprintf(*tmp, n, "%s.tmpXXXXXX", final);
    int fd = mkstemp(*tmp);
    if (fd < 0) return -1;
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    return fd;
}

static int write_fai(const md_fasta_scan_t *s, const char *tmp_path, int fd)
{
    FILE *fp = fdopen(fd, "w");
    if (!fp) { close(fd); return -1; }
    for (int i = 0; i < s->n; i++)
        fprintf(fp, "%s\t%lld\t%llu\t%lld\t%lld\n", s->contigs[i].name, (long long)s->contigs[i].len,
                (unsigned long long)s->fai[i].seq_offset, (long long)s->fai[i].line_bases,
                (long long)s->fai[i].line_width);
    int bad = ferror(fp);
    if (fclose(fp) != 0) bad = 1;
    (void)tmp_path;
    return bad ? -1 : 0;
}

int md_fasta_write_index(md_fasta_scan_t *s, const char *path)
{
    size_t n = strlen(path) + 8;
    char *fai = md_malloc(n), *gzi = md_malloc(n), *fai_tmp = NULL, *gzi_tmp = NULL;
    snprintf(fai, n, "%s.fai", path);
    snprintf(gzi, n, "%s.gzi", path);
    int ret = 1, fd;
    const char *failed = fai;
    if (s->compression == MD_FASTA_BGZF) {
        failed = gzi;
        if ((fd = make_temp(gzi, &gzi_tmp)) < 0) goto fail;
        close(fd);
        if (bgzf_index_dump(s->bgzf, gzi_tmp, NULL) < 0) goto fail;
    }
    failed = fai;
    if ((fd = make_temp(fai, &fai_tmp)) < 0) goto fail;
    if (write_fai(s, fai_tmp, fd) < 0) goto fail;
    /* the .gzi first: faidx wants the .fai to imply a usable .gzi */
    if (gzi_tmp && rename(gzi_tmp, gzi) != 0) { failed = gzi; goto fail; }
    if (rename(fai_tmp, fai) != 0) goto fail;
    md_info("indexed %s (%s%s) for random access next time", path, fai, gzi_tmp ? " and .gzi" : "");
    ret = 0;
    goto out;
fail:
    if (errno == EACCES || errno == EROFS || errno == EPERM)
        md_info("%s: cannot write %s (%s); the genome is kept in memory instead", path, failed, strerror(errno));
    else
        md_warn("%s: cannot write %s (%s); the genome is kept in memory instead", path, failed, strerror(errno));
    if (gzi_tmp) unlink(gzi_tmp);
    if (fai_tmp) unlink(fai_tmp);
out:
    free(fai);
    free(gzi);
    free(fai_tmp);
    free(gzi_tmp);
    return ret;
}
