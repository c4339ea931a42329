#include "train/clsreport.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/metrics.h"
#include "train/svgplot.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

void md_confusion_init(md_confusion_t *c, int n_classes)
{
    memset(c, 0, sizeof *c);
    c->n_classes = n_classes;
    c->counts = md_calloc((size_t)n_classes * (size_t)n_classes, sizeof *c->counts);
}

void md_confusion_free(md_confusion_t *c)
{
    free(c->counts);
    memset(c, 0, sizeof *c);
}

void md_confusion_clear(md_confusion_t *c)
{
    memset(c->counts, 0, (size_t)c->n_classes * (size_t)c->n_classes * sizeof *c->counts);
    c->loss_sum = 0;
    c->n = 0;
}

void md_confusion_add(md_confusion_t *c, int truth, const float *logprobs)
{
    int arg = 0;
    for (int k = 1; k < c->n_classes; k++)
        if (logprobs[k] > logprobs[arg]) arg = k;
    c->counts[truth * c->n_classes + arg]++;
    c->loss_sum -= logprobs[truth];
    c->n++;
}

double md_confusion_accuracy(const md_confusion_t *c)
{
    int64_t ok = 0;
    for (int k = 0; k < c->n_classes; k++) ok += c->counts[k * c->n_classes + k];
    return c->n ? (double)ok / (double)c->n : NAN;
}

static int64_t row_total(const md_confusion_t *c, int k)
{
    int64_t t = 0;
    for (int j = 0; j < c->n_classes; j++) t += c->counts[k * c->n_classes + j];
    return t;
}

double md_confusion_class_accuracy(const md_confusion_t *c, int k)
{
    int64_t t = row_total(c, k);
    return t ? (double)c->counts[k * c->n_classes + k] / (double)t : NAN;
}

double md_confusion_mean_loss(const md_confusion_t *c) { return c->n ? c->loss_sum / (double)c->n : NAN; }

static void xml_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", fp);
        else if (*s == '>') fputs("&gt;", fp);
        else if (*s == '&') fputs("&amp;", fp);
        else fputc(*s, fp);
    }
}

static void write_heatmap(FILE *fp, const md_confusion_t *c, const char *const *labels, const char *title)
{
    const int C = c->n_classes, cell = C > 12 ? 28 : 56, left = 150, top = 90;
    const int w = left + C * cell + 40, h = top + C * cell + 60;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", w, h);
    md_provenance_svg(fp);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" font-size=\"15\">", 10);
    xml_text(fp, title);
    fprintf(fp, "</text>\n<text x=\"%d\" y=\"46\" font-size=\"12\">rows: true label, columns: predicted; "
                "shade: fraction of the row; accuracy %.2f%% of %lld</text>\n",
            10, 100 * md_confusion_accuracy(c), (long long)c->n);
    for (int k = 0; k < C; k++) {
        int64_t t = row_total(c, k);
        fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", left - 6,
                top + k * cell + cell / 2 + 4);
        xml_text(fp, labels[k]);
        fprintf(fp, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"start\" "
                    "transform=\"rotate(-40 %d %d)\">",
                left + k * cell + cell / 2, top - 6, left + k * cell + cell / 2, top - 6);
        xml_text(fp, labels[k]);
        fputs("</text>\n", fp);
        for (int j = 0; j < C; j++) {
            int64_t v = c->counts[k * C + j];
            double f = t ? (double)v / (double)t : 0;
            int shade = (int)lround(255 * (1 - f));
            fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"#888\"/>\n",
                    left + j * cell, top + k * cell, cell, cell, shade, shade);
            if (cell >= 40)
                fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" fill=\"%s\">%lld</text>\n",
                        left + j * cell + cell / 2, top + k * cell + cell / 2 + 4, f > 0.5 ? "white" : "black",
                        (long long)v);
        }
    }
    fputs("</svg>\n", fp);
}

int md_confusion_write(const md_confusion_t *c, const char *const *labels, const char *title, const char *tsv_path)
{
    const int C = c->n_classes;
    md_outfile_t *o = md_outfile_open(tsv_path);
    if (!o) return -1;
    md_provenance_comment(o->fp, "#");
    fprintf(o->fp, "# %s\ntrue\\pred", title);
    for (int j = 0; j < C; j++) fprintf(o->fp, "\t%s", labels[j]);
    fputs("\tn\taccuracy\n", o->fp);
    for (int k = 0; k < C; k++) {
        fputs(labels[k], o->fp);
        for (int j = 0; j < C; j++) fprintf(o->fp, "\t%lld", (long long)c->counts[k * C + j]);
        double a = md_confusion_class_accuracy(c, k);
        if (isnan(a)) fprintf(o->fp, "\t0\tNA\n");
        else fprintf(o->fp, "\t%lld\t%.4f\n", (long long)row_total(c, k), a);
    }
    fputs("all", o->fp);
    for (int j = 0; j < C; j++) {
        int64_t t = 0;
        for (int k = 0; k < C; k++) t += c->counts[k * C + j];
        fprintf(o->fp, "\t%lld", (long long)t);
    }
    fprintf(o->fp, "\t%lld\t%.4f\n", (long long)c->n, c->n ? md_confusion_accuracy(c) : 0.0);
    if (md_outfile_commit(o) < 0) return -1;
    char *svg = md_metrics_svg_path(tsv_path);
    md_outfile_t *s = md_outfile_open(svg);
    free(svg);
    if (!s) return -1;
    write_heatmap(s->fp, c, labels, title);
    return md_outfile_commit(s);
}

struct md_epoch_log {
    char *tsv, *title;
    int n_classes;
    char **labels;
    md_epoch_row_t *rows;
    size_t n, cap;
};

md_epoch_log_t *md_epoch_log_new(const char *tsv_path, int n_classes, const char *const *labels, const char *title)
{
    md_epoch_log_t *l = md_calloc(1, sizeof *l);
    l->tsv = md_strdup(tsv_path);
    l->title = md_strdup(title);
    l->n_classes = n_classes;
    l->labels = md_malloc((size_t)n_classes * sizeof *l->labels);
    for (int k = 0; k < n_classes; k++) l->labels[k] = md_strdup(labels[k]);
    return l;
}

void md_epoch_log_free(md_epoch_log_t *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->rows[i].val_class_acc);
    for (int k = 0; k < l->n_classes; k++) free(l->labels[k]);
    free(l->labels);
    free(l->rows);
    free(l->tsv);
    free(l->title);
    free(l);
}

static int plot_epochs(const md_epoch_log_t *l)
{
    size_t n = l->n;
    double *x = md_malloc((n + 1) * sizeof *x), *y[4];
    for (int s = 0; s < 4; s++) y[s] = md_malloc((n + 1) * sizeof *y[s]);
    for (size_t i = 0; i < n; i++) {
        const md_epoch_row_t *r = &l->rows[i];
        x[i] = (double)r->epoch;
        y[0][i] = r->train_loss, y[1][i] = r->val_loss;
        y[2][i] = 100 * r->train_acc, y[3][i] = 100 * r->val_acc;
    }
    md_plot_series_t loss[2] = {
        {.name = "train", .color = "#1f77b4", .markers = 1, .n = (int64_t)n, .x = x, .y = y[0]},
        {.name = "validation", .color = "#d62728", .markers = 1, .n = (int64_t)n, .x = x, .y = y[1]},
    };
    md_plot_series_t acc[2] = {
        {.name = "train", .color = "#1f77b4", .markers = 1, .n = (int64_t)n, .x = x, .y = y[2]},
        {.name = "validation", .color = "#d62728", .markers = 1, .n = (int64_t)n, .x = x, .y = y[3]},
    };
    char chance[64];
    snprintf(chance, sizeof chance, "chance %.1f%%", 100.0 / l->n_classes);
    md_plot_panel_t panels[2] = {
        {.title = "loss", .xlabel = "epoch", .ylabel = "cross-entropy (nats)", .n_series = 2, .series = loss,
         .hline = NAN},
        {.title = "accuracy", .xlabel = "epoch", .ylabel = "%", .n_series = 2, .series = acc,
         .hline = 100.0 / l->n_classes, .hline_label = chance},
    };
    char *svg = md_metrics_svg_path(l->tsv);
    int ret = md_svg_plot(svg, l->title, 2, panels, 820, 300);
    free(svg);
    free(x);
    for (int s = 0; s < 4; s++) free(y[s]);
    return ret;
}

int md_epoch_log_add(md_epoch_log_t *l, const md_epoch_row_t *row)
{
    MD_GROW(l->rows, l->cap, l->n + 1);
    md_epoch_row_t *r = &l->rows[l->n++];
    *r = *row;
    r->val_class_acc = md_malloc((size_t)l->n_classes * sizeof *r->val_class_acc);
    memcpy(r->val_class_acc, row->val_class_acc, (size_t)l->n_classes * sizeof *r->val_class_acc);
    md_outfile_t *o = md_outfile_open(l->tsv);
    if (!o) return -1;
    md_provenance_comment(o->fp, "#");
    fputs("epoch\tstep\tlr\ttrain_loss\ttrain_acc\tval_loss\tval_acc", o->fp);
    for (int k = 0; k < l->n_classes; k++) fprintf(o->fp, "\tval_acc_%s", l->labels[k]);
    fputc('\n', o->fp);
    for (size_t i = 0; i < l->n; i++) {
        const md_epoch_row_t *e = &l->rows[i];
        fprintf(o->fp, "%lld\t%lld\t%.6g\t%.6f\t%.4f\t%.6f\t%.4f", (long long)e->epoch, (long long)e->step, e->lr,
                e->train_loss, e->train_acc, e->val_loss, e->val_acc);
        for (int k = 0; k < l->n_classes; k++) {
            if (isnan(e->val_class_acc[k])) fputs("\tNA", o->fp);
            else fprintf(o->fp, "\t%.4f", e->val_class_acc[k]);
        }
        fputc('\n', o->fp);
    }
    if (md_outfile_commit(o) < 0) return -1;
    return plot_epochs(l);
}
