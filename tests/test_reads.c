/* The streaming reads reader: generated FASTA/FASTQ in many layouts and
 * compressions read back exactly; stdin and pipes; every bad input gives one
 * error line and -1; the two zlib/kseq pitfalls (a truncated gzip that looks
 * like a clean end, a read error that kseq retries forever) under a watchdog;
 * memory bounded by the longest read.
 *
 * `test_reads --bench FILE...` times reading files instead (MB/s), and
 * `test_reads --make-bench DIR` writes the files it was measured on. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <htslib/bgzf.h>

#include "seq/reads.h"
#include "testutil.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* ---- a growing text buffer ---- */

typedef struct sbuf {
    char *s;
    size_t l, m;
} sbuf_t;

static void sb_add(sbuf_t *b, const void *p, size_t n)
{
    MD_GROW(b->s, b->m, b->l + n + 1);
    memcpy(b->s + b->l, p, n);
    b->l += n;
    b->s[b->l] = 0;
}
static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

/* ---- the watchdog: a guard that is broken must fail the test, not hang it ---- */

static const char *watchdog_what = "";
static int watchdog_fd = 2;   /* the real stderr while fd 2 is being captured */

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: watchdog: reading did not finish in time: ";
    ssize_t w = write(watchdog_fd, msg, sizeof msg - 1);
    w = write(watchdog_fd, watchdog_what, strlen(watchdog_what));
    w = write(watchdog_fd, "\n", 1);
    (void)w;
    _exit(1);
}

static void watchdog(const char *what, unsigned seconds)
{
    watchdog_what = what;
    alarm(seconds);
}

/* ---- generated reads ---- */

typedef struct exp_read {
    char name[64], comment[64];
    char *seq, *qual;
    int64_t len;
    int tab_before_comment;
} exp_read_t;

static int64_t pick_len(md_rng_t *rng, int i, int n, int with_long)
{
    if (with_long && i == n / 2) return 1000000;   /* a nanopore-length read */
    if (i % 50 == 7) return 0;
    if (i % 97 == 1) return 1;
    if (i % 211 == 5) return 5000 + (int64_t)md_rng_below(rng, 15000);
    return 1 + (int64_t)md_rng_below(rng, 300);
}

static exp_read_t *make_reads(int n, uint64_t seed, int with_long)
{
    static const char alphabet[] = "ACGTACGTACGTacgtNnRYKMSWBDHVryk-.*";
    md_rng_t rng;
    md_rng_seed(&rng, seed);
    exp_read_t *x = md_calloc(n, sizeof *x);
    for (int i = 0; i < n; i++) {
        snprintf(x[i].name, sizeof x[i].name, i % 5 == 3 ? "sp|read:%d/1" : "read_%d", i);
        int kind = (int)md_rng_below(&rng, 3);
        if (kind == 1) snprintf(x[i].comment, sizeof x[i].comment, "len=%d", i * 7);
        if (kind == 2) snprintf(x[i].comment, sizeof x[i].comment, "runid=ab%d\tch=%d start=x", i, i % 512);
        x[i].tab_before_comment = md_rng_below(&rng, 4) == 0;
        int64_t len = pick_len(&rng, i, n, with_long);
        x[i].len = len;
        x[i].seq = md_malloc(len + 1);
        x[i].qual = md_malloc(len + 1);
        for (int64_t j = 0; j < len; j++) {
            x[i].seq[j] = alphabet[md_rng_below(&rng, sizeof alphabet - 1)];
            x[i].qual[j] = (char)('!' + md_rng_below(&rng, 94));   /* '@' and '+' included */
        }
        x[i].seq[len] = x[i].qual[len] = 0;
    }
    return x;
}

static void free_reads(exp_read_t *x, int n)
{
    for (int i = 0; i < n; i++) {
        free(x[i].seq);
        free(x[i].qual);
    }
    free(x);
}

typedef struct style {
    const char *label;
    int fastq;
    int seq_width, qual_width;   /* 0: one line */
    int crlf;
    int plus_name;               /* "+name" instead of "+" */
    int blank_lines;             /* blank lines between records */
} style_t;

static void add_wrapped(sbuf_t *b, const char *s, int64_t len, int width, const char *eol, int empty_line)
{
    if (len == 0) {
        if (empty_line) sb_str(b, eol);
        return;
    }
    int64_t w = width > 0 ? width : len;
    for (int64_t i = 0; i < len; i += w) {
        sb_add(b, s + i, (size_t)(len - i < w ? len - i : w));
        sb_str(b, eol);
    }
}

static void render(sbuf_t *b, const exp_read_t *x, int n, const style_t *st)
{
    const char *eol = st->crlf ? "\r\n" : "\n";
    b->l = 0;
    for (int i = 0; i < n; i++) {
        sb_str(b, st->fastq ? "@" : ">");
        sb_str(b, x[i].name);
        if (x[i].comment[0]) {
            sb_str(b, x[i].tab_before_comment ? "\t" : " ");
            sb_str(b, x[i].comment);
        }
        sb_str(b, eol);
        if (st->fastq) {
            add_wrapped(b, x[i].seq, x[i].len, st->seq_width, eol, 1);
            sb_str(b, "+");
            if (st->plus_name) sb_str(b, x[i].name);
            sb_str(b, eol);
            add_wrapped(b, x[i].qual, x[i].len, st->qual_width, eol, 1);
        } else {
            add_wrapped(b, x[i].seq, x[i].len, st->seq_width, eol, 0);
        }
        if (st->blank_lines) { sb_str(b, eol); sb_str(b, eol); }
    }
}

enum { PLAIN, GZIP, BGZIP };
static const char *const compression_name[] = {"plain", "gzip", "bgzip"};

static void write_file(const char *path, const void *data, size_t n, int compression)
{
    if (compression == PLAIN) {
        FILE *fp = fopen(path, "wb");
        if (!fp || fwrite(data, 1, n, fp) != n || fclose(fp) != 0) { perror(path); exit(2); }
    } else if (compression == GZIP) {
        gzFile fp = gzopen(path, "wb1");
        const char *p = data;
        while (n > 0) {
            unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
            if (!fp || gzwrite(fp, p, k) != (int)k) { fprintf(stderr, "gzwrite %s failed\n", path); exit(2); }
            p += k;
            n -= k;
        }
        if (gzclose(fp) != Z_OK) { fprintf(stderr, "gzclose %s failed\n", path); exit(2); }
    } else {
        BGZF *fp = bgzf_open(path, "w1");
        if (!fp || bgzf_write(fp, data, n) != (ssize_t)n || bgzf_close(fp) != 0) {
            fprintf(stderr, "bgzf %s failed\n", path);
            exit(2);
        }
    }
}

static sbuf_t slurp(const char *path)
{
    sbuf_t b = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) { perror(path); exit(2); }
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0) sb_add(&b, tmp, k);
    fclose(fp);
    return b;
}

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ & 7];
    snprintf(p, 512, "%s/%s", md_test_tmpdir(), name);
    return p;
}

/* Reads path and compares every record with x; returns the mismatches. */
static int read_and_compare(const char *path, const exp_read_t *x, int n, int fastq, const char *label)
{
    int bad = 0;
    md_reads_t *r = md_reads_open(path);
    CHECK(r != NULL, "%s: open", label);
    if (!r) return 1;
    md_read_t rec;
    int i = 0, ret;
    while ((ret = md_reads_next(r, &rec)) == 1) {
        if (i >= n) { bad++; break; }
        int ok = !strcmp(rec.name, x[i].name) && !strcmp(rec.comment, x[i].comment) && rec.len == x[i].len &&
                 !memcmp(rec.seq, x[i].seq, x[i].len) && rec.seq[rec.len] == 0 && rec.index == i;
        if (fastq) ok = ok && rec.qual && !memcmp(rec.qual, x[i].qual, x[i].len) && rec.qual[rec.len] == 0;
        else ok = ok && rec.qual == NULL;
        if (!ok) {
            if (!bad)
                fprintf(stderr, "%s: record %d differs: name '%s' vs '%s', comment '%s' vs '%s', len %lld vs %lld\n",
                        label, i, rec.name, x[i].name, rec.comment, x[i].comment, (long long)rec.len,
                        (long long)x[i].len);
            bad++;
        }
        i++;
    }
    CHECK(ret == 0, "%s: ends cleanly (ret %d)", label, ret);
    CHECK(i == n, "%s: %d records read, %d written", label, i, n);
    CHECK(md_reads_count(r) == i, "%s: count", label);
    CHECK(md_reads_next(r, &rec) == 0, "%s: a call after the end is still 0", label);
    md_reads_close(r);
    CHECK(bad == 0, "%s: %d records differ", label, bad);
    return bad + (ret != 0) + (i != n);
}

static const style_t styles[] = {
    {"fastq 4-line", 1, 0, 0, 0, 0, 0},
    {"fastq 4-line CRLF +name", 1, 0, 0, 1, 1, 0},
    {"fastq wrapped 60/60", 1, 60, 60, 0, 0, 0},
    {"fastq wrapped 70/one-line CRLF", 1, 70, 0, 1, 0, 0},
    {"fasta one-line", 0, 0, 0, 0, 0, 0},
    {"fasta wrapped 60 blank lines", 0, 60, 0, 0, 0, 1},
    {"fasta wrapped 80 CRLF", 0, 80, 0, 1, 0, 0},
};
enum { N_STYLES = sizeof styles / sizeof styles[0] };

static void test_round_trips(const exp_read_t *x, int n)
{
    sbuf_t text = {0};
    for (int s = 0; s < N_STYLES; s++) {
        render(&text, x, n, &styles[s]);
        for (int c = PLAIN; c <= BGZIP; c++) {
            char label[128];
            snprintf(label, sizeof label, "%s, %s", styles[s].label, compression_name[c]);
            const char *path = tmp_path("roundtrip");
            write_file(path, text.s, text.l, c);
            watchdog(label, 60);
            read_and_compare(path, x, n, styles[s].fastq, label);
            alarm(0);
        }
    }
    free(text.s);
}

/* Batches hold the same records, within their limits. */
static void test_batches(const exp_read_t *x, int n)
{
    sbuf_t text = {0};
    render(&text, x, n, &styles[0]);
    const char *path = tmp_path("batch.fq.gz");
    write_file(path, text.s, text.l, BGZIP);
    free(text.s);
    const int64_t limits[][2] = {{7, 1500}, {1000, 0}, {1, 1}, {100000, 100000}};
    for (int t = 0; t < 4; t++) {
        int64_t max_reads = limits[t][0], max_bases = limits[t][1];
        md_reads_t *r = md_reads_open(path);
        md_read_batch_t b;
        md_read_batch_init(&b);
        int i = 0, bad = 0, limits_ok = 1;
        int64_t got;
        while ((got = md_reads_next_batch(r, &b, max_reads, max_bases)) > 0) {
            int64_t bases = 0;
            for (int64_t k = 0; k < b.n; k++) {
                const md_read_t *rec = &b.reads[k];
                if (i >= n || strcmp(rec->name, x[i].name) || strcmp(rec->comment, x[i].comment) ||
                    rec->len != x[i].len || memcmp(rec->seq, x[i].seq, x[i].len) ||
                    memcmp(rec->qual, x[i].qual, x[i].len) || rec->index != i)
                    bad++;
                /* only the last read may take the batch to max_bases or beyond */
                if (max_bases > 0 && bases >= max_bases) limits_ok = 0;
                bases += rec->len;
                i++;
            }
            if (got != b.n || b.n > max_reads || bases != b.n_bases) limits_ok = 0;
            /* a short batch must have been stopped by the base limit or the end */
            if (b.n < max_reads && i < n && (max_bases <= 0 || bases < max_bases)) limits_ok = 0;
        }
        CHECK(got == 0, "batch %lld/%lld: clean end", (long long)max_reads, (long long)max_bases);
        CHECK(i == n && bad == 0, "batch %lld/%lld: %d of %d reads, %d differ", (long long)max_reads,
              (long long)max_bases, i, n, bad);
        CHECK(limits_ok, "batch %lld/%lld: limits", (long long)max_reads, (long long)max_bases);
        md_read_batch_free(&b);
        md_reads_close(r);
    }
}

/* Reading through fd 0: a file dup'ed onto it, and a pipe fed by the parent. */
static void test_stdin(const exp_read_t *x, int n)
{
    sbuf_t text = {0};
    render(&text, x, n, &styles[2]);
    const char *gz = tmp_path("stdin.fq.gz");
    write_file(gz, text.s, text.l, GZIP);
    sbuf_t packed = slurp(gz);
    for (int via_pipe = 0; via_pipe <= 1; via_pipe++) {
        int fds[2] = {-1, -1};
        if (via_pipe && pipe(fds) != 0) { perror("pipe"); exit(2); }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = via_pipe ? fds[0] : open(gz, O_RDONLY);
            if (fd < 0 || dup2(fd, 0) < 0) _exit(3);
            if (via_pipe) close(fds[1]);
            watchdog("stdin", 60);
            int bad = read_and_compare("-", x, n, 1, via_pipe ? "stdin pipe" : "stdin file");
            _exit(bad ? 1 : 0);
        }
        if (via_pipe) {
            close(fds[0]);
            /* The child may stop early on a failure: do not die of SIGPIPE. */
            signal(SIGPIPE, SIG_IGN);
            size_t off = 0;
            while (off < packed.l) {
                ssize_t w = write(fds[1], packed.s + off, packed.l - off);
                if (w <= 0) break;
                off += (size_t)w;
            }
            close(fds[1]);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reading %s through stdin: status %d",
              via_pipe ? "a pipe" : "a file", status);
    }
    free(text.s);
    free(packed.s);
}

/* ---- bad inputs: -1, exactly one error line naming the file and the problem ---- */

/* When set, the records read before an error must equal these: a cut or
 * corrupt input must never yield a partial record as if it were whole. */
static const exp_read_t *prefix_x;
static int prefix_n;

typedef struct outcome {
    int mismatches;    /* records differing from prefix_x */
    int opened;
    int last;          /* the last md_reads_next() result */
    int64_t records;   /* records returned before it */
    int n_error_lines;
    char errors[2048];
} outcome_t;

/* Reads path to its end or first error with stderr captured. */
static outcome_t read_capturing(const char *path)
{
    outcome_t o = {0};
    const char *cap = tmp_path("stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    watchdog_fd = saved;
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    md_reads_t *r = md_reads_open(path);
    if (r) {
        o.opened = 1;
        md_read_t rec;
        while ((o.last = md_reads_next(r, &rec)) == 1) {
            if (prefix_x) {
                const exp_read_t *e = o.records < prefix_n ? &prefix_x[o.records] : NULL;
                if (!e || strcmp(rec.name, e->name) || rec.len != e->len || memcmp(rec.seq, e->seq, e->len) ||
                    (rec.qual && memcmp(rec.qual, e->qual, e->len)))
                    o.mismatches++;
            }
            o.records++;
        }
        /* after an error or the end, further calls repeat it without a word */
        int again = md_reads_next(r, &rec);
        if (again != o.last) o.last = 99;
        md_reads_close(r);
    }
    fflush(stderr);
    dup2(saved, 2);
    watchdog_fd = 2;
    close(saved);
    sbuf_t err = slurp(cap);
    snprintf(o.errors, sizeof o.errors, "%s", err.s ? err.s : "");
    for (char *p = err.s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (!strncmp(p, "[E::", 4)) o.n_error_lines++;
    free(err.s);
    return o;
}

/* The error must name what (a substring) and where (the file, as shown). */
static void expect_error_in(const char *label, const char *path, const char *shown, const char *what,
                            int64_t min_records)
{
    watchdog(label, 30);
    outcome_t o = read_capturing(path);
    alarm(0);
    if (getenv("MD_TEST_VERBOSE")) fprintf(stderr, "%s (%lld records first): %s", label, (long long)o.records, o.errors);
    CHECK(!o.opened || o.last == -1, "%s: result %d after %lld records, expected -1", label, o.last,
          (long long)o.records);
    CHECK(o.n_error_lines == 1, "%s: %d error lines: %s", label, o.n_error_lines, o.errors);
    CHECK(strstr(o.errors, what) != NULL, "%s: error does not say '%s': %s", label, what, o.errors);
    CHECK(strstr(o.errors, shown) != NULL, "%s: error does not name '%s': %s", label, shown, o.errors);
    CHECK(o.records >= min_records, "%s: only %lld records before the error", label, (long long)o.records);
    CHECK(o.mismatches == 0, "%s: %d records returned before the error are not as written", label, o.mismatches);
}

static void expect_error(const char *label, const char *text, size_t n, int compression, const char *what)
{
    const char *path = tmp_path(compression == PLAIN ? "bad.txt" : "bad.gz");
    write_file(path, text, n, compression);
    expect_error_in(label, path, path, what, 0);
}
#define EXPECT_ERROR(label, literal, compression, what) \
    expect_error(label, literal, sizeof literal - 1, compression, what)

static void expect_no_reads(const char *label, const char *text, size_t n, int compression)
{
    const char *path = tmp_path("none");
    write_file(path, text, n, compression);
    outcome_t o = read_capturing(path);
    CHECK(o.opened && o.last == 0 && o.records == 0, "%s: %d, %lld records", label, o.last, (long long)o.records);
    CHECK(o.n_error_lines == 0, "%s: no error expected: %s", label, o.errors);
}

static void test_bad_inputs(void)
{
    const char *missing = tmp_path("no-such-file.fq");
    expect_error_in("missing file", missing, missing, "cannot open", 0);
    expect_error_in("directory", md_test_tmpdir(), md_test_tmpdir(), "directory", 0);

    expect_no_reads("empty file", "", 0, PLAIN);
    expect_no_reads("empty gzip", "", 0, GZIP);
    expect_no_reads("blank lines only", "\n\r\n  \n\t\n", 7, PLAIN);

    const char junk[] = {0x00, 0x13, (char)0x9f, (char)0xff, 0x41, '>', '\n', 0x00, 0x01};
    expect_error("binary junk", junk, sizeof junk, PLAIN, "not FASTA or FASTQ: the first byte is 0x00");
    expect_error("gzipped junk", junk, sizeof junk, GZIP, "not FASTA or FASTQ");
    EXPECT_ERROR("plain text", "hello world\n", PLAIN, "first byte is 'h'");
    EXPECT_ERROR("bzip2", "BZh91AY&SY\x01\x02\x03", PLAIN, "bzip2");
    EXPECT_ERROR("xz", "\xfd" "7zXZ\0\0\x04\xe6", PLAIN, "xz");
    EXPECT_ERROR("BAM", "BAM\1\0\0\0\0", BGZIP, "samtools fastq");
    EXPECT_ERROR("2bit", "\x43\x27\x41\x1a\0\0\0\0", PLAIN, "2bit");

    EXPECT_ERROR("FASTQ without '+'", "@r1\nACGT\n@r2\nACGT\n+\nIIII\n", PLAIN, "without a '+' line");
    EXPECT_ERROR("FASTQ without '+' at the end", "@r1\nACGT\nIIII\n", PLAIN,
                 "truncated record: the file ends before the FASTQ '+' line");
    EXPECT_ERROR("quality short", "@r1\nACGT\n+\nIIII\n@read_x c\nACGTA\n+\nIIII\n@r3\nA\n+\nI\n", PLAIN,
                 "record 2 (read_x), line 8: quality length 4 differs from sequence length 5");
    EXPECT_ERROR("quality long", "@r1\nACGT\n+\nIIIII\n", GZIP, "quality length 5 differs from sequence length 4");
    EXPECT_ERROR("quality wrapped, sequence not", "@r1\nACGTACGT\n+\nIIII\nIIII\n", PLAIN,
                 "quality length 4 differs from sequence length 8");
    EXPECT_ERROR("invalid quality byte", "@r1\nACGT\n+\nII I\n", PLAIN, "invalid quality byte");
    EXPECT_ERROR("truncated in the quality", "@r1\nACGT\n+\nII", PLAIN,
                 "truncated record: the file ends after 2 of 4 quality values");
    EXPECT_ERROR("truncated after '+'", "@r1\nACGT\n+\n", BGZIP, "truncated record");
    EXPECT_ERROR("truncated after the header", "@r1 x\n", PLAIN, "truncated record");
    EXPECT_ERROR("NUL in a sequence", ">r1\nAC\0GT\n", PLAIN, "invalid byte 0x00 in the sequence");
    EXPECT_ERROR("control byte in a header", ">r1\x01x\nACGT\n", PLAIN, "control byte 0x01");
    EXPECT_ERROR("no name", "> comment only\nACGT\n", PLAIN, "no read name");
    EXPECT_ERROR("junk after a record", "@r1\nACGT\n+\nIIII\nACGT\n", PLAIN,
                 "record 2, line 5: expected a header line starting with '>' or '@', found 'A'");
}

/* zlib's gzread() ends a truncated stream like a clean end of file; only
 * gzerror() says otherwise. Cut at several places, each must be an error. */
static void test_truncated_gzip(void)
{
    const int n = 4000;
    exp_read_t *x = make_reads(n, 21, 0);
    prefix_x = x;
    prefix_n = n;
    sbuf_t text = {0};
    const char *full = tmp_path("full.gz");
    for (int fastq = 1; fastq >= 0; fastq--) {
        render(&text, x, n, &styles[fastq ? 0 : 5]);
        for (int c = GZIP; c <= BGZIP; c++) {
            write_file(full, text.s, text.l, c);
            sbuf_t packed = slurp(full);
            /* mid-stream; in the 8-byte trailer (all data there, CRC and
             * size missing); in the 10-byte header of the first member */
            size_t cuts[] = {packed.l / 2, packed.l - 4, 12};
            if (c == BGZIP) cuts[1] = packed.l - 28 - 4;   /* before the empty EOF block */
            for (int k = 0; k < 3; k++) {
                const char *path = tmp_path("cut.gz");
                write_file(path, packed.s, cuts[k], PLAIN);
                char label[96];
                snprintf(label, sizeof label, "%s %s cut at %zu of %zu", fastq ? "FASTQ" : "FASTA",
                         compression_name[c], cuts[k], packed.l);
                expect_error_in(label, path, path, "truncated gzip", k == 0 ? 100 : 0);
            }
            free(packed.s);
        }
    }
    free(text.s);
    prefix_x = NULL;
    free_reads(x, n);
}

/* A gzip stream whose deflate data turns invalid in the middle: gzread()
 * returns -1 there, which htslib 1.16's kseq retries forever. The invalid
 * spot is a block header made to say BTYPE=11 (reserved), placed after a
 * full flush (for gzip) or at the start of a BGZF block in the middle. */
static void test_corrupt_gzip(void)
{
    const int n_reads = 8000;
    exp_read_t *x = make_reads(n_reads, 22, 0);
    sbuf_t text = {0};
    render(&text, x, n_reads, &styles[0]);
    prefix_x = x;
    prefix_n = n_reads;
    size_t half = text.l / 2;

    /* gzip: deflate the first half, full-flush, remember where the next
     * block starts, then the rest. */
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(2);
    size_t cap = deflateBound(&z, text.l) + 1024;
    unsigned char *out = md_malloc(cap);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    z.next_in = (unsigned char *)text.s;
    z.avail_in = (uInt)half;
    deflate(&z, Z_FULL_FLUSH);
    size_t mark = z.total_out;
    z.next_in = (unsigned char *)text.s + half;
    z.avail_in = (uInt)(text.l - half);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) exit(2);
    size_t n = z.total_out;
    deflateEnd(&z);
    out[mark] = 0x07;   /* BFINAL=1, BTYPE=11 */
    const char *path = tmp_path("corrupt.fq.gz");
    write_file(path, out, n, PLAIN);
    expect_error_in("corrupt gzip in the middle", path, path, "corrupt gzip", 1000);
    free(out);

    /* bgzip: the same in the first byte of deflate data of a middle block */
    const char *bgz = tmp_path("corrupt.fq.bgz");
    write_file(bgz, text.s, text.l, BGZIP);
    sbuf_t packed = slurp(bgz);
    size_t off = 0;
    int block = 0;
    while (off + 18 <= packed.l && off < packed.l / 2) {
        size_t bsize = (size_t)(unsigned char)packed.s[off + 16] | (size_t)(unsigned char)packed.s[off + 17] << 8;
        off += bsize + 1;
        block++;
    }
    CHECK(block >= 3, "bgzip test file has only %d blocks before its middle", block);
    packed.s[off + 18] = 0x07;
    write_file(bgz, packed.s, packed.l, PLAIN);
    expect_error_in("corrupt bgzip block in the middle", bgz, bgz, "corrupt gzip", 1000);

    /* the same, read through stdin: the error names stdin */
    fflush(NULL);
    int failures_before = md_test_failures;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(bgz, O_RDONLY);
        if (fd < 0 || dup2(fd, 0) < 0) _exit(3);
        expect_error_in("corrupt bgzip through stdin", "-", "stdin: ", "corrupt gzip", 1000);
        _exit(md_test_failures > failures_before ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "corrupt bgzip through stdin: status %d", status);
    free(packed.s);
    free(text.s);
    prefix_x = NULL;
    free_reads(x, n_reads);
}

/* 200k reads, one of them long: the buffers grow to the long one and stay. */
static void test_constant_memory(void)
{
    const int n = 200000, long_at = 100000;
    const int64_t long_len = 50000;
    const char *path = tmp_path("many.fq");
    FILE *fp = fopen(path, "wb");
    if (!fp) { perror(path); exit(2); }
    md_rng_t rng;
    md_rng_seed(&rng, 23);
    char *seq = md_malloc(long_len + 1), *qual = md_malloc(long_len + 1);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = i == long_at ? long_len : 20 + (int64_t)md_rng_below(&rng, 280);
        for (int64_t j = 0; j < len; j++) {
            seq[j] = "ACGT"[md_rng_below(&rng, 4)];
            qual[j] = (char)('!' + md_rng_below(&rng, 40));
        }
        fprintf(fp, "@m%d\n%.*s\n+\n%.*s\n", i, (int)len, seq, (int)len, qual);
        total += len;
    }
    if (fclose(fp) != 0) { perror(path); exit(2); }
    free(seq);
    free(qual);

    watchdog("200k reads", 60);
    md_reads_t *r = md_reads_open(path);
    md_read_t rec;
    int ret;
    size_t at_start = 0, after_long = 0, max_seen = 0;
    while ((ret = md_reads_next(r, &rec)) == 1) {
        size_t cap = md_reads_buffer_bytes(r);
        if (rec.index == 0) at_start = cap;
        if (rec.index == long_at) after_long = cap;
        if (cap > max_seen) max_seen = cap;
    }
    alarm(0);
    CHECK(ret == 0 && md_reads_count(r) == n, "read %lld of %d", (long long)md_reads_count(r), n);
    CHECK(md_reads_bases(r) == total, "bases %lld vs %lld", (long long)md_reads_bases(r), (long long)total);
    size_t at_end = md_reads_buffer_bytes(r);
    /* nothing grows after the longest read, whatever comes after it */
    CHECK(at_end == after_long && max_seen == after_long, "buffers grew after the longest read: %zu -> %zu",
          after_long, at_end);
    /* and the growth is a small multiple of that read (sequence and quality) */
    CHECK(after_long - at_start <= 4 * (size_t)long_len, "buffers grew by %zu for a %lld-base read",
          after_long - at_start, (long long)long_len);
    CHECK(at_start <= (1u << 20), "initial buffers %zu bytes", at_start);
    md_reads_close(r);
    remove(path);
}

/* ---- measurement mode (not a test) ---- */

static int make_bench(const char *dir)
{
    char path[1024];
    md_rng_t rng;
    md_rng_seed(&rng, 99);
    const int n = 1000000;   /* 1M reads of 150 bp: ~320 MB of FASTQ */
    sbuf_t text = {0};
    char seq[151], qual[151];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 150; j++) {
            seq[j] = "ACGT"[md_rng_below(&rng, 4)];
            qual[j] = (char)('#' + md_rng_below(&rng, 39));
        }
        char hdr[64];
        snprintf(hdr, sizeof hdr, "@bench_%d 1:N:0:ACGT\n", i);
        sb_str(&text, hdr);
        sb_add(&text, seq, 150);
        sb_str(&text, "\n+\n");
        sb_add(&text, qual, 150);
        sb_str(&text, "\n");
    }
    snprintf(path, sizeof path, "%s/bench.fq.gz", dir);
    gzFile gz = gzopen(path, "wb6");
    for (size_t off = 0; off < text.l; off += 1u << 26) {
        unsigned k = text.l - off < (1u << 26) ? (unsigned)(text.l - off) : (1u << 26);
        gzwrite(gz, text.s + off, k);
    }
    gzclose(gz);
    snprintf(path, sizeof path, "%s/bench.fq", dir);
    write_file(path, text.s, text.l, PLAIN);
    /* a FASTA of 300 Mbp in 60-column lines, 100 kbp records */
    text.l = 0;
    char line[61];
    line[60] = '\n';
    for (int rec = 0; rec < 3000; rec++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, ">contig_%d\n", rec);
        sb_str(&text, hdr);
        for (int l = 0; l < 100000 / 60; l++) {
            for (int j = 0; j < 60; j++) line[j] = "ACGT"[md_rng_below(&rng, 4)];
            sb_add(&text, line, 61);
        }
    }
    snprintf(path, sizeof path, "%s/bench.fa", dir);
    write_file(path, text.s, text.l, PLAIN);
    free(text.s);
    printf("wrote %s/bench.fq.gz, bench.fq, bench.fa\n", dir);
    return 0;
}

static int bench(int n, char **paths)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) { perror(paths[i]); return 1; }
        double t0 = md_realtime();
        md_reads_t *r = md_reads_open(paths[i]);
        if (!r) return 1;
        md_read_t rec;
        int ret;
        uint64_t check = 0;
        while ((ret = md_reads_next(r, &rec)) == 1) check += (unsigned char)rec.seq[rec.len / 2];
        double dt = md_realtime() - t0;
        printf("%s: %lld records, %lld bases, %.2f s: %.0f MB/s of file, %.0f Mbases/s (check %llu)\n", paths[i],
               (long long)md_reads_count(r), (long long)md_reads_bases(r), dt, st.st_size / dt / 1e6,
               md_reads_bases(r) / dt / 1e6, (unsigned long long)check);
        md_reads_close(r);
        if (ret < 0) return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--make-bench")) return make_bench(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "--bench")) return bench(argc - 2, argv + 2);
    signal(SIGALRM, watchdog_fired);

    const int n = 3000;
    exp_read_t *x = make_reads(n, 20, 1);
    test_round_trips(x, n);
    test_batches(x, n);
    test_stdin(x, n);
    free_reads(x, n);

    test_bad_inputs();
    test_truncated_gzip();
    test_corrupt_gzip();
    test_constant_memory();
    if (!md_test_failures) {   /* on failure the files stay for inspection */
        static const char *const names[] = {"roundtrip", "batch.fq.gz", "stdin.fq.gz", "stderr.txt", "bad.txt",
                                            "bad.gz", "none", "full.gz", "cut.gz", "corrupt.fq.gz",
                                            "corrupt.fq.bgz", "many.fq"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove(tmp_path(names[i]));
        rmdir(md_test_tmpdir());
    }
    return md_test_done();
}
