/* The genome facade: format detection, the contig table, fetch, load, and
 * the loaded genome's hot paths (tokens, N counts). See genome.h. */
#include "seq/genome.h"

#include <errno.h>
#include <htslib/faidx.h>
#include <htslib/hts.h>
#include <htslib/khash.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seq/genome_internal.h"
#include "seq/limits.h"
#include "seq/tokenizer.h"
#include "seq/twobit.h"
#include "util/log.h"
#include "util/xalloc.h"

KHASH_MAP_INIT_STR(contig_index, int)

enum { FILE_TWOBIT, FILE_FAIDX, FILE_MEMORY };

typedef struct genome_file {
    char *path;
    int kind;
    int compression;          /* FASTA only */
    md_twobit_t *tb;
    faidx_t *fai;
    md_fai_rec_t *fai_recs;   /* FILE_FAIDX: the .fai's line layout, per contig */
    int first, n;             /* its contigs: contigs[first, first + n) */
} genome_file_t;

struct md_genome {
    genome_file_t *files;
    int n_files;
    md_contig_t *contigs;
    int n_contigs;
    size_t contigs_cap;
    khash_t(contig_index) *index;
    int64_t total_len;
};

/* faidx fetches come in pieces of this many bases, so that a whole
 * chromosome never needs a second, ASCII copy. */
#define FAIDX_CHUNK ((int64_t)1 << 24)

/* ---- the contig table ---- */

static void contig_finish_load(md_contig_t *c)
{
    free(c->n_cum);
    c->n_cum = md_malloc((size_t)(c->n_n_runs + 1) * sizeof *c->n_cum);
    c->n_cum[0] = 0;
    for (int64_t k = 0; k < c->n_n_runs; k++) c->n_cum[k + 1] = c->n_cum[k] + c->n_runs[k].end - c->n_runs[k].start;
}

/* Takes ownership of c's heap parts, even on failure. */
static int add_contig(md_genome_t *g, int file_index, md_contig_t *c)
{
    if (g->n_contigs == INT32_MAX) {
        md_error("%s: more than %d contigs", g->files[file_index].path, INT32_MAX);
        md_contig_free(c);
        return -1;
    }
    int absent;
    khint_t k = kh_put(contig_index, g->index, c->name, &absent);
    if (!absent) {
        int other = g->contigs[kh_val(g->index, k)].file_index;
        if (other == file_index)
            md_error("%s: contig name '%s' appears twice", g->files[file_index].path, c->name);
        else
            md_error("%s: contig name '%s' is also in %s; contig names must be unique across the genome's files",
                     g->files[file_index].path, c->name, g->files[other].path);
        md_contig_free(c);
        return -1;
    }
    MD_GROW(g->contigs, g->contigs_cap, (size_t)g->n_contigs + 1);
    c->file_index = file_index;
    if (c->packed && !c->n_cum) contig_finish_load(c);
    g->contigs[g->n_contigs] = *c;
    kh_val(g->index, k) = g->n_contigs;
    g->n_contigs++;
    g->files[file_index].n++;
    g->total_len += c->len;
    memset(c, 0, sizeof *c);
    return 0;
}

/* ---- format detection ---- */

enum { FMT_TWOBIT, FMT_FASTA };

static int detect_format(const char *path, int *fmt, int *compression)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        md_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        md_error("%s: is a directory, not a genome file", path);
        return -1;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        md_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t m[16];
    size_t n = fread(m, 1, sizeof m, fp);
    int read_failed = ferror(fp);
    fclose(fp);
    if (read_failed) {
        md_error("%s: read error: %s", path, strerror(errno));
        return -1;
    }
    if (n == 0) {
        md_error("%s: empty file", path);
        return -1;
    }
    static const uint8_t tb_le[4] = {0x43, 0x27, 0x41, 0x1A}, tb_be[4] = {0x1A, 0x41, 0x27, 0x43};
    size_t k = n < 4 ? n : 4;
    if (!memcmp(m, tb_le, k) || !memcmp(m, tb_be, k)) {
        if (n < 4) {
            md_error("%s: truncated 2bit file: %zu bytes, shorter than the 16-byte header", path, n);
            return -1;
        }
        *fmt = FMT_TWOBIT;
        return 0;
    }
    *fmt = FMT_FASTA;
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
        /* BGZF: gzip with the FEXTRA flag and a 'BC' subfield first */
        *compression = n >= 14 && (m[3] & 4) && m[12] == 'B' && m[13] == 'C' ? MD_FASTA_BGZF : MD_FASTA_GZIP;
        return 0;
    }
    const char *other = NULL;
    if (n >= 3 && !memcmp(m, "BZh", 3)) other = "bzip2";
    else if (n >= 6 && !memcmp(m, "\xFD" "7zXZ\0", 6)) other = "xz";
    else if (n >= 4 && !memcmp(m, "\x28\xB5\x2F\xFD", 4)) other = "zstd";
    if (other) {
        md_error("%s: %s-compressed, which is not supported; decompress it or recompress it with bgzip", path, other);
        return -1;
    }
    *compression = MD_FASTA_PLAIN;
    return 0;
}

/* ---- FASTA through faidx or in memory ---- */

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The FASTA through its index, or 1 when the index is absent or unusable. */
static int open_faidx(md_genome_t *g, int fi)
{
    genome_file_t *f = &g->files[fi];
    struct stat st, ist;
    if (stat(f->path, &st) != 0 || !S_ISREG(st.st_mode)) return 1;
    size_t n = strlen(f->path) + 8;
    char *fai_path = md_malloc(n), *gzi_path = md_malloc(n);
    snprintf(fai_path, n, "%s.fai", f->path);
    snprintf(gzi_path, n, "%s.gzi", f->path);
    int ret = 1;
    md_contig_t *cs = NULL;
    int n_cs = 0;
    if (!file_exists(fai_path) || (f->compression == MD_FASTA_BGZF && !file_exists(gzi_path))) goto out;
    char why[256];
    uint64_t max_bytes = (uint64_t)st.st_size;
    if ((f->compression == MD_FASTA_BGZF && md_gzi_check(gzi_path, f->path, max_bytes, &max_bytes, why, sizeof why) < 0) ||
        md_fai_read(fai_path, max_bytes, &cs, &f->fai_recs, &n_cs, why, sizeof why) < 0) {
        md_warn("%s: ignoring its index %s (%s); reading the whole file instead", f->path, fai_path, why);
        goto out;
    }
    /* An index older than its file may describe an earlier version, and
     * faidx would then hand out wrong bases without a word: re-read the file
     * (which also rewrites the index where it can) instead. */
    if (stat(fai_path, &ist) == 0 &&
        (st.st_mtim.tv_sec > ist.st_mtim.tv_sec ||
         (st.st_mtim.tv_sec == ist.st_mtim.tv_sec && st.st_mtim.tv_nsec > ist.st_mtim.tv_nsec))) {
        md_warn("%s: its index %s is older than the file; reading the whole file instead", f->path, fai_path);
        goto out;
    }
    f->fai = fai_load3(f->path, fai_path, gzi_path, 0);
    if (!f->fai || faidx_nseq(f->fai) != n_cs) {
        md_warn("%s: htslib cannot use its index %s; reading the whole file instead", f->path, fai_path);
        if (f->fai) fai_destroy(f->fai);
        f->fai = NULL;
        goto out;
    }
    f->kind = FILE_FAIDX;
    ret = 0;
    for (int i = 0; i < n_cs; i++) {
        if (ret == 0 && add_contig(g, fi, &cs[i]) < 0) ret = -1;
        else if (ret < 0) md_contig_free(&cs[i]);
    }
    n_cs = 0;
out:
    if (f->kind != FILE_FAIDX) {
        free(f->fai_recs);
        f->fai_recs = NULL;
    }
    for (int i = 0; i < n_cs; i++) md_contig_free(&cs[i]);
    free(cs);
    free(fai_path);
    free(gzi_path);
    return ret;
}

/* Moves a finished scan's contigs into the genome. */
static int take_scan(md_genome_t *g, int fi, md_fasta_scan_t *s)
{
    int ret = 0;
    for (int i = 0; i < s->n; i++) {
        if (ret == 0 && add_contig(g, fi, &s->contigs[i]) < 0) ret = -1;
        else if (ret < 0) md_contig_free(&s->contigs[i]);
    }
    s->n = 0;
    return ret;
}

static int open_fasta(md_genome_t *g, int fi)
{
    genome_file_t *f = &g->files[fi];
    if (f->compression != MD_FASTA_GZIP) {
        int r = open_faidx(g, fi);
        if (r <= 0) return r;
    }
    md_fasta_scan_t s;
    if (md_fasta_scan(f->path, f->compression, &s) < 0) return -1;
    f->kind = FILE_MEMORY;
    struct stat st;
    if (f->compression != MD_FASTA_GZIP && stat(f->path, &st) == 0 && S_ISREG(st.st_mode)) {
        if (s.indexable) md_fasta_write_index(&s, f->path);
        else md_info("%s: lines of unequal length, so no .fai for random access; kept in memory", f->path);
    }
    int ret = take_scan(g, fi, &s);
    md_fasta_scan_free(&s);
    return ret;
}

static int open_twobit(md_genome_t *g, int fi)
{
    genome_file_t *f = &g->files[fi];
    f->kind = FILE_TWOBIT;
    if (!(f->tb = md_twobit_open(f->path))) return -1;
    int n = md_twobit_n_seqs(f->tb);
    if (n == 0) {
        md_error("%s: no sequences", f->path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        md_contig_t c;
        memset(&c, 0, sizeof c);
        if ((c.len = md_twobit_length(f->tb, i)) < 0) return -1;
        c.name = md_strdup(md_twobit_name(f->tb, i));
        if (add_contig(g, fi, &c) < 0) return -1;
    }
    return 0;
}

md_genome_t *md_genome_open(const char *const *paths, int n_paths)
{
    /* htslib's own messages would double ours; each failure gets one line */
    hts_set_log_level(HTS_LOG_OFF);
    if (n_paths <= 0) {
        md_error("no genome files given");
        return NULL;
    }
    md_genome_t *g = md_calloc(1, sizeof *g);
    g->files = md_calloc((size_t)n_paths, sizeof *g->files);
    g->index = kh_init(contig_index);
    for (int i = 0; i < n_paths; i++) {
        genome_file_t *f = &g->files[i];
        f->path = md_strdup(paths[i]);
        f->first = g->n_contigs;
        g->n_files = i + 1;
        int fmt;
        if (detect_format(f->path, &fmt, &f->compression) < 0) goto fail;
        if ((fmt == FMT_TWOBIT ? open_twobit(g, i) : open_fasta(g, i)) < 0) goto fail;
    }
    return g;
fail:
    md_genome_close(g);
    return NULL;
}

void md_genome_close(md_genome_t *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_contigs; i++) md_contig_free(&g->contigs[i]);
    free(g->contigs);
    for (int i = 0; i < g->n_files; i++) {
        free(g->files[i].path);
        if (g->files[i].tb) md_twobit_close(g->files[i].tb);
        if (g->files[i].fai) fai_destroy(g->files[i].fai);
        free(g->files[i].fai_recs);
    }
    free(g->files);
    kh_destroy(contig_index, g->index);
    free(g);
}

/* ---- load ---- */

static int load_faidx_file(md_genome_t *g, genome_file_t *f)
{
    md_fasta_scan_t s;
    if (md_fasta_scan(f->path, f->compression, &s) < 0) return -1;
    int ret = 0;
    if (s.n != f->n) {
        md_error("%s: holds %d records but its index %s.fai lists %d; delete the index to rebuild it", f->path, s.n,
                 f->path, f->n);
        ret = -1;
    }
    for (int i = 0; ret == 0 && i < s.n; i++) {
        const md_contig_t *want = &g->contigs[f->first + i], *got = &s.contigs[i];
        if (strcmp(want->name, got->name) || want->len != got->len) {
            md_error("%s: record %d is '%s' of %lld bp, but its index %s.fai says '%s' of %lld bp; delete the "
                     "index to rebuild it", f->path, i + 1, got->name, (long long)got->len, f->path, want->name,
                     (long long)want->len);
            ret = -1;
        }
        /* The same names and lengths in another line layout: faidx would
         * have fetched bases from the wrong places. */
        const md_fai_rec_t *idx = &f->fai_recs[i], *file = &s.fai[i];
        if (ret == 0 && (idx->seq_offset != file->seq_offset || idx->line_bases != file->line_bases ||
                         idx->line_width != file->line_width)) {
            md_error("%s: record '%s' starts at byte %llu with lines of %lld bases, but its index %s.fai says byte "
                     "%llu and %lld; delete the index to rebuild it", f->path, got->name,
                     (unsigned long long)file->seq_offset, (long long)file->line_bases, f->path,
                     (unsigned long long)idx->seq_offset, (long long)idx->line_bases);
            ret = -1;
        }
    }
    for (int i = 0; ret == 0 && i < s.n; i++) {
        md_contig_t *c = &g->contigs[f->first + i], *src = &s.contigs[i];
        if (c->packed) continue;
        c->packed = src->packed;
        c->n_runs = src->n_runs;
        c->n_n_runs = src->n_n_runs;
        c->mask_runs = src->mask_runs;
        c->n_mask_runs = src->n_mask_runs;
        src->packed = NULL;
        src->n_runs = src->mask_runs = NULL;
        contig_finish_load(c);
    }
    md_fasta_scan_free(&s);
    return ret;
}

int md_genome_load(md_genome_t *g)
{
    for (int fi = 0; fi < g->n_files; fi++) {
        genome_file_t *f = &g->files[fi];
        int missing = 0;
        for (int i = 0; i < f->n; i++) missing += g->contigs[f->first + i].packed == NULL;
        if (!missing) continue;
        if (f->kind == FILE_FAIDX) {
            if (load_faidx_file(g, f) < 0) return -1;
            continue;
        }
        for (int i = 0; i < f->n; i++) {
            md_contig_t *c = &g->contigs[f->first + i];
            if (c->packed) continue;
            if (md_twobit_load(f->tb, i, &c->packed, &c->n_runs, &c->n_n_runs, &c->mask_runs, &c->n_mask_runs) < 0)
                return -1;
            contig_finish_load(c);
        }
    }
    return 0;
}

/* ---- accessors ---- */

int md_genome_n_contigs(const md_genome_t *g) { return g->n_contigs; }
const md_contig_t *md_genome_contig(const md_genome_t *g, int i) { return &g->contigs[i]; }
int64_t md_genome_total_len(const md_genome_t *g) { return g->total_len; }
const char *md_genome_path(const md_genome_t *g, int file_index) { return g->files[file_index].path; }

int md_genome_find(const md_genome_t *g, const char *name)
{
    khint_t k = kh_get(contig_index, g->index, name);
    return k == kh_end(g->index) ? -1 : kh_val(g->index, k);
}

/* ---- fetch ---- */

int64_t md_runs_first_ending_after(const md_run_t *runs, int64_t n, int64_t pos)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (runs[mid].end <= pos) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void fetch_loaded(const md_contig_t *c, int64_t start, int64_t end, char *out, int keep_case)
{
    md_twobit_unpack(c->packed, start, end, out);
    for (int64_t k = md_runs_first_ending_after(c->n_runs, c->n_n_runs, start); k < c->n_n_runs && c->n_runs[k].start < end; k++) {
        int64_t a = c->n_runs[k].start > start ? c->n_runs[k].start : start;
        int64_t b = c->n_runs[k].end < end ? c->n_runs[k].end : end;
        memset(out + (a - start), 'N', (size_t)(b - a));
    }
    if (!keep_case) return;
    for (int64_t k = md_runs_first_ending_after(c->mask_runs, c->n_mask_runs, start);
         k < c->n_mask_runs && c->mask_runs[k].start < end; k++) {
        int64_t a = c->mask_runs[k].start > start ? c->mask_runs[k].start : start;
        int64_t b = c->mask_runs[k].end < end ? c->mask_runs[k].end : end;
        for (int64_t x = a; x < b; x++) out[x - start] |= 0x20;   /* ACGTN -> acgtn */
    }
}

/* faidx hands back the file's bytes; these map them as a load would. */
static char norm_case[256], norm_upper[256];
static pthread_once_t norm_once = PTHREAD_ONCE_INIT;

static void norm_init(void)
{
    for (int c = 0; c < 256; c++) {
        norm_upper[c] = 'N';
        norm_case[c] = c >= 'a' && c <= 'z' ? 'n' : 'N';
    }
    static const char bases[] = "ACGT";
    for (int k = 0; k < 4; k++) {
        unsigned char u = (unsigned char)bases[k], l = (unsigned char)(bases[k] + 32);
        norm_upper[u] = norm_upper[l] = (char)u;
        norm_case[u] = (char)u;
        norm_case[l] = (char)l;
    }
}

static int fetch_faidx(genome_file_t *f, const md_contig_t *c, int64_t start, int64_t end, char *out, int keep_case)
{
    pthread_once(&norm_once, norm_init);
    const char *norm = keep_case ? norm_case : norm_upper;
    for (int64_t p = start; p < end;) {
        int64_t q = end - p > FAIDX_CHUNK ? p + FAIDX_CHUNK : end;
        hts_pos_t got = 0;
        /* the 64-bit fetch; its end is inclusive */
        char *seq = faidx_fetch_seq64(f->fai, c->name, p, q - 1, &got);
        if (!seq || got != q - p) {
            md_error("%s: cannot read %s:%lld-%lld: the file is truncated or has changed since its index %s.fai "
                     "was built", f->path, c->name, (long long)p + 1, (long long)q, f->path);
            free(seq);
            return -1;
        }
        for (int64_t i = 0; i < got; i++) out[p - start + i] = norm[(unsigned char)seq[i]];
        free(seq);
        p = q;
    }
    return 0;
}

int md_genome_fetch(md_genome_t *g, int contig, int64_t start, int64_t end, char *out, int keep_case)
{
    if (contig < 0 || contig >= g->n_contigs) {
        md_error("contig index %d out of range (the genome has %d)", contig, g->n_contigs);
        return -1;
    }
    const md_contig_t *c = &g->contigs[contig];
    genome_file_t *f = &g->files[c->file_index];
    if (start < 0 || end < start || end > c->len) {
        md_error("%s: range [%lld, %lld) lies outside contig '%s' (length %lld)", f->path, (long long)start,
                 (long long)end, c->name, (long long)c->len);
        return -1;
    }
    if (start == end) return 0;
    if (c->packed) {
        fetch_loaded(c, start, end, out, keep_case);
        return 0;
    }
    if (f->kind == FILE_TWOBIT) return md_twobit_fetch(f->tb, contig - f->first, start, end, out, keep_case);
    return fetch_faidx(f, c, start, end, out, keep_case);
}

/* ---- the loaded genome's hot paths ---- */

#define TOK_OF_CODE(c) ((c) == 0 ? MD_TOK_T : (c) == 1 ? MD_TOK_C : (c) == 2 ? MD_TOK_A : MD_TOK_G)
#define TOK4(b) {TOK_OF_CODE(((b) >> 6) & 3), TOK_OF_CODE(((b) >> 4) & 3), TOK_OF_CODE(((b) >> 2) & 3), TOK_OF_CODE((b) & 3)}
#define TOK4_R4(b) TOK4(b), TOK4((b) + 1), TOK4((b) + 2), TOK4((b) + 3)
#define TOK4_R16(b) TOK4_R4(b), TOK4_R4((b) + 4), TOK4_R4((b) + 8), TOK4_R4((b) + 12)
#define TOK4_R64(b) TOK4_R16(b), TOK4_R16((b) + 16), TOK4_R16((b) + 32), TOK4_R16((b) + 48)
/* The four tokens of each packed byte, first base first. */
static const uint8_t tok4[256][4] = {TOK4_R64(0), TOK4_R64(64), TOK4_R64(128), TOK4_R64(192)};

void md_genome_tokens(const md_genome_t *g, int contig, int64_t start, int64_t end, uint8_t *out)
{
    const md_contig_t *c = &g->contigs[contig];
    const uint8_t *packed = c->packed;
    uint8_t *o = out;
    int64_t p = start;
    for (; p < end && (p & 3); p++) *o++ = tok4[packed[p >> 2]][p & 3];
    const uint8_t *b = packed + (p >> 2);
    int64_t n_full = (end - p) >> 2;
    for (int64_t k = 0; k < n_full; k++) memcpy(o + 4 * k, tok4[b[k]], 4);
    o += 4 * n_full;
    p += 4 * n_full;
    for (; p < end; p++) *o++ = tok4[packed[p >> 2]][p & 3];
    for (int64_t k = md_runs_first_ending_after(c->n_runs, c->n_n_runs, start); k < c->n_n_runs && c->n_runs[k].start < end; k++) {
        int64_t a = c->n_runs[k].start > start ? c->n_runs[k].start : start;
        int64_t e = c->n_runs[k].end < end ? c->n_runs[k].end : end;
        memset(out + (a - start), MD_TOK_N, (size_t)(e - a));
    }
}

int64_t md_genome_count_n(const md_genome_t *g, int contig, int64_t start, int64_t end)
{
    const md_contig_t *c = &g->contigs[contig];
    if (end <= start) return 0;
    int64_t i = md_runs_first_ending_after(c->n_runs, c->n_n_runs, start);   /* first run ending after start */
    int64_t j = md_runs_first_ending_after(c->n_runs, c->n_n_runs, end);     /* first run ending after end */
    /* runs i .. j-1 end inside (start, end]; run j may begin before end */
    int64_t total = c->n_cum[j] - c->n_cum[i];
    if (i < j && c->n_runs[i].start < start) total -= start - c->n_runs[i].start;
    if (j < c->n_n_runs && c->n_runs[j].start < end) {
        int64_t a = c->n_runs[j].start > start ? c->n_runs[j].start : start;
        total += end - a;
    }
    return total;
}

/* ---- regions ---- */

/* A positive decimal number, commas allowed between digits. */
static int parse_pos(const char *s, const char *e, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;
    for (const char *p = s; p < e; p++) {
        if (*p == ',' && digits) continue;
        if (*p < '0' || *p > '9') return -1;
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*p - '0');
        digits++;
    }
    if (!digits) return -1;
    *out = v;
    return 0;
}

int md_genome_parse_region(const md_genome_t *g, const char *region, int *contig, int64_t *start, int64_t *end)
{
    if (!region || !*region) {
        md_error("empty region");
        return -1;
    }
    int ci = md_genome_find(g, region);
    if (ci >= 0) {
        *contig = ci;
        *start = 0;
        *end = g->contigs[ci].len;
        return 0;
    }
    const char *colon = strrchr(region, ':');
    if (!colon) {
        md_error("region '%s': no contig of that name in the genome", region);
        return -1;
    }
    size_t name_len = (size_t)(colon - region);
    char *name = md_malloc(name_len + 1);
    memcpy(name, region, name_len);
    name[name_len] = 0;
    ci = md_genome_find(g, name);
    if (ci < 0) {
        md_error("region '%s': no contig '%s' in the genome", region, name);
        free(name);
        return -1;
    }
    free(name);
    const md_contig_t *c = &g->contigs[ci];
    const char *coords = colon + 1, *dash = strchr(coords, '-');
    const char *coords_end = coords + strlen(coords);
    int64_t s1, e1 = c->len;
    if (parse_pos(coords, dash ? dash : coords_end, &s1) < 0 ||
        (dash && dash + 1 < coords_end && parse_pos(dash + 1, coords_end, &e1) < 0)) {
        md_error("region '%s': malformed; expected CONTIG, CONTIG:START-END or CONTIG:START (1-based, inclusive)",
                 region);
        return -1;
    }
    if (s1 < 1) {
        md_error("region '%s': positions are 1-based, so start must be at least 1", region);
        return -1;
    }
    if (s1 > c->len || e1 > c->len) {
        md_error("region '%s' goes beyond the end of contig '%s' (length %lld)", region, c->name, (long long)c->len);
        return -1;
    }
    if (e1 < s1) {
        md_error("region '%s': end is before start", region);
        return -1;
    }
    *contig = ci;
    *start = s1 - 1;
    *end = e1;
    return 0;
}
