/* The genome simulator: realised divergences measured on the output
 * sequences (through their base-genome coordinates), the tree's order,
 * determinism by seed and thread count, the base genome's CpG depletion,
 * isochores and soft-masked repeats, lineage insertions; and reads: lengths,
 * error rate against the source, and names that give back the true source. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "data/simulate.h"
#include "seq/fasta_write.h"
#include "seq/genome.h"
#include "seq/reads.h"
#include "testutil.h"
#include "util/xalloc.h"

enum { HUMAN, CHIMP, BONOBO, GORILLA, ORANGUTAN };

/* |got - want| <= rtol |want|, with both values in the message. */
#define CHECK_REL(got, want, rtol, what) do { \
    double g_ = (got), w_ = (want); \
    CHECK(fabs(g_ - w_) <= (rtol) * fabs(w_), "%s: %.5g, expected %.5g within %g%%", what, g_, w_, 100.0 * (rtol)); \
} while (0)

static void simulate(md_sim_result_t *res, uint64_t seed, int threads)
{
    md_sim_opts_t o;
    md_sim_opts_init(&o);
    o.seed = seed;
    o.n_chroms = 2;
    o.chrom_len = 400000;
    o.isochore_len = 80000;
    o.keep_ancestry = 1;
    o.keep_ancestor = 1;
    omp_set_num_threads(threads);
    int r = md_simulate_genomes(&o, res);
    CHECK(r == 0, "md_simulate_genomes failed");
    if (r) exit(1);
}

/* The test's own alignment: per species, the base at each base-genome
 * position (-1 where deleted or N), from anc_pos and the output sequence. */
static int8_t *by_ancestor(const md_sim_result_t *res, int s, int c)
{
    int64_t L = res->ancestor.chroms[c].len;
    int8_t *a = md_malloc((size_t)L);
    memset(a, -1, (size_t)L);
    const md_sim_chrom_t *ch = &res->species[s].chroms[c];
    int64_t last = -1, bad_order = 0;
    for (int64_t j = 0; j < ch->len; j++) {
        int64_t p = ch->anc_pos[j];
        if (p < 0) continue;
        if (p <= last || p >= L) bad_order++;
        else a[p] = (int8_t)md_test_base_code(ch->seq[j]);
        last = p;
    }
    CHECK(bad_order == 0, "species %d chr %d: %lld ancestral coordinates out of order", s, c, (long long)bad_order);
    return a;
}

static void test_divergence(const md_sim_result_t *res)
{
    int64_t sites[5][5] = {{0}}, diffs[5][5] = {{0}};
    for (int c = 0; c < res->ancestor.n_chroms; c++) {
        int8_t *a[5];
        for (int s = 0; s < 5; s++) a[s] = by_ancestor(res, s, c);
        for (int x = 0; x < 5; x++)
            for (int y = x + 1; y < 5; y++)
                for (int64_t p = 0; p < res->ancestor.chroms[c].len; p++)
                    if (a[x][p] >= 0 && a[y][p] >= 0) { sites[x][y]++; diffs[x][y] += a[x][p] != a[y][p]; }
        for (int s = 0; s < 5; s++) free(a[s]);
    }
    double d[5][5];
    for (int x = 0; x < 5; x++)
        for (int y = x + 1; y < 5; y++) {
            d[x][y] = (double)diffs[x][y] / (double)sites[x][y];
            CHECK(sites[x][y] > 700000, "%s-%s: only %lld aligned sites", md_sim_species_names[x],
                  md_sim_species_names[y], (long long)sites[x][y]);
            /* The library's own figures are those of its output. */
            CHECK(sites[x][y] == res->sites[x][y] && diffs[x][y] == res->diffs[x][y],
                  "%s-%s: library reports %lld/%lld, the output gives %lld/%lld", md_sim_species_names[x],
                  md_sim_species_names[y], (long long)res->diffs[x][y], (long long)res->sites[x][y],
                  (long long)diffs[x][y], (long long)sites[x][y]);
        }
    /* The real great-ape figures, within 8% (about 4 standard errors for
     * chimpanzee-bonobo at this size). */
    CHECK_REL(d[HUMAN][CHIMP], 0.012, 0.08, "human-chimpanzee divergence");
    CHECK_REL(d[CHIMP][BONOBO], 0.004, 0.08, "chimpanzee-bonobo divergence");
    CHECK_REL(d[HUMAN][GORILLA], 0.016, 0.08, "human-gorilla divergence");
    CHECK_REL(d[HUMAN][ORANGUTAN], 0.031, 0.08, "human-orangutan divergence");
    CHECK_REL(d[GORILLA][ORANGUTAN], 0.031, 0.08, "gorilla-orangutan divergence");
    CHECK(d[CHIMP][BONOBO] < d[HUMAN][CHIMP] && d[HUMAN][CHIMP] < d[HUMAN][GORILLA] &&
              d[HUMAN][GORILLA] < d[HUMAN][ORANGUTAN],
          "tree order: %g %g %g %g", d[CHIMP][BONOBO], d[HUMAN][CHIMP], d[HUMAN][GORILLA], d[HUMAN][ORANGUTAN]);
    /* Human is as far from chimpanzee as from bonobo: they split after. */
    CHECK_REL(d[HUMAN][BONOBO], d[HUMAN][CHIMP], 0.05, "human-bonobo vs human-chimpanzee");
}

/* Derivation left something besides substitutions: indels and new repeat
 * copies (bases with no ancestor), soft-masked where they are repeats. */
static void test_lineage_changes(const md_sim_result_t *res)
{
    for (int s = 0; s < 5; s++) {
        int64_t inserted = 0, inserted_lower = 0;
        for (int c = 0; c < res->species[s].n_chroms; c++) {
            const md_sim_chrom_t *ch = &res->species[s].chroms[c];
            CHECK(ch->seq[0] == 'N', "%s %s does not start with its telomere gap", md_sim_species_names[s], ch->name);
            CHECK(ch->len != res->ancestor.chroms[c].len, "%s %s has the base genome's length: no indels?",
                  md_sim_species_names[s], ch->name);
            for (int64_t j = 0; j < ch->len; j++)
                if (ch->anc_pos[j] < 0) { inserted++; inserted_lower += islower((unsigned char)ch->seq[j]) != 0; }
        }
        CHECK(inserted > 1000, "%s: only %lld inserted bases", md_sim_species_names[s], (long long)inserted);
        CHECK(inserted_lower > inserted / 2, "%s: %lld of %lld inserted bases masked (new repeat copies)",
              md_sim_species_names[s], (long long)inserted_lower, (long long)inserted);
    }
    CHECK(res->branches[0].parent == -1 && res->branches[0].length == 0, "the root is first");
    for (int v = 1; v < MD_SIM_N_NODES; v++)
        CHECK(res->branches[v].length > 0 && res->branches[v].substitutions > 0 && res->branches[v].indels > 0,
              "branch %s did nothing", res->branches[v].name);
}

static void test_base_genome(const md_sim_result_t *res)
{
    int64_t n[4] = {0}, cg = 0, dinuc = 0, lower = 0, acgt = 0;
    for (int c = 0; c < res->ancestor.n_chroms; c++) {
        const char *s = res->ancestor.chroms[c].seq;
        int64_t L = res->ancestor.chroms[c].len;
        for (int64_t i = 0; i < L; i++) {
            int b = md_test_base_code(s[i]);
            if (b < 0) continue;
            n[b]++; acgt++;
            lower += islower((unsigned char)s[i]) != 0;
            if (i + 1 < L && md_test_base_code(s[i + 1]) >= 0) { dinuc++; cg += b == 1 && md_test_base_code(s[i + 1]) == 2; }
        }
    }
    double fc = (double)n[1] / acgt, fg = (double)n[2] / acgt;
    double oe = ((double)cg / dinuc) / (fc * fg);
    CHECK(oe < 0.4 && oe > 0.1, "CpG observed/expected %g is not depleted", oe);
    CHECK(fabs(oe - res->base_cpg_oe) < 1e-9, "library CpG o/e %g vs %g", res->base_cpg_oe, oe);
    CHECK(fc + fg > 0.36 && fc + fg < 0.48, "GC %g", fc + fg);
    CHECK((double)lower / acgt > 0.25 && (double)lower / acgt < 0.6, "soft-masked fraction %g", (double)lower / acgt);

    /* Isochores: GC varies between them, and follows their family. */
    double lo_sum = 0, hi_sum = 0, gmin = 1, gmax = 0;
    int n_lo = 0, n_hi = 0;
    CHECK(res->n_isochores >= 4, "%lld isochores", (long long)res->n_isochores);
    for (int64_t k = 0; k < res->n_isochores; k++) {
        const md_sim_region_t *r = &res->isochores[k];
        const char *s = res->ancestor.chroms[r->chrom].seq;
        int64_t gc = 0, all = 0;
        for (int64_t i = r->start; i < r->end; i++) {
            int b = md_test_base_code(s[i]);
            if (b < 0) continue;
            all++;
            gc += b == 1 || b == 2;
        }
        double f = (double)gc / all;
        if (f < gmin) gmin = f;
        if (f > gmax) gmax = f;
        if (r->gc_target <= 0.40) { lo_sum += f; n_lo++; }
        if (r->gc_target >= 0.47) { hi_sum += f; n_hi++; }
    }
    CHECK(gmax - gmin > 0.05, "isochore GC spans only %g..%g", gmin, gmax);
    if (n_lo && n_hi) CHECK(hi_sum / n_hi > lo_sum / n_lo + 0.04, "GC-rich isochores %g vs GC-poor %g", hi_sum / n_hi, lo_sum / n_lo);
    CHECK(res->n_cpg_islands > 0, "no CpG islands");

    /* Repeats: some 16-mer of the SINE1 and LINE1 consensus recurs many
     * times (either strand), and nearly always soft-masked. */
    for (int f = 0; f < 2; f++) {
        const char *cons = res->family_consensus[f];
        int64_t clen = (int64_t)strlen(cons), best = 0, best_lower = 0;
        int64_t from = f == 1 ? clen - 400 : 0;   /* LINE1 copies are mostly 3' ends */
        for (int64_t k = from; k + 16 <= clen; k += 4) {
            char fw[17], rc[17];
            for (int i = 0; i < 16; i++) {
                fw[i] = cons[k + i];
                rc[15 - i] = "TGCA"[md_test_base_code(cons[k + i])];
            }
            fw[16] = rc[16] = 0;
            int64_t hits = 0, hits_lower = 0;
            for (int c = 0; c < res->ancestor.n_chroms; c++) {
                const char *s = res->ancestor.chroms[c].seq;
                int64_t L = res->ancestor.chroms[c].len;
                for (int64_t i = 0; i + 16 <= L; i++) {
                    if (toupper((unsigned char)s[i]) != fw[0] && toupper((unsigned char)s[i]) != rc[0]) continue;
                    if (!strncasecmp(s + i, fw, 16) || !strncasecmp(s + i, rc, 16)) {
                        hits++;
                        hits_lower += islower((unsigned char)s[i]) && islower((unsigned char)s[i + 15]);
                    }
                }
            }
            if (hits > best) { best = hits; best_lower = hits_lower; }
        }
        CHECK(best >= 20, "%s: best consensus 16-mer occurs only %lld times", res->family_names[f], (long long)best);
        CHECK(best_lower >= best * 9 / 10, "%s: %lld of %lld copies soft-masked", res->family_names[f],
              (long long)best_lower, (long long)best);
    }
}

static int same_output(const md_sim_result_t *a, const md_sim_result_t *b)
{
    for (int s = 0; s < 5; s++)
        for (int c = 0; c < a->species[s].n_chroms; c++) {
            const md_sim_chrom_t *x = &a->species[s].chroms[c], *y = &b->species[s].chroms[c];
            if (x->len != y->len || memcmp(x->seq, y->seq, (size_t)x->len) || strcmp(x->name, y->name)) return 0;
        }
    return 1;
}

/* ---- reads ---- */

static int64_t edit_distance(const char *a, int64_t n, const char *b, int64_t m)
{
    int64_t *prev = md_malloc((size_t)(m + 1) * sizeof *prev), *cur = md_malloc((size_t)(m + 1) * sizeof *cur);
    for (int64_t j = 0; j <= m; j++) prev[j] = j;
    for (int64_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (int64_t j = 1; j <= m; j++) {
            int64_t v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < v) v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            cur[j] = v;
        }
        int64_t *t = prev; prev = cur; cur = t;
    }
    int64_t d = prev[m];
    free(prev); free(cur);
    return d;
}

/* The true source of a read from the species' sequence, on the read's strand. */
static char *truth(const md_sim_genome_t *g, const char *contig, int64_t start, int64_t end, int strand)
{
    for (int c = 0; c < g->n_chroms; c++) {
        if (strcmp(g->chroms[c].name, contig)) continue;
        if (start < 1 || end > g->chroms[c].len) return NULL;
        int64_t n = end - start + 1;
        char *s = md_malloc((size_t)n + 1);
        for (int64_t i = 0; i < n; i++) s[i] = (char)toupper((unsigned char)g->chroms[c].seq[start - 1 + i]);
        s[n] = 0;
        if (strand < 0)
            for (int64_t i = 0, j = n - 1; i <= j; i++, j--) {
                char x = s[i], y = s[j];
                s[i] = "TGCA"[md_test_base_code(y)];
                s[j] = "TGCA"[md_test_base_code(x)];
            }
        return s;
    }
    return NULL;
}

typedef struct {
    int64_t n, n_minus, bad_name, bad_label, mismatched, len_min, len_max, src_bases, edits, events, over_events;
    double len_sum, len_sq;
} read_stats_t;

static char *write_reads(md_genome_t *g, md_readsim_opts_t *o, const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", md_test_tmpdir(), name);
    FILE *fp = fopen(path, "wb");
    CHECK(md_simulate_reads(&g, 1, o, fp, path) == 0, "md_simulate_reads failed for %s", name);
    fclose(fp);
    return path;
}

static read_stats_t check_reads(const char *path, const md_sim_genome_t *sp, int exact)
{
    read_stats_t st = {0};
    st.len_min = INT64_MAX;
    md_reads_t *r = md_reads_open(path);
    md_read_t rec;
    char label[64], contig[64];
    while (r && md_reads_next(r, &rec) == 1) {
        int64_t start, end, index;
        int strand;
        st.n++;
        if (rec.len < st.len_min) st.len_min = rec.len;
        if (rec.len > st.len_max) st.len_max = rec.len;
        st.len_sum += (double)rec.len;
        st.len_sq += (double)rec.len * (double)rec.len;
        if (md_readsim_parse_name(rec.name, label, sizeof label, contig, sizeof contig, &start, &end, &strand,
                                  &index) < 0 || index != st.n - 1) { st.bad_name++; continue; }
        st.bad_label += strcmp(label, "human") != 0;
        st.n_minus += strand < 0;
        char *src = truth(sp, contig, start, end, strand);
        if (!src) { st.bad_name++; continue; }
        int64_t n = end - start + 1;
        st.src_bases += n;
        if (exact) st.mismatched += n != rec.len || memcmp(src, rec.seq, (size_t)n) != 0;
        else {
            /* The comment's error count bounds the edit distance: errors can
             * only coincide and cancel, never add. */
            int64_t d = edit_distance(rec.seq, rec.len, src, n), k = -1;
            sscanf(rec.comment, "errors=%" SCNd64, &k);
            st.edits += d;
            st.events += k;
            st.over_events += d > k;
        }
        free(src);
    }
    md_reads_close(r);
    return st;
}

static char *slurp(const char *path, long *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *n = ftell(fp);
    rewind(fp);
    char *s = md_malloc((size_t)*n + 1);
    *n = (long)fread(s, 1, (size_t)*n, fp);
    fclose(fp);
    return s;
}

static void test_reads(const md_sim_result_t *res)
{
    char fa[512];
    snprintf(fa, sizeof fa, "%s/human.fa", md_test_tmpdir());
    FILE *fp = fopen(fa, "wb");
    const md_sim_genome_t *hs = &res->species[HUMAN];
    for (int c = 0; c < hs->n_chroms; c++) md_fasta_write(fp, hs->chroms[c].name, NULL, hs->chroms[c].seq, hs->chroms[c].len, 60);
    fclose(fp);
    const char *paths[1] = {fa};
    md_genome_t *g = md_genome_open(paths, 1);
    CHECK(g && md_genome_load(g) == 0, "cannot load %s", fa);
    if (!g) return;

    md_readsim_opts_t o;
    md_readsim_opts_init(&o);
    o.n_reads = 400;
    o.seed = 5;
    CHECK(md_readsim_parse_length("--length", "80-120", &o) == 0, "parse 80-120");
    o.fastq = 0;
    read_stats_t st = check_reads(write_reads(g, &o, "exact.fa"), hs, 1);
    CHECK(st.n == 400, "%lld reads", (long long)st.n);
    CHECK(st.bad_name == 0 && st.bad_label == 0, "%lld names do not parse, %lld labels wrong", (long long)st.bad_name,
          (long long)st.bad_label);
    CHECK(st.mismatched == 0, "%lld error-free reads differ from their named source", (long long)st.mismatched);
    CHECK(st.len_min >= 80 && st.len_max <= 120 && st.len_max - st.len_min > 30, "lengths %lld..%lld",
          (long long)st.len_min, (long long)st.len_max);
    CHECK(st.n_minus > 120 && st.n_minus < 280, "%lld of 400 reads on the minus strand", (long long)st.n_minus);

    /* The same seed gives the same reads; another seed others. */
    long n1, n2, n3;
    char *a = slurp(write_reads(g, &o, "exact.fa"), &n1);
    char *b = slurp(write_reads(g, &o, "again.fa"), &n2);
    o.seed = 6;
    char *c = slurp(write_reads(g, &o, "other.fa"), &n3);
    CHECK(a && b && n1 == n2 && !memcmp(a, b, (size_t)n1), "same seed, different reads");
    CHECK(c && (n1 != n3 || memcmp(a, c, (size_t)n1)), "another seed, same reads");
    free(a); free(b); free(c);

    /* Errors: edit distance to the true source over its length. */
    o.fastq = 1;
    o.error_rate = 0.05;
    CHECK(md_readsim_parse_length("--length", "150", &o) == 0, "parse 150");
    st = check_reads(write_reads(g, &o, "errors.fq"), hs, 0);
    CHECK(st.n == 400 && st.bad_name == 0, "%lld reads, %lld bad names", (long long)st.n, (long long)st.bad_name);
    CHECK(st.len_min == 150 && st.len_max == 150, "fixed length 150 gave %lld..%lld", (long long)st.len_min,
          (long long)st.len_max);
    double err = (double)st.edits / (double)st.src_bases, ev = (double)st.events / (double)st.src_bases;
    CHECK_REL(err, 0.05, 0.08, "measured error rate (edit distance per source base)");
    CHECK_REL(ev, 0.05, 0.08, "error events per source base");
    CHECK(st.over_events == 0, "%lld reads are further from their source than their errors= count",
          (long long)st.over_events);

    /* Normal lengths. */
    o.error_rate = 0.01;
    o.n_reads = 1000;
    CHECK(md_readsim_parse_length("--length", "300,40", &o) == 0, "parse 300,40");
    st = check_reads(write_reads(g, &o, "normal.fq"), hs, 0);
    double mean = st.len_sum / st.n, sd = sqrt(st.len_sq / st.n - mean * mean);
    CHECK(fabs(mean - 300) < 6 && fabs(sd - 40) < 5, "lengths mean %g sd %g for 300,40", mean, sd);
    fprintf(stderr, "reads: error rate 0.05 measured %.4f (events %.4f); lengths 300,40 gave mean %.1f sd %.1f\n", err,
            ev, mean, sd);

    /* Reads longer than every contig: one error, no hang. */
    CHECK(md_readsim_parse_length("--length", "5M", &o) == 0, "parse 5M");
    FILE *null = fopen("/dev/null", "wb");
    CHECK(md_simulate_reads(&g, 1, &o, null, "/dev/null") < 0, "5 Mbp reads placed in a 0.8 Mbp genome");
    fclose(null);
    md_genome_close(g);

    /* Names: a contig holding '|' still parses; junk does not. */
    char label[16], contig[32];
    int64_t s0, e0, ix;
    int strand;
    CHECK(md_readsim_parse_name("sp|chrUn|x|10-20|-|5", label, sizeof label, contig, sizeof contig, &s0, &e0, &strand,
                                &ix) == 0 && !strcmp(label, "sp") && !strcmp(contig, "chrUn|x") && s0 == 10 &&
              e0 == 20 && strand == -1 && ix == 5,
          "parse a name with '|' in the contig");
    CHECK(md_readsim_parse_name("read17", label, sizeof label, contig, sizeof contig, &s0, &e0, &strand, &ix) < 0,
          "a plain name parses");
    CHECK(md_readsim_parse_name("sp|chr1|20-10|+|1", label, sizeof label, contig, sizeof contig, &s0, &e0, &strand,
                                &ix) < 0, "an inverted range parses");
    CHECK(md_readsim_parse_length("--length", "200-100", &o) < 0, "200-100 accepted");
    CHECK(md_readsim_parse_length("--length", "0", &o) < 0, "length 0 accepted");
}

int main(void)
{
    md_sim_result_t r1, r2, r3;
    simulate(&r1, 7, 2);
    test_divergence(&r1);
    test_lineage_changes(&r1);
    test_base_genome(&r1);

    /* Determinism: the same seed on one thread gives the same bytes; another
     * seed gives other sequences. */
    simulate(&r2, 7, 1);
    CHECK(same_output(&r1, &r2), "seed 7 on 1 and 2 threads differ");
    md_sim_result_free(&r2);
    simulate(&r3, 8, 2);
    CHECK(!same_output(&r1, &r3), "seeds 7 and 8 give the same genomes");
    md_sim_result_free(&r3);

    test_reads(&r1);
    md_sim_result_free(&r1);

    md_sim_opts_t o;
    md_sim_opts_init(&o);
    o.chrom_len = 0;
    CHECK(md_simulate_genomes(&o, &r1) < 0, "a zero length accepted");
    return md_test_done();
}
