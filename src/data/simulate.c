/* The species tree and the whole-genome driver: builds the model, then
 * simulates each chromosome through the tree (in parallel over
 * chromosomes) and measures the realised divergences on the output. */
#include "data/simulate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/simulate_impl.h"
#include "util/log.h"
#include "util/xalloc.h"

#define CODE(c) sim_code[(unsigned char)(c)]

const char *const md_sim_species_names[MD_SIM_N_SPECIES] = {"human", "chimpanzee", "bonobo", "gorilla",
                                                            "orangutan"};

/* The tree in preorder; species index for leaves, -1 for ancestors. */
static const char *const node_names[MD_SIM_N_NODES] = {"root",       "homininae", "hominini", "human", "pan",
                                                       "chimpanzee", "bonobo",    "gorilla",  "orangutan"};
static const int node_parent[MD_SIM_N_NODES] = {-1, 0, 1, 2, 2, 4, 4, 1, 0};
static const int node_species[MD_SIM_N_NODES] = {-1, -1, -1, 0, -1, 1, 2, 3, 4};

/* Target p-distances at each ancestor, from the four pairs that define the
 * tree: human-orangutan, human-gorilla, human-chimpanzee, chimpanzee-bonobo. */
static double ancestor_p(int node)
{
    switch (node) {
    case 0: return 0.031;
    case 1: return 0.016;
    case 2: return 0.012;
    case 4: return 0.004;
    }
    return 0;
}

void md_sim_opts_init(md_sim_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->n_chroms = 3;
    o->chrom_len = 1000000;
    o->div_scale = 1.0;
    o->indel_ratio = 0.1;
    o->lineage_repeats = 10.0;
    o->subfamily_repeats = 64.0;
    o->isochore_len = 300000;
    o->gaps = 1;
}

static int check_opts(const md_sim_opts_t *o)
{
    if (o->n_chroms < 1 || o->n_chroms > 1000) {
        md_error("number of chromosomes %d is out of range [1, 1000]", o->n_chroms);
        return -1;
    }
    if (o->chrom_len < 1000 || o->chrom_len >= ((int64_t)1 << 32)) {
        md_error("chromosome length %lld is out of range [1000, 2^32)", (long long)o->chrom_len);
        return -1;
    }
    if (!(o->div_scale > 0 && o->div_scale <= 10)) {
        md_error("divergence scale %g is out of range (0, 10]", o->div_scale);
        return -1;
    }
    if (!(o->indel_ratio >= 0 && o->indel_ratio <= 1)) {
        md_error("indel ratio %g is out of range [0, 1]", o->indel_ratio);
        return -1;
    }
    if (!(o->lineage_repeats >= 0 && o->lineage_repeats <= 1000)) {
        md_error("lineage repeat rate %g is out of range [0, 1000]", o->lineage_repeats);
        return -1;
    }
    if (!(o->subfamily_repeats >= 0 && o->subfamily_repeats <= 1000)) {
        md_error("subfamily repeat rate %g is out of range [0, 1000]", o->subfamily_repeats);
        return -1;
    }
    if (o->isochore_len < 1000) {
        md_error("isochore length %lld is below 1000", (long long)o->isochore_len);
        return -1;
    }
    return 0;
}

static int mrca(int a, int b)
{
    for (int x = a; x >= 0; x = node_parent[x])
        for (int y = b; y >= 0; y = node_parent[y])
            if (x == y) return x;
    return 0;
}

static void setup_tree(const md_sim_opts_t *o, md_sim_result_t *res)
{
    for (int v = 0; v < MD_SIM_N_NODES; v++) {
        md_sim_branch_t *b = &res->branches[v];
        b->name = node_names[v];
        b->parent = node_parent[v];
        /* Half the Jukes-Cantor distance of the ancestor's p-distance,
         * raised by (1 + 0.9p): CpG hot spots and the transition bias hide
         * more repeated hits than Jukes-Cantor's uniform model expects
         * (factor measured on this simulator's output over several seeds). */
        double p = ancestor_p(v) * o->div_scale;
        double pc = p * (1.0 + 0.9 * p);
        if (pc > 0.7) pc = 0.7;
        b->height = p > 0 ? -0.375 * log(1.0 - 4.0 * pc / 3.0) : 0;
    }
    for (int v = 1; v < MD_SIM_N_NODES; v++)
        res->branches[v].length = res->branches[node_parent[v]].height - res->branches[v].height;
    int leaf[MD_SIM_N_SPECIES];
    for (int v = 0; v < MD_SIM_N_NODES; v++) if (node_species[v] >= 0) leaf[node_species[v]] = v;
    for (int a = 0; a < MD_SIM_N_SPECIES; a++)
        for (int b = 0; b < MD_SIM_N_SPECIES; b++)
            res->target[a][b] = a == b ? 0 : ancestor_p(mrca(leaf[a], leaf[b])) * o->div_scale;
}

/* What one chromosome contributes to the result's totals. */
typedef struct {
    md_sim_branch_t branch[MD_SIM_N_NODES];
    int64_t sites[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES], diffs[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES];
    int64_t n_base[4], n_cg, n_dinuc, n_masked, n_loci;
    md_sim_region_t *iso, *cgi;
    int64_t n_iso, n_cgi;
} chrom_stats_t;

static void base_composition(const sim_chrom_t *c, chrom_stats_t *st)
{
    for (int64_t i = 0; i < c->len; i++) {
        int b = CODE(c->seq[i]);
        if (b > 3) continue;
        st->n_base[b]++;
        st->n_masked += sim_is_lower(c->seq[i]);
        if (i + 1 < c->len && CODE(c->seq[i + 1]) < 4) {
            st->n_dinuc++;
            st->n_cg += b == 1 && CODE(c->seq[i + 1]) == 2;
        }
    }
    st->n_loci = c->n_loci;
}

static void free_node(sim_chrom_t *c)
{
    free(c->seq);
    free(c->anc);
    free(c->loci);
    memset(c, 0, sizeof *c);
}

static void simulate_chrom(const sim_model_t *m, const md_sim_opts_t *o, int ci, md_sim_result_t *res,
                           chrom_stats_t *st)
{
    sim_chrom_t node[MD_SIM_N_NODES] = {{0}};
    int children[MD_SIM_N_NODES] = {0};
    for (int v = 1; v < MD_SIM_N_NODES; v++) children[node_parent[v]]++;
    sim_base_chrom(m, o, ci, &node[0], &st->iso, &st->n_iso, &st->cgi, &st->n_cgi);
    base_composition(&node[0], st);
    int64_t L = node[0].len;
    /* Per species, the base at each base-genome position (0 where deleted),
     * so that any two species compare position by position. */
    uint8_t *at = md_calloc((size_t)(MD_SIM_N_SPECIES * L), 1);
    for (int v = 1; v < MD_SIM_N_NODES; v++) {
        int pv = node_parent[v];
        md_rng_t r;
        sim_rng_init(&r, o->seed, SIM_STREAM_BRANCH, (uint64_t)ci, (uint64_t)v);
        sim_derive_chrom(m, o, v, &node[pv], res->branches[v].length, &r, &node[v], &st->branch[v]);
        if (--children[pv] == 0) {
            if (pv == 0 && o->keep_ancestor) {
                md_sim_chrom_t *dst = &res->ancestor.chroms[ci];
                dst->seq = node[0].seq;
                dst->len = node[0].len;
                node[0].seq = NULL;
            }
            free_node(&node[pv]);
        }
        int s = node_species[v];
        if (s < 0) continue;
        uint8_t *a = at + (size_t)s * L;
        for (int64_t j = 0; j < node[v].len; j++)
            if (node[v].anc[j] >= 0) a[node[v].anc[j]] = (uint8_t)(CODE(node[v].seq[j]) + 1);
        md_sim_chrom_t *dst = &res->species[s].chroms[ci];
        dst->seq = node[v].seq;
        dst->len = node[v].len;
        node[v].seq = NULL;
        if (o->keep_ancestry) { dst->anc_pos = node[v].anc; node[v].anc = NULL; }
        free_node(&node[v]);
    }
    for (int x = 0; x < MD_SIM_N_SPECIES; x++)
        for (int y = x + 1; y < MD_SIM_N_SPECIES; y++) {
            const uint8_t *a = at + (size_t)x * L, *b = at + (size_t)y * L;
            int64_t sites = 0, diffs = 0;
            for (int64_t i = 0; i < L; i++) {
                /* 1..4 are bases; 0 (deleted) and 5 (N) are skipped. */
                int ok = a[i] - 1u < 4u && b[i] - 1u < 4u;
                sites += ok;
                diffs += ok && a[i] != b[i];
            }
            st->sites[x][y] = st->sites[y][x] = sites;
            st->diffs[x][y] = st->diffs[y][x] = diffs;
        }
    free(at);
}

int md_simulate_genomes(const md_sim_opts_t *o, md_sim_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (check_opts(o) < 0) return -1;
    setup_tree(o, res);
    sim_model_t *m = md_malloc(sizeof *m);
    sim_model_build(m, o->seed, node_parent);
    int nc = o->n_chroms;
    for (int s = 0; s < MD_SIM_N_SPECIES; s++) {
        res->species[s].n_chroms = nc;
        res->species[s].chroms = md_calloc((size_t)nc, sizeof(md_sim_chrom_t));
    }
    if (o->keep_ancestor) {
        res->ancestor.n_chroms = nc;
        res->ancestor.chroms = md_calloc((size_t)nc, sizeof(md_sim_chrom_t));
    }
    chrom_stats_t *st = md_calloc((size_t)nc, sizeof *st);
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < nc; c++) simulate_chrom(m, o, c, res, &st[c]);

    /* Totals, summed in chromosome order so that they never depend on
     * which thread finished first. */
    int64_t n_base[4] = {0}, n_cg = 0, n_dinuc = 0, n_masked = 0;
    size_t iso_cap = 0, cgi_cap = 0;
    for (int c = 0; c < nc; c++) {
        for (int s = 0; s < MD_SIM_N_SPECIES; s++) {
            snprintf(res->species[s].chroms[c].name, sizeof res->species[s].chroms[c].name, "chr%d", c + 1);
            if (o->keep_ancestor) snprintf(res->ancestor.chroms[c].name, sizeof res->ancestor.chroms[c].name, "chr%d", c + 1);
        }
        for (int v = 1; v < MD_SIM_N_NODES; v++) {
            md_sim_branch_t *b = &res->branches[v];
            b->substitutions += st[c].branch[v].substitutions;
            b->indels += st[c].branch[v].indels;
            b->repeat_insertions += st[c].branch[v].repeat_insertions;
            b->slippages += st[c].branch[v].slippages;
            b->subfamily_insertions += st[c].branch[v].subfamily_insertions;
        }
        for (int x = 0; x < MD_SIM_N_SPECIES; x++)
            for (int y = 0; y < MD_SIM_N_SPECIES; y++) {
                res->sites[x][y] += st[c].sites[x][y];
                res->diffs[x][y] += st[c].diffs[x][y];
            }
        for (int b = 0; b < 4; b++) n_base[b] += st[c].n_base[b];
        n_cg += st[c].n_cg;
        n_dinuc += st[c].n_dinuc;
        n_masked += st[c].n_masked;
        res->n_tandem_loci += st[c].n_loci;
        MD_GROW(res->isochores, iso_cap, (size_t)(res->n_isochores + st[c].n_iso + 1));
        if (st[c].n_iso) memcpy(res->isochores + res->n_isochores, st[c].iso, (size_t)st[c].n_iso * sizeof *st[c].iso);
        res->n_isochores += st[c].n_iso;
        MD_GROW(res->cpg_islands, cgi_cap, (size_t)(res->n_cpg_islands + st[c].n_cgi + 1));
        if (st[c].n_cgi) memcpy(res->cpg_islands + res->n_cpg_islands, st[c].cgi, (size_t)st[c].n_cgi * sizeof *st[c].cgi);
        res->n_cpg_islands += st[c].n_cgi;
        free(st[c].iso);
        free(st[c].cgi);
    }
    for (int x = 0; x < MD_SIM_N_SPECIES; x++)
        for (int y = 0; y < MD_SIM_N_SPECIES; y++)
            res->realised[x][y] = res->sites[x][y] ? (double)res->diffs[x][y] / (double)res->sites[x][y] : 0;
    int64_t n_acgt = n_base[0] + n_base[1] + n_base[2] + n_base[3];
    if (n_acgt > 0 && n_dinuc > 0) {
        double fc = (double)n_base[1] / n_acgt, fg = (double)n_base[2] / n_acgt;
        res->base_gc = fc + fg;
        res->base_cpg_oe = fc > 0 && fg > 0 ? ((double)n_cg / n_dinuc) / (fc * fg) : 0;
        res->base_masked = (double)n_masked / n_acgt;
    }
    for (int f = 0; f < MD_SIM_N_FAMILIES; f++) {
        res->family_names[f] = sim_family_names[f];
        res->family_consensus[f] = md_strdup(m->consensus[f]);
    }
    for (int v = 1; v < MD_SIM_N_NODES; v++) res->subfamily_consensus[v] = md_strdup(m->subfamily[v]);
    free(st);
    sim_model_free(m);
    free(m);
    return 0;
}

void md_sim_result_free(md_sim_result_t *res)
{
    if (!res) return;
    for (int s = 0; s <= MD_SIM_N_SPECIES; s++) {
        md_sim_genome_t *g = s < MD_SIM_N_SPECIES ? &res->species[s] : &res->ancestor;
        for (int c = 0; c < g->n_chroms; c++) {
            free(g->chroms[c].seq);
            free(g->chroms[c].anc_pos);
        }
        free(g->chroms);
    }
    free(res->isochores);
    free(res->cpg_islands);
    for (int f = 0; f < MD_SIM_N_FAMILIES; f++) free(res->family_consensus[f]);
    for (int v = 0; v < MD_SIM_N_NODES; v++) free(res->subfamily_consensus[v]);
    memset(res, 0, sizeof *res);
}

static void newick_node(const md_sim_result_t *res, int v, FILE *fp)
{
    int first = 1;
    for (int c = 0; c < MD_SIM_N_NODES; c++) {
        if (node_parent[c] != v) continue;
        fputc(first ? '(' : ',', fp);
        first = 0;
        newick_node(res, c, fp);
    }
    if (!first) fputc(')', fp);
    fputs(res->branches[v].name, fp);
    if (v > 0) fprintf(fp, ":%.6f", res->branches[v].length);
}

void md_sim_write_newick(const md_sim_result_t *res, FILE *fp)
{
    newick_node(res, 0, fp);
    fputc(';', fp);
}
