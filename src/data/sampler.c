#include "data/sampler.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "seq/tokenizer.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* md_hash64 streams: one per kind of decision, so that turning one option
 * on or off never shifts the draws of another. */
enum { STREAM_POSITION = 1, STREAM_REVCOMP = 2, STREAM_PERMUTATION = 3 };

/* Feistel rounds of the tile permutation; 4 already make a pseudo-random
 * permutation (Luby-Rackoff), 6 for margin. */
enum { PERM_ROUNDS = 6 };

/* count consecutive windows on one contig: number j starts at start + j * step.
 * cum is the number of windows in all earlier segments. */
typedef struct {
    uint64_t cum;
    int64_t start;
    int64_t count;
    int32_t contig;
} segment_t;

struct md_sampler {
    const md_genome_t *g;
    md_sampler_opts_t o;
    int64_t step;              /* 1 in uniform mode (every start), L in BED mode (tiles) */
    segment_t *seg;
    int64_t n_seg;
    size_t seg_cap;
    int perm_half_bits;        /* the permutation works on [0, 4^perm_half_bits) */
    md_sampler_stats_t st;
};

void md_sampler_opts_init(md_sampler_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->len = 1024;
    o->seed = 1;
    o->max_n_frac = 0.1;
    o->short_policy = MD_SHORT_EXTEND;
    o->order = MD_ORDER_SHUFFLE;
}

/* The most N a window may hold; the epsilon keeps e.g. 0.1 * 1000 at 100
 * whatever the rounding of 0.1. */
static int64_t max_n_count(const md_sampler_opts_t *o)
{
    if (o->max_n_frac >= 1.0) return o->len;
    return (int64_t)floor(o->max_n_frac * (double)o->len + 1e-9);
}

/* Appends count windows from start, joining them to the last segment when
 * they continue it. */
static void add_windows(md_sampler_t *s, int32_t contig, int64_t start, int64_t count)
{
    if (count <= 0) return;
    segment_t *last = s->n_seg ? &s->seg[s->n_seg - 1] : NULL;
    if (last && last->contig == contig && last->start + last->count * s->step == start) {
        last->count += count;
    } else {
        MD_GROW(s->seg, s->seg_cap, (size_t)s->n_seg + 1);
        s->seg[s->n_seg++] = (segment_t){s->st.n_windows, start, count, contig};
    }
    s->st.n_windows += (uint64_t)count;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Adds the starts s in [0, len - L] of contig c whose window holds at most k
 * N. The N count f(s) of [s, s + L) moves by [s + L is N] - [s is N] per
 * step, so it is linear between the points where either indicator flips
 * (a, b, a - L, b - L for each N run [a, b)); on each such piece the
 * accepted starts form one interval, found in O(1) from f at its first
 * start and the slope. O(runs log runs) per contig. */
static void add_accepted_starts(md_sampler_t *s, int c, int64_t k)
{
    const md_contig_t *ct = md_genome_contig(s->g, c);
    const int64_t L = s->o.len, last_start = ct->len - L;
    if (k >= L || ct->n_n_runs == 0) {
        add_windows(s, c, 0, last_start + 1);
        return;
    }
    int64_t n_bp = 0, *bp = md_malloc(sizeof *bp * (size_t)(4 * ct->n_n_runs + 2));
    bp[n_bp++] = 0;
    bp[n_bp++] = last_start + 1;
    for (int64_t r = 0; r < ct->n_n_runs; r++) {
        int64_t a = ct->n_runs[r].start, b = ct->n_runs[r].end;
        int64_t cand[4] = {a, b, a - L, b - L};
        for (int j = 0; j < 4; j++)
            if (cand[j] > 0 && cand[j] <= last_start) bp[n_bp++] = cand[j];
    }
    qsort(bp, (size_t)n_bp, sizeof *bp, cmp_i64);
    for (int64_t j = 0; j + 1 < n_bp; j++) {
        int64_t p = bp[j], q = bp[j + 1];
        if (p == q) continue;
        int64_t f = md_genome_count_n(s->g, c, p, p + L);
        int64_t slope = q - p > 1 ? md_genome_count_n(s->g, c, p + 1, p + 1 + L) - f : 0;
        int64_t lo = p, hi = q;
        if (slope == 0) {
            if (f > k) hi = lo;
        } else if (slope > 0) {
            if (f > k) hi = lo;
            else if (p + (k - f) + 1 < q) hi = p + (k - f) + 1;
        } else if (f > k) {
            lo = p + (f - k);
            if (lo > q) lo = q;
        }
        add_windows(s, c, lo, hi - lo);
    }
    free(bp);
}

static int build_uniform(md_sampler_t *s)
{
    const int64_t L = s->o.len, k = max_n_count(&s->o);
    int n = md_genome_n_contigs(s->g), longest = -1;
    for (int c = 0; c < n; c++) {
        const md_contig_t *ct = md_genome_contig(s->g, c);
        if (longest < 0 || ct->len > md_genome_contig(s->g, longest)->len) longest = c;
        if (ct->len < L) continue;
        s->st.n_contigs_used++;
        s->st.n_positions += (uint64_t)(ct->len - L + 1);
        add_accepted_starts(s, c, k);
    }
    if (s->st.n_contigs_used == 0) {
        const md_contig_t *ct = md_genome_contig(s->g, longest);
        md_error("window length %lld is longer than every contig (the longest, '%s', has %lld bp)", (long long)L,
                 ct->name, (long long)ct->len);
        return -1;
    }
    if (s->st.n_windows == 0) {
        md_error("no window of %lld bp in the genome has at most %lld N (max N fraction %g)", (long long)L,
                 (long long)k, s->o.max_n_frac);
        return -1;
    }
    md_info("%llu windows of %lld bp on %d of %d contigs (%llu starts, %.2f%% with at most %lld N)",
            (unsigned long long)s->st.n_windows, (long long)L, s->st.n_contigs_used, n,
            (unsigned long long)s->st.n_positions, 100.0 * (double)s->st.n_windows / (double)s->st.n_positions,
            (long long)k);
    return 0;
}

/* Checks every interval of the file against the genome and fills contig_of
 * (per BED chrom; -1 = absent and skipped). */
static int resolve_bed_contigs(md_sampler_t *s, int *contig_of)
{
    const md_bed_t *b = s->o.bed;
    for (int i = 0; i < b->n_chroms; i++) contig_of[i] = md_genome_find(s->g, b->chroms[i]);
    int64_t first_unknown = -1;
    for (int64_t i = 0; i < b->n; i++) {
        const md_bed_interval_t *iv = &b->iv[i];
        int c = contig_of[iv->chrom];
        if (c < 0) {
            if (!s->o.skip_unknown_contigs) {
                md_error("%s:%lld: interval %s:%lld-%lld is on contig '%s', which is not in the genome "
                         "(--skip-unknown-contigs skips such intervals)",
                         b->path, (long long)iv->line, b->chroms[iv->chrom], (long long)iv->start,
                         (long long)iv->end, b->chroms[iv->chrom]);
                return -1;
            }
            if (first_unknown < 0) first_unknown = i;
            s->st.n_unknown_skipped++;
            continue;
        }
        const md_contig_t *ct = md_genome_contig(s->g, c);
        if (iv->end > ct->len) {
            md_error("%s:%lld: interval %s:%lld-%lld ends beyond its contig (%lld bp)", b->path,
                     (long long)iv->line, ct->name, (long long)iv->start, (long long)iv->end, (long long)ct->len);
            return -1;
        }
    }
    if (s->st.n_unknown_skipped) {
        const md_bed_interval_t *iv = &b->iv[first_unknown];
        md_warn("%s: skipped %lld intervals on contigs absent from the genome (the first: line %lld, '%s')",
                b->path, (long long)s->st.n_unknown_skipped, (long long)iv->line, b->chroms[iv->chrom]);
    }
    return 0;
}

/* Adds the tiles of interval [a, b) on contig c, minus those above the N limit. */
static void add_tiles(md_sampler_t *s, int c, int64_t a, int64_t b, int64_t k)
{
    const int64_t L = s->o.len, len = b - a;
    const md_contig_t *ct = md_genome_contig(s->g, c);
    int64_t first, n_tiles;
    if (len >= L) {
        n_tiles = len / L;
        first = a + (len - n_tiles * L) / 2;
    } else if (s->o.short_policy == MD_SHORT_EXTEND && ct->len >= L) {
        n_tiles = 1;
        first = a - (L - len) / 2;
        if (first < 0) first = 0;
        if (first > ct->len - L) first = ct->len - L;
        s->st.n_extended++;
    } else {
        s->st.n_short_skipped++;
        return;
    }
    if (k >= L) {
        add_windows(s, c, first, n_tiles);
        return;
    }
    /* Keep runs of consecutive passing tiles together as one segment. */
    int64_t run_start = first, run_len = 0;
    for (int64_t j = 0; j < n_tiles; j++) {
        int64_t st = first + j * L;
        if (md_genome_count_n(s->g, c, st, st + L) <= k) {
            if (run_len == 0) run_start = st;
            run_len++;
        } else {
            s->st.n_tiles_n_dropped++;
            add_windows(s, c, run_start, run_len);
            run_len = 0;
        }
    }
    add_windows(s, c, run_start, run_len);
}

static int build_bed(md_sampler_t *s)
{
    const md_bed_t *b = s->o.bed;
    const int64_t L = s->o.len, k = max_n_count(&s->o);
    uint8_t *selected = NULL;
    if (s->o.split) {
        selected = md_malloc((size_t)b->n_splits + 1);
        if (md_bed_select_splits(b, s->o.split, selected) < 0) { free(selected); return -1; }
    }
    int *contig_of = md_malloc(sizeof *contig_of * ((size_t)b->n_chroms + 1));
    int ret = resolve_bed_contigs(s, contig_of);
    for (int64_t i = 0; ret == 0 && i < b->n; i++) {
        const md_bed_interval_t *iv = &b->iv[i];
        if (selected && !selected[iv->split]) continue;
        if (contig_of[iv->chrom] < 0) continue;
        s->st.n_intervals++;
        add_tiles(s, contig_of[iv->chrom], iv->start, iv->end, k);
    }
    free(contig_of);
    free(selected);
    if (ret < 0) return -1;
    const char *which = s->o.split ? s->o.split : "all";
    if (s->st.n_intervals == 0) {
        md_error("BED '%s': no interval of split '%s' lies on a contig of the genome", b->path, which);
        return -1;
    }
    if (s->st.n_windows == 0) {
        md_error("BED '%s': none of the %lld intervals of split '%s' gives a window of %lld bp with at most %lld N "
                 "(%lld shorter than L skipped, %lld tiles dropped for N)",
                 b->path, (long long)s->st.n_intervals, which, (long long)L, (long long)k,
                 (long long)s->st.n_short_skipped, (long long)s->st.n_tiles_n_dropped);
        return -1;
    }
    md_info("%s: %lld intervals of split '%s' give %llu tiles of %lld bp (%lld short ones extended, %lld skipped; "
            "%lld tiles with more than %lld N dropped)",
            b->path, (long long)s->st.n_intervals, which, (unsigned long long)s->st.n_windows, (long long)L,
            (long long)s->st.n_extended, (long long)s->st.n_short_skipped, (long long)s->st.n_tiles_n_dropped,
            (long long)k);
    return 0;
}

md_sampler_t *md_sampler_new(const md_genome_t *g, const md_sampler_opts_t *o)
{
    if (o->len < 1) {
        md_error("window length %lld is not positive", (long long)o->len);
        return NULL;
    }
    if (!(o->max_n_frac >= 0.0 && o->max_n_frac <= 1.0)) {
        md_error("maximum N fraction %g is not in [0, 1]", o->max_n_frac);
        return NULL;
    }
    int n = md_genome_n_contigs(g);
    if (n <= 0) {
        md_error("the genome has no contigs");
        return NULL;
    }
    for (int c = 0; c < n; c++) {
        const md_contig_t *ct = md_genome_contig(g, c);
        if (ct->len > 0 && !ct->packed) {
            md_error("the genome must be loaded before sampling (contig '%s' is not)", ct->name);
            return NULL;
        }
    }
    md_sampler_t *s = md_calloc(1, sizeof *s);
    s->g = g;
    s->o = *o;
    s->step = o->bed ? o->len : 1;
    if ((o->bed ? build_bed(s) : build_uniform(s)) < 0) {
        md_sampler_free(s);
        return NULL;
    }
    int bits = 0;
    while (bits < 64 && (s->st.n_windows - 1) >> bits) bits++;
    s->perm_half_bits = (bits + 1) / 2;
    return s;
}

void md_sampler_free(md_sampler_t *s)
{
    if (!s) return;
    free(s->seg);
    free(s);
}

int64_t md_sampler_len(const md_sampler_t *s) { return s->o.len; }
const md_sampler_stats_t *md_sampler_stats(const md_sampler_t *s) { return &s->st; }

/* A bijection of [0, n_windows) keyed by (seed, pass): a balanced Feistel
 * network on [0, 4^h) with cycle walking back into range (fewer than 4
 * rounds of walking on average, since 4^h < 4 n). */
static uint64_t permute(const md_sampler_t *s, uint64_t x, uint64_t pass)
{
    const int h = s->perm_half_bits;
    if (h == 0) return 0;
    const uint64_t mask = (1ULL << h) - 1;   /* h <= 32 */
    const uint64_t key = md_hash64(s->o.seed, STREAM_PERMUTATION, pass);
    do {
        uint64_t left = x >> h, right = x & mask;
        for (int r = 0; r < PERM_ROUNDS; r++) {
            uint64_t t = left ^ (md_hash64(key, (uint64_t)r, right) & mask);
            left = right;
            right = t;
        }
        x = left << h | right;
    } while (x >= s->st.n_windows);
    return x;
}

int md_sampler_window(const md_sampler_t *s, uint64_t index, md_window_t *w)
{
    const uint64_t n = s->st.n_windows;
    uint64_t k;
    if (!s->o.bed)
        k = md_bounded(md_hash64(s->o.seed, STREAM_POSITION, index), n);
    else if (s->o.order == MD_ORDER_FILE)
        k = index % n;
    else
        k = permute(s, index % n, index / n);
    /* The last segment whose first window is at or before k. */
    int64_t lo = 0, hi = s->n_seg - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (s->seg[mid].cum <= k) lo = mid;
        else hi = mid - 1;
    }
    const segment_t *sg = &s->seg[lo];
    w->index = index;
    w->contig = sg->contig;
    w->start = sg->start + (int64_t)(k - sg->cum) * s->step;
    w->end = w->start + s->o.len;
    w->rc = s->o.revcomp ? (int32_t)(md_hash64(s->o.seed, STREAM_REVCOMP, index) >> 63) : 0;
    return 0;
}

void md_sampler_tokens(const md_sampler_t *s, const md_window_t *w, uint8_t *out)
{
    md_genome_tokens(s->g, w->contig, w->start, w->end, out);
    if (w->rc) md_tok_revcomp(out, (size_t)(w->end - w->start));
}

void md_sampler_fill_batch(const md_sampler_t *s, uint64_t first_index, int64_t B, uint8_t *tokens,
                           md_window_t *windows)
{
    const int64_t L = s->o.len;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        md_window_t w;
        md_sampler_window(s, first_index + (uint64_t)b, &w);
        md_sampler_tokens(s, &w, tokens + b * L);
        if (windows) windows[b] = w;
    }
}
