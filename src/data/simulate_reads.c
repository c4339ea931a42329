/* Reads from any genome, with their truth in their names. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/simulate.h"
#include "data/simulate_impl.h"
#include "seq/genome.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/xalloc.h"

void md_readsim_opts_init(md_readsim_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->n_reads = 1000;
    o->len_min = o->len_max = 150;
    o->len_mean = 150;
    o->fastq = 1;
}

int md_readsim_parse_length(const char *opt_name, const char *s, md_readsim_opts_t *o)
{
    const int64_t max = 1000000000;
    char *copy = md_strdup(s), *sep;
    int64_t a, b;
    int ret = -1;
    if ((sep = strchr(copy, ',')) != NULL) {
        *sep = 0;
        if (md_parse_i64(opt_name, copy, 1, max, 1, &a) < 0 || md_parse_i64(opt_name, sep + 1, 0, max, 1, &b) < 0)
            goto out;
        o->len_mean = (double)a;
        o->len_sd = (double)b;
        o->len_min = o->len_max = a;
    } else if ((sep = strchr(copy + 1, '-')) != NULL) {
        *sep = 0;
        if (md_parse_i64(opt_name, copy, 1, max, 1, &a) < 0 || md_parse_i64(opt_name, sep + 1, 1, max, 1, &b) < 0)
            goto out;
        if (a > b) {
            md_error("option %s: minimum %" PRId64 " exceeds maximum %" PRId64 " in '%s'", opt_name, a, b, s);
            goto out;
        }
        o->len_min = a;
        o->len_max = b;
        o->len_mean = 0.5 * (double)(a + b);
        o->len_sd = 0;
    } else {
        if (md_parse_i64(opt_name, copy, 1, max, 1, &a) < 0) goto out;
        o->len_min = o->len_max = a;
        o->len_mean = (double)a;
        o->len_sd = 0;
    }
    ret = 0;
out:
    free(copy);
    return ret;
}

/* The file name without folder and sequence/compression extensions, with
 * the bytes a read name cannot hold replaced. */
static char *label_from_path(const char *path)
{
    static const char *const exts[] = {".gz", ".bgz", ".fa", ".fasta", ".fna", ".fas", ".2bit", ".txt"};
    const char *slash = strrchr(path, '/');
    char *s = md_strdup(slash ? slash + 1 : path);
    for (int again = 1; again;) {
        again = 0;
        size_t n = strlen(s);
        for (size_t k = 0; k < sizeof exts / sizeof *exts; k++) {
            size_t e = strlen(exts[k]);
            if (n > e && strcasecmp(s + n - e, exts[k]) == 0) { s[n - e] = 0; again = 1; break; }
        }
    }
    for (char *p = s; *p; p++)
        if (*p == '|' || isspace((unsigned char)*p) || !isprint((unsigned char)*p)) *p = '_';
    if (!*s) { free(s); s = md_strdup("genome"); }
    return s;
}

static int64_t source_window(int64_t len, double err);

/* A normal draw is redrawn until it is at least 1 and its source window
 * fits in the longest contig (the mean's window was checked to fit). */
static int64_t draw_length(const md_readsim_opts_t *o, int64_t longest, md_rng_t *r)
{
    if (o->len_sd > 0) {
        for (int tries = 0; tries < 1000; tries++) {
            int64_t v = (int64_t)llround(o->len_mean + o->len_sd * md_rng_normal(r));
            if (v >= 1 && source_window(v, o->error_rate) <= longest) return v;
        }
        return (int64_t)o->len_mean;
    }
    return o->len_min + (int64_t)md_rng_below(r, (uint64_t)(o->len_max - o->len_min + 1));
}

/* Source bases a read of len bases may consume: deletions outrun
 * insertions by a few standard deviations at most. */
static int64_t source_window(int64_t len, double err)
{
    return len + 16 + (int64_t)ceil(6.0 * sqrt((double)len * err));
}

static void revcomp_upper(char *s, int64_t n)
{
    for (int64_t i = 0, j = n - 1; i <= j; i++, j--) {
        char a = s[i], b = s[j];
        int ca = sim_code[(unsigned char)a], cb = sim_code[(unsigned char)b];
        s[i] = cb < 4 ? sim_base_upper[3 - cb] : 'N';
        s[j] = ca < 4 ? sim_base_upper[3 - ca] : 'N';
    }
}

/* One contig of one of the genomes, at offset in their concatenation. */
typedef struct {
    int genome, contig;
    int64_t offset, len;
} slot_t;

int md_simulate_reads(md_genome_t *const *g, int n_genomes, const md_readsim_opts_t *o, FILE *fp,
                      const char *out_name)
{
    int n_slots = 0;
    for (int k = 0; k < n_genomes; k++) n_slots += md_genome_n_contigs(g[k]);
    slot_t *slot = md_malloc((size_t)(n_slots + 1) * sizeof *slot);
    char **labels = md_calloc((size_t)(n_genomes + 1), sizeof *labels);
    int64_t longest = 0, total = 0;
    int longest_genome = 0;
    n_slots = 0;
    for (int k = 0; k < n_genomes; k++) {
        labels[k] = o->label ? md_strdup(o->label) : label_from_path(md_genome_path(g[k], 0));
        for (int c = 0; c < md_genome_n_contigs(g[k]); c++) {
            int64_t len = md_genome_contig(g[k], c)->len;
            slot[n_slots++] = (slot_t){k, c, total, len};
            total += len;
            if (len > longest) { longest = len; longest_genome = k; }
        }
    }
    int64_t need = source_window(o->len_sd > 0 ? (int64_t)o->len_mean : o->len_max, o->error_rate);
    int ret = -1;
    char *src = NULL, *read = NULL, *qual = NULL;
    if (need > longest) {
        md_error("reads of %" PRId64 " bp (with room for errors, %" PRId64 ") do not fit in '%s', whose longest contig "
                 "is %" PRId64 " bp", o->len_sd > 0 ? (int64_t)o->len_mean : o->len_max, need,
                 md_genome_path(g[longest_genome], 0), longest);
        goto out;
    }
    int q = o->error_rate > 0 ? (int)lround(-10.0 * log10(o->error_rate)) : 40;
    if (q > 40) q = 40;
    size_t cap = 0, rcap = 0, qcap = 0;
    for (int64_t i = 0; i < o->n_reads; i++) {
        md_rng_t r;
        sim_rng_init(&r, o->seed, SIM_STREAM_READS, 0, (uint64_t)i);
        int64_t len = draw_length(o, longest, &r), W = source_window(len, o->error_rate);
        MD_GROW(src, cap, (size_t)W + 1);
        MD_GROW(read, rcap, (size_t)len + 1);
        int placed = 0, minus = 0;
        const slot_t *sl = NULL;
        int64_t start = 0, used = 0, n_err = 0;
        for (int tries = 0; tries < 1000 && !placed; tries++) {
            int64_t x = (int64_t)md_rng_below(&r, (uint64_t)total);
            int lo = 0, hi = n_slots - 1;
            while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (slot[mid].offset <= x) lo = mid; else hi = mid - 1;
            }
            sl = &slot[lo];
            start = x - sl->offset;
            minus = (int)md_rng_below(&r, 2);
            if (start + W > sl->len || md_genome_count_n(g[sl->genome], sl->contig, start, start + W) > 0) continue;
            if (md_genome_fetch(g[sl->genome], sl->contig, start, start + W, src, 0) < 0) goto out;
            if (minus) revcomp_upper(src, W);
            /* Walk the source, emitting the read: per source base an error
             * with probability error_rate (70% substitution, 15% insertion
             * before it, 15% deletion). */
            int64_t k = 0, j = 0;
            n_err = 0;
            while (k < len && j < W) {
                double u = md_rng_uniform(&r);
                int b = sim_code[(unsigned char)src[j]];
                if (u < o->error_rate * 0.70) {
                    read[k++] = sim_base_upper[(b + 1 + (int)md_rng_below(&r, 3)) & 3];
                    j++; n_err++;
                } else if (u < o->error_rate * 0.85) {
                    read[k++] = sim_base_upper[md_rng_below(&r, 4)];
                    n_err++;
                    if (k < len) { read[k++] = src[j]; j++; }
                } else if (u < o->error_rate) {
                    j++; n_err++;
                } else {
                    read[k++] = src[j++];
                }
            }
            if (k < len) continue;
            used = j;
            placed = 1;
        }
        if (!placed) {
            md_error("could not place read %" PRId64 " (%" PRId64 " bp) clear of N and contig ends in 1000 tries; "
                     "the genomes hold too few long stretches without N", i + 1, len);
            goto out;
        }
        read[len] = 0;
        const md_contig_t *ct = md_genome_contig(g[sl->genome], sl->contig);
        int64_t from = minus ? start + W - used : start;
        fprintf(fp, "%c%s|%s|%" PRId64 "-%" PRId64 "|%c|%" PRId64 " errors=%" PRId64 "\n%s\n", o->fastq ? '@' : '>',
                labels[sl->genome], ct->name, from + 1, from + used, minus ? '-' : '+', i, n_err, read);
        if (o->fastq) {
            MD_GROW(qual, qcap, (size_t)len + 1);
            memset(qual, 33 + q, (size_t)len);
            qual[len] = 0;
            fprintf(fp, "+\n%s\n", qual);
        }
        if (ferror(fp)) {
            md_error("cannot write reads to '%s'", out_name);
            goto out;
        }
    }
    ret = 0;
out:
    for (int k = 0; k < n_genomes; k++) free(labels[k]);
    free(labels);
    free(slot);
    free(src);
    free(read);
    free(qual);
    return ret;
}

int md_readsim_parse_name(const char *name, char *label, size_t label_size, char *contig, size_t contig_size,
                          int64_t *start, int64_t *end, int *strand, int64_t *index)
{
    const char *p1 = strchr(name, '|'), *p4 = strrchr(name, '|');
    if (!p1 || p4 <= p1) return -1;
    const char *p3 = p4 - 1;
    while (p3 > p1 && *p3 != '|') p3--;
    if (p3 <= p1) return -1;
    const char *p2 = p3 - 1;
    while (p2 > p1 && *p2 != '|') p2--;
    if (p2 <= p1) return -1;
    /* label | contig | range | strand | index, contig possibly holding '|' */
    size_t nl = (size_t)(p1 - name), nc = (size_t)(p2 - p1 - 1);
    if (nl == 0 || nl >= label_size || nc == 0 || nc >= contig_size) return -1;
    if (p4 - p3 != 2 || (p3[1] != '+' && p3[1] != '-')) return -1;
    char *e;
    long long s = strtoll(p2 + 1, &e, 10);
    if (e == p2 + 1 || *e != '-') return -1;
    const char *q = e + 1;
    long long t = strtoll(q, &e, 10);
    if (e == q || e != p3 || s < 1 || t < s) return -1;
    long long ix = strtoll(p4 + 1, &e, 10);
    if (e == p4 + 1 || *e || ix < 0) return -1;
    memcpy(label, name, nl);
    label[nl] = 0;
    memcpy(contig, p1 + 1, nc);
    contig[nc] = 0;
    *start = s;
    *end = t;
    *strand = p3[1] == '-' ? -1 : 1;
    *index = ix;
    return 0;
}
