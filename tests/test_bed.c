/* BED reading: both split layouts, plain and gzip, the Borzoi mapping of
 * train/valid/test, malformed lines reported at the right line, and the real
 * Borzoi interval file when ../shared is present. */
#include <fcntl.h>
#include <stdint.h>
#include <zlib.h>

#include "seq/bed.h"
#include "testutil.h"

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", md_test_tmpdir(), name);
    return p;
}

static const char *write_plain(const char *name, const char *text)
{
    const char *path = tmp_path(name);
    FILE *fp = fopen(path, "wb");
    fputs(text, fp);
    fclose(fp);
    return path;
}

static const char *write_gzip(const char *name, const char *text)
{
    const char *path = tmp_path(name);
    gzFile fp = gzopen(path, "wb");
    gzputs(fp, text);
    gzclose(fp);
    return path;
}

/* Runs md_bed_read with stderr captured; returns the result and leaves the
 * captured text in err. */
static md_bed_t *read_capturing(const char *path, int split_col, char *err, size_t err_size)
{
    const char *cap = tmp_path("stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    md_bed_t *b = md_bed_read(path, split_col);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fopen(cap, "rb");
    size_t n = fread(err, 1, err_size - 1, fp);
    err[n] = 0;
    fclose(fp);
    return b;
}

static int split_id(const md_bed_t *b, const char *label)
{
    for (int i = 0; i < b->n_splits; i++)
        if (!strcmp(b->splits[i], label)) return i;
    return -1;
}

static void test_basenji_layout(void)
{
    const char *text =
        "# Basenji-style sequences.bed\n"
        "track name=seqs\n"
        "browser position chr1:1-100\n"
        "chr1\t0\t131072\ttrain\n"
        "\n"
        "chr1\t131072\t262144\tvalid\r\n"
        "chr2\t5\t10\ttest\n"
        "chr1 300000 300100 train\n"       /* space-separated lines are accepted */
        "chrX\t7\t9\ttrain";                /* no final newline */
    for (int gz = 0; gz < 2; gz++) {
        const char *path = gz ? write_gzip("basenji.bed.gz", text) : write_plain("basenji.bed", text);
        md_bed_t *b = md_bed_read(path, 4);
        CHECK(b != NULL, "read %s", path);
        if (!b) continue;
        CHECK(b->n == 5, "%lld intervals", (long long)b->n);
        CHECK(b->n_chroms == 3, "%d chroms", b->n_chroms);
        CHECK(b->n_splits == 3, "%d splits", b->n_splits);
        CHECK(!strcmp(b->chroms[b->iv[0].chrom], "chr1") && b->iv[0].start == 0 && b->iv[0].end == 131072,
              "first interval");
        CHECK(b->iv[0].line == 4, "line of first interval is %lld", (long long)b->iv[0].line);
        CHECK(b->iv[1].line == 6 && !strcmp(b->splits[b->iv[1].split], "valid"), "CR stripped from label");
        CHECK(!strcmp(b->chroms[b->iv[2].chrom], "chr2") && b->iv[2].start == 5 && b->iv[2].end == 10, "chr2");
        CHECK(b->iv[3].start == 300000 && b->iv[3].end == 300100 && !strcmp(b->splits[b->iv[3].split], "train"),
              "space-separated line");
        CHECK(!strcmp(b->chroms[b->iv[4].chrom], "chrX") && b->iv[4].end == 9 && b->iv[4].line == 9,
              "last line without newline");

        uint8_t sel[8];
        CHECK(md_bed_select_splits(b, "train", sel) == 0, "select train");
        CHECK(sel[split_id(b, "train")] && !sel[split_id(b, "valid")] && !sel[split_id(b, "test")], "only train");
        CHECK(md_bed_select_splits(b, "valid,test", sel) == 0, "select valid,test");
        CHECK(!sel[split_id(b, "train")] && sel[split_id(b, "valid")] && sel[split_id(b, "test")], "valid+test");
        CHECK(md_bed_select_splits(b, "fold3", sel) < 0, "fold names mean nothing in a Basenji file");
        CHECK(md_bed_select_splits(b, "train,", sel) < 0, "empty label in the list");
        md_bed_free(b);
    }
    /* Without a split column, three columns are enough and labels are ignored. */
    const char *path = write_plain("three.bed", "chr1\t0\t10\nchr1\t20\t30\textra\tcols\n");
    md_bed_t *b = md_bed_read(path, 0);
    CHECK(b && b->n == 2 && b->n_splits == 0 && b->iv[1].split == -1, "three-column BED");
    uint8_t sel[1];
    if (b) CHECK(md_bed_select_splits(b, "train", sel) < 0, "no split column to select on");
    md_bed_free(b);
}

static void test_borzoi_layout(void)
{
    /* Every fold 0..7 once, plus a second fold3 line. */
    char text[2048];
    size_t len = 0;
    for (int f = 0; f < 8; f++)
        len += (size_t)snprintf(text + len, sizeof text - len, "chr%d\t%d\t%d\tfold%d\n", f + 1, 1000 * f,
                                1000 * f + 196608, f);
    snprintf(text + len, sizeof text - len, "chr9\t0\t196608\tfold3\n");
    const char *path = write_gzip("borzoi.bed.gz", text);
    md_bed_t *b = md_bed_read(path, 4);
    CHECK(b && b->n == 9 && b->n_splits == 8, "borzoi-style file");
    if (!b) return;
    uint8_t sel[8];
    CHECK(md_bed_select_splits(b, "test", sel) == 0, "test");
    for (int i = 0; i < 8; i++) CHECK(sel[i] == !strcmp(b->splits[i], "fold3"), "test = fold3 only (%s)", b->splits[i]);
    CHECK(md_bed_select_splits(b, "valid", sel) == 0, "valid");
    for (int i = 0; i < 8; i++) CHECK(sel[i] == !strcmp(b->splits[i], "fold4"), "valid = fold4 only (%s)", b->splits[i]);
    CHECK(md_bed_select_splits(b, "train", sel) == 0, "train");
    for (int i = 0; i < 8; i++)
        CHECK(sel[i] == (strcmp(b->splits[i], "fold3") && strcmp(b->splits[i], "fold4")), "train = the rest (%s)",
              b->splits[i]);
    CHECK(md_bed_select_splits(b, "fold0,fold1,fold2", sel) == 0, "fold list");
    int n_sel = 0;
    for (int i = 0; i < 8; i++) n_sel += sel[i];
    CHECK(n_sel == 3 && sel[split_id(b, "fold0")] && sel[split_id(b, "fold1")] && sel[split_id(b, "fold2")],
          "three folds");
    CHECK(md_bed_select_splits(b, "fold8", sel) < 0, "fold8 is not in the file");
    CHECK(md_bed_select_splits(b, "fold1,nonsense", sel) < 0, "one bad label in the list");
    md_bed_free(b);
}

static void expect_bad(const char *desc, const char *text, int split_col, long line)
{
    const char *path = text ? write_plain("bad.bed", text) : tmp_path("does-not-exist.bed");
    char err[4096];
    md_bed_t *b = read_capturing(path, split_col, err, sizeof err);
    CHECK(b == NULL, "%s: accepted", desc);
    md_bed_free(b);
    int n_lines = 0;
    for (const char *p = err; *p; p++) n_lines += *p == '\n';
    CHECK(n_lines == 1 && !strncmp(err, "[E::", 4), "%s: want one error line, got '%s'", desc, err);
    if (line > 0) {
        char want[600];
        snprintf(want, sizeof want, "%s:%ld:", path, line);
        CHECK(strstr(err, want) != NULL, "%s: '%s' does not name %s", desc, err, want);
    }
}

static void test_malformed(void)
{
    const char *ok3 = "# header\nchr1\t0\t10\ttrain\n";   /* two good lines before the bad one */
    char text[512];
#define BAD(desc, badline, col) \
    snprintf(text, sizeof text, "%s%s\n", ok3, badline), expect_bad(desc, text, col, 3)
    BAD("two columns", "chr1\t5", 4);
    BAD("no split column", "chr1\t5\t10", 4);
    BAD("start not an integer", "chr1\tabc\t10\ttrain", 4);
    BAD("negative start", "chr1\t-5\t10\ttrain", 4);
    BAD("end with junk", "chr1\t5\t10x\ttrain", 4);
    BAD("start == end", "chr1\t10\t10\ttrain", 4);
    BAD("start > end", "chr1\t20\t10\ttrain", 4);
    BAD("overflowing integer", "chr1\t5\t99999999999999999999999\ttrain", 4);
    BAD("empty chrom", "\t5\t10\ttrain", 4);
    BAD("empty split label", "chr1\t5\t10\t", 4);
#undef BAD
    expect_bad("empty file", "", 4, 0);
    expect_bad("only headers", "# nothing\ntrack x\n", 4, 0);
    expect_bad("missing file", NULL, 4, 0);
    /* A truncated gzip file is an error, not a short read. */
    char big[40000];
    size_t len = 0;
    for (int i = 0; len + 64 < sizeof big; i++)
        len += (size_t)snprintf(big + len, sizeof big - len, "chr1\t%d\t%d\tfold%d\n", i * 7, i * 7 + 5, i % 8);
    const char *gz = write_gzip("trunc.bed.gz", big);
    FILE *fp = fopen(gz, "rb");
    char raw[40000];
    size_t n = fread(raw, 1, sizeof raw, fp);
    fclose(fp);
    /* Cut mid-stream, and cut only the trailer (all lines intact, the end missing). */
    const size_t cuts[2] = {n / 2, n - 4};
    for (int k = 0; k < 2; k++) {
        fp = fopen(gz, "wb");
        fwrite(raw, 1, cuts[k], fp);
        fclose(fp);
        char err[4096];
        md_bed_t *b = read_capturing(gz, 4, err, sizeof err);
        CHECK(b == NULL && strstr(err, "[E::") && strstr(err, "trunc.bed.gz") && strstr(err, "read error"),
              "truncated gzip (%zu of %zu bytes): '%s'", cuts[k], n, err);
        md_bed_free(b);
    }
}

static void test_real_borzoi(void)
{
    const char *shared = getenv("MD_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/data/intervals/borzoi_sequences_human.bed.gz", shared ? shared : "../shared");
    if (access(path, R_OK) != 0) {
        printf("real Borzoi file absent: skipping that part\n");
        return;
    }
    md_bed_t *b = md_bed_read(path, 4);
    CHECK(b != NULL, "read %s", path);
    if (!b) return;
    CHECK(b->n == 55497, "%lld intervals", (long long)b->n);
    CHECK(b->n_chroms == 23, "%d chroms", b->n_chroms);
    CHECK(b->n_splits == 8, "%d folds", b->n_splits);
    int64_t wrong_len = 0, counts[64] = {0};
    for (int64_t i = 0; i < b->n; i++) {
        wrong_len += b->iv[i].end - b->iv[i].start != 196608;
        counts[b->iv[i].split]++;
    }
    CHECK(wrong_len == 0, "%lld intervals not 196,608 bp", (long long)wrong_len);
    int64_t sum = 0;
    for (int f = 0; f < b->n_splits; f++) {
        CHECK(!strncmp(b->splits[f], "fold", 4), "label %s", b->splits[f]);
        CHECK(counts[f] >= 6526 && counts[f] <= 7363, "%s has %lld", b->splits[f], (long long)counts[f]);
        sum += counts[f];
    }
    CHECK(sum == 55497, "fold counts sum to %lld", (long long)sum);
    uint8_t sel[8];
    CHECK(md_bed_select_splits(b, "test", sel) == 0 && sel[split_id(b, "fold3")], "test is fold3");
    md_bed_free(b);
}

int main(void)
{
    test_basenji_layout();
    test_borzoi_layout();
    test_malformed();
    test_real_borzoi();
    return md_test_done();
}
