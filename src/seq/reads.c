/* A FASTA/FASTQ parser of our own over zlib's gzread(), rather than htslib's
 * kseq.h: it needs record numbers, lines and names in its error messages,
 * strict checks (quality length, binary bytes) and two guards that kseq 1.16
 * lacks: gzread()'s -1 ends the input once instead of being retried forever,
 * and a truncated gzip stream, which gzread() ends like a normal EOF, is
 * caught through gzerror() at the end. */
#include "seq/reads.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "seq/limits.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Big enough that zlib inflates straight into it and line scans run long. */
enum { IN_BUF_SIZE = 1 << 17 };

typedef struct text {
    char *s;
    size_t l, m;
} text_t;

struct md_reads {
    gzFile fp;
    char *path;
    const char *display;    /* the file's name in messages */
    unsigned char *in;      /* IN_BUF_SIZE bytes of decompressed input */
    size_t pos, len;
    int eof;                /* no more input: clean end or a recorded error */
    int failed;             /* an error was reported: every later call is -1 */
    char io_error[256];     /* a read error or truncation, reported once */
    int64_t line;           /* '\n's consumed so far */
    int64_t n_records, n_bases;
    int64_t max_len;        /* bases a read may hold */
    const char *rec_name;   /* the record being parsed, once its header is read */
    text_t hdr, seq, qual;
};

/* Bytes a sequence or quality line may hold: printable, not space. */
static inline int is_graph(unsigned char b) { return b >= '!' && b <= '~'; }

static void show_byte(unsigned char b, char out[8])
{
    if (is_graph(b)) snprintf(out, 8, "'%c'", b);
    else snprintf(out, 8, "0x%02x", b);
}

/* Reports one error line with the file, line and record, and marks r failed.
 * A pending read error or truncation explains any parse error that follows
 * it (the input was cut), so that is what gets reported instead. */
static int fail_at(md_reads_t *r, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(md_reads_t *r, int64_t line, const char *fmt, ...)
{
    char msg[512];
    if (r->io_error[0]) {
        snprintf(msg, sizeof msg, "%s", r->io_error);
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (r->rec_name)
        md_log_msg('E', "md_reads_next", "%s: record %lld (%.100s), line %lld: %s", r->display,
                   (long long)r->n_records + 1, r->rec_name, (long long)line, msg);
    else
        md_log_msg('E', "md_reads_next", "%s: record %lld, line %lld: %s", r->display,
                   (long long)r->n_records + 1, (long long)line, msg);
    r->failed = 1;
    return -1;
}

static int fail_too_long(md_reads_t *r, int64_t line, const char *what)
{
    return fail_at(r, line, "the %s is longer than %lld bases, the limit for one read", what, (long long)r->max_len);
}

/* Refills the input buffer. 0 at the end of input; a failure is recorded in
 * r->io_error and also ends the input, so no caller can loop on it. */
static int fill(md_reads_t *r)
{
    if (r->eof) return 0;
    int n = gzread(r->fp, r->in, IN_BUF_SIZE);
    if (n > 0) {
        r->pos = 0;
        r->len = (size_t)n;
        return 1;
    }
    int saved_errno = errno;
    r->eof = 1;
    r->pos = r->len = 0;
    int errnum = Z_OK;
    const char *msg = gzerror(r->fp, &errnum);
    if (n == 0 && errnum == Z_OK) return 0;
    /* zlib prefixes its message with "<fd:N>: ", meaningless to a user */
    if (msg && !strncmp(msg, "<fd:", 4) && strstr(msg, ": ")) msg = strstr(msg, ": ") + 2;
    if (errnum == Z_BUF_ERROR)
        snprintf(r->io_error, sizeof r->io_error, "truncated gzip: the compressed stream ends early (%s)", msg);
    else if (errnum == Z_DATA_ERROR)
        snprintf(r->io_error, sizeof r->io_error, "corrupt gzip: %s", msg);
    else if (errnum == Z_ERRNO)
        snprintf(r->io_error, sizeof r->io_error, "read error: %s", strerror(saved_errno));
    else
        snprintf(r->io_error, sizeof r->io_error, "read error: %s", msg ? msg : "unknown zlib error");
    return 0;
}

/* The next byte without consuming it, or -1 at the end of input. */
static inline int peek(md_reads_t *r)
{
    if (r->pos == r->len && !fill(r)) return -1;
    return r->in[r->pos];
}

/* Appends the rest of the current line, without its '\n' (and without a '\r'
 * before it), to t, keeping room for a NUL. Returns the bytes appended, -1
 * at the end of input with nothing left, or TOO_LONG (t then unspecified)
 * as soon as t would pass limit bytes: a line is never stored whole before
 * its length is checked. */
enum { TOO_LONG = -2 };
static int64_t take_line(md_reads_t *r, text_t *t, size_t limit)
{
    int64_t n = 0;
    int any = 0;
    for (;;) {
        if (r->pos == r->len && !fill(r)) break;
        any = 1;
        unsigned char *p = r->in + r->pos;
        size_t avail = r->len - r->pos;
        unsigned char *nl = memchr(p, '\n', avail);
        size_t k = nl ? (size_t)(nl - p) : avail;
        if (t->l + k > limit + 1) return TOO_LONG;   /* + 1: a '\r' yet to drop */
        MD_GROW(t->s, t->m, t->l + k + 1);
        memcpy(t->s + t->l, p, k);
        t->l += k;
        n += k;
        r->pos += k;
        if (nl) {
            r->pos++;
            r->line++;
            break;
        }
    }
    if (!any) return -1;
    if (n > 0 && t->s[t->l - 1] == '\r') { t->l--; n--; }
    return t->l > limit ? TOO_LONG : n;
}

static void skip_line(md_reads_t *r)
{
    for (;;) {
        if (r->pos == r->len && !fill(r)) return;
        unsigned char *p = r->in + r->pos;
        unsigned char *nl = memchr(p, '\n', r->len - r->pos);
        if (nl) {
            r->pos += (size_t)(nl - p) + 1;
            r->line++;
            return;
        }
        r->pos = r->len;
    }
}

/* Appends one sequence line to r->seq, dropping spaces, tabs and '\r' and
 * refusing other bytes outside '!'..'~'. */
static int take_seq_line(md_reads_t *r)
{
    int64_t line = r->line + 1;
    size_t start = r->seq.l;
    if (take_line(r, &r->seq, (size_t)r->max_len) == TOO_LONG) return fail_too_long(r, line, "sequence");
    unsigned char *s = (unsigned char *)r->seq.s;
    size_t i = start, l = r->seq.l;
    while (i < l && is_graph(s[i])) i++;
    if (i == l) return 0;
    size_t j = i;
    for (; i < l; i++) {
        unsigned char b = s[i];
        if (is_graph(b)) s[j++] = b;
        else if (b != ' ' && b != '\t' && b != '\r') {
            char shown[8];
            show_byte(b, shown);
            return fail_at(r, line, "invalid byte %s in the sequence", shown);
        }
    }
    r->seq.l = j;
    return 0;
}

/* Names the format when the first bytes say what the file is instead. */
static int fail_not_reads(md_reads_t *r)
{
    const unsigned char *p = r->in + r->pos;
    size_t n = r->len - r->pos;
    const char *what = NULL;
    if (n >= 3 && !memcmp(p, "BZh", 3)) what = "bzip2-compressed (not supported; use gzip or bgzip)";
    else if (n >= 6 && !memcmp(p, "\xfd" "7zXZ\0", 6)) what = "xz-compressed (not supported; use gzip or bgzip)";
    else if (n >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4)) what = "zstd-compressed (not supported; use gzip or bgzip)";
    else if (n >= 4 && !memcmp(p, "BAM\1", 4)) what = "BAM (convert it with 'samtools fastq')";
    else if (n >= 4 && !memcmp(p, "CRAM", 4)) what = "CRAM (convert it with 'samtools fastq')";
    else if (n >= 4 && (!memcmp(p, "\x43\x27\x41\x1a", 4) || !memcmp(p, "\x1a\x41\x27\x43", 4)))
        what = "a UCSC .2bit genome, not reads";
    if (what) return fail_at(r, r->line + 1, "not FASTA or FASTQ: the file is %s", what);
    char shown[8];
    show_byte(p[0], shown);
    return fail_at(r, r->line + 1, "not FASTA or FASTQ: the first byte is %s, not '>' or '@'", shown);
}

/* The end of input between records: clean, unless a read failed. */
static int end_of_input(md_reads_t *r)
{
    if (r->io_error[0]) {
        if (r->n_records == 0)
            md_log_msg('E', "md_reads_next", "%s: line %lld: %s", r->display, (long long)r->line + 1, r->io_error);
        else
            md_log_msg('E', "md_reads_next", "%s: after record %lld, line %lld: %s", r->display,
                       (long long)r->n_records, (long long)r->line + 1, r->io_error);
        r->failed = 1;
        return -1;
    }
    return 0;
}

/* Splits the header in r->hdr (its first byte the '>' or '@') into name and
 * comment, NUL-terminating both in place. */
static int parse_header(md_reads_t *r, int64_t line, md_read_t *rec)
{
    char *s = r->hdr.s;
    size_t l = r->hdr.l;
    s[l] = 0;
    for (size_t i = 1; i < l; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return fail_at(r, line, "control byte 0x%02x in the header line", b);
    }
    size_t name_end = 1;
    while (name_end < l && s[name_end] != ' ' && s[name_end] != '\t') name_end++;
    if (name_end == 1) return fail_at(r, line, "the header line has no read name after '%c'", s[0]);
    if (name_end - 1 > MD_MAX_NAME_LEN)
        return fail_at(r, line, "a read name of %zu bytes (names hold at most %d)", name_end - 1, MD_MAX_NAME_LEN);
    size_t c = name_end;
    while (c < l && (s[c] == ' ' || s[c] == '\t')) c++;
    s[name_end] = 0;
    rec->name = s + 1;
    rec->comment = s + c;   /* s[l] is the NUL: "" when there is no comment */
    r->rec_name = rec->name;
    return 0;
}

static int read_fastq_rest(md_reads_t *r)
{
    int n_seq_lines = 0;
    for (;;) {
        int c = peek(r);
        if (c < 0) return fail_at(r, r->line + 1, "truncated record: the file ends before the FASTQ '+' line");
        if (c == '+') break;
        if (c == '@' || c == '>')
            return fail_at(r, r->line + 1, "FASTQ record without a '+' line (a new header starts here)");
        if (take_seq_line(r) < 0) return -1;
        n_seq_lines++;
    }
    skip_line(r);
    int64_t qual_line = r->line + 1;
    r->qual.l = 0;
    /* The 4-line form has exactly one quality line; reading on until the
     * length is reached would swallow the next header when a quality is
     * short, and report the wrong problem. */
    int64_t got = 0;
    if (n_seq_lines <= 1) {
        got = take_line(r, &r->qual, (size_t)r->max_len);
    } else {
        while (r->qual.l < r->seq.l && (got = take_line(r, &r->qual, (size_t)r->max_len)) >= 0) {}
    }
    if (got == TOO_LONG) return fail_too_long(r, qual_line, "quality");
    if (r->qual.l < r->seq.l && peek(r) < 0)
        return fail_at(r, qual_line, "truncated record: the file ends after %zu of %zu quality values",
                       r->qual.l, r->seq.l);
    if (r->qual.l != r->seq.l)
        return fail_at(r, qual_line, "quality length %zu differs from sequence length %zu", r->qual.l, r->seq.l);
    const unsigned char *q = (const unsigned char *)r->qual.s;
    for (size_t i = 0; i < r->qual.l; i++) {
        if (!is_graph(q[i])) {
            char shown[8];
            show_byte(q[i], shown);
            return fail_at(r, qual_line, "invalid quality byte %s", shown);
        }
    }
    return 0;
}

static int next_record(md_reads_t *r, md_read_t *rec)
{
    int c;
    r->rec_name = NULL;
    for (;;) {   /* blank lines between records */
        c = peek(r);
        if (c < 0) return end_of_input(r);
        if (c == '\n') { r->pos++; r->line++; continue; }
        if (c == '\r' || c == ' ' || c == '\t') { r->pos++; continue; }
        break;
    }
    if (c != '>' && c != '@') {
        if (r->n_records == 0) return fail_not_reads(r);
        char shown[8];
        show_byte((unsigned char)c, shown);
        return fail_at(r, r->line + 1, "expected a header line starting with '>' or '@', found %s", shown);
    }
    int64_t header_line = r->line + 1;
    r->hdr.l = 0;
    if (take_line(r, &r->hdr, MD_MAX_LINE_BYTES) == TOO_LONG)
        return fail_at(r, header_line, "a header line longer than %lld bytes: not FASTA or FASTQ?",
                       (long long)MD_MAX_LINE_BYTES);
    if (parse_header(r, header_line, rec) < 0) return -1;

    r->seq.l = 0;
    if (c == '@') {
        if (read_fastq_rest(r) < 0) return -1;
        MD_GROW(r->qual.s, r->qual.m, r->qual.l + 1);
        r->qual.s[r->qual.l] = 0;
        rec->qual = r->qual.s;
    } else {
        for (;;) {
            int b = peek(r);
            if (b < 0 || b == '>' || b == '@') break;
            if (take_seq_line(r) < 0) return -1;
        }
        rec->qual = NULL;
    }
    /* A failed read would otherwise pass for a short last record. */
    if (r->io_error[0]) return fail_at(r, r->line + 1, "%s", r->io_error);
    MD_GROW(r->seq.s, r->seq.m, r->seq.l + 1);
    r->seq.s[r->seq.l] = 0;
    rec->seq = r->seq.s;
    rec->len = (int64_t)r->seq.l;
    rec->index = r->n_records++;
    r->n_bases += rec->len;
    return 1;
}

md_reads_t *md_reads_open(const char *path)
{
    int is_stdin = !strcmp(path, "-");
    int fd = is_stdin ? dup(STDIN_FILENO) : open(path, O_RDONLY);
    if (fd < 0) {
        md_error("%s: cannot open: %s", is_stdin ? "stdin" : path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        md_error("%s: is a directory, not a reads file", path);
        close(fd);
        return NULL;
    }
    gzFile fp = gzdopen(fd, "rb");
    if (!fp) {
        md_error("%s: cannot open: out of memory", is_stdin ? "stdin" : path);
        close(fd);
        return NULL;
    }
    gzbuffer(fp, IN_BUF_SIZE);
    md_reads_t *r = md_calloc(1, sizeof *r);
    r->fp = fp;
    r->path = md_strdup(path);
    r->display = is_stdin ? "stdin" : r->path;
    r->max_len = MD_READS_DEFAULT_MAX_LEN;
    r->in = md_malloc(IN_BUF_SIZE);
    return r;
}

int md_reads_next(md_reads_t *r, md_read_t *rec)
{
    if (r->failed) return -1;
    return next_record(r, rec);
}

void md_reads_close(md_reads_t *r)
{
    if (!r) return;
    gzclose(r->fp);
    free(r->in);
    free(r->hdr.s);
    free(r->seq.s);
    free(r->qual.s);
    free(r->path);
    free(r);
}

void md_reads_set_max_len(md_reads_t *r, int64_t max_len) { r->max_len = max_len > 0 ? max_len : 1; }

const char *md_reads_path(const md_reads_t *r) { return r->path; }
int64_t md_reads_count(const md_reads_t *r) { return r->n_records; }
int64_t md_reads_bases(const md_reads_t *r) { return r->n_bases; }

int64_t md_reads_raw_offset(const md_reads_t *r)
{
    return (int64_t)gzoffset(r->fp);
}

size_t md_reads_buffer_bytes(const md_reads_t *r)
{
    return IN_BUF_SIZE + r->hdr.m + r->seq.m + r->qual.m;
}

void md_read_batch_init(md_read_batch_t *b)
{
    memset(b, 0, sizeof *b);
}

void md_read_batch_free(md_read_batch_t *b)
{
    free(b->reads);
    free(b->arena);
    free(b->offs);
    memset(b, 0, sizeof *b);
}

int64_t md_reads_next_batch(md_reads_t *r, md_read_batch_t *b, int64_t max_reads, int64_t max_bases)
{
    b->n = 0;
    b->n_bases = 0;
    if (max_reads < 1) max_reads = 1;
    size_t used = 0;
    md_read_t rec;
    /* The arena moves as it grows, so strings are placed by offset and the
     * pointers set once the batch is complete. */
    while (b->n < max_reads && (max_bases <= 0 || b->n_bases < max_bases)) {
        int ret = md_reads_next(r, &rec);
        if (ret < 0) return -1;
        if (ret == 0) break;
        size_t name_l = strlen(rec.name) + 1, comment_l = strlen(rec.comment) + 1;
        size_t seq_l = (size_t)rec.len + 1, qual_l = rec.qual ? (size_t)rec.len + 1 : 0;
        MD_GROW(b->arena, b->arena_cap, used + name_l + comment_l + seq_l + qual_l);
        MD_GROW(b->reads, b->reads_cap, (size_t)b->n + 1);
        MD_GROW(b->offs, b->offs_cap, 4 * ((size_t)b->n + 1));
        size_t *o = b->offs + 4 * b->n;
        o[0] = used; memcpy(b->arena + used, rec.name, name_l); used += name_l;
        o[1] = used; memcpy(b->arena + used, rec.comment, comment_l); used += comment_l;
        o[2] = used; memcpy(b->arena + used, rec.seq, seq_l); used += seq_l;
        o[3] = (size_t)-1;
        if (rec.qual) { o[3] = used; memcpy(b->arena + used, rec.qual, qual_l); used += qual_l; }
        b->reads[b->n] = rec;
        b->n++;
        b->n_bases += rec.len;
    }
    for (int64_t i = 0; i < b->n; i++) {
        const size_t *o = b->offs + 4 * i;
        md_read_t *x = &b->reads[i];
        x->name = b->arena + o[0];
        x->comment = b->arena + o[1];
        x->seq = b->arena + o[2];
        x->qual = o[3] == (size_t)-1 ? NULL : b->arena + o[3];
    }
    return b->n;
}
