/* The window sampler: determinism, the distribution of windows over contigs
 * and positions, reverse complements, the N filter, BED tiling, and tokens
 * that match the genome's own text. */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "data/sampler.h"
#include "seq/bed.h"
#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "util/rng.h"
#include "util/xalloc.h"
#include "testutil.h"

/* ---- genomes written by the test ---- */

static char *random_seq(md_rng_t *r, int64_t len)
{
    char *s = md_malloc((size_t)len + 1);
    for (int64_t i = 0; i < len; i++) s[i] = "ACGTacgt"[md_rng_below(r, 8)];
    s[len] = 0;
    return s;
}

/* Writes a FASTA of n contigs, opens and loads it. */
static md_genome_t *make_genome(const char *file, int n, const char *const *names, char *const *seqs)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", md_test_tmpdir(), file);
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        fprintf(fp, ">%s\n", names[i]);
        int64_t len = (int64_t)strlen(seqs[i]);
        for (int64_t j = 0; j < len; j += 60) fprintf(fp, "%.*s\n", (int)(len - j < 60 ? len - j : 60), seqs[i] + j);
    }
    fclose(fp);
    const char *paths[1] = {path};
    md_genome_t *g = md_genome_open(paths, 1);
    if (!g || md_genome_load(g) < 0) {
        fprintf(stderr, "cannot load test genome %s\n", path);
        exit(2);
    }
    return g;
}

static const char *write_text(const char *file, const char *text)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, 512, "%s/%s", md_test_tmpdir(), file);
    FILE *fp = fopen(p, "wb");
    fputs(text, fp);
    fclose(fp);
    return p;
}

/* The window's text as the genome gives it, reverse-complemented by hand. */
static void expected_tokens(md_genome_t *g, const md_window_t *w, uint8_t *out)
{
    int64_t L = w->end - w->start;
    char *text = md_malloc((size_t)L);
    md_genome_fetch(g, w->contig, w->start, w->end, text, 0);
    for (int64_t i = 0; i < L; i++) {
        char ch = w->rc ? text[L - 1 - i] : text[i];
        if (w->rc) ch = ch == 'A' ? 'T' : ch == 'C' ? 'G' : ch == 'G' ? 'C' : ch == 'T' ? 'A' : 'N';
        out[i] = md_tok_from_ascii[(uint8_t)ch];
    }
    free(text);
}

static int64_t count_n_text(const char *s, int64_t start, int64_t L)
{
    int64_t n = 0;
    for (int64_t i = start; i < start + L; i++) n += s[i] == 'N' || s[i] == 'n';
    return n;
}

/* ---- uniform mode ---- */

static void test_contig_weights_and_uniform_starts(void)
{
    md_rng_t r;
    md_rng_seed(&r, 11);
    /* Lengths in ratio 1:3:6 plus one contig shorter than L. */
    const int64_t L = 1000, lens[4] = {10000, 30000, 60000, 999};
    const char *names[4] = {"one", "three", "six", "short"};
    char *seqs[4];
    for (int i = 0; i < 4; i++) seqs[i] = random_seq(&r, lens[i]);
    md_genome_t *g = make_genome("weights.fa", 4, names, seqs);

    md_sampler_opts_t o;
    md_sampler_opts_init(&o);
    o.len = L;
    o.max_n_frac = 1.0;
    o.seed = 7;
    md_sampler_t *s = md_sampler_new(g, &o);
    CHECK(s != NULL, "sampler");
    if (!s) return;
    const int64_t N = 300000;
    enum { BINS = 50 };
    int64_t per_contig[4] = {0}, bins[BINS] = {0}, out_of_range = 0;
    for (int64_t i = 0; i < N; i++) {
        md_window_t w;
        md_sampler_window(s, (uint64_t)i, &w);
        per_contig[w.contig]++;
        if (w.start < 0 || w.end != w.start + L || w.end > lens[w.contig]) out_of_range++;
        if (w.contig == 2) bins[w.start * BINS / (lens[2] - L + 1)]++;
    }
    CHECK(out_of_range == 0, "%lld windows outside their contig", (long long)out_of_range);
    CHECK(per_contig[3] == 0, "the contig shorter than L got %lld windows", (long long)per_contig[3]);
    double total = 0;
    for (int c = 0; c < 3; c++) total += (double)(lens[c] - L + 1);
    for (int c = 0; c < 3; c++) {
        double p = (double)(lens[c] - L + 1) / total, sd = sqrt(N * p * (1 - p));
        CHECK(fabs((double)per_contig[c] - N * p) <= 5 * sd, "contig %s: %lld windows, expected %.0f +- %.0f",
              names[c], (long long)per_contig[c], N * p, 5 * sd);
    }
    /* Chi-square of starts on the longest contig over BINS bins, the
     * expectation of each bin from the exact number of starts it holds. */
    int64_t n_starts = lens[2] - L + 1, in_bin[BINS] = {0};
    for (int64_t st = 0; st < n_starts; st++) in_bin[st * BINS / n_starts]++;
    double chi2 = 0;
    for (int b = 0; b < BINS; b++) {
        double e = (double)per_contig[2] * (double)in_bin[b] / (double)n_starts;
        chi2 += ((double)bins[b] - e) * ((double)bins[b] - e) / e;
    }
    /* df = 49: mean 49, sd ~10; a loose bound that a real bias still breaks. */
    CHECK(chi2 < 49 + 10 * 10, "chi-square of start positions %.1f over %d bins", chi2, BINS);
    CHECK(md_sampler_stats(s)->n_windows == (uint64_t)total, "n_windows %llu vs %.0f",
          (unsigned long long)md_sampler_stats(s)->n_windows, total);
    md_sampler_free(s);

    /* L longer than every contig is an error. */
    o.len = 60001;
    CHECK(md_sampler_new(g, &o) == NULL, "L longer than every contig");
    o.len = 60000;
    s = md_sampler_new(g, &o);
    CHECK(s && md_sampler_stats(s)->n_windows == 1, "L equal to the longest contig gives one window");
    md_sampler_free(s);
    md_genome_close(g);
    for (int i = 0; i < 4; i++) free(seqs[i]);
}

static void test_determinism_and_tokens(void)
{
    md_rng_t r;
    md_rng_seed(&r, 12);
    const char *names[3] = {"a", "b", "c"};
    char *seqs[3] = {random_seq(&r, 5000), random_seq(&r, 20000), random_seq(&r, 777)};
    for (int i = 100; i < 160; i++) seqs[1][i] = 'N';   /* some N, below the filter's limit */
    md_genome_t *g = make_genome("determinism.fa", 3, names, seqs);
    md_sampler_opts_t o;
    md_sampler_opts_init(&o);
    o.len = 300;
    o.revcomp = 1;
    o.max_n_frac = 0.5;
    o.seed = 42;
    md_sampler_t *s1 = md_sampler_new(g, &o), *s2 = md_sampler_new(g, &o);
    o.seed = 43;
    md_sampler_t *s3 = md_sampler_new(g, &o);
    CHECK(s1 && s2 && s3, "samplers");
    if (!s1 || !s2 || !s3) return;

    const int64_t B = 2000, L = o.len;
    uint8_t *t1 = md_malloc((size_t)(B * L)), *t2 = md_malloc((size_t)(B * L)), *t3 = md_malloc((size_t)(B * L));
    md_window_t *w1 = md_malloc(sizeof *w1 * B), *w2 = md_malloc(sizeof *w2 * B), *w3 = md_malloc(sizeof *w3 * B);
    omp_set_num_threads(1);
    md_sampler_fill_batch(s1, 1000, B, t1, w1);
    omp_set_num_threads(2);
    md_sampler_fill_batch(s2, 1000, B, t2, w2);
    CHECK(memcmp(t1, t2, (size_t)(B * L)) == 0, "tokens differ between 1 and 2 threads");
    CHECK(memcmp(w1, w2, sizeof *w1 * B) == 0, "windows differ between 1 and 2 threads");

    /* A batch is the same windows one by one, from any starting index. */
    int64_t mismatched = 0;
    for (int64_t b = 0; b < B; b++) {
        md_window_t w;
        md_sampler_window(s1, 1000 + (uint64_t)b, &w);
        mismatched += memcmp(&w, &w1[b], sizeof w) != 0;
    }
    CHECK(mismatched == 0, "%lld windows of the batch differ from single draws", (long long)mismatched);
    md_sampler_fill_batch(s1, 1500, 10, t3, w3);
    CHECK(memcmp(w3, w1 + 500, sizeof *w3 * 10) == 0 && memcmp(t3, t1 + 500 * L, (size_t)(10 * L)) == 0,
          "resuming at index 1500 gives the same windows");

    /* Another seed gives other windows. */
    md_sampler_fill_batch(s3, 1000, B, t3, w3);
    int64_t same = 0;
    for (int64_t b = 0; b < B; b++) same += w3[b].contig == w1[b].contig && w3[b].start == w1[b].start;
    CHECK(same < B / 50, "%lld of %lld windows equal under another seed", (long long)same, (long long)B);

    /* Tokens are the genome's text at the window, reverse-complemented when rc. */
    uint8_t *want = md_malloc((size_t)L);
    int64_t bad_tokens = 0, n_rc = 0;
    for (int64_t b = 0; b < B; b++) {
        expected_tokens(g, &w1[b], want);
        bad_tokens += memcmp(want, t1 + b * L, (size_t)L) != 0;
        n_rc += w1[b].rc;
    }
    CHECK(bad_tokens == 0, "%lld windows' tokens differ from the genome's text", (long long)bad_tokens);
    CHECK(n_rc > 0 && n_rc < B, "both strands drawn (%lld rc)", (long long)n_rc);

    /* The rc rate is 1/2 and an rc window is the exact reverse complement of
     * the forward tokens at the same place. */
    const int64_t N = 100000;
    int64_t rc = 0, not_revcomp = 0;
    uint8_t *fwd = md_malloc((size_t)L), *got = md_malloc((size_t)L);
    for (int64_t i = 0; i < N; i++) {
        md_window_t w;
        md_sampler_window(s1, (uint64_t)i, &w);
        rc += w.rc;
        if (w.rc && i < 3000) {
            md_sampler_tokens(s1, &w, got);
            md_window_t f = w;
            f.rc = 0;
            md_sampler_tokens(s1, &f, fwd);
            for (int64_t j = 0; j < L; j++)
                if (got[j] != md_tok_complement[fwd[L - 1 - j]]) { not_revcomp++; break; }
        }
    }
    CHECK(fabs((double)rc - N / 2.0) <= 5 * sqrt(N / 4.0), "%lld of %lld windows rc", (long long)rc, (long long)N);
    CHECK(not_revcomp == 0, "%lld rc windows are not the reverse complement", (long long)not_revcomp);

    /* Off means off. */
    md_sampler_opts_t o2 = o;
    o2.revcomp = 0;
    md_sampler_t *s4 = md_sampler_new(g, &o2);
    int64_t rc_off = 0;
    for (int64_t i = 0; s4 && i < 10000; i++) {
        md_window_t w;
        md_sampler_window(s4, (uint64_t)i, &w);
        rc_off += w.rc;
    }
    CHECK(s4 && rc_off == 0, "%lld rc windows with revcomp off", (long long)rc_off);
    md_sampler_free(s4);

    free(want); free(fwd); free(got);
    free(t1); free(t2); free(t3); free(w1); free(w2); free(w3);
    md_sampler_free(s1); md_sampler_free(s2); md_sampler_free(s3);
    md_genome_close(g);
    for (int i = 0; i < 3; i++) free(seqs[i]);
}

static void test_n_filter(void)
{
    md_rng_t r;
    md_rng_seed(&r, 13);
    const char *names[3] = {"n1", "n2", "n3"};
    int64_t lens[3] = {3000, 1200, 2500};
    char *seqs[3];
    for (int c = 0; c < 3; c++) {
        seqs[c] = random_seq(&r, lens[c]);
        /* N runs of assorted lengths, some at the contig's ends, some close together. */
        for (int k = 0; k < 12; k++) {
            int64_t len = 1 + (int64_t)md_rng_below(&r, k % 3 == 0 ? 150 : 12);
            int64_t at = k == 0 ? 0 : k == 1 ? lens[c] - len : (int64_t)md_rng_below(&r, (uint64_t)(lens[c] - len));
            for (int64_t i = at; i < at + len; i++) seqs[c][i] = "Nn"[i & 1];
        }
    }
    md_genome_t *g = make_genome("nfilter.fa", 3, names, seqs);
    const double fracs[5] = {0.0, 0.05, 0.1, 0.5, 1.0};
    const int64_t L = 100;
    for (int fi = 0; fi < 5; fi++) {
        md_sampler_opts_t o;
        md_sampler_opts_init(&o);
        o.len = L;
        o.max_n_frac = fracs[fi];
        int64_t k = (int64_t)floor(fracs[fi] * L + 1e-9);
        /* Brute force: which starts pass. */
        int64_t n_pass = 0;
        uint8_t *pass[3];
        for (int c = 0; c < 3; c++) {
            pass[c] = md_calloc((size_t)lens[c], 1);
            for (int64_t st = 0; st + L <= lens[c]; st++)
                if (count_n_text(seqs[c], st, L) <= k) pass[c][st] = 1, n_pass++;
        }
        md_sampler_t *s = md_sampler_new(g, &o);
        CHECK(s != NULL, "sampler at max N %g", fracs[fi]);
        if (!s) continue;
        CHECK(md_sampler_stats(s)->n_windows == (uint64_t)n_pass, "max N %g: %llu windows, brute force %lld",
              fracs[fi], (unsigned long long)md_sampler_stats(s)->n_windows, (long long)n_pass);
        /* Enough draws that every passing start shows up (each expected >= 40 times). */
        int64_t draws = 40 * n_pass, above = 0, missing = 0;
        uint8_t *seen[3];
        for (int c = 0; c < 3; c++) seen[c] = md_calloc((size_t)lens[c], 1);
        for (int64_t i = 0; i < draws; i++) {
            md_window_t w;
            md_sampler_window(s, (uint64_t)i, &w);
            if (count_n_text(seqs[w.contig], w.start, L) > k) above++;
            seen[w.contig][w.start] = 1;
        }
        for (int c = 0; c < 3; c++)
            for (int64_t st = 0; st < lens[c]; st++) missing += pass[c][st] && !seen[c][st];
        CHECK(above == 0, "max N %g: %lld windows above the limit", fracs[fi], (long long)above);
        CHECK(missing == 0, "max N %g: %lld passing starts never drawn", fracs[fi], (long long)missing);
        for (int c = 0; c < 3; c++) { free(pass[c]); free(seen[c]); }
        md_sampler_free(s);
    }
    md_genome_close(g);

    /* An all-N genome, or one whose every window is too N-rich, has nothing to give. */
    char *all_n = md_malloc(5001);
    memset(all_n, 'N', 5000);
    all_n[5000] = 0;
    const char *nn[1] = {"gap"};
    g = make_genome("alln.fa", 1, nn, &all_n);
    md_sampler_opts_t o;
    md_sampler_opts_init(&o);
    o.len = 100;
    CHECK(md_sampler_new(g, &o) == NULL, "all-N genome must be an error");
    o.max_n_frac = 1.0;
    md_sampler_t *s = md_sampler_new(g, &o);
    CHECK(s != NULL, "all-N genome with no N limit still samples");
    md_sampler_free(s);
    md_genome_close(g);
    free(all_n);
    for (int c = 0; c < 3; c++) free(seqs[c]);
}

/* ---- BED mode ---- */

static void test_bed_tiling(void)
{
    md_rng_t r;
    md_rng_seed(&r, 14);
    const char *names[3] = {"chrA", "chrB", "tiny"};
    char *seqs[3] = {random_seq(&r, 10000), random_seq(&r, 4000), random_seq(&r, 50)};
    for (int i = 8000; i < 8100; i++) seqs[0][i] = 'N';
    md_genome_t *g = make_genome("tiling.fa", 3, names, seqs);
    const int64_t L = 200;
    /* a: 3.5 L long; b: short, mid-contig; c: short at the start; d: short at
     * the end; e: on a contig shorter than L; f: other split; g: exactly L;
     * h: 4 tiles with the third over the N run [8000, 8100). */
    const char *bed_text =
        "chrA\t1000\t1700\ttrain\n"     /* a */
        "chrA\t3000\t3051\ttrain\n"     /* b: 51 bp */
        "chrB\t10\t60\ttrain\n"         /* c */
        "chrB\t3990\t4000\ttrain\n"     /* d */
        "tiny\t0\t50\ttrain\n"          /* e */
        "chrA\t5000\t6000\ttest\n"      /* f */
        "chrB\t2000\t2200\ttrain\n"     /* g */
        "chrA\t7600\t8400\ttrain\n";    /* h */
    const char *path = write_text("tiles.bed", bed_text);
    md_bed_t *bed = md_bed_read(path, 4);
    CHECK(bed != NULL, "read tiles.bed");
    if (!bed) return;

    md_sampler_opts_t o;
    md_sampler_opts_init(&o);
    o.len = L;
    o.bed = bed;
    o.split = "train";
    o.order = MD_ORDER_FILE;
    o.max_n_frac = 0.1;
    md_sampler_t *s = md_sampler_new(g, &o);
    CHECK(s != NULL, "BED sampler");
    if (!s) return;
    /* Expected from the rules in sampler.h, interval by interval. */
    struct { int contig; int64_t start; } want[] = {
        {0, 1000 + 50}, {0, 1000 + 50 + 200}, {0, 1000 + 50 + 400},   /* a: remainder 100, 50 each side */
        {0, 3000 - 74},                                               /* b: d = 149, 74 before, 75 after */
        {1, 0},                                                       /* c: 10 - 75 clamped to 0 */
        {1, 4000 - 200},                                              /* d: clamped to the end */
        {1, 2000},                                                    /* g */
        {0, 7600}, {0, 7800}, {0, 8200},                              /* h: tile [8000, 8200) has 100 N */
    };
    const int64_t n_want = sizeof want / sizeof want[0];
    const md_sampler_stats_t *st = md_sampler_stats(s);
    CHECK(st->n_windows == (uint64_t)n_want, "%llu tiles, want %lld", (unsigned long long)st->n_windows,
          (long long)n_want);
    CHECK(st->n_intervals == 7 && st->n_extended == 3 && st->n_short_skipped == 1 && st->n_tiles_n_dropped == 1,
          "stats: %lld intervals, %lld extended, %lld skipped, %lld dropped", (long long)st->n_intervals,
          (long long)st->n_extended, (long long)st->n_short_skipped, (long long)st->n_tiles_n_dropped);
    for (int64_t i = 0; i < n_want && (uint64_t)i < st->n_windows; i++) {
        md_window_t w;
        md_sampler_window(s, (uint64_t)i, &w);
        CHECK(w.contig == want[i].contig && w.start == want[i].start && w.end == w.start + L,
              "tile %lld: %d:%lld-%lld, want %d:%lld", (long long)i, w.contig, (long long)w.start,
              (long long)w.end, want[i].contig, (long long)want[i].start);
    }
    /* The long interval's tiles lie inside it and do not overlap. */
    md_window_t a0, a1, a2;
    md_sampler_window(s, 0, &a0);
    md_sampler_window(s, 1, &a1);
    md_sampler_window(s, 2, &a2);
    CHECK(a0.start >= 1000 && a0.end <= a1.start && a1.end <= a2.start && a2.end <= 1700, "tiles of a");
    /* The extended window is centred on its interval: the centres differ by at most 1/2. */
    md_window_t b;
    md_sampler_window(s, 3, &b);
    CHECK(fabs((b.start + b.end) / 2.0 - (3000 + 3051) / 2.0) <= 0.5, "extension centred: %lld-%lld",
          (long long)b.start, (long long)b.end);
    /* File order wraps around. */
    md_window_t wrap;
    md_sampler_window(s, (uint64_t)n_want + 1, &wrap);
    CHECK(wrap.start == a1.start && wrap.contig == a1.contig, "file order wraps");
    md_sampler_free(s);

    /* Skipping short intervals. */
    o.short_policy = MD_SHORT_SKIP;
    s = md_sampler_new(g, &o);
    CHECK(s && md_sampler_stats(s)->n_windows == (uint64_t)(n_want - 3) && md_sampler_stats(s)->n_short_skipped == 4,
          "short intervals skipped");
    md_sampler_free(s);
    o.short_policy = MD_SHORT_EXTEND;

    /* Shuffled order: each pass is a permutation of the tiles. */
    o.order = MD_ORDER_SHUFFLE;
    o.seed = 5;
    s = md_sampler_new(g, &o);
    int in_file_order = 1, passes_equal = 1;
    for (int pass = 0; s && pass < 3; pass++) {
        int hit[16] = {0}, ok = 1;
        for (int64_t i = 0; i < n_want; i++) {
            md_window_t w, w_next;
            md_sampler_window(s, (uint64_t)(pass * n_want + i), &w);
            md_sampler_window(s, (uint64_t)((pass + 1) * n_want + i), &w_next);
            int found = -1;
            for (int64_t j = 0; j < n_want; j++)
                if (want[j].contig == w.contig && want[j].start == w.start) found = (int)j;
            if (found < 0 || hit[found]++) ok = 0;
            if (found != i) in_file_order = 0;
            if (w_next.start != w.start || w_next.contig != w.contig) passes_equal = 0;
        }
        CHECK(ok, "pass %d is not a permutation of the tiles", pass);
    }
    CHECK(!in_file_order, "shuffled order equals file order");
    CHECK(!passes_equal, "every pass has the same order");
    md_sampler_free(s);

    /* A larger tile set: the permutation is a bijection. */
    const char *long_path = write_text("long.bed", "chrA\t0\t10000\ttrain\nchrB\t0\t4000\ttrain\n");
    md_bed_t *long_bed = md_bed_read(long_path, 4);
    o.bed = long_bed;
    o.len = 7;
    o.max_n_frac = 1.0;
    s = md_sampler_new(g, &o);
    if (s) {
        uint64_t n = md_sampler_stats(s)->n_windows;
        CHECK(n == 10000 / 7 + 4000 / 7, "%llu tiles", (unsigned long long)n);
        uint8_t *seen = md_calloc(10000 + 4000, 1);
        int64_t dups = 0;
        for (uint64_t i = 0; i < n; i++) {
            md_window_t w;
            md_sampler_window(s, 3 * n + i, &w);
            int64_t key = w.contig * 10000 + w.start;
            dups += seen[key]++ != 0;
        }
        CHECK(dups == 0, "%lld repeated tiles in one pass", (long long)dups);
        free(seen);
    }
    CHECK(s != NULL, "long BED sampler");
    md_sampler_free(s);
    md_bed_free(long_bed);
    o.bed = bed;
    o.len = L;
    o.max_n_frac = 0.1;

    /* Splits: test holds only f, 5 tiles of 200 in [5000, 6000). */
    o.split = "test";
    o.order = MD_ORDER_FILE;
    s = md_sampler_new(g, &o);
    CHECK(s && md_sampler_stats(s)->n_windows == 5, "split test");
    md_sampler_free(s);
    o.split = "valid";
    CHECK(md_sampler_new(g, &o) == NULL, "unknown split is an error");
    o.split = NULL;
    s = md_sampler_new(g, &o);
    CHECK(s && md_sampler_stats(s)->n_windows == (uint64_t)n_want + 5, "no split: every interval");
    md_sampler_free(s);

    /* An interval beyond its contig is an error, whatever its split. */
    md_bed_t *beyond = md_bed_read(write_text("beyond.bed", "chrA\t0\t500\ttrain\nchrB\t3900\t4001\ttest\n"), 4);
    o.bed = beyond;
    o.split = "train";
    CHECK(beyond && md_sampler_new(g, &o) == NULL, "interval beyond its contig");
    md_bed_free(beyond);

    /* An unknown contig: an error, or skipped with skip_unknown_contigs. */
    md_bed_t *unknown = md_bed_read(write_text("unknown.bed", "chrA\t0\t500\ttrain\nchrZ\t0\t500\ttrain\n"), 4);
    o.bed = unknown;
    CHECK(unknown && md_sampler_new(g, &o) == NULL, "unknown contig is an error by default");
    o.skip_unknown_contigs = 1;
    s = md_sampler_new(g, &o);
    CHECK(s && md_sampler_stats(s)->n_windows == 2 && md_sampler_stats(s)->n_unknown_skipped == 1,
          "unknown contig skipped");
    md_sampler_free(s);
    md_bed_free(unknown);

    /* Nothing left after the N filter is an error. */
    md_bed_t *only_n = md_bed_read(write_text("onlyn.bed", "chrA\t8000\t8100\ttrain\n"), 4);
    o.bed = only_n;
    o.len = 100;
    o.skip_unknown_contigs = 0;
    CHECK(only_n && md_sampler_new(g, &o) == NULL, "no tile passes the N filter");
    md_bed_free(only_n);

    md_bed_free(bed);
    md_genome_close(g);
    for (int i = 0; i < 3; i++) free(seqs[i]);
}

int main(void)
{
    test_contig_weights_and_uniform_starts();
    test_determinism_and_tokens();
    test_n_filter();
    test_bed_tiling();
    return md_test_done();
}
