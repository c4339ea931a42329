/* One chromosome of the base genome: isochores, CpG islands, the Markov
 * background, interspersed and tandem repeats, and a telomeric N gap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/simulate_impl.h"
#include "util/xalloc.h"

#define CODE(c) sim_code[(unsigned char)(c)]

/* Marks on positions that later features must not overwrite. */
enum { FREE = 0, PROTECTED = 1, TANDEM = 2 };

typedef struct {
    md_sim_region_t *v;
    int *cls;              /* isochores only: the GC class */
    int64_t n;
    size_t cap, cls_cap;
} region_list_t;

static void region_add(region_list_t *l, int chrom, int64_t start, int64_t end, double gc, int cls)
{
    MD_GROW(l->v, l->cap, (size_t)l->n + 1);
    MD_GROW(l->cls, l->cls_cap, (size_t)l->n + 1);
    l->v[l->n] = (md_sim_region_t){chrom, start, end, gc};
    l->cls[l->n] = cls;
    l->n++;
}

static int region_cmp(const void *a, const void *b)
{
    const md_sim_region_t *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

static int locus_cmp(const void *a, const void *b)
{
    const sim_locus_t *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Index of the isochore holding pos. */
static int64_t isochore_at(const region_list_t *iso, int64_t pos)
{
    int64_t lo = 0, hi = iso->n - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (iso->v[mid].start <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
}

static void layout_isochores(const sim_model_t *m, const md_sim_opts_t *o, int ci, md_rng_t *r, region_list_t *iso)
{
    int64_t L = o->chrom_len, med = o->isochore_len, pos = 0;
    int prev = -1;
    while (pos < L) {
        double f = exp(0.5 * md_rng_normal(r));
        if (f < 0.25) f = 0.25;
        if (f > 3) f = 3;
        int64_t len = (int64_t)(med * f);
        if (L - (pos + len) < med / 4) len = L - pos;
        /* A family never follows itself, so neighbouring isochores differ. */
        double tot = 0;
        for (int k = 0; k < SIM_N_GC_CLASSES; k++) if (k != prev) tot += m->class_weight[k];
        double u = md_rng_uniform(r) * tot;
        int cls = -1;
        for (int k = 0; k < SIM_N_GC_CLASSES; k++) {
            if (k == prev) continue;
            cls = k;
            if ((u -= m->class_weight[k]) < 0) break;
        }
        region_add(iso, ci, pos, pos + len, m->class_gc[cls], cls);
        prev = cls;
        pos += len;
    }
}

static int any_mark(const uint8_t *mark, int64_t from, int64_t to)
{
    for (int64_t i = from; i < to; i++)
        if (mark[i]) return 1;
    return 0;
}

static void layout_islands(const md_sim_opts_t *o, int ci, int64_t gap, md_rng_t *r, const region_list_t *iso,
                           uint8_t *mark, region_list_t *cgi)
{
    int64_t L = o->chrom_len;
    if (L - gap < 20000) return;
    int64_t n = (int64_t)llround((double)(L - gap) / 100000.0);
    if (n < 1) n = 1;
    for (int64_t k = 0; k < n; k++) {
        for (int tries = 0; tries < 100; tries++) {
            double f = exp(0.45 * md_rng_normal(r));
            int64_t len = (int64_t)(1000 * f);
            if (len < 500) len = 500;
            if (len > 2500) len = 2500;
            int64_t pos = gap + (int64_t)md_rng_below(r, (uint64_t)(L - gap - len));
            /* Islands sit mostly in GC-rich isochores (gene-dense regions). */
            double gc = iso->v[isochore_at(iso, pos)].gc_target;
            double w = (gc - 0.30) / 0.25;
            if (md_rng_uniform(r) >= w) continue;
            if (any_mark(mark, pos > 0 ? pos - 1 : 0, pos + len + 1 < L ? pos + len + 1 : L)) continue;
            memset(mark + pos, PROTECTED, (size_t)len);
            region_add(cgi, ci, pos, pos + len, 0.65, -1);
            break;
        }
    }
    if (cgi->n) qsort(cgi->v, (size_t)cgi->n, sizeof *cgi->v, region_cmp);
}

static void background(const sim_model_t *m, const md_sim_opts_t *o, md_rng_t *r, const region_list_t *iso,
                       const region_list_t *cgi, char *seq)
{
    unsigned ctx = (unsigned)md_rng_below(r, SIM_N_CTX);
    int64_t ii = 0, ci = 0, L = o->chrom_len;
    for (int64_t pos = 0; pos < L;) {
        while (ii + 1 < iso->n && iso->v[ii].end <= pos) ii++;
        while (ci < cgi->n && cgi->v[ci].end <= pos) ci++;
        const sim_markov_t *tab = &m->isochore[iso->cls[ii]];
        int64_t end = iso->v[ii].end;
        if (ci < cgi->n && cgi->v[ci].start <= pos) { tab = &m->island; end = cgi->v[ci].end; }
        else if (ci < cgi->n && cgi->v[ci].start < end) end = cgi->v[ci].start;
        for (; pos < end; pos++) seq[pos] = sim_base_upper[sim_markov_next(tab, &ctx, r)];
    }
}

static void interspersed(const sim_model_t *m, const md_sim_opts_t *o, int64_t gap, md_rng_t *r,
                         const region_list_t *iso, const uint8_t *mark, char *seq)
{
    /* Oldest family first, so that younger copies land inside older ones. */
    static const int order[MD_SIM_N_FAMILIES] = {SIM_SINE2, SIM_LINE1, SIM_LTR1, SIM_SINE1};
    static const double coverage[MD_SIM_N_FAMILIES] = {0.11, 0.19, 0.03, 0.07};
    int64_t L = o->chrom_len;
    sim_buf_t copy = {0};
    for (int k = 0; k < MD_SIM_N_FAMILIES; k++) {
        int fam = order[k];
        double target = coverage[fam] * (double)(L - gap);
        double written = 0;
        for (int64_t attempts = 0; written < target && attempts < 100000; attempts++) {
            int64_t pos = gap + (int64_t)md_rng_below(r, (uint64_t)(L - gap));
            double gc = iso->v[isochore_at(iso, pos)].gc_target;
            /* Alu-like SINEs accumulate in GC-rich isochores, L1 in AT-rich ones. */
            double w = fam == SIM_SINE1 ? (gc - 0.30) / 0.25 : fam == SIM_LINE1 ? (0.60 - gc) / 0.25 : 1.0;
            if (md_rng_uniform(r) >= w) continue;
            copy.n = 0;
            sim_repeat_copy(m, fam, 0, r, &copy);
            int64_t len = copy.n < L - pos ? copy.n : L - pos;
            if (any_mark(mark, pos, pos + len)) continue;
            memcpy(seq + pos, copy.s, (size_t)len);
            written += (double)len;
        }
    }
    free(copy.s);
}

/* A microsatellite or minisatellite unit. */
static int tandem_unit(md_rng_t *r, int mini, char *unit)
{
    int period;
    if (mini) {
        period = 10 + (int)md_rng_below(r, 55);
        for (int i = 0; i < period; i++) {
            int b = md_rng_uniform(r) < 0.55 ? 1 + (int)md_rng_below(r, 2) : (md_rng_below(r, 2) ? 3 : 0);
            unit[i] = sim_base_upper[b];
        }
        return period;
    }
    static const double w[6] = {0.30, 0.30, 0.12, 0.18, 0.06, 0.04};
    double u = md_rng_uniform(r);
    period = 1;
    for (int k = 0; k < 6; k++) { period = k + 1; if ((u -= w[k]) < 0) break; }
    for (;;) {
        /* Microsatellites are AT-rich: poly-A, (CA)n, (AT)n, (AAAT)n... */
        for (int i = 0; i < period; i++) {
            double v = md_rng_uniform(r);
            unit[i] = v < 0.38 ? 'A' : v < 0.76 ? 'T' : v < 0.88 ? 'C' : 'G';
        }
        int uniform = 1, cg = 0;
        for (int i = 1; i < period; i++) uniform &= unit[i] == unit[0];
        for (int i = 0; i < period; i++) cg |= unit[i] == 'C' && unit[(i + 1) % period] == 'G';
        if ((period == 1 || !uniform) && !cg) return period;
    }
}

static void tandem(const md_sim_opts_t *o, int64_t gap, md_rng_t *r, uint8_t *mark, char *seq, sim_chrom_t *out)
{
    int64_t L = o->chrom_len, span = L - gap;
    int64_t n_micro = span / 1300, n_mini = span / 40000;
    size_t cap = 0;
    char unit[64];
    for (int64_t k = 0; k < n_micro + n_mini; k++) {
        int mini = k >= n_micro;
        int period = tandem_unit(r, mini, unit);
        int64_t copies;
        if (mini) copies = (int64_t)(5 * exp(md_rng_uniform(r) * log(8.0)));
        else {
            int64_t tot = 12 + (int64_t)(-25.0 * log(1.0 - md_rng_uniform(r)));
            if (tot > 100) tot = 100;
            copies = tot / period;
        }
        if (copies < 2) copies = 2;
        int64_t len = copies * period;
        if (len + 2 >= span) continue;
        int64_t pos = gap + 1 + (int64_t)md_rng_below(r, (uint64_t)(span - len - 1));
        if (pos + len + 1 > L || any_mark(mark, pos - 1, pos + len + 1)) continue;
        double impurity = mini ? 0.05 : 0.02;
        for (int64_t i = 0; i < len; i++) {
            int b = CODE(unit[i % period]);
            if (md_rng_uniform(r) < impurity) b = (int)md_rng_below(r, 4);
            seq[pos + i] = sim_base_lower[b];
        }
        memset(mark + pos, TANDEM, (size_t)len);
        MD_GROW(out->loci, cap, (size_t)out->n_loci + 1);
        out->loci[out->n_loci++] = (sim_locus_t){pos, pos + len, period};
    }
    if (out->n_loci) qsort(out->loci, (size_t)out->n_loci, sizeof *out->loci, locus_cmp);
}

void sim_base_chrom(const sim_model_t *m, const md_sim_opts_t *o, int ci, sim_chrom_t *out,
                    md_sim_region_t **iso_out, int64_t *n_iso, md_sim_region_t **cgi_out, int64_t *n_cgi)
{
    int64_t L = o->chrom_len;
    int64_t gap = o->gaps ? (L / 100 < 10000 ? L / 100 : 10000) : 0;
    md_rng_t r;
    sim_rng_init(&r, o->seed, SIM_STREAM_BASE, (uint64_t)ci, 0);
    memset(out, 0, sizeof *out);
    region_list_t iso = {0}, cgi = {0};
    uint8_t *mark = md_calloc((size_t)L, 1);
    memset(mark, PROTECTED, (size_t)gap);
    layout_isochores(m, o, ci, &r, &iso);
    layout_islands(o, ci, gap, &r, &iso, mark, &cgi);
    char *seq = md_malloc((size_t)L + 1);
    background(m, o, &r, &iso, &cgi, seq);
    interspersed(m, o, gap, &r, &iso, mark, seq);
    tandem(o, gap, &r, mark, seq, out);
    memset(seq, 'N', (size_t)gap);
    seq[L] = 0;
    free(mark);
    out->seq = seq;
    out->len = L;
    free(iso.cls);
    free(cgi.cls);
    *iso_out = iso.v; *n_iso = iso.n;
    *cgi_out = cgi.v; *n_cgi = cgi.n;
}
