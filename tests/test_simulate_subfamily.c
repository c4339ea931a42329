/* The simulator's species signal: every branch's repeat subfamily leaves
 * its own k-mers in exactly the species below that branch (chimpanzee and
 * bonobo share those of their ancestor's branch and differ in their own),
 * and their number follows --subfamily-repeats.
 *
 * A subfamily's "own" k-mers are the 16-mers of its consensus that are in
 * neither its parent's subfamily (or the SINE1 consensus), nor the base
 * genome, nor the subfamily of any branch outside its lineage: the k-mers
 * its diagnostic changes made. The clades are this test's own statement of
 * the tree, not the library's. */
#include <stdint.h>

#include "data/simulate.h"
#include "testutil.h"
#include "util/xalloc.h"

enum { K = 16 };

/* The tree (((human,(chimpanzee,bonobo)),gorilla),orangutan): per branch,
 * by node name, the species below it, in md_sim_species_names order. */
static const struct {
    const char *node;
    int below[MD_SIM_N_SPECIES];
} clades[] = {
    {"homininae", {1, 1, 1, 1, 0}}, {"hominini", {1, 1, 1, 0, 0}}, {"pan", {0, 1, 1, 0, 0}},
    {"human", {1, 0, 0, 0, 0}},     {"chimpanzee", {0, 1, 0, 0, 0}}, {"bonobo", {0, 0, 1, 0, 0}},
    {"gorilla", {0, 0, 0, 1, 0}},   {"orangutan", {0, 0, 0, 0, 1}},
};
enum { N_CLADES = sizeof clades / sizeof clades[0] };

/* A sorted set of 2-bit-packed k-mers. */
typedef struct {
    uint32_t *v;
    int64_t n;
    size_t cap;
} kset_t;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int kset_has(const kset_t *s, uint32_t k)
{
    return s->n && bsearch(&k, s->v, (size_t)s->n, sizeof k, cmp_u32) != NULL;
}

/* Calls fn(k-mer, arg) for every k-mer of s[0, n) without N, on both strands. */
static void each_kmer(const char *s, int64_t n, void (*fn)(uint32_t, void *), void *arg)
{
    uint32_t fw = 0, rc = 0;
    int run = 0;
    for (int64_t i = 0; i < n; i++) {
        int b = md_test_base_code(s[i]);
        if (b < 0) { run = 0; continue; }
        fw = fw << 2 | (uint32_t)b;
        rc = rc >> 2 | (uint32_t)(3 - b) << (2 * K - 2);
        if (++run >= K) { fn(fw, arg); fn(rc, arg); }
    }
}

static void add_kmer(uint32_t k, void *arg)
{
    kset_t *s = arg;
    MD_GROW(s->v, s->cap, (size_t)s->n + 1);
    s->v[s->n++] = k;
}

static void kset_sort(kset_t *s)
{
    if (s->n) qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_u32);
    int64_t m = 0;
    for (int64_t i = 0; i < s->n; i++) if (!m || s->v[i] != s->v[m - 1]) s->v[m++] = s->v[i];
    s->n = m;
}

/* Every clade's own k-mers in one open-addressing table: k-mer -> the
 * bitmask of the clades that own it. */
enum { TABLE_SIZE = 1 << 14 };
typedef struct {
    uint32_t key[TABLE_SIZE];
    uint16_t mask[TABLE_SIZE];   /* 0: empty slot */
    int64_t hits[N_CLADES];
} table_t;

static uint16_t *table_slot(table_t *t, uint32_t k)
{
    uint32_t i = (k * 2654435761u) & (TABLE_SIZE - 1);
    while (t->mask[i] && t->key[i] != k) i = (i + 1) & (TABLE_SIZE - 1);
    t->key[i] = k;
    return &t->mask[i];
}

static void count_kmer(uint32_t k, void *arg)
{
    table_t *t = arg;
    uint32_t i = (k * 2654435761u) & (TABLE_SIZE - 1);
    while (t->mask[i] && t->key[i] != k) i = (i + 1) & (TABLE_SIZE - 1);
    for (int c = 0; c < N_CLADES; c++) t->hits[c] += t->mask[i] >> c & 1;
}

static int branch_of(const md_sim_result_t *res, const char *name)
{
    for (int v = 0; v < MD_SIM_N_NODES; v++) if (!strcmp(res->branches[v].name, name)) return v;
    CHECK(0, "no branch named %s", name);
    exit(1);
}

static void simulate(md_sim_result_t *res, double subfamily_repeats)
{
    md_sim_opts_t o;
    md_sim_opts_init(&o);
    o.seed = 3;
    o.n_chroms = 2;
    o.chrom_len = 250000;
    o.isochore_len = 60000;
    o.keep_ancestor = 1;
    o.subfamily_repeats = subfamily_repeats;
    int r = md_simulate_genomes(&o, res);
    CHECK(r == 0, "md_simulate_genomes failed");
    if (r) exit(1);
}

/* own[c]: clade c's own k-mers (both strands), from res's consensus
 * sequences and base genome. */
static void own_kmers(const md_sim_result_t *res, kset_t own[N_CLADES])
{
    kset_t base = {0};
    for (int c = 0; c < res->ancestor.n_chroms; c++)
        each_kmer(res->ancestor.chroms[c].seq, res->ancestor.chroms[c].len, add_kmer, &base);
    kset_sort(&base);
    for (int c = 0; c < N_CLADES; c++) {
        int v = branch_of(res, clades[c].node), p = res->branches[v].parent;
        const char *mine = res->subfamily_consensus[v];
        const char *from = p > 0 ? res->subfamily_consensus[p] : res->family_consensus[0];
        CHECK(!strcmp(res->family_names[0], "SINE1"), "family 0 is %s", res->family_names[0]);
        /* Everything a copy outside the lineage could hold: the parent's
         * subfamily and the subfamilies of branches whose species are not
         * all below this one. */
        kset_t other = {0}, all = {0};
        each_kmer(from, (int64_t)strlen(from), add_kmer, &other);
        for (int d = 0; d < N_CLADES; d++) {
            int inside = 1;
            for (int s = 0; s < MD_SIM_N_SPECIES; s++) inside &= !clades[d].below[s] || clades[c].below[s];
            if (inside) continue;
            const char *x = res->subfamily_consensus[branch_of(res, clades[d].node)];
            each_kmer(x, (int64_t)strlen(x), add_kmer, &other);
        }
        kset_sort(&other);
        each_kmer(mine, (int64_t)strlen(mine), add_kmer, &all);
        kset_sort(&all);
        own[c] = (kset_t){0};
        for (int64_t i = 0; i < all.n; i++)
            if (!kset_has(&other, all.v[i]) && !kset_has(&base, all.v[i])) add_kmer(all.v[i], &own[c]);
        CHECK(own[c].n >= 2 * 16, "%s: only %lld own k-mers (both strands)", clades[c].node, (long long)own[c].n);
        free(other.v);
        free(all.v);
    }
    free(base.v);
}

/* copies[c][s]: occurrences of clade c's own k-mers in species s, divided
 * by their number: about the number of copies that carry them. */
static void count_copies(const md_sim_result_t *res, const kset_t own[N_CLADES],
                         double copies[N_CLADES][MD_SIM_N_SPECIES])
{
    table_t *t = md_calloc(1, sizeof *t);
    for (int c = 0; c < N_CLADES; c++)
        for (int64_t i = 0; i < own[c].n; i++) *table_slot(t, own[c].v[i]) |= (uint16_t)(1u << c);
    for (int s = 0; s < MD_SIM_N_SPECIES; s++) {
        memset(t->hits, 0, sizeof t->hits);
        for (int ch = 0; ch < res->species[s].n_chroms; ch++)
            each_kmer(res->species[s].chroms[ch].seq, res->species[s].chroms[ch].len, count_kmer, t);
        for (int c = 0; c < N_CLADES; c++) copies[c][s] = (double)t->hits[c] / (double)own[c].n;
    }
    free(t);
}

int main(void)
{
    md_sim_result_t res;
    kset_t own[N_CLADES];
    double copies[N_CLADES][MD_SIM_N_SPECIES], copies2[N_CLADES][MD_SIM_N_SPECIES];

    /* The default rate: 64 per Mbp of the parent per branch, on 0.5 Mbp
     * (a little more after the insertions above) about 32 copies per branch;
     * fewer carry the own k-mers (some collide with other edits, some are 5'
     * truncated past the diagnostic changes, a few lose them to divergence). */
    simulate(&res, 64);
    own_kmers(&res, own);
    count_copies(&res, own, copies);
    for (int c = 0; c < N_CLADES; c++) {
        int v = branch_of(&res, clades[c].node);
        CHECK(res.branches[v].subfamily_insertions > 20 && res.branches[v].subfamily_insertions <= 36,
              "%s: %lld subfamily copies inserted", clades[c].node, (long long)res.branches[v].subfamily_insertions);
        fprintf(stderr, "%-10s own k-mers %3lld, copies per species:", clades[c].node, (long long)own[c].n / 2);
        for (int s = 0; s < MD_SIM_N_SPECIES; s++) fprintf(stderr, " %5.1f", copies[c][s]);
        fputc('\n', stderr);
        /* Outside the clade, a k-mer turns up now and then where a shared
         * young copy or an old one happens to carry the same change. */
        for (int s = 0; s < MD_SIM_N_SPECIES; s++) {
            if (clades[c].below[s])
                CHECK(copies[c][s] > 15, "%s subfamily: only %.1f copies in %s, below it", clades[c].node,
                      copies[c][s], md_sim_species_names[s]);
            else
                CHECK(copies[c][s] < 1, "%s subfamily: %.1f copies in %s, not below it", clades[c].node,
                      copies[c][s], md_sim_species_names[s]);
        }
    }
    md_sim_result_free(&res);

    /* Twice the rate, twice the copies (the same subfamilies: they depend
     * on the seed only). */
    simulate(&res, 128);
    count_copies(&res, own, copies2);
    for (int c = 0; c < N_CLADES; c++)
        for (int s = 0; s < MD_SIM_N_SPECIES; s++)
            if (clades[c].below[s])
                CHECK(copies2[c][s] > 1.6 * copies[c][s] && copies2[c][s] < 2.4 * copies[c][s],
                      "%s subfamily in %s: %.1f copies at rate 128, %.1f at 64", clades[c].node,
                      md_sim_species_names[s], copies2[c][s], copies[c][s]);
    md_sim_result_free(&res);

    /* None at rate 0: then nothing tells a species' windows apart but
     * substitutions and the shared families' copies. */
    simulate(&res, 0);
    count_copies(&res, own, copies2);
    for (int c = 0; c < N_CLADES; c++) {
        CHECK(res.branches[branch_of(&res, clades[c].node)].subfamily_insertions == 0, "%s: copies at rate 0",
              clades[c].node);
        for (int s = 0; s < MD_SIM_N_SPECIES; s++)
            CHECK(copies2[c][s] < 1, "%s subfamily: %.1f copies in %s at rate 0", clades[c].node, copies2[c][s],
                  md_sim_species_names[s]);
    }
    md_sim_result_free(&res);
    for (int c = 0; c < N_CLADES; c++) free(own[c].v);

    md_sim_opts_t o;
    md_sim_opts_init(&o);
    o.subfamily_repeats = -1;
    CHECK(md_simulate_genomes(&o, &res) < 0, "a negative subfamily rate accepted");
    return md_test_done();
}
