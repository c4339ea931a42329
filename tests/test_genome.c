/* The genome API over every FASTA form: one random genome written as plain
 * FASTA, gzip and bgzip, with and without a .fai, in a writable and a
 * read-only folder, must read identically; the .fai and .gzi we write must
 * equal htslib's own, and a damaged .gzi must be ignored; the hg38 chunk
 * must show its documented figures. */
#include <ctype.h>
#include <errno.h>
#include <htslib/bgzf.h>
#include <htslib/faidx.h>
#include <htslib/hts.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "seq/twobit.h"
#include "testutil.h"
#include "util/log.h"
#include "util/rng.h"

#define N_CONTIGS 8

typedef struct {
    char *names[N_CONTIGS];
    char *seqs[N_CONTIGS];      /* as written */
    char *want[N_CONTIGS];      /* as it must read back with case kept */
    int64_t lens[N_CONTIGS];
} genome_t;

static char expect_base(char c)
{
    switch (c) {
    case 'A': case 'C': case 'G': case 'T': case 'a': case 'c': case 'g': case 't': return c;
    }
    return c >= 'a' && c <= 'z' ? 'n' : 'N';
}

static void make_genome(genome_t *g, uint64_t seed)
{
    static const int64_t lens[N_CONTIGS] = {1, 59, 60, 61, 1000, 4099, 123457, 400003};
    static const char upper[] = "ACGT", lower[] = "acgt", odd[] = "NnRyKw-*";
    md_rng_t r;
    md_rng_seed(&r, seed);
    for (int i = 0; i < N_CONTIGS; i++) {
        char name[64];
        snprintf(name, sizeof name, "chr%c_%d", 'A' + i, i);
        g->names[i] = strdup(name);
        g->lens[i] = lens[i];
        char *s = malloc(lens[i] + 1);
        for (int64_t p = 0; p < lens[i];) {
            int64_t run = 1 + (int64_t)md_rng_below(&r, 300);
            if (run > lens[i] - p) run = lens[i] - p;
            int kind = (int)md_rng_below(&r, 20);
            for (int64_t k = 0; k < run; k++, p++) {
                if (kind < 11) s[p] = upper[md_rng_below(&r, 4)];
                else if (kind < 17) s[p] = lower[md_rng_below(&r, 4)];
                else if (kind < 19) s[p] = 'N';
                else s[p] = odd[md_rng_below(&r, sizeof odd - 1)];
            }
        }
        s[lens[i]] = 0;
        g->seqs[i] = s;
        g->want[i] = malloc(lens[i] + 1);
        for (int64_t p = 0; p < lens[i]; p++) g->want[i][p] = expect_base(s[p]);
        g->want[i][lens[i]] = 0;
    }
}

static void free_genome(genome_t *g)
{
    for (int i = 0; i < N_CONTIGS; i++) { free(g->names[i]); free(g->seqs[i]); free(g->want[i]); }
}

/* The FASTA text; width 0 draws a random width per line (not indexable). */
static char *fasta_text(const genome_t *g, int width, const char *eol, size_t *n_out, uint64_t seed)
{
    md_rng_t r;
    md_rng_seed(&r, seed);
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap);
    for (int i = 0; i < N_CONTIGS; i++) {
        size_t need = (size_t)g->lens[i] * 3 + 256;
        if (n + need > cap) { cap = (n + need) * 2; t = realloc(t, cap); }
        n += (size_t)sprintf(t + n, ">%s description %d%s", g->names[i], i, eol);
        for (int64_t p = 0; p < g->lens[i];) {
            int64_t w = width ? width : 1 + (int64_t)md_rng_below(&r, 120);
            if (w > g->lens[i] - p) w = g->lens[i] - p;
            memcpy(t + n, g->seqs[i] + p, (size_t)w);
            n += (size_t)w;
            n += (size_t)sprintf(t + n, "%s", eol);
            p += w;
        }
    }
    *n_out = n;
    return t;
}

static void write_plain(const char *path, const char *t, size_t n)
{
    FILE *fp = fopen(path, "wb");
    fwrite(t, 1, n, fp);
    fclose(fp);
}

static void write_gzip(const char *path, const char *t, size_t n)
{
    gzFile gz = gzopen(path, "wb6");
    gzwrite(gz, t, (unsigned)n);
    gzclose(gz);
}

static void write_bgzip(const char *path, const char *t, size_t n)
{
    BGZF *fp = bgzf_open(path, "w");
    if (bgzf_write(fp, t, n) != (ssize_t)n) fprintf(stderr, "bgzf_write failed\n");
    bgzf_close(fp);
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

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = slurp(from, &n);
    if (b) write_plain(to, (const char *)b, n);
    free(b);
}

static int64_t brute_count_n(const char *s, int64_t a, int64_t b)
{
    int64_t n = 0;
    for (int64_t k = a; k < b; k++) n += s[k] == 'N' || s[k] == 'n';
    return n;
}

/* Everything a genome must agree on with g: names, lengths, fetches before
 * and after load, tokens and N counts. in_memory: 1 if every contig must be
 * in memory right after open, 0 if none may be (served by faidx), -1 either. */
static void check_genome(const char *const *paths, int n_paths, const genome_t *g, const char *label, int in_memory)
{
    md_genome_t *gg = md_genome_open(paths, n_paths);
    CHECK(gg != NULL, "%s: opens", label);
    if (!gg) return;
    CHECK(md_genome_n_contigs(gg) == N_CONTIGS, "%s: %d contigs", label, md_genome_n_contigs(gg));
    int64_t total = 0;
    for (int i = 0; i < N_CONTIGS; i++) total += g->lens[i];
    CHECK(md_genome_total_len(gg) == total, "%s: total length", label);
    md_rng_t r;
    md_rng_seed(&r, 99);
    char *buf = malloc(400100);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N_CONTIGS && i < md_genome_n_contigs(gg); i++) {
            const md_contig_t *c = md_genome_contig(gg, i);
            if (pass == 0) {
                CHECK(!strcmp(c->name, g->names[i]), "%s: name %s vs %s", label, c->name, g->names[i]);
                CHECK(c->len == g->lens[i], "%s: %s length %lld vs %lld", label, c->name, (long long)c->len, (long long)g->lens[i]);
                CHECK(md_genome_find(gg, g->names[i]) == i, "%s: find %s", label, g->names[i]);
                if (in_memory >= 0)
                    CHECK((c->packed != NULL) == in_memory, "%s: %s is %s after open", label, c->name,
                          c->packed ? "in memory" : "on disk");
            }
            if (c->len != g->lens[i]) continue;
            CHECK(md_genome_fetch(gg, i, 0, c->len, buf, 1) == 0 && !memcmp(buf, g->want[i], c->len),
                  "%s: %s whole (%s)", label, c->name, pass ? "loaded" : "opened");
            int ok = 1;
            for (int t = 0; t < 40 && ok; t++) {
                int64_t a = (int64_t)md_rng_below(&r, (uint64_t)c->len + 1), b = (int64_t)md_rng_below(&r, (uint64_t)c->len + 1);
                if (a > b) { int64_t x = a; a = b; b = x; }
                int keep = t & 1;
                ok = md_genome_fetch(gg, i, a, b, buf, keep) == 0;
                for (int64_t k = a; ok && k < b; k++)
                    ok = buf[k - a] == (keep ? g->want[i][k] : toupper((unsigned char)g->want[i][k]));
            }
            CHECK(ok, "%s: %s random ranges (%s)", label, c->name, pass ? "loaded" : "opened");
            if (pass == 0) continue;
            uint8_t *tok = malloc(c->len), *want = malloc(c->len);
            ok = 1;
            for (int t = 0; t < 40 && ok; t++) {
                int64_t a = (int64_t)md_rng_below(&r, (uint64_t)c->len + 1), b = (int64_t)md_rng_below(&r, (uint64_t)c->len + 1);
                if (a > b) { int64_t x = a; a = b; b = x; }
                md_genome_tokens(gg, i, a, b, tok);
                md_tokenize(g->want[i] + a, (size_t)(b - a), want);
                ok = !memcmp(tok, want, (size_t)(b - a));
                CHECK(md_genome_count_n(gg, i, a, b) == brute_count_n(g->want[i], a, b), "%s: %s count_n [%lld,%lld)",
                      label, c->name, (long long)a, (long long)b);
            }
            CHECK(ok, "%s: %s tokens agree with the text", label, c->name);
            free(tok);
            free(want);
        }
        if (pass == 0) CHECK(md_genome_load(gg) == 0, "%s: loads", label);
        for (int i = 0; pass == 0 && i < md_genome_n_contigs(gg); i++)
            CHECK(md_genome_contig(gg, i)->packed != NULL, "%s: loaded", label);
    }
    CHECK(md_genome_load(gg) == 0, "%s: a second load is a no-op", label);
    free(buf);
    md_genome_close(gg);
}

static void path_in(char *out, const char *dir, const char *name) { snprintf(out, 4096, "%.3000s/%s", dir, name); }

/* htslib's own index of a copy, to hold ours against. */
static void reference_index(const char *dir, const char *src, const char *name)
{
    char p[4096];
    path_in(p, dir, name);
    copy_file(src, p);
    CHECK(fai_build3(p, NULL, NULL) == 0, "htslib indexes %s", p);
}

static void check_formats(const genome_t *g)
{
    const char *top = md_test_tmpdir();
    char w[4096], ref[4096], ro[4096];
    path_in(w, top, "writable");
    path_in(ref, top, "htslib_indexed");
    path_in(ro, top, "readonly");
    mkdir(w, 0755);
    mkdir(ref, 0755);
    mkdir(ro, 0755);
    size_t n;
    char *text = fasta_text(g, 60, "\n", &n, 1);
    /* names that do not give the format away: detection is by content */
    char plain[4096], gz[4096], bgz[4096], p2[4096], p3[4096];
    path_in(plain, w, "plain.fa");
    path_in(gz, w, "gzip.txt");
    path_in(bgz, w, "bgzip.fa");
    write_plain(plain, text, n);
    write_gzip(gz, text, n);
    write_bgzip(bgz, text, n);
    path_in(p2, ro, "plain.fa"); copy_file(plain, p2);
    path_in(p2, ro, "gzip.txt"); copy_file(gz, p2);
    path_in(p2, ro, "bgzip.fa"); copy_file(bgz, p2);
    reference_index(ref, plain, "plain.fa");
    reference_index(ref, bgz, "bgzip.fa");

    /* no index: streamed into memory, and indexed beside the file */
    const char *one[1];
    one[0] = plain; check_genome(one, 1, g, "plain, no index", 1);
    one[0] = gz;    check_genome(one, 1, g, "gzip", 1);
    one[0] = bgz;   check_genome(one, 1, g, "bgzip, no index", 1);
    snprintf(p2, sizeof p2, "%.4000s.fai", plain);
    snprintf(p3, sizeof p3, "%.4000s/plain.fa.fai", ref);
    CHECK(exists(p2) && same_file(p2, p3), "our .fai of the plain FASTA equals htslib's");
    snprintf(p2, sizeof p2, "%.4000s.fai", bgz);
    snprintf(p3, sizeof p3, "%.4000s/bgzip.fa.fai", ref);
    CHECK(exists(p2) && same_file(p2, p3), "our .fai of the bgzip FASTA equals htslib's");
    snprintf(p2, sizeof p2, "%.4000s.gzi", bgz);
    snprintf(p3, sizeof p3, "%.4000s/bgzip.fa.gzi", ref);
    CHECK(exists(p2) && same_file(p2, p3), "our .gzi equals htslib's");
    snprintf(p2, sizeof p2, "%.4000s.fai", gz);
    CHECK(!exists(p2), "no .fai for plain gzip, which faidx cannot use");

    /* with our index: served by faidx until loaded */
    one[0] = plain; check_genome(one, 1, g, "plain, our index", 0);
    one[0] = bgz;   check_genome(one, 1, g, "bgzip, our index", 0);
    /* with htslib's index */
    path_in(p2, ref, "plain.fa");
    one[0] = p2; check_genome(one, 1, g, "plain, htslib index", 0);
    path_in(p2, ref, "bgzip.fa");
    one[0] = p2; check_genome(one, 1, g, "bgzip, htslib index", 0);

    /* a read-only folder without an index: streamed into memory, nothing written */
    chmod(ro, 0555);
    int can_write = 0;
    path_in(p2, ro, "probe");
    FILE *probe = fopen(p2, "w");
    if (probe) { can_write = 1; fclose(probe); unlink(p2); }
    pid_t pid = -1;
    if (can_write && geteuid() == 0) {
        /* root ignores modes: run this case as nobody instead */
        chmod(top, 0755);
        chmod(w, 0755);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
            FILE *pr = fopen(p2, "w");
            if (pr) { fclose(pr); _exit(77); }
            can_write = 0;
        }
    }
    if (!can_write) {
        const char *names[] = {"plain.fa", "gzip.txt", "bgzip.fa"};
        for (int k = 0; k < 3; k++) {
            char label[64];
            snprintf(label, sizeof label, "read-only %s", names[k]);
            path_in(p2, ro, names[k]);
            one[0] = p2;
            check_genome(one, 1, g, label, 1);
            snprintf(p3, sizeof p3, "%.4000s.fai", p2);
            CHECK(!exists(p3), "nothing written into the read-only folder (%s)", names[k]);
        }
        if (pid == 0) _exit(md_test_failures ? 1 : 0);
    }
    if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 2;
        if (code == 77) printf("read-only case skipped: cannot drop root privileges\n");
        else CHECK(code == 0, "the read-only case, run as nobody, failed (status %d)", status);
    } else if (pid < 0 && can_write) {
        printf("read-only case skipped: the folder stays writable\n");
    }
    chmod(ro, 0755);

    /* irregular line lengths: readable, but no .fai */
    free(text);
    text = fasta_text(g, 0, "\n", &n, 2);
    path_in(p2, w, "ragged.fa");
    write_plain(p2, text, n);
    one[0] = p2;
    check_genome(one, 1, g, "ragged lines", 1);
    snprintf(p3, sizeof p3, "%.4000s.fai", p2);
    CHECK(!exists(p3), "no .fai for ragged lines");
    free(text);

    /* CRLF line ends: indexed as htslib would, then served by faidx */
    text = fasta_text(g, 70, "\r\n", &n, 3);
    path_in(p2, w, "crlf.fa");
    write_plain(p2, text, n);
    one[0] = p2;
    check_genome(one, 1, g, "CRLF, no index", 1);
    check_genome(one, 1, g, "CRLF, our index", 0);
    path_in(p3, ref, "crlf.fa");
    reference_index(ref, p2, "crlf.fa");
    char f1[4096], f2[4096];
    snprintf(f1, sizeof f1, "%.4000s.fai", p2);
    snprintf(f2, sizeof f2, "%.4000s.fai", p3);
    CHECK(same_file(f1, f2), "our CRLF .fai equals htslib's");
    free(text);
}

/* Layouts faidx cannot serve must not be indexed, and a stale index must
 * not be trusted. */
static void check_layouts(void)
{
    const char *dir = md_test_tmpdir();
    char fa[4096], fai[4096];
    struct { const char *name, *text; } cases[] = {
        {"longer_second.fa", ">a\nACGTA\nACGTACG\nAC\n"},
        {"blank_inside.fa", ">a\nACGTA\n\nACGTA\n"},
        {"space_inside.fa", ">a\nAC GT\nAC GT\nA\n"},
        {"short_then_full.fa", ">a\nACGTA\nAC\nACGTA\n"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        path_in(fa, dir, cases[k].name);
        snprintf(fai, sizeof fai, "%.4000s.fai", fa);
        write_plain(fa, cases[k].text, strlen(cases[k].text));
        const char *paths[] = {fa};
        md_genome_t *g = md_genome_open(paths, 1);
        char want[64], got[64];
        size_t n = 0;
        for (const char *t = strchr(cases[k].text, '\n') + 1; *t; t++)
            if (*t != '\n' && *t != ' ') want[n++] = *t;
        CHECK(g && md_genome_contig(g, 0)->len == (int64_t)n && md_genome_fetch(g, 0, 0, (int64_t)n, got, 1) == 0 &&
              !memcmp(got, want, n), "%s reads back", cases[k].name);
        CHECK(!exists(fai), "%s is not indexed", cases[k].name);
        md_genome_close(g);
    }
    /* a FASTA rewritten after its index was made */
    path_in(fa, dir, "rewritten.fa");
    snprintf(fai, sizeof fai, "%.4000s.fai", fa);
    write_plain(fa, ">a\nAAAA\nCC\n", 11);
    const char *paths[] = {fa};
    md_genome_t *g = md_genome_open(paths, 1);
    md_genome_close(g);
    CHECK(exists(fai), "indexed");
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    utimensat(AT_FDCWD, fai, old, 0);
    write_plain(fa, ">a\nGGGG\nGGGG\nT\n", 15);
    g = md_genome_open(paths, 1);
    char got[16] = {0};
    CHECK(g && md_genome_contig(g, 0)->len == 9 && md_genome_fetch(g, 0, 0, 9, got, 1) == 0 && !strcmp(got, "GGGGGGGGT"),
          "a stale index is not trusted: read '%s'", got);
    md_genome_close(g);
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8) p[i] = (unsigned char)v;
}

/* A .gzi that does not describe its bgzip file must be ignored: the whole
 * file is read into memory instead (and the index rewritten), never handed
 * to htslib, whose seek asserts on an entry that is not a block start or
 * on a missing block, and would otherwise hand out wrong bases. */
static void check_damaged_gzi(const genome_t *g)
{
    const char *top = md_test_tmpdir();
    char dir[4096], bgz[4096], gzi[4096];
    path_in(dir, top, "damaged_gzi");
    mkdir(dir, 0755);
    path_in(bgz, dir, "g.fa");
    snprintf(gzi, sizeof gzi, "%.4000s.gzi", bgz);
    size_t n, gn = 0;
    char *text = fasta_text(g, 60, "\n", &n, 1);
    write_bgzip(bgz, text, n);
    free(text);
    const char *paths[] = {bgz};
    md_genome_close(md_genome_open(paths, 1));   /* writes the .fai and the .gzi */
    unsigned char *good = slurp(gzi, &gn);
    /* 8 bytes of count, then (compressed, uncompressed) offset pairs */
    CHECK(good && gn >= 8 + 3 * 16 && get_le64(good) == (gn - 8) / 16, "a .gzi of several entries (%zu bytes)", gn);
    if (!good || gn < 8 + 3 * 16) {
        free(good);
        return;
    }
    check_genome(paths, 1, g, "bgzip, its .gzi intact", 0);
    static const char *const what[] = {"an entry left out", "an uncompressed offset one too high",
                                       "an entry one byte past a block start", "a count above its entries",
                                       "its last entry cut short"};
    unsigned char *b = malloc(gn);
    for (int k = 0; k < 5; k++) {
        memcpy(b, good, gn);
        size_t bn = gn;
        unsigned char *e1 = b + 8 + 16;   /* the second entry */
        if (k == 0) {
            memmove(e1, e1 + 16, gn - (size_t)(e1 + 16 - b));
            bn -= 16;
            put_le64(b, get_le64(b) - 1);
        } else if (k == 1) {
            put_le64(e1 + 8, get_le64(e1 + 8) + 1);
        } else if (k == 2) {
            put_le64(e1, get_le64(e1) + 1);
        } else if (k == 3) {
            put_le64(b, get_le64(b) + 1);
        } else {
            bn -= 8;
        }
        write_plain(gzi, (const char *)b, bn);
        char label[128];
        snprintf(label, sizeof label, "bgzip, its .gzi with %s", what[k]);
        check_genome(paths, 1, g, label, 1);
    }
    free(b);
    free(good);
}

static void check_several_files(const genome_t *g)
{
    const char *dir = md_test_tmpdir();
    char tb[4096], fa[4096], fa2[4096];
    path_in(tb, dir, "first_half.2bit");
    path_in(fa, dir, "second_half.fa");
    path_in(fa2, dir, "dup.fa");
    /* contigs 0..3 as 2bit, 4..7 as FASTA: one genome in order */
    CHECK(md_twobit_write(tb, 4, (const char *const *)g->names, (const char *const *)g->seqs, g->lens) == 0, "2bit");
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    for (int i = 4; i < N_CONTIGS; i++) {
        if (n + g->lens[i] + 64 > cap) { cap = (n + g->lens[i] + 64) * 2; t = realloc(t, cap); }
        n += (size_t)sprintf(t + n, ">%s\n", g->names[i]);
        memcpy(t + n, g->seqs[i], g->lens[i]);
        n += g->lens[i];
        t[n++] = '\n';
    }
    write_plain(fa, t, n);
    free(t);
    const char *paths[] = {tb, fa};
    check_genome(paths, 2, g, "2bit + FASTA", -1);
    md_genome_t *gg = md_genome_open(paths, 2);
    CHECK(gg && md_genome_contig(gg, 3)->file_index == 0 && md_genome_contig(gg, 4)->file_index == 1 &&
          !strcmp(md_genome_path(gg, 1), fa), "file indices and paths");
    md_genome_close(gg);
    /* a name in two files is an error */
    write_plain(fa2, ">chrC_2\nACGT\n", 13);
    const char *dup[] = {tb, fa2};
    CHECK(md_genome_open(dup, 2) == NULL, "a contig name in two files is refused");
}

/* 64-bit lengths through the .fai path: faidx_seq_len would truncate them.
 * The FASTA is a sparse file as long as the 3 Gbp its .fai claims (a claim
 * past the file's end is refused), holding ">big\nACGT\n" then zeros. */
static void check_long_index(void)
{
    const char *dir = md_test_tmpdir();
    char fa[4096], fai[4096];
    path_in(fa, dir, "long.fa");
    snprintf(fai, sizeof fai, "%.4000s.fai", fa);
    write_plain(fa, ">big\nACGT\n", 10);
    CHECK(truncate(fa, 5 + 3000000000LL / 4 * 5) == 0, "a sparse 3.75 GB file");
    write_plain(fai, "big\t3000000000\t5\t4\t5\n", 21);
    const char *paths[] = {fa};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g && md_genome_contig(g, 0)->len == 3000000000LL, "a 3 Gbp .fai length survives");
    char buf[16];
    CHECK(g && md_genome_fetch(g, 0, 2999999990LL, 3000000000LL, buf, 1) < 0, "fetching past the real data fails cleanly");
    CHECK(g && md_genome_load(g) < 0, "load notices the index does not match the file");
    md_genome_close(g);
}

static void check_regions(void)
{
    const char *dir = md_test_tmpdir();
    char fa[4096];
    path_in(fa, dir, "regions.fa");
    write_plain(fa, ">chr1\nACGTACGTAC\n>HLA:01\nGGGCCC\n", 32);
    const char *paths[] = {fa};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g != NULL, "regions genome");
    if (!g) return;
    int c;
    int64_t s, e;
    struct { const char *r; int c; int64_t s, e; } good[] = {
        {"chr1", 0, 0, 10}, {"chr1:1-10", 0, 0, 10}, {"chr1:3-4", 0, 2, 4}, {"chr1:1,0-1,0", 0, 9, 10},
        {"chr1:5", 0, 4, 10}, {"chr1:5-", 0, 4, 10}, {"HLA:01", 1, 0, 6}, {"HLA:01:2-3", 1, 1, 3}};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        int r = md_genome_parse_region(g, good[k].r, &c, &s, &e);
        CHECK(r == 0 && c == good[k].c && s == good[k].s && e == good[k].e, "region %s -> %d [%lld,%lld)", good[k].r, c,
              (long long)s, (long long)e);
    }
    const char *bad[] = {"", "chr2", "chr2:1-5", "chr1:0-5", "chr1:5-4", "chr1:1-11", "chr1:11", "chr1:x-5", "chr1:",
                         "chr1:1-5x", "chr1:-5", "chr1:1--5"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        CHECK(md_genome_parse_region(g, bad[k], &c, &s, &e) < 0, "region '%s' is refused", bad[k]);
    char buf[16];
    CHECK(md_genome_fetch(g, 0, 5, 11, buf, 1) < 0, "fetch past the end is refused");
    CHECK(md_genome_fetch(g, 0, -1, 3, buf, 1) < 0, "a negative start is refused");
    md_genome_close(g);
}

static void check_bad_inputs(void)
{
    const char *dir = md_test_tmpdir();
    struct { const char *name, *text; } cases[] = {
        {"bad_empty.fa", ""},
        {"bad_header_only.fa", ">chr1\n"},
        {"header_no_newline.fa", ">chr1"},
        {"empty_record.fa", ">a\n>b\nACGT\n"},
        {"seq_first.fa", "ACGT\n>chr1\nACGT\n"},
        {"bad_dup.fa", ">a\nACGT\n>a\nACGT\n"},
        {"digits.fa", ">a\nACGT12\n"},
        {"binary.fa", "\x7f" "ELF\x01\x02\x00\x00junk"},
        {"no_name.fa", ">\nACGT\n"},
        {"blank_only.fa", "\n\n  \n"},
    };
    char p[4096];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        path_in(p, dir, cases[k].name);
        write_plain(p, cases[k].text, k == 7 ? 12 : strlen(cases[k].text));
        const char *paths[] = {p};
        CHECK(md_genome_open(paths, 1) == NULL, "%s is refused", cases[k].name);
        char fai[4096];
        snprintf(fai, sizeof fai, "%.4000s.fai", p);
        CHECK(!exists(fai), "no index is written for %s", cases[k].name);
    }
    path_in(p, dir, "missing.fa");
    const char *missing[] = {p};
    CHECK(md_genome_open(missing, 1) == NULL, "a missing file is refused");
    const char *folder[] = {dir};
    CHECK(md_genome_open(folder, 1) == NULL, "a folder is refused");

    /* truncated gzip and bgzip, cut mid-stream and (bgzip) at a block boundary */
    static char big[200000];
    size_t n = (size_t)sprintf(big, ">t\n");
    md_rng_t r;
    md_rng_seed(&r, 5);
    while (n < sizeof big - 2) big[n++] = "ACGT\n"[md_rng_below(&r, 5)];
    char gz[4096], bgz[4096], cut[4096];
    path_in(gz, dir, "whole.gz");
    path_in(bgz, dir, "whole.bgz");
    path_in(cut, dir, "cut.gz");
    write_gzip(gz, big, n);
    write_bgzip(bgz, big, n);
    const char *paths[] = {cut};
    size_t m;
    unsigned char *b = slurp(gz, &m);
    write_plain(cut, (const char *)b, m / 2);
    CHECK(md_genome_open(paths, 1) == NULL, "a gzip file cut in half is refused");
    write_plain(cut, (const char *)b, m - 4);
    CHECK(md_genome_open(paths, 1) == NULL, "a gzip file missing its trailer is refused");
    free(b);
    b = slurp(bgz, &m);
    write_plain(cut, (const char *)b, m / 2);
    CHECK(md_genome_open(paths, 1) == NULL, "a bgzip file cut in half is refused");
    write_plain(cut, (const char *)b, m - 28);   /* the 28-byte end-of-file block */
    CHECK(md_genome_open(paths, 1) == NULL, "a bgzip file without its end-of-file block is refused");
    write_plain(cut, (const char *)b, m);
    md_genome_t *whole = md_genome_open(paths, 1);
    CHECK(whole != NULL, "the same bgzip file, whole, opens");
    md_genome_close(whole);
    free(b);
}

/* The shared hg38 chunk: bgzip with .fai/.gzi in a read-only folder. */
static void check_hg38(const char *shared)
{
    char path[4096];
    snprintf(path, sizeof path, "%.3000s/human/hg38_chr2_1-2333275.fa.gz", shared);
    if (access(path, R_OK)) { printf("%s absent; skipped\n", path); return; }
    const char *paths[] = {path};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g && md_genome_n_contigs(g) == 1, "hg38 chunk opens");
    if (!g) return;
    const md_contig_t *c = md_genome_contig(g, 0);
    CHECK(!strcmp(c->name, "chr2") && c->len == 2333275, "chr2 of 2,333,275 bp (got %s, %lld)", c->name, (long long)c->len);
    CHECK(c->packed == NULL, "served through its index before load");
    char head[16] = {0};
    CHECK(md_genome_fetch(g, 0, 9995, 10005, head, 1) == 0 && !memcmp(head, "NNNNN", 5) && head[5] != 'N',
          "the telomere gap ends at 10,000 (fetched through faidx: %.10s)", head);
    CHECK(md_genome_load(g) == 0, "hg38 chunk loads");
    CHECK(c->n_n_runs >= 1 && c->n_runs[0].start == 0 && c->n_runs[0].end == 10000, "first N run [0, 10000)");
    CHECK(md_genome_count_n(g, 0, 0, 10000) == 10000 && md_genome_count_n(g, 0, 9990, 10010) == 10, "count_n at the gap");
    int64_t masked = 0;
    for (int64_t k = 0; k < c->n_mask_runs; k++) masked += c->mask_runs[k].end - c->mask_runs[k].start;
    double lower = (double)masked / (double)c->len;
    uint8_t *tok = malloc(c->len);
    md_genome_tokens(g, 0, 0, c->len, tok);
    int64_t counts[16] = {0};
    for (int64_t k = 0; k < c->len; k++) counts[tok[k]]++;
    free(tok);
    int64_t acgt = counts[MD_TOK_A] + counts[MD_TOK_C] + counts[MD_TOK_G] + counts[MD_TOK_T];
    double gc = (double)(counts[MD_TOK_C] + counts[MD_TOK_G]) / (double)acgt;
    printf("hg38 chunk: %.3f%% lowercase, GC %.3f%% of ACGT, %lld N\n", 100 * lower, 100 * gc, (long long)counts[MD_TOK_N]);
    CHECK(counts[MD_TOK_N] == md_genome_count_n(g, 0, 0, c->len), "tokens and count_n agree on N");
    CHECK(lower > 0.3555 && lower < 0.3565, "lowercase fraction %.4f, PROVENANCE says 35.6%%", lower);
    CHECK(gc > 0.4490 && gc < 0.4500, "GC %.4f, PROVENANCE says 44.95%%", gc);
    md_genome_close(g);
}

int main(void)
{
    md_verbose = 0;
    genome_t g;
    make_genome(&g, 2024);
    check_formats(&g);
    check_layouts();
    check_damaged_gzi(&g);
    check_several_files(&g);
    check_long_index();
    check_regions();
    check_bad_inputs();
    free_genome(&g);
    if (md_test_failures) return md_test_done();
    check_hg38(md_test_shared());
    return md_test_done();
}
