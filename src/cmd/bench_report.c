#include "cmd/bench_report.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

const md_scan_shape_t md_scan_shapes[MD_SCAN_N_SHAPES] = {
    {"S1", 64, 256, 1024, 1.478, 2.043},
    {"S2", 8, 256, 16384, 3.387, 4.459},
    {"S3", 1, 256, 1048576, 36.53, 41.03},
    {"S4", 4, 4096, 2048, 2.882, 3.855},
    {"S5", 1, 512, 1048576, 72.04, 101.8},
};

/* Issue #9's table: millions of tokens/s (peak GiB), 2^17 tokens per step,
 * 2^20 in one sequence at L = 2^20. */
static const md_train_anchor_t train_anchors[] = {
    {"mamba", 128, 6, 1024, 4.65, 3.3, 0},
    {"mamba", 128, 6, 16384, 4.14, 3.3, 0},
    {"mamba", 128, 6, 131072, 3.62, 3.3, 0},
    {"mamba", 128, 6, 1048576, 3.73, 25.8, 0},
    {"mamba", 256, 8, 1024, 1.90, 8.4, 0},
    {"mamba", 256, 8, 16384, 1.77, 8.3, 0},
    {"mamba", 256, 8, 131072, 1.46, 8.3, 0},
    {"mamba", 256, 8, 1048576, 1.48, 65.9, 0},
    {"hyena", 128, 6, 1024, 2.61, 0, 0},
    {"hyena", 128, 6, 16384, 2.41, 0, 0},
    {"hyena", 128, 6, 131072, 2.02, 0, 0},
    {"hyena", 128, 6, 1048576, 1.80, 0, 0},
    {"hyena", 256, 8, 1024, 1.12, 0, 0},
    {"hyena", 256, 8, 16384, 1.03, 0, 0},
    {"hyena", 256, 8, 131072, 0.90, 0, 0},
    {"hyena", 256, 8, 1048576, 0, 0, 1},
    {"transformer", 128, 6, 1024, 9.00, 0, 0},
    {"transformer", 128, 6, 16384, 2.52, 0, 0},
    {"transformer", 256, 8, 1024, 3.55, 0, 0},
    {"transformer", 256, 8, 16384, 0.98, 0, 0},
};

const md_train_anchor_t *md_train_anchor_find(const char *arch, int64_t d_model, int64_t n_layer, int64_t len)
{
    for (size_t i = 0; i < sizeof train_anchors / sizeof train_anchors[0]; i++) {
        const md_train_anchor_t *a = &train_anchors[i];
        if (!strcmp(a->arch, arch) && a->d_model == d_model && a->n_layer == n_layer && a->len == len) return a;
    }
    return NULL;
}

void md_bench_report_init(md_bench_report_t *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->meta = json_object();
}

void md_bench_report_free(md_bench_report_t *rep)
{
    for (int i = 0; i < rep->n; i++) {
        json_decref(rep->cells[i].settings);
        json_decref(rep->cells[i].extra);
    }
    free(rep->cells);
    json_decref(rep->meta);
    memset(rep, 0, sizeof *rep);
}

md_bench_cell_t *md_bench_report_add(md_bench_report_t *rep, const char *group, const char *name,
                                     const char *metric, md_bench_sense_t sense)
{
    if (rep->n == rep->cap) {
        rep->cap = rep->cap ? 2 * rep->cap : 32;
        rep->cells = md_realloc(rep->cells, (size_t)rep->cap * sizeof *rep->cells);
    }
    md_bench_cell_t *c = &rep->cells[rep->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->group, sizeof c->group, "%s", group);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->metric, sizeof c->metric, "%s", metric);
    c->sense = sense;
    c->state = MD_BENCH_MEASURED;
    c->judged = 1;
    c->settings = json_object();
    c->extra = json_object();
    return c;
}

double md_bench_cell_ratio(const md_bench_cell_t *c)
{
    if (c->state != MD_BENCH_MEASURED || !(c->ref > 0) || !(c->ours > 0)) return NAN;
    return c->sense == MD_BENCH_HIGHER_BETTER ? c->ours / c->ref : c->ref / c->ours;
}

md_goal_status_t md_bench_cell_status(const md_bench_cell_t *c)
{
    if (!(c->goal > 0) && !c->goal_runs) return MD_GOAL_NONE;
    if (!c->judged) return MD_GOAL_NOT_JUDGED;
    if (c->state != MD_BENCH_MEASURED) return MD_GOAL_NOT_MET;
    if (c->goal_runs) return MD_GOAL_MET;
    double r = md_bench_cell_ratio(c);
    return r >= c->goal ? MD_GOAL_MET : MD_GOAL_NOT_MET;   /* a NAN ratio is not met */
}

const char *md_goal_status_name(md_goal_status_t s)
{
    static const char *const names[] = {"", "met", "NOT MET", "not judged"};
    return names[s];
}

/* A figure with about four significant digits, the way a reader compares
 * them: 0.9123, 12.35, 4651, 52341. */
static void fmt_value(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (a >= 1000) snprintf(buf, n, "%.0f", v);
    else if (a >= 100) snprintf(buf, n, "%.1f", v);
    else if (a >= 10) snprintf(buf, n, "%.2f", v);
    else if (a >= 1) snprintf(buf, n, "%.3f", v);
    else snprintf(buf, n, "%.4f", v);
}

/* The table's text for a cell: value, reference, ratio and goal. */
typedef struct {
    char ours[24], ref[24], ratio[16], goal[16];
} cell_text_t;

static void cell_text(const md_bench_cell_t *c, cell_text_t *t)
{
    if (c->state == MD_BENCH_MEASURED) fmt_value(t->ours, sizeof t->ours, c->ours);
    else snprintf(t->ours, sizeof t->ours, "%s", c->state == MD_BENCH_SKIPPED ? "skipped" : "failed");
    if (c->ref > 0) fmt_value(t->ref, sizeof t->ref, c->ref);
    else snprintf(t->ref, sizeof t->ref, "%s", c->ref_text[0] ? c->ref_text : "-");
    double r = md_bench_cell_ratio(c);
    if (isnan(r)) snprintf(t->ratio, sizeof t->ratio, "-");
    else snprintf(t->ratio, sizeof t->ratio, "%.2fx", r);
    if (c->goal_runs) snprintf(t->goal, sizeof t->goal, "runs");
    else if (c->goal > 0) snprintf(t->goal, sizeof t->goal, "%gx", c->goal);
    else snprintf(t->goal, sizeof t->goal, "-");
}

void md_bench_report_print(const md_bench_report_t *rep, FILE *fp)
{
    const char *keys[] = {"date", "git_revision", "device", "driver", "cuda"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = json_string_value(json_object_get(rep->meta, keys[i]));
        if (v) fprintf(fp, "# %s: %s\n", keys[i], v);
    }
    const char *cmd = json_string_value(json_object_get(json_object_get(rep->meta, "mambadna"), "command"));
    if (cmd) fprintf(fp, "# command: %s\n", cmd);
    if (json_is_true(json_object_get(rep->meta, "quick")))
        fprintf(fp, "# --quick: reduced shapes and steps, not comparable with the references; goals not judged\n");
    fprintf(fp, "# references: %s\n", MD_BENCH_ANCHOR_SOURCE);
    fprintf(fp, "# ratio: times better than the reference (ours/ref for rates, ref/ours for ms and GiB)\n");
    fprintf(fp, "%-11s %-22s %-11s %10s %10s %8s %6s %-10s %s\n", "group", "cell", "metric", "ours", "reference",
            "ratio", "goal", "status", "note");
    int met = 0, judged = 0;
    for (int i = 0; i < rep->n; i++) {
        const md_bench_cell_t *c = &rep->cells[i];
        cell_text_t t;
        cell_text(c, &t);
        md_goal_status_t s = md_bench_cell_status(c);
        if (s == MD_GOAL_MET || s == MD_GOAL_NOT_MET) judged++;
        if (s == MD_GOAL_MET) met++;
        fprintf(fp, "%-11s %-22s %-11s %10s %10s %8s %6s %-10s %s\n", c->group, c->name, c->metric, t.ours, t.ref,
                t.ratio, t.goal, md_goal_status_name(s), c->note);
    }
    fprintf(fp, "# goals met: %d of %d\n", met, judged);
}

json_t *md_bench_report_json(const md_bench_report_t *rep)
{
    json_t *root = json_deep_copy(rep->meta), *cells = json_array();
    json_object_set_new(root, "anchors", json_string(MD_BENCH_ANCHOR_SOURCE));
    int met = 0, judged = 0;
    for (int i = 0; i < rep->n; i++) {
        const md_bench_cell_t *c = &rep->cells[i];
        static const char *const states[] = {"measured", "skipped", "failed"};
        md_goal_status_t s = md_bench_cell_status(c);
        double r = md_bench_cell_ratio(c);
        if (s == MD_GOAL_MET || s == MD_GOAL_NOT_MET) judged++;
        if (s == MD_GOAL_MET) met++;
        json_t *o = json_object();
        json_object_set_new(o, "group", json_string(c->group));
        json_object_set_new(o, "name", json_string(c->name));
        json_object_set_new(o, "metric", json_string(c->metric));
        json_object_set_new(o, "state", json_string(states[c->state]));
        json_object_set_new(o, "value", c->state == MD_BENCH_MEASURED ? json_real(c->ours) : json_null());
        json_object_set_new(o, "reference", c->ref > 0 ? json_real(c->ref) : json_null());
        if (c->ref_text[0]) json_object_set_new(o, "reference_text", json_string(c->ref_text));
        json_object_set_new(o, "higher_is_better", json_boolean(c->sense == MD_BENCH_HIGHER_BETTER));
        json_object_set_new(o, "ratio", isnan(r) ? json_null() : json_real(r));
        json_object_set_new(o, "goal_ratio", c->goal > 0 ? json_real(c->goal) : json_null());
        if (c->goal_runs) json_object_set_new(o, "goal", json_string("runs"));
        json_object_set_new(o, "status", s == MD_GOAL_NONE ? json_null() : json_string(md_goal_status_name(s)));
        json_object_set_new(o, "note", json_string(c->note));
        json_object_set(o, "settings", c->settings);
        json_object_set(o, "measurements", c->extra);
        json_array_append_new(cells, o);
    }
    json_object_set_new(root, "cells", cells);
    json_object_set_new(root, "goals_met", json_integer(met));
    json_object_set_new(root, "goals_judged", json_integer(judged));
    return root;
}

int md_bench_report_write(const md_bench_report_t *rep, const char *path)
{
    md_outfile_t *of = md_outfile_open(path);
    if (!of) return -1;
    json_t *root = md_bench_report_json(rep);
    int bad = json_dumpf(root, of->fp, JSON_INDENT(1) | JSON_REAL_PRECISION(7)) < 0 || fputc('\n', of->fp) == EOF;
    json_decref(root);
    if (bad) {
        md_error("%s: cannot write the JSON record", path);
        md_outfile_abort(of);
        return -1;
    }
    return md_outfile_commit(of);
}

int md_bench_driver_from_proc(const char *line, char *buf, size_t n)
{
    const char *p = strstr(line, "Kernel Module");
    if (!p) return -1;
    p += strlen("Kernel Module");
    while (*p && *p != '\n') {
        while (*p == ' ' || *p == '\t') p++;
        size_t w = strcspn(p, " \t\n");
        if (w && isdigit((unsigned char)*p) && memchr(p, '.', w)) {
            snprintf(buf, n, "%.*s", (int)w, p);
            return 0;
        }
        p += w;
    }
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double md_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
