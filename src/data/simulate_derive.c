/* One branch of the tree on one chromosome: substitutions in place, then
 * indels, new repeat copies (of the shared young families and of the
 * branch's own subfamily) and tandem-repeat slippage as a sorted list of
 * edits applied in a single pass, which also carries the base-genome
 * coordinates and the tandem-repeat loci over to the child. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/simulate_impl.h"
#include "util/xalloc.h"

#define CODE(c) sim_code[(unsigned char)(c)]

enum { EV_SLIP, EV_INDEL, EV_REPEAT, EV_SUBFAMILY };

typedef struct {
    int64_t pos;       /* edit before parent base pos */
    int64_t del;       /* parent bases removed from pos */
    int64_t ins_off, ins_len;   /* inserted bases, in the arena */
    int64_t order;     /* generation order, a tie-break that keeps sorting deterministic */
    int kind;
} edit_t;

typedef struct {
    edit_t *v;
    int64_t n;
    size_t cap;
    sim_buf_t arena;
} edits_t;

static void edit_add(edits_t *e, int kind, int64_t pos, int64_t del, const char *ins, int64_t ins_len)
{
    MD_GROW(e->v, e->cap, (size_t)e->n + 1);
    e->v[e->n] = (edit_t){pos, del, e->arena.n, ins_len, e->n, kind};
    e->n++;
    if (ins_len) sim_buf_put(&e->arena, ins, ins_len);
}

static int edit_cmp(const void *a, const void *b)
{
    const edit_t *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Indel lengths 1-10 with P(k) ~ k^-1.6: about half are single bases, as
 * in primate alignments. */
static void indel_length_cdf(double cdf[10])
{
    double s = 0, c = 0;
    for (int k = 1; k <= 10; k++) s += pow(k, -1.6);
    for (int k = 1; k <= 10; k++) { c += pow(k, -1.6) / s; cdf[k - 1] = c; }
}

static int64_t indel_length(const double cdf[10], md_rng_t *r)
{
    double u = md_rng_uniform(r);
    for (int k = 0; k < 10; k++) if (u < cdf[k]) return k + 1;
    return 10;
}

/* 1 when [pos-1, pos+del] touches the margin [s-1, e] of a tandem locus:
 * only slippage may edit a locus or its edges, which keeps loci exact. */
static int near_locus(const sim_chrom_t *c, int64_t pos, int64_t del)
{
    int64_t lo = 0, hi = c->n_loci;   /* first locus with end >= pos - 1 */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (c->loci[mid].end < pos - 1) lo = mid + 1; else hi = mid;
    }
    return lo < c->n_loci && c->loci[lo].start - 1 <= pos + del;
}

static int touches_n(const char *seq, int64_t len, int64_t pos, int64_t del)
{
    for (int64_t i = pos > 0 ? pos - 1 : 0; i <= pos + del && i < len; i++)
        if (CODE(seq[i]) > 3) return 1;
    return 0;
}

/* Proposes n_copies insertions of young repeat copies, each at a random
 * position with a target-site duplication of 8-16 bp: of SINE1 (70%) or
 * LINE1 for EV_REPEAT, of node's subfamily for EV_SUBFAMILY. */
static void add_insertions(const sim_model_t *m, int kind, int64_t n_copies, int node, const char *seq, int64_t n,
                           md_rng_t *r, edits_t *ev)
{
    sim_buf_t copy = {0};
    for (int64_t k = 0; k < n_copies && n > 32; k++) {
        int fam = kind == EV_SUBFAMILY ? -1 : md_rng_uniform(r) < 0.7 ? SIM_SINE1 : SIM_LINE1;
        int64_t tsd = 8 + (int64_t)md_rng_below(r, 9);
        int64_t pos = tsd + (int64_t)md_rng_below(r, (uint64_t)(n - tsd));
        copy.n = 0;
        if (kind == EV_SUBFAMILY) sim_subfamily_copy(m, node, r, &copy);
        else sim_repeat_copy(m, fam, 1, r, &copy);
        sim_buf_put(&copy, seq + pos - tsd, tsd);
        edit_add(ev, kind, pos, 0, copy.s, copy.n);
    }
    free(copy.s);
}

static void propose_edits(const sim_model_t *m, const md_sim_opts_t *o, int node, const sim_chrom_t *p,
                          const char *seq, double length, int64_t n_sub, int64_t n_bases, md_rng_t *r, edits_t *ev)
{
    int64_t n = p->len;
    /* Slippage: each locus gains or loses 1-3 units. */
    int64_t n_slip = p->n_loci ? (int64_t)llround((double)p->n_loci * length * 25.0) : 0;
    for (int64_t k = 0; k < n_slip; k++) {
        const sim_locus_t *l = &p->loci[md_rng_below(r, (uint64_t)p->n_loci)];
        int64_t per = l->period, copies = (l->end - l->start) / per;
        double u = md_rng_uniform(r);
        int64_t units = u < 0.7 ? 1 : u < 0.9 ? 2 : 3;
        int expand = md_rng_uniform(r) < 0.5 || copies - units < 2;
        if (units > copies) units = copies;
        if (expand) edit_add(ev, EV_SLIP, l->end, 0, seq + l->end - units * per, units * per);
        else edit_add(ev, EV_SLIP, l->end - units * per, units * per, NULL, 0);
    }
    /* Small indels, half tandem duplications of the preceding bases. */
    int64_t n_indel = (int64_t)llround(o->indel_ratio * (double)n_sub);
    char buf[16];
    double cdf[10];
    indel_length_cdf(cdf);
    for (int64_t k = 0; k < n_indel && n > 12; k++) {
        int64_t len = indel_length(cdf, r);
        int64_t pos = 1 + (int64_t)md_rng_below(r, (uint64_t)(n - len - 1));
        if (md_rng_uniform(r) < 0.5) {
            edit_add(ev, EV_INDEL, pos, len, NULL, 0);
        } else if (md_rng_uniform(r) < 0.5 && pos >= len) {
            edit_add(ev, EV_INDEL, pos, 0, seq + pos - len, len);
        } else {
            int lower = sim_is_lower(seq[pos - 1]);
            for (int64_t i = 0; i < len; i++) buf[i] = sim_base_char((int)md_rng_below(r, 4), lower);
            edit_add(ev, EV_INDEL, pos, 0, buf, len);
        }
    }
    /* New copies of the young families shared by all species, at a rate
     * that follows the branch's length, then of the branch's own subfamily,
     * at a rate per branch: even the short chimpanzee and bonobo branches
     * get enough to tell them apart. */
    int64_t n_rep = (int64_t)llround(o->lineage_repeats * ((double)n_bases / 1e6) * (length * 100.0));
    add_insertions(m, EV_REPEAT, n_rep, node, seq, n, r, ev);
    int64_t n_subfam = (int64_t)llround(o->subfamily_repeats * ((double)n_bases / 1e6));
    add_insertions(m, EV_SUBFAMILY, n_subfam, node, seq, n, r, ev);
}

/* Keeps edits that do not collide (earliest wins), touch N, or reach into
 * a tandem locus unless they are its slippage. */
static void filter_edits(const sim_chrom_t *p, const char *seq, edits_t *ev, md_sim_branch_t *stats)
{
    if (ev->n) qsort(ev->v, (size_t)ev->n, sizeof *ev->v, edit_cmp);
    int64_t kept = 0, last_pos = -1, last_end = 0;
    for (int64_t k = 0; k < ev->n; k++) {
        edit_t e = ev->v[k];
        if (e.pos <= last_pos || e.pos < last_end) continue;
        if (e.kind != EV_SLIP && (touches_n(seq, p->len, e.pos, e.del) || near_locus(p, e.pos, e.del))) continue;
        ev->v[kept++] = e;
        last_pos = e.pos;
        last_end = e.pos + e.del;
        if (e.kind == EV_SLIP) stats->slippages++;
        else if (e.kind == EV_INDEL) stats->indels++;
        else if (e.kind == EV_REPEAT) stats->repeat_insertions++;
        else stats->subfamily_insertions++;
    }
    ev->n = kept;
}

static void apply_edits(const sim_chrom_t *p, const char *seq, const edits_t *ev, sim_chrom_t *out)
{
    int64_t n = p->len, new_len = n;
    for (int64_t k = 0; k < ev->n; k++) new_len += ev->v[k].ins_len - ev->v[k].del;
    char *ns = md_malloc((size_t)new_len + 1);
    int64_t *na = md_malloc((size_t)(new_len > 0 ? new_len : 1) * sizeof *na);
    int64_t i = 0, j = 0;
    for (int64_t k = 0; k <= ev->n; k++) {
        int64_t until = k < ev->n ? ev->v[k].pos : n;
        memcpy(ns + j, seq + i, (size_t)(until - i));
        for (int64_t t = 0; t < until - i; t++) na[j + t] = p->anc ? p->anc[i + t] : i + t;
        j += until - i;
        i = until;
        if (k == ev->n) break;
        const edit_t *e = &ev->v[k];
        if (e->ins_len) memcpy(ns + j, ev->arena.s + e->ins_off, (size_t)e->ins_len);
        for (int64_t t = 0; t < e->ins_len; t++) na[j + t] = -1;
        j += e->ins_len;
        i += e->del;
    }
    ns[new_len] = 0;
    /* Loci move by the net length of the edits before them; their own
     * slippage (the only edits inside or at the end of a locus) resizes them. */
    out->loci = md_malloc((size_t)(p->n_loci ? p->n_loci : 1) * sizeof *out->loci);
    out->n_loci = p->n_loci;
    int64_t k = 0, shift = 0;
    for (int64_t l = 0; l < p->n_loci; l++) {
        const sim_locus_t *pl = &p->loci[l];
        while (k < ev->n && ev->v[k].pos < pl->start) { shift += ev->v[k].ins_len - ev->v[k].del; k++; }
        int64_t start = pl->start + shift;
        while (k < ev->n && ev->v[k].pos < pl->end) { shift += ev->v[k].ins_len - ev->v[k].del; k++; }
        int64_t end = pl->end + shift;
        for (int64_t t = k; t < ev->n && ev->v[t].pos == pl->end; t++) end += ev->v[t].ins_len;
        out->loci[l] = (sim_locus_t){start, end, pl->period};
    }
    out->seq = ns;
    out->len = new_len;
    out->anc = na;
}

void sim_derive_chrom(const sim_model_t *m, const md_sim_opts_t *o, int node, const sim_chrom_t *parent,
                      double length, md_rng_t *r, sim_chrom_t *out, md_sim_branch_t *stats)
{
    int64_t n = parent->len, n_bases = 0;
    char *seq = md_malloc((size_t)n + 1);
    memcpy(seq, parent->seq, (size_t)n + 1);
    for (int64_t i = 0; i < n; i++) n_bases += CODE(seq[i]) < 4;
    int64_t n_sub = (int64_t)llround(length * (double)n_bases);
    stats->substitutions += sim_substitute(seq, n, n_sub, r);
    edits_t ev = {0};
    propose_edits(m, o, node, parent, seq, length, n_sub, n_bases, r, &ev);
    filter_edits(parent, seq, &ev, stats);
    memset(out, 0, sizeof *out);
    apply_edits(parent, seq, &ev, out);
    free(seq);
    free(ev.v);
    free(ev.arena.s);
}
