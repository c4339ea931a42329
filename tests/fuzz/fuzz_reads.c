/* libFuzzer target: FASTA/FASTQ reads (src/seq/reads.c).
 *
 * The input is the file, as it is (plain text, or gzip and other magic as
 * fuzzed bytes); fuzz_reads_gz.c compiles this file again to gzip it first,
 * so that the parser sees fuzzed text through a valid gzip stream. Each
 * input is read twice, record by record and in batches, and both must give
 * the same records and the same end. */
#include <zlib.h>

#include "fuzz_common.h"
#include "seq/reads.h"

static void check_record(const md_read_t *rec)
{
    FZ_CHECK(rec->name[0] != 0);
    for (const char *p = rec->name; *p; p++) FZ_CHECK(*p != ' ' && *p != '\t' && *p != '\n');
    FZ_CHECK((int64_t)strlen(rec->seq) == rec->len);
    FZ_CHECK(!rec->qual || (int64_t)strlen(rec->qual) == rec->len);
}

/* FNV-1a over the records, to compare the two ways of reading. */
static uint64_t mix(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h ^ 0xff;
}

static uint64_t hash_record(uint64_t h, const md_read_t *rec)
{
    h = mix(h, rec->name, strlen(rec->name));
    h = mix(h, rec->comment, strlen(rec->comment));
    h = mix(h, rec->seq, (size_t)rec->len);
    return rec->qual ? mix(h, rec->qual, (size_t)rec->len) : mix(h, "", 0);
}

/* Reads path whole; returns the last md_reads_next result (0 or -1). */
static int read_one_by_one(const char *path, uint64_t *hash, int64_t *n)
{
    fz_log_begin();
    md_reads_t *r = md_reads_open(path);
    FZ_CHECK(r != NULL);
    md_read_t rec;
    int ret;
    *hash = 0xcbf29ce484222325ULL;
    while ((ret = md_reads_next(r, &rec)) == 1) {
        check_record(&rec);
        FZ_CHECK(rec.index == md_reads_count(r) - 1);
        *hash = hash_record(*hash, &rec);
    }
    FZ_CHECK(md_reads_next(r, &rec) == ret);   /* the end, or the failure, stays */
    *n = md_reads_count(r);
    md_reads_close(r);
    fz_log_end(ret < 0, "md_reads_next");
    return ret;
}

static int read_in_batches(const char *path, uint64_t *hash, int64_t *n)
{
    fz_log_begin();
    md_reads_t *r = md_reads_open(path);
    FZ_CHECK(r != NULL);
    md_read_batch_t b;
    md_read_batch_init(&b);
    int64_t got;
    *hash = 0xcbf29ce484222325ULL;
    while ((got = md_reads_next_batch(r, &b, 3, 64)) > 0) {
        for (int64_t i = 0; i < b.n; i++) {
            check_record(&b.reads[i]);
            *hash = hash_record(*hash, &b.reads[i]);
        }
    }
    *n = md_reads_count(r);
    md_read_batch_free(&b);
    md_reads_close(r);
    fz_log_end(got < 0, "md_reads_next_batch");
    return (int)got;
}

#ifdef FUZZ_READS_GZIP
/* data as one gzip member; the caller frees it. */
static uint8_t *gzip_bytes(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    FZ_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    FZ_CHECK(out != NULL);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
#ifdef FUZZ_READS_GZIP
    size_t gz_size;
    uint8_t *gz = gzip_bytes(data, size, &gz_size);
    fz_write("reads.gz", gz, gz_size, path, sizeof path);
    free(gz);
#else
    fz_write("reads", data, size, path, sizeof path);
#endif
    uint64_t h1, h2;
    int64_t n1, n2;
    int r1 = read_one_by_one(path, &h1, &n1);
    int r2 = read_in_batches(path, &h2, &n2);
    FZ_CHECK((r1 < 0) == (r2 < 0));
    if (r1 == 0) FZ_CHECK(h1 == h2 && n1 == n2);
    return 0;
}
