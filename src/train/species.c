#include "train/species.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq/genome.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* The stream of md_hash64 that picks each training example's species. */
#define SPECIES_STREAM 0x73706563696573ULL   /* "species" */

static int find_label(const md_species_spec_t *s, const char *label)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->labels[i], label)) return i;
    return -1;
}

/* Adds one path to label's genome (a new species when the label is new). */
static void add_path(md_species_spec_t *s, const char *label, const char *path)
{
    int i = find_label(s, label);
    if (i < 0) {
        i = s->n++;
        s->labels = md_realloc(s->labels, (size_t)s->n * sizeof *s->labels);
        s->paths = md_realloc(s->paths, (size_t)s->n * sizeof *s->paths);
        s->n_paths = md_realloc(s->n_paths, (size_t)s->n * sizeof *s->n_paths);
        s->labels[i] = md_strdup(label);
        s->paths[i] = NULL;
        s->n_paths[i] = 0;
    }
    s->paths[i] = md_realloc(s->paths[i], (size_t)(s->n_paths[i] + 1) * sizeof **s->paths);
    s->paths[i][s->n_paths[i]++] = md_strdup(path);
}

/* A label goes into TSV columns and a JSON list: no tab, newline or '='. */
static int bad_label(const char *label) { return !*label || strpbrk(label, "\t\n\r=") != NULL; }

int md_species_spec_add(md_species_spec_t *s, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq) {
        md_error("species '%s' is not LABEL=GENOME[,GENOME...]", arg);
        return -1;
    }
    char *label = md_strdup(arg);
    label[eq - arg] = 0;
    int ret = 0;
    if (bad_label(label)) {
        md_error("species '%s': the label before '=' is empty or holds a tab or newline", arg);
        ret = -1;
    }
    char *list = md_strdup(eq + 1), *p = list, *path;
    int n = 0;
    while (ret == 0 && (path = strsep(&p, ","))) {
        if (!*path) {
            md_error("species '%s': an empty genome path", arg);
            ret = -1;
            break;
        }
        add_path(s, label, path);
        n++;
    }
    free(list);
    free(label);
    return ret;
}

int md_species_spec_read_tsv(md_species_spec_t *s, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        md_error("option --species-tsv: cannot open '%s'", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int ret = 0, lineno = 0, n = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line || !tab[1] || strchr(tab + 1, '\t') || memchr(line, '=', (size_t)(tab - line))) {
            md_error("species TSV '%s' line %d: not 'label<TAB>genome path' (%s)", path, lineno,
                     !tab ? "no tab" : "an empty or extra column, or '=' in the label");
            ret = -1;
            break;
        }
        *tab = 0;
        add_path(s, line, tab + 1);
        n++;
    }
    if (ret == 0 && ferror(fp)) {
        md_error("species TSV '%s': read error", path);
        ret = -1;
    }
    if (ret == 0 && n == 0) {
        md_error("species TSV '%s' lists no species", path);
        ret = -1;
    }
    free(line);
    fclose(fp);
    return ret;
}

void md_species_spec_free(md_species_spec_t *s)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n_paths[i]; j++) free(s->paths[i][j]);
        free(s->paths[i]);
        free(s->labels[i]);
    }
    free(s->labels);
    free(s->paths);
    free(s->n_paths);
    memset(s, 0, sizeof *s);
}

typedef struct {
    char *label;
    md_genome_t *g;
    md_lm_data_t *d;
    char *val_contigs, *test_contigs;   /* its own held-out lists (d keeps pointers to them) */
    uint64_t next_window;    /* the species' training stream position */
} species_t;

struct md_species_data {
    int n;
    species_t *sp;
    uint64_t seed, next_example;
    int64_t *count;          /* scratch: examples per species in a batch */
    uint8_t *scratch;        /* one species' windows of a batch */
    size_t scratch_cap;
};

/* The entries of a comma list of held-out contigs that apply to species
 * `label`: "LABEL:contig" for that species only (when LABEL is one of the
 * species' labels), a plain name for every species. Malloc'd; "" when none. */
static char *contigs_for(const md_species_spec_t *spec, const char *list, const char *label)
{
    char *copy = md_strdup(list), *p = copy, *name, *out = md_calloc(strlen(list) + 2, 1);
    while ((name = strsep(&p, ","))) {
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = 0;
            int species = find_label(spec, name);
            *colon = ':';
            if (species >= 0) {
                if (strcmp(spec->labels[species], label)) continue;
                name = colon + 1;
            }
        }
        if (!*name) continue;
        if (*out) strcat(out, ",");
        strcat(out, name);
    }
    free(copy);
    return out;
}

/* The species' own list of held-out contigs, each of which its genome must
 * have. 0, or -1 after one error line. */
static int species_contigs(const md_species_spec_t *spec, const species_t *s, const char *opt, const char *list,
                           char **own)
{
    *own = contigs_for(spec, list, s->label);
    if (!**own) {
        md_error("option %s names no contig of species '%s' (plain names apply to every species, LABEL:NAME to one)",
                 opt, s->label);
        return -1;
    }
    char *copy = md_strdup(*own), *p = copy, *name;
    int ret = 0;
    while ((name = strsep(&p, ","))) {
        if (md_genome_find(s->g, name) < 0) {
            md_error("option %s: the genome of species '%s' (%s) has no contig '%s'", opt, s->label,
                     md_genome_path(s->g, 0), name);
            ret = -1;
            break;
        }
    }
    free(copy);
    return ret;
}

md_species_data_t *md_species_data_new(const md_species_spec_t *spec, const md_holdout_t *h, uint64_t seed,
                                       double max_n_frac, int revcomp)
{
    md_species_data_t *d = md_calloc(1, sizeof *d);
    d->seed = seed;
    d->sp = md_calloc((size_t)spec->n, sizeof *d->sp);
    d->count = md_calloc((size_t)spec->n, sizeof *d->count);
    for (int i = 0; i < spec->n; i++) {
        species_t *s = &d->sp[i];
        d->n = i + 1;
        s->label = md_strdup(spec->labels[i]);
        if (!(s->g = md_genome_open((const char *const *)spec->paths[i], spec->n_paths[i]))) goto fail;
        if (md_genome_load(s->g) < 0) goto fail;
        md_holdout_t own = *h;
        if (h->kind == MD_HOLDOUT_CONTIGS) {
            if (species_contigs(spec, s, "--val-contigs", h->val_contigs, &s->val_contigs) < 0 ||
                (h->test_contigs && species_contigs(spec, s, "--test-contigs", h->test_contigs, &s->test_contigs) < 0))
                goto fail;
            own.val_contigs = s->val_contigs;
            own.test_contigs = s->test_contigs;
        }
        /* each species draws from streams of its own */
        uint64_t sseed = md_hash64(seed, SPECIES_STREAM, (uint64_t)i + 1);
        if (!(s->d = md_lm_data_new(s->g, &own, sseed, max_n_frac, revcomp))) goto fail;
        char what[300];
        snprintf(what, sizeof what, "species '%.200s'", s->label);
        md_lm_data_set_what(s->d, what);
    }
    return d;
fail:
    md_species_data_free(d);
    return NULL;
}

void md_species_data_free(md_species_data_t *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        md_lm_data_free(d->sp[i].d);
        md_genome_close(d->sp[i].g);
        free(d->sp[i].label);
        free(d->sp[i].val_contigs);
        free(d->sp[i].test_contigs);
    }
    free(d->sp);
    free(d->count);
    free(d->scratch);
    free(d);
}

int md_species_data_n(const md_species_data_t *d) { return d->n; }
const char *md_species_data_label(const md_species_data_t *d, int species) { return d->sp[species].label; }

int md_species_data_prepare_train(md_species_data_t *d, int64_t len)
{
    for (int i = 0; i < d->n; i++) {
        if (md_lm_data_prepare_train(d->sp[i].d, len) < 0) return -1;
    }
    return 0;
}

void md_species_data_train_batch(md_species_data_t *d, int64_t len, int64_t B, uint8_t *tokens, int32_t *labels)
{
    memset(d->count, 0, (size_t)d->n * sizeof *d->count);
    for (int64_t b = 0; b < B; b++) {
        labels[b] = (int32_t)md_bounded(md_hash64(d->seed, SPECIES_STREAM, d->next_example++), (uint64_t)d->n);
        d->count[labels[b]]++;
    }
    /* each species' windows in one call, then into their rows in order */
    for (int i = 0; i < d->n; i++) {
        int64_t n = d->count[i];
        if (!n) continue;
        MD_GROW(d->scratch, d->scratch_cap, (size_t)(n * len));
        md_lm_data_train_batch(d->sp[i].d, len, &d->sp[i].next_window, n, d->scratch, NULL);
        int64_t k = 0;
        for (int64_t b = 0; b < B; b++)
            if (labels[b] == i) memcpy(tokens + b * len, d->scratch + (k++) * len, (size_t)len);
    }
}

int md_species_data_prepare_eval(md_species_data_t *d, int split, int64_t len, int64_t want, int64_t *n_per)
{
    for (int i = 0; i < d->n; i++) {
        uint64_t avail = 0;
        int r = split == MD_SPLIT_VAL ? md_lm_data_prepare_val(d->sp[i].d, len, &avail)
                                      : md_lm_data_prepare_test(d->sp[i].d, len, &avail);
        if (r < 0) return -1;
        n_per[i] = (uint64_t)want < avail ? want : (int64_t)avail;
        if (n_per[i] < want)
            md_warn("species '%s': only %lld %s windows of %lld bp exist; using them all", d->sp[i].label,
                    (long long)n_per[i], split == MD_SPLIT_VAL ? "validation" : "test", (long long)len);
    }
    return 0;
}

void md_species_data_eval_batch(md_species_data_t *d, int split, int species, int64_t first, int64_t n,
                                uint8_t *tokens)
{
    if (split == MD_SPLIT_VAL) md_lm_data_val_batch(d->sp[species].d, (uint64_t)first, n, tokens, NULL);
    else md_lm_data_test_batch(d->sp[species].d, (uint64_t)first, n, tokens, NULL);
}
