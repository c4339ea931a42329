#include "train/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/svgplot.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

static const char *HEADER =
    "step\ttokens\tseq_len\tlr\tloss\tgrad_norm\ttokens_per_s\tval_loss\tval_ppl\tval_bits_per_base\n";

struct md_metrics {
    char *tsv, *svg, *title;
    md_metrics_row_t *rows;
    size_t n, cap;
    double baseline;
    char *baseline_label;
};

char *md_metrics_svg_path(const char *tsv_path)
{
    size_t n = strlen(tsv_path);
    char *s = md_malloc(n + 5);
    strcpy(s, tsv_path);
    if (n > 4 && !strcmp(s + n - 4, ".tsv")) strcpy(s + n - 4, ".svg");
    else strcat(s, ".svg");
    return s;
}

static void fmt_val(char *buf, size_t n, double v, const char *fmt)
{
    if (isnan(v)) snprintf(buf, n, "NA");
    else snprintf(buf, n, fmt, v);
}

static void write_row(FILE *fp, const md_metrics_row_t *r)
{
    char vl[32], vp[32], vb[32];
    fmt_val(vl, sizeof vl, r->val_loss, "%.6f");
    fmt_val(vp, sizeof vp, isnan(r->val_loss) ? NAN : exp(r->val_loss), "%.6f");
    fmt_val(vb, sizeof vb, isnan(r->val_loss) ? NAN : r->val_loss / M_LN2, "%.6f");
    fprintf(fp, "%lld\t%lld\t%lld\t%.6g\t%.6f\t%.6g\t%.1f\t%s\t%s\t%s\n", (long long)r->step, (long long)r->tokens,
            (long long)r->seq_len, r->lr, r->loss, r->grad_norm, r->tokens_per_s, vl, vp, vb);
}

static double parse_field(const char *s)
{
    if (!strcmp(s, "NA")) return NAN;
    return strtod(s, NULL);
}

/* Reads the rows of an existing TSV with step <= upto. A missing file is
 * an empty history; a malformed one is an error (we would otherwise drop it). */
static int load_rows(md_metrics_t *m, int64_t upto)
{
    FILE *fp = fopen(m->tsv, "r");
    if (!fp) {
        if (errno == ENOENT) return 0;
        md_error("cannot read metrics file '%s': %s", m->tsv, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    int ret = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') {
            /* a row cut short by a kill during its append: not a row yet */
            md_warn("metrics file '%s': ignoring its incomplete last line %lld", m->tsv, (long long)lineno);
            break;
        }
        if (line[0] == '#' || !strncmp(line, "step\t", 5)) continue;   /* provenance, column names */
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        char *f[10];
        int nf = 0;
        for (char *p = line, *tok; nf < 10 && (tok = strsep(&p, "\t"));) f[nf++] = tok;
        if (nf < 8) {
            md_error("metrics file '%s' line %lld: %d columns, expected 10 (not a metrics file of ours?)", m->tsv,
                     (long long)lineno, nf);
            ret = -1;
            break;
        }
        md_metrics_row_t r;
        r.step = strtoll(f[0], NULL, 10);
        if (r.step > upto) continue;
        r.tokens = strtoll(f[1], NULL, 10);
        r.seq_len = strtoll(f[2], NULL, 10);
        r.lr = parse_field(f[3]);
        r.loss = parse_field(f[4]);
        r.grad_norm = parse_field(f[5]);
        r.tokens_per_s = parse_field(f[6]);
        r.val_loss = parse_field(f[7]);
        MD_GROW(m->rows, m->cap, m->n + 1);
        m->rows[m->n++] = r;
    }
    free(line);
    fclose(fp);
    return ret;
}

static int plot(md_metrics_t *m);

static int rewrite_tsv(md_metrics_t *m)
{
    md_outfile_t *o = md_outfile_open(m->tsv);
    if (!o) return -1;
    md_provenance_comment(o->fp, "#");
    fputs(HEADER, o->fp);
    for (size_t i = 0; i < m->n; i++) write_row(o->fp, &m->rows[i]);
    return md_outfile_commit(o);
}

md_metrics_t *md_metrics_open(const char *tsv_path, int64_t resume_step, const char *title)
{
    md_metrics_t *m = md_calloc(1, sizeof *m);
    m->tsv = md_strdup(tsv_path);
    m->svg = md_metrics_svg_path(tsv_path);
    m->title = md_strdup(title ? title : "training");
    m->baseline = NAN;
    if (resume_step >= 0 && load_rows(m, resume_step) < 0) goto fail;
    if (rewrite_tsv(m) < 0 || plot(m) < 0) goto fail;
    return m;
fail:
    md_metrics_close(m);
    return NULL;
}

void md_metrics_set_baseline(md_metrics_t *m, double bits_per_base, const char *label)
{
    m->baseline = bits_per_base;
    free(m->baseline_label);
    m->baseline_label = label ? md_strdup(label) : NULL;
    plot(m);
}

static int plot(md_metrics_t *m)
{
    size_t n = m->n;
    double *x = md_malloc((n + 1) * sizeof *x), *tr = md_malloc((n + 1) * sizeof *tr);
    double *vx = md_malloc((n + 1) * sizeof *vx), *vy = md_malloc((n + 1) * sizeof *vy);
    double *lr = md_malloc((n + 1) * sizeof *lr), *gn = md_malloc((n + 1) * sizeof *gn);
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)m->rows[i].step;
        tr[i] = m->rows[i].loss / M_LN2;
        lr[i] = m->rows[i].lr;
        gn[i] = m->rows[i].grad_norm;
        if (!isnan(m->rows[i].val_loss)) {
            vx[nv] = x[i];
            vy[nv++] = m->rows[i].val_loss / M_LN2;
        }
    }
    md_plot_series_t loss_series[2] = {
        {.name = "train", .color = "#1f77b4", .n = (int64_t)n, .x = x, .y = tr},
        {.name = "validation", .color = "#d62728", .markers = 1, .n = (int64_t)nv, .x = vx, .y = vy},
    };
    md_plot_series_t lr_series[1] = {{.name = "learning rate", .color = "#2ca02c", .n = (int64_t)n, .x = x, .y = lr}};
    md_plot_series_t gn_series[1] = {{.name = "gradient norm", .color = "#9467bd", .n = (int64_t)n, .x = x, .y = gn}};
    char hl_label[128];
    snprintf(hl_label, sizeof hl_label, "%s %.3f", m->baseline_label ? m->baseline_label : "baseline", m->baseline);
    md_plot_panel_t panels[3] = {
        {.title = "loss", .xlabel = "step", .ylabel = "bits per base", .n_series = 2, .series = loss_series,
         .y_skip_frac = 0.1, .hline = m->baseline, .hline_label = hl_label},
        {.title = "learning rate", .xlabel = "step", .ylabel = "lr", .n_series = 1, .series = lr_series,
         .hline = NAN},
        {.title = "gradient norm (before clipping)", .xlabel = "step", .ylabel = "norm", .n_series = 1,
         .series = gn_series, .log_y = 1, .hline = NAN},
    };
    int ret = md_svg_plot(m->svg, m->title, 3, panels, 820, 300);
    free(x); free(tr); free(vx); free(vy); free(lr); free(gn);
    return ret;
}

int md_metrics_append(md_metrics_t *m, const md_metrics_row_t *row)
{
    MD_GROW(m->rows, m->cap, m->n + 1);
    m->rows[m->n++] = *row;
    FILE *fp = fopen(m->tsv, "a");
    if (!fp) {
        md_error("cannot append to metrics file '%s': %s", m->tsv, strerror(errno));
        return -1;
    }
    write_row(fp, row);
    int write_failed = ferror(fp);
    if (fclose(fp) != 0 || write_failed) {
        md_error("cannot write metrics file '%s': %s", m->tsv, strerror(errno));
        return -1;
    }
    return plot(m);
}

void md_metrics_close(md_metrics_t *m)
{
    if (!m) return;
    free(m->tsv);
    free(m->svg);
    free(m->title);
    free(m->rows);
    free(m->baseline_label);
    free(m);
}
