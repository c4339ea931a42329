/* Size limits of the reads parser (seq/limits.h): a read name over 255
 * bytes, a read or quality over the read-length limit, and a 1 Gbp read
 * behind a 1 MB gzip file are each refused with one error line, as soon as
 * the limit is passed: memory stays near the limit, never the claimed size.
 * Every file is made here, small, claiming the huge size. */
#include <stdint.h>
#include <zlib.h>

#include "seq/limits.h"
#include "seq/reads.h"
#include "testutil.h"
#include "util/xalloc.h"

static char *tmp_file(const char *name)
{
    size_t n = strlen(md_test_tmpdir()) + strlen(name) + 2;
    char *p = md_malloc(n);
    snprintf(p, n, "%s/%s", md_test_tmpdir(), name);
    return p;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

/* Reads path to its end: 1 when every record was read cleanly, 0 on error;
 * *records gets the count, *buffer the reader's memory at the end. */
static int read_all(const char *path, int64_t max_len, int64_t *records, size_t *buffer)
{
    md_reads_t *r = md_reads_open(path);
    if (!r) return 0;
    if (max_len) md_reads_set_max_len(r, max_len);
    md_read_t rec;
    int ret;
    while ((ret = md_reads_next(r, &rec)) == 1) {}
    *records = md_reads_count(r);
    *buffer = md_reads_buffer_bytes(r);
    md_reads_close(r);
    return ret == 0;
}

static void test_names(void)
{
    char name[300], text[700];
    int64_t n;
    size_t buf;
    memset(name, 'x', sizeof name);
    name[MD_MAX_NAME_LEN] = 0;
    snprintf(text, sizeof text, ">%s\nACGT\n@%s\nAC\n+\nII\n", name, name);
    char *p = tmp_file("name255.fa");
    write_text(p, text);
    CHECK(read_all(p, 0, &n, &buf) && n == 2, "a 255-byte name refused (%lld records)", (long long)n);
    free(p);
    name[MD_MAX_NAME_LEN] = 'x';
    name[MD_MAX_NAME_LEN + 1] = 0;
    snprintf(text, sizeof text, ">a\nACGT\n>%s desc\nACGT\n", name);
    p = tmp_file("name256.fa");
    write_text(p, text);
    fprintf(stderr, "expected error:\n");
    CHECK(!read_all(p, 0, &n, &buf) && n == 1, "a 256-byte name accepted");
    free(p);
}

static void test_length_limit(void)
{
    int64_t n;
    size_t buf;
    char *p = tmp_file("long.fq");
    write_text(p, "@ok\nACGTACGTAC\n+\nIIIIIIIIII\n@long\nACGTACGTACG\n+\nIIIIIIIIIII\n");
    CHECK(read_all(p, 11, &n, &buf) && n == 2, "reads at the limit refused");
    fprintf(stderr, "expected errors:\n");
    CHECK(!read_all(p, 10, &n, &buf) && n == 1, "a read over the limit accepted");
    free(p);
    /* a wrapped FASTA sequence passes the limit on its third line */
    p = tmp_file("wrapped.fa");
    write_text(p, ">w\nACGT\nACGT\nACGT\n");
    CHECK(!read_all(p, 10, &n, &buf) && n == 0, "a wrapped read over the limit accepted");
    free(p);
    /* a quality line far longer than its sequence and the limit */
    p = tmp_file("qual.fq");
    write_text(p, "@q\nAC\n+\nIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII\n");
    CHECK(!read_all(p, 10, &n, &buf) && n == 0, "an endless quality accepted");
    free(p);
}

/* One gzip member holding n bytes of data (repeated), appended to fp. */
static void gzip_member(FILE *fp, const char *data, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n);
    unsigned char *out = md_malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    fwrite(out, 1, cap - z.avail_out, fp);
    deflateEnd(&z);
    free(out);
}

/* A 1 Gbp read: one member of 1 MiB of A, repeated 1024 times (gzip
 * readers join members), behind a header member: about 1 MB on disk. */
static void test_gigabase_read(void)
{
    enum { MIB = 1 << 20 };
    char *chunk = md_malloc(MIB);
    memset(chunk, 'A', MIB);
    char *p = tmp_file("gigabase.fa.gz");
    FILE *fp = fopen(p, "w+b");
    gzip_member(fp, ">giant\n", 7);
    long start = ftell(fp);
    gzip_member(fp, chunk, MIB);
    long member = ftell(fp) - start;
    unsigned char *copy = md_malloc((size_t)member);
    fseek(fp, start, SEEK_SET);
    CHECK(fread(copy, 1, (size_t)member, fp) == (size_t)member, "re-read the member");
    fseek(fp, 0, SEEK_END);
    for (int i = 1; i < 1024; i++) fwrite(copy, 1, (size_t)member, fp);
    gzip_member(fp, "\n", 1);
    long size = ftell(fp);
    fclose(fp);
    free(copy);
    free(chunk);
    printf("a 1 Gbp read in a %ld-byte gzip file\n", size);
    int64_t n;
    size_t buf;
    fprintf(stderr, "expected error:\n");
    CHECK(!read_all(p, 0, &n, &buf), "a 1 Gbp read accepted");
    /* the sequence buffer grows to the limit at most, never to 1 Gbp */
    CHECK(buf <= (size_t)MD_READS_DEFAULT_MAX_LEN * 2, "%zu bytes of buffers for a refused read", buf);
    printf("buffers at the refusal: %.0f MB (limit %lld bases)\n", buf / 1e6, (long long)MD_READS_DEFAULT_MAX_LEN);
    free(p);
}

int main(void)
{
    test_names();
    test_length_limit();
    test_gigabase_read();
    return md_test_done();
}
