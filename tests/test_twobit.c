/* The 2bit reader and writer: real files against their source FASTA, a
 * generated round trip in every byte order and version, and truncated or
 * corrupt files that must fail cleanly. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "seq/twobit.h"
#include "testutil.h"
#include "util/log.h"
#include "util/rng.h"

/* ---- a tiny FASTA reader, independent of the code under test ---- */

typedef struct {
    int n;
    char **names;
    char **seqs;
    int64_t *lens;
} fasta_t;

static void fasta_free(fasta_t *f)
{
    for (int i = 0; i < f->n; i++) { free(f->names[i]); free(f->seqs[i]); }
    free(f->names); free(f->seqs); free(f->lens);
    memset(f, 0, sizeof *f);
}

/* Reads plain or gzip FASTA through zlib; names are the first word. */
static int fasta_read(const char *path, fasta_t *f)
{
    memset(f, 0, sizeof *f);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return -1;
    char line[1 << 16];
    size_t cap = 0;
    while (gzgets(gz, line, sizeof line)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (line[0] == '>') {
            f->names = realloc(f->names, (f->n + 1) * sizeof *f->names);
            f->seqs = realloc(f->seqs, (f->n + 1) * sizeof *f->seqs);
            f->lens = realloc(f->lens, (f->n + 1) * sizeof *f->lens);
            char *b = line + 1;
            while (*b == ' ' || *b == '\t') b++;
            char *e = b;
            while (*e && !isspace((unsigned char)*e)) e++;
            *e = 0;
            f->names[f->n] = strdup(b);
            f->seqs[f->n] = NULL;
            f->lens[f->n] = 0;
            f->n++;
            cap = 0;
        } else if (f->n) {
            int64_t *len = &f->lens[f->n - 1];
            if (*len + (int64_t)l + 1 > (int64_t)cap) {
                cap = (size_t)(*len + (int64_t)l + 1) * 2;
                f->seqs[f->n - 1] = realloc(f->seqs[f->n - 1], cap);
            }
            memcpy(f->seqs[f->n - 1] + *len, line, l);
            *len += (int64_t)l;
        }
    }
    gzclose(gz);
    return 0;
}

/* ---- real files ---- */

static void check_pair(const char *dir, const char *stem)
{
    char tb_path[4096], fa_path[4096];
    snprintf(tb_path, sizeof tb_path, "%.3000s/twobit/%s.2bit", dir, stem);
    snprintf(fa_path, sizeof fa_path, "%.3000s/twobit/%s.fa", dir, stem);
    fasta_t fa;
    CHECK(fasta_read(fa_path, &fa) == 0, "%s", fa_path);
    md_twobit_t *tb = md_twobit_open(tb_path);
    CHECK(tb != NULL, "%s", tb_path);
    if (!tb) { fasta_free(&fa); return; }
    CHECK(md_twobit_n_seqs(tb) == fa.n, "%s: %d sequences vs %d", stem, md_twobit_n_seqs(tb), fa.n);
    for (int i = 0; i < fa.n && i < md_twobit_n_seqs(tb); i++) {
        CHECK(!strcmp(md_twobit_name(tb, i), fa.names[i]), "%s: name %s vs %s", stem, md_twobit_name(tb, i), fa.names[i]);
        int64_t len = md_twobit_length(tb, i);
        CHECK(len == fa.lens[i], "%s/%s: length %lld vs %lld", stem, fa.names[i], (long long)len, (long long)fa.lens[i]);
        if (len != fa.lens[i]) continue;
        char *buf = malloc(len + 1);
        CHECK(md_twobit_fetch(tb, i, 0, len, buf, 1) == 0, "fetch");
        CHECK(!memcmp(buf, fa.seqs[i], len), "%s/%s: decodes differently from the FASTA (case kept)", stem, fa.names[i]);
        CHECK(md_twobit_fetch(tb, i, 0, len, buf, 0) == 0, "fetch");
        int upper_ok = 1;
        for (int64_t k = 0; k < len; k++) upper_ok &= buf[k] == toupper((unsigned char)fa.seqs[i][k]);
        CHECK(upper_ok, "%s/%s: uppercase fetch differs", stem, fa.names[i]);
        free(buf);
    }
    md_twobit_close(tb);

    /* the same through the genome API, loaded */
    const char *paths[] = {tb_path};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g && md_genome_load(g) == 0, "%s: genome load", stem);
    for (int i = 0; g && i < fa.n; i++) {
        const md_contig_t *c = md_genome_contig(g, i);
        char *buf = malloc(c->len + 1);
        CHECK(md_genome_fetch(g, i, 0, c->len, buf, 1) == 0 && !memcmp(buf, fa.seqs[i], c->len),
              "%s/%s: loaded genome decodes differently", stem, c->name);
        free(buf);
    }
    md_genome_close(g);
    fasta_free(&fa);
}

static void check_ecoli(const char *dir)
{
    char tb_path[4096], fa_path[4096];
    snprintf(tb_path, sizeof tb_path, "%.3000s/twobit/Ecoli_K12_MG1655_NC_000913.3_BSgenome.2bit", dir);
    snprintf(fa_path, sizeof fa_path, "%.3000s/genomes/Ecoli_K12_MG1655_NC_000913.3.fna.gz", dir);
    if (access(tb_path, R_OK) || access(fa_path, R_OK)) { printf("E. coli pair absent; skipped\n"); return; }
    fasta_t fa;
    CHECK(fasta_read(fa_path, &fa) == 0 && fa.n == 1, "%s", fa_path);
    const char *paths[] = {tb_path};
    double t0 = md_realtime();
    md_genome_t *g = md_genome_open(paths, 1);
    int loaded = g && md_genome_load(g) == 0;
    double dt = md_realtime() - t0;
    CHECK(loaded, "E. coli 2bit loads");
    printf("E. coli 2bit open + load: %.1f ms\n", dt * 1e3);
    if (loaded && fa.n == 1) {
        const md_contig_t *c = md_genome_contig(g, 0);
        CHECK(c->len == fa.lens[0], "E. coli length %lld vs %lld", (long long)c->len, (long long)fa.lens[0]);
        char *buf = malloc(c->len);
        md_genome_fetch(g, 0, 0, c->len, buf, 0);
        int same = c->len == fa.lens[0];
        for (int64_t k = 0; same && k < c->len; k++) same = buf[k] == toupper((unsigned char)fa.seqs[0][k]);
        CHECK(same, "E. coli 2bit differs from the NCBI FASTA");
        free(buf);
    }
    md_genome_close(g);
    fasta_free(&fa);
}

/* ---- generated files ---- */

/* What a sequence reads back as: ACGT kept, other bytes N, lowercase kept. */
static char expect_base(char c)
{
    switch (c) {
    case 'A': case 'C': case 'G': case 'T': case 'a': case 'c': case 'g': case 't': return c;
    }
    return c >= 'a' && c <= 'z' ? 'n' : 'N';
}

static char *random_seq(md_rng_t *r, int64_t len)
{
    static const char upper[] = "ACGT", lower[] = "acgt", odd[] = "NnRyK-";
    char *s = malloc(len + 1);
    int64_t i = 0;
    while (i < len) {
        int64_t run = 1 + (int64_t)md_rng_below(r, 40);
        if (run > len - i) run = len - i;
        int kind = (int)md_rng_below(r, 10);
        for (int64_t k = 0; k < run; k++, i++) {
            if (kind < 5) s[i] = upper[md_rng_below(r, 4)];
            else if (kind < 8) s[i] = lower[md_rng_below(r, 4)];
            else if (kind < 9) s[i] = md_rng_below(r, 2) ? 'N' : 'n';
            else s[i] = odd[md_rng_below(r, sizeof odd - 1)];
        }
    }
    s[len] = 0;
    return s;
}

typedef struct {
    int n;
    char *names[32];
    char *seqs[32];
    int64_t lens[32];
} gen_t;

static void gen_make(gen_t *g, uint64_t seed)
{
    md_rng_t r;
    md_rng_seed(&r, seed);
    g->n = 0;
    for (int len = 0; len <= 9; len++) g->lens[g->n++] = len;
    g->lens[g->n++] = 1000;
    g->lens[g->n++] = 4097;
    g->lens[g->n++] = 50000 + (int64_t)md_rng_below(&r, 1000);
    for (int i = 0; i < g->n; i++) {
        char name[64];
        snprintf(name, sizeof name, "seq%d_len%lld", i, (long long)g->lens[i]);
        g->names[i] = strdup(name);
        g->seqs[i] = random_seq(&r, g->lens[i]);
    }
    /* edge cases: a sequence wholly N, one wholly lowercase, one ending in n */
    memset(g->seqs[9], 'N', 9);
    memcpy(g->seqs[8], "acgtacgt", 8);
    g->seqs[7][6] = 'n';
}

static void gen_free(gen_t *g)
{
    for (int i = 0; i < g->n; i++) { free(g->names[i]); free(g->seqs[i]); }
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, fp) != *n) { free(b); b = NULL; }
    fclose(fp);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    fwrite(b, 1, n, fp);
    fclose(fp);
}

static uint32_t rd32le(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void put_word(unsigned char *p, uint64_t v, int bytes, int big)
{
    for (int k = 0; k < bytes; k++) p[big ? bytes - 1 - k : k] = (unsigned char)(v >> (8 * k));
}

/* Re-encodes our little-endian version-0 file in another byte order and/or
 * as version 1 (64-bit index offsets), walking the layout independently. */
static unsigned char *reencode(const unsigned char *in, size_t n_in, int big, int version, size_t *n_out)
{
    uint32_t count = rd32le(in + 8);
    int off_bytes = version ? 8 : 4;
    size_t grow = version ? 4 * (size_t)count : 0;
    unsigned char *out = calloc(n_in + grow, 1);
    put_word(out, 0x1A412743u, 4, big);
    put_word(out + 4, (uint64_t)version, 4, big);
    put_word(out + 8, count, 4, big);
    put_word(out + 12, 0, 4, big);
    size_t ip = 16, op = 16;
    uint32_t *offsets = malloc((count ? count : 1) * sizeof *offsets);
    for (uint32_t i = 0; i < count; i++) {
        unsigned nl = in[ip];
        memcpy(out + op, in + ip, 1 + nl);
        ip += 1 + nl;
        op += 1 + nl;
        offsets[i] = rd32le(in + ip);
        put_word(out + op, (uint64_t)offsets[i] + grow, off_bytes, big);
        ip += 4;
        op += off_bytes;
    }
    for (uint32_t i = 0; i < count; i++) {
        size_t p = offsets[i];
        uint32_t len = rd32le(in + p), nb = rd32le(in + p + 4);
        size_t words = 2 + 2 * (size_t)nb;
        uint32_t nm = rd32le(in + p + 4 * words);
        words += 1 + 2 * (size_t)nm + 1;
        for (size_t w = 0; w < words; w++) put_word(out + p + grow + 4 * w, rd32le(in + p + 4 * w), 4, big);
        size_t nbytes = ((size_t)len + 3) / 4;
        memcpy(out + p + grow + 4 * words, in + p + 4 * words, nbytes);
    }
    free(offsets);
    *n_out = n_in + grow;
    return out;
}

static void check_reads_as(const char *path, const gen_t *g, uint64_t seed, const char *label)
{
    md_twobit_t *tb = md_twobit_open(path);
    CHECK(tb != NULL, "%s: opens", label);
    if (!tb) return;
    CHECK(md_twobit_n_seqs(tb) == g->n, "%s: count", label);
    md_rng_t r;
    md_rng_seed(&r, seed);
    for (int i = 0; i < g->n && i < md_twobit_n_seqs(tb); i++) {
        int64_t len = g->lens[i];
        CHECK(!strcmp(md_twobit_name(tb, i), g->names[i]), "%s: name %d", label, i);
        CHECK(md_twobit_length(tb, i) == len, "%s: %s length %lld", label, g->names[i], (long long)md_twobit_length(tb, i));
        char *want = malloc(len + 1), *got = malloc(len + 1);
        for (int64_t k = 0; k < len; k++) want[k] = expect_base(g->seqs[i][k]);
        CHECK(md_twobit_fetch(tb, i, 0, len, got, 1) == 0 && !memcmp(got, want, len), "%s: %s whole", label, g->names[i]);
        int ranges_ok = 1;
        for (int t = 0; t < 50 && len > 0; t++) {
            int64_t a = (int64_t)md_rng_below(&r, (uint64_t)len + 1), b = (int64_t)md_rng_below(&r, (uint64_t)len + 1);
            if (a > b) { int64_t x = a; a = b; b = x; }
            int keep = (int)md_rng_below(&r, 2);
            if (md_twobit_fetch(tb, i, a, b, got, keep) != 0) { ranges_ok = 0; break; }
            for (int64_t k = a; k < b; k++)
                if (got[k - a] != (keep ? want[k] : toupper((unsigned char)want[k]))) { ranges_ok = 0; break; }
        }
        CHECK(ranges_ok, "%s: %s random ranges", label, g->names[i]);
        free(want);
        free(got);
    }
    md_twobit_close(tb);

    /* loaded: packed + runs, tokens */
    const char *paths[] = {path};
    md_genome_t *gg = md_genome_open(paths, 1);
    CHECK(gg && md_genome_load(gg) == 0, "%s: genome load", label);
    for (int i = 0; gg && i < g->n; i++) {
        const md_contig_t *c = md_genome_contig(gg, i);
        int64_t len = c->len;
        char *got = malloc(len + 1);
        uint8_t *tok = malloc(len + 1), *want_tok = malloc(len + 1);
        md_genome_fetch(gg, i, 0, len, got, 1);
        int same = 1;
        for (int64_t k = 0; k < len; k++) same &= got[k] == expect_base(g->seqs[i][k]);
        CHECK(same, "%s: loaded %s", label, c->name);
        md_genome_tokens(gg, i, 0, len, tok);
        md_tokenize(got, (size_t)len, want_tok);
        CHECK(!memcmp(tok, want_tok, len), "%s: tokens of %s", label, c->name);
        int64_t masked = 0, lower = 0;
        for (int64_t k = 0; k < c->n_mask_runs; k++) masked += c->mask_runs[k].end - c->mask_runs[k].start;
        for (int64_t k = 0; k < len; k++) lower += islower((unsigned char)got[k]) != 0;
        CHECK(masked == lower, "%s: %s mask runs cover %lld, lowercase %lld", label, c->name, (long long)masked, (long long)lower);
        free(got); free(tok); free(want_tok);
    }
    md_genome_close(gg);
}

/* A truncated or corrupt file must be refused by open, length or fetch. */
static int refused(const char *path)
{
    md_twobit_t *tb = md_twobit_open(path);
    if (!tb) return 1;
    int bad = 0;
    for (int i = 0; i < md_twobit_n_seqs(tb) && !bad; i++) {
        int64_t len = md_twobit_length(tb, i);
        if (len < 0) { bad = 1; break; }
        char *buf = malloc(len + 1);
        bad = md_twobit_fetch(tb, i, 0, len, buf, 1) < 0;
        free(buf);
    }
    md_twobit_close(tb);
    return bad;
}

/* Damage to the header, index or a record header must be caught while the
 * contigs are listed, before any sequence is read or allocated. */
static int refused_at_open(const char *path)
{
    const char *paths[] = {path};
    md_genome_t *g = md_genome_open(paths, 1);
    md_genome_close(g);
    return g == NULL;
}

static void check_damage(const char *dir, const unsigned char *file, size_t n, const gen_t *g)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/damaged.2bit", dir);
    /* every cut shorter than the whole file loses something */
    size_t cuts[] = {0, 3, 10, 15, 16, 17, 30, 60, n / 3, n / 2, n - 200, n - 5, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        spit(path, file, cuts[k]);
        CHECK(refused_at_open(path), "a file cut to %zu of %zu bytes is refused", cuts[k], n);
    }
    unsigned char *b = malloc(n);
    /* a sequence count far beyond what the file can index */
    memcpy(b, file, n);
    put_word(b + 8, 0x7fffffff, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "a huge sequence count is refused");
    /* an index offset pointing into the header */
    memcpy(b, file, n);
    put_word(b + 16 + 1 + b[16], 4, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "an offset into the header is refused");
    /* the last sequence's N block count made huge */
    memcpy(b, file, n);
    size_t ip = 16;
    uint32_t last_off = 0;
    for (int i = 0; i < g->n; i++) { ip += 1 + file[ip]; last_off = rd32le(file + ip); ip += 4; }
    put_word(b + last_off + 4, 0x10000000, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "a huge N block count is refused");
    /* the last sequence's mask block count made huge */
    memcpy(b, file, n);
    put_word(b + last_off + 8 + 8 * (size_t)rd32le(file + last_off + 4), 0x20000000, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "a huge mask block count is refused");
    /* the last sequence's dna size made larger than its bases */
    memcpy(b, file, n);
    put_word(b + last_off, (uint32_t)g->lens[g->n - 1] + 4000, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "a dna size beyond the file is refused");
    put_word(b + last_off, 0xfffffff0u, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "a 4 Gbp dna size in a small file is refused before any allocation");
    /* a block past the sequence's end (the first N block of the last sequence) */
    memcpy(b, file, n);
    if (rd32le(file + last_off + 4) > 0) {
        put_word(b + last_off + 8, (uint32_t)g->lens[g->n - 1], 4, 0);
        spit(path, b, n);
        CHECK(refused(path), "an N block past the sequence's end is refused");
    }
    /* a wrong magic and an unknown version */
    memcpy(b, file, n);
    b[0] ^= 0xff;
    spit(path, b, n);
    CHECK(refused_at_open(path), "a wrong magic is refused");
    memcpy(b, file, n);
    put_word(b + 4, 7, 4, 0);
    spit(path, b, n);
    CHECK(refused_at_open(path), "version 7 is refused");
    free(b);
}

static void check_generated(void)
{
    const char *dir = md_test_tmpdir();
    gen_t g;
    gen_make(&g, 42);
    char path[4096], path2[4096];
    snprintf(path, sizeof path, "%s/gen.2bit", dir);
    CHECK(md_twobit_write(path, g.n, (const char *const *)g.names, (const char *const *)g.seqs, g.lens) == 0, "write");
    check_reads_as(path, &g, 7, "little-endian v0");
    size_t n;
    unsigned char *file = slurp(path, &n);
    CHECK(file && rd32le(file) == 0x1A412743u && rd32le(file + 4) == 0, "written little-endian, version 0");
    struct { int big, version; const char *label; } variants[] = {
        {1, 0, "big-endian v0"}, {0, 1, "little-endian v1"}, {1, 1, "big-endian v1"}};
    for (int v = 0; file && v < 3; v++) {
        size_t m;
        unsigned char *re = reencode(file, n, variants[v].big, variants[v].version, &m);
        snprintf(path2, sizeof path2, "%s/variant%d.2bit", dir, v);
        spit(path2, re, m);
        free(re);
        check_reads_as(path2, &g, 7, variants[v].label);
    }
    /* the identity re-encoding reproduces our writer byte for byte */
    if (file) {
        size_t m;
        unsigned char *re = reencode(file, n, 0, 0, &m);
        CHECK(m == n && !memcmp(re, file, n), "the test's re-encoder agrees with the writer");
        free(re);
        check_damage(dir, file, n, &g);
    }
    free(file);

    /* bad names and lengths are refused before anything is written */
    snprintf(path2, sizeof path2, "%s/bad.2bit", dir);
    const char *bad_names[] = {"has space"}, *seqs[] = {"ACGT"};
    int64_t lens[] = {4};
    CHECK(md_twobit_write(path2, 1, bad_names, seqs, lens) < 0 && access(path2, F_OK) != 0, "a name with a space is refused");
    const char *ok_names[] = {"ok"};
    int64_t huge[] = {(int64_t)1 << 32};
    CHECK(md_twobit_write(path2, 1, ok_names, seqs, huge) < 0 && access(path2, F_OK) != 0, "a 4 Gbp sequence is refused");
    gen_free(&g);
}

/* A sparse file whose one sequence is 3 Gbp of N: lengths and coordinates
 * beyond 2^31 must survive, without reading or allocating 750 MB. */
static void check_long_sequence(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/long.2bit", md_test_tmpdir());
    const uint32_t len = 3000000000u;
    unsigned char head[64];
    size_t p = 0;
    put_word(head + p, 0x1A412743u, 4, 0); p += 4;
    put_word(head + p, 0, 4, 0); p += 4;
    put_word(head + p, 1, 4, 0); p += 4;
    put_word(head + p, 0, 4, 0); p += 4;
    head[p++] = 4;
    memcpy(head + p, "big1", 4); p += 4;
    put_word(head + p, 16 + 1 + 4 + 4, 4, 0); p += 4;
    put_word(head + p, len, 4, 0); p += 4;        /* dna size */
    put_word(head + p, 1, 4, 0); p += 4;          /* one N block */
    put_word(head + p, 0, 4, 0); p += 4;          /* at 0 */
    put_word(head + p, len, 4, 0); p += 4;        /* of len */
    put_word(head + p, 0, 4, 0); p += 4;          /* no mask */
    put_word(head + p, 0, 4, 0); p += 4;          /* reserved */
    FILE *fp = fopen(path, "wb");
    fwrite(head, 1, p, fp);
    fclose(fp);
    CHECK(truncate(path, (off_t)(p + (len + 3) / 4)) == 0, "sparse file");
    const char *paths[] = {path};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g && md_genome_contig(g, 0)->len == (int64_t)len, "a 3 Gbp sequence has its 64-bit length");
    char buf[16] = {0};
    CHECK(g && md_genome_fetch(g, 0, (int64_t)len - 10, len, buf, 1) == 0 && !strcmp(buf, "NNNNNNNNNN"),
          "fetch past 2^31: '%s'", buf);
    CHECK(g && md_genome_total_len(g) == (int64_t)len, "total length");
    md_genome_close(g);
    unlink(path);
}

int main(void)
{
    md_verbose = 0;
    check_generated();
    check_long_sequence();
    if (md_test_failures) return md_test_done();
    const char *dir = md_test_shared();
    const char *stems[] = {"lib2bit_foo", "lastz_pseudopig", "lastz_shorties"};
    for (int i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%.3000s/twobit/%s.2bit", dir, stems[i]);
        if (access(p, R_OK) == 0) check_pair(dir, stems[i]);
        else printf("%s absent; skipped\n", p);
    }
    check_ecoli(dir);
    return md_test_done();
}
