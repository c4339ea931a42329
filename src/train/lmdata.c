#include "train/lmdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/sampler.h"
#include "seq/bed.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Validation draws its own windows: a fixed key so that the validation set
 * does not move with the training seed. */
#define VAL_SEED_SALT 0x76616c6964617465ULL   /* "validate" */
#define TEST_SEED_SALT 0x746573747365740aULL   /* "testset\n": the test windows', likewise */
/* Consecutive rejected training windows after which the held-out part is
 * taken to cover (nearly) everything. */
#define MAX_REJECT_RUN 1000000

typedef struct {
    int64_t len;
    md_sampler_t *s;
} sampler_slot_t;

struct md_lm_data {
    md_genome_t *g;
    md_holdout_t h;
    char *desc;
    uint64_t seed;
    double max_n_frac;
    int revcomp;
    md_bed_t *bed;              /* BED: the file */
    md_bed_t mem_bed;           /* CONTIGS, FRACTION: the held-out intervals */
    md_bed_t mem_bed_test;      /* the test set's, when there is one */
    uint8_t *held_contig;       /* CONTIGS: 1 for a held-out contig */
    int64_t *cut;               /* FRACTION: training uses [0, cut[c]) of contig c */
    sampler_slot_t *train;
    int n_train, cap_train;
    md_sampler_t *val, *test;
    int64_t val_len, test_len;
};

void md_holdout_describe(const md_holdout_t *h, char *buf, int n)
{
    switch (h->kind) {
    case MD_HOLDOUT_BED:
        snprintf(buf, n, "--bed %s --train-split %s --val-split %s", h->bed_path, h->train_split, h->val_split);
        break;
    case MD_HOLDOUT_CONTIGS:
        snprintf(buf, n, "--val-contigs %s%s%s", h->val_contigs, h->test_contigs ? " --test-contigs " : "",
                 h->test_contigs ? h->test_contigs : "");
        break;
    case MD_HOLDOUT_FRACTION:
        if (h->test_fraction > 0) snprintf(buf, n, "--val-fraction %g --test-fraction %g", h->val_fraction, h->test_fraction);
        else snprintf(buf, n, "--val-fraction %g", h->val_fraction);
        break;
    default: snprintf(buf, n, "no held-out data"); break;
    }
}

static void mem_bed_add(md_bed_t *b, size_t *cap, int chrom, int64_t start, int64_t end)
{
    MD_GROW(b->iv, *cap, (size_t)b->n + 1);
    b->iv[b->n] = (md_bed_interval_t){start, end, b->n + 1, chrom, -1};
    b->n++;
}

/* One in-memory "BED" chrom per genome contig, named as the contig. */
static void mem_bed_init(md_lm_data_t *d, md_bed_t *b)
{
    int n = md_genome_n_contigs(d->g);
    b->path = d->desc;
    b->chroms = md_calloc((size_t)n + 1, sizeof(char *));
    for (int c = 0; c < n; c++) b->chroms[c] = md_genome_contig(d->g, c)->name;
    b->n_chroms = n;
}

/* Marks the contigs of a comma list as held out into b (tag 1: validation,
 * 2: test); 0, or -1 after one error line. *n_held counts them. */
static int hold_contigs(md_lm_data_t *d, const char *opt, const char *names, int tag, md_bed_t *b, size_t *cap,
                        int *n_held)
{
    char *list = md_strdup(names), *p = list, *name;
    int ret = 0;
    while ((name = strsep(&p, ","))) {
        if (!*name) continue;
        int c = md_genome_find(d->g, name);
        if (c < 0) {
            md_error("option %s: the genome has no contig '%s'", opt, name);
            ret = -1;
            break;
        }
        if (d->held_contig[c] == tag) continue;
        if (d->held_contig[c]) {
            md_error("option %s: contig '%s' is held out for validation already", opt, name);
            ret = -1;
            break;
        }
        d->held_contig[c] = (uint8_t)tag;
        (*n_held)++;
        mem_bed_add(b, cap, c, 0, md_genome_contig(d->g, c)->len);
    }
    free(list);
    return ret;
}

md_lm_data_t *md_lm_data_new(md_genome_t *g, const md_holdout_t *h, uint64_t seed, double max_n_frac, int revcomp)
{
    md_lm_data_t *d = md_calloc(1, sizeof *d);
    d->g = g;
    d->h = *h;
    d->seed = seed;
    d->max_n_frac = max_n_frac;
    d->revcomp = revcomp;
    char desc[512];
    md_holdout_describe(h, desc, sizeof desc);
    d->desc = md_strdup(desc);
    int n = md_genome_n_contigs(g);
    size_t cap = 0;
    switch (h->kind) {
    case MD_HOLDOUT_BED:
        if (!(d->bed = md_bed_read(h->bed_path, 4))) goto fail;
        break;
    case MD_HOLDOUT_CONTIGS: {
        mem_bed_init(d, &d->mem_bed);
        mem_bed_init(d, &d->mem_bed_test);
        d->held_contig = md_calloc((size_t)n + 1, 1);
        int n_held = 0, n_val;
        size_t cap_test = 0;
        if (hold_contigs(d, "--val-contigs", h->val_contigs, 1, &d->mem_bed, &cap, &n_held) < 0) goto fail;
        n_val = n_held;
        if (h->test_contigs &&
            hold_contigs(d, "--test-contigs", h->test_contigs, 2, &d->mem_bed_test, &cap_test, &n_held) < 0)
            goto fail;
        if (n_val == 0 || (h->test_contigs && n_held == n_val)) {
            md_error("option %s: no contig named", n_val == 0 ? "--val-contigs" : "--test-contigs");
            goto fail;
        }
        if (n_held == n) {
            md_error("option%s: every contig of the genome is held out, none is left for training",
                     h->test_contigs ? "s --val-contigs/--test-contigs" : " --val-contigs");
            goto fail;
        }
        break;
    }
    case MD_HOLDOUT_FRACTION: {
        double total = h->val_fraction + h->test_fraction;
        if (!(h->val_fraction > 0 && h->val_fraction < 1) || !(h->test_fraction >= 0 && total < 1)) {
            if (h->test_fraction > 0)
                md_error("options --val-fraction %g and --test-fraction %g: their sum is not below 1", h->val_fraction,
                         h->test_fraction);
            else
                md_error("option --val-fraction: %g is not in (0, 1)", h->val_fraction);
            goto fail;
        }
        mem_bed_init(d, &d->mem_bed);
        mem_bed_init(d, &d->mem_bed_test);
        d->cut = md_calloc((size_t)n + 1, sizeof *d->cut);
        size_t cap_test = 0;
        for (int c = 0; c < n; c++) {
            int64_t len = md_genome_contig(g, c)->len;
            int64_t held = (int64_t)((double)len * total), val = (int64_t)((double)len * h->val_fraction);
            if (val > held) val = held;
            d->cut[c] = len - held;
            if (val > 0) mem_bed_add(&d->mem_bed, &cap, c, d->cut[c], d->cut[c] + val);
            if (held > val) mem_bed_add(&d->mem_bed_test, &cap_test, c, d->cut[c] + val, len);
        }
        break;
    }
    default:
        break;
    }
    return d;
fail:
    md_lm_data_free(d);
    return NULL;
}

void md_lm_data_free(md_lm_data_t *d)
{
    if (!d) return;
    for (int i = 0; i < d->n_train; i++) md_sampler_free(d->train[i].s);
    free(d->train);
    md_sampler_free(d->val);
    md_sampler_free(d->test);
    md_bed_free(d->bed);
    free(d->mem_bed.iv);
    free(d->mem_bed.chroms);
    free(d->mem_bed_test.iv);
    free(d->mem_bed_test.chroms);
    free(d->held_contig);
    free(d->cut);
    free(d->desc);
    free(d);
}

const md_genome_t *md_lm_data_genome(const md_lm_data_t *d) { return d->g; }

void md_lm_data_set_what(md_lm_data_t *d, const char *what)
{
    size_t n = strlen(what) + strlen(d->desc) + 4;
    char *desc = md_malloc(n);
    snprintf(desc, n, "%s (%s)", what, d->desc);
    free(d->desc);
    d->desc = desc;
    if (d->mem_bed.chroms) d->mem_bed.path = desc;
    if (d->mem_bed_test.chroms) d->mem_bed_test.path = desc;
}

/* Whether a training window touches the held-out part. */
static int rejected(const md_lm_data_t *d, const md_window_t *w)
{
    if (d->held_contig) return d->held_contig[w->contig];
    if (d->cut) return w->end > d->cut[w->contig];
    return 0;
}

static md_sampler_t *train_sampler(const md_lm_data_t *d, int64_t win_len)
{
    for (int i = 0; i < d->n_train; i++)
        if (d->train[i].len == win_len) return d->train[i].s;
    return NULL;
}

int md_lm_data_prepare_train(md_lm_data_t *d, int64_t win_len)
{
    if (train_sampler(d, win_len)) return 0;
    md_sampler_opts_t o;
    md_sampler_opts_init(&o);
    o.len = win_len;
    o.seed = d->seed;
    o.revcomp = d->revcomp;
    o.max_n_frac = d->max_n_frac;
    if (d->h.kind == MD_HOLDOUT_BED) {
        o.bed = d->bed;
        o.split = d->h.train_split;
        o.order = MD_ORDER_SHUFFLE;
    }
    md_sampler_t *s = md_sampler_new(d->g, &o);
    if (!s) return -1;
    if (d->held_contig || d->cut) {
        /* Make sure the held-out part leaves training windows: look for one
         * among the first draws (each is uniform over all starts). */
        md_window_t w;
        uint64_t i;
        for (i = 0; i < MAX_REJECT_RUN; i++) {
            md_sampler_window(s, i, &w);
            if (!rejected(d, &w)) break;
        }
        if (i == MAX_REJECT_RUN) {
            md_error("%s leaves no training window of %lld bp outside the held-out part", d->desc,
                     (long long)win_len);
            md_sampler_free(s);
            return -1;
        }
    }
    if (d->n_train == d->cap_train) {
        d->cap_train = d->cap_train ? 2 * d->cap_train : 4;
        d->train = md_realloc(d->train, sizeof *d->train * (size_t)d->cap_train);
    }
    d->train[d->n_train++] = (sampler_slot_t){win_len, s};
    return 0;
}

/* Tiles of a held-out set (b: the validation or the test intervals, or
 * NULL for the BED split / the whole genome), cached in *slot for win_len. */
static int prepare_heldout(md_lm_data_t *d, const md_bed_t *b, const char *split, uint64_t salt, int64_t win_len,
                           md_sampler_t **slot, int64_t *slot_len, uint64_t *n_available)
{
    if (!*slot || *slot_len != win_len) {
        md_sampler_free(*slot);
        *slot = NULL;
        md_sampler_opts_t o;
        md_sampler_opts_init(&o);
        o.len = win_len;
        o.seed = d->seed ^ salt;
        o.max_n_frac = d->max_n_frac;
        o.order = MD_ORDER_SHUFFLE;
        o.short_policy = MD_SHORT_SKIP;   /* never extend into the training part */
        if (d->h.kind == MD_HOLDOUT_BED) {
            o.bed = d->bed;
            o.split = split;
        } else if (b) {
            int64_t longest = 0;
            for (int64_t i = 0; i < b->n; i++) {
                int64_t l = b->iv[i].end - b->iv[i].start;
                if (l > longest) longest = l;
            }
            if (longest < win_len) {
                md_error("%s holds out at most %lld bp of a contig for %s, less than a window of %lld bp", d->desc,
                         (long long)longest, b == &d->mem_bed ? "validation" : "the test", (long long)win_len);
                return -1;
            }
            o.bed = b;
        }
        if (!(*slot = md_sampler_new(d->g, &o))) return -1;
        *slot_len = win_len;
    }
    if (n_available) *n_available = md_sampler_stats(*slot)->n_windows;
    return 0;
}

int md_lm_data_prepare_val(md_lm_data_t *d, int64_t win_len, uint64_t *n_available)
{
    int held = d->h.kind == MD_HOLDOUT_CONTIGS || d->h.kind == MD_HOLDOUT_FRACTION;
    return prepare_heldout(d, held ? &d->mem_bed : NULL, d->h.val_split, VAL_SEED_SALT, win_len, &d->val, &d->val_len,
                           n_available);
}

int md_lm_data_prepare_test(md_lm_data_t *d, int64_t win_len, uint64_t *n_available)
{
    if (d->mem_bed_test.n == 0) {
        md_error("%s sets no test data apart", d->desc);
        return -1;
    }
    return prepare_heldout(d, &d->mem_bed_test, NULL, TEST_SEED_SALT, win_len, &d->test, &d->test_len, n_available);
}

void md_lm_data_test_batch(md_lm_data_t *d, uint64_t first, int64_t B, uint8_t *tokens, md_window_t *windows)
{
    md_sampler_fill_batch(d->test, first, B, tokens, windows);
}

void md_lm_data_train_batch(md_lm_data_t *d, int64_t win_len, uint64_t *next, int64_t B, uint8_t *tokens,
                            md_window_t *windows)
{
    md_lm_data_train_batch_part(d, win_len, next, B, 0, 1, tokens, windows);
}

int64_t md_lm_data_train_batch_part(md_lm_data_t *d, int64_t win_len, uint64_t *next, int64_t B, int part,
                                    int parts, uint8_t *tokens, md_window_t *windows)
{
    md_sampler_t *s = train_sampler(d, win_len);
    md_window_t *w = md_malloc(sizeof *w * (size_t)(B ? B : 1));
    uint64_t i = *next;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++) {
        /* prepare_train found an accepted window, so accepted ones recur:
         * the walk ends. Every part walks the whole batch, so that *next
         * is the same for all of them. */
        md_window_t win;
        do md_sampler_window(s, i++, &win);
        while (rejected(d, &win));
        if (b % parts == part) w[n++] = win;
    }
    *next = i;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; b++) md_sampler_tokens(s, &w[b], tokens + b * win_len);
    if (windows) memcpy(windows, w, sizeof *w * (size_t)n);
    free(w);
    return n;
}

void md_lm_data_val_batch(md_lm_data_t *d, uint64_t first, int64_t B, uint8_t *tokens, md_window_t *windows)
{
    md_sampler_fill_batch(d->val, first, B, tokens, windows);
}

void md_lm_data_train_regions(const md_lm_data_t *d, void (*fn)(void *ud, int contig, int64_t start, int64_t end),
                              void *ud)
{
    int n = md_genome_n_contigs(d->g);
    if (d->h.kind == MD_HOLDOUT_BED) {
        uint8_t *sel = md_calloc((size_t)d->bed->n_splits + 1, 1);
        /* The split was resolved when the training sampler was built. */
        if (md_bed_select_splits(d->bed, d->h.train_split, sel) == 0) {
            for (int64_t i = 0; i < d->bed->n; i++) {
                const md_bed_interval_t *iv = &d->bed->iv[i];
                if (!sel[iv->split]) continue;
                int c = md_genome_find(d->g, d->bed->chroms[iv->chrom]);
                if (c >= 0 && iv->end <= md_genome_contig(d->g, c)->len) fn(ud, c, iv->start, iv->end);
            }
        }
        free(sel);
        return;
    }
    for (int c = 0; c < n; c++) {
        int64_t len = md_genome_contig(d->g, c)->len;
        if (d->held_contig && d->held_contig[c]) continue;
        fn(ud, c, 0, d->cut ? d->cut[c] : len);
    }
}
