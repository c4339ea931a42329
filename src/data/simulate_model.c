/* The genome-wide parts of the simulator: the Markov background tables and
 * the repeat families, plus the mutation primitives everything else uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/simulate_impl.h"
#include "util/xalloc.h"

const uint8_t sim_code[256] = {
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 0, 4, 1, 4, 4, 4, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 0, 4, 1, 4, 4, 4, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

const char *const sim_family_names[MD_SIM_N_FAMILIES] = {"SINE1", "LINE1", "SINE2", "LTR1"};

#define CODE(c) sim_code[(unsigned char)(c)]

/* ---- Markov background ---- */

/* Log-weights shared by every GC class, so that isochores differ in
 * composition but not in "dialect", as in a real genome. */
typedef float sim_logw_t[SIM_N_CTX][4];

static void markov_logweights(md_rng_t *r, sim_logw_t lw)
{
    for (unsigned ctx = 0; ctx < SIM_N_CTX; ctx++) {
        int last = ctx & 3, prev = (ctx >> 2) & 3;
        for (int b = 0; b < 4; b++) {
            int weak = b == 0 || b == 3;
            double w = 0.35 * md_rng_normal(r);
            /* Homopolymer runs, poly-A/T most of all, are longer in real DNA
             * than composition alone predicts. */
            if (b == last) w += weak ? 0.35 : 0.15;
            if (b == last && b == prev) w += weak ? 0.25 : 0.05;
            /* TpA is under-represented (observed/expected ~0.75). */
            if (last == 3 && b == 0) w -= 0.35;
            lw[ctx][b] = (float)w;
        }
    }
}

static void markov_probs(sim_logw_t lw, double theta, double cpg_factor, double (*p)[4])
{
    for (unsigned ctx = 0; ctx < SIM_N_CTX; ctx++) {
        double s = 0;
        for (int b = 0; b < 4; b++) {
            double w = exp(lw[ctx][b]) * ((b == 1 || b == 2) ? theta : 1 - theta);
            if ((ctx & 3) == 1 && b == 2) w *= cpg_factor;
            p[ctx][b] = w;
            s += w;
        }
        for (int b = 0; b < 4; b++) p[ctx][b] /= s;
    }
}

/* The chain's stationary distribution over contexts, by power iteration
 * from the warm start pi (the chain forgets its start within a few dozen
 * steps); returns its GC and sets *cpg_oe to CpG observed/expected. */
static double markov_stationary(double (*p)[4], double *pi, double *tmp, double *cpg_oe)
{
    for (int it = 0; it < 40; it++) {
        memset(tmp, 0, SIM_N_CTX * sizeof *tmp);
        for (unsigned ctx = 0; ctx < SIM_N_CTX; ctx++) {
            unsigned base = (ctx << 2) & (SIM_N_CTX - 1);
            for (int b = 0; b < 4; b++) tmp[base | b] += pi[ctx] * p[ctx][b];
        }
        memcpy(pi, tmp, SIM_N_CTX * sizeof *pi);
    }
    double c = 0, g = 0, cg = 0;
    for (unsigned ctx = 0; ctx < SIM_N_CTX; ctx++) {
        if ((ctx & 3) == 1) { c += pi[ctx]; cg += pi[ctx] * p[ctx][2]; }
        if ((ctx & 3) == 2) g += pi[ctx];
    }
    *cpg_oe = c > 0 && g > 0 ? cg / (c * g) : 0;
    return c + g;
}

/* Finds the GC tilt and the CpG factor that give the chain a stationary GC
 * of target_gc and a CpG observed/expected of target_oe: a bisection on the
 * tilt inside a few fixed-point rounds on the factor (o/e is nearly
 * proportional to it). */
static void markov_build(sim_markov_t *m, sim_logw_t lw, double target_gc, double target_oe)
{
    double (*p)[4] = md_malloc(SIM_N_CTX * sizeof *p);
    double *pi = md_malloc(SIM_N_CTX * sizeof *pi), *tmp = md_malloc(SIM_N_CTX * sizeof *tmp);
    for (int i = 0; i < SIM_N_CTX; i++) pi[i] = 1.0 / SIM_N_CTX;
    double factor = target_oe, theta = 0.5, oe = 0;
    for (int round = 0; round < 4; round++) {
        double lo = 0.02, hi = 0.98;
        for (int it = 0; it < 22; it++) {
            theta = 0.5 * (lo + hi);
            markov_probs(lw, theta, factor, p);
            if (markov_stationary(p, pi, tmp, &oe) < target_gc) lo = theta; else hi = theta;
        }
        theta = 0.5 * (lo + hi);
        markov_probs(lw, theta, factor, p);
        m->gc = markov_stationary(p, pi, tmp, &oe);
        if (oe > 0) factor *= target_oe / oe;
    }
    markov_probs(lw, theta, factor, p);
    m->gc = markov_stationary(p, pi, tmp, &oe);
    for (unsigned ctx = 0; ctx < SIM_N_CTX; ctx++) {
        double c = 0;
        for (int b = 0; b < 3; b++) {
            c += p[ctx][b];
            double t = floor(c * 4294967296.0);
            m->cum[ctx][b] = t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
        }
    }
    free(p); free(pi); free(tmp);
}

/* ---- Repeat families ---- */

/* n bases with the given GC, A:T ratio a_share:(1-a_share), and CpG kept
 * with probability cpg_keep (redrawn otherwise). */
static void random_bases(md_rng_t *r, sim_buf_t *out, int64_t n, double gc, double a_share, double cpg_keep)
{
    for (int64_t i = 0; i < n; i++) {
        int b;
        for (int tries = 0;; tries++) {
            if (md_rng_uniform(r) < gc) b = md_rng_uniform(r) < 0.5 ? 1 : 2;
            else b = md_rng_uniform(r) < a_share ? 0 : 3;
            if (b != 2 || out->n == 0 || CODE(out->s[out->n - 1]) != 1 || tries > 0) break;
            if (md_rng_uniform(r) < cpg_keep) break;
        }
        sim_buf_putc(out, sim_base_upper[b]);
    }
}

static void build_families(sim_model_t *m, md_rng_t *r)
{
    sim_buf_t b = {0};
    /* SINE1: left monomer, A-rich linker, right monomer = a diverged left
     * monomer with a 31 bp insertion: the dimeric layout of Alu. */
    random_bases(r, &b, 120, 0.60, 0.5, 0.55);
    char left[120];
    memcpy(left, b.s, 120);
    for (int i = 0; i < 20; i++) {
        if (md_rng_uniform(r) < 0.8) sim_buf_putc(&b, 'A');
        else random_bases(r, &b, 1, 0.4, 0.5, 1.0);
    }
    sim_buf_t right = {0};
    sim_buf_put(&right, left, 120);
    sim_substitute(right.s, right.n, 14, r);
    int64_t ins_at = 40 + (int64_t)md_rng_below(r, 60);
    sim_buf_put(&b, right.s, ins_at);
    random_bases(r, &b, 31, 0.55, 0.5, 0.7);
    sim_buf_put(&b, right.s + ins_at, 120 - ins_at);
    free(right.s);
    m->consensus[SIM_SINE1] = b.s;
    m->consensus_len[SIM_SINE1] = b.n;

    /* LINE1: GC-rich 5' UTR, then A-rich (on the sense strand) ORFs. */
    memset(&b, 0, sizeof b);
    random_bases(r, &b, 900, 0.58, 0.5, 0.5);
    random_bases(r, &b, 1000, 0.42, 0.62, 0.25);
    random_bases(r, &b, 60, 0.38, 0.5, 0.25);
    random_bases(r, &b, 3800, 0.40, 0.62, 0.25);
    random_bases(r, &b, 240, 0.38, 0.55, 0.25);
    m->consensus[SIM_LINE1] = b.s;
    m->consensus_len[SIM_LINE1] = b.n;

    memset(&b, 0, sizeof b);
    random_bases(r, &b, 262, 0.50, 0.5, 0.45);
    m->consensus[SIM_SINE2] = b.s;
    m->consensus_len[SIM_SINE2] = b.n;

    /* LTR1: a solo LTR, which starts TG and ends CA. */
    memset(&b, 0, sizeof b);
    sim_buf_put(&b, "TG", 2);
    random_bases(r, &b, 446, 0.50, 0.5, 0.4);
    sim_buf_put(&b, "CA", 2);
    m->consensus[SIM_LTR1] = b.s;
    m->consensus_len[SIM_LTR1] = b.n;

}

/* 1 when unit[0, n) repeats a shorter unit (AAAA, ACAC): such an array
 * would be a plain microsatellite. */
static int unit_is_periodic(const char *unit, int n)
{
    for (int p = 1; p < n; p++) {
        if (n % p) continue;
        int same = 1;
        for (int i = p; i < n && same; i++) same = unit[i] == unit[i - p];
        if (same) return 1;
    }
    return 0;
}

/* The lineage subfamilies in preorder, each from its parent's (the SINE1
 * consensus below the root), as Alu subfamilies nest (AluY, AluYb, AluYb8):
 * 3% substitutions, CpG sites first as in any copy, and one insertion away
 * from the ends. A node's subfamily thus carries every change of its
 * ancestors' plus its own, and differs from the SINE1 consensus and from its
 * siblings' by enough to be told apart in one copy. */
static void build_subfamilies(sim_model_t *m, const int parent[MD_SIM_N_NODES], md_rng_t *r)
{
    for (int v = 1; v < MD_SIM_N_NODES; v++) {
        int p = parent[v];
        const char *from = p > 0 ? m->subfamily[p] : m->consensus[SIM_SINE1];
        int64_t n = p > 0 ? m->subfamily_len[p] : m->consensus_len[SIM_SINE1];
        sim_buf_t b = {0};
        sim_buf_put(&b, from, n);
        sim_substitute(b.s, b.n, (int64_t)llround(0.03 * (double)n), r);
        int64_t at = 30 + (int64_t)md_rng_below(r, (uint64_t)(n - 60));
        sim_buf_t out = {0};
        sim_buf_put(&out, b.s, at);
        /* The insertion: a tandem array of a 4-7 bp unit of the branch's
         * own, 36-48 bp (as mouse L1 subfamilies are told apart by their
         * 5' monomers), a local k-mer spectrum no other subfamily has. */
        char unit[8];
        int period = 4 + (int)md_rng_below(r, 4);
        do {
            sim_buf_t u = {0};
            random_bases(r, &u, period, 0.5, 0.5, 0.5);
            memcpy(unit, u.s, (size_t)period);
            free(u.s);
        } while (unit_is_periodic(unit, period));
        int64_t ins_len = 36 + (int64_t)md_rng_below(r, 13);
        for (int64_t i = 0; i < ins_len; i++) sim_buf_putc(&out, unit[i % period]);
        sim_buf_put(&out, b.s + at, n - at);
        free(b.s);
        m->subfamily[v] = out.s;
        m->subfamily_len[v] = out.n;
    }
}

void sim_model_build(sim_model_t *m, uint64_t seed, const int parent[MD_SIM_N_NODES])
{
    memset(m, 0, sizeof *m);
    /* The human isochore families L1, L2, H1, H2, H3 and their shares. */
    static const double gc[SIM_N_GC_CLASSES] = {0.36, 0.39, 0.43, 0.48, 0.53};
    static const double wt[SIM_N_GC_CLASSES] = {0.20, 0.36, 0.24, 0.12, 0.08};
    md_rng_t r;
    sim_rng_init(&r, seed, SIM_STREAM_MODEL, 0, 0);
    float (*lw)[4] = md_malloc(SIM_N_CTX * sizeof *lw);
    markov_logweights(&r, lw);
    for (int k = 0; k < SIM_N_GC_CLASSES; k++) {
        m->class_gc[k] = gc[k];
        m->class_weight[k] = wt[k];
        markov_build(&m->isochore[k], lw, gc[k], 0.21);
    }
    markov_build(&m->island, lw, 0.65, 0.80);
    free(lw);
    sim_rng_init(&r, seed, SIM_STREAM_FAMILIES, 0, 0);
    build_families(m, &r);
    sim_rng_init(&r, seed, SIM_STREAM_SUBFAMILIES, 0, 0);
    build_subfamilies(m, parent, &r);
}

void sim_model_free(sim_model_t *m)
{
    for (int f = 0; f < MD_SIM_N_FAMILIES; f++) free(m->consensus[f]);
    for (int v = 0; v < MD_SIM_N_NODES; v++) free(m->subfamily[v]);
    memset(m, 0, sizeof *m);
}

/* ---- Mutation primitives ---- */

void sim_buf_put(sim_buf_t *b, const char *s, int64_t n)
{
    MD_GROW(b->s, b->cap, (size_t)(b->n + n + 1));
    memcpy(b->s + b->n, s, (size_t)n);
    b->n += n;
    b->s[b->n] = 0;
}

void sim_buf_putc(sim_buf_t *b, char c)
{
    MD_GROW(b->s, b->cap, (size_t)(b->n + 2));
    b->s[b->n++] = c;
    b->s[b->n] = 0;
}

void sim_revcomp(char *s, int64_t n)
{
    for (int64_t i = 0, j = n - 1; i <= j; i++, j--) {
        char a = s[i], b = s[j];
        int ca = CODE(a), cb = CODE(b);
        s[i] = cb < 4 ? sim_base_char(3 - cb, sim_is_lower(b)) : b;
        s[j] = ca < 4 ? sim_base_char(3 - ca, sim_is_lower(a)) : a;
    }
}

int64_t sim_substitute(char *seq, int64_t len, int64_t n_sub, md_rng_t *r)
{
    if (len <= 0) return 0;
    int64_t applied = 0, attempts = 0, cap = 200 * n_sub + 10000;
    while (applied < n_sub && attempts++ < cap) {
        int64_t p = (int64_t)md_rng_below(r, (uint64_t)len);
        int b = CODE(seq[p]);
        if (b > 3) continue;
        /* CpG sites mutate about ten times faster (methylated C deaminates
         * to T): accept them always and other bases one time in ten. */
        int cpg = (b == 1 && p + 1 < len && CODE(seq[p + 1]) == 2) || (b == 2 && p > 0 && CODE(seq[p - 1]) == 1);
        if (!cpg && md_rng_below(r, 10) != 0) continue;
        double u = md_rng_uniform(r);
        int nb;
        if (cpg) nb = u < 0.95 ? b ^ 2 : u < 0.975 ? b ^ 1 : b ^ 3;
        else nb = u < 2.0 / 3 ? b ^ 2 : u < 5.0 / 6 ? b ^ 1 : b ^ 3;   /* ts:tv 2:1 */
        seq[p] = sim_base_char(nb, sim_is_lower(seq[p]));
        applied++;
    }
    return applied;
}

/* A copy of cons[0, clen), a consensus of family fam or of one of its
 * subfamilies: see sim_repeat_copy(). */
static void repeat_copy(const char *cons, int64_t clen, int fam, int young, md_rng_t *r, sim_buf_t *out)
{
    static const double div_lo[MD_SIM_N_FAMILIES] = {0.02, 0.03, 0.18, 0.06};
    static const double div_hi[MD_SIM_N_FAMILIES] = {0.16, 0.22, 0.30, 0.18};
    int64_t from = 0, to = clen;
    double u = md_rng_uniform(r);
    switch (fam) {
    case SIM_SINE1:
        if (u >= 0.8) from = (int64_t)md_rng_below(r, (uint64_t)(clen - 60));
        break;
    case SIM_LINE1:
        /* Reverse transcription mostly stops early: most copies are short
         * 3' fragments, a few are full length. */
        if (u >= 0.08) {
            int64_t fl = (int64_t)(-900.0 * log(1.0 - md_rng_uniform(r)));
            if (fl < 80) fl = 80;
            if (fl > clen) fl = clen;
            from = clen - fl;
        }
        break;
    case SIM_SINE2: {
        int64_t fl = 60 + (int64_t)md_rng_below(r, (uint64_t)(clen - 59));
        from = (int64_t)md_rng_below(r, (uint64_t)(clen - fl + 1));
        to = from + fl;
        break;
    }
    default:
        if (u >= 0.85) {
            int64_t fl = 100 + (int64_t)md_rng_below(r, (uint64_t)(clen - 99));
            from = (int64_t)md_rng_below(r, (uint64_t)(clen - fl + 1));
            to = from + fl;
        }
    }
    sim_buf_t c = {0};
    sim_buf_put(&c, cons + from, to - from);
    if (fam == SIM_SINE1 || fam == SIM_LINE1) {
        int64_t tail = 8 + (int64_t)md_rng_below(r, 28);
        for (int64_t i = 0; i < tail; i++)
            sim_buf_putc(&c, md_rng_uniform(r) < 0.92 ? 'A' : sim_base_upper[md_rng_below(r, 4)]);
    }
    double div = young ? 0.015 * md_rng_uniform(r) : div_lo[fam] + (div_hi[fam] - div_lo[fam]) * md_rng_uniform(r);
    sim_substitute(c.s, c.n, (int64_t)llround(div * c.n), r);
    /* Small indels at a tenth of the substitution rate, applied on the copy
     * itself (it is at most a few kb, so moving bytes is cheap). */
    int64_t n_indel = (int64_t)llround(div * c.n * 0.1);
    for (int64_t k = 0; k < n_indel && c.n > 8; k++) {
        int64_t len = 1 + (int64_t)md_rng_below(r, 4);
        int64_t pos = (int64_t)md_rng_below(r, (uint64_t)(c.n - len));
        if (md_rng_uniform(r) < 0.5) {
            memmove(c.s + pos, c.s + pos + len, (size_t)(c.n - pos - len + 1));
            c.n -= len;
        } else {
            MD_GROW(c.s, c.cap, (size_t)(c.n + len + 1));
            memmove(c.s + pos + len, c.s + pos, (size_t)(c.n - pos + 1));
            for (int64_t i = 0; i < len; i++) c.s[pos + i] = sim_base_upper[md_rng_below(r, 4)];
            c.n += len;
        }
    }
    if (md_rng_uniform(r) < 0.5) sim_revcomp(c.s, c.n);
    for (int64_t i = 0; i < c.n; i++)
        if (CODE(c.s[i]) < 4) c.s[i] = sim_base_lower[CODE(c.s[i])];
    sim_buf_put(out, c.s, c.n);
    free(c.s);
}

void sim_repeat_copy(const sim_model_t *m, int fam, int young, md_rng_t *r, sim_buf_t *out)
{
    repeat_copy(m->consensus[fam], m->consensus_len[fam], fam, young, r, out);
}

void sim_subfamily_copy(const sim_model_t *m, int node, md_rng_t *r, sim_buf_t *out)
{
    repeat_copy(m->subfamily[node], m->subfamily_len[node], SIM_SINE1, 1, r, out);
}
